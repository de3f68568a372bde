/* SPDX-License-Identifier: MIT */
#include "allowedips.h"

#include <errno.h>
#include <sched.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>

/*
 * Keys are 128 bits, most significant first: key[0] holds bits 0..63. An
 * IPv4 address fills bits 0..31 and leaves the rest zero.
 *
 * Shared with reader threads: the roots, host tables and /0 values of
 * struct gwd_allowedips, and what they point to. The writer changes them
 * only by
 *   - storing a pointer (release) to a node or table it has finished
 *     building, into a root, a node's child slot or a table field;
 *   - storing a value (release) into a node's run slot or a host slot's
 *     peer, each a complete answer on its own;
 *   - filling a never-used host slot: key first, then its peer (release).
 * Readers load those pointers and values with acquire, so they never see a
 * partly built node or slot; what the writer replaced goes to t->garbage
 * until no reader can still hold it (see collect()).
 */

enum { STRIDE = 8, FANOUT = 1 << STRIDE, KEY_BITS = 128, LOCKSTEP = 16 };

/* Memory retired by the writer, freed once the readers are past epoch. */
struct gwd_aip_gc {
	struct gwd_aip_gc *next;
	uint64_t epoch;
	void *mem;
};

/* One configured prefix. Only the writer reads entries. */
struct gwd_aip_entry {
	uint64_t key[2]; /* bits beyond cidr are zero */
	struct gwd_allowedips_owner *owner;
	struct gwd_aip_link link;   /* in owner->entries */
	struct gwd_aip_entry *next; /* in its trie node's list */
	uint8_t cidr;
	bool is6;
};

/*
 * A trie node indexes the 8 key bits at pos..pos+7 (pos a multiple of 8),
 * holds the entries of lengths pos+1..pos+8 whose first pos bits are key's,
 * each expanded over the slots it covers (a longer one wins), and has a
 * child in some slots: a node deeper down that path (at any later pos:
 * levels without entries and with one child are skipped).
 *
 * Slot s has bit s % 64 in word s / 64 of the bitmaps. Its child, if
 * child_bm has its bit, is slot[rank of s among the child bits - 1]; its
 * value (the peer of the longest entry covering it, or NULL) is
 * slot[nchild + rank of s among the run_bm bits - 1], where run_bm marks the
 * first slot of each run of slots sharing a value (slot 0 always). The
 * *_base bytes count the bits of the words before.
 *
 * Everything but slot[] is fixed once the node is published; child slots
 * may change to another node covering the same addresses, run slots to the
 * new value of the same run (runs are cut where the covering entry changes,
 * so removing an entry or changing its owner never needs a new cut).
 *
 * Invariants (the writer's): a node has entries or at least two children,
 * except after a failed allocation, when a node left with neither may stay
 * (it answers nothing); a child's pos is greater than its parent's and its
 * key agrees with the parent's slot.
 */
struct gwd_aip_node {
	/* What a lookup reads first: one cache line (nodes are 64-byte aligned). */
	uint64_t key[2]; /* bits from pos on are zero */
	uint8_t pos;
	uint8_t child_base[4];
	uint8_t run_base[4];
	uint16_t nchild, nrun;
	uint64_t child_bm[4];
	/* Then the next line, with the first slots. */
	uint64_t run_bm[4];
	void *slot[]; /* then the writer's part: struct node_w */
};

/* The writer's part of a node, after its slots. */
struct node_w {
	union {
		struct gwd_aip_entry *entries; /* while in the trie */
		struct gwd_aip_gc gc;	       /* once retired */
	};
};

/*
 * Host table: open addressing with linear probing, at most half full. A
 * slot is width words: the key (IPv4: 1 word, IPv6: 2) then the peer, so
 * that 4 IPv4 slots share a cache line. A removed entry leaves a tombstone
 * that is never reused (so a slot's key never changes while a reader may
 * compare it); a rebuild drops them. Keys are configured addresses, which
 * packet senders do not choose, so a fixed hash function is enough.
 */
struct gwd_aip_hosts {
	_Alignas(64) size_t mask; /* capacity - 1, capacity a power of two */
	size_t width;		  /* words per slot: 2 or 3 */
	size_t used;		  /* live slots and tombstones */
	size_t live;
	struct gwd_aip_entry **ents; /* the writer's: each slot's entry */
	struct gwd_aip_gc gc;
	/* Slot i is w[i * width ...]; its last word, the peer, is atomic. */
	_Alignas(64) uint64_t w[];
};

/* A host slot's peer word: 0 never used, TOMB removed, else the peer. */
static char tomb_mark;
#define TOMB ((uint64_t)(uintptr_t)&tomb_mark)

/* ---- small helpers ---- */

