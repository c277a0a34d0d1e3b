"""`qwenctl bench` on the real engines with the generated tiny models (figures are not asserted, only their shape)."""

import dataclasses
import json
import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

from qwenctl import bench as b
from qwenctl import bench_history, cpu_share
from qwenctl.backends import LoadOptions
from qwenctl.cli import cli
from qwenctl.errors import ExitCode, QwenctlError
from qwenctl.hardware.facts import Absent, Hardware, Memory, Nvidia, NvidiaGpu
from qwenctl.predict import weights_read_per_token
from qwenctl.testing import models


@pytest.fixture(autouse=True)
def _isolated_data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))


@pytest.fixture(scope="module")
def result(model_cache):
    pytest.importorskip("llama_cpp")
    phases = []
    r = b.bench(models.tiny_gguf(model_cache), n_prompt=120, n_gen=8, repetitions=2,
                options=LoadOptions(n_ctx=256), bandwidth=b.Bandwidth(10_000_000_000, "test"),
                progress=lambda phase, done, total: phases.append((phase, done, total)))
    return r, phases


def test_result_has_every_figure(result, model_cache):
    r, _ = result
    for fig in (r.pp_tps, r.tg_tps, r.chat_tps, r.chat_ttft_seconds, r.chat_host_tps):
        assert len(fig.samples) == 2 and fig.min <= fig.median <= fig.max and fig.min > 0
    assert r.sampling.startswith("sampling on the device (")
    assert (r.backend, r.n_prompt, r.n_gen, r.n_ctx, r.n_gpu_layers) == ("llama.cpp", 120, 8, 256, 0)
    assert r.n_threads >= 1 and r.load_seconds > 0 and r.peak_host_rss_bytes > 0
    assert r.gpu_bytes is None
    assert r.host_bytes > 10_000_000 and r.reclaimable_bytes == 0  # F32 weights: none repacked
    # none, but where other work took the CPUs while it ran (the whole suite in parallel, say): then that is said
    assert [n for n in r.notes if not n.startswith("the engine's ")] == [] and cpu_share.contended(r.cpu_share) == bool(r.notes)


def test_roofline_uses_every_weight_of_a_tied_model(result, model_cache):
    r, _ = result
    from qwenctl.backends.gguf_check import check_gguf

    assert r.weights_read_per_token_bytes == check_gguf(models.tiny_gguf(model_cache)).tensor_bytes
    assert r.roofline_tg_tps == pytest.approx(10e9 / r.weights_read_per_token_bytes)
    assert r.tg_efficiency == pytest.approx(r.tg_tps.median / r.roofline_tg_tps)


def test_untied_model_reads_one_embedding_row_not_the_matrix(model_cache):
    untied = dataclasses.replace(models.TINY, name="tiny-untied", tie_word_embeddings=False)
    path = models.gguf_model(model_cache, untied, "F32")
    from qwenctl.backends.gguf_check import check_gguf

    info = check_gguf(path)
    embd = next(t.n_bytes for t in info.tensors if t.name == "token_embd.weight")
    assert weights_read_per_token(path) == info.tensor_bytes - embd


def test_progress_goes_through_every_phase_in_order(result):
    _, phases = result
    assert [p for p, done, total in phases if done == total] == ["load", "warm-up", "pp", "tg", "chat", "chat-host"]


def test_history_round_trip_skips_a_torn_line(result, tmp_path):
    r, _ = result
    path = tmp_path / "h.jsonl"
    bench_history.append_history(r, path)
    with open(path, "a") as fh:
        fh.write('{"schema": "bench", "model": "half a rec')  # a run killed mid-write
    bench_history.append_history(r, path)
    h = bench_history.read_history(path)
    assert h.runs == (r, r) and h.skipped_lines == 1


def test_mlx_backend(model_cache, monkeypatch):
    pytest.importorskip("mlx_lm")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    folder = models.tiny_mlx(model_cache)
    r = b.bench(folder, backend="mlx", n_prompt=120, n_gen=4, repetitions=1, options=LoadOptions(n_ctx=256))
    assert r.backend == "mlx" and r.tg_tps.median > 0 and r.chat_tps.median > 0
    assert r.weights_read_per_token_bytes == (folder / "model.safetensors").stat().st_size


