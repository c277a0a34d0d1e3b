import json

import pytest
from hardware_captures import ALL, CAPTURES, document, replay

from qwenctl.errors import ExitCode, QwenctlError
from qwenctl.hardware import LiveSource, detect, load_snapshot, save_snapshot
from qwenctl.hardware.snapshot import NvmlError
from qwenctl.result import to_dict


@pytest.mark.parametrize("name", ALL)
def test_every_capture_loads_and_detects_without_error(name):
    hw = detect(load_snapshot(CAPTURES / name))
    assert hw.system in ("Linux", "Darwin", "Windows")
    assert to_dict(hw)["system"] == hw.system


def test_a_recorded_live_run_replays_to_the_same_facts(tmp_path):
    live = LiveSource(record=True)
    first = detect(live)
    path = tmp_path / "me.json"
    save_snapshot(live, path)
    again = detect(load_snapshot(path))
    # Everything but the momentary figures is reproduced exactly.
    assert again.cpu == first.cpu
    assert again.memory.total_bytes == first.memory.total_bytes
    assert again.nvidia == first.nvidia and again.board == first.board and again.backends == first.backends
    assert not list(tmp_path.glob(".*tmp*")), "the temp file was renamed into place"


def test_saving_into_a_missing_folder_is_one_clear_error(tmp_path):
    live = LiveSource(record=True)
    detect(live)
    with pytest.raises(QwenctlError) as e:
        save_snapshot(live, tmp_path / "no" / "such" / "dir" / "x.json")
    assert e.value.message.startswith(f"cannot write the snapshot to {tmp_path / 'no' / 'such' / 'dir'}")
    assert e.value.message.endswith(": no such file or folder") and e.value.code == ExitCode.NOT_FOUND


@pytest.mark.parametrize(
    "text, message",
    [
        ('{"format": "qwenctl-snapshot", "vers', "not valid JSON"),
        ("[]", "top level is not an object"),
        ('{"format": "something-else", "version": 1}', '"format"'),
        ('{"format": "qwenctl-snapshot", "version": 7, "platform": {}}', '"version" 7'),
        ('{"format": "qwenctl-snapshot", "version": 1, "platform": {"system": "Linux"}}', '"platform"'),
    ],
    ids=["truncated", "array", "foreign", "future-version", "no-machine"],
)
def test_malformed_snapshots_are_bad_input_naming_the_file(tmp_path, text, message):
    path = tmp_path / "broken.json"
    path.write_text(text)
    with pytest.raises(QwenctlError) as e:
        load_snapshot(path)
    assert e.value.code == ExitCode.BAD_INPUT
    assert str(path) in e.value.message and message in e.value.message


@pytest.mark.parametrize(
    "edit, where",
    [
        (lambda d: d["files"].__setitem__("/proc/meminfo", 42), 'files["/proc/meminfo"]'),
        (lambda d: d["nvml"]["devices"][0].__setitem__("nvmlDeviceGetMemoryInfo", "8 GB"), "nvmlDeviceGetMemoryInfo"),
        (lambda d: d["nvml"]["devices"][0].__setitem__("nvmlDeviceGetCudaComputeCapability", [8]), "ComputeCapability"),
        (lambda d: d["disk"].__setitem__("/home/user", {"total": "big"}), "disk"),
        (lambda d: d["python"].__setitem__("llama_supports_gpu_offload", "yes"), "llama_supports_gpu_offload"),
    ],
    ids=["file-not-text", "memory-not-struct", "cc-not-pair", "disk-not-int", "offload-not-bool"],
)
def test_wrongly_typed_values_are_caught_at_load_time(tmp_path, edit, where):
    doc = document("nvidia-rtx-4060.json")
    edit(doc)
    path = tmp_path / "edited.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(QwenctlError, match="malformed") as e:
        load_snapshot(path)
    assert where in e.value.message


def test_a_missing_snapshot_file_is_not_found(tmp_path):
    with pytest.raises(QwenctlError) as e:
        load_snapshot(tmp_path / "nope.json")
    assert e.value.code == ExitCode.NOT_FOUND


def test_replay_answers_like_the_os_would():
    src = replay("linux-x86-no-gpu.json")
    with pytest.raises(FileNotFoundError):
        src.read_text("/proc/device-tree/model")  # recorded as ENOENT
    with pytest.raises(FileNotFoundError):
        src.read_text("/never/recorded")
    assert src.run(("vcgencmd", "get_throttled")) is None
    with pytest.raises(NvmlError) as e:
        src.nvml("nvmlDeviceGetCount")
    assert e.value.code == "NVML_ERROR_LIBRARY_NOT_FOUND"


def test_a_recorded_permission_error_replays_as_one():
    doc = document("linux-x86-no-gpu.json")
    doc["files"]["/proc/meminfo"] = {"error": "EACCES"}
    with pytest.raises(PermissionError):
        replay(doc).read_text("/proc/meminfo")


@pytest.mark.parametrize("name", ALL)
def test_hardware_from_dict_inverts_to_dict(name):
    from qwenctl.hardware.facts import hardware_from_dict

    hw = detect(load_snapshot(CAPTURES / name))
    assert hardware_from_dict(json.loads(json.dumps(to_dict(hw)))) == hw


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda d: d.pop("cpu"), "hardware: missing 'cpu'"),
        (lambda d: d["nvidia"]["gpus"][0].__setitem__("compute_capability", [8]), "compute_capability: expected 2 items"),
        (lambda d: d["nvidia"]["gpus"][0].__setitem__("memory_total_bytes", "8 GB"), "memory_total_bytes: expected int"),
    ],
    ids=["missing-field", "short-pair", "string-bytes"],
)
def test_hardware_from_dict_names_the_bad_field(edit, message):
    from qwenctl.hardware.facts import hardware_from_dict

    d = json.loads(json.dumps(to_dict(detect(replay("nvidia-rtx-4060.json")))))
    edit(d)
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        hardware_from_dict(d)
