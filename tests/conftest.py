from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def model_cache(request, tmp_path_factory) -> Path:
    """Where generated test models live: pytest's cache dir, so they survive between runs
    (file names carry every generation parameter, see qwenctl.testing.models)."""
    cache = getattr(request.config, "cache", None)
    return Path(cache.mkdir("qwenctl-models")) if cache is not None else tmp_path_factory.mktemp("models")
