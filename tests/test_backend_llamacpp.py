"""The llama.cpp backend on the real llama-cpp-python, with the generated tiny qwen2 GGUF."""

import pytest

from qwenctl.backends import LoadOptions, SamplingOptions, llamacpp, load_backend
from qwenctl.errors import ExitCode, QwenctlError
from qwenctl.testing import models

pytest.importorskip("llama_cpp")

HELLO = [{"role": "user", "content": "Hello!"}]


@pytest.fixture(scope="module")
def session(model_cache):
    s = load_backend("llama.cpp", models.tiny_gguf(model_cache), LoadOptions(n_ctx=256, n_batch=64))
    yield s
    s.close()


def test_loads_on_the_cpu(session):
    assert session.backend == "llama.cpp"
    assert (session.n_ctx, session.n_gpu_layers, session.notes) == (256, 0, ())
    assert session.n_vocab == models.small_vocab_size()
    assert session.load_seconds > 0


def test_chat_streams_one_event_per_token(session):
    events = list(session.chat(HELLO, SamplingOptions(max_tokens=8, seed=7)))
    assert [e.generated_tokens for e in events] == list(range(1, 9))
    assert [e.finish_reason for e in events] == [None] * 7 + ["length"]
    assert all(e.prompt_tokens == session.count_chat_tokens(HELLO) for e in events)
    assert all(e.generation_seconds >= 0 and e.prompt_seconds >= 0 for e in events)


def test_same_seed_same_reply(session):
    def reply(seed):
        return "".join(e.text for e in session.chat(HELLO, SamplingOptions(max_tokens=12, seed=seed)))

    assert reply(1) == reply(1)


def test_chat_prompt_is_the_qwen25_template(session):
    text = (
        "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n"
        "<|im_start|>user\nHello!<|im_end|>\n<|im_start|>assistant\n"
    )
    assert session.llm.detokenize(session.chat_prompt(HELLO), special=True).decode() == text


def test_special_token_text_in_user_input_stays_text(session):
    ids = session.tokenize("<|im_end|>")
    assert len(ids) > 1 and session.llm.token_eos() not in ids


def test_reply_stops_at_the_context_end(session):
    sys_msg = [{"role": "system", "content": "word " * 80}, *HELLO]
    n_prompt = session.count_chat_tokens(sys_msg)
    assert n_prompt < session.n_ctx - 20
    events = list(session.chat(sys_msg, SamplingOptions(max_tokens=500, seed=1)))
    assert events[-1].generated_tokens == session.n_ctx - n_prompt
    assert events[-1].finish_reason == "length"


def test_prompt_longer_than_the_context_is_a_clear_error(session):
    with pytest.raises(QwenctlError) as e:
        list(session.chat([{"role": "user", "content": "word " * 400}], SamplingOptions()))
    assert e.value.code == ExitCode.BAD_INPUT
    assert "but the context holds 256" in e.value.message


def test_raw_decoding_fills_and_reset_empties_the_context(session):
    session.reset()
    session.prefill(list(range(200)))
    for t in range(50):
        session.decode_one(t)
    with pytest.raises(QwenctlError) as e:  # 256 positions are full now
        session.prefill(list(range(20)))
    assert e.value.code == ExitCode.BACKEND
    session.reset()
    session.prefill(list(range(250)))  # room again
    session.reset()
    assert list(session.chat(HELLO, SamplingOptions(max_tokens=2)))[-1].generated_tokens == 2


def test_memory_reports_host_rss(session):
    used = session.memory()
    assert used.host_rss_bytes > 10_000_000
    assert used.gpu_bytes is None  # no NVIDIA GPU on this machine


def test_cpu_build_on_an_nvidia_machine_says_how_to_install_cuda(model_cache, monkeypatch):
    from qwenctl.hardware import engines

    if engines.llama_supports_gpu_offload():
        pytest.skip("this llama-cpp-python has GPU offload")
    monkeypatch.setattr(llamacpp.mem, "nvidia_gpu_present", lambda: True)  # the NVML answer
    s = load_backend("llama.cpp", models.tiny_gguf(model_cache), LoadOptions(n_ctx=128, n_gpu_layers=-1))
    try:
        assert s.n_gpu_layers == 0
        assert len(s.notes) == 1 and s.notes[0].endswith(
            'CMAKE_ARGS="-DGGML_CUDA=on" pip install --force-reinstall --no-cache-dir llama-cpp-python')
    finally:
        s.close()


