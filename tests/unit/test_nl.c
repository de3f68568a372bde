// SPDX-License-Identifier: MIT
/*
 * The netlink helpers against the real kernel. Criterion runs every test in
 * its own process; each test first moves that process into a fresh network
 * namespace (which dies with it), so the host's network is never touched.
 * Results are read back with ip(8), an independent netlink client.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <netlink/netlink.h>
#include <netlink/route/link.h>
#include <netlink/route/link/veth.h>

#include "gw/nl.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define LINK	     "gwt0"
#define PEER	     "gwt0p"
#define NO_SUCH_IF   4242

static void enter_netns(void)
{
	struct stat before, after;

	cr_assert_eq(stat("/proc/thread-self/ns/net", &before), 0);
	if (unshare(CLONE_NEWNET)) {
		if (errno == EPERM)
			cr_skip_test("unshare(CLONE_NEWNET) needs root (CAP_SYS_ADMIN); skipped");
		cr_assert_fail("unshare(CLONE_NEWNET): %s", strerror(errno));
	}
	cr_assert_eq(stat("/proc/thread-self/ns/net", &after), 0);
	cr_assert_neq(before.st_ino, after.st_ino, "still in the original network namespace");
}

static struct gw_nl *open_nl(void)
{
	struct gw_nl *nl = NULL;

	cr_assert_eq(gw_nl_open(&nl), 0);
	cr_assert_not_null(nl);
	return nl;
}

/* Adds a link of the given kind, named LINK; a veth gets its peer PEER. */
static int add_link(struct nl_sock *sk, const char *kind)
{
	struct rtnl_link *link, *peer;
	int err;

	if (strcmp(kind, "veth") == 0) {
		link = rtnl_link_veth_alloc();
		cr_assert_not_null(link);
		peer = rtnl_link_veth_get_peer(link);
		rtnl_link_set_name(peer, PEER);
		rtnl_link_put(peer);
	} else {
		link = rtnl_link_alloc();
		cr_assert_not_null(link);
		cr_assert_eq(rtnl_link_set_type(link, kind), 0);
	}
	rtnl_link_set_name(link, LINK);
	err = rtnl_link_add(sk, link, NLM_F_CREATE | NLM_F_EXCL);
	rtnl_link_put(link);
	return err;
}

/*
 * Creates LINK in this namespace and returns its index: a dummy link, or
 * where the kernel has no dummy driver a veth whose peer is up (so LINK has
 * carrier once up, and IPv6 DAD would really run on it).
 */
static int create_link(struct gw_nl *nl)
{
	struct nl_sock *sk = nl_socket_alloc();
	int ifindex, peer, err;

	cr_assert_not_null(sk);
	cr_assert_eq(nl_connect(sk, NETLINK_ROUTE), 0);
	err = add_link(sk, "dummy");
	if (err < 0) {
		err = add_link(sk, "veth");
		cr_assert_eq(err, 0, "creating a veth: %s", nl_geterror(err));
		cr_assert_eq(gw_nl_link_index(nl, PEER, &peer), 0);
		cr_assert_eq(gw_nl_link_set_up(nl, peer, true), 0);
	}
	nl_socket_free(sk);
	cr_assert_eq(gw_nl_link_index(nl, LINK, &ifindex), 0);
	cr_assert_gt(ifindex, 1);
	return ifindex;
}

/*
 * Runs `ip ARGS` in this namespace; true when a line of its output contains
 * needle, and that line is then copied to line (when given).
 */
static bool ip_line(const char *args, const char *needle, char *line, size_t size)
{
	char cmd[256], buf[1024];
	bool found = false;
	FILE *f;

	snprintf(cmd, sizeof(cmd), "PATH=/usr/sbin:/sbin:$PATH ip %s 2>&1", args);
	f = popen(cmd, "r");
	cr_assert_not_null(f, "popen %s", cmd);
	while (!found && fgets(buf, sizeof(buf), f)) {
		found = strstr(buf, needle) != NULL;
		if (found && line)
			snprintf(line, size, "%s", buf);
	}
	while (fgets(buf, sizeof(buf), f))
		;
	pclose(f);
	return found;
}

static bool ip_shows(const char *args, const char *needle)
{
	return ip_line(args, needle, NULL, 0);
}

static struct gw_prefix prefix(const char *s)
{
	struct gw_prefix p;

	cr_assert_eq(gw_prefix_parse(&p, s), 0, "%s", s);
	return p;
}

