"""Getting the weights: resolve repo files, preflight disk, download, resume, verify.

Everything lands in the standard Hugging Face cache (``HF_HUB_CACHE``, else
``HF_HOME/hub``, else ``~/.cache/huggingface/hub``) in its usual layout
(``models--ORG--NAME/{blobs,snapshots,refs}``), so transformers, llama.cpp's ``-hf``,
mlx-lm and ``hf`` all share what qwenctl pulled, and the other way round.

Why not just ``hf_hub_download``? Measured with huggingface_hub 2.4.0 against the fake
hub in tests/fakehub.py:

- it does not check the content against the hub's SHA-256 (a corrupted body of the
  right size is accepted into the cache);
- a process killed mid-download leaves ``<etag>.<random>.incomplete`` behind, which no
  later call reuses: the next run starts from byte 0 (and the orphan stays on disk).

So qwenctl uses huggingface_hub for everything that speaks to the hub (``HfApi`` for the
revision and the file list with sizes and SHA-256, ``http_get`` with its retries,
redirects, Range resume and auth headers) but owns the blob's life: a stable
``blobs/<sha256>.incomplete`` that a later run resumes, a SHA-256 computed while the
bytes arrive, and the blob moved into place only once it matches.

Settings are read from the environment at call time (not at import, as
``huggingface_hub.constants`` does), so a library caller or a test may change them.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator

from qwenctl import files, hub
from qwenctl.errors import ExitCode, QwenctlError
from qwenctl.names import check_filename, check_repo_id, looks_like_path, parse_spec, quant_of, split_parts

if TYPE_CHECKING:
    from huggingface_hub.hf_api import HfApi, RepoFile

log = logging.getLogger(__name__)

DEFAULT_ENDPOINT = "https://huggingface.co"
# Free disk kept after the download lands, so the machine keeps working (logs, swap,
# other programs' temp files): the larger of 256 MiB and 2% of the download.
DISK_MARGIN_MIN_BYTES = 256 * 1024 * 1024
DISK_MARGIN_FRACTION = 0.02
_HASH_BLOCK = 8 * 1024 * 1024
_HASH_BATCH = 4 * 1024 * 1024
_FLUSH_EVERY = 128 * 1024 * 1024
_READ_BYTES = 1024 * 1024
# write(2) to the page cache in pieces this size: one 1 MiB write() ran at 460-490 MB/s on
# the 2-core VM, the same MiB as 64 KiB pieces at 2,700-3,000 MB/s (measured, 1 GB file).
_WRITE_BYTES = 64 * 1024


# -- results -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelFiles:
    """Where a model's files are on disk, ready for a backend.

    Paths are strings so the result serializes to JSON as is. For a local path given to
    ``--model`` repo/revision/commit are None and ``verified`` is False: the backend layer
    validates the file (GGUF header) itself.
    """

    repo: str | None
    revision: str | None  # as asked ("main" unless given)
    commit: str | None  # the commit the files belong to
    filenames: tuple[str, ...]  # repo-relative names, split GGUF parts in order
    paths: tuple[str, ...]  # local paths, same order, all in one snapshot folder
    load_path: str  # what a backend loads: the GGUF (first part when split) or the snapshot folder
    total_bytes: int
    downloaded_bytes: int = 0  # fetched by this call; 0 when everything was already cached
    verified: bool = False  # every file matched the hub's recorded SHA-256 (git SHA-1 for small files)


@dataclass(frozen=True)
class PullProgress:
    """One progress report: bytes on disk for the whole pull, counting what was already there."""

    filename: str
    done_bytes: int
    total_bytes: int


ProgressFn = Callable[[PullProgress], None]


@dataclass(frozen=True)
class _Remote:
    """A file as the hub records it."""

    filename: str
    size: int
    etag: str  # the blob's name in the cache: LFS sha256, or the git blob sha1 for small files

    @property
    def algorithm(self) -> str:
        return "sha256" if len(self.etag) == 64 else "git-sha1"


# -- settings ------------------------------------------------------------------------------


@dataclass(frozen=True)
class HubSettings:
    endpoint: str
    cache_dir: Path
    offline: bool

    @classmethod
    def from_env(cls, offline: bool = False) -> HubSettings:
        """The same variables huggingface_hub reads, read now rather than at its import."""
        env = os.environ
        home = env.get("HF_HOME") or os.path.join(env.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "huggingface")
        cache = env.get("HF_HUB_CACHE") or env.get("HUGGINGFACE_HUB_CACHE") or os.path.join(home, "hub")
        hub_offline = (env.get("HF_HUB_OFFLINE") or env.get("TRANSFORMERS_OFFLINE") or "").upper() in {"1", "ON", "YES", "TRUE"}
        return cls(
            endpoint=(env.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/"),
            cache_dir=Path(os.path.expandvars(os.path.expanduser(cache))),
            offline=offline or hub_offline,
        )


def repo_folder(cache_dir: Path, repo: str) -> Path:
    """The cache folder of a model repo, named as huggingface_hub names it."""
    return cache_dir / ("models--" + repo.replace("/", "--"))


# -- the verification record ---------------------------------------------------------------


def _record_path() -> Path:
    import platformdirs

    return platformdirs.user_data_path("qwenctl") / "verified.json"


def _read_records() -> dict:
    try:
        return json.loads(_record_path().read_text())
    except (OSError, ValueError):
        return {}


def _write_records(records: dict) -> None:
    path = _record_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    files.write_text(path, json.dumps(records, indent=1, sort_keys=True))


def _stamp(blob: Path) -> dict:
    st = blob.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def record_verified(blob: Path) -> None:
    """Note that `blob` matched its hash, with its size and mtime so a later change is seen."""
    records = _read_records()
    records[str(blob.resolve())] = {**_stamp(blob), "hash": blob.name, "verified_at": int(time.time())}
    _write_records(records)


def is_recorded_verified(blob: Path, records: dict | None = None) -> bool:
    """Whether `blob` was verified and has not changed since (no rehashing)."""
    rec = (records if records is not None else _read_records()).get(str(blob.resolve()))
    try:
        return bool(rec) and rec.get("hash") == blob.name and {k: rec.get(k) for k in ("size", "mtime_ns")} == _stamp(blob)
    except OSError:
        return False


def forget_verified(blobs: list[Path]) -> None:
    records = _read_records()
    keys = {str(b.resolve()) for b in blobs}
    if keys & records.keys():
        _write_records({k: v for k, v in records.items() if k not in keys})


def hash_file(path: Path, algorithm: str) -> str:
    """SHA-256 of an LFS file, or the git blob SHA-1 of a small one (what the hub records)."""
    h = hashlib.sha256() if algorithm == "sha256" else hashlib.sha1(b"blob %d\0" % path.stat().st_size)
    buf = bytearray(_HASH_BLOCK)
    view = memoryview(buf)
    with path.open("rb", buffering=0) as f:
        while n := f.readinto(buf):
            h.update(view[:n])
    return h.hexdigest()


# -- resolving what to download ------------------------------------------------------------


def _list_remote(api: HfApi, repo: str, commit: str) -> dict[str, _Remote]:
    files: dict[str, _Remote] = {}
    for entry in api.list_repo_tree(repo, revision=commit, recursive=True):
        if not hasattr(entry, "blob_id"):  # a folder
            continue
        f: RepoFile = entry  # type: ignore[assignment]
        check_filename(f.path)
        if f.lfs is not None:
            files[f.path] = _Remote(f.path, f.lfs.size, f.lfs.sha256)
        else:
            files[f.path] = _Remote(f.path, f.size, f.blob_id)
    return files


def _select(repo: str, revision: str, available: dict[str, _Remote], wanted: list[str] | None) -> list[_Remote]:
    """The files to fetch: all of them, or the asked ones with every part of a split GGUF.

    A name that is no file but a quant (``q4_k_m``) picks the GGUF file(s) of that quant.
    """
    if wanted is None:
        return list(available.values())
    chosen: list[str] = []
    for name in wanted:
        if name in available:
            names = list(split_parts(name))
        else:
            q = name.lower()
            names = sorted(f for f in available if f.endswith(".gguf") and (quant_of(f) or "").lower() == q)
        missing = [n for n in names if n not in available]
        if not names or missing:
            quants = sorted({quant_of(f) for f in available if f.endswith(".gguf")} - {None})  # type: ignore[arg-type]
            raise QwenctlError(
                f"{repo} has no file {', '.join(missing) if missing else name} at {revision}",
                hint=f"its GGUF quants: {', '.join(quants)}" if quants else None,
                code=ExitCode.NOT_FOUND,
            )
        chosen += [n for n in names if n not in chosen]
    return [available[n] for n in chosen]


def _preflight(cache_dir: Path, storage: Path, remotes: list[_Remote]) -> None:
    """Refuse before the first byte when the rest of the download would not fit."""
    need = 0
    for r in remotes:
        if not (storage / "blobs" / r.etag).exists():
            partial = storage / "blobs" / f"{r.etag}.incomplete"
            need += r.size - (partial.stat().st_size if partial.exists() else 0)
    if need <= 0:
        return
    margin = max(DISK_MARGIN_MIN_BYTES, int(need * DISK_MARGIN_FRACTION))
    probe = cache_dir
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if free < need + margin:
        raise QwenctlError(
            f"not enough disk: the download needs {need:,} bytes plus a {margin:,}-byte margin, {probe} has {free:,} free",
            hint="free some space, or point HF_HUB_CACHE at a bigger disk",
            code=ExitCode.DISK,
        )


# -- downloading one blob ------------------------------------------------------------------


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

    def _new(self):
        return hashlib.sha256() if self.algorithm == "sha256" else hashlib.sha1(b"blob %d\0" % self.total)

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
    """The file object handed to huggingface_hub's http_get: writes, reports progress, feeds the hasher.

    Socket reads come in up to `_READ_BYTES`; each is written in `_WRITE_BYTES` pieces
    (slices of one memoryview, no copies), which is several times faster than one large write.
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
        """http_get rewinds to 0 and truncates when a server ignored our Range and sent the whole file."""
        self.f.flush()
        end = self.f.truncate(size)
        if end != 0:
            raise OSError(f"unexpected truncate to {end}")
        self.hasher.restart()
        self.on_bytes(end)
        return end


