#!/usr/bin/env bash
# gwd's offload paths carry large TCP transfers intact (docs/performance.md):
# the TUN hands gwd 64 KiB TCP super-packets that it splits (TSO), decrypted
# segments are joined into super-packets for the TUN (GRO), encrypted data
# leaves in UDP_SEGMENT batches and arrives coalesced (UDP GRO).
#
#   pair A  gwd <-> gwd, offloads on
#   pair B  gwd (offloads on) <-> wireguard-go
#   pair C  gwd <-> gwd, GWD_NO_OFFLOAD=1 on both
#
# Each pair carries a 48 MiB TCP stream each way over inner IPv4 and a 24 MiB
# one each way over inner IPv6, checked by count and SHA-256. With offloads
# on, gwd's counters must show every offload path used (a split, a coalesced
# write, a GSO send, a GRO receive: that one only from a gwd peer, whose
# UDP_SEGMENT batches cross the veth whole) and no malformed TUN packet; with
# them off, none of them. iperf3 then runs through pair A for a few seconds in
# both directions, with 4 streams (many flows at once in the coalescer).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib/harness.sh
. "${GW_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/integration/lib/harness.sh"
# shellcheck source=lib/gwd.sh
. "$H_SOURCE_DIR/tests/integration/lib/gwd.sh"

h_require_root
h_require_cmd ip ping wireguard-go wg iperf3 python3 sha256sum
gwd_require
gwd_is_ref && h_fail "this test is about gwd's offloads: GWD_BIN must be gwd"

PORT_S=51820
PORT_C=51821
BIG4=$((48 << 20))
BIG6=$((24 << 20))
gwd_lab

h_wg_keypair server
h_wg_keypair client
PUB_S=$(h_wg_pub server)
PUB_C=$(h_wg_pub client)

# up IMPL HOST IFNAME OFFLOAD(on|off)
up() {
	case $1 in
	gwd)
		if [[ $4 == off ]]; then
			gwd_up "$2" "$3" GWD_NO_OFFLOAD=1
		else
			gwd_up "$2" "$3"
		fi
		;;
	ref) ref_up "$2" "$3" ;;
	esac
}

# pair_up TAG SERVER_IMPL CLIENT_IMPL OFFLOAD: configured, addressed, pinging.
pair_up() {
	local tag=$1 si=$2 ci=$3 off=$4
	WGS=$(h_ifname "s$tag")
	WGC=$(h_ifname "c$tag")
	h_log "pair $tag: server $si, client $ci, offloads $off"
	up "$si" server "$WGS" "$off"
	up "$ci" client "$WGC" "$off"
	h_wg server set "$WGS" private-key "$(h_wg_key server)" listen-port "$PORT_S" \
		peer "$PUB_C" allowed-ips 198.18.0.1/32,2001:db8:f::1/128
	h_wg client set "$WGC" private-key "$(h_wg_key client)" listen-port "$PORT_C" \
		peer "$PUB_S" allowed-ips 198.18.0.2/32,2001:db8:f::2/128 \
		endpoint "$GWD_SERVER4:$PORT_S"
	h_addr client "$WGC" 198.18.0.1/24
	h_addr client "$WGC" 2001:db8:f::1/64
	h_addr server "$WGS" 198.18.0.2/24
	h_addr server "$WGS" 2001:db8:f::2/64
	h_wait_ping client 198.18.0.2 10
	h_wait_ping client 2001:db8:f::2 10
	h_wait_ping server 198.18.0.1 10
}

# The four big transfers, both directions, both inner families.
transfers() {
	tcp_verify client server 198.18.0.2 "$BIG4"
	tcp_verify server client 198.18.0.1 "$BIG4"
	tcp_verify client server 2001:db8:f::2 "$BIG6"
	tcp_verify server client 2001:db8:f::1 "$BIG6"
}

# assert_offloads IF on|off [KEYS]: KEYS default to all four counters.
assert_offloads() {
	local ifn=$1 want=$2 k v
	local keys=${3:-offload_tun_split offload_tun_coalesced offload_udp_gso offload_udp_gro}
	for k in $keys; do
		v=$(gwd_stat "$ifn" "$k")
		h_log "$ifn: $k=$v"
		if [[ $want == on ]]; then
			h_assert_ge "$v" 1 "$ifn: $k with offloads on"
		else
			h_assert_eq "$v" 0 "$ifn: $k with offloads off"
		fi
	done
	h_assert_eq "$(gwd_stat "$ifn" drop_malformed)" 0 "$ifn: drop_malformed"
	h_assert_eq "$(gwd_stat "$ifn" drop_send_error)" 0 "$ifn: drop_send_error"
}

# iperf3 SRC DST ADDR [ARGS...]: a few seconds of TCP; it must move data.
iperf() {
	local src=$1 dst=$2 addr=$3 n out bps
	shift 3
	n=$(h__next iperf)
	h_spawn "$dst" "iperf$n" iperf3 -s -1 -p 5201
	h_wait_listen "$dst" 5201 5
	out=$(h_exec_timeout "$src" 30 iperf3 -c "$addr" -p 5201 -t 3 -J "$@") ||
		h_fail "iperf3 to $addr failed"
	bps=$(jq -r '.end.sum_received.bits_per_second' <<<"$out")
	h_log "iperf3 $src -> $addr $*: $((${bps%.*} / 1000000)) Mbit/s"
	h_assert_ge "${bps%.*}" 1000000 "iperf3 throughput to $addr (bit/s)"
	h_wait_exit "iperf$n" 5
}

pair_up A gwd gwd on
transfers
iperf client server 198.18.0.2 -P 4
iperf client server 198.18.0.2 -P 4 -R
assert_offloads "$WGS" on
assert_offloads "$WGC" on
wg_down server "$WGS"
wg_down client "$WGC"

pair_up B gwd ref on
transfers
# wireguard-go sends datagram by datagram and the veth does not coalesce
# them, so gwd has no UDP GRO receive to count here.
assert_offloads "$WGS" on "offload_tun_split offload_tun_coalesced offload_udp_gso"
wg_down server "$WGS"
wg_down client "$WGC"

pair_up C gwd gwd off
transfers
assert_offloads "$WGS" off
assert_offloads "$WGC" off
wg_down server "$WGS"
wg_down client "$WGC"
