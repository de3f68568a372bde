# shellcheck shell=bash
# cluster.sh - N-node syncd clusters in network namespaces, for the syncd
# acceptance tests (test_syncd_*.sh) and bench/sync. Source it after
# harness.sh.
#
# Topology of `c_lab N`: one namespace per node, n1..nN, each attached to the
# bridge "sync" with eth0, running gwd (interface $(c_if I)) and syncd. Node I
# has 203.0.113.(I+1)/24 and 2001:db8:3::(I+1)/64 (gateways count from .2 in
# docs/testing.md). Its sync address ([Member] Address) is IPv4, except the
# nodes listed in C_V6_NODES (default: 3), which sync over IPv6, so both
# families are exercised. Ports: PUB on C_PORT (7400), ROUTER on C_PORT + 1.
#
# Everything machine-wide is unique per run: interfaces (so UAPI sockets)
# through h_ifname, control sockets, state directories and configs live in
# $H_LOGDIR/nI/. The cluster name is the run id.
#
#   c_require                      fail unless syncd, gwctl, gwd and the tools exist
#   c_lab N                        hosts, bridge, addresses, Curve keys, configs, gwd
#                                  on every node (no syncd yet)
#   c_node I                       one node's namespace nI, sync link, Curve key pair
#                                  and gwd (c_lab does 1..N; more for outsiders)
#   c_conf I [MEMBERS...]          (re)write node I's cluster.conf listing MEMBERS
#                                  (default 1..N); C_CONF_EXTRA adds [Cluster] lines
#   c_conf_other DIR ID MEMBERS... a config in DIR for a node calling itself ID
#                                  with a Curve key pair the cluster does not know
#   c_syncd_up I [NAME [HOST]]     spawn syncd -f for node I (process name NAME,
#                                  default syncdI), wait until its control socket
#                                  answers; I may be a c_conf_other DIR (in HOST)
#   c_syncd_kill I [SIG]           signal node I's syncd (default TERM) and wait
#   c_ctl I ARGS...                gwctl -c node I's config ARGS (host namespace: the
#                                  control socket is a path); I may be a DIR
#   c_synced I                     predicate: node I reports synced
#   c_wait_synced SECS I...        bounded wait until all listed nodes are synced
#   c_status I                     gwctl --json status of node I
#   c_caught_up I...               predicate: synced, every other member reachable,
#                                  no lag, nothing behind
#   c_rejected I                   its rejected_messages
#   c_peers I                      `wg show IF peers` of node I, sorted
#   c_peer_count I                 number of peers in gwd on node I
#   c_showconf I                   node I's `wg showconf` normalised: one "PUB key=value"
#                                  line per peer setting, sorted; the [Interface]
#                                  section (node-local) left out
#   c_list I                       `gwctl --json peer list` of node I, sorted by key,
#                                  one compact object per line
#   c_state I                      c_showconf and c_list together: what must be equal
#   c_converged I...               predicate: the listed nodes (default all) have
#                                  identical c_state; prints the first difference
#   c_wait_converged SECS [I...]   bounded wait for c_converged
#   c_has_peer I PUB               predicate: PUB is in node I's gwd
#   c_lacks_peer I PUB             predicate: PUB is not in node I's gwd
#   c_partition I / c_heal I       nftables in node I's namespace drops / stops dropping
#                                  every TCP packet to or from the sync ports, both ways
#   c_partition_drops I            packets the partition rule of node I dropped
#   c_keys N                       N random WireGuard public keys (base64), one a line
#   c_hb_watch NAME OUT            spawn (as NAMEI, in n2 with node 1's or 2's keys) a
#                                  subscriber to each node I's stream that logs its
#                                  Heartbeats to OUT.I; they stop when OUT.stop exists
#   c_hb_gaps OUT I FROM TO        "max p99 n": gaps in ms from each of node I's
#                                  heartbeat stamps in [FROM, TO] (unix ms) to its next
#   c_tool ARGS...                 python3 helper (keys, inject, uapi-watch, ...), below
#
# Names: c_dir I, c_conf_path I, c_if I (interface), c_addr4 I, c_addr6 I,
# c_sync_addr I. Node I's files: $(c_dir I)/{cluster.conf,curve.secret,
# curve.public,state/,ctl.sock}.
# Variables: C_N, C_NAME, C_PORT, C_SYNCD, C_GWCTL, C_HB_MS, C_DEAD_MS;
# C_GWD_ARGS: extra gwd options (word-split), e.g. "--metrics 127.0.0.1:9586".

