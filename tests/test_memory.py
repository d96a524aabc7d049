"""Memory stays bounded: tiles only where the memory budget needs them, the
compiled functions for layer sets are a bounded cache, and a daemon meeting
new image sizes levels off."""

import itertools
import os

import numpy as np
import pytest

from bench.distinct_sizes import PARAMS as DISTINCT_SIZE_PARAMS
from bench.distinct_sizes import SIDES, sizes
from deepdream_client.client import DreamClient
from bench.daemon_process import start_daemon
from dream_engine import DreamParams
from dream_engine import model as inception
from dream_engine.tiling import TileLayout
from images import photo

QUICK = dict(octaves=1, steps=1, jitter=0)


@pytest.fixture
def budget(engine):
    """Sets the session engine's memory budget (MiB) for one test."""
    saved = engine.memory_budget_mib

    def set_budget(mib):
        engine.memory_budget_mib = mib

    yield set_budget
    engine.memory_budget_mib = saved


def test_a_small_budget_tiles_evenly_and_a_big_one_dreams_in_one_piece(engine, budget):
    budget(10_000)
    assert len(engine.tile_layout((3000, 4000), DreamParams())) == 1
    budget(100)  # float32, mixed2 + mixed5: about 0.2 MP in one piece
    layout = engine.tile_layout((562, 845), DreamParams())
    assert len(layout) > 1
    assert layout.tile_height * layout.tile_width <= engine.largest_piece() < 562 * 845
    # Evenly divided: the tiles reach past the image by less than one stride (16 px here), and the
    # network computes little more than the image's own pixels (the overlap).
    assert 0 <= layout.padded_size[0] - 562 < 16 and 0 <= layout.padded_size[1] - 845 < 16
    assert all(y % 16 == 0 and x % 16 == 0 for y, x in layout.origins)
    assert layout.network_pixels < 1.5 * 562 * 845

    image = photo(300, 400)
    params = dict(octaves=1, steps=2, jitter=16)
    budget(10)  # a 0.02 MP piece: the 300x400 image needs several
    assert len(engine.tile_layout((300, 400), DreamParams(**params))) > 1
    tiled = engine.dream(image, DreamParams(**params)).astype(np.float32)
    budget(10_000)
    whole = engine.dream(image, DreamParams(**params)).astype(np.float32)
    assert np.corrcoef((tiled - image).ravel(), (whole - image).ravel())[0, 1] > 0.85


def test_an_explicit_tile_size_wins_over_the_budget(engine, budget):
    budget(10_000)
    layout = engine.tile_layout((562, 845), DreamParams(tile_size=256))
    assert len(layout) > 1 and max(layout.tile_height, layout.tile_width) <= 256


@pytest.mark.slow
def test_layouts_cover_the_image_with_aligned_tiles_no_larger_than_asked():
    for height, width, side in ((75, 75, 128), (562, 845, 512), (3000, 4000, 1024), (1000, 130, 128)):
        layout = TileLayout.by_side(height, width, side, align=32)
        assert max(layout.tile_height, layout.tile_width) <= side
        assert np.isfinite(layout.inverse_coverage).all(), "every pixel is in some tile"
        assert layout.padded_size[0] >= height and layout.padded_size[1] >= width
    for pixels in (20_000, 300_000, 3_000_000):
        layout = TileLayout.by_area(3000, 4000, pixels, align=16)
        assert layout.tile_height * layout.tile_width <= max(pixels, 128 * 128)
        assert np.isfinite(layout.inverse_coverage).all()


def test_a_layer_set_in_any_order_and_weighting_is_compiled_once(engine):
    engine.dream(photo(96, 96), DreamParams(layers={"mixed3": 1.0, "mixed1": 1.0}, **QUICK))
    traces = engine.traces
    engine.dream(photo(96, 96), DreamParams(layers={"mixed1": -0.5, "mixed3": 2.0}, **QUICK))
    assert engine.traces == traces
    assert engine._compiled(("mixed3", "mixed1")) is engine._compiled(["mixed1", "mixed3"])


@pytest.mark.slow
def test_compiled_layer_sets_are_an_lru_cache_and_rss_levels_off():
    """A real daemon keeping 2 layer sets compiled, sent 16 different ones:
    its resident memory (from `info`) stops growing once the cache is full,
    where each new set kept forever adds about 20 MiB."""
    layer_sets = [list(combination) + ["mixed5"] for size in (1, 2)
                  for combination in itertools.combinations([f"mixed{n}" for n in range(5)], size)][:16]
    image = photo(96, 96)
    daemon = start_daemon("--compiled-layer-sets", "2")
    client = DreamClient(daemon.endpoint, timeout=120)
    try:
        rss = []
        for layers in layer_sets:
            client.dream_array(image, {"layers": layers, "octaves": 1, "steps": 1, "jitter": 0})
            memory = client.info()["memory"]
            assert memory["compiled_layer_sets"] <= memory["max_compiled_layer_sets"] == 2
            rss.append(memory["rss_mib"])
        growth_late = rss[-1] - rss[len(rss) // 2]
        assert growth_late < 60, f"RSS kept growing: {rss}"
    finally:
        client.close()
        daemon.stop()


@pytest.mark.slow
def test_rss_levels_off_while_every_dream_brings_a_new_image_size():
    """A real daemon sent 150 images of distinct sizes (2 octaves, 1 step each, as bench/distinct_sizes.py
    sends 1,000): TensorFlow's per-shape caches fill within the first dozens of dreams, and then its resident
    memory (from `info`) stays put. Without giving the heap's freed pages back after each dream it rose
    31 MiB from the 50th dream to the 150th here, and on."""
    source = photo(SIDES[-1], SIDES[-1])
    with start_daemon() as daemon, DreamClient(daemon.endpoint, timeout=120) as client:
        ready = client.info()["memory"]["rss_mib"]
        rss = {}
        for number, (height, width) in enumerate(sizes(150), 1):
            client.dream_array(source[:height, :width], DISTINCT_SIZE_PARAMS)
            if number % 25 == 0:
                rss[number] = client.info()["memory"]["rss_mib"]
    assert max(mib for number, mib in rss.items() if number > 50) - rss[50] < 20, \
        f"RSS kept growing after the caches filled: ready {ready}, then {rss}"
    assert rss[150] - ready < 500, f"ready {ready}, then {rss}"


def test_the_default_budget_is_a_32nd_of_the_ram_and_has_a_value_without_sysconf(monkeypatch):
    """On Linux the budget follows /proc/meminfo's total; where os has no sysconf (Windows) it is a 32nd
    of 8 GiB, not an AttributeError at the first dream."""
    total_kib = int(next(line for line in open("/proc/meminfo") if line.startswith("MemTotal:")).split()[1])
    assert abs(inception.default_memory_budget_mib() - total_kib / 1024 / 32) <= 1
    monkeypatch.delattr(os, "sysconf")
    assert inception.default_memory_budget_mib() == 8 * 1024 // 32
