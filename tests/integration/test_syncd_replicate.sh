#!/usr/bin/env bash
# Replication between three syncd nodes (tests/integration/lib/cluster.sh:
# namespaces n1..n3 on one bridge, gwd + syncd each, node 3 syncing over
# IPv6):
#
#   1. a peer added with gwctl on node 2 (every field: allowed IPs of both
#      families, keepalive, endpoint hint, preshared key, metadata) shows up
#      in `wg show IF peers` of all three gwd, with the same settings in
#      `wg showconf` and the same `gwctl peer show` (hlc, writer 2);
#   2. its removal on node 2 takes it out of all three gwd and stores;
#   3. about 1,000 changes: an initial `gwctl apply` (20 shared peers), then
#      three concurrent writers, one per node, each setting the 20 shared
#      peers (the same peers on every node at once: conflicting writes),
#      adding 200 peers, changing 60 of them and removing 40, then a
#      `gwctl apply` on node 3 that adds, changes and removes 20 each. Every
#      gwctl call must succeed; afterwards every node has the same
#      normalised `wg showconf` and the same `gwctl --json peer list`
#      (hlc and writer included), the expected peer set and values, a
#      shared peer's whole record comes from one writer (LWW replaces whole
#      records), and every node is synced with no lag.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib/harness.sh
. "${GW_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/integration/lib/harness.sh"
# shellcheck source=lib/cluster.sh
. "$H_SOURCE_DIR/tests/integration/lib/cluster.sh"

h_require_root
c_require

OWN=200 SETS=60 REMOVES=40 SHARED=20
c_lab 3
for i in 1 2 3; do
	c_syncd_up "$i"
done
c_wait_synced 15 1 2 3

# ---- 1: add on node 2, visible everywhere
PUB=$(c_keys 1)
PSK="$H_LOGDIR/psk"
(umask 077 && wg genpsk >"$PSK")
T0=$(h__now_us)
c_ctl 2 peer add "$PUB" allowed-ips 198.18.0.2/32,2001:db8:f::2 keepalive 25 \
	endpoint 192.0.2.7:51820 preshared-key "$PSK" name alice owner it@example.com tag laptop
for i in 1 2 3; do
	h_wait_for 5 "peer added on node 2 in gwd of node $i" c_has_peer "$i" "$PUB"
done
h_log "peer added on node 2 visible in the gwd of all 3 nodes after $((($(h__now_us) - T0) / 1000)) ms"
WANT=$(printf '%s\n' "$PUB AllowedIPs=198.18.0.2/32" "$PUB AllowedIPs=2001:db8:f::2/128" \
	"$PUB Endpoint=192.0.2.7:51820" "$PUB PersistentKeepalive=25" \
	"$PUB PresharedKey=$(<"$PSK")" | LC_ALL=C sort)
for i in 1 2 3; do
	h_assert_eq "$(c_showconf "$i")" "$WANT" "wg showconf of node $i"
	SHOW=$(c_ctl "$i" --json peer show "$PUB")
	h_assert_eq "$(jq -c '[.name, .owner, .tags, .preshared_key, .writer]' <<<"$SHOW")" \
		'["alice","it@example.com",["laptop"],true,2]' "gwctl peer show on node $i"
done
c_wait_converged 5

# ---- 2: removal on node 2
T0=$(h__now_us)
c_ctl 2 peer remove "$PUB"
for i in 1 2 3; do
	h_wait_for 5 "peer removed on node 2 gone from gwd of node $i" c_lacks_peer "$i" "$PUB"
done
h_log "removal visible in the gwd of all 3 nodes after $((($(h__now_us) - T0) / 1000)) ms"
for i in 1 2 3; do
	rc=0
	c_ctl "$i" peer show "$PUB" >/dev/null 2>&1 || rc=$?
	h_assert_eq "$rc" 1 "gwctl peer show of the removed peer on node $i (exit status)"
	h_assert_eq "$(c_peer_count "$i")" 0 "peers in gwd of node $i after the removal"
done

# ---- 3: ~1,000 changes
KEYS="$H_LOGDIR/keys"
mkdir -p "$KEYS"
c_keys "$SHARED" >"$KEYS/shared"
for w in 1 2 3; do
	c_keys "$OWN" >"$KEYS/own$w"
