"""Pull throughput from a loopback fake hub, against curl fetching the same file from the same server.

    python benchmarks/pull_throughput.py [--size-mb 1000] [--rounds 5] [--cli]

The fake hub (tests/fakehub.py) runs in its own process. curl and the pull ask for the
same URL (``/REPO/resolve/main/FILE``), follow the same 302 to the "CDN" port and get
the body from the same branch of the server (``sendfile(2)`` of the source file, whose
pages are warm: it was just written, and an untimed curl fetch precedes the rounds).
Each round runs, in alternating order (odd rounds curl first, even rounds the pull):

- curl:        ``curl -sSfL -o OUT URL``, timed around the process;
- curl+fsync:  the same, plus ``fsync`` of OUT inside the timing: the durability the
               pull gives (it fsyncs before the blob is moved into place), so this is
               the like-for-like figure on a disk slower than the network;
- pull:        ``qwenctl.fetch.pull`` in a fresh process with a fresh HF cache, timed
               around the call: huggingface_hub's import, repo info + file list, the
               download, the SHA-256 check, the fsync, the cache links;
- cli (--cli): ``qwenctl pull REPO:FILE`` wall time, interpreter start-up included.

Prints each round, the medians in MB/s (10^6 bytes/s) and the ratios
curl time / pull time (1.0 = as fast as curl; the issue's goal is >= 0.9).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REPO = "Qwen/Qwen2.5-1.5B-Instruct-GGUF"
FILENAME = "qwen2.5-1.5b-instruct-q4_k_m.gguf"  # about 1.1 GB in the real repo

PULL_TIMED = """
import sys, time
from qwenctl import fetch
t = time.perf_counter()
files = fetch.pull(sys.argv[1], [sys.argv[2]])
print(time.perf_counter() - t, files.downloaded_bytes)
"""


def make_file(path: Path, size: int) -> None:
    block = os.urandom(1 << 20)
    with path.open("wb") as f:
        for i in range(size // len(block)):
            # vary each block so nothing downstream can dedupe or compress it
            f.write(i.to_bytes(8, "little") + block[8:])
        f.write(os.urandom(size % len(block)))


def settle(seconds: float) -> None:
    """Start every timed run from the same state: no writeback pending, and a pause.

    On this VM's virtual disk the host keeps absorbing a large write for a while after
    sync(2) returns; without the pause whichever run came second in a round was up to
    twice as slow, whatever it was.
    """
    os.sync()
    time.sleep(seconds)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size-mb", type=int, default=1000, help="file size in MB (10^6 bytes), default 1000")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--settle", type=float, default=3.0, help="seconds to pause after sync(2) before each timed run")
    ap.add_argument("--cli", action="store_true", help="also time the `qwenctl pull` command")
    ap.add_argument("--dir", type=Path, default=None, help="scratch folder (default: a temp dir)")
    args = ap.parse_args()
    if not shutil.which("curl"):
        raise SystemExit("curl is not installed")

    scratch = Path(tempfile.mkdtemp(prefix="qwenctl-pull-bench-", dir=args.dir))
    size = args.size_mb * 1_000_000
    source = scratch / "source.gguf"
    make_file(source, size)
    server = subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "fakehub.py"), REPO, f"{FILENAME}={source}"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        endpoint = server.stdout.readline().strip()
        url = f"{endpoint}/{REPO}/resolve/main/{FILENAME}"
        env = {**os.environ, "HF_ENDPOINT": endpoint, "HF_HUB_DISABLE_TELEMETRY": "1", "XDG_DATA_HOME": str(scratch / "data")}
        out = scratch / "curl.out"

        def curl(fsync: bool) -> float:
            settle(args.settle)
            t = time.perf_counter()
            subprocess.run(["curl", "-sSfL", "-o", str(out), url], check=True)
            if fsync:
                fd = os.open(out, os.O_RDONLY)
                os.fsync(fd)
                os.close(fd)
            seconds = time.perf_counter() - t
            assert out.stat().st_size == size
            out.unlink()
            return seconds

        def pull(r: int) -> float:
            home = scratch / f"hf-{r}"
            settle(args.settle)
            proc = subprocess.run(
                [sys.executable, "-c", PULL_TIMED, REPO, FILENAME], env={**env, "HF_HOME": str(home)}, capture_output=True, text=True, check=True
            )
            seconds, fetched = proc.stdout.split()
            assert int(fetched) == size
            shutil.rmtree(home)
            return float(seconds)

        def cli(r: int) -> float:
            home = scratch / f"hf-{r}"
            settle(args.settle)
            t = time.perf_counter()
            subprocess.run(
                [sys.executable, "-m", "qwenctl", "pull", f"{REPO}:{FILENAME}"], env={**env, "HF_HOME": str(home)}, capture_output=True, check=True
            )
            seconds = time.perf_counter() - t
            shutil.rmtree(home)
            return seconds

        curl(False)  # warm-up, untimed: server, loopback and page cache as in every later round
        print(f"{platform.node()} {platform.machine()}, {os.cpu_count()} CPUs, python {platform.python_version()}, file {size / 1e6:.0f} MB")
        print(f"{'round':>5} {'curl MB/s':>10} {'+fsync':>8} {'pull MB/s':>10} {'pull/curl':>10} {'pull/(curl+fsync)':>18}" + (f" {'cli MB/s':>9}" if args.cli else ""))
        times: dict[str, list[float]] = {"curl": [], "curl+fsync": [], "pull": [], "cli": []}
        for r in range(1, args.rounds + 1):
            jobs = [("curl", lambda: curl(False)), ("curl+fsync", lambda: curl(True)), ("pull", lambda r=r: pull(r))]
            if args.cli:
                jobs.append(("cli", lambda r=r: cli(r)))
            for name, job in jobs if r % 2 else reversed(jobs):
                times[name].append(job())
            c, cf, p = times["curl"][-1], times["curl+fsync"][-1], times["pull"][-1]
            line = f"{r:>5} {size / c / 1e6:>10.0f} {size / cf / 1e6:>8.0f} {size / p / 1e6:>10.0f} {c / p:>10.2f} {cf / p:>18.2f}"
            print(line + (f" {size / times['cli'][-1] / 1e6:>9.0f}" if args.cli else ""), flush=True)
        med = {k: statistics.median(v) for k, v in times.items() if v}
        mbs = {k: size / v / 1e6 for k, v in med.items()}
        print(
            f"median: curl {mbs['curl']:.0f} MB/s, curl+fsync {mbs['curl+fsync']:.0f} MB/s, fetch.pull {mbs['pull']:.0f} MB/s (verified, fsynced)"
            + (f", qwenctl pull {mbs['cli']:.0f} MB/s" if args.cli else "")
        )
        print(
            f"throughput ratio fetch.pull / curl = {med['curl'] / med['pull']:.2f}   fetch.pull / (curl+fsync) = {med['curl+fsync'] / med['pull']:.2f}"
            + (f"   qwenctl pull (CLI) / curl = {med['curl'] / med['cli']:.2f}" if args.cli else "")
            + "   (goal >= 0.9)"
        )
    finally:
        server.kill()
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
