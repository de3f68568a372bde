# shellcheck shell=bash
# failover.sh - gateways behind a keepalived VRRP VIP, a wireguard-go client,
# and the measurements of a failover: for the test_failover_*.sh tests and
# bench/failover. Source it after harness.sh.
#
# Topology of `f_lab N` (addresses from docs/testing.md):
#
#   client eth0 192.0.2.2/24 ---[bridge access]--- gwI eth0 192.0.2.(10+I)/24
#                                                   VIP 192.0.2.100/24 (master)
#   lan eth0 203.0.113.1/24 ----[bridge back]----- gwI eth1 203.0.113.(I+1)/24
#   lan lo 198.19.0.2/32 (the LAN host)              2001:db8:3::(I+1)/64
#                                                   VIP 203.0.113.100/24 (master)
#
# The access bridge carries the client's WireGuard traffic and VRRP; the
# back bridge carries the LAN traffic and the sync links (syncd). Every
# gateway's WireGuard interface has the same inner address 198.18.0.1/16 and
# the same private key; the client is 198.18.1.2, its peer allows
# 198.18.0.0/16 and 198.19.0.0/16, endpoint VIP:51820. The LAN host routes
# 198.18.0.0/16 to the back VIP, the gateways route 198.19.0.0/16 to the LAN
# host, so a ping from the client to 198.19.0.2 crosses the master both ways.
#
# Two flavours of gateway:
#   wggo       the status quo: wireguard-go with the same key and peers, and
#              keepalived moving the VIP (f_wggo_node)
#   gwcluster  gwd + syncd + keepalived with the ha-hooks (f_gwc_node)
#
#   f_lab N                    hosts, bridges, addresses, routes, keys
#   f_keepalived_conf I [EXTRA]  write node I's keepalived.conf (VRRPv3,
#                              advert_int F_ADVERT, nopreempt, both VIPs);
#                              EXTRA: lines added to the vrrp_instance
#   f_keepalived_up I          spawn keepalived for node I (name kaI)
#   f_state I                  MASTER, BACKUP, FAULT, INIT or DEAD (keepalived)
#   f_master                   index of the (single live) master, or fails
#   f_wait_master SECS [I]     bounded wait until there is one master (node I)
#   f_wggo_node I              wireguard-go gateway I (status quo) + keepalived
#   f_client_up                wireguard-go client, peer = the VIP
#   f_kill_node I              SIGKILL every daemon of node I (F_NODE_PROCS[I])
#   f_kill_master PING SECS    kill the master's daemons, wait for a new master
#                              and ping replies; sets F_OLD F_NEW F_T_KILL
#   f_secs A B                 B - A in seconds (epoch times), 3 decimals
#   f_ping_start NAME [ADDR]   ping every F_PING_MS ms with -D timestamps
#   f_ping_stop NAME           stop it (SIGINT)
#   f_ping_gap NAME [FROM [TO]]  longest interval without a reply, in ms (3
#                              decimals), between epoch times FROM and TO;
#                              "inf" if no reply came
#   f_ping_gap_start NAME [FROM [TO]]  epoch time at which that interval started
#   f_wait_ping_after NAME T SECS  bounded wait for a reply later than T
#   f_iperf_start NAME SECS [RATE]  TCP stream LAN host -> client (-R) for SECS
#   f_iperf_result NAME FROM [SECS]  wait for it; "ok BYTES AFTER" or
#                              "failed REASON"
#   f_iperf_check NAME FROM [SECS]  assert it finished without error and moved
#                              bytes after epoch time FROM
#   f_capture_start NAME       capture the client's underlay (UDP 51820)
#   f_capture_stop NAME        stop it
#   f_capture_fields NAME      one line per WireGuard message, tab-separated:
#                              time src dst type sender receiver counter
#                              (cached in $H_LOGDIR/NAME.tsv)
#   f_init_from_client NAME T0 T1  client handshake initiations in [T0, T1]
#   f_dup_pairs NAME           (receiver, counter) pairs that gateway->client
#                              data packets used more than once
#   f_now                      epoch seconds, microsecond precision
#
# Variables: F_N, F_VIP4, F_BVIP4, F_PORT, F_CLIENT_PORT, F_LAN4, F_WGC,
# F_ADVERT, F_PING_MS, F_IFS[I] (gateway I's WireGuard interface).

