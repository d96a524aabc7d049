"""Wire protocol v1: the frames every client and the daemon exchange.

Pure Python with msgpack only: the daemon, the client library, the CLI and the
GIMP plug-in (inside GIMP's own Python) all import this one module, so the
protocol has a single definition. docs/protocol.md is its prose form."""

import msgpack

from .vocabulary import (  # noqa: F401  re-exported: the protocol's names, as clients know them
    BAD_REQUEST, DEFAULT_ENDPOINT, DTYPE_SIZES, ERROR_CODES, IMAGE_FORMATS, MAX_HEADER_BYTES, OPS, RAW, STOP_CODES,
    STOP_MESSAGES,
)
from .vocabulary import PROTOCOL_VERSION as VERSION


SHOWN_CHARS = 60  # how much of a client's value an error message or log line repeats
_SHOWN_DEPTH = 2  # nesting shown before "[...]"


def shown(value, limit=SHOWN_CHARS):
    """A client's value as an error message or a log line may repeat it: JSON-like
    (null, true, 3, "text", [1, 2], {"k": 1}), on one line, at most `limit`
    characters, nested at most two levels. Whatever the client sent (a string of
    64 KiB, a list nested 1000 deep, newlines meant to forge log lines), this
    costs little and cannot fail; Python's reprs (b'..', None) never reach a user."""
    pieces, room = [], [limit + 1]  # one character over the limit is enough to know it was cut

    def put(text):
        pieces.append(text[:max(room[0], 0)])
        room[0] -= len(text)

    def walk(item, depth):
        if room[0] <= 0:
            return
        if item is None:
            put("null")
        elif isinstance(item, bool):
            put("true" if item else "false")
        elif isinstance(item, int):
            put(str(item) if abs(item) < 10**30 else f"<a {item.bit_length()}-bit integer>")
        elif isinstance(item, float):
            put(repr(item))
        elif isinstance(item, str):
            put('"' + "".join(_escaped(char) for char in item[:room[0]]) + '"')
        elif isinstance(item, (bytes, bytearray, memoryview)):
            put(f"<binary, {len(item)} bytes>")
        elif isinstance(item, (list, tuple, dict)):
            is_map = isinstance(item, dict)
            opening, closing = "{}" if is_map else "[]"
            if depth >= _SHOWN_DEPTH:
                put(opening + "..." + closing)
                return
            put(opening)
            for number, entry in enumerate(item.items() if is_map else item):
                if room[0] <= 0:
                    break
                if number:
                    put(", ")
                if is_map:
                    walk(entry[0], depth + 1)
                    put(": ")
                    entry = entry[1]
                walk(entry, depth + 1)
            put(closing)
        else:
            put(f"<{type(item).__name__}>")

    walk(value, 0)
    text = "".join(pieces)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _escaped(char):
    """One character of a shown string: printable ones as they are, the rest (newlines,
    control and bidirectional-override characters) as escapes that cannot forge a line."""
    if char in '"\\':
        return "\\" + char
    if char.isprintable():
        return char
    return {"\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(char) or (
        f"\\u{ord(char):04x}" if ord(char) <= 0xFFFF else f"\\U{ord(char):08x}")


class ProtocolError(Exception):
    """A message that breaks the protocol; `code` is the error code to answer with."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code
        self.message = message


_KIND_NAMES = {str: "a string", int: "an integer", bool: "true or false", dict: "a map"}
_ABSENT = object()


def field(mapping, key, kind, name=None, default=_ABSENT, code=BAD_REQUEST):
    """mapping[key], checked to be of `kind` before anything uses it (a list where a
    string belongs must not reach a dict lookup). Types are exact: true is not an
    integer, 1.0 is not an integer. A missing key gives `default`, or an error when
    there is none; `name` is how the message calls the key (default `key`)."""
    name = name or key
    value = mapping.get(key, _ABSENT)
    if value is _ABSENT:
        if default is _ABSENT:
            raise ProtocolError(code, f"the request needs `{name}` ({_KIND_NAMES[kind]})")
        return default
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ProtocolError(code, f"`{name}` must be {_KIND_NAMES[kind]}, got {shown(value)}")
    return value


def pack(header):
    return msgpack.packb(header, use_bin_type=True)


def unpack(frame):
    """Decode a header frame into a dict, refusing anything oversized or not a map."""
    if len(frame) > MAX_HEADER_BYTES:
        raise ProtocolError(BAD_REQUEST, f"the header frame is {len(frame)} bytes; the limit is {MAX_HEADER_BYTES}")
    try:
        header = msgpack.unpackb(
            frame, raw=False, strict_map_key=True,
            max_str_len=MAX_HEADER_BYTES, max_bin_len=MAX_HEADER_BYTES,
            max_array_len=4096, max_map_len=4096, max_ext_len=0,
        )
    except Exception as error:  # noqa: BLE001  msgpack raises several unrelated types for bad input
        raise ProtocolError(BAD_REQUEST, f"the header frame is not valid msgpack ({type(error).__name__})") from None
    if not isinstance(header, dict):
        raise ProtocolError(BAD_REQUEST, f"the header must be a msgpack map, got {shown(header)}")
    return header


def request(op, request_id, **fields):
    return {"v": VERSION, "op": op, "id": request_id, **fields}


def error(request_id, code, message):
    return {"type": "error", "id": request_id, "code": code, "message": message}


def stopped(request_id, reason):
    """The error reply of a dream stopped early; `reason` is a key of STOP_CODES."""
    return error(request_id, STOP_CODES[reason], STOP_MESSAGES[reason])


def raw_image(width, height, channels, dtype):
    """The `image` description of a raw payload."""
    return {"format": RAW, "dtype": dtype, "width": width, "height": height, "channels": channels}


def raw_payload_size(image):
    """Bytes a raw payload must have, from its `image` description; the
    description is checked first, so nothing is decoded on a lie."""
    if not isinstance(image, dict):
        raise ProtocolError(BAD_REQUEST, "`image` must be a map describing the payload")
    for key in ("width", "height", "channels"):
        if field(image, key, int, f"image.{key}") < 1:
            raise ProtocolError(BAD_REQUEST, f"`image.{key}` must be a positive whole number, got {image[key]}")
    if image["channels"] > 4:
        raise ProtocolError(BAD_REQUEST, f"`image.channels` must be 1..4, got {image['channels']}")
    dtype = field(image, "dtype", str, "image.dtype")
    if dtype not in DTYPE_SIZES:
        raise ProtocolError(BAD_REQUEST, f"`image.dtype` must be one of {', '.join(DTYPE_SIZES)}, "
                                           f"got {shown(dtype)}")
    return image["width"] * image["height"] * image["channels"] * DTYPE_SIZES[dtype]
