// SPDX-License-Identifier: MIT
/*
 * The desired and the applied peer sets of the incremental applier
 * (apply_int.h). Peers live in one array of slots, found by key through an
 * open-addressing table; prefixes likewise, each with the peers that claim
 * it (the store's side) and the one peer gwd holds it for (gwd's side: a
 * prefix belongs to exactly one peer there, and giving it to another takes
 * it from the first, as WireGuard does).
 *
 * Preshared keys are held in slots and request text: slots are wiped when
 * freed or moved, requests by the sbuf.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "apply_int.h"
#include "gw/clock.h"
#include "gw/crypto.h"
#include "gw/log.h"

#define NONE UINT32_MAX

enum want { W_NONE, W_PEER, W_INVALID };

enum action { A_NONE, A_ADD, A_REMOVE, A_CHANGE };

/* A peer's settings, as the store wants them or as gwd has them. */
struct cfg {
	uint8_t psk[GW_KEY_LEN];
	uint32_t keepalive;
	uint32_t n_aips; /* canonical */
	struct gw_prefix *aips;
};

struct slot {
	uint8_t key[GW_KEY_LEN];
	bool used, queued, in_batch;
	uint8_t want; /* enum want */
	bool have, have_endpoint;
	uint64_t hlc;	/* of the stored record: decides contested prefixes */
	char *endpoint; /* desired hint */
	struct cfg w, h;
};

struct pfx {
	struct gw_prefix p;
	bool used;
	uint32_t owner;	 /* slot gwd holds it for, NONE */
	uint32_t winner; /* claimant that gets it, NONE */
	uint32_t claim0; /* first claimant, NONE */
	uint32_t *more;	 /* further claimants */
	uint32_t n_more, cap_more;
};

/* Open addressing, linear probing; slot value = index + 1, 0 = empty. */
struct ixmap {
	uint32_t *v;
	size_t cap, n; /* cap: a power of two */
};

struct ap_state {
	uint64_t seed;
	struct slot *slots;
	size_t n_slots, cap_slots;
	uint32_t *free_slots;
	size_t n_free_slots, cap_free_slots;
	struct ixmap by_key;
	struct pfx *pfx;
	size_t n_pfx, cap_pfx;
	uint32_t *free_pfx;
	size_t n_free_pfx, cap_free_pfx;
	struct ixmap by_pfx;
	/* FIFO of queued slots. */
	uint32_t *q;
	size_t q_head, q_len, q_cap;
	size_t conflicts, wanted;
	/* Interface: desired (has_*) and as gwd has it. */
	bool iface_dirty, want_port, want_mark;
	uint32_t port, mark, have_port, have_mark;
	struct gw_prefix *scratch;
	size_t cap_scratch;
};

static struct gw_ratelimit conflict_rl = GW_RATELIMIT_INIT(10 * GW_NSEC_PER_SEC, 10);

/* --- Hashing -------------------------------------------------------------- */

static uint64_t mix(uint64_t h, uint64_t v)
{
	h ^= v;
	h *= 0x9e3779b97f4a7c15ull;
	return h ^ (h >> 31);
}

static uint64_t key_hash(const struct ap_state *st, const uint8_t *key)
{
	uint64_t a, b;

	memcpy(&a, key, 8);
	memcpy(&b, key + 8, 8);
	return mix(mix(st->seed, a), b);
}

static uint64_t pfx_hash(const struct ap_state *st, const struct gw_prefix *p)
{
	uint64_t a, b;

	memcpy(&a, p->addr, 8);
	memcpy(&b, p->addr + 8, 8);
	return mix(mix(mix(st->seed, a), b), (uint64_t)p->family << 8 | p->cidr);
}

static bool pfx_same(const struct gw_prefix *a, const struct gw_prefix *b)
{
	return a->family == b->family && a->cidr == b->cidr && !memcmp(a->addr, b->addr, 16);
}

