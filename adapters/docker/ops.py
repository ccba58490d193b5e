"""``DockerOps``: what both runtimes do the same way on an engine: images, exec, one-off containers.

An image is looked at (and pulled within ``pull_timeout`` when a registry gives it); a command runs in
a container through the exec API with its output bounded; a created one-off container is started, its
output followed to the end, and removed. Compose and Swarm differ only in which container or which
configuration they use, not in how the engine is asked.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from datetime import datetime
from functools import partial
from typing import Any

import docker.auth
import docker.errors
import docker.utils

from adapters.docker.client import DockerClientBase
from adapters.docker.io import MAX_EXEC_OUTPUT, frames, parse_time
from adapters.docker.spec import check_image
from adapters.errors import AdapterError, AdapterTimeout, EngineUnavailable, NotFound, OpsError
from adapters.models import ExecResult

log = logging.getLogger(__name__)
#: how the engine words a one-off's command that cannot be run, and the exit code the docker CLI gives it
NOT_RUNNABLE = (("executable file not found", 127), ("no such file or directory", 127), ("permission denied", 126))


class DockerOps(DockerClientBase):
    """Images, exec and one-off runs on the engine (a base of both runtimes)."""

    #: how long a pull may take
    pull_timeout: float = 300.0

    # ------------------------------------------------------------------ images

    async def _image(self, ref: str) -> dict[str, Any] | None:
        """The engine's inspect data of an image, None when it does not have it."""
        try:
            found: dict[str, Any] = await self._call(lambda: self._api().inspect_image(ref), what=f" (image {ref})")
        except NotFound:
            return None
        return found

    async def _need_image(self, ref: str) -> dict[str, Any]:
        """The image's inspect data; ``NotFound`` (nothing was changed) when the engine does not have it."""
        found = await self._image(ref)
        if found is None:
            raise NotFound(f"image {ref} is not on the {self.description}: nothing was changed")
        return found

    async def image_available(self, image: str) -> bool:
        """True when the engine has ``image``, or pulls it within ``pull_timeout`` (else False)."""
        ref = check_image(image)
        if await self._image(ref) is not None:
            return True
        if ref.startswith("sha256:"):  # an image id cannot be pulled
            return False
        repo, tag = docker.utils.parse_repository_tag(ref)
        stop = threading.Event()
        try:
            await self._call(partial(self._pull, repo, tag or "latest", stop), timeout=self.pull_timeout,
                             what=f" (pulling {ref})")  # fmt: skip
        except EngineUnavailable:
            raise
        except AdapterError as exc:
            log.info("image %s is not on the engine and could not be pulled: %s", ref, exc)
            return False
        finally:
            stop.set()
        return await self._image(ref) is not None

    async def image_created(self, image: str) -> datetime | None:
        """When ``image`` (a reference or an image id) was built: its config's ``Created``.

        None when the image does not say (``Created`` empty or the zero time); ``NotFound`` when the engine
        does not have it.
        """
        ref = check_image(image)
        return parse_time((await self._need_image(ref)).get("Created"))

    def _pull(self, repo: str, tag: str, stop: threading.Event) -> None:
        """Pull ``repo:tag``, reading the engine's progress; raises ``AdapterError`` with its error."""
        api = self._api()
        registry, _ = docker.auth.resolve_repository_name(repo)
        auth = docker.auth.get_config_header(api, registry)
        headers = {"X-Registry-Auth": auth} if auth else {}
        params = {"fromImage": repo, "tag": tag}
        response = self._stream("POST", "/images/create", self.pull_timeout, params=params, headers=headers)
        with response:
            for line in response.iter_lines():
                if stop.is_set():
                    return
                message = json.loads(line) if line.strip() else {}
                if message.get("error"):
                    raise AdapterError(f"pulling {repo}:{tag}: {str(message['error'])[:300]}")

    # ------------------------------------------------------------------ exec and one-offs

    async def _exec(self, container: dict[str, Any], service: str, argv: list[str], timeout: float) -> ExecResult:
        stop = threading.Event()

        def run() -> ExecResult:
            api = self._api()
            exec_id = api.exec_create(container["Id"], argv, stdout=True, stderr=True)["Id"]
            response = self._stream("POST", f"/exec/{exec_id}/start", timeout, json={"Detach": False, "Tty": False})
            kept, size, truncated = [], 0, False
            with response:
                for _, payload in frames(response.raw, tty=False, stop=stop):
                    room = MAX_EXEC_OUTPUT - size
                    truncated = truncated or len(payload) > room
                    if room > 0:
                        kept.append(payload[:room])
                        size += min(len(payload), room)
            state = api.exec_inspect(exec_id)
            for _ in range(20):  # the engine may need a moment to record the exit code
                if not state.get("Running"):
                    break
                time.sleep(0.05)
                state = api.exec_inspect(exec_id)
            code = state.get("ExitCode")
            output = b"".join(kept).decode("utf-8", errors="replace")
            return ExecResult(exit_code=-1 if code is None else int(code), output=output, truncated=truncated)

        try:
            return await self._call(run, timeout=timeout)
        except AdapterTimeout as exc:
            raise AdapterTimeout(
                f"{argv[0]} in service {service!r} did not finish within {timeout:g}s"
                " (it may still be running in the container)"
            ) from exc
        finally:
            stop.set()

    async def _run_created(self, cid: str, name: str, service: str, argv: list[str], timeout: float) -> ExecResult:
        """Run a created one-off container to its end and remove it (in every case); its output and exit code."""
        stop = threading.Event()
        try:
            return await self._call(partial(self._run, cid, timeout, stop), timeout=timeout, what=f" (one-off {name})")
        except AdapterTimeout as exc:
            raise AdapterTimeout(
                f"{argv[0]} in a one-off container of service {service!r} did not finish within {timeout:g}s"
                " (it was killed and removed)"
            ) from exc
        finally:
            stop.set()
            await asyncio.shield(self._discard(cid, name, volumes=True))

    def _run(self, cid: str, timeout: float, stop: threading.Event) -> ExecResult:
        """Start a created one-off, follow its output to the end, and return it with the exit code."""
        api = self._api()
        try:
            api.start(cid)
        except docker.errors.APIError as exc:
            text = str(exc.explanation or exc)
            code = next((c for words, c in NOT_RUNNABLE if words in text.lower() and exc.status_code < 500), None)
            if code is None:
                raise
            return ExecResult(exit_code=code, output=text + "\n")
        kept, truncated = self._logs_tail(cid, timeout, stop, follow=True)
        state = api.wait(cid, timeout=self.timeout + 2)
        # the engine may end a followed log stream before the last lines of a container that exits at once
        # have reached it (seen: a final 'echo END' missing); once the container has exited, its logs are
        # complete: read again, the output is the whole of them
        kept, truncated = self._logs_tail(cid, self.timeout, stop, follow=False)
        output = bytes(kept).decode("utf-8", errors="replace")
        return ExecResult(exit_code=int(state.get("StatusCode", -1)), output=output, truncated=truncated)

    def _logs_tail(self, cid: str, timeout: float, stop: threading.Event, *, follow: bool) -> tuple[bytearray, bool]:
        """The last ``MAX_EXEC_OUTPUT`` bytes of a container's output (stdout and stderr), and whether it was cut;
        ``follow``: until the container ends."""
        params = {"stdout": 1, "stderr": 1, "follow": int(follow)}
        kept, truncated = bytearray(), False
        with self._stream("GET", f"/containers/{cid}/logs", timeout + self.timeout, params=params) as response:
            for _, payload in frames(response.raw, tty=False, stop=stop):
                kept += payload
                if len(kept) > MAX_EXEC_OUTPUT:  # keep the end: that is where a migration says what failed
                    del kept[: len(kept) - MAX_EXEC_OUTPUT]
                    truncated = True
        return kept, truncated

    async def _discard(self, cid: str, name: str, *, volumes: bool = False) -> None:
        """Remove a container (killing it), best effort: a failure is logged, never raised."""
        try:
            await self._call(
                lambda: self._api().remove_container(cid, v=volumes, force=True), what=f" (removing {name})"
            )
        except NotFound:
            pass
        except OpsError as exc:
            log.warning("could not remove container %s: %s", name, exc)
