"""zmtp.py, the client library's pure-Python ZMTP, against real libzmq (pyzmq's sockets) and against peers
that misbehave on purpose (raw TCP servers): every failure is an error or a timeout, never a hang."""

import socket
import struct
import threading
import time

import pytest
import zmq

from deepdream_client import protocol, zmtp
from deepdream_client.client import DaemonUnavailable, DreamClient
from images import photo

LIBZMQ_GREETING = b"\xff" + bytes(8) + b"\x7f" + bytes([3, 1]) + b"NULL".ljust(20, b"\0") + bytes(32)


@pytest.fixture
def echo():
    """A real libzmq ROUTER that sends every message back to its sender, with heartbeats on (PING every 100 ms,
    the connection dropped after 300 ms without an answer)."""
    yield from echo_server(heartbeats=True)


@pytest.fixture
def echo_without_heartbeats():
    """The same ROUTER with ZMTP heartbeats off, as the daemon's is. ZMTP cannot put a PONG inside a frame
    (libzmq cannot either), so a peer whose heartbeat timeout is shorter than the time a 300 MB frame takes to
    write drops the connection, whoever writes it: on a loaded machine that is more than 300 ms."""
    yield from echo_server(heartbeats=False)


def echo_server(heartbeats):
    context = zmq.Context()
    router = context.socket(zmq.ROUTER)
    if heartbeats:
        router.setsockopt(zmq.HEARTBEAT_IVL, 100)
        router.setsockopt(zmq.HEARTBEAT_TIMEOUT, 300)
    router.setsockopt(zmq.ROUTER_MANDATORY, 1)
    port = router.bind_to_random_port("tcp://127.0.0.1")
    seen = []
    stopping = threading.Event()

    def serve():
        while not stopping.is_set():
            if router.poll(50):
                message = router.recv_multipart(copy=False)
                seen.append(message[0].get("Socket-Type"))
                if len(message) > 1 and message[1].bytes == b"wait":  # answer later: the client idles meanwhile
                    time.sleep(1.5)
                router.send_multipart(message, copy=False)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"tcp://127.0.0.1:{port}", seen
    stopping.set()
    thread.join(5)
    context.destroy(linger=0)


def connected(endpoint):
    dealer = zmtp.Context().socket(zmtp.DEALER)
    dealer.connect(endpoint)
    assert dealer.poll(5000, zmtp.POLLOUT), dealer.problem
    return dealer


def round_trip(dealer, frames, timeout_ms=60000):
    dealer.send_multipart(frames)
    assert dealer.poll(timeout_ms, zmtp.POLLIN), dealer.problem
    return dealer.recv_multipart()


@pytest.mark.parametrize("sizes", [[0], [255], [256], [0, 255, 256, 70_000, 1]], ids=["0", "255", "256", "multipart"])
def test_frames_short_and_long_round_trip_through_libzmq(echo, sizes):
    endpoint, seen = echo
    frames = [bytes([index % 251]) * size for index, size in enumerate(sizes)]
    with connected(endpoint) as dealer:
        assert [bytes(frame) for frame in round_trip(dealer, frames)] == frames
    assert seen == ["DEALER"]  # libzmq read the Socket-Type of our READY


@pytest.mark.slow
def test_a_300_mb_frame_round_trips(echo_without_heartbeats):
    payload = bytearray(300_000_000)
    payload[::4096] = b"\x07" * len(payload[::4096])
    with connected(echo_without_heartbeats[0]) as dealer:
        back = round_trip(dealer, [b"", payload])
    assert len(back) == 2 and len(back[1]) == len(payload) and back[1] == payload


def test_pings_are_answered_while_the_client_waits(echo):
    """libzmq drops a peer that leaves its PINGs unanswered for 300 ms; the reply comes 1.5 s later."""
    with connected(echo[0]) as dealer:
        assert [bytes(frame) for frame in round_trip(dealer, [b"wait"], 5000)] == [b"wait"]


class Peer:
    """A raw TCP server that plays a ZMTP peer as told: `script(connection)` runs for each connection."""

    def __init__(self, script):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.endpoint = f"tcp://127.0.0.1:{self.listener.getsockname()[1]}"
        self.script = script
        self.connections = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._run, args=(connection,), daemon=True).start()

    def _run(self, connection):
        try:
            self.script(connection)
        except OSError:
            pass

    def close(self):
        self.listener.close()