@contextlib.contextmanager
def _unchunked_reads() -> Iterator[None]:
    """Let http_get write each socket read as it comes, in reads of `_READ_BYTES`.

    huggingface_hub asks httpx for 10 MB chunks, which httpx assembles through a BytesIO:
    two extra copies per byte (on loopback, a 2-core VM: about 190 MB/s chunked vs 450
    unchunked), and a killed process loses up to 10 MB that never reached the disk.
    ``DOWNLOAD_CHUNK_SIZE`` is read at call time, so setting it for the duration of the
    download is enough. Unchunked, each socket read is one trip through httpcore, h11,
    httpx and http_get's loop; httpcore reads 64 KiB at a time, so for a 1 GB file that
    Python runs 16,000 times (a quarter of the pull's time, profiled). Reading up to
    `_READ_BYTES` per call does the same work in a sixteenth of the trips; httpcore reads
    ``READ_NUM_BYTES`` from its class at each read, so it too can be set for the duration.
    """
    from huggingface_hub import constants

    try:  # the transport huggingface_hub 2.x uses; another one is left at its own read size
        from httpcore2._sync.http11 import HTTP11Connection
    except ImportError:
        HTTP11Connection = None
    saved_chunk = constants.DOWNLOAD_CHUNK_SIZE
    saved_read = getattr(HTTP11Connection, "READ_NUM_BYTES", None)
    constants.DOWNLOAD_CHUNK_SIZE = None  # type: ignore[assignment]
    if saved_read is not None:
        HTTP11Connection.READ_NUM_BYTES = max(saved_read, _READ_BYTES)
    try:
        yield
    finally:
        constants.DOWNLOAD_CHUNK_SIZE = saved_chunk
        if saved_read is not None:
            HTTP11Connection.READ_NUM_BYTES = saved_read


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


