// SPDX-License-Identifier: MIT
/*
 * bench_lookups (bench/scale's helper): allowed-IPs lookups per second on one
 * core over gwd/allowedips.h, N peers (--prefixes):
 *
 *   v4-host   one /32 each from 198.18.0.0/15 (random, distinct), as a
 *             gateway with one address per client has
 *   v6-host   one /128 each from 2001:db8:f::/64
 *   v4-gw     a gateway's realistic mix: the /32 of v4-host, and every 8th
 *             peer also routes a random /24 (a site behind it), every 64th
 *             a random /16 (split tunnel), one peer 0.0.0.0/0
 *   v6-gw     the same for IPv6: a /128 each, every 8th a /64, every 64th a
 *             /48 (random, in 2001:db8::/32), one peer ::/0
 *   v4-mixed  one prefix each of random length 8..32 anywhere: a stress
 *             case with every length present (site-to-site peers)
 *   v6-mixed  one prefix each of random length 32..128 in 2001:db8::/32
 *
 * Queries are random addresses inside random configured prefixes, so
 * (nearly) every lookup finds a peer and walks a full path; they are
 * checked against the expected owner (host cases) or a linear scan (a
 * sample of the others) before anything is timed. Each case is timed
 * with single gwd_allowedips_lookup() calls and with
 * gwd_allowedips_lookup_many() batches of 16 and 64, in CPU time of the
 * thread (rates per core).
 */
#include <errno.h>
#include <getopt.h>
#include <malloc.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "allowedips.h"

enum {
	QUERIES = 1 << 20,
	CHECKED_MIXED = 500, /* queries checked by linear scan in mixed cases */
	MAX_BATCH = 64,
	V4_POOL = 1 << 17, /* 198.18.0.0/15 */
};

enum kind { HOST, GATEWAY, MIXED };

struct kase {
	const char *name;
	int family;
	enum kind kind;
	uint8_t min_cidr, max_cidr; /* MIXED */
};

static const struct kase cases[] = {
    {"v4-host", AF_INET, HOST, 32, 32},	 {"v6-host", AF_INET6, HOST, 128, 128},
    {"v4-gw", AF_INET, GATEWAY, 0, 0},	 {"v6-gw", AF_INET6, GATEWAY, 0, 0},
    {"v4-mixed", AF_INET, MIXED, 8, 32}, {"v6-mixed", AF_INET6, MIXED, 32, 128},
};

enum { NCASES = sizeof(cases) / sizeof(cases[0]) };

struct options {
	size_t prefixes; /* peers, in fact: one prefix each but in the gw cases */
	double seconds;
	bool json;
	bool want[NCASES]; /* --case */
};

struct result {
	double build_per_s, bytes_per_prefix, prefixes_per_peer;
	double single, batch16, batch64; /* lookups per second */
};

/*
 * One case's data: prefixes and their owners (indexes into owners), queries
 * and their expected peers.
 */
struct data {
	struct gw_prefix *pfx;
	size_t *owner_of;
	size_t n;
	struct gwd_allowedips_owner *owners;
	size_t npeers;
	uint8_t (*qaddr)[16];
	void **want;
};

static uint64_t rng_state = 0x9e3779b97f4a7c15u;

/* xorshift64*: reproducible runs, and cheap. */
static uint64_t rnd(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545f4914f6cdd1du;
}

/* CPU time of this thread: rates per core, mostly immune to other load. */
static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static _Noreturn void die(const char *what)
{
	fprintf(stderr, "bench_lookups: %s\n", what);
	exit(1);
}

static size_t heap_bytes(void)
{
	struct mallinfo2 mi = mallinfo2();

	return mi.uordblks + mi.hblkhd;
}

/* Keeps the first cidr bits of addr (len bytes), fills the rest at random. */
static void randomise_host(uint8_t *addr, size_t len, unsigned int cidr)
{
	for (size_t i = 0; i < len; i++) {
		unsigned int keep = cidr >= 8 * (i + 1) ? 8 : cidr > 8 * i ? cidr - 8 * i : 0;
		uint8_t mask = keep ? (uint8_t)(0xff00 >> keep) : 0;

		addr[i] = (uint8_t)((addr[i] & mask) | (rnd() & ~mask));
	}
}

