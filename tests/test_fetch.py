"""qwenctl pull / models / rm against a local fake hub, through the real huggingface_hub code.

Most tests call the library in-process (qwenctl reads HF_ENDPOINT, HF_HOME, ... at call
time); the kill-and-resume, offline-by-env and token-leak tests run the CLI in a
subprocess, as a user would.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from qwenctl import fetch
from qwenctl.cli import cli
from qwenctl.errors import ExitCode, QwenctlError

sys.path.insert(0, str(Path(__file__).parent))
from fakehub import FakeHub  # noqa: E402

GGUF_05B = "Qwen/Qwen2.5-0.5B-Instruct-GGUF"
Q4 = "qwen2.5-0.5b-instruct-q4_k_m.gguf"
Q8 = "qwen2.5-0.5b-instruct-q8_0.gguf"
GGUF_7B = "Qwen/Qwen2.5-7B-Instruct-GGUF"
PART1 = "qwen2.5-7b-instruct-q4_k_m-00001-of-00002.gguf"
PART2 = "qwen2.5-7b-instruct-q4_k_m-00002-of-00002.gguf"
MLX = "mlx-community/Qwen2.5-0.5B-Instruct-4bit"
GATED = "Qwen/Qwen2.5-72B-Instruct-GGUF"
BIG = "qwen2.5-72b-instruct-q4_k_m.gguf"
GRANTED = "hf_granted_token_123456"


def _bytes(n: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(n)


FILES = {
    GGUF_05B: {Q4: _bytes(3_000_000, 1), Q8: _bytes(1_000_000, 2), "README.md": b"# Qwen2.5-0.5B-Instruct-GGUF\n"},
    GGUF_7B: {PART1: _bytes(2_000_000, 3), PART2: _bytes(700_000, 4), "qwen2.5-7b-instruct-q8_0.gguf": _bytes(100_000, 5)},
    MLX: {
        "config.json": b'{"model_type": "qwen2"}',
        "model.safetensors": _bytes(500_000, 6),
        "tokenizer.json": b'{"version": "1.0"}',
        "sub/notes.txt": b"nested",
    },
    GATED: {BIG: _bytes(200_000, 7)},
}


@pytest.fixture(scope="module")
def hub():
    with FakeHub(FILES, gated={GATED: {GRANTED}}) as h:
        yield h


@pytest.fixture(autouse=True)
def env(hub, tmp_path, monkeypatch):
    """A private HF cache and qwenctl data dir per test, pointed at the fake hub."""
    for var in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    hub.clear_faults()
    hub.reset_counters()
    yield tmp_path


def storage(tmp_path: Path, repo: str) -> Path:
    return tmp_path / "hf" / "hub" / ("models--" + repo.replace("/", "--"))


def body_gets(hub, repo: str | None = None) -> list:
    return [r for r in hub.requests if r.method == "GET" and (("/resolve/" in r.path and (repo is None or r.path.startswith(f"/{repo}/"))) or r.path.startswith("/cdn/"))]


def subprocess_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    return {**env, **extra}


def run_cli(*args: str, **env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "qwenctl", *args], env=subprocess_env(**env), capture_output=True, text=True, timeout=120)


# -- full pulls ------------------------------------------------------------------------------


def test_pull_one_gguf_lands_in_the_hf_cache_verified(hub, env):
    seen = []
    files = fetch.pull(GGUF_05B, [Q4], progress=seen.append)

    blob = FILES[GGUF_05B][Q4]
    path = Path(files.load_path)
    assert path.read_bytes() == blob
    assert path == storage(env, GGUF_05B) / "snapshots" / hub.repos[GGUF_05B].commit / Q4
    assert os.path.realpath(path) == str(storage(env, GGUF_05B) / "blobs" / hashlib.sha256(blob).hexdigest())
    assert (storage(env, GGUF_05B) / "refs" / "main").read_text() == hub.repos[GGUF_05B].commit
    assert (files.repo, files.revision, files.commit, files.filenames) == (GGUF_05B, "main", hub.repos[GGUF_05B].commit, (Q4,))
    assert (files.total_bytes, files.downloaded_bytes, files.verified) == (len(blob), len(blob), True)
    assert seen[-1] == fetch.PullProgress(Q4, len(blob), len(blob))
    assert hub.bytes_sent[f"{GGUF_05B}/{Q4}"] == len(blob)
    assert not list((storage(env, GGUF_05B) / "blobs").glob("*.incomplete"))


def test_a_data_folder_that_cannot_be_written_costs_a_later_hash_not_the_download(hub, env, monkeypatch):
    """The record of verified blobs lives in qwenctl's data folder; where that cannot be written (a file in its place,
    as a read-only home or a full disk would refuse it) the pull still lands, verified, and the next one hashes the
    blob again instead of trusting a record. Until session 69 the record's write error ended the pull."""
    (env / "not-a-folder").write_text("")
    monkeypatch.setenv("XDG_DATA_HOME", str(env / "not-a-folder"))
    files = fetch.pull(GGUF_05B, [Q4])
    assert files.verified and Path(files.load_path).read_bytes() == FILES[GGUF_05B][Q4]
    hub.reset_counters()
    again = fetch.pull(GGUF_05B, [Q4])
    assert again.downloaded_bytes == 0 and again.verified and body_gets(hub) == []


