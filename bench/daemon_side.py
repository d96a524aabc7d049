"""The project as a user meets it: a warm deepdream-daemon in its own process,
a client sending the job over ZeroMQ. Start-up (model load and the first
trace) is timed apart from the dream; the daemon's peak RSS is read from /proc."""

import time

from deepdream_client.client import DreamClient
from .daemon_process import start_daemon  # the one way to start a random-weights daemon on a free port

from . import memory

READY_TIMEOUT_S = 180


class WarmDaemon:
    """deepdream-daemon with random weights at `precision`, on a free loopback port;
    `env` adds to its environment."""

    def __init__(self, precision="auto", max_pixels=30_000_000, env=None):
        started = time.perf_counter()
        self._daemon = start_daemon("--precision", precision, "--max-pixels", str(max_pixels), env=env,
                                    ready_timeout=READY_TIMEOUT_S)
        self.ready_s = time.perf_counter() - started
        self.pong, self.process, self.endpoint = self._daemon.pong, self._daemon.process, self._daemon.endpoint
        self.log_path = self._daemon.log_path
        self.client = DreamClient(self.endpoint, timeout=600)

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
        self._daemon.stop()
