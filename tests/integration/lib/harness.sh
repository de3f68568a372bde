# shellcheck shell=bash
# harness.sh - network-namespace lab harness for gwcluster integration tests.
#
# Source it from a test script that runs under `set -euo pipefail`:
#
#   set -euo pipefail
#   . "${GW_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/integration/lib/harness.sh"
#   h_require_root
#   h_require_cmd wireguard-go wg
#   h_host a; h_host b; h_link a b; h_addr a b 192.0.2.1/24; ...
#
# Sourcing picks a run id (H_RUNID, "g" + 6 hex digits), creates the run's log
# directory (H_LOGDIR) and installs EXIT/INT/TERM/HUP traps that tear the lab
# down. Tests must not install their own EXIT/INT/TERM/HUP traps; register
# extra cleanup with h_on_teardown instead. See docs/testing.md.
#
# Naming. Everything that lives in a machine-wide space carries the run id:
# namespaces are "$H_RUNID-HOST", bridge namespaces "$H_RUNID-sw-BRIDGE",
# WireGuard interfaces (and so their UAPI sockets in /var/run/wireguard) must
# start with $H_RUNID (use h_ifname). Veth ends are created directly inside the
# run's namespaces, never in the host namespace; their names only need to be
# unique per namespace, and every link the harness creates carries the alias
# "gwit:$H_RUNID:..." so a leftover could be traced to its run.
#
# Topology
#   h_host NAME [--forwarding]     netns "$H_RUNID-NAME": lo up, no IPv6 DAD,
#                                  rp_filter off, IPv6 addresses kept on down
#   h_forwarding HOST              IPv4 and IPv6 forwarding on
#   h_bridge NAME                  bridge in its own netns "$H_RUNID-sw-NAME"
#                                  (usable as host "sw-NAME" in h_exec)
#   h_link H1 H2 [IF1 IF2]         veth H1:IF1 <-> H2:IF2, both up; default
#                                  names: the peer's host name (<= 15 chars)
#   h_attach HOST BRIDGE [IFNAME]  veth HOST:IFNAME (default: BRIDGE) into the
#                                  bridge; the bridge port is named HOST
#   h_bridge_port BRIDGE HOST up|down   cut or restore HOST's bridge port
#   h_addr HOST IF ADDR/LEN [ARGS] add a v4 or v6 address (v6 with nodad), IF up
#   h_route HOST PREFIX ARGS...    ip route replace PREFIX ARGS (e.g. via GW)
#   h_ns HOST                      print the namespace name of HOST
#   h_exec HOST CMD...             run CMD inside HOST
#   h_exec_timeout HOST SECS CMD...  same, killed after SECS
# Daemons
#   h_spawn HOST NAME CMD...       background CMD in HOST, own session, output
#                                  to $H_LOGDIR/NAME.log; killed at teardown
#   h_kill NAME [SIGNAL]           send SIGNAL (default TERM); for TERM/INT/
#                                  QUIT/HUP waits H_KILL_GRACE s, then KILL
#   h_pid NAME, h_alive NAME       PID of / whether NAME still runs
#   h_log_of NAME                  path of NAME's log
# Waits (all bounded; a timeout fails the test with DESCRIPTION)
#   h_wait_for SECS DESCRIPTION CMD...   poll CMD every H_POLL (0.1) s
#   h_wait_ping HOST ADDR [SECS]         until HOST gets a ping reply
#   h_wait_listen HOST PORT [SECS] [tcp|udp]  until something listens
#   h_wait_file PATH [SECS]              until PATH exists
#   h_wait_exit NAME [SECS]              until spawned NAME has exited
# Capture
#   h_capture_start [-s SNAPLEN] [-c COUNT] HOST IF FILE [BPF]
#                                        dumpcap in HOST, returns once it
#                                        captures; relative FILE -> $H_LOGDIR;
#                                        -c: dumpcap stops after COUNT packets
#   h_capture_stop [FILE]                stop one (or every) capture after
#                                        H_CAPTURE_SETTLE (0.5) s, flushed
#   h_tshark_fields FILE [-Y FILTER] [-d DECODE_AS] FIELD... [FILTER]
#                                        one tab-separated line per packet; a
#                                        last argument with a space or one of
#                                        =<>!&|()~ is taken as display filter
# Assertions and logging
#   h_assert_eq ACTUAL EXPECTED [MSG]    string equality
#   h_assert_ne ACTUAL UNEXPECTED [MSG]
#   h_assert_ge ACTUAL MIN [MSG]         numeric (integer or decimal)
#   h_assert_le ACTUAL MAX [MSG]
#   h_assert_match STRING REGEX [MSG]    bash =~ match
#   h_fail MSG                           print FAIL and exit 1 (teardown runs)
#   h_log MSG                            timestamped progress line on stderr
# Requirements
#   h_require_root                       exit 77 ("SKIP") unless root
#   h_require_cmd CMD...                 exit 1 if a command is missing
# WireGuard
#   h_ifname SUFFIX                      print "$H_RUNID$SUFFIX" (<= 15 chars)
#   h_wg_up HOST IFNAME PROG [ARGS...]   spawn "PROG ARGS -f IFNAME" (any
#                                        wireguard-go compatible daemon, e.g.
#                                        gwd), wait for its UAPI socket and TUN
#   h_wggo_up HOST IFNAME                h_wg_up with wireguard-go
#   h_gwd_up HOST IFNAME [ARGS...]       h_wg_up with $H_BUILD_DIR/bin/gwd
#   h_wg HOST ARGS...                    run `wg ARGS` in HOST
#   h_wg_keypair NAME                    new key pair in $H_LOGDIR/keys/
#   h_wg_key NAME / h_wg_pub NAME        private key file path / public key
# Teardown
#   h_on_teardown CMD...                 run CMD first at teardown (LIFO)
#   h_teardown                           tear down now (idempotent; the trap
#                                        calls it anyway)
#
# Variables for tests: H_RUNID, H_LOGDIR, H_TEST, H_BUILD_DIR, H_SOURCE_DIR,
# H_WG_RUN_DIR. Environment: GW_BUILD_DIR, GW_SOURCE_DIR (set by ctest),
# GW_KEEP_LOGS=1 keeps $H_LOGDIR of a failed run, H_KILL_GRACE (3 s), H_POLL (0.1 s),
# H_LOG_TAIL (80 lines per log dumped on failure), GW_HARNESS_RUNID_FILE (if
# set, the run id and log directory are written there, for tests of tests).
#
# Rules for callers: call harness functions directly, not inside $(...), when
# they create things (state written in a subshell still reaches teardown, but
# an h_fail there only ends the subshell); write `local x; x=$(...)` so set -e
# sees failures; wait conditions must return quickly (bound them with -W,
# timeout, ...), h_wait_for bounds only the polling.
#
# Run `bash harness.sh reap` to clean up after runs whose shell was SIGKILLed.
#
# Runs that outlive one shell (scripts/lab: `up` builds, `demo` uses, `down`
# removes): set GW_HARNESS_RUNID=ID (a letter, then 1..7 letters or digits,
# no prefix of another run id in use) and GW_HARNESS_DIR=DIR before sourcing.
# The run then lives in DIR (H_LOGDIR) under the id ID; if DIR already holds
# run ID, this shell attaches to it (its hosts and processes, from the state
# files) instead of starting a new one (H_ATTACHED=1). A new run refuses to
# start while namespaces or sockets of ID exist. `reap` never touches such
# runs. What an exit does to the run:
#   h_keep     a successful exit leaves the run up; a failure or a signal
#              tears it down as usual
#   h_detach   no exit of this shell tears the run down (read-only users)
# Run `bash harness.sh destroy ID [DIR]` to remove run ID (its processes,
# namespaces, sockets, and DIR) without attaching to it.

