"""installer.sh: syntax, options, the dry-run plan, accelerator detection, the API
key of the system service, the next steps it prints, --uninstall (and --purge), and
real installs (of a stub package, offline) into a temporary home: one without systemd,
one of the system service into a fake root (a fake `id` says root, fake `systemctl`
and `chown` log what they are asked)."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
INSTALLER = REPO / "installer.sh"
SYSTEM_PATH = "/usr/bin:/bin"

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")


def run_installer(
    *args: str, env: dict[str, str] | None = None, script: Path = INSTALLER, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    base = {
        "PATH": os.environ.get("PATH", SYSTEM_PATH),
        "HOME": os.environ.get("HOME", "/tmp"),
        "PYTHON": sys.executable,
    }
    return subprocess.run(
        ["bash", str(script), *args],
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def fake_tools(directory: Path, scripts: dict[str, str]) -> str:
    """Executables named after GPU tools; returns a PATH with them first."""
    directory.mkdir(exist_ok=True)
    for name, body in scripts.items():
        tool = directory / name
        tool.write_text("#!/bin/sh\n" + body + "\n")
        tool.chmod(0o755)
    return f"{directory}:{SYSTEM_PATH}"


NVIDIA_SMI = """
case "$*" in
  -L) echo "GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-1234)" ;;
  *compute_cap*) echo "9.0" ;;
  *) exit 0 ;;
