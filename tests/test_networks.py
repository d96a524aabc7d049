"""dream_engine/networks.py: the built-in networks (with seeded random weights: ImageNet's cannot be downloaded
here) and own model files (HED's trained VGG16 blocks, bench/trained_network.py, with their sidecar), each with
its dreamable layers, channel counts, strides and memory, fed from the engine's [-1, 1] image space."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from bench.trained_network import cached_hed_vgg16
from dream_engine import networks
from dream_engine.errors import InvalidParams, UnknownLayer, WeightsUnavailable

HED_LAYERS = ("block1_conv1", "block1_conv2", "block1_pool", "block2_conv1", "block2_conv2", "block2_pool",
              "block3_conv1", "block3_conv2", "block3_conv3", "block3_pool", "block4_conv1", "block4_conv2",
              "block4_conv3", "block4_pool", "block5_conv1", "block5_conv2", "block5_conv3")
HED_STRIDES = (1, 1, 2, 2, 2, 4, 4, 4, 4, 8, 8, 8, 8, 16, 16, 16, 16)  # HED has no fifth pool


@pytest.fixture(scope="module")
def hed_file():
    return cached_hed_vgg16()  # $XDG_CACHE_HOME/deepdream/models/hed_vgg16.keras, its sidecar beside it


@pytest.fixture(scope="module")
def hed(hed_file):
    return networks.load_network("hed_vgg16", models_dir=hed_file.parent)


@pytest.fixture(scope="module")
def vgg16():
    return networks.load_network("vgg16", weights="random")


def engine_image(height=48, width=64, seed=0):
    """A batch of one image in the engine's space: RGB in [-1, 1]."""
    return np.random.default_rng(seed).uniform(-1, 1, (1, height, width, 3)).astype(np.float32)


@pytest.mark.parametrize("preprocess", ["tf", "caffe", "torch"])
def test_the_adapter_gives_what_keras_own_preprocessing_gives_for_the_same_photo(preprocess):
    image = engine_image()
    rgb_0_255 = (image + 1) * 127.5
    expected = keras.applications.imagenet_utils.preprocess_input(rgb_0_255.copy(), mode=preprocess)
    adapted = keras.ops.convert_to_numpy(networks.adapter(preprocess)(image))
    np.testing.assert_allclose(adapted, expected, atol=1e-4)
    inputs = keras.Input((None, None, 3))  # the same in a functional model (feature_model's use)
    in_model = keras.Model(inputs, networks.adapter(preprocess)(inputs))(image)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(in_model), expected, atol=1e-4)


def test_the_unit_and_none_adapters_give_rgb_in_0_1_and_0_255():
    image = np.array([[[[-1.0, 0.0, 1.0]]]], np.float32)
    assert keras.ops.convert_to_numpy(networks.adapter("unit")(image)).tolist() == [[[[0.0, 0.5, 1.0]]]]
    assert keras.ops.convert_to_numpy(networks.adapter("none")(image)).tolist() == [[[[0.0, 127.5, 255.0]]]]
    with pytest.raises(ValueError, match="tf, caffe, torch, unit, none"):
        networks.adapter("bgr")


