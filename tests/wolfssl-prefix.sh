#!/usr/bin/env bash
# Prints the prefix of the optimised wolfSSL to build livery with (building it once, then
# cached: bench/build-wolfssl.sh), or an empty line for Debian's libwolfssl: when
# LIVERY_SYSTEM_WOLFSSL=1 is set, or when the optimised build cannot be made here.
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
if [ "${LIVERY_SYSTEM_WOLFSSL:-0}" = 1 ]; then
	echo ""
	exit 0
fi
log=$top/build/wolfssl-opt.log
mkdir -p "$top/build"
if prefix=$(bash "$top/bench/build-wolfssl.sh" 2>"$log" | tail -n 1) && [ -f "$prefix/lib/libwolfssl.a" ]; then
	echo "$prefix"
else
	echo "warning: the optimised wolfSSL could not be built (see $log); using Debian's libwolfssl" >&2
	echo ""
fi
