"""A local stand-in for the Hugging Face Hub, for tests and benchmarks (no pytest needed).

It speaks the part of the Hub protocol that huggingface_hub 2.4.0 uses to download
model repos, checked against that version's source (``file_download.py``,
``hf_api.py``, ``utils/_http.py``):

- ``HEAD``/``GET /{repo}/resolve/{revision}/{filename}``: answers ``X-Repo-Commit``
  and ``ETag``; for LFS files (``*.gguf``, ``*.safetensors``, anything over 10 MB)
  a ``302`` to a second origin (the "CDN", another port, as the real hub's CDN is
  another host) with ``X-Linked-Etag`` (the sha256) and ``X-Linked-Size``; small git
  files are served directly with their git blob sha1 as ETag, as the real hub does.
- ``GET`` on the CDN honours ``Range: bytes=N-`` (206 + ``Content-Range``).
- ``GET /api/models/{repo}[/revision/{rev}]``: repo info with ``sha`` and ``siblings``.
- ``GET /api/models/{repo}/tree/{rev}[/{path}]?recursive=true``: entries with ``oid``,
  ``size`` and, for LFS files, ``lfs: {oid, size, pointerSize}``.
- ``POST /api/models/{repo}/paths-info/{rev}``: the same entries for given paths.
- Errors carry ``X-Error-Code`` (``RepoNotFound``, ``RevisionNotFound``,
  ``EntryNotFound``, ``GatedRepo``) so huggingface_hub raises its typed errors.

Fault injection (``FakeHub.fault``): an HTTP status on ``resolve``, a connection dropped
after N body bytes, one corrupted byte, a throttled body, a Range header ignored, a function
called after N body bytes, an API answer of an unexpected shape. Counters record the body
bytes sent per file and every request, so a test can assert what was (not) fetched.

Files are given as ``{repo: {filename: bytes | Path}}``; paths are streamed from disk
with ``sendfile`` when no fault applies, so a benchmark measures the client, not us.

    with FakeHub({"Qwen/Qwen2.5-0.5B-Instruct-GGUF": {"a.gguf": b"..."}}) as hub:
        env = {"HF_ENDPOINT": hub.url, "HF_HOME": "/tmp/x"}
"""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import re
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, quote, unquote, urlsplit

LFS_SUFFIXES = (".gguf", ".safetensors", ".bin", ".npz")
LFS_MIN_SIZE = 10 * 1000 * 1000  # larger files go to LFS whatever their name (the Hub's own rule of thumb)
_CHUNK = 1 << 20


@dataclass
class Blob:
    """One file of a repo: its content (in memory or on disk) and the hashes the Hub reports."""

    filename: str
    data: bytes | None
    path: Path | None
    size: int
    sha256: str
    git_oid: str

    @property
    def is_lfs(self) -> bool:
        return self.filename.endswith(LFS_SUFFIXES) or self.size > LFS_MIN_SIZE

    @property
    def etag(self) -> str:
        return self.sha256 if self.is_lfs else self.git_oid

    def read(self, start: int, length: int) -> bytes:
        if self.data is not None:
            return self.data[start : start + length]
        assert self.path is not None
        with self.path.open("rb") as f:
            f.seek(start)
            return f.read(length)


def make_blob(filename: str, content: bytes | str | os.PathLike) -> Blob:
    sha256, git = hashlib.sha256(), hashlib.sha1()
    if isinstance(content, bytes):
        data, path, size = content, None, len(content)
        sha256.update(data)
        git.update(b"blob %d\0" % size)
        git.update(data)
    else:
        data, path = None, Path(content)
        size = path.stat().st_size
        git.update(b"blob %d\0" % size)
        with path.open("rb") as f:
            while chunk := f.read(8 << 20):
                sha256.update(chunk)
                git.update(chunk)
    return Blob(filename, data, path, size, sha256.hexdigest(), git.hexdigest())


