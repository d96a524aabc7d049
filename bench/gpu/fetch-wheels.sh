#!/usr/bin/env bash
# Download into bench/gpu/wheels/ (ignored by git) the wheels bench/gpu/run.sh unpacks on a GPU
# machine without a package index: Keras (the version installed in .venv, the one tested here) and
# what it needs beyond what such machines carry (namex; optree, whose wheels are per Python
# version: 3.11 to 3.13, manylinux x86_64). Prints what travels with the working tree.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
wheels="$root/bench/gpu/wheels"
pip=("$root/.venv/bin/python" -m pip download --no-deps --quiet --dest "$wheels")
keras="$("$root/.venv/bin/python" -c 'from importlib.metadata import version; print(version("keras"))')"
optree="$("$root/.venv/bin/python" -c 'from importlib.metadata import version; print(version("optree"))')"
mkdir -p "$wheels"
"${pip[@]}" "keras==$keras" namex
for python_version in 3.11 3.12 3.13; do
    "${pip[@]}" --only-binary=:all: --implementation cp --python-version "$python_version" \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        "optree==$optree"
done
ls -l "$wheels"
echo "wheels: $(du -sh "$wheels" | cut -f1); the working tree that travels with them (tracked files):" \
     "$(cd "$root" && git ls-files -z | du -ch --files0-from=- | tail -n 1 | cut -f1) (the limit: 64 MiB in all)"
