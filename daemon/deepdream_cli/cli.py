"""`deepdream`: dream an image file, through the daemon when one runs, else in-process.

    deepdream dream photo.jpg dream.png --octaves 3 --steps 10
    deepdream zoom photo.jpg zoom.gif --frames 30 --zoom 1.05 --rotate 1
    deepdream ping
    deepdream info
    deepdream cancel my-dream

Errors are one clear message on stderr and exit status 1; Ctrl-C exits 130
(after cancelling the job on the daemon)."""

import argparse
import contextlib
import json
import logging
import os
import sys
import time
from pathlib import Path

import numpy as np
from deepdream_client import previews
from deepdream_client.client import DaemonError, DaemonUnavailable, DreamClient
from deepdream_client.settings import SettingsError
from deepdream_client.image_files import ImageFileError, output_format, read_image, write_image, write_whole
from deepdream_common.layer_spec import EXAMPLE, parse_layers
from deepdream_client.paths import config_file, data_dir
from deepdream_client.protocol import ProtocolError, checked_options
from deepdream_client.readiness import NotReady, wait_ready
from deepdream_common.vocabulary import (BACKENDS, BUILT_IN_MODELS, CANCELLED, DEFAULT_BACKEND, DEFAULT_ENDPOINT,
                                         DEFAULT_MAX_PIXELS, DEFAULT_MODEL, MODEL_FILE_SUFFIXES, NORMALIZATIONS,
                                         PARAMS, PRECISIONS, PREVIEW_INTERVAL, PREVIEW_MAX_SIDE, ZOOM_OPTIONS,
                                         param_help)

from .zoom import ZoomOutput

PROBE_TIMEOUT = 1.0  # how long `dream` looks for a daemon before dreaming in-process
LOADING_WAIT = 300.0  # how long `dream` waits for a daemon that is still loading its model
EXIT_ERROR = 1
EXIT_INTERRUPTED = 130  # the shell's convention for "ended by SIGINT"
PARAM_OPTIONS = tuple(PARAMS)  # octaves, octave_scale, steps, step_size, tile_size, jitter, seed, dream_size


