"""MODEL the way people type it (issue 16, frictions 1, 2, 4, 7 and "offline", "corrupt copy"), through the
CLI in a subprocess, against the fake hub serving a generated GGUF under the catalog's repo and file names,
and an Ollama store built here from the same GGUF."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pexpect
import pytest
from daily_helpers import catalog_files, cli_env, qwenctl, resolve_gets
from fakehub import FakeHub
from run_helpers import tiny_model

from qwenctl.testing.ollama_store import make_store

REPO = "Qwen/Qwen2.5-0.5B-Instruct-GGUF"
Q8 = "qwen2.5-0.5b-instruct-q8_0.gguf"
OTHER = "someone/Qwen2.5-0.5B-Instruct-abliterated-GGUF"  # not in the catalog: its own file names
NOSIZE = "someone/tiny-experiments-GGUF"  # no size in its name, no Q4_K_M
LOAD = ["--ctx", "512"]


@pytest.fixture(scope="module")
def tiny(request) -> Path:
    return tiny_model(request.config)


@pytest.fixture(scope="module")
def hub(tiny):
    files = catalog_files(tiny)
    files[OTHER] = {f"abliterated-0.5b-{q}.gguf": tiny for q in ("Q4_K_M", "Q8_0", "IQ2_XS")} | {"README.md": b"# hi\n"}
    files[NOSIZE] = {"exp-Q5_K_S.gguf": tiny, "exp-Q6_K.gguf": tiny}
    with FakeHub(files) as h:
        yield h


@pytest.fixture
def env(tmp_path, hub):
    hub.reset_counters()
    return cli_env(tmp_path, hub)


def planned_05b(env, *args: str) -> dict:
    """The plan `qwenctl plan --size 0.5B` makes in this environment. Its first plan measures the memory bandwidth and
    remembers it there, so the commands after it plan on the same figure: between quants that decode within a few
    per cent of each other the choice can follow a read test's run-to-run spread (two vCPUs: 31-37 GB/s)."""
    done = qwenctl("plan", "--size", "0.5B", *args, "--json", env=env)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)["chosen"]


def summary(*args, env) -> dict:
    done = qwenctl("run", *args, *LOAD, "--no-chat", "--no-smoke-test", "--json", "--yes", env=env)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.parametrize(
    ("model", "quant"),
    [("0.5b", None), ("0.5B", None), ("qwen2.5:0.5b", None), ("qwen2.5:0.5b-instruct", None),
     ("0.5b:q8_0", "q8_0"), ("qwen2.5:0.5b-instruct-q8_0", "q8_0"), ("qwen2.5:0.5b-instruct-Q8_0", "q8_0"),
     (f"{REPO}:q8_0", "q8_0"), (f"{REPO}:{Q8}", "q8_0"), (REPO, None)],
    ids=["size", "size-upper", "ollama-tag", "ollama-instruct", "size-quant", "ollama-full", "ollama-case",
         "repo-quant", "repo-file", "bare-catalog-repo"],
)
def test_short_names_tags_and_repos_reach_the_catalog_files(env, hub, model, quant):
    planned = planned_05b(env, *LOAD)
    hub.reset_counters()
    doc = summary(model, env=env)
    plan_doc = doc["plan"]
    assert (plan_doc["size"], plan_doc["quant"]) == ("0.5B", quant or planned["quant"])
    assert doc["files"]["repo"] == REPO and doc["files"]["filenames"] == list(plan_doc["files"])
    assert len(resolve_gets(hub)) == 1  # the one file: never the whole repo


def test_run_with_the_model_as_an_option_or_from_the_config_file(env):
    planned = planned_05b(env, *LOAD)
    assert summary("--model", "0.5b:q8_0", env=env)["plan"]["quant"] == "q8_0"
    config = Path(env["XDG_CONFIG_HOME"]) / "qwenctl" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text('model = "0.5b:q8_0"\n')
    assert summary(env=env)["plan"]["quant"] == "q8_0"
    assert summary("--size", "0.5B", env=env)["plan"]["quant"] == planned["quant"]  # a flag wins over the file


def test_pull_a_bare_gguf_repo_takes_the_planned_quant_and_all_of_them_only_when_asked(env, hub):
    planned = planned_05b(env)
    one = qwenctl("pull", REPO, env=env)
    assert one.returncode == 0, one.stderr
    assert f"{REPO}: 0.5B {planned['quant_label']}, the plan's choice for this machine" in one.stderr
    assert one.stdout.startswith(f"{REPO} (1 file, ")
    assert [p.rsplit("/", 1)[-1] for p in resolve_gets(hub)] == list(planned["files"])

    hub.reset_counters()
    every = qwenctl("pull", REPO, "--all", "--json", env=env)
    assert every.returncode == 0, every.stderr
    files = catalog_files(Path("x"))[REPO]
    quants = sorted({f.split("instruct-")[1].removesuffix(".gguf").upper().replace("FP16", "F16") for f in files})
    first = every.stderr.splitlines()[0]  # the total, said before anything comes
    assert first.startswith(f"all {len(quants)} quants of {REPO} ({', '.join(quants)}): ") and first.endswith("MiB")
    assert sorted(json.loads(every.stdout)["filenames"]) == sorted(files)


