#!/usr/bin/env bash
# Set up DeepDream for GIMP from this folder: a .venv with the package and its
# console scripts (deepdream, deepdream-daemon). Safe to run again.
#
#   ./install.sh                      the engine, daemon and CLI
#   ./install.sh --dev                also the test tools and the GIMP 3.0 and 3.2 test roots
#   ./install.sh --help               all options
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$here/.venv"
dev=0
service=0
cpu=0
backend=""  # empty: not asked for; the daemon's default (tensorflow) or what daemon.toml already says
plugin_args=()

usage() {
    sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'
    cat <<'TXT'
Options:
  --dev                 install pytest and build the GIMP 3.0 and 3.2 test roots (needs root or sudo)
  --service             install and enable the systemd user service deepdream.service
  --gimp-plugin-dir DIR install the GIMP plug-in into DIR instead of every GIMP 3 folder found
  --no-gimp             do not install the GIMP plug-in
  --cpu                 install the CPU builds only, even where nvidia-smi sees an NVIDIA GPU
                        (by default a GPU seen means TensorFlow with its CUDA libraries, tensorflow[and-cuda])
  --backend NAME        tensorflow (default), jax or torch: the Keras backend the daemon and the CLI dream
                        with; jax and torch are installed beside TensorFlow and recorded as backend = "NAME"
                        in ~/.config/deepdream/daemon.toml. torch from PyPI is a CUDA build of several GB
  -h, --help            show this help
TXT
}

while [ $# -gt 0 ]; do
    case "$1" in
        --dev) dev=1 ;;
        --service) service=1 ;;
        --gimp-plugin-dir) plugin_args+=(--plugin-dir "${2:?--gimp-plugin-dir needs a folder}"); shift ;;
        --no-gimp) plugin_args+=(--skip) ;;
        --cpu) cpu=1 ;;
        --backend)
            backend="${2:?--backend needs tensorflow, jax or torch}"; shift
            case "$backend" in tensorflow|jax|torch) ;; *) echo "install.sh: --backend $backend: use tensorflow, jax or torch" >&2; exit 2 ;; esac ;;
        -h|--help) usage; exit 0 ;;
        *) echo "install.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

say() { printf '==> %s\n' "$*"; }

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"
    elif command -v sudo >/dev/null; then sudo "$@"
    else echo "install.sh: need root for: $* (run it as root, or install sudo)" >&2; exit 1
    fi
}

apt_install() {
    local missing=()
    for package in "$@"; do
        dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "ok installed" || missing+=("$package")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    say "Installing Debian packages: ${missing[*]}"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

record_backend() {
    # The first line: a TOML key before any [table] is top-level. A backend line already there is replaced.
    local file="${XDG_CONFIG_HOME:-$HOME/.config}/deepdream/daemon.toml"
    local line="backend = \"$1\"  # written by install.sh --backend"
    mkdir -p "$(dirname "$file")"
    touch "$file"
    { echo "$line"; grep -Ev '^[[:space:]]*backend[[:space:]]*=' "$file" || true; } >"$file.new"
    mv "$file.new" "$file"
    say "Recorded backend = \"$1\" in $file (the daemon's --backend or DEEPDREAM_BACKEND still win)"
}

python_ok() {
    command -v python3 >/dev/null && python3 -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 10))' 2>/dev/null
}

if ! python_ok; then
    command -v apt-get >/dev/null || { echo "install.sh: needs Python >= 3.10 with venv" >&2; exit 1; }
    apt_install python3 python3-venv python3-pip
fi

if [ ! -x "$venv/bin/python" ]; then
    say "Creating $venv"
    python3 -m venv "$venv"
fi
# An NVIDIA GPU that nvidia-smi lists gets the CUDA builds, unless --cpu says no.
gpu=""
if [ "$cpu" = 0 ] && command -v nvidia-smi >/dev/null; then
    gpu="$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -n 1 || true)"
fi
wanted=()
[ "$dev" = 1 ] && wanted+=(test jax)  # CI tests the JAX backend beside TensorFlow
case "$backend" in jax|torch) wanted+=("$backend") ;; esac
extras=""
[ ${#wanted[@]} -gt 0 ] && extras="[$(printf '%s\n' "${wanted[@]}" | sort -u | paste -sd, -)]"
if [ "$backend" = torch ] && ! "$venv/bin/python" -c 'import torch' 2>/dev/null; then
    say "Note: PyTorch from PyPI is a CUDA build of several GB (on a CPU-only machine too); for a small CPU-only"
    say "build, install torch first from PyTorch's own CPU index (pytorch.org, Get Started), then run this again"
fi
say "Installing the deepdream package$extras into .venv (TensorFlow is large: the first run takes a few minutes)"
pip_log="$venv/pip-install.log"
pip_install() {
    "$venv/bin/python" -m pip install --disable-pip-version-check "$@" >"$pip_log" 2>&1 \
        || { cat "$pip_log" >&2; echo "install.sh: pip failed (log above, also in $pip_log)" >&2; exit 1; }
}
pip_install --upgrade pip
pip_install -e "$here$extras"
if [ -n "$gpu" ]; then
    say "NVIDIA GPU seen ($gpu): installing the CUDA libraries (--cpu skips this)"
    cuda_packages=("tensorflow[and-cuda]")
    [ "$backend" = jax ] && cuda_packages+=("jax[cuda12]")
    pip_install "${cuda_packages[@]}"
fi

# The plug-in runs in GIMP's own Python; this copies it (and the wire code it
# shares with the client library) beside GIMP's other plug-ins.
"$here/gimp_plugin/install-plugin.sh" --venv "$venv" "${plugin_args[@]}"

if [ "$service" = 1 ]; then
    "$here/daemon/install-service.sh" --venv "$venv"
fi

if [ "$dev" = 1 ]; then
    # The GIMP tests run on both GIMP 3 series the plug-in supports, each in a root of its own.
    for gimp_series in 3.0 3.2; do
        say "Building the GIMP $gimp_series test root (cached; the first time takes a few minutes)"
        as_root "$here/tests/gimp/make-root.sh" --gimp "$gimp_series"
    done
fi

[ -n "$backend" ] && record_backend "$backend"

# What the daemon will dream on, asked of the installed stack (the daemon's own settings apply: backend, device).
device="$("$venv/bin/deepdream-daemon" --print-device 2>&1)" || device="unknown: ${device##*$'\n'}"
say "The daemon will dream with ${device##*$'\n'}"
say "Done. Try:  $venv/bin/deepdream dream photo.jpg dreamed.png --weights random"