static uint64_t hash_of(const struct ap_state *st, const struct ixmap *m, uint32_t i)
{
	return m == &st->by_key ? key_hash(st, st->slots[i].key) : pfx_hash(st, &st->pfx[i].p);
}

static bool matches(const struct ap_state *st, const struct ixmap *m, uint32_t i, const void *k)
{
	if (m == &st->by_key)
		return !memcmp(st->slots[i].key, k, GW_KEY_LEN);
	return pfx_same(&st->pfx[i].p, k);
}

static uint32_t ix_find(const struct ap_state *st, const struct ixmap *m, const void *k, uint64_t h)
{
	if (!m->cap)
		return NONE;
	for (size_t j = h & (m->cap - 1);; j = (j + 1) & (m->cap - 1)) {
		uint32_t v = m->v[j];

		if (!v)
			return NONE;
		if (matches(st, m, v - 1, k))
			return v - 1;
	}
}

static void ix_place(const struct ap_state *st, struct ixmap *m, uint32_t i)
{
	size_t j = hash_of(st, m, i) & (m->cap - 1);

	while (m->v[j])
		j = (j + 1) & (m->cap - 1);
	m->v[j] = i + 1;
}

/* Room for one more at a load of at most one half. */
static int ix_reserve(struct ap_state *st, struct ixmap *m)
{
	size_t cap = m->cap ? m->cap : 64;
	uint32_t *old = m->v;
	size_t old_cap = m->cap;

	while ((m->n + 1) * 2 > cap)
		cap *= 2;
	if (cap == m->cap)
		return 0;
	m->v = calloc(cap, sizeof(*m->v));
	if (!m->v) {
		m->v = old;
		return -ENOMEM;
	}
	m->cap = cap;
	for (size_t j = 0; j < old_cap; j++)
		if (old[j])
			ix_place(st, m, old[j] - 1);
	free(old);
	return 0;
}

/* Inserts index i (not present; ix_reserve succeeded). */
static void ix_insert(struct ap_state *st, struct ixmap *m, uint32_t i)
{
	ix_place(st, m, i);
	m->n++;
}

/* Removes index i (present), shifting the probe chain back. */
static void ix_remove(struct ap_state *st, struct ixmap *m, uint32_t i)
{
	size_t mask = m->cap - 1, j = hash_of(st, m, i) & mask;

	while (m->v[j] != i + 1)
		j = (j + 1) & mask;
	for (size_t k = (j + 1) & mask; m->v[k]; k = (k + 1) & mask) {
		size_t home = hash_of(st, m, m->v[k] - 1) & mask;

		/* Move k into the hole j unless its home lies in (j, k]. */
		if ((k > j && (home <= j || home > k)) || (k < j && home <= j && home > k)) {
			m->v[j] = m->v[k];
			j = k;
		}
	}
	m->v[j] = 0;
	m->n--;
}

/* --- Slots and prefixes --------------------------------------------------- */

static void cfg_clear(struct cfg *c)
{
	free(c->aips);
	gw_wipe(c, sizeof(*c));
}

static uint32_t slot_find(const struct ap_state *st, const uint8_t *key)
{
	return ix_find(st, &st->by_key, key, key_hash(st, key));
}

static int slot_get(struct ap_state *st, const uint8_t *key, uint32_t *out)
{
	uint32_t i = slot_find(st, key);

	if (i == NONE) {
		if (ix_reserve(st, &st->by_key))
			return -ENOMEM;
		if (st->n_free_slots) {
			i = st->free_slots[--st->n_free_slots];
		} else {
			if (st->n_slots >= NONE - 1 || ap_grow(&st->slots, &st->cap_slots,
							       st->n_slots + 1, sizeof(*st->slots)))
				return -ENOMEM;
			i = (uint32_t)st->n_slots++;
		}
		memset(&st->slots[i], 0, sizeof(st->slots[i]));
		memcpy(st->slots[i].key, key, GW_KEY_LEN);
		st->slots[i].used = true;
		ix_insert(st, &st->by_key, i);
	}
	*out = i;
	return 0;
}

