"""Shared by the daily-use tests: a fake hub serving generated models under the catalog's own repo and
file names, and the CLI run in a subprocess the way a script or a user runs it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from qwenctl.catalog import load_catalog

TIMEOUT = 180


def catalog_files(model: Path, sizes=("0.5B",), formats=("gguf",)) -> dict[str, dict[str, Path]]:
    """Every catalog file of these sizes, each one the generated `model` (the hub serves it under that name)."""
    files: dict[str, dict[str, Path]] = {}
    for spec in load_catalog().models:
        if spec.size not in sizes:
            continue
        for w in spec.weights:
            if w.format in formats and w.format == "gguf":
                files.setdefault(w.repo, {}).update({name: model for name in w.file_names})
    return files


def cli_env(tmp_path: Path, hub=None, **extra) -> dict[str, str]:
    """The environment of a fresh user: own HF cache, qwenctl dirs and Ollama store; the fake hub if given."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("HF_", "XDG_", "QWENCTL_CONFIG", "QWENCTL_LOGS", "OLLAMA_", "PYTEST"))}
    env.update(
        HF_HOME=str(tmp_path / "hf"),
        HF_HUB_DISABLE_TELEMETRY="1",
        HF_ENDPOINT=hub.url if hub is not None else "http://127.0.0.1:9",
        XDG_DATA_HOME=str(tmp_path / "data"),
        XDG_CACHE_HOME=str(tmp_path / "cache"),
        XDG_CONFIG_HOME=str(tmp_path / "config"),
        XDG_STATE_HOME=str(tmp_path / "state"),
        OLLAMA_MODELS=str(tmp_path / "ollama"),
        **extra,
    )
    return env


def qwenctl(*args: str, env: dict[str, str], input: str | None = "", timeout: float = TIMEOUT) -> subprocess.CompletedProcess:
    """The CLI as a script runs it: stdin is not a terminal (empty unless given)."""
    return subprocess.run([sys.executable, "-m", "qwenctl", *args], input=input, capture_output=True, text=True,
                          timeout=timeout, env=env)


def resolve_gets(hub) -> list[str]:
    """The files the hub was asked for (GET …/resolve/…: one a file; the CDN redirect it answers is not counted)."""
    return [r.path for r in hub.requests if r.method == "GET" and "/resolve/" in r.path]
