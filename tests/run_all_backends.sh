#!/usr/bin/env bash
# Install keraspose with its test extras, run the doctests of keraspose/ once
# and the test suite once per Keras backend (torch, TensorFlow, JAX). This is
# the README's test command and what CI runs.
#   usage: bash tests/run_all_backends.sh [extra pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."
# torch==2.13.0 is named explicitly: on the project's machines it is a local
# CPU build, while an unpinned torch would pull a multi-GB CUDA build. For
# the same reason the tests take TensorFlow's CPU-only distribution rather
# than the [tensorflow] extra (the distribution named "tensorflow"); the
# [jax] extra is CPU jax.
python3 -m pip install -q "torch==2.13.0" "tensorflow-cpu>=2.16" -e ".[torch,jax,test]"
status=0
# The docstrings' examples: once, on torch (they are backend-independent:
# shapes print as tuples on every backend).
echo "=== doctests (KERAS_BACKEND=torch)"
KERAS_BACKEND=torch python3 -m pytest -q -p no:cacheprovider --doctest-modules keraspose || status=1
for backend in torch tensorflow jax; do
  echo "=== KERAS_BACKEND=$backend"
  KERAS_BACKEND=$backend python3 -m pytest -q -p no:cacheprovider "$@" || status=1
done
exit $status
