"""Test images made on the spot (no files to ship)."""

from bench import photo as bench_photo


def photo(height, width, seed=0):
    """A photo-like RGB uint8 image (bench/photo.py's, with the six discs the tests' thresholds were set on),
    height first, as numpy's shapes are."""
    return bench_photo.photo(width, height, seed, discs=6)
