"""Shared fixtures: where the golden reference data and the sample datasets live.

The reference data is produced by the real MMPose 1.3.2 and lives outside the
repository, in ``../shared`` next to the checkout (override with the
``KERASPOSE_SHARED`` environment variable). Tests that need it fail with a
clear message when it is missing rather than being skipped: a skipped parity
test would look like a passing one.
"""

import os
from pathlib import Path

# Before torch is imported (by keras below): with OpenMP's default spinning
# waits, every torch operator's barrier waits for threads that other
# processes on a shared machine have descheduled. Measured on the 2-core CI
# box under load: a tiny CSPNeXt forward 0.76 s -> 6 ms, a training-mode
# call 5.0 s -> 26 ms. Subprocesses of the tests inherit it.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# JAX compiles every eager op, every random initializer and every jitted
# step once per new shape, and the suite builds many small models: most of
# its JAX time is XLA compiling. LLVM's -O0 compiles ~2.6x faster; the
# convolutions are library calls either way, so only fused elementwise code
# runs slower. Measured on the 2-core box: the tiny-HRNet conversion 45 s ->
# 16 s, tests/test_tinypose.py 208 s -> 151 s. Numerics are unchanged (LLVM's
# optimisation level does not relax IEEE float semantics). Benchmarks and
# users get XLA's default.
os.environ.setdefault("XLA_FLAGS", "--xla_backend_optimization_level=0")
# And JAX's persistent compilation cache, for this run only (a fresh
# directory, so a run takes as long as on a fresh machine): the suite builds
# the same small models test after test, and every new model object traces
# the same programs again. The cache is keyed by the program, not the object:
# measured on the 2-core box, a second tiny-HRNet model's jitted training
# step compiled in 5.8 s instead of 29 s, its conversion (eager ops) 0.9 s
# instead of 45 s. Entries of any size and compile time are kept (JAX's
# defaults skip the sub-second compiles that eager ops are).
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    import atexit
    import shutil
    import tempfile

    _jax_cache = tempfile.mkdtemp(prefix="keraspose-test-jax-cache-")
    atexit.register(shutil.rmtree, _jax_cache, ignore_errors=True)
    os.environ["JAX_COMPILATION_CACHE_DIR"] = _jax_cache
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "-1")

import keras  # noqa: E402
import pytest  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]


def _shared_dir() -> Path:
    env = os.environ.get("KERASPOSE_SHARED")
    return Path(env) if env else REPO_ROOT.parent / "shared"


SHARED = _shared_dir()
REFERENCE = SHARED / "reference"
DATA = SHARED / "data"
WEIGHTS = SHARED / "weights"


def _require(path: Path) -> Path:
    if not path.exists():
        pytest.fail(
            f"reference data not found at {path}. Put the project's shared/ folder "
            "next to the checkout or set KERASPOSE_SHARED to its path."
        )
    return path


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    return _require(REFERENCE)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return _require(DATA)


@pytest.fixture(scope="session")
def weights_dir() -> Path:
    return _require(WEIGHTS)


def pytest_report_header(config):
    return f"keras backend: {keras.config.backend()}; shared data: {SHARED}"
