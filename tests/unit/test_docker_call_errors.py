"""The Docker adapters' one call wrapper: whatever the SDK's transport raises becomes one of our errors."""

from __future__ import annotations

import pytest
import urllib3.exceptions

from adapters.docker.client import DockerClientBase
from adapters.errors import AdapterTimeout, EngineUnavailable


def raising(exc: BaseException):
    def call():
        raise exc

    return call


async def test_a_raw_stream_read_timeout_is_our_timeout_with_the_bound_given():
    # an exec's output stream is read through urllib3 directly: its read timeout is not wrapped by requests
    # (seen in a CI run: a traceback-shaped ReadTimeoutError instead of "did not finish within 0.5s")
    client = DockerClientBase("unix:///nowhere.sock", timeout=10)
    timeout = urllib3.exceptions.ReadTimeoutError(None, "/exec/x/start", "Read timed out.")  # type: ignore[arg-type]
    with pytest.raises(AdapterTimeout, match=r"did not answer within 0.5s \(exec\)$"):
        await client._call(raising(timeout), timeout=0.5, what=" (exec)")


async def test_a_broken_raw_stream_is_the_engine_unavailable():
    client = DockerClientBase("unix:///nowhere.sock")
    broken = urllib3.exceptions.ProtocolError("Connection broken: IncompleteRead")
    with pytest.raises(EngineUnavailable, match="does not answer"):
        await client._call(raising(broken), what=" (logs)")