esac
"""


def rendered_unit(out: str) -> list[str]:
    """The unit file a dry run shows, one line per item."""
    return [
        line.split("| ", 1)[1] if "| " in line else ""
        for line in out.splitlines()
        if line.startswith("    |")
    ]


def on_system_path(name: str) -> bool:
    return any(os.access(os.path.join(d, name), os.X_OK) for d in SYSTEM_PATH.split(":"))


# --------------------------------------------------------------------------- basics


def test_syntax() -> None:
    subprocess.run(["bash", "-n", str(INSTALLER)], check=True)


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck not installed")
def test_shellcheck_clean() -> None:
    result = subprocess.run(
        ["shellcheck", str(INSTALLER)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout


def test_help() -> None:
    result = run_installer("--help")
    assert result.returncode == 0
    for option in (
        "--cpu",
        "--no-start",
        "--prefix",
        "--port",
        "--dry-run",
        "--user",
        "--uninstall",
        "--purge",
    ):
        assert option in result.stdout


def test_unknown_option_and_bad_port() -> None:
    result = run_installer("--frobnicate")
    assert result.returncode != 0 and "unknown option: --frobnicate" in result.stderr
    result = run_installer("--dry-run", "--port", "http")
    assert result.returncode != 0 and "--port" in result.stderr
    result = run_installer("--dry-run", "--port", "70000")
    assert result.returncode != 0


def test_purge_goes_with_uninstall() -> None:
    result = run_installer("--purge", "--dry-run")
    assert result.returncode != 0 and "--purge goes with --uninstall" in result.stderr


def test_old_python_is_refused(tmp_path: Path) -> None:
    old = tmp_path / "python3"
    old.write_text('#!/bin/sh\ncase "$2" in *python_version*) echo 3.9.2 ;; *) exit 1 ;; esac\n')
    old.chmod(0o755)
    result = run_installer("--dry-run", env={"PYTHON": str(old)})
    assert result.returncode != 0
    assert "needs Python >= 3.11" in result.stderr and "3.9.2" in result.stderr


# --------------------------------------------------------------------------- the plan


def test_dry_run_cpu_plan(tmp_path: Path) -> None:
    prefix = tmp_path / "prefix"
    result = run_installer("--dry-run", "--cpu", "--prefix", str(prefix))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "dry run" in out
    assert "backend:    cpu (--cpu given)" in out
    assert f"venv:       {prefix}/venv" in out
    assert f"{prefix}/venv/bin/appliance" in out
    assert "would run:" in out and "pip install" in out
    assert "onnxruntime-genai-cuda" not in out  # the CPU packages stay
    assert not prefix.exists(), "a dry run must change nothing"


def test_dry_run_from_the_environment(tmp_path: Path) -> None:
    prefix = tmp_path / "p"
    result = run_installer(
        "--cpu", "--prefix", str(prefix), env={"APPLIANCE_INSTALLER_DRY_RUN": "1"}
    )
    assert result.returncode == 0, result.stderr
    assert "dry run" in result.stdout
    assert not prefix.exists()


def test_dry_run_renders_the_user_unit(tmp_path: Path) -> None:
    home = tmp_path / "home"
    result = run_installer(
        "--dry-run",
        "--cpu",
        "--user",
        "--port",
        "9123",
        env={"HOME": str(home), "APPLIANCE_INSTALLER_SYSTEMD": "1"},
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    venv = home / ".local/share/appliance/venv"
    assert f"{home}/.config/systemd/user/appliance.service" in out
    assert f"| ExecStart={venv}/bin/appliance serve" in out
    assert "| Environment=APPLIANCE_PORT=9123" in out
    assert not [line for line in rendered_unit(out) if "@" in line]
    assert "Template for" not in out  # the template's notes are dropped
    assert "systemctl --user enable appliance.service" in out
    assert "systemctl --user restart appliance.service" in out
    assert f"{home}/.local/bin/appliance" in out
    assert not home.exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="the system install is planned only as root")
def test_dry_run_renders_the_system_unit(tmp_path: Path) -> None:
    prefix = tmp_path / "opt"
    result = run_installer(
        "--dry-run",
        "--cpu",
        "--no-start",
        "--prefix",
        str(prefix),
        env={"APPLIANCE_INSTALLER_SYSTEMD": "1"},
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "/etc/systemd/system/appliance.service" in out
    assert f"| ExecStart={prefix}/venv/bin/appliance serve" in out
    for directive in (
        "User=appliance",
        "StateDirectory=appliance",
        "ConfigurationDirectory=appliance",
        "LogsDirectory=appliance",
        "CacheDirectory=appliance",
        "RuntimeDirectory=appliance",
        "Restart=on-failure",
        "KillMode=control-group",
        "LimitMEMLOCK=infinity",
        "NoNewPrivileges=true",
        "ProtectSystem=strict",
        "ProtectHome=read-only",
        "PrivateTmp=true",
    ):
        assert f"| {directive}" in out, directive
    assert "| Environment=APPLIANCE_PORT" not in out  # no --port: settings decide
    assert not [line for line in rendered_unit(out) if line.startswith("ExecStartPre")]
    assert "systemctl restart" not in out  # --no-start
    assert "/usr/local/bin/appliance" in out


@pytest.mark.skipif(os.geteuid() != 0, reason="the system install is planned only as root")
@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_system_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    prefix = tmp_path / "opt"
    (prefix / "venv/bin").mkdir(parents=True)
    (prefix / "venv/bin/appliance").write_text("#!/bin/sh\n")
    (prefix / "venv/bin/appliance").chmod(0o755)
    result = run_installer(
        "--dry-run",
        "--cpu",
        "--port",
        "9000",
        "--prefix",
        str(prefix),
        env={"APPLIANCE_INSTALLER_SYSTEMD": "1"},
    )
    assert result.returncode == 0, result.stderr
    unit = tmp_path / "appliance.service"
    unit.write_text("\n".join(rendered_unit(result.stdout)) + "\n")
    verify = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, check=False
    )
    assert verify.returncode == 0, verify.stderr
    assert "appliance.service" not in verify.stderr, verify.stderr  # no warnings about it


# --------------------------------------------------------------------------- accelerators


def test_nvidia_with_cuda_toolkit(tmp_path: Path) -> None:
    path = fake_tools(
        tmp_path / "bin", {"nvidia-smi": NVIDIA_SMI, "nvcc": "echo nvcc", "rocminfo": "exit 0"}
    )
    result = run_installer("--dry-run", "--user", env={"PATH": path, "HOME": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    assert "backend:    cuda (NVIDIA GPU (GPU 0: NVIDIA H100 80GB HBM3)" in result.stdout
    assert "CMAKE_ARGS=-DGGML_CUDA=on -DCMAKE_CUDA_ARCHITECTURES=90" in result.stdout
    assert f"CUDACXX={tmp_path}/bin/nvcc" in result.stdout
    # ONNX on the GPU: the CUDA packages replace the CPU ones, at the pinned version.
    assert "pip uninstall --yes --quiet onnxruntime-genai onnxruntime" in result.stdout
    assert "onnxruntime-genai-cuda==0.18.0" in result.stdout


@pytest.mark.skipif(on_system_path("nvcc"), reason="a real nvcc is on the system PATH")
def test_nvidia_without_cuda_toolkit_builds_for_cpu(tmp_path: Path) -> None:
    path = fake_tools(tmp_path / "bin", {"nvidia-smi": NVIDIA_SMI})
    env = {"PATH": path, "HOME": str(tmp_path), "CUDA_HOME": str(tmp_path / "no-cuda")}
    result = run_installer("--dry-run", "--user", env=env)
    assert result.returncode == 0, result.stderr
    assert (
        "NVIDIA GPU found but no CUDA toolkit (nvcc): building for CPU; "
        "install cuda-toolkit and re-run" in result.stderr
    )
    assert "backend:    cpu" in result.stdout


@pytest.mark.skipif(on_system_path("nvidia-smi"), reason="a real nvidia-smi exists")
def test_rocm(tmp_path: Path) -> None:
    rocminfo = 'echo "  Name:                    gfx1100"; echo "  Name: gfx000"'
    path = fake_tools(tmp_path / "bin", {"rocminfo": rocminfo, "hipcc": "exit 0"})
    result = run_installer("--dry-run", "--user", env={"PATH": path, "HOME": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    assert "backend:    rocm" in result.stdout
    assert "CMAKE_ARGS=-DGGML_HIP=on -DGPU_TARGETS=gfx1100" in result.stdout
    # ONNX: PyPI has no ROCm build; the CPU packages stay and the way to the GPU is named.
    assert "onnxruntime-genai-cuda" not in result.stdout
    assert "AMDGPU_EP_PATH=/path/to/libamdgpu-ep.so" in result.stderr


@pytest.mark.skipif(
    on_system_path("nvidia-smi") or on_system_path("hipcc"), reason="a real GPU toolchain exists"
)
def test_rocm_without_hipcc_builds_for_cpu(tmp_path: Path) -> None:
    path = fake_tools(tmp_path / "bin", {"rocminfo": "exit 0"})
    env = {"PATH": path, "HOME": str(tmp_path), "ROCM_PATH": str(tmp_path / "no-rocm")}
    result = run_installer("--dry-run", "--user", env=env)
    assert result.returncode == 0, result.stderr
    assert "no HIP compiler (hipcc): building for CPU" in result.stderr
    assert "backend:    cpu" in result.stdout


def test_cpu_flag_wins_over_a_gpu(tmp_path: Path) -> None:
    path = fake_tools(tmp_path / "bin", {"nvidia-smi": NVIDIA_SMI, "nvcc": "exit 0"})
    result = run_installer(
        "--dry-run", "--cpu", "--user", env={"PATH": path, "HOME": str(tmp_path)}
    )
    assert result.returncode == 0, result.stderr
    assert "backend:    cpu (--cpu given)" in result.stdout
    assert "GGML_CUDA" not in result.stdout


def test_cmake_args_from_the_environment(tmp_path: Path) -> None:
    result = run_installer(
        "--dry-run",
        "--user",
        env={"HOME": str(tmp_path), "CMAKE_ARGS": "-DGGML_CUDA=on -DGGML_CUDA_F16=on"},
    )
    assert result.returncode == 0, result.stderr
    assert "backend:    cuda (CMAKE_ARGS from the environment)" in result.stdout


# --------------------------------------------------------------------------- fake root

FAKE_LOGGER = 'echo "$(basename "$0") $*" >> "$FAKE_LOG"'

# `id` as root, with the service user "appliance" (unless FAKE_NO_SERVICE_USER is set).
FAKE_ROOT_ID = """
case "$*" in
  -u) echo 0 ;;
  -un) echo root ;;
  "-u appliance") [ -n "$FAKE_NO_SERVICE_USER" ] && exit 1; echo 999 ;;
  "-gn appliance") echo appliance ;;
  *) for d in /usr/bin /bin; do [ -x "$d/id" ] && exec "$d/id" "$@"; done; exit 1 ;;
