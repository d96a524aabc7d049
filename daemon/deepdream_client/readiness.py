"""Wait for the daemon to be ready, and start it when it is not running.

The one "ping until ready" loop (wait_ready) that the GIMP plug-in, the CLI,
the benchmarks and the tests use, and the auto-start the plug-in offers: the
command the installer records as "start_command" in client.json, run detached
(the daemon outlives the program that started it), its output in the cache
folder's daemon.log (paths.py). Messages are for the user, whole, and fitted to
the system: its shell, its installer, its GIMP's sandbox."""

import os
import subprocess
import sys
import time

from .client import DaemonUnavailable

from .settings import config_path, is_loopback, load_config
from .paths import cache_file
from deepdream_common.quoting import command_line
from deepdream_common.vocabulary import DEFAULT_ENDPOINT

PING_TIMEOUT = 3.0  # a live daemon answers a ping in milliseconds
START_TIMEOUT = 240.0  # importing TensorFlow and building the model, on a slow machine
_PAUSE = 0.5  # between pings while the model loads


class NotReady(RuntimeError):
    """No daemon can dream now: none answers and none could be started, it stopped
    while starting, it failed to load its model, or it was not ready in time."""


def wait_ready(client, timeout=START_TIMEOUT, process=None, log_path=None, on_wait=None):
    """Ping until the daemon says it is ready and return its pong. `process`: the
    daemon's Popen when the caller started it (its exit ends the wait at once, with
    the tail of `log_path`); `on_wait(pong)` is called at each pause (pong None
    while no daemon answers yet), to pulse a progress bar or say why it waits."""
    deadline = time.monotonic() + timeout
    log_hint = f" Its log is {log_path}." if log_path else ""
    while True:
        if process is not None and process.poll() is not None:
            raise NotReady(f"The DeepDream daemon stopped at once (exit status {process.returncode}). "
                           f"Its last words, from {log_path}:\n{tail(log_path)}")
        try:
            pong = client.ping(timeout=max(0.1, min(PING_TIMEOUT, deadline - time.monotonic())))
        except DaemonUnavailable:
            pong = None
        state = pong.get("state") if pong else None
        if state == "ready":
            return pong
        if pong is not None and state != "loading":
            raise NotReady(f"The DeepDream daemon at {client.endpoint} cannot dream: "
                           f"{pong.get('error') or state}.{log_hint}")
        if time.monotonic() >= deadline:
            raise NotReady(f"The DeepDream daemon at {client.endpoint} was not ready after {timeout:g} s.{log_hint}")
        if on_wait is not None:
            on_wait(pong)
        time.sleep(_PAUSE)


def ensure_daemon(client, timeout=START_TIMEOUT, on_wait=None):
    """The ready daemon's pong: a ping first; when none answers, the recorded
    start_command is run (not from a sandboxed GIMP: Flatpak, Snap, Microsoft
    Store, where the installer's user service starts the daemon; nor for another
    computer's address, which a daemon here could not take) and waited for.
    NotReady, with what to do, when that cannot work."""
    try:
        pong = client.ping(timeout=PING_TIMEOUT)
    except DaemonUnavailable:
        if not is_loopback(client.endpoint):
            raise NotReady(remote_hint(client.endpoint)) from None
        settings = load_config()
        command = settings.get("start_command")
        if not command or sandbox():
            service_start = settings.get("service_start")
            raise NotReady(start_command_hint(client.endpoint, command,
                                              service_start if isinstance(service_start, str) else None)) from None
        return wait_ready(client, timeout, start_daemon(command, client.endpoint), daemon_log_path(), on_wait)
    return pong if pong.get("state") == "ready" else wait_ready(client, timeout, on_wait=on_wait)


