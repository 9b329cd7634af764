#!/usr/bin/env bash
# bench/relay-latency.sh: what a client's session costs in time when livery's relay is a round
# trip away, with the relay leg opened right after the client's TLS handshake (the default) and
# with it deferred to the client's AUTH (past the bounds on unauthenticated relay legs). See
# bench/README.md.
#
#   bench/relay-latency.sh [--build DIR] [-n SESSIONS] [--delay MS] [--client-delay MS] [--repeat R]
#
#   --build   build directory with livery, tests/relay/livery-test-relay and bench/livery-loadgen
#             (default: build-bench, as bench/run makes it)
#   -n        sequential sessions per measurement (default 100; each is also capped at 120 s)
#   --delay   one-way delay on each end of the veth pair, in ms (default 10: a 20 ms round trip)
#   --client-delay  one-way delay between the load generator and livery, in ms (default 0):
#             bench/delayproxy.py on 127.0.0.1 in front of each livery, for a client a round
#             trip away too (what opening the leg early overlaps is the client's EHLO round trip)
#   --repeat  rounds; each round runs the three measurements once, in turn (default 1)
#
# The sink (tests/relay --sink) runs in a network namespace this script creates, joined to this
# one by a veth pair with netem delay on both ends, on 169.254.77.1/30 (here) and .2 (there):
# the only non-loopback addresses used, and only inside what the script makes. livery listens on
# 127.0.0.1 and relays to 169.254.77.2 (verify_name smtp.relay.test, the throw-away CA). On a
# kernel without netem (sch_netem), the delay comes from bench/delayproxy.py instead: in the
# namespace, on 169.254.77.2, in front of the sink on the namespace's own 127.0.0.1, the same
# one-way delay each way on every chunk and on the TCP handshake (the report says which).
# Measured with livery-loadgen, one session at a time (-c 1), session time p50/p90:
#   (a) loadgen -> livery -> sink, relay leg opened at the client's TLS handshake (the default)
#   (b) the same, leg deferred to AUTH: max_unauthenticated_relay_legs = 1 while an
#       `openssl s_client -starttls smtp` session sits idle after TLS, never AUTHing, holding it
#   (c) loadgen -> sink over the delayed veth (the baseline)
#   (d) loadgen -> livery -> sink with auth = "local" and the relay pool: the relay leg is lent
#       ready (authenticated with the tenant's account), so the client waits for no relay setup;
#       the target: its p50 at most 2 relay round trips above (c)'s
# Needs root (ip netns, tc); without it, says so and exits 0. The namespace, the veth pair and
# every process it started are removed on exit, processes by PID.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=$ROOT/build-bench
N=100
DELAY=10
REPEAT=1
CLIENT_DELAY=0
HOST_IP=169.254.77.1
SINK_IP=169.254.77.2

usage() { sed -n '2,31p' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
	case "$1" in
	--build) BUILD=$(cd "$2" && pwd); shift 2 ;;
	-n) N=$2; shift 2 ;;
	--delay) DELAY=$2; shift 2 ;;
	--client-delay) CLIENT_DELAY=$2; shift 2 ;;
	--repeat) REPEAT=$2; shift 2 ;;
	-h | --help) usage; exit 0 ;;
	*) echo "relay-latency: unknown argument $1" >&2; usage >&2; exit 2 ;;
	esac
done

log() { echo "relay-latency: $*" >&2; }
die() { log "$*"; exit 1; }

if [ "$(id -u)" != 0 ]; then
	log "skipped: needs root (it makes a network namespace, a veth pair and netem qdiscs)"
	exit 0
fi
for t in ip tc openssl python3; do command -v "$t" >/dev/null || die "$t not found"; done
for b in livery tests/relay/livery-test-relay bench/livery-loadgen; do
	[ -x "$BUILD/$b" ] || die "$BUILD/$b not found: build it (bench/run does, or cmake --build $BUILD)"