static struct gwd_aip_entry *entry_of(struct gwd_aip_link *l)
{
	return (struct gwd_aip_entry *)((char *)l - offsetof(struct gwd_aip_entry, link));
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

static inline void load_key(uint64_t key[2], int family, const uint8_t *addr)
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

/* Length of the common leading bits of a and b. */
static unsigned int common_bits(const uint64_t a[2], const uint64_t b[2])
{
	uint64_t x = a[0] ^ b[0];

	if (x)
		return (unsigned int)__builtin_clzll(x);
	x = a[1] ^ b[1];
	return x ? 64 + (unsigned int)__builtin_clzll(x) : KEY_BITS;
}

/* Without the popcnt instruction GCC calls libgcc; this stays inline. */
static inline unsigned int popcount64(uint64_t x)
{
#ifdef __POPCNT__
	return (unsigned int)__builtin_popcountll(x);
#else
	x = x - ((x >> 1) & UINT64_C(0x5555555555555555));
	x = (x & UINT64_C(0x3333333333333333)) + ((x >> 2) & UINT64_C(0x3333333333333333));
	x = (x + (x >> 4)) & UINT64_C(0x0f0f0f0f0f0f0f0f);
	return (unsigned int)((x * UINT64_C(0x0101010101010101)) >> 56);
#endif
}

/* The 8 key bits at pos (a multiple of 8 below 128). */
static inline unsigned int slot_index(const uint64_t key[2], unsigned int pos)
{
	return (unsigned int)(key[pos / 64] >> (56 - pos % 64)) & (FANOUT - 1);
}

/* pos of the node that holds a prefix of length cidr (1..128). */
static unsigned int level_of(unsigned int cidr)
{
	return (cidr - 1) / STRIDE * STRIDE;
}

/* Whether key's first n->pos bits are n's. */
static inline bool node_covers(const struct gwd_aip_node *n, const uint64_t key[2])
{
	unsigned int pos = n->pos;

	if (pos <= 64)
		return pos == 0 || !((key[0] ^ n->key[0]) >> (64 - pos));
	return key[0] == n->key[0] && !((key[1] ^ n->key[1]) >> (128 - pos));
}

static inline uint64_t bits_upto(unsigned int s)
{
	return ~UINT64_C(0) >> (63 - s % 64);
}

static inline bool has_child(const struct gwd_aip_node *n, unsigned int s)
{
	return (n->child_bm[s / 64] >> (s % 64)) & 1;
}

/* Index in slot[] of the child of slot s, which has one. */
static inline unsigned int child_at(const struct gwd_aip_node *n, unsigned int s)
{
	return n->child_base[s / 64] + popcount64(n->child_bm[s / 64] & bits_upto(s)) - 1;
}

/* Index in slot[] of the value of slot s. */
static inline unsigned int run_at(const struct gwd_aip_node *n, unsigned int s)
{
	return n->nchild + n->run_base[s / 64] + popcount64(n->run_bm[s / 64] & bits_upto(s)) - 1;
}

/* What readers share with the writer is read and written with these. */
#define load_ptr(p)	__atomic_load_n((p), __ATOMIC_ACQUIRE)
#define store_ptr(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)

static struct node_w *node_w(const struct gwd_aip_node *n)
{
	return (struct node_w *)(uintptr_t)&n->slot[n->nchild + n->nrun];
}

/* ---- memory shared with readers: retire and reclaim ---- */

/* n (or a host table) is out of reach of new lookups: free it when safe. */
static void retire(struct gwd_allowedips *t, void *mem, struct gwd_aip_gc *gc)
{
	if (!t->readers) {
		free(mem);
		return;
	}
	gc->mem = mem;
	gc->epoch = t->epoch;
	gc->next = t->garbage;
	t->garbage = gc;
}

static void retire_node(struct gwd_allowedips *t, struct gwd_aip_node *n)
{
	t->nodes--;
	retire(t, n, &node_w(n)->gc);
}

/*
 * Frees the garbage no reader can reach, then starts a new epoch.
 *
 * A reader announces the epoch it read at the start of its section and then
 * issues a full barrier; the writer issues one before reading the
 * announcements. So either the writer sees a reader's announcement, or that
 * reader's section sees everything unlinked before the barrier. Memory
 * retired in epoch e is unlinked before the writer moves past e, so a
 * reader that announced a later epoch cannot reach it; one that announced
 * e or earlier might, and holds it back.
 */
static void collect(struct gwd_allowedips *t)
{
	struct gwd_aip_gc **pp = &t->garbage, *g;
	uint64_t oldest = UINT64_MAX;

	if (!t->garbage)
		return;
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	for (struct gwd_allowedips_reader *r = t->readers; r; r = r->next) {
		uint64_t e = __atomic_load_n(&r->epoch, __ATOMIC_ACQUIRE);

		if (e && e < oldest)
			oldest = e;
	}
	/* Newest first: skip what is still visible, free the rest. */
	while (*pp && (*pp)->epoch >= oldest)
		pp = &(*pp)->next;
	g = *pp;
	*pp = NULL;
	while (g) {
		struct gwd_aip_gc *next = g->next;

		free(g->mem);
		g = next;
	}
	__atomic_store_n(&t->epoch, t->epoch + 1, __ATOMIC_RELEASE);
}

void gwd_allowedips_reclaim(struct gwd_allowedips *t)
{
	collect(t);
}

void gwd_allowedips_reader_add(struct gwd_allowedips *t, struct gwd_allowedips_reader *r)
{
	__atomic_store_n(&r->epoch, 0, __ATOMIC_RELAXED);
	r->next = t->readers;
	t->readers = r;
}

void gwd_allowedips_reader_del(struct gwd_allowedips *t, struct gwd_allowedips_reader *r)
{
	for (struct gwd_allowedips_reader **pp = &t->readers; *pp; pp = &(*pp)->next) {
		if (*pp == r) {
			*pp = r->next;
			break;
		}
	}
	r->next = NULL;
	if (!t->readers)
		collect(t); /* nobody left to wait for */
}

void gwd_allowedips_read_begin(const struct gwd_allowedips *t, struct gwd_allowedips_reader *r)
{
	__atomic_store_n(&r->epoch, __atomic_load_n(&t->epoch, __ATOMIC_ACQUIRE), __ATOMIC_RELAXED);
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
}

void gwd_allowedips_read_end(struct gwd_allowedips_reader *r)
{
	__atomic_store_n(&r->epoch, 0, __ATOMIC_RELEASE);
}

void gwd_allowedips_synchronize(struct gwd_allowedips *t)
{
	uint64_t now = t->epoch;

	__atomic_store_n(&t->epoch, now + 1, __ATOMIC_RELEASE);
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	for (struct gwd_allowedips_reader *r = t->readers; r; r = r->next) {
		uint64_t e;

		while ((e = __atomic_load_n(&r->epoch, __ATOMIC_ACQUIRE)) && e <= now)
			sched_yield();
	}
	collect(t);
}

/* ---- host table ---- */

static uint64_t mix64(uint64_t x)
{
	x ^= x >> 33;
	x *= UINT64_C(0xff51afd7ed558ccd);
	x ^= x >> 33;
	x *= UINT64_C(0xc4ceb9fe1a85ec53);
	return x ^ (x >> 33);
}

static inline size_t host_home(size_t mask, const uint64_t key[2])
{
	return (size_t)mix64(key[0] ^ mix64(key[1] + 1)) & mask;
}

static inline uint64_t *host_slot(const struct gwd_aip_hosts *h, size_t i)
{
	return (uint64_t *)&h->w[i * h->width];
}

static inline bool host_key_is(const struct gwd_aip_hosts *h, const uint64_t *s,
			       const uint64_t key[2])
{
	return s[0] == key[0] && (h->width == 2 || s[1] == key[1]);
}

/* Lookups: the peer of key, NULL if absent. */
static inline void *host_probe(const struct gwd_aip_hosts *h, size_t i, const uint64_t key[2])
{
	for (;; i = (i + 1) & h->mask) {
		const uint64_t *s = host_slot(h, i);
		uint64_t p = __atomic_load_n(&s[h->width - 1], __ATOMIC_ACQUIRE);

		if (!p)
			return NULL;
		if (host_key_is(h, s, key) && p != TOMB)
			return (void *)(uintptr_t)p;
	}
}

/* The writer's: the index of key's live slot, or -1. */
static ptrdiff_t host_find(const struct gwd_aip_hosts *h, const uint64_t key[2])
{
	if (!h)
		return -1;
	for (size_t i = host_home(h->mask, key);; i = (i + 1) & h->mask) {
		const uint64_t *s = host_slot(h, i);
		uint64_t p = s[h->width - 1];

		if (!p)
			return -1;
		if (p != TOMB && host_key_is(h, s, key))
			return (ptrdiff_t)i;
	}
}

static void host_set_peer(struct gwd_aip_hosts *h, size_t i, uint64_t p)
{
	__atomic_store_n(&host_slot(h, i)[h->width - 1], p, __ATOMIC_RELEASE);
}

/* Puts e (not in h) into a never-used slot; h has room. */
static void host_fill(struct gwd_aip_hosts *h, struct gwd_aip_entry *e)
{
	size_t i = host_home(h->mask, e->key);
	uint64_t *s;

	while (host_slot(h, i)[h->width - 1])
		i = (i + 1) & h->mask;
	s = host_slot(h, i);
	s[0] = e->key[0];
	if (h->width == 3)
		s[1] = e->key[1];
	h->ents[i] = e;
	host_set_peer(h, i, (uintptr_t)e->owner->peer);
	h->used++;
	h->live++;
}

/*
 * A large table gets 2 MiB pages where the kernel has them to give
 * (transparent huge pages in "madvise" mode): lookups probe it at random,
 * and with 4 KiB pages most probes would also miss the TLB.
 */
static void *host_alloc(size_t size)
{
	enum { HUGE = 2 << 20 };
	void *mem;

	if (size < HUGE)
		return aligned_alloc(64, size);
	if (posix_memalign(&mem, HUGE, size))
		return NULL;
	/* Whole huge pages only: a partly used one would be resident in full. */
	(void)madvise(mem, size / HUGE * HUGE, MADV_HUGEPAGE); /* only a hint */
	return mem;
}

/*
 * Inserts e, rebuilding the table into a new one when it would be more than
 * half full (live entries and tombstones): the new one is at most 7/16 full
 * of live entries. 0 or -ENOMEM (nothing changed).
 */
static int host_insert(struct gwd_allowedips *t, int fam, struct gwd_aip_entry *e)
{
	struct gwd_aip_hosts *h = t->hosts[fam], *nh;
	size_t cap = 16, width = fam ? 3 : 2, words;

	if (h && 2 * (h->used + 1) <= h->mask + 1) {
		host_fill(h, e);
		return 0;
	}
	while (16 * ((h ? h->live : 0) + 1) > 7 * cap)
		cap *= 2;
	words = cap * width; /* a multiple of 8: the entries stay aligned */
	nh = host_alloc(sizeof(*nh) + words * sizeof(nh->w[0]) + cap * sizeof(nh->ents[0]));
	if (!nh)
		return -ENOMEM;
	memset(nh, 0, sizeof(*nh) + words * sizeof(nh->w[0]));
	nh->mask = cap - 1;
	nh->width = width;
	nh->ents = (struct gwd_aip_entry **)&nh->w[words];
	for (size_t i = 0; h && i <= h->mask; i++) {
		uint64_t p = host_slot(h, i)[width - 1];

		if (p && p != TOMB)
			host_fill(nh, h->ents[i]);
	}
	host_fill(nh, e);
	store_ptr(&t->hosts[fam], nh);
	if (h)
		retire(t, h, &h->gc);
	return 0;
}

/* ---- trie nodes ---- */

/* The values of a node's slots: its longest entry covering each, or NULL. */
static void paint(unsigned int pos, struct gwd_aip_entry *entries,
		  struct gwd_aip_entry *val[FANOUT])
{
	uint8_t len[FANOUT] = {0};

