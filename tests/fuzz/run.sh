#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, ASan + UBSan) from livery's pure sources and runs each
# for SECONDS (default 60) on a copy of its committed seed corpus, after replaying every
# saved crash in crashes/. Prints "N passed, M failed" (targets) and exits non-zero on any
# crash. Usage: bash tests/fuzz/run.sh [SECONDS]    (FUZZ_BUILD: build dir, default build/fuzz)
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
seconds=${1:-60}
out=${FUZZ_BUILD:-$top/build/fuzz}
targets=(fuzz_cmd fuzz_reply fuzz_data_filter fuzz_names fuzz_sni fuzz_hello fuzz_proxyproto fuzz_sasl fuzz_asn1time)
sources=("$top/proxy/smtp_proto.c" "$top/proxy/iobuf.c" "$top/proxy/util.c" "$top/proxy/names.c" "$top/proxy/tls.c" "$top/proxy/tls_peek.c" "$top/proxy/proxyproto.c" "$top/proxy/sasl.c" "$top/proxy/ticketkeys.c" "$top/proxy/asn1time.c")
flags=(-std=c17 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
	-I"$top/proxy")

mkdir -p "$out"
passed=0
failed=0
for t in "${targets[@]}"; do
	if ! clang "${flags[@]}" -o "$out/$t" "$here/$t.c" "${sources[@]}" $(pkg-config --cflags --libs wolfssl); then
		echo "$t: build failed"
		failed=$((failed + 1))
		continue
	fi
	ok=1
	for crash in "$here"/crashes/"$t"-*; do
		[ -f "$crash" ] || continue
		"$out/$t" "$crash" >"$out/$t.replay.log" 2>&1 || { echo "$t: saved crash $crash still fails"; ok=0; }
	done
	corpus="$out/$t.corpus"
	rm -rf "$corpus" && mkdir -p "$corpus" && cp "$here/corpus/$t"/* "$corpus"/ 2>/dev/null
	if ! (cd "$out" && "./$t" "$corpus" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
		-print_final_stats=1 -artifact_prefix="$out/$t-" >"$out/$t.log" 2>&1); then
		echo "$t: CRASH (see $out/$t.log and $out/$t-*)"
		tail -n 30 "$out/$t.log"
		ok=0
	fi
	runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$out/$t.log" | grep -o '[0-9]*$')
	cov=$(grep -o 'cov: [0-9]*' "$out/$t.log" | tail -n 1)
	echo "$t: ${runs:-0} runs, ${cov:-cov: ?}, corpus $(ls "$corpus" | wc -l) inputs"
	if [ $ok = 1 ]; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
done
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
