"""Daemon parts that need no process: settings sources, how a client's values
are shown, image decoding, the I/O loop and the worker surviving their own bugs,
and the worker's out-of-memory retries (with a stand-in engine: real OOM needs
a full GPU)."""

import io
import threading
import time
import uuid

import msgpack
import pytest
import zmq
from PIL import EpsImagePlugin, Image

from bench.fuzz import Deep, encode, png_claiming
from deepdream_daemon import security
from deepdream_daemon.config import ConfigError, load_settings
from deepdream_client.image_files import ImageFileError, ImageTooLarge, decode_image
from deepdream_daemon.jobs import Job, JobQueue
from deepdream_client.protocol import shown, unpack
from deepdream_daemon.server import Server
from deepdream_daemon.worker import Outbox, Worker


def test_command_line_beats_environment_beats_config_file(tmp_path):
    (tmp_path / "deepdream").mkdir()
    (tmp_path / "deepdream" / "daemon.toml").write_text(
        'backend = "jax"  # written by install.sh --backend\n'
        'endpoint = "tcp://127.0.0.1:6000"\nweights = "random"\nqueue-length = 3\nmax_pixels = 1_000_000\n')
    environ = {"XDG_CONFIG_HOME": str(tmp_path), "DEEPDREAM_QUEUE_LENGTH": "5",
               "DEEPDREAM_ENDPOINT": "tcp://127.0.0.1:6001, ipc:///run/x.sock"}
    settings = load_settings(["--queue-length", "7"], environ)
    assert settings.queue_length == 7 and settings.weights == "random" and settings.max_pixels == 1_000_000
    assert settings.endpoints == ["tcp://127.0.0.1:6001", "ipc:///run/x.sock"]
    assert settings.max_message_bytes > 16 * 1_000_000  # derived: room for float32 RGBA
    assert load_settings([], {"XDG_CONFIG_HOME": str(tmp_path)}).endpoints == ["tcp://127.0.0.1:6000"]
    assert settings.backend == "jax" and load_settings([], {}).backend == "tensorflow"
    assert load_settings(["--backend", "torch"], {**environ, "DEEPDREAM_BACKEND": "tensorflow"}).backend == "torch"
    assert load_settings([], {**environ, "DEEPDREAM_BACKEND": "tensorflow"}).backend == "tensorflow"
    assert load_settings(["--endpoint", "ipc:///a", "--endpoint", "tcp://127.0.0.1:1"], {}).endpoints == [
        "ipc:///a", "tcp://127.0.0.1:1"]


@pytest.mark.parametrize("argv, environ, message", [
    (["--device", "tpu"], {}, "--device must be one of"),
    ([], {"DEEPDREAM_BACKEND": "theano"}, "--backend must be one of tensorflow, jax, torch, got 'theano'"),
    (["--endpoint", "udp://x"], {}, "use tcp://HOST:PORT"),
    ([], {"DEEPDREAM_MAX_PIXELS": "lots"}, "DEEPDREAM_MAX_PIXELS: expected a whole number"),
    ([], {"DEEPDREAM_QUEUE_LENGTH": "2.7"}, "DEEPDREAM_QUEUE_LENGTH: expected a whole number, got '2.7'"),
    ([], {"DEEPDREAM_ENDPOINT": " , "}, "no endpoint to listen on"),
    (["--config", "/nonexistent.toml"], {}, "does not exist"),
])
def test_bad_settings_say_what_is_wrong(argv, environ, message):
    with pytest.raises(ConfigError, match=message):
        load_settings(argv, environ)


@pytest.mark.parametrize("content, message", [
    (b"queue_length = 2.7\n", "queue_length must be a whole number, got 2.7"),  # was silently 2
    (b"queue-length = true\n", "queue-length must be a whole number, got true"),
    (b'max_pixels = "lots"\n', 'max_pixels must be a whole number, got "lots"'),
    (b"weights = 5\n", "weights must be text (in quotes), got 5"),
    (b"endpoint = []\n", "no endpoint to listen on"),
    (b'weights = "r\xe9sum\xe9"\n', "is not UTF-8 text (byte 12); TOML files are UTF-8"),
])
def test_config_file_values_are_checked_strictly(tmp_path, content, message):
    (tmp_path / "daemon.toml").write_bytes(content)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_settings(["--config", str(tmp_path / "daemon.toml")], {})


def test_unknown_config_file_keys_are_refused(tmp_path):
    (tmp_path / "daemon.toml").write_text('wieghts = "random"\n')
    with pytest.raises(ConfigError, match="unknown setting 'wieghts'"):
        load_settings(["--config", str(tmp_path / "daemon.toml")], {})


