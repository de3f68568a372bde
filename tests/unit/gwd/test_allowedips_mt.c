/* SPDX-License-Identifier: MIT */
/*
 * Allowed IPs with reader threads: lookups on two threads while the writer
 * churns the table around them (sanitizer builds catch a node freed too
 * early as a use after free).
 *
 * The stable part: for each X in 0..63, 198.18.X.0/25 belongs to peer X and
 * 198.18.X.Y/32 (Y = 1..15) to peer 64 + Y, and 2001:db8:1:X::/64 and
 * 2001:db8:1:X::Y/128 likewise. Queries are addresses in those prefixes;
 * their answers never change. The churn, which shares the trie nodes and
 * host tables with them: prefixes in the upper halves (198.18.X.128/25 to
 * /32, 2001:db8:1:X:8000::/65 to /128), shorter prefixes covering
 * everything (198.0.0.0/8, 198.18.0.0/16, 0.0.0.0/0, 2001:db8::/32, ::/0),
 * inserted, moved between peers and removed, and whole peers removed.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

#include "allowedips.h"

enum { NX = 64, NY = 16, STABLE = 64 + NY, CHURN = 16, NPEER = STABLE + CHURN, NREADERS = 2 };

struct mt_peer {
	struct gwd_allowedips_owner aip;
	int id;
};

static struct gwd_allowedips table;
static struct mt_peer mpeers[NPEER];
static atomic_bool stop;
static atomic_long wrong, done_lookups;

static uint64_t splitmix(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static void v4(uint8_t a[16], unsigned int x, unsigned int y)
{
	memset(a, 0, 16);
	a[0] = 198, a[1] = 18, a[2] = (uint8_t)x, a[3] = (uint8_t)y;
}

static void v6(uint8_t a[16], unsigned int x, unsigned int y)
{
	static const uint8_t net[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 1};

	memcpy(a, net, 16);
	a[7] = (uint8_t)x;
	a[8] = (uint8_t)(y >> 8); /* y < 0x100: the lower half of the /64 */
	a[15] = (uint8_t)y;
}

static void insert_stable(void)
{
	uint8_t a[16];

	for (unsigned int x = 0; x < NX; x++) {
		v4(a, x, 0);
		cr_assert_eq(gwd_allowedips_insert(&table, AF_INET, a, 25, &mpeers[x].aip), 0);
		v6(a, x, 0);
		cr_assert_eq(gwd_allowedips_insert(&table, AF_INET6, a, 64, &mpeers[x].aip), 0);
		for (unsigned int y = 1; y < NY; y++) {
			v4(a, x, y);
			cr_assert_eq(
			    gwd_allowedips_insert(&table, AF_INET, a, 32, &mpeers[64 + y].aip), 0);
			v6(a, x, y);
			cr_assert_eq(
			    gwd_allowedips_insert(&table, AF_INET6, a, 128, &mpeers[64 + y].aip),
			    0);
		}
	}
}

/* A stable query and the peer it must find. */
static int stable_query(uint64_t *s, int *family, uint8_t a[16])
{
	uint64_t r = splitmix(s);
	unsigned int x = r % NX, y = (r >> 8) % 128;

	*family = (r >> 16) & 1 ? AF_INET6 : AF_INET;
	if (*family == AF_INET)
		v4(a, x, y);
	else
		v6(a, x, y);
	return y >= 1 && y < NY ? 64 + (int)y : (int)x;
}

static int id_of(void *p)
{
	return p ? ((struct mt_peer *)p)->id : -1;
}

