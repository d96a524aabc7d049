"""Deterministic photo-like images (no files to ship, the same pixels every run)."""

import numpy as np
from PIL import Image

SEED_PHOTO_SIZE = (600, 400)  # width, height: the reference job's source photo
SEED_MAX_DIM = 500  # the article's get_image(url, max_dim=500)


def photo(width, height, seed=0, discs=8):
    """Smooth gradients, a few solid discs, mild noise: enough structure for
    the network to respond to, like a photo's. An RGB uint8 array."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    image = np.stack([x / width, y / height, 0.5 + 0.5 * np.sin((x + y) / 17.0)], axis=2) * 200
    for _ in range(discs):
        cy, cx = rng.integers(0, height), rng.integers(0, width)
        radius = rng.integers(8, max(9, min(height, width) // 3))
        image[(y - cy) ** 2 + (x - cx) ** 2 < radius * radius] = rng.integers(0, 255, 3)
    image += rng.normal(0, 4, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def seed_job_image():
    """The reference's input: the 600x400 photo thumbnailed to 500 px, as the article's get_image does."""
    picture = Image.fromarray(photo(*SEED_PHOTO_SIZE))
    picture.thumbnail((SEED_MAX_DIM, SEED_MAX_DIM))
    return np.array(picture)


def upscaled(image, width, height):
    """`image` resized to width x height (bicubic): a large photo without a large generator."""
    return np.array(Image.fromarray(image).resize((width, height), Image.BICUBIC))


def large_photo(width, height, channels=3):
    """A big photo-like image, built small and scaled up (memory stays moderate);
    RGBA gets a smooth alpha ramp."""
    rgb = upscaled(photo(width // 8, height // 8, seed=5), width, height)
    if channels == 3:
        return rgb
    alpha = np.broadcast_to(np.linspace(0, 255, width, dtype=np.float32).astype(np.uint8)[None, :, None],
                            (height, width, 1))
    return np.concatenate([rgb, alpha], axis=2)