Test(nl, loopback_and_missing_links)
{
	struct gw_nl *nl;
	struct gw_prefix p = prefix("198.18.0.1/24");
	int ifindex = -1;
	uint32_t mtu = 0;
	bool up = true, present;

	enter_netns();
	nl = open_nl();
	cr_assert_eq(gw_nl_link_index(nl, "lo", &ifindex), 0);
	cr_assert_eq(ifindex, 1);
	cr_assert_eq(gw_nl_link_is_up(nl, 1, &up), 0);
	cr_assert_not(up, "lo starts down in a fresh namespace");
	cr_assert_eq(gw_nl_link_set_up(nl, 1, true), 0);
	cr_assert_eq(gw_nl_link_is_up(nl, 1, &up), 0);
	cr_assert(up);
	cr_assert(ip_shows("link show dev lo", "<LOOPBACK,UP,"));
	cr_assert_eq(gw_nl_link_get_mtu(nl, 1, &mtu), 0);
	cr_assert_eq(mtu, 65536);

	cr_assert_eq(gw_nl_link_index(nl, "gwnosuch0", &ifindex), -ENODEV);
	cr_assert_eq(gw_nl_link_index(nl, "", &ifindex), -EINVAL);
	cr_assert_eq(gw_nl_link_index(nl, "sixteen-chars-xx", &ifindex), -EINVAL);
	cr_assert_eq(gw_nl_link_set_up(nl, NO_SUCH_IF, true), -ENODEV);
	cr_assert_eq(gw_nl_link_is_up(nl, NO_SUCH_IF, &up), -ENODEV);
	cr_assert_eq(gw_nl_link_is_up(nl, 0, &up), -ENODEV);
	cr_assert_eq(gw_nl_link_is_up(nl, -1, &up), -ENODEV);
	cr_assert_eq(gw_nl_link_set_mtu(nl, NO_SUCH_IF, 1400), -ENODEV);
	cr_assert_eq(gw_nl_link_get_mtu(nl, NO_SUCH_IF, &mtu), -ENODEV);
	cr_assert_eq(gw_nl_addr_add(nl, NO_SUCH_IF, &p), -ENODEV);
	cr_assert_eq(gw_nl_addr_present(nl, NO_SUCH_IF, &p, &present), -ENODEV);
	cr_assert_eq(gw_nl_route_add(nl, NO_SUCH_IF, &p, 0), -ENODEV);
	cr_assert_eq(gw_nl_route_add(nl, 0, &p, 0), -ENODEV);
	gw_nl_close(nl);
}

Test(nl, link_up_down_and_mtu)
{
	static const uint32_t mtus[] = {1280, 1420, 9000, 1500, 1380};
	struct gw_nl *nl;
	char args[64], want[32];
	uint32_t mtu;
	int ifindex;
	bool up = true;

	enter_netns();
	nl = open_nl();
	ifindex = create_link(nl);
	snprintf(args, sizeof(args), "link show dev %s", LINK);

	cr_assert_eq(gw_nl_link_is_up(nl, ifindex, &up), 0);
	cr_assert_not(up);
	for (int round = 0; round < 2; round++) {
		cr_assert_eq(gw_nl_link_set_up(nl, ifindex, true), 0);
		cr_assert_eq(gw_nl_link_is_up(nl, ifindex, &up), 0);
		cr_assert(up);
		cr_assert(ip_shows(args, ",UP"));
		cr_assert_eq(gw_nl_link_set_up(nl, ifindex, false), 0);
		cr_assert_eq(gw_nl_link_is_up(nl, ifindex, &up), 0);
		cr_assert_not(up);
		cr_assert_not(ip_shows(args, ",UP"));
	}

	for (size_t i = 0; i < ARRAY_LEN(mtus); i++) {
		cr_assert_eq(gw_nl_link_set_mtu(nl, ifindex, mtus[i]), 0, "mtu %u", mtus[i]);
		cr_assert_eq(gw_nl_link_get_mtu(nl, ifindex, &mtu), 0);
		cr_assert_eq(mtu, mtus[i]);
		snprintf(want, sizeof(want), " mtu %u ", mtus[i]);
		cr_assert(ip_shows(args, want), "ip does not show%s", want);
	}
	/* The kernel reads IFLA_MTU as an int: this is -1, refused; nothing changes. */
	cr_assert_eq(gw_nl_link_set_mtu(nl, ifindex, UINT32_MAX), -EINVAL);
	cr_assert_eq(gw_nl_link_get_mtu(nl, ifindex, &mtu), 0);
	cr_assert_eq(mtu, 1380);
	gw_nl_close(nl);
}

struct addr_case {
	const char *prefix;
	const char *other_cidr; /* same address, another subnet: never present */
	const char *ip_args;
	const char *ip_shows;
};

