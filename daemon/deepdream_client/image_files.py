"""Image files <-> H x W x C numpy arrays for the command line, through Pillow.

Alpha is kept, and 16-bit gray (Pillow's modes I;16 and I) stays 16-bit, so a
deep image is not dreamed through 8 bits. Where an output format cannot hold
what the array has (alpha in JPEG, 16 bits in WebP), the file gets the nearest
thing it can hold and the caller is told what was lost."""

import contextlib
import json
import os
import re
import tempfile
import warnings

import numpy as np
from PIL import Image, ImageOps, PngImagePlugin, UnidentifiedImageError

from deepdream_common.quoting import shown

# The only decoders ever run on an input. Pillow knows dozens more (PCX, SGI, DDS, ...),
# each more code an untrusted file could reach, and it hands EPS to Ghostscript.
DECODED_FORMATS = ("PNG", "JPEG", "WEBP", "TIFF")
FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".tif": "TIFF", ".tiff": "TIFF"}
METADATA_KEY = "deepdream"
_MODES_FOR_FORMAT = {  # what each format stores of our modes; the rest is converted
    "PNG": {"L", "LA", "RGB", "RGBA", "I;16"},
    "JPEG": {"L", "RGB"},
    "WEBP": {"RGB", "RGBA"},
    "TIFF": {"L", "LA", "RGB", "RGBA", "I;16", "F"},
}
_TIFF_DESCRIPTION = 270
# A large PNG is written at zlib's fastest level: at Pillow's default (6) a 24 MP dream took 14.9 s to
# write, at 1 2.1 s, for a file 16% larger (bench/README.md, "Writing the result"). Smaller ones keep the
# default: their time is a fraction of a second either way, and their files stay the smallest.
LARGE_PNG_PIXELS = 4_000_000
LARGE_PNG_LEVEL = 1


class ImageFileError(Exception):
    """An image file that cannot be read or written; the message is for the user."""


class ImageTooLarge(ImageFileError):
    """More pixels than the reader's limit, known from the file's header alone."""


def output_format(path):
    """Pillow's format name for an output path, by its extension."""
    suffix = str(path).lower().rpartition(".")[2]
    format_name = FORMATS.get("." + suffix)
    if format_name is None:
        raise ImageFileError(f"{path}: unsupported output format; use .png, .jpg, .webp or .tiff")
    return format_name


def read_image(path, max_pixels=None):
    """The image file at `path` as decode_image gives it; errors name the file."""
    try:
        with open(path, "rb") as file:
            return decode_image(file, max_pixels)
    except FileNotFoundError:
        raise ImageFileError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ImageFileError(f"{path}: is a directory, not an image") from None
    except ImageFileError as error:
        raise type(error)(f"{path}: {error}") from None
    except OSError as error:
        raise ImageFileError(f"{path}: cannot read it ({error.strerror or error})") from None


def decode_image(file, max_pixels=None):
    """A PNG, JPEG, WebP or TIFF file (an open binary file) as to_array gives it, turned
    the way it is shown (phones store portraits sideways plus a rotation tag).

    With `max_pixels`, an image with more pixels is refused from its header, before a pixel
    is decoded, and Pillow's decompression-bomb guard is set to the same limit (it reads the
    module-wide Image.MAX_IMAGE_PIXELS: a process has one limit, its daemon's); without,
    Pillow's default guard applies. Raises ImageTooLarge or ImageFileError."""
    if max_pixels is not None:
        Image.MAX_IMAGE_PIXELS = max_pixels  # Pillow warns above it (ignored: checked below) and refuses twice it
    kind = "image"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(file, formats=DECODED_FORMATS)
        kind = f"{image.format} image"
        with image:
            width, height = image.size
            if max_pixels is not None and width * height > max_pixels:
                raise ImageTooLarge(f"the image is {width}x{height} = {width * height:,} pixels; "
                                    f"the limit is {max_pixels:,} pixels")
            return to_array(ImageOps.exif_transpose(image))
    except Image.DecompressionBombError as error:  # over twice the guard: Pillow refuses before we see the size
        claimed = re.search(r"\((\d+) pixels\)", str(error))  # Pillow's message has it: "Image size (N pixels) ..."
        size = f"{int(claimed[1]):,} pixels" if claimed else f"more than {2 * Image.MAX_IMAGE_PIXELS:,} pixels"
        raise ImageTooLarge(f"the image has {size}, says its header; the limit is "
                            f"{max_pixels or 2 * Image.MAX_IMAGE_PIXELS:,} pixels") from None
    except UnidentifiedImageError:
        raise ImageFileError("not an image file in PNG, JPEG, WebP or TIFF format") from None
    except (OSError, ValueError, SyntaxError, EOFError) as error:  # what Pillow's decoders raise on a damaged file
        raise ImageFileError(f"a damaged {kind}: {shown(str(error), 120)}") from None