def test_second_pull_fetches_nothing(hub, env):
    fetch.pull(GGUF_05B, [Q4])
    hub.reset_counters()
    again = fetch.pull(GGUF_05B, [Q4])
    assert again.downloaded_bytes == 0 and again.verified
    assert body_gets(hub) == []


def test_split_gguf_parts_side_by_side_loaded_from_the_first(hub, env):
    files = fetch.pull(GGUF_7B, [PART2])  # any part brings them all
    assert files.filenames == (PART1, PART2)
    first, second = map(Path, files.paths)
    assert first.parent == second.parent
    assert files.load_path == str(first)
    assert first.read_bytes() + second.read_bytes() == FILES[GGUF_7B][PART1] + FILES[GGUF_7B][PART2]


def test_quant_name_stands_for_its_files(hub, env):
    assert fetch.pull(GGUF_7B, ["Q4_K_M"]).filenames == (PART1, PART2)
    assert fetch.pull(GGUF_05B, ["q8_0"]).filenames == (Q8,)


def test_no_such_quant_is_not_found_and_lists_the_quants(hub, env):
    with pytest.raises(QwenctlError) as e:
        fetch.pull(GGUF_05B, ["q5_k_m"])
    assert e.value.code == ExitCode.NOT_FOUND
    assert e.value.one_line() == f"{GGUF_05B} has no file q5_k_m at main (its GGUF quants: Q4_K_M, Q8_0)"
    assert body_gets(hub) == []


def test_whole_repo_snapshot_for_mlx_verifies_git_and_lfs_files(hub, env):
    files = fetch.pull(MLX)
    folder = Path(files.load_path)
    assert folder == storage(env, MLX) / "snapshots" / hub.repos[MLX].commit
    assert sorted(files.filenames) == sorted(FILES[MLX])
    for name, content in FILES[MLX].items():
        assert (folder / name).read_bytes() == content
    assert files.verified and files.total_bytes == sum(map(len, FILES[MLX].values()))


def test_cli_pull_prints_plain_progress_and_the_path(hub, env):
    proc = run_cli("pull", f"{GGUF_05B}:{Q8}")
    assert proc.returncode == 0, proc.stderr
    path = storage(env, GGUF_05B) / "snapshots" / hub.repos[GGUF_05B].commit / Q8
    assert proc.stdout == f"{GGUF_05B} (1 file, 977 KiB): downloaded 977 KiB, verified\n{path}\n"
    assert proc.stderr.splitlines()[-1].startswith(f"{GGUF_05B}:{Q8}: 100% 977 KiB of 977 KiB")


