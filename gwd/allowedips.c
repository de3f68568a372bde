/* SPDX-License-Identifier: MIT */
#include "allowedips.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

/*
 * Keys are 128 bits, most significant first: key[0] holds bits 0..63. An
 * IPv4 address fills bits 0..31 and leaves the rest zero.
 *
 * Trie invariants: along any path cidr strictly increases; a node's key
 * agrees with its parent's on the parent's cidr bits and sits in the child
 * slot named by its bit at the parent's cidr; a node without an owner
 * (a branch point) has exactly two children.
 */
struct gwd_aip_node {
	/* What lookups read comes first, within one cache line. */
	uint64_t key[2]; /* bits beyond cidr are zero */
	struct gwd_aip_node *child[2];
	void *peer; /* owner->peer, copied so lookups touch one struct; NULL for branches */
	uint8_t cidr;
	bool is6;
	struct gwd_aip_node *parent;
	struct gwd_allowedips_owner *owner;
	struct gwd_aip_link link; /* in owner->nodes while owner is set */
};

enum { KEY_BITS = 128 };

static struct gwd_aip_node *node_of(struct gwd_aip_link *l)
{
	return (struct gwd_aip_node *)((char *)l - offsetof(struct gwd_aip_node, link));
}

static void link_add_tail(struct gwd_aip_link *head, struct gwd_aip_link *l)
{
	l->prev = head->prev;
	l->next = head;
	head->prev->next = l;
	head->prev = l;
}

static void link_del(struct gwd_aip_link *l)
{
	l->prev->next = l->next;
	l->next->prev = l->prev;
	l->next = l->prev = l;
}

static unsigned int family_bits(int family)
{
	if (family == AF_INET)
		return 32;
	if (family == AF_INET6)
		return 128;
	return 0;
}

static uint64_t load_be64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

static void store_be64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

static void load_key(uint64_t key[2], int family, const uint8_t *addr)
{
	if (family == AF_INET) {
		key[0] = (uint64_t)addr[0] << 56 | (uint64_t)addr[1] << 48 |
			 (uint64_t)addr[2] << 40 | (uint64_t)addr[3] << 32;
		key[1] = 0;
	} else {
		key[0] = load_be64(addr);
		key[1] = load_be64(addr + 8);
	}
}

/* Mask of the bits of word w (0 or 1) that lie within the first cidr bits. */
static uint64_t word_mask(unsigned int cidr, unsigned int w)
{
	unsigned int n = cidr > 64 * w ? cidr - 64 * w : 0;

	if (n >= 64)
		return ~UINT64_C(0);
	return n ? ~UINT64_C(0) << (64 - n) : 0;
}

static void mask_key(uint64_t key[2], unsigned int cidr)
{
	key[0] &= word_mask(cidr, 0);
	key[1] &= word_mask(cidr, 1);
}

/* Bit i (< KEY_BITS) of key. */
static unsigned int bit_at(const uint64_t key[2], unsigned int i)
{
	return (key[i / 64] >> (63 - i % 64)) & 1;
}

/* Length of the common leading bits of a and b. */
static unsigned int common_bits(const uint64_t a[2], const uint64_t b[2])
{
	uint64_t x = a[0] ^ b[0];

	if (x)
		return (unsigned int)__builtin_clzll(x);
	x = a[1] ^ b[1];
	return x ? 64 + (unsigned int)__builtin_clzll(x) : KEY_BITS;
}

/* True when node's prefix contains key. */
static bool node_covers(const struct gwd_aip_node *n, const uint64_t key[2])
{
	return common_bits(n->key, key) >= n->cidr;
}

static struct gwd_aip_node **root_of(struct gwd_allowedips *t, bool is6)
{
	return is6 ? &t->root6 : &t->root4;
}

/* The pointer that refers to n: its parent's child slot or the root. */
static struct gwd_aip_node **slot_of(struct gwd_allowedips *t, struct gwd_aip_node *n)
{
	if (!n->parent)
		return root_of(t, n->is6);
	return &n->parent->child[bit_at(n->key, n->parent->cidr)];
}

