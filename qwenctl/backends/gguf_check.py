"""Validate a GGUF file before any engine sees it.

llama.cpp aborts the whole process on some malformed files and answers others with a bare
"failed to load model"; a truncated download is the common case. Reading the header
ourselves (magic, version, metadata, tensor table) and checking every tensor's data extent
against the file size turns each of those into one clear QwenctlError(BAD_INPUT), and costs
a few milliseconds (the header of a real Qwen2.5 GGUF is about 6 MB, mostly the vocabulary).

The header is parsed here rather than with ``gguf.GGUFReader`` because the reader maps
and interprets the whole file and fails on damaged input with assorted low-level
exceptions; only the tensor-type size table comes from the ``gguf`` package.
"""

from __future__ import annotations

import functools
import json
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from qwenctl.errors import ExitCode, QwenctlError, from_os_error
from qwenctl.names import split_parts

MAGIC = b"GGUF"
SUPPORTED_VERSIONS = (2, 3)  # v1 (2023) used 32-bit counts; llama.cpp no longer loads it
ARCHITECTURE = "qwen2"
_DEFAULT_ALIGNMENT = 32
_MAX_STRING = 1 << 26  # a longer string means a corrupt length field, not real metadata
_MAX_DIMS = 4

# GGUF value types -> struct format (strings and arrays handled separately)
_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_STRING, _ARRAY = 8, 9


@dataclass(frozen=True)
class TensorInfo:
    name: str
    ggml_type: int
    shape: tuple[int, ...]
    offset: int  # from the start of the data section
    n_bytes: int

    @property
    def type_name(self) -> str:
        """The ggml type as llama.cpp and the catalog name it ("Q4_K", "F16")."""
        return _ggml_types()["types"][str(self.ggml_type)]["name"]


@dataclass(frozen=True)
class GgufInfo:
    path: str
    version: int
    architecture: str | None  # None in the 2nd..nth part of a split file
    file_size: int
    data_offset: int  # where the tensor data section starts
    metadata: dict[str, Any] = field(repr=False)  # scalar keys; arrays appear as their length
    tensors: tuple[TensorInfo, ...] = field(repr=False)

    @property
    def tensor_bytes(self) -> int:
        return sum(t.n_bytes for t in self.tensors)

    def get(self, key: str, default: Any = None) -> Any:
        """An architecture key without its prefix, e.g. ``get("block_count")`` -> qwen2.block_count."""
        return self.metadata.get(f"{self.architecture}.{key}", self.metadata.get(key, default))


class _Truncated(Exception):
    pass


class _Reader:
    def __init__(self, fh: BinaryIO):
        self.fh = fh
        self.pos = 0

    def read(self, n: int) -> bytes:
        data = self.fh.read(n)
        if len(data) != n:
            raise _Truncated(f"at byte {self.pos + len(data)}, inside the header")
        self.pos += n
        return data

    def unpack(self, fmt: str) -> Any:
        return struct.unpack(fmt, self.read(struct.calcsize(fmt)))[0]

    def string(self) -> str:
        n = self.unpack("<Q")
        if n > _MAX_STRING:
            raise ValueError(f"a metadata string claims {n} bytes at byte {self.pos - 8}")
        return self.read(n).decode("utf-8", "replace")

    def value(self, vtype: int) -> Any:
        if vtype in _SCALARS:
            return self.unpack(_SCALARS[vtype])
        if vtype == _STRING:
            return self.string()
        if vtype == _ARRAY:
            item_type, count = self.unpack("<I"), self.unpack("<Q")
            if item_type in _SCALARS:  # skip fixed-size items in one read
                size = struct.calcsize(_SCALARS[item_type])
                if count * size > _MAX_STRING * 16:
                    raise ValueError(f"a metadata array claims {count} items")
                self.read(count * size)
            else:
                for _ in range(count):
                    self.value(item_type)
            return count
        raise ValueError(f"unknown metadata value type {vtype} at byte {self.pos - 4}")


@functools.lru_cache(maxsize=1)
def _ggml_types() -> dict:
    """qwenctl/data/ggml_types.json: what the numbers in a GGUF mean.

    Not from the gguf package: importing it pulls in sentencepiece, and on the H100 machine that
    import, before llama.cpp loaded a model, crashed the CUDA build with a segmentation fault.
    """
    from importlib.resources import files

    return json.loads(files("qwenctl.data").joinpath("ggml_types.json").read_text())


def _ggml_type_sizes() -> dict[int, tuple[int, int]]:
    """ggml type id -> (elements per block, bytes per block)."""
    return {int(k): (v["block_size"], v["type_size"]) for k, v in _ggml_types()["types"].items()}


def file_type_quant(file_type: Any) -> str | None:
    """A GGUF's ``general.file_type`` (llama.cpp's llama_ftype) as the catalog's quant key ("q4_k_m"), or None."""
    return _ggml_types()["file_types"].get(str(file_type))


def _bad(path: Path, what: str, hint: str) -> QwenctlError:
    return QwenctlError(f"{path} {what}", hint=hint, code=ExitCode.BAD_INPUT)


