"""Daemon settings: defaults < ``settings.toml`` < environment < CLI overrides.

``config_dir/settings.toml`` is a flat TOML table. Its keys, the environment
variables that override them, and their defaults:

=======================  ============================  ===============================
settings.toml key        environment                   default
=======================  ============================  ===============================
host                     APPLIANCE_HOST                "127.0.0.1"
port                     APPLIANCE_PORT                8750 (0 = any free port)
ollama_port              APPLIANCE_OLLAMA_PORT         0 (off; 11434 serves the same API on
                                                       Ollama's port too, for tools that
                                                       assume it)
api_keys                 APPLIANCE_API_KEYS (a,b,c),   [] (no authentication)
                         APPLIANCE_API_KEY (one key)
catalog                  APPLIANCE_CATALOG             config_dir/models.toml if it
                                                       exists, else the bundled one
default_context          APPLIANCE_CONTEXT             4096
keep_alive               APPLIANCE_KEEP_ALIVE          "5m" ("forever" or -1: never)
default_max_tokens       APPLIANCE_MAX_TOKENS          2048
max_tokens_limit         APPLIANCE_MAX_TOKENS_LIMIT    131072
max_body_bytes           APPLIANCE_MAX_BODY_BYTES      8388608 (8 MiB)
threads                  APPLIANCE_THREADS             "auto" (the engine's default)
n_gpu_layers             APPLIANCE_N_GPU_LAYERS        "auto" (from free VRAM)
hub_endpoint             HF_ENDPOINT                   the Hugging Face hub
hf_token                 HF_TOKEN                      none
heartbeat_timeout        APPLIANCE_HEARTBEAT_TIMEOUT   "15s"
load_timeout             APPLIANCE_LOAD_TIMEOUT        "5m"
restart_backoff_initial  APPLIANCE_RESTART_BACKOFF     "1s"
restart_backoff_max      APPLIANCE_RESTART_BACKOFF_MAX "60s"
log_level                APPLIANCE_LOG_LEVEL           "info"
hot_budget_cpu           APPLIANCE_HOT_BUDGET_CPU      "auto" (RAM - warm - margin)
hot_budget_gpu           APPLIANCE_HOT_BUDGET_GPU      "auto" (each GPU's VRAM - margin)
warm_budget              APPLIANCE_WARM_BUDGET         "auto" (a quarter of RAM)
cold_budget              APPLIANCE_COLD_BUDGET         "auto" (the store's disk - margin)
memory_margin            APPLIANCE_MEMORY_MARGIN       "1GiB"
warm_keep_alive          APPLIANCE_WARM_KEEP_ALIVE     "1h" (idle warm -> cold)
telemetry_interval       APPLIANCE_TELEMETRY_INTERVAL  "1s" ("0": no periodic sampling)
parallel                 APPLIANCE_PARALLEL            "auto" (slots per model, from memory)
max_queue                APPLIANCE_MAX_QUEUE           "auto" (16 x slots, at least 64)
flash_attn               APPLIANCE_FLASH_ATTN          "auto" (llama.cpp decides per backend)
prompt_cache_ram         APPLIANCE_PROMPT_CACHE_RAM    "512MiB" (saved prompt states per model,
                                                       at most twice its slots' KV; counted
                                                       in its host-RAM footprint)
prompt_cache_disk        APPLIANCE_PROMPT_CACHE_DISK   "2GiB" (per model, in the store's cache)
prompt_cache_min_save    APPLIANCE_PROMPT_CACHE_MIN_SAVE
                                                       "50ms" (keep a prompt's state only if
                                                       reading it again would take longer)
request_timeout          APPLIANCE_REQUEST_TIMEOUT     "30m" (a generation's deadline)
sse_ping_interval        APPLIANCE_SSE_PING_INTERVAL   "30s" (a comment line in a stream silent
                                                       that long, as llama-server's; 0: none)
weight_repack            APPLIANCE_WEIGHT_REPACK       true (llama.cpp's repacked CPU kernels;
                                                       off by itself after an illegal instruction)
allowed_hosts            APPLIANCE_ALLOWED_HOSTS (a,b) [] (Host names served besides localhost,
                                                       127.0.0.1, [::1] and the bound address)
import_dirs              APPLIANCE_IMPORT_DIRS (a,b)   the daemon user's home (POST
                                                       /admin/import reads only from inside
                                                       these and the store's inbox folder)
drain_timeout            APPLIANCE_DRAIN_TIMEOUT       "80s" (on SIGTERM, how long streams in
                                                       flight may finish; under systemd's
                                                       TimeoutStopSec=90)
cors_origins             APPLIANCE_CORS_ORIGINS (a,b)  [] (browser origins allowed to call
                                                       the API, e.g. "http://localhost:3000";
                                                       "*" allows any, never with credentials)
=======================  ============================  ===============================

``allowed_hosts`` guards against DNS rebinding: a request whose ``Host`` header names
anything else gets a 421. A daemon bound to a wildcard address (``0.0.0.0``, ``::``)
also serves any IP address literal (an address cannot be rebound; names can).

Sizes are a number of bytes or a string such as ``"512MiB"``, ``"8GiB"``, ``"8G"``.

Durations are a number of seconds or a string such as ``"90s"``, ``"5m"``,
``"1h30m"`` or ``"forever"`` (see `parse_duration`). A relative ``catalog`` in
settings.toml is relative to the config directory. Empty environment variables
count as unset.

Overrides (the CLI's flags) are keyed by `Settings` field names (``port``,
``keep_alive_s``, ``catalog_path``...); ``None`` values are ignored.
"""

