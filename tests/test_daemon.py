"""The wire protocol against one real deepdream-daemon (random weights, float32:
these machines cannot download the ImageNet weights), spoken by hand."""

import io
import os
import subprocess
import sys
import textwrap
import threading
import time

import msgpack
import numpy as np
import pytest
import zmq
from PIL import Image

from bench.fuzz import Deep, encode, png_claiming
from images import photo
from raw_wire import (LONG, TINY, call, connect, dream_request, final, ping, receive, request,
                      result_array, send, send_frames, wait_for)

PROMPTLY_S = 15


def sample(dtype, channels, height=100, width=120):
    rgb = photo(height, width, seed=channels).astype(np.float32) / 255.0
    gray = rgb.mean(axis=2, keepdims=True)
    colour = gray if channels <= 2 else rgb
    alpha = np.linspace(0.2, 1.0, width, dtype=np.float32)[None, :, None].repeat(height, axis=0)
    unit = np.concatenate([colour, alpha], axis=2) if channels in (2, 4) else colour
    if dtype == "float32":
        return unit.astype(np.float32)
    top = np.iinfo(dtype).max
    return np.rint(unit * top).astype(dtype)


def test_ping_describes_the_daemon(daemon):
    pong = ping(daemon.endpoint)
    assert pong["type"] == "pong" and pong["id"].startswith("ping")
    assert pong["state"] == "ready" and pong["busy"] is False and pong["queued"] == 0
    assert pong["weights"] == "random" and pong["precision"] == "float32" and pong["model"] == "inception_v3"
    assert pong["backend"] == "tensorflow" and pong["device"] == "CPU"
    assert pong["protocol"] == 1 and pong["version"]
    # the log's ready line says the same
    assert "ready: random weights, tensorflow backend on CPU at float32, in " in daemon.log_text()


def test_info_lists_layers_defaults_and_limits(daemon):
    info = call(daemon.endpoint, request("info"))[0]
    assert info["type"] == "info"
    assert {"mixed2", "mixed5"} <= set(info["layers"])
    assert info["defaults"]["octaves"] >= 1 and "layers" in info["defaults"]
    assert info["limits"]["max_pixels"] > 0 and info["limits"]["max_message_bytes"] > info["limits"]["max_pixels"]


@pytest.mark.parametrize("dtype, channels", [
    ("uint8", 1), ("uint8", 2), ("uint8", 3), ("uint8", 4),
    ("uint16", 1), ("uint16", 3), ("float32", 2), ("float32", 4),
])
def test_raw_round_trip_keeps_shape_dtype_and_alpha(daemon, dtype, channels):
    image = sample(dtype, channels)
    header, payload = dream_request(image)
    kind = zmq.REQ if channels % 2 else zmq.DEALER  # both socket kinds, one envelope shape each
    sock = connect(daemon.endpoint, kind)
    send(sock, header, payload)
    reply, data, _events = final(sock)
    sock.close()
    assert reply["type"] == "result", reply
    assert reply["id"] == header["id"]
    assert reply["image"] == header["image"]
    out = result_array(reply, data)
    assert out.shape == image.shape and out.dtype == image.dtype
    if channels in (2, 4):
        assert np.array_equal(out[..., -1], image[..., -1]), "alpha must pass through untouched"
    assert not np.array_equal(out, image), "a dream changes the picture"
    stats = reply["stats"]
    assert stats["steps"] == TINY["steps"] and stats["octaves"] == 1 and stats["seconds"] > 0
    assert stats["weights"] == "random"