def read_gguf_header(path: Path) -> GgufInfo:
    """Parse the header and tensor table of one GGUF file; raise QwenctlError(BAD_INPUT) on anything wrong."""
    sizes = _ggml_type_sizes()
    path = Path(path)
    redownload = "the file is damaged or incomplete: delete it and download it again (`qwenctl pull`)"
    try:
        size = path.stat().st_size
        fh = open(path, "rb")
    except FileNotFoundError:
        raise QwenctlError(f"{path} does not exist", code=ExitCode.NOT_FOUND) from None
    except OSError as e:  # a folder, no permission, an I/O error: one line naming the path and the fix
        raise from_os_error(e, path, "read") from None
    with fh:
        r = _Reader(fh)
        try:
            magic = r.read(4)
            if magic != MAGIC:
                raise _bad(path, f"is not a GGUF file (it starts with {magic!r}, not {MAGIC!r})",
                           "qwenctl's llama.cpp backend needs a .gguf model file")
            version = r.unpack("<I")
            if version not in SUPPORTED_VERSIONS:
                raise _bad(path, f"is GGUF version {version}; this llama.cpp reads versions "
                           f"{', '.join(map(str, SUPPORTED_VERSIONS))}", "use a current GGUF conversion of the model")
            n_tensors, n_kv = r.unpack("<Q"), r.unpack("<Q")
            if n_tensors > 1 << 20 or n_kv > 1 << 20:
                raise ValueError(f"it claims {n_tensors} tensors and {n_kv} metadata keys")
            metadata: dict[str, Any] = {}
            for _ in range(n_kv):
                key = r.string()
                metadata[key] = r.value(r.unpack("<I"))
            raw = []
            for _ in range(n_tensors):
                name = r.string()
                n_dims = r.unpack("<I")
                if n_dims > _MAX_DIMS:
                    raise ValueError(f"tensor {name!r} claims {n_dims} dimensions")
                shape = tuple(r.unpack("<Q") for _ in range(n_dims))
                raw.append((name, shape, r.unpack("<I"), r.unpack("<Q")))
        except _Truncated as e:
            raise _bad(path, f"is truncated ({size} bytes; the file ends {e})", redownload) from None
        except (ValueError, struct.error) as e:
            raise _bad(path, f"has a corrupt GGUF header: {e}", redownload) from None

    alignment = metadata.get("general.alignment", _DEFAULT_ALIGNMENT)
    if not isinstance(alignment, int) or alignment <= 0 or alignment & (alignment - 1):
        raise _bad(path, f"has an invalid general.alignment {alignment!r}", redownload)
    data_offset = -(-r.pos // alignment) * alignment

    tensors = []
    for name, shape, ggml_type, offset in raw:
        try:
            block, type_size = sizes[ggml_type]
        except KeyError:
            raise _bad(path, f"tensor {name!r} has tensor type {ggml_type}, unknown to this version of qwenctl",
                       "the file may need a newer llama.cpp, or it is damaged") from None
        n_elements = 1
        for d in shape:
            n_elements *= d
        if shape and shape[0] % block:
            raise _bad(path, f"tensor {name!r}: row length {shape[0]} is not a multiple of its block size {block}",
                       redownload)
        tensors.append(TensorInfo(name, ggml_type, shape, offset, n_elements // block * type_size))

    for t in tensors:
        end = data_offset + t.offset + t.n_bytes
        if t.offset % alignment or end > size:
            if end > size:
                raise _bad(path, f"is truncated: tensor {t.name!r} ends at byte {end:,} but the file has {size:,} bytes",
                           redownload)
            raise _bad(path, f"tensor {t.name!r} is not aligned to {alignment} bytes", redownload)

    arch = metadata.get("general.architecture")
    return GgufInfo(str(path), version, arch if isinstance(arch, str) else None, size, data_offset, metadata,
                    tuple(tensors))


def part_paths(path: Path) -> list[Path]:
    """All parts of a split GGUF given its first part (``name-00001-of-00003.gguf``); [path] otherwise."""
    return [Path(path).with_name(name) for name in split_parts(Path(path).name)]


def read_parts(path: Path) -> list[GgufInfo]:
    """The headers of a model file and of every further part of a split one, the first one checked
    (``check_gguf``): the one reader of a (split) GGUF's tensor table."""
    return [check_gguf(path)] + [read_gguf_header(p) for p in part_paths(path)[1:]]


def check_gguf(path: Path, *, architecture: str = ARCHITECTURE) -> GgufInfo:
    """Check a model file (and, for a split model, every part) before loading; return the first part's header.

    Raises QwenctlError with code BAD_INPUT for a file that is not GGUF, is truncated or damaged,
    or holds another architecture than `architecture`; NOT_FOUND for a missing part.
    """
    parts = part_paths(Path(path))
    if Path(path) != parts[0]:
        raise QwenctlError(f"{path} is part of a split model", hint=f"load the first part, {parts[0].name}",
                           code=ExitCode.BAD_INPUT)
    infos = []
    for part in parts:
        if not part.exists():
            if len(parts) == 1:
                raise QwenctlError(f"no such file: {part}", code=ExitCode.NOT_FOUND)
            raise QwenctlError(f"{part.name}, part of the split model {parts[0].name}, is missing",
                               hint="download every part (`qwenctl pull` fetches all of them)", code=ExitCode.NOT_FOUND)
        infos.append(read_gguf_header(part))
    first = infos[0]
    if first.architecture != architecture:
        raise QwenctlError(
            f"{path} holds a {first.architecture or 'unnamed'!s} model, not {architecture}",
            hint="qwenctl runs Qwen2.5 models (GGUF architecture qwen2)", code=ExitCode.BAD_INPUT)
    declared = first.metadata.get("split.count")
    if isinstance(declared, int) and declared != len(parts):
        raise _bad(Path(path), f"says it is one of {declared} parts but its name says {len(parts)}",
                   "keep the part files under the names they were published with")
    return first
