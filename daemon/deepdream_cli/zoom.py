"""Where `deepdream zoom` puts its frames: a folder of PNG files written as each
frame arrives (so Ctrl-C, or a lost daemon, keeps every frame done), and, for
an OUT ending in .gif or .webp, the animation made from them at the end.

    OUT a folder:       OUT/frame_0000.png (the start), OUT/frame_0001.png, ...
    OUT anim.gif/.webp: the same in anim.gif.frames/, then anim.gif

The highest frame file is where --resume starts again."""

import re
from pathlib import Path

from deepdream_client.image_files import ImageFileError, read_image, to_image, write_whole

ANIMATIONS = {".gif": "GIF", ".webp": "WEBP"}
FRAMES_SUFFIX = ".frames"  # the folder beside an animation that holds its frames
_FRAME_FILE = re.compile(r"frame_([0-9]+)\.png")


class ZoomOutputError(ImageFileError):
    """An output that cannot hold the zoom; the message is for the user."""


def frame_name(index):
    return f"frame_{index:04d}.png"


class ZoomOutput:
    """The frames folder of one zoom, and its animation file when OUT names one."""

    def __init__(self, path):
        self.path = Path(path)
        suffix = self.path.suffix.lower()
        self.animation = ANIMATIONS.get(suffix)  # Pillow's format name, or None for a folder of frames
        if self.animation is None and suffix and not self.path.is_dir():
            raise ZoomOutputError(f"{path}: a zoom is written as an animated .gif or .webp, or as a folder "
                                  f"of PNG frames (a name without an extension)")
        self.folder = self.path.with_name(self.path.name + FRAMES_SUFFIX) if self.animation else self.path
        parent = self.path.parent
        if not parent.is_dir():
            raise ZoomOutputError(f"{path}: cannot write it, there is no folder {parent}")
        if self.animation and self.path.is_dir():
            raise ZoomOutputError(f"{path}: is a folder; name the animation file to write")

    def frames(self):
        """{index: path} of the frame files in the folder so far."""
        if not self.folder.is_dir():
            return {}
        found = {}
        for path in self.folder.iterdir():
            match = _FRAME_FILE.fullmatch(path.name)
            if match:
                found[int(match.group(1))] = path
        return dict(sorted(found.items()))

    def start(self, image, resume):
        """(index, image) to zoom on from: frame 0, `image` (written as frame_0000.png),
        or with `resume` the highest frame file there is (`image` when there is none).
        Without `resume`, frames already there are an error: they are not overwritten."""
        done = self.frames()
        if done and not resume:
            raise ZoomOutputError(f"{self.folder} already holds {len(done)} frame(s) up to {max(done)}: "
                                  f"add --resume to continue from frame {max(done)}, or remove them")
        if done:
            index = max(done)
            return index, read_image(done[index])
        try:
            self.folder.mkdir(exist_ok=True)
        except OSError as error:
            raise ZoomOutputError(f"{self.folder}: cannot make the frames folder ({error.strerror or error})") from None
        self.write_frame(0, image)
        return 0, image

    def write_frame(self, index, array):
        """Write one frame whole (a file cut short by Ctrl-C would be the one --resume reads)."""
        write_whole(self.folder / frame_name(index), array)

    def finish(self, delay_ms):
        """Make the animation from every frame in the folder, in order (nothing
        for a folder of frames); returns how many frames the output holds."""
        done = self.frames()
        if self.animation is None or not done:
            return len(done)
        paths = iter(done.values())
        first, rest = _frame_image(next(paths)), (_frame_image(path) for path in paths)  # read one by one
        options = {"loop": 0, "duration": delay_ms}
        if self.animation == "WEBP":
            options.update(quality=90)
        try:
            first.save(self.path, format=self.animation, save_all=True, append_images=rest, **options)
        except OSError as error:
            raise ZoomOutputError(f"{self.path}: cannot write it ({error})") from None
        return len(done)


def _frame_image(path):
    """A frame file as an 8-bit image an animation can hold (GIF and WebP have no 16-bit)."""
    picture, _ = to_image(read_image(path), "WEBP")  # 8-bit RGB or RGBA: what both animation formats take
    return picture