static void *reader(void *arg)
{
	struct gwd_allowedips_reader *r = arg;
	uint64_t s = (uint64_t)(uintptr_t)arg;
	struct gwd_allowedips_query q[32];
	uint8_t addrs[32][16];
	int want[32];
	long n = 0;

	while (!atomic_load(&stop)) {
		gwd_allowedips_read_begin(&table, r);
		for (int i = 0; i < 32; i++) {
			int family;

			want[i] = stable_query(&s, &family, addrs[i]);
			if (id_of(gwd_allowedips_lookup(&table, family, addrs[i])) != want[i])
				atomic_fetch_add(&wrong, 1);
			q[i] = (struct gwd_allowedips_query){.family = family, .addr = addrs[i]};
		}
		gwd_allowedips_lookup_many(&table, q, 32);
		gwd_allowedips_read_end(r);
		for (int i = 0; i < 32; i++)
			if (id_of(q[i].peer) != want[i])
				atomic_fetch_add(&wrong, 1);
		n += 64;
	}
	atomic_fetch_add(&done_lookups, n);
	return NULL;
}

/* The last inserts, for removals that hit. */
struct recent {
	int family;
	uint8_t addr[16];
	uint8_t cidr;
	struct gwd_allowedips_owner *o;
};

static struct recent ring[64];

/* One random change of the churn set. */
static void churn(uint64_t *s)
{
	static const uint8_t cover4[][2] = {{0, 0}, {8, 198}, {16, 198}};
	uint64_t r = splitmix(s);
	struct gwd_allowedips_owner *o = &mpeers[STABLE + r % CHURN].aip;
	int family = (r >> 8) & 1 ? AF_INET6 : AF_INET;
	unsigned int kind = (r >> 9) % 16, cidr;
	uint8_t a[16];

	if (kind == 0) {
		gwd_allowedips_remove_by_peer(&table, o);
		return;
	}
	if (kind < 3) {
		/* A short prefix above everything. */
		memset(a, 0, 16);
		if (family == AF_INET) {
			cidr = cover4[(r >> 13) % 3][0];
			a[0] = cover4[(r >> 13) % 3][1], a[1] = 18;
		} else {
			cidr = (r >> 13) % 2 ? 32 : 0;
			a[0] = 0x20, a[1] = 0x01, a[2] = 0x0d, a[3] = 0xb8;
		}
	} else if (family == AF_INET) {
		cidr = 25 + (unsigned int)((r >> 13) % 8);
		v4(a, (r >> 16) % NX, 128 + (unsigned int)((r >> 24) % 128));
	} else {
		cidr = 65 + (unsigned int)((r >> 13) % 64);
		v6(a, (r >> 16) % NX, 0);
		a[8] = (uint8_t)(0x80 | (r >> 24));
		a[9 + (r >> 32) % 7] = (uint8_t)(r >> 40);
	}
	if (kind < 12) {
		struct recent *rc = &ring[(r >> 48) % 64];

		cr_assert_eq(gwd_allowedips_insert(&table, family, a, (uint8_t)cidr, o), 0);
		*rc = (struct recent){.family = family, .cidr = (uint8_t)cidr, .o = o};
		memcpy(rc->addr, a, 16);
	} else {
		struct recent *rc = &ring[(r >> 48) % 64];

		if (rc->o)
			(void)gwd_allowedips_remove(&table, rc->family, rc->addr, rc->cidr, rc->o);
	}
}

static void setup(void)
{
	gwd_allowedips_init(&table);
	for (int i = 0; i < NPEER; i++) {
		mpeers[i].id = i;
		gwd_allowedips_owner_init(&mpeers[i].aip, &mpeers[i]);
	}
	atomic_store(&stop, false);
	atomic_store(&wrong, 0);
	atomic_store(&done_lookups, 0);
	memset(ring, 0, sizeof(ring));
}

static void teardown(void)
{
	gwd_allowedips_free(&table);
}

TestSuite(allowedips_mt, .init = setup, .fini = teardown);

