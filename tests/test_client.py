"""daemon/deepdream_client/client.py against real daemons, and docs/protocol.md's example.

What a client does runs on both transports (the `transport` fixture): pyzmq, and zmtp.py's pure-Python ZMTP,
which GIMP's Python uses where it has no pyzmq. Settings checks run once; CURVE is pyzmq's alone."""

import io
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import zmq.auth
from PIL import Image

from deepdream_client import protocol
from deepdream_client.client import DaemonError, DaemonUnavailable, DreamClient
from deepdream_client.settings import TRANSPORTS, SettingsError, resolve_endpoint
from bench.daemon_process import DaemonProcess, free_port, start_daemon
from images import photo
from raw_wire import connect, dream_request, final, ping, send, wait_for

TINY = {"octaves": 1, "steps": 3, "tile_size": 128, "jitter": 0}
ENDLESS = {"octaves": 1, "steps": 1000, "tile_size": 128, "jitter": 0}  # only ever cancelled
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(params=TRANSPORTS)
def transport(request, monkeypatch):
    """Every DreamClient of the test, in its threads too, on this transport."""
    monkeypatch.setenv("DEEPDREAM_TRANSPORT", request.param)
    return request.param


@pytest.fixture
def client(daemon, transport):
    with DreamClient(daemon.endpoint, timeout=10) as client:
        assert client.transport == transport
        yield client


def test_ping_and_info(client):
    pong = client.ping()
    assert pong["type"] == "pong" and pong["state"] == "ready" and pong["weights"] == "random"
    info = client.info()
    assert "mixed5" in info["layers"] and info["defaults"]["octaves"] >= 1 and info["limits"]["max_pixels"] > 0


def test_dream_raw_bytes_with_progress(client):
    image = photo(80, 100)
    events = []
    result = client.dream(bytearray(image.tobytes()), 100, 80, 3, "uint8", TINY, progress=events.append)
    assert result.image == protocol.raw_image(100, 80, 3, "uint8")
    dreamed = np.frombuffer(result.pixels, np.uint8).reshape(image.shape)
    assert not np.array_equal(dreamed, image)
    steps = [event["step"] for event in events if event["octave"]]
    assert steps == sorted(steps) and steps[-1] == 3 and events[-1]["fraction"] == 1.0
    assert result.stats["steps"] == 3 and result.header["type"] == "result"


@pytest.mark.parametrize("shape, dtype", [((80, 90), np.uint16), ((80, 90, 2), np.float32), ((80, 90, 4), np.uint8)])
def test_dream_array_keeps_shape_dtype_and_alpha(client, shape, dtype):
    rng = np.random.default_rng(1)
    image = (rng.random(shape) * {np.uint8: 255, np.uint16: 65535, np.float32: 1}[dtype]).astype(dtype)
    dreamed = client.dream_array(image, TINY)
    assert dreamed.shape == image.shape and dreamed.dtype == image.dtype
    if image.ndim == 3:
        np.testing.assert_array_equal(dreamed[..., -1], image[..., -1])


def test_dream_encoded_returns_png(client):
    buffer = io.BytesIO()
    Image.fromarray(photo(80, 100)).save(buffer, "JPEG")
    result = client.dream_encoded(buffer.getvalue(), TINY)
    with Image.open(io.BytesIO(result.pixels)) as png:
        assert png.format == "PNG" and png.size == (100, 80)


@pytest.mark.parametrize("params, code", [({"octaves": 0}, "INVALID_PARAMS"), ({"colour": 1}, "INVALID_PARAMS"),
                                          ({"layers": ["mixed99"]}, "UNKNOWN_LAYER")])
def test_error_replies_raise_daemon_error(client, params, code):
    with pytest.raises(DaemonError) as failure:
        client.dream_array(photo(80, 80), params)
    assert failure.value.code == code and failure.value.message


def test_wrong_payload_size_is_refused_before_sending(client):
    with pytest.raises(ValueError, match="take 24000 bytes"):
        client.dream(b"\0" * 10, 100, 80, 3)


