"""Previews of a dream in progress (docs/protocol.md, "Previews"): the request's
`preview` map, checked; when a preview is due; and its pixels, scaled down from
the engine's snapshot of the dream so far.

The daemon's worker and the CLI's in-process dream make previews the same way.
Checking a request needs the standard library only (the daemon's I/O thread);
numpy and Pillow are imported only where a preview is made."""

import time

from .protocol import checked_options
from deepdream_common.vocabulary import PREVIEW, RAW


def checked(value):
    """A request's `preview` as {"interval": seconds, "max_side": pixels}, left-out
    keys at their defaults; ProtocolError BAD_REQUEST naming the key otherwise."""
    return checked_options(value, "preview", PREVIEW)


class Previews:
    """One dream's previews, as its `preview` request (checked) asks: due at the
    last step of every octave, and otherwise at the end of a step once
    `interval` seconds have passed since the last one (or the dream's start)."""

    def __init__(self, request, clock=time.monotonic):
        self.interval, self.max_side = request["interval"], request["max_side"]
        self._clock = clock
        self._last = clock()

    def due(self, event):
        """Whether the progress event `event` (the engine's) carries a preview."""
        now = self._clock()
        if event["step"] == event["steps"] or now - self._last >= self.interval:
            self._last = now
            return True
        return False

    def take(self, snapshot):
        """(description, pixels) of a preview of `snapshot()`, the engine's dream so far."""
        return frame(snapshot(), self.max_side)


def in_process(progress, request):
    """For a dream in this process: the engine's progress callback, which hands
    `progress` what a daemon would send, previews due under `request` (checked)
    in event["preview"] with their pixels, as DreamClient gives them."""
    previews = Previews(request)

    def with_previews(event):
        if previews.due(event):
            description, pixels = previews.take(event["snapshot"])
            event = {**event, "preview": {**description, "pixels": pixels}}
        progress(event)

    return with_previews


def frame(rgb, max_side):
    """(description, pixels) of a preview of `rgb` (float32 H x W x 3 in [0, 1],
    the caller's to scale in place): 8-bit RGB, scaled down to fit `max_side` on
    its longer side (never up), as W x H x 3 bytes, row-major, top row first."""
    import numpy as np
    from PIL import Image

    height, width = rgb.shape[:2]
    scale = min(1.0, max_side / max(height, width))
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    rgb *= 255.0
    rgb += 0.5  # rounds as the cast truncates
    picture = Image.fromarray(rgb.astype(np.uint8))
    if size != (width, height):
        picture = picture.resize(size, Image.Resampling.BILINEAR, reducing_gap=3.0)
    description = {"width": size[0], "height": size[1], "channels": 3, "dtype": "uint8", "format": RAW}
    return description, picture.tobytes()
