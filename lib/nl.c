// SPDX-License-Identifier: MIT
/*
 * Netlink helpers on libnl-route-3. libnl folds the kernel's errno into its
 * own NLE_* codes, losing detail (ESRCH and ENOENT both become
 * NLE_OBJ_NOTFOUND), so the socket's error callback keeps the kernel's own
 * -errno and that is what callers get; NLE_* codes are mapped only for
 * failures libnl found itself. A struct gw_nl is used by one thread at a time.
 */
#include <errno.h>
#include <net/if.h>
#include <stdlib.h>
#include <string.h>

#include <linux/if_addr.h>
#include <linux/rtnetlink.h>
#include <netlink/cache.h>
#include <netlink/errno.h>
#include <netlink/netlink.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>
#include <netlink/route/route.h>

#include "gw/nl.h"

struct gw_nl {
	struct nl_sock *sk;
	int kerr; /* -errno of the last NLMSG_ERROR the kernel sent, 0 if none */
};

static int on_kernel_error(struct sockaddr_nl *who, struct nlmsgerr *e, void *arg)
{
	struct gw_nl *nl = arg;

	nl->kerr = e->error < 0 ? e->error : -e->error;
	return NL_STOP; /* libnl then fails the call as it would by default */
}

/* libnl's own failures; notfound is what NLE_OBJ_NOTFOUND means to the caller. */
static int nle_to_errno(int nle, int notfound)
{
	switch (abs(nle)) {
	case NLE_EXIST:
		return -EEXIST;
	case NLE_NODEV:
		return -ENODEV;
	case NLE_OBJ_NOTFOUND:
		return notfound;
	case NLE_NOADDR:
		return -EADDRNOTAVAIL;
	case NLE_NOMEM:
		return -ENOMEM;
	case NLE_PERM:
		return -EPERM;
	case NLE_NOACCESS:
		return -EACCES;
	case NLE_INVAL:
	case NLE_AF_MISMATCH:
		return -EINVAL;
	case NLE_RANGE:
		return -ERANGE;
	case NLE_AGAIN:
		return -EAGAIN;
	case NLE_INTR:
		return -EINTR;
	case NLE_BUSY:
		return -EBUSY;
	case NLE_OPNOTSUPP:
		return -EOPNOTSUPP;
	case NLE_AF_NOSUPPORT:
		return -EAFNOSUPPORT;
	default:
		return -EIO;
	}
}

/* Call before each request, so a stale kernel error is never reported. */
static void begin(struct gw_nl *nl)
{
	nl->kerr = 0;
}

/* Turns a libnl result into 0 or -errno, the kernel's errno first. */
static int finish(struct gw_nl *nl, int err, int notfound)
{
	if (err >= 0)
		return 0;
	if (nl->kerr)
		return nl->kerr;
	return nle_to_errno(err, notfound);
}

int gw_nl_open(struct gw_nl **out)
{
	struct gw_nl *nl;
	int err;

	*out = NULL;
	nl = calloc(1, sizeof(*nl));
	if (!nl)
		return -ENOMEM;
	nl->sk = nl_socket_alloc();
	if (!nl->sk) {
		free(nl);
		return -ENOMEM;
	}
	err = nl_socket_modify_err_cb(nl->sk, NL_CB_CUSTOM, on_kernel_error, nl);
	if (err >= 0)
		err = nl_connect(nl->sk, NETLINK_ROUTE);
	if (err < 0) {
		gw_nl_close(nl);
		return nle_to_errno(err, -EIO);
	}
	*out = nl;
	return 0;
}

void gw_nl_close(struct gw_nl *nl)
{
	if (!nl)
		return;
	nl_socket_free(nl->sk);
	free(nl);
}

/* The kernel's view of one link; the caller puts it. */
static int get_link(struct gw_nl *nl, int ifindex, const char *name, struct rtnl_link **link)
{
	int err;

	begin(nl);
	err = rtnl_link_get_kernel(nl->sk, ifindex, name, link);
	return finish(nl, err, -ENODEV);
}

int gw_nl_link_index(struct gw_nl *nl, const char *ifname, int *ifindex)
{
	struct rtnl_link *link;
	int err;

	if (!ifname || !ifname[0] || strlen(ifname) >= IFNAMSIZ)
		return -EINVAL;
	err = get_link(nl, 0, ifname, &link);
	if (err)
		return err;
	*ifindex = rtnl_link_get_ifindex(link);
	rtnl_link_put(link);
	return 0;
}

