"""The GIMP 3 plug-in in a real GIMP 3 (tests/gimp/make-root.sh builds it) against a real daemon.

GIMP runs headless (gimp-console-<version> in batch mode) inside its Debian root,
once for GIMP 3.0 (trixie) and once for GIMP 3.2 (forky): the `gimp` fixture
(tests/conftest.py) parametrizes every test here. The daemon runs on the host with
random weights (ImageNet weights need a download these machines cannot make) and
the plug-in reaches it on loopback.
Every expectation about pixels is checked against what daemon/deepdream_client/client.py gets
from the same daemon for the same pixels and parameters."""

import os
import signal
import sys
import threading
import time
from pathlib import Path

import msgpack
import numpy as np
import pytest
import zmq
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent / "gimp"))
from bench.daemon_process import free_port, start_daemon
from deepdream_client.client import DreamClient
from harness import poll, stop, wait_for
from images import photo
from interface import (CANVAS, dream_and_undo, plugin_complaints, preview_then_failure,
                       selection_cancel_and_round_trip)

pytestmark = pytest.mark.gimp  # every test here needs the GIMP 3 test root

PARAMS = {"octaves": 2, "steps": 3, "seed": 7, "jitter": 4, "step_size": 0.02}
PROPS = "octaves=2, steps=3, seed=7, jitter=4, step_size=0.02"  # the same, as plug-in arguments
CREATIVE_LAYERS = "mixed3[5,17]:1,mixed4:0.5"  # channel targets, in the dialog's text syntax


@pytest.fixture(scope="module")
def dreamd():
    with start_daemon() as daemon:
        yield daemon


@pytest.fixture(scope="module")
def client(dreamd):
    with DreamClient(dreamd.endpoint, timeout=30) as client:
        yield client