/* Frees a slot nothing refers to any more. */
static void slot_maybe_free(struct ap_state *st, uint32_t i)
{
	struct slot *s = &st->slots[i];

	if (s->want != W_NONE || s->have || s->queued || s->in_batch)
		return;
	/* Freeing never allocates: the free list has room for every slot. */
	if (ap_grow(&st->free_slots, &st->cap_free_slots, st->n_free_slots + 1,
		    sizeof(*st->free_slots)))
		return; /* kept, harmlessly, until memory returns */
	ix_remove(st, &st->by_key, i);
	free(s->endpoint);
	cfg_clear(&s->w);
	cfg_clear(&s->h);
	gw_wipe(s, sizeof(*s));
	st->free_slots[st->n_free_slots++] = i;
}

static void enqueue(struct ap_state *st, uint32_t i)
{
	struct slot *s = &st->slots[i];

	if (s->queued || s->in_batch)
		return;
	if (st->q_len == st->q_cap) {
		size_t cap = st->q_cap ? 2 * st->q_cap : 256;
		uint32_t *q = malloc(cap * sizeof(*q));

		if (!q)
			return; /* see ap_state_pending: the next install queues it */
		for (size_t k = 0; k < st->q_len; k++)
			q[k] = st->q[(st->q_head + k) % st->q_cap];
		free(st->q);
		st->q = q;
		st->q_cap = cap;
		st->q_head = 0;
	}
	st->q[(st->q_head + st->q_len++) % st->q_cap] = i;
	s->queued = true;
}

static uint32_t dequeue(struct ap_state *st)
{
	uint32_t i;

	if (!st->q_len)
		return NONE;
	i = st->q[st->q_head];
	st->q_head = (st->q_head + 1) % st->q_cap;
	st->q_len--;
	st->slots[i].queued = false;
	return i;
}

static uint32_t pfx_find(const struct ap_state *st, const struct gw_prefix *p)
{
	return ix_find(st, &st->by_pfx, p, pfx_hash(st, p));
}

static int pfx_get(struct ap_state *st, const struct gw_prefix *p, uint32_t *out)
{
	uint32_t i = pfx_find(st, p);

	if (i == NONE) {
		if (ix_reserve(st, &st->by_pfx) ||
		    ap_grow(&st->free_pfx, &st->cap_free_pfx, st->n_pfx + 1, sizeof(*st->free_pfx)))
			return -ENOMEM;
		if (st->n_free_pfx) {
			i = st->free_pfx[--st->n_free_pfx];
		} else {
			if (st->n_pfx >= NONE - 1 ||
			    ap_grow(&st->pfx, &st->cap_pfx, st->n_pfx + 1, sizeof(*st->pfx)))
				return -ENOMEM;
			i = (uint32_t)st->n_pfx++;
		}
		memset(&st->pfx[i], 0, sizeof(st->pfx[i]));
		st->pfx[i].p = *p;
		st->pfx[i].used = true;
		st->pfx[i].owner = st->pfx[i].winner = st->pfx[i].claim0 = NONE;
		ix_insert(st, &st->by_pfx, i);
	}
	*out = i;
	return 0;
}

static void pfx_maybe_free(struct ap_state *st, uint32_t i)
{
	struct pfx *e = &st->pfx[i];

	if (e->owner != NONE || e->claim0 != NONE)
		return;
	ix_remove(st, &st->by_pfx, i);
	free(e->more);
	memset(e, 0, sizeof(*e));
	/* free_pfx was grown with every pfx_get: room for all entries. */
	st->free_pfx[st->n_free_pfx++] = i;
}

/* (hlc, key) of slot a above slot b. */
static bool ranks_above(const struct ap_state *st, uint32_t a, uint32_t b)
{
	const struct slot *x = &st->slots[a], *y = &st->slots[b];

	if (x->hlc != y->hlc)
		return x->hlc > y->hlc;
	return memcmp(x->key, y->key, GW_KEY_LEN) > 0;
}

