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
# Three flavours of gateway (F_IMPL / the IMPL arguments):
#   wggo       the status quo: wireguard-go with the same key and peers, and
#              keepalived moving the VIP (f_wggo_node)
#   gwcluster  gwd + syncd + keepalived with the ha-hooks (f_gwc_node)
#   gwdrelay   gwd cluster nodes with Python stand-ins for syncd's session
#              relay and the notify hook (f_gwdr_node): tells gwd problems
#              from syncd / hook problems
#
# Lab and daemons
#   f_lab N                    hosts, bridges, addresses, routes, keys
#   f_gateways N               f_lab without the client (scripts/lab adds its
#                              router and clients)
#   f_keepalived_conf I [EXTRA...]  node I's keepalived.conf (VRRPv3, advert_int
#                              F_ADVERT, nopreempt, both VIPs); EXTRA lines go
#                              into the vrrp_instance ("global ..." ones into
#                              global_defs)
#   f_keepalived_up I          spawn keepalived for node I (name kaI)
#   f_state I                  MASTER, BACKUP, FAULT, INIT or DEAD (keepalived)
#   f_master                   index of the (single live) master, or fails
#   f_wait_master SECS [I]     bounded wait until there is one master (node I)
#   f_require IMPL             check the programs of IMPL
#   f_node IMPL I              (re)start gateway I of that flavour
#   f_wait_eligible SECS       every live backup could take over now
#   f_client_up                wireguard-go client, peer = the VIP
#   f_stat I KEY [--peer]      a counter of gwd's stats=1 on node I
# Faults
#   f_kill_node I              SIGKILL every daemon of node I at once
#   f_kill_master PING SECS    kill the master's daemons, wait for a new master
#                              and ping replies; sets F_OLD F_NEW F_T_KILL
#                              F_T_MASTER
#   f_sync_cut I, f_sync_heal I    node I's sync link down / up
#   f_vrrp_block I, f_vrrp_heal I  node I neither hears nor sends VRRP
#   f_lan_via [I]              steer the LAN host's traffic to node I (none: ARP)
# Traffic
#   f_ping_start NAME [ADDR [HOST]]  ping every F_PING_MS ms with -D
#                              timestamps, from HOST (default client)
#   f_ping_stop NAME           stop it (SIGINT)
#   f_ping_gap NAME [FROM [TO]]  longest interval without a reply, in ms (3
#                              decimals), between epoch times FROM and TO;
#                              "inf" if no reply came
#   f_ping_gap_start NAME [FROM [TO]]  epoch time at which that interval started
#   f_wait_ping_after NAME T SECS  bounded wait for a reply later than T
#   f_iperf_start NAME SECS [RATE [HOST]]  TCP stream LAN host -> client
#                              (or HOST) (-R) for SECS
#   f_iperf_result NAME FROM [SECS]  wait for it; "ok BYTES AFTER" or
#                              "failed REASON"
#   f_iperf_check NAME FROM [SECS]  assert it finished without error and moved
#                              bytes after epoch time FROM
# Capture (the client's underlay, every WireGuard packet, snaplen 200)
#   f_capture_start NAME [HOST IF [BPF]] / f_capture_stop NAME (fails if
#                              dumpcap dropped any); default: the client's
#                              eth0, WireGuard's port
#   f_capture_fields NAME      one line per WireGuard message, tab-separated:
#                              time eth.src ip.src ip.dst type sender receiver
#                              counter (cached in $H_LOGDIR/NAME.tsv)
#   f_init_from_client NAME T0 T1  client handshake initiations in [T0, T1]
#   f_dup_pairs NAME           (receiver, counter) pairs that gateway->client
#                              data packets used more than once
#   f_data_pkts NAME in|out [MAC [T0 [T1]]]  "time receiver counter" of data
#   f_region COUNTER           "epoch node incarnation count"
#   f_regions NAME [T0 [T1]]   every counter above epoch 0 in its sender's region
#   f_check_takeover NAME T_KILL T_END OLD NEW  the takeover kept the keypair
# Scenarios
#   f_start IMPL N             lab, N gateways, client, tunnel, eligible
#   f_hitless_failover CAP PING [MAX_MS]  kill the master, assert the gap
#   f_check_events CAP         f_check_takeover for every failover so far
#   f_kill_scenario IMPL N     two failovers with a restart in between
#   f_now, f_secs A B          epoch time; B - A in seconds
#
# Peers: F_PEERS_FILE (a `gwctl apply` file) makes gwcluster nodes take
# their peers from `gwctl apply FILE` and status-quo nodes from its [Peer]
# sections (f_wg_peers FILE: as wg addconf reads them) instead of the one
# client peer; F_MIN_STANDBY (default 1): standby sessions a backup needs to
# be eligible. F_GWD_ARGS, F_SYNCD_ARGS: more arguments for gwd and syncd.
# Variables: F_N, F_VIP4, F_BVIP4, F_PORT, F_CLIENT_PORT, F_LAN4, F_WGC,
# F_ADVERT, F_PING_MS, F_SYNC_PORT, F_IFS[I] (gateway I's WireGuard
# interface), F_NODE_PROCS[I] (its daemons, by h_spawn name).

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
F_SYNC_PORT=${F_SYNC_PORT:-7400}
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
	f_gateways "$n"
	h_host client
	h_attach client access eth0
	h_addr client eth0 "$F_CLIENT4/24"
	h_wg_keypair client
	for ((i = 1; i <= n; i++)); do
		h_wait_ping client "$(f_gw_access4 "$i")" 5
	done
}

# f_gateways N: everything of f_lab but the client: the access and back
# bridges, N gateways, the LAN host, the gateways' key pair "gw".
f_gateways() {
	local n=$1 i
	F_N=$n
	h_host lan --forwarding
	h_bridge access
	h_bridge back
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
		# gwd sends with UDP GSO; a veth passes such a burst on whole, and the
		# client's capture would show one frame per burst, whose first
		# WireGuard message alone tshark decodes: the reuse check would miss
		# the others. One segment per skb makes the kernel split bursts here.
		h_exec "gw$i" ip link set eth0 gso_max_segs 1
		F_IFS[i]=$(h_ifname "n$i")
		F_NODE_PROCS[i]=""
	done
	h_wg_keypair gw
	for ((i = 1; i <= n; i++)); do
		h_wait_ping lan "$(f_gw_back4 "$i")" 5
	done
}

# f_keepalived_conf I [EXTRA...]: every node starts BACKUP with nopreempt, so
# a restarted node never takes the VIP back by itself; priorities fall with I
# so the first election is predictable. EXTRA lines go into the vrrp_instance,
# those starting with "global " (without that word) into global_defs.
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
		for line in "$@"; do
			[[ $line == "global "* ]] && echo "    ${line#global }"
		done
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
			[[ $line == "global "* ]] || echo "    $line"
		done
		echo "}"
	} >"$(f_dir "$i")/keepalived.conf"
}

# keepalived in the node's namespace, in the foreground, logging to the
# console; pid files of this run only, so instances never see each other.
f_keepalived_up() {
	local i=$1 d
	d=$(f_dir "$i")
	# A killed keepalived leaves its pid files; on a busy machine a pid in
	# them may belong to another process by now, and keepalived would then
	# refuse to start ("daemon is already running").
	rm -f "$d/keepalived.pid" "$d/vrrp.pid" "$d/checkers.pid"
	h_spawn "gw$i" "ka$i" keepalived -n -l -D -G -P -f "$d/keepalived.conf" \
		-i "gw$i" -p "$d/keepalived.pid" -r "$d/vrrp.pid" -c "$d/checkers.pid"
	F_NODE_PROCS[i]+=" ka$i"
	h_wait_for 10 "keepalived of gw$i running its VRRP instance" f__ka_started "$i"
}

f__ka_started() {
	h_alive "ka$1" || h_fail "keepalived of gw$1 exited: $(tail -n 5 "$(h_log_of "ka$1")")"
	[[ $(f_state "$1") != INIT ]]
}

