"""``opsbot serve`` over HTTP as Slack sees it: signed slash commands, the Web API stand-in, limits, replays."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest
import pytest_asyncio

from tests.e2e.botproc import SECRET, fence, shop_config, start_bot
from tests.helpers.docker_engine import run_service
from tests.helpers.slack import SlackStandIn, block_errors, post_signed, sign, slash_command_body

#: the schedules' alert channels (examples/ops.yml): their first runs, in the back process at a lower
#: priority, may post or edit there while a test runs
ALERTS = ("C0CRITICAL", "C0WARNING", "C0INFO")

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.docker]


def _writer(docker_engine, shop, name, script):
    """A service of the shop that runs ``script`` (its log), the database password in its environment."""
    container = run_service(docker_engine.client, shop.project, name, "shop/worker:1.0",
                            ["sh", "-c", script + "; sleep 100000"], env={"DB_PASSWORD": shop.secret})  # fmt: skip
    yield container
    container.remove(force=True)


@pytest.fixture(scope="module")
def chatty(docker_engine, shop):
    """A service with 600 quick log lines (too many for one message)."""
    yield from _writer(docker_engine, shop, "chatty",
                       'i=0; while [ $i -lt 600 ]; do echo "line $i password $DB_PASSWORD"; i=$((i+1)); done')


@pytest.fixture(scope="module")
def verbose(docker_engine, shop):
    """A service with 5000 log lines of 4 KB, each with the database password in it (20 MB of log)."""
    yield from _writer(docker_engine, shop, "verbose", "pad=$(printf '%04000d' 0); i=0; while [ $i -lt 5000 ]; do "
                       'echo "line $i password=$DB_PASSWORD $pad end"; i=$((i+1)); done')


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def slack():
    async with SlackStandIn() as standin:
        yield standin


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def bot(slack, shop, chatty, verbose, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("slack-e2e")
    config = shop_config(tmp / "ops.yml", shop, extra_services=("chatty", "verbose"))
    process = await start_bot(tmp, config, slack.url)
    yield process
    assert await process.stop() == 0
    process.assert_clean()


async def upload_of(slack, head, timeout):
    """The one uploaded file whose first line starts with ``head`` (polled for until ``timeout``)."""
    deadline = time.monotonic() + timeout
    while not (found := [f for f in slack.uploaded_files() if f.content.startswith(head.encode())]):
        assert time.monotonic() < deadline, f"no file starting {head!r} uploaded"
        await asyncio.sleep(0.05)
    [uploaded] = found
    return uploaded


async def command(bot, text, **kw):
    """Send a signed /ops command; returns (status, body, seconds to the acknowledgement).

    How fast the acknowledgement comes is a goal measured in bench/ack_latency.py, not asserted here."""
    body = slash_command_body(text, **kw)
    bot.sent_at = time.monotonic()
    return await post_signed(f"{bot.url}/slack/events", body, SECRET)


def everything_sent(slack) -> str:
    return json.dumps([c.args for c in slack.calls]) + "".join(f.content.decode() for f in slack.uploaded_files())


async def result_of(slack, text_start, since, timeout=30):
    """The chat.update with the final result of the message, posted after ``since``, that began with ``text_start``."""
    post = await slack.wait_for(
        "chat.postMessage", lambda c: c.time >= since and text_start in c.args.get("text", ""), timeout=10
    )
    ts = post.response["ts"]
    return await slack.wait_for(
        "chat.update",
        lambda c: c.args.get("ts") == ts and not c.args["text"].startswith(":hourglass"),
        timeout=timeout,
    )


async def test_status_is_acknowledged_at_once_then_posted_in_the_channel(bot, slack, shop):
    status, body, _ = await command(bot, "status prod")
    assert status == 200
    assert body == ""  # nothing ephemeral: the answer goes to the channel
    update = await result_of(slack, "Checking prod", bot.sent_at)
    assert update.args["channel"] == "C0OPS"
    blocks = update.args["blocks"]
    assert block_errors(blocks) == []
    assert blocks[0]["text"]["text"] == "prod: CRITICAL"  # redis exited
    text = json.dumps(blocks)
    assert "*redis*" in text and "exited" in text and "API Health" in text
    assert "asked by <@U0OPERATOR>" in blocks[-1]["elements"][0]["text"]
    assert shop.secret not in everything_sent(slack)


async def test_troubleshoot_504(bot, slack, shop):
    status, _, _ = await command(bot, "troubleshoot 504")
    assert status == 200
    update = await result_of(slack, "Troubleshooting prod", bot.sent_at)
    blocks = update.args["blocks"]
    assert block_errors(blocks) == []
    assert blocks[0]["text"]["text"] == "Troubleshooting: API Timeout"
    text = json.dumps(blocks)
    assert "Check DB connections" in text and "db_connections" in text and "<!subteam^S0ONCALL>" in text
    assert shop.secret not in everything_sent(slack)


async def test_logs_redacted_and_long_output_attached_as_a_file(bot, slack, shop):
    status, _, _ = await command(bot, "logs prod worker --grep password")
    assert status == 200
    update = await result_of(slack, "Reading logs of prod", bot.sent_at)
    assert "[REDACTED]" in json.dumps(update.args["blocks"])

    status, _, _ = await command(bot, "logs prod chatty --lines 600")
    assert status == 200
    update = await slack.wait_for("chat.update", lambda c: "chatty" in json.dumps(c.args.get("blocks", [])), 30)
    assert block_errors(update.args["blocks"]) == []
    uploaded = await upload_of(slack, "prod/chatty: ", 15)
    content = uploaded.content.decode()
    assert content.count("\n") >= 600 and "line 0 password [REDACTED]" in content and "line 599" in content
    assert shop.secret not in everything_sent(slack)


async def test_logs_of_5000_long_lines_upload_every_line_redacted(bot, slack, shop):
    """Issue 11, finding 5: the file holds all 5000 requested lines of 4 KB (not the newest 2 MiB of them)."""
    status, _, _ = await command(bot, "logs prod verbose --lines 5000")
    assert status == 200
    update = await slack.wait_for("chat.update", lambda c: "Logs of verbose" in json.dumps(c.args.get("blocks")), 60)
    assert block_errors(update.args["blocks"]) == [] and "5000 lines" in json.dumps(update.args["blocks"])
    uploaded = await upload_of(slack, "prod/verbose: ", 60)
    lines = uploaded.content.decode().split("\n")
    assert lines[0].startswith("prod/verbose: 5000 lines") and lines[-1] == ""
    body = lines[1:-1]
    assert [int(line.split()[1]) for line in body] == list(range(5000))
    assert all(line.startswith(f"line {i} password=[REDACTED] 0000") and line.endswith(" end") for i, line in
               enumerate(body))  # fmt: skip
    assert shop.secret.encode() not in uploaded.content


async def test_help_and_refusals_are_ephemeral_in_the_acknowledgement(bot, slack):
    before = len(slack.calls)
    status, body, _ = await command(bot, "help")
    assert status == 200
    data = json.loads(body)
    assert data["response_type"] == "ephemeral" and data["blocks"][0]["text"]["text"] == "/ops commands"
    assert block_errors(data["blocks"]) == []
    status, body, _ = await command(bot, "status nowhere")
    data = json.loads(body)
    assert status == 200 and data["response_type"] == "ephemeral" and "unknown environment 'nowhere'" in data["text"]
    status, body, _ = await command(bot, "logs prod '$(reboot)'")
    assert "invalid name" in json.loads(body)["text"]
    await fence(bot, slack)  # the bot is done with the three: nothing of theirs reached the channel
    assert posted_since(slack, before) == ["C0FENCE", "C0FENCE"]


async def test_text_reaches_the_parser_exactly_as_typed(bot, slack):
    # Bolt's own body parser would drop this one (the word "payload" in a form body)
    status, _, _ = await command(bot, "troubleshoot payload")
    assert status == 200
    update = await result_of(slack, "Troubleshooting prod", bot.sent_at)
    assert "No matching guide entry" in json.dumps(update.args["blocks"])
    status, _, _ = await command(bot, "logs prod worker --grep '\"q\" & more+stuff=1 %41 é'")
    assert status == 200
    update = await result_of(slack, "Reading logs of prod", bot.sent_at)
    assert update.args["blocks"][1]["text"]["text"] == 'No log lines matching `"q" &amp; more+stuff=1 %41 é`.'


async def test_forged_replayed_and_malformed_requests_run_nothing(bot, slack):
    url = f"{bot.url}/slack/events"
    body = slash_command_body("status prod")
    before = len(slack.calls)
    async with httpx.AsyncClient() as client:
        cases = {
            "no headers": ({}, body),
            "wrong secret": (sign("not-the-secret", body), body),
            "stale": (sign(SECRET, body, timestamp=int(time.time()) - 600), body),
            "future": (sign(SECRET, body, timestamp=int(time.time()) + 600), body),
            "non-numeric timestamp": ({**sign(SECRET, body), "X-Slack-Request-Timestamp": "12abc"}, body),
            "signature for another body": (sign(SECRET, slash_command_body("help")), body),
        }
        for name, (headers, content) in cases.items():
            r = await client.post(
                url, content=content, headers={**headers, "Content-Type": "application/x-www-form-urlencoded"}
            )
            assert r.status_code == 401, name
        malformed = {
            "broken JSON payload": ("payload=%7Bnot-json", "application/x-www-form-urlencoded"),
            "empty body": ("", "application/x-www-form-urlencoded"),
            "wrong content type": (body, "text/plain"),
            "JSON list": ("[1,2]", "application/json"),
            "no user": ("command=%2Fops&text=status&channel_id=C1", "application/x-www-form-urlencoded"),
        }
        for name, (content, ctype) in malformed.items():
            r = await client.post(url, content=content, headers={**sign(SECRET, content), "Content-Type": ctype})
            assert r.status_code == 400, name
    await fence(bot, slack)  # the bot is done with them: none reached the channel
    assert posted_since(slack, before) == ["C0FENCE", "C0FENCE"]


def posted_since(slack, before: int) -> list[str]:
    """The channels of the messages posted or edited since call ``before``, but the alert channels."""
    return [c.args.get("channel") for c in slack.calls[before:] if c.method in ("chat.postMessage", "chat.update")
            and c.args.get("channel") not in ALERTS]  # fmt: skip


async def test_the_same_delivery_twice_runs_once(bot, slack):
    body = slash_command_body("health prod", trigger_id="1234.5678.duplicate")
    duplicates = await bot.metric("opsbot_duplicates_total", kind="slash_command")
    bot.sent_at = since = time.monotonic()
    first = await post_signed(f"{bot.url}/slack/events", body, SECRET)
    second = await post_signed(f"{bot.url}/slack/events", body, SECRET)
    assert first[0] == second[0] == 200
    # the bot says it dropped the second, and it has finished whatever it took on before a later request
    assert await bot.metric("opsbot_duplicates_total", kind="slash_command") == duplicates + 1
    await result_of(slack, "Checking prod", bot.sent_at)
    await fence(bot, slack)
    runs = [c for c in slack.calls_to("chat.postMessage") if c.time >= since and "Checking prod" in c.args["text"]]
    results = [c for c in slack.calls_to("chat.update") if c.time >= since and "prod: OK" in c.args.get("text", "")]
    assert len(runs) == 1 and len(results) == 1, (runs, results)


async def test_health_routes_and_metrics(bot, slack):
    async with httpx.AsyncClient() as client:
        assert (await client.get(f"{bot.url}/health")).json() == {"status": "ok"}
        assert (await client.get(f"{bot.url}/health/db")).json() == {"status": "ok"}
    # this test's own request is counted (whatever ran before it)
    counted = await bot.metric("opsbot_requests_total", command="status", outcome="critical")
    acks = await bot.metric("opsbot_ack_seconds_count")
    status, _, _ = await command(bot, "status prod")
    assert status == 200
    await result_of(slack, "Checking prod", bot.sent_at)
    assert await bot.metric("opsbot_requests_total", command="status", outcome="critical") == counted + 1
    assert await bot.metric("opsbot_ack_seconds_count") == acks + 1
    async with httpx.AsyncClient() as client:
        metrics = (await client.get(f"{bot.url}/metrics")).text
    assert "# TYPE opsbot_requests_total counter" in metrics and "# TYPE opsbot_pending_approvals gauge" in metrics


async def test_a_click_on_an_unknown_approval_is_told_and_runs_nothing(bot, slack):
    from tests.helpers.slack import block_actions_body

    before = len(slack.calls)
    body = block_actions_body("approval:approve", "a1b2c3", user_id="U0APPROVER1")
    status, _, _ = await post_signed(f"{bot.url}/slack/events", body, SECRET)
    assert status == 200
    told = await slack.wait_for("chat.postEphemeral", lambda c: c.args.get("user") == "U0APPROVER1", 20)
    assert "no approval 'a1b2c3'" in told.args["text"]
    await fence(bot, slack)
    assert posted_since(slack, before) == ["C0FENCE", "C0FENCE"]


async def test_a_button_no_listener_handles_is_not_found_and_runs_nothing(bot, slack):
    from tests.helpers.slack import block_actions_body

    before = len(slack.calls)
    body = block_actions_body("something:else", "a1b2c3", user_id="U0APPROVER1")
    status, _, _ = await post_signed(f"{bot.url}/slack/events", body, SECRET)
    assert status == 404
    await fence(bot, slack)
    # the fence's own; Bolt asks auth.test once, on the first request it dispatches (this one, when the tests'
    # random order puts it first): that is the workspace's authorization, not something the click ran
    assert [c.method for c in slack.calls[before:] if c.args.get("channel") not in ALERTS and c.method != "auth.test"
            ] == ["chat.postMessage", "chat.update"]  # fmt: skip
