// SPDX-License-Identifier: MIT
#include <errno.h>
#include <stdlib.h>

#include "gw/crypto.h"
#include "index.h"

enum { INITIAL_BUCKETS = 64 };

/*
 * Indexes are random, so their low bits spread evenly; mixing anyway keeps
 * a node's fixed top byte and any attacker-chosen index from clustering.
 */
static size_t bucket_of(const struct gwd_index_table *t, uint32_t index)
{
	uint32_t h = index * 0x9e3779b1u;

	return (h ^ (h >> 16)) & (t->nbuckets - 1);
}

int gwd_index_init(struct gwd_index_table *t, uint8_t node_id)
{
	t->buckets = calloc(INITIAL_BUCKETS, sizeof(*t->buckets));
	if (!t->buckets)
		return -ENOMEM;
	t->nbuckets = INITIAL_BUCKETS;
	t->count = 0;
	t->node_id = node_id;
	return 0;
}

void gwd_index_destroy(struct gwd_index_table *t)
{
	for (size_t i = 0; i < t->nbuckets; i++) {
		struct gwd_index_entry *e = t->buckets[i], *next;

		for (; e; e = next) {
			next = e->next;
			free(e);
		}
	}
	free(t->buckets);
	t->buckets = NULL;
	t->nbuckets = t->count = 0;
}

static struct gwd_index_entry *find(const struct gwd_index_table *t, uint32_t index)
{
	struct gwd_index_entry *e = t->buckets[bucket_of(t, index)];

	while (e && e->index != index)
		e = e->next;
	return e;
}

/* Doubles the bucket array; on allocation failure the table just stays denser. */
static void grow(struct gwd_index_table *t)
{
	size_t n = t->nbuckets * 2;
	struct gwd_index_entry **b = calloc(n, sizeof(*b));
	struct gwd_index_entry **old = t->buckets;
	size_t oldn = t->nbuckets;

	if (!b)
		return;
	t->buckets = b;
	t->nbuckets = n;
	for (size_t i = 0; i < oldn; i++) {
		struct gwd_index_entry *e = old[i], *next;

		for (; e; e = next) {
			size_t k = bucket_of(t, e->index);

			next = e->next;
			e->next = b[k];
			b[k] = e;
		}
	}
	free(old);
}

int gwd_index_insert(struct gwd_index_table *t, uint32_t index, enum gwd_index_kind kind, void *ptr)
{
	struct gwd_index_entry *e;
	size_t k;

	if (find(t, index))
		return -EEXIST;
	e = malloc(sizeof(*e));
	if (!e)
		return -ENOMEM;
	if (t->count >= t->nbuckets)
		grow(t);
	k = bucket_of(t, index);
	e->index = index;
	e->kind = kind;
	e->ptr = ptr;
	e->next = t->buckets[k];
	t->buckets[k] = e;
	t->count++;
	return 0;
}

int gwd_index_alloc(struct gwd_index_table *t, enum gwd_index_kind kind, void *ptr, uint32_t *out)
{
	uint32_t index;
	int err;

	do {
		gw_random_bytes(&index, sizeof(index));
		if (t->node_id)
			index = (uint32_t)t->node_id << 24 | (index & 0xffffff);
		err = gwd_index_insert(t, index, kind, ptr);
	} while (err == -EEXIST);
	if (!err)
		*out = index;
	return err;
}

int gwd_index_replace(struct gwd_index_table *t, uint32_t index, enum gwd_index_kind kind,
		      void *ptr)
{
	struct gwd_index_entry *e = find(t, index);

	if (!e)
		return -ENOENT;
	e->kind = kind;
	e->ptr = ptr;
	return 0;
}

void gwd_index_free(struct gwd_index_table *t, uint32_t index)
{
	struct gwd_index_entry **pp = &t->buckets[bucket_of(t, index)];

	for (; *pp; pp = &(*pp)->next) {
		if ((*pp)->index == index) {
			struct gwd_index_entry *e = *pp;

			*pp = e->next;
			free(e);
			t->count--;
			return;
		}
	}
}

void *gwd_index_lookup(const struct gwd_index_table *t, uint32_t index, enum gwd_index_kind kind)
{
	struct gwd_index_entry *e = find(t, index);

	return e && e->kind == kind ? e->ptr : NULL;
}
