"""The model catalog: ``models.toml``, parsed into typed, validated entries.

Every key but ``source`` is optional; the repo's ``models.toml`` documents each
one with its default. Errors name the file and the key path, e.g.::

    models.toml: models.qwen2.5-0.5b.context: expected a positive integer, got -3

Every error in the file is reported at once, one line each, in one CatalogError::

    models.toml: 2 errors
      models.smol2.keep_alvie: unknown key (did you mean 'keep_alive'?)
      models.smol2.pin: expected one of hot, warm, got 'hott'

A catalog with errors is refused whole: `appliance serve` does not start (the message
lists them all) and `appliance doctor` fails. The daemon does not drop the bad entries
and serve the rest, because a dropped entry does not leave its name unused: a stored
model of that name would be served with the defaults (another context, no pin, its own
chat template), its aliases would answer 404 and another model could become the
default, all while the file says otherwise. `appliance doctor` checks the file before a
restart.

Names and aliases are matched exactly first, then case-insensitively, so two
entries may not share a name or alias even in a different case.
"""

from __future__ import annotations

import difflib
import logging
import os
import re
import tomllib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, NamedTuple, cast

from appliance.settings import describe_value, duration_value, toml_error_text

log = logging.getLogger("appliance.catalog")

Kind = Literal["chat", "embedding", "auto"]
Backend = Literal["auto", "cpu", "cuda", "rocm"]
Reasoning = Literal["auto", "on", "off"]
FlashAttn = Literal["auto", "on", "off"]
Pin = Literal["hot", "warm"]

KINDS: tuple[Kind, ...] = ("chat", "embedding", "auto")
BACKENDS: tuple[Backend, ...] = ("auto", "cpu", "cuda", "rocm")
REASONING_MODES: tuple[Reasoning, ...] = ("auto", "on", "off")
PINS: tuple[Pin, ...] = ("hot", "warm")

MAX_NAME_LENGTH = 128
HF_SCHEME = "hf://"
_COMMIT = re.compile(r"[0-9a-f]{40}")
_REPO_PART = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}")


class CatalogError(ValueError):
    """models.toml is invalid. ``file`` and ``key_path`` say where; ``line`` for syntax errors.

    ``errors`` holds every problem found in the file, each a one-line CatalogError; the
    attributes are the first one's. `str()` is that line, or, for several, a count and a
    line per problem.
    """

    def __init__(
        self, file: str, key_path: str | None, problem: str, line: int | None = None
    ) -> None:
        self.file = file
        self.key_path = key_path
        self.problem = problem
        self.line = line
        self.errors: tuple[CatalogError, ...] = (self,)
        where = f"{file}: {key_path}" if key_path else file
        super().__init__(f"{where}: {problem}")

    @classmethod
    def of(cls, errors: Sequence[CatalogError]) -> CatalogError:
        """One error that reports all of ``errors`` (the error itself when there is one)."""
        if len(errors) == 1:
            return errors[0]
        first = errors[0]
        combined = cls(first.file, first.key_path, first.problem, first.line)
        combined.errors = tuple(errors)
        return combined

    def __str__(self) -> str:
        if len(self.errors) == 1:
            return str(self.args[0])
        lines = [f"{self.file}: {len(self.errors)} errors"]
        lines += [f"  {e.key_path or e.file}: {e.problem}" for e in self.errors]
        return "\n".join(lines)


# --------------------------------------------------------------------------- entries


@dataclass(frozen=True)
class HubSource:
    """A file (or a glob matching files, e.g. split GGUF parts) in a Hugging Face repo, or
    a model folder (ONNX) in it; "" names the repo's root."""

    repo_id: str  # "org/repo"
    filename: str  # path inside the repo; may hold glob characters; "" for the root

    @property
    def is_glob(self) -> bool:
        return any(c in self.filename for c in "*?[")

    def __str__(self) -> str:
        if not self.filename:
            return f"{HF_SCHEME}{self.repo_id}"
        return f"{HF_SCHEME}{self.repo_id}/{self.filename}"


@dataclass(frozen=True)
class LocalSource:
    """A model file on this machine (air-gapped boxes, imported files)."""

    path: Path

    def __str__(self) -> str:
        return str(self.path)


Source = HubSource | LocalSource


