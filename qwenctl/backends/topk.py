"""llama.cpp's top-k, for the device, computed over rows of at most 1024 logits (issue 13).

Why: on CUDA, llama.cpp's top-k sampler (``ggml_top_k`` over the whole row) sorts Qwen's 151,936
logits with a full CUB argsort per sequence (before CCCL 3.2; from 3.2 one CUB top-k launch per
row), about 0.3 ms a sequence on an H200, which dominates a 16-sequence decode step. Rows of at
most 1024 columns are sorted instead by one bitonic kernel for all rows at once
(ggml-cuda/argsort.cu), so this sampler selects in levels: the logits are cut into rows of
`width` columns, each row keeps its k largest (one ``ggml_argsort_top_k`` for all rows, not
``ggml_top_k``, which loops over rows with CCCL >= 3.2), the survivors form the next level's
input, until at most 1024 remain and a last sort picks the k. A value in the global top k is in
its row's top k, so the survivors contain the top k and the result is the same set of candidates
as llama.cpp's top-k; only the order among equal logits may differ, as it does between llama.cpp's
own backends. The output is what ``llama_sampler_top_k_backend_apply`` produces: the k logits
and their token ids (ids looked up through candidates an earlier sampler left, if any).

Positions travel as floats from ``ggml_arange`` (exact below 2**24) and become token ids at the
end; the values sorted are the logits clamped above -3e38 (a -inf logit included), and rows are
padded with -FLT_MAX, so a pad position can never be chosen over a token (a pad's position is 0,
a real token, even so). Where levels would not shrink the row (k > width / 2) or the row fits one
sort (<= 1024), the sampler builds llama.cpp's own top-k graph instead; so it does where the logits
are on the CPU (a CPU-only build, or the output layer left on the CPU): there llama.cpp's top-k is a
partial sort, 0.3 ms over Qwen's row against 4-5 ms for the levels' sorts (2 cores), and the
sampler names itself "top-k" there, "top-k(hier)" where it runs the levels (GPUs).

Python runs only when llama.cpp builds a sampling graph (``backend_apply``: a reservation, a new
batch shape, a KV-size step; graphs are reused in between), never per token: the sampler has no
inputs, no accept, no reset. On the host (a backend that lacks an op, where llama.cpp runs the rest
of the chain on the copied-back logits) ``apply`` is a held ``llama_sampler_init_top_k``, called
through one Python callback per token. The callbacks and the interface struct live as long as the
module, as C's static interface does; each sampler's state lives in `_live` until llama.cpp frees
the sampler (the chain that owns it does).
"""

from __future__ import annotations

import ctypes
import itertools
import logging
import math
from dataclasses import dataclass, field
from functools import cache

log = logging.getLogger("qwenctl.sampling")

WIDTH = 128  # columns per row of a level; 151,936 = 1187 x 128
SORT_MAX = 1024  # the widest row CUDA sorts with one bitonic kernel for every row
NAME = "top-k(hier)"

_CLAMP = -3.0e38  # below any real logit; -inf becomes this, so that...
_PAD = -3.4028234663852886e38  # ...the pad (-FLT_MAX) is below every token
_EXACT = 1 << 24  # float positions are exact up to here
_GGML_TYPE_F32, _GGML_TYPE_I32 = 0, 26  # ggml.h enum ggml_type
_GPU_TYPES = (1, 2)  # ggml-backend.h enum ggml_backend_dev_type: GPU, IGPU
_PROBE = 128 * 1024 + 1  # llama.cpp probes with 128 * 1024 candidates; +1 so that every level pads
_GRAPH_SIZE = 2048  # GGML_DEFAULT_GRAPH_SIZE, llama.cpp's probe graph
# llama.h's struct llama_sampler_i, field by field: the binding must declare the same to be used
_IFACE_FIELDS = ("name", "accept", "apply", "reset", "clone", "free", "backend_init", "backend_accept",
                 "backend_apply", "backend_set_input", "backend_reset", "copy_state")

_P = ctypes.c_void_p


class _Data(ctypes.Structure):
    """llama.h's struct llama_sampler_data: the tensors a backend sampler reads and replaces."""

    _fields_ = [("logits", _P), ("probs", _P), ("sampled", _P), ("candidates", _P)]


class _Sampler(ctypes.Structure):
    _fields_ = [("iface", _P), ("ctx", _P)]