done

# Shared peers: one apply on node 1 (allowed IPs 198.18.100.N).
APPLY="$H_LOGDIR/shared.conf"
awk '{ printf "[Peer]\nPublicKey = %s\nAllowedIPs = 198.18.100.%d/32\nName = shared\n\n", $1, NR }' \
	"$KEYS/shared" >"$APPLY"
OUT=$(c_ctl 1 --json apply "$APPLY")
h_assert_eq "$(jq '.added | length' <<<"$OUT")" "$SHARED" "peers added by the first apply"

# writer W: conflicting sets of the shared peers (all three writers at once,
# each in its own random order), adds, sets of its own peers, removes.
# Own peer N of writer W: 198.18.W.N/32 (N < 250), later 198.19.W.N/32 and
# 2001:db8:f::W:N. Every failed gwctl call is recorded.
writer() {
	local w=$1 n=0 k fail
	fail="$H_LOGDIR/fail$1"
	: >"$fail"
	while read -r k; do
		c_ctl "$w" peer set "$k" name "w$w" keepalive "$w" tags "by$w" \
			>/dev/null 2>>"$fail" || echo "set shared $k" >>"$fail"
	done < <(shuf "$KEYS/shared")
	while read -r k; do
		n=$((n + 1))
		c_ctl "$w" peer add "$k" allowed-ips "198.18.$w.$n/32" name "own$w" \
			>/dev/null 2>>"$fail" || echo "add $k" >>"$fail"
	done <"$KEYS/own$w"
	n=0
	while read -r k; do
		n=$((n + 1))
		c_ctl "$w" peer set "$k" allowed-ips "198.19.$w.$n/32,2001:db8:f::$w:$n" \
			keepalive 25 >/dev/null 2>>"$fail" || echo "set $k" >>"$fail"
	done < <(head -n "$SETS" "$KEYS/own$w")
	while read -r k; do
		c_ctl "$w" peer remove "$k" >/dev/null 2>>"$fail" || echo "remove $k" >>"$fail"
	done < <(tail -n "$REMOVES" "$KEYS/own$w")
}

T0=$(h__now_us)
pids=()
for w in 1 2 3; do
	writer "$w" &
	pids+=($!)
done
for p in "${pids[@]}"; do
	wait "$p" || h_fail "a writer failed"
done
CHANGES=$((SHARED + 3 * (OWN + SHARED + SETS + REMOVES)))
h_log "$((CHANGES - SHARED)) gwctl changes from 3 concurrent writers in $((($(h__now_us) - T0) / 1000)) ms"
for w in 1 2 3; do
	[[ ! -s "$H_LOGDIR/fail$w" ]] || h_fail "writer $w: $(head -n 5 "$H_LOGDIR/fail$w")"
done
c_wait_converged 60
h_log "converged $((($(h__now_us) - T0) / 1000)) ms after the writers started"

# The expected set, and values.
{
	cat "$KEYS/shared"
	for w in 1 2 3; do head -n $((OWN - REMOVES)) "$KEYS/own$w"; done
} | LC_ALL=C sort >"$H_LOGDIR/expected"
EXPECTED=$((SHARED + 3 * (OWN - REMOVES)))
for i in 1 2 3; do
	h_assert_eq "$(c_peers "$i" | LC_ALL=C sort | sha256sum)" "$(sha256sum <"$H_LOGDIR/expected")" \
		"peer set in gwd of node $i ($EXPECTED expected, $(c_peer_count "$i") there)"
done
LIST=$(c_list 1)
for w in 1 2 3; do
	k=$(sed -n 7p "$KEYS/own$w")
	h_assert_eq "$(jq -c --arg k "$k" 'select(.public_key == $k) | [.allowed_ips, .persistent_keepalive, .writer]' <<<"$LIST")" \
		"[[\"198.19.$w.7/32\",\"2001:db8:f::$w:7/128\"],25,$w]" "peer 7 of writer $w after its set"
	k=$(sed -n "$((SETS + 1))p" "$KEYS/own$w")
	h_assert_eq "$(jq -c --arg k "$k" 'select(.public_key == $k) | [.allowed_ips, .name]' <<<"$LIST")" \
		"[[\"198.18.$w.$((SETS + 1))/32\"],\"own$w\"]" "peer $((SETS + 1)) of writer $w (never set)"
