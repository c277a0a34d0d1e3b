"""docs/guide.md, run: every `sh` block line by line, every `text` transcript that starts with `$ ` through a
pseudo-terminal, in the order the guide gives them, in one fresh home folder, against the fake hub serving a
generated GGUF under the catalog's names (and an Ollama store and a ~/models file made from it).

In a transcript, `…` stands for anything (the model's gibberish, figures that differ between machines); a line
that is only `…` is skipped; `>>> X` waits for the prompt and types X; a line holding `[Y/n]: ` or `[y/N] `
waits for that question and answers with what follows it. Every other line must appear, in order. An `sh`
line must exit 0, or the code its comment names (`# exit 4`); a line ending in `&` starts in the background
(a server: the next line runs once `qwenctl ps` lists it).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pexpect
import pytest
from daily_helpers import catalog_files
from fakehub import FakeHub
from run_helpers import tiny_model

from qwenctl.testing.ollama_store import make_store

GUIDE = Path(__file__).parents[1] / "docs" / "guide.md"
TIMEOUT = 600  # a one-shot on a random-weight model may fill its context: minutes on a loaded 2-core machine


@dataclass
class Step:
    kind: str  # "sh" | "transcript"
    lines: list[str]
    where: int  # line number in the guide


def steps(text: str) -> list[Step]:
    out, lines = [], text.splitlines()
    i = 0
    while i < len(lines):
        fence = re.match(r"^```(\w*)$", lines[i])
        if not fence:
            i += 1
            continue
        lang, start = fence[1], i + 1
        j = start
        while lines[j] != "```":
            j += 1
        body = lines[start:j]
        if lang == "sh":
            out.append(Step("sh", body, start + 1))
        elif lang == "text" and body and body[0].startswith("$ "):
            out.append(Step("transcript", body, start + 1))
        i = j + 1
    return out


def commands(body: list[str]) -> list[tuple[str, int, bool]]:
    """(command, expected exit code, background) for every command of an sh block; a heredoc stays one command."""
    out, i = [], 0
    while i < len(body):
        line = body[i]
        if not line.strip() or line.lstrip().startswith("#"):
            i += 1
            continue
        command, _, comment = line.partition("  #")
        if "<<'EOF'" in line:
            j = body.index("EOF", i)
            command, i = "\n".join(body[i : j + 1]), j + 1
        else:
            i += 1
        code = re.search(r"\bexit (\d+)", comment)
        command = command.rstrip()
        background = command.endswith("&")
        out.append((command.rstrip("&").rstrip(), int(code[1]) if code else 0, background))
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def sandbox(request, tmp_path_factory):
    """A fresh user's home: the fake hub, an Ollama store holding qwen2.5:7b, a GGUF in ~/models."""
    tiny = tiny_model(request.config)
    home = tmp_path_factory.mktemp("home")
    make_store(home / ".ollama" / "models", "qwen2.5:7b", tiny)
    (home / "models").mkdir()
    shutil.copyfile(tiny, home / "models" / "qwen2.5-7b-instruct-q4_k_m.gguf")
    # the random model rarely ends a reply: up to 8,000 tokens each, minutes on a busy 2-core machine. Replies are
    # capped here until the guide writes its own config file (tests/test_oneshot.py checks the uncapped default)
    (home / ".config" / "qwenctl").mkdir(parents=True)
    (home / ".config" / "qwenctl" / "config.toml").write_text("[sampling]\nmax_tokens = 64\n")
    with FakeHub(catalog_files(tiny, sizes=("0.5B", "7B"))) as hub:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("HF_", "XDG_", "QWENCTL_", "OLLAMA_", "PYTEST", "COLUMNS"))}
        env.update(HOME=str(home), HF_ENDPOINT=hub.url, HF_HUB_DISABLE_TELEMETRY="1", TERM="dumb", NO_COLOR="1",
                   QWENCTL_PORT=str(free_port()), QWENCTL_TRACEBACK="1",
                   PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
        yield home, env


def run_sh(step: Step, home: Path, env: dict, background: list[subprocess.Popen]) -> None:
    for command, code, in_background in commands(step.lines):
        where = f"docs/guide.md:{step.where}: {command}"
        if in_background:
            background.append(subprocess.Popen(["bash", "-c", f"exec {command}"], cwd=home, env=env,
                                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                               stderr=subprocess.DEVNULL, start_new_session=True))
            wait_for_server(home, env, background[-1], where)
            continue
        done = subprocess.run(["bash", "-c", command], cwd=home, env=env, stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=TIMEOUT)
        assert done.returncode == code, f"{where}\nexit {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"


def wait_for_server(home: Path, env: dict, proc: subprocess.Popen, where: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"{where}: the server exited ({proc.returncode})"
        listed = subprocess.run(["bash", "-c", "qwenctl ps --json"], cwd=home, env=env, capture_output=True, text=True)
        if listed.returncode == 0 and json.loads(listed.stdout)["servers"]:
            return
        time.sleep(0.5)
    raise AssertionError(f"{where}: no server listed after {TIMEOUT} s")


def pattern(line: str) -> str:
    return ".*?".join(re.escape(part) for part in line.split("…"))


def replay(step: Step, home: Path, env: dict) -> None:
    command = step.lines[0][2:]
    child = pexpect.spawn("bash", ["-c", command], cwd=str(home), env=env, encoding="utf-8", timeout=TIMEOUT,
                          dimensions=(50, 250))
    where, line = step.where, step.lines[0]
    try:
        for where, line in enumerate(step.lines[1:], start=step.where + 1):  # noqa: B007 - the error names it
            if line.strip() == "…":
                continue
            question = re.search(r"(\[Y/n\]: |\[y/N\] )", line)
            if line.startswith(">>> "):
                child.expect_exact(">>> ")
                child.sendline(line[4:])
                child.expect_exact(line[4:])  # the echo
            elif question:
                child.expect(pattern(line[: question.end()]))
                child.sendline(line[question.end():])
            else:
                child.expect(pattern(line), timeout=TIMEOUT)
        child.expect(pexpect.EOF)
    except (pexpect.TIMEOUT, pexpect.EOF) as e:
        raise AssertionError(f"docs/guide.md:{where}: {line!r} not seen; the output so far:\n{child.before}") from e
    child.close()
    assert child.exitstatus == 0, f"docs/guide.md:{step.where}: {command} exited {child.exitstatus}"


def test_every_example_of_the_guide_runs(sandbox):
    home, env = sandbox
    todo = steps(GUIDE.read_text())
    assert sum(s.kind == "sh" for s in todo) >= 8 and sum(s.kind == "transcript" for s in todo) >= 3
    background: list[subprocess.Popen] = []
    try:
        for step in todo:
            if step.kind == "sh":
                run_sh(step, home, env, background)
            else:
                replay(step, home, env)
    finally:
        for proc in background:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(60)


def test_the_guide_parser():
    body = ["qwenctl run 9b -p \"Hi\"   # exit 4", "", "# a comment", "qwenctl serve 7b &   # note",
            "cat > f <<'EOF'", "a = 1", "EOF", "qwenctl config"]
    assert commands(body) == [('qwenctl run 9b -p "Hi"', 4, False), ("qwenctl serve 7b", 0, True),
                              ("cat > f <<'EOF'\na = 1\nEOF", 0, False), ("qwenctl config", 0, False)]
    assert re.fullmatch(pattern("last reply: … (prompt …), …"), "last reply: 20 tokens (prompt 60 tokens), length")
