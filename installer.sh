#!/usr/bin/env bash
# installer.sh: install (or upgrade) the appliance from the checkout this script
# sits in, and start it. Run it again to upgrade: every step is idempotent.
#
#   as root:      /opt/appliance/venv, /usr/local/bin/appliance, system user
#                 "appliance", /etc/systemd/system/appliance.service
#   as a user:    ~/.local/share/appliance/venv, ~/.local/bin/appliance,
#                 ~/.config/systemd/user/appliance.service
#   no systemd:   (containers) `appliance serve` is started in the background
#                 with nohup; logs in the log dir, pid file in the run dir.
#
# As root with systemd, an API key is generated into /etc/appliance/settings.toml
# (0600, owned by the service user) unless one is configured already.
# `installer.sh --uninstall` takes it all away again but the models and settings
# (`--purge` removes those too).
#
# See --help for the options.
set -euo pipefail
umask 022 # the venv must be readable by the service user

DEFAULT_PORT=8750
SERVICE=appliance.service
SERVICE_USER=appliance

usage() {
    cat <<'EOF'
Usage: installer.sh [options]
       installer.sh --uninstall [--purge] [--user] [--prefix DIR] [--dry-run]

Install the appliance (a self-hosted LLM inference daemon) from this checkout,
build llama-cpp-python for the accelerator found (CUDA, ROCm or CPU), install the
systemd service and start it. Re-run to upgrade. As root (the system service), an
API key is generated into /etc/appliance/settings.toml when none is configured;
an existing key is never replaced.

Options:
  --cpu          build for CPU even when a GPU is found
  --user         install for the current user even as root (~/.local/..., a
                 systemd user unit); the default when not root
  --no-start     install everything but do not start or restart the daemon
  --prefix DIR   install prefix; the venv goes in DIR/venv
                 (default: /opt/appliance as root, ~/.local/share/appliance otherwise)
  --port N       serve on port N instead of 8750 (set in the service's environment)
  --dry-run      print the plan (backend, paths, service unit) and change nothing;
                 also APPLIANCE_INSTALLER_DRY_RUN=1
  --uninstall    stop and disable the service, remove the unit, the venv and the
                 `appliance` command; keep the models (the store), the settings,
                 logs and caches, and say where they are. Use the same --user and
                 --prefix as the install (the prefix is found from the command
                 link or the unit when not given)
  --purge        with --uninstall: also remove the data (models), config
                 (settings, API key), log and cache folders
  -h, --help     show this help

Environment:
  PYTHON         the Python (>= 3.11) to build the venv with (default: python3,
                 then python3.14 ... python3.11)
  CMAKE_ARGS     your own llama.cpp build flags; replaces the detected ones
  CUDA_HOME      where the CUDA toolkit is when nvcc is not on PATH
                 (default /usr/local/cuda)
  ROCM_PATH      where ROCm is when hipcc is not on PATH (default /opt/rocm)
  APPLIANCE_INSTALLER_SYSTEMD=1|0
                 install the systemd unit, or not, whatever the detection says
  PIP_*          pip's own settings, e.g. PIP_INDEX_URL, or PIP_NO_INDEX=1 with
                 PIP_FIND_LINKS=DIR for an offline install from wheels
  APPLIANCE_INSTALLER_SYSROOT=DIR
                 (tests) system mode: take /etc, /usr/local/bin, /var, /run and
                 /opt below DIR
EOF
}

say() { printf '%s\n' "$*"; }
step() { printf '==> %s\n' "$*"; }
warn() { printf 'warning: %s\n' "$*" >&2; }
die() {
    printf 'error: %s\n' "$*" >&2
    exit 1
}

# run CMD...: run it, or in a dry run print it.
run() {
    if [ "$DRY_RUN" = 1 ]; then
        printf '    would run:'
        printf ' %q' "$@"
        printf '\n'
    else
        "$@"
    fi
}

# ---------------------------------------------------------------- arguments

REPO_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)
DRY_RUN=0
case "${APPLIANCE_INSTALLER_DRY_RUN:-}" in
1 | true | yes) DRY_RUN=1 ;;
esac
FORCE_CPU=0
FORCE_USER=0
NO_START=0
PREFIX=""
PORT=""
UNINSTALL=0
PURGE=0

while [ $# -gt 0 ]; do
    case "$1" in
    --cpu) FORCE_CPU=1 ;;
    --user) FORCE_USER=1 ;;
    --no-start) NO_START=1 ;;
    --dry-run) DRY_RUN=1 ;;
    --uninstall) UNINSTALL=1 ;;
    --purge) PURGE=1 ;;
    --prefix)
        [ $# -ge 2 ] || die "--prefix needs a directory"
        PREFIX=$2
        shift
        ;;
    --prefix=*) PREFIX=${1#*=} ;;
    --port)
        [ $# -ge 2 ] || die "--port needs a number"
        PORT=$2
        shift
        ;;
    --port=*) PORT=${1#*=} ;;
    -h | --help)
        usage
        exit 0
        ;;
    *) die "unknown option: $1 (see --help)" ;;
    esac
    shift
done

if [ "$PURGE" = 1 ] && [ "$UNINSTALL" = 0 ]; then
    die "--purge goes with --uninstall (installer.sh --uninstall --purge)"
fi
if [ -n "$PORT" ]; then
    case "$PORT" in
    '' | *[!0-9]*) die "--port: expected a number 1-65535, got '$PORT'" ;;
    esac
    if [ "$PORT" -lt 1 ] || [ "$PORT" -gt 65535 ]; then
        die "--port: expected a number 1-65535, got '$PORT'"
    fi
fi
if [ ! -f "$REPO_DIR/pyproject.toml" ] || [ ! -d "$REPO_DIR/appliance" ]; then
    die "$REPO_DIR does not look like an appliance checkout (no pyproject.toml or appliance/)"
fi

# ---------------------------------------------------------------- python

