"""In-memory stand-ins for the adapters (runtime, probe, backends, stores, streamed processes), for fast tests.

May import adapters' interfaces, models, errors and adapters.docker's pure helpers; imported by tests only
(and by a demo world, when there is one), never by a product module.
"""

from adapters.fakes.buckets import InMemoryBuckets
from adapters.fakes.certs import FakeCerts
from adapters.fakes.changes import AfterRestart, FakeChanges, OneoffHandler
from adapters.fakes.metrics import FakeMetrics
from adapters.fakes.notify import FakeEmail, FakePagerDuty, FakeSlackNotifier
from adapters.fakes.runtime import FakeBackends, FakeProbe, FakeRuntime, exec_not_found
from adapters.fakes.store import FakeProcess, FakeStreams, InMemoryStore

__all__ = [
    "AfterRestart",
    "FakeBackends",
    "FakeCerts",
    "FakeChanges",
    "FakeEmail",
    "FakeMetrics",
    "FakePagerDuty",
    "FakeProbe",
    "FakeProcess",
    "FakeRuntime",
    "FakeSlackNotifier",
    "FakeStreams",
    "InMemoryBuckets",
    "InMemoryStore",
    "OneoffHandler",
    "exec_not_found",
]
