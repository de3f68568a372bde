/* SPDX-License-Identifier: MIT */
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "ratelimiter.h"

#define MS   1000000ULL
#define SEC  1000000000ULL
#define T0   (1000 * SEC) /* an arbitrary monotonic start */
#define COST (SEC / 20)	  /* one packet's worth of tokens: 50 ms */

struct src {
	int family;
	uint8_t addr[16];
};

static struct src src(int family, const char *text)
{
	struct src s = {.family = family};

	cr_assert_eq(inet_pton(family, text, s.addr), 1, "%s", text);
	return s;
}

static bool allow(struct gwd_ratelimiter *rl, const struct src *s, uint64_t now)
{
	return gwd_ratelimiter_allow(rl, s->family, s->addr, now);
}

static struct gwd_ratelimiter *new_rl(size_t max)
{
	struct gwd_ratelimiter *rl;

	cr_assert_eq(gwd_ratelimiter_init(&rl, max), 0);
	cr_assert_not_null(rl);
	return rl;
}

/* A reference bucket, written from the specification (20/s, burst 5). */
struct model {
	bool seen;
	uint64_t last, tokens;
};

static bool model_allow(struct model *m, uint64_t now)
{
	const uint64_t max = 5 * COST;

	if (!m->seen) {
		m->seen = true;
		m->last = now;
		m->tokens = max - COST;
		return true;
	}
	m->tokens += now - m->last;
	if (m->tokens > max)
		m->tokens = max;
	m->last = now;
	if (m->tokens < COST)
		return false;
	m->tokens -= COST;
	return true;
}

Test(ratelimiter, init_limits)
{
	struct gwd_ratelimiter *rl = (void *)1;

	cr_expect_eq(gwd_ratelimiter_init(&rl, 0), -EINVAL);
	cr_expect_null(rl);
	cr_expect_eq(gwd_ratelimiter_init(&rl, (1u << 24) + 1), -EINVAL);
	cr_expect_eq(gwd_ratelimiter_init(&rl, GWD_RATELIMITER_MAX_DEFAULT), 0);
	cr_expect_eq(gwd_ratelimiter_count(rl), 0);
	gwd_ratelimiter_free(rl);
	gwd_ratelimiter_free(NULL);
}

Test(ratelimiter, burst_then_refused)
{
	struct gwd_ratelimiter *rl = new_rl(16);
	struct src a = src(AF_INET, "192.0.2.1");

	for (int i = 0; i < 5; i++)
		cr_expect(allow(rl, &a, T0), "packet %d of the burst", i);
	cr_expect_not(allow(rl, &a, T0));
	cr_expect_not(allow(rl, &a, T0 + 49 * MS));
	cr_expect_eq(gwd_ratelimiter_count(rl), 1);
	gwd_ratelimiter_free(rl);
}

/* Steps of (time offset, expected decision) for one source. */
struct step {
	uint64_t at;
	bool want;
};

static const struct step refill_steps[] = {
    {0, true},
    {0, true},
    {0, true},
    {0, true},
    {0, true},
    {0, false},
    {49 * MS, false},
    {50 * MS, true}, /* one token */
    {50 * MS, false},
    {99 * MS, false},
    {100 * MS, true},
    {100 * MS, false},
    {400 * MS, true},
    {400 * MS, true},
    {400 * MS, true},
    {400 * MS, true},
    {400 * MS, true},
    {400 * MS, false}, /* refilled to the burst, not beyond */
    {10 * SEC, true},
    {10 * SEC, true},
    {10 * SEC, true},
    {10 * SEC, true},
    {10 * SEC, true},
    {10 * SEC, false},
    {10 * SEC + 25 * MS, false},
    {10 * SEC + 50 * MS, true}, /* waiting while refused still accrues */
};

Test(ratelimiter, refill_rate)
{
	struct gwd_ratelimiter *rl = new_rl(16);
	struct src a = src(AF_INET, "192.0.2.1");

	for (size_t i = 0; i < sizeof(refill_steps) / sizeof(refill_steps[0]); i++) {
		bool got = allow(rl, &a, T0 + refill_steps[i].at);

		cr_expect_eq(got, refill_steps[i].want, "step %zu at +%llu ms", i,
			     (unsigned long long)(refill_steps[i].at / MS));
	}
	gwd_ratelimiter_free(rl);
}