def test_cancel_check_cancels_on_the_daemon(client):
    asked = threading.Event()
    threading.Timer(1.0, asked.set).start()
    started = time.monotonic()
    with pytest.raises(DaemonError) as failure:
        client.dream_array(photo(80, 80), ENDLESS, cancel_check=asked.is_set)
    assert failure.value.code == "CANCELLED" and time.monotonic() - started < 30
    wait_idle(client)


def test_cancel_from_another_thread(client):
    def cancel_soon():
        time.sleep(1.0)
        replies.append(client.cancel("dream-to-cancel"))

    replies = []
    canceller = threading.Thread(target=cancel_soon)
    canceller.start()
    with pytest.raises(DaemonError) as failure:
        client.dream_array(photo(80, 80), ENDLESS, request_id="dream-to-cancel")
    assert failure.value.code == "CANCELLED"
    canceller.join(10)  # its cancel() returns once the dream's thread hands it the reply: maybe after the dream ends
    assert replies[0]["type"] == "cancelled" and replies[0]["found"] is True
    assert client.cancel("no-such-dream")["found"] is False
    wait_idle(client)


def wait_idle(client, timeout=10):
    """The daemon may report `busy` for a moment after a dream's final reply."""
    deadline = time.monotonic() + timeout
    while client.ping()["busy"] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not client.ping()["busy"]


@pytest.mark.slow
def test_unavailable_on_a_dead_endpoint_within_the_timeout(tmp_path, transport):
    endpoint = f"ipc://{tmp_path}/nobody.sock" if transport == "zmq" else f"tcp://127.0.0.1:{free_port()}"
    with DreamClient(endpoint, timeout=1.0) as client:
        for attempt in (client.ping, client.info, lambda: client.dream_array(photo(80, 80), TINY)):
            started = time.monotonic()
            with pytest.raises(DaemonUnavailable, match=f"no daemon at {re.escape(endpoint)}"):
                attempt()
            assert time.monotonic() - started < 5


@pytest.mark.slow
def test_ping_retries_across_a_restart_and_a_dream_is_never_resent(monkeypatch, transport):
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    first = start_daemon(endpoint=endpoint)
    with DreamClient(endpoint, timeout=2.0) as client:
        assert client.ping()["state"] == "ready"
        outcome = []
        dreaming = threading.Thread(target=lambda: outcome.append(catch(
            lambda: client.dream_array(photo(80, 80), ENDLESS))))
        dreaming.start()
        time.sleep(1.0)
        first.process.kill()  # the daemon dies mid-dream, without a word
        first.stop()
        dreaming.join(30)
        assert isinstance(outcome[0], DaemonUnavailable) and "not resent" in str(outcome[0])

        # The pong is enough: a restarted daemon answers pings while it loads its model.
        monkeypatch.setattr(DaemonProcess, "wait_ready", lambda self, timeout=None: None)
        second = []
        restart = threading.Timer(1.5, lambda: second.append(start_daemon(endpoint=endpoint)))
        restart.start()
        try:
            pong = client.ping(timeout=60)  # sent while no daemon listens: the lazy pirate resends
            assert pong["state"] in ("loading", "ready") and not pong["busy"] and not pong["queued"]
        finally:
            restart.join()
            second[0].stop()


@pytest.mark.slow
def test_a_queued_dream_lives_on_its_heartbeats_past_the_timeout(client, daemon):
    """Another client's long dream keeps ours queued for longer than our
    timeout: the daemon's heartbeats about our dream keep it alive."""
    other = connect(daemon.endpoint)
    try:
        send(other, *dream_request(photo(80, 80), ENDLESS, request_id="the-long-one"))
        wait_for(lambda: ping(daemon.endpoint)["busy"], 30, "the other client's dream started")
        threading.Timer(5.0, lambda: client.cancel("the-long-one")).start()  # past our 3 s of allowed silence
        events = []
        with DreamClient(daemon.endpoint, timeout=1.0) as impatient:
            dreamed = impatient.dream_array(photo(80, 80), TINY, progress=events.append)
        assert dreamed.shape == (80, 80, 3)
        assert sum(event.get("queued") == 1 for event in events) >= 3  # a heartbeat a second while it waited
        assert final(other)[0]["code"] == "CANCELLED"
    finally:
        other.close()


