"""The only module that talks to the Hugging Face hub (through huggingface_hub).

- `parse_ref("hf://org/repo/path/file.gguf@rev")`: a `HubRef`; the file part may be a
  glob, matched against the repo's `.gguf` files (exactly one must match).
- `HubClient.resolve_any(ref)`: a reference to a `.gguf` file, or to a model folder
  (ONNX: the folder's files, each pinned the same way).
- `HubClient.resolve(ref)`: pins the revision to a commit sha and takes the file's
  LFS sha256 and size from the hub's metadata (`model_info(files_metadata=True)`).
- `HubClient.download(remote, dest)`: streams the pinned resolve URL into `dest`
  (a `.partial` file), resuming with a Range request when `dest` already holds a
  prefix, hashing as it goes. It never publishes anything: the store does that
  after checking the digest. Redirects (the hub sends file bodies to a CDN) are
  followed only to https URLs on public addresses, or, when the endpoint itself is
  http or private (a mirror, the tests' stand-in), only within the endpoint's own
  host; anything else fails as `HubError("redirect to ... refused: ...")`.
"""

from __future__ import annotations

import errno
import fnmatch
import hashlib
import ipaddress
import os
import re
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx2
from huggingface_hub import HfApi, constants, hf_hub_url
from huggingface_hub.errors import (
    DisabledRepoError,
    GatedRepoError,
    HfHubHTTPError,
    OfflineModeIsEnabled,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.utils import (  # type: ignore[attr-defined]  # public, lazily exported
    build_hf_headers,
    hf_raise_for_status,
    http_stream_backoff,
)

from appliance.store.errors import (
    AmbiguousFileError,
    DiskFullError,
    DownloadInterruptedError,
    HubError,
    HubUnavailableError,
    IntegrityError,
    InvalidNameError,
    NotFoundError,
)
from appliance.store.gguf_meta import shard_info
from appliance.store.model_folder import (
    ModelFolderError,
    folder_files,
    folder_prefix,
    remote_folder_problem,
)

SCHEME = "hf://"
CHUNK_SIZE = 1 << 20
_GLOB_CHARS = frozenset("*?[")
_REPO_PART_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}")
_COMMIT_RE = re.compile(r"[0-9a-f]{40}")
OFFLINE_HINT = "on an offline box, copy the .gguf file over and run `appliance import PATH` instead"

ProgressFn = Callable[[int, int], None]
ResolveFn = Callable[[str, int], list[str]]  # host, port -> the addresses it resolves to
MAX_REDIRECTS = 10
_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True)
class HubRef:
    """`hf://org/repo/path/in/repo.gguf[@revision]`, parsed. `pattern` may be a glob."""

    repo: str
    pattern: str
    revision: str | None = None

    @property
    def is_glob(self) -> bool:
        return any(c in _GLOB_CHARS for c in self.pattern)

    def __str__(self) -> str:
        rev = f"@{self.revision}" if self.revision else ""
        return f"{SCHEME}{self.repo}/{self.pattern}{rev}"


@dataclass(frozen=True)
class RemoteFile:
    """One file on the hub, pinned to a commit, with the digest and size it must have."""

    repo: str
    filename: str
    revision: str  # commit sha
    sha256: str  # "" for a small file the hub keeps in git, not LFS: then `git_sha1` is set
    size: int
    url: str
    git_sha1: str | None = None

    @property
    def source(self) -> str:
        return f"{SCHEME}{self.repo}/{self.filename}@{self.revision}"


@dataclass(frozen=True)
class RemoteFolder:
    """A model folder on the hub (an ONNX model), pinned to a commit: the files to fetch."""

    repo: str
    path: str  # the folder in the repo, "." for its root
    revision: str
    files: tuple[RemoteFile, ...]

    @property
    def source(self) -> str:
        where = "" if self.path == "." else f"/{self.path}"
        return f"{SCHEME}{self.repo}{where}@{self.revision}"

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)

    def relative(self, f: RemoteFile) -> str:
        return f.filename if self.path == "." else f.filename[len(self.path) + 1 :]


def is_hub_ref(ref: str) -> bool:
    return ref.startswith(SCHEME)


