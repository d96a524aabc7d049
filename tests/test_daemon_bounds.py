"""Issue 22's fuzz findings against one real deepdream-daemon: what one request may cost it (targets, a guide of
any shape, a zoom whose client reads nothing) and the wire's rules for null and repeated keys."""

import numpy as np
import pytest
import zmq

from bench.daemon_process import start_daemon
from images import photo
from raw_wire import LONG, TINY, call, connect, dream_request, ping, receive, request, send, send_frames, wait_for

FRAME_WAIT_S = 2  # the daemon's --frame-wait here: how long a zoom waits for a client that takes no frame
PROMPTLY_S = 30


@pytest.fixture(scope="module")
def daemon():
    with start_daemon("--frame-wait", str(FRAME_WAIT_S)) as process:
        yield process


def resident(daemon, key):
    """The daemon's VmRSS or VmHWM (its peak), in MiB."""
    with open(f"/proc/{daemon.process.pid}/status") as status:
        return next(int(line.split()[1]) // 1024 for line in status if line.startswith(key))


def channel_targets(layer, count, first=0):
    return {f"{layer}[{channel}]": 1.0 for channel in range(first, first + count)}


def test_more_targets_than_the_limit_are_refused_at_once_and_a_dream_at_the_limit_is_served(daemon):
    limits = call(daemon.endpoint, request("info"))[0]["limits"]
    assert limits["max_targets"] == 16 and limits["max_target_chars"] == 1000
    image = photo(96, 96)
    # The fuzz's dream: 2,500 channel targets in a 55 KB header held the daemon for minutes.
    many = {**channel_targets("mixed10", 2048), **channel_targets("mixed9", 452)}
    reply, _ = call(daemon.endpoint, *dream_request(image, {**TINY, "layers": many}), timeout=5)
    assert reply["code"] == "INVALID_PARAMS", reply
    assert "2500 targets; a dream may name at most 16" in reply["message"] and "in one key" in reply["message"]
    reply, _ = call(daemon.endpoint, *dream_request(image, {**TINY, "layers": channel_targets("mixed3", 17)}), 5)
    assert reply["code"] == "INVALID_PARAMS" and "17 targets" in reply["message"], reply

    reply, _ = call(daemon.endpoint, *dream_request(image, {**TINY, "layers": channel_targets("mixed3", 16)}))
    assert reply["type"] == "result" and len(reply["stats"]["layers"]) == 16, reply
    # A new set of 16, cancelled as it starts (compiling: its first event is the "starting" heartbeat, or its
    # first step): it ends at the step after, never dreaming its 1000.
    sock = connect(daemon.endpoint)
    try:
        header, payload = dream_request(image, {**LONG, "layers": channel_targets("mixed4", 16)}, progress=True)
        send(sock, header, payload)
        replies = [receive(sock, PROMPTLY_S)[0]]
        while replies[-1].get("queued", 0):  # the first heartbeat may come before the worker takes it
            replies.append(receive(sock, PROMPTLY_S)[0])
        send(sock, request("cancel", target=header["id"]))
        while replies[-1]["id"] != header["id"] or replies[-1]["type"] == "progress":
            replies.append(receive(sock, PROMPTLY_S)[0])
    finally:
        sock.close()
    assert any(reply["type"] == "cancelled" and reply["found"] for reply in replies), replies
    assert replies[-1]["code"] == "CANCELLED", replies[-1]
    assert max(reply["step"] for reply in replies if reply["type"] == "progress") <= 3
    assert ping(daemon.endpoint)["busy"] is False


@pytest.mark.parametrize("params, guide, code, words", [
    ({"layers": None}, "absent", "INVALID_PARAMS", "got null; leave the key out"),
    ({"layers": ["mixed4", "mixed4"]}, "absent", "INVALID_PARAMS", "a second time; name each target once"),
    ({"layers": {"mixed5[1,2]": 1.0, "mixed5[2, 1]": 1.0}}, "absent", "INVALID_PARAMS", "a second time"),
    ({"layers": {"mixed5[" + ",".join(map(str, range(300))) + "]": 1.0}}, "absent", "INVALID_PARAMS",
     "at most 1000 characters"),
    ({}, "null with a third frame", "BAD_REQUEST", "two with `guide`"),
    ({}, "null", "BAD_REQUEST", "`guide` must be a map"),
])
def test_null_keys_and_repeated_targets_are_refused_as_the_rules_say(daemon, params, guide, code, words):
    header, payload = dream_request(photo(80, 90), {**TINY, **params})
    frames = [payload]
    if guide != "absent":
        header["guide"] = None
    if guide == "null with a third frame":
        frames.append(photo(80, 90).tobytes())
    reply, _data, _events = send_frames(daemon.endpoint, header, *frames)
    assert reply["type"] == "error" and reply["code"] == code and words in reply["message"], reply
    assert ping(daemon.endpoint)["state"] == "ready"


def test_a_guide_of_any_shape_is_scaled_down_before_a_large_copy_exists(daemon):
    """A 75 x 533,333 gray guide (40 MB, under the pixel limit) on a 96x96 dream: its full-size float RGB copy
    was 0.5 GB and the dream's peak +1.4 GB, with +0.6 GB kept; measured now +29 MiB peak (bfloat16)."""
    guide = np.random.default_rng(2).integers(0, 256, (75, 533_333, 1), dtype=np.uint8)
    description = {"format": "raw", "dtype": "uint8", "width": guide.shape[1], "height": guide.shape[0],
                   "channels": 1}
    header, payload = dream_request(photo(96, 96), {**TINY, "layers": {"mixed4": 1.0}})
    header["guide"] = description
    before = resident(daemon, "VmRSS")
    try:
        with open(f"/proc/{daemon.process.pid}/clear_refs", "w") as reset:
            reset.write("5")  # its peak starts again from now
    except OSError:
        pytest.skip("this kernel does not let a test reset another process's peak memory")
    reply, _data, _events = send_frames(daemon.endpoint, header, payload, guide.tobytes(), timeout=60)
    assert reply["type"] == "result", reply
    # The guide's own 40 MB frame is in the peak (received, then read in place); a float RGB copy would be 480.
    assert resident(daemon, "VmHWM") - before < 250, "the guide grew to a large array in the daemon"
    assert resident(daemon, "VmRSS") - before < 150


def rgba_float(height, width):
    rgb = photo(height, width).astype(np.float32) / 255.0
    return np.concatenate([rgb, np.ones((height, width, 1), np.float32)], axis=2)


def test_a_zoom_whose_client_reads_nothing_holds_a_few_frames_and_stops(daemon):
    """The fuzz's finding: 40 frames for a client that stays connected but never reads piled up in the
    daemon (+190 MiB), and `frames` may be 10,000. Now the zoom waits for the client to take each frame
    (ZeroMQ queues a few), then stops with CANCELLED, and what was sent still arrives, in order."""
    image = rgba_float(256, 256)  # 1 MiB a frame: the system's socket buffers hold only a few
    header, payload = dream_request(image, {**TINY, "octaves": 1, "steps": 1})
    header.update(op="zoom", zoom={"frames": 200, "scale": 1.05})
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RCVHWM, 1)  # this client's ZeroMQ reads nothing ahead for it either
    sock.setsockopt(zmq.RCVBUF, 64 * 1024)
    sock.connect(daemon.endpoint)
    try:
        send(sock, header, payload)
        wait_for(lambda: ping(daemon.endpoint)["busy"], PROMPTLY_S, "the zoom starts")
        wait_for(lambda: not ping(daemon.endpoint)["busy"], 60, "the zoom stops for a client that reads nothing")
        indices = []
        while True:
            reply, data = receive(sock, PROMPTLY_S)
            if reply["type"] != "frame":
                break
            assert len(data) == 256 * 256 * 4 * 4
            indices.append(reply["index"])
        assert not sock.poll(500), "nothing comes after the final reply"
    finally:
        sock.close()
    assert reply["type"] == "error" and reply["code"] == "CANCELLED" and "--frame-wait" in reply["message"], reply
    assert indices == list(range(1, len(indices) + 1)), "the frames sent all arrive, in order"
    assert len(indices) < 40, f"{len(indices)} of 200 frames were dreamed for a client that read none"
    assert "took no frame for 2 s; stopping the zoom" in daemon.log_text()


def test_results_for_a_client_that_reads_late_all_arrive(daemon):
    """ZeroMQ queues SEND_HWM (8) messages for a client: the results beyond wait in the daemon, in order."""
    sock = connect(daemon.endpoint)
    try:
        sent = []
        for seed in range(12):
            header, payload = dream_request(photo(80, 80, seed=seed), {**TINY, "seed": seed})
            send(sock, header, payload)
            sent.append(header["id"])
        wait_for(lambda: ping(daemon.endpoint)["queued"] == 0 and not ping(daemon.endpoint)["busy"], 120,
                 "the twelve dreams are done")
        received = [receive(sock, PROMPTLY_S)[0] for _ in sent]
    finally:
        sock.close()
    assert [reply["id"] for reply in received] == sent and all(reply["type"] == "result" for reply in received)
