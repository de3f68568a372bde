#!/usr/bin/env bash
# Install dependencies (when run as root) and build gwcluster.
#   scripts/build.sh [BUILD_DIR] [extra cmake arguments...]
# BUILD_DIR defaults to ./build; programs land in BUILD_DIR/bin.
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
dir=${1:-$src/build}
shift || true

if [ "$(id -u)" -eq 0 ]; then
	"$src/scripts/install-deps.sh"
fi
cmake -S "$src" -B "$dir" "$@" >/dev/null
cmake --build "$dir" -j"$(nproc)"
