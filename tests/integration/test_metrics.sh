#!/usr/bin/env bash
# gwd and syncd serve /metrics (docs/metrics.md), and the figures follow
# what happens:
#
#   part A  server gwd (cluster node 1, anycast, --metrics 127.0.0.1:9586
#           --metrics-per-peer) and a wireguard-go client (gwd_lab): before
#           traffic, no handshake and no session; after pings and a TCP
#           stream, rx/tx bytes grew by at least the stream, handshakes
#           completed, a live owned session with a region, the per-peer bytes
#           equal `wg show transfer`, and every device figure equals the
#           same counter of `stats=1`; scrapes and 404s are counted. A second
#           gwd on the same port, or with an invalid ADDR, refuses to start
#           and creates no interface; a gwd without --metrics listens on no
#           TCP port.
#   part B  a 3-node syncd cluster (Metrics = 127.0.0.1:9587 in cluster.conf,
#           gwd --metrics 127.0.0.1:9586 on every node): every node counts 3
#           members up; after `gwctl peer add` on node 1 every syncd counts
#           the records and applied updates, every gwd the peers; gwctl role
#           shows in syncd_role; when one syncd is killed the others count 2
#           members up. syncd with the port taken or an invalid ADDR refuses
#           to start.
#
# Every exposition is checked with `promtool check metrics`.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib/harness.sh
. "${GW_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/integration/lib/harness.sh"
# shellcheck source=lib/gwd.sh
. "$H_SOURCE_DIR/tests/integration/lib/gwd.sh"
# shellcheck source=lib/cluster.sh
. "$H_SOURCE_DIR/tests/integration/lib/cluster.sh"

h_require_root
h_require_cmd ip ss ping wireguard-go wg curl promtool python3 sha256sum
gwd_require
c_require

GWD_PORT=9586
SYNCD_PORT=9587

# m_scrape HOST PORT: GET /metrics in HOST; the body's file (checked by
# promtool) on stdout.
m_scrape() {
	local host=$1 port=$2 f code
	f=$(mktemp "$H_LOGDIR/scrape-$host-$port-XXXXXX") || h_fail "mktemp"
	code=$(h_exec_timeout "$host" 10 curl -sS --max-time 5 -o "$f" -w '%{http_code}' \
		"http://127.0.0.1:$port/metrics") || h_fail "curl to $host:$port failed"
	[[ $code == 200 ]] || h_fail "$host:$port/metrics answered $code"
	promtool check metrics <"$f" >"$f.promtool" 2>&1 ||
		h_fail "promtool rejects $f: $(cat "$f.promtool")"
	echo "$f"
}

# m_val FILE SERIES: the value of one series (exact name and labels); fails if absent.
m_val() {
	local v
	v=$(awk -v s="$2" '$1 == s { print $2; exit }' "$1")
	[[ -n $v ]] || h_fail "no series $2 in $1"
	echo "$v"
}

m_has() {
	awk -v s="$2" '$1 == s { f = 1 } END { exit !f }' "$1"
}

# m_sum FILE FAMILY: the sum of the family's samples.
m_sum() {
	awk -v f="$2" '$1 == f || index($1, f "{") == 1 { s += $2 } END { printf "%d\n", s }' "$1"
}

# A daemon that must refuse to start: exit status 1 within 10 s, log matching RE.
m_refuses() {
	local host=$1 what=$2 re=$3 rc=0 out
	shift 3
	out=$(h_exec_timeout "$host" 10 "$@" 2>&1) || rc=$?
	h_assert_eq "$rc" 1 "exit status of $what"
	h_assert_match "$out" "$re" "message of $what"
}

# ---------------------------------------------------------------- part A
h_log "part A: gwd with a wireguard-go client"
gwd_lab
h_wg_keypair server
h_wg_keypair client
PUB_S=$(h_wg_pub server)
PUB_C=$(h_wg_pub client)
WGS=$(h_ifname s)
WGC=$(h_ifname c)

h_wg_up server "$WGS" "$GWD_BIN" --metrics "127.0.0.1:$GWD_PORT" --metrics-per-peer \
	--node-id 1 --anycast --state-dir "$H_LOGDIR/gwd-state" \
	--session-socket "$H_LOGDIR/gwd.sessions"