def to_array(image):
    """H x W x C array: uint8 (C 1..4), uint16 (16-bit gray) or float32 (float gray)."""
    mode = image.mode
    if mode.startswith("I;16"):
        array = np.asarray(image).astype(np.uint16)  # native byte order, whatever the file's
    elif mode == "I":
        array = np.clip(np.asarray(image), 0, 65535).astype(np.uint16)
    elif mode == "F":
        array = np.clip(np.asarray(image), 0.0, 1.0).astype(np.float32)
    else:
        has_alpha = "A" in mode or "a" in mode or "transparency" in image.info
        colour = mode in ("RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr", "LAB", "HSV", "P", "PA")
        if mode == "P":
            colour = any(a != b or b != c for a, b, c in _palette_triples(image))
        target = {(False, False): "L", (False, True): "LA", (True, False): "RGB", (True, True): "RGBA"}[
            (colour, has_alpha)]
        array = np.asarray(image if mode == target else image.convert(target))
    return array[:, :, None] if array.ndim == 2 else array


def _palette_triples(image):
    palette = image.getpalette() or []
    return zip(palette[0::3], palette[1::3], palette[2::3])


def write_image(path, array, metadata):
    """Write `array` in the format of `path`'s extension with `metadata` (a
    JSON-able dict) embedded; returns notes on what the format could not hold."""
    format_name = output_format(path)
    image, notes = to_image(array, format_name)
    text = json.dumps(metadata, sort_keys=True)
    options = {}
    if format_name == "PNG":
        info = PngImagePlugin.PngInfo()
        info.add_itxt(METADATA_KEY, text)
        options["pnginfo"] = info
        if array.shape[0] * array.shape[1] >= LARGE_PNG_PIXELS:
            options["compress_level"] = LARGE_PNG_LEVEL
    elif format_name == "JPEG":
        options.update(quality=95, comment=text)
    elif format_name == "WEBP":
        options.update(quality=95)
    elif format_name == "TIFF":
        options["tiffinfo"] = {_TIFF_DESCRIPTION: text}
    try:
        image.save(path, format=format_name, **options)
    except OSError as error:
        raise ImageFileError(f"{path}: cannot write it ({error})") from None
    return notes


def write_whole(path, array):
    """Write `array` to `path` (format by its extension) so that a program reading
    it meanwhile never sees half a file: into a temporary file beside it, then
    renamed over it in one step."""
    format_name = output_format(path)
    image, _ = to_image(array, format_name)
    folder, name = os.path.split(os.path.abspath(path))
    handle, temporary = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=folder)
    try:
        with os.fdopen(handle, "wb") as file:
            image.save(file, format=format_name)
        os.replace(temporary, path)
    except OSError as error:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise ImageFileError(f"{path}: cannot write it ({error})") from None


def to_image(array, format_name):
    """(Pillow image the format can store, notes on what was lost on the way)."""
    allowed = _MODES_FOR_FORMAT[format_name]
    channels = array.shape[2]
    notes = []
    if channels == 1 and array.dtype == np.uint16 and "I;16" in allowed:
        return Image.fromarray(array[:, :, 0]), notes
    if channels == 1 and array.dtype == np.float32:
        if "F" in allowed:
            return Image.fromarray(array[:, :, 0]), notes
        if "I;16" in allowed:
            return Image.fromarray(_as_uint16(array)[:, :, 0]), notes
    if array.dtype != np.uint8:
        notes.append(f"{format_name} cannot hold this {array.dtype} image; written with 8 bits per channel")
    eight_bit = _as_uint8(array)
    image = Image.fromarray(eight_bit[:, :, 0] if channels == 1 else eight_bit)
    if image.mode in allowed:
        return image, notes
    if "A" in image.mode and image.mode.replace("A", "") in allowed:
        notes.append(f"{format_name} has no alpha channel; the alpha was dropped")
        return image.convert(image.mode.replace("A", "")), notes
    return image.convert("RGBA" if "A" in image.mode else "RGB"), notes


def _as_uint8(array):
    if array.dtype == np.uint8:
        return array
    scale = 255.0 / (65535.0 if array.dtype == np.uint16 else 1.0)
    return np.rint(array.astype(np.float32) * scale).astype(np.uint8)


def _as_uint16(array):
    return np.rint(np.clip(array, 0.0, 1.0) * 65535.0).astype(np.uint16)


def read_metadata(path):
    """The metadata write_image embedded, or None (tests and curious users)."""
    with Image.open(path) as image:
        text = image.info.get(METADATA_KEY) or image.info.get("comment")
        if text is None and hasattr(image, "tag_v2"):
            text = image.tag_v2.get(_TIFF_DESCRIPTION)
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    return json.loads(text) if text else None
