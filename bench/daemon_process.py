"""A real deepdream-daemon in a subprocess, for tests of anything that talks to it.

    with start_daemon() as daemon:          # random weights, float32, a free loopback port
        talk_to(daemon.endpoint)

start_daemon returns once a ping answers state=ready. The daemon's stderr
goes to a file (daemon.log_text() reads it), never to a pipe that could fill."""

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from deepdream_client.client import DreamClient

from deepdream_client.settings import SettingsError
from deepdream_client.readiness import NotReady, wait_ready

READY_TIMEOUT_S = 60
STOP_TIMEOUT_S = 30


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def daemon_command():
    script = Path(sys.executable).with_name("deepdream-daemon")
    return [str(script)] if script.exists() else [sys.executable, "-m", "deepdream_daemon.main"]


class DaemonProcess:
    def __init__(self, process, endpoint, log_path, curve_keys=None):
        self.process = process
        self.endpoint = endpoint
        self.log_path = log_path
        self.curve_keys = curve_keys  # the --curve-keys folder, if one was given

    def log_text(self):
        return Path(self.log_path).read_text(errors="replace")

    def wait_ready(self, timeout=READY_TIMEOUT_S):
        """The daemon's pong once it is ready (readiness.wait_ready, as every client waits);
        a daemon that exits, fails to load its model or is late is stopped, and RuntimeError says why."""
        deadline = time.monotonic() + timeout
        server_key = os.path.join(self.curve_keys, "server.key") if self.curve_keys else None
        while server_key and not os.path.exists(server_key) and self.process.poll() is None:
            if time.monotonic() > deadline:
                break
            time.sleep(0.1)  # the daemon makes its keys first thing; a client needs the public one
        try:
            with DreamClient(self.endpoint, curve_server_key=server_key) as client:
                return wait_ready(client, max(0.0, deadline - time.monotonic()), self.process, self.log_path)
        except (NotReady, SettingsError) as error:
            self.stop()  # a daemon that failed to load stays up to report it: no one else would stop it
            raise RuntimeError(f"deepdream-daemon did not become ready: {error}\n{self.log_text()}") from None

    def stop(self, timeout=STOP_TIMEOUT_S):
        """SIGTERM, then SIGKILL if it does not leave in time; returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.stop()


def apply_client_curve(sock, keys_folder):
    """Make `sock` a CURVE client of the daemon whose keys are in `keys_folder`."""
    import zmq.auth

    server_public, _ = zmq.auth.load_certificate(os.path.join(keys_folder, "server.key"))
    sock.curve_publickey, sock.curve_secretkey = zmq.curve_keypair()
    sock.curve_serverkey = server_public


def start_daemon(*extra_args, endpoint=None, env=None, ready_timeout=READY_TIMEOUT_S, wait=True):
    """Start deepdream-daemon (random weights, float32) and wait until it is ready (with `wait` false: return
    while it loads; daemon.wait_ready() waits then).

    `extra_args` go on its command line after the defaults (later flags win);
    `env` adds environment variables. The daemon sees no DEEPDREAM_* variables
    of the caller's and an empty XDG config folder, so user settings stay out."""
    endpoint = endpoint or f"tcp://127.0.0.1:{free_port()}"
    scratch = tempfile.mkdtemp(prefix="deepdream-daemon-")
    environment = {key: value for key, value in os.environ.items()
                   if not key.startswith("DEEPDREAM_") and key != "NOTIFY_SOCKET"}
    environment.update({"XDG_CONFIG_HOME": scratch, "PYTHONUNBUFFERED": "1", **(env or {})})
    log_path = os.path.join(scratch, "daemon.log")
    args = ["--weights", "random", "--precision", "float32", "--endpoint", endpoint, *extra_args]
    curve_keys = None
    for flag, value in zip(args, args[1:]):
        if flag == "--curve-keys":
            curve_keys = value  # the readiness ping needs the server key
    with open(log_path, "wb") as log:
        process = subprocess.Popen(daemon_command() + args, stdout=log, stderr=subprocess.STDOUT, env=environment)
    daemon = DaemonProcess(process, endpoint, log_path, curve_keys)
    daemon.pong = daemon.wait_ready(ready_timeout) if wait else None
    return daemon