h_wait_listen server "$GWD_PORT" 5
h_wggo_up client "$WGC"
h_wg server set "$WGS" private-key "$(h_wg_key server)" listen-port 51820 \
	peer "$PUB_C" allowed-ips 198.18.0.1/32
h_wg client set "$WGC" private-key "$(h_wg_key client)" listen-port 51821 \
	peer "$PUB_S" allowed-ips 198.18.0.2/32 endpoint "$GWD_SERVER4:51820"
h_addr server "$WGS" 198.18.0.2/24
h_addr client "$WGC" 198.18.0.1/24

S0=$(m_scrape server "$GWD_PORT")
h_assert_eq "$(m_val "$S0" gwd_peers)" 1 "gwd_peers"
h_assert_eq "$(m_val "$S0" 'gwd_handshakes_total{outcome="completed"}')" 0 "handshakes before traffic"
h_assert_eq "$(m_val "$S0" gwd_peers_with_session)" 0 "sessions before traffic"
h_assert_eq "$(m_val "$S0" gwd_peers_owned)" 0 "owned before traffic (anycast: claims on receive)"
h_assert_eq "$(m_val "$S0" "gwd_build_info{version=\"$("$GWD_BIN" --version | awk '{print $2}')\"}")" 1 \
	"gwd_build_info"
h_assert_eq "$(m_val "$S0" "gwd_peer_rx_bytes_total{peer=\"$PUB_C\"}")" 0 "per-peer rx before traffic"
m_has "$S0" gwd_region_headroom_min && h_fail "a region headroom without a session"

h_wait_ping client 198.18.0.2 10
h_exec client ping -c 5 -i 0.2 -q 198.18.0.2 >/dev/null || h_fail "pings through the tunnel"
STREAM=2000000
tcp_verify client server 198.18.0.2 "$STREAM"
# Keepalives and retransmissions end once the stream's last ACKs are through.
sleep 0.5

S1=$(m_scrape server "$GWD_PORT")
for f in gwd_rx_bytes_total gwd_rx_packets_total gwd_tx_bytes_total gwd_tx_packets_total \
	gwd_tun_tx_bytes_total gwd_tun_rx_bytes_total; do
	h_assert_ge "$(($(m_val "$S1" "$f") - $(m_val "$S0" "$f")))" 1 "$f grew"
done
h_assert_ge "$(($(m_val "$S1" gwd_rx_bytes_total) - $(m_val "$S0" gwd_rx_bytes_total)))" \
	"$STREAM" "gwd_rx_bytes_total grew by the stream at least"
h_assert_ge "$(m_val "$S1" 'gwd_handshakes_total{outcome="completed"}')" 1 "handshakes completed"
h_assert_ge "$(m_val "$S1" 'gwd_handshakes_total{outcome="response_sent"}')" 1 "responses sent"
h_assert_eq "$(m_val "$S1" gwd_peers_with_session)" 1 "a live session"
h_assert_eq "$(m_val "$S1" gwd_peers_owned)" 1 "the peer claimed on receive"
h_assert_eq "$(m_val "$S1" gwd_sessions_owned)" 1 "an owned session"
h_assert_ge "$(m_val "$S1" gwd_ownership_claims_total)" 1 "ownership claims"
h_assert_ge "$(m_val "$S1" gwd_region_headroom_min)" 1 "region headroom of the owned session"
h_assert_eq "$(m_val "$S1" 'gwd_cluster_info{node_id="1",mode="anycast"}')" 1 "gwd_cluster_info"
LAST_HS=$(m_val "$S1" gwd_last_handshake_timestamp_seconds)
h_assert_ge "${LAST_HS%.*}" $(($(date +%s) - 60)) "last handshake timestamp"

# The same counters as wg and stats=1 read: no second copy. A keepalive or a
# late ACK may still leave between two reads, so compare a scrape taken
# while wg and stats=1 read the same before and after it (at most 5 tries).
PAIRS=(rx_bytes:gwd_rx_bytes_total tx_packets:gwd_tx_packets_total
	tun_tx_bytes:gwd_tun_tx_bytes_total
	handshake_responses_sent:'gwd_handshakes_total{outcome="response_sent"}'
	drop_no_route:'gwd_dropped_packets_total{reason="no_route"}')