from __future__ import annotations

import difflib
import math
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from appliance.paths import Paths

MiB = 1024 * 1024
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
FOREVER_WORDS = frozenset({"forever", "inf", "infinite", "infinity"})
BUNDLED_CATALOG = Path(__file__).with_name("default_models.toml")
REPO_CATALOG = Path(__file__).resolve().parent.parent / "models.toml"


class SettingsError(ValueError):
    """A setting is invalid; the message names the key and where it came from."""


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8750
    ollama_port: int = 0  # also listen here (Ollama's 11434), 0: not
    api_keys: tuple[str, ...] = field(default=(), repr=False)
    catalog_path: Path | None = None
    default_context: int = 4096
    keep_alive_s: float = 300.0  # math.inf: never unload
    default_max_tokens: int = 2048
    max_tokens_limit: int = 131072
    max_body_bytes: int = 8 * MiB
    threads: int | None = None  # None: the engine's default
    n_gpu_layers: int | None = None  # None: automatic, from free VRAM
    hub_endpoint: str | None = None
    hf_token: str | None = field(default=None, repr=False)
    heartbeat_timeout_s: float = 15.0
    load_timeout_s: float = 300.0
    restart_backoff_initial_s: float = 1.0
    restart_backoff_max_s: float = 60.0
    log_level: str = "info"
    hot_budget_cpu_bytes: int | None = None  # None: from the box (RAM minus warm and margin)
    hot_budget_gpu_bytes: int | None = None  # None: each GPU's VRAM minus the margin
    warm_budget_bytes: int | None = None  # None: a quarter of the host's RAM
    cold_budget_bytes: int | None = None  # None: the store's disk, less the margin
    memory_margin_bytes: int = 1024 * MiB  # kept free on every device, never budgeted
    warm_keep_alive_s: float = 3600.0  # idle time before warm -> cold (math.inf: never)
    telemetry_interval_s: float = 1.0  # host/GPU/model sampling period; 0: no sampling
    parallel: int | None = None  # slots per model; None: from memory (up to 4)
    max_queue: int | None = None  # waiting requests per model past the slots; None: auto
    flash_attn: str = "auto"  # auto | on | off
    prompt_cache_ram_bytes: int = 512 * MiB  # saved sequence states in host RAM, per model
    prompt_cache_disk_bytes: int = 2048 * MiB  # saved sequence states on disk, per model
    prompt_cache_min_save_s: float = 0.05  # a state is saved only if it spares this much
    request_timeout_s: float = 1800.0  # a generation running longer ends with an error
    sse_ping_interval_s: float = 30.0  # a stream silent this long gets a comment line; 0: none
    weight_repack: bool = True  # llama.cpp's extra CPU buffer types (repacked weights, AMX)
    allowed_hosts: tuple[str, ...] = ()  # Host names served besides the loopback ones
    import_dirs: tuple[Path, ...] | None = None  # None: the user's home; <store>/inbox always
    drain_timeout_s: float = 80.0  # on SIGTERM: streams in flight get this long to finish
    cors_origins: tuple[str, ...] = ()  # browser origins allowed to call the API ("*": any)

    @property
    def auth_required(self) -> bool:
        return bool(self.api_keys)

    @property
    def base_url(self) -> str:
        """The URL a client on this box uses to reach the daemon (no trailing slash)."""
        host = self.host
        if host in ("", "0.0.0.0"):
            host = "127.0.0.1"
        elif host == "::":
            host = "::1"
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"


