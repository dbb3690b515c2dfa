from __future__ import annotations

import math
import re
from pathlib import Path

import pytest

from appliance.paths import Paths, resolve_paths
from appliance.settings import (
    BUNDLED_CATALOG,
    ENV_VARS,
    REPO_CATALOG,
    Settings,
    SettingsError,
    format_duration,
    load_settings,
    parse_duration,
)


@pytest.fixture
def paths(tmp_path: Path) -> Paths:
    return resolve_paths(env={"APPLIANCE_HOME": str(tmp_path)}).ensure()


def write_settings(paths: Paths, text: str) -> Path:
    path = paths.config_dir / "settings.toml"
    path.write_text(text)
    return path


# --------------------------------------------------------------------------- durations


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("300", 300.0),
        ("1.5", 1.5),
        ("0", 0.0),
        ("90s", 90.0),
        ("5m", 300.0),
        ("1h30m", 5400.0),
        ("1h 30m", 5400.0),
        ("2h", 7200.0),
        ("1d", 86400.0),
        ("500ms", 0.5),
        ("1.5m", 90.0),
        (" 5M ", 300.0),
        ("-1", math.inf),
        ("forever", math.inf),
        ("Forever", math.inf),
        ("inf", math.inf),
    ],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "five", "5x", "m5", "5m junk", "1h-30m", "nan", "--1"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError, match=r"duration"):
        parse_duration(text)


def test_format_duration_round_trips() -> None:
    for seconds in (0.0, 1.5, 45.0, 300.0, 5400.0, 90061.0, math.inf):
        assert parse_duration(format_duration(seconds)) == seconds
    assert format_duration(5400) == "1h30m"
    assert format_duration(math.inf) == "forever"


# --------------------------------------------------------------------------- defaults


def test_defaults(paths: Paths) -> None:
    settings = load_settings(paths, env={})
    assert settings.host == "127.0.0.1"
    assert settings.port == 8750
    assert settings.api_keys == ()
    assert not settings.auth_required
    assert settings.default_context == 4096
    assert settings.keep_alive_s == 300.0
    assert settings.default_max_tokens == 2048
    assert settings.max_tokens_limit == 131072
    assert settings.max_body_bytes == 8 * 1024 * 1024
    assert settings.threads is None
    assert settings.n_gpu_layers is None
    assert settings.hub_endpoint is None
    assert settings.hf_token is None
    assert settings.heartbeat_timeout_s == 15.0
    assert settings.load_timeout_s == 300.0
    assert settings.restart_backoff_initial_s == 1.0
    assert settings.restart_backoff_max_s == 60.0
    assert settings.log_level == "info"
    assert settings.base_url == "http://127.0.0.1:8750"


def test_default_catalog_is_the_bundled_one(paths: Paths) -> None:
    expected = BUNDLED_CATALOG if BUNDLED_CATALOG.is_file() else REPO_CATALOG
    assert load_settings(paths, env={}).catalog_path == expected


def test_default_catalog_prefers_config_dir(paths: Paths) -> None:
    (paths.config_dir / "models.toml").write_text("")
    assert load_settings(paths, env={}).catalog_path == paths.config_dir / "models.toml"


def test_secrets_stay_out_of_repr(paths: Paths) -> None:
    settings = load_settings(paths, env={"APPLIANCE_API_KEY": "sk-secret", "HF_TOKEN": "hf_x"})
    assert "sk-secret" not in repr(settings)
    assert "hf_x" not in repr(settings)


# --------------------------------------------------------------------------- precedence


def test_file_then_env_then_overrides(paths: Paths) -> None:
    write_settings(
        paths,
        """
        host = "0.0.0.0"
        port = 9000
        keep_alive = "10m"
        threads = 2
        log_level = "debug"
        """,
    )
    from_file = load_settings(paths, env={})
    assert (from_file.host, from_file.port, from_file.keep_alive_s) == ("0.0.0.0", 9000, 600.0)
    assert from_file.threads == 2
    assert from_file.base_url == "http://127.0.0.1:9000"

    env = {"APPLIANCE_PORT": "9100", "APPLIANCE_KEEP_ALIVE": "1h30m"}
    from_env = load_settings(paths, env=env)
    assert (from_env.host, from_env.port, from_env.keep_alive_s) == ("0.0.0.0", 9100, 5400.0)

    overridden = load_settings(
        paths,
        overrides={"port": 9200, "host": None, "threads": None, "log_level": "ERROR"},
        env=env,
    )
    assert overridden.port == 9200
    assert overridden.host == "0.0.0.0"  # None overrides are ignored
    assert overridden.threads == 2
    assert overridden.log_level == "error"
    assert overridden.keep_alive_s == 5400.0


