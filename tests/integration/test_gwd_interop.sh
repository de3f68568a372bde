#!/usr/bin/env bash
# gwd is accepted as WireGuard by wireguard-go and by itself, in both roles,
# over IPv4 and IPv6 outer addresses, carrying IPv4 and IPv6 inside:
#
#   pair A  server gwd,          client wireguard-go  handshake over IPv4 outer
#   pair B  server wireguard-go, client gwd           handshake over IPv6 outer
#   pair C  server gwd,          client gwd           handshake over IPv4 outer
#
# Only the client is given an Endpoint, so the client must initiate: the
# capture must show every initiation coming from the client and every
# response from the server, and the server must learn the client's endpoint.
# Each pair is configured with `wg setconf` (and `wg showconf` must give the
# same configuration back), shares a preshared key, pings both inner families
# both ways, moves its outer address family mid-session, and carries TCP
# streams whose bytes are checked by SHA-256. Pair C also runs iperf3, and a
# gwd pair with mismatched preshared keys must complete no handshake (and
# must, once the keys agree). Every daemon must leave on SIGTERM with status
# 0, removing its TUN and UAPI socket. Last, a set that the daemon refuses
# (a listen port in use) must reach the user as wg reports kernel errors.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib/harness.sh
. "${GW_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/integration/lib/harness.sh"
# shellcheck source=lib/gwd.sh
. "$H_SOURCE_DIR/tests/integration/lib/gwd.sh"

h_require_root
h_require_cmd ip ss ping wireguard-go wg iperf3 jq dumpcap tshark python3 sha256sum
gwd_require

PORT_S=51820
PORT_C=51821
gwd_lab

h_wg_keypair server
h_wg_keypair client
(umask 077 && wg genpsk >"$H_LOGDIR/keys/psk" && wg genpsk >"$H_LOGDIR/keys/psk2")
PUB_S=$(h_wg_pub server)
PUB_C=$(h_wg_pub client)

# write_confs TAG ENDPOINT PSK_SERVER PSK_CLIENT: the two setconf files.
write_confs() {
	local tag=$1 ep=$2
	cat >"$H_LOGDIR/s$tag.conf" <<-EOF
		[Interface]
		PrivateKey = $(cat "$(h_wg_key server)")
		ListenPort = $PORT_S

		[Peer]
		PublicKey = $PUB_C
		PresharedKey = $(cat "$3")
		AllowedIPs = 198.18.0.1/32, 2001:db8:f::1/128
	EOF
	cat >"$H_LOGDIR/c$tag.conf" <<-EOF
		[Interface]
		PrivateKey = $(cat "$(h_wg_key client)")
		ListenPort = $PORT_C
		FwMark = 0x2a

		[Peer]
		PublicKey = $PUB_S
		PresharedKey = $(cat "$4")
		AllowedIPs = 198.18.0.2/32, 2001:db8:f::2/128, 198.19.0.0/16
		Endpoint = $ep
	EOF
}

# pair_up TAG SERVER_IMPL CLIENT_IMPL ENDPOINT [CLIENT_PSK]: both daemons
# configured and addressed, no packet sent yet.
pair_up() {
	local tag=$1 si=$2 ci=$3 ep=$4 cpsk=${5:-$H_LOGDIR/keys/psk}
	WGS=$(h_ifname "s$tag")
	WGC=$(h_ifname "c$tag")
	h_log "pair $tag: server $(impl_name "$si"), client $(impl_name "$ci"), endpoint $ep"
	impl_up "$si" server "$WGS"
	impl_up "$ci" client "$WGC"
	write_confs "$tag" "$ep" "$H_LOGDIR/keys/psk" "$cpsk"
	h_wg server setconf "$WGS" "$H_LOGDIR/s$tag.conf"
	h_wg client setconf "$WGC" "$H_LOGDIR/c$tag.conf"
	h_assert_eq "$(wg_showconf_norm server "$WGS")" "$(conf_norm "$H_LOGDIR/s$tag.conf")" \
		"wg showconf of $WGS ($(impl_name "$si")) after setconf"
	h_assert_eq "$(wg_showconf_norm client "$WGC")" "$(conf_norm "$H_LOGDIR/c$tag.conf")" \
		"wg showconf of $WGC ($(impl_name "$ci")) after setconf"
	h_assert_eq "$(wg_field server "$WGS" endpoints "$PUB_C" 2)" "(none)" \
		"server endpoint of the client before any packet"
	h_addr client "$WGC" 198.18.0.1/24
	h_addr client "$WGC" 2001:db8:f::1/64
	h_addr server "$WGS" 198.18.0.2/24
	h_addr server "$WGS" 2001:db8:f::2/64
}

