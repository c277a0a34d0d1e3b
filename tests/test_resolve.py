"""What MODEL names (qwenctl/resolve.py), before anything is fetched: every form, one table."""

from __future__ import annotations

import pytest

from qwenctl.errors import ExitCode, QwenctlError
from qwenctl.resolve import ModelRef, is_gguf, parse_model

GGUF7 = "Qwen/Qwen2.5-7B-Instruct-GGUF"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("7b", ModelRef("7b", "catalog", size="7B")),
        ("0.5B", ModelRef("0.5B", "catalog", size="0.5B")),
        ("7b:q8_0", ModelRef("7b:q8_0", "catalog", size="7B", quant="q8_0")),
        ("7b:Q4_K_M", ModelRef("7b:Q4_K_M", "catalog", size="7B", quant="q4_k_m")),
        ("7b:f16", ModelRef("7b:f16", "catalog", size="7B", quant="fp16")),
        ("7b:4bit", ModelRef("7b:4bit", "catalog", size="7B", quant="4bit")),
        ("qwen2.5", ModelRef("qwen2.5", "catalog")),
        ("qwen2.5:latest", ModelRef("qwen2.5:latest", "catalog")),
        ("qwen2.5:14b", ModelRef("qwen2.5:14b", "catalog", size="14B")),
        ("qwen2.5:7b-instruct", ModelRef("qwen2.5:7b-instruct", "catalog", size="7B")),
        ("qwen2.5:7b-instruct-q4_K_M", ModelRef("qwen2.5:7b-instruct-q4_K_M", "catalog", size="7B", quant="q4_k_m")),
        (GGUF7, ModelRef(GGUF7, "catalog", size="7B", backend="llama.cpp", repo=GGUF7)),
        (f"{GGUF7}:q8_0", ModelRef(f"{GGUF7}:q8_0", "catalog", size="7B", quant="q8_0", backend="llama.cpp", repo=GGUF7)),
        (f"{GGUF7}:qwen2.5-7b-instruct-q8_0-00002-of-00003.gguf",
         ModelRef(f"{GGUF7}:qwen2.5-7b-instruct-q8_0-00002-of-00003.gguf", "catalog", size="7B", quant="q8_0",
                  backend="llama.cpp", repo=GGUF7)),
        ("mlx-community/Qwen2.5-7B-Instruct-4bit", ModelRef("mlx-community/Qwen2.5-7B-Instruct-4bit", "repo",
                                                            repo="mlx-community/Qwen2.5-7B-Instruct-4bit")),
        ("bartowski/Qwen2.5-7B-Instruct-GGUF", ModelRef("bartowski/Qwen2.5-7B-Instruct-GGUF", "repo",
                                                        repo="bartowski/Qwen2.5-7B-Instruct-GGUF")),
        ("bartowski/Qwen2.5-7B-Instruct-GGUF:q6_k", ModelRef("bartowski/Qwen2.5-7B-Instruct-GGUF:q6_k", "repo",
                                                             repo="bartowski/Qwen2.5-7B-Instruct-GGUF", file="q6_k")),
        ("ollama:qwen2.5:7b", ModelRef("ollama:qwen2.5:7b", "ollama")),
        ("./x.gguf", ModelRef("./x.gguf", "path", path="./x.gguf")),
        ("~/models/x", ModelRef("~/models/x", "path", path="~/models/x")),
        ("x.gguf", ModelRef("x.gguf", "path", path="x.gguf")),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_every_form(text, expected):
    assert parse_model(text) == expected


@pytest.mark.parametrize(
    ("text", "code"),
    [("9b", ExitCode.NOT_FOUND), ("7b:q9", ExitCode.NOT_FOUND), ("qwen2.5:huge", ExitCode.NOT_FOUND),
     ("qwen3:8b", ExitCode.NOT_FOUND), ("llama3", ExitCode.NOT_FOUND), ("", ExitCode.USAGE),
     ("a/b/c", ExitCode.BAD_INPUT)],
    ids=["size", "quant", "tag", "other-family", "no-such-name", "empty", "not-a-repo"],
)
def test_what_names_nothing(text, code):
    with pytest.raises(QwenctlError) as e:
        parse_model(text)
    assert e.value.code == code


def test_an_existing_file_named_like_nothing_else_is_a_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sha256-0123").write_bytes(b"GGUF\x03\x00\x00\x00")
    assert parse_model("sha256-0123") == ModelRef("sha256-0123", "path", path="sha256-0123")
    assert is_gguf(tmp_path / "sha256-0123") and not is_gguf(tmp_path / "missing")
    (tmp_path / "7b").mkdir()  # a folder named like a size does not shadow the size
    assert parse_model("7b").kind == "catalog"
