#!/usr/bin/env bash
# kill -9 of syncd in the middle of a stream of acknowledged writes
# (tests/integration/lib/cluster.sh: three nodes).
#
# A writer adds peers through node 2's syncd, one `gwctl peer add` after the
# other, and records every key whose gwctl exited 0 (acknowledged); a second
# writer does the same through node 1, so node 2 also receives remote
# updates while it dies. Node 2's syncd gets SIGKILL at KILLS (4) random
# moments and is restarted after a random pause. After each restart, before
# anything else: every key node 2 acknowledged so far is in node 2's store.
# The kills hit a running stream: before each kill, writes were acknowledged
# again after the previous restart, and the kill follows within 2 s. At the
# end: every acknowledged key of both writers is in the store and in gwd of
# all three nodes, the nodes have identical showconf and peer lists, and
# node 2 is synced again.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib/harness.sh
. "${GW_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/integration/lib/harness.sh"
# shellcheck source=lib/cluster.sh
. "$H_SOURCE_DIR/tests/integration/lib/cluster.sh"

h_require_root
c_require

KILLS=${KILLS:-4}
c_lab 3
for i in 1 2 3; do
	c_syncd_up "$i"
done
c_wait_synced 15 1 2 3

# start_writer NODE: acked-writer through NODE's control socket, with its own
# keys and allowed IPs (198.18.(20 NODE + n / 250).(n % 250 + 1)).
start_writer() {
	local i=$1
	c_keys 3000 >"$H_LOGDIR/keys$i"
	: >"$H_LOGDIR/acked$i"
	h_spawn "n$i" "writer$i" python3 "$C_TOOL" acked-writer --gwctl "$C_GWCTL" \
		--config "$(c_conf_path "$i")" --keys "$H_LOGDIR/keys$i" --out "$H_LOGDIR/acked$i" \
		--timeout-ms 2000 --ip-base $((i * 20))
}
acked() {
	cut -d' ' -f1 "$H_LOGDIR/acked$1"
}
n_acked() {
	grep -c . "$H_LOGDIR/acked$1" || true
}
# missing I FILE: keys of FILE that node I's store lacks.
missing() {
	comm -23 <(LC_ALL=C sort -u "$2") <(c_list "$1" | jq -r .public_key | LC_ALL=C sort -u)
}
acked_more_than() {
	(($(n_acked "$1") > $2))
}

start_writer 2
start_writer 1
h_wait_for 10 "first acknowledged writes" acked_more_than 2 20

for ((k = 1; k <= KILLS; k++)); do
	sleep "$((RANDOM % 2)).$((RANDOM % 10))"
	before=$(n_acked 2)
	h_kill syncd2 KILL
	sleep "0.$((RANDOM % 5 + 1))"
	c_syncd_up 2
	# Node 1's acknowledged keys may still be on their way to node 2; node
	# 2's own must be there at once.
	lost=$(missing 2 <(acked 2))
	[[ -z $lost ]] || h_fail "kill $k: $(wc -l <<<"$lost") keys acknowledged by node 2 missing after restart: $(head -n 3 <<<"$lost")"
	h_log "kill $k: $before acknowledged before, all $(n_acked 2) acknowledged by node 2 present after restart"
	h_wait_for 10 "writes acknowledged again after restart $k" acked_more_than 2 "$(n_acked 2)"
done
h_kill writer2 TERM
h_kill writer1 TERM

N2=$(n_acked 2)
N1=$(n_acked 1)
FAILED=$(awk 'END { print NR }' "$H_LOGDIR/acked2.fail")
h_log "writer 2: $N2 acknowledged, $FAILED refused or unanswered; writer 1: $N1 acknowledged"
h_log "writer 2's failures by gwctl exit status and message:"
cut -d' ' -f3- "$H_LOGDIR/acked2.fail" | sed 's/[A-Za-z0-9+/]\{43\}=/KEY/g' | sort | uniq -c | sed 's/^/    /' >&2
# Not asserted: a request in flight at a kill may reach the restarted syncd
# (ZeroMQ reconnects gwctl's socket) and succeed, so a slow (sanitizer) build
# can go through every kill without a failure.

c_wait_synced 15 2
c_wait_converged 30
h_wait_for 10 "every node synced, nothing behind" c_caught_up 1 2 3
{
	acked 1
	acked 2
} >"$H_LOGDIR/all_acked"
for i in 1 2 3; do
	lost=$(missing "$i" "$H_LOGDIR/all_acked")
	[[ -z $lost ]] || h_fail "node $i lacks $(wc -l <<<"$lost") acknowledged keys: $(head -n 3 <<<"$lost")"
	lost=$(comm -23 <(LC_ALL=C sort -u "$H_LOGDIR/all_acked") <(c_peers "$i" | LC_ALL=C sort -u))
	[[ -z $lost ]] || h_fail "gwd of node $i lacks $(wc -l <<<"$lost") acknowledged keys: $(head -n 3 <<<"$lost")"
done
h_log "all $((N1 + N2)) acknowledged keys on all 3 nodes (store and gwd); $(c_peer_count 1) peers in all"
