"""Request payload models per job type: the API validates with them, actors re-validate with them."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, field_validator

_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,128}$")
# No spaces or control characters, spelled out (not \s) so the OpenAPI pattern means the same in every dialect.
_EMAIL = re.compile(r"^[^@\x00-\x20\x7f<>,;]{1,64}@[A-Za-z0-9.-]{1,253}$")
_RESERVED_HEADERS = {"content-type", "content-length", "host", "idempotency-key", "transfer-encoding"}


class JobPayload(BaseModel):
    """Base of every payload: unknown fields are rejected, values are never coerced silently."""

    model_config = ConfigDict(extra="forbid", strict=False, frozen=True)


class WebhookPayload(JobPayload):
    """POST ``payload`` as JSON to ``url``; the job's idempotency key goes in the Idempotency-Key header."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "url": "https://example.com/hooks/order-paid",
                    "payload": {"order_id": 42, "status": "paid"},
                    "headers": {"X-Source": "billing"},
                    "timeout_seconds": 10,
                }
            ]
        }
    )

    url: AnyHttpUrl = Field(
        description="http(s) URL to POST to", json_schema_extra={"pattern": "^[Hh][Tt][Tt][Pp][Ss]?://[^/?#@]+"}
    )
    payload: dict[str, Any] | list[Any] = Field(description="JSON body sent to the URL")
    headers: dict[str, str] = Field(
        default_factory=dict,
        max_length=32,
        description="Extra request headers",
        json_schema_extra={
            "propertyNames": {"pattern": _HEADER_NAME.pattern},
            "additionalProperties": {"type": "string", "maxLength": 4096, "pattern": "^[^\r\n]*$"},
        },
    )
    timeout_seconds: float = Field(default=10.0, gt=0, le=60, description="Connect + read timeout")

    @field_validator("headers")
    @classmethod
    def _header_names(cls, value: dict[str, str]) -> dict[str, str]:
        for name, header_value in value.items():
            if not _HEADER_NAME.match(name):
                raise ValueError(f"header name {name!r} is not a valid HTTP token")
            if name.lower() in _RESERVED_HEADERS:
                raise ValueError(f"header {name!r} is set by jobfleet and cannot be overridden")
            if "\r" in header_value or "\n" in header_value or len(header_value) > 4096:
                raise ValueError(f"header {name!r} has a line break or is longer than 4096 characters")
        return value


class ReportPayload(JobPayload):
    """Build a sales report (CSV or JSON) over a generated order data set of ``rows`` rows."""

    model_config = ConfigDict(json_schema_extra={"examples": [{}, {"rows": 5000, "format": "json"}]})

    rows: int = Field(default=1000, ge=1, le=1_000_000, description="Rows of the order data set")
    format: Literal["csv", "json"] = Field(default="csv", description="Artifact format")
    seed: int = Field(default=0, ge=0, le=2**31, description="Data set seed (same seed, same report)")


class EmailPayload(JobPayload):
    """Send a plain-text email through the configured SMTP server."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"to": "oncall@example.com", "subject": "Nightly report", "body": "All green."}]
        }
    )

    to: str = Field(max_length=320, description="Recipient address", json_schema_extra={"pattern": _EMAIL.pattern})
    subject: str = Field(
        min_length=1, max_length=998, description="Subject line", json_schema_extra={"pattern": "^[^\r\n]*$"}
    )
    body: str = Field(max_length=256 * 1024, description="Plain-text body")

    @field_validator("to")
    @classmethod
    def _address(cls, value: str) -> str:
        if not _EMAIL.match(value):
            raise ValueError("must be a single email address like name@example.com")
        return value

    @field_validator("subject")
    @classmethod
    def _one_line(cls, value: str) -> str:
        if "\r" in value or "\n" in value:
            raise ValueError("must be a single line (no CR or LF)")
        return value
