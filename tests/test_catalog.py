from __future__ import annotations

import logging
import math
import re
from pathlib import Path

import pytest

from appliance.catalog import (
    Catalog,
    CatalogEntry,
    CatalogError,
    HubSource,
    LocalSource,
    load_catalog,
    parse_catalog,
)

REPO_MODELS = Path(__file__).resolve().parent.parent / "models.toml"

MINIMAL = """
[models."qwen2.5-0.5b"]
source = "hf://Qwen/Qwen2.5-0.5B-Instruct-GGUF/qwen2.5-0.5b-instruct-q4_k_m.gguf"
revision = "9217f5db79a29953eb74d5343926648285ec7e67"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "models.toml"
    path.write_text(text)
    return path


# --------------------------------------------------------------------------- the shipped catalog


def test_repo_catalog_is_valid_and_pinned() -> None:
    catalog = load_catalog(REPO_MODELS)
    assert len(catalog) >= 2
    assert catalog.warnings == ()
    kinds = {entry.kind for entry in catalog}
    assert {"chat", "embedding"} <= kinds
    onnx = set()
    for entry in catalog:
        assert isinstance(entry.source, HubSource)
        if not entry.source.filename.endswith(".gguf"):
            onnx.add(entry.kind)  # a model folder (ONNX)
        assert re.fullmatch(r"[0-9a-f]{40}", entry.revision), entry.name
        assert entry.revision_pinned
    assert onnx == {"chat", "embedding"}  # an ONNX chat model and an ONNX encoder
    default = catalog.default_entry()
    assert default is not None and default.kind == "chat"


def test_repo_catalog_documents_every_key() -> None:
    text = REPO_MODELS.read_text()
    from appliance.catalog import _KEYS

    for key in _KEYS:
        assert re.search(rf"^#\s+{key}\s", text, re.MULTILINE), f"{key} is not documented"


def test_repo_catalog_aliases_resolve() -> None:
    catalog = load_catalog(REPO_MODELS)
    chat = catalog.resolve("qwen")
    assert chat is not None and chat.name == "qwen2.5-0.5b-instruct"
    assert catalog.resolve("QWEN") is chat
    assert catalog.resolve("Qwen/Qwen2.5-0.5B-Instruct") is chat
    embedding = catalog.resolve("nomic-embed-text")
    assert embedding is not None and embedding.kind == "embedding"


# --------------------------------------------------------------------------- parsing


def test_minimal_entry_gets_defaults() -> None:
    (entry,) = parse_catalog(MINIMAL).entries
    assert entry == CatalogEntry(
        name="qwen2.5-0.5b",
        source=HubSource("Qwen/Qwen2.5-0.5B-Instruct-GGUF", "qwen2.5-0.5b-instruct-q4_k_m.gguf"),
        revision="9217f5db79a29953eb74d5343926648285ec7e67",
    )
    assert entry.kind == "chat" and entry.backend == "auto" and entry.reasoning == "auto"
    assert entry.context is None and entry.keep_alive_s is None and entry.pin is None
    assert (
        str(entry.source)
        == "hf://Qwen/Qwen2.5-0.5B-Instruct-GGUF/qwen2.5-0.5b-instruct-q4_k_m.gguf"
    )


def test_every_key(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        [models.big]
        source = "hf://org/repo/sub/dir/*Q4_K_M*.gguf"
        revision = "V1.0"
        kind = "auto"
        context = 8192
        keep_alive = "forever"
        pin = "hot"
        aliases = ["b", "org/big"]
        backend = "CUDA"
        n_gpu_layers = -1
        threads = 4
        reasoning = true
        default = true
        description = " a model "

        [models.local]
        source = "weights/model.gguf"
        kind = "embedding"
        keep_alive = 0
        reasoning = "off"
        chat_template = "templates/tools.jinja"
        kv_unified = true
        """,
    )
    catalog = load_catalog(path)
    big = catalog.resolve("big")
    assert big is not None
    assert big.source == HubSource("org/repo", "sub/dir/*Q4_K_M*.gguf")
    assert isinstance(big.source, HubSource) and big.source.is_glob
    assert big.revision == "V1.0" and not big.revision_pinned
    assert big.kind == "auto"
    assert big.context == 8192
    assert big.keep_alive_s == math.inf
    assert big.pin == "hot"
    assert big.aliases == ("b", "org/big")
    assert big.backend == "cuda"
    assert big.n_gpu_layers == -1
    assert big.threads == 4
    assert big.reasoning == "on"
    assert big.default
    assert big.description == "a model"
    local = catalog.resolve("local")
    assert local is not None
    assert local.source == LocalSource(tmp_path / "weights" / "model.gguf")
    assert local.revision_pinned
    assert local.keep_alive_s == 0.0
    assert local.reasoning == "off"
    assert local.chat_template == tmp_path / "templates" / "tools.jinja"
    assert big.chat_template is None
    assert local.kv_unified and not big.kv_unified
    assert catalog.names() == ("big", "local")
    assert catalog.default_entry() is big
    assert any("models.big.revision" in w and "not pinned" in w for w in catalog.warnings)