# The state keepalived last logged for node I, since its latest start.
f_state() {
	local i=$1
	if ! h_alive "ka$i"; then
		echo DEAD
		return 0
	fi
	awk '/^# .* on gw[0-9]+: keepalived/ { s = "INIT" }
		/Entering MASTER STATE/ { s = "MASTER" }
		/Entering BACKUP STATE/ { s = "BACKUP" }
		/[Ee]ntering FAULT [Ss][Tt][Aa][Tt][Ee]/ { s = "FAULT" }
		END { print s ? s : "INIT" }' "$(h_log_of "ka$i")"
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
	if [[ -n ${F_PEERS_FILE:-} ]]; then
		h_wg "gw$i" set "${F_IFS[i]}" private-key "$(h_wg_key gw)" listen-port "$F_PORT"
		f_wg_peers "$F_PEERS_FILE" >"$(f_dir "$i")/peers.wg"
		h_wg "gw$i" addconf "${F_IFS[i]}" "$(f_dir "$i")/peers.wg"
	else
		h_wg "gw$i" set "${F_IFS[i]}" private-key "$(h_wg_key gw)" listen-port "$F_PORT" \
			peer "$(h_wg_pub client)" allowed-ips "$F_CLIENT_INNER4/32"
	fi
	h_addr "gw$i" "${F_IFS[i]}" "$F_GW_INNER4/16"
}

