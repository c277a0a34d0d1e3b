"""The generated models are what every engine test stands on: check they are what they claim."""

import json

import numpy as np
import pytest
from gguf import GGMLQuantizationType, GGUFReader

from qwenctl.testing import models

MESSAGES = [{"role": "user", "content": "Hello, who are you?"}]
SAMPLES = ["Hello world, this is Qwen!", "  indented\n\ttabs and 12345 numbers", "naïve café — ünïcödé ✓", "don't we'll"]

# A shape small enough to quantize in a moment, with rows long enough for k-quants (256-value blocks).
SMALL_K = models.Shape("small-k", hidden_size=256, num_hidden_layers=2, num_attention_heads=4,
                       num_key_value_heads=2, intermediate_size=512, vocab_size=0, max_position_embeddings=2048)


def _field(reader: GGUFReader, key: str):
    return reader.fields[key].contents()


@pytest.fixture(scope="module")
def llm(model_cache):
    llama_cpp = pytest.importorskip("llama_cpp")
    from qwenctl.backends.llamacpp import route_llama_logs

    route_llama_logs()
    model = llama_cpp.Llama(str(models.tiny_gguf(model_cache)), n_ctx=512, seed=1, verbose=False)
    yield model
    model.close()


@pytest.mark.parametrize("size,params", [("0.5B", 494_032_768), ("1.5B", 1_543_714_304), ("7B", 7_615_616_512)])
def test_shapes_have_the_real_parameter_counts(size, params):
    # exact totals from the catalog (keras-hub presets / safetensors metadata)
    shape = models.qwen25_shape(size)
    assert sum(int(np.prod(dims)) for _, dims in models.gguf_tensor_shapes(shape)) == params


def test_tiny_gguf_metadata(model_cache):
    path = models.tiny_gguf(model_cache)
    reader = GGUFReader(path)
    assert _field(reader, "general.architecture") == "qwen2"
    assert _field(reader, "tokenizer.ggml.model") == "gpt2"
    assert _field(reader, "tokenizer.ggml.pre") == "qwen2"
    assert "You are Qwen, created by Alibaba Cloud" in _field(reader, "tokenizer.chat_template")
    tokens = _field(reader, "tokenizer.ggml.tokens")
    types = _field(reader, "tokenizer.ggml.token_type")
    eos = _field(reader, "tokenizer.ggml.eos_token_id")
    assert tokens[eos] == "<|im_end|>"
    assert [tokens[i] for i, t in enumerate(types) if t == 3] == list(models.SPECIAL_TOKENS)
    assert path.stat().st_size < 1_000_000


def test_cached_file_is_reused(model_cache):
    first = models.tiny_gguf(model_cache)
    mtime = first.stat().st_mtime_ns
    assert models.tiny_gguf(model_cache) == first
    assert first.stat().st_mtime_ns == mtime
    assert models.tiny_gguf(model_cache, seed=1) != first  # parameters are in the name


def test_padded_vocabulary_puts_specials_at_real_ids():
    tok = models.tokenizer(151936)
    assert len(tok.tokens) == 151936 == len(tok.token_types)
    assert tok.tokens[151643:151646] == models.SPECIAL_TOKENS
    assert tok.eos_id == 151645 and tok.pad_id == 151643
    assert len(set(tok.tokens)) == len(tok.tokens)  # llama.cpp rejects duplicate token strings


def test_llama_cpp_tokenizes_specials_as_single_tokens(llm):
    ids = llm.tokenize(b"<|im_start|>user\nhi<|im_end|>", add_bos=False, special=True)
    assert llm.detokenize([ids[0]], special=True) == b"<|im_start|>"
    assert ids[-1] == llm.token_eos()
    assert llm.detokenize(llm.tokenize(SAMPLES[2].encode(), add_bos=False)) == SAMPLES[2].encode()


def test_llama_cpp_generates_through_the_qwen25_chat_template(llm):
    reply = llm.create_chat_completion(MESSAGES, max_tokens=6, seed=3)
    template = (
        "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n"
        "<|im_start|>user\nHello, who are you?<|im_end|>\n<|im_start|>assistant\n"
    )
    assert reply["usage"]["prompt_tokens"] == len(llm.tokenize(template.encode(), add_bos=False, special=True))
    assert 1 <= reply["usage"]["completion_tokens"] <= 6
    assert isinstance(reply["choices"][0]["message"]["content"], str)


@pytest.mark.parametrize("quant,tensor_type", [("Q8_0", GGMLQuantizationType.Q8_0), ("Q4_K_M", GGMLQuantizationType.Q4_K)])
def test_quantized_with_llama_cpps_quantizer(model_cache, quant, tensor_type):
    pytest.importorskip("llama_cpp")
    path = models.gguf_model(model_cache, SMALL_K, quant)
    reader = GGUFReader(path)
    types = {t.name: t.tensor_type for t in reader.tensors}
    assert types["blk.0.attn_q.weight"] == tensor_type
    assert types["blk.0.attn_norm.weight"] == GGMLQuantizationType.F32
    assert _field(reader, "general.file_type") == models.QUANT_FTYPES[quant]
    f16 = models.gguf_model(model_cache, SMALL_K, "F16")
    assert path.stat().st_size < f16.stat().st_size


