"""How a step's gradient is normalized before it is added to the image.

"std" (the reference article's): divided by its standard deviation. "laplacian" (TF's
first DeepDream notebook, lap_normalize): split into a Laplacian pyramid of
LAPLACIAN_SPLITS band-pass levels and a low-pass residual, each divided by its
own root mean square, and merged again: the coarse bands then weigh as much as
the fine ones, so the dream grows larger, smoother structures instead of
pixel-level noise. The merged gradient is divided by its own root mean square
once more, so that a step_size means the same with either normalization.

Written once for two array libraries: `xp` is keras.ops (the whole-image step,
inside the compiled function, on every Keras backend) or numpy (the tiled
path, on the blended full-octave gradient, so that no tile border can show).
Only operations both share are used: slicing, flip, concatenate, stack,
reshape, transpose, vdot. Borders are reflected, on both paths alike (by
slicing: PyTorch's reflect padding takes only the last axes of a 3-D tensor)."""

import numpy as np

LAPLACIAN_SPLITS = 4  # the notebook's scale_n: bands of 1, 2, 4, 8 px and the residual above
EPSILON = 1e-8  # the reference's, for a gradient that is zero everywhere
_BLUR = (1 / 16, 4 / 16, 6 / 16, 4 / 16, 1 / 16)  # the notebook's binomial [1, 4, 6, 4, 1] kernel, per axis


def laplacian_normalize(gradient, xp=np):
    """An H x W x C gradient (H, W at least 3), normalized band by band."""
    levels = []
    low = gradient
    for _ in range(LAPLACIAN_SPLITS):
        smaller = _halve(low, xp)
        levels.append(low - _double(smaller, low, xp))  # the band between this scale and the next
        low = smaller
    merged = _unit_rms(low, xp)
    for band in reversed(levels):
        merged = _double(merged, band, xp) + _unit_rms(band, xp)
    return _unit_rms(merged, xp)


def _unit_rms(array, xp):
    flat = xp.reshape(array, (-1,))
    return array / (xp.sqrt(xp.vdot(flat, flat) / _size(flat, xp)) + EPSILON)


def _size(flat, xp):
    length = xp.shape(flat)[0]
    return xp.cast(length, "float32") if xp is not np else np.float32(length)


def _halve(image, xp):
    """Blur with the binomial kernel and keep every other row and column (rounding up)."""
    return _transpose(_halve_rows(_transpose(_halve_rows(image, xp), xp), xp), xp)


def _double(image, like, xp):
    """The Burt-Adelson expansion of `image` to the rows and columns of `like`."""
    rows = _double_rows(image, xp.shape(like)[0], xp)
    return _transpose(_double_rows(_transpose(rows, xp), xp.shape(like)[1], xp), xp)


def _transpose(image, xp):
    return xp.transpose(image, (1, 0, 2))


def _halve_rows(image, xp):
    padded = _reflect_rows(image, 2, xp)
    # Tap k of output row i reads input row 2i + k - 2: a stride-2 slice of the padded rows, each as long.
    return sum(weight * padded[tap : tap - 4 or None : 2] for tap, weight in enumerate(_BLUR))


def _reflect_rows(image, count, xp):
    """`image` with `count` rows mirrored above and below, the edge row not repeated (numpy's "reflect")."""
    return xp.concatenate([xp.flip(image[1 : count + 1], 0), image, xp.flip(image[-count - 1 : -1], 0)], axis=0)


def _double_rows(image, length, xp):
    """Rows of `image` expanded to `length` (2 x as many, or 2 x - 1):
    zeros between the rows, blurred with twice the kernel, written as its two phases."""
    padded = _reflect_rows(image, 1, xp)
    previous, current, following = padded[:-2], padded[1:-1], padded[2:]
    even = (previous + 6.0 * current + following) / 8.0
    odd = (current + following) / 2.0
    interleaved = xp.reshape(xp.stack([even, odd], axis=1), (-1, *xp.shape(image)[1:]))
    return interleaved[:length]