# f_wg_peers FILE: the [Peer] sections of a `gwctl apply` file as wg(8)
# reads them (addconf): the keys wg knows, without gwctl's metadata (Name,
# Owner, Expires, Tags) and without [Interface] sections.
f_wg_peers() {
	awk '
		{ sub(/#.*/, ""); sub(/^[ \t]+/, ""); sub(/[ \t]+$/, "") }
		/^\[/ { sec = tolower($0); if (sec == "[peer]") print "\n[Peer]"; next }
		sec != "[peer]" || !/=/ { next }
		{
			k = $0; sub(/[ \t]*=.*/, "", k); k = tolower(k)
			if (k == "publickey" || k == "presharedkey" || k == "allowedips" ||
			    k == "endpoint" || k == "persistentkeepalive") print
		}' "$1"
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

# ---------------------------------------------------------------- gwd, stand-ins
# F_IMPL=gwdrelay: gwd cluster nodes with python stand-ins for syncd's session
# relay (one relay process for the lab) and for the ha-hooks notify handler
# (keepalived's notify_fifo -> RoleCommand), with peers set through wg. It
# tells gwd problems from syncd / hook problems; the tests run it with
# F_IMPL=gwdrelay.

f_secret_file() {
	local f="$H_LOGDIR/cluster.secret"
	[[ -s $f ]] || (umask 077 && wg genkey >"$f")
	echo "$f"
}

f_session_sock() {
	echo "$(f_dir "$1")/sessions.sock"
}

# gwd with node I's cluster flags, as node I's interface.
f_gwd_up() {
	local i=$1 d extra
	d=$(f_dir "$i")
	read -r -a extra <<<"${F_GWD_ARGS:-}"
	h_wg_up "gw$i" "${F_IFS[i]}" env GWD_LOG_LEVEL="${F_GWD_LOG_LEVEL:-info}" GW_LOG_TIMESTAMPS=1 \
		"$H_BUILD_DIR/bin/gwd" --node-id "$i" --state-dir "$d/gwd" \
		--cluster-secret-file "$(f_secret_file)" --session-socket "$(f_session_sock "$i")" \
		"${extra[@]}"
	F_NODE_PROCS[i]+=" ${F_IFS[i]}"
}

f_gwdr_require() {
	[[ -x "$H_BUILD_DIR/bin/gwd" ]] || h_fail "no $H_BUILD_DIR/bin/gwd (build first)"
}

f_gwdr_node() {
	local i=$1 d n socks=""
	d=$(f_dir "$i")
	if ! h_alive relay; then
		for ((n = 1; n <= F_N; n++)); do
			socks+="${socks:+,}$(f_session_sock "$n")"
		done
		h_spawn lan relay python3 "$F_TOOL" relay --sock "$socks"
	fi
	f_gwd_up "$i"
	f__wggo_conf "$i"
	# What the others exported before this gwd knew its peers was refused
	# (import_unknown_peer): ask them again, as syncd's resync would.
	for ((n = 1; n <= F_N; n++)); do
		((n != i)) && [[ -S $(f_session_sock "$n") ]] &&
			h_alive "${F_IFS[n]}" && f_tool role --sock "$(f_session_sock "$n")" --action dump >/dev/null
	done
	rm -f "$d/notify.fifo"
	mkfifo -m 600 "$d/notify.fifo"
	h_spawn "gw$i" "notify$i" python3 "$F_TOOL" fifo-role --fifo "$d/notify.fifo" \
		--sock "$(f_session_sock "$i")"
	F_NODE_PROCS[i]+=" notify$i"
	f_keepalived_conf "$i" "global notify_fifo $d/notify.fifo"
	f_keepalived_up "$i"
}

# ---------------------------------------------------------------- gwcluster
# gwd + syncd (configuration through gwctl, sessions through syncd's relay)
# + keepalived whose notify_fifo carries the state changes to syncd and whose
# track_file is syncd's SyncedFile. Sync links on the back bridge: node I's
# syncd on 203.0.113.(I+1):F_SYNC_PORT (PUB) and F_SYNC_PORT + 1 (ROUTER).
# F_NOTIFY says who reads keepalived's notify_fifo:
#   direct  (default) syncd itself (cluster.conf KeepalivedFifo and
#           KeepalivedInstance; keepalived has no notify_fifo_script)
#   script  ha-hooks/gwcluster-notify as notify_fifo_script (`gwctl role`)
# gwd and syncd log with timestamps (GW_LOG_TIMESTAMPS) for f_claim_delay.

F_SYNCD=${SYNCD_BIN:-$H_BUILD_DIR/bin/syncd}
F_GWCTL=${GWCTL_BIN:-$H_BUILD_DIR/bin/gwctl}
F_HB_MS=${F_HB_MS:-50}
F_DEAD_MS=${F_DEAD_MS:-500}
F_NOTIFY=${F_NOTIFY:-direct}

f_gwc_require() {
	local b
	for b in "$F_SYNCD" "$F_GWCTL" "$H_BUILD_DIR/bin/gwd"; do
		[[ -x $b ]] || h_fail "no $b (build first)"
	done
	h_require_cmd nft
}

f_conf() {
	echo "$(f_dir "$1")/cluster.conf"
}

f_synced_file() {
	echo "$(f_dir "$1")/synced"
}

f_notify_fifo() {
	echo "$(f_dir "$1")/notify.fifo"
}

f_ctl() {
	local i=$1
	shift
	"$F_GWCTL" -c "$(f_conf "$i")" "$@"
}

# Curve keys and cluster.conf of every node (once per lab).
f__gwc_setup() {
	local i m d
	[[ -f "$(f_conf 1)" ]] && return 0
	for ((i = 1; i <= F_N; i++)); do
		d=$(f_dir "$i")
		"$F_GWCTL" genkey --curve --out "$d/curve" >/dev/null || h_fail "gwctl genkey --curve"
	done
	for ((i = 1; i <= F_N; i++)); do
		d=$(f_dir "$i")
		{
			echo "[Cluster]"
			echo "Name = $H_RUNID"
			echo "NodeId = $i"
			echo "Interface = ${F_IFS[i]}"
			echo "StateDir = $d/state"
			echo "ControlSocket = $d/ctl.sock"
			echo "CurveSecretKeyFile = $d/curve.secret"
			echo "HeartbeatMs = $F_HB_MS"
			echo "PeerDeadMs = $F_DEAD_MS"
			echo "SessionSocket = $(f_session_sock "$i")"
			echo "SyncedFile = $(f_synced_file "$i")"
			if [[ $F_NOTIFY == direct && ${F_HOOKS:-} != interim ]]; then
				echo "KeepalivedFifo = $(f_notify_fifo "$i")"
				echo "KeepalivedInstance = VI_$H_RUNID"
			fi
			for ((m = 1; m <= F_N; m++)); do
				echo
				echo "[Member]"
				echo "NodeId = $m"
				echo "Address = $(f_gw_back4 "$m"):$F_SYNC_PORT"
				echo "CurvePublicKey = $(cat "$(f_dir "$m")/curve.public")"
			done
		} >"$(f_conf "$i")"
	done
}

f__ctl_answers() {
	h_alive "syncd$1" || h_fail "syncd of gw$1 exited: $(tail -n 5 "$(h_log_of "syncd$1")")"
	f_ctl "$1" --timeout 1000 status >/dev/null 2>&1
}

# f_gwc_daemons I: node I's gwd, its node-local interface settings, syncd.
f_gwc_daemons() {
	local i=$1
	f__gwc_setup
	f_gwd_up "$i"
	h_wg "gw$i" set "${F_IFS[i]}" private-key "$(h_wg_key gw)" listen-port "$F_PORT"
	h_addr "gw$i" "${F_IFS[i]}" "$F_GW_INNER4/16"
	local sargs
	read -r -a sargs <<<"${F_SYNCD_ARGS:-}"
	h_spawn "gw$i" "syncd$i" env GW_LOG_TIMESTAMPS=1 "$F_SYNCD" -f -c "$(f_conf "$i")" \
		"${sargs[@]}"
	F_NODE_PROCS[i]+=" syncd$i"
	h_wait_for 10 "syncd of gw$i answering" f__ctl_answers "$i"
}

f__ctl_synced() {
	[[ $(f_ctl "$1" --json --timeout 1000 status 2>/dev/null | jq -r .synced) == true ]]
}

# f_gwc_cluster: every node's daemons, the client peer added through gwctl
# once the cluster is synced, then keepalived on node 1 (master) and the rest.
f_gwc_cluster() {
	local i
	for ((i = 1; i <= F_N; i++)); do
		f_gwc_daemons "$i"
	done
	for ((i = 1; i <= F_N; i++)); do
		h_wait_for 20 "syncd of gw$i synced" f__ctl_synced "$i"
	done
	if [[ -n ${F_PEERS_FILE:-} ]]; then
		f_ctl 1 apply "$F_PEERS_FILE" >>"$H_LOGDIR/gwctl-apply.log" 2>&1 ||
			h_fail "gwctl apply $F_PEERS_FILE on gw1: $(tail -n 3 "$H_LOGDIR/gwctl-apply.log")"
	else
		f_ctl 1 peer add "$(h_wg_pub client)" allowed-ips "$F_CLIENT_INNER4/32" name client \
			>/dev/null || h_fail "gwctl peer add on gw1"
	fi
	f__gwc_keepalived 1
	f_wait_master 10 1
	for ((i = 2; i <= F_N; i++)); do
		f__gwc_keepalived "$i"
	done
}

# f_gwc_node I: restart node I (its daemons, then keepalived).
f_gwc_node() {
	f_gwc_daemons "$1"
	f__gwc_keepalived "$1"
}

# keepalived for a gwcluster node. With the ha-hooks (the default when
# ha-hooks/ exists; F_HOOKS=interim forces the interim handler): as in
# ha-hooks/keepalived.conf.example, notify_fifo read by syncd (F_NOTIFY=direct;
# syncd, started first, made the FIFO, and it stays across restarts of either
# daemon, as on a real node) or by the notify_fifo_script gwcluster-notify
# (F_NOTIFY=script: the state changes, in order, to `gwctl role`),
# track_script gwcluster-check, track_file syncd's SyncedFile (weight 0:
# anything but 0 is FAULT, reset to 1 when keepalived starts). Interim: the
# same track_file, notify_fifo read by notify_gwctl.sh (below).
f__gwc_keepalived() {
	local i=$1 d hooks="$H_SOURCE_DIR/ha-hooks" notify=()
	d=$(f_dir "$i")
	[[ $F_NOTIFY == direct && ${F_HOOKS:-} != interim ]] || rm -f "$d/notify.fifo"
	case $F_NOTIFY in
	direct) ;;
	script) notify=("global notify_fifo_script \"$hooks/gwcluster-notify -c $(f_conf "$i") -G $F_GWCTL\"") ;;
	*) h_fail "F_NOTIFY: direct or script, not '$F_NOTIFY'" ;;
	esac
	if [[ ${F_HOOKS:-} != interim && -x $hooks/gwcluster-notify && -x $hooks/gwcluster-check ]]; then
		f_keepalived_conf "$i" "global enable_script_security" \
			"global notify_fifo $d/notify.fifo" "${notify[@]}" \
			"track_script {" "    chk_gwcluster" "}" \
			"track_file {" "    gwcluster_synced weight 0" "}"
		sed -i "/^global_defs {/i vrrp_script chk_gwcluster {\n    script \"$hooks/gwcluster-check -c $(f_conf "$i") -G $F_GWCTL\"\n    interval 1\n    timeout 3\n    fall 2\n    rise 2\n    weight 0\n}\ntrack_file gwcluster_synced {\n    file \"$(f_synced_file "$i")\"\n    weight 0\n    init_file 1 overwrite\n}" \
			"$d/keepalived.conf"
	else
		mkfifo -m 600 "$d/notify.fifo"
		h_spawn "gw$i" "notify$i" bash "$H_LOGDIR/notify_gwctl.sh" "$d/notify.fifo" \
			"$F_GWCTL" "$(f_conf "$i")"
		F_NODE_PROCS[i]+=" notify$i"
		f_keepalived_conf "$i" "global notify_fifo $d/notify.fifo" \
			"track_file {" "    synced_$i weight 0" "}"
		sed -i "/^global_defs {/i track_file synced_$i {\n    file $(f_synced_file "$i")\n    init_file 1 overwrite\n}" \
			"$d/keepalived.conf"
	fi
	f_keepalived_up "$i"
}

# Every live node: synced (its SyncedFile says 0) and keepalived MASTER, or
# BACKUP holding the client's session.
f__gwc_eligible() {
	local i st
	for ((i = 1; i <= F_N; i++)); do
		[[ -n ${F_NODE_PROCS[i]} ]] || continue
		[[ $(cat "$(f_synced_file "$i")" 2>/dev/null) == 0 ]] || {
			echo "gw$i: SyncedFile $(cat "$(f_synced_file "$i")" 2>/dev/null)"
			return 1
		}
		st=$(f_state "$i")
		[[ $st == MASTER ]] && continue
		[[ $st == BACKUP ]] || {
			echo "gw$i: keepalived $st"
			return 1
		}
		[[ $(f_stat "$i" sessions_standby) -ge ${F_MIN_STANDBY:-1} ]] || {
			echo "gw$i: fewer than ${F_MIN_STANDBY:-1} standby sessions"
			return 1
		}
	done
}

f_gwc_wait_eligible() {
	h_wait_for "$1" "every live node synced and eligible" f__gwc_eligible
}

# ---------------------------------------------------------------- either

# f_require IMPL: the programs IMPL (wggo or gwcluster) needs.
f_require() {
	h_require_cmd ip ping wg keepalived iperf3 jq dumpcap tshark wireguard-go
	case $1 in
	wggo) ;;
	gwdrelay) f_gwdr_require ;;
	gwcluster) f_gwc_require ;;
	*) h_fail "f_require: wggo, gwdrelay or gwcluster, not '$1'" ;;
	esac
	F_IMPL=$1
}

# f_node IMPL I: gateway I of either flavour, with its keepalived.
f_node() {
	case $1 in
	wggo) f_wggo_node "$2" ;;
	gwdrelay) f_gwdr_node "$2" ;;
	gwcluster) f_gwc_node "$2" ;;
	*) h_fail "f_node: wggo, gwdrelay or gwcluster, not '$1'" ;;
	esac
}