class CommandError(Exception):
    """A failure to report in one line, without a traceback."""


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        return args.command(args) or 0
    except KeyboardInterrupt as interrupt:  # the client's DreamInterrupted says what became of the dream
        print(f"deepdream: interrupted{f'; {interrupt}' if str(interrupt) else ''}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (CommandError, ImageFileError, DaemonUnavailable) as error:
        print(f"deepdream: {error}", file=sys.stderr)
        return EXIT_ERROR
    except DaemonError as error:
        said = "" if error.code == CANCELLED else "the daemon refused: "  # `deepdream cancel` asked for it
        print(f"deepdream: {said}{error.message} ({error.code})", file=sys.stderr)
        return EXIT_ERROR
    except BrokenPipeError:  # `deepdream info | head`: the reader has gone, and wants no traceback
        # Python flushes stdout again at exit; pointing it at /dev/null keeps that quiet too (Python's docs, signal).
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_ERROR


def build_parser():
    connection = argparse.ArgumentParser(add_help=False)
    group = connection.add_argument_group("daemon connection")
    group.add_argument("--endpoint", help="the daemon's ZeroMQ endpoint (default: $DEEPDREAM_ENDPOINT, "
                       f"else \"endpoint\" in ~/.config/deepdream/client.json, else {DEFAULT_ENDPOINT})")
    group.add_argument("--timeout", type=float, default=10.0, metavar="SECONDS",
                       help="give up on a daemon that stays silent this long, and on a dream it says nothing "
                            "about for this long, 3 at least (default: 10)")
    group.add_argument("--server-key", metavar="KEY",
                       help="the daemon's CURVE public key (Z85 text or a key file), for a daemon on a "
                            "non-loopback address (default: $DEEPDREAM_SERVER_KEY or \"server_key\" in the config)")
    group.add_argument("--client-key", metavar="FILE",
                       help="this client's CURVE secret key file, for a daemon that lists authorized clients "
                            "(default: $DEEPDREAM_CLIENT_KEY or \"client_key\" in the config, else a fresh key)")

    parser = argparse.ArgumentParser(
        prog="deepdream", description="DeepDream images with InceptionV3, through the deepdream daemon or in-process.")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)

    dream = commands.add_parser(
        "dream", parents=[connection], help="dream an image file into another",
        description="Dream IN and write OUT (format by extension: .png .jpg .webp .tif). Uses the daemon when "
                    "one answers, else loads the model in this process. Parameters left out take the "
                    "engine's defaults (see `deepdream info`).",
        epilog="example: deepdream dream photo.jpg dream.png --layers mixed3:1,mixed5:0.5 --octaves 4 --steps 20")
    dream.set_defaults(command=dream_command)
    dream.add_argument("input", metavar="IN", help="image to dream (PNG, JPEG, WebP, TIFF; alpha and 16-bit gray kept)")
    dream.add_argument("output", metavar="OUT",
                       help="where to write the dream; PNG, JPEG and TIFF carry its parameters")
    add_dream_parameters(dream)
    add_job_option(dream)
    dream.add_argument("--guide", metavar="FILE",
                       help="a guide image (any format IN takes): the dream grows the features FILE has at the "
                            "chosen layers, instead of whatever the layers see most")
    watch = dream.add_argument_group("watching the dream")
    watch.add_argument("--preview", metavar="FILE",
                       help="keep FILE showing the dream so far (format by extension; PNG recommended), at most "
                            f"{PREVIEW_MAX_SIDE.default} px on its longer side: rewritten at the end of every octave "
                            "and every few seconds within one, always whole, so an image viewer or a script can watch")
    watch.add_argument("--preview-interval", type=float, metavar="SECONDS",
                       help=f"how often --preview is rewritten within an octave, {PREVIEW_INTERVAL.low:g} to "
                            f"{PREVIEW_INTERVAL.high:g} seconds (default {PREVIEW_INTERVAL.default:g})")
    add_in_process_options(dream)

    zoom = commands.add_parser(
        "zoom", parents=[connection], help="dream an infinite zoom: an animation, or a folder of frames",
        description="Dream IN, then again and again, each frame the previous one zoomed (and turned) about its "
                    "centre, and write OUT: an animated .gif or .webp, or a folder of PNG frames (a name without "
                    "an extension; frame_0000.png is IN). Every frame is written as soon as it is done (for an "
                    "animation into the folder OUT.frames beside it), so Ctrl-C keeps the frames done and "
                    "--resume goes on from the last one. Uses the daemon when one answers, else this process.",
        epilog="example: deepdream zoom photo.jpg zoom.gif --frames 60 --zoom 1.05 --rotate 1 --steps 10")
    zoom.set_defaults(command=zoom_command)
    zoom.add_argument("input", metavar="IN", help="the first frame (PNG, JPEG, WebP, TIFF)")
    zoom.add_argument("output", metavar="OUT", help="an animated .gif or .webp, or a folder for the PNG frames")
    motion = zoom.add_argument_group("the zoom")
    for name, flag, metavar, more in (("frames", "--frames", "N", ": the last is frame_N, also when --resume goes on"),
                                      ("scale", "--zoom", "F", ""), ("rotate", "--rotate", "DEG", ""),
                                      ("frame_delay_ms", "--frame-delay", "MS", "")):
        param = ZOOM_OPTIONS[name]
        motion.add_argument(flag, dest=name, type=param.kind, default=param.default, metavar=metavar,
                            help=param_help(param) + more)
    motion.add_argument("--resume", action="store_true",
                        help="go on from the highest frame file in the frames folder (after Ctrl-C, say); "
                             "without it, frames already there are an error, never overwritten")
    add_dream_parameters(zoom)
    add_job_option(zoom)
    add_in_process_options(zoom)

    ping = commands.add_parser("ping", parents=[connection], help="is the daemon up, and what is it running?",
                               description="Ask the daemon for its state; exit status 1 if none answers.")
    ping.set_defaults(command=ping_command)
    ping.add_argument("--json", action="store_true", help="print the daemon's reply as JSON")

    info = commands.add_parser("info", parents=[connection], help="the daemon's layers, default parameters and limits",
                               description="Print what the daemon can dream with: layers, defaults, limits.")
    info.set_defaults(command=info_command)
    info.add_argument("--json", action="store_true", help="print the daemon's reply as JSON")

    cancel = commands.add_parser(
        "cancel", parents=[connection], help="stop a dream or zoom by its job id (the --id it was started with)",
        description="Ask the daemon to stop the dream or zoom with job id ID (`deepdream dream --id ID`, or the id "
                    "a script sent): a waiting one at once, a running one at its next step; its client ends with "
                    "CANCELLED, and a zoom keeps its frames done. Exit status 1 if the daemon has no such job.",
        epilog="example: deepdream dream photo.jpg dream.png --id my-dream & ... deepdream cancel my-dream")
    cancel.set_defaults(command=cancel_command)
    cancel.add_argument("job_id", metavar="ID", type=job_id_option, help="the job id of the dream or zoom to stop")
    cancel.add_argument("--daemon", metavar="ENDPOINT",
                        help="the daemon running it, when --endpoint is a load balancer's: the address `deepdream "
                             "dream` named as the dream started (default: the endpoint)")

    relay = commands.add_parser(
        "relay", help="relay this computer's plain clients (GIMP without pyzmq) to a remote daemon over CURVE",
        description="Listen on a loopback address, unencrypted, for clients on this computer (GIMP's plug-in where "
                    "its Python has no pyzmq, which CURVE needs), and pass their requests to a remote daemon over "
                    "CURVE. Runs until Ctrl-C; the installer can run it as a user service (--relay-to).")
    relay.set_defaults(command=relay_command)
    relay.add_argument("--to", required=True, metavar="ENDPOINT", help="the remote daemon, e.g. tcp://gpu-box:5555")
    relay.add_argument("--server-key", required=True, metavar="KEY",
                       help="the remote daemon's CURVE public key: its server.key file, or the 40-character key")
    relay.add_argument("--client-key", metavar="FILE",
                       help="this relay's CURVE secret key file, for a daemon that lists authorized clients "
                            "(default: a fresh key)")
    relay.add_argument("--listen", default=DEFAULT_ENDPOINT, metavar="ENDPOINT",
                       help=f"where local clients connect, a loopback address (default: {DEFAULT_ENDPOINT}, "
                            "where GIMP looks when nothing else is set)")

    keys = commands.add_parser(
        "keys", help="make a CURVE key pair: this computer's, for a daemon that lists its clients, or the daemons'",
        description="Write NAME.key (public) and NAME.key_secret (private: mode 600, in a folder only you can "
                    "read) into DIR. A client's: give NAME.key to the daemon's owner for its authorized_clients/ "
                    "folder, and set the secret one as \"client_key\" in client.json (GIMP reads it there) or "
                    "--client-key. The daemons': `deepdream keys server --dir DIR` is the pair deepdream-daemon "
                    "--curve-keys DIR uses; copy DIR to every daemon behind one address. Never overwrites a pair.")
    keys.set_defaults(command=keys_command)
    keys.add_argument("name", metavar="NAME", help="the pair's name, e.g. your computer's, or server")
    keys.add_argument("--dir", type=Path, default=config_file("keys"), metavar="DIR",
                      help=f"where to write them (default: {config_file('keys')})")
    return parser


