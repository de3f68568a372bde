#!/usr/bin/env bash
# DoS mitigation: a flood of handshake initiations makes the responder
# ($GWD_BIN) answer with cookie replies, and a legitimate wireguard-go
# client still gets through while the flood goes on.
#
# A flooder namespace sends 148-byte type-1 messages with a valid mac1 (so a
# responder cannot drop them as garbage: each costs it a DH unless it is
# under load) and random everything else. Asserted:
#   - cookie replies (type 3) reach the flooder, addressed to the sender
#     indexes it used;
#   - the client's first initiation is answered with a cookie reply too,
#     and its retry (now with mac2 from that cookie) completes a handshake:
#     a handshake response and data follow on the wire, `wg show` has a
#     handshake, and pings pass, all before the flood ends.
#
# gwd goes under load above GWD_UNDER_LOAD_THRESHOLD (set low here), so a
# few thousand initiations per second suffice. wireguard-go's threshold is
# fixed (a handshake queue 1/8 full), so with GWD_BIN=wireguard-go the flood
# runs as fast as python3 can send. FLOOD_RATE overrides either.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib/harness.sh
. "${GW_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/integration/lib/harness.sh"
# shellcheck source=lib/gwd.sh
. "$H_SOURCE_DIR/tests/integration/lib/gwd.sh"

h_require_root
h_require_cmd ip ping wg wireguard-go dumpcap tshark python3 jq
gwd_require

PORT_S=51820
PORT_C=51821
FLOODER4=192.0.2.66
FLOOD_SECS=14
THRESHOLD=${GWD_UNDER_LOAD_THRESHOLD:-8}
if gwd_is_ref; then
	FLOOD_RATE=${FLOOD_RATE:-200000}
else
	FLOOD_RATE=${FLOOD_RATE:-4000}
fi

gwd_lab
h_host flooder
h_attach flooder access eth0
h_addr flooder eth0 "$FLOODER4/24"
h_route flooder default via 192.0.2.1
h_wait_ping flooder "$GWD_SERVER4" 5

h_wg_keypair server
h_wg_keypair client
PUB_S=$(h_wg_pub server)
PUB_C=$(h_wg_pub client)
WGS=$(h_ifname s)
WGC=$(h_ifname c)
gwd_up server "$WGS" GWD_UNDER_LOAD_THRESHOLD="$THRESHOLD"
ref_up client "$WGC"
h_wg server set "$WGS" private-key "$(h_wg_key server)" listen-port "$PORT_S" \
	peer "$PUB_C" allowed-ips 198.18.0.1/32
h_wg client set "$WGC" private-key "$(h_wg_key client)" listen-port "$PORT_C" \
	peer "$PUB_S" allowed-ips 198.18.0.2/32 endpoint "$GWD_SERVER4:$PORT_S"
h_addr client "$WGC" 198.18.0.1/24
h_addr server "$WGS" 198.18.0.2/24

# The client's conversation in full; of the flood only the first cookie
# replies (the flooder counts them all).
h_capture_start -s 256 server eth0 client.pcapng "udp port $PORT_S and host $GWD_CLIENT4"
h_capture_start -s 128 -c 500 server eth0 flood.pcapng \
	"udp port $PORT_S and dst host $FLOODER4 and udp[8] = 3"

h_log "flood: $FLOOD_RATE initiations/s for ${FLOOD_SECS}s, threshold $THRESHOLD"
h_spawn flooder flood python3 "$GWD_TOOL" flood --addr "$GWD_SERVER4" --port "$PORT_S" \
	--pub "$PUB_S" --rate "$FLOOD_RATE" --duration "$FLOOD_SECS" --prefix 241 \
	--report "$H_LOGDIR/flood.json"
sleep 2
h_alive flood || h_fail "the flooder died: $(tail -n 5 "$(h_log_of flood)")"

# The client starts talking in the middle of the flood.
h_log "client starts its handshake"
h_spawn client ping ping -D -n -i 0.2 -W 1 198.18.0.2
flood_running() {
	h_alive flood || h_fail "the flood ended before the client completed a handshake"
	wg_handshake_done client "$WGC" "$PUB_S"
}
h_wait_for $((FLOOD_SECS - 3)) "client handshake during the flood" flood_running
h_exec_timeout client 5 ping -n -q -c 3 -i 0.2 -W 1 198.18.0.2 >/dev/null ||
	h_fail "client ping during the flood failed"
h_alive flood || h_fail "the flood ended before the client's ping went through"
h_log "client handshake and ping done while the flood runs"
if ! gwd_is_ref; then
	# gwd's own account (stats=1 is its extension): under load right now.
	h_assert_eq "$(gwd_stat "$WGS" under_load)" 1 "gwd under_load during the flood"
fi
wg_assert_handshake server "$WGS" "$PUB_C" 30

h_wait_exit flood $((FLOOD_SECS + 10))
h_wait_file "$H_LOGDIR/flood.json" 5
h_capture_stop
h_kill ping INT
h_log "flooder: $(cat "$H_LOGDIR/flood.json")"
h_assert_ge "$(jq .sent "$H_LOGDIR/flood.json")" $((FLOOD_RATE * FLOOD_SECS / 4 < 8000 ? FLOOD_RATE * FLOOD_SECS / 4 : 8000)) \
	"initiations the flooder sent"
h_assert_ge "$(jq .cookie_replies "$H_LOGDIR/flood.json")" 1 \
	"cookie replies the flooder received for its indexes"

if ! gwd_is_ref; then
	sent=$(gwd_stat "$WGS" cookie_replies_sent)
	h_log "gwd: $sent cookie replies sent, $(gwd_stat "$WGS" handshake_fail_bad_auth) bad initiations"
	h_assert_ge "$sent" "$(jq .cookie_replies "$H_LOGDIR/flood.json")" \
		"gwd's cookie_replies_sent against the replies the flooder got"
fi

# On the wire: cookie replies to the flooder, answering its indexes
# (prefix 241 = 0xf1 in the top byte).
h_tshark_fields flood.pcapng wg.type wg.receiver >"$H_LOGDIR/flood.txt"
h_assert_ge "$(wc -l <"$H_LOGDIR/flood.txt")" 1 "cookie replies to the flooder on the wire"
h_assert_eq "$(awk -F'\t' '$1 != 3 || $2 !~ /^0xf1/' "$H_LOGDIR/flood.txt" | wc -l)" 0 \
	"cookie replies to the flooder with receivers outside its index range"

# The client: initiation, cookie reply, initiation (with mac2), response.
h_tshark_fields client.pcapng wg.type ip.src wg.mac2 >"$H_LOGDIR/client.txt"
seq=$(awk -F'\t' '$1 != 4 { printf "%s%s", sep, $1; sep = " " }' "$H_LOGDIR/client.txt")
h_log "client handshake messages on the wire: $seq"
h_assert_match "$seq" "^1( 1)* 3 (1 )*1 2" "client handshake sequence (1 = initiation, 3 = cookie)"
h_assert_ge "$(awk -F'\t' '$1 == 1 && $3 !~ /^0+$/ && $3 != ""' "$H_LOGDIR/client.txt" | wc -l)" 1 \
	"client initiations carrying a mac2"
h_assert_ge "$(awk -F'\t' '$1 == 4 && $2 == "'"$GWD_SERVER4"'"' "$H_LOGDIR/client.txt" | wc -l)" 1 \
	"data from the server to the client"

wg_down server "$WGS"
wg_down client "$WGC"