/* n distinct addresses of 198.18.0.0/15 in random order, host-order. */
static uint32_t *v4_pool(size_t n)
{
	uint32_t *pool = malloc(V4_POOL * sizeof(*pool));
	size_t i;

	if (!pool || n > V4_POOL)
		die("out of memory");
	for (i = 0; i < V4_POOL; i++)
		pool[i] = 0xc6120000u + (uint32_t)i; /* 198.18.0.0 + offset */
	for (i = V4_POOL - 1; i > 0; i--) {	     /* Fisher-Yates */
		size_t j = rnd() % (i + 1);
		uint32_t t = pool[i];

		pool[i] = pool[j];
		pool[j] = t;
	}
	return pool;
}

static void put_prefix(struct data *d, int family, const uint8_t *addr, uint8_t cidr, size_t owner)
{
	struct gw_prefix *p = &d->pfx[d->n];

	memset(p, 0, sizeof(*p));
	p->family = family;
	p->cidr = cidr;
	memcpy(p->addr, addr, family == AF_INET ? 4 : 16);
	d->owner_of[d->n++] = owner;
}

/* A random address of family with the first keep bits of net. */
static void random_in(int family, const uint8_t *net, unsigned int keep, uint8_t out[16])
{
	memset(out, 0, 16);
	memcpy(out, net, family == AF_INET ? 4 : 16);
	randomise_host(out, family == AF_INET ? 4 : 16, keep);
}

/*
 * The prefixes of case k for d->npeers peers. v4: the site /24s and /16s lie
 * outside 198.18.0.0/15 (random addresses that fall inside are redrawn) so
 * that every peer's /32 stays its own; v6 likewise outside 2001:db8:f::/64.
 */
static void make_prefixes(const struct kase *k, struct data *d)
{
	static const uint8_t v6net[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0x0f};
	static const uint8_t zero[16];
	uint32_t *pool = NULL;
	uint8_t a[16];

	if (k->family == AF_INET && k->kind != MIXED)
		pool = v4_pool(d->npeers);
	d->n = 0;
	for (size_t i = 0; i < d->npeers; i++) {
		if (k->kind == MIXED) {
			uint8_t cidr =
			    (uint8_t)(k->min_cidr + rnd() % (k->max_cidr - k->min_cidr + 1));

			random_in(k->family, k->family == AF_INET6 ? v6net : zero,
				  k->family == AF_INET6 ? 32 : 0, a);
			put_prefix(d, k->family, a, cidr, i);
			continue;
		}
		if (pool) {
			a[0] = (uint8_t)(pool[i] >> 24), a[1] = (uint8_t)(pool[i] >> 16);
			a[2] = (uint8_t)(pool[i] >> 8), a[3] = (uint8_t)pool[i];
			put_prefix(d, AF_INET, a, 32, i);
		} else {
			random_in(AF_INET6, v6net, 64, a);
			put_prefix(d, AF_INET6, a, 128, i);
		}
		if (k->kind != GATEWAY)
			continue;
		for (unsigned int every = 8; every <= 64; every *= 8) {
			if (i % every != every - 1)
				continue;
			do {
				random_in(k->family, k->family == AF_INET6 ? v6net : zero,
					  k->family == AF_INET6 ? 32 : 0, a);
			} while (k->family == AF_INET ? (a[0] == 198 && (a[1] & 0xfe) == 18)
						      : !memcmp(a, v6net, 8));
			put_prefix(d, k->family, a,
				   k->family == AF_INET ? (every == 8 ? 24 : 16)
							: (every == 8 ? 64 : 48),
				   i);
		}
		if (i == d->npeers / 2)
			put_prefix(d, k->family, zero, 0, i);
	}
	free(pool);
}

/* Inserts every prefix with its own owner; returns the build time in ns. */
static uint64_t build(struct gwd_allowedips *t, struct data *d)
{
	uint64_t t0 = now_ns();

	for (size_t i = 0; i < d->npeers; i++)
		gwd_allowedips_owner_init(&d->owners[i], &d->owners[i]);
	for (size_t i = 0; i < d->n; i++)
		if (gwd_allowedips_insert_prefix(t, &d->pfx[i], &d->owners[d->owner_of[i]]))
			die("gwd_allowedips_insert_prefix failed");
	return now_ns() - t0;
}

