#!/usr/bin/env bash
# Active-active (BGP anycast) failover, with FRR for real (docs/anycast.md).
#
#   client1 192.0.2.2 --+                      +-- gw1 203.0.113.2  \
#   client2 192.0.2.3 --+--[access]-- rt --[core]-- gw2 203.0.113.3   lo: 198.51.100.1/32
#   lan 198.19.0.2 ------------------/         +-- gw3 203.0.113.4  /     2001:db8:2::1/128
#
# rt: zebra + bgpd + bfdd, AS 64500, maximum-paths (ECMP, L4 hash). Each
# gateway: gwd --anycast --owned-routes main, syncd (Mode = anycast),
# zebra + bgpd + bfdd (AS 64501, BFD 3 x 100 ms), and ha-hooks/gwcluster-bgp
# putting the VIP on lo while the node is healthy and ready. Each gateway
# announces the VIP and the inner addresses of the clients it owns (gwd's
# routes through its TUN); the LAN host reaches a client through the node
# that holds its session. The FRR configurations are frr-conf/'s templates.
#
# A. Every node announces the VIP: rt's route has one next hop per gateway
#    (IPv4 and IPv6). Two wireguard-go clients talk to 198.51.100.1:51820;
#    traffic both ways (client -> LAN ping, LAN -> client ping); the node
#    that receives a client's packets owns it, and only rt's route to the
#    client's inner address points at it.
# B. SIGKILL of every process of the node serving client1 (gwd, syncd,
#    zebra, bgpd, bfdd, the hook), its link cut first so it cannot say
#    goodbye (a dead machine is silent): BFD withdraws it (rt loses that next hop)
#    within 1 s; client1's traffic resumes through a survivor with the same
#    receiver index, counters in the survivor's region, no handshake from the
#    client; the LAN's pings to client1 are answered again (rt's route to its
#    inner address moved to the survivor); no (receiver, counter) pair twice.
#    Prints the gaps and the withdraw time.
# D. The victim restarts and rejoins: announced once ready, every node in
#    rt's ECMP set again; both clients work both ways, each routed to its
#    owner; no nonce reuse, no handshake from client1.
# C. gwd of another node dies while its FRR lives: the health hook takes the
#    VIP off lo and rt loses that next hop; the owned-peer routes went with
#    gwd's TUN.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib/harness.sh
. "${GW_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/integration/lib/harness.sh"
# shellcheck source-path=SCRIPTDIR source=lib/failover.sh
. "$H_SOURCE_DIR/tests/integration/lib/failover.sh"
# shellcheck source-path=SCRIPTDIR source=lib/frr.sh
. "$H_SOURCE_DIR/tests/integration/lib/frr.sh"

h_require_root
f_require gwcluster
fr_require

N=${ANYCAST_N:-3}
VIP4=198.51.100.1
VIP6=2001:db8:2::1
RT_CORE4=203.0.113.1
RT_CORE6=2001:db8:3::1
CLIENTS=(client1 client2)
declare -A C_ADDR=([client1]=192.0.2.2 [client2]=192.0.2.3)
declare -A C_INNER=([client1]=198.18.1.2 [client2]=198.18.1.3)
MAX_GAP_MS=${ANYCAST_MAX_GAP_MS:-1500}
MAX_WITHDRAW_MS=${ANYCAST_MAX_WITHDRAW_MS:-1000}
# Until rt's kernel route changed: zebra's work on top of BFD, under load.
MAX_ROUTE_MS=${ANYCAST_MAX_ROUTE_MS:-1500}
F_GWD_ARGS="--anycast --owned-routes main ${F_GWD_ARGS:-}"
F_N=$N

# ---------------------------------------------------------------- topology