@pytest.mark.parametrize("via", ["Q8_0", "Q4_0"])
def test_a_block_intermediate_quantizes_to_the_same_file_as_an_f16_one(model_cache, tmp_path, via):
    """A 32B's F16 copy (65 GB) does not fit the GPU machine's disk; written directly as Q8_0 blocks it is half that
    (a 72B's Q4_0, 41 GB, fits in RAM), and llama.cpp's quantizer makes the same Q4_K_M of it: every tensor's type
    and shape, and the file size; the intermediate, written where asked, is gone afterwards."""
    pytest.importorskip("llama_cpp")
    ram = tmp_path / "ram"
    direct = models.gguf_model(tmp_path / "disk", SMALL_K, "Q4_K_M", intermediate=via, intermediate_dir=ram)
    via_f16 = models.gguf_model(model_cache, SMALL_K, "Q4_K_M")
    assert [p.name for p in direct.parent.iterdir()] == [direct.name] and list(ram.iterdir()) == []

    def layout(path):
        return {t.name: (t.tensor_type, tuple(t.shape)) for t in GGUFReader(path).tensors}

    assert layout(direct) == layout(via_f16) and direct.stat().st_size == via_f16.stat().st_size
    blocks = models.gguf_model(tmp_path, SMALL_K, via, intermediate=via)
    assert {t.tensor_type for t in GGUFReader(blocks).tensors if len(t.shape) == 2} == {GGMLQuantizationType[via]}


ODD_ROWS = models.Shape("odd-rows", hidden_size=320, num_attention_heads=5, num_hidden_layers=2, num_key_value_heads=1,
                        intermediate_size=640, vocab_size=0, tie_word_embeddings=False, max_position_embeddings=2048)


@pytest.mark.parametrize("quant", ["Q4_K_M", "Q3_K_M", "Q6_K", "Q4_0"])
@pytest.mark.parametrize("shape", [SMALL_K, ODD_ROWS], ids=["blocked", "odd-rows"])
def test_a_recipe_written_directly_is_laid_out_as_the_quantizer_writes_it(model_cache, tmp_path, shape, quant):
    """A 72B Q4_K_M takes llama.cpp's quantizer over 7 minutes on the GPU machine; written directly (each matrix in
    its recipe type, the blocks quantized once by ggml itself) it takes the time its bytes take to write. Every
    tensor's type and shape and the file's size are the quantizer's, and llama.cpp decodes it to finite logits."""
    llama_cpp = pytest.importorskip("llama_cpp")
    from qwenctl.backends.llamacpp import route_llama_logs

    direct = models.gguf_model(tmp_path, shape, quant, intermediate="direct")
    quantized = models.gguf_model(model_cache, shape, quant)

    def layout(path):
        return {t.name: (t.tensor_type, tuple(t.shape)) for t in GGUFReader(path).tensors}

    assert direct.name.endswith(f"-{quant}-direct.gguf")
    assert layout(direct) == layout(quantized) and direct.stat().st_size == quantized.stat().st_size
    route_llama_logs()
    model = llama_cpp.Llama(str(direct), n_ctx=64, verbose=False)
    try:
        model.eval(model.tokenize(b"Hello", add_bos=False))
        logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(model.ctx, -1), shape=(model.n_vocab(),))
        assert np.isfinite(logits).all() and 0 < np.abs(logits).max() < 100
    finally:
        model.close()


def test_no_partial_file_left_when_generation_fails(tmp_path):
    with pytest.raises(RuntimeError):
        models._atomic(tmp_path / "x.gguf", lambda tmp: (tmp.write_bytes(b"half"), (_ for _ in ()).throw(RuntimeError())))
    assert list(tmp_path.iterdir()) == []


def test_hf_tokenizer_matches_llama_cpp(model_cache, llm):
    from tokenizers import Tokenizer

    hf = Tokenizer.from_file(str(models.tiny_mlx(model_cache) / "tokenizer.json"))
    for text in SAMPLES + ["<|im_start|>assistant\n"]:
        assert hf.encode(text).ids == llm.tokenize(text.encode(), add_bos=False, special=True), text


def test_mlx_lm_loads_and_generates(model_cache, monkeypatch):
    pytest.importorskip("mlx.core")
    mlx_lm = pytest.importorskip("mlx_lm")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    folder = models.tiny_mlx(model_cache)
    config = json.loads((folder / "config.json").read_text())
    assert config["model_type"] == "qwen2"
    model, tokenizer = mlx_lm.load(str(folder))
    prompt = tokenizer.apply_chat_template(MESSAGES, add_generation_prompt=True)
    assert tokenizer.decode(prompt).endswith("<|im_start|>assistant\n")
    steps = list(mlx_lm.stream_generate(model, tokenizer, prompt, max_tokens=4))
    assert steps[-1].generation_tokens == 4 or steps[-1].finish_reason == "stop"
    assert steps[-1].prompt_tokens == len(prompt)


@pytest.mark.slow
def test_shaped_05b_q4_k_m_matches_a_published_file_size(model_cache):
    pytest.importorskip("llama_cpp")
    path = models.shaped_gguf(model_cache, "0.5B", "Q4_K_M")
    # bartowski/Qwen2.5-0.5B-Instruct-GGUF Qwen2.5-0.5B-Instruct-Q4_K_M.gguf, made with llama.cpp's quantizer
    # (397,808,192 bytes; source: shared/data/qwen25-catalog.json "gguf_bartowski"). Qwen's own file (491 MB) used
    # an older quantizer mix. The real file also carries the full 151,643-token vocabulary text (~2.5 MB).
    official = 397_808_192
    assert abs(path.stat().st_size - official) / official < 0.02
