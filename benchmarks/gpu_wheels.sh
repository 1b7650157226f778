#!/usr/bin/env bash
# Wheels (from PyPI) that the device image lacks, for Python 3.12 on x86-64, into .whl/ (git-ignored):
# the device machine reaches no network, so they travel with the working tree (carry [".whl"]).
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .whl
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d .whl "av>=12" "platformdirs>=3" "tomli-w>=1"
ls -la .whl
