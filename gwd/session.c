// SPDX-License-Identifier: MIT
/*
 * Session export (queue, batches) and import (merge, install, re-slot);
 * session.h is the contract, docs/failover.md the protocol.
 */
#include "session.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cluster.h"
#include "device.h"
#include "gw/log.h"
#include "peer.h"
#include "region.h"
#include "timers.h"

enum {
	SLOTS = 3,		/* previous, current, next */
	IMPORT_MAX_KEYPAIRS = 8 /* per PeerSession; more is malformed */
};

struct gwd_session_scratch {
	Gwcluster__PeerSession ps[GWD_SESSION_BATCH_PEERS];
	Gwcluster__PeerSession *psp[GWD_SESSION_BATCH_PEERS];
	Gwcluster__Keypair kp[GWD_SESSION_BATCH_PEERS * SLOTS];
	Gwcluster__Keypair *kpp[GWD_SESSION_BATCH_PEERS * SLOTS];
	Gwcluster__KeypairRx rx[GWD_SESSION_BATCH_RX];
	Gwcluster__KeypairRx *rxp[GWD_SESSION_BATCH_RX];
	char ep[GWD_SESSION_BATCH_PEERS][GW_ENDPOINT_STR_LEN];
	char la[GWD_SESSION_BATCH_PEERS][INET6_ADDRSTRLEN];
};

static struct gw_ratelimit import_rl = GW_RATELIMIT_INIT(5 * GW_NSEC_PER_SEC, 5);

int gwd_session_scratch_new(struct gwd_session_scratch **out)
{
	*out = calloc(1, sizeof(**out));
	return *out ? 0 : -ENOMEM;
}

void gwd_session_scratch_free(struct gwd_session_scratch *s)
{
	free(s);
}

/* --- The export queue --------------------------------------------------------------- */

static void schedule(struct gwd_cluster *c, uint64_t deadline)
{
	if (gw_timer_pending(&c->export_timer) && c->export_deadline <= deadline)
		return;
	if (gw_timer_arm_at(c->dev->loop, &c->export_timer, deadline) == 0)
		c->export_deadline = deadline;
}

void gwd_session_set_sink(struct gwd_device *dev, const struct gwd_session_sink *sink)
{
	if (dev->cluster)
		dev->cluster->sink = sink;
}

void gwd_session_mark(struct gwd_peer *peer, unsigned int flags)
{
	struct gwd_cluster *c = peer->dev->cluster;
	uint64_t now;

	if (!c || !peer->linked || !flags)
		return;
	gwd_peer_queue_push(&c->export_queue, peer);
	peer->cl.export_flags |= (uint8_t)flags;
	now = gwd_device_now(peer->dev);
	schedule(c, flags & GWD_EXPORT_FULL ? now : now + GWD_MSEC_NS(GWD_SESSION_RX_INTERVAL_MS));
}

static void unqueue(struct gwd_cluster *c, struct gwd_peer *peer)
{
	gwd_peer_queue_remove(&c->export_queue, peer);
	peer->cl.export_flags = 0;
}

void gwd_session_peer_removed(struct gwd_peer *peer)
{
	struct gwd_cluster *c = peer->dev->cluster;

	if (c)
		unqueue(c, peer);
}

void gwd_session_dump(struct gwd_device *dev)
{
	struct gwd_cluster *c = dev->cluster;

	if (!c)
		return;
	for (struct gwd_peer *p = dev->peers_head; p; p = p->next)
		gwd_session_mark(p, GWD_EXPORT_FULL);
	c->snapshot_pending = true;
	c->snapshot_peers = dev->npeers;
	schedule(c, gwd_device_now(dev));
}

/* --- Building a batch ------------------------------------------------------------------ */

static uint64_t rx_high_water(const struct gwd_noise_keypair *kp)
{
	uint64_t hw = gwd_replay_high_water(&kp->receiving_window);

	return kp->rx_floor > hw ? kp->rx_floor : hw;
}

static bool tai_set(const uint8_t t[static GW_TAI64N_LEN])
{
	static const uint8_t zero[GW_TAI64N_LEN];

	return memcmp(t, zero, GW_TAI64N_LEN) != 0;
}

