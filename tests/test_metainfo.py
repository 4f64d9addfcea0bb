"""Dataset metainfo: built-ins equal MMPose's parsed metainfo, custom sets round-trip."""

import json

import keras
import numpy as np
import pytest

from keraspose.metainfo import DatasetMetainfo, load_metainfo


@pytest.mark.parametrize("name,num", [("coco", 17), ("mpii", 16)])
def test_builtin_matches_mmpose(reference_dir, name, num):
    ref = json.loads((reference_dir / "transforms" / f"{name}_metainfo.json").read_text())
    m = load_metainfo(name)
    assert m.dataset_name == ref["dataset_name"] == name
    assert m.num_keypoints == ref["num_keypoints"] == num
    assert {str(k): v for k, v in m.keypoint_id2name.items()} == ref["keypoint_id2name"]
    assert m.keypoint_name2id == ref["keypoint_name2id"]
    assert m.keypoint_names == [ref["keypoint_id2name"][str(i)] for i in range(num)]
    assert m.flip_indices == ref["flip_indices"]
    assert m.flip_pairs == ref["flip_pairs"]
    assert m.upper_body_ids == ref["upper_body_ids"]
    assert m.lower_body_ids == ref["lower_body_ids"]
    assert m.keypoint_colors == ref["keypoint_colors"]
    assert m.num_skeleton_links == ref["num_skeleton_links"]
    assert m.skeleton_links == ref["skeleton_links"]
    assert m.skeleton_link_colors == ref["skeleton_link_colors"]
    # The reference stores float32 values widened to float64.
    np.testing.assert_allclose(m.sigmas, ref["sigmas"], rtol=1e-6)
    np.testing.assert_allclose(m.joint_weights, ref["dataset_keypoint_weights"], rtol=1e-6)


def _mmpose_style_toy():
    return {
        "dataset_name": "toy",
        "keypoint_info": {
            "0": {"name": "head", "id": 0, "color": [1, 2, 3], "type": "upper", "swap": ""},
            "1": {"name": "l_hand", "id": 1, "color": [4, 5, 6], "type": "upper", "swap": "r_hand"},
            "2": {"name": "r_hand", "id": 2, "color": [7, 8, 9], "type": "upper", "swap": "l_hand"},
            "3": {"name": "foot", "id": 3, "color": [0, 0, 0], "type": "lower", "swap": ""},
        },
        "skeleton_info": {
            "0": {"link": ("head", "l_hand"), "id": 0, "color": [10, 20, 30]},
            "1": {"link": ("head", "r_hand"), "id": 1, "color": [40, 50, 60]},
            "2": {"link": ("head", "foot"), "id": 2, "color": [70, 80, 90]},
        },
        "joint_weights": [1.0, 1.5, 1.5, 2.0],
        "sigmas": [0.1, 0.2, 0.2, 0.3],
    }


def test_custom_from_mmpose_dict():
    m = DatasetMetainfo.from_dict(_mmpose_style_toy())
    assert m.keypoint_names == ["head", "l_hand", "r_hand", "foot"]
    assert m.flip_indices == [0, 2, 1, 3]
    assert m.flip_pairs == [[2, 1], [1, 2]]
    assert m.skeleton_links == [[0, 1], [0, 2], [0, 3]]
    assert m.skeleton_link_colors == [[10, 20, 30], [40, 50, 60], [70, 80, 90]]
    assert m.keypoint_colors[2] == [7, 8, 9]
    assert m.upper_body_ids == [0, 1, 2] and m.lower_body_ids == [3]
    assert m.sigmas == [0.1, 0.2, 0.2, 0.3] and m.joint_weights == [1.0, 1.5, 1.5, 2.0]