C_SYNCD=${SYNCD_BIN:-$H_BUILD_DIR/bin/syncd}
C_GWCTL=${GWCTL_BIN:-$H_BUILD_DIR/bin/gwctl}
C_PORT=${C_PORT:-7400}
C_HB_MS=${C_HB_MS:-50}
C_DEAD_MS=${C_DEAD_MS:-500}
C_V6_NODES=${C_V6_NODES:-3}
C_CONF_EXTRA=${C_CONF_EXTRA:-}
C_NAME=$H_RUNID
C_N=0
C_TOOL="$H_LOGDIR/cluster_tool.py"

c_require() {
	h_require_cmd ip wg jq nft python3
	local b
	for b in "$C_SYNCD" "$C_GWCTL" "$H_BUILD_DIR/bin/gwd"; do
		[[ -x $b ]] || h_fail "no $b (build first)"
	done
}

c_dir() {
	echo "$H_LOGDIR/n$1"
}

# Node I's config, or DIR/cluster.conf for a directory (c_conf_other).
c_conf_path() {
	if [[ $1 == */* ]]; then
		echo "$1/cluster.conf"
	else
		echo "$H_LOGDIR/n$1/cluster.conf"
	fi
}

c_if() {
	h_ifname "n$1"
}

c_addr4() {
	echo "203.0.113.$(($1 + 1))"
}

c_addr6() {
	echo "2001:db8:3::$(($1 + 1))"
}

c__is_v6() {
	[[ " $C_V6_NODES " == *" $1 "* ]]
}

# Node I's [Member] Address.
c_sync_addr() {
	if c__is_v6 "$1"; then
		echo "[$(c_addr6 "$1")]:$C_PORT"
	else
		echo "$(c_addr4 "$1"):$C_PORT"
	fi
}

# Node I's host address on its sync link, in the family its Address uses.
c_host_addr() {
	if c__is_v6 "$1"; then c_addr6 "$1"; else c_addr4 "$1"; fi
}

c__curve_pub() {
	cat "$(c_dir "$1")/curve.public"
}

# c__conf_write FILE DIR ID MEMBERS...: the config of node ID whose key pair,
# state and control socket are in DIR; every other member with the key of
# the cluster's node of that id.
c__conf_write() {
	local f=$1 d=$2 id=$3 m key
	shift 3
	{
		echo "# node $id of the test cluster $C_NAME"
		echo "[Cluster]"
		echo "Name = $C_NAME"
		echo "NodeId = $id"
		echo "Interface = $(c_if "$id")"
		echo "StateDir = $d/state"
		echo "ControlSocket = $d/ctl.sock"
		echo "CurveSecretKeyFile = $d/curve.secret"
		echo "HeartbeatMs = $C_HB_MS"
		echo "PeerDeadMs = $C_DEAD_MS"
		[[ -z $C_CONF_EXTRA ]] || printf '%s\n' "$C_CONF_EXTRA"
		for m in "$@"; do
			if ((m == id)); then key=$(<"$d/curve.public"); else key=$(c__curve_pub "$m"); fi
			echo
			echo "[Member]"
			echo "NodeId = $m"
			echo "Address = $(c_sync_addr "$m")"
			echo "CurvePublicKey = $key"
		done
	} >"$f"
}

# c_conf I [MEMBERS...]: node I's config; every member listed with its own key.
c_conf() {
	local i=$1
	shift
	local members=("$@")
	((${#members[@]})) || mapfile -t members < <(seq 1 "$C_N")
	c__conf_write "$(c_conf_path "$i")" "$(c_dir "$i")" "$i" "${members[@]}"
}

# c_conf_other DIR ID MEMBERS...: DIR/cluster.conf for another node calling
# itself ID, with a Curve key pair of its own (created in DIR) that the
# cluster does not know, its own state and control socket in DIR.
c_conf_other() {
	local d=$1 id=$2
	shift 2
	mkdir -p "$d"
	[[ -f $d/curve.secret ]] ||
		"$C_GWCTL" genkey --curve --out "$d/curve" >/dev/null || h_fail "gwctl genkey --curve failed"
	c__conf_write "$d/cluster.conf" "$d" "$id" "$@"
}

# c_node I: namespace, sync link, Curve keys and gwd of node I.
c_node() {
	local i=$1 d gwd_args
	d=$(c_dir "$i")
	mkdir -p "$d"
	h_host "n$i"
	h_attach "n$i" sync eth0
	h_addr "n$i" eth0 "$(c_addr4 "$i")/24"
	h_addr "n$i" eth0 "$(c_addr6 "$i")/64"
	"$C_GWCTL" genkey --curve --out "$d/curve" >/dev/null || h_fail "gwctl genkey --curve failed"
	read -r -a gwd_args <<<"${C_GWD_ARGS:-}"
	h_gwd_up "n$i" "$(c_if "$i")" "${gwd_args[@]}"
}

c_lab() {
	local n=$1 i
	C_N=$n
	h_bridge sync
	for ((i = 1; i <= n; i++)); do
		c_node "$i"
	done
	for ((i = 1; i <= n; i++)); do
		c_conf "$i"
	done
	for ((i = 2; i <= n; i++)); do
		h_wait_ping n1 "$(c_host_addr "$i")" 5
	done
}

c_ctl() {
	local i=$1
	shift
	"$C_GWCTL" -c "$(c_conf_path "$i")" "$@"
}

c_status() {
	c_ctl "$1" --json --timeout 2000 status
}

c_synced() {
	local s
	s=$(c_status "$1") || return 1
	[[ $(jq -r .synced <<<"$s") == true ]]
}

c_wait_synced() {
	local secs=$1 i
	shift
	for i in "$@"; do
		h_wait_for "$secs" "node $i synced" c_synced "$i"
	done
}

# c_caught_up I...: each listed node is synced and reaches every other member
# with no lag and nothing behind.
c_caught_up() {
	local i s
	for i in "$@"; do
		s=$(c_status "$i") || return 1
		jq -e '.synced and ([.members[] | select(.self | not)
			| .reachable and .lag == 0 and .behind == 0] | all)' <<<"$s" >/dev/null || {
			echo "node $i: $s"
			return 1
		}
	done
}

c_rejected() {
	local s
	s=$(c_status "$1") || h_fail "gwctl status on node $1 failed"
	jq -r '.rejected_messages // 0' <<<"$s"
}

c__ctl_answers() {
	h_alive "$2" || h_fail "$2 exited: $(tail -n 5 "$(h_log_of "$2")")"
	c_ctl "$1" --timeout 1000 status >/dev/null 2>&1
}

# c_syncd_up I [NAME [HOST]]: I is a node number or a c_conf_other DIR (then
# HOST is needed).
c_syncd_up() {
	local i=$1 name=${2:-syncd$1} host=${3:-n$1}
	h_spawn "$host" "$name" "$C_SYNCD" -f -c "$(c_conf_path "$i")"
	h_wait_for 10 "syncd $name answering on its control socket" c__ctl_answers "$i" "$name"
}

c_syncd_kill() {
	h_kill "syncd$1" "${2:-TERM}"
}

c_peers() {
	h_wg "n$1" show "$(c_if "$1")" peers | sort
}

c_peer_count() {
	local out
	out=$(h_wg "n$1" show "$(c_if "$1")" peers) || return 1
	grep -c . <<<"$out" || true
}

c_has_peer() {
	local out
	out=$(h_wg "n$1" show "$(c_if "$1")" peers) || return 1
	grep -qxF -- "$2" <<<"$out"
}

c_lacks_peer() {
	local out
	out=$(h_wg "n$1" show "$(c_if "$1")" peers) || return 1
	! grep -qxF -- "$2" <<<"$out"
}

# Peers only: the interface (private key, port) is node-local by design.
c_showconf() {
	local out
	out=$(h_wg "n$1" showconf "$(c_if "$1")") || return 1
	awk '
	/^[[:space:]]*(#|$)/ { next }
	/^\[/ { peer = ($0 ~ /^\[Peer\]/); pub = ""; n = 0; next }
	!peer { next }
	{
		k = $0; sub(/[[:space:]]*=.*/, "", k); gsub(/[[:space:]]/, "", k)
		v = $0; sub(/^[^=]*=[[:space:]]*/, "", v); gsub(/[[:space:]]/, "", v)
		if (k == "PublicKey") {
			pub = v
			for (j = 1; j <= n; j++) print pub " " held[j]
			n = 0
			next
		}
		c = split(v, parts, ",")
		for (j = 1; j <= c; j++) {
			if (pub == "") held[++n] = k "=" parts[j]
			else print pub " " k "=" parts[j]
		}
	}' <<<"$out" | LC_ALL=C sort
}

