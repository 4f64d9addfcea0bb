"""Helpers for benchmarks that run MMPose (the reference) beside keraspose.

MMPose lives in its own virtual environment (built by
``../shared/tools/mmpose_reference_env.sh``); benchmarks run it as a
subprocess with that environment's Python and exchange data through files.
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("KERASPOSE_SHARED", REPO.parent / "shared"))


def mmpose_python(path=None):
    """The reference venv's python, or an error saying how to build it."""
    candidates = [path, os.environ.get("MMPOSE_PYTHON"), REPO / ".mmpose-ref/bin/python", REPO.parent / ".mmpose-ref/bin/python"]
    for c in candidates:
        if c and Path(c).exists():
            return str(c)
    sys.exit(
        "MMPose reference environment not found. Build it with\n"
        f"  bash {SHARED}/tools/mmpose_reference_env.sh .mmpose-ref\n"
        "or point MMPOSE_PYTHON / --mmpose-python at its python."
    )


def run_reference(script, args, python=None, threads=2):
    """Run ``script`` (a file in benchmarks/) under the MMPose venv; return its JSON stdout."""
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), PYTHONWARNINGS="ignore")
    out = subprocess.run(
        [mmpose_python(python), str(REPO / "benchmarks" / script), *map(str, args)],
        capture_output=True, text=True, env=env,
    )
    if out.returncode != 0:
        sys.exit(f"reference run failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def time_each(fn, repeats, warmup=3):
    """Seconds of each of ``repeats`` calls of ``fn()``, after ``warmup`` untimed calls.

    Standard library only, so the reference-side scripts (run in MMPose's
    venv) time with the same loop as the keraspose side.
    """
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def time_calls(fn, repeats, warmup=3):
    """Median and min seconds per call of ``fn()`` after ``warmup`` calls."""
    times = sorted(time_each(fn, repeats, warmup))
    return {"median": times[len(times) // 2], "min": times[0]}


def machine_description():
    import platform

    cpu = platform.processor() or platform.machine()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}"
