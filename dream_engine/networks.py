"""The networks a dream can use, and what the engine needs to know of each.

Two kinds: the built-in ImageNet classifiers of keras.applications (BUILT_IN,
by name) and the user's own Keras model files in a models folder (named by
their file stem, with a NAME.json sidecar saying what input they expect).
Either loads as a Network: the convolutional base at the wanted precision, the
layers worth dreaming, each one's channel count and stride, its parameters'
memory, and its preprocessing.

The engine's image space is [-1, 1] RGB for every network, so that a step
size means the same everywhere; feature_model() puts the network's input
adapter (adapter()) in front of it. Keras only, no TensorFlow: this module
runs on every Keras backend."""

import json
import math
import os
import socket
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
from deepdream_common.layer_spec import split_target
from deepdream_common.vocabulary import DEFAULT_LAYERS

from .errors import InvalidParams, UnknownLayer, WeightsUnavailable
from .model_files import find_model_files

# What a model file's sidecar may say about its input, and what the adapter feeds it.
PREPROCESSING = {
    "tf": "RGB in [-1, 1] (Keras's InceptionV3, ResNet50V2, Xception, InceptionResNetV2, MobileNet)",
    "caffe": "BGR in [0, 255] minus the ImageNet mean of each channel (Keras's VGG16, VGG19, ResNet50; Caffe models)",
    "torch": "RGB in [0, 1] minus the ImageNet mean, divided by its standard deviation (torchvision's models)",
    "unit": "RGB in [0, 1]",
    "none": "RGB in [0, 255] (models that do their own preprocessing, e.g. EfficientNet, ConvNeXt)",
}
IMAGENET_MEAN_BGR = (103.939, 116.779, 123.68)  # Keras's "caffe" mode, on [0, 255]
IMAGENET_MEAN_RGB = (0.485, 0.456, 0.406)  # Keras's and torchvision's "torch" mode, on [0, 1]
IMAGENET_STD_RGB = (0.229, 0.224, 0.225)

KERAS_POLICY = {"float32": "float32", "bfloat16": "mixed_bfloat16", "float16": "mixed_float16"}
RANDOM_SEED = 1234
DOWNLOAD_TIMEOUT_S = 60
PROBE_SIDES = (512, 1024)  # input sides strides are measured at: 512 apart, a multiple of every stride up to 512


@dataclass(frozen=True)
class BuiltIn:
    """A keras.applications network: its constructor, its preprocessing, and
    the layers offered for dreaming (a short list of block outputs, shallow
    to deep: each dreams differently, the rest of the ~100-800 layers add
    little but a longer menu), with the target a request without one gets, and
    the smallest image side it takes (Keras's documented minimum: InceptionV3
    and VGG need it; ResNet50V2 and Xception pad and would compute on less, to
    little purpose)."""

    application: str
    preprocess: str
    layers: tuple
    default_layers: dict
    min_side: int

    def weights_file(self, name):
        """The file Keras downloads for ImageNet weights without the classifier
        (the same pattern for all six)."""
        return f"{name}_weights_tf_dim_ordering_tf_kernels_notop.h5"


def _vgg_layers(convolutions_per_block):
    return tuple(name for block, count in enumerate(convolutions_per_block, start=1)
                 for name in [f"block{block}_conv{index}" for index in range(1, count + 1)] + [f"block{block}_pool"])