# --------------------------------------------------------------------------- durations

_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m|h|d)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(text: str) -> float:
    """Seconds in ``text``: ``"300"``, ``"1.5"``, ``"90s"``, ``"5m"``, ``"1h30m"``, ``"500ms"``.

    ``"forever"`` (also ``"inf"``) and any negative number (``"-1"``) mean never:
    ``math.inf``. ``"0"`` is zero. Raises ValueError with a one-line message.
    """
    raw = text
    text = text.strip().lower()
    if text in FOREVER_WORDS:
        return math.inf
    try:
        number = float(text)
    except ValueError:
        pass
    else:
        if math.isnan(number):
            raise ValueError(f"expected a duration, got {raw!r}")
        return math.inf if number < 0 else number
    total = 0.0
    position = 0
    for match in _DURATION_PART.finditer(text):
        if match.start() != position:
            break
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        position = match.end()
        while position < len(text) and text[position] == " ":
            position += 1
    if position == 0 or position != len(text):
        raise ValueError(
            f"expected a duration such as '300', '90s', '5m', '1h30m' or 'forever', got {raw!r}"
        )
    return total


def duration_value(value: object) -> float:
    """A duration given as a TOML/JSON value: a number of seconds or a `parse_duration` string."""
    if isinstance(value, bool):
        raise ValueError(f"expected a duration, got {value!r}")
    if isinstance(value, int | float):
        if math.isnan(value):
            raise ValueError("expected a duration, got nan")
        return math.inf if value < 0 else float(value)
    if isinstance(value, str):
        return parse_duration(value)
    raise ValueError(f"expected a duration such as 300 or '5m', got {describe_value(value)}")


def format_duration(seconds: float) -> str:
    """The inverse of `parse_duration`, for display: ``"forever"``, ``"5m"``, ``"1h30m"``."""
    if math.isinf(seconds):
        return "forever"
    if seconds != int(seconds) or seconds < 60:
        return f"{seconds:g}s"
    rest = int(seconds)
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if rest >= size:
            parts.append(f"{rest // size}{unit}")
            rest %= size
    return "".join(parts)


# --------------------------------------------------------------------------- value parsers
# Each takes the raw value and whether it came from text (environment, CLI), and
# returns the typed value or raises ValueError("expected ..., got ...").

Parser = Callable[[object, bool], Any]


def describe_value(value: object) -> str:
    """A value as an error message shows it: TOML words for TOML types."""
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "a list"
    return repr(value)


def _as_int(value: object, text: bool, what: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if text and isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
    raise ValueError(f"expected {what}, got {describe_value(value)}")


def _int_range(low: int, high: int | None, what: str) -> Callable[[object, bool], int]:
    def parse(value: object, text: bool) -> int:
        number = _as_int(value, text, what)
        if number < low or (high is not None and number > high):
            raise ValueError(f"expected {what}, got {number}")
        return number

    return parse


def _optional_int(low: int, what: str) -> Parser:
    inner = _int_range(low, None, what)

    def parse(value: object, text: bool) -> int | None:
        if isinstance(value, str) and value.strip().lower() == "auto":
            return None
        return inner(value, text)

    return parse


def _duration(allow_forever: bool, allow_zero: bool) -> Parser:
    def parse(value: object, text: bool) -> float:
        seconds = duration_value(value)
        if math.isinf(seconds) and not allow_forever:
            raise ValueError(f"expected a finite duration, got {describe_value(value)}")
        if seconds == 0 and not allow_zero:
            raise ValueError(f"expected a duration above zero, got {describe_value(value)}")
        return seconds

    return parse


_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b?)", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


