/* SPDX-License-Identifier: MIT */
/*
 * Allowed IPs when memory runs out: the same random program of inserts and
 * removals is run again and again, with allocation number k failing in run
 * k, until a run has no allocation left to fail. An insert that fails must
 * return -ENOMEM and change nothing, a removal must succeed; after every
 * step the lookups and counts must match a reference (a list searched
 * linearly), and at the end everything is freed (the sanitizer build checks
 * for leaks).
 *
 * The allocator is wrapped at link time (tests/CMakeLists.txt).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "allowedips.h"

void *__real_malloc(size_t size);
void *__real_calloc(size_t n, size_t size);
int __real_posix_memalign(void **p, size_t align, size_t size);
void *__real_aligned_alloc(size_t align, size_t size);
void *__wrap_malloc(size_t size);
void *__wrap_calloc(size_t n, size_t size);
int __wrap_posix_memalign(void **p, size_t align, size_t size);
void *__wrap_aligned_alloc(size_t align, size_t size);

static long allocs, fail_at; /* fail allocation number fail_at (0: none) */

static bool fail_now(void)
{
	return ++allocs == fail_at;
}

void *__wrap_malloc(size_t size)
{
	return fail_now() ? NULL : __real_malloc(size);
}

void *__wrap_calloc(size_t n, size_t size)
{
	return fail_now() ? NULL : __real_calloc(n, size);
}

int __wrap_posix_memalign(void **p, size_t align, size_t size)
{
	return fail_now() ? ENOMEM : __real_posix_memalign(p, align, size);
}

void *__wrap_aligned_alloc(size_t align, size_t size)
{
	return fail_now() ? NULL : __real_aligned_alloc(align, size);
}

enum { PEERS = 4, MAXREF = 256, STEPS = 160 };

struct npeer {
	struct gwd_allowedips_owner aip;
	int id;
};

struct nref {
	int family, peer;
	uint8_t addr[16], cidr;
};

static struct nref ref[MAXREF];
static int nref;
static uint64_t rng;

