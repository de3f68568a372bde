#!/usr/bin/env bash
# The lab (scripts/lab) end to end, as a newcomer runs it: `up`, `status`,
# `demo`, `down`, plus an `up` interrupted half-way.
#
# Asserts on the figures of the demo's report.json: for gwcluster, every
# client's longest ping gap is under 500 ms, no client sent a handshake
# initiation during the failover, every TCP stream carried on (bytes moved,
# also after the kill), the new master kept the replicated session (the
# receiver index the old master used), no (receiver, counter) pair was sent
# twice, the killed node came back as a ready BACKUP holding every client's
# session; for the status quo (same nodes, wireguard-go, no session sync) the
# gap is seconds long and the clients handshake again, so the instruments do
# see a failover that is not hitless. The picture is well-formed SVG with a
# row per client. An interrupted `up` and `down` leave nothing behind: no
# namespace, process, link or socket of the lab, no run directory.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib/harness.sh
. "${GW_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/integration/lib/harness.sh"

h_require_root
h_require_cmd ip jq python3 keepalived wireguard-go wg iperf3 dumpcap tshark nft pgrep curl

LAB=$H_SOURCE_DIR/scripts/lab
# The lab's own id and directory, unique to this run.
ID="l${H_RUNID#g}"
DIR=$H_LOGDIR/lab
OUT=$H_LOGDIR/out
NCLIENTS=3

lab() {
	local secs=$1
	shift
	timeout -k 10 "$secs" "$LAB" --dir "$DIR" --id "$ID" --out "$OUT" "$@"
}

# Whatever happens to the test, the lab goes.
h_on_teardown "$LAB" --dir "$DIR" --id "$ID" down

# Namespaces, processes, links and sockets of the lab still present.
leftovers() {
	ip netns list | awk '{ print $1 }' | grep "^$ID-" | sed 's/^/netns /' || true
	pgrep -a -f -- "$ID" | grep -v "pgrep" | sed 's/^/process /' || true
	pgrep -a -f -- "$DIR/" | grep -v "pgrep" | sed 's/^/process /' || true
	ip -o link | grep -- "$ID" | sed 's/^/link /' || true
	compgen -G "/var/run/wireguard/$ID*" | sed 's/^/socket /' || true
}

assert_nothing_left() {
	local left
	left=$(leftovers)
	h_assert_eq "$left" "" "$1: what the lab left behind"
}

# ---------------------------------------------------------------- interrupted up
# As Ctrl-C in a terminal does: SIGINT to the lab's process group (its
# foreground children too). Job control gives the background job a group of
# its own; env resets SIGINT, which bash ignores in background jobs.
h_log "lab up, interrupted with SIGINT (Ctrl-C) once its gateways run"
set -m
GW_KEEP_LOGS=1 env --default-signal=INT,TERM "$LAB" --dir "$DIR" --id "$ID" --out "$OUT" up --no-build \
	>"$H_LOGDIR/up-int.log" 2>&1 &
up_pid=$!
set +m
h_wait_for 120 "the interrupted up to start keepalived" test -s "$DIR/ka1.log"
kill -INT -- "-$up_pid"
rc=0
wait "$up_pid" || rc=$?
h_assert_eq "$rc" 130 "exit status of the interrupted up"
# The lab's own teardown ran (its report; bash 5.2 can fail to parse a trap
# that fires while it parses a $(...), and then exits with status 2 through
# the same teardown, without the "caught" line).
h_assert_match "$(cat "$H_LOGDIR/up-int.log")" "logs kept in $DIR" "interrupted up's teardown"
assert_nothing_left "after the interrupted up"
lab 60 down >/dev/null
[[ ! -e $DIR ]] || h_fail "down left $DIR"