# f_wait_eligible SECS: every live node could take over now (gwcluster: all
# synced and BACKUP or MASTER; the status quo is always "eligible").
f_wait_eligible() {
	case ${F_IMPL:-wggo} in
	gwcluster) f_gwc_wait_eligible "$1" ;;
	gwdrelay) h_wait_for "$1" "standby sessions on every live backup" f__gwdr_eligible ;;
	esac
}

# gwdrelay: every live node that is not master holds the client's session.
f__gwdr_eligible() {
	local i st
	for ((i = 1; i <= F_N; i++)); do
		[[ -n ${F_NODE_PROCS[i]} ]] || continue
		st=$(f_state "$i")
		[[ $st == MASTER ]] && continue
		[[ $st == BACKUP ]] || return 1
		[[ $(f_stat "$i" sessions_standby) -ge 1 ]] || return 1
	done
}

# f_stat I KEY [--peer]: a counter from gwd's stats=1 on node I.
f_stat() {
	local out
	out=$(f_tool stats --sock "$H_WG_RUN_DIR/${F_IFS[$1]}.sock" ${3:+--peer}) || return 1
	awk -F= -v k="$2" '$1 == k { print $2; found = 1 } END { if (!found) print 0 }' <<<"$out"
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

# Every process of node I (its daemons and whatever they started, e.g.
# keepalived's scripts: all processes in its namespace) gets SIGKILL at once;
# then each is waited for. Sets F_T_KILL to the time of the first signal.
f_kill_node() {
	local i=$1 p pids
	h_log "SIGKILL gw$i:${F_NODE_PROCS[i]} and every other process in its namespace"
	mapfile -t pids < <(ip netns pids "$(h_ns "gw$i")")
	F_T_KILL=$(f_now)
	# Frozen first: keepalived's VRRP child gets SIGTERM when its parent dies
	# (PR_SET_PDEATHSIG) and, if it runs before its own SIGKILL lands, says
	# goodbye with a priority-0 advert: a graceful handover, not a crash.
	if ((${#pids[@]})); then
		kill -STOP "${pids[@]}" 2>/dev/null || true
		kill -KILL "${pids[@]}" 2>/dev/null || true
	fi
	for p in ${F_NODE_PROCS[i]}; do
		h_kill "$p" KILL
	done
	h_wait_for 5 "no process left in gw$i" f__netns_empty "gw$i"
	F_NODE_PROCS[i]=""
}

f__netns_empty() {
	[[ -z $(ip netns pids "$(h_ns "$1")") ]]
}

# f_kill_master PING SECS: SIGKILL every daemon of the current master; wait,
# bounded by SECS, until another node is master and PING has replies again.
# Sets F_OLD, F_NEW, F_T_KILL (epoch s), F_T_MASTER (new master seen).
f_kill_master() {
	local ping=$1 secs=$2 bye0 bye1
	F_OLD=$(f_master) || h_fail "no single master before the kill: $F_OLD"
	bye0=$(f__goodbyes)
	f_kill_node "$F_OLD"
	f_wait_master "$secs"
	bye1=$(f__goodbyes)
	h_assert_eq "$bye1" "$bye0" "priority-0 adverts heard (the kill must be a crash, not a goodbye)"
	F_NEW=$(f_master)
	F_T_MASTER=$(f_now)
	h_log "gw$F_NEW is master $(f_secs "$F_T_KILL" "$F_T_MASTER") s after the kill of gw$F_OLD"
	f_wait_ping_after "$ping" "$F_T_MASTER" "$secs"
}

# Priority-0 adverts (a master leaving gracefully) logged by any keepalived.
f__goodbyes() {
	cat "$H_LOGDIR"/ka*.log 2>/dev/null | grep -c "received priority 0 advertisement" || true
}

# Seconds from epoch time A to B, 3 decimals.
f_secs() {
	awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f\n", b - a }'
}

# ---------------------------------------------------------------- ping

f_ping_start() {
	local name=$1 addr=${2:-$F_LAN4} host=${3:-client} ivl
	ivl=$(awk -v m="$F_PING_MS" 'BEGIN { printf "%.3f", m / 1000 }')
	h_spawn "$host" "$name" ping -D -n -i "$ivl" "$addr"
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
# (the reply just before FROM starts, the first one after TO ends a gap that
# spans the bound; the reading is not cut short, so no SIGPIPE upstream).
f__ping_gap() {
	f__ping_ts "$1" | awk -v from="${2:-0}" -v to="${3:-1e12}" '
		$1 + 0 < from + 0 { prev = $1; next }
		# The first reply after TO still ends a gap that began inside.
		$1 + 0 > to + 0 { if (over++) next }
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
	local name=$1 secs=$2 rate=${3:-8M} host=${4:-client} port
	port=$((5201 + $(h__next iperf)))
	h_spawn lan "${name}s" iperf3 -s -1 -B "$F_LAN4" -p "$port"
	h_wait_listen lan "$port" 5
	rm -f "$H_LOGDIR/$name.json"
	h_spawn "$host" "$name" iperf3 -c "$F_LAN4" -p "$port" -R -t "$secs" -b "$rate" \
		-i 0.5 -J --logfile "$H_LOGDIR/$name.json"
}

# True once spawned NAME exited, false after SECS (integer) seconds.
f__wait_gone() {
	local end=$((SECONDS + $2))
	while h_alive "$1"; do
		((SECONDS < end)) || return 1
		sleep 0.2
	done
}

# f_iperf_result NAME FROM [SECS]: waits (bounded) for the stream to end;
# prints "ok BYTES AFTER" (bytes received in all, and in the intervals that
# ended more than a second after epoch time FROM) or "failed REASON".
f_iperf_result() {
	local name=$1 from=$2 secs=${3:-60} pid rc=0 j="$H_LOGDIR/$1.json" t0 after err
	pid=$(h_pid "$name")
	if ! f__wait_gone "$name" "$secs"; then
		h_kill "$name" KILL
		echo "failed hung"
		return 0
	fi
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
	# 200 bytes hold a whole client data packet carrying a ping (170).
	h_capture_start -s 200 "${2:-client}" "${3:-eth0}" "$1.pcapng" "${4:-udp port $F_PORT}"
	# On the access bridge, the VRRP adverts too: a new master's first
	# advert is when keepalived became master (f_claim_delay).
	(($# == 1)) && h_capture_start -s 100 client eth0 "$1-vrrp.pcapng" "ip proto 112"
	return 0
}

f_capture_stop() {
	[[ -f $H_LOGDIR/$1-vrrp.pcapng ]] && h_capture_stop "$1-vrrp.pcapng"
	h_capture_stop "$1.pcapng"
	local drops
	drops=$(sed -n 's/.*Packets received\/dropped on interface .*: [0-9]*\/\([0-9]*\).*/\1/p' \
		"$(h_log_of "$(awk -v f="$H_LOGDIR/$1.pcapng" '$2 == f { n = $1 } END { print n }' \
			"$H__STATE/captures")")" | tail -n 1)
	[[ -z $drops || $drops == 0 ]] || h_fail "capture $1 dropped $drops packets"
}

f_capture_fields() {
	local f="$H_LOGDIR/$1.tsv"
	if [[ ! -s $f ]]; then
		h_tshark_fields "$1.pcapng" -d "udp.port==$F_PORT,wg" frame.time_epoch eth.src \
			ip.src ip.dst wg.type wg.sender wg.receiver wg.counter >"$f"
	fi
	cat "$f"
}

# Handshake initiations the client sent in [T0, T1] (epoch seconds).
f_init_from_client() {
	f_capture_fields "$1" | awk -F'\t' -v c="$F_CLIENT4" -v t0="$2" -v t1="$3" '
		$3 == c && $5 == 1 && $1 >= t0 && $1 <= t1 { n++ } END { print n + 0 }'
}

# (receiver, counter) pairs of gateway->client data messages seen twice.
f_dup_pairs() {
	f_capture_fields "$1" | awk -F'\t' -v c="$F_CLIENT4" '
		$4 == c && $5 == 4 { print $7, $8 }' | sort | uniq -d
}

f_mac() {
	h_exec "gw$1" cat /sys/class/net/eth0/address
}

# f_data_pkts CAP DIR [MAC] [T0 [T1]]: "time receiver counter" of data messages
# to the client (DIR=in) or from it (DIR=out), optionally only those sent by
# the gateway with MAC, within [T0, T1].
f_data_pkts() {
	f_capture_fields "$1" | awk -F'\t' -v c="$F_CLIENT4" -v dir="$2" -v mac="${3:-}" \
		-v t0="${4:-0}" -v t1="${5:-1e12}" '
		$5 != 4 || $1 < t0 || $1 > t1 { next }
		dir == "in" && $4 == c && (mac == "" || $2 == mac) { print $1, $7, $8 }
		dir == "out" && $3 == c { print $1, $7, $8 }'
}

# f_client_pkt CAP T: "time receiver counter payload-hex" of the last complete
# client data packet captured before epoch time T.
f_client_pkt() {
	h_tshark_fields "$1.pcapng" -d "udp.port==$F_PORT,wg" frame.time_epoch wg.receiver \
		wg.counter udp.payload "ip.src == $F_CLIENT4 && wg.type == 4 &&
		frame.cap_len == frame.len && frame.time_epoch < $2" | tail -n 1 | tr '\t' ' '
}

# f_replay PKT: send PKT's payload (from f_client_pkt) to the VIP from the
# client's address and WireGuard port.
f_replay() {
	local p
	read -r -a p <<<"$1"
	h_exec client python3 "$F_TOOL" send --src "$F_CLIENT4" --sport "$F_CLIENT_PORT" \
		--dst "$F_VIP4" --dport "$F_PORT" --hex "${p[3]}" >/dev/null
}

# Counter fields "epoch node incarnation count" (docs/failover.md regions).
f_region() {
	local c=$1
	echo "$((c >> 48 & 0xfff)) $((c >> 40 & 0xff)) $((c >> 28 & 0xfff)) $((c & 0xfffffff))"
}

# f_regions CAP [T0 [T1]]: failover_tool.py regions over the capture; fails
# on a counter outside its sender's regions, prints the per-node summary.
f_regions() {
	local macs="" i out
	for ((i = 1; i <= F_N; i++)); do
		macs+="${macs:+,}$(f_mac "$i")=$i"
	done
	f_capture_fields "$1" >/dev/null
	out=$(f_tool regions --tsv "$H_LOGDIR/$1.tsv" --client "$F_CLIENT4" --macs "$macs" \
		${2:+--t0 "$2"} ${3:+--t1 "$3"}) || h_fail "regions check failed"
	echo "$out"
	[[ $out == *"violations 0"* ]] || h_fail "counters outside the sender's regions: $out"
}

# Logs the handshake messages in [T0, T1] with their time after T0 and sender.
f__handshake_log() {
	local macs="" i
	for ((i = 1; i <= F_N; i++)); do
		macs+="$(f_mac "$i")=gw$i "
	done
	f_capture_fields "$1" | awk -F'\t' -v t0="$2" -v t1="$3" -v macs="$macs" '
		BEGIN { n = split(macs, m, " "); for (i = 1; i <= n; i++) { split(m[i], kv, "="); who[kv[1]] = kv[2] } }
		$5 >= 1 && $5 <= 3 && $1 >= t0 && $1 <= t1 {
			w = ($2 in who) ? who[$2] : "client"
			printf "  +%.1f ms: %s from %s (sender %s receiver %s)\n", ($1 - t0) * 1000,
				$5 == 1 ? "initiation" : ($5 == 2 ? "response" : "cookie"), w, $6, $7
		}' >&2
}

# Epoch time of the first line after epoch time T in LOG (gwd or syncd with
# GW_LOG_TIMESTAMPS) that matches the extended regex RE; nothing if none.
f__log_time() {
	python3 - "$1" "$2" "$3" <<'PY'
import datetime, re, sys
log, t0, pat = sys.argv[1], float(sys.argv[2]), re.compile(sys.argv[3])
stamp = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6})Z ")
for line in open(log, errors="replace"):
    m = stamp.match(line)
    if not m or not pat.search(line):
        continue
    t = datetime.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S.%f")
    t = t.replace(tzinfo=datetime.timezone.utc).timestamp()
    if t >= t0:
        print("%.6f" % t)
        break
PY
}

# f_claim_delay CAP T_KILL NEW: logs when, after the kill, keepalived made
# gwNEW master (its first VRRP advert in CAP-vrrp), syncd took the role and
# gwd claimed every peer (their logs), and the time from keepalived's
# transition to gwd's claim; appends "NEW ADVERT_MS ROLE_MS CLAIM_MS" (ms
# after the kill) to $H_LOGDIR/claim_delays.
f_claim_delay() {
	local cap=$1 tk=$2 new=$3 adv role claim
	[[ -f $H_LOGDIR/$cap-vrrp.pcapng ]] || return 0
	adv=$(h_tshark_fields "$cap-vrrp.pcapng" frame.time_epoch eth.src | awk -F'\t' \
		-v m="$(f_mac "$new")" -v t0="$tk" '!done && $2 == m && $1 > t0 { print $1; done = 1 }')
	role=$(f__log_time "$(h_log_of "syncd$new")" "$tk" "relay: role master")
	claim=$(f__log_time "$(h_log_of "${F_IFS[new]}")" "$tk" "now owns all")
	if [[ -z $adv || -z $role || -z $claim ]]; then
		h_log "claim delay of gw$new: not measured (advert '${adv}', role '${role}', claim '${claim}')"
		return 0
	fi
	awk -v n="$new" -v tk="$tk" -v a="$adv" -v r="$role" -v c="$claim" -v how="$F_NOTIFY" 'BEGIN {
		printf "gw%s master (first advert) %.1f ms after the kill, syncd role master %.1f ms, gwd claim %.1f ms: keepalived -> gwd claim %.1f ms (%s)\n",
			n, (a - tk) * 1000, (r - tk) * 1000, (c - tk) * 1000, (c - a) * 1000, how
	}' | tee -a "$H_LOGDIR/claim_delays" | while read -r line; do h_log "$line"; done
}

# f_check_takeover CAP T_KILL T_END OLD NEW: the new master's first data
# packets to the client use the receiver index the old master used (the
# replicated keypair, no new handshake), from a counter region of the new
# node with epoch >= 1; the client sent no handshake initiation in
# [T_KILL, T_END].
f_check_takeover() {
	local cap=$1 tk=$2 te=$3 old=$4 new=$5 before first reg inits
	before=$(f_data_pkts "$cap" in "$(f_mac "$old")" 0 "$tk" | tail -n 1)
	[[ -n $before ]] || h_fail "no data from gw$old to the client before the kill"
	first=$(f_data_pkts "$cap" in "$(f_mac "$new")" "$tk" "$te" | sed -n 1p)
	[[ -n $first ]] || h_fail "no data from gw$new to the client after the kill"
	read -r -a before <<<"$before"
	read -r -a first <<<"$first"
	h_assert_eq "${first[1]}" "${before[1]}" \
		"receiver index of gw$new's first data packet after the takeover (gw$old used it)"
	read -r -a reg <<<"$(f_region "${first[2]}")"
	h_assert_ge "${reg[0]}" 1 "region epoch of gw$new's first counter ${first[2]}"
	h_assert_eq "${reg[1]}" "$new" "region node of gw$new's first counter ${first[2]}"
	f__handshake_log "$cap" "$tk" "$te"
	# Nobody may be elected before 3 adverts were missed (VRRP master down
	# interval, minus the up to one interval since the last advert): a
	# packet from the new master before that comes from a standby.
	local any silent_ms
	any=$(f_capture_fields "$cap" | awk -F'\t' -v m="$(f_mac "$new")" -v t0="$tk" '
		!done && $2 == m && $1 > t0 { printf "%.1f\n", ($1 - t0) * 1000; done = 1 }')
	silent_ms=$(awk -v a="$F_ADVERT" 'BEGIN { printf "%d", 2 * a * 1000 }')
	h_assert_ge "${any:-0}" "$silent_ms" \
		"ms from the kill to gw$new's first packet to the client (a standby must stay silent)"
	inits=$(f_init_from_client "$cap" "$tk" "$te")
	h_assert_eq "$inits" 0 "handshake initiations from the client during the failover"
	f_claim_delay "$cap" "$tk" "$new"
	h_log "takeover gw$old -> gw$new: receiver ${first[1]} kept; gw$old's last counter" \
		"${before[2]}, gw$new's first ${first[2]} (epoch ${reg[0]} node ${reg[1]}" \
		"incarnation ${reg[2]}); no initiation from the client"
}

# ---------------------------------------------------------------- faults

# f_sync_cut I / f_sync_heal I: node I loses its sync link (gwcluster:
# nftables in its namespace drops every TCP packet to or from the sync ports,
# both ways; gwdrelay: the stand-in relay is stopped, which cuts every link).
f_sync_cut() {
	if [[ ${F_IMPL:-} == gwdrelay ]]; then
		kill -STOP "$(h_pid relay)"
	else
		local p1=$F_SYNC_PORT p2=$((F_SYNC_PORT + 1))
		h_exec "gw$1" nft -f - <<EOF2 || h_fail "nft sync cut on gw$1"
table inet fo_sync {
	chain in {
		type filter hook input priority 0; policy accept;
		tcp dport { $p1, $p2 } drop
		tcp sport { $p1, $p2 } drop
	}
	chain out {
		type filter hook output priority 0; policy accept;
		tcp dport { $p1, $p2 } drop
		tcp sport { $p1, $p2 } drop
	}
}
EOF2
	fi
	h_log "gw$1: sync link cut"
}

f_sync_heal() {
	if [[ ${F_IMPL:-} == gwdrelay ]]; then
		kill -CONT "$(h_pid relay)"
	else
		h_exec "gw$1" nft delete table inet fo_sync || h_fail "nft sync heal on gw$1"
	fi
	h_log "gw$1: sync link healed"
}

# f_vrrp_block I / f_vrrp_heal I: node I neither hears nor sends VRRP, so it
# and the current master both believe they are master (split brain).
f_vrrp_block() {
	h_exec "gw$1" nft -f - <<EOF2 || h_fail "nft VRRP block on gw$1"
table inet fo_vrrp {
	chain in {
		type filter hook input priority 0; policy accept;
		ip protocol vrrp drop
	}
	chain out {
		type filter hook output priority 0; policy accept;
		ip protocol vrrp drop
	}
}
EOF2
	h_log "gw$1: VRRP blocked"
}

f_vrrp_heal() {
	h_exec "gw$1" nft delete table inet fo_vrrp || h_fail "nft VRRP heal on gw$1"
	h_log "gw$1: VRRP unblocked"
}

# Every node in the list is MASTER.
f__all_master() {
	local i
	for i in "$@"; do
		[[ $(f_state "$i") == MASTER ]] || return 1
	done
}

# f_lan_via I: the LAN host sends traffic for the tunnel to gateway I (a
# permanent neighbour entry for the back VIP); without I: back to ARP.
f_lan_via() {
	if [[ -n ${1:-} ]]; then
		h_exec lan ip neigh replace "$F_BVIP4" lladdr "$(h_exec "gw$1" cat \
			/sys/class/net/eth1/address)" dev eth0 nud permanent
	else
		h_exec lan ip neigh del "$F_BVIP4" dev eth0 2>/dev/null || true
	fi
}

# ---------------------------------------------------------------- scenarios

# f_start IMPL N: lab, N gateways (gw1 master first), client, tunnel up, every
# backup eligible.
f_start() {
	local impl=$1 n=$2 i
	f_require "$impl"
	f_lab "$n"
	if [[ $impl == gwcluster ]]; then
		f_gwc_cluster
	else
		f_node "$impl" 1
		f_wait_master 10 1
		for ((i = 2; i <= n; i++)); do
			f_node "$impl" "$i"
		done
	fi
	f_client_up
	h_wait_ping client "$F_LAN4" 10
	f_wait_eligible 30
}

# f_hitless_failover CAP PING [MAX_MS]: kill the master, wait for the new one
# and for replies; assert the gap (< MAX_MS, default 500) and the takeover
# (f_check_takeover) over the 3 s that follow the kill. Sets F_GAP too.
f_hitless_failover() {
	local cap=$1 ping=$2 max=${3:-500} te
	f_kill_master "$ping" 10
	te=$(awk -v t="$F_T_KILL" 'BEGIN { printf "%.6f", t + 3 }')
	sleep "$(awk -v t="$te" -v n="$(f_now)" 'BEGIN { d = t - n; printf "%.3f", (d > 0 ? d : 0) }')"
	F_GAP=$(f_ping_gap "$ping" "$F_T_KILL" "$te")
	h_log "failover gw$F_OLD -> gw$F_NEW: longest ping gap $F_GAP ms"
	h_assert_le "$F_GAP" "$max" "longest ping gap (ms) in the failover gw$F_OLD -> gw$F_NEW"
	F_EVENTS+=("$F_T_KILL $te $F_OLD $F_NEW")
}

# F_SAVE_DIR: copy the run's captures and logs there at teardown (to study a
# run that passed).
f__save() {
	mkdir -p "$1" && cp -a "$2"/. "$1"/
}
if [[ -n ${F_SAVE_DIR:-} ]]; then
	h_on_teardown f__save "$F_SAVE_DIR/$H_RUNID" "$H_LOGDIR"
fi

# Checks the takeovers recorded by f_hitless_failover (needs the capture).
f_check_events() {
	local e
	for e in "${F_EVENTS[@]}"; do
		# shellcheck disable=SC2086
		f_check_takeover "$1" $e
	done
}

# f_kill_scenario IMPL N: two failovers under a ping every 20 ms and one TCP
# stream: SIGKILL of the master, restart of that node, resync, SIGKILL of the
# new master. Every takeover hitless; no nonce reused in the whole capture.
f_kill_scenario() {
	local impl=$1 n=$2 bytes
	F_EVENTS=()
	f_start "$impl" "$n"
	f_capture_start cap
	f_ping_start ping
	f_iperf_start tcp 30
	sleep 3
	f_hitless_failover cap ping
	local t1=$F_T_KILL
	h_log "restarting gw$F_OLD"
	f_node "$impl" "$F_OLD"
	f_wait_eligible 30
	h_log "gw$F_OLD is back and every backup is eligible"
	sleep 1
	f_hitless_failover cap ping
	f_ping_stop ping
	bytes=$(f_iperf_check tcp "$F_T_KILL" 60)
	f_capture_stop cap
	f_check_events cap
	h_assert_eq "$(f_dup_pairs cap | wc -l)" 0 \
		"(receiver, counter) pairs the gateways sent twice to the client"
	h_log "$n gateways: 2 hitless failovers since $(date -d "@${t1%.*}" +%T), iperf3" \
		"received $bytes bytes, $(f_data_pkts cap in | wc -l) data packets to the client" \
		"checked for reuse"
}

# ---------------------------------------------------------------- notify
# Interim notify_fifo handler for gwcluster nodes: keepalived's state changes
# in order to `gwctl role` (MASTER -> master, BACKUP -> backup, FAULT and
# STOP -> fault; other events ignored).
cat >"$H_LOGDIR/notify_gwctl.sh" <<'SH'
fifo=$1 gwctl=$2 conf=$3
while :; do
	while read -r what name state _; do
		[[ $what == INSTANCE ]] || continue
		case $state in
		MASTER) role=master ;;
		BACKUP) role=backup ;;
		FAULT | STOP) role=fault ;;
		*) echo "$EPOCHREALTIME $state ignored"; continue ;;
		esac
		t0=$EPOCHREALTIME
		out=$("$gwctl" -c "$conf" --timeout 2000 role "$role" 2>&1)
		echo "$t0 $name $state -> role $role: status $? ($out) done $EPOCHREALTIME"
	done <"$fifo"
done
SH

# ---------------------------------------------------------------- python helper
# f_tool ARGS...: $H_LOGDIR/failover_tool.py (standard library only).
F_TOOL="$H_LOGDIR/failover_tool.py"

f_tool() {
	python3 "$F_TOOL" "$@"
}

cat >"$F_TOOL" <<'PY'
"""failover_tool.py - helpers of tests/integration/lib/failover.sh.

  stats --sock PATH [--peer]  gwd's stats=1 answer as KEY=VALUE lines: the
                              device block, or (--peer) the first peer's
  send --src A --sport P --dst A --dport P --hex HEX
                              one UDP datagram with payload HEX from A:P (a
                              raw socket: P may be in use by another program)
  watch --sock PATH[,PATH...] --keys K[,K...] --seconds S --out FILE
                              poll stats=1 of each socket every --interval s
                              (default 0.001) and write "EPOCH SOCKINDEX KEY
                              VALUE" whenever a watched device counter changes
  relay --sock PATH[,PATH...]  a stand-in for syncd's session relay, to tell
                              gwd problems from syncd ones: subscribe to every
                              gwd's session socket (hello) and pass each export
                              to all the others as an import, until killed
  role --sock PATH --action claim_all|release_all|dump
                              one RoleCommand (or a dump request) on gwd's
                              session socket; prints the result's error
  regions --tsv FILE --client IP --macs MAC=ID,... [--t0 T --t1 T]
                              check that every gateway->client counter above
                              epoch 0 lies in the sending node's region
  lag --tsv FILE --watch FILE --client IP [--t0 T --t1 T]
                              per client data packet: ms until the master's
                              export_rx and the standby's import_rx moved
  fifo-role --fifo PATH --sock PATH
                              read keepalived's notify_fifo; MASTER: claim_all,
                              BACKUP/FAULT/STOP: release_all (stand-in for
                              the ha-hooks notify handler)
"""
import argparse
import ctypes
import socket
import struct
import sys
import time


def uapi(path, req):
    c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    c.settimeout(2)
    c.connect(path)
    c.sendall(req.encode() + b"\n\n")
    buf = b""
    while not buf.endswith(b"\n\n"):
        d = c.recv(1 << 20)
        if not d:
            break
        buf += d
    c.close()
    return buf.decode()


def device_block(text, peer=False):
    out, in_peer, seen_peer = {}, False, False
    for line in text.splitlines():
        if "=" not in line:
            continue
        k, v = line.split("=", 1)
        if k == "public_key":
            if seen_peer:
                break
            in_peer = seen_peer = True
            if not peer:
                break
        if in_peer == peer:
            out[k] = v
    return out


def cmd_stats(a):
    for k, v in device_block(uapi(a.sock, "stats=1"), a.peer).items():
        print("%s=%s" % (k, v))


def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def cmd_send(a):
    payload = bytes.fromhex(a.hex)
    src, dst = socket.inet_aton(a.src), socket.inet_aton(a.dst)
    ulen = 8 + len(payload)
    udp = struct.pack("!HHHH", a.sport, a.dport, ulen, 0)
    pseudo = src + dst + struct.pack("!BBH", 0, socket.IPPROTO_UDP, ulen)
    ck = csum(pseudo + udp + payload) or 0xFFFF
    udp = struct.pack("!HHHH", a.sport, a.dport, ulen, ck)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + ulen, 0, 0x4000, 64,
                     socket.IPPROTO_UDP, 0, src, dst)
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    s.sendto(ip + udp + payload, (a.dst, 0))
    print("sent %d bytes at %.6f" % (len(payload), time.time()))


