"""The compiled ascent step for one target set, and the cache of them.

A target set (its layers in canonical_layers order, guided or not, with one
normalization) compiles into Steps: a tile's loss and gradient, a whole
image's full ascent step, and the feature model the guide's features come
from. Each is traced once, for every image, tile and batch shape; the layer
weights and the guide's features are inputs, so any weighting of the same
targets, and any guide, shares them. The loss and its gradient are written
once with keras.ops (Ascent); taking the gradient and compiling are the
backend's (dream_engine.backends). StepCache keeps the most recently used
target sets' Steps."""

import dataclasses
import functools
import gc
import time
from collections import OrderedDict
from typing import Any, NamedTuple

import keras
import numpy as np
from deepdream_common.layer_spec import split_target

from . import backends, networks
from .normalization import laplacian_normalize


def canonical_layers(layers):
    """A target set's one spelling: sorted keys, whatever order a request gave them in."""
    return tuple(sorted(layers))


class StepKey(NamedTuple):
    """What one compiled Steps is for."""

    layers: tuple  # canonical_layers order: the layer weights' order too
    guided: bool
    normalize: str  # "std" or "laplacian" (dream_engine/normalization.py)


class Argument(NamedTuple):
    """One argument of a compiled step: its shape (None for a side of any size) and dtype."""

    shape: tuple
    dtype: str


class Steps(NamedTuple):
    """The compiled functions of one StepKey.

    - tile_gradients(tiles, layer weights, *guide features) -> (loss per tile, gradient);
    - whole_step(image, layer weights, shift, unshift, step_size, *guide features) -> (image, loss):
      one full ascent step on an image that fits one tile, the reference's rule;
    - features: the feature model (an output per target), for the guide's features."""

    tile_gradients: Any
    whole_step: Any
    features: keras.Model


@dataclasses.dataclass
class CompileCounts:
    """What compiling has cost, over every target set compiled so far."""

    traces: int = 0  # how often a step was traced (tests watch it)
    seconds: float = 0.0  # spent compiling (a dream's share: the difference across it)


class Ascent:
    """The loss of one target set and its gradient, written once with keras.ops:
    the two methods are what the backend compiles."""

    def __init__(self, features, key, counts):
        self._features, self._key, self._counts = features, key, counts
        self._backend = backends.current()

    def tile_gradients(self, tiles, layer_weights, *guide_features):
        """(each tile's loss, the gradient of their sum) for a batch of tiles."""
        self._counts.traces += 1  # runs only while tracing (on TensorFlow and JAX)
        return self._losses_and_gradient(tiles, layer_weights, guide_features)

    def whole_step(self, image, layer_weights, shift, unshift, step_size, *guide_features):
        """One ascent step on a whole image under the roll `shift`: (the new image, its loss).
        unshift is -shift, given apart: PyTorch rolls by Python ints only, which cannot be
        negated in TensorFlow's graph."""
        self._counts.traces += 1
        ops = keras.ops
        rolled = ops.roll(image, shift, axis=[0, 1])
        losses, gradient = self._losses_and_gradient(rolled[None], layer_weights, guide_features)
        gradient = ops.roll(gradient[0], unshift, axis=[0, 1])
        if self._key.normalize == "laplacian":
            gradient = laplacian_normalize(gradient, ops)
        else:
            gradient /= ops.std(gradient) + 1e-8
        return ops.clip(image + step_size * gradient, -1.0, 1.0), losses[0]

    def _losses_and_gradient(self, tiles, layer_weights, guide_features):
        scale = loss_scale(tiles)
        scaled_total = functools.partial(self._scaled_total, layer_weights=layer_weights,
                                         guide_features=guide_features, scale=scale)
        losses, gradient = self._backend.value_and_gradient(scaled_total, tiles)
        return losses, gradient / scale

    def _scaled_total(self, tiles, layer_weights, guide_features, scale):
        """(the sum of the tiles' losses times `scale`, each tile's loss): tiles are
        independent, so one backward pass of the sum gives every tile's gradient."""
        ops = keras.ops
        activations = [ops.cast(a, "float32") for a in keras.tree.flatten(self._features(tiles, training=False))]
        if self._key.guided:
            terms = [guided_term(a, g) for a, g in zip(activations, guide_features, strict=True)]
        else:
            terms = [ops.mean(a, axis=[1, 2, 3]) for a in activations]
        losses = ops.sum(ops.stack(terms, axis=1) * layer_weights, axis=1)
        return ops.sum(losses) * scale, losses


