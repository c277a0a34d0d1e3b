"""An Ollama model store built from a generated GGUF, laid out as Ollama lays it out (qwenctl/ollama.py):
manifests/<registry>/<namespace>/<model>/<tag> and blobs/sha256-<hex>. For tests and docs examples."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

from qwenctl.ollama import MODEL_LAYER, SYSTEM_LAYER, parse_name


def _add_blob(store: Path, data_path: Path | None = None, data: bytes | None = None) -> tuple[str, int]:
    blobs = store / "blobs"
    blobs.mkdir(parents=True, exist_ok=True)
    if data_path is not None:
        digest = hashlib.sha256()
        with open(data_path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
        hexdigest, size = digest.hexdigest(), data_path.stat().st_size
        target = blobs / f"sha256-{hexdigest}"
        if not target.exists():
            try:
                os.link(data_path, target)  # as big as the model: share it where the file system allows
            except OSError:
                shutil.copyfile(data_path, target)
    else:
        assert data is not None
        hexdigest, size = hashlib.sha256(data).hexdigest(), len(data)
        (blobs / f"sha256-{hexdigest}").write_bytes(data)
    return f"sha256:{hexdigest}", size


def make_store(store: Path, name: str, gguf: Path, system: str | None = None) -> Path:
    """Add `gguf` to the store under `name` (``qwen2.5:7b``); the manifest's path."""
    n = parse_name(name)
    config_digest, config_size = _add_blob(store, data=json.dumps({"model_format": "gguf", "model_family": "qwen2"}).encode())
    digest, size = _add_blob(store, data_path=gguf)
    layers = [{"mediaType": MODEL_LAYER, "digest": digest, "size": size}]
    if system is not None:
        sys_digest, sys_size = _add_blob(store, data=system.encode())
        layers.append({"mediaType": SYSTEM_LAYER, "digest": sys_digest, "size": sys_size})
    manifest = store / "manifests" / n.registry / n.namespace / n.model / n.tag
    manifest.parent.mkdir(parents=True, exist_ok=True)
    manifest.write_text(json.dumps({
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "digest": config_digest, "size": config_size},
        "layers": layers,
    }))
    return manifest
