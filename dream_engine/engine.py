"""DreamEngine: octave gradient ascent on InceptionV3 (DeepDream), tiled.

The algorithm is the seed article's: the loss is the weighted sum of the mean
activations of chosen layers; each step adds the loss gradient, divided by its
standard deviation, times step_size, and clips to the network's [-1, 1] range;
octaves run the same ascent from small sizes up to the full one. On top of it:
tiles that bound memory, a seeded random roll (jitter), detail re-injection
between octaves, a dream size (a large image dreamed smaller, its change
scaled up onto the original), any dtype and channel count, snapshots of the
dream so far for previews, and cancellation.

The step is written once, with keras.ops, for every Keras backend; taking
its gradient and compiling it are the backend's (dream_engine.backends)."""

import gc
import time
from collections import OrderedDict, namedtuple
from pathlib import Path

import keras
import numpy as np
from deepdream_client.vocabulary import DEFAULT_MAX_PIXELS, FULL_SIZE, MIN_SIDE

from . import backends
from . import model as inception
from .errors import DreamCancelled, InvalidParams, OutOfMemory, UnknownLayer
from .params import DEFAULT_LAYERS, DreamParams
from .pixels import check_image, split
from .tiling import OVERLAP, TileLayout, rolled_padded_source

DEFAULT_COMPILED_LAYER_SETS = 8  # about 11 MiB each; a client cycling through layer sets cannot grow memory


