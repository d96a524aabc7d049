"""The infinite zoom (issue 14): the frame transform and frame loop on their own,
the CLI's frames folder and animation, then the whole zoom through a real
daemon: on the wire by hand, through the client library, and from the command line."""

import queue
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import zmq
from PIL import Image

from deepdream_cli import cli
from deepdream_cli.zoom import ZoomOutput, ZoomOutputError
from deepdream_client.client import DaemonError, DreamClient
from deepdream_client.image_files import read_image
from dream_engine import DreamParams
from dream_engine import zoom as engine_zoom
from images import photo
from raw_wire import TINY, connect, dream_request, receive, send, stream
from test_cli import clean_env, run_cli, shared_engine  # noqa: F401  shared_engine: a fixture

ZOOM = {"frames": 3, "scale": 1.1, "rotate": 3.0}


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


def test_frames_zoom_the_previous_frame_each_with_its_own_seed():
    image = photo(80, 90)
    zoom = {"frames": 3, "scale": 1.1, "rotate": 5.0, "first_index": 7, "frame_delay_ms": 100}
    seen = []

    def dream(frame, params, as_part):
        seen.append((frame.copy(), params.seed, as_part({"octave": 1, "fraction": 0.5})))
        return 255 - frame, replace(params, tile_size=256)  # as after running out of memory

    done = list(engine_zoom.frames(image, zoom, DreamParams(seed=2**32 - 9), dream))
    assert [index for index, _, _ in done] == [8, 9, 10]
    assert np.array_equal(seen[0][0], engine_zoom.transform(image, 1.1, 5.0))
    assert np.array_equal(seen[1][0], engine_zoom.transform(done[0][1], 1.1, 5.0))
    assert [seed for _, seed, _ in seen] == [2**32 - 1, 0, 1], "seed + index, wrapped into the wire's range"
    assert [event for _, _, event in seen] == [
        {"octave": 1, "fraction": fraction, "frame": index, "frames": 10}
        for fraction, index in ((0.5 / 3, 8), (1.5 / 3, 9), (2.5 / 3, 10))]
    assert {(params.seed, params.tile_size) for _, _, params in done} == {(2**32 - 9, 256)}


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


# -- on the wire, by hand ------------------------------------------------------------------------------

def zoom_on_the_wire(endpoint, image, params, zoom, kind=zmq.DEALER, **fields):
    """(final header, payload, [(header, payload) of every message before it]) of a raw zoom."""
    header, payload = dream_request(image, params, progress=kind == zmq.DEALER)
    header.update(op="zoom", zoom=zoom, **fields)
    return stream(endpoint, header, payload, kind, streamed=("progress", "frame"))


def test_a_zoom_streams_its_frames_one_by_one_in_order(daemon):
    image = photo(90, 110)
    reply, data, messages = zoom_on_the_wire(daemon.endpoint, image, TINY, ZOOM)
    assert reply["type"] == "result" and reply["frames_sent"] == 3 and data is None, reply
    assert reply["stats"]["zoom"] == {**ZOOM, "first_index": 0, "frame_delay_ms": 100}
    frames = [(header, data) for header, data in messages if header["type"] == "frame"]
    assert [header["index"] for header, _ in frames] == [1, 2, 3]
    for header, data in frames:
        assert header["frames"] == 3 and header["image"] == {"format": "raw", "dtype": "uint8", "width": 110,
                                                              "height": 90, "channels": 3}
        assert len(data) == image.size
    # Each frame comes as soon as it is done: the next frame's progress follows it.
    kinds = [(header["type"], header.get("frame")) for header, _ in messages if header.get("octave", 1)]
    first_frame_sent = kinds.index(("frame", None))
    assert ("progress", 2) in kinds[first_frame_sent:] and ("progress", 2) not in kinds[:first_frame_sent]
    fractions = [header["fraction"] for header, _ in messages if header["type"] == "progress"]
    assert fractions == sorted(fractions) and fractions[-1] == pytest.approx(1.0)
    first = np.frombuffer(frames[0][1], np.uint8).reshape(image.shape)
    second = np.frombuffer(frames[1][1], np.uint8).reshape(image.shape)
    assert np.abs(first.astype(int) - image).mean() > 5 and np.abs(second.astype(int) - first).mean() > 5


