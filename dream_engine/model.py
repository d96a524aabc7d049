"""The device, the precision and the memory a dream step takes, and InceptionV3's
batch-normalization folding (the networks themselves: dream_engine.networks).
Keras is imported here, in networks and in the engine only; what differs
between Keras's backends (the GPU, its memory) is asked of dream_engine.backends."""

import os
from pathlib import Path

import keras
from deepdream_common.layer_spec import split_target
from deepdream_common.vocabulary import PRECISIONS

from . import backends, networks
from .errors import InvalidParams
from .networks import RANDOM_SEED, keras_cache_dir  # noqa: F401  where tools and tests have found them

IMAGENET_FILE = networks.BUILT_IN["inception_v3"].weights_file("inception_v3")


def describe_device():
    gpu = backends.current().gpu_name()
    return f"GPU: {gpu}" if gpu else "CPU"


def resolve_precision(precision):
    """"auto": mixed float16 on a GPU (CUDA, or Apple's through PyTorch's mps,
    where float16 is native), mixed bfloat16 on a CPU with native bfloat16
    matmuls (AMX, AVX512_BF16), float32 anywhere else; the same rule on every
    backend."""
    if precision not in PRECISIONS:
        raise InvalidParams("precision", f"must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision != "auto":
        return precision
    if backends.current().gpu_name():
        return "float16"
    if _cpu_has_bfloat16():
        return "bfloat16"
    return "float32"


def _cpu_has_bfloat16():
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def load_inception(weights, precision):
    """The InceptionV3 convolutional base (no classifier) with the given weights,
    its layers computing in `precision` (variables stay float32): the built-in
    network's loader (dream_engine.networks), the one every network goes through."""
    return networks.load_built_in("inception_v3", weights, precision).base


def dreamable_layers(base):
    """The concatenation points of the Inception blocks: the layers DeepDream excites."""
    return [layer.name for layer in base.layers if layer.name.startswith("mixed") and "_" not in layer.name]


# Peak resident memory one ascent step adds, in MiB per megapixel of network
# input, by precision and by the deepest layer's stride (deeper layers keep more
# activations for the backward pass). Measured on the 2-core AMX Xeon: the rise
# of VmHWM over one step at 724x724 and 1448x1448 for mixed2, mixed2+mixed5 and
# mixed10, rounded up (bench/README.md, "Memory per megapixel"). float16 stores
# the same two bytes per value as bfloat16; it was not measured on a GPU.
STEP_MIB_PER_MEGAPIXEL = {
    "float32": {8: 415, 16: 500, 32: 560},
    "bfloat16": {8: 230, 16: 285, 32: 305},
    "float16": {8: 230, 16: 285, 32: 305},
}
CPU_BUDGET_SHARE = 32  # of the RAM, for one step's network memory on a CPU (why: bench/README.md)
GPU_BUDGET_SHARE = 2  # of the GPU memory the backend can still take
ASSUMED_RAM_BYTES = 8 * 2**30  # where the OS does not tell (Windows has no sysconf): a small machine's RAM


# Another network's step memory per megapixel over InceptionV3's, each with its default targets
# (InceptionV3's reach stride 16): bench/network_memory.py, float32 on the 2-core AMX Xeon, rounded up
# (InceptionV3 317 MiB per megapixel there; VGG16 842, VGG19 880, ResNet50V2 411, Xception 606,
# InceptionResNetV2 678). VGG's full-resolution 64-channel layers make it the heaviest. A network's
# shallower or deeper targets change little: its early, large layers dominate. A model file, not
# measured, gets the largest factor: tiles too small cost time, too large cost the daemon.
STEP_MEMORY_FACTOR = {"vgg16": 2.7, "vgg19": 2.8, "resnet50v2": 1.3, "xception": 2.0, "inception_resnet_v2": 2.2}
MODEL_FILE_MEMORY_FACTOR = max(STEP_MEMORY_FACTOR.values())
INCEPTION_DEFAULT_STRIDE = 16  # of mixed5, the deepest default target: the other networks' reference


def step_mib_per_megapixel(precision, model, stride):
    """One step's memory per megapixel: InceptionV3's by the stride of the deepest
    target (8 to mixed2, 16 to mixed7, then 32); another network's, InceptionV3's
    with its default targets times the network's factor."""
    if model == "inception_v3":
        return STEP_MIB_PER_MEGAPIXEL[precision][stride]
    factor = STEP_MEMORY_FACTOR.get(model, MODEL_FILE_MEMORY_FACTOR)
    return STEP_MIB_PER_MEGAPIXEL[precision][INCEPTION_DEFAULT_STRIDE] * factor


def default_memory_budget_mib():
    """The memory one ascent step may use, from the device the network runs on:
    on a GPU, half of what the backend can still allocate there (Apple's GPU:
    half of Metal's recommended working set not yet taken); on a CPU, a
    32nd of the RAM (the rest is for the model, the image's own full-size
    arrays, and everything else on the machine)."""
    backend = backends.current()
    if backend.gpu_name():
        return max(1, backend.gpu_free_bytes() // GPU_BUDGET_SHARE // 2**20)
    return max(1, ram_bytes() // CPU_BUDGET_SHARE // 2**20)


def ram_bytes():
    """The machine's physical memory, from sysconf (Linux, macOS); elsewhere (Windows) ASSUMED_RAM_BYTES,
    which --memory-budget overrides."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return ASSUMED_RAM_BYTES


def layer_channels(base, layer_names):
    """{layer: its channel count}."""
    return {name: int(base.get_layer(name).output.shape[-1]) for name in layer_names}


def feature_model(base, targets):
    """One output per target (a `layers` key, deepdream_common.layer_spec), in their order: the
    layer's activations, only the named channels of it where the key names some."""
    outputs = []
    for key in targets:
        layer, channels = split_target(key)
        activations = base.get_layer(layer).output
        outputs.append(activations if channels is None else keras.ops.take(activations, channels, axis=-1))
    return keras.Model(base.input, outputs)


def fold_batch_norm(base, dtype=None):
    """A copy of the frozen network with every batch normalization folded into
    the convolution that feeds it. At inference a BN is a per-channel affine
    map, so conv -> BN equals one conv with a scaled kernel and a bias; the
    copy skips 94 normalization passes forward and backward (a fifth of a
    dream step on a CPU) and computes the same function up to float rounding.

    With `dtype` ("bfloat16", "float16") the copy also stores its weights in
    that type: folded in float64 from the float32 originals and rounded once,
    instead of cast from float32 at every step (a tenth of a step at the
    small octaves, where such fixed costs dominate)."""
    feeding_conv = batch_norms_after_convolutions(base)
    folded_bns = {bn.name for bn in feeding_conv.values()}

    def clone(layer):
        if layer.name in folded_bns:
            return _FoldedAway(name=layer.name, dtype=dtype or layer.dtype_policy)
        config = layer.get_config()
        if dtype:
            config["dtype"] = dtype
        if layer.name in feeding_conv:
            config["use_bias"] = True
        return layer.__class__.from_config(config)

    folded = keras.models.clone_model(base, clone_function=clone)
    for layer in base.layers:
        if layer.name in folded_bns or not layer.weights:
            continue
        target = folded.get_layer(layer.name)
        if layer.name in feeding_conv:
            target.set_weights(_folded_conv_weights(layer, feeding_conv[layer.name]))
        else:
            target.set_weights(layer.get_weights())
    return folded


def batch_norms_after_convolutions(base):
    """{convolution name: the batch normalization it alone feeds} in a
    functional model: the pairs fold_batch_norm may fold. Found with public
    Keras API only (each layer's symbolic `input` and `output` tensors, which
    a functional model shares between a layer and its consumers);
    tests/test_performance_paths.py fails loudly if a Keras version changes that."""
    producers, consumers = {}, {}
    for layer in base.layers:
        producers[id(layer.output)] = layer
        for tensor in keras.tree.flatten(layer.input):
            consumers[id(tensor)] = consumers.get(id(tensor), 0) + 1
    pairs = {}
    for layer in base.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            source = producers.get(id(layer.input))
            if isinstance(source, keras.layers.Conv2D) and consumers[id(source.output)] == 1:
                pairs[source.name] = layer
    return pairs


class _FoldedAway(keras.layers.Layer):
    """Stands where a folded BN stood (same name, same call arguments), passing its input on."""

    def call(self, inputs, training=None, mask=None):
        return inputs


def _folded_conv_weights(conv, bn):
    """Kernel and bias of conv followed by inference-mode BN:
    y = gamma * (conv(x) + b - mean) / sqrt(var + eps) + beta."""
    def float64(variable):  # on any backend and device
        return keras.ops.convert_to_numpy(variable).astype("float64")

    kernel = float64(conv.kernel)
    bias = float64(conv.bias) if conv.use_bias else 0.0
    mean, variance = float64(bn.moving_mean), float64(bn.moving_variance)
    gamma = float64(bn.gamma) if bn.scale else 1.0
    beta = float64(bn.beta) if bn.center else 0.0
    scale = gamma / (variance + bn.epsilon) ** 0.5
    return [(kernel * scale).astype("float32"), ((bias - mean) * scale + beta).astype("float32")]
