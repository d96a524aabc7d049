"""The project as a user meets it: a warm deepdream-daemon in its own process,
a client sending the job over ZeroMQ. Start-up (model load and the first
trace) is timed apart from the dream; the daemon's peak RSS is read from /proc."""

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from deepdream_client.client import DaemonUnavailable, DreamClient

from . import memory

READY_TIMEOUT_S = 180


def _free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _daemon_command():
    script = Path(sys.executable).with_name("deepdream-daemon")
    return [str(script)] if script.exists() else [sys.executable, "-m", "deepdream_daemon.main"]


class WarmDaemon:
    """deepdream-daemon with random weights at `precision`, on a free loopback port."""

    def __init__(self, precision="auto", max_pixels=30_000_000):
        self.endpoint = f"tcp://127.0.0.1:{_free_port()}"
        self.log = tempfile.NamedTemporaryFile(prefix="bench-daemon-", suffix=".log", delete=False)
        environment = {k: v for k, v in os.environ.items() if not k.startswith("DEEPDREAM_")}
        environment["XDG_CONFIG_HOME"] = tempfile.mkdtemp(prefix="bench-daemon-config-")
        started = time.perf_counter()
        self.process = subprocess.Popen(
            _daemon_command() + ["--weights", "random", "--precision", precision, "--endpoint", self.endpoint,
                                 "--max-pixels", str(max_pixels)],
            stdout=self.log, stderr=subprocess.STDOUT, env=environment)
        self.client = DreamClient(self.endpoint, timeout=600)
        self.pong = self._wait_ready()
        self.ready_s = time.perf_counter() - started

    def _wait_ready(self):
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"deepdream-daemon exited:\n{Path(self.log.name).read_text()}")
            try:
                pong = self.client.ping(timeout=2)
            except DaemonUnavailable:
                continue
            if pong.get("state") == "ready":
                return pong
            if pong.get("state") == "error":
                raise RuntimeError(f"deepdream-daemon could not load its model: {pong}")
            time.sleep(0.5)
        raise TimeoutError(f"deepdream-daemon not ready in {READY_TIMEOUT_S} s")

    def dream(self, image, params):
        """(dreamed array, seconds seen by the client, losses, daemon's stats)."""
        losses, seen = [], set()

        def progress(event):
            step = (event.get("octave"), event.get("step"))
            if event.get("octave") and "loss" in event and step not in seen:  # heartbeats repeat a step
                seen.add(step)
                losses.append(event["loss"])

        memory.reset_peak(self.process.pid)
        cpu_started, started = memory.cpu_seconds(self.process.pid), time.perf_counter()
        dreamed, result = self.client.dream_array(image, params, return_result=True, progress=progress)
        seconds = time.perf_counter() - started
        self.last_cpu_s = memory.cpu_seconds(self.process.pid) - cpu_started
        return dreamed, seconds, losses, result.stats

    def peak_rss_mib(self):
        return memory.peak_rss_mib(self.process.pid)

    def stop(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        os.unlink(self.log.name)
