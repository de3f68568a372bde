#!/usr/bin/env bash
# Proves that the harness leaves nothing behind, however a test ends. Child
# test scripts build a lab (two hosts, a bridge, a veth, sleepers, a
# wireguard-go in the foreground, a daemonized wireguard-go that escapes the
# process group, a capture) and then end in one of these ways:
#
#   fail   `false` under set -e          exit 1, logs dumped
#   hfail  h_fail                        exit 1, logs kept with GW_KEEP_LOGS
#   term   SIGTERM during h_wait_for     exit 143
#   int    SIGINT during h_wait_for      exit 130
#   ok     h_teardown twice, then exit 0 (idempotent)
#   kill   SIGKILL during h_wait_for     no teardown possible: the leftovers
#          must be visible to the checks below, and `harness.sh reap` must
#          remove them
#
# After each child the parent checks: no namespace with the child's run id,
# no process the child started (by PID and by run id or marker on the command
# line), no link named or aliased with the run id in the host namespace or in
# any listed namespace, no UAPI socket of the run, no log directory (unless
# kept on purpose).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib/harness.sh
. "${GW_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/integration/lib/harness.sh"

h_require_root
h_require_cmd ip pgrep wireguard-go wg dumpcap env

HARNESS="$H_SOURCE_DIR/tests/integration/lib/harness.sh"
CHILD="$H_LOGDIR/child.sh"
CHILD_PIDS=()

cat >"$CHILD" <<'EOF'
set -euo pipefail
. "$HARNESS"
mode=$1 report=$2 marker=$3
h_host a
h_host b
h_bridge sw
h_attach a sw
h_attach b sw
h_link a b
h_addr a sw 192.0.2.1/24
h_addr b sw 192.0.2.2/24
h_addr a b 2001:db8:1::1/64
h_addr b a 2001:db8:1::2/64
h_wait_ping a 192.0.2.2 5
h_spawn a sleeper sh -c 'echo "daemon-says-$0"; sleep 1000; :' "$marker"
h_spawn b sleeper2 sleep 1000
wga=$(h_ifname w)
h_wggo_up a "$wga"
# Like a daemon started without -f: it leaves the spawned process group.
wgd=$(h_ifname d)
h_exec b wireguard-go "$wgd" >/dev/null 2>&1
h_wait_for 10 "daemonized wireguard-go socket" test -S "$H_WG_RUN_DIR/$wgd.sock"
h_capture_start a sw cap.pcapng
echo "pids $(h_pid sleeper) $(h_pid sleeper2) $(h_pid "$wga") $(h_pid capture-0)" \
	"$(pgrep -f "wireguard-go $wgd" | tr '\n' ' ')" >>"$report"
echo ready >>"$report"
case $mode in
fail) false ;;
hfail) h_fail "deliberate failure" ;;
term | int | kill) h_wait_for 120 "a condition that never holds" false ;;
ok)
	h_teardown
	h_teardown
	exit 0
	;;
esac
echo unreachable >>"$report"
EOF

# The child's "pid start" pairs would be lost with a SIGKILLed parent; make
# sure no child outlives this test and no SIGKILLed child's lab survives it.
cleanup_children() {
	local p
	for p in "${CHILD_PIDS[@]}"; do
		kill -KILL "$p" 2>/dev/null || true
	done
	bash "$HARNESS" reap >/dev/null 2>&1 || true
}
h_on_teardown cleanup_children

gone() {
	[[ ! -e /proc/$1 ]] || [[ $(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null) == Z ]]
}

# Print what is left of run $1 (marker $2, pids $3...): empty when clean.
leftovers() {
	local id=$1 marker=$2 p ns
	shift 2
	ip netns list | awk -v id="$id" 'index($1, id "-") == 1 { print "netns " $1 }'
	for p in "$@"; do
		gone "$p" || echo "process $p: $(tr '\0' ' ' <"/proc/$p/cmdline")"
	done
	pgrep -a -f "$id|$marker" | sed 's/^/process by name /' || true
	ip -o link | grep -F "$id" | sed 's/^/host link /' || true
	for ns in $(ip netns list | awk '{ print $1 }'); do
		ip -n "$ns" -o link 2>/dev/null | grep -F "$id" | sed "s/^/link in $ns /" || true
	done
	find "$H_WG_RUN_DIR" -maxdepth 1 -name "$id*" 2>/dev/null | sed 's/^/socket /'
}