def _integrity_error(remote: _Remote, actual: str | None, repo: str) -> QwenctlError:
    got = f"got {actual[:12]}…" if actual else "the download ended early"
    return QwenctlError(
        f"{repo}:{remote.filename} does not match the hub's {remote.algorithm} ({remote.etag[:12]}…, {got}); the bad copy was deleted",
        hint="run the pull again; if it repeats, the mirror or a proxy is serving a bad file",
        code=ExitCode.INTEGRITY,
    )


def _download_blob(repo: str, commit: str, remote: _Remote, settings: HubSettings, storage: Path, on_bytes: Callable[[int], None]) -> int:
    """Fetch one blob into place, resuming a partial and verifying it. Returns bytes fetched."""
    from huggingface_hub.file_download import hf_hub_url, http_get
    from huggingface_hub.utils import WeakFileLock, build_hf_headers, silent_tqdm

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
        with hub.naming(partial), partial.open("ab") as f:  # a write (or close) of the open file names no path
            start = f.tell()
            if start:
                log.info("resuming %s at byte %d of %d", remote.filename, start, remote.size)
            hasher = _Hasher(partial, remote.algorithm, remote.size, resume_from=start)
            hasher.start()
            writer = _HashingWriter(f, hasher, on_bytes)
            on_bytes(start)
            try:
                with _unchunked_reads():
                    http_get(url, writer, resume_size=start, headers=headers, expected_size=remote.size, tqdm_class=silent_tqdm, displayed_filename=remote.filename)
                f.flush()
                os.fsync(f.fileno())
            except OSError as e:
                if not str(e).startswith("Consistency check failed"):
                    raise  # a full disk or a transport error: the partial stays, for the next run to resume
                wrong_size = True
            else:
                wrong_size = False
            finally:
                digest = hasher.finish()
            fetched = writer.pos - start
        if wrong_size or digest != remote.etag:
            partial.unlink(missing_ok=True)
            raise _integrity_error(remote, digest, repo)
        os.replace(partial, blob)
    record_verified(blob)
    return fetched