def test_context_too_small_for_the_runs(model_cache):
    with pytest.raises(QwenctlError) as e:
        b.bench(models.tiny_gguf(model_cache), n_prompt=512, n_gen=128, options=LoadOptions(n_ctx=256))
    assert e.value.code == ExitCode.USAGE


@pytest.mark.parametrize("text,expected", [("3.35TB/s", 3_350_000_000_000), ("819 GB/s", 819_000_000_000),
                                           ("100e9", 100_000_000_000), ("1GiB/s", 2**30)])
def test_parse_bandwidth(text, expected):
    assert b.parse_bandwidth(text) == b.Bandwidth(expected, "--bandwidth")


def test_parse_bandwidth_rejects_nonsense():
    with pytest.raises(QwenctlError) as e:
        b.parse_bandwidth("fast")
    assert e.value.code == ExitCode.USAGE


def test_bandwidth_comes_from_the_gpu_only_when_offloading():
    gpu = NvidiaGpu(0, "NVIDIA H100 80GB HBM3", "GPU-1", 80 * 2**30, 80 * 2**30, 0, (9, 0),
                    bandwidth_bytes_per_s=3_352_320_000_000)
    hw = Hardware("Linux", "x86_64", Absent("-"), Memory(2**37, 2**36, 0, bandwidth_bytes_per_s=100_000_000_000,
                  bandwidth_source="profile"), Nvidia("550", "12.4", (gpu,)), Absent("-"), Absent("-"), Absent("-"),
                  Absent("-"))
    assert b.bandwidth_from_hardware(hw, on_gpu=True) == b.Bandwidth(3_352_320_000_000, "detect: NVIDIA H100 80GB HBM3")
    assert b.bandwidth_from_hardware(hw, on_gpu=False) == b.Bandwidth(100_000_000_000, "detect: profile")


def test_a_two_socket_hosts_roofline_is_one_nodes_memory():
    """bench's roofline on a CPU of two sockets is the bandwidth the planner priced: one node's, since the weights
    sit on the node that loaded them (`machine.one_node`); a measured figure was one node's already."""
    from qwenctl.profiles import load_profile

    hw = load_profile("h200-x8-141gb")
    assert b.bandwidth_from_hardware(hw, on_gpu=False) == b.Bandwidth(
        307_200_000_000, f"detect: {hw.memory.bandwidth_source}; one of 2 sockets' memory (307.2 GB/s)")
    measured = dataclasses.replace(hw, memory=dataclasses.replace(hw.memory, bandwidth_bytes_per_s=200_000_000_000,
                                                                   bandwidth_measured=True))
    assert b.bandwidth_from_hardware(measured, on_gpu=False).bytes_per_s == 200_000_000_000


def test_cli_json_and_history(model_cache):
    pytest.importorskip("llama_cpp")
    runner = CliRunner()
    model = str(models.tiny_gguf(model_cache))
    out = runner.invoke(cli, ["bench", "--model", model, "-p", "100", "-n", "4", "-r", "1", "--ctx", "256",
                              "--bandwidth", "10GB/s", "--json"], catch_exceptions=False)
    assert out.exit_code == 0, out.output
    doc = json.loads(out.output)
    assert doc["schema"] == "bench" and doc["n_prompt"] == 100 and doc["bandwidth"]["bytes_per_s"] == 10**10
    hist = runner.invoke(cli, ["bench", "--history", "--json"], catch_exceptions=False)
    runs = json.loads(hist.output)["runs"]
    assert len(runs) == 1 and runs[0] == {k: v for k, v in doc.items() if k not in ("schema", "version")}
    shown = runner.invoke(cli, ["bench", "--history"], catch_exceptions=False).output.splitlines()
    assert shown[1].endswith(f"{models.tiny_gguf(model_cache).name}  llama.cpp {doc['engine_version']}, "
                             f"CPU, {doc['n_threads']} threads")
    assert shown[2].startswith("    pp100 ") and "of roofline" in shown[2]


