"""The deepdream command line: in-process dreams, image files, errors, and
the same commands through a real daemon, Ctrl-C included."""

import io
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import zmq
from PIL import Image

from deepdream_cli import cli
from deepdream_client.image_files import FORMATS, read_image, read_metadata, write_image
from bench.fuzz import png_claiming
from images import photo

TINY = ["--octaves", "1", "--steps", "2", "--tile-size", "128", "--jitter", "0"]


def run_cli(*args, env=None):
    """The CLI as a user runs it: its own process, its own stderr."""
    return subprocess.run([sys.executable, "-m", "deepdream_cli.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=300, env=env or clean_env())


def clean_env(**extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEEPDREAM_")}
    env["XDG_CONFIG_HOME"] = "/nonexistent"  # no user's client.json
    return {**env, **extra}


@pytest.fixture
def no_daemon(tmp_path):
    return f"ipc://{tmp_path}/nobody-listens.sock"


@pytest.fixture
def shared_engine(engine, monkeypatch):
    """In-process CLI runs reuse the session's engine: the CLI's own choice of
    weights is covered by the subprocess test, and loading costs seconds."""
    import dream_engine

    monkeypatch.setattr(dream_engine, "DreamEngine", lambda **options: engine)
    return engine


def test_in_process_dream_writes_png_with_metadata(tmp_path, no_daemon):
    source, target = tmp_path / "in.png", tmp_path / "out.png"
    Image.fromarray(photo(90, 120)).save(source)
    done = run_cli("dream", source, target, "--weights", "random", "--precision", "float32", *TINY,
                   "--seed", "7", "--layers", "mixed3:1,mixed4:0.5", "--endpoint", no_daemon)
    assert done.returncode == 0, done.stderr
    assert f"no daemon at {no_daemon}; dreaming in-process (loads the model, slower)" in done.stderr
    assert "Traceback" not in done.stderr
    with Image.open(target) as written:
        assert written.size == (120, 90) and written.mode == "RGB"
    metadata = read_metadata(target)
    assert metadata["weights"] == "random" and metadata["seed"] == 7
    assert metadata["params"]["steps"] == 2 and metadata["params"]["layers"] == {"mixed3": 1.0, "mixed4": 0.5}
    assert metadata["dreamed_by"] == "in-process"
    assert metadata["backend"] == "tensorflow" and metadata["device"] == "CPU" and metadata["precision"] == "float32"
    assert f"wrote {target} (120x90) in " in done.stderr
    assert done.stderr.strip().endswith("s: tensorflow on CPU at float32, in-process")  # what computed the dream
    assert not np.array_equal(read_image(target), read_image(source))


@pytest.mark.parametrize("make_input, output, expect", [
    (lambda: Image.fromarray(np.dstack([photo(80, 96), np.full((80, 96), 77, np.uint8)])), "out.tif", "RGBA"),
    (lambda: Image.fromarray((photo(80, 96)[..., 0].astype(np.uint16) * 257)), "out.png", "I;16"),
    (lambda: Image.fromarray(photo(80, 96)), "out.webp", "RGB"),
])
def test_in_process_keeps_alpha_and_depth(tmp_path, shared_engine, make_input, output, expect):
    source = tmp_path / "in.png"
    make_input().save(source)
    assert cli.main(["dream", str(source), str(tmp_path / output), "--in-process", "-q", *TINY]) == 0
    with Image.open(tmp_path / output) as written:
        assert written.mode == expect and written.size == (96, 80)
    if expect == "RGBA":  # alpha passes through untouched
        assert (read_image(tmp_path / output)[..., 3] == 77).all()
    if expect == "I;16":  # 16-bit in, 16-bit out: not squeezed through 8 bits
        assert read_image(tmp_path / output).dtype == np.uint16


@pytest.mark.parametrize("extension", sorted(FORMATS))
@pytest.mark.parametrize("dtype, channels", [
    (np.uint8, 1), (np.uint8, 2), (np.uint8, 3), (np.uint8, 4), (np.uint16, 1), (np.float32, 1)])
def test_image_file_round_trip(tmp_path, extension, dtype, channels):
    scale = {np.uint8: 255, np.uint16: 65535, np.float32: 1.0}[dtype]
    y, x = np.mgrid[0:40, 0:50]
    smooth = ((x + y) / 90.0)[..., None].repeat(channels, axis=2)  # lossy codecs keep smooth images close
    array = (smooth * scale).astype(dtype)
    path = tmp_path / f"image{extension}"
    notes = write_image(path, array, {"hello": "world"})
    back = read_image(path)
    assert back.shape[:2] == (40, 50)
    lossless = FORMATS[extension] in ("PNG", "TIFF")
    keeps_depth = lossless and not (dtype == np.float32 and FORMATS[extension] == "PNG")
    if keeps_depth:
        np.testing.assert_array_equal(back, array)
    else:
        eight_bit = (np.asarray(back, np.float64) / (65535 if back.dtype == np.uint16 else 255))[..., 0]
        assert np.abs(eight_bit - smooth[..., 0]).mean() < 0.02  # lossy codecs: close on average
    if FORMATS[extension] != "WEBP":
        assert read_metadata(path) == {"hello": "world"}
    if channels in (2, 4) and FORMATS[extension] == "JPEG":
        assert any("alpha" in note for note in notes)


def png_zlib_level(path):
    """The compression level a PNG's image data says it was written at (its zlib header's FLEVEL:
    0 the fastest, 2 the default)."""
    data = path.read_bytes()
    start = data.index(b"IDAT") + 4
    return data[start + 1] >> 6


@pytest.mark.parametrize("height, width, level", [(2000, 2000, 0), (1000, 1000, 2)])
def test_a_large_png_is_written_at_the_fastest_level_and_keeps_its_metadata(tmp_path, height, width, level):
    array = photo(height, width)
    path = tmp_path / "dream.png"
    write_image(path, array, {"hello": "world"})
    np.testing.assert_array_equal(read_image(path), array)
    assert read_metadata(path) == {"hello": "world"}
    assert png_zlib_level(path) == level


@pytest.mark.parametrize("args, message", [
    (["dream", "{tmp}/missing.png", "{tmp}/out.png"], "missing.png: no such file"),
    (["dream", "{tmp}/notes.txt", "{tmp}/out.png"], "not an image file"),
    (["dream", "{tmp}/art.eps", "{tmp}/out.png"], "art.eps: not an image file in PNG, JPEG, WebP or TIFF format"),
    (["dream", "{tmp}/bomb.png", "{tmp}/out.png"],
     "bomb.png: the image has 900,000,000 pixels, says its header; the limit is 40,000,000 pixels"),
    (["dream", "{tmp}/in.png", "{tmp}/out.bmp"], "unsupported output format"),
    # the output is checked before anything is dreamed (these would dream, then fail to write)
    (["dream", "{tmp}/in.png", "{tmp}/no-such-folder/out.png", "--in-process", *TINY, "--weights", "random"],
     "no-such-folder/out.png: cannot write it, there is no folder"),
    (["dream", "{tmp}/in.png", "{tmp}/folder.png", "--in-process", *TINY, "--weights", "random"],
     "folder.png: is a folder; name the file to write"),
    (["dream", "{tmp}/in.png", "{tmp}/out.png", "--in-process", "--octaves", "0"],
     "octaves: must be between 1 and 12, got 0"),
    # a value out of range is told before any daemon is looked for or model loaded: the only line
    (["dream", "{tmp}/in.png", "{tmp}/out.png", "--steps", "-1", "--endpoint", "tcp://127.0.0.1:9"],
     "steps: must be between 1 and 1000, got -1"),
    (["zoom", "{tmp}/in.png", "{tmp}/zoom", "--step-size", "9", "--endpoint", "tcp://127.0.0.1:9"], "step_size"),
    (["dream", "{tmp}/in.png", "{tmp}/out.png", "--in-process", "--tile-size", "64"], "tile_size"),
    (["dream", "{tmp}/in.png", "{tmp}/out.png", "--in-process", "--weights", "{tmp}/no-such.weights.h5"],
     "No weights file at"),
    (["dream", "{tmp}/in.png", "{tmp}/out.png", "--in-process", "--layers", "mixed2,nonsense", *TINY,
      "--weights", "random", "--precision", "float32"], "unknown layer 'nonsense'"),
])
def test_bad_input_is_one_clear_line(tmp_path, capsys, args, message):
    Image.fromarray(photo(80, 80)).save(tmp_path / "in.png")
    (tmp_path / "art.eps").write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 100 100\nshowpage\n")
    (tmp_path / "bomb.png").write_bytes(png_claiming(30_000, 30_000))  # was a 21-line DecompressionBombError
    (tmp_path / "notes.txt").write_text("not a picture")
    (tmp_path / "folder.png").mkdir()
    assert cli.main([arg.format(tmp=tmp_path) for arg in args]) == cli.EXIT_ERROR
    error = capsys.readouterr().err
    last_line = error.strip().splitlines()[-1]
    assert message in last_line and last_line.startswith("deepdream: ") and "Traceback" not in error
    assert not (tmp_path / "out.png").exists() and not (tmp_path / "zoom").exists()
    if "tcp://127.0.0.1:9" in args:
        assert error.strip() == last_line, "a parameter's error comes first, alone"


def test_errors_in_a_real_process_have_no_traceback(tmp_path, no_daemon):
    done = run_cli("dream", tmp_path / "missing.jpg", tmp_path / "out.png", "--endpoint", no_daemon)
    assert done.returncode == 1
    assert done.stderr.strip() == f"deepdream: {tmp_path / 'missing.jpg'}: no such file"
    done = run_cli("ping", "--endpoint", no_daemon, "--timeout", "0.5")
    assert done.returncode == 1 and "no daemon at" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize("args, message", [
    (["ping", "--endpoint", "127.0.0.1:5555"], "endpoint '127.0.0.1:5555' has no scheme: write tcp://127.0.0.1:5555"),
    (["info", "--endpoint", "foo://bar"], "the daemon listens on tcp://HOST:PORT or ipc:///path/to/socket, not foo://"),
    (["ping", "--endpoint", "tcp://[::1"], "endpoint 'tcp://[::1': the IPv6 address has no closing ']'; write an IPv6 "
                                           "address in brackets, then the port: tcp://[ADDRESS]:PORT, e.g. "
                                           "tcp://[::1]:5555"),  # it suggested tcp://[[:]:1
    (["dream", "{tmp}/in.png", "{tmp}/out.png", "--endpoint", "127.0.0.1:5555"], "has no scheme"),  # not in-process
    (["ping", "--server-key", "~" * 40], "the daemon's CURVE key '" + "~" * 40 + "': not a valid key"),
    (["dream", "{tmp}/in.png", "{tmp}/out.png", "--server-key", "{tmp}/missing.key"],
     "the daemon's CURVE key file {tmp}/missing.key: no such file"),
    (["ping", "--server-key", "{tmp}/server.key", "--client-key", "{tmp}/server.key"], "holds no secret key"),
])
def test_bad_endpoint_or_key_is_one_line_at_once(tmp_path, args, message):
    """Each of these used to hang forever (a connect() that raised left its socket open)."""
    Image.fromarray(photo(80, 80)).save(tmp_path / "in.png")
    (tmp_path / "server.key").write_text('curve\n    public-key = "%s"\n' % zmq.curve_keypair()[0].decode())
    done = subprocess.run([sys.executable, "-m", "deepdream_cli.cli", *(arg.format(tmp=tmp_path) for arg in args)],
                          capture_output=True, text=True, timeout=60, env=clean_env())
    assert done.returncode == cli.EXIT_ERROR
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("deepdream: "), done.stderr
    assert message.format(tmp=tmp_path) in done.stderr
    assert not (tmp_path / "out.png").exists()


def test_malformed_layers_are_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["dream", "a.png", "b.png", "--layers", "mixed2:lots"])
    assert exit_.value.code == 2 and "the weight after ':' must be a number" in capsys.readouterr().err


def test_progress_bar_on_a_terminal_and_in_a_log():
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    terminal, log = Terminal(), io.StringIO()
    for stream in (terminal, log):
        bar = cli.ProgressBar(stream=stream)
        bar({"octave": 0, "octaves": 0, "step": 0, "steps": 0, "fraction": 0.0, "queued": 2})
        for step in range(1, 21):
            bar({"octave": 1, "octaves": 1, "step": step, "steps": 20, "fraction": step / 20})
        bar.finish()
    assert "place 2" in terminal.getvalue()
    assert "\r[" + "#" * 30 + "] 100%  octave 1/1  step 20/20\n" in terminal.getvalue()
    assert log.getvalue().splitlines() == [f"{percent:3d}%  octave 1/1  step {percent // 5}/20"
                                           for percent in (5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100)]


def test_guide_normalize_and_channel_targets_in_process(tmp_path, shared_engine):
    source, guide = tmp_path / "in.png", tmp_path / "guide.jpg"
    Image.fromarray(photo(80, 96)).save(source)
    Image.fromarray(photo(90, 90, seed=9)).save(guide)
    controls = ["--layers", "mixed4:1,mixed5[87, 12]:0.5", "--normalize", "laplacian"]
    assert cli.main(["dream", str(source), str(tmp_path / "plain.png"), "--in-process", "-q", *TINY, *controls]) == 0
    assert cli.main(["dream", str(source), str(tmp_path / "guided.png"), "--in-process", "-q", *TINY, *controls,
                     "--guide", str(guide)]) == 0
    params = read_metadata(tmp_path / "guided.png")["params"]
    assert params["normalize"] == "laplacian" and params["layers"] == {"mixed4": 1.0, "mixed5[12,87]": 0.5}
    assert not np.array_equal(read_image(tmp_path / "guided.png"), read_image(tmp_path / "plain.png"))


def test_a_channel_out_of_range_is_one_line_naming_the_count(tmp_path, shared_engine, capsys):
    Image.fromarray(photo(80, 96)).save(tmp_path / "in.png")
    code = cli.main(["dream", str(tmp_path / "in.png"), str(tmp_path / "out.png"), "--in-process", "-q", *TINY,
                     "--layers", "mixed5[12,9999]"])
    assert code == 1
    assert "channel 9999 is out of range; mixed5 has 768 channels (0..767)" in capsys.readouterr().err


def test_layers_syntax():
    assert cli.parse_layers("mixed2:1,mixed5:0.5") == {"mixed2": 1.0, "mixed5": 0.5}
    assert cli.parse_layers("mixed2, mixed5") == {"mixed2": 1.0, "mixed5": 1.0}


def test_help_lists_the_commands_and_options():
    done = run_cli("dream", "--help")
    assert done.returncode == 0
    for option in ("--layers", "--octaves", "--octave-scale", "--steps", "--step-size", "--tile-size", "--jitter",
                   "--seed", "--no-detail", "--endpoint", "--in-process", "--weights", "--precision", "--backend",
                   "--guide", "--normalize", "mixed5[12,87]"):
        assert option in done.stdout
    assert all(command in run_cli("--help").stdout for command in ("dream", "ping", "info"))


# -- through a real daemon ----------------------------------------------------------------------

def test_ping_and_info_through_the_daemon(daemon):
    done = run_cli("ping", "--endpoint", daemon.endpoint)
    assert done.returncode == 0 and done.stdout.startswith(
        f"ready at {daemon.endpoint}: inception_v3 with random weights, tensorflow on CPU at float32; idle")
    done = run_cli("info", "--endpoint", daemon.endpoint)
    assert done.returncode == 0 and "mixed5" in done.stdout and "octaves = " in done.stdout
    assert done.stdout.startswith("model:   inception_v3 with random weights, tensorflow on CPU at float32\n")
    done = run_cli("info", "--json", "--endpoint", daemon.endpoint)
    assert done.returncode == 0 and json.loads(done.stdout)["limits"]["max_pixels"] > 0


def test_info_piped_into_a_reader_that_leaves_early_ends_quietly(daemon):
    """`deepdream info | head -1`: the pipe closes before the CLI writes."""
    reader_gone = subprocess.Popen([sys.executable, "-m", "deepdream_cli.cli", "info", "--endpoint", daemon.endpoint],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=clean_env())
    reader_gone.stdout.close()
    assert reader_gone.wait(timeout=60) == cli.EXIT_ERROR
    assert reader_gone.stderr.read() == b""


@pytest.mark.parametrize("where", ["daemon", "in-process"])
def test_a_file_over_the_pixel_limit_is_refused_from_its_header_before_it_is_decoded(daemon, tmp_path, capsys, where):
    """The CLI decoded files up to Pillow's guard (179 million pixels) for the daemon to refuse them; now the
    daemon's max_pixels (its info), or the in-process engine's same default, refuses them from the header.
    This file's pixels are an 80x80 PNG's: decoding it would fail as damaged, not as too large."""
    (tmp_path / "big.png").write_bytes(png_claiming(8000, 6000))
    options = ["--endpoint", daemon.endpoint] if where == "daemon" else ["--in-process"]
    assert cli.main(["dream", str(tmp_path / "big.png"), str(tmp_path / "out.png"), *options]) == cli.EXIT_ERROR
    error = capsys.readouterr().err
    assert error.strip().splitlines()[-1] == (f"deepdream: {tmp_path / 'big.png'}: the image is 8000x6000 = "
                                              f"48,000,000 pixels; the limit is 40,000,000 pixels"), error


def test_dream_through_the_daemon(daemon, tmp_path):
    source, target = tmp_path / "in.jpg", tmp_path / "out.png"
    Image.fromarray(np.dstack([photo(80, 96), np.full((80, 96), 200, np.uint8)])).save(tmp_path / "in.png")
    Image.fromarray(photo(80, 96)).save(source)
    done = run_cli("dream", tmp_path / "in.png", target, *TINY, "--seed", "3",
                   env=clean_env(DEEPDREAM_ENDPOINT=daemon.endpoint))
    assert done.returncode == 0, done.stderr
    assert "in-process" not in done.stderr and "100%" in done.stderr
    metadata = read_metadata(target)
    assert metadata["dreamed_by"] == f"daemon at {daemon.endpoint}" and metadata["weights"] == "random"
    assert metadata["backend"] == "tensorflow"
    assert done.stderr.strip().endswith(f"s: tensorflow on CPU at float32, daemon at {daemon.endpoint}")
    assert metadata["seed"] == 3 and metadata["params"]["steps"] == 2 and metadata["params"]["detail"] is True
    assert (read_image(target)[..., 3] == 200).all()
    done = run_cli("dream", tmp_path / "in.png", tmp_path / "guided.png", *TINY, "--seed", "3", "--guide", source,
                   "--endpoint", daemon.endpoint)
    assert done.returncode == 0 and "in-process" not in done.stderr, done.stderr
    assert not np.array_equal(read_image(tmp_path / "guided.png"), read_image(target)), "the guide steers the dream"
    # what only the daemon's network knows: its layers' channels
    done = run_cli("dream", source, tmp_path / "out.tif", *TINY, "--layers", "mixed3[800]", "--endpoint",
                   daemon.endpoint)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.strip().endswith("mixed3 has 768 channels (0..767) (INVALID_PARAMS)"), done.stderr


def test_ctrl_c_cancels_the_dream_on_the_daemon(daemon, tmp_path):
    Image.fromarray(photo(80, 96)).save(tmp_path / "in.png")
    dreaming = subprocess.Popen(
        [sys.executable, "-m", "deepdream_cli.cli", "dream", str(tmp_path / "in.png"), str(tmp_path / "out.png"),
         "--endpoint", daemon.endpoint, "--octaves", "1", "--steps", "1000", "--tile-size", "128"],
        stderr=subprocess.PIPE, text=True, env=clean_env(),
        # A shell starts background jobs with SIGINT ignored, and children inherit
        # that: put Ctrl-C back, or a suite run with `&` tests nothing.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    lines = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in dreaming.stderr], daemon=True).start()
    try:
        while "step" not in lines.get(timeout=60):  # the dream is running on the daemon
            pass
        dreaming.send_signal(signal.SIGINT)
        assert dreaming.wait(timeout=30) == cli.EXIT_INTERRUPTED
    finally:
        dreaming.kill()
    rest = []
    while not lines.empty():
        rest.append(lines.get())
    assert f"deepdream: interrupted; the daemon at {daemon.endpoint} stopped the dream\n" in "".join(rest)
    assert "Traceback" not in "".join(rest)
    assert not (tmp_path / "out.png").exists()
    deadline = time.monotonic() + 10
    while "CANCELLED (cancel)" not in daemon.log_text() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "CANCELLED (cancel)" in daemon.log_text()  # cancelled by request, not noticed as a vanished client


def test_cancel_by_job_id_from_another_terminal(daemon, tmp_path):
    """`deepdream dream --id ID` in one terminal, `deepdream cancel ID` in another: the dream ends with a sentence
    saying it was cancelled, and nothing is written; a second cancel finds no such job."""
    Image.fromarray(photo(80, 96)).save(tmp_path / "in.png")
    dreaming = subprocess.Popen(
        [sys.executable, "-m", "deepdream_cli.cli", "dream", str(tmp_path / "in.png"), str(tmp_path / "out.png"),
         "--endpoint", daemon.endpoint, "--octaves", "1", "--steps", "1000", "--tile-size", "128", "--id", "my-dream"],
        stderr=subprocess.PIPE, text=True, env=clean_env())
    try:
        for line in dreaming.stderr:
            if "step" in line:  # the dream is running on the daemon
                break
        done = run_cli("cancel", "my-dream", "--endpoint", daemon.endpoint)
        assert done.returncode == 0 and done.stdout == f"cancelled job my-dream at {daemon.endpoint}\n", done.stderr
        assert dreaming.wait(timeout=30) == cli.EXIT_ERROR
        said = dreaming.stderr.read()
    finally:
        dreaming.kill()
    assert said.strip().splitlines()[-1] == "deepdream: the dream was cancelled, as asked (CANCELLED)", said
    assert not (tmp_path / "out.png").exists()
    done = run_cli("cancel", "my-dream", "--endpoint", daemon.endpoint)
    assert done.returncode == cli.EXIT_ERROR and done.stderr == (
        f"deepdream: no job my-dream at {daemon.endpoint}: it has ended, or it runs elsewhere\n")
    done = run_cli("cancel", "two words", "--endpoint", daemon.endpoint)
    assert done.returncode == 2 and "a job id is 1 to 128 characters, without spaces" in done.stderr

