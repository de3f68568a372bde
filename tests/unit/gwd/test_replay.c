/* SPDX-License-Identifier: MIT */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "replay.h"

/*
 * Reject-After-Messages from the WireGuard paper (section 6.1), the value
 * wireguard-go uses; the kernel uses U64_MAX - COUNTER_WINDOW_SIZE - 1, a
 * little higher. The window takes the limit as an argument either way.
 */
#define REJECT_AFTER ((uint64_t)-1 - (UINT64_C(1) << 13))
#define W	     ((uint64_t)GWD_REPLAY_WINDOW)

enum op { CHECK, FLOOR, RESET };

/* CHECK: counter, reject_after (0: REJECT_AFTER), want. FLOOR: counter. */
struct step {
	enum op op;
	uint64_t counter;
	uint64_t reject_after;
	bool want;
};

/* clang-format off */
#define OK(c) {CHECK, (c), 0, true}
#define NO(c) {CHECK, (c), 0, false}
#define FL(c) {FLOOR, (c), 0, false}
#define RS    {RESET, 0, 0, false}
/* clang-format on */

static void run_steps(const struct step *steps, size_t n)
{
	struct gwd_replay *r = malloc(sizeof(*r));

	cr_assert_not_null(r);
	gwd_replay_init(r);
	for (size_t i = 0; i < n; i++) {
		const struct step *st = &steps[i];
		uint64_t limit = st->reject_after ? st->reject_after : REJECT_AFTER;
		bool got;

		switch (st->op) {
		case CHECK:
			got = gwd_replay_check_and_update(r, st->counter, limit);
			cr_assert_eq(got, st->want, "step %zu: counter %llu: got %d, want %d", i,
				     (unsigned long long)st->counter, got, st->want);
			break;
		case FLOOR:
			gwd_replay_set_floor(r, st->counter);
			break;
		case RESET:
			gwd_replay_reset(r);
			break;
		}
	}
	free(r);
}

#define RUN(steps) run_steps(steps, sizeof(steps) / sizeof(steps[0]))

Test(replay, window_size)
{
	cr_assert_geq(GWD_REPLAY_WINDOW, 2048);
	cr_assert_eq(GWD_REPLAY_WINDOW, 8128);
	cr_assert_eq(REJECT_AFTER, UINT64_C(0xffffffffffffdfff));
}

Test(replay, in_order_and_duplicates)
{
	static const struct step steps[] = {
	    OK(0), NO(0), OK(1), OK(2), OK(3), NO(1), NO(3), NO(0), OK(4), NO(4),
	};
	RUN(steps);
}

Test(replay, out_of_order_within_window)
{
	static const struct step steps[] = {
	    OK(10),
	    OK(5),
	    OK(7),
	    NO(5),
	    OK(9),
	    NO(10),
	    OK(0),
	    OK(6),
	    OK(8),
	    NO(8),
	    OK(11),
	    OK(1),
	    OK(2),
	    OK(3),
	    OK(4),
	    NO(7),
	    NO(11),
	    /* Reordering across word boundaries. */
	    OK(200),
	    OK(64),
	    OK(63),
	    OK(127),
	    OK(128),
	    NO(64),
	    NO(128),
	    OK(129),
	};
	RUN(steps);
}

Test(replay, exact_window_boundaries)
{
	static const struct step steps[] = {
	    /* Greatest W - 1: counter 0 is the oldest the window keeps. */
	    OK(W - 1),
	    OK(0),
	    NO(0),
	    /* Greatest W: counter 1 is the oldest; 0 would be too old. */
	    RS,
	    OK(W),
	    NO(0),
	    OK(1),
	    NO(1),
	    /* Greatest W + 1: 1 too old, 2 oldest kept. */
	    RS,
	    OK(W + 1),
	    NO(1),
	    OK(2),
	    OK(3),
	    NO(2),
	    /* Deep in, at and around a word boundary. */
	    RS,
	    OK(100000),
	    NO(100000 - W),
	    OK(100001 - W),
	    NO(100001 - W),
	    OK(100002 - W),
	    OK(99999),
	    NO(99999),
	    RS,
	    OK(64 * 1000),
	    NO(64 * 1000 - W),
	    OK(64 * 1000 - W + 1),
	    OK(64 * 1000 - 1),
	    RS,
	    OK(64 * 1000 - 1),
	    NO(64 * 1000 - 1 - W),
	    OK(64 * 1000 - W),
	};
	RUN(steps);
}

