"""The TensorFlow backend (the default): GradientTape and tf.function."""

import tensorflow as tf


def value_and_gradient(loss_of, x):
    with tf.GradientTape() as tape:
        tape.watch(x)
        total, aux = loss_of(x)
    return aux, tape.gradient(total, x)


def compile_step(function, signature, model):
    """One graph for every size: the signature leaves the image sides open, so
    tf.function traces once per layer set, not once per image or tile shape."""
    del model  # the graph reads the model's variables itself
    return tf.function(function, input_signature=[tf.TensorSpec(shape, dtype) for shape, dtype in signature])


def gpu_name():
    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return None
    return tf.config.experimental.get_device_details(gpus[0]).get("device_name", gpus[0].name)


def gpu_free_bytes():
    from tensorflow.python.client import device_lib  # the one place TF reports a GPU's usable memory

    limit = next(device.memory_limit for device in device_lib.list_local_devices() if device.device_type == "GPU")
    return limit - tf.config.experimental.get_memory_info("GPU:0")["current"]


def is_out_of_memory(error):
    return isinstance(error, tf.errors.ResourceExhaustedError)