c_list() {
	local out
	out=$(c_ctl "$1" --json --timeout 5000 peer list) || return 1
	jq -c 'sort_by(.public_key) | .[]' <<<"$out"
}

c_state() {
	c_showconf "$1" || return 1
	echo "--"
	c_list "$1"
}

c_converged() {
	local nodes=("$@") i ref cur
	((${#nodes[@]})) || mapfile -t nodes < <(seq 1 "$C_N")
	ref=$(c_state "${nodes[0]}") || return 1
	for i in "${nodes[@]:1}"; do
		cur=$(c_state "$i") || return 1
		if [[ $cur != "$ref" ]]; then
			echo "node $i differs from node ${nodes[0]}:"
			diff <(echo "$ref") <(echo "$cur") | head -n 10
			return 1
		fi
	done
}

c_wait_converged() {
	local secs=$1
	shift
	h_wait_for "$secs" "nodes ${*:-1..$C_N} converged (showconf and peer list)" c_converged "$@"
}

# Drop every TCP packet from or to a sync port, in both directions, inside
# node I's namespace: its own connections to the others' ports and theirs to
# its ports alike.
c_partition() {
	local p1=$C_PORT p2=$((C_PORT + 1))
	h_exec "n$1" nft -f - <<EOF || h_fail "nft partition rule on node $1"
table inet gwit_partition {
	chain in {
		type filter hook input priority 0; policy accept;
		tcp dport { $p1, $p2 } counter drop
		tcp sport { $p1, $p2 } counter drop
	}
	chain out {
		type filter hook output priority 0; policy accept;
		tcp dport { $p1, $p2 } counter drop
		tcp sport { $p1, $p2 } counter drop
	}
}
EOF
	h_log "node $1 partitioned (nftables drops TCP ports $p1, $p2 both ways)"
}

c_heal() {
	h_exec "n$1" nft delete table inet gwit_partition || h_fail "nft delete on node $1"
	h_log "node $1 healed"
}

# Packets the partition rule dropped so far on node I (proves it bit).
c_partition_drops() {
	h_exec "n$1" nft list table inet gwit_partition 2>/dev/null |
		awk '/drop/ { for (i = 1; i < NF; i++) if ($i == "packets") s += $(i + 1) } END { print s + 0 }'
}

c_keys() {
	c_tool keys "$1"
}

c_tool() {
	python3 "$C_TOOL" "$@"
}

c_hb_watch() {
	local name=$1 out=$2 i k
	rm -f "$out.stop"
	for ((i = 1; i <= C_N; i++)); do
		k=$((i == 2 ? 1 : 2)) # a node's ZAP handler does not admit its own key
		h_spawn n2 "$name$i" python3 "$C_TOOL" hb-watch \
			--endpoint "tcp://$(c_host_addr "$i" | sed 's/.*:.*/[&]/'):$C_PORT" \
			--server-key="$(c__curve_pub "$i")" --public="$(c__curve_pub "$k")" \
			--secret="$(<"$(c_dir "$k")/curve.secret")" --out "$out.$i" --stop "$out.stop"
	done
}

c_hb_gaps() {
	awk -v n="$2" -v a="$3" -v b="$4" '$1 == n {
		if (k++ && p >= a && p <= b) print $2 - p; p = $2 }' "$1.$2" | sort -n | awk '{ v[NR] = $1 } END {
		if (NR == 0) { print "n/a n/a 0"; exit }
		r = int(0.99 * NR + 0.999999); print v[NR], v[r], NR }'
}

# ------------------------------------------------------------------ python helper
# Standard library only; libzmq through ctypes (pyzmq is not a dependency).
cat >"$C_TOOL" <<'PY'
"""cluster_tool.py - helpers of tests/integration/lib/cluster.sh.

  keys N                  N random 32-byte public keys, base64, one a line
  inject --endpoint tcp://A:P --server-key Z85 --public Z85 --secret Z85
         --cluster NAME --origin N --frames SPEC[,SPEC...] [--probe ORIGIN]
                          connect a CurveZMQ DEALER (a member's or any key
                          pair) to a node's ROUTER and send the frames named
                          by SPEC (below), one message each. With --probe,
                          first and last send a RepairRequest(ORIGIN, 1, 1)
                          and wait for its answer: prints "probe-before
                          ok|none" and "probe-after ok|none".
  raw --addr A --port P   plain TCP: random garbage, then a ZMTP greeting with
                          the NULL mechanism followed by garbage
  uapi-watch --sock PATH --keys FILE --out FILE [--interval S] [--timeout S]
                          poll gwd's UAPI until every key in FILE is present;
                          write "KEY MONOTONIC_NS" when each first appears
  ctl-watch --sock PATH --keys FILE --out FILE [--interval S] [--timeout S]
                          the same through syncd's control socket (CtlRequest
                          peer_show of the next keys not yet seen, in order)
  acked-writer --gwctl BIN --config C --keys FILE --out FILE [--remove]
               [--ip-base B] [--pause S] [--timeout-ms MS]
                          gwctl peer add (allowed IP 198.18.(B + n / 250).
                          (n % 250 + 1)/32 for the n-th key) or remove each
                          key in turn; "KEY MONOTONIC_NS STATUS" lines for
                          each exit 0 in OUT, for the others in OUT.fail
  hb-watch --endpoint tcp://A:P --server-key Z85 --public Z85 --secret Z85
           --out FILE [--stop FILE] [--timeout S]
                          subscribe (CurveZMQ, a member's key pair) to a
                          node's PUB socket and write "ORIGIN SENT_UNIX_MS
                          RECV_UNIX_MS" for every Heartbeat until FILE --stop
                          exists or the timeout passes. SENT_UNIX_MS is the
                          sender's stamp: gaps between a node's stamps are its
                          own stalls, whatever delays this process

Frame SPECs (Envelope fields per proto/gwcluster.proto):
  garbage      64 random bytes          truncated    a valid envelope cut short
  nobody       envelope without a body  version      version 99
  cluster      another cluster's name   origin       origin not the sender
  update-req   an Update on the request channel (valid otherwise)
  repair-other RepairRequest for an origin that is not the receiver
  chunk-req    a SnapshotChunk on the request channel
  multipart    two frames in one message
"""
import argparse
import base64
import ctypes
import os
import socket
import subprocess
import sys
import time


def varint(n):
    if n < 0:
        n += 1 << 64
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def fld_v(tag, n):
    return varint(tag << 3) + varint(n)


def fld_b(tag, b):
    if isinstance(b, str):
        b = b.encode()
    return varint(tag << 3 | 2) + varint(len(b)) + b


def parse(buf):
    """Top-level fields: {tag: [value, ...]} (varints as int, others bytes)."""
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


def read_varint(buf, i):
    n = s = 0
    while True:
        b = buf[i]
        i += 1
        n |= (b & 0x7F) << s
        s += 7
        if not b & 0x80:
            return n, i


def envelope(cluster, origin, body_tag=None, body=b"", version=1, seq=None):
    e = fld_v(1, version) + fld_v(2, origin) + fld_b(3, cluster)
    if seq is not None:
        e += fld_v(4, seq)
    if body_tag is not None:
        e += fld_b(body_tag, body)
    return e


def repair_request(origin, a, b):
    return fld_v(1, origin) + fld_v(2, a) + fld_v(3, b)


def frames(spec, cluster, origin):
    rr = repair_request(origin, 1, 1)
    rec = fld_v(1, 1) + fld_v(2, origin) + fld_b(10, fld_b(1, os.urandom(32)) +
                                             fld_b(3, "198.18.255.1/32"))
    ok = envelope(cluster, origin, 14, rr)
    table = {
        "garbage": [os.urandom(64)],
        "truncated": [ok[:-3]],
        "nobody": [envelope(cluster, origin)],
        "version": [envelope(cluster, origin, 14, rr, version=99)],
        "cluster": [envelope(cluster + "x", origin, 14, rr)],
        "origin": [envelope(cluster, 1 if origin != 1 else 2, 14, rr)],
        "update-req": [envelope(cluster, origin, 10, fld_b(1, rec), seq=1)],
        "repair-other": [envelope(cluster, origin, 14, repair_request(origin, 1, 1))],
        "chunk-req": [envelope(cluster, origin, 13, fld_v(1, 7) + fld_v(4, 1))],
        "multipart": [ok, ok],
    }
    return table[spec]


class Zmq:
    SUB, REQ, DEALER, SUBSCRIBE, LINGER, RCVTIMEO, SNDTIMEO, IPV6 = 2, 3, 5, 6, 17, 27, 28, 42
    CURVE_PUBLICKEY, CURVE_SECRETKEY, CURVE_SERVERKEY = 48, 49, 50
    SNDMORE = 2

    def __init__(self):
        z = ctypes.CDLL("libzmq.so.5", use_errno=True)
        z.zmq_ctx_new.restype = ctypes.c_void_p
        z.zmq_socket.restype = ctypes.c_void_p
        z.zmq_socket.argtypes = [ctypes.c_void_p, ctypes.c_int]
        z.zmq_setsockopt.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p,
                                     ctypes.c_size_t]
        z.zmq_connect.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
        z.zmq_send.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_int]
        z.zmq_recv.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        z.zmq_close.argtypes = [ctypes.c_void_p]
        z.zmq_ctx_term.argtypes = [ctypes.c_void_p]
        self.z = z
        self.ctx = z.zmq_ctx_new()

    def opt_int(self, s, opt, v):
        x = ctypes.c_int(v)
        if self.z.zmq_setsockopt(s, opt, ctypes.byref(x), ctypes.sizeof(x)):
            raise OSError(ctypes.get_errno(), "zmq_setsockopt %d" % opt)

    def opt_bytes(self, s, opt, v):
        b = ctypes.create_string_buffer(v, len(v))
        if self.z.zmq_setsockopt(s, opt, b, len(v)):
            raise OSError(ctypes.get_errno(), "zmq_setsockopt %d" % opt)

    def dealer(self, endpoint, server, public, secret):
        s = self.z.zmq_socket(self.ctx, self.DEALER)
        self.opt_int(s, self.LINGER, 2000)
        self.opt_int(s, self.SNDTIMEO, 2000)
        self.opt_bytes(s, self.CURVE_SERVERKEY, server.encode())
        self.opt_bytes(s, self.CURVE_PUBLICKEY, public.encode())
        self.opt_bytes(s, self.CURVE_SECRETKEY, secret.encode())
        if self.z.zmq_connect(s, endpoint.encode()):
            raise OSError(ctypes.get_errno(), "zmq_connect")
        return s

    def sub(self, endpoint, server, public, secret):
        s = self.z.zmq_socket(self.ctx, self.SUB)
        self.opt_int(s, self.LINGER, 0)
        self.opt_int(s, self.IPV6, 1)
        self.opt_bytes(s, self.SUBSCRIBE, b"")
        self.opt_bytes(s, self.CURVE_SERVERKEY, server.encode())
        self.opt_bytes(s, self.CURVE_PUBLICKEY, public.encode())
        self.opt_bytes(s, self.CURVE_SECRETKEY, secret.encode())
        if self.z.zmq_connect(s, endpoint.encode()):
            raise OSError(ctypes.get_errno(), "zmq_connect")
        return s

    def req(self, endpoint):
        s = self.z.zmq_socket(self.ctx, self.REQ)
        self.opt_int(s, self.LINGER, 0)
        self.opt_int(s, self.SNDTIMEO, 1000)
        if self.z.zmq_connect(s, endpoint.encode()):
            raise OSError(ctypes.get_errno(), "zmq_connect")
        return s

    def send(self, s, data, more=False):
        """False when nothing could take it (no authenticated connection)."""
        return self.z.zmq_send(s, data, len(data), self.SNDMORE if more else 0) >= 0

    def recv(self, s, timeout_ms):
        self.opt_int(s, self.RCVTIMEO, timeout_ms)
        buf = ctypes.create_string_buffer(1 << 20)
        n = self.z.zmq_recv(s, buf, len(buf), 0)
        return None if n < 0 else buf.raw[:min(n, len(buf))]

    def close(self, s):
        self.z.zmq_close(s)
        self.z.zmq_ctx_term(self.ctx)


