"""Payload frames <-> numpy images.

`inspect` runs on the I/O thread and only reads the description (and an
encoded file's header), so a lying or huge request is refused before any
pixel is allocated; `decode` and `encode` run on the worker thread."""

import io

import numpy as np

from deepdream_client.protocol import ProtocolError, field, raw_payload_size, shown
from deepdream_common.vocabulary import BAD_REQUEST, DTYPE_SIZES, ENCODED, IMAGE_DECODE, MIN_SIDE, RAW, TOO_LARGE

_LITTLE_ENDIAN = {name: np.dtype(name).newbyteorder("<") for name in DTYPE_SIZES}


def inspect(description, payload_size, max_pixels, name="image"):
    """(width, height) of the image a request carries; raises ProtocolError when
    the description is wrong, the payload does not match it, or it is too big.
    `name`: the header key of the description, "image" or "guide" (the second
    image, in the third frame), said in every message."""
    if not isinstance(description, dict):
        raise ProtocolError(BAD_REQUEST, f"`{name}` must be a map describing its payload frame")
    kind = field(description, "format", str, f"{name}.format")
    if kind == RAW:
        expected = raw_payload_size(description, name)
        width, height = description["width"], description["height"]
        check_pixels(width, height, max_pixels, name)
        if min(width, height) < MIN_SIDE:  # refused now, not after waiting its turn in the queue
            raise ProtocolError(BAD_REQUEST, f"the {name} is {width}x{height}; InceptionV3 needs at least {MIN_SIDE} "
                                             f"pixels on each side")
        if payload_size != expected:
            raise ProtocolError(
                BAD_REQUEST,
                f"the {name}'s payload has {payload_size} bytes but a {width}x{height} {description['dtype']} image "
                f"with {description['channels']} channels needs {expected}",
            )
        return width, height
    if kind == ENCODED:
        if not payload_size:
            raise ProtocolError(BAD_REQUEST, f"an encoded {name} needs the file's bytes in its payload frame")
        return None  # size known only after reading the file's header, done by decode()
    raise ProtocolError(BAD_REQUEST, f"`{name}.format` must be \"raw\" or \"encoded\", got {shown(kind)}")


def check_pixels(width, height, max_pixels, name="image"):
    if width * height > max_pixels:
        raise ProtocolError(
            TOO_LARGE,
            f"the {name} is {width}x{height} = {width * height:,} pixels; this daemon accepts at most {max_pixels:,} "
            f"(scale it down, or start the daemon with a larger --max-pixels)",
        )


def decode(description, payload, max_pixels, name="image"):
    """The request's image (or guide) as an H x W x C array."""
    if description["format"] == RAW:
        dtype = _LITTLE_ENDIAN[description["dtype"]]
        shape = (description["height"], description["width"], description["channels"])
        return np.frombuffer(payload, dtype=dtype).reshape(shape)
    return _decode_file(payload, max_pixels, name)


def _decode_file(payload, max_pixels, name):
    # Pillow loads on the worker thread only
    from deepdream_client.image_files import ImageFileError, ImageTooLarge, decode_image

    try:
        return decode_image(io.BytesIO(payload), max_pixels)
    except ImageTooLarge as error:
        raise ProtocolError(TOO_LARGE, f"{name}: {error} (scale it down, or start the daemon with a larger "
                                         f"--max-pixels)") from None
    except ImageFileError as error:
        raise ProtocolError(IMAGE_DECODE, f"the {name}'s payload is {error}") from None


def encode(array, description):
    """(image description, payload bytes) of a result: raw as the request came, else PNG."""
    height, width, channels = array.shape
    if description["format"] == RAW:
        pixels = np.ascontiguousarray(array, dtype=_LITTLE_ENDIAN[description["dtype"]])
        return dict(description), memoryview(pixels).cast("B")
    from deepdream_client.image_files import to_image

    # Encoded requests decode to uint8 of 1-4 channels or 16-bit gray, all of which PNG holds as they are.
    picture, _ = to_image(array, "PNG")
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    result = {"format": ENCODED, "encoding": "png", "width": width, "height": height,
              "channels": channels, "dtype": array.dtype.name}
    return result, buffer.getbuffer()
