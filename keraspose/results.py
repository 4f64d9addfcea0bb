"""The results of keraspose's predict calls: plain numpy dataclasses, no Keras.

:class:`PoseResult` (``TopdownEstimator.predict``, ``PoseInferencer.predict``,
``keraspose.runtime``) and :class:`DetectionResult` (``RTMDetector.predict``,
``keraspose.runtime.ExportedDetector``).

Example:
>>> import numpy as np
>>> result = DetectionResult(np.zeros((1, 4), "float32"), np.ones(1, "float32"), np.zeros(1, "int64"),
...                          class_names=("person",))
>>> result.to_dict()["instances"][0]["class_name"]
'person'
"""

import dataclasses

import numpy as np

__all__ = ["DetectionResult", "PoseResult"]


@dataclasses.dataclass
class PoseResult:
    """The people found in one image. Arrays are numpy, image pixels.

    keypoints: (N, K, 2) x, y; keypoint_scores: (N, K); bboxes: (N, 4) xyxy;
    bbox_scores: (N,) detection scores when the boxes came from a detector
    (``keraspose.PoseInferencer``), else None.
    """

    keypoints: np.ndarray
    keypoint_scores: np.ndarray
    bboxes: np.ndarray
    image_path: str = None
    bbox_scores: np.ndarray = None

    def __len__(self):
        return len(self.keypoints)

    def to_dict(self):
        return {
            "image_path": self.image_path,
            "instances": [
                {
                    "bbox": self.bboxes[i].tolist(),
                    **({"bbox_score": float(self.bbox_scores[i])} if self.bbox_scores is not None else {}),
                    "keypoints": self.keypoints[i].tolist(),
                    "keypoint_scores": self.keypoint_scores[i].tolist(),
                }
                for i in range(len(self))
            ],
        }


@dataclasses.dataclass
class DetectionResult:
    """The objects found in one image (numpy, image pixels).

    boxes: (N, 4) float32 x1, y1, x2, y2; scores: (N,) float32; labels: (N,)
    int64 class indices, best score first.
    """

    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray
    image_path: str = None
    class_names: tuple = None

    def __len__(self):
        return len(self.boxes)

    def to_dict(self):
        names = self.class_names
        return {
            "image_path": self.image_path,
            "instances": [
                {
                    "bbox": self.boxes[i].tolist(),
                    "score": float(self.scores[i]),
                    "label": int(self.labels[i]),
                    **({"class_name": names[int(self.labels[i])]} if names else {}),
                }
                for i in range(len(self))
            ],
        }