class RunsOutOfMemory:
    """Stands in for DreamEngine: out of memory with tiles above `fits` pixels."""

    layers = ["mixed2", "mixed5"]
    weights, backend, device, precision = "random", "jax", "GPU: stand-in", "float16"
    compile_seconds = 0.0

    def __init__(self, fits):
        self.fits = fits
        self.tiles = []

    def resolved(self, params):
        return params

    def dream(self, image, params, progress=None, should_stop=None, guide=None):
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
        self.engines["inception_v3"] = self.stand_in  # loaded already: requests for the default model get it


def run_jobs(engine, count, params=None):
    """Run `count` 200x300 dreams on a stand-in worker; their final replies."""
    settings = load_settings([], {})
    context = zmq.Context.instance()
    bell = context.socket(zmq.PULL)
    address = f"inproc://test-outbox-{uuid.uuid4().hex}"  # a closed socket's inproc name is freed asynchronously
    bell.bind(address)
    jobs, outbox = JobQueue(4), Outbox(context, address)
    description = {"format": "raw", "dtype": "uint8", "width": 300, "height": 200, "channels": 3}
    for n in range(count):
        jobs.put(Job(f"j{n}", [b"peer"], description, bytes(200 * 300 * 3), params or {"tile_size": 512}, False,
                     "200x300"))
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


def test_a_worker_failure_outside_the_dream_is_internal_and_the_worker_goes_on(monkeypatch):
    import deepdream_daemon.worker

    calls = []

    def status_with_a_bug(text):
        calls.append(text)
        if len(calls) == 1:
            raise RuntimeError("a bug outside the dream")

    monkeypatch.setattr(deepdream_daemon.worker, "status", status_with_a_bug)
    replies = run_jobs(RunsOutOfMemory(fits=10_000), 2)
    assert [reply["type"] for reply in replies] == ["error", "result"]
    assert replies[0]["code"] == "INTERNAL" and replies[0]["id"] == "j0"


class RunsOutOfMemoryInOnePiece(RunsOutOfMemory):
    """Automatic tiles (tile_size 0) put the 200x300 image in one 300 px piece, which does not fit."""

    def dream(self, image, params, progress=None, should_stop=None, guide=None):
        from dream_engine import OutOfMemory

        if params.tile_size == 0:
            self.tiles.append(0)
            raise OutOfMemory("out of memory with tiles of up to 300 px", tile_size=300)
        return super().dream(image, params, progress, should_stop)


def test_out_of_memory_with_automatic_tiles_retries_with_half_the_piece():
    engine = RunsOutOfMemoryInOnePiece(fits=160)
    [reply] = run_jobs(engine, 1, params={"tile_size": 0})
    assert reply["type"] == "result", reply
    assert engine.tiles == [0, 150] and reply["stats"]["tile_size"] == 150


def test_out_of_memory_at_the_smallest_tiles_is_an_error_and_the_worker_goes_on():
    engine = RunsOutOfMemory(fits=0)
    replies = run_jobs(engine, 2)
    assert [reply["code"] for reply in replies] == ["OUT_OF_MEMORY", "OUT_OF_MEMORY"]
    assert "smaller image" in replies[0]["message"]


@pytest.mark.parametrize("value, expected", [
    (None, "null"), (True, "true"), (7, "7"), (2.5, "2.5"), (b"ping", "<binary, 4 bytes>"),
    ("mixed2", '"mixed2"'), ("a\nb\u202ec\x00", '"a\\nb\\u202ec\\u0000"'), ({"a": [1, None]}, '{"a": [1, null]}'),
    ([[[[1]]]], "[[[...]]]"), (2**200, "<a 201-bit integer>"),
])
def test_shown_renders_a_client_value_briefly_on_one_line(value, expected):
    assert shown(value) == expected


def test_shown_is_bounded_whatever_it_is_given():
    deep = unpack(encode({"v": Deep(1000)}))["v"]  # repr() of this raised RecursionError
    assert shown(deep) == "[[[...]]]"
    for value in ("x" * 60_000, list(range(4096)), {str(n): "y" * 100 for n in range(4096)}, "\n" * 60_000):
        text = shown(value)
        assert len(text) <= 60 and text.endswith("...") and "\n" not in text


def test_decoding_takes_only_png_jpeg_webp_and_tiff(tmp_path):
    def file_bytes(format_name, size=(80, 80)):
        buffer = io.BytesIO()
        Image.new("RGB", size, (10, 200, 30)).save(buffer, format=format_name)
        return io.BytesIO(buffer.getvalue())

    for format_name in ("PNG", "JPEG", "WEBP", "TIFF"):
        assert decode_image(file_bytes(format_name)).shape == (80, 80, 3)
    for format_name in ("GIF", "BMP", "PCX", "TGA", "SGI", "PPM", "ICO"):
        with pytest.raises(ImageFileError, match="not an image file in PNG, JPEG, WebP or TIFF format"):
            decode_image(file_bytes(format_name))


