"""The front holds the back's jobs while it answers Slack (``bot.doors.back.Hold``), on a clock the test turns."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from types import SimpleNamespace

import pytest

from bot.core.metrics import Metrics
from bot.doors.back import HOLD_SECONDS, QUIET_SECONDS, Back, Hold


class Clock:
    """``call_later`` on a clock that moves only when the test says so."""

    def __init__(self) -> None:
        self.now = 0.0
        self.timers: list[Timer] = []

    def call_later(self, delay: float, then: Callable[[], None]) -> Timer:
        timer = Timer(self.now + delay, then)
        self.timers.append(timer)
        return timer

    def advance(self, seconds: float) -> None:
        """Move on ``seconds``, firing every timer due meanwhile, in order."""
        end = self.now + seconds
        while due := sorted((t for t in self.timers if not t.cancelled and t.at <= end), key=lambda t: t.at):
            timer = due[0]
            self.timers.remove(timer)
            self.now = timer.at
            timer.then()
        self.now = end


class Timer:
    def __init__(self, at: float, then: Callable[[], None]) -> None:
        self.at, self.then, self.cancelled = at, then, False

    def cancel(self) -> None:
        self.cancelled = True


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def written() -> list[bytes]:
    return []


@pytest.fixture
def hold(clock: Clock, written: list[bytes]) -> Hold:
    return Hold(written.append, call_later=clock.call_later)


def test_a_job_made_while_nothing_is_answered_goes_at_once(hold, written):
    assert hold.put(b"1\n") is False
    assert written == [b"1\n"] and hold.held == 0


def test_a_lone_commands_job_goes_once_the_front_has_been_quiet(hold, clock, written):
    with hold.answering():
        assert hold.put(b"1\n") is True
    assert written == [] and hold.held == 1
    clock.advance(QUIET_SECONDS * 0.9)
    assert written == []
    clock.advance(QUIET_SECONDS * 0.2)
    assert written == [b"1\n"] and hold.held == 0


def test_a_burst_is_held_until_it_ends_and_handed_over_in_order(hold, clock, written):
    step = QUIET_SECONDS / 2  # requests closer together than the quiet time: one burst
    for n in range(20):
        with hold.answering():
            hold.put(b"%d\n" % n)
        clock.advance(step)
    assert written == [] and hold.held == 20
    clock.advance(QUIET_SECONDS)
    assert written == [b"".join(b"%d\n" % n for n in range(20))]


def test_overlapping_answers_hold_until_the_last_one_is_sent(hold, clock, written):
    first, second = hold.answering(), hold.answering()
    first.__enter__()
    second.__enter__()
    hold.put(b"1\n")
    first.__exit__(None, None, None)
    clock.advance(QUIET_SECONDS * 3)
    assert written == []  # the second answer is still being made
    second.__exit__(None, None, None)
    clock.advance(QUIET_SECONDS * 1.1)
    assert written == [b"1\n"]


def test_a_stream_that_never_pauses_still_hands_jobs_over_in_time(hold, clock, written):
    answers = 0
    while clock.now < HOLD_SECONDS * 2.5:
        with hold.answering():
            hold.put(b"%d\n" % answers)
            answers += 1
            clock.advance(QUIET_SECONDS / 4)  # a new request is always in hand
    # at the latest HOLD_SECONDS after the first held job, every time
    assert len(written) == 2 and hold.held > 0
    handed = b"".join(written).split()
    assert handed == [b"%d" % n for n in range(len(handed))]  # in order, none twice


def test_a_job_made_while_others_wait_queues_behind_them(hold, clock, written):
    with hold.answering():
        hold.put(b"1\n")
    hold.put(b"2\n")  # nothing is answered, but 1 still waits for the quiet time: 2 may not overtake it
    assert written == []
    clock.advance(QUIET_SECONDS * 1.1)
    assert written == [b"1\n2\n"]


def test_release_hands_everything_over_now_and_drop_forgets(hold, clock, written):
    with hold.answering():
        hold.put(b"1\n")
        hold.release()  # before the drain: held jobs go first
        hold.put(b"2\n")
    assert written == [b"1\n"]
    hold.drop()  # the back is gone: its unfinished jobs are run by the front
    clock.advance(HOLD_SECONDS * 2)
    assert written == [b"1\n"] and hold.held == 0


#: a stand-in for the back process: ready at once, keeps every line it is sent, and drains when told
STAND_IN = """
import json, sys
print(json.dumps({"op": "ready"}), flush=True)
with open(sys.argv[1], "a") as kept:
    for line in sys.stdin:
        kept.write(line)
        kept.flush()
        if json.loads(line)["op"] == "drain":
            print(json.dumps({"op": "drained", "cut": 0}), flush=True)
            break
"""


async def test_jobs_held_when_the_front_stops_go_to_the_back_before_it_is_told_to_drain(tmp_path, monkeypatch):
    kept = tmp_path / "lines"
    monkeypatch.setattr(Back, "argv", (sys.executable, "-c", STAND_IN, str(kept)))
    back = Back(SimpleNamespace(opsbot_config="ops.yml", opsbot_db="opsbot.db"), Metrics())  # type: ignore[arg-type]
    assert await back.start(timeout=30)
    back.hold.quiet = back.hold.at_most = 3600.0  # nothing goes by the clock in this test
    with back.answering():
        assert back.offload({"op": "command", "text": "health prod"})
    assert back.hold.held == 1
    assert await back.drain(30) == 0  # SIGTERM: the held job goes first
    lines = [json.loads(line) for line in kept.read_text().splitlines()]
    assert [line["op"] for line in lines] == ["command", "drain"] and lines[0]["text"] == "health prod"
    assert 'opsbot_back_held_jobs_total 1.0' in back.metrics.render().decode()


def test_an_answer_that_fails_still_ends_its_hold(hold, clock, written):
    with pytest.raises(RuntimeError), hold.answering():
        hold.put(b"1\n")
        raise RuntimeError("the listener failed")
    assert hold.answering_now == 0
    clock.advance(QUIET_SECONDS * 1.1)
    assert written == [b"1\n"]
