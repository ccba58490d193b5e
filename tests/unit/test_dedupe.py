"""Duplicate deliveries: the same key is first once, across bot processes sharing the database."""

from __future__ import annotations

import asyncio

from bot.core.db import Database
from bot.core.dedupe import Deliveries, RecentKeys


async def test_a_delivery_is_first_once_across_two_processes(tmp_path):
    dbs = [Database(tmp_path / "d.db") for _ in range(2)]
    try:
        one, two = Deliveries(dbs[0]), Deliveries(dbs[1])
        results = await asyncio.gather(*(d.first("slash:T1:trigger-1") for d in (one, two, one, two)))
        assert sorted(results) == [False, False, False, True]
        assert await two.first("slash:T1:trigger-2") and not await one.first("slash:T1:trigger-2")
    finally:
        for db in dbs:
            db.close()


def test_recent_keys_remember_within_their_bound():
    recent = RecentKeys(size=2)
    assert recent.first("a") and not recent.first("a")
    assert recent.first("b") and recent.first("c")  # the oldest ("a") made room
    assert recent.first("a") and not recent.first("c")
