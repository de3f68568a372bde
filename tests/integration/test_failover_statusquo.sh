#!/usr/bin/env bash
# The status quo that gwcluster replaces, and a proof that the failover
# instruments see a failover that is not hitless: two wireguard-go gateways
# with the same key and peer behind a keepalived VRRPv3 VIP (advert_int 0.1),
# a wireguard-go client pinging the LAN host through the tunnel every 20 ms
# while an iperf3 TCP stream runs, then SIGKILL of the master's wireguard-go
# and keepalived (topology: tests/integration/lib/failover.sh).
#
# Asserts: the VIP moves within 2 s; the new master has no session, so the
# longest ping gap is at least 5 s (the client waits for its own timers,
# ~15 s) and the client sends a new handshake initiation; nothing the
# gateways sent reused a (receiver, counter) pair. Prints the numbers.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib/harness.sh
. "${GW_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/integration/lib/harness.sh"
# shellcheck source-path=SCRIPTDIR source=lib/failover.sh
. "$H_SOURCE_DIR/tests/integration/lib/failover.sh"

h_require_root
h_require_cmd ip ping wireguard-go wg keepalived iperf3 jq dumpcap tshark

f_lab 2
f_wggo_node 1
f_wait_master 10 1
f_wggo_node 2
f_client_up
h_wait_ping client "$F_LAN4" 10

f_capture_start cap
f_ping_start ping
f_iperf_start tcp 30
sleep 3
f_kill_master ping 40
t_end=$(f_now)
sleep 1
f_ping_stop ping

vip_s=$(f_secs "$F_T_KILL" "$F_T_MASTER")
gap=$(f_ping_gap ping "$F_T_KILL" "$t_end")
h_assert_le "$vip_s" 2 "seconds until keepalived moved the VIP"
h_assert_ge "$gap" 5000 "longest ping gap (ms) of a failover without session sync"
tcp=$(f_iperf_result tcp "$F_T_KILL" 60)
f_capture_stop cap
inits=$(f_init_from_client cap "$F_T_KILL" "$t_end")
h_assert_ge "$inits" 1 "handshake initiations from the client during the failover"
h_assert_eq "$(f_dup_pairs cap | wc -l)" 0 "(receiver, counter) pairs sent twice to the client"
h_log "status quo: VIP moved in $vip_s s, ping gap $gap ms, $inits handshake initiation(s), iperf3: $tcp"
