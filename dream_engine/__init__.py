"""DeepDream on InceptionV3: numpy in, numpy out. See DreamEngine.

Importing the package loads nothing heavy and changes nothing but one
default: TensorFlow, when it loads (with the first use of DreamEngine), logs
errors only (TF_CPP_MIN_LOG_LEVEL=2 unless the environment says otherwise).
The C++ lines TensorFlow prints before any log level applies are a program's
business, not a library's: see dream_engine.startup."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow loads: it reads this once

from .errors import (
    DreamCancelled,
    DreamError,
    ImageTooLarge,
    InvalidImage,
    InvalidParams,
    OutOfMemory,
    UnknownLayer,
    WeightsUnavailable,
)
from .params import DreamParams

__all__ = [
    "DreamCancelled",
    "DreamEngine",
    "DreamError",
    "DreamParams",
    "ImageTooLarge",
    "InvalidImage",
    "InvalidParams",
    "OutOfMemory",
    "UnknownLayer",
    "WeightsUnavailable",
]


def __getattr__(name):
    # DreamEngine loads TensorFlow: only when it is asked for, so that errors,
    # params and startup stay importable in a moment (the daemon's I/O thread,
    # a program quieting TensorFlow's start-up first).
    if name == "DreamEngine":
        from .engine import DreamEngine

        return DreamEngine
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
