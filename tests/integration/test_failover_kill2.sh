#!/usr/bin/env bash
# Hitless failover between two gateways (gwd + syncd + keepalived with the
# ha-hooks) behind a VRRPv3 VIP: a wireguard-go client pings the LAN host
# every 20 ms through the tunnel while an iperf3 TCP stream runs; the master's
# gwd, syncd and keepalived get SIGKILL; then the killed node is restarted,
# resyncs, becomes eligible, and the new master is killed in turn
# (tests/integration/lib/failover.sh, f_kill_scenario).
#
# Asserts for each failover: longest ping gap < 500 ms; the new master's first
# data packets to the client carry the receiver index the old master used
# (the replicated keypair), with counters from its own region (epoch >= 1,
# its node id); no handshake initiation from the client. Over the whole run:
# the TCP stream survives (no error, bytes after the second failover) and no
# (receiver, counter) pair of a gateway->client data packet appears twice in
# the capture of the client's underlay.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib/harness.sh
. "${GW_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/integration/lib/harness.sh"
# shellcheck source-path=SCRIPTDIR source=lib/failover.sh
. "$H_SOURCE_DIR/tests/integration/lib/failover.sh"

h_require_root
f_kill_scenario "${F_IMPL:-gwcluster}" 2
