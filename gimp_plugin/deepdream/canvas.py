"""What the artist sees while the daemon works: GIMP's progress, the dream growing in a preview layer, and a
zoom's frames arriving in a new image. deepdream.py chose gi's versions."""

from gi.repository import Gegl, Gimp

from pixels import scale_into, wire_order


def show_waiting(pong):
    Gimp.progress_set_text('Starting the DeepDream daemon...' if pong is None else
                           'DeepDream: the daemon is loading its model...')
    Gimp.progress_pulse()


def show_progress(event):
    frame = f"frame {event.get('frame')}/{event.get('frames')}, " if 'frame' in event else ''  # a zoom's
    Gimp.progress_set_text(f"DeepDream: {frame}octave {event.get('octave')}/{event.get('octaves')}, "
                           f"step {event.get('step')}/{event.get('steps')}")
    Gimp.progress_update(min(1.0, max(0.0, float(event.get('fraction') or 0.0))))


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
