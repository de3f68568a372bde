#!/usr/bin/env bash
# The Ansible playbooks (ansible/) against a real three-node cluster on this
# machine. Each node is one inventory host with ansible_connection: local,
# its own network namespace (gwcluster_netns) and its own root for its files
# (gwcluster_prefix), the role in its direct mode (no systemd here): the
# role starts gwd, syncd and keepalived itself. Topology: failover.sh's f_lab
# (client on the access bridge, VIP 192.0.2.100; sync and LAN on the back
# bridge, back VIP 203.0.113.100; the LAN host 198.19.0.2).
#
# 1. A bad inventory (two hosts with node id 1) fails deploy.yml with a
#    message naming the id and the hosts, before anything is created.
# 2. deploy.yml: every gwd holds the client peer (wg show), one node holds
#    the VIP; the client's tunnel through the VIP reaches the LAN host.
# 3. rolling-upgrade.yml with the "new build" (the same binaries, copied to
#    another directory) while the client pings the LAN host every 20 ms:
#    every daemon of every node has a new pid and runs the new copy; the
#    client's tunnel had no new handshake (its latest-handshake time is
#    unchanged; gwd runs with --takeover-rekey-rate 0, see ansible/README.md)
#    and the longest gap without a ping reply stays under ANS_MAX_GAP_MS.
# 4. rotate-key.yml: the client peer's key replaced by a new one on every
#    node (wg show, gwctl peer show), and the client, switched to its new
#    key, reaches the LAN host again.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib/harness.sh
. "${GW_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/integration/lib/harness.sh"
# shellcheck source-path=SCRIPTDIR source=lib/failover.sh
. "$H_SOURCE_DIR/tests/integration/lib/failover.sh"

h_require_root
f_require gwcluster
h_require_cmd ansible-playbook

ANS_MAX_GAP_MS=${ANS_MAX_GAP_MS:-1500}
ANS_PLAY_TIMEOUT=${ANS_PLAY_TIMEOUT:-600}
ANS_DIR=$H_SOURCE_DIR/ansible
# The nodes' roots: under /run (root's only all the way up), since keepalived's
# script security refuses hooks below a world-writable directory such as /tmp.
ANS_ROOT=/run/gwit-ansible-$H_RUNID
mkdir -m 0755 "$ANS_ROOT"
h_on_teardown rm -rf "$ANS_ROOT"

export ANSIBLE_HOME=$H_LOGDIR/ansible-home ANSIBLE_LOCAL_TEMP=$H_LOGDIR/ansible-tmp
export ANSIBLE_REMOTE_TEMP=$H_LOGDIR/ansible-tmp ANSIBLE_RETRY_FILES_ENABLED=0
export ANSIBLE_NOCOLOR=1 ANSIBLE_PYTHON_INTERPRETER=/usr/bin/python3
export ANSIBLE_ROLES_PATH=$ANS_DIR/roles ANSIBLE_FORKS=3 ANSIBLE_PIPELINING=1

node_root() { echo "$ANS_ROOT/gw$1"; }
node_run() { echo "$(node_root "$1")/run/gwcluster"; }
node_pid() { cat "$(node_run "$1")/$2.pid" 2>/dev/null || echo none; }
node_ctl() {
	local i=$1
	shift
	"$(node_root "$i")/usr/local/sbin/gwctl" -c "$(node_root "$i")/etc/gwcluster/cluster.conf" \
		--timeout 2000 "$@"
}
holds_vip() {
	local a
	a=$(ip -n "$(h_ns "gw$1")" -o addr show dev eth0) && [[ $a == *" $F_VIP4/"* ]]
}

# The VIP holders, e.g. "2".
vip_holders() {
	local i out=()
	for ((i = 1; i <= 3; i++)); do
		holds_vip "$i" && out+=("$i")
	done
	echo "${out[*]}"
}

