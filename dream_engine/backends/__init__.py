"""What differs between Keras's backends, one module each (tensorflow.py,
jax.py, torch.py): how a gradient is taken, how a step is compiled, which
device runs it and how it reports running out of memory. Everything else (the
model, weights files, tiling, parameters, results) is the same code for all.

Keras fixes its backend when it loads (KERAS_BACKEND; see
dream_engine.startup.use_backend), so the module is chosen by what Keras loaded.

Each module provides:
- value_and_gradient(loss_of, x) -> (aux, d total / d x), where
  loss_of(x) -> (total, aux) is written with keras.ops;
- compile_step(function, signature, model) -> a callable taking numpy arrays or
  this backend's tensors; `signature` lists (shape, dtype) per argument, None
  for a side of any size; `model` is the Keras model the function calls;
- gpu_name() -> the first GPU's name, or None where the backend sees none;
- gpu_free_bytes() -> what the backend can still allocate on that GPU;
- is_out_of_memory(error) -> whether an exception means the device ran out."""

import importlib

import keras


def current():
    """The module of the backend Keras runs on in this process."""
    return importlib.import_module(f"{__name__}.{keras.backend.backend()}")