static const struct addr_case addr_cases[] = {
    {"198.18.0.1/24", "198.18.0.1/25", "-o -4 addr show dev " LINK, "inet 198.18.0.1/24 "},
    {"203.0.113.5/32", "203.0.113.5/31", "-o -4 addr show dev " LINK, "inet 203.0.113.5/32 "},
    {"2001:db8:f::1/64", "2001:db8:f::1/65", "-o -6 addr show dev " LINK,
     "inet6 2001:db8:f::1/64 scope global nodad"},
    {"2001:db8:f::2/128", "2001:db8:f::2/64", "-o -6 addr show dev " LINK,
     "inet6 2001:db8:f::2/128 scope global nodad"},
};

static void check_addr_case(struct gw_nl *nl, int ifindex, const struct addr_case *c)
{
	struct gw_prefix p = prefix(c->prefix), other = prefix(c->other_cidr);
	bool present = true;
	char line[1024];

	cr_assert_eq(gw_nl_addr_present(nl, ifindex, &p, &present), 0);
	cr_assert_not(present, "%s", c->prefix);
	cr_assert_eq(gw_nl_addr_add(nl, ifindex, &p), 0, "%s", c->prefix);
	cr_assert_eq(gw_nl_addr_present(nl, ifindex, &p, &present), 0);
	cr_assert(present, "%s", c->prefix);
	cr_assert(ip_line(c->ip_args, c->ip_shows, line, sizeof(line)), "ip shows no \"%s\"",
		  c->ip_shows);
	cr_assert_null(strstr(line, "tentative"), "%s awaits DAD", c->prefix);
	cr_assert_eq(gw_nl_addr_add(nl, ifindex, &p), -EEXIST, "%s", c->prefix);

	cr_assert_eq(gw_nl_addr_present(nl, ifindex, &other, &present), 0);
	cr_assert_not(present, "%s", c->other_cidr);
	cr_assert_eq(gw_nl_addr_del(nl, ifindex, &other), -EADDRNOTAVAIL, "%s", c->other_cidr);
	cr_assert_eq(gw_nl_addr_present(nl, ifindex, &p, &present), 0);
	cr_assert(present, "%s went with %s", c->prefix, c->other_cidr);

	cr_assert_eq(gw_nl_addr_del(nl, ifindex, &p), 0, "%s", c->prefix);
	cr_assert_eq(gw_nl_addr_present(nl, ifindex, &p, &present), 0);
	cr_assert_not(present, "%s", c->prefix);
	cr_assert_not(ip_shows(c->ip_args, c->ip_shows));
	cr_assert_eq(gw_nl_addr_del(nl, ifindex, &p), -EADDRNOTAVAIL, "%s", c->prefix);
}

Test(nl, addresses)
{
	struct gw_nl *nl;
	struct gw_prefix bad = prefix("198.18.0.1/24");
	bool present;
	int ifindex;

	enter_netns();
	nl = open_nl();
	ifindex = create_link(nl);
	/* Up with carrier, so an IPv6 address added without NODAD would be tentative. */
	cr_assert_eq(gw_nl_link_set_up(nl, ifindex, true), 0);
	for (size_t i = 0; i < ARRAY_LEN(addr_cases); i++)
		check_addr_case(nl, ifindex, &addr_cases[i]);

	/* Several at once, each seen on its own. */
	for (size_t i = 0; i < ARRAY_LEN(addr_cases); i++) {
		struct gw_prefix p = prefix(addr_cases[i].prefix);

		cr_assert_eq(gw_nl_addr_add(nl, ifindex, &p), 0);
	}
	for (size_t i = 0; i < ARRAY_LEN(addr_cases); i++) {
		struct gw_prefix p = prefix(addr_cases[i].prefix);

		cr_assert_eq(gw_nl_addr_present(nl, ifindex, &p, &present), 0);
		cr_assert(present);
		cr_assert(ip_shows(addr_cases[i].ip_args, addr_cases[i].ip_shows));
	}

	bad.family = AF_UNSPEC;
	cr_assert_eq(gw_nl_addr_add(nl, ifindex, &bad), -EINVAL);
	cr_assert_eq(gw_nl_addr_present(nl, ifindex, &bad, &present), -EINVAL);
	bad = prefix("198.18.0.1/24");
	bad.cidr = 33;
	cr_assert_eq(gw_nl_addr_del(nl, ifindex, &bad), -EINVAL);
	gw_nl_close(nl);
}

struct route_case {
	const char *prefix; /* host bits may be set: the route is to the network */
	uint32_t table;
	const char *ip_family;
	const char *shows;
};