@pytest.mark.parametrize("fmt, mode, dtype, channels", [
    ("PNG", "RGBA", "uint8", 4), ("PNG", "L", "uint8", 1), ("PNG", "I;16", "uint16", 1), ("JPEG", "RGB", "uint8", 3),
])
def test_encoded_round_trip_comes_back_as_png(daemon, fmt, mode, dtype, channels):
    pixels = sample(dtype, channels)
    picture = Image.fromarray(pixels[..., 0] if channels == 1 else pixels)
    assert picture.mode == mode
    buffer = io.BytesIO()
    picture.save(buffer, format=fmt)
    header = request("dream", params=TINY, image={"format": "encoded"})
    reply, data = call(daemon.endpoint, header, buffer.getvalue())
    assert reply["type"] == "result", reply
    assert reply["image"]["format"] == "encoded" and reply["image"]["encoding"] == "png"
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    back = Image.open(io.BytesIO(data))
    assert back.size == picture.size and back.mode == mode
    assert (reply["image"]["width"], reply["image"]["height"], reply["image"]["channels"]) == (120, 100, channels)


def test_progress_arrives_in_order_and_only_to_the_asking_client(daemon):
    asking, quiet = connect(daemon.endpoint), connect(daemon.endpoint)
    params = {**TINY, "octaves": 2, "steps": 3, "octave_scale": 1.2}
    header, payload = dream_request(sample("uint8", 3), params, progress=True)
    send(asking, header, payload)
    other, other_payload = dream_request(sample("uint8", 1), params, progress=False)
    send(quiet, other, other_payload)

    reply, _data, events = final(asking)
    assert reply["type"] == "result"
    real = [event for event in events if event["octave"] > 0]  # octave 0: a 'still waiting' heartbeat
    assert [(e["octave"], e["step"]) for e in real] == [(1, 1), (1, 2), (1, 3), (2, 1), (2, 2), (2, 3)]
    assert all(e["id"] == header["id"] and e["octaves"] == 2 and e["steps"] == 3 for e in real)
    fractions = [event["fraction"] for event in events]
    assert fractions == sorted(fractions) and fractions[-1] == pytest.approx(1.0)

    reply, _data, events = final(quiet)
    assert reply["type"] == "result" and reply["id"] == other["id"]
    assert events == [], "a client that did not ask gets no progress"
    asking.close(), quiet.close()


def start_running(endpoint):
    """A DEALER socket whose LONG dream is running (its first real step was reported)."""
    sock = connect(endpoint)
    header, payload = dream_request(sample("uint8", 3), LONG, progress=True)
    send(sock, header, payload)
    while receive(sock)[0]["octave"] == 0:  # 'waiting' heartbeats until the first step
        pass
    return sock, header


def stop_running(endpoint, sock, header):
    send(sock, request("cancel", target=header["id"]))
    wait_for(lambda: not ping(endpoint)["busy"], PROMPTLY_S, "the running dream is cancelled")
    sock.close()


def test_cancel_ends_a_running_dream_promptly_and_ping_answers_meanwhile(daemon):
    # Not the first progress event: that can be the 'waiting' one, sent before the worker takes the dream.
    sock, header = start_running(daemon.endpoint)

    started = time.monotonic()
    pong = ping(daemon.endpoint, timeout=2)  # the I/O thread is not blocked by the dream
    assert time.monotonic() - started < 2 and pong["busy"] is True

    started = time.monotonic()
    send(sock, request("cancel", "stop-it", target=header["id"]))
    replies = {}
    while len(replies) < 2:
        reply, _ = receive(sock, PROMPTLY_S)
        if reply["type"] != "progress":
            replies[reply["id"]] = reply
    assert replies["stop-it"] == {"type": "cancelled", "id": "stop-it", "target": header["id"], "found": True,
                                  "daemon": daemon.endpoint}
    assert replies[header["id"]]["type"] == "error" and replies[header["id"]]["code"] == "CANCELLED"
    assert time.monotonic() - started < PROMPTLY_S
    wait_for(lambda: not ping(daemon.endpoint)["busy"], PROMPTLY_S, "the worker is free again")
    sock.close()