def parse_size(text: str) -> int:
    """Bytes from "8GiB", "512MiB", "8G", "1.5 GB" (binary units) or a plain number."""
    match = _SIZE.fullmatch(text.strip())
    if not match:
        raise ValueError(f"expected a size such as '8GiB' or '512MiB', got {text!r}")
    return int(float(match.group(1)) * _SIZE_UNITS[match.group(2).lower()])


def _size(allow_auto: bool) -> Parser:
    def parse(value: object, text: bool) -> int | None:
        if isinstance(value, str) and value.strip().lower() == "auto" and allow_auto:
            return None
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
        if isinstance(value, str):
            return parse_size(value)
        raise ValueError(f"expected a size such as '8GiB', got {describe_value(value)}")

    return parse


def _string(value: object, text: bool) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected a string, got {describe_value(value)}")
    if not value.strip() or any(ord(c) < 32 for c in value):
        raise ValueError(f"expected a non-empty string without control characters, got {value!r}")
    return value.strip()


def _host(value: object, text: bool) -> str:
    host = _string(value, text)
    if " " in host or "/" in host:
        raise ValueError(f"expected a host name or IP address, got {host!r}")
    return host


def _url(value: object, text: bool) -> str:
    url = _string(value, text)
    if not re.match(r"https?://[^/\s]+", url):
        raise ValueError(f"expected an http:// or https:// URL, got {url!r}")
    return url.rstrip("/")


def _log_level(value: object, text: bool) -> str:
    level = _string(value, text).lower()
    if level not in LOG_LEVELS:
        raise ValueError(f"expected one of {', '.join(LOG_LEVELS)}, got {value!r}")
    return level


def _api_keys(value: object, text: bool) -> tuple[str, ...]:
    if isinstance(value, str):
        items: list[object] = list(value.split(",")) if text else [value]
    elif isinstance(value, list | tuple):
        items = list(value)
    else:
        raise ValueError(f"expected a list of strings, got {describe_value(value)}")
    keys: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise ValueError(f"expected a list of strings, got an item {describe_value(item)}")
        key = item.strip()
        if not key:
            if text:
                continue  # "a,,b" or a trailing comma
            raise ValueError("expected non-empty keys, got an empty string")
        if any(c.isspace() or ord(c) < 32 for c in key):
            raise ValueError("expected keys without spaces or control characters")
        if key not in keys:
            keys.append(key)
    return tuple(keys)


def _hosts(value: object, text: bool) -> tuple[str, ...]:
    """Host names (a port, brackets around IPv6 and a final dot are dropped), lowercase."""
    if isinstance(value, str):
        items: list[object] = list(value.split(",")) if text else [value]
    elif isinstance(value, list | tuple):
        items = list(value)
    else:
        raise ValueError(f"expected a list of host names, got {describe_value(value)}")
    hosts: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise ValueError(f"expected a list of host names, got an item {describe_value(item)}")
        host = item.strip().lower()
        if not host and text:
            continue
        if host.startswith("["):
            host = host[1:].partition("]")[0]
        elif host.count(":") == 1:
            host = host.partition(":")[0]
        host = host.rstrip(".")
        if not host or not re.fullmatch(r"[a-z0-9._:-]+", host):
            raise ValueError(
                f"expected host names such as 'box.lan' or '192.168.1.5', got {item!r}"
            )
        if host not in hosts:
            hosts.append(host)
    return tuple(hosts)


def _origins(value: object, text: bool) -> tuple[str, ...]:
    """Browser origins ("http://localhost:3000"), or "*" for any origin."""
    if isinstance(value, str):
        items: list[object] = list(value.split(",")) if text else [value]
    elif isinstance(value, list | tuple):
        items = list(value)
    else:
        raise ValueError(f"expected a list of origins, got {describe_value(value)}")
    origins: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise ValueError(f"expected a list of origins, got an item {describe_value(item)}")
        origin = item.strip().rstrip("/")
        if not origin and text:
            continue
        if origin != "*" and not re.fullmatch(r"https?://[A-Za-z0-9.\-\[\]:]+", origin):
            raise ValueError(
                f"expected origins such as 'http://localhost:3000' (scheme, host, port; no "
                f"path) or '*', got {item!r}"
            )
        if origin not in origins:
            origins.append(origin)
    return tuple(origins)


