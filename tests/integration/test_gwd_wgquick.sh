#!/usr/bin/env bash
# wg-quick runs gwd as its userspace implementation, on both ends of a tunnel
# (WG_QUICK_USERSPACE_IMPLEMENTATION=$GWD_BIN, daemonized, no -f):
#
#   client: Address (v4 + v6), MTU, Table (a numbered table, reached through
#           ip rules its PostUp adds), DNS with a search domain, PostUp /
#           PreDown / PostDown hooks using %i, Endpoint, AllowedIPs to the LAN
#   server: Address, ListenPort, automatic MTU, hooks
#
# After `wg-quick up`: exactly one daemon per interface, MTU and addresses as
# configured, the AllowedIPs routes in the configured table, hooks run with
# the interface name, DNS handed to resolvconf; inner and LAN pings in both
# families, `wg show` reports a recent handshake and transfer counters that
# grow by at least the bytes sent. After `wg-quick down`: the interface, the
# UAPI socket, the routes and rules are gone, the daemon has exited, and the
# down hooks and `resolvconf -d` ran.
#
# DNS: resolvconf would rewrite the machine's /etc/resolv.conf, which the
# namespaces share, so a stub resolvconf placed first in wg-quick's PATH
# records what wg-quick hands it instead.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib/harness.sh
. "${GW_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/integration/lib/harness.sh"
# shellcheck source=lib/gwd.sh
. "$H_SOURCE_DIR/tests/integration/lib/gwd.sh"

h_require_root
h_require_cmd ip ping wg wg-quick python3
gwd_require

TABLE=4242
PING_SIZE=1000
gwd_lab --lan

h_wg_keypair server
h_wg_keypair client
WGS=$(h_ifname qs)
WGC=$(h_ifname qc)
MARK="$H_LOGDIR/hooks.log"
RESOLV="$H_LOGDIR/resolvconf.log"

mkdir -p "$H_LOGDIR/bin"
cat >"$H_LOGDIR/bin/resolvconf" <<EOF
#!/bin/sh
# Stub: record the call and what wg-quick pipes in.
{ echo "args: \$*"; [ "\$1" = -a ] && sed 's/^/stdin: /'; } >>"$RESOLV"
EOF
chmod 0755 "$H_LOGDIR/bin/resolvconf"

(
	umask 077
	cat >"$H_LOGDIR/$WGC.conf" <<-EOF
		[Interface]
		PrivateKey = $(cat "$(h_wg_key client)")
		Address = 198.18.1.1/24, 2001:db8:f::101/120
		MTU = 1380
		Table = $TABLE
		DNS = 198.18.1.53, 2001:db8:f::153, example.test
		PostUp = echo "client up %i" >>$MARK
		PostUp = ip -4 rule add to 198.19.0.0/16 table $TABLE
		PostUp = ip -6 rule add to 2001:db8:19::/64 table $TABLE
		PreDown = echo "client predown %i" >>$MARK
		PostDown = ip -4 rule del to 198.19.0.0/16 table $TABLE
		PostDown = ip -6 rule del to 2001:db8:19::/64 table $TABLE
		PostDown = echo "client down %i" >>$MARK

		[Peer]
		PublicKey = $(h_wg_pub server)
		AllowedIPs = 198.18.1.2/32, 2001:db8:f::102/128, 198.19.0.0/16, 2001:db8:19::/64
		Endpoint = $GWD_SERVER4:51820
	EOF
	cat >"$H_LOGDIR/$WGS.conf" <<-EOF
		[Interface]
		PrivateKey = $(cat "$(h_wg_key server)")
		ListenPort = 51820
		Address = 198.18.1.2/24, 2001:db8:f::102/120
		PostUp = echo "server up %i" >>$MARK
		PostDown = echo "server down %i" >>$MARK

		[Peer]
		PublicKey = $(h_wg_pub client)
		AllowedIPs = 198.18.1.1/32, 2001:db8:f::101/128
	EOF
)

wgquick() {
	local host=$1
	shift
	h_exec_timeout "$host" 30 env PATH="$H_LOGDIR/bin:$PATH" \
		WG_QUICK_USERSPACE_IMPLEMENTATION="$GWD_BIN" LOG_LEVEL=verbose \
		wg-quick "$@" >>"$H_LOGDIR/wg-quick.log" 2>&1 ||
		h_fail "wg-quick $* on $host failed: $(tail -n 5 "$H_LOGDIR/wg-quick.log")"
}

# PID of the one process in HOST whose command line names IF.
daemon_pid() {
	local host=$1 ifn=$2 pid found=()
	for pid in $(ip netns pids "$(h_ns "$host")"); do
		[[ $(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) == *" $ifn "* ]] && found+=("$pid")
	done
	h_assert_eq "${#found[@]}" 1 "processes serving $ifn in $host (${found[*]})"
	echo "${found[0]}"
}

mtu_of() {
	h_exec "$1" cat "/sys/class/net/$2/mtu"
}

wgquick server up "$H_LOGDIR/$WGS.conf"
wgquick client up "$H_LOGDIR/$WGC.conf"
PID_S=$(daemon_pid server "$WGS")
PID_C=$(daemon_pid client "$WGC")
h_log "wg-quick started $WGS (pid $PID_S) and $WGC (pid $PID_C)"
# UAPI sockets are global: `wg show interfaces` lists other namespaces' too.
h_assert_match " $(h_exec client wg show interfaces) " " $WGC " "wg show interfaces"

