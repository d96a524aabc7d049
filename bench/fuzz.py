"""python -m bench.fuzz [--minutes 10] [--json OUT]: fuzz a real deepdream-daemon.

The generators here are the ones tests/test_fuzz.py runs for about a minute in
CI; this runs them for as long as asked against a freshly started daemon
(random weights), restarting it should it ever exit (each exit is counted: the
figure must be 0), and reports the messages sent, the replies by type and code,
the answers that broke the protocol's promises, and the daemon's resident
memory before and after.

A message is a valid request with up to three of its fields mutated: replaced by
a value of the wrong type (a list, a map, deep nesting, a huge or unicode
string, binary), deleted, or joined by a stray key; the header frame may also be
plain garbage, a non-map, or over the 64 KiB cap, and the frames may come in odd
numbers, over REQ or DEALER, with or without the empty delimiter. Valid dreams
are kept tiny (75-96 px, one octave, one or two steps) so that they are fuzzed
too without costing minutes."""

import argparse
import collections
import io
import json
import sys
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import msgpack
import zmq
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from PIL import Image

from deepdream_client.protocol import raw_payload_size
from deepdream_common.vocabulary import ERROR_CODES, INTERNAL

REPLY_TIMEOUT_S = 120  # a dream may wait behind another fuzzed (tiny) dream
FINAL_TYPES = ("pong", "info", "result", "cancelled", "error")
HEALTH_CHECKS_OFF = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example]

# -- values ----------------------------------------------------------------------------------------


class Deep:
    """A list nested `depth` deep, written straight as msgpack bytes: msgpack's own
    packer stops at 511 levels, the daemon must cope with whatever arrives."""

    def __init__(self, depth):
        self.depth = depth


def encode(value):
    """msgpack bytes of `value`, which may hold Deep values anywhere."""
    packer = msgpack.Packer(use_bin_type=True)
    if isinstance(value, Deep):
        return b"\x91" * value.depth + b"\x90"
    if isinstance(value, dict):
        return packer.pack_map_header(len(value)) + b"".join(packer.pack(key) + encode(item)
                                                             for key, item in value.items())
    if isinstance(value, list):
        return packer.pack_array_header(len(value)) + b"".join(encode(item) for item in value)
    return packer.pack(value)


TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=24)  # msgpack cannot carry lone surrogates
# Huge strings: up to past the header cap, of characters chosen to hurt (newlines, bidi overrides, emoji).
HUGE_TEXT = st.builds(lambda char, count: char * count, st.sampled_from(["x", "\n", "ü", "\u202e", "\x00", "🐍"]),
                      st.integers(1_000, 15_000))  # the "huge" header shape goes past the 64 KiB cap
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-2**63, 2**64 - 1), st.floats(), TEXT,
                    st.binary(max_size=24))
NESTED = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
                      max_leaves=10)
# Wrong for any field: what the fuzz puts in place of a valid value.
WEIRD = st.one_of(NESTED, HUGE_TEXT, st.integers(50, 3_000).map(Deep), st.binary(max_size=24))
KEYS = st.one_of(TEXT, st.sampled_from(["v", "op", "id", "target", "progress", "params", "image", "steps",
                                        "layers", "format", "dtype", "width", "preview", "interval", "max_side",
                                        "dream_size", "guide", "zoom", "frames", "scale", "rotate", "first_index",
                                        "model", "normalize"]))

# -- valid requests --------------------------------------------------------------------------------

IDS = st.one_of(st.uuids().map(str), TEXT.filter(bool))
LAYER_SETS = st.sampled_from([None, ["mixed2"], {"mixed3": 1.0, "mixed5": -0.5},  # each new set compiles once
                              {"mixed3[1,5]": 1.0}, {"mixed3[9999]": 1.0}, {"mixed3[": 1.0}])
TINY_PARAMS = st.fixed_dictionaries({"octaves": st.just(1), "steps": st.integers(1, 2)}, optional={
    "layers": LAYER_SETS.filter(bool), "octave_scale": st.floats(1.01, 4.0), "step_size": st.floats(1e-5, 1.0),
    "tile_size": st.sampled_from([0, 128]), "jitter": st.integers(0, 40), "seed": st.integers(0, 2**32 - 1),
    "detail": st.booleans(), "dream_size": st.sampled_from([0, 0.1, 100]),  # these images are under 0.1 MP
    "normalize": st.sampled_from(["std", "laplacian", "fourier"]),
    "model": st.sampled_from(["inception_v3", "no_such_network", "../etc/passwd"])})
