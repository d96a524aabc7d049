"""The fast paths compute what the plain ones do: folded batch norm, bfloat16,
batched tiles, the buffer-reusing big-image step, and each of them (whole,
tiled, dream size) gives back the photo a step of nothing. Correctness only; the
timings live in bench/."""

from dataclasses import replace

import keras
import numpy as np
import pytest

from dream_engine import DreamEngine, DreamParams
from dream_engine import model as inception
from dream_engine.engine import standard_deviation
from dream_engine.tiling import rolled_padded_source
from images import photo

LAYERS = ("mixed2", "mixed5")


def psnr(a, b, peak=255.0):
    error = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if error == 0 else 10 * np.log10(peak**2 / error)


@pytest.fixture(scope="module")
def fast_engine():
    return DreamEngine(weights="random", precision="bfloat16")


@pytest.fixture(scope="module")
def half_engine():
    """float16: what precision="auto" picks on a CUDA GPU (here it runs on the CPU)."""
    return DreamEngine(weights="random", precision="float16")


@pytest.mark.slow
def test_folded_batch_norm_gives_the_same_activations():
    # Random init leaves the BN statistics at 0 and 1, which would hide a wrong
    # fold: give every BN real-looking statistics first.
    base = inception.load_inception("random", "float32")
    rng = np.random.default_rng(0)
    for layer in base.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            channels = layer.moving_mean.shape[0]
            layer.moving_mean.assign(rng.normal(0, 0.5, channels).astype(np.float32))
            layer.moving_variance.assign(rng.uniform(0.5, 2.0, channels).astype(np.float32))
            layer.beta.assign(rng.normal(0, 0.3, channels).astype(np.float32))
    folded = inception.fold_batch_norm(base)

    assert not any(isinstance(layer, keras.layers.BatchNormalization) for layer in folded.layers)
    assert inception.dreamable_layers(folded) == inception.dreamable_layers(base)
    x = rng.uniform(-1, 1, (1, 160, 200, 3)).astype(np.float32)
    plain = inception.feature_model(base, LAYERS)(x, training=False)
    fused = inception.feature_model(folded, LAYERS)(x, training=False)
    for a, b in zip(plain, fused):
        a, b = np.asarray(a), np.asarray(b)
        assert np.abs(a - b).max() <= 1e-4 * np.abs(a).max()


def test_keras_still_links_each_convolution_to_its_batch_norm():
    # Folding finds its conv -> BN pairs through a functional model's public
    # layer.input / layer.output tensors. If a Keras upgrade stops sharing
    # them, folding would quietly find nothing and reduced precisions slow down.
    base = inception.load_inception("random", "float32")
    batch_norms = [layer for layer in base.layers if isinstance(layer, keras.layers.BatchNormalization)]
    pairs = inception.batch_norms_after_convolutions(base)
    assert len(pairs) == len(batch_norms) == 94, (
        f"Keras {keras.__version__}: batch-norm folding found {len(pairs)} of InceptionV3's {len(batch_norms)} "
        f"conv -> batch-norm pairs. Check dream_engine/model.py batch_norms_after_convolutions: it needs "
        f"a batch norm's layer.input to be the very tensor object that its convolution's layer.output is.")


@pytest.mark.slow
def test_float32_keeps_the_exact_graph_and_reduced_precision_folds(engine, fast_engine):
    assert engine.precision == "float32" and not engine.batch_norm_folded
    assert fast_engine.precision == "bfloat16" and fast_engine.batch_norm_folded
    # Folded weights are rounded to bfloat16 once, not cast at every step.
    assert {variable.dtype for variable in fast_engine._base.weights} == {"bfloat16"}


@pytest.mark.slow
def test_bfloat16_dream_is_close_to_float32(engine, fast_engine):
    # Gradient ascent amplifies any rounding difference, so the two are compared
    # as pictures (PSNR of the result, and of the change the dream made), not bit
    # for bit. Measured: PSNR 32.6 dB, change correlation 0.87 (folding BN alone
    # in float32: 44 dB, 0.99).
    image = photo(150, 200, seed=4)
    params = DreamParams(octaves=2, steps=5, step_size=0.02, jitter=8)
    exact = engine.dream(image, params)
    fast = fast_engine.dream(image, params)
    assert psnr(fast, exact) > 30
    change_exact, change_fast = exact.astype(float) - image, fast.astype(float) - image
    assert np.corrcoef(change_exact.ravel(), change_fast.ravel())[0, 1] > 0.8