# inventory FILE [ID_OF_GW3]: the three nodes as local hosts.
inventory() {
	local f=$1 id3=${2:-3} i id
	{
		echo "all:"
		echo "  children:"
		echo "    gwcluster:"
		echo "      hosts:"
		for ((i = 1; i <= 3; i++)); do
			id=$i
			((i == 3)) && id=$id3
			echo "        gw$i:"
			echo "          gwcluster_node_id: $id"
			echo "          gwcluster_sync_address: \"$(f_gw_back4 "$i"):$F_SYNC_PORT\""
			echo "          gwcluster_vrrp_priority: $((160 - 10 * i))"
			echo "          gwcluster_netns: $(h_ns "gw$i")"
			echo "          gwcluster_prefix: $(node_root "$i")"
			echo "          gwcluster_interface: ${F_IFS[i]}"
		done
		echo "      vars:"
		echo "        ansible_connection: local"
		echo "        gwcluster_name: $H_RUNID"
		echo "        gwcluster_service_manager: direct"
		echo "        gwcluster_os_packages: []"
		echo "        gwcluster_build_dir: $H_BUILD_DIR/bin"
		echo "        gwcluster_hooks_src: $H_SOURCE_DIR/ha-hooks"
		echo "        gwcluster_wg_private_key: \"$(cat "$(h_wg_key gw)")\""
		echo "        gwcluster_cluster_secret: \"$(cat "$(f_secret_file)")\""
		echo "        gwcluster_listen_port: $F_PORT"
		echo "        gwcluster_addresses: [$F_GW_INNER4/16]"
		echo "        gwcluster_gwd_args: [--takeover-rekey-rate, \"0\"]"
		echo "        gwcluster_heartbeat_ms: $F_HB_MS"
		echo "        gwcluster_peer_dead_ms: $F_DEAD_MS"
		echo "        gwcluster_vrrp_router_id: $F_VRID"
		echo "        gwcluster_vrrp_advert_int: $F_ADVERT"
		echo "        gwcluster_vrrp_vips: [\"$F_VIP4/24 dev eth0\", \"$F_BVIP4/24 dev eth1\"]"
		echo "        gwcluster_peers_file: $H_LOGDIR/peers.conf"
	} >"$f"
}

# The first failures of play NAME, shortened.
fatal() {
	grep -m 3 -E '^(fatal|failed):' "$H_LOGDIR/$1.log" | cut -c 1-600
}

# Every node's view, for the logs of a failed play.
nodes_state() {
	local i
	for ((i = 1; i <= 3; i++)); do
		[[ -f $(node_root "$i")/etc/gwcluster/cluster.conf ]] || continue
		echo "----- gw$i: $(vip_holders | grep -qw "$i" && echo VIP) pids" \
			"gwd $(node_pid "$i" gwd) syncd $(node_pid "$i" syncd) keepalived $(node_pid "$i" keepalived)"
		node_ctl "$i" status 2>&1 || true
		node_ctl "$i" role show 2>&1 || true
		tail -n 5 "$(node_root "$i")/var/log/gwcluster/keepalived.log" 2>/dev/null || true
	done
}

# play NAME PLAYBOOK ARGS...: run it (bounded), its output in NAME.log.
play() {
	local name=$1 book=$2 rc=0 t0=$SECONDS
	shift 2
	timeout "$ANS_PLAY_TIMEOUT" ansible-playbook "$ANS_DIR/$book" "$@" \
		>"$H_LOGDIR/$name.log" 2>&1 || rc=$?
	h_log "$book ($name): exit $rc after $((SECONDS - t0)) s"
	((rc == 0)) || nodes_state >"$H_LOGDIR/$name-nodes.log" 2>&1
	return "$rc"
}

t_start=$SECONDS
f_lab 3
{
	echo "[Peer]"
	echo "Name = client"
	echo "PublicKey = $(h_wg_pub client)"
	echo "AllowedIPs = $F_CLIENT_INNER4/32"
} >"$H_LOGDIR/peers.conf"

