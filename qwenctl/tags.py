"""Short names for the catalog's models, as Ollama writes them: ``7b``, ``7b:q8_0``, ``qwen2.5:7b``,
``qwen2.5:7b-instruct-q4_k_m``.

A tag names a size and, optionally, a quant; whatever it leaves open (the quant, the engine) the
planner fills in, so ``7b`` runs the 7B model in the quant this machine runs best. Both directions
live here: ``parse_tag`` reads what the user typed, ``tag_of`` names a cached file (``qwenctl models``).
The catalog (qwenctl/data/models.json) is the only source of sizes, quants, repos and file names.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from qwenctl.catalog import load_catalog
from qwenctl.errors import ExitCode, QwenctlError

FAMILY = "qwen2.5"

# Ollama's and llama.cpp's spellings of a catalog quant key (Ollama writes q4_K_M; llama.cpp f16).
_QUANT_ALIASES = {"f16": "fp16", "4-bit": "4bit", "8-bit": "8bit"}

_SHORT = re.compile(r"(?P<size>\d+(?:\.\d+)?b)(?::(?P<quant>[\w.-]+))?", re.IGNORECASE)
_FAMILY = re.compile(r"qwen2\.5(?::(?P<rest>[\w.-]+))?", re.IGNORECASE)
_OLLAMA_REST = re.compile(r"(?P<size>\d+(?:\.\d+)?b)(?:-instruct)?(?:-(?P<quant>[\w.]+))?", re.IGNORECASE)
_OTHER_FAMILY = re.compile(r"qwen[\w.-]*(?::[\w.-]+)?", re.IGNORECASE)


@dataclass(frozen=True)
class Tag:
    """What a short name asks for; None leaves the choice to the planner."""

    size: str | None  # catalog size, "7B"
    quant: str | None  # catalog quant key, "q4_k_m", "4bit"
    text: str  # as typed

    @property
    def name(self) -> str:
        """The canonical short name: "7b:q4_k_m", "7b", or "qwen2.5" for the planner's choice."""
        if self.size is None:
            return FAMILY
        return self.size.lower() + (f":{self.quant}" if self.quant else "")


def parse_tag(text: str) -> Tag | None:
    """The tag `text` spells, None when it is no tag at all (a repo, a path, an ollama: name).

    A tag-shaped name that the catalog lacks (``9b``, ``7b:q9_k``, ``qwen2.5-coder:7b``) is a
    QwenctlError (NOT_FOUND) naming what there is.
    """
    text = text.strip()
    short = _SHORT.fullmatch(text)
    if short:
        return Tag(_size(short["size"]), _quant(short["quant"], text) if short["quant"] else None, text)
    family = _FAMILY.fullmatch(text)
    if family:
        rest = family["rest"]
        if rest is None or rest.lower() == "latest":
            return Tag(None, None, text)
        parts = _OLLAMA_REST.fullmatch(rest)
        if parts is None:
            raise QwenctlError(f"{text!r} names no Qwen2.5 Instruct model", hint=_sizes_hint(), code=ExitCode.NOT_FOUND)
        return Tag(_size(parts["size"]), _quant(parts["quant"], text) if parts["quant"] else None, text)
    if _OTHER_FAMILY.fullmatch(text) and ":" in text:
        raise QwenctlError(
            f"{text!r} is not a Qwen2.5 Instruct model qwenctl knows",
            hint="give a GGUF as REPO[:FILE] or a path, or ollama:NAME[:TAG] for a model in Ollama's store",
            code=ExitCode.NOT_FOUND,
        )
    return None


def _sizes_hint() -> str:
    return "sizes: " + ", ".join(m.size.lower() for m in load_catalog().models) + " (e.g. 7b, 7b:q8_0, qwen2.5:7b)"


def _size(text: str) -> str:
    return load_catalog().model(text).size  # NOT_FOUND with the list of sizes


def _quant(text: str, whole: str) -> str:
    key = _QUANT_ALIASES.get(text.lower(), text.lower())
    catalog = load_catalog()
    known = catalog.quants("gguf") + catalog.quants("mlx")
    if key not in known:
        raise QwenctlError(f"{whole!r}: no Qwen2.5 quant named {text!r}", hint=f"quants: {', '.join(known)}",
                           code=ExitCode.NOT_FOUND)
    return key


def tag_of(repo: str, filename: str | None = None) -> str | None:
    """The short name of a cached model: a catalog GGUF file (its first part) or MLX repo; None for anything else."""
    for model in load_catalog().models:
        for w in model.weights:
            if w.repo.lower() != repo.lower():
                continue
            if w.format == "mlx" or (filename is not None and filename in w.file_names[:1]):
                return f"{model.size.lower()}:{w.quant}"
    return None


def spec_of(text: str) -> str:
    """REPO[:FILE] for a short name with its quant (7b:q8_0 -> the catalog's repo and first file); anything else as is."""
    try:
        tag = parse_tag(text)
    except QwenctlError:
        return text
    if tag is None or tag.size is None or tag.quant is None:
        return text
    model = load_catalog().model(tag.size)
    w = next(w for w in model.weights if w.quant == tag.quant)
    return f"{w.repo}:{w.file_names[0]}" if w.file_names else w.repo