def _link(storage: Path, commit: str, remote: _Remote) -> Path:
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


def _write_ref(storage: Path, revision: str, commit: str) -> None:
    if revision == commit:
        return
    ref = storage / "refs" / revision
    ref.parent.mkdir(parents=True, exist_ok=True)
    if ref.exists() and ref.read_text().strip() == commit:
        return
    files.write_text(ref, commit)


def _ensure_verified(repo: str, storage: Path, remote: _Remote) -> bool:
    """Check a blob already in the cache (put there by anyone); delete it if it is bad."""
    blob = storage / "blobs" / remote.etag
    if is_recorded_verified(blob):
        return True
    actual = hash_file(blob, remote.algorithm)
    if actual == remote.etag:
        record_verified(blob)
        return True
    _delete_blob(storage, blob)
    raise _integrity_error(remote, actual, repo)


def _delete_blob(storage: Path, blob: Path) -> None:
    """Remove a blob and every snapshot link to it."""
    snaps = storage / "snapshots"
    if snaps.exists():
        for link in snaps.rglob("*"):
            if link.is_symlink() and Path(os.path.realpath(link)) == Path(os.path.realpath(blob)):
                link.unlink()
    blob.unlink(missing_ok=True)
    forget_verified([blob])


# -- pull ------------------------------------------------------------------------------------


