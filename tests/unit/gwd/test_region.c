/* SPDX-License-Identifier: MIT */
/*
 * Counter-region arithmetic (region.h) against hand-computed values, and the
 * property everything rests on: regions of distinct (epoch, node,
 * incarnation) never share a counter.
 */
#include <criterion/criterion.h>
#include <stdint.h>

#include "messages.h"
#include "region.h"

struct bounds_case {
	uint16_t epoch;
	uint8_t node;
	uint16_t inc;
	uint64_t start, end;
};

/* start = epoch << 48 | node << 40 | (inc mod 4096) << 28; end = start + 2^28. */
static const struct bounds_case bounds[] = {
    {0, 0, 0, 0, UINT64_C(1) << 48},
    {0, 7, 99, 0, UINT64_C(1) << 48}, /* epoch 0 ignores node and incarnation */
    {1, 1, 1, 0x0001010010000000, 0x0001010020000000},
    {1, 2, 1, 0x0001020010000000, 0x0001020020000000},
    {2, 1, 1, 0x0002010010000000, 0x0002010020000000},
    {1, 1, 0, 0x0001010000000000, 0x0001010010000000},
    {4095, 255, 4095, UINT64_C(0x0ffffffff0000000), UINT64_C(0x1000000000000000)},
    {4095, 1, 0, UINT64_C(0x0fff010000000000), UINT64_C(0x0fff010010000000)},
    {3, 9, 4096 + 5, UINT64_C(0x0003090050000000), UINT64_C(0x0003090060000000)}, /* mod 4096 */
};

Test(region, bounds_table)
{
	for (size_t i = 0; i < sizeof(bounds) / sizeof(bounds[0]); i++) {
		const struct bounds_case *c = &bounds[i];

		cr_expect_eq(gwd_region_start(c->epoch, c->node, c->inc), c->start,
			     "case %zu start %#llx", i,
			     (unsigned long long)gwd_region_start(c->epoch, c->node, c->inc));
		cr_expect_eq(gwd_region_end(c->epoch, c->node, c->inc), c->end, "case %zu end", i);
		cr_expect(gwd_region_contains(c->epoch, c->node, c->inc, c->start), "case %zu", i);
		cr_expect(gwd_region_contains(c->epoch, c->node, c->inc, c->end - 1), "case %zu",
			  i);
		cr_expect_not(gwd_region_contains(c->epoch, c->node, c->inc, c->end), "case %zu",
			      i);
		if (c->start)
			cr_expect_not(gwd_region_contains(c->epoch, c->node, c->inc, c->start - 1),
				      "case %zu", i);
	}
}

Test(region, every_counter_below_rekey_after_messages)
{
	cr_assert_lt(gwd_region_end(GWD_REGION_EPOCH_MAX, 255, 4095) - 1, GWD_REKEY_AFTER_MESSAGES);
	cr_assert_eq(gwd_region_end(GWD_REGION_EPOCH_MAX, 255, 4095), GWD_REKEY_AFTER_MESSAGES);
	cr_assert_eq(GWD_REGION_SIZE, UINT64_C(268435456));
}

struct decode_case {
	uint64_t counter;
	struct gwd_region_fields want;
};

static const struct decode_case decodes[] = {
    {0, {0, 0, 0, 0}},
    {UINT64_C(0x0001010010000000), {1, 1, 1, 0}},
    {UINT64_C(0x0001010010000000) + 12345, {1, 1, 1, 12345}},
    {UINT64_C(0x0fffffffffffffff), {4095, 255, 4095, 0x0fffffff}},
    {UINT64_C(0x00a0c80400000007), {0x0a0, 0xc8, 0x040, 7}},
};

Test(region, decode_table)
{
	for (size_t i = 0; i < sizeof(decodes) / sizeof(decodes[0]); i++) {
		struct gwd_region_fields f;

		gwd_region_decode(decodes[i].counter, &f);
		cr_expect_eq(f.epoch, decodes[i].want.epoch, "case %zu epoch %u", i, f.epoch);
		cr_expect_eq(f.node, decodes[i].want.node, "case %zu node", i);
		cr_expect_eq(f.incarnation, decodes[i].want.incarnation, "case %zu inc", i);
		cr_expect_eq(f.count, decodes[i].want.count, "case %zu count", i);
	}
}