# A dream's optional `preview` map (None: left out), either key optional.
PREVIEWS = st.one_of(st.none(), st.fixed_dictionaries({}, optional={
    "interval": st.floats(0.5, 60.0), "max_side": st.integers(32, 2048)}))
RAW_IMAGE = st.builds(lambda width, height, channels, dtype: {"format": "raw", "dtype": dtype, "width": width,
                                                              "height": height, "channels": channels},
                      st.integers(75, 96), st.integers(75, 96), st.integers(1, 4),
                      st.sampled_from(["uint8", "uint16", "float32"]))
ENCODED_IMAGE = st.builds(dict, format=st.just("encoded"))  # a fresh dict each time: mutations change it
GUIDES = st.one_of(st.none(), st.none(), RAW_IMAGE, ENCODED_IMAGE)  # a guide image: a third frame
ZOOMS = st.fixed_dictionaries({"frames": st.integers(1, 2)}, optional={
    "scale": st.floats(1.0, 2.0), "rotate": st.floats(-45.0, 45.0), "first_index": st.integers(0, 10),
    "frame_delay_ms": st.integers(1, 1000)})


def _request(op, request_id, **fields):
    return {"v": 1, "op": op, "id": request_id, **fields}


VALID_HEADERS = st.one_of(
    st.builds(_request, st.sampled_from(["ping", "info"]), IDS),
    st.builds(lambda request_id, target: _request("cancel", request_id, target=target), IDS, IDS),
    st.builds(lambda request_id, progress, params, image, preview, guide: _request(
        "dream", request_id, progress=progress, params=params, image=image,
        **({} if preview is None else {"preview": preview}), **({} if guide is None else {"guide": guide})),
        IDS, st.booleans(), TINY_PARAMS, st.one_of(RAW_IMAGE, ENCODED_IMAGE), PREVIEWS, GUIDES),
    st.builds(lambda request_id, progress, params, image, zoom: _request(
        "zoom", request_id, progress=progress, params=params, image=image, zoom=zoom),
        IDS, st.booleans(), TINY_PARAMS, st.one_of(RAW_IMAGE, ENCODED_IMAGE), ZOOMS),
)


def _png(width, height):
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (90, 140, 200)).save(buffer, format="PNG")
    return buffer.getvalue()


def png_claiming(width, height):
    """A small PNG file whose header says it is width x height: a decompression bomb's
    first bytes, with a valid checksum so that only the size can give it away."""
    good = _png(80, 80)
    header = b"IHDR" + width.to_bytes(4, "big") + height.to_bytes(4, "big") + good[24:29]
    return good[:12] + header + zlib.crc32(header).to_bytes(4, "big") + good[33:]


# Files for {"format": "encoded"}: a good PNG, one whose header claims 30000x30000, formats
# that must never be decoded (EPS would start Ghostscript), and damaged bytes.
FILES = st.sampled_from([
    _png(80, 80),
    png_claiming(30_000, 30_000),
    b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 100 100\nshowpage\n",
    b"GIF89a\x50\x00\x50\x00\x00\x00\x00;",
    _png(80, 80)[:60],
])

# -- messages --------------------------------------------------------------------------------------


@dataclass
class Message:
    kind: str  # "REQ" or "DEALER"
    frames: list  # what the client socket sends (a REQ socket adds the delimiter itself)

    def __repr__(self):  # Hypothesis prints failing examples: keep huge frames readable
        return f"Message({self.kind}, {[frame[:80] + (b'...' if len(frame) > 80 else b'') for frame in self.frames]})"


def _mutate(draw, header):
    """Up to three changes to a valid header, at its top or inside params / image."""
    for _ in range(draw(st.integers(0, 3))):
        where = draw(st.sampled_from(["", "params", "image", "guide", "zoom"]))
        target = header[where] if where and isinstance(header.get(where), dict) else header
        key = draw(st.one_of(st.sampled_from(sorted(target)), KEYS) if target else KEYS)
        action = draw(st.sampled_from(["weird", "weird", "delete", "extra"]))
        if action == "delete":
            target.pop(key, None)
        elif action == "extra":
            target[draw(TEXT)] = draw(NESTED)
        else:
            target[key] = draw(WEIRD)


