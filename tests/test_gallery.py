"""The artist's guide's gallery (docs/artists.md): what it shows is what docs/gallery/make.sh runs, and the pictures
are there."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GUIDE = (ROOT / "docs" / "artists.md").read_text()
MAKE = (ROOT / "docs" / "gallery" / "make.sh").read_text()


def test_the_guide_shows_every_command_of_make_sh_as_it_runs():
    commands = [line for line in MAKE.splitlines() if line.startswith("deepdream ")]
    assert len(commands) == 6  # layers, channel, guide, laplacian, network and the zoom
    quick = re.search(r"^QUICK=\"[^\"]*\"", MAKE, re.M).group(0)
    for line in [quick, *commands]:
        assert line in GUIDE, line


def test_every_gallery_picture_the_guide_shows_exists_and_is_small():
    pictures = set(re.findall(r"\]\((gallery/[^)]+)\)", GUIDE))  # relative to docs/
    assert {Path(picture).name for picture in pictures} >= {"before.jpg", "layers.jpg", "channel.jpg", "guide.jpg",
                                                           "guided.jpg", "laplacian.jpg", "network.jpg", "zoom.gif"}
    for picture in pictures:
        assert (ROOT / "docs" / picture).stat().st_size < 300_000, picture
