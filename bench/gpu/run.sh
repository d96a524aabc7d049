#!/usr/bin/env bash
# The GPU benchmark, on a machine with PyTorch or JAX on CUDA and neither TensorFlow nor a
# package index (what it measures: bench/gpu/__init__.py):
#
#   bash bench/gpu/run.sh [--quick] [other options of python -m bench.gpu]
#
# Keras and the small packages it needs travel as wheels in bench/gpu/wheels/ (made here by
# bench/gpu/fetch-wheels.sh); each one the machine lacks is unpacked into a temporary folder put
# on PYTHONPATH. Results: $OUT/gpu-bench.md and gpu-bench.json ($OUT unset: bench/out/gpu/).
# PYTHON picks the interpreter (default python3: on the GPU machines, the one with PyTorch and JAX).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
wheels="$root/bench/gpu/wheels"
python="${PYTHON:-python3}"
site="$(mktemp -d)"
trap 'rm -rf "$site"' EXIT

has() { "$python" -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('$1') is None)" 2>/dev/null; }

tag="$("$python" -c 'import sys; print("cp%d%d" % sys.version_info[:2])')"
echo "python: $("$python" -V 2>&1) ($tag), $(command -v "$python")"
# Keras's own needs (its wheel's Requires-Dist) and optree's; module:wheel-name.
for pair in typing_extensions:typing_extensions packaging:packaging absl:absl_py rich:rich h5py:h5py \
            ml_dtypes:ml_dtypes optree:optree namex:namex keras:keras; do
    module="${pair%%:*}" wheel="${pair#*:}"
    if has "$module"; then
        echo "present: $module"
        continue
    fi
    file="$(ls "$wheels/$wheel"-*-py3-none-any.whl "$wheels/$wheel"-*-"$tag"-*.whl 2>/dev/null | head -n 1 || true)"
    if [ -z "$file" ]; then
        echo "run.sh: $module is missing and $wheels has no wheel of it for $tag (see bench/gpu/fetch-wheels.sh)" >&2
        exit 1
    fi
    "$python" -m zipfile -e "$file" "$site"
    echo "unpacked: $(basename "$file")"
done
for module in tensorflow zmq jax torch; do
    has "$module" && echo "importable: $module" || echo "not importable: $module"
done
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true

export PYTHONPATH="$site:$root:$root/daemon${PYTHONPATH:+:$PYTHONPATH}"
# JAX takes GPU memory as a step needs it (as the daemon lets TensorFlow grow), not 75% at start.
export XLA_PYTHON_CLIENT_PREALLOCATE="${XLA_PYTHON_CLIENT_PREALLOCATE:-false}"
cd "$root"
"$python" -m bench.gpu "$@"
