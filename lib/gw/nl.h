/* SPDX-License-Identifier: MIT */
/*
 * Netlink helpers on libnl-route-3 for links, addresses and routes: what gwd
 * needs for its TUN interface and the HA hooks need for the VIP. All act on
 * the network namespace the calling thread was in at gw_nl_open() (the
 * socket's). Each returns 0 or -errno (the kernel's error where it gave
 * one). A struct gw_nl serves one thread at a time.
 */
#ifndef GW_NL_H
#define GW_NL_H

#include <stdbool.h>
#include <stdint.h>

#include "gw/addr.h"

struct gw_nl;

int gw_nl_open(struct gw_nl **out);
void gw_nl_close(struct gw_nl *nl);

/* -ENODEV when there is no such link, -EINVAL for an empty or overlong name. */
int gw_nl_link_index(struct gw_nl *nl, const char *ifname, int *ifindex);
int gw_nl_link_set_up(struct gw_nl *nl, int ifindex, bool up);
int gw_nl_link_is_up(struct gw_nl *nl, int ifindex, bool *up);
int gw_nl_link_set_mtu(struct gw_nl *nl, int ifindex, uint32_t mtu);
int gw_nl_link_get_mtu(struct gw_nl *nl, int ifindex, uint32_t *mtu);

/*
 * The prefix's address with its cidr as the subnet (198.18.0.1/24). -EEXIST if present.
 * IPv6 addresses are always added with IFA_F_NODAD, so they are usable at
 * once (a VIP taken over in a failover must be) and a VIP still held for a
 * moment by the old owner does not end up "dadfailed".
 */
int gw_nl_addr_add(struct gw_nl *nl, int ifindex, const struct gw_prefix *p);
/* -EADDRNOTAVAIL if absent. */
int gw_nl_addr_del(struct gw_nl *nl, int ifindex, const struct gw_prefix *p);
/* Whether the exact address/cidr is on the link; -ENODEV if the link is gone. */
int gw_nl_addr_present(struct gw_nl *nl, int ifindex, const struct gw_prefix *p, bool *present);

/*
 * A device route to the prefix (host bits cleared) through ifindex in the
 * given table (0 means main), proto static. -EEXIST if present; the kernel
 * refuses an IPv4 device route on a link that is down (-ENETDOWN).
 */
int gw_nl_route_add(struct gw_nl *nl, int ifindex, const struct gw_prefix *p, uint32_t table);
/* Whatever protocol added it (as `ip route del` does). -ESRCH if absent. */
int gw_nl_route_del(struct gw_nl *nl, int ifindex, const struct gw_prefix *p, uint32_t table);

#endif