class _Iface(ctypes.Structure):
    """llama_sampler_i with plain pointers (ctypes cannot return a typed pointer from a callback)."""

    _fields_ = [
        ("name", ctypes.CFUNCTYPE(_P, _P)),
        ("accept", ctypes.CFUNCTYPE(None, _P, ctypes.c_int32)),
        ("apply", ctypes.CFUNCTYPE(None, _P, _P)),
        ("reset", ctypes.CFUNCTYPE(None, _P)),
        ("clone", ctypes.CFUNCTYPE(_P, _P)),
        ("free", ctypes.CFUNCTYPE(None, _P)),
        ("backend_init", ctypes.CFUNCTYPE(ctypes.c_bool, _P, _P, ctypes.c_uint32)),
        ("backend_accept", ctypes.CFUNCTYPE(None, _P, _P, _P, _P)),
        ("backend_apply", ctypes.CFUNCTYPE(None, _P, _P, _P, ctypes.POINTER(_Data))),
        ("backend_set_input", ctypes.CFUNCTYPE(None, _P)),
        ("backend_reset", ctypes.CFUNCTYPE(None, _P)),
        ("copy_state", ctypes.CFUNCTYPE(None, _P, _P)),
    ]


class _InitParams(ctypes.Structure):
    _fields_ = [("mem_size", ctypes.c_size_t), ("mem_buffer", _P), ("no_alloc", ctypes.c_bool)]


@dataclass
class _State:
    k: int
    width: int
    inner: object  # llama.cpp's own top-k (a ctypes pointer): the host apply, and the graph where levels do not pay
    label: ctypes.Array = field(default_factory=lambda: ctypes.create_string_buffer(NAME.encode()))
    graph_builds: int = 0
    hierarchical: bool = False  # decided by backend_init: whether the logits are on a GPU


_live: dict[int, _State] = {}
_keys = itertools.count(1)


# (name, restype, argtypes) of the ggml functions used, from libggml-base
_GGML = [
    ("ggml_nelements", ctypes.c_int64, [_P]),
    ("ggml_reshape_1d", _P, [_P, _P, ctypes.c_int64]),
    ("ggml_reshape_2d", _P, [_P, _P, ctypes.c_int64, ctypes.c_int64]),
    ("ggml_reshape_3d", _P, [_P, _P, ctypes.c_int64, ctypes.c_int64, ctypes.c_int64]),
    ("ggml_view_1d", _P, [_P, _P, ctypes.c_int64, ctypes.c_size_t]),
    ("ggml_clamp", _P, [_P, _P, ctypes.c_float, ctypes.c_float]),
    ("ggml_fill", _P, [_P, _P, ctypes.c_float]),
    ("ggml_concat", _P, [_P, _P, _P, ctypes.c_int]),
    ("ggml_pad", _P, [_P, _P, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_int]),
    ("ggml_arange", _P, [_P, ctypes.c_float, ctypes.c_float, ctypes.c_float]),
    ("ggml_argsort_top_k", _P, [_P, _P, ctypes.c_int]),
    ("ggml_get_rows", _P, [_P, _P, _P]),
    ("ggml_cast", _P, [_P, _P, ctypes.c_int]),
    ("ggml_set_name", _P, [_P, ctypes.c_char_p]),
    # the op-support probe, as llama.cpp's llama_sampler_backend_support
    ("ggml_backend_buft_get_device", _P, [_P]),
    ("ggml_backend_dev_supports_op", ctypes.c_bool, [_P, _P]),
    ("ggml_backend_dev_name", ctypes.c_char_p, [_P]),
    ("ggml_backend_dev_type", ctypes.c_int, [_P]),
    ("ggml_op_desc", ctypes.c_char_p, [_P]),
    ("ggml_init", _P, [_InitParams]),
    ("ggml_free", None, [_P]),
    ("ggml_tensor_overhead", ctypes.c_size_t, []),
    ("ggml_graph_overhead_custom", ctypes.c_size_t, [ctypes.c_size_t, ctypes.c_bool]),
    ("ggml_new_graph_custom", _P, [_P, ctypes.c_size_t, ctypes.c_bool]),
    ("ggml_new_tensor_1d", _P, [_P, ctypes.c_int, ctypes.c_int64]),
    ("ggml_build_forward_expand", None, [_P, _P]),
    ("ggml_graph_n_nodes", ctypes.c_int, [_P]),
    ("ggml_graph_node", _P, [_P, ctypes.c_int]),
]


