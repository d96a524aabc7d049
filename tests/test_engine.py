"""dream_engine against the reference article (the TensorFlow DeepDream tutorial) and what users of the API check."""

import subprocess
import sys
from dataclasses import replace

import keras
import numpy as np
import pytest
import tensorflow as tf

from dream_engine import (DreamCancelled, DreamEngine, DreamParams, ImageTooLarge, InvalidImage,
                          InvalidParams, UnknownLayer, WeightsUnavailable)
from dream_engine.model import IMAGENET_FILE, RANDOM_SEED
from images import photo

QUICK = dict(octaves=1, steps=3, jitter=0)


def reference_article_dream(image, layer_names, steps, step_size):
    """The reference article's loop, as it prints it (calc_loss, DeepDream.__call__,
    run_deep_dream, normalize), on its own InceptionV3 built from the same random seed."""
    keras.utils.set_random_seed(RANDOM_SEED)
    base_model = tf.keras.applications.InceptionV3(include_top=False, weights=None)
    dream_model = tf.keras.Model(inputs=base_model.input,
                                 outputs=[base_model.get_layer(name).output for name in layer_names])

    def calc_loss(img, model):
        layer_activations = model(tf.expand_dims(img, axis=0))
        if len(layer_activations) == 1:
            layer_activations = [layer_activations]
        return tf.reduce_sum([tf.math.reduce_mean(act) for act in layer_activations])

    img = tf.convert_to_tensor(tf.keras.applications.inception_v3.preprocess_input(image.astype(np.float32)))
    for _ in range(steps):
        with tf.GradientTape() as tape:
            tape.watch(img)
            loss = calc_loss(img, dream_model)
        gradients = tape.gradient(loss, img)
        gradients /= tf.math.reduce_std(gradients) + 1e-8
        img = tf.clip_by_value(img + gradients * step_size, -1, 1)
    return tf.cast(255 * (img + 1.0) / 2.0, tf.uint8).numpy()


def test_matches_the_reference_loop_within_two_levels(engine):
    # Gradient ascent through ReLUs and max-pools amplifies float rounding: the
    # reference's own loop run eagerly and as a tf.function differs by 6 levels after
    # 5 steps of 0.05 and by 31 after 20 of 0.01. Three steps of 0.05 is where
    # the reference still agrees with itself, so that is where the engine must too.
    image = photo(150, 200)
    params = DreamParams(layers={"mixed2": 1.0, "mixed5": 1.0}, octaves=1, steps=3, step_size=0.05,
                         jitter=0, tile_size=512)
    ours = engine.dream(image, params)
    reference = reference_article_dream(image, ["mixed2", "mixed5"], steps=3, step_size=0.05)
    assert np.abs(ours.astype(int) - image).mean() > 3, "the dream should change the image visibly"
    assert np.abs(ours.astype(int) - reference.astype(int)).max() <= 2


