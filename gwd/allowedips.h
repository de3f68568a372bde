/* SPDX-License-Identifier: MIT */
/*
 * Allowed IPs: which peer owns an IP prefix, with longest-prefix-match
 * lookups for cryptokey routing (outbound: the packet's destination picks
 * the peer; inbound: the packet's source must map back to the peer whose
 * key decrypted it).
 *
 * Three places per family, which a lookup tries longest first:
 *
 * - full-length prefixes (/32, /128: the usual one address per client) in a
 *   hash table: one probe, and a hit is the longest match by definition;
 * - the other lengths but /0 in a multibit trie of stride 8: a node indexes
 *   8 bits of the address, holds the prefixes of the 8 lengths it covers
 *   expanded over its 256 slots, and points to children; a node is stored
 *   compressed (a bitmap of the slots that have a child, a bitmap of where
 *   runs of equal values start, popcounts to index both), and levels
 *   without prefixes are skipped (path compression: a node keeps the bits
 *   before it and a lookup checks them). A lookup visits at most 4 nodes
 *   (IPv4) or 16 (IPv6), in practice one per stride level that has
 *   prefixes on its path, and remembers the value of the longest;
 * - 0.0.0.0/0 and ::/0 as one value each.
 *
 * Measured: docs/performance.md (bench/scale_lookups.c).
 *
 * Memory: an entry of 64 bytes per prefix, plus for host routes a slot of
 * 16 (IPv4) or 24 bytes (IPv6) and an 8-byte back pointer in a table kept
 * at most half full (100k /32: 148 bytes each in all), for the others a
 * share of the trie nodes (96-byte header, 8 bytes per child and per run of
 * slots, 24 for the writer).
 *
 * Each peer embeds a struct gwd_allowedips_owner, which links its entries,
 * so removing a peer costs O(its prefixes) and its prefixes can be listed
 * in the order they were inserted.
 *
 * Threads: one writer, any number of readers. Every update (insert,
 * remove, remove_by_peer, free, reader_add/del, reclaim) must come from one
 * thread at a time, the writer; lookups on the writer's thread need nothing
 * more. Other threads may look up at the same time as the writer changes the
 * table if each registers a struct gwd_allowedips_reader (from the writer
 * thread) and makes its lookups between gwd_allowedips_read_begin() and
 * gwd_allowedips_read_end(). A lookup then sees each prefix either before
 * or after a concurrent change of it; the writer publishes new nodes and
 * tables with single pointer stores and frees what it replaced only once
 * every reader that might still see it has left its read section (epoch
 * based reclamation). Nothing here is secret.
 */
#ifndef GWD_ALLOWEDIPS_H
#define GWD_ALLOWEDIPS_H

#include <stddef.h>
#include <stdint.h>

#include "gw/addr.h"

struct gwd_aip_node;
struct gwd_aip_entry;
struct gwd_aip_hosts;
struct gwd_aip_gc;

/* Private: a link in an owner's circular list of entries. */
struct gwd_aip_link {
	struct gwd_aip_link *next, *prev;
};

/*
 * Embedded by the caller in its peer. Fields are private; set up with
 * gwd_allowedips_owner_init(). It must stay at the same address while it
 * owns prefixes, and be emptied (gwd_allowedips_remove_by_peer(), or
 * gwd_allowedips_free() of the table) before its memory goes away. A reader
 * thread may still return owner's peer from a lookup that overlapped the
 * removal: see gwd_allowedips_synchronize().
 */
struct gwd_allowedips_owner {
	struct gwd_aip_link entries;
	void *peer;
	size_t count;
};

/*
 * One per reader thread, owned by the caller, on its own cache line. Fields
 * are private.
 */
struct gwd_allowedips_reader {
	_Alignas(64) uint64_t epoch; /* 0 outside a read section; atomic */
	struct gwd_allowedips_reader *next;
};

/* Fields are private; lookups read the first three atomically. */
struct gwd_allowedips {
	struct gwd_aip_node *root[2];	/* [0] IPv4, [1] IPv6 */
	struct gwd_aip_hosts *hosts[2]; /* full-length prefixes */
	void *dflt[2];			/* the peer of /0 */
	uint64_t epoch;			/* >= 1; atomic */
	/* The writer's alone. */
	struct gwd_aip_entry *dflt_entry[2];
	struct gwd_allowedips_reader *readers;
	struct gwd_aip_gc *garbage; /* replaced memory, newest first */
	size_t count, nodes;
};

void gwd_allowedips_init(struct gwd_allowedips *t);
/*
 * Frees everything. Owners that still held prefixes are left empty (and may
 * be reused), so the caller may free the table before or after its peers.
 * No reader may be in a read section; registered readers are forgotten.
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
 * 0, -ENOENT (absent, or owned by another owner) or -EINVAL. Removal
 * allocates nothing and cannot fail otherwise (if memory runs out, a trie
 * node left without prefixes may stay until a later change nearby).
 */
int gwd_allowedips_remove(struct gwd_allowedips *t, int family, const uint8_t *addr, uint8_t cidr,
			  struct gwd_allowedips_owner *owner);

/* Removes every prefix of owner, in O(its prefixes). */
void gwd_allowedips_remove_by_peer(struct gwd_allowedips *t, struct gwd_allowedips_owner *owner);

/*
 * The peer of the longest prefix containing addr (4 or 16 bytes by family,
 * network order), or NULL when none does or family is unknown. On a thread
 * other than the writer's, only inside a read section.
 */
void *gwd_allowedips_lookup(const struct gwd_allowedips *t, int family, const uint8_t *addr);

struct gwd_allowedips_query {
	int family;	     /* in */
	const uint8_t *addr; /* in: 4 or 16 bytes, network order */
	void *peer;	     /* out: as gwd_allowedips_lookup() returns */
};

/*
 * n lookups at once, with the same results as n gwd_allowedips_lookup()
 * calls (and the same rule for threads). The host probes, then the trie
 * paths, are made in lockstep with the next cache line of each prefetched,
 * so that their cache misses overlap: when the table is larger than the
 * CPU caches, batches of 16 run 2-4 times faster than single lookups.
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

/*
 * Reader threads. gwd_allowedips_reader_add() and _del() are the writer's
 * (r must be outside a read section to be deleted, and stay in memory while
 * registered). A reader thread brackets its lookups with read_begin(t, r)
 * and read_end(r), its own r only; the section should be short (a batch of
 * packets): memory the writer replaces meanwhile waits for its end. Begin
 * costs a full memory barrier, end a store.
 */
void gwd_allowedips_reader_add(struct gwd_allowedips *t, struct gwd_allowedips_reader *r);
void gwd_allowedips_reader_del(struct gwd_allowedips *t, struct gwd_allowedips_reader *r);
void gwd_allowedips_read_begin(const struct gwd_allowedips *t, struct gwd_allowedips_reader *r);
void gwd_allowedips_read_end(struct gwd_allowedips_reader *r);

/*
 * The writer's: frees the replaced memory that no reader can see any more.
 * Every update does this too; call it now and then (a timer) so that the
 * memory of the last update does not wait for the next one.
 */
void gwd_allowedips_reclaim(struct gwd_allowedips *t);

/*
 * The writer's: waits until every reader that was in a read section at the
 * call has left it (readers that begin later are not waited for). After
 * removing a peer's prefixes, this makes it safe to free the peer: no
 * lookup can return it any more. Spins (yielding the CPU), so read
 * sections must end.
 */
void gwd_allowedips_synchronize(struct gwd_allowedips *t);

#endif