Test(region, decode_inverts_start)
{
	static const uint16_t epochs[] = {1, 2, 77, 4094, 4095};
	static const uint8_t nodes[] = {1, 2, 128, 255};
	static const uint16_t incs[] = {0, 1, 2048, 4095};

	for (size_t e = 0; e < 5; e++)
		for (size_t n = 0; n < 4; n++)
			for (size_t k = 0; k < 4; k++) {
				struct gwd_region_fields f;
				uint64_t s = gwd_region_start(epochs[e], nodes[n], incs[k]);

				gwd_region_decode(s + 99, &f);
				cr_assert_eq(f.epoch, epochs[e]);
				cr_assert_eq(f.node, nodes[n]);
				cr_assert_eq(f.incarnation, incs[k]);
				cr_assert_eq(f.count, 99);
			}
}

struct next_case {
	uint16_t greatest, held;
	int ret;
	uint16_t want;
};

static const struct next_case nexts[] = {
    {0, GWD_REGION_EPOCH_NONE, 0, 1}, /* an imported keypair never sends at epoch 0 */
    {0, 0, 0, 1},		      /* the creator leaves epoch 0 for 1 */
    {5, GWD_REGION_EPOCH_NONE, 0, 6},
    {5, 7, 0, 8}, /* own claim above what the cluster knows */
    {9, 3, 0, 10},
    {4094, GWD_REGION_EPOCH_NONE, 0, 4095},
    {4095, GWD_REGION_EPOCH_NONE, -ENOSPC, 0}, /* epoch field exhausted */
    {0, 4095, -ENOSPC, 0},
    {60000, GWD_REGION_EPOCH_NONE, -ENOSPC, 0}, /* corrupt input */
};

Test(region, next_epoch_table)
{
	for (size_t i = 0; i < sizeof(nexts) / sizeof(nexts[0]); i++) {
		uint16_t got = 0;
		int ret = gwd_region_next_epoch(nexts[i].greatest, nexts[i].held, &got);

		cr_expect_eq(ret, nexts[i].ret, "case %zu ret %d", i, ret);
		if (ret == 0)
			cr_expect_eq(got, nexts[i].want, "case %zu got %u", i, got);
	}
}

Test(region, headroom)
{
	cr_assert_eq(gwd_region_headroom(10, 12), 2);
	cr_assert_eq(gwd_region_headroom(12, 12), 0);
	cr_assert_eq(gwd_region_headroom(13, 12), 0);
}

/* Every pair of distinct triples (epoch 0 as one "triple") gives disjoint ranges. */
Test(region, distinct_triples_are_disjoint)
{
	struct {
		uint16_t e;
		uint8_t n;
		uint16_t i;
	} t[64];
	size_t nt = 0;
	static const uint16_t epochs[] = {1, 2, 4095};
	static const uint8_t nodes[] = {1, 2, 255};
	static const uint16_t incs[] = {0, 1, 4095};

	t[nt].e = 0, t[nt].n = 1, t[nt].i = 1, nt++;
	for (size_t e = 0; e < 3; e++)
		for (size_t n = 0; n < 3; n++)
			for (size_t k = 0; k < 3; k++) {
				t[nt].e = epochs[e], t[nt].n = nodes[n], t[nt].i = incs[k];
				nt++;
			}
	for (size_t a = 0; a < nt; a++)
		for (size_t b = a + 1; b < nt; b++) {
			uint64_t sa = gwd_region_start(t[a].e, t[a].n, t[a].i);
			uint64_t ea = gwd_region_end(t[a].e, t[a].n, t[a].i);
			uint64_t sb = gwd_region_start(t[b].e, t[b].n, t[b].i);
			uint64_t eb = gwd_region_end(t[b].e, t[b].n, t[b].i);

			cr_assert(ea <= sb || eb <= sa, "regions %zu and %zu overlap", a, b);
		}
}
