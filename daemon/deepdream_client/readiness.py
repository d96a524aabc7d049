"""Wait for the daemon to be ready, and start it when it is not running.

The one "ping until ready" loop (wait_ready) that the GIMP plug-in, the CLI,
the benchmarks and the tests use, and the auto-start the plug-in offers: the
command install.sh records as "start_command" in client.json, run detached
(the daemon outlives the program that started it), its output in
$XDG_CACHE_HOME/deepdream/daemon.log. Messages are for the user, whole."""

import os
import subprocess
import time

from .client import DaemonUnavailable, config_path, load_config
from .paths import cache_file
from .vocabulary import DEFAULT_ENDPOINT

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
    start_command is run (not inside a Flatpak, which cannot start programs
    outside it) and waited for. NotReady, with what to do, when that cannot work."""
    try:
        pong = client.ping(timeout=PING_TIMEOUT)
    except DaemonUnavailable:
        command = load_config().get("start_command")
        if not command or in_flatpak():
            raise NotReady(start_command_hint(client.endpoint, command)) from None
        return wait_ready(client, timeout, start_daemon(command, client.endpoint), daemon_log_path(), on_wait)
    return pong if pong.get("state") == "ready" else wait_ready(client, timeout, on_wait=on_wait)


def start_daemon(command, endpoint):
    """Start the recorded command, detached (it outlives its starter) and told to
    listen where the client looks; its output goes to daemon_log_path()."""
    log_path = daemon_log_path()
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        try:
            return subprocess.Popen(command if isinstance(command, list) else [command],
                                    env={**os.environ, "DEEPDREAM_ENDPOINT": endpoint},
                                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True, close_fds=True)
        except OSError as error:
            raise NotReady(f"Could not start the DeepDream daemon with {command}: {error}. "
                           f'Run install.sh again, or fix "start_command" in {config_path()}.') from None


def start_command_hint(endpoint, command):
    """What to tell a user when no daemon answers and none can be started."""
    line = " ".join(command) if isinstance(command, list) else (command or "deepdream-daemon")
    if endpoint != DEFAULT_ENDPOINT:
        line += f" --endpoint {endpoint}"
    return (f"No DeepDream daemon answers at {endpoint}.\nStart it in a terminal with:\n    {line}\n"
            + ("(GIMP runs as a Flatpak and cannot start it by itself.)" if in_flatpak() and command else
               "(deepdream-daemon is in the .venv/bin folder of your DeepDream installation; running install.sh "
               f"there records it in {config_path()} so that GIMP can start it by itself.)"))


def in_flatpak():
    return os.path.exists("/.flatpak-info")


def daemon_log_path():
    return cache_file("daemon.log")


def tail(path, lines=8):
    try:
        with open(path, errors="replace") as handle:
            return "".join(handle.readlines()[-lines:])
    except (OSError, TypeError):
        return "(no log)"