PYTHON_BIN=""
PYTHON_VERSION=""
find_python() {
    local candidates=() seen="" candidate path version
    if [ -n "${PYTHON:-}" ]; then
        candidates=("$PYTHON")
    else
        candidates=(python3 python3.14 python3.13 python3.12 python3.11)
    fi
    for candidate in "${candidates[@]}"; do
        path=$(command -v "$candidate" 2>/dev/null) || continue
        version=$("$path" -c 'import platform; print(platform.python_version())' 2>/dev/null) || continue
        if "$path" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
            # The interpreter itself, not a wrapper such as a pyenv shim.
            PYTHON_BIN=$("$path" -c 'import sys; print(sys.executable)' 2>/dev/null) || PYTHON_BIN=$path
            [ -n "$PYTHON_BIN" ] || PYTHON_BIN=$path
            PYTHON_VERSION=$version
            return 0
        fi
        seen="$seen $path ($version)"
    done
    if [ -n "$seen" ]; then
        die "the appliance needs Python >= 3.11; found only:$seen. Install python3.11 or newer (e.g. apt-get install python3.11 python3.11-venv) and re-run, or set PYTHON=/path/to/python3.11"
    fi
    die "the appliance needs Python >= 3.11 and no python3 was found. Install python3.11 or newer (e.g. apt-get install python3.11 python3.11-venv) and re-run"
}

check_venv_module() {
    if ! "$PYTHON_BIN" -c 'import ensurepip, venv' >/dev/null 2>&1; then
        local minor
        minor=$("$PYTHON_BIN" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
        die "$PYTHON_BIN cannot create virtual environments (no venv/ensurepip module). Install python$minor-venv (Debian/Ubuntu: apt-get install python$minor-venv) and re-run"
    fi
}

# ---------------------------------------------------------------- accelerator

BACKEND=cpu
BACKEND_REASON=""
BUILD_ENV=() # NAME=VALUE pairs for the llama-cpp-python build
NVIDIA_MODPROBE=""

find_tool() { # find_tool NAME [DIR...]: print the path of NAME on PATH or in DIRs
    local name=$1 dir
    shift
    if command -v "$name" >/dev/null 2>&1; then
        command -v "$name"
        return 0
    fi
    for dir in "$@"; do
        if [ -x "$dir/$name" ]; then
            printf '%s\n' "$dir/$name"
            return 0
        fi
    done
    return 1
}

detect_backend() {
    local nvcc gpu hipcc caps targets hip_root hipconfig hip_clang hip_path
    if [ -n "${CMAKE_ARGS:-}" ]; then
        case "$CMAKE_ARGS" in
        *GGML_CUDA=[Oo][Nn]* | *GGML_CUDA=1*) BACKEND=cuda ;;
        *GGML_HIP=[Oo][Nn]* | *GGML_HIP=1*) BACKEND=rocm ;;
        *) BACKEND=cpu ;;
        esac
        BACKEND_REASON="CMAKE_ARGS from the environment"
        BUILD_ENV=("CMAKE_ARGS=$CMAKE_ARGS")
        return 0
    fi
    if [ "$FORCE_CPU" = 1 ]; then
        BACKEND_REASON="--cpu given"
        return 0
    fi
    if command -v nvidia-smi >/dev/null 2>&1; then
        if ! nvidia-smi -L >/dev/null 2>&1; then
            warn "nvidia-smi is installed but lists no GPU (driver not loaded?): building for CPU"
            BACKEND_REASON="nvidia-smi found no GPU"
            return 0
        fi
        if ! nvcc=$(find_tool nvcc "${CUDA_HOME:-${CUDA_PATH:-/usr/local/cuda}}/bin"); then
            warn "NVIDIA GPU found but no CUDA toolkit (nvcc): building for CPU; install cuda-toolkit and re-run"
            BACKEND_REASON="NVIDIA GPU without CUDA toolkit (nvcc)"
            return 0
        fi
        gpu=$(nvidia-smi -L 2>/dev/null | sed -n '1s/ (UUID.*//p') || gpu=""
        BACKEND=cuda
        BACKEND_REASON="NVIDIA GPU (${gpu:-unknown}), nvcc at $nvcc"
        # Build only for the GPUs in this box: much faster than llama.cpp's default list.
        caps=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null |
            tr -d ' .' | grep -E '^[0-9]+$' | sort -u | paste -sd ';' -) || caps=""
        if [ -n "$caps" ]; then
            BUILD_ENV=("CMAKE_ARGS=-DGGML_CUDA=on -DCMAKE_CUDA_ARCHITECTURES=$caps")
        else
            BUILD_ENV=("CMAKE_ARGS=-DGGML_CUDA=on")
        fi
        BUILD_ENV+=("CUDACXX=$nvcc")
        NVIDIA_MODPROBE=$(find_tool nvidia-modprobe /usr/bin /usr/sbin) || NVIDIA_MODPROBE=""
        return 0
    fi
    if command -v rocminfo >/dev/null 2>&1 || find_tool hipcc "${ROCM_PATH:-/opt/rocm}/bin" >/dev/null; then
        if ! hipcc=$(find_tool hipcc "${ROCM_PATH:-/opt/rocm}/bin"); then
            warn "AMD GPU (ROCm) found but no HIP compiler (hipcc): building for CPU; install the ROCm HIP SDK (rocm-hip-sdk) and re-run"
            BACKEND_REASON="ROCm without HIP compiler (hipcc)"
            return 0
        fi
        BACKEND=rocm
        BACKEND_REASON="ROCm, hipcc at $hipcc"
        targets=$(rocminfo 2>/dev/null | grep -oE 'gfx[0-9a-f]+' | grep -v '^gfx000$' |
            sort -u | paste -sd ';' -) || targets=""
        if [ -n "$targets" ]; then
            BUILD_ENV=("CMAKE_ARGS=-DGGML_HIP=on -DGPU_TARGETS=$targets")
        else
            BUILD_ENV=("CMAKE_ARGS=-DGGML_HIP=on")
        fi
        hip_root=$(dirname "$(dirname "$hipcc")")
        # llama.cpp's HIP build wants ROCm's clang and HIP_PATH.
        if hipconfig=$(find_tool hipconfig "$hip_root/bin"); then
            hip_clang=$("$hipconfig" -l 2>/dev/null) || hip_clang=""
            hip_path=$("$hipconfig" -R 2>/dev/null) || hip_path=""
            if [ -n "$hip_clang" ] && [ -n "$hip_path" ]; then
                BUILD_ENV+=("HIPCXX=$hip_clang/clang" "HIP_PATH=$hip_path")
            fi
        fi
        return 0
    fi
    BACKEND_REASON="no NVIDIA (nvidia-smi) or AMD (rocminfo) GPU found"
}

