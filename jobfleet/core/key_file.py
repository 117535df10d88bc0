"""The API's view of JOBFLEET_API_KEYS_FILE: loaded at start (a bad file stops the API), then reloaded when it changes
so issued, revoked and rotated keys take effect without a restart. The file is looked at at most once a second per
process; a file that no longer loads keeps the last good keys and is reported once per change, as an ERROR."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable

from jobfleet.core.api_keys import KeyRing, Principal, load_keys
from jobfleet.core.errors import ConfigError

log = logging.getLogger("jobfleet.auth")

CHECK_INTERVAL_SECONDS = 1.0
_Signature = tuple[int, int, int] | None  # (inode, size, mtime ns); None: the file cannot be stat'ed


def _signature(path: str) -> _Signature:
    try:
        st = os.stat(path)
    except OSError:
        return None
    # The inode too: `jobfleet keys` replaces the file (os.replace), which a same-size rewrite in one tick hides.
    return st.st_ino, st.st_size, st.st_mtime_ns


class KeyFile:
    """The keys of one keys file, as of its last good version."""

    def __init__(
        self,
        path: str,
        *,
        check_interval: float = CHECK_INTERVAL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = path
        self._interval = check_interval
        self._clock = clock
        self._signature = _signature(path)
        self._ring = load_keys(path)  # at start a broken file is fatal: there are no last good keys to keep
        self._checked = clock()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._ring)

    def authenticate(self, token: str) -> Principal | None:
        """The principal whose key is ``token`` under the current keys file (reloaded if it changed), or None."""
        return self.current().authenticate(token)

    def current(self) -> KeyRing:
        """The keys as of the file's last good version, looking at the file when the last look is a second old."""
        if self._clock() - self._checked >= self._interval and self._lock.acquire(blocking=False):
            # One thread looks while the others go on with the keys they have: a request never waits on the disk.
            try:
                self._check()
            finally:
                self._lock.release()
        return self._ring

    def _check(self) -> None:
        self._checked = self._clock()
        signature = _signature(self.path)
        if signature == self._signature:
            return
        # Taken before the read: a write still under way changes the signature again and is read at the next look.
        self._signature = signature
        try:
            ring = load_keys(self.path)
        except ConfigError as exc:
            log.error("%s; keeping the last good keys (%d) until the file is fixed", exc, len(self._ring))
            return
        self._ring = ring
        log.info("reloaded JOBFLEET_API_KEYS_FILE=%r: %d keys", self.path, len(ring))
