// SPDX-License-Identifier: MIT
/*
 * bench_lookups (bench/scale's helper): allowed-IPs lookups per second on one
 * core over gwd/allowedips.h, with one prefix per peer:
 *
 *   v4-host   N /32 from 198.18.0.0/15 (random, distinct), as a gateway
 *             with one address per client has
 *   v6-host   N /128 from 2001:db8:f::/64
 *   v4-mixed  N prefixes of random length 8..32 anywhere (site-to-site peers)
 *   v6-mixed  N prefixes of random length 32..128 in 2001:db8::/32
 *
 * Queries are random addresses inside random configured prefixes, so
 * (nearly) every lookup finds a peer and walks a full path; they are
 * checked against the expected owner (host cases) or a linear scan (a
 * sample of the mixed cases) before anything is timed. Each case is timed
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

struct options {
	size_t prefixes;
	double seconds;
	bool json;
};

struct kase {
	const char *name;
	int family;
	bool host; /* full-length prefixes */
	uint8_t min_cidr, max_cidr;
};

static const struct kase cases[] = {
    {"v4-host", AF_INET, true, 32, 32},
    {"v6-host", AF_INET6, true, 128, 128},
    {"v4-mixed", AF_INET, false, 8, 32},
    {"v6-mixed", AF_INET6, false, 32, 128},
};

struct result {
	double build_per_s, bytes_per_prefix;
	double single, batch16, batch64; /* lookups per second */
};

/* One case's data: prefixes, owners, queries and their expected peers. */
struct data {
	struct gw_prefix *pfx;
	struct gwd_allowedips_owner *owners;
	uint8_t (*qaddr)[16];
	void **want;
	size_t n;
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

static void make_prefixes(const struct kase *k, struct gw_prefix *pfx, size_t n)
{
	static const uint8_t v6net[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0x0f};
	uint32_t *pool = NULL;
	size_t i;

	if (k->family == AF_INET && k->host) {
		pool = malloc(V4_POOL * sizeof(*pool));
		if (!pool)
			die("out of memory");
		for (i = 0; i < V4_POOL; i++)
			pool[i] = (uint32_t)i;
		for (i = V4_POOL - 1; i > 0; i--) { /* Fisher-Yates */
			size_t j = rnd() % (i + 1);
			uint32_t t = pool[i];

			pool[i] = pool[j];
			pool[j] = t;
		}
	}
	for (i = 0; i < n; i++) {
		struct gw_prefix *p = &pfx[i];

		memset(p, 0, sizeof(*p));
		p->family = k->family;
		p->cidr = (uint8_t)(k->min_cidr + rnd() % (k->max_cidr - k->min_cidr + 1));
		if (pool) {
			uint32_t a = 0xc6120000u + pool[i]; /* 198.18.0.0 + offset */

			p->addr[0] = a >> 24, p->addr[1] = a >> 16, p->addr[2] = a >> 8,
			p->addr[3] = a;
		} else if (k->family == AF_INET6) {
			memcpy(p->addr, v6net, sizeof(v6net));
			randomise_host(p->addr, 16, k->host ? 64 : 32);
		} else {
			randomise_host(p->addr, 4, 0);
		}
	}
	free(pool);
}

/* Inserts every prefix with its own owner; returns the build time in ns. */
static uint64_t build(struct gwd_allowedips *t, struct data *d)
{
	uint64_t t0 = now_ns();

	for (size_t i = 0; i < d->n; i++) {
		gwd_allowedips_owner_init(&d->owners[i], &d->owners[i]);
		if (gwd_allowedips_insert_prefix(t, &d->pfx[i], &d->owners[i]))
			die("gwd_allowedips_insert_prefix failed");
	}
	return now_ns() - t0;
}

/* The peer of the longest prefix containing addr, by linear scan. */
static void *scan(const struct data *d, int family, const uint8_t *addr)
{
	void *best = NULL;
	int best_cidr = -1;

	for (size_t i = 0; i < d->n; i++)
		if (d->pfx[i].cidr >= best_cidr && gw_prefix_contains(&d->pfx[i], family, addr)) {
			best = &d->owners[i];
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
		if (k->host) {
			d->want[i] = &d->owners[j];
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
	size_t limit = k->host ? QUERIES : CHECKED_MIXED;

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
	struct data d = {.n = o->prefixes};
	size_t heap0;
	uint64_t ns;

	d.pfx = calloc(d.n, sizeof(*d.pfx));
	d.owners = calloc(d.n, sizeof(*d.owners));
	d.qaddr = calloc(QUERIES, sizeof(*d.qaddr));
	d.want = calloc(QUERIES, sizeof(*d.want));
	if (!d.pfx || !d.owners || !d.qaddr || !d.want)
		die("out of memory");
	make_prefixes(k, d.pfx, d.n);
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
	free(d.owners);
	free(d.qaddr);
	free(d.want);
}

static void report(const struct result *r, size_t ncases, const struct options *o)
{
	size_t i;

	if (o->json) {
		printf("{\"prefixes\":%zu,\"seconds\":%.2f,\"cases\":[", o->prefixes, o->seconds);
		for (i = 0; i < ncases; i++)
			printf(
			    "%s{\"case\":\"%s\",\"build_per_s\":%.0f,\"bytes_per_prefix\":%.0f,"
			    "\"single_per_s\":%.0f,\"batch16_per_s\":%.0f,\"batch64_per_s\":%.0f}",
			    i ? "," : "", cases[i].name, r[i].build_per_s, r[i].bytes_per_prefix,
			    r[i].single, r[i].batch16, r[i].batch64);
		printf("]}\n");
		return;
	}
	printf("allowed-IPs lookups, %zu prefixes, one core, M lookups/s\n", o->prefixes);
	printf("%-10s %12s %8s %9s %9s %9s\n", "case", "inserts/s", "B/pfx", "single", "batch16",
	       "batch64");
	for (i = 0; i < ncases; i++)
		printf("%-10s %12.0f %8.0f %9.2f %9.2f %9.2f\n", cases[i].name, r[i].build_per_s,
		       r[i].bytes_per_prefix, r[i].single / 1e6, r[i].batch16 / 1e6,
		       r[i].batch64 / 1e6);
}

static int parse(int argc, char **argv, struct options *o)
{
	static const struct option longopts[] = {
	    {"prefixes", required_argument, NULL, 'n'},
	    {"seconds", required_argument, NULL, 's'},
	    {"json", no_argument, NULL, 'j'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	char *end;
	int c;

	*o = (struct options){.prefixes = 100000, .seconds = 1.0};
	while ((c = getopt_long(argc, argv, "n:s:jh", longopts, NULL)) != -1) {
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
		case 'j':
			o->json = true;
			break;
		case 'h':
			printf("usage: bench_lookups [--prefixes N] [--seconds S] [--json]\n");
			exit(0);
		default:
			return -EINVAL;
		}
	}
	return optind == argc ? 0 : -EINVAL;
}

int main(int argc, char **argv)
{
	struct result r[sizeof(cases) / sizeof(cases[0])];
	const size_t ncases = sizeof(cases) / sizeof(cases[0]);
	struct options o;

	if (parse(argc, argv, &o)) {
		fprintf(stderr,
			"usage: bench_lookups [--prefixes N (1..%d)] [--seconds S] [--json]\n",
			V4_POOL - 2);
		return 2;
	}
	for (size_t i = 0; i < ncases; i++)
		run_case(&cases[i], &o, &r[i]);
	report(r, ncases, &o);
	return 0;
}
