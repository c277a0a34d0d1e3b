"""Every naming rule, once: ``REPO[:FILE]``, safe repo file names, split-GGUF parts, the quant in
a name, "is ``--model`` a path or a repo?", the model id a server publishes, and whether a host names
this machine.

Pure string rules (no file system, no network): fetch, gguf_check, pipeline and serve all ask here,
so ``run`` and ``serve`` read the same ``--model`` the same way.
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path

from qwenctl.errors import ExitCode, QwenctlError

# llama.cpp's gguf-split names: ``<stem>-00001-of-00003.gguf`` (five digits each, 1-based).
SPLIT_PART = re.compile(r"^(?P<stem>.+)-(?P<part>\d{5})-of-(?P<count>\d{5})\.gguf$")
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def is_loopback(host: str) -> bool:
    """Whether a host as written is this machine only ("localhost", 127.0.0.0/8, ::1): serve's bind, a
    worker's bind and a worker's endpoint all ask here. Names are not resolved (no network in this module)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_repo_id(repo: str) -> str:
    if not _REPO_ID.match(repo) or ".." in repo:
        raise QwenctlError(f"{repo!r} is not a repo id", hint="write it as OWNER/NAME, e.g. Qwen/Qwen2.5-7B-Instruct-GGUF", code=ExitCode.BAD_INPUT)
    return repo


def check_filename(name: str) -> str:
    """Refuse a repo filename that would land outside its snapshot folder."""
    parts = name.split("/")
    if (
        not name
        or name.startswith(("/", "\\"))
        or "\\" in name
        or re.match(r"^[A-Za-z]:", name)
        or any(p in ("", ".", "..") for p in parts)
        or "\0" in name
    ):
        raise QwenctlError(f"refusing file name {name!r}: it would escape the model cache", code=ExitCode.BAD_INPUT)
    return name


def parse_spec(spec: str) -> tuple[str, str | None]:
    """``REPO`` or ``REPO:FILE`` -> (repo, file or None)."""
    repo, sep, name = spec.partition(":")
    check_repo_id(repo)
    if sep and not name:
        raise QwenctlError(f"{spec!r} names no file after ':'", hint="write REPO:FILE, or REPO alone for the whole repo", code=ExitCode.BAD_INPUT)
    return repo, (check_filename(name) if sep else None)


def looks_like_path(arg: str) -> bool:
    """Whether a ``--model`` that names nothing on disk was meant as a path (then "no such file"), not ``REPO[:FILE]``.

    ``./m.gguf``, ``/models/x``, ``~/x`` and a bare ``m.gguf`` are paths; ``OWNER/NAME:FILE.gguf`` is a repo.
    """
    return arg.startswith(("/", "./", "../", "~", ".\\")) or (arg.endswith(".gguf") and ":" not in arg)


def split_parts(filename: str) -> tuple[str, ...]:
    """All part names of a split GGUF given any one of them (just the name if not split)."""
    m = SPLIT_PART.match(filename)
    if not m:
        return (filename,)
    count = int(m["count"])
    return tuple(f"{m['stem']}-{i:05d}-of-{count:05d}.gguf" for i in range(1, count + 1))


def unsplit(filename: str) -> str:
    """The name without its split suffix: ``x-00001-of-00002.gguf`` -> ``x.gguf`` (others unchanged)."""
    return SPLIT_PART.sub(lambda m: m["stem"] + ".gguf", filename)


def quant_of(name: str) -> str | None:
    """The quantization named in a GGUF file name or an MLX repo name (Q4_K_M, Q8_0, 4bit, ...)."""
    base = unsplit(name.rsplit("/", 1)[-1].lower())
    m = re.search(r"[-_.]((?:i?q\d(?:_[a-z0-9]+)*)|f16|fp16|bf16|f32)(?:\.gguf)?$", base.removesuffix(".gguf"))
    if m:
        return m[1].upper().replace("FP16", "F16")
    m = re.search(r"(\d+)-?bit", base)
    return f"{m[1]}bit" if m else None


def served_model_id(path: Path | str, repo: str | None = None) -> str:
    """The id clients send as ``model``: a GGUF's file stem without its split suffix, or an MLX
    folder's name (the repo's name when it came from the hub: a pulled snapshot folder is a commit
    hash, which would mean nothing to a client)."""
    path = Path(path)
    if path.is_dir():
        return (repo or path.resolve().name).rsplit("/", 1)[-1]
    return Path(unsplit(path.name)).stem