def test_cli_pull_json(hub, env):
    result = CliRunner().invoke(cli, ["pull", f"{GGUF_05B}:{Q8}", "--json"], catch_exceptions=False)
    assert result.exit_code == 0
    doc = json.loads(result.stdout)
    assert doc["schema"] == "pull" and doc["filenames"] == [Q8] and doc["verified"] is True
    assert doc["downloaded_bytes"] == doc["total_bytes"] == 1_000_000


def test_cli_pull_without_repo_pulls_what_the_plan_needs(hub, env):
    """`pull --profile --size --quant` fetches the planned files: here both parts of the split 7B Q4_K_M."""
    result = CliRunner().invoke(cli, ["pull", "--profile", "rtx-4060-8gb", "--size", "7B", "--quant", "q4_k_m", "--json"],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["repo"] == GGUF_7B and doc["filenames"] == [PART1, PART2] and doc["verified"] is True


def test_cli_pull_refuses_a_repo_with_plan_options(hub, env):
    result = CliRunner().invoke(cli, ["pull", f"{GGUF_05B}:{Q8}", "--size", "7B"])
    assert result.exit_code == 2 and "MODEL names the model itself; drop --size/--quant" in result.output


def test_hf_hub_cache_is_honoured(hub, env, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(env / "elsewhere"))
    files = fetch.pull(GGUF_05B, [Q8])
    assert files.load_path.startswith(str(env / "elsewhere" / "models--Qwen--Qwen2.5-0.5B-Instruct-GGUF" / "snapshots"))


# -- resume ----------------------------------------------------------------------------------


def test_pull_killed_half_way_resumes_without_refetching(tmp_path, monkeypatch):
    """SIGKILL a `qwenctl pull` mid-file; the next run asks only for the missing bytes."""
    size = 12_000_000
    content = _bytes(size, 11)
    with FakeHub({GGUF_05B: {Q4: content}}) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        hub.fault(Q4, rate=4_000_000)
        proc = subprocess.Popen([sys.executable, "-m", "qwenctl", "pull", f"{GGUF_05B}:{Q4}"], env=subprocess_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        partial = storage(tmp_path, GGUF_05B) / "blobs" / f"{hashlib.sha256(content).hexdigest()}.incomplete"
        deadline = time.monotonic() + 60
        while not (partial.exists() and partial.stat().st_size >= 3_000_000):
            assert time.monotonic() < deadline and proc.poll() is None, "the download never got going"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        on_disk = partial.stat().st_size
        assert 3_000_000 <= on_disk < size

        hub.wait_idle()  # the dead client's connection, still being fed, must not count below
        hub.clear_faults()
        hub.reset_counters()
        done = run_cli("pull", f"{GGUF_05B}:{Q4}")
        assert done.returncode == 0, done.stderr
        assert hub.bytes_sent[f"{GGUF_05B}/{Q4}"] == size - on_disk
        assert [r.range for r in body_gets(hub) if r.path.startswith("/cdn/")] == [f"bytes={on_disk}-"]
        assert Path(done.stdout.splitlines()[-1]).read_bytes() == content
        assert not partial.exists()


def test_connection_dropped_mid_body_is_resumed_with_a_range_request(hub, env):
    hub.fault(Q4, drop_after=1_000_000, times=1)
    files = fetch.pull(GGUF_05B, [Q4])
    assert Path(files.load_path).read_bytes() == FILES[GGUF_05B][Q4]
    ranges = [r.range for r in body_gets(hub) if r.path.startswith("/cdn/")]
    assert ranges[0] is None and ranges[1].startswith("bytes=")
    assert hub.bytes_sent[f"{GGUF_05B}/{Q4}"] == len(FILES[GGUF_05B][Q4])  # nothing sent twice


def test_partial_left_by_huggingface_hub_is_adopted(hub, env):
    """huggingface_hub 2.4.0 leaves `<etag>.<random>.incomplete` when killed; qwenctl resumes from it."""
    content = FILES[GGUF_05B][Q4]
    blobs = storage(env, GGUF_05B) / "blobs"
    blobs.mkdir(parents=True)
    sha = hashlib.sha256(content).hexdigest()
    (blobs / f"{sha}.1a2b3c4d.incomplete").write_bytes(content[:1_200_000])
    (blobs / f"{sha}.99999999.incomplete").write_bytes(content[:100])
    fetch.pull(GGUF_05B, [Q4])
    assert hub.bytes_sent[f"{GGUF_05B}/{Q4}"] == len(content) - 1_200_000
    assert sorted(p.name for p in blobs.iterdir()) == [sha]


def test_server_ignoring_range_restarts_the_file_and_hash_cleanly(hub, env):
    content = FILES[GGUF_05B][Q4]
    blobs = storage(env, GGUF_05B) / "blobs"
    blobs.mkdir(parents=True)
    (blobs / f"{hashlib.sha256(content).hexdigest()}.incomplete").write_bytes(content[:500_000])
    hub.fault(Q4, ignore_range=True)
    files = fetch.pull(GGUF_05B, [Q4])
    assert Path(files.load_path).read_bytes() == content and files.verified
    assert hub.bytes_sent[f"{GGUF_05B}/{Q4}"] == len(content)


# -- integrity -------------------------------------------------------------------------------


def test_corrupted_byte_is_detected_and_nothing_bad_stays(hub, env):
    hub.fault(Q4, corrupt_at=1_234_567)
    with pytest.raises(QwenctlError) as e:
        fetch.pull(GGUF_05B, [Q4])
    assert e.value.code == ExitCode.INTEGRITY
    assert "does not match the hub's sha256" in e.value.message and "deleted" in e.value.message
    repo_dir = storage(env, GGUF_05B)
    assert list((repo_dir / "blobs").iterdir()) == []
    assert not (repo_dir / "snapshots").exists() or not any(p.is_file() or p.is_symlink() for p in (repo_dir / "snapshots").rglob("*"))
    assert fetch.list_models().models == ()

    hub.clear_faults()
    assert Path(fetch.pull(GGUF_05B, [Q4]).load_path).read_bytes() == FILES[GGUF_05B][Q4]


def test_bad_blob_put_in_the_cache_by_another_tool_is_replaced(hub, env):
    """hf_hub_download accepts a corrupted body of the right size; qwenctl does not use it."""
    from huggingface_hub import hf_hub_download

    hub.fault(Q8, corrupt_at=10, times=1)
    bad = hf_hub_download(GGUF_05B, Q8, cache_dir=env / "hf" / "hub", endpoint=hub.url)
    assert Path(bad).read_bytes() != FILES[GGUF_05B][Q8]  # the library's own behaviour, for the record

    files = fetch.pull(GGUF_05B, [Q8])
    assert Path(files.load_path).read_bytes() == FILES[GGUF_05B][Q8]
    assert files.downloaded_bytes == len(FILES[GGUF_05B][Q8])


# -- errors, one line each -------------------------------------------------------------------


@pytest.mark.parametrize(
    "spec, fault, token, code, line",
    [
        (f"{GATED}:{BIG}", None, None, ExitCode.AUTH, f"{GATED} is gated and needs a token: set HF_TOKEN or run `hf auth login` (accept the model's terms on its page first)"),
        (f"{GATED}:{BIG}", None, "hf_not_granted_999", ExitCode.AUTH, f"{GATED} is gated and needs a token: set HF_TOKEN or run `hf auth login` (accept the model's terms on its page first)"),
        ("Qwen/Qwen2.5-1000B-Instruct-GGUF:x.gguf", None, None, ExitCode.NOT_FOUND, "no repo Qwen/Qwen2.5-1000B-Instruct-GGUF on {url} (check the name; a private repo needs a token: set HF_TOKEN or run `hf auth login`)"),
        (f"{GGUF_05B}:{Q4}", {"status": 404, "error_code": "EntryNotFound"}, None, ExitCode.NOT_FOUND, f"{GGUF_05B} has no file {Q4} at main"),
        (f"{GGUF_05B}:{Q4}", {"status": 500}, None, ExitCode.NETWORK, f"{{url}} answered 500 for {GGUF_05B}:{Q4} (the hub had a problem; try again later or set HF_ENDPOINT to a mirror)"),
        (f"{GGUF_05B}:{Q4}", {"status": 403}, None, ExitCode.AUTH, f"{{url}} refused access to {GGUF_05B} (403) (needs a token: set HF_TOKEN or run `hf auth login`)"),
    ],
    ids=["gated-401-no-token", "gated-403-wrong-token", "404-repo", "404-file", "500", "403-plain"],
)
def test_hub_errors_are_one_line_with_a_distinct_exit_code(hub, env, monkeypatch, spec, fault, token, code, line):
    if fault:
        hub.fault(Q4, **fault)
    if token:
        monkeypatch.setenv("HF_TOKEN", token)
    result = CliRunner().invoke(cli, ["pull", spec], catch_exceptions=False)
    assert result.exit_code == code
    assert result.stderr == f"error: {line.format(url=hub.url)}\n"
    assert result.stdout == ""
    if token:
        assert token not in result.output


def test_gated_repo_with_a_granted_token_downloads_and_never_shows_it(hub, env):
    proc = run_cli("-vv", "pull", f"{GATED}:{BIG}", HF_TOKEN=GRANTED)
    assert proc.returncode == 0, proc.stderr
    assert GRANTED not in proc.stdout + proc.stderr
    assert any(r.authorized for r in hub.requests if "/resolve/" in r.path)
    assert not any(r.authorized for r in hub.requests if r.path.startswith("/cdn/"))  # auth stays on the hub


@pytest.mark.slow  # huggingface_hub retries a dead body 5 times, 1 s apart
def test_connection_dropped_every_time_is_a_network_error_and_keeps_the_partial(hub, env):
    hub.fault(Q4, drop_after=0)
    result = CliRunner().invoke(cli, ["pull", f"{GGUF_05B}:{Q4}"], catch_exceptions=False)
    assert result.exit_code == ExitCode.NETWORK
    assert result.stderr.startswith(f"error: could not download from {hub.url}: RemoteProtocolError")
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.output
    assert list((storage(env, GGUF_05B) / "blobs").glob("*.incomplete"))


def test_hub_unreachable_is_a_network_error(env, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # discard port: nothing listens
    result = CliRunner().invoke(cli, ["pull", f"{GGUF_05B}:{Q4}"], catch_exceptions=False)
    assert result.exit_code == ExitCode.NETWORK
    assert result.stderr.startswith("error: could not download from http://127.0.0.1:9: ConnectError")
    assert result.stderr.count("\n") == 1


def test_disk_too_small_is_refused_before_the_first_byte(hub, env, monkeypatch):
    import shutil
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**9, 10**9 - 2_000_000, 2_000_000))
    with pytest.raises(QwenctlError) as e:
        fetch.pull(GGUF_05B, [Q4])
    assert e.value.code == ExitCode.DISK
    assert e.value.message.startswith("not enough disk: the download needs 3,000,000 bytes plus a 268,435,456-byte margin")
    assert body_gets(hub) == []
    assert not (storage(env, GGUF_05B) / "blobs").exists()


@pytest.mark.parametrize("name", ["../../etc/passwd", "/etc/passwd", "a/../../b.gguf", "C:\\x.gguf", "a//b"])
def test_names_that_would_escape_the_cache_are_refused(name):
    with pytest.raises(QwenctlError) as e:
        fetch.pull(GGUF_05B, [name])
    assert e.value.code == ExitCode.BAD_INPUT


def test_a_hub_listing_a_file_outside_the_repo_is_refused(tmp_path, monkeypatch):
    with FakeHub({"evil/Qwen2.5-GGUF": {"ok.gguf": b"x", "../../../escape.gguf": b"y"}}) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        with pytest.raises(QwenctlError, match="escape the model cache"):
            fetch.pull("evil/Qwen2.5-GGUF")
        assert body_gets(hub) == []


# -- offline ---------------------------------------------------------------------------------


def test_offline_without_the_files_says_so_and_makes_no_request(hub, env):
    with pytest.raises(QwenctlError) as e:
        fetch.pull(GGUF_05B, [Q4], offline=True)
    assert e.value.code == ExitCode.NOT_FOUND
    assert e.value.one_line() == f"{GGUF_05B}@main is not in the cache ({env / 'hf' / 'hub'}) and offline mode is on (pull it once while online: qwenctl pull {GGUF_05B}:{Q4})"  # the exact file
    assert hub.requests == []


def test_offline_with_the_files_cached_uses_them(hub, env):
    online = fetch.pull(GGUF_7B, [PART1])
    hub.reset_counters()
    offline = fetch.pull(GGUF_7B, ["q4_k_m"], offline=True)
    assert offline.paths == online.paths and offline.load_path == online.load_path and offline.verified
    assert hub.requests == []
    with pytest.raises(QwenctlError, match="has no cached file .* offline mode is on") as e:
        fetch.pull(GGUF_7B, ["q8_0"], offline=True)
    assert e.value.code == ExitCode.NOT_FOUND


def test_hf_hub_offline_env_in_the_cli(hub, env):
    fetch.pull(MLX)
    proc = run_cli("pull", MLX, HF_HUB_OFFLINE="1", HF_ENDPOINT="http://127.0.0.1:9")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"{MLX} (4 files, ")
    missing = run_cli("pull", f"{GGUF_05B}:{Q4}", "--offline")
    assert missing.returncode == ExitCode.NOT_FOUND
    assert missing.stderr.count("\n") == 1 and "offline mode is on" in missing.stderr


