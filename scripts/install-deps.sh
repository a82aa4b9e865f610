#!/usr/bin/env bash
# Installs every Debian 12 package that the build, the tests and the demo need.
# Idempotent: packages already present are skipped, so a second run is quick.
# Usage: scripts/install-deps.sh [--bench]   (--bench adds nginx and haproxy for bench/)
set -euo pipefail

pkgs=(build-essential cmake pkg-config git
      libssl-dev openssl libevent-dev libconfig-dev libsodium-dev libcunit1-dev
      node-llhttp libjansson-dev curl procps psmisc python3 clang-format cppcheck clang
      libclang-rt-dev)  # clang's sanitizer and libFuzzer runtimes (fuzz/), only Recommended by clang
if [ "${1:-}" = "--bench" ]; then
  pkgs+=(nginx-light haproxy)
fi

missing=()
for p in "${pkgs[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#pkgs[@]} packages present"
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
  SUDO=sudo
else
  SUDO=
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