# 1. a duplicate node id: refused before anything is created
inventory "$H_LOGDIR/bad.yml" 1
if play deploy-bad deploy.yml -i "$H_LOGDIR/bad.yml"; then
	h_fail "deploy.yml accepted two hosts with node id 1"
fi
grep -q "needs its own gwcluster_node_id; the same node id on several hosts: 1 (gw1, gw3)" \
	"$H_LOGDIR/deploy-bad.log" ||
	h_fail "no clear message about the duplicate node id: $(grep -m3 -i 'fatal\|msg' "$H_LOGDIR/deploy-bad.log")"
[[ -z $(ls -A "$ANS_ROOT") ]] || h_fail "the bad inventory changed something: $(ls "$ANS_ROOT")"
h_log "bad inventory refused: $(grep -o 'the same node id[^"]*' "$H_LOGDIR/deploy-bad.log" | head -n 1)"

# 2. deploy
inventory "$H_LOGDIR/inventory.yml"
play deploy deploy.yml -i "$H_LOGDIR/inventory.yml" ||
	h_fail "deploy.yml failed: $(fatal deploy)"
for ((i = 1; i <= 3; i++)); do
	h_assert_eq "$(h_wg "gw$i" show "${F_IFS[i]}" peers)" "$(h_wg_pub client)" "peers of gw$i's gwd"
	for d in gwd syncd keepalived; do
		kill -0 "$(node_pid "$i" "$d")" 2>/dev/null || h_fail "gw$i: $d does not run after deploy"
	done
done
master=$(vip_holders)
[[ $master =~ ^[1-3]$ ]] || h_fail "VIP holders after deploy: '${master:-none}' (expected one)"
h_log "deployed: every gwd has the client peer, gw$master holds the VIP"

f_client_up
h_wait_ping client "$F_LAN4" 10
f_wait_eligible 20
hs_before=$(h_wg client show "$F_WGC" latest-handshakes | cut -f2)
[[ $hs_before =~ ^[1-9][0-9]*$ ]] || h_fail "the client has no handshake: '$hs_before'"

# 3. rolling upgrade to the "new build": the same binaries in another directory
mkdir -p "$ANS_ROOT/newbuild"
cp "$H_BUILD_DIR"/bin/{gwd,syncd,gwctl} "$ANS_ROOT/newbuild/"
declare -A pid_before
for ((i = 1; i <= 3; i++)); do
	for d in gwd syncd keepalived; do
		pid_before[$i.$d]=$(node_pid "$i" "$d")
	done
done
f_ping_start ping
# The client's latest-handshake time, every 0.2 s: every handshake of the
# upgrade, not only the last one.
h_spawn client hswatch bash -c "while :; do wg show $F_WGC latest-handshakes | cut -f2; sleep 0.2; done"
sleep 1
t_up0=$(f_now)
play upgrade rolling-upgrade.yml -i "$H_LOGDIR/inventory.yml" \
	-e gwcluster_build_dir="$ANS_ROOT/newbuild" ||
	h_fail "rolling-upgrade.yml failed: $(fatal upgrade)"
t_up1=$(f_now)
sleep 1
f_ping_stop ping
for ((i = 1; i <= 3; i++)); do
	for d in gwd syncd keepalived; do
		pnow=$(node_pid "$i" "$d")
		kill -0 "$pnow" 2>/dev/null || h_fail "gw$i: $d does not run after the upgrade"
		h_assert_ne "$pnow" "${pid_before[$i.$d]}" "gw$i: $d was not restarted"
	done
	exe=$(readlink "/proc/$(node_pid "$i" gwd)/exe")
	h_assert_eq "$exe" "$(node_root "$i")/usr/local/sbin/gwd" "gw$i: the gwd that runs"
	h_assert_eq "$(h_wg "gw$i" show "${F_IFS[i]}" peers)" "$(h_wg_pub client)" \
		"peers of gw$i's gwd after the upgrade"
done
# the old master handed over before it stopped: the playbook checked the new
# master on it (a delegated task), and upgraded the old master last
grep -q "^ok: \[gw$master -> gw[1-3]\]" "$H_LOGDIR/upgrade.log" ||
	h_fail "no handover from gw$master in the playbook's log"
