/* SPDX-License-Identifier: MIT */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "allowedips.h"

enum { NPEERS = 8 };

struct test_peer {
	struct gwd_allowedips_owner aip;
	int id;
};

static struct gwd_allowedips table;
static struct test_peer peers[NPEERS];

static void setup(void)
{
	gwd_allowedips_init(&table);
	for (int i = 0; i < NPEERS; i++) {
		peers[i].id = i;
		gwd_allowedips_owner_init(&peers[i].aip, &peers[i]);
	}
}

static void teardown(void)
{
	gwd_allowedips_free(&table);
}

/* Index of the peer a lookup returned, -1 for none. */
static int peer_id(void *p)
{
	return p ? ((struct test_peer *)p)->id : -1;
}

/* "ADDR/CIDR" or "ADDR" (a host prefix), test input only. */
static void parse(const char *s, int *family, uint8_t addr[16], uint8_t *cidr)
{
	char buf[64];
	char *slash;

	snprintf(buf, sizeof(buf), "%s", s);
	slash = strchr(buf, '/');
	if (slash)
		*slash = '\0';
	memset(addr, 0, 16);
	*family = strchr(buf, ':') ? AF_INET6 : AF_INET;
	cr_assert_eq(inet_pton(*family, buf, addr), 1, "bad test address %s", s);
	*cidr = slash ? (uint8_t)atoi(slash + 1) : (*family == AF_INET ? 32 : 128);
}

enum op { INS, DEL, DEL_PEER, LOOK, COUNT, PEER_COUNT };

/*
 * INS/DEL: prefix, peer, want = return code. DEL_PEER: peer. LOOK: address,
 * want = peer id or -1. COUNT: want = table count. PEER_COUNT: peer, want.
 */
struct step {
	enum op op;
	const char *s;
	int peer;
	int want;
};

static void run_steps(const struct step *steps, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const struct step *st = &steps[i];
		int family = 0, got = 0;
		uint8_t addr[16], cidr = 0;

		if (st->s)
			parse(st->s, &family, addr, &cidr);
		switch (st->op) {
		case INS:
			got =
			    gwd_allowedips_insert(&table, family, addr, cidr, &peers[st->peer].aip);
			break;
		case DEL:
			got =
			    gwd_allowedips_remove(&table, family, addr, cidr, &peers[st->peer].aip);
			break;
		case DEL_PEER:
			gwd_allowedips_remove_by_peer(&table, &peers[st->peer].aip);
			got = st->want;
			break;
		case LOOK:
			got = peer_id(gwd_allowedips_lookup(&table, family, addr));
			break;
		case COUNT:
			got = (int)gwd_allowedips_count(&table);
			break;
		case PEER_COUNT:
			got = (int)gwd_allowedips_owner_count(&peers[st->peer].aip);
			break;
		}
		cr_assert_eq(got, st->want, "step %zu (op %d %s): got %d, want %d", i, st->op,
			     st->s ? st->s : "", got, st->want);
	}
}

#define RUN(steps) run_steps(steps, sizeof(steps) / sizeof(steps[0]))

TestSuite(allowedips, .init = setup, .fini = teardown);

Test(allowedips, ipv4_longest_match)
{
	static const struct step steps[] = {
	    {LOOK, "192.0.2.1", 0, -1},
	    {INS, "192.0.2.0/24", 0, 0},
	    {INS, "192.0.2.128/25", 1, 0},
	    {INS, "192.0.2.1/32", 2, 0},
	    {INS, "198.51.100.0/24", 0, 0},
	    {INS, "198.51.100.0/22", 3, 0},
	    {LOOK, "192.0.2.1", 0, 2},
	    {LOOK, "192.0.2.0", 0, 0},
	    {LOOK, "192.0.2.2", 0, 0},
	    {LOOK, "192.0.2.127", 0, 0},
	    {LOOK, "192.0.2.128", 0, 1},
	    {LOOK, "192.0.2.255", 0, 1},
	    {LOOK, "192.0.3.0", 0, -1},
	    {LOOK, "192.0.1.255", 0, -1},
	    {LOOK, "198.51.100.7", 0, 0},
	    {LOOK, "198.51.101.7", 0, 3},
	    {LOOK, "198.51.103.255", 0, 3},
	    {LOOK, "198.51.104.0", 0, -1},
	    {LOOK, "203.0.113.1", 0, -1},
	    {COUNT, NULL, 0, 5},
	    {PEER_COUNT, NULL, 0, 2},
	    /* The default route catches what nothing else does. */
	    {INS, "0.0.0.0/0", 4, 0},
	    {LOOK, "203.0.113.1", 0, 4},
	    {LOOK, "0.0.0.0", 0, 4},
	    {LOOK, "255.255.255.255", 0, 4},
	    {LOOK, "192.0.2.1", 0, 2},
	    {INS, "255.255.255.255/32", 5, 0},
	    {LOOK, "255.255.255.255", 0, 5},
	    {LOOK, "255.255.255.254", 0, 4},
	    {COUNT, NULL, 0, 7},
	};
	RUN(steps);
}