def parse_ref(ref: str) -> HubRef:
    """Parse `hf://org/repo[/path/file.gguf][@revision]`; raise `InvalidNameError` if malformed.

    With no file part the pattern is `*.gguf` (the repo must then hold exactly one).
    """
    if not ref.startswith(SCHEME):
        raise InvalidNameError(f"not a hub reference: {ref!r} (expected hf://org/repo/file.gguf)")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in ref):
        raise InvalidNameError(f"hub reference {ref!r} contains control characters")
    body = ref[len(SCHEME) :]
    revision: str | None = None
    if "@" in body:
        body, _, revision = body.rpartition("@")
        if not revision:
            raise InvalidNameError(f"hub reference {ref!r} has an empty revision after '@'")
        if revision.startswith("/") or ".." in revision.split("/"):
            raise InvalidNameError(f"hub reference {ref!r} has an invalid revision {revision!r}")
    parts = body.split("/")
    if len(parts) < 2 or not parts[0] or not parts[1]:
        raise InvalidNameError(
            f"hub reference {ref!r} must name a repository: hf://org/repo/file.gguf"
        )
    org, name = parts[0], parts[1]
    for part in (org, name):
        if not _REPO_PART_RE.fullmatch(part) or ".." in part:
            raise InvalidNameError(f"hub reference {ref!r}: {part!r} is not a valid repo name")
    path_parts = parts[2:]
    if path_parts and path_parts[-1] == "":
        path_parts = path_parts[:-1]
    pattern = "/".join(path_parts) or "*.gguf"
    if any(p in ("", ".", "..") for p in path_parts) or "\\" in pattern:
        raise InvalidNameError(f"hub reference {ref!r} has an invalid file path {pattern!r}")
    return HubRef(repo=f"{org}/{name}", pattern=pattern, revision=revision)


def select_file(ref: HubRef, filenames: list[str]) -> str:
    """Pick the one `.gguf` file `ref.pattern` names among a repo's files.

    Globs match case-insensitively against `.gguf` files only. Raises `NotFoundError`
    (no match), `AmbiguousFileError` (several, or a split `-0000N-of-0000M` set).
    """
    ggufs = sorted(f for f in filenames if f.lower().endswith(".gguf"))
    if ref.is_glob:
        pat = ref.pattern.lower()
        matches = [f for f in ggufs if fnmatch.fnmatchcase(f.lower(), pat)]
    else:
        matches = [f for f in filenames if f == ref.pattern]
    if not matches:
        listed = _listing(ggufs)
        raise NotFoundError(
            f"no file in {ref.repo} matches {ref.pattern!r}; .gguf files there: {listed}"
        )
    shards = [m for m in matches if shard_info(m) is not None]
    if shards and len(shards) == len(matches):
        raise AmbiguousFileError(
            f"{shards[0]} in {ref.repo} is part of a split GGUF ({len(shards)} matching part(s)); "
            "split models are not supported yet: pick a single-file quantization, "
            "or merge the parts with llama-gguf-split --merge and `appliance import` the result"
        )
    if len(matches) > 1:
        raise AmbiguousFileError(
            f"{ref.pattern!r} matches {len(matches)} files in {ref.repo}: {_listing(matches)}; "
            "make the pattern match exactly one"
        )
    chosen = matches[0]
    if not chosen.lower().endswith(".gguf"):
        raise AmbiguousFileError(f"{chosen} in {ref.repo} is not a .gguf file")
    return chosen


def _listing(names: list[str], limit: int = 20) -> str:
    if not names:
        return "(none)"
    shown = ", ".join(names[:limit])
    return shown + (f", ... ({len(names) - limit} more)" if len(names) > limit else "")


