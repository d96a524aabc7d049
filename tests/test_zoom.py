"""The infinite zoom (issue 14): the frame transform and frame loop on their own,
the CLI's frames folder and animation, then the whole zoom through a real
daemon: on the wire by hand, through the client library, and from the command line."""

import numpy as np
import pytest
from PIL import Image

from deepdream_cli.zoom import ZoomOutput, ZoomOutputError
from deepdream_client.image_files import read_image
from dream_engine import DreamParams
from dream_engine import zoom as engine_zoom
from images import photo


# -- the frame transform -------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype, channels", [("uint8", 1), ("uint8", 2), ("uint8", 3), ("uint8", 4),
                                             ("uint16", 1), ("uint16", 3), ("float32", 3), ("float32", 4)])
def test_transform_keeps_shape_dtype_and_leaves_no_empty_corners(dtype, channels):
    scale = {"uint8": 200, "uint16": 50_000, "float32": 0.7}[dtype]
    image = np.full((90, 120, channels), scale, dtype)
    moved = engine_zoom.transform(image, 1.05, 30.0)
    assert moved.shape == image.shape and moved.dtype == image.dtype
    # A flat image stays flat: what the rotation uncovers is the image reflected, not black.
    assert np.allclose(moved.astype(float), float(np.asarray(scale, dtype)), atol=1e-4)


def test_transform_zooms_about_the_centre():
    height, width = 81, 101
    ramp = np.repeat(np.arange(width, dtype=np.float32)[None, :] / (width - 1), height, axis=0)[..., None]
    zoomed = engine_zoom.transform(ramp, 2.0, 0.0)[40, :, 0] * (width - 1)
    # The centre column stays; each column shows the one half as far from the centre.
    assert zoomed[50] == pytest.approx(50, abs=1e-3)
    assert zoomed[70] == pytest.approx(60, abs=1e-3) and zoomed[30] == pytest.approx(40, abs=1e-3)
    assert np.array_equal(engine_zoom.transform(ramp, 1.0, 0.0), ramp)


def test_transform_rotates_counter_clockwise_about_the_centre():
    image = photo(99, 99)
    assert np.array_equal(engine_zoom.transform(image, 1.0, 90.0), np.rot90(image))
    assert np.array_equal(engine_zoom.transform(image, 1.0, -90.0), np.rot90(image, -1))


def test_frames_zoom_the_previous_frame_with_their_own_seed():
    image = photo(80, 90)
    zoom = {"frames": 3, "scale": 1.1, "rotate": 5.0, "first_index": 7, "frame_delay_ms": 100}
    seen = []

    def dream(frame, position, index):
        seen.append((position, index, frame.copy()))
        return 255 - frame  # something the next frame must start from

    done = list(engine_zoom.frames(image, zoom, dream))
    assert [index for index, _ in done] == [8, 9, 10]
    assert [position for position, _, _ in seen] == [0, 1, 2]
    assert np.array_equal(seen[0][2], engine_zoom.transform(image, 1.1, 5.0))
    assert np.array_equal(seen[1][2], engine_zoom.transform(done[0][1], 1.1, 5.0))
    params = DreamParams(seed=2**32 - 2)
    assert [engine_zoom.frame_params(params, index).seed for index in (1, 2, 3)] == [2**32 - 1, 0, 1]
    event = engine_zoom.frame_progress({"octave": 1, "fraction": 0.5}, 1, 4, 9, 11)
    assert event == {"octave": 1, "fraction": 0.375, "frame": 9, "frames": 11}


# -- the CLI's output: frames folder, animation, resume ------------------------------------------------

def test_folder_output_keeps_every_frame_and_resumes_from_the_last(tmp_path):
    start = photo(80, 90)
    output = ZoomOutput(tmp_path / "zoom")
    index, image = output.start(start, resume=False)
    assert index == 0 and image is start
    assert np.array_equal(read_image(tmp_path / "zoom" / "frame_0000.png"), start)
    for index in (1, 2):
        output.write_frame(index, start // index)
    assert output.finish(100) == 3
    with pytest.raises(ZoomOutputError, match="already holds 3 frame.*--resume"):
        ZoomOutput(tmp_path / "zoom").start(start, resume=False)
    index, image = ZoomOutput(tmp_path / "zoom").start(start, resume=True)
    assert index == 2 and np.array_equal(image, start // 2)
    assert not list((tmp_path / "zoom").glob(".*")), "no temporary files are left behind"


@pytest.mark.parametrize("name", ["zoom.gif", "zoom.webp"])
def test_animation_output_has_every_frame_and_the_delay(tmp_path, name):
    output = ZoomOutput(tmp_path / name)
    start = np.dstack([photo(80, 90), np.full((80, 90), 255, np.uint8)])  # RGBA: 8-bit animations take it
    output.start(start, resume=False)
    for index in (1, 2, 3):
        output.write_frame(index, np.roll(start, 10 * index, axis=1))
    assert output.finish(120) == 4
    assert (tmp_path / f"{name}.frames" / "frame_0003.png").is_file()
    with Image.open(tmp_path / name) as animation:
        assert animation.n_frames == 4 and animation.size == (90, 80)
        animation.seek(1)
        animation.load()  # WebP says a frame's duration once it is read
        assert animation.info["duration"] == 120


@pytest.mark.parametrize("name, message", [("zoom.png", "animated .gif or .webp, or as a folder"),
                                           ("missing/zoom.gif", "there is no folder")])
def test_outputs_that_cannot_hold_a_zoom_are_refused(tmp_path, name, message):
    with pytest.raises(ZoomOutputError, match=message):
        ZoomOutput(tmp_path / name)