	memset(val, 0, FANOUT * sizeof(val[0]));
	for (struct gwd_aip_entry *e = entries; e; e = e->next) {
		unsigned int first = slot_index(e->key, pos), n = 1u << (pos + STRIDE - e->cidr);

		for (unsigned int s = first; s < first + n; s++) {
			if (len[s] < e->cidr) {
				len[s] = e->cidr;
				val[s] = e;
			}
		}
	}
}

static void *value_of(const struct gwd_aip_entry *e)
{
	return e ? e->owner->peer : NULL;
}

/* The children of n by slot (all NULL for n NULL). */
static void node_kids(const struct gwd_aip_node *n, struct gwd_aip_node *kids[FANOUT])
{
	unsigned int k = 0;

	memset(kids, 0, FANOUT * sizeof(kids[0]));
	if (!n)
		return;
	for (unsigned int s = 0; s < FANOUT; s++)
		if (has_child(n, s))
			kids[s] = n->slot[k++];
}

/*
 * A new node at pos with key's first pos bits, the given entries (a list
 * through ->next) and children; NULL when out of memory.
 */
static struct gwd_aip_node *node_build(struct gwd_allowedips *t, unsigned int pos,
				       const uint64_t key[2], struct gwd_aip_entry *entries,
				       struct gwd_aip_node *const kids[FANOUT])
{
	struct gwd_aip_entry *val[FANOUT];
	struct gwd_aip_node *n;
	unsigned int nchild = 0, nrun = 0, k;
	void *mem;