def test_unpinned_revision_warns(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = write(tmp_path, '[models.m]\nsource = "hf://o/r/f.gguf"\n')
    with caplog.at_level(logging.WARNING, logger="appliance.catalog"):
        catalog = load_catalog(path)
    (entry,) = catalog.entries
    assert entry.revision == "main"
    assert len(catalog.warnings) == 1 and "'main' is not pinned" in catalog.warnings[0]
    assert "not pinned" in caplog.text


def test_missing_file_is_an_empty_catalog(tmp_path: Path) -> None:
    catalog = load_catalog(tmp_path / "nope.toml")
    assert len(catalog) == 0
    assert catalog.default_entry() is None
    assert catalog.resolve("x") is None


def test_empty_file_and_no_models() -> None:
    assert len(parse_catalog("")) == 0
    assert len(parse_catalog("[models]\n")) == 0


def test_default_entry_falls_back_to_first_chat_model() -> None:
    catalog = parse_catalog(
        """
        [models.e]
        source = "/m/e.gguf"
        kind = "embedding"
        [models.c]
        source = "/m/c.gguf"
        """
    )
    default = catalog.default_entry()
    assert default is not None and default.name == "c"


# --------------------------------------------------------------------------- errors


def test_error_message_carries_the_key_path() -> None:
    text = '[models."qwen2.5-0.5b"]\nsource = "hf://o/r/f.gguf"\ncontext = -3\n'
    with pytest.raises(CatalogError) as info:
        parse_catalog(text)
    assert str(info.value) == (
        "models.toml: models.qwen2.5-0.5b.context: expected a positive integer, got -3"
    )
    assert info.value.key_path == "models.qwen2.5-0.5b.context"


@pytest.mark.parametrize(
    ("body", "key_path", "fragment"),
    [
        ('source = "hf://o/r/f.gguf"\ncontxt = 1', "models.m.contxt", "did you mean 'context'"),
        ("context = 4", "models.m.source", "required"),
        ("source = 3", "models.m.source", "expected hf://"),
        ('source = "hf://o"', "models.m.source", "the file or glob"),
        ('source = "hf:///r"', "models.m.source", "not a valid Hugging Face repo"),
        ('source = "hf://o/../f.gguf"', "models.m.source", "not a valid Hugging Face repo"),
        ('source = "hf://o/r/a/../b.gguf"', "models.m.source", "clean relative path"),
        ('source = "https://x/y.gguf"', "models.m.source", "unsupported source"),
        ('source = "/m.gguf"\nrevision = "main"', "models.m.revision", "only hf://"),
        ('source = "hf://o/r/f"\nrevision = "a b"', "models.m.revision", "commit sha"),
        ('source = "/m.gguf"\nkind = "rerank"', "models.m.kind", "expected one of chat"),
        ('source = "/m.gguf"\ncontext = "4k"', "models.m.context", "positive integer"),
        ('source = "/m.gguf"\ncontext = true', "models.m.context", "got true"),
        ('source = "/m.gguf"\nkeep_alive = "later"', "models.m.keep_alive", "duration"),
        ('source = "/m.gguf"\npin = "cold"', "models.m.pin", "hot, warm"),
        ('source = "/m.gguf"\naliases = [1]', "models.m.aliases", "list of names"),
        ('source = "/m.gguf"\naliases = ["a b"]', "models.m.aliases", "spaces"),
        ('source = "/m.gguf"\naliases = ["a/../b"]', "models.m.aliases", "'..'"),
        ('source = "/m.gguf"\nbackend = "metal"', "models.m.backend", "auto, cpu, cuda, rocm"),
        ('source = "/m.gguf"\nn_gpu_layers = -2', "models.m.n_gpu_layers", ">= -1"),
        ('source = "/m.gguf"\nthreads = 0', "models.m.threads", "positive integer"),
        ('source = "/m.gguf"\nreasoning = "maybe"', "models.m.reasoning", "auto, on, off"),
        ('source = "/m.gguf"\ndefault = "yes"', "models.m.default", "true or false"),
        ('source = "/m.gguf"\nchat_template = 1', "models.m.chat_template", "Jinja template"),
        ('source = "/m.gguf"\nchat_template = " "', "models.m.chat_template", "Jinja template"),
    ],
)
def test_bad_values(tmp_path: Path, body: str, key_path: str, fragment: str) -> None:
    path = write(tmp_path, f"[models.m]\n{body}\n")
    with pytest.raises(CatalogError) as info:
        load_catalog(path)
    message = str(info.value)
    assert message.startswith(f"{path}: {key_path}: "), message
    assert fragment in message, message


@pytest.mark.parametrize(
    ("name", "fragment"),
    [("a/b", "'/'"), ("..x", "'..'"), ("a b", "spaces"), ("a\\tb", "control"), ("x" * 129, "128")],
)
def test_bad_names(name: str, fragment: str) -> None:
    text = f'[models."{name}"]\nsource = "/m.gguf"\n'
    with pytest.raises(CatalogError) as info:
        parse_catalog(text)
    assert fragment in str(info.value)


def test_unknown_top_level_key() -> None:
    with pytest.raises(CatalogError, match=r"^models.toml: model: unknown top-level key"):
        parse_catalog('[model.x]\nsource = "/m.gguf"\n')


def test_entry_must_be_a_table() -> None:
    with pytest.raises(CatalogError, match=r"models.x: expected a table"):
        parse_catalog('[models]\nx = "hf://o/r/f.gguf"\n')


def test_toml_syntax_error_has_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, '[models.m]\nsource = "/m.gguf"\ncontext = = 3\n')
    with pytest.raises(CatalogError) as info:
        load_catalog(path)
    assert info.value.line == 3
    assert str(info.value).startswith(f"{path}: line 3: invalid TOML")


