"""ReplyProxy: a TCP proxy in front of a real redis-server that can lose, delay or withhold Redis's replies, and the
small RESP2/RESP3 framer it counts requests and replies with (so "the next reply" is one complete frame, pipelined
or not)."""

from __future__ import annotations

import contextlib
import queue
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

_LINE = frozenset(b"+-:_#,(")  # one line: simple string, error, integer, null, boolean, double, big number
_BLOB = frozenset(b"$!=")  # length-prefixed: bulk string, blob error, verbatim string
_AGGREGATE = {ord("*"): 1, ord("~"): 1, ord(">"): 1, ord("%"): 2, ord("|"): 2}  # nested elements per count
PUSH = ord(">")  # RESP3 out-of-band data: not the reply to any request


class RespError(ValueError):
    """The bytes are not RESP."""


class RespParser:
    """Incremental RESP framer: ``feed(data)`` returns the complete top-level frames as (type byte, raw bytes).

    It keeps its place across feeds (how many elements each open aggregate still misses), so a large reply arriving
    in many chunks is scanned once. An attribute (``|``) prefixes the value it describes: its 2n entries plus that
    value form one element. ``inline=True`` also accepts inline commands (``PING\\r\\n``), which clients may send.
    Streamed strings (``$?``) are not supported: Redis never sends them.
    """

    def __init__(self, *, inline: bool = False) -> None:
        self._buf = bytearray()
        self._pos = 0  # where the next element of the current frame starts
        self._missing: list[int] = []  # per open aggregate, elements still to come
        self._kind = 0  # type byte of the current frame
        self._inline = inline

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        self._buf += data
        frames: list[tuple[int, bytes]] = []
        while (finished := self._step()) is not None:
            if finished and self._close_aggregates():
                frames.append((self._kind, bytes(self._buf[: self._pos])))
                del self._buf[: self._pos]
                self._pos = 0
        return frames

    def _step(self) -> bool | None:
        """Consume one element header: True if an element is complete, False if an aggregate opened, None if the
        buffer ends first."""
        buf, pos = self._buf, self._pos
        eol = buf.find(b"\r\n", pos)
        if eol < 0:
            return None
        kind, end = buf[pos], eol + 2
        if not self._missing:
            self._kind = kind
        if kind in _BLOB:
            size = self._int(pos, eol)
            if size >= 0:
                end += size + 2
                if len(buf) < end:
                    return None
                if buf[end - 2 : end] != b"\r\n":
                    raise RespError(f"bulk of {size} bytes not followed by CRLF")
        elif kind in _AGGREGATE:
            count = self._int(pos, eol) * _AGGREGATE[kind] + (kind == ord("|"))
            if count > 0:
                self._missing.append(count)
                self._pos = end
                return False
        elif kind not in _LINE:
            if not self._inline or self._missing:
                raise RespError(f"not RESP: {bytes(buf[pos : pos + 20])!r}")
            if eol == pos:  # an empty inline line: Redis ignores it and sends no reply
                del buf[:end]
                return False
        self._pos = end
        return True

    def _int(self, pos: int, eol: int) -> int:
        try:
            return int(self._buf[pos + 1 : eol])
        except ValueError:
            raise RespError(f"bad length {bytes(self._buf[pos:eol])!r}") from None

    def _close_aggregates(self) -> bool:
        """Count one finished element against the open aggregates; True when it completed the top-level frame."""
        while self._missing:
            self._missing[-1] -= 1
            if self._missing[-1]:
                return False
            self._missing.pop()
        return True


@dataclass
class _Link:
    """One client connection and its own connection to Redis."""

    client: socket.socket
    upstream: socket.socket
    requests: int = 0  # request frames forwarded to Redis
    replies: int = 0  # reply frames read from Redis (push frames excluded)
    drop_at: int | None = None  # index of the request whose reply is swallowed
    lost_bytes: bool = False  # the blackhole ate something: this RESP stream is broken
    outbox: queue.Queue[tuple[float, bytes | None]] = field(default_factory=queue.Queue)  # (due, data | close)
    closed: threading.Event = field(default_factory=threading.Event)


