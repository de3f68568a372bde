# shellcheck shell=bash
# frr.sh - FRR (zebra, bgpd, bfdd) per network namespace, for the anycast
# tests. Source it after harness.sh.
#
# Every daemon of host HOST runs in HOST's namespace, in the foreground,
# with its own configuration, pid file, zebra socket and vty sockets in
# $H_LOGDIR/frr-HOST (so instances never meet), as user frr, logging to
# $H_LOGDIR/{zebra,bfdd,bgpd}-HOST.log through h_spawn.
#
#   fr_require                  fail unless FRR's daemons and vtysh exist
#   fr_dir HOST                 the directory of HOST's FRR
#   fr_conf TEMPLATE OUT K=V... copy frr-conf/TEMPLATE to OUT with @K@ -> V
#   fr_up HOST BGPD_CONF        zebra, bfdd (frr-conf/bfdd.conf) and bgpd with
#                               BGPD_CONF; waits until each answers on its vty
#   fr_vtysh HOST CMD...        vtysh -c CMD ... against HOST's daemons
#   fr_procs HOST               the h_spawn names of HOST's daemons
#   fr_bgp_up HOST N            predicate: N BGP sessions Established

FR_BIN=${FR_BIN:-/usr/lib/frr}
FR_CONF_DIR="$H_SOURCE_DIR/frr-conf"

fr_require() {
	local d
	h_require_cmd vtysh
	for d in zebra bgpd bfdd; do
		[[ -x $FR_BIN/$d ]] || h_fail "no $FR_BIN/$d (apt-get install frr)"
	done
	id frr >/dev/null 2>&1 || h_fail "no user frr (the frr package makes it)"
}

fr_dir() {
	echo "$H_LOGDIR/frr-$1"
}

# fr_conf TEMPLATE OUT KEY=VALUE...: @KEY@ replaced by VALUE (VALUE may hold
# \n for several lines) outside comments (lines starting with !).
fr_conf() {
	local tpl=$1 out=$2 kv args=()
	shift 2
	for kv in "$@"; do
		args+=(-e "/^!/!s|@${kv%%=*}@|${kv#*=}|g")
	done
	sed "${args[@]}" "$FR_CONF_DIR/$tpl" >"$out" || h_fail "fr_conf $tpl"
	! grep -v '^!' "$out" | grep -q '@[A-Z0-9_]*@' ||
		h_fail "fr_conf: $out has unfilled fields: $(grep -v '^!' "$out" | grep -o '@[A-Z0-9_]*@' | sort -u | tr '\n' ' ')"
}

fr__answers() {
	h_alive "$2-$1" || h_fail "$2 of $1 exited: $(tail -n 5 "$(h_log_of "$2-$1")")"
	[[ -S "$(fr_dir "$1")/$2.vty" ]] &&
		timeout 2 vtysh --vty_socket "$(fr_dir "$1")" -d "$2" -c "show version" >/dev/null 2>&1
}

fr__spawn() {
	local host=$1 d=$2 daemon=$3
	shift 3
	h_spawn "$host" "$daemon-$host" "$FR_BIN/$daemon" -u frr -g frr -P 0 \
		-f "$d/$daemon.conf" -i "$d/$daemon.pid" --vty_socket "$d" \
		--log stdout --log-level "${FR_LOG_LEVEL:-informational}" "$@"
}

fr_up() {
	local host=$1 conf=$2 d
	d=$(fr_dir "$host")
	mkdir -p "$d"
	cp "$FR_CONF_DIR/zebra.conf" "$FR_CONF_DIR/bfdd.conf" "$d/"
	cp "$conf" "$d/bgpd.conf"
	chown -R frr:frr "$d"
	chmod 0750 "$d"
	fr__spawn "$host" "$d" zebra -z "$d/zserv.api"
	h_wait_for 15 "zebra of $host answering" fr__answers "$host" zebra
	fr__spawn "$host" "$d" bfdd -z "$d/zserv.api" --bfdctl "$d/bfdd.sock"
	fr__spawn "$host" "$d" bgpd -z "$d/zserv.api"
	h_wait_for 15 "bfdd of $host answering" fr__answers "$host" bfdd
	h_wait_for 15 "bgpd of $host answering" fr__answers "$host" bgpd
	# A template that does not parse must fail the test, not half-work.
	local bad
	bad=$(grep -h "No such command\|Unknown command\|not a valid" "$(h_log_of "zebra-$host")" \
		"$(h_log_of "bfdd-$host")" "$(h_log_of "bgpd-$host")" | head -n 3) || true
	[[ -z $bad ]] || h_fail "FRR of $host refused configuration lines: $bad"
}

fr_vtysh() {
	local host=$1 args=() c
	shift
	for c in "$@"; do
		args+=(-c "$c")
	done
	timeout 5 vtysh --vty_socket "$(fr_dir "$host")" "${args[@]}"
}

fr_procs() {
	echo "zebra-$1 bfdd-$1 bgpd-$1"
}

# fr_bgp_up HOST N: at least N BGP sessions of HOST are Established.
fr_bgp_up() {
	local out n
	out=$(fr_vtysh "$1" "show bgp neighbors json") || return 1
	n=$(jq '[.[] | select(.bgpState == "Established")] | length' <<<"$out") || return 1
	echo "$1: $n of $(jq length <<<"$out") sessions established"
	((n >= $2))
}
