#!/usr/bin/env python3
# DeepDream for GIMP 3: Filters > DeepDream...
#
# Sends the active layer's pixels (or the selection's neighbourhood) to the
# deepdream-daemon over ZeroMQ and puts the dream into a new layer above it,
# in one undo step. Filters > DeepDream: Zoom... dreams an infinite zoom of the
# layer into a new image, a layer per frame. Runs in GIMP's own Python with gi and
# the standard library only: the installer copies the `deepdream_client` package
# (protocol + client) and msgpack's pure-Python files beside this file; pyzmq is
# used where GIMP's Python has it, else the client speaks ZMTP itself (zmtp.py).
# Scripts: pdb procedures "python-fu-deepdream" and "python-fu-deepdream-zoom".

import os
import sys
from array import array

import gi
gi.require_version('Gimp', '3.0')
gi.require_version('GimpUi', '3.0')
gi.require_version('Gegl', '0.4')
gi.require_version('Gtk', '3.0')
gi.require_version('Gdk', '3.0')
from gi.repository import Gdk, Gegl, Gimp, GimpUi, GLib, GObject, Gtk

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from deepdream_client.layer_spec import format_layers, parse_layers  # standard library only, like the vocabulary
from deepdream_client.vocabulary import (AUTOMATIC_TILES, BUILT_IN_MODELS, DEFAULT_ENDPOINT, DEFAULT_LAYERS,
                                         DEFAULT_MODEL, DEFAULT_NORMALIZATION, FULL_SIZE, GIMP_SEED_MAX, MIN_SIDE,
                                         NORMALIZATIONS, PARAMS, ZOOM_OPTIONS)
from deepdream_client.vocabulary import PRESETS as NAMED_PRESETS
try:
    from deepdream_client.client import DaemonError, DaemonUnavailable, DreamClient, SettingsError, resolve_endpoint
    from deepdream_client.readiness import NotReady, ensure_daemon
    MISSING = None
except ImportError as error:  # a plug-in folder copied by hand, without msgpack: still register, and say so
    MISSING = error

PROC_NAME = 'python-fu-deepdream'
ZOOM_PROC_NAME = 'python-fu-deepdream-zoom'
DREAM_SILENCE = 60.0     # no word about the dream for this long (the daemon sends one a second): it is lost
CONTEXT_MARGIN = 64      # pixels of context dreamed around a selection (less around small ones)
# The dialog's and scripts' default dream size (megapixels): a larger layer is dreamed at this size and
# the dream's change scaled up onto it. 2 MP, measured on a 24 MP photo at the Classic preset (bench/README,
# "Dream size"): 74 CPU s against 40 at 1 MP, 171 at 4 MP and about 1055 at full size; at 1 MP the dream's
# strokes are blown up 4.9x and look soft, at 2 MP 3.5x, and 4 MP looks barely finer for 2.3x the time.
DREAM_SIZE = 2.0
# The zoom dialog's first frame count: a few frames show the motion in seconds (the wire's default is 10);
# GIMP then remembers the artist's own.
ZOOM_FRAMES = 4
MODELS_WAIT = 1.0  # seconds the dialog waits for the daemon to say which networks it has
# Live previews on the canvas: sharper than the daemon's default 512 px on a full-window canvas; the
# daemon's interval (2 s within an octave, and at each octave's end) is kept.
PREVIEW = {'max_side': 1024}

# The Preset menu: name -> (label, values of PRESET_KEYS); "custom" keeps the arguments.
PRESET_KEYS = ('layers', 'octaves', 'octave-scale', 'steps', 'step-size')
PRESETS = {
    'custom': ('Custom (the values below)', None),
    **{name: (label, tuple(format_layers(values['layers']) if key == 'layers' else values[key.replace('-', '_')]
                           for key in PRESET_KEYS))
       for name, (label, values) in NAMED_PRESETS.items()},
}


def layers_field(text):
    try:
        return parse_layers(text)
    except ValueError as error:
        raise ValueError(f'The layers field: {error}') from None


def dream_values(config):
    """The wire `params` and a short summary for the layer name, a preset applied."""
    values = {key: config.get_property(key) for key in PRESET_KEYS}
    preset = config.get_property('preset')
    if PRESETS.get(preset, (None, None))[1]:
        values.update(zip(PRESET_KEYS, PRESETS[preset][1]))
    params = {'layers': layers_field(values['layers'] or ''), 'octaves': values['octaves'],
              'octave_scale': values['octave-scale'], 'steps': values['steps'],
              'step_size': values['step-size'], 'jitter': config.get_property('jitter'),
              'tile_size': config.get_property('tile-size'), 'seed': config.get_property('seed'),
              'dream_size': config.get_property('dream-size')}
    # Sent only when not the default, so that a daemon older than these keys still dreams the rest.
    model = (config.get_property('model') or '').strip()
    if model:
        params['model'] = model
    if config.get_property('normalize') != DEFAULT_NORMALIZATION:
        params['normalize'] = config.get_property('normalize')
    summary = (f"{PRESETS[preset][0] if preset != 'custom' else values['layers'].replace(' ', '')}, "
               f"{values['octaves']}x{values['steps']} steps, seed {params['seed']}"
               + ''.join(f", {params[key]}" for key in ('model', 'normalize') if key in params))
    return params, summary