Test(allowedips, ipv6_longest_match)
{
	static const struct step steps[] = {
	    {INS, "2001:db8::/32", 0, 0},
	    {INS, "2001:db8:1::/48", 1, 0},
	    {INS, "2001:db8:1:2::/64", 2, 0},
	    {INS, "2001:db8:1:2::1/128", 3, 0},
	    {INS, "2001:db8:8000::/33", 4, 0},
	    {LOOK, "2001:db8:1:2::1", 0, 3},
	    {LOOK, "2001:db8:1:2::2", 0, 2},
	    {LOOK, "2001:db8:1:3::1", 0, 1},
	    {LOOK, "2001:db8:2::1", 0, 0},
	    {LOOK, "2001:db8:7fff:ffff:ffff:ffff:ffff:ffff", 0, 0},
	    {LOOK, "2001:db8:8000::", 0, 4},
	    {LOOK, "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", 0, 4},
	    {LOOK, "2001:db9::", 0, -1},
	    {LOOK, "::", 0, -1},
	    {INS, "::/0", 5, 0},
	    {LOOK, "::", 0, 5},
	    {LOOK, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 0, 5},
	    {INS, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128", 6, 0},
	    {LOOK, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 0, 6},
	    {LOOK, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe", 0, 5},
	    /* A /128 differing only in the last bit from another. */
	    {INS, "2001:db8:1:2::/128", 7, 0},
	    {LOOK, "2001:db8:1:2::", 0, 7},
	    {LOOK, "2001:db8:1:2::1", 0, 3},
	    {COUNT, NULL, 0, 8},
	};
	RUN(steps);
}

/* Full-length prefixes also live in the host index: keep both in step. */
Test(allowedips, host_routes)
{
	static const struct step steps[] = {
	    {INS, "192.0.2.1/32", 0, 0},
	    {INS, "192.0.2.0/24", 1, 0},
	    {INS, "2001:db8::1/128", 0, 0},
	    {INS, "2001:db8::/64", 1, 0},
	    {LOOK, "192.0.2.1", 0, 0},
	    {LOOK, "192.0.2.2", 0, 1},
	    {LOOK, "2001:db8::1", 0, 0},
	    {LOOK, "2001:db8::2", 0, 1},
	    /* The same 32 leading bits in the other family are another key. */
	    {LOOK, "c000:201::", 0, -1},
	    {INS, "192.0.2.1/32", 2, 0},
	    {INS, "2001:db8::1/128", 2, 0},
	    {LOOK, "192.0.2.1", 0, 2},
	    {LOOK, "2001:db8::1", 0, 2},
	    {DEL, "192.0.2.1/32", 0, -ENOENT},
	    {DEL_PEER, NULL, 0, 0},
	    {LOOK, "192.0.2.1", 0, 2},
	    {DEL, "192.0.2.1/32", 2, 0},
	    {LOOK, "192.0.2.1", 0, 1},
	    {LOOK, "2001:db8::1", 0, 2},
	    {DEL_PEER, NULL, 2, 0},
	    {LOOK, "2001:db8::1", 0, 1},
	    {INS, "2001:db8::1/128", 3, 0},
	    {LOOK, "2001:db8::1", 0, 3},
	    {COUNT, NULL, 0, 3},
	};
	RUN(steps);
}

/* Enough host routes to grow the index several times, then remove them. */
Test(allowedips, many_host_routes)
{
	uint8_t addr[16] = {198, 18};

	for (int i = 0; i < 5000; i++) {
		addr[2] = (uint8_t)(i >> 8);
		addr[3] = (uint8_t)i;
		cr_assert_eq(gwd_allowedips_insert(&table, AF_INET, addr, 32, &peers[i % 3].aip),
			     0);
	}
	for (int i = 0; i < 5000; i += 2) {
		addr[2] = (uint8_t)(i >> 8);
		addr[3] = (uint8_t)i;
		cr_assert_eq(gwd_allowedips_remove(&table, AF_INET, addr, 32, &peers[i % 3].aip),
			     0);
	}
	for (int i = 0; i < 5120; i++) {
		addr[2] = (uint8_t)(i >> 8);
		addr[3] = (uint8_t)i;
		cr_assert_eq(peer_id(gwd_allowedips_lookup(&table, AF_INET, addr)),
			     i % 2 && i < 5000 ? i % 3 : -1, "198.18.%d.%d", i >> 8, i & 255);
	}
	/* Back over the tombstones (a rebuild drops them), with other owners. */
	for (int i = 0; i < 5000; i++) {
		addr[2] = (uint8_t)(i >> 8);
		addr[3] = (uint8_t)i;
		cr_assert_eq(gwd_allowedips_insert(&table, AF_INET, addr, 32, &peers[4].aip), 0);
	}
	cr_assert_eq(gwd_allowedips_count(&table), 5000);
	cr_assert_eq(gwd_allowedips_owner_count(&peers[4].aip), 5000);
	for (int i = 0; i < 5120; i++) {
		addr[2] = (uint8_t)(i >> 8);
		addr[3] = (uint8_t)i;
		cr_assert_eq(peer_id(gwd_allowedips_lookup(&table, AF_INET, addr)),
			     i < 5000 ? 4 : -1, "198.18.%d.%d", i >> 8, i & 255);
	}
	for (int p = 0; p < NPEERS; p++)
		gwd_allowedips_remove_by_peer(&table, &peers[p].aip);
	cr_assert_eq(gwd_allowedips_count(&table), 0);
	addr[2] = addr[3] = 7;
	cr_assert_null(gwd_allowedips_lookup(&table, AF_INET, addr));
}

Test(allowedips, families_are_separate)
{
	static const struct step steps[] = {
	    {INS, "::/0", 0, 0},
	    {LOOK, "192.0.2.1", 0, -1},
	    {INS, "0.0.0.0/0", 1, 0},
	    {LOOK, "192.0.2.1", 0, 1},
	    {LOOK, "2001:db8::1", 0, 0},
	    /* The same leading bits in the other family. */
	    {INS, "192.0.2.0/24", 2, 0},
	    {LOOK, "c000:200::", 0, 0},
	    {INS, "c000:200::/24", 3, 0},
	    {LOOK, "192.0.2.9", 0, 2},
	    {DEL, "c000:200::/24", 2, -ENOENT},
	    {DEL, "192.0.2.0/24", 3, -ENOENT},
	    {COUNT, NULL, 0, 4},
	};
	RUN(steps);
}

Test(allowedips, host_bits_are_masked)
{
	static const struct step steps[] = {
	    {INS, "192.0.2.77/24", 0, 0},
	    {LOOK, "192.0.2.1", 0, 0},
	    {LOOK, "192.0.2.77", 0, 0},
	    /* The same prefix, written another way: no new entry. */
	    {INS, "192.0.2.0/24", 0, 0},
	    {COUNT, NULL, 0, 1},
	    {DEL, "192.0.2.200/24", 0, 0},
	    {COUNT, NULL, 0, 0},
	    {INS, "2001:db8::ffff/16", 1, 0},
	    {LOOK, "2001::", 0, 1},
	    {LOOK, "2001:ffff::1", 0, 1},
	    {LOOK, "2002::", 0, -1},
	    {INS, "198.51.100.1/0", 2, 0},
	    {LOOK, "0.0.0.1", 0, 2},
	};
	RUN(steps);
}

Test(allowedips, moves_between_peers)
{
	static const struct step steps[] = {
	    {INS, "192.0.2.0/24", 0, 0},
	    {INS, "198.51.100.0/24", 0, 0},
	    {INS, "192.0.2.0/24", 1, 0},
	    /* A prefix moved to another peer leaves the first. */
	    {LOOK, "192.0.2.1", 0, 1},
	    {PEER_COUNT, NULL, 0, 1},
	    {PEER_COUNT, NULL, 1, 1},
	    {COUNT, NULL, 0, 2},
	    {DEL, "192.0.2.0/24", 0, -ENOENT},
	    {LOOK, "192.0.2.1", 0, 1},
	    {DEL_PEER, NULL, 0, 0},
	    {LOOK, "192.0.2.1", 0, 1},
	    {LOOK, "198.51.100.1", 0, -1},
	    {COUNT, NULL, 0, 1},
	    {DEL, "192.0.2.0/24", 1, 0},
	    {LOOK, "192.0.2.1", 0, -1},
	    {COUNT, NULL, 0, 0},
	};
	RUN(steps);
}

Test(allowedips, remove_exact_only)
{
	static const struct step steps[] = {
	    {INS, "192.0.2.0/24", 0, 0},
	    {INS, "192.0.2.0/25", 0, 0},
	    {INS, "2001:db8::/64", 0, 0},
	    {DEL, "192.0.2.0/23", 0, -ENOENT},
	    {DEL, "192.0.2.0/26", 0, -ENOENT},
	    {DEL, "192.0.2.0/24", 1, -ENOENT},
	    {DEL, "203.0.113.0/24", 0, -ENOENT},
	    {DEL, "2001:db8::/63", 0, -ENOENT},
	    {COUNT, NULL, 0, 3},
	    {DEL, "192.0.2.0/24", 0, 0},
	    {LOOK, "192.0.2.1", 0, 0},
	    {LOOK, "192.0.2.200", 0, -1},
	    {DEL, "192.0.2.0/24", 0, -ENOENT},
	    {DEL, "192.0.2.0/25", 0, 0},
	    {LOOK, "192.0.2.1", 0, -1},
	    {LOOK, "2001:db8::1", 0, 0},
	    {COUNT, NULL, 0, 1},
	};
	RUN(steps);
}

Test(allowedips, remove_by_peer)
{
	static const struct step steps[] = {
	    {INS, "0.0.0.0/0", 0, 0},
	    {INS, "192.0.2.0/24", 1, 0},
	    {INS, "192.0.2.0/28", 2, 0},
	    {INS, "192.0.2.16/28", 1, 0},
	    {INS, "192.0.2.1/32", 1, 0},
	    {INS, "2001:db8::/32", 1, 0},
	    {INS, "2001:db8::/64", 2, 0},
	    {DEL_PEER, NULL, 1, 0},
	    {PEER_COUNT, NULL, 1, 0},
	    {COUNT, NULL, 0, 3},
	    {LOOK, "192.0.2.1", 0, 2},
	    {LOOK, "192.0.2.17", 0, 0},
	    {LOOK, "192.0.2.200", 0, 0},
	    {LOOK, "2001:db8::1", 0, 2},
	    {LOOK, "2001:db8:1::1", 0, -1},
	    /* Removing an empty peer is a no-op; it can own prefixes again. */
	    {DEL_PEER, NULL, 1, 0},
	    {INS, "192.0.2.0/24", 1, 0},
	    {LOOK, "192.0.2.200", 0, 1},
	    {DEL_PEER, NULL, 0, 0},
	    {DEL_PEER, NULL, 2, 0},
	    {DEL_PEER, NULL, 1, 0},
	    {COUNT, NULL, 0, 0},
	};
	RUN(steps);
	cr_assert_null(table.root[0]);
	cr_assert_null(table.root[1]);
	cr_assert_eq(table.nodes, 0);
}

Test(allowedips, invalid_arguments)
{
	static const uint8_t addr[16] = {192, 0, 2, 1};
	struct gwd_allowedips_owner nobody;

	gwd_allowedips_owner_init(&nobody, NULL);
	cr_assert_eq(gwd_allowedips_insert(&table, AF_INET, addr, 33, &peers[0].aip), -EINVAL);
	cr_assert_eq(gwd_allowedips_insert(&table, AF_INET6, addr, 129, &peers[0].aip), -EINVAL);
	cr_assert_eq(gwd_allowedips_insert(&table, AF_UNIX, addr, 8, &peers[0].aip), -EINVAL);
	cr_assert_eq(gwd_allowedips_insert(&table, AF_INET, addr, 8, &nobody), -EINVAL);
	cr_assert_eq(gwd_allowedips_remove(&table, AF_INET, addr, 33, &peers[0].aip), -EINVAL);
	cr_assert_eq(gwd_allowedips_remove(&table, AF_UNIX, addr, 8, &peers[0].aip), -EINVAL);
	cr_assert_null(gwd_allowedips_lookup(&table, AF_UNIX, addr));
	cr_assert_eq(gwd_allowedips_count(&table), 0);
}

Test(allowedips, insert_prefix)
{
	struct gw_prefix p = {
	    .family = AF_INET6, .cidr = 48, .addr = {0x20, 0x01, 0x0d, 0xb8, 0, 7, 1}};
	static const uint8_t in[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 7, 0xff, 0xff};

	cr_assert_eq(gwd_allowedips_insert_prefix(&table, &p, &peers[3].aip), 0);
	cr_assert_eq(peer_id(gwd_allowedips_lookup(&table, AF_INET6, in)), 3);
	p.cidr = 129;
	cr_assert_eq(gwd_allowedips_insert_prefix(&table, &p, &peers[3].aip), -EINVAL);
}

Test(allowedips, lookup_many)
{
	static const struct step steps[] = {
	    {INS, "192.0.2.0/24", 0, 0},
	    {INS, "192.0.2.128/25", 1, 0},
	    {INS, "2001:db8::/32", 2, 0},
	};
	static const uint8_t a1[16] = {192, 0, 2, 1}, a2[16] = {192, 0, 2, 200},
			     a3[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 1}, a4[16] = {203, 0, 113, 1};
	struct gwd_allowedips_query q[] = {
	    {AF_INET, a1, NULL},      {AF_INET, a2, NULL}, {AF_INET6, a3, NULL},
	    {AF_INET, a4, &peers[7]}, {AF_UNIX, a1, NULL}, {AF_INET6, a1, &peers[7]},
	};
	static const int want[] = {0, 1, 2, -1, -1, -1};

	RUN(steps);
	gwd_allowedips_lookup_many(&table, q, 0);
	gwd_allowedips_lookup_many(&table, q, 6);
	for (int i = 0; i < 6; i++)
		cr_assert_eq(peer_id(q[i].peer), want[i], "query %d", i);
}

struct listing {
	char lines[16][GW_PREFIX_STR_LEN + 8];
	int n;
	int stop_after;
};

static int collect(void *ctx, const struct gw_prefix *p)
{
	struct listing *l = ctx;
	char a[INET6_ADDRSTRLEN];

	inet_ntop(p->family, p->addr, a, sizeof(a));
	snprintf(l->lines[l->n], sizeof(l->lines[0]), "%s/%u", a, p->cidr);
	l->n++;
	return l->n == l->stop_after ? 42 : 0;
}

Test(allowedips, for_each_in_insertion_order)
{
	static const struct step steps[] = {
	    {INS, "2001:db8:1::7/48", 0, 0}, {INS, "192.0.2.99/24", 0, 0},
	    {INS, "198.51.100.0/24", 1, 0},  {INS, "0.0.0.0/0", 0, 0},
	    {INS, "198.51.100.0/24", 0, 0},  {INS, "192.0.2.0/24", 0, 0},
	    {INS, "203.0.113.5/32", 0, 0},   {DEL, "0.0.0.0/0", 0, 0},
	};
	static const char *const want[] = {
	    "2001:db8:1::/48",
	    "192.0.2.0/24",
	    "198.51.100.0/24",
	    "203.0.113.5/32",
	};
	struct listing l = {.stop_after = -1};

	RUN(steps);
	cr_assert_eq(gwd_allowedips_for_each(&peers[0].aip, collect, &l), 0);
	cr_assert_eq(l.n, 4);
	for (int i = 0; i < 4; i++)
		cr_assert_str_eq(l.lines[i], want[i], "line %d", i);
	l = (struct listing){.stop_after = 2};
	cr_assert_eq(gwd_allowedips_for_each(&peers[0].aip, collect, &l), 42);
	cr_assert_eq(l.n, 2);
	l = (struct listing){.stop_after = -1};
	cr_assert_eq(gwd_allowedips_for_each(&peers[1].aip, collect, &l), 0);
	cr_assert_eq(l.n, 0);
}

Test(allowedips, free_empties_owners)
{
	static const struct step steps[] = {
	    {INS, "192.0.2.0/24", 0, 0},
	    {INS, "2001:db8::/32", 0, 0},
	    {INS, "198.51.100.0/24", 1, 0},
	};

	RUN(steps);
	gwd_allowedips_free(&table);
	cr_assert_eq(gwd_allowedips_owner_count(&peers[0].aip), 0);
	cr_assert_eq(gwd_allowedips_count(&table), 0);
	/* Owners stay usable: the list was unlinked, not left dangling. */
	gwd_allowedips_remove_by_peer(&table, &peers[0].aip);
	RUN(steps);
	cr_assert_eq(gwd_allowedips_count(&table), 3);
}

/*
 * Randomised comparison with a naive reference: a list of prefixes and a
 * linear scan for the longest one containing the address.
 */
enum { REF_MAX = 4096, RAND_PEERS = 50, ANCHORS = 24 };

struct ref_entry {
	uint8_t addr[16];
	uint8_t cidr;
	int family;
	int peer;
	uint64_t seq; /* when it last got its current owner */
	bool live;
};

struct ref {
	struct ref_entry e[REF_MAX];
	int n;
	uint64_t seq;
};

static uint64_t rng_state;

static uint64_t rnd(void)
{
	/* splitmix64: fixed seed, same sequence on every platform. */
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static unsigned int rnd_below(unsigned int n)
{
	return (unsigned int)(rnd() % n);
}

static void ref_mask(uint8_t addr[16], unsigned int cidr)
{
	for (unsigned int i = 0; i < 16; i++) {
		unsigned int lo = i * 8;

		if (cidr <= lo)
			addr[i] = 0;
		else if (cidr < lo + 8)
			addr[i] &= (uint8_t)(0xff << (lo + 8 - cidr));
	}
}

static bool ref_contains(const struct ref_entry *e, int family, const uint8_t *addr)
{
	unsigned int full = e->cidr / 8, rest = e->cidr % 8;

	if (e->family != family || memcmp(e->addr, addr, full))
		return false;
	return !rest || !((e->addr[full] ^ addr[full]) & (uint8_t)(0xff << (8 - rest)));
}

static int ref_lookup(const struct ref *r, int family, const uint8_t *addr)
{
	int best = -1, best_cidr = -1;

	for (int i = 0; i < r->n; i++) {
		const struct ref_entry *e = &r->e[i];

		if (e->live && e->cidr > best_cidr && ref_contains(e, family, addr)) {
			best = e->peer;
			best_cidr = e->cidr;
		}
	}
	return best;
}

/* Index of the live entry for a masked prefix, or -1. */
static int ref_find(const struct ref *r, int family, const uint8_t *addr, uint8_t cidr)
{
	for (int i = 0; i < r->n; i++) {
		const struct ref_entry *e = &r->e[i];

		if (e->live && e->family == family && e->cidr == cidr && !memcmp(e->addr, addr, 16))
			return i;
	}
	return -1;
}

static int ref_live_count(const struct ref *r, int peer)
{
	int n = 0;

	for (int i = 0; i < r->n; i++)
		n += r->e[i].live && (peer < 0 || r->e[i].peer == peer);
	return n;
}

struct anchors {
	uint8_t a[2][ANCHORS][16]; /* [0] IPv4, [1] IPv6 */
};

/*
 * An address near one of a few anchors (so prefixes overlap and nest) or,
 * now and then, anywhere.
 */
static void random_addr(const struct anchors *an, int family, uint8_t addr[16])
{
	int len = family == AF_INET ? 4 : 16;
	unsigned int keep;

	memset(addr, 0, 16);
	if (rnd_below(8) == 0) {
		for (int i = 0; i < len; i++)
			addr[i] = (uint8_t)rnd();
		return;
	}
	memcpy(addr, an->a[family == AF_INET6][rnd_below(ANCHORS)], 16);
	keep = rnd_below(len * 8 + 1);
	for (int i = 0; i < len; i++) {
		unsigned int lo = (unsigned int)i * 8;
		uint8_t noise = (uint8_t)rnd();

		if (keep <= lo)
			addr[i] = noise;
		else if (keep < lo + 8)
			addr[i] ^= noise & (uint8_t)(0xff >> (keep - lo));
	}
}

/*
 * Prefix lengths spread over the whole range, with more around the middle,
 * and many full-length ones (they take the host index's path).
 */
static uint8_t random_cidr(int family)
{
	unsigned int bits = family == AF_INET ? 32 : 128;

	if (rnd_below(5) == 0)
		return (uint8_t)bits;
	if (rnd_below(4) == 0)
		return (uint8_t)rnd_below(bits + 1);
	return (uint8_t)((rnd_below(bits + 1) + rnd_below(bits + 1)) / 2);
}

static struct test_peer rpeers[RAND_PEERS];

static void rand_insert(struct ref *r, const struct anchors *an, int family)
{
	uint8_t addr[16];
	uint8_t cidr = random_cidr(family);
	int peer = (int)rnd_below(RAND_PEERS);
	struct ref_entry *e;
	int i;

	random_addr(an, family, addr);
	cr_assert_eq(gwd_allowedips_insert(&table, family, addr, cidr, &rpeers[peer].aip), 0);
	ref_mask(addr, cidr);
	i = ref_find(r, family, addr, cidr);
	if (i >= 0) {
		e = &r->e[i];
	} else {
		cr_assert_lt(r->n, REF_MAX);
		e = &r->e[r->n++];
		memcpy(e->addr, addr, 16);
		e->cidr = cidr;
		e->family = family;
		e->live = true;
		e->peer = -1;
	}
	if (e->peer != peer) {
		e->peer = peer;
		e->seq = r->seq++;
	}
}

/* Removes a live prefix, by its owner or (failing) by another peer. */
static void rand_remove(struct ref *r)
{
	struct ref_entry *e;
	int peer, ret;

	if (!r->n)
		return;
	e = &r->e[rnd_below((unsigned int)r->n)];
	if (!e->live)
		return;
	peer = rnd_below(4) == 0 ? (int)rnd_below(RAND_PEERS) : e->peer;
	ret = gwd_allowedips_remove(&table, e->family, e->addr, e->cidr, &rpeers[peer].aip);
	cr_assert_eq(ret, peer == e->peer ? 0 : -ENOENT);
	if (peer == e->peer)
		e->live = false;
}

static void rand_remove_peer(struct ref *r)
{
	int peer = (int)rnd_below(RAND_PEERS);

	gwd_allowedips_remove_by_peer(&table, &rpeers[peer].aip);
	for (int i = 0; i < r->n; i++)
		if (r->e[i].peer == peer)
			r->e[i].live = false;
}

/*
 * Usually near the anchors; one time in four inside a configured prefix
 * (exactly the address, for a full-length one).
 */
static void random_lookup_addr(const struct ref *r, const struct anchors *an, int family,
			       uint8_t addr[16])
{
	const struct ref_entry *e;
	uint8_t noise[16];

	random_addr(an, family, addr);
	if (!r->n || rnd_below(4))
		return;
	e = &r->e[rnd_below((unsigned int)r->n)];
	if (e->family != family)
		return;
	random_addr(an, family, noise);
	for (unsigned int i = 0; i < 16; i++) {
		unsigned int lo = i * 8;
		uint8_t keep = e->cidr >= lo + 8 ? 0xff
			       : e->cidr <= lo	 ? 0
						 : (uint8_t)(0xff << (lo + 8 - e->cidr));

		addr[i] = (e->addr[i] & keep) | (noise[i] & (uint8_t)~keep);
	}
}

static void report_mismatch(int i, int family, const uint8_t *addr, int got, int want,
			    const char *how)
{
	char s[INET6_ADDRSTRLEN];

	inet_ntop(family, addr, s, sizeof(s));
	cr_assert_fail("%s lookup %d of %s: got peer %d, want %d", how, i, s, got, want);
}

/*
 * n random lookups of both families, each checked against the scan, once
 * alone and once within a batch (37 queries: not a multiple of the lockstep
 * width).
 */
static void check_lookups(const struct ref *r, const struct anchors *an, int n)
{
	enum { B = 37 };
	struct gwd_allowedips_query q[B];
	uint8_t addrs[B][16];
	int want[B];

	for (int i = 0; i < n; i += B) {
		int k = n - i < B ? n - i : B;

		for (int j = 0; j < k; j++) {
			int family = rnd_below(2) ? AF_INET6 : AF_INET;
			int got;

			random_lookup_addr(r, an, family, addrs[j]);
			want[j] = ref_lookup(r, family, addrs[j]);
			got = peer_id(gwd_allowedips_lookup(&table, family, addrs[j]));
			if (got != want[j])
				report_mismatch(i + j, family, addrs[j], got, want[j], "single");
			q[j] = (struct gwd_allowedips_query){.family = family, .addr = addrs[j]};
		}
		gwd_allowedips_lookup_many(&table, q, (size_t)k);
		for (int j = 0; j < k; j++)
			if (peer_id(q[j].peer) != want[j])
				report_mismatch(i + j, q[j].family, addrs[j], peer_id(q[j].peer),
						want[j], "batched");
	}
}

struct seq_check {
	const struct ref *r;
	int peer;
	uint64_t last_seq;
	int n;
};

/* Each listed prefix is live for this peer, in increasing seq order. */
static int check_listed(void *ctx, const struct gw_prefix *p)
{
	struct seq_check *c = ctx;
	uint8_t addr[16] = {0};
	const struct ref_entry *e;
	int i;

	memcpy(addr, p->addr, p->family == AF_INET ? 4 : 16);
	i = ref_find(c->r, p->family, addr, p->cidr);
	cr_assert_geq(i, 0, "listed prefix not in reference");
	e = &c->r->e[i];
	cr_assert_eq(e->peer, c->peer);
	cr_assert(c->n == 0 || e->seq > c->last_seq, "listing out of insertion order");
	c->last_seq = e->seq;
	c->n++;
	return 0;
}

static void check_counts_and_listings(const struct ref *r)
{
	cr_assert_eq(gwd_allowedips_count(&table), (size_t)ref_live_count(r, -1));
	for (int p = 0; p < RAND_PEERS; p++) {
		struct seq_check c = {.r = r, .peer = p};

		cr_assert_eq(gwd_allowedips_owner_count(&rpeers[p].aip),
			     (size_t)ref_live_count(r, p));
		cr_assert_eq(gwd_allowedips_for_each(&rpeers[p].aip, check_listed, &c), 0);
		cr_assert_eq(c.n, ref_live_count(r, p));
	}
}

/*
 * inserts prefixes per family, with removals mixed in; lookups checked in
 * ten batches along the way.
 */
static void random_round(uint64_t seed, int inserts, int lookups)
{
	int every = inserts / 5 > 0 ? inserts / 5 : 1;

	static struct ref r;
	static struct anchors an;

	rng_state = seed;
	memset(&r, 0, sizeof(r));
	for (int i = 0; i < RAND_PEERS; i++) {
		rpeers[i].id = i;
		gwd_allowedips_owner_init(&rpeers[i].aip, &rpeers[i]);
	}
	for (int f = 0; f < 2; f++)
		for (int i = 0; i < ANCHORS; i++)
			for (int b = 0; b < 16; b++)
				an.a[f][i][b] = f == 0 && b >= 4 ? 0 : (uint8_t)rnd();

	for (int i = 1; i <= 2 * inserts; i++) {
		rand_insert(&r, &an, i % 2 ? AF_INET : AF_INET6);
		if (rnd_below(8) == 0)
			rand_remove(&r);
		if (rnd_below(500) == 0)
			rand_remove_peer(&r);
		if (i % every == 0) {
			check_lookups(&r, &an, lookups / 10);
			check_counts_and_listings(&r);
		}
	}
	for (int p = 0; p < RAND_PEERS; p++)
		gwd_allowedips_remove_by_peer(&table, &rpeers[p].aip);
	cr_assert_eq(gwd_allowedips_count(&table), 0);
	/* Compaction left no node behind. */
	cr_assert_null(table.root[0]);
	cr_assert_null(table.root[1]);
	cr_assert_eq(table.nodes, 0);
}

/* 2000 prefixes per family, 100k lookups per family checked against the scan. */
Test(allowedips, random_against_reference, .timeout = 240)
{
	random_round(0x5eed0001, 2000, 200000);
}

/* Many small tables: shapes near the root (/0, /1, splits at bit 0) recur. */
Test(allowedips, random_small_tables)
{
	for (uint64_t seed = 1; seed <= 200; seed++)
		random_round(seed, 20, 2000);
}
