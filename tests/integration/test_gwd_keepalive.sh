#!/usr/bin/env bash
# Persistent keepalive on the wire, from both ends of an idle tunnel:
#
#   1. the client ($GWD_BIN) has persistent-keepalive 1 and never sends
#      data: setting it must bring the tunnel up by itself, then the
#      capture on the underlay must show a keepalive (a type-4 message with
#      an empty payload: 32 bytes of UDP payload) from the client about
#      every second, and nothing from the server, which must not answer
#      keepalives;
#   2. at run time the client's keepalive goes off and the server's
#      ($GWD_BIN) is set to 2 s: keepalives now come from the server every
#      2 s and none from the client.
#
# Both ends run $GWD_BIN, so each phase checks one role of it.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib/harness.sh
. "${GW_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/integration/lib/harness.sh"
# shellcheck source=lib/gwd.sh
. "$H_SOURCE_DIR/tests/integration/lib/gwd.sh"

h_require_root
h_require_cmd ip ping wg wireguard-go dumpcap tshark
gwd_require

PORT_S=51820
PORT_C=51821
WINDOW=6
gwd_lab

h_wg_keypair server
h_wg_keypair client
PUB_S=$(h_wg_pub server)
PUB_C=$(h_wg_pub client)

# keepalive_times CAPTURE SRC: epoch times of keepalives sent by SRC.
keepalive_times() {
	h_tshark_fields "$1" frame.time_epoch \
		"wg.type == 4 && udp.length == 40 && ip.src == $2"
}

# check_cadence NAME TIMES_FILE INTERVAL: about WINDOW / INTERVAL keepalives,
# each gap within [0.75, 1.5] x INTERVAL.
check_cadence() {
	local name=$1 f=$2 iv=$3 n gaps
	n=$(wc -l <"$f")
	gaps=$(awk 'NR > 1 { printf "%.3f ", $1 - prev } { prev = $1 }' "$f")
	h_log "$name: $n keepalives in ${WINDOW}s, gaps: $gaps"
	h_assert_ge "$n" $((WINDOW / iv - 1)) "$name keepalives in ${WINDOW}s"
	h_assert_le "$n" $((WINDOW / iv + 1)) "$name keepalives in ${WINDOW}s"
	awk -v iv="$iv" 'NR > 1 { g = $1 - prev; if (g < 0.75 * iv || g > 1.5 * iv) bad++ }
		{ prev = $1 } END { exit bad > 0 }' "$f" ||
		h_fail "$name keepalive gaps outside [0.75, 1.5] x ${iv}s: $gaps"
}

WGS=$(h_ifname s)
WGC=$(h_ifname c)
gwd_up server "$WGS"
gwd_up client "$WGC"
h_wg server set "$WGS" private-key "$(h_wg_key server)" listen-port "$PORT_S" \
	peer "$PUB_C" allowed-ips 198.18.0.1/32
h_wg client set "$WGC" private-key "$(h_wg_key client)" listen-port "$PORT_C" \
	peer "$PUB_S" allowed-ips 198.18.0.2/32 endpoint "$GWD_SERVER4:$PORT_S"
h_addr client "$WGC" 198.18.0.1/24
h_addr server "$WGS" 198.18.0.2/24

# ---- 1: the client keeps the idle tunnel alive
h_capture_start -s 96 router eth1 ka1.pcapng "udp port $PORT_S"
h_wg client set "$WGC" peer "$PUB_S" persistent-keepalive 1
h_assert_eq "$(wg_field client "$WGC" persistent-keepalive "$PUB_S" 2)" 1 \
	"persistent-keepalive read back"
h_wait_for 10 "a handshake started by the keepalive alone" \
	wg_handshake_done server "$WGS" "$PUB_C"
T0=$(date +%s.%N)
sleep "$WINDOW"
T1=$(date +%s.%N)
h_capture_stop ka1.pcapng
# Only what was sent after the handshake, inside the window.
keepalive_times ka1.pcapng "$GWD_CLIENT4" |
	awk -v a="$T0" -v b="$T1" '$1 >= a && $1 < b' >"$H_LOGDIR/ka1.client"
check_cadence client "$H_LOGDIR/ka1.client" 1
h_assert_eq "$(h_tshark_fields ka1.pcapng frame.number "wg.type == 4 && ip.src == $GWD_SERVER4" |
	wc -l)" 0 "data or keepalives from the server, which should only receive"
h_assert_eq "$(wg_field server "$WGS" endpoints "$PUB_C" 2)" "$GWD_CLIENT4:$PORT_C" \
	"server endpoint of the client"

# ---- 2: now the server does it, every 2 s
h_wg client set "$WGC" peer "$PUB_S" persistent-keepalive 0
h_assert_eq "$(wg_field client "$WGC" persistent-keepalive "$PUB_S" 2)" off \
	"persistent-keepalive of the client after setting 0"
h_capture_start -s 96 router eth1 ka2.pcapng "udp port $PORT_S"
h_wg server set "$WGS" peer "$PUB_C" persistent-keepalive 2
T0=$(date +%s.%N)
sleep "$WINDOW"
T1=$(date +%s.%N)
h_capture_stop ka2.pcapng
keepalive_times ka2.pcapng "$GWD_SERVER4" |
	awk -v a="$T0" -v b="$T1" '$1 >= a && $1 < b' >"$H_LOGDIR/ka2.server"
check_cadence server "$H_LOGDIR/ka2.server" 2
h_assert_eq "$(keepalive_times ka2.pcapng "$GWD_CLIENT4" |
	awk -v a="$T0" -v b="$T1" '$1 >= a && $1 < b' | wc -l)" 0 \
	"keepalives from the client after its keepalive went off"
h_exec_timeout client 10 ping -n -q -c 3 -i 0.1 -W 1 198.18.0.2 >/dev/null ||
	h_fail "the kept-alive tunnel does not carry a ping"

wg_down server "$WGS"
wg_down client "$WGC"
