"""Wire protocol v1: the frames every client and the daemon exchange.

Pure Python with msgpack only: the daemon, the client library, the CLI and the
GIMP plug-in (inside GIMP's own Python) all import this one module, so the
protocol has a single definition. docs/protocol.md is its prose form."""

import msgpack

VERSION = 1
DEFAULT_ENDPOINT = "tcp://127.0.0.1:5555"
MAX_HEADER_BYTES = 64 * 1024

OPS = ("ping", "info", "dream", "cancel")
ERROR_CODES = (
    "BAD_REQUEST", "UNSUPPORTED_VERSION", "UNKNOWN_OP", "INVALID_PARAMS", "UNKNOWN_LAYER",
    "IMAGE_DECODE", "TOO_LARGE", "QUEUE_FULL", "NOT_READY", "CANCELLED", "OUT_OF_MEMORY",
    "SHUTTING_DOWN", "INTERNAL",
)
DTYPE_SIZES = {"uint8": 1, "uint16": 2, "float32": 4}
IMAGE_FORMATS = ("raw", "encoded")


class ProtocolError(Exception):
    """A message that breaks the protocol; `code` is the error code to answer with."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code
        self.message = message


def pack(header):
    return msgpack.packb(header, use_bin_type=True)


def unpack(frame):
    """Decode a header frame into a dict, refusing anything oversized or not a map."""
    if len(frame) > MAX_HEADER_BYTES:
        raise ProtocolError("BAD_REQUEST", f"the header frame is {len(frame)} bytes; the limit is {MAX_HEADER_BYTES}")
    try:
        header = msgpack.unpackb(
            frame, raw=False, strict_map_key=True,
            max_str_len=MAX_HEADER_BYTES, max_bin_len=MAX_HEADER_BYTES,
            max_array_len=4096, max_map_len=4096, max_ext_len=0,
        )
    except Exception as error:  # msgpack raises several unrelated types for bad input
        raise ProtocolError("BAD_REQUEST", f"the header frame is not valid msgpack ({type(error).__name__})") from None
    if not isinstance(header, dict):
        raise ProtocolError("BAD_REQUEST", f"the header must be a msgpack map, got {type(header).__name__}")
    return header


def request(op, request_id, **fields):
    return {"v": VERSION, "op": op, "id": request_id, **fields}


def error(request_id, code, message):
    return {"type": "error", "id": request_id, "code": code, "message": message}


def raw_image(width, height, channels, dtype):
    """The `image` description of a raw payload."""
    return {"format": "raw", "dtype": dtype, "width": width, "height": height, "channels": channels}


def raw_payload_size(image):
    """Bytes a raw payload must have, from its `image` description; the
    description is checked first, so nothing is decoded on a lie."""
    if not isinstance(image, dict):
        raise ProtocolError("BAD_REQUEST", "`image` must be a map describing the payload")
    for key in ("width", "height", "channels"):
        value = image.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ProtocolError("BAD_REQUEST", f"`image.{key}` must be a positive whole number, got {value!r}")
    if image["channels"] > 4:
        raise ProtocolError("BAD_REQUEST", f"`image.channels` must be 1..4, got {image['channels']}")
    dtype = image.get("dtype")
    if dtype not in DTYPE_SIZES:
        raise ProtocolError("BAD_REQUEST", f"`image.dtype` must be one of {', '.join(DTYPE_SIZES)}, got {dtype!r}")
    return image["width"] * image["height"] * image["channels"] * DTYPE_SIZES[dtype]
