"""The demo shop's health endpoints, served for real on loopback (a port of its own, in a thread).

``answer(path)`` decides each reply from the demo runtime's state, so the bot's HTTP probe checks
the demo exactly as it checks a real system: ``/health`` fails while the api runs the broken release
or is stopped, ``/health/db`` while postgres is stopped, ``/health/cache`` while redis is.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

#: ``answer(path)`` -> (HTTP status, JSON body)
Answer = Callable[[str], tuple[int, dict[str, Any]]]


class HealthServer:
    """A small HTTP server on ``127.0.0.1`` (a free port), answering GETs with ``answer``."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                status, body = outer.answer(self.path.split("?", 1)[0])
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: the demo's requests are not the bot's log."""

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> None:
        """Serve in a daemon thread."""
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.1,), name="demo-health",
                                        daemon=True)  # fmt: skip
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and release the port."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._server.server_close()