def test_duplicate_alias_names_both_entries() -> None:
    text = """
    [models.a]
    source = "/a.gguf"
    aliases = ["fast"]
    [models.b]
    source = "/b.gguf"
    aliases = ["Fast"]
    """
    with pytest.raises(CatalogError) as info:
        parse_catalog(text)
    message = str(info.value)
    assert "models.b.aliases" in message and "models.a" in message and "'Fast'" in message


def test_alias_equal_to_another_name() -> None:
    text = '[models.a]\nsource = "/a.gguf"\n[models.b]\nsource = "/b.gguf"\naliases = ["a"]\n'
    with pytest.raises(CatalogError, match=r"'a' is already the name of models.a"):
        parse_catalog(text)


def test_names_differing_in_case_collide() -> None:
    text = '[models.Qwen]\nsource = "/a.gguf"\n[models.qwen]\nsource = "/b.gguf"\n'
    with pytest.raises(
        CatalogError, match=r"models.qwen: 'qwen' is already the name of models.Qwen"
    ):
        parse_catalog(text)


def test_two_defaults() -> None:
    text = """
    [models.a]
    source = "/a.gguf"
    default = true
    [models.b]
    source = "/b.gguf"
    default = true
    """
    with pytest.raises(CatalogError, match=r"models.b.default: .*models.a"):
        parse_catalog(text)


def test_every_error_is_reported_at_once(tmp_path: Path) -> None:
    """An operator's file with three mistakes needed three edit-and-retry rounds: one
    CatalogError now lists them all, a line each, in the file's order."""
    path = write(
        tmp_path,
        """
        [models.smol2]
        source = "/m/s.gguf"
        keep_alvie = "10m"
        pin = "hott"
        [models.other]
        contxt = 4096
        """,
    )
    with pytest.raises(CatalogError) as info:
        load_catalog(path)
    assert str(info.value).splitlines() == [
        f"{path}: 4 errors",
        "  models.smol2.keep_alvie: unknown key (did you mean 'keep_alive'?)",
        "  models.smol2.pin: expected one of hot, warm, got 'hott'",
        "  models.other.contxt: unknown key (did you mean 'context'?)",
        "  models.other.source: required: hf://org/repo/file.gguf or a path to a local file",
    ]
    assert [str(e) for e in info.value.errors][1] == (
        f"{path}: models.smol2.pin: expected one of hot, warm, got 'hott'"
    )
    assert info.value.key_path == "models.smol2.keep_alvie"  # the first one's, as before


