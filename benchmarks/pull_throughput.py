"""Pull throughput from a loopback fake hub, against curl fetching the same file from the same server.

    python benchmarks/pull_throughput.py [--size-mb 1000] [--rounds 3]

The fake hub (tests/fakehub.py) runs in its own process and sends the file with
sendfile(2), so the server is not what is measured. Each round, alternately:

- curl:   ``curl -sL -o OUT URL`` (follows the hub's 302 to the "CDN" port, like the client);
- pull:   ``qwenctl.fetch.pull`` in a fresh process with a fresh HF cache, timed around the
          call: repo info + file list, the download, the SHA-256 check, the cache links;
- cli:    ``qwenctl pull REPO:FILE`` wall time, interpreter start-up and imports included.

Prints each round and the medians; the figure of merit is curl time / pull time
(1.0 = as fast as curl; the goal is >= 0.9). curl neither verifies nor fsyncs; qwenctl
does both (SHA-256 while downloading, fsync before the blob is moved into place), so on
a slow disk the pull is bounded by the disk, curl by the page cache.
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size-mb", type=int, default=1000, help="file size in MB (10^6 bytes), default 1000")
    ap.add_argument("--rounds", type=int, default=3)
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
        print(f"{platform.node()} {platform.machine()}, {os.cpu_count()} CPUs, python {platform.python_version()}, file {size / 1e6:.0f} MB")
        print(f"{'round':>5} {'curl MB/s':>10} {'pull MB/s':>10} {'cli MB/s':>10} {'pull/curl':>10} {'cli/curl':>9}")
        curl_s, pull_s, cli_s = [], [], []
        for r in range(1, args.rounds + 1):
            out = scratch / "curl.out"
            os.sync()  # each run starts with no writeback pending from the previous one
            t = time.perf_counter()
            subprocess.run(["curl", "-sSfL", "-o", str(out), url], check=True)
            curl_s.append(time.perf_counter() - t)
            assert out.stat().st_size == size
            out.unlink()

            home = scratch / f"hf-{r}"
            os.sync()
            proc = subprocess.run(
                [sys.executable, "-c", PULL_TIMED, REPO, FILENAME], env={**env, "HF_HOME": str(home)}, capture_output=True, text=True, check=True
            )
            seconds, fetched = proc.stdout.split()
            assert int(fetched) == size
            pull_s.append(float(seconds))
            shutil.rmtree(home)

            os.sync()
            t = time.perf_counter()
            subprocess.run(
                [sys.executable, "-m", "qwenctl", "pull", f"{REPO}:{FILENAME}"], env={**env, "HF_HOME": str(home)}, capture_output=True, check=True
            )
            cli_s.append(time.perf_counter() - t)
            shutil.rmtree(home)
            print(
                f"{r:>5} {size / curl_s[-1] / 1e6:>10.0f} {size / pull_s[-1] / 1e6:>10.0f} {size / cli_s[-1] / 1e6:>10.0f}"
                f" {curl_s[-1] / pull_s[-1]:>10.2f} {curl_s[-1] / cli_s[-1]:>9.2f}"
            )
        c, p, k = (statistics.median(x) for x in (curl_s, pull_s, cli_s))
        print(f"median: curl {size / c / 1e6:.0f} MB/s, fetch.pull {size / p / 1e6:.0f} MB/s (verified), qwenctl pull {size / k / 1e6:.0f} MB/s")
        print(f"throughput ratio fetch.pull / curl = {c / p:.2f}   qwenctl pull (CLI, with start-up) / curl = {c / k:.2f}   (goal >= 0.9)")
    finally:
        server.kill()
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
