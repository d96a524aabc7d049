"""The project's shared vocabulary: every small fact that the engine, the daemon,
the client library, the CLI and the GIMP plug-in must agree on, said once.

Standard library only: the engine imports it without ZeroMQ, GIMP's Python
imports it without numpy. docs/protocol.md is the prose form of the wire part."""

from typing import NamedTuple

# -- the wire --------------------------------------------------------------------------------------

PROTOCOL_VERSION = 1
DEFAULT_ENDPOINT = "tcp://127.0.0.1:5555"
MAX_HEADER_BYTES = 64 * 1024

PING, INFO, DREAM, CANCEL, ZOOM = "ping", "info", "dream", "cancel", "zoom"
OPS = (PING, INFO, DREAM, CANCEL, ZOOM)

# Error codes (docs/protocol.md, section 7), used by name so that a typo is a NameError.
BAD_REQUEST = "BAD_REQUEST"
UNSUPPORTED_VERSION = "UNSUPPORTED_VERSION"
UNKNOWN_OP = "UNKNOWN_OP"
INVALID_PARAMS = "INVALID_PARAMS"
UNKNOWN_LAYER = "UNKNOWN_LAYER"
IMAGE_DECODE = "IMAGE_DECODE"
TOO_LARGE = "TOO_LARGE"
QUEUE_FULL = "QUEUE_FULL"
NOT_READY = "NOT_READY"
CANCELLED = "CANCELLED"
OUT_OF_MEMORY = "OUT_OF_MEMORY"
SHUTTING_DOWN = "SHUTTING_DOWN"
INTERNAL = "INTERNAL"
ERROR_CODES = (BAD_REQUEST, UNSUPPORTED_VERSION, UNKNOWN_OP, INVALID_PARAMS, UNKNOWN_LAYER, IMAGE_DECODE,
               TOO_LARGE, QUEUE_FULL, NOT_READY, CANCELLED, OUT_OF_MEMORY, SHUTTING_DOWN, INTERNAL)

RAW, ENCODED = "raw", "encoded"  # the payload's `image.format`
IMAGE_FORMATS = (RAW, ENCODED)
DTYPE_SIZES = {"uint8": 1, "uint16": 2, "float32": 4}  # raw sample types and their bytes, little-endian
CHANNELS = (1, 2, 3, 4)  # gray, gray + alpha, RGB, RGBA

# Why a dream ended early (the daemon's word for it), its error code and what the client is told.
STOP_CODES = {"cancel": CANCELLED, "vanished": CANCELLED, "shutdown": SHUTTING_DOWN, "unread": CANCELLED}
STOP_MESSAGES = {
    "cancel": "the dream was cancelled, as asked",
    "vanished": "the client went away, so its dream was stopped",
    "shutdown": "the daemon is shutting down; send the dream again once it is back",
    "unread": "the client took none of the zoom's frames for the daemon's --frame-wait seconds, so the zoom was "
              "stopped; read each frame as it comes (the frames sent are kept: resume from the last one)",
}

# -- the engine and its limits ------------------------------------------------------------------------

PRECISIONS = ("auto", "float32", "bfloat16", "float16")
# Keras's backends the engine runs on (dream_engine/backends/); the choice is process-wide, made before Keras loads.
BACKENDS = ("tensorflow", "jax", "torch")
DEFAULT_BACKEND = "tensorflow"  # the required dependency; jax and torch are pyproject extras
MIN_SIDE = 75  # InceptionV3's smallest input (Keras documents it; its stride-2 stem needs it)
# The networks a dream may use (params "model"): Keras's ImageNet classifiers built in (dream_engine/networks.py),
# and the daemon's own model files, each named by its file stem in the daemon's models folder.
DEFAULT_MODEL = "inception_v3"
BUILT_IN_MODELS = ("inception_v3", "vgg16", "vgg19", "resnet50v2", "inception_resnet_v2", "xception")
MODEL_FILE_SUFFIXES = (".keras", ".h5")  # .keras first: it wins over a legacy .h5 of the same name
MAX_MODEL_NAME_CHARS = 200
# The largest image (width x height) a dream accepts unless told otherwise, in the daemon
# (--max-pixels) and in-process alike: an 8000 x 5000 photo; memory, not the network, is the bound.
DEFAULT_MAX_PIXELS = 40_000_000


# -- dream parameters: the table DreamParams validates against ----------------------------------------

class Param(NamedTuple):
    kind: type  # int or float (an int is also accepted where a float is)
    default: object
    low: object
    high: object
    # What the interfaces say of it, once: GIMP's dialog shows `label` (the underscore marks its mnemonic: the
    # CLI and the docs drop it) and `help` as the tooltip; `deepdream --help` shows `help` and adds the range.
    label: str = ""
    help: str = ""