def _payload(draw, header, key="image"):
    """The payload frame: for a dream usually the right one for its image (or guide), else none or junk."""
    choice = draw(st.sampled_from(["fitting", "fitting", "none", "junk", "file", "short"]))
    image = header.get(key)
    if choice == "none":
        return None
    if choice == "junk":
        return draw(st.binary(max_size=64))
    if choice == "file" or (isinstance(image, dict) and image.get("format") == "encoded"):
        return draw(FILES)
    try:
        size = raw_payload_size(image)
    except Exception:  # noqa: BLE001  a mutated description: any bytes will do
        return draw(st.binary(max_size=64))
    if size > 1_000_000:
        return bytes(64)
    fill = bytes([draw(st.sampled_from([0, 0x3F, 0x7F, 0xFF]))])  # 0x3F3F3F3F is 0.75 in float32, 0xFF.. NaN
    return fill * (size - (choice == "short"))


@st.composite
def messages(draw):
    """One message as a client might send it, mostly almost valid."""
    kind = draw(st.sampled_from(["REQ", "DEALER"]))
    header = draw(VALID_HEADERS)
    _mutate(draw, header)
    shape = draw(st.sampled_from(["map"] * 6 + ["garbage", "not a map", "huge"]))
    if shape == "map":
        frame = encode(header)
    elif shape == "garbage":
        frame = draw(st.binary(max_size=64))
    elif shape == "not a map":
        frame = encode(draw(WEIRD))
    else:
        frame = encode({**header, "pad": "x" * 70_000})  # over the 64 KiB header cap
    odd = draw(st.sampled_from([False] * 4 + [True]))  # now and then a payload on a ping, or extra frames
    payload = _payload(draw, header) if header.get("op") in ("dream", "zoom") or odd else None
    guide = _payload(draw, header, "guide") if "guide" in header else None
    extra = draw(st.lists(st.binary(max_size=8), min_size=1, max_size=3)) if odd else []
    frames = [frame] + [data for data in (payload, guide) if data is not None] + extra
    if kind == "DEALER" and draw(st.booleans()):
        frames.insert(0, b"")
    return Message(kind, frames)


# -- speaking and judging --------------------------------------------------------------------------


