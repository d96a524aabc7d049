"""DreamEngine: octave gradient ascent on InceptionV3 (DeepDream), tiled.

The algorithm is the seed article's: the loss is the weighted sum of the mean
activations of chosen layers; each step adds the loss gradient, divided by its
standard deviation, times step_size, and clips to the network's [-1, 1] range;
octaves run the same ascent from small sizes up to the full one. On top of it:
tiles that bound memory, a seeded random roll (jitter), detail re-injection
between octaves, any dtype and channel count, and cancellation."""

from collections import namedtuple

import numpy as np
import tensorflow as tf

from . import model as inception
from .errors import DreamCancelled, InvalidParams, OutOfMemory, UnknownLayer
from .params import DreamParams
from .pixels import check_image, split
from .tiling import TileLayout, rolled_padded_source

DEFAULT_MAX_PIXELS = 100_000_000


class DreamEngine:
    def __init__(self, model="inception_v3", weights="imagenet", precision="auto",
                 max_pixels=DEFAULT_MAX_PIXELS, tile_batch=1, fold_batch_norm=None):
        if model not in inception.MODELS:
            raise InvalidParams("model", f"must be one of {', '.join(inception.MODELS)}, got {model!r}")
        self.model = model
        self.weights = str(weights)
        self.precision = inception.resolve_precision(precision)
        self.device = inception.describe_device()
        self.max_pixels = max_pixels
        self.tile_batch = tile_batch  # tiles per network call: throughput vs. memory
        self.traces = 0  # how often a compiled function was traced (tests watch it)
        self._base = inception.load_inception(weights, self.precision)
        if fold_batch_norm is None:
            # Folding is the same function up to rounding, which gradient ascent
            # amplifies (8 levels after 3 steps): float32 stays the seed's exact
            # graph, the reduced precisions (far less exact anyway) take the speed.
            fold_batch_norm = self.precision != "float32"
        self.batch_norm_folded = bool(fold_batch_norm)
        if fold_batch_norm:
            stored = None if self.precision == "float32" else self.precision
            self._base = inception.fold_batch_norm(self._base, dtype=stored)
        self.layers = inception.dreamable_layers(self._base)
        self._functions = {}  # layer names -> _Compiled

    def dream(self, image, params=None, progress=None, should_stop=None):
        """Dream `image` (H x W x C numpy array) and return the result, same shape and dtype."""
        params = params or DreamParams()
        unknown = [name for name in params.layers if name not in self.layers]
        if unknown:
            raise UnknownLayer("layers", f"unknown layer {unknown[0]!r}; this model has {', '.join(self.layers)}")
        check_image(image, inception.MIN_SIDE, self.max_pixels)
        rgb, restore = split(image)
        network_input = rgb  # split's own copy: scaled in place, no second full-size array
        network_input *= 2.0
        network_input -= 1.0
        try:
            dreamed = self._dream_rgb(network_input, params, progress or (lambda event: None),
                                      should_stop or (lambda: False))
        except tf.errors.ResourceExhaustedError:
            raise OutOfMemory(
                f"out of memory with tiles of {params.tile_size} px; try a smaller tile_size"
            ) from None
        dreamed += 1.0
        dreamed /= 2.0
        return restore(dreamed)

    def _dream_rgb(self, original, params, progress, should_stop):
        """Octave gradient ascent on an RGB float image in the network's [-1, 1] range."""
        compiled = self._compiled(tuple(params.layers))
        layer_weights = tf.constant(list(params.layers.values()), tf.float32)
        step_size = tf.constant(params.step_size, tf.float32)
        rng = np.random.default_rng(params.seed)
        shapes = octave_shapes(original.shape[:2], params.octaves, params.octave_scale, inception.MIN_SIDE)
        total_work = params.steps * sum(h * w for h, w in shapes)
        done_work = 0

        image = resize(original, shapes[0])
        shrunk_original = image
        for octave, shape in enumerate(shapes):
            if octave:
                image = resize(image, shape)
            tiles = TileLayout(*shape, params.tile_size, align=inception.layer_stride(params.layers))
            whole = len(tiles) == 1
            if whole:
                # An image that fits one tile stays in TensorFlow for the whole
                # octave: roll, gradient, normalization and update in one call
                # (a quarter faster per step at 845x562 than round trips through numpy).
                image = tf.convert_to_tensor(image)
            else:
                blended = np.empty_like(image)  # the gradient of a tiled step, reused by every step
            for step in range(params.steps):
                if should_stop():
                    raise DreamCancelled("the dream was cancelled")
                shift = tuple(int(s) for s in rng.integers(-params.jitter, params.jitter + 1, size=2)) \
                    if params.jitter else (0, 0)
                if whole:
                    image, loss = compiled.whole_step(image, layer_weights, tf.constant(shift, tf.int32), step_size)
                    loss = float(loss)
                else:
                    loss = self._tiled_step(image, tiles, blended, compiled, layer_weights, shift,
                                            params.step_size, should_stop)
                done_work += shape[0] * shape[1]
                progress({"octave": octave + 1, "octaves": len(shapes), "step": step + 1,
                          "steps": params.steps, "fraction": done_work / total_work, "loss": loss})
            if whole:
                image = np.array(image)
            else:
                del blended
            if params.detail and octave + 1 < len(shapes):
                # Put back what shrinking the original lost at this scale, so the
                # next octave starts from the photo's detail, not from a blurred copy.
                same_size_original = resize(original, shape)
                image += same_size_original - resize(shrunk_original, shape)
                np.clip(image, -1.0, 1.0, out=image)
                shrunk_original = same_size_original
        return image

    def _tiled_step(self, image, tiles, blended, compiled, layer_weights, shift, step_size, should_stop):
        """One ascent step on a large image, in place: the loss gradient is
        computed tile by tile under a random roll (jitter) and blended with
        feathered weights. Tiles are read from the image and their gradients
        added back through index maps of the rolled, padded frame, so a step
        needs one full-size buffer (`blended`) and no rolled or padded copy.
        Returns the mean loss of the tiles."""
        height, width = image.shape[:2]
        source_rows = rolled_padded_source(height, tiles.padded_size[0], shift[0])
        source_cols = rolled_padded_source(width, tiles.padded_size[1], shift[1])
        blended.fill(0.0)
        losses = []
        for first in range(0, len(tiles), self.tile_batch):
            if should_stop():
                raise DreamCancelled("the dream was cancelled")
            origins = tiles.origins[first : first + self.tile_batch]
            windows = [(source_rows[y : y + tiles.tile_height], source_cols[x : x + tiles.tile_width])
                       for y, x in origins]
            batch = np.stack([image[np.ix_(rows, cols)] for rows, cols in windows])
            tile_losses, tile_gradients = compiled.tile_gradients(batch, layer_weights)
            losses.extend(tile_losses.numpy().tolist())
            for (y, x), (rows, cols), tile_gradient in zip(origins, windows, tile_gradients.numpy()):
                # Only the part inside the image frame counts (the padding was reflected).
                inside_rows, inside_cols = min(tiles.tile_height, height - y), min(tiles.tile_width, width - x)
                share = tiles.share((y, x))[:inside_rows, :inside_cols]
                blended[np.ix_(rows[:inside_rows], cols[:inside_cols])] += \
                    tile_gradient[:inside_rows, :inside_cols] * share
        # The seed's update, in place and in its order of operations.
        blended /= standard_deviation(blended) + 1e-8
        blended *= step_size
        image += blended
        np.clip(image, -1.0, 1.0, out=image)
        return float(np.mean(losses))

    def _compiled(self, layer_names):
        """The compiled functions for one layer set (each traced once, for every
        image, tile and batch shape):
        - tile_gradients(tiles, layer weights) -> (loss per tile, gradient);
        - whole_step(image, layer weights, shift, step_size) -> (image, loss):
          one full ascent step on an image that fits one tile, the seed's rule."""
        if layer_names not in self._functions:
            features = inception.feature_model(self._base, layer_names)

            def losses_and_gradient(tiles, layer_weights):
                scale = loss_scale(tiles)
                with tf.GradientTape() as tape:
                    tape.watch(tiles)
                    activations = features(tiles, training=False)
                    means = tf.stack([tf.reduce_mean(tf.cast(a, tf.float32), axis=[1, 2, 3])
                                      for a in tf.nest.flatten(activations)], axis=1)
                    losses = tf.reduce_sum(means * layer_weights, axis=1)
                    total = tf.reduce_sum(losses) * scale  # tiles are independent: one backward pass for all
                return losses, tape.gradient(total, tiles) / scale

            weights_spec = tf.TensorSpec([len(layer_names)], tf.float32)

            @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32), weights_spec])
            def tile_gradients(tiles, layer_weights):
                self.traces += 1  # runs only while tracing
                return losses_and_gradient(tiles, layer_weights)

            @tf.function(input_signature=[tf.TensorSpec([None, None, 3], tf.float32), weights_spec,
                                          tf.TensorSpec([2], tf.int32), tf.TensorSpec([], tf.float32)])
            def whole_step(image, layer_weights, shift, step_size):
                self.traces += 1
                rolled = tf.roll(image, shift, axis=[0, 1])
                losses, gradient = losses_and_gradient(rolled[None], layer_weights)
                gradient = tf.roll(gradient[0], -shift, axis=[0, 1])
                gradient /= tf.math.reduce_std(gradient) + 1e-8
                return tf.clip_by_value(image + step_size * gradient, -1.0, 1.0), losses[0]

            self._functions[layer_names] = _Compiled(tile_gradients, whole_step)
        return self._functions[layer_names]