def keys_command(args):
    from .keys import KeysExist, make_pair

    if not args.name or "/" in args.name or os.sep in args.name or args.name.startswith("."):
        raise CommandError(f"keys {args.name!r}: give a plain name, such as your computer's (no folders)")
    try:
        public, secret = make_pair(args.dir, args.name)
    except KeysExist as error:
        raise CommandError(str(error)) from None
    except OSError as error:
        raise CommandError(f"cannot write the keys into {args.dir}: {error.strerror or error}") from None
    print(f"wrote {public} (public) and {secret} (secret, only you can read it)")
    if args.name == "server":
        print(f"daemons: deepdream-daemon --curve-keys {args.dir} (the same folder on each one behind one address); "
              f"clients need {public}")
    else:
        print(f"the daemon's owner puts {public.name} into its --curve-keys folder's authorized_clients/; here, "
              f"\"client_key\": \"{secret}\" in {config_file('client.json')} or --client-key {secret}")


def relay_command(args):
    from . import relay

    logging.basicConfig(level=logging.INFO, format="%(asctime)s deepdream relay: %(message)s")
    try:
        relay.run(args.listen, args.to, args.server_key, args.client_key)
    except SettingsError as error:
        raise CommandError(str(error)) from None


def add_dream_parameters(command):
    knobs = command.add_argument_group("dream parameters")
    knobs.add_argument("--model", metavar="NAME|FILE",
                       help=f"the network: {', '.join(BUILT_IN_MODELS)} (default {DEFAULT_MODEL}), the name of a "
                            "model file in the daemon's models folder (see `deepdream info`), or, in-process, a Keras "
                            "model file (.keras, .h5) with a NAME.json beside it saying its preprocessing")
    knobs.add_argument("--layers", type=layers_option, metavar="NAME[CHANNELS][:WEIGHT],...",
                       help="layers to excite and their weights, e.g. mixed2:1,mixed5:0.5 or mixed3,mixed4; a term "
                            f"may name some of its layer's channels, e.g. {EXAMPLE} (channels count from 0; "
                            "`deepdream info` lists each layer's channel count)")
    knobs.add_argument("--normalize", choices=NORMALIZATIONS,
                       help="how each step's gradient is normalized: std, as a whole (default), or laplacian, each "
                            "band of its Laplacian pyramid on its own (larger, smoother forms)")
    # Each parameter's words, range and default: the vocabulary's table, shared with GIMP's dialog.
    for name, metavar in (("octaves", "N"), ("octave_scale", "F"), ("steps", "N"), ("step_size", "F"),
                          ("tile_size", "PX"), ("jitter", "PX"), ("seed", "N"), ("dream_size", "MP")):
        param = PARAMS[name]
        knobs.add_argument("--" + name.replace("_", "-"), type=param.kind, metavar=metavar, help=param_help(param))
    knobs.add_argument("--no-detail", dest="detail", action="store_false", default=None,
                       help="do not put back the detail that shrinking an octave loses")