def test_a_queued_dream_can_be_cancelled_from_another_socket(daemon):
    (runner, running), waiter = start_running(daemon.endpoint), connect(daemon.endpoint, zmq.REQ)
    queued, queued_payload = dream_request(sample("uint8", 3), TINY)
    send(waiter, queued, queued_payload)
    wait_for(lambda: ping(daemon.endpoint)["queued"] == 1, PROMPTLY_S, "the second dream waits")

    reply = call(daemon.endpoint, request("cancel", target=queued["id"]))[0]
    assert reply["type"] == "cancelled" and reply["found"] is True
    assert receive(waiter, PROMPTLY_S)[0]["code"] == "CANCELLED"
    assert call(daemon.endpoint, request("cancel", target="no-such-dream"))[0]["found"] is False

    send(runner, request("cancel", target=running["id"]))
    assert final(runner, PROMPTLY_S)[0]["type"] in ("cancelled", "error")
    wait_for(lambda: not ping(daemon.endpoint)["busy"], PROMPTLY_S, "the worker is free again")
    runner.close(), waiter.close()


def test_a_refused_duplicate_id_is_told_apart_from_the_dream_that_goes_on(daemon):
    sock, running = start_running(daemon.endpoint)
    send(sock, *dream_request(sample("uint8", 3), TINY, request_id=running["id"]))
    refusal = final(sock, PROMPTLY_S)[0]
    assert refusal["type"] == "error" and refusal["code"] == "BAD_REQUEST" and refusal["id"] == running["id"]
    assert refusal["duplicate_id"] is True, "a client matching by id needs to know its dream goes on"
    assert ping(daemon.endpoint)["busy"] is True and receive(sock)[0]["type"] == "progress"

    send(sock, request("cancel", target=running["id"]))
    ending = next(reply for reply in [final(sock, PROMPTLY_S)[0] for _ in range(2)] if reply["id"] == running["id"])
    assert ending["id"] == running["id"] and ending["code"] == "CANCELLED" and "duplicate_id" not in ending
    sock.close()


def test_a_too_small_raw_image_is_refused_at_once_not_after_the_queue(daemon):
    sock, running = start_running(daemon.endpoint)
    started = time.monotonic()
    reply = call(daemon.endpoint, *dream_request(sample("uint8", 3, height=74, width=200)), timeout=5)[0]
    assert reply["code"] == "BAD_REQUEST" and "at least 75 pixels on each side" in reply["message"], reply
    assert time.monotonic() - started < 5 and ping(daemon.endpoint)["busy"] is True
    stop_running(daemon.endpoint, sock, running)


def test_a_queued_dream_hears_waiting_events_with_its_place(daemon):
    sock, running = start_running(daemon.endpoint)
    waiter = connect(daemon.endpoint)
    header, payload = dream_request(sample("uint8", 3), TINY, progress=True)
    send(waiter, header, payload)
    event = receive(waiter, 5)[0]
    assert event == {"type": "progress", "id": header["id"], "octave": 0, "octaves": 0, "step": 0, "steps": 0,
                     "fraction": 0.0, "queued": 1, "daemon": daemon.endpoint}
    stop_running(daemon.endpoint, sock, running)
    reply, _data, events = final(waiter)
    assert reply["type"] == "result" and all(e["queued"] in (0, 1) for e in events if e["octave"] == 0)
    waiter.close()


def test_first_use_of_a_layer_set_reports_its_compiling_apart(daemon):
    params = {**TINY, "layers": {"mixed0": 1.0}}  # a layer set the daemon has not compiled yet
    first, second = (call(daemon.endpoint, *dream_request(sample("uint8", 3), params))[0]["stats"]
                     for _ in range(2))
    # Which costs more is the machine's business (no timings asserted); what the protocol
    # promises is that compiling is counted apart, within the dream's seconds, once.
    assert 0 < first["compile_seconds"] <= first["seconds"], first
    assert second["compile_seconds"] == 0, second


def test_a_req_client_asking_for_progress_is_refused_at_once(daemon):
    header, payload = dream_request(sample("uint8", 3), TINY, progress=True)
    reply = call(daemon.endpoint, header, payload, timeout=5)[0]
    assert reply["id"] == header["id"] and reply["code"] == "BAD_REQUEST" and "DEALER" in reply["message"], reply
    assert not ping(daemon.endpoint)["busy"] and ping(daemon.endpoint)["queued"] == 0, "nothing was queued"


