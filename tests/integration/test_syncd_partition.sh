#!/usr/bin/env bash
# Partition and heal (tests/integration/lib/cluster.sh: three nodes, node 3
# syncing over IPv6). Node 3 is cut off by an nftables rule in its own
# namespace that drops every TCP packet to or from the sync ports, both
# ways. Both sides keep taking writes:
#
#   conflicting (the same peer written on both sides; each write's stamp is
#   read back on the node that made it, so the later write is known):
#     A  set on node 3, later set on node 1        -> node 1's value
#     B  set on node 1, later set on node 3        -> node 3's value
#     C  removed on node 1, later set on node 3    -> back, node 3's value
#     D  set on node 3, later removed on node 1    -> gone
#     X  added on node 2, later added on node 3    -> node 3's value
#   non-conflicting: 100 adds on each side, a removal and a set on each side.
#
# While partitioned: the rule drops packets, each side sees the other
# unreachable, nodes 1 and 2 converge between themselves, and neither side
# has the other's writes. After healing: all three nodes converge to the same
# `wg showconf` and `gwctl peer list`, every conflict resolved by last writer
# wins as listed (value, writer and hlc of the later write), no tombstoned
# peer resurrected, every node synced with nothing behind.
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

# Peers A..H (198.18.0.1..8), present everywhere before the partition.
mapfile -t K < <(c_keys 8)
A=${K[0]} B=${K[1]} C=${K[2]} D=${K[3]} E=${K[4]} F=${K[5]} G=${K[6]} H=${K[7]}
n=0
for k in "${K[@]}"; do
	n=$((n + 1))
	echo "[Peer]"
	echo "PublicKey = $k"
	echo "AllowedIPs = 198.18.0.$n/32"
	echo "Name = initial"
done >"$H_LOGDIR/initial.conf"
c_ctl 1 apply "$H_LOGDIR/initial.conf" >/dev/null
c_wait_converged 10
h_assert_eq "$(c_peer_count 3)" 8 "peers on node 3 before the partition"

# reach I J: what node I's status says about member J.
reach() {
	c_status "$1" | jq -r --argjson j "$2" '.members[] | select(.node_id == $j) | .reachable'
}
unreachable() {
	[[ $(reach "$1" "$2") == false ]]
}

c_partition 3
for p in "1 3" "2 3" "3 1" "3 2"; do
	read -r i j <<<"$p"
	h_wait_for 10 "node $i to see node $j unreachable" unreachable "$i" "$j"
done
h_assert_eq "$(reach 1 2)" true "node 1 still reaches node 2"

# stamp I PUB: "hlc writer" of PUB as node I stores it (right after I wrote it).
stamp() {
	c_ctl "$1" --json peer show "$2" | jq -r '"\(.hlc) \(.writer)"'
}
# Writes on one clock (one machine): a pause makes "later" unambiguous.
later() {
	sleep 0.02
}

c_ctl 3 peer set "$A" name minority-A keepalive 3 >/dev/null
A3=$(stamp 3 "$A")
c_ctl 1 peer set "$B" name majority-B keepalive 1 >/dev/null
B1=$(stamp 1 "$B")
c_ctl 1 peer remove "$C" >/dev/null
c_ctl 3 peer set "$D" name minority-D keepalive 3 >/dev/null
D3=$(stamp 3 "$D")
X=$(c_keys 1)
c_ctl 2 peer add "$X" allowed-ips 198.18.50.2/32 name majority-X >/dev/null
X2=$(stamp 2 "$X")
later
c_ctl 1 peer set "$A" name majority-A keepalive 1 >/dev/null
A1=$(stamp 1 "$A")
c_ctl 3 peer set "$B" name minority-B keepalive 3 >/dev/null
B3=$(stamp 3 "$B")
c_ctl 3 peer set "$C" name minority-C keepalive 3 >/dev/null
C3=$(stamp 3 "$C")
c_ctl 1 peer remove "$D" >/dev/null
c_ctl 3 peer add "$X" allowed-ips 198.18.50.3/32 name minority-X >/dev/null
X3=$(stamp 3 "$X")
# The stamps must order as the writes did (hlc fits bash's 64-bit integers).
for p in "A $A3 $A1" "B $B1 $B3" "X $X2 $X3"; do
	read -r what h1 _ h2 _ <<<"$p"
	((h2 > h1)) || h_fail "$what: the later write's hlc $h2 is not above the earlier $h1"
