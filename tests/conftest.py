import signal
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def model_cache(request, tmp_path_factory) -> Path:
    """Where generated test models live: pytest's cache dir, so they survive between runs
    (file names carry every generation parameter, see qwenctl.testing.models)."""
    cache = getattr(request.config, "cache", None)
    return Path(cache.mkdir("qwenctl-models")) if cache is not None else tmp_path_factory.mktemp("models")


@pytest.fixture(autouse=True)
def isolated_user_dirs(tmp_path_factory, monkeypatch):
    """Every test writes qwenctl's own data, cache and state and the Hugging Face cache under a fresh
    folder, never the user's (speed history, bench history, measured bandwidth, downloads), as llm's
    env_setup does; the user's hub token and cache settings do not leak in, and a test that reaches for
    the hub without its fake one (tests/fakehub.py sets HF_ENDPOINT) fails at once on a port where nothing
    listens instead of going to the network."""
    home = tmp_path_factory.mktemp("xdg")
    for var in ("XDG_DATA_HOME", "XDG_CACHE_HOME", "XDG_STATE_HOME", "XDG_CONFIG_HOME"):
        monkeypatch.setenv(var, str(home / var.lower()))
    monkeypatch.setenv("HF_HOME", str(home / "hf"))
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_HUB_OFFLINE",
                "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # the discard port: nothing listens
    monkeypatch.setenv("OLLAMA_MODELS", str(home / "ollama-models"))  # never the user's Ollama store
    for var in ("QWENCTL_CONFIG", "QWENCTL_LOGS_DB", "QWENCTL_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    from qwenctl.hardware import bandwidth

    monkeypatch.setattr(bandwidth, "_UNSAVED", {})  # a measurement one test's cache could not keep stays in that test


@pytest.fixture(autouse=True)
def _bugs_stay_visible(monkeypatch):
    """The CLI's last guard (qwenctl/guard.py) lets unexpected exceptions through under the test suite,
    in-process and in subprocesses, so a bug fails its test with a traceback instead of exiting 70."""
    from qwenctl.guard import TRACEBACK_ENV

    monkeypatch.setenv(TRACEBACK_ENV, "1")


@pytest.fixture(autouse=True, scope="session")
def _sigint_as_at_a_terminal():
    """Ctrl-C is KeyboardInterrupt in this process too when the suite was started from a shell that ignores
    SIGINT (nohup, a background job): the chat's own handler is put back to Python's default afterwards."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    yield

