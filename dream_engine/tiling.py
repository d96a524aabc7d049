"""Where the tiles of a large octave lie, and the feathered weights that blend
their gradients: memory follows the tile, and no seam shows where two tiles
meet.

A tile layout is a grid of equal tiles that divides the image evenly (no tile
hangs mostly over padding), neighbours overlapping by a fraction of the tile,
origins on the network's stride. It is chosen either by a largest tile side
(a request's explicit tile_size) or by a largest tile area (the engine's
memory budget: the fewest tiles that fit, one piece when the octave fits)."""

import math
from itertools import pairwise

import numpy as np
from deepdream_common.vocabulary import MIN_SIDE

# The share of a tile its neighbours overlap. The random roll of every step
# (jitter) moves the seams, so they average out; the overlap lets each tile's
# border, where its convolutions see zero padding instead of the neighbouring
# pixels, count less in the blend. Chosen by measurement (bench/README.md,
# "Tile overlap"): the smallest overlap at which tiled dreams stay seamless.
OVERLAP = 1 / 16
# ... but never fewer pixels than this: the zero-padding border a tile's
# convolutions see is a fixed width, not a share. On the seam test of
# tests/test_engine.py (tiles of at most 160 px) 1/16 (10 px) and 40 px leave
# the tiled dream 0.54 and 0.50 of the dream's change away from the untiled
# one (the test allows under 0.5); 48 px, 0.39.
MIN_OVERLAP_PX = 48
MIN_TILE = 128  # the smallest tile side the budget chooses: below it the network's border effects dominate
SMALLEST_TILE = MIN_SIDE  # the smallest an explicit tile_size can give: InceptionV3's smallest input


def axis_tiles(length, count, overlap, align):
    """(start offsets, tile length, overlap in pixels) of `count` equal tiles
    covering [0, length), neighbours overlapping by at least overlap x tile
    (and MIN_OVERLAP_PX; none for overlap 0), starts multiples of `align`. The
    last tile may run past the end by less than `align` (the caller pads)."""
    if count <= 1:
        return [0], length, 0
    margin = max(math.ceil(overlap * length / (count - (count - 1) * overlap)), MIN_OVERLAP_PX) if overlap else 0
    ideal = (length + (count - 1) * margin) / count  # count tiles of this length, overlapping, span `length`
    starts = sorted({align * round(i * (length - ideal) / (count - 1) / align) for i in range(count)})
    tile = max([b - a + margin for a, b in pairwise(starts)] + [length - starts[-1]])  # starts may coincide
    return starts, tile, margin


def feather(size, overlap):
    """1-D weights rising linearly over `overlap` samples at both ends (all 1
    without overlap). Where tiles overlap, each one's edge counts least."""
    if overlap < 1:
        return np.ones(size, np.float32)
    position = np.arange(size, dtype=np.float32) + 0.5
    return np.minimum(1.0, np.minimum(position, size - position) / overlap).astype(np.float32)


class TileLayout:
    """A grid of `counts` = (rows, columns) equal tiles over an H x W image.

    Tile origins are multiples of the network's stride at the deepest dreamed
    layer: a tile then sees its activations on the same grid as the whole
    image would, and its gradient matches the untiled one instead of a
    phase-shifted pattern (correlation 0.98 against 0.86 unaligned, measured
    on 256 px tiles)."""

    def __init__(self, height, width, counts=(1, 1), overlap=OVERLAP, align=16):
        self.size = (height, width)
        self.overlap = overlap
        ys, self.tile_height, overlap_y = axis_tiles(height, counts[0], overlap, align)
        xs, self.tile_width, overlap_x = axis_tiles(width, counts[1], overlap, align)
        self.origins = [(y, x) for y in ys for x in xs]
        self.padded_size = (ys[-1] + self.tile_height, xs[-1] + self.tile_width)
        self.weights = np.outer(feather(self.tile_height, overlap_y), feather(self.tile_width, overlap_x))[..., None]
        coverage = np.zeros((*self.padded_size, 1), np.float32)
        for origin in self.origins:
            self.crop(coverage, origin)[...] += self.weights
        self.inverse_coverage = np.reciprocal(coverage, out=coverage)  # in place: one full-size array, not two

    @classmethod
    def by_side(cls, height, width, tile_size, overlap=OVERLAP, align=16):
        """The fewest tiles no longer than `tile_size` on either side."""
        counts = [_fewest(length, lambda tile: tile <= tile_size, overlap, align, SMALLEST_TILE)
                  for length in (height, width)]
        return cls(height, width, counts, overlap, align)

    @classmethod
    def by_area(cls, height, width, max_pixels, overlap=OVERLAP, align=16):
        """The fewest tiles of at most `max_pixels` each (one when the image
        fits), and of those the layout with the least network work; tiles
        stay at least MIN_TILE on a side."""
        best = None
        for rows in range(1, _most(height, overlap, align) + 1):
            tile_height = axis_tiles(height, rows, overlap, align)[1]
            columns = _fewest(width, lambda tile, tile_height=tile_height: tile * tile_height <= max_pixels,
                              overlap, align)
            tile_width = axis_tiles(width, columns, overlap, align)[1]
            fits = tile_height * tile_width <= max_pixels
            key = (not fits, rows * columns, rows * columns * tile_height * tile_width)
            if best is None or key < best[0]:
                best = (key, (rows, columns))
        return cls(height, width, best[1], overlap, align)

    def __len__(self):
        return len(self.origins)

    @property
    def network_pixels(self):
        """Pixels the network computes per step: what tiling costs beyond the image's own."""
        return len(self) * self.tile_height * self.tile_width

    def crop(self, image, origin):
        y, x = origin
        return image[y : y + self.tile_height, x : x + self.tile_width]

    def share(self, origin):
        """The tile's weight in the blend at each of its pixels: its feather
        weight over the sum of all tiles' weights there."""
        return self.weights * self.crop(self.inverse_coverage, origin)


def _most(length, overlap, align, smallest=MIN_TILE):
    """The most tiles an axis may be cut into (tiles of at least `smallest`)."""
    count = 1
    while count < length and axis_tiles(length, count + 1, overlap, align)[1] >= smallest:
        count += 1
    return count


def _fewest(length, fits, overlap, align, smallest=MIN_TILE):
    """The fewest tiles along an axis whose tile length `fits`, or the most there may be."""
    most = _most(length, overlap, align, smallest)
    return next((count for count in range(1, most + 1) if fits(axis_tiles(length, count, overlap, align)[1])), most)


def rolled_padded_source(length, padded_length, shift):
    """Where each position of an axis that was rolled by `shift` and then
    reflect-padded to `padded_length` comes from in the original axis: tiles
    can then be read straight from the image, with no rolled, padded copy."""
    period = 2 * (length - 1)  # np.pad "reflect": the edge sample is not repeated
    position = np.arange(padded_length) % period
    reflected = np.where(position < length, position, period - position)
    return (reflected - shift) % length