done
h_log "conflicts written: A ${A3% *} < ${A1% *}, B ${B1% *} < ${B3% *}, X ${X2% *} < ${X3% *}, D ${D3% *} < (removal)"

# Non-conflicting: 100 adds on each side (198.18.1.N, 198.18.3.N), a removal
# and a set on each side.
c_keys 100 >"$H_LOGDIR/maj"
c_keys 100 >"$H_LOGDIR/min"
n=0
while read -r k; do
	n=$((n + 1))
	c_ctl $((n % 2 + 1)) peer add "$k" allowed-ips "198.18.1.$n/32" name majority >/dev/null
done <"$H_LOGDIR/maj"
n=0
while read -r k; do
	n=$((n + 1))
	c_ctl 3 peer add "$k" allowed-ips "198.18.3.$n/32" name minority >/dev/null
done <"$H_LOGDIR/min"
c_ctl 2 peer remove "$E" >/dev/null
c_ctl 3 peer remove "$F" >/dev/null
c_ctl 2 peer set "$G" name majority-G >/dev/null
c_ctl 3 peer set "$H" name minority-H >/dev/null

# Still apart: 1 and 2 agree, 3 has none of their writes and they none of its.
c_wait_converged 10 1 2
h_assert_ge "$(c_partition_drops 3)" 1 "packets dropped by the partition rule"
h_assert_eq "$(c_ctl 3 --json peer show "$A" | jq -r .name)" minority-A "A on node 3 while partitioned"
h_assert_eq "$(c_ctl 1 --json peer show "$B" | jq -r .name)" majority-B "B on node 1 while partitioned"
c_has_peer 1 "$(head -n 1 "$H_LOGDIR/min")" && h_fail "a write of node 3 reached node 1 through the partition"
c_has_peer 3 "$(head -n 1 "$H_LOGDIR/maj")" && h_fail "a write of node 1 reached node 3 through the partition"
h_assert_eq "$(c_peer_count 1)" $((8 - 3 + 1 + 100)) "peers on node 1 while partitioned (C, D, E removed)"
h_assert_eq "$(c_peer_count 3)" $((8 - 1 + 1 + 100)) "peers on node 3 while partitioned (F removed)"

T0=$(h__now_us)
c_heal 3
c_wait_converged 30
h_log "converged $((($(h__now_us) - T0) / 1000)) ms after healing"

# Last writer wins, everywhere.
expect() { # expect PUB NAME "HLC WRITER" WHAT
	local i got
	for i in 1 2 3; do
		got=$(c_ctl "$i" --json peer show "$1" | jq -r '"\(.name) \(.hlc) \(.writer)"')
		h_assert_eq "$got" "$2 $3" "$4 on node $i (name hlc writer)"
	done
}
expect "$A" majority-A "$A1" "A: set on 3, later on 1"
expect "$B" minority-B "$B3" "B: set on 1, later on 3"
expect "$C" minority-C "$C3" "C: removed on 1, later set on 3"
expect "$X" minority-X "$X3" "X: added on 2, later on 3"
expect "$G" majority-G "$(stamp 2 "$G")" "G: set on 2 only"
expect "$H" minority-H "$(stamp 3 "$H")" "H: set on 3 only"
for i in 1 2 3; do
	for k in "$D" "$E" "$F"; do
		c_lacks_peer "$i" "$k" || h_fail "tombstoned peer $k is in gwd of node $i"
		rc=0
		c_ctl "$i" peer show "$k" >/dev/null 2>&1 || rc=$?
		h_assert_eq "$rc" 1 "gwctl peer show of tombstoned $k on node $i (exit status)"
	done
	h_assert_eq "$(c_ctl "$i" --json peer show "$X" | jq -c .allowed_ips)" '["198.18.50.3/32"]' \
		"X's allowed IPs on node $i"
	h_assert_eq "$(c_peer_count "$i")" $((8 - 3 + 1 + 200)) "peers in gwd of node $i after healing"
done

h_wait_for 10 "every node synced, nothing behind" c_caught_up 1 2 3
for i in 1 2 3; do
	h_assert_eq "$(c_rejected "$i")" 0 "rejected messages on node $i"
done