static ProtobufCBinaryData bin(const uint8_t *p, size_t len)
{
	return (ProtobufCBinaryData){.len = len, .data = (uint8_t *)p};
}

static void fill_keypair(Gwcluster__Keypair *k, const struct gwd_noise_keypair *kp, uint64_t now)
{
	gwcluster__keypair__init(k);
	k->local_index = kp->local_index;
	k->remote_index = kp->remote_index;
	k->sending_key = bin(kp->sending_key, GW_KEY_LEN);
	k->receiving_key = bin(kp->receiving_key, GW_KEY_LEN);
	k->age_ms = now > kp->birth_ns ? (now - kp->birth_ns) / GW_NSEC_PER_MSEC : 0;
	k->initiator = kp->initiator;
	k->confirmed = kp->confirmed;
	k->send_epoch = kp->send_epoch == GWD_REGION_EPOCH_NONE ? 0 : kp->send_epoch;
	k->rx_high_water = rx_high_water(kp);
	k->has_greatest_epoch = true;
	k->greatest_epoch = kp->greatest_epoch;
}

static void fill_addresses(Gwcluster__PeerSession *ps, const struct gwd_peer *peer, char *ep,
			   char *la)
{
	if (gwd_peer_has_endpoint(peer)) {
		gw_endpoint_format(&peer->endpoint, ep, GW_ENDPOINT_STR_LEN);
		ps->endpoint = ep;
	}
	if ((peer->src.family == AF_INET || peer->src.family == AF_INET6) &&
	    inet_ntop(peer->src.family, &peer->src.v6, la, INET6_ADDRSTRLEN))
		ps->local_address = la;
}

/* PeerSession i of the scratch for peer; its keypairs from *nkp on. */
static void fill_peer(struct gwd_session_scratch *s, size_t i, const struct gwd_peer *peer,
		      size_t *nkp, uint64_t now)
{
	const struct gwd_noise_antireplay *ar = &peer->noise.antireplay;
	const struct gwd_noise_keypair *slots[SLOTS] = {peer->noise.previous, peer->noise.current,
							peer->noise.next};
	Gwcluster__PeerSession *ps = &s->ps[i];

	gwcluster__peer_session__init(ps);
	ps->public_key = bin(peer->noise.public_key, GW_KEY_LEN);
	if (tai_set(ar->greatest_received)) {
		ps->has_greatest_tai64n_received = true;
		ps->greatest_tai64n_received = bin(ar->greatest_received, GW_TAI64N_LEN);
	}
	if (ar->has_initiation) {
		ps->has_last_initiation_age_ms = true;
		ps->last_initiation_age_ms = now > ar->last_initiation_ns
						 ? (now - ar->last_initiation_ns) / GW_NSEC_PER_MSEC
						 : 0;
	}
	if (tai_set(ar->greatest_sent)) {
		ps->has_greatest_tai64n_sent = true;
		ps->greatest_tai64n_sent = bin(ar->greatest_sent, GW_TAI64N_LEN);
	}
	fill_addresses(ps, peer, s->ep[i], s->la[i]);
	ps->keypairs = &s->kpp[*nkp];
	for (size_t j = 0; j < SLOTS; j++) {
		if (!slots[j] || gwd_noise_keypair_expired(slots[j], now))
			continue;
		fill_keypair(&s->kp[*nkp], slots[j], now);
		s->kpp[*nkp] = &s->kp[*nkp];
		(*nkp)++;
		ps->n_keypairs++;
	}
	ps->has_owner = ps->has_owner_epoch = true;
	ps->owner = peer->cl.owner;
	ps->owner_epoch = peer->cl.owner_epoch;
	s->psp[i] = ps;
}

/* Adds the KeypairRx entries of a peer with receive progress only. */
static void fill_rx(struct gwd_session_scratch *s, size_t *nrx, const struct gwd_peer *peer)
{
	const struct gwd_noise_keypair *slots[SLOTS] = {peer->noise.previous, peer->noise.current,
							peer->noise.next};

	for (size_t j = 0; j < SLOTS; j++) {
		Gwcluster__KeypairRx *r = &s->rx[*nrx];

		if (!slots[j] || !rx_high_water(slots[j]))
			continue;
		gwcluster__keypair_rx__init(r);
		r->local_index = slots[j]->local_index;
		r->remote_index = slots[j]->remote_index;
		r->rx_high_water = rx_high_water(slots[j]);
		s->rxp[(*nrx)++] = r;
	}
}

