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

#include <stddef.h>

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
	SYNCD_APPLY_TIMEOUT_MS = 2000,	       /* per read or write on the UAPI socket */
	SYNCD_APPLY_DEADLINE_MS = 60000,       /* for one whole get or set exchange */
	SYNCD_APPLY_LINE_MAX = 512,	       /* bytes of one reply line */
	SYNCD_APPLY_MAX_PEERS = 1 << 20,       /* peers in a get reply */
	SYNCD_APPLY_MAX_ALLOWED_IPS = 1 << 16, /* allowed IPs of one peer */
	SYNCD_APPLY_REPLY_MAX = 512 << 20,     /* bytes of a get reply */
};

#endif