def test_environment_variables(paths: Paths, tmp_path: Path) -> None:
    env = {
        "APPLIANCE_HOST": "::",
        "APPLIANCE_API_KEYS": "k1, k2,,",
        "APPLIANCE_API_KEY": "k3",
        "APPLIANCE_THREADS": "auto",
        "APPLIANCE_CONTEXT": "8192",
        "APPLIANCE_CATALOG": str(tmp_path / "cat.toml"),
        "APPLIANCE_N_GPU_LAYERS": "-1",
        "APPLIANCE_MAX_TOKENS": "512",
        "APPLIANCE_LOAD_TIMEOUT": "10m",
        "HF_ENDPOINT": "https://hf-mirror.example/",
        "HF_TOKEN": "hf_abc",
        "APPLIANCE_KEEP_ALIVE": "-1",
        "APPLIANCE_PORT": "",  # empty: unset
        "APPLIANCE_OLLAMA_PORT": "11434",
    }
    settings = load_settings(paths, env=env)
    assert settings.host == "::"
    assert settings.base_url == "http://[::1]:8750"
    assert settings.api_keys == ("k1", "k2", "k3")
    assert settings.auth_required
    assert settings.threads is None
    assert settings.default_context == 8192
    assert settings.catalog_path == tmp_path / "cat.toml"
    assert settings.n_gpu_layers == -1
    assert settings.default_max_tokens == 512
    assert settings.load_timeout_s == 600.0
    assert settings.hub_endpoint == "https://hf-mirror.example"
    assert settings.hf_token == "hf_abc"
    assert settings.keep_alive_s == math.inf
    assert settings.port == 8750
    assert settings.ollama_port == 11434


def test_every_env_var_is_read(paths: Paths) -> None:
    assert "APPLIANCE_KEEP_ALIVE" in ENV_VARS and "HF_TOKEN" in ENV_VARS
    assert len(ENV_VARS) == len(set(ENV_VARS))


def test_file_values_of_every_kind(paths: Paths, tmp_path: Path) -> None:
    write_settings(
        paths,
        """
        api_keys = ["a", "b"]
        catalog = "mine.toml"
        default_context = 2048
        keep_alive = 0
        default_max_tokens = 100
        max_tokens_limit = 200
        max_body_bytes = 1048576
        n_gpu_layers = "auto"
        hub_endpoint = "http://localhost:8080"
        hf_token = "hf_t"
        heartbeat_timeout = 5
        load_timeout = "2m"
        restart_backoff_initial = "500ms"
        restart_backoff_max = "30s"
        """,
    )
    settings = load_settings(paths, env={})
    assert settings.api_keys == ("a", "b")
    assert settings.catalog_path == paths.config_dir / "mine.toml"  # relative to config_dir
    assert settings.keep_alive_s == 0.0
    assert settings.max_tokens_limit == 200
    assert settings.n_gpu_layers is None
    assert settings.heartbeat_timeout_s == 5.0
    assert settings.load_timeout_s == 120.0
    assert settings.restart_backoff_initial_s == 0.5
    assert settings.restart_backoff_max_s == 30.0


def test_settings_are_frozen() -> None:
    with pytest.raises(AttributeError):
        Settings().port = 1  # type: ignore[misc]


# --------------------------------------------------------------------------- errors


def test_unknown_key_names_the_key_and_file(paths: Paths) -> None:
    path = write_settings(paths, "prot = 9000\n")
    with pytest.raises(SettingsError) as info:
        load_settings(paths, env={})
    message = str(info.value)
    assert str(path) in message and "prot" in message and "unknown setting" in message
    assert "did you mean 'port'" in message


