"""DeepDream on InceptionV3: numpy in, numpy out. See DreamEngine."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow loads: its start-up chatter is not for users

from .engine import DreamEngine
from .errors import (DreamCancelled, DreamError, ImageTooLarge, InvalidImage, InvalidParams,
                     OutOfMemory, UnknownLayer, WeightsUnavailable)
from .params import DreamParams

__all__ = ["DreamEngine", "DreamParams", "DreamError", "DreamCancelled", "ImageTooLarge",
           "InvalidImage", "InvalidParams", "OutOfMemory", "UnknownLayer", "WeightsUnavailable"]