def start_doomed_client(endpoint, header, payload):
    """A separate process that sends a dream and reads its progress until it is SIGKILLed,
    as GIMP kills a plug-in whose progress bar is cancelled."""
    script = textwrap.dedent("""
        import sys, msgpack, zmq
        message = msgpack.unpackb(sys.stdin.buffer.read())
        sock = zmq.Context().socket(zmq.DEALER)
        sock.connect(sys.argv[1])
        sock.send_multipart([b"", msgpack.packb(message["header"]), message["payload"]])
        while True:
            frames = sock.recv_multipart()
            print(msgpack.unpackb(frames[1]).get("octave"), flush=True)
    """)
    process = subprocess.Popen([sys.executable, "-c", script, endpoint], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=False)
    process.stdin.write(msgpack.packb({"header": header, "payload": payload}))
    process.stdin.close()
    return process


def test_a_killed_client_stops_its_dream_queued_or_running(daemon):
    # Running: the client dies after the first real step.
    header, payload = dream_request(sample("uint8", 3), LONG, progress=True)
    doomed = start_doomed_client(daemon.endpoint, header, payload)
    while doomed.stdout.readline().strip() in (b"0",):  # skip 'waiting' heartbeats
        pass
    assert ping(daemon.endpoint)["busy"] is True
    doomed.kill(), doomed.wait()
    wait_for(lambda: not ping(daemon.endpoint)["busy"], PROMPTLY_S, "the dead client's dream stops")

    # Queued: behind a dream of ours, the dead client's job leaves the queue.
    runner = connect(daemon.endpoint)
    running, running_payload = dream_request(sample("uint8", 3), LONG, progress=True)
    send(runner, running, running_payload)
    assert receive(runner)[0]["type"] == "progress"
    header, payload = dream_request(sample("uint8", 3), TINY, progress=True)
    doomed = start_doomed_client(daemon.endpoint, header, payload)
    wait_for(lambda: ping(daemon.endpoint)["queued"] == 1, PROMPTLY_S, "the doomed dream is queued")
    doomed.kill(), doomed.wait()
    wait_for(lambda: ping(daemon.endpoint)["queued"] == 0, PROMPTLY_S, "the dead client's queued dream goes")
    send(runner, request("cancel", target=running["id"]))
    wait_for(lambda: not ping(daemon.endpoint)["busy"], PROMPTLY_S, "our dream is cancelled")
    runner.close()

    # The next client is served promptly.
    started = time.monotonic()
    reply = call(daemon.endpoint, *dream_request(sample("uint8", 3)))[0]
    assert reply["type"] == "result" and time.monotonic() - started < PROMPTLY_S
    assert "went away" in daemon.log_text()


def raw(description, payload=b""):
    return [msgpack.packb(request("dream", params=TINY, image=description)), payload]


def described(width=120, height=100, channels=3, dtype="uint8"):
    return {"format": "raw", "dtype": dtype, "width": width, "height": height, "channels": channels}