def test_a_repo_outside_the_catalog(env, hub):
    planned = qwenctl("pull", OTHER, env=env)  # its name says 0.5B: the plan's quant, if the repo has it, else Q4_K_M
    assert planned.returncode == 0, planned.stderr
    assert f"{OTHER}: " in planned.stderr and "of its 3 quants (REPO:QUANT picks another; pull --all takes all)" in planned.stderr
    assert len(resolve_gets(hub)) == 1
    asked = qwenctl("pull", f"{OTHER}:q8_0", "--json", env=env)
    assert json.loads(asked.stdout)["filenames"] == ["abliterated-0.5b-Q8_0.gguf"]
    unsure = qwenctl("pull", NOSIZE, env=env)
    assert unsure.returncode == 2
    assert unsure.stderr.splitlines()[-1] == (f"error: {NOSIZE} has 2 quants (Q5_K_S, Q6_K) and no Q4_K_M to default to "
                                              f"(name one, e.g. {NOSIZE}:q5_k_s, or pull --all for every one)")
    ran = qwenctl("run", f"{OTHER}:q8_0", *LOAD, "-p", "hi", "-n", "4", "-q", "--yes", "--seed", "1", env=env)
    assert ran.returncode == 0 and ran.stderr == "" and ran.stdout.strip()


@pytest.mark.parametrize(
    ("model", "code", "message"),
    [("9b", 4, "error: no Qwen2.5 size '9b' (choose one of 0.5B, 1.5B, 3B, 7B, 14B, 32B, 72B)"),
     ("7b:q9_z", 4, "error: '7b:q9_z': no Qwen2.5 quant named 'q9_z' (quants: q2_k, q3_k_m, q4_0, q4_k_m, q5_0, q5_k_m, "
                    "q6_k, q8_0, fp16, 4bit, 8bit, bf16)"),
     ("qwen2.5-coder:7b", 4, "error: 'qwen2.5-coder:7b' is not a Qwen2.5 Instruct model qwenctl knows (give a GGUF as "
                             "REPO[:FILE] or a path, or ollama:NAME[:TAG] for a model in Ollama's store)"),
     ("llama3", 4, "error: 'llama3' is not a model qwenctl knows (MODEL is a size (7b), size:quant (7b:q8_0), "
                   "qwen2.5:7b, REPO[:FILE], a path, or ollama:NAME[:TAG])"),
     ("./nope.gguf", 4, "error: no such file: ./nope.gguf (give an existing GGUF file or MLX folder, or REPO[:FILE])")],
    ids=["size", "quant", "other-family", "unknown", "missing-path"],
)
def test_names_that_name_nothing_are_one_line(env, model, code, message):
    done = qwenctl("run", model, "-p", "hi", env=env)
    assert (done.returncode, done.stderr.splitlines()[-1]) == (code, message)


def test_a_gguf_is_known_by_its_magic_not_its_name(env, tiny, tmp_path):
    renamed = tmp_path / "weights.bin"
    shutil.copyfile(tiny, renamed)
    done = qwenctl("run", str(renamed), *LOAD, "-p", "hi", "-n", "3", "-q", "--seed", "1", env=env)
    assert done.returncode == 0 and done.stderr == "" and done.stdout.strip()
    fake = tmp_path / "notes.gguf"
    fake.write_text("not a model")
    refused = qwenctl("run", str(fake), "-p", "hi", env=env)
    assert refused.returncode == 3
    assert refused.stderr.splitlines()[-1] == (f"error: {fake} is not a GGUF file (it does not start with the GGUF magic) "
                                               "(point MODEL at a GGUF file or an MLX model folder)")