def rgba_photo(height, width):
    """A photo with an alpha that varies: a gradient, a hole and a fully opaque band."""
    rgb = photo(height, width, seed=3)
    y, x = np.mgrid[0:height, 0:width]
    alpha = (255 * x / (width - 1)).astype(np.uint8)
    alpha[(y - height // 2) ** 2 + (x - width // 2) ** 2 < (height // 5) ** 2] = 0
    alpha[: height // 6] = 255
    return np.dstack([rgb, alpha])


def photo16(height, width):
    """16-bit RGB with values an 8-bit round trip could not keep."""
    base = photo(height, width, seed=5).astype(np.uint16) * 257
    return (base + np.random.default_rng(5).integers(0, 257, base.shape)).astype("<u2")


BATCH = f"""
endpoint = os.environ['DD_ENDPOINT']
image = load('photo.png')
dream('rgb', image, image.get_layers()[0], "R'G'B' u8", endpoint=endpoint, {PROPS})
image, layer = from_raw('rgba.raw', 96, 80, "R'G'B'A u8")
dream('rgba', image, layer, "R'G'B'A u8", endpoint=endpoint, {PROPS})
image = load('gray.png')
dream('gray', image, image.get_layers()[0], "Y' u8", endpoint=endpoint, {PROPS})
image, layer = from_raw('rgb16.raw', 96, 80, "R'G'B' u16", precision='u16')
dream('u16', image, layer, "R'G'B' u16", endpoint=endpoint, {PROPS})
image, layer = from_raw('rgb16.raw', 96, 80, "R'G'B' u16", precision='float')
dream('float', image, layer, "R'G'B' float", endpoint=endpoint, {PROPS})
image, layer = from_raw('offsets.raw', 90, 80, "R'G'B' u8", canvas=(200, 160), offsets=(70, 45))
dream('offsets', image, layer, "R'G'B' u8", endpoint=endpoint, {PROPS})
image = load('photo.png')
image.select_ellipse(Gimp.ChannelOps.REPLACE, 120, 30, 50, 40)
dream('selection', image, image.get_layers()[0], "R'G'B' u8", endpoint=endpoint, {PROPS})
dream('mask', image, image.get_layers()[0].get_mask(), "Y u8", endpoint=endpoint, preset='subtle', seed=7)
image = load('photo.png')
dream('daemon-error', image, image.get_layers()[0], "R'G'B' u8", endpoint=endpoint, layers='nosuchlayer:1', {PROPS})
image = load('photo.png')
dream('daemon-down', image, image.get_layers()[0], "R'G'B' u8", endpoint=os.environ['DD_NOBODY'], {PROPS})
with_start_command(['/nonexistent/DeepDream/.venv/bin/deepdream-daemon'])  # an install moved away
image = load('photo.png')
dream('start-fails', image, image.get_layers()[0], "R'G'B' u8", endpoint=os.environ['DD_NOBODY'], {PROPS})
with_start_command(None)
shared_dialog_values(os.environ['DD_PLUGIN_DIR'])
image = load('gray.png')
dream('last-values', image, image.get_layers()[0], "Y' u8", run_mode=Gimp.RunMode.WITH_LAST_VALS)
image = load('big.png')
dream('dream-size', image, image.get_layers()[0], "R'G'B' u8", endpoint=endpoint, dream_size=0.1, {PROPS})
image, guide = load('photo.png'), load('guide.png')  # the guide: a layer of another open image
dream('creative', image, image.get_layers()[0], "R'G'B' u8", endpoint=endpoint, guide=guide.get_layers()[0],
      normalize='laplacian', layers='{CREATIVE_LAYERS}', {PROPS})
image = load('photo.png')
dream('unknown-model', image, image.get_layers()[0], "R'G'B' u8", endpoint=endpoint, model='alexnet', {PROPS})
image = load('photo.png')
group = in_a_group(image)
dream('group', image, group, "R'G'B'A u8", endpoint=endpoint, {PROPS})
image = load('photo.png')
group = in_a_group(image)
dream('in-a-group', image, group.get_children()[0], "R'G'B' u8", endpoint=endpoint, {PROPS})
"""


@pytest.fixture(scope="module")
def batch(gimp, dreamd):
    """One GIMP session runs every batch case (GIMP's start is the slow part)."""
    Image.fromarray(photo(160, 200)).save(gimp.host("photo.png"))
    Image.fromarray(photo(80, 96, seed=2)[..., 1]).save(gimp.host("gray.png"))
    gimp.host("rgba.raw").write_bytes(rgba_photo(80, 96).tobytes())
    gimp.host("rgb16.raw").write_bytes(photo16(80, 96).tobytes())
    gimp.host("offsets.raw").write_bytes(photo(80, 90, seed=4).tobytes())
    Image.fromarray(photo(320, 400, seed=6)).save(gimp.host("big.png"))  # 0.128 MP
    Image.fromarray(guide_photo()).save(gimp.host("guide.png"))
    gimp.write_client_config(None)
    started = time.monotonic()
    results, output = gimp.run_batch(BATCH, DD_ENDPOINT=dreamd.endpoint, DEEPDREAM_ENDPOINT=dreamd.endpoint,
                                     DD_NOBODY=f"tcp://127.0.0.1:{free_port()}",
                                     DD_PLUGIN_DIR=gimp.path(str(gimp.plugin_dir.relative_to(gimp.work) / "deepdream")))
    print(f"GIMP batch: {time.monotonic() - started:.1f} s")
    assert len(results) == 18, f"the batch script stopped early:\n{output[-3000:]}"
    return results


def guide_photo():
    return photo(90, 120, seed=9)  # its own size: the daemon fits it to the dream


def pixels(gimp, name, height, width, channels, dtype="u1"):
    return np.frombuffer(gimp.read(name), dtype=np.dtype(dtype).newbyteorder("=")).reshape(height, width, channels)


def check_new_layer(result, source_name="source"):
    """Exactly one new layer, named DeepDream..., directly above its source, same size and offsets."""
    assert result["status"] == "success", result["message"]
    new, layers = result["new"], result["layers"]
    assert new is not None and len(layers) == 2
    assert new["name"].startswith("DeepDream")
    assert layers[0]["id"] == new["id"]  # above the source
    source = layers[1]
    assert (new["width"], new["height"], new["offsets"]) == (source["width"], source["height"], source["offsets"])
    assert new["has_alpha"]
    return new


def test_batch_rgb_photo_matches_the_client(batch, gimp, client):
    result = batch["rgb"]
    new = check_new_layer(result)
    assert not new["has_mask"] and result["precision"] == "u8-non-linear"
    source = pixels(gimp, "rgb.source-before", 160, 200, 3)
    assert gimp.read("rgb.source-after") == source.tobytes(), "the source layer changed"
    expected = client.dream_array(source, PARAMS)
    dreamed = pixels(gimp, "rgb.new", 160, 200, 3)
    assert np.array_equal(dreamed, expected)
    assert np.abs(dreamed.astype(int) - source).mean() > 1  # it did dream
    assert np.all(pixels(gimp, "rgb.new-alpha", 160, 200, 4)[..., 3] == 255)


def test_rgba_keeps_a_varied_alpha(batch, gimp, client):
    new = check_new_layer(batch["rgba"])
    source = pixels(gimp, "rgba.source-before", 80, 96, 4)
    assert np.array_equal(source, rgba_photo(80, 96))
    assert gimp.read("rgba.source-after") == source.tobytes()
    dreamed = pixels(gimp, "rgba.new", 80, 96, 4)
    assert np.array_equal(dreamed, client.dream_array(source, PARAMS))
    assert np.array_equal(dreamed[..., 3], source[..., 3])
    assert not new["has_mask"]


def test_gray_layer(batch, gimp, client):
    check_new_layer(batch["gray"])
    source = pixels(gimp, "gray.source-before", 80, 96, 1)
    assert gimp.read("gray.source-after") == source.tobytes()
    assert np.array_equal(pixels(gimp, "gray.new", 80, 96, 1), client.dream_array(source, PARAMS))
    assert np.all(pixels(gimp, "gray.new-alpha", 80, 96, 2)[..., 1] == 255)


def test_16_bit_image_has_no_8_bit_round_trip(batch, gimp, client):
    result = batch["u16"]
    check_new_layer(result)
    assert result["precision"] == "u16-non-linear"
    source = pixels(gimp, "u16.source-before", 80, 96, 3, "<u2")
    assert np.array_equal(source, photo16(80, 96))
    dreamed = pixels(gimp, "u16.new", 80, 96, 3, "<u2")
    assert np.array_equal(dreamed, client.dream_array(source, PARAMS))
    assert np.mean(dreamed % 257 != 0) > 0.5  # 8-bit values widened to 16 bits would all be multiples of 257


def test_float_image_is_dreamed_in_float(batch, gimp, client):
    result = batch["float"]
    check_new_layer(result)
    assert result["precision"] == "float-linear"
    source = pixels(gimp, "float.source-before", 80, 96, 3, "<f4")
    assert np.allclose(source, photo16(80, 96) / 65535.0, atol=1e-5)
    expected = client.dream_array(source, PARAMS)
    assert np.allclose(pixels(gimp, "float.new", 80, 96, 3, "<f4"), expected, atol=1e-5)


def test_layer_with_offsets(batch, gimp, client):
    new = check_new_layer(batch["offsets"])
    assert new["offsets"] == [70, 45] and (new["width"], new["height"]) == (90, 80)
    source = pixels(gimp, "offsets.source-before", 80, 90, 3)
    assert np.array_equal(pixels(gimp, "offsets.new", 80, 90, 3), client.dream_array(source, PARAMS))


def test_selection_dreams_its_surroundings_and_masks_the_layer(batch, gimp, client):
    new = check_new_layer(batch["selection"])
    assert new["has_mask"]
    mask = pixels(gimp, "selection.mask", 160, 200, 1)[..., 0]
    assert mask[50, 145] == 255 and mask[10, 10] == 0 and mask[50, 100] == 0  # the ellipse 120,30 50x40
    alpha = pixels(gimp, "selection.new-alpha", 160, 200, 4)[..., 3]
    rows, cols = np.nonzero(alpha)
    y0, y1, x0, x1 = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
    assert y0 < 30 and x0 < 120 and y1 > 70 and x1 > 170, "no context around the selection"
    assert (x1 - x0) * (y1 - y0) < 200 * 160 / 2, "dreamed far more than the selection's neighbourhood"
    assert np.all(alpha[y0:y1, x0:x1] == 255), "the dreamed rectangle is not opaque"
    assert alpha.sum() == 255 * (x1 - x0) * (y1 - y0), "pixels outside the dreamed rectangle are not transparent"
    source = pixels(gimp, "selection.source-before", 160, 200, 3)
    expected = client.dream_array(np.ascontiguousarray(source[y0:y1, x0:x1]), PARAMS)
    assert np.array_equal(pixels(gimp, "selection.new", 160, 200, 3)[y0:y1, x0:x1], expected)


def test_after_a_selection_dream_the_new_layer_not_its_mask_is_selected(batch):
    """Filters > Repeat needs one layer selected: the new layer, not the mask GIMP made active."""
    new = check_new_layer(batch["selection"])
    assert batch["selection"]["selected"] == [new["id"]]


def test_a_selected_layer_mask_dreams_its_layer_and_names_the_preset(batch):
    result = batch["mask"]  # the selection case's new layer, called with its mask as the drawable
    assert result["status"] == "success", result["message"]
    new, layers = result["new"], result["layers"]
    assert new is not None and len(layers) == 3
    assert layers[0]["id"] == new["id"] and layers[1]["id"] == batch["selection"]["new"]["id"]  # above the mask's layer
    assert new["has_mask"] and result["selected"] == [new["id"]]
    assert new["name"] == "DeepDream (Subtle textures, 3x10 steps, seed 7)"  # the preset's label, not "subtle"


def test_a_layer_group_is_dreamed_as_it_shows_and_its_dream_goes_above_it(batch, gimp, client):
    new = check_new_layer(batch["group"])
    assert batch["group"]["layers"][1]["children"][0]["name"] == "Background"  # the group kept its layer
    source = pixels(gimp, "group.source-before", 160, 200, 4)  # the group's projection: the photo, opaque
    assert np.array_equal(source[..., :3], photo(160, 200)) and np.all(source[..., 3] == 255)
    assert np.array_equal(pixels(gimp, "group.new", 160, 200, 4), client.dream_array(source, PARAMS))
    assert new["children"] is None  # a layer, not another group


def test_a_layer_inside_a_group_gets_its_dream_inside_that_group(batch):
    result = batch["in-a-group"]
    assert result["status"] == "success", result["message"]
    (group,) = result["layers"]
    dreamed, source = group["children"]
    assert dreamed["name"].startswith("DeepDream") and source["name"] == "Background"
    assert (dreamed["width"], dreamed["height"], dreamed["offsets"]) == (200, 160, [0, 0])
    assert result["selected"] == [dreamed["id"]]


def check_unchanged(gimp, result, case):
    assert result["new"] is None and len(result["layers"]) == 1
    assert result["undo_enabled"] and not result["dirty"], "the undo history changed"
    assert gimp.read(f"{case}.source-after") == gimp.read(f"{case}.source-before")


def test_daemon_error_is_a_readable_message_and_no_change(batch, gimp):
    result = batch["daemon-error"]
    assert result["status"] == "execution-error"
    assert "nosuchlayer" in result["message"] and "UNKNOWN_LAYER" in result["message"]
    check_unchanged(gimp, result, "daemon-error")


def test_daemon_down_names_the_endpoint_and_the_command(batch, gimp):
    result = batch["daemon-down"]
    assert result["status"] == "execution-error"
    assert "No DeepDream daemon answers at tcp://127.0.0.1:" in result["message"]
    assert "deepdream-daemon --endpoint tcp://127.0.0.1:" in result["message"]
    assert result["seconds"] < 15, "the unreachable daemon was waited for too long"
    check_unchanged(gimp, result, "daemon-down")


def test_a_start_command_that_fails_is_told_in_a_sentence(batch, gimp):
    """client.json names a daemon that is not there (its folder moved): the message gives the address
    tried, the command and what failed, in words (no Python list, no errno), and what to do."""
    result = batch["start-fails"]
    assert result["status"] == "execution-error"
    message = result["message"]
    assert message.startswith("No DeepDream daemon answers at tcp://127.0.0.1:"), message
    assert ("and starting one with /nonexistent/DeepDream/.venv/bin/deepdream-daemon failed: No such file or "
            "directory. Run install.sh in your DeepDream folder again") in message, message
    assert "[" not in message and "Errno" not in message, message
    check_unchanged(gimp, result, "start-fails")


def test_the_zoom_dialog_opens_on_the_dream_values_last_used(batch):
    """DeepDream's dialog saves its dream values on OK and the zoom's opens on them (and the other way round):
    run in GIMP with the plug-in's own dialog module; values of the wrong type or range are left out."""
    assert batch["shared-values"] == {"steps": 7, "layers": "mixed3:1", "junk_steps": 20, "junk_seed": 3}


def test_with_last_values_runs_without_a_dialog(batch):
    """Filters > Repeat: no dialog, and (someone watches the canvas) with live previews, which
    the gray layer gets as RGB and GIMP shows in gray; they leave no trace in the undo history."""
    result = batch["last-values"]
    # No last values yet in this fresh GIMP config: the defaults, and the endpoint from the environment.
    check_new_layer(result)
    assert "mixed2:1,mixed5:1, 4x20 steps" in result["new"]["name"]
    assert result["undo_enabled"]


def test_dream_size_dreams_a_large_layer_smaller_and_scales_the_dream_up(batch, gimp, client):
    new = check_new_layer(batch["dream-size"])
    assert (new["width"], new["height"]) == (400, 320)
    source = pixels(gimp, "dream-size.source-before", 320, 400, 3)
    expected = client.dream_array(source, {**PARAMS, "dream_size": 0.1})
    assert np.array_equal(pixels(gimp, "dream-size.new", 320, 400, 3), expected)
    assert not np.array_equal(expected, client.dream_array(source, PARAMS)), "dream size changed nothing"


def test_guide_smoothing_and_channels_dream_as_the_client_does(batch, gimp, client):
    """The Guide chooser (a layer of another image), Smoothing: Laplacian and a channel target in the layers
    field reach the daemon as the client library sends them: the same dream, pixel for pixel."""
    new = check_new_layer(batch["creative"])
    assert "laplacian" in new["name"]
    source = pixels(gimp, "creative.source-before", 160, 200, 3)
    creative = {**PARAMS, "normalize": "laplacian", "layers": {"mixed3[5,17]": 1.0, "mixed4": 0.5}}
    expected = client.dream_array(source, creative, guide=guide_photo())
    assert np.array_equal(pixels(gimp, "creative.new", 160, 200, 3), expected)
    assert not np.array_equal(expected, client.dream_array(source, creative)), "the guide changed nothing"


def test_unknown_network_is_the_daemons_message(batch, gimp):
    result = batch["unknown-model"]
    assert result["status"] == "execution-error"
    assert "INVALID_PARAMS" in result["message"] and "alexnet" in result["message"], result["message"]
    check_unchanged(gimp, result, "unknown-model")


ZOOM = f"""
image = load('photo.png')
zoom('zoom', image, image.get_layers()[0], "R'G'B' u8", endpoint=os.environ['DD_ENDPOINT'], frames=3, scale=1.1,
     rotate=2.0, frame_delay_ms=80, {PROPS})
image = load('photo.png')
zoom('zoom-stopped', image, image.get_layers()[0], "R'G'B' u8", endpoint=os.environ['DD_RELAY'], frames=5,
     octaves=2, steps=30, seed=7)
"""
ZOOM_OPTIONS = {"frames": 3, "scale": 1.1, "rotate": 2.0, "frame_delay_ms": 80}


@pytest.fixture(scope="module")
def zoom_batch(gimp, dreamd):
    """Two zooms in one GIMP session: one to its end, and one whose daemon is stopped (SIGTERM) as soon
    as its first frame has gone to the plug-in (a relay between them sees it pass)."""
    Image.fromarray(photo(160, 200)).save(gimp.host("photo.png"))
    with start_daemon() as doomed, Relay(doomed.endpoint, lambda: doomed.process.send_signal(signal.SIGTERM)) as relay:
        results, output = gimp.run_batch(ZOOM, DD_ENDPOINT=dreamd.endpoint, DD_RELAY=relay.endpoint)
    assert len(results) == 2, f"the batch script stopped early:\n{output[-3000:]}"
    return results


def test_zoom_makes_a_new_image_a_layer_per_frame(zoom_batch, gimp, client):
    """Filters > DeepDream: Zoom... in a script: a new image of the layer's size whose layers, bottom to top,
    are the start frame and the 3 dreamed ones, named for GIMP's animation playback and GIF export; the
    frames are the client's own zoom of the same layer."""
    result = zoom_batch["zoom"]
    assert result["status"] == "success", result["message"]
    [image] = result["images"]
    assert result["returned"] == image["id"]
    assert (image["width"], image["height"]) == (200, 160)
    names = [layer["name"] for layer in reversed(image["layers"])]
    assert names == [f"Frame {i} (80ms)" for i in range(4)]
    assert all((layer["width"], layer["height"], layer["offsets"]) == (200, 160, [0, 0]) for layer in image["layers"])
    assert not image["dirty"] and image["undo_enabled"]
    source = pixels(gimp, "zoom.source-before", 160, 200, 3)
    assert gimp.read("zoom.Frame 0 (80ms)") == source.tobytes()
    expected = []
    client.zoom_array(source, on_frame=lambda frame: expected.append(frame.array()), zoom=ZOOM_OPTIONS, params=PARAMS)
    for index, frame in enumerate(expected, 1):
        assert np.array_equal(pixels(gimp, f"zoom.Frame {index} (80ms)", 160, 200, 3), frame), f"frame {index}"


def test_a_zoom_whose_daemon_stops_keeps_the_frames_done(zoom_batch, gimp):
    result = zoom_batch["zoom-stopped"]
    assert result["status"] == "execution-error"
    assert "SHUTTING_DOWN" in result["message"], result["message"]
    assert "The new image keeps the frames done: 0 (the start) to 1." in result["message"]
    [image] = result["images"]
    assert [layer["name"] for layer in reversed(image["layers"])] == ["Frame 0 (100ms)", "Frame 1 (100ms)"]
    frame = pixels(gimp, "zoom-stopped.Frame 1 (100ms)", 160, 200, 3)
    assert np.abs(frame.astype(int) - pixels(gimp, "zoom-stopped.source-before", 160, 200, 3)).mean() > 1


class Relay:
    """A ZeroMQ relay from a free loopback port to a daemon (a DEALER to the daemon for each client
    connection, as if the client had connected itself) that calls `on_first_frame()` once, when the
    first zoom frame passes on to the client."""

    def __init__(self, daemon_endpoint, on_first_frame):
        self.endpoint = f"tcp://127.0.0.1:{free_port()}"
        self.daemon_endpoint, self.on_first_frame = daemon_endpoint, on_first_frame
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self.context = zmq.Context()
        self.front = self.context.socket(zmq.ROUTER)
        self.front.bind(self.endpoint)
        self.thread.start()
        return self

    def __exit__(self, *exc_info):
        self.done.set()
        self.thread.join(10)
        self.context.destroy(linger=0)

    def _run(self):
        backs, poller, first_frame = {}, zmq.Poller(), True
        poller.register(self.front, zmq.POLLIN)
        while not self.done.is_set():
            for sock, _ in poller.poll(100):
                if sock is self.front:
                    identity, *body = self.front.recv_multipart()
                    if identity not in backs:
                        backs[identity] = self.context.socket(zmq.DEALER)
                        backs[identity].connect(self.daemon_endpoint)
                        poller.register(backs[identity], zmq.POLLIN)
                    backs[identity].send_multipart(body)
                    continue
                body = sock.recv_multipart()
                self.front.send_multipart([next(key for key, back in backs.items() if back is sock), *body])
                header = next((frame for frame in body if frame), b"")
                if first_frame and msgpack.unpackb(header).get("type") == "frame":
                    first_frame = False
                    self.on_first_frame()


NO_ZMQ = """
import importlib.util
found = {name: importlib.util.find_spec(name) is not None for name in ('zmq', 'msgpack')}
print('DD-MODULES', found, flush=True)
image = load('photo.png')
dream('no-zmq', image, image.get_layers()[0], "R'G'B' u8", endpoint=os.environ['DD_ENDPOINT'], {PROPS})
"""


def test_without_zmq_the_plugin_dreams_over_its_own_zmtp(gimp, dreamd, client):
    """GIMP's Python without pyzmq (every official build; here the 3.2 root has neither pyzmq nor msgpack, and on
    3.0 a zmq.py that fails to import hides the root's pyzmq): the plug-in speaks ZMTP itself, with the msgpack
    files copied beside it, and its dream is the client's, pixel for pixel."""
    hide = gimp.host("no-zmq")
    hide.mkdir(exist_ok=True)
    (hide / "zmq.py").write_text("raise ImportError('No module named zmq (hidden by the test)')\n")
    Image.fromarray(photo(80, 96)).save(gimp.host("photo.png"))
    hidden = {} if gimp.version == "3.2" else {"PYTHONPATH": gimp.path("no-zmq")}  # 3.2's root has no pyzmq
    results, output = gimp.run_batch(NO_ZMQ.replace("{PROPS}", PROPS), DD_ENDPOINT=dreamd.endpoint, **hidden)
    if gimp.version == "3.2":  # the root stands for the official builds: GIMP's own Python has neither module
        assert "DD-MODULES {'zmq': False, 'msgpack': False}" in output, output[-2000:]
    new = check_new_layer(results["no-zmq"])
    source = pixels(gimp, "no-zmq.source-before", 80, 96, 3)
    assert np.array_equal(pixels(gimp, "no-zmq.new", 80, 96, 3), client.dream_array(source, PARAMS))
    assert new["name"].startswith("DeepDream")


BAD_SETTINGS = """
for case, endpoint in (('no-scheme', '127.0.0.1:5555'), ('bad-scheme', 'foo://bar'),
                       ('bad-key', os.environ['DD_ENDPOINT'])):
    image = load('photo.png')
    dream(case, image, image.get_layers()[0], "R'G'B' u8", endpoint=endpoint, octaves=1, steps=2)
"""


def test_bad_endpoint_or_key_is_a_message_and_the_image_is_untouched(gimp):
    """Each used to hang the plug-in (and GIMP's progress bar) forever. The key
    comes from the environment, as for every case: the bad endpoints are
    refused before the key is looked at."""
    Image.fromarray(photo(80, 96)).save(gimp.host("photo.png"))
    gimp.write_client_config(None)
    results, output = gimp.run_batch(BAD_SETTINGS, DD_ENDPOINT=f"tcp://127.0.0.1:{free_port()}",
                                     DEEPDREAM_SERVER_KEY="~" * 40)
    assert len(results) == 3, f"the batch script stopped early:\n{output[-3000:]}"
    expected = {"no-scheme": "endpoint '127.0.0.1:5555' has no scheme: write tcp://127.0.0.1:5555",
                "bad-scheme": "the daemon listens on tcp://HOST:PORT or ipc:///path/to/socket, not foo://",
                "bad-key": "the daemon's CURVE key '" + "~" * 40 + "' (from $DEEPDREAM_SERVER_KEY): not a valid key"}
    if gimp.version == "3.2":  # no pyzmq, so no CURVE at all: any key gets the relay's command
        expected["bad-key"] = ("the daemon's CURVE key is set (from $DEEPDREAM_SERVER_KEY), but this Python has no "
                               "ZeroMQ library (pyzmq), so it cannot encrypt with CURVE. Run the relay from your "
                               "DeepDream installation on this computer: deepdream relay --to tcp://HOST:5555")
    for case, message in expected.items():
        result = results[case]
        assert result["status"] == "execution-error", result
        assert result["message"].startswith("DeepDream cannot use this setting: ") and message in result["message"]
        assert "\n" not in result["message"]
        check_unchanged(gimp, result, case)


AUTO_START = """
image = load('photo.png')
dream('auto-start', image, image.get_layers()[0], "R'G'B' u8", octaves=1, steps=2)
"""

START_SHIM = """#!/bin/sh
# Stands in for the venv's deepdream-daemon, which cannot run inside the root:
# asks the host (the test) to start the real daemon where the plug-in said, then
# lives like a daemon would until the test says stop.
echo "$DEEPDREAM_ENDPOINT" > {work}/start-request
n=0
while [ ! -e {work}/stop ] && [ $n -lt 1500 ]; do sleep 0.2; n=$((n + 1)); done
"""


def test_auto_start_runs_the_recorded_command_and_waits_until_ready(gimp):
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    shim = gimp.host("start-daemon.sh")
    shim.write_text(START_SHIM.format(work=gimp.inside))
    shim.chmod(0o755)
    gimp.write_client_config({"endpoint": endpoint, "start_command": [gimp.path("start-daemon.sh")]})
    Image.fromarray(photo(160, 200)).save(gimp.host("photo.png"))
    started = {}

    def host_side():  # the daemon the shim asked for, on the host
        request = poll(lambda: gimp.host("start-request").exists(), 60)
        if request:
            started["endpoint"] = gimp.host("start-request").read_text().strip()
            started["daemon"] = start_daemon(endpoint=started["endpoint"])

    thread = threading.Thread(target=host_side)
    thread.start()
    try:
        results, output = gimp.run_batch(AUTO_START)
    finally:
        thread.join(120)
        gimp.host("stop").touch()
        gimp.write_client_config(None)
        if "daemon" in started:
            started["daemon"].stop()
    assert started.get("endpoint") == endpoint, f"the start command did not run:\n{output[-2000:]}"
    result = results["auto-start"]
    check_new_layer(result)
    assert result["seconds"] > 2  # it waited for the daemon to load its model


KILLED = """
image = load('photo.png')
dream('killed', image, image.get_layers()[0], "R'G'B' u8", endpoint=os.environ['DD_ENDPOINT'], octaves=2, steps=1000)
"""


def test_killed_plugin_stops_the_daemons_job(gimp, dreamd, client):
    """Cancelling GIMP's progress bar kills the plug-in: the daemon must drop the job by itself."""
    Image.fromarray(photo(160, 200)).save(gimp.host("photo.png"))
    process = gimp.batch(KILLED, DD_ENDPOINT=dreamd.endpoint)
    try:
        assert poll(lambda: client.ping().get("busy"), 60, 0.1), "the dream never started"
        plugin = gimp.plugin_processes()
        assert len(plugin) == 1
        killed_at = time.monotonic()
        os.kill(plugin[0], signal.SIGKILL)
        assert poll(lambda: not client.ping().get("busy"), 20, 0.1), "the daemon still dreams for a dead client"
        print(f"daemon idle {time.monotonic() - killed_at:.1f} s after the plug-in was killed")
        assert wait_for(process, 60), "GIMP did not carry on after its plug-in died"
    finally:
        stop(process)
    result = gimp.results()["killed"]
    assert result["status"] != "success" and result["new"] is None and len(result["layers"]) == 1
    # and it still serves others
    assert client.dream_array(photo(80, 80), {"octaves": 1, "steps": 1}).shape == (80, 80, 3)


def test_interface_menu_dialog_progress_and_one_undo_step(gimp, dreamd, client):
    """Filters > DeepDream... opens the dialog; OK dreams into a new layer with progress;
    Edit > Undo DeepDream (the single undo step) gives back the image as it was."""
    Image.fromarray(photo(300, 420, seed=11)).save(gimp.host("gui.png"))
    before, after, undone, log = dream_and_undo(gimp, gimp.path("gui.png"), dreamd.endpoint,
                                                lambda: client.ping().get("busy"))
    changed = np.any(before[CANVAS] != after[CANVAS], axis=2)
    assert changed.sum() > 0.5 * 300 * 420, "the canvas did not show the dream"
    assert np.array_equal(before[CANVAS], undone[CANVAS]), "after one undo the canvas differs from before"
    assert not plugin_complaints(log), "\n".join(plugin_complaints(log))
    # The dialog opened on the preset its values are, Classic DeepDream: one Up in the list chose Subtle
    # textures (from Custom, Up stays on Custom), and GIMP kept it as the last values.
    assert '(preset "subtle")' in last_values(gimp)


def last_values(gimp):
    """The values GIMP keeps from the plug-in's last run (Filters > Repeat uses them); GIMP 3.0 names
    the file GimpProcedureConfigRun-python-fu-deepdream.last."""
    files = list((gimp.config / "GIMP" / gimp.version / "plug-in-settings").glob("*python-fu-deepdream.last"))
    assert len(files) == 1, files
    return files[0].read_text()


def test_interface_shows_the_dream_growing_and_a_failure_leaves_the_image_as_it_was(gimp):
    """While the daemon dreams, the dream so far is on the canvas in a layer of its own; when the dream
    fails (here the daemon stops mid-dream), that layer goes and the image is as before, unchanged in
    GIMP's eyes (no '*' in the title: nothing went on the undo stack)."""
    Image.fromarray(photo(300, 420, seed=11)).save(gimp.host("gui.png"))
    with start_daemon() as daemon, DreamClient(daemon.endpoint, timeout=30) as client:
        before, previewed, titles, log = preview_then_failure(gimp, gimp.path("gui.png"), daemon.endpoint,
                                                              lambda: client.ping().get("busy"), daemon.stop)
    title_before, title_preview, title_after = titles
    shown = np.any(before[CANVAS] != previewed[CANVAS], axis=2)
    assert shown.sum() > 0.5 * 300 * 420, "the canvas did not show the preview"
    assert not title_before.startswith("*") and title_after == title_before, titles
    assert "2 layers" in title_preview
    assert not plugin_complaints(log), "\n".join(plugin_complaints(log))


def test_interface_preview_masked_cancel_one_undo_away_and_undo_redo_leave_the_image_clean(gimp, tmp_path):
    """With a 200x160 selection the preview shows what the result will be: only the selection changes,
    not the 328x288 neighbourhood dreamed around it, and it grows within an octave, not only at its end.
    Cancel in the status bar (GIMP kills the plug-in and ends its undo group) leaves the preview one
    Ctrl+Z away, and that Ctrl+Z gives back the image as it was, unchanged in GIMP's eyes. A dream, Undo,
    Redo, Filters > Repeat and two Undos end clean too."""
    Image.fromarray(photo(300, 420, seed=11)).save(gimp.host("gui.png"))
    with start_daemon() as daemon, DreamClient(daemon.endpoint, timeout=30) as client:
        (before, previewed, later), titles, log = selection_cancel_and_round_trip(
            gimp, gimp.path("gui.png"), daemon.endpoint, lambda: client.ping().get("busy"), (110, 70, 200, 160))
    title_before, title_cancelled, title_undone, title_after = titles
    for name, screen in (("before", before), ("preview", previewed), ("later", later)):
        Image.fromarray(screen).save(tmp_path / f"{name}.png")  # to look at when an assertion fails
    # The later preview is the one judged: under load GIMP may draw a new layer before its mask.
    inside, ring = preview_change(before, later, (160, 200), around=64)
    assert inside > 0.5, f"the preview changed {inside:.0%} of the selection (screens in {tmp_path})"
    assert ring < 0.01, (f"the preview changed {ring:.1%} of the 64 px around the selection, dreamed but not "
                         f"selected (screens in {tmp_path})")
    refreshed, _ = preview_change(previewed, later, (160, 200), around=64)
    assert refreshed > 0.05, f"a preview interval later, within the octave, {refreshed:.0%} of the selection changed"
    assert not title_before.startswith("*")
    assert title_cancelled is not None and "2 layers" in title_cancelled, titles  # the preview, in the history
    assert title_undone == title_before, titles
    assert title_after == title_before, titles
    assert not plugin_complaints(log), "\n".join(plugin_complaints(log))


def preview_change(before, after, size, around, slack=3):
    """Where the screen changed: the share of changed pixels in the `size` (height, width) window that holds
    the most of them (the selection, wherever GIMP put the image on the canvas), and the share in the ring
    `around` pixels wide about it (the dreamed neighbourhood), `slack` pixels of the selection's outline
    left out of both."""
    changed = np.any(before != after, axis=2).astype(np.int64)
    sums = np.pad(changed.cumsum(0).cumsum(1), ((1, 0), (1, 0)))

    def count(top, left, height, width):
        top, left = max(top, 0), max(left, 0)
        bottom, right = min(top + height, changed.shape[0]), min(left + width, changed.shape[1])
        return sums[bottom, right] - sums[top, right] - sums[bottom, left] + sums[top, left]

    height, width = size
    windows = (sums[height:, width:] - sums[:-height, width:] - sums[height:, :-width] + sums[:-height, :-width])
    top, left = np.unravel_index(np.argmax(windows), windows.shape)
    inner = count(top + slack, left + slack, height - 2 * slack, width - 2 * slack)
    outer = (count(top - around, left - around, height + 2 * around, width + 2 * around)
             - count(top - slack, left - slack, height + 2 * slack, width + 2 * slack))
    ring_area = (height + 2 * around) * (width + 2 * around) - (height + 2 * slack) * (width + 2 * slack)
    return inner / ((height - 2 * slack) * (width - 2 * slack)), outer / ring_area
