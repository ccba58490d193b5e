"""A Unix-socket relay in front of a real engine, that a test can cut: the engine "goes away" mid-change.

``UnixProxy(target, path)`` accepts on ``path`` and relays each connection to ``target`` (both Unix
socket paths) in two threads. ``cut()`` stops accepting, removes the socket file and closes every
relayed connection: to a client it is exactly an engine that stopped answering.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading


class UnixProxy:
    """Relays ``path`` -> ``target`` until ``cut()``."""

    def __init__(self, target: str, path: str) -> None:
        self.target = target
        self.path = path
        self.server = socket.socket(socket.AF_UNIX)
        self.server.bind(path)
        self.server.listen(64)
        self.server.settimeout(0.1)
        self.conns: list[socket.socket] = []
        self.lock = threading.Lock()
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        """The DOCKER_HOST that reaches the engine through the relay."""
        return f"unix://{self.path}"

    def _accept(self) -> None:
        while not self.stopped.is_set():
            try:
                client, _ = self.server.accept()
            except (TimeoutError, OSError):
                continue
            upstream = socket.socket(socket.AF_UNIX)
            upstream.connect(self.target)
            with self.lock:
                if self.stopped.is_set():
                    client.close()
                    upstream.close()
                    return
                self.conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pump, args=(a, b), daemon=True).start()

    def cut(self) -> None:
        """The engine stops answering: no new connection, every open one closed."""
        self.stopped.set()
        with self.lock:
            conns, self.conns = self.conns, []
        self.server.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()
        self.thread.join(timeout=2)


def _pump(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)