def handshake(connection):
    connection.sendall(LIBZMQ_GREETING)
    connection.recv(64, socket.MSG_WAITALL)
    connection.sendall(zmtp._command(b"READY", zmtp._property(b"Socket-Type", b"ROUTER")))


def test_a_message_split_across_reads_is_put_together(echo):
    """Greeting, READY and a long multipart message arrive a few bytes at a time."""
    message = [b"", protocol.pack({"type": "pong", "id": None}), b"\x05" * 300]
    wire = (LIBZMQ_GREETING + zmtp._command(b"READY", zmtp._property(b"Socket-Type", b"ROUTER"))
            + b"\x01\x00" + struct.pack(">BB", 1, len(message[1])) + message[1]
            + struct.pack(">BQ", 2, 300) + message[2])

    def dribble(connection):
        for at in range(0, len(wire), 7):
            connection.sendall(wire[at:at + 7])
            time.sleep(0.002)
        time.sleep(5)

    peer = Peer(dribble)
    try:
        dealer = zmtp.Context().socket(zmtp.DEALER)
        dealer.connect(peer.endpoint)
        assert dealer.poll(10000, zmtp.POLLIN)
        assert [bytes(frame) for frame in dealer.recv_multipart()] == message
    finally:
        peer.close()


@pytest.mark.parametrize("behaviour, problem", [
    ("bad greeting", "is not a ZeroMQ daemon (its greeting is wrong)"),
    ("curve", "asks for CURVE encryption, which needs pyzmq: run `deepdream relay --to"),
    ("error", "refused the connection: not today"),
    ("mid-frame", None),
    ("silent", None),
])
def test_a_misbehaving_peer_is_an_error_within_the_timeout(behaviour, problem):
    def script(connection):
        if behaviour == "bad greeting":
            connection.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n" + bytes(40))
        elif behaviour == "curve":
            connection.sendall(LIBZMQ_GREETING.replace(b"NULL".ljust(20, b"\0"), b"CURVE".ljust(20, b"\0")))
        elif behaviour == "error":
            connection.sendall(LIBZMQ_GREETING)
            connection.sendall(zmtp._command(b"ERROR", bytes([10]) + b"not today"))
        elif behaviour == "mid-frame":  # READY, then a frame that promises 1,000 bytes and sends 10
            handshake(connection)
            connection.sendall(struct.pack(">BQ", 2, 1000) + bytes(10))
        time.sleep(6)  # "silent": accepts, and says nothing at all

    peer = Peer(script)
    try:
        with DreamClient(peer.endpoint, timeout=1.5, transport="zmtp") as client:
            started = time.monotonic()
            with pytest.raises(DaemonUnavailable) as failure:
                client.ping()
            assert time.monotonic() - started < 4
            if behaviour == "mid-frame":
                pixels = photo(64, 64).tobytes()
                with pytest.raises(DaemonUnavailable):
                    client.dream(pixels, 64, 64, 3)
                assert time.monotonic() - started < 12
        if problem:
            assert problem in str(failure.value)
        assert peer.connections >= 1
    finally:
        peer.close()


def test_a_daemon_sees_a_zmtp_client_as_a_dealer(daemon):
    """The daemon refuses a zoom from a REQ socket; from zmtp's DEALER it streams the frames."""
    with DreamClient(daemon.endpoint, transport="zmtp") as client:
        result = client.zoom_array(photo(80, 80), zoom={"frames": 2}, params={"octaves": 1, "steps": 1,
                                                                              "jitter": 0})
    assert result.frames_sent == 2


def test_a_peer_that_stops_reading_fails_the_send_in_the_stall_limit():
    """A peer that completes the handshake and then reads nothing: a 200 MB send fails after SNDTIMEO."""
    peer = Peer(lambda connection: (handshake(connection), time.sleep(10)))
    try:
        dealer = zmtp.Context().socket(zmtp.DEALER)
        dealer.setsockopt(zmtp.SNDTIMEO, 1000)
        dealer.connect(peer.endpoint)
        assert dealer.poll(5000, zmtp.POLLOUT), dealer.problem
        started = time.monotonic()
        with pytest.raises(zmtp.ZMTPError, match="took nothing of the message for 1 s"):
            dealer.send_multipart([b"", bytes(200_000_000)])
        assert time.monotonic() - started < 5
    finally:
        peer.close()
