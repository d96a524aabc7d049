#!/usr/bin/env bash
# Makes the gallery (docs/gallery/*.jpg, zoom.gif) with the commands docs/artists.md shows, dreamed by a
# trained network that works offline: HED's VGG16 blocks (bench/trained_network.py), built into
# $XDG_CACHE_HOME/deepdream/models/ on first use. From the repository root: bash docs/gallery/make.sh
# The inputs are synthetic (bench/photo.py): no photograph with a known licence ships with the venv.
set -euo pipefail
cd "$(dirname "$0")/../.."
PATH="$PWD/.venv/bin:$PATH"
cd docs/gallery
start=$SECONDS

# The input (480 x 320, photo-like), the guide (black and white stripes, 240 x 240) and the trained model, $HED.
HED=$(PYTHONPATH=../.. python - <<'EOF'
import numpy as np
from PIL import Image

from bench.photo import photo
from bench.trained_network import cached_hed_vgg16

Image.fromarray(photo(480, 320, seed=3)).save("before.jpg", quality=95)
y, x = np.mgrid[0:240, 0:240]
stripes = np.where(np.sin((x + y) / 5.0) > 0, 255, 0).astype(np.uint8)
Image.fromarray(stripes).convert("RGB").save("guide.jpg", quality=95)
print(cached_hed_vgg16())
EOF
)
QUICK="--octaves 3 --octave-scale 1.4 --steps 10 --step-size 0.03 --seed 1"  # unquoted below: split into options

set -x
deepdream dream before.jpg layers.jpg --in-process -q --model "$HED" --layers block4_conv3:1 $QUICK
deepdream dream before.jpg channel.jpg --in-process -q --model "$HED" --layers "block4_conv3[12]:1" $QUICK
deepdream dream before.jpg guided.jpg --in-process -q --model "$HED" --layers block4_conv3:1 --guide guide.jpg $QUICK
deepdream dream before.jpg laplacian.jpg --in-process -q --model "$HED" --layers block4_conv3:1 --normalize laplacian $QUICK
deepdream dream before.jpg network.jpg --in-process -q --model inception_v3 --weights random --layers mixed3:1 $QUICK
rm -rf zoom-start.jpg zoom.gif zoom.gif.frames
python -c "from PIL import Image; Image.open('before.jpg').resize((240, 160)).save('zoom-start.jpg', quality=95)"
deepdream zoom zoom-start.jpg zoom.gif --in-process -q --model "$HED" --layers block4_conv3:1 --frames 4 --zoom 1.1 --rotate 2 --frame-delay 300 $QUICK
rm -rf zoom-start.jpg zoom.gif.frames
set +x
echo "docs/gallery made in $((SECONDS - start)) s"
