import json

import pytest
from click.testing import CliRunner
from daily_helpers import cli_env, qwenctl

from qwenctl.cli import cli
from qwenctl.profiles import list_profiles


def run(*args):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_plan_profile_text():
    r = run("plan", "--profile", "rtx-4060-8gb")
    assert r.exit_code == 0
    lines = r.output.splitlines()
    assert lines[0] == "Plan for Desktop, GeForce RTX 4060 8 GB + 16 GB DDR4 (Ryzen 5 5600)"
    assert lines[1] == "  model     Qwen2.5-7B-Instruct Q4_K_M  on llama.cpp (cuda)"
    assert lines[2] == "  download  Qwen/Qwen2.5-7B-Instruct-GGUF  2 files, 4.36 GiB"
    assert "█ weights  ▓ KV cache  ▒ buffers  · free" in r.output
    assert "NVIDIA GeForce RTX 4060" in r.output and "Alternatives, best first" in r.output
    doc = json.loads(run("plan", "--profile", "rtx-4060-8gb", "--json").output)["chosen"]
    assert lines[4] == (f"  predicted {doc['tg_tps']:.1f} tok/s generation (at least {doc['tg_tps_low']:.1f}; "
                        f"{doc['tg_tps_full']:.1f} with the context full), {doc['pp_tps']:,.0f} tok/s prompt · "
                        f"quality score {doc['quality']:.1f}")


@pytest.mark.parametrize("name", ["h100-80gb", "macbook-air-m2-16gb", "raspberry-pi-5-8gb"])
def test_plan_json_schema(name):
    r = run("plan", "--profile", name, "--json")
    assert r.exit_code == 0
    doc = json.loads(r.output)
    assert doc["schema"] == "plan" and doc["version"] == 1
    chosen = doc["chosen"]
    for key in ("size", "quant", "backend", "device", "repo", "files", "download_bytes", "n_gpu_layers", "n_ctx",
                "n_threads", "kv_cache_type", "flash_attn", "memory", "tg_tps", "tg_tps_full", "pp_tps", "reasons"):
        assert key in chosen
    assert all(a["reason"] for a in doc["alternatives"])


def test_plan_no_fit_exit_code_and_one_line():
    r = CliRunner().invoke(cli, ["plan", "--profile", "raspberry-pi-4-4gb", "--size", "72B"])
    assert r.exit_code == 5
    assert r.output.startswith("error: no plan meets the request: 72B")
    assert "nearest plan that works" in r.output and "Traceback" not in r.output


def test_plan_bad_flags():
    r = CliRunner().invoke(cli, ["plan", "--profile", "no-such"])
    assert r.exit_code == 4 and "no profile named 'no-such'" in r.output
    r = CliRunner().invoke(cli, ["plan", "--profile", "h100-80gb", "--size", "13B"])
    assert r.exit_code == 4 and "no Qwen2.5 size '13B'" in r.output
    r = CliRunner().invoke(cli, ["plan", "--profile", "h100-80gb", "--quant", "iq2_xs"])
    assert r.exit_code == 4 and "q4_k_m" in r.output  # a name that names nothing, as the size above
    r = CliRunner().invoke(cli, ["plan", "--backend", "vllm"])
    assert r.exit_code == 2
    r = CliRunner().invoke(cli, ["plan", "--profile", "h100-80gb", "--ctx", "100"])
    assert r.exit_code == 2  # a value out of range, as `run --ctx 100`


