// SPDX-License-Identifier: MIT
/*
 * Control server: CtlRequest handling against the replica, and the REP
 * socket that carries it. Requests are untrusted input from a local root
 * process: everything is checked, every request is answered.
 */
#include "control.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <zmq.h>

#include "gw/crypto.h"
#include "gw/key.h"
#include "gw/log.h"

enum {
	SAFETY_DRAIN_MS = 100, /* ZMQ_FD is edge-triggered: drain on a timer too */
	DRAIN_BATCH = 64,      /* requests per drain before yielding to the loop */
};

/* A response being built, with everything it points to. */
struct reply {
	Gwcluster__CtlResponse r;
	char msg[512];
	Gwcluster__Record **live;
	size_t n_live;
	Gwcluster__PeerEntry *entries;
	Gwcluster__PeerEntry **entry_ptrs;
	Gwcluster__ClusterStatus st;
	bool have_status;
	char (*addrs)[72];
	Gwcluster__ApplyDiff diff;
	ProtobufCBinaryData *keys;
	Gwcluster__Record *single;
};

static struct gw_ratelimit ctl_rl = GW_RATELIMIT_INIT(GW_NSEC_PER_SEC, 5);

__attribute__((format(printf, 3, 4))) static void set_error(struct reply *rp, int err,
							    const char *fmt, ...)
{
	va_list ap;

	rp->r.error = err;
	va_start(ap, fmt);
	vsnprintf(rp->msg, sizeof(rp->msg), fmt, ap);
	va_end(ap);
	rp->r.message = rp->msg;
}

static void key_text(char out[static GW_KEY_B64_LEN + 1], const ProtobufCBinaryData *key)
{
	if (key->len == GW_KEY_LEN && key->data)
		gw_key_to_base64(out, key->data);
	else
		snprintf(out, GW_KEY_B64_LEN + 1, "(%zu-byte key)", key->len);
}

/* Answers a failed syncd_replica_write(). */
static void write_failed(struct reply *rp, int rc)
{
	if (rc == -EAGAIN)
		set_error(rp, rc, "this node has not caught up with the cluster yet; retry later");
	else if (rc == -EINVAL)
		set_error(rp, rc, "invalid record");
	else
		set_error(rp, rc, "not committed: %s", strerror(-rc));
}

static void wrote(struct reply *rp, const char *what, uint64_t seq)
{
	snprintf(rp->msg, sizeof(rp->msg), "%s (committed as update %llu)", what,
		 (unsigned long long)seq);
	rp->r.message = rp->msg;
}