@dataclass(frozen=True)
class CatalogEntry:
    name: str
    source: Source
    revision: str = "main"  # hub sources only: a commit sha (pinned), a branch or a tag
    kind: Kind = "chat"
    context: int | None = None  # None: settings.default_context (capped at the trained one)
    keep_alive_s: float | None = None  # None: settings.keep_alive_s; math.inf: never unload
    warm_keep_alive_s: float | None = None  # None: settings.warm_keep_alive_s (warm -> cold)
    pin: Pin | None = None
    aliases: tuple[str, ...] = ()
    backend: Backend = "auto"
    n_gpu_layers: int | None = None  # None: automatic, from free VRAM; -1: all layers
    threads: int | None = None  # None: settings.threads
    reasoning: Reasoning = "auto"
    parallel: int | None = None  # None: settings.parallel (auto: from memory)
    max_queue: int | None = None  # None: settings.max_queue (auto: 16 x slots, at least 64)
    flash_attn: FlashAttn | None = None  # None: settings.flash_attn
    deterministic: bool = False  # every request computed as if alone (no batching, no cache)
    kv_unified: bool = False  # one KV pool for all slots, not a stream per slot (GGUF)
    tool_parser: str | None = None  # the output family for tool calls; None: from the template
    chat_template: Path | None = None  # a Jinja file in place of the model's own template
    default: bool = False
    description: str | None = None

    @property
    def revision_pinned(self) -> bool:
        """True when the revision is a full commit sha (always true for local files)."""
        return isinstance(self.source, LocalSource) or bool(_COMMIT.fullmatch(self.revision))

    @property
    def all_names(self) -> tuple[str, ...]:
        return (self.name, *self.aliases)


def name_problem(name: str, *, allow_slash: bool = False) -> str | None:
    """Why ``name`` cannot name a model, or None when it can."""
    if not name:
        return "must not be empty"
    if len(name) > MAX_NAME_LENGTH:
        return f"is longer than {MAX_NAME_LENGTH} characters"
    if any(ord(c) < 32 or ord(c) == 127 or c.isspace() for c in name):
        return "must not contain spaces or control characters"
    if ".." in name:
        return "must not contain '..'"
    if "\\" in name:
        return "must not contain '\\'"
    if "/" in name and not allow_slash:
        return "must not contain '/'"
    if name.startswith("/") or name.endswith("/"):
        return "must not start or end with '/'"
    return None


# --------------------------------------------------------------------------- catalog


@dataclass(frozen=True)
class Catalog:
    entries: tuple[CatalogEntry, ...] = ()
    path: Path | None = None
    warnings: tuple[str, ...] = ()
    _exact: dict[str, CatalogEntry] = field(
        init=False, repr=False, compare=False, hash=False, default_factory=dict
    )
    _folded: dict[str, CatalogEntry] = field(
        init=False, repr=False, compare=False, hash=False, default_factory=dict
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "entries", tuple(self.entries))
        file = str(self.path) if self.path is not None else "catalog"
        names = [_Names(e.name, e.aliases, e.default) for e in self.entries]
        errors = _name_errors(file, names)
        if errors:
            raise CatalogError.of(errors)
        for entry in self.entries:
            for label in entry.all_names:
                self._exact[label] = entry
                self._folded[label.casefold()] = entry

    def __len__(self) -> int:
        return len(self.entries)

    def __iter__(self) -> Iterator[CatalogEntry]:
        return iter(self.entries)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.resolve(name) is not None

    def exact(self, name_or_alias: str) -> CatalogEntry | None:
        """The entry with exactly this name or alias."""
        return self._exact.get(name_or_alias)

    def resolve(self, name_or_alias: str) -> CatalogEntry | None:
        """The entry with this name or alias: exact match first, then ignoring case."""
        entry = self._exact.get(name_or_alias)
        if entry is None:
            entry = self._folded.get(name_or_alias.casefold())
        return entry

    def names(self) -> tuple[str, ...]:
        """The entries' names, in file order (aliases not included)."""
        return tuple(entry.name for entry in self.entries)

    def default_entry(self) -> CatalogEntry | None:
        """The entry marked ``default = true``, else the first that is not an embedding model."""
        for entry in self.entries:
            if entry.default:
                return entry
        for entry in self.entries:
            if entry.kind != "embedding":
                return entry
        return None

    def with_entry(self, entry: CatalogEntry) -> Catalog:
        """A catalog with ``entry`` added, replacing an entry of the same name.

        Raises CatalogError when its name or an alias is taken by another entry.
        """
        entries = [e for e in self.entries if e.name != entry.name]
        entries.append(entry)
        return replace(self, entries=tuple(entries))


