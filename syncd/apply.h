/* SPDX-License-Identifier: MIT */
/*
 * Applying the converged configuration to the local gwd through its UAPI
 * socket (/var/run/wireguard/IFNAME.sock) as a minimal diff: peers added,
 * removed, and changed fields only (preshared key, endpoint, keepalive,
 * allowed IPs with replace_allowed_ips). A peer whose config is unchanged is
 * not mentioned at all, so its sessions and counters are undisturbed; a peer
 * whose allowed IPs change keeps its sessions (update_only semantics).
 *
 * Endpoint hints are applied only to a peer gwd has no endpoint for: an
 * endpoint learnt by roaming is live state, not configuration.
 */
#ifndef SYNCD_APPLY_H
#define SYNCD_APPLY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gwcluster.pb-c.h"

struct syncd_apply_result {
	size_t added, removed, changed, unchanged;
	/*
	 * Desired entries left out: an invalid field (logged) or a second entry
	 * for the same public key (the last one in desired[] is used). A peer
	 * whose desired entry is invalid is left as gwd has it, never removed.
	 */
	size_t skipped;
};

/*
 * Reads gwd's current peers with get=1, computes the diff against desired
 * (the whole peer set, in any order; iface may be NULL: leave interface
 * settings alone) and sends it as one set=1 transaction. 0 (gwd now matches),
 * -ENOENT/-ECONNREFUSED (gwd is not running: retry later), -EPROTO (gwd
 * answered something unparseable) or the -errno gwd answered.
 */
int syncd_apply(const char *ifname, Gwcluster__PeerConfig *const *desired, size_t n,
		const Gwcluster__InterfaceConfig *iface, struct syncd_apply_result *res);

/*
 * The set=1 request syncd_apply() would send, without sending it: gwd's
 * state is read with get=1 as syncd_apply() does. *req is NULL when there is
 * nothing to change; otherwise a NUL-terminated request ending in its blank
 * line, which may hold preshared keys: free it with syncd_apply_free().
 * Peers appear in the order of their public keys. Errors as syncd_apply().
 */
int syncd_apply_plan(const char *ifname, Gwcluster__PeerConfig *const *desired, size_t n,
		     const Gwcluster__InterfaceConfig *iface, char **req,
		     struct syncd_apply_result *res);

/*
 * The same from a get=1 reply held in memory (reply[0..len), as gwd sends
 * it, through "errno=0" and the blank line), with no I/O at all.
 * 0, -EPROTO (reply malformed or beyond the bounds below), -ENOMEM, or the
 * -errno the reply carries.
 */
int syncd_apply_diff(const char *reply, size_t len, Gwcluster__PeerConfig *const *desired, size_t n,
		     const Gwcluster__InterfaceConfig *iface, char **req,
		     struct syncd_apply_result *res);

/* Wipes and frees a request from syncd_apply_plan/diff; NULL is ignored. */
void syncd_apply_free(char *req);

enum {
	SYNCD_APPLY_TIMEOUT_MS = 2000,	 /* per read or write on the UAPI socket */
	SYNCD_APPLY_DEADLINE_MS = 60000, /* for one whole get or set exchange */
	SYNCD_APPLY_BATCH_PEERS = 1024,	 /* peers in one set transaction of the applier */
	/*
	 * Periodic full reconciliations, a safety net (a restart of gwd is seen
	 * on the connection): at most every RECONCILE_MIN_MS, else every
	 * FACTOR x their duration, at least every MAX_MS. gwd builds its get=1
	 * reply in one go, its loop (and data plane) busy meanwhile: 0.28 s at
	 * 100,000 peers.
	 */
	SYNCD_APPLY_RECONCILE_MIN_MS = 1000,
	SYNCD_APPLY_RECONCILE_FACTOR = 50,
	SYNCD_APPLY_RECONCILE_MAX_MS = 300000,
	SYNCD_APPLY_RETRY_MIN_MS = 200,		/* first retry after a failure, then doubled ... */
	SYNCD_APPLY_RETRY_MAX_MS = 10000,	/* ... up to this; gwd absent: ... */
	SYNCD_APPLY_RETRY_ABSENT_MAX_MS = 1000, /* ... up to this */
	SYNCD_APPLY_LINE_MAX = 512,		/* bytes of one reply line */
	SYNCD_APPLY_MAX_PEERS = 1 << 20,	/* peers in a get reply */
	SYNCD_APPLY_MAX_ALLOWED_IPS = 1 << 16,	/* allowed IPs of one peer */
	SYNCD_APPLY_REPLY_MAX = 512 << 20,	/* bytes of a get reply */
};