static int cmp_str_ptr(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool in_sorted(char *const *v, size_t n, const char *s)
{
	return n && bsearch(&s, v, n, sizeof(*v), cmp_str_ptr);
}

/* "KEY" or "KEY (NAME)" of a stored peer, for messages. */
static void peer_text(char *out, size_t len, const Gwcluster__PeerConfig *p)
{
	char key[GW_KEY_B64_LEN + 1];

	key_text(key, &p->public_key);
	if (p->meta && p->meta->name && *p->meta->name)
		snprintf(out, len, "%s (%s)", key, p->meta->name);
	else
		snprintf(out, len, "%s", key);
}

/* A live peer written again without the prefixes another peer takes. */
struct moved_peer {
	Gwcluster__PeerConfig copy;
	char *taken[4]; /* the first prefixes taken, for the message */
	size_t n_taken;
};

/*
 * The live peers (rp->live) other than p holding an allowed IP that p gains
 * (has and cur, its stored record, has not): with move each becomes a copy
 * without those prefixes in moved[0..*n_moved) (the copies point into
 * rp->live; their allowed_ips arrays are allocated); without, the first such
 * prefix is refused (-EEXIST, the reason in rp). Exact prefixes only:
 * overlapping ones of other lengths are routed by longest match.
 */
static int take_allowed_ips(struct reply *rp, const Gwcluster__PeerConfig *p,
			    const Gwcluster__PeerConfig *cur, bool move, struct moved_peer **moved,
			    size_t *n_moved)
{
	char **gained = calloc(p->n_allowed_ips + 1, sizeof(*gained));
	char **had = calloc((cur ? cur->n_allowed_ips : 0) + 1, sizeof(*had));
	size_t n_gained = 0, n_had = cur ? cur->n_allowed_ips : 0;
	int rc = 0;

	*moved = NULL;
	*n_moved = 0;
	if (!gained || !had) {
		rc = -ENOMEM;
		goto out;
	}
	if (n_had)
		memcpy(had, cur->allowed_ips, n_had * sizeof(*had));
	qsort(had, n_had, sizeof(*had), cmp_str_ptr);
	for (size_t i = 0; i < p->n_allowed_ips; i++)
		if (!in_sorted(had, n_had, p->allowed_ips[i]))
			gained[n_gained++] = p->allowed_ips[i];
	qsort(gained, n_gained, sizeof(*gained), cmp_str_ptr);
	for (size_t j = 0; n_gained && j < rp->n_live; j++) {
		const Gwcluster__PeerConfig *o = rp->live[j]->peer;
		struct moved_peer *m, *v;

		if (!o || !memcmp(o->public_key.data, p->public_key.data, GW_KEY_LEN))
			continue;
		for (size_t i = 0; i < o->n_allowed_ips; i++) {
			char other[GW_KEY_B64_LEN + 80];

			if (!in_sorted(gained, n_gained, o->allowed_ips[i]))
				continue;
			if (move)
				break;
			peer_text(other, sizeof(other), o);
			set_error(rp, -EEXIST,
				  "allowed IP %s is already peer %s's; remove it there first, or "
				  "pass --move-allowed-ips to move it",
				  o->allowed_ips[i], other);
			rc = -EEXIST;
			goto out;
		}
		if (!move)
			continue;
		/* o keeps the prefixes p does not gain, in their (canonical) order. */
		m = NULL;
		for (size_t i = 0; i < o->n_allowed_ips; i++) {
			if (!in_sorted(gained, n_gained, o->allowed_ips[i]))
				continue;
			if (!m) {
				v = realloc(*moved, (*n_moved + 1) * sizeof(*v));
				if (!v) {
					rc = -ENOMEM;
					goto out;
				}
				*moved = v;
				m = &v[*n_moved];
				memset(m, 0, sizeof(*m));
				m->copy = *o;
				m->copy.n_allowed_ips = 0;
				m->copy.allowed_ips = calloc(o->n_allowed_ips, sizeof(char *));
				if (!m->copy.allowed_ips) {
					rc = -ENOMEM;
					goto out;
				}
				(*n_moved)++;
			}
			if (m->n_taken < sizeof(m->taken) / sizeof(m->taken[0]))
				m->taken[m->n_taken] = o->allowed_ips[i];
			m->n_taken++;
		}
		for (size_t i = 0; m && i < o->n_allowed_ips; i++)
			if (!in_sorted(gained, n_gained, o->allowed_ips[i]))
				m->copy.allowed_ips[m->copy.n_allowed_ips++] = o->allowed_ips[i];
	}
out:
	free(gained);
	free(had);
	return rc;
}

static void moved_free(struct moved_peer *m, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(m[i].copy.allowed_ips);
	free(m);
}

/* "; moved A, B from KEY (NAME)" for each peer that lost prefixes, into buf. */
static void moved_text(char *buf, size_t len, const struct moved_peer *m, size_t n)
{
	size_t off = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < n && off < len; i++) {
		char other[GW_KEY_B64_LEN + 80];

		peer_text(other, sizeof(other), &m[i].copy);
		off += (size_t)snprintf(buf + off, len - off, "; moved");
		for (size_t k = 0; k < m[i].n_taken && k < 4 && off < len; k++)
			off += (size_t)snprintf(buf + off, len - off, "%s %s", k ? "," : "",
						m[i].taken[k]);
		if (m[i].n_taken > 4 && off < len)
			off += (size_t)snprintf(buf + off, len - off, " and %zu more",
						m[i].n_taken - 4);
		if (off < len)
			off += (size_t)snprintf(buf + off, len - off, " from %s", other);
	}
}