def probe(z, s, a, label):
    """A RepairRequest for the receiver's first update: any answer proves
    the channel is authenticated and served."""
    if not z.send(s, envelope(a.cluster, a.origin, 14, repair_request(a.probe, 1, 1))):
        print("%s none" % label)
        return False
    deadline = time.monotonic() + a.wait
    while time.monotonic() < deadline:
        m = z.recv(s, int(max(1, (deadline - time.monotonic()) * 1000)))
        if m is None:
            break
        f = parse(m)
        if f.get(2, [None])[0] == a.probe and (10 in f or 15 in f):
            print("%s ok" % label)
            return True
    print("%s none" % label)
    return False


def cmd_inject(a):
    z = Zmq()
    s = z.dealer(a.endpoint, a.server_key, a.public, a.secret)
    if a.probe:
        probe(z, s, a, "probe-before")
    sent = 0
    for spec in a.frames.split(","):
        parts = frames(spec, a.cluster, a.origin)
        ok = True
        for k, p in enumerate(parts):
            ok = z.send(s, p, more=k + 1 < len(parts)) and ok
        sent += ok
    print("sent %d" % sent)
    if a.probe:
        probe(z, s, a, "probe-after")
    else:
        time.sleep(a.wait)
    z.close(s)


def cmd_raw(a):
    """Plain TCP, no CURVE: whatever syncd does, it must not take this."""
    greeting = (b"\xff" + b"\0" * 8 + b"\x7f" + b"\x03\x00" + b"NULL".ljust(20, b"\0") +
                b"\0" + b"\0" * 31)
    for payload in (os.urandom(4096), greeting + os.urandom(512), b"\xff" * 64):
        c = socket.create_connection((a.addr, a.port), timeout=3)
        c.settimeout(2)
        try:
            c.sendall(payload)
            while c.recv(4096):
                pass
        except (socket.timeout, ConnectionResetError, BrokenPipeError):
            pass
        c.close()
    print("raw done")