static struct gwd_aip_node *node_new(const uint64_t key[2], unsigned int cidr, bool is6)
{
	struct gwd_aip_node *n = calloc(1, sizeof(*n));

	if (!n)
		return NULL;
	n->key[0] = key[0];
	n->key[1] = key[1];
	mask_key(n->key, cidr);
	n->cidr = (uint8_t)cidr;
	n->is6 = is6;
	n->link.next = n->link.prev = &n->link;
	return n;
}

/*
 * The host index: open addressing with linear probing, at most half full,
 * entries removed by shifting back the ones after them (no tombstones).
 * Its keys are configured addresses, which packet senders do not choose, so
 * a fixed hash function is enough: whatever address a lookup asks for, it
 * scans at most the longest run of the table, which the configuration set.
 */
struct gwd_aip_host {
	uint64_t key[2];
	void *peer; /* NULL: empty slot */
};

static bool is_host(const struct gwd_aip_node *n)
{
	return n->cidr == (n->is6 ? 128 : 32);
}

static uint64_t mix64(uint64_t x)
{
	x ^= x >> 33;
	x *= UINT64_C(0xff51afd7ed558ccd);
	x ^= x >> 33;
	x *= UINT64_C(0xc4ceb9fe1a85ec53);
	return x ^ (x >> 33);
}

static size_t host_home(const struct gwd_aip_hosts *h, const uint64_t key[2])
{
	return (size_t)mix64(key[0] ^ mix64(key[1] + 1)) & (h->cap - 1);
}

static const struct gwd_aip_host *host_find_from(const struct gwd_aip_hosts *h, size_t i,
						 const uint64_t key[2])
{
	for (; h->slots[i].peer; i = (i + 1) & (h->cap - 1))
		if (h->slots[i].key[0] == key[0] && h->slots[i].key[1] == key[1])
			return &h->slots[i];
	return NULL;
}

static const struct gwd_aip_host *host_find(const struct gwd_aip_hosts *h, const uint64_t key[2])
{
	return h->count ? host_find_from(h, host_home(h, key), key) : NULL;
}

/* Stores key -> peer; the caller made room with host_reserve(). */
static void host_put(struct gwd_aip_hosts *h, const uint64_t key[2], void *peer)
{
	struct gwd_aip_host *e = (struct gwd_aip_host *)host_find(h, key);
	size_t i;

	if (!e) {
		for (i = host_home(h, key); h->slots[i].peer; i = (i + 1) & (h->cap - 1))
			;
		e = &h->slots[i];
		e->key[0] = key[0];
		e->key[1] = key[1];
		h->count++;
	}
	e->peer = peer;
}

/* Makes room for one more entry. 0 or -ENOMEM (the index is unchanged). */
static int host_reserve(struct gwd_aip_hosts *h)
{
	struct gwd_aip_hosts bigger = {.cap = h->cap ? 2 * h->cap : 16};

	if (2 * (h->count + 1) <= h->cap)
		return 0;
	bigger.slots = calloc(bigger.cap, sizeof(*bigger.slots));
	if (!bigger.slots)
		return -ENOMEM;
	for (size_t i = 0; i < h->cap; i++)
		if (h->slots[i].peer)
			host_put(&bigger, h->slots[i].key, h->slots[i].peer);
	free(h->slots);
	*h = bigger;
	return 0;
}

/* Whether slot j, whose entry's home is k, may move back to the hole at i. */
static bool may_fill(size_t i, size_t j, size_t k)
{
	if (i <= j)
		return k <= i || k > j;
	return k <= i && k > j;
}

static void host_del(struct gwd_aip_hosts *h, const uint64_t key[2])
{
	struct gwd_aip_host *e = (struct gwd_aip_host *)host_find(h, key);
	size_t i, j;

	if (!e)
		return;
	i = (size_t)(e - h->slots);
	for (j = (i + 1) & (h->cap - 1); h->slots[j].peer; j = (j + 1) & (h->cap - 1)) {
		if (may_fill(i, j, host_home(h, h->slots[j].key))) {
			h->slots[i] = h->slots[j];
			i = j;
		}
	}
	h->slots[i].peer = NULL;
	h->count--;
}

