"""The PyTorch backend: autograd, run eagerly.

Eager, not torch.compile: the network's time is in its convolutions, which
are the same oneDNN (CPU) or cuDNN (GPU) kernels either way, while compiling
would specialize on each new image shape as jax.jit does. torch.compile was
not measured here (bench/README.md, "Backends")."""

import keras
import numpy as np
import torch


def value_and_gradient(loss_of, x):
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        total, aux = loss_of(x)
        (gradient,) = torch.autograd.grad(total, x)
    return aux.detach(), gradient


def compile_step(function, signature, model):
    """The function itself, with numpy arguments made tensors on the model's
    device and no autograd graph outside value_and_gradient. The model's
    weights take no gradient: only the image does."""
    del signature
    for variable in model.variables:
        variable.value.requires_grad_(False)

    def call(*args):
        with torch.no_grad():
            return function(*[_argument(arg) for arg in args])

    return call


def _argument(value):
    """numpy as the step takes it: integer vectors (the roll's shifts) as
    Python ints, which torch.roll requires; other arrays as tensors."""
    if isinstance(value, np.ndarray) and value.dtype.kind == "i":
        return tuple(value.tolist())
    if isinstance(value, (np.ndarray, np.generic)):
        return keras.ops.convert_to_tensor(value)
    return value


def device():
    """Where Keras puts the model and its tensors: $KERAS_TORCH_DEVICE, else Apple's GPU (mps), else CUDA,
    else the CPU; Keras decides it when it loads (keras/src/backend/torch/core.py), so it is asked, not guessed."""
    from keras.src.backend.torch.core import get_device

    return str(get_device())


APPLE_GPU = "Apple GPU (Metal, mps)"


def gpu_name():
    where = device()
    if where.startswith("cuda"):
        return torch.cuda.get_device_name(0)
    return APPLE_GPU if where == "mps" else None


def gpu_free_bytes():
    if device() == "mps":
        # Apple's GPU shares the machine's memory: Metal's recommended working set for this process, less
        # what its allocator already holds.
        return max(0, torch.mps.recommended_max_memory() - torch.mps.driver_allocated_memory())
    free, _total = torch.cuda.mem_get_info()
    return free


def is_out_of_memory(error):
    # MPS reports running out as a RuntimeError ("MPS backend out of memory"), not torch's OutOfMemoryError.
    return isinstance(error, torch.OutOfMemoryError) or (
        isinstance(error, RuntimeError) and "MPS backend out of memory" in str(error))
