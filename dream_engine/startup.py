"""Choosing Keras's backend, and loading it without its C++ start-up lines
on the terminal.

Keras fixes its backend (TensorFlow, JAX or PyTorch) when it loads, for the
whole process: a program calls use_backend() before anything loads Keras.
TensorFlow prints a few lines (oneDNN, CUDA stubs, a failed cuInit on a
machine without a GPU driver) to file descriptor 2 while it loads and when it
first looks for a GPU, before any log level applies. A program that owns its
terminal (the `deepdream` command, the daemon) calls load_quietly() once,
before its first DreamEngine; importing the engine itself never touches the
process's file descriptors. Standard library only until load_quietly runs."""

import contextlib
import os
import sys

from deepdream_common.vocabulary import BACKENDS


def use_backend(name):
    """Make `name` ("tensorflow", "jax" or "torch") the backend Keras loads in
    this process. Keras reads KERAS_BACKEND once, when it is first imported:
    choosing another backend after that is an error, not a quiet no-op."""
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}: choose one of {', '.join(BACKENDS)}")
    keras = sys.modules.get("keras")
    if keras is not None and keras.backend.backend() != name:
        raise RuntimeError(f"Keras is already loaded with the {keras.backend.backend()} backend; "
                           f"the backend ({name}) must be chosen before Keras loads")
    os.environ["KERAS_BACKEND"] = name


def load_quietly():
    """Load Keras's backend and the engine, and make the backend's first look
    for a GPU (where TensorFlow reports a missing CUDA driver), with file
    descriptor 2 pointed at /dev/null; later looks print nothing. Python
    exceptions propagate."""
    with quiet_native_stderr():
        from . import backends, engine  # noqa: F401  Keras, the backend and the model code load here

        backends.current().gpu_name()


@contextlib.contextmanager
def quiet_native_stderr():
    """File descriptor 2 on /dev/null for the duration (the whole process's:
    C++ code writes there directly, not through sys.stderr)."""
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