static struct gwd_aip_hosts *hosts_of(struct gwd_allowedips *t, const struct gwd_aip_node *n)
{
	return &t->hosts[n->is6];
}

void gwd_allowedips_init(struct gwd_allowedips *t)
{
	memset(t, 0, sizeof(*t));
}

void gwd_allowedips_owner_init(struct gwd_allowedips_owner *o, void *peer)
{
	o->nodes.next = o->nodes.prev = &o->nodes;
	o->peer = peer;
	o->count = 0;
}

/* Detaches n from its owner, if any, leaving it a branch point. */
static void clear_owner(struct gwd_allowedips *t, struct gwd_aip_node *n)
{
	if (!n->owner)
		return;
	link_del(&n->link);
	n->owner->count--;
	n->owner = NULL;
	n->peer = NULL;
	t->count--;
	if (is_host(n))
		host_del(hosts_of(t, n), n->key);
}

static void set_owner(struct gwd_allowedips *t, struct gwd_aip_node *n,
		      struct gwd_allowedips_owner *owner)
{
	if (n->owner == owner)
		return;
	clear_owner(t, n);
	n->owner = owner;
	n->peer = owner->peer;
	link_add_tail(&owner->nodes, &n->link);
	owner->count++;
	t->count++;
	if (is_host(n))
		host_put(hosts_of(t, n), n->key, n->peer);
}

/* Depth is at most KEY_BITS + 1, so recursion is bounded. */
static void free_subtree(struct gwd_allowedips *t, struct gwd_aip_node *n)
{
	if (!n)
		return;
	free_subtree(t, n->child[0]);
	free_subtree(t, n->child[1]);
	clear_owner(t, n);
	free(n);
}

void gwd_allowedips_free(struct gwd_allowedips *t)
{
	free_subtree(t, t->root4);
	free_subtree(t, t->root6);
	free(t->hosts[0].slots);
	free(t->hosts[1].slots);
	gwd_allowedips_init(t);
}

/*
 * Puts a new node for key/cidr into *slot, where the walk from the root
 * stopped: *slot is empty, or holds a node that does not contain key/cidr.
 * That node then becomes a child of the new node (which contains it) or of
 * a new branch point at the first bit where the two differ.
 */
static struct gwd_aip_node *attach(struct gwd_aip_node **slot, struct gwd_aip_node *parent,
				   const uint64_t key[2], unsigned int cidr, bool is6)
{
	struct gwd_aip_node *old = *slot, *node, *branch;
	unsigned int c;

	node = node_new(key, cidr, is6);
	if (!node)
		return NULL;
	node->parent = parent;
	if (!old) {
		*slot = node;
		return node;
	}
	c = common_bits(old->key, key);
	if (c >= cidr) {
		node->child[bit_at(old->key, cidr)] = old;
		old->parent = node;
		*slot = node;
		return node;
	}
	/* Here c < cidr and c < old->cidr, so both keys have bit c. */
	branch = node_new(key, c, is6);
	if (!branch) {
		free(node);
		return NULL;
	}
	branch->parent = parent;
	branch->child[bit_at(key, c)] = node;
	branch->child[bit_at(old->key, c)] = old;
	node->parent = old->parent = branch;
	*slot = branch;
	return node;
}

int gwd_allowedips_insert(struct gwd_allowedips *t, int family, const uint8_t *addr, uint8_t cidr,
			  struct gwd_allowedips_owner *owner)
{
	unsigned int bits = family_bits(family);
	struct gwd_aip_node **slot, *n, *parent = NULL;
	uint64_t key[2];

