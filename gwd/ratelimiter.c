// SPDX-License-Identifier: MIT
/*
 * Token buckets in a chained hash table over a preallocated entry pool, so
 * gwd_ratelimiter_allow() never allocates. Tokens are counted in
 * nanoseconds: a packet costs 1 s / rate, a bucket holds burst packets.
 */
#include "ratelimiter.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <sodium.h>

enum {
	NONE = UINT32_MAX, /* end of a chain or of the free list */
	MAX_ENTRIES_LIMIT = 1 << 24,
};

#define PACKET_COST (1000000000ULL / GWD_RATELIMITER_PACKETS_PER_SECOND)
#define TOKENS_MAX  (PACKET_COST * GWD_RATELIMITER_BURST)

_Static_assert(GWD_RATELIMITER_IDLE_NS >= TOKENS_MAX,
	       "an entry removed by gc must have refilled its bucket");

struct entry {
	uint64_t last_ns;
	uint64_t tokens; /* nanoseconds of credit, at most TOKENS_MAX */
	uint64_t key;	 /* the IPv4 address, or the /64 of the IPv6 address */
	uint32_t next;	 /* chain, or free list */
	uint8_t family;
};

struct gwd_ratelimiter {
	struct entry *entries;
	uint32_t *buckets; /* heads of chains */
	uint32_t mask;	   /* number of buckets - 1 */
	uint32_t free_head;
	size_t count;
	size_t max;
	uint8_t hash_key[crypto_shorthash_KEYBYTES];
};

int gwd_ratelimiter_init(struct gwd_ratelimiter **out, size_t max_entries)
{
	struct gwd_ratelimiter *rl;
	size_t nb = 1;

	*out = NULL;
	if (max_entries == 0 || max_entries > MAX_ENTRIES_LIMIT)
		return -EINVAL;
	while (nb < max_entries)
		nb <<= 1;
	rl = calloc(1, sizeof(*rl));
	if (!rl)
		return -ENOMEM;
	rl->entries = calloc(max_entries, sizeof(*rl->entries));
	rl->buckets = malloc(nb * sizeof(*rl->buckets));
	if (!rl->entries || !rl->buckets) {
		gwd_ratelimiter_free(rl);
		return -ENOMEM;
	}
	for (size_t i = 0; i < nb; i++)
		rl->buckets[i] = NONE;
	for (size_t i = 0; i < max_entries; i++)
		rl->entries[i].next = i + 1 < max_entries ? (uint32_t)(i + 1) : NONE;
	rl->free_head = 0;
	rl->mask = (uint32_t)(nb - 1);
	rl->max = max_entries;
	randombytes_buf(rl->hash_key, sizeof(rl->hash_key));
	*out = rl;
	return 0;
}

void gwd_ratelimiter_free(struct gwd_ratelimiter *rl)
{
	if (!rl)
		return;
	sodium_memzero(rl->hash_key, sizeof(rl->hash_key));
	free(rl->entries);
	free(rl->buckets);
	free(rl);
}

size_t gwd_ratelimiter_count(const struct gwd_ratelimiter *rl)
{
	return rl->count;
}

/* The source key: an IPv4 address, or the first 64 bits of an IPv6 one. */
static bool source_key(int family, const uint8_t *addr, uint64_t *key)
{
	if (family == AF_INET) {
		uint32_t v4;

		memcpy(&v4, addr, sizeof(v4));
		*key = v4;
		return true;
	}
	if (family == AF_INET6) {
		memcpy(key, addr, sizeof(*key));
		return true;
	}
	return false;
}

static uint32_t bucket_of(const struct gwd_ratelimiter *rl, uint8_t family, uint64_t key)
{
	uint8_t in[1 + sizeof(key)], h[crypto_shorthash_BYTES];
	uint32_t v;

	in[0] = family;
	memcpy(in + 1, &key, sizeof(key));
	crypto_shorthash(h, in, sizeof(in), rl->hash_key);
	memcpy(&v, h, sizeof(v));
	return v & rl->mask;
}

/* A bucket refilled for the time since its last packet, then charged one packet. */
static bool charge(struct entry *e, uint64_t now_ns)
{
	uint64_t elapsed = now_ns > e->last_ns ? now_ns - e->last_ns : 0;

	if (elapsed > TOKENS_MAX)
		elapsed = TOKENS_MAX;
	e->tokens = e->tokens + elapsed > TOKENS_MAX ? TOKENS_MAX : e->tokens + elapsed;
	e->last_ns = now_ns;
	if (e->tokens < PACKET_COST)
		return false;
	e->tokens -= PACKET_COST;
	return true;
}

bool gwd_ratelimiter_allow(struct gwd_ratelimiter *rl, int family, const uint8_t *addr,
			   uint64_t now_ns)
{
	struct entry *e;
	uint64_t key;
	uint32_t b, i;

	if (!source_key(family, addr, &key))
		return false;
	b = bucket_of(rl, (uint8_t)family, key);
	for (i = rl->buckets[b]; i != NONE; i = rl->entries[i].next) {
		e = &rl->entries[i];
		if (e->key == key && e->family == (uint8_t)family)
			return charge(e, now_ns);
	}
	if (rl->free_head == NONE)
		return false; /* full: fail closed */
	i = rl->free_head;
	e = &rl->entries[i];
	rl->free_head = e->next;
	e->key = key;
	e->family = (uint8_t)family;
	e->last_ns = now_ns;
	e->tokens = TOKENS_MAX - PACKET_COST; /* a full bucket, charged for this packet */
	e->next = rl->buckets[b];
	rl->buckets[b] = i;
	rl->count++;
	return true;
}

size_t gwd_ratelimiter_gc(struct gwd_ratelimiter *rl, uint64_t now_ns)
{
	size_t removed = 0;

	for (size_t b = 0; b <= rl->mask; b++) {
		uint32_t *link = &rl->buckets[b];

		while (*link != NONE) {
			uint32_t i = *link;
			struct entry *e = &rl->entries[i];

			if (now_ns > e->last_ns && now_ns - e->last_ns > GWD_RATELIMITER_IDLE_NS) {
				*link = e->next;
				e->next = rl->free_head;
				rl->free_head = i;
				rl->count--;
				removed++;
			} else {
				link = &e->next;
			}
		}
	}
	return removed;
}