_Compiled = namedtuple("_Compiled", "tile_gradients whole_step")


def loss_scale(tiles):
    """The power of two nearest the tile's pixel count. A mean's gradient is
    1/(pixels x channels) per activation, about 1e-7 at 845x562: under
    float16's smallest normal number (6e-5), so without scaling half of a
    float16 backward pass (the GPU's precision) underflows to zero. Scaled by
    the pixel count, the gradient flowing back is about the same at every tile
    size; a power of two makes scaling and unscaling exact, so float32 and
    bfloat16 dreams stay bit-identical to unscaled ones."""
    pixels = tf.cast(tf.shape(tiles)[1] * tf.shape(tiles)[2], tf.float32)
    return tf.pow(2.0, tf.round(tf.math.log(pixels) / tf.math.log(2.0)))


def standard_deviation(array, rows_per_chunk=512):
    """array.std(), without the full-size temporary numpy makes for it. Small
    arrays take numpy's own (the reference-equivalence path); large ones are
    summed in float64 a band of rows at a time."""
    if array.shape[0] <= rows_per_chunk:
        return array.std()
    count = array.size
    total = sum(float(np.sum(array[row : row + rows_per_chunk], dtype=np.float64))
                for row in range(0, array.shape[0], rows_per_chunk))
    mean = total / count
    squares = 0.0
    for row in range(0, array.shape[0], rows_per_chunk):
        band = array[row : row + rows_per_chunk].astype(np.float64)
        band -= mean
        squares += float(np.dot(band.ravel(), band.ravel()))
    return np.float32((squares / count) ** 0.5)


def octave_shapes(size, octaves, scale, min_side):
    """(height, width) of each octave, smallest first, the last the image's own;
    octaves that would be smaller than the network accepts are left out."""
    height, width = size
    shapes = []
    for n in range(octaves - 1, -1, -1):
        factor = scale ** -n
        shape = (int(height * factor), int(width * factor))
        if min(shape) >= min_side and shape not in shapes:
            shapes.append(shape)
    return shapes or [(height, width)]


def resize(image, shape):
    if image.shape[:2] == tuple(shape):
        return image.copy()
    shrinking = shape[0] < image.shape[0]
    return tf.image.resize(image, shape, method="bilinear", antialias=shrinking).numpy()
