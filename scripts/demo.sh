#!/usr/bin/env bash
# The main job: install the dependencies, build, bring up the cluster lab
# (three gateway nodes behind a keepalived VIP, an upstream router, three
# clients, in network namespaces) and run its failover demonstration:
# SIGKILL of the master under traffic, gwcluster against the status quo,
# with a report and a picture (docs/lab.md). The lab stays up afterwards to
# be explored; `scripts/lab down` removes it.
#
#   scripts/demo.sh [OPTIONS]    OPTIONS go to `scripts/lab up` (see
#                                `scripts/lab --help`), e.g. --nodes 2
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)

if [ "$(id -u)" -ne 0 ]; then
	echo "demo.sh: needs root (network namespaces); run with sudo" >&2
	exit 1
fi
echo "demo.sh: dependencies (scripts/install-deps.sh)"
"$src/scripts/install-deps.sh"
# The lab builds what it runs (gwd, syncd, gwctl) in build/ if needed.
# An earlier lab goes first: the demo starts from a clean slate.
"$src/scripts/lab" down
"$src/scripts/lab" up "$@"
"$src/scripts/lab" demo
echo
echo "The lab is still up: sudo scripts/lab status shows it, docs/lab.md explains it,"
echo "sudo scripts/lab down removes it."
