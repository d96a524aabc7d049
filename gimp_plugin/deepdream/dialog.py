"""The procedures' arguments and the dialog: labels for painters, ranges and defaults from the shared
vocabulary, presets, the Advanced fold, the Network field's menu. deepdream.py chose gi's versions."""

import json
import os

from deepdream_common.layer_spec import format_layers, parse_layers
from deepdream_common.vocabulary import (AUTOMATIC_TILES, BUILT_IN_MODELS, DEFAULT_ENDPOINT, DEFAULT_LAYERS,
                                         DEFAULT_MODEL, DEFAULT_NORMALIZATION, FULL_SIZE, GIMP_SEED_MAX,
                                         NORMALIZATIONS, PARAMS, ZOOM_OPTIONS)
from deepdream_common.vocabulary import PRESETS as NAMED_PRESETS
from gi.repository import Gdk, GimpUi, GObject, Gtk, Gimp

# The dialog's and scripts' default dream size (megapixels): a larger layer is dreamed at this size and
# the dream's change scaled up onto it. 2 MP, measured on a 24 MP photo at the Classic preset (bench/README,
# "Dream size"): 74 CPU s against 40 at 1 MP, 171 at 4 MP and about 1055 at full size; at 1 MP the dream's
# strokes are blown up 4.9x and look soft, at 2 MP 3.5x, and 4 MP looks barely finer for 2.3x the time.
DREAM_SIZE = 2.0
# The zoom dialog's first frame count: a few frames show the motion in seconds (the wire's default is 10);
# GIMP then remembers the artist's own.
ZOOM_FRAMES = 4

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


# The dream's settings both dialogs share: each opens on the values the other (or itself) dreamed with last,
# so a zoom starts from the dream the artist just liked. GIMP remembers each procedure's values apart.
SHARED = ('preset', 'model', 'layers', 'steps', 'step-size', 'octaves', 'octave-scale', 'normalize', 'dream-size',
          'seed', 'tile-size', 'jitter', 'endpoint')


def shared_values_path():
    return os.path.join(Gimp.directory(), 'deepdream-dream-values.json')


def load_shared_values(config):
    """The last dialog's dream settings into `config`; nothing when there are none or they do not fit."""
    try:
        with open(shared_values_path()) as handle:
            values = json.load(handle)
    except (OSError, ValueError):
        return
    for key, value in (values.items() if isinstance(values, dict) else ()):
        spec = config.find_property(key) if key in SHARED else None
        if spec is None or (hasattr(spec, 'minimum') and not (isinstance(value, (int, float))
                                                            and spec.minimum <= value <= spec.maximum)):
            continue  # another version's setting, or out of this one's range (GLib would only warn)
        try:
            config.set_property(key, value)
        except (TypeError, ValueError, OverflowError):  # a value of another type
            continue


def save_shared_values(config):
    try:
        with open(shared_values_path(), 'w') as handle:
            json.dump({key: config.get_property(key) for key in SHARED}, handle)
    except OSError:
        pass  # only a convenience: the dream goes on


def matching_preset(config):
    """The named preset whose values the fields hold, else custom."""
    values = tuple(config.get_property(key) for key in PRESET_KEYS)
    return next((name for name, (_, preset) in PRESETS.items() if preset and same_values(preset, values)), 'custom')


def same_values(a, b):
    return all(abs(x - y) < 1e-9 if isinstance(x, float) else x == y for x, y in zip(a, b))


def run_dialog(procedure, config, models, zoom):
    """The procedure's dialog; True on OK. `models`: the daemon's network names (none when it does not answer);
    `zoom`: the zoom's dialog, whose own fields come first."""
    GimpUi.init(procedure.get_name())
    load_shared_values(config)
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
    dialog.fill([*(ZOOM_FIELDS if zoom else ()), *ARTISTIC, 'advanced'])
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
    if ok:
        save_shared_values(config)
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


def add_param(procedure, name, table=PARAMS):
    """A dream parameter's argument (or with table=ZOOM_OPTIONS a zoom's): its label, tooltip, range and
    default from the shared vocabulary. GIMP's int arguments are signed 32-bit: the seed offers the lower
    half of the wire's seeds; tile-size also takes 0, automatic, and dream-size 0, full size."""
    param = table[name.replace('-', '_')]
    low = {'tile-size': AUTOMATIC_TILES, 'dream-size': FULL_SIZE}.get(name, param.low)
    high = min(param.high, GIMP_SEED_MAX) if name == 'seed' else param.high
    default = {'dream-size': DREAM_SIZE, 'frames': ZOOM_FRAMES}.get(name, param.default)
    add = procedure.add_int_argument if param.kind is int else procedure.add_double_argument
    add(name, param.label, param.help, low, high, default, GObject.ParamFlags.READWRITE)


MODEL_HELP = (f"The neural network that dreams; empty: the daemon's default, {DEFAULT_MODEL}. Built in: "
              f"{', '.join(BUILT_IN_MODELS)} (each sees other forms, and names its layers its own way: give its "
              "layers below); and the daemon's own model files, by name (`deepdream info` lists them all)")


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
    add_param(procedure, 'octaves')
    add_param(procedure, 'octave-scale')
    add_param(procedure, 'steps')
    add_param(procedure, 'step-size')
    smoothing = Gimp.Choice.new()
    for index, key in enumerate(NORMALIZATIONS):  # a new one must get its label here (KeyError otherwise)
        smoothing.add(key, index, *SMOOTHING[key])
    procedure.add_choice_argument('normalize', 'Smoothin_g', 'Crisp: fine, busy detail (the classic look). '
                                  'Smooth: larger, smoother, less noisy patterns (each band of detail is '
                                  'weighed on its own, a Laplacian pyramid)', smoothing, DEFAULT_NORMALIZATION, rw)
    procedure.add_drawable_argument('guide', 'G_uide image', 'Another layer (of any open image) whose forms the '
                                    'dream grows instead of the network\'s favourite ones; none: no guide',
                                    True, rw)
    add_param(procedure, 'jitter')
    add_param(procedure, 'tile-size')
    add_param(procedure, 'seed')
    procedure.add_string_argument('endpoint', 'Dae_mon address', 'Where the DeepDream daemon listens; empty: '
                                  '$DEEPDREAM_ENDPOINT, else the setting the installer recorded, else '
                                  f'{DEFAULT_ENDPOINT}', '', rw)
    add_param(procedure, 'dream-size')


def add_zoom_arguments(procedure):
    """The zoom's own controls, before the dream's; the new image is the zoom's return value."""
    add_param(procedure, 'frames', ZOOM_OPTIONS)
    add_param(procedure, 'scale', ZOOM_OPTIONS)
    add_param(procedure, 'rotate', ZOOM_OPTIONS)
    add_param(procedure, 'frame-delay-ms', ZOOM_OPTIONS)
    procedure.add_image_return_value('frames-image', 'Frames', 'The new image, a layer per frame', False,
                                     GObject.ParamFlags.READWRITE)