/* The peer of the longest prefix containing addr, by linear scan. */
static void *scan(const struct data *d, int family, const uint8_t *addr)
{
	void *best = NULL;
	int best_cidr = -1;

	for (size_t i = 0; i < d->n; i++)
		if (d->pfx[i].cidr >= best_cidr && gw_prefix_contains(&d->pfx[i], family, addr)) {
			best = &d->owners[d->owner_of[i]];
			best_cidr = d->pfx[i].cidr;
		}
	return best;
}

/* Random addresses inside random prefixes; want[] for the ones we can check. */
static size_t make_queries(const struct kase *k, struct data *d)
{
	size_t len = k->family == AF_INET ? 4 : 16, checked = 0;

	for (size_t i = 0; i < QUERIES; i++) {
		size_t j = rnd() % d->n;

		memcpy(d->qaddr[i], d->pfx[j].addr, len);
		randomise_host(d->qaddr[i], len, d->pfx[j].cidr);
		d->want[i] = NULL;
		if (k->kind == HOST) {
			d->want[i] = &d->owners[d->owner_of[j]];
			checked++;
		} else if (i < CHECKED_MIXED) {
			d->want[i] = scan(d, k->family, d->qaddr[i]);
			checked++;
		}
	}
	return checked;
}

static void check(const struct gwd_allowedips *t, const struct kase *k, const struct data *d)
{
	struct gwd_allowedips_query q[MAX_BATCH];
	size_t limit = k->kind == HOST ? QUERIES : CHECKED_MIXED;

	for (size_t i = 0; i < limit; i++)
		if (gwd_allowedips_lookup(t, k->family, d->qaddr[i]) != d->want[i])
			die("a lookup returned the wrong peer");
	for (size_t i = 0; i + MAX_BATCH <= limit; i += MAX_BATCH) {
		for (size_t j = 0; j < MAX_BATCH; j++)
			q[j] = (struct gwd_allowedips_query){k->family, d->qaddr[i + j], NULL};
		gwd_allowedips_lookup_many(t, q, MAX_BATCH);
		for (size_t j = 0; j < MAX_BATCH; j++)
			if (q[j].peer != d->want[i + j])
				die("a batched lookup returned the wrong peer");
	}
}

/* Lookups per second over the query set, batch 1 meaning single calls. */
static double rate(const struct gwd_allowedips *t, int family, const struct data *d, size_t batch,
		   double seconds)
{
	struct gwd_allowedips_query q[MAX_BATCH];
	uint64_t n = 0, t0 = now_ns(), el;
	uintptr_t acc = 0;
	size_t i = 0;

	do {
		for (int rep = 0; rep < 1024; rep++) {
			if (batch == 1) {
				acc += (uintptr_t)gwd_allowedips_lookup(t, family, d->qaddr[i]);
			} else {
				for (size_t j = 0; j < batch; j++)
					q[j] = (struct gwd_allowedips_query){family,
									     d->qaddr[i + j], NULL};
				gwd_allowedips_lookup_many(t, q, batch);
				acc += (uintptr_t)q[batch - 1].peer;
			}
			n += batch;
			i = (i + batch) % QUERIES;
		}
		el = now_ns() - t0;
	} while ((double)el < seconds * 1e9);
	if (!acc)
		die("no lookup found a peer");
	return (double)n * 1e9 / (double)el;
}

static void run_case(const struct kase *k, const struct options *o, struct result *r)
{
	struct gwd_allowedips t;
	struct data d = {.npeers = o->prefixes};
	size_t heap0, cap = 2 * d.npeers + 1;
	uint64_t ns;

	d.pfx = calloc(cap, sizeof(*d.pfx));
	d.owner_of = calloc(cap, sizeof(*d.owner_of));
	d.owners = calloc(d.npeers, sizeof(*d.owners));
	d.qaddr = calloc(QUERIES, sizeof(*d.qaddr));
	d.want = calloc(QUERIES, sizeof(*d.want));
	if (!d.pfx || !d.owner_of || !d.owners || !d.qaddr || !d.want)
		die("out of memory");
	make_prefixes(k, &d);
	r->prefixes_per_peer = (double)d.n / (double)d.npeers;
	gwd_allowedips_init(&t);
	heap0 = heap_bytes();
	ns = build(&t, &d);
	r->bytes_per_prefix = (double)(heap_bytes() - heap0) / (double)d.n;
	r->build_per_s = (double)d.n * 1e9 / (double)ns;
	make_queries(k, &d);
	check(&t, k, &d);
	r->single = rate(&t, k->family, &d, 1, o->seconds);
	r->batch16 = rate(&t, k->family, &d, 16, o->seconds);
	r->batch64 = rate(&t, k->family, &d, 64, o->seconds);
	gwd_allowedips_free(&t);
	free(d.pfx);
	free(d.owner_of);
	free(d.owners);
	free(d.qaddr);
	free(d.want);
}

