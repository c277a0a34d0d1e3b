"""backends/rpc.py: the RPC protocol client against real workers and fake servers, and a model split over two
workers and this process, checked token for token against a single-process load."""

from __future__ import annotations

import json
import re
import socket
import struct
import subprocess
import sys
import threading

import pytest
from rpc_helpers import ROOT, env, free_port_pair, needs_rpc, workers
from run_helpers import slow_model

from qwenctl.backends import rpc
from qwenctl.errors import ExitCode, QwenctlError


@pytest.mark.parametrize("text, why", [
    ("gpu-box", "expected HOST:PORT"),
    (":50052", "expected HOST:PORT"),
    ("gpu-box:", "expected HOST:PORT"),
    ("gpu-box:http", "the port must be a number from 1 to 65535"),
    ("gpu-box:0", "the port must be a number from 1 to 65535"),
    ("gpu-box:70000", "the port must be a number from 1 to 65535"),
    ("[::1]:50052", "llama.cpp's RPC client takes IPv4 addresses and host names only"),
    ("::1:50052", "expected HOST:PORT"),
], ids=["no-port", "no-host", "empty-port", "port-not-a-number", "port-0", "port-too-big", "ipv6-brackets", "ipv6"])
def test_bad_endpoints_are_one_line(text, why):
    with pytest.raises(QwenctlError) as e:
        rpc.probe(text)
    assert e.value.code == ExitCode.BAD_INPUT
    assert e.value.message.startswith(f"bad RPC worker endpoint {text!r}: {why}")
    assert "\n" not in e.value.one_line()


def test_an_unreachable_worker_names_the_endpoint_and_how_to_start_one():
    port = free_port_pair()  # nothing listens there
    with pytest.raises(QwenctlError) as e:
        rpc.probe(f"127.0.0.1:{port}")
    assert e.value.code == ExitCode.NETWORK
    assert e.value.one_line() == (f"cannot reach RPC worker 127.0.0.1:{port} (connection refused: nothing listens there) "
                                  "(start it there with `qwenctl worker --host ADDRESS --port PORT`)")


class FakeServer:
    """Speaks just enough of the protocol: reads HELLO, answers with `version` (None: never answers)."""

    def __init__(self, version: tuple[int, int, int] | None):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.port = self.sock.getsockname()[1]
        self.version = version
        self.hello = b""
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self) -> None:
        conn, _ = self.sock.accept()
        with conn:
            while len(self.hello) < 1 + 8 + 24:
                chunk = conn.recv(64)
                if not chunk:
                    return
                self.hello += chunk
            if self.version is None:
                conn.recv(1)  # busy with someone else: never answers
                return
            conn.sendall(struct.pack("<Q", 28) + bytes([*self.version, 0]) + bytes(24))
            conn.recv(1)

    def close(self) -> None:
        self.sock.close()


@pytest.mark.parametrize("version, upgrade", [((6, 0, 0), "the one on"), ((7, 1, 0), "this machine's")], ids=["older", "newer"])
def test_another_protocol_version_says_both_and_which_side_to_upgrade(version, upgrade):
    fake = FakeServer(version)
    try:
        with pytest.raises(QwenctlError) as e:
            rpc.probe(f"127.0.0.1:{fake.port}", timeout=5)
    finally:
        fake.close()
    theirs = ".".join(map(str, version))
    assert e.value.message == f"RPC worker 127.0.0.1:{fake.port} speaks llama.cpp RPC protocol {theirs}, this machine speaks 7.0.0"
    assert e.value.hint is not None and e.value.hint.startswith(f"upgrade {upgrade}")
    assert fake.hello == struct.pack("<BQ", 14, 24) + bytes(24)  # HELLO, 24 bytes of zero caps: plain TCP


def test_a_worker_that_does_not_answer_is_called_busy():
    fake = FakeServer(None)
    try:
        with pytest.raises(QwenctlError) as e:
            rpc.probe(f"127.0.0.1:{fake.port}", timeout=0.5)
    finally:
        fake.close()
    assert e.value.message.startswith(f"RPC worker 127.0.0.1:{fake.port} did not answer the HELLO handshake within 0.5 s: "
                                      "it is serving another client")


def test_check_version_accepts_an_older_minor():
    rpc.check_version("h:1", (7, 0, 0))
    with pytest.raises(QwenctlError):
        rpc.check_version("h:1", (8, 0, 0))


# --- a model over two workers and this machine ----------------------------------------------------

N_GPU_LAYERS = 5  # of 9 (8 blocks + output): blocks 0-3 stay here, 4-7 and the output go to the workers


def _main(model, *args, stderr=subprocess.PIPE) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(ROOT / "tests" / "rpc_main.py"), str(model), *args],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, text=True, env=env(), cwd=ROOT)