def exchange(endpoint, message, timeout=REPLY_TIMEOUT_S):
    """Send `message` on a fresh socket; (final reply header or None on silence, reply frames)."""
    sock = zmq.Context.instance().socket(zmq.REQ if message.kind == "REQ" else zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    try:
        sock.connect(endpoint)
        sock.send_multipart(message.frames)
        deadline = time.monotonic() + timeout
        while sock.poll(max(0, int((deadline - time.monotonic()) * 1000))):
            frames = sock.recv_multipart()
            header = msgpack.unpackb(frames[len(_envelope(message.frames, frames))])
            if header.get("type") in ("progress", "frame") and message.kind == "DEALER":
                continue  # a DEALER hears its progress (and a zoom's frames), then the final reply
            return header, frames
        return None, []
    finally:
        sock.close()


def _envelope(sent, frames):
    """The envelope a reply came back in: the frames up to its first empty one (the delimiter), where the
    request began with the same frames: a DEALER's frames before an empty one are taken for relays' hops
    (protocol.md section 3), and their reply goes back through them. Empty when it has none."""
    for index, frame in enumerate(frames[:-1]):
        if frame == b"":
            return frames[:index + 1] if frames[:index + 1] == sent[:index + 1] else []
    return []


def verdict(message, reply, frames):
    """What is wrong with this answer to `message`, or None when the protocol's promises hold:
    one final reply, a known code and a message for the user, the id echoed (or null when the
    header could not be read), in the envelope the request came in. The daemon's own failures
    (INTERNAL) count as wrong here: the fuzz is there to find them."""
    if reply is None:
        return "no reply"
    kind = reply.get("type")
    if kind == "progress":  # a REQ socket asking for progress is refused, so it never gets one either
        return "a progress event as the final reply"
    if kind not in FINAL_TYPES + ("progress",):
        return f"unknown reply type {kind!r}"
    if kind == "error":
        if reply.get("code") not in ERROR_CODES:
            return f"unknown error code {reply.get('code')!r}"
        if reply["code"] == INTERNAL:
            return f"INTERNAL: {reply.get('message')}"
        if not isinstance(reply.get("message"), str) or not reply["message"]:
            return "an error without a message"
    if reply.get("id") is not None and not isinstance(reply["id"], str):
        return f"a reply id that is not a string: {reply['id']!r}"
    if message.kind == "DEALER" and (frames[0] == b"") != (message.frames[0] == b""):
        return "the reply came in another envelope than the request"
    return None


def outcome(reply):
    """A reply's name for the counts: its type, and an error's code."""
    if reply is None:
        return "silence"
    return f"error {reply.get('code')}" if reply.get("type") == "error" else str(reply.get("type"))


def fuzz_settings(examples, derandomize):
    """Hypothesis settings for one batch: no deadline (a dream takes seconds), no example
    database (runs are reproducible from the code alone), no shrinking in the long run."""
    return settings(max_examples=examples, deadline=None, database=None, derandomize=derandomize,
                    suppress_health_check=HEALTH_CHECKS_OFF,
                    phases=(Phase.generate,) if not derandomize else tuple(Phase))


# -- the long run ----------------------------------------------------------------------------------


def run(minutes, batch=100):
    from .daemon_side import WarmDaemon
    from .memory import rss_mib
    from .report import machine

    counts, problems, exits = collections.Counter(), collections.Counter(), []
    daemon = WarmDaemon(precision="auto")
    rss_before = rss_mib(daemon.process.pid)
    started = time.monotonic()
    stop_at = started + minutes * 60
    rss_by_minute = []  # does memory level off, or keep growing with what the fuzz sends?

    @fuzz_settings(batch, derandomize=False)
    @given(messages())
    def one(message):
        nonlocal daemon
        if time.monotonic() > stop_at:
            return
        if time.monotonic() - started >= 60 * (len(rss_by_minute) + 1):
            rss_by_minute.append(round(rss_mib(daemon.process.pid)))
        reply, frames = exchange(daemon.endpoint, message)
        counts[outcome(reply)] += 1
        problem = verdict(message, reply, frames)
        if problem:
            problems[problem[:120]] += 1
        if daemon.process.poll() is not None:
            exits.append({"code": daemon.process.returncode, "message": repr(message)[:300],
                          "log_tail": Path(daemon.log_path).read_text(errors="replace")[-3000:]})
            daemon.stop()
            daemon = WarmDaemon(precision="auto")

    while time.monotonic() < stop_at:
        one()
    seconds = time.monotonic() - started
    alive = daemon.process.poll() is None
    pong = daemon.client.ping(timeout=5) if alive else None
    rss_after = rss_mib(daemon.process.pid) if alive else None
    daemon.stop()
    return {"machine": machine(), "minutes": round(seconds / 60, 2), "messages": sum(counts.values()),
            "per_second": round(sum(counts.values()) / seconds, 1), "replies": dict(counts.most_common()),
            "problems": dict(problems.most_common()), "daemon_exits": len(exits), "exits": exits,
            "alive_after": bool(pong and pong.get("state") == "ready"),
            "rss_mib_before": round(rss_before, 1), "rss_mib_after": rss_after and round(rss_after, 1),
            "rss_mib_by_minute": rss_by_minute}


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.fuzz", description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="how long to fuzz (default 10)")
    parser.add_argument("--json", metavar="OUT", help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    result = run(args.minutes)
    print("Machine: " + ", ".join(f"{key} {value}" for key, value in result["machine"].items()))
    print(f"{result['messages']} messages in {result['minutes']} min ({result['per_second']}/s); "
          f"daemon exits: {result['daemon_exits']}; alive and ready after: {result['alive_after']}")
    print(f"daemon RSS: {result['rss_mib_before']} MiB after start-up, {result['rss_mib_after']} MiB after the run; "
          f"each minute: {result['rss_mib_by_minute']}")
    print("replies: " + ", ".join(f"{name} {count}" for name, count in result["replies"].items()))
    print("problems: " + (", ".join(f"{name} ({count})" for name, count in result["problems"].items()) or "none"))
    if args.json:
        with open(args.json, "w") as file:
            json.dump(result, file, indent=2)
    return 0 if not result["daemon_exits"] and not result["problems"] and result["alive_after"] else 1


if __name__ == "__main__":
    sys.exit(main())
