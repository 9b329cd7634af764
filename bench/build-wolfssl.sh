#!/usr/bin/env bash
# build-wolfssl.sh: builds Debian's own wolfSSL source with assembly-optimised math into a
# private prefix, for livery's -DLIVERY_WOLFSSL_PREFIX=<prefix> (static link).
#
#   bench/build-wolfssl.sh [--prefix DIR] [--force] [-j N]
#
# The source is Debian's (`apt-get source wolfssl`, so Debian's patches are in), configured
# with the flags of its debian/rules (so every feature livery relies on is there: the
# distro feature set = --enable-all, SNI, session tickets, TLS 1.3, OPENSSL_EXTRA...), with
# Debian's hardening CFLAGS, plus the optimisation flags below. Nothing is installed system
# wide; the only system change is a deb-src entry for bookworm (added when none exists).
#
# Cached: when <prefix>/lib/libwolfssl.a exists and <prefix>/.livery-wolfssl-stamp records
# the same source version and flags (OPT_FLAGS and OPT_DEFINES below: changing either
# rebuilds), nothing is done. Prints the prefix on the last line of stdout (and nothing
# else there; progress goes to stderr), for tests/wolfssl-prefix.sh.
set -euo pipefail

OPT_FLAGS=(--enable-sp --enable-sp-asm --enable-intelasm)
# Seed each RNG (one per TLS object) with getrandom(2) instead of open/read/close of
# /dev/urandom: three system calls fewer per TLS object.
# WOLFSSL_MAX_SUITE_SZ (octets, 2 per suite; default 300, i.e. 150 suites) is the longest
# cipher-suite list wolfSSL accepts in a ClientHello: a longer one fails the handshake
# (-328). 1024 octets (512 suites) holds every cipher suite IANA has registered (about 380
# values, TLS 1.3's included) plus the 16 GREASE values and the SCSVs, each once, so it
# accepts every ClientHello a real stack or scanner sends (scanners offering "all" suites
# included); only repeated or unassigned values could need more. Not the protocol's 32767:
# wolfSSL keeps this array in every connection (OPENSSL_EXTRA keeps ssl->suites after the
# handshake), two per proxied session: 16384 octets would add 32 KB per session (one noisy
# measurement of idle sessions: 116 -> 161 KiB RSS, past the 160 KiB target); 1024 adds
# about 1.5 KB.
OPT_DEFINES=(-DWOLFSSL_GETRANDOM -DWOLFSSL_MAX_SUITE_SZ=1024)
# Features the distro flags turn on that cost every connection memory for as long as it lives,
# and that livery never uses (measured per TLS object, idle after the handshake, with
# bench/tlsmem.c):
# - SESSION_CERTS keeps the peer's chain in each connection's WOLFSSL_SESSION as static arrays,
#   MAX_CHAIN_DEPTH (9) x 2 KiB, twice with WOLFSSL_ALT_CERT_CHAINS: 36.6 KiB per connection,
#   client leg and relay leg alike (livery never asks for the peer's chain);
# - WOLFSSL_POST_HANDSHAKE_AUTH (TLS 1.3 client certificates requested after the handshake,
#   which livery neither asks for nor offers) makes wolfSSL keep a TLS 1.3 connection's
#   handshake hashes and handshake arrays, and a client's random generator, after the handshake:
#   ~6 KiB on the client leg, ~10 KiB on the relay leg.
# configure adds them through its compile flags (AM_CFLAGS), which come before CFLAGS on the
# compiler's command line, so -U in CFLAGS wins; the same lines leave the installed options.h.
# (KEEP_PEER_CERT, the relay's certificate decoded with its public key, ~18 KiB per relay leg,
# cannot go this way: settings.h turns it back on for OPENSSL_EXTRA, which livery needs.)
OPT_UNDEFINES=(SESSION_CERTS WOLFSSL_POST_HANDSHAKE_AUTH)
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PREFIX="$ROOT/build/wolfssl-opt"
FORCE=0
JOBS=$(nproc)

usage() { sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
	case "$1" in
	--prefix) PREFIX=$2; shift 2 ;;
	--force) FORCE=1; shift ;;
	-j) JOBS=$2; shift 2 ;;
	-h | --help) usage; exit 0 ;;
	*) echo "build-wolfssl.sh: unknown argument $1" >&2; usage >&2; exit 2 ;;
	esac
done
mkdir -p "$PREFIX"
PREFIX=$(cd "$PREFIX" && pwd)
SRCROOT="$PREFIX.src"
STAMP="$PREFIX/.livery-wolfssl-stamp"
SRC_LIST=/etc/apt/sources.list.d/livery-bench-src.sources

log() { echo "build-wolfssl: $*" >&2; }

