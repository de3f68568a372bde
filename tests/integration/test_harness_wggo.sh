#!/usr/bin/env bash
# A wireguard-go pair across a router, built with the harness. It proves the
# harness (hosts, bridge, links, routes, daemons, bounded waits, capture,
# tshark) and the reference behaviour that gwd tests are measured against:
#
#   client --[bridge "access"]-- router -- server -- lan
#   192.0.2.2    192.0.2.1   203.0.113.1   203.0.113.2
#   2001:db8:1::2  ::1       2001:db8:3::1  2001:db8:3::2
#   LAN behind the server: server 198.19.0.1/24, lan 198.19.0.2
#   tunnel: 198.18.0.1/24, 2001:db8:f::1/64  <->  198.18.0.2, 2001:db8:f::2
#
# Asserts: inner IPv4 and IPv6 pings and the LAN behind the server, a non-zero
# latest handshake, an iperf3 TCP run with wg transfer counters covering its
# bytes, handshake and data messages on the wire with no (receiver, counter)
# pair seen twice, and the same tunnel over an IPv6 outer endpoint.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib/harness.sh
. "${GW_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/integration/lib/harness.sh"

h_require_root
h_require_cmd ip ss ping wireguard-go wg iperf3 jq dumpcap tshark

MIN_BYTES=$((4 * 1024 * 1024))
PORT_S=51820
PORT_C=51821

# ---- underlay
h_host client
h_host router --forwarding
h_host server --forwarding
h_host lan
h_bridge access
h_attach client access eth0
h_attach router access eth0
h_link router server eth1 eth0
h_addr client eth0 192.0.2.2/24
h_addr client eth0 2001:db8:1::2/64
h_addr router eth0 192.0.2.1/24
h_addr router eth0 2001:db8:1::1/64
h_addr router eth1 203.0.113.1/24
h_addr router eth1 2001:db8:3::1/64
h_addr server eth0 203.0.113.2/24
h_addr server eth0 2001:db8:3::2/64
h_route client default via 192.0.2.1
h_route client default via 2001:db8:1::1
h_route server default via 203.0.113.1
h_route server default via 2001:db8:3::1
h_link server lan
h_addr server lan 198.19.0.1/24
h_addr lan server 198.19.0.2/24
h_route lan default via 198.19.0.1
h_wait_ping client 203.0.113.2 5
h_wait_ping client 2001:db8:3::2 5

# ---- tunnel
WGC=$(h_ifname c)
WGS=$(h_ifname s)
h_wg_keypair client
h_wg_keypair server
PUB_C=$(h_wg_pub client)
PUB_S=$(h_wg_pub server)
h_wggo_up client "$WGC"
h_wggo_up server "$WGS"
h_wg server set "$WGS" private-key "$(h_wg_key server)" listen-port "$PORT_S" \
	peer "$PUB_C" allowed-ips 198.18.0.1/32,2001:db8:f::1/128
h_wg client set "$WGC" private-key "$(h_wg_key client)" listen-port "$PORT_C" \
	peer "$PUB_S" allowed-ips 198.18.0.2/32,2001:db8:f::2/128,198.19.0.0/16 \
	endpoint "203.0.113.2:$PORT_S"
h_addr client "$WGC" 198.18.0.1/24
h_addr client "$WGC" 2001:db8:f::1/64
h_addr server "$WGS" 198.18.0.2/24
h_addr server "$WGS" 2001:db8:f::2/64
h_route client 198.19.0.0/16 dev "$WGC"

h_capture_start -s 128 -c 20000 router eth1 outer4.pcapng "udp port $PORT_S"
h_wait_ping client 198.18.0.2 10
h_wait_ping client 2001:db8:f::2 5
h_wait_ping client 198.19.0.2 5
h_log "tunnel up over IPv4"

# "PUB<TAB>VALUE..." of one peer from `wg show IF WHAT`.
wg_field() {
	local host=$1 ifn=$2 what=$3 pub=$4 col=$5 out
	out=$(h_wg "$host" show "$ifn" "$what") || return 1
	awk -v p="$pub" -v c="$col" '$1 == p { print $c }' <<<"$out"
}

