"""The GPU benchmark: the engine on every Keras backend present (JAX, PyTorch),
float32 and float16, on the reference job and a 12 MP photo at the Classic preset,
against the reference loop measured on this project's CPU (cpu_reference.json).

Made for a machine with PyTorch or JAX on CUDA and neither TensorFlow nor a
package index: `bash bench/gpu/run.sh` unpacks the few wheels Keras needs
(bench/gpu/wheels/, made by fetch-wheels.sh) and runs `python -m bench.gpu`."""
