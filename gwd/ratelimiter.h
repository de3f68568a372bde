/* SPDX-License-Identifier: MIT */
/*
 * Per-source rate limit for handshake messages, after kernel WireGuard's:
 * a token bucket per source of 20 packets per second with a burst of 5,
 * sources keyed by the whole IPv4 address and by the /64 of an IPv6 address
 * (one host usually owns a whole /64).
 *
 * Entries live in a hash table keyed with a random SipHash key (libsodium
 * crypto_shorthash), so a remote sender cannot aim sources at one bucket.
 * The table holds at most max_entries sources. When it is full a new source
 * is refused (fail closed, as the kernel does): under a flood of spoofed
 * sources, sources already in the table keep their rate and new ones wait
 * for the gc to free idle entries, while the cookie mechanism answers the
 * flood. Evicting instead would hand an evicted source a fresh, full bucket.
 *
 * The caller runs gwd_ratelimiter_gc() from a timer, every
 * GWD_RATELIMITER_GC_INTERVAL_NS. An entry idle for GWD_RATELIMITER_IDLE_NS
 * has a full bucket, exactly like a new entry, so removing it changes no
 * decision.
 *
 * Not thread-safe: one instance per thread, or a lock around every call.
 * Times are monotonic nanoseconds from the caller, so tests pass their own.
 */
#ifndef GWD_RATELIMITER_H
#define GWD_RATELIMITER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GWD_RATELIMITER_PACKETS_PER_SECOND 20
#define GWD_RATELIMITER_BURST		   5
/* Kernel WireGuard's table size on hosts with more than 1 GiB of memory. */
#define GWD_RATELIMITER_MAX_DEFAULT    65536
#define GWD_RATELIMITER_GC_INTERVAL_NS 1000000000ULL
#define GWD_RATELIMITER_IDLE_NS	       1000000000ULL

struct gwd_ratelimiter;

/* max_entries in 1..2^24. 0, -EINVAL or -ENOMEM. */
int gwd_ratelimiter_init(struct gwd_ratelimiter **out, size_t max_entries);
/* NULL is ignored. */
void gwd_ratelimiter_free(struct gwd_ratelimiter *rl);
/*
 * True when a handshake message from addr (4 bytes for AF_INET, 16 for
 * AF_INET6, network byte order) may be processed at now_ns. False when the
 * source is over its rate, when the table is full and the source is new,
 * and for any other family.
 */
bool gwd_ratelimiter_allow(struct gwd_ratelimiter *rl, int family, const uint8_t *addr,
			   uint64_t now_ns);
/* Removes the entries idle for more than GWD_RATELIMITER_IDLE_NS; returns how many. */
size_t gwd_ratelimiter_gc(struct gwd_ratelimiter *rl, uint64_t now_ns);
/* Sources currently tracked. */
size_t gwd_ratelimiter_count(const struct gwd_ratelimiter *rl);

#endif
