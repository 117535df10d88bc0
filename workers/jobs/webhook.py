"""Deliver a webhook: POST JSON with the job's Idempotency-Key; classify the outcome for the retry policy."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any

from middleware.errors import PermanentError, TransientError
from workers.payloads import WebhookPayload

USER_AGENT = "jobfleet-webhook/0.1"
_RETRYABLE_4XX = {408, 425, 429}


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        # A redirect could point anywhere (including internal addresses); it is reported, never followed.
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


def deliver(payload: WebhookPayload, *, idempotency_key: str) -> dict[str, Any]:
    """POST the payload; return status and timing, or raise TransientError / PermanentError."""
    body = json.dumps(payload.payload).encode()
    headers = {
        **payload.headers,
        "Content-Type": "application/json",
        "Idempotency-Key": idempotency_key,
        "User-Agent": USER_AGENT,
    }
    request = urllib.request.Request(str(payload.url), data=body, headers=headers, method="POST")  # noqa: S310
    started = time.monotonic()
    try:
        with _OPENER.open(request, timeout=payload.timeout_seconds) as response:
            received = len(response.read(1 << 20))
            status = response.status
    except urllib.error.HTTPError as exc:
        status = exc.code
        exc.close()
        if status >= 500 or status in _RETRYABLE_4XX:
            raise TransientError(f"webhook {payload.url} answered {status}; will retry") from None
        if 300 <= status < 400:
            raise PermanentError(
                f"webhook {payload.url} answered a redirect ({status}); redirects are not followed"
            ) from None
        raise PermanentError(f"webhook {payload.url} rejected the delivery with {status}") from None
    except TimeoutError as exc:
        raise TransientError(f"webhook {payload.url} timed out after {payload.timeout_seconds}s") from exc
    except urllib.error.URLError as exc:
        raise TransientError(f"webhook {payload.url} unreachable: {exc.reason}") from exc
    except ConnectionError as exc:
        raise TransientError(f"webhook {payload.url} connection failed: {exc}") from exc
    return {
        "status": status,
        "response_bytes": received,
        "elapsed_seconds": round(time.monotonic() - started, 4),
    }
