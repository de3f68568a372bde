// SPDX-License-Identifier: MIT
/*
 * Hybrid logical clock. With the stamp packed as ms << 16 | counter, the
 * HLC rules reduce to: send = max(last + 1, wall), receive = max(last, remote).
 * A counter overflow carries into the millisecond part, which keeps stamps
 * strictly increasing at the price of running ahead of the wall clock by
 * one millisecond per 65536 events in the same millisecond.
 */
#include "hlc.h"

#include <time.h>

void syncd_hlc_init(struct syncd_hlc *h, const struct gw_clock *clock)
{
	h->clock = clock;
	h->last = 0;
}

uint64_t syncd_hlc_wall(const struct syncd_hlc *h)
{
	struct timespec ts;
	uint64_t ms;

	gw_clock_real(h->clock, &ts);
	if (ts.tv_sec < 0)
		return 0;
	ms = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / GW_NSEC_PER_MSEC;
	return ms << SYNCD_HLC_LOGICAL_BITS;
}

uint64_t syncd_hlc_now(struct syncd_hlc *h)
{
	uint64_t wall = syncd_hlc_wall(h);

	if (wall > h->last)
		h->last = wall;
	else if (h->last != UINT64_MAX)
		h->last++;
	return h->last;
}

bool syncd_hlc_observe(struct syncd_hlc *h, uint64_t remote)
{
	uint64_t wall_ms = syncd_hlc_ms(syncd_hlc_wall(h));

	if (remote > h->last)
		h->last = remote;
	return syncd_hlc_ms(remote) <= wall_ms + SYNCD_HLC_MAX_AHEAD_MS;
}