def test_errors_across_entries_are_found_beside_an_entry_s_own() -> None:
    """An entry with a bad value still holds its name: the alias that takes it, a second
    default and a bad top-level key are reported in the same error."""
    text = """
    [models.a]
    source = "/a.gguf"
    context = 0
    default = true
    [models.b]
    source = "/b.gguf"
    aliases = ["A"]
    default = true
    [modles.c]
    source = "/c.gguf"
    """
    with pytest.raises(CatalogError) as info:
        parse_catalog(text)
    assert [(e.key_path, e.problem) for e in info.value.errors] == [
        ("modles", "unknown top-level key (models are [models.NAME] tables)"),
        ("models.a.context", "expected a positive integer, got 0"),
        ("models.b.aliases", "'A' is already the name of models.a"),
        ("models.b.default", "only one model can be the default; models.a is too"),
    ]


def test_own_name_as_alias_is_harmless() -> None:
    catalog = parse_catalog('[models.a]\nsource = "/a.gguf"\naliases = ["a", "A"]\n')
    assert catalog.resolve("A") is catalog.entries[0]


# --------------------------------------------------------------------------- runtime changes


def test_with_entry_adds_and_replaces() -> None:
    catalog = parse_catalog(MINIMAL)
    imported = CatalogEntry(name="my-model", source=LocalSource(Path("/models/my.gguf")))
    bigger = catalog.with_entry(imported)
    assert bigger.names() == ("qwen2.5-0.5b", "my-model")
    assert bigger.resolve("my-model") is imported
    assert catalog.resolve("my-model") is None  # the original is unchanged
    replaced = bigger.with_entry(replace_context(imported, 1024))
    assert len(replaced) == 2
    entry = replaced.resolve("my-model")
    assert entry is not None and entry.context == 1024


def replace_context(entry: CatalogEntry, context: int) -> CatalogEntry:
    from dataclasses import replace

    return replace(entry, context=context)


def test_with_entry_rejects_taken_alias_and_bad_name() -> None:
    catalog = parse_catalog(MINIMAL)
    clash = CatalogEntry(name="x", source=LocalSource(Path("/x.gguf")), aliases=("QWEN2.5-0.5b",))
    with pytest.raises(CatalogError, match=r"already the name of models.qwen2.5-0.5b"):
        catalog.with_entry(clash)
    with pytest.raises(CatalogError, match=r"'/'"):
        catalog.with_entry(CatalogEntry(name="a/b", source=LocalSource(Path("/x.gguf"))))


def test_catalog_from_entries() -> None:
    entry = CatalogEntry(name="m", source=LocalSource(Path("/m.gguf")), aliases=("mm",))
    catalog = Catalog(entries=(entry,))
    assert "mm" in catalog and "zz" not in catalog
    assert list(catalog) == [entry]


def test_warm_keep_alive_per_model(tmp_path: Path) -> None:
    path = tmp_path / "models.toml"
    path.write_text('[models.a]\nsource = "/m/a.gguf"\nwarm_keep_alive = "2h"\n')
    entry = load_catalog(path).resolve("a")
    assert entry is not None and entry.warm_keep_alive_s == 7200.0


def test_a_repo_root_or_folder_is_a_source(tmp_path: Path) -> None:
    """ONNX models are folders: a repo's root or a folder in it."""
    path = tmp_path / "models.toml"
    path.write_text(
        '[models.a]\nsource = "hf://o/r"\nrevision = "' + "a" * 40 + '"\n'
        '[models.b]\nsource = "hf://o/r/cpu-int4/"\nrevision = "' + "b" * 40 + '"\n'
    )
    catalog = load_catalog(path)
    a, b = catalog.resolve("a"), catalog.resolve("b")
    assert a is not None and b is not None
    assert a.source == HubSource("o/r", "") and str(a.source) == "hf://o/r"
    assert b.source == HubSource("o/r", "cpu-int4") and str(b.source) == "hf://o/r/cpu-int4"