def uapi_keys(path):
    c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    c.connect(path)
    c.sendall(b"get=1\n\n")
    buf = b""
    while not buf.endswith(b"\n\n"):
        d = c.recv(1 << 20)
        if not d:
            break
        buf += d
    c.close()
    out = set()
    for line in buf.split(b"\n"):
        if line.startswith(b"public_key="):
            out.add(line[11:].decode())
    return out


def cmd_uapi_watch(a):
    want = {}
    for line in open(a.keys):
        k = line.strip()
        if k:
            want[base64.b64decode(k).hex()] = k
    seen = {}
    deadline = time.monotonic() + a.timeout
    with open(a.out, "w") as out:
        while len(seen) < len(want) and time.monotonic() < deadline:
            try:
                have = uapi_keys(a.sock)
            except OSError:
                have = set()
            t = time.monotonic_ns()
            for h in have:
                if h in want and h not in seen:
                    seen[h] = t
                    out.write("%s %d\n" % (want[h], t))
            out.flush()
            time.sleep(a.interval)
    return 0 if len(seen) == len(want) else 1


def cmd_ctl_watch(a):
    """Updates of one origin are applied in order, so keys written one after
    the other become visible in that order: ask only for the next few."""
    keys = [l.strip() for l in open(a.keys) if l.strip()]
    z = Zmq()
    s = z.req("ipc://" + a.sock)
    i = 0
    deadline = time.monotonic() + a.timeout
    with open(a.out, "w") as out:
        while i < len(keys) and time.monotonic() < deadline:
            progressed = True
            while progressed and i < len(keys):
                progressed = False
                req = fld_v(1, 1) + fld_b(13, base64.b64decode(keys[i]))
                if not z.send(s, req):
                    break
                m = z.recv(s, 2000)
                if m is None:  # a REQ without its answer is stuck: start over
                    z.z.zmq_close(s)
                    s = z.req("ipc://" + a.sock)
                    break
                if parse(m).get(1, [1])[0] == 0:
                    out.write("%s %d\n" % (keys[i], time.monotonic_ns()))
                    i += 1
                    progressed = True
            out.flush()
            time.sleep(a.interval)
    z.close(s)
    return 0 if i == len(keys) else 1