class DreamEngine:
    def __init__(self, model="inception_v3", weights="imagenet", precision="auto",
                 max_pixels=DEFAULT_MAX_PIXELS, tile_batch=1, fold_batch_norm=None, memory_budget_mib=0,
                 compiled_layer_sets=DEFAULT_COMPILED_LAYER_SETS, tile_overlap=OVERLAP):
        if model not in inception.MODELS:
            raise InvalidParams("model", f"must be one of {', '.join(inception.MODELS)}, got {model!r}")
        self.model = model
        self.backend = keras.backend.backend()  # fixed for the process when Keras loaded (startup.use_backend)
        self._backend = backends.current()
        self.weights = str(weights)
        self.precision = inception.resolve_precision(precision)
        self.device = inception.describe_device()
        self.max_pixels = max_pixels
        self.tile_batch = tile_batch  # tiles per network call: throughput vs. memory
        # What one ascent step may use (0: from the device's memory); it decides
        # when an octave is dreamed in tiles and how large they are.
        self.memory_budget_mib = memory_budget_mib or inception.default_memory_budget_mib()
        self.tile_overlap = tile_overlap
        self.compiled_layer_sets = compiled_layer_sets
        self.traces = 0  # how often a compiled function was traced (tests watch it)
        self.compile_seconds = 0.0  # spent compiling layer sets, in all (a dream's share: the difference across it)
        self._tile_side = None  # the largest tile side of the octave being dreamed
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
        self._functions = OrderedDict()  # canonical layer set -> _Compiled, least recently used first

    def dream(self, image, params=None, progress=None, should_stop=None):
        """Dream `image` (H x W x C numpy array) and return the result, same shape and dtype.

        `progress(event)` is called after every step; event["snapshot"] is a
        callable, valid during that call only, giving the dream so far (float32
        H x W x 3 in [0, 1] at the octave's size): a preview costs only when taken."""
        params = params or DreamParams()
        unknown = [name for name in params.layers if name not in self.layers]
        if unknown:
            raise UnknownLayer("layers", f"unknown layer {unknown[0]!r}; this model has {', '.join(self.layers)}")
        check_image(image, MIN_SIDE, self.max_pixels)
        try:
            dreamed, restore = self._dream_rgb(image, params, progress or (lambda event: None),
                                               should_stop or (lambda: False))
        except Exception as error:  # noqa: BLE001  each backend has its own out-of-memory error; others re-raised
            if not self._backend.is_out_of_memory(error):
                raise
            side = self._tile_side
            raise OutOfMemory(f"out of memory with tiles of up to {side} px; try a smaller tile_size",
                              tile_size=side) from None
        dreamed += 1.0
        dreamed /= 2.0
        return restore(dreamed)

    def _dream_rgb(self, image, params, progress, should_stop):
        """Octave gradient ascent on the image's RGB, in the network's [-1, 1]
        range; returns it and the function that puts it back in the image's
        own form. The full-size original lives only here, so that it is freed
        as soon as the last octave no longer needs it."""
        original, restore = split(image)  # split's own copy: scaled in place, no second full-size array
        original *= 2.0
        original -= 1.0
        full_size, smaller = None, dream_shape(original.shape[:2], params.dream_size)
        if smaller:  # the network works on a scaled copy; the original waits for the dream's change
            full_size, original = original, shrink(original, smaller)
            scaled_input = original.copy()  # the dream's change is measured against it (an octave works in place)
        layer_names = canonical_layers(params.layers)
        compiled = self._compiled(layer_names)
        layer_weights = keras.ops.convert_to_tensor(np.array([params.layers[name] for name in layer_names], np.float32))
        rng = np.random.default_rng(params.seed)
        shapes = octave_shapes(original.shape[:2], params.octaves, params.octave_scale, MIN_SIDE)
        total_work = params.steps * sum(h * w for h, w in shapes)
        done_work = 0

        image = resize(original, shapes[0]) if len(shapes) > 1 else original
        shrunk_original = None  # the original at the previous octave's size, for the detail
        for octave, shape in enumerate(shapes):
            if octave + 1 == len(shapes):
                # The last octave needs neither; freed before the resize to full size,
                # the job's peak (at 24 MP they are 0.45 GB).
                original = shrunk_original = None
            if octave:
                image = resize(image, shape)
            dreaming = self._octave(image, shape, params, compiled, layer_weights, should_stop)
            image = None  # the octave's strategy holds it now, in its own form
            for step in range(params.steps):
                if should_stop():
                    raise DreamCancelled("the dream was cancelled")
                shift = tuple(int(s) for s in rng.integers(-params.jitter, params.jitter + 1, size=2)) \
                    if params.jitter else (0, 0)
                loss = dreaming.step(shift)
                done_work += shape[0] * shape[1]
                progress({"octave": octave + 1, "octaves": len(shapes), "step": step + 1,
                          "steps": params.steps, "fraction": done_work / total_work, "loss": loss,
                          "snapshot": dreaming.snapshot})
            image = dreaming.result()
            if params.detail and octave + 1 < len(shapes):
                # Put back what shrinking the original lost at this scale, so the
                # next octave starts from the photo's detail, not from a blurred copy.
                # (Nothing is lost yet at the first octave. The previous code
                # compared with the first octave's image itself, which a tiled
                # step updates in place: that erased the first octave's dream.)
                same_size_original = resize(original, shape)
                if shrunk_original is not None:
                    image += same_size_original  # in two steps: no third array of this size
                    image -= resize(shrunk_original, shape)
                    np.clip(image, -1.0, 1.0, out=image)
                shrunk_original = same_size_original
                del same_size_original
        if full_size is not None:
            # Only the change is scaled up: the photo keeps its own detail (and its depth).
            image -= scaled_input
            add_scaled_up(full_size, image)
            np.clip(full_size, -1.0, 1.0, out=full_size)
            image = full_size
        return image, restore

    def warm_up(self, layers=DEFAULT_LAYERS):
        """One tiny dream that traces and compiles the step for `layers`, so that the
        first real dream does not pay for it. Noise, not a flat image: its gradient is real."""
        noise = np.random.default_rng(0).integers(0, 256, (96, 96, 3), dtype=np.uint8)
        self.dream(noise, DreamParams(layers=layers, octaves=1, steps=1, jitter=0))

    def largest_piece(self, layers=DEFAULT_LAYERS):
        """The most pixels an octave may have to be dreamed in one piece (a
        tile's largest area) under the memory budget, for these layers."""
        per_pixel = inception.step_mib_per_megapixel(self.precision, layers) / 1e6
        return int(self.memory_budget_mib / per_pixel / self.tile_batch)

    def tile_layout(self, shape, params):
        """How an octave of `shape` is cut: by the request's tile_size when it
        gives one, else the fewest pieces the memory budget allows."""
        align = inception.layer_stride(params.layers)
        if params.tile_size:
            return TileLayout.by_side(*shape, params.tile_size, self.tile_overlap, align)
        return TileLayout.by_area(*shape, self.largest_piece(params.layers), self.tile_overlap, align)

    def status(self):
        """What `info` reports about memory: the budget, what it allows in one
        piece, the compiled layer sets kept, and the resident memory in use.
        Plain reads, safe from another thread (no TensorFlow call)."""
        return {"memory_budget_mib": self.memory_budget_mib, "largest_piece_pixels": self.largest_piece(),
                "tile_overlap": self.tile_overlap, "compiled_layer_sets": len(self._functions),
                "max_compiled_layer_sets": self.compiled_layer_sets, "rss_mib": resident_mib()}

    def _octave(self, image, shape, params, compiled, layer_weights, should_stop):
        """The strategy that dreams one octave: whole when it fits the memory
        budget in one piece, else in tiles (chosen once per octave)."""
        tiles = self.tile_layout(shape, params)
        self._tile_side = max(tiles.tile_height, tiles.tile_width)  # for an out-of-memory report
        if len(tiles) == 1:
            return _WholeImage(image, compiled.whole_step, layer_weights, params.step_size)
        return _Tiles(image, tiles, compiled.tile_gradients, layer_weights, params.step_size, self.tile_batch,
                      should_stop)

    def _compiled(self, layer_names):
        """The compiled functions for one layer set, in canonical_layers order
        (each traced once, for every image, tile and batch shape; the weights are
        inputs, so any weighting of the same layers shares them):
        - tile_gradients(tiles, layer weights) -> (loss per tile, gradient);
        - whole_step(image, layer weights, shift, step_size) -> (image, loss):
          one full ascent step on an image that fits one tile, the seed's rule."""
        layer_names = canonical_layers(layer_names)
        if layer_names in self._functions:
            self._functions.move_to_end(layer_names)
        else:
            features = inception.feature_model(self._base, layer_names)
            backend, ops = self._backend, keras.ops

            def losses_and_gradient(tiles, layer_weights):
                scale = loss_scale(tiles)

                def scaled_total(tiles):
                    activations = features(tiles, training=False)
                    means = ops.stack([ops.mean(ops.cast(a, "float32"), axis=[1, 2, 3])
                                       for a in keras.tree.flatten(activations)], axis=1)
                    losses = ops.sum(means * layer_weights, axis=1)
                    return ops.sum(losses) * scale, losses  # tiles are independent: one backward pass for all

                losses, gradient = backend.value_and_gradient(scaled_total, tiles)
                return losses, gradient / scale

            def tile_gradients(tiles, layer_weights):
                self.traces += 1  # runs only while tracing (on TensorFlow and JAX)
                return losses_and_gradient(tiles, layer_weights)

            def whole_step(image, layer_weights, shift, unshift, step_size):
                # unshift is -shift, given apart: PyTorch rolls by Python ints only, which cannot be negated in
                # TensorFlow's graph.
                self.traces += 1
                rolled = ops.roll(image, shift, axis=[0, 1])
                losses, gradient = losses_and_gradient(rolled[None], layer_weights)
                gradient = ops.roll(gradient[0], unshift, axis=[0, 1])
                gradient /= ops.std(gradient) + 1e-8
                return ops.clip(image + step_size * gradient, -1.0, 1.0), losses[0]

            weights, shift, image = ((len(layer_names),), "float32"), ((2,), "int32"), ((None, None, 3), "float32")
            tiny, no_weights = np.zeros([MIN_SIDE, MIN_SIDE, 3], np.float32), np.zeros([len(layer_names)], np.float32)
            no_shift = np.zeros([2], np.int32)
            self._functions[layer_names] = _Compiled(
                _CompiledOnFirstCall(self, backend.compile_step(tile_gradients, [((None, *image[0]), "float32"),
                                                                                 weights], features),
                                     tiny[None], no_weights),
                _CompiledOnFirstCall(self, backend.compile_step(whole_step, [image, weights, shift, shift,
                                                                             ((), "float32")], features),
                                     tiny, no_weights, no_shift, no_shift, np.float32(0.0)))
            if len(self._functions) > self.compiled_layer_sets:
                self._functions.popitem(last=False)
                # Compiled functions sit in reference cycles (tf.function's traced graphs refer back
                # to their function): only a collection frees them and the runtime's copies.
                gc.collect()
        return self._functions[layer_names]