Test(replay, jump_ahead_clears_bitmap)
{
	static const struct step steps[] = {
	    OK(0),
	    OK(1),
	    OK(50),
	    OK(100),
	    OK(8191),
	    /* 8192 + 50 shares 50's bit in the ring: it must read as unseen. */
	    OK(8192 + 40),
	    OK(8192 + 50),
	    NO(8192 + 50),
	    OK(8192 + 100),
	    NO(50),
	    /* A jump of many times the ring. */
	    OK(UINT64_C(1) << 40),
	    NO(8191),
	    NO(8192 + 40),
	    OK((UINT64_C(1) << 40) - 1),
	    OK((UINT64_C(1) << 40) - W + 1),
	    NO((UINT64_C(1) << 40) - W),
	    /* A jump of exactly the ring, and of one word more. */
	    OK((UINT64_C(1) << 40) + 8192),
	    OK((UINT64_C(1) << 40) + 8192 - 1),
	    OK((UINT64_C(1) << 40) + 8192 + 64),
	    OK((UINT64_C(1) << 40) + 8192 + 63),
	    NO((UINT64_C(1) << 40) + 8192),
	};
	RUN(steps);
}

Test(replay, every_counter_of_a_long_run_once)
{
	struct gwd_replay *r = malloc(sizeof(*r));

	cr_assert_not_null(r);
	gwd_replay_init(r);
	for (uint64_t c = 0; c < 50000; c++) {
		cr_assert(gwd_replay_check_and_update(r, c, REJECT_AFTER), "counter %llu",
			  (unsigned long long)c);
		cr_assert_not(gwd_replay_check_and_update(r, c, REJECT_AFTER));
		if (c >= W)
			cr_assert_not(gwd_replay_check_and_update(r, c - W, REJECT_AFTER));
	}
	cr_assert_eq(gwd_replay_high_water(r), 50000);
	free(r);
}

Test(replay, reject_limit)
{
	static const struct step steps[] = {
	    NO(REJECT_AFTER),
	    NO(UINT64_MAX),
	    /* A rejected counter left no trace: the window did not move. */
	    OK(0),
	    OK(REJECT_AFTER - 1),
	    NO(REJECT_AFTER - 1),
	    OK(REJECT_AFTER - 2),
	    OK(REJECT_AFTER - W),
	    NO(REJECT_AFTER - W - 1),
	    NO(REJECT_AFTER),
	    /* A caller-given limit, down to the very top of the range. */
	    RS,
	    {CHECK, 1000, 1000, false},
	    {CHECK, 999, 1000, true},
	    {CHECK, UINT64_MAX - 1, UINT64_MAX, true},
	    {CHECK, UINT64_MAX, UINT64_MAX, false},
	    {CHECK, UINT64_MAX - 2, UINT64_MAX, true},
	    {CHECK, UINT64_MAX - 1, UINT64_MAX, false},
	    {CHECK, 5, 0, false},
	};
	RUN(steps);
}

Test(replay, floor)
{
	static const struct step steps[] = {
	    /* On a fresh window. */
	    FL(10000),
	    NO(9999),
	    NO(0),
	    NO(10000 - W),
	    NO(10000 - W - 5),
	    OK(10000),
	    NO(10000),
	    OK(10001),
	    /* A lower floor changes nothing. */
	    FL(500),
	    OK(10002),
	    NO(10001),
	    /* A floor inside the window keeps the state of what is above it. */
	    RS,
	    OK(2000),
	    OK(1990),
	    FL(1995),
	    NO(1991),
	    NO(1990),
	    NO(1994),
	    OK(1996),
	    NO(2000),
	    OK(1995),
	    OK(1999),
	    OK(2001),
	    /* A floor far ahead. */
	    RS,
	    OK(5),
	    FL(100000),
	    NO(5),
	    NO(99999),
	    NO(100000 - W),
	    OK(100000),
	    OK(100001),
	    /* Floors 0 and at the top. */
	    RS,
	    FL(0),
	    OK(0),
	    NO(0),
	    RS,
	    FL(UINT64_MAX),
	    NO(0),
	    NO(UINT64_MAX - 1),
	    {CHECK, UINT64_MAX - 1, UINT64_MAX, false},
	    /* At word boundaries. */
	    RS,
	    FL(64 * 7),
	    NO(64 * 7 - 1),
	    OK(64 * 7),
	    OK(64 * 7 + 63),
	    OK(64 * 8),
	    RS,
	    FL(64 * 7 + 1),
	    NO(64 * 7),
	    OK(64 * 7 + 1),
	    OK(64 * 7 + 2),
	};
	RUN(steps);
}

/* splitmix64 with a fixed seed: the same sequence on every run. */
static uint64_t rng_state;

static uint64_t rnd(void)
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

Test(replay, takeover_rejects_everything_accepted)
{
	struct gwd_replay *a = malloc(sizeof(*a)), *b = malloc(sizeof(*b));
	static uint64_t accepted[20000];
	int n = 0;

	cr_assert(a && b);
	rng_state = 7;
	gwd_replay_init(a);
	gwd_replay_init(b);
	for (uint64_t top = 3000; n < 20000; top += rnd() % 4) {
		uint64_t c = top - rnd() % 3000;

		if (gwd_replay_check_and_update(a, c, REJECT_AFTER))
			accepted[n++] = c;
	}
	gwd_replay_set_floor(b, gwd_replay_high_water(a));
	for (int i = 0; i < n; i++)
		cr_assert_not(gwd_replay_check_and_update(b, accepted[i], REJECT_AFTER));
	cr_assert(gwd_replay_check_and_update(b, gwd_replay_high_water(a), REJECT_AFTER));
	free(a);
	free(b);
}