/* Fills batch from the head of the queue; returns how many queued peers it covers. */
static size_t build(struct gwd_cluster *c, Gwcluster__SessionBatch *batch)
{
	struct gwd_session_scratch *s = c->scratch;
	uint64_t now = gwd_device_now(c->dev);
	size_t np = 0, nkp = 0, nrx = 0, taken = 0;
	struct gwd_peer *peer;

	gwcluster__session_batch__init(batch);
	for (peer = c->export_queue.head; peer;
	     peer = gwd_peer_queue_next(&c->export_queue, peer), taken++) {
		if (peer->cl.export_flags & GWD_EXPORT_FULL) {
			if (np == GWD_SESSION_BATCH_PEERS)
				break;
			fill_peer(s, np++, peer, &nkp, now);
		} else {
			if (nrx + SLOTS > GWD_SESSION_BATCH_RX)
				break;
			fill_rx(s, &nrx, peer);
		}
	}
	batch->n_peers = np;
	batch->peers = s->psp;
	batch->n_rx = nrx;
	batch->rx = s->rxp;
	c->stats.exports += np;
	c->stats.export_rx += nrx;
	return taken;
}

/* --- Flushing --------------------------------------------------------------------------- */

static void drop_queue(struct gwd_cluster *c)
{
	while (c->export_queue.head)
		unqueue(c, c->export_queue.head);
}

int gwd_session_flush(struct gwd_device *dev)
{
	struct gwd_cluster *c = dev->cluster;

	if (!c)
		return 0;
	if (!c->sink)
		drop_queue(c);
	while (c->export_queue.head) {
		Gwcluster__SessionBatch batch;
		size_t taken = build(c, &batch);
		int err;

		err = c->sink->batch(c->sink->arg, &batch);
		if (err == -EAGAIN) {
			c->stats.exports -= batch.n_peers;
			c->stats.export_rx -= batch.n_rx;
			c->stats.export_busy++;
			schedule(c, gwd_device_now(dev) + GWD_MSEC_NS(GWD_SESSION_RETRY_MS));
			return -EAGAIN;
		}
		if (!err)
			c->stats.export_batches++;
		while (taken--)
			unqueue(c, c->export_queue.head);
	}
	if (c->snapshot_pending) {
		c->snapshot_pending = false;
		if (c->sink && c->sink->snapshot_done)
			c->sink->snapshot_done(c->sink->arg, c->snapshot_peers);
	}
	return 0;
}

void gwd_session_export_timer(struct gw_loop *loop, struct gw_timer *t, void *arg)
{
	(void)loop;
	(void)t;
	(void)gwd_session_flush(arg);
}

/* --- Import ------------------------------------------------------------------------------- */

static void import_rejected(struct gwd_cluster *c, const char *what)
{
	c->stats.import_rejected++;
	gw_log_rl(&import_rl, GW_LOG_WARN, "gwd: session import: %s", what);
}

/* A sane TAI64N label of the right length, or NULL. */
static const uint8_t *tai_field(bool has, const ProtobufCBinaryData *b)
{
	struct timespec ts;

	if (!has || b->len != GW_TAI64N_LEN || gw_tai64n_to_timespec(&ts, b->data) < 0)
		return NULL;
	return b->data;
}

static void merge_antireplay(struct gwd_peer *peer, const Gwcluster__PeerSession *ps, uint64_t now)
{
	struct gwd_noise_antireplay in;
	const uint8_t *t;

	memset(&in, 0, sizeof(in));
	t = tai_field(ps->has_greatest_tai64n_received, &ps->greatest_tai64n_received);
	if (t)
		memcpy(in.greatest_received, t, GW_TAI64N_LEN);
	t = tai_field(ps->has_greatest_tai64n_sent, &ps->greatest_tai64n_sent);
	if (t)
		memcpy(in.greatest_sent, t, GW_TAI64N_LEN);
	if (ps->has_last_initiation_age_ms &&
	    ps->last_initiation_age_ms <= GWD_SESSION_MAX_AGE_MS &&
	    ps->last_initiation_age_ms * GW_NSEC_PER_MSEC <= now) {
		in.last_initiation_ns = now - ps->last_initiation_age_ms * GW_NSEC_PER_MSEC;
		in.has_initiation = true;
	}
	gwd_noise_antireplay_merge(&peer->noise.antireplay, &in);
}

