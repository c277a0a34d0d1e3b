"""The download's own connection reads 1 MiB per socket read while its body streams, and only then.

A guard for fetch/download.py's `larger_reads`: it reaches the connection through httpx2's and
httpcore2's stream objects, so an upgrade that lays them out otherwise fails here (the pull itself would
still work, at 64 KiB per read and about a fifth slower where the disk is fast; docs/models.md).
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from fakehub import FakeHub  # noqa: E402

from qwenctl import fetch  # noqa: E402
from qwenctl.fetch import download  # noqa: E402

REPO, NAME = "Qwen/Qwen2.5-0.5B-Instruct-GGUF", "qwen2.5-0.5b-instruct-q4_k_m.gguf"
DATA = hashlib.sha256(b"seed").digest() * 100_000  # 3.2 MB


def test_the_download_connection_reads_a_mebibyte_at_a_time_and_only_while_it_downloads(tmp_path, monkeypatch):
    from httpcore2._sync.http11 import HTTP11Connection

    seen = []
    real = download.larger_reads

    def spy(response):
        undo = real(response)
        connection = download.connection_of(response)
        seen.append(connection.READ_NUM_BYTES)

        def undo_and_check():
            assert undo is not None
            undo()
            seen.append(connection.READ_NUM_BYTES)

        return undo_and_check

    monkeypatch.setattr(download, "larger_reads", spy)
    with FakeHub({REPO: {NAME: DATA}}) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        files = fetch.pull(REPO, [NAME])
    assert Path(files.load_path).read_bytes() == DATA
    assert seen == [download._READ_BYTES, HTTP11Connection.READ_NUM_BYTES]
    assert HTTP11Connection.READ_NUM_BYTES == 64 * 1024  # the class, for every other connection, untouched
