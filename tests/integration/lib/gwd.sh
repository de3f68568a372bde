# shellcheck shell=bash
# gwd.sh - helpers for the gwd interoperability tests (test_gwd_*.sh).
# Source it after harness.sh.
#
# The implementation under test is $GWD_BIN (default $GW_BUILD_DIR/bin/gwd);
# the reference is wireguard-go. Any daemon with wireguard-go's interface
# works as GWD_BIN, and GWD_BIN=wireguard-go is how the tests themselves are
# proven: they must pass with it.
#
#   gwd_require                    fail unless $GWD_BIN can run
#   gwd_is_ref                     true when GWD_BIN is wireguard-go itself
#   gwd_up HOST IFNAME [VAR=VAL...]  spawn "$GWD_BIN -f IFNAME" (with extra
#                                  environment), wait for socket and TUN
#   ref_up HOST IFNAME             the same with wireguard-go
#   impl_up gwd|ref HOST IFNAME    either of the two
#   wg_down HOST IFNAME            SIGTERM the daemon gwd_up/ref_up spawned;
#                                  assert it exits 0 and removes its TUN and
#                                  its UAPI socket
#   gwd_lab [--lan]                client -- access bridge -- router -- server
#                                  (dual stack, addresses below), optional LAN
#   wg_field HOST IF WHAT PUB COL  one column of `wg show IF WHAT` for PUB
#   wg_assert_handshake HOST IF PUB [MAXAGE]  latest handshake within MAXAGE s
#   wg_handshake_done HOST IF PUB  predicate: some handshake completed
#   wg_showconf_norm HOST IF       `wg showconf` as sorted KEY=VALUE lines
#   conf_norm FILE                 the same normalisation of a config file
#   tcp_start SRC DST ADDR BYTES [RATE]  background TCP stream of random bytes
#                                  from SRC to a sink on DST's ADDR
#   tcp_check STREAM [SECS]        assert it completed with count and SHA-256
#   tcp_verify SRC DST ADDR BYTES  both, unpaced
#   gwd_tool ARGS...               python3 gwd_tool.py ARGS (host namespace)
#   uapi_get IF [REQUEST]          one UAPI exchange with IF's socket
#   gwd_stat IF KEY                a device counter from gwd's stats=1
#
# Address plan of gwd_lab (docs/architecture.md):
#   client eth0 192.0.2.2/24 2001:db8:1::2/64 ---- router eth0 .1 / ::1
#   router eth1 203.0.113.1/24 2001:db8:3::1/64 ---- server eth0 .2 / ::2
#   server lan 198.19.0.1/24 2001:db8:19::1/64 ---- lan .2 / ::2 (--lan)
# Inner addresses are the tests' choice, from 198.18.0.0/16, 2001:db8:f::/64.

GWD_BIN=${GWD_BIN:-$H_BUILD_DIR/bin/gwd}
GWD_TOOL="$H_SOURCE_DIR/tests/integration/lib/gwd_tool.py"
GWD_SERVER4=203.0.113.2
GWD_SERVER6=2001:db8:3::2
GWD_CLIENT4=192.0.2.2
GWD_CLIENT6=2001:db8:1::2

gwd_require() {
	local p
	p=$(command -v "$GWD_BIN" 2>/dev/null) ||
		h_fail "implementation under test not found: GWD_BIN=$GWD_BIN" \
			"(build gwd, or set GWD_BIN, e.g. GWD_BIN=wireguard-go to check the tests)"
	GWD_BIN=$p
	h_log "implementation under test: $GWD_BIN"
}

gwd_is_ref() {
	[[ $(basename "$GWD_BIN") == wireguard-go ]]
}

# Both implementations log verbosely: wireguard-go reads LOG_LEVEL, gwd
# GWD_LOG_LEVEL.
gwd_up() {
	local host=$1 ifn=$2
	shift 2
	h_wg_up "$host" "$ifn" env LOG_LEVEL=verbose GWD_LOG_LEVEL=debug "$@" "$GWD_BIN"
}

