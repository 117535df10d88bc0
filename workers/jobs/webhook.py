"""Deliver a webhook: POST JSON with the job's Idempotency-Key; classify the outcome for the retry policy."""

from __future__ import annotations

import http.client
import json
import time
from typing import Any

from jobfleet.core.errors import PermanentError, TransientError
from jobfleet.core.payloads import WebhookPayload
from jobfleet.workers.jobs.ssrf import DestinationPolicy, connection, resolve

USER_AGENT = "jobfleet-webhook/0.1"
_RETRYABLE_4XX = {408, 425, 429}


def deliver(
    payload: WebhookPayload, *, idempotency_key: str, destinations: DestinationPolicy | None = None
) -> dict[str, Any]:
    """POST the payload to an allowed destination (default policy: any public address); return status and
    timing, or raise TransientError / PermanentError (a refused destination is permanent)."""
    body = json.dumps(payload.payload).encode()
    headers = {
        **payload.headers,
        "Content-Type": "application/json",
        "Idempotency-Key": idempotency_key,
        "User-Agent": USER_AGENT,
    }
    target = resolve(str(payload.url), destinations or DestinationPolicy())
    conn = connection(target, timeout=payload.timeout_seconds)
    started = time.monotonic()
    try:
        conn.request("POST", target.path, body=body, headers=headers)
        with conn.getresponse() as response:
            status = response.status
            received = len(response.read(1 << 20))
    except TimeoutError as exc:
        raise TransientError(f"webhook {payload.url} timed out after {payload.timeout_seconds}s") from exc
    except (OSError, http.client.HTTPException) as exc:
        raise TransientError(f"webhook {payload.url} unreachable: {type(exc).__name__}: {exc}") from exc
    finally:
        conn.close()
    if status >= 500 or status in _RETRYABLE_4XX:
        raise TransientError(f"webhook {payload.url} answered {status}; will retry")
    if 300 <= status < 400:
        # A redirect could point anywhere (including internal addresses): it is reported, never followed.
        raise PermanentError(f"webhook {payload.url} answered a redirect ({status}); redirects are not followed")
    if status >= 400:
        raise PermanentError(f"webhook {payload.url} rejected the delivery with {status}")
    return {
        "status": status,
        "response_bytes": received,
        "elapsed_seconds": round(time.monotonic() - started, 4),
    }
