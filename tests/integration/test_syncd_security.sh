#!/usr/bin/env bash
# Who may talk to syncd, and what it does with bad input
# (tests/integration/lib/cluster.sh: three members, plus a fourth host n4 on
# the sync bridge that is no member).
#
#   1. intruder: a syncd on n4 (node id 4) with a Curve key pair no member
#      lists. Its state was synced once, alone, so it takes writes. Its
#      peers never reach the members, it never gets theirs, it sees nobody,
#      and every member counts the refused connections (rejected_messages,
#      which includes ZAP denials).
#   2. impostor: node 3's syncd is replaced by one that claims node id 3 at
#      node 3's address with another key pair (a [Member] entry whose key
#      does not match what the others know). Same outcome; then the real
#      node 3 comes back and the cluster converges without the impostor's
#      peers.
#   3. garbage on the wire: plain TCP to node 1's PUB and ROUTER ports
#      (random bytes, a ZMTP greeting with the NULL mechanism): refused at
#      the protocol level, syncd keeps running.
#   4. bad frames inside an authenticated channel: a CurveZMQ DEALER holding
#      node 3's key pair (ctypes on libzmq, cluster_tool.py inject) connects
#      to node 1's ROUTER. A RepairRequest answered before and after proves
#      the channel is authenticated and still served; in between, 10 bad
#      frames (garbage, truncated, no body, unknown version, other cluster,
#      spoofed origin, an Update and a SnapshotChunk on the request channel,
#      a RepairRequest for another origin, a two-frame message): node 1's
#      rejected_messages grows by exactly 10, its state does not change, and
#      the same DEALER with an unknown key pair gets no answer.
# Finally node 1 still takes a change that converges on all three.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib/harness.sh
. "${GW_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/integration/lib/harness.sh"
# shellcheck source=lib/cluster.sh
. "$H_SOURCE_DIR/tests/integration/lib/cluster.sh"

h_require_root
c_require

c_lab 3
c_node 4
for i in 1 2 3; do
	c_syncd_up "$i"
done
c_wait_synced 15 1 2 3

# Cluster state: 5 peers written on nodes 1..3.
mapfile -t P < <(c_keys 5)
for n in 0 1 2 3 4; do
	c_ctl $((n % 3 + 1)) peer add "${P[n]}" allowed-ips "198.18.0.$((n + 1))/32" >/dev/null
done
c_wait_converged 10
mapfile -t R < <(c_keys 4)

# rejected_of NODE...: their rejected_messages, blank-separated.
rejected_of() {
	local i
	for i in "$@"; do c_rejected "$i"; done | paste -sd' '
}
# grew "R..." NODE...: every node's rejected_messages above the one given.
grew() {
	local before now i
	read -r -a before <<<"$1"
	shift
	read -r -a now <<<"$(rejected_of "$@")"
	for i in "${!before[@]}"; do
		((now[i] > before[i])) || return 1
	done
}
# absent_on PUB WHAT NODE...: in none of these nodes' gwd or store.
absent_on() {
	local i rc pub=$1 what=$2
	shift 2
	for i in "$@"; do
		c_lacks_peer "$i" "$pub" || h_fail "$what: peer $pub is in gwd of node $i"
		rc=0
		c_ctl "$i" peer show "$pub" >/dev/null 2>&1 || rc=$?
		h_assert_eq "$rc" 1 "$what: gwctl peer show $pub on node $i (exit status)"
	done
}
# seen_nobody DIR: the status of the syncd of DIR shows no other member reachable.
seen_nobody() {
	c_ctl "$1" --json status |
		jq -e '[.members[] | select(.self | not) | .reachable] | any | not' >/dev/null
}
# own_peers DIR: the public keys the syncd of DIR stores, sorted.
own_peers() {
	c_ctl "$1" --json peer list | jq -r '.[].public_key' | LC_ALL=C sort
}

# ---- 1: intruder with an unknown key, node id 4
X=$H_LOGDIR/intruder
c_conf_other "$X" 4 4
c_syncd_up "$X" intruder n4
c_ctl "$X" peer add "${R[0]}" allowed-ips 198.18.9.1/32 >/dev/null
h_kill intruder TERM
BEFORE=$(rejected_of 1 2 3)
c_conf_other "$X" 4 1 2 3 4
c_syncd_up "$X" intruder n4
c_ctl "$X" peer add "${R[1]}" allowed-ips 198.18.9.2/32 >/dev/null ||
	h_fail "the intruder, synced once, should take a write locally"
h_wait_for 10 "every member to count the intruder's refused connections" grew "$BEFORE" 1 2 3
sleep 2 # 40 heartbeats: anything that could leak has had its chance
absent_on "${R[0]}" intruder 1 2 3
absent_on "${R[1]}" intruder 1 2 3
h_assert_eq "$(own_peers "$X")" "$(printf '%s\n' "${R[0]}" "${R[1]}" | LC_ALL=C sort)" \
	"the intruder's store holds only its own peers"