def add_job_option(command):
    command.add_argument("--id", dest="job_id", type=job_id_option, metavar="ID",
                         help="the job's id on the daemon (default: a new random one), for `deepdream cancel ID` "
                              "from another terminal or script")


def job_id_option(text):
    """A job id a shell can pass around: 1 to 128 printable characters, no spaces."""
    if not 0 < len(text) <= 128 or not text.isprintable() or any(char.isspace() for char in text):
        raise argparse.ArgumentTypeError(f"{text!r}: a job id is 1 to 128 characters, without spaces")
    return text


def add_in_process_options(command):
    local = command.add_argument_group("in-process engine (used when no daemon answers)")
    local.add_argument("--in-process", action="store_true", help="do not look for a daemon")
    local.add_argument("--weights", default="imagenet", metavar="imagenet|random|PATH",
                       help="model weights: imagenet (downloaded once by Keras), random (untrained, for "
                            "offline tests), or a weights file (default: imagenet)")
    local.add_argument("--precision", default="auto", choices=PRECISIONS,
                       help="compute precision (default: auto, the fastest correct one for this machine)")
    local.add_argument("--backend", default=os.environ.get("DEEPDREAM_BACKEND") or DEFAULT_BACKEND,
                       choices=BACKENDS, help="the Keras backend that computes the dream (default: "
                       f"$DEEPDREAM_BACKEND, else {DEFAULT_BACKEND}; jax and torch: install.sh --backend NAME)")
    command.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def layers_option(text):
    """--layers "mixed2:1,mixed5:0.5" or "mixed2,mixed5" -> {name: weight}."""
    try:
        return parse_layers(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def requested_params(args):
    """The dream parameters given on the command line; the rest is left to the engine's defaults. Checked as the
    engine and the daemon check them, before either is asked: a value out of range costs no model load.
    (Whether a layer and its channels exist only the network knows: the engine tells that.) Without the engine
    (the client package, deepdream-client) the daemon checks them, before it queues the dream."""
    params = {name: getattr(args, name) for name in PARAM_OPTIONS + ("layers", "detail", "normalize")}
    model_file = model_file_option(args)
    params["model"] = model_file.stem if model_file else args.model  # a file's model is named by its stem
    params = {name: value for name, value in params.items() if value is not None}
    try:
        from dream_engine.params import DreamParams, InvalidParams  # plain Python: Keras is not loaded by it
    except ImportError:
        return params
    try:
        DreamParams.from_dict(params)
    except InvalidParams as error:
        raise CommandError(str(error)) from None
    return params


def model_file_option(args):
    """The file --model names (a path or a .keras/.h5 name), else None (a model's name)."""
    model = args.model
    if model is None or not (model.endswith(MODEL_FILE_SUFFIXES) or os.sep in model or "/" in model):
        return None
    path = Path(model).expanduser()
    if not path.is_file():
        raise CommandError(f"--model {model}: no such model file")
    if not model.endswith(MODEL_FILE_SUFFIXES):
        raise CommandError(f"--model {model}: a model file is a Keras .keras or .h5 file")
    return path


def connect(args):
    try:
        return DreamClient(args.endpoint, timeout=args.timeout, curve_server_key=args.server_key,
                           curve_client_keys=args.client_key)
    except SettingsError as error:  # a malformed endpoint or key, an unreadable key file: before any socket
        raise CommandError(str(error)) from None


# -- commands -----------------------------------------------------------------------------------

def ask(args, op):
    """(the daemon's reply to `op`, its endpoint); with --json the reply is printed and None returned."""
    with connect(args) as client:
        reply = getattr(client, op)()
    if args.json:
        print(json.dumps(reply, indent=2, sort_keys=True))
        return None, client.endpoint
    return reply, client.endpoint


def ping_command(args):
    pong, endpoint = ask(args, "ping")
    if pong is None:
        return
    if pong.get("state") == "error":
        raise CommandError(f"the daemon at {endpoint} is up but could not load its model: {pong.get('error')}")
    work = "busy" if pong.get("busy") else "idle"
    daemon = answered_by(pong, endpoint)
    print(f"{pong.get('state')} at {endpoint}{f', one daemon behind it: {daemon}' if daemon else ''}: "
          f"{pong.get('model')} with {pong.get('weights')} weights, "
          f"{computed_by(pong)}; {work}, {pong.get('queued', 0)} queued; "
          f"daemon {pong.get('version')}, protocol {pong.get('protocol')}")


def answered_by(reply, endpoint):
    """"tcp://gpu2:5555 on gpu2" when a ping or info was answered by a daemon other than the endpoint's own (one of
    a load balancer's), else None."""
    daemon = reply.get("daemon")  # older daemons do not say
    if not daemon or daemon == endpoint:
        return None
    return daemon + (f" on {reply['host']}" if reply.get("host") else "")


def computed_by(about):
    """"tensorflow on CPU at bfloat16": the backend, device and precision in a ping, info or
    result (a daemon older than the backend key runs TensorFlow)."""
    return f"{about.get('backend') or 'tensorflow'} on {about.get('device')} at {about.get('precision')}"


def cancel_command(args):
    with connect(args) as client:
        try:
            reply = client.cancel(args.job_id, daemon=args.daemon)
        except SettingsError as error:  # a malformed --daemon
            raise CommandError(f"--daemon: {error}") from None
        where = args.daemon or client.endpoint
    if reply.get("found"):
        print(f"cancelled job {args.job_id} at {where}")
        return
    hint = ""
    if answered_by(reply, where) and not args.daemon:
        hint = (f"; {reply['daemon']} answered, one daemon behind that address: pass --daemon with the address "
                "`deepdream dream` named as the dream started")
    raise CommandError(f"no job {args.job_id} at {where}: it has ended, or it runs elsewhere{hint}")


def info_command(args):
    info, endpoint = ask(args, "info")
    if info is None:
        return
    daemon = answered_by(info, endpoint)
    if daemon:
        print(f"daemon:  {daemon}, one of those behind {endpoint} (the others may differ)")
    print(f"model:   {info.get('model')} with {info.get('weights')} weights, {computed_by(info)}")
    channels = info.get("layer_channels", {})  # an older daemon does not say
    print("layers:  " + " ".join(f"{name}({channels[name]})" if name in channels else name
                                 for name in info.get("layers", [])) + ("  (channel counts)" if channels else ""))
    if "models" in info:  # an older daemon has InceptionV3 only
        print(f"models (up to {info.get('max_models')} kept loaded; --model NAME):")
        for model in info["models"]:
            print("  " + describe_model(model))
    print("defaults:")
    for name, value in sorted(info.get("defaults", {}).items()):
        print(f"  {name} = {json.dumps(value)}")
    for section in ("limits", "memory"):  # memory: the tile budget, compiled layer sets, resident MiB
        if section not in info:
            continue  # an older daemon has no memory section
        print(f"{section}:")
        for name, value in sorted(info.get(section, {}).items()):
            print(f"  {name} = {value:,}" if isinstance(value, int) else f"  {name} = {value}")


def describe_model(model):
    """One line of `deepdream info`'s models: name, state, memory, preprocessing, default and other layers."""
    memory = f"{model['memory_mib']:.0f} MiB" if model.get("memory_mib") is not None else "size unknown until loaded"
    layers = model.get("layers") or {}
    known = [name if channels is None else f"{name}({channels})" for name, channels in layers.items()]
    return (f"{model.get('name')}: {'loaded' if model.get('loaded') else 'not loaded'}, {memory}, "
            f"input {model.get('preprocess') or '?'}, default layers "
            f"{','.join(model.get('default_layers') or {}) or '?'}; layers {' '.join(known) or 'known once loaded'}")


def dream_command(args):
    check_output(args.output)  # a path that cannot be written fails now, not after the dream
    preview = preview_request(args)
    params = requested_params(args)
    started = time.monotonic()
    with contextlib.nullcontext() if args.in_process else connect(args) as client:
        pong = None if client is None else find_daemon(client)
        limit = pixel_limit(client, pong)
        image = read_image(args.input, limit)
        guide = read_image(args.guide, limit) if args.guide else None
        bar = ProgressBar(enabled=not args.quiet)
        progress = showing_previews(bar, args.preview)
        try:
            if pong is None:
                reason = "" if client is None else f"no daemon at {client.endpoint}; "
                say(f"{reason}dreaming in-process (loads the model, slower)")
                dreamed, record = dream_in_process(image, params, args, progress, preview, guide)
            else:
                dreamed, record = dream_on_daemon(client, pong, image, params, args, progress, preview, guide)
        finally:
            bar.finish()  # whatever comes next starts on a line of its own
    for note in write_image(args.output, dreamed, record):
        say(f"note: {note}")
    height, width = dreamed.shape[:2]
    say(f"wrote {args.output} ({width}x{height}) in {time.monotonic() - started:.1f} s: {computed_by(record)}, "
        f"{record['dreamed_by']}")


def pixel_limit(client, pong):
    """The most pixels an input file may have: the daemon's max_pixels when a daemon dreams it, else the
    in-process engine's (the same default). A file over it is refused from its header, before it is decoded
    (Pillow's own guard decodes up to 179 million pixels)."""
    if pong is None:
        return DEFAULT_MAX_PIXELS
    return client.info().get("limits", {}).get("max_pixels", DEFAULT_MAX_PIXELS)


def check_output(path):
    """Refuse an output the dream could not be written to: its format, its folder."""
    output_format(path)
    path = Path(path)
    folder = path.parent
    if path.is_dir():
        raise CommandError(f"{path}: is a folder; name the file to write")
    if not folder.is_dir():
        raise CommandError(f"{path}: cannot write it, there is no folder {folder}")
    if not os.access(folder, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise CommandError(f"{path}: cannot write it (permission denied)")


def preview_request(args):
    """The previews --preview asks for (None without it), checked: the file can be written, the interval is in range."""
    if args.preview is None:
        if args.preview_interval is not None:
            raise CommandError("--preview-interval needs --preview FILE, the file to show the previews in")
        return None
    check_output(args.preview)
    try:
        return previews.checked({} if args.preview_interval is None else {"interval": args.preview_interval})
    except ProtocolError as error:
        raise CommandError(error.message.replace("`preview.interval`", "--preview-interval")) from None


def showing_previews(bar, path):
    """The progress callback: the bar, and each preview written whole to `path` (when given)."""
    if path is None:
        return bar

    def progress(event):
        bar(event)
        preview = event.get("preview")
        if preview:
            pixels = np.frombuffer(preview["pixels"], np.uint8).reshape(preview["height"], preview["width"], 3)
            write_whole(path, pixels)

    return progress


def naming_the_daemon(progress, endpoint, args):
    """The progress callback, first saying which daemon took the job when that is not the endpoint's own (one
    behind a load balancer): where `deepdream cancel --daemon` reaches it. Every event names its daemon; the
    first comes before any bar is drawn."""
    told = False

    def announced(event):
        nonlocal told
        daemon = event.get("daemon")
        if not told and daemon and daemon != endpoint:
            say(f"{f'job {args.job_id}' if args.job_id else 'the job'} runs on the daemon at {daemon}, "
                f"behind {endpoint}")
        told = True
        progress(event)

    return announced


def find_daemon(client):
    """The daemon's pong once it is ready, or None when no daemon answers."""
    try:
        pong = client.ping(timeout=PROBE_TIMEOUT)
    except DaemonUnavailable:
        return None
    if pong.get("state") == "ready":
        return pong
    if pong.get("state") == "loading":
        say(f"the daemon at {client.endpoint} is loading its model; waiting")
    try:
        return wait_ready(client, LOADING_WAIT)
    except NotReady as error:
        raise CommandError(f"{error} See its log, or use --in-process.") from None


def note_in_process_options(args, pong):
    """Say which options the daemon does not take; refuse a model file, which it must have in its own folder."""
    model_file = model_file_option(args)
    if model_file is not None:
        raise CommandError(f"--model {args.model}: the daemon loads model files from its own models folder "
                           f"only (its models_dir setting, by default {data_dir('models')} of the user it runs "
                           f"as): put {model_file.name} there with its {model_file.stem}.json and pass --model "
                           f"{model_file.stem}, or use --in-process")
    if args.weights != "imagenet" or args.precision != "auto" or args.backend != DEFAULT_BACKEND:
        say(f"note: --weights, --precision and --backend apply in-process only; the daemon uses "
            f"{pong.get('weights')} weights, {computed_by(pong)} (or pass --in-process)")


def dream_on_daemon(client, pong, image, params, args, progress, preview, guide=None):
    note_in_process_options(args, pong)
    defaults = client.info().get("defaults", {})
    dreamed, result = client.dream_array(image, params, return_result=True, preview=preview, timeout=args.timeout,
                                         progress=naming_the_daemon(progress, client.endpoint, args), guide=guide,
                                         request_id=args.job_id)  # Ctrl-C cancels it on the daemon
    used = {name: value for name, value in result.stats.items() if name in defaults}  # e.g. a smaller tile after OOM
    return dreamed, describe({**defaults, **params, **used}, {**pong, **result.stats}, f"daemon at {client.endpoint}")


def dream_in_process(image, params, args, progress, preview, guide=None):
    engine, dream_params = in_process_engine(args, params)
    from dream_engine import DreamError

    if preview is not None:
        progress = previews.in_process(progress, preview)
    try:
        dreamed = engine.dream(image, dream_params, progress=progress, guide=guide)
    except DreamError as error:
        raise CommandError(str(error)) from None
    return dreamed, describe(dream_params.to_dict(), engine_about(engine), "in-process")


def in_process_engine(args, params):
    """(the engine in this process, `params` as DreamParams): Keras and its backend are imported only on this path."""
    try:
        from dream_engine import startup
    except ImportError:  # the client package: a laptop's or a script's, which dreams on a daemon only
        raise CommandError("this installation (the client package, deepdream-client) has no engine to dream in "
                           "this process: start a daemon, or point --endpoint at one (deepdream ping says whether "
                           "one answers)") from None

    startup.use_backend(args.backend)
    try:
        startup.load_quietly()  # TensorFlow's C++ start-up lines are not for the user's terminal
    except ImportError as error:
        raise CommandError(f"the {args.backend} backend cannot load ({error}); "
                           f"install.sh --backend {args.backend} installs it") from None
    from dream_engine import DreamEngine, DreamError, DreamParams

    try:
        dream_params = DreamParams.from_dict(params)  # checked already (requested_params): this makes them
        model_file = model_file_option(args)
        models_dir = model_file.parent if model_file else data_dir("models")  # the daemon's default folder
        engine = DreamEngine(model=dream_params.model, weights=args.weights, precision=args.precision,
                             models_dir=models_dir)
        return engine, engine.resolved(dream_params)  # a network's own default layers
    except DreamError as error:
        raise CommandError(str(error)) from None


def engine_about(engine):
    return {"model": engine.model, "weights": engine.weights, "backend": engine.backend, "precision": engine.precision,
            "device": engine.device}


def zoom_command(args):
    zoom = zoom_request(args)
    params = requested_params(args)  # before the output's folder and first frame are written
    output = ZoomOutput(args.output)
    started = time.monotonic()
    with contextlib.nullcontext() if args.in_process else connect(args) as client:
        pong = None if client is None else find_daemon(client)
        first, image = output.start(read_image(args.input, pixel_limit(client, pong)), args.resume)
        if first:
            say(f"resuming from frame {first} in {output.folder}")
        zoom.update(frames=args.frames - first, first_index=first)
        record = None
        if zoom["frames"] < 1:
            say(f"{output.folder} has its {args.frames} frames already; nothing to dream")
        else:
            record = dream_zoom(client, pong, image, zoom, params, args, output)
    frames = output.finish(args.frame_delay_ms)
    made_by = f": {computed_by(record[0])}, {record[1]}" if record else ""
    say(f"wrote {args.output} ({frames} frames, {image.shape[1]}x{image.shape[0]}) in "
        f"{time.monotonic() - started:.1f} s{made_by}")


def zoom_request(args):
    """The zoom the options ask for, checked against the wire's ranges (`frames`: all the zoom should have)."""
    options = {"frames": "--frames", "scale": "--zoom", "rotate": "--rotate", "frame_delay_ms": "--frame-delay"}
    try:
        return checked_options({key: getattr(args, key) for key in options}, "zoom", ZOOM_OPTIONS)
    except ProtocolError as error:
        message = error.message
        for key, option in options.items():
            message = message.replace(f"`zoom.{key}`", option)
        raise CommandError(message) from None


def dream_zoom(client, pong, image, zoom, params, args, output):
    """Dream the zoom's frames into `output` as they come, through the daemon (`pong`: its ping, None for none)
    or in this process; (what computed them, where). On Ctrl-C or a failure the frames done stay, and say so."""
    bar = ProgressBar(enabled=not args.quiet)
    try:
        if pong is None:
            reason = "" if client is None else f"no daemon at {client.endpoint}; "
            say(f"{reason}dreaming in-process (loads the model, slower)")
            return zoom_in_process(image, params, zoom, args, bar, output.write_frame), "in-process"
        note_in_process_options(args, pong)
        result = client.zoom_array(image, zoom=zoom, params=params, progress=naming_the_daemon(bar, client.endpoint,
                                                                                               args),
                                   timeout=args.timeout, request_id=args.job_id,
                                   on_frame=lambda frame: output.write_frame(frame.index, frame.array()))
        return {**pong, **result.stats}, f"daemon at {client.endpoint}"
    except BaseException:
        bar.finish()
        last = max(output.frames(), default=0)
        if last > zoom["first_index"]:
            animation = f" (and {output.finish(args.frame_delay_ms)} of them in {output.path})" if output.animation \
                else ""
            say(f"frames up to {last} kept in {output.folder}{animation}; add --resume to go on from frame {last}")
        raise
    finally:
        bar.finish()


def zoom_in_process(image, params, zoom, args, progress, write_frame):
    engine, dream_params = in_process_engine(args, params)
    from dream_engine import DreamError
    from dream_engine import zoom as zooming

    def dream(frame, frame_params, as_part):
        return engine.dream(frame, frame_params, progress=lambda event: progress(as_part(event))), frame_params

    try:
        for index, frame, _ in zooming.frames(image, zoom, dream_params, dream):
            write_frame(index, frame)
    except DreamError as error:
        raise CommandError(str(error)) from None
    return engine_about(engine)


def describe(params, engine, where):
    """What goes into the output file's metadata: enough to dream it again."""
    return {"params": params, "seed": params.get("seed"), "model": engine.get("model"),
            "weights": engine.get("weights"), "backend": engine.get("backend") or "tensorflow",
            "precision": engine.get("precision"), "device": engine.get("device"), "dreamed_by": where}


def say(message):
    print(message, file=sys.stderr, flush=True)


class ProgressBar:
    """A one-line bar on a terminal; on a pipe or log, a line per tenth of the work."""

    WIDTH = 30

    def __init__(self, enabled=True, stream=None):
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.interactive = self.stream.isatty()
        self.shown_tenths = -1
        self.drawn = False

    def __call__(self, event):
        if not self.enabled:
            return
        fraction = min(max(float(event.get("fraction", 0.0)), 0.0), 1.0)
        if event.get("octave"):
            where = f"octave {event['octave']}/{event.get('octaves')}  step {event.get('step')}/{event.get('steps')}"
            if event.get("frame"):  # a zoom's
                where = f"frame {event['frame']}/{event.get('frames')}  {where}"
        else:  # the daemon's heartbeat before the first step
            where = f"waiting in the daemon's queue (place {event['queued']})" if event.get("queued") else "starting"
        if self.interactive:
            filled = int(round(fraction * self.WIDTH))
            self.stream.write(f"\r[{'#' * filled}{'-' * (self.WIDTH - filled)}] {fraction:4.0%}  {where}")
            self.drawn = True
        elif event.get("octave") and int(fraction * 10) > self.shown_tenths:
            self.shown_tenths = int(fraction * 10)
            self.stream.write(f"{fraction:4.0%}  {where}\n")
        self.stream.flush()

    def finish(self):
        if self.drawn:
            self.stream.write("\n")
            self.stream.flush()
            self.drawn = False


if __name__ == "__main__":
    sys.exit(main())