def cmd_watch(a):
    socks = a.sock.split(",")
    keys = a.keys.split(",")
    last = [dict() for _ in socks]
    end = time.time() + a.seconds
    with open(a.out, "w") as out:
        while time.time() < end:
            for i, p in enumerate(socks):
                try:
                    d = device_block(uapi(p, "stats=1"))
                except OSError:
                    continue
                t = time.time()
                for k in keys:
                    v = d.get(k)
                    if v is not None and last[i].get(k) != v:
                        out.write("%.6f %d %s %s\n" % (t, i, k, v))
                        last[i][k] = v
            out.flush()
            time.sleep(a.interval)


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def read_varint(buf, i):
    n = shift = 0
    while True:
        b = buf[i]
        i += 1
        n |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return n, i


def fields(buf):
    out, i = {}, 0
    while i < len(buf):
        key, i = read_varint(buf, i)
        tag, wt = key >> 3, key & 7
        if wt == 0:
            v, i = read_varint(buf, i)
        elif wt == 2:
            ln, i = read_varint(buf, i)
            v, i = bytes(buf[i:i + ln]), i + ln
        elif wt == 1:
            v, i = buf[i:i + 8], i + 8
        elif wt == 5:
            v, i = buf[i:i + 4], i + 4
        else:
            raise ValueError("wire type %d" % wt)
        out.setdefault(tag, []).append(v)
    return out