	paint(pos, entries, val);
	for (unsigned int s = 0; s < FANOUT; s++) {
		nchild += kids[s] != NULL;
		nrun += s == 0 || val[s] != val[s - 1];
	}
	if (posix_memalign(&mem, 64,
			   sizeof(*n) + (nchild + nrun) * sizeof(n->slot[0]) +
			       sizeof(struct node_w)))
		return NULL;
	n = mem;
	memset(n, 0, sizeof(*n));
	n->pos = (uint8_t)pos;
	n->key[0] = key[0];
	n->key[1] = key[1];
	mask_key(n->key, pos);
	n->nchild = (uint16_t)nchild;
	n->nrun = (uint16_t)nrun;
	node_w(n)->entries = entries;
	k = 0;
	for (unsigned int s = 0; s < FANOUT; s++) {
		if (kids[s]) {
			n->child_bm[s / 64] |= UINT64_C(1) << (s % 64);
			n->slot[k++] = kids[s];
		}
	}
	for (unsigned int s = 0; s < FANOUT; s++) {
		if (s == 0 || val[s] != val[s - 1]) {
			n->run_bm[s / 64] |= UINT64_C(1) << (s % 64);
			n->slot[k++] = value_of(val[s]);
		}
	}
	for (unsigned int w = 1; w < 4; w++) {
		n->child_base[w] = (uint8_t)(n->child_base[w - 1] + popcount64(n->child_bm[w - 1]));
		n->run_base[w] = (uint8_t)(n->run_base[w - 1] + popcount64(n->run_bm[w - 1]));
	}
	t->nodes++;
	return n;
}

/* Frees a node that was never published. */
static void node_discard(struct gwd_allowedips *t, struct gwd_aip_node *n)
{
	if (n) {
		t->nodes--;
		free(n);
	}
}

/*
 * Stores each run's value again after n's entries were removed or changed
 * owner: runs are cut wherever the covering entry changed when n was built,
 * and a removal or an owner change makes no new cut, so every run still has
 * one value.
 */
static void node_repaint(struct gwd_aip_node *n)
{
	struct gwd_aip_entry *val[FANOUT];
	unsigned int k = n->nchild;

	paint(n->pos, node_w(n)->entries, val);
	for (unsigned int s = 0; s < FANOUT; s++) {
		if ((n->run_bm[s / 64] >> (s % 64)) & 1) {
			void *v = value_of(val[s]);

			if (n->slot[k] != v)
				store_ptr(&n->slot[k], v);
			k++;
		}
	}
}

/* Publishes nn in place of n at *slotp and retires n. */
static void node_replace(struct gwd_allowedips *t, struct gwd_aip_node **slotp,
			 struct gwd_aip_node *n, struct gwd_aip_node *nn)
{
	store_ptr(slotp, nn);
	retire_node(t, n);
}

static struct gwd_aip_node **child_slot(struct gwd_aip_node *n, unsigned int s)
{
	return (struct gwd_aip_node **)&n->slot[child_at(n, s)];
}

/*
 * Adds e (1 <= cidr, not a host route, not in the trie) below *slotp, the
 * root of its family. 0 or -ENOMEM (nothing changed).
 */
static int trie_insert(struct gwd_allowedips *t, struct gwd_aip_node **slotp,
		       struct gwd_aip_entry *e)
{
	unsigned int p = level_of(e->cidr), c, s, b;
	struct gwd_aip_node *kids[FANOUT], *n, *nn, *leaf;