# 1e-5 is the smallest step a request may take: three octaves of it change no pixel's level.
NIL_DREAM = dict(octaves=3, steps=1, step_size=1e-5, jitter=8)


@pytest.mark.parametrize("engine_name", ["engine", "fast_engine", pytest.param("half_engine", marks=pytest.mark.slow)],
                         ids=["float32", "bfloat16", "float16"])
@pytest.mark.parametrize("size, options", [((120, 160), {}), ((200, 260), {"tile_size": 128}),
                                           ((360, 400), {"dream_size": 0.1})], ids=["whole", "tiled", "dream_size"])
def test_a_dream_whose_step_does_nothing_gives_the_photo_back(request, engine_name, size, options):
    # Detail re-injection puts back what each octave's shrinking lost, the finest
    # band (between the last two octave sizes) too, as the Keras example does:
    # without that last band the photo came back 3 levels softer on average.
    engine = request.getfixturevalue(engine_name)
    image = photo(*size, seed=2)
    params = DreamParams(**NIL_DREAM, **options)
    if "tile_size" in options:
        assert len(engine.tile_layout(size, params)) > 1, "the full-size octave is dreamed in tiles"
    dreamed = engine.dream(image, params)
    assert np.abs(dreamed.astype(int) - image).max() <= 1
    if engine_name == "engine" and not options:  # the same dream without detail: the photo blurred
        blurred = engine.dream(image, replace(params, detail=False))
        assert np.abs(blurred.astype(int) - image).mean() > 1


@pytest.mark.slow
def test_float16_gradient_keeps_the_float32_direction(engine, half_engine):
    # float16 is what precision="auto" picks on a CUDA GPU. A mean's gradient is
    # about 1e-7 per activation, under float16's smallest normal number: before
    # loss scaling, 54% of a float16 gradient at 845x562 was exactly zero
    # (float32: 0.9%) and its correlation with float32's was 0.90.
    image = photo(300, 400, seed=5).astype(np.float32)[None] / 127.5 - 1.0
    weights = np.ones(len(LAYERS), np.float32)
    exact = engine._compiled(LAYERS).tile_gradients(image, weights)[1].numpy().ravel()
    fast = half_engine._compiled(LAYERS).tile_gradients(image, weights)[1].numpy().ravel()
    assert np.mean(fast == 0) <= np.mean(exact == 0) + 0.01
    assert np.corrcoef(fast, exact)[0, 1] > 0.99


def test_batched_tiles_give_the_same_dream(engine):
    image = photo(300, 420, seed=3)
    params = DreamParams(octaves=1, steps=2, jitter=16, tile_size=160)
    one = engine.dream(image, params)
    engine.tile_batch = 3
    try:
        batched = engine.dream(image, params)
    finally:
        engine.tile_batch = 1
    assert np.abs(one.astype(int) - batched.astype(int)).max() <= 1


@pytest.mark.parametrize("length, padded, shift", [(300, 320, 0), (300, 320, 17), (777, 800, -31), (90, 300, 5)])
def test_rolled_padded_index_map_matches_numpy(length, padded, shift):
    axis = np.arange(length) * 10
    rolled_padded = np.pad(np.roll(axis, shift), (0, padded - length), mode="reflect")
    assert np.array_equal(axis[rolled_padded_source(length, padded, shift)], rolled_padded)


def test_banded_standard_deviation_matches_numpy():
    array = np.random.default_rng(1).normal(0.3, 2.0, (1300, 70, 3)).astype(np.float32)
    assert standard_deviation(array) == pytest.approx(float(np.std(array.astype(np.float64))), rel=1e-6)
    small = array[:100]
    assert standard_deviation(small) == small.std()
