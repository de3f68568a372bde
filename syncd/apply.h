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

#endif
