/* SPDX-License-Identifier: MIT */
/*
 * Routes for owned peers (anycast, docs/anycast.md): with --owned-routes
 * TABLE, gwd keeps one device route through its TUN for every allowed IP of
 * every peer this node owns, in routing table TABLE, and none for the
 * others. A routing daemon (FRR's zebra and bgpd: `redistribute kernel` or
 * `ip import-table`) announces them, so the traffic from the LAN to a
 * client comes to the node that holds the client's session. A node that
 * claims a peer (on receive, after a failover) starts attracting its return
 * traffic; one that loses it stops. When gwd dies its TUN goes and the kernel
 * removes every route through it.
 *
 * Ownership changes queue the peer; the queue is worked off from the loop's
 * timers, at most GWD_ROUTES_BATCH peers per turn, so a mass takeover does
 * not stall the data path. A route the kernel refused (the TUN is still
 * down, say) is tried again after GWD_ROUTES_RETRY_MS. Single-threaded, on
 * the device's loop; no-ops unless enabled.
 */
#ifndef GWD_ROUTES_H
#define GWD_ROUTES_H

#include <stdint.h>

#include "gw/addr.h"

struct gwd_device;
struct gwd_peer;

enum {
	GWD_ROUTES_BATCH = 256,
	GWD_ROUTES_RETRY_MS = 1000,
};

/* Per peer, in struct gwd_peer_cluster: the routes installed for it. */
struct gwd_peer_routes {
	struct gw_prefix *v;
	uint32_t n, cap;
};

/*
 * Owned-peer routes in table (1..0xfffffffe; 254 is main) through the TUN
 * the device gets later. The device must be a cluster node. 0, -EINVAL,
 * -EBUSY (enabled already), -ENOMEM or the netlink socket's -errno.
 */
int gwd_routes_enable(struct gwd_device *dev, uint32_t table);
/*
 * Routes through ifindex instead of the TUN (0: the TUN again): a device
 * without system I/O (tests). 0, or -EINVAL when routes are not enabled.
 */
int gwd_routes_set_ifindex(struct gwd_device *dev, int ifindex);
/* Closes the netlink socket (the cluster calls it when it is freed). */
void gwd_routes_free(struct gwd_device *dev);
/*
 * The device is going away: its TUN takes the routes with it, so removed
 * peers no longer delete theirs one by one.
 */
void gwd_routes_closing(struct gwd_device *dev);
/* The peer's ownership or allowed IPs changed: bring its routes up to date. */
void gwd_routes_mark(struct gwd_peer *peer);
/* The peer is about to be freed: its routes go now. */
void gwd_routes_peer_removed(struct gwd_peer *peer);

#endif
