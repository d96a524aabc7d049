"""The daemon's settings: command line over environment over config file over defaults.

One table (OPTIONS) drives all three sources, so an option added here is at
once a flag, a DEEPDREAM_* variable and a key of daemon.toml."""

import argparse
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path

from deepdream_client.paths import config_file, data_dir
from deepdream_client.protocol import shown
from deepdream_common.vocabulary import (
    BACKENDS,
    DEFAULT_BACKEND,
    DEFAULT_ENDPOINT,
    DEFAULT_MAX_PIXELS,
    DTYPE_SIZES,
    MAX_HEADER_BYTES,
    PRECISIONS,
)

DEVICES = ("auto", "cpu", "gpu")
LOG_LEVELS = ("debug", "info", "warning", "error")
BYTES_PER_PIXEL_WORST = DTYPE_SIZES["float32"] * 4  # float32 RGBA, the widest raw payload


class ConfigError(Exception):
    """A setting that cannot work; the message says which and what to do."""


@dataclass
class Settings:
    endpoints: list = field(default_factory=lambda: [DEFAULT_ENDPOINT])
    weights: str = "imagenet"
    backend: str = DEFAULT_BACKEND
    precision: str = "auto"
    device: str = "auto"
    queue_length: int = 16
    max_pixels: int = DEFAULT_MAX_PIXELS
    max_message_bytes: int = 0  # 0: derived from max_pixels (see finish())
    log_level: str = "info"
    curve_keys: str = ""
    memory_budget: int = 0  # MiB for one ascent step; 0: from the device's memory (see dream_engine.model)
    compiled_layer_sets: int = 8
    models_dir: str = ""  # "": data_dir("models") (see finish()); the worker creates it when missing
    max_models: int = 2  # networks kept loaded; the least recently used is dropped beyond it
    frame_wait: int = 60  # seconds a zoom waits for its client to take a frame, then stops (the client reads nothing)
    agent_port: int = 0  # HAProxy's agent check (agent.py) on this TCP port; 0: none
    advertise: str = ""  # the address that names this daemon in its replies; "": its first endpoint (see finish())
    print_device: bool = False  # a command, not a setting: say what would dream (backend, device, precision), exit

    def finish(self):
        """Check every value and fill in the derived ones."""
        if not self.endpoints:
            raise ConfigError("no endpoint to listen on: give at least one --endpoint")
        for endpoint in self.endpoints:
            if not endpoint.startswith(("tcp://", "ipc://")):
                raise ConfigError(f"endpoint {endpoint!r}: use tcp://HOST:PORT or ipc:///path/to/socket")
        for name, choices in (("backend", BACKENDS), ("precision", PRECISIONS), ("device", DEVICES),
                              ("log_level", LOG_LEVELS)):
            if getattr(self, name) not in choices:
                raise ConfigError(f"{_flag(name)} must be one of {', '.join(choices)}, got {getattr(self, name)!r}")
        if self.memory_budget < 0:
            raise ConfigError(f"--memory-budget must be 0 (automatic) or a number of MiB, got {self.memory_budget}")
        for name in ("queue_length", "max_pixels", "compiled_layer_sets", "max_models", "frame_wait"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{_flag(name)} must be at least 1, got {getattr(self, name)}")
        if not 0 <= self.agent_port < 65536:
            raise ConfigError(f"--agent-port must be 0 (no agent) or a TCP port up to 65535, got {self.agent_port}")
        if self.advertise and not self.advertise.startswith(("tcp://", "ipc://")):
            raise ConfigError(f"--advertise {self.advertise!r}: write the address clients reach this daemon at, "
                              f"tcp://HOST:PORT")
        self.advertise = self.advertise or advertised(self.endpoints[0])
        self.models_dir = str(Path(self.models_dir).expanduser() if self.models_dir else data_dir("models"))
        if not self.max_message_bytes:
            self.max_message_bytes = self.max_pixels * BYTES_PER_PIXEL_WORST + MAX_HEADER_BYTES
        if self.max_message_bytes <= MAX_HEADER_BYTES:
            raise ConfigError(f"--max-message-bytes must be larger than the {MAX_HEADER_BYTES}-byte header limit")
        return self


# (name, type, metavar, help); the flag is --name-with-dashes, the variable DEEPDREAM_NAME.
OPTIONS = (
    ("endpoint", str, "URL",
     f"where to listen: tcp://HOST:PORT or ipc:///path; repeat for several (default {DEFAULT_ENDPOINT}). "
     "Addresses other than loopback need --curve-keys. In the environment: several separated by commas"),
    ("weights", str, "WHICH",
     "imagenet (downloaded once by Keras), random (untrained, for tests), or a weights file path"),
    ("backend", str, "NAME", f"{' | '.join(BACKENDS)}: the Keras backend that computes the dream (default "
     f"{DEFAULT_BACKEND}; jax and torch need their extra installed: install.sh --backend NAME)"),
    ("precision", str, "P", f"{' | '.join(PRECISIONS)}; auto picks float16 on a GPU, bfloat16 on CPUs that have it"),
    ("device", str, "D", f"{' | '.join(DEVICES)}; cpu hides every GPU from the backend"),
    ("queue_length", int, "N",
     "dreams that may wait behind the running one; more are refused with QUEUE_FULL (default 16)"),
    ("max_pixels", int, "N", f"largest image (width x height) accepted (default {DEFAULT_MAX_PIXELS:,})"),
    ("max_message_bytes", int, "N", "largest request ZeroMQ accepts; bigger ones are dropped unread "
     "(default: enough for --max-pixels of float32 RGBA)"),
    ("log_level", str, "LEVEL", f"{' | '.join(LOG_LEVELS)} (default info); logs go to stderr"),
    ("curve_keys", str, "DIR", "enable CURVE encryption with the server key pair in DIR (created when missing: "
     "server.key is what clients need). Client public keys in DIR/authorized_clients/*.key restrict who may "
     "connect; without any, every client that knows server.key may"),
    ("memory_budget", int, "MIB", "memory one dream step may use, in MiB; an image step larger than it is dreamed in "
     "tiles (default 0: a 32nd of the RAM on a CPU, of 8 GiB on Windows, where Python cannot read the RAM; half "
     "the free memory on a GPU). A request's tile_size wins"),
    ("compiled_layer_sets", int, "N", "layer sets kept compiled (about 11 MiB each); the least recently used "
     "is dropped beyond it (default 8)"),
    ("models_dir", str, "DIR", "your own networks: each Keras model file NAME.keras (or NAME.h5) here, with a "
     "NAME.json saying its input ({\"preprocess\": \"caffe\"}), is the model NAME (default "
     f"{data_dir('models')}, created when missing)"),
    ("max_models", int, "N", "networks kept loaded (each takes its parameters' memory and more); the least "
     "recently used is dropped beyond it (default 2)"),
    ("frame_wait", int, "SECONDS", "how long a zoom waits for its client to take a frame when the client reads "
     "none (the daemon holds a few of its frames, not more); then the zoom is stopped (default 60)"),
    ("agent_port", int, "PORT", "answer HAProxy's agent-check on this TCP port, on the first endpoint's address: "
     "whether this daemon takes new dreams (down while the model loads, drain while the queue is full) and a "
     "weight from its queue (default 0: no agent; deploy/haproxy/deepdream.cfg uses 5556)"),
    ("advertise", str, "ENDPOINT", "the address at which clients reach this daemon itself, named as `daemon` in "
     "every reply so that a client behind a load balancer can send a dream's follow-ups there (default: the first "
     "--endpoint, a wildcard host (*, 0.0.0.0, [::]) replaced by this machine's name)"),
)


def advertised(endpoint):
    """The address a client on another machine reaches `endpoint` at: a wildcard host becomes this machine's name."""
    scheme, _, address = endpoint.partition("://")
    host, _, port = address.rpartition(":")
    if scheme == "tcp" and host in ("*", "0.0.0.0", "[::]"):
        return f"tcp://{socket.gethostname()}:{port}"
    return endpoint


def _flag(name):
    return "--" + name.replace("_", "-")


def default_config_file(environ=os.environ):
    return config_file("daemon.toml", environ)


def build_parser():
    parser = argparse.ArgumentParser(
        prog="deepdream-daemon",
        description="Serve DeepDream over ZeroMQ: InceptionV3 is loaded and compiled once, then GIMP, "
                    "the deepdream CLI and scripts send images and get them back dreamed.",
        epilog="Every option can also come from the environment (DEEPDREAM_ENDPOINT, DEEPDREAM_WEIGHTS, ... "
               "the flag's name in capitals) or from the config file, a TOML file with the same names "
               f"(endpoint = [\"{DEFAULT_ENDPOINT}\"], weights = \"random\", max_pixels = 20000000). "
               "The command line wins over the environment, which wins over the file.",
    )
    for name, kind, metavar, text in OPTIONS:
        action = "append" if name == "endpoint" else "store"
        parser.add_argument(_flag(name), dest=name, type=kind, metavar=metavar, help=text, action=action)
    parser.add_argument("--config", metavar="FILE", type=Path,
                        help="settings file (default $DEEPDREAM_CONFIG, else $XDG_CONFIG_HOME/deepdream/daemon.toml "
                             "when it exists)")
    parser.add_argument("--print-device", action="store_true",
                        help="load the backend (not the model), print the backend, device and precision these "
                             "settings would dream with, and exit")
    return parser


def load_settings(argv=None, environ=os.environ):
    """Settings from the command line, environment and config file; argparse exits on bad flags,
    ConfigError reports bad values."""
    args = build_parser().parse_args(argv)
    values = {}
    values.update(_from_file(args.config or environ.get("DEEPDREAM_CONFIG"), environ))
    values.update(_from_environment(environ))
    values.update({name: value for name, value in vars(args).items() if value is not None and name != "config"})
    if "endpoint" in values:
        values["endpoints"] = values.pop("endpoint")
    return Settings(**values).finish()


def _from_environment(environ):
    values = {}
    for name, kind, _metavar, _help in OPTIONS:
        raw = environ.get("DEEPDREAM_" + name.upper())
        if raw is None or raw == "":
            continue
        if name == "endpoint":
            values[name] = [part.strip() for part in raw.split(",") if part.strip()]
        else:
            values[name] = _convert(kind, raw, "DEEPDREAM_" + name.upper())
    return values


def _from_file(path, environ):
    explicit = path is not None
    path = Path(path) if explicit else default_config_file(environ)
    if not path.exists():
        if explicit:
            raise ConfigError(f"the config file {path} does not exist")
        return {}
    try:
        import tomllib  # only needed when a file is there
    except ImportError:  # Python 3.10
        raise ConfigError(f"reading {path} needs Python 3.11 or later; use flags or DEEPDREAM_* variables") from None

    try:
        table = tomllib.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as error:
        raise ConfigError(f"cannot read the config file {path}: it is not UTF-8 text (byte {error.start}); "
                          f"TOML files are UTF-8") from None
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise ConfigError(f"cannot read the config file {path}: {error}") from None
    known = {name: kind for name, kind, _metavar, _help in OPTIONS}
    values = {}
    for key, value in table.items():
        name = key.replace("-", "_")
        if name not in known:
            raise ConfigError(f"{path}: unknown setting {key!r}; known ones are {', '.join(known)}")
        if name == "endpoint":
            value = [value] if isinstance(value, str) else value
            if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
                raise ConfigError(f"{path}: endpoint must be a string or a list of strings")
        elif type(value) is not known[name]:  # TOML has types: 2.7 or true is no queue length, 5 no weights name
            raise ConfigError(f"{path}: {key} must be {_KIND_WORDS[known[name]]}, got {shown(value)}")
        values[name] = value
    return values


_KIND_WORDS = {int: "a whole number", str: "text (in quotes)"}


def _convert(kind, text, where):
    """An environment variable's text as `kind`: strictly, "2.7" or "5 MB" is no whole number."""
    if kind is str:
        return text
    try:
        return int(text.replace("_", ""))
    except ValueError:
        raise ConfigError(f"{where}: expected {_KIND_WORDS[kind]}, got {text!r}") from None