GOOD_PIXELS = bytes(120 * 100 * 3)
GARBAGE = {
    "random bytes": ([os.urandom(64) + b"\xc1"], "BAD_REQUEST"),
    "header not a map": ([msgpack.packb([1, "ping"])], "BAD_REQUEST"),
    "header too big": ([msgpack.packb({"v": 1, "op": "ping", "pad": "x" * 70000})], "BAD_REQUEST"),
    "wrong version": ([msgpack.packb({"v": 2, "op": "ping", "id": "a"})], "UNSUPPORTED_VERSION"),
    "no version": ([msgpack.packb({"op": "ping", "id": "a"})], "UNSUPPORTED_VERSION"),
    "unknown op": ([msgpack.packb({"v": 1, "op": "explode", "id": "a"})], "UNKNOWN_OP"),
    "three frames": ([msgpack.packb({"v": 1, "op": "ping", "id": "a"}), b"x", b"y"], "BAD_REQUEST"),
    "payload on ping": ([msgpack.packb({"v": 1, "op": "ping", "id": "a"}), b"x"], "BAD_REQUEST"),
    "payload too short": (raw(described(), GOOD_PIXELS[:-1]), "BAD_REQUEST"),
    "payload missing": (raw(described())[:1], "BAD_REQUEST"),
    "huge declared image": (raw(described(100_000, 100_000), GOOD_PIXELS), "TOO_LARGE"),
    "bad dtype": (raw(described(dtype="float64"), GOOD_PIXELS), "BAD_REQUEST"),
    "five channels": (raw(described(channels=5), GOOD_PIXELS), "BAD_REQUEST"),
    "not an image file": (raw({"format": "encoded"}, b"GIF89a garbage"), "IMAGE_DECODE"),
    "too small to dream": (raw(described(10, 10), bytes(300)), "BAD_REQUEST"),
    "bad params": ([msgpack.packb(request("dream", params={"steps": -1}, image=described())), GOOD_PIXELS],
                   "INVALID_PARAMS"),
    "unknown param": ([msgpack.packb(request("dream", params={"stepz": 3}, image=described())), GOOD_PIXELS],
                      "INVALID_PARAMS"),
    "params not a map": ([msgpack.packb(request("dream", params=[1], image=described())), GOOD_PIXELS],
                         "INVALID_PARAMS"),
    "unknown layer": ([msgpack.packb(request("dream", params={"layers": ["mixed99"]}, image=described())),
                       GOOD_PIXELS], "UNKNOWN_LAYER"),
    "cancel without target": ([msgpack.packb({"v": 1, "op": "cancel", "id": "a"})], "BAD_REQUEST"),
    "float32 out of range": (raw(described(dtype="float32"), np.full(120 * 100 * 3, 7.0, "<f4").tobytes()),
                             "BAD_REQUEST"),
}


def dream_with(params=TINY, payload=GOOD_PIXELS, **image):
    """Frames of a dream whose header may hold anything (Deep values included)."""
    return [encode(request("dream", params=params, image={**described(), **image})), payload]


def pillow_file(pixels, format_name):
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=format_name)
    return buffer.getvalue()


