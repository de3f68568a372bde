#!/usr/bin/env bash
# Roaming: the client's underlay address changes in the middle of a TCP
# stream and a ping flood; the stream must complete intact (SHA-256), pings
# must keep being answered after the change, and the server's
# `wg show IF endpoints` must show the client's new address. Three moves:
#
#   1. IPv4, same link: 192.0.2.2 is replaced by 192.0.2.3
#   2. IPv4, another link: eth0 loses its address and goes down, the client
#      continues on a second link as 192.0.2.130
#   3. IPv6, same link (after the client switched to the server's IPv6
#      endpoint): 2001:db8:1:0:1::130 is replaced by 2001:db8:1:0:1::131
#
# The server is $GWD_BIN; the client is $GWD_BIN too, unless ROAM_CLIENT=ref.
# A roaming client must notice by itself that the source address it used is
# gone and let the kernel pick the new one (the kernel module checks this
# before every send). wireguard-go v0.0.20220316 does not: its sends fail
# with ENETUNREACH until its endpoint is set again. So when the client is
# wireguard-go (GWD_BIN=wireguard-go, or ROAM_CLIENT=ref), and only then, the
# test re-sets the client's endpoint after each move; gwd gets no such help.
#
#   client eth0 192.0.2.2/25, 2001:db8:1::2/80 -- bridge -- router eth0 .1
#   client alt  192.0.2.130/25, 2001:db8:1:0:1::130/80 -- router alt .129
#   router eth1 203.0.113.1/24, 2001:db8:3::1/64 -- server eth0 .2 / ::2
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib/harness.sh
. "${GW_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/integration/lib/harness.sh"
# shellcheck source=lib/gwd.sh
. "$H_SOURCE_DIR/tests/integration/lib/gwd.sh"

h_require_root
h_require_cmd ip ping wg python3 sha256sum
gwd_require

PORT_S=51820
PORT_C=51821
STREAM_BYTES=$((3 << 20))
STREAM_RATE=$((1 << 20)) # 3 s per stream, the move happens after 1 s

h_host client
h_host router --forwarding
h_host server
h_bridge access
h_attach client access eth0
h_attach router access eth0
h_link client router alt alt
h_link router server eth1 eth0
h_addr client eth0 192.0.2.2/25
h_addr client eth0 2001:db8:1::2/80
h_addr router eth0 192.0.2.1/25
h_addr router eth0 2001:db8:1::1/80
h_addr router alt 192.0.2.129/25
h_addr router alt 2001:db8:1:0:1::1/80
h_addr router eth1 203.0.113.1/24
h_addr router eth1 2001:db8:3::1/64
h_addr server eth0 "$GWD_SERVER4/24"
h_addr server eth0 "$GWD_SERVER6/64"
h_route client default via 192.0.2.1
h_route client default via 2001:db8:1::1
h_route server default via 203.0.113.1
h_route server default via 2001:db8:3::1
# When the old primary address goes, the new one must stay (as on most
# distributions, which set this).
h_exec client sysctl -q -w net.ipv4.conf.all.promote_secondaries=1
h_wait_ping client "$GWD_SERVER4" 5

h_wg_keypair server
h_wg_keypair client
PUB_S=$(h_wg_pub server)
PUB_C=$(h_wg_pub client)
WGS=$(h_ifname s)
WGC=$(h_ifname c)
gwd_up server "$WGS"
ROAM_CLIENT=${ROAM_CLIENT:-gwd}
impl_up "$ROAM_CLIENT" client "$WGC"
NUDGE=0
if [[ $ROAM_CLIENT == ref ]] || gwd_is_ref; then
	NUDGE=1
	h_log "client is wireguard-go: its endpoint is re-set after each move"
fi
h_wg server set "$WGS" private-key "$(h_wg_key server)" listen-port "$PORT_S" \
	peer "$PUB_C" allowed-ips 198.18.0.1/32,2001:db8:f::1/128
