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
    """Every test writes qwenctl's own data, cache and state under a fresh folder, never the user's
    (speed history, bench history, measured bandwidth), as llm's env_setup does."""
    home = tmp_path_factory.mktemp("xdg")
    for var in ("XDG_DATA_HOME", "XDG_CACHE_HOME", "XDG_STATE_HOME", "XDG_CONFIG_HOME"):
        monkeypatch.setenv(var, str(home / var.lower()))


@pytest.fixture(autouse=True)
def _bugs_stay_visible(monkeypatch):
    """The CLI's last guard (qwenctl/guard.py) lets unexpected exceptions through under the test suite,
    in-process and in subprocesses, so a bug fails its test with a traceback instead of exiting 70."""
    from qwenctl.guard import TRACEBACK_ENV

    monkeypatch.setenv(TRACEBACK_ENV, "1")
