"""DeepDream on InceptionV3: numpy in, numpy out. See DreamEngine."""

from .engine import DreamEngine
from .errors import (DreamCancelled, DreamError, ImageTooLarge, InvalidImage, InvalidParams,
                     OutOfMemory, UnknownLayer, WeightsUnavailable)
from .params import DreamParams

__all__ = ["DreamEngine", "DreamParams", "DreamError", "DreamCancelled", "ImageTooLarge",
           "InvalidImage", "InvalidParams", "OutOfMemory", "UnknownLayer", "WeightsUnavailable"]
