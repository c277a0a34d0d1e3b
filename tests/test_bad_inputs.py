"""A corpus of bad inputs, as a new user would feed them, and the CLI's last guard.

Every bad profile and snapshot is one line on stderr naming the file (and the field), exit 3
(BAD_INPUT) or 4 (NOT_FOUND). These run with the last guard live (QWENCTL_TRACEBACK unset) and
assert it never fires: no "internal error", no exit 70, no crash log. One test proves the guard
itself works by forcing an unexpected exception at a boundary (the profile loader).
"""

from __future__ import annotations

import json
import re
import sys

import pytest
from click.testing import CliRunner
from hardware_captures import CAPTURES, document

from qwenctl import guard
from qwenctl.cli import cli
from qwenctl.errors import ExitCode

WIDE = {"COLUMNS": "300", "NO_COLOR": "1"}

GOOD_PROFILE = """\
name = "Test box"
system = "Linux"
machine = "x86_64"
[cpu]
brand = "Test"
arch = "x86_64"
physical_cores = 4
logical_cores = 8
flags = ["avx2", "fma"]
[memory]
total = "16 GiB"
bandwidth = "51.2 GB/s"
[sources]
cpu = "spec sheet"
memory = "spec sheet"
"""


@pytest.fixture(autouse=True)
def live_guard(tmp_path, monkeypatch):
    """The guard as users have it, its log folder private to the test."""
    monkeypatch.delenv(guard.TRACEBACK_ENV, raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    yield
    assert not guard.crash_log_dir().exists(), "the last guard fired"


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args), env=WIDE, catch_exceptions=False)


def one_line(result, code: ExitCode) -> str:
    assert result.exit_code == code, result.output
    assert "internal error" not in result.output and "Traceback" not in result.output
    assert result.stdout == "" and result.stderr.count("\n") == 1, result.stderr
    return result.stderr.removeprefix("error: ").rstrip("\n")


def _edit(old: str, new: str):
    return lambda text: text.replace(old, new).encode("utf-8")


PROFILES = {
    "binary": (lambda t: b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)), "profile {f} is a binary file, not text (is it the right file?)"),
    "latin-1": (lambda t: t.replace("Test box", "Café box").encode("latin-1"),
                "profile {f} is not UTF-8 text (byte 0xe9 at offset 11) (save it as UTF-8)"),
    "not-toml": (lambda t: b"name = \n", "profile {f}: not valid TOML: Invalid value (at line 1, column 8)"),
    "empty": (lambda t: b"", "profile {f}: field 'name' is missing (see docs/planning.md for the profile format)"),
    "int-flags": (_edit('["avx2", "fma"]', "[1, 2]"),
                  "profile {f}: field 'cpu.flags' must be a list of strings, got [1, 2] (see docs/planning.md for the profile format)"),
    "unknown-machine": (_edit('machine = "x86_64"', 'machine = "pentium"'),
                        "profile {f}: field 'machine' must be one of x86_64, AMD64, aarch64, arm64, ARM64, armv7l, armv6l, "
                        "riscv64, ppc64le, s390x, got 'pentium' (see docs/planning.md for the profile format)"),
    "unknown-system": (_edit('system = "Linux"', 'system = "BeOS"'),
                       "profile {f}: field 'system' must be one of Linux, Darwin, Windows, got 'BeOS' (see docs/planning.md for the profile format)"),
    "negative-total": (_edit('total = "16 GiB"', "total = -17179869184"),
                       "profile {f}: field 'memory.total' must be positive, got -17179869184 (see docs/planning.md for the profile format)"),
    "negative-size-text": (_edit('"16 GiB"', '"-16 GiB"'),
                           "profile {f}: field 'memory.total' must be a size like '8 GiB' or an integer, got '-16 GiB' (see docs/planning.md for the profile format)"),
    "size-past-a-float": (_edit('"16 GiB"', '"1e400 GB"'),
                          "profile {f}: field 'memory.total' must be a size like '8 GiB' or an integer, got '1e400 GB' (see docs/planning.md for the profile format)"),
    "negative-cores": (_edit("physical_cores = 4", "physical_cores = -4"),
                       "profile {f}: field 'cpu.physical_cores' must be at least 1, got -4 (see docs/planning.md for the profile format)"),
    "bool-cores": (_edit("physical_cores = 4", "physical_cores = true"),
                   "profile {f}: field 'cpu.physical_cores' must be int, got True (see docs/planning.md for the profile format)"),
    "fewer-logical": (_edit("logical_cores = 8", "logical_cores = 2"),
                      "profile {f}: field 'cpu.logical_cores' must be at least 4, got 2 (see docs/planning.md for the profile format)"),
    "available-above-total": (_edit('total = "16 GiB"', 'total = "16 GiB"\navailable = "32 GiB"'),
                              "profile {f}: field 'memory.available' must not exceed memory.total (17,179,869,184 bytes) (see docs/planning.md for the profile format)"),
    "typo": (_edit("physical_cores = 4", "physical_cores = 4\nphysical_core = 4"),
             "profile {f}: field 'cpu.physical_core' is not a profile field (misspelt?) (see docs/planning.md for the profile format)"),
}


