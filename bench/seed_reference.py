"""The reference article's DeepDream, as it prints it (docs/design.md, section 1).

A deliberately separate implementation: calc_loss, the DeepDream tf.Module with
its tf.function, run_deep_dream, normalize and the octave loop are the
article's, with only the display calls removed and the losses recorded. It
must not share code with dream_engine: it is what the engine is measured
against. The one thing taken from the project is the random-weights seed, so
that both sides run the very same network."""

import numpy as np
import tensorflow as tf

from dream_engine.model import RANDOM_SEED

OCTAVE_SCALE = 1.30
LAYER_NAMES = ["mixed2", "mixed5"]
STEPS_PER_OCTAVE = 50
STEP_SIZE = 0.01


def build_dream_model(weights="random"):
    if weights == "random":
        tf.keras.utils.set_random_seed(RANDOM_SEED)
        base_model = tf.keras.applications.InceptionV3(include_top=False, weights=None)
    else:
        base_model = tf.keras.applications.InceptionV3(include_top=False, weights=weights)
    layers = [base_model.get_layer(name).output for name in LAYER_NAMES]
    return tf.keras.Model(inputs=base_model.input, outputs=layers)


def normalize(img):
    img = 255 * (img + 1.0) / 2.0
    return tf.cast(img, tf.uint8)


def calc_loss(img, model):
    img_batch = tf.expand_dims(img, axis=0)
    layer_activations = model(img_batch)
    if len(layer_activations) == 1:
        layer_activations = [layer_activations]
    losses = []
    for act in layer_activations:
        loss = tf.math.reduce_mean(act)
        losses.append(loss)
    return tf.reduce_sum(losses)


class DeepDream(tf.Module):
    def __init__(self, model):
        self.model = model

    @tf.function(
        input_signature=(
            tf.TensorSpec(shape=[None, None, 3], dtype=tf.float32),
            tf.TensorSpec(shape=[], dtype=tf.int32),
            tf.TensorSpec(shape=[], dtype=tf.float32),
        )
    )
    def __call__(self, img, steps, step_size):
        loss = tf.constant(0.0)
        for n in tf.range(steps):
            with tf.GradientTape() as tape:
                tape.watch(img)
                loss = calc_loss(img, self.model)
            gradients = tape.gradient(loss, img)
            gradients /= tf.math.reduce_std(gradients) + 1e-8
            img = img + gradients * step_size
            img = tf.clip_by_value(img, -1, 1)
        return loss, img


def run_deep_dream(deepdream, img, steps=100, step_size=0.01, losses=None):
    img = tf.keras.applications.inception_v3.preprocess_input(img)
    img = tf.convert_to_tensor(img)
    step_size = tf.convert_to_tensor(step_size)
    steps_remaining = steps
    step = 0
    while steps_remaining:
        if steps_remaining > 100:
            run_steps = tf.constant(100)
        else:
            run_steps = tf.constant(steps_remaining)
        steps_remaining -= run_steps
        step += run_steps
        loss, img = deepdream(img, run_steps, tf.constant(step_size))
        if losses is not None:
            losses.append(float(loss))  # the article prints it; we keep it
    return normalize(img)


def octave_dream(deepdream, original_img, steps=STEPS_PER_OCTAVE, losses=None):
    """The article's octave loop: sizes base * 1.3**n for n in -2..2, 50 steps each."""
    img = tf.constant(np.array(original_img))
    base_shape = tf.shape(img)[:-1]
    float_base_shape = tf.cast(base_shape, tf.float32)
    for n in range(-2, 3):
        new_shape = tf.cast(float_base_shape * (OCTAVE_SCALE**n), tf.int32)
        img = tf.image.resize(img, new_shape).numpy()
        img = run_deep_dream(deepdream, img=img, steps=steps, step_size=STEP_SIZE, losses=losses)
    img = tf.image.resize(img, new_shape)
    img = tf.image.convert_image_dtype(img / 255.0, dtype=tf.uint8)
    return img.numpy()


def warm_up(deepdream):
    """Trace the tf.function once (its input signature makes that the only
    trace), so the timed loop is as warm as the daemon is."""
    noise = np.random.default_rng(0).uniform(-1, 1, (96, 96, 3)).astype(np.float32)
    deepdream(tf.constant(noise), tf.constant(1), tf.constant(STEP_SIZE))
