#!/usr/bin/env bash
# Installs the Debian packages Mir-C builds and runs with (DESIGN.md section 2) plus the build
# tools. Idempotent: packages already present are left alone and nothing is downloaded again.
# Works as root or through sudo; exits non-zero with a clear message where apt-get is missing.
#
#   scripts/install-deps.sh           what builds and tests need (and, where a Docker engine is
#                                     installed, what the deployment tests use)
#   scripts/install-deps.sh --build   only what compiles the programs (the Dockerfile's build stage)
#   scripts/install-deps.sh --bench   what builds and tests need, and the benchmark scripts' tools
#                                     (gnuplot for bench-sweep.sh's plots, perf for
#                                     profile-machine.sh)
set -euo pipefail

build_packages=(
  # RPC, serialization, crypto, storage, config, metrics/profiles, event-log compression
  libgrpc-dev libabsl-dev libprotobuf-c-dev protobuf-c-compiler android-libboringssl-dev
  librocksdb-dev
  libjansson-dev libmicrohttpd-dev libgoogle-perftools-dev google-perftools libzstd-dev
  # build tools
  cmake make pkg-config gcc g++
)
packages=("${build_packages[@]}"
  # tests (openssl: the command-line tool makes certificates in the transport tests;
  # prometheus: the server and promtool that check the replicas' /metrics pages; curl: HTTP)
  libgtest-dev openssl prometheus curl
  # clang and its runtime for the fuzz targets (libFuzzer); clang-format for make format
  clang clang-format libclang-rt-14-dev
)
# The deployment tests (tests/deploy) drive the Docker engine: debootstrap makes the base image
# where none can be pulled, docker-compose runs the cluster, ansible deploys to sshd containers.
deploy_packages=(debootstrap docker-compose ansible openssh-client)
bench_packages=(gnuplot-nox linux-perf)

case "${1:-}" in
  --build) packages=("${build_packages[@]}") ;;
  "" | --bench)
    if command -v docker >/dev/null 2>&1; then
      packages+=("${deploy_packages[@]}")
    fi
    if [ "${1:-}" = --bench ]; then packages+=("${bench_packages[@]}"); fi
    ;;
  *)
    echo "usage: $0 [--build | --bench]" >&2
    exit 2
    ;;
esac

if ! command -v apt-get >/dev/null 2>&1; then
  echo "install-deps: apt-get not found; this script supports Debian 12 (bookworm) and derivatives." >&2
  echo "install-deps: install these packages by other means: ${packages[*]}" >&2
  exit 1
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages already installed"
  exit 0
fi

sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    sudo_cmd=(sudo)
  else
    echo "install-deps: not root and sudo is missing; run as root: $0" >&2
    exit 1
  fi
fi

echo "install-deps: installing ${missing[*]}"
"${sudo_cmd[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
echo "install-deps: done"