def _origin(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    return scheme, (parts.hostname or "").lower(), port or _DEFAULT_PORTS.get(scheme, 0)


def shown_url(url: str) -> str:
    """A URL for a message: scheme, host and path; the query (signatures, tokens) left out."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        port = ""
    text = f"{parts.scheme}://{host}{port}{parts.path}"
    text = "".join(c if c.isprintable() else "?" for c in text)
    return text if len(text) <= 120 else text[:117] + "..."


def resolve_host(host: str, port: int) -> list[str]:
    """Every address `host` resolves to ([] when it does not resolve)."""
    try:
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        return []
    return sorted({str(info[4][0]).split("%", 1)[0] for info in infos})


def _public(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def _non_public_address(host: str, port: int, resolve: ResolveFn) -> str | None:
    """The first address of `host` that is not public (or a reason it has none), else None."""
    addresses = resolve(host, port)
    if not addresses:
        return "it does not resolve"
    for address in addresses:
        if not _public(address):
            return address
    return None


def redirect_problem(endpoint: str, target: str, resolve: ResolveFn = resolve_host) -> str | None:
    """Why a download from `endpoint` may not follow a redirect to `target`; None if it may.

    Off a public https hub, only https URLs on public addresses: a redirect must not turn
    the daemon into a client of the box's own network (metadata services, admin ports)
    or downgrade to cleartext. A hub that is itself http or private (a mirror, a test
    stand-in) has no public CDN: its redirects must stay on its own host and port.
    """
    scheme, host, port = _origin(target)
    if scheme not in ("http", "https") or not host:
        return "not an http(s) URL"
    e_scheme, e_host, e_port = _origin(endpoint)
    same = (scheme, host, port) == (e_scheme, e_host, e_port)
    local_hub = e_scheme != "https" or _non_public_address(e_host, e_port, resolve) is not None
    if local_hub:
        if same:
            return None
        return (
            f"the hub {e_scheme}://{e_host}:{e_port} is http or on a private address, "
            "so downloads may only redirect within that host"
        )
    if same:
        return None
    if scheme != "https":
        return "downloads only follow redirects to https URLs"
    address = _non_public_address(host, port, resolve)
    if address is not None:
        why = address if address == "it does not resolve" else f"it resolves to {address}"
        return f"{why}, not a public address"
    return None


def default_endpoint() -> str:
    return (os.environ.get("HF_ENDPOINT") or constants.ENDPOINT).rstrip("/")


class HubClient:
    """Resolve and download files from one hub endpoint."""

    def __init__(
        self,
        endpoint: str | None = None,
        token: str | None = None,
        *,
        timeout: float = 10.0,
        retries: int = 3,
        retry_wait: float = 1.0,
    ) -> None:
        self.endpoint = (endpoint or default_endpoint()).rstrip("/")
        self.token = token
        self.timeout = timeout
        self.retries = retries
        self.retry_wait = retry_wait

    # -- resolving ---------------------------------------------------------------------------

    def resolve(self, ref: HubRef) -> RemoteFile:
        """Pin `ref` to a commit and one file, with its LFS sha256 and size."""
        found = self.resolve_any(ref)
        if isinstance(found, RemoteFolder):
            raise AmbiguousFileError(f"{ref} names a folder, not a file")
        return found

    def resolve_any(self, ref: HubRef) -> RemoteFile | RemoteFolder:
        """Pin `ref` to a commit and one GGUF file, or one model folder with all its files."""
        api = HfApi(endpoint=self.endpoint, token=self.token, library_name="appliance")
        try:
            info = api.model_info(
                ref.repo, revision=ref.revision, files_metadata=True, timeout=self.timeout
            )
        except Exception as e:
            raise self._map_error(e, ref.repo, ref.revision) from None
        commit = info.sha
        if not isinstance(commit, str) or not _COMMIT_RE.fullmatch(commit):
            raise HubError(f"the hub gave no commit sha for {ref.repo}@{ref.revision or 'main'}")
        siblings = {s.rfilename: s for s in info.siblings or []}
        folder = folder_prefix(ref.pattern, ref.is_glob, list(siblings))
        if folder is None:
            filename = select_file(ref, list(siblings))
            return self._remote(ref.repo, commit, siblings[filename], lfs_only=True)
        prefix = "" if folder == "." else folder + "/"
        problem = remote_folder_problem(
            [n[len(prefix) :] for n in siblings if n.startswith(prefix)]
        )
        if problem is not None:
            raise ModelFolderError(f"{ref.repo}/{folder} is not a model folder: {problem}")
        names = folder_files(folder, list(siblings))
        if not names:
            raise NotFoundError(f"the folder {folder!r} of {ref.repo} holds no model files")
        files = tuple(self._remote(ref.repo, commit, siblings[n], lfs_only=False) for n in names)
        return RemoteFolder(repo=ref.repo, path=folder, revision=commit, files=files)

    def _remote(self, repo: str, commit: str, sib: Any, *, lfs_only: bool) -> RemoteFile:
        filename = sib.rfilename
        url = hf_hub_url(repo, filename, revision=commit, endpoint=self.endpoint)
        lfs = sib.lfs
        if lfs is None or not lfs.get("sha256"):
            blob_id = str(sib.blob_id or "").lower()
            if lfs_only or not re.fullmatch(r"[0-9a-f]{40}", blob_id) or sib.size is None:
                raise HubError(
                    f"{filename} in {repo} has no LFS sha256 on the hub, so it cannot be "
                    "verified; download it yourself and `appliance import` it"
                )
            return RemoteFile(
                repo=repo,
                filename=filename,
                revision=commit,
                sha256="",
                size=int(sib.size),
                url=url,
                git_sha1=blob_id,
            )
        sha256 = str(lfs["sha256"]).lower()
        size = int(lfs["size"])
        if not re.fullmatch(r"[0-9a-f]{64}", sha256) or size < 0:
            raise HubError(f"the hub gave invalid LFS metadata for {filename} in {repo}")
        return RemoteFile(
            repo=repo, filename=filename, revision=commit, sha256=sha256, size=size, url=url
        )

    def _map_error(self, e: Exception, repo: str, revision: str | None) -> Exception:
        where = f"{repo}@{revision}" if revision else repo
        if isinstance(e, OfflineModeIsEnabled):
            return HubUnavailableError(
                f"the Hugging Face hub cannot be reached: HF_HUB_OFFLINE is set; {OFFLINE_HINT}"
            )
        if isinstance(e, httpx2.TransportError):
            return HubUnavailableError(
                f"the Hugging Face hub cannot be reached at {self.endpoint} "
                f"({type(e).__name__}: {e}); {OFFLINE_HINT}"
            )
        if isinstance(e, GatedRepoError):
            return HubError(
                f"{repo} is gated: accept its terms on the hub and give a token (HF_TOKEN)"
            )
        if isinstance(e, RevisionNotFoundError):
            return NotFoundError(f"revision {revision!r} not found in {repo} on {self.endpoint}")
        if isinstance(e, RepositoryNotFoundError):
            return NotFoundError(
                f"repository {repo} not found on {self.endpoint} "
                "(or it is private and no valid token was given)"
            )
        if isinstance(e, RemoteEntryNotFoundError):
            return NotFoundError(f"file not found in {where} on {self.endpoint}")
        if isinstance(e, DisabledRepoError):
            return HubError(f"{repo} has been disabled on the hub")
        if isinstance(e, HfHubHTTPError):
            status = e.response.status_code if e.response is not None else "?"
            return HubError(f"the hub answered HTTP {status} for {where}")
        if isinstance(e, httpx2.HTTPError):
            return HubError(f"HTTP error talking to the hub for {where}: {e}")
        return e

    # -- downloading -------------------------------------------------------------------------

    @contextmanager
    def _get(self, url: str, headers: dict[str, str]) -> Iterator[httpx2.Response]:
        """GET `url` as a stream, following only the redirects `redirect_problem` allows.

        The token goes to the hub only: a hop to another host (the CDN's signed URL)
        is sent without it.
        """
        for _ in range(MAX_REDIRECTS + 1):
            with http_stream_backoff(
                "GET",
                url,
                headers=headers,
                timeout=self.timeout,
                max_retries=self.retries,
                base_wait_time=self.retry_wait,
                max_wait_time=max(self.retry_wait * 8, self.retry_wait),
                retry_on_exceptions=(),
                retry_on_status_codes=(429, 500, 502, 503, 504),
                follow_redirects=False,
            ) as resp:
                if not resp.has_redirect_location:
                    yield resp
                    return
                target = urljoin(url, resp.headers["Location"])
            problem = redirect_problem(self.endpoint, target)
            if problem is not None:
                raise HubError(f"redirect to {shown_url(target)} refused: {problem}")
            if _origin(target) != _origin(url):
                headers = {k: v for k, v in headers.items() if k.lower() != "authorization"}
            url = target
        raise HubError(
            f"download from {shown_url(url)} refused: more than {MAX_REDIRECTS} redirects"
        )

    def download(
        self, remote: RemoteFile, dest: Path, on_progress: ProgressFn | None = None
    ) -> str:
        """Stream `remote` into `dest`, resuming a prefix already there; return the sha256 hex.

        Transient failures are retried (resuming) up to `retries` times; after that a
        `DownloadInterruptedError` says how far it got, and `dest` keeps the bytes. A full
        disk (ENOSPC, EDQUOT) deletes `dest` and raises `DiskFullError`.
        """
        hasher = hashlib.sha256()
        have = 0
        if dest.exists():
            have = dest.stat().st_size
            if have > remote.size:
                dest.unlink()
                have = 0
            elif have:
                with open(dest, "rb") as f:
                    while chunk := f.read(CHUNK_SIZE):
                        hasher.update(chunk)
        if on_progress is not None:
            on_progress(have, remote.size)

        failures = 0
        while have < remote.size or not dest.exists():
            headers = build_hf_headers(token=self.token, library_name="appliance")
            if have:
                headers["Range"] = f"bytes={have}-"
            before = have
            try:
                with self._get(remote.url, headers) as resp:
                    if resp.status_code == 416 and have:
                        # Our prefix does not fit the server's file: start over.
                        hasher, have = hashlib.sha256(), 0
                        dest.unlink(missing_ok=True)
                        continue
                    hf_raise_for_status(resp)
                    mode = "ab"
                    if have and resp.status_code != 206:  # Range ignored: full body follows
                        hasher, have, mode = hashlib.sha256(), 0, "wb"
                    with open(dest, mode) as out:
                        for chunk in resp.iter_bytes():  # as received: a cut loses nothing
                            if not chunk:
                                continue
                            if have + len(chunk) > remote.size:
                                out.close()
                                dest.unlink(missing_ok=True)
                                raise IntegrityError(
                                    f"{remote.filename} from {remote.repo} is larger than the "
                                    f"{remote.size} bytes the hub's metadata gives; "
                                    "the partial download was deleted"
                                )
                            out.write(chunk)
                            hasher.update(chunk)
                            have += len(chunk)
                            if on_progress is not None:
                                on_progress(have, remote.size)
                        out.flush()
                        os.fsync(out.fileno())
                    if have < remote.size:
                        raise httpx2.RemoteProtocolError("body ended early")
            except OSError as e:
                if isinstance(e, HfHubHTTPError):
                    raise self._map_error(e, remote.repo, remote.revision) from None
                if e.errno in (errno.ENOSPC, errno.EDQUOT):
                    # A full disk stops everything else on it (manifests, logs, the prompt
                    # cache): give the space back rather than keep the partial to resume.
                    dest.unlink(missing_ok=True)
                    raise DiskFullError(
                        f"disk full while downloading {remote.filename} to {dest.parent} "
                        f"after {have} of {remote.size} bytes; the partial download was "
                        "deleted to free its space: free space and pull again"
                    ) from None
                raise
            except httpx2.TransportError as e:
                if have > before:
                    failures = 0  # progress was made: the retry budget starts again
                failures += 1
                if failures > self.retries:
                    if have == 0 and isinstance(e, httpx2.ConnectError | httpx2.ConnectTimeout):
                        raise HubUnavailableError(
                            f"the Hugging Face hub cannot be reached at {self.endpoint} "
                            f"({type(e).__name__}: {e}); {OFFLINE_HINT}"
                        ) from None
                    raise DownloadInterruptedError(
                        f"download of {remote.filename} from {remote.repo} was interrupted "
                        f"after {have} of {remote.size} bytes ({type(e).__name__}: {e}); "
                        "pull again to resume"
                    ) from None
                time.sleep(min(self.retry_wait * 2 ** (failures - 1), self.retry_wait * 8))
            except httpx2.HTTPError as e:
                raise self._map_error(e, remote.repo, remote.revision) from None
        return hasher.hexdigest()
