"""Images in, boxes checked, letterboxing: the keras-free image handling of the predict paths.

Shared by the Keras models (``TopdownEstimator``, ``RTMDetector``) and the
runtime-only path (``keraspose.runtime``), which must not import Keras.

Example:
>>> import numpy as np
>>> padded, factors = letterbox(np.zeros((240, 320, 3), "uint8"), (320, 320), 114)
>>> padded.shape, factors, int(padded[-1, 0, 0])
((320, 320, 3), (1.0, 1.0), 114)
"""

import os

import cv2
import numpy as np

__all__ = ["check_bboxes", "image_and_box_lists", "is_single_image", "letterbox", "load_image", "load_images"]


def load_image(image, name="image"):
    """An RGB uint8 ``(H, W, 3)`` array from a path or an array, or a clear error."""
    if isinstance(image, (str, os.PathLike)):
        path = os.fspath(image)
        if not os.path.exists(path):
            raise FileNotFoundError(f"{name}: image file not found: {path}")
        bgr = cv2.imread(path, cv2.IMREAD_COLOR)
        if bgr is None:
            raise ValueError(
                f"{name}: cannot decode {path} as an image (corrupt, empty, or not an image file). "
                "Pass a JPEG/PNG/BMP file or an RGB uint8 array."
            )
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    array = np.asarray(image)
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    if array.ndim != 3 or array.shape[2] != 3:
        raise ValueError(
            f"{name}: expected an RGB image of shape (H, W, 3) or a file path, got an array of shape {array.shape}"
        )
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise ValueError(f"{name}: the image is empty (shape {array.shape})")
    if array.dtype != np.uint8:
        raise ValueError(
            f"{name}: expected uint8 pixel values 0-255, got dtype {array.dtype}; "
            "convert with np.clip(x, 0, 255).astype('uint8')"
        )
    return array


def image_and_box_lists(images, bboxes, single, none_means="None"):
    """``predict``'s ``images``/``bboxes`` arguments as two lists of equal length.

    ``bboxes=None`` gives ``None`` for every image; a single image takes
    ``bboxes`` as its own boxes. ``none_means`` words what ``None`` does in
    the error about a count mismatch.
    """
    image_list = [images] if single else list(images)
    if bboxes is None:
        return image_list, [None] * len(image_list)
    if single:
        return image_list, [bboxes]
    box_list = list(bboxes)
    if len(box_list) != len(image_list):
        raise ValueError(
            f"bboxes: got boxes for {len(box_list)} images but {len(image_list)} images; "
            f"pass one (N, 4) array (or {none_means}) per image"
        )
    return image_list, box_list


def check_bboxes(bboxes, image_shape, name):
    """Person boxes of one image as float32 ``(N, 4)`` xyxy, or a clear error naming ``name``; ``None``: the whole image."""
    h, w = image_shape[:2]
    if bboxes is None:
        return np.array([[0, 0, w, h]], dtype=np.float32)
    boxes = np.asarray(bboxes, dtype=np.float32)
    if boxes.size == 0:
        return boxes.reshape(0, 4)
    if boxes.ndim == 1 and boxes.shape[0] == 4:
        boxes = boxes[None]
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"{name}: expected boxes of shape (N, 4) as x1, y1, x2, y2; got shape {boxes.shape}")
    if not np.isfinite(boxes).all():
        raise ValueError(f"{name}: boxes contain NaN or infinite values")
    for i, (x1, y1, x2, y2) in enumerate(boxes):
        if x2 <= x1 or y2 <= y1:
            raise ValueError(
                f"{name}[{i}] = {[float(v) for v in (x1, y1, x2, y2)]} has zero or negative area; "
                "boxes are x1, y1, x2, y2 (xyxy) with x2 > x1 and y2 > y1"
            )
        if x2 <= 0 or y2 <= 0 or x1 >= w or y1 >= h:
            raise ValueError(
                f"{name}[{i}] = {[float(v) for v in (x1, y1, x2, y2)]} lies outside the {w}x{h} image"
            )
    return boxes


def letterbox(image, input_size, pad_value):
    """One RGB uint8 image -> ``(input_h, input_w, 3)`` uint8 (still RGB) and ``(w_scale, h_scale)``.

    MMDetection's RTMDet test resize: keep the aspect ratio with MMCV's
    ``imrescale`` rule (``s = min(long / max(h, w), short / min(h, w))`` for
    the input size's long and short sides, new size
    ``int(w * s + 0.5) x int(h * s + 0.5)``, cv2 bilinear), then pad bottom
    and right with ``pad_value``. For a non-square ``input_size`` where that
    rule overflows, the image is fitted inside instead. The scale factors are
    resized / original size, as MMDetection's.
    """
    h, w = image.shape[:2]
    in_w, in_h = (int(v) for v in input_size)
    long_side, short_side = max(in_w, in_h), min(in_w, in_h)
    scale = min(long_side / max(h, w), short_side / min(h, w))  # MMCV's imrescale
    new_w, new_h = int(w * scale + 0.5), int(h * scale + 0.5)
    if new_w > in_w or new_h > in_h:
        # Only for a non-square input_size (MMDetection's Pad would fail):
        # fit the image inside it instead.
        scale = min(in_w / w, in_h / h)
        new_w, new_h = min(int(w * scale + 0.5), in_w), min(int(h * scale + 0.5), in_h)
    resized = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    padded = np.full((in_h, in_w, 3), pad_value, np.uint8)
    padded[:new_h, :new_w] = resized
    return padded, (new_w / w, new_h / h)


def is_single_image(images):
    """Whether ``images`` is one image (a path or an ``(H, W[, 3])`` array) rather than a list/batch of them."""
    return isinstance(images, (str, os.PathLike)) or (isinstance(images, np.ndarray) and images.ndim in (2, 3))


def load_images(images):
    """RGB uint8 arrays from one image or a list (errors name ``image`` or ``images[i]``)."""
    if is_single_image(images):
        return [load_image(images, "image")]
    if isinstance(images, np.ndarray) and images.ndim == 4:
        return [load_image(image, f"images[{i}]") for i, image in enumerate(images)]
    if not isinstance(images, (list, tuple)):
        raise ValueError(
            f"images: expected a path, an RGB uint8 (H, W, 3) array or a list of them, got {type(images).__name__}"
            + (f" of dtype {images.dtype} and shape {images.shape}" if isinstance(images, np.ndarray) else "")
        )
    return [load_image(image, f"images[{i}]") for i, image in enumerate(images)]