static void do_upsert(const struct syncd_control_ctx *ctx, struct reply *rp,
		      Gwcluster__PeerConfig *p, bool move)
{
	Gwcluster__Record *cur = NULL, **ptrs = NULL, *recs = NULL;
	struct moved_peer *moved = NULL;
	size_t n_moved = 0;
	char why[200], what[400];
	uint64_t seq;
	bool exists;
	int rc;

	rc = syncd_peer_canonicalize(p, why, sizeof(why));
	if (rc) {
		set_error(rp, rc, "%s", rc == -EINVAL ? why : strerror(-rc));
		return;
	}
	rc = syncd_replica_peer(ctx->replica, p->public_key.data, &cur);
	if (rc && rc != -ENOENT) {
		set_error(rp, rc, "cannot read the store: %s", strerror(-rc));
		return;
	}
	exists = rc == 0;
	if (exists && syncd_peer_equal(cur->peer, p)) {
		gwcluster__record__free_unpacked(cur, NULL);
		set_error(rp, 0, "unchanged");
		return;
	}
	/* An allowed IP is one peer's: one it gains may not be another's (unless moved). */
	rc = syncd_replica_peers(ctx->replica, &rp->live, &rp->n_live);
	if (rc) {
		set_error(rp, rc, "cannot read the store: %s", strerror(-rc));
		goto out;
	}
	rc = take_allowed_ips(rp, p, exists ? cur->peer : NULL, move, &moved, &n_moved);
	if (rc) {
		if (rc != -EEXIST)
			set_error(rp, rc, "cannot check the allowed IPs: %s", strerror(-rc));
		goto out;
	}
	recs = calloc(1 + n_moved, sizeof(*recs));
	ptrs = calloc(1 + n_moved, sizeof(*ptrs));
	if (!recs || !ptrs) {
		set_error(rp, -ENOMEM, "%s", strerror(ENOMEM));
		goto out;
	}
	for (size_t i = 0; i <= n_moved; i++) {
		gwcluster__record__init(&recs[i]);
		recs[i].item_case = GWCLUSTER__RECORD__ITEM_PEER;
		recs[i].peer = i ? &moved[i - 1].copy : p;
		ptrs[i] = &recs[i];
	}
	/* One update: the peer and the ones it took prefixes from, atomically. */
	rc = syncd_replica_write(ctx->replica, ptrs, 1 + n_moved, &seq);
	if (rc) {
		write_failed(rp, rc);
		goto out;
	}
	snprintf(what, sizeof(what), "%s", exists ? "updated" : "added");
	moved_text(what + strlen(what), sizeof(what) - strlen(what), moved, n_moved);
	wrote(rp, what, seq);
out:
	free(recs);
	free(ptrs);
	moved_free(moved, n_moved);
	if (cur)
		gwcluster__record__free_unpacked(cur, NULL);
}

static void do_remove(const struct syncd_control_ctx *ctx, struct reply *rp,
		      Gwcluster__PeerTombstone *t)
{
	Gwcluster__Record rec = GWCLUSTER__RECORD__INIT, *recs[1] = {&rec}, *cur;
	char key[GW_KEY_B64_LEN + 1];
	uint64_t seq;
	int rc;

	key_text(key, &t->public_key);
	if (t->public_key.len != GW_KEY_LEN) {
		set_error(rp, -EINVAL, "public key: must be 32 bytes");
		return;
	}
	rc = syncd_replica_peer(ctx->replica, t->public_key.data, &cur);
	if (rc) {
		set_error(rp, rc, rc == -ENOENT ? "no peer %s" : "cannot read the store (%s)",
			  rc == -ENOENT ? key : strerror(-rc));
		return;
	}
	gwcluster__record__free_unpacked(cur, NULL);
	rec.item_case = GWCLUSTER__RECORD__ITEM_PEER_DELETED;
	rec.peer_deleted = t;
	rc = syncd_replica_write(ctx->replica, recs, 1, &seq);
	if (rc)
		write_failed(rp, rc);
	else
		wrote(rp, "removed", seq);
}

/* rp->live[0..n_live) become the response's peers. */
static int entries_from_live(struct reply *rp)
{
	rp->entries = calloc(rp->n_live ? rp->n_live : 1, sizeof(*rp->entries));
	rp->entry_ptrs = calloc(rp->n_live ? rp->n_live : 1, sizeof(*rp->entry_ptrs));
	if (!rp->entries || !rp->entry_ptrs)
		return -ENOMEM;
	for (size_t i = 0; i < rp->n_live; i++) {
		gwcluster__peer_entry__init(&rp->entries[i]);
		rp->entries[i].peer = rp->live[i]->peer;
		rp->entries[i].hlc = rp->live[i]->hlc;
		rp->entries[i].writer = rp->live[i]->writer;
		rp->entry_ptrs[i] = &rp->entries[i];
	}
	rp->r.peers = rp->entry_ptrs;
	rp->r.n_peers = rp->n_live;
	return 0;
}

static void do_list(const struct syncd_control_ctx *ctx, struct reply *rp)
{
	int rc = syncd_replica_peers(ctx->replica, &rp->live, &rp->n_live);

	if (!rc)
		rc = entries_from_live(rp);
	if (rc)
		set_error(rp, rc, "cannot list peers: %s", strerror(-rc));
}

static void do_show(const struct syncd_control_ctx *ctx, struct reply *rp,
		    const ProtobufCBinaryData *key)
{
	char text[GW_KEY_B64_LEN + 1];
	int rc;

	key_text(text, key);
	if (key->len != GW_KEY_LEN) {
		set_error(rp, -EINVAL, "public key: must be 32 bytes");
		return;
	}
	rc = syncd_replica_peer(ctx->replica, key->data, &rp->single);
	if (rc) {
		set_error(rp, rc, rc == -ENOENT ? "no peer %s" : "cannot read the store (%s)",
			  rc == -ENOENT ? text : strerror(-rc));
		return;
	}
	rp->live = &rp->single;
	rp->n_live = 1;
	rc = entries_from_live(rp);
	rp->live = NULL;
	rp->n_live = 0;
	if (rc)
		set_error(rp, rc, "%s", strerror(-rc));
}

