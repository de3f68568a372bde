// SPDX-License-Identifier: MIT
/*
 * Allowed IPs against a reference: the input is a program of inserts,
 * removals, peer removals and lookups on both families, run on the table
 * and on a plain list searched linearly for the longest prefix. Every
 * return code, lookup (single and batched), count and listing must agree;
 * any difference aborts. Addresses may reuse leading bytes of the previous
 * one, so that prefixes nest and share trie nodes.
 *
 * Each op: one byte (kind in the low 2 bits, family in bit 2, peer in bits
 * 3..5), then for kinds 0-2 a cidr byte, a shape byte (how many leading
 * bytes to keep from the previous address) and the new bytes.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "allowedips.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum { PEERS = 8, REF_MAX = 256 };

struct fpeer {
	struct gwd_allowedips_owner aip;
	int id;
};

struct ref_entry {
	int family;
	uint8_t addr[16];
	uint8_t cidr;
	int peer;
	uint64_t seq;
};

static struct ref_entry ref[REF_MAX];
static int nref;
static uint64_t seq;

static void mask(uint8_t a[16], unsigned int cidr)
{
	for (unsigned int i = 0; i < 16; i++) {
		if (cidr <= 8 * i)
			a[i] = 0;
		else if (cidr < 8 * i + 8)
			a[i] &= (uint8_t)(0xff << (8 * i + 8 - cidr));
	}
}

static bool contains(const struct ref_entry *e, int family, const uint8_t *a)
{
	uint8_t m[16];

	if (e->family != family)
		return false;
	memcpy(m, a, 16);
	mask(m, e->cidr);
	return !memcmp(m, e->addr, 16);
}

static int ref_find(int family, const uint8_t a[16], uint8_t cidr)
{
	for (int i = 0; i < nref; i++)
		if (ref[i].family == family && ref[i].cidr == cidr && !memcmp(ref[i].addr, a, 16))
			return i;
	return -1;
}

static int ref_lookup(int family, const uint8_t *a)
{
	int best = -1, best_cidr = -1;

	for (int i = 0; i < nref; i++) {
		if (ref[i].cidr > best_cidr && contains(&ref[i], family, a)) {
			best = ref[i].peer;
			best_cidr = ref[i].cidr;
		}
	}
	return best;
}

static void ref_del(int i)
{
	ref[i] = ref[--nref];
}

static int id_of(void *p)
{
	return p ? ((struct fpeer *)p)->id : -1;
}

struct listing {
	int peer, n;
	uint64_t last;
};

static int check_listed(void *ctx, const struct gw_prefix *p)
{
	struct listing *l = ctx;
	uint8_t a[16] = {0};
	int i;

	memcpy(a, p->addr, p->family == AF_INET ? 4 : 16);
	i = ref_find(p->family, a, p->cidr);
	if (i < 0 || ref[i].peer != l->peer || (l->n && ref[i].seq <= l->last))
		abort();
	l->last = ref[i].seq;
	l->n++;
	return 0;
}

static void check_all(const struct gwd_allowedips *t, struct fpeer *peers)
{
	if (gwd_allowedips_count(t) != (size_t)nref)
		abort();
	for (int p = 0; p < PEERS; p++) {
		struct listing l = {.peer = p};

		if (gwd_allowedips_for_each(&peers[p].aip, check_listed, &l) ||
		    (size_t)l.n != gwd_allowedips_owner_count(&peers[p].aip))
			abort();
	}
}

static void check_lookup(const struct gwd_allowedips *t, int family, const uint8_t a[16])
{
	struct gwd_allowedips_query q[3] = {
	    {.family = family, .addr = a},
	    {.family = AF_UNSPEC, .addr = a}, /* no family: no peer */
	    {.family = family, .addr = a},
	};
	int want = ref_lookup(family, a);

	if (id_of(gwd_allowedips_lookup(t, family, a)) != want)
		abort();
	gwd_allowedips_lookup_many(t, q, 3);
	if (id_of(q[0].peer) != want || q[1].peer || id_of(q[2].peer) != want)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct fpeer peers[PEERS];
	struct gwd_allowedips t;
	uint8_t prev[16] = {0};
	size_t i = 0, ops = 0;

	gwd_allowedips_init(&t);
	for (int p = 0; p < PEERS; p++) {
		peers[p].id = p;
		gwd_allowedips_owner_init(&peers[p].aip, &peers[p]);
	}
	nref = 0;
	seq = 0;
	while (i < size) {
		uint8_t op = data[i++];
		int kind = op & 3, family = op & 4 ? AF_INET6 : AF_INET, peer = (op >> 3) & 7;
		unsigned int len = family == AF_INET ? 4 : 16, keep, cidr;
		uint8_t a[16] = {0}, m[16];
		int r, j;

		if (kind == 3) {
			gwd_allowedips_remove_by_peer(&t, &peers[peer].aip);
			for (j = nref - 1; j >= 0; j--)
				if (ref[j].peer == peer)
					ref_del(j);
			check_all(&t, peers);
			continue;
		}
		if (size - i < 2)
			break;
		cidr = data[i++] % (8 * len + 1);
		keep = data[i++] % (len + 1);
		memcpy(a, prev, keep);
		for (unsigned int k = keep; k < len && i < size; k++)
			a[k] = data[i++];
		if (family == AF_INET)
			memset(a + 4, 0, 12);
		memcpy(prev, a, 16);
		memcpy(m, a, 16);
		mask(m, cidr);
		j = ref_find(family, m, (uint8_t)cidr);
		if (kind == 0 || kind == 1) {
			r = gwd_allowedips_insert(&t, family, a, (uint8_t)cidr, &peers[peer].aip);
			if (j < 0 && nref == REF_MAX) {
				/* The reference is full: undo (a removal cannot fail). */
				if (r || gwd_allowedips_remove(&t, family, a, (uint8_t)cidr,
							       &peers[peer].aip))
					abort();
			} else if (r) {
				abort();
			} else if (j < 0) {
				ref[nref] = (struct ref_entry){.family = family,
							       .cidr = (uint8_t)cidr,
							       .peer = peer,
							       .seq = seq++};
				memcpy(ref[nref++].addr, m, 16);
			} else if (ref[j].peer != peer) {
				ref[j].peer = peer;
				ref[j].seq = seq++;
			}
		} else {
			r = gwd_allowedips_remove(&t, family, a, (uint8_t)cidr, &peers[peer].aip);
			if (r != (j >= 0 && ref[j].peer == peer ? 0 : -ENOENT))
				abort();
			if (!r)
				ref_del(j);
		}
		check_lookup(&t, family, a);
		/* Also a neighbour: the address with its last host bits flipped. */
		a[len - 1] ^= 0x5a;
		check_lookup(&t, family, a);
		if (++ops % 64 == 0)
			check_all(&t, peers);
	}
	check_all(&t, peers);
	/* Everything goes, peer by peer, and nothing answers any more. */
	for (int p = 0; p < PEERS; p++)
		gwd_allowedips_remove_by_peer(&t, &peers[p].aip);
	if (gwd_allowedips_count(&t) || t.nodes || t.root[0] || t.root[1])
		abort();
	gwd_allowedips_free(&t);
	return 0;
}
