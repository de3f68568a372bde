// SPDX-License-Identifier: MIT
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "gw/clock.h"

struct tai_vector {
	time_t sec;
	long nsec;
	uint8_t bytes[GW_TAI64N_LEN];
};

/* Hand-computed: label = 0x400000000000000a + sec, then nsec, big endian. */
static const struct tai_vector tai_vectors[] = {
    {0, 0, {0x40, 0, 0, 0, 0, 0, 0, 0x0a, 0, 0, 0, 0}},
    {1, 1, {0x40, 0, 0, 0, 0, 0, 0, 0x0b, 0, 0, 0, 1}},
    /* 1700000000 = 0x6553f100, 123456789 = 0x075bcd15 */
    {1700000000, 123456789, {0x40, 0, 0, 0, 0x65, 0x53, 0xf1, 0x0a, 0x07, 0x5b, 0xcd, 0x15}},
    /* 0xffffffff + 0x0a carries into the upper word; 999999999 = 0x3b9ac9ff */
    {0xffffffffLL, 999999999, {0x40, 0, 0, 0x01, 0, 0, 0, 0x09, 0x3b, 0x9a, 0xc9, 0xff}},
    /* ten seconds before the Unix epoch is TAI64 label 2^62 exactly */
    {-10, 0, {0x40, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}},
    {-1, 500000000, {0x40, 0, 0, 0, 0, 0, 0, 0x09, 0x1d, 0xcd, 0x65, 0x00}},
};

Test(tai64n, encode_vectors)
{
	for (size_t i = 0; i < sizeof(tai_vectors) / sizeof(tai_vectors[0]); i++) {
		const struct tai_vector *v = &tai_vectors[i];
		struct timespec ts = {.tv_sec = v->sec, .tv_nsec = v->nsec};
		uint8_t out[GW_TAI64N_LEN];

		gw_tai64n_from_timespec(out, &ts);
		cr_assert_arr_eq(out, v->bytes, GW_TAI64N_LEN, "vector %zu", i);
	}
}

Test(tai64n, decode_vectors)
{
	for (size_t i = 0; i < sizeof(tai_vectors) / sizeof(tai_vectors[0]); i++) {
		const struct tai_vector *v = &tai_vectors[i];
		struct timespec ts;

		cr_assert_eq(gw_tai64n_to_timespec(&ts, v->bytes), 0, "vector %zu", i);
		cr_assert_eq(ts.tv_sec, v->sec, "vector %zu", i);
		cr_assert_eq(ts.tv_nsec, v->nsec, "vector %zu", i);
	}
}