def test_a_model_in_ollamas_store_is_used_where_it_lies(env, hub, tiny):
    store = Path(env["OLLAMA_MODELS"])
    manifest = make_store(store, "qwen2.5:0.5b", tiny)
    blob = next(p for p in (store / "blobs").iterdir() if p.stat().st_size == tiny.stat().st_size)
    before = {p: (p.stat().st_mtime_ns, p.stat().st_size) for p in store.rglob("*") if p.is_file()}

    doc = summary("ollama:qwen2.5:0.5b", env=env)
    assert (doc["model"], doc["backend"], doc["plan"]) == ("ollama:qwen2.5:0.5b", "llama.cpp", None)
    assert doc["files"]["load_path"] == str(blob)  # a blob named sha256-…, no .gguf: its magic says GGUF
    # seeded: three random-weight tokens can all be whitespace, which would make the reply look empty
    reply = qwenctl("run", "ollama:qwen2.5:0.5b", *LOAD, "-p", "hi", "-n", "3", "-q", "--seed", "1", env=env)
    assert reply.returncode == 0 and reply.stderr == "" and reply.stdout.strip()

    assert resolve_gets(hub) == [] and hub.requests == []  # nothing downloaded, not even asked
    assert {p: (p.stat().st_mtime_ns, p.stat().st_size) for p in store.rglob("*") if p.is_file()} == before
    assert not (Path(env["HF_HOME"]) / "hub").exists() or not any((Path(env["HF_HOME"]) / "hub").iterdir())
    missing = qwenctl("run", "ollama:qwen2.5:7b", "-p", "hi", env=env)
    assert missing.returncode == 4 and "`ollama pull qwen2.5:7b` fetches it" in missing.stderr
    assert manifest.exists()


def test_the_engine_is_checked_before_any_download(env, hub, tmp_path):
    """Without llama-cpp-python, run, bench and serve stop before a byte is fetched (serve did already)."""
    fake = tmp_path / "no-engine" / "llama_cpp"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError(\"No module named 'llama_cpp'\")\n")
    env = {**env, "PYTHONPATH": str(fake.parent)}
    for args in (["run", "0.5b:q8_0", "-p", "hi"], ["bench", "0.5b:q8_0"], ["serve", "0.5b:q8_0"]):
        done = qwenctl(*args, "--yes", env=env)
        assert done.returncode == 10, done.stderr
        assert "not installed" in done.stderr.splitlines()[-1] and "pip install 'qwenctl[" in done.stderr
    assert resolve_gets(hub) == []


def test_offline_never_asks_and_names_the_exact_file(env, hub):
    child = pexpect.spawn(sys.executable, ["-m", "qwenctl", "run", "0.5b:q8_0"], env={**env, "HF_HUB_OFFLINE": "1"},
                          encoding="utf-8", timeout=120, dimensions=(40, 250))
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 4
    assert "[Y/n]" not in child.before and ")? " not in child.before  # no "download …? [Y/n]" question
    assert f"(pull it once while online: qwenctl pull {REPO}:{Q8})" in child.before.replace("\r\n", "")
    assert hub.requests == []


def test_a_damaged_cached_copy_is_never_replaced_silently(env, hub):
    assert qwenctl("pull", "0.5b:q8_0", env=env).returncode == 0
    blob = Path(os.path.realpath(next((Path(env["HF_HOME"]) / "hub").rglob(Q8))))
    with blob.open("r+b") as f:  # one flipped byte, as a bad disk or an interrupted copy leaves it
        f.seek(1000)
        byte = f.read(1)
        f.seek(1000)
        f.write(bytes([byte[0] ^ 0xFF]))
    hub.reset_counters()

    offline = qwenctl("run", "0.5b:q8_0", *LOAD, "-p", "hi", "--offline", env=env)
    assert offline.returncode == 9 and "is damaged" in offline.stderr and blob.exists()
    script = qwenctl("run", "0.5b:q8_0", *LOAD, "-p", "hi", env=env)  # no terminal, no --yes: no silent download
    assert script.returncode == 1 and blob.exists()
    assert f"warning: the cached {REPO}:{Q8} does not match the hub's sha256" in script.stderr
    assert "downloading it again replaces it" in script.stderr and "rerun with --yes" in script.stderr
    assert resolve_gets(hub) == []
    fixed = qwenctl("run", "0.5b:q8_0", *LOAD, "-p", "hi", "-n", "3", "--yes", env=env)
    assert fixed.returncode == 0, fixed.stderr
    assert "warning: the cached" in fixed.stderr and len(resolve_gets(hub)) == 1  # said, then fetched afresh


def test_a_scripted_one_shot_says_its_plan_in_one_line(env):
    assert qwenctl("pull", "0.5b:q8_0", env=env).returncode == 0
    done = qwenctl("run", "0.5b:q8_0", *LOAD, "-p", "hi", "-n", "2", env=env)
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stderr.splitlines() if not line.startswith("measuring this machine's")]  # once
    assert lines[0] == "detecting hardware" and lines[1].startswith("plan: Qwen2.5 0.5B Q8_0 on llama.cpp")
    assert not any(line.startswith("  ") for line in lines)  # no why/memory/speed/download lines
    assert lines[2].startswith(f"using the cached, verified {REPO}") and lines[3].startswith("loading ")