static void do_status(const struct syncd_control_ctx *ctx, struct reply *rp)
{
	int rc;

	gwcluster__cluster_status__init(&rp->st);
	rc = syncd_replica_status(ctx->replica, &rp->st);
	if (rc) {
		set_error(rp, rc, "status: %s", strerror(-rc));
		return;
	}
	rp->have_status = true;
	rp->st.cluster = (char *)ctx->cfg->cluster;
	rp->addrs = calloc(rp->st.n_members ? rp->st.n_members : 1, sizeof(*rp->addrs));
	if (!rp->addrs) {
		set_error(rp, -ENOMEM, "status: %s", strerror(ENOMEM));
		return;
	}
	for (size_t i = 0; i < rp->st.n_members; i++) {
		const struct syncd_member *m =
		    syncd_config_member(ctx->cfg, (uint8_t)rp->st.members[i]->node_id);

		if (!m)
			continue;
		snprintf(rp->addrs[i], sizeof(rp->addrs[i]),
			 strchr(m->host, ':') ? "[%s]:%u" : "%s:%u", m->host, m->port);
		rp->st.members[i]->address = rp->addrs[i];
	}
	if (ctx->status_extra)
		ctx->status_extra(ctx->arg, &rp->st);
	rp->r.status = &rp->st;
}

/* CLAIM and RELEASE name configured peers only: gwd knows no others. */
static int role_keys_known(const struct syncd_control_ctx *ctx, struct reply *rp,
			   const Gwcluster__RoleRequest *q)
{
	char text[GW_KEY_B64_LEN + 1];

	for (size_t i = 0; i < q->n_public_keys; i++) {
		Gwcluster__Record *rec = NULL;
		int rc;

		if (q->public_keys[i].len != GW_KEY_LEN) {
			set_error(rp, -EINVAL, "public key %zu: must be 32 bytes", i + 1);
			return -EINVAL;
		}
		rc = syncd_replica_peer(ctx->replica, q->public_keys[i].data, &rec);
		if (rec)
			gwcluster__record__free_unpacked(rec, NULL);
		if (rc) {
			key_text(text, &q->public_keys[i]);
			set_error(rp, rc,
				  rc == -ENOENT ? "no peer %s" : "cannot read the store (%s)",
				  rc == -ENOENT ? text : strerror(-rc));
			return rc;
		}
	}
	return 0;
}

static void do_role(const struct syncd_control_ctx *ctx, struct reply *rp,
		    const Gwcluster__RoleRequest *q)
{
	const Gwcluster__SessionSummary *sum = NULL;
	int rc;

	if (!ctx->role) {
		set_error(rp, -EOPNOTSUPP, "the session relay is off (SessionSocket = off)");
		return;
	}
	if ((q->action == GWCLUSTER__ROLE_REQUEST__ACTION__CLAIM ||
	     q->action == GWCLUSTER__ROLE_REQUEST__ACTION__RELEASE) &&
	    role_keys_known(ctx, rp, q))
		return;
	rc = ctx->role(ctx->arg, q, &sum, rp->msg, sizeof(rp->msg));
	rp->r.error = rc;
	rp->r.message = rp->msg[0] ? rp->msg : NULL;
	rp->r.role = (Gwcluster__SessionSummary *)sum;
}

static int cmp_key(const uint8_t *a, const uint8_t *b)
{
	return memcmp(a, b, GW_KEY_LEN);
}

static int cmp_peer_ptr(const void *pa, const void *pb)
{
	const Gwcluster__PeerConfig *a = *(Gwcluster__PeerConfig *const *)pa;
	const Gwcluster__PeerConfig *b = *(Gwcluster__PeerConfig *const *)pb;

	return cmp_key(a->public_key.data, b->public_key.data);
}

/* Checks, canonicalizes and sorts the desired peers; rejects duplicates. */
struct aip_ref {
	const char *aip;
	size_t peer;
};

static int cmp_aip_ref(const void *a, const void *b)
{
	const struct aip_ref *x = a, *y = b;
	int c = strcmp(x->aip, y->aip);

	return c ? c : (x->peer > y->peer) - (x->peer < y->peer);
}

