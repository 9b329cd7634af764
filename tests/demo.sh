#!/usr/bin/env bash
# The demo: builds livery, makes a demo CA and certificates, starts a stand-in relay and livery
# (config/demo.conf) on loopback, and submits one message through STARTTLS and one through
# implicit TLS with swaks, under two tenants' branded names and as each tenant's own user,
# with certificate verification on; it shows one relay reply before and after scrubbing.
# Usage: bash tests/demo.sh [--keep]   (--keep: leave both running until Ctrl-C)
# What it changes on the machine: tests/install-deps.sh apt-get installs missing packages;
# bench/build-wolfssl.sh (unless LIVERY_SYSTEM_WOLFSSL=1) adds a deb-src entry for bookworm
# (/etc/apt/sources.list.d/livery-bench-src.sources) when none exists, to fetch wolfSSL's
# source; everything else stays under build/.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
build=$top/build
demo=$build/demo
keep=0
[ "${1:-}" = "--keep" ] && keep=1

# The optimised wolfSSL is built once (bench/build-wolfssl.sh, cached in build/wolfssl-opt):
# say so, and show its progress lines while it builds (the full log: build/wolfssl-opt.log).
wolfssl_prefix() {
	local out=$build/wolfssl-prefix.out pid
	mkdir -p "$build"
	bash "$top/tests/wolfssl-prefix.sh" >"$out" &
	pid=$!
	if [ "${LIVERY_SYSTEM_WOLFSSL:-0}" != 1 ] && [ ! -f "$build/wolfssl-opt/lib/libwolfssl.a" ]; then
		echo "== building the optimised wolfSSL, about 3 minutes, once (LIVERY_SYSTEM_WOLFSSL=1 skips it)" >&2
		tail -n +1 -F --pid="$pid" "$build/wolfssl-opt.log" 2>/dev/null |
			sed -u -n 's/^build-wolfssl: /   /p' >&2
	fi
	wait "$pid"
	cat "$out"
}

echo "== checking the Debian packages livery needs (tests/install-deps.sh)"
bash "$top/tests/install-deps.sh"
wolfssl_prefix=$(wolfssl_prefix)
echo "== building livery${wolfssl_prefix:+ with the optimised wolfSSL}"
cmake -S "$top" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLIVERY_WOLFSSL_PREFIX="$wolfssl_prefix" >/dev/null
cmake --build "$build" -j"$(nproc)" --target livery livery-test-relay >/dev/null
rm -rf "$demo" && mkdir -p "$demo/relay"
"$top/certs/livery-certs" test-set "$demo/certs" >/dev/null
ca=$demo/certs/ca/ca.pem

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

# Each tenant's users are the relay's users: livery passes AUTH through untouched.
"$build/tests/relay/livery-test-relay" --port 10025 --cert "$demo/certs/relay.pem" \
	--key "$demo/certs/relay.key" --record "$demo/relay" --ready-file "$demo/relay.ready" \
	--user user@acme.test:secret --user user@globex.test:globex-secret \
	2>"$demo/relay.log" &
pids+=($!)
"$build/livery" -c "$top/config/demo.conf" >"$demo/records.log" 2>"$demo/livery.log" &
pids+=($!)
for _ in $(seq 100); do
	grep -q "ready" "$demo/livery.log" 2>/dev/null && [ -f "$demo/relay.ready" ] && break
	sleep 0.1
done
grep -q "ready" "$demo/livery.log" || { cat "$demo/livery.log"; exit 1; }

submit() { # title, user, password, swaks args...
	local title=$1 user=$2 password=$3
	shift 3
	echo "== $title, logged in as $user"
	swaks --from "demo@${user#*@}" --to someone@example.com --auth PLAIN \
		--auth-user "$user" --auth-password "$password" --tls-verify --tls-ca-path "$ca" \
		--header "Subject: livery demo" "$@" >"$demo/swaks.out" 2>&1 || { cat "$demo/swaks.out"; exit 1; }
	grep -E '^(<-|<~)  (220 |250[- ]|235 )|TLS peer DN|^<~  250 2\.0\.0' "$demo/swaks.out" \
		| grep -v -E '250[- ](PIPELINING|SIZE|8BITMIME|ENHANCED|SMTPUTF8|CHUNKING)' | sed 's/^/   /'
	if grep -qi mailgun "$demo/swaks.out"; then echo "upstream identity leaked"; exit 1; fi
	grep -q '^<~  250 2\.0\.0 Ok: queued' "$demo/swaks.out" || { echo "relay did not accept"; exit 1; }
}

submit "STARTTLS on port 10587 as smtp.acme.test (ECDSA certificate)" user@acme.test secret \
	--server 127.0.0.1:10587 --tls --tls-sni smtp.acme.test
auth_via_livery=$(grep -m1 -E '^<~  235 ' "$demo/swaks.out" | sed 's/^<~  //')
submit "implicit TLS on port 10465 as mail.globex.test (RSA wildcard certificate)" \
	user@globex.test globex-secret --server 127.0.0.1:10465 --tlsc --tls-sni mail.globex.test

# The same AUTH straight to the relay (no message): its own words, before livery scrubs them.
swaks --server 127.0.0.1:10025 --tls --auth PLAIN --auth-user user@acme.test \
	--auth-password secret --quit-after AUTH >"$demo/swaks-relay.out" 2>&1 || true
auth_at_relay=$(grep -m1 -E '^<~  235 ' "$demo/swaks-relay.out" | sed 's/^<~  //')
echo "== one relay reply, before and after scrubbing"
echo "   the relay says:        $auth_at_relay"
echo "   livery's client sees:  $auth_via_livery"
echo "== the relay received $(ls "$demo/relay"/msg-*.data | wc -l) messages over verified TLS, with the clients' own credentials"
echo "   (the last connection is the direct one above):"
sed 's/^/   /' "$demo/relay/events.log"
echo "== livery's record of the first message (one JSON line per message and per session: $demo/records.log)"
grep -m1 '"record":"message"' "$demo/records.log" | sed 's/^/   /'

if [ $keep = 1 ]; then
	echo "== livery is listening on 127.0.0.1:10587 (STARTTLS) and 127.0.0.1:10465 (TLS); CA: $ca"
	echo "   logs: $demo/livery.log, records: $demo/records.log; press Ctrl-C to stop"
	wait
fi
echo "demo OK"