AUTOMATIC_TILES = 0  # tile_size 0: the fewest tiles the memory budget allows; else low..high
# dream_size 0: the network works at the image's own size; else the most megapixels it works at (a
# larger image is dreamed at that size and the dream's change scaled up onto the original), low..high.
FULL_SIZE = 0
PARAMS = {
    "octaves": Param(int, 4, 1, 12, "Octa_ves", "How many scales are dreamed, from small to full size: more octaves "
                     "grow larger, more structured forms"),
    "octave_scale": Param(float, 1.3, 1.01, 4.0, "Octave sc_ale",
                          "Size ratio between two octaves (1.3 is classic)"),
    "steps": Param(int, 20, 1, 1000, "S_teps per octave", "Gradient ascent steps per octave; the strength, with "
                   "the step size: more steps give a stronger, more saturated dream and a longer wait"),
    "step_size": Param(float, 0.01, 1e-5, 1.0, "Step si_ze", "Strength of each step: small values are gentle, "
                       "large ones burn in quickly"),
    "tile_size": Param(int, AUTOMATIC_TILES, 128, 4096, "T_ile size", "The largest tile side, in pixels: it bounds "
                       "memory, not the image size. 0: automatic, tiles only where the daemon's memory budget needs "
                       "them"),
    "jitter": Param(int, 32, 0, 1024, "_Jitter", "Largest random shift per step, in pixels (hides tile seams)"),
    # The wire takes any unsigned 32-bit seed. GIMP's int arguments are signed 32-bit, so the
    # plug-in offers 0 .. 2**31 - 1 (GIMP_SEED_MAX), the lower half of the same seeds.
    "seed": Param(int, 0, 0, 2**32 - 1, "S_eed", "The same seed with the same values and image gives the same dream; "
                  "change it for a variation"),
    "dream_size": Param(float, FULL_SIZE, 0.1, 100.0, "_Dream size (megapixels)", "The largest size the network works "
                        "at: a larger image is dreamed at this size and the dream's change scaled up onto it, which "
                        "keeps its own detail: much quicker on a big photo, and the forms stay large. 0: full size"),
}


def param_help(param):
    """A parameter's help as a command line shows it: the words, the range and the default."""
    shown = [f"{value:g}" if isinstance(value, float) else f"{value:,}" for value in (param.low, param.high)]
    default = f"{param.default:g}" if isinstance(param.default, float) else param.default
    return f"{param.help} ({shown[0]} to {shown[1]}; default {default})"


# The values outside a parameter's range that switch it off, said on the wire and in every interface as "0 (...)".
OFF_VALUES = {"tile_size": (AUTOMATIC_TILES, "automatic"), "dream_size": (FULL_SIZE, "full size")}
GIMP_SEED_MAX = 2**31 - 1
DEFAULT_LAYERS = {"mixed2": 1.0, "mixed5": 1.0}  # the reference article's choice
LAYER_WEIGHTS = (-100.0, 100.0)
DEFAULT_DETAIL = True  # re-inject the detail that downscaling an octave loses
# How a step's gradient is normalized (dream_engine/normalization.py): "std" divides it by its standard
# deviation (the reference's); "laplacian" divides each band of its Laplacian pyramid by the band's own (TF's first
# DeepDream notebook): larger, smoother forms.
NORMALIZATIONS = ("std", "laplacian")
DEFAULT_NORMALIZATION = "std"

# -- previews: a dream request's optional `preview` map (docs/protocol.md, "Previews") -----------------

PREVIEW_INTERVAL = Param(float, 2.0, 0.5, 60.0)  # seconds between previews within an octave
PREVIEW_MAX_SIDE = Param(int, 512, 32, 2048)  # a preview's longer side, in pixels (never scaled up)
PREVIEW = {"interval": PREVIEW_INTERVAL, "max_side": PREVIEW_MAX_SIDE}

# -- the infinite zoom: a zoom request's optional `zoom` map (docs/protocol.md, "zoom") --------------------

ZOOM_OPTIONS = {
    "frames": Param(int, 10, 1, 10_000, "_Frames", "How many frames are dreamed after the start frame (the image as "
                    "it is)"),
    "scale": Param(float, 1.05, 1.0, 2.0, "Zoom _by (per frame)", "How much each frame magnifies the one before, about "
                   "its centre: 1.05 is a slow dive"),
    "rotate": Param(float, 0.0, -45.0, 45.0, "T_wist per frame (degrees)", "How far each frame turns, in degrees, "
                    "counter-clockwise; negative: clockwise"),
    "first_index": Param(int, 0, 0, 1_000_000),  # the request image's frame number: 0, or the last one to resume from
    "frame_delay_ms": Param(int, 100, 10, 60_000, "Frame dela_y (ms)", "How long each frame shows in the animation, in "
                            "milliseconds (the daemon echoes it; GIMP's frame layers and the GIF say it)"),
}

# Named parameter sets: the plug-in's Preset menu, and the benchmark's "Classic preset" job.
PRESETS = {
    "subtle": ("Subtle textures", {"layers": {"mixed1": 1.0, "mixed2": 0.5}, "octaves": 3, "octave_scale": 1.4,
                                   "steps": 10, "step_size": 0.008}),
    "classic": ("Classic DeepDream", {"layers": dict(DEFAULT_LAYERS), "octaves": 4, "octave_scale": 1.3,
                                      "steps": 20, "step_size": 0.01}),
    "deep": ("Deep, strange forms", {"layers": {"mixed5": 0.5, "mixed6": 1.0, "mixed7": 1.0}, "octaves": 5,
                                     "octave_scale": 1.4, "steps": 40, "step_size": 0.015}),
}