# ---------------------------------------------------------------- up
h_log "lab up"
lab 240 up --no-build >"$H_LOGDIR/up.out"
cat "$H_LOGDIR/up.out" >&2
up=$(cat "$H_LOGDIR/up.out")
h_assert_match "$up" "lab $ID is up \\(gwcluster gateways\\)" "up's summary"
h_assert_match "$up" "ip netns exec $ID-gw1 wg show ${ID}n1" "up's hint to reach gw1"
h_assert_match "$up" "cluster.conf status" "up's gwctl hint"
# 3 gateways, router, LAN host, 3 clients, 3 bridges.
h_assert_eq "$(ip netns list | awk '{ print $1 }' | grep -c "^$ID-")" 11 "namespaces of the lab"
# Metrics, where gwd and syncd serve them: the scrape commands up prints
# work, promtool accepts the exposition, and the master's counters move with
# the clients' traffic.
scrape() {
	ip netns exec "$ID-$1" curl -sf -m 5 "http://127.0.0.1:$2/metrics"
}
metric() {
	awk -v m="$1" '$1 == m { print $2; found = 1 } END { if (!found) print "none" }'
}
if "$H_BUILD_DIR/bin/gwd" --help 2>&1 | grep -q -- --metrics; then
	h_assert_match "$up" "curl -s http://127.0.0.1:9586/metrics" "up's gwd scrape hint"
	h_assert_match "$up" "curl -s http://127.0.0.1:9587/metrics" "up's syncd scrape hint"
	for port in 9586 9587; do
		scrape gw1 "$port" >"$H_LOGDIR/metrics-$port.txt" || h_fail "scrape of gw1:$port"
		if command -v promtool >/dev/null; then
			promtool check metrics <"$H_LOGDIR/metrics-$port.txt" >&2 ||
				h_fail "promtool refuses gw1's exposition on port $port"
		fi
	done
	rx0=$(metric gwd_rx_packets_total <"$H_LOGDIR/metrics-9586.txt")
	timeout 10 ip netns exec "$ID-c1" ping -q -c 5 -i 0.05 -W 1 198.19.0.2 >/dev/null ||
		h_fail "ping from c1 through the tunnel"
	rx1=$(scrape gw1 9586 | metric gwd_rx_packets_total)
	h_assert_ge "$rx1" "$((rx0 + 5))" "gw1's gwd_rx_packets_total after 5 pings from c1 (was $rx0)"
	h_assert_eq "$(metric gwd_sessions_owned <"$H_LOGDIR/metrics-9586.txt")" "$NCLIENTS" \
		"gwd_sessions_owned on the master"
fi

lab 60 status >"$H_LOGDIR/status.out"
cat "$H_LOGDIR/status.out" >&2
h_assert_eq "$(grep -c '^gw[0-9] *MASTER' "$H_LOGDIR/status.out")" 1 "masters in status"
h_assert_eq "$(grep -c '^gw[0-9] *BACKUP *backup *yes *0 *'"$NCLIENTS" "$H_LOGDIR/status.out")" 2 \
	"ready backups holding every client's session, in status"

# ---------------------------------------------------------------- demo
h_log "lab demo"
lab 480 demo --json >"$H_LOGDIR/report.stdout"
R=$OUT/report.json
for f in "$R" "$OUT/report.txt" "$OUT/failover.svg"; do
	[[ -s $f ]] || h_fail "demo wrote no $f"
done
cat "$OUT/report.txt" >&2
h_assert_eq "$(jq -S . "$H_LOGDIR/report.stdout" | md5sum)" "$(jq -S . "$R" | md5sum)" \
	"demo --json prints report.json"

q() { jq -r "$1" "$R"; }
h_assert_eq "$(q '.gwcluster.clients | length')" "$NCLIENTS" "gwcluster clients in the report"
h_assert_eq "$(q '[.gwcluster.clients[].impl] | unique | join(",")')" "gwd,wireguard-go" \
	"client implementations"