def pull(
    repo: str,
    filenames: list[str] | tuple[str, ...] | None = None,
    *,
    revision: str | None = None,
    offline: bool = False,
    progress: ProgressFn | None = None,
) -> ModelFiles:
    """Download (or find in the cache) `filenames` of `repo`, verified, and say where they are.

    ``filenames=None`` takes the whole repo (an MLX model folder). A split GGUF part brings
    all its parts; a quant name (``"q4_k_m"``) stands for its GGUF file(s). With
    ``offline`` (or HF_HUB_OFFLINE) nothing goes over the network.
    """
    check_repo_id(repo)
    wanted = [check_filename(f) for f in filenames] if filenames else None
    revision = revision or "main"
    settings = HubSettings.from_env(offline)
    storage = repo_folder(settings.cache_dir, repo)
    if settings.offline:
        with hub.cache_errors(settings.cache_dir, "read"):
            return _from_cache(repo, wanted, revision, settings)
    from huggingface_hub import HfApi

    asked = hub.Asked(repo, revision, ", ".join(wanted) if wanted else None, settings.endpoint)
    with hub.cache_errors(settings.cache_dir), hub.errors(asked), hub.quiet_logs():  # hub errors are OSErrors too
        api = HfApi(endpoint=settings.endpoint, library_name="qwenctl")
        with hub.odd_answers(asked):
            commit = api.model_info(repo, revision=revision).sha
            listed = _list_remote(api, repo, commit) if commit else {}
        if not commit:
            raise QwenctlError(f"{settings.endpoint} gave no commit for {repo}@{revision}", code=ExitCode.NETWORK)
        remotes = _select(repo, revision, listed, wanted)
        total = sum(r.size for r in remotes)
        _preflight(settings.cache_dir, storage, remotes)

        done: dict[str, int] = {}

        def reporter(remote: _Remote) -> Callable[[int], None]:
            last = [0.0]

            def on_bytes(n: int) -> None:
                done[remote.filename] = n
                now = time.monotonic()
                if progress and (now - last[0] >= 0.1 or n >= remote.size):
                    last[0] = now
                    progress(PullProgress(remote.filename, sum(done.values()), total))

            return on_bytes

        fetched = 0
        paths = []
        for remote in remotes:
            blob = storage / "blobs" / remote.etag
            if blob.exists():
                try:
                    _ensure_verified(repo, storage, remote)
                except QwenctlError as bad:  # a bad copy from elsewhere: fetch it afresh, once
                    log.warning("%s", bad.message)
            on_bytes = reporter(remote)
            with hub.errors(hub.Asked(repo, revision, remote.filename, settings.endpoint)):
                if blob.exists():
                    on_bytes(remote.size)
                else:
                    fetched += _download_blob(repo, commit, remote, settings, storage, on_bytes)
            paths.append(_link(storage, commit, remote))
        _write_ref(storage, revision, commit)
    return _result(repo, revision, commit, storage, remotes, paths, fetched, wanted is None)


def _result(repo, revision, commit, storage, remotes, paths, fetched, whole) -> ModelFiles:
    names = tuple(r.filename for r in remotes)
    snapshot = storage / "snapshots" / commit
    if whole:
        load = snapshot
    else:
        ggufs = [p for p, n in zip(paths, names) if n.endswith(".gguf")]
        load = ggufs[0] if ggufs else paths[0]
    return ModelFiles(
        repo=repo,
        revision=revision,
        commit=commit,
        filenames=names,
        paths=tuple(str(p) for p in paths),
        load_path=str(load),
        total_bytes=sum(r.size for r in remotes),
        downloaded_bytes=fetched,
        verified=True,
    )


def _from_cache(repo: str, wanted: list[str] | None, revision: str, settings: HubSettings) -> ModelFiles:
    """Offline: the files of `revision` already in the cache, verified (hashing those never verified)."""
    storage = repo_folder(settings.cache_dir, repo)
    hint = f"pull it once while online: qwenctl pull {repo}"
    if re.fullmatch(r"[0-9a-f]{40}", revision) and (storage / "snapshots" / revision).is_dir():
        commit = revision
    else:
        ref = storage / "refs" / revision
        if not ref.is_file():
            raise QwenctlError(f"{repo}@{revision} is not in the cache ({settings.cache_dir}) and offline mode is on", hint=hint, code=ExitCode.NOT_FOUND)
        commit = ref.read_text().strip()
    snapshot = storage / "snapshots" / commit
    cached = {
        p.relative_to(snapshot).as_posix(): p for p in sorted(snapshot.rglob("*")) if p.is_file() or p.is_symlink()
    } if snapshot.is_dir() else {}
    available = {}
    for name, p in cached.items():
        blob = Path(os.path.realpath(p))
        if blob.exists() and re.fullmatch(r"[0-9a-f]{40}|[0-9a-f]{64}", blob.name):
            available[name] = _Remote(name, blob.stat().st_size, blob.name)
    try:
        remotes = _select(repo, revision, available, wanted)
    except QwenctlError as e:
        raise QwenctlError(e.message.replace(" has no file ", " has no cached file ") + " and offline mode is on", hint=hint, code=ExitCode.NOT_FOUND) from None
    if not remotes:
        raise QwenctlError(f"{repo}@{revision} has no files in the cache and offline mode is on", hint=hint, code=ExitCode.NOT_FOUND)
    for r in remotes:
        _ensure_verified(repo, storage, r)
    return _result(repo, revision, commit, storage, remotes, [snapshot / r.filename for r in remotes], 0, wanted is None)