ref_up() {
	h_wggo_up "$1" "$2"
}

impl_up() {
	case $1 in
	gwd) gwd_up "$2" "$3" ;;
	ref) ref_up "$2" "$3" ;;
	*) h_fail "impl_up: gwd or ref, not '$1'" ;;
	esac
}

impl_name() {
	case $1 in
	gwd) basename "$GWD_BIN" ;;
	ref) echo wireguard-go ;;
	esac
}

# The daemon spawned as NAME (= its interface) in HOST must leave cleanly on
# SIGTERM: exit status 0, no TUN, no socket.
wg_down() {
	local host=$1 ifn=$2 pid rc=0
	pid=$(h_pid "$ifn")
	h_kill "$ifn" TERM
	wait "$pid" 2>/dev/null || rc=$?
	h_assert_eq "$rc" 0 "exit status of the $ifn daemon after SIGTERM"
	h_assert_eq "$(test -e "$H_WG_RUN_DIR/$ifn.sock" && echo present)" "" \
		"UAPI socket of $ifn after SIGTERM"
	if h_exec "$host" ip link show dev "$ifn" >/dev/null 2>&1; then
		h_fail "TUN $ifn still exists after SIGTERM"
	fi
}

gwd_lab() {
	h_host client
	h_host router --forwarding
	h_host server --forwarding
	h_bridge access
	h_attach client access eth0
	h_attach router access eth0
	h_link router server eth1 eth0
	h_addr client eth0 "$GWD_CLIENT4/24"
	h_addr client eth0 "$GWD_CLIENT6/64"
	h_addr router eth0 192.0.2.1/24
	h_addr router eth0 2001:db8:1::1/64
	h_addr router eth1 203.0.113.1/24
	h_addr router eth1 2001:db8:3::1/64
	h_addr server eth0 "$GWD_SERVER4/24"
	h_addr server eth0 "$GWD_SERVER6/64"
	h_route client default via 192.0.2.1
	h_route client default via 2001:db8:1::1
	h_route server default via 203.0.113.1
	h_route server default via 2001:db8:3::1
	if [[ ${1:-} == --lan ]]; then
		h_host lan
		h_link server lan
		h_addr server lan 198.19.0.1/24
		h_addr server lan 2001:db8:19::1/64
		h_addr lan server 198.19.0.2/24
		h_addr lan server 2001:db8:19::2/64
		h_route lan default via 198.19.0.1
		h_route lan default via 2001:db8:19::1
	fi
	h_wait_ping client "$GWD_SERVER4" 5
	h_wait_ping client "$GWD_SERVER6" 5
}

wg_field() {
	local host=$1 ifn=$2 what=$3 pub=$4 col=$5 out
	out=$(h_wg "$host" show "$ifn" "$what") || return 1
	awk -v p="$pub" -v c="$col" '$1 == p { print $c }' <<<"$out"
}

# For h_wait_for: true once IF has completed a handshake with PUB.
wg_handshake_done() {
	local hs
	hs=$(wg_field "$1" "$2" latest-handshakes "$3" 2) || return 1
	[[ -n $hs && $hs != 0 ]]
}

wg_assert_handshake() {
	local host=$1 ifn=$2 pub=$3 maxage=${4:-60} hs
	hs=$(wg_field "$host" "$ifn" latest-handshakes "$pub" 2)
	h_assert_ge "${hs:-0}" $(($(date +%s) - maxage)) "latest handshake of $ifn (epoch s)"
}