def test_previews_show_each_frame_as_it_is_dreamed(daemon):
    reply, _, messages = zoom_on_the_wire(daemon.endpoint, photo(90, 110), TINY, {"frames": 2},
                                          preview={"max_side": 64})
    assert reply["frames_sent"] == 2, reply
    shown = [(header, data) for header, data in messages if "preview" in header]
    assert {header["frame"] for header, _ in shown} == {1, 2}, "every frame's last step shows a preview"
    for header, data in shown:
        assert header["preview"] == {"width": 64, "height": 52, "channels": 3, "dtype": "uint8", "format": "raw"}
        assert len(data) == 64 * 52 * 3


def test_a_resumed_zoom_goes_on_with_the_same_frames(daemon):
    image = photo(80, 100)
    _, _, messages = zoom_on_the_wire(daemon.endpoint, image, TINY, {**ZOOM, "frames": 2})
    frames = [np.frombuffer(data, np.uint8).reshape(image.shape) for header, data in messages
              if header["type"] == "frame"]
    reply, _, resumed = zoom_on_the_wire(daemon.endpoint, frames[0], TINY, {**ZOOM, "frames": 1, "first_index": 1})
    assert reply["frames_sent"] == 1, reply
    [(header, data)] = [(header, data) for header, data in resumed if header["type"] == "frame"]
    assert header["index"] == 2 and header["frames"] == 2
    assert np.array_equal(np.frombuffer(data, np.uint8).reshape(image.shape), frames[1])


def test_an_encoded_zoom_sends_png_frames_and_keeps_alpha(daemon):
    import io

    rgba = np.dstack([photo(80, 90), np.full((80, 90), 77, np.uint8)])
    buffer = io.BytesIO()
    Image.fromarray(rgba).save(buffer, format="PNG")
    header = {"v": 1, "op": "zoom", "id": "encoded-zoom", "params": TINY, "zoom": {"frames": 1},
              "image": {"format": "encoded"}}
    sock = connect(daemon.endpoint)
    send(sock, header, buffer.getvalue())
    while (reply := receive(sock))[0]["type"] == "progress":
        pass
    frame, data = reply
    final, _ = receive(sock)
    sock.close()
    assert frame["type"] == "frame" and frame["image"]["encoding"] == "png" and final["frames_sent"] == 1
    picture = np.asarray(Image.open(io.BytesIO(data)))
    assert picture.shape == (80, 90, 4) and (picture[..., 3] == 77).all()


@pytest.mark.parametrize("zoom, named", [
    ({"frames": 0}, "zoom.frames"), ({"frames": 10_001}, "zoom.frames"), ({"frames": 2.0}, "zoom.frames"),
    ({"frames": True}, "zoom.frames"), ({"scale": 0.9}, "zoom.scale"), ({"scale": "1.1"}, "zoom.scale"),
    ({"scale": float("nan")}, "zoom.scale"), ({"rotate": 46}, "zoom.rotate"), ({"first_index": -1}, "zoom.first_index"),
    ({"frame_delay_ms": 5}, "zoom.frame_delay_ms"), ({"speed": 2}, '"speed"'), ([3], "`zoom` must be a map"),
    (None, "`zoom` must be a map"),
])
def test_bad_zoom_fields_are_refused_naming_the_key(daemon, zoom, named):
    reply, _, messages = zoom_on_the_wire(daemon.endpoint, photo(80, 80), TINY, zoom)
    assert reply["type"] == "error" and reply["code"] == "BAD_REQUEST", reply
    assert named in reply["message"] and not messages


def test_a_zoom_from_a_req_socket_is_refused(daemon):
    reply, _, _ = zoom_on_the_wire(daemon.endpoint, photo(80, 80), TINY, ZOOM, kind=zmq.REQ)
    assert reply["code"] == "BAD_REQUEST" and "DEALER" in reply["message"], reply
    reply, _, _ = zoom_on_the_wire(daemon.endpoint, photo(80, 80), {**TINY, "octaves": 0}, ZOOM)
    assert reply["code"] == "INVALID_PARAMS", reply