class _Names(NamedTuple):
    """What the checks across entries look at: an entry's name, aliases and default flag."""

    name: str
    aliases: tuple[str, ...]
    default: bool


def _name_errors(file: str, entries: Sequence[_Names]) -> list[CatalogError]:
    """Names and aliases that are bad or taken (ignoring case), and a second default."""
    errors: list[CatalogError] = []
    owner: dict[str, tuple[int, str]] = {}  # casefolded -> (entry's index, "name"|"alias")
    default: str | None = None
    for index, entry in enumerate(entries):
        problem = name_problem(entry.name)
        if problem:
            errors.append(CatalogError(file, f"models.{entry.name}", f"the name {problem}"))
            continue
        for number, alias in enumerate(entry.aliases):
            problem = name_problem(alias, allow_slash=True)
            if problem:
                where = f"models.{entry.name}.aliases[{number}]"
                errors.append(CatalogError(file, where, f"the alias {problem}"))
        for role, label in [("name", entry.name)] + [("alias", a) for a in entry.aliases]:
            other, other_role = owner.setdefault(label.casefold(), (index, role))
            if other == index:
                continue  # its own: an alias repeating the entry's name or another alias
            where = f"models.{entry.name}" + (".aliases" if role == "alias" else "")
            taken = "the name" if other_role == "name" else "an alias"
            problem = f"{label!r} is already {taken} of models.{entries[other].name}"
            errors.append(CatalogError(file, where, problem))
        if entry.default:
            if default is not None:
                errors.append(
                    CatalogError(
                        file,
                        f"models.{entry.name}.default",
                        f"only one model can be the default; models.{default} is too",
                    )
                )
            else:
                default = entry.name
    return errors


# --------------------------------------------------------------------------- parsing