static uint32_t n_claims(const struct pfx *e)
{
	return (e->claim0 != NONE) + e->n_more;
}

static void elect(struct ap_state *st, struct pfx *e)
{
	uint32_t w = e->claim0;

	for (uint32_t k = 0; k < e->n_more; k++)
		if (w == NONE || ranks_above(st, e->more[k], w))
			w = e->more[k];
	e->winner = w;
}

static void log_contest(struct ap_state *st, const struct pfx *e)
{
	char p[GW_PREFIX_STR_LEN], w[GW_KEY_B64_LEN + 1];

	gw_prefix_format(&e->p, p, sizeof(p));
	gw_key_to_base64(w, st->slots[e->winner].key);
	gw_log_rl(&conflict_rl, GW_LOG_WARN,
		  "apply: allowed IP %s is listed by %u peers; %s gets it (newest record)", p,
		  n_claims(e), w);
}

/* Slot i claims prefix p; the peer that loses p, if any, is queued. */
static int claim(struct ap_state *st, uint32_t i, const struct gw_prefix *p)
{
	uint32_t k, before;
	struct pfx *e;
	int rc = pfx_get(st, p, &k);

	if (rc)
		return rc;
	e = &st->pfx[k];
	if (e->claim0 == NONE) {
		e->claim0 = i;
	} else {
		if (e->n_more == e->cap_more) {
			uint32_t cap = e->cap_more ? 2 * e->cap_more : 2;
			uint32_t *m = reallocarray(e->more, cap, sizeof(*m));

			if (!m) {
				pfx_maybe_free(st, k);
				return -ENOMEM;
			}
			e->more = m;
			e->cap_more = cap;
		}
		e->more[e->n_more++] = i;
	}
	before = e->winner;
	elect(st, e);
	if (before != NONE && before != e->winner)
		enqueue(st, before);
	if (n_claims(e) == 2)
		st->conflicts++;
	if (n_claims(e) >= 2)
		log_contest(st, e);
	return 0;
}

/* Slot i no longer claims p; the peer that gains p, if any, is queued. */
static void unclaim(struct ap_state *st, uint32_t i, const struct gw_prefix *p)
{
	uint32_t k = pfx_find(st, p), before;
	struct pfx *e;

	if (k == NONE)
		return;
	e = &st->pfx[k];
	if (e->claim0 == i) {
		e->claim0 = e->n_more ? e->more[--e->n_more] : NONE;
	} else {
		uint32_t j = 0;

		while (j < e->n_more && e->more[j] != i)
			j++;
		if (j == e->n_more)
			return;
		e->more[j] = e->more[--e->n_more];
	}
	if (n_claims(e) == 1)
		st->conflicts--;
	before = e->winner;
	elect(st, e);
	if (e->winner != NONE && e->winner != before)
		enqueue(st, e->winner);
	pfx_maybe_free(st, k);
}

/* --- The desired side ----------------------------------------------------- */

static void want_drop(struct ap_state *st, uint32_t i)
{
	struct slot *s = &st->slots[i];

	if (s->want == W_PEER) {
		for (uint32_t k = 0; k < s->w.n_aips; k++)
			unclaim(st, i, &s->w.aips[k]);
		st->wanted--;
	}
	free(s->endpoint);
	s->endpoint = NULL;
	cfg_clear(&s->w);
	s->want = W_NONE;
}

