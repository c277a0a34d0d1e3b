"""Models already in Ollama's store, used where they lie: ``ollama:NAME[:TAG]`` -> the GGUF blob, read-only.

Ollama keeps one manifest per model and tag and the files as content-addressed blobs (Ollama's
server/modelpath.go and server/manifest.go)::

    <store>/manifests/<registry>/<namespace>/<model>/<tag>    a Docker distribution manifest v2 (JSON)
    <store>/blobs/sha256-<hex>                                 every layer, named by its digest

The layer of media type ``application/vnd.ollama.image.model`` is the GGUF itself; the others hold the
template, system prompt, parameters and licence. A name is ``[REGISTRY/][NAMESPACE/]MODEL[:TAG]`` with
registry.ollama.ai, library and latest as the defaults (``qwen2.5:7b`` is
registry.ollama.ai/library/qwen2.5:7b; ``hf.co/bartowski/Qwen2.5-7B-Instruct-GGUF:Q4_K_M`` a model
Ollama pulled from Hugging Face).

Where the store is, in order (ollama docs/faq.md, "Where are models stored?"):
  1. ``OLLAMA_MODELS``, when set;
  2. ``~/.ollama/models`` (macOS, Windows, and Linux when Ollama runs as the user);
  3. ``/usr/share/ollama/.ollama/models`` (Linux, the install script's systemd service).
Nothing here writes to the store, and no byte is downloaded: the blob is loaded in place.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from qwenctl.errors import ExitCode, QwenctlError

PREFIX = "ollama:"
DEFAULT_REGISTRY = "registry.ollama.ai"
DEFAULT_NAMESPACE = "library"
DEFAULT_TAG = "latest"
MODEL_LAYER = "application/vnd.ollama.image.model"
SYSTEM_LAYER = "application/vnd.ollama.image.system"
SERVICE_STORE = Path("/usr/share/ollama/.ollama/models")

_PART = re.compile(r"[\w][\w.-]*")
_DIGEST = re.compile(r"sha256[:-](?P<hex>[0-9a-f]{64})")


@dataclass(frozen=True)
class OllamaName:
    registry: str
    namespace: str
    model: str
    tag: str

    def __str__(self) -> str:
        """The short form Ollama prints: qwen2.5:7b, or the full path outside the default registry/namespace."""
        head = [self.registry, self.namespace] if self.registry != DEFAULT_REGISTRY else (
            [self.namespace] if self.namespace != DEFAULT_NAMESPACE else [])
        return "/".join([*head, self.model]) + f":{self.tag}"


@dataclass(frozen=True)
class OllamaModel:
    name: OllamaName
    store: Path
    manifest: Path
    blob: Path  # the GGUF
    size_bytes: int
    system: str | None  # the model's own system prompt layer, when it has one


def parse_name(text: str) -> OllamaName:
    """``[REGISTRY/][NAMESPACE/]MODEL[:TAG]`` (``ollama:`` already removed)."""
    path, _, tag = text.strip().partition(":")
    parts = path.split("/")
    if not path or len(parts) > 3 or not all(_PART.fullmatch(p) for p in parts) or (tag and not _PART.fullmatch(tag)):
        raise QwenctlError(f"{PREFIX}{text} is not an Ollama model name", hint="write ollama:NAME[:TAG], e.g. ollama:qwen2.5:7b",
                           code=ExitCode.BAD_INPUT)
    if len(parts) == 3:
        registry, namespace, model = parts
    elif len(parts) == 2:
        registry, namespace, model = DEFAULT_REGISTRY, *parts
    else:
        registry, namespace, model = DEFAULT_REGISTRY, DEFAULT_NAMESPACE, parts[0]
    return OllamaName(registry, namespace, model, tag or DEFAULT_TAG)


def store_dirs(env: Mapping[str, str] | None = None, home: Path | None = None) -> list[Path]:
    """The folders that may hold Ollama's store, in the order they are searched (see the module's doc)."""
    env = os.environ if env is None else env
    if env.get("OLLAMA_MODELS"):
        return [Path(env["OLLAMA_MODELS"]).expanduser()]  # Ollama itself looks nowhere else then
    home = home or Path.home()
    return [home / ".ollama" / "models", SERVICE_STORE]


def resolve(text: str, stores: Sequence[Path] | None = None) -> OllamaModel:
    """The GGUF blob of ``ollama:NAME[:TAG]`` (the prefix is optional here); QwenctlError saying what is missing."""
    name = parse_name(text.removeprefix(PREFIX))
    stores = list(stores) if stores is not None else store_dirs()
    found = [s for s in stores if (s / "manifests").is_dir()]
    if not found:
        raise QwenctlError(f"no Ollama model store (looked in {', '.join(map(str, stores))})",
                           hint="set OLLAMA_MODELS to the folder that holds manifests/ and blobs/", code=ExitCode.NOT_FOUND)
    for store in found:
        manifest = store / "manifests" / name.registry / name.namespace / name.model / name.tag
        if manifest.is_file():
            return _read(name, store, manifest)
    raise QwenctlError(f"{PREFIX}{name} is not in Ollama's store ({', '.join(map(str, found))})",
                       hint=f"`ollama pull {name}` fetches it; `ollama list` shows what is there", code=ExitCode.NOT_FOUND)


def _read(name: OllamaName, store: Path, manifest: Path) -> OllamaModel:
    from qwenctl.files import read_json

    doc = read_json(manifest, "Ollama manifest")
    layers = doc.get("layers") if isinstance(doc, dict) else None
    if not isinstance(layers, list) or not all(isinstance(x, dict) for x in layers):
        raise QwenctlError(f"Ollama manifest {manifest} has no list of layers", hint="`ollama pull` it again",
                           code=ExitCode.BAD_INPUT)
    models = [x for x in layers if x.get("mediaType") == MODEL_LAYER]
    if not models:
        raise QwenctlError(f"{PREFIX}{name} has no model layer (its manifest {manifest} lists no {MODEL_LAYER})",
                           hint="is it an adapter or a remote model?", code=ExitCode.BAD_INPUT)
    blob, size = _blob(store, models[0], manifest)
    system = None
    for layer in layers:
        if layer.get("mediaType") == SYSTEM_LAYER:
            path, _ = _blob(store, layer, manifest)
            system = path.read_text(encoding="utf-8", errors="replace")
    return OllamaModel(name, store, manifest, blob, size, system)


def _blob(store: Path, layer: dict, manifest: Path) -> tuple[Path, int]:
    match = _DIGEST.fullmatch(str(layer.get("digest", "")))
    if match is None:
        raise QwenctlError(f"Ollama manifest {manifest}: a layer's digest {layer.get('digest')!r} is not sha256:<hex>",
                           hint="`ollama pull` it again", code=ExitCode.BAD_INPUT)
    # blobs are sha256-<hex>; Ollama before 0.1.x wrote sha256:<hex> where the file system allows it
    for blob in (store / "blobs" / f"sha256-{match['hex']}", store / "blobs" / f"sha256:{match['hex']}"):
        if blob.is_file():
            break
    else:
        raise QwenctlError(f"the blob {store / 'blobs' / ('sha256-' + match['hex'])} that {manifest} names is missing",
                           hint="`ollama pull` the model again", code=ExitCode.NOT_FOUND)
    size = blob.stat().st_size
    expected = layer.get("size")
    if isinstance(expected, int) and expected != size:
        raise QwenctlError(f"Ollama blob {blob} has {size:,} bytes; its manifest says {expected:,}",
                           hint="an unfinished `ollama pull`? pull it again", code=ExitCode.INTEGRITY)
    return blob, size
