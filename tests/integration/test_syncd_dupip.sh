#!/usr/bin/env bash
# The same allowed IP on several peers (tests/integration/lib/cluster.sh:
# three nodes, node 3 syncing over IPv6). A node refuses an allowed IP that
# another peer it knows has (`gwctl peer add/set`, unless
# --move-allowed-ips) and a duplicate within one `gwctl apply` file, but
# nothing can check across a partition. With every node cut off from the
# others, in this order:
#
#   198.18.7.0/24     P1 on node 1, P2 on node 3, P5 on node 2 -> P5 (3 claims)
#   2001:db8:f:7::/64 P3 on node 3, P4 on node 1               -> P4
#
# Nodes 1 and 2 heal first (P1 and P5 contest 198.18.7.0/24 there), then
# node 3. After healing, every node gives each contested prefix to the peer with the
# newest record (greatest hlc), so all three gwd hold the same
# configuration, `gwctl status` reports 2 contested allowed IPs, each
# syncd's log names them, and nothing moves afterwards: `wg showconf` stays
# identical on all nodes for 6 s (several periodic reconciliations) and no
# syncd applies anything meanwhile. Then the winners go away (removed,
# rewritten without the prefix) and the prefixes pass on, newest first.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib/harness.sh
. "${GW_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/integration/lib/harness.sh"
# shellcheck source=lib/cluster.sh
. "$H_SOURCE_DIR/tests/integration/lib/cluster.sh"

h_require_root
c_require

c_lab 3
for i in 1 2 3; do
	c_syncd_up "$i"
done
c_wait_synced 15 1 2 3

mapfile -t K < <(c_keys 5)
P1=${K[0]} P2=${K[1]} P3=${K[2]} P4=${K[3]} P5=${K[4]}

