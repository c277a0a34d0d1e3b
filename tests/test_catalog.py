import pytest

from qwenctl.catalog import load_catalog
from qwenctl.errors import ExitCode, QwenctlError

SIZES = ["0.5B", "1.5B", "3B", "7B", "14B", "32B", "72B"]


def test_seven_sizes_in_order():
    assert [m.size for m in load_catalog().models] == SIZES


@pytest.mark.parametrize("size", SIZES)
def test_parameter_count_matches_architecture(size):
    """The exact parameter count (sourced) must equal the count implied by config.json."""
    m = load_catalog().model(size)
    a = m.arch
    per_layer = (
        a.hidden_size * a.n_heads * a.head_dim + a.n_heads * a.head_dim  # q + bias
        + 2 * (a.hidden_size * a.n_kv_heads * a.head_dim + a.n_kv_heads * a.head_dim)  # k, v + bias
        + a.n_heads * a.head_dim * a.hidden_size  # o
        + 3 * a.hidden_size * a.intermediate_size  # gate, up, down
        + 2 * a.hidden_size  # two RMSNorms
    )
    embed = a.vocab_size * a.hidden_size * (1 if a.tied_embeddings else 2)
    assert a.n_layers * per_layer + embed + a.hidden_size == m.params


@pytest.mark.parametrize("size", SIZES)
def test_gguf_files_add_up(size):
    m = load_catalog().model(size)
    for w in (w for w in m.weights if w.format == "gguf"):
        assert w.files, w.quant
        if w.bytes_exact:
            assert sum(f.bytes for f in w.files) == w.total_bytes
        n = len(w.files)
        if n > 1:  # split parts are named -0000i-of-0000n and all listed
            assert [f.name for f in w.files] == [
                f"qwen2.5-{size.lower()}-instruct-{w.quant}-{i:05d}-of-{n:05d}.gguf" for i in range(1, n + 1)
            ]
        else:
            assert w.files[0].name == f"qwen2.5-{size.lower()}-instruct-{w.quant}.gguf"


def test_7b_q4_k_m_is_two_parts_with_checksums():
    w = load_catalog().model("7B").weights_for("gguf", "q4_k_m")
    assert [(f.name, f.bytes) for f in w.files] == [
        ("qwen2.5-7b-instruct-q4_k_m-00001-of-00002.gguf", 3_993_201_344),
        ("qwen2.5-7b-instruct-q4_k_m-00002-of-00002.gguf", 689_872_288),
    ]
    assert all(f.sha256 and len(f.sha256) == 64 for f in w.files)


def test_mlx_repos_are_whole_snapshots_with_sourced_sizes():
    for m in load_catalog().models:
        for w in (w for w in m.weights if w.format == "mlx"):
            assert w.files == ()
            assert w.repo == f"mlx-community/Qwen2.5-{m.size}-Instruct-{w.quant}"
            assert w.source
            if not w.bytes_exact:
                assert "computed" in w.source


def test_every_figure_has_a_source():
    for m in load_catalog().models:
        assert all(m.sources)
        assert all(w.source for w in m.weights)


def test_quality_grows_with_size_and_falls_with_lossy_quants():
    c = load_catalog()
    scores = [m.score for m in c.models]
    assert scores == sorted(scores)
    m = c.model("7B")
    q = {w.quant: c.quality(m, w) for w in m.weights if w.format == "gguf"}
    assert q["q4_k_m"] == q["q8_0"] == q["fp16"] == m.score  # near-lossless: ties
    assert q["q2_k"] < q["q3_k_m"] < q["q4_0"] < q["q4_k_m"]


def test_generation_defaults():
    g = load_catalog().generation
    assert g.system_prompt == "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."
    assert (g.temperature, g.top_p, g.top_k, g.repeat_penalty) == (0.7, 0.8, 20, 1.05)


def test_the_code_takes_its_generation_defaults_from_the_catalog():
    """SamplingOptions, chat's system prompt and serve's defaults are the data file's, not literals beside it."""
    from qwenctl import conversation
    from qwenctl.backends import SamplingOptions
    from qwenctl.serve import SamplingDefaults

    g = load_catalog().generation
    s = SamplingOptions()
    assert (s.temperature, s.top_p, s.top_k, s.repeat_penalty) == (g.temperature, g.top_p, g.top_k, g.repeat_penalty)
    assert SamplingDefaults.qwen() == SamplingDefaults(g.temperature, g.top_p, g.top_k, g.repeat_penalty)
    assert conversation.Conversation().system == conversation.DEFAULT_SYSTEM_PROMPT == g.system_prompt


def test_unknown_size_and_quant():
    c = load_catalog()
    with pytest.raises(QwenctlError) as e:
        c.model("13B")
    assert e.value.code == ExitCode.NOT_FOUND and "0.5B" in e.value.hint
    with pytest.raises(QwenctlError):
        c.model("7B").weights_for("gguf", "iq4_xs")
    assert c.model("7b").size == "7B"