as_root() {
	if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

have_deb_src() {
	grep -rqsE '^(deb-src|Types:.*deb-src)' /etc/apt/sources.list /etc/apt/sources.list.d/
}

# Debian 12 keeps its sources in deb822 form; mirror its archive URLs for source packages.
add_deb_src() {
	log "adding a deb-src entry for bookworm ($SRC_LIST)"
	as_root tee "$SRC_LIST" >/dev/null <<'EOF'
# Added by livery's bench/build-wolfssl.sh: source packages for `apt-get source wolfssl`.
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb-src
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
	as_root apt-get update -qq >&2
}

ensure_tools() {
	local missing=()
	command -v dpkg-source >/dev/null || missing+=(dpkg-dev)
	command -v make >/dev/null || missing+=(build-essential)
	command -v autoreconf >/dev/null || missing+=(autoconf automake libtool)
	if [ ${#missing[@]} -gt 0 ]; then
		log "installing ${missing[*]}"
		as_root apt-get install -y --no-install-recommends "${missing[@]}" >&2
	fi
}

# The source version apt-get source would fetch (the highest one listed).
source_version() {
	apt-cache showsrc wolfssl 2>/dev/null | awk '/^Version:/ {print $2}' | sort -V | tail -n 1
}

# The configure arguments of debian/rules' override_dh_auto_configure.
debian_flags() {
	awk '/^[ \t]+dh_auto_configure/ {on = 1} on {print} on && !/\\$/ {exit}' "$1/debian/rules" |
		tr ' \t\\' '\n\n\n' | grep -E '^--(enable|disable|with|without)-' || true
}

fetch_source() {
	local version=$1 dir="$SRCROOT/$version"
	if [ ! -f "$dir/.fetched" ]; then
		rm -rf "$dir"
		mkdir -p "$dir"
		log "apt-get source wolfssl=$version"
		(cd "$dir" && apt-get source -qq "wolfssl=$version" >&2)
		touch "$dir/.fetched"
	fi
	find "$dir" -mindepth 1 -maxdepth 1 -type d -name 'wolfssl-*' | head -n 1
}

main() {
	# One build at a time per prefix: test suites and bench/run may call this concurrently.
	exec 9>"$PREFIX.lock"
	flock 9
	have_deb_src || add_deb_src
	local version
	version=$(source_version)
	if [ -z "$version" ]; then
		as_root apt-get update -qq >&2
		version=$(source_version)
	fi
	[ -n "$version" ] || { log "no wolfssl source package known to apt"; exit 1; }

	# The stamp names the version and every flag; the Debian flags are those of the source,
	# known once fetched, so a cache hit is checked against the stamp's own record of them.
	if [ "$FORCE" = 0 ] && [ -f "$PREFIX/lib/libwolfssl.a" ] && [ -f "$STAMP" ] &&
		grep -qxF "version=$version" "$STAMP" && grep -qxF "opt=${OPT_FLAGS[*]} ${OPT_DEFINES[*]} ${OPT_UNDEFINES[*]/#/-U}" "$STAMP"; then
		log "up to date: $PREFIX (wolfssl $version, ${OPT_FLAGS[*]} ${OPT_DEFINES[*]} ${OPT_UNDEFINES[*]/#/-U})"
		echo "$PREFIX"
		return
	fi

	ensure_tools
	local src
	src=$(fetch_source "$version")
	local deb_flags
	deb_flags=$(debian_flags "$src" | tr '\n' ' ')
	[ -n "$deb_flags" ] || { log "cannot read the configure flags of $src/debian/rules"; exit 1; }

	local work="$SRCROOT/build-$version"
	rm -rf "$work"
	cp -a "$src" "$work"
	log "configure: $deb_flags ${OPT_FLAGS[*]} CPPFLAGS+=${OPT_DEFINES[*]}"
	(
		cd "$work"
		eval "$(DEB_BUILD_MAINT_OPTIONS=hardening=+all dpkg-buildflags --export=sh)"
		export CPPFLAGS="${CPPFLAGS:-} ${OPT_DEFINES[*]}"
		local u
		for u in "${OPT_UNDEFINES[@]}"; do CFLAGS="${CFLAGS:-} -U$u"; done
		export CFLAGS
		[ -x configure ] || ./autogen.sh >&2
		# shellcheck disable=SC2086 # the Debian flags are a word list
		./configure --prefix="$PREFIX" --libdir="$PREFIX/lib" $deb_flags "${OPT_FLAGS[@]}" \
			--enable-static >"$work.configure.log" 2>&1 ||
			{ tail -n 30 "$work.configure.log" >&2; exit 1; }
		make -j"$JOBS" >"$work.make.log" 2>&1 || { tail -n 30 "$work.make.log" >&2; exit 1; }
		rm -rf "$PREFIX/include/wolfssl" "$PREFIX/lib"
		make install >"$work.install.log" 2>&1 || { tail -n 30 "$work.install.log" >&2; exit 1; }
		# A distro build does not install options.h; Debian's libwolfssl-dev.install copies it
		# from the build tree, and so do we.
		install -m 644 wolfssl/options.h "$PREFIX/include/wolfssl/options.h"
		for u in "${OPT_UNDEFINES[@]}"; do
			sed -i "/^#undef  *$u\$/d; /^#define  *$u\$/d" "$PREFIX/include/wolfssl/options.h"
		done
	)
	# Only the static library: nothing may pick the shared one up by accident.
	rm -f "$PREFIX"/lib/libwolfssl.so* "$PREFIX"/lib/libwolfssl.la
	printf 'version=%s\ndebian=%s\nopt=%s\n' "$version" "$deb_flags" "${OPT_FLAGS[*]} ${OPT_DEFINES[*]} ${OPT_UNDEFINES[*]/#/-U}" >"$STAMP"
	rm -rf "$work"
	log "built wolfssl $version into $PREFIX"
	echo "$PREFIX"
}

main