def start_daemon(command, endpoint):
    """Start the recorded command, detached (it outlives its starter, and on Windows
    has no console window) and told to listen where the client looks; its output
    goes to daemon_log_path()."""
    log_path = daemon_log_path()
    log_path.parent.mkdir(parents=True, exist_ok=True)
    argv = command if isinstance(command, list) else [command]
    with open(log_path, "ab") as log:
        options = dict(env={**os.environ, "DEEPDREAM_ENDPOINT": endpoint}, stdin=subprocess.DEVNULL, stdout=log,
                       stderr=subprocess.STDOUT, close_fds=True)
        try:
            if sys.platform != "win32":
                return subprocess.Popen(argv, start_new_session=True, **options)
            try:  # out of GIMP's job object too, where it allows that, so that closing GIMP leaves it running
                return subprocess.Popen(argv, creationflags=_WINDOWS_DETACHED | _BREAKAWAY, **options)
            except PermissionError:
                return subprocess.Popen(argv, creationflags=_WINDOWS_DETACHED, **options)
        except OSError as error:
            reason = error.strerror or str(error)
            raise NotReady(f"No DeepDream daemon answers at {endpoint}, and starting one with {command_line(argv)} "
                           f"failed: {reason}. Run {installer()} in your DeepDream folder again (it records the "
                           f"daemon's command), or fix \"start_command\" in {config_path()}.") from None


# No console window, its own process group (GIMP's Ctrl+C and console do not reach it).
_WINDOWS_DETACHED = getattr(subprocess, "CREATE_NO_WINDOW", 0x08000000) | getattr(
    subprocess, "CREATE_NEW_PROCESS_GROUP", 0x200)
_BREAKAWAY = getattr(subprocess, "CREATE_BREAKAWAY_FROM_JOB", 0x01000000)


def start_command_hint(endpoint, command, service_start=None):
    """What to tell a user when no daemon answers and none can be started: the
    command to type, in the shell their system has, and why GIMP did not."""
    argv = command if isinstance(command, list) else [command or _in_venv("deepdream-daemon")]
    line = command_line(argv + (["--endpoint", endpoint] if endpoint != DEFAULT_ENDPOINT else []))
    where = sandbox()
    if where and service_start:
        return (f"No DeepDream daemon answers at {endpoint}.\nGIMP runs as a {where} package and cannot start it "
                f"by itself; the DeepDream service starts it when you log in. To start it now, run in "
                f"{_shell()}:\n    {service_start}")
    intro = f"No DeepDream daemon answers at {endpoint}.\nStart it in {_shell()} with:\n    {line}\n"
    if where:
        return intro + (f"(GIMP runs as a {where} package and cannot start it by itself. Run {installer()} "
                        f"--service in your DeepDream folder to have it start whenever you log in.)")
    return intro + (f"(It is in your DeepDream folder. Running {installer()} there records it in {config_path()}, "
                    f"so that GIMP can start it by itself.)")


def remote_hint(endpoint):
    """What to tell a user whose configured daemon, on another computer, does not answer."""
    return (f"No DeepDream daemon answers at {endpoint}. That is another computer's address, so none is started "
            f"here: check that the daemon runs there (`{_in_venv('deepdream')} ping --endpoint {endpoint}` asks "
            f"it) and that the "
            f"address in {config_path()} is right; a daemon with CURVE also needs its server.key there as "
            f"\"server_key\", or a relay on this computer.")


def sandbox():
    """The package format when this Python runs in one that cannot start programs
    outside it (a Flatpak, a Snap, the Microsoft Store's GIMP), else None."""
    if os.path.exists("/.flatpak-info"):
        return "Flatpak"
    if os.environ.get("SNAP_NAME"):
        return "Snap"
    if sys.platform == "win32" and "\\windowsapps\\" in sys.executable.lower():
        return "Microsoft Store"
    return None


def installer():
    """The installer's name on this system."""
    return "install.ps1" if sys.platform == "win32" else "install.sh"


def _shell():
    return {"win32": "PowerShell", "darwin": "Terminal"}.get(sys.platform, "a terminal")


def _in_venv(program):
    """One of the project's programs as the user finds it in the DeepDream folder's venv, on this system."""
    return rf".venv\Scripts\{program}.exe" if sys.platform == "win32" else f".venv/bin/{program}"


def daemon_log_path():
    return cache_file("daemon.log")


def tail(path, lines=8):
    try:
        with open(path, errors="replace") as handle:
            return "".join(handle.readlines()[-lines:])
    except (OSError, TypeError):
        return "(no log)"
