"""The infinite zoom (docs/protocol.md, "zoom"): each frame is the previous one,
zoomed and rotated about its centre, dreamed again.

numpy only, no backend: the frame transform runs the same under TensorFlow,
JAX and PyTorch, and the frame loop is shared by the daemon's worker and the
CLI's in-process zoom, each bringing its own way to dream one frame."""

from dataclasses import replace

import numpy as np

SEEDS = 2**32  # the wire's seed range: a frame's seed wraps around inside it


def transform(image, scale, degrees):
    """`image` (H x W x C, any dtype and channel count) magnified `scale` times and
    rotated `degrees` counter-clockwise about its centre, same shape and dtype.

    Bilinear; where the rotation uncovers a corner, the image is continued by
    reflecting it at its edges (no black wedges for the dream to feed on).
    Alpha is moved with the colour, as a layer's pixels move."""
    if scale == 1.0 and degrees == 0.0:
        return image.copy()
    height, width = image.shape[:2]
    centre_y, centre_x = (height - 1) / 2.0, (width - 1) / 2.0
    angle = np.deg2rad(degrees)
    # Each output pixel samples where the inverse motion takes it: back by the
    # rotation (counter-clockwise on screen, where y points down), shrunk by the zoom.
    cos, sin = np.cos(angle) / scale, np.sin(angle) / scale
    y = np.arange(height, dtype=np.float32)[:, None] - np.float32(centre_y)
    x = np.arange(width, dtype=np.float32)[None, :] - np.float32(centre_x)
    source_x = _reflected(cos * x - sin * y + centre_x, width)
    source_y = _reflected(sin * x + cos * y + centre_y, height)
    return _bilinear(image, source_y, source_x)


def _reflected(coordinate, size):
    """Pixel coordinates folded back into 0..size-1 by mirroring at the edges."""
    if size == 1:
        return np.zeros_like(coordinate, dtype=np.float32)
    period = 2.0 * (size - 1)
    folded = np.abs(np.mod(coordinate, period))
    return np.where(folded > size - 1, period - folded, folded).astype(np.float32)


def _bilinear(image, source_y, source_x):
    height, width = image.shape[:2]
    top = np.minimum(source_y.astype(np.int32), height - 1)  # coordinates are >= 0: truncation is floor
    left = np.minimum(source_x.astype(np.int32), width - 1)
    bottom, right = np.minimum(top + 1, height - 1), np.minimum(left + 1, width - 1)
    down = (source_y - top)[..., None]
    across = (source_x - left)[..., None]
    pixels = image.astype(np.float32, copy=False)
    upper = pixels[top, left] * (1.0 - across) + pixels[top, right] * across
    lower = pixels[bottom, left] * (1.0 - across) + pixels[bottom, right] * across
    result = upper * (1.0 - down) + lower * down
    if np.issubdtype(image.dtype, np.integer):
        limits = np.iinfo(image.dtype)
        np.rint(result, out=result)
        np.clip(result, limits.min, limits.max, out=result)
    return result.astype(image.dtype, copy=False)


def frame_params(params, index):
    """The dream parameters of frame `index`: the request's, seeded with seed + index,
    so that frames differ and the same zoom (or its resumption) is dreamed again alike."""
    return replace(params, seed=(params.seed + index) % SEEDS)


def frames(image, zoom, params, dream):
    """Yield (index, frame, params used) for index first_index + 1 .. first_index +
    frames, as each is done: the previous frame (`image` first) transformed as the
    checked `zoom` map says, then dream(frame, its params, as_part) -> (its dream,
    the params used). as_part(event) makes the dream's progress event one of the
    whole zoom: `fraction` over all frames, plus `frame` (its index) and `frames`
    (the last index). Params changed on the way (a smaller tile_size after the
    device ran out of memory) carry on to the next frame, under its own seed."""
    first, count = zoom["first_index"], zoom["frames"]
    last = first + count
    previous = image
    for position in range(count):
        index = first + 1 + position

        def as_part(event, done=position, index=index):
            return {**event, "fraction": (done + event["fraction"]) / count, "frame": index, "frames": last}

        moved = transform(previous, zoom["scale"], zoom["rotate"])
        previous, used = dream(moved, frame_params(params, index), as_part)
        params = replace(used, seed=params.seed)
        yield index, previous, params