_Compiled = namedtuple("_Compiled", "tile_gradients whole_step")


class _WholeImage:
    """An octave dreamed in one piece. The image stays a backend tensor (on its
    device) for the whole octave: roll, gradient, normalization and update in
    one call (a quarter faster per step at 845x562 than round trips through numpy)."""

    def __init__(self, image, whole_step, layer_weights, step_size):
        self._image = keras.ops.convert_to_tensor(image)
        self._whole_step, self._layer_weights = whole_step, layer_weights
        self._step_size = keras.ops.convert_to_tensor(step_size, "float32")

    def step(self, shift):
        """One ascent step under the roll `shift`; returns the loss."""
        self._image, loss = self._whole_step(self._image, self._layer_weights, np.array(shift, np.int32),
                                             -np.array(shift, np.int32), self._step_size)
        return float(loss)

    def snapshot(self):
        """The dream so far as a new float32 array in [0, 1] (a preview's source)."""
        return keras.ops.convert_to_numpy((self._image + 1.0) / 2.0)

    def result(self):
        """The dreamed octave as numpy; the strategy lets go of it."""
        image, self._image = keras.ops.convert_to_numpy(self._image), None
        return image


class _Tiles:
    """An octave dreamed in tiles, in place: each step computes the loss
    gradient tile by tile under a random roll (jitter) and blends it with
    feathered weights. Tiles are read from the image and their gradients
    added back through index maps of the rolled, padded frame, so a step
    needs one full-size buffer (`blended`, reused by every step) and no
    rolled or padded copy."""

    def __init__(self, image, tiles, tile_gradients, layer_weights, step_size, tile_batch, should_stop):
        self._image, self._tiles = image, tiles
        self._tile_gradients, self._layer_weights, self._step_size = tile_gradients, layer_weights, step_size
        self._tile_batch = tile_batch  # tiles per network call: throughput vs. memory
        self._should_stop = should_stop  # asked between network calls, too: a step may take long
        self._blended = np.empty_like(image)

    def step(self, shift):
        """One ascent step under the roll `shift`; returns the mean loss of the tiles."""
        image, tiles, blended = self._image, self._tiles, self._blended
        height, width = image.shape[:2]
        source_rows = rolled_padded_source(height, tiles.padded_size[0], shift[0])
        source_cols = rolled_padded_source(width, tiles.padded_size[1], shift[1])
        blended.fill(0.0)
        losses = []
        for first in range(0, len(tiles), self._tile_batch):
            if self._should_stop():
                raise DreamCancelled("the dream was cancelled")
            origins = tiles.origins[first : first + self._tile_batch]
            windows = [(source_rows[y : y + tiles.tile_height], source_cols[x : x + tiles.tile_width])
                       for y, x in origins]
            batch = np.stack([image[np.ix_(rows, cols)] for rows, cols in windows])
            tile_losses, tile_gradients = self._tile_gradients(batch, self._layer_weights)
            losses.extend(keras.ops.convert_to_numpy(tile_losses).tolist())
            tile_gradients = keras.ops.convert_to_numpy(tile_gradients)  # from the backend's device
            for (y, x), (rows, cols), tile_gradient in zip(origins, windows, tile_gradients):
                # Only the part inside the image frame counts (the padding was reflected).
                inside_rows, inside_cols = min(tiles.tile_height, height - y), min(tiles.tile_width, width - x)
                share = tiles.share((y, x))[:inside_rows, :inside_cols]
                blended[np.ix_(rows[:inside_rows], cols[:inside_cols])] += \
                    tile_gradient[:inside_rows, :inside_cols] * share
        # The seed's update, in place and in its order of operations.
        blended /= standard_deviation(blended) + 1e-8
        blended *= self._step_size
        image += blended
        np.clip(image, -1.0, 1.0, out=image)
        return float(np.mean(losses))

    def snapshot(self):
        """The dream so far as a new float32 array in [0, 1] (a preview's source)."""
        return (self._image + np.float32(1.0)) / np.float32(2.0)

    def result(self):
        """The dreamed octave; the strategy lets go of it and of its buffer."""
        image, self._image, self._blended = self._image, None, None
        return image