@dataclass
class Fault:
    """What goes wrong for one file (or a whole repo when filename is None)."""

    repo: str | None = None
    filename: str | None = None
    status: int | None = None  # answer resolve (HEAD and GET) with this status
    error_code: str | None = None  # X-Error-Code sent with `status`
    drop_after: int | None = None  # close the connection after this many body bytes
    corrupt_at: int | None = None  # flip the byte at this file offset
    rate: float | None = None  # throttle the body to this many bytes/second
    ignore_range: bool | None = None  # answer 200 with the whole file to a Range request, as some proxies do
    times: int | None = None  # apply to this many requests, then vanish (None = always)
    # (N, fn): once the first N bytes of the file went out, call fn() on the hub's thread before sending more
    # (e.g. another program fills the client's disk mid-download)
    call_at: tuple[int, Callable[[], None]] | None = None
    api_body: bytes | None = None  # answer this API call ("info" or "tree" as the filename) with this body

    def matches(self, repo: str, filename: str) -> bool:
        return (self.repo in (None, repo)) and (self.filename in (None, filename))


@dataclass
class Repo:
    repo_id: str
    blobs: dict[str, Blob]
    commit: str
    gated_tokens: frozenset[str] | None = None  # None = not gated; else the tokens that were granted access


@dataclass
class RequestLog:
    method: str
    path: str
    range: str | None
    authorized: bool


