"""DreamEngine: octave gradient ascent (DeepDream) on a Keras network, tiled.

The algorithm is the reference article's (the TensorFlow DeepDream tutorial,
bench/seed_reference.py): the loss is the weighted sum of the mean activations
of chosen layers; each step adds the loss gradient, divided by its standard
deviation, times step_size, and clips to the network's [-1, 1] range. A dream
(_dream_rgb), as the Keras DeepDream example outlines its own:

1. Take the image's RGB in the network's [-1, 1] range (any dtype and channel
   count); with a dream size, a smaller copy stands in for it.
2. List the octave sizes, smallest first, the last the image's own
   (octave_shapes), and shrink the image to the smallest.
3. For every octave, from the smallest up:
   a. scale the dream so far up to the octave's size (from the second on);
   b. ascend: `steps` times, roll the image by a seeded random shift
      (jitter), take the loss gradient, normalize it, add it times step_size
      and clip; in one piece (_WholeImage) or tile by tile (_Tiles), as the
      memory budget decides; report progress after each step;
   c. put back the detail lost (unless `detail` is off): the original at this
      size minus the original at the previous octave's size scaled up to it.
4. With a dream size, scale the dream's change up onto the full-size original.
5. Give the result back in the image's own dtype and channels.

Besides: snapshots of the dream so far for previews, and cancellation between
steps (and between a step's tiles). A target may name channels of its layer; a
guide image turns each target's term into the DeepDream notebook's guided
objective; the gradient may be normalized per band of a Laplacian pyramid
(dream_engine/normalization.py) instead of as a whole. The step is compiled
once per target set (dream_engine/steps.py); taking its gradient and compiling
it are the backend's (dream_engine.backends)."""

import ctypes
import dataclasses
import os
from pathlib import Path

import keras
import numpy as np
from deepdream_common.layer_spec import split_target
from deepdream_common.vocabulary import DEFAULT_MAX_PIXELS, DEFAULT_MODEL, DEFAULT_NORMALIZATION, FULL_SIZE, MIN_SIDE

from . import backends
from . import model as inception
from . import networks
from .errors import DreamCancelled, InvalidImage, InvalidParams, OutOfMemory
from .normalization import laplacian_normalize
from .params import DreamParams
from .pixels import check_image, split
from .steps import StepCache, StepKey, canonical_layers
from .tiling import OVERLAP, TileLayout, rolled_padded_source

DEFAULT_COMPILED_LAYER_SETS = 8  # about 11 MiB each; a client cycling through layer sets cannot grow memory
# The most guide positions (feature vectors) a guided target matches against: more are subsampled evenly.
# The match is a (dream positions x guide positions) matrix per tile, 4 bytes each: at 1024, 64 MiB per
# megapixel at mixed0-2's stride of 8 px (a fifth of the step's own memory), 16 at mixed3-7's.
MAX_GUIDE_POSITIONS = 1024