if [[ -n "${H__LOADED:-}" ]]; then
	return 0
fi
H__LOADED=1

H_SOURCE_DIR=${GW_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)}
# shellcheck disable=SC2034 # for the tests that source this file
H_BUILD_DIR=${GW_BUILD_DIR:-$H_SOURCE_DIR/build}
H_TEST=$(basename "$0" .sh)
H_WG_RUN_DIR=${H_WG_RUN_DIR:-/var/run/wireguard}
H_KILL_GRACE=${H_KILL_GRACE:-3}
H_POLL=${H_POLL:-0.1}
H_LOG_TAIL=${H_LOG_TAIL:-80}
H_CAPTURE_SETTLE=${H_CAPTURE_SETTLE:-0.5}
H__HOOKS=()
H__TORN_DOWN=0
H__KEEP=0
H_ATTACHED=0

# ---------------------------------------------------------------- basics

# Microseconds since the epoch, from bash's $EPOCHREALTIME (no fork).
h__now_us() {
	local t=${EPOCHREALTIME/[.,]/}
	echo "$((10#$t))"
}

# Seconds (integer or decimal, e.g. 2.5) to microseconds.
h__secs_us() {
	local s=$1 int frac
	[[ $s =~ ^([0-9]+)([.]([0-9]{1,6}))?$ ]] || {
		echo "h: bad duration '$s'" >&2
		return 1
	}
	int=${BASH_REMATCH[1]}
	frac=${BASH_REMATCH[3]}
	frac=${frac}000000
	echo "$((10#$int * 1000000 + 10#${frac:0:6}))"
}

h_log() {
	local now=$(($(h__now_us) - H__T0))
	printf '[%s %s +%d.%03ds] %s\n' "$H_TEST" "$(date +%H:%M:%S)" \
		$((now / 1000000)) $((now / 1000 % 1000)) "$*" >&2
}

# To the test's own stderr, also from inside a redirected wait condition.
h_fail() {
	printf '[%s] FAIL: %s\n' "$H_TEST" "$*" >&"$H__ERR_FD"
	if [[ $BASHPID != "$H__MAIN_PID" ]]; then
		echo "[$H_TEST] (h_fail ran in a subshell; the caller must check its status)" >&"$H__ERR_FD"
	fi
	exit 1
}

# A trap or an exit can come while a redirection is in force (h_wait_for
# sends its condition's output to a file): report on the test's own stdout
# and stderr, saved when the harness was sourced.
h__restore_fds() {
	exec 1>&"$H__OUT_FD" 2>&"$H__ERR_FD"
}