def local_msg(tag, value, msg_id=None):
    m = varint(1 << 3) + varint(1)
    if msg_id is not None:
        m += varint(2 << 3) + varint(msg_id)
    if isinstance(value, int):
        return m + varint(tag << 3) + varint(value)
    return m + varint(tag << 3 | 2) + varint(len(value)) + value


class Zmq:
    DEALER, LINGER, RCVTIMEO, DONTWAIT = 5, 17, 27, 1

    def __init__(self, bufsize=1 << 20):
        z = ctypes.CDLL("libzmq.so.5", use_errno=True)
        z.zmq_ctx_new.restype = ctypes.c_void_p
        z.zmq_socket.restype = ctypes.c_void_p
        z.zmq_socket.argtypes = [ctypes.c_void_p, ctypes.c_int]
        z.zmq_setsockopt.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p,
                                     ctypes.c_size_t]
        z.zmq_connect.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
        z.zmq_send.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_int]
        z.zmq_recv.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        self.z = z
        self.ctx = z.zmq_ctx_new()
        self.buf = ctypes.create_string_buffer(bufsize)

    def dealer(self, path):
        s = self.z.zmq_socket(self.ctx, self.DEALER)
        x = ctypes.c_int(0)
        self.z.zmq_setsockopt(s, self.LINGER, ctypes.byref(x), ctypes.sizeof(x))
        if self.z.zmq_connect(s, ("ipc://" + path).encode()):
            raise OSError(ctypes.get_errno(), "zmq_connect " + path)
        return s

    def send(self, s, data):
        if self.z.zmq_send(s, data, len(data), 0) < 0:
            raise OSError(ctypes.get_errno(), "zmq_send")

    def recv(self, s, block_ms=None):
        if block_ms is not None:
            x = ctypes.c_int(block_ms)
            self.z.zmq_setsockopt(s, self.RCVTIMEO, ctypes.byref(x), ctypes.sizeof(x))
            n = self.z.zmq_recv(s, self.buf, len(self.buf), 0)
        else:
            n = self.z.zmq_recv(s, self.buf, len(self.buf), self.DONTWAIT)
        return None if n < 0 else ctypes.string_at(self.buf, min(n, len(self.buf)))


