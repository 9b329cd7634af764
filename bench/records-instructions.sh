#!/usr/bin/env bash
# bench/records-instructions.sh: what the session and message records cost, in instructions per
# session of livery's worker as valgrind's callgrind counts them: repeatable on a shared machine,
# where CPU time (bench/run --records) moves by more than the cost itself. See bench/README.md.
#
#   bench/records-instructions.sh [--build DIR] [-n SESSIONS]
#
#   --build   build directory with livery, tests/relay/livery-test-relay and bench/livery-loadgen
#             (default: build)
#   -n        sessions per measurement (default 200); each mode is measured at n and 2n sessions
#             and the per-session figure is the slope, so start-up and exit cancel out
#
# livery (workers = 1) runs under callgrind with the sink (tests/relay --sink) and the certificates
# of certs/livery-certs, once per mode and size: log_format = "json" into a log_file, and
# log_format = "none". Each session: STARTTLS, AUTH PLAIN, one 2 KiB message, QUIT, 5 in flight.
# Everything on 127.0.0.1; every process it starts is stopped by PID.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=$ROOT/build
N=200
while [ $# -gt 0 ]; do
	case "$1" in
	--build) BUILD=$(cd "$2" && pwd); shift 2 ;;
	-n) N=$2; shift 2 ;;
	-h | --help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "records-instructions: unknown argument $1" >&2; exit 2 ;;
	esac
done
command -v valgrind >/dev/null || { echo "records-instructions: needs valgrind" >&2; exit 1; }

TMP=$(mktemp -d)
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	rm -rf "$TMP"
}
trap cleanup EXIT

free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_port() { # PORT: valgrind starts slowly
	local i
	for ((i = 0; i < 600; i++)); do
		python3 -c 'import socket, sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 0.2).close()' \
			"$1" 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}

"$ROOT/certs/livery-certs" test-set "$TMP/certs" >/dev/null
SINK_PORT=$(free_port)
"$BUILD/tests/relay/livery-test-relay" --sink --port "$SINK_PORT" --cert "$TMP/certs/relay.pem" \
	--key "$TMP/certs/relay.key" --ready-file "$TMP/sink.ready" 2>"$TMP/sink.log" &
PIDS+=($!)
wait_port "$SINK_PORT" || { echo "records-instructions: the sink did not start" >&2; exit 1; }

# measure MODE SESSIONS: prints the worker's instruction count (Ir) for that many sessions.
measure() {
	local mode=$1 n=$2 port pid out
	port=$(free_port)
	out="$TMP/cg-$mode-$n"
	mkdir -p "$out"
	cat >"$TMP/livery-$mode.conf" <<EOF
log_level = "warn";
log_format = "$mode";
log_file = "$TMP/records-$mode.log";
workers = 1;
user = "root";
listeners = ( { address = "127.0.0.1"; port = $port; tls = "starttls"; hostname = "smtp.livery.test";
                default_tenant = "acme"; } );
regions = ( { name = "bench"; host = "127.0.0.1"; port = $SINK_PORT; tls = "starttls";
              verify_name = "smtp.relay.test"; ca_file = "$TMP/certs/ca/ca.pem"; } );
tenants = ( { name = "acme"; hostnames = [ "smtp.acme.test" ];
              cert = "$TMP/certs/acme.pem"; key = "$TMP/certs/acme.key"; region = "bench"; } );
EOF
	valgrind --tool=callgrind --trace-children=yes --callgrind-out-file="$out/cg.%p" \
		"$BUILD/livery" -c "$TMP/livery-$mode.conf" 2>"$TMP/livery-$mode-$n.log" &
	pid=$!
	PIDS+=("$pid")
	wait_port "$port" || { cat "$TMP/livery-$mode-$n.log" >&2; exit 1; }
	"$BUILD/bench/livery-loadgen" --port "$port" --ca "$TMP/certs/ca/ca.pem" --sni smtp.acme.test \
		-c 5 -n "$n" -d 600 -k 1 -s 2048 --json >"$TMP/lg-$mode-$n.json"
	kill -TERM "$pid"
	wait "$pid" || true
	python3 - "$out" "$TMP/lg-$mode-$n.json" "$n" <<'PY'
import glob, json, re, sys
out, lg, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
ok = json.load(open(lg))["sessions_ok"]
if ok != n:
    sys.exit("records-instructions: %d of %d sessions succeeded" % (ok, n))
# The worker is the process with the most instructions (the master only loads and waits).
totals = []
for f in glob.glob(out + "/cg.*"):
    m = re.search(r"^summary:\s*(\d+)", open(f).read(), re.M)
    if m:
        totals.append(int(m.group(1)))
print(max(totals))
PY
}

declare -A IR
for mode in json none; do
	for n in "$N" $((2 * N)); do
		IR[$mode-$n]=$(measure "$mode" "$n")
	done
done
on=$(((IR[json-$((2 * N))] - IR[json-$N]) / N))
off=$(((IR[none-$((2 * N))] - IR[none-$N]) / N))
records=$(wc -l <"$TMP/records-json.log")
echo "worker instructions per session (slope from $N to $((2 * N)) sessions):"
echo "  records on  (log_format = \"json\", log_file): $on"
echo "  records off (log_format = \"none\"):           $off"
python3 -c 'import sys; on, off = int(sys.argv[1]), int(sys.argv[2]); print("  records cost: %+.2f%% (%d instructions per session)" % (100.0 * (on - off) / off, on - off))' "$on" "$off"
echo "  records written in the last json run: $records"