done
# Addresses of our own only: refuse if anything here already has or routes to them.
if ip -4 addr show | grep -q ' 169\.254\.77\.' || ip -4 route show | grep -q '^169\.254\.77\.'; then
	die "169.254.77.0/30 is already in use on this machine; not touching it"
fi

NS=livery-rl-$$
VH=lrl$$h # veth ends: 15 characters at most
VN=lrl$$n
TMP=
PIDS=()
HOLD_FD=
HOLD_PID=
DELAY_BY=

cleanup() {
	local p
	[ -z "$HOLD_FD" ] || exec {HOLD_FD}>&- || true
	for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	for p in "${PIDS[@]}"; do
		for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$p" 2>/dev/null || true
	done
	ip netns pids "$NS" 2>/dev/null | while read -r p; do kill -KILL "$p" 2>/dev/null || true; done
	ip link del "$VH" 2>/dev/null || true # takes its peer with it
	ip netns del "$NS" 2>/dev/null || true
	[ -z "$TMP" ] || rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_file() { # FILE SECONDS
	local i
	for ((i = 0; i < $2 * 10; i++)); do [ -s "$1" ] && return 0; sleep 0.1; done
	return 1
}

wait_port() { # PORT
	local i
	for ((i = 0; i < 100; i++)); do
		python3 -c 'import socket, sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 0.2).close()' \
			"$1" 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}

make_net() {
	ip netns add "$NS"
	ip link add "$VH" type veth peer name "$VN"
	ip link set "$VN" netns "$NS"
	ip addr add "$HOST_IP/30" dev "$VH"
	ip link set "$VH" up
	ip -n "$NS" addr add "$SINK_IP/30" dev "$VN"
	ip -n "$NS" link set lo up
	ip -n "$NS" link set "$VN" up
	if tc qdisc add dev "$VH" root netem delay "${DELAY}ms" 2>"$TMP/tc.err"; then
		ip netns exec "$NS" tc qdisc add dev "$VN" root netem delay "${DELAY}ms"
		DELAY_BY=netem
	else
		log "no netem here ($(head -n 1 "$TMP/tc.err")): the delay comes from bench/delayproxy.py"
		DELAY_BY=delayproxy
	fi
}

# start_sink: the sink on SINK_IP:SINK_PORT, as seen from here (behind delayproxy.py without netem).
start_sink() {
	local listen=$SINK_IP
	SINK_PORT=$(free_port)
	[ "$DELAY_BY" = netem ] || listen=127.0.0.1
	ip netns exec "$NS" "$BUILD/tests/relay/livery-test-relay" --sink --listen "$listen" --port "$SINK_PORT" \
		--cert "$CERTS/relay.pem" --key "$CERTS/relay.key" --ready-file "$TMP/sink.ready" 2>"$TMP/sink.log" &
	PIDS+=($!) # ip netns exec execs the sink: this is its PID
	wait_file "$TMP/sink.ready" 10 || { cat "$TMP/sink.log" >&2; die "the sink did not start"; }
	[ "$DELAY_BY" = netem ] && return 0
	ip netns exec "$NS" python3 "$ROOT/bench/delayproxy.py" "$SINK_IP" "$SINK_PORT" 127.0.0.1 "$SINK_PORT" \
		"$DELAY" "$TMP/delay.ready" 2>"$TMP/delay.log" &
	PIDS+=($!)
	wait_file "$TMP/delay.ready" 10 || { cat "$TMP/delay.log" >&2; die "delayproxy.py did not start"; }
}

# start_livery TAG MAX_UNAUTH [TENANT_EXTRA]: sets LIVERY_PORT.
start_livery() {
	local tag=$1 conf=$TMP/livery-$1.conf
	LIVERY_PORT=$(free_port)
	cat >"$conf" <<EOF
# Written by bench/relay-latency.sh.
log_level = "info";
log_format = "none";
workers = 1;
listeners = ( { address = "127.0.0.1"; port = $LIVERY_PORT; tls = "starttls"; hostname = "smtp.livery.test";
                default_tenant = "acme"; } );
regions = ( { name = "far"; host = "$SINK_IP"; port = $SINK_PORT; tls = "starttls";
              verify_name = "smtp.relay.test"; ca_file = "$CERTS/ca/ca.pem"; } );
tenants = ( { name = "acme"; hostnames = [ "smtp.acme.test" ];
              cert = "$CERTS/acme.pem"; key = "$CERTS/acme.key"; region = "far"; ${3:-} } );
limits = { max_unauthenticated_relay_legs = $2; max_unauthenticated_relay_legs_per_ip = $2; };
EOF
	"$BUILD/livery" --check -c "$conf" >/dev/null || die "bad livery config $conf"
	"$BUILD/livery" -c "$conf" >/dev/null 2>"$TMP/livery-$tag.log" &
	PIDS+=($!)
	wait_port "$LIVERY_PORT" || { cat "$TMP/livery-$tag.log" >&2; die "livery did not start"; }
}

# client_path TAG PORT: where the load generator connects to reach livery on PORT; with
# --client-delay, a delayproxy.py on 127.0.0.1 in front of it. Sets CLIENT_PORT.
client_path() {
	CLIENT_PORT=$2
	[ "$CLIENT_DELAY" != 0 ] || return 0
	CLIENT_PORT=$(free_port)
	python3 "$ROOT/bench/delayproxy.py" 127.0.0.1 "$CLIENT_PORT" 127.0.0.1 "$2" "$CLIENT_DELAY" \
		"$TMP/client-$1.ready" 2>"$TMP/client-$1.log" &
	PIDS+=($!)
	wait_file "$TMP/client-$1.ready" 10 || { cat "$TMP/client-$1.log" >&2; die "delayproxy.py did not start"; }
}

# hold_unauth PORT: one TLS session that never AUTHs (s_client waits on a FIFO we keep open), so
# it holds the only unauthenticated relay leg livery (b) allows.
hold_unauth() {
	mkfifo "$TMP/hold.in"
	openssl s_client -connect "127.0.0.1:$1" -starttls smtp -servername smtp.acme.test \
		-CAfile "$CERTS/ca/ca.pem" -verify_return_error <"$TMP/hold.in" >"$TMP/hold.out" 2>&1 &
	HOLD_PID=$!
	PIDS+=("$HOLD_PID")
	exec {HOLD_FD}>"$TMP/hold.in"
	wait_file "$TMP/hold.out" 10 || die "the holding s_client did not start"
	local i
	for ((i = 0; i < 100; i++)); do grep -q '^Verify return code: 0' "$TMP/hold.out" && return 0; sleep 0.1; done
	cat "$TMP/hold.out" >&2
	die "the holding s_client did not complete TLS"
}

# measure NAME HOST PORT SNI: N sequential sessions into NAME.R.json.
measure() {
	"$BUILD/bench/livery-loadgen" --host "$2" --port "$3" --ca "$CERTS/ca/ca.pem" --sni "$4" -c 1 -n "$N" -d 120 \
		--json >"$TMP/$1.$R.json" 2>"$TMP/$1.err" || { cat "$TMP/$1.err" >&2; die "loadgen $1 failed"; }
}

main() {
	TMP=$(mktemp -d /tmp/livery-rl.XXXXXX)
	CERTS=$TMP/certs
	"$ROOT/certs/livery-certs" test-set "$CERTS" >/dev/null 2>&1 || die "cannot make certificates"
	make_net
	start_sink
	start_livery early 256
	client_path early "$LIVERY_PORT"
	local port_a=$CLIENT_PORT
	start_livery deferred 1
	hold_unauth "$LIVERY_PORT"
	client_path deferred "$LIVERY_PORT"
	local port_b=$CLIENT_PORT
	echo secret | "$BUILD/livery" passwd user@acme.test >"$TMP/local.users"
	echo bench-relay-password >"$TMP/local.relay-password"
	start_livery pooled 256 "auth = \"local\"; users_file = \"$TMP/local.users\"; relay_user = \"bench@relay.test\";
	                         relay_password_file = \"$TMP/local.relay-password\";"
	client_path pooled "$LIVERY_PORT"
	local port_d=$CLIENT_PORT
	log "relay RTT $((2 * DELAY)) ms, client RTT $((2 * CLIENT_DELAY)) ms; $N sequential sessions per measurement, $REPEAT round(s)"
	for ((R = 1; R <= REPEAT; R++)); do
		measure early 127.0.0.1 "$port_a" smtp.acme.test
		measure deferred 127.0.0.1 "$port_b" smtp.acme.test
		measure sink "$SINK_IP" "$SINK_PORT" smtp.relay.test
		measure pooled 127.0.0.1 "$port_d" smtp.acme.test
	done
	kill -0 "$HOLD_PID" 2>/dev/null || die "the holding s_client ended early: (b) may not have been deferred"
	local deferrals
	deferrals=$(grep -c 'relay leg deferred to AUTH' "$TMP/livery-deferred.log" || true)
	[ "$deferrals" -ge "$((N * REPEAT))" ] ||
		die "(b): only $deferrals of $((N * REPEAT)) sessions had their relay leg deferred"
	report "$deferrals" "$DELAY_BY" "$CLIENT_DELAY"
}

# report DEFERRALS DELAY_BY CLIENT_DELAY: the table; per measurement, session time p50/p90 (ms) of each round.
report() {
	python3 - "$TMP" "$REPEAT" "$N" "$DELAY" "$1" "$2" "$3" <<'PY'
import json, sys
d, rounds, n, delay, deferred, by = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), sys.argv[5], sys.argv[6]
client = int(sys.argv[7])
rows = [("early", "(a) livery, relay leg at TLS time (default)"),
        ("deferred", f"(b) livery, relay leg at AUTH ({deferred} deferrals logged)"),
        ("sink", "(c) sink directly (baseline)"),
        ("pooled", "(d) livery, local auth, pooled relay")]
print(f"Relay RTT {2 * delay} ms ({by}: {delay} ms each way); client RTT to livery "
      f"{2 * client} ms{' (delayproxy)' if client else ' (loopback)'}, to the sink {2 * delay} ms; "
      f"{n} sequential sessions per run, {rounds} round(s).\n")
print("| setup | session p50 ms | session p90 ms | TLS handshake p50 ms | ok/failed |")
print("|---|---:|---:|---:|---:|")
for name, label in rows:
    rs = [json.load(open(f"{d}/{name}.{r}.json")) for r in range(1, rounds + 1)]
    col = lambda k, p: " / ".join(f"{x[k][p]:.1f}" for x in rs)
    ok = sum(x["sessions_ok"] for x in rs)
    bad = sum(x["sessions_failed"] for x in rs)
    print(f"| {label} | {col('session_ms', 'p50')} | {col('session_ms', 'p90')} | "
          f"{col('tls_handshake_ms', 'p50')} | {ok}/{bad} |")
p50 = lambda name: sorted(json.load(open(f"{d}/{name}.{r}.json"))["session_ms"]["p50"] for r in range(1, rounds + 1))[(rounds - 1) // 2]
over = p50("pooled") - p50("sink")
print(f"\nPooled vs the sink directly: p50 {p50('pooled'):.1f} - {p50('sink'):.1f} ms = {over:.1f} ms = "
      f"{over / (2 * delay):.2f} relay round trips (target ≤ 2: {'met' if over <= 4 * delay else '**missed**'}); "
      f"passthrough (a): {(p50('early') - p50('sink')) / (2 * delay):.2f} round trips above the sink.")
PY
}

main