def cmd_hb_watch(a):
    z = Zmq()
    s = z.sub(a.endpoint, a.server_key, a.public, a.secret)
    z.opt_int(s, z.RCVTIMEO, 200)
    buf = ctypes.create_string_buffer(1 << 16)
    deadline = time.monotonic() + a.timeout
    with open(a.out, "w") as out:
        while time.monotonic() < deadline and not (a.stop and os.path.exists(a.stop)):
            n = z.z.zmq_recv(s, buf, len(buf), 0)
            if n < 0 or n > len(buf):
                continue  # timeout, or an update too large to be a heartbeat
            try:
                env = parse(buf.raw[:n])
                if 11 not in env:
                    continue
                hb = parse(env[11][0])
                out.write("%d %d %d\n" % (env[2][0], hb[1][0], time.time_ns() // 1000000))
            except (IndexError, KeyError, ValueError):
                continue
            out.flush()
    z.close(s)
    return 0


def cmd_acked_writer(a):
    keys = [l.strip() for l in open(a.keys) if l.strip()]
    with open(a.out, "w") as out, open(a.out + ".fail", "w") as fail:
        for n, k in enumerate(keys):
            if a.remove:
                args = ["peer", "remove", k]
            else:
                args = ["peer", "add", k, "allowed-ips",
                        "198.18.%d.%d/32" % (a.ip_base + n // 250, n % 250 + 1)]
            r = subprocess.run([a.gwctl, "-c", a.config, "--timeout", str(a.timeout_ms)] + args,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            t = time.monotonic_ns()
            f = out if r.returncode == 0 else fail
            f.write("%s %d %d %s\n" % (k, t, r.returncode, r.stderr.decode().strip()[:120]))
            f.flush()
            if a.pause:
                time.sleep(a.pause)
    return 0


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    k = sub.add_parser("keys")
    k.add_argument("n", type=int)
    i = sub.add_parser("inject")
    for o in ("--endpoint", "--server-key", "--public", "--secret", "--cluster", "--frames"):
        i.add_argument(o, required=o != "--frames", default="")
    i.add_argument("--origin", type=int, required=True)
    i.add_argument("--probe", type=int, default=0)
    i.add_argument("--wait", type=float, default=3.0)
    r = sub.add_parser("raw")
    r.add_argument("--addr", required=True)
    r.add_argument("--port", type=int, required=True)
    u = sub.add_parser("uapi-watch")
    u.add_argument("--sock", required=True)
    u.add_argument("--keys", required=True)
    u.add_argument("--out", required=True)
    u.add_argument("--interval", type=float, default=0.002)
    u.add_argument("--timeout", type=float, default=120)
    c = sub.add_parser("ctl-watch")
    c.add_argument("--sock", required=True)
    c.add_argument("--keys", required=True)
    c.add_argument("--out", required=True)
    c.add_argument("--interval", type=float, default=0.001)
    c.add_argument("--timeout", type=float, default=120)
    w = sub.add_parser("acked-writer")
    w.add_argument("--gwctl", required=True)
    w.add_argument("--config", required=True)
    w.add_argument("--keys", required=True)
    w.add_argument("--out", required=True)
    w.add_argument("--remove", action="store_true")
    w.add_argument("--pause", type=float, default=0)
    w.add_argument("--timeout-ms", type=int, default=3000)
    w.add_argument("--ip-base", type=int, default=0)
    h = sub.add_parser("hb-watch")
    for o in ("--endpoint", "--server-key", "--public", "--secret", "--out"):
        h.add_argument(o, required=True)
    h.add_argument("--stop", default="")
    h.add_argument("--timeout", type=float, default=3600)
    a = p.parse_args()
    if a.cmd == "keys":
        for _ in range(a.n):
            print(base64.b64encode(os.urandom(32)).decode())
        return 0
    return {"inject": cmd_inject, "raw": cmd_raw, "uapi-watch": cmd_uapi_watch,
            "ctl-watch": cmd_ctl_watch, "acked-writer": cmd_acked_writer,
            "hb-watch": cmd_hb_watch}[a.cmd](a) or 0


if __name__ == "__main__":
    sys.exit(main())
PY
