from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import pytest

from appliance.paths import Paths, resolve_paths

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="XDG layout")

SYSTEMD_ENV = {
    "STATE_DIRECTORY": "/var/lib/appliance",
    "CONFIGURATION_DIRECTORY": "/etc/appliance",
    "LOGS_DIRECTORY": "/var/log/appliance",
    "CACHE_DIRECTORY": "/var/cache/appliance",
    "RUNTIME_DIRECTORY": "/run/appliance",
}


def _under(home: Path) -> Paths:
    return Paths(
        data_dir=home / "data",
        config_dir=home / "config",
        store_dir=home / "data" / "store",
        log_dir=home / "logs",
        run_dir=home / "run",
        cache_dir=home / "cache",
    )


def test_flag_wins_over_everything(tmp_path: Path) -> None:
    env = {"APPLIANCE_HOME": str(tmp_path / "env-home"), **SYSTEMD_ENV, "HOME": "/home/u"}
    assert resolve_paths(str(tmp_path / "flag"), env=env) == _under(tmp_path / "flag")


def test_appliance_home_wins_over_systemd(tmp_path: Path) -> None:
    env = {"APPLIANCE_HOME": str(tmp_path), **SYSTEMD_ENV}
    assert resolve_paths(env=env) == _under(tmp_path)


def test_relative_home_is_made_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert resolve_paths(env={"APPLIANCE_HOME": "rel"}).data_dir == tmp_path / "rel" / "data"
    assert resolve_paths("~/x", env={"HOME": "/home/u"}).config_dir == Path("/home/u/x/config")


def test_systemd_directories() -> None:
    paths = resolve_paths(env=dict(SYSTEMD_ENV))
    assert paths == Paths(
        data_dir=Path("/var/lib/appliance"),
        config_dir=Path("/etc/appliance"),
        store_dir=Path("/var/lib/appliance/store"),
        log_dir=Path("/var/log/appliance"),
        run_dir=Path("/run/appliance"),
        cache_dir=Path("/var/cache/appliance"),
    )


def test_systemd_lists_take_the_first() -> None:
    env = {"STATE_DIRECTORY": "/var/lib/appliance:/var/lib/other", "HOME": "/home/u"}
    assert resolve_paths(env=env).data_dir == Path("/var/lib/appliance")


@linux_only
def test_systemd_directories_one_by_one() -> None:
    # Each variable decides its own directory; the others stay per-user.
    env = {"CACHE_DIRECTORY": "/var/cache/appliance", "HOME": "/home/u"}
    paths = resolve_paths(env=env)
    assert paths.cache_dir == Path("/var/cache/appliance")
    assert paths.data_dir == Path("/home/u/.local/share/appliance")


@linux_only
def test_user_directories_default() -> None:
    paths = resolve_paths(env={"HOME": "/home/u"}, is_root=False)
    assert paths == Paths(
        data_dir=Path("/home/u/.local/share/appliance"),
        config_dir=Path("/home/u/.config/appliance"),
        store_dir=Path("/home/u/.local/share/appliance/store"),
        log_dir=Path("/home/u/.local/state/appliance/log"),
        run_dir=Path("/home/u/.local/state/appliance/run"),
        cache_dir=Path("/home/u/.cache/appliance"),
    )


@linux_only
def test_user_directories_follow_xdg() -> None:
    env = {
        "HOME": "/home/u",
        "XDG_DATA_HOME": "/d",
        "XDG_CONFIG_HOME": "/c",
        "XDG_STATE_HOME": "/s",
        "XDG_CACHE_HOME": "/k",
        "XDG_RUNTIME_DIR": "/run/user/1000",
    }
    paths = resolve_paths(env=env, is_root=False)
    assert paths.data_dir == Path("/d/appliance")
    assert paths.store_dir == Path("/d/appliance/store")
    assert paths.config_dir == Path("/c/appliance")
    assert paths.log_dir == Path("/s/appliance/log")
    assert paths.cache_dir == Path("/k/appliance")
    assert paths.run_dir == Path("/run/user/1000/appliance")


@linux_only
def test_relative_xdg_values_are_ignored() -> None:
    paths = resolve_paths(env={"HOME": "/home/u", "XDG_DATA_HOME": "relative"})
    assert paths.data_dir == Path("/home/u/.local/share/appliance")


def test_empty_values_count_as_unset(tmp_path: Path) -> None:
    env = {"APPLIANCE_HOME": "", "STATE_DIRECTORY": "", "HOME": str(tmp_path)}
    assert resolve_paths("", env=env).data_dir != Path("")


def test_resolve_is_pure(tmp_path: Path) -> None:
    resolve_paths(env={"APPLIANCE_HOME": str(tmp_path / "h")})
    assert not (tmp_path / "h").exists()


def test_ensure_creates_private_data_dirs(tmp_path: Path) -> None:
    paths = resolve_paths(env={"APPLIANCE_HOME": str(tmp_path / "h")}).ensure()
    for directory in paths.all():
        assert directory.is_dir()
    for directory in (paths.data_dir, paths.store_dir, paths.run_dir):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert paths.ensure() == paths  # idempotent
    assert paths.settings_file == paths.config_dir / "settings.toml"
    assert paths.catalog_file == paths.config_dir / "models.toml"


def _system(root: Path) -> dict[str, Path]:
    return {
        name: root / name for name in ("data_dir", "config_dir", "log_dir", "run_dir", "cache_dir")
    }


@linux_only
def test_root_uses_the_system_service_folders_when_they_exist(tmp_path: Path) -> None:
    """`sudo appliance ps` on a box with the system service reaches it with its settings."""
    system = _system(tmp_path / "sys")
    env = {"HOME": str(tmp_path / "root")}
    assert resolve_paths(env=env, system=system, is_root=True).config_dir == (
        tmp_path / "root" / ".config" / "appliance"
    )  # no system service installed
    system["config_dir"].mkdir(parents=True)
    (system["config_dir"] / "settings.toml").write_text('api_keys = ["k"]\n')
    paths = resolve_paths(env=env, system=system, is_root=True)
    assert (paths.config_dir, paths.store_dir) == (
        system["config_dir"],
        system["data_dir"] / "store",
    )
    assert resolve_paths(env=env, system=system, is_root=False).config_dir != system["config_dir"]
    own = tmp_path / "root" / ".config" / "appliance"
    own.mkdir(parents=True)
    (own / "settings.toml").write_text("")
    assert resolve_paths(env=env, system=system, is_root=True).config_dir == own  # root's own
    flagged = resolve_paths(str(tmp_path / "h"), env=env, system=system, is_root=True)
    assert flagged.config_dir == tmp_path / "h" / "config"


def test_foreign_owner_is_for_root_writing_into_another_users_folder(tmp_path: Path) -> None:
    from appliance.paths import foreign_owner

    store = tmp_path / "data" / "store"  # missing: its nearest existing parent decides
    assert foreign_owner(store, euid=1000) is None  # not root: its files are its own
    if os.geteuid() != 0:
        pytest.skip("chown needs root")
    assert foreign_owner(store, euid=0) is None  # root's own folder
    os.chown(tmp_path, 65534, 65534)
    owner = foreign_owner(store, euid=0)
    assert owner is not None and owner != "root"
    store.mkdir(parents=True)  # made by root below the other user's folder: root's again
    assert foreign_owner(store, euid=0) is None
