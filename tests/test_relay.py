"""`deepdream relay`: a GIMP without pyzmq (the client's zmtp transport, no CURVE) dreams on a CURVE daemon
through a relay on this computer, built on libzmq's proxy. Real processes: a CURVE daemon, the relay, clients."""

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import zmq.auth

from deepdream_client.client import DaemonError, DaemonUnavailable, DreamClient
from bench.daemon_process import free_port, start_daemon
from images import photo

TINY = {"octaves": 1, "steps": 2, "tile_size": 128, "jitter": 0, "seed": 3}
ENDLESS = {"octaves": 1, "steps": 1000, "tile_size": 128, "jitter": 0}
DEEPDREAM = str(Path(sys.executable).with_name("deepdream"))


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    folder = tmp_path_factory.mktemp("keys")
    folder.chmod(0o700)
    zmq.auth.create_certificates(str(folder), "server")
    (folder / "server.key_secret").chmod(0o600)  # the daemon refuses a secret key others may read
    return folder


@pytest.fixture(scope="module")
def secured(keys):
    with start_daemon("--curve-keys", str(keys)) as daemon:
        yield daemon


def start_relay(to, server_key):
    listen = f"tcp://127.0.0.1:{free_port()}"
    relay = subprocess.Popen([DEEPDREAM, "relay", "--to", to, "--server-key", str(server_key), "--listen", listen],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return relay, listen


def stop(relay):
    relay.terminate()
    return relay.communicate(timeout=10)[0]


@pytest.fixture(scope="module")
def relay(secured, keys):
    relay, listen = start_relay(secured.endpoint, keys / "server.key")
    yield listen
    stop(relay)


@pytest.fixture
def pure(monkeypatch):
    monkeypatch.setenv("DEEPDREAM_TRANSPORT", "zmtp")  # as in GIMP's Python without pyzmq


def test_a_plain_zmtp_client_dreams_on_a_curve_daemon_through_the_relay(relay, secured, keys, pure):
    image = photo(80, 96)
    with DreamClient(relay, timeout=10) as through:
        assert through.transport == "zmtp"
        assert through.ping()["state"] == "ready"
        events = []
        relayed = through.dream_array(image, TINY, progress=events.append)
    with DreamClient(secured.endpoint, curve_server_key=str(keys / "server.key"), transport="zmq") as direct:
        expected = direct.dream_array(image, TINY)
    assert (relayed == expected).all()  # the same dream, pixel for pixel
    assert [event["step"] for event in events if event["octave"]][-1] == 2


def test_relayed_clients_each_get_their_own_replies_and_cancel_their_own_dream(relay, pure):
    """Two clients share the relay's one connection: each dream's replies reach its own client, and a cancel from
    another socket (another thread, as GIMP's or the CLI's) stops the right dream."""
    outcome = {}

    def dream(name, params, request_id=None):
        with DreamClient(relay, timeout=10) as client:
            try:
                outcome[name] = client.dream_array(photo(80, 80, seed=len(name)), params, request_id=request_id)
            except DaemonError as error:
                outcome[name] = error

    endless = threading.Thread(target=dream, args=("endless", ENDLESS, "relayed-endless"))
    endless.start()
    with DreamClient(relay, timeout=10) as other:
        deadline = time.monotonic() + 60
        while not other.ping()["busy"] and time.monotonic() < deadline:
            time.sleep(0.2)
        queued = threading.Thread(target=dream, args=("short", TINY))
        queued.start()
        time.sleep(1.0)
        assert other.cancel("relayed-endless")["found"] is True
    endless.join(60)
    queued.join(120)
    assert isinstance(outcome["endless"], DaemonError) and outcome["endless"].code == "CANCELLED"
    assert outcome["short"].shape == (80, 80, 3)


def test_a_wrong_server_key_is_said_by_the_relay_and_the_client_gets_no_hang(secured, tmp_path, pure):
    zmq.auth.create_certificates(str(tmp_path), "stranger")
    relay, listen = start_relay(secured.endpoint, tmp_path / "stranger.key")
    try:
        with DreamClient(listen, timeout=2) as client:
            started = time.monotonic()
            with pytest.raises(DaemonUnavailable, match=f"no daemon at {listen}"):
                client.ping()
            assert time.monotonic() - started < 10
    finally:
        said = stop(relay)
    assert "handshake" in said and "--server-key" in said, said


def test_the_relay_listens_on_this_computer_only(keys):
    done = subprocess.run([DEEPDREAM, "relay", "--to", "tcp://127.0.0.1:5555", "--server-key",
                           str(keys / "server.key"), "--listen", "tcp://0.0.0.0:5556"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "unencrypted, so it listens on this computer only; use tcp://127.0.0.1:PORT" in done.stderr
    assert "Traceback" not in done.stderr
