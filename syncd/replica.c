// SPDX-License-Identifier: MIT
/*
 * Replica: LWW records, per-origin streams with gap repair, snapshots,
 * heartbeats, catch-up and tombstone collection (docs/sync-protocol.md).
 *
 * Invariants:
 * - applied[o] (memory) equals the committed applied[o] (store): both move
 *   only after the transaction that applied update (o, applied[o]) commits.
 * - own_seq is committed with the update that uses it, before it is sent.
 * - The hlc ceiling persisted in meta is above every stamp this node ever
 *   issued or reported, so a restart never issues a smaller one.
 */
#include "replica.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw/addr.h"
#include "gw/crypto.h"
#include "gw/key.h"
#include "gw/log.h"
#include "gw/pbwipe.h"
#include "hlc.h"

enum phase {
	PH_JOINING,	/* waiting to hear members; a new node fetches a snapshot */
	PH_CATCHING_UP, /* applying what the members knew when joining ended */
	PH_SYNCED,
};

struct gap_slot {
	uint64_t seq;  /* 0: empty */
	uint8_t *blob; /* packed Update */
	size_t len;
};

struct hlc_sample {
	uint64_t hlc, seq;
};

struct chunker;

/* What we know of one member, as an origin of updates and as a peer node. */
struct member {
	uint8_t id;
	bool self;
	/* As an origin. */
	uint64_t applied;      /* our greatest gap-free seq from it */
	uint64_t known;	       /* greatest seq of it known to exist */
	uint64_t chase_target; /* known, as of chase_since */
	uint64_t chase_since;
	uint64_t join_target;
	uint64_t repair_sent;  /* mono ns of the last RepairRequest, 0: none */
	uint64_t repair_to;    /* its end */
	uint64_t repair_base;  /* applied when it was sent */
	unsigned repair_tries; /* sent without progress in between */
	struct gap_slot *gap;  /* SYNCD_GAP_SLOTS, allocated on first gap */
	size_t gap_bytes;
	/* Update applied + 1, merged a slice per syncd_replica_work(); NULL: none. */
	Gwcluster__Update *merging;
	uint64_t merge_seq; /* its seq */
	size_t merged;	    /* its records merged so far */
	unsigned merge_slices;
	uint64_t merge_started, merge_longest; /* mono ns; ns */
	bool merge_changed;		       /* some of them were stored */
	/* As a snapshot requester: the snapshot we are sending it, NULL: none. */
	struct chunker *serving;
	/* As a node, from its heartbeats. */
	bool heard;
	uint64_t last_seen; /* mono ns */
	uint64_t *vec;	    /* its applied vector, by member index */
	uint64_t own_seq;
	bool synced;
	char version[SYNCD_VERSION_MAX + 1];
	struct hlc_sample samples[SYNCD_HLC_SAMPLES];
	unsigned n_samples, next_sample;
	uint64_t last_sample;	/* mono ns */
	uint64_t last_snapshot; /* mono ns we last served it a snapshot */
};

struct snapshot {
	bool active;
	uint8_t from;
	uint64_t id;
	uint64_t last_rx; /* mono ns */
};

struct syncd_replica {
	struct syncd_replica_config cfg;
	struct syncd_replica_io io;
	struct syncd_store *store;
	const struct gw_clock *clock;
	struct syncd_hlc hlc;
	uint64_t hlc_ceiling; /* persisted; stamps above it are not issued */
	struct member *members;
	unsigned n, self;
	int16_t index[256]; /* node id -> member index, -1 */
	uint64_t own_seq;
	enum phase phase;
	bool synced_once; /* persisted: this state directory caught up once */
	uint64_t started, last_gc;
	struct snapshot snap;
	uint64_t snap_counter;
	struct syncd_replica_stats stats;
	char version[SYNCD_VERSION_MAX + 1];
	/* Scratch, n entries each: our vector as protobuf, new applied values. */
	Gwcluster__OriginSeq *vec_os;
	Gwcluster__OriginSeq **vec_osp;
	uint64_t *tmp_vec;
	unsigned next_job; /* member whose job syncd_replica_work() looks at first */
};

static struct gw_ratelimit reject_rl = GW_RATELIMIT_INIT(GW_NSEC_PER_SEC, 5);
static struct gw_ratelimit store_rl = GW_RATELIMIT_INIT(GW_NSEC_PER_SEC, 5);

#define MS(x) ((uint64_t)(x)*GW_NSEC_PER_MSEC)

/* ------------------------------------------------------------------------
 * Record rules
 */