/* The whole set: no allowed IP in two of its peers (gwctl apply checks the file too). */
static int apply_one_owner(struct reply *rp, const Gwcluster__ApplyRequest *a)
{
	struct aip_ref *v;
	size_t n = 0, k = 0;
	int rc = 0;

	for (size_t i = 0; i < a->n_peers; i++)
		n += a->peers[i]->n_allowed_ips;
	if (n < 2)
		return 0;
	v = calloc(n, sizeof(*v));
	if (!v) {
		set_error(rp, -ENOMEM, "%s", strerror(ENOMEM));
		return -ENOMEM;
	}
	for (size_t i = 0; i < a->n_peers; i++)
		for (size_t j = 0; j < a->peers[i]->n_allowed_ips; j++)
			v[k++] = (struct aip_ref){a->peers[i]->allowed_ips[j], i};
	qsort(v, n, sizeof(*v), cmp_aip_ref);
	for (size_t i = 1; i < n && !rc; i++) {
		char k1[GW_KEY_B64_LEN + 80], k2[GW_KEY_B64_LEN + 80];

		if (strcmp(v[i].aip, v[i - 1].aip))
			continue;
		peer_text(k1, sizeof(k1), a->peers[v[i - 1].peer]);
		peer_text(k2, sizeof(k2), a->peers[v[i].peer]);
		set_error(rp, -EINVAL, "allowed IP %s is listed by peers %s and %s", v[i].aip, k1,
			  k2);
		rc = -EINVAL;
	}
	free(v);
	return rc;
}

static int apply_prepare(struct reply *rp, Gwcluster__ApplyRequest *a)
{
	char why[200], key[GW_KEY_B64_LEN + 1];

	for (size_t i = 0; i < a->n_peers; i++) {
		int rc = syncd_peer_canonicalize(a->peers[i], why, sizeof(why));

		if (rc) {
			key_text(key, &a->peers[i]->public_key);
			set_error(rp, rc, "peer %zu (%s): %s", i + 1, key,
				  rc == -EINVAL ? why : strerror(-rc));
			return rc;
		}
	}
	if (a->n_peers > 1)
		qsort(a->peers, a->n_peers, sizeof(*a->peers), cmp_peer_ptr);
	for (size_t i = 1; i < a->n_peers; i++)
		if (!cmp_key(a->peers[i]->public_key.data, a->peers[i - 1]->public_key.data)) {
			key_text(key, &a->peers[i]->public_key);
			set_error(rp, -EINVAL, "peer %s is listed twice", key);
			return -EINVAL;
		}
	return apply_one_owner(rp, a);
}

/* Fills rp->diff from the sorted desired peers and the sorted live ones. */
static int apply_diff(struct reply *rp, Gwcluster__ApplyRequest *a)
{
	size_t i = 0, j = 0, nk = a->n_peers + rp->n_live;
	ProtobufCBinaryData *added, *changed, *removed;

	rp->keys = calloc(3 * (nk ? nk : 1), sizeof(*rp->keys));
	if (!rp->keys)
		return -ENOMEM;
	added = rp->keys;
	changed = added + nk;
	removed = changed + nk;
	gwcluster__apply_diff__init(&rp->diff);
	while (i < a->n_peers || j < rp->n_live) {
		const Gwcluster__PeerConfig *d = i < a->n_peers ? a->peers[i] : NULL;
		const Gwcluster__PeerConfig *l = j < rp->n_live ? rp->live[j]->peer : NULL;
		int c = !d ? 1 : !l ? -1 : cmp_key(d->public_key.data, l->public_key.data);

		if (c < 0)
			added[rp->diff.n_added++] = d->public_key;
		else if (c > 0)
			removed[rp->diff.n_removed++] = l->public_key;
		else if (!syncd_peer_equal(d, l))
			changed[rp->diff.n_changed++] = d->public_key;
		i += c <= 0;
		j += c >= 0;
	}
	rp->diff.added = added;
	rp->diff.changed = changed;
	rp->diff.removed = removed;
	rp->r.diff = &rp->diff;
	return 0;
}

static Gwcluster__PeerConfig *find_desired(Gwcluster__ApplyRequest *a, const uint8_t *key)
{
	Gwcluster__PeerConfig probe = GWCLUSTER__PEER_CONFIG__INIT, *pp = &probe, **hit;

	probe.public_key.data = (uint8_t *)key;
	probe.public_key.len = GW_KEY_LEN;
	hit = bsearch(&pp, a->peers, a->n_peers, sizeof(*a->peers), cmp_peer_ptr);
	return hit ? *hit : NULL;
}