# -- local paths and REPO[:FILE] (names.py has the rules) ------------------------------------------------------------


def resolve_model_arg(arg: str, *, offline: bool = False, progress: ProgressFn | None = None) -> ModelFiles:
    """What ``--model`` names: an existing local GGUF file or MLX folder, or ``REPO[:FILE]`` (pulled).

    A local path is returned as is (unverified): the backend layer validates it (GGUF
    header, MLX config) before any engine sees it.
    """
    path = Path(arg).expanduser()
    if path.exists():
        path = path.resolve()
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        return ModelFiles(
            repo=None,
            revision=None,
            commit=None,
            filenames=tuple(p.name if not path.is_dir() else p.relative_to(path).as_posix() for p in files),
            paths=tuple(str(p) for p in files),
            load_path=str(path),
            total_bytes=sum(p.stat().st_size for p in files),
        )
    if looks_like_path(arg):
        raise QwenctlError(f"no such file: {arg}", hint="give an existing GGUF file or MLX folder, or REPO[:FILE]", code=ExitCode.NOT_FOUND)
    repo, name = parse_spec(arg)
    return pull(repo, [name] if name else None, offline=offline, progress=progress)


# -- what is in the cache, and removing it -------------------------------------------------


@dataclass(frozen=True)
class CachedModel:
    """One loadable model in the cache: a GGUF (all its parts) or a whole snapshot folder."""

    repo: str
    spec: str  # what pull / run --model / rm accept: REPO:FILE, or REPO for a snapshot
    format: str  # "gguf" | "mlx" | "files"
    quant: str | None
    commit: str
    refs: tuple[str, ...]  # branches/tags that point at this commit ("main")
    files: tuple[str, ...]
    size_bytes: int
    verified: bool  # every file recorded as matching the hub's hash, unchanged since
    load_path: str


@dataclass(frozen=True)
class ModelList:
    cache_dir: str
    models: tuple[CachedModel, ...]
    partial_bytes: int  # unfinished downloads, resumed by the next pull


@dataclass(frozen=True)
class Removal:
    repo: str
    files: tuple[str, ...]  # repo filenames removed (every file for a whole repo)
    freed_bytes: int
    dry_run: bool


def _is_qwen25(repo: str) -> bool:
    return "qwen2.5" in repo.lower()


def _repo_of(folder: Path) -> str | None:
    if not folder.name.startswith("models--"):
        return None
    return folder.name[len("models--") :].replace("--", "/", 1)


def _snapshot_files(snapshot: Path) -> dict[str, Path]:
    return {p.relative_to(snapshot).as_posix(): p for p in sorted(snapshot.rglob("*")) if p.is_file()}


def _groups(names: list[str]) -> list[tuple[str, ...]]:
    """GGUF files grouped with their split parts, in name order."""
    seen: set[str] = set()
    groups = []
    for name in names:
        if name.endswith(".gguf") and name not in seen:
            parts = split_parts(name)
            group = tuple(p for p in parts if p in names)
            seen.update(group)
            groups.append(group)
    return groups


