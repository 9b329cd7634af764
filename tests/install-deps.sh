#!/usr/bin/env bash
# Installs what livery needs to build, test and run its demo on Debian 12, with apt-get.
# Does nothing when everything is already installed.
set -euo pipefail

packages=(build-essential cmake pkg-config libuv1-dev libwolfssl-dev libconfig-dev libjansson-dev libcmocka-dev
	swaks libnet-ssleay-perl libio-socket-ssl-perl curl openssl python3 ca-certificates clang libclang-rt-14-dev procps
	libsystemd-dev systemd groff-base man-db libmicrohttpd-dev prometheus
	libhiredis-dev libcrypt-dev redis-server haproxy pebble lego)

missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "installing: ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
