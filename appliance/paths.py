"""Where the appliance keeps its files.

One resolution order, used by the daemon and the CLI alike:

1. the ``--home DIR`` flag (``home=``), then
2. the ``APPLIANCE_HOME`` environment variable. Both give one self-contained
   tree::

       DIR/data         data_dir   (DIR/data/store holds the models)
       DIR/config       config_dir (settings.toml, models.toml)
       DIR/logs         log_dir
       DIR/run          run_dir    (pid file, sockets)
       DIR/cache        cache_dir

3. the directories systemd hands a service (``StateDirectory=`` and friends):
   ``STATE_DIRECTORY``, ``CONFIGURATION_DIRECTORY``, ``LOGS_DIRECTORY``,
   ``CACHE_DIRECTORY`` and ``RUNTIME_DIRECTORY``. Each may list several
   directories separated by ``:``; the first is used. Each one that is set
   wins over steps 4 and 5 for its own directory only.
4. for root, when the system service is installed (``/etc/appliance/settings.toml``
   exists) and root has no settings of its own: the system service's folders
   (``SYSTEM_LAYOUT``), so ``sudo appliance ps`` reaches the service with its key;
5. the per-user directories: on Linux the XDG base directories, read from
   ``env`` (``XDG_DATA_HOME``, ``XDG_CONFIG_HOME``, ``XDG_STATE_HOME``,
   ``XDG_CACHE_HOME``, ``XDG_RUNTIME_DIR``, ``HOME``) with the same results as
   platformdirs (``~/.local/share/appliance``, ``~/.config/appliance``,
   ``~/.local/state/appliance/log``, ``~/.cache/appliance``,
   ``$XDG_RUNTIME_DIR/appliance``, or ``~/.local/state/appliance/run`` when there
   is no runtime directory); on other systems platformdirs itself.

`resolve_paths` only computes paths; `Paths.ensure` creates them.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

APP_NAME = "appliance"
HOME_ENV = "APPLIANCE_HOME"

# Layout below a --home / APPLIANCE_HOME directory.
HOME_LAYOUT = {
    "data_dir": "data",
    "config_dir": "config",
    "log_dir": "logs",
    "run_dir": "run",
    "cache_dir": "cache",
}

# The variables systemd sets for StateDirectory= etc.
SYSTEMD_ENV = {
    "data_dir": "STATE_DIRECTORY",
    "config_dir": "CONFIGURATION_DIRECTORY",
    "log_dir": "LOGS_DIRECTORY",
    "cache_dir": "CACHE_DIRECTORY",
    "run_dir": "RUNTIME_DIRECTORY",
}

# The system service's folders: systemd's StateDirectory= and friends in
# systemd/appliance.service (the installer's system mode).
SYSTEM_LAYOUT = {
    "data_dir": Path("/var/lib") / APP_NAME,
    "config_dir": Path("/etc") / APP_NAME,
    "log_dir": Path("/var/log") / APP_NAME,
    "run_dir": Path("/run") / APP_NAME,
    "cache_dir": Path("/var/cache") / APP_NAME,
}

PRIVATE_MODE = 0o700


@dataclass(frozen=True)
class Paths:
    """The appliance's directories. ``store_dir`` is always ``data_dir / "store"``."""

    data_dir: Path
    config_dir: Path
    store_dir: Path
    log_dir: Path
    run_dir: Path
    cache_dir: Path

    @classmethod
    def under(cls, home: Path) -> Paths:
        """The self-contained layout below one directory (see the module docstring)."""
        data_dir = home / HOME_LAYOUT["data_dir"]
        return cls(
            data_dir=data_dir,
            config_dir=home / HOME_LAYOUT["config_dir"],
            store_dir=data_dir / "store",
            log_dir=home / HOME_LAYOUT["log_dir"],
            run_dir=home / HOME_LAYOUT["run_dir"],
            cache_dir=home / HOME_LAYOUT["cache_dir"],
        )

    @property
    def settings_file(self) -> Path:
        return self.config_dir / "settings.toml"

    @property
    def catalog_file(self) -> Path:
        return self.config_dir / "models.toml"

    def all(self) -> tuple[Path, ...]:
        return (
            self.data_dir,
            self.config_dir,
            self.store_dir,
            self.log_dir,
            self.run_dir,
            self.cache_dir,
        )

    def ensure(self) -> Paths:
        """Create every directory that is missing and return self.

        The data, store and run directories are created private (0700): they hold
        the models, and the run directory may hold sockets. Directories that exist
        already are left as they are (systemd or the operator made them).
        """
        private = {self.data_dir, self.store_dir, self.run_dir}
        for directory in self.all():
            if directory.is_dir():
                continue
            directory.mkdir(parents=True, exist_ok=True)
            if directory in private:
                directory.chmod(PRIVATE_MODE)
        return self


