# Prelude of every batch script the GIMP tests feed to
#   gimp-console-<version> -i --batch-interpreter=python-fu-eval -b - --quit
# It runs inside GIMP 3.0 or 3.2 (in that version's test root), builds images, calls
# python-fu-deepdream and python-fu-deepdream-zoom like any script would, and leaves what it saw in
# $DD_WORK (results.json and raw pixel files) for the host to check.
import json
import os
import time
import traceback

import gi

gi.require_version('Gimp', '3.0')
gi.require_version('Gegl', '0.4')
from gi.repository import Gegl, Gimp, Gio

Gegl.init(None)
WORK = os.environ['DD_WORK']
RESULTS = {}
PRECISIONS = {'u8': Gimp.Precision.U8_NON_LINEAR, 'u16': Gimp.Precision.U16_NON_LINEAR,
              'float': Gimp.Precision.FLOAT_LINEAR}


def load(name):
    return Gimp.file_load(Gimp.RunMode.NONINTERACTIVE, Gio.File.new_for_path(os.path.join(WORK, name)))


def from_raw(name, width, height, fmt, precision='u8', canvas=None, offsets=(0, 0)):
    """An image with one layer holding the raw pixels of WORK/name (in Babl format `fmt`)."""
    gray = fmt.startswith('Y')
    base = Gimp.ImageBaseType.GRAY if gray else Gimp.ImageBaseType.RGB
    image = Gimp.Image.new_with_precision(*(canvas or (width, height)), base, PRECISIONS[precision])
    alpha = 'A ' in fmt
    kind = {(False, False): Gimp.ImageType.RGB_IMAGE, (False, True): Gimp.ImageType.RGBA_IMAGE,
            (True, False): Gimp.ImageType.GRAY_IMAGE, (True, True): Gimp.ImageType.GRAYA_IMAGE}[gray, alpha]
    layer = Gimp.Layer.new(image, 'source', width, height, kind, 100.0, Gimp.LayerMode.NORMAL)
    image.insert_layer(layer, None, 0)
    layer.set_offsets(*offsets)
    with open(os.path.join(WORK, name), 'rb') as handle:
        data = handle.read()
    buffer = layer.get_buffer()
    buffer.set(Gegl.Rectangle.new(0, 0, width, height), fmt, data)
    buffer.flush()
    return image, layer


def pixels(drawable, fmt):
    rect = Gegl.Rectangle.new(0, 0, drawable.get_width(), drawable.get_height())
    return drawable.get_buffer().get(rect, 1.0, fmt, Gegl.AbyssPolicy.CLAMP)


def save(name, data):
    with open(os.path.join(WORK, name), 'wb') as handle:
        handle.write(data)


def with_alpha(fmt):
    model, kind = fmt.split(' ')
    return fmt if model.endswith('A') else f'{model}A {kind}'


def describe(layer):
    return {'id': layer.get_id(), 'name': layer.get_name(), 'width': layer.get_width(),
            'height': layer.get_height(), 'offsets': list(layer.get_offsets()[1:]),
            'has_mask': layer.get_mask() is not None, 'has_alpha': layer.has_alpha(),
            'children': [describe(each) for each in layer.get_children()] if layer.is_group() else None}


def in_a_group(image):
    """`image`'s one layer moved into a new layer group, which is returned."""
    layer = image.get_layers()[0]
    group = Gimp.GroupLayer.new(image, 'group')
    image.insert_layer(group, None, 0)
    image.reorder_item(layer, group, 0)
    return group


def call(name, image, layer, run_mode, props):
    """Run the plug-in's procedure `name` on `layer` with `props` (argument names, '_' for '-'); its
    return values, its status's nick and how long it took."""
    procedure = Gimp.get_pdb().lookup_procedure(name)
    config = procedure.create_config()
    config.set_property('run-mode', run_mode)
    config.set_property('image', image)
    config.set_core_object_array('drawables', [layer])
    for key, value in props.items():
        config.set_property(key.replace('_', '-'), value)
    started = time.monotonic()
    values = procedure.run(config)
    # The status's text differs: '<enum GIMP_PDB_SUCCESS of type Gimp.PDBStatusType>' in GIMP 3.0
    # (PyGObject 3.50), '3' in GIMP 3.2 (PyGObject 3.58 makes it an IntEnum); its nick is the same.
    return values, Gimp.PDBStatusType(values.index(0)).value_nick, time.monotonic() - started


