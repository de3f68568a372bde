#!/usr/bin/env bash
# syncd follows keepalived's notify FIFO itself (cluster.conf KeepalivedFifo)
# across what keepalived does to it, with the real keepalived: 2 gateways,
# gw1 master, gw2 backup, the client pinging through the VIP.
#
#   1. garbage written into gw2's FIFO (by root, next to keepalived) is
#      logged and ignored: syncd keeps running, role unchanged;
#   2. keepalived of gw2 dies (SIGKILL; the FIFO stays) while syncd runs:
#      syncd sees the end of file and opens it again, and the BACKUP of a
#      new keepalived reaches it;
#   3. keepalived of gw2 reloads (SIGHUP): syncd survives; keepalived 2.2.7
#      stops writing to the FIFO then (logged), so it is restarted;
#   4. gw1 is killed: gw2 takes over hitlessly (gap < 500 ms, the replicated
#      receiver index, no client initiation), which needs syncd to have
#      followed the new keepalived's FIFO, and gwd's claim comes within
#      F_MAX_CLAIM_MS (default 100) of keepalived's first advert as master.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib/harness.sh
. "${GW_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/integration/lib/harness.sh"
F_NOTIFY=direct
# shellcheck source-path=SCRIPTDIR source=lib/failover.sh
. "$H_SOURCE_DIR/tests/integration/lib/failover.sh"

h_require_root
F_EVENTS=()

role_of() {
	f_ctl "$1" --json --timeout 1000 role show 2>/dev/null | jq -r '.role // empty'
}

role_is() {
	[[ $(role_of "$1") == "$2" ]]
}

syncd_says() {
	grep -c -- "$2" "$(h_log_of "syncd$1")" || true
}

state_is() {
	[[ $(f_state "$1") == "$2" ]]
}

# count_at_least I TEXT N: syncd of gwI logged TEXT at least N times.
count_at_least() {
	(($(syncd_says "$1" "$2") >= $3))
}

# Processes of gwI holding its notify FIFO open, as "comm:pid:mode".
fifo_holders() {
	local p fd
	for p in $(ip netns pids "$(h_ns "gw$1")"); do
		for fd in /proc/"$p"/fd/*; do
			[[ $(readlink "$fd" 2>/dev/null) == "$(f_notify_fifo "$1")"* ]] || continue
			echo "$(cat "/proc/$p/comm"):$p:$(awk '/^flags/ { print $2 }' "/proc/$p/fdinfo/${fd##*/}")"
		done
	done | sort | tr '\n' ' '
}

keepalived_gone() {
	! ip netns pids "$(h_ns "gw$1")" | while read -r p; do
		[[ $(cat "/proc/$p/comm" 2>/dev/null) == keepalived ]] && echo "$p"
	done | grep -q .
}

f_start gwcluster 2
fifo=$(f_notify_fifo 2)
[[ -p $fifo ]] || h_fail "keepalived did not create $fifo"
h_assert_eq "$(role_of 2)" backup "gw2's role"
f_capture_start cap
f_ping_start ping

# 1. Garbage next to keepalived's lines.
bad0=$(syncd_says 2 "ignoring a line keepalived cannot have written")
printf 'garbage\nINSTANCE "VI_%s" master 1\n' "$H_RUNID" >"$fifo"
h_wait_for 5 "syncd of gw2 logging the garbage" count_at_least 2 \
	"ignoring a line keepalived cannot have written" $((bad0 + 2))
h_alive syncd2 || h_fail "syncd of gw2 died of garbage in its FIFO"
h_assert_eq "$(role_of 2)" backup "gw2's role after the garbage"
h_log "gw2: garbage in the FIFO logged and ignored"

# 2. keepalived dies (the FIFO stays) while syncd runs: syncd sees the end of
# the file and opens it again; the next keepalived's lines reach it.
opens0=$(syncd_says 2 "following keepalived's instance")
h_kill ka2 KILL
h_wait_for 5 "no keepalived left in gw2" keepalived_gone 2
[[ -p $fifo ]] || h_fail "the killed keepalived's FIFO is gone"
h_wait_for 5 "syncd of gw2 opening the FIFO again" count_at_least 2 \
	"following keepalived's instance" $((opens0 + 1))
restart_keepalived() {
	local backups0
	backups0=$(syncd_says 2 "keepalived: INSTANCE VI_$H_RUNID -> BACKUP")
	f_keepalived_up 2
	h_wait_for 20 "a BACKUP from the new keepalived reaching syncd" count_at_least 2 \
		"keepalived: INSTANCE VI_$H_RUNID -> BACKUP" $((backups0 + 1))
	f_wait_eligible 30
	h_alive syncd2 || h_fail "syncd of gw2 exited"
}
restart_keepalived
h_log "gw2's keepalived restarted; syncd followed it: role $(role_of 2), FIFO held by $(fifo_holders 2)"

# 3. keepalived reloads (SIGHUP). keepalived 2.2.7 closes its notify FIFO on
# a reload and does not open it again (docs/config.md): syncd must survive
# that, and follows the next keepalived.
kill -HUP "$(h_pid ka2)"
sleep 3
h_alive ka2 || h_fail "keepalived of gw2 exited on SIGHUP"
h_alive syncd2 || h_fail "syncd of gw2 exited"
h_wait_for 10 "gw2 BACKUP after the reload" state_is 2 BACKUP
holders=$(fifo_holders 2)
h_log "gw2 reloaded: keepalived $(f_state 2), role $(role_of 2); FIFO held by: $holders"
if [[ $holders != *keepalived* ]]; then
	h_log "keepalived no longer writes to its notify FIFO after the reload: restarting it"
	h_kill ka2 TERM
	h_wait_for 5 "no keepalived left in gw2" keepalived_gone 2
	restart_keepalived
fi

# 4. The takeover goes through the restarted keepalived's FIFO.
f_hitless_failover cap ping
h_assert_eq "$F_NEW" 2 "the new master"
h_wait_for 5 "gw2's role master" role_is 2 master
f_ping_stop ping
f_capture_stop cap
f_check_events cap
read -r -a d < <(tail -n 1 "$H_LOGDIR/claim_delays" | sed 's/.*keepalived -> gwd claim \([0-9.]*\) ms.*/\1/')
h_assert_le "${d[0]}" "${F_MAX_CLAIM_MS:-100}" "ms from keepalived's first advert as master to gwd's claim"
h_log "syncd followed keepalived's FIFO through garbage, a reload and a restart; claim ${d[0]} ms after the transition"
