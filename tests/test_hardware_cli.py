import json

import pytest
from click.testing import CliRunner
from hardware_captures import CAPTURES

from qwenctl.cli import cli
from qwenctl.hardware.facts import hardware_from_dict

WIDE = {"COLUMNS": "200", "NO_COLOR": "1"}


def run(*args):
    return CliRunner().invoke(cli, ["detect", *args], env=WIDE, catch_exceptions=False)


def test_detect_here_exits_0_and_json_parses():
    assert run().exit_code == 0
    result = run("--json")
    assert result.exit_code == 0
    doc = json.loads(result.output)
    assert doc["schema"] == "hardware" and doc["version"] == 1
    hardware_from_dict(doc)


def test_pi_5_snapshot_reads_as_a_raspberry_pi_5_with_8_gb():
    result = run("--snapshot", str(CAPTURES / "raspberry-pi-5-8gb.json"))
    assert result.exit_code == 0
    assert "Board     Raspberry Pi 5 Model B Rev 1.0 · BCM2712 · 8 GiB RAM fitted\n" in result.output


def test_a_two_socket_cpu_says_so():
    """The planner prices a several-socket host on one socket's memory; detect shows why, and the core design its
    CPUID names (family 25 model 160: Zen 4), which the speed model prices by its own figures."""
    result = run("--snapshot", str(CAPTURES / "linux-x86-epyc-2-sockets-lxc.json"))
    assert result.exit_code == 0
    assert ("CPU       AMD EPYC 9754 128-Core Processor (AMD Zen 4) · x86_64 · 8 cores / 8 threads on 2 sockets · "
            in result.output)


def test_m2_snapshot_reads_as_apple_m2_with_16_gb_unified_memory():
    result = run("--snapshot", str(CAPTURES / "apple-m2-16gb.json"))
    assert result.exit_code == 0
    assert ("Apple     Apple M2 · 4P + 4E · 10-core GPU · 16 GiB unified memory · 100 GB/s · "
            "GPU may wire 10.7 GiB (macOS default, 2/3 of RAM (recommendedMaxWorkingSetSize))\n") in result.output


def test_rtx_4060_snapshot_whole_output():
    path = CAPTURES / "nvidia-rtx-4060.json"
    result = run("--snapshot", str(path))
    assert result.exit_code == 0
    assert result.output == (
        f"replayed from {path}\n"
        "System    Linux x86_64\n"
        "CPU       AMD EPYC (AMD Zen 5) · x86_64 · 2 cores / 2 threads · virtual machine · avx avx2 avx512f avx512bw avx512_vnni avx_vnni fma f16c\n"
        "Memory    23.5 GiB RAM · 22.7 GiB available · no swap · bandwidth unknown (SMBIOS memory entries not captured "
        "in the snapshot; run `qwenctl detect --measure` to measure it)\n"
        "NVIDIA    driver 595.84, CUDA 13.2\n"
        "GPU 0     NVIDIA GeForce RTX 4060 · 8.0 GiB VRAM (7.5 GiB free) · CC 8.9 · 128-bit @ 8501 MHz → 272 GB/s · 115 W\n"
        "Apple     absent, because not a Mac (Linux)\n"
        "Board     absent, because no /proc/device-tree/model and no Raspberry Pi Model/Revision in /proc/cpuinfo (not a single-board computer)\n"
        "Disk      /home/user/.cache/huggingface/hub · 569.97 GiB free of 931.51 GiB\n"
        "Backends  llama-cpp-python not installed · mlx not installed · mlx-lm not installed\n"
    )


def test_json_of_a_snapshot_round_trips_through_hardware_from_dict():
    result = run("--json", "--snapshot", str(CAPTURES / "nvidia-h100-sxm.json"))
    hw = hardware_from_dict(json.loads(result.output))
    assert hw.gpus[0].compute_capability == (9, 0) and hw.gpus[0].name == "NVIDIA H100 80GB HBM3"


@pytest.mark.parametrize("content", ['{"format": "qwenctl-snapshot", "version": 1, "platfo', "\x00\x01", "{}"],
                         ids=["truncated", "binary", "empty-object"])
def test_bad_snapshot_is_one_line_and_exit_code_3(tmp_path, content):
    path = tmp_path / "bad.json"
    path.write_text(content)
    result = CliRunner().invoke(cli, ["detect", "--snapshot", str(path)], env=WIDE, catch_exceptions=False)
    assert result.exit_code == 3
    assert result.output.count("\n") == 1 and result.output.startswith(f"error: snapshot {path}")


def test_save_snapshot_writes_a_replayable_file(tmp_path):
    path = tmp_path / "me.json"
    result = run("--json", "--save-snapshot", str(path))
    assert result.exit_code == 0
    live = json.loads(result.stdout)
    assert result.stderr == f"saved the raw inputs to {path}\n"
    replayed = json.loads(run("--json", "--snapshot", str(path)).output)
    assert replayed["cpu"] == live["cpu"] and replayed["nvidia"] == live["nvidia"]
    assert json.loads(path.read_text())["platform"]["pointer_bits"] == 64  # this test's Python is 64-bit


def test_save_and_replay_together_is_a_usage_error(tmp_path):
    result = CliRunner().invoke(cli, ["detect", "--snapshot", "a.json", "--save-snapshot", "b.json"])
    assert result.exit_code == 2
