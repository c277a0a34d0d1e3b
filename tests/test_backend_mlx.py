"""The mlx backend on the real mlx-lm (mlx[cpu] on Linux), with the generated tiny model folder."""

import pytest

from qwenctl.backends import LoadOptions, SamplingOptions, load_backend
from qwenctl.errors import ExitCode, QwenctlError
from qwenctl.testing import models

pytest.importorskip("mlx.core")
pytest.importorskip("mlx_lm")

HELLO = [{"role": "user", "content": "Hello!"}]


@pytest.fixture(scope="module")
def session(model_cache):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        s = load_backend("mlx", models.tiny_mlx(model_cache), LoadOptions(n_ctx=256, n_batch=64))
    yield s
    s.close()


def test_loads(session):
    assert (session.backend, session.n_ctx, session.n_vocab) == ("mlx", 256, models.small_vocab_size())
    assert session.n_gpu_layers == 0 and session.notes == ("mlx runs on the CPU here (no Metal GPU)",)


def test_chat_streams_to_max_tokens(session):
    events = list(session.chat(HELLO, SamplingOptions(max_tokens=6, seed=3)))
    assert [e.generated_tokens for e in events] == list(range(1, 7))
    assert events[-1].finish_reason == "length" and all(e.finish_reason is None for e in events[:-1])
    assert events[-1].prompt_tokens == session.count_chat_tokens(HELLO)


def test_same_prompt_tokens_as_llama_cpp(session, model_cache):
    pytest.importorskip("llama_cpp")
    gguf = load_backend("llama.cpp", models.tiny_gguf(model_cache), LoadOptions(n_ctx=256))
    try:
        assert session.chat_prompt(HELLO) == gguf.chat_prompt(HELLO)
    finally:
        gguf.close()


def test_same_seed_same_reply(session):
    def reply():
        return "".join(e.text for e in session.chat(HELLO, SamplingOptions(max_tokens=8, seed=5)))

    assert reply() == reply()


def test_raw_decoding(session):
    session.reset()
    session.prefill(list(range(100)))
    session.decode_one(3)
    assert session._cache[0].offset == 101


def test_not_a_model_folder(tmp_path):
    with pytest.raises(QwenctlError) as e:
        load_backend("mlx", tmp_path, LoadOptions())
    assert e.value.code == ExitCode.BAD_INPUT and "no config.json" in e.value.message


def test_broken_folder_is_a_backend_error(tmp_path, model_cache, monkeypatch):
    import shutil

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    folder = tmp_path / "m"
    shutil.copytree(models.tiny_mlx(model_cache), folder)
    (folder / "model.safetensors").unlink()
    with pytest.raises(QwenctlError) as e:
        load_backend("mlx", folder, LoadOptions())
    assert e.value.code == ExitCode.BACKEND
