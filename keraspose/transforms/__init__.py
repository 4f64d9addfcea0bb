"""Top-down data transforms: box/keypoint geometry functions and the
results-dict pipeline transforms (MMPose semantics, numpy + OpenCV)."""

from keraspose.transforms.functional import (
    bbox_cs2xyxy,
    bbox_xywh2xyxy,
    bbox_xyxy2cs,
    bbox_xyxy2xywh,
    fix_aspect_ratio,
    flip_bbox,
    flip_coordinates,
    flip_heatmaps,
    flip_keypoints,
    get_udp_warp_matrix,
    get_warp_matrix,
    warp_affine,
    warp_keypoints,
)
__all__ = [
    "bbox_cs2xyxy",
    "bbox_xywh2xyxy",
    "bbox_xyxy2cs",
    "bbox_xyxy2xywh",
    "fix_aspect_ratio",
    "flip_bbox",
    "flip_coordinates",
    "flip_heatmaps",
    "flip_keypoints",
    "get_udp_warp_matrix",
    "get_warp_matrix",
    "warp_affine",
    "warp_keypoints",
    "Compose",
    "GenerateTarget",
    "GetBBoxCenterScale",
    "LoadImage",
    "PhotometricDistortion",
    "RandomBBoxTransform",
    "RandomFlip",
    "RandomHalfBody",
    "TopdownAffine",
    "Transform",
    "truncated_normal",
]

# The pipeline transforms use Keras (serialisation); they load on first use
# so that the geometry functions (keraspose.runtime's crops) stay keras-free.
_PIPELINE = frozenset(__all__[__all__.index("Compose"):])


def __getattr__(name):
    if name in _PIPELINE:
        from keraspose.transforms import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module 'keraspose.transforms' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