# The default targets other than InceptionV3's are a stride-16 layer, about
# where InceptionV3's mixed5 is; provisional: not yet seen dreamed with their
# ImageNet weights (no download on the machines this was written on).
BUILT_IN = {
    # Today's network; dream_engine.model still loads it for the engine.
    "inception_v3": BuiltIn("InceptionV3", "tf", tuple(f"mixed{index}" for index in range(11)), dict(DEFAULT_LAYERS),
                             75),
    "vgg16": BuiltIn("VGG16", "caffe", _vgg_layers((2, 2, 3, 3, 3)), {"block4_conv3": 1.0}, 32),
    "vgg19": BuiltIn("VGG19", "caffe", _vgg_layers((2, 2, 4, 4, 4)), {"block4_conv4": 1.0}, 32),
    # The output of each residual block (after its addition).
    "resnet50v2": BuiltIn("ResNet50V2", "tf", tuple(
        f"conv{stage}_block{block}_out" for stage, blocks in ((2, 3), (3, 4), (4, 6), (5, 3))
        for block in range(1, blocks + 1)), {"conv4_block3_out": 1.0}, 32),
    # Keras names Xception's residual additions automatically ("add_7": the
    # number depends on what the process built before), so a block's output is
    # taken where the next block starts: blockN_sepconv1_act is ReLU(output of
    # block N-1) for N = 3..13; block14 (no residual) adds its two activations.
    "xception": BuiltIn("Xception", "tf", tuple(f"block{block}_sepconv1_act" for block in range(3, 14))
                        + ("block14_sepconv1_act", "block14_sepconv2_act"), {"block8_sepconv1_act": 1.0}, 71),
    # The three reduction blocks' concatenations and every fifth residual block's output
    # (of 10 x block35, 20 x block17, 9 x block8 + block8_10, which has no activation).
    "inception_resnet_v2": BuiltIn("InceptionResNetV2", "tf", (
        "mixed_5b", "block35_5_ac", "block35_10_ac", "mixed_6a", "block17_5_ac", "block17_10_ac", "block17_15_ac",
        "block17_20_ac", "mixed_7a", "block8_5_ac", "block8_9_ac", "conv_7b_ac"), {"block17_10_ac": 1.0}, 75),
}

# The kinds of layer an own model file offers for dreaming (when their output is
# a feature map): what computes features. Left out: the input, preprocessing
# (Normalization, Rescaling, ...), normalization (BatchNormalization: the same
# features as the layer before it, rescaled), padding, cropping, dropout, reshapes.
DREAMABLE_KINDS = (
    keras.layers.Conv2D, keras.layers.DepthwiseConv2D, keras.layers.SeparableConv2D, keras.layers.Conv2DTranspose,
    keras.layers.Concatenate, keras.layers.Add, keras.layers.Average, keras.layers.Maximum, keras.layers.Multiply,
    keras.layers.Activation, keras.layers.ReLU, keras.layers.LeakyReLU, keras.layers.ELU, keras.layers.PReLU,
    keras.layers.MaxPooling2D, keras.layers.AveragePooling2D,
)


@dataclass(frozen=True)
class Network:
    """A loaded network. `base` takes the network's own input (see `preprocess`);
    `layers` are the dreamable ones, shallow to deep; `channels` and `strides`
    (input pixels per activation, for tile alignment) are per dreamable layer;
    `min_side` is the smallest image side (height and width) it takes."""

    name: str
    base: keras.Model
    preprocess: str
    layers: tuple
    channels: dict
    strides: dict
    default_layers: dict
    min_side: int

    @property
    def memory_mib(self):
        """What the parameters take, as stored (a mixed precision stores float32)."""
        return sum(math.prod(weight.shape) * _bytes_per_value(weight.dtype) for weight in self.base.weights) / 2**20

    def stride(self, layer_names):
        """Input pixels per activation at the deepest of these layers: what tiles align to."""
        return max(self.strides[name] for name in layer_names)


def load_network(name, weights="imagenet", precision="float32", models_dir=None):
    """The network `name`: a built-in (with `weights` "imagenet", "random" or a
    weights file's path) or, failing that, a model file in `models_dir` (its
    own weights). Names are looked up, never taken as paths.
    `precision` is a resolved one (float32, bfloat16, float16)."""
    if name in BUILT_IN:
        return load_built_in(name, weights, precision)
    files = find_model_files(models_dir) if models_dir else {}
    if name not in files:
        known = ", ".join(list(BUILT_IN) + sorted(set(files) - set(BUILT_IN)))
        raise InvalidParams("model", f"unknown model {name!r}; this daemon has {known}")
    return load_model_file(files[name], precision)