/* Copies a filled peer_state into the slot's desired side and claims. */
static int want_take(struct ap_state *st, uint32_t i, struct peer_state *ps, uint64_t hlc)
{
	struct slot *s = &st->slots[i];

	if (ps->endpoint) {
		s->endpoint = strdup(ps->endpoint);
		if (!s->endpoint)
			return -ENOMEM;
	}
	memcpy(s->w.psk, ps->psk, GW_KEY_LEN);
	s->w.keepalive = ps->keepalive;
	s->w.aips = ps->aips;
	s->w.n_aips = (uint32_t)ps->n_aips;
	ps->aips = NULL;
	s->hlc = hlc;
	s->want = W_PEER;
	st->wanted++;
	for (uint32_t k = 0; k < s->w.n_aips; k++) {
		int rc = claim(st, i, &s->w.aips[k]);

		if (rc) {
			/* Back out the claims made: none of this peer's, consistently. */
			s->w.n_aips = k;
			want_drop(st, i);
			return rc;
		}
	}
	return 0;
}

int ap_state_want(struct ap_state *st, const uint8_t key[static GW_KEY_LEN],
		  const Gwcluster__PeerConfig *pc, uint64_t hlc)
{
	struct peer_state ps = {0};
	const char *why = NULL;
	uint32_t i;
	int rc = slot_get(st, key, &i);

	if (rc)
		return rc;
	want_drop(st, i);
	enqueue(st, i);
	if (!pc) {
		slot_maybe_free(st, i);
		return 0;
	}
	rc = ap_want_fill(&ps, pc, &why);
	if (rc == -EINVAL)
		ap_log_invalid(key, why);
	if (!rc)
		rc = want_take(st, i, &ps, hlc);
	ap_peer_free(&ps);
	if (rc)
		st->slots[i].want = W_INVALID;
	return rc == -EINVAL ? 0 : rc;
}

void ap_state_want_iface(struct ap_state *st, const Gwcluster__InterfaceConfig *ifc)
{
	st->want_port = ifc && ifc->has_listen_port && ifc->listen_port <= 65535;
	st->port = st->want_port ? ifc->listen_port : 0;
	st->want_mark = ifc && ifc->has_fwmark;
	st->mark = st->want_mark ? ifc->fwmark : 0;
	st->iface_dirty = true;
}

/* The allowed IPs slot i gets into st->scratch; their number. */
static int effective(struct ap_state *st, uint32_t i, size_t *n)
{
	const struct slot *s = &st->slots[i];
	int rc = ap_grow(&st->scratch, &st->cap_scratch, s->w.n_aips, sizeof(*st->scratch));

	if (rc)
		return rc;
	*n = 0;
	for (uint32_t k = 0; k < s->w.n_aips; k++) {
		uint32_t e = pfx_find(st, &s->w.aips[k]);

		if (e != NONE && st->pfx[e].winner == i)
			st->scratch[(*n)++] = s->w.aips[k];
	}
	return 0;
}

int ap_state_effective(struct ap_state *st, const uint8_t key[static GW_KEY_LEN],
		       struct gw_prefix *out, size_t cap, size_t *n)
{
	uint32_t i = slot_find(st, key);
	int rc;

	if (i == NONE || st->slots[i].want != W_PEER)
		return -ENOENT;
	rc = effective(st, i, n);
	if (rc)
		return rc;
	if (*n > cap)
		return -ENOSPC;
	memcpy(out, st->scratch, *n * sizeof(*out));
	return 0;
}

/* --- gwd's side ----------------------------------------------------------- */

/* gwd no longer holds slot i's prefixes. */
static void have_release(struct ap_state *st, uint32_t i)
{
	struct slot *s = &st->slots[i];

	for (uint32_t k = 0; k < s->h.n_aips; k++) {
		uint32_t e = pfx_find(st, &s->h.aips[k]);

		if (e != NONE && st->pfx[e].owner == i) {
			st->pfx[e].owner = NONE;
			pfx_maybe_free(st, e);
		}
	}
	s->h.n_aips = 0;
}

