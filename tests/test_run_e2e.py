"""`qwenctl run` from nothing to chatting, through a real pseudo-terminal.

A local fake Hugging Face hub serves a generated qwen2 GGUF under the official repo and
file name the planner picks for `--size 0.5B --quant q4_k_m` on this machine. The first
run detects, plans, downloads, verifies, smoke-tests and chats; a second run must not
send a single request to the hub.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pexpect
import pytest
from fakehub import FakeHub
from run_helpers import model_cache, slow_model, tiny_model
from serve_helpers import default_sigint

from qwenctl.hardware import detect
from qwenctl.plan import Constraints, plan
from qwenctl.testing import models

PLAN_ARGS = ["--size", "0.5B", "--quant", "q4_k_m", "--ctx", "2048"]
TIMEOUT = 120  # generous: a 2-core CI machine may be busy


@pytest.fixture(scope="module")
def planned():
    """What the planner picks here for the flags the test passes (repo, files)."""
    return plan(detect(), Constraints(size="0.5B", quant="q4_k_m", n_ctx=2048)).chosen


@pytest.fixture(scope="module")
def hub(request, planned):
    files = {planned.repo: {name: slow_model(request.config) for name in planned.files}}
    with FakeHub(files) as hub:
        yield hub


@pytest.fixture
def env(tmp_path, hub):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "XDG_", "NO_COLOR"))}
    env.update(
        HF_ENDPOINT=hub.url,
        HF_HOME=str(tmp_path / "hf"),
        XDG_DATA_HOME=str(tmp_path / "data"),
        XDG_CACHE_HOME=str(tmp_path / "cache"),
        XDG_CONFIG_HOME=str(tmp_path / "config"),
        HF_HUB_DISABLE_TELEMETRY="1",
        TERM="xterm",
        COLUMNS="200",
    )
    return env


def spawn(args, env) -> pexpect.spawn:
    # Ctrl-C reaches the child as it would from a terminal, also when the suite runs from a shell that
    # ignores SIGINT (nohup, a background job): an ignored signal stays ignored across exec
    return pexpect.spawn(
        sys.executable, ["-m", "qwenctl", "run", *args], env=env, encoding="utf-8", timeout=TIMEOUT, dimensions=(50, 200),
        preexec_fn=default_sigint,
    )


def say(child: pexpect.spawn, line: str, *expect: str) -> None:
    child.sendline(line)
    for pattern in expect:
        child.expect_exact(pattern)
    child.expect_exact(">>> ")


def test_run_downloads_smoke_tests_and_chats_then_runs_offline(env, hub, planned, tmp_path):
    hub.reset_counters()
    child = spawn(["--yes", *PLAN_ARGS], env)
    child.expect_exact("detecting hardware")
    child.expect_exact("plan: Qwen2.5 0.5B Q4_K_M on llama.cpp")
    child.expect_exact(f"downloading {planned.files[0]} from {planned.repo}")
    child.expect_exact("loading Qwen2.5 0.5B Q4_K_M with llama.cpp")
    child.expect_exact("smoke test: ")
    child.expect_exact("tok/s")
    child.expect_exact("chatting with Qwen2.5 0.5B Q4_K_M (2,048-token context)")
    child.expect_exact(">>> ")

    say(child, "/set max_tokens 12", "max_tokens = 12")
    say(child, "Hello! Who are you?")
    say(child, "And what can you do?")
    say(child, "/stats", "last reply: ", "context: ")
    say(child, "/sett top_k 5", "unknown command /sett (did you mean /set? type /help for the list)")

    # Ctrl-C in the middle of a long reply stops it; the session lives on
    child.sendline("/set max_tokens 2000")
    child.expect_exact(">>> ")
    child.sendline("Tell me a very long story.")
    child.expect_exact("Tell me a very long story.")
    child.expect(r"\S{3}")  # the reply has started streaming
    child.sendintr()
    child.expect_exact("[reply stopped]")
    child.expect_exact(">>> ")
    say(child, "/stats", "interrupted", "6 messages")
    say(child, "/set max_tokens 4", "max_tokens = 4")
    say(child, "Still there?")
    child.sendline("/bye")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0, child.before

    downloads = [r for r in hub.requests if "/resolve/" in r.path or r.path.endswith(planned.files[0])]
    assert downloads, "the first run downloaded through the fake hub"
    assert hub.bytes_sent[f"{planned.repo}/{planned.files[0]}"] == hub.blob(planned.repo, planned.files[0]).size

    # everything is cached now: the second run starts chatting without a single request
    hub.reset_counters()
    child = spawn(PLAN_ARGS, env)  # no --yes: nothing to download, so nothing to ask
    child.expect_exact("using the cached, verified Qwen/Qwen2.5-0.5B-Instruct-GGUF")
    child.expect_exact(">>> ")
    say(child, "/set max_tokens 4", "max_tokens = 4")
    say(child, "Hello again")
    child.sendeof()
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    assert hub.requests == []


def test_without_yes_and_no_terminal_it_asks_for_yes(env, hub):
    result = subprocess.run(
        [sys.executable, "-m", "qwenctl", "run", *PLAN_ARGS, "-p", "hi"], env=env, capture_output=True, text=True, timeout=TIMEOUT
    )
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1] == (
        "error: not downloading qwen2.5-0.5b-instruct-q4_k_m.gguf from Qwen/Qwen2.5-0.5B-Instruct-GGUF "
        "(rerun with --yes to download without asking)"
    )


def test_terminal_asks_before_downloading(env, hub, planned):
    child = spawn(PLAN_ARGS, env)
    child.expect_exact(f"download {planned.files[0]} from {planned.repo} (")
    child.expect_exact("[Y/n]")
    child.sendline("n")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 1
    assert "not downloading qwen2.5-0.5b-instruct-q4_k_m.gguf" in child.before


def run_local(model: Path, *args, input: str | None = None, env=None):
    return subprocess.run(
        [sys.executable, "-m", "qwenctl", "run", "--model", str(model), *args],
        input=input,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env=env,
    )


@pytest.fixture(scope="module")
def tiny(request) -> Path:
    return tiny_model(request.config)


def test_prompt_flag_prints_one_reply(tiny, env):
    result = run_local(tiny, "--ctx", "512", "-p", "hello", env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()
    assert "loading tiny-" in result.stderr and "smoke test" not in result.stderr


def test_piped_stdin_is_one_prompt_and_json_gives_stats(tiny, env):
    result = run_local(tiny, "--ctx", "512", "--json", input="line one\nline two\n", env=env)
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["schema"] == "run.reply"
    reply = doc["reply"]
    assert set(reply) == {
        "text", "finish_reason", "prompt_tokens", "generated_tokens", "prompt_seconds", "generation_seconds", "prompt_tps", "generation_tps"
    }  # fmt: skip
    assert reply["finish_reason"] in ("stop", "length") and reply["generated_tokens"] > 0
    assert doc["truncated_chars"] == 0


def test_huge_piped_prompt_is_cut_with_a_warning(tiny, env):
    result = run_local(tiny, "--ctx", "512", "--json", input="paste " * 100_000, env=env)
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["truncated_chars"] > 0
    assert "warning: the message is too long for the 512-token context: kept its first" in result.stderr


def test_no_chat_json_reports_the_load_and_smoke_test(tiny, env):
    result = run_local(tiny, "--ctx", "512", "--no-chat", "--json", input="", env=env)
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert (doc["schema"], doc["model"], doc["backend"], doc["plan"]) == ("run", tiny.name, "llama.cpp", None)
    assert doc["files"]["load_path"] == str(tiny.resolve())
    assert doc["load_options"]["n_ctx"] == 512 and doc["n_gpu_layers"] == 0
    assert doc["smoke"]["generated_tokens"] > 0 and doc["smoke"]["decode_tps"] > 0


def test_a_smoke_test_that_cannot_be_remembered_is_a_warning_not_the_end(tiny, env, tmp_path):
    """The data folder is a file: the smoke test ran and cleared the model, so the run goes on and says what it could
    not keep. Until session 69 the history's write error ended `run` after a passing smoke test."""
    (tmp_path / "not-a-folder").write_text("")
    result = run_local(tiny, "--ctx", "512", "--no-chat", "--json", input="",
                       env={**env, "XDG_DATA_HOME": str(tmp_path / "not-a-folder")})
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["smoke"]["decode_tps"] > 0
    assert ("warning: the smoke test is not remembered (the next run tests again, later plans are not corrected by "
            f"it): cannot write {tmp_path / 'not-a-folder' / 'qwenctl'}: a part of the path is not a folder") in result.stderr