h_assert_eq "$(mtu_of client "$WGC")" 1380 "client MTU (configured)"
h_assert_eq "$(mtu_of server "$WGS")" 1420 "server MTU (wg-quick: underlay 1500 - 80)"
h_assert_match "$(h_exec client ip -br addr show dev "$WGC")" \
	"198\.18\.1\.1/24 2001:db8:f::101/120" "client addresses"
routes=$(h_exec client ip -4 route show table "$TABLE"; h_exec client ip -6 route show table "$TABLE")
for r in 198.18.1.2 198.19.0.0/16 2001:db8:f::102 2001:db8:19::/64; do
	grep -q "^$r dev $WGC " <<<"$routes" ||
		h_fail "no route to $r via $WGC in table $TABLE: $routes"
done
if h_exec client ip -4 route show table main | grep -q '^198\.19\.'; then
	h_fail "AllowedIPs route leaked into the main table despite Table = $TABLE"
fi
hooks=$(cat "$MARK")
h_assert_match "$hooks" "server up $WGS" "server PostUp hook"
h_assert_match "$hooks" "client up $WGC" "client PostUp hook with %i"
resolv=$(cat "$RESOLV")
h_assert_match "$resolv" "args: -a $WGC -m 0 -x" "resolvconf registration"
h_assert_match "$resolv" "stdin: nameserver 198\.18\.1\.53" "DNS server handed to resolvconf"
h_assert_match "$resolv" "stdin: nameserver 2001:db8:f::153" "IPv6 DNS server handed to resolvconf"
h_assert_match "$resolv" "stdin: search example\.test" "DNS search domain handed to resolvconf"

h_wait_ping client 198.18.1.2 10
for a in 2001:db8:f::102 198.19.0.2 2001:db8:19::2; do
	h_exec_timeout client 10 ping -n -q -c 3 -i 0.05 -W 1 "$a" >/dev/null ||
		h_fail "ping $a through the wg-quick tunnel failed"
done
h_exec_timeout server 10 ping -n -q -c 3 -i 0.05 -W 1 198.18.1.1 >/dev/null ||
	h_fail "server to client ping failed"
wg_assert_handshake client "$WGC" "$(h_wg_pub server)" 30
wg_assert_handshake server "$WGS" "$(h_wg_pub client)" 30

# transfer counters move with the traffic
PUB_S=$(h_wg_pub server)
rx0=$(wg_field client "$WGC" transfer "$PUB_S" 2)
tx0=$(wg_field client "$WGC" transfer "$PUB_S" 3)
h_exec_timeout client 10 ping -n -q -c 20 -i 0.02 -s "$PING_SIZE" -W 1 198.19.0.2 >/dev/null ||
	h_fail "LAN ping with $PING_SIZE-byte payloads failed"
rx1=$(wg_field client "$WGC" transfer "$PUB_S" 2)
tx1=$(wg_field client "$WGC" transfer "$PUB_S" 3)
h_log "client transfer: rx $rx0 -> $rx1, tx $tx0 -> $tx1"
h_assert_ge $((tx1 - tx0)) $((20 * PING_SIZE)) "client tx bytes for 20 pings"
h_assert_ge $((rx1 - rx0)) $((20 * PING_SIZE)) "client rx bytes for 20 replies"
h_assert_match "$(h_exec client wg show "$WGC")" "latest handshake: [0-9]+ seconds? ago" \
	"wg show human output"

# ---- down
daemon_gone() {
	[[ ! -e /proc/$1 ]] || [[ $(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null) == Z ]]
}
wgquick client down "$H_LOGDIR/$WGC.conf"
wgquick server down "$H_LOGDIR/$WGS.conf"
h_wait_for 5 "client daemon $PID_C to exit" daemon_gone "$PID_C"
h_wait_for 5 "server daemon $PID_S to exit" daemon_gone "$PID_S"
for s in "$WGC" "$WGS"; do
	h_assert_eq "$(test -e "$H_WG_RUN_DIR/$s.sock" && echo present)" "" "UAPI socket $s after down"
done
h_assert_eq "$(h_exec client ip -o link show dev "$WGC" 2>/dev/null || true)" "" \
	"client interface after down"
h_assert_eq "$(h_exec server ip -o link show dev "$WGS" 2>/dev/null || true)" "" \
	"server interface after down"
h_assert_eq "$(h_exec client ip -4 route show table "$TABLE")" "" "table $TABLE after down"
h_assert_eq "$(h_exec client ip -6 route show table "$TABLE")" "" "IPv6 table $TABLE after down"
if h_exec client ip rule show | grep -q "lookup $TABLE"; then
	h_fail "ip rule for table $TABLE survived PostDown"
fi
hooks=$(cat "$MARK")
h_assert_match "$hooks" "client predown $WGC" "client PreDown hook"
h_assert_match "$hooks" "client down $WGC" "client PostDown hook"
h_assert_match "$hooks" "server down $WGS" "server PostDown hook"
h_assert_match "$(cat "$RESOLV")" "args: -d $WGC -f" "resolvconf deregistration"
if [[ " $(h_exec client wg show interfaces) " == *" $WGC "* ]]; then
	h_fail "wg show interfaces still lists $WGC after down"
fi