static void import_addresses(struct gwd_peer *peer, const Gwcluster__PeerSession *ps)
{
	union gw_sockaddr ep;
	struct gwd_src src;

	if (!ps->endpoint || gw_endpoint_parse(&ep, ps->endpoint) < 0)
		return;
	if (!gw_sockaddr_equal(&ep, &peer->endpoint))
		gwd_peer_set_endpoint(peer, &ep);
	memset(&src, 0, sizeof(src));
	if (ps->local_address && inet_pton(AF_INET, ps->local_address, &src.v4) == 1)
		src.family = AF_INET;
	else if (ps->local_address && inet_pton(AF_INET6, ps->local_address, &src.v6) == 1)
		src.family = AF_INET6;
	/* The interface index is this node's business: the kernel picks it. */
	peer->src = src;
}

static uint16_t imported_epoch(const Gwcluster__Keypair *k)
{
	uint32_t e = k->send_epoch;

	if (k->has_greatest_epoch && k->greatest_epoch > e)
		e = k->greatest_epoch;
	return e > GWD_REGION_EPOCH_MAX ? GWD_REGION_EPOCH_MAX : (uint16_t)e;
}

/*
 * Another node's knowledge about a keypair we hold already. True when it
 * was confirmed just now: the peer uses it, so the slots must move.
 */
static bool merge_keypair(struct gwd_noise_keypair *kp, const Gwcluster__Keypair *k)
{
	uint16_t e = imported_epoch(k);

	if (e > kp->greatest_epoch)
		kp->greatest_epoch = e;
	if (k->rx_high_water > rx_high_water(kp))
		kp->rx_floor = k->rx_high_water;
	if (!k->confirmed || kp->confirmed)
		return false;
	kp->confirmed = true;
	return true;
}

static bool keys_equal(const struct gwd_noise_keypair *kp, const Gwcluster__Keypair *k)
{
	return gw_memeq(kp->sending_key, k->sending_key.data, GW_KEY_LEN) &&
	       gw_memeq(kp->receiving_key, k->receiving_key.data, GW_KEY_LEN);
}

static struct gwd_noise_keypair *new_keypair(struct gwd_peer *peer, const Gwcluster__Keypair *k,
					     uint64_t now)
{
	struct gwd_noise_keypair *kp = calloc(1, sizeof(*kp));

	if (!kp)
		return NULL;
	kp->remote = &peer->noise;
	memcpy(kp->sending_key, k->sending_key.data, GW_KEY_LEN);
	memcpy(kp->receiving_key, k->receiving_key.data, GW_KEY_LEN);
	/* No region held: the fail-closed counter keeps any other path from sending. */
	kp->sending_counter = GWD_REJECT_AFTER_MESSAGES;
	kp->send_epoch = GWD_REGION_EPOCH_NONE;
	kp->greatest_epoch = imported_epoch(k);
	gwd_replay_init(&kp->receiving_window);
	kp->rx_floor = k->rx_high_water;
	kp->local_index = k->local_index;
	kp->remote_index = k->remote_index;
	kp->birth_ns = now - k->age_ms * GW_NSEC_PER_MSEC;
	kp->initiator = k->initiator;
	kp->confirmed = k->confirmed;
	kp->imported = true;
	return kp;
}

/*
 * One imported keypair: installed (returned, not slotted yet), merged (*moved
 * set when that changes the slots) or skipped.
 */
