"""Protocol v1 spoken by hand with pyzmq and msgpack: what a client in any other
language would do. The daemon tests use this, not daemon/deepdream_client/client.py, so that
they check the wire contract itself."""

import itertools
import time

import msgpack
import numpy as np
import zmq

TIMEOUT_S = 30
TINY = {"octaves": 1, "steps": 2, "jitter": 0, "tile_size": 512}  # a dream that takes about a second
LONG = {"octaves": 1, "steps": 1000, "jitter": 0}  # only ever cancelled or interrupted

_ids = itertools.count(1)


def new_id(prefix="t"):
    return f"{prefix}-{next(_ids)}"


def connect(endpoint, kind=zmq.DEALER):
    sock = zmq.Context.instance().socket(kind)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(endpoint)
    return sock


def send(sock, header, payload=None, delimiter=True):
    """Send one request; a DEALER adds the empty delimiter a REQ socket adds by itself."""
    frames = [msgpack.packb(header) if isinstance(header, dict) else header]
    if payload is not None:
        frames.append(payload)
    if delimiter and sock.type == zmq.DEALER:
        frames.insert(0, b"")
    sock.send_multipart(frames)


def receive(sock, timeout=TIMEOUT_S):
    """(header, payload or None) of the next message; AssertionError on silence."""
    assert sock.poll(int(timeout * 1000)), f"no reply within {timeout} s"
    frames = sock.recv_multipart()
    if frames and frames[0] == b"":
        frames = frames[1:]
    return msgpack.unpackb(frames[0]), (frames[1] if len(frames) > 1 else None)


def final(sock, timeout=TIMEOUT_S):
    """(final header, payload, progress events before it)."""
    events = []
    deadline = time.monotonic() + timeout
    while True:
        header, payload = receive(sock, max(0.0, deadline - time.monotonic()))
        if header.get("type") != "progress":
            return header, payload, events
        events.append(header)


def send_frames(endpoint, header, *frames, timeout=TIMEOUT_S):
    """(final header, its payload, progress events before it) of one request whose header frame is followed by
    `frames` (its payload, a guide's, or more than a request may have), on a fresh DEALER."""
    sock = connect(endpoint)
    try:
        sock.send_multipart([b"", msgpack.packb(header), *frames])
        return final(sock, timeout)
    finally:
        sock.close()


def call(endpoint, header, payload=None, timeout=TIMEOUT_S):
    """One request on a fresh REQ socket: (reply header, payload)."""
    sock = connect(endpoint, zmq.REQ)
    try:
        send(sock, header, payload)
        return receive(sock, timeout)
    finally:
        sock.close()


def request(op, request_id=None, **fields):
    return {"v": 1, "op": op, "id": request_id or new_id(op), **fields}


def dream_request(image, params=TINY, request_id=None, progress=False):
    """(header, payload) of a raw dream of a numpy H x W x C image."""
    height, width, channels = image.shape
    description = {"format": "raw", "dtype": image.dtype.name, "width": width, "height": height,
                   "channels": channels}
    header = request("dream", request_id, params=dict(params), image=description, progress=progress)
    return header, np.ascontiguousarray(image, image.dtype.newbyteorder("<")).tobytes()


def stream(endpoint, header, payload, kind=zmq.DEALER, streamed=("progress",)):
    """(final header, its payload, [(header, payload) of each streamed message before it]) of one
    raw request: progress events, and a zoom's frames, come before the final reply."""
    sock = connect(endpoint, kind)
    try:
        send(sock, header, payload)
        messages = []
        while True:
            reply, data = receive(sock)
            if reply["type"] not in streamed:
                return reply, data, messages
            messages.append((reply, data))
    finally:
        sock.close()


def result_array(header, payload):
    description = header["image"]
    shape = (description["height"], description["width"], description["channels"])
    return np.frombuffer(payload, np.dtype(description["dtype"]).newbyteorder("<")).reshape(shape)


def ping(endpoint, timeout=5):
    return call(endpoint, request("ping"), timeout=timeout)[0]


def wait_for(condition, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"{what}: not within {timeout} s")