def load_catalog(path: Path) -> Catalog:
    """Parse ``path``. A missing file is an empty catalog; warnings are logged too."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return Catalog(path=path)
    except OSError as exc:
        raise CatalogError(str(path), None, f"cannot read: {exc.strerror or exc}") from exc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CatalogError(str(path), None, f"not UTF-8 text (byte {exc.start})") from exc
    catalog = parse_catalog(text, path=path)
    for warning in catalog.warnings:
        log.warning("%s", warning)
    return catalog


def parse_catalog(text: str, path: Path | None = None, base_dir: Path | None = None) -> Catalog:
    """Parse models.toml text. Relative local sources are relative to ``base_dir``
    (default: the file's directory, else the current directory).

    Raises one CatalogError with every error in the file (see the module's docstring);
    text that is not TOML stops at its syntax error."""
    file = str(path) if path is not None else "models.toml"
    if base_dir is None:
        base_dir = path.parent if path is not None else Path.cwd()
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = toml_error_text(exc)
        match = re.match(r"line (\d+): ", message)
        raise CatalogError(file, None, message, int(match.group(1)) if match else None) from exc
    errors = [
        CatalogError(file, key, "unknown top-level key (models are [models.NAME] tables)")
        for key in data
        if key != "models"
    ]
    models = data.get("models", {})
    if not isinstance(models, dict):
        problem = f"expected [models.NAME] tables, got {describe_value(models)}"
        errors.append(CatalogError(file, "models", problem))
        models = {}
    parser = _EntryParser(file, base_dir)
    entries = [parser.entry(name, table) for name, table in models.items()]
    errors += parser.errors
    errors += _name_errors(file, parser.names)
    if errors:
        raise CatalogError.of(errors)
    return Catalog(
        entries=tuple(e for e in entries if e is not None),
        path=path,
        warnings=tuple(parser.warnings),
    )


class _EntryParser:
    """Parses entries, collecting errors: an entry with any error is None, and its name
    and the aliases that parsed still go to the checks across entries."""

    def __init__(self, file: str, base_dir: Path) -> None:
        self.file = file
        self.base_dir = base_dir
        self.warnings: list[str] = []
        self.errors: list[CatalogError] = []
        self.names: list[_Names] = []

    def fail(self, key_path: str, problem: str) -> None:
        self.errors.append(CatalogError(self.file, key_path, problem))

    def entry(self, name: str, table: object) -> CatalogEntry | None:
        where = f"models.{name}"
        problem = name_problem(name)
        if problem:
            self.fail(where, f"the model name {problem}")
            return None
        if not isinstance(table, dict):
            self.fail(where, f'expected a table [models."{name}"], got {describe_value(table)}')
            return None
        before = len(self.errors)
        values: dict[str, Any] = {"name": name}
        for key, value in table.items():
            parse = _KEYS.get(key)
            if parse is None:
                close = difflib.get_close_matches(key, list(_KEYS), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                self.fail(f"{where}.{key}", f"unknown key{hint}")
                continue
            target = _FIELD[key] if key in _FIELD else str(key)
            try:
                values[target] = parse(self, value)
            except ValueError as exc:
                self.fail(f"{where}.{key}", str(exc))
        self.names.append(_Names(name, values.get("aliases", ()), values.get("default", False)))
        if "source" not in table:
            self.fail(
                f"{where}.source", "required: hf://org/repo/file.gguf or a path to a local file"
            )
        source = values.get("source")
        if isinstance(source, LocalSource):
            if "revision" in table:
                self.fail(f"{where}.revision", "only hf:// sources have a revision")
        elif isinstance(source, HubSource) and not _COMMIT.fullmatch(
            values.get("revision", "main")
        ):
            revision = values.get("revision", "main")
            self.warnings.append(
                f"{self.file}: {where}.revision: {revision!r} is not pinned to a commit; "
                "pulls may change under you (set revision to the 40-hex commit sha)"
            )
        if len(self.errors) > before:
            return None
        return CatalogEntry(**values)

    # Each parser returns the typed value or raises ValueError("expected ..., got ...").

    def source(self, value: object) -> Source:
        if not isinstance(value, str) or not value.strip():
            raise ValueError(
                f"expected hf://org/repo/file.gguf or a local path, got {describe_value(value)}"
            )
        text = value.strip()
        if text.startswith(HF_SCHEME):
            return _hub_source(text)
        if text.startswith("file://"):
            text = text[len("file://") :]
        elif "://" in text:
            raise ValueError(f"unsupported source {text!r}: use hf://org/repo/file or a path")
        if any(ord(c) < 32 for c in text):
            raise ValueError("the path must not contain control characters")
        path = Path(os.path.expanduser(text))
        return LocalSource(path if path.is_absolute() else self.base_dir / path)

    def revision(self, value: object) -> str:
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"expected a commit sha, branch or tag, got {describe_value(value)}")
        revision = value.strip()
        if any(c.isspace() or ord(c) < 32 for c in revision) or ".." in revision:
            raise ValueError(f"expected a commit sha, branch or tag, got {value!r}")
        if re.fullmatch(r"[0-9a-fA-F]{40}", revision):
            revision = revision.lower()
        return revision

    def kind(self, value: object) -> Kind:
        return cast(Kind, _choice(value, KINDS))

    def context(self, value: object) -> int:
        return _int(value, 1, "a positive integer")

    def keep_alive(self, value: object) -> float:
        return duration_value(value)

    def pin(self, value: object) -> Pin:
        return cast(Pin, _choice(value, PINS))

    def aliases(self, value: object) -> tuple[str, ...]:
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list):
            raise ValueError(f"expected a list of names, got {describe_value(value)}")
        aliases: list[str] = []
        for index, item in enumerate(items):
            if not isinstance(item, str):
                raise ValueError(
                    f"expected a list of names, got item {index} {describe_value(item)}"
                )
            problem = name_problem(item, allow_slash=True)
            if problem:
                raise ValueError(f"alias {item!r} {problem}")
            if item not in aliases:
                aliases.append(item)
        return tuple(aliases)

    def backend(self, value: object) -> Backend:
        return cast(Backend, _choice(value, BACKENDS))

    def n_gpu_layers(self, value: object) -> int:
        return _int(value, -1, "an integer >= -1 (-1 = all layers)")

    def threads(self, value: object) -> int:
        return _int(value, 1, "a positive integer")

    def reasoning(self, value: object) -> Reasoning:
        if isinstance(value, bool):
            return "on" if value else "off"
        return cast(Reasoning, _choice(value, REASONING_MODES))

    def parallel(self, value: object) -> int:
        return _int(value, 1, "a positive integer (sequences decoded together)")

    def tool_parser(self, value: object) -> str:
        from appliance.parsing import family_from_name

        if not isinstance(value, str):
            raise ValueError(f"expected a tool-call family name, got {describe_value(value)}")
        return family_from_name(value.strip()).value

    def chat_template(self, value: object) -> Path:
        if not isinstance(value, str) or not value.strip():
            raise ValueError(
                f"expected the path of a Jinja template file, got {describe_value(value)}"
            )
        path = Path(value.strip()).expanduser()
        return path if path.is_absolute() else self.base_dir / path

    def max_queue(self, value: object) -> int:
        return _int(value, 0, "an integer >= 0 (requests waiting beyond the slots)")

    def flash_attn(self, value: object) -> FlashAttn:
        if isinstance(value, bool):
            return "on" if value else "off"
        return cast(FlashAttn, _choice(value, ("auto", "on", "off")))

    def deterministic(self, value: object) -> bool:
        return self.default(value)

    def default(self, value: object) -> bool:
        if not isinstance(value, bool):
            raise ValueError(f"expected true or false, got {describe_value(value)}")
        return value

    def description(self, value: object) -> str:
        if not isinstance(value, str):
            raise ValueError(f"expected a string, got {describe_value(value)}")
        return value.strip()


def _hub_source(text: str) -> HubSource:
    rest = text[len(HF_SCHEME) :]
    parts = rest.rstrip("/").split("/")
    if len(parts) < 2 or not parts[1]:
        raise ValueError(
            "expected hf://org/repo/file.gguf (the file or glob inside the repo), "
            f"hf://org/repo/folder (an ONNX model folder) or hf://org/repo, got {text!r}"
        )
    org, repo, *file_parts = parts
    for part in (org, repo):
        if not _REPO_PART.fullmatch(part) or ".." in part or "--" in part:
            raise ValueError(f"{part!r} in {text!r} is not a valid Hugging Face repo name")
    for part in file_parts:
        if part in ("", ".", "..") or "\\" in part or any(ord(c) < 32 for c in part):
            raise ValueError(f"the file path in {text!r} is not a clean relative path")
    return HubSource(repo_id=f"{org}/{repo}", filename="/".join(file_parts))


def _choice(value: object, choices: tuple[str, ...]) -> str:
    if isinstance(value, str) and value.strip().lower() in choices:
        return value.strip().lower()
    raise ValueError(f"expected one of {', '.join(choices)}, got {describe_value(value)}")


def _int(value: object, low: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"expected {what}, got {describe_value(value)}")
    return value


_KEYS: dict[str, Callable[[_EntryParser, object], Any]] = {
    "source": _EntryParser.source,
    "revision": _EntryParser.revision,
    "kind": _EntryParser.kind,
    "context": _EntryParser.context,
    "keep_alive": _EntryParser.keep_alive,
    "warm_keep_alive": _EntryParser.keep_alive,
    "pin": _EntryParser.pin,
    "aliases": _EntryParser.aliases,
    "backend": _EntryParser.backend,
    "n_gpu_layers": _EntryParser.n_gpu_layers,
    "threads": _EntryParser.threads,
    "reasoning": _EntryParser.reasoning,
    "tool_parser": _EntryParser.tool_parser,
    "chat_template": _EntryParser.chat_template,
    "parallel": _EntryParser.parallel,
    "max_queue": _EntryParser.max_queue,
    "flash_attn": _EntryParser.flash_attn,
    "deterministic": _EntryParser.deterministic,
    "kv_unified": _EntryParser.default,
    "default": _EntryParser.default,
    "description": _EntryParser.description,
}
_FIELD = {"keep_alive": "keep_alive_s", "warm_keep_alive": "warm_keep_alive_s"}

__all__ = [
    "Catalog",
    "CatalogEntry",
    "CatalogError",
    "HubSource",
    "LocalSource",
    "Source",
    "load_catalog",
    "name_problem",
    "parse_catalog",
]
