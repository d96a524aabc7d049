"""Daemon parts that need no process: settings sources, and the worker's
out-of-memory retries (with a stand-in engine: real OOM needs a full GPU)."""

import time
import uuid

import numpy as np
import pytest
import zmq

from daemon.config import ConfigError, load_settings
from daemon.jobs import Job, JobQueue
from daemon.worker import Outbox, Worker


def test_command_line_beats_environment_beats_config_file(tmp_path):
    (tmp_path / "deepdream").mkdir()
    (tmp_path / "deepdream" / "daemon.toml").write_text(
        'endpoint = "tcp://127.0.0.1:6000"\nweights = "random"\nqueue-length = 3\nmax_pixels = 1_000_000\n')
    environ = {"XDG_CONFIG_HOME": str(tmp_path), "DEEPDREAM_QUEUE_LENGTH": "5",
               "DEEPDREAM_ENDPOINT": "tcp://127.0.0.1:6001, ipc:///run/x.sock"}
    settings = load_settings(["--queue-length", "7"], environ)
    assert settings.queue_length == 7 and settings.weights == "random" and settings.max_pixels == 1_000_000
    assert settings.endpoints == ["tcp://127.0.0.1:6001", "ipc:///run/x.sock"]
    assert settings.max_message_bytes > 16 * 1_000_000  # derived: room for float32 RGBA
    assert load_settings([], {"XDG_CONFIG_HOME": str(tmp_path)}).endpoints == ["tcp://127.0.0.1:6000"]
    assert load_settings(["--endpoint", "ipc:///a", "--endpoint", "tcp://127.0.0.1:1"], {}).endpoints == [
        "ipc:///a", "tcp://127.0.0.1:1"]


@pytest.mark.parametrize("argv, environ, message", [
    (["--device", "tpu"], {}, "--device must be one of"),
    (["--endpoint", "udp://x"], {}, "use tcp://HOST:PORT"),
    ([], {"DEEPDREAM_MAX_PIXELS": "lots"}, "DEEPDREAM_MAX_PIXELS: expected a whole number"),
    (["--config", "/nonexistent.toml"], {}, "does not exist"),
])
def test_bad_settings_say_what_is_wrong(argv, environ, message):
    with pytest.raises(ConfigError, match=message):
        load_settings(argv, environ)


def test_unknown_config_file_keys_are_refused(tmp_path):
    (tmp_path / "daemon.toml").write_text('wieghts = "random"\n')
    with pytest.raises(ConfigError, match="unknown setting 'wieghts'"):
        load_settings(["--config", str(tmp_path / "daemon.toml")], {})


class RunsOutOfMemory:
    """Stands in for DreamEngine: out of memory with tiles above `fits` pixels."""

    layers = ["mixed2", "mixed5"]
    weights, device, precision = "random", "GPU: stand-in", "float16"

    def __init__(self, fits):
        self.fits = fits
        self.tiles = []

    def dream(self, image, params, progress=None, should_stop=None):
        from dream_engine import OutOfMemory

        self.tiles.append(params.tile_size)
        if params.tile_size > self.fits:
            raise OutOfMemory(f"out of memory with tiles of {params.tile_size} px")
        return image


class StandInWorker(Worker):
    def __init__(self, engine, *args):
        super().__init__(*args)
        self.stand_in = engine

    def _load(self):
        from dream_engine import DreamParams

        self.engine, self._params_type, self.state = self.stand_in, DreamParams, "ready"


def run_jobs(engine, count):
    """Run `count` 200x300 dreams on a stand-in worker; their final replies."""
    settings = load_settings([], {})
    context = zmq.Context.instance()
    bell = context.socket(zmq.PULL)
    address = f"inproc://test-outbox-{uuid.uuid4().hex}"  # a closed socket's inproc name is freed asynchronously
    bell.bind(address)
    jobs, outbox = JobQueue(4), Outbox(context, address)
    description = {"format": "raw", "dtype": "uint8", "width": 300, "height": 200, "channels": 3}
    for n in range(count):
        jobs.put(Job(f"j{n}", [b"peer"], description, bytes(200 * 300 * 3), {"tile_size": 512}, False, "200x300"))
    worker = StandInWorker(engine, settings, jobs, outbox)
    worker.start()
    replies = []
    deadline = time.monotonic() + 60
    while len(replies) < count and time.monotonic() < deadline:
        bell.poll(100)
        replies += [header for _job, header, _payload in outbox.drain()]
    jobs.close()
    worker.join(10)
    bell.close()
    return replies


def test_out_of_memory_retries_with_smaller_tiles():
    engine = RunsOutOfMemory(fits=160)
    [reply] = run_jobs(engine, 1)
    assert reply["type"] == "result", reply
    assert engine.tiles == [512, 150] and reply["stats"]["tile_size"] == 150


def test_out_of_memory_at_the_smallest_tiles_is_an_error_and_the_worker_goes_on():
    engine = RunsOutOfMemory(fits=0)
    replies = run_jobs(engine, 2)
    assert [reply["code"] for reply in replies] == ["OUT_OF_MEMORY", "OUT_OF_MEMORY"]
    assert "smaller image" in replies[0]["message"]