done
# A shared peer carries one writer's whole record: name, keepalive and tags
# of the writer in its `writer` field.
SHARED_LIST=$(jq -c 'select(.allowed_ips[0] | startswith("198.18.100."))' <<<"$LIST")
h_assert_eq "$(grep -c . <<<"$SHARED_LIST")" "$SHARED" "shared peers in the list"
BAD=$(jq -c 'select(.name != "w\(.writer)" or .persistent_keepalive != .writer
	or .tags != ["by\(.writer)"])' <<<"$SHARED_LIST")
h_assert_eq "$BAD" "" "shared peers whose record mixes writers"
WINNERS=$(jq -r .writer <<<"$SHARED_LIST" | sort | uniq -c | awk '{ printf "node %s: %s; ", $2, $1 }')
h_log "conflicting writes to the $SHARED shared peers won by $WINNERS"

# ---- apply on node 3: 20 removed, 20 changed, 20 added, the rest unchanged
# Removed: own peers 101..120 of writer 1; changed (renamed): those of writer 2.
c_keys 20 >"$KEYS/applied"
RM=$(sed -n 101,120p "$KEYS/own1" | jq -R . | jq -sc .)
CH=$(sed -n 101,120p "$KEYS/own2" | jq -R . | jq -sc .)
c_list 3 | jq -r --argjson rm "$RM" --argjson ch "$CH" '
	select(.public_key as $k | $rm | index($k) | not)
	| if (.public_key as $k | $ch | index($k)) then .name = "changed" else . end
	| "[Peer]\nPublicKey = \(.public_key)\nAllowedIPs = \(.allowed_ips | join(", "))"
	+ (if .persistent_keepalive > 0 then "\nPersistentKeepalive = \(.persistent_keepalive)" else "" end)
	+ (if .name then "\nName = \(.name)" else "" end)
	+ (if (.tags | length) > 0 then "\nTags = \(.tags | join(","))" else "" end) + "\n"' \
	>"$H_LOGDIR/all.conf"
awk '{ printf "[Peer]\nPublicKey = %s\nAllowedIPs = 198.18.200.%d/32\nName = applied\n\n", $1, NR }' \
	"$KEYS/applied" >>"$H_LOGDIR/all.conf"
DRY=$(c_ctl 3 --json apply --dry-run "$H_LOGDIR/all.conf")
h_assert_eq "$(jq -c '[(.added | length), (.removed | length), (.changed | length)]' <<<"$DRY")" \
	"[20,20,20]" "apply --dry-run on node 3: added, removed, changed"
OUT=$(c_ctl 3 --json apply "$H_LOGDIR/all.conf")
h_assert_eq "$(jq -c '[(.added | length), (.removed | length), (.changed | length)]' <<<"$OUT")" \
	"[20,20,20]" "apply on node 3: added, removed, changed"
CHANGES=$((CHANGES + 60))
c_wait_converged 30
for i in 1 2 3; do
	h_assert_eq "$(c_peer_count "$i")" "$EXPECTED" "peers in gwd of node $i after the apply"
	h_assert_eq "$(c_list "$i" | jq -s '[.[] | select(.name == "applied")] | length')" 20 \
		"applied peers on node $i"
	h_assert_eq "$(c_list "$i" | jq -s '[.[] | select(.name == "changed")] | length')" 20 \
		"changed peers on node $i"
	h_assert_eq "$(c_peers "$i" | grep -cxF -f <(sed -n 101,120p "$KEYS/own1") || true)" 0 \
		"peers removed by the apply still in gwd of node $i"
done
h_log "$CHANGES changes in all converged: $EXPECTED peers, identical showconf and peer list on 3 nodes"

# Every node synced, caught up with every other.
h_wait_for 10 "no lag and nothing behind on any node" c_caught_up 1 2 3
for i in 1 2 3; do
	h_assert_eq "$(c_rejected "$i")" 0 "rejected messages on node $i"
done
