"""DeepDream on InceptionV3: numpy in, numpy out. See DreamEngine."""

import contextlib
import os


@contextlib.contextmanager
def _quiet_native_stderr():
    """TensorFlow's C++ start-up lines (oneDNN, CUDA stubs) go to file
    descriptor 2 before any log level applies; users of the CLI and GIMP
    should not see them. Python exceptions still propagate normally."""
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    with open(os.devnull, "wb") as devnull:
        os.dup2(devnull.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
with _quiet_native_stderr():
    from .engine import DreamEngine, tf

    tf.config.list_physical_devices("GPU")  # the first look for a GPU reports a missing CUDA driver
from .errors import (DreamCancelled, DreamError, ImageTooLarge, InvalidImage, InvalidParams,
                     OutOfMemory, UnknownLayer, WeightsUnavailable)
from .params import DreamParams

__all__ = ["DreamEngine", "DreamParams", "DreamError", "DreamCancelled", "ImageTooLarge",
           "InvalidImage", "InvalidParams", "OutOfMemory", "UnknownLayer", "WeightsUnavailable"]
