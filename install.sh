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
plugin_args=()

usage() {
    sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'
    cat <<'TXT'
Options:
  --dev                 install pytest and build the GIMP 3.0 and 3.2 test roots (needs root or sudo)
  --service             install and enable the systemd user service deepdream.service
  --gimp-plugin-dir DIR install the GIMP plug-in into DIR instead of every GIMP 3 folder found
  --no-gimp             do not install the GIMP plug-in
  -h, --help            show this help
TXT
}

while [ $# -gt 0 ]; do
    case "$1" in
        --dev) dev=1 ;;
        --service) service=1 ;;
        --gimp-plugin-dir) plugin_args+=(--plugin-dir "${2:?--gimp-plugin-dir needs a folder}"); shift ;;
        --no-gimp) plugin_args+=(--skip) ;;
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
extras=""
[ "$dev" = 1 ] && extras="[test]"
say "Installing the deepdream package$extras into .venv (TensorFlow is large: the first run takes a few minutes)"
pip_log="$venv/pip-install.log"
pip_install() {
    "$venv/bin/python" -m pip install --disable-pip-version-check "$@" >"$pip_log" 2>&1 \
        || { cat "$pip_log" >&2; echo "install.sh: pip failed (log above, also in $pip_log)" >&2; exit 1; }
}
pip_install --upgrade pip
pip_install -e "$here$extras"

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

say "Done. Try:  $venv/bin/deepdream dream photo.jpg dreamed.png --weights random"
