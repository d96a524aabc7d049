"""Equal-sized, overlapping tiles and the feathered weights that blend their
gradients, so that memory follows the tile size and no seam shows where two
tiles meet."""

import math

import numpy as np


def tile_starts(length, tile, overlap):
    """Start offsets of equal tiles covering [0, length), neighbours overlapping
    by at least `overlap`; a single tile when the length fits in one."""
    if length <= tile:
        return [0]
    count = math.ceil((length - overlap) / (tile - overlap))
    return [round(i * (length - tile) / (count - 1)) for i in range(count)]


def feather(size, overlap):
    """1-D weights rising linearly over `overlap` samples at both ends. Where
    tiles overlap, each one's edge (where its convolutions see zero padding
    instead of the neighbouring pixels) counts least."""
    if overlap <= 0:
        return np.ones(size, np.float32)
    position = np.arange(size, dtype=np.float32) + 0.5
    return np.minimum(1.0, np.minimum(position, size - position) / overlap).astype(np.float32)


class TileLayout:
    """Where the tiles of an H x W image lie, and how their gradients blend."""

    def __init__(self, height, width, tile_size, overlap):
        self.tile_height = min(tile_size, height)
        self.tile_width = min(tile_size, width)
        self.origins = [
            (y, x)
            for y in tile_starts(height, tile_size, overlap)
            for x in tile_starts(width, tile_size, overlap)
        ]
        self.weights = None
        if len(self.origins) > 1:
            self.weights = np.outer(feather(self.tile_height, overlap), feather(self.tile_width, overlap))[..., None]
            coverage = np.zeros((height, width, 1), np.float32)
            for y, x in self.origins:
                coverage[y : y + self.tile_height, x : x + self.tile_width] += self.weights
            self.inverse_coverage = 1.0 / coverage

    def __len__(self):
        return len(self.origins)

    def crop(self, image, origin):
        y, x = origin
        return image[y : y + self.tile_height, x : x + self.tile_width]