class DreamEngine:
    def __init__(self, model=DEFAULT_MODEL, weights="imagenet", precision="auto",
                 max_pixels=DEFAULT_MAX_PIXELS, tile_batch=1, fold_batch_norm=None, memory_budget_mib=0,
                 compiled_layer_sets=DEFAULT_COMPILED_LAYER_SETS, tile_overlap=OVERLAP, models_dir=None):
        """One engine dreams with one network: `model` is a built-in's name
        (networks.BUILT_IN, with `weights` "imagenet", "random" or a file) or a
        model file's in `models_dir` (its own weights)."""
        model = DreamParams(model=model).model  # the same checks as a request's
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
        self._tile_side = None  # the largest tile side of the octave being dreamed
        network = networks.load_network(model, weights, self.precision, models_dir)
        if fold_batch_norm is None:
            # Folding is the same function up to rounding, which gradient ascent
            # amplifies (8 levels after 3 steps): float32 stays the reference's exact
            # graph, the reduced precisions (far less exact anyway) take the speed.
            fold_batch_norm = self.precision != "float32"
        self.batch_norm_folded = bool(fold_batch_norm)
        if fold_batch_norm:
            stored = None if self.precision == "float32" else self.precision
            network = dataclasses.replace(network, base=inception.fold_batch_norm(network.base, dtype=stored))
        self.network = network
        self._base = network.base
        self.layers = network.layers
        self.layer_channels = dict(network.channels)
        self.default_layers = dict(network.default_layers)
        self.min_side = network.min_side  # of an octave; an image has the wire's minimum too
        self.min_image_side = max(MIN_SIDE, network.min_side)
        self._steps = StepCache(network, self.min_image_side, compiled_layer_sets)

    @property
    def traces(self):
        """How often a compiled step was traced (tests watch it)."""
        return self._steps.counts.traces

    @property
    def compile_seconds(self):
        """Spent compiling target sets, in all (a dream's share: the difference across it)."""
        return self._steps.counts.seconds

    def dream(self, image, params=None, progress=None, should_stop=None, guide=None):
        """Dream `image` (H x W x C numpy array) and return the result, same shape and dtype.

        `progress(event)` is called after every step; event["snapshot"] is a
        callable, valid during that call only, giving the dream so far (float32
        H x W x 3 in [0, 1] at the octave's size): a preview costs only when taken.
        `guide`, an image of the same kinds as `image` (any size), makes each
        target's term the guided one (_guided_term): the dream grows the
        features the guide has."""
        params = self.resolved(params or DreamParams(model=self.model))
        self.check_targets(params.layers)
        check_image(image, self.min_image_side, self.max_pixels)
        if guide is not None:
            try:
                check_image(guide, self.min_image_side, self.max_pixels)
            except InvalidImage as error:
                raise type(error)(f"guide: {error}") from None
        try:
            dreamed, restore = self._dream_rgb(image, params, progress or (lambda event: None),
                                               should_stop or (lambda: False), guide)
        except Exception as error:  # noqa: BLE001  each backend has its own out-of-memory error; others re-raised
            if not self._backend.is_out_of_memory(error):
                raise
            side = self._tile_side
            raise OutOfMemory(f"out of memory with tiles of up to {side} px; try a smaller tile_size",
                              tile_size=side) from None
        finally:
            release_freed_memory()  # a cancelled or failed dream's buffers too
        dreamed += 1.0
        dreamed /= 2.0
        return restore(dreamed)

    def resolved(self, params):
        """`params` for this engine's network: InvalidParams when they name another
        model; without layers, the network's default targets."""
        if params.model != self.model:
            raise InvalidParams("model", f"this engine dreams with {self.model}, not {params.model}")
        return params if params.layers is not None else dataclasses.replace(params, layers=self.default_layers)

    def check_targets(self, targets):
        """UnknownLayer or InvalidParams for a `layers` key this model cannot dream."""
        networks.check_targets(self.network, targets)

    def _dream_rgb(self, source, params, progress, should_stop, guide):
        """Octave gradient ascent on the `source` image's RGB, in the network's
        [-1, 1] range; returns it and the function that puts it back in the
        image's own form. The full-size original lives only here, so that it
        is freed while the last octave is dreamed (its peak) and made again
        from `source` for the last octave's detail."""
        original, restore = network_rgb(source)
        full_size, smaller = None, dream_shape(original.shape[:2], params.dream_size)
        if smaller:  # the network works on a scaled copy; the original waits for the dream's change
            full_size, original = original, shrink(original, smaller)
            scaled_input = original.copy()  # the dream's change is measured against it (an octave works in place)
        layer_names = canonical_layers(params.layers)
        compiled = self._compiled(layer_names, guide is not None, params.normalize)
        layer_weights = keras.ops.convert_to_tensor(np.array([params.layers[name] for name in layer_names], np.float32))
        if guide is not None:
            guide = self._guide_image(guide, original.shape[:2], params.layers)
        rng = np.random.default_rng(params.seed)
        shapes = octave_shapes(original.shape[:2], params.octaves, params.octave_scale, self.min_side)
        total_work = params.steps * sum(h * w for h, w in shapes)
        done_work = 0

        image = resize(original, shapes[0]) if len(shapes) > 1 else original
        shrunk_original = None  # the original at the previous octave's size, for the detail
        for octave, shape in enumerate(shapes):
            last = octave + 1 == len(shapes)
            if last:
                # Freed before the resize to full size, the job's peak (0.29 GB at 24 MP); the last
                # detail takes it again from `source` (or scaled_input) once the octave is done. The
                # shrunk copy (0.17 GB) stays for it: made again, its resize would cost as much memory.
                original = None
            if octave:
                image = resize(image, shape)
            guide_features = () if guide is None else self._guide_features(guide, shape, params.layers, compiled)
            dreaming = self._octave(image, shape, params, compiled, layer_weights, guide_features, should_stop)
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
            if params.detail and last and shrunk_original is not None:
                # The finest band, between the last two octave sizes, put back as after every
                # octave (and as the Keras example does): without it every multi-octave dream
                # came back softer than the photo. The upscaled shrunk copy is subtracted a band
                # of rows at a time (add_scaled_up, resize's bilinear): no third full-size array.
                image += scaled_input if smaller else network_rgb(source)[0]
                add_scaled_up(image, np.negative(shrunk_original, out=shrunk_original))
                np.clip(image, -1.0, 1.0, out=image)
                shrunk_original = None
            elif params.detail and not last:
                # Put back what shrinking the original lost at this scale, so the
                # next octave starts from the photo's detail, not from a blurred copy.
                # (Nothing is lost yet at the first octave.) The detail is measured between two
                # sizes of the original, never against the octave's own image: a tiled step
                # updates that in place, so the difference would erase the octave's dream.
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

    def warm_up(self, layers=None):
        """One tiny dream that traces and compiles the step for `layers` (None: the
        network's default targets), so that the first real dream does not pay for
        it. Noise, not a flat image: its gradient is real."""
        side = max(96, self.min_image_side)
        noise = np.random.default_rng(0).integers(0, 256, (side, side, 3), dtype=np.uint8)
        self.dream(noise, DreamParams(layers=layers, octaves=1, steps=1, jitter=0, model=self.model))

    def largest_piece(self, layers=None):
        """The most pixels an octave may have to be dreamed in one piece (a
        tile's largest area) under the memory budget, for these targets (None:
        the network's default ones)."""
        stride = self.network.stride(target_layers(layers or self.default_layers))
        per_pixel = inception.step_mib_per_megapixel(self.precision, self.model, stride) / 1e6
        return int(self.memory_budget_mib / per_pixel / self.tile_batch)

    def tile_layout(self, shape, params):
        """How an octave of `shape` is cut: by the request's tile_size when it
        gives one, else the fewest pieces the memory budget allows."""
        params = self.resolved(params)
        align = self.network.stride(target_layers(params.layers))
        if params.tile_size:
            return TileLayout.by_side(*shape, params.tile_size, self.tile_overlap, align)
        return TileLayout.by_area(*shape, self.largest_piece(params.layers), self.tile_overlap, align)

    def status(self):
        """What `info` reports about memory: the budget, what it allows in one
        piece, the compiled layer sets kept, and the resident memory in use.
        Plain reads, safe from another thread (no TensorFlow call)."""
        return {"memory_budget_mib": self.memory_budget_mib, "largest_piece_pixels": self.largest_piece(),
                "tile_overlap": self.tile_overlap, "compiled_layer_sets": len(self._steps),
                "max_compiled_layer_sets": self._steps.capacity, "rss_mib": resident_mib()}

    def _octave(self, image, shape, params, compiled, layer_weights, guide_features, should_stop):
        """The strategy that dreams one octave: whole when it fits the memory
        budget in one piece, else in tiles (chosen once per octave)."""
        tiles = self.tile_layout(shape, params)
        self._tile_side = max(tiles.tile_height, tiles.tile_width)  # for an out-of-memory report
        if len(tiles) == 1:
            return _WholeImage(image, compiled.whole_step, layer_weights, guide_features, params.step_size)
        return _Tiles(image, tiles, compiled.tile_gradients, layer_weights, guide_features, params.step_size,
                      params.normalize, self.tile_batch, should_stop)

    def _guide_image(self, guide, dream_size, targets):
        """The guide in the network's [-1, 1] RGB, no larger than the largest
        octave's guide needs to be (its full size may be far larger). Scaled
        down first, in its own dtype and a colour channel at a time (shrink),
        so that no guide, whatever its shape, has a full-size float RGB copy:
        a 75 x 533,333 gray guide's was 0.5 GB (and a 1.4 GB peak)."""
        largest = guide_shape(guide.shape[:2], min(dream_size[0] * dream_size[1], self.largest_piece(targets)))
        if largest[0] * largest[1] < guide.shape[0] * guide.shape[1]:  # by area: a side may be at MIN_SIDE already
            guide = shrink(guide[..., :3] if guide.shape[2] >= 3 else guide[..., :1], largest)  # alpha is not used
        guide, _restore = split(guide)
        guide *= 2.0
        guide -= 1.0
        return guide

    def _guide_features(self, guide, shape, targets, compiled):
        """Each target's guide features for an octave of `shape`: the guide
        scaled to the octave's area (so that its features have the dream's
        scale), or to the largest piece the memory budget allows, then at most
        MAX_GUIDE_POSITIONS feature vectors per target, evenly subsampled."""
        scaled = resize(guide, guide_shape(guide.shape[:2], min(shape[0] * shape[1], self.largest_piece(targets))))
        features = []
        for activations in keras.tree.flatten(compiled.features(scaled[None], training=False)):
            vectors = keras.ops.convert_to_numpy(keras.ops.cast(activations, "float32"))
            vectors = vectors.reshape(-1, vectors.shape[-1])
            if len(vectors) > MAX_GUIDE_POSITIONS:
                vectors = vectors[np.linspace(0, len(vectors) - 1, MAX_GUIDE_POSITIONS).round().astype(int)]
            features.append(keras.ops.convert_to_tensor(vectors))
        return tuple(features)

    def _compiled(self, layer_names, guided=False, normalize=DEFAULT_NORMALIZATION):
        """The compiled Steps for the targets `layer_names` (any order), guided or not (dream_engine/steps.py)."""
        return self._steps.get(StepKey(canonical_layers(layer_names), guided, normalize))


