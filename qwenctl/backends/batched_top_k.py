"""One two-level top-k for every sequence of a batch, instead of a full sort of each sequence's logits.

llama.cpp appends each attached sequence's sampler chain to the decode graph row by row: with 16
sequences its top-k sampler adds 16 top-k ops over 151,936 logits. On CUDA built with a CCCL older
than 3.2 (CUDA 12 and 13.0 toolkits) each is a device-wide radix sort of one row, ~0.1 ms, so 16
cost 1.6 ms of a 5.5 ms step on the project's H200 (0.5B). Sorting all rows in one op does not help:
ggml sorts several rows with CUB's segmented sort, a thread block a row, as slow as 16 launches.

A `BatchedTopK` belongs to one llama.cpp context of at least `MIN_SAMPLERS` sequences (`serve
--parallel`; chat, `run -p` and bench keep llama.cpp's sampler, with no Python in their graph
builds). Its samplers stand where llama.cpp's top-k sampler would, first in a chain. In a graph
with at least `MIN_SAMPLERS` of them of the same k, the first to run adds one two-level top-k over
the whole logits matrix (the tensor each sequence's row is a view of; see `_two_level_top_k`) and
every sampler takes its row of the result: token ids and logits, llama.cpp's top-k contract. Below
that, and where a sampler does not see a plain row of that matrix (a logit bias before it,
llama.cpp's probe graph, a vocabulary not a multiple of `CHUNK`), it sorts its own row as
llama.cpp's sampler does. On the host, and for deciding whether the device can run it at all, it
is llama.cpp's top-k sampler, which it wraps. Measured on the H200 (docs/benchmarks.md): 16
sequences 4.52 ms a step against 5.50; one sequence 1.41 against 1.28, hence `MIN_SAMPLERS`.

The graph is built from Python through ctypes (the sampler interface llama-cpp-python binds, and
ggml's graph functions in the libggml-base that libllama uses); `available` is False where this
ggml's tensor layout is not the one mirrored here, and chains then use llama.cpp's sampler.
"""

from __future__ import annotations

import ctypes
import functools
import itertools
import logging
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("qwenctl.sampling")

GGML_TYPE_F32 = 0  # enum ggml_type (ggml.h)
GGML_TYPE_I32 = 26
GGML_OP_POOL_MAX = 0  # enum ggml_op_pool (ggml.h)
CHUNK = 128  # logits per chunk of the first level: Qwen2.5's vocabularies (151,936 and 152,064) are multiples of it
# Samplers in a graph from which one two-level top-k beats a sort each (H200, 0.5B: the two-level op cost 0.29 ms
# with one sequence's samplers and 0.65 ms with 16, a sort per sampler ~0.1 ms; docs/benchmarks.md)
MIN_SAMPLERS = 4
_OBJECT_SIZE = 32  # sizeof(struct ggml_object): ggml_tensor_overhead() is it plus sizeof(struct ggml_tensor)


class _Tensor(ctypes.Structure):
    """struct ggml_tensor (ggml.h), for the fields a view is read by; its size is checked against ggml's."""

    _fields_ = [
        ("type", ctypes.c_int),
        ("buffer", ctypes.c_void_p),
        ("ne", ctypes.c_int64 * 4),
        ("nb", ctypes.c_size_t * 4),
        ("op", ctypes.c_int),
        ("op_params", ctypes.c_int32 * 16),
        ("flags", ctypes.c_int32),
        ("src", ctypes.c_void_p * 10),
        ("view_src", ctypes.c_void_p),
        ("view_offs", ctypes.c_size_t),
        ("data", ctypes.c_void_p),
        ("name", ctypes.c_char * 64),
        ("extra", ctypes.c_void_p),
        ("padding", ctypes.c_char * 8),
    ]


def _tensor(address: int) -> _Tensor:
    return _Tensor.from_address(address)


@functools.cache
def _ggml():
    """libggml-base's graph functions, or None where its tensor layout differs from `_Tensor`."""
    from qwenctl.backends.rpc import Ggml

    base = Ggml.get().base
    vp, i64 = ctypes.c_void_p, ctypes.c_int64
    for name, restype, argtypes in (
            ("ggml_tensor_overhead", ctypes.c_size_t, []),
            ("ggml_top_k", vp, [vp, vp, ctypes.c_int]),
            ("ggml_view_1d", vp, [vp, vp, i64, ctypes.c_size_t]),
            ("ggml_reshape_1d", vp, [vp, vp, i64]),
            ("ggml_reshape_2d", vp, [vp, vp, i64, i64]),
            ("ggml_get_rows", vp, [vp, vp, vp]),
            ("ggml_cont", vp, [vp, vp]),
            ("ggml_reshape_3d", vp, [vp, vp, i64, i64, i64]),
            ("ggml_pool_2d", vp, [vp, vp, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_int,
                                  ctypes.c_float, ctypes.c_float]),
            ("ggml_arange", vp, [vp, ctypes.c_float, ctypes.c_float, ctypes.c_float]),
            ("ggml_repeat", vp, [vp, vp, vp]),
            ("ggml_cast", vp, [vp, vp, ctypes.c_int])):
        fn = getattr(base, name)
        fn.restype, fn.argtypes = restype, argtypes
    if base.ggml_tensor_overhead() != _OBJECT_SIZE + ctypes.sizeof(_Tensor):
        log.info("ggml's tensor layout is not the one qwenctl knows: each sequence keeps its own top-k")
        return None
    return base


