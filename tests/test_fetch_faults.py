"""Real faults during `qwenctl pull`: a disk that fills mid-download, a file-size limit, a read-only
cache, and OS errors injected at the OS boundary (os.open, os.mkdir, os.fsync).

Each ends in one line on stderr naming the path and the fix, with the documented exit code
(qwenctl/errors.py), never a traceback; and each time nothing partial is taken as complete: no
blob, no snapshot link, an offline pull finds nothing, and once the fault is gone a pull finishes
from the partial and verifies.

The filesystem variants mount a small tmpfs (root here); where mounting is not allowed (CI) they
are skipped and the injected variants cover the same errors.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import random
import re
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

REPO = "Qwen/Qwen2.5-0.5B-Instruct-GGUF"
NAME = "qwen2.5-0.5b-instruct-q4_k_m.gguf"
DATA = random.Random(17).randbytes(3_000_000)
SHA = hashlib.sha256(DATA).hexdigest()
FOLDER = "models--Qwen--Qwen2.5-0.5B-Instruct-GGUF"


@pytest.fixture(scope="module")
def hub():
    with FakeHub({REPO: {NAME: DATA, "README.md": b"# readme\n"}}) as h:
        yield h


@pytest.fixture(autouse=True)
def env(hub, tmp_path, monkeypatch):
    for var in ("HF_TOKEN", "HF_HUB_OFFLINE", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_HOME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    # the preflight keeps a 256 MiB margin; these filesystems are a few MiB, and the faults come after it
    monkeypatch.setattr(fetch, "DISK_MARGIN_MIN_BYTES", 0)
    hub.clear_faults()
    yield tmp_path


@contextlib.contextmanager
def tmpfs(where: Path, options: str):
    where.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip() or done.returncode}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=True)


def pull_cli(*extra: str):
    return CliRunner().invoke(cli, ["pull", f"{REPO}:{NAME}", *extra], catch_exceptions=False)


def one_line(stderr: str) -> str:
    """The one error line (a progress line may come before it), with no traceback anywhere."""
    errors = [line for line in stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "Traceback" not in stderr, stderr
    assert stderr.rstrip().endswith(errors[0])
    return errors[0].removeprefix("error: ")


def assert_nothing_taken_as_complete(cache: Path) -> None:
    """No blob, no snapshot link; the cache has at most the partial, and offline finds nothing to use."""
    storage = cache / FOLDER
    blobs = sorted(p.name for p in (storage / "blobs").iterdir()) if (storage / "blobs").is_dir() else []
    assert SHA not in blobs and all(b.endswith(".incomplete") for b in blobs), blobs
    snapshots = storage / "snapshots"
    assert not (snapshots.is_dir() and any(p for p in snapshots.rglob("*") if not p.is_dir()))
    with pytest.raises(QwenctlError) as e:
        fetch.pull(REPO, [NAME], offline=True)
    assert e.value.code == ExitCode.NOT_FOUND


def assert_pull_now_completes(downloaded: int) -> None:
    """The fault gone, a pull ends verified, fetching only what the partial lacked."""
    files = fetch.pull(REPO, [NAME])
    assert Path(files.load_path).read_bytes() == DATA and files.verified
    assert files.downloaded_bytes == downloaded


def fill(path: Path, after: Path, size: int) -> None:
    """Once `after` holds `size` bytes (the hub waits meanwhile), another program takes every free byte."""
    deadline = time.monotonic() + 30
    while not (after.exists() and after.stat().st_size >= size):
        assert time.monotonic() < deadline, f"the client never wrote {size} bytes"
        time.sleep(0.01)
    with path.open("wb") as f, contextlib.suppress(OSError):
        while True:
            f.write(b"\0" * 65536)
            f.flush()


def test_disk_filling_during_a_pull_on_a_small_tmpfs_is_exit_8(hub, env, monkeypatch):
    small = env / "small"
    with tmpfs(small, "size=4m"):
        cache = small / "hub"
        partial = cache / FOLDER / "blobs" / f"{SHA}.incomplete"
        monkeypatch.setenv("HF_HUB_CACHE", str(cache))
        hub.fault(NAME, call_at=(1_000_000, lambda: fill(small / "filler", partial, 1_000_000)), times=1)

        result = pull_cli()

        assert result.exit_code == ExitCode.DISK
        assert one_line(result.stderr) == (f"cannot write {partial}: no space left on the device "
                                           "(free some space, or point HF_HUB_CACHE at another disk)")
        kept = partial.stat().st_size
        assert kept >= 1_000_000
        assert_nothing_taken_as_complete(cache)
        (small / "filler").unlink()
        assert_pull_now_completes(downloaded=len(DATA) - kept)


def test_a_file_size_limit_in_a_subprocess_is_exit_8(env):
    import resource

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (1_000_000, 1_000_000))

    env_vars = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    done = subprocess.run([sys.executable, "-m", "qwenctl", "pull", f"{REPO}:{NAME}"], env=env_vars, preexec_fn=limit,
                          capture_output=True, text=True, timeout=120)

    partial = env / "hub" / FOLDER / "blobs" / f"{SHA}.incomplete"
    assert done.returncode == ExitCode.DISK, done.stderr
    assert one_line(done.stderr) == (f"cannot write {partial}: the file is larger than this filesystem or the file-size "
                                     "limit allows (raise `ulimit -f`, or use a filesystem that holds large files)")
    assert partial.stat().st_size == 1_000_000
    assert_nothing_taken_as_complete(env / "hub")
    assert_pull_now_completes(downloaded=len(DATA) - 1_000_000)


def test_a_read_only_mounted_cache_is_one_line(env, monkeypatch):
    with tmpfs(env / "ro", "ro,size=8m") as ro:
        monkeypatch.setenv("HF_HUB_CACHE", str(ro / "hub"))
        result = pull_cli()
        assert result.exit_code == ExitCode.FILE_ACCESS
        assert one_line(result.stderr) == (f"cannot write {ro / 'hub'}: the filesystem is read-only "
                                           "(remount it read-write, or point HF_HUB_CACHE at another disk)")
        assert not (ro / "hub").exists()
    assert_pull_now_completes(downloaded=len(DATA))


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root writes through permissions")
def test_a_cache_without_write_permission_is_one_line(env):
    cache = env / "hub"
    cache.mkdir()
    cache.chmod(0o555)
    try:
        result = pull_cli()
        assert result.exit_code == ExitCode.FILE_ACCESS
        assert one_line(result.stderr) == (f"cannot write {cache / FOLDER}: permission denied "
                                           "(check its owner and permissions, or point HF_HUB_CACHE at another disk)")
        assert_nothing_taken_as_complete(cache)
    finally:
        cache.chmod(0o755)
    assert_pull_now_completes(downloaded=len(DATA))


def _failing(real, err: int, when):
    def call(path, *args, **kwargs):
        if when(os.fsdecode(path) if isinstance(path, (str, bytes, os.PathLike)) else path):
            raise OSError(err, os.strerror(err), path if isinstance(path, (str, bytes, os.PathLike)) else None)
        return real(path, *args, **kwargs)

    return call


def _in(folder: Path):
    return lambda p: isinstance(p, str) and p.startswith(str(folder))


@pytest.mark.parametrize(
    "call, err, where, code, message",
    [
        # the folder holding the verification record is full: the blob was verified and moved into place, so the
        # pull succeeds (until session 69 it failed, exit 8, over a record that only spares a hash) and the next
        # one hashes it again
        ("open", errno.ENOSPC, "data", ExitCode.OK, ""),
        ("fsync", errno.EIO, "partial", ExitCode.FILE_ACCESS,
         "cannot write {path}: an I/O error (the disk or the network filesystem failed) (check the disk (`dmesg`) and try again)"),
        ("open", errno.EMFILE, "lock", ExitCode.FILE_ACCESS,
         "cannot write {path}: too many open files in this process (raise the limit (`ulimit -n`) and try again)"),
        ("mkdir", errno.EACCES, "cache", ExitCode.FILE_ACCESS,
         "cannot write {path}: permission denied (check its owner and permissions, or point HF_HUB_CACHE at another disk)"),
        ("mkdir", errno.EROFS, "cache", ExitCode.FILE_ACCESS,
         "cannot write {path}: the filesystem is read-only (remount it read-write, or point HF_HUB_CACHE at another disk)"),
    ],
    ids=["ENOSPC-record", "EIO-fsync", "EMFILE-lock", "EACCES-mkdir", "EROFS-mkdir"],
)
def test_injected_os_errors_are_one_line(env, monkeypatch, call, err, where, code, message):
    cache = env / "hub"
    seen: list[str] = []
    with pytest.MonkeyPatch.context() as mp:
        if call == "fsync":
            real_fsync = os.fsync

            def fsync(fd):
                name = os.readlink(f"/proc/self/fd/{fd}")
                if name.endswith(".incomplete"):
                    seen.append(name)
                    raise OSError(err, os.strerror(err))
                return real_fsync(fd)

            mp.setattr(os, "fsync", fsync)
        else:
            when = {"data": _in(env / "data"), "cache": _in(cache),
                    "lock": lambda p: isinstance(p, str) and p.endswith(".lock")}[where]

            def record(p):
                if when(p):
                    seen.append(p)
                    return True
                return False

            mp.setattr(os, call, _failing(getattr(os, call), err, record))
        result = pull_cli()

    assert seen, "the fault was hit"
    assert result.exit_code == code, result.stderr
    if where == "data":  # complete and verified before the record failed: kept, and hashed again next time
        assert "error" not in result.stderr
        assert (cache / FOLDER / "blobs" / SHA).read_bytes() == DATA
        assert fetch.pull(REPO, [NAME]).downloaded_bytes == 0
        return
    # a file written through a temp file beside it (files.write_text) is named as the file asked for
    asked_for = re.sub(r"/\.([^/]+)\.[^./]+\.tmp$", r"/\1", seen[0])
    assert one_line(result.stderr) == message.format(path=asked_for)
    assert_nothing_taken_as_complete(cache)
    # the fsync failed after the last byte: the next pull fetches nothing, hashes the partial and moves it
    assert_pull_now_completes(downloaded=0 if where == "partial" else len(DATA))


# -- the hub's side: answers of an unexpected shape, dropped connections ---------------------------


@pytest.mark.parametrize(
    "call, body, detail",
    [
        ("tree", b'[{"type": "file", "path": "x.gguf"}]', "KeyError: 'size'"),
        ("info", b'["not", "a", "repo"]', "TypeError: huggingface_hub.hf_api.ModelInfo() argument after ** must be a mapping, not list"),
    ],
    ids=["tree-entry-without-oid", "info-as-a-list"],
)
def test_a_hub_answer_of_an_unexpected_shape_is_one_line(hub, env, call, body, detail):
    hub.fault(call, repo=REPO, api_body=body)
    result = pull_cli()
    assert result.exit_code == ExitCode.NETWORK
    assert one_line(result.stderr) == (
        f"{hub.url} answered in an unexpected shape for {REPO} ({detail}) (is HF_ENDPOINT a Hugging Face hub or a full "
        "mirror of one? try again later, or `--offline` for what is cached)")
    assert_nothing_taken_as_complete(env / "hub")


def test_a_dropped_connection_is_said_once_by_qwenctl_not_by_huggingface_hub(hub, env):
    """Dropped twice mid-body: huggingface_hub resumes each time; stderr has one line about it, qwenctl's."""
    hub.fault(NAME, drop_after=700_000, times=2)
    env_vars = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    done = subprocess.run([sys.executable, "-m", "qwenctl", "pull", f"{REPO}:{NAME}"], env=env_vars,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    about = [line for line in done.stderr.splitlines() if "drop" in line or "download" in line.lower() and "Error" in line]
    assert len(about) == 1 and about[0].startswith("WARNING qwenctl.fetch: the connection dropped ("), done.stderr
    assert about[0].endswith("); resuming the download") and "Traceback" not in done.stderr
    assert (env / "hub" / FOLDER / "blobs" / SHA).read_bytes() == DATA