/* Drops p from the allowed IPs gwd holds for slot i (sorted). */
static void have_drop(struct ap_state *st, uint32_t i, const struct gw_prefix *p)
{
	struct cfg *h = &st->slots[i].h;
	const struct gw_prefix *f = bsearch(p, h->aips, h->n_aips, sizeof(*p), ap_prefix_cmp);

	if (f) {
		size_t at = (size_t)(f - h->aips);

		memmove(&h->aips[at], &h->aips[at + 1], (h->n_aips - at - 1) * sizeof(*p));
		h->n_aips--;
	}
	enqueue(st, i);
}

/*
 * gwd now holds aips[0..n) (canonical) for slot i, taken from whoever held
 * them. On -ENOMEM slot i holds a subset and is queued: the state stays a
 * safe underestimate, which the next comparison corrects.
 */
static int have_set_aips(struct ap_state *st, uint32_t i, const struct gw_prefix *aips, size_t n)
{
	struct slot *s = &st->slots[i];
	size_t cap = s->h.n_aips;
	int rc;

	have_release(st, i);
	rc = ap_grow(&s->h.aips, &cap, n, sizeof(*aips));
	if (rc) {
		enqueue(st, i);
		return rc;
	}
	for (size_t k = 0; k < n; k++) {
		uint32_t e;

		rc = pfx_get(st, &aips[k], &e);
		if (rc) {
			enqueue(st, i);
			return rc;
		}
		if (st->pfx[e].owner != NONE && st->pfx[e].owner != i)
			have_drop(st, st->pfx[e].owner, &aips[k]);
		st->pfx[e].owner = i;
		s->h.aips[s->h.n_aips++] = aips[k];
	}
	return 0;
}

enum { INSTALL_CLEAR, INSTALL_PEERS, INSTALL_QUEUE }; /* struct ap_install's phase */

static int install_peer(struct ap_state *st, struct peer_state *d)
{
	uint32_t i;
	struct slot *s;
	size_t n = 0;
	int rc = slot_get(st, d->key, &i);

	if (rc)
		return rc;
	s = &st->slots[i];
	if (s->have)
		return -EPROTO;
	s->have = true;
	memcpy(s->h.psk, d->psk, GW_KEY_LEN);
	s->h.keepalive = d->keepalive;
	s->have_endpoint = d->has_endpoint;
	/* Canonical, then taken over as it is. */
	if (d->n_aips > 1) {
		qsort(d->aips, d->n_aips, sizeof(*d->aips), ap_prefix_cmp);
		for (size_t k = 1; k < d->n_aips; k++)
			if (ap_prefix_cmp(&d->aips[n], &d->aips[k]))
				d->aips[++n] = d->aips[k];
		d->n_aips = n + 1;
	}
	return have_set_aips(st, i, d->aips, d->n_aips);
}

int ap_state_install(struct ap_state *st, struct dev_state *dump, struct ap_install *pos,
		     size_t budget)
{
	unsigned phase = pos->phase;
	size_t at = pos->at;
	int rc = 0;

	while (budget--) {
		if (phase == INSTALL_CLEAR && at < st->n_slots) {
			struct slot *s = &st->slots[at];

			if (s->used) {
				have_release(st, (uint32_t)at);
				cfg_clear(&s->h);
				s->have = s->have_endpoint = false;
			}
			at++;
		} else if (phase == INSTALL_CLEAR) {
			phase = INSTALL_PEERS;
			at = 0;
			st->have_port = dump->listen_port;
			st->have_mark = dump->fwmark;
		} else if (phase == INSTALL_PEERS && at < dump->n) {
			rc = install_peer(st, &dump->peers[at++]);
			if (rc)
				break;
		} else if (phase == INSTALL_PEERS) {
			phase = INSTALL_QUEUE;
			at = 0;
		} else if (at < st->n_slots) {
			if (st->slots[at].used) {
				enqueue(st, (uint32_t)at);
				slot_maybe_free(st, (uint32_t)at);
			}
			at++;
		} else {
			st->iface_dirty = true;
			pos->phase = INSTALL_CLEAR;
			pos->at = 0;
			return 1;
		}
	}
	pos->phase = phase;
	pos->at = at;
	return rc;
}