static const struct route_case route_cases[] = {
    {"198.19.0.0/16", 0, "-4", "198.19.0.0/16 dev " LINK " proto static scope link"},
    {"198.19.0.0/16", 100, "-4", "198.19.0.0/16 dev " LINK " proto static scope link"},
    {"198.19.7.9/16", 100, "-4", "198.19.0.0/16 dev " LINK " proto static scope link"},
    {"198.51.100.7/32", 254, "-4", "198.51.100.7 dev " LINK " proto static scope link"},
    {"2001:db8:19::/64", 0, "-6", "2001:db8:19::/64 dev " LINK " proto static"},
    {"2001:db8:19::/64", 100, "-6", "2001:db8:19::/64 dev " LINK " proto static"},
    {"2001:db8:19::77/64", 70000, "-6", "2001:db8:19::/64 dev " LINK " proto static"},
};

/* Whether `ip FAMILY route show table TABLE` lists the route. */
static bool route_listed(const struct route_case *c, uint32_t table)
{
	char args[64];

	snprintf(args, sizeof(args), "%s route show table %u", c->ip_family, table ? table : 254);
	return ip_shows(args, c->shows);
}

static void check_route_case(struct gw_nl *nl, int ifindex, const struct route_case *c)
{
	struct gw_prefix p = prefix(c->prefix);
	uint32_t elsewhere = (c->table == 0 || c->table == 254) ? 100 : 254;

	cr_assert_not(route_listed(c, c->table), "%s", c->prefix);
	cr_assert_eq(gw_nl_route_add(nl, ifindex, &p, c->table), 0, "%s table %u", c->prefix,
		     c->table);
	cr_assert(route_listed(c, c->table), "%s table %u: no \"%s\"", c->prefix, c->table,
		  c->shows);
	cr_assert_not(route_listed(c, elsewhere), "%s also in table %u", c->prefix, elsewhere);
	cr_assert_eq(gw_nl_route_add(nl, ifindex, &p, c->table), -EEXIST, "%s", c->prefix);
	cr_assert_eq(gw_nl_route_del(nl, ifindex, &p, elsewhere), -ESRCH, "%s", c->prefix);
	cr_assert(route_listed(c, c->table));
	cr_assert_eq(gw_nl_route_del(nl, ifindex, &p, c->table), 0, "%s", c->prefix);
	cr_assert_not(route_listed(c, c->table), "%s", c->prefix);
	cr_assert_eq(gw_nl_route_del(nl, ifindex, &p, c->table), -ESRCH, "%s", c->prefix);
}

Test(nl, routes)
{
	struct gw_prefix v4 = prefix("198.19.0.0/16"), v6 = prefix("2001:db8:19::/64");
	struct gw_nl *nl;
	int ifindex;

	enter_netns();
	nl = open_nl();
	ifindex = create_link(nl);
	/* The kernel refuses an IPv4 device route through a link that is down. */
	cr_assert_eq(gw_nl_route_add(nl, ifindex, &v4, 0), -ENETDOWN);
	cr_assert_eq(gw_nl_link_set_up(nl, ifindex, true), 0);
	for (size_t i = 0; i < ARRAY_LEN(route_cases); i++)
		check_route_case(nl, ifindex, &route_cases[i]);

	/* The same prefix in two tables: deleting one leaves the other. */
	cr_assert_eq(gw_nl_route_add(nl, ifindex, &v4, 0), 0);
	cr_assert_eq(gw_nl_route_add(nl, ifindex, &v4, 100), 0);
	cr_assert_eq(gw_nl_route_add(nl, ifindex, &v6, 0), 0);
	cr_assert_eq(gw_nl_route_add(nl, ifindex, &v6, 100), 0);
	cr_assert_eq(gw_nl_route_del(nl, ifindex, &v4, 0), 0);
	cr_assert_eq(gw_nl_route_del(nl, ifindex, &v6, 100), 0);
	cr_assert(route_listed(&route_cases[1], 100));
	cr_assert_not(route_listed(&route_cases[0], 0));
	cr_assert(route_listed(&route_cases[4], 0));
	cr_assert_not(route_listed(&route_cases[5], 100));
	cr_assert_eq(gw_nl_route_del(nl, ifindex, &v4, 100), 0);
	cr_assert_eq(gw_nl_route_del(nl, ifindex, &v6, 0), 0);

	/* Another protocol's route to the prefix is deleted too, as by ip(8). */
	cr_assert(ip_shows(
	    "-4 route add 198.19.0.0/16 dev " LINK " proto boot table 100 && echo ok", "ok"));
	cr_assert_eq(gw_nl_route_del(nl, ifindex, &v4, 100), 0);
	cr_assert_not(route_listed(&route_cases[1], 100));

	v4.cidr = 40;
	cr_assert_eq(gw_nl_route_add(nl, ifindex, &v4, 0), -EINVAL);
	gw_nl_close(nl);
}
