"""Reading Ollama's store: names, manifests, blobs, and every way a store can be wrong (qwenctl/ollama.py).
The store is built here from a generated GGUF, laid out as Ollama lays it out."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from run_helpers import tiny_model

from qwenctl.errors import ExitCode, QwenctlError
from qwenctl.ollama import OllamaName, parse_name, resolve, store_dirs
from qwenctl.testing.ollama_store import make_store


@pytest.fixture(scope="module")
def tiny(request) -> Path:
    return tiny_model(request.config)


@pytest.mark.parametrize(
    ("text", "name", "short"),
    [
        ("qwen2.5", OllamaName("registry.ollama.ai", "library", "qwen2.5", "latest"), "qwen2.5:latest"),
        ("qwen2.5:7b", OllamaName("registry.ollama.ai", "library", "qwen2.5", "7b"), "qwen2.5:7b"),
        ("me/mine:v1", OllamaName("registry.ollama.ai", "me", "mine", "v1"), "me/mine:v1"),
        ("hf.co/bartowski/Qwen2.5-7B-Instruct-GGUF:Q4_K_M",
         OllamaName("hf.co", "bartowski", "Qwen2.5-7B-Instruct-GGUF", "Q4_K_M"), "hf.co/bartowski/Qwen2.5-7B-Instruct-GGUF:Q4_K_M"),
    ],
    ids=["bare", "tag", "namespace", "hf.co"],
)
def test_names(text, name, short):
    assert parse_name(text) == name
    assert str(name) == short


@pytest.mark.parametrize("text", ["", "a/b/c/d", "../x", "qwen2.5:bad tag", "x:y:z"], ids=["empty", "deep", "dots", "space", "colons"])
def test_bad_names(text):
    with pytest.raises(QwenctlError) as e:
        parse_name(text)
    assert e.value.code == ExitCode.BAD_INPUT


def test_store_locations_in_order(tmp_path):
    assert store_dirs({"OLLAMA_MODELS": str(tmp_path)}) == [tmp_path]
    assert store_dirs({}, home=tmp_path) == [tmp_path / ".ollama" / "models", Path("/usr/share/ollama/.ollama/models")]


def test_a_model_resolves_to_its_blob_in_place(tmp_path, tiny):
    store = tmp_path / "models"
    manifest = make_store(store, "qwen2.5:0.5b", tiny, system="You are a pirate.")
    found = resolve("ollama:qwen2.5:0.5b", [tmp_path / "elsewhere", store])
    assert found.manifest == manifest and found.store == store
    assert found.blob.parent == store / "blobs" and found.blob.name.startswith("sha256-")
    assert found.blob.read_bytes()[:4] == b"GGUF" and found.size_bytes == tiny.stat().st_size
    assert found.system == "You are a pirate."


def test_what_can_be_wrong_with_a_store(tmp_path, tiny):
    store = tmp_path / "models"

    def error(name="qwen2.5:0.5b") -> QwenctlError:
        with pytest.raises(QwenctlError) as e:
            resolve(name, [store])
        return e.value

    assert error().code == ExitCode.NOT_FOUND and "no Ollama model store" in error().message
    manifest = make_store(store, "qwen2.5:0.5b", tiny)
    missing = error("qwen2.5:7b")
    assert (missing.code, missing.message) == (ExitCode.NOT_FOUND, f"ollama:qwen2.5:7b is not in Ollama's store ({store})")
    assert missing.hint == "`ollama pull qwen2.5:7b` fetches it; `ollama list` shows what is there"
    doc = json.loads(manifest.read_text())
    blob = store / "blobs" / doc["layers"][0]["digest"].replace(":", "-")

    doc["layers"][0]["size"] += 1
    manifest.write_text(json.dumps(doc))
    assert error().code == ExitCode.INTEGRITY  # an unfinished pull
    doc["layers"][0]["size"] -= 1

    manifest.write_text(json.dumps({**doc, "layers": doc["layers"][1:]}))
    assert error().code == ExitCode.BAD_INPUT and "has no model layer" in error().message
    manifest.write_text("{not json")
    assert error().code == ExitCode.BAD_INPUT
    manifest.write_text(json.dumps(doc))
    blob.unlink()
    assert error().code == ExitCode.NOT_FOUND and "is missing" in error().message
