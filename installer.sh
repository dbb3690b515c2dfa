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
# See --help for the options.
set -euo pipefail
umask 022 # the venv must be readable by the service user

DEFAULT_PORT=8750
SERVICE=appliance.service
SERVICE_USER=appliance

usage() {
    cat <<'EOF'
Usage: installer.sh [options]

Install the appliance (a self-hosted LLM inference daemon) from this checkout,
build llama-cpp-python for the accelerator found (CUDA, ROCm or CPU), install the
systemd service and start it. Re-run to upgrade.

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

while [ $# -gt 0 ]; do
    case "$1" in
    --cpu) FORCE_CPU=1 ;;
    --user) FORCE_USER=1 ;;
    --no-start) NO_START=1 ;;
    --dry-run) DRY_RUN=1 ;;
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
if [ "$MODE" = system ]; then
    PREFIX=${PREFIX:-/opt/appliance}
    BIN_DIR=/usr/local/bin
    UNIT_DIR=/etc/systemd/system
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

if [ "$MODE" = system ] && [ "$USE_SYSTEMD" = 1 ]; then
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
        env_args=(STATE_DIRECTORY=/var/lib/appliance CONFIGURATION_DIRECTORY=/etc/appliance
            LOGS_DIRECTORY=/var/log/appliance CACHE_DIRECTORY=/var/cache/appliance
            RUNTIME_DIRECTORY=/run/appliance)
    fi
    if [ -n "$PORT" ]; then
        env_args+=("APPLIANCE_PORT=$PORT")
    fi
    if [ -x "$python" ] && "$python" -c 'import appliance.paths' >/dev/null 2>&1; then
        env "${env_args[@]}" "$python" -c "$code" 2>/dev/null || true
    else
        env "${env_args[@]}" PYTHONPATH="$REPO_DIR" "$PYTHON_BIN" -c "$code" 2>/dev/null || true
    fi
}

resolve_runtime_dirs() {
    local dirs
    dirs=$(appliance_python 'from appliance.paths import resolve_paths
p = resolve_paths()
print(p.log_dir)
print(p.run_dir)')
    LOG_DIR=$(printf '%s\n' "$dirs" | sed -n 1p)
    RUN_DIR=$(printf '%s\n' "$dirs" | sed -n 2p)
    LOG_DIR=${LOG_DIR:-${XDG_STATE_HOME:-$HOME/.local/state}/appliance/log}
    RUN_DIR=${RUN_DIR:-${XDG_STATE_HOME:-$HOME/.local/state}/appliance/run}
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
    if [ "$NO_START" = 1 ]; then
        say "  start:      no (--no-start)"
    else
        say "  start:      yes, then wait up to 30 s for /health"
    fi
}

print_usage_hint() {
    local url=$1
    say ""
    say "The appliance is serving at $url"
    say "  OpenAI-compatible base URL:  $url/v1"
    say "  appliance chat               chat with the default model"
    say "  appliance ps                 the models loaded now"
    if [ "$USE_SYSTEMD" = 1 ]; then
        say "  ${SYSTEMCTL[*]} status appliance"
        say "  $JOURNALCTL -f"
        if [ "$MODE" = user ]; then
            say "  loginctl enable-linger $(id -un)   keeps it running after you log out"
        fi
    else
        say "  log:  $LOG_DIR/appliance.log"
        say "  stop: kill \$(cat $RUN_DIR/appliance.pid)"
    fi
    if [ -n "$PORT" ]; then
        say "  (CLI on another port: export APPLIANCE_PORT=$PORT)"
    fi
}

# ---------------------------------------------------------------- main

main() {
    find_python
    detect_backend
    LOG_DIR=""
    RUN_DIR=""
    resolve_runtime_dirs
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

    if [ "$DRY_RUN" = 1 ]; then
        say ""
        say "dry run: nothing was changed"
        return 0
    fi
    local url
    url=$(base_url)
    if [ "$NO_START" = 1 ]; then
        say ""
        say "Installed; not started (--no-start)."
        if [ "$USE_SYSTEMD" = 1 ]; then
            say "  start it: ${SYSTEMCTL[*]} start appliance"
        else
            say "  start it: nohup $VENV/bin/appliance serve >>$LOG_DIR/appliance.log 2>&1 &"
        fi
        return 0
    fi
    if ! wait_for_health "$url"; then
        if [ "$USE_SYSTEMD" = 1 ]; then
            die "the appliance did not answer on $url/health within 30 s; see: ${SYSTEMCTL[*]} status appliance; $JOURNALCTL -n 50"
        fi
        die "the appliance did not answer on $url/health within 30 s; see $LOG_DIR/appliance.log"
    fi
    print_usage_hint "$url"
}

main