h_require_root() {
	if [[ $EUID -ne 0 ]]; then
		echo "[$H_TEST] SKIP: needs root (network namespaces); run as root" >&2
		exit 77
	fi
}

h_require_cmd() {
	local c missing=()
	for c in "$@"; do
		command -v "$c" >/dev/null 2>&1 || missing+=("$c")
	done
	if ((${#missing[@]})); then
		echo "[$H_TEST] FAIL: required command(s) not found: ${missing[*]}" \
			"(scripts/install-deps.sh installs them)" >&2
		exit 1
	fi
}

# Increment and print a per-run counter (file based, so subshells agree).
h__next() {
	local f="$H__STATE/ctr.$1" n=0
	[[ -f $f ]] && n=$(<"$f")
	echo $((n + 1)) >"$f"
	echo "$n"
}

h__check_name() {
	[[ $2 =~ ^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$ ]] ||
		h_fail "$1: bad name '$2' (letters, digits, _ . -, at most 40)"
}

h__check_ifname() {
	[[ $2 =~ ^[A-Za-z0-9][A-Za-z0-9_.-]{0,14}$ ]] ||
		h_fail "$1: bad interface name '$2' (at most 15 of A-Za-z0-9_.-)"
}

# ---------------------------------------------------------------- topology

h_ns() {
	echo "$H_RUNID-$1"
}

h__need_host() {
	[[ -f "$H__STATE/hosts/$2" ]] || h_fail "$1: unknown host '$2' (create it with h_host)"
}

h__sysctl() {
	local ns=$1
	shift
	ip netns exec "$ns" sysctl -q -w "$@" >/dev/null ||
		h_fail "sysctl $* failed in $ns"
}

h__netns_add() {
	local name=$1 ns
	ns=$(h_ns "$name")
	[[ ! -e "$H__STATE/hosts/$name" ]] || h_fail "host or bridge '$name' exists already"
	ip netns add "$ns" || h_fail "ip netns add $ns failed"
	echo "$ns" >"$H__STATE/hosts/$name"
	ip -n "$ns" link set lo up || h_fail "lo up failed in $ns"
}

h_host() {
	local name=$1
	h__check_name h_host "$name"
	[[ $name != sw-* ]] || h_fail "h_host: names starting with sw- are for bridges"
	h__netns_add "$name"
	local ns
	ns=$(h_ns "$name")
	h__sysctl "$ns" net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0 \
		net.ipv6.conf.all.keep_addr_on_down=1 net.ipv6.conf.default.keep_addr_on_down=1 \
		net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0
	if [[ ${2:-} == --forwarding ]]; then
		h_forwarding "$name"
	elif [[ -n ${2:-} ]]; then
		h_fail "h_host: unknown option '$2'"
	fi
}

h_forwarding() {
	h__need_host h_forwarding "$1"
	h__sysctl "$(h_ns "$1")" net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1 \
		net.ipv6.conf.default.forwarding=1
}

h_bridge() {
	local name=$1 ns
	h__check_name h_bridge "$name"
	h__netns_add "sw-$name"
	ns=$(h_ns "sw-$name")
	# The switch takes no part in IP: no link-local noise from its ports.
	h__sysctl "$ns" net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
	ip -n "$ns" link add name "${H_RUNID}br" type bridge stp_state 0 mcast_snooping 0 ||
		h_fail "h_bridge: cannot create bridge in $ns"
	ip -n "$ns" link set dev "${H_RUNID}br" alias "gwit:$H_RUNID:bridge:$name" up
}

h__veth() {
	local ns1=$1 if1=$2 ns2=$3 if2=$4 what=$5
	ip -n "$ns1" link add name "$if1" type veth peer name "$if2" netns "$ns2" ||
		h_fail "cannot create veth $what (names must be unique per host; pass explicit ones)"
	ip -n "$ns1" link set dev "$if1" alias "gwit:$H_RUNID:$what" up
	ip -n "$ns2" link set dev "$if2" alias "gwit:$H_RUNID:$what" up
}

h_link() {
	local h1=$1 h2=$2 if1=${3:-${2:0:15}} if2=${4:-${1:0:15}}
	h__need_host h_link "$h1"
	h__need_host h_link "$h2"
	h__check_ifname h_link "$if1"
	h__check_ifname h_link "$if2"
	h__veth "$(h_ns "$h1")" "$if1" "$(h_ns "$h2")" "$if2" "$h1:$if1-$h2:$if2"
}

h_attach() {
	local host=$1 br=$2 ifn=${3:-${2:0:15}} port=${1:0:15}
	h__need_host h_attach "$host"
	h__need_host h_attach "sw-$br"
	h__check_ifname h_attach "$ifn"
	local swns
	swns=$(h_ns "sw-$br")
	h__veth "$(h_ns "$host")" "$ifn" "$swns" "$port" "$host:$ifn-bridge:$br"
	ip -n "$swns" link set dev "$port" master "${H_RUNID}br" ||
		h_fail "h_attach: cannot enslave $port to bridge $br"
}

h_bridge_port() {
	local br=$1 host=$2 state=$3
	h__need_host h_bridge_port "sw-$br"
	[[ $state == up || $state == down ]] || h_fail "h_bridge_port: state must be up or down"
	ip -n "$(h_ns "sw-$br")" link set dev "${host:0:15}" "$state" ||
		h_fail "h_bridge_port: $host is not attached to $br"
}

h_addr() {
	local host=$1 ifn=$2 addr=$3
	shift 3
	h__need_host h_addr "$host"
	local ns extra=()
	ns=$(h_ns "$host")
	[[ $addr == *:* ]] && extra=(nodad)
	ip -n "$ns" addr replace "$addr" dev "$ifn" "${extra[@]}" "$@" ||
		h_fail "h_addr: cannot add $addr to $host:$ifn"
	ip -n "$ns" link set dev "$ifn" up
}

h_route() {
	local host=$1 fam=-4 a
	shift
	h__need_host h_route "$host"
	for a in "$@"; do
		[[ $a == *:* ]] && fam=-6
	done
	ip -n "$(h_ns "$host")" "$fam" route replace "$@" ||
		h_fail "h_route: ip route replace $* failed on $host"
}

h_exec() {
	local host=$1
	shift
	h__need_host h_exec "$host"
	ip netns exec "$(h_ns "$host")" "$@"
}

h_exec_timeout() {
	local host=$1 secs=$2
	shift 2
	h__need_host h_exec_timeout "$host"
	timeout -k 2 "$secs" ip netns exec "$(h_ns "$host")" "$@"
}

# ---------------------------------------------------------------- processes

# Print "STATE STARTTIME" of a PID (fields 3 and 22 of /proc/PID/stat).
h__proc_stat() {
	local s f
	read -r s 2>/dev/null <"/proc/$1/stat" || return 1
	s=${s##*) }
	read -r -a f <<<"$s"
	echo "${f[0]} ${f[19]}"
}

# True while PID is the process that started at STARTTIME and not a zombie.
h__same_proc() {
	local st
	st=$(h__proc_stat "$1") || return 1
	[[ ${st%% *} != Z && ${st#* } == "$2" ]]
}

h__proc_rec() {
	local rec="$H__STATE/procs/$1"
	[[ -f $rec ]] || return 1
	cat "$rec"
}

h__signal_proc() {
	local pid=$1 start=$2 sig=$3
	h__same_proc "$pid" "$start" || return 0
	# Spawned processes lead their own process group (setsid): signal it all.
	kill -s "$sig" -- "-$pid" 2>/dev/null || kill -s "$sig" "$pid" 2>/dev/null || true
	# A stopped process (a test may SIGSTOP one) acts on TERM only once resumed.
	case $sig in
	TERM | INT | QUIT | HUP | 15 | 2 | 3 | 1)
		kill -s CONT -- "-$pid" 2>/dev/null || kill -s CONT "$pid" 2>/dev/null || true
		;;
	esac
}

h_spawn() {
	local host=$1 name=$2
	shift 2
	h__need_host h_spawn "$host"
	h__check_name h_spawn "$name"
	(($#)) || h_fail "h_spawn: no command for $name"
	if h_alive "$name"; then
		h_fail "h_spawn: a process named $name is already running"
	fi
	local log="$H_LOGDIR/$name.log" pid st cmd
	printf -v cmd '%q ' "$@"
	h_log "spawn $name on $host: $cmd"
	echo "# $(date '+%F %T') on $host: $cmd" >>"$log"
	setsid ip netns exec "$(h_ns "$host")" "$@" </dev/null >>"$log" 2>&1 \
		{H__OUT_FD}>&- {H__ERR_FD}>&- &
	pid=$!
	disown "$pid" # no "Killed" job reports; bash still reaps it
	st=$(h__proc_stat "$pid") || st="X 0"
	echo "$pid ${st#* } $host" >"$H__STATE/procs/$name"
	echo "$pid" >>"$H__STATE/pids"
}

h_pid() {
	local r
	r=$(h__proc_rec "$1") || h_fail "h_pid: no process named $1"
	echo "${r%% *}"
}

h_alive() {
	local r a
	r=$(h__proc_rec "$1") || return 1
	read -r -a a <<<"$r"
	h__same_proc "${a[0]}" "${a[1]}"
}

h_log_of() {
	echo "$H_LOGDIR/$1.log"
}

# Wait up to $1 seconds until none of the "pid start" pairs that follow is
# alive.
h__wait_dead() {
	local deadline=$(($(h__now_us) + $(h__secs_us "$1"))) i alive
	shift
	local -a p=("$@")
	while :; do
		alive=0
		for ((i = 0; i + 1 < ${#p[@]}; i += 2)); do
			h__same_proc "${p[i]}" "${p[i + 1]}" && alive=1
		done
		((alive)) || return 0
		(($(h__now_us) < deadline)) || return 1
		sleep 0.05
	done
}

h_kill() {
	local name=$1 sig=${2:-TERM} r a
	r=$(h__proc_rec "$name") || h_fail "h_kill: no process named $name"
	read -r -a a <<<"$r"
	sig=${sig#SIG}
	h_log "kill -$sig $name (pid ${a[0]})"
	h__signal_proc "${a[0]}" "${a[1]}" "$sig"
	case $sig in
	TERM | INT | QUIT | HUP | KILL | 15 | 2 | 3 | 1 | 9)
		if ! h__wait_dead "$H_KILL_GRACE" "${a[0]}" "${a[1]}"; then
			h_log "$name ignored SIG$sig for ${H_KILL_GRACE}s, sending KILL"
			h__signal_proc "${a[0]}" "${a[1]}" KILL
			h__wait_dead 2 "${a[0]}" "${a[1]}" || h_fail "h_kill: $name survives SIGKILL"
		fi
		;;
	esac
}

# ---------------------------------------------------------------- waits

h_wait_for() {
	local secs=$1 desc=$2 deadline out="$H__STATE/wait.out"
	shift 2
	deadline=$(($(h__now_us) + $(h__secs_us "$secs")))
	while :; do
		if "$@" >"$out" 2>&1; then
			return 0
		fi
		if (($(h__now_us) >= deadline)); then
			echo "[$H_TEST] last output of: $*" >&2
			tail -n 20 "$out" | sed 's/^/    /' >&2
			h_fail "timed out after ${secs}s waiting for: $desc"
		fi
		sleep "$H_POLL"
	done
}

h_wait_ping() {
	local host=$1 addr=$2 secs=${3:-10}
	h_wait_for "$secs" "ping $addr from $host" h_exec "$host" ping -n -q -c 1 -W 0.5 "$addr"
}

h__listening() {
	local out
	out=$(h_exec "$1" ss -H -l "$3" -n "sport = :$2") || return 1
	[[ -n $out ]]
}

h_wait_listen() {
	local host=$1 port=$2 secs=${3:-10} proto=${4:-tcp} flag
	case $proto in
	tcp) flag=-t ;;
	udp) flag=-u ;;
	*) h_fail "h_wait_listen: protocol must be tcp or udp" ;;
	esac
	h_wait_for "$secs" "$proto port $port listening on $host" h__listening "$host" "$port" "$flag"
}

h_wait_file() {
	h_wait_for "${2:-10}" "file $1" test -e "$1"
}

h__not_alive() {
	! h_alive "$1"
}

h_wait_exit() {
	h_wait_for "${2:-10}" "$1 to exit" h__not_alive "$1"
}

# ---------------------------------------------------------------- capture

h__abs() {
	if [[ $1 == /* ]]; then echo "$1"; else echo "$H_LOGDIR/$1"; fi
}

h__capturing() {
	h_alive "$1" || h_fail "capture $1 died: $(tail -n 5 "$(h_log_of "$1")")"
	grep -q "^Capturing on" "$(h_log_of "$1")" && [[ -s $2 ]]
}

h_capture_start() {
	local opts=()
	while [[ ${1:-} == -s || ${1:-} == -c ]]; do
		opts+=("$1" "$2")
		shift 2
	done
	local host=$1 ifn=$2 file filter=${4:-} name args
	file=$(h__abs "$3")
	name="capture-$(h__next capture)"
	args=(dumpcap -q -i "$ifn" "${opts[@]}" -w "$file")
	[[ -n $filter ]] && args+=(-f "$filter")
	rm -f "$file"
	h_spawn "$host" "$name" "${args[@]}"
	echo "$name $file" >>"$H__STATE/captures"
	h_wait_for 10 "capture on $host:$ifn to start" h__capturing "$name" "$file"
}

h_capture_stop() {
	local want=${1:+$(h__abs "$1")} name file found=0
	[[ -f "$H__STATE/captures" ]] || h_fail "h_capture_stop: no capture started"
	# libpcap hands packets over in blocks, on a timeout; a capture stopped
	# right after the traffic loses the last block.
	sleep "$H_CAPTURE_SETTLE"
	while read -r name file; do
		[[ -z $want || $want == "$file" ]] || continue
		found=1
		h_alive "$name" || continue
		h_kill "$name" INT
	done <"$H__STATE/captures"
	((found)) || h_fail "h_capture_stop: no capture writes $1"
}

h_tshark_fields() {
	local file args=() fields=() last err
	file=$(h__abs "$1")
	shift
	[[ -f $file ]] || h_fail "h_tshark_fields: no capture file $file"
	while (($#)); do
		case $1 in
		-Y | -d)
			args+=("$1" "$2")
			shift 2
			;;
		*)
			fields+=(-e "$1")
			shift
			;;
		esac
	done
	if ((${#fields[@]} >= 4)); then
		last=${fields[-1]}
		if [[ $last =~ [[:space:]=\<\>\!\&\|\(\)~] ]]; then
			unset 'fields[-1]' 'fields[-1]'
			args+=(-Y "$last")
		fi
	fi
	((${#fields[@]})) || h_fail "h_tshark_fields: no fields"
	err="$H__STATE/tshark.err"
	if ! tshark -r "$file" -n -T fields -E separator=/t "${args[@]}" "${fields[@]}" 2>"$err"; then
		cat "$err" >&2
		h_fail "h_tshark_fields: tshark failed on $file"
	fi
}

# ---------------------------------------------------------------- assertions

h_assert_eq() {
	[[ $1 == "$2" ]] || h_fail "${3:-assertion}: expected '$2', got '$1'"
}

h_assert_ne() {
	[[ $1 != "$2" ]] || h_fail "${3:-assertion}: expected anything but '$2'"
}

h__num() {
	[[ $2 =~ ^-?[0-9]+([.][0-9]+)?$ ]] || h_fail "${1:-assertion}: '$2' is not a number"
}

h_assert_ge() {
	h__num "${3:-}" "$1"
	h__num "${3:-}" "$2"
	awk -v a="$1" -v b="$2" 'BEGIN { exit !(a + 0 >= b + 0) }' ||
		h_fail "${3:-assertion}: expected >= $2, got $1"
}

h_assert_le() {
	h__num "${3:-}" "$1"
	h__num "${3:-}" "$2"
	awk -v a="$1" -v b="$2" 'BEGIN { exit !(a + 0 <= b + 0) }' ||
		h_fail "${3:-assertion}: expected <= $2, got $1"
}

h_assert_match() {
	[[ $1 =~ $2 ]] || h_fail "${3:-assertion}: '$1' does not match /$2/"
}

# ---------------------------------------------------------------- wireguard

h_ifname() {
	local n="$H_RUNID$1"
	h__check_ifname h_ifname "$n"
	echo "$n"
}

h__wg_ready() {
	h_alive "$2" || h_fail "$2 exited before its UAPI socket appeared"
	[[ -S "$H_WG_RUN_DIR/$2.sock" ]] && h_exec "$1" ip link show dev "$2" >/dev/null 2>&1
}

h_wg_up() {
	local host=$1 ifn=$2 prog=$3
	shift 3
	h__check_ifname h_wg_up "$ifn"
	[[ $ifn == "$H_RUNID"* ]] || h_fail "h_wg_up: '$ifn' must start with $H_RUNID (use h_ifname)"
	h_spawn "$host" "$ifn" "$prog" "$@" -f "$ifn"
	h_wait_for 10 "$prog UAPI socket $H_WG_RUN_DIR/$ifn.sock" h__wg_ready "$host" "$ifn"
}

h_wggo_up() {
	h_wg_up "$1" "$2" env LOG_LEVEL=verbose wireguard-go
}

h_gwd_up() {
	local host=$1 ifn=$2
	shift 2
	[[ -x "$H_BUILD_DIR/bin/gwd" ]] || h_fail "h_gwd_up: no $H_BUILD_DIR/bin/gwd (build first)"
	h_wg_up "$host" "$ifn" "$H_BUILD_DIR/bin/gwd" "$@"
}

h_wg() {
	local host=$1
	shift
	h_exec "$host" wg "$@"
}

h_wg_keypair() {
	local d="$H_LOGDIR/keys"
	h__check_name h_wg_keypair "$1"
	mkdir -p "$d"
	chmod 0700 "$d"
	(umask 077 && wg genkey >"$d/$1.key") || h_fail "wg genkey failed"
	wg pubkey <"$d/$1.key" >"$d/$1.pub" || h_fail "wg pubkey failed"
}

h_wg_key() {
	[[ -f "$H_LOGDIR/keys/$1.key" ]] || h_fail "h_wg_key: no key pair $1 (h_wg_keypair)"
	echo "$H_LOGDIR/keys/$1.key"
}

h_wg_pub() {
	[[ -f "$H_LOGDIR/keys/$1.pub" ]] || h_fail "h_wg_pub: no key pair $1 (h_wg_keypair)"
	cat "$H_LOGDIR/keys/$1.pub"
}

# ---------------------------------------------------------------- teardown

h_on_teardown() {
	local q
	printf -v q '%q ' "$@"
	H__HOOKS+=("$q")
}

# Namespaces of run $1: those recorded and any still listed with its prefix.
h__run_netns() {
	local id=$1 dir=$2
	{
		ip netns list 2>/dev/null | awk '{ print $1 }' | grep "^$id-" || true
		cat "$dir"/.state/hosts/* 2>/dev/null || true
	} | sort -u
}

# Kill "pid start" pairs: TERM, bounded wait, KILL.
h__kill_pairs() {
	(($#)) || return 0
	local i
	local -a p=("$@")
	for ((i = 0; i + 1 < ${#p[@]}; i += 2)); do
		h__signal_proc "${p[i]}" "${p[i + 1]}" TERM
	done
	h__wait_dead "$H_KILL_GRACE" "$@" && return 0
	for ((i = 0; i + 1 < ${#p[@]}; i += 2)); do
		h__signal_proc "${p[i]}" "${p[i + 1]}" KILL
	done
	h__wait_dead 2 "$@" || echo "[$H_TEST] teardown: processes survive SIGKILL" >&2
}

# Every process inside the namespaces given, as "pid start" pairs.
h__netns_procs() {
	local ns pid st
	for ns in "$@"; do
		for pid in $(ip netns pids "$ns" 2>/dev/null); do
			st=$(h__proc_stat "$pid") || continue
			echo "$pid ${st#* }"
		done
	done
}

# Remove every trace of run $1 (log dir $2): processes, namespaces, sockets.
h__destroy_run() {
	local id=$1 dir=$2 f pairs=() nss ns a
	for f in "$dir"/.state/procs/*; do
		[[ -f $f ]] || continue
		read -r -a a <"$f"
		pairs+=("${a[0]}" "${a[1]}")
	done
	h__kill_pairs "${pairs[@]}"
	mapfile -t nss < <(h__run_netns "$id" "$dir")
	mapfile -t pairs < <(h__netns_procs "${nss[@]}" | tr ' ' '\n')
	h__kill_pairs "${pairs[@]}"
	for ns in "${nss[@]}"; do
		[[ -e /run/netns/$ns ]] || continue
		ip netns del "$ns" 2>/dev/null || echo "[$H_TEST] teardown: cannot delete netns $ns" >&2
	done
	rm -f "$H_WG_RUN_DIR/$id"*.sock "$H_WG_RUN_DIR/$id"*.name 2>/dev/null || true
}

h__dump_topology() {
	local ns
	for ns in $(h__run_netns "$H_RUNID" "$H_LOGDIR"); do
		echo "----- $ns: addresses and routes -----"
		ip -n "$ns" -br addr 2>&1
		ip -n "$ns" route 2>&1
		ip -n "$ns" -6 route 2>&1 | grep -v '^fe80\|^multicast' || true
	done
}

h__dump_logs() {
	local f
	for f in "$H_LOGDIR"/*.log; do
		[[ -f $f ]] || continue
		echo "----- $(basename "$f") (last $H_LOG_TAIL lines) -----"
		tail -n "$H_LOG_TAIL" "$f"
	done
}

h_teardown() {
	local rc=${1:-0} hook i
	[[ $BASHPID == "$H__MAIN_PID" ]] || return 0
	((!H__TORN_DOWN)) || return 0
	H__TORN_DOWN=1
	trap '' INT TERM HUP
	trap - ERR
	set +e
	for ((i = ${#H__HOOKS[@]} - 1; i >= 0; i--)); do
		hook=${H__HOOKS[i]}
		eval "$hook" || echo "[$H_TEST] teardown hook failed: $hook" >&2
	done
	((rc == 0)) || h__dump_topology >&2
	h__destroy_run "$H_RUNID" "$H_LOGDIR"
	if ((rc != 0)); then
		h__dump_logs >&2
		if [[ -n ${H__ERR_CMD:-} ]]; then
			echo "[$H_TEST] last failing command: $H__ERR_CMD (status $H__ERR_RC, $H__ERR_WHERE)" >&2
		fi
	fi
	if ((rc != 0)) && [[ -n ${GW_KEEP_LOGS:-} ]]; then
		touch "$H__STATE/done"
		echo "[$H_TEST] logs kept in $H_LOGDIR" >&2
	else
		rm -rf "$H_LOGDIR"
	fi
	trap - INT TERM HUP
	return 0
}

h_keep() {
	((H__KEEP >= 1)) || H__KEEP=1
}

h_detach() {
	H__KEEP=2
}

# ERR trap: remember the failing command and its call chain for the report.
h__on_err() {
	local i where=""
	H__ERR_RC=$1
	H__ERR_CMD=$2
	for ((i = 0; i + 1 < ${#BASH_SOURCE[@]}; i++)); do
		where+="${where:+ < }$(basename "${BASH_SOURCE[i + 1]}"):${BASH_LINENO[i]}"
	done
	H__ERR_WHERE=$where
}

h__on_exit() {
	local rc=$?
	[[ $BASHPID == "$H__MAIN_PID" ]] || return 0
	h__restore_fds
	if ((H__KEEP == 2 || (H__KEEP == 1 && rc == 0))); then
		trap - INT TERM HUP
		exit "$rc"
	fi
	h_teardown "$rc"
	if ((rc == 0)); then
		h_log "PASS"
	elif ((rc != 77)); then
		h_log "exit status $rc"
	fi
	exit "$rc"
}

h__on_signal() {
	local sig=$1 code=$2
	[[ $BASHPID == "$H__MAIN_PID" ]] || exit "$code"
	h__restore_fds
	if ((H__KEEP == 2)); then
		h_log "caught SIG$sig"
	else
		H__KEEP=0
		h_log "caught SIG$sig, tearing down"
	fi
	exit "$code"
}

# ---------------------------------------------------------------- init

h__new_runid() {
	local id i
	for ((i = 0; i < 20; i++)); do
		id="g$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')"
		[[ ! -e "${TMPDIR:-/tmp}/gwit-$id" ]] || continue
		ip netns list 2>/dev/null | grep -q "^$id-" && continue
		compgen -G "$H_WG_RUN_DIR/$id*" >/dev/null && continue
		echo "$id"
		return 0
	done
	return 1
}

# `bash harness.sh reap`: destroy runs whose test shell died without teardown.
h__reap() {
	local d id owner o
	for d in "${TMPDIR:-/tmp}"/gwit-g??????; do
		[[ -d "$d/.state" && ! -e "$d/.state/done" ]] || continue
		owner=$(cat "$d/.state/owner" 2>/dev/null) || continue
		read -r -a o <<<"$owner"
		h__same_proc "${o[0]}" "${o[1]}" && continue
		id=${d##*/gwit-}
		echo "reaping run $id"
		h__destroy_run "$id" "$d"
		rm -rf "$d"
	done
}

# Anything of run $1 left in the machine-wide spaces: namespaces, sockets.
h__run_traces() {
	ip netns list 2>/dev/null | awk '{ print $1 }' | grep "^$1-" || true
	compgen -G "$H_WG_RUN_DIR/$1*" || true
}

h__check_runid() {
	[[ $1 =~ ^[a-z][a-z0-9]{1,7}$ ]] || {
		echo "[$H_TEST] FAIL: bad run id '$1' (a letter, then 1..7 letters or digits)" >&2
		exit 1
	}
}

# `bash harness.sh destroy ID [DIR]`: remove run ID whether or not DIR is left.
h__destroy() {
	local id=$1 dir=${2:-}
	h__check_runid "$id"
	if [[ -n $dir && -f $dir/.state/runid && $(<"$dir/.state/runid") != "$id" ]]; then
		echo "harness: $dir holds run $(<"$dir/.state/runid"), not $id" >&2
		exit 1
	fi
	h__destroy_run "$id" "${dir:-/nonexistent}"
	[[ -n $dir && -f $dir/.state/runid ]] && rm -rf "$dir"
	if [[ -n $(h__run_traces "$id") ]]; then
		echo "harness: run $id: left behind: $(h__run_traces "$id" | tr '\n' ' ')" >&2
		exit 1
	fi
}

H__T0=$(h__now_us)
H__MAIN_PID=$BASHPID
exec {H__OUT_FD}>&1 {H__ERR_FD}>&2
if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
	H_TEST=harness
	case ${1:-} in
	reap) h__reap ;;
	destroy)
		[[ -n ${2:-} ]] || {
			echo "usage: bash harness.sh destroy RUNID [DIR]" >&2
			exit 2
		}
		h__destroy "$2" "${3:-}"
		;;
	*)
		echo "usage: bash harness.sh reap | destroy RUNID [DIR]   (or source it from a test)" >&2
		exit 2
		;;
	esac
	exit 0
fi

if [[ -n ${GW_HARNESS_DIR:-} ]]; then
	H_RUNID=${GW_HARNESS_RUNID:-}
	h__check_runid "$H_RUNID"
	H_LOGDIR=$GW_HARNESS_DIR
	H__STATE="$H_LOGDIR/.state"
	if [[ -f $H__STATE/runid && ! -e $H__STATE/done ]]; then
		[[ $(<"$H__STATE/runid") == "$H_RUNID" ]] || {
			echo "[$H_TEST] FAIL: $H_LOGDIR holds run $(<"$H__STATE/runid"), not $H_RUNID" >&2
			exit 1
		}
		H_ATTACHED=1
	else
		if [[ -n $(h__run_traces "$H_RUNID") ]]; then
			echo "[$H_TEST] FAIL: run $H_RUNID left these behind:" \
				"$(h__run_traces "$H_RUNID" | tr '\n' ' ')(bash $H_SOURCE_DIR/tests/integration/lib/harness.sh destroy $H_RUNID)" >&2
			exit 1
		fi
		# Only ever remove what an earlier run left: never an unrelated directory.
		if [[ -f $H__STATE/runid ]]; then
			rm -rf "$H_LOGDIR"
		elif [[ -e $H_LOGDIR && -n $(ls -A "$H_LOGDIR" 2>/dev/null) ]]; then
			echo "[$H_TEST] FAIL: $H_LOGDIR exists and holds no run of the harness" >&2
			exit 1
		fi
	fi
else
	H_RUNID=$(h__new_runid) || {
		echo "[$H_TEST] FAIL: cannot pick a free run id" >&2
		exit 1
	}
	H_LOGDIR="${TMPDIR:-/tmp}/gwit-$H_RUNID"
	H__STATE="$H_LOGDIR/.state"
fi
if ((!H_ATTACHED)); then
	mkdir -p "$H__STATE/hosts" "$H__STATE/procs"
	chmod 0755 "$H_LOGDIR"
	echo "$H_RUNID" >"$H__STATE/runid"
	# Owner = this shell (pid and start time), so `reap` spares live runs.
	H__OWNER=$(h__proc_stat "$H__MAIN_PID")
	echo "$H__MAIN_PID ${H__OWNER#* }" >"$H__STATE/owner"
fi
if [[ -n ${GW_HARNESS_RUNID_FILE:-} ]]; then
	printf '%s %s\n' "$H_RUNID" "$H_LOGDIR" >"$GW_HARNESS_RUNID_FILE"
fi

set -o errtrace
trap 'h__on_err $? "$BASH_COMMAND"' ERR
trap 'h__on_exit' EXIT
trap 'h__on_signal INT 130' INT
trap 'h__on_signal TERM 143' TERM
trap 'h__on_signal HUP 129' HUP
if ((H_ATTACHED)); then
	[[ -n ${GW_HARNESS_QUIET:-} ]] || h_log "attached to run $H_RUNID in $H_LOGDIR"
else
	[[ -n ${GW_HARNESS_QUIET:-} ]] || h_log "run $H_RUNID, logs in $H_LOGDIR"
fi