def test_offline_rehashes_a_blob_changed_since_it_was_verified(hub, env):
    files = fetch.pull(GGUF_05B, [Q8])
    blob = Path(os.path.realpath(files.load_path))
    data = bytearray(blob.read_bytes())
    data[5] ^= 1
    blob.write_bytes(bytes(data))
    with pytest.raises(QwenctlError) as e:
        fetch.pull(GGUF_05B, [Q8], offline=True)
    assert e.value.code == ExitCode.INTEGRITY
    assert not blob.exists() and not Path(files.load_path).is_symlink()


# -- models / rm / --model -------------------------------------------------------------------


def test_models_lists_what_is_cached_with_quant_and_verification(hub, env):
    fetch.pull(GGUF_7B, ["q4_k_m"])
    fetch.pull(GGUF_05B, [Q8])
    fetch.pull(MLX)
    listing = fetch.list_models()
    rows = {(m.spec, m.format, m.quant, m.size_bytes, m.verified, m.refs) for m in listing.models}
    assert rows == {
        (f"{GGUF_7B}:{PART1}", "gguf", "Q4_K_M", 2_700_000, True, ("main",)),
        (f"{GGUF_05B}:{Q8}", "gguf", "Q8_0", 1_000_000, True, ("main",)),
        (MLX, "mlx", "4bit", sum(map(len, FILES[MLX].values())), True, ("main",)),
    }
    assert listing.partial_bytes == 0

    blob = Path(os.path.realpath(storage(env, GGUF_05B) / "snapshots" / hub.repos[GGUF_05B].commit / Q8))
    with blob.open("ab") as f:
        f.write(b"!")
    assert {m.spec: m.verified for m in fetch.list_models().models}[f"{GGUF_05B}:{Q8}"] is False