def compile_steps(network, key, min_side, counts):
    """Steps for `key` on `network`, each compiled on its first call at `min_side` px."""
    features = networks.feature_model(network, key.layers)  # from the engine's [-1, 1] RGB
    ascent, backend = Ascent(features, key, counts), backends.current()
    channels = [network.channels[layer] if chosen is None else len(chosen)
                for layer, chosen in map(split_target, key.layers)] if key.guided else []
    weights, guides = Argument((len(key.layers),), "float32"), [Argument((None, n), "float32") for n in channels]
    tiles, image, shift = Argument((None, None, None, 3), "float32"), Argument((None, None, 3), "float32"), \
        Argument((2,), "int32")
    tile_gradients = backend.compile_step(ascent.tile_gradients, [tiles, weights, *guides], features)
    whole_step = backend.compile_step(ascent.whole_step, [image, weights, shift, shift, Argument((), "float32"),
                                                          *guides], features)
    # The first calls' inputs (CompiledOnFirstCall): the smallest image the network takes, zero weights,
    # no shift, a guide of one zero feature vector per target.
    tiny = np.zeros([min_side, min_side, 3], np.float32)
    no_weights, no_shift = np.zeros([len(key.layers)], np.float32), np.zeros([2], np.int32)
    no_guides = [np.zeros([1, count], np.float32) for count in channels]
    return Steps(CompiledOnFirstCall(tile_gradients, counts, tiny[None], no_weights, *no_guides),
                 CompiledOnFirstCall(whole_step, counts, tiny, no_weights, no_shift, no_shift, np.float32(0.0),
                                     *no_guides),
                 features)


class StepCache:
    """The Steps of the `capacity` most recently used keys: a client cycling
    through target sets cannot grow memory (about 11 MiB each)."""

    def __init__(self, network, min_side, capacity):
        self._network, self._min_side, self.capacity = network, min_side, capacity
        self.counts = CompileCounts()
        self._steps = OrderedDict()  # StepKey -> Steps, least recently used first

    def __len__(self):
        return len(self._steps)

    def get(self, key):
        """The Steps for `key`, compiled on first use."""
        if key in self._steps:
            self._steps.move_to_end(key)
            return self._steps[key]
        self._steps[key] = steps = compile_steps(self._network, key, self._min_side, self.counts)
        if len(self._steps) > self.capacity:
            self._steps.popitem(last=False)
            # Compiled functions sit in reference cycles (tf.function's traced graphs refer back
            # to their function): only a collection frees them and the runtime's copies.
            gc.collect()
        return steps


class CompiledOnFirstCall:
    """A compiled step whose first call, where the backend traces and optimises it
    (seconds, whatever the input's size), is made on a tiny input and timed into
    `counts.seconds`, so that compiling is reported apart from a dream's own
    steps. The tiny step costs milliseconds; on TensorFlow inputs of any size then reuse
    the optimised graph (JAX compiles again for each new shape, within the dream)."""

    def __init__(self, function, counts, *tiny_inputs):
        self._function, self._counts, self._tiny_inputs = function, counts, tiny_inputs

    def __call__(self, *inputs):
        if self._tiny_inputs is not None:
            started = time.monotonic()
            self._function(*self._tiny_inputs)
            self._counts.seconds += time.monotonic() - started
            self._tiny_inputs = None
        return self._function(*inputs)


def guided_term(activations, guide_features):
    """The DeepDream notebook's guided objective for one target, per tile: each
    dream position matched with the guide feature of largest dot product, the
    term the mean over positions and channels of the products with the match,
    so its gradient at a position is that guide feature (the notebook's). The
    match itself takes no gradient: the backward pass stores no similarity matrix."""
    ops = keras.ops
    shape = ops.shape(activations)
    positions = ops.reshape(activations, (shape[0], -1, shape[3]))
    similarity = ops.matmul(ops.stop_gradient(positions), ops.transpose(guide_features))
    matched = ops.take(guide_features, ops.argmax(similarity, axis=-1), axis=0)
    return ops.mean(positions * matched, axis=[1, 2])


def loss_scale(tiles):
    """The power of two nearest the tile's pixel count. A mean's gradient is
    1/(pixels x channels) per activation, about 1e-7 at 845x562: under
    float16's smallest normal number (6e-5), so without scaling half of a
    float16 backward pass (the GPU's precision) underflows to zero. Scaled by
    the pixel count, the gradient flowing back is about the same at every tile
    size; a power of two makes scaling and unscaling exact, so float32 and
    bfloat16 dreams stay bit-identical to unscaled ones."""
    ops = keras.ops
    shape = ops.shape(tiles)  # sizes unknown while TensorFlow traces are tensors: keras.ops, not math
    pixels = ops.cast(shape[1] * shape[2], "float32")
    return ops.power(2.0, ops.round(ops.log(pixels) / ops.log(2.0)))
