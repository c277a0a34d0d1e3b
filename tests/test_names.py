"""names.py: the naming rules every room shares (REPO[:FILE], split parts, path or repo, served id)."""

from __future__ import annotations

import pytest

from qwenctl.errors import ExitCode, QwenctlError
from qwenctl.names import looks_like_path, parse_spec, served_model_id, split_parts, unsplit
from qwenctl.pipeline import local_model


@pytest.mark.parametrize(
    ("arg", "path"),
    [
        ("./m.gguf", True),
        ("../models/m.gguf", True),
        ("/models/qwen", True),
        ("~/m.gguf", True),
        ("m.gguf", True),
        ("Qwen/Qwen2.5-0.5B-Instruct-GGUF:qwen2.5-0.5b-instruct-q4_k_m.gguf", False),
        ("Qwen/Qwen2.5-0.5B-Instruct-GGUF:q4_k_m", False),
        ("mlx-community/Qwen2.5-0.5B-Instruct-4bit", False),
    ],
    ids=["dot", "dotdot", "absolute", "home", "bare-gguf", "repo-file", "repo-quant", "repo"],
)
def test_path_or_repo(arg, path):
    assert looks_like_path(arg) is path


def test_repo_colon_file():
    assert parse_spec("Qwen/Qwen2.5-0.5B-Instruct-GGUF:a.gguf") == ("Qwen/Qwen2.5-0.5B-Instruct-GGUF", "a.gguf")
    assert parse_spec("Qwen/Qwen2.5-0.5B-Instruct-GGUF") == ("Qwen/Qwen2.5-0.5B-Instruct-GGUF", None)
    for bad in ("Qwen/x:", "Qwen/x:../../etc/passwd", "not a repo"):
        with pytest.raises(QwenctlError) as e:
            parse_spec(bad)
        assert e.value.code == ExitCode.BAD_INPUT


def test_split_parts_and_the_unsplit_name():
    assert split_parts("m-00002-of-00003.gguf") == ("m-00001-of-00003.gguf", "m-00002-of-00003.gguf", "m-00003-of-00003.gguf")
    assert split_parts("m.gguf") == ("m.gguf",)
    assert unsplit("m-00002-of-00003.gguf") == "m.gguf" and unsplit("m.gguf") == "m.gguf"


def test_served_model_id(tmp_path):
    assert served_model_id(tmp_path / "qwen2.5-7b-instruct-q4_k_m-00001-of-00002.gguf") == "qwen2.5-7b-instruct-q4_k_m"
    snapshot = tmp_path / "0123abcd"
    snapshot.mkdir()
    assert served_model_id(snapshot, "mlx-community/Qwen2.5-0.5B-Instruct-4bit") == "Qwen2.5-0.5B-Instruct-4bit"
    assert served_model_id(snapshot) == "0123abcd"


def test_a_folder_with_one_gguf_loads_that_file_for_run_and_serve(tmp_path):
    """One rule (pipeline.local_model) for `run --model DIR` and `serve --model DIR`."""
    (tmp_path / "m.gguf").write_bytes(b"GGUF")
    assert local_model(tmp_path) == (tmp_path / "m.gguf", "llama.cpp")
    (tmp_path / "n.gguf").write_bytes(b"GGUF")
    with pytest.raises(QwenctlError, match="is a folder without config.json") as e:
        local_model(tmp_path)
    assert e.value.code == ExitCode.BAD_INPUT
