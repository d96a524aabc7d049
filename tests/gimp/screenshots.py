"""Makes the GIMP pictures of docs/artists.md (docs/gimp-*.png) from the walk through that the interface test
checks; the test itself writes nothing. As root, with the GIMP 3 test root built:
.venv/bin/python tests/gimp/screenshots.py docs
(Its gallery's dreams, docs/gallery/, come from docs/gallery/make.sh and a trained network.)"""

import io
import sys
from pathlib import Path

from PIL import Image

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent), str(HERE.parents[1])]
from bench.daemon_process import start_daemon  # noqa: E402
from deepdream_client.client import DreamClient  # noqa: E402
from harness import GimpRoot, root_of  # noqa: E402
from images import photo  # noqa: E402
from interface import dream_and_undo, preview_then_failure  # noqa: E402

SERIES = "3.0"  # the GIMP the guide's pictures show (CANVAS was measured there)


def main(folder):
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)

    def shoot(screen, name, window="root"):
        screen.settled()  # a menu or a preset's values fully drawn
        picture = Image.open(io.BytesIO(screen.capture(window)))
        if window == "root":  # whole screens: 256 colours keep the docs light
            picture = picture.convert("RGB").quantize(256)
        picture.save(folder / f"gimp-{name}.png", optimize=True)

    gimp = GimpRoot(root_of(SERIES), SERIES).setup()
    try:
        Image.fromarray(photo(300, 420, seed=11)).save(gimp.host("gui.png"))
        with start_daemon() as daemon, DreamClient(daemon.endpoint, timeout=30) as client:
            dream_and_undo(gimp, gimp.path("gui.png"), daemon.endpoint, lambda: client.ping().get("busy"), shoot)
        with start_daemon() as daemon, DreamClient(daemon.endpoint, timeout=30) as client:  # the dream mid-way
            preview_then_failure(gimp, gimp.path("gui.png"), daemon.endpoint, lambda: client.ping().get("busy"),
                                 daemon.stop, shoot)
    finally:
        gimp.cleanup()
    print(f"wrote {folder}/gimp-menu.png, gimp-dialog.png, gimp-edit-menu.png, gimp-preview.png")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "docs")