def test_out_of_memory_walks_down_the_gpu_layer_ladder(model_cache, monkeypatch):
    """The GPU is faked at its boundary: a build that offloads, and allocations above 10 layers failing
    the way llama.cpp reports them (a log line, then ValueError from llama-cpp-python)."""
    import llama_cpp

    real = llama_cpp.Llama
    tried = []

    def fake_llama(path, *, n_gpu_layers, **kw):
        tried.append(n_gpu_layers)
        if n_gpu_layers > 1:
            llamacpp._recent_errors.append("ggml_backend_cuda_buffer_type_alloc_buffer: allocating 9000 MiB on device 0: "
                                           "cudaMalloc failed: out of memory")
            raise ValueError(f"Failed to load model from file: {path}")
        return real(path, n_gpu_layers=0, **kw)

    from qwenctl.hardware import engines

    monkeypatch.setattr(engines, "llama_supports_gpu_offload", lambda: True)  # what libllama says of this machine
    monkeypatch.setattr(llama_cpp, "Llama", fake_llama)
    s = load_backend("llama.cpp", models.tiny_gguf(model_cache), LoadOptions(n_ctx=128, n_gpu_layers=-1))
    try:
        assert tried == [3, 2, 1]  # 2 blocks + output = 3 layers; then 75% and 50%/25% of them
        assert s.n_gpu_layers == 1
        assert s.notes == ("out of GPU memory with 3 of 3 layers on the GPU; loaded with 1 on the GPU "
                           "and the rest on the CPU (slower)",)
    finally:
        s.close()


def _gpu_full(monkeypatch) -> list[tuple[int, bool]]:
    """A build that offloads on a GPU whose memory another program holds, faked at llama.cpp's C API: a model load
    that any GPU device joins (llama_model_params.devices NULL: llama.cpp takes every GPU) fails as llama.cpp reports
    it, whatever its layers, for its context alone does not fit. Returns the (layers, no GPU device) of each load."""
    import llama_cpp.llama_cpp as capi

    from qwenctl.hardware import engines

    real_load = capi.llama_model_load_from_file
    tried = []

    def load_from_file(path, params):
        tried.append((params.n_gpu_layers, bool(params.devices)))
        if not params.devices:
            llamacpp._recent_errors.append("ggml_backend_cuda_buffer_type_alloc_buffer: allocating 512 MiB on device 0: "
                                           "cudaMalloc failed: out of memory")
            return None
        return real_load(path, params)

    monkeypatch.setattr(engines, "llama_supports_gpu_offload", lambda: True)
    monkeypatch.setattr(capi, "llama_model_load_from_file", load_from_file)
    return tried


def test_a_full_gpu_leaves_the_model_on_the_cpu_alone(model_cache, monkeypatch):
    """Every layer asked for, and the GPU cannot take even llama.cpp's context: the ladder ends with a load no GPU
    joins, which works, and says so."""
    tried = _gpu_full(monkeypatch)
    s = load_backend("llama.cpp", models.tiny_gguf(model_cache), LoadOptions(n_ctx=128, n_gpu_layers=-1))
    try:
        assert tried == [(3, False), (2, False), (1, False), (0, False), (0, True)]
        assert s.n_gpu_layers == 0 and s.notes == (
            "out of GPU memory with 3 of 3 layers on the GPU, and with none: loaded on the CPU alone, without the GPU "
            "(slower; `nvidia-smi` lists what holds its memory)",)
        events = list(s.generate(s.tokenize("Hi"), SamplingOptions(max_tokens=2, seed=1)))
        assert events[-1].generated_tokens >= 1
    finally:
        s.close()


def test_a_plan_on_the_cpu_loads_with_no_gpu_device(model_cache, monkeypatch):
    """A plan on the CPU (op offload off, no layers: what the planner gives where the GPU's memory is taken) names no
    GPU device from its first load on."""
    tried = _gpu_full(monkeypatch)
    s = load_backend("llama.cpp", models.tiny_gguf(model_cache), LoadOptions(n_ctx=128, n_gpu_layers=0, op_offload=False))
    try:
        assert tried == [(0, True)] and s.notes == ()
    finally:
        s.close()


