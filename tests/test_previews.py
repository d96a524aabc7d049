"""Previews of a dream in progress and the dream size (issue 12), end to end: on
the wire as docs/protocol.md describes them (spoken by hand), through the client
library, and from the command line; the due-time and scaling rules on their own."""

import numpy as np
import pytest
from PIL import Image

from deepdream_client import previews
from deepdream_client.client import DaemonError, DreamClient
from deepdream_client.image_files import read_metadata
from images import photo
from raw_wire import TINY, connect, dream_request, receive, send, stream
from test_cli import clean_env, run_cli

TWO_OCTAVES = {**TINY, "octaves": 2, "steps": 2}


def dream_on_the_wire(endpoint, image, params, **fields):
    """(final header, payload, [(progress header, its second frame or None)]) of a raw
    dream on a DEALER socket that asked for progress, with extra request `fields`."""
    header, payload = dream_request(image, params, progress=True)
    header.update(fields)
    return stream(endpoint, header, payload)


def test_previews_arrive_when_asked_scaled_to_fit_and_show_the_dream(daemon):
    image = photo(150, 200)
    reply, data, events = dream_on_the_wire(daemon.endpoint, image, TWO_OCTAVES,
                                            preview={"max_side": 64, "interval": 0.5})
    assert reply["type"] == "result", reply
    shown = [(event, frame) for event, frame in events if "preview" in event]
    for event, frame in events:
        assert ("preview" in event) == (frame is not None), "a preview header comes with its frame, and only then"
    for event, frame in shown:
        assert event["preview"] == {"width": 64, "height": 48, "channels": 3, "dtype": "uint8", "format": "raw"}
        assert len(frame) == 64 * 48 * 3
    octave_ends = {event["octave"] for event, _ in shown if event["step"] == event["steps"]}
    assert octave_ends == {1, 2}, "every octave's end shows a preview"

    dreamed = np.frombuffer(data, np.uint8).reshape(image.shape)
    last = np.frombuffer(shown[-1][1], np.uint8).reshape(48, 64, 3).astype(float)
    expected = np.asarray(Image.fromarray(dreamed).resize((64, 48), Image.Resampling.BILINEAR), float)
    assert np.abs(last - expected).mean() < 3, "the last preview is the dream, scaled down"


def test_no_previews_without_asking(daemon):
    reply, _, events = dream_on_the_wire(daemon.endpoint, photo(100, 120), TWO_OCTAVES)
    assert reply["type"] == "result" and events
    assert all("preview" not in event and frame is None for event, frame in events)


def test_a_small_image_is_previewed_at_its_own_size_never_scaled_up(daemon):
    _, _, events = dream_on_the_wire(daemon.endpoint, photo(90, 80), {**TINY, "steps": 1}, preview={})
    sizes = {(event["preview"]["width"], event["preview"]["height"]) for event, _ in events if "preview" in event}
    assert sizes == {(80, 90)}


@pytest.mark.parametrize("preview, named", [
    ({"interval": 0.1}, "preview.interval"), ({"interval": 61}, "preview.interval"),
    ({"interval": "2"}, "preview.interval"), ({"interval": True}, "preview.interval"),
    ({"interval": float("nan")}, "preview.interval"), ({"max_side": 16}, "preview.max_side"),
    ({"max_side": 4096}, "preview.max_side"), ({"max_side": 100.0}, "preview.max_side"),
    ({"size": 64}, '"size"'), ([64], "`preview` must be a map"), (None, "`preview` must be a map"),
])
def test_bad_preview_fields_are_refused_naming_the_key(daemon, preview, named):
    reply, _, events = dream_on_the_wire(daemon.endpoint, photo(80, 80), TINY, preview=preview)
    assert reply["type"] == "error" and reply["code"] == "BAD_REQUEST", reply
    assert named in reply["message"] and not events


def test_previews_without_progress_are_refused(daemon):
    header, payload = dream_request(photo(80, 80), TINY, progress=False)
    sock = connect(daemon.endpoint)
    send(sock, {**header, "preview": {}}, payload)
    reply, _ = receive(sock)
    sock.close()
    assert reply["code"] == "BAD_REQUEST" and "`progress` true" in reply["message"], reply


def test_dream_size_on_the_wire_dreams_smaller_and_answers_full_size(daemon):
    # 400x300 is 0.12 MP: at a dream size of 0.1 the network works at 365x273, as the previews show.
    image = photo(300, 400)
    reply, data, events = dream_on_the_wire(daemon.endpoint, image, {**TINY, "dream_size": 0.1},
                                            preview={"max_side": 2048})
    assert reply["type"] == "result", reply
    assert (reply["image"]["width"], reply["image"]["height"]) == (400, 300) and len(data) == image.size
    assert reply["stats"]["dream_size"] == 0.1
    assert {(e["preview"]["width"], e["preview"]["height"]) for e, _ in events if "preview" in e} == {(365, 273)}
    refused, _, _ = dream_on_the_wire(daemon.endpoint, image, {**TINY, "dream_size": 0.01})
    assert refused["code"] == "INVALID_PARAMS" and refused["message"].startswith("bad params: dream_size: must be 0")