# llama-cpp-python is built from source: it needs a C and a C++ compiler.
check_compilers() {
    if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c 'import llama_cpp' >/dev/null 2>&1; then
        return 0 # built already; a rebuild may still need them, pip will say
    fi
    local have_cc=0 have_cxx=0
    if command -v cc >/dev/null 2>&1 || command -v gcc >/dev/null 2>&1; then
        have_cc=1
    fi
    if command -v c++ >/dev/null 2>&1 || command -v g++ >/dev/null 2>&1; then
        have_cxx=1
    fi
    if [ "$have_cc" = 0 ] || [ "$have_cxx" = 0 ]; then
        warn "no C/C++ compiler found (cc, c++): building llama-cpp-python needs one; install build-essential (Debian/Ubuntu) or gcc gcc-c++ (Fedora/RHEL) if the build fails"
    fi
}

# ---------------------------------------------------------------- layout

MODE=user
if [ "$(id -u)" -eq 0 ] && [ "$FORCE_USER" = 0 ]; then
    MODE=system
fi
PREFIX_GIVEN=${PREFIX:+1}
# The system service's folders (systemd's StateDirectory= and friends in the unit).
SYSROOT=${APPLIANCE_INSTALLER_SYSROOT:-}
SYSROOT=${SYSROOT%/}
SYS_STATE_DIR=$SYSROOT/var/lib/appliance
SYS_CONFIG_DIR=$SYSROOT/etc/appliance
SYS_LOG_DIR=$SYSROOT/var/log/appliance
SYS_CACHE_DIR=$SYSROOT/var/cache/appliance
SYS_RUN_DIR=$SYSROOT/run/appliance
if [ "$MODE" = system ]; then
    PREFIX=${PREFIX:-$SYSROOT/opt/appliance}
    BIN_DIR=$SYSROOT/usr/local/bin
    UNIT_DIR=$SYSROOT/etc/systemd/system
    UNIT_TEMPLATE=$REPO_DIR/systemd/appliance.service
    SYSTEMCTL=(systemctl)
    JOURNALCTL="journalctl -u appliance"
else
    PREFIX=${PREFIX:-${XDG_DATA_HOME:-$HOME/.local/share}/appliance}
    BIN_DIR=$HOME/.local/bin
    UNIT_DIR=${XDG_CONFIG_HOME:-$HOME/.config}/systemd/user
    UNIT_TEMPLATE=$REPO_DIR/systemd/appliance-user.service
    SYSTEMCTL=(systemctl --user)
    JOURNALCTL="journalctl --user -u appliance"
fi
case "$PREFIX" in
/*) ;;
*) PREFIX=$(pwd -P)/$PREFIX ;;
esac
case "$PREFIX" in
*[[:space:]%\\\|\&]*) die "--prefix: the path must not contain spaces or any of % \\ | & (it goes into a systemd unit): $PREFIX" ;;
esac
VENV=$PREFIX/venv
UNIT_PATH=$UNIT_DIR/$SERVICE

USE_SYSTEMD=0
SYSTEMD_NOTE=""
if [ -n "${APPLIANCE_INSTALLER_SYSTEMD:-}" ]; then
    # Overrides the detection (tests, image builds): 1 installs the unit, 0 does not.
    if [ "$APPLIANCE_INSTALLER_SYSTEMD" = 1 ]; then
        USE_SYSTEMD=1
    else
        SYSTEMD_NOTE="systemd disabled by APPLIANCE_INSTALLER_SYSTEMD"
    fi
elif [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
    if [ "$MODE" = system ]; then
        USE_SYSTEMD=1
    elif systemctl --user show-environment >/dev/null 2>&1; then
        USE_SYSTEMD=1
    else
        SYSTEMD_NOTE="systemd runs, but this session has no user manager (systemctl --user)"
    fi
else
    SYSTEMD_NOTE="systemd is not running here"
fi

if [ "$MODE" = system ] && [ "$USE_SYSTEMD" = 1 ] && [ "$UNINSTALL" = 0 ]; then
    case "$PREFIX/" in
    /home/* | /root/* | /run/user/*)
        warn "$PREFIX is hidden from the service (ProtectHome=true): use a prefix outside /home and /root, such as the default /opt/appliance"
        ;;
    esac
fi

GPU_GROUPS=""
for group in video render; do
    if getent group "$group" >/dev/null 2>&1; then
        GPU_GROUPS="${GPU_GROUPS:+$GPU_GROUPS }$group"
    fi
done

# Ask the appliance's own code (appliance.paths / appliance.settings) where things
# are, so the installer and the daemon agree. Prints nothing when it cannot tell.
appliance_python() {
    local code=$1
    local python=$VENV/bin/python
    local -a env_args=()
    if [ "$USE_SYSTEMD" = 1 ] && [ "$MODE" = system ]; then
        env_args=(STATE_DIRECTORY="$SYS_STATE_DIR" CONFIGURATION_DIRECTORY="$SYS_CONFIG_DIR"
            LOGS_DIRECTORY="$SYS_LOG_DIR" CACHE_DIRECTORY="$SYS_CACHE_DIR"
            RUNTIME_DIRECTORY="$SYS_RUN_DIR")
    fi
    if [ -n "$PORT" ]; then
        env_args+=("APPLIANCE_PORT=$PORT")
    fi
    if [ -x "$python" ] && "$python" -c 'import appliance.paths' >/dev/null 2>&1; then
        env "${env_args[@]}" "$python" -c "$code" 2>/dev/null || true
    elif [ -n "$PYTHON_BIN" ]; then
        env "${env_args[@]}" PYTHONPATH="$REPO_DIR" "$PYTHON_BIN" -c "$code" 2>/dev/null || true
    fi
}

# The daemon's folders: DATA_DIR (the store is DATA_DIR/store), CONFIG_DIR
# (settings.toml), LOG_DIR, RUN_DIR, CACHE_DIR.
resolve_runtime_dirs() {
    local dirs
    dirs=$(appliance_python 'from appliance.paths import resolve_paths
p = resolve_paths()
print(p.log_dir)
print(p.run_dir)
print(p.data_dir)
print(p.config_dir)
print(p.cache_dir)')
    LOG_DIR=$(printf '%s\n' "$dirs" | sed -n 1p)
    RUN_DIR=$(printf '%s\n' "$dirs" | sed -n 2p)
    DATA_DIR=$(printf '%s\n' "$dirs" | sed -n 3p)
    CONFIG_DIR=$(printf '%s\n' "$dirs" | sed -n 4p)
    CACHE_DIR=$(printf '%s\n' "$dirs" | sed -n 5p)
    if [ "$USE_SYSTEMD" = 1 ] && [ "$MODE" = system ]; then
        LOG_DIR=${LOG_DIR:-$SYS_LOG_DIR}
        RUN_DIR=${RUN_DIR:-$SYS_RUN_DIR}
        DATA_DIR=${DATA_DIR:-$SYS_STATE_DIR}
        CONFIG_DIR=${CONFIG_DIR:-$SYS_CONFIG_DIR}
        CACHE_DIR=${CACHE_DIR:-$SYS_CACHE_DIR}
    fi
    LOG_DIR=${LOG_DIR:-${XDG_STATE_HOME:-$HOME/.local/state}/appliance/log}
    RUN_DIR=${RUN_DIR:-${XDG_STATE_HOME:-$HOME/.local/state}/appliance/run}
    DATA_DIR=${DATA_DIR:-${XDG_DATA_HOME:-$HOME/.local/share}/appliance}
    CONFIG_DIR=${CONFIG_DIR:-${XDG_CONFIG_HOME:-$HOME/.config}/appliance}
    CACHE_DIR=${CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/appliance}
}

base_url() {
    local url
    url=$(appliance_python 'from appliance.paths import resolve_paths
from appliance.settings import load_settings
print(load_settings(resolve_paths()).base_url)')
    printf '%s\n' "${url:-http://127.0.0.1:${PORT:-$DEFAULT_PORT}}"
}

# ---------------------------------------------------------------- the unit

render_unit() {
    local -a sed_args=(-e '1,/^$/d') # the template's notes
    [ -n "$PORT" ] || sed_args+=(-e '/^Environment=APPLIANCE_PORT=/d')
    [ -n "$GPU_GROUPS" ] || sed_args+=(-e '/^SupplementaryGroups=/d')
    [ -n "$NVIDIA_MODPROBE" ] || sed_args+=(-e '/^ExecStartPre=.*@NVIDIA_MODPROBE@/d')
    sed_args+=(
        -e "s|@VENV@|$VENV|g"
        -e "s|@GPU_GROUPS@|$GPU_GROUPS|g"
        -e "s|@PORT@|$PORT|g"
        -e "s|@NVIDIA_MODPROBE@|$NVIDIA_MODPROBE|g"
    )
    sed "${sed_args[@]}" "$UNIT_TEMPLATE"
}

# ---------------------------------------------------------------- the API key

# The system service may be reached by anyone on the box (and beyond, with a host
# setting): it gets an API key in the settings file it reads, unless one is
# configured. The user service stays keyless on loopback.
KEY_FILE=$SYS_CONFIG_DIR/settings.toml
KEY_STATE="" # generate | generated | kept | empty | dropin | invalid ("": no key here)
# Prints the first key of a settings.toml written simply (as installer.sh writes it).
KEY_SED='s/^api_keys *= *\[ *"\([^"]*\)".*/\1/p'

