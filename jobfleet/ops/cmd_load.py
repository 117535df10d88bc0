"""``jobfleet load`` (``make load``): a realistic, bounded mix of jobs against the API so the dashboards and alerts
have something to show — webhooks to a local receiver that fails some requests (503s are retried, 400s dead-letter),
reports of various sizes, emails to a local SMTP sink when aiosmtpd is installed, and a few invalid requests. It
talks to loopback only, runs for ``--seconds`` at ``--rate`` requests per second and stops by itself."""

from __future__ import annotations

import argparse
import contextlib
import http.server
import json
import random
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from jobfleet.core.net import is_loopback_host
from jobfleet.core.settings import Settings
from jobfleet.ops.embedded_redis import port_open

# What the receiver answers, by share of requests: most succeed, some are retried, a few dead-letter.
WEBHOOK_STATUSES = ((0.82, 200), (0.12, 503), (0.06, 400))
MAX_REQUESTS = 100_000
MIX = (("webhook", 0.5), ("report", 0.3), ("email", 0.15), ("invalid", 0.05))


def is_loopback_url(url: str) -> bool:
    """True when ``url`` points at this machine (the only place load may go)."""
    return is_loopback_host(urllib.parse.urlsplit(url).hostname or "")


@dataclass
class Tally:
    """What happened, counted under one lock."""

    sent: Counter[str] = field(default_factory=Counter)
    responses: Counter[str] = field(default_factory=Counter)
    webhook_answers: Counter[int] = field(default_factory=Counter)
    emails_received: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-serialisable summary."""
        with self.lock:
            return {
                "sent": dict(self.sent),
                "responses": dict(self.responses),
                "webhook_answers": {str(k): v for k, v in sorted(self.webhook_answers.items())},
                "emails_received": self.emails_received,
            }


@contextlib.contextmanager
def webhook_receiver(tally: Tally, rng: random.Random) -> Iterator[str]:
    """A loopback HTTP server answering webhooks per WEBHOOK_STATUSES; yields its URL."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            with tally.lock:
                roll = rng.random()
                status = next((s for share, s in _cumulative(WEBHOOK_STATUSES) if roll < share), 200)
                tally.webhook_answers[status] += 1
            time.sleep(rng.uniform(0.0, 0.05))
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, name="load-receiver", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    finally:
        server.shutdown()
        server.server_close()


def _cumulative(shares: tuple[tuple[float, int], ...]) -> list[tuple[float, int]]:
    total, out = 0.0, []
    for share, value in shares:
        total += share
        out.append((total, value))
    return out


@contextlib.contextmanager
def smtp_sink(settings: Settings, tally: Tally) -> Iterator[str]:
    """An aiosmtpd sink on JOBFLEET_SMTP_HOST:PORT when possible; yields why emails are sent or skipped."""
    if not is_loopback_url(f"smtp://{settings.smtp_host}"):
        yield f"skipped: JOBFLEET_SMTP_HOST={settings.smtp_host} is not loopback"
        return
    if port_open(settings.smtp_host, settings.smtp_port):
        yield f"sent to the SMTP server already on {settings.smtp_host}:{settings.smtp_port}"
        return
    try:
        from aiosmtpd.controller import Controller  # noqa: PLC0415 - a dev dependency, optional here
    except ImportError:
        yield "skipped: aiosmtpd is not installed (pip install aiosmtpd)"
        return

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            with tally.lock:
                tally.emails_received += 1
            return "250 OK"

    controller = Controller(Handler(), hostname=settings.smtp_host, port=settings.smtp_port)
    try:
        controller.start()
    except (OSError, RuntimeError) as exc:
        yield f"skipped: cannot listen on {settings.smtp_host}:{settings.smtp_port} ({exc}); set JOBFLEET_SMTP_PORT"
        return
    try:
        yield f"sink on {settings.smtp_host}:{settings.smtp_port} (workers must use the same JOBFLEET_SMTP_PORT)"
    finally:
        controller.stop()


def _request(api: str, kind: str, hook: str, rng: random.Random) -> tuple[str, dict[str, Any]]:
    if kind == "webhook":
        return "webhook", {"url": hook, "payload": {"event": "load", "n": rng.randrange(10**6)}, "timeout_seconds": 5}
    if kind == "report":
        return "report", {"rows": rng.choice([100, 500, 2000, 5000]), "format": rng.choice(["csv", "json"])}
    if kind == "email":
        return "email", {"to": "ops@example.test", "subject": "load test", "body": "generated by jobfleet load"}
    return "report", {"rows": -1}  # invalid: a 422 for the API error panels