	e->next = NULL;
	for (;;) {
		n = *slotp;
		if (!n) {
			node_kids(NULL, kids);
			leaf = node_build(t, p, e->key, e, kids);
			if (!leaf)
				return -ENOMEM;
			store_ptr(slotp, leaf);
			return 0;
		}
		c = common_bits(n->key, e->key);
		if (n->pos <= p && c >= n->pos) {
			if (n->pos == p) {
				/* e joins n's entries. */
				e->next = node_w(n)->entries;
				node_kids(n, kids);
				nn = node_build(t, p, n->key, e, kids);
				if (!nn) {
					e->next = NULL;
					return -ENOMEM;
				}
				node_replace(t, slotp, n, nn);
				return 0;
			}
			s = slot_index(e->key, n->pos);
			if (has_child(n, s)) {
				slotp = child_slot(n, s);
				continue;
			}
			/* A new child of n. */
			node_kids(NULL, kids);
			leaf = node_build(t, p, e->key, e, kids);
			node_kids(n, kids);
			kids[s] = leaf;
			nn = leaf ? node_build(t, n->pos, n->key, node_w(n)->entries, kids) : NULL;
			if (!nn) {
				node_discard(t, leaf);
				return -ENOMEM;
			}
			node_replace(t, slotp, n, nn);
			return 0;
		}
		if (c >= p) {
			/* n lies below e's level on e's path: a node for e above it. */
			node_kids(NULL, kids);
			kids[slot_index(n->key, p)] = n;
			nn = node_build(t, p, e->key, e, kids);
			if (!nn)
				return -ENOMEM;
			store_ptr(slotp, nn);
			return 0;
		}
		/*
		 * e and n part at bit c, before both p and n->pos (and after the
		 * slot of the parent, which they share): a branch node there.
		 */
		b = c / STRIDE * STRIDE;
		node_kids(NULL, kids);
		leaf = node_build(t, p, e->key, e, kids);
		kids[slot_index(n->key, b)] = n;
		kids[slot_index(e->key, b)] = leaf;
		nn = leaf ? node_build(t, b, e->key, NULL, kids) : NULL;
		if (!nn) {
			node_discard(t, leaf);
			return -ENOMEM;
		}
		store_ptr(slotp, nn);
		return 0;
	}
}

/* The node that holds entries of length cidr on key's path, or NULL. */
static struct gwd_aip_node **trie_find(struct gwd_aip_node **slotp, const uint64_t key[2],
				       unsigned int cidr, struct gwd_aip_node ***parent_slotp)
{
	unsigned int p = level_of(cidr);
	struct gwd_aip_node *n;

	if (parent_slotp)
		*parent_slotp = NULL;
	while ((n = *slotp) && n->pos <= p && node_covers(n, key)) {
		unsigned int s;

		if (n->pos == p)
			return slotp;
		s = slot_index(key, n->pos);
		if (!has_child(n, s))
			return NULL;
		if (parent_slotp)
			*parent_slotp = slotp;
		slotp = child_slot(n, s);
	}
	return NULL;
}

static struct gwd_aip_entry *entry_in(const struct gwd_aip_node *n, const uint64_t key[2],
				      unsigned int cidr)
{
	for (struct gwd_aip_entry *e = node_w(n)->entries; e; e = e->next)
		if (e->cidr == cidr && e->key[0] == key[0] && e->key[1] == key[1])
			return e;
	return NULL;
}

/*
 * The parent at *pslotp loses its child n at slot s. Without entries it had
 * two children at least: with two, the other takes its place. Otherwise it
 * is rebuilt without n; if that fails, n stays (without entries or children
 * it answers nothing).
 */
static void drop_child(struct gwd_allowedips *t, struct gwd_aip_node **pslotp,
		       struct gwd_aip_node *n)
{
	struct gwd_aip_node *parent = *pslotp, *kids[FANOUT], *nn;
	unsigned int s = slot_index(n->key, parent->pos);