def zoom_values(config):
    """The wire `zoom` map from the zoom procedure's arguments (named as on the wire, '-' for '_')."""
    return {key: config.get_property(key.replace('_', '-')) for key in ZOOM_KEYS}


def guide_pixels(config):
    """The Guide drawable's pixels as the client sends them raw, (pixels, width, height, channels, dtype),
    or None when no guide is chosen. Any layer of any open image: read whole, in its own image's precision."""
    guide = config.get_property('guide')
    if guide is None:
        return None
    if not guide.is_valid():
        raise ValueError('The guide layer was closed: choose another guide, or none.')
    fmt, dtype, channels = pixel_format(guide, guide.get_image().get_precision())
    width, height = guide.get_width(), guide.get_height()
    return read_pixels(guide, Gegl.Rectangle.new(0, 0, width, height), fmt, dtype), width, height, channels, dtype


def pixel_format(drawable, precision):
    """(Babl format, wire dtype, channels) that read the drawable without loss:
    8- and 16-bit integers as they are stored, everything else as float."""
    depth, _, trc = precision.value_nick.partition('-')      # 'u8', 'non-linear'
    rgb = drawable.is_rgb()
    channels = (3 if rgb else 1) + (1 if drawable.has_alpha() else 0)
    if depth in ('u8', 'u16'):
        mark = {'linear': '', 'non-linear': "'", 'perceptual': '~'}[trc]
        dtype = {'u8': 'uint8', 'u16': 'uint16'}[depth]
    else:  # u32, half, float, double: float32 in the gamma space the network was trained on
        mark, dtype = "'", 'float32'
    model = ''.join(c + mark for c in ('RGB' if rgb else 'Y')) + ('A' if drawable.has_alpha() else '')
    return f"{model} {'u8' if dtype == 'uint8' else 'u16' if dtype == 'uint16' else 'float'}", dtype, channels


def read_pixels(drawable, rect, fmt, dtype):
    """The region's samples in `fmt`, ready for the wire. Float samples outside [0, 1]
    (HDR) are clipped to what the network sees by GEGL's rgb-clip, not by Python one
    sample at a time (1 MP float layer: 0.1 s against 0.55 s, the same bytes)."""
    buffer = drawable.get_buffer()
    if dtype == 'float32':
        graph = Gegl.Node()
        source = graph.create_child('gegl:buffer-source')
        source.set_property('buffer', buffer.create_sub_buffer(rect))  # only the region is clipped
        clip = graph.create_child('gegl:rgb-clip')  # by default to [0, 1], alpha untouched
        buffer = Gegl.Buffer.new(fmt, rect.x, rect.y, rect.width, rect.height)
        sink = graph.create_child('gegl:write-buffer')
        sink.set_property('buffer', buffer)
        source.link(clip)
        clip.link(sink)
        sink.process()
    return wire_order(buffer.get(rect, 1.0, fmt, Gegl.AbyssPolicy.CLAMP), dtype)


def wire_order(data, dtype):
    """GEGL's native byte order <-> the protocol's little-endian (the same swap both ways)."""
    if dtype == 'uint8' or sys.byteorder == 'little':
        return data
    samples = array('H' if dtype == 'uint16' else 'f', data)
    samples.byteswap()
    return samples.tobytes()