@pytest.mark.slow
def test_a_restarted_daemon_busy_with_others_does_not_keep_a_lost_dream_waiting(transport):
    """The daemon dies mid-dream and another takes its endpoint, busy with
    other clients' dreams: it answers every ping with busy=true but knows
    nothing of ours. The stand-in for that daemon is a ROUTER socket saying
    exactly that (a real one would need its own long dream from a second
    client, and seconds of model loading, for the same pong). The client must
    give the dream up, as lost, instead of waiting for as long as others keep
    the new daemon busy."""
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    first = start_daemon(endpoint=endpoint)
    started, outcome = threading.Event(), []
    with DreamClient(endpoint, timeout=1.0) as client:
        dreaming = threading.Thread(target=lambda: outcome.append(catch(lambda: client.dream_array(
            photo(80, 80), ENDLESS, progress=lambda event: event["octave"] and started.set()))))
        dreaming.start()
        assert started.wait(60), "the dream never started"
        first.process.kill()
        first.stop()
        pongs = []
        restarted = zmq.Context.instance().socket(zmq.ROUTER)
        restarted.setsockopt(zmq.LINGER, 0)
        restarted.bind(endpoint)
        try:
            deadline = time.monotonic() + 30
            while dreaming.is_alive() and time.monotonic() < deadline:
                if restarted.poll(100):
                    peer, *frames = restarted.recv_multipart()
                    header = protocol.unpack(frames[-1])
                    if header.get("op") == "ping":  # busy with others; dreams and cancels go unanswered
                        pongs.append(header)
                        restarted.send_multipart([peer, b"", protocol.pack({
                            "type": "pong", "id": header["id"], "state": "ready", "busy": True, "queued": 2})])
        finally:
            restarted.close()
        assert not dreaming.is_alive(), "the client still waits for a dream the busy daemon does not have"
    assert isinstance(outcome[0], DaemonUnavailable), outcome[0]
    assert "answers, but has sent nothing about this dream" in str(outcome[0]) and "not resent" in str(outcome[0])
    assert pongs, "the client did not ask the daemon"


def catch(action):
    try:
        return action()
    except Exception as error:  # noqa: BLE001  the test inspects it
        return error


def test_without_pyzmq_curve_keys_get_the_relay_command(no_settings, monkeypatch):
    """zmtp.py has no CURVE: a client given keys says, in one sentence, to run the relay, and how."""
    monkeypatch.setenv("DEEPDREAM_TRANSPORT", "zmtp")
    with pytest.raises(SettingsError) as failure:
        DreamClient("tcp://192.0.2.1:5555", curve_server_key=str(no_settings / "public.key"))
    message = str(failure.value)
    assert "cannot encrypt with CURVE" in message and "deepdream relay --to tcp://HOST:5555 --server-key" in message
    assert "\n" not in message and "Error" not in message


def test_without_pyzmq_an_ipc_endpoint_says_to_use_tcp(tmp_path, monkeypatch):
    monkeypatch.setenv("DEEPDREAM_TRANSPORT", "zmtp")
    with pytest.raises(SettingsError, match="over tcp:// only; start it with --endpoint tcp://127.0.0.1:5555"):
        DreamClient(f"ipc://{tmp_path}/daemon.sock")


@pytest.mark.slow
def test_curve_round_trip(tmp_path):
    keys = tmp_path / "keys"
    keys.mkdir(mode=0o700)
    zmq.auth.create_certificates(str(keys), "server")  # the daemon uses these rather than making its own
    (keys / "server.key_secret").chmod(0o600)  # as the daemon requires of a secret key
    with start_daemon("--curve-keys", str(keys)) as secured:
        with DreamClient(secured.endpoint, curve_server_key=str(keys / "server.key")) as client:
            assert client.ping()["state"] == "ready"
            assert client.dream_array(photo(80, 80), TINY).shape == (80, 80, 3)
        with DreamClient(secured.endpoint, timeout=1.0) as plain:  # no key: the handshake never completes
            with pytest.raises(DaemonUnavailable):
                plain.ping()