/* ------------------------------------------------------------------------
 * The incremental applier
 *
 * Keeps gwd equal to the store on a gw_loop without ever blocking it: the
 * store's records are read once (in slices) and then only those reported
 * changed; peers that differ from what gwd has go to gwd in set
 * transactions of at most SYNCD_APPLY_BATCH_PEERS peers each. gwd's state
 * is read in full (get=1) at start, whenever its connection was lost or an
 * operation failed, and periodically (SYNCD_APPLY_RECONCILE_*): that read,
 * its parsing and the comparison run in slices between other events too.
 *
 * The UAPI connection is non-blocking and kept open, so a gwd that restarts
 * is noticed when it closes it. An operation that makes no progress within
 * SYNCD_APPLY_TIMEOUT_MS fails; every failure leaves the peers concerned
 * pending and is retried with a doubling delay (SYNCD_APPLY_RETRY_*),
 * starting with a full reconciliation.
 *
 * Allowed IPs listed by several live peers go to the peer with the newest
 * record (greatest hlc, then greatest public key), on every node alike; the
 * others are applied without them (counted in conflicts, logged).
 */

struct gw_loop;
struct syncd_store;

/*
 * Figures for gwctl status and /metrics (syncd/metrics.c, docs/metrics.md);
 * the names are kept stable. An operation is one UAPI exchange: a set
 * transaction or a full read (get=1).
 */
struct syncd_apply_stats {
	uint64_t ok;			  /* operations that succeeded */
	uint64_t absent;		  /* attempts that found no gwd */
	uint64_t failed;		  /* other failures: refused, timed out, connection cut */
	uint64_t added, removed, changed; /* peers, by the successful sets */
	uint64_t last_ns;		  /* duration of the latest operation that reached gwd */
	double last_ok_time;		  /* Unix time of the latest success; 0: none yet */
	uint64_t timeouts;		  /* failed: gwd made no progress for timeout_ms */
	uint64_t sets;			  /* set transactions gwd accepted */
	uint64_t reconciles;		  /* full reconciliations (read and compared) */
	uint64_t last_reconcile_ns;	  /* the latest: get=1 sent to every difference queued */
	uint64_t peers;			  /* live peers in the store */
	uint64_t pending;		  /* peers changed or differing, not yet applied */
	uint64_t conflicts;		  /* allowed IPs listed by more than one live peer */
	bool gwd_connected;		  /* the latest operation reached gwd */
	bool converged;			  /* gwd holds what the store does, as far as known */
};

/*
 * Records one operation: 0 (what it did and how long it took), -ENOENT or
 * -ECONNREFUSED (gwd absent) or another -errno.
 */
void syncd_apply_stats_record(struct syncd_apply_stats *st, int rc, size_t added, size_t removed,
			      size_t changed, uint64_t duration_ns);

struct syncd_applier_config {
	const char *ifname;
	struct syncd_store *store; /* read only; must outlive the applier */
	/*
	 * gwd holds what the store does (after the first reconciliation, and
	 * again after every later change); added: peers were added since the
	 * last call. May be NULL.
	 */
	void (*converged)(void *arg, bool added);
	void *arg;
	/* 0: the defaults above (tests shorten them). */
	unsigned timeout_ms, batch_peers, reconcile_min_ms;
};

struct syncd_applier;

/* Starts reading the store at once; applies nothing until enabled. 0 or -errno. */
int syncd_applier_open(struct syncd_applier **out, const struct syncd_applier_config *cfg,
		       struct gw_loop *loop);
/* Closes gwd's connection and cancels its timers. NULL is ignored. */
void syncd_applier_close(struct syncd_applier *a);
/* A record (a 32-byte peer key, or SYNCD_IFACE_KEY) may have changed in the store. */
void syncd_applier_changed(struct syncd_applier *a, const uint8_t *key, size_t key_len);
/*
 * Whether the store may be applied (a new node's store is not before it
 * caught up: it would strip gwd of every peer).
 */
void syncd_applier_enable(struct syncd_applier *a, bool enabled);
/* Reads gwd's whole state again soon (gwd restarted, or may have drifted). */
void syncd_applier_reconcile(struct syncd_applier *a);
const struct syncd_apply_stats *syncd_applier_stats(struct syncd_applier *a);

#endif
