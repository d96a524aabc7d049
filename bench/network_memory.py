"""Step memory per megapixel of each built-in network against InceptionV3's:
the figures behind dream_engine.model.STEP_MEMORY_FACTOR.

    .venv/bin/python -m bench.network_memory vgg16 float32   # one network per process

Seeded random weights, the network's default targets; the rise of the peak
resident memory (VmHWM) over the first step at 724x724 and at 1448x1448
(tracing included), TensorFlow. The
difference between the two rises, over the difference in megapixels, is the
step's memory per megapixel; a network's factor is its figure over InceptionV3's."""

import sys

import numpy as np

from bench.memory import peak_rss_mib

SIDES = (724, 1448)


def step_rises(name, precision):
    """{side: MiB the peak resident memory rose by over the first step at side x side} (TensorFlow)."""
    import tensorflow as tf

    from dream_engine import networks

    network = networks.load_built_in(name, "random", precision)
    features = networks.feature_model(network, network.default_layers)

    @tf.function
    def gradient(image):
        with tf.GradientTape() as tape:
            tape.watch(image)
            loss = sum(tf.reduce_mean(tf.cast(activations, "float32"))
                       for activations in tf.nest.flatten(features(image, training=False)))
        return tape.gradient(loss, image)

    rises = {}
    for side in SIDES:
        image = tf.constant(np.random.default_rng(0).random((1, side, side, 3), np.float32) * 2 - 1)
        before = peak_rss_mib()
        gradient(image)
        rises[side] = peak_rss_mib() - before
    return rises


def main(name, precision="float32"):
    rises = step_rises(name, precision)
    megapixels = (SIDES[1] ** 2 - SIDES[0] ** 2) / 1e6
    per_megapixel = (rises[SIDES[1]] - rises[SIDES[0]]) / megapixels
    print(f"{name} {precision}: +{rises[SIDES[0]]:.0f} MiB at {SIDES[0]} px, +{rises[SIDES[1]]:.0f} MiB at "
          f"{SIDES[1]} px: {per_megapixel:.0f} MiB per megapixel")


if __name__ == "__main__":
    main(*sys.argv[1:])
