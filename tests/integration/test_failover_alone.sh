#!/usr/bin/env bash
# The last node standing restarts (docs/failover.md, Readiness for master;
# tests/integration/lib/failover.sh, two gwcluster gateways, a wireguard-go
# client pinging the LAN host every 20 ms):
#
# 1. gw2 (backup) dies for good; then gw1 (master) is killed and restarted.
# 2. gw1 hears no member since it started: it cannot tell "gw2 is gone" from
#    "gw2 is cut off and serves the clients", so it stays not ready
#    (SyncedFile non-zero, keepalived never MASTER) for longer than the
#    start-up grace that used to let such a node through; nobody answers
#    the client.
# 3. `gwctl role ready` is refused without --force; with --force gw1 becomes
#    ready, keepalived makes it MASTER and the client's traffic resumes
#    after a new handshake (the sessions died with gw1's gwd).
#
# No (receiver, counter) pair of a gateway->client data packet twice.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib/harness.sh
. "${GW_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/integration/lib/harness.sh"
# shellcheck source-path=SCRIPTDIR source=lib/failover.sh
. "$H_SOURCE_DIR/tests/integration/lib/failover.sh"

h_require_root

synced_value() {
	cat "$(f_synced_file 1)" 2>/dev/null || echo none
}

ready_master() {
	[[ $(synced_value) == 0 && $(f_state 1) == MASTER ]]
}

f_start gwcluster 2
f_capture_start cap
f_ping_start ping
sleep 2

# 1. the backup dies for good, then the master dies and comes back alone
f_kill_node 2
sleep 1
f_kill_node 1
t_down=$F_T_KILL
f_gwc_node 1

# 2. not ready, however long it waits (the grace was 2 x 3 s)
end=$((SECONDS + 12))
while ((SECONDS < end)); do
	v=$(synced_value)
	[[ $v != 0 ]] || h_fail "gw1 ready although it has heard no member since it started"
	[[ $(f_state 1) != MASTER ]] || h_fail "gw1 is keepalived MASTER while its SyncedFile says $v"
	sleep 0.2
done
h_log "gw1 alone for 12 s: keepalived $(f_state 1), SyncedFile $(synced_value);" \
	"$(f_ctl 1 role show 2>&1 | grep -m1 'ready' || true)"
# (a reply already in flight at the kill may arrive just after it)
if f__ping_after ping "$(awk -v t="$t_down" 'BEGIN { printf "%.6f", t + 1 }')"; then
	h_fail "a ping reply while no node was ready"
fi

# 3. the operator's word
if f_ctl 1 role ready >/dev/null 2>&1; then
	h_fail "gwctl role ready was accepted without --force"
fi
out=$(f_ctl 1 role ready --force 2>&1) || h_fail "gwctl role ready --force: $out"
t_force=$(f_now)
h_log "gwctl role ready --force: $(head -n 1 <<<"$out")"
h_wait_for 10 "gw1 ready and keepalived MASTER" ready_master
h_log "gw1 MASTER $(f_secs "$t_force" "$(f_now)") s after role ready --force"
f_wait_ping_after ping "$t_force" 40
t_reply=$(f_now)
h_log "ping replies again $(f_secs "$t_force" "$t_reply") s after role ready --force"

f_ping_stop ping
f_capture_stop cap
inits=$(f_init_from_client cap "$t_down" "$t_reply")
h_assert_ge "$inits" 1 "handshake initiations from the client after gw1 restarted"
h_assert_eq "$(f_dup_pairs cap | wc -l)" 0 \
	"(receiver, counter) pairs the gateways sent twice to the client"
h_log "the last node standing served again only on the operator's word;" \
	"$inits client initiation(s)"
