/* SPDX-License-Identifier: MIT */
/*
 * Allowed IPs: which peer owns an IP prefix, with longest-prefix-match
 * lookups for cryptokey routing (outbound: the packet's destination picks
 * the peer; inbound: the packet's source must map back to the peer whose
 * key decrypted it).
 *
 * One path-compressed binary trie per family. A node holds a prefix (host
 * bits cleared) and either an owner (a configured prefix) or none (a branch
 * point with exactly two children). Lookup walks at most one node per
 * distinct prefix length on the path and allocates nothing.
 *
 * With many peers the trie is deep (about 18 levels for 100k host routes)
 * and each level can be a cache miss, so full-length prefixes (/32, /128:
 * the usual one address per client) are also kept in a hash table that a
 * lookup tries first: a hit there is the longest match by definition.
 *
 * Memory: each prefix costs at most two nodes of 80 bytes, plus up to 96
 * bytes of hash table if it is full-length (the table grows by doubling and
 * shrinks only in gwd_allowedips_free()). 100k peers with one /32 and one
 * /128 each take about 510 bytes per peer, malloc's overhead included.
 *
 * Measured on the 2-core development VM (memory latency about 180 ns), 100k
 * peers, uniformly random destinations: host routes 9-15 M (IPv4) and
 * 5 M (IPv6) single lookups/s, 25-43 M and 22 M/s through
 * gwd_allowedips_lookup_many(); shorter prefixes only reach the trie walk's
 * 0.6-0.9 M/s (3.5 M/s batched). With 1k peers everything is cache-resident:
 * 35-50 M/s.
 *
 * Each peer embeds a struct gwd_allowedips_owner, which links the nodes it
 * owns, so removing a peer costs O(its prefixes) and its prefixes can be
 * listed in the order they were inserted.
 *
 * Not thread-safe: the caller serialises updates against each other and
 * against lookups (e.g. with a rwlock). Nothing here is secret.
 */
#ifndef GWD_ALLOWEDIPS_H
#define GWD_ALLOWEDIPS_H

#include <stddef.h>
#include <stdint.h>

#include "gw/addr.h"

struct gwd_aip_node;

/* Private: a link in an owner's circular list of nodes. */
struct gwd_aip_link {
	struct gwd_aip_link *next, *prev;
};

/*
 * Embedded by the caller in its peer. Fields are private; set up with
 * gwd_allowedips_owner_init(). It must stay at the same address while it
 * owns prefixes, and be emptied (gwd_allowedips_remove_by_peer(), or
 * gwd_allowedips_free() of the table) before its memory goes away.
 */
struct gwd_allowedips_owner {
	struct gwd_aip_link nodes;
	void *peer;
	size_t count;
};

struct gwd_aip_host;

/* Private: an exact-match index of the full-length prefixes (/32, /128). */
struct gwd_aip_hosts {
	struct gwd_aip_host *slots;
	size_t cap; /* 0 or a power of two; at most half full */
	size_t count;
};

/* Fields are private. */
struct gwd_allowedips {
	struct gwd_aip_node *root4, *root6;
	struct gwd_aip_hosts hosts[2]; /* [0] IPv4, [1] IPv6 */
	size_t count;
};

void gwd_allowedips_init(struct gwd_allowedips *t);
/*
 * Frees every node. Owners that still held prefixes are left empty (and may
 * be reused), so the caller may free the table before or after its peers.
 */
void gwd_allowedips_free(struct gwd_allowedips *t);

/* peer is what lookups return for this owner's prefixes; not NULL. */
void gwd_allowedips_owner_init(struct gwd_allowedips_owner *o, void *peer);

/*
 * Makes owner the owner of family's addr/cidr (addr is 4 or 16 bytes in
 * network order; host bits beyond cidr are ignored). A prefix that another
 * owner had moves to this one and leaves the first owner's list; inserting
 * one this owner already has changes nothing. 0, -EINVAL (unknown family,
 * cidr too long, owner without a peer) or -ENOMEM (the table is unchanged).
 */
int gwd_allowedips_insert(struct gwd_allowedips *t, int family, const uint8_t *addr, uint8_t cidr,
			  struct gwd_allowedips_owner *owner);
int gwd_allowedips_insert_prefix(struct gwd_allowedips *t, const struct gw_prefix *p,
				 struct gwd_allowedips_owner *owner);

/*
 * Removes exactly family's addr/cidr (host bits ignored) if owner owns it.
 * 0, -ENOENT (absent, or owned by another owner) or -EINVAL.
 */
int gwd_allowedips_remove(struct gwd_allowedips *t, int family, const uint8_t *addr, uint8_t cidr,
			  struct gwd_allowedips_owner *owner);

/* Removes every prefix of owner, in O(its prefixes). */
void gwd_allowedips_remove_by_peer(struct gwd_allowedips *t, struct gwd_allowedips_owner *owner);

/*
 * The peer of the longest prefix containing addr (4 or 16 bytes by family,
 * network order), or NULL when none does or family is unknown.
 */
void *gwd_allowedips_lookup(const struct gwd_allowedips *t, int family, const uint8_t *addr);

struct gwd_allowedips_query {
	int family;	     /* in */
	const uint8_t *addr; /* in: 4 or 16 bytes, network order */
	void *peer;	     /* out: as gwd_allowedips_lookup() returns */
};

/*
 * n lookups at once, with the same results as n gwd_allowedips_lookup()
 * calls. The paths are walked in lockstep so that their cache misses
 * overlap: when the table is much larger than the CPU caches (100k peers),
 * a batch of 16 or more runs several times faster than single lookups,
 * whose every level can be a trip to memory.
 */
void gwd_allowedips_lookup_many(const struct gwd_allowedips *t, struct gwd_allowedips_query *q,
				size_t n);

/*
 * Calls fn for each prefix of owner, in insertion order (a prefix moved to
 * this owner counts as inserted when it moved). Stops at the first non-zero
 * return of fn and returns it; 0 otherwise. fn must not change the table.
 */
typedef int (*gwd_allowedips_fn)(void *ctx, const struct gw_prefix *p);
int gwd_allowedips_for_each(const struct gwd_allowedips_owner *owner, gwd_allowedips_fn fn,
			    void *ctx);

/* Number of prefixes in the table, and of one owner. */
size_t gwd_allowedips_count(const struct gwd_allowedips *t);
size_t gwd_allowedips_owner_count(const struct gwd_allowedips_owner *owner);

#endif
