#!/usr/bin/env bash
# Cross-builds the Linux platform packages this machine can make besides its
# own: linux-arm64-gnu (Debian's gcc-aarch64-linux-gnu as linker) and
# linux-x64-musl (musl-tools; libc linked dynamically, as Node on musl
# expects). The .node files land in target/platforms/, where `npm run e2e`
# publishes them beside the host's. Installs the toolchains when missing
# (apt needs root; rustup downloads the targets' standard libraries).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v aarch64-linux-gnu-gcc >/dev/null || ! command -v musl-gcc >/dev/null; then
  apt-get update -qq
  apt-get install -y -qq gcc-aarch64-linux-gnu musl-tools >/dev/null
fi
rustup target add aarch64-unknown-linux-gnu x86_64-unknown-linux-musl >/dev/null

out=target/platforms
mkdir -p "$out"
CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc \
  npx napi build --platform --release --target aarch64-unknown-linux-gnu --output-dir "$out"
RUSTFLAGS="-C target-feature=-crt-static" \
  npx napi build --platform --release --target x86_64-unknown-linux-musl --output-dir "$out"
ls -l "$out"/*.node
