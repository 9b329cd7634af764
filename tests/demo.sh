#!/usr/bin/env bash
# The demo: builds livery, makes a demo CA and certificates, starts a stand-in relay and livery
# (config/demo.conf) on loopback, and submits one message through STARTTLS and one through
# implicit TLS with swaks, under two tenants' branded names, with certificate verification on.
# Usage: bash tests/demo.sh [--keep]   (--keep: leave both running until Ctrl-C)
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
build=$top/build
demo=$build/demo
keep=0
[ "${1:-}" = "--keep" ] && keep=1

bash "$top/tests/install-deps.sh"
wolfssl_prefix=$(bash "$top/tests/wolfssl-prefix.sh")
cmake -S "$top" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLIVERY_WOLFSSL_PREFIX="$wolfssl_prefix" >/dev/null
cmake --build "$build" -j"$(nproc)" --target livery livery-test-relay >/dev/null
rm -rf "$demo" && mkdir -p "$demo/relay"
"$top/certs/livery-certs" test-set "$demo/certs" >/dev/null
ca=$demo/certs/ca/ca.pem

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

"$build/tests/relay/livery-test-relay" --port 10025 --cert "$demo/certs/relay.pem" \
	--key "$demo/certs/relay.key" --record "$demo/relay" --ready-file "$demo/relay.ready" \
	2>"$demo/relay.log" &
pids+=($!)
"$build/livery" -c "$top/config/demo.conf" 2>"$demo/livery.log" &
pids+=($!)
for _ in $(seq 100); do
	grep -q "ready" "$demo/livery.log" 2>/dev/null && [ -f "$demo/relay.ready" ] && break
	sleep 0.1
done
grep -q "ready" "$demo/livery.log" || { cat "$demo/livery.log"; exit 1; }

submit() { # title, swaks args...
	local title=$1
	shift
	echo "== $title"
	swaks --from demo@acme.test --to someone@example.com --auth PLAIN \
		--auth-user user@acme.test --auth-password secret --tls-verify --tls-ca-path "$ca" \
		--header "Subject: livery demo" "$@" >"$demo/swaks.out" 2>&1 || { cat "$demo/swaks.out"; exit 1; }
	grep -E '^(<-|<~)  (220 |250[- ]|235 )|TLS peer DN|^<~  250 2\.0\.0' "$demo/swaks.out" \
		| grep -v -E '250[- ](PIPELINING|SIZE|8BITMIME|ENHANCED|SMTPUTF8|CHUNKING)' | sed 's/^/   /'
	if grep -qi mailgun "$demo/swaks.out"; then echo "upstream identity leaked"; exit 1; fi
	grep -q '^<~  250 2\.0\.0 Ok: queued' "$demo/swaks.out" || { echo "relay did not accept"; exit 1; }
}

submit "STARTTLS on port 10587 as smtp.acme.test (ECDSA certificate)" \
	--server 127.0.0.1:10587 --tls --tls-sni smtp.acme.test
submit "implicit TLS on port 10465 as mail.globex.test (RSA wildcard certificate)" \
	--server 127.0.0.1:10465 --tlsc --tls-sni mail.globex.test
echo "== the relay received $(ls "$demo/relay"/msg-*.data | wc -l) messages over verified TLS, with the clients' own credentials:"
sed 's/^/   /' "$demo/relay/events.log"

if [ $keep = 1 ]; then
	echo "== livery is listening on 127.0.0.1:10587 (STARTTLS) and 127.0.0.1:10465 (TLS); CA: $ca"
	echo "   logs: $demo/livery.log; press Ctrl-C to stop"
	wait
fi
echo "demo OK"
