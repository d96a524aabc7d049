"""Errors the engine raises. Each carries the wire protocol's error code, so the
daemon can answer a client without a translation table."""

from deepdream_common.vocabulary import (BAD_REQUEST, CANCELLED, INTERNAL, INVALID_PARAMS, OUT_OF_MEMORY, TOO_LARGE,
                                         UNKNOWN_LAYER)


class DreamError(Exception):
    code = INTERNAL


class InvalidParams(DreamError):
    """A parameter is missing, of the wrong type or out of range."""

    code = INVALID_PARAMS

    def __init__(self, key, message):
        super().__init__(f"{key}: {message}")
        self.key = key


class UnknownLayer(InvalidParams):
    code = UNKNOWN_LAYER


class InvalidImage(DreamError):
    """The image array has a shape, dtype or value range the engine cannot dream."""

    code = BAD_REQUEST


class ImageTooLarge(InvalidImage):
    code = TOO_LARGE


class DreamCancelled(DreamError):
    """should_stop() returned true: the dream ended early, on purpose."""

    code = CANCELLED


class OutOfMemory(DreamError):
    code = OUT_OF_MEMORY

    def __init__(self, message, tile_size=None):
        super().__init__(message)
        self.tile_size = tile_size  # the side of the largest tile that did not fit, when known


class WeightsUnavailable(DreamError):
    """The model's weights could not be found, downloaded or read."""

    code = INTERNAL