quiet_reads() {
	local pair out
	out=$(h_wg server show "$WGS" transfer)
	for pair in "${PAIRS[@]}"; do
		out+=" $(gwd_stat "$WGS" "${pair%%:*}")"
	done
	echo "$out"
}
TRIES=0
while :; do
	TRIES=$((TRIES + 1))
	BEFORE=$(quiet_reads)
	S2=$(m_scrape server "$GWD_PORT")
	AFTER=$(quiet_reads)
	[[ $BEFORE == "$AFTER" ]] && break
	((TRIES < 5)) || h_fail "the counters kept moving for 5 tries: $BEFORE / $AFTER"
	sleep 1
done
read -r -a READ <<<"$AFTER" # public key, wg rx, wg tx, then PAIRS' stats=1 values
h_assert_eq "$(m_val "$S2" "gwd_peer_rx_bytes_total{peer=\"$PUB_C\"}")" "${READ[1]}" \
	"per-peer rx bytes = wg show transfer"
h_assert_eq "$(m_val "$S2" "gwd_peer_tx_bytes_total{peer=\"$PUB_C\"}")" "${READ[2]}" \
	"per-peer tx bytes = wg show transfer"
for i in "${!PAIRS[@]}"; do
	pair=${PAIRS[i]}
	h_assert_eq "$(m_val "$S2" "${pair#*:}")" "${READ[i + 3]}" "${pair#*:} = stats=1 ${pair%%:*}"
done
h_assert_eq "$(($(m_val "$S2" gwd_metrics_scrapes_total) - $(m_val "$S0" gwd_metrics_scrapes_total)))" \
	$((1 + TRIES)) "scrapes counted"
code=$(h_exec server curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$GWD_PORT/nope")
h_assert_eq "$code" 404 "another path"
S3=$(m_scrape server "$GWD_PORT")
h_assert_eq "$(m_val "$S3" 'gwd_metrics_errors_total{class="client"}')" 1 "the 404 counted"

# Refusals, and no listener without the option.
m_refuses server "gwd on a metrics port in use" "address in use" \
	"$GWD_BIN" -f --metrics "127.0.0.1:$GWD_PORT" "$(h_ifname x)"
h_exec server ip link show dev "$(h_ifname x)" >/dev/null 2>&1 &&
	h_fail "gwd created its interface although the metrics port was taken"
m_refuses server "gwd with a host name as metrics ADDR" "not a numeric IP:PORT" \
	"$GWD_BIN" -f --metrics "localhost:$GWD_PORT" "$(h_ifname x)"
m_refuses server "gwd --metrics-per-peer alone" "needs --metrics" \
	"$GWD_BIN" -f --metrics-per-peer "$(h_ifname x)"
h_gwd_up client "$(h_ifname p)"
h_assert_eq "$(h_exec client ss -Htln | wc -l)" 0 "TCP listeners of a gwd without --metrics"
h_kill "$(h_ifname p)" TERM
wg_down server "$WGS"

# ---------------------------------------------------------------- part B
h_log "part B: a 3-node syncd cluster"
C_CONF_EXTRA="Metrics = 127.0.0.1:$SYNCD_PORT"
C_GWD_ARGS="--metrics 127.0.0.1:$GWD_PORT"
c_lab 3
for i in 1 2 3; do
	c_syncd_up "$i"
done
c_wait_synced 30 1 2 3

# members_up_is I N: node I's syncd counts N members up.
members_up_is() {
	[[ $(m_sum "$(m_scrape "n$1" "$SYNCD_PORT")" syncd_member_up) == "$2" ]]
}
for i in 1 2 3; do
	h_wait_for 10 "node $i counts 3 members up" members_up_is "$i" 3
	T=$(m_scrape "n$i" "$SYNCD_PORT")
	h_assert_eq "$(m_val "$T" 'syncd_records{state="live"}')" 0 "node $i records before"
	h_assert_eq "$(m_val "$T" syncd_synced)" 1 "node $i synced"
	h_assert_eq "$(m_val "$T" syncd_members)" 3 "node $i members configured"
	h_assert_eq "$(m_val "$(m_scrape "n$i" "$GWD_PORT")" gwd_peers)" 0 "gwd peers on node $i"
done
B0=$(m_scrape n1 "$SYNCD_PORT")

mapfile -t KEYS < <(c_keys 3)
for k in 0 1 2; do
	c_ctl 1 peer add "${KEYS[k]}" allowed-ips "198.18.1.$((k + 1))/32" >/dev/null ||
		h_fail "gwctl peer add on node 1"
done
c_wait_converged 20

records_are() {
	[[ $(m_val "$(m_scrape "n$1" "$SYNCD_PORT")" 'syncd_records{state="live"}') == "$2" ]]
}
gwd_peers_are() {
	[[ $(m_val "$(m_scrape "n$1" "$GWD_PORT")" gwd_peers) == "$2" ]]
}
for i in 1 2 3; do
	h_wait_for 10 "node $i counts 3 records" records_are "$i" 3
	h_wait_for 10 "node $i's gwd counts 3 peers" gwd_peers_are "$i" 3
	T=$(m_scrape "n$i" "$SYNCD_PORT")
	h_assert_ge "$(m_val "$T" 'syncd_gwd_applied_peers_total{change="added"}')" 3 \
		"node $i: peers added to gwd"
	h_assert_ge "$(m_val "$T" 'syncd_gwd_applies_total{result="ok"}')" 1 "node $i: applies"
	h_assert_eq "$(m_val "$T" syncd_gwd_connected)" 1 "node $i: gwd connected"
	h_assert_eq "$(m_sum "$T" syncd_rejected_messages_total)" 0 "node $i: rejected messages"
	if ((i > 1)); then
		h_assert_eq "$(m_val "$T" syncd_updates_applied_total)" 3 "node $i: updates applied"
		h_assert_eq "$(m_val "$T" 'syncd_replication_applied_seq{origin="1"}')" \
			"$(m_val "$(m_scrape n1 "$SYNCD_PORT")" syncd_own_seq)" "node $i: node 1's stream"
		h_assert_eq "$(m_val "$T" 'syncd_replication_behind_updates{origin="1"}')" 0 \
			"node $i: nothing behind"
	fi
done
B1=$(m_scrape n1 "$SYNCD_PORT")
h_assert_eq "$(($(m_val "$B1" syncd_updates_written_total) - $(m_val "$B0" syncd_updates_written_total)))" \
	3 "node 1 wrote 3 updates"
h_assert_ge "$(($(m_val "$B1" syncd_messages_sent_total) - $(m_val "$B0" syncd_messages_sent_total)))" \
	3 "node 1 sent messages"

# The role: remembered (gwd is no cluster node here, so it is not subscribed).
c_ctl 1 role backup >/dev/null 2>&1 || true
T=$(m_scrape n1 "$SYNCD_PORT")
h_assert_eq "$(m_val "$T" 'syncd_role{role="backup"}')" 1 "syncd_role backup"
h_assert_eq "$(m_val "$T" 'syncd_role_changes_total{role="backup"}')" 1 "role change counted"
h_assert_eq "$(m_val "$T" syncd_gwd_subscribed)" 0 "gwd not subscribed"

# One member dies: the others count it down.
c_syncd_kill 3 KILL
for i in 1 2; do
	h_wait_for 10 "node $i counts 2 members up" members_up_is "$i" 2
	h_assert_eq "$(m_val "$(m_scrape "n$i" "$SYNCD_PORT")" 'syncd_member_up{member="3"}')" 0 \
		"node $i: member 3 down"
done

m_refuses n1 "syncd on a metrics port in use" "cannot serve metrics on 127.0.0.1:$SYNCD_PORT" \
	"$C_SYNCD" -f -c "$(c_conf_path 1)"
m_refuses n1 "syncd --metrics with a host name" "not a numeric IP:PORT" \
	"$C_SYNCD" -f -c "$(c_conf_path 1)" --metrics "localhost:$SYNCD_PORT"
h_alive syncd1 || h_fail "syncd of node 1 died"