h_assert_eq "$(grep -A 3 '^TASK \[gwcluster : Pids before the upgrade' "$H_LOGDIR/upgrade.log" |
	sed -n 's/^ok: \[\(gw[1-3]\)\]$/\1/p' | tail -n 1)" "gw$master" "the node upgraded last"
new_master=$(vip_holders)
[[ $new_master =~ ^[1-3]$ ]] || h_fail "VIP holders after the upgrade: '${new_master:-none}'"
[[ $new_master != "$master" ]] || h_fail "gw$master still holds the VIP: it was never moved away"
h_kill hswatch
# Handshakes: the client rekeys by itself every REKEY_AFTER_TIME (120 s) of
# a session it sends on; a handover that lost the session would show as a
# handshake sooner than that after the previous one, or around the takeover.
mapfile -t hs < <(grep -E '^[0-9]+$' "$(h_log_of hswatch)" | uniq)
h_assert_eq "${hs[0]}" "$hs_before" "the first handshake the watcher saw"
for ((k = 1; k < ${#hs[@]}; k++)); do
	h_assert_ge "$((hs[k] - hs[k - 1]))" 119 \
		"seconds between the client's handshakes ${hs[k - 1]} and ${hs[k]} (a handover made it rekey)"
done
t_master=$(grep 'Entering MASTER STATE' "$(node_root "$new_master")/var/log/gwcluster/keepalived.log" |
	tail -n 1 | sed 's/: (.*//' | xargs -I{} date -d {} +%s)
[[ $t_master =~ ^[0-9]+$ ]] || h_fail "no MASTER entry in gw$new_master's keepalived log"
for h in "${hs[@]}"; do
	if ((h >= t_master - 2 && h <= t_master + 15)); then
		h_fail "a client handshake at $h, $((h - t_master)) s from gw$new_master's takeover at $t_master"
	fi
done
gap=$(f_ping_gap ping "$t_up0" "$t_up1")
loss=$(grep -o '[0-9]* packets transmitted, [0-9]* received' "$(h_log_of ping)" || true)
h_log "rolling upgrade: $(f_secs "$t_up0" "$t_up1") s, master gw$master -> gw$new_master," \
	"gw$new_master master at $t_master, longest ping gap ${gap} ms ($loss)," \
	"client handshakes ${hs[*]} (none at the takeover; periodic rekeys only)"
h_assert_le "$gap" "$ANS_MAX_GAP_MS" "longest ping gap during the rolling upgrade (ms)"

# 4. rotate the client's key
h_wg_keypair client2
play rotate rotate-key.yml -i "$H_LOGDIR/inventory.yml" \
	-e rotate_old_key="$(h_wg_pub client)" -e rotate_new_key="$(h_wg_pub client2)" ||
	h_fail "rotate-key.yml failed: $(fatal rotate)"
for ((i = 1; i <= 3; i++)); do
	h_assert_eq "$(h_wg "gw$i" show "${F_IFS[i]}" allowed-ips)" \
		"$(h_wg_pub client2)	$F_CLIENT_INNER4/32" "gw$i's gwd after the rotation"
	show=$(node_ctl "$i" --json peer show "$(h_wg_pub client2)")
	h_assert_eq "$(jq -r '[.name, (.allowed_ips | join(","))] | join(" ")' <<<"$show")" \
		"client $F_CLIENT_INNER4/32" "gw$i: gwctl peer show of the new key"
	if node_ctl "$i" peer show "$(h_wg_pub client)" >/dev/null 2>&1; then
		h_fail "gw$i: syncd still has the old key"
	fi
done
h_wg client set "$F_WGC" private-key "$(h_wg_key client2)"
h_wait_ping client "$F_LAN4" 10
h_log "key rotated on every node; the client reaches $F_LAN4 with its new key"

h_log "test_ansible: passed in $((SECONDS - t_start)) s"