def test_an_eps_file_never_reaches_ghostscript(tmp_path, monkeypatch):
    """Pillow hands EPS files to Ghostscript, often installed beside GIMP: a stand-in
    `gs` on PATH records being run. Pillow alone runs it; decode_image must not."""
    ran = tmp_path / "gs-ran"
    fake = tmp_path / "bin" / "gs"
    fake.parent.mkdir()
    fake.write_text(f"#!/bin/sh\necho \"$@\" >> {ran}\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}:/usr/bin:/bin")
    monkeypatch.setattr(EpsImagePlugin, "gs_binary", None)  # look for gs again, on this PATH
    eps = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 100 100\n0 0 moveto 100 100 lineto stroke\nshowpage\n"

    with pytest.raises(ImageFileError, match="not an image file"):
        decode_image(io.BytesIO(eps))
    assert not ran.exists(), "decode_image ran Ghostscript"
    with pytest.raises(Exception):
        Image.open(io.BytesIO(eps)).load()  # our stand-in writes no picture
    assert ran.exists(), "the stand-in gs was not found: this test would prove nothing"


def test_pillow_decompression_bomb_limit_follows_the_pixel_limit(monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", Image.MAX_IMAGE_PIXELS)  # restored after the test
    with pytest.raises(ImageTooLarge, match="the image is 7000x7000 = 49,000,000 pixels; the limit is 40,000,000"):
        decode_image(io.BytesIO(png_claiming(7000, 7000)), max_pixels=40_000_000)
    assert Image.MAX_IMAGE_PIXELS == 40_000_000
    with pytest.raises(ImageTooLarge, match="the image has 900,000,000 pixels, says its header; the limit is "
                                            "40,000,000 pixels"):  # its size, not Pillow's guard as its size
        decode_image(io.BytesIO(png_claiming(30_000, 30_000)), max_pixels=40_000_000)
    with pytest.raises(ImageTooLarge):  # Pillow's own guard alone would have let 150 M pixels through
        decode_image(io.BytesIO(png_claiming(10_000, 15_000)), max_pixels=100_000_000)
    exactly = io.BytesIO()
    Image.new("L", (100, 90)).save(exactly, format="PNG")
    assert decode_image(exactly, max_pixels=9_000).shape == (90, 100, 1)


def test_a_damaged_server_key_is_a_clear_error(tmp_path):
    security.server_keys(tmp_path)  # a good pair
    public, secret = security.server_keys(tmp_path)
    (tmp_path / "server.key_secret").write_text('curve\n    public-key = "x"\n    secret-key = "abc"\n')
    with pytest.raises(ConfigError, match="server.key_secret is damaged: it holds no matching CURVE key pair"):
        security.server_keys(tmp_path)
    (tmp_path / "server.key_secret").write_bytes(b"\xff\xfe garbage")
    with pytest.raises(ConfigError, match="is damaged"):
        security.server_keys(tmp_path)


class BrokenWorker:
    """A worker whose describe() has a bug: ping, which reports it, fails."""

    state, current, error = "ready", None, ""

    def describe(self):
        raise RuntimeError("a bug in the daemon")

    def is_alive(self):
        return False


def test_a_failure_while_handling_a_message_is_internal_and_the_loop_goes_on(caplog):
    settings = load_settings([], {})
    context = zmq.Context.instance()
    address = f"inproc://test-router-{uuid.uuid4().hex}"
    router = context.socket(zmq.ROUTER)
    router.setsockopt(zmq.ROUTER_MANDATORY, 1)
    router.bind(address)
    bell = context.socket(zmq.PULL)
    bell.bind(f"{address}-bell")
    server = Server(settings, router, bell, JobQueue(2), BrokenWorker(), Outbox(context, f"{address}-bell"), "test")
    loop = threading.Thread(target=server.serve)
    loop.start()
    client = context.socket(zmq.DEALER)
    client.setsockopt(zmq.LINGER, 0)
    client.connect(address)
    try:
        replies = []
        for header in ({"v": 1, "op": "ping", "id": "p1"}, {"v": 1, "op": "cancel", "id": "c1", "target": "d"},
                       {"v": 1, "op": "ping", "id": "p2"}):
            client.send_multipart([b"", msgpack.packb(header)])
            assert client.poll(5000), "no reply: the I/O loop stopped"
            replies.append(msgpack.unpackb(client.recv_multipart()[-1]))
    finally:
        server.stop_requested = True
        loop.join(10)
        client.close(), router.close(), bell.close()
    assert [(reply["id"], reply["type"], reply.get("code")) for reply in replies] == [
        ("p1", "error", "INTERNAL"), ("c1", "cancelled", None), ("p2", "error", "INTERNAL")]
    assert replies[0]["message"] == "the daemon failed on this request; its log has the details"
    assert not loop.is_alive()
    assert "a bug in the daemon" in caplog.text, "the log has the traceback"