seen_nobody "$X" || h_fail "the intruder sees a member reachable"
h_assert_eq "$(c_peer_count 4)" 2 "peers in the intruder's gwd"
h_log "intruder refused; rejected_messages of nodes 1..3: $BEFORE -> $(rejected_of 1 2 3)"
grep -h -i "zap\|not a member\|denied" "$(h_log_of syncd1)" | tail -n 2 | sed 's/^/    /' >&2 || true
h_kill intruder TERM

# ---- 2: impostor claiming node 3 at node 3's address, with another key
c_syncd_kill 3
I=$H_LOGDIR/impostor
c_conf_other "$I" 3 3
c_syncd_up "$I" impostor n3
c_ctl "$I" peer add "${R[2]}" allowed-ips 198.18.9.3/32 >/dev/null
h_kill impostor TERM
BEFORE=$(rejected_of 1 2)
c_conf_other "$I" 3 1 2 3
c_syncd_up "$I" impostor n3
c_ctl "$I" peer add "${R[3]}" allowed-ips 198.18.9.4/32 >/dev/null ||
	h_fail "the impostor, synced once, should take a write locally"
h_wait_for 10 "nodes 1 and 2 to count the impostor's refused connections" grew "$BEFORE" 1 2
sleep 2
# (node 3's gwd is the impostor's now: it holds the impostor's peers)
absent_on "${R[2]}" impostor 1 2
absent_on "${R[3]}" impostor 1 2
seen_nobody "$I" || h_fail "the impostor sees a member reachable"
h_assert_eq "$(own_peers "$I")" "$(printf '%s\n' "${R[2]}" "${R[3]}" | LC_ALL=C sort)" \
	"the impostor's store holds only its own peers"
h_log "impostor refused; rejected_messages of nodes 1, 2: $BEFORE -> $(rejected_of 1 2)"
h_kill impostor TERM
c_syncd_up 3
c_wait_synced 10 3
c_wait_converged 15
for k in "${R[@]}"; do
	absent_on "$k" "after the real node 3 came back" 1 2 3
done
h_assert_eq "$(c_peer_count 3)" 5 "peers on the real node 3"

# ---- 3: garbage on the wire, no ZMTP/CURVE
for port in "$C_PORT" $((C_PORT + 1)); do
	h_exec n4 python3 "$C_TOOL" raw --addr "$(c_addr4 1)" --port "$port" >/dev/null
done
h_alive syncd1 || h_fail "syncd of node 1 died from garbage on its ports"
c_synced 1 || h_fail "node 1 no longer synced after garbage on its ports"

# ---- 4: bad frames inside an authenticated channel (node 3's keys)
STATE1=$(c_state 1)
BASE=$(c_rejected 1)
SPECS=garbage,truncated,nobody,version,cluster,origin,update-req,repair-other,chunk-req,multipart
OUT=$(h_exec_timeout n4 30 python3 "$C_TOOL" inject --endpoint "tcp://$(c_addr4 1):$((C_PORT + 1))" \
	--server-key="$(c__curve_pub 1)" --public="$(c__curve_pub 3)" \
	--secret="$(<"$(c_dir 3)/curve.secret")" --cluster "$C_NAME" --origin 3 --probe 1 \
	--frames "$SPECS")
h_assert_eq "$(paste -sd' ' <<<"$OUT")" "probe-before ok sent 10 probe-after ok" \
	"authenticated injection as node 3 (probes answered, frames sent)"
rejected_at_least() {
	(($(c_rejected "$1") >= $2))
}
h_wait_for 5 "node 1 to count 10 rejected frames" rejected_at_least 1 $((BASE + 10))
sleep 0.5
h_assert_eq "$(c_rejected 1)" $((BASE + 10)) "rejected_messages of node 1 after 10 bad frames"
h_alive syncd1 || h_fail "syncd of node 1 died from bad frames"
h_assert_eq "$(c_state 1)" "$STATE1" "node 1's state after the bad frames"
grep -h "dropped\|replica: from node 3" "$(h_log_of syncd1)" | tail -n 12 | sed 's/^/    /' >&2 || true

# The same with an unknown key pair: no answer, one more ZAP denial.
BASE=$(c_rejected 1)
OUT=$(h_exec_timeout n4 30 python3 "$C_TOOL" inject --endpoint "tcp://$(c_addr4 1):$((C_PORT + 1))" \
	--server-key="$(c__curve_pub 1)" --public="$(<"$X/curve.public")" \
	--secret="$(<"$X/curve.secret")" --cluster "$C_NAME" --origin 4 --probe 1 --wait 2 \
	--frames garbage)
h_assert_match "$(paste -sd' ' <<<"$OUT")" "^probe-before none sent [01] probe-after none$" \
	"injection with an unknown key (no answer)"
h_assert_ge "$(c_rejected 1)" $((BASE + 1)) "rejected_messages of node 1 after an unknown key"

# ---- still converging
K=$(c_keys 1)
c_ctl 1 peer add "$K" allowed-ips 198.18.0.100/32 >/dev/null
for i in 1 2 3; do
	h_wait_for 5 "node 1's new peer on node $i" c_has_peer "$i" "$K"
done
c_wait_converged 10
h_log "after all that: node 1 alive, rejected_messages $(rejected_of 1 2 3), cluster converged"