esac
"""


def fake_root(tmp_path: Path) -> tuple[dict[str, str], Path, Path]:
    """The environment of a system install (root, systemd) whose system folders are
    below tmp_path/root; returns it, that root, and the log of systemctl, chown and
    useradd calls."""
    root = tmp_path / "root"
    log = tmp_path / "tools.log"
    path = fake_tools(
        tmp_path / "bin",
        {
            "id": FAKE_ROOT_ID,
            "systemctl": FAKE_LOGGER,
            "chown": FAKE_LOGGER,
            "useradd": FAKE_LOGGER,
        },
    )
    env = {
        "PATH": path,
        "HOME": str(tmp_path / "roothome"),
        "FAKE_LOG": str(log),
        "APPLIANCE_INSTALLER_SYSTEMD": "1",
        "APPLIANCE_INSTALLER_SYSROOT": str(root),
    }
    return env, root, log


def logged(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


# --------------------------------------------------------------------------- the API key


def test_system_dry_run_plans_an_api_key(tmp_path: Path) -> None:
    env, root, log = fake_root(tmp_path)
    result = run_installer("--dry-run", "--cpu", env=env)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    key_file = root / "etc/appliance/settings.toml"
    assert f"API key:    none configured: one is generated into {key_file} (0600" in out
    assert f"==> API key: generating one into {key_file} (mode 0600, owner appliance)" in out
    assert 'would add: api_keys = ["<48 hex digits>"]' in out
    assert f"{root}/etc/systemd/system/appliance.service" in out
    assert not root.exists() and not logged(log), "a dry run must change nothing"


def test_system_dry_run_creates_the_service_user(tmp_path: Path) -> None:
    env, _, log = fake_root(tmp_path)
    result = run_installer("--dry-run", "--cpu", env={**env, "FAKE_NO_SERVICE_USER": "1"})
    assert result.returncode == 0, result.stderr
    assert "would run: useradd --system --user-group" in result.stdout
    assert not logged(log)


@pytest.mark.parametrize(
    ("where", "text", "plan"),
    [
        ("settings", 'api_keys = ["mine"]\n', "API key:    configured in {settings} (kept)"),
        ("settings", 'port = 9000\napi_keys = "mine"\n', "configured in {settings} (kept)"),
        ("settings", "api_keys = []\n", "API key:    none (api_keys = [] in {settings})"),
        ("settings", "api_keys = [\n", "API key:    {settings} cannot be read as TOML: none added"),
        (
            "drop-in",
            "[Service]\nEnvironment=APPLIANCE_API_KEY=mine\n",
            "API key:    configured in {dropin} (kept)",
        ),
    ],
)
def test_an_existing_key_is_never_replaced(
    tmp_path: Path, where: str, text: str, plan: str
) -> None:
    env, root, _ = fake_root(tmp_path)
    settings = root / "etc/appliance/settings.toml"
    dropin = root / "etc/systemd/system/appliance.service.d"
    written = settings if where == "settings" else dropin / "key.conf"
    written.parent.mkdir(parents=True)
    written.write_text(text)
    result = run_installer("--dry-run", "--cpu", env=env)
    assert result.returncode == 0, result.stderr
    assert plan.format(settings=settings, dropin=dropin) in result.stdout
    assert "generating one" not in result.stdout and "would add" not in result.stdout
    assert written.read_text() == text


# --------------------------------------------------------------------------- next steps


def test_system_next_steps_use_the_key(tmp_path: Path) -> None:
    env, root, _ = fake_root(tmp_path)
    result = run_installer("--dry-run", "--cpu", "--port", "9123", env=env)
    assert result.returncode == 0, result.stderr
    out = result.stdout.split("Next steps:", 1)[1]
    key_file = root / "etc/appliance/settings.toml"
    assert "status:    systemctl status appliance\n" in out
    assert "logs:      journalctl -u appliance -f\n" in out
    assert f"API key:   in {key_file} (api_keys; only root and appliance can read it)" in out
    assert "export APPLIANCE_API_KEY=$(sed -n " in out and f" {key_file})\n" in out
    assert "appliance tui" in out and "appliance doctor" in out
    header = '-H "Authorization: Bearer $APPLIANCE_API_KEY"'
    assert f"curl -s {header} http://127.0.0.1:9123/v1/models" in out
    assert "installer.sh --uninstall" in out
    assert out.rstrip().endswith("dry run: nothing was changed")


def test_user_next_steps_are_keyless(tmp_path: Path) -> None:
    home = tmp_path / "home"
    result = run_installer(
        "--dry-run", "--cpu", "--user", env={"HOME": str(home), "APPLIANCE_INSTALLER_SYSTEMD": "1"}
    )
    assert result.returncode == 0, result.stderr
    assert "API key" not in result.stdout and "Authorization" not in result.stdout
    out = result.stdout.split("Next steps:", 1)[1]
    assert "status:    systemctl --user status appliance\n" in out
    assert "logs:      journalctl --user -u appliance -f\n" in out
    assert "loginctl enable-linger" in out
    assert "TUI:       appliance tui" in out and "doctor:    appliance doctor" in out
    assert "API:       curl -s http://127.0.0.1:8750/v1/models\n" in out


def test_next_steps_without_systemd(tmp_path: Path) -> None:
    home = tmp_path / "home"
    result = run_installer(
        "--dry-run", "--cpu", "--user", env={"HOME": str(home), "APPLIANCE_INSTALLER_SYSTEMD": "0"}
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout.split("Next steps:", 1)[1]
    state = home / ".local/state/appliance"
    assert f"logs:      tail -f {state}/log/appliance.log\n" in out
    assert f"kill -0 $(cat {state}/run/appliance.pid)" in out
    assert "systemctl" not in out and "journalctl" not in out
    assert "appliance tui" in out and "appliance doctor" in out and "curl -s http" in out


# --------------------------------------------------------------------------- uninstall


def fake_user_install(home: Path, prefix: Path | None = None) -> dict[str, Path]:
    """What a user install leaves behind (a venv, the command link, the enabled unit,
    models, settings, logs, caches), without building anything."""
    prefix = prefix or home / ".local/share/appliance"
    venv = prefix / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "pyvenv.cfg").write_text("home = /usr/bin\n")
    (venv / "bin/appliance").write_text("#!/bin/sh\n")
    (venv / "bin/appliance").chmod(0o755)
    link = home / ".local/bin/appliance"
    link.parent.mkdir(parents=True)
    link.symlink_to(venv / "bin/appliance")
    unit = home / ".config/systemd/user/appliance.service"
    unit.parent.mkdir(parents=True)
    unit.write_text(f"[Service]\nExecStart={venv}/bin/appliance serve\n")
    wants = unit.parent / "default.target.wants/appliance.service"
    wants.parent.mkdir()
    wants.symlink_to(unit)
    data = home / ".local/share/appliance"
    (data / "store").mkdir(parents=True)
    (data / "store/model.gguf").write_bytes(b"GGUF")
    config = home / ".config/appliance"
    config.mkdir()
    (config / "settings.toml").write_text('log_level = "debug"\n')
    logs = home / ".local/state/appliance/log"
    logs.mkdir(parents=True)
    (logs / "appliance.log").write_text("")
    cache = home / ".cache/appliance"
    cache.mkdir(parents=True)
    return {
        "prefix": prefix,
        "venv": venv,
        "link": link,
        "unit": unit,
        "wants": wants,
        "data": data,
        "config": config,
        "logs": logs,
        "cache": cache,
    }


def user_env(tmp_path: Path, home: Path) -> tuple[dict[str, str], Path]:
    log = tmp_path / "tools.log"
    path = fake_tools(tmp_path / "bin", {"systemctl": FAKE_LOGGER})
    env = {
        "HOME": str(home),
        "PATH": path,
        "FAKE_LOG": str(log),
        "APPLIANCE_INSTALLER_SYSTEMD": "1",
    }
    return env, log


def test_uninstall_keeps_models_and_settings_then_purge(tmp_path: Path) -> None:
    home = tmp_path / "home"
    f = fake_user_install(home)
    env, log = user_env(tmp_path, home)

    dry = run_installer("--uninstall", "--user", "--dry-run", env=env)
    assert dry.returncode == 0, dry.stderr
    assert "would run: systemctl --user stop appliance.service" in dry.stdout
    assert "would run: systemctl --user disable appliance.service" in dry.stdout
    assert f"would run: rm -rf -- {f['venv']}" in dry.stdout
    assert "Would remove:" in dry.stdout and "Would keep:" in dry.stdout
    assert "dry run: nothing was changed" in dry.stdout
    assert all(path.exists() for path in f.values()) and f["link"].is_symlink()
    assert not logged(log)

    real = run_installer("--uninstall", "--user", env=env)
    assert real.returncode == 0, real.stderr
    assert logged(log) == [
        "systemctl --user stop appliance.service",
        "systemctl --user disable appliance.service",
        "systemctl --user daemon-reload",
    ]
    assert not f["unit"].exists() and not f["wants"].is_symlink()
    assert not f["venv"].exists() and not f["link"].is_symlink()
    assert (f["data"] / "store/model.gguf").read_bytes() == b"GGUF"
    assert (f["config"] / "settings.toml").is_file() and (f["logs"] / "appliance.log").is_file()
    out = real.stdout
    removed, kept = out.split("Removed:", 1)[1].split("Kept:", 1)
    assert f"service   {f['unit']} (stopped and disabled)" in removed
    assert f"venv      {f['venv']}" in removed
    assert f"command   {f['link']}" in removed
    assert f"models    {f['data']} (" in kept and f"{f['data']}/store" in kept
    assert f"settings  {f['config']}" in kept
    assert f"logs      {f['logs']}" in kept and f"cache     {f['cache']}" in kept
    assert "--uninstall --purge" in kept

    # Idempotent: nothing left to remove, the same things kept.
    again = run_installer("--uninstall", "--user", env=env)
    assert again.returncode == 0, again.stderr
    assert "Nothing to remove" in again.stdout and "Removed:" not in again.stdout
    assert f"settings  {f['config']}" in again.stdout
    assert len(logged(log)) == 3, "no systemctl calls without a unit"

    purge = run_installer("--uninstall", "--purge", "--user", env=env)
    assert purge.returncode == 0, purge.stderr
    for name in ("data", "config", "logs", "cache"):
        assert not f[name].exists(), name
        assert f"{f[name]}" in purge.stdout.split("Removed:", 1)[1]
    assert not (home / ".local/state/appliance").exists()
    assert "Kept:" not in purge.stdout

    final = run_installer("--uninstall", "--purge", "--user", env=env)
    assert final.returncode == 0, final.stderr
    assert "Nothing to remove" in final.stdout and "Kept:" not in final.stdout
    assert home.is_dir()


def test_uninstall_honours_prefix_and_finds_it_by_itself(tmp_path: Path) -> None:
    home = tmp_path / "home"
    prefix = tmp_path / "opt/appliance"
    f = fake_user_install(home, prefix)
    env, _ = user_env(tmp_path, home)

    dry = run_installer("--uninstall", "--user", "--dry-run", "--prefix", str(prefix), env=env)
    assert dry.returncode == 0, dry.stderr
    assert f"prefix:     {prefix}\n" in dry.stdout
    assert f"would run: rm -rf -- {f['venv']}" in dry.stdout

    # Without --prefix: the command link says where the install is.
    found = run_installer("--uninstall", "--user", env=env)
    assert found.returncode == 0, found.stderr
    assert f"(the install's prefix, from {f['link']}: {prefix})" in found.stdout
    assert not f["venv"].exists() and not f["link"].is_symlink()
    assert not prefix.exists(), "the emptied prefix goes too"
    assert f"prefix    {prefix} (empty)" in found.stdout
    assert f["data"].is_dir()


def test_uninstall_leaves_another_command_alone(tmp_path: Path) -> None:
    home = tmp_path / "home"
    other = tmp_path / "elsewhere/bin/appliance"
    other.parent.mkdir(parents=True)
    other.write_text("#!/bin/sh\n")
    link = home / ".local/bin/appliance"
    link.parent.mkdir(parents=True)
    link.symlink_to(other)
    env, log = user_env(tmp_path, home)
    result = run_installer("--uninstall", "--user", env=env)
    assert result.returncode == 0, result.stderr
    assert link.is_symlink() and other.is_file()
    assert f"points to {other}" in result.stderr and "left alone" in result.stderr
    assert "Nothing to remove" in result.stdout
    assert not logged(log)


def test_uninstall_without_systemd_removes_the_unit_file(tmp_path: Path) -> None:
    home = tmp_path / "home"
    f = fake_user_install(home)
    env, log = user_env(tmp_path, home)
    result = run_installer("--uninstall", "--user", env={**env, "APPLIANCE_INSTALLER_SYSTEMD": "0"})
    assert result.returncode == 0, result.stderr
    assert not f["unit"].exists() and not f["wants"].is_symlink()
    assert "removing the unit file only" in result.stderr
    assert not logged(log)


# --------------------------------------------------------------------------- a real install

STUB_BACKEND = '''
"""A PEP 517 backend just big enough to build the stub's wheel offline."""
import base64, hashlib, pathlib, zipfile

