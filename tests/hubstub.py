"""A stand-in Hugging Face hub on 127.0.0.1, speaking enough of the protocol for huggingface_hub.

Serves:
- `GET /api/models/{org}/{repo}` and `/api/models/{org}/{repo}/revision/{rev}`: model info
  with `sha` and `siblings` (`rfilename`; `size`, `blobId`, `lfs` when `?blobs=true`);
- `HEAD`/`GET /{org}/{repo}/resolve/{rev}/{path}` with Range support and the headers
  huggingface_hub reads (X-Repo-Commit, ETag, X-Linked-Etag, X-Linked-Size,
  Content-Length, Accept-Ranges, Content-Range);
- hub-style 404s (`X-Error-Code: RepoNotFound | RevisionNotFound | EntryNotFound`);
- `GET /_blobs/{sha256}`: a file's bytes by digest (Range too), the target of redirects.

Knobs per file (attributes of the `StubFile` that `add_file` returns):
`served_sha256` (lie in the metadata), `cut_after` + `cut_times` (drop the connection
after N body bytes), `delay` (seconds per chunk), `gate` (a `threading.Event` the
body waits for), `redirect_to` (GETs of the resolve URL answer 302 to this URL, absolute
or relative; `hub.blob_url(f)` is this stub's own copy), and the counters `gets` /
`ranges` (Range header of each GET) and `redirects`.

    with HubStub() as hub:
        f = hub.add_file("org/repo", "model.gguf", data)
        Store(root, endpoint=hub.endpoint).pull("hf://org/repo/model.gguf")
        assert f.gets == 1
"""

from __future__ import annotations

import hashlib
import json
import re
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from urllib.parse import parse_qs, unquote, urlsplit

_RANGE_RE = re.compile(r"bytes=(\d*)-(\d*)")


@dataclass
class StubFile:
    repo: str
    filename: str
    data: bytes
    revision_sha: str
    lfs: bool = True
    served_sha256: str = ""  # what the metadata claims; defaults to the real digest
    cut_after: int | None = None  # drop the connection after this many body bytes ...
    cut_times: int = 1  # ... for this many GETs
    delay: float = 0.0  # seconds to sleep between chunks
    chunk_size: int = 16 << 10
    gate: threading.Event | None = None  # GET bodies wait for this before the first byte
    redirect_to: str | None = None  # GETs of the resolve URL answer 302 to this
    redirects: int = 0
    gets: int = 0
    heads: int = 0
    ranges: list[str | None] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.served_sha256:
            self.served_sha256 = self.sha256

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @property
    def git_sha1(self) -> str:
        return hashlib.sha1(b"blob %d\0" % len(self.data) + self.data).hexdigest()


@dataclass
class _Repo:
    branches: dict[str, str] = field(default_factory=dict)  # branch/tag -> commit
    commits: dict[str, dict[str, StubFile]] = field(default_factory=dict)