	if (!node_w(parent)->entries && parent->nchild == 2) {
		nn = parent->slot[child_at(parent, s) == 0 ? 1 : 0];
		store_ptr(pslotp, nn);
		retire_node(t, parent);
		retire_node(t, n);
		return;
	}
	node_kids(parent, kids);
	kids[s] = NULL;
	nn = node_build(t, parent->pos, parent->key, node_w(parent)->entries, kids);
	if (!nn)
		return;
	node_replace(t, pslotp, parent, nn);
	retire_node(t, n);
}

/* Takes e (in the trie) out of it. Allocates at most one node, and copes. */
static void trie_remove(struct gwd_allowedips *t, struct gwd_aip_node **root,
			struct gwd_aip_entry *e)
{
	struct gwd_aip_node **pslotp, **slotp = trie_find(root, e->key, e->cidr, &pslotp);
	struct gwd_aip_node *n = *slotp;
	struct gwd_aip_entry **pp = &node_w(n)->entries;

	while (*pp != e)
		pp = &(*pp)->next;
	*pp = e->next;
	e->next = NULL;
	node_repaint(n);
	if (node_w(n)->entries || n->nchild >= 2)
		return;
	if (n->nchild == 1) {
		store_ptr(slotp, n->slot[0]);
		retire_node(t, n);
		return;
	}
	if (!pslotp) {
		store_ptr(slotp, NULL);
		retire_node(t, n);
		return;
	}
	drop_child(t, pslotp, n);
}

/* ---- the table ---- */

void gwd_allowedips_init(struct gwd_allowedips *t)
{
	memset(t, 0, sizeof(*t));
	t->epoch = 1;
}

void gwd_allowedips_owner_init(struct gwd_allowedips_owner *o, void *peer)
{
	o->entries.next = o->entries.prev = &o->entries;
	o->peer = peer;
	o->count = 0;
}

static bool is_host(const struct gwd_aip_entry *e)
{
	return e->cidr == (e->is6 ? 128 : 32);
}

static void entry_unlink(struct gwd_allowedips *t, struct gwd_aip_entry *e)
{
	link_del(&e->link);
	e->owner->count--;
	t->count--;
}

static void entry_free(struct gwd_allowedips *t, struct gwd_aip_entry *e)
{
	entry_unlink(t, e);
	free(e);
}

static void free_subtree(struct gwd_allowedips *t, struct gwd_aip_node *n)
{
	if (!n)
		return;
	for (unsigned int i = 0; i < n->nchild; i++)
		free_subtree(t, n->slot[i]);
	while (node_w(n)->entries) {
		struct gwd_aip_entry *e = node_w(n)->entries;

		node_w(n)->entries = e->next;
		entry_free(t, e);
	}
	t->nodes--;
	free(n);
}

void gwd_allowedips_free(struct gwd_allowedips *t)
{
	for (int f = 0; f < 2; f++) {
		struct gwd_aip_hosts *h = t->hosts[f];

		free_subtree(t, t->root[f]);
		for (size_t i = 0; h && i <= h->mask; i++) {
			uint64_t p = host_slot(h, i)[h->width - 1];

			if (p && p != TOMB)
				entry_free(t, h->ents[i]);
		}
		free(h);
		if (t->dflt_entry[f])
			entry_free(t, t->dflt_entry[f]);
	}
	t->readers = NULL;
	collect(t);
	gwd_allowedips_init(t);
}

/* The entry of exactly family's key/cidr (key masked), or NULL. */
static struct gwd_aip_entry *find_entry(struct gwd_allowedips *t, int fam, const uint64_t key[2],
					unsigned int cidr)
{
	struct gwd_aip_node **slotp;
	ptrdiff_t i;

	if (cidr == 0)
		return t->dflt_entry[fam];
	if (cidr == (fam ? 128u : 32u)) {
		i = host_find(t->hosts[fam], key);
		return i >= 0 ? t->hosts[fam]->ents[i] : NULL;
	}
	slotp = trie_find(&t->root[fam], key, cidr, NULL);
	return slotp ? entry_in(*slotp, key, cidr) : NULL;
}

/* Lookups now answer e's new owner's peer wherever they answered e's. */
static void republish(struct gwd_allowedips *t, struct gwd_aip_entry *e)
{
	int fam = e->is6;

	if (e->cidr == 0) {
		store_ptr(&t->dflt[fam], e->owner->peer);
	} else if (is_host(e)) {
		host_set_peer(t->hosts[fam], (size_t)host_find(t->hosts[fam], e->key),
			      (uintptr_t)e->owner->peer);
	} else {
		node_repaint(*trie_find(&t->root[fam], e->key, e->cidr, NULL));
	}
}

int gwd_allowedips_insert(struct gwd_allowedips *t, int family, const uint8_t *addr, uint8_t cidr,
			  struct gwd_allowedips_owner *owner)
{
	unsigned int bits = family_bits(family);
	int fam = family == AF_INET6, ret = 0;
	struct gwd_aip_entry *e;
	uint64_t key[2];