def _paths(value: object, text: bool) -> tuple[Path, ...]:
    if isinstance(value, str):
        items: list[object] = list(value.split(",")) if text else [value]
    elif isinstance(value, list | tuple):
        items = list(value)
    else:
        raise ValueError(f"expected a list of folders, got {describe_value(value)}")
    folders: list[Path] = []
    for item in items:
        if isinstance(item, str) and not item.strip() and text:
            continue
        folder = _path(item, text)
        if not folder.is_absolute():
            raise ValueError(f"expected absolute folders, got {str(folder)!r}")
        folders.append(folder)
    return tuple(folders)


def _flash_attn(value: object, text: bool) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, str) and value.strip().lower() in ("auto", "on", "off"):
        return value.strip().lower()
    raise ValueError(f"expected auto, on or off, got {describe_value(value)}")


def _bool(value: object, text: bool) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("1", "true", "yes", "on"):
        return True
    if isinstance(value, str) and value.strip().lower() in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"expected true or false, got {describe_value(value)}")


def _path(value: object, text: bool) -> Path:
    if isinstance(value, Path):
        return value
    return Path(os.path.expanduser(_string(value, text)))


@dataclass(frozen=True)
class _Option:
    field: str
    key: str  # in settings.toml
    env: tuple[str, ...]
    parse: Parser