def test_tiled_dream_agrees_with_untiled_and_has_no_seams(engine):
    image = photo(300, 420, seed=3)
    params = dict(octaves=1, steps=4, jitter=0, step_size=0.05)
    whole = engine.dream(image, DreamParams(tile_size=512, **params)).astype(np.float32)
    tiled = engine.dream(image, DreamParams(tile_size=160, **params)).astype(np.float32)
    layout = engine.tile_layout((300, 420), DreamParams(tile_size=160, **params))
    assert len(layout) > 4

    change_whole, change_tiled = whole - image, tiled - image
    correlation = np.corrcoef(change_whole.ravel(), change_tiled.ravel())[0, 1]
    assert correlation > 0.85, correlation
    assert np.abs(whole - tiled).mean() < 0.5 * np.abs(change_whole).mean()

    # A seam is a jump between neighbouring columns (rows) that is much larger
    # at a tile border than anywhere else in the dream's change.
    for axis, starts, tile in ((1, {x for _, x in layout.origins}, layout.tile_width),
                               (0, {y for y, _ in layout.origins}, layout.tile_height)):
        jumps = np.abs(np.diff(change_tiled, axis=axis)).mean(axis=(1 - axis, 2))
        borders = [s - 1 for s in starts if s > 0] + [s + tile - 1 for s in starts]
        borders = [b for b in borders if 0 <= b < len(jumps)]
        assert max(jumps[b] for b in borders) < 2.0 * np.median(jumps)


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "float32"])
@pytest.mark.parametrize("channels", [1, 2, 3, 4])
def test_every_dtype_and_channel_count_round_trips(engine, dtype, channels):
    rgb = photo(90, 110, seed=channels).astype(np.float64)
    gray = rgb.mean(axis=2, keepdims=True)
    colour = rgb if channels >= 3 else gray
    alpha = np.linspace(0, 255, 90 * 110).reshape(90, 110, 1)
    pixels = np.concatenate([colour, alpha], axis=2) if channels in (2, 4) else colour
    scale = {"uint8": 1, "uint16": 257, "float32": 1 / 255}[dtype]
    image = (pixels * scale).astype(dtype)

    out = engine.dream(image, DreamParams(step_size=0.05, **QUICK))

    assert out.shape == image.shape and out.dtype == image.dtype
    colour = slice(0, 3 if channels >= 3 else 1)
    assert np.abs(out[..., colour].astype(float) - image[..., colour]).mean() > 0.5 * scale
    if channels in (2, 4):
        assert np.array_equal(out[..., -1], image[..., -1]), "alpha must pass through untouched"
    if dtype == "uint16":
        assert np.any(out % 257 != 0), "16-bit results must keep more than 8 bits"
    if dtype == "float32":
        assert out.min() >= 0 and out.max() <= 1


def test_same_seed_same_dream_other_seed_other_dream(engine):
    image = photo(100, 120)
    params = dict(octaves=2, steps=3, jitter=16)
    first = engine.dream(image, DreamParams(seed=7, **params))
    again = engine.dream(image, DreamParams(seed=7, **params))
    other = engine.dream(image, DreamParams(seed=8, **params))
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)


def test_octaves_keep_the_input_size_and_compile_once(engine):
    before = engine.traces
    for shape in [(100, 150, 3), (131, 97, 3), (160, 210, 3)]:
        image = photo(*shape[:2])
        assert engine.dream(image, DreamParams(octaves=3, steps=1)).shape == shape
    assert engine.traces - before <= 1, "one trace per layer set, not one per image size"


@pytest.mark.parametrize("values, key", [
    ({"octaves": 0}, "octaves"), ({"octaves": 2.5}, "octaves"), ({"octave_scale": 0.9}, "octave_scale"),
    ({"steps": -1}, "steps"), ({"steps": "ten"}, "steps"), ({"step_size": 0}, "step_size"),
    ({"step_size": float("nan")}, "step_size"), ({"tile_size": 16}, "tile_size"),
    ({"jitter": -3}, "jitter"), ({"seed": -1}, "seed"), ({"detail": "yes"}, "detail"),
    ({"layers": {}}, "layers"), ({"layers": "mixed2"}, "layers"), ({"layers": {"mixed2": "x"}}, "layers.mixed2"),
    ({"layers": {"mixed2": 0}}, "layers"), ({"octave_sclae": 1.4}, "octave_sclae"),
    ({"dream_size": 0.05}, "dream_size"), ({"dream_size": 101}, "dream_size"), ({"dream_size": False}, "dream_size"),
    ({"dream_size": "2"}, "dream_size"),
])
def test_each_invalid_parameter_names_its_key(values, key):
    with pytest.raises(InvalidParams) as error:
        DreamParams.from_dict(values)
    assert error.value.key == key
    assert str(error.value).startswith(key)


def test_unknown_layer_lists_the_known_ones(engine):
    with pytest.raises(UnknownLayer, match="mixed11.*mixed0, mixed1"):
        engine.dream(photo(80, 80), DreamParams(layers=["mixed11"], **QUICK))