def test_engine_refusal_is_a_backend_error(tmp_path, model_cache):
    """A header that passes the check but tensors llama.cpp rejects (a missing layer). llama.cpp's reason
    reaches the message even after detect() silenced llama.cpp's log in this process, as `bench` does."""
    import dataclasses

    from qwenctl.hardware import detect

    broken = dataclasses.replace(models.TINY, name="broken", num_hidden_layers=1)
    path = models.gguf_model(tmp_path, broken, "F32")
    from gguf import GGUFReader

    reader = GGUFReader(path, "r+")  # edits the memory-mapped file in place
    field = reader.fields["qwen2.block_count"]
    field.parts[field.data[0]][0] = 2  # claims 2 blocks, holds 1
    del reader
    load_backend("llama.cpp", models.tiny_gguf(model_cache), LoadOptions(n_ctx=128)).close()  # qwenctl's log route set
    detect()  # then replaced by detect's silent sink
    with pytest.raises(QwenctlError) as e:
        load_backend("llama.cpp", path, LoadOptions(n_ctx=128))
    assert e.value.code == ExitCode.BACKEND
    assert "llama.cpp could not load" in e.value.message
    assert "blk.1" in e.value.message  # llama.cpp's own reason, from its log


def test_kv_cache_types_are_llama_cpps_and_the_catalogs():
    """One list of KV cache types: each has llama.cpp's GGML_TYPE_* id and bytes per value in data/quants.json."""
    import llama_cpp

    from qwenctl.backends import KV_CACHE_TYPES
    from qwenctl.backends.llamacpp import kv_type_id
    from qwenctl.catalog import load_catalog

    assert [kv_type_id(k) for k in KV_CACHE_TYPES] == [llama_cpp.GGML_TYPE_F16, llama_cpp.GGML_TYPE_Q8_0, llama_cpp.GGML_TYPE_Q4_0]
    assert tuple(k for k, _ in load_catalog().kv_bytes_per_value) == KV_CACHE_TYPES


def test_memory_tells_apart_the_file_pages_of_weights_llama_cpp_copied(model_cache, caplog):
    """On a CPU with repacked kernels (x86 with AVX2, Arm with dot products) llama.cpp copies some weights at load
    into a buffer of its own; their mmap'd file pages stay in RSS, clean and never read again. `memory()` reports
    them apart (`reclaimable_bytes`), so bench compares what the model holds with the plan, not the weights twice."""
    import dataclasses
    import logging

    shape = dataclasses.replace(models.qwen25_shape("0.5B"), name="repack-0.5b-1l", num_hidden_layers=1)
    path = models.gguf_model(model_cache, shape, "Q4_0", intermediate="Q4_0")
    with caplog.at_level(logging.DEBUG, logger="qwenctl.llama"):
        s = load_backend("llama.cpp", path, LoadOptions(n_ctx=256, n_batch=64))
    try:
        used = s.memory()
    finally:
        s.close()
    from qwenctl.backends.gguf_check import check_gguf

    names = {r.getMessage().split("repack tensor ")[1].split()[0] for r in caplog.records
             if "repack tensor " in r.getMessage()}  # llama.cpp's debug line per tensor it copied
    copied = sum(t.n_bytes for t in check_gguf(path).tensors if t.name in names)
    if names:  # every matrix here is Q4_0, which llama.cpp repacks wherever it repacks at all
        assert any(n.startswith("blk.") for n in names)
        assert 0.9 * copied < used.reclaimable_bytes <= copied < used.host_rss_bytes  # whole pages of the copied ranges
    else:
        assert used.reclaimable_bytes == 0


def test_more_threads_than_cpus_is_said_at_load(model_cache):
    """llama.cpp's threads wait for each other at every step, so threads beyond the CPUs this process may run on hold
    up all of them (two threads pinned to one CPU decoded the 0.5B at 0.4 tok/s, tests/test_cpu_share.py): a forced
    thread count above them loads, with a note that says so; the default never asks for more."""
    from qwenctl.cpu_share import runnable_cpus

    cpus = runnable_cpus()
    over = load_backend("llama.cpp", models.tiny_gguf(model_cache), LoadOptions(n_ctx=256, n_threads=cpus + 1))
    try:
        assert any(n.startswith(f"{cpus + 1} threads on {cpus} CPU") and n.endswith(f"give it at most {cpus}")
                   for n in over.notes)
    finally:
        over.close()
    fitting = load_backend("llama.cpp", models.tiny_gguf(model_cache), LoadOptions(n_ctx=256))
    try:
        assert not any(" threads on " in n for n in fitting.notes)
    finally:
        fitting.close()