DEEP = Deep(1000)  # a list nested 1000 deep: formatting one for a message raised RecursionError
# Each of these stopped the daemon (issue 9), or answered with a wrong code or a Python repr.
GARBAGE.update({
    "op is a list": ([msgpack.packb({"v": 1, "op": [], "id": "x"})], "BAD_REQUEST"),
    "op is a map": ([msgpack.packb({"v": 1, "op": {"a": 1}, "id": "x"})], "BAD_REQUEST"),
    "op is binary": ([msgpack.packb({"v": 1, "op": b"ping", "id": "x"}, use_bin_type=True)], "BAD_REQUEST"),
    "no op": ([msgpack.packb({"v": 1, "id": "x"})], "BAD_REQUEST"),
    "v is true": ([msgpack.packb({"v": True, "op": "ping", "id": "x"})], "UNSUPPORTED_VERSION"),
    "v is 1.0": ([msgpack.packb({"v": 1.0, "op": "ping", "id": "x"})], "UNSUPPORTED_VERSION"),
    "v nested deep": ([encode({"v": DEEP, "op": "ping", "id": "x"})], "UNSUPPORTED_VERSION"),
    "id is a number": ([msgpack.packb({"v": 1, "op": "ping", "id": 7})], "BAD_REQUEST"),
    "id is a list": ([msgpack.packb({"v": 1, "op": "ping", "id": [1]})], "BAD_REQUEST"),
    "cancel target is a list": ([msgpack.packb(request("cancel", target=["x"]))], "BAD_REQUEST"),
    "cancel target is a map": ([msgpack.packb(request("cancel", target={"x": 1}))], "BAD_REQUEST"),
    "progress is a list": ([msgpack.packb(request("dream", progress=[], params=TINY, image=described())),
                            GOOD_PIXELS], "BAD_REQUEST"),
    "dtype is a list": (dream_with(dtype=["uint8"]), "BAD_REQUEST"),
    "dtype is a map": (dream_with(dtype={"uint8": 1}), "BAD_REQUEST"),
    "width is true": (dream_with(width=True), "BAD_REQUEST"),
    "width is 120.0": (dream_with(width=120.0), "BAD_REQUEST"),
    "format nested deep": (dream_with(format=DEEP), "BAD_REQUEST"),
    "width nested deep": (dream_with(width=DEEP), "BAD_REQUEST"),
    "steps nested deep": (dream_with({**TINY, "steps": DEEP}), "INVALID_PARAMS"),
    "detail nested deep": (dream_with({**TINY, "detail": DEEP}), "INVALID_PARAMS"),
    "layer weight nested deep": (dream_with({**TINY, "layers": {"mixed2": DEEP}}), "INVALID_PARAMS"),
    "layers hold a list": (dream_with({**TINY, "layers": ["mixed2", ["mixed3"]]}), "INVALID_PARAMS"),
    "layers hold a map": (dream_with({**TINY, "layers": [{"mixed3": 1}]}), "INVALID_PARAMS"),
    "steps is 2.0": (dream_with({**TINY, "steps": 2.0}), "INVALID_PARAMS"),
    "an EPS file": (raw({"format": "encoded"}, b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 100 100\n"),
                    "IMAGE_DECODE"),
    "a PCX file": (raw({"format": "encoded"}, pillow_file(photo(100, 120), "PCX")), "IMAGE_DECODE"),
    "a BMP file": (raw({"format": "encoded"}, pillow_file(photo(100, 120), "BMP")), "IMAGE_DECODE"),
    "a PNG claiming 30000x30000": (raw({"format": "encoded"}, png_claiming(30_000, 30_000)), "TOO_LARGE"),
    "a PNG claiming 7000x7000": (raw({"format": "encoded"}, png_claiming(7_000, 7_000)), "TOO_LARGE"),
})


@pytest.mark.parametrize("name", GARBAGE)
@pytest.mark.parametrize("delimiter", [True, False], ids=["with-delimiter", "bare"])
def test_garbage_gets_a_coded_error_and_the_daemon_keeps_serving(daemon, name, delimiter):
    frames, code = GARBAGE[name]
    sock = connect(daemon.endpoint)
    sock.send_multipart(([b""] if delimiter else []) + frames)
    reply_frames = sock.recv_multipart() if sock.poll(30_000) else []
    sock.close()
    assert reply_frames, f"{name}: no reply"
    assert (reply_frames[0] == b"") == delimiter, "the reply comes in the envelope the request came in"
    reply = msgpack.unpackb(reply_frames[-1])
    assert reply["type"] == "error" and reply["code"] == code, reply
    assert reply["id"] is None or isinstance(reply["id"], str)
    message = reply["message"]
    assert message and len(message) < 400, "a message for the user, not the client's data back"
    assert "b'" not in message and "None" not in message and "\n" not in message, message
    assert ping(daemon.endpoint)["state"] == "ready"


def test_a_req_client_gets_errors_too(daemon):
    assert call(daemon.endpoint, b"\xc1 not msgpack")[0]["code"] == "BAD_REQUEST"
    assert call(daemon.endpoint, {"v": 1, "op": "nope", "id": "x"})[0] == {
        "type": "error", "id": "x", "code": "UNKNOWN_OP", "daemon": daemon.endpoint,
        "message": 'unknown op "nope"; the ops are ping, info, dream, cancel, zoom'}


def test_messages_quote_client_values_briefly_and_readably(daemon):
    def message(header, payload=None):
        return call(daemon.endpoint, header, payload)[0]["message"]

    assert message(msgpack.packb({"v": 1, "op": b"ping", "id": "x"}, use_bin_type=True)) == (
        "`op` must be a string, got <binary, 4 bytes>")
    assert message({"op": "ping", "id": "x"}) == "this daemon speaks protocol version 1; the request's `v` is missing"
    assert message({"v": True, "op": "ping", "id": "x"}).endswith("the request's `v` is true")
    assert message({"v": 1, "op": "ping", "id": 7}) == "`id` must be a string, got 7"
    assert message(msgpack.packb([1, "ping"])) == 'the header must be a msgpack map, got [1, "ping"]'
    huge = message(*dream_with({**TINY, "layers": {"m" * 60_000: 1.0}}))
    assert '"mmm' in huge and "60000 characters" in huge and len(huge) < 400  # quoted briefly, its size said


def test_a_message_of_many_frames_is_counted_not_kept(daemon):
    sock = connect(daemon.endpoint)
    sock.send_multipart([b"", msgpack.packb(request("ping"))] + [b"x"] * 100_000)
    assert sock.poll(30_000)
    reply = msgpack.unpackb(sock.recv_multipart()[-1])
    sock.close()
    assert reply["code"] == "BAD_REQUEST" and "100001 frames after the envelope" in reply["message"]
    assert ping(daemon.endpoint)["state"] == "ready"


def test_client_strings_cannot_forge_log_lines(daemon):
    forged = "\n2001-01-01 00:00:00,000 deepdream-daemon INFO: forged"
    replies = [
        call(daemon.endpoint, {"v": 1, "op": "explode" + forged, "id": "op" + forged})[0],
        call(daemon.endpoint, *dream_with({**TINY, "layers": {"mixed2" + forged: 1.0}}))[0],
        call(daemon.endpoint, *dream_with({**TINY, "steps" + forged: 3}))[0],
        call(daemon.endpoint, encode(request("cancel", "cancel" + forged, target=7)))[0],
    ]
    assert [reply["code"] for reply in replies] == ["UNKNOWN_OP", "UNKNOWN_LAYER", "INVALID_PARAMS", "BAD_REQUEST"]
    assert replies[0]["id"] == "op" + forged, "the wire keeps the id as sent: only messages and logs escape it"
    log = daemon.log_text()
    assert "\\n2001-01-01" in log, "the requests were logged, escaped"
    assert not any(line.startswith("2001-01-01") for line in log.splitlines()), "no line was forged"


def test_ten_concurrent_clients_each_get_their_own_result(daemon):
    colours = [(30 + 20 * n, 220 - 18 * n, (70 * n) % 256) for n in range(10)]
    rng = np.random.default_rng(7)
    results = {}

    def client(n):
        image = np.clip(np.array(colours[n], np.float32) + rng.normal(0, 3, (100, 120, 3)), 0, 255).astype(np.uint8)
        sock = connect(daemon.endpoint, zmq.REQ if n % 2 else zmq.DEALER)
        header, payload = dream_request(image, progress=not n % 2)
        send(sock, header, payload)
        reply, data, _events = final(sock, timeout=120)
        results[n] = (header["id"], reply, result_array(reply, data) if reply["type"] == "result" else None)
        sock.close()

    threads = [threading.Thread(target=client, args=(n,)) for n in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(150)
    assert sorted(results) == list(range(10))
    for n, (request_id, reply, out) in results.items():
        assert reply["type"] == "result" and reply["id"] == request_id, reply
        mean = out.reshape(-1, 3).mean(axis=0)
        distances = [np.abs(mean - np.array(colour)).max() for colour in colours]
        assert int(np.argmin(distances)) == n and distances[n] < 15, (n, mean)


def dream_with_guide(endpoint, image, guide_description, guide_payload, params=TINY):
    """(final header, payload) of a dream whose `guide` travels in a third frame."""
    header, payload = dream_request(image, params)
    header["guide"] = guide_description
    sock = connect(endpoint)
    try:
        sock.send_multipart([b"", msgpack.packb(header), payload, guide_payload])
        reply, data, _events = final(sock)
        return reply, data
    finally:
        sock.close()


def raw_guide(array):
    height, width, channels = array.shape
    description = {"format": "raw", "dtype": array.dtype.name, "width": width, "height": height, "channels": channels}
    return description, np.ascontiguousarray(array, array.dtype.newbyteorder("<")).tobytes()


def test_a_guide_raw_or_encoded_steers_the_dream(daemon):
    image, guide = sample("uint8", 3), photo(90, 110, seed=11)
    params = {**TINY, "layers": {"mixed4": 1.0}}
    plain = result_array(*call(daemon.endpoint, *dream_request(image, params)))
    raw_reply, raw_data = dream_with_guide(daemon.endpoint, image, *raw_guide(guide), params)
    assert raw_reply["type"] == "result", raw_reply
    guided = result_array(raw_reply, raw_data)
    assert np.abs(guided.astype(int) - plain).mean() > 0.3, "the guide should change the dream"  # measured 0.8
    png = io.BytesIO()
    Image.fromarray(guide).save(png, format="PNG")
    encoded_reply, encoded_data = dream_with_guide(daemon.endpoint, image, {"format": "encoded"}, png.getvalue(),
                                                   params)
    assert encoded_reply["type"] == "result", encoded_reply
    assert np.array_equal(result_array(encoded_reply, encoded_data), guided), "the same guide, either way"
    gray_16_bit = (guide[..., :1].astype(np.uint16) * 257)
    reply, _ = dream_with_guide(daemon.endpoint, image, *raw_guide(gray_16_bit), params)
    assert reply["type"] == "result", reply


@pytest.mark.parametrize("case, code, words", [
    ("no third frame", "BAD_REQUEST", "third frame"),
    ("short payload", "BAD_REQUEST", "guide's payload has"),
    ("too small", "BAD_REQUEST", "the guide is 60x60"),
    ("not a map", "BAD_REQUEST", "`guide` must be a map"),
    ("not an image file", "IMAGE_DECODE", "the guide's payload is"),
    ("four frames", "BAD_REQUEST", "two with `guide`"),
    ("three frames without guide", "BAD_REQUEST", "two with `guide`"),
])
def test_a_bad_guide_gets_a_coded_error_and_the_daemon_keeps_serving(daemon, case, code, words):
    header, payload = dream_request(sample("uint8", 3))
    description, guide = raw_guide(photo(80, 90))
    frames = [payload, guide]
    if case == "no third frame":
        frames = [payload]
    elif case == "short payload":
        guide = guide[:-1]
        frames = [payload, guide]
    elif case == "too small":
        description, guide = raw_guide(photo(60, 60))
        frames = [payload, guide]
    elif case == "not a map":
        description = "photo.png"
    elif case == "not an image file":
        description, frames = {"format": "encoded"}, [payload, b"not an image"]
    elif case == "four frames":
        frames = [payload, guide, b"x"]
    if case != "three frames without guide":
        header["guide"] = description
    reply, _data, _events = send_frames(daemon.endpoint, header, *frames)
    assert reply["type"] == "error" and reply["code"] == code and words in reply["message"], reply
    assert ping(daemon.endpoint)["type"] == "pong"


def test_channel_targets_and_laplacian_normalization_over_the_wire(daemon):
    info = call(daemon.endpoint, request("info"))[0]
    assert info["layer_channels"]["mixed0"] == 256 and info["layer_channels"]["mixed5"] == 768
    image = sample("uint8", 3)
    reply, data = call(daemon.endpoint, *dream_request(image, {**TINY, "layers": {"mixed5[12,87]": 1.0, "mixed2": 0.5},
                                                                "normalize": "laplacian"}))
    assert reply["type"] == "result" and reply["stats"]["normalize"] == "laplacian", reply
    assert reply["stats"]["layers"] == {"mixed2": 0.5, "mixed5[12,87]": 1.0}
    assert not np.array_equal(result_array(reply, data), image)
    reply, _ = call(daemon.endpoint, *dream_request(image, {**TINY, "layers": {"mixed5[12,9999]": 1.0}}))
    assert reply["code"] == "INVALID_PARAMS" and "mixed5 has 768 channels (0..767)" in reply["message"], reply
    reply, _ = call(daemon.endpoint, *dream_request(image, {**TINY, "normalize": "median"}))
    assert reply["code"] == "INVALID_PARAMS" and "normalize" in reply["message"], reply
