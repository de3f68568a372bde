/* SPDX-License-Identifier: MIT */
/*
 * Hybrid logical clock (Kulkarni et al., "Logical Physical Clocks", 2014)
 * packed into 64 bits: wall milliseconds << 16 | a logical counter. Stamps
 * follow the wall clock when it moves forward, never go backwards when it
 * steps back, and exceed every stamp observed from other nodes, so a change
 * made after seeing another change is ordered after it whatever the clocks
 * say. Last-writer-wins compares (hlc, writer node id).
 */
#ifndef SYNCD_HLC_H
#define SYNCD_HLC_H

#include <stdbool.h>
#include <stdint.h>

#include "gw/clock.h"

enum {
	SYNCD_HLC_LOGICAL_BITS = 16,
	/* A remote stamp further ahead of our wall clock than this is suspicious. */
	SYNCD_HLC_MAX_AHEAD_MS = 60 * 1000,
};

struct syncd_hlc {
	const struct gw_clock *clock; /* its real-time clock is read */
	uint64_t last;		      /* greatest stamp issued or observed */
};

static inline uint64_t syncd_hlc_ms(uint64_t hlc)
{
	return hlc >> SYNCD_HLC_LOGICAL_BITS;
}

void syncd_hlc_init(struct syncd_hlc *h, const struct gw_clock *clock);
/* The wall clock as a stamp with a zero logical part (0 before 1970). */
uint64_t syncd_hlc_wall(const struct syncd_hlc *h);
/*
 * A new stamp for a local event: greater than every stamp this clock issued
 * or observed, and at least the wall clock. Saturates at UINT64_MAX rather
 * than wrap (only reachable after observing a forged stamp).
 */
uint64_t syncd_hlc_now(struct syncd_hlc *h);
/*
 * Merges a stamp received from another node: later local stamps exceed it.
 * Returns false when it lies more than SYNCD_HLC_MAX_AHEAD_MS ahead of our
 * wall clock (it is merged anyway: LWW must not depend on local clocks; the
 * caller should log it).
 */
bool syncd_hlc_observe(struct syncd_hlc *h, uint64_t remote);

#endif