def test_the_models_folder_lists_keras_and_h5_files_by_name(tmp_path):
    for name in ("a.keras", "b.h5", "both.h5", "both.keras", "a.json", "notes.txt", "sub/c.keras"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    assert networks.find_model_files(tmp_path) == {
        "a": tmp_path / "a.keras", "b": tmp_path / "b.h5", "both": tmp_path / "both.keras"}
    assert networks.find_model_files(tmp_path / "missing") == {}


def test_an_own_model_file_has_its_feature_layers_channels_strides_and_memory(hed, hed_file):
    assert hed.name == "hed_vgg16" and hed.preprocess == "none"  # RGB in [0, 255]: its mean is inside
    assert hed.layers == HED_LAYERS  # not the input, nor the caffe_mean normalization
    assert [hed.strides[name] for name in HED_LAYERS] == list(HED_STRIDES)
    assert hed.channels["block1_conv1"] == 64 and hed.channels["block3_pool"] == 256
    assert hed.channels["block5_conv3"] == 512
    saved = keras.saving.load_model(hed_file)
    assert hed.memory_mib == pytest.approx(saved.count_params() * 4 / 2**20)  # 14.7 M float32 parameters
    assert hed.memory_mib == pytest.approx(56.1, abs=0.1)
    assert hed.stride(["block2_conv2", "block4_pool"]) == 16
    assert hed.min_side == 1  # "same" padding everywhere: any image has features
    assert set(hed.default_layers) <= set(hed.layers)


def test_the_feature_model_feeds_the_network_through_its_adapter_and_keeps_the_named_channels(hed, hed_file):
    image = engine_image()
    targets = ["block4_conv3", "block5_conv3[100,3]", "block4_conv3[7]"]
    whole, channels, same_layer = networks.feature_model(hed, targets)(image)
    saved = keras.saving.load_model(hed_file)  # takes RGB in [0, 255]
    expected = keras.Model(saved.input, [saved.get_layer("block4_conv3").output, saved.output])((image + 1) * 127.5)
    block4, block5 = (keras.ops.convert_to_numpy(tensor) for tensor in expected)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(whole), block4, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(channels), block5[..., [3, 100]], rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(same_layer), block4[..., [7]], rtol=1e-4, atol=1e-3)


def test_targets_this_network_cannot_dream_are_the_clients_errors(hed):
    with pytest.raises(InvalidParams) as error:
        networks.feature_model(hed, ["block5_conv3[12,9999]"])
    assert str(error.value) == ("layers.block5_conv3[12,9999]: channel 9999 is out of range; "
                                "block5_conv3 has 512 channels (0..511)")
    with pytest.raises(UnknownLayer, match="unknown layer 'caffe_mean'; hed_vgg16 has block1_conv1, "):
        networks.check_targets(hed, ["caffe_mean"])
    with pytest.raises(InvalidParams, match="no closing"):
        networks.check_targets(hed, ["block5_conv3[12"])
    assert networks.check_targets(hed, ["block1_pool", "block5_conv3[511,0]"]) == [
        ("block1_pool", None), ("block5_conv3", (0, 511))]


def test_an_own_model_is_rebuilt_at_the_wanted_precision(hed_file, hed):
    """A loaded .keras keeps the float32 policy it was saved with; the network computes in bfloat16 as asked,
    its variables stay float32 (mixed precision), and its features are the float32 ones up to rounding."""
    reduced = networks.load_model_file(hed_file, "bfloat16")
    computing = {layer.name: layer.dtype_policy.name for layer in reduced.base.layers
                 if not isinstance(layer, keras.layers.InputLayer)}
    assert set(computing.values()) == {"mixed_bfloat16"}, computing
    assert {keras.backend.standardize_dtype(weight.dtype) for weight in reduced.base.weights} == {"float32"}
    assert reduced.memory_mib == hed.memory_mib
    image = engine_image()
    full, half = (keras.ops.convert_to_numpy(keras.ops.cast(networks.feature_model(network, ["block3_conv3"])(image),
                                                            "float32")) for network in (hed, reduced))
    assert np.abs(half - full).mean() < 0.02 * np.abs(full).mean()


def test_a_fixed_size_classifier_file_dreams_any_size_without_its_classifier(tmp_path):
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(8, 3, activation="relu", name="conv")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.MaxPooling2D(name="pool")(x)
    x = keras.layers.Dense(10, name="classes")(keras.layers.Flatten()(x))
    keras.Model(inputs, x).save(tmp_path / "tiny.h5")  # the legacy format works too
    (tmp_path / "tiny.json").write_text('{"preprocess": "unit"}')
    network = networks.load_network("tiny", models_dir=tmp_path)
    assert network.layers == ("conv", "pool") and network.channels == {"conv": 8, "pool": 8}
    assert network.strides == {"conv": 1, "pool": 2}
    assert network.min_side == 4  # the 3x3 convolution needs 3 pixels, the 2x2 pool 2 of its outputs
    assert "classes" not in [layer.name for layer in network.base.layers]  # its parameters are not kept either
    assert network.memory_mib == pytest.approx((3 * 3 * 3 * 8 + 8 + 4 * 8) * 4 / 2**20)
    assert networks.feature_model(network, ["pool"])(engine_image(75, 61)).shape == (1, 36, 29, 8)


