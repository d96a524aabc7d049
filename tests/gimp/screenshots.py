"""Makes the README's GIMP pictures (docs/gimp-*.png, docs/before-after.png) from the walk
through that the interface test checks; the test itself writes nothing. As root, with the GIMP 3
test root built:  .venv/bin/python tests/gimp/screenshots.py docs"""

import io
import sys
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent), str(HERE.parents[1])]
from daemon_process import start_daemon  # noqa: E402
from deepdream_client.client import DreamClient  # noqa: E402
from harness import GimpRoot, root_of  # noqa: E402
from images import photo  # noqa: E402
from interface import CANVAS, dream_and_undo, preview_then_failure  # noqa: E402

SERIES = "3.0"  # the GIMP the README's pictures show (CANVAS was measured there)


def before_after(before, after):
    """The dreamed part of the canvas, before and after, side by side."""
    changed = np.any(before[CANVAS] != after[CANVAS], axis=2)
    rows, cols = np.nonzero(changed)
    top, left = CANVAS[0].start, CANVAS[1].start
    box = (cols.min() + left, rows.min() + top, cols.max() + left + 1, rows.max() + top + 1)
    width, height = box[2] - box[0], box[3] - box[1]
    pair = Image.new("RGB", (2 * width + 16, height), (255, 255, 255))
    pair.paste(Image.fromarray(before).crop(box), (0, 0))
    pair.paste(Image.fromarray(after).crop(box), (width + 16, 0))
    return pair


def main(folder):
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)

    def shoot(screen, name, window="root"):
        screen.settled()  # a menu or a preset's values fully drawn
        picture = Image.open(io.BytesIO(screen.capture(window)))
        if window == "root":  # whole screens: 256 colours keep the README light
            picture = picture.convert("RGB").quantize(256)
        picture.save(folder / f"gimp-{name}.png", optimize=True)

    gimp = GimpRoot(root_of(SERIES), SERIES).setup()
    try:
        Image.fromarray(photo(300, 420, seed=11)).save(gimp.host("gui.png"))
        with start_daemon() as daemon, DreamClient(daemon.endpoint, timeout=30) as client:
            before, after, _, _ = dream_and_undo(gimp, gimp.path("gui.png"), daemon.endpoint,
                                                 lambda: client.ping().get("busy"), shoot)
        before_after(before, after).save(folder / "before-after.png")
        with start_daemon() as daemon, DreamClient(daemon.endpoint, timeout=30) as client:  # the dream mid-way
            preview_then_failure(gimp, gimp.path("gui.png"), daemon.endpoint, lambda: client.ping().get("busy"),
                                 daemon.stop, shoot)
    finally:
        gimp.cleanup()
    print(f"wrote {folder}/gimp-menu.png, gimp-dialog.png, gimp-edit-menu.png, before-after.png, gimp-preview.png")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "docs")
