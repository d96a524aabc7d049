#!/usr/bin/env bash
# Install the DeepDream plug-in into GIMP 3 (install.sh runs this; safe to run again).
#
#   gimp_plugin/install-plugin.sh --venv VENV [--plugin-dir DIR] [--skip]
#
# Copies deepdream.py and the client library it imports (the package
# daemon/deepdream_client, pure Python) and msgpack's pure-Python files beside it into DIR/deepdream/, or into every GIMP 3.x user plug-ins folder found:
# ~/.config/GIMP/3.*/plug-ins and Flatpak's ~/.var/app/org.gimp.GIMP/config/GIMP/3.*/plug-ins.
# Records in
# $XDG_CONFIG_HOME/deepdream/client.json how GIMP may start the daemon
# ("start_command") and where to find it ("endpoint"), keeping keys already there.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
venv="" plugin_dir="" skip=0
while [ $# -gt 0 ]; do
    case "$1" in
        --venv) venv="${2:?--venv needs a folder}"; shift ;;
        --plugin-dir) plugin_dir="${2:?--plugin-dir needs a folder}"; shift ;;
        --skip) skip=1 ;;
        -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "install-plugin.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
say() { printf '==> %s\n' "$*"; }
note() { printf '    %s\n' "$*"; }
if [ "$skip" = 1 ]; then say "GIMP plug-in: skipped (--no-gimp)"; exit 0; fi
[ -n "$venv" ] || { echo "install-plugin.sh: --venv VENV is required" >&2; exit 2; }
venv="$(cd "$venv" && pwd)"
python="$venv/bin/python"
[ -x "$python" ] || python="$(command -v python3)"

# The GIMP 3 version installed natively (3.0, 3.2, ...), empty when none.
native_version() {
    local exe
    for exe in gimp-3.2 gimp-3.0 gimp gimp-console-3.0; do
        command -v "$exe" >/dev/null || continue
        "$exe" --version 2>/dev/null | sed -n 's/.*version \(3\.[0-9]*\).*/\1/p' | head -n1 && return
    done
}
flatpak_version() {
    command -v flatpak >/dev/null || return 0
    flatpak info org.gimp.GIMP 2>/dev/null | sed -n 's/^ *Version: *\(3\.[0-9]*\).*/\1/p' | head -n1
}

# msgpack's own folder, from the venv (else this checkout's, for a --venv without msgpack)
msgpack_dir=""
for candidate in "$python" "$repo/.venv/bin/python"; do
    msgpack_dir="$("$candidate" -c 'import msgpack, os; print(os.path.dirname(msgpack.__file__))' 2>/dev/null)" && break
done
[ -n "$msgpack_dir" ] || { echo "install-plugin.sh: no msgpack in $python; run install.sh first" >&2; exit 1; }
targets=()
if [ -n "$plugin_dir" ]; then
    targets+=("$plugin_dir")
else
    shopt -s nullglob
    for config in "$HOME"/.config/GIMP/3.* "$HOME"/.var/app/org.gimp.GIMP/config/GIMP/3.*; do
        [ -d "$config" ] && targets+=("$config/plug-ins")
    done
    shopt -u nullglob
    # A GIMP 3 that has never run has no folder yet. Make it, unless an older
    # GIMP's settings are there to be imported on GIMP 3's first start (an
    # existing folder would stop that import).
    for pair in "$HOME/.config/GIMP:$(native_version)" "$HOME/.var/app/org.gimp.GIMP/config/GIMP:$(flatpak_version)"; do
        base="${pair%%:*}" version="${pair##*:}"
        [ -n "$version" ] && [ ! -d "$base/$version" ] || continue
        if compgen -G "$base/2.*" >/dev/null; then
            say "GIMP $version is installed but has not run yet: start it once (it imports your GIMP 2 settings), then run install.sh again"
        else
            say "GIMP $version has not run yet: creating its plug-ins folder $base/$version/plug-ins"
            targets+=("$base/$version/plug-ins")
        fi
    done
fi