static uint64_t rnd(void)
{
	uint64_t z = (rng += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static void mask(uint8_t a[16], unsigned int cidr)
{
	for (unsigned int i = 0; i < 16; i++) {
		if (cidr <= 8 * i)
			a[i] = 0;
		else if (cidr < 8 * i + 8)
			a[i] &= (uint8_t)(0xff << (8 * i + 8 - cidr));
	}
}

static int ref_find(int family, const uint8_t m[16], uint8_t cidr)
{
	for (int i = 0; i < nref; i++)
		if (ref[i].family == family && ref[i].cidr == cidr && !memcmp(ref[i].addr, m, 16))
			return i;
	return -1;
}

static int ref_lookup(int family, const uint8_t a[16])
{
	int best = -1, best_cidr = -1;

	for (int i = 0; i < nref; i++) {
		uint8_t m[16];

		memcpy(m, a, 16);
		mask(m, ref[i].cidr);
		if (ref[i].family == family && ref[i].cidr > best_cidr &&
		    !memcmp(m, ref[i].addr, 16)) {
			best = ref[i].peer;
			best_cidr = ref[i].cidr;
		}
	}
	return best;
}

/* Addresses near a few anchors, so that prefixes nest and share nodes. */
static void random_prefix(int *family, uint8_t a[16], uint8_t *cidr)
{
	static const uint8_t anchors[4][16] = {
	    {198, 18, 7, 9},
	    {198, 18, 200, 1},
	    {0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5},
	    {0x20, 0x01, 0x0d, 0xb8, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9},
	};
	uint64_t r = rnd();
	unsigned int which = r % 4, bits;

	*family = which < 2 ? AF_INET : AF_INET6;
	bits = *family == AF_INET ? 32 : 128;
	memcpy(a, anchors[which], 16);
	a[(bits / 8) - 1 - (r >> 8) % 2] ^= (uint8_t)(r >> 16);
	*cidr = (r >> 24) % 4 == 0 ? (uint8_t)bits : (uint8_t)((r >> 32) % (bits + 1));
}

static int id_of(void *p)
{
	return p ? ((struct npeer *)p)->id : -1;
}

static void check(const struct gwd_allowedips *t, struct npeer *peers)
{
	cr_assert_eq(gwd_allowedips_count(t), (size_t)nref);
	for (int i = 0; i < nref; i++) {
		uint8_t a[16];

		memcpy(a, ref[i].addr, 16);
		for (int flip = 0; flip < 3; flip++) {
			cr_assert_eq(id_of(gwd_allowedips_lookup(t, ref[i].family, a)),
				     ref_lookup(ref[i].family, a), "allocation %ld failed",
				     fail_at);
			a[ref[i].family == AF_INET ? 3 : 15] ^= (uint8_t)(0x11 << flip);
		}
	}
	for (int p = 0; p < PEERS; p++) {
		int n = 0;

		for (int i = 0; i < nref; i++)
			n += ref[i].peer == p;
		cr_assert_eq(gwd_allowedips_owner_count(&peers[p].aip), (size_t)n);
	}
}

/* One run with allocation k failing; false when nothing failed. */
static bool run(long k)
{
	struct npeer peers[PEERS];
	struct gwd_allowedips t;
	bool failed;

	allocs = 0;
	fail_at = k;
	rng = 7;
	nref = 0;
	gwd_allowedips_init(&t);
	for (int p = 0; p < PEERS; p++) {
		peers[p].id = p;
		gwd_allowedips_owner_init(&peers[p].aip, &peers[p]);
	}
	for (int step = 0; step < STEPS; step++) {
		uint8_t a[16] = {0}, m[16], cidr;
		int family, peer = (int)(rnd() % PEERS), i, ret;

		random_prefix(&family, a, &cidr);
		memcpy(m, a, 16);
		mask(m, cidr);
		i = ref_find(family, m, cidr);
		if (rnd() % 3 == 0) {
			/* Remove a live prefix (with its owner) or peer 0's all. */
			if (nref && rnd() % 8) {
				i = (int)(rnd() % (uint64_t)nref);
				ret = gwd_allowedips_remove(&t, ref[i].family, ref[i].addr,
							    ref[i].cidr, &peers[ref[i].peer].aip);
				cr_assert_eq(ret, 0);
				ref[i] = ref[--nref];
			} else {
				gwd_allowedips_remove_by_peer(&t, &peers[0].aip);
				for (i = nref - 1; i >= 0; i--)
					if (ref[i].peer == 0)
						ref[i] = ref[--nref];
			}
		} else {
			long before = allocs;

			ret = gwd_allowedips_insert(&t, family, a, cidr, &peers[peer].aip);
			if (ret == -ENOMEM) {
				cr_assert(before < fail_at && fail_at <= allocs,
					  "-ENOMEM without a failed allocation");
			} else {
				cr_assert_eq(ret, 0);
				if (i >= 0) {
					ref[i].peer = peer;
				} else {
					cr_assert_lt(nref, MAXREF);
					ref[nref] = (struct nref){
					    .family = family, .peer = peer, .cidr = cidr};
					memcpy(ref[nref++].addr, m, 16);
				}
			}
		}
		check(&t, peers);
	}
	failed = k && allocs >= k; /* an insert's, or a removal's (which copes) */
	fail_at = 0;
	for (int p = 0; p < PEERS; p++)
		gwd_allowedips_remove_by_peer(&t, &peers[p].aip);
	cr_assert_eq(gwd_allowedips_count(&t), 0);
	gwd_allowedips_free(&t);
	return failed;
}

Test(allowedips_nomem, every_allocation_fails_once)
{
	long k;

	run(0);
	cr_assert_gt(allocs, 50, "the program allocates (%ld)", allocs);
	for (k = 1; run(k); k++)
		;
	cr_log_info("%ld runs, one allocation failing in each", k - 1);
	cr_assert_gt(k, 50);
}