def test_a_model_file_without_a_usable_sidecar_says_what_to_write(tmp_path, hed_file):
    model = tmp_path / "mine.keras"
    model.write_bytes(hed_file.read_bytes())
    with pytest.raises(WeightsUnavailable) as error:
        networks.load_model_file(model, "float32")
    message = str(error.value)
    assert str(tmp_path / "mine.json") in message and '{"preprocess": CHOICE}' in message
    assert all(f"  {choice}: " in message for choice in networks.PREPROCESSING)
    for text, complaint in (('{"preprocess": "bgr"}', "got 'bgr'"), ("[1]", "got None"), ("{", "Could not read")):
        (tmp_path / "mine.json").write_text(text)
        with pytest.raises(WeightsUnavailable, match=complaint):
            networks.load_model_file(model, "float32")


def test_a_model_file_with_code_in_it_or_no_model_at_all_is_refused(tmp_path):
    inputs = keras.Input((None, None, 3))
    outputs = keras.layers.Lambda(lambda x: x * 2, name="doubling")(keras.layers.Conv2D(4, 3)(inputs))
    keras.Model(inputs, outputs).save(tmp_path / "lambda.keras")
    (tmp_path / "junk.keras").write_bytes(b"not a zip")
    for name in ("lambda", "junk"):
        (tmp_path / f"{name}.json").write_text('{"preprocess": "tf"}')
        with pytest.raises(WeightsUnavailable, match=r"Could not load the model .*\(no Lambda or custom layers\)"):
            networks.load_network(name, models_dir=tmp_path)


def test_names_are_looked_up_never_taken_as_paths_and_built_ins_come_first(tmp_path, hed_file):
    (tmp_path / "vgg16.keras").write_bytes(hed_file.read_bytes())
    (tmp_path / "vgg16.json").write_text('{"preprocess": "none"}')
    for name in ("../vgg16", str(tmp_path / "vgg16.keras"), "vgg16.keras", "resnet"):
        with pytest.raises(InvalidParams, match=r"unknown model .*; this daemon has inception_v3, vgg16, vgg19, "
                                                r"resnet50v2, xception, inception_resnet_v2$"):
            networks.load_network(name, weights="random", models_dir=tmp_path)
    assert networks.load_network("vgg16", weights="random", models_dir=tmp_path).preprocess == "caffe"


def test_a_built_in_offers_its_curated_layers_with_their_channels_and_strides(vgg16):
    assert vgg16.preprocess == "caffe" and vgg16.layers == networks.BUILT_IN["vgg16"].layers
    assert len(vgg16.layers) == 18 and vgg16.layers[-1] == "block5_pool"
    assert vgg16.strides["block1_conv1"] == 1 and vgg16.strides["block3_pool"] == 8
    assert vgg16.strides["block5_pool"] == 32
    assert vgg16.channels["block2_conv2"] == 128 and vgg16.channels["block5_conv3"] == 512
    assert vgg16.memory_mib == pytest.approx(14_714_688 * 4 / 2**20)
    assert set(vgg16.default_layers) <= set(vgg16.layers)
    assert vgg16.min_side == networks.smallest_side(vgg16.base) == 32
    assert networks.feature_model(vgg16, ["block3_pool[0,255]"])(engine_image(64, 48)).shape == (1, 8, 6, 2)


def test_random_weights_are_the_same_in_every_build(vgg16):
    again = networks.load_built_in("vgg16", "random", "float32")
    for name in ("block1_conv1", "block5_conv3"):
        for mine, theirs in zip(vgg16.base.get_layer(name).weights, again.base.get_layer(name).weights):
            np.testing.assert_array_equal(keras.ops.convert_to_numpy(mine), keras.ops.convert_to_numpy(theirs))


