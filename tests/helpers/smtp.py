"""A real SMTP server for tests: aiosmtpd on a free loopback port, with a login, keeping what it received."""

from __future__ import annotations

import email
import email.policy
import time
import warnings
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from tests.helpers.http_servers import free_port


@dataclass
class SmtpServer:
    """aiosmtpd in its own thread; ``messages`` holds every message received, parsed."""

    user: str = "opsbot"
    password: str = "smtp-test-password"
    messages: list[EmailMessage] = field(default_factory=list)
    envelopes: list[dict[str, Any]] = field(default_factory=list)
    logins: list[tuple[str, bool]] = field(default_factory=list)
    port: int = 0
    _controller: Controller | None = None

    @property
    def url(self) -> str:
        """``smtp://user@127.0.0.1:PORT`` (the password goes in SMTP_PASSWORD)."""
        return f"smtp://{self.user}@127.0.0.1:{self.port}"

    def _authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
        ok = (isinstance(auth_data, LoginPassword) and auth_data.login.decode() == self.user
              and auth_data.password.decode() == self.password)  # fmt: skip
        self.logins.append((auth_data.login.decode() if isinstance(auth_data, LoginPassword) else "?", ok))
        return AuthResult(success=ok, handled=False)  # not handled: aiosmtpd answers 535 itself

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # aiosmtpd's name
        """Keep the message."""
        self.envelopes.append({"from": envelope.mail_from, "to": list(envelope.rcpt_tos)})
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.messages.append(message)  # type: ignore[arg-type]
        return "250 Message accepted for delivery"

    def start(self) -> SmtpServer:
        """Listen on a free loopback port."""
        self.port = free_port()
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port, authenticator=self._authenticate,
                                      auth_require_tls=False, auth_required=True)  # fmt: skip
        with warnings.catch_warnings():  # AUTH without TLS: fine on loopback in a test
            warnings.simplefilter("ignore", UserWarning)
            self._controller.start()
        return self

    def stop(self) -> None:
        """Stop listening."""
        if self._controller is not None:
            self._controller.stop()

    def wait_for(self, count: int, timeout: float = 15.0) -> list[EmailMessage]:
        """Wait until ``count`` messages arrived (polling, with a deadline)."""
        deadline = time.monotonic() + timeout
        while len(self.messages) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(self.messages)} message(s) within {timeout} s, expected {count}")
            time.sleep(0.05)
        return self.messages