	if (!bits || cidr > bits || !addr || !owner || !owner->peer)
		return -EINVAL;
	load_key(key, family, addr);
	mask_key(key, cidr);
	slot = root_of(t, family == AF_INET6);
	while ((n = *slot) && n->cidr <= cidr && node_covers(n, key)) {
		if (n->cidr == cidr) {
			set_owner(t, n, owner);
			return 0;
		}
		parent = n;
		slot = &n->child[bit_at(key, n->cidr)];
	}
	if (cidr == bits && host_reserve(&t->hosts[family == AF_INET6]))
		return -ENOMEM;
	n = attach(slot, parent, key, cidr, family == AF_INET6);
	if (!n)
		return -ENOMEM;
	set_owner(t, n, owner);
	return 0;
}

int gwd_allowedips_insert_prefix(struct gwd_allowedips *t, const struct gw_prefix *p,
				 struct gwd_allowedips_owner *owner)
{
	return gwd_allowedips_insert(t, p->family, p->addr, p->cidr, owner);
}

/* Replaces n, which has at most one child, by that child and frees it. */
static void splice_out(struct gwd_allowedips *t, struct gwd_aip_node *n)
{
	struct gwd_aip_node *child = n->child[0] ? n->child[0] : n->child[1];

	*slot_of(t, n) = child;
	if (child)
		child->parent = n->parent;
	free(n);
}

/*
 * Takes n's prefix out of the table. n stays only as a branch point with two
 * children; if it had none, its parent may be a branch left with one child,
 * which goes too. Nothing further up changes shape.
 */
static void remove_node(struct gwd_allowedips *t, struct gwd_aip_node *n)
{
	struct gwd_aip_node *parent = n->parent;
	bool leaf = !n->child[0] && !n->child[1];

	clear_owner(t, n);
	if (n->child[0] && n->child[1])
		return;
	splice_out(t, n);
	if (leaf && parent && !parent->owner)
		splice_out(t, parent);
}

static struct gwd_aip_node *find_exact(struct gwd_allowedips *t, int family, const uint64_t key[2],
				       unsigned int cidr)
{
	struct gwd_aip_node *n = *root_of(t, family == AF_INET6);

	while (n && n->cidr <= cidr && node_covers(n, key)) {
		if (n->cidr == cidr)
			return n;
		n = n->child[bit_at(key, n->cidr)];
	}
	return NULL;
}

int gwd_allowedips_remove(struct gwd_allowedips *t, int family, const uint8_t *addr, uint8_t cidr,
			  struct gwd_allowedips_owner *owner)
{
	unsigned int bits = family_bits(family);
	struct gwd_aip_node *n;
	uint64_t key[2];

	if (!bits || cidr > bits || !addr || !owner)
		return -EINVAL;
	load_key(key, family, addr);
	mask_key(key, cidr);
	n = find_exact(t, family, key, cidr);
	if (!n || n->owner != owner)
		return -ENOENT;
	remove_node(t, n);
	return 0;
}

void gwd_allowedips_remove_by_peer(struct gwd_allowedips *t, struct gwd_allowedips_owner *owner)
{
	while (owner->nodes.next != &owner->nodes)
		remove_node(t, node_of(owner->nodes.next));
}

static const struct gwd_aip_node *root_for(const struct gwd_allowedips *t, int family)
{
	if (family == AF_INET)
		return t->root4;
	if (family == AF_INET6)
		return t->root6;
	return NULL;
}

/*
 * One step down a lookup's path: records n's peer if n covers key and
 * returns the node to visit next, NULL when the walk is over.
 */
static inline const struct gwd_aip_node *step(const struct gwd_aip_node *n, const uint64_t key[2],
					      void **best)
{
	if (!node_covers(n, key))
		return NULL;
	if (n->peer)
		*best = n->peer;
	if (n->cidr == KEY_BITS)
		return NULL;
	return n->child[bit_at(key, n->cidr)];
}