def test_a_transcript_log_that_cannot_be_written_warns_on_a_line_of_its_own(tiny, env, tmp_path):
    """One prompt, the transcript's database where no file can be (its folder is a file): the reply is answered and
    ended, then the warning follows on its own line (stdout and stderr merged, as a terminal shows them; the log
    was written before the reply's closing newline until session 69)."""
    (tmp_path / "not-a-folder").write_text("")
    done = subprocess.run([sys.executable, "-m", "qwenctl", "run", "--model", str(tiny), "--ctx", "512", "-n", "4",
                           "-p", "hi", "--no-smoke-test"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=TIMEOUT, env={**env, "QWENCTL_LOGS_DB": str(tmp_path / "not-a-folder" / "logs.db")})
    assert done.returncode == 0, done.stdout
    lines = done.stdout.splitlines()
    assert lines[-1].startswith("warning: transcript log off for this chat: cannot write ")
    assert lines[-2].startswith("note: the reply was cut at 4 tokens")


def test_piped_bytes_that_are_not_utf8_are_answered(tiny, env):
    """Bytes that are not UTF-8 piped in (a Latin-1 file, a binary cut) reach the model as U+FFFD; Python reads them
    as lone surrogates, which the tokenizer's encoder refused with an internal error (exit 70) until session 69."""
    done = subprocess.run([sys.executable, "-m", "qwenctl", "run", "--model", str(tiny), "--ctx", "512", "-n", "3",
                           "--no-smoke-test", "--json"], input=b"caf\xe9 \xff\xfe\n", capture_output=True,
                          timeout=TIMEOUT, env=env)
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    assert json.loads(done.stdout)["reply"]["generated_tokens"] >= 1


def test_empty_piped_prompt(tiny, env):
    result = run_local(tiny, input="\n", env=env)
    assert result.returncode == 3
    assert result.stderr.splitlines()[-1] == 'error: empty prompt (pass -p "..." or pipe some text in)'


def test_bad_model_argument_is_one_line(env, tmp_path):
    result = run_local(tmp_path / "nope.gguf", env=env)
    assert result.returncode == 4
    assert result.stderr.splitlines()[-1].startswith("error: no such file: ")
    assert "Traceback" not in result.stderr


def test_interactive_odd_input_never_crashes(tiny, env):
    """An empty line, an unknown command, a huge multi-line paste, Ctrl-C at the prompt, Ctrl-D."""
    child = spawn(["--model", str(tiny), "--ctx", "512"], env)
    child.expect_exact(">>> ")
    say(child, "/set max_tokens 8")
    child.sendline("")
    child.expect_exact(">>> ")
    say(child, "/frobnicate", "unknown command /frobnicate (type /help for the list)")
    say(child, "/help", "/save FILE", "repeat_penalty")
    child.sendline('"""')
    for i in range(60):
        child.expect_exact("... ")
        child.sendline(f"line {i} of a long paste, " + "words " * 10)
    child.expect_exact("... ")
    child.sendline('"""')
    child.expect_exact("note: the message is too long for the 512-token context: kept its first")
    child.expect_exact(">>> ")
    child.sendintr()
    child.expect_exact("(Ctrl-C clears the line; /bye or Ctrl-D leaves)")
    child.expect_exact(">>> ")
    say(child, "/stats", "2 messages")
    child.sendeof()
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    assert "Traceback" not in child.before


@pytest.fixture(scope="module")
def tiny_mlx(request) -> Path:
    pytest.importorskip("mlx.core")
    pytest.importorskip("mlx_lm")
    return models.tiny_mlx(model_cache(request.config))


def test_mlx_folder_runs_end_to_end(tiny_mlx, env):
    """`run --model` an MLX folder: backend chosen from the folder, loaded by real mlx-lm (mlx[cpu] here),
    smoke-tested, then one piped prompt answered."""
    checked = run_local(tiny_mlx, "--ctx", "512", "--no-chat", "--json", input="", env={**env, "HF_HUB_OFFLINE": "1"})
    assert checked.returncode == 0, checked.stderr
    doc = json.loads(checked.stdout)
    assert (doc["backend"], doc["model"], doc["plan"]) == ("mlx", tiny_mlx.name, None)
    assert doc["smoke"]["generated_tokens"] > 0 and doc["smoke"]["decode_tps"] > 0

    answered = run_local(tiny_mlx, "--ctx", "512", "--json", input="hello there\n", env={**env, "HF_HUB_OFFLINE": "1"})
    assert answered.returncode == 0, answered.stderr
    reply = json.loads(answered.stdout)["reply"]
    assert reply["generated_tokens"] > 0 and reply["finish_reason"] in ("stop", "length")
    assert reply["prompt_tokens"] > 2  # the chat template wrapped the message