h_wg client set "$WGC" private-key "$(h_wg_key client)" listen-port "$PORT_C" \
	peer "$PUB_S" allowed-ips 198.18.0.2/32,2001:db8:f::2/128 endpoint "$GWD_SERVER4:$PORT_S"
h_addr client "$WGC" 198.18.0.1/24
h_addr client "$WGC" 2001:db8:f::1/64
h_addr server "$WGS" 198.18.0.2/24
h_addr server "$WGS" 2001:db8:f::2/64
h_wait_ping client 198.18.0.2 10

server_endpoint_is() {
	[[ $(wg_field server "$WGS" endpoints "$PUB_C" 2) == "$1" ]]
}

# roam NAME INNER_ADDR OLD_ENDPOINT NEW_ENDPOINT CMD...: stream and ping
# towards the server's INNER_ADDR, run CMD (the move) after 1 s, check.
roam() {
	local name=$1 inner=$2 old=$3 new=$4 t_move after
	shift 4
	h_wait_for 5 "server to see the client at $old" server_endpoint_is "$old"
	h_spawn client "ping-$name" ping -D -n -i 0.05 -W 1 "$inner"
	tcp_start client server "$inner" "$STREAM_BYTES" "$STREAM_RATE"
	sleep 1
	h_log "roam $name: $old -> $new"
	t_move=$(date +%s.%N)
	"$@"
	if ((NUDGE)); then
		h_wg client set "$WGC" peer "$PUB_S" endpoint "$(wg_field client "$WGC" endpoints "$PUB_S" 2)"
	fi
	h_wait_for 5 "server to see the client at $new" server_endpoint_is "$new"
	tcp_check "$TCP_STREAM" 20
	h_exec_timeout server 10 ping -n -q -c 3 -i 0.1 -W 1 198.18.0.1 >/dev/null ||
		h_fail "server cannot reach the client's inner address after roam $name"
	h_kill "ping-$name" INT
	# ping -D lines: "[EPOCH.US] 64 bytes from ...: icmp_seq=N ttl=.. time=.."
	after=$(awk -v t="$t_move" -F'[][]' '/bytes from/ && $2 + 0 > t + 1 { n++ } END { print n + 0 }' \
		"$(h_log_of "ping-$name")")
	h_log "roam $name: $after ping replies later than 1 s after the move"
	h_assert_ge "$after" 10 "ping replies after roam $name"
}

move_same_link_v4() {
	h_addr client eth0 192.0.2.3/25
	h_exec client ip addr del 192.0.2.2/25 dev eth0
	h_route client default via 192.0.2.1
}

move_other_link_v4() {
	h_exec client ip -4 addr flush dev eth0
	h_exec client ip link set dev eth0 down
	h_addr client alt 192.0.2.130/25
	h_route client default via 192.0.2.129
}

move_same_link_v6() {
	h_addr client alt 2001:db8:1:0:1::131/80
	h_exec client ip addr del 2001:db8:1:0:1::130/80 dev alt
	h_route client default via 2001:db8:1:0:1::1
}

roam v4-address 198.18.0.2 "192.0.2.2:$PORT_C" "192.0.2.3:$PORT_C" move_same_link_v4
roam v4-link 198.18.0.2 "192.0.2.3:$PORT_C" "192.0.2.130:$PORT_C" move_other_link_v4

h_addr client alt 2001:db8:1:0:1::130/80
h_route client default via 2001:db8:1:0:1::1
h_wg client set "$WGC" peer "$PUB_S" endpoint "[$GWD_SERVER6]:$PORT_S"
h_wait_ping client 2001:db8:f::2 5
roam v6-address 2001:db8:f::2 "[2001:db8:1:0:1::130]:$PORT_C" "[2001:db8:1:0:1::131]:$PORT_C" \
	move_same_link_v6

wg_assert_handshake server "$WGS" "$PUB_C"
wg_down server "$WGS"
wg_down client "$WGC"