	if (!bits || cidr > bits || !addr || !owner || !owner->peer)
		return -EINVAL;
	load_key(key, family, addr);
	mask_key(key, cidr);
	e = find_entry(t, fam, key, cidr);
	if (e) {
		if (e->owner != owner) {
			entry_unlink(t, e);
			e->owner = owner;
			link_add_tail(&owner->entries, &e->link);
			owner->count++;
			t->count++;
			republish(t, e);
		}
		goto out;
	}
	e = calloc(1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	e->key[0] = key[0];
	e->key[1] = key[1];
	e->cidr = cidr;
	e->is6 = fam;
	e->owner = owner;
	if (cidr == 0) {
		t->dflt_entry[fam] = e;
		store_ptr(&t->dflt[fam], owner->peer);
	} else if (cidr == bits) {
		ret = host_insert(t, fam, e);
	} else {
		ret = trie_insert(t, &t->root[fam], e);
	}
	if (ret) {
		free(e);
		goto out;
	}
	link_add_tail(&owner->entries, &e->link);
	owner->count++;
	t->count++;
out:
	collect(t);
	return ret;
}

int gwd_allowedips_insert_prefix(struct gwd_allowedips *t, const struct gw_prefix *p,
				 struct gwd_allowedips_owner *owner)
{
	return gwd_allowedips_insert(t, p->family, p->addr, p->cidr, owner);
}

/* Takes e out of the lookup structures, then frees it. */
static void remove_entry(struct gwd_allowedips *t, struct gwd_aip_entry *e)
{
	int fam = e->is6;

	if (e->cidr == 0) {
		store_ptr(&t->dflt[fam], NULL);
		t->dflt_entry[fam] = NULL;
	} else if (is_host(e)) {
		struct gwd_aip_hosts *h = t->hosts[fam];
		size_t i = (size_t)host_find(h, e->key);

		host_set_peer(h, i, TOMB);
		h->ents[i] = NULL;
		h->live--;
	} else {
		trie_remove(t, &t->root[fam], e);
	}
	entry_free(t, e);
}

int gwd_allowedips_remove(struct gwd_allowedips *t, int family, const uint8_t *addr, uint8_t cidr,
			  struct gwd_allowedips_owner *owner)
{
	unsigned int bits = family_bits(family);
	struct gwd_aip_entry *e;
	uint64_t key[2];