ping_ok() {
	h_exec_timeout "$1" 10 ping -n -q -c 3 -i 0.05 -W 1 "$2" >/dev/null ||
		h_fail "ping $2 from $1 lost packets"
}

ping_all() {
	ping_ok client 198.18.0.2
	ping_ok client 2001:db8:f::2
	ping_ok server 198.18.0.1
	ping_ok server 2001:db8:f::1
}

server_endpoint_is() {
	[[ $(wg_field server "$WGS" endpoints "$PUB_C" 2) == "$1" ]]
}

# Who initiated, on the wire: every initiation from the client (on either of
# its outer addresses), every response from the server, data both ways.
assert_roles() {
	local cap=$1 txt="$H_LOGDIR/$1.txt" first
	h_tshark_fields "$cap" wg.type ip.src ipv6.src >"$txt"
	first=$(head -n 1 "$txt")
	h_assert_match "$first" "^1	($GWD_CLIENT4	|	$GWD_CLIENT6)\$" "first WireGuard message"
	h_assert_eq "$(awk -F'\t' '$1 == 1 { print $2 $3 }' "$txt" |
		grep -cvx "$GWD_CLIENT4\|$GWD_CLIENT6" || true)" 0 \
		"initiations not sent by the client"
	h_assert_eq "$(awk -F'\t' '$1 == 2 { print $2 $3 }' "$txt" |
		grep -cvx "$GWD_SERVER4\|$GWD_SERVER6" || true)" 0 \
		"responses not sent by the server"
	h_assert_ge "$(awk -F'\t' '$1 == 2' "$txt" | wc -l)" 1 "handshake responses"
	h_assert_ge "$(awk -F'\t' '$1 == 4 && $2 $3 == "'"$GWD_SERVER4"'"' "$txt" | wc -l)" 1 \
		"data from the server over IPv4"
	h_assert_ge "$(awk -F'\t' '$1 == 4 && $2 $3 == "'"$GWD_SERVER6"'"' "$txt" | wc -l)" 1 \
		"data from the server over IPv6"
	h_assert_ge "$(awk -F'\t' '$1 == 4 && $2 $3 == "'"$GWD_CLIENT4"'"' "$txt" | wc -l)" 1 \
		"data from the client over IPv4"
	h_assert_ge "$(awk -F'\t' '$1 == 4 && $2 $3 == "'"$GWD_CLIENT6"'"' "$txt" | wc -l)" 1 \
		"data from the client over IPv6"
}

# run_pair TAG SERVER_IMPL CLIENT_IMPL FIRST_FAMILY(4|6)
run_pair() {
	local tag=$1 si=$2 ci=$3 fam=$4 ep1 ep2 seen1 seen2 rx0 tx0 rx1 tx1
	if [[ $fam == 4 ]]; then
		ep1="$GWD_SERVER4:$PORT_S" ep2="[$GWD_SERVER6]:$PORT_S"
		seen1="$GWD_CLIENT4:$PORT_C" seen2="[$GWD_CLIENT6]:$PORT_C"
	else
		ep1="[$GWD_SERVER6]:$PORT_S" ep2="$GWD_SERVER4:$PORT_S"
		seen1="[$GWD_CLIENT6]:$PORT_C" seen2="$GWD_CLIENT4:$PORT_C"
	fi
	pair_up "$tag" "$si" "$ci" "$ep1"
	h_capture_start -s 96 -c 200000 router eth1 "pair$tag.pcapng" "udp port $PORT_S"
	# The client speaks first; the server can only answer.
	h_wait_ping client 198.18.0.2 10
	ping_all
	wg_assert_handshake client "$WGC" "$PUB_S"
	wg_assert_handshake server "$WGS" "$PUB_C"
	h_wait_for 5 "server to learn the client endpoint $seen1" server_endpoint_is "$seen1"

	rx0=$(wg_field server "$WGS" transfer "$PUB_C" 2)
	tx0=$(wg_field client "$WGC" transfer "$PUB_S" 3)
	tcp_verify client server 198.18.0.2 $((4 << 20))
	tcp_verify server client 2001:db8:f::1 $((2 << 20))
	rx1=$(wg_field server "$WGS" transfer "$PUB_C" 2)
	tx1=$(wg_field client "$WGC" transfer "$PUB_S" 3)
	h_assert_ge $((rx1 - rx0)) $((4 << 20)) "server rx bytes during the transfers"
	h_assert_ge $((tx1 - tx0)) $((4 << 20)) "client tx bytes during the transfers"

	h_log "pair $tag: client moves its endpoint to $ep2"
	h_wg client set "$WGC" peer "$PUB_S" endpoint "$ep2"
	h_wait_ping client 198.18.0.2 5
	h_wait_for 5 "server to learn the client endpoint $seen2" server_endpoint_is "$seen2"
	ping_all
	tcp_verify client server 2001:db8:f::2 $((1 << 20))
	if [[ $si == gwd && $ci == gwd ]]; then
		run_iperf3
	fi
	h_capture_stop "pair$tag.pcapng"
	assert_roles "pair$tag.pcapng"
	wg_down server "$WGS"
	wg_down client "$WGC"
}

