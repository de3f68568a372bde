// SPDX-License-Identifier: MIT
/*
 * Hybrid logical clock on a fake clock: a table of operations (advance or
 * step the wall clock, stamp, observe) with the exact stamp expected after
 * each, plus properties over long random runs.
 */
#include <criterion/criterion.h>
#include <stdint.h>

#include "hlc.h"

#define T0_MS	 1700000000000ULL /* the fake clock's start, in ms */
#define H(ms, c) ((uint64_t)(ms) << SYNCD_HLC_LOGICAL_BITS | (c))

enum op {
	ADVANCE_MS, /* both clocks forward */
	STEP_MS,    /* wall clock only, may be negative */
	NOW,	    /* expect this stamp */
	OBSERVE,    /* merge arg; expect the result of observe() in ok */
	END,
};

struct step {
	enum op op;
	int64_t arg;
	uint64_t want;
	bool ok;
};

#define ADV(ms)                            \
	{                                  \
		ADVANCE_MS, (ms), 0, false \
	}
#define STEP(ms)                        \
	{                               \
		STEP_MS, (ms), 0, false \
	}
#define NOW_IS(h)                  \
	{                          \
		NOW, 0, (h), false \
	}
#define OBS(h, v)                             \
	{                                     \
		OBSERVE, (int64_t)(h), 0, (v) \
	}
#define FIN                      \
	{                        \
		END, 0, 0, false \
	}

struct hlc_case {
	const char *name;
	struct step steps[16];
};

static const struct hlc_case cases[] = {
    {"follows the wall clock",
     {NOW_IS(H(T0_MS, 0)), ADV(5), NOW_IS(H(T0_MS + 5, 0)), ADV(1000), NOW_IS(H(T0_MS + 1005, 0)),
      FIN}},
    {"counts within one millisecond",
     {NOW_IS(H(T0_MS, 0)), NOW_IS(H(T0_MS, 1)), NOW_IS(H(T0_MS, 2)), ADV(1),
      NOW_IS(H(T0_MS + 1, 0)), FIN}},
    {"never goes back when the wall clock steps back",
     {NOW_IS(H(T0_MS, 0)), STEP(-10000), NOW_IS(H(T0_MS, 1)), ADV(5000), NOW_IS(H(T0_MS, 2)),
      ADV(5001), NOW_IS(H(T0_MS + 1, 0)), FIN}},
    {"exceeds an observed stamp from a clock ahead",
     {OBS(H(T0_MS + 2000, 7), true), NOW_IS(H(T0_MS + 2000, 8)), ADV(2001),
      NOW_IS(H(T0_MS + 2001, 0)), FIN}},
    {"an older observed stamp changes nothing",
     {ADV(10), OBS(H(T0_MS, 3), true), NOW_IS(H(T0_MS + 10, 0)), FIN}},
    {"a stamp far ahead is merged but flagged",
     {OBS(H(T0_MS + 60001, 0), false), NOW_IS(H(T0_MS + 60001, 1)), OBS(H(T0_MS + 60000, 0), true),
      FIN}},
    {"the counter carries into the milliseconds",
     {OBS(H(T0_MS, 0xffff), true), NOW_IS(H(T0_MS + 1, 0)), NOW_IS(H(T0_MS + 1, 1)), FIN}},
};

static void run_case(const struct hlc_case *c)
{
	struct gw_fake_clock fc;
	struct syncd_hlc h;

	gw_fake_clock_init(&fc, GW_NSEC_PER_SEC, (time_t)(T0_MS / 1000));
	syncd_hlc_init(&h, &fc.clock);
	cr_assert_eq(syncd_hlc_wall(&h), H(T0_MS, 0));
	for (const struct step *s = c->steps; s->op != END; s++) {
		size_t i = (size_t)(s - c->steps);

		switch (s->op) {
		case ADVANCE_MS:
			gw_fake_clock_advance(&fc, (uint64_t)s->arg * GW_NSEC_PER_MSEC);
			break;
		case STEP_MS:
			gw_fake_clock_step_real(&fc, s->arg * (int64_t)GW_NSEC_PER_MSEC);
			break;
		case NOW: {
			uint64_t got = syncd_hlc_now(&h);

			cr_assert_eq(got, s->want, "%s: step %zu: got %llu:%llu want %llu:%llu",
				     c->name, i, (unsigned long long)(got >> 16),
				     (unsigned long long)(got & 0xffff),
				     (unsigned long long)(s->want >> 16),
				     (unsigned long long)(s->want & 0xffff));
			break;
		}
		case OBSERVE:
			cr_assert_eq(syncd_hlc_observe(&h, (uint64_t)s->arg), s->ok, "%s: step %zu",
				     c->name, i);
			break;
		case END:
			break;
		}
	}
}

Test(hlc, table)
{
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		run_case(&cases[i]);
}

Test(hlc, strictly_increasing_under_random_steps)
{
	struct gw_fake_clock fc;
	struct syncd_hlc h;
	uint64_t prev = 0, x = 88172645463325252ULL;

	gw_fake_clock_init(&fc, GW_NSEC_PER_SEC, (time_t)(T0_MS / 1000));
	syncd_hlc_init(&h, &fc.clock);
	for (int i = 0; i < 100000; i++) {
		uint64_t now;

		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		switch (x % 4) {
		case 0:
			gw_fake_clock_advance(&fc, (x >> 8) % (3 * GW_NSEC_PER_MSEC));
			break;
		case 1:
			gw_fake_clock_step_real(&fc,
						-(int64_t)((x >> 8) % (50 * GW_NSEC_PER_MSEC)));
			break;
		case 2:
			syncd_hlc_observe(&h, prev + (x >> 40) % 100000);
			break;
		default:
			break;
		}
		now = syncd_hlc_now(&h);
		cr_assert_gt(now, prev, "iteration %d", i);
		cr_assert_geq(now, syncd_hlc_wall(&h));
		prev = now;
	}
}

Test(hlc, saturates_instead_of_wrapping)
{
	struct gw_fake_clock fc;
	struct syncd_hlc h;

	gw_fake_clock_init(&fc, GW_NSEC_PER_SEC, (time_t)(T0_MS / 1000));
	syncd_hlc_init(&h, &fc.clock);
	cr_assert(!syncd_hlc_observe(&h, UINT64_MAX));
	cr_assert_eq(syncd_hlc_now(&h), UINT64_MAX);
	cr_assert_eq(syncd_hlc_now(&h), UINT64_MAX);
}

Test(hlc, wall_before_the_epoch_is_zero)
{
	struct gw_fake_clock fc;
	struct syncd_hlc h;

	gw_fake_clock_init(&fc, GW_NSEC_PER_SEC, 0);
	gw_fake_clock_step_real(&fc, -5 * (int64_t)GW_NSEC_PER_SEC);
	syncd_hlc_init(&h, &fc.clock);
	cr_assert_eq(syncd_hlc_wall(&h), 0);
	cr_assert_eq(syncd_hlc_now(&h), 1);
}
