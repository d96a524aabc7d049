"""From the caller's pixels to the network's colour space and back.

The engine dreams on float32 RGB in [0, 1]; whatever else the caller has
(gray, alpha, 16-bit, float) is peeled off here and put back afterwards, so
alpha is never touched and deep images never pass through 8 bits."""

import numpy as np

from .errors import ImageTooLarge, InvalidImage

DTYPES = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0, np.dtype(np.float32): 1.0}
_LUMA = np.array([0.2126, 0.7152, 0.0722], dtype=np.float32)  # Rec. 709, as GIMP and Pillow-free code use


def check_image(image, min_side, max_pixels):
    if not isinstance(image, np.ndarray):
        raise InvalidImage(f"the image must be a numpy array, got {type(image).__name__}")
    if image.ndim == 2:
        raise InvalidImage("the image must be H x W x C; for a gray image add a channel axis (image[..., None])")
    if image.ndim != 3 or not 1 <= image.shape[2] <= 4:
        raise InvalidImage("the image must be H x W x C with C in 1..4 (gray, gray+alpha, RGB, RGBA), "
                           f"got shape {image.shape}")
    if image.dtype not in DTYPES:
        raise InvalidImage(f"the image dtype must be uint8, uint16 or float32, got {image.dtype}")
    height, width = image.shape[:2]
    if min(height, width) < min_side:
        raise InvalidImage(f"the image is {width}x{height}; InceptionV3 needs at least {min_side} pixels on each side")
    if height * width > max_pixels:
        raise ImageTooLarge(
            f"the image has {height * width:,} pixels ({width}x{height}); the limit is {max_pixels:,}"
        )
    if image.dtype == np.float32:
        low, high = float(np.min(image)), float(np.max(image))
        if not (0.0 <= low and high <= 1.0):  # also catches NaN
            raise InvalidImage(f"float32 images must hold values in [0, 1], found {low}..{high}")


def split(image):
    """(rgb float32 H x W x 3 in [0, 1], restore) where restore(rgb) gives back
    an array of the caller's shape and dtype with its alpha unchanged."""
    scale = DTYPES[image.dtype]
    channels = image.shape[2]
    colour = image[..., :3] if channels >= 3 else image[..., :1]
    alpha = image[..., channels - 1 :] if channels in (2, 4) else None
    rgb = colour.astype(np.float32)
    rgb /= np.float32(scale)  # in place: a 24 MP image makes no second 288 MB copy
    if rgb.shape[2] == 1:
        rgb = np.repeat(rgb, 3, axis=2)

    def restore(dreamed):
        # `dreamed` is the engine's own array, so it is reused in place.
        out = dreamed if channels >= 3 else (dreamed @ _LUMA)[..., None]
        np.clip(out, 0.0, 1.0, out=out)
        out *= np.float32(scale)
        if image.dtype != np.float32:
            np.rint(out, out=out)
        out = out.astype(image.dtype, copy=False)
        return np.concatenate([out, alpha], axis=2) if alpha is not None else out

    return rgb, restore
