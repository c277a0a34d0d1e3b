"""Disk: free space where models will be stored — the Hugging Face hub cache.

The folder is resolved as huggingface_hub does (HF_HUB_CACHE, else HF_HOME/hub, else
$XDG_CACHE_HOME/huggingface/hub, else ~/.cache/huggingface/hub) without importing it.
The cache may not exist yet, so the nearest existing parent is measured: that is the
file system a download would land on.
"""

from __future__ import annotations

import os
import posixpath

from qwenctl.hardware.facts import Absent, Disk
from qwenctl.hardware.snapshot import Source


def hf_cache_dir(source: Source) -> str:
    if source.getenv("HF_HUB_CACHE"):
        return _expand(source, source.getenv("HF_HUB_CACHE") or "")
    if source.getenv("HF_HOME"):
        return posixpath.join(_expand(source, source.getenv("HF_HOME") or ""), "hub")
    cache = source.getenv("XDG_CACHE_HOME") or posixpath.join(source.getenv("HOME") or "~", ".cache")
    return posixpath.join(_expand(source, cache), "huggingface", "hub")


def _expand(source: Source, path: str) -> str:
    if path.startswith("~"):
        path = (source.getenv("HOME") or os.path.expanduser("~")) + path[1:]
    return path


def probe(source: Source) -> Disk | Absent:
    cache = hf_cache_dir(source)
    path = cache
    while True:
        try:
            total, free = source.disk_usage(path)
            return Disk(path=cache, free_bytes=free, total_bytes=total)
        except FileNotFoundError:
            parent = os.path.dirname(path.rstrip("/")) or "/"
            if parent == path:
                return Absent(f"no existing folder above {cache}")
            path = parent
