"""The JAX backend: jax.value_and_grad and jax.jit.

The model's variables are the jitted function's arguments (Keras's
StatelessScope maps each variable to its value while the function traces),
not constants baked into the program: XLA then compiles the step without
folding 22 million weights into it. jax.jit compiles once per input shape,
so each new octave or tile size compiles once (then it is cached)."""

import jax
import keras


def value_and_gradient(loss_of, x):
    (_, aux), gradient = jax.value_and_grad(loss_of, has_aux=True)(x)
    return aux, gradient


def compile_step(function, signature, model):
    del signature  # jax.jit specializes on each call's shapes
    variables = model.variables

    def with_variables(values, *args):
        with keras.StatelessScope(state_mapping=list(zip(variables, values, strict=True))):
            return function(*args)

    jitted = jax.jit(with_variables)
    return lambda *args: jitted([variable.value for variable in variables], *args)


def gpu_name():
    device = jax.devices()[0]
    return device.device_kind if device.platform == "gpu" else None


def gpu_free_bytes():
    stats = jax.devices()[0].memory_stats() or {}
    return stats.get("bytes_limit", 0) - stats.get("bytes_in_use", 0)


def is_out_of_memory(error):
    # XLA reports every runtime failure with one exception type; the status code tells them apart.
    return isinstance(error, jax.errors.JaxRuntimeError) and "RESOURCE_EXHAUSTED" in str(error)