@dataclass
class FakeHub:
    """A fake Hub (and its CDN) on 127.0.0.1, started in daemon threads."""

    files: dict[str, dict[str, bytes | str | os.PathLike]]
    gated: dict[str, set[str]] = field(default_factory=dict)  # repo -> tokens granted access
    repos: dict[str, Repo] = field(init=False, default_factory=dict)
    faults: list[Fault] = field(init=False, default_factory=list)
    bytes_sent: Counter = field(init=False, default_factory=Counter)  # "repo/filename" -> body bytes sent
    requests: list[RequestLog] = field(init=False, default_factory=list)
    url: str = field(init=False, default="")
    cdn_url: str = field(init=False, default="")

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._sending = 0  # bodies being sent right now
        self._servers: list[http.server.ThreadingHTTPServer] = []
        for repo_id, files in self.files.items():
            blobs = {name: make_blob(name, content) for name, content in files.items()}
            commit = hashlib.sha1(
                repo_id.encode() + b"".join(n.encode() + b.sha256.encode() for n, b in sorted(blobs.items()))
            ).hexdigest()
            tokens = self.gated.get(repo_id)
            self.repos[repo_id] = Repo(repo_id, blobs, commit, frozenset(tokens) if tokens is not None else None)

    # -- control ---------------------------------------------------------------------------

    def start(self) -> FakeHub:
        for role in ("hub", "cdn"):
            server = _QuietServer(("127.0.0.1", 0), _handler_for(self, role))
            server.daemon_threads = True
            threading.Thread(target=server.serve_forever, name=f"fakehub-{role}", daemon=True).start()
            self._servers.append(server)
            url = f"http://127.0.0.1:{server.server_address[1]}"
            if role == "hub":
                self.url = url
            else:
                self.cdn_url = url
        return self

    def stop(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()
        self._servers.clear()

    def __enter__(self) -> FakeHub:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def fault(self, filename: str | None = None, *, repo: str | None = None, **kind) -> Fault:
        """Add a fault for `filename` (every file when None); see `Fault` for the kinds."""
        f = Fault(repo=repo, filename=filename, **kind)
        with self._lock:
            self.faults.append(f)
        return f

    def clear_faults(self) -> None:
        with self._lock:
            self.faults.clear()

    def reset_counters(self) -> None:
        with self._lock:
            self.bytes_sent.clear()
            self.requests.clear()

    def wait_idle(self, timeout: float = 10.0) -> None:
        """Wait until no body is being sent, e.g. to a client that was just killed."""
        deadline = time.monotonic() + timeout
        while self._sending:
            if time.monotonic() > deadline:
                raise TimeoutError("fake hub still sending")
            time.sleep(0.01)

    def blob(self, repo: str, filename: str) -> Blob:
        return self.repos[repo].blobs[filename]

    def url_of(self, repo: str, filename: str, revision: str = "main") -> str:
        return f"{self.url}/{repo}/resolve/{quote(revision, safe='')}/{quote(filename)}"

    # -- used by the handler ---------------------------------------------------------------

    def _take_fault(self, repo: str, filename: str, want: str) -> Fault | None:
        """The first live fault of kind `want` for this file, consuming one of its `times`."""
        with self._lock:
            for f in self.faults:
                if getattr(f, want) is not None and f.matches(repo, filename) and f.times != 0:
                    if f.times is not None:
                        f.times -= 1
                    return f
        return None

    def _count(self, key: str, n: int) -> None:
        with self._lock:
            self.bytes_sent[key] += n

    def _log(self, entry: RequestLog) -> None:
        with self._lock:
            self.requests.append(entry)

    def _find_blob(self, sha256: str) -> tuple[Repo, Blob] | None:
        for repo in self.repos.values():
            for blob in repo.blobs.values():
                if blob.sha256 == sha256:
                    return repo, blob
        return None


_RESOLVE = re.compile(r"^/(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<file>.+)$")
_API = re.compile(r"^/api/models/(?P<repo>[^/]+/[^/]+)(?:/(?P<op>revision|tree|paths-info)/(?P<rev>[^/]+)(?:/(?P<path>.*))?)?$")
_CDN = re.compile(r"^/cdn/(?P<sha>[0-9a-f]{64})$")


class _QuietServer(http.server.ThreadingHTTPServer):
    """A client that hangs up mid-request (a pull stopped by a full disk) is no error of the hub's:
    socketserver would print its traceback into the stderr the test is reading."""

    def handle_error(self, request, client_address) -> None:
        import sys

        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


def _handler_for(hub: FakeHub, role: str) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(_Handler):
        pass

    Handler.hub = hub
    Handler.role = role
    return Handler


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as huggingface_hub's httpx client reuses connections
    hub: FakeHub
    role: str

    def log_message(self, format, *args) -> None:  # quiet: tests read hub.requests instead
        pass

    # -- dispatch ----------------------------------------------------------------------------

    def do_HEAD(self) -> None:
        self._dispatch(head=True)

    def do_GET(self) -> None:
        self._dispatch(head=False)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self._body = self.rfile.read(length) if length else b""
        self._dispatch(head=False)

    def _dispatch(self, head: bool) -> None:
        url = urlsplit(self.path)
        path = url.path
        self.hub._log(
            RequestLog(self.command, self.path, self.headers.get("Range"), "authorization" in {k.lower() for k in self.headers})
        )
        if self.role == "cdn":
            m = _CDN.match(path)
            found = self.hub._find_blob(m["sha"]) if m else None
            if not found:
                return self._error(404, "EntryNotFound", "no such object", head)
            return self._send_file(found[0], found[1], head, cdn=True)
        if m := _RESOLVE.match(path):
            return self._resolve(m["repo"], unquote(m["rev"]), unquote(m["file"]), head)
        if m := _API.match(path):
            return self._api(m["repo"], m["op"], unquote(m["rev"] or ""), unquote(m["path"] or ""), parse_qs(url.query), head)
        self._error(404, None, "not found", head)

    # -- helpers -----------------------------------------------------------------------------

    def _send(self, status: int, headers: dict[str, str], body: bytes = b"", head: bool = False) -> None:
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", headers.get("Content-Length", str(len(body))))
        self.end_headers()
        if not head and body:
            self.wfile.write(body)

    def _json(self, doc, head: bool, extra: dict[str, str] | None = None) -> None:
        self._send(200, {"Content-Type": "application/json", **(extra or {})}, json.dumps(doc).encode(), head)

    def _error(self, status: int, code: str | None, message: str, head: bool, commit: str | None = None) -> None:
        headers = {"Content-Type": "application/json", "X-Error-Message": message}
        if code:
            headers["X-Error-Code"] = code
        if commit:
            headers["X-Repo-Commit"] = commit
        self._send(status, headers, json.dumps({"error": message}).encode(), head)

    def _token(self) -> str | None:
        auth = self.headers.get("Authorization") or ""
        return auth[len("Bearer ") :] if auth.startswith("Bearer ") else None

    def _repo(self, repo_id: str, head: bool) -> Repo | None:
        repo = self.hub.repos.get(repo_id)
        if repo is None:
            # the real Hub answers 401 to anonymous callers, so private and missing repos look alike
            status = 404 if self._token() else 401
            self._error(status, "RepoNotFound", "Repository not found", head)
        return repo

    def _revision_ok(self, repo: Repo, rev: str, head: bool) -> bool:
        if rev in ("main", repo.commit):
            return True
        self._error(404, "RevisionNotFound", f"Invalid rev id: {rev}", head)
        return False

    # -- endpoints ---------------------------------------------------------------------------

    def _resolve(self, repo_id: str, rev: str, filename: str, head: bool) -> None:
        repo = self._repo(repo_id, head)
        if repo is None or not self._revision_ok(repo, rev, head):
            return
        if repo.gated_tokens is not None and self._token() not in repo.gated_tokens:
            status = 403 if self._token() else 401
            msg = f"Access to model {repo_id} is restricted. You must have access to it and be authenticated to access it."
            return self._error(status, "GatedRepo", msg, head)
        if fault := self.hub._take_fault(repo_id, filename, "status"):
            assert fault.status is not None
            return self._error(fault.status, fault.error_code, f"injected {fault.status}", head, commit=repo.commit)
        blob = repo.blobs.get(filename)
        if blob is None:
            return self._error(404, "EntryNotFound", f"{filename} does not exist on {rev}", head, commit=repo.commit)
        if blob.is_lfs:
            self._send(
                302,
                {
                    "Location": f"{self.hub.cdn_url}/cdn/{blob.sha256}",
                    "X-Repo-Commit": repo.commit,
                    "X-Linked-Etag": f'"{blob.sha256}"',
                    "X-Linked-Size": str(blob.size),
                    "ETag": f'"{blob.git_oid}"',
                },
                head=True,
            )
            return
        self._send_file(repo, blob, head, cdn=False)

    def _send_file(self, repo: Repo, blob: Blob, head: bool, cdn: bool) -> None:
        start, status = 0, 200
        rng = self.headers.get("Range")
        if rng and self.hub._take_fault(repo.repo_id, blob.filename, "ignore_range"):
            rng = None
        if rng and (m := re.fullmatch(r"bytes=(\d+)-(\d*)", rng.strip())):
            start = int(m[1])
            end = int(m[2]) + 1 if m[2] else blob.size
            if start >= blob.size:
                return self._send(416, {"Content-Range": f"bytes */{blob.size}"}, head=head)
            status = 206
        else:
            end = blob.size
        headers = {
            "Content-Type": "application/octet-stream",
            "ETag": f'"{blob.sha256 if cdn else blob.etag}"',
            "Accept-Ranges": "bytes",
            "Content-Length": str(end - start),
            "X-Repo-Commit": repo.commit,
        }
        if status == 206:
            headers["Content-Range"] = f"bytes {start}-{end - 1}/{blob.size}"
        self._send(status, headers, head=True)  # headers only; the body follows
        if head:
            return
        self._send_body(repo.repo_id, blob, start, end)

    def _send_body(self, repo_id: str, blob: Blob, start: int, end: int) -> None:
        with self.hub._lock:
            self.hub._sending += 1
        try:
            self._send_body_counted(repo_id, blob, start, end)
        finally:
            with self.hub._lock:
                self.hub._sending -= 1

    def _send_body_counted(self, repo_id: str, blob: Blob, start: int, end: int) -> None:
        key = f"{repo_id}/{blob.filename}"
        drop = self.hub._take_fault(repo_id, blob.filename, "drop_after")
        corrupt = self.hub._take_fault(repo_id, blob.filename, "corrupt_at")
        throttle = self.hub._take_fault(repo_id, blob.filename, "rate")
        hook = self.hub._take_fault(repo_id, blob.filename, "call_at")
        call_at, call = hook.call_at if hook is not None and hook.call_at else (None, None)
        if blob.path is not None and not (drop or corrupt or throttle or hook):
            self.wfile.flush()
            with blob.path.open("rb") as f:
                sent = self.connection.sendfile(f, offset=start, count=end - start)
            self.hub._count(key, sent)
            return
        pos, began = start, time.monotonic()
        chunk = 64 << 10 if throttle else _CHUNK
        while pos < end:
            n = min(chunk, end - pos)
            if drop is not None and drop.drop_after is not None:
                n = min(n, start + drop.drop_after - pos)
                if n <= 0:
                    self._drop()
                    return
            if call_at is not None and pos < call_at:
                n = min(n, call_at - pos)
            elif call is not None and pos >= call_at:
                self.wfile.flush()
                call()
                call = None
            data = blob.read(pos, n)
            if corrupt is not None and corrupt.corrupt_at is not None and pos <= corrupt.corrupt_at < pos + n:
                i = corrupt.corrupt_at - pos
                data = data[:i] + bytes([data[i] ^ 0xFF]) + data[i + 1 :]
            try:
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True
                return
            self.hub._count(key, len(data))
            pos += len(data)
            if throttle is not None and throttle.rate:
                ahead = (pos - start) / throttle.rate - (time.monotonic() - began)
                if ahead > 0:
                    time.sleep(ahead)

    def _drop(self) -> None:
        """Close the socket mid-body, as a failing proxy or a reset connection would."""
        self.close_connection = True
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _entry(self, blob: Blob) -> dict:
        entry = {"type": "file", "oid": blob.git_oid, "size": blob.size, "path": blob.filename}
        if blob.is_lfs:
            entry["lfs"] = {"oid": blob.sha256, "size": blob.size, "pointerSize": 134}
        return entry

    def _api(self, repo_id: str, op: str | None, rev: str, path: str, query: dict, head: bool) -> None:
        repo = self._repo(repo_id, head)
        if repo is None:
            return
        odd = self.hub._take_fault(repo_id, "tree" if op == "tree" else "info", "api_body")
        if odd is not None and odd.api_body is not None:
            return self._send(200, {"Content-Type": "application/json"}, odd.api_body, head)
        if op is None or op == "revision":
            if op and not self._revision_ok(repo, rev, head):
                return
            return self._json(
                {
                    "id": repo_id,
                    "modelId": repo_id,
                    "sha": repo.commit,
                    "private": False,
                    "gated": "manual" if repo.gated_tokens is not None else False,
                    "siblings": [{"rfilename": name} for name in sorted(repo.blobs)],
                },
                head,
            )
        if not self._revision_ok(repo, rev, head):
            return
        if op == "tree":
            recursive = query.get("recursive", ["false"])[0].lower() in ("1", "true")
            prefix = f"{path.rstrip('/')}/" if path else ""
            entries, folders = [], set()
            for name in sorted(repo.blobs):
                if not name.startswith(prefix):
                    continue
                rest = name[len(prefix) :]
                parts = rest.split("/")
                if len(parts) > 1:
                    for i in range(1, len(parts) if recursive else 2):
                        folders.add(prefix + "/".join(parts[:i]))
                    if not recursive:
                        continue
                entries.append(self._entry(repo.blobs[name]))
            dirs = [{"type": "directory", "oid": hashlib.sha1(d.encode()).hexdigest(), "size": 0, "path": d} for d in sorted(folders)]
            return self._json(dirs + entries, head)
        # paths-info: form-encoded or JSON body with "paths"
        body = getattr(self, "_body", b"")
        try:
            paths = json.loads(body)["paths"]
        except (ValueError, KeyError, TypeError):
            paths = parse_qs(body.decode()).get("paths", [])
        return self._json([self._entry(repo.blobs[p]) for p in paths if p in repo.blobs], head)


def serve(files: dict[str, dict[str, bytes | str | os.PathLike]], **kwargs) -> FakeHub:
    """Start a fake hub serving `files` ({repo: {filename: bytes or path}}); call .stop() when done.

    Prefer `with FakeHub(files) as hub:` where a block fits.
    """
    return FakeHub(files, **kwargs).start()


def main(argv: list[str] | None = None) -> None:
    """`python tests/fakehub.py REPO FILENAME=PATH [FILENAME=PATH ...]`: serve until killed.

    Prints the hub URL on the first line of stdout, so a benchmark or another tool can
    point HF_ENDPOINT at it from a separate process.
    """
    import sys

    args = sys.argv[1:] if argv is None else argv
    if len(args) < 2 or any("=" not in a for a in args[1:]):
        raise SystemExit(main.__doc__)
    hub = FakeHub({args[0]: {name: Path(path) for name, path in (a.split("=", 1) for a in args[1:])}}).start()
    print(hub.url, flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        hub.stop()


if __name__ == "__main__":
    main()
