"""One blob from the hub into the cache: resume, hash while writing, fsync, move into place.

Why not ``hf_hub_download``? Measured with huggingface_hub 2.4.0 against the fake hub in
tests/fakehub.py:

- it does not check the content against the hub's SHA-256 (a corrupted body of the right size is
  accepted into the cache);
- a process killed mid-download leaves ``<etag>.<random>.incomplete`` behind, which no later call
  reuses: the next run starts from byte 0 (and the orphan stays on disk).

So the blob's life is qwenctl's: a stable ``blobs/<sha256>.incomplete`` that a later run resumes, a
SHA-256 computed while the bytes arrive, and the blob moved into place only once it matches. The GET
itself goes through huggingface_hub (``http_stream_backoff`` on its shared session: its redirects,
auth headers, proxies, timeouts and 408/429 back-off), with a Range header to resume; a connection
dropped mid-body is resumed here, as ``http_get`` does (5 tries without progress, 1 s apart). Nothing
in huggingface_hub or httpcore is changed for the process: only the download's own connection reads
1 MiB per socket read while its body streams (``larger_reads``).
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from qwenctl import files
from qwenctl.fetch.hub import HubSettings, naming
from qwenctl.fetch.verify import Remote, integrity_error, new_hash, record_verified

log = logging.getLogger("qwenctl.fetch")

_HASH_BATCH = 4 * 1024 * 1024
_FLUSH_EVERY = 128 * 1024 * 1024
# write(2) to the page cache in pieces this size: one 1 MiB write() ran at 460-490 MB/s on
# the 2-core VM, the same MiB as 64 KiB pieces at 2,700-3,000 MB/s (measured, 1 GB file).
_WRITE_BYTES = 64 * 1024
_READ_BYTES = 1024 * 1024  # per socket read of a download's body (larger_reads)
# a dropped body is resumed this many times without a byte of progress, this far apart (http_get's figures)
_RETRIES = 5
_RETRY_WAIT_S = 1.0


class _Hasher(threading.Thread):
    """Hashes the bytes of a download as they arrive, on a second thread.

    The writer hands over batches of about `_HASH_BATCH` bytes (one GIL hand-off per
    batch, not per socket read); hashlib releases the GIL, so hashing overlaps the
    network instead of re-reading the file at the end. Bytes already on disk from an
    earlier run are hashed first, from the file. Every `_FLUSH_EVERY` bytes it also asks
    the OS to write the file out, so the fsync before the blob is moved into place does
    not wait for a whole model's writeback.
    """

    _RESTART = object()

    def __init__(self, path: Path, algorithm: str, total: int, resume_from: int) -> None:
        import queue

        super().__init__(name="qwenctl-hash", daemon=True)
        self.path, self.algorithm, self.total, self.resume_from = path, algorithm, total, resume_from
        self.batches: queue.SimpleQueue = queue.SimpleQueue()
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self.digest: str | None = None
        self.error: OSError | None = None

    def _new(self) -> Any:
        return new_hash(self.algorithm, self.total)

    def feed(self, data: bytes) -> None:
        self._pending.append(data)
        self._pending_bytes += len(data)
        if self._pending_bytes >= _HASH_BATCH:
            self.batches.put(self._pending)
            self._pending, self._pending_bytes = [], 0

    def restart(self) -> None:
        """The file was truncated to 0 (a server ignored our Range): hash from scratch."""
        self._pending, self._pending_bytes = [], 0
        self.batches.put(self._RESTART)

    def finish(self) -> str | None:
        """The digest of every byte fed, or None when they are not the whole file; re-raises the thread's OSError."""
        if self._pending:
            self.batches.put(self._pending)
        self.batches.put(None)
        self.join()
        if self.error is not None:
            raise self.error
        return self.digest

    def run(self) -> None:
        try:
            self._hash()
        except OSError as e:  # EIO reading the partial back, ENOSPC on a writeback: the writer reports it
            self.error = e if e.filename is not None else OSError(e.errno, e.strerror, str(self.path))
            while self.batches.get() is not None:  # drain, so the writer's finish() returns
                pass

    def _hash(self) -> None:
        h, pos = self._new(), 0
        with self.path.open("rb", buffering=0) as f:
            buf = bytearray(_HASH_BATCH)
            view = memoryview(buf)
            while pos < self.resume_from and (n := f.readinto(view[: min(_HASH_BATCH, self.resume_from - pos)])):
                h.update(view[:n])
                pos += n
            while (batch := self.batches.get()) is not None:
                if batch is self._RESTART:
                    h, pos = self._new(), 0
                    continue
                n = 0
                for data in batch:  # piece by piece: joining would copy every byte once more
                    h.update(data)
                    n += len(data)
                if (pos + n) // _FLUSH_EVERY > pos // _FLUSH_EVERY:
                    os.fdatasync(f.fileno()) if hasattr(os, "fdatasync") else os.fsync(f.fileno())
                pos += n
        self.digest = h.hexdigest() if pos == self.total else None