def test_asked_size_keeps_the_usual_quant_and_warns_that_it_is_slow():
    """On a Raspberry Pi 5 nothing at 7B reaches 5 tok/s: `--size 7B` still gets Q4_K_M, told it is slow,
    never a silent Q2_K; the floor chooses only when nothing was asked for."""
    doc = json.loads(run("plan", "--profile", "raspberry-pi-5-8gb", "--size", "7B", "--json").output)
    chosen = doc["chosen"]
    assert (chosen["size"], chosen["quant"]) == ("7B", "q4_k_m")
    assert chosen["reasons"][1].startswith("highest quality that fits: score 64.1")
    assert doc["warnings"] == [
        f"7B Q4_K_M may generate as slowly as {chosen['tg_tps_low']:.1f} tok/s here (predicted {chosen['tg_tps']:.1f}), "
        "under the usual 5 tok/s: expect slow replies, or ask for a smaller size"
    ]
    unasked = json.loads(run("plan", "--profile", "raspberry-pi-5-8gb", "--json").output)["chosen"]
    assert unasked["tg_tps_low"] >= 5 and unasked["size"] != "7B"
    floor = CliRunner().invoke(cli, ["plan", "--profile", "raspberry-pi-5-8gb", "--size", "7B", "--min-speed", "5"])
    assert floor.exit_code == 5  # an explicit floor still refuses


def test_plan_malformed_profile_path(tmp_path):
    f = tmp_path / "bad.toml"
    f.write_text('name = "x"\nsystem = "Linux"\nmachine = "x86_64"\n[cpu]\nbrand="x"\narch="x86_64"\nphysical_cores=4\n[memory]\ntotal="lots"\n[sources]\ncpu="a"\nmemory="b"\n')
    r = CliRunner().invoke(cli, ["plan", "--profile", str(f)])
    assert r.exit_code == 3
    assert f"profile {f}: field 'memory.total' must be a size" in r.output.replace("\n", "")


def test_profiles_command():
    r = run("profiles")
    assert r.exit_code == 0 and "rtx-4060-8gb" in r.output and "raspberry-pi-4-4gb" in r.output
    doc = json.loads(run("profiles", "--json").output)
    assert doc["schema"] == "profiles" and [p["name"] for p in doc["profiles"]] == [p.name for p in list_profiles()]
    cluster = next(p for p in doc["profiles"] if p["name"] == "raspberry-pi-5-8gb-x4-cluster")
    assert cluster["workers"] == 3 and "+3 workers" in r.output.replace("\n", " ")


def test_plan_from_the_real_h100_snapshot_puts_a_72b_4bit_model_fully_on_the_gpu():
    """`plan --snapshot` replays a detect capture through the same probes: the GPU machine's own."""
    from pathlib import Path

    snapshot = Path(__file__).parent / "fixtures" / "captures" / "nvidia-h100-gpu-machine.json"
    result = CliRunner().invoke(cli, ["plan", "--snapshot", str(snapshot), "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    chosen = json.loads(result.output)["chosen"]
    assert (chosen["size"], chosen["backend"], chosen["device"]) == ("72B", "llama.cpp", "cuda")
    assert chosen["quant"] in ("q4_k_m", "q5_0")  # Q5_0 decodes as fast on Hopper (the H200: 43.7 and 43.1 tok/s)
    assert chosen["n_gpu_layers"] == -1


def test_a_plan_of_this_machine_measures_an_assumed_host_bandwidth_once(tmp_path):
    """The first plan of a machine whose host bandwidth no probe gives (no DMI, no board, no cache) runs the sub-second
    read test, says so on stderr, and plans on the measured figure; the next plan finds it cached and measures nothing.
    A machine whose bandwidth is known measures nothing at all."""
    env = cli_env(tmp_path)
    first = qwenctl("plan", "--json", env=env)
    assert first.returncode == 0, first.stderr
    measured = "measuring this machine's memory bandwidth (once; remembered)" in first.stderr
    assumptions = json.loads(first.stdout)["assumptions"]
    assert not any("qwenctl detect --measure" in a for a in assumptions)  # stdout stays one JSON document
    again = qwenctl("plan", "--json", env=env)
    assert again.returncode == 0 and "measuring" not in again.stderr
    assert json.loads(again.stdout)["assumptions"] == assumptions
    if measured:
        detected = qwenctl("detect", "--json", env=env)
        assert "measured" in json.loads(detected.stdout)["memory"]["bandwidth_source"]
