#!/usr/bin/env bash
# Replays after a failover, and the replication lag that bounds them
# (tests/integration/lib/failover.sh; two gateways, wireguard-go client).
#
# 1. Lag. The client pings every 250 ms (one data packet each); a poller
#    reads stats=1 of both gwd every millisecond. For each client packet:
#    the time until the master exported receive progress (export_rx) and
#    until the standby imported it (import_rx) -- the window in which a
#    packet accepted by the master could be accepted once more by the
#    standby after a takeover. Printed; every packet must be covered within
#    1 s (receive progress is replicated at all).
# 2. Replay. Under a ping every 20 ms the master is SIGKILLed (hitless, as
#    in test_failover_kill2). Then, with the client quiet, the raw UDP
#    payload of a client data packet captured 2 s before the kill is sent
#    again to the VIP from the client's address and port: the new master
#    must drop it as a replay (drop_replay + 1) and deliver nothing
#    (tun_tx_packets unchanged). gwd runs with --takeover-rekey-rate 0 so
#    the replicated keypair is still in use and the replicated receive
#    floor is what rejects the packet. The last client packet before the
#    kill, inside the lag window, is replayed too; whether it was accepted
#    is reported, not asserted (the documented exposure).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib/harness.sh
. "${GW_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/integration/lib/harness.sh"
# shellcheck source-path=SCRIPTDIR source=lib/failover.sh
. "$H_SOURCE_DIR/tests/integration/lib/failover.sh"

h_require_root
IMPL=${F_IMPL:-gwcluster}
F_GWD_ARGS="--takeover-rekey-rate 0"
F_EVENTS=()
f_start "$IMPL" 2

uapi() {
	echo "$H_WG_RUN_DIR/${F_IFS[$1]}.sock"
}

# ---- 1. replication lag of receive progress
f_capture_start lag
h_spawn lan watch python3 "$F_TOOL" watch --sock "$(uapi 1),$(uapi 2)" \
	--keys export_rx,import_rx --seconds 9 --out "$H_LOGDIR/watch.txt"
sleep 0.5
t0=$(f_now)
h_exec_timeout client 20 ping -n -q -i 0.25 -c 30 "$F_LAN4" >/dev/null ||
	h_fail "sparse ping lost packets"
t1=$(f_now)
h_wait_exit watch 10
f_capture_stop lag
f_capture_fields lag >/dev/null
lag=$(f_tool lag --tsv "$H_LOGDIR/lag.tsv" --watch "$H_LOGDIR/watch.txt" --client "$F_CLIENT4" \
	--t0 "$t0" --t1 "$t1")
h_log "replication lag of receive progress (ms after the client's packet): $(tr '\n' ';' <<<"$lag")"
covered=$(awk '/^packets/ { print ($2 == $4 && $2 >= 25) ? 1 : 0 }' <<<"$lag")
h_assert_eq "$covered" 1 "every client packet's receive progress reached the standby"
h_assert_le "$(awk '/^max_import_ms/ { print $2 }' <<<"$lag")" 1000 \
	"ms until the standby imported a packet's receive progress"

# ---- 2. failover, then replays
f_capture_start cap
f_ping_start ping
sleep 3
f_hitless_failover cap ping
f_ping_stop ping
sleep 0.5
f_capture_stop cap
f_check_events cap
old_pkt=$(f_client_pkt cap "$(awk -v t="$F_T_KILL" 'BEGIN { printf "%.6f", t - 2 }')")
last_pkt=$(f_client_pkt cap "$F_T_KILL")
[[ -n $old_pkt && -n $last_pkt ]] || h_fail "no complete client data packet before the kill"
read -r -a o <<<"$old_pkt"
read -r -a l <<<"$last_pkt"
h_log "replaying client packet receiver ${o[1]} counter ${o[2]} sent at ${o[0]} (2 s before the kill)"

n=$F_NEW
dr0=$(f_stat "$n" drop_replay)
tun0=$(f_stat "$n" tun_tx_packets)
f_replay "$old_pkt"
sleep 0.3
dr1=$(f_stat "$n" drop_replay)
tun1=$(f_stat "$n" tun_tx_packets)
h_assert_eq "$((dr1 - dr0))" 1 "drop_replay of gw$n after the replay of an old client packet"
h_assert_eq "$((tun1 - tun0))" 0 "packets gw$n delivered after the replay"

# The last packet before the kill: inside the replication lag, maybe accepted.
f_replay "$last_pkt"
sleep 0.3
dr2=$(f_stat "$n" drop_replay)
tun2=$(f_stat "$n" tun_tx_packets)
if ((tun2 > tun1)); then
	verdict="ACCEPTED (inside the lag window)"
else
	verdict="rejected (drop_replay +$((dr2 - dr1)))"
fi
h_log "replay of the last client packet before the kill (counter ${l[2]}," \
	"$(f_secs "${l[0]}" "$F_T_KILL") s before it): $verdict"
h_log "old packet rejected by gw$n's replicated receive floor; nothing delivered"