# run_child MODE EXPECTED_RC [SIGNAL]: run one child, check it left nothing.
run_child() {
	local mode=$1 want_rc=$2 sig=${3:-} report="$H_LOGDIR/$1.report"
	local idf="$H_LOGDIR/$1.id" out="$H_LOGDIR/$1.out" marker="gwitmark$RANDOM$RANDOM"
	local pid rc=0 id dir left pids=()
	h_log "child '$mode'"
	: >"$report"
	# env resets SIGINT, which bash ignores in background jobs.
	HARNESS="$HARNESS" GW_HARNESS_RUNID_FILE="$idf" GW_KEEP_LOGS=${KEEP:-} \
		env --default-signal=INT,TERM bash "$CHILD" "$mode" "$report" "$marker" >"$out" 2>&1 &
	pid=$!
	CHILD_PIDS+=("$pid")
	if [[ -n $sig ]]; then
		h_wait_for 30 "child $mode to build its lab" grep -qx ready "$report"
		kill -s "$sig" "$pid"
	fi
	h_wait_for 60 "child $mode to exit" gone "$pid"
	wait "$pid" || rc=$?
	# Show what the child said when it ended otherwise than expected.
	[[ $rc == "$want_rc" ]] || sed "s/^/[child $mode] /" "$out" >&2
	h_assert_eq "$rc" "$want_rc" "exit status of child $mode"
	read -r id dir <"$idf"
	h_assert_match "$id" '^g[0-9a-f]{6}$' "run id of child $mode"
	grep -qx ready "$report" || { cat "$out" >&2; h_fail "child $mode did not build its lab"; }
	read -r -a pids <<<"$(sed -n 's/^pids //p' "$report")"
	h_assert_ge "${#pids[@]}" 5 "processes reported by child $mode"
	if [[ $mode == kill ]]; then
		left=$(leftovers "$id" "$marker" "${pids[@]}")
		h_assert_match "$left" "netns $id-a" "leftovers of a SIGKILLed child (checks can fail)"
		h_assert_match "$left" "socket $H_WG_RUN_DIR/${id}w.sock" "sockets of a SIGKILLed child"
		h_assert_match "$left" "process ${pids[0]}" "processes of a SIGKILLed child"
		bash "$HARNESS" reap >>"$out" 2>&1
		h_assert_match "$(cat "$out")" "reaping run $id" "reap of child $mode"
		h_assert_eq "$(test -d "$H__STATE" && echo alive)" alive "reap spares live runs"
	fi
	left=$(leftovers "$id" "$marker" "${pids[@]}")
	[[ -z $left ]] || { cat "$out" >&2; h_fail "child $mode left behind:"$'\n'"$left"; }
	if [[ -n ${KEEP:-} ]]; then
		h_assert_eq "$(test -f "$dir/sleeper.log" && echo kept)" kept "logs kept for $mode"
		rm -rf "$dir"
	else
		h_assert_eq "$(test -e "$dir" && echo "$dir")" "" "log directory of child $mode"
	fi
	grep -q unreachable "$report" && h_fail "child $mode went on after its failure"
	CHILD_OUT=$(cat "$out")
	CHILD_MARKER=$marker
}

run_child fail 1
h_assert_match "$CHILD_OUT" "last failing command: false" "failure report of child fail"
h_assert_match "$CHILD_OUT" "daemon-says-$CHILD_MARKER" "daemon log dumped by child fail"
h_assert_match "$CHILD_OUT" "addresses and routes" "topology dumped by child fail"

KEEP=1 run_child hfail 1
h_assert_match "$CHILD_OUT" "FAIL: deliberate failure" "failure report of child hfail"
h_assert_match "$CHILD_OUT" "logs kept in" "kept logs announced by child hfail"

run_child term 143 TERM
h_assert_match "$CHILD_OUT" "caught SIGTERM" "signal report of child term"

run_child int 130 INT
h_assert_match "$CHILD_OUT" "caught SIGINT" "signal report of child int"

run_child ok 0
if [[ $CHILD_OUT == *"daemon-says-$CHILD_MARKER"* ]]; then
	h_fail "child ok dumped daemon logs although it passed"
fi

run_child kill 137 KILL
