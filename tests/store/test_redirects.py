"""Download redirects: only https to public addresses off a public hub; only the same host
off an http or private one (the stand-in hub); anything else is refused by name."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.store import HubError, HubUnavailableError
from appliance.store.hub import redirect_problem
from tests.hubstub import HubStub
from tests.store.test_store import make_store

REPO = "org/redirected"
DATA = bytes(range(256)) * 300


@pytest.fixture
def other_host() -> Iterator[HubStub]:
    """A second stand-in on another loopback address, to see whether anything reaches it."""
    with HubStub(host="127.0.0.2") as stub:
        yield stub


def _pull_error(tmp_path: Path, hub: HubStub) -> str:
    store = make_store(tmp_path / "s", hub)
    with pytest.raises(HubError) as ei:
        store.pull(f"hf://{REPO}/m.gguf")
    assert not isinstance(ei.value, HubUnavailableError)
    assert store.list() == [] and list((store.root / "tmp").iterdir()) == []
    return str(ei.value)


@pytest.mark.parametrize("relative", [False, True])
def test_same_host_redirect_is_followed_and_resumes(
    tmp_path: Path, hub: HubStub, tiny_bytes: bytes, relative: bool
) -> None:
    f = hub.add_file(REPO, "m.gguf", tiny_bytes)
    f.redirect_to = hub.blob_url(f, relative=relative)
    f.cut_after, f.cut_times = 50_000, 1  # the first body breaks off: the resume redirects too
    store = make_store(tmp_path / "s", hub, retries=1)
    model = store.pull(f"hf://{REPO}/m.gguf")
    assert model.path.read_bytes() == tiny_bytes
    assert f.redirects == 2 and f.ranges == [None, "bytes=50000-"]


def test_redirect_to_another_loopback_host_is_refused(
    tmp_path: Path, hub: HubStub, other_host: HubStub
) -> None:
    f = hub.add_file(REPO, "m.gguf", DATA)
    copy = other_host.add_file(REPO, "m.gguf", DATA)
    f.redirect_to = other_host.blob_url(copy)
    msg = _pull_error(tmp_path, hub)
    assert msg.startswith(f"redirect to http://127.0.0.2:{other_host.port}/_blobs/{copy.sha256}")
    assert f"refused: the hub http://127.0.0.1:{hub.port} is http or on a private address" in msg
    assert other_host.requests == []  # refused before connecting


@pytest.mark.parametrize(
    "target",
    [
        "http://example.com/model.gguf?X-Amz-Signature=secret",
        "https://cdn-lfs.hf.co/model.gguf",
        "file:///etc/passwd",
    ],
)
def test_redirect_off_the_stand_in_hub_is_refused(
    tmp_path: Path, hub: HubStub, target: str
) -> None:
    f = hub.add_file(REPO, "m.gguf", DATA)
    f.redirect_to = target
    msg = _pull_error(tmp_path, hub)
    assert msg.startswith("redirect to ") and " refused: " in msg
    assert "secret" not in msg  # the query (signatures) is never shown


def test_redirect_loop_is_bounded(tmp_path: Path, hub: HubStub) -> None:
    f = hub.add_file(REPO, "m.gguf", DATA)
    f.redirect_to = f"/{REPO}/resolve/main/m.gguf"
    msg = _pull_error(tmp_path, hub)
    assert "more than 10 redirects" in msg


def test_token_is_not_sent_to_another_host(
    tmp_path: Path, hub: HubStub, other_host: HubStub, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Allow the cross-host hop (as a public CDN would be) to see what is sent there.
    monkeypatch.setattr("appliance.store.hub.redirect_problem", lambda *a, **k: None)
    f = hub.add_file(REPO, "m.gguf", DATA)
    copy = other_host.add_file(REPO, "m.gguf", DATA)
    f.redirect_to = other_host.blob_url(copy)
    store = make_store(tmp_path / "s", hub, token="hf_secret")
    from appliance.store.hub import HubClient, parse_ref

    client = HubClient(hub.endpoint, "hf_secret", retries=0)
    remote = client.resolve(parse_ref(f"hf://{REPO}/m.gguf"))
    assert client.download(remote, store.root / "tmp" / "x.partial") == copy.sha256
    hub_auth = [a for p, a in hub.authorizations if "/resolve/" in p]
    assert hub_auth == ["Bearer hf_secret"]
    assert other_host.authorizations == [(f"/_blobs/{copy.sha256}", None)]


# -- the policy itself, with a stand-in resolver ------------------------------------------

DNS = {
    "huggingface.co": ["3.163.24.37"],
    "cdn-lfs.hf.co": ["18.160.0.10", "2600:9000::1"],
    "localhost": ["127.0.0.1", "::1"],
    "mixed.example": ["8.8.8.8", "10.0.0.7"],
    "hub.corp": ["10.1.2.3"],
}


def fake_resolve(host: str, port: int) -> list[str]:
    if host.replace(".", "").isdigit() or ":" in host:
        return [host]
    return DNS.get(host, [])


HF = "https://huggingface.co"


@pytest.mark.parametrize(
    ("endpoint", "target", "problem"),
    [
        (HF, "https://cdn-lfs.hf.co/repos/ab/cd?sig=1", None),
        (HF, "https://huggingface.co/other/path", None),
        (HF, "http://cdn-lfs.hf.co/x", "downloads only follow redirects to https URLs"),
        (HF, "https://169.254.169.254/latest/meta-data", "resolves to 169.254.169.254, not a"),
        (HF, "https://10.0.0.1/x", "resolves to 10.0.0.1, not a public address"),
        (HF, "https://localhost/x", "resolves to 127.0.0.1, not a public address"),
        (HF, "https://[::ffff:127.0.0.1]/x", "resolves to ::ffff:127.0.0.1, not a public"),
        (HF, "https://[fd00::1]/x", "resolves to fd00::1, not a public address"),
        (HF, "https://mixed.example/x", "resolves to 10.0.0.7, not a public address"),
        (HF, "https://nowhere.example/x", "it does not resolve, not a public address"),
        (HF, "https://224.0.0.1/x", "resolves to 224.0.0.1"),
        (HF, "ftp://cdn-lfs.hf.co/x", "not an http(s) URL"),
        # An http or private hub (a mirror, a test stand-in): its own host and port only.
        ("http://127.0.0.1:8000", "http://127.0.0.1:8000/_blobs/x", None),
        ("http://127.0.0.1:8000", "http://127.0.0.2:8000/_blobs/x", "may only redirect within"),
        ("http://127.0.0.1:8000", "http://127.0.0.1:8001/x", "may only redirect within"),
        ("http://127.0.0.1:8000", "https://cdn-lfs.hf.co/x", "may only redirect within"),
        ("https://hub.corp", "https://hub.corp/blobs/x", None),
        ("https://hub.corp", "https://cdn-lfs.hf.co/x", "may only redirect within"),
    ],
)
def test_redirect_policy(endpoint: str, target: str, problem: str | None) -> None:
    got = redirect_problem(endpoint, target, fake_resolve)
    if problem is None:
        assert got is None
    else:
        assert got is not None and problem in got, got