def test_models_cli_table_and_json(hub, env):
    fetch.pull(GGUF_05B, [Q8])
    result = CliRunner().invoke(cli, ["models", "--json"], catch_exceptions=False)
    doc = json.loads(result.stdout)
    assert doc["schema"] == "models"
    assert [(m["spec"], m["quant"], m["verified"]) for m in doc["models"]] == [(f"{GGUF_05B}:{Q8}", "Q8_0", True)]
    table = CliRunner().invoke(cli, ["models"], catch_exceptions=False).stdout
    assert f"{GGUF_05B}:{Q8}" in table and "Q8_0" in table and "977 KiB" in table


def test_rm_a_split_gguf_removes_all_parts_and_their_blobs(hub, env):
    fetch.pull(GGUF_7B, ["q4_k_m"])
    fetch.pull(GGUF_7B, ["q8_0"])
    result = CliRunner().invoke(cli, ["rm", f"{GGUF_7B}:{PART1}", "--yes"], catch_exceptions=False)
    assert result.exit_code == 0
    assert result.stdout == f"removed {GGUF_7B}: 2 files, 3 MiB freed\n"
    assert [m.spec for m in fetch.list_models().models] == [f"{GGUF_7B}:qwen2.5-7b-instruct-q8_0.gguf"]
    assert len(list((storage(env, GGUF_7B) / "blobs").iterdir())) == 1