@cache
def _ggml():
    """libggml-base from the directory llama-cpp-python loaded libllama from (LLAMA_CPP_LIB_PATH included)."""
    import llama_cpp.llama_cpp as binding
    from llama_cpp._ctypes_extensions import load_shared_library

    lib = load_shared_library("ggml-base", binding._base_path)
    for name, restype, argtypes in _GGML:
        fn = getattr(lib, name)
        fn.restype, fn.argtypes = restype, argtypes
    return lib


@cache
def why_unavailable() -> str:
    """Empty when this llama-cpp-python can run the sampler; else why not (the chain then uses llama.cpp's top-k)."""
    try:
        import llama_cpp as lc

        fields = tuple(f[0] for f in lc.llama_sampler_i._fields_)
        if fields != _IFACE_FIELDS or not hasattr(lc, "llama_sampler_data"):
            return "this llama-cpp-python's sampler interface is not the one the hierarchical top-k was written for"
        _ggml()
    except (ImportError, OSError, AttributeError) as e:
        return f"libggml-base could not be used ({e})"
    return ""


def init(k: int, width: int | None = None):
    """A new hierarchical top-k sampler (a llama_sampler pointer, as llama_sampler_init_top_k returns); rows of
    `width`, else of `WIDTH` as it is now (benchmarks/sampler_step.py compares widths through it)."""
    import llama_cpp as lc

    key = next(_keys)
    _live[key] = _State(k, width or WIDTH, lc.llama_sampler_init_top_k(k))
    return lc.llama_sampler_init(ctypes.cast(ctypes.pointer(_iface()), ctypes.POINTER(lc.llama_sampler_i)), key)


def graph_builds(smpl) -> int:
    """How many times llama.cpp had this sampler build its graph (probes included): the only Python it runs on the device."""
    return _state(ctypes.cast(smpl, _P).value)[1].graph_builds


# --- the callbacks ----------------------------------------------------------------------------------
def _state(smpl) -> tuple[int, _State]:
    key = ctypes.cast(smpl, ctypes.POINTER(_Sampler)).contents.ctx
    assert key is not None
    return key, _live[key]


def _name(smpl) -> int:
    return ctypes.addressof(_state(smpl)[1].label)  # a buffer that lives as long as the sampler


def _apply(smpl, cur_p) -> None:
    import llama_cpp as lc

    lc.llama_sampler_apply(_state(smpl)[1].inner, ctypes.cast(cur_p, lc.llama_token_data_array_p))


def _clone(smpl) -> int | None:
    st = _state(smpl)[1]
    return ctypes.cast(init(st.k, st.width), _P).value


def _free(smpl) -> None:
    import llama_cpp as lc

    key, st = _state(smpl)
    del _live[key]
    lc.llama_sampler_free(st.inner)


def _backend_init(smpl, buft, n_outputs_max_per_seq) -> bool:
    st = _state(smpl)[1]
    st.hierarchical = _pays_on(_ggml().ggml_backend_buft_get_device(buft))
    ok = _supported(st, buft)
    name = NAME if st.hierarchical else "top-k"
    st.label = ctypes.create_string_buffer(("+" if ok else "-").encode() + name.encode())  # as llama.cpp's once placed
    return ok


def _pays_on(dev) -> bool:
    """Whether the levels beat llama.cpp's top-k on the device holding the logits: on GPUs, not on the CPU."""
    return bool(dev) and _ggml().ggml_backend_dev_type(dev) in _GPU_TYPES


def _backend_apply(smpl, ctx, gf, data) -> None:
    st = _state(smpl)[1]
    st.graph_builds += 1
    _graph(st, ctx, gf, data)


def _copy_state(src, dst) -> None:
    """Nothing to copy: k and width never change (llama.cpp's top-k copies nothing either)."""


@cache
def _iface() -> _Iface:
    """The one interface struct for every instance, alive with the module (C's static llama_sampler_i)."""
    t = {f[0]: f[1] for f in _Iface._fields_}
    return _Iface(name=t["name"](_name), apply=t["apply"](_apply), clone=t["clone"](_clone), free=t["free"](_free),
                  backend_init=t["backend_init"](_backend_init), backend_apply=t["backend_apply"](_backend_apply),
                  copy_state=t["copy_state"](_copy_state))