static void report(const struct result *r, const struct options *o)
{
	bool first = true;

	if (o->json) {
		printf("{\"prefixes\":%zu,\"seconds\":%.2f,\"cases\":[", o->prefixes, o->seconds);
		for (size_t i = 0; i < NCASES; i++) {
			if (!o->want[i])
				continue;
			printf("%s{\"case\":\"%s\",\"prefixes_per_peer\":%.3f,\"build_per_s\":%.0f,"
			       "\"bytes_per_prefix\":%.0f,\"single_per_s\":%.0f,"
			       "\"batch16_per_s\":%.0f,\"batch64_per_s\":%.0f}",
			       first ? "" : ",", cases[i].name, r[i].prefixes_per_peer,
			       r[i].build_per_s, r[i].bytes_per_prefix, r[i].single, r[i].batch16,
			       r[i].batch64);
			first = false;
		}
		printf("]}\n");
		return;
	}
	printf("allowed-IPs lookups, %zu peers, one core, M lookups/s\n", o->prefixes);
	printf("%-10s %8s %12s %8s %9s %9s %9s\n", "case", "pfx/peer", "inserts/s", "B/pfx",
	       "single", "batch16", "batch64");
	for (size_t i = 0; i < NCASES; i++)
		if (o->want[i])
			printf("%-10s %8.3f %12.0f %8.0f %9.2f %9.2f %9.2f\n", cases[i].name,
			       r[i].prefixes_per_peer, r[i].build_per_s, r[i].bytes_per_prefix,
			       r[i].single / 1e6, r[i].batch16 / 1e6, r[i].batch64 / 1e6);
}

/* --case NAME[,NAME...]: only those cases. */
static int pick_cases(char *list, struct options *o)
{
	memset(o->want, 0, sizeof(o->want));
	for (char *name = strtok(list, ","); name; name = strtok(NULL, ",")) {
		size_t i;

		for (i = 0; i < NCASES && strcmp(name, cases[i].name); i++)
			;
		if (i == NCASES)
			return -EINVAL;
		o->want[i] = true;
	}
	return 0;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: bench_lookups [--prefixes N (1..%d)] [--seconds S] [--json]\n"
		"                     [--case NAME,...]\ncases:",
		V4_POOL - 2);
	for (size_t i = 0; i < NCASES; i++)
		fprintf(f, " %s", cases[i].name);
	fprintf(f, "\n");
}

static int parse(int argc, char **argv, struct options *o)
{
	static const struct option longopts[] = {
	    {"prefixes", required_argument, NULL, 'n'}, {"seconds", required_argument, NULL, 's'},
	    {"case", required_argument, NULL, 'c'},	{"json", no_argument, NULL, 'j'},
	    {"help", no_argument, NULL, 'h'},		{NULL, 0, NULL, 0},
	};
	char *end;
	int c;

	*o = (struct options){.prefixes = 100000, .seconds = 1.0};
	for (size_t i = 0; i < NCASES; i++)
		o->want[i] = true;
	while ((c = getopt_long(argc, argv, "n:s:c:jh", longopts, NULL)) != -1) {
		switch (c) {
		case 'n':
			o->prefixes = strtoul(optarg, &end, 10);
			if (*end || o->prefixes < 1 || o->prefixes > V4_POOL - 2)
				return -EINVAL;
			break;
		case 's':
			o->seconds = strtod(optarg, &end);
			if (*end || !(o->seconds > 0 && o->seconds <= 600))
				return -EINVAL;
			break;
		case 'c':
			if (pick_cases(optarg, o))
				return -EINVAL;
			break;
		case 'j':
			o->json = true;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			return -EINVAL;
		}
	}
	return optind == argc ? 0 : -EINVAL;
}

int main(int argc, char **argv)
{
	struct result r[NCASES];
	struct options o;

	if (parse(argc, argv, &o)) {
		usage(stderr);
		return 2;
	}
	for (size_t i = 0; i < NCASES; i++)
		if (o.want[i])
			run_case(&cases[i], &o, &r[i]);
	report(r, &o);
	return 0;
}