F_VIP4=192.0.2.100
F_BVIP4=203.0.113.100
F_CLIENT4=192.0.2.2
F_LAN4=198.19.0.2
F_GW_INNER4=198.18.0.1
F_CLIENT_INNER4=198.18.1.2
F_PORT=51820
F_CLIENT_PORT=51821
F_ADVERT=${F_ADVERT:-0.1}
F_PING_MS=${F_PING_MS:-20}
F_VRID=${F_VRID:-51}
F_N=0
F_WGC=
declare -a F_IFS=()
declare -a F_NODE_PROCS=()

f_now() {
	echo "$EPOCHREALTIME"
}

f_dir() {
	echo "$H_LOGDIR/gw$1"
}

f_gw_access4() {
	echo "192.0.2.$((10 + $1))"
}

f_gw_back4() {
	echo "203.0.113.$(($1 + 1))"
}

f_gw_back6() {
	echo "2001:db8:3::$(($1 + 1))"
}

f_lab() {
	local n=$1 i
	F_N=$n
	h_host client
	h_host lan --forwarding
	h_bridge access
	h_bridge back
	h_attach client access eth0
	h_addr client eth0 "$F_CLIENT4/24"
	h_attach lan back eth0
	h_addr lan eth0 203.0.113.1/24
	h_addr lan eth0 2001:db8:3::1/64
	h_addr lan lo "$F_LAN4/32"
	h_route lan 198.18.0.0/16 via "$F_BVIP4"
	for ((i = 1; i <= n; i++)); do
		mkdir -p "$(f_dir "$i")"
		h_host "gw$i" --forwarding
		h_attach "gw$i" access eth0
		h_attach "gw$i" back eth1
		h_addr "gw$i" eth0 "$(f_gw_access4 "$i")/24"
		h_addr "gw$i" eth1 "$(f_gw_back4 "$i")/24"
		h_addr "gw$i" eth1 "$(f_gw_back6 "$i")/64"
		h_route "gw$i" 198.19.0.0/16 via 203.0.113.1
		# The VIPs come and go with keepalived: ARP from whichever holds them.
		h_exec "gw$i" sysctl -q -w net.ipv4.conf.all.arp_ignore=1 \
			net.ipv4.conf.all.arp_announce=2 >/dev/null
		F_IFS[i]=$(h_ifname "n$i")
		F_NODE_PROCS[i]=""
	done
	h_wg_keypair client
	h_wg_keypair gw
	for ((i = 1; i <= n; i++)); do
		h_wait_ping client "$(f_gw_access4 "$i")" 5
		h_wait_ping lan "$(f_gw_back4 "$i")" 5
	done
}

# f_keepalived_conf I [EXTRA...]: every node starts BACKUP with nopreempt, so
# a restarted node never takes the VIP back by itself; priorities fall with I
# so the first election is predictable.
f_keepalived_conf() {
	local i=$1 line
	shift
	{
		echo "# keepalived for gateway $i of run $H_RUNID"
		echo "global_defs {"
		echo "    router_id $H_RUNID-gw$i"
		echo "    vrrp_version 3"
		echo "    script_user root"
		echo "    vrrp_garp_master_delay 1"
		echo "    vrrp_garp_master_repeat 3"
		echo "}"
		echo "vrrp_instance VI_$H_RUNID {"
		echo "    state BACKUP"
		echo "    nopreempt"
		echo "    interface eth0"
		echo "    virtual_router_id $F_VRID"
		echo "    priority $((200 - 10 * i))"
		echo "    advert_int $F_ADVERT"
		echo "    virtual_ipaddress {"
		echo "        $F_VIP4/24 dev eth0"
		echo "        $F_BVIP4/24 dev eth1"
		echo "    }"
		for line in "$@"; do
			echo "    $line"
		done
		echo "}"
	} >"$(f_dir "$i")/keepalived.conf"
}

