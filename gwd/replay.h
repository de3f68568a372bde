/* SPDX-License-Identifier: MIT */
/*
 * Anti-replay sliding window for the 64-bit counters of transport data
 * packets (RFC 6479: a ring of bitmap words, so advancing the window clears
 * whole words instead of shifting the bitmap).
 *
 * The ring holds GWD_REPLAY_BITS_TOTAL bits; the window is one word less
 * (GWD_REPLAY_WINDOW = 8128 counters), because the word holding the greatest
 * counter may be only partly in use while the oldest word must still be
 * complete. These are the sizes the Linux kernel and wireguard-go use, so
 * gwd tolerates the same reordering as they do. One window is 1 KiB plus
 * 8 bytes; it lives in each keypair.
 *
 * Not thread-safe: the caller serialises calls on one window (for instance
 * under the keypair's receive lock).
 */
#ifndef GWD_REPLAY_H
#define GWD_REPLAY_H

#include <stdbool.h>
#include <stdint.h>

enum {
	GWD_REPLAY_WORD_BITS = 64,
	GWD_REPLAY_BITS_TOTAL = 8192,
	GWD_REPLAY_WORDS = GWD_REPLAY_BITS_TOTAL / GWD_REPLAY_WORD_BITS,
	GWD_REPLAY_WINDOW = GWD_REPLAY_BITS_TOTAL - GWD_REPLAY_WORD_BITS,
};

/*
 * greatest is the high-water mark: one more than the greatest counter
 * accepted so far, 0 while none has been (kept "plus one" so that counter 0
 * is an ordinary counter). Counters below greatest - GWD_REPLAY_WINDOW are
 * rejected as too old; counters in [greatest - GWD_REPLAY_WINDOW, greatest)
 * are accepted once, as their bit in bitmap says; counters >= greatest move
 * the window forward. Read it with gwd_replay_high_water(); write it only
 * through the functions below.
 */
struct gwd_replay {
	uint64_t greatest;
	uint64_t bitmap[GWD_REPLAY_WORDS];
};

/* An empty window: every counter below reject_after is acceptable once. */
void gwd_replay_init(struct gwd_replay *r);
/* Same as init; for a keypair slot that is reused. */
void gwd_replay_reset(struct gwd_replay *r);

/*
 * Returns true and records counter when counter has not been seen, is not
 * older than the window allows and is below reject_after (the protocol's
 * Reject-After-Messages, 2^64 - 2^13 - 1: GWD_REJECT_AFTER_MESSAGES in
 * messages.h); returns false, changing nothing, otherwise.
 *
 * Call it only AFTER the packet has been authenticated (AEAD tag verified):
 * an unauthenticated counter would let anyone slide the window forward and
 * have every genuine packet rejected as too old.
 */
__attribute__((warn_unused_result)) bool
gwd_replay_check_and_update(struct gwd_replay *r, uint64_t counter, uint64_t reject_after);

/*
 * Adds a floor: afterwards a counter is accepted exactly when it would have
 * been before the call and it is >= floor. On a fresh window that means
 * every counter below floor is rejected and each one from floor up (below
 * reject_after) is accepted once. The high-water mark becomes the larger of
 * itself and floor. The call never makes a counter acceptable again, so an
 * old or repeated floor is harmless. Costs O(GWD_REPLAY_WINDOW).
 *
 * Used when a node takes over a replicated session: it calls this with the
 * high-water mark the previous owner replicated (gwd_replay_high_water()),
 * so every counter that owner may have accepted is rejected here.
 */
void gwd_replay_set_floor(struct gwd_replay *r, uint64_t floor);

/*
 * The value to replicate: every counter this window has accepted is below
 * it, so gwd_replay_set_floor() with it on another window rejects them all.
 */
static inline uint64_t gwd_replay_high_water(const struct gwd_replay *r)
{
	return r->greatest;
}

#endif
