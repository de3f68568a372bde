/* SPDX-License-Identifier: MIT */
/*
 * The receiver-index table: the 32-bit indexes that WireGuard messages carry
 * to name a handshake in progress or a keypair at the receiver.
 *
 * In a cluster every node mints indexes as node_id << 24 | 24 random bits
 * (node ids 1..255), so indexes created on different nodes never collide and
 * an index names its creator. A standalone gwd (node id 0) uses all 32 bits.
 * Replicated keypairs are inserted under the index their creator chose.
 */
#ifndef GWD_INDEX_H
#define GWD_INDEX_H

#include <stddef.h>
#include <stdint.h>

enum gwd_index_kind {
	GWD_INDEX_HANDSHAKE = 1, /* ptr is the peer's noise remote */
	GWD_INDEX_KEYPAIR = 2,	 /* ptr is a keypair */
};

struct gwd_index_entry {
	struct gwd_index_entry *next;
	uint32_t index;
	enum gwd_index_kind kind;
	void *ptr;
};

struct gwd_index_table {
	struct gwd_index_entry **buckets;
	size_t nbuckets; /* a power of two */
	size_t count;
	uint8_t node_id;
};

/* 0 or -ENOMEM. */
int gwd_index_init(struct gwd_index_table *t, uint8_t node_id);
/* Frees the table's entries; the objects they point at are the caller's. */
void gwd_index_destroy(struct gwd_index_table *t);

/* Registers ptr under a fresh unused index of this node. 0 or -ENOMEM. */
int gwd_index_alloc(struct gwd_index_table *t, enum gwd_index_kind kind, void *ptr, uint32_t *out);
/* Registers ptr under a given index (an imported keypair). 0, -EEXIST or -ENOMEM. */
int gwd_index_insert(struct gwd_index_table *t, uint32_t index, enum gwd_index_kind kind,
		     void *ptr);
/* Points an existing index at another object (handshake -> keypair). 0 or -ENOENT. */
int gwd_index_replace(struct gwd_index_table *t, uint32_t index, enum gwd_index_kind kind,
		      void *ptr);
/* Removes index; harmless when absent. */
void gwd_index_free(struct gwd_index_table *t, uint32_t index);
/* The object registered under index with that kind, or NULL. */
void *gwd_index_lookup(const struct gwd_index_table *t, uint32_t index, enum gwd_index_kind kind);

#endif
