"""Stopping background loops: a loop that loses its cancel does not hold a shutdown forever."""

from __future__ import annotations

import asyncio
import logging

from bot.core.tasks import stop_task


async def test_a_loop_that_ends_when_cancelled_is_stopped():
    started = asyncio.Event()

    async def loop() -> None:
        started.set()
        await asyncio.Event().wait()  # until cancelled

    task = asyncio.create_task(loop())
    await started.wait()
    assert await stop_task(task, "the loop", bound=30) is True
    assert task.cancelled()


async def test_a_loop_that_swallows_its_cancel_is_left_behind_and_logged(caplog):
    started, release = asyncio.Event(), asyncio.Event()

    async def stubborn() -> None:
        started.set()
        while not release.is_set():
            try:
                await release.wait()
            except asyncio.CancelledError:
                continue  # what a library that catches the cancel does

    task = asyncio.create_task(stubborn())
    await started.wait()
    with caplog.at_level(logging.ERROR, logger="opsbot.tasks"):
        assert await stop_task(task, "the stubborn loop", bound=0.2) is False
    assert not task.done()
    assert "the stubborn loop did not stop within 0.2 s of being cancelled" in caplog.text
    release.set()
    await task


async def test_a_loop_that_fails_while_stopping_is_logged(caplog):
    started = asyncio.Event()

    async def failing() -> None:
        started.set()
        try:
            await asyncio.Event().wait()  # until cancelled
        except asyncio.CancelledError:
            raise RuntimeError("closing broke") from None

    task = asyncio.create_task(failing())
    await started.wait()
    with caplog.at_level(logging.ERROR, logger="opsbot.tasks"):
        assert await stop_task(task, "the failing loop", bound=30) is True
    assert "the failing loop failed while stopping" in caplog.text and "closing broke" in caplog.text