class _WholeImage:
    """An octave dreamed in one piece. The image stays a backend tensor (on its
    device) for the whole octave: roll, gradient, normalization and update in
    one call (a quarter faster per step at 845x562 than round trips through numpy)."""

    def __init__(self, image, whole_step, layer_weights, guide_features, step_size):
        self._image = keras.ops.convert_to_tensor(image)
        self._whole_step, self._layer_weights, self._guide_features = whole_step, layer_weights, guide_features
        self._step_size = keras.ops.convert_to_tensor(step_size, "float32")

    def step(self, shift):
        """One ascent step under the roll `shift`; returns the loss."""
        self._image, loss = self._whole_step(self._image, self._layer_weights, np.array(shift, np.int32),
                                             -np.array(shift, np.int32), self._step_size, *self._guide_features)
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

    def __init__(self, image, tiles, tile_gradients, layer_weights, guide_features, step_size, normalize, tile_batch,
                 should_stop):
        self._image, self._tiles = image, tiles
        self._tile_gradients, self._layer_weights, self._step_size = tile_gradients, layer_weights, step_size
        self._guide_features = guide_features  # the same for every tile: the guide is matched as a whole
        self._normalize = normalize
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
            tile_losses, tile_gradients = self._tile_gradients(batch, self._layer_weights, *self._guide_features)
            losses.extend(keras.ops.convert_to_numpy(tile_losses).tolist())
            tile_gradients = keras.ops.convert_to_numpy(tile_gradients)  # from the backend's device
            for (y, x), (rows, cols), tile_gradient in zip(origins, windows, tile_gradients):
                # Only the part inside the image frame counts (the padding was reflected).
                inside_rows, inside_cols = min(tiles.tile_height, height - y), min(tiles.tile_width, width - x)
                share = tiles.share((y, x))[:inside_rows, :inside_cols]
                blended[np.ix_(rows[:inside_rows], cols[:inside_cols])] += \
                    tile_gradient[:inside_rows, :inside_cols] * share
        # The reference's update, in place and in its order of operations; the Laplacian pyramid's on the
        # whole octave's gradient, as the whole-image step has it, so that tile borders cannot show.
        if self._normalize == "laplacian":
            blended[...] = laplacian_normalize(blended)
        else:
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