@pytest.mark.parametrize(
    ("text", "key", "fragment"),
    [
        ('port = "8750"', "port", "expected a port number"),
        ("port = 70000", "port", "expected a port number"),
        ("port = true", "port", "got true"),
        ("ollama_port = 70000", "ollama_port", "port number 1-65535, or 0 for none"),
        ("default_context = 0", "default_context", "positive integer"),
        ("default_context = 1.5", "default_context", "positive integer"),
        ('keep_alive = "soon"', "keep_alive", "duration"),
        ("api_keys = [1]", "api_keys", "list of strings"),
        ('api_keys = ["has space"]', "api_keys", "spaces"),
        ('log_level = "loud"', "log_level", "expected one of"),
        ("threads = 0", "threads", "positive integer"),
        ("n_gpu_layers = -2", "n_gpu_layers", ">= -1"),
        ('hub_endpoint = "ftp://x"', "hub_endpoint", "http"),
        ('heartbeat_timeout = "forever"', "heartbeat_timeout", "finite"),
        ("load_timeout = 0", "load_timeout", "above zero"),
        ("[host]\nname = 1", "host", "a table"),
    ],
)
def test_bad_types_name_key_and_file(paths: Paths, text: str, key: str, fragment: str) -> None:
    path = write_settings(paths, text + "\n")
    with pytest.raises(SettingsError) as info:
        load_settings(paths, env={})
    message = str(info.value)
    assert message.startswith(f"{path}: {key}: "), message
    assert fragment in message


def test_toml_syntax_error_has_line(paths: Paths) -> None:
    path = write_settings(paths, 'host = "x"\nport = = 1\n')
    with pytest.raises(SettingsError, match=rf"^{re.escape(str(path))}: line 2: invalid TOML"):
        load_settings(paths, env={})


def test_bad_env_names_the_variable(paths: Paths) -> None:
    with pytest.raises(SettingsError, match=r"^environment variable APPLIANCE_PORT: "):
        load_settings(paths, env={"APPLIANCE_PORT": "http"})
    with pytest.raises(SettingsError, match=r"^environment variable APPLIANCE_KEEP_ALIVE: "):
        load_settings(paths, env={"APPLIANCE_KEEP_ALIVE": "a while"})


def test_bad_override(paths: Paths) -> None:
    with pytest.raises(SettingsError, match=r"^override port: "):
        load_settings(paths, overrides={"port": -1}, env={})
    with pytest.raises(SettingsError, match=r"^override nope: unknown setting"):
        load_settings(paths, overrides={"nope": 1}, env={})


def test_inconsistent_limits(paths: Paths) -> None:
    write_settings(paths, "default_max_tokens = 500\nmax_tokens_limit = 100\n")
    with pytest.raises(SettingsError, match=r"default_max_tokens .500. is above max_tokens_limit"):
        load_settings(paths, env={})
    write_settings(paths, "")
    with pytest.raises(SettingsError, match=r"restart_backoff_initial"):
        load_settings(paths, overrides={"restart_backoff_initial_s": 120.0}, env={})


def test_settings_error_is_a_value_error() -> None:
    assert issubclass(SettingsError, ValueError)


def test_budgets_and_sizes(tmp_path: Path) -> None:
    from appliance.settings import parse_size

    assert parse_size("8GiB") == 8 * 1024**3
    assert parse_size("512 MiB") == 512 * 1024**2
    assert parse_size("100") == 100
    with pytest.raises(ValueError, match="size"):
        parse_size("lots")
    paths = Paths.under(tmp_path)
    env = {
        "APPLIANCE_WARM_BUDGET": "2GiB",
        "APPLIANCE_HOT_BUDGET_CPU": "auto",
        "APPLIANCE_WARM_KEEP_ALIVE": "forever",
    }
    settings = load_settings(paths, env=env)
    assert settings.warm_budget_bytes == 2 * 1024**3
    assert settings.hot_budget_cpu_bytes is None
    assert settings.warm_keep_alive_s == float("inf")
    with pytest.raises(SettingsError, match="APPLIANCE_MEMORY_MARGIN"):
        load_settings(paths, env={"APPLIANCE_MEMORY_MARGIN": "auto"})