/* No link has an index <= 0; the kernel would read 0 as "by name". */
static int get_link_by_index(struct gw_nl *nl, int ifindex, struct rtnl_link **link)
{
	if (ifindex <= 0)
		return -ENODEV;
	return get_link(nl, ifindex, NULL, link);
}

/* Applies the attributes set in changes to the link; consumes changes. */
static int change_link(struct gw_nl *nl, int ifindex, struct rtnl_link *changes)
{
	struct rtnl_link *orig;
	int err;

	if (ifindex <= 0) {
		rtnl_link_put(changes);
		return -ENODEV;
	}
	orig = rtnl_link_alloc();
	if (!orig) {
		rtnl_link_put(changes);
		return -ENOMEM;
	}
	rtnl_link_set_ifindex(orig, ifindex);
	begin(nl);
	err = rtnl_link_change(nl->sk, orig, changes, 0);
	rtnl_link_put(orig);
	rtnl_link_put(changes);
	return finish(nl, err, -ENODEV);
}

int gw_nl_link_set_up(struct gw_nl *nl, int ifindex, bool up)
{
	struct rtnl_link *changes = rtnl_link_alloc();

	if (!changes)
		return -ENOMEM;
	if (up)
		rtnl_link_set_flags(changes, IFF_UP);
	else
		rtnl_link_unset_flags(changes, IFF_UP);
	return change_link(nl, ifindex, changes);
}

int gw_nl_link_is_up(struct gw_nl *nl, int ifindex, bool *up)
{
	struct rtnl_link *link;
	int err = get_link_by_index(nl, ifindex, &link);

	if (err)
		return err;
	*up = rtnl_link_get_flags(link) & IFF_UP;
	rtnl_link_put(link);
	return 0;
}

int gw_nl_link_set_mtu(struct gw_nl *nl, int ifindex, uint32_t mtu)
{
	struct rtnl_link *changes = rtnl_link_alloc();

	if (!changes)
		return -ENOMEM;
	rtnl_link_set_mtu(changes, mtu);
	return change_link(nl, ifindex, changes);
}

int gw_nl_link_get_mtu(struct gw_nl *nl, int ifindex, uint32_t *mtu)
{
	struct rtnl_link *link;
	int err = get_link_by_index(nl, ifindex, &link);

	if (err)
		return err;
	*mtu = rtnl_link_get_mtu(link);
	rtnl_link_put(link);
	return 0;
}

/* Address length in bytes, or 0 when the prefix is not usable. */
static size_t prefix_addr_len(const struct gw_prefix *p)
{
	if (!p)
		return 0;
	if (p->family == AF_INET && p->cidr <= 32)
		return 4;
	if (p->family == AF_INET6 && p->cidr <= 128)
		return 16;
	return 0;
}

/* An nl_addr holding p's address (as given) and cidr; the caller puts it. */
static int prefix_to_nl_addr(const struct gw_prefix *p, struct nl_addr **out)
{
	size_t len = prefix_addr_len(p);

	if (!len)
		return -EINVAL;
	*out = nl_addr_build(p->family, p->addr, len);
	if (!*out)
		return -ENOMEM;
	nl_addr_set_prefixlen(*out, p->cidr);
	return 0;
}

/* An address object for ifindex and p; the caller puts it. */
static int build_addr(int ifindex, const struct gw_prefix *p, struct rtnl_addr **out)
{
	struct nl_addr *local;
	struct rtnl_addr *a;
	int err;

	if (ifindex <= 0)
		return -ENODEV;
	err = prefix_to_nl_addr(p, &local);
	if (err)
		return err;
	a = rtnl_addr_alloc();
	if (!a) {
		nl_addr_put(local);
		return -ENOMEM;
	}
	rtnl_addr_set_ifindex(a, ifindex);
	err = rtnl_addr_set_local(a, local);
	nl_addr_put(local);
	if (err < 0) {
		rtnl_addr_put(a);
		return nle_to_errno(err, -EINVAL);
	}
	*out = a;
	return 0;
}

int gw_nl_addr_add(struct gw_nl *nl, int ifindex, const struct gw_prefix *p)
{
	struct rtnl_addr *a;
	int err = build_addr(ifindex, p, &a);

	if (err)
		return err;
	if (p->family == AF_INET6)
		rtnl_addr_set_flags(a, IFA_F_NODAD);
	begin(nl);
	err = rtnl_addr_add(nl->sk, a, NLM_F_EXCL);
	rtnl_addr_put(a);
	return finish(nl, err, -ENODEV);
}