# -- through the client library ------------------------------------------------------------------------

def test_the_client_yields_frames_as_they_arrive(daemon):
    image = np.dstack([photo(90, 100), np.full((90, 100), 200, np.uint8)])
    events = []
    with DreamClient(daemon.endpoint, timeout=10) as client:
        stream = client.zoom_frames(image.tobytes(), 100, 90, 4, zoom=ZOOM, params=TINY, progress=events.append)
        received = []
        for frame in stream:
            received.append(frame)
            assert events[-1]["frame"] == frame.index, "yielded before the next frame is dreamed"
        assert [frame.index for frame in received] == [1, 2, 3] and {frame.frames for frame in received} == {3}
        for frame in received:
            pixels = frame.array()
            assert pixels.shape == (90, 100, 4) and pixels.dtype == np.uint8 and (pixels[..., 3] == 200).all()
        kept = []
        result = client.zoom_array(image[..., :3].astype(np.float32) / 255, zoom={"frames": 2}, params=TINY,
                                   on_frame=kept.append)
        assert result.frames_sent == 2 and result.stats["zoom"]["scale"] == 1.05
        assert [frame.array().dtype for frame in kept] == [np.float32, np.float32]


def test_a_cancelled_zoom_keeps_the_frames_that_came(daemon):
    kept = []
    with DreamClient(daemon.endpoint, timeout=10) as client:
        with pytest.raises(DaemonError) as cancelled:
            client.zoom_array(photo(90, 100), zoom={"frames": 50}, params={**TINY, "steps": 30},
                              on_frame=kept.append, cancel_check=lambda: bool(kept))
        assert cancelled.value.code == "CANCELLED"
        assert [frame.index for frame in kept] == [1]
        assert client.ping()["busy"] is False
        # A reader that stops early (break) stops the zoom on the daemon too.
        for frame in client.zoom_frames(photo(90, 100).tobytes(), 100, 90, 3, zoom={"frames": 50},
                                        params={**TINY, "steps": 30}):
            break
        deadline = time.monotonic() + 10
        while client.ping()["busy"] and time.monotonic() < deadline:
            time.sleep(0.1)
        assert client.ping()["busy"] is False
    assert "CANCELLED (cancel)" in daemon.log_text()


def test_the_scripting_guides_zoom_script_runs_as_written(daemon, tmp_path):
    guide = (Path(__file__).parents[1] / "docs" / "scripting.md").read_text()
    script = re.search(r"writes a 3-frame zoom of `photo.jpg`:\n\n```python\n(.*?)```", guide, re.S).group(1)
    Image.fromarray(photo(90, 120)).save(tmp_path / "photo.jpg")
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env=clean_env(DEEPDREAM_ENDPOINT=daemon.endpoint))
    assert done.returncode == 0, done.stderr
    assert [Image.open(tmp_path / f"frame_000{index}.png").size for index in (1, 2, 3)] == [(120, 90)] * 3


# -- from the command line -----------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["zoom.gif", "frames"])
def test_the_cli_zooms_into_an_animation_or_a_folder(daemon, tmp_path, name):
    Image.fromarray(photo(80, 96)).save(tmp_path / "in.png")
    done = run_cli("zoom", tmp_path / "in.png", tmp_path / name, "--frames", "3", "--zoom", "1.1", "--rotate", "2",
                   *cli_tiny(), "--frame-delay", "150", env=clean_env(DEEPDREAM_ENDPOINT=daemon.endpoint))
    assert done.returncode == 0, done.stderr
    assert "frame 3/3" in done.stderr and "100%" in done.stderr
    folder = tmp_path / ("zoom.gif.frames" if name.endswith(".gif") else name)
    assert sorted(path.name for path in folder.iterdir()) == [f"frame_000{i}.png" for i in range(4)]
    assert np.array_equal(read_image(folder / "frame_0000.png"), photo(80, 96))
    assert all(Image.open(folder / f"frame_000{i}.png").size == (96, 80) for i in range(4))
    if name.endswith(".gif"):
        with Image.open(tmp_path / name) as animation:
            assert animation.n_frames == 4 and animation.info["duration"] == 150


