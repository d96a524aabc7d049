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


def gpu_name():
    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None


def gpu_free_bytes():
    free, _total = torch.cuda.mem_get_info()
    return free


def is_out_of_memory(error):
    return isinstance(error, torch.OutOfMemoryError)