/* The whole diff as one Update: upserts for added and changed, tombstones for removed. */
static int apply_write(const struct syncd_control_ctx *ctx, struct reply *rp,
		       Gwcluster__ApplyRequest *a, uint64_t *seq)
{
	size_t n = rp->diff.n_added + rp->diff.n_changed + rp->diff.n_removed, k = 0;
	Gwcluster__Record *recs = calloc(n, sizeof(*recs)), **ptrs = calloc(n, sizeof(*ptrs));
	Gwcluster__PeerTombstone *tombs = calloc(rp->diff.n_removed + 1, sizeof(*tombs));
	int rc = -ENOMEM;

	if (!recs || !ptrs || !tombs)
		goto out;
	for (size_t i = 0; i < rp->diff.n_added + rp->diff.n_changed; i++, k++) {
		const ProtobufCBinaryData *key = i < rp->diff.n_added
						     ? &rp->diff.added[i]
						     : &rp->diff.changed[i - rp->diff.n_added];

		gwcluster__record__init(&recs[k]);
		recs[k].item_case = GWCLUSTER__RECORD__ITEM_PEER;
		recs[k].peer = find_desired(a, key->data);
		ptrs[k] = &recs[k];
	}
	for (size_t i = 0; i < rp->diff.n_removed; i++, k++) {
		gwcluster__peer_tombstone__init(&tombs[i]);
		tombs[i].public_key = rp->diff.removed[i];
		gwcluster__record__init(&recs[k]);
		recs[k].item_case = GWCLUSTER__RECORD__ITEM_PEER_DELETED;
		recs[k].peer_deleted = &tombs[i];
		ptrs[k] = &recs[k];
	}
	rc = syncd_replica_write(ctx->replica, ptrs, n, seq);
out:
	free(recs);
	free(ptrs);
	free(tombs);
	return rc;
}

static void do_apply(const struct syncd_control_ctx *ctx, struct reply *rp,
		     Gwcluster__ApplyRequest *a)
{
	uint64_t seq;
	size_t n;
	int rc;

	if (apply_prepare(rp, a))
		return;
	rc = syncd_replica_peers(ctx->replica, &rp->live, &rp->n_live);
	if (!rc)
		rc = apply_diff(rp, a);
	if (rc) {
		set_error(rp, rc, "cannot compute the diff: %s", strerror(-rc));
		return;
	}
	n = rp->diff.n_added + rp->diff.n_changed + rp->diff.n_removed;
	snprintf(rp->msg, sizeof(rp->msg), "%zu added, %zu changed, %zu removed%s",
		 rp->diff.n_added, rp->diff.n_changed, rp->diff.n_removed,
		 a->dry_run ? " (dry run)" : "");
	rp->r.message = rp->msg;
	if (a->dry_run || !n)
		return;
	rc = apply_write(ctx, rp, a, &seq);
	if (rc) {
		write_failed(rp, rc);
		return;
	}
	snprintf(rp->msg, sizeof(rp->msg),
		 "%zu added, %zu changed, %zu removed (committed as "
		 "update %llu)",
		 rp->diff.n_added, rp->diff.n_changed, rp->diff.n_removed, (unsigned long long)seq);
}

static void dispatch(const struct syncd_control_ctx *ctx, struct reply *rp,
		     Gwcluster__CtlRequest *q)
{
	switch (q->op_case) {
	case GWCLUSTER__CTL_REQUEST__OP_PEER_UPSERT:
		do_upsert(ctx, rp, q->peer_upsert, q->has_move_allowed_ips && q->move_allowed_ips);
		break;
	case GWCLUSTER__CTL_REQUEST__OP_PEER_REMOVE:
		do_remove(ctx, rp, q->peer_remove);
		break;
	case GWCLUSTER__CTL_REQUEST__OP_PEER_LIST:
		do_list(ctx, rp);
		break;
	case GWCLUSTER__CTL_REQUEST__OP_PEER_SHOW:
		do_show(ctx, rp, &q->peer_show);
		break;
	case GWCLUSTER__CTL_REQUEST__OP_STATUS:
		do_status(ctx, rp);
		break;
	case GWCLUSTER__CTL_REQUEST__OP_APPLY:
		do_apply(ctx, rp, q->apply);
		break;
	case GWCLUSTER__CTL_REQUEST__OP_ROLE:
		do_role(ctx, rp, q->role);
		break;
	default:
		set_error(rp, -EINVAL, "request without an operation");
	}
}

static void wipe_psk(Gwcluster__PeerConfig *p)
{
	if (p && p->preshared_key.data)
		gw_wipe(p->preshared_key.data, p->preshared_key.len);
}

/* Preshared keys in the request are wiped before it is freed. */
static void free_request(Gwcluster__CtlRequest *q)
{
	if (q->op_case == GWCLUSTER__CTL_REQUEST__OP_PEER_UPSERT)
		wipe_psk(q->peer_upsert);
	if (q->op_case == GWCLUSTER__CTL_REQUEST__OP_APPLY)
		for (size_t i = 0; i < q->apply->n_peers; i++)
			wipe_psk(q->apply->peers[i]);
	gwcluster__ctl_request__free_unpacked(q, NULL);
}