def cmd_relay(a):
    z = Zmq(64 << 20)
    paths = a.sock.split(",")
    socks = [z.dealer(p) for p in paths]
    heard = [0.0] * len(socks)
    boots = [None] * len(socks)
    print("relay: subscribing to %s" % ", ".join(paths), flush=True)
    while True:
        idle = True
        now = time.monotonic()
        for i, s in enumerate(socks):
            # A restarted gwd needs a new hello; a quiet one gets it again
            # after 2 s (it answers with a snapshot).
            if now - heard[i] > 2:
                z.send(s, local_msg(10, 1))
                heard[i] = now
            m = z.recv(s)
            if m is None:
                continue
            heard[i] = now
            idle = False
            f = fields(m)
            if 12 in f:
                for j, o in enumerate(socks):
                    if j != i:
                        z.send(o, local_msg(14, f[12][0]))
            elif 11 in f:
                h = fields(f[11][0])
                if boots[i] != h[3][0]:
                    # A new gwd: the others' whole state, as syncd's snapshot.
                    boots[i] = h[3][0]
                    print("relay: %s: node %d boot %d" % (paths[i], h[1][0], h[3][0]), flush=True)
                    for j, o in enumerate(socks):
                        if j != i:
                            z.send(o, local_msg(16, 1))
            elif 13 in f and a.verbose:
                print("relay: %s: snapshot of %d peers" % (paths[i], f[13][0]), flush=True)
        if idle:
            time.sleep(0.0005)


