/* SPDX-License-Identifier: MIT */
/*
 * Clocks. Protocol timers run on a monotonic clock; TAI64N timestamps come
 * from the real-time clock. Both are read through struct gw_clock so tests
 * substitute a fake clock that only moves when told to.
 */
#ifndef GW_CLOCK_H
#define GW_CLOCK_H

#include <stdint.h>
#include <time.h>

#define GW_NSEC_PER_SEC	 1000000000ULL
#define GW_NSEC_PER_MSEC 1000000ULL

enum { GW_TAI64N_LEN = 12 };

struct gw_clock {
	uint64_t (*mono_ns)(const struct gw_clock *c);		     /* monotonic, ns */
	void (*real)(const struct gw_clock *c, struct timespec *ts); /* wall clock */
};

/* The process's clock: CLOCK_MONOTONIC (boot-relative, never steps) and CLOCK_REALTIME. */
const struct gw_clock *gw_clock_system(void);

static inline uint64_t gw_clock_mono_ns(const struct gw_clock *c)
{
	return c->mono_ns(c);
}

static inline void gw_clock_real(const struct gw_clock *c, struct timespec *ts)
{
	c->real(c, ts);
}

/* A clock for tests: starts at the given times and moves only by gw_fake_clock_*. */
struct gw_fake_clock {
	struct gw_clock clock; /* must stay first: pass &fc->clock */
	uint64_t mono;
	struct timespec realtime;
};
void gw_fake_clock_init(struct gw_fake_clock *fc, uint64_t mono_ns, time_t real_sec);
/* Advances both the monotonic and the real-time clock. */
void gw_fake_clock_advance(struct gw_fake_clock *fc, uint64_t ns);
/* Steps only the wall clock (as an NTP step would); monotonic time is unaffected. */
void gw_fake_clock_step_real(struct gw_fake_clock *fc, int64_t ns);

/*
 * TAI64N external format (12 bytes, big endian): 8 bytes of 2^62 + 10 +
 * seconds since the epoch, 4 bytes of nanoseconds.
 */
void gw_tai64n_from_timespec(uint8_t out[static GW_TAI64N_LEN], const struct timespec *ts);
void gw_tai64n_now(const struct gw_clock *c, uint8_t out[static GW_TAI64N_LEN]);
/* Back to a timespec; -EINVAL when the label is outside the sane range or nsec >= 1e9. */
int gw_tai64n_to_timespec(struct timespec *ts, const uint8_t in[static GW_TAI64N_LEN]);
/* <0, 0, >0 as a is earlier, equal or later than b (byte order is time order). */
int gw_tai64n_cmp(const uint8_t a[static GW_TAI64N_LEN], const uint8_t b[static GW_TAI64N_LEN]);

#endif
