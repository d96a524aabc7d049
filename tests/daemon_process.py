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

import msgpack
import zmq

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

    def ping(self, timeout=2.0):
        """The pong header, or None if no answer came within `timeout` seconds."""
        context = zmq.Context.instance()
        dealer = context.socket(zmq.DEALER)
        dealer.setsockopt(zmq.LINGER, 0)
        dealer.setsockopt(zmq.IPV6, 1)  # tcp://[::1]:PORT endpoints
        try:
            if self.curve_keys:
                if not os.path.exists(os.path.join(self.curve_keys, "server.key")):
                    return None  # the daemon has not made its keys yet
                apply_client_curve(dealer, self.curve_keys)
            dealer.connect(self.endpoint)
            dealer.send_multipart([b"", msgpack.packb({"v": 1, "op": "ping", "id": "ready?"})])
            if not dealer.poll(int(timeout * 1000)):
                return None
            return msgpack.unpackb(dealer.recv_multipart()[-1])
        finally:
            dealer.close()

    def wait_ready(self, timeout=READY_TIMEOUT_S):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"deepdream-daemon exited with {self.process.returncode}:\n{self.log_text()}")
            pong = self.ping(timeout=1.0)
            if pong and pong.get("state") == "ready":
                return pong
            if pong and pong.get("state") == "error":
                self.stop()  # it stays up to report its error: no one else would stop it
                raise RuntimeError(f"deepdream-daemon could not load its model: {pong.get('error')}")
            time.sleep(0.2)
        self.stop()
        raise TimeoutError(f"deepdream-daemon was not ready within {timeout} s:\n{self.log_text()}")

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


def start_daemon(*extra_args, endpoint=None, env=None):
    """Start deepdream-daemon (random weights, float32) and wait until it is ready.

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
    daemon.wait_ready()
    return daemon