h_host rt --forwarding
h_host lan
h_bridge access
h_bridge core
h_exec rt sysctl -q -w net.ipv4.fib_multipath_hash_policy=1 net.ipv6.fib_multipath_hash_policy=1
h_attach rt access eth0
h_addr rt eth0 192.0.2.1/24
h_addr rt eth0 2001:db8:1::1/64
h_attach rt core eth1
h_addr rt eth1 "$RT_CORE4/24"
h_addr rt eth1 "$RT_CORE6/64"
h_link rt lan eth2 eth0
h_addr rt eth2 198.19.0.1/24
h_addr rt eth2 2001:db8:19::1/64
h_addr lan eth0 "$F_LAN4/24"
h_addr lan eth0 2001:db8:19::2/64
h_route lan default via 198.19.0.1
for c in "${CLIENTS[@]}"; do
	h_host "$c"
	h_attach "$c" access eth0
	h_addr "$c" eth0 "${C_ADDR[$c]}/24"
	h_route "$c" default via 192.0.2.1
	h_wg_keypair "$c"
done
h_wg_keypair gw
for ((i = 1; i <= N; i++)); do
	mkdir -p "$(f_dir "$i")"
	h_host "gw$i" --forwarding
	h_attach "gw$i" core eth0
	h_addr "gw$i" eth0 "$(f_gw_back4 "$i")/24"
	h_addr "gw$i" eth0 "$(f_gw_back6 "$i")/64"
	h_route "gw$i" 192.0.2.0/24 via "$RT_CORE4"
	h_route "gw$i" 198.19.0.0/16 via "$RT_CORE4"
	h_route "gw$i" 2001:db8:1::/64 via "$RT_CORE6"
	h_route "gw$i" 2001:db8:19::/64 via "$RT_CORE6"
	# One segment per skb: the capture on rt sees every WireGuard message
	# of gwd's UDP GSO bursts on its own (failover.sh, f_gateways).
	h_exec "gw$i" ip link set eth0 gso_max_segs 1
	F_IFS[i]=$(h_ifname "n$i")
	F_NODE_PROCS[i]=""
	h_wait_ping rt "$(f_gw_back4 "$i")" 5
done
h_wait_ping lan 192.0.2.2 5

# ---------------------------------------------------------------- gateways

# syncd in anycast mode: cluster.conf as failover.sh writes it, plus Mode,
# without keepalived's notify FIFO (no keepalived here; syncd refuses it in
# anycast mode).
f__gwc_setup
for ((i = 1; i <= N; i++)); do
	sed -i -e 's/^\[Cluster\]$/[Cluster]\nMode = anycast/' -e '/^Keepalived/d' "$(f_conf "$i")"
done
for ((i = 1; i <= N; i++)); do
	f_gwc_daemons "$i"
done
for ((i = 1; i <= N; i++)); do
	h_wait_for 20 "syncd of gw$i synced" f__ctl_synced "$i"
done
for c in "${CLIENTS[@]}"; do
	f_ctl 1 peer add "$(h_wg_pub "$c")" allowed-ips "${C_INNER[$c]}/32" name "$c" >/dev/null ||
		h_fail "gwctl peer add $c"
done

# FRR: the router, then every gateway with the health hook.
neigh="" act4="" act6=""
for ((i = 1; i <= N; i++)); do
	neigh+=" neighbor $(f_gw_back4 "$i") peer-group GATEWAYS\n neighbor $(f_gw_back6 "$i") peer-group GATEWAYS\n"
	act4+="  neighbor $(f_gw_back4 "$i") activate\n"
	act6+="  neighbor $(f_gw_back6 "$i") activate\n"
done
fr_conf router-bgpd.conf "$H_LOGDIR/rt-bgpd.conf" HOSTNAME=rt ROUTER_ID="$RT_CORE4" \
	LOCAL_AS=64500 PEER_AS=64501 NEIGHBORS="${neigh%\\n}" ACTIVATE4="${act4%\\n}" \
	ACTIVATE6="${act6%\\n}"
fr_up rt "$H_LOGDIR/rt-bgpd.conf"

hook_up() {
	local i=$1
	h_spawn "gw$i" "hook$i" "$H_SOURCE_DIR/ha-hooks/gwcluster-bgp" -c "$(f_conf "$i")" \
		-a "$VIP4/32" -a "$VIP6/128" -i "${ANYCAST_HOOK_INTERVAL:-0.2}" -f 2 -r 2 -G "$F_GWCTL"
	F_NODE_PROCS[i]+=" hook$i"
}