def _post(api: str, job_type: str, body: dict[str, Any]) -> str:
    request = urllib.request.Request(  # noqa: S310 - loopback checked by the caller
        f"{api}/v1/jobs/{job_type}",
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback checked by the caller
            return str(response.status)
    except urllib.error.HTTPError as exc:
        return str(exc.code)
    except (urllib.error.URLError, OSError) as exc:
        return type(exc).__name__


def _progress(elapsed: float, total: float, tally: Tally) -> None:
    width = 30
    filled = min(width, int(width * elapsed / max(total, 0.001)))
    with tally.lock:
        sent, accepted = sum(tally.sent.values()), tally.responses.get("202", 0)
    sys.stderr.write(
        f"\rload [{'#' * filled}{'.' * (width - filled)}] {elapsed:4.0f}/{total:.0f}s sent {sent} 202 {accepted}"
    )
    sys.stderr.flush()


def run_load(
    settings: Settings,
    api: str,
    *,
    seconds: float,
    rate: float,
    linger: float = 5.0,
    seed: int | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Send about ``seconds * rate`` requests, keep the receiver up ``linger`` s for retries; return the tally."""
    if not is_loopback_url(api):
        raise ValueError(f"load only goes to loopback; {api!r} is not")
    if seconds <= 0 or rate <= 0 or seconds * rate > MAX_REQUESTS:
        raise ValueError(f"need seconds > 0, rate > 0 and seconds x rate <= {MAX_REQUESTS}")
    rng = random.Random(seed)
    tally = Tally()
    kinds = [kind for kind, _ in MIX]
    weights = [weight for _, weight in MIX]
    with webhook_receiver(tally, rng) as hook, smtp_sink(settings, tally) as email_note:
        if email_note.startswith("skipped"):
            weights[kinds.index("email")] = 0.0
        started = time.monotonic()
        total = max(1, int(seconds * rate))
        with ThreadPoolExecutor(max_workers=4, thread_name_prefix="load") as pool:
            for n in range(total):
                # Pace by schedule (not by sleeping a fixed step) so slow responses do not lower the rate.
                delay = started + n / rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                job_type, body = _request(api, rng.choices(kinds, weights)[0], hook, rng)
                with tally.lock:
                    tally.sent[job_type if body.get("rows") != -1 else "invalid"] += 1
                pool.submit(_record, tally, api, job_type, body)
                if progress and n % max(1, int(rate)) == 0:
                    _progress(time.monotonic() - started, seconds, tally)
        if progress:
            _progress(seconds, seconds, tally)
            sys.stderr.write("\n")
        time.sleep(linger)
    return {**tally.as_dict(), "email": email_note, "seconds": round(time.monotonic() - started, 1)}


def _record(tally: Tally, api: str, job_type: str, body: dict[str, Any]) -> None:
    status = _post(api, job_type, body)
    with tally.lock:
        tally.responses[status] += 1


def cmd_load(settings: Settings, args: argparse.Namespace) -> int:
    """Drive load against the API; exit 1 when not a single job was accepted."""
    api = args.api or f"http://127.0.0.1:{settings.api_port}"
    try:
        result = run_load(
            settings,
            api,
            seconds=args.seconds,
            rate=args.rate,
            linger=args.linger,
            seed=args.seed,
            progress=not args.json,
        )
    except ValueError as exc:
        print(f"jobfleet: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"sent {sum(result['sent'].values())} in {result['seconds']}s: {result['sent']}")
        print(f"API answered: {result['responses']}")
        print(f"webhook receiver answered: {result['webhook_answers']}; emails: {result['email']}")
    return 0 if result["responses"].get("202") else 1


def register(sub: Any) -> None:
    """Add ``load`` to the ``jobfleet`` parser."""
    p = sub.add_parser("load", help="a bounded, realistic job mix against the local API (make load)")
    p.add_argument("--seconds", type=float, default=60.0, help="how long to send (default 60)")
    p.add_argument("--rate", type=float, default=5.0, help="requests per second (default 5)")
    p.add_argument("--linger", type=float, default=5.0, help="keep the webhook receiver up this long after")
    p.add_argument("--api", help="API base URL (loopback only; default from JOBFLEET_API_PORT)")
    p.add_argument("--seed", type=int, help="make the mix reproducible")
    p.add_argument("--json", action="store_true", help="machine-readable summary, no progress bar")
    p.set_defaults(func=cmd_load)