class ReplyProxy:
    """A TCP proxy on a free 127.0.0.1 port in front of ``upstream_port`` (see the module doc); ``start()``/``stop()``
    or ``with``. Faults apply to every connection through it, including connections opened later."""

    def __init__(self, upstream_port: int, upstream_host: str = "127.0.0.1") -> None:
        self.upstream = (upstream_host, upstream_port)
        self.dropped = 0  # replies swallowed so far
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._links: list[_Link] = []
        self._threads: list[threading.Thread] = []  # one link's pumps
        self._acceptor: threading.Thread | None = None
        self._drop_armed = False
        self._drop_matching: bytes | None = None
        self._delay = 0.0
        self._blackholed = False

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def drop_next_reply(self, matching: bytes | None = None) -> None:
        """The next request (with ``matching`` in its bytes, if given) reaches Redis; its reply is swallowed and that
        connection closed, so the client sees a connection error although the command ran. One-shot."""
        with self._lock:
            self._drop_armed, self._drop_matching = True, matching

    def delay_replies(self, seconds: float) -> None:
        """Hold each reply read from Redis from now on for ``seconds`` before passing it on (0: no delay)."""
        self._delay = seconds

    def blackhole(self, on: bool = True) -> None:
        """On: accept connections but forward nothing either way (requests never reach Redis, replies are lost).
        Off: forward again, closing the connections that lost bytes (their RESP stream is broken)."""
        self._blackholed = on
        if not on:
            with self._lock:
                broken = [link for link in self._links if link.lost_bytes]
            for link in broken:
                self._close(link)

    def reset(self) -> None:
        """No faults: forget an armed or pending drop, no delay, no blackhole."""
        with self._lock:
            self._drop_armed, self._drop_matching = False, None
            for link in self._links:
                link.drop_at = None
        self.delay_replies(0)
        self.blackhole(False)

    def start(self) -> ReplyProxy:
        self._listener.settimeout(0.05)
        self._acceptor = self._spawn(self._accept)
        return self

    def stop(self) -> None:
        """Close the listener and every connection; fail if a proxy thread does not end."""
        self._stopping.set()
        if self._acceptor is not None:  # first: then no link appears after this
            self._acceptor.join(timeout=5)
        self._listener.close()
        for link in self._links:
            self._close(link)
        for thread in self._threads:
            thread.join(timeout=5)
        alive = [t.name for t in [*self._threads, self._acceptor] if t is not None and t.is_alive()]
        if alive:
            raise RuntimeError(f"ReplyProxy threads did not stop: {alive}")

    def __enter__(self) -> ReplyProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _spawn(self, target: Any, *args: Any) -> threading.Thread:
        thread = threading.Thread(target=target, args=args, name=f"reply-proxy{target.__name__}", daemon=True)
        thread.start()
        return thread

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            client.settimeout(None)
            try:
                upstream = socket.create_connection(self.upstream, timeout=5)
            except OSError:  # Redis is down: so is the proxy, for this client
                client.close()
                continue
            upstream.settimeout(None)
            link = _Link(client, upstream)
            with self._lock:
                self._links = [known for known in self._links if not known.closed.is_set()] + [link]
                self._threads = [t for t in self._threads if t.is_alive()]
            for pump in (self._pump_requests, self._pump_replies, self._deliver):
                self._threads.append(self._spawn(pump, link))

    def _pump_requests(self, link: _Link) -> None:
        parser = RespParser(inline=True)
        while data := _recv(link.client):
            if self._blackholed:
                link.lost_bytes = True
                continue
            with self._lock:  # count (and mark the drop) before Redis can possibly answer
                for _, frame in parser.feed(data):
                    wanted = self._drop_matching is None or self._drop_matching in frame
                    if self._drop_armed and link.drop_at is None and wanted:
                        link.drop_at, self._drop_armed = link.requests, False
                    link.requests += 1
            try:
                link.upstream.sendall(data)
            except OSError:
                self._close(link)
                return
        with contextlib.suppress(OSError):  # the client is done sending: so are we, replies still flow back
            link.upstream.shutdown(socket.SHUT_WR)

    def _pump_replies(self, link: _Link) -> None:
        parser = RespParser()
        while data := _recv(link.upstream):
            if self._blackholed:
                link.lost_bytes = True
                continue
            due, passed = time.monotonic() + self._delay, []
            with self._lock:
                for kind, frame in parser.feed(data):
                    if kind != PUSH and link.replies == link.drop_at:
                        self.dropped += 1
                        link.outbox.put((due, b"".join(passed)))
                        link.outbox.put((due, None))
                        return
                    if kind != PUSH:
                        link.replies += 1
                    passed.append(frame)
            link.outbox.put((due, b"".join(passed)))
        link.outbox.put((time.monotonic() + self._delay, None))  # Redis closed: pass on what it sent, then close

    def _deliver(self, link: _Link) -> None:
        while True:
            due, data = link.outbox.get()
            if link.closed.wait(max(0.0, due - time.monotonic())) or data is None:
                break
            try:
                link.client.sendall(data)
            except OSError:
                break
        self._close(link)

    def _close(self, link: _Link) -> None:
        link.closed.set()
        for sock in (link.client, link.upstream):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        link.outbox.put((0.0, None))


def _recv(sock: socket.socket) -> bytes:
    """The next bytes from ``sock``; b"" once it is closed, whichever side closed it."""
    try:
        return sock.recv(65536)
    except OSError:
        return b""