def test_custom_roundtrips(tmp_path):
    m = DatasetMetainfo.from_dict(_mmpose_style_toy())
    assert DatasetMetainfo.from_dict(m.to_dict()) == m
    path = tmp_path / "toy.json"
    m.to_json(path)
    assert DatasetMetainfo.from_json(path) == m
    assert load_metainfo(str(path)) == m
    # MMPose format via a JSON file (ids become string keys).
    mm_path = tmp_path / "toy_mmpose.json"
    mm_path.write_text(json.dumps(_mmpose_style_toy()))
    assert load_metainfo(mm_path) == m
    # Keras serialisation.
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(m))
    assert isinstance(restored, DatasetMetainfo) and restored == m


def test_mmpose_config_equals_builtin():
    # The compact coco.json was written from MMPose's coco config; parsing that
    # config's structure (names, swaps, links by name) must give the same thing.
    coco = load_metainfo("coco")
    names = coco.keypoint_names
    d = {
        "dataset_name": "coco",
        "keypoint_info": {
            i: {"name": n, "id": i, "color": coco.keypoint_colors[i],
                "type": "upper" if i in coco.upper_body_ids else "lower",
                "swap": "" if coco.flip_indices[i] == i else names[coco.flip_indices[i]]}
            for i, n in enumerate(names)
        },
        "skeleton_info": {
            j: {"link": (names[a], names[b]), "id": j, "color": coco.skeleton_link_colors[j]}
            for j, (a, b) in enumerate(coco.skeleton_links)
        },
        "joint_weights": coco.joint_weights,
        "sigmas": coco.sigmas,
    }
    assert DatasetMetainfo.from_dict(d) == coco


def _compact_toy(**overrides):
    d = {"dataset_name": "toy", "keypoint_names": ["a", "b", "c"], "flip_indices": [0, 2, 1],
         "sigmas": [0.1, 0.1, 0.1], "joint_weights": [1, 1, 1], "skeleton_links": [[0, 1]]}
    d.update(overrides)
    return d


@pytest.mark.parametrize(
    "overrides,field",
    [
        ({"flip_indices": [0, 2, 5]}, "flip_indices"),
        ({"flip_indices": [0, 2]}, "flip_indices"),
        ({"flip_indices": [1, 2, 0]}, "flip_indices"),
        ({"sigmas": [0.1, 0.1]}, "sigmas"),
        ({"joint_weights": [1, 1, 1, 1]}, "joint_weights"),
        ({"skeleton_links": [[0, 3]]}, "skeleton_links"),
        ({"keypoint_names": ["a", "a", "c"]}, "keypoint_names"),
        ({"keypoint_colors": [[0, 0, 0]]}, "keypoint_colors"),
        ({"upper_body_ids": [7]}, "upper_body_ids"),
        ({"bogus": 1}, "bogus"),
    ],
)
def test_bad_compact_dict_names_field(overrides, field):
    with pytest.raises(ValueError, match=field):
        DatasetMetainfo.from_dict(_compact_toy(**overrides))


def test_bad_mmpose_dict_names_field():
    d = _mmpose_style_toy()
    d["keypoint_info"]["1"]["swap"] = "nobody"
    with pytest.raises(ValueError, match="keypoint_info.*nobody"):
        DatasetMetainfo.from_dict(d)
    d = _mmpose_style_toy()
    d["sigmas"] = [0.1]
    with pytest.raises(ValueError, match="sigmas"):
        DatasetMetainfo.from_dict(d)
    d = _mmpose_style_toy()
    d["skeleton_info"]["0"]["link"] = ("head", "tail")
    with pytest.raises(ValueError, match="skeleton_info"):
        DatasetMetainfo.from_dict(d)
    with pytest.raises(ValueError, match="unknown metainfo"):
        load_metainfo("no_such_dataset")


def test_minimal_custom_defaults_roundtrip():
    m = DatasetMetainfo("toy", ["left", "right", "mid"], flip_indices=[1, 0, 2])
    assert m.flip_pairs == [[1, 0], [0, 1]]
    assert DatasetMetainfo.from_config(m.get_config()) == m
