/* SPDX-License-Identifier: MIT */
#include "replay.h"

#include <string.h>

/*
 * Counter c is bit c % 64 of the word for block c / 64; blocks map onto the
 * ring modulo GWD_REPLAY_WORDS. Invariant: the words of the GWD_REPLAY_WORDS
 * blocks ending with the block of greatest - 1 hold exactly the counters
 * accepted (or marked by a floor) in them; bits above greatest - 1 are zero.
 * The window spans at most that many blocks, so no two counters in it share
 * a bit.
 */
static uint64_t *word_of(struct gwd_replay *r, uint64_t counter)
{
	return &r->bitmap[(counter / GWD_REPLAY_WORD_BITS) % GWD_REPLAY_WORDS];
}

static uint64_t bit_of(uint64_t counter)
{
	return UINT64_C(1) << (counter % GWD_REPLAY_WORD_BITS);
}

void gwd_replay_init(struct gwd_replay *r)
{
	memset(r, 0, sizeof(*r));
}

void gwd_replay_reset(struct gwd_replay *r)
{
	gwd_replay_init(r);
}

/* Lowest counter the window still tracks. */
static uint64_t window_low(const struct gwd_replay *r)
{
	return r->greatest > GWD_REPLAY_WINDOW ? r->greatest - GWD_REPLAY_WINDOW : 0;
}

/*
 * Moves greatest up to new_greatest, clearing the words of the blocks that
 * enter the window: from the first block holding no counter below the old
 * greatest up to the block of new_greatest - 1.
 */
static void advance(struct gwd_replay *r, uint64_t new_greatest)
{
	uint64_t first =
	    r->greatest / GWD_REPLAY_WORD_BITS + (r->greatest % GWD_REPLAY_WORD_BITS != 0);
	uint64_t last = (new_greatest - 1) / GWD_REPLAY_WORD_BITS;

	if (last >= first) {
		if (last - first >= GWD_REPLAY_WORDS - 1)
			memset(r->bitmap, 0, sizeof(r->bitmap));
		else
			for (uint64_t b = first; b <= last; b++)
				r->bitmap[b % GWD_REPLAY_WORDS] = 0;
	}
	r->greatest = new_greatest;
}

bool gwd_replay_check_and_update(struct gwd_replay *r, uint64_t counter, uint64_t reject_after)
{
	uint64_t *word, bit;

	/* Also keeps counter + 1 from overflowing. */
	if (counter >= reject_after)
		return false;
	if (counter >= r->greatest)
		advance(r, counter + 1);
	else if (counter < window_low(r))
		return false;
	word = word_of(r, counter);
	bit = bit_of(counter);
	if (*word & bit)
		return false;
	*word |= bit;
	return true;
}

void gwd_replay_set_floor(struct gwd_replay *r, uint64_t floor)
{
	if (floor > r->greatest)
		advance(r, floor);
	/* Counters below window_low() are rejected by arithmetic already. */
	for (uint64_t c = window_low(r); c < floor; c++)
		*word_of(r, c) |= bit_of(c);
}