OPTIONS: tuple[_Option, ...] = (
    _Option("host", "host", ("APPLIANCE_HOST",), _host),
    _Option("port", "port", ("APPLIANCE_PORT",), _int_range(0, 65535, "a port number 0-65535")),
    _Option(
        "ollama_port",
        "ollama_port",
        ("APPLIANCE_OLLAMA_PORT",),
        _int_range(0, 65535, "a port number 1-65535, or 0 for none"),
    ),
    _Option("api_keys", "api_keys", ("APPLIANCE_API_KEYS", "APPLIANCE_API_KEY"), _api_keys),
    _Option("catalog_path", "catalog", ("APPLIANCE_CATALOG",), _path),
    _Option(
        "default_context",
        "default_context",
        ("APPLIANCE_CONTEXT",),
        _int_range(1, None, "a positive integer"),
    ),
    _Option("keep_alive_s", "keep_alive", ("APPLIANCE_KEEP_ALIVE",), _duration(True, True)),
    _Option(
        "default_max_tokens",
        "default_max_tokens",
        ("APPLIANCE_MAX_TOKENS",),
        _int_range(1, None, "a positive integer"),
    ),
    _Option(
        "max_tokens_limit",
        "max_tokens_limit",
        ("APPLIANCE_MAX_TOKENS_LIMIT",),
        _int_range(1, None, "a positive integer"),
    ),
    _Option(
        "max_body_bytes",
        "max_body_bytes",
        ("APPLIANCE_MAX_BODY_BYTES",),
        _int_range(1024, None, "a number of bytes of at least 1024"),
    ),
    _Option(
        "threads",
        "threads",
        ("APPLIANCE_THREADS",),
        _optional_int(1, "a positive integer or 'auto'"),
    ),
    _Option(
        "n_gpu_layers",
        "n_gpu_layers",
        ("APPLIANCE_N_GPU_LAYERS",),
        _optional_int(-1, "an integer >= -1 (-1 = all layers) or 'auto'"),
    ),
    _Option("hub_endpoint", "hub_endpoint", ("HF_ENDPOINT",), _url),
    _Option("hf_token", "hf_token", ("HF_TOKEN",), _string),
    _Option(
        "heartbeat_timeout_s",
        "heartbeat_timeout",
        ("APPLIANCE_HEARTBEAT_TIMEOUT",),
        _duration(False, False),
    ),
    _Option("load_timeout_s", "load_timeout", ("APPLIANCE_LOAD_TIMEOUT",), _duration(False, False)),
    _Option(
        "restart_backoff_initial_s",
        "restart_backoff_initial",
        ("APPLIANCE_RESTART_BACKOFF",),
        _duration(False, False),
    ),
    _Option(
        "restart_backoff_max_s",
        "restart_backoff_max",
        ("APPLIANCE_RESTART_BACKOFF_MAX",),
        _duration(False, False),
    ),
    _Option("log_level", "log_level", ("APPLIANCE_LOG_LEVEL",), _log_level),
    _Option("hot_budget_cpu_bytes", "hot_budget_cpu", ("APPLIANCE_HOT_BUDGET_CPU",), _size(True)),
    _Option("hot_budget_gpu_bytes", "hot_budget_gpu", ("APPLIANCE_HOT_BUDGET_GPU",), _size(True)),
    _Option("warm_budget_bytes", "warm_budget", ("APPLIANCE_WARM_BUDGET",), _size(True)),
    _Option("cold_budget_bytes", "cold_budget", ("APPLIANCE_COLD_BUDGET",), _size(True)),
    _Option("memory_margin_bytes", "memory_margin", ("APPLIANCE_MEMORY_MARGIN",), _size(False)),
    _Option(
        "telemetry_interval_s",
        "telemetry_interval",
        ("APPLIANCE_TELEMETRY_INTERVAL",),
        _duration(False, True),
    ),
    _Option(
        "warm_keep_alive_s",
        "warm_keep_alive",
        ("APPLIANCE_WARM_KEEP_ALIVE",),
        _duration(True, True),
    ),
    _Option(
        "parallel",
        "parallel",
        ("APPLIANCE_PARALLEL",),
        _optional_int(1, "a positive integer or 'auto'"),
    ),
    _Option(
        "max_queue",
        "max_queue",
        ("APPLIANCE_MAX_QUEUE",),
        _optional_int(0, "an integer >= 0 or 'auto'"),
    ),
    _Option("flash_attn", "flash_attn", ("APPLIANCE_FLASH_ATTN",), _flash_attn),
    _Option(
        "prompt_cache_ram_bytes", "prompt_cache_ram", ("APPLIANCE_PROMPT_CACHE_RAM",), _size(False)
    ),
    _Option(
        "prompt_cache_disk_bytes",
        "prompt_cache_disk",
        ("APPLIANCE_PROMPT_CACHE_DISK",),
        _size(False),
    ),
    _Option(
        "prompt_cache_min_save_s",
        "prompt_cache_min_save",
        ("APPLIANCE_PROMPT_CACHE_MIN_SAVE",),
        _duration(False, True),
    ),
    _Option("weight_repack", "weight_repack", ("APPLIANCE_WEIGHT_REPACK",), _bool),
    _Option(
        "request_timeout_s",
        "request_timeout",
        ("APPLIANCE_REQUEST_TIMEOUT",),
        _duration(True, False),
    ),
    _Option(
        "sse_ping_interval_s",
        "sse_ping_interval",
        ("APPLIANCE_SSE_PING_INTERVAL",),
        _duration(False, True),
    ),
    _Option("allowed_hosts", "allowed_hosts", ("APPLIANCE_ALLOWED_HOSTS",), _hosts),
    _Option("import_dirs", "import_dirs", ("APPLIANCE_IMPORT_DIRS",), _paths),
    _Option(
        "drain_timeout_s", "drain_timeout", ("APPLIANCE_DRAIN_TIMEOUT",), _duration(False, True)
    ),
    _Option("cors_origins", "cors_origins", ("APPLIANCE_CORS_ORIGINS",), _origins),
)

_BY_KEY = {option.key: option for option in OPTIONS}
_BY_FIELD = {option.field: option for option in OPTIONS}
ENV_VARS: tuple[str, ...] = tuple(name for option in OPTIONS for name in option.env)

assert set(_BY_FIELD) == {f.name for f in fields(Settings)}, "every Settings field needs an option"


# --------------------------------------------------------------------------- loading


def load_settings(
    paths: Paths,
    overrides: Mapping[str, Any] | None = None,
    env: Mapping[str, str] = os.environ,
) -> Settings:
    """Settings from ``paths.config_dir/settings.toml`` < ``env`` < ``overrides``.

    Raises SettingsError naming the key and its source (the file, the variable or
    the override) for unknown keys and invalid values.
    """
    values: dict[str, Any] = {}
    settings_file = paths.config_dir / "settings.toml"
    values.update(_from_file(settings_file, paths.config_dir))
    values.update(_from_env(env))
    values.update(_from_overrides(overrides or {}))
    if "catalog_path" not in values:
        values["catalog_path"] = default_catalog_path(paths)
    settings = replace(Settings(), **values)
    _check_consistency(settings)
    return settings