/* A sender at 1000 packets/s for 10 s gets the burst plus 20/s, like the model. */
Test(ratelimiter, sustained_rate_matches_model)
{
	struct gwd_ratelimiter *rl = new_rl(16);
	struct src a = src(AF_INET6, "2001:db8::7");
	struct model m = {0};
	unsigned int allowed = 0;

	for (uint64_t t = 0; t < 10 * SEC; t += MS) {
		bool got = allow(rl, &a, T0 + t);

		cr_assert_eq(got, model_allow(&m, T0 + t), "at +%llu ms",
			     (unsigned long long)(t / MS));
		allowed += got;
		gwd_ratelimiter_gc(rl, T0 + t); /* never removes an active source */
	}
	/* 5 at once, then one per 50 ms: the ones at 50, 100, ..., 9950 ms. */
	cr_expect_eq(allowed, 5 + 199, "allowed %u", allowed);
	gwd_ratelimiter_free(rl);
}

Test(ratelimiter, sources_are_independent)
{
	struct gwd_ratelimiter *rl = new_rl(16);
	struct src a = src(AF_INET, "192.0.2.1");
	struct src b = src(AF_INET, "192.0.2.2");
	struct src c = src(AF_INET, "198.51.100.1");

	for (int i = 0; i < 5; i++)
		cr_expect(allow(rl, &a, T0));
	cr_expect_not(allow(rl, &a, T0));
	for (int i = 0; i < 5; i++) {
		cr_expect(allow(rl, &b, T0), "b packet %d", i);
		cr_expect(allow(rl, &c, T0), "c packet %d", i);
	}
	cr_expect_not(allow(rl, &b, T0));
	cr_expect_not(allow(rl, &c, T0));
	cr_expect_eq(gwd_ratelimiter_count(rl), 3);
	gwd_ratelimiter_free(rl);
}

struct group_case {
	const char *a, *b;
	bool same; /* share one bucket */
};

static const struct group_case group_cases[] = {
    {"2001:db8:1:2::1", "2001:db8:1:2::2", true},
    {"2001:db8:1:2::1", "2001:db8:1:2:ffff:ffff:ffff:ffff", true},
    {"2001:db8:1:2::1", "2001:db8:1:3::1", false},
    {"2001:db8:1:2::1", "2001:db9:1:2::1", false},
    {"2001:db8::", "2001:db8::1", true},
};

static void exhaust(struct gwd_ratelimiter *rl, const struct src *s)
{
	for (int i = 0; i < 5; i++)
		cr_assert(allow(rl, s, T0));
	cr_assert_not(allow(rl, s, T0));
}

Test(ratelimiter, ipv6_grouped_by_64)
{
	for (size_t i = 0; i < sizeof(group_cases) / sizeof(group_cases[0]); i++) {
		struct gwd_ratelimiter *rl = new_rl(16);
		struct src a = src(AF_INET6, group_cases[i].a);
		struct src b = src(AF_INET6, group_cases[i].b);

		exhaust(rl, &a);
		cr_expect_eq(allow(rl, &b, T0), !group_cases[i].same, "%s vs %s", group_cases[i].a,
			     group_cases[i].b);
		cr_expect_eq(gwd_ratelimiter_count(rl), group_cases[i].same ? 1 : 2);
		gwd_ratelimiter_free(rl);
	}
}

/* An IPv4 address and an IPv6 address with the same leading bytes differ. */
Test(ratelimiter, families_are_separate)
{
	struct gwd_ratelimiter *rl = new_rl(16);
	struct src v4 = src(AF_INET, "192.0.2.1");
	struct src v6 = {.family = AF_INET6};

	memcpy(v6.addr, v4.addr, 4);
	exhaust(rl, &v4);
	cr_expect(allow(rl, &v6, T0));
	cr_expect_eq(gwd_ratelimiter_count(rl), 2);
	/* Any other family is refused and creates nothing. */
	cr_expect_not(gwd_ratelimiter_allow(rl, AF_UNIX, v4.addr, T0));
	cr_expect_not(gwd_ratelimiter_allow(rl, 0, v4.addr, T0));
	cr_expect_eq(gwd_ratelimiter_count(rl), 2);
	gwd_ratelimiter_free(rl);
}

