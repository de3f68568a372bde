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
#
# Then, atomicity: `gwctl apply` of a new set of 3000 peers on node 2, with
# a kill -9 at a random moment of it, 3 times: after the restart node 2
# holds exactly the old set or exactly the new one (the new one if gwctl
# exited 0), and the cluster converges to it. Then a receiver dies in the
# middle of merging a large update (merged in slices, one transaction each,
# docs/sync-protocol.md): node 1 applies a set of 20000 peers, node 3's
# syncd gets SIGKILL once its log says the merge started and before it says
# the merge ended; after the restart node 3 has not counted the update as
# applied, fetches it again and ends with exactly the new set, like the
# others. Last, gwd of node 2 is killed and restarted empty: syncd
# re-applies every peer.
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

# ---- kill -9 during `gwctl apply`: all or nothing
# keyset I: node I's stored public keys, sorted, as one digest.
keyset() {
	c_list "$1" | jq -r .public_key | LC_ALL=C sort | sha256sum | cut -d' ' -f1
}
for ((k = 1; k <= 3; k++)); do
	c_keys 3000 | LC_ALL=C sort >"$H_LOGDIR/set$k"
	awk -v k="$k" '{ printf "[Peer]\nPublicKey = %s\nAllowedIPs = 2001:db8:f::%x:%x/128\n\n", $1, k, NR }' \
		"$H_LOGDIR/set$k" >"$H_LOGDIR/set$k.conf"
	OLD=$(keyset 2)
	NEW=$(sha256sum <"$H_LOGDIR/set$k" | cut -d' ' -f1)
	(
		rc=0
		c_ctl 2 --timeout 5000 apply "$H_LOGDIR/set$k.conf" >/dev/null 2>&1 || rc=$?
		echo "$rc" >"$H_LOGDIR/apply$k.rc"
	) &
	APPLY=$!
	sleep "0.$((RANDOM % 3))$((RANDOM % 10))"
	h_kill syncd2 KILL
	wait "$APPLY"
	RC=$(<"$H_LOGDIR/apply$k.rc")
	c_syncd_up 2
	GOT=$(keyset 2)
	if [[ $GOT == "$NEW" ]]; then
		what=new
	elif [[ $GOT == "$OLD" ]]; then
		what=old
		[[ $RC != 0 ]] || h_fail "apply $k was acknowledged, but node 2 holds the old set after kill -9"
	else
		h_fail "apply $k: node 2 holds neither the old nor the new set after kill -9 ($(c_list 2 | grep -c .) peers)"
	fi
	h_log "apply $k killed: gwctl exit $RC, node 2 holds the $what set"
	c_wait_converged 30
done

# ---- kill -9 of a receiver in the middle of a merge in slices
# merges I WHAT: lines of node I's syncd log about merges in slices (WHAT: merging, merged).
merges() {
	grep -c "replica: $2 update" "$(h_log_of "syncd$1")" || true
}
merges_more() { # merges_more I WHAT N
	(($(merges "$1" "$2") > $3))
}
BIG=20000
c_keys "$BIG" | LC_ALL=C sort >"$H_LOGDIR/big"
awk '{ printf "[Peer]\nPublicKey = %s\nAllowedIPs = 2001:db8:e::%x:%x/128\n\n", $1, int(NR / 65536), NR % 65536 }' \
	"$H_LOGDIR/big" >"$H_LOGDIR/big.conf"
NEW=$(sha256sum <"$H_LOGDIR/big" | cut -d' ' -f1)
M0=$(merges 3 merging)
D0=$(merges 3 merged)
c_ctl 1 --timeout 60000 apply "$H_LOGDIR/big.conf" >/dev/null
# Polled fast: the merge takes a few hundred ms on an idle machine.
for ((t = 0; t < 3000; t++)); do
	merges_more 3 merging "$M0" && break
	sleep 0.01
done
merges_more 3 merging "$M0" || h_fail "node 3 did not start merging the update of $BIG peers in 30 s"
h_kill syncd3 KILL
merges_more 3 merged "$D0" && h_fail "node 3 finished the merge before it was killed (too fast to test here)"
mv "$(h_log_of syncd3)" "$H_LOGDIR/syncd3.killed.log"
c_syncd_up 3
PARTIAL=$(c_list 3 | grep -c . || true)
h_log "node 3 killed in the middle of the merge; after the restart it holds $PARTIAL peers"
h_wait_for 60 "node 3 merged the update again" merges_more 3 merged 0
c_wait_converged 60
GOT=$(c_list 3 | jq -r .public_key | LC_ALL=C sort | sha256sum | cut -d' ' -f1)
[[ $GOT == "$NEW" ]] || h_fail "node 3 does not hold exactly the new set of $BIG peers after the restart"
h_wait_for 10 "every node synced, nothing behind" c_caught_up 1 2 3
h_log "node 3: the interrupted merge was fetched and merged again; it holds the $BIG peers"

# ---- gwd restarted empty: syncd applies everything again
N=$(c_peer_count 2)
h_kill "$(c_if 2)" KILL
rm -f "$H_WG_RUN_DIR/$(c_if 2).sock"
T0=$(h__now_us)
h_gwd_up n2 "$(c_if 2)"
peers_back() {
	[[ $(c_peer_count 2) == "$1" ]]
}
h_wait_for 10 "syncd to re-apply $N peers to the restarted gwd" peers_back "$N"
h_log "gwd restarted: all $N peers back $((($(h__now_us) - T0) / 1000)) ms later"
c_wait_converged 10
