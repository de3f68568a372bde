#!/usr/bin/env bash
# The kill scenario of test_failover_kill2 with keepalived's state changes
# reaching syncd through ha-hooks/gwcluster-notify (keepalived's
# notify_fifo_script, one `gwctl role` per change) instead of syncd reading
# the notify FIFO itself (cluster.conf KeepalivedFifo, the lab's default):
# the fallback for operators who keep the hook keeps working. Same asserts
# as kill2: per failover a gap < 500 ms, the replicated receiver index with
# counters in the new owner's region, no client initiation; the TCP stream
# survives; no (receiver, counter) pair twice.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib/harness.sh
. "${GW_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/integration/lib/harness.sh"
F_NOTIFY=script
# shellcheck source-path=SCRIPTDIR source=lib/failover.sh
. "$H_SOURCE_DIR/tests/integration/lib/failover.sh"

h_require_root
f_kill_scenario "${F_IMPL:-gwcluster}" 2