wants_api_key() {
    [ "$MODE" = system ] && [ "$USE_SYSTEMD" = 1 ]
}

# Sets KEY_STATE from what is configured now; changes nothing.
check_api_key() {
    wants_api_key || return 0
    local found
    if grep -qsE '^[[:space:]]*Environment=.*APPLIANCE_API_KEYS?=' "$UNIT_PATH.d"/*.conf; then
        KEY_STATE=dropin
        return 0
    fi
    found=$("$PYTHON_BIN" - "$KEY_FILE" 2>/dev/null <<'EOF'
import sys, tomllib
try:
    with open(sys.argv[1], "rb") as f:
        data = tomllib.load(f)
except FileNotFoundError:
    print("generate")
except Exception:
    print("invalid")
else:
    keys = data.get("api_keys")
    print("generate" if keys is None else "kept" if keys else "empty")
EOF
    ) || found=invalid
    KEY_STATE=${found:-invalid}
}

generate_api_key() {
    local key=""
    if command -v openssl >/dev/null 2>&1; then
        key=$(openssl rand -hex 24 2>/dev/null) || key=""
    fi
    case "$key" in
    '' | *[!0-9a-f]*)
        key=$("$PYTHON_BIN" -c 'import secrets; print(secrets.token_hex(24))' 2>/dev/null) || key=""
        ;;
    esac
    case "$key" in
    '' | *[!0-9a-f]*)
        key=$(od -An -N24 -tx1 /dev/urandom 2>/dev/null | tr -d ' \n') || key=""
        ;;
    esac
    case "$key" in
    '' | *[!0-9a-f]*) die "cannot generate an API key (no openssl, python secrets or /dev/urandom)" ;;
    esac
    printf '%s\n' "$key"
}

install_api_key() {
    local mode
    case "$KEY_STATE" in
    kept)
        step "API key: already configured in $KEY_FILE (kept)"
        mode=$(stat -c %a "$KEY_FILE" 2>/dev/null) || mode=""
        case "$mode" in
        *[1-7]) warn "$KEY_FILE holds API keys and others can read it (mode $mode): chmod 600 $KEY_FILE" ;;
        esac
        return 0
        ;;
    dropin)
        step "API key: set in a drop-in ($UNIT_PATH.d): none generated"
        return 0
        ;;
    empty)
        step "API key: none (api_keys = [] in $KEY_FILE): the API is open to whoever can reach it"
        return 0
        ;;
    invalid)
        warn "$KEY_FILE cannot be read as TOML: no API key added; fix it and re-run"
        return 0
        ;;
    esac
    step "API key: generating one into $KEY_FILE (mode 0600, owner $SERVICE_USER)"
    if [ "$DRY_RUN" = 1 ]; then
        say "    would add: api_keys = [\"<48 hex digits>\"]"
        return 0
    fi
    local key tmp group
    key=$(generate_api_key)
    mkdir -p "$SYS_CONFIG_DIR" # 0755 (umask 022), as ConfigurationDirectoryMode=
    tmp=$(mktemp "$SYS_CONFIG_DIR/.settings.toml.XXXXXX") # mode 0600
    {
        if [ -s "$KEY_FILE" ]; then
            cat -- "$KEY_FILE"
            [ -z "$(tail -c 1 -- "$KEY_FILE")" ] || printf '\n'
        fi
        printf '# Generated by installer.sh on %s. Clients send "Authorization: Bearer <key>"\n' \
            "$(date -u +%Y-%m-%d)"
        printf '# (or x-api-key: <key>); the appliance CLI reads APPLIANCE_API_KEY.\n'
        printf 'api_keys = ["%s"]\n' "$key"
    } >"$tmp"
    chmod 0600 "$tmp"
    group=$(id -gn "$SERVICE_USER" 2>/dev/null) || group=$SERVICE_USER
    if ! chown "$SERVICE_USER:$group" "$tmp"; then
        rm -f -- "$tmp"
        die "cannot give $KEY_FILE to the user $SERVICE_USER"
    fi
    mv -f -- "$tmp" "$KEY_FILE"
    KEY_STATE=generated
}

# ---------------------------------------------------------------- steps

ensure_service_user() {
    if id -u "$SERVICE_USER" >/dev/null 2>&1; then
        return 0
    fi
    local nologin
    nologin=$(find_tool nologin /usr/sbin /sbin /usr/bin) || nologin=/bin/false
    if command -v useradd >/dev/null 2>&1; then
        run useradd --system --user-group --home-dir /var/lib/appliance --no-create-home \
            --shell "$nologin" --comment "appliance LLM inference daemon" "$SERVICE_USER"
    elif command -v adduser >/dev/null 2>&1; then
        run addgroup -S "$SERVICE_USER"
        run adduser -S -D -H -h /var/lib/appliance -s "$nologin" -G "$SERVICE_USER" "$SERVICE_USER"
    else
        die "cannot create the system user '$SERVICE_USER': no useradd or adduser"
    fi
}

STAGE=""
cleanup() {
    if [ -n "$STAGE" ]; then
        rm -rf -- "$STAGE"
    fi
}
trap cleanup EXIT

# Build from a clean copy, so that pip's in-tree build leaves nothing (root-owned)
# in the checkout, and the checkout's venv and model files are not copied.
stage_source() {
    STAGE=$(mktemp -d "${TMPDIR:-/tmp}/appliance-src.XXXXXX")
    tar -C "$REPO_DIR" \
        --exclude=./.git --exclude=./.venv --exclude=./.appliance-home \
        --exclude=./build --exclude=./dist --exclude='*.egg-info' --exclude=__pycache__ \
        --exclude=.mypy_cache --exclude=.ruff_cache --exclude=.pytest_cache \
        -cf - . | tar -C "$STAGE" -xf -
}

install_venv() {
    step "virtual environment: $VENV"
    run mkdir -p "$PREFIX"
    if [ -x "$VENV/bin/python" ] &&
        "$VENV/bin/python" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
        say "    reusing it (upgrade)"
    else
        run "$PYTHON_BIN" -m venv --clear "$VENV"
    fi
    run "$VENV/bin/python" -m pip install --disable-pip-version-check --quiet --upgrade pip

    step "installing the appliance and its dependencies (llama-cpp-python for $BACKEND)"
    if [ "$BACKEND" != cpu ]; then
        say "    building llama.cpp for $BACKEND can take 5 to 20 minutes"
    fi
    if [ "$DRY_RUN" = 1 ]; then
        run env "${BUILD_ENV[@]}" "$VENV/bin/python" -m pip install --upgrade "$REPO_DIR"
        install_onnx_runtime
        return 0
    fi
    stage_source
    env "${BUILD_ENV[@]}" "$VENV/bin/python" -m pip install --disable-pip-version-check \
        --upgrade "$STAGE"
    check_llama_build
    install_onnx_runtime
}

# ONNX models run on onnxruntime-genai. The default install brings its CPU packages; on
# a CUDA box they are swapped for the CUDA ones (the two sets provide the same modules
# and must never be installed together). The version is the one pyproject.toml pins.
GENAI_VERSION=0.18.0
install_onnx_runtime() {
    if [ "$BACKEND" = rocm ]; then
        # PyPI has no ROCm build of onnxruntime-genai; its AMD GPU provider is AMD's
        # amdgpu plugin (MIGraphX), shipped with ROCm and found through AMDGPU_EP_PATH.
        warn "ONNX models run on the CPU on this AMD box unless AMD's amdgpu provider for onnxruntime-genai is installed: set AMDGPU_EP_PATH=/path/to/libamdgpu-ep.so in the service's environment (systemctl edit appliance); GGUF models use the GPU"
        return 0
    fi
    [ "$BACKEND" = cuda ] || return 0
    step "ONNX runtime for CUDA: onnxruntime-genai-cuda and onnxruntime-gpu replace the CPU packages"
    run "$VENV/bin/python" -m pip uninstall --yes --quiet onnxruntime-genai onnxruntime
    run "$VENV/bin/python" -m pip install --disable-pip-version-check --quiet \
        "onnxruntime-genai-cuda==$GENAI_VERSION" "onnxruntime-gpu>=1.31"
}

# pip reuses a cached llama-cpp-python wheel whatever CMAKE_ARGS say: check what
# was installed and rebuild it when it does not match the backend wanted.
check_llama_build() {
    local built version
    built=$("$VENV/bin/python" -c 'import llama_cpp
print("gpu" if llama_cpp.llama_supports_gpu_offload() else "cpu")' 2>/dev/null) || built=broken
    case "$BACKEND:$built" in
    cuda:gpu | rocm:gpu | cpu:cpu) return 0 ;;
    cpu:gpu) [ "$FORCE_CPU" = 1 ] || return 0 ;;
    esac
    version=$("$VENV/bin/python" -c 'import importlib.metadata as m
print(m.version("llama-cpp-python"))')
    step "llama-cpp-python $version is built for $built, $BACKEND wanted: rebuilding it"
    env "${BUILD_ENV[@]}" "$VENV/bin/python" -m pip install --disable-pip-version-check \
        --force-reinstall --no-deps --no-cache-dir "llama-cpp-python==$version"
}

install_command() {
    step "command: $BIN_DIR/appliance -> $VENV/bin/appliance"
    run mkdir -p "$BIN_DIR"
    run ln -sfn "$VENV/bin/appliance" "$BIN_DIR/appliance"
    case ":$PATH:" in
    *":$BIN_DIR:"*) ;;
    *) warn "$BIN_DIR is not on your PATH: add it (e.g. export PATH=\"$BIN_DIR:\$PATH\" in ~/.profile)" ;;
    esac
}

install_unit() {
    step "systemd unit: $UNIT_PATH"
    run mkdir -p "$UNIT_DIR"
    if [ "$DRY_RUN" = 1 ]; then
        say "    would write:"
        render_unit | sed 's/^/    | /'
    else
        local rendered
        rendered=$(mktemp)
        render_unit >"$rendered"
        install -m 0644 "$rendered" "$UNIT_PATH"
        rm -f -- "$rendered"
    fi
    run "${SYSTEMCTL[@]}" daemon-reload
    run "${SYSTEMCTL[@]}" enable "$SERVICE"
    if [ "$NO_START" = 0 ]; then
        # restart, not start: a re-run upgrades a running daemon.
        run "${SYSTEMCTL[@]}" restart "$SERVICE"
    fi
}

BACKGROUND_PID=""
stop_background() {
    local pidfile=$RUN_DIR/appliance.pid pid waited=0
    [ -f "$pidfile" ] || return 0
    pid=$(cat "$pidfile" 2>/dev/null) || return 0
    case "$pid" in '' | *[!0-9]*) return 0 ;; esac
    if kill -0 "$pid" 2>/dev/null && grep -q appliance "/proc/$pid/cmdline" 2>/dev/null; then
        step "stopping the running daemon (pid $pid)"
        run kill "$pid"
        while [ "$DRY_RUN" = 0 ] && kill -0 "$pid" 2>/dev/null && [ "$waited" -lt 30 ]; do
            sleep 0.5
            waited=$((waited + 1))
        done
    fi
}

start_background() {
    local pidfile=$RUN_DIR/appliance.pid logfile=$LOG_DIR/appliance.log
    step "starting appliance serve in the background (no systemd)"
    run mkdir -p "$LOG_DIR" "$RUN_DIR"
    if [ "$DRY_RUN" = 1 ]; then
        say "    would run: nohup $VENV/bin/appliance serve >>$logfile 2>&1 &  (pid in $pidfile)"
        return 0
    fi
    if [ -n "$PORT" ]; then
        APPLIANCE_PORT=$PORT nohup "$VENV/bin/appliance" serve >>"$logfile" 2>&1 </dev/null &
    else
        nohup "$VENV/bin/appliance" serve >>"$logfile" 2>&1 </dev/null &
    fi
    BACKGROUND_PID=$!
    printf '%s\n' "$BACKGROUND_PID" >"$pidfile"
    say "    pid $BACKGROUND_PID, log $logfile"
}

probe() {
    if command -v curl >/dev/null 2>&1; then
        curl -fsS -m 2 -o /dev/null "$1" 2>/dev/null
    else
        "$VENV/bin/python" -c 'import sys, urllib.request
urllib.request.urlopen(sys.argv[1], timeout=2).read()' "$1" >/dev/null 2>&1
    fi
}

wait_for_health() {
    local url=$1/health i
    step "waiting for $url"
    for i in $(seq 1 30); do
        if probe "$url"; then
            return 0
        fi
        if [ -n "$BACKGROUND_PID" ] && ! kill -0 "$BACKGROUND_PID" 2>/dev/null; then
            return 1
        fi
        [ "$i" -lt 30 ] && sleep 1
    done
    return 1
}

print_plan() {
    local service
    if [ "$USE_SYSTEMD" = 1 ]; then
        service="systemd unit $UNIT_PATH (from ${UNIT_TEMPLATE#"$REPO_DIR"/})"
    else
        service="none ($SYSTEMD_NOTE): nohup appliance serve, log $LOG_DIR/appliance.log, pid $RUN_DIR/appliance.pid"
    fi
    if [ "$DRY_RUN" = 1 ]; then
        say "appliance installer plan (dry run: nothing is changed)"
    else
        say "appliance installer plan"
    fi
    say "  checkout:   $REPO_DIR"
    say "  python:     $PYTHON_BIN ($PYTHON_VERSION)"
    if [ "$MODE" = system ]; then
        say "  mode:       system (root; the service runs as user $SERVICE_USER)"
    else
        say "  mode:       user ($(id -un))"
    fi
    say "  backend:    $BACKEND ($BACKEND_REASON)"
    if [ "${#BUILD_ENV[@]}" -gt 0 ]; then
        say "  build env:  ${BUILD_ENV[*]}"
    else
        say "  build env:  (none: llama.cpp's CPU build)"
    fi
    say "  prefix:     $PREFIX"
    say "  venv:       $VENV"
    say "  command:    $BIN_DIR/appliance -> $VENV/bin/appliance"
    say "  service:    $service"
    if [ -n "$PORT" ]; then
        say "  port:       $PORT"
    else
        say "  port:       $DEFAULT_PORT (default, unless settings.toml says otherwise)"
    fi
    if [ "$USE_SYSTEMD" = 1 ] && [ "$MODE" = system ]; then
        say "  GPU groups: ${GPU_GROUPS:-(none on this box)}"
    fi
    case "$KEY_STATE" in
    generate) say "  API key:    none configured: one is generated into $KEY_FILE (0600, owner $SERVICE_USER)" ;;
    kept) say "  API key:    configured in $KEY_FILE (kept)" ;;
    dropin) say "  API key:    configured in $UNIT_PATH.d (kept)" ;;
    empty) say "  API key:    none (api_keys = [] in $KEY_FILE)" ;;
    invalid) say "  API key:    $KEY_FILE cannot be read as TOML: none added" ;;
    esac
    if [ "$NO_START" = 1 ]; then
        say "  start:      no (--no-start)"
    else
        say "  start:      yes, then wait up to 30 s for /health"
    fi
}

# The end of an install (or of its dry run): where it is and what to do next.
#   print_next_steps URL serving|stopped|planned
print_next_steps() {
    local url=$1 how=$2
    say ""
    case "$how" in
    serving) say "The appliance is serving at $url" ;;
    stopped)
        say "Installed; not started (--no-start)."
        if [ "$USE_SYSTEMD" = 1 ]; then
            say "  start it: ${SYSTEMCTL[*]} start appliance"
        else
            say "  start it: nohup $VENV/bin/appliance serve >>$LOG_DIR/appliance.log 2>&1 &"
        fi
        ;;
    planned) say "Once installed, it serves at $url" ;;
    esac
    say ""
    say "Next steps:"
    if [ "$USE_SYSTEMD" = 1 ]; then
        next_step status "${SYSTEMCTL[*]} status appliance"
        next_step logs "$JOURNALCTL -f"
        if [ "$MODE" = user ]; then
            next_step linger "loginctl enable-linger $(id -un)   (keeps it running after you log out)"
        fi
    else
        next_step status "kill -0 \$(cat $RUN_DIR/appliance.pid) && echo running"
        next_step logs "tail -f $LOG_DIR/appliance.log"
        next_step stop "kill \$(cat $RUN_DIR/appliance.pid)"
    fi
    local header=""
    case "$KEY_STATE" in
    generate | generated | kept)
        next_step "API key" "in $KEY_FILE (api_keys; only root and $SERVICE_USER can read it)."
        next_step "" "As root, for curl and the appliance CLI (tui, ps, chat...):"
        next_step "" "export APPLIANCE_API_KEY=\$(sed -n '$KEY_SED' $KEY_FILE)"
        header="-H \"Authorization: Bearer \$APPLIANCE_API_KEY\" "
        ;;
    dropin)
        next_step "API key" "set in $UNIT_PATH.d; for curl and the appliance CLI:"
        next_step "" "export APPLIANCE_API_KEY=<that key>"
        header="-H \"Authorization: Bearer \$APPLIANCE_API_KEY\" "
        ;;
    esac
    next_step doctor "appliance doctor   (backend, devices, memory, offline self-test)"
    next_step TUI "appliance tui      (dashboard, models, events, chat)"
    next_step chat "appliance chat     (with the default model)"
    next_step models "appliance ps       (the models loaded now)"
    next_step API "curl -s $header$url/v1/models"
    next_step "" "OpenAI-compatible base URL: $url/v1"
    if [ -n "$PORT" ]; then
        next_step "" "(the CLI on another port: export APPLIANCE_PORT=$PORT)"
    fi
    next_step uninstall "$REPO_DIR/installer.sh --uninstall$(same_layout_flags)   (keeps models and settings)"
}

next_step() { # next_step LABEL TEXT
    if [ -n "$1" ]; then
        printf '  %-11s%s\n' "$1:" "$2"
    else
        printf '  %-11s%s\n' "" "$2"
    fi
}

# The flags that make another run of the installer find this install.
same_layout_flags() {
    local flags=""
    if [ "$FORCE_USER" = 1 ] && [ "$(id -u)" -eq 0 ]; then
        flags=" --user"
    fi
    if [ -n "$PREFIX_GIVEN" ]; then
        flags="$flags --prefix $PREFIX"
    fi
    printf '%s' "$flags"
}

# ---------------------------------------------------------------- uninstall

REMOVED=()
KEPT=()
removed() { REMOVED+=("$(printf '%-9s %s' "$1" "$2")"); }
kept() { KEPT+=("$(printf '%-9s %s' "$1" "$2")"); }

# remove_tree DIR: rm -rf DIR (or say it would), never / or the home folder itself.
remove_tree() {
    local path=${1%/}
    case "$path" in
    '' | [!/]* | "${HOME%/}" | /home | /root | /opt | /etc | /var | /var/lib | /var/log | /var/cache | /run | /usr | /usr/local)
        die "refusing to remove '$1'"
        ;;
    esac
    run rm -rf -- "$path"
}

# Without --prefix and with nothing at the default one: the prefix the command link or
# the unit points to, so that `--uninstall` alone finds an install made with --prefix.
adopt_installed_prefix() {
    [ -z "$PREFIX_GIVEN" ] || return 0
    [ ! -e "$VENV" ] || return 0
    local target="" from="" venv
    if [ -L "$BIN_DIR/appliance" ]; then
        target=$(readlink -- "$BIN_DIR/appliance") || target=""
        from=$BIN_DIR/appliance
    fi
    case "$target" in
    /*/venv/bin/appliance) ;;
    *)
        target=""
        if [ -f "$UNIT_PATH" ]; then
            target=$(sed -n 's|^ExecStart=\(/.*/venv/bin/appliance\) serve$|\1|p' "$UNIT_PATH" | head -n 1)
            from=$UNIT_PATH
        fi
        ;;
    esac
    case "$target" in
    /*/venv/bin/appliance) ;;
    *) return 0 ;;
    esac
    venv=${target%/bin/appliance}
    [ -f "$venv/pyvenv.cfg" ] || return 0
    VENV=$venv
    PREFIX=${venv%/venv}
    say "  (the install's prefix, from $from: $PREFIX)"
}

uninstall_service() {
    [ -e "$UNIT_PATH" ] || [ -L "$UNIT_PATH" ] || return 0
    local note="stopped and disabled" link
    if [ "$USE_SYSTEMD" = 1 ]; then
        step "stopping and disabling $SERVICE"
        run "${SYSTEMCTL[@]}" stop "$SERVICE" || warn "could not stop $SERVICE"
        run "${SYSTEMCTL[@]}" disable "$SERVICE" || warn "could not disable $SERVICE"
    else
        warn "$UNIT_PATH exists but systemd cannot be asked here ($SYSTEMD_NOTE): removing the unit file only"
        note="not stopped: $SYSTEMD_NOTE"
    fi
    step "removing the unit $UNIT_PATH"
    run rm -f -- "$UNIT_PATH"
    for link in "$UNIT_DIR"/*.wants/"$SERVICE"; do
        if [ -L "$link" ]; then
            run rm -f -- "$link"
        fi
    done
    if [ "$USE_SYSTEMD" = 1 ]; then
        run "${SYSTEMCTL[@]}" daemon-reload || warn "systemctl daemon-reload failed"
    fi
    removed service "$UNIT_PATH ($note)"
}

# The daemon started with nohup where there is no systemd.
uninstall_background() {
    local pidfile=$RUN_DIR/appliance.pid
    [ -f "$pidfile" ] || return 0
    stop_background
    run rm -f -- "$pidfile"
    removed daemon "stopped; its pid file $pidfile"
}

uninstall_command() {
    local link=$BIN_DIR/appliance target
    if [ -L "$link" ]; then
        target=$(readlink -- "$link") || target=""
        if [ "$target" = "$VENV/bin/appliance" ]; then
            step "removing the command $link"
            run rm -f -- "$link"
            removed command "$link"
        else
            warn "$link points to $target, not to $VENV/bin/appliance: left alone (uninstall with the --prefix it was installed with)"
            kept command "$link -> $target (another install's)"
        fi
    elif [ -e "$link" ]; then
        warn "$link is not the link the installer makes: left alone"
        kept command "$link (not the installer's link)"
    fi
}

uninstall_venv() {
    local entry only_venv=1
    if [ -d "$VENV" ]; then
        if [ -f "$VENV/pyvenv.cfg" ]; then
            step "removing the venv $VENV"
            remove_tree "$VENV"
            removed venv "$VENV"
        else
            warn "$VENV is not a virtual environment (no pyvenv.cfg): left alone"
            kept venv "$VENV (not a virtual environment)"
            return 0
        fi
    fi
    # The prefix folder too, when nothing else is in it.
    [ -d "$PREFIX" ] || return 0
    for entry in "$PREFIX"/* "$PREFIX"/.[!.]* "$PREFIX"/..?*; do
        if [ -e "$entry" ] || [ -L "$entry" ]; then
            [ "$entry" = "$VENV" ] || only_venv=0
        fi
    done
    if [ "$only_venv" = 1 ]; then
        run rmdir -- "$PREFIX" 2>/dev/null || true
        removed prefix "$PREFIX (empty)"
    fi
}

# The models, settings, logs and caches: kept, or removed with --purge.
uninstall_data() {
    local labels=(models settings logs cache runtime)
    local dirs=("$DATA_DIR" "$CONFIG_DIR" "$LOG_DIR" "$CACHE_DIR" "$RUN_DIR")
    local notes=("the model store is $DATA_DIR/store" "settings.toml, models.toml${KEY_NOTE}" "" "" "")
    local i dir note parent
    for i in "${!dirs[@]}"; do
        dir=${dirs[$i]}
        [ -d "$dir" ] || continue
        if [ "$PURGE" = 1 ]; then
            step "removing ${labels[$i]}: $dir"
            remove_tree "$dir"
            removed "${labels[$i]}" "$dir"
            # ~/.local/state/appliance and the like, once empty
            parent=$(dirname -- "$dir")
            if [ "$(basename -- "$parent")" = appliance ] && [ "$DRY_RUN" = 0 ]; then
                rmdir -- "$parent" 2>/dev/null || true
            fi
        elif [ "${labels[$i]}" != runtime ]; then
            note=$(du -sh -- "$dir" 2>/dev/null | cut -f1) || note=""
            if [ -n "${notes[$i]}" ]; then
                note="${note:+$note; }${notes[$i]}"
            fi
            kept "${labels[$i]}" "$dir${note:+ ($note)}"
        fi
    done
    if [ -d "$UNIT_PATH.d" ]; then
        if [ "$PURGE" = 1 ]; then
            remove_tree "$UNIT_PATH.d"
            removed override "$UNIT_PATH.d"
        else
            kept override "$UNIT_PATH.d (systemctl edit's drop-ins)"
        fi
    fi
}

print_uninstall_summary() {
    local entry what_removed=Removed what_kept=Kept
    if [ "$DRY_RUN" = 1 ]; then
        what_removed="Would remove"
        what_kept="Would keep"
    fi
    say ""
    if [ "${#REMOVED[@]}" -eq 0 ]; then
        say "Nothing to remove: no appliance service, venv or command is installed here"
        say "  (looked for $UNIT_PATH, $VENV, $BIN_DIR/appliance)."
    else
        say "$what_removed:"
        for entry in "${REMOVED[@]}"; do
            say "  $entry"
        done
    fi
    if [ "${#KEPT[@]}" -gt 0 ]; then
        say "$what_kept:"
        for entry in "${KEPT[@]}"; do
            say "  $entry"
        done
        if [ "$PURGE" = 0 ]; then
            say "To remove the models and settings too: $REPO_DIR/installer.sh --uninstall --purge$(same_layout_flags)"
        fi
    fi
    if [ "$DRY_RUN" = 1 ]; then
        say ""
        say "dry run: nothing was changed"
    fi
}

uninstall_main() {
    if (find_python) >/dev/null 2>&1; then
        find_python # to ask appliance.paths where the folders are
    fi
    if [ "$DRY_RUN" = 1 ]; then
        say "appliance uninstall (dry run: nothing is changed)"
    else
        say "appliance uninstall"
    fi
    if [ "$MODE" = system ]; then
        say "  mode:       system (root)"
    else
        say "  mode:       user ($(id -un))"
    fi
    adopt_installed_prefix
    say "  prefix:     $PREFIX"
    say "  purge:      $([ "$PURGE" = 1 ] && echo "yes: the models, settings, logs and caches go too" || echo "no: the models, settings, logs and caches stay")"
    LOG_DIR=""
    RUN_DIR=""
    resolve_runtime_dirs
    KEY_NOTE=""
    if [ "$MODE" = system ] && [ "$CONFIG_DIR" = "$SYS_CONFIG_DIR" ] &&
        grep -qs '^api_keys' "$SYS_CONFIG_DIR/settings.toml"; then
        KEY_NOTE=", the API key"
    fi
    say ""
    uninstall_service
    uninstall_background
    uninstall_command
    uninstall_venv
    uninstall_data
    if [ "$MODE" = system ] && id -u "$SERVICE_USER" >/dev/null 2>&1; then
        kept user "$SERVICE_USER (the system user; userdel $SERVICE_USER removes it)"
    fi
    print_uninstall_summary
}

# ---------------------------------------------------------------- main

main() {
    if [ "$UNINSTALL" = 1 ]; then
        uninstall_main
        return 0
    fi
    find_python
    detect_backend
    LOG_DIR=""
    RUN_DIR=""
    resolve_runtime_dirs
    check_api_key
    print_plan
    say ""
    check_venv_module
    check_compilers

    if [ "$USE_SYSTEMD" = 1 ] && [ "$MODE" = system ]; then
        step "system user: $SERVICE_USER"
        ensure_service_user
    fi
    install_venv
    install_command
    if wants_api_key; then
        install_api_key
    fi

    if [ "$USE_SYSTEMD" = 1 ]; then
        install_unit
    else
        step "$SYSTEMD_NOTE: no service installed"
        resolve_runtime_dirs
        if [ "$NO_START" = 0 ]; then
            stop_background
            start_background
        fi
    fi

    local url
    url=$(base_url)
    if [ "$DRY_RUN" = 1 ]; then
        print_next_steps "$url" planned
        say ""
        say "dry run: nothing was changed"
        return 0
    fi
    if [ "$NO_START" = 1 ]; then
        print_next_steps "$url" stopped
        return 0
    fi
    if ! wait_for_health "$url"; then
        if [ "$USE_SYSTEMD" = 1 ]; then
            die "the appliance did not answer on $url/health within 30 s; see: ${SYSTEMCTL[*]} status appliance; $JOURNALCTL -n 50"
        fi
        die "the appliance did not answer on $url/health within 30 s; see $LOG_DIR/appliance.log"
    fi
    print_next_steps "$url" serving
}

main