def test_rm_a_whole_repo_and_a_missing_one(hub, env):
    fetch.pull(MLX)
    assert fetch.remove(MLX, dry_run=True).freed_bytes == sum(map(len, FILES[MLX].values()))
    assert storage(env, MLX).exists()
    fetch.remove(MLX)
    assert not storage(env, MLX).exists()
    with pytest.raises(QwenctlError) as e:
        fetch.remove(MLX)
    assert e.value.code == ExitCode.NOT_FOUND


def test_resolve_model_arg_local_path_and_repo_spec(hub, env, tmp_path):
    local = tmp_path / "mine.gguf"
    local.write_bytes(b"GGUF....")
    mine = fetch.resolve_model_arg(str(local))
    assert (mine.repo, mine.load_path, mine.total_bytes, mine.verified) == (None, str(local), 8, False)

    pulled = fetch.resolve_model_arg(f"{GGUF_05B}:q8_0")
    assert pulled.filenames == (Q8,) and pulled.verified

    with pytest.raises(QwenctlError) as e:
        fetch.resolve_model_arg("./nope.gguf")
    assert e.value.code == ExitCode.NOT_FOUND


@pytest.mark.parametrize(
    "name, quant",
    [
        ("qwen2.5-7b-instruct-q4_k_m-00001-of-00002.gguf", "Q4_K_M"),
        ("qwen2.5-0.5b-instruct-fp16.gguf", "F16"),
        ("qwen2.5-3b-instruct-q3_k_m.gguf", "Q3_K_M"),
        ("qwen2.5-1.5b-instruct-q8_0.gguf", "Q8_0"),
        ("mlx-community/Qwen2.5-7B-Instruct-4bit", "4bit"),
        ("README.md", None),
    ],
)
def test_quant_guessed_from_names(name, quant):
    assert fetch.quant_of(name) == quant