for ((i = 0; i < NCLIENTS; i++)); do
	c="c$((i + 1))"
	g=$(q ".gwcluster.clients[$i].longest_gap_ms // \"none\"")
	h_assert_le "$g" 499.999 "gwcluster: longest ping gap (ms) of $c"
	h_assert_eq "$(q ".gwcluster.clients[$i].client_initiations")" 0 \
		"gwcluster: handshake initiations of $c during the failover"
	h_assert_eq "$(q ".gwcluster.clients[$i].tcp")" ok "gwcluster: TCP stream of $c"
	h_assert_ge "$(q ".gwcluster.clients[$i].bytes")" 1 "gwcluster: bytes moved to $c"
	h_assert_ge "$(q ".gwcluster.clients[$i].bytes_after_kill")" 1 \
		"gwcluster: bytes moved to $c after the kill"
	h_assert_eq "$(q ".gwcluster.clients[$i].same_keypair")" true \
		"gwcluster: the new master kept $c's replicated session"
	h_assert_eq "$(q ".gwcluster.clients[$i].repeated_nonces")" 0 \
		"gwcluster: (receiver, counter) pairs sent twice to $c"
	h_assert_ge "$(q ".status_quo.clients[$i].longest_gap_ms // 0")" 5000 \
		"status quo: longest ping gap (ms) of $c"
	h_assert_ge "$(q ".status_quo.clients[$i].client_initiations")" 1 \
		"status quo: handshake initiations of $c"
	h_assert_eq "$(q ".status_quo.clients[$i].repeated_nonces")" 0 \
		"status quo: (receiver, counter) pairs sent twice to $c"
done
h_assert_eq "$(q '.summary.gwcluster_hitless')" true "report's verdict"
killed=$(q .gwcluster.killed)
h_assert_ne "$killed" "$(q .gwcluster.new_master)" "killed node and new master"
h_assert_eq "$(q "[.gwcluster.nodes[] | select(.keepalived == \"MASTER\")] | length")" 1 \
	"gwcluster masters after the failover"
h_assert_eq "$(q "[.gwcluster.nodes[] | select(.keepalived == \"MASTER\")][0].sessions_owned")" \
	"$NCLIENTS" "sessions owned by the new master"
n=$(q ".gwcluster.nodes[] | select(.name == \"$killed\") |
	\"\(.keepalived) \(.role) \(.ready) \(.sessions_standby)\"")
h_assert_eq "$n" "BACKUP backup 0 $NCLIENTS" "the killed node after its return (keepalived role ready standby)"
h_assert_le "$(q .gwcluster.vrrp_master_ms)" 1000 "ms until the new master's first VRRP advert"

python3 - "$OUT/failover.svg" "$NCLIENTS" <<'PY' || h_fail "failover.svg"
import sys
import xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
assert root.tag.endswith("svg"), root.tag
texts = [t.text or "" for t in root.iter("{http://www.w3.org/2000/svg}text")]
for i in range(1, int(sys.argv[2]) + 1):
    rows = [t for t in texts if t.startswith("c%d " % i)]
    # gwcluster, status quo, gwcluster zoomed in
    assert len(rows) == 3, ("rows of c%d" % i, rows)
assert any(t.startswith("status quo") for t in texts), "no status quo panel"
ticks = root.findall(".//{http://www.w3.org/2000/svg}path")
assert len(ticks) >= 3 * int(sys.argv[2]), "reply ticks: %d rows" % len(ticks)
PY

# After the demo the lab is gwcluster again, as up left it.
lab 60 status >"$H_LOGDIR/status2.out"
h_assert_match "$(head -n 1 "$H_LOGDIR/status2.out")" "gwcluster gateways" "status after the demo"
h_assert_eq "$(grep -c '^gw[0-9] *MASTER' "$H_LOGDIR/status2.out")" 1 "masters after the demo"

# ---------------------------------------------------------------- down
h_log "lab down"
lab 60 down
assert_nothing_left "after down"
[[ ! -e $DIR ]] || h_fail "down left $DIR"
[[ -s $OUT/report.json ]] || h_fail "down removed the report"
rc=0
lab 30 status >/dev/null 2>&1 || rc=$?
h_assert_eq "$rc" 1 "status of a lab that is down"
h_log "gwcluster gaps (ms): $(q '[.gwcluster.clients[].longest_gap_ms] | join(", ")');" \
	"status quo: $(q '[.status_quo.clients[].longest_gap_ms] | join(", ")')"