def _rss(pid: int) -> int:
    import psutil

    return psutil.Process(pid).memory_info().rss


@needs_rpc
@pytest.mark.slow
def test_a_model_split_over_two_workers_generates_what_one_process_does(request, tmp_path):
    model = slow_model(request.config)  # 8 layers, F16, 62 MB
    single = _main(model)
    out, err = single.communicate(timeout=300)
    assert single.returncode == 0, err
    alone = json.loads(out.splitlines()[-1])

    with workers(2) as started:
        endpoints = [f"127.0.0.1:{port}" for _, port in started]
        before = [_rss(proc.pid) for proc, _ in started]
        log_file = (tmp_path / "llama.log").open("w")  # llama.cpp's verbose log: a file, so a full pipe cannot block it
        main = _main(model, "--workers", ",".join(endpoints), "--ngl", str(N_GPU_LAYERS), "--hold", "--verbose", stderr=log_file)
        assert main.stdout is not None
        lines = []
        for line in main.stdout:
            lines.append(line)
            if line.startswith("holding"):
                break
        after = [_rss(proc.pid) for proc, _ in started]
        main.stdin.write("\n")  # type: ignore[union-attr]
        main.stdin.flush()  # type: ignore[union-attr]
        main.communicate(timeout=60)
        log_file.close()
    log = (tmp_path / "llama.log").read_text()
    assert main.returncode == 0, log[-2000:]
    assert lines[0].split() == ["attached", "RPC0", "RPC1"]
    split = json.loads(next(line for line in lines if line.startswith("{")))

    placed = dict(re.findall(r"load_tensors: layer +(\d+) assigned to device (\S+),", log))
    assert {placed[str(i)] for i in range(4)} == {"CPU"}  # the first layers stay on this machine
    assert {placed[str(i)] for i in range(4, 9)} == {"RPC0", "RPC1"}  # the last ones on the two workers
    # llama.cpp names each worker's buffers RPC<its device index on that worker>[endpoint]: the endpoint tells them apart
    held = {ep: float(mib) * 2**20 for ep, mib in re.findall(r"RPC\d+\[(127\.0\.0\.1:\d+)\] model buffer size = +([\d.]+) MiB", log)}
    weights = [held[ep] for ep in endpoints]

    assert split["tokens"] == alone["tokens"]  # greedy: token for token
    assert split["logits"] == pytest.approx(alone["logits"], abs=1e-3)
    for (_, port), b, a, w in zip(started, before, after, weights):
        print(f"worker 127.0.0.1:{port}: RSS {b / 2**20:.1f} -> {a / 2**20:.1f} MiB (+{(a - b) / 2**20:.1f} MiB) "
              f"for {w / 2**20:.2f} MiB of weights")
    for b, a, w in zip(before, after, weights):
        assert a - b >= 0.9 * w  # the worker really holds its layers


@needs_rpc
@pytest.mark.slow
def test_a_worker_killed_mid_generation_ends_the_run_in_one_line(request):
    model = slow_model(request.config)
    with workers(2) as started:
        endpoints = [f"127.0.0.1:{port}" for _, port in started]
        main = _main(model, "--workers", ",".join(endpoints), "--ngl", str(N_GPU_LAYERS), "--tokens", "100000", "--sleep", "0.01")
        assert main.stdout is not None
        for line in main.stdout:
            if line.startswith("token 5"):
                break
        started[1][0].kill()  # kill -9 the second worker mid-generation
        started[1][0].wait(10)
        try:
            _, err = main.communicate(timeout=60)  # no hang
        except subprocess.TimeoutExpired:
            main.kill()
            raise
    assert main.returncode == ExitCode.BACKEND
    assert err.splitlines() == [f"error: lost RPC worker {endpoints[1]} (its process is gone: connection refused) "
                                "(restart `qwenctl worker` there, then run again)"]


@needs_rpc
@pytest.mark.slow
def test_a_server_is_told_of_a_lost_worker_and_keeps_running(request):
    model = slow_model(request.config)
    with workers(2) as started:
        endpoints = [f"127.0.0.1:{port}" for _, port in started]
        main = _main(model, "--workers", ",".join(endpoints), "--ngl", str(N_GPU_LAYERS), "--tokens", "100000", "--sleep", "0.01",
                     "--serve-mode")
        assert main.stdout is not None
        for line in main.stdout:
            if line.startswith("token 5"):
                break
        started[0][0].kill()
        try:
            out, err = main.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            main.kill()
            raise
    assert main.returncode == 0, err
    told = [line for line in out.splitlines() if not line.startswith("token")]
    assert told == [f"engine dead: lost RPC worker {endpoints[0]} (its process is gone: connection refused) "
                    "(restart `qwenctl worker` there, then run again)", "still serving"]