# keepalived in the node's namespace, in the foreground, logging to the
# console; pid files of this run only, so instances never see each other.
f_keepalived_up() {
	local i=$1 d
	d=$(f_dir "$i")
	h_spawn "gw$i" "ka$i" keepalived -n -l -D -G -P -f "$d/keepalived.conf" \
		-i "gw$i" -p "$d/keepalived.pid" -r "$d/vrrp.pid" -c "$d/checkers.pid"
	F_NODE_PROCS[i]+=" ka$i"
	h_wait_for 10 "keepalived of gw$i running its VRRP instance" f__ka_started "$i"
}

f__ka_started() {
	h_alive "ka$1" || h_fail "keepalived of gw$1 exited: $(tail -n 5 "$(h_log_of "ka$1")")"
	grep -q "Entering \(BACKUP\|MASTER\|FAULT\) STATE" "$(h_log_of "ka$1")"
}

# The state keepalived last logged for node I, since its latest start.
f_state() {
	local i=$1 s
	if ! h_alive "ka$i"; then
		echo DEAD
		return 0
	fi
	s=$(awk '/^# .* on gw[0-9]+: keepalived/ { s = "INIT" }
		/Entering MASTER STATE/ { s = "MASTER" }
		/Entering BACKUP STATE/ { s = "BACKUP" }
		/Entering FAULT STATE/ { s = "FAULT" }
		END { print s ? s : "INIT" }' "$(h_log_of "ka$i")")
	echo "$s"
}

# Index of the one live master; fails (status 1) with none or several.
f_master() {
	local i m=() st
	for ((i = 1; i <= F_N; i++)); do
		st=$(f_state "$i")
		[[ $st == MASTER ]] && m+=("$i")
	done
	((${#m[@]} == 1)) || {
		echo "masters: ${m[*]:-none}"
		return 1
	}
	echo "${m[0]}"
}

f__is_master() {
	local m
	m=$(f_master) || return 1
	[[ -z ${1:-} || $m == "$1" ]]
}

f_wait_master() {
	h_wait_for "$1" "one keepalived master${2:+ (gw$2)}" f__is_master "${2:-}"
}

# ---------------------------------------------------------------- status quo

f__wggo_conf() {
	local i=$1
	h_wg "gw$i" set "${F_IFS[i]}" private-key "$(h_wg_key gw)" listen-port "$F_PORT" \
		peer "$(h_wg_pub client)" allowed-ips "$F_CLIENT_INNER4/32"
	h_addr "gw$i" "${F_IFS[i]}" "$F_GW_INNER4/16"
}

# f_wggo_node I: the classic setup: wireguard-go with the cluster's key and
# peers on node I, keepalived moving the VIPs.
f_wggo_node() {
	local i=$1
	h_wggo_up "gw$i" "${F_IFS[i]}"
	F_NODE_PROCS[i]+=" ${F_IFS[i]}"
	f__wggo_conf "$i"
	f_keepalived_conf "$i"
	f_keepalived_up "$i"
}

# ---------------------------------------------------------------- client

f_client_up() {
	F_WGC=$(h_ifname c)
	h_wggo_up client "$F_WGC"
	h_wg client set "$F_WGC" private-key "$(h_wg_key client)" listen-port "$F_CLIENT_PORT" \
		peer "$(h_wg_pub gw)" allowed-ips 198.18.0.0/16,198.19.0.0/16 \
		endpoint "$F_VIP4:$F_PORT"
	h_addr client "$F_WGC" "$F_CLIENT_INNER4/16"
	h_route client 198.19.0.0/16 dev "$F_WGC"
}

# All of node I's daemons get SIGKILL at once (process groups), then each is
# waited for. Sets F_T_KILL to the time of the first signal.
f_kill_node() {
	local i=$1 p pids=()
	h_log "SIGKILL gw$i:${F_NODE_PROCS[i]}"
	for p in ${F_NODE_PROCS[i]}; do
		h_alive "$p" && pids+=("$(h_pid "$p")")
	done
	F_T_KILL=$(f_now)
	for p in "${pids[@]}"; do
		kill -KILL -- "-$p" 2>/dev/null || true
	done
	for p in ${F_NODE_PROCS[i]}; do
		h_kill "$p" KILL
	done
	F_NODE_PROCS[i]=""
}

# f_kill_master PING SECS: SIGKILL every daemon of the current master; wait,
# bounded by SECS, until another node is master and PING has replies again.
# Sets F_OLD, F_NEW, F_T_KILL (epoch s), F_T_MASTER (new master seen).
f_kill_master() {
	local ping=$1 secs=$2
	F_OLD=$(f_master) || h_fail "no single master before the kill: $F_OLD"
	f_kill_node "$F_OLD"
	f_wait_master "$secs"
	F_NEW=$(f_master)
	F_T_MASTER=$(f_now)
	h_log "gw$F_NEW is master $(f_secs "$F_T_KILL" "$F_T_MASTER") s after the kill of gw$F_OLD"
	f_wait_ping_after "$ping" "$F_T_MASTER" "$secs"
}

# Seconds from epoch time A to B, 3 decimals.
f_secs() {
	awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f\n", b - a }'
}

# ---------------------------------------------------------------- ping

f_ping_start() {
	local name=$1 addr=${2:-$F_LAN4} ivl
	ivl=$(awk -v m="$F_PING_MS" 'BEGIN { printf "%.3f", m / 1000 }')
	h_spawn client "$name" ping -D -n -i "$ivl" "$addr"
}

f_ping_stop() {
	h_alive "$1" && h_kill "$1" INT
	return 0
}

# Reply timestamps (epoch seconds) of ping NAME, one a line.
f__ping_ts() {
	sed -n 's/^\[\([0-9.]*\)\] [0-9]* bytes from .*icmp_seq=.*/\1/p' "$(h_log_of "$1")"
}

# "GAP_MS START" of the longest interval between two replies in [FROM, TO]
# (the reply just before FROM counts as the start of a gap that spans it).
f__ping_gap() {
	f__ping_ts "$1" | awk -v from="${2:-0}" -v to="${3:-1e12}" '
		$1 + 0 < from + 0 { prev = $1; next }
		$1 + 0 > to + 0 { exit }
		{
			if (prev != "" && $1 - prev > best) { best = $1 - prev; at = prev }
			prev = $1; n++
		}
		END {
			if (n == 0) { print "inf 0"; exit }
			printf "%.3f %.6f\n", best * 1000, at
		}'
}

f__ping_after() {
	local last
	last=$(f__ping_ts "$1" | tail -n 1)
	[[ -n $last ]] && awk -v a="$last" -v t="$2" 'BEGIN { exit !(a + 0 > t + 0) }'
}

f_wait_ping_after() {
	h_wait_for "$3" "a ping reply after $2 ($1)" f__ping_after "$1" "$2"
}

f_ping_gap() {
	local r
	r=$(f__ping_gap "$@")
	echo "${r%% *}"
}

f_ping_gap_start() {
	local r
	r=$(f__ping_gap "$@")
	echo "${r#* }"
}

# ---------------------------------------------------------------- iperf3

# f_iperf_start NAME SECS [RATE]: the LAN host streams to the client (-R), so
# the gateways send most packets; RATE paces it (iperf3 -b, default 8M) to keep
# the capture small enough for tshark.
f_iperf_start() {
	local name=$1 secs=$2 rate=${3:-8M} port
	port=$((5201 + $(h__next iperf)))
	h_spawn lan "${name}s" iperf3 -s -1 -B "$F_LAN4" -p "$port"
	h_wait_listen lan "$port" 5
	h_spawn client "$name" iperf3 -c "$F_LAN4" -p "$port" -R -t "$secs" -b "$rate" \
		-i 0.5 -J --logfile "$H_LOGDIR/$name.json"
}

# f_iperf_result NAME FROM [SECS]: waits (bounded) for the stream to end;
# prints "ok BYTES AFTER" (bytes received in all, and in the intervals that
# ended more than a second after epoch time FROM) or "failed REASON".
f_iperf_result() {
	local name=$1 from=$2 secs=${3:-60} pid rc=0 j="$H_LOGDIR/$1.json" t0 after err
	pid=$(h_pid "$name")
	h_wait_exit "$name" "$secs"
	wait "$pid" 2>/dev/null || rc=$?
	if [[ ! -s $j ]]; then
		echo "failed no-json"
		return 0
	fi
	err=$(jq -r '.error // empty' "$j")
	if [[ $rc != 0 || -n $err ]]; then
		echo "failed status=$rc ${err// /_}"
		return 0
	fi
	t0=$(jq -r '.start.timestamp.timesecs' "$j")
	after=$(jq --argjson t0 "$t0" --argjson from "$from" \
		'[.intervals[].sum | select($t0 + .end > $from + 1) | .bytes] | add // 0' "$j")
	echo "ok $(jq '.end.sum_received.bytes' "$j") $after"
}

# f_iperf_check NAME FROM [SECS]: the stream ended without error and moved
# bytes after the failover at FROM; prints the bytes received.
f_iperf_check() {
	local r
	r=$(f_iperf_result "$@")
	[[ $r == ok* ]] || h_fail "iperf3 $1: $r"
	read -r -a r <<<"$r"
	h_assert_ge "${r[2]}" 1 "iperf3 $1 bytes after the failover"
	echo "${r[1]}"
}

# ---------------------------------------------------------------- capture

f_capture_start() {
	h_capture_start -s 128 client eth0 "$1.pcapng" "udp port $F_PORT"
}

f_capture_stop() {
	h_capture_stop "$1.pcapng"
	local drops
	drops=$(sed -n 's/.*Packets received\/dropped on interface .*: [0-9]*\/\([0-9]*\).*/\1/p' \
		"$(h_log_of "$(awk -v f="$H_LOGDIR/$1.pcapng" '$2 == f { print $1 }' \
			"$H__STATE/captures")")" | tail -n 1)
	[[ -z $drops || $drops == 0 ]] || h_fail "capture $1 dropped $drops packets"
}

f_capture_fields() {
	local f="$H_LOGDIR/$1.tsv"
	if [[ ! -s $f ]]; then
		h_tshark_fields "$1.pcapng" -d "udp.port==$F_PORT,wg" frame.time_epoch ip.src \
			ip.dst wg.type wg.sender wg.receiver wg.counter >"$f"
	fi
	cat "$f"
}

# Handshake initiations the client sent in [T0, T1] (epoch seconds).
f_init_from_client() {
	f_capture_fields "$1" | awk -F'\t' -v c="$F_CLIENT4" -v t0="$2" -v t1="$3" '
		$2 == c && $4 == 1 && $1 >= t0 && $1 <= t1 { n++ } END { print n + 0 }'
}

# (receiver, counter) pairs of gateway->client data messages seen twice.
f_dup_pairs() {
	f_capture_fields "$1" | awk -F'\t' -v c="$F_CLIENT4" '
		$3 == c && $4 == 4 { print $6, $7 }' | sort | uniq -d
}
