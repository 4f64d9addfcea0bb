"""Data-parallel training on TensorFlow (tf.distribute.MirroredStrategy) equals one device.

A subprocess splits the host CPU into two logical devices and trains the
tiny MMPose HRNet on coco_mini crops for two steps at global batch 4 twice
from the same weights: on one device, then under ``MirroredStrategy`` over
both (each replica holds 2 samples). Two things make the replicas train as
one device, and this test fails without either:

* the loss: a strategy *sums* the replicas' gradients, so each replica's
  loss is divided by the replica count (``TopdownEstimator.compute_loss``,
  Keras' convention). Unscaled, the logged loss read 2x and the updates
  were 2x too large (measured over three steps: weights 129% of an update
  away from one device);
* BatchNorm: under a strategy keraspose's BatchNorm takes the global
  batch's statistics (all-reduced, MMPose's SyncBN). With per-replica
  statistics (2 samples each) the losses differ by percents from the first
  step and the weights ended 139% of an update away.

With both, the losses match to float tolerance (measured 5.5e-6 relative:
the synchronised BatchNorm sums in another order than TensorFlow's fused
kernel) and the weights stay within the float noise floor of this network,
measured in the same run by training on one device with every batch's
samples in reverse order (two steps: floor 9.8%, mirrored 13.8%).

Only ``fit`` splits the global batch over the replicas (Keras'
``train_on_batch`` hands every replica the whole batch), so the test trains
with ``fit`` and recovers each step's loss from the logged running mean.
The model runs eagerly: the same arithmetic, without tracing the replicated
step with its collectives (measured 40 s of tracing on the 2-core box).

Runs in the TensorFlow suite only (the subprocess is TensorFlow whatever the suite's backend).
"""

import json
import os
import subprocess
import sys

import keras
import pytest

pytestmark = pytest.mark.skipif(
    keras.config.backend() != "tensorflow", reason="MirroredStrategy is tested in the KERAS_BACKEND=tensorflow run"
)

SCRIPT = r"""
import json, sys
import numpy as np
import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import keras

sys.path.insert(0, {tests!r})
from keraspose.convert import from_mmpose
from keraspose.metainfo import load_metainfo
from keraspose.training import TopdownPyDataset, train_pipeline
from coco_mini import coco_mini_training_samples

models = {models!r}
samples = coco_mini_training_samples({data!r} + "/coco_mini")[:8]


class Batches(keras.utils.PyDataset):
    def __init__(self, batches):
        super().__init__()
        self.batches = batches

    def __len__(self):
        return len(self.batches)

    def __getitem__(self, i):
        return self.batches[i]


def reverse(batch):
    x, y = batch
    return x[::-1].copy(), {{k: v[::-1].copy() for k, v in y.items()}}


def weights(model):
    # Keyed by the path inside the model (Keras numbers the second model's name).
    return {{v.path.split("/", 1)[1]: np.asarray(keras.ops.convert_to_numpy(v)) for v in model.weights}}


def train(strategy, reversed_batches=False):
    with strategy.scope():
        model = from_mmpose(models + "/tiny_hrnet_coco_config.json", models + "/tiny_hrnet_coco.pth")
        # SGD at a small rate, as in test_data_parallel: updates linear in the gradient.
        model.compile(optimizer=keras.optimizers.SGD(1e-4), run_eagerly=True)
    data = TopdownPyDataset(samples, train_pipeline(model.head.codec, load_metainfo("coco"), seed=0),
                            model.preprocess, batch_size=4, seed=0)
    initial = weights(model)
    batches = [reverse(data[i]) if reversed_batches else data[i] for i in range(len(data))]
    means = []
    log = keras.callbacks.LambdaCallback(on_train_batch_end=lambda i, logs: means.append(float(logs["loss"])))
    model.fit(Batches(batches), epochs=1, shuffle=False, verbose=0, callbacks=[log])
    losses = [(i + 1) * m - i * (means[i - 1] if i else 0.0) for i, m in enumerate(means)]
    return losses, weights(model), initial


def update_err(other, single, initial):
    # max over variables of |other - single|, relative to the variable's largest training update
    return max(float(np.abs(other[k] - single[k]).max() / max(np.abs(single[k] - initial[k]).max(), 1e-12))
               for k in single)


one_device = tf.distribute.get_strategy()
single_losses, single, initial = train(one_device)
_, reordered, _ = train(one_device, reversed_batches=True)
mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
assert mirrored.num_replicas_in_sync == 2
mirrored_losses, replicated, _ = train(mirrored)
print(json.dumps({{"single": single_losses, "mirrored": mirrored_losses,
                  "mirrored_err": update_err(replicated, single, initial),
                  "reordered_err": update_err(reordered, single, initial),
                  "statistics_moved": all(not np.array_equal(single[k], initial[k]) for k in single if "moving" in k)}}))
"""


@pytest.mark.slow
def test_mirrored_strategy_matches_one_device(reference_dir, data_dir):
    tests = os.path.dirname(os.path.abspath(__file__))
    script = SCRIPT.format(tests=tests, models=str(reference_dir / "models"), data=str(data_dir))
    env = dict(os.environ, KERAS_BACKEND="tensorflow")
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert len(result["single"]) == 2 and result["statistics_moved"], result
    for a, b in zip(result["single"], result["mirrored"]):
        assert b == pytest.approx(a, rel=1e-4), result
    assert result["reordered_err"] < 0.2, result
    assert result["mirrored_err"] <= 2 * result["reordered_err"] + 1e-6, result
