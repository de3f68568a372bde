/* SPDX-License-Identifier: MIT */
/*
 * Counter regions (docs/failover.md, session-sync.md): the arithmetic that
 * keeps every (sending key, counter) pair unique across a cluster. No state,
 * no I/O.
 *
 * A sending counter of a clustered keypair reads
 *
 *   bit 63..60  0            stays below REKEY_AFTER_MESSAGES = 2^60
 *   bit 59..48  epoch        12 bits
 *   bit 47..40  node id      8 bits (1..255)
 *   bit 39..28  incarnation  12 bits: the node's boot counter mod 4096
 *   bit 27..0   count        28 bits
 *
 * Region (epoch, node, incarnation) is the set of counters with those three
 * fields, for epoch >= 1. Epoch 0 is special: it is the whole range
 * [0, 2^48), held only by the process that created the keypair in its
 * handshake, which counts from 0 as plain WireGuard does. Regions of
 * different (epoch, node, incarnation) are disjoint, epoch-0 included, so
 * two senders that never hold the same triple never share a counter.
 *
 * A sender never leaves its region: at the region's end it claims another
 * (gwd_region_next_epoch); when no epoch is left it stops sending with the
 * keypair.
 */
#ifndef GWD_REGION_H
#define GWD_REGION_H

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>

enum {
	GWD_REGION_COUNT_BITS = 28,
	GWD_REGION_INCARNATION_BITS = 12,
	GWD_REGION_NODE_BITS = 8,
	GWD_REGION_EPOCH_BITS = 12,
	GWD_REGION_INCARNATION_SHIFT = GWD_REGION_COUNT_BITS,
	GWD_REGION_NODE_SHIFT = GWD_REGION_INCARNATION_SHIFT + GWD_REGION_INCARNATION_BITS,
	GWD_REGION_EPOCH_SHIFT = GWD_REGION_NODE_SHIFT + GWD_REGION_NODE_BITS,
	GWD_REGION_EPOCH_MAX = (1 << GWD_REGION_EPOCH_BITS) - 1,	      /* 4095 */
	GWD_REGION_INCARNATION_MASK = (1 << GWD_REGION_INCARNATION_BITS) - 1, /* 4095 */
	GWD_REGION_NODE_MAX = (1 << GWD_REGION_NODE_BITS) - 1,		      /* 255 */
	/*
	 * A keypair's send_epoch when this process holds no region of it
	 * (imported and not claimed yet): it must not send with it.
	 */
	GWD_REGION_EPOCH_NONE = 0xffff,
};

/* Packets in one region of epoch >= 1: 2^28. */
#define GWD_REGION_SIZE (UINT64_C(1) << GWD_REGION_COUNT_BITS)
/* End (exclusive) of the epoch-0 range, and start of every other region: 2^48. */
#define GWD_REGION_EPOCH0_END (UINT64_C(1) << GWD_REGION_EPOCH_SHIFT)

/* A counter split into its fields. */
struct gwd_region_fields {
	uint16_t epoch;
	uint8_t node;
	uint16_t incarnation;
	uint32_t count;
};

/*
 * First counter of region (epoch, node, incarnation): 0 for epoch 0. The
 * incarnation is taken mod 4096. epoch must be <= GWD_REGION_EPOCH_MAX.
 */
uint64_t gwd_region_start(uint16_t epoch, uint8_t node, uint16_t incarnation);
/* One past the last counter of the region: GWD_REGION_EPOCH0_END for epoch 0. */
uint64_t gwd_region_end(uint16_t epoch, uint8_t node, uint16_t incarnation);
/* Whether counter lies in the region. */
bool gwd_region_contains(uint16_t epoch, uint8_t node, uint16_t incarnation, uint64_t counter);
/* The fields of a counter (for epoch-0 counters node/incarnation/count are just bits). */
void gwd_region_decode(uint64_t counter, struct gwd_region_fields *out);

/*
 * The epoch to claim next for a keypair: max(greatest known epoch, the epoch
 * this process holds, if any) + 1. held is GWD_REGION_EPOCH_NONE when the
 * process holds none. 0 and *out set, or -ENOSPC when the epoch field is
 * exhausted (the keypair must not be sent with again).
 */
int gwd_region_next_epoch(uint16_t greatest_known, uint16_t held, uint16_t *out);

/*
 * Counters left in the region before sending_counter reaches end: 0 when
 * exhausted.
 */
static inline uint64_t gwd_region_headroom(uint64_t sending_counter, uint64_t end)
{
	return sending_counter < end ? end - sending_counter : 0;
}

#endif
