"""Getting the weights: resolve repo files, preflight disk, download, resume, verify.

Everything lands in the standard Hugging Face cache (``HF_HUB_CACHE``, else
``HF_HOME/hub``, else ``~/.cache/huggingface/hub``) in its usual layout
(``models--ORG--NAME/{blobs,snapshots,refs}``), so transformers, llama.cpp's ``-hf``,
mlx-lm and ``hf`` all share what qwenctl pulled, and the other way round.

qwenctl uses huggingface_hub for everything that speaks to the hub (``HfApi`` for the revision and the
file list with sizes and SHA-256; its session for the GET) but owns the blob's life. The rooms, by job:

- this module: ``pull`` (which files, the disk preflight, the cache links), ``resolve_model_arg``;
- download.py: one blob (resume, hash while writing, fsync, move into place; why not ``hf_hub_download``);
- verify.py: the hub's hashes and the record of verified blobs;
- cache.py: what is cached, and removing it;
- hub.py: settings from the environment, the hub-error table.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from qwenctl.errors import ExitCode, QwenctlError
from qwenctl.fetch import hub
from qwenctl.fetch.cache import CachedModel, ModelList, Removal, list_models, removal_spec, remove
from qwenctl.fetch.download import download_blob, link, write_ref
from qwenctl.fetch.hub import HubSettings, repo_folder
from qwenctl.fetch.verify import Remote, ensure_verified
from qwenctl.names import check_filename, check_repo_id, looks_like_path, parse_spec, quant_of, split_parts, unsplit

__all__ = ["CachedModel", "HubSettings", "ModelFiles", "ModelList", "ProgressFn", "PullProgress", "Removal", "list_models",
           "pull", "quant_of", "removal_spec", "remove", "repo_files", "resolve_model_arg"]

log = logging.getLogger(__name__)

# Free disk kept after the download lands, so the machine keeps working (logs, swap,
# other programs' temp files): the larger of 256 MiB and 2% of the download.
DISK_MARGIN_MIN_BYTES = 256 * 1024 * 1024
DISK_MARGIN_FRACTION = 0.02


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
    resumed_from: int = 0  # once per file: the bytes an earlier, interrupted pull left (the download goes on from there)


ProgressFn = Callable[[PullProgress], None]


# -- resolving what to download ------------------------------------------------------------


def _select(repo: str, revision: str, available: dict[str, Remote], wanted: list[str] | None) -> list[Remote]:
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
            quants = sorted({found for f in available if f.endswith(".gguf") and (found := quant_of(f))})
            raise QwenctlError(
                f"{repo} has no file {', '.join(missing) if missing else name} at {revision}",
                hint=f"its GGUF quants: {', '.join(quants)}" if quants else None,
                code=ExitCode.NOT_FOUND,
            )
        chosen += [n for n in names if n not in chosen]
    return [available[n] for n in chosen]


def _preflight(cache_dir: Path, storage: Path, remotes: list[Remote]) -> None:
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


# -- pull ------------------------------------------------------------------------------------


def pull(
    repo: str,
    filenames: list[str] | tuple[str, ...] | None = None,
    *,
    revision: str | None = None,
    offline: bool = False,
    progress: ProgressFn | None = None,
    keep_bad: bool = False,
) -> ModelFiles:
    """Download (or find in the cache) `filenames` of `repo`, verified, and say where they are.

    ``filenames=None`` takes the whole repo (an MLX model folder). A split GGUF part brings
    all its parts; a quant name (``"q4_k_m"``) stands for its GGUF file(s). With
    ``offline`` (or HF_HUB_OFFLINE) nothing goes over the network. ``keep_bad``: a cached copy
    that fails verification is reported (INTEGRITY) and left where it is, for the caller to ask
    before it is replaced.
    """
    check_repo_id(repo)
    wanted = [check_filename(f) for f in filenames] if filenames else None
    revision = revision or "main"
    settings = HubSettings.from_env(offline)
    storage = repo_folder(settings.cache_dir, repo)
    if settings.offline:
        with hub.cache_errors(settings.cache_dir, "read"):
            return _from_cache(repo, wanted, revision, settings, keep_bad=keep_bad)
    from huggingface_hub import HfApi

    asked = hub.Asked(repo, revision, ", ".join(wanted) if wanted else None, settings.endpoint)
    with hub.cache_errors(settings.cache_dir), hub.errors(asked):  # hub errors are OSErrors too
        api = HfApi(endpoint=settings.endpoint, library_name="qwenctl")
        with hub.odd_answers(asked):
            commit = api.model_info(repo, revision=revision).sha
            listed = hub.list_remote(api, repo, commit) if commit else {}
        if not commit:
            raise QwenctlError(f"{settings.endpoint} gave no commit for {repo}@{revision}", code=ExitCode.NETWORK)
        remotes = _select(repo, revision, listed, wanted)
        total = sum(r.size for r in remotes)
        _preflight(settings.cache_dir, storage, remotes)

        done: dict[str, int] = {}

        def reporter(remote: Remote) -> Callable[[int], None]:
            last = [0.0]
            first = [True]

            def on_bytes(n: int) -> None:
                done[remote.filename] = n
                now = time.monotonic()
                resumed = n if first[0] and 0 < n < remote.size else 0  # download_blob reports its start first
                first[0] = False
                if progress and (resumed or now - last[0] >= 0.1 or n >= remote.size):
                    last[0] = now
                    progress(PullProgress(remote.filename, sum(done.values()), total, resumed))

            return on_bytes

        fetched = 0
        paths = []
        for remote in remotes:
            blob = storage / "blobs" / remote.etag
            if blob.exists():
                try:
                    ensure_verified(repo, storage, remote)
                except QwenctlError as bad:  # a bad copy from elsewhere: fetch it afresh, once
                    log.warning("%s", bad.message)
            on_bytes = reporter(remote)
            with hub.errors(hub.Asked(repo, revision, remote.filename, settings.endpoint)):
                if blob.exists():
                    on_bytes(remote.size)
                else:
                    fetched += download_blob(repo, commit, remote, settings, storage, on_bytes)
            paths.append(link(storage, commit, remote))
        write_ref(storage, revision, commit)
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


def _from_cache(repo: str, wanted: list[str] | None, revision: str, settings: HubSettings, keep_bad: bool = False) -> ModelFiles:
    """Offline: the files of `revision` already in the cache, verified (hashing those never verified)."""
    storage = repo_folder(settings.cache_dir, repo)
    # the exact file, never the bare repo: `pull REPO` of a GGUF repo would be another choice
    one = wanted and len({unsplit(w) for w in wanted}) == 1  # one GGUF, perhaps in parts: its first part brings all
    hint = f"pull it once while online: qwenctl pull {repo}" + (f":{wanted[0]}" if one and wanted else "")
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
            available[name] = Remote(name, blob.stat().st_size, blob.name)
    try:
        remotes = _select(repo, revision, available, wanted)
    except QwenctlError as e:
        raise QwenctlError(e.message.replace(" has no file ", " has no cached file ") + " and offline mode is on", hint=hint, code=ExitCode.NOT_FOUND) from None
    if not remotes:
        raise QwenctlError(f"{repo}@{revision} has no files in the cache and offline mode is on", hint=hint, code=ExitCode.NOT_FOUND)
    for r in remotes:
        ensure_verified(repo, storage, r, delete=not keep_bad)
    return _result(repo, revision, commit, storage, remotes, [snapshot / r.filename for r in remotes], 0, wanted is None)


def repo_files(repo: str, *, revision: str | None = None, offline: bool = False) -> dict[str, int]:
    """Every file of `repo` and its size, downloading nothing: the hub's listing, or the cache's when offline."""
    check_repo_id(repo)
    revision = revision or "main"
    settings = HubSettings.from_env(offline)
    if settings.offline:
        storage = repo_folder(settings.cache_dir, repo)
        ref = storage / "refs" / revision
        if not ref.is_file():
            raise QwenctlError(f"{repo} is not in the cache ({settings.cache_dir}) and offline mode is on",
                               hint=f"pull it once while online: qwenctl pull {repo}", code=ExitCode.NOT_FOUND)
        snapshot = storage / "snapshots" / ref.read_text().strip()
        return {p.relative_to(snapshot).as_posix(): p.stat().st_size
                for p in sorted(snapshot.rglob("*")) if p.is_file()} if snapshot.is_dir() else {}
    from huggingface_hub import HfApi

    asked = hub.Asked(repo, revision, None, settings.endpoint)
    with hub.errors(asked):
        api = HfApi(endpoint=settings.endpoint, library_name="qwenctl")
        with hub.odd_answers(asked):
            commit = api.model_info(repo, revision=revision).sha
            listed = hub.list_remote(api, repo, commit) if commit else {}
    return {name: r.size for name, r in listed.items()}


# -- local paths and REPO[:FILE] (names.py has the rules) ----------------------------------


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