def available() -> bool:
    from qwenctl.errors import QwenctlError

    try:
        return _ggml() is not None
    except (ImportError, OSError, AttributeError, QwenctlError) as e:  # no llama-cpp-python, libggml-base or function
        log.info("no batched top-k: %s", e)
        return False


class BatchedTopK:
    """The top-k samplers of one context's chains, which share one two-level top-k op per decode graph.

    Its ops live in the graph being built: llama.cpp resets every attached sampler before a graph's samplers apply
    (llama-graph.cpp, build_sampling), which is when the ops of the last graph are forgotten."""

    def __init__(self) -> None:
        self._shared: dict[tuple[int, int, int], tuple[int, int]] = {}  # (graph context, logits matrix, k) -> its top-k
        self._samplers: dict[int, int] = {}  # k -> samplers with that k in the graph being built (llama.cpp resets
        # each attached sampler before any of them applies)
        self._applied = False
        self.shared_ops = 0  # two-level top-k ops added over a whole logits matrix (counted for tests)
        self.rows_shared = 0  # samplers that took their row from one of those
        self.rows_alone = 0  # samplers that sorted their own row

    def sampler(self, k: int):
        """A new top-k sampler (llama_sampler pointer) for a chain; the chain frees it."""
        import llama_cpp as lc

        inner = lc.llama_sampler_init_top_k(k)
        key = next(_keys)
        _samplers[key] = _Wrapped(self, k, inner)
        return lc.llama_sampler_init(ctypes.byref(_interface()[0]), ctypes.c_void_p(key))

    def _reset(self, k: int) -> None:
        if self._applied:  # a new graph
            self._shared.clear()
            self._samplers, self._applied = {}, False
        self._samplers[k] = self._samplers.get(k, 0) + 1

    def _apply(self, k: int, ctx: int, data) -> None:
        """Append this sampler's top-k to the graph, with llama.cpp's top-k sampler's contract: the k candidates'
        token ids in ``data.candidates`` and their logits in ``data.logits``."""
        g = _ggml()
        self._applied = True
        row = _tensor(data.logits)
        shared = (None if data.candidates or self._samplers.get(k, 0) < MIN_SAMPLERS  # one op serves one k
                  else self._shared_rows(g, k, ctx, row))
        if shared is not None:
            ids, values, offset = shared
            data.candidates = g.ggml_cont(ctx, g.ggml_view_1d(ctx, ids, k, offset))
            data.logits = g.ggml_reshape_2d(ctx, g.ggml_cont(ctx, g.ggml_view_1d(ctx, values, k, offset)), 1, k)
            self.rows_shared += 1
            return
        self.rows_alone += 1  # as llama.cpp's sampler does it (llama_sampler_top_k_backend_apply)
        n = row.ne[0] * row.ne[1] * row.ne[2] * row.ne[3]
        logits = g.ggml_reshape_1d(ctx, data.logits, n)
        top = g.ggml_top_k(ctx, logits, k)
        if data.candidates:
            data.candidates = g.ggml_get_rows(ctx, g.ggml_reshape_2d(ctx, data.candidates, 1, n), top)
        else:
            data.candidates = top
        data.logits = g.ggml_get_rows(ctx, g.ggml_reshape_2d(ctx, logits, 1, n), top)

    def _shared_rows(self, g, k: int, ctx: int, row: _Tensor) -> tuple[int, int, int] | None:
        """(token ids, logits, byte offset of this row) of the top k of every row of the logits matrix ``row`` is a
        view of, built by the first sampler to ask; None where ``row`` is not a whole row of such a matrix, or the
        vocabulary does not split into enough chunks."""
        if not row.view_src or row.ne[1] * row.ne[2] * row.ne[3] != 1:
            return None
        m = _tensor(row.view_src)
        vocab, rows = m.ne[0], m.ne[1]
        if (m.type != GGML_TYPE_F32 or vocab != row.ne[0] or m.nb[1] != vocab * m.nb[0] or m.ne[2] * m.ne[3] != 1
                or row.view_offs % m.nb[1] or vocab % CHUNK or vocab // CHUNK < k):
            return None
        key = (ctx, row.view_src, k)
        if key not in self._shared:
            self._shared[key] = _two_level_top_k(g, ctx, row.view_src, vocab, rows, k)
            self.shared_ops += 1
        ids, values = self._shared[key]
        return ids, values, row.view_offs // m.nb[1] * _tensor(values).nb[2]  # ids and values: 1 x k x rows, 4-byte


def _two_level_top_k(g, ctx: int, logits: int, vocab: int, rows: int, k: int) -> tuple[int, int]:
    """The top k of each row of ``logits`` (f32, vocab x rows) without sorting a whole row: (token ids as i32
    [1, k, rows], their logits [1, k, rows]).

    Each row is cut into chunks of CHUNK logits. The k best logits of a row lie in the k chunks with the highest
    maxima (a logit outside them has k chunk maxima, k other logits, above it; ties at the k-th logit may fall
    either way, as in any sort), so a top-k of the chunk maxima, then a top-k of those k x CHUNK logits, finds
    them; both sorts are of short rows, which ggml's CUDA backend sorts side by side, and token ids come along
    by the same gathers from a row of 0 .. vocab-1.
    """
    chunks = vocab // CHUNK
    maxima = g.ggml_pool_2d(ctx, logits, GGML_OP_POOL_MAX, CHUNK, 1, CHUNK, 1, 0.0, 0.0)  # chunks x rows
    best_chunks = g.ggml_top_k(ctx, maxima, k)  # i32, k x rows
    by_chunk = g.ggml_reshape_3d(ctx, logits, CHUNK, chunks, rows)
    candidates = g.ggml_get_rows(ctx, by_chunk, best_chunks)  # CHUNK x k x rows
    best = g.ggml_top_k(ctx, g.ggml_reshape_2d(ctx, candidates, CHUNK * k, rows), k)  # i32, k x rows, into candidates
    values = g.ggml_get_rows(ctx, g.ggml_reshape_3d(ctx, candidates, 1, CHUNK * k, rows), best)  # 1 x k x rows
    token = g.ggml_repeat(ctx, g.ggml_reshape_3d(ctx, g.ggml_arange(ctx, 0.0, float(vocab), 1.0), CHUNK, chunks, 1), by_chunk)
    tokens = g.ggml_get_rows(ctx, token, best_chunks)  # CHUNK x k x rows, the candidates' token ids (exact in f32)
    ids = g.ggml_get_rows(ctx, g.ggml_reshape_3d(ctx, tokens, 1, CHUNK * k, rows), best)
    return g.ggml_cast(ctx, ids, GGML_TYPE_I32), values


@dataclass
class _Wrapped:
    """One sampler's state behind its ctx pointer: its group, its k and llama.cpp's top-k that it wraps."""

    group: BatchedTopK
    k: int
    inner: Any  # llama_sampler pointer
    on_device: bool = False  # its device said yes (llama.cpp then names a sampler "+top-k")


_keys = itertools.count(1)
_samplers: dict[int, _Wrapped] = {}  # the ctx pointer each sampler was made with -> its state


def _of(smpl) -> _Wrapped:
    return _samplers[smpl.contents.ctx]


@functools.cache
def _interface() -> tuple:
    """The sampler interface, its callbacks and the names' buffers, kept alive once for every sampler."""
    import llama_cpp as lc

    # names are returned as addresses: a bytes result would be copied and leaked per call
    names = ctypes.create_string_buffer(b"top-k"), ctypes.create_string_buffer(b"+top-k")

    def name(smpl):
        return ctypes.addressof(names[_of(smpl).on_device])

    def apply(smpl, cur_p):
        lc.llama_sampler_apply(_of(smpl).inner, cur_p)

    def clone(smpl):
        this = _of(smpl)
        return ctypes.cast(this.group.sampler(this.k), ctypes.c_void_p).value

    def free(smpl):
        lc.llama_sampler_free(_samplers.pop(smpl.contents.ctx).inner)

    def backend_init(smpl, buft, n_outputs):
        this = _of(smpl)  # llama.cpp's own top-k decides whether this device can run one
        this.on_device = bool(this.inner.contents.iface.contents.backend_init(this.inner, buft, n_outputs))
        return this.on_device

    def backend_apply(smpl, ctx, _graph, data):
        this = _of(smpl)
        try:
            this.group._apply(this.k, ctx, data.contents)
        except Exception:  # a callback cannot raise into C: the host's part of the chain then sees the whole row
            log.exception("the batched top-k could not add its op; this token's top-k runs on the host")

    def backend_reset(smpl):
        this = _of(smpl)
        this.group._reset(this.k)

    clone_address = ctypes.CFUNCTYPE(ctypes.c_void_p, lc.llama_sampler_p_ctypes)(clone)
    callbacks = dict(
        name=lc.llama_sampler_i_name(name), apply=lc.llama_sampler_i_apply(apply),
        # ctypes cannot return a struct pointer from a callback: an address, cast to the type the interface wants
        clone=ctypes.cast(clone_address, lc.llama_sampler_i_clone),
        free=lc.llama_sampler_i_free(free),
        backend_init=lc.llama_sampler_i_backend_init(backend_init),
        backend_apply=lc.llama_sampler_i_backend_apply(backend_apply),
        backend_reset=lc.llama_sampler_i_backend_reset(backend_reset))
    iface = lc.llama_sampler_i()
    for field, callback in callbacks.items():
        setattr(iface, field, callback)
    return iface, callbacks, clone_address, names
