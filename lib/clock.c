// SPDX-License-Identifier: MIT
/*
 * System and fake clocks, and TAI64N timestamps
 * (https://cr.yp.to/libtai/tai64.html), as WireGuard puts them in handshake
 * initiations: label 2^62 + 10 + Unix seconds, then nanoseconds, big endian.
 */
#include "gw/clock.h"

#include <errno.h>
#include <string.h>

#define TAI64_EPOCH    (1ULL << 62)
#define TAI64_UNIX_OFF (TAI64_EPOCH + 10) /* 0x400000000000000a */
#define TAI64_RESERVED (1ULL << 63)	  /* labels from here on are reserved */

static uint64_t system_mono_ns(const struct gw_clock *c)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * GW_NSEC_PER_SEC + (uint64_t)ts.tv_nsec;
}

static void system_real(const struct gw_clock *c, struct timespec *ts)
{
	clock_gettime(CLOCK_REALTIME, ts);
}

static const struct gw_clock system_clock = {
    .mono_ns = system_mono_ns,
    .real = system_real,
};

const struct gw_clock *gw_clock_system(void)
{
	return &system_clock;
}

static uint64_t fake_mono_ns(const struct gw_clock *c)
{
	return ((const struct gw_fake_clock *)c)->mono;
}

static void fake_real(const struct gw_clock *c, struct timespec *ts)
{
	*ts = ((const struct gw_fake_clock *)c)->realtime;
}

void gw_fake_clock_init(struct gw_fake_clock *fc, uint64_t mono_ns, time_t real_sec)
{
	memset(fc, 0, sizeof(*fc));
	fc->clock.mono_ns = fake_mono_ns;
	fc->clock.real = fake_real;
	fc->mono = mono_ns;
	fc->realtime.tv_sec = real_sec;
}

/* Adds sec and nsec (|nsec| < 1e9) and renormalises to 0 <= tv_nsec < 1e9. */
static void ts_add(struct timespec *ts, int64_t sec, int64_t nsec)
{
	int64_t ns = ts->tv_nsec + nsec;

	ts->tv_sec += sec;
	if (ns < 0) {
		ns += (int64_t)GW_NSEC_PER_SEC;
		ts->tv_sec--;
	} else if (ns >= (int64_t)GW_NSEC_PER_SEC) {
		ns -= (int64_t)GW_NSEC_PER_SEC;
		ts->tv_sec++;
	}
	ts->tv_nsec = ns;
}

void gw_fake_clock_advance(struct gw_fake_clock *fc, uint64_t ns)
{
	fc->mono += ns;
	ts_add(&fc->realtime, (int64_t)(ns / GW_NSEC_PER_SEC), (int64_t)(ns % GW_NSEC_PER_SEC));
}

void gw_fake_clock_step_real(struct gw_fake_clock *fc, int64_t ns)
{
	const int64_t nps = (int64_t)GW_NSEC_PER_SEC;

	ts_add(&fc->realtime, ns / nps, ns % nps);
}

static void put_be64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

static void put_be32(uint8_t *p, uint32_t v)
{
	for (int i = 3; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

static uint64_t get_be64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

static uint32_t get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* ts must be normalised (0 <= tv_nsec < 1e9). */
void gw_tai64n_from_timespec(uint8_t out[static GW_TAI64N_LEN], const struct timespec *ts)
{
	put_be64(out, TAI64_UNIX_OFF + (uint64_t)(int64_t)ts->tv_sec);
	put_be32(out + 8, (uint32_t)ts->tv_nsec);
}

void gw_tai64n_now(const struct gw_clock *c, uint8_t out[static GW_TAI64N_LEN])
{
	struct timespec ts;

	gw_clock_real(c, &ts);
	gw_tai64n_from_timespec(out, &ts);
}

/*
 * Accepts labels from 1970 TAI (2^62) up to the reserved range (2^63): every
 * such time fits a 64-bit time_t.
 */
int gw_tai64n_to_timespec(struct timespec *ts, const uint8_t in[static GW_TAI64N_LEN])
{
	uint64_t label = get_be64(in);
	uint32_t nsec = get_be32(in + 8);

	if (label < TAI64_EPOCH || label >= TAI64_RESERVED || nsec >= GW_NSEC_PER_SEC)
		return -EINVAL;
	ts->tv_sec = (time_t)((int64_t)(label - TAI64_EPOCH) - 10);
	ts->tv_nsec = (long)nsec;
	return 0;
}

int gw_tai64n_cmp(const uint8_t a[static GW_TAI64N_LEN], const uint8_t b[static GW_TAI64N_LEN])
{
	int r = memcmp(a, b, GW_TAI64N_LEN);

	return (r > 0) - (r < 0);
}
