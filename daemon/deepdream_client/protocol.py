"""Wire protocol v1: the frames every client and the daemon exchange.

Pure Python with msgpack only: the daemon, the client library, the CLI and the
GIMP plug-in (inside GIMP's own Python) all import this one module, so the
protocol has a single definition. docs/protocol.md is its prose form."""

import msgpack

from deepdream_common.quoting import shown
from deepdream_common.vocabulary import (  # noqa: F401  re-exported: the protocol's names, as clients know them
    BAD_REQUEST, DEFAULT_ENDPOINT, DTYPE_SIZES, ERROR_CODES, IMAGE_FORMATS, MAX_HEADER_BYTES, OPS, RAW, STOP_CODES,
    STOP_MESSAGES,
)
from deepdream_common.vocabulary import PROTOCOL_VERSION as VERSION


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


def checked_options(value, name, table):
    """A request's map of numeric options (`preview`, `zoom`) checked against `table`
    ({key: vocabulary Param}): left-out keys at their defaults, each value of its
    kind and in its range (NaN never is); ProtocolError BAD_REQUEST naming the key."""
    keys = " and ".join(table) if len(table) <= 2 else ", ".join(table)
    if not isinstance(value, dict):
        every = "both" if len(table) == 2 else "all"
        raise ProtocolError(BAD_REQUEST, f"`{name}` must be a map with the keys {keys} ({every} optional), "
                                         f"got {shown(value)}")
    for key in value:
        if key not in table:
            raise ProtocolError(BAD_REQUEST, f"`{name}` has an unknown key {shown(key)}; its keys are {keys}")
    options = {}
    for key, param in table.items():
        number = value.get(key, param.default)
        kinds = (int,) if param.kind is int else (int, float)
        if isinstance(number, bool) or not isinstance(number, kinds) or not param.low <= number <= param.high:
            kind = "a whole number" if param.kind is int else "a number"
            raise ProtocolError(BAD_REQUEST, f"`{name}.{key}` must be {kind} from {param.low:g} to "
                                             f"{param.high:g}, got {shown(number)}")
        options[key] = param.kind(number)
    return options


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


def raw_payload_size(image, name="image"):
    """Bytes a raw payload must have, from its `image` description (`name`: the
    header key it came under, "image" or "guide"); the description is checked
    first, so nothing is decoded on a lie."""
    if not isinstance(image, dict):
        raise ProtocolError(BAD_REQUEST, f"`{name}` must be a map describing the payload")
    for key in ("width", "height", "channels"):
        if field(image, key, int, f"{name}.{key}") < 1:
            raise ProtocolError(BAD_REQUEST, f"`{name}.{key}` must be a positive whole number, got {image[key]}")
    if image["channels"] > 4:
        raise ProtocolError(BAD_REQUEST, f"`{name}.channels` must be 1..4, got {image['channels']}")
    dtype = field(image, "dtype", str, f"{name}.dtype")
    if dtype not in DTYPE_SIZES:
        raise ProtocolError(BAD_REQUEST, f"`{name}.dtype` must be one of {', '.join(DTYPE_SIZES)}, "
                                           f"got {shown(dtype)}")
    return image["width"] * image["height"] * image["channels"] * DTYPE_SIZES[dtype]
