"""What is in the Hugging Face cache, and removing it: the Qwen2.5 models (GGUF files with their split
parts, MLX snapshot folders), whether each was verified, and the bytes a removal frees.

It reads the cache's own layout (``models--ORG--NAME/{blobs,snapshots,refs}``) and never hashes: the
verification record says which blobs matched the hub (verify.py).
"""

from __future__ import annotations

import contextlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from qwenctl.errors import ExitCode, QwenctlError
from qwenctl.fetch.hub import HubSettings, repo_folder
from qwenctl.fetch.verify import forget_verified, is_recorded_verified, read_records
from qwenctl.names import parse_spec, quant_of, split_parts


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

    @property
    def short_name(self) -> str | None:
        """The catalog's short name for it (`7b:q4_k_m`, as `models` shows and `rm` takes); None for other files."""
        from qwenctl.tags import tag_of

        return tag_of(self.repo, self.files[0] if self.format == "gguf" else None)


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
    records = read_records()
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


def removal_spec(text: str) -> str:
    """What `rm` removes for what the user typed. A short name with its quant is that catalog file (7b:q8_0 ->
    REPO:FILE); a size alone (7b, qwen2.5:7b) is the one model of that size in the cache, as `pull 7b` fetched
    the plan's quant, which the user need not know; anything else as typed."""
    from qwenctl.tags import parse_tag, spec_of

    try:
        tag = parse_tag(text)
    except QwenctlError:
        return text  # remove() says what it makes of it
    if tag is None or tag.size is None or tag.quant is not None:
        return spec_of(text)
    cached = {m.short_name: m.spec for m in list_models().models}
    names = sorted(n for n in cached if n and n.startswith(tag.size.lower() + ":"))
    if len(names) == 1:
        return cached[names[0]]
    held = f"{len(names)} models of that size: {', '.join(names)}" if names else "no model of that size"
    raise QwenctlError(f"{text!r} names a size, and the cache holds {held}",
                       hint="name one as `qwenctl models` lists it" + (f", e.g. qwenctl rm {names[0]}" if names else ""),
                       code=ExitCode.NOT_FOUND)


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
    removed = tuple(sorted({p.relative_to(next(s for s in snapshots if p.is_relative_to(s))).as_posix() for p in doomed}))
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
    return Removal(repo, removed, freed, dry_run)