def test_a_plan_whose_part_names_are_inferred_is_fetched_by_its_quant(env, monkeypatch):
    """The official 72B files other than Q4_K_M are named in the catalog from public command lines, not the repo's
    manifest (their bytes computed, `download_bytes_exact` false). Such a plan asks the hub for its quantization, whose
    listing gives the parts it really has: here 3 where the catalog says 13. A plan from the manifest asks by name."""
    from qwenctl.pipeline import files_to_ask
    from qwenctl.plan import plan
    from qwenctl.profiles import load_profile

    chosen = plan(load_profile("h200-141gb")).chosen
    assert (chosen.size, chosen.quant, chosen.download_bytes_exact, len(chosen.files)) == ("72B", "q5_0", False, 13)
    assert files_to_ask(chosen.files, chosen.download_bytes_exact) == ["Q5_0"]
    exact = plan(load_profile("rtx-4060-8gb")).chosen
    assert exact.download_bytes_exact and files_to_ask(exact.files, True) == list(exact.files)
    parts = [f"qwen2.5-72b-instruct-q5_0-0000{i}-of-00003.gguf" for i in (1, 2, 3)]
    repo = {name: _bytes(50_000, 20 + i) for i, name in enumerate(parts)} | {"qwen2.5-72b-instruct-q4_0.gguf": b"x" * 10}
    with FakeHub({chosen.repo: repo}) as other:
        monkeypatch.setenv("HF_ENDPOINT", other.url)
        assert fetch.pull(chosen.repo, files_to_ask(chosen.files, False)).filenames == tuple(parts)