/*
 * Naive reference: the set of counters seen (open addressing), the high
 * water mark and the greatest floor, with the window rule stated directly.
 */
enum { SET_BITS = 17, SET_SIZE = 1 << SET_BITS };

struct ref {
	uint64_t *slots; /* counter + 1; 0 = empty */
	uint64_t hwm;	 /* 1 + greatest counter accepted, or the floor */
	uint64_t floor;
	size_t used;
};

static size_t ref_slot(const struct ref *r, uint64_t counter)
{
	size_t i = (size_t)((counter * 0x9e3779b97f4a7c15ULL) >> (64 - SET_BITS));

	while (r->slots[i] && r->slots[i] != counter + 1)
		i = (i + 1) & (SET_SIZE - 1);
	return i;
}

static void ref_reset(struct ref *r)
{
	memset(r->slots, 0, SET_SIZE * sizeof(r->slots[0]));
	r->hwm = r->floor = 0;
	r->used = 0;
}

static bool ref_check(struct ref *r, uint64_t counter, uint64_t reject_after)
{
	size_t i;

	if (counter >= reject_after || counter < r->floor)
		return false;
	if (r->hwm > W && counter < r->hwm - W)
		return false;
	i = ref_slot(r, counter);
	if (r->slots[i])
		return false;
	cr_assert_lt(r->used, SET_SIZE / 2);
	r->slots[i] = counter + 1;
	r->used++;
	if (counter + 1 > r->hwm)
		r->hwm = counter + 1;
	return true;
}

static void ref_floor(struct ref *r, uint64_t floor)
{
	if (floor > r->floor)
		r->floor = floor;
	if (floor > r->hwm)
		r->hwm = floor;
}

/* A counter around the high-water mark, biased to the interesting spots. */
static uint64_t pick_counter(uint64_t hwm)
{
	uint64_t d = rnd();

	switch (d % 16) {
	case 0:
		return hwm - W + (d >> 8) % 3 - 1; /* the window's edge */
	case 1:
		return hwm + (d >> 8) % (1u << 20); /* a jump */
	case 2:
		return hwm - (d >> 8) % (3 * W); /* old, maybe too old */
	case 3:
		return d >> 8 & 1 ? UINT64_MAX - (d >> 9) % 8 : (d >> 9) % 8;
	default:
		return hwm + (d >> 8) % 64 - 40; /* small reordering */
	}
}

/*
 * Where a fresh stretch starts: at zero, anywhere, or where the jumps reach
 * the limit after a few thousand operations.
 */
static uint64_t pick_start(void)
{
	switch (rnd() % 3) {
	case 0:
		return 0;
	case 1:
		return rnd() >> 1;
	default:
		return REJECT_AFTER - (UINT64_C(1) << 31) - rnd() % (4 * W);
	}
}

Test(replay, random_against_reference, .timeout = 240)
{
	struct gwd_replay *r = malloc(sizeof(*r));
	struct ref ref = {.slots = calloc(SET_SIZE, sizeof(uint64_t))};
	uint64_t base = 0, accepted = 0;

	cr_assert(r && ref.slots);
	rng_state = 0x5eed0002;
	gwd_replay_init(r);
	for (int i = 0; i < 1000000; i++) {
		uint64_t hwm = ref.hwm > base ? ref.hwm : base;
		uint64_t c = pick_counter(hwm), limit = REJECT_AFTER;
		bool got, want;

		if (i % 50000 == 0) {
			gwd_replay_reset(r);
			ref_reset(&ref);
			base = pick_start();
			continue;
		}
		if (rnd() % 500 == 0) {
			gwd_replay_set_floor(r, c);
			ref_floor(&ref, c);
			continue;
		}
		if (rnd() % 50 == 0)
			limit = hwm + rnd() % 128 - 64;
		got = gwd_replay_check_and_update(r, c, limit);
		want = ref_check(&ref, c, limit);
		cr_assert_eq(got, want, "op %d: counter %llu limit %llu hwm %llu: got %d want %d",
			     i, (unsigned long long)c, (unsigned long long)limit,
			     (unsigned long long)ref.hwm, got, want);
		cr_assert_eq(gwd_replay_high_water(r), ref.hwm, "op %d", i);
		accepted += got;
	}
	/* The mix exercised both outcomes in earnest. */
	cr_assert_gt(accepted, 150000);
	cr_assert_lt(accepted, 800000);
	free(ref.slots);
	free(r);
}