__attribute__((format(printf, 3, 4))) static int bad(char *why, size_t whylen, const char *fmt, ...)
{
	va_list ap;

	if (why && whylen) {
		va_start(ap, fmt);
		vsnprintf(why, whylen, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

static bool printable(const char *s, bool tag)
{
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c < 0x20 || c == 0x7f || (tag && (c == ',' || c == ' ')))
			return false;
	}
	return true;
}

static int meta_check(const Gwcluster__PeerMeta *m, char *why, size_t whylen)
{
	if (m->name && (strlen(m->name) > SYNCD_META_TEXT_MAX || !printable(m->name, false)))
		return bad(why, whylen, "name: at most %d printable bytes", SYNCD_META_TEXT_MAX);
	if (m->owner && (strlen(m->owner) > SYNCD_META_TEXT_MAX || !printable(m->owner, false)))
		return bad(why, whylen, "owner: at most %d printable bytes", SYNCD_META_TEXT_MAX);
	if (m->n_tags > SYNCD_META_TAGS_MAX)
		return bad(why, whylen, "tags: more than %d", SYNCD_META_TAGS_MAX);
	for (size_t i = 0; i < m->n_tags; i++) {
		size_t len = m->tags[i] ? strlen(m->tags[i]) : 0;

		if (!len || len > SYNCD_META_TAG_LEN_MAX || !printable(m->tags[i], true))
			return bad(why, whylen,
				   "tag \"%.64s\": 1..%d printable bytes without ',' or blanks",
				   m->tags[i] ? m->tags[i] : "", SYNCD_META_TAG_LEN_MAX);
	}
	return 0;
}

static int endpoint_check(const char *ep, union gw_sockaddr *sa, char *why, size_t whylen)
{
	/* A %scope names an interface of one host: not a cluster-wide fact. */
	if (strchr(ep, '%') || gw_endpoint_parse(sa, ep))
		return bad(why, whylen, "endpoint \"%.64s\": expected IPv4:PORT or [IPv6]:PORT",
			   ep);
	return 0;
}

static int peer_check(const Gwcluster__PeerConfig *p, char *why, size_t whylen)
{
	union gw_sockaddr sa;
	struct gw_prefix pfx;
	int rc;

	if (p->public_key.len != GW_KEY_LEN || !p->public_key.data)
		return bad(why, whylen, "public key: must be 32 bytes");
	if (p->has_preshared_key && p->preshared_key.len != GW_KEY_LEN)
		return bad(why, whylen, "preshared key: must be 32 bytes");
	if (p->n_allowed_ips > SYNCD_PEER_MAX_ALLOWED_IPS)
		return bad(why, whylen, "allowed IPs: more than %d", SYNCD_PEER_MAX_ALLOWED_IPS);
	for (size_t i = 0; i < p->n_allowed_ips; i++)
		if (!p->allowed_ips[i] || !strchr(p->allowed_ips[i], '/') ||
		    gw_prefix_parse(&pfx, p->allowed_ips[i]))
			return bad(why, whylen, "allowed IP \"%.64s\": expected ADDRESS/CIDR",
				   p->allowed_ips[i] ? p->allowed_ips[i] : "");
	if (p->has_persistent_keepalive && p->persistent_keepalive > 65535)
		return bad(why, whylen, "persistent keepalive %u: must be 0..65535",
			   p->persistent_keepalive);
	if (p->endpoint) {
		rc = endpoint_check(p->endpoint, &sa, why, whylen);
		if (rc)
			return rc;
	}
	return p->meta ? meta_check(p->meta, why, whylen) : 0;
}

static int iface_check(const Gwcluster__InterfaceConfig *c, char *why, size_t whylen)
{
	if (c->has_listen_port && c->listen_port > 65535)
		return bad(why, whylen, "listen port %u: must be 0..65535", c->listen_port);
	if (c->has_mtu && (c->mtu < 576 || c->mtu > 65535))
		return bad(why, whylen, "mtu %u: must be 576..65535", c->mtu);
	if (c->private_key_file &&
	    (c->private_key_file[0] != '/' || strlen(c->private_key_file) > 4095 ||
	     !printable(c->private_key_file, false)))
		return bad(why, whylen, "private key file: must be an absolute path");
	return 0;
}

int syncd_record_check(const Gwcluster__Record *rec, char *why, size_t whylen)
{
	switch (rec->item_case) {
	case GWCLUSTER__RECORD__ITEM_PEER:
		return peer_check(rec->peer, why, whylen);
	case GWCLUSTER__RECORD__ITEM_PEER_DELETED:
		if (rec->peer_deleted->public_key.len != GW_KEY_LEN)
			return bad(why, whylen, "public key: must be 32 bytes");
		return 0;
	case GWCLUSTER__RECORD__ITEM_IFACE:
		return iface_check(rec->iface, why, whylen);
	default:
		return bad(why, whylen, "record without an item");
	}
}

static int prefix_cmp(const void *pa, const void *pb)
{
	const struct gw_prefix *a = pa, *b = pb;
	int c;

	if (a->family != b->family)
		return a->family == AF_INET ? -1 : 1;
	c = memcmp(a->addr, b->addr, a->family == AF_INET ? 4 : 16);
	if (c)
		return c;
	return (int)a->cidr - (int)b->cidr;
}

/* Parses, masks, sorts and deduplicates p's allowed IPs, then reformats them. */
static int canonical_allowed_ips(Gwcluster__PeerConfig *p)
{
	struct gw_prefix *v;
	char **strs = NULL;
	size_t n = 0;
	int rc = -ENOMEM;

	if (!p->n_allowed_ips)
		return 0;
	v = calloc(p->n_allowed_ips, sizeof(*v));
	if (!v)
		return -ENOMEM;
	for (size_t i = 0; i < p->n_allowed_ips; i++) {
		gw_prefix_parse(&v[i], p->allowed_ips[i]); /* checked before */
		gw_prefix_mask(&v[i]);
	}
	qsort(v, p->n_allowed_ips, sizeof(*v), prefix_cmp);
	strs = calloc(p->n_allowed_ips, sizeof(*strs));
	if (!strs)
		goto out;
	for (size_t i = 0; i < p->n_allowed_ips; i++) {
		char buf[GW_PREFIX_STR_LEN];

		if (n && !prefix_cmp(&v[i], &v[i - 1]))
			continue;
		gw_prefix_format(&v[i], buf, sizeof(buf));
		strs[n] = strdup(buf);
		if (!strs[n])
			goto out;
		n++;
	}
	for (size_t i = 0; i < p->n_allowed_ips; i++)
		free(p->allowed_ips[i]);
	free(p->allowed_ips);
	p->allowed_ips = strs;
	p->n_allowed_ips = n;
	strs = NULL;
	rc = 0;
out:
	if (strs) {
		for (size_t i = 0; i < n; i++)
			free(strs[i]);
		free(strs);
	}
	free(v);
	return rc;
}

static bool meta_empty(const Gwcluster__PeerMeta *m)
{
	return !(m->name && *m->name) && !(m->owner && *m->owner) &&
	       !(m->has_expires_unix && m->expires_unix) && !m->n_tags;
}

static void canonical_meta(Gwcluster__PeerConfig *p)
{
	Gwcluster__PeerMeta *m = p->meta;

	if (!m)
		return;
	if (m->name && !*m->name) {
		free(m->name);
		m->name = NULL;
	}
	if (m->owner && !*m->owner) {
		free(m->owner);
		m->owner = NULL;
	}
	if (m->has_expires_unix && !m->expires_unix)
		m->has_expires_unix = false;
	if (meta_empty(m)) {
		gwcluster__peer_meta__free_unpacked(m, NULL);
		p->meta = NULL;
	}
}

int syncd_peer_canonicalize(Gwcluster__PeerConfig *p, char *why, size_t whylen)
{
	union gw_sockaddr sa;
	char buf[GW_ENDPOINT_STR_LEN];
	int rc = peer_check(p, why, whylen);

	if (rc)
		return rc;
	if (gw_key_is_zero(p->public_key.data))
		return bad(why, whylen, "public key: must not be all zeros");
	rc = canonical_allowed_ips(p);
	if (rc)
		return rc;
	if (p->has_preshared_key && gw_key_is_zero(p->preshared_key.data)) {
		free(p->preshared_key.data);
		p->preshared_key.data = NULL;
		p->preshared_key.len = 0;
		p->has_preshared_key = false;
	}
	if (p->has_persistent_keepalive && !p->persistent_keepalive)
		p->has_persistent_keepalive = false;
	if (p->endpoint) {
		endpoint_check(p->endpoint, &sa, NULL, 0);
		gw_endpoint_format(&sa, buf, sizeof(buf));
		if (strcmp(buf, p->endpoint)) {
			char *s = strdup(buf);

			if (!s)
				return -ENOMEM;
			free(p->endpoint);
			p->endpoint = s;
		}
	}
	canonical_meta(p);
	return 0;
}

bool syncd_peer_equal(const Gwcluster__PeerConfig *a, const Gwcluster__PeerConfig *b)
{
	size_t la = gwcluster__peer_config__get_packed_size(a);
	size_t lb = gwcluster__peer_config__get_packed_size(b);
	uint8_t *pa, *pb;
	bool eq = false;

	if (la != lb)
		return false;
	pa = malloc(la + 1);
	pb = malloc(lb + 1);
	if (pa && pb) {
		gwcluster__peer_config__pack(a, pa);
		gwcluster__peer_config__pack(b, pb);
		eq = gw_memeq(pa, pb, la);
		/* The packed form may hold a preshared key. */
		gw_wipe(pa, la);
		gw_wipe(pb, lb);
	}
	free(pa);
	free(pb);
	return eq;
}

/* ------------------------------------------------------------------------
 * Helpers
 */

static uint64_t now_ns(const struct syncd_replica *r)
{
	return gw_clock_mono_ns(r->clock);
}

/* The first seq of o's stream neither applied nor being merged. */
static uint64_t next_needed(const struct member *o)
{
	return o->applied + 1 + (o->merging != NULL);
}

static void want_work(struct syncd_replica *r)
{
	if (r->io.more)
		r->io.more(r->io.arg);
}

static struct member *member_of(struct syncd_replica *r, uint32_t id)
{
	if (id > 255 || r->index[id] < 0)
		return NULL;
	return &r->members[r->index[id]];
}

static unsigned idx(const struct syncd_replica *r, const struct member *m)
{
	return (unsigned)(m - r->members);
}

static bool reachable(const struct syncd_replica *r, const struct member *m, uint64_t now)
{
	return m->self || (m->last_seen && now - m->last_seen < MS(r->cfg.peer_dead_ms));
}

/*
 * How much of origin o's stream we hold. For ourselves this is own_seq,
 * except after our state was lost: then own_seq jumps to what the cluster
 * has seen (so no seq is reused) before we hold that data again.
 */
static uint64_t our_applied(const struct syncd_replica *r, const struct member *o)
{
	(void)r;
	return o->applied;
}

__attribute__((format(printf, 3, 4))) static void reject(struct syncd_replica *r, uint8_t from,
							 const char *fmt, ...)
{
	char msg[200];
	va_list ap;

	r->stats.rejected++;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	gw_log_rl(&reject_rl, GW_LOG_WARN, "replica: from node %u: %s", from, msg);
}

static void store_failed(struct syncd_replica *r, int rc, const char *what)
{
	r->stats.store_errors++;
	gw_log_rl(&store_rl, GW_LOG_ERR, "replica: %s: %s", what, strerror(-rc));
}

static void notify(struct syncd_replica *r)
{
	if (r->io.changed)
		r->io.changed(r->io.arg);
}

static void envelope_init(struct syncd_replica *r, Gwcluster__Envelope *env)
{
	gwcluster__envelope__init(env);
	env->version = SYNCD_PROTO_VERSION;
	env->origin = r->cfg.node_id;
}

static void observe(struct syncd_replica *r, uint8_t from, uint64_t hlc)
{
	static struct gw_ratelimit rl = GW_RATELIMIT_INIT(60 * GW_NSEC_PER_SEC, 1);

	if (!syncd_hlc_observe(&r->hlc, hlc))
		gw_log_rl(&rl, GW_LOG_WARN,
			  "replica: node %u sent a stamp more than %d s ahead of our clock", from,
			  SYNCD_HLC_MAX_AHEAD_MS / 1000);
}

/*
 * Makes sure the persisted hlc ceiling exceeds the next n stamps, so no
 * stamp issued or reported now can be undercut after a restart. Must be
 * called outside a transaction (it commits on its own).
 */
static int reserve(struct syncd_replica *r, uint64_t n)
{
	uint64_t wall = syncd_hlc_wall(&r->hlc);
	uint64_t need = (r->hlc.last > wall ? r->hlc.last : wall) + n + 1;
	uint64_t c = need + ((uint64_t)SYNCD_HLC_RESERVE_MS << SYNCD_HLC_LOGICAL_BITS);
	int rc;

	if (need < r->hlc_ceiling)
		return 0;
	if (c < need)
		c = UINT64_MAX;
	rc = syncd_store_meta_set(r->store, "hlc_ceiling", c);
	if (rc)
		return rc;
	r->hlc_ceiling = c;
	return 0;
}

static void fill_vector(struct syncd_replica *r)
{
	for (unsigned i = 0; i < r->n; i++) {
		r->vec_os[i].origin = r->members[i].id;
		r->vec_os[i].seq = our_applied(r, &r->members[i]);
	}
}

static int record_key(const Gwcluster__Record *rec, struct syncd_row *row)
{
	row->deleted = false;
	switch (rec->item_case) {
	case GWCLUSTER__RECORD__ITEM_PEER:
		row->key = rec->peer->public_key.data;
		row->key_len = rec->peer->public_key.len;
		return 0;
	case GWCLUSTER__RECORD__ITEM_PEER_DELETED:
		row->key = rec->peer_deleted->public_key.data;
		row->key_len = rec->peer_deleted->public_key.len;
		row->deleted = true;
		return 0;
	case GWCLUSTER__RECORD__ITEM_IFACE:
		row->key = (const uint8_t *)SYNCD_IFACE_KEY;
		row->key_len = strlen(SYNCD_IFACE_KEY);
		return 0;
	default:
		return -EINVAL;
	}
}

/* >0 when (hlc, writer, packed bytes) a wins over the stored row b. */
static int lww_cmp(uint64_t hlc, uint32_t writer, const uint8_t *blob, size_t len,
		   const struct syncd_row *b)
{
	size_t n = len < b->blob_len ? len : b->blob_len;
	int c;

	if (hlc != b->hlc)
		return hlc > b->hlc ? 1 : -1;
	if (writer != b->writer)
		return writer > b->writer ? 1 : -1;
	/* Equal stamps and writers only differ after a writer lost its state. */
	c = memcmp(blob, b->blob, n);
	if (c)
		return c;
	return (len > b->blob_len) - (len < b->blob_len);
}

/*
 * Last writer wins: stores rec unless what we hold is newer or the same.
 * Must run in a transaction. 1 when rec was stored, 0 when not, or -errno.
 */
static int merge_record(struct syncd_replica *r, const Gwcluster__Record *rec, uint32_t origin,
			uint64_t seq)
{
	struct syncd_row row, cur;
	uint8_t *blob;
	size_t len;
	int rc;

	rc = record_key(rec, &row);
	if (rc)
		return rc;
	len = gwcluster__record__get_packed_size(rec);
	blob = malloc(len + 1);
	if (!blob)
		return -ENOMEM;
	gwcluster__record__pack(rec, blob);
	rc = syncd_store_get(r->store, row.key, row.key_len, &cur);
	if (!rc && lww_cmp(rec->hlc, rec->writer, blob, len, &cur) <= 0) {
		r->stats.records_lost++;
		goto out;
	}
	if (rc && rc != -ENOENT)
		goto out;
	row.hlc = rec->hlc;
	row.writer = rec->writer;
	row.origin = origin;
	row.origin_seq = seq;
	row.blob = blob;
	row.blob_len = len;
	rc = syncd_store_put(r->store, &row);
	if (!rc) {
		r->stats.records_won++;
		if (r->io.record_changed)
			r->io.record_changed(r->io.arg, row.key, row.key_len);
		rc = 1;
	}
out:
	gw_wipe(blob, len); /* may hold a preshared key */
	free(blob);
	return rc;
}

/* ------------------------------------------------------------------------
 * Remote updates, gaps and repair
 */

static void slot_clear(struct gap_slot *s)
{
	if (s->blob) {
		gw_wipe(s->blob, s->len);
		free(s->blob);
	}
	memset(s, 0, sizeof(*s));
}

static void slot_release(struct member *o, struct gap_slot *s)
{
	o->gap_bytes -= s->len;
	slot_clear(s);
}

/* Frees buffered updates that were applied meanwhile (by a snapshot). */
static void purge_stale(struct member *o)
{
	for (unsigned i = 0; o->gap && i < SYNCD_GAP_SLOTS; i++)
		if (o->gap[i].seq && o->gap[i].seq <= o->applied)
			slot_release(o, &o->gap[i]);
}

static size_t slice_len(const struct syncd_replica *r)
{
	return r->cfg.merge_slice ? r->cfg.merge_slice : SYNCD_MERGE_SLICE;
}

/*
 * Merges records [from, to) of update (o, seq) in one transaction; when to
 * is the end, advances applied[o] to seq in the same one. 0 or -errno (the
 * transaction rolled back). *changed is set when some record was stored.
 */
static int merge_slice(struct syncd_replica *r, struct member *o, uint64_t seq,
		       const Gwcluster__Update *u, size_t from, size_t to, bool *changed)
{
	char why[160];
	int rc;

	rc = syncd_store_begin(r->store);
	if (rc)
		goto fail;
	for (size_t i = from; i < to; i++) {
		const Gwcluster__Record *rec = u->records[i];

		if (rec->writer != o->id) {
			reject(r, o->id, "update %llu: a record written by node %u",
			       (unsigned long long)seq, rec->writer);
			continue;
		}
		if (syncd_record_check(rec, why, sizeof(why))) {
			reject(r, o->id, "update %llu: %s", (unsigned long long)seq, why);
			continue;
		}
		observe(r, o->id, rec->hlc);
		rc = merge_record(r, rec, o->id, seq);
		if (rc < 0)
			goto fail_tx;
		*changed |= rc == 1;
	}
	rc = 0;
	if (to == u->n_records)
		rc = syncd_store_set_applied(r->store, o->id, seq);
	if (!rc)
		rc = syncd_store_commit(r->store);
	if (rc)
		goto fail_tx;
	if (to == u->n_records) {
		o->applied = seq;
		if (o->applied >= o->known)
			o->known = o->applied;
		r->stats.updates_applied++;
	}
	return 0;
fail_tx:
	syncd_store_rollback(r->store);
fail:
	store_failed(r, rc, "apply update");
	return rc;
}

/*
 * Applies update (o, applied[o] + 1): at once and atomically when it fits in
 * a slice (0 or -errno), else starts merging it in slices (-EINPROGRESS).
 * owned: NULL, or in itself, ours to keep or free (else in is copied if
 * kept); take: NULL, or where in lies in an envelope that may give it up.
 * Updates are unpacked with (and kept and freed with) gw_pbwipe_allocator.
 */
static int start_update(struct syncd_replica *r, struct member *o, const Gwcluster__Update *in,
			Gwcluster__Update *owned, Gwcluster__Update **take)
{
	Gwcluster__Update *u = owned;
	uint64_t seq = o->applied + 1;
	bool changed = false;
	int rc;

	if (in->n_records <= slice_len(r)) {
		rc = merge_slice(r, o, seq, in, 0, in->n_records, &changed);
		if (owned)
			gwcluster__update__free_unpacked(owned, &gw_pbwipe_allocator);
		if (changed)
			notify(r);
		return rc;
	}
	if (!owned && take) {
		u = *take;
		*take = NULL;
	} else if (!owned) {
		size_t len = gwcluster__update__get_packed_size(in);
		uint8_t *blob = malloc(len + 1);

		if (!blob)
			return -ENOMEM;
		gwcluster__update__pack(in, blob);
		u = gwcluster__update__unpack(&gw_pbwipe_allocator, len, blob);
		gw_wipe(blob, len); /* may hold preshared keys */
		free(blob);
		if (!u)
			return -ENOMEM;
	}
	/* Every stamp received is observed now, as if the update were merged at once. */
	for (size_t i = 0; i < u->n_records; i++)
		if (u->records[i]->writer == o->id)
			observe(r, o->id, u->records[i]->hlc);
	o->merging = u;
	o->merge_seq = seq;
	o->merged = 0;
	o->merge_slices = 0;
	o->merge_started = now_ns(r);
	o->merge_longest = 0;
	o->merge_changed = false;
	gw_info("replica: merging update %llu of node %u (%zu records) in slices of %zu",
		(unsigned long long)seq, o->id, u->n_records, slice_len(r));
	want_work(r);
	return -EINPROGRESS;
}

static void merge_free(struct member *o)
{
	if (o->merging)
		gwcluster__update__free_unpacked(o->merging, &gw_pbwipe_allocator);
	o->merging = NULL;
	o->merged = 0;
	o->merge_changed = false;
}

/* Applies buffered updates that became contiguous. */
static void drain(struct syncd_replica *r, struct member *o)
{
	while (o->gap && !o->merging) {
		struct gap_slot *s = &o->gap[(o->applied + 1) % SYNCD_GAP_SLOTS];
		Gwcluster__Update *u;

		if (s->seq != o->applied + 1)
			break;
		u = gwcluster__update__unpack(&gw_pbwipe_allocator, s->len, s->blob);
		slot_release(o, s);
		if (!u || start_update(r, o, u, u, NULL))
			break;
	}
}

/* One slice of o's merge; the last one advances applied[o] and drains. */
static void merge_step(struct syncd_replica *r, struct member *o)
{
	const Gwcluster__Update *u = o->merging;
	size_t to = o->merged + slice_len(r);
	uint64_t t0 = now_ns(r), took;
	int rc;

	if (to > u->n_records)
		to = u->n_records;
	rc = merge_slice(r, o, o->merge_seq, u, o->merged, to, &o->merge_changed);
	took = now_ns(r) - t0;
	o->merge_slices++;
	if (took > o->merge_longest)
		o->merge_longest = took;
	if (rc) {
		/* Records merged so far stay (LWW): the update comes again by repair. */
		merge_free(o);
		return;
	}
	o->merged = to;
	if (to < u->n_records) {
		if (o->merge_changed)
			notify(r);
		o->merge_changed = false;
		return;
	}
	if (o->merge_changed)
		notify(r);
	gw_info("replica: merged update %llu of node %u: %zu records in %u slices, %llu ms, "
		"the longest %llu ms",
		(unsigned long long)o->applied, o->id, u->n_records, o->merge_slices,
		(unsigned long long)((now_ns(r) - o->merge_started) / GW_NSEC_PER_MSEC),
		(unsigned long long)(o->merge_longest / GW_NSEC_PER_MSEC));
	merge_free(o);
	if (o->applied >= o->repair_to)
		o->repair_sent = 0;
	drain(r, o);
}

static void buffer_update(struct syncd_replica *r, struct member *o, uint64_t seq,
			  const Gwcluster__Update *u)
{
	struct gap_slot *s;
	size_t len;

	if (seq - o->applied > SYNCD_GAP_SLOTS) {
		r->stats.buffer_dropped++; /* repair fetches it later */
		return;
	}
	if (!o->gap) {
		o->gap = calloc(SYNCD_GAP_SLOTS, sizeof(*o->gap));
		if (!o->gap) {
			r->stats.buffer_dropped++;
			return;
		}
	}
	s = &o->gap[seq % SYNCD_GAP_SLOTS];
	if (s->seq == seq) {
		r->stats.duplicates++;
		return;
	}
	slot_release(o, s);
	len = gwcluster__update__get_packed_size(u);
	if (o->gap_bytes + len > SYNCD_GAP_BYTES) {
		purge_stale(o);
		if (o->gap_bytes + len > SYNCD_GAP_BYTES) {
			r->stats.buffer_dropped++;
			return;
		}
	}
	s->blob = malloc(len + 1);
	if (!s->blob) {
		r->stats.buffer_dropped++;
		return;
	}
	gwcluster__update__pack(u, s->blob);
	s->len = len;
	s->seq = seq;
	o->gap_bytes += len;
	r->stats.buffered++;
}

/* Asks origin o for the start of the missing part of its stream. */
static void maybe_repair(struct syncd_replica *r, struct member *o, uint64_t now)
{
	Gwcluster__RepairRequest rq = GWCLUSTER__REPAIR_REQUEST__INIT;
	Gwcluster__Envelope env;
	uint64_t from = next_needed(o), to;
	int rc;

	if (o->self || o->known < from || r->snap.active || !reachable(r, o, now))
		return;
	if (o->repair_sent && now - o->repair_sent < MS(5 * r->cfg.heartbeat_ms))
		return;
	if (o->gap && o->gap[from % SYNCD_GAP_SLOTS].seq == from)
		return; /* buffered: applied once the merge before it ends */
	to = o->known < from - 1 + SYNCD_REPAIR_MAX ? o->known : from - 1 + SYNCD_REPAIR_MAX;
	for (uint64_t s = from + 1; o->gap && s <= to; s++)
		if (o->gap[s % SYNCD_GAP_SLOTS].seq == s) {
			to = s - 1;
			break;
		}
	rq.origin = o->id;
	rq.from_seq = from;
	rq.to_seq = to;
	envelope_init(r, &env);
	env.body_case = GWCLUSTER__ENVELOPE__BODY_REPAIR_REQUEST;
	env.repair_request = &rq;
	rc = r->io.request(r->io.arg, o->id, &env);
	if (rc) {
		gw_dbg("replica: repair request to node %u: %s", o->id, strerror(-rc));
		return;
	}
	if (o->applied > o->repair_base)
		o->repair_tries = 0;
	o->repair_tries++;
	o->repair_sent = now;
	o->repair_to = to;
	o->repair_base = o->applied;
	r->stats.repairs_sent++;
	gw_dbg("replica: asked node %u for %llu..%llu", o->id, (unsigned long long)from,
	       (unsigned long long)to);
}

static void on_update(struct syncd_replica *r, struct member *o, uint64_t seq,
		      const Gwcluster__Update *u, Gwcluster__Update **take, uint64_t now)
{
	if (seq < next_needed(o)) {
		r->stats.duplicates++;
		return;
	}
	if (seq > o->known)
		o->known = seq;
	if (seq == o->applied + 1) {
		if (!start_update(r, o, u, NULL, take))
			drain(r, o);
		if (o->applied >= o->repair_to)
			o->repair_sent = 0; /* answered: ask for the rest at once */
		return;
	}
	buffer_update(r, o, seq, u);
	maybe_repair(r, o, now);
}

/* Serves a RepairRequest for our own stream from the retained log. */
static void send_refused(struct syncd_replica *r, struct member *to, uint64_t oldest)
{
	Gwcluster__RepairRefused rf = GWCLUSTER__REPAIR_REFUSED__INIT;
	Gwcluster__Envelope env;

	rf.origin = r->cfg.node_id;
	rf.oldest_seq = oldest;
	envelope_init(r, &env);
	env.body_case = GWCLUSTER__ENVELOPE__BODY_REPAIR_REFUSED;
	env.repair_refused = &rf;
	r->io.reply(r->io.arg, to->id, &env);
	r->stats.repairs_refused++;
}

static int send_logged(struct syncd_replica *r, struct member *to, uint64_t seq, size_t *bytes)
{
	Gwcluster__Envelope env;
	Gwcluster__Update *u;
	const void *blob;
	size_t len;
	int rc;

	rc = syncd_store_log_get(r->store, seq, &blob, &len);
	if (rc)
		return rc;
	u = gwcluster__update__unpack(NULL, len, blob);
	if (!u)
		return -EIO;
	envelope_init(r, &env);
	env.has_seq = true;
	env.seq = seq;
	env.body_case = GWCLUSTER__ENVELOPE__BODY_UPDATE;
	env.update = u;
	rc = r->io.reply(r->io.arg, to->id, &env);
	gwcluster__update__free_unpacked(u, NULL);
	*bytes += len;
	return rc;
}

static void serve_repair(struct syncd_replica *r, struct member *from,
			 const Gwcluster__RepairRequest *rq)
{
	uint64_t oldest, to;
	size_t bytes = 0;
	int rc;

	if (rq->origin != r->cfg.node_id || !rq->from_seq || rq->from_seq > rq->to_seq) {
		reject(r, from->id, "bad repair request (origin %u, %llu..%llu)", rq->origin,
		       (unsigned long long)rq->from_seq, (unsigned long long)rq->to_seq);
		return;
	}
	if (rq->from_seq > r->own_seq)
		return; /* nothing of that exists yet */
	rc = syncd_store_log_oldest(r->store, &oldest);
	if (rc == -ENOENT)
		oldest = r->own_seq + 1;
	else if (rc) {
		store_failed(r, rc, "log oldest");
		return;
	}
	if (rq->from_seq < oldest) {
		send_refused(r, from, oldest);
		return;
	}
	to = rq->to_seq < r->own_seq ? rq->to_seq : r->own_seq;
	if (to - rq->from_seq >= SYNCD_REPAIR_MAX)
		to = rq->from_seq + SYNCD_REPAIR_MAX - 1;
	for (uint64_t s = rq->from_seq; s <= to && bytes < SYNCD_REPAIR_BYTES; s++) {
		rc = send_logged(r, from, s, &bytes);
		if (rc == -ENOENT) {
			send_refused(r, from, s + 1);
			return;
		}
		if (rc)
			break;
	}
	r->stats.repairs_served++;
}

/* ------------------------------------------------------------------------
 * Snapshots
 */

static void request_snapshot(struct syncd_replica *r, struct member *m, uint64_t now)
{
	Gwcluster__SnapshotRequest rq = GWCLUSTER__SNAPSHOT_REQUEST__INIT;
	Gwcluster__Envelope env;
	int rc;

	rq.request_id = syncd_store_incarnation(r->store) << 32 | ++r->snap_counter;
	envelope_init(r, &env);
	env.body_case = GWCLUSTER__ENVELOPE__BODY_SNAPSHOT_REQUEST;
	env.snapshot_request = &rq;
	rc = r->io.request(r->io.arg, m->id, &env);
	if (rc) {
		gw_dbg("replica: snapshot request to node %u: %s", m->id, strerror(-rc));
		return;
	}
	r->snap =
	    (struct snapshot){.active = true, .from = m->id, .id = rq.request_id, .last_rx = now};
	r->stats.snapshots_requested++;
	gw_info("replica: requesting a snapshot from node %u", m->id);
}

/* A snapshot being sent to one member, a slice per syncd_replica_work(). */
struct chunker {
	struct syncd_replica *r;
	struct member *to;
	uint64_t id;
	struct syncd_store_reader *rd; /* the cut it is read from */
	size_t sent;		       /* records */
	Gwcluster__Record *recs[SYNCD_CHUNK_RECORDS];
	size_t n, bytes;
};

static int chunk_send(struct chunker *c, bool last)
{
	Gwcluster__SnapshotChunk ch = GWCLUSTER__SNAPSHOT_CHUNK__INIT;
	Gwcluster__Envelope env;
	int rc;

	ch.request_id = c->id;
	ch.records = c->recs;
	ch.n_records = c->n;
	ch.last = last;
	if (last) {
		/* The vector of the cut the records were read from. */
		const uint64_t *applied = syncd_store_reader_applied(c->rd);

		for (unsigned i = 0; i < c->r->n; i++) {
			c->r->vec_os[i].origin = c->r->members[i].id;
			c->r->vec_os[i].seq = applied[c->r->members[i].id];
		}
		ch.vector = c->r->vec_osp;
		ch.n_vector = c->r->n;
	}
	envelope_init(c->r, &env);
	env.body_case = GWCLUSTER__ENVELOPE__BODY_SNAPSHOT_CHUNK;
	env.snapshot_chunk = &ch;
	rc = c->r->io.reply(c->r->io.arg, c->to->id, &env);
	for (size_t i = 0; i < c->n; i++)
		gwcluster__record__free_unpacked(c->recs[i], NULL);
	c->sent += c->n;
	c->n = 0;
	c->bytes = 0;
	return rc;
}

static int chunk_row(void *arg, const struct syncd_row *row)
{
	struct chunker *c = arg;
	Gwcluster__Record *rec = gwcluster__record__unpack(NULL, row->blob_len, row->blob);

	if (!rec) {
		gw_log_rl(&store_rl, GW_LOG_ERR, "replica: a stored record does not unpack");
		return 0;
	}
	c->recs[c->n++] = rec;
	c->bytes += row->blob_len;
	if (c->n == SYNCD_CHUNK_RECORDS || c->bytes >= SYNCD_CHUNK_BYTES)
		return chunk_send(c, false);
	return 0;
}

static void serve_end(struct member *to)
{
	struct chunker *c = to->serving;

	if (!c)
		return;
	for (size_t i = 0; i < c->n; i++)
		gwcluster__record__free_unpacked(c->recs[i], NULL);
	syncd_store_reader_close(c->rd);
	free(c);
	to->serving = NULL;
}

/*
 * The whole state in chunks, read from one consistent cut of the store (a
 * reader: writes committed meanwhile are not in it), so the records and the
 * final vector agree, however many loop turns the walk takes
 * (serve_step).
 */
static void serve_snapshot(struct syncd_replica *r, struct member *to, uint64_t id, uint64_t now)
{
	struct chunker *c;
	int rc;

	/* Each one walks the whole store: a member asking in a loop gets one a second. */
	if (to->last_snapshot && now - to->last_snapshot < MS(SYNCD_SNAPSHOT_MIN_GAP_MS)) {
		reject(r, to->id, "snapshot requests too frequent");
		return;
	}
	to->last_snapshot = now;
	serve_end(to); /* it asked anew: the one it was getting is abandoned */
	c = calloc(1, sizeof(*c));
	if (!c)
		return;
	c->r = r;
	c->to = to;
	c->id = id;
	rc = syncd_store_reader_open(r->store, &c->rd);
	if (rc) {
		free(c);
		gw_warn("replica: snapshot for node %u: %s", to->id, strerror(-rc));
		return;
	}
	to->serving = c;
	want_work(r);
}

/* One slice of the snapshot for member to; the last one sends the vector. */
static void serve_step(struct syncd_replica *r, struct member *to)
{
	struct chunker *c = to->serving;
	bool done = false;
	int rc;

	rc = syncd_store_reader_next(c->rd, slice_len(r), chunk_row, c, &done);
	if (!rc && done)
		rc = chunk_send(c, true);
	if (rc) {
		gw_warn("replica: snapshot for node %u: %s", to->id, strerror(-rc));
		serve_end(to);
		return;
	}
	if (!done)
		return;
	r->stats.snapshots_served++;
	gw_info("replica: served a snapshot to node %u (%zu records)", to->id, c->sent);
	serve_end(to);
}

/*
 * Someone applied more of our own stream than we know: our state was lost
 * (or restored from an old copy). Never reuse those seqs.
 */
static void adopt_own_seq(struct syncd_replica *r, uint64_t seq, uint8_t who)
{
	int rc;

	if (seq <= r->own_seq)
		return;
	rc = syncd_store_meta_set(r->store, "own_seq", seq);
	if (rc) {
		store_failed(r, rc, "adopt own seq");
		return;
	}
	gw_warn("replica: node %u has seen our updates up to %llu, we only know %llu: "
		"continuing from there",
		who, (unsigned long long)seq, (unsigned long long)r->own_seq);
	r->own_seq = seq;
}

/* The chunk's vector, merged into tmp_vec (in the chunk's transaction). */
static int merge_snapshot_vector(struct syncd_replica *r, const Gwcluster__SnapshotChunk *ch)
{
	for (unsigned i = 0; i < r->n; i++)
		r->tmp_vec[i] = our_applied(r, &r->members[i]);
	for (size_t i = 0; i < ch->n_vector; i++) {
		struct member *o = member_of(r, ch->vector[i]->origin);
		uint64_t seq = ch->vector[i]->seq;
		int rc;

		if (!o || seq <= r->tmp_vec[idx(r, o)])
			continue;
		r->tmp_vec[idx(r, o)] = seq;
		rc = syncd_store_set_applied(r->store, o->id, seq);
		if (!rc && o->self && seq > r->own_seq)
			rc = syncd_store_meta_set(r->store, "own_seq", seq);
		if (rc)
			return rc;
	}
	return 0;
}

static void snapshot_done(struct syncd_replica *r)
{
	for (unsigned i = 0; i < r->n; i++) {
		struct member *o = &r->members[i];

		if (o->self && r->tmp_vec[i] > r->own_seq)
			r->own_seq = r->tmp_vec[i]; /* committed with the vector */
		o->applied = r->tmp_vec[i];
		if (o->known < o->applied)
			o->known = o->applied;
		if (o->merging && o->merge_seq <= o->applied)
			merge_free(o); /* the snapshot holds it (or newer) */
		o->repair_sent = 0;
		o->repair_tries = 0;
	}
	r->snap.active = false;
	r->stats.snapshots_completed++;
	gw_info("replica: snapshot from node %u applied", r->snap.from);
	for (unsigned i = 0; i < r->n; i++) {
		purge_stale(&r->members[i]);
		if (!r->members[i].self)
			drain(r, &r->members[i]);
	}
}

static int apply_chunk_records(struct syncd_replica *r, struct member *from,
			       const Gwcluster__SnapshotChunk *ch, bool *changed)
{
	char why[160];

	for (size_t i = 0; i < ch->n_records; i++) {
		const Gwcluster__Record *rec = ch->records[i];
		int rc;

		if (!rec->writer || rec->writer > 255 ||
		    syncd_record_check(rec, why, sizeof(why))) {
			reject(r, from->id, "snapshot record: %s",
			       rec->writer && rec->writer <= 255 ? why : "bad writer");
			continue;
		}
		observe(r, from->id, rec->hlc);
		rc = merge_record(r, rec, rec->writer, 0);
		if (rc < 0)
			return rc;
		*changed |= rc == 1;
	}
	return 0;
}

static void on_chunk(struct syncd_replica *r, struct member *from,
		     const Gwcluster__SnapshotChunk *ch, uint64_t now)
{
	bool changed = false;
	int rc;

	if (!r->snap.active || from->id != r->snap.from || ch->request_id != r->snap.id) {
		gw_dbg("replica: ignoring a chunk of a snapshot no longer wanted");
		return;
	}
	r->snap.last_rx = now;
	rc = syncd_store_begin(r->store);
	if (!rc)
		rc = apply_chunk_records(r, from, ch, &changed);
	if (!rc && ch->last)
		rc = merge_snapshot_vector(r, ch);
	if (!rc)
		rc = syncd_store_commit(r->store);
	if (rc) {
		syncd_store_rollback(r->store);
		store_failed(r, rc, "apply snapshot");
		r->snap.active = false;
		r->stats.snapshots_abandoned++;
		return;
	}
	if (ch->last)
		snapshot_done(r);
	if (changed)
		notify(r);
}

static void on_refused(struct syncd_replica *r, struct member *from,
		       const Gwcluster__RepairRefused *rf, uint64_t now)
{
	if (rf->origin != from->id) {
		reject(r, from->id, "repair refused for node %u", rf->origin);
		return;
	}
	r->stats.refusals_received++;
	gw_info("replica: node %u no longer holds %llu (oldest %llu): taking a snapshot", from->id,
		(unsigned long long)(from->applied + 1), (unsigned long long)rf->oldest_seq);
	from->repair_sent = 0;
	if (!r->snap.active)
		request_snapshot(r, from, now);
}

/* ------------------------------------------------------------------------
 * Heartbeats
 */

static void push_sample(struct member *m, uint64_t hlc, uint64_t seq, uint64_t now)
{
	if (m->n_samples && now - m->last_sample < MS(SYNCD_HLC_SAMPLE_MS))
		return;
	m->samples[m->next_sample] = (struct hlc_sample){.hlc = hlc, .seq = seq};
	m->next_sample = (m->next_sample + 1) % SYNCD_HLC_SAMPLES;
	if (m->n_samples < SYNCD_HLC_SAMPLES)
		m->n_samples++;
	m->last_sample = now;
}

static void send_heartbeat(struct syncd_replica *r, uint64_t now)
{
	Gwcluster__Heartbeat hb = GWCLUSTER__HEARTBEAT__INIT;
	Gwcluster__Envelope env;
	struct timespec ts;

	gw_clock_real(r->clock, &ts);
	hb.sent_unix_ms = ts.tv_sec < 0 ? 0 : (uint64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	fill_vector(r);
	hb.applied = r->vec_osp;
	hb.n_applied = r->n;
	hb.synced = syncd_replica_synced(r);
	hb.version = r->version;
	hb.has_own_seq = true;
	hb.own_seq = r->own_seq;
	/* Report a stamp only once it is covered by the persisted ceiling. */
	if (!reserve(r, 1)) {
		hb.has_hlc = true;
		hb.hlc = syncd_hlc_now(&r->hlc);
		push_sample(&r->members[r->self], hb.hlc, r->own_seq, now);
	}
	envelope_init(r, &env);
	env.body_case = GWCLUSTER__ENVELOPE__BODY_HEARTBEAT;
	env.heartbeat = &hb;
	r->io.publish(r->io.arg, &env);
}

static void copy_version(char *dst, const char *src)
{
	size_t i = 0;

	for (; src && src[i] && i < SYNCD_VERSION_MAX; i++)
		dst[i] = src[i] >= 0x20 && src[i] < 0x7f ? src[i] : '?';
	dst[i] = '\0';
}

static void on_heartbeat(struct syncd_replica *r, struct member *m, const Gwcluster__Heartbeat *hb,
			 uint64_t now)
{
	m->heard = true;
	m->synced = hb->synced;
	copy_version(m->version, hb->version);
	if (hb->has_own_seq) {
		m->own_seq = hb->own_seq;
		if (m->own_seq > m->known)
			m->known = m->own_seq;
	}
	memset(m->vec, 0, r->n * sizeof(*m->vec));
	for (size_t i = 0; i < hb->n_applied; i++) {
		struct member *o = member_of(r, hb->applied[i]->origin);
		uint64_t seq = hb->applied[i]->seq;

		if (!o)
			continue;
		m->vec[idx(r, o)] = seq;
		if (seq > o->known)
			o->known = seq;
		if (o->self)
			adopt_own_seq(r, seq, m->id);
	}
	if (hb->has_hlc && hb->has_own_seq) {
		observe(r, m->id, hb->hlc);
		push_sample(m, hb->hlc, hb->own_seq, now);
	}
	maybe_repair(r, m, now);
}

static void receive(struct syncd_replica *r, uint8_t from, enum syncd_channel ch,
		    const Gwcluster__Envelope *env, Gwcluster__Update **take)
{
	struct member *m = member_of(r, from);
	uint64_t now = now_ns(r);
	int body = env->body_case;

	if (!m || m->self) {
		reject(r, from, "not another member");
		return;
	}
	m->last_seen = now;
	if (body == GWCLUSTER__ENVELOPE__BODY_UPDATE && ch != SYNCD_CHANNEL_REQUEST &&
	    env->has_seq && env->seq)
		on_update(r, m, env->seq, env->update, take, now);
	else if (body == GWCLUSTER__ENVELOPE__BODY_HEARTBEAT && ch == SYNCD_CHANNEL_STREAM)
		on_heartbeat(r, m, env->heartbeat, now);
	else if (body == GWCLUSTER__ENVELOPE__BODY_SNAPSHOT_REQUEST && ch == SYNCD_CHANNEL_REQUEST)
		serve_snapshot(r, m, env->snapshot_request->request_id, now);
	else if (body == GWCLUSTER__ENVELOPE__BODY_SNAPSHOT_CHUNK && ch == SYNCD_CHANNEL_REPLY)
		on_chunk(r, m, env->snapshot_chunk, now);
	else if (body == GWCLUSTER__ENVELOPE__BODY_REPAIR_REQUEST && ch == SYNCD_CHANNEL_REQUEST)
		serve_repair(r, m, env->repair_request);
	else if (body == GWCLUSTER__ENVELOPE__BODY_REPAIR_REFUSED && ch == SYNCD_CHANNEL_REPLY)
		on_refused(r, m, env->repair_refused, now);
	else if (body == GWCLUSTER__ENVELOPE__BODY_SESSIONS && ch == SYNCD_CHANNEL_STREAM)
		; /* session state: a later release */
	else
		reject(r, from, "message %d on channel %d (or without seq)", body, (int)ch);
}

void syncd_replica_receive(struct syncd_replica *r, uint8_t from, enum syncd_channel ch,
			   const Gwcluster__Envelope *env)
{
	receive(r, from, ch, env, NULL);
}

void syncd_replica_receive_taking(struct syncd_replica *r, uint8_t from, enum syncd_channel ch,
				  Gwcluster__Envelope *env)
{
	receive(r, from, ch, env,
		env->body_case == GWCLUSTER__ENVELOPE__BODY_UPDATE ? &env->update : NULL);
}

/* ------------------------------------------------------------------------
 * Catch-up, gaps, collection
 */

static uint64_t stale_ns(const struct syncd_replica *r)
{
	uint64_t ms = 2ULL * r->cfg.peer_dead_ms;

	return MS(ms > 2000 ? ms : 2000);
}

/* Origin o has had a gap for too long (what was known stale_ns ago is not applied). */
static bool stale_gap(const struct syncd_replica *r, const struct member *o, uint64_t now)
{
	return o->applied < o->chase_target && now - o->chase_since > stale_ns(r);
}

/* m's vector holds something ours lacks. */
static bool ahead_of_us(const struct syncd_replica *r, const struct member *m)
{
	for (unsigned i = 0; i < r->n; i++)
		if (m->vec[i] > our_applied(r, &r->members[i]))
			return true;
	return false;
}

/* The best reachable member to clone from: synced first, then the most applied. */
static struct member *snapshot_source(struct syncd_replica *r, const struct member *origin,
				      uint64_t now)
{
	struct member *best = NULL;
	uint64_t best_score = 0;

	for (unsigned i = 0; i < r->n; i++) {
		struct member *m = &r->members[i];
		uint64_t score = 0;

		if (m->self || m == origin || !m->heard || !reachable(r, m, now))
			continue;
		if (origin ? m->vec[idx(r, origin)] <= origin->applied : !ahead_of_us(r, m))
			continue;
		for (unsigned j = 0; j < r->n; j++)
			score += m->vec[j];
		if (origin)
			score = m->vec[idx(r, origin)];
		if (!best || (m->synced && !best->synced) ||
		    (m->synced == best->synced && score > best_score)) {
			best = m;
			best_score = score;
		}
	}
	return best;
}

static void tick_gap(struct syncd_replica *r, struct member *o, uint64_t now)
{
	struct member *src;

	if (o->applied >= o->chase_target) {
		o->chase_target = o->known;
		o->chase_since = now;
	}
	if (o->known <= o->applied || r->snap.active)
		return;
	if (o->merging) {
		maybe_repair(r, o, now); /* what follows the update being merged */
		return;
	}
	if (!o->self && reachable(r, o, now) && o->repair_tries < SYNCD_REPAIR_TRIES) {
		maybe_repair(r, o, now);
		return;
	}
	/*
	 * The origin is silent, or ignores our requests, or is us after losing
	 * state: clone whoever has more of its stream (the origin as a last resort).
	 */
	src = snapshot_source(r, o, now);
	if (!src && !o->self && reachable(r, o, now))
		src = o;
	if (src) {
		o->repair_tries = 0;
		request_snapshot(r, src, now);
	}
}

static void become_synced(struct syncd_replica *r)
{
	int rc;

	r->phase = PH_SYNCED;
	if (!r->synced_once) {
		rc = syncd_store_meta_set(r->store, "synced", 1);
		if (rc)
			store_failed(r, rc, "remember synced");
		else
			r->synced_once = true;
	}
	gw_info("replica: synced (own seq %llu)", (unsigned long long)r->own_seq);
}

/*
 * Joining ends once we heard every member (or waited long enough) with at
 * least one reachable; a new state directory first clones a member that
 * has more than we do. Then we are synced once we applied all that was
 * known to exist at that point.
 */
static void tick_sync(struct syncd_replica *r, uint64_t now)
{
	bool heard_all = true;
	unsigned reach = 0;

	if (r->phase == PH_SYNCED)
		return;
	for (unsigned i = 0; i < r->n; i++) {
		if (r->members[i].self)
			continue;
		reach += r->members[i].heard && reachable(r, &r->members[i], now);
		heard_all &= r->members[i].heard;
	}
	if (r->phase == PH_JOINING) {
		if (r->n > 1 && (!reach || r->snap.active))
			return;
		if (!heard_all && now - r->started < MS(2ULL * r->cfg.peer_dead_ms))
			return;
		if (!r->synced_once && !r->stats.snapshots_completed) {
			struct member *src = snapshot_source(r, NULL, now);

			if (src) {
				request_snapshot(r, src, now);
				return;
			}
		}
		for (unsigned i = 0; i < r->n; i++)
			r->members[i].join_target = r->members[i].known;
		r->phase = PH_CATCHING_UP;
	}
	for (unsigned i = 0; i < r->n; i++)
		if (r->members[i].applied < r->members[i].join_target)
			return;
	become_synced(r);
}

/*
 * The greatest hlc below which no write can still be unseen by any member:
 * for every origin o, a sample (h, s) of o's clock such that every member
 * has applied o's stream up to s (o's later writes all carry more than h).
 * False when some member's vector or some origin's samples are missing.
 */
static bool gc_frontier(struct syncd_replica *r, uint64_t *frontier)
{
	uint64_t f = UINT64_MAX;

	for (unsigned o = 0; o < r->n; o++) {
		const struct member *om = &r->members[o];
		uint64_t min_applied = our_applied(r, om), best = 0;
		bool found = false;

		for (unsigned m = 0; m < r->n; m++) {
			if (m == r->self)
				continue;
			if (!r->members[m].heard)
				return false;
			if (r->members[m].vec[o] < min_applied)
				min_applied = r->members[m].vec[o];
		}
		for (unsigned i = 0; i < om->n_samples; i++)
			if (om->samples[i].seq <= min_applied &&
			    (!found || om->samples[i].hlc > best)) {
				best = om->samples[i].hlc;
				found = true;
			}
		if (!found)
			return false;
		if (best < f)
			f = best;
	}
	*frontier = f;
	return true;
}

static void collect(struct syncd_replica *r)
{
	uint64_t frontier, removed = 0;
	int rc;

	if (!gc_frontier(r, &frontier))
		return;
	rc = syncd_store_gc(r->store, frontier, &removed);
	if (rc) {
		store_failed(r, rc, "collect tombstones");
		return;
	}
	if (removed)
		gw_dbg("replica: collected %llu tombstones", (unsigned long long)removed);
	r->stats.tombstones_collected += removed;
}

void syncd_replica_tick(struct syncd_replica *r)
{
	uint64_t now = now_ns(r);

	if (r->snap.active && now - r->snap.last_rx > MS(SYNCD_SNAPSHOT_TIMEOUT_MS)) {
		gw_warn("replica: snapshot from node %u timed out", r->snap.from);
		r->snap.active = false;
		r->stats.snapshots_abandoned++;
	}
	send_heartbeat(r, now);
	for (unsigned i = 0; i < r->n; i++)
		tick_gap(r, &r->members[i], now);
	tick_sync(r, now);
	if (now - r->last_gc >= MS(SYNCD_GC_INTERVAL_MS)) {
		r->last_gc = now;
		collect(r);
	}
}

bool syncd_replica_work(struct syncd_replica *r)
{
	bool did = false, more = false;

	/* One slice of one job, round robin over the members (merges, then snapshots). */
	for (unsigned k = 0; k < r->n; k++) {
		struct member *m = &r->members[(r->next_job + k) % r->n];

		if (did) {
			more |= m->merging || m->serving;
			continue;
		}
		if (m->merging) {
			merge_step(r, m);
			did = true;
		} else if (m->serving) {
			serve_step(r, m);
			did = true;
		} else {
			continue;
		}
		r->next_job = (r->next_job + k + 1) % r->n;
		more |= m->merging || m->serving;
	}
	return more;
}

/* ------------------------------------------------------------------------
 * Own writes
 */

static int commit_write(struct syncd_replica *r, Gwcluster__Record **recs, size_t n, uint64_t seq,
			const uint8_t *blob, size_t len, bool *changed)
{
	int rc = syncd_store_begin(r->store);

	for (size_t i = 0; !rc && i < n; i++) {
		rc = merge_record(r, recs[i], r->cfg.node_id, seq);
		if (rc > 0) {
			*changed = true;
			rc = 0;
		}
	}
	if (!rc)
		rc = syncd_store_log_append(r->store, seq, blob, len);
	if (!rc)
		rc = syncd_store_meta_set(r->store, "own_seq", seq);
	/* Only a gap-free stream of our own counts as applied (see our_applied). */
	if (!rc && r->members[r->self].applied == seq - 1)
		rc = syncd_store_set_applied(r->store, r->cfg.node_id, seq);
	if (!rc && seq > r->cfg.log_retain)
		rc = syncd_store_log_trim(r->store, seq - r->cfg.log_retain + 1);
	if (!rc)
		rc = syncd_store_commit(r->store);
	if (rc)
		syncd_store_rollback(r->store);
	return rc;
}

int syncd_replica_write(struct syncd_replica *r, Gwcluster__Record **recs, size_t n,
			uint64_t *seq_out)
{
	Gwcluster__Update u = GWCLUSTER__UPDATE__INIT;
	Gwcluster__Envelope env;
	uint64_t seq = r->own_seq + 1;
	bool changed = false;
	uint8_t *blob;
	size_t len;
	int rc;

	if (!n)
		return -EINVAL;
	if (!syncd_replica_writable(r))
		return -EAGAIN;
	for (size_t i = 0; i < n; i++)
		if (syncd_record_check(recs[i], NULL, 0))
			return -EINVAL;
	rc = reserve(r, n);
	if (rc)
		return rc;
	for (size_t i = 0; i < n; i++) {
		recs[i]->hlc = syncd_hlc_now(&r->hlc);
		recs[i]->writer = r->cfg.node_id;
	}
	u.records = recs;
	u.n_records = n;
	len = gwcluster__update__get_packed_size(&u);
	blob = malloc(len + 1);
	if (!blob)
		return -ENOMEM;
	gwcluster__update__pack(&u, blob);
	rc = commit_write(r, recs, n, seq, blob, len, &changed);
	gw_wipe(blob, len);
	free(blob);
	if (rc) {
		store_failed(r, rc, "write");
		return rc;
	}
	r->own_seq = seq;
	if (r->members[r->self].applied == seq - 1)
		r->members[r->self].applied = seq;
	if (r->members[r->self].known < seq)
		r->members[r->self].known = seq;
	r->stats.writes++;
	if (seq_out)
		*seq_out = seq;
	envelope_init(r, &env);
	env.has_seq = true;
	env.seq = seq;
	env.body_case = GWCLUSTER__ENVELOPE__BODY_UPDATE;
	env.update = &u;
	rc = r->io.publish(r->io.arg, &env);
	if (rc) /* committed all the same: members repair it from our log */
		gw_dbg("replica: publish %llu: %s", (unsigned long long)seq, strerror(-rc));
	if (changed)
		notify(r);
	return 0;
}

/* ------------------------------------------------------------------------
 * Queries
 */

bool syncd_replica_synced(const struct syncd_replica *r)
{
	uint64_t now = gw_clock_mono_ns(r->clock);

	if (r->phase != PH_SYNCED)
		return false;
	for (unsigned i = 0; i < r->n; i++)
		if (stale_gap(r, &r->members[i], now))
			return false;
	return true;
}

bool syncd_replica_caught_up(const struct syncd_replica *r)
{
	return r->phase == PH_SYNCED;
}

bool syncd_replica_writable(const struct syncd_replica *r)
{
	return r->synced_once || r->phase == PH_SYNCED;
}

uint64_t syncd_replica_own_seq(const struct syncd_replica *r)
{
	return r->own_seq;
}

uint64_t syncd_replica_applied(const struct syncd_replica *r, uint8_t origin)
{
	int i = r->index[origin];

	if (i < 0)
		return 0;
	return our_applied(r, &r->members[i]);
}

const struct syncd_replica_stats *syncd_replica_stats(const struct syncd_replica *r)
{
	return &r->stats;
}

struct collector {
	Gwcluster__Record **v;
	size_t n, cap;
};

static int collect_peer(void *arg, const struct syncd_row *row)
{
	struct collector *c = arg;
	Gwcluster__Record *rec;

	if (row->key_len != GW_KEY_LEN || row->deleted)
		return 0;
	rec = gwcluster__record__unpack(NULL, row->blob_len, row->blob);
	if (!rec || rec->item_case != GWCLUSTER__RECORD__ITEM_PEER) {
		gw_log_rl(&store_rl, GW_LOG_ERR, "replica: a stored peer record is corrupt");
		if (rec)
			gwcluster__record__free_unpacked(rec, NULL);
		return 0;
	}
	if (c->n == c->cap) {
		size_t cap = c->cap ? 2 * c->cap : 64;
		Gwcluster__Record **v = realloc(c->v, cap * sizeof(*v));

		if (!v) {
			gwcluster__record__free_unpacked(rec, NULL);
			return -ENOMEM;
		}
		c->v = v;
		c->cap = cap;
	}
	c->v[c->n++] = rec;
	return 0;
}

int syncd_replica_peers(struct syncd_replica *r, Gwcluster__Record ***out, size_t *n)
{
	struct collector c = {0};
	int rc = syncd_store_foreach(r->store, true, collect_peer, &c);

	if (rc) {
		syncd_records_free(c.v, c.n);
		return rc;
	}
	*out = c.v;
	*n = c.n;
	return 0;
}

static int get_record(struct syncd_replica *r, const uint8_t *key, size_t len,
		      Gwcluster__Record **out)
{
	struct syncd_row row;
	int rc = syncd_store_get(r->store, key, len, &row);

	if (rc)
		return rc;
	if (row.deleted)
		return -ENOENT;
	*out = gwcluster__record__unpack(NULL, row.blob_len, row.blob);
	return *out ? 0 : -EIO;
}

int syncd_replica_peer(struct syncd_replica *r, const uint8_t key[static 32],
		       Gwcluster__Record **out)
{
	return get_record(r, key, GW_KEY_LEN, out);
}

int syncd_replica_iface(struct syncd_replica *r, Gwcluster__Record **out)
{
	return get_record(r, (const uint8_t *)SYNCD_IFACE_KEY, strlen(SYNCD_IFACE_KEY), out);
}

void syncd_records_free(Gwcluster__Record **recs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		gwcluster__record__free_unpacked(recs[i], NULL);
	free(recs);
}

static void member_info(const struct syncd_replica *r, const struct member *m, uint64_t now,
			struct syncd_member_info *out)
{
	*out = (struct syncd_member_info){
	    .node_id = m->id,
	    .self = m->self,
	    .heard = m->heard,
	    .reachable = m->heard ? reachable(r, m, now) : m->self,
	    .synced = m->self ? syncd_replica_synced(r) : m->synced,
	    .last_seen_ns_ago = m->self || !m->last_seen ? 0 : now - m->last_seen,
	    .applied = our_applied(r, m),
	    .known = m->known > our_applied(r, m) ? m->known : our_applied(r, m),
	    .unconfirmed =
		m->self || !m->vec
		    ? 0
		    : r->own_seq - (m->vec[r->self] < r->own_seq ? m->vec[r->self] : r->own_seq),
	};
}

unsigned syncd_replica_n_members(const struct syncd_replica *r)
{
	return r->n;
}

int syncd_replica_member_info(const struct syncd_replica *r, unsigned i,
			      struct syncd_member_info *out)
{
	if (i >= r->n)
		return -EINVAL;
	member_info(r, &r->members[i], now_ns(r), out);
	return 0;
}

/* One allocation per member: the message, then its vector. */
static Gwcluster__MemberStatus *member_status(struct syncd_replica *r, struct member *m,
					      uint64_t now)
{
	Gwcluster__MemberStatus *ms;
	Gwcluster__OriginSeq *os;
	Gwcluster__OriginSeq **osp;
	bool known = m->self || m->heard;
	struct syncd_member_info mi;

	ms = calloc(1, sizeof(*ms) + r->n * (sizeof(*os) + sizeof(*osp)));
	if (!ms)
		return NULL;
	gwcluster__member_status__init(ms);
	os = (Gwcluster__OriginSeq *)(ms + 1);
	osp = (Gwcluster__OriginSeq **)(os + r->n);
	member_info(r, m, now, &mi);
	ms->node_id = mi.node_id;
	ms->self = mi.self;
	ms->reachable = mi.reachable;
	ms->has_last_seen_ms_ago = m->self || m->last_seen;
	ms->last_seen_ms_ago = mi.last_seen_ns_ago / GW_NSEC_PER_MSEC;
	ms->version = known ? (m->self ? r->version : m->version) : NULL;
	ms->has_synced = known;
	ms->synced = mi.synced;
	ms->has_lag = known;
	ms->lag = mi.unconfirmed;
	ms->has_behind = !m->self;
	ms->behind = m->self ? 0 : mi.known - mi.applied;
	for (unsigned i = 0; known && i < r->n; i++) {
		gwcluster__origin_seq__init(&os[i]);
		os[i].origin = r->members[i].id;
		os[i].seq = m->self ? our_applied(r, &r->members[i]) : m->vec[i];
		osp[i] = &os[i];
	}
	ms->applied = known ? osp : NULL;
	ms->n_applied = known ? r->n : 0;
	return ms;
}

int syncd_replica_status(struct syncd_replica *r, Gwcluster__ClusterStatus *st)
{
	uint64_t now = now_ns(r), live = 0, dead = 0;
	int rc;

	st->node_id = r->cfg.node_id;
	st->synced = syncd_replica_synced(r);
	rc = syncd_store_count(r->store, &live, &dead);
	st->has_peers = rc == 0;
	st->peers = live;
	st->members = calloc(r->n, sizeof(*st->members));
	if (!st->members)
		return -ENOMEM;
	for (unsigned i = 0; i < r->n; i++) {
		st->members[i] = member_status(r, &r->members[i], now);
		if (!st->members[i]) {
			syncd_replica_status_free(st);
			return -ENOMEM;
		}
		st->n_members++;
	}
	return 0;
}

void syncd_replica_status_free(Gwcluster__ClusterStatus *st)
{
	for (size_t i = 0; i < st->n_members; i++)
		free(st->members[i]);
	free(st->members);
	st->members = NULL;
	st->n_members = 0;
}

/* ------------------------------------------------------------------------
 * Life cycle
 */

static int check_config(const struct syncd_replica_config *cfg)
{
	bool seen[256] = {false}, self = false;

	if (!cfg->n_members || cfg->n_members > SYNCD_MAX_MEMBERS || !cfg->heartbeat_ms ||
	    cfg->peer_dead_ms < cfg->heartbeat_ms || !cfg->log_retain)
		return -EINVAL;
	for (unsigned i = 0; i < cfg->n_members; i++) {
		uint8_t id = cfg->members[i];

		if (!id || seen[id])
			return -EINVAL;
		seen[id] = true;
		self |= id == cfg->node_id;
	}
	return self ? 0 : -EINVAL;
}

static int alloc_members(struct syncd_replica *r, const uint8_t *ids)
{
	r->members = calloc(r->n, sizeof(*r->members));
	r->vec_os = calloc(r->n, sizeof(*r->vec_os));
	r->vec_osp = calloc(r->n, sizeof(*r->vec_osp));
	r->tmp_vec = calloc(r->n, sizeof(*r->tmp_vec));
	if (!r->members || !r->vec_os || !r->vec_osp || !r->tmp_vec)
		return -ENOMEM;
	memset(r->index, 0xff, sizeof(r->index));
	for (unsigned i = 0; i < r->n; i++) {
		struct member *m = &r->members[i];

		m->id = ids[i];
		m->self = m->id == r->cfg.node_id;
		m->vec = calloc(r->n, sizeof(*m->vec));
		if (!m->vec)
			return -ENOMEM;
		r->index[m->id] = (int16_t)i;
		if (m->self)
			r->self = i;
		gwcluster__origin_seq__init(&r->vec_os[i]);
		r->vec_osp[i] = &r->vec_os[i];
	}
	return 0;
}

static int meta_or_zero(struct syncd_store *s, const char *name, uint64_t *v)
{
	int rc = syncd_store_meta_get(s, name, v);

	if (rc == -ENOENT) {
		*v = 0;
		rc = 0;
	}
	return rc;
}

static int load_state(struct syncd_replica *r)
{
	uint64_t applied[SYNCD_STORE_MAX_ORIGIN + 1], synced, max_hlc;
	int rc;

	rc = syncd_store_load_applied(r->store, applied);
	rc = rc ? rc : meta_or_zero(r->store, "own_seq", &r->own_seq);
	rc = rc ? rc : meta_or_zero(r->store, "synced", &synced);
	rc = rc ? rc : meta_or_zero(r->store, "hlc_ceiling", &r->hlc_ceiling);
	rc = rc ? rc : syncd_store_max_hlc(r->store, &max_hlc);
	if (rc)
		return rc;
	r->synced_once = synced != 0;
	for (unsigned i = 0; i < r->n; i++) {
		struct member *m = &r->members[i];

		m->applied = applied[m->id];
		m->known = m->self && r->own_seq > m->applied ? r->own_seq : m->applied;
		m->chase_target = m->known;
	}
	syncd_hlc_init(&r->hlc, r->clock);
	syncd_hlc_observe(&r->hlc, max_hlc > r->hlc_ceiling ? max_hlc : r->hlc_ceiling);
	return 0;
}

int syncd_replica_open(struct syncd_replica **out, const struct syncd_replica_config *cfg,
		       struct syncd_store *store, const struct gw_clock *clock,
		       const struct syncd_replica_io *io)
{
	struct syncd_replica *r;
	int rc;

	*out = NULL;
	if (check_config(cfg) || !io->publish || !io->request || !io->reply)
		return -EINVAL;
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->cfg = *cfg;
	r->cfg.members = NULL; /* the caller's array is copied into members[] */
	r->io = *io;
	r->store = store;
	r->clock = clock;
	r->n = cfg->n_members;
	copy_version(r->version, cfg->version ? cfg->version : "");
	rc = alloc_members(r, cfg->members);
	if (!rc)
		rc = load_state(r);
	if (rc) {
		syncd_replica_close(r);
		return rc;
	}
	r->started = now_ns(r);
	r->last_gc = r->started;
	*out = r;
	return 0;
}

void syncd_replica_close(struct syncd_replica *r)
{
	if (!r)
		return;
	for (unsigned i = 0; r->members && i < r->n; i++) {
		struct member *m = &r->members[i];

		merge_free(m);
		serve_end(m);
		for (unsigned s = 0; m->gap && s < SYNCD_GAP_SLOTS; s++)
			slot_clear(&m->gap[s]);
		free(m->gap);
		free(m->vec);
	}
	free(r->members);
	free(r->vec_os);
	free(r->vec_osp);
	free(r->tmp_vec);
	free(r);
}
