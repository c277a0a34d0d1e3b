"""One reading of MODEL for every command (run, pull, bench, serve, and the config file's `model`).

    7b  7b:q8_0  qwen2.5:7b  qwen2.5:7b-instruct-q4_k_m   the catalog: a size (and quant); the planner completes it
    qwen2.5  qwen2.5:latest                              the planner's choice, as no MODEL at all
    REPO  REPO:FILE  REPO:QUANT                          a Hugging Face repo; a catalog repo is the catalog entry
    PATH                                                 a GGUF file (known by its magic, any name), an MLX
                                                         folder, or a folder holding one GGUF
    ollama:NAME[:TAG]                                    a model in Ollama's store, loaded where it lies

``parse_model`` only reads the text (and whether a path exists); nothing is fetched or loaded. The
pipeline takes the result from there: a catalog entry is planned, a repo pulled, a path or an Ollama
blob loaded in place. The naming rules themselves (REPO[:FILE], tags, quants in file names) are
qwenctl/names.py's and qwenctl/tags.py's.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from qwenctl.errors import ExitCode, QwenctlError
from qwenctl.names import check_repo_id, looks_like_path, parse_spec

GGUF_MAGIC = b"GGUF"


@dataclass(frozen=True)
class ModelRef:
    """What a MODEL argument names."""

    text: str  # as typed
    kind: str  # "catalog" | "repo" | "path" | "ollama"
    size: str | None = None  # catalog: "7B", None = the planner's choice
    quant: str | None = None  # catalog: a quant key ("q4_k_m", "4bit"), None = the planner's choice
    backend: str | None = None  # catalog: "mlx" for an MLX repo of the catalog
    repo: str | None = None  # repo; catalog: the repo it was named by, if it was
    file: str | None = None  # repo: a file name or a quant after REPO:, None = the planned quant / the whole repo
    path: str | None = None  # path

    @property
    def planned(self) -> bool:
        """Whether the planner chooses what is left open (a catalog entry)."""
        return self.kind == "catalog"


def parse_model(text: str) -> ModelRef:
    """The one reading of MODEL (see the module's doc); QwenctlError when it names nothing."""
    from qwenctl.tags import parse_tag

    text = text.strip()
    if not text:
        raise QwenctlError("MODEL is empty", hint=_EXAMPLES, code=ExitCode.USAGE)
    if text.startswith("ollama:"):
        return ModelRef(text, "ollama")
    path = Path(text).expanduser()
    if looks_like_path(text) or (path.exists() and not _tag_shaped(text)):
        return ModelRef(text, "path", path=text)  # as typed: errors name it so
    tag = parse_tag(text)
    if tag is not None:
        return ModelRef(text, "catalog", size=tag.size, quant=tag.quant)
    if "/" not in text.partition(":")[0]:
        raise QwenctlError(f"{text!r} is not a model qwenctl knows", hint=_EXAMPLES, code=ExitCode.NOT_FOUND)
    repo, name = parse_spec(text)
    check_repo_id(repo)
    entry = catalog_entry(repo, name)
    if entry is not None:
        return entry
    return ModelRef(text, "repo", repo=repo, file=name)


_EXAMPLES = "MODEL is a size (7b), size:quant (7b:q8_0), qwen2.5:7b, REPO[:FILE], a path, or ollama:NAME[:TAG]"


def _tag_shaped(text: str) -> bool:
    from qwenctl.tags import parse_tag

    try:
        return parse_tag(text) is not None
    except QwenctlError:
        return True


def catalog_entry(repo: str, name: str | None) -> ModelRef | None:
    """A GGUF repo of the catalog (Qwen's own) as the catalog entry it is, so the planner picks its quant and
    load settings; None for any other repo (an MLX repo is one model: it is run as named), or a file the
    catalog does not list."""
    from qwenctl.catalog import load_catalog
    from qwenctl.names import split_parts

    text = f"{repo}:{name}" if name else repo
    for model in load_catalog().models:
        for w in model.weights:
            if w.repo.lower() != repo.lower():
                continue
            if w.format == "mlx":  # a whole repo, run as it is (mlx[cpu] runs it off Apple Silicon too); 7b:4bit plans it
                return None
            if name is None:
                return ModelRef(text, "catalog", size=model.size, backend="llama.cpp", repo=w.repo)
            if name.lower() == w.quant or name in w.file_names or split_parts(name)[0] in w.file_names:
                return ModelRef(text, "catalog", size=model.size, quant=w.quant, backend="llama.cpp", repo=w.repo)
    return None


def is_gguf(path: Path) -> bool:
    """A GGUF file whatever its name (Ollama's blobs are sha256-…): by its first four bytes."""
    try:
        with open(path, "rb") as f:
            return f.read(4) == GGUF_MAGIC
    except OSError:
        return False