def test_the_client_hands_previews_to_the_progress_callback(daemon):
    image = photo(120, 90)
    with DreamClient(daemon.endpoint, timeout=10) as client:
        events = []
        client.dream_array(image, TWO_OCTAVES, progress=events.append, preview={"max_side": 60})
        shown = [event["preview"] for event in events if "preview" in event]
        assert shown and all(p["width"] == 45 and p["height"] == 60 and len(p["pixels"]) == 45 * 60 * 3
                             for p in shown)
        events.clear()
        client.dream_array(image, TWO_OCTAVES, progress=events.append)
        assert events and not any("preview" in event for event in events)
        with pytest.raises(DaemonError) as refused:
            client.dream_array(image, TINY, preview={"interval": 0})
        assert refused.value.code == "BAD_REQUEST" and "preview.interval" in refused.value.message


def test_the_cli_writes_previews_to_a_file_and_dreams_at_a_dream_size(daemon, tmp_path):
    source, target, watched = tmp_path / "in.png", tmp_path / "out.png", tmp_path / "watch.png"
    Image.fromarray(photo(300, 400)).save(source)
    done = run_cli("dream", source, target, *map(str, ["--octaves", 2, "--steps", 2, "--jitter", 0]),
                   "--dream-size", "0.1", "--preview", watched, "--preview-interval", "0.5",
                   env=clean_env(DEEPDREAM_ENDPOINT=daemon.endpoint))
    assert done.returncode == 0, done.stderr
    assert Image.open(target).size == (400, 300) and read_metadata(target)["params"]["dream_size"] == 0.1
    with Image.open(watched) as preview:
        assert preview.format == "PNG" and preview.size == (365, 273), "the last octave at the dream size, whole"
    assert [path.name for path in tmp_path.iterdir() if path.name.startswith(".")] == [], "no temporary file left"


@pytest.mark.parametrize("args, message", [
    (["--preview-interval", "2"], "--preview-interval needs --preview FILE"),
    (["--preview", "{tmp}/watch.png", "--preview-interval", "0.1"], "--preview-interval must be a number from 0.5"),
    (["--preview", "{tmp}/watch.bmp"], "unsupported output format"),
    (["--preview", "{tmp}/nowhere/watch.png"], "there is no folder"),
    (["--dream-size", "0.05", "--in-process"], "dream_size: must be 0 (full size) or between 0.1 and 100"),
])
def test_bad_preview_and_dream_size_options_are_one_clear_line(tmp_path, args, message):
    Image.fromarray(photo(80, 80)).save(tmp_path / "in.png")
    done = run_cli("dream", tmp_path / "in.png", tmp_path / "out.png", "--weights", "random",
                   *(arg.format(tmp=tmp_path) for arg in args), "--endpoint", f"ipc://{tmp_path}/nobody.sock")
    assert done.returncode == 1 and message in done.stderr and "Traceback" not in done.stderr, done.stderr


def test_previews_in_process_come_as_from_a_daemon(engine):
    from dream_engine import DreamParams

    events = []
    request = previews.checked({"max_side": 50})
    # 130 x 104: both octaves (100 x 80, then 130 x 104) are at least 75 px a side, and each ends with a preview
    engine.dream(photo(130, 104), DreamParams(**TWO_OCTAVES), progress=previews.in_process(events.append, request))
    shown = [event["preview"] for event in events if "preview" in event]
    assert len(shown) >= 2 and all((p["width"], p["height"]) == (40, 50) and len(p["pixels"]) == 40 * 50 * 3
                                   for p in shown)


def test_previews_are_due_at_each_octaves_end_and_then_every_interval():
    now = [100.0]
    schedule = previews.Previews(previews.checked({"interval": 2}), clock=lambda: now[0])

    def step(seconds, step, steps=5):
        now[0] += seconds
        return schedule.due({"step": step, "steps": steps})

    assert [step(0.5, 1), step(1.0, 2), step(0.6, 3), step(1.9, 4), step(0.1, 5)] == [False, False, True, False, True]
    assert step(0.1, 1) is False and step(2.0, 2) is True


def test_a_preview_frame_keeps_the_aspect_and_is_never_scaled_up():
    tall = np.random.default_rng(0).random((300, 100, 3), dtype=np.float32)
    description, pixels = previews.frame(tall.copy(), 150)
    assert (description["width"], description["height"]) == (50, 150) and len(pixels) == 50 * 150 * 3
    description, pixels = previews.frame(tall.copy(), 2048)
    assert (description["width"], description["height"]) == (100, 300)
    assert np.array_equal(np.frombuffer(pixels, np.uint8).reshape(300, 100, 3), np.rint(tall * 255).astype(np.uint8))