def role(z, s, action, msg_id):
    z.send(s, local_msg(15, varint(1 << 3) + varint(action), msg_id=msg_id))
    m = z.recv(s, 3000)
    if m is None:
        return "no answer"
    r = fields(fields(m).get(17, [b""])[0])
    err = r.get(1, [0])[0]
    return err - (1 << 64) if err >= 1 << 63 else err


def cmd_role(a):
    z = Zmq()
    s = z.dealer(a.sock)
    if a.action == "dump":
        z.send(s, local_msg(16, 1, msg_id=7))
        m = z.recv(s, 3000)
        err = "no answer" if m is None else fields(fields(m).get(17, [b""])[0]).get(1, [0])[0]
    else:
        err = role(z, s, {"claim_all": 1, "release_all": 2}[a.action], 7)
    print(err)
    return 0 if err == 0 else 1


def cmd_fifo_role(a):
    """keepalived's notify_fifo, in order: MASTER claims all, BACKUP, FAULT
    and STOP release all, through one long-lived DEALER (no start-up
    latency)."""
    z = Zmq()
    s = z.dealer(a.sock)
    n = 0
    while True:
        with open(a.fifo) as f:
            for line in f:
                w = line.split()
                if len(w) < 3 or w[0] != "INSTANCE":
                    continue
                # keepalived also reports events such as MASTER_RX_LOWER_PRI
                # (a master heard a lower priority): not a state change.
                if w[2] not in ("MASTER", "BACKUP", "FAULT", "STOP"):
                    print("%.6f %s ignored" % (time.time(), w[2]), flush=True)
                    continue
                n += 1
                t0 = time.time()
                action = 1 if w[2] == "MASTER" else 2
                err = role(z, s, action, n)
                print("%.6f %s -> %s: %s (%.1f ms)" % (t0, w[2], "claim_all" if action == 1
                      else "release_all", err, (time.time() - t0) * 1000), flush=True)


def cmd_lag(a):
    """Replication lag of receive progress: for each client->gateway data
    packet in [t0, t1] of the capture TSV, the time until the master's
    export_rx and the standby's import_rx counters (from a `watch` file,
    socket 0 = master, 1 = standby) next changed."""
    pkts = []
    for line in open(a.tsv):
        f = line.rstrip("\n").split("\t")
        if len(f) >= 8 and f[4] == "4" and f[2] == a.client:
            t = float(f[0])
            if a.t0 <= t <= a.t1:
                pkts.append(t)
    ev = {"0": [], "1": []}
    for line in open(a.watch):
        t, i, k, _ = line.split()
        if (i, k) in (("0", "export_rx"), ("1", "import_rx")):
            ev[i].append(float(t))
    exp_l, imp_l = [], []
    for t in pkts:
        e = next((x for x in ev["0"] if x >= t), None)
        m = next((x for x in ev["1"] if x >= t), None)
        if e is None or m is None:
            continue
        exp_l.append((e - t) * 1000)
        imp_l.append((m - t) * 1000)

    def summary(v):
        v = sorted(v)
        if not v:
            return "none"
        q = lambda p: v[min(len(v) - 1, int(p * len(v)))]
        return "min %.1f median %.1f p95 %.1f max %.1f" % (v[0], q(0.5), q(0.95), v[-1])
    print("packets %d covered %d" % (len(pkts), len(imp_l)))
    print("export %s" % summary(exp_l))
    print("import %s" % summary(imp_l))
    print("max_import_ms %.1f" % (max(imp_l) if imp_l else -1))


def cmd_regions(a):
    """Gateway->client data packets of a f_capture_fields TSV: every counter
    above epoch 0 must lie in a region of the node that sent it (by MAC).
    Prints per node: packets, epoch-0 packets, regions used; then
    'violations N' and the first few."""
    macs = dict(kv.split("=") for kv in a.macs.split(","))
    per, bad = {}, []
    t0, t1 = a.t0, a.t1
    for line in open(a.tsv):
        f = line.rstrip("\n").split("\t")
        if len(f) < 8 or f[4] != "4" or f[3] != a.client or not f[7]:
            continue
        t = float(f[0])
        if t < t0 or t > t1:
            continue
        node = macs.get(f[1], "?")
        c = int(f[7])
        epoch, cnode, inc = c >> 48 & 0xFFF, c >> 40 & 0xFF, c >> 28 & 0xFFF
        st = per.setdefault(node, [0, 0, set()])
        st[0] += 1
        if epoch == 0:
            st[1] += 1
            continue
        st[2].add((f[6], epoch, cnode, inc))
        if str(cnode) != node:
            bad.append("%s gw%s sent %s counter %d (epoch %d node %d inc %d)" %
                       (f[0], node, f[6], c, epoch, cnode, inc))
    for node in sorted(per):
        n, e0, regs = per[node]
        print("gw%s packets %d epoch0 %d regions %s" % (node, n, e0, " ".join(
            "%s:(%d,%d,%d)" % r for r in sorted(regs)) or "-"))
    print("violations %d" % len(bad))
    for b in bad[:5]:
        print("  " + b)


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("stats")
    s.add_argument("--sock", required=True)
    s.add_argument("--peer", action="store_true")
    s = sub.add_parser("send")
    for o in ("--src", "--dst", "--hex"):
        s.add_argument(o, required=True)
    s.add_argument("--sport", type=int, required=True)
    s.add_argument("--dport", type=int, required=True)
    s = sub.add_parser("watch")
    for o in ("--sock", "--keys", "--out"):
        s.add_argument(o, required=True)
    s.add_argument("--seconds", type=float, required=True)
    s.add_argument("--interval", type=float, default=0.001)
    s = sub.add_parser("lag")
    for o in ("--tsv", "--watch", "--client"):
        s.add_argument(o, required=True)
    s.add_argument("--t0", type=float, default=0)
    s.add_argument("--t1", type=float, default=1e12)
    s = sub.add_parser("regions")
    for o in ("--tsv", "--client", "--macs"):
        s.add_argument(o, required=True)
    s.add_argument("--t0", type=float, default=0)
    s.add_argument("--t1", type=float, default=1e12)
    s = sub.add_parser("fifo-role")
    s.add_argument("--fifo", required=True)
    s.add_argument("--sock", required=True)
    s = sub.add_parser("relay")
    s.add_argument("--sock", required=True)
    s.add_argument("--verbose", action="store_true")
    s = sub.add_parser("role")
    s.add_argument("--sock", required=True)
    s.add_argument("--action", required=True, choices=["claim_all", "release_all", "dump"])
    a = p.parse_args()
    return {"stats": cmd_stats, "send": cmd_send, "watch": cmd_watch, "relay": cmd_relay,
            "role": cmd_role, "fifo-role": cmd_fifo_role,
            "regions": cmd_regions, "lag": cmd_lag}[a.cmd](a) or 0


if __name__ == "__main__":
    sys.exit(main())
PY