def default_catalog_path(paths: Paths) -> Path | None:
    """``config_dir/models.toml`` if it exists, else the catalog shipped with the package."""
    for candidate in (paths.config_dir / "models.toml", BUNDLED_CATALOG, REPO_CATALOG):
        if candidate.is_file():
            return candidate
    return None


def _from_file(path: Path, config_dir: Path) -> dict[str, Any]:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise SettingsError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise SettingsError(f"{path}: not UTF-8 text (byte {exc.start})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"{path}: {toml_error_text(exc)}") from exc
    values: dict[str, Any] = {}
    for key, value in data.items():
        option = _BY_KEY.get(key)
        if option is None:
            raise SettingsError(f"{path}: {key}: unknown setting{_suggest(key, _BY_KEY)}")
        try:
            parsed = option.parse(value, False)
        except ValueError as exc:
            raise SettingsError(f"{path}: {key}: {exc}") from exc
        if option.field == "catalog_path" and not parsed.is_absolute():
            parsed = config_dir / parsed
        values[option.field] = parsed
    return values


def _from_env(env: Mapping[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for option in OPTIONS:
        if option.field == "api_keys":
            continue
        for name in option.env:
            text = env.get(name, "")
            if not text.strip():
                continue
            try:
                parsed = option.parse(text, True)
            except ValueError as exc:
                raise SettingsError(f"environment variable {name}: {exc}") from exc
            if option.field == "catalog_path":
                parsed = Path(os.path.abspath(parsed))
            values[option.field] = parsed
    keys: tuple[str, ...] = ()
    for name in _BY_FIELD["api_keys"].env:
        text = env.get(name, "")
        if not text.strip():
            continue
        try:
            # APPLIANCE_API_KEYS is a comma-separated list; APPLIANCE_API_KEY is one key.
            found = _api_keys(text, True) if name.endswith("KEYS") else _api_keys([text], False)
        except ValueError as exc:
            raise SettingsError(f"environment variable {name}: {exc}") from exc
        keys += tuple(k for k in found if k not in keys)
    if keys:
        values["api_keys"] = keys
    return values


def _from_overrides(overrides: Mapping[str, Any]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name, value in overrides.items():
        if value is None:
            continue
        option = _BY_FIELD.get(name)
        if option is None:
            raise SettingsError(f"override {name}: unknown setting{_suggest(name, _BY_FIELD)}")
        try:
            values[name] = option.parse(value, True)
        except ValueError as exc:
            raise SettingsError(f"override {name}: {exc}") from exc
    return values


def _check_consistency(settings: Settings) -> None:
    if settings.default_max_tokens > settings.max_tokens_limit:
        raise SettingsError(
            f"default_max_tokens ({settings.default_max_tokens}) is above "
            f"max_tokens_limit ({settings.max_tokens_limit}); lower one or raise the other"
        )
    if settings.restart_backoff_initial_s > settings.restart_backoff_max_s:
        raise SettingsError(
            f"restart_backoff_initial ({format_duration(settings.restart_backoff_initial_s)}) is "
            f"above restart_backoff_max ({format_duration(settings.restart_backoff_max_s)})"
        )


def _suggest(key: str, known: Mapping[str, object]) -> str:
    close = difflib.get_close_matches(key, list(known), n=1)
    if close:
        return f" (did you mean {close[0]!r}?)"
    return f" (known: {', '.join(sorted(known))})"


_TOML_POSITION = re.compile(r"\s*\(at line (\d+), column (\d+)\)\s*$")


def toml_error_text(exc: tomllib.TOMLDecodeError) -> str:
    """``line N: invalid TOML: <reason>`` from a TOMLDecodeError (Python 3.11 has no lineno)."""
    message = str(exc)
    match = _TOML_POSITION.search(message)
    lineno = getattr(exc, "lineno", None)
    if match:
        message = message[: match.start()]
        lineno = lineno or int(match.group(1))
    if lineno:
        return f"line {lineno}: invalid TOML: {message}"
    return f"invalid TOML: {message}"