def test_a_history_that_cannot_be_written_costs_a_note_not_the_figures(model_cache, tmp_path, monkeypatch):
    """The data folder is a file (as a full disk or a read-only home would refuse it): the run just measured is still
    printed, with a note, and the exit is 0. Until session 69 the write's error replaced the whole result."""
    pytest.importorskip("llama_cpp")
    (tmp_path / "not-a-folder").write_text("")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "not-a-folder"))
    out = CliRunner().invoke(cli, ["bench", "--model", str(models.tiny_gguf(model_cache)), "-p", "100", "-n", "4",
                                   "-r", "1", "--ctx", "256", "--json"], catch_exceptions=False)
    assert out.exit_code == 0, out.output
    doc = json.loads(out.stdout)
    assert doc["tg_tps"]["median"] > 0
    assert doc["notes"][-1] == (f"not saved to the bench history or this machine's speed record: cannot write "
                                f"{tmp_path / 'not-a-folder' / 'qwenctl'}: a part of the path is not a folder")
    hist = CliRunner().invoke(cli, ["bench", "--history"], catch_exceptions=False)
    assert hist.exit_code == 0 and hist.output.startswith("no benchmark runs recorded yet")


def test_cli_table(model_cache):
    pytest.importorskip("llama_cpp")
    out = CliRunner().invoke(cli, ["bench", "--model", str(models.tiny_gguf(model_cache)), "-p", "100", "-n", "4",
                                   "-r", "1", "--ctx", "256", "--no-save"], catch_exceptions=False)
    assert out.exit_code == 0
    assert out.stderr.startswith("detecting hardware")  # the steps `run` shows, on stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith("tiny-") and "llama.cpp 0.3" in lines[0]
    assert any(line.startswith("decoding, no sampling") for line in lines) and "(tg4)" in out.output
    assert any(line.startswith("chat, device sampling ") for line in lines)
    assert any(line.startswith("chat, host sampling ") for line in lines)
    assert any(line.startswith("chat ÷ decoding: ") and line.endswith(" with host sampling") for line in lines)
    assert any(line.startswith("chat generates after its 100-token prompt") for line in lines)  # depth, not sampling
    assert any(line.split()[-1:] == ["predicted"] for line in lines)  # the planner's figures beside the measurement
    assert any(line.startswith("host memory ") for line in lines)
    assert "memory bandwidth unknown" in out.stdout or "roofline:" in out.stdout
    hist = CliRunner().invoke(cli, ["bench", "--history"], catch_exceptions=False)
    assert hist.output.startswith("no benchmark runs recorded yet")


@pytest.fixture
def hub_env(request, tmp_path):
    """A fake hub serving the tiny GGUF under the official name the planner picks for 0.5B Q4_K_M here,
    and an environment whose caches are empty (subprocesses: huggingface_hub reads HF_* at import)."""
    from fakehub import FakeHub

    from qwenctl.hardware import detect
    from qwenctl.plan import Constraints, plan

    planned = plan(detect(), Constraints(size="0.5B", quant="q4_k_m")).chosen
    tiny = models.tiny_gguf(request.getfixturevalue("model_cache"))
    with FakeHub({planned.repo: {name: tiny for name in planned.files}}) as hub:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "XDG_"))}
        env.update(HF_ENDPOINT=hub.url, HF_HOME=str(tmp_path / "hf"), XDG_DATA_HOME=str(tmp_path / "data"),
                   HF_HUB_DISABLE_TELEMETRY="1")
        yield planned, hub, env


def _bench_cli(*args, env):
    return subprocess.run([sys.executable, "-m", "qwenctl", "bench", *args], env=env, capture_output=True, text=True,
                          timeout=300)


def test_without_a_model_it_benches_the_planned_one(hub_env, tmp_path):
    """No --model: plan, fetch (after --yes) and bench the planned file with the settings `run` uses; a
    second run finds it in the cache and sends the hub nothing."""
    pytest.importorskip("llama_cpp")
    planned, hub, env = hub_env
    quick = ["--size", "0.5B", "--quant", "q4_k_m", "-p", "32", "-n", "4", "-r", "1", "--no-chat", "--no-save", "--json"]
    first = _bench_cli(*quick, "--yes", env=env)
    assert first.returncode == 0, first.stderr
    doc = json.loads(first.stdout)
    assert doc["model"].startswith(str(tmp_path / "hf")) and doc["model"].endswith(planned.files[0])
    # the CPU plan leaves flash attention to llama.cpp's auto rule, which turns it on for the CPU
    assert (doc["n_threads"], planned.flash_attn, doc["flash_attn"]) == (planned.n_threads, False, True)
    assert doc["predicted"]["tg_tps"] > 0 and doc["tg_tps"]["median"] > 0
    hub.requests.clear()
    again = _bench_cli(*quick, "--offline", env=env)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["model"] == doc["model"] and hub.requests == []


