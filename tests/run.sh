#!/usr/bin/env bash
# The full test suite: installs dependencies, builds livery, and runs every test with ctest.
# Usage: bash tests/run.sh [build-dir]    (default: build)
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$top/build}

bash "$top/tests/install-deps.sh"
cmake -S "$top" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j"$(nproc)"
cd "$build"
ctest --output-on-failure -j2