hs=$(wg_field client "$WGC" latest-handshakes "$PUB_S" 2)
h_assert_ge "$hs" $(($(date +%s) - 60)) "client latest handshake (epoch s)"
hs=$(wg_field server "$WGS" latest-handshakes "$PUB_C" 2)
h_assert_ge "$hs" $(($(date +%s) - 60)) "server latest handshake (epoch s)"

# ---- throughput
rx0=$(wg_field server "$WGS" transfer "$PUB_C" 2)
tx0=$(wg_field client "$WGC" transfer "$PUB_S" 3)
h_spawn server iperf3 iperf3 -s -1 -B 198.18.0.2
h_wait_listen server 5201 5
h_exec_timeout client 30 iperf3 -c 198.18.0.2 -t 3 -J >"$H_LOGDIR/iperf3.json" ||
	h_fail "iperf3 client failed: $(jq -r '.error // empty' "$H_LOGDIR/iperf3.json")"
bytes=$(jq '.end.sum_received.bytes' "$H_LOGDIR/iperf3.json")
mbps=$(jq '.end.sum_received.bits_per_second / 1e6 | floor' "$H_LOGDIR/iperf3.json")
h_log "iperf3: $bytes bytes received, $mbps Mbit/s"
h_assert_ge "$bytes" "$MIN_BYTES" "iperf3 bytes received through the tunnel"
rx1=$(wg_field server "$WGS" transfer "$PUB_C" 2)
tx1=$(wg_field client "$WGC" transfer "$PUB_S" 3)
h_assert_ge $((rx1 - rx0)) "$bytes" "server wg rx bytes during iperf3"
h_assert_ge $((tx1 - tx0)) "$bytes" "client wg tx bytes during iperf3"
h_wait_exit iperf3 5

# ---- on the wire (IPv4 outer)
h_capture_stop outer4.pcapng
# One pass over the capture: type, then for data messages who and which nonce.
h_tshark_fields outer4.pcapng wg.type ip.dst wg.receiver wg.counter >"$H_LOGDIR/outer4.txt"
types=$(cut -f1 "$H_LOGDIR/outer4.txt" | sort -un | tr '\n' ' ')
h_assert_match "$types" '^1 2 (3 )?4 $' "WireGuard message types on the wire"
ndata=$(awk -F'\t' '$1 == 4' "$H_LOGDIR/outer4.txt" | wc -l)
h_assert_ge "$ndata" 1000 "data messages captured"
dups=$(awk -F'\t' '$1 == 4 { print $2, $3, $4 }' "$H_LOGDIR/outer4.txt" | sort | uniq -d | wc -l)
h_assert_eq "$dups" 0 "(receiver, counter) pairs seen twice"

# ---- IPv6 outer: move the client's endpoint, the server follows it
h_capture_start router eth1 outer6.pcapng "ip6 and udp port $PORT_S"
h_wg client set "$WGC" peer "$PUB_S" endpoint "[2001:db8:3::2]:$PORT_S"
h_wait_ping client 198.18.0.2 5
h_wait_ping client 2001:db8:f::2 5
server_sees_v6() {
	[[ $(wg_field server "$WGS" endpoints "$PUB_C" 2) == "[2001:db8:1::2]:$PORT_C" ]]
}
h_wait_for 5 "server endpoint of client to become [2001:db8:1::2]:$PORT_C" server_sees_v6
h_exec_timeout client 10 ping -n -q -c 5 -i 0.05 -W 1 2001:db8:f::2 >/dev/null ||
	h_fail "IPv6 inner ping over IPv6 outer lost packets"
h_capture_stop outer6.pcapng
n6=$(h_tshark_fields outer6.pcapng wg.type "wg.type == 4 && ipv6.src == 2001:db8:1::2" | wc -l)
h_assert_ge "$n6" 5 "data messages from the client over IPv6"
h_log "tunnel works over IPv6 outer ($n6 data messages from the client)"
