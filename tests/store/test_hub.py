from __future__ import annotations

import hashlib

import pytest

from appliance.store.errors import (
    AmbiguousFileError,
    HubUnavailableError,
    IntegrityError,
    InvalidNameError,
    NotFoundError,
)
from appliance.store.hub import HubClient, HubRef, parse_ref, select_file
from tests.hubstub import HubStub, unused_endpoint

C1 = "1" * 40
C2 = "2" * 40


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("hf://org/repo/model.gguf", HubRef("org/repo", "model.gguf", None)),
        (
            "hf://org/repo/sub/dir/m-Q4_K_M.gguf@v1.0",
            HubRef("org/repo", "sub/dir/m-Q4_K_M.gguf", "v1.0"),
        ),
        ("hf://org/repo/*Q4_K_M.gguf@" + C1, HubRef("org/repo", "*Q4_K_M.gguf", C1)),
        ("hf://org/repo", HubRef("org/repo", "*.gguf", None)),
        ("hf://org/repo@refs/pr/1", HubRef("org/repo", "*.gguf", "refs/pr/1")),
    ],
)
def test_parse_ref(ref: str, expected: HubRef) -> None:
    parsed = parse_ref(ref)
    assert parsed == expected
    assert parse_ref(str(parsed)) == parsed


@pytest.mark.parametrize(
    "ref",
    [
        "org/repo/model.gguf",
        "hf://",
        "hf://org",
        "hf://org/",
        "hf://../repo/x.gguf",
        "hf://org/repo/../../x.gguf",
        "hf://org/repo//x.gguf",
        "hf://org/repo/x.gguf@",
        "hf://org/repo/x.gguf@../main",
        "hf://org/re po/x.gguf",
        "hf://org/repo/x\n.gguf",
    ],
)
def test_parse_ref_refuses(ref: str) -> None:
    with pytest.raises(InvalidNameError):
        parse_ref(ref)


FILES = [
    "README.md",
    "model-Q4_K_M.gguf",
    "model-Q8_0.gguf",
    "model-F16.gguf",
    "big/model-Q2_K-00001-of-00002.gguf",
    "big/model-Q2_K-00002-of-00002.gguf",
]


def test_select_file_exact_and_glob() -> None:
    assert select_file(parse_ref("hf://o/r/model-Q8_0.gguf"), FILES) == "model-Q8_0.gguf"
    assert select_file(parse_ref("hf://o/r/*q4_k_m.gguf"), FILES) == "model-Q4_K_M.gguf"
    assert select_file(parse_ref("hf://o/r/*[Ff]16*"), FILES) == "model-F16.gguf"


def test_select_file_errors() -> None:
    with pytest.raises(
        AmbiguousFileError, match=r"matches 3 files.*model-F16.gguf.*make the pattern"
    ):
        select_file(parse_ref("hf://o/r/model-*.gguf"), FILES)
    with pytest.raises(NotFoundError, match=r"no file in o/r matches 'nope.gguf'.*model-Q8_0"):
        select_file(parse_ref("hf://o/r/nope.gguf"), FILES)
    with pytest.raises(AmbiguousFileError, match="split GGUF"):
        select_file(parse_ref("hf://o/r/big/*Q2_K*.gguf"), FILES)
    with pytest.raises(AmbiguousFileError, match="split GGUF"):
        select_file(parse_ref("hf://o/r/big/model-Q2_K-00001-of-00002.gguf"), FILES)
    with pytest.raises(AmbiguousFileError, match=r"not a \.gguf file"):
        select_file(parse_ref("hf://o/r/README.md"), FILES)
    with pytest.raises(AmbiguousFileError, match="matches 5 files"):  # "*" crosses folders
        select_file(parse_ref("hf://o/r"), FILES)


def test_resolve_pins_commit_and_takes_lfs_metadata(hub: HubStub) -> None:
    hub.add_file("org/repo", "a-Q4_K_M.gguf", b"old", revision_sha=C1)
    f2 = hub.add_file("org/repo", "a-Q4_K_M.gguf", b"new contents", revision_sha=C2)
    hub.add_file("org/repo", "a-Q8_0.gguf", b"q8")
    client = HubClient(hub.endpoint)

    remote = client.resolve(parse_ref("hf://org/repo/*q4_k_m*"))
    assert remote.revision == C2
    assert remote.filename == "a-Q4_K_M.gguf"
    assert remote.sha256 == f2.sha256 and remote.size == len(b"new contents")
    assert remote.url == f"{hub.endpoint}/org/repo/resolve/{C2}/a-Q4_K_M.gguf"
    assert remote.source == f"hf://org/repo/a-Q4_K_M.gguf@{C2}"

    pinned = client.resolve(parse_ref(f"hf://org/repo/a-Q4_K_M.gguf@{C1}"))
    assert pinned.revision == C1
    assert pinned.sha256 == hashlib.sha256(b"old").hexdigest()
    with pytest.raises(NotFoundError, match="a-Q8_0"):  # not in the older commit
        client.resolve(parse_ref(f"hf://org/repo/a-Q8_0.gguf@{C1}"))


def test_resolve_errors(hub: HubStub) -> None:
    hub.add_file("org/repo", "a.gguf", b"x")
    hub.add_file("org/repo", "plain.gguf", b"y", lfs=False)
    client = HubClient(hub.endpoint)
    with pytest.raises(NotFoundError, match="repository org/missing not found"):
        client.resolve(parse_ref("hf://org/missing/a.gguf"))
    with pytest.raises(NotFoundError, match="revision 'nope' not found in org/repo"):
        client.resolve(parse_ref("hf://org/repo/a.gguf@nope"))
    with pytest.raises(Exception, match="no LFS sha256"):
        client.resolve(parse_ref("hf://org/repo/plain.gguf"))


def test_offline_resolve_says_how_to_import() -> None:
    client = HubClient(unused_endpoint(), retries=0)
    with pytest.raises(HubUnavailableError) as ei:
        client.resolve(parse_ref("hf://org/repo/a.gguf"))
    msg = str(ei.value)
    assert "cannot be reached" in msg and "appliance import PATH" in msg
    assert "\n" not in msg


def test_download_resumes_and_detects_overlong_body(hub: HubStub, tmp_path) -> None:  # type: ignore[no-untyped-def]
    data = bytes(range(256)) * 64
    f = hub.add_file("org/repo", "a.gguf", data)
    client = HubClient(hub.endpoint, retries=0)
    remote = client.resolve(parse_ref("hf://org/repo/a.gguf"))
    dest = tmp_path / "a.partial"
    dest.write_bytes(data[:1000])
    seen: list[tuple[int, int]] = []
    assert client.download(remote, dest, lambda d, t: seen.append((d, t))) == f.sha256
    assert f.ranges == ["bytes=1000-"]
    assert seen[0] == (1000, len(data)) and seen[-1] == (len(data), len(data))

    short = type(remote)(**{**remote.__dict__, "size": 100})
    dest.unlink()
    with pytest.raises(IntegrityError, match="larger than the 100 bytes"):
        client.download(short, dest)
    assert not dest.exists()