class _HashingWriter:
    """Where the body goes: writes, reports progress, feeds the hasher.

    Each chunk the response yields is written in `_WRITE_BYTES` pieces (slices of one memoryview,
    no copies), which is several times faster than one large write.
    """

    def __init__(self, f, hasher: _Hasher, on_bytes: Callable[[int], None]) -> None:
        self.f, self.hasher, self.on_bytes = f, hasher, on_bytes
        self.pos = f.tell()

    def write(self, data: bytes) -> int:
        view = memoryview(data)
        for i in range(0, len(view), _WRITE_BYTES):
            self.f.write(view[i : i + _WRITE_BYTES])
        n = len(view)
        self.pos += n
        self.hasher.feed(data)
        self.on_bytes(self.pos)
        return n

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = 0) -> int:
        self.pos = self.f.seek(offset, whence)
        return self.pos

    def truncate(self, size: int | None = None) -> int:
        """Back to 0 when a server ignored our Range and sent the whole file."""
        self.f.flush()
        end = self.f.truncate(size)
        if end != 0:
            raise OSError(f"unexpected truncate to {end}")
        self.hasher.restart()
        self.on_bytes(end)
        return end


def _stream(url: str, writer: _HashingWriter, start: int, size: int, headers: dict[str, str]) -> int:
    """GET `url` into `writer` from byte `start` (a Range request when > 0); returns the bytes the file
    then holds. A dropped connection is resumed from where it stopped (said once, as a warning); a
    server that answers a Range with the whole file (200) starts the file over."""
    import httpx2
    from huggingface_hub import constants
    from huggingface_hub.utils import hf_raise_for_status, http_stream_backoff

    pos, tries, said = start, _RETRIES, False
    while pos != size:
        asked = {**headers, "Range": f"bytes={pos}-"} if pos else headers
        try:
            with http_stream_backoff("GET", url, headers=asked, timeout=constants.HF_HUB_DOWNLOAD_TIMEOUT,
                                     retry_on_exceptions=(), retry_on_status_codes=(408, 429)) as response:
                hf_raise_for_status(response)
                if pos and response.status_code == 200:
                    writer.seek(0)
                    pos = writer.truncate(0)
                undo = larger_reads(response)
                try:  # chunks as the transport reads them: no re-chunking copies, and what arrived is on disk
                    for chunk in response.iter_bytes():
                        writer.write(chunk)
                        pos += len(chunk)
                        tries = _RETRIES
                finally:
                    if undo is not None:
                        undo()
            break
        except (httpx2.ConnectError, httpx2.TimeoutException, httpx2.RemoteProtocolError) as e:
            if tries <= 0:
                raise
            tries -= 1
            if not said:
                said = True
                log.warning("the connection dropped (%s: %s); resuming the download", url, str(e).splitlines()[0] if str(e) else type(e).__name__)
            time.sleep(_RETRY_WAIT_S)
    return pos


def larger_reads(response: Any) -> Callable[[], None] | None:
    """Let this response's connection read up to `_READ_BYTES` per socket read; returns the undo, or None
    where httpx2/httpcore2 are laid out otherwise (then the reads stay at 64 KiB: slower, never wrong).

    httpcore reads 64 KiB at a time (``HTTP11Connection.READ_NUM_BYTES``), and each read is one trip
    through httpcore, h11, httpx and this loop: with 1 MiB reads a pull ran at 920-975 MB/s on the
    2-core VM with fsync left out, with 64 KiB reads at 770-835 (benchmarks/pull_throughput.py's CPU
    path, docs/models.md). Set on this one connection while its body streams, and undone after: no
    other request and no other connection in the process sees it.
    """
    connection = connection_of(response)
    if connection is None:
        return None
    connection.READ_NUM_BYTES = max(connection.READ_NUM_BYTES, _READ_BYTES)
    return lambda: vars(connection).pop("READ_NUM_BYTES", None)