Test(allowedips_mt, readers_see_stable_answers_through_churn, .timeout = 240)
{
	static struct gwd_allowedips_reader readers[NREADERS];
	pthread_t th[NREADERS];
	uint64_t s = 42;

	insert_stable();
	for (int i = 0; i < NREADERS; i++) {
		gwd_allowedips_reader_add(&table, &readers[i]);
		cr_assert_eq(pthread_create(&th[i], NULL, reader, &readers[i]), 0);
	}
	for (int i = 0; i < 60000; i++) {
		churn(&s);
		if (i % 1000 == 999)
			gwd_allowedips_reclaim(&table);
	}
	atomic_store(&stop, true);
	for (int i = 0; i < NREADERS; i++) {
		cr_assert_eq(pthread_join(th[i], NULL), 0);
		gwd_allowedips_reader_del(&table, &readers[i]);
	}
	cr_log_info("%ld lookups by the readers", atomic_load(&done_lookups));
	cr_expect_gt(atomic_load(&done_lookups), 0);
	cr_expect_eq(atomic_load(&wrong), 0, "%ld lookups gave a wrong peer", atomic_load(&wrong));
	/* Nothing is left waiting once no reader is registered. */
	cr_expect_null(table.garbage);
}

/* A reader that stays in its section holds back what the writer replaced. */
Test(allowedips_mt, section_holds_back_reclamation)
{
	struct gwd_allowedips_reader r;
	uint8_t a[16];

	v4(a, 1, 0);
	gwd_allowedips_reader_add(&table, &r);
	cr_assert_eq(gwd_allowedips_insert(&table, AF_INET, a, 25, &mpeers[0].aip), 0);
	gwd_allowedips_reclaim(&table);
	cr_assert_null(table.garbage);
	gwd_allowedips_read_begin(&table, &r);
	v4(a, 1, 0);
	cr_assert_eq(gwd_allowedips_insert(&table, AF_INET, a, 26, &mpeers[1].aip), 0);
	cr_assert_not_null(table.garbage, "the replaced node waits for the reader");
	gwd_allowedips_reclaim(&table);
	cr_assert_not_null(table.garbage);
	gwd_allowedips_read_end(&r);
	gwd_allowedips_reclaim(&table);
	cr_assert_null(table.garbage);
	/*
	 * Removing the /26 only stores new values into the node; removing the
	 * /25 too takes the node out. A section begun after that does not hold
	 * it back.
	 */
	gwd_allowedips_read_begin(&table, &r);
	cr_assert_eq(gwd_allowedips_remove(&table, AF_INET, a, 26, &mpeers[1].aip), 0);
	cr_assert_null(table.garbage);
	cr_assert_eq(gwd_allowedips_remove(&table, AF_INET, a, 25, &mpeers[0].aip), 0);
	cr_assert_not_null(table.garbage);
	cr_assert_null(table.root[0]);
	gwd_allowedips_read_end(&r);
	gwd_allowedips_read_begin(&table, &r);
	gwd_allowedips_reclaim(&table);
	cr_assert_null(table.garbage);
	gwd_allowedips_read_end(&r);
	gwd_allowedips_reader_del(&table, &r);
}

struct sync_arg {
	struct gwd_allowedips_reader *r;
	atomic_bool in, ended;
};

static void *slow_reader(void *p)
{
	struct sync_arg *a = p;
	struct timespec ts = {0, 100 * 1000 * 1000};

	gwd_allowedips_read_begin(&table, a->r);
	atomic_store(&a->in, true);
	nanosleep(&ts, NULL);
	atomic_store(&a->ended, true);
	gwd_allowedips_read_end(a->r);
	return NULL;
}

Test(allowedips_mt, synchronize_waits_for_sections)
{
	struct gwd_allowedips_reader r;
	struct sync_arg a = {.r = &r};
	pthread_t th;

	gwd_allowedips_reader_add(&table, &r);
	cr_assert_eq(pthread_create(&th, NULL, slow_reader, &a), 0);
	while (!atomic_load(&a.in))
		sched_yield();
	gwd_allowedips_synchronize(&table);
	cr_expect(atomic_load(&a.ended), "synchronize returned while a section was open");
	cr_assert_eq(pthread_join(th, NULL), 0);
	gwd_allowedips_synchronize(&table); /* nobody inside: returns at once */
	gwd_allowedips_reader_del(&table, &r);
}