# --- the graph --------------------------------------------------------------------------------------
def _graph(st: _State, ctx, gf, data) -> None:
    """The hierarchical graph, or llama.cpp's own top-k graph (the held sampler's) where levels do not pay."""
    try:
        if st.hierarchical and _build(ctx, data.contents, st.k, st.width):
            return
    except Exception:  # a callback cannot raise into C, and the logits must not go on unfiltered
        log.exception("the hierarchical top-k could not build its graph; llama.cpp's top-k instead")
    import llama_cpp as lc

    inner = st.inner
    inner.contents.iface.contents.backend_apply(  # type: ignore[attr-defined]
        inner, ctx, gf, ctypes.cast(data, ctypes.POINTER(lc.llama_sampler_data)))


def _build(ctx, data: _Data, k: int, width: int) -> bool:
    """Replace data's logits and candidates by the top k, hierarchically; False where llama.cpp's own graph is the one to build."""
    g = _ggml()
    n = g.ggml_nelements(data.logits)
    if n <= SORT_MAX or 2 * k > width or n >= _EXACT:
        return False
    logits = g.ggml_reshape_1d(ctx, data.logits, n)
    vals = g.ggml_clamp(ctx, logits, _CLAMP, math.inf)
    pos = g.ggml_arange(ctx, 0.0, float(n), 1.0)
    m = n
    while m > SORT_MAX:
        rows = -(-m // width)
        pad = rows * width - m
        if pad:
            vals = g.ggml_concat(ctx, vals, g.ggml_fill(ctx, g.ggml_view_1d(ctx, vals, pad, 0), _PAD), 0)
            pos = g.ggml_pad(ctx, pos, pad, 0, 0, 0)
        top = g.ggml_argsort_top_k(ctx, g.ggml_reshape_2d(ctx, vals, width, rows), k)
        vals = g.ggml_reshape_1d(ctx, g.ggml_get_rows(ctx, g.ggml_reshape_3d(ctx, vals, 1, width, rows), top), k * rows)
        pos = g.ggml_reshape_1d(ctx, g.ggml_get_rows(ctx, g.ggml_reshape_3d(ctx, pos, 1, width, rows), top), k * rows)
        m = k * rows
    top = g.ggml_argsort_top_k(ctx, vals, k)
    ids = g.ggml_reshape_1d(ctx, g.ggml_cast(ctx, g.ggml_get_rows(ctx, g.ggml_reshape_2d(ctx, pos, 1, m), top),
                                             _GGML_TYPE_I32), k)
    g.ggml_set_name(ids, b"top_k_hier")
    # from here, llama_sampler_top_k_backend_apply with `ids` for its top_k
    if data.candidates:
        data.candidates = g.ggml_get_rows(ctx, g.ggml_reshape_2d(ctx, data.candidates, 1, n), ids)
        g.ggml_set_name(data.candidates, b"top_k_candidates")
    else:
        data.candidates = ids
    data.logits = g.ggml_get_rows(ctx, g.ggml_reshape_2d(ctx, logits, 1, n), ids)
    g.ggml_set_name(data.logits, b"top_k_rows")
    return True


def _supported(st: _State, buft) -> bool:
    """Whether the device of `buft` runs every op of the graph (llama.cpp's llama_sampler_backend_support).

    The probe row has 128 * 1024 + 1 logits, so every level pads and every op is checked; the CPU
    (no device) runs them all.
    """
    g = _ggml()
    dev = g.ggml_backend_buft_get_device(buft)
    if not dev:
        return True
    ctx = g.ggml_init(_InitParams(_GRAPH_SIZE * g.ggml_tensor_overhead() + g.ggml_graph_overhead_custom(_GRAPH_SIZE, False),
                                  None, True))
    try:
        gf = g.ggml_new_graph_custom(ctx, _GRAPH_SIZE, False)
        data = _Data(logits=g.ggml_new_tensor_1d(ctx, _GGML_TYPE_F32, _PROBE),
                     candidates=g.ggml_new_tensor_1d(ctx, _GGML_TYPE_I32, _PROBE))
        _graph(st, ctx, gf, ctypes.pointer(data))
        for out in (data.logits, data.candidates):
            g.ggml_build_forward_expand(gf, out)
        for i in range(g.ggml_graph_n_nodes(gf)):
            op = g.ggml_graph_node(gf, i)
            if not g.ggml_backend_dev_supports_op(dev, op):
                log.warning("device '%s' does not have support for op %s needed for sampler '%s'",
                            g.ggml_backend_dev_name(dev).decode(), g.ggml_op_desc(op).decode(), NAME)
                return False
        return True
    finally:
        g.ggml_free(ctx)