def test_without_a_model_and_no_terminal_it_asks_for_yes(hub_env):
    planned, _, env = hub_env
    out = _bench_cli("--size", "0.5B", "--quant", "q4_k_m", env=env)
    assert out.returncode == ExitCode.ERROR
    assert out.stderr.splitlines()[-1] == (
        f"error: not downloading {planned.files[0]} from {planned.repo} (rerun with --yes to download without asking)"
    )


def test_model_and_plan_constraints_do_not_mix(model_cache):
    out = CliRunner().invoke(cli, ["bench", "--model", str(models.tiny_gguf(model_cache)), "--size", "7B"])
    assert out.exit_code == ExitCode.USAGE
    assert "MODEL names the model itself" in out.output


def test_a_saved_bench_teaches_prompt_speed_only_from_a_prompt_priced_as_quoted(result):
    """The prediction is pp512 in one batch (speed.PP_TOKENS): a bench of another prompt length corrects the decode
    alone; one of 512 tokens in one batch corrects prompts by its own ratio."""
    from planning_machines import pc

    from qwenctl import speed_history

    r, _ = result
    r = dataclasses.replace(r, cpu_share=None)  # a quiet run's, whatever this machine was doing meanwhile
    hw = pc(16)
    predicted = b.Predicted(tg_tps=r.tg_tps.median / 0.8, pp_tps=r.pp_tps.median / 2.0, device="cpu")
    b.remember_speed(hw, dataclasses.replace(r, predicted=predicted))  # n_prompt 120
    c = speed_history.correction(hw, r.backend, "cpu")
    assert c.tg_factor == pytest.approx(0.8) and c.pp_factor is None
    b.remember_speed(hw, dataclasses.replace(r, predicted=predicted, n_prompt=512, n_batch=512))
    assert speed_history.correction(hw, r.backend, "cpu").pp_factor == pytest.approx(2.0)
    assert {run.read_bytes for run in speed_history.runs(hw, r.backend, "cpu")} == {r.weights_read_per_token_bytes}


def test_a_record_from_before_bench_measured_the_models_host_memory_shows_its_peak_rss(result, capsys):
    """History written by an older qwenctl has no host_bytes: its peak RSS is shown, as it was then; a record whose
    reclaimable file pages were left out says how many and what RSS counted."""
    from qwenctl.render.bench import show_result

    r, _ = result
    old = bench_history.result_from_dict({k: v for k, v in json.loads(json.dumps(dataclasses.asdict(r))).items()
                                          if k not in ("host_bytes", "reclaimable_bytes")})
    show_result(old)
    shown = capsys.readouterr().out
    assert "peak host memory (RSS)" in shown and "\nhost memory " not in shown
    show_result(dataclasses.replace(r, reclaimable_bytes=3 * 2**30, peak_host_rss_bytes=r.host_bytes + 3 * 2**30))
    shown = capsys.readouterr().out
    assert "\nhost memory " in shown and "leaves out 3.00 GiB of the model file" in shown


def test_a_bench_whose_threads_lost_their_cores_says_so_and_corrects_nothing(result):
    """llama.cpp's CPU threads spin while a graph runs, so a quiet machine gives them all the time they ask for (0.99
    on the development VM); another busy process took a third of it there, and tg ran 3x slower. Such a run is
    reported with a note and not stored as this machine's correction."""
    from planning_machines import pc

    from qwenctl import speed_history

    r, _ = result
    assert r.cpu_share is None or 0 < r.cpu_share <= 1  # None: runs too short to tell (milliseconds, when quiet)
    hw = pc(16)
    predicted = b.Predicted(tg_tps=r.tg_tps.median / 0.8, pp_tps=r.pp_tps.median, device="cpu")
    b.remember_speed(hw, dataclasses.replace(r, predicted=predicted, cpu_share=cpu_share.CONTENDED_BELOW - 0.2))
    assert speed_history.correction(hw, r.backend, "cpu") is None
    b.remember_speed(hw, dataclasses.replace(r, predicted=predicted, cpu_share=0.99))
    assert speed_history.correction(hw, r.backend, "cpu").tg_factor == pytest.approx(0.8)