@pytest.mark.slow
def test_a_curve_client_key_file_works(tmp_path):
    keys = tmp_path / "keys"
    keys.mkdir(mode=0o700)
    zmq.auth.create_certificates(str(keys), "server")
    (keys / "server.key_secret").chmod(0o600)
    zmq.auth.create_certificates(str(keys), "me")
    with start_daemon("--curve-keys", str(keys)) as secured:
        server_key = (keys / "server.key").read_text().split('public-key = "')[1][:40]  # the Z85 text itself
        with DreamClient(secured.endpoint, curve_server_key=server_key,
                         curve_client_keys=str(keys / "me.key_secret")) as client:
            assert client.ping()["state"] == "ready"


@pytest.fixture
def no_settings(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    for name in ("DEEPDREAM_ENDPOINT", "DEEPDREAM_SERVER_KEY", "DEEPDREAM_CLIENT_KEY"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "public.key").write_text('curve\n    public-key = "%s"\n' % zmq.curve_keypair()[0].decode())
    (tmp_path / "folder.key").mkdir()
    return tmp_path


@pytest.mark.parametrize("settings, message", [
    ({"endpoint": "127.0.0.1:5555"}, "endpoint '127.0.0.1:5555' has no scheme: write tcp://127.0.0.1:5555"),
    ({"endpoint": "foo://bar"}, "the daemon listens on tcp://HOST:PORT or ipc:///path/to/socket, not foo://"),
    ({"endpoint": "tcp://:5555"}, "no host before :5555"),
    ({"endpoint": "tcp://127.0.0.1:99999"}, "a port from 1 to 65535"),
    ({"endpoint": "tcp://::1:5555"}, "write an IPv6 address in brackets: tcp://[::1]:5555"),
    ({"curve_server_key": "~" * 40}, "the daemon's CURVE key '" + "~" * 40 + "': not a valid key"),
    ({"curve_server_key": "#" * 40}, "not a valid key"),  # Z85 letters, but more than 32 bits per 5
    ({"curve_server_key": "{tmp}/missing.key"}, "file {tmp}/missing.key: no such file"),
    ({"curve_server_key": "{tmp}/folder.key"}, "file {tmp}/folder.key: cannot read it (Is a directory)"),
    ({"curve_server_key": "{tmp}/public.key", "curve_client_keys": "{tmp}/public.key"}, "holds no secret key"),
    ({"curve_server_key": "{tmp}/public.key", "curve_client_keys": ("x" * 40, "y" * 39)}, "not a valid key"),
])
def test_bad_settings_fail_before_any_socket(no_settings, settings, message):
    settings = {key: value.format(tmp=no_settings) if isinstance(value, str) else value
                for key, value in settings.items()}
    with pytest.raises(SettingsError) as failure:
        DreamClient(**settings)
    assert message.format(tmp=no_settings) in str(failure.value)
    assert "y" * 39 not in str(failure.value)  # a secret key is never shown


def test_bad_settings_name_where_they_came_from(no_settings, monkeypatch):
    monkeypatch.setenv("DEEPDREAM_SERVER_KEY", "~" * 40)
    with pytest.raises(SettingsError, match=r"\(from \$DEEPDREAM_SERVER_KEY\)"):
        DreamClient("tcp://127.0.0.1:5555")
    (no_settings / "config" / "deepdream").mkdir(parents=True)
    (no_settings / "config" / "deepdream" / "client.json").write_text(json.dumps({"endpoint": "localhost:5555"}))
    with pytest.raises(SettingsError, match=r'\("endpoint" in .*client\.json\) has no scheme: write tcp://localhost:5555'):
        resolve_endpoint()


def test_close_never_blocks_after_a_failed_connect(tmp_path):
    """What the checks cannot see (a socket path longer than the system allows)
    still fails at once, and close() still returns."""
    client = DreamClient(f"ipc://{tmp_path}/{'x' * 200}.sock", timeout=1.0)
    with pytest.raises(SettingsError, match="File name too long"):
        client.ping()
    closing = threading.Thread(target=client.close)
    closing.start()
    closing.join(10)
    assert not closing.is_alive(), "close() blocked"


def test_resolve_endpoint_order(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    monkeypatch.delenv("DEEPDREAM_ENDPOINT", raising=False)
    assert resolve_endpoint() == protocol.DEFAULT_ENDPOINT
    (tmp_path / "deepdream").mkdir()
    (tmp_path / "deepdream" / "client.json").write_text(json.dumps({"endpoint": "ipc:///from/config"}))
    assert resolve_endpoint() == "ipc:///from/config"
    monkeypatch.setenv("DEEPDREAM_ENDPOINT", "tcp://127.0.0.1:7000")
    assert resolve_endpoint() == "tcp://127.0.0.1:7000"
    assert resolve_endpoint("tcp://127.0.0.1:7001") == "tcp://127.0.0.1:7001"


@pytest.mark.parametrize("inside", ["distro GIMP: zmq and msgpack", "official GIMP: msgpack's pure-Python files"])
def test_client_package_runs_as_copied_into_gimp(daemon, tmp_path, inside):
    """As inside GIMP: the package copied on its own, and no numpy, Pillow or TensorFlow; in an official build's
    Python (Windows, macOS, Flatpak, Snap) no pyzmq either, and msgpack only as the .py files the installer
    copies beside the plug-in (no compiled extension)."""
    import msgpack

    for package in (ROOT / "daemon" / "deepdream_client", ROOT / "deepdream_common"):
        shutil.copytree(package, tmp_path / package.name, ignore=shutil.ignore_patterns("__pycache__"))
    official = inside.startswith("official")
    banned = ["numpy", "PIL", "tensorflow", "keras"] + (["zmq", "msgpack._cmsgpack"] if official else [])
    if official:
        shutil.copytree(Path(msgpack.__file__).parent, tmp_path / "msgpack", ignore=shutil.ignore_patterns("*.so",
                        "*.pyd", "__pycache__"))
    script = f"""
import sys
for banned in {banned!r}:
    sys.modules[banned] = None  # any import of them now fails
from deepdream_client.client import DreamClient
import deepdream_client, msgpack
assert deepdream_client.__file__.startswith({str(tmp_path)!r}), deepdream_client.__file__
assert msgpack.__file__.startswith({str(tmp_path)!r}) == {official!r}, msgpack.__file__
with DreamClient({daemon.endpoint!r}) as client:
    assert client.transport == {"zmtp" if official else "zmq"!r}
    assert client.ping()["state"] == "ready"
    events = []
    pixels = bytes(range(256)) * (80 * 80 * 4 // 256)
    result = client.dream(pixels, 80, 80, 4, "uint8", {TINY!r}, progress=events.append)
    assert len(result.pixels) == len(pixels) and result.pixels[3::4] == pixels[3::4] and events
print("ok")
"""
    environment = {key: value for key, value in os.environ.items() if key != "DEEPDREAM_TRANSPORT"}
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          env={**environment, "PYTHONPATH": str(tmp_path)})
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


def test_the_protocol_doc_example_works(daemon, tmp_path):
    """docs/protocol.md's Python example, run as written against a real daemon."""
    document = (ROOT / "docs" / "protocol.md").read_text()
    example = re.search(r"## 13\..*?```python\n(.*?)```", document, re.S).group(1)
    assert len(example.strip().splitlines()) <= 25
    example = example.replace(f'"{protocol.DEFAULT_ENDPOINT}"', repr(daemon.endpoint))
    done = subprocess.run([sys.executable, "-c", example], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "dream.rgb").stat().st_size == 128 * 96 * 3
    assert "'steps': 2" in done.stdout


def test_deepdream_trace_shows_each_message_sent_and_received(daemon, transport):
    """DEEPDREAM_TRACE=1 (the zguide's verbose clients): a line per message on stderr, header and frame sizes."""
    script = ("import sys; sys.path.insert(0, 'daemon'); from deepdream_client.client import DreamClient; "
              f"DreamClient({daemon.endpoint!r}).ping()")
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "DEEPDREAM_TRACE": "1"})
    assert run.returncode == 0, run.stderr
    lines = run.stderr.splitlines()
    assert lines[0].startswith('deepdream-client: sent {"v": 1, "op": "ping", "id": "'), lines
    assert lines[1].startswith('deepdream-client: received {"type": "pong"'), lines
