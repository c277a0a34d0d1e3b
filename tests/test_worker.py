"""`qwenctl worker`: real worker processes on loopback, asked over llama.cpp's RPC protocol by rpc.probe."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time

import pytest
from rpc_helpers import ROOT, env, free_port_pair, needs_rpc, start_worker, stop, workers

from qwenctl.backends import rpc
from qwenctl.device_speed import load_speed_model
from qwenctl.hardware.facts import Cpu, Hardware, hardware_from_dict

pytestmark = needs_rpc


def test_probe_reads_what_the_worker_offers():
    with workers(1) as [(_, port)]:
        w = rpc.probe(f"127.0.0.1:{port}")
    assert w.endpoint == f"127.0.0.1:{port}"
    assert w.protocol == "7.0.0"
    assert [d.name for d in w.devices] == ["CPU"]  # no GPU here: rpc-server's rule offers the CPU
    assert 0 < w.devices[0].free_bytes <= w.devices[0].total_bytes
    assert w.free_bytes == w.devices[0].free_bytes
    assert 0 < w.link.rtt_s < 1.0
    assert w.link.source.startswith(f"measured: median of {rpc.RTT_SAMPLES} round trips to 127.0.0.1:{port}")
    # loopback: the rate llama.cpp's RPC server moved on the H200 pair (speed_model.json), nothing assumed
    assert w.link.bandwidth_bytes_per_s == load_speed_model()["links"]["loopback_bytes_per_s"] and not w.link.assumed
    assert isinstance(w.hardware, Hardware) and isinstance(w.hardware.cpu, Cpu)  # from the info answer


def test_info_answer_is_the_workers_detect_json():
    with workers(1) as [(_, port)]:
        doc = rpc.fetch_info("127.0.0.1", port + 1)
    assert doc is not None
    assert doc["protocol"] == "7.0.0"
    assert [d["name"] for d in doc["devices"]] == ["CPU"] and doc["devices"][0]["total_bytes"] > 0
    assert doc["hardware"]["schema"] == "hardware"  # the document `qwenctl detect --json` prints
    hw = hardware_from_dict(doc["hardware"])
    assert hw.memory.total_bytes > 0  # type: ignore[union-attr]


def test_without_info_the_probe_still_answers_with_hardware_unknown():
    with workers(1, "--no-info") as [(_, port)]:
        assert rpc.fetch_info("127.0.0.1", port + 1) is None
        w = rpc.probe(f"127.0.0.1:{port}")
    assert w.hardware is None
    assert [d.name for d in w.devices] == ["device 0"]  # the RPC protocol itself carries no names
    assert w.devices[0].total_bytes > 0


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "ctrl-c"])
def test_a_signal_stops_the_worker_cleanly(sig):
    proc, port = start_worker()
    proc.send_signal(sig)
    proc.wait(20)
    time.sleep(0.2)  # the drain threads read to the end
    assert proc.returncode == 0
    assert proc.output[-1] == "worker stopped\n"
    assert not any(line.startswith("error") for line in proc.output)


def test_port_in_use_is_one_line():
    port = free_port_pair()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        proc, _ = start_worker(port=port, wait=False)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode != 0
    assert err.splitlines() == [f"error: cannot listen on 127.0.0.1:{port} for the RPC server: the port is in use "
                                "(stop what uses it or choose another --port)"]


def test_an_unknown_device_is_one_line():
    proc, _ = start_worker("--device", "CUDA7", wait=False)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 3
    assert len(err.splitlines()) == 1 and err.startswith("error: no device 'CUDA7' here (this machine has CPU")


def test_a_non_loopback_address_is_warned_in_words():
    proc, port = start_worker("--host", "0.0.0.0")
    stop(proc)
    time.sleep(0.2)
    err = "".join(proc.output)
    assert "no authentication or encryption" in err
    assert f"ssh -L {port}:127.0.0.1:{port}" in err


def test_worker_help_runs_without_llama_cpp_imported():
    out = subprocess.run([sys.executable, "-c", "import sys\nfrom qwenctl.cli import cli\n"
                          "try:\n    cli(['worker', '--help'])\nexcept SystemExit:\n    pass\n"
                          "print('llama_cpp' in sys.modules)"], capture_output=True, text=True, env=env(), cwd=ROOT)
    assert out.stdout.strip().endswith("False")
    assert "--no-info" in out.stdout
