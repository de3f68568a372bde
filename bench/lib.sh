# shellcheck shell=bash
# lib.sh - shared helpers of the bench/ scripts (throughput, scale).
#
# Source it from a script running under `set -euo pipefail`, after the
# script has parsed --help (sourcing starts a harness run: run id, log
# directory, teardown traps; see tests/integration/lib/harness.sh).
#
#   b_median N...                  median of the numbers (mean of the middle two)
#   b_ratio A B                    A / B with 2 decimals, "n/a" when B is 0 or empty
#   b_fmt N [DECIMALS]             a number rounded (default 0 decimals)
#   b_machine                      one line: date, nproc, CPU model, kernel, load
#   b_machine_json                 the same as a JSON object
#   b_gwd_bin                      the gwd binary (GWD_BIN, else $GW_BUILD_DIR/bin/gwd)
#   b_impl_up IMPL HOST IFNAME     start gwd or wireguard-go (IMPL gwd|wggo) with
#                                  quiet logging, wait for its socket and TUN
#   b_rss_kib PID                  VmRSS of PID in KiB
#   b_cpu_s PID                    CPU seconds (user + system) PID has used, 0 if gone
#   b_now_s                        seconds since the epoch, microsecond precision
#   b_elapsed T0                   seconds since T0 (from b_now_s), 3 decimals
#
# Benchmarks default to the Release build in build-bench (GW_BUILD_DIR
# overrides it); measuring a debug or sanitizer build is rarely meant.

B_SOURCE_DIR=${GW_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
export GW_SOURCE_DIR=$B_SOURCE_DIR
export GW_BUILD_DIR=${GW_BUILD_DIR:-$B_SOURCE_DIR/build-bench}
# Benchmarks do not kill daemons in a hurry; shorter grace keeps teardown quick.
export H_KILL_GRACE=${H_KILL_GRACE:-3}

# shellcheck source-path=SCRIPTDIR source=../tests/integration/lib/harness.sh
. "$B_SOURCE_DIR/tests/integration/lib/harness.sh"

b_median() {
	printf '%s\n' "$@" | sort -g | awk '
		{ v[NR] = $1 }
		END {
			if (NR == 0) { print ""; exit }
			if (NR % 2) print v[(NR + 1) / 2]
			else print (v[NR / 2] + v[NR / 2 + 1]) / 2
		}'
}

b_ratio() {
	awk -v a="${1:-}" -v b="${2:-}" 'BEGIN {
		if (a == "" || b == "" || b + 0 == 0) print "n/a"
		else printf "%.2f\n", a / b
	}'
}

b_fmt() {
	awk -v a="${1:-}" -v d="${2:-0}" 'BEGIN {
		if (a == "") print "n/a"
		else printf "%.*f\n", d, a
	}'
}

b__cpu_model() {
	local m
	m=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
	echo "${m:-unknown}"
}

# The load average matters: on a shared machine other work skews every figure.
b_machine() {
	printf '%s, %s CPUs (%s), kernel %s, load %s\n' "$(date -u '+%F %T UTC')" "$(nproc)" \
		"$(b__cpu_model)" "$(uname -r)" "$(cut -d' ' -f1-3 /proc/loadavg)"
}

b_machine_json() {
	jq -cn --arg date "$(date -u '+%FT%TZ')" --argjson nproc "$(nproc)" \
		--arg cpu "$(b__cpu_model)" --arg kernel "$(uname -r)" \
		--arg load "$(cut -d' ' -f1-3 /proc/loadavg)" \
		'{date: $date, nproc: $nproc, cpu: $cpu, kernel: $kernel, loadavg: $load}'
}

b_gwd_bin() {
	local bin=${GWD_BIN:-$GW_BUILD_DIR/bin/gwd}
	bin=$(command -v "$bin" 2>/dev/null) ||
		h_fail "no gwd at ${GWD_BIN:-$GW_BUILD_DIR/bin/gwd}: build it" \
			"(cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release && cmake --build build-bench)" \
			"or set GWD_BIN / GW_BUILD_DIR"
	echo "$bin"
}

# Logging is turned down: verbose logs would cost the daemons time.
b_impl_up() {
	local impl=$1 host=$2 ifn=$3 gwd
	case $impl in
	gwd)
		gwd=$(b_gwd_bin)
		h_wg_up "$host" "$ifn" env GWD_LOG_LEVEL=warning "$gwd"
		;;
	wggo) h_wg_up "$host" "$ifn" env LOG_LEVEL=error wireguard-go ;;
	*) h_fail "b_impl_up: gwd or wggo, not '$impl'" ;;
	esac
}

b_rss_kib() {
	local v
	v=$(awk '$1 == "VmRSS:" { print $2 }' "/proc/$1/status" 2>/dev/null) ||
		h_fail "cannot read /proc/$1/status"
	[[ -n $v ]] || h_fail "no VmRSS for pid $1"
	echo "$v"
}

b_cpu_s() {
	local s f
	read -r s 2>/dev/null <"/proc/$1/stat" || {
		echo 0
		return
	}
	s=${s##*) }
	read -r -a f <<<"$s"
	# Fields 14 and 15 of /proc/PID/stat (utime, stime), in clock ticks.
	awk -v u="${f[11]}" -v k="${f[12]}" -v hz="$(getconf CLK_TCK)" \
		'BEGIN { printf "%.3f\n", (u + k) / hz }'
}

b_now_s() {
	echo "${EPOCHREALTIME/,/.}"
}

b_elapsed() {
	awk -v t0="$1" -v t1="$(b_now_s)" 'BEGIN { printf "%.3f\n", t1 - t0 }'
}