NAME, VERSION = "appliance", "0.0.1"
INFO = f"{NAME}-{VERSION}.dist-info"


def get_requires_for_build_wheel(config_settings=None):
    return []


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    files = {}
    for package in ("appliance", "llama_cpp"):
        for path in sorted(pathlib.Path(package).rglob("*.py")):
            files[path.as_posix()] = path.read_bytes()
    metadata = f"Metadata-Version: 2.1\\nName: {NAME}\\nVersion: {VERSION}\\n"
    files[f"{INFO}/METADATA"] = metadata.encode()
    files[f"{INFO}/WHEEL"] = (
        b"Wheel-Version: 1.0\\nGenerator: stub\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n"
    )
    files[f"{INFO}/entry_points.txt"] = b"[console_scripts]\\nappliance = appliance.cli:main\\n"
    record = []
    for name, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{name},sha256={digest},{len(data)}")
    record.append(f"{INFO}/RECORD,,")
    files[f"{INFO}/RECORD"] = ("\\n".join(record) + "\\n").encode()
    wheel_name = f"{NAME}-{VERSION}-py3-none-any.whl"
    with zipfile.ZipFile(pathlib.Path(wheel_directory) / wheel_name, "w") as wheel:
        for name, data in files.items():
            wheel.writestr(name, data)
    return wheel_name
