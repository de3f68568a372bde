#!/usr/bin/env bash
# A restarted node is eligible for master only once it has resynced
# (tests/integration/lib/failover.sh; three gwcluster gateways, a wireguard-go
# client pinging the LAN host every 20 ms under an iperf3 stream):
#
# 1. SIGKILL of the master gw1 (gwd, syncd, keepalived): gw2 takes over (or
#    gw3: with advert_int 0.1 on a loaded machine the lower priority's
#    master-down timer sometimes fires first; either is a hitless takeover).
# 2. gw1's sync link is cut, then its daemons start again: its syncd hears
#    no member, so it neither catches up nor imports anyone's sessions, and
#    its SyncedFile (keepalived's track_file) stays non-zero: keepalived keeps
#    it in FAULT, never MASTER, although it has the highest priority.
# 3. SIGKILL of that master while gw1 is not synced: the third gateway takes
#    over, not gw1 (open finding 2: gw1 took "no member heard" for "every
#    live member imported").
# 4. gw1's sync link is healed: it resyncs (configuration, sessions), its
#    SyncedFile turns 0, keepalived makes it BACKUP; it was never MASTER
#    before that.
# 5. SIGKILL of the third gateway: gw1 takes over.
#
# Each takeover is hitless (gap < 500 ms, the client's receiver index kept,
# counters in the new owner's region, no client initiation); over the whole
# capture no (receiver, counter) pair of a gateway->client data packet twice.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib/harness.sh
. "${GW_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/integration/lib/harness.sh"
# shellcheck source-path=SCRIPTDIR source=lib/failover.sh
. "$H_SOURCE_DIR/tests/integration/lib/failover.sh"

h_require_root
F_EVENTS=()

synced_value() {
	cat "$(f_synced_file 1)" 2>/dev/null || echo none
}

# Fails if gw1 is MASTER while its SyncedFile is not 0.
check_not_master_unsynced() {
	local st v
	st=$(f_state 1)
	v=$(synced_value)
	if [[ $st == MASTER && $v != 0 ]]; then
		h_fail "gw1 is keepalived MASTER while its SyncedFile says $v (not synced)"
	fi
	echo "$st $v"
}

# Polls for SECS seconds; every poll must pass check_not_master_unsynced.
watch_unsynced() {
	local end=$((SECONDS + $1)) r
	while ((SECONDS < end)); do
		r=$(check_not_master_unsynced) || exit 1
		[[ ${r#* } != 0 ]] || h_fail "gw1 synced although its sync link is cut"
		[[ ${r% *} == FAULT || ${r% *} == BACKUP ]] ||
			h_fail "gw1's keepalived is ${r% *} while not synced"
		sleep 0.1
	done
}

f_start gwcluster 3
f_capture_start cap
f_ping_start ping
f_iperf_start tcp 45
sleep 2

# 1. the master dies
f_hitless_failover cap ping
[[ $F_OLD == 1 && ($F_NEW == 2 || $F_NEW == 3) ]] ||
	h_fail "first failover: expected gw1 -> gw2 or gw3, got gw$F_OLD -> gw$F_NEW"
second=$F_NEW third=$((5 - F_NEW))

# 2. gw1 comes back without its sync link
f_sync_cut 1
f_gwc_node 1
h_log "gw1 restarted without sync: keepalived $(f_state 1), SyncedFile $(synced_value)"
watch_unsynced 3

# 3. the new master dies while gw1 is not synced: the third must take over
f_hitless_failover cap ping
h_assert_eq "$F_OLD $F_NEW" "$second $third" "failover while gw1 is not synced"
watch_unsynced 1

# 4. gw1 resyncs, and only then becomes BACKUP
f_sync_heal 1
synced_backup() {
	local r
	r=$(check_not_master_unsynced) || exit 1
	[[ $r == "BACKUP 0" ]]
}
h_wait_for 30 "gw1 synced and BACKUP" synced_backup
h_log "gw1 resynced: SyncedFile 0, keepalived BACKUP," \
	"$(f_stat 1 sessions_standby) standby session(s)"
f_wait_eligible 10
sleep 1

# 5. the third dies: the resynced gw1 takes over
f_hitless_failover cap ping
h_assert_eq "$F_OLD $F_NEW" "$third 1" "failover to the resynced node"

f_ping_stop ping
tcp=$(f_iperf_result tcp "$F_T_KILL" 60)
f_capture_stop cap
f_check_events cap
h_assert_eq "$(f_dup_pairs cap | wc -l)" 0 \
	"(receiver, counter) pairs the gateways sent twice to the client"
f_regions cap >/dev/null
h_log "gw1 rejoined, was not eligible until synced, took over later; iperf3: $tcp"