class _CompiledOnFirstCall:
    """A compiled step whose first call, where the backend traces and optimises it
    (seconds, whatever the input's size), is made on a tiny input and timed into the
    engine's compile_seconds, so that compiling is reported apart from a dream's own
    steps. The tiny step costs milliseconds; on TensorFlow inputs of any size then reuse
    the optimised graph (JAX compiles again for each new shape, within the dream)."""

    def __init__(self, engine, function, *tiny_inputs):
        self._engine, self._function, self._tiny_inputs = engine, function, tiny_inputs

    def __call__(self, *inputs):
        if self._tiny_inputs is not None:
            started = time.monotonic()
            self._function(*self._tiny_inputs)
            self._engine.compile_seconds += time.monotonic() - started
            self._tiny_inputs = None
        return self._function(*inputs)


def canonical_layers(layers):
    """A layer set's one spelling: sorted names, whatever order a request gave them in."""
    return tuple(sorted(layers))


def resident_mib():
    """This process's resident memory (Linux /proc; None elsewhere)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) // 1024
    except OSError:
        pass
    return None


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


def dream_shape(size, megapixels):
    """(height, width) of the copy the network dreams for an image of `size`
    under a dream size of `megapixels`, aspect kept and no side under
    MIN_SIDE; None when the image is dreamed at its own size."""
    height, width = size
    if megapixels == FULL_SIZE or height * width <= megapixels * 1e6:
        return None
    factor = max((megapixels * 1e6 / (height * width)) ** 0.5, MIN_SIDE / min(height, width))
    shape = (max(int(height * factor), MIN_SIDE), max(int(width * factor), MIN_SIDE))
    return shape if shape[0] < height and shape[1] < width else None


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


def shrink(image, shape):
    """`image` (float32 H x W x C) scaled down to `shape` through an antialiasing
    (triangle) filter, one channel at a time in Pillow: the temporaries are a
    channel of the image, where the backend's resize copies all of it and keeps
    more (at 24 MP that was 0.5 GB of the dream size's peak)."""
    from PIL import Image

    size = (shape[1], shape[0])
    return np.stack([np.asarray(Image.fromarray(np.ascontiguousarray(image[..., channel])).resize(
        size, Image.Resampling.BILINEAR)) for channel in range(image.shape[2])], axis=2)


def add_scaled_up(target, change, rows_per_band=256):
    """target += `change` scaled up to target's size (bilinear, half-pixel
    centres, as resize() scales up), a band of rows at a time: no temporary
    of the target's size."""
    (rows_low, rows_high, row_weight), (cols_low, cols_high, col_weight) = (
        _bilinear_taps(length, source) for length, source in zip(target.shape[:2], change.shape[:2]))
    col_weight = col_weight[None, :, None]
    for top in range(0, target.shape[0], rows_per_band):
        band = slice(top, top + rows_per_band)
        weight = row_weight[band, None, None]
        rows = change[rows_low[band]] * (1 - weight) + change[rows_high[band]] * weight
        target[band] += rows[:, cols_low] * (1 - col_weight) + rows[:, cols_high] * col_weight


def _bilinear_taps(length, source_length):
    """For each of `length` samples scaled up from `source_length`: the two
    source samples it lies between and the weight of the second."""
    position = np.clip((np.arange(length) + 0.5) * (source_length / length) - 0.5, 0, source_length - 1)
    low = np.floor(position).astype(np.intp)
    return low, np.minimum(low + 1, source_length - 1), (position - low).astype(np.float32)


def resize(image, shape):
    if image.shape[:2] == tuple(shape):
        return image.copy()
    shrinking = shape[0] < image.shape[0]
    return keras.ops.convert_to_numpy(keras.ops.image.resize(image, shape, interpolation="bilinear",
                                                             antialias=shrinking))