# hlc I PUB: the stamp of PUB's record on node I.
hlc() {
	c_ctl "$1" --json peer show "$2" | jq -r .hlc
}
# aips I PUB: the allowed IPs gwd of node I holds for PUB, sorted, comma-separated.
aips() {
	h_wg "n$1" show "$(c_if "$1")" allowed-ips | awk -v k="$2" '$1 == k {
		for (i = 2; i <= NF; i++) if ($i != "(none)") print $i }' | sort | paste -sd, -
}
conflicts() {
	c_status "$1" | jq -r '.apply_conflicts // "none"'
}
unreachable() {
	[[ $(c_status "$1" | jq -r --argjson j "$2" '.members[] | select(.node_id == $j)
		| .reachable') == false ]]
}

c_partition 2
c_partition 3
h_wait_for 10 "node 1 to see node 3 unreachable" unreachable 1 3
h_wait_for 10 "node 3 to see node 1 unreachable" unreachable 3 1
h_wait_for 10 "node 1 to see node 2 unreachable" unreachable 1 2
h_wait_for 10 "node 2 to see node 1 unreachable" unreachable 2 1
later() { # one clock: a write after this is stamped later
	sleep 0.05
}
c_ctl 1 peer add "$P1" allowed-ips 198.18.0.1/32,198.18.7.0/24 >/dev/null
c_ctl 3 peer add "$P3" allowed-ips 198.18.0.3/32,2001:db8:f:7::/64 >/dev/null
later
c_ctl 3 peer add "$P2" allowed-ips 198.18.0.2/32,198.18.7.0/24 >/dev/null
c_ctl 1 peer add "$P4" allowed-ips 198.18.0.4/32,2001:db8:f:7::/64 >/dev/null
later
c_ctl 2 peer add "$P5" allowed-ips 198.18.0.5/32,198.18.7.0/24 >/dev/null
(($(hlc 3 "$P2") > $(hlc 1 "$P1"))) || h_fail "P2's record is not newer than P1's"
(($(hlc 2 "$P5") > $(hlc 3 "$P2"))) || h_fail "P5's record is not newer than P2's"
(($(hlc 1 "$P4") > $(hlc 3 "$P3"))) || h_fail "P4's record is not newer than P3's"
# The majority side: P1 and P5 contest 198.18.7.0/24 once nodes 1 and 2 meet.
c_heal 2
c_wait_converged 20 1 2
h_assert_eq "$(conflicts 1)" 1 "contested allowed IPs on node 1 while partitioned"
h_assert_eq "$(aips 1 "$P1")" 198.18.0.1/32 "P1 on node 1 while partitioned"
h_assert_eq "$(aips 1 "$P5")" 198.18.0.5/32,198.18.7.0/24 "P5 on node 1 while partitioned"
h_assert_eq "$(conflicts 3)" 0 "contested allowed IPs on node 3 while partitioned"

T0=$(h__now_us)
c_heal 3
c_wait_converged 30
h_log "converged $((($(h__now_us) - T0) / 1000)) ms after healing"

expect_owners() { # expect_owners WHAT PUB@IPS...
	local what=$1 i p
	shift
	for i in 1 2 3; do
		for p in "$@"; do
			h_assert_eq "$(aips "$i" "${p%@*}")" "${p#*@}" "$what: node $i, peer ${p%@*}"
		done
	done
}
expect_owners "after healing" \
	"$P1@198.18.0.1/32" "$P2@198.18.0.2/32" "$P5@198.18.0.5/32,198.18.7.0/24" \
	"$P3@198.18.0.3/32" "$P4@198.18.0.4/32,2001:db8:f:7::/64"
for i in 1 2 3; do
	h_assert_eq "$(conflicts "$i")" 2 "contested allowed IPs reported by node $i"
	for p in 198.18.7.0/24 2001:db8:f:7::/64; do
		grep -q "allowed IP $p is listed by [23] peers" "$(h_log_of "syncd$i")" ||
			h_fail "syncd$i's log does not name the contested $p"
	done
done

# Stable: nothing moves, nobody applies anything, for 6 s.
applied_lines() {
	grep -c "applied to\|reconciled:" "$(h_log_of "syncd$1")" || true
}
REF=$(c_showconf 1)
declare -A A0
for i in 1 2 3; do
	A0[$i]=$(applied_lines "$i")
done
for ((s = 0; s < 12; s++)); do
	sleep 0.5
	for i in 1 2 3; do
		h_assert_eq "$(c_showconf "$i")" "$REF" "wg showconf of node $i, $((s * 500 + 500)) ms after convergence"
	done
done
for i in 1 2 3; do
	h_assert_eq "$(applied_lines "$i")" "${A0[$i]}" "changes applied by syncd$i while nothing changed"
done

# The winners go away: each prefix passes to the newest remaining claim.
c_ctl 2 peer remove "$P5" >/dev/null
c_ctl 3 peer set "$P4" allowed-ips 198.18.0.4/32 >/dev/null
c_wait_converged 10
expect_owners "after the winners left" \
	"$P1@198.18.0.1/32" "$P2@198.18.0.2/32,198.18.7.0/24" \
	"$P3@198.18.0.3/32,2001:db8:f:7::/64" "$P4@198.18.0.4/32"
h_assert_eq "$(conflicts 1)" 1 "contested allowed IPs on node 1 (P1 and P2 left)"
c_ctl 1 peer remove "$P2" >/dev/null
c_wait_converged 10
expect_owners "after P2 left" "$P1@198.18.0.1/32,198.18.7.0/24"
for i in 1 2 3; do
	h_assert_eq "$(conflicts "$i")" 0 "contested allowed IPs on node $i at the end"
	h_assert_eq "$(c_rejected "$i")" 0 "rejected messages on node $i"
done

# Across writes, a node refuses an allowed IP another peer has, names that
# peer, and changes nothing; --move-allowed-ips moves it in one update.
P6=$(c_keys 1)
c_ctl 1 peer set "$P1" name alice >/dev/null
if OUT=$(c_ctl 2 peer add "$P6" allowed-ips 198.18.0.6/32,198.18.7.0/24 2>&1); then
	h_fail "peer add of P1's 198.18.7.0/24 was accepted: $OUT"
fi
[[ $OUT == *"allowed IP 198.18.7.0/24 is already peer $P1 (alice)'s"*"--move-allowed-ips"* ]] ||
	h_fail "the refusal does not name P1: $OUT"
c_ctl 2 peer show "$P6" >/dev/null 2>&1 && h_fail "the refused peer was added"
OUT=$(c_ctl 2 peer add "$P6" allowed-ips 198.18.0.6/32,198.18.7.0/24 --move-allowed-ips) ||
	h_fail "peer add --move-allowed-ips failed"
[[ $OUT == *"moved 198.18.7.0/24 from $P1 (alice)"* ]] || h_fail "no move reported: $OUT"
c_wait_converged 10
expect_owners "after the move" "$P1@198.18.0.1/32" "$P6@198.18.0.6/32,198.18.7.0/24"
for i in 1 2 3; do
	h_assert_eq "$(c_ctl "$i" --json peer show "$P1" | jq -r '.allowed_ips | join(",")')" \
		198.18.0.1/32 "P1's stored allowed IPs on node $i after the move"
	h_assert_eq "$(conflicts "$i")" 0 "contested allowed IPs on node $i after the move"
done
if OUT=$(c_ctl 3 peer set "$P1" allowed-ips 198.18.0.1/32,198.18.7.0/24 2>&1); then
	h_fail "peer set of P6's 198.18.7.0/24 was accepted: $OUT"
fi
[[ $OUT == *"is already peer $P6's"* ]] || h_fail "the refusal does not name P6: $OUT"
c_ctl 1 --move-allowed-ips status >/dev/null 2>&1 && h_fail "--move-allowed-ips accepted by status"
true