def load_built_in(name, weights, precision):
    spec = BUILT_IN[name]
    base = _build_application(spec, name, weights, precision)
    return _network(name, base, spec.preprocess, spec.layers, dict(spec.default_layers), spec.min_side)


def load_model_file(path, precision):
    """A Network from a Keras model file (its classifier, if any, cut off after
    the deepest dreamable layer), at `precision`, taking images of any size."""
    path = Path(path)
    preprocess = read_preprocess(path)
    try:
        # Safe mode: a model file is data, not code (a Lambda layer's serialized function is refused).
        model = keras.saving.load_model(path, compile=False, safe_mode=True)
        inputs = model.inputs
    except Exception as error:  # noqa: BLE001  h5py, zipfile, JSON and Keras each raise their own for a bad file
        raise WeightsUnavailable(
            f"Could not load the model {path}: {_first_line(error)}. It must be a Keras model saved with "
            f"model.save() (.keras, or the legacy .h5), built from Keras's own layers (no Lambda or custom layers)."
        ) from None
    if len(inputs) != 1 or len(inputs[0].shape) != 4 or inputs[0].shape[-1] != 3:
        raise WeightsUnavailable(f"The model {path} must take one image, height x width x 3 channels "
                                 f"(channels last); its inputs are {[tuple(tensor.shape) for tensor in inputs]}")
    candidates = [layer.name for layer in model.layers
                  if isinstance(layer, DREAMABLE_KINDS) and len(layer.output.shape) == 4]
    layers = []
    if candidates:
        base = _any_size_at_precision(keras.Model(inputs[0], [model.get_layer(name).output for name in candidates]),
                                      precision, path)
        strides = _measured_strides(base, candidates)
        layers = [name for name in candidates if strides[name]]  # not those whose size ignores the image's
    if not layers:
        raise WeightsUnavailable(f"The model {path} has no layer to dream: no convolution, pooling, activation or "
                                 f"merge layer whose output is a feature map that follows the image's size")
    default = layers[(2 * len(layers)) // 3]  # two thirds of the way down: structure, not only colour
    return _network(path.stem, base, preprocess, layers, {default: 1.0}, smallest_side(base))


def read_preprocess(model_path):
    """The "preprocess" value of the model's sidecar NAME.json; a clear error
    saying what to write when it is missing or wrong."""
    sidecar = Path(model_path).with_suffix(".json")
    if not sidecar.is_file():
        raise WeightsUnavailable(f"The model {model_path} has no {sidecar.name} next to it saying what input the "
                                 f"network expects. Add {sidecar} with {{\"preprocess\": CHOICE}}.\n{_choices()}")
    try:
        settings = json.loads(sidecar.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise WeightsUnavailable(f"Could not read {sidecar}: {_first_line(error)}. It must be JSON like "
                                 f"{{\"preprocess\": \"caffe\"}}.\n{_choices()}") from None
    value = settings.get("preprocess") if isinstance(settings, dict) else None
    if value not in PREPROCESSING:
        raise WeightsUnavailable(f"{sidecar}: \"preprocess\" must be one of {', '.join(PREPROCESSING)}, "
                                 f"got {value!r}.\n{_choices()}")
    return value


def adapter(preprocess):
    """A keras.ops function from the engine's image space (RGB in [-1, 1]) to
    the input the network's `preprocess` names (PREPROCESSING)."""
    if preprocess == "tf":
        return lambda image: image
    # Per-channel constants as float32 arrays: a functional model's symbolic tensors take no Python lists.
    if preprocess == "caffe":
        offset = np.float32(127.5) - np.array(IMAGENET_MEAN_BGR, np.float32)
        return lambda image: keras.ops.flip(image, axis=-1) * 127.5 + offset
    if preprocess == "torch":
        std = np.array(IMAGENET_STD_RGB, np.float32)
        scale, offset = 0.5 / std, (0.5 - np.array(IMAGENET_MEAN_RGB, np.float32)) / std
        return lambda image: image * scale + offset
    if preprocess == "unit":
        return lambda image: image * 0.5 + 0.5
    if preprocess == "none":
        return lambda image: image * 127.5 + 127.5
    raise ValueError(f"unknown preprocessing {preprocess!r}: one of {', '.join(PREPROCESSING)}")


def check_targets(network, targets):
    """The `layers` keys ("mixed4", "mixed5[12,87]") -> [(layer, channels or None)],
    in their order; UnknownLayer or InvalidParams for a key this network cannot dream."""
    chosen = []
    for key in targets:
        try:
            layer, channels = split_target(key)
        except ValueError as error:
            raise InvalidParams("layers", str(error)) from None
        if layer not in network.channels:
            raise UnknownLayer("layers", f"unknown layer {layer!r}; {network.name} has {', '.join(network.layers)}")
        count = network.channels[layer]
        for channel in channels or ():
            if channel >= count:
                raise InvalidParams(f"layers.{key}", f"channel {channel} is out of range; "
                                                     f"{layer} has {count} channels (0..{count - 1})")
        chosen.append((layer, channels))
    return chosen


def feature_model(network, targets):
    """A keras.Model from an image batch in the engine's space (RGB in [-1, 1])
    through the network's input adapter to one output per target, in the
    targets' order: the layer's activations, only the named channels of it
    where the key names some (so the mean of an output is the target's term)."""
    chosen = check_targets(network, targets)
    layer_names = list(dict.fromkeys(layer for layer, _ in chosen))
    layers = keras.Model(network.base.input, [network.base.get_layer(name).output for name in layer_names])
    image = keras.Input((None, None, 3), name="image")
    activations = dict(zip(layer_names, keras.tree.flatten(layers(adapter(network.preprocess)(image)))))
    outputs = [activations[layer] if channels is None else keras.ops.take(activations[layer], channels, axis=-1)
               for layer, channels in chosen]
    return keras.Model(image, outputs, name=f"{network.name}_features")


def _network(name, base, preprocess, layers, default_layers, min_side):
    strides = _measured_strides(base, layers)
    channels = {layer: int(base.get_layer(layer).output.shape[-1]) for layer in layers}
    return Network(name, base, preprocess, tuple(layers), channels, strides, default_layers, min_side)


def smallest_side(base):
    """The smallest side of a square image every layer of `base` has an output
    for (below it Keras's shape computation raises ValueError: a valid
    convolution or pool with nothing left to slide over); at most PROBE_SIDES[0],
    where the strides were measured."""
    low, high = 1, PROBE_SIDES[0]
    while low < high:
        middle = (low + high) // 2
        try:
            base.compute_output_shape((1, middle, middle, 3))
            high = middle
        except ValueError:
            low = middle + 1
    return low


def _measured_strides(base, layer_names):
    """{layer: input pixels per activation}, from the output sizes Keras computes
    (no data runs) at two input sides: their difference over the outputs'
    difference is exact whatever the padding. 0 for an output whose size does
    not follow the image's."""
    small, large = (keras.Model(base.input, [base.get_layer(name).output for name in layer_names])
                    .compute_output_shape((1, side, side, 3)) for side in PROBE_SIDES)
    if len(layer_names) == 1:
        small, large = [small], [large]
    return {name: round((PROBE_SIDES[1] - PROBE_SIDES[0]) / (after[1] - before[1])) if after[1] != before[1] else 0
            for name, before, after in zip(layer_names, small, large)}


def _any_size_at_precision(model, precision, path):
    """A copy of the model whose layers compute in `precision` (a loaded model
    keeps the dtype policy it was saved with) and whose input takes any height
    and width (a saved model may have fixed them), with the same weights."""
    policy = KERAS_POLICY[precision]

    def at_policy(layer):
        config = layer.get_config()
        config["dtype"] = policy
        return layer.__class__.from_config(config)

    try:
        copy = keras.models.clone_model(model, input_tensors=keras.Input((None, None, 3)), clone_function=at_policy)
        for layer in model.layers:
            if layer.weights:
                copy.get_layer(layer.name).set_weights(layer.get_weights())
    except Exception as error:  # noqa: BLE001  Keras raises ValueError, TypeError or its own for a layer it cannot rebuild
        raise WeightsUnavailable(f"Could not rebuild the model {path} for images of any size at {precision}: "
                                 f"{_first_line(error)}") from None
    return copy


def _build_application(spec, name, weights, precision):
    """The keras.applications network without its classifier, computing in
    `precision` (variables stay float32), with ImageNet, seeded random or a file's weights."""
    build = getattr(keras.applications, spec.application)
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(KERAS_POLICY[precision])
    try:
        if weights == "random":
            # Seeded so that every process builds the same "random" network:
            # tests and offline smoke runs must be reproducible.
            keras.utils.set_random_seed(RANDOM_SEED)
            return build(include_top=False, weights=None, input_shape=(None, None, 3))
        if weights == "imagenet":
            return _imagenet(build, spec, name)
        return _weights_from_file(build, spec, name, Path(weights).expanduser())
    finally:
        keras.config.set_dtype_policy(previous)


def _imagenet(build, spec, name):
    previous_timeout = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)  # an unreachable hub must not hang the daemon
    try:
        return build(include_top=False, weights="imagenet", input_shape=(None, None, 3))
    except Exception as error:  # noqa: BLE001  Keras raises a bare Exception for a failed fetch
        raise weights_not_downloaded(spec.application, spec.weights_file(name), error) from None
    finally:
        socket.setdefaulttimeout(previous_timeout)


def weights_not_downloaded(application, file_name, error):
    """The error for ImageNet weights that are neither cached nor downloadable:
    which file, where it goes, and the two ways around it."""
    return WeightsUnavailable(
        f"The ImageNet weights for {application} are not on this machine and could not be "
        f"downloaded ({_first_line(error)}).\n"
        f"Missing file: {file_name}\n"
        f"Put it here: {keras_cache_dir() / file_name}\n"
        f"or pass a weights file with --weights /path/to/{file_name} "
        f"(a Keras .weights.h5 file works too),\n"
        f"or try the tool offline with --weights random (untrained network: abstract textures, not dreams).")


def _weights_from_file(build, spec, name, path):
    if not path.is_file():
        raise WeightsUnavailable(
            f"No weights file at {path}. Use --weights imagenet, --weights random, "
            f"or the path of an existing {spec.application} weights file (.h5 or .weights.h5).")
    try:
        return build(include_top=False, weights=str(path), input_shape=(None, None, 3))
    except Exception as error:  # noqa: BLE001  h5py, Keras and the OS each raise their own for a bad file
        raise WeightsUnavailable(
            f"Could not read {spec.application} weights from {path}: {_first_line(error)}. "
            f"The file must hold weights for {spec.application} without its classifier (Keras's "
            f"{spec.weights_file(name)}, or a .weights.h5 saved from "
            f"keras.applications.{spec.application}(include_top=False)).") from None


def keras_cache_dir():
    """Where Keras keeps downloaded weights (what keras.utils.get_file uses)."""
    return Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "models"


def _choices():
    return "CHOICE is one of:\n" + "\n".join(f"  {name}: {meaning}" for name, meaning in PREPROCESSING.items())


def _bytes_per_value(dtype):
    name = keras.backend.standardize_dtype(dtype)
    return 1 if name == "bool" else int("".join(filter(str.isdigit, name))) // 8  # float32 -> 4, bfloat16 -> 2


def _first_line(error):
    return str(error).strip().splitlines()[0].rstrip(".") if str(error).strip() else type(error).__name__