run_iperf3() {
	local j="$H_LOGDIR/iperf3.json" bytes mbps rx0 rx1
	rx0=$(wg_field server "$WGS" transfer "$PUB_C" 2)
	h_spawn server iperf3 iperf3 -s -1 -B 198.18.0.2
	h_wait_listen server 5201 5
	h_exec_timeout client 30 iperf3 -c 198.18.0.2 -t 3 -J >"$j" ||
		h_fail "iperf3 client failed: $(jq -r '.error // empty' "$j")"
	bytes=$(jq '.end.sum_received.bytes' "$j")
	mbps=$(jq '.end.sum_received.bits_per_second / 1e6 | floor' "$j")
	rx1=$(wg_field server "$WGS" transfer "$PUB_C" 2)
	h_log "iperf3 through $(impl_name gwd) <-> $(impl_name gwd): $bytes bytes, $mbps Mbit/s"
	h_assert_ge "$bytes" $((4 << 20)) "iperf3 bytes received through the tunnel"
	h_assert_ge $((rx1 - rx0)) "$bytes" "server wg rx bytes during iperf3"
	h_wait_exit iperf3 5
}

# Mismatched preshared keys: the responder cannot tell from the initiation
# (the PSK enters only at the response), so it answers, but the initiator
# must reject the response: no handshake anywhere, no data on the wire.
run_psk_mismatch() {
	local txt="$H_LOGDIR/psk.txt"
	pair_up P gwd gwd "$GWD_SERVER4:$PORT_S" "$H_LOGDIR/keys/psk2"
	h_capture_start -s 96 router eth1 psk.pcapng "udp port $PORT_S"
	if h_exec_timeout client 10 ping -n -q -c 3 -i 0.5 -W 1 198.18.0.2 >/dev/null; then
		h_fail "ping succeeded through a tunnel with mismatched preshared keys"
	fi
	h_capture_stop psk.pcapng
	h_tshark_fields psk.pcapng wg.type ip.src >"$txt"
	h_assert_ge "$(grep -c "^1	$GWD_CLIENT4\$" "$txt" || true)" 1 "initiations from the client"
	h_assert_ge "$(grep -c "^2	$GWD_SERVER4\$" "$txt" || true)" 1 "responses from the server"
	h_assert_eq "$(grep -c '^4' "$txt" || true)" 0 "data messages with mismatched PSKs"
	h_assert_eq "$(wg_field client "$WGC" latest-handshakes "$PUB_S" 2)" 0 \
		"client latest handshake with mismatched PSKs"
	h_assert_eq "$(wg_field server "$WGS" latest-handshakes "$PUB_C" 2)" 0 \
		"server latest handshake with mismatched PSKs"
	h_log "mismatched PSKs: no handshake; now the client gets the right one"
	h_wg client set "$WGC" peer "$PUB_S" preshared-key "$H_LOGDIR/keys/psk"
	h_wait_ping client 198.18.0.2 15
	wg_assert_handshake client "$WGC" "$PUB_S"
	wg_assert_handshake server "$WGS" "$PUB_C"
	wg_down server "$WGS"
	wg_down client "$WGC"
}

# A refused set reaches the user as the right error (wg turns the answer's
# errno=-N into errno N) and, as with the kernel module, leaves the old port
# bound. (wireguard-go v0.0.20220316 is left with no port at all: not
# checked when it stands in for gwd.)
run_uapi_error() {
	local ifn out port0
	ifn=$(h_ifname e)
	gwd_up server "$ifn"
	h_spawn server holder python3 -c 'import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 40000))
time.sleep(60)'
	h_wait_listen server 40000 5 udp
	port0=$(h_wg server show "$ifn" listen-port)
	if out=$(h_wg server set "$ifn" listen-port 40000 2>&1); then
		h_fail "wg set listen-port on a port in use succeeded"
	fi
	h_assert_match "$out" "Address already in use" "wg's report of a refused listen-port"
	if ! gwd_is_ref; then
		h_assert_eq "$(h_wg server show "$ifn" listen-port)" "$port0" \
			"listen-port after the refused set"
	fi
	h_kill holder
	wg_down server "$ifn"
}

run_pair A gwd ref 4
run_pair B ref gwd 6
run_pair C gwd gwd 4
run_psk_mismatch
run_uapi_error
