#!/usr/bin/env bash
# Set up DeepDream for GIMP from this folder, on Linux and macOS (Windows: install.ps1).
# Safe to run again.
#
#   ./install.sh              the engine, the daemon, the CLI and the GIMP plug-in
#   ./install.sh --dev        also the test tools and the GIMP 3.0 and 3.2 test roots
#   ./install.sh --help       all options
#
# The work is done by installer/ (Python's standard library only); this finds a
# Python 3.11 or newer for it, on Debian and Ubuntu installing one with apt.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

python_ok() {
    "$1" -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 11))' 2>/dev/null
}
find_python() {
    local candidate
    for candidate in python3 python3.13 python3.12 python3.11; do
        command -v "$candidate" >/dev/null && python_ok "$candidate" && { echo "$candidate"; return; }
    done
    return 0
}

python="$(find_python)"
if [ -z "$python" ] && command -v apt-get >/dev/null; then
    echo "==> Installing Python with its venv module: apt-get install python3 python3-venv python3-pip"
    run_as_root=()
    if [ "$(id -u)" != 0 ]; then
        command -v sudo >/dev/null || { echo "install.sh: installing Python needs root: run ./install.sh as root once, or install sudo" >&2; exit 1; }
        run_as_root=(sudo)
    fi
    "${run_as_root[@]}" apt-get update -qq
    "${run_as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 python3-venv python3-pip >/dev/null
    python="$(find_python)"
fi
if [ -z "$python" ]; then
    case "$(uname -s)" in
        Darwin) where="from python.org (or: brew install python@3.12)" ;;
        *) where="with your distribution's package manager (python3 and its venv module)" ;;
    esac
    echo "install.sh: DeepDream needs Python 3.11 or newer with its venv module. Install it $where, then run ./install.sh again." >&2
    exit 1
fi
PYTHONPATH="$here" exec "$python" -m installer "$@"
