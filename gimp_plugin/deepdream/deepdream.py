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

import gi
gi.require_version('Gimp', '3.0')
gi.require_version('GimpUi', '3.0')
gi.require_version('Gegl', '0.4')
gi.require_version('Gtk', '3.0')
gi.require_version('Gdk', '3.0')
from gi.repository import Gegl, Gimp, GLib, GObject

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from canvas import CanvasPreview, FrameImage, add_selection_mask, show_progress, show_waiting
from dialog import add_dream_arguments, add_zoom_arguments, dream_values, run_dialog, zoom_values
from pixels import dream_region, guide_pixels, pixel_format, read_pixels, wire_order
try:
    from deepdream_client.client import DaemonError, DaemonUnavailable, DreamClient
    from deepdream_client.settings import SettingsError, resolve_endpoint
    from deepdream_client.readiness import NotReady, ensure_daemon
    MISSING = None
except ImportError as error:  # a plug-in folder copied by hand, without msgpack: still register, and say so
    MISSING = error
from deepdream_common.vocabulary import DEFAULT_ENDPOINT

PROC_NAME = 'python-fu-deepdream'
ZOOM_PROC_NAME = 'python-fu-deepdream-zoom'
DREAM_SILENCE = 60.0     # no word about the dream for this long (the daemon sends one a second): it is lost
MODELS_WAIT = 1.0  # seconds the dialog waits for the daemon to say which networks it has
# Live previews on the canvas: sharper than the daemon's default 512 px on a full-window canvas; the
# daemon's interval (2 s within an octave, and at each octave's end) is kept.
PREVIEW = {'max_side': 1024}


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
    zoom = procedure.get_name() == ZOOM_PROC_NAME
    if run_mode == Gimp.RunMode.INTERACTIVE and not run_dialog(procedure, config, daemon_models(config), zoom):
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