if [ ${#targets[@]} -eq 0 ]; then
    say "GIMP plug-in: no GIMP 3 found (GIMP 2.10 cannot run Python 3 plug-ins)."
    note "After installing GIMP 3 (Debian 13 / Ubuntu 25.04: apt install gimp; or flatpak install flathub org.gimp.GIMP),"
    note "run install.sh again, or name the folder: install.sh --gimp-plugin-dir ~/.config/GIMP/3.0/plug-ins"
fi
for target in "${targets[@]}"; do
    dest="$target/deepdream"
    rm -rf "$dest/daemon" "$dest/deepdream_client" "$dest/msgpack"  # "daemon" held the client library once
    mkdir -p "$dest/deepdream_client" "$dest/msgpack"
    install -m 755 "$here/deepdream/deepdream.py" "$dest/deepdream.py"
    install -m 644 "$repo"/daemon/deepdream_client/*.py "$dest/deepdream_client/"
    # msgpack's pure-Python files (its package falls back to fallback.py without the compiled _cmsgpack), so
    # that GIMP's Python needs nothing installed: the client speaks ZMTP itself where pyzmq is missing.
    install -m 644 "$msgpack_dir"/*.py "$dest/msgpack/"
    rm -rf "$dest/__pycache__"
    say "GIMP plug-in installed: $dest (Filters > DeepDream... after GIMP restarts)"
done

if [ -n "$(flatpak_version)" ]; then
    say "Flatpak GIMP cannot start programs outside its sandbox: start the daemon yourself (or install.sh --service)"
fi

# Where GIMP finds the daemon and how it starts it when nobody has. A Flatpak
# GIMP reads its own copy (its XDG_CONFIG_HOME is inside ~/.var/app), from
# which the plug-in takes the command to show, as it cannot run it.
configs=("${XDG_CONFIG_HOME:-$HOME/.config}/deepdream/client.json")
for target in "${targets[@]}"; do
    case "$target" in "$HOME"/.var/app/org.gimp.GIMP/*)
        configs+=("$HOME/.var/app/org.gimp.GIMP/config/deepdream/client.json") ;;
    esac
done
[ ${#configs[@]} -gt 1 ] && [ "${configs[1]}" = "${configs[0]}" ] && configs=("${configs[0]}")
for config in "${configs[@]}"; do
mkdir -p "$(dirname "$config")"
"$python" - "$config" "$venv/bin/deepdream-daemon" "$repo/daemon" <<'PY'
import json, os, sys
path, daemon = sys.argv[1], sys.argv[2]
sys.path.insert(0, sys.argv[3])  # the client library: this may be a python3 without the project installed
from deepdream_client.vocabulary import DEFAULT_ENDPOINT
try:
    with open(path) as handle:
        settings = json.load(handle)
except FileNotFoundError:
    settings = {}
except ValueError as error:
    settings = error
if not isinstance(settings, dict):
    print(f"==> {path} is not a JSON object ({settings}); left it alone: GIMP cannot start the daemon by "
          f"itself until it is fixed (or removed) and install.sh runs again")
    sys.exit(0)
wanted = dict(settings)
wanted.setdefault("endpoint", DEFAULT_ENDPOINT)
wanted["start_command"] = [daemon]
if wanted != settings:
    with open(path + ".tmp", "w") as handle:
        json.dump(wanted, handle, indent=2)
        handle.write("\n")
    os.replace(path + ".tmp", path)
# Another checkout's install may have recorded its own daemon: replacing it changes which daemon GIMP
# starts, so say so, with what it was.
before = settings.get("start_command")
if before is None:
    print(f"==> GIMP starts the daemon when needed with {daemon} (recorded in {path})")
elif before != wanted["start_command"]:
    shown = " ".join(map(str, before)) if isinstance(before, list) else json.dumps(before)
    print(f"==> Changed {path}: GIMP now starts the daemon with {daemon}, no longer with {shown}")
else:
    print(f"==> GIMP starts the daemon when needed with {daemon} ({path}, unchanged)")
PY
done
