"""Start `qwenctl serve` as a real subprocess on a free loopback port and stop it again."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path


def default_sigint() -> None:
    """In the child before exec: SIGINT back to its default, so a test's SIGINT stops the server also when
    the suite was started from a shell that ignores SIGINT (nohup, a background job)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


# Hang protection only (loading plus imports take a few seconds here); not a speed assertion.
START_TIMEOUT_S = 180


@dataclass
class Server:
    proc: subprocess.Popen
    info: dict  # the --json start-up line
    stderr_lines: list[str] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return self.info["url"]

    @property
    def model_id(self) -> str:
        return self.info["model_id"]

    def client(self, api_key: str = "unused", **kwargs):
        import openai

        return openai.OpenAI(base_url=self.base_url, api_key=api_key, max_retries=0, timeout=120, **kwargs)

    def stop(self, timeout: float = 60) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
        return self.proc.wait(timeout)

    @property
    def stderr(self) -> str:
        return "".join(self.stderr_lines)


def start(model: Path, *args: str, env: dict | None = None) -> Server:
    """Run `qwenctl serve --model MODEL --port 0 --json ARGS` and wait for its start-up line."""
    return start_planned("--model", str(model), *args, env=env)


def start_planned(*args: str, env: dict | None = None, python: tuple[str, ...] = ("-m", "qwenctl")) -> Server:
    """Run `qwenctl serve --port 0 --json ARGS` and wait for its start-up line (`python`: how Python runs qwenctl)."""
    cmd = [sys.executable, *python, "serve", "--port", "0", "--json", *args]
    full_env = {k: v for k, v in os.environ.items() if k != "QWENCTL_API_KEY"}
    full_env.update({"HF_HUB_OFFLINE": "1", "NO_COLOR": "1", **(env or {})})
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=full_env,
                            preexec_fn=default_sigint)
    stderr_lines: list[str] = []
    threading.Thread(target=lambda: stderr_lines.extend(proc.stderr), daemon=True).start()
    first: list[str] = []
    reader = threading.Thread(target=lambda: first.append(proc.stdout.readline()), daemon=True)
    reader.start()
    reader.join(START_TIMEOUT_S)
    if not first or not first[0]:
        proc.kill()
        proc.wait()
        raise RuntimeError(f"qwenctl serve did not start (exit {proc.returncode}):\n{''.join(stderr_lines)}")
    # keep draining stdout so the server never blocks on a full pipe
    threading.Thread(target=lambda: proc.stdout.read(), daemon=True).start()
    return Server(proc, json.loads(first[0]), stderr_lines)
