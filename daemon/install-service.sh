#!/usr/bin/env bash
# Install deepdream-daemon as a systemd user service (deepdream.service) and
# start it; where systemd --user is not available, say how to run it by hand.
# Safe to run again: the unit is rewritten and the service restarted.
#
#   daemon/install-service.sh --venv VENV     VENV holds bin/deepdream-daemon
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv=""
while [ $# -gt 0 ]; do
    case "$1" in
        --venv) venv="${2:?--venv needs a folder}"; shift ;;
        -h|--help) sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "install-service.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
[ -n "$venv" ] || { echo "install-service.sh: --venv VENV is required" >&2; exit 2; }
[ -d "$venv" ] || { echo "install-service.sh: no folder $venv; run ./install.sh first" >&2; exit 1; }
venv="$(cd "$venv" && pwd)"
daemon="$venv/bin/deepdream-daemon"
[ -x "$daemon" ] || { echo "install-service.sh: $daemon not found; run ./install.sh first" >&2; exit 1; }

config="${XDG_CONFIG_HOME:-$HOME/.config}"
unit_dir="$config/systemd/user"
mkdir -p "$unit_dir"
# systemd splits ExecStart on spaces unless the path is quoted.
sed "s|^ExecStart=@DAEMON@\$|ExecStart=\"$daemon\"|" "$here/deepdream_daemon/deepdream.service" > "$unit_dir/deepdream.service.new"
mv "$unit_dir/deepdream.service.new" "$unit_dir/deepdream.service"
echo "==> Installed $unit_dir/deepdream.service"

if command -v systemctl >/dev/null && systemctl --user show-environment >/dev/null 2>&1; then
    systemctl --user daemon-reload
    systemctl --user enable deepdream.service >/dev/null
    systemctl --user restart deepdream.service  # picks up a changed unit or new code
    echo "==> deepdream.service is enabled and starting (the model loads in the background)."
    echo "    status:  systemctl --user status deepdream"
    echo "    logs:    journalctl --user -u deepdream -f"
    echo "    settings: ${config}/deepdream/daemon.toml (then systemctl --user restart deepdream)"
    echo "    To keep it running while you are logged out: loginctl enable-linger \"$USER\""
else
    cat <<TXT
==> systemd --user is not available here (a container, or no user session), so the
    service was installed but not started. Run the daemon by hand instead:
        "$daemon" &
    It listens on tcp://127.0.0.1:5555 and logs to stderr; see "$daemon" --help.
TXT
fi
