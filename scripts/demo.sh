#!/usr/bin/env bash
# The main job: install dependencies, build, and run the best end-to-end
# demonstration that exists today. Until the cluster lab lands this is the
# network-namespace tunnel test: three hosts (client, router, server) with
# WireGuard between client and server, ping and iperf3 through the tunnel.
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)

if [ "$(id -u)" -ne 0 ]; then
	echo "demo.sh: needs root (network namespaces); run with sudo" >&2
	exit 1
fi
"$src/scripts/build.sh" "$src/build"
export GW_BUILD_DIR=$src/build GW_SOURCE_DIR=$src GW_VERBOSE=1
for t in "$src"/tests/integration/test_harness_wggo.sh "$src"/tests/integration/test_gwd_*.sh; do
	[ -f "$t" ] || continue
	echo "== $(basename "$t")"
	bash "$t"
done
