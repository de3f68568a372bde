// SPDX-License-Identifier: MIT
#include "region.h"

#include "messages.h"

_Static_assert(GWD_REGION_EPOCH_SHIFT + GWD_REGION_EPOCH_BITS == 60,
	       "regions end below REKEY_AFTER_MESSAGES");
_Static_assert(((uint64_t)GWD_REGION_EPOCH_MAX + 1) << GWD_REGION_EPOCH_SHIFT <=
		   GWD_REKEY_AFTER_MESSAGES,
	       "no region counter reaches REKEY_AFTER_MESSAGES");
_Static_assert(GWD_REGION_EPOCH_NONE > GWD_REGION_EPOCH_MAX, "NONE is no epoch");

uint64_t gwd_region_start(uint16_t epoch, uint8_t node, uint16_t incarnation)
{
	if (epoch == 0)
		return 0;
	return (uint64_t)(epoch & GWD_REGION_EPOCH_MAX) << GWD_REGION_EPOCH_SHIFT |
	       (uint64_t)node << GWD_REGION_NODE_SHIFT |
	       (uint64_t)(incarnation & GWD_REGION_INCARNATION_MASK)
		   << GWD_REGION_INCARNATION_SHIFT;
}

uint64_t gwd_region_end(uint16_t epoch, uint8_t node, uint16_t incarnation)
{
	if (epoch == 0)
		return GWD_REGION_EPOCH0_END;
	return gwd_region_start(epoch, node, incarnation) + GWD_REGION_SIZE;
}

bool gwd_region_contains(uint16_t epoch, uint8_t node, uint16_t incarnation, uint64_t counter)
{
	return counter >= gwd_region_start(epoch, node, incarnation) &&
	       counter < gwd_region_end(epoch, node, incarnation);
}

void gwd_region_decode(uint64_t counter, struct gwd_region_fields *out)
{
	out->epoch = (uint16_t)(counter >> GWD_REGION_EPOCH_SHIFT & GWD_REGION_EPOCH_MAX);
	out->node = (uint8_t)(counter >> GWD_REGION_NODE_SHIFT & GWD_REGION_NODE_MAX);
	out->incarnation =
	    (uint16_t)(counter >> GWD_REGION_INCARNATION_SHIFT & GWD_REGION_INCARNATION_MASK);
	out->count = (uint32_t)(counter & (GWD_REGION_SIZE - 1));
}

int gwd_region_next_epoch(uint16_t greatest_known, uint16_t held, uint16_t *out)
{
	uint32_t base = greatest_known;

	if (held != GWD_REGION_EPOCH_NONE && held > base)
		base = held;
	/* A corrupt or hostile "greatest" above the field counts as exhausted. */
	if (base >= GWD_REGION_EPOCH_MAX)
		return -ENOSPC;
	*out = (uint16_t)(base + 1);
	return 0;
}