@pytest.mark.parametrize("make, message", PROFILES.values(), ids=PROFILES.keys())
def test_bad_profile_is_one_line(tmp_path, make, message):
    f = tmp_path / "box.toml"
    f.write_bytes(make(GOOD_PROFILE))
    assert one_line(invoke("plan", "--profile", str(f)), ExitCode.BAD_INPUT) == message.format(f=f)


def test_a_folder_named_like_a_profile_is_one_line(tmp_path):
    folder = tmp_path / "x.toml"
    folder.mkdir()
    assert one_line(invoke("plan", "--profile", str(folder)), ExitCode.BAD_INPUT) == f"profile {folder} is a folder, not a file"


def test_a_missing_profile_file_is_one_line(tmp_path):
    missing = tmp_path / "nope.toml"
    assert one_line(invoke("plan", "--profile", str(missing)), ExitCode.NOT_FOUND) == f"no such profile: {missing}"


def test_a_byte_order_mark_is_accepted(tmp_path):
    f = tmp_path / "bom.toml"
    f.write_bytes(b"\xef\xbb\xbf" + GOOD_PROFILE.encode())
    result = invoke("plan", "--profile", str(f), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["chosen"]["backend"] == "llama.cpp"


def _negative_meminfo() -> bytes:
    doc = document("linux-x86-no-gpu.json")
    doc["files"]["/proc/meminfo"] = re.sub(r"MemTotal:(\s+)", r"MemTotal:\1-", doc["files"]["/proc/meminfo"], count=1)
    assert "MemTotal:" in doc["files"]["/proc/meminfo"] and re.search(r"MemTotal:\s+-\d", doc["files"]["/proc/meminfo"])
    return json.dumps(doc).encode()


def _gpu_count(count: int):
    def make() -> bytes:
        doc = document("nvidia-rtx-4060.json")
        doc["nvml"]["system"]["nvmlDeviceGetCount"] = count
        return json.dumps(doc).encode()
    return make


def _mig_slots(count: int):
    def make() -> bytes:
        doc = document("nvidia-a100-80gb-mig-7x1g.json")
        doc["nvml"]["devices"][0]["nvmlDeviceGetMaxMigDeviceCount"] = count
        return json.dumps(doc).encode()
    return make


SNAPSHOTS = {
    "binary": (lambda: b"\x00\x01\x02\x03", "snapshot {f} is a binary file, not text (is it the right file?)"),
    "latin-1": (lambda: '{"format": "qwenctl-snapshot", "note": "café"}'.encode("latin-1"),
                "snapshot {f} is not UTF-8 text (byte 0xe9 at offset 43) (save it as UTF-8)"),
    "negative-memtotal": (_negative_meminfo, 'snapshot {f} is malformed: files["/proc/meminfo"] holds a negative size'),
    "list": (lambda: b"[1, 2]", "snapshot {f} is malformed: the top level is not an object"),
    # 2**64 GPUs counted: the probe asked NVML for each in turn, for hours, its memory growing
    "gpu-count-past-its-records": (_gpu_count(2**64), "snapshot {f} is malformed: nvml.system.nvmlDeviceGetCount = "
                                   "18446744073709551616, but 1 devices are recorded"),
    "mig-slots-past-their-records": (_mig_slots(2**64), "snapshot {f} is malformed: nvml.devices[0]."
                                     "nvmlDeviceGetMaxMigDeviceCount = 18446744073709551616, but 7 MIG slots are recorded"),
}


@pytest.mark.parametrize("command", ["detect", "plan"])
@pytest.mark.parametrize("make, message", SNAPSHOTS.values(), ids=SNAPSHOTS.keys())
def test_bad_snapshot_is_one_line(tmp_path, command, make, message):
    f = tmp_path / "snap.json"
    f.write_bytes(make())
    assert one_line(invoke(command, "--snapshot", str(f)), ExitCode.BAD_INPUT) == message.format(f=f)


@pytest.mark.parametrize("command", ["detect", "plan"])
def test_a_snapshot_folder_is_one_line(tmp_path, command):
    folder = tmp_path / "snap.json"
    folder.mkdir()
    assert one_line(invoke(command, "--snapshot", str(folder)), ExitCode.BAD_INPUT) == f"snapshot {folder} is a folder, not a file"


def test_a_snapshot_saved_into_a_missing_folder_names_the_file_asked_for(tmp_path):
    """The snapshot is written through a temp file beside it; a missing folder fails there, but the error names the
    file the user gave, not the temp file's made-up name."""
    target = tmp_path / "no-such-folder" / "snap.json"
    line = one_line(invoke("detect", "--save-snapshot", str(target)), ExitCode.NOT_FOUND)
    assert line == f"cannot write the snapshot to {target}: no such file or folder"
    assert not target.parent.exists()


def test_a_snapshot_with_a_byte_order_mark_replays(tmp_path):
    f = tmp_path / "bom.json"
    f.write_bytes(b"\xef\xbb\xbf" + (CAPTURES / "linux-x86-no-gpu.json").read_bytes())
    result = invoke("detect", "--json", "--snapshot", str(f))
    assert result.exit_code == 0 and json.loads(result.stdout)["memory"]["total_bytes"] > 0


# -- the last guard itself --------------------------------------------------------------------


def test_the_last_guard_turns_a_bug_into_one_line_and_a_log(tmp_path, monkeypatch):
    """A bug (here: the profile loader raising ZeroDivisionError) is one line, the log's path and exit 70."""
    from qwenctl import profiles

    def broken(name_or_path):
        return 1 / 0

    monkeypatch.setattr(profiles, "load_profile", broken)
    result = invoke("plan", "--profile", "rtx-4060-8gb")

    logs = list(guard.crash_log_dir().glob("crash-*.log"))
    assert result.exit_code == ExitCode.INTERNAL == 70 and len(logs) == 1
    assert result.stderr == (f"error: qwenctl hit an internal error: ZeroDivisionError: division by zero "
                             f"(the traceback is in {logs[0]}; please attach it to a bug report)\n")
    log = logs[0].read_text()
    assert "Traceback (most recent call last)" in log and "in broken" in log and log.rstrip().endswith("division by zero")
    logs[0].unlink()
    logs[0].parent.rmdir()


def test_a_missing_dependency_is_one_line_naming_it_not_a_bug(monkeypatch):
    """A package qwenctl needs that the environment lacks (the GPU machine's Python lacked platformdirs in session 69,
    and the guard's own log folder needed it too: a traceback inside the traceback handler). The import fails for real
    (None in sys.modules is Python's mark of a module that cannot be imported); the user reads which one and the fix."""
    monkeypatch.setitem(sys.modules, "platformdirs", None)
    result = invoke("bench", "--history")
    assert one_line(result, ExitCode.ERROR) == (
        "qwenctl cannot import platformdirs, which it needs: this Python environment's install is incomplete "
        "(reinstall qwenctl into it; `python -m pip check` names what is missing)")


def test_a_bug_is_still_logged_where_platformdirs_is_missing(tmp_path, monkeypatch):
    """The last guard's log goes to the system's temporary folder when the state directory cannot be found."""
    import tempfile

    from qwenctl import profiles

    monkeypatch.setitem(sys.modules, "platformdirs", None)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(profiles, "load_profile", lambda name: 1 / 0)
    result = invoke("plan", "--profile", "rtx-4060-8gb")

    logs = list((tmp_path / "qwenctl-log").glob("crash-*.log"))
    assert result.exit_code == ExitCode.INTERNAL and len(logs) == 1 and str(logs[0]) in result.stderr
    assert "ZeroDivisionError" in logs[0].read_text()
    logs[0].unlink()
    logs[0].parent.rmdir()


def test_an_error_still_reaches_the_user_where_rich_cannot_be_imported(monkeypatch):
    """rich renders the error line; without it the same line goes to stderr uncoloured."""
    monkeypatch.setitem(sys.modules, "rich.markup", None)
    result = invoke("plan", "--profile", "no-such-profile")
    assert one_line(result, ExitCode.NOT_FOUND).startswith("no profile named 'no-such-profile'")


def test_a_console_in_a_legacy_code_page_gets_question_marks_not_a_crash():
    """stdout in an encoding without the plan's bar glyphs (Windows' cp1252 when redirected, an ASCII locale): what
    it cannot encode prints as "?"; the plan ended in UnicodeEncodeError, the last guard's exit 70, until session 69."""
    import os
    import subprocess

    done = subprocess.run([sys.executable, "-m", "qwenctl", "plan", "--profile", "rtx-4060-8gb"], capture_output=True,
                          env={**os.environ, "PYTHONIOENCODING": "ascii"}, timeout=120)
    assert done.returncode == 0, done.stderr.decode("ascii", "replace")
    out = done.stdout.decode("ascii")
    assert re.search(r"GPU layers \S+( \+ output)? \? context", out) and "[???" in out


def test_the_guard_lets_bugs_through_for_developers(monkeypatch):
    from qwenctl import profiles

    monkeypatch.setenv(guard.TRACEBACK_ENV, "1")
    monkeypatch.setattr(profiles, "load_profile", lambda name: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        invoke("plan", "--profile", "rtx-4060-8gb")


def test_an_unconverted_os_error_is_one_line_naming_the_path(tmp_path, monkeypatch):
    """An OSError nothing below converted (here the bench history on a read-only path) still names its path."""
    import errno

    from qwenctl import bench_history

    history = tmp_path / "history.jsonl"

    def read_only(path=None):
        raise OSError(errno.EROFS, "Read-only file system", str(history))

    monkeypatch.setattr(bench_history, "read_history", read_only)
    result = invoke("bench", "--history")
    assert one_line(result, ExitCode.FILE_ACCESS) == f"cannot use {history}: the filesystem is read-only (remount it read-write)"


@pytest.mark.parametrize("option", ["-t", "-b"])
def test_bench_refuses_zero_threads_or_batch_before_loading(option):
    """llama-cpp-python reads `n_threads=0` as "pick for me" (half the CPUs) while the prediction beside it priced
    the default threads; a batch of 0 fails inside llama.cpp after the load. Both are refused as usage errors."""
    result = CliRunner().invoke(cli, ["bench", "nothing.gguf", option, "0"], env=WIDE)
    assert result.exit_code == 2
    assert "0 is not in the range x>=1" in result.stderr and "Traceback" not in result.output