static struct gwd_noise_keypair *import_keypair(struct gwd_device *dev, struct gwd_peer *peer,
						const Gwcluster__Keypair *k, uint64_t now,
						bool *moved)
{
	struct gwd_cluster *c = dev->cluster;
	struct gwd_noise_keypair *kp;

	if (k->sending_key.len != GW_KEY_LEN || k->receiving_key.len != GW_KEY_LEN) {
		import_rejected(c, "keypair with a bad key length");
		return NULL;
	}
	kp = gwd_index_lookup(&dev->index, k->local_index, GWD_INDEX_KEYPAIR);
	if (kp) {
		if (kp->remote != &peer->noise || kp->remote_index != k->remote_index ||
		    !keys_equal(kp, k))
			import_rejected(c, "receiver index in use by another keypair");
		else if (merge_keypair(kp, k))
			*moved = true;
		return NULL;
	}
	if (k->age_ms >= (uint64_t)GWD_REJECT_AFTER_TIME * 1000 ||
	    k->age_ms * GW_NSEC_PER_MSEC > now) {
		c->stats.import_expired++;
		return NULL;
	}
	if (gwd_cluster_tombstoned(
		c, gwd_cluster_fingerprint(c, k->sending_key.data, k->receiving_key.data))) {
		c->stats.import_tombstoned++;
		return NULL;
	}
	kp = new_keypair(peer, k, now);
	if (!kp || gwd_index_insert(&dev->index, kp->local_index, GWD_INDEX_KEYPAIR, kp) < 0) {
		import_rejected(c, kp ? "receiver index taken" : "out of memory");
		if (kp) {
			gw_wipe(kp, sizeof(*kp));
			free(kp);
		}
		return NULL;
	}
	c->stats.import_keypairs++;
	return kp;
}

/* Newest first. */
static void sort_by_birth(struct gwd_noise_keypair **v, size_t n)
{
	for (size_t i = 1; i < n; i++) {
		struct gwd_noise_keypair *x = v[i];
		size_t j = i;

		for (; j > 0 && v[j - 1]->birth_ns < x->birth_ns; j--)
			v[j] = v[j - 1];
		v[j] = x;
	}
}

/* Takes the first keypair of v[0..n) satisfying confirmed==want (any when !match). */
static struct gwd_noise_keypair *take(struct gwd_noise_keypair **v, size_t n, bool match, bool want)
{
	for (size_t i = 0; i < n; i++) {
		struct gwd_noise_keypair *kp = v[i];

		if (kp && (!match || kp->confirmed == want)) {
			v[i] = NULL;
			return kp;
		}
	}
	return NULL;
}

/*
 * Places the peer's keypairs, old and new, by age: the newest, when not
 * confirmed yet, is next; the newest confirmed one current; the newest of
 * the rest previous; anything older is dropped.
 */
static void reslot(struct gwd_device *dev, struct gwd_peer *peer, struct gwd_noise_keypair **fresh,
		   size_t nfresh)
{
	struct gwd_noise_remote *r = &peer->noise;
	struct gwd_noise_keypair *v[SLOTS + IMPORT_MAX_KEYPAIRS];
	size_t n = 0;

	if (r->previous)
		v[n++] = r->previous;
	if (r->current)
		v[n++] = r->current;
	if (r->next)
		v[n++] = r->next;
	for (size_t i = 0; i < nfresh; i++)
		v[n++] = fresh[i];
	if (!n)
		return;
	sort_by_birth(v, n);
	r->next = v[0]->confirmed ? NULL : take(v, 1, false, false);
	r->current = take(v, n, true, true);
	r->previous = take(v, n, false, false);
	for (size_t i = 0; i < n; i++)
		if (v[i])
			gwd_cluster_keypair_free(dev, v[i]);
	gw_dbg("gwd: peer %s: imported keypairs slotted: current %08x, next %08x, previous %08x",
	       peer->name, r->current ? r->current->local_index : 0,
	       r->next ? r->next->local_index : 0, r->previous ? r->previous->local_index : 0);
}

/*
 * `wg show` on a standby or a new owner: the latest handshake is the birth
 * of the newest keypair the cluster made, in wall-clock time.
 */