class HubStub:
    """A threaded HTTP server standing in for huggingface.co. Use as a context manager."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.repos: dict[str, _Repo] = {}
        self.requests: list[tuple[str, str]] = []  # (method, path)
        self.authorizations: list[tuple[str, str | None]] = []  # (path, Authorization header)
        self.lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- content -------------------------------------------------------------------------

    def add_file(
        self,
        repo: str,
        filename: str,
        data: bytes,
        revision_sha: str | None = None,
        *,
        branch: str = "main",
        lfs: bool = True,
    ) -> StubFile:
        """Add `filename` to `repo` at commit `revision_sha` (default: the branch head).

        A new commit starts from the branch head's files, and the branch moves to it.
        """
        with self.lock:
            r = self.repos.setdefault(repo, _Repo())
            head = r.branches.get(branch)
            if revision_sha is None:
                revision_sha = head or hashlib.sha1(f"{repo}@{branch}".encode()).hexdigest()
            if revision_sha not in r.commits:
                r.commits[revision_sha] = dict(r.commits.get(head, {})) if head else {}
            f = StubFile(
                repo=repo, filename=filename, data=data, revision_sha=revision_sha, lfs=lfs
            )
            r.commits[revision_sha][filename] = f
            r.branches[branch] = revision_sha
            return f

    def file(self, repo: str, filename: str, revision: str = "main") -> StubFile:
        commit = self._commit(repo, revision)
        assert commit is not None, f"no {repo}@{revision}"
        return self.repos[repo].commits[commit][filename]

    def blob_url(self, f: StubFile, relative: bool = False) -> str:
        """Where this stub serves `f`'s bytes by digest (a redirect target)."""
        path = f"/_blobs/{f.sha256}"
        return path if relative else self.endpoint + path

    def _by_digest(self, sha256: str) -> StubFile | None:
        with self.lock:
            for r in self.repos.values():
                for files in r.commits.values():
                    for f in files.values():
                        if f.sha256 == sha256:
                            return f
        return None

    def _commit(self, repo: str, revision: str) -> str | None:
        r = self.repos.get(repo)
        if r is None:
            return None
        if revision in r.branches:
            return r.branches[revision]
        if revision in r.commits:
            return revision
        return None

    # -- server --------------------------------------------------------------------------

    @property
    def port(self) -> int:
        assert self._server is not None, "HubStub not started"
        return int(self._server.server_address[1])

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> HubStub:
        stub = self

        class Handler(_Handler):
            hub = stub

        server = ThreadingHTTPServer((self.host, 0), Handler)
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="hubstub", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            for r in self.repos.values():  # release anything parked on a gate
                for files in r.commits.values():
                    for f in files.values():
                        if f.gate is not None:
                            f.gate.set()
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> HubStub:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def unused_endpoint() -> str:
    """An http://127.0.0.1:PORT where nothing listens (connections are refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


class _Handler(BaseHTTPRequestHandler):
    hub: HubStub
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    # -- plumbing ------------------------------------------------------------------------

    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)

    def _error(self, status: int, code: str, message: str) -> None:
        body = json.dumps({"error": message}).encode()
        headers = {"Content-Type": "application/json", "X-Error-Code": code}
        headers["X-Error-Message"] = message
        self._send(status, body, headers)

    def do_GET(self) -> None:
        self._route()

    def do_HEAD(self) -> None:
        self._route()

    def _route(self) -> None:
        url = urlsplit(self.path)
        path = url.path
        with self.hub.lock:
            self.hub.requests.append((self.command, path))
            self.hub.authorizations.append((path, self.headers.get("Authorization")))
        parts = [unquote(p) for p in path.strip("/").split("/")]
        try:
            if len(parts) >= 4 and parts[0] == "api" and parts[1] == "models":
                repo = f"{parts[2]}/{parts[3]}"
                revision = "main"
                if len(parts) >= 6 and parts[4] == "revision":
                    revision = "/".join(parts[5:])
                elif len(parts) != 4:
                    return self._error(404, "NotFound", "no such route")
                blobs = parse_qs(url.query).get("blobs", ["false"])[0].lower() == "true"
                return self._model_info(repo, revision, blobs)
            if len(parts) == 2 and parts[0] == "_blobs":
                blob = self.hub._by_digest(parts[1])
                if blob is None:
                    return self._error(404, "EntryNotFound", "no such blob")
                return self._serve(blob, {"Content-Type": "application/octet-stream"})
            if len(parts) >= 5 and parts[2] == "resolve":
                repo = f"{parts[0]}/{parts[1]}"
                return self._resolve(repo, parts[3], "/".join(parts[4:]))
            return self._error(404, "NotFound", "no such route")
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
            return None

    # -- API -----------------------------------------------------------------------------

    def _model_info(self, repo: str, revision: str, blobs: bool) -> None:
        if repo not in self.hub.repos:
            return self._error(404, "RepoNotFound", "Repository not found")
        commit = self.hub._commit(repo, revision)
        if commit is None:
            return self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
        files = self.hub.repos[repo].commits[commit]
        siblings = []
        for f in files.values():
            sib: dict[str, object] = {"rfilename": f.filename}
            if blobs:
                sib["size"] = len(f.data)
                sib["blobId"] = f.git_sha1
                if f.lfs:
                    sib["lfs"] = {
                        "sha256": f.served_sha256,
                        "size": len(f.data),
                        "pointerSize": 134,
                    }
            siblings.append(sib)
        body = json.dumps(
            {"_id": commit[:24], "id": repo, "modelId": repo, "sha": commit, "siblings": siblings}
        ).encode()
        return self._send(200, body, {"Content-Type": "application/json"})

    def _resolve(self, repo: str, revision: str, filename: str) -> None:
        if repo not in self.hub.repos:
            return self._error(404, "RepoNotFound", "Repository not found")
        commit = self.hub._commit(repo, revision)
        if commit is None:
            return self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
        f = self.hub.repos[repo].commits[commit].get(filename)
        if f is None:
            return self._error(404, "EntryNotFound", f"{filename} does not exist")
        etag = f.served_sha256 if f.lfs else f.git_sha1
        size = len(f.data)
        headers = {
            "X-Repo-Commit": commit,
            "ETag": f'"{etag}"',
            "Accept-Ranges": "bytes",
            "Content-Type": "application/octet-stream",
        }
        if f.lfs:
            headers["X-Linked-Etag"] = f'"{etag}"'
            headers["X-Linked-Size"] = str(size)
        if f.redirect_to is not None and self.command == "GET":
            with self.hub.lock:
                f.redirects += 1
            return self._send(302, b"", {**headers, "Location": f.redirect_to})
        return self._serve(f, headers)

    def _serve(self, f: StubFile, headers: dict[str, str]) -> None:
        """The file's bytes (HEAD: its headers), honouring Range and the file's knobs."""
        size = len(f.data)
        range_header = self.headers.get("Range")
        if self.command == "HEAD":
            with self.hub.lock:
                f.heads += 1
            self.send_response(200)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(size))
            self.end_headers()
            return None

        with self.hub.lock:
            f.gets += 1
            f.ranges.append(range_header)
            cut = f.cut_after if f.cut_times > 0 else None
            if cut is not None:
                f.cut_times -= 1

        start, end = 0, size - 1
        status = 200
        if range_header:
            m = _RANGE_RE.fullmatch(range_header.strip())
            if m is None or not m.group(1):
                return self._error(400, "BadRequest", f"unsupported range {range_header}")
            start = int(m.group(1))
            if m.group(2):
                end = min(int(m.group(2)), size - 1)
            if start >= size or start > end:
                headers["Content-Range"] = f"bytes */{size}"
                return self._send(416, b"", headers)
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        body = f.data[start : end + 1]

        if f.gate is not None:
            f.gate.wait(timeout=30)

        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        sent = 0
        while sent < len(body):
            n = f.chunk_size
            if cut is not None:
                n = min(n, cut - sent)
                if n <= 0:
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return None
            self.wfile.write(body[sent : sent + n])
            sent += n
            if f.delay:
                self.wfile.flush()
                time.sleep(f.delay)
        return None