for ((i = 1; i <= N; i++)); do
	fr_conf gateway-bgpd.conf "$(f_dir "$i")/bgpd.conf" HOSTNAME="gw$i" \
		ROUTER_ID="$(f_gw_back4 "$i")" LOCAL_AS=64501 PEER_AS=64500 PEER4="$RT_CORE4" \
		PEER6="$RT_CORE6"
	fr_up "gw$i" "$(f_dir "$i")/bgpd.conf"
	F_NODE_PROCS[i]+=" $(fr_procs "gw$i")"
	hook_up "$i"
done

# rt's next hops for PREFIX (IPv4 or IPv6), sorted, one a line.
nexthops() {
	local fam=-4
	[[ $1 == *:* ]] && fam=-6
	ip -n "$(h_ns rt)" "$fam" route show "$1" 2>/dev/null |
		grep -o 'via [0-9a-f.:]*' | awk '{ print $2 }' | sort
}

# nexthops_are PREFIX [ADDR...]: exactly these next hops (none: no route).
nexthops_are() {
	local want have
	want=$(printf '%s\n' "${@:2}" | sed '/^$/d' | sort)
	have=$(nexthops "$1")
	echo "$1: next hops '${have//$'\n'/ }', want '${want//$'\n'/ }'"
	[[ $have == "$want" ]]
}

# IPv6 next hops are the gateways' link-local addresses: count them.
nexthop_count() {
	local n
	n=$(nexthops "$1" | grep -c . || true)
	echo "$1: $n next hops, want $2"
	((n == $2))
}

all4=()
for ((i = 1; i <= N; i++)); do
	all4+=("$(f_gw_back4 "$i")")
done
h_wait_for 40 "every gateway's BGP sessions up on rt" fr_bgp_up rt $((2 * N))
h_wait_for 20 "rt: ECMP route to $VIP4 through all $N gateways" nexthops_are "$VIP4/32" "${all4[@]}"
h_wait_for 10 "rt: ECMP route to $VIP6 through all $N gateways" nexthop_count "$VIP6/128" "$N"
h_log "A: rt routes $VIP4 and $VIP6 through all $N gateways (ECMP)"
ip -n "$(h_ns rt)" route show "$VIP4/32" | sed 's/^/    /' >&2

# ---------------------------------------------------------------- clients

declare -A C_IF=()
for c in "${CLIENTS[@]}"; do
	C_IF[$c]=$(h_ifname "${c: -1}c")
	h_wggo_up "$c" "${C_IF[$c]}"
	h_wg "$c" set "${C_IF[$c]}" private-key "$(h_wg_key "$c")" listen-port "$F_CLIENT_PORT" \
		peer "$(h_wg_pub gw)" allowed-ips 198.18.0.0/16,198.19.0.0/16 endpoint "$VIP4:$F_PORT"
	h_addr "$c" "${C_IF[$c]}" "${C_INNER[$c]}/16"
	h_route "$c" 198.19.0.0/16 dev "${C_IF[$c]}"
done
for c in "${CLIENTS[@]}"; do
	h_wait_ping "$c" "$F_LAN4" 15
done

