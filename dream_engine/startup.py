"""Loading TensorFlow without its C++ start-up lines on the terminal.

TensorFlow prints a few lines (oneDNN, CUDA stubs, a failed cuInit on a
machine without a GPU driver) to file descriptor 2 while it loads and when it
first looks for a GPU, before any log level applies. A program that owns its
terminal (the `deepdream` command, the daemon) calls load_quietly() once,
before its first DreamEngine; importing the engine itself never touches the
process's file descriptors. Standard library only until load_quietly runs."""

import contextlib
import os


def load_quietly():
    """Load TensorFlow and the engine, and make TensorFlow's first look for a
    GPU (which reports a missing CUDA driver), with file descriptor 2 pointed
    at /dev/null; later looks print nothing. Python exceptions propagate."""
    with quiet_native_stderr():
        import tensorflow as tf

        from . import engine  # noqa: F401  Keras and the model code load here too

        tf.config.list_physical_devices("GPU")


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
