#!/usr/bin/env bash
# No nonce reuse when the cluster is torn apart while both gateways keep
# running (tests/integration/lib/failover.sh; two gateways, a wireguard-go
# client pinging the LAN host every 20 ms under an iperf3 stream):
#
#  A. sync link cut: the backup's sync link is cut for 3 s while the master
#     serves, then healed; the backup catches up and a SIGKILL of the master
#     is still hitless (gap < 500 ms, replicated receiver index, no client
#     initiation); the killed node is restarted.
#  B. split brain, sync up: VRRP between the nodes is blocked, so both are
#     master; the LAN host's traffic is steered to one node and then the
#     other every 300 ms for 3 s, so both have packets to encrypt for the
#     client. The later claim takes ownership everywhere (ownership_lost on
#     the other); the master the client's packets reach claims the peer back
#     (claim on receive). VRRP heals: one master, traffic flows again within
#     5 s.
#  C. split brain, sync cut too: both own the peer and both send, each in
#     its own counter regions. Everything heals (VRRP first: the loser's
#     release reaches the master with the sync link); traffic flows again
#     within 5 s (checked last, after the safety checks).
#
# Asserts over the whole capture of the client's underlay: no (receiver,
# counter) pair of a gateway->client data packet twice, and every counter
# above epoch 0 in a region of the node that sent it; in C, data from both
# nodes to the client inside the split window.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib/harness.sh
. "${GW_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/integration/lib/harness.sh"
# shellcheck source-path=SCRIPTDIR source=lib/failover.sh
. "$H_SOURCE_DIR/tests/integration/lib/failover.sh"

h_require_root
h_require_cmd nft
IMPL=${F_IMPL:-gwcluster}
F_EVENTS=()
STALLED=""

# Steer the LAN host between the two nodes every 300 ms for SECS seconds.
alternate() {
	local end
	end=$(awk -v t="$(f_now)" -v d="$1" 'BEGIN { printf "%.3f", t + d }')
	while awk -v t="$(f_now)" -v e="$end" 'BEGIN { exit !(t < e) }'; do
		f_lan_via 1
		sleep 0.3
		f_lan_via 2
		sleep 0.3
	done
}

# Split brain between the nodes for 3 s (with the sync link cut when $1 is
# "cut"); prints "T0 T1" of the window.
split_brain() {
	local t0 t1
	[[ $1 == cut ]] && f_sync_cut 1
	f_vrrp_block 1
	h_wait_for 5 "both nodes master" f__all_master 1 2
	t0=$(f_now)
	alternate 3
	t1=$(f_now)
	f_vrrp_heal 1
	[[ $1 == cut ]] && f_sync_heal 1
	f_wait_master 5
	# The steering ends once one node holds the VIPs, so the LAN host and
	# the client resolve them to that node (a master that stays master after
	# a split sends no gratuitous ARP, and what the hosts learnt during the
	# split would point at the other node until it expires).
	f_lan_via
	h_exec client ip neigh del "$F_VIP4" dev eth0 2>/dev/null || true
	SPLIT_T0=$t0 SPLIT_T1=$t1
	# Liveness is checked after the safety checks below, so that a run that
	# loses traffic still reports whether a nonce was reused.
	local healed
	healed=$(f_now)
	if ! f__wait_gone_ping "$healed" 5; then
		STALLED+="split brain $1: no reply within 5 s of the heal (gw$(f_master) is master," \
		STALLED+=" owner $(f_stat "$(f_master)" owner --peer), owned $(f_stat "$(f_master)" owned --peer)); "
		h_log "STALLED: $STALLED"
	else
		h_log "split brain $1: first ping reply $(f__ping_ts ping | awk -v h="$healed" \
			'!d && $1 + 0 > h + 0 { printf "%.3f", $1 - h; d = 1 }') s" \
			"after the heal; gw$(f_master) is master and owner $(f_stat "$(f_master)" owner --peer)" \
			"(ownership epoch $(f_stat "$(f_master)" owner_epoch --peer))"
	fi
}

# True once ping has a reply later than T, false after SECS seconds.
f__wait_gone_ping() {
	local end=$((SECONDS + $2))
	until f__ping_after ping "$1"; do
		((SECONDS < end)) || return 1
		sleep 0.1
	done
}

f_start "$IMPL" 2
f_capture_start cap
f_ping_start ping
f_iperf_start tcp 60
t_iperf=$SECONDS
sleep 2

# ---- A: sync link cut while both run, then a failover
f_sync_cut 2
sleep 3
f_sync_heal 2
f_wait_eligible 20
sleep 1
f_hitless_failover cap ping
f_node "$IMPL" "$F_OLD"
f_wait_eligible 30
f_wait_master 5
master=$(f_master)
h_log "A done: gw$master is master"

# ---- B: split brain with the sync link up
lost0=$(($(f_stat 1 ownership_lost) + $(f_stat 2 ownership_lost)))
split_brain up
lost1=$(($(f_stat 1 ownership_lost) + $(f_stat 2 ownership_lost)))
h_assert_ge $((lost1 - lost0)) 1 "ownership_lost during the split brain with the sync link up"
B_T0=$SPLIT_T0 B_T1=$SPLIT_T1
h_log "B done: gw$(f_master) is master"

# ---- C: split brain with the sync link cut
split_brain cut
C_T0=$SPLIT_T0 C_T1=$SPLIT_T1
h_log "C done: gw$(f_master) is master"

sleep 1
f_ping_stop ping
tcp=$(f_iperf_result tcp "$F_T_KILL" $((t_iperf + 70 - SECONDS)))
f_capture_stop cap
f_check_events cap
h_assert_eq "$(f_dup_pairs cap | wc -l)" 0 \
	"(receiver, counter) pairs the gateways sent twice to the client"
f_regions cap >/dev/null
h_log "B window: $(f_regions cap "$B_T0" "$B_T1" | tr '\n' ';')"
c=$(f_regions cap "$C_T0" "$C_T1")
h_log "C window: $(tr '\n' ';' <<<"$c")"
h_assert_match "$c" "gw1 packets [1-9]" "gw1 sent data to the client during split brain C"
h_assert_match "$c" "gw2 packets [1-9]" "gw2 sent data to the client during split brain C"
h_log "no nonce reused across sync cut and two split brains; iperf3: $tcp"
[[ -z $STALLED ]] || h_fail "traffic did not resume after a split brain: $STALLED"
