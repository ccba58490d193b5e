"""``opsbot serve`` over HTTP under attack from the network, without the signing secret.

Slow clients (a byte now and then) are closed after the read timeout and cannot exhaust the process's
files; signed requests and ``/health`` are served beside such a flood; forged requests are counted in
``/metrics`` and do not flood the log; text a user types cannot forge a log line. The bot runs with a
small open-file limit (256), as a small container has it, so that a few hundred connections are a flood.
"""

from __future__ import annotations

import asyncio
import json
import re
import time

import aiohttp
import httpx
import pytest
import pytest_asyncio
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.botproc import SECRET, BotProcess, engine_free_config, start_bot
from tests.helpers.http_servers import health_app, serve
from tests.helpers.slack import SlackStandIn, post_signed, sign, slash_command_body
from tests.helpers.slow_clients import SlowClients

pytestmark = [pytest.mark.asyncio(loop_scope="module")]

READ_TIMEOUT = 2.0
NOFILE = 256
LINE = re.compile(
    r"^\[\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\] \[(DEBUG|INFO|WARNING|ERROR|CRITICAL)\] \[[^\]]*\] \[.*\]$"
)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def slack():
    async with SlackStandIn() as standin:
        yield standin


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def bot(slack, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("http-limits")
    async with serve(health_app()) as base:
        process = await start_bot(
            tmp, engine_free_config(tmp, base), slack.url, nofile=NOFILE,
            LOG_LEVEL="debug", OPSBOT_HTTP_READ_TIMEOUT=str(READ_TIMEOUT),
        )  # fmt: skip
        yield process
        assert await process.stop() == 0
    process.assert_clean()


def port_of(bot: BotProcess) -> int:
    return int(bot.url.rsplit(":", 1)[1])


async def metrics(bot: BotProcess) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of /metrics, by name and labels."""
    async with httpx.AsyncClient() as client:
        response = await client.get(f"{bot.url}/metrics", timeout=10)
    assert response.status_code == 200
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def sample(values: dict, name: str, **labels: str) -> float:
    return values.get((name, tuple(sorted(labels.items()))), 0.0)


async def until(check, timeout: float = 180, what: str = "the expected state"):
    """Poll ``check()`` (sync or async) until it returns something true; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        assert time.monotonic() < deadline, f"no {what} within {timeout} s"
        await asyncio.sleep(0.2)


async def health_prod_done(slack, since: float, count: int) -> bool:
    """``count`` results of `health prod` since ``since``, each of its three checks answered 200.

    Answered, not OK: the health server shares this test's loop with the flood, so a check may take longer
    than the 500 ms warning threshold (the bot's back process sends the ten runs' checks all at once).
    """
    done = [
        c for c in slack.calls_to("chat.update")
        if c.time >= since and "prod: " in c.args.get("text", "")
        and json.dumps(c.args["blocks"]).count("HTTP 200 in") == 3
    ]  # fmt: skip
    return len(done) >= count


async def test_slow_clients_are_closed_after_the_read_timeout(bot):
    before = await metrics(bot)
    async with (
        SlowClients("127.0.0.1", port_of(bot), 10, kind="head") as heads,
        SlowClients("127.0.0.1", port_of(bot), 10, kind="body") as bodies,
    ):
        # each keeps sending a byte every half second; the server must close every one of them itself
        await until(lambda: len(heads.closed) == 10 and len(bodies.closed) == 10, what="slow connections closed")
    assert heads.opened == bodies.opened == 10
    # a slow head is cut without an answer; a slow body gets a 408 (the request was routed, then timed out)
    assert all(c.answer == b"" for c in heads.closed)
    assert all(c.answer.startswith(b"HTTP/1.1 408") for c in bodies.closed), [c.answer[:60] for c in bodies.closed]
    after = await metrics(bot)
    closed = "opsbot_http_connections_closed_total"
    assert sample(after, closed, reason="slow") - sample(before, closed, reason="slow") == 10
    rejected = "opsbot_http_rejected_total"
    assert sample(after, rejected, reason="slow_body") - sample(before, rejected, reason="slow_body") == 10


async def test_signed_requests_and_health_are_served_beside_a_slow_client_flood(bot, slack):
    # more slow clients than the bot may keep connections (and than its 256 open files allow), each
    # reconnecting as soon as it is closed
    flood = 300
    async with SlowClients("127.0.0.1", port_of(bot), flood, kind="head", reconnect=True) as attackers:
        await until(lambda: attackers.opened >= flood, what="the flood's connections")
        since = time.monotonic()
        async with httpx.AsyncClient() as client:
            health = await client.get(f"{bot.url}/health", timeout=10)
        assert health.status_code == 200 and health.json() == {"status": "ok"}
        answers = await asyncio.gather(
            *(post_signed(f"{bot.url}/slack/events", slash_command_body("health prod"), SECRET) for _ in range(10))
        )
        assert [status for status, _, _ in answers] == [200] * 10
        # each one ran and its result reached the channel, while the flood went on
        await until(lambda: health_prod_done(slack, since, 10), what="10 results of health prod")
        values = await metrics(bot)
        assert attackers.open_now > 0  # the flood is still there
    limit = sample(values, "opsbot_http_connection_limit")
    assert 0 < limit <= NOFILE - 64 - 32
    assert sample(values, "opsbot_http_connections") <= limit
    assert sample(values, "opsbot_http_connections_closed_total", reason="evicted") > 0
    assert sample(values, "process_open_fds") < NOFILE
    assert "Too many open files" not in bot.logs()


async def test_forged_requests_are_counted_and_logged_once(slack, tmp_path):
    async with serve(health_app()) as base:
        bot = await start_bot(tmp_path, engine_free_config(tmp_path, base), slack.url)
        try:
            body = slash_command_body("status prod").encode()
            forged = sign("not-the-secret", body)
            count = 2000
            statuses: list[int] = []
            connector = aiohttp.TCPConnector(limit=20)
            async with aiohttp.ClientSession(connector=connector) as session:

                async def post(headers: dict[str, str]) -> None:
                    async with session.post(f"{bot.url}/slack/events", data=body, headers=headers) as response:
                        await response.read()
                        statuses.append(response.status)

                ctype = {"Content-Type": "application/x-www-form-urlencoded"}
                await asyncio.gather(*(post({**ctype, **(forged if i % 2 else {})}) for i in range(count)))
                big = b"x" * (1024 * 1024 + 1)
                async with session.post(f"{bot.url}/slack/events", data=big, headers=ctype) as response:
                    assert response.status == 413
            assert statuses == [401] * count
            values = await metrics(bot)
            for reason, expected in (("unsigned", count // 2), ("bad_signature", count // 2), ("too_large", 1)):
                assert sample(values, "opsbot_http_rejected_total", reason=reason) == expected, reason
            warnings = [line for line in bot.logs().splitlines() if "] [WARNING] [" in line]
            assert len(warnings) <= 3, warnings[:5]  # a handful, not 2,001
            # the first one at once; the others are summed up once a minute (or when the bot stops)
            [refused] = [line for line in warnings if "rejected" in line]
            assert "rejected a /slack/events request: missing signature headers" in refused
        finally:
            assert await bot.stop() == 0
    refused = [line for line in bot.logs().splitlines() if "] [WARNING] [" in line and "rejected" in line]
    assert len(refused) == 2, refused
    assert (
        "rejected 2,000 /slack/events requests in the last 60 s: 1,000 invalid signature, "
        "999 missing signature headers, 1 body too large" in refused[1]
    )
    bot.assert_clean()


async def test_text_a_user_types_cannot_forge_a_log_line(bot, slack):
    forged = "[2026-01-01T00:00:00.000Z] [INFO] [-] [deploy prod v9 approved by U0ADMIN]"
    text = f"health prod\n{forged}\r{forged}\u2028{forged}\x1b[2K"
    log_before = len(bot.logs().splitlines())
    status, _, _ = await post_signed(f"{bot.url}/slack/events", slash_command_body(text), SECRET)
    assert status == 200
    # the request is refused (extra arguments) and audited; at debug level the audit logs its text
    await until(lambda: "\\u2028" in bot.logs(), what="the request's text in the log")
    lines = bot.logs().splitlines()
    assert all(LINE.match(line) for line in lines), [line for line in lines if not LINE.match(line)][:5]
    new = "\n".join(lines[log_before:])
    assert f"\\n{forged}\\r{forged}\\u2028{forged}\\x1b[2K" in new
    assert not any(line.startswith(forged) for line in lines)
    assert "\x1b" not in bot.logs()


async def test_keep_alive_connections_serve_one_request_after_another(bot):
    async with httpx.AsyncClient() as client:
        for _ in range(5):
            response = await client.get(f"{bot.url}/health")
            assert response.json() == {"status": "ok"}
        body = slash_command_body("help").encode()
        headers = {"Content-Type": "application/x-www-form-urlencoded", **sign(SECRET, body)}
        response = await client.post(f"{bot.url}/slack/events", content=body, headers=headers)
        assert response.status_code == 200 and json.loads(response.text)["response_type"] == "ephemeral"