/* --- Batches -------------------------------------------------------------- */

/* The scratch list (n, from effective()) against what gwd holds for s. */
static bool aips_differ(const struct ap_state *st, const struct slot *s, size_t n)
{
	if (n != s->h.n_aips)
		return true;
	for (size_t k = 0; k < n; k++)
		if (ap_prefix_cmp(&st->scratch[k], &s->h.aips[k]))
			return true;
	return false;
}

/* What slot i needs; for A_ADD and A_CHANGE its allowed IPs are in scratch. */
static int plan(struct ap_state *st, uint32_t i, enum action *a, size_t *n)
{
	const struct slot *s = &st->slots[i];
	int rc;

	*a = A_NONE;
	if (s->want == W_INVALID)
		return 0;
	if (s->want == W_NONE) {
		if (s->have)
			*a = A_REMOVE;
		return 0;
	}
	rc = effective(st, i, n);
	if (rc)
		return rc;
	if (!s->have) {
		*a = A_ADD;
	} else if (!gw_memeq(s->w.psk, s->h.psk, GW_KEY_LEN) || s->w.keepalive != s->h.keepalive ||
		   (s->endpoint && !s->have_endpoint) || aips_differ(st, s, *n)) {
		*a = A_CHANGE;
	}
	return 0;
}

static void emit(struct ap_state *st, struct sbuf *req, uint32_t i, enum action a, size_t n)
{
	const struct slot *s = &st->slots[i];
	bool psk, ka;

	switch (a) {
	case A_ADD:
		ap_emit_add(req, s->key, s->w.psk, s->endpoint, s->w.keepalive, st->scratch, n);
		break;
	case A_REMOVE:
		ap_emit_remove(req, s->key);
		break;
	case A_CHANGE:
		psk = !gw_memeq(s->w.psk, s->h.psk, GW_KEY_LEN);
		ka = s->w.keepalive != s->h.keepalive;
		ap_emit_change(req, s->key, psk ? s->w.psk : NULL,
			       s->have_endpoint ? NULL : s->endpoint, ka, s->w.keepalive,
			       aips_differ(st, s, n), st->scratch, n);
		break;
	case A_NONE:
		break;
	}
}

static int slot_key_cmp(const void *a, const void *b, void *arg)
{
	const struct ap_state *st = arg;

	return memcmp(st->slots[*(const uint32_t *)a].key, st->slots[*(const uint32_t *)b].key,
		      GW_KEY_LEN);
}

static void emit_iface(struct ap_state *st, struct ap_batch *b, struct sbuf *req)
{
	if (!st->iface_dirty)
		return;
	if (st->want_port && st->port != st->have_port) {
		ap_sb_printf(req, "listen_port=%u\n", st->port);
		b->iface = true;
	}
	if (st->want_mark && st->mark != st->have_mark) {
		ap_sb_printf(req, "fwmark=%u\n", st->mark);
		b->iface = true;
	}
	st->iface_dirty = b->iface;
}

int ap_state_batch(struct ap_state *st, struct ap_batch *b, size_t max, size_t examine,
		   struct sbuf *req)
{
	size_t n;
	enum action a;
	int rc;

	b->n = 0;
	b->iface = false;
	b->added = b->removed = b->changed = 0;
	ap_sb_printf(req, "set=1\n");
	emit_iface(st, b, req);
	while (st->q_len && examine-- && b->n < max) {
		uint32_t i = st->q[st->q_head];

		if (ap_grow(&b->idx, &b->cap, b->n + 1, sizeof(*b->idx)))
			goto oom;
		rc = plan(st, i, &a, &n);
		if (rc)
			goto oom;
		dequeue(st);
		if (a == A_NONE) {
			slot_maybe_free(st, i);
			continue;
		}
		st->slots[i].in_batch = true;
		b->idx[b->n++] = i;
	}
	if (b->n > 1)
		qsort_r(b->idx, b->n, sizeof(*b->idx), slot_key_cmp, st);
	for (size_t k = 0; k < b->n; k++) {
		rc = plan(st, b->idx[k], &a, &n);
		if (rc)
			goto oom;
		emit(st, req, b->idx[k], a, n);
		b->added += a == A_ADD;
		b->removed += a == A_REMOVE;
		b->changed += a == A_CHANGE;
	}
	if (!b->n && !b->iface) {
		ap_sb_free(req);
		return 0;
	}
	ap_sb_printf(req, "\n");
	if (!req->oom)
		return 0;
oom:
	ap_state_batch_done(st, b, false);
	ap_sb_free(req);
	return -ENOMEM;
}