int gw_nl_addr_del(struct gw_nl *nl, int ifindex, const struct gw_prefix *p)
{
	struct rtnl_addr *a;
	int err = build_addr(ifindex, p, &a);

	if (err)
		return err;
	begin(nl);
	err = rtnl_addr_delete(nl->sk, a, 0);
	rtnl_addr_put(a);
	return finish(nl, err, -EADDRNOTAVAIL);
}

static bool addr_matches(struct rtnl_addr *a, int ifindex, const struct gw_prefix *p, size_t len)
{
	struct nl_addr *local = rtnl_addr_get_local(a);

	return local && rtnl_addr_get_ifindex(a) == ifindex &&
	       rtnl_addr_get_family(a) == p->family && rtnl_addr_get_prefixlen(a) == p->cidr &&
	       nl_addr_get_len(local) == len &&
	       memcmp(nl_addr_get_binary_addr(local), p->addr, len) == 0;
}

/* -ENODEV when the link is gone, rather than a plain "absent". */
int gw_nl_addr_present(struct gw_nl *nl, int ifindex, const struct gw_prefix *p, bool *present)
{
	size_t len = prefix_addr_len(p);
	struct rtnl_link *link;
	struct nl_cache *cache;
	struct nl_object *o;
	int err;

	if (!len)
		return -EINVAL;
	err = get_link_by_index(nl, ifindex, &link);
	if (err)
		return err;
	rtnl_link_put(link);
	begin(nl);
	err = finish(nl, rtnl_addr_alloc_cache(nl->sk, &cache), -EIO);
	if (err)
		return err;
	*present = false;
	for (o = nl_cache_get_first(cache); o && !*present; o = nl_cache_get_next(o))
		*present = addr_matches((struct rtnl_addr *)o, ifindex, p, len);
	nl_cache_free(cache);
	return 0;
}

/*
 * A unicast route to p's network through ifindex alone, in table (0: main).
 * IPv4 device routes are link scope, as `ip route add ... dev` makes them.
 */
static int build_route(int ifindex, const struct gw_prefix *p, uint32_t table,
		       struct rtnl_route **out)
{
	struct gw_prefix net;
	struct rtnl_nexthop *nh;
	struct rtnl_route *r;
	struct nl_addr *dst;
	int err;

	if (ifindex <= 0)
		return -ENODEV;
	if (!prefix_addr_len(p))
		return -EINVAL;
	net = *p;
	gw_prefix_mask(&net);
	err = prefix_to_nl_addr(&net, &dst);
	if (err)
		return err;
	r = rtnl_route_alloc();
	nh = rtnl_route_nh_alloc();
	if (!r || !nh) {
		err = -ENOMEM;
		goto out;
	}
	rtnl_route_set_family(r, (uint8_t)p->family);
	if (rtnl_route_set_dst(r, dst) < 0) {
		err = -EINVAL;
		goto out;
	}
	rtnl_route_set_table(r, table ? table : RT_TABLE_MAIN);
	rtnl_route_set_scope(r, p->family == AF_INET ? RT_SCOPE_LINK : RT_SCOPE_UNIVERSE);
	rtnl_route_nh_set_ifindex(nh, ifindex);
	rtnl_route_add_nexthop(r, nh); /* r owns nh from here */
	nh = NULL;
	*out = r;
	r = NULL;
	err = 0;
out:
	if (nh)
		rtnl_route_nh_free(nh);
	if (r)
		rtnl_route_put(r);
	nl_addr_put(dst);
	return err;
}

int gw_nl_route_add(struct gw_nl *nl, int ifindex, const struct gw_prefix *p, uint32_t table)
{
	struct rtnl_route *r;
	int err = build_route(ifindex, p, table, &r);

	if (err)
		return err;
	begin(nl);
	err = rtnl_route_add(nl->sk, r, NLM_F_EXCL);
	rtnl_route_put(r);
	return finish(nl, err, -ENODEV);
}

int gw_nl_route_del(struct gw_nl *nl, int ifindex, const struct gw_prefix *p, uint32_t table)
{
	struct rtnl_route *r;
	int err = build_route(ifindex, p, table, &r);

	if (err)
		return err;
	rtnl_route_set_protocol(r, RTPROT_UNSPEC); /* match any protocol, as ip(8) does */
	begin(nl);
	err = rtnl_route_delete(nl->sk, r, 0);
	rtnl_route_put(r);
	return finish(nl, err, -ESRCH);
}