static void note_handshake(struct gwd_peer *peer, struct gwd_noise_keypair **fresh, size_t n)
{
	uint64_t now = gwd_device_now(peer->dev), age = UINT64_MAX;
	struct timespec ts;

	for (size_t i = 0; i < n; i++)
		if (now - fresh[i]->birth_ns < age)
			age = now - fresh[i]->birth_ns;
	gw_clock_real(peer->dev->clock, &ts);
	ts.tv_sec -= (time_t)(age / GW_NSEC_PER_SEC);
	ts.tv_nsec -= (long)(age % GW_NSEC_PER_SEC);
	if (ts.tv_nsec < 0) {
		ts.tv_nsec += (long)GW_NSEC_PER_SEC;
		ts.tv_sec--;
	}
	if (ts.tv_sec > peer->last_handshake.tv_sec ||
	    (ts.tv_sec == peer->last_handshake.tv_sec && ts.tv_nsec > peer->last_handshake.tv_nsec))
		peer->last_handshake = ts;
}

static struct gwd_peer *import_target(struct gwd_device *dev, const Gwcluster__PeerSession *ps)
{
	struct gwd_cluster *c = dev->cluster;
	struct gwd_peer *peer;

	if (ps->public_key.len != GW_KEY_LEN || ps->n_keypairs > IMPORT_MAX_KEYPAIRS) {
		import_rejected(c, "malformed peer session");
		return NULL;
	}
	peer = gwd_peer_lookup(dev, ps->public_key.data);
	if (!peer)
		c->stats.import_unknown_peer++;
	return peer;
}

static void import_peer(struct gwd_device *dev, const Gwcluster__PeerSession *ps)
{
	struct gwd_cluster *c = dev->cluster;
	struct gwd_noise_keypair *fresh[IMPORT_MAX_KEYPAIRS];
	uint64_t now = gwd_device_now(dev);
	struct gwd_peer *peer = import_target(dev, ps);
	const struct gwd_noise_keypair *prev_current;
	size_t nfresh = 0;
	bool moved = false, owned;

	if (!peer)
		return;
	prev_current = peer->noise.current;
	c->stats.imports++;
	merge_antireplay(peer, ps, now);
	owned = gwd_cluster_may_send(peer);
	if (ps->has_owner && ps->has_owner_epoch && ps->owner <= GWD_REGION_NODE_MAX)
		(void)gwd_cluster_merge_owner(peer, (uint8_t)ps->owner, ps->owner_epoch);
	/*
	 * The addresses the owner saw; a node that owned the peer saw them
	 * itself, unless it claimed the peer before ever hearing from it.
	 */
	if ((!owned && !gwd_cluster_may_send(peer)) || !gwd_peer_has_endpoint(peer))
		import_addresses(peer, ps);
	for (size_t i = 0; i < ps->n_keypairs; i++) {
		struct gwd_noise_keypair *kp =
		    import_keypair(dev, peer, ps->keypairs[i], now, &moved);

		if (kp)
			fresh[nfresh++] = kp;
	}
	if (nfresh) {
		note_handshake(peer, fresh, nfresh);
		reslot(dev, peer, fresh, nfresh);
		/* Replicas get dropped in time like any session nobody renews. */
		gwd_timers_session_derived(peer);
	} else if (moved) {
		reslot(dev, peer, NULL, 0);
	}
	/* Last: a claim made now sees the keypairs and slots of this import. */
	gwd_cluster_peer_imported(peer, prev_current);
}

static void import_rx(struct gwd_device *dev, const Gwcluster__KeypairRx *rx)
{
	struct gwd_noise_keypair *kp =
	    gwd_index_lookup(&dev->index, rx->local_index, GWD_INDEX_KEYPAIR);

	/* A keypair we never got or dropped already: nothing to protect. */
	if (!kp || kp->remote_index != rx->remote_index)
		return;
	if (rx->rx_high_water > rx_high_water(kp))
		kp->rx_floor = rx->rx_high_water;
	dev->cluster->stats.import_rx++;
}

int gwd_session_import(struct gwd_device *dev, const Gwcluster__SessionBatch *batch)
{
	if (!dev->cluster)
		return -EINVAL;
	for (size_t i = 0; i < batch->n_peers; i++)
		import_peer(dev, batch->peers[i]);
	for (size_t i = 0; i < batch->n_rx; i++)
		import_rx(dev, batch->rx[i]);
	return 0;
}