def network_rgb(image):
    """(the image's RGB in the network's [-1, 1] range, split's restore): split's own
    copy, scaled in place (no second full-size array); the same bits every call."""
    rgb, restore = split(image)
    rgb *= 2.0
    rgb -= 1.0
    return rgb, restore


def target_layers(targets):
    """The layers `layers` keys name, without their channels."""
    return sorted({split_target(key)[0] for key in targets})


def guide_shape(size, pixels):
    """(height, width) of a guide of `size` scaled to about `pixels`, its aspect kept, no side under MIN_SIDE."""
    factor = (pixels / (size[0] * size[1])) ** 0.5
    return max(round(size[0] * factor), MIN_SIDE), max(round(size[1] * factor), MIN_SIDE)


def resident_mib():
    """This process's resident memory (Linux /proc; None elsewhere)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) // 1024
    except OSError:
        pass
    return None


def _malloc_trim():
    """glibc's malloc_trim, or None: without glibc (macOS, Windows, musl), or with
    DEEPDREAM_HEAP_TRIM=0 (bench/distinct_sizes.py's comparison)."""
    if os.environ.get("DEEPDREAM_HEAP_TRIM", "1") == "0":
        return None
    try:
        return ctypes.CDLL(None).malloc_trim
    except (OSError, TypeError, AttributeError):  # no C library to ask (Windows), or not glibc
        return None


_MALLOC_TRIM = _malloc_trim()


def release_freed_memory():
    """Give what a dream freed back to the OS. glibc's heap keeps the pages the
    backend frees (a dream's buffers, the oneDNN primitives TensorFlow's
    per-shape caches evict) among live ones, and with every new image size the
    holes fit less: a daemon meeting a new size with each dream grew 0.1-0.5 MiB
    a dream, for good (bench/README.md, "Distinct sizes"). malloc_trim(0)
    merges the free chunks and returns their pages, in 1-3 ms; the next dream
    faults in the pages it needs again. Every dream, not every few: in between,
    the holes fill with chunks that outlive the dream and can no longer be returned."""
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


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