@pytest.mark.parametrize("image, message", [
    (np.zeros((100, 100), np.uint8), "H x W x C"),
    (np.zeros((100, 100, 5), np.uint8), "C in 1..4"),
    (np.zeros((100, 100, 3), np.int32), "dtype"),
    (np.zeros((100, 100, 3), np.float64), "dtype"),
    (np.zeros((60, 100, 3), np.uint8), "at least 75"),
    (np.full((100, 100, 3), 1.5, np.float32), r"\[0, 1\]"),
    (np.full((100, 100, 3), np.nan, np.float32), r"\[0, 1\]"),
    ([[1, 2, 3]], "numpy array"),
])
def test_each_bad_image_gets_its_own_error(engine, image, message):
    with pytest.raises(InvalidImage, match=message):
        engine.dream(image, DreamParams(**QUICK))


def test_pixel_limit_is_configurable(engine):
    engine.max_pixels, saved = 10_000, engine.max_pixels
    try:
        with pytest.raises(ImageTooLarge, match="limit is 10,000"):
            engine.dream(photo(100, 120), DreamParams(**QUICK))
    finally:
        engine.max_pixels = saved


def test_progress_is_monotonic_and_complete(engine):
    events = []
    engine.dream(photo(160, 200), DreamParams(octaves=3, steps=4), progress=events.append)
    assert [(e["octave"], e["step"]) for e in events] == [(o, s) for o in (1, 2, 3) for s in (1, 2, 3, 4)]
    fractions = [e["fraction"] for e in events]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert all(e["octaves"] == 3 and e["steps"] == 4 for e in events)


def test_snapshots_show_the_dream_so_far_and_change_nothing(engine):
    image = photo(300, 260)
    # Tiled at the last octave; without detail, whose last band is put back after the last step.
    params = DreamParams(octaves=2, steps=2, tile_size=160, step_size=0.05, detail=False)
    snapshots = []
    dreamed = engine.dream(image, params, progress=lambda event: snapshots.append(event["snapshot"]()))
    assert [s.shape for s in snapshots] == [(230, 199, 3)] * 2 + [(300, 260, 3)] * 2
    assert all(s.dtype == np.float32 and s.min() >= 0 and s.max() <= 1 for s in snapshots)
    assert np.abs(snapshots[-1] * 255 - dreamed).max() <= 1, "the last snapshot is the dream"
    assert np.array_equal(dreamed, engine.dream(image, params)), "taking snapshots changes nothing"


@pytest.mark.parametrize("height, width, megapixels", [(120, 160, 0.1), (200, 500, 0.1)])  # under, and at, the size
def test_dream_size_at_or_above_the_image_dreams_it_bit_for_bit_as_before(engine, height, width, megapixels):
    image = photo(height, width)
    params = dict(octaves=2, steps=2, jitter=8)
    assert np.array_equal(engine.dream(image, DreamParams(dream_size=megapixels, **params)),
                          engine.dream(image, DreamParams(**params)))


def test_dream_size_dreams_a_smaller_copy_and_keeps_the_photos_own_detail(engine):
    # A one-pixel checkerboard is the finest detail a photo has: dreaming at
    # 0.1 MP (63 % of the side) and scaling the result up would blur it away.
    checker = np.where(np.add.outer(np.arange(500), np.arange(500)) % 2, 20.0, -20.0)[..., None]
    image = np.clip(photo(500, 500, seed=5).astype(np.float32) + checker, 0, 255).astype(np.uint8)
    params = DreamParams(octaves=2, steps=3, step_size=0.05, jitter=0)
    shapes = []
    dreamed = engine.dream(image, replace(params, dream_size=0.1),
                           progress=lambda event: shapes.append(event["snapshot"]().shape))

    def checker_strength(picture):
        return float(np.mean(picture.astype(np.float32) * np.sign(checker)))

    assert dreamed.shape == image.shape and dreamed.dtype == np.uint8
    assert shapes[-1] == (316, 316, 3), "the network worked at 0.1 MP"
    assert np.abs(dreamed.astype(int) - image).mean() > 2, "the dream should change the image visibly"
    assert checker_strength(dreamed) > 0.8 * checker_strength(image)
    small = tf.image.resize(image, (316, 316), antialias=True).numpy().round().astype(np.uint8)
    scaled_up = tf.image.resize(engine.dream(small, params), (500, 500)).numpy()
    assert abs(checker_strength(scaled_up)) < 0.2 * checker_strength(image), "a plain scaled-up dream loses it"