# KEY=VALUE per line, sorted, AllowedIPs split one per line, peers kept apart
# by their public key, so two equivalent configurations compare equal.
conf_norm() {
	awk '
	/^[[:space:]]*(#|$)/ { next }
	/^\[Interface\]/ { sec = "if"; next }
	/^\[Peer\]/ { sec = "peer" ++np; next }
	{
		line = $0; sub(/[[:space:]]*#.*/, "", line)
		k = line; sub(/[[:space:]]*=.*/, "", k); gsub(/[[:space:]]/, "", k)
		v = line; sub(/^[^=]*=[[:space:]]*/, "", v); gsub(/[[:space:]]/, "", v)
		k = tolower(k)
		if (k == "publickey") pub[sec] = v
		n = split(v, parts, ",")
		for (i = 1; i <= n; i++) kv[sec, ++cnt[sec]] = k "=" parts[i]
		secs[sec] = 1
	}
	END {
		for (s in secs) {
			tag = (s == "if") ? "interface" : "peer:" pub[s]
			for (i = 1; i <= cnt[s]; i++) print tag " " kv[s, i]
		}
	}' "$1" | sort
}

wg_showconf_norm() {
	local f="$H__STATE/showconf.$2"
	h_wg "$1" showconf "$2" >"$f" || h_fail "wg showconf $2 failed"
	conf_norm "$f"
}

gwd_tool() {
	python3 "$GWD_TOOL" "$@"
}

uapi_get() {
	gwd_tool uapi --sock "$H_WG_RUN_DIR/$1.sock" "${2:-get=1}"
}

# gwd_stat IF KEY: a device-level counter from gwd's `stats=1` extension.
gwd_stat() {
	local out v
	out=$(uapi_get "$1" stats=1) || h_fail "stats=1 on $1 failed"
	[[ $out == *"errno=0"* ]] || h_fail "stats=1 on $1: $(tail -n 2 <<<"$out")"
	v=$(awk -F= -v k="$2" '$1 == "public_key" { exit } $1 == k { print $2; exit }' <<<"$out")
	[[ -n $v ]] || h_fail "stats=1 on $1 has no $2"
	echo "$v"
}

# tcp_start SRC DST ADDR BYTES [RATE]: start a TCP stream of BYTES random
# bytes from SRC to a sink on DST listening on ADDR (RATE bytes/s, default
# unpaced); sets TCP_STREAM for tcp_check.
tcp_start() {
	local src=$1 dst=$2 addr=$3 bytes=$4 rate=${5:-0} port n f
	n=$(h__next tcp)
	port=$((5301 + n))
	f="$H_LOGDIR/tcp$n.bin"
	TCP_STREAM=tcp$n
	head -c "$bytes" /dev/urandom >"$f"
	echo "$bytes $(sha256sum "$f" | cut -d' ' -f1)" >"$f.want"
	h_spawn "$dst" "tcp${n}sink" python3 "$GWD_TOOL" sink --addr "$addr" --port "$port" \
		--out "$f.sink"
	h_wait_listen "$dst" "$port" 5
	h_spawn "$src" "tcp${n}source" python3 "$GWD_TOOL" source --addr "$addr" \
		--port "$port" --file "$f" --rate "$rate"
}

# tcp_check STREAM [SECS]: the sender finished with status 0 within SECS and
# the sink got exactly the bytes sent (count and SHA-256).
tcp_check() {
	local s=$1 secs=${2:-30} f="$H_LOGDIR/$1.bin" pid rc=0
	pid=$(h_pid "${s}source")
	h_wait_exit "${s}source" "$secs"
	wait "$pid" 2>/dev/null || rc=$?
	h_assert_eq "$rc" 0 "exit status of the TCP sender $s"
	h_wait_file "$f.sink" 10
	h_wait_exit "${s}sink" 5
	h_assert_eq "$(<"$f.sink")" "$(<"$f.want")" "bytes and SHA-256 received by $s"
	rm -f "$f"
	h_log "TCP stream $s: $(cut -d' ' -f1 "$f.want") bytes arrived intact"
}

tcp_verify() {
	tcp_start "$@"
	tcp_check "$TCP_STREAM" 60
}