def dream_region(drawable, image):
    """(x, y, w, h) in layer coordinates: the whole layer, or the selection's
    bounds with some context around them (the network needs to see it)."""
    width, height = drawable.get_width(), drawable.get_height()
    if Gimp.Selection.is_empty(image):
        return 0, 0, width, height
    nonempty, x, y, w, h = drawable.mask_intersect()
    if not nonempty:
        raise ValueError('The selection does not touch this layer: select part of it, or select none.')
    margin = min(CONTEXT_MARGIN, max(w, h) // 4 + 16)
    x, w = grow(x, w, margin, width)
    y, h = grow(y, h, margin, height)
    return x, y, w, h


def grow(start, size, margin, limit):
    """Widen [start, start+size) by margin each side, and to the network's
    smallest input if the layer is that large, staying inside [0, limit)."""
    extra = max(margin, (MIN_SIDE - size + 1) // 2)
    low, high = max(0, start - extra), min(limit, start + size + extra)
    if high - low < MIN_SIDE:  # against an edge: take the rest from the other side
        low, high = max(0, high - MIN_SIDE), min(limit, low + MIN_SIDE)
    return low, high - low


def show_waiting(pong):
    Gimp.progress_set_text('Starting the DeepDream daemon...' if pong is None else
                           'DeepDream: the daemon is loading its model...')
    Gimp.progress_pulse()


def show_progress(event):
    frame = f"frame {event.get('frame')}/{event.get('frames')}, " if 'frame' in event else ''  # a zoom's
    Gimp.progress_set_text(f"DeepDream: {frame}octave {event.get('octave')}/{event.get('octaves')}, "
                           f"step {event.get('step')}/{event.get('steps')}")
    Gimp.progress_update(min(1.0, max(0.0, float(event.get('fraction') or 0.0))))


def scale_into(buffer, rgb, width, height, region):
    """Scale `width` x `height` RGB u8 pixels to the (x, y, w, h) region of `buffer`, by GEGL (not
    Python pixel by pixel), in whatever format the buffer has (RGBA, or gray for a gray layer)."""
    x, y, w, h = region
    small = Gegl.Buffer.new("R'G'B' u8", 0, 0, width, height)
    small.set(Gegl.Rectangle.new(0, 0, width, height), "R'G'B' u8", rgb)
    graph = Gegl.Node()
    steps = [('gegl:buffer-source', {'buffer': small}),
             ('gegl:scale-size', {'x': float(w), 'y': float(h), 'abyss-policy': Gegl.AbyssPolicy.CLAMP}),
             ('gegl:translate', {'x': float(x), 'y': float(y)}),
             # a scaled edge's fraction of a pixel stays inside the region
             ('gegl:crop', {'x': float(x), 'y': float(y), 'width': float(w), 'height': float(h)}),
             ('gegl:write-buffer', {'buffer': buffer})]
    nodes = []
    for operation, properties in steps:
        node = graph.create_child(operation)
        for key, value in properties.items():
            node.set_property(key, value)
        if nodes:
            nodes[-1].link(node)
        nodes.append(node)
    nodes[-1].process()


class CanvasPreview:
    """The dream so far, in a layer above the source while the daemon works (docs/protocol.md: previews),
    masked by the selection as the result will be.

    It lives inside the dream's undo group, which stays open until the plug-in ends, so it is never
    outside the undo history: a dream that finishes replaces it in that group (one undo step: the dream's
    layer); a failure the plug-in sees removes it again (and an image that was clean is marked clean);
    a Cancel from the status bar, where GIMP kills the plug-in and ends its open group itself, leaves it
    one Ctrl+Z away. Its pixels are written straight into its buffer, which records no undo."""

    def __init__(self, image, source, region, summary):
        self.image, self.source, self.region, self.summary = image, source, region, summary
        self.layer = None
        self.selected = image.get_selected_layers()

    def show(self, event):
        preview = event.get('preview')
        if not isinstance(preview, dict) or preview.get('format') != 'raw' or preview.get('channels') != 3:
            return
        if self.layer is None:
            self.layer = self._add()
        x, y, w, h = self.region
        buffer = self.layer.get_buffer()
        scale_into(buffer, preview['pixels'], preview['width'], preview['height'], self.region)
        buffer.flush()
        self.layer.update(x, y, w, h)
        Gimp.displays_flush()

    def _add(self):
        kind = Gimp.ImageType.RGBA_IMAGE if self.source.is_rgb() else Gimp.ImageType.GRAYA_IMAGE
        layer = Gimp.Layer.new(self.image, f'DeepDream preview ({self.summary})', self.source.get_width(),
                               self.source.get_height(), kind, 100.0, Gimp.LayerMode.NORMAL)
        self.image.insert_layer(layer, self.source.get_parent(), self.image.get_item_position(self.source))
        layer.set_offsets(*self.source.get_offsets()[1:])
        layer.fill(Gimp.FillType.TRANSPARENT)
        if not Gimp.Selection.is_empty(self.image):
            add_selection_mask(layer)
        return layer

    def remove(self):
        if self.layer is None:
            return
        layer, self.layer = self.layer, None
        if layer.is_valid():
            self.image.remove_layer(layer)
            self.image.set_selected_layers([each for each in self.selected if each.is_valid()])
            Gimp.displays_flush()


def add_selection_mask(layer):
    layer.add_mask(layer.create_mask(Gimp.AddMaskType.SELECTION))
    layer.set_edit_mask(False)  # GIMP makes the new mask the active drawable: Filters > Repeat needs the layer


def start(procedure, run_mode, drawables, config):
    """(the layer to dream, None), or (None, the return values) when the procedure must not go on: not one
    layer, a plug-in folder without msgpack, or the dialog cancelled. Both procedures begin so."""
    if len(drawables) == 1 and isinstance(drawables[0], Gimp.LayerMask):  # a selected mask: dream its layer
        drawables = [Gimp.Layer.from_mask(drawables[0])]
    if len(drawables) != 1 or not isinstance(drawables[0], Gimp.Layer):
        return None, failure(procedure, 'DeepDream works on one layer at a time: select a single layer.',
                             Gimp.PDBStatusType.CALLING_ERROR)
    if MISSING is not None:
        installer = 'install.ps1' if sys.platform == 'win32' else 'install.sh'
        return None, failure(procedure, f'DeepDream cannot start: the module {MISSING.name or MISSING} is missing '
                                        f'from its plug-in folder ({os.path.dirname(os.path.abspath(__file__))}). '
                                        f'Run {installer} from your DeepDream folder again, then restart GIMP.')
    if run_mode == Gimp.RunMode.INTERACTIVE and not run_dialog(procedure, config):
        return None, procedure.new_return_values(Gimp.PDBStatusType.CANCEL, GLib.Error())
    Gegl.init(None)
    return drawables[0], None


def connect(config):
    """A client of the daemon the endpoint field (else the usual settings) names, once it is ready."""
    endpoint = resolve_endpoint((config.get_property('endpoint') or '').strip() or None)
    client = DreamClient(endpoint, timeout=DREAM_SILENCE)
    try:
        ensure_daemon(client, on_wait=show_waiting)
    except BaseException:
        client.close()
        raise
    return client


def explain(error):
    """What the user reads about an error of the daemon, its settings or the plug-in itself."""
    if isinstance(error, DaemonError):
        return f'The DeepDream daemon could not dream this image ({error.code}):\n{error.message}'
    if isinstance(error, DaemonUnavailable):
        return f'Lost the DeepDream daemon: {error}'
    if isinstance(error, SettingsError):  # before any socket: the endpoint field, $DEEPDREAM_*, client.json
        return f'DeepDream cannot use this setting: {error}'
    if isinstance(error, (NotReady, ValueError)):
        return str(error)
    return f'DeepDream failed: {type(error).__name__}: {error}'  # a bug: still a message, not a hung progress bar


def deepdream(procedure, run_mode, image, drawables, config, data):
    source, refused = start(procedure, run_mode, drawables, config)
    if refused is not None:
        return refused
    was_clean = not image.is_dirty()
    # One undo group from here to the end, open while the preview is on the canvas (CanvasPreview says why);
    # GIMP drops it if nothing went into it.
    image.undo_group_start()
    try:
        dream_layer(run_mode, image, source, config)
    except Exception as error:  # noqa: BLE001  every error ends as a message (explain), the image as it was
        image.undo_group_end()
        if was_clean:
            image.clean_all()
        Gimp.displays_flush()
        return failure(procedure, explain(error))
    image.undo_group_end()
    Gimp.progress_end()
    Gimp.displays_flush()
    return procedure.new_return_values(Gimp.PDBStatusType.SUCCESS, GLib.Error())


def dream_layer(run_mode, image, source, config):
    """Dream `source` (or the selection's neighbourhood) and put the dream in a new layer above it, masked
    by the selection. Raises with what to tell the user; whatever it added is removed again before it
    raises."""
    params, summary = dream_values(config)
    x, y, w, h = dream_region(source, image)
    fmt, dtype, channels = pixel_format(source, image.get_precision())
    rect = Gegl.Rectangle.new(x, y, w, h)
    pixels = read_pixels(source, rect, fmt, dtype)
    guide = guide_pixels(config)
    # Someone watches the canvas in the dialog's run and in Filters > Repeat; a script gains nothing.
    preview = CanvasPreview(image, source, (x, y, w, h), summary) if run_mode != Gimp.RunMode.NONINTERACTIVE else None

    def progress(event):
        show_progress(event)
        if preview is not None:
            preview.show(event)

    Gimp.progress_init('DeepDream')
    try:
        client = connect(config)
        try:
            Gimp.progress_set_text('DeepDream: sending the image...')
            result = client.dream(pixels, w, h, channels, dtype, params, progress=progress,
                                  preview=PREVIEW if preview is not None else None, guide=guide)
        finally:
            client.close()
    finally:
        if preview is not None:
            preview.remove()

    layer = None
    try:
        kind = Gimp.ImageType.RGBA_IMAGE if source.is_rgb() else Gimp.ImageType.GRAYA_IMAGE
        layer = Gimp.Layer.new(image, f'DeepDream ({summary})', source.get_width(), source.get_height(),
                               kind, 100.0, Gimp.LayerMode.NORMAL)
        image.insert_layer(layer, source.get_parent(), image.get_item_position(source))
        layer.set_offsets(*source.get_offsets()[1:])
        layer.fill(Gimp.FillType.TRANSPARENT)
        buffer = layer.get_buffer()
        buffer.set(rect, fmt, wire_order(result.pixels, dtype))
        buffer.flush()
        layer.update(x, y, w, h)
        if not Gimp.Selection.is_empty(image):
            add_selection_mask(layer)
        image.set_selected_layers([layer])
    except Exception as error:  # noqa: BLE001  the image must come out as it went in
        if layer is not None and layer.is_valid():
            image.remove_layer(layer)
        raise LayerError(f'DeepDream could not write its layer: {error}') from None


class LayerError(ValueError):
    """Writing the dream into GIMP failed (explain shows it as it is)."""


def failure(procedure, message, status=Gimp.PDBStatusType.EXECUTION_ERROR):
    Gimp.progress_end()
    return procedure.new_return_values(status, GLib.Error(message))


class FrameImage:
    """A new image whose layers are a zoom's frames, bottom to top, named as GIMP's animation playback and GIF
    export read them: "Frame 3 (100ms)". Each frame goes in as it arrives, so whatever ends the zoom (a
    failure, or GIMP killing the plug-in when the user cancels its progress) leaves the frames done. The image
    is new: its undo history is off while it is built (nothing to undo to), and it starts clean."""

    def __init__(self, source, fmt, delay_ms, show):
        precision = source.get_image().get_precision()
        self.width, self.height = source.get_width(), source.get_height()
        self.image = Gimp.Image.new_with_precision(self.width, self.height, Gimp.ImageBaseType.RGB if source.is_rgb()
                                                   else Gimp.ImageBaseType.GRAY, precision)
        profile = source.get_image().get_color_profile()
        if profile is not None:
            self.image.set_color_profile(profile)
        self.image.undo_disable()
        self.kind = ({True: Gimp.ImageType.RGBA_IMAGE, False: Gimp.ImageType.RGB_IMAGE} if source.is_rgb() else
                     {True: Gimp.ImageType.GRAYA_IMAGE, False: Gimp.ImageType.GRAY_IMAGE})[source.has_alpha()]
        self.fmt, self.delay_ms, self.show, self.display = fmt, delay_ms, show, None
        self.count = 0

    def add(self, index, pixels, dtype):
        layer = Gimp.Layer.new(self.image, f'Frame {index} ({self.delay_ms}ms)', self.width, self.height, self.kind,
                               100.0, Gimp.LayerMode.NORMAL)
        self.image.insert_layer(layer, None, 0)  # on top: playback goes from the bottom layer up
        buffer = layer.get_buffer()
        buffer.set(Gegl.Rectangle.new(0, 0, self.width, self.height), self.fmt, wire_order(pixels, dtype))
        buffer.flush()
        layer.update(0, 0, self.width, self.height)
        self.count += 1
        if self.show and self.display is None:
            self.display = Gimp.Display.new(self.image)
        Gimp.displays_flush()

    def finish(self):
        self.image.undo_enable()
        self.image.clean_all()


def deepdream_zoom(procedure, run_mode, image, drawables, config, data):
    """Filters > DeepDream: Zoom...: the active layer (all of it: a zoom magnifies about the layer's centre) is
    frame 0 of a new image; each frame the daemon dreams is added above the last. Returns the new image."""
    source, refused = start(procedure, run_mode, drawables, config)
    if refused is not None:
        return refused
    frames = None
    try:
        params, _ = dream_values(config)
        zoom = zoom_values(config)
        fmt, dtype, channels = pixel_format(source, image.get_precision())
        width, height = source.get_width(), source.get_height()
        pixels = read_pixels(source, Gegl.Rectangle.new(0, 0, width, height), fmt, dtype)
        guide = guide_pixels(config)
        Gimp.progress_init('DeepDream Zoom')
        client = connect(config)
        try:
            frames = FrameImage(source, fmt, zoom['frame_delay_ms'], show=run_mode != Gimp.RunMode.NONINTERACTIVE)
            frames.add(0, pixels, dtype)
            Gimp.progress_set_text('DeepDream: sending the image...')
            client.zoom(pixels, width, height, channels, dtype, zoom=zoom, params=params, progress=show_progress,
                        on_frame=lambda frame: frames.add(frame.index, frame.pixels, dtype), guide=guide)
        finally:
            client.close()
            if frames is not None:
                frames.finish()
    except Exception as error:  # noqa: BLE001  every error ends as a message; the frames done stay
        done = frames.count if frames is not None else 0
        kept = f'\nThe new image keeps the frames done: 0 (the start) to {done - 1}.' if done else ''
        return failure(procedure, explain(error) + kept)
    Gimp.progress_end()
    Gimp.displays_flush()
    values = procedure.new_return_values(Gimp.PDBStatusType.SUCCESS, GLib.Error())
    values.remove(1)
    values.insert(1, GObject.Value(Gimp.Image, frames.image))
    return values


# The dialog: what shapes the dream first, the technical settings folded away under "Advanced".
ARTISTIC = ('preset', 'model', 'layers', 'steps', 'step-size', 'octaves', 'octave-scale', 'normalize', 'guide',
            'dream-size', 'seed')
ADVANCED = ('tile-size', 'jitter', 'endpoint')
SMOOTHING = {'std': ('Crisp (standard)', 'Fine, busy detail: the classic look'),
             'laplacian': ('Smooth (Laplacian)', 'Larger, smoother, less noisy patterns')}
ZOOM_KEYS = ('frames', 'scale', 'rotate', 'frame_delay_ms')  # the zoom's own fields, first in its dialog
ZOOM_FIELDS = tuple(key.replace('_', '-') for key in ZOOM_KEYS)
# Per numeric field: its step (arrow keys, + and -), page step (Page Up/Down) and decimals, which GIMP
# would guess from the range alone (0.008 + 0.01 for the step size, 512 + 1 for the tile size), and
# for the artistic ones a slider over the useful values (a typed value may go past it, within the
# range). A slider, not GIMP's default labelled spinner: that one logs a LibGimpWidgets-CRITICAL
# for the step size's range (1e-05..1) as GIMP 3.0.4 builds it.
SPINNERS = {'steps': (1, 10, 0, (1, 100)), 'step-size': (0.001, 0.005, 3, (0.001, 0.05)),
            'octaves': (1, 2, 0, (1, 8)), 'octave-scale': (0.05, 0.1, 2, (1.1, 2.0)),
            'dream-size': (0.5, 1.0, 1, (0, 24)), 'seed': (1, 100, 0, None),
            'tile-size': (64, 256, 0, None), 'jitter': (4, 16, 0, None),
            'frames': (1, 10, 0, (1, 200)), 'scale': (0.01, 0.05, 2, (1.0, 1.3)), 'rotate': (0.5, 5, 1, (-10, 10)),
            'frame-delay-ms': (10, 100, 0, (20, 1000))}


def matching_preset(config):
    """The named preset whose values the fields hold, else custom."""
    values = tuple(config.get_property(key) for key in PRESET_KEYS)
    return next((name for name, (_, preset) in PRESETS.items() if preset and same_values(preset, values)), 'custom')


def same_values(a, b):
    return all(abs(x - y) < 1e-9 if isinstance(x, float) else x == y for x, y in zip(a, b))


def run_dialog(procedure, config):
    GimpUi.init(PROC_NAME)
    # The dialog opens on the preset its values are (the defaults are Classic DeepDream's), and a named
    # preset (from the last run or a script) shows the values it dreams with.
    preset = config.get_property('preset')
    if PRESETS.get(preset, (None, None))[1]:
        for key, value in zip(PRESET_KEYS, PRESETS[preset][1]):
            config.set_property(key, value)
    else:
        config.set_property('preset', matching_preset(config))
    dialog = GimpUi.ProcedureDialog(procedure=procedure, config=config)
    own = [name for name in SPINNERS if config.find_property(name) is not None]  # the zoom's fields: its own
    for name, (step, page, digits, slider) in ((name, SPINNERS[name]) for name in own):
        spinner = dialog.get_widget(name, (GimpUi.SpinScale if slider else GimpUi.LabelSpin).__gtype__)
        spinner.set_digits(digits)
        spinner.set_increments(step, page)
        if slider:
            spinner.set_scale_limits(*slider)
    # A list, as the preset's: GIMP 3.2 shows a choice of up to 3 items as radio buttons by default, whose
    # frame title takes no mnemonic (its dialog then complains: no mnemonic for property normalize).
    dialog.get_widget('normalize', Gtk.ComboBox.__gtype__)
    # The Network field stays text (GIMP's choices are fixed when the plug-in registers, and a daemon has
    # its own model files): empty says the default's name, and its arrow offers the daemon's networks, or
    # the built-in ones while no daemon answers.
    models = daemon_models(config)
    field = dialog.get_widget('model', GimpUi.LabelEntry.__gtype__)
    if models:
        field.set_tooltip_text(f"{MODEL_HELP}.\nThis daemon has: {', '.join(models)}")
    offer_networks(field.get_entry(), models or BUILT_IN_MODELS)
    for name, zero in (('tile-size', 'Automatic'), ('dream-size', 'Full size')):
        if config.find_property(name) is not None:
            name_zero(dialog.get_widget(name, GObject.TYPE_NONE), zero)
    dialog.fill_box('advanced-fields', list(ADVANCED))
    dialog.get_label('advanced-title', 'Advanced', False, False)
    dialog.fill_expander('advanced', 'advanced-title', False, 'advanced-fields')
    dialog.fill([*(ZOOM_FIELDS if procedure.get_name() == ZOOM_PROC_NAME else ()), *ARTISTIC, 'advanced'])
    applying = []

    def preset_changed(*_):  # a preset fills its fields...
        values = PRESETS.get(config.get_property('preset'), (None, None))[1]
        if values:
            applying.append(True)
            for key, value in zip(PRESET_KEYS, values):
                config.set_property(key, value)
            applying.pop()

    def field_changed(*_):  # ...and editing one of them makes it custom
        values = PRESETS.get(config.get_property('preset'), (None, None))[1]
        if values and not applying and not same_values(values, [config.get_property(k) for k in PRESET_KEYS]):
            config.set_property('preset', 'custom')

    config.connect('notify::preset', preset_changed)
    for key in PRESET_KEYS:
        config.connect(f'notify::{key}', field_changed)
    ok = dialog.run()
    dialog.destroy()
    return ok


# Networks as artists know them; a model file of the daemon's keeps its own name.
NETWORK_NAMES = {'inception_v3': 'InceptionV3', 'vgg16': 'VGG16', 'vgg19': 'VGG19', 'resnet50v2': 'ResNet50V2',
                 'inception_resnet_v2': 'Inception-ResNet-v2', 'xception': 'Xception'}


def offer_networks(entry, names):
    """The Network field's arrow: a menu of `names` (the default first); choosing one writes its name."""
    entry.set_placeholder_text(f'{NETWORK_NAMES.get(DEFAULT_MODEL, DEFAULT_MODEL)} (the classic DeepDream)')
    entry.set_icon_from_icon_name(Gtk.EntryIconPosition.SECONDARY, 'pan-down-symbolic')
    entry.set_icon_tooltip_text(Gtk.EntryIconPosition.SECONDARY, 'Choose one of the networks the daemon has')
    menu = Gtk.Menu()
    for name in sorted(names, key=lambda name: name != DEFAULT_MODEL):
        label = NETWORK_NAMES.get(name, name) + (' (the default)' if name == DEFAULT_MODEL else '')
        item = Gtk.MenuItem(label=label)
        item.connect('activate', lambda _item, name=name: entry.set_text(name))
        menu.append(item)
    menu.show_all()
    menu.attach_to_widget(entry)
    entry.connect('icon-press', lambda _entry, _position, event: menu.popup_at_widget(
        entry, Gdk.Gravity.SOUTH_EAST, Gdk.Gravity.NORTH_EAST, event))


def name_zero(field, text):
    """A numeric field whose 0 means something (automatic tiles, full size) shows that word for it."""
    spin = field.get_spin_button() if hasattr(field, 'get_spin_button') else field

    def output(button):
        if button.get_adjustment().get_value() != 0:
            return False
        button.set_text(text)
        return True

    # No 'input' handler: GTK reads the word as 0 by itself (strtod stops at its first letter), and
    # PyGObject cannot fill that signal's out-argument.
    spin.connect('output', output)
    spin.update()


def add_param(procedure, name, label, blurb, table=PARAMS):
    """A dream parameter's argument (or with table=ZOOM_OPTIONS a zoom's), its range and default from the
    shared vocabulary. GIMP's int arguments are signed 32-bit: the seed offers the lower half of the
    wire's seeds; tile-size also takes 0, automatic, and dream-size 0, full size."""
    param = table[name.replace('-', '_')]
    low = {'tile-size': AUTOMATIC_TILES, 'dream-size': FULL_SIZE}.get(name, param.low)
    high = min(param.high, GIMP_SEED_MAX) if name == 'seed' else param.high
    default = {'dream-size': DREAM_SIZE, 'frames': ZOOM_FRAMES}.get(name, param.default)
    add = procedure.add_int_argument if param.kind is int else procedure.add_double_argument
    add(name, label, blurb, low, high, default, GObject.ParamFlags.READWRITE)


MODEL_HELP = (f"The neural network that dreams; empty: the daemon's default, {DEFAULT_MODEL}. Built in: "
              f"{', '.join(BUILT_IN_MODELS)} (each sees other forms, and names its layers its own way: give its "
              "layers below); and the daemon's own model files, by name (`deepdream info` lists them all)")


def daemon_models(config):
    """The names of the networks the daemon has (its `info`), or () when it does not answer at once: not started
    yet, still loading, older than networks, or a setting that cannot work (the dream will say so)."""
    try:
        endpoint = resolve_endpoint((config.get_property('endpoint') or '').strip() or None)
        with DreamClient(endpoint, timeout=MODELS_WAIT) as client:
            models = client.info().get('models')
    except (DaemonError, DaemonUnavailable, SettingsError):
        return ()
    if not isinstance(models, list):
        return ()
    return tuple(model['name'] for model in models if isinstance(model, dict) and isinstance(model.get('name'), str))


def add_dream_arguments(procedure):
    """The dream's controls, the same in both procedures (and the dialogs' fields)."""
    rw = GObject.ParamFlags.READWRITE
    presets = Gimp.Choice.new()
    for index, (key, (label, _)) in enumerate(PRESETS.items()):
        presets.add(key, index, label, '')
    # Labels for painters; each mnemonic (the underlined letter) is the field's own in both dialogs, and
    # none is a button's (_OK, _Cancel, _Reset, _Help, _Load and _Save Settings).
    procedure.add_choice_argument('preset', '_Preset', 'A tested combination of network layers, octaves, '
                                  'octave scale, steps and step size; editing one of them makes it Custom',
                                  presets, 'custom', rw)
    procedure.add_string_argument('model', 'Networ_k', MODEL_HELP, '', rw)
    procedure.add_string_argument('layers', '_Network layers', 'Which layers of the network the dream amplifies, '
                                  'with weights, e.g. mixed2:1,mixed5:1. InceptionV3\'s are mixed0 to mixed10: '
                                  'mixed0-mixed2 paint strokes and fine textures, mixed3-mixed5 patterns and '
                                  'eyes, mixed6-mixed10 whole objects and creatures. Some channels of a layer '
                                  'only, for one kind of pattern: mixed4[12,87]:1 (channels count from 0)',
                                  format_layers(DEFAULT_LAYERS), rw)
    add_param(procedure, 'octaves', 'Octa_ves', 'How many scales are dreamed, from small to full size: '
              'more octaves grow larger, more structured forms')
    add_param(procedure, 'octave-scale', 'Octave sc_ale', 'Size ratio between two octaves (1.3 is classic)')
    add_param(procedure, 'steps', 'S_teps per octave', 'Strength, with the step size: more steps give a '
              'stronger, more saturated dream and a longer wait')
    add_param(procedure, 'step-size', 'Step si_ze', 'Strength of each step: small values are gentle, large '
              'ones burn in quickly')
    smoothing = Gimp.Choice.new()
    for index, key in enumerate(NORMALIZATIONS):  # a new one must get its label here (KeyError otherwise)
        smoothing.add(key, index, *SMOOTHING[key])
    procedure.add_choice_argument('normalize', 'Smoothin_g', 'Crisp: fine, busy detail (the classic look). '
                                  'Smooth: larger, smoother, less noisy patterns (each band of detail is '
                                  'weighed on its own, a Laplacian pyramid)', smoothing, DEFAULT_NORMALIZATION, rw)
    procedure.add_drawable_argument('guide', 'G_uide image', 'Another layer (of any open image) whose forms the '
                                    'dream grows instead of the network\'s favourite ones; none: no guide',
                                    True, rw)
    add_param(procedure, 'jitter', '_Jitter', 'Largest random shift per step, in pixels (hides tile seams)')
    add_param(procedure, 'tile-size', 'T_ile size', "0: Automatic (one piece when the image fits the daemon's "
              f"memory budget). Else the tile side in pixels, {PARAMS['tile_size'].low} or more")
    add_param(procedure, 'seed', 'S_eed', 'The same seed with the same values and image gives the same '
              'dream; change it for a variation')
    procedure.add_string_argument('endpoint', 'Dae_mon address', 'Where the DeepDream daemon listens; empty: '
                                  '$DEEPDREAM_ENDPOINT, else the setting the installer recorded, else '
                                  f'{DEFAULT_ENDPOINT}', '', rw)
    dream_size = PARAMS['dream_size']
    add_param(procedure, 'dream-size', '_Dream size (megapixels)', 'A larger layer is dreamed at this size and '
              'the dream scaled up onto it, keeping its own detail: quicker, and the forms stay large on a big '
              f'photo. 0: dream at full size; else {dream_size.low:g} to {dream_size.high:g}')


def add_zoom_arguments(procedure):
    """The zoom's own controls, before the dream's; the new image is the zoom's return value."""
    add_param(procedure, 'frames', '_Frames', 'How many frames are dreamed after the start frame (the layer as '
              'it is)', ZOOM_OPTIONS)
    add_param(procedure, 'scale', 'Zoom _by (per frame)', 'How much each frame magnifies the one before, about '
              'its centre: 1.05 is a slow dive', ZOOM_OPTIONS)
    add_param(procedure, 'rotate', 'T_wist per frame (degrees)', 'How far each frame turns, counter-clockwise; '
              'negative: clockwise', ZOOM_OPTIONS)
    add_param(procedure, 'frame-delay-ms', 'Frame dela_y (ms)', 'How long each frame shows in the animation '
              '(its layer name says it, for Filters > Animation > Playback and the GIF export)', ZOOM_OPTIONS)
    procedure.add_image_return_value('frames-image', 'Frames', 'The new image, a layer per frame', False,
                                     GObject.ParamFlags.READWRITE)


class DeepDream(Gimp.PlugIn):
    def do_query_procedures(self):
        return [PROC_NAME, ZOOM_PROC_NAME]

    def do_set_i18n(self, name):
        return False

    def do_create_procedure(self, name):
        zoom = name == ZOOM_PROC_NAME
        procedure = Gimp.ImageProcedure.new(self, name, Gimp.PDBProcType.PLUGIN, deepdream_zoom if zoom else deepdream,
                                            None)
        procedure.set_image_types('RGB*, GRAY*')
        procedure.set_sensitivity_mask(Gimp.ProcedureSensitivityMask.DRAWABLE)
        # GIMP sorts a menu's plug-ins by label: 'DeepDream...' comes before 'DeepDream: Zoom...' in every
        # locale (it came after 'DeepDream Zoom...' where a space sorts before a dot, as in C.UTF-8).
        procedure.set_menu_label('DeepDream: _Zoom...' if zoom else '_DeepDream...')
        procedure.add_menu_path('<Image>/Filters')
        common = ('A preset other than "custom" sets layers, octaves, octave scale, steps and step size. The '
                  f'endpoint, when empty, is $DEEPDREAM_ENDPOINT, else the one the installer recorded, else '
                  f'{DEFAULT_ENDPOINT}.')
        if zoom:
            procedure.set_documentation(
                'Dream an infinite zoom into the layer: a new image, a layer per frame (DeepDream)',
                'The whole layer is the start frame; each next frame is the one before magnified (and turned) '
                'about its centre and dreamed again. The frames go into a new image as they come, named "Frame '
                'N (100ms)" from Frame 0, the start, up, so that Filters > Animation > Playback plays it and '
                'File > Export As... .gif makes an animation. A failure or a cancel keeps the frames done. '
                + common, name)
        else:
            procedure.set_documentation(
                'Dream into the layer with a neural network (DeepDream)',
                'Sends the layer (or the selection and some context around it) to the DeepDream daemon and puts '
                'the dream into a new layer above it, masked by the selection, in one undo step. ' + common, name)
        procedure.set_attribution('DeepDream for GIMP', 'DeepDream for GIMP', '2025')
        if zoom:
            add_zoom_arguments(procedure)
        add_dream_arguments(procedure)
        return procedure


Gimp.main(DeepDream.__gtype__, sys.argv)
