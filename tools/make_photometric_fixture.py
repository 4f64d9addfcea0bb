"""Golden outputs of MMPose 1.3.2's PhotometricDistortion for fixed random parameters.

Run with the MMPose reference venv's python (see ../shared/tools/mmpose_reference_env.sh):

    .mmpose-ref/bin/python tools/make_photometric_fixture.py ../shared tests/fixtures/photometric_mmpose.npz

Takes 64x48 patches of coco_mini photos, replaces the transform's random
draw (``_random_flags``) by fixed parameter sets covering every branch
(brightness, contrast modes 0 and 1, each HSV mode, negative and positive hue
shifts that wrap around, channel swaps), and saves inputs, parameters and
MMPose's outputs. keraspose's ``PhotometricDistortion.apply`` must reproduce
them exactly.
"""

import json
import sys
from pathlib import Path

import cv2
import numpy as np
from mmpose.datasets.transforms.common_transforms import PhotometricDistortion

shared, out = Path(sys.argv[1]), Path(sys.argv[2])
photos = sorted((shared / "data/coco_mini/train2017").glob("*.jpg"))[:4]
patches = [cv2.imread(str(p))[100:164, 100:148].copy() for p in photos]

# (contrast_mode, brightness_flag, contrast_flag, hsv_mode, swap_flag,
#  brightness_beta, contrast_alpha, saturation_alpha, hue_delta, swap_order)
param_sets = [
    (0, 1, 1, 0, 0, 20.7, 1.3, 1.0, 0, [0, 1, 2]),
    (1, 1, 1, 0, 0, -25.2, 1.45, 1.0, 0, [0, 1, 2]),
    (1, 0, 1, 1, 0, 0.0, 0.6, 1.4, 0, [0, 1, 2]),
    (0, 0, 0, 2, 0, 0.0, 1.0, 1.0, -17, [0, 1, 2]),
    (0, 0, 0, 2, 0, 0.0, 1.0, 1.0, 17, [0, 1, 2]),
    (1, 1, 1, 3, 1, 31.0, 0.55, 0.7, 9, [2, 0, 1]),
    (0, 1, 0, 3, 1, -3.5, 1.2, 1.49, -5, [1, 2, 0]),
]
inputs, outputs, params = [], [], []
for i, p in enumerate(param_sets):
    t = PhotometricDistortion()
    flags = tuple(p[:9]) + (np.array(p[9]),)
    t._random_flags = lambda flags=flags: flags  # fixed draw instead of np.random
    img = patches[i % len(patches)]
    inputs.append(img)
    outputs.append(t.transform({"img": img.copy()})["img"])
    params.append(p)
np.savez_compressed(out, inputs=np.stack(inputs), outputs=np.stack(outputs), params=json.dumps(params))
print(f"wrote {out}: {len(params)} cases")