def test_dream_size_keeps_16_bit_depth(engine):
    rng = np.random.default_rng(1)
    image = (photo(400, 300).astype(np.uint16) * 257 + rng.integers(0, 257, (400, 300, 3))).astype(np.uint16)
    dreamed = engine.dream(image, DreamParams(dream_size=0.1, step_size=0.05, **QUICK))
    assert dreamed.shape == image.shape and dreamed.dtype == np.uint16
    assert np.abs(dreamed.astype(float) - image).mean() > 0.5 * 257
    assert len(np.unique(dreamed[..., 0])) > 256 and np.any(dreamed % 257 != 0)


def test_should_stop_ends_the_dream_within_one_step(engine):
    events = []
    checks = iter(range(10**6))

    def stop_after_two_steps():
        next(checks)
        return len(events) >= 2

    with pytest.raises(DreamCancelled):
        engine.dream(photo(300, 300), DreamParams(octaves=2, steps=50, tile_size=160),
                     progress=events.append, should_stop=stop_after_two_steps)
    assert len(events) == 2


@pytest.mark.slow
def test_weights_file_gives_the_same_dream_as_the_network_it_came_from(engine, tmp_path):
    path = tmp_path / "inception.weights.h5"
    engine._base.save_weights(path)
    from_file = DreamEngine(weights=str(path), precision="float32")
    image = photo(90, 90)
    assert np.array_equal(from_file.dream(image, DreamParams(**QUICK)), engine.dream(image, DreamParams(**QUICK)))


def test_missing_or_bad_weights_file_says_what_to_do(tmp_path):
    with pytest.raises(WeightsUnavailable, match="--weights random"):
        DreamEngine(weights=str(tmp_path / "nowhere.h5"))
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"not hdf5")
    with pytest.raises(WeightsUnavailable, match="Could not read"):
        DreamEngine(weights=str(junk))


@pytest.mark.slow
def test_imagenet_without_network_is_a_clear_error_not_a_hang(tmp_path):
    script = "from dream_engine import DreamEngine\nDreamEngine(weights='imagenet')\n"
    env = {"KERAS_HOME": str(tmp_path), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=180)
    assert result.returncode != 0
    message = result.stderr
    assert IMAGENET_FILE in message and str(tmp_path / "models") in message
    assert "--weights" in message and "random" in message


@pytest.mark.slow
def test_importing_the_engine_changes_nothing_and_a_program_can_load_it_quietly():
    # Importing the package neither loads TensorFlow nor touches file
    # descriptor 2; a program that calls startup.load_quietly() first (as the
    # CLI and the daemon do) shows none of TensorFlow's C++ start-up lines.
    script = ("import os, sys\n"
              "stderr = os.fstat(2)\n"
              "import dream_engine\n"
              "assert 'tensorflow' not in sys.modules and not hasattr(dream_engine, 'tf')\n"
              "assert os.path.samestat(os.fstat(2), stderr)\n"
              "from dream_engine import startup\n"
              "startup.load_quietly()\n"
              "assert os.path.samestat(os.fstat(2), stderr)\n"
              "from dream_engine import DreamEngine\n"
              "DreamEngine(weights='random', precision='float32')\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=180, check=False)
    assert result.returncode == 0 and result.stderr == "", result.stderr
