"""What a given GGUF file costs on a machine: memory per device and tokens per second.

The planner predicts for catalog weights before a download; this module predicts for a file
at hand (``bench``'s predicted column, the smoke test, the estimate-accuracy benchmark),
from the file's own header and tensor table.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from qwenctl.catalog import Architecture, ModelSpec, RepoFile, Weights, load_catalog
from qwenctl.cluster import Worker
from qwenctl.device_speed import DeviceSpeed, speed_model_date
from qwenctl.errors import ExitCode, QwenctlError
from qwenctl.estimate import (
    EMBEDDING,
    MemoryEstimate,
    PoolMemory,
    WeightSplit,
    estimate_memory,
    estimate_split_memory,
    idle_gpu,
    load_calibration,
    split_from_tensors,
    tied_embeddings,
)
from qwenctl.hardware.facts import AppleSilicon, Hardware
from qwenctl.hardware.nvidia_specs import resident_threads
from qwenctl.machine import apple_device, cuda_build, cuda_device, gpu_offload, host_device
from qwenctl.speed import estimate_speed

if TYPE_CHECKING:
    from qwenctl.backends import LoadOptions


@dataclass(frozen=True)
class FilePrediction:
    """What the memory and speed models predict for one local GGUF loaded with given options.

    ``size`` names the catalog model whose dimensions the file has ("0.5B"), or is None when
    the architecture was built from the header alone. Memory pools are those of
    ``estimate_memory`` (``vram`` + ``ram`` with CUDA, ``ram`` on the CPU, ``unified`` on Metal).
    """

    path: str
    size: str | None
    file_bytes: int
    backend: str  # "llama.cpp"
    device: str  # "cuda" | "metal" | "cpu"
    n_gpu_layers: int  # as llama.cpp takes it: -1 or more than n_layers = every layer and the output
    n_layers: int
    arch: Architecture  # as read from the header
    n_ctx: int
    kv_cache_type: str
    flash_attn: bool | None  # as the load options had it (None: llama.cpp's auto rule)
    memory: tuple[PoolMemory, ...]
    tg_tps: float
    tg_tps_low: float
    pp_tps: float
    source: str  # "qwenctl estimate (calibration <date>)", for bench's predicted column

    @property
    def bytes_by_device(self) -> tuple[int, ...]:
        """Each device's predicted memory, llama.cpp's device order, where several devices are in play."""
        spread = sorted((p for p in self.memory if p.device is not None), key=lambda p: p.device or 0)
        return tuple(p.total_bytes for p in spread) if len(spread) > 1 else ()

    def pool(self, name: str) -> PoolMemory | None:
        return next((p for p in self.memory if p.pool == name), None)

    @property
    def gpu_bytes(self) -> int | None:
        """Device memory: VRAM on CUDA (every local GPU's), the GPU's unified share on Metal; None on the CPU."""
        vram = [p.total_bytes for p in self.memory if p.pool == "vram"]
        if vram:
            return sum(vram)
        p = self.pool("unified")
        return p.total_bytes if p else None

    @property
    def host_bytes(self) -> int | None:
        p = self.pool("ram")
        return p.total_bytes if p else None


Tensors = list[tuple[str, int, tuple[int, ...], str]]  # (name, bytes, shape, ggml type name) of every part's tensors


def tensor_table(infos) -> Tensors:
    """A (split) GGUF's tensors as ``_file_model`` and ``estimate.split_from_tensors`` read them."""
    return [(t.name, t.n_bytes, t.shape, t.type_name) for i in infos for t in i.tensors]


def _file_model(info, tensors: Tensors) -> tuple[ModelSpec, str | None]:
    """The catalog model with this header's dimensions, or a spec built from the header."""
    catalog = load_catalog()
    tied = tied_embeddings(name for name, *_ in tensors)
    embd_shape = next((shape for name, _, shape, _ in tensors if name == EMBEDDING), ())
    hidden = int(info.get("embedding_length", 0))
    heads = int(info.get("attention.head_count", 0))
    vocab = int(info.metadata.get("tokenizer.ggml.tokens") or (embd_shape[1] if len(embd_shape) > 1 else 0))
    arch = Architecture(
        hidden_size=hidden,
        n_layers=int(info.get("block_count", 0)),
        n_heads=heads,
        n_kv_heads=int(info.get("attention.head_count_kv", heads)),
        head_dim=int(info.get("attention.key_length", hidden // heads if heads else 0)),
        intermediate_size=int(info.get("feed_forward_length", 0)),
        vocab_size=vocab,
        tied_embeddings=tied,
        context_native=int(info.get("context_length", 0)),
        context_max=int(info.get("context_length", 0)),
    )
    if not (arch.hidden_size and arch.n_layers and arch.n_heads and arch.vocab_size):
        raise QwenctlError(f"{info.path} lacks the qwen2 dimensions the estimate needs", code=ExitCode.BAD_INPUT)
    # not whether the file ties its output (Qwen's own 0.5B-3B files store a copy of a tied architecture's), and the
    # feed-forward as k-quant blocks hold it (Qwen's own 72B files pad 29,568 to 29,696; docs/planning.md)
    dims = lambda a: (a.hidden_size, a.n_layers, a.n_heads, a.n_kv_heads, a.head_dim, -(-a.intermediate_size // 256))
    for m in catalog.models:
        if dims(m.arch) == dims(arch):
            return replace(m, arch=replace(m.arch, vocab_size=arch.vocab_size)), m.size
    params = 0
    for _, _, shape, _ in tensors:
        n = 1
        for d in shape:
            n *= d
        params += n
    spec = ModelSpec(size=f"{params / 1e9:.2g}B (from header)", hf_repo="", license="", params=params, arch=arch,
                     scores=(), score=0.0, weights=(), sources=(info.path,))
    return spec, None


def catalog_entry(path: Path) -> tuple[str | None, str | None]:
    """(catalog size, quant key) a GGUF's header names: its dimensions and ``general.file_type``; None where none match."""
    from qwenctl.backends.gguf_check import file_type_quant, read_parts

    infos = read_parts(Path(path))
    _, size = _file_model(infos[0], tensor_table(infos))
    return size, file_type_quant(infos[0].metadata.get("general.file_type"))


def predict_for_file(
    hardware: Hardware, path: Path | str, options: LoadOptions, backend: str = "llama.cpp", depth: int | None = None,
    workers: tuple[Worker, ...] = (), cuda_graphs: int | None = None,
) -> FilePrediction:
    """Predicted memory per pool and tok/s for loading the GGUF at `path` with `options` on `hardware`.

    `options` is a ``qwenctl.backends.LoadOptions``. The architecture comes from the GGUF
    header (matched to a catalog size when the dimensions agree) and the weights from the
    file's own tensor table, so quant mixes the catalog does not know (llama.cpp's fallbacks
    for rows k-quants cannot split, a custom quantization) are counted exactly. The device
    follows what llama.cpp would do on this machine: CUDA when an NVIDIA GPU is present, the
    installed llama-cpp-python can offload and ``n_gpu_layers != 0``; Metal on Apple Silicon;
    the CPU otherwise. ``depth``: tokens in the context when memory and decoding are measured (None: memory at n_ctx,
    as the planner predicts it, see ``estimate_memory``, and decoding from an empty context, as bench's tg runs);
    ``cuda_graphs`` likewise (None: the planner's worst case).
    """
    from qwenctl.backends.gguf_check import file_type_quant, part_paths, read_parts

    if backend != "llama.cpp":
        raise QwenctlError(f"file predictions cover GGUF files in llama.cpp, not {backend!r}", code=ExitCode.BAD_INPUT)
    path = Path(path)
    infos = read_parts(path)
    info, parts = infos[0], part_paths(path)
    tensors = tensor_table(infos)
    file_bytes = sum(i.file_size for i in infos)
    model, size = _file_model(info, tensors)
    split = split_from_tensors(tensors, model.arch.n_layers)
    quant = file_type_quant(info.metadata.get("general.file_type")) or ""
    weights = Weights(format="gguf", quant=quant, label=path.name, repo="",
                      files=tuple(RepoFile(p.name, i.file_size, None) for p, i in zip(parts, infos)),
                      total_bytes=file_bytes, bytes_exact=True, bits=0, kld=0.0, embd_type=None, output_type=None,
                      source=str(path))

    if isinstance(hardware.apple, AppleSilicon) and options.n_gpu_layers != 0:
        device = "metal"
    elif hardware.gpus and gpu_offload(hardware) and not (options.cpu_alone and not workers):
        device = "cuda"  # with n_gpu_layers 0 too: the CUDA build still holds device memory, unless no GPU joins the load
    else:
        device = "cpu"
    ngl = options.n_gpu_layers if device == "cuda" else (-1 if device == "metal" else 0)
    slots = _split_slots(hardware, options, workers) if device in ("cuda", "cpu") else ()
    if slots:
        return _split_prediction(hardware, path, options, model, size, weights, split, file_bytes, slots, device)
    main_gpu = next((g for g in hardware.gpus if g.index == options.main_gpu), None) if device == "cuda" else None
    est = estimate_memory(model, weights, backend, device, options.n_ctx, ngl, options.kv_cache_type,
                          bool(options.flash_attn), split=split, depth=depth, cuda_graphs=cuda_graphs,
                          resident_threads=resident_threads(main_gpu) if main_gpu else None,
                          cuda_runtime=device == "cpu" and cuda_build(hardware))
    if device == "cuda" and len(hardware.gpus) > 1 and options.split_mode == "none":
        # the model on the main GPU, an idle CUDA context on every other visible one
        est = MemoryEstimate(tuple(replace(p, device=options.main_gpu) if p.pool == "vram" else p for p in est.pools)
                             + tuple(idle_gpu(g.index, resident_threads(g)) for g in hardware.gpus if g.index != options.main_gpu))
    host_speed = host_device(hardware, options.n_threads)
    gpu_speed: DeviceSpeed | None = None
    if device == "cuda":
        gpu_speed = cuda_device(hardware.gpus[0])
    elif device == "metal":
        assert isinstance(hardware.apple, AppleSilicon)
        gpu_speed = apple_device(hardware.apple, "metal")
    # auto (None) turns flash attention on wherever the GPU backend has it
    sp = estimate_speed(model, weights, gpu_speed, host_speed, ngl if device == "cuda" else -1, options.kv_cache_type,
                        split=split, flash_attn=options.flash_attn is not False)
    tg = sp.tg_at(depth) if depth else sp.tg_tps
    return FilePrediction(
        path=str(path), size=size, file_bytes=file_bytes, backend=backend, device=device, n_gpu_layers=ngl,
        n_layers=model.arch.n_layers, arch=model.arch, n_ctx=options.n_ctx, kv_cache_type=options.kv_cache_type,
        flash_attn=options.flash_attn, memory=est.pools, tg_tps=tg, tg_tps_low=sp.tg_tps_low * tg / sp.tg_tps, pp_tps=sp.pp_tps,
        source=f"qwenctl estimate (memory {load_calibration()['version']}, speed {speed_model_date()})",
    )


def _split_slots(hardware: Hardware, options: LoadOptions, workers: tuple[Worker, ...]) -> tuple:
    """The devices a split load spreads over (machine.Slot, llama.cpp's order), or () for one device."""
    from qwenctl.machine import gpu_slots, host_budget, worker_slots

    if options.split_mode not in ("layer", "tensor") or (len(hardware.gpus) < 2 and not options.workers):
        return ()
    remote = worker_slots(hardware, tuple(w for w in workers if w.endpoint in options.workers))[0]
    local = gpu_slots(hardware, host_budget(hardware)[0]) if hardware.gpus else ()
    if options.split_mode == "tensor":
        return local
    return remote + local


def _split_prediction(hardware: Hardware, path: Path, options: LoadOptions, model: ModelSpec, size: str | None,
                      weights: Weights, split: WeightSplit, file_bytes: int, slots: tuple, device: str) -> FilePrediction:
    from qwenctl.machine import peer_link
    from qwenctl.speed import Links, estimate_placed_speed
    from qwenctl.split import place_layers

    mode = options.split_mode or "layer"
    shares = options.tensor_split or tuple(1.0 for _ in slots)
    placement = place_layers(model.arch.n_layers, options.n_gpu_layers, shares)
    flash = bool(options.flash_attn) if options.flash_attn is not None else True
    est = estimate_split_memory(model, weights, options.n_ctx, mode, placement, shares, tuple(s.kind for s in slots),
                                options.kv_cache_type, flash, split, resident_threads=tuple(s.resident_threads for s in slots))
    # llama.cpp sends a worker its tensors from the mmap'd file and keeps those pages mapped: resident in this
    # process (RSS), though clean and reclaimable, so the planner's budget leaves them out (measured: 0.5B over
    # two CPU workers, RSS 607 MiB = 223 MiB + the 377 MiB file)
    sent = sum(p.weights_bytes for p in est.pools if p.pool == "remote")
    est = MemoryEstimate(tuple(replace(p, weights_bytes=p.weights_bytes + sent) if p.pool == "ram" else p for p in est.pools))
    peer, peer_source = peer_link(hardware)
    links = Links(remote=tuple(s.link for s in slots), peer_bytes_per_s=peer, peer_source=peer_source,
                  peer_nvlink=peer_source.startswith("NVLink"))
    sp = estimate_placed_speed(model, weights, tuple(s.speed for s in slots), host_device(hardware, options.n_threads), placement, mode, shares,
                               links, options.kv_cache_type, split, flash_attn=flash)
    return FilePrediction(
        path=str(path), size=size, file_bytes=file_bytes, backend="llama.cpp", device=device,
        n_gpu_layers=options.n_gpu_layers, n_layers=model.arch.n_layers, arch=model.arch, n_ctx=options.n_ctx,
        kv_cache_type=options.kv_cache_type, flash_attn=options.flash_attn, memory=est.pools, tg_tps=sp.tg_tps,
        tg_tps_low=sp.tg_tps_low, pp_tps=sp.pp_tps,
        source=f"qwenctl estimate (memory {load_calibration()['version']}, speed {speed_model_date()}), {mode} split",
    )


def weights_read_per_token(model_path: Path) -> int | None:
    """Bytes of weights one decoding step reads: every matrix, except that an untied token
    embedding is only looked up (one row), while a tied one is also the output matrix."""
    path = Path(model_path)
    if path.is_file():
        from qwenctl.backends.gguf_check import read_parts

        tensors = [t for info in read_parts(path) for t in info.tensors]
        untied = not tied_embeddings(t.name for t in tensors)
        return sum(t.n_bytes for t in tensors if not (untied and t.name == EMBEDDING))
    files = list(path.glob("*.safetensors"))
    if not files:
        return None
    total = sum(f.stat().st_size for f in files)
    config = json.loads((path / "config.json").read_text())
    if not config.get("tie_word_embeddings", False):
        # the embedding matrix is the same size as lm_head: subtract one of the two
        bytes_per = total / max(_param_count(config), 1)
        total -= int(config["vocab_size"] * config["hidden_size"] * bytes_per)
    return total


def _param_count(config: dict) -> int:
    h, f, v, n = config["hidden_size"], config["intermediate_size"], config["vocab_size"], config["num_hidden_layers"]
    kv = config["num_key_value_heads"] * (h // config["num_attention_heads"])
    per_layer = 2 * h * h + 2 * h * kv + 3 * h * f + h + 2 * kv + 2 * h
    return v * h * (1 if config.get("tie_word_embeddings") else 2) + n * per_layer + h
