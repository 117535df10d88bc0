"""The Dramatiq internals jobfleet relies on (docs/ARCHITECTURE.md, "Dramatiq internals we rely on") are pinned:
an upgrade that changes one of these files fails here first, so nobody ships a silent change of behaviour. After
reading the upstream diff and checking each reliance still holds, update the hash (and the list, if it changed)."""

from __future__ import annotations

import hashlib
import importlib

import dramatiq

PINNED_VERSION = "2.2.1"
# What each file gives jobfleet, and its sha256 in the pinned release.
PINNED = {
    # Worker.consumers and Worker._add_consumer (the consumer watchdog); WorkerThread.process_message acks or nacks
    # from the worker thread; ConsumerThread holds messages with an "eta" option in memory (the consumer strips it);
    # consumers exist only for declared queues and delay queues (jobfleet declares no delay queue).
    "dramatiq.worker": "26a720b65abec04666a3ab5f6b7ff01f02ddff2d7ae93bbe82267e99a0e57948",
    # Broker.__init__ adds each middleware through add_middleware (the Retries refusal); emit_before/emit_after.
    "dramatiq.broker": "bee86afdd06b238cf5c141b9b1beafff4b2ffee0221dfb65a5f0a974eec152c3",
    # Message.encode/decode (the stored message) and Message.copy.
    "dramatiq.message": "0e56d43dd8af1172aaf8779f87952bd1aca9555f5425fac0bb102fbc7deaa93c",
    # SIGTERM: worker.stop(timeout) then after_worker_shutdown (the drain marking); a second SIGTERM kills.
    "dramatiq.cli": "176704d8646ef2e9a150c148d951256c6eee59d800b4d6b4fc602a5a3b1e8991",
    # The default middleware jobfleet keeps, placed before JobLifecycle: their after hooks read message.failed.
    "dramatiq.middleware.pipelines": "9fd31c0104140f7e610ba16b04428eb482e069afc09b3cc1163c146fca670143",
    "dramatiq.middleware.callbacks": "6e5c4609ac2d23dff6d534229f1d0eb6e97bb17c25cac7ab58eb833f52b6e09f",
    "dramatiq.middleware.age_limit": "362660a1637f6d43630c6948fba8ac155ea06f28c8b861b2f62d9848e58ab7ca",
    "dramatiq.middleware.shutdown": "7b0148d56d6de83b8ff35ad7cf85b0cb34f310981a79ccc37dc6869ae79cfab2",
    # The retry vocabulary JobLifecycle honours instead of this middleware (options and their defaults).
    "dramatiq.middleware.retries": "633c6739e95f3930b835258ab62d9d24be17b3416670d9e060fcf1c17513993d",
    # Results stores an exception in after_nack when message.failed (a dead-lettered job raises ResultFailure).
    "dramatiq.results.middleware": "ab4de82887041310685a41ac1c8b82558939cf0d2f1b852f30bc78b158a4fff8",
}


def test_dramatiq_is_the_pinned_release() -> None:
    assert dramatiq.__version__ == PINNED_VERSION


def test_the_dramatiq_sources_jobfleet_relies_on_are_unchanged() -> None:
    changed = {}
    for name, digest in PINNED.items():
        path = importlib.import_module(name).__file__
        assert path is not None
        with open(path, "rb") as source:
            actual = hashlib.sha256(source.read()).hexdigest()
        if actual != digest:
            changed[name] = actual
    assert changed == {}, "Dramatiq internals changed: re-check docs/ARCHITECTURE.md, then update the pins"
