"""`qwenctl models` and `rm` as a user types them: whole specs at 80 columns, short names, `rm --json`,
a declined removal without click's "Aborted!" (issue 16, friction 8 and "Also")."""

from __future__ import annotations

import json
import os
import random
import re
import sys

import pexpect
import pytest
from click.testing import CliRunner
from fakehub import FakeHub

from qwenctl import fetch
from qwenctl.cli import cli

GGUF_7B = "Qwen/Qwen2.5-7B-Instruct-GGUF"
PART1 = "qwen2.5-7b-instruct-q4_k_m-00001-of-00002.gguf"
PART2 = "qwen2.5-7b-instruct-q4_k_m-00002-of-00002.gguf"
MLX = "mlx-community/Qwen2.5-0.5B-Instruct-4bit"
OTHER = "someone/Qwen2.5-7B-Instruct-abliterated-GGUF"
OTHER_FILE = "model-Q6_K.gguf"
SPEC = f"{GGUF_7B}:{PART1}"


def _bytes(n: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(n)


Q8_PARTS = [f"qwen2.5-7b-instruct-q8_0-0000{i}-of-00003.gguf" for i in (1, 2, 3)]
FILES = {
    GGUF_7B: {PART1: _bytes(200_000, 1), PART2: _bytes(70_000, 2), **{p: _bytes(1_000, 5 + i) for i, p in enumerate(Q8_PARTS)}},
    MLX: {"config.json": b'{"model_type": "qwen2"}', "model.safetensors": _bytes(50_000, 3)},
    OTHER: {OTHER_FILE: _bytes(30_000, 4)},
}


@pytest.fixture(scope="module")
def hub():
    with FakeHub(FILES) as h:
        yield h


@pytest.fixture
def env(hub, tmp_path, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    fetch.pull(GGUF_7B, ["q4_k_m"])
    fetch.pull(MLX)
    fetch.pull(OTHER, [OTHER_FILE])
    return {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}


def test_models_at_80_columns_prints_every_spec_whole_after_its_short_name(env):
    child = pexpect.spawn(sys.executable, ["-m", "qwenctl", "models", "--all"], env={**env, "TERM": "xterm", "NO_COLOR": "1"},
                          encoding="utf-8", timeout=60, dimensions=(24, 80))
    child.expect(pexpect.EOF)
    out = re.sub(r"\x1b\[[0-9;]*m", "", child.before.replace("\r\n", "\n"))  # the header is bold
    lines = out.splitlines()
    assert lines[0].split() == ["name", "quant", "size", "verified", "revision", "model"]
    row = next(line for line in lines if SPEC in line)  # the terminal wraps it; qwenctl never cuts it
    assert row.split()[:4] == ["7b:q4_k_m", "Q4_K_M", "264", "KiB"]
    assert row.endswith(f"{SPEC} (+1 part)")
    assert next(line for line in lines if MLX in line).startswith("0.5b:4bit ")
    assert next(line for line in lines if OTHER in line).startswith("-  ")  # not a catalog file: no short name
    assert "…" not in out


def test_rm_json_and_a_declined_removal(env):
    runner = CliRunner()
    declined = runner.invoke(cli, ["rm", MLX], catch_exceptions=False)  # no terminal to ask on
    assert declined.exit_code == 1
    assert declined.output == f"error: not removing {MLX} (rerun with --yes to remove without asking)\n"
    removed = runner.invoke(cli, ["rm", MLX, "--yes", "--json"], catch_exceptions=False)
    assert removed.exit_code == 0
    doc = json.loads(removed.output)
    assert (doc["schema"], doc["repo"], doc["dry_run"]) == ("rm", MLX, False)
    assert sorted(doc["files"]) == ["config.json", "model.safetensors"] and doc["freed_bytes"] > 50_000


def test_rm_asks_on_a_terminal_and_no_means_no_without_aborted(env):
    child = pexpect.spawn(sys.executable, ["-m", "qwenctl", "rm", SPEC], env={**env, "TERM": "xterm"},
                          encoding="utf-8", timeout=60, dimensions=(24, 200))
    child.expect_exact(f"would remove {GGUF_7B}: 2 files, 264 KiB would be freed")
    child.expect_exact("remove? [Y/n]: ")
    child.sendline("n")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 1
    assert "Aborted" not in child.before and f"not removing {SPEC}" in child.before
    assert [m.spec for m in fetch.list_models().models if m.repo == GGUF_7B] == [SPEC]


def test_pull_says_it_resumes_and_fetches_only_the_rest(hub, tmp_path, monkeypatch):
    """Issue 16: "`pull` never says resuming". An interrupted download left half a file: the next pull says so and
    asks the hub for the other half only."""
    from daily_helpers import qwenctl

    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    blob = hub.blob(GGUF_7B, PART1)
    blobs = tmp_path / "hf" / "hub" / ("models--" + GGUF_7B.replace("/", "--")) / "blobs"
    blobs.mkdir(parents=True)
    half = FILES[GGUF_7B][PART1][: 120_000]
    (blobs / f"{blob.sha256}.incomplete").write_bytes(half)
    hub.reset_counters()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    done = qwenctl("pull", f"{GGUF_7B}:{PART1}", env=env)
    assert done.returncode == 0, done.stderr
    assert f"resuming {PART1}: 117 KiB already here" in done.stderr.splitlines()
    assert hub.bytes_sent[f"{GGUF_7B}/{PART1}"] == len(FILES[GGUF_7B][PART1]) - len(half)


def test_rm_takes_the_short_name_models_shows(env):
    done = CliRunner().invoke(cli, ["rm", "7b:q4_k_m", "--dry-run", "--json"], catch_exceptions=False)
    assert done.exit_code == 0
    doc = json.loads(done.output)
    assert (doc["repo"], sorted(doc["files"]), doc["dry_run"]) == (GGUF_7B, [PART1, PART2], True)


def test_rm_of_a_size_removes_the_one_model_of_it_and_names_the_choice_where_there_are_several(env):
    # `qwenctl pull 7b` fetched the plan's quant, which the user need not know: `rm 7b` finds it
    done = CliRunner().invoke(cli, ["rm", "qwen2.5:7b", "--dry-run", "--json"], catch_exceptions=False)
    assert done.exit_code == 0, done.output
    assert (json.loads(done.output)["repo"], sorted(json.loads(done.output)["files"])) == (GGUF_7B, [PART1, PART2])
    assert CliRunner().invoke(cli, ["rm", "0.5b", "--yes"]).exit_code == 0  # the MLX snapshot, the one 0.5B
    assert not any(m.repo == MLX for m in fetch.list_models().models)

    none = CliRunner().invoke(cli, ["rm", "3b", "--yes"])
    assert none.exit_code == 4 and "'3b' names a size, and the cache holds no model of that size" in none.output

    fetch.pull(GGUF_7B, ["q8_0"])
    several = CliRunner().invoke(cli, ["rm", "7b", "--yes"])
    assert several.exit_code == 4
    assert "holds 2 models of that size: 7b:q4_k_m, 7b:q8_0" in several.output and "qwenctl rm 7b:q4_k_m" in several.output
    assert len([m for m in fetch.list_models().models if m.repo == GGUF_7B]) == 2  # nothing removed