def list_models(*, all_repos: bool = False) -> ModelList:
    """The Qwen2.5 models in the Hugging Face cache (every repo with `all_repos`), without hashing."""
    settings = HubSettings.from_env()
    records = _read_records()
    models: list[CachedModel] = []
    partial = 0
    folders = sorted(settings.cache_dir.glob("models--*")) if settings.cache_dir.is_dir() else []
    for storage in folders:
        repo = _repo_of(storage)
        if repo is None or not (all_repos or _is_qwen25(repo)):
            continue
        partial += sum(p.stat().st_size for p in (storage / "blobs").glob("*.incomplete"))
        refs: dict[str, list[str]] = {}
        for ref in sorted((storage / "refs").rglob("*")) if (storage / "refs").is_dir() else []:
            if ref.is_file():
                refs.setdefault(ref.read_text().strip(), []).append(ref.relative_to(storage / "refs").as_posix())
        for snapshot in sorted((storage / "snapshots").iterdir()) if (storage / "snapshots").is_dir() else []:
            files = _snapshot_files(snapshot)
            if not files:
                continue
            groups = _groups(list(files))
            if groups:
                entries = [(g, f"{repo}:{g[0]}", "gguf", quant_of(g[0]), files[g[0]]) for g in groups]
            else:
                fmt = "mlx" if "config.json" in files and any(n.endswith(".safetensors") for n in files) else "files"
                entries = [(tuple(files), repo, fmt, quant_of(repo), snapshot)]
            for group, spec, fmt, quant, load in entries:
                blobs = [Path(os.path.realpath(files[n])) for n in group]
                models.append(
                    CachedModel(
                        repo=repo,
                        spec=spec,
                        format=fmt,
                        quant=quant,
                        commit=snapshot.name,
                        refs=tuple(refs.get(snapshot.name, ())),
                        files=group,
                        size_bytes=sum(b.stat().st_size for b in blobs if b.exists()),
                        verified=all(is_recorded_verified(b, records) for b in blobs),
                        load_path=str(load),
                    )
                )
    return ModelList(cache_dir=str(settings.cache_dir), models=tuple(models), partial_bytes=partial)


def remove(spec: str, *, dry_run: bool = False) -> Removal:
    """Delete ``REPO`` (the whole repo folder) or ``REPO:FILE`` (that GGUF, every split part) from the cache.

    A blob still linked from another snapshot stays. ``dry_run`` says what would go.
    """
    repo, name = parse_spec(spec)
    settings = HubSettings.from_env()
    storage = repo_folder(settings.cache_dir, repo)
    if not storage.is_dir():
        raise QwenctlError(f"{repo} is not in the cache ({settings.cache_dir})", hint="`qwenctl models` lists what is", code=ExitCode.NOT_FOUND)
    snapshots = [s for s in sorted((storage / "snapshots").iterdir())] if (storage / "snapshots").is_dir() else []
    if name is None:
        blobs = [p for p in (storage / "blobs").iterdir()] if (storage / "blobs").is_dir() else []
        files = sorted({n for s in snapshots for n in _snapshot_files(s)})
        freed = sum(p.stat().st_size for p in blobs if p.is_file())
        if not dry_run:
            shutil.rmtree(storage)
            shutil.rmtree(settings.cache_dir / ".locks" / storage.name, ignore_errors=True)
            forget_verified(blobs)
        return Removal(repo, tuple(files), freed, dry_run)

    doomed: list[Path] = []
    for snapshot in snapshots:
        present = _snapshot_files(snapshot)
        wanted = [n for n in split_parts(name) if n in present] or [n for g in _groups(list(present)) if (quant_of(g[0]) or "").lower() == name.lower() for n in g]
        doomed += [present[n] for n in wanted]
    if not doomed:
        raise QwenctlError(f"{repo}:{name} is not in the cache", hint="`qwenctl models` lists what is", code=ExitCode.NOT_FOUND)
    doomed_set = {str(p) for p in doomed}
    keep = {os.path.realpath(p) for s in snapshots for p in _snapshot_files(s).values() if str(p) not in doomed_set}
    blobs = sorted({Path(os.path.realpath(p)) for p in doomed if os.path.realpath(p) not in keep and Path(os.path.realpath(p)).is_file()})
    freed = sum(b.stat().st_size for b in blobs)
    files = tuple(sorted({p.relative_to(next(s for s in snapshots if p.is_relative_to(s))).as_posix() for p in doomed}))
    if not dry_run:
        for p in doomed:
            p.unlink()
        for b in blobs:
            b.unlink()
        forget_verified(blobs)
        for snapshot in snapshots:  # drop folders left empty
            for d in sorted((d for d in snapshot.rglob("*") if d.is_dir()), reverse=True) + [snapshot]:
                with contextlib.suppress(OSError):
                    d.rmdir()
    return Removal(repo, files, freed, dry_run)