	if (!bits || cidr > bits || !addr || !owner)
		return -EINVAL;
	load_key(key, family, addr);
	mask_key(key, cidr);
	e = find_entry(t, family == AF_INET6, key, cidr);
	if (!e || e->owner != owner)
		return -ENOENT;
	remove_entry(t, e);
	collect(t);
	return 0;
}

void gwd_allowedips_remove_by_peer(struct gwd_allowedips *t, struct gwd_allowedips_owner *owner)
{
	while (owner->entries.next != &owner->entries)
		remove_entry(t, entry_of(owner->entries.next));
	collect(t);
}

/* ---- lookups ---- */

/*
 * One node of a lookup's walk: records the value of key's slot if n covers
 * key and returns the child to visit next, NULL when the walk is over.
 */
static inline const struct gwd_aip_node *step(const struct gwd_aip_node *n, const uint64_t key[2],
					      void **best)
{
	unsigned int s;
	void *v;

	if (!node_covers(n, key))
		return NULL;
	s = slot_index(key, n->pos);
	v = load_ptr(&n->slot[run_at(n, s)]);
	if (v)
		*best = v;
	if (!has_child(n, s))
		return NULL;
	return load_ptr(&n->slot[child_at(n, s)]);
}

/*
 * Host routes first: a hit there is the longest match. (Walking the trie
 * while the probe's miss is pending, so that a site prefix's walk overlaps
 * it, measured no faster: a host route then pays for a walk it never needs.)
 */
void *gwd_allowedips_lookup(const struct gwd_allowedips *t, int family, const uint8_t *addr)
{
	const struct gwd_aip_hosts *h;
	const struct gwd_aip_node *n;
	int fam = family == AF_INET6;
	uint64_t key[2];
	void *best;

	if (!family_bits(family))
		return NULL;
	load_key(key, family, addr);
	h = load_ptr(&t->hosts[fam]);
	if (h && (best = host_probe(h, host_home(h->mask, key), key)))
		return best;
	best = load_ptr(&t->dflt[fam]);
	for (n = load_ptr(&t->root[fam]); n;)
		n = step(n, key, &best);
	return best;
}

/*
 * Up to LOCKSTEP lookups: first the host probes, their slots prefetched so
 * that the misses overlap, then the trie walks of those that missed, one
 * node of each per round with the next one prefetched.
 */
static void lookup_lockstep(const struct gwd_allowedips *t, struct gwd_allowedips_query *q,
			    size_t n)
{
	const struct gwd_aip_hosts *h[LOCKSTEP];
	const struct gwd_aip_node *cur[LOCKSTEP];
	uint64_t key[LOCKSTEP][2];
	size_t home[LOCKSTEP], live = 0;

	for (size_t i = 0; i < n; i++) {
		int fam = q[i].family == AF_INET6;

		q[i].peer = NULL;
		cur[i] = NULL;
		h[i] = NULL;
		if (!family_bits(q[i].family))
			continue;
		load_key(key[i], q[i].family, q[i].addr);
		h[i] = load_ptr(&t->hosts[fam]);
		if (h[i]) {
			home[i] = host_home(h[i]->mask, key[i]);
			__builtin_prefetch(host_slot(h[i], home[i]));
		}
		cur[i] = load_ptr(&t->root[fam]);
		q[i].peer = load_ptr(&t->dflt[fam]);
	}
	for (size_t i = 0; i < n; i++) {
		void *p = h[i] ? host_probe(h[i], home[i], key[i]) : NULL;

		if (p) {
			q[i].peer = p;
			cur[i] = NULL;
		} else if (cur[i]) {
			__builtin_prefetch(cur[i]);
			live++;
		}
	}
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

/* ---- listing ---- */

static void entry_prefix(const struct gwd_aip_entry *e, struct gw_prefix *p)
{
	uint8_t bytes[16];

	store_be64(bytes, e->key[0]);
	store_be64(bytes + 8, e->key[1]);
	memset(p, 0, sizeof(*p));
	p->family = e->is6 ? AF_INET6 : AF_INET;
	p->cidr = e->cidr;
	memcpy(p->addr, bytes, e->is6 ? 16 : 4);
}

int gwd_allowedips_for_each(const struct gwd_allowedips_owner *owner, gwd_allowedips_fn fn,
			    void *ctx)
{
	struct gw_prefix p;
	int ret;

	for (struct gwd_aip_link *l = owner->entries.next; l != &owner->entries; l = l->next) {
		entry_prefix(entry_of(l), &p);
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