def resolve_paths(
    home: str | None = None,
    env: Mapping[str, str] = os.environ,
    *,
    system: Mapping[str, Path] = SYSTEM_LAYOUT,
    is_root: bool | None = None,
) -> Paths:
    """Resolve the appliance's directories: flag > APPLIANCE_HOME > systemd > the system
    service's (root only) > per-user."""
    if home:
        return Paths.under(_absolute(home, env))
    env_home = env.get(HOME_ENV, "")
    if env_home:
        return Paths.under(_absolute(env_home, env))

    user = _user_dirs(env)
    if is_root is None:
        is_root = hasattr(os, "geteuid") and os.geteuid() == 0
    if (
        is_root
        and not any(env.get(variable) for variable in SYSTEMD_ENV.values())
        and (system["config_dir"] / "settings.toml").is_file()
        and not (user["config_dir"] / "settings.toml").is_file()
    ):
        user = dict(system)
    chosen: dict[str, Path] = {}
    for field, variable in SYSTEMD_ENV.items():
        first = env.get(variable, "").split(":")[0]
        chosen[field] = Path(first) if first and os.path.isabs(first) else user[field]
    return Paths(
        data_dir=chosen["data_dir"],
        config_dir=chosen["config_dir"],
        store_dir=chosen["data_dir"] / "store",
        log_dir=chosen["log_dir"],
        run_dir=chosen["run_dir"],
        cache_dir=chosen["cache_dir"],
    )


def foreign_owner(path: Path, euid: int | None = None) -> str | None:
    """The user who owns `path` (or its nearest existing parent) when this process runs as
    root and that user is not root, else None. Files root writes there (a model pulled by
    `sudo appliance pull` while the service is stopped) would be root's, private, and
    unreadable to the service's user that owns the store."""
    if euid is None:
        euid = os.geteuid() if hasattr(os, "geteuid") else -1
    if euid != 0:
        return None
    for candidate in (path, *path.parents):
        try:
            uid = candidate.stat().st_uid
        except OSError:
            continue
        if uid == 0:
            return None
        try:
            import pwd

            return pwd.getpwuid(uid).pw_name
        except (ImportError, KeyError):
            return str(uid)
    return None


def _absolute(path: str, env: Mapping[str, str]) -> Path:
    if path == "~" or path.startswith("~/"):
        path = str(_home_dir(env)) + path[1:]
    return Path(os.path.abspath(path))


def _home_dir(env: Mapping[str, str]) -> Path:
    home = env.get("HOME", "")
    return Path(home) if home and os.path.isabs(home) else Path.home()


def _xdg(env: Mapping[str, str], variable: str, default: Path) -> Path:
    # The XDG spec says relative paths in these variables are invalid and must be ignored.
    value = env.get(variable, "")
    return Path(value) if value and os.path.isabs(value) else default


def _user_dirs(env: Mapping[str, str]) -> dict[str, Path]:
    if sys.platform.startswith("linux"):
        home = _home_dir(env)
        state = _xdg(env, "XDG_STATE_HOME", home / ".local" / "state") / APP_NAME
        runtime = env.get("XDG_RUNTIME_DIR", "")
        return {
            "data_dir": _xdg(env, "XDG_DATA_HOME", home / ".local" / "share") / APP_NAME,
            "config_dir": _xdg(env, "XDG_CONFIG_HOME", home / ".config") / APP_NAME,
            "log_dir": state / "log",
            "cache_dir": _xdg(env, "XDG_CACHE_HOME", home / ".cache") / APP_NAME,
            "run_dir": (
                Path(runtime) / APP_NAME if runtime and os.path.isabs(runtime) else state / "run"
            ),
        }
    import platformdirs  # only off Linux: it reads os.environ, not env

    dirs = platformdirs.PlatformDirs(APP_NAME, appauthor=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        runtime_dir = Path(dirs.user_runtime_dir)
    return {
        "data_dir": Path(dirs.user_data_dir),
        "config_dir": Path(dirs.user_config_dir),
        "log_dir": Path(dirs.user_log_dir),
        "cache_dir": Path(dirs.user_cache_dir),
        "run_dir": runtime_dir,
    }
