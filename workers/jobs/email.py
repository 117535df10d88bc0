"""Send a plain-text email over SMTP with a Message-ID derived from the idempotency key; SMTP errors become
TransientError / PermanentError here, so the retry policy needs to know nothing about SMTP."""

from __future__ import annotations

import hashlib
import smtplib
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any

from jobfleet.core.errors import PermanentError, TransientError
from jobfleet.core.payloads import EmailPayload

# The server refused the message, its sender or our credentials: sending it again cannot help.
_REFUSALS: tuple[type[smtplib.SMTPException], ...] = (
    smtplib.SMTPRecipientsRefused,
    smtplib.SMTPSenderRefused,
    smtplib.SMTPDataError,
    smtplib.SMTPAuthenticationError,
)


@dataclass(frozen=True)
class SmtpConfig:
    """Where and how to send mail."""

    host: str
    port: int
    sender: str
    username: str = ""
    password: str = ""
    starttls: bool = False
    timeout_seconds: float = 15.0

    def __repr__(self) -> str:  # never print the password
        return f"SmtpConfig(host={self.host!r}, port={self.port}, sender={self.sender!r})"


def send(payload: EmailPayload, *, idempotency_key: str, smtp: SmtpConfig) -> dict[str, Any]:
    """Send the message; raise PermanentError when the server refuses it, TransientError when it cannot be reached
    or drops the connection (the retry policy then retries it)."""
    digest = hashlib.sha256(idempotency_key.encode()).hexdigest()[:32]
    message_id = f"<{digest}@jobfleet>"
    msg = EmailMessage()
    msg["From"] = smtp.sender
    msg["To"] = payload.to
    msg["Subject"] = payload.subject
    msg["Date"] = formatdate(localtime=False)
    # Same key, same Message-ID: a receiver can drop a duplicate if a crash made us send twice.
    msg["Message-ID"] = message_id
    msg.set_content(payload.body)
    try:
        with smtplib.SMTP(smtp.host, smtp.port, timeout=smtp.timeout_seconds) as client:
            if smtp.starttls:
                client.starttls()
            if smtp.username:
                client.login(smtp.username, smtp.password)
            refused = client.send_message(msg)
    except _REFUSALS as exc:
        raise PermanentError(f"SMTP server {smtp.host}:{smtp.port} refused the message: {exc}") from exc
    except (smtplib.SMTPException, OSError) as exc:  # disconnects, timeouts, connection refused
        raise TransientError(f"SMTP server {smtp.host}:{smtp.port} unavailable: {type(exc).__name__}: {exc}") from exc
    return {"message_id": message_id, "accepted": [payload.to], "refused": sorted(refused)}