void *gwd_allowedips_lookup(const struct gwd_allowedips *t, int family, const uint8_t *addr)
{
	const struct gwd_aip_node *n = root_for(t, family);
	const struct gwd_aip_host *host;
	void *best = NULL;
	uint64_t key[2];

	if (!n)
		return NULL;
	load_key(key, family, addr);
	host = host_find(&t->hosts[family == AF_INET6], key);
	if (host)
		return host->peer;
	while (n)
		n = step(n, key, &best);
	return best;
}

enum { LOCKSTEP = 16 };

/*
 * Starts up to LOCKSTEP lookups: answers those the host index knows (their
 * slots prefetched first, so those misses overlap) and returns in cur[] the
 * trie roots of the others, NULL for the answered ones.
 */
static size_t lockstep_start(const struct gwd_allowedips *t, struct gwd_allowedips_query *q,
			     size_t n, uint64_t key[][2], const struct gwd_aip_node **cur)
{
	size_t home[LOCKSTEP], live = 0;

	for (size_t i = 0; i < n; i++) {
		const struct gwd_aip_hosts *h = &t->hosts[q[i].family == AF_INET6];

		q[i].peer = NULL;
		cur[i] = root_for(t, q[i].family);
		if (!cur[i])
			continue;
		load_key(key[i], q[i].family, q[i].addr);
		if (h->count) {
			home[i] = host_home(h, key[i]);
			__builtin_prefetch(&h->slots[home[i]]);
		}
	}
	for (size_t i = 0; i < n; i++) {
		const struct gwd_aip_hosts *h = &t->hosts[q[i].family == AF_INET6];
		const struct gwd_aip_host *host;

		if (!cur[i])
			continue;
		host = h->count ? host_find_from(h, home[i], key[i]) : NULL;
		if (host) {
			q[i].peer = host->peer;
			cur[i] = NULL;
		}
		live += cur[i] != NULL;
	}
	return live;
}

/*
 * Walks up to LOCKSTEP paths together, one node of each per round, with the
 * next node prefetched: the cache misses of the paths overlap instead of
 * following each other.
 */
static void lookup_lockstep(const struct gwd_allowedips *t, struct gwd_allowedips_query *q,
			    size_t n)
{
	const struct gwd_aip_node *cur[LOCKSTEP];
	uint64_t key[LOCKSTEP][2];
	size_t live = lockstep_start(t, q, n, key, cur);

	while (live) {
		live = 0;
		for (size_t i = 0; i < n; i++) {
			if (!cur[i])
				continue;
			cur[i] = step(cur[i], key[i], &q[i].peer);
			if (cur[i]) {
				__builtin_prefetch(cur[i]);
				live++;
			}
		}
	}
}

void gwd_allowedips_lookup_many(const struct gwd_allowedips *t, struct gwd_allowedips_query *q,
				size_t n)
{
	for (size_t done = 0; done < n; done += LOCKSTEP)
		lookup_lockstep(t, q + done, n - done < LOCKSTEP ? n - done : LOCKSTEP);
}

static void node_prefix(const struct gwd_aip_node *n, struct gw_prefix *p)
{
	uint8_t bytes[16];

	store_be64(bytes, n->key[0]);
	store_be64(bytes + 8, n->key[1]);
	memset(p, 0, sizeof(*p));
	p->family = n->is6 ? AF_INET6 : AF_INET;
	p->cidr = n->cidr;
	memcpy(p->addr, bytes, n->is6 ? 16 : 4);
}

int gwd_allowedips_for_each(const struct gwd_allowedips_owner *owner, gwd_allowedips_fn fn,
			    void *ctx)
{
	struct gw_prefix p;
	int ret;

	for (struct gwd_aip_link *l = owner->nodes.next; l != &owner->nodes; l = l->next) {
		node_prefix(node_of(l), &p);
		ret = fn(ctx, &p);
		if (ret)
			return ret;
	}
	return 0;
}

size_t gwd_allowedips_count(const struct gwd_allowedips *t)
{
	return t->count;
}

size_t gwd_allowedips_owner_count(const struct gwd_allowedips_owner *owner)
{
	return owner->count;
}
