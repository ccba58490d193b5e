"""``SmtpNotifier``: email through an SMTP server (``smtp://host:port`` or ``smtps://host:port``), stdlib smtplib.

smtplib is synchronous: each send runs in a worker thread, bounded by ``timeout``. A user in the URL
(``smtp://opsbot@mail:587``) logs in with the password from ``SMTP_PASSWORD``; STARTTLS is used when the
server offers it. The delivery id is the message's ``Message-ID``, so a resent digest is recognisable as
the same one. A refused login or refused recipients are permanent; a server that does not answer, or a
temporary (4xx) refusal, is worth trying again.
"""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any
from urllib.parse import unquote, urlsplit

from adapters.notify.base import DeliveryError, Outgoing


class SmtpNotifier:
    """One SMTP server, one sender."""

    name = "email"

    def __init__(self, smtp_url: str, sender: str, *, password: str | None = None, timeout: float = 20.0) -> None:
        parts = urlsplit(smtp_url)
        self.secure = parts.scheme == "smtps"
        self.host = parts.hostname or "localhost"
        self.port = parts.port or (465 if self.secure else 25)
        self.user = unquote(parts.username) if parts.username else None
        self.password = password
        self.sender = sender
        self.timeout = timeout

    def _send(self, out: Outgoing) -> dict[str, Any]:
        body = out.body
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = ", ".join(body["to"])
        message["Subject"] = str(body["subject"])[:200]
        message["Date"] = formatdate(localtime=False)
        message["Message-ID"] = f"<{out.delivery_id}@opsbot>"
        message.set_content(str(body["text"]))
        client: smtplib.SMTP
        if self.secure:
            client = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=ssl.create_default_context())
        else:
            client = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        with client:
            client.ehlo()
            if not self.secure and client.has_extn("starttls"):
                client.starttls(context=ssl.create_default_context())
                client.ehlo()
            if self.user:
                if not self.password:
                    raise DeliveryError(f"SMTP_PASSWORD is not set: {self.user} cannot log in to {self.host}",
                                        permanent=True, code="no_password")  # fmt: skip
                client.login(self.user, self.password)
            refused = client.send_message(message)
        return {"message_id": message["Message-ID"], "refused": sorted(refused)}

    async def send(self, out: Outgoing) -> dict[str, Any]:
        """Send the email ``{"to": [...], "subject", "text"}``."""
        where = f"SMTP server {self.host}:{self.port}"
        try:
            return await asyncio.wait_for(asyncio.to_thread(self._send, out), self.timeout + 5)
        except DeliveryError:
            raise
        except smtplib.SMTPAuthenticationError as exc:
            raise DeliveryError(f"{where} refused the login of {self.user} ({exc.smtp_code}); check SMTP_PASSWORD",
                                permanent=True, code="auth") from exc  # fmt: skip
        except smtplib.SMTPRecipientsRefused as exc:
            raise DeliveryError(f"{where} refused the recipients {', '.join(sorted(exc.recipients))}",
                                permanent=True, code="recipients") from exc  # fmt: skip
        except smtplib.SMTPResponseException as exc:
            permanent = 500 <= exc.smtp_code < 600
            raise DeliveryError(f"{where} answered {exc.smtp_code}", permanent=permanent,
                                code=f"smtp_{exc.smtp_code}") from exc  # fmt: skip
        except (TimeoutError, smtplib.SMTPException, OSError) as exc:
            raise DeliveryError(f"{where} cannot be reached ({type(exc).__name__})", code="unreachable") from exc

    async def close(self) -> None:
        """Nothing kept open between sends."""
