"""Codecs reproduce MMPose 1.3.2's encode/decode outputs (reference npz files)."""

import json

import keras
import numpy as np
import pytest

from keraspose.codecs import MSRAHeatmap, RegressionLabel, SimCCLabel, UDPHeatmap

CODECS = {
    "MSRAHeatmap": MSRAHeatmap,
    "UDPHeatmap": UDPHeatmap,
    "RegressionLabel": RegressionLabel,
    "SimCCLabel": SimCCLabel,
}
REFERENCES = [
    "msra_heatmap",
    "msra_heatmap_dark",
    "udp_heatmap",
    "udp_heatmap_combined",
    "regression_label",
    "simcc_label_gaussian",
    "simcc_label_standard",
]


def _load(reference_dir, name):
    spec = json.loads((reference_dir / "codecs" / f"{name}.json").read_text())
    ref = np.load(reference_dir / "codecs" / f"{name}.npz")
    codec = CODECS[spec["mmpose_class"]](**spec["kwargs"])
    cases = sorted({k.split("/")[0] for k in ref.files}, key=lambda c: int(c[4:]))
    return codec, ref, cases


def _decode(codec, ref, prefix):
    if f"{prefix}/in" in ref.files:
        return codec.decode(ref[f"{prefix}/in"])
    return codec.decode(ref[f"{prefix}/in_x"], ref[f"{prefix}/in_y"])


@pytest.mark.parametrize("name", REFERENCES)
def test_encode_matches_reference(reference_dir, name):
    codec, ref, cases = _load(reference_dir, name)
    assert len(cases) == 5
    for case in cases:
        encoded = codec.encode(ref[f"{case}/in/keypoints"], ref[f"{case}/in/keypoints_visible"])
        keys = [k for k in ref.files if k.startswith(f"{case}/encoded/")]
        assert {k.rsplit("/", 1)[1] for k in keys} <= set(encoded)
        for key in keys:
            expected = ref[key]
            got = np.asarray(encoded[key.rsplit("/", 1)[1]])
            assert got.shape == expected.shape, key
            scale = max(1.0, float(np.abs(expected).max()))
            np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4 * scale, err_msg=key)


@pytest.mark.parametrize("name", REFERENCES)
@pytest.mark.parametrize("variant", ["decode_clean", "decode_noisy"])
def test_decode_matches_reference(reference_dir, name, variant):
    codec, ref, cases = _load(reference_dir, name)
    for case in cases:
        prefix = f"{case}/{variant}"
        keypoints, scores = _decode(codec, ref, prefix)
        expected_kpts = ref[f"{prefix}/keypoints"]
        assert keypoints.shape == expected_kpts.shape
        np.testing.assert_allclose(keypoints, expected_kpts, rtol=0, atol=1e-3, err_msg=prefix)
        np.testing.assert_allclose(scores, ref[f"{prefix}/scores"], rtol=0, atol=1e-4, err_msg=prefix)


@pytest.mark.parametrize("name", ["msra_heatmap", "msra_heatmap_dark", "udp_heatmap", "udp_heatmap_combined"])
def test_batch_decode_equals_per_sample_decode(reference_dir, name):
    codec, ref, cases = _load(reference_dir, name)
    batch = np.stack([ref[f"{c}/decode_{v}/in"] for c in cases for v in ("clean", "noisy")])
    # Add a channel whose maximum is negative: no detection, location -1.
    batch[0, 0] = -np.abs(batch[0, 0]) - 0.1
    keypoints, scores = codec.batch_decode(batch)
    assert keypoints.shape == (len(batch), 17, 2) and scores.shape == (len(batch), 17)
    for i, sample in enumerate(batch):
        k1, s1 = codec.decode(sample)
        np.testing.assert_array_equal(keypoints[i], k1[0])
        np.testing.assert_array_equal(scores[i], s1[0])
    # And against the reference for the real samples.
    np.testing.assert_allclose(
        keypoints[1], ref[f"{cases[0]}/decode_noisy/keypoints"][0], rtol=0, atol=1e-3
    )


def test_invisible_and_off_map_keypoints_get_zero_weight():
    codec = MSRAHeatmap((192, 256), (48, 64), sigma=2.0)
    kpts = np.array([[[50.0, 50.0], [-100.0, 50.0], [60.0, 60.0]]])
    enc = codec.encode(kpts, np.array([[1.0, 1.0, 0.0]]))
    assert enc["keypoint_weights"].tolist() == [[1.0, 0.0, 0.0]]
    assert enc["heatmaps"][1].max() == 0 and enc["heatmaps"][2].max() == 0
    # A peak on heatmap pixel (12.5 -> 13, 12.5 -> 13) with value 1.
    assert enc["heatmaps"][0, 13, 13] == 1.0


@pytest.mark.parametrize(
    "codec",
    [
        MSRAHeatmap((192, 256), (48, 64), sigma=2.0, unbiased=True, blur_kernel_size=11),
        UDPHeatmap((192, 256), (48, 64), heatmap_type="combined", radius_factor=0.05),
        RegressionLabel((192, 256)),
        SimCCLabel((192, 256), sigma=(4.9, 5.66), normalize=False, use_dark=True),
    ],
)
def test_codec_serialisation_roundtrip(codec):
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(codec))
    assert type(restored) is type(codec)
    assert restored.get_config() == codec.get_config()
    assert type(codec).from_config(codec.get_config()).get_config() == codec.get_config()


def test_bad_arguments():
    with pytest.raises(ValueError, match="heatmap_type"):
        UDPHeatmap((192, 256), (48, 64), heatmap_type="offset")
    with pytest.raises(ValueError, match="smoothing_type"):
        SimCCLabel((192, 256), smoothing_type="laplace")
    with pytest.raises(ValueError, match="keypoints_visible"):
        MSRAHeatmap((192, 256), (48, 64), sigma=2.0).encode(np.zeros((1, 3, 2)), np.ones((1, 4)))