/* Full table: known sources go on, new ones are refused until gc frees room. */
Test(ratelimiter, full_table_fails_closed)
{
	struct gwd_ratelimiter *rl = new_rl(4);
	struct src s[6];
	char text[32];

	for (int i = 0; i < 6; i++) {
		snprintf(text, sizeof(text), "203.0.113.%d", i + 1);
		s[i] = src(AF_INET, text);
	}
	for (int i = 0; i < 4; i++)
		cr_expect(allow(rl, &s[i], T0), "source %d", i);
	cr_expect_eq(gwd_ratelimiter_count(rl), 4);
	cr_expect_not(allow(rl, &s[4], T0), "a new source in a full table");
	cr_expect_not(allow(rl, &s[5], T0 + 10 * SEC));
	cr_expect(allow(rl, &s[0], T0 + 100 * MS), "a known source keeps its rate");
	cr_expect_eq(gwd_ratelimiter_count(rl), 4);

	/* s[0] was active at T0 + 100 ms; the others idle since T0. */
	cr_expect_eq(gwd_ratelimiter_gc(rl, T0 + SEC + 50 * MS), 3);
	cr_expect_eq(gwd_ratelimiter_count(rl), 1);
	cr_expect(allow(rl, &s[4], T0 + SEC + 50 * MS));
	cr_expect(allow(rl, &s[5], T0 + SEC + 50 * MS));
	gwd_ratelimiter_free(rl);
}

Test(ratelimiter, gc_removes_only_idle)
{
	struct gwd_ratelimiter *rl = new_rl(64);
	struct src s[40];
	char text[40];

	for (int i = 0; i < 40; i++) {
		snprintf(text, sizeof(text), "2001:db8:%x::1", i);
		s[i] = src(AF_INET6, text);
		/* Source i last sent at T0 + i * 100 ms. */
		cr_expect(allow(rl, &s[i], T0 + (uint64_t)i * 100 * MS));
	}
	cr_expect_eq(gwd_ratelimiter_count(rl), 40);
	/* Source 0 has been idle exactly 1 s: kept. */
	cr_expect_eq(gwd_ratelimiter_gc(rl, T0 + SEC), 0);
	/* At T0 + 4 s, idle over 1 s are those with i * 100 ms < 3 s: i < 30. */
	cr_expect_eq(gwd_ratelimiter_gc(rl, T0 + 4 * SEC), 30);
	cr_expect_eq(gwd_ratelimiter_count(rl), 10);
	cr_expect_eq(gwd_ratelimiter_gc(rl, T0 + 4 * SEC), 0);
	/* A removed source comes back with a full burst: gc changed no decision. */
	for (int i = 0; i < 5; i++)
		cr_expect(allow(rl, &s[0], T0 + 4 * SEC));
	cr_expect_not(allow(rl, &s[0], T0 + 4 * SEC));
	cr_expect_eq(gwd_ratelimiter_gc(rl, T0 + 100 * SEC), 11);
	cr_expect_eq(gwd_ratelimiter_count(rl), 0);
	gwd_ratelimiter_free(rl);
}

/* Time going backwards (a caller bug) neither crashes nor grants tokens. */
Test(ratelimiter, time_going_back)
{
	struct gwd_ratelimiter *rl = new_rl(4);
	struct src a = src(AF_INET, "198.18.0.1");

	exhaust(rl, &a);
	cr_expect_not(allow(rl, &a, T0 - SEC));
	cr_expect_eq(gwd_ratelimiter_gc(rl, T0 - 10 * SEC), 0);
	gwd_ratelimiter_free(rl);
}

/* Many sources through a big table: all tracked, each with its own bucket. */
Test(ratelimiter, many_sources)
{
	enum { N = 8192 };
	struct gwd_ratelimiter *rl = new_rl(N);

	for (uint32_t i = 0; i < N; i++) {
		uint32_t be = htonl(0xc6120000u + i); /* 198.18.0.0/15 */

		cr_assert(gwd_ratelimiter_allow(rl, AF_INET, (uint8_t *)&be, T0));
	}
	cr_expect_eq(gwd_ratelimiter_count(rl), N);
	for (uint32_t i = 0; i < N; i++) {
		uint32_t be = htonl(0xc6120000u + i);

		for (int k = 0; k < 4; k++)
			cr_assert(gwd_ratelimiter_allow(rl, AF_INET, (uint8_t *)&be, T0));
		cr_assert_not(gwd_ratelimiter_allow(rl, AF_INET, (uint8_t *)&be, T0), "%u", i);
	}
	cr_expect_eq(gwd_ratelimiter_gc(rl, T0 + 2 * SEC), N);
	gwd_ratelimiter_free(rl);
}