def dream(case, image, layer, fmt, run_mode=Gimp.RunMode.NONINTERACTIVE, **props):
    """Run python-fu-deepdream on `layer` (or a layer mask); record status, layers, selected drawables, pixels."""
    try:
        before = [each.get_id() for each in image.get_layers()]
        save(f'{case}.source-before', pixels(layer, fmt))
        image.clean_all()  # so that 'dirty' below says whether the plug-in changed the image
        values, status, seconds = call('python-fu-deepdream', image, layer, run_mode, props)
        record = {'status': status, 'seconds': seconds,
                  'message': values.index(1) if values.length() > 1 else '',
                  'layers': [describe(each) for each in image.get_layers()], 'new': None,
                  'precision': image.get_precision().value_nick, 'undo_enabled': image.undo_is_enabled(),
                  'dirty': image.is_dirty(),  # anything pushed on the undo stack marks it
                  'selected': [each.get_id() for each in image.get_selected_drawables()]}
        save(f'{case}.source-after', pixels(layer, fmt))
        new = [each for each in image.get_layers() if each.get_id() not in before]
        if new:
            record['new'] = describe(new[0])
            save(f'{case}.new', pixels(new[0], fmt))
            save(f'{case}.new-alpha', pixels(new[0], with_alpha(fmt)))
            if new[0].get_mask() is not None:
                save(f'{case}.mask', pixels(new[0].get_mask(), 'Y u8'))
    except Exception:  # noqa: BLE001  whatever went wrong is this case's result; the next case still runs
        record = {'status': 'test-error', 'message': traceback.format_exc()}
    return record_result(case, record)


def zoom(case, image, layer, fmt, **props):
    """Run python-fu-deepdream-zoom on `layer`; record status, message, the returned image's id and each
    new image's layers (top to bottom) with their pixels as {case}.{layer name}."""
    try:
        before = {each.get_id() for each in Gimp.get_images()}
        save(f'{case}.source-before', pixels(layer, fmt))
        values, status, seconds = call('python-fu-deepdream-zoom', image, layer, Gimp.RunMode.NONINTERACTIVE, props)
        returned = values.index(1) if status == 'success' else None
        record = {'status': status, 'seconds': seconds, 'message': values.index(1) if status != 'success' else '',
                  'returned': returned.get_id() if returned is not None else None, 'images': []}
        for new in (each for each in Gimp.get_images() if each.get_id() not in before):
            record['images'].append({'id': new.get_id(), 'width': new.get_width(), 'height': new.get_height(),
                                     'dirty': new.is_dirty(), 'undo_enabled': new.undo_is_enabled(),
                                     'layers': [describe(each) for each in new.get_layers()]})
            for each in new.get_layers():
                save(f'{case}.{each.get_name()}', pixels(each, fmt))
    except Exception:  # noqa: BLE001  as in dream()
        record = {'status': 'test-error', 'message': traceback.format_exc()}
    return record_result(case, record)


def record_result(case, record):
    """Keep `record` as the case's result in results.json at once: a later case that hangs GIMP loses only itself."""
    RESULTS[case] = record
    with open(os.path.join(WORK, 'results.json'), 'w') as handle:
        json.dump(RESULTS, handle, indent=1)
    return record


def with_start_command(command):
    """This GIMP's client.json records `command` to start the daemon (None: no client.json)."""
    path = os.path.join(os.environ['XDG_CONFIG_HOME'], 'deepdream', 'client.json')
    if command is None:
        os.remove(path)
        return
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'w') as handle:
        json.dump({'start_command': command}, handle)


def shared_dialog_values(plugin_dir):
    """The plug-in's own dialog module, in this GIMP: the dream values one procedure's dialog saves (as on OK)
    are those the other's opens on; a file of another version's junk is ignored."""
    import sys
    gi.require_version('GimpUi', '3.0')
    gi.require_version('Gtk', '3.0')
    gi.require_version('Gdk', '3.0')
    sys.path.insert(0, plugin_dir)
    import dialog
    try:
        dream = Gimp.get_pdb().lookup_procedure('python-fu-deepdream').create_config()
        dream.set_property('steps', 7)
        dream.set_property('layers', 'mixed3:1')
        dialog.save_shared_values(dream)
        zoom = Gimp.get_pdb().lookup_procedure('python-fu-deepdream-zoom').create_config()
        dialog.load_shared_values(zoom)
        record = {'steps': zoom.get_property('steps'), 'layers': zoom.get_property('layers')}
        with open(dialog.shared_values_path(), 'w') as handle:
            json.dump({'steps': 'many', 'octaves': 10**12, 'seed': 3}, handle)
        fresh = Gimp.get_pdb().lookup_procedure('python-fu-deepdream-zoom').create_config()
        dialog.load_shared_values(fresh)
        record.update(junk_steps=fresh.get_property('steps'), junk_seed=fresh.get_property('seed'))
    except Exception:  # noqa: BLE001  whatever went wrong is this case's result
        record = {'status': 'test-error', 'message': traceback.format_exc()}
    return record_result('shared-values', record)