def connection_of(response: Any) -> Any:
    """The HTTP/1.1 connection a streamed response reads from, or None: down the body's stream wrappers
    (httpx2's BoundSyncStream and ResponseStream, httpcore2's PoolByteStream) to the one that holds it."""
    stream = getattr(response, "stream", None)
    for _ in range(8):
        connection = getattr(stream, "_connection", None)
        if isinstance(getattr(connection, "READ_NUM_BYTES", None), int):
            return connection
        stream = getattr(stream, "_stream", None) or getattr(stream, "_httpcore_stream", None)
    return None


def _adopt_orphans(blobs: Path, etag: str, partial: Path) -> None:
    """Resume from the largest partial huggingface_hub >= 1.x left (``<etag>.<8 hex>.incomplete``).

    Called under the blob's lock, which huggingface_hub also takes, so none is being written.
    """
    orphans = sorted(blobs.glob(f"{etag}.*.incomplete"), key=lambda p: p.stat().st_size, reverse=True)
    for i, orphan in enumerate(orphans):
        if i == 0 and (not partial.exists() or orphan.stat().st_size > partial.stat().st_size):
            os.replace(orphan, partial)
        else:
            orphan.unlink(missing_ok=True)


def download_blob(repo: str, commit: str, remote: Remote, settings: HubSettings, storage: Path, on_bytes: Callable[[int], None]) -> int:
    """Fetch one blob into place, resuming a partial and verifying it. Returns bytes fetched."""
    from huggingface_hub.file_download import hf_hub_url
    from huggingface_hub.utils import WeakFileLock, build_hf_headers

    from qwenctl import __version__

    blobs = storage / "blobs"
    blob, partial = blobs / remote.etag, blobs / f"{remote.etag}.incomplete"
    lock = settings.cache_dir / ".locks" / storage.name / f"{remote.etag}.lock"
    blobs.mkdir(parents=True, exist_ok=True)
    lock.parent.mkdir(parents=True, exist_ok=True)
    with WeakFileLock(lock):
        if blob.exists():  # another process finished it while we waited
            on_bytes(remote.size)
            return 0
        _adopt_orphans(blobs, remote.etag, partial)
        if partial.exists() and partial.stat().st_size > remote.size:
            partial.unlink()
        url = hf_hub_url(repo, remote.filename, revision=commit, endpoint=settings.endpoint)
        headers = build_hf_headers(library_name="qwenctl", library_version=__version__)
        with naming(partial), partial.open("ab") as f:  # a write (or close) of the open file names no path
            start = f.tell()
            if start:
                log.info("resuming %s at byte %d of %d", remote.filename, start, remote.size)
            hasher = _Hasher(partial, remote.algorithm, remote.size, resume_from=start)
            hasher.start()
            writer = _HashingWriter(f, hasher, on_bytes)
            on_bytes(start)
            try:  # a full disk or a transport error: the partial stays, for the next run to resume
                wrong_size = _stream(url, writer, start, remote.size, headers) != remote.size
                f.flush()
                os.fsync(f.fileno())
            finally:
                digest = hasher.finish()
            fetched = writer.pos - start
        if wrong_size or digest != remote.etag:
            partial.unlink(missing_ok=True)
            raise integrity_error(remote, digest, repo)
        os.replace(partial, blob)
    record_verified(blob)
    return fetched


def link(storage: Path, commit: str, remote: Remote) -> Path:
    """Point ``snapshots/<commit>/<filename>`` at its blob, as huggingface_hub does."""
    pointer = storage / "snapshots" / commit / remote.filename
    blob = storage / "blobs" / remote.etag
    pointer.parent.mkdir(parents=True, exist_ok=True)
    if pointer.is_symlink() or pointer.exists():
        if pointer.resolve() == blob.resolve():
            return pointer
        pointer.unlink()
    try:
        os.symlink(os.path.relpath(blob, pointer.parent), pointer)
    except OSError:  # no symlinks (Windows without developer mode): a copy, as huggingface_hub does
        shutil.copyfile(blob, pointer)
    return pointer


def write_ref(storage: Path, revision: str, commit: str) -> None:
    if revision == commit:
        return
    ref = storage / "refs" / revision
    ref.parent.mkdir(parents=True, exist_ok=True)
    if ref.exists() and ref.read_text().strip() == commit:
        return
    files.write_text(ref, commit)