static void free_reply(struct reply *rp)
{
	syncd_records_free(rp->live, rp->n_live);
	if (rp->single)
		gwcluster__record__free_unpacked(rp->single, NULL);
	free(rp->entries);
	free(rp->entry_ptrs);
	if (rp->have_status)
		syncd_replica_status_free(&rp->st);
	free(rp->addrs);
	free(rp->keys);
}

static int pack_reply(const Gwcluster__CtlResponse *r, uint8_t **out, size_t *len)
{
	*len = gwcluster__ctl_response__get_packed_size(r);
	*out = malloc(*len + 1);
	if (!*out)
		return -ENOMEM;
	gwcluster__ctl_response__pack(r, *out);
	return 0;
}

int syncd_control_handle(const struct syncd_control_ctx *ctx, const uint8_t *req, size_t len,
			 uint8_t **resp, size_t *resp_len)
{
	struct reply *rp = calloc(1, sizeof(*rp));
	Gwcluster__CtlRequest *q;
	int rc;

	if (!rp)
		return -ENOMEM;
	gwcluster__ctl_response__init(&rp->r);
	q = gwcluster__ctl_request__unpack(NULL, len, req);
	if (!q)
		set_error(rp, -EBADMSG, "malformed request");
	else if (q->version != SYNCD_PROTO_VERSION)
		set_error(rp, -EPROTONOSUPPORT,
			  "control protocol version %u is not supported (%d is)", q->version,
			  SYNCD_PROTO_VERSION);
	else
		dispatch(ctx, rp, q);
	if (rp->r.error)
		gw_dbg("control: request refused: %s", rp->msg);
	rc = pack_reply(&rp->r, resp, resp_len);
	if (q)
		free_request(q);
	free_reply(rp);
	free(rp);
	return rc;
}

/* ------------------------------------------------------------------------
 * The socket
 */

struct syncd_control {
	void *zctx, *sock;
	int fd;
	struct gw_loop *loop;
	struct gw_timer timer;
	struct syncd_control_ctx ctx;
	bool bound; /* the socket file is ours to remove */
	char path[SYNCD_CTL_PATH_MAX + 1];
};

/* Answers without allocating: for when not even a response could be built. */
static void send_oom(struct syncd_control *c)
{
	Gwcluster__CtlResponse r = GWCLUSTER__CTL_RESPONSE__INIT;
	uint8_t buf[16];

	r.error = -ENOMEM;
	zmq_send(c->sock, buf, gwcluster__ctl_response__pack(&r, buf), ZMQ_DONTWAIT);
}

/* Receives every frame of one message; a request must be a single frame. */
static int recv_request(struct syncd_control *c, zmq_msg_t *msg)
{
	bool more, extra = false;

	if (zmq_msg_recv(msg, c->sock, ZMQ_DONTWAIT) < 0)
		return -errno;
	more = zmq_msg_more(msg);
	while (more) {
		zmq_msg_t part;

		extra = true;
		zmq_msg_init(&part);
		more = zmq_msg_recv(&part, c->sock, ZMQ_DONTWAIT) >= 0 && zmq_msg_more(&part);
		zmq_msg_close(&part);
	}
	return extra ? -EBADMSG : 0;
}

static void serve_one(struct syncd_control *c)
{
	Gwcluster__CtlResponse bad = GWCLUSTER__CTL_RESPONSE__INIT;
	uint8_t *resp = NULL;
	size_t len = 0;
	zmq_msg_t msg;
	int rc;

	zmq_msg_init(&msg);
	rc = recv_request(c, &msg);
	if (rc == -EAGAIN) {
		zmq_msg_close(&msg);
		return;
	}
	if (rc) {
		bad.error = -EBADMSG;
		bad.message = rc == -EBADMSG ? "a request is one frame" : "receive failed";
		rc = pack_reply(&bad, &resp, &len);
	} else {
		rc = syncd_control_handle(&c->ctx, zmq_msg_data(&msg), zmq_msg_size(&msg), &resp,
					  &len);
	}
	gw_wipe(zmq_msg_data(&msg), zmq_msg_size(&msg)); /* may hold preshared keys */
	zmq_msg_close(&msg);
	if (rc) {
		send_oom(c);
		return;
	}
	if (zmq_send(c->sock, resp, len, ZMQ_DONTWAIT) < 0)
		gw_log_rl(&ctl_rl, GW_LOG_WARN, "control: send: %s", zmq_strerror(errno));
	gw_wipe(resp, len);
	free(resp);
}