/* gwd now has what was sent for slot i. */
static void commit_slot(struct ap_state *st, uint32_t i)
{
	struct slot *s = &st->slots[i];
	enum action a;
	size_t n;

	if (plan(st, i, &a, &n)) {
		enqueue(st, i); /* not known: compared again */
		return;
	}
	switch (a) {
	case A_REMOVE:
		have_release(st, i);
		cfg_clear(&s->h);
		s->have = s->have_endpoint = false;
		break;
	case A_ADD:
		s->have = true;
		s->have_endpoint = s->endpoint != NULL;
		memcpy(s->h.psk, s->w.psk, GW_KEY_LEN);
		s->h.keepalive = s->w.keepalive;
		(void)have_set_aips(st, i, st->scratch, n);
		break;
	case A_CHANGE:
		s->have_endpoint |= s->endpoint != NULL;
		memcpy(s->h.psk, s->w.psk, GW_KEY_LEN);
		s->h.keepalive = s->w.keepalive;
		if (aips_differ(st, s, n))
			(void)have_set_aips(st, i, st->scratch, n);
		break;
	case A_NONE:
		break;
	}
}

void ap_state_batch_done(struct ap_state *st, struct ap_batch *b, bool applied)
{
	for (size_t k = 0; k < b->n; k++) {
		uint32_t i = b->idx[k];

		st->slots[i].in_batch = false;
		if (applied)
			commit_slot(st, i);
		else
			enqueue(st, i);
		slot_maybe_free(st, i);
	}
	if (b->iface && applied) {
		if (st->want_port)
			st->have_port = st->port;
		if (st->want_mark)
			st->have_mark = st->mark;
		st->iface_dirty = false;
	} else if (b->iface) {
		st->iface_dirty = true;
	}
	b->n = 0;
	b->iface = false;
}

void ap_batch_free(struct ap_batch *b)
{
	free(b->idx);
	memset(b, 0, sizeof(*b));
}

/* --- Life and figures ----------------------------------------------------- */

int ap_state_new(struct ap_state **out)
{
	struct ap_state *st = calloc(1, sizeof(*st));

	if (!st)
		return -ENOMEM;
	gw_random_bytes(&st->seed, sizeof(st->seed));
	*out = st;
	return 0;
}

void ap_state_free(struct ap_state *st)
{
	if (!st)
		return;
	for (size_t i = 0; i < st->n_slots; i++) {
		free(st->slots[i].endpoint);
		cfg_clear(&st->slots[i].w);
		cfg_clear(&st->slots[i].h);
	}
	if (st->slots)
		gw_wipe(st->slots, st->cap_slots * sizeof(*st->slots));
	free(st->slots);
	for (size_t i = 0; i < st->n_pfx; i++)
		free(st->pfx[i].more);
	free(st->pfx);
	free(st->free_slots);
	free(st->free_pfx);
	free(st->by_key.v);
	free(st->by_pfx.v);
	free(st->q);
	free(st->scratch);
	free(st);
}

size_t ap_state_pending(const struct ap_state *st)
{
	return st->q_len + st->iface_dirty;
}

size_t ap_state_conflicts(const struct ap_state *st)
{
	return st->conflicts;
}

size_t ap_state_wanted(const struct ap_state *st)
{
	return st->wanted;
}