def cli_tiny():
    return ["--octaves", "1", "--steps", "2", "--tile-size", "512", "--jitter", "0"]


def test_ctrl_c_keeps_the_frames_and_resume_continues_the_numbering(daemon, tmp_path):
    Image.fromarray(photo(80, 96)).save(tmp_path / "in.png")
    zooming = subprocess.Popen(
        [sys.executable, "-m", "deepdream_cli.cli", "zoom", str(tmp_path / "in.png"), str(tmp_path / "zoom.webp"),
         "--endpoint", daemon.endpoint, "--frames", "50", "--octaves", "1", "--steps", "30", "--tile-size", "512"],
        stderr=subprocess.PIPE, text=True, env=clean_env(),
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # see test_cli's Ctrl-C test
    lines = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in zooming.stderr], daemon=True).start()
    folder = tmp_path / "zoom.webp.frames"
    try:
        deadline = time.monotonic() + 120
        while not (folder / "frame_0001.png").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        zooming.send_signal(signal.SIGINT)
        assert zooming.wait(timeout=30) == cli.EXIT_INTERRUPTED
    finally:
        zooming.kill()
    said = []
    while not lines.empty():
        said.append(lines.get())
    said = "".join(said)
    kept = sorted(int(path.stem.split("_")[1]) for path in folder.glob("frame_*.png"))
    assert kept[:2] == [0, 1] and kept == list(range(len(kept))), kept
    assert f"frames up to {kept[-1]} kept in {folder}" in said and "--resume" in said and "Traceback" not in said
    with Image.open(tmp_path / "zoom.webp") as animation:
        assert animation.n_frames == len(kept), "the animation of the frames done"

    last = kept[-1]
    done = run_cli("zoom", tmp_path / "in.png", tmp_path / "zoom.webp", "--frames", last + 1, *cli_tiny(),
                   "--endpoint", daemon.endpoint)
    assert done.returncode == 1 and "--resume" in done.stderr, "frames are never overwritten unasked"
    done = run_cli("zoom", tmp_path / "in.png", tmp_path / "zoom.webp", "--frames", last + 2, "--resume",
                   *cli_tiny(), "--endpoint", daemon.endpoint)
    assert done.returncode == 0, done.stderr
    assert f"from frame {last}" in done.stderr
    assert sorted(int(path.stem.split("_")[1]) for path in folder.glob("frame_*.png")) == list(range(last + 3))
    with Image.open(tmp_path / "zoom.webp") as animation:
        assert animation.n_frames == last + 3


def test_the_cli_zooms_in_process_too(tmp_path, shared_engine, capsys):  # noqa: F811  the fixture
    Image.fromarray(photo(80, 96)).save(tmp_path / "in.png")
    assert cli.main(["zoom", str(tmp_path / "in.png"), str(tmp_path / "frames"), "--frames", "2", *cli_tiny(),
                     "--in-process", "--weights", "random"]) == 0
    said = capsys.readouterr().err
    assert "dreaming in-process" in said and "wrote" in said and "(3 frames, 96x80)" in said
    assert sorted(path.name for path in (tmp_path / "frames").iterdir()) == [f"frame_000{i}.png" for i in range(3)]


@pytest.mark.parametrize("args, message", [
    (["--frames", "0"], "--frames must be a whole number from 1 to 10000, got 0"),
    (["--zoom", "0.9"], "--zoom must be a number from 1 to 2, got 0.9"),
    (["--rotate", "nan"], "--rotate must be a number from -45 to 45"),
    (["--frame-delay", "1"], "--frame-delay must be a whole number from 10 to 60000"),
])
def test_bad_zoom_options_are_one_clear_line(tmp_path, capsys, args, message):
    Image.fromarray(photo(80, 80)).save(tmp_path / "in.png")
    assert cli.main(["zoom", str(tmp_path / "in.png"), str(tmp_path / "zoom.gif"), *args, "--in-process"]) == 1
    said = capsys.readouterr().err
    assert said.startswith(f"deepdream: {message}") and said.count("\n") == 1, said