'''

STUB_CLI = """
import os, sys
from http.server import BaseHTTPRequestHandler, HTTPServer


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/health" else 404)
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args):
        pass


def main():
    assert sys.argv[1:] == ["serve"], sys.argv
    port = int(os.environ["APPLIANCE_PORT"])
    HTTPServer(("127.0.0.1", port), Handler).serve_forever()
"""

STUB_PYPROJECT = """
[build-system]
requires = []
build-backend = "stub_backend"
backend-path = ["."]

[project]
name = "appliance"
version = "0.0.1"
"""


def stub_checkout(root: Path) -> Path:
    """A checkout with the real installer, units, paths.py and settings.py, and a stub
    daemon and llama_cpp, installable offline."""
    (root / "appliance").mkdir(parents=True)
    (root / "llama_cpp").mkdir()
    (root / "systemd").mkdir()
    shutil.copy(INSTALLER, root / "installer.sh")
    for unit in (REPO / "systemd").glob("*.service"):
        shutil.copy(unit, root / "systemd" / unit.name)
    for module in ("paths.py", "settings.py"):
        shutil.copy(REPO / "appliance" / module, root / "appliance" / module)
    (root / "appliance" / "__init__.py").write_text("")
    (root / "appliance" / "cli.py").write_text(STUB_CLI)
    (root / "llama_cpp" / "__init__.py").write_text(
        "def llama_supports_gpu_offload():\n    return False\n"
    )
    (root / "stub_backend.py").write_text(STUB_BACKEND)
    (root / "pyproject.toml").write_text(STUB_PYPROJECT)
    return root


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _kill_from(pid_file: Path) -> None:
    if pid_file.is_file():
        pid = int(pid_file.read_text().strip())
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Path]:
    home = tmp_path / "home"
    home.mkdir()
    yield home
    _kill_from(home / ".local/state/appliance/run/appliance.pid")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); /proc tells.
    status = Path(f"/proc/{pid}/status")
    return not (status.is_file() and "\nState:\tZ" in status.read_text())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux layout")
@pytest.mark.timeout(240)
def test_install_without_systemd_then_upgrade(tmp_path: Path, home: Path) -> None:
    checkout = stub_checkout(tmp_path / "checkout")
    port = free_port()
    env = {
        "HOME": str(home),
        "PATH": SYSTEM_PATH,
        "PIP_NO_INDEX": "1",
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "APPLIANCE_INSTALLER_SYSTEMD": "0",
    }
    first = run_installer(
        "--user", "--port", str(port), env=env, script=checkout / "installer.sh", timeout=180
    )
    assert first.returncode == 0, first.stdout + first.stderr
    venv = home / ".local/share/appliance/venv"
    assert (home / ".local/bin/appliance").resolve() == (venv / "bin/appliance").resolve()
    pid_file = home / ".local/state/appliance/run/appliance.pid"
    log_file = home / ".local/state/appliance/log/appliance.log"
    assert log_file.is_file()
    first_pid = int(pid_file.read_text())
    assert _alive(first_pid)
    assert f"serving at http://127.0.0.1:{port}" in first.stdout
    assert "appliance chat" in first.stdout and "appliance ps" in first.stdout

    # A re-run upgrades in place: same venv, the old daemon replaced by a new one.
    second = run_installer(
        "--user", "--port", str(port), env=env, script=checkout / "installer.sh", timeout=180
    )
    assert second.returncode == 0, second.stdout + second.stderr
    assert "reusing it (upgrade)" in second.stdout
    assert f"stopping the running daemon (pid {first_pid})" in second.stdout
    second_pid = int(pid_file.read_text())
    assert second_pid != first_pid and _alive(second_pid)
    deadline = time.monotonic() + 10
    while _alive(first_pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(first_pid)
    # Nothing was built inside the checkout.
    assert not list(checkout.glob("*.egg-info")) and not (checkout / "build").exists()

    # Uninstall: the daemon stops, the venv and the command go, the logs stay.
    gone = run_installer("--uninstall", "--user", env=env, script=checkout / "installer.sh")
    assert gone.returncode == 0, gone.stdout + gone.stderr
    assert f"stopping the running daemon (pid {second_pid})" in gone.stdout
    deadline = time.monotonic() + 10
    while _alive(second_pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(second_pid)
    assert not pid_file.exists() and not venv.exists()
    assert not (home / ".local/bin/appliance").is_symlink()
    assert log_file.is_file() and f"logs      {log_file.parent}" in gone.stdout


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux layout")
@pytest.mark.timeout(300)
def test_system_install_with_an_api_key_then_uninstall(tmp_path: Path) -> None:
    checkout = stub_checkout(tmp_path / "checkout")
    script = checkout / "installer.sh"
    env, root, log = fake_root(tmp_path)
    env.update({"PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"})
    config = root / "etc/appliance"
    settings = config / "settings.toml"
    config.mkdir(parents=True)
    settings.write_text('log_level = "debug"')  # the operator's, without a final newline

    first = run_installer("--cpu", "--no-start", env=env, script=script, timeout=180)
    assert first.returncode == 0, first.stdout + first.stderr
    text = settings.read_text()
    assert text.startswith('log_level = "debug"\n# Generated by installer.sh')
    parsed = tomllib.loads(text)
    assert parsed["log_level"] == "debug"
    (key,) = parsed["api_keys"]
    assert re.fullmatch(r"[0-9a-f]{48}", key)
    assert stat.S_IMODE(settings.stat().st_mode) == 0o600
    chowns = [line for line in logged(log) if line.startswith("chown")]
    assert chowns and all(line.startswith("chown appliance:appliance ") for line in chowns)
    assert key not in first.stdout + first.stderr, "the key is not printed, only where it is"
    assert f"generating one into {settings} (mode 0600, owner appliance)" in first.stdout
    # The next steps read the key from the file the way they say.
    export = next(
        line for line in first.stdout.splitlines() if "export APPLIANCE_API_KEY=$(" in line
    )
    shown = subprocess.run(
        ["bash", "-c", export.strip() + '; printf %s "$APPLIANCE_API_KEY"'],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert shown == key
    assert "Installed; not started (--no-start)." in first.stdout
    assert "status:    systemctl status appliance" in first.stdout
    unit = root / "etc/systemd/system/appliance.service"
    venv = root / "opt/appliance/venv"
    link = root / "usr/local/bin/appliance"
    assert unit.is_file() and f"ExecStart={venv}/bin/appliance serve" in unit.read_text()
    assert link.resolve() == (venv / "bin/appliance").resolve()
    assert "systemctl enable appliance.service" in logged(log)

    # A re-run (an upgrade) keeps the key.
    second = run_installer("--cpu", "--no-start", env=env, script=script, timeout=180)
    assert second.returncode == 0, second.stdout + second.stderr
    assert settings.read_text() == text
    assert f"API key: already configured in {settings} (kept)" in second.stdout

    log.write_text("")
    gone = run_installer("--uninstall", env=env, script=script)
    assert gone.returncode == 0, gone.stdout + gone.stderr
    assert logged(log) == [
        "systemctl stop appliance.service",
        "systemctl disable appliance.service",
        "systemctl daemon-reload",
    ]
    assert not unit.exists() and not venv.exists() and not link.is_symlink()
    assert not (root / "opt/appliance").exists()
    assert settings.read_text() == text
    kept = gone.stdout.split("Kept:", 1)[1]
    assert f"settings  {config}" in kept and "the API key" in kept
    assert "user      appliance (the system user" in kept

    again = run_installer("--uninstall", env=env, script=script)
    assert again.returncode == 0 and "Nothing to remove" in again.stdout

    purge = run_installer("--uninstall", "--purge", env=env, script=script)
    assert purge.returncode == 0, purge.stdout + purge.stderr
    assert not config.exists()
    assert f"settings  {config}" in purge.stdout.split("Removed:", 1)[1]


def test_installer_pins_the_onnx_runtime_pyproject_pins() -> None:
    pyproject = (REPO / "pyproject.toml").read_text()
    installer = (REPO / "installer.sh").read_text()
    pinned = re.search(r'"onnxruntime-genai==([0-9.]+)"', pyproject)
    assert pinned is not None
    assert f"GENAI_VERSION={pinned.group(1)}\n" in installer