def test_a_built_ins_missing_or_bad_weights_file_says_what_to_do(tmp_path):
    with pytest.raises(WeightsUnavailable, match="No weights file at .*--weights random"):
        networks.load_network("vgg16", weights=str(tmp_path / "nowhere.h5"))
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"not hdf5")
    with pytest.raises(WeightsUnavailable, match="Could not read VGG16 weights .*vgg16_weights_tf_dim_ordering"):
        networks.load_network("vgg16", weights=str(junk))


@pytest.mark.slow  # a fresh process loading TensorFlow: about 20 s on 2 cores
def test_imagenet_weights_that_cannot_be_downloaded_are_a_clear_error(tmp_path):
    """Keras's own download and cache, made to fail fast (a proxy on a closed port) whether or not this machine
    is online; the message names the file, where it goes and the ways around it."""
    script = "from dream_engine import networks\nnetworks.load_network('vgg16')\n"
    env = {**os.environ, "KERAS_HOME": str(tmp_path), "HOME": str(tmp_path), "KERAS_BACKEND": "tensorflow",
           "https_proxy": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9", "no_proxy": "", "NO_PROXY": ""}
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=180,
                            cwd=os.path.dirname(os.path.dirname(__file__)))
    assert result.returncode != 0
    message = result.stderr[result.stderr.index("WeightsUnavailable"):]
    assert "The ImageNet weights for VGG16 are not on this machine" in message
    assert f"Put it here: {tmp_path / 'models' / 'vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5'}" in message
    assert "--weights random" in message


@pytest.mark.slow
@pytest.mark.parametrize("name", [name for name in networks.BUILT_IN if name != "vgg16"])
def test_every_built_in_builds_with_its_curated_layers(name):
    network = networks.load_network(name, weights="random")
    assert network.layers == networks.BUILT_IN[name].layers
    assert set(network.default_layers) <= set(network.layers)
    assert network.min_side >= networks.smallest_side(network.base)  # Keras's documented minimum runs (padded
    # ResNet50V2 and Xception would run smaller, down to 1 and 7 px, with little left to dream)
    strides = [network.strides[layer] for layer in network.layers]
    assert strides == sorted(strides) and set(strides) <= {1, 2, 4, 8, 16, 32}, strides
    if name == "inception_v3":  # what dream_engine.model's rule says: 8 to mixed2, 16 to mixed7, then 32
        assert strides == [8] * 3 + [16] * 5 + [32] * 3
    features = networks.feature_model(network, [network.layers[-1]])(engine_image(96, 96))
    assert features.shape[-1] == network.channels[network.layers[-1]]


@pytest.mark.slow
def test_networks_work_on_the_jax_backend_without_tensorflow(hed_file):
    """On a machine with JAX and no TensorFlow (TensorFlow made unimportable here): an own model file at
    bfloat16 and a built-in, through the adapter, to a channel's activations."""
    script = f"""
import sys
class NoTensorFlow:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "tensorflow":
            raise ModuleNotFoundError(name)
sys.meta_path.insert(0, NoTensorFlow())
import numpy as np
from dream_engine import networks
hed = networks.load_network("hed_vgg16", precision="bfloat16", models_dir={str(hed_file.parent)!r})
print(tuple(networks.feature_model(hed, ["block3_conv3[5]"])(np.zeros((1, 40, 40, 3), "float32")).shape))
vgg = networks.load_network("vgg16", weights="random")
print(tuple(networks.feature_model(vgg, ["block5_pool"])(np.zeros((1, 64, 64, 3), "float32")).shape))
import keras
print(keras.backend.backend(), "tensorflow" in sys.modules)
"""
    env = {**os.environ, "KERAS_BACKEND": "jax"}
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300,
                            cwd=os.path.dirname(os.path.dirname(__file__)))
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split("\n")[:3] == ["(1, 10, 10, 1)", "(1, 2, 2, 512)", "jax False"]


def test_the_hed_models_folder_is_one_a_daemon_can_use(hed_file):
    assert networks.find_model_files(hed_file.parent)["hed_vgg16"] == hed_file
    assert json.loads(hed_file.with_suffix(".json").read_text()) == {"preprocess": "none"}
