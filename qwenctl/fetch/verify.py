"""Is a blob what the hub says it is? The hub's hash of each file, qwenctl's record of the blobs that matched it.

A blob is named by its hash in the cache (the LFS SHA-256, or the git blob SHA-1 of a small file), so
checking it means hashing it. The record (``verified.json`` in qwenctl's data folder) remembers every blob
that matched, with its size and mtime, so an unchanged blob is not hashed again; a changed one is.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qwenctl import files
from qwenctl.errors import ExitCode, QwenctlError

_HASH_BLOCK = 8 * 1024 * 1024
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Remote:
    """A file as the hub records it."""

    filename: str
    size: int
    etag: str  # the blob's name in the cache: LFS sha256, or the git blob sha1 for small files

    @property
    def algorithm(self) -> str:
        return "sha256" if len(self.etag) == 64 else "git-sha1"


def _record_path() -> Path:
    import platformdirs

    return platformdirs.user_data_path("qwenctl") / "verified.json"


def read_records() -> dict:
    try:
        return json.loads(_record_path().read_text())
    except (OSError, ValueError):
        return {}


def _write_records(records: dict) -> None:
    """Best effort: the record only spares a later hash (a blob it does not name, or names with another size or
    mtime, is hashed again), so a full disk or a read-only data folder costs that, not the download just checked."""
    path = _record_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        files.write_text(path, json.dumps(records, indent=1, sort_keys=True))
    except OSError as e:
        log.info("verified blobs not recorded in %s: %s", path, e)


def _stamp(blob: Path) -> dict:
    st = blob.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def record_verified(blob: Path) -> None:
    """Note that `blob` matched its hash, with its size and mtime so a later change is seen."""
    records = read_records()
    records[str(blob.resolve())] = {**_stamp(blob), "hash": blob.name, "verified_at": int(time.time())}
    _write_records(records)


def is_recorded_verified(blob: Path, records: dict | None = None) -> bool:
    """Whether `blob` was verified and has not changed since (no rehashing)."""
    rec = (records if records is not None else read_records()).get(str(blob.resolve()))
    if not rec:
        return False
    try:
        return rec.get("hash") == blob.name and {k: rec.get(k) for k in ("size", "mtime_ns")} == _stamp(blob)
    except OSError:
        return False


def forget_verified(blobs: list[Path]) -> None:
    records = read_records()
    keys = {str(b.resolve()) for b in blobs}
    if keys & records.keys():
        _write_records({k: v for k, v in records.items() if k not in keys})


def new_hash(algorithm: str, size: int) -> Any:
    """An empty hash of the hub's kind for a file of `size` bytes: SHA-256 (LFS), or git's blob SHA-1,
    whose header holds the size."""
    return hashlib.sha256() if algorithm == "sha256" else hashlib.sha1(b"blob %d\0" % size)


def hash_file(path: Path, algorithm: str) -> str:
    """SHA-256 of an LFS file, or the git blob SHA-1 of a small one (what the hub records)."""
    h = new_hash(algorithm, path.stat().st_size)
    buf = bytearray(_HASH_BLOCK)
    view = memoryview(buf)
    with path.open("rb", buffering=0) as f:
        while n := f.readinto(buf):
            h.update(view[:n])
    return h.hexdigest()


def integrity_error(remote: Remote, actual: str | None, repo: str) -> QwenctlError:
    got = f"got {actual[:12]}…" if actual else "the download ended early"
    return QwenctlError(
        f"{repo}:{remote.filename} does not match the hub's {remote.algorithm} ({remote.etag[:12]}…, {got}); the bad copy was deleted",
        hint="run the pull again; if it repeats, the mirror or a proxy is serving a bad file",
        code=ExitCode.INTEGRITY,
    )


def ensure_verified(repo: str, storage: Path, remote: Remote, delete: bool = True) -> bool:
    """Check a blob already in the cache (put there by anyone); delete it if it is bad (unless `delete` is
    False: then it stays, and the error says so, for the caller to ask before a fresh copy replaces it)."""
    blob = storage / "blobs" / remote.etag
    if is_recorded_verified(blob):
        return True
    actual = hash_file(blob, remote.algorithm)
    if actual == remote.etag:
        record_verified(blob)
        return True
    if not delete:
        raise QwenctlError(
            f"the cached {repo}:{remote.filename} does not match the hub's {remote.algorithm} "
            f"({remote.etag[:12]}…, got {actual[:12]}…): it is damaged",
            hint=f"a fresh download replaces it: qwenctl pull {repo}:{remote.filename}", code=ExitCode.INTEGRITY)
    delete_blob(storage, blob)
    raise integrity_error(remote, actual, repo)


def delete_blob(storage: Path, blob: Path) -> None:
    """Remove a blob and every snapshot link to it."""
    snaps = storage / "snapshots"
    if snaps.exists():
        for link in snaps.rglob("*"):
            if link.is_symlink() and Path(os.path.realpath(link)) == Path(os.path.realpath(blob)):
                link.unlink()
    blob.unlink(missing_ok=True)
    forget_verified([blob])
