#!/usr/bin/env bash
# The full test suite, as CI runs it: installs dependencies, then
#   1. a normal build (optimised wolfSSL) and every test (unit, end to end, soak) with ctest;
#   2. an AddressSanitizer + UndefinedBehaviorSanitizer build and every test again (leaks
#      make livery's exit status non-zero, which the end-to-end tests assert);
#   3. the libFuzzer targets, each for FUZZ_SECONDS (default 60; 0 skips them).
# Usage: bash tests/run.sh [build-dir]    (default: build; the sanitizer build goes to <dir>-asan)
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$top/build}
fuzz_seconds=${FUZZ_SECONDS:-60}
jobs=$(nproc)

bash "$top/tests/install-deps.sh"
# The normal build links the optimised wolfSSL (bench/build-wolfssl.sh, cached in
# build/wolfssl-opt); the sanitizer build keeps Debian's libwolfssl, the documented fallback.
wolfssl_prefix=$(bash "$top/tests/wolfssl-prefix.sh")

run_suite() { # build-dir, cmake args...
	local dir=$1
	shift
	cmake -S "$top" -B "$dir" "$@" >/dev/null
	cmake --build "$dir" -j"$jobs"
	(cd "$dir" && ctest --output-on-failure -j2)
}

echo "== normal build"
run_suite "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLIVERY_WOLFSSL_PREFIX="$wolfssl_prefix"
echo "== sanitizer build (ASan + UBSan)"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	run_suite "$build-asan" -DCMAKE_BUILD_TYPE=Debug -DLIVERY_SANITIZE=ON -DLIVERY_WOLFSSL_PREFIX=
if [ "$fuzz_seconds" != 0 ] && [ -f "$top/tests/fuzz/run.sh" ]; then
	echo "== fuzzing, ${fuzz_seconds}s per target"
	FUZZ_BUILD="$build-fuzz" bash "$top/tests/fuzz/run.sh" "$fuzz_seconds"
fi