Test(tai64n, decode_rejects)
{
	static const uint8_t bad[][GW_TAI64N_LEN] = {
	    /* nsec = 1e9 = 0x3b9aca00 */
	    {0x40, 0, 0, 0, 0, 0, 0, 0x0a, 0x3b, 0x9a, 0xca, 0x00},
	    {0x40, 0, 0, 0, 0, 0, 0, 0x0a, 0xff, 0xff, 0xff, 0xff},
	    /* label below 2^62: before 1970 TAI */
	    {0x3f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0},
	    {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
	    /* label 2^63 and above: reserved */
	    {0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
	    {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct timespec ts = {.tv_sec = 77, .tv_nsec = 77};

		cr_assert_eq(gw_tai64n_to_timespec(&ts, bad[i]), -EINVAL, "case %zu", i);
	}
	/* The largest accepted values on each side. */
	static const uint8_t edge[GW_TAI64N_LEN] = {0x7f, 0xff, 0xff, 0xff, 0xff, 0xff,
						    0xff, 0xff, 0x3b, 0x9a, 0xc9, 0xff};
	struct timespec ts;

	cr_assert_eq(gw_tai64n_to_timespec(&ts, edge), 0);
	cr_assert_eq(ts.tv_nsec, 999999999);
	cr_assert_eq((int64_t)ts.tv_sec, (int64_t)((1ULL << 62) - 1 - 10));
}

static int ts_cmp(const struct timespec *a, const struct timespec *b)
{
	if (a->tv_sec != b->tv_sec)
		return a->tv_sec < b->tv_sec ? -1 : 1;
	if (a->tv_nsec != b->tv_nsec)
		return a->tv_nsec < b->tv_nsec ? -1 : 1;
	return 0;
}

Test(tai64n, byte_order_is_time_order)
{
	static const struct timespec times[] = {
	    {-100, 0},	       {-1, 999999999}, {0, 0},		  {0, 1},
	    {0, 999999999},    {1, 0},		{255, 0},	  {256, 0},
	    {0xffffff, 5},     {0x1000000, 4},	{1700000000, 0},  {1700000000, 255},
	    {1700000000, 256}, {0xffffffff, 0}, {0x100000000, 0}, {(1LL << 40), 7},
	};
	size_t n = sizeof(times) / sizeof(times[0]);

	for (size_t i = 0; i < n; i++) {
		for (size_t j = 0; j < n; j++) {
			uint8_t a[GW_TAI64N_LEN], b[GW_TAI64N_LEN];

			gw_tai64n_from_timespec(a, &times[i]);
			gw_tai64n_from_timespec(b, &times[j]);
			cr_assert_eq(gw_tai64n_cmp(a, b), ts_cmp(&times[i], &times[j]),
				     "times %zu vs %zu", i, j);
		}
	}
}

Test(tai64n, now_uses_the_given_clock)
{
	struct gw_fake_clock fc;
	uint8_t out[GW_TAI64N_LEN];
	static const uint8_t want[GW_TAI64N_LEN] = {0x40, 0,	0,    0,    0x65, 0x53,
						    0xf1, 0x0a, 0x07, 0x5b, 0xcd, 0x15};

	gw_fake_clock_init(&fc, 5, 1700000000);
	gw_fake_clock_advance(&fc, 123456789);
	gw_tai64n_now(&fc.clock, out);
	cr_assert_arr_eq(out, want, GW_TAI64N_LEN);
}

Test(fake_clock, init_and_advance)
{
	struct gw_fake_clock fc;
	struct timespec ts;

	gw_fake_clock_init(&fc, 1000, 1700000000);
	cr_assert_eq(gw_clock_mono_ns(&fc.clock), 1000);
	gw_clock_real(&fc.clock, &ts);
	cr_assert_eq(ts.tv_sec, 1700000000);
	cr_assert_eq(ts.tv_nsec, 0);

	gw_fake_clock_advance(&fc, 999999999);
	gw_fake_clock_advance(&fc, 2);
	cr_assert_eq(gw_clock_mono_ns(&fc.clock), 1000 + 1000000001);
	gw_clock_real(&fc.clock, &ts);
	cr_assert_eq(ts.tv_sec, 1700000001);
	cr_assert_eq(ts.tv_nsec, 1);

	gw_fake_clock_advance(&fc, 3 * GW_NSEC_PER_SEC + 5);
	gw_clock_real(&fc.clock, &ts);
	cr_assert_eq(ts.tv_sec, 1700000004);
	cr_assert_eq(ts.tv_nsec, 6);
}

Test(fake_clock, step_real_leaves_mono_alone)
{
	static const struct {
		int64_t step;
		time_t sec;
		long nsec;
	} steps[] = {
	    {0, 1700000000, 500},
	    {1, 1700000000, 501},
	    {-501, 1700000000, 0},
	    {-1, 1699999999, 999999999},
	    {1, 1700000000, 0},
	    {-3600 * (int64_t)GW_NSEC_PER_SEC, 1699996400, 0},
	    {3600 * (int64_t)GW_NSEC_PER_SEC + 1500000000, 1700000001, 500000000},
	    {-1500000001, 1699999999, 999999999},
	};
	struct gw_fake_clock fc;

	gw_fake_clock_init(&fc, 42, 1700000000);
	fc.realtime.tv_nsec = 500;
	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		struct timespec ts;

		gw_fake_clock_step_real(&fc, steps[i].step);
		gw_clock_real(&fc.clock, &ts);
		cr_assert_eq(ts.tv_sec, steps[i].sec, "step %zu", i);
		cr_assert_eq(ts.tv_nsec, steps[i].nsec, "step %zu", i);
		cr_assert_eq(gw_clock_mono_ns(&fc.clock), 42, "step %zu", i);
	}
}

Test(system_clock, monotonic_and_real)
{
	const struct gw_clock *c = gw_clock_system();
	struct timespec ts, ref;
	uint64_t a, b;

	a = gw_clock_mono_ns(c);
	b = gw_clock_mono_ns(c);
	cr_assert_geq(b, a);
	clock_gettime(CLOCK_MONOTONIC, &ref);
	cr_assert_leq(b, (uint64_t)ref.tv_sec * GW_NSEC_PER_SEC + (uint64_t)ref.tv_nsec);

	gw_clock_real(c, &ts);
	clock_gettime(CLOCK_REALTIME, &ref);
	cr_assert_leq(ts.tv_sec, ref.tv_sec);
	cr_assert_geq(ts.tv_sec + 5, ref.tv_sec);
	cr_assert_lt(ts.tv_nsec, 1000000000);
}
