"""Pixels between GIMP and the wire: which region is dreamed, read without loss in the layer's own depth,
written back, scaled onto the canvas, by GEGL (never Python pixel by pixel). deepdream.py chose gi's versions."""

import sys
from array import array

from deepdream_common.vocabulary import MIN_SIDE
from gi.repository import Gegl, Gimp

CONTEXT_MARGIN = 64      # pixels of context dreamed around a selection (less around small ones)


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