static void drain(struct syncd_control *c)
{
	for (int i = 0; i < DRAIN_BATCH; i++) {
		int events = 0;
		size_t sz = sizeof(events);

		if (zmq_getsockopt(c->sock, ZMQ_EVENTS, &events, &sz) || !(events & ZMQ_POLLIN))
			break;
		serve_one(c);
	}
}

static void on_fd(struct gw_loop *loop, int fd, uint32_t events, void *arg)
{
	(void)loop;
	(void)fd;
	(void)events;
	drain(arg);
}

static void on_timer(struct gw_loop *loop, struct gw_timer *t, void *arg)
{
	drain(arg);
	gw_timer_arm_in(loop, t, SAFETY_DRAIN_MS * GW_NSEC_PER_MSEC);
}

static int mkdir_parents(const char *path)
{
	char dir[SYNCD_CTL_PATH_MAX + 1];
	char *slash;

	if (strlen(path) >= sizeof(dir))
		return -ENAMETOOLONG;
	strcpy(dir, path);
	slash = strrchr(dir, '/');
	if (!slash || slash == dir)
		return 0;
	*slash = '\0';
	for (char *p = dir + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(dir, 0755) && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(dir, 0755) && errno != EEXIST)
		return -errno;
	return 0;
}

/* True when some process accepts connections on the unix socket at path. */
static bool socket_alive(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	bool alive;

	if (fd < 0)
		return false;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	alive = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
	close(fd);
	return alive;
}

static int prepare_path(const char *path)
{
	struct stat st;
	int rc = mkdir_parents(path);

	if (rc)
		return rc;
	if (lstat(path, &st)) {
		return errno == ENOENT ? 0 : -errno;
	}
	if (!S_ISSOCK(st.st_mode))
		return -EEXIST;
	if (socket_alive(path))
		return -EADDRINUSE;
	gw_info("control: removing the stale socket %s", path);
	return unlink(path) ? -errno : 0;
}

static int bind_socket(struct syncd_control *c)
{
	char endpoint[sizeof("ipc://") + SYNCD_CTL_PATH_MAX];
	int64_t maxmsg = SYNCD_MAX_MESSAGE;
	int zero = 0, rc;
	size_t sz = sizeof(c->fd);
	mode_t old;

	c->zctx = zmq_ctx_new();
	if (!c->zctx)
		return -errno;
	c->sock = zmq_socket(c->zctx, ZMQ_REP);
	if (!c->sock)
		return -errno;
	if (zmq_setsockopt(c->sock, ZMQ_LINGER, &zero, sizeof(zero)) ||
	    zmq_setsockopt(c->sock, ZMQ_MAXMSGSIZE, &maxmsg, sizeof(maxmsg)))
		return -errno;
	snprintf(endpoint, sizeof(endpoint), "ipc://%s", c->path);
	/* Created 0600 from the start: no window in which others could connect. */
	old = umask(0177);
	rc = zmq_bind(c->sock, endpoint);
	umask(old);
	if (rc)
		return -errno;
	c->bound = true;
	if (chmod(c->path, 0600))
		return -errno;
	if (zmq_getsockopt(c->sock, ZMQ_FD, &c->fd, &sz))
		return -errno;
	return 0;
}

int syncd_control_open(struct syncd_control **out, const char *path, struct gw_loop *loop,
		       const struct syncd_control_ctx *ctx)
{
	struct syncd_control *c;
	int rc;

	*out = NULL;
	if (strlen(path) > SYNCD_CTL_PATH_MAX || path[0] != '/')
		return -EINVAL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->fd = -1;
	c->loop = loop;
	c->ctx = *ctx;
	strcpy(c->path, path);
	gw_timer_init(&c->timer, on_timer, c);
	rc = prepare_path(path);
	if (!rc)
		rc = bind_socket(c);
	if (!rc)
		rc = gw_loop_add_fd(loop, c->fd, EPOLLIN, on_fd, c);
	if (!rc)
		rc = gw_timer_arm_in(loop, &c->timer, SAFETY_DRAIN_MS * GW_NSEC_PER_MSEC);
	if (rc) {
		syncd_control_close(c);
		return rc;
	}
	*out = c;
	return 0;
}

void syncd_control_close(struct syncd_control *c)
{
	if (!c)
		return;
	gw_timer_cancel(c->loop, &c->timer);
	if (c->fd >= 0 && c->bound)
		gw_loop_del_fd(c->loop, c->fd);
	if (c->sock)
		zmq_close(c->sock);
	if (c->zctx)
		zmq_ctx_term(c->zctx);
	if (c->bound)
		unlink(c->path);
	free(c);
}