# owner_of CLIENT: the gateway with the kernel route to the client's inner
# address through its TUN (gwd --owned-routes), exactly one.
owner_of() {
	local c=$1 i o=()
	for ((i = 1; i <= N; i++)); do
		[[ -n ${F_NODE_PROCS[i]} ]] || continue
		[[ -n $(h_exec "gw$i" ip route show "${C_INNER[$c]}/32" dev "${F_IFS[i]}" 2>/dev/null) ]] &&
			o+=("$i")
	done
	((${#o[@]} == 1)) || {
		echo "$c: owned-peer routes on gw${o[*]:-(none)}"
		return 1
	}
	echo "${o[0]}"
}

# rt's route to the client's inner address goes to its owner, only there.
client_routed() {
	local c=$1 o
	o=$(owner_of "$c") || return 1
	nexthops_are "${C_INNER[$c]}/32" "$(f_gw_back4 "$o")"
}

for c in "${CLIENTS[@]}"; do
	h_wait_for 10 "rt routes ${C_INNER[$c]} to the owner of $c" client_routed "$c"
	h_wait_ping lan "${C_INNER[$c]}" 10
	h_log "A: $c is served by gw$(owner_of "$c"); rt routes ${C_INNER[$c]} there; LAN -> $c answered"
done
# Every live node is ready and holds, as a standby, the session of every
# client it does not own: any of them can take over.
eligible() {
	local i o1 o2 need have
	o1=$(owner_of client1) || return 1
	o2=$(owner_of client2) || return 1
	for ((i = 1; i <= N; i++)); do
		[[ -n ${F_NODE_PROCS[i]} ]] || continue
		[[ $(cat "$(f_synced_file "$i")" 2>/dev/null) == 0 ]] || {
			echo "gw$i: SyncedFile $(cat "$(f_synced_file "$i")" 2>/dev/null)"
			return 1
		}
		need=$(((i != o1) + (i != o2)))
		have=$(f_stat "$i" sessions_standby)
		((have >= need)) || {
			echo "gw$i: $have standby sessions, want $need"
			return 1
		}
	done
}
h_wait_for 30 "every node ready, holding the sessions it does not own" eligible

# ---------------------------------------------------------------- B: SIGKILL

VICTIM=$(owner_of client1)
F_CLIENT4=${C_ADDR[client1]}
f_capture_start cap rt eth1 "udp port $F_PORT"
f_ping_start ping "$F_LAN4" client1
f_ping_start lanping "${C_INNER[client1]}" lan
sleep 2
survivors4=()
for ((i = 1; i <= N; i++)); do
	((i == VICTIM)) && continue
	survivors4+=("$(f_gw_back4 "$i")")
done

# rt's kernel route changes, time-stamped as they happen (ip -ts monitor):
# route_change_ms T0 [ADDR [added]] makes the milliseconds from epoch time
# T0 to the first change of rt's route to ADDR (default the VIP) after T0;
# with "added", to the first route to ADDR added or replaced (not deleted)
# after T0. "inf" if none.
h_spawn rt routemon ip -ts monitor route
route_change_ms() {
	local t0=$1 addr=${2:-$VIP4} re ts t
	re="s/^\[\([^]]*\)\] \(Deleted \)\{0,1\}${addr//./\\.} .*/\1/p"
	[[ ${3:-} == added ]] && re="s/^\[\([^]]*\)\] ${addr//./\\.} .*/\1/p"
	while read -r ts; do
		t=$(date -d "$ts" +%s.%N) || continue
		if awk -v a="$t0" -v b="$t" 'BEGIN { exit !(b >= a) }'; then
			awk -v a="$t0" -v b="$t" 'BEGIN { printf "%.0f\n", (b - a) * 1000 }'
			return 0
		fi
	done < <(sed -n "$re" "$(h_log_of routemon)")
	echo inf
}

# A node that dies (power, kernel) says nothing; a SIGKILLed bgpd's kernel
# would still close its TCP session (FIN), and rt would drop the session at
# once without BFD. So the node's link is cut first, then every process of
# it killed: only BFD can tell rt. ANYCAST_KEEP_LINK=1: the processes only.
T_KILL=$EPOCHREALTIME
if [[ -z ${ANYCAST_KEEP_LINK:-} ]]; then
	h_bridge_port core "gw$VICTIM" down
	h_log "B: gw$VICTIM's link cut"
fi
f_kill_node "$VICTIM"
[[ -n ${ANYCAST_KEEP_LINK:-} ]] && T_KILL=$F_T_KILL
h_wait_for 10 "rt: $VIP4 through the survivors only" nexthops_are "$VIP4/32" "${survivors4[@]}"
WITHDRAW_MS=$(route_change_ms "$T_KILL")
h_log "B: rt's kernel route to $VIP4 lost gw$VICTIM ${WITHDRAW_MS} ms after the kill"
h_assert_le "$WITHDRAW_MS" "$MAX_ROUTE_MS" "ms from the kill to rt's route change"
# When rt's bgpd heard BFD say the victim was down (its log, in ms).
bfd_down_ms() {
	local line ts
	line=$(grep -F "neighbor $(f_gw_back4 "$VICTIM") " "$(h_log_of bgpd-rt)" | grep -F "BFD Down" |
		tail -n 1) || true
	ts=$(awk '{ print $1, $2 }' <<<"$line")
	[[ -n $ts ]] || {
		echo "n/a"
		return 0
	}
	awk -v a="$T_KILL" -v b="$(date -d "${ts//\//-}" +%s.%N)" 'BEGIN { printf "%.0f\n", (b - a) * 1000 }'
}
BFD_MS=$(bfd_down_ms)
h_log "B: rt's bgpd took the session of gw$VICTIM down on BFD's word $BFD_MS ms after the kill"
if [[ -z ${ANYCAST_KEEP_LINK:-} ]]; then
	[[ $BFD_MS != n/a ]] || h_fail "rt's bgpd did not log a BFD Down for gw$VICTIM"
	h_assert_le "$BFD_MS" "$MAX_WITHDRAW_MS" "ms from the kill to BFD taking gw$VICTIM's session down"
fi
h_wait_for 5 "rt: $VIP6 through the survivors" nexthop_count "$VIP6/128" $((N - 1))
f_wait_ping_after ping "$T_KILL" 10
f_wait_ping_after lanping "$T_KILL" 10
h_wait_for 10 "rt routes ${C_INNER[client1]} to its new owner" client_routed client1
NEW=$(owner_of client1)
RET_MS=$(route_change_ms "$T_KILL" "${C_INNER[client1]}" added)
h_log "B: rt's route to ${C_INNER[client1]} (client1's inner address) points at gw$NEW $RET_MS ms after the kill"
sleep "$(awk -v t="$T_KILL" -v n="$EPOCHREALTIME" 'BEGIN { d = t + 3 - n; printf "%.3f", (d > 0 ? d : 0) }')"
T_END=$(awk -v t="$T_KILL" 'BEGIN { printf "%.6f", t + 3 }')
f_ping_stop ping
f_ping_stop lanping
f_capture_stop cap
GAP=$(f_ping_gap ping "$T_KILL" "$T_END")
LANGAP=$(f_ping_gap lanping "$T_KILL" "$T_END")
h_log "B: gw$VICTIM -> gw$NEW: longest gap client1 -> LAN $GAP ms, LAN -> client1 $LANGAP ms" \
	"(BFD down $BFD_MS ms, rt's route changed $WITHDRAW_MS ms)"
h_assert_le "$GAP" "$MAX_GAP_MS" "longest gap (ms) of client1's pings to the LAN"
h_assert_le "$LANGAP" "$MAX_GAP_MS" "longest gap (ms) of the LAN's pings to client1"

# The takeover kept the session: the survivor's first data packet to client1
# carries the receiver index the victim used last, with a counter in the
# survivor's own region; client1 sent no handshake initiation.
last_old=$(f_data_pkts cap in "$(f_mac "$VICTIM")" 0 "$T_KILL" | tail -n 1)
[[ -n $last_old ]] || h_fail "no data from gw$VICTIM to client1 before the kill"
first_new=$(f_data_pkts cap in "$(f_mac "$NEW")" "$T_KILL" "$T_END" | sed -n 1p)
[[ -n $first_new ]] || h_fail "no data from gw$NEW to client1 after the kill"
read -r -a before <<<"$last_old"
read -r -a first <<<"$first_new"
h_assert_eq "${first[1]}" "${before[1]}" "receiver index of gw$NEW's first data packet (gw$VICTIM used it)"
read -r -a reg <<<"$(f_region "${first[2]}")"
h_assert_ge "${reg[0]}" 1 "region epoch of gw$NEW's first counter ${first[2]}"
h_assert_eq "${reg[1]}" "$NEW" "region node of gw$NEW's first counter ${first[2]}"
h_assert_eq "$(f_init_from_client cap "$T_KILL" "$T_END")" 0 \
	"handshake initiations from client1 during the failover"
h_assert_eq "$(f_dup_pairs cap | wc -l)" 0 "(receiver, counter) pairs the gateways sent twice to client1"
f_regions cap >/dev/null
h_log "B: receiver ${first[1]} kept; gw$VICTIM's last counter ${before[2]}, gw$NEW's first" \
	"${first[2]} (epoch ${reg[0]} node ${reg[1]}); no initiation; $(f_data_pkts cap in | wc -l)" \
	"data packets to client1 checked for reuse"
h_wait_ping client2 "$F_LAN4" 10
h_wait_ping lan "${C_INNER[client2]}" 10

# ---------------------------------------------------------------- D: rejoin

# The victim comes back: link up, gwd, syncd, FRR, hook. The hook announces
# it only once syncd is ready (sessions imported); rt's ECMP set then has
# every node again, which may move flows to it (hitless: claim on receive
# with the replicated session). Both clients work both ways afterwards, each
# routed to exactly its owner, and no nonce was used twice meanwhile.
h_bridge_port core "gw$VICTIM" up
f_gwc_daemons "$VICTIM"
fr_up "gw$VICTIM" "$(f_dir "$VICTIM")/bgpd.conf"
F_NODE_PROCS[VICTIM]+=" $(fr_procs "gw$VICTIM")"
f_capture_start cap2 rt eth1 "udp port $F_PORT"
T_BACK=$EPOCHREALTIME
hook_up "$VICTIM"
h_wait_for 30 "rt: $VIP4 through all $N gateways again" nexthops_are "$VIP4/32" "${all4[@]}"
ann=$(sed -n "s/^\([0-9.]*\) announce .*/\1/p" "$(h_log_of "hook$VICTIM")" | tail -n 1)
h_log "D: gw$VICTIM is back: announced $(f_secs "$T_BACK" "$ann") s after its hook started"
for c in "${CLIENTS[@]}"; do
	h_wait_ping "$c" "$F_LAN4" 10
	h_wait_for 10 "rt routes ${C_INNER[$c]} to the owner of $c" client_routed "$c"
	h_wait_ping lan "${C_INNER[$c]}" 10
	h_log "D: $c served by gw$(owner_of "$c"), both ways"
done
f_capture_stop cap2
F_CLIENT4=${C_ADDR[client1]}
h_assert_eq "$(f_dup_pairs cap2 | wc -l)" 0 "(receiver, counter) pairs sent twice to client1 (rejoin)"
h_assert_eq "$(f_init_from_client cap2 "$T_BACK" "$EPOCHREALTIME")" 0 \
	"handshake initiations from client1 while gw$VICTIM rejoined"

# ---------------------------------------------------------------- C: gwd dies

OTHER=""
for ((i = 1; i <= N; i++)); do
	((i != VICTIM && i != NEW)) && OTHER=$i
done
[[ -n $OTHER ]] || OTHER=$NEW
left4=()
for ((i = 1; i <= N; i++)); do
	((i != OTHER)) && left4+=("$(f_gw_back4 "$i")")
done
T_GWD=$EPOCHREALTIME
h_kill "${F_IFS[OTHER]}" KILL
h_wait_for 10 "rt: $VIP4 without gw$OTHER, whose gwd died" nexthops_are "$VIP4/32" "${left4[@]}"
HOOK_MS=$(route_change_ms "$T_GWD")
h_log "C: gwd of gw$OTHER killed (FRR running): rt's route to $VIP4 lost it after $HOOK_MS ms"
h_alive "bgpd-gw$OTHER" || h_fail "bgpd of gw$OTHER died too"
grep -q "withdraw $VIP4/32" "$(h_log_of "hook$OTHER")" || h_fail "the hook of gw$OTHER did not withdraw"
! h_exec "gw$OTHER" ip route show proto static 2>/dev/null | grep -q 198.18. ||
	h_fail "owned-peer routes left on gw$OTHER after its gwd died"
h_wait_ping client1 "$F_LAN4" 10
echo "anycast: N=$N bfd_down_ms=$BFD_MS route_change_ms=$WITHDRAW_MS return_route_ms=$RET_MS gap_client_ms=$GAP gap_lan_ms=$LANGAP" \
	"hook_withdraw_ms=$HOOK_MS"
