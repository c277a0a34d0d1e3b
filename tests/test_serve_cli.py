"""`qwenctl serve` before any model loads: targets, the start-up document, refusals with one line."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from qwenctl import serve as serving
from qwenctl.backends import LoadOptions
from qwenctl.cli import cli
from qwenctl.errors import ExitCode
from qwenctl.names import served_model_id


def _invoke(*args: str):
    return CliRunner().invoke(cli, ["serve", *args], catch_exceptions=False)


@pytest.fixture
def gguf(tmp_path) -> Path:
    # never loaded: these tests stop before the engine
    path = tmp_path / "qwen2.5-7b-instruct-q4_k_m-00001-of-00002.gguf"
    path.write_bytes(b"GGUF")
    return path


def test_model_id_is_the_file_stem_without_split_suffix(gguf, tmp_path):
    assert served_model_id(gguf) == "qwen2.5-7b-instruct-q4_k_m"
    folder = tmp_path / "Qwen2.5-0.5B-Instruct-4bit"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    assert serving.target_from_path(folder).backend == "mlx"
    assert serving.target_from_path(folder).model_id == "Qwen2.5-0.5B-Instruct-4bit"


def test_a_folder_with_one_gguf_serves_that_file(gguf):
    target = serving.target_from_path(gguf.parent)
    assert (target.backend, target.model_path) == ("llama.cpp", gguf)


@pytest.mark.parametrize(
    ("name", "code"),
    [("missing.gguf", ExitCode.NOT_FOUND), ("notes.txt", ExitCode.BAD_INPUT)],
    ids=["missing", "not-a-model"],
)
def test_unusable_model_path_is_one_line(tmp_path, name, code):
    (tmp_path / "notes.txt").write_text("hello")
    result = _invoke("--model", str(tmp_path / name))
    assert result.exit_code == code
    assert result.output.count("\n") == 1 and result.output.startswith("error: ")


def test_busy_port_is_one_line(gguf):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        result = _invoke("--model", str(gguf), "--port", str(port))
    assert result.exit_code == ExitCode.ERROR
    assert f"cannot listen on 127.0.0.1:{port}" in result.output


@pytest.mark.parametrize("blocked", ["sse_starlette", "starlette"])
def test_missing_server_extra_names_the_install(gguf, blocked):
    """A server package missing, or one that a server package needs (starlette, under fastapi): one line
    naming the module and the extra, before anything loads. In a subprocess whose imports of `blocked`
    fail, so this process's already-imported modules play no part."""
    code = (
        f"import sys; sys.modules[{blocked!r}] = None; from qwenctl.cli import main; "
        f"sys.argv = ['qwenctl', 'serve', '--model', {str(gguf)!r}, '--port', '0']; main()"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == ExitCode.BACKEND, done.stderr
    assert "Traceback" not in done.stderr
    assert f"needs {blocked}, which is not installed" in done.stderr
    assert "pip install 'qwenctl[server]'" in done.stderr


def test_missing_server_extra_stops_before_any_download(tmp_path):
    """The planned model is not fetched when it could not be served: the error comes before the hub
    (an endpoint where nothing listens) is asked for anything."""
    code = (
        "import sys; sys.modules['sse_starlette'] = None; from qwenctl.cli import main; "
        "sys.argv = ['qwenctl', 'serve', '--backend', 'llama.cpp', '--size', '0.5B', '--yes']; main()"
    )
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf"), "HF_ENDPOINT": "http://127.0.0.1:9", "HF_HUB_OFFLINE": "0"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == ExitCode.BACKEND, done.stderr
    assert "needs sse_starlette, which is not installed" in done.stderr
    assert not (tmp_path / "hf").exists() or not any((tmp_path / "hf").rglob("*.gguf*"))


def test_a_broken_part_of_the_engines_server_is_named_not_the_engine(gguf):
    """A module of llama_cpp.server failing to import said "needs llama_cpp, which is not installed" on the GPU
    machine, where llama_cpp had just run the benchmarks: the line names the module that failed and why."""
    code = (
        "import sys; sys.modules['llama_cpp.server.model'] = None; from qwenctl.cli import main; "
        f"sys.argv = ['qwenctl', 'serve', '--model', {str(gguf)!r}, '--port', '0']; main()"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == ExitCode.BACKEND, done.stderr
    assert "needs llama_cpp" not in done.stderr and "Traceback" not in done.stderr
    assert "serving a llama.cpp model cannot import llama_cpp.server.app: import of llama_cpp.server.model halted" in done.stderr


@pytest.mark.parametrize(
    ("host", "key", "warned"),
    [("127.0.0.1", None, False), ("localhost", None, False), ("::1", None, False), ("0.0.0.0", None, True), ("0.0.0.0", "k3y", False)],
)
def test_non_loopback_without_key_warns(gguf, host, key, warned):
    target = serving.target_from_path(gguf, LoadOptions(n_ctx=8192))
    info = serving.server_info(target, serving.ServeOptions(host=host, api_key=key), 8123, 1)
    assert bool(info.warnings) is warned
    assert info.url.endswith(":8123/v1")
    assert info.n_ctx == 8192


def test_start_up_document_never_holds_the_key(gguf):
    target = serving.target_from_path(gguf)
    info = serving.server_info(target, serving.ServeOptions(api_key="s3cret-value"), 8000, 1)
    assert "s3cret-value" not in repr(info) and "s3cret-value" not in repr(serving.ServeOptions(api_key="s3cret-value"))
    assert info.api_key_required and "$QWENCTL_API_KEY" in info.curl
    assert info.url == "http://127.0.0.1:8000/v1"


def test_the_mlx_namespace_holds_every_setting_mlx_lm_server_reads(gguf):
    """qwenctl builds mlx_lm.server's `cli_args` itself (serve/mlx.py): a name mlx-lm starts reading
    after an upgrade fails here, not in a request."""
    pytest.importorskip("mlx_lm")
    import inspect
    import re

    from mlx_lm import server as mlx_server

    from qwenctl.serve.mlx import cli_args

    read = set(re.findall(r"cli_args\.(\w+)", inspect.getsource(mlx_server)))
    built = vars(cli_args(serving.ServeTarget(gguf.parent, "mlx", "m"), serving.ServeOptions()))
    assert "model" in read and "temp" in read
    assert sorted(read - set(built)) == []


def test_mlx_health_is_a_503_once_its_generation_thread_is_gone(model_cache):
    """mlx_lm answers every request with "generation thread died" once that thread ends on an error, while the
    process lives on; qwenctl's /health then says 503, so a supervisor restarts it. The real ResponseGenerator on
    the tiny MLX folder; its thread is ended by mlx_lm's own stop (every request that ended it is refused now)."""
    mlx_server = pytest.importorskip("mlx_lm.server")
    from mlx_lm.models.cache import LRUPromptCache

    from qwenctl.serve import mlx as serve_mlx
    from qwenctl.serve.openai import route
    from qwenctl.testing import models

    target = serving.target_from_path(models.tiny_mlx(model_cache))
    options = serving.ServeOptions()
    provider = mlx_server.ModelProvider(serve_mlx.cli_args(target, options))
    provider.load_default()
    generator = mlx_server.ResponseGenerator(provider, LRUPromptCache(10))
    handler_class = serve_mlx._mlx_handler_class(mlx_server.APIHandler, provider, target.model_id, options, 256)
    handler = handler_class.__new__(handler_class)  # what answers one request, without its socket
    handler.response_generator = generator
    assert handler._broken() is None
    generator.stop_and_join()
    broken = handler._broken()
    assert broken and "generation thread" in broken
    assert route("GET", "/health", target.model_id, 0, broken) == (
        503, {"status": "error", "model": target.model_id, "error": broken})
