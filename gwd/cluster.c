// SPDX-License-Identifier: MIT
/*
 * Cluster node state: incarnation file, ownership, counter regions,
 * tombstones and paced takeover rekeys. cluster.h states the rules.
 */
#include "cluster.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "device.h"
#include "gw/key.h"
#include "gw/log.h"
#include "packet.h"
#include "peer.h"
#include "region.h"
#include "session.h"

_Static_assert(GW_HASH_LEN == GW_KEY_LEN, "the cluster secret is read as a key");

/* --- Peer queues ------------------------------------------------------------- */

void gwd_peer_queue_init(struct gwd_peer_queue *q, enum gwd_peer_queue_kind kind)
{
	q->head = q->tail = NULL;
	q->len = 0;
	q->kind = kind;
}

void gwd_peer_queue_push(struct gwd_peer_queue *q, struct gwd_peer *p)
{
	struct gwd_queue_link *l = &p->cl.link[q->kind];

	if (l->queued)
		return;
	l->queued = true;
	l->next = NULL;
	l->prev = q->tail;
	if (q->tail)
		q->tail->cl.link[q->kind].next = p;
	else
		q->head = p;
	q->tail = p;
	q->len++;
}

void gwd_peer_queue_remove(struct gwd_peer_queue *q, struct gwd_peer *p)
{
	struct gwd_queue_link *l = &p->cl.link[q->kind];

	if (!l->queued)
		return;
	if (l->prev)
		l->prev->cl.link[q->kind].next = l->next;
	else
		q->head = l->next;
	if (l->next)
		l->next->cl.link[q->kind].prev = l->prev;
	else
		q->tail = l->prev;
	l->prev = l->next = NULL;
	l->queued = false;
	q->len--;
}

struct gwd_peer *gwd_peer_queue_next(const struct gwd_peer_queue *q, const struct gwd_peer *p)
{
	return p->cl.link[q->kind].next;
}

/* --- Tombstones: fingerprints of dropped keypairs, oldest first ---------------- */

struct tomb {
	uint64_t fp;
	uint64_t expiry_ns;
	struct tomb *hnext; /* hash chain */
	struct tomb *fnext; /* FIFO: expiry order, since every lifetime is the same */
};

struct gwd_tombstones {
	struct tomb **buckets;
	size_t nbuckets; /* a power of two */
	size_t count;
	struct tomb *head, *tail;
};

enum { TOMB_INITIAL_BUCKETS = 256 };

static int tombs_new(struct gwd_tombstones **out)
{
	struct gwd_tombstones *t = calloc(1, sizeof(*t));

	if (!t)
		return -ENOMEM;
	t->buckets = calloc(TOMB_INITIAL_BUCKETS, sizeof(*t->buckets));
	if (!t->buckets) {
		free(t);
		return -ENOMEM;
	}
	t->nbuckets = TOMB_INITIAL_BUCKETS;
	*out = t;
	return 0;
}

static void tombs_free(struct gwd_tombstones *t)
{
	struct tomb *e, *next;

	if (!t)
		return;
	for (e = t->head; e; e = next) {
		next = e->fnext;
		free(e);
	}
	free(t->buckets);
	free(t);
}

static struct tomb **tomb_bucket(const struct gwd_tombstones *t, uint64_t fp)
{
	return &t->buckets[(fp ^ fp >> 29) & (t->nbuckets - 1)];
}

static void tombs_expire(struct gwd_tombstones *t, uint64_t now)
{
	struct tomb *e;

	while ((e = t->head) && e->expiry_ns <= now) {
		struct tomb **pp = tomb_bucket(t, e->fp);

		while (*pp != e)
			pp = &(*pp)->hnext;
		*pp = e->hnext;
		t->head = e->fnext;
		if (!t->head)
			t->tail = NULL;
		t->count--;
		free(e);
	}
}

static void tombs_grow(struct gwd_tombstones *t)
{
	size_t n = t->nbuckets * 2;
	struct tomb **b = calloc(n, sizeof(*b));

	if (!b)
		return; /* chains just get longer */
	free(t->buckets);
	t->buckets = b;
	t->nbuckets = n;
	for (struct tomb *e = t->head; e; e = e->fnext) {
		struct tomb **pp = tomb_bucket(t, e->fp);

		e->hnext = *pp;
		*pp = e;
	}
}

/* Out of memory the keypair is simply not remembered: logged, as it weakens a rule. */
static void tombs_add(struct gwd_tombstones *t, uint64_t fp, uint64_t now, uint64_t expiry)
{
	struct tomb *e;
	struct tomb **pp;

	tombs_expire(t, now);
	e = malloc(sizeof(*e));
	if (!e) {
		gw_err("gwd: cannot remember a dropped keypair: out of memory");
		return;
	}
	if (t->count >= t->nbuckets)
		tombs_grow(t);
	pp = tomb_bucket(t, fp);
	e->fp = fp;
	e->expiry_ns = expiry;
	e->hnext = *pp;
	*pp = e;
	e->fnext = NULL;
	if (t->tail)
		t->tail->fnext = e;
	else
		t->head = e;
	t->tail = e;
	t->count++;
}

uint64_t gwd_cluster_fingerprint(const struct gwd_cluster *c, const uint8_t send_key[GW_KEY_LEN],
				 const uint8_t recv_key[GW_KEY_LEN])
{
	struct gw_blake2s s;
	uint64_t fp;

	gw_blake2s_init(&s, sizeof(fp), c->fp_key, sizeof(c->fp_key));
	gw_blake2s_update(&s, send_key, GW_KEY_LEN);
	gw_blake2s_update(&s, recv_key, GW_KEY_LEN);
	gw_blake2s_final(&s, (uint8_t *)&fp, sizeof(fp));
	gw_wipe(&s, sizeof(s));
	return fp;
}

bool gwd_cluster_tombstoned(struct gwd_cluster *c, uint64_t fp)
{
	uint64_t now = gwd_device_now(c->dev);

	tombs_expire(c->tombstones, now);
	for (struct tomb *e = *tomb_bucket(c->tombstones, fp); e; e = e->hnext)
		if (e->fp == fp)
			return true;
	return false;
}

size_t gwd_cluster_tombstone_count(const struct gwd_cluster *c)
{
	return c->tombstones->count;
}

void gwd_cluster_keypair_free(struct gwd_device *dev, struct gwd_noise_keypair *kp)
{
	gwd_cluster_keypair_dropped(dev, kp);
	gwd_index_free(&dev->index, kp->local_index);
	gw_wipe(kp, sizeof(*kp));
	free(kp);
}

void gwd_cluster_keypair_dropped(struct gwd_device *dev, const struct gwd_noise_keypair *kp)
{
	struct gwd_cluster *c = dev->cluster;
	uint64_t now;

	/* Only a keypair this process sent with carries an epoch it must not repeat. */
	if (!c || kp->send_epoch == GWD_REGION_EPOCH_NONE)
		return;
	now = gwd_device_now(dev);
	tombs_add(c->tombstones, gwd_cluster_fingerprint(c, kp->sending_key, kp->receiving_key),
		  now, now + GWD_SEC_NS(GWD_CLUSTER_TOMBSTONE_S));
}

/* --- Enable / free ------------------------------------------------------------- */

static void rekey_tick(struct gw_loop *loop, struct gw_timer *t, void *arg);

int gwd_cluster_enable(struct gwd_device *dev, const struct gwd_cluster_config *cfg)
{
	struct gwd_cluster *c;
	int err;

	if (!cfg || cfg->node_id == 0)
		return -EINVAL;
	if (dev->cluster || dev->npeers)
		return -EBUSY;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	err = tombs_new(&c->tombstones);
	if (!err)
		err = gwd_session_scratch_new(&c->scratch);
	if (err) {
		tombs_free(c->tombstones);
		free(c);
		return err;
	}
	c->dev = dev;
	c->node_id = cfg->node_id;
	c->boot = cfg->boot;
	c->incarnation = (uint16_t)(cfg->boot & GWD_REGION_INCARNATION_MASK);
	/* Boot b shares its incarnation with boot b - 4096, which exists from 4097 on. */
	c->incarnation_reused = cfg->boot > (uint64_t)GWD_REGION_INCARNATION_MASK + 1;
	c->start_ns = gwd_device_now(dev);
	c->claim_on_receive = cfg->claim_on_receive;
	/* Bounded so rekey_tick's arithmetic cannot overflow. */
	c->rekey_rate = cfg->takeover_rekey_rate < 1000000 ? cfg->takeover_rekey_rate : 1000000;
	gw_random_bytes(c->fp_key, sizeof(c->fp_key));
	gwd_peer_queue_init(&c->rekey_queue, GWD_QUEUE_REKEY);
	gwd_peer_queue_init(&c->export_queue, GWD_QUEUE_EXPORT);
	gw_timer_init(&c->rekey_timer, rekey_tick, c);
	gw_timer_init(&c->export_timer, gwd_session_export_timer, dev);
	dev->cluster = c;
	if (cfg->owned_routes_table) {
		err = gwd_routes_enable(dev, cfg->owned_routes_table);
		if (err) {
			dev->cluster = NULL;
			tombs_free(c->tombstones);
			gwd_session_scratch_free(c->scratch);
			free(c);
			return err;
		}
	}
	dev->index.node_id = cfg->node_id;
	if (cfg->cookie_secret)
		gwd_cookie_checker_set_cluster_secret(&dev->cookie, cfg->cookie_secret);
	if (c->incarnation_reused)
		gw_warn("gwd: incarnation %u was used before (boot %" PRIu64
			"): no region claims on replicated sessions for %d s",
			c->incarnation, c->boot, GWD_CLUSTER_REUSE_HOLDOFF_S);
	return 0;
}

void gwd_cluster_free(struct gwd_device *dev)
{
	struct gwd_cluster *c = dev->cluster;

	if (!c)
		return;
	gw_timer_cancel(dev->loop, &c->rekey_timer);
	gw_timer_cancel(dev->loop, &c->export_timer);
	gwd_routes_free(dev);
	tombs_free(c->tombstones);
	gwd_session_scratch_free(c->scratch);
	gw_wipe(c, sizeof(*c));
	free(c);
	dev->cluster = NULL;
}

/* --- Incarnation and secret files ---------------------------------------------- */

/* mkdir -p with mode 0700 for what it creates. */
static int make_dirs(const char *dir)
{
	char buf[4096];
	size_t len = strlen(dir);

	if (!len || len >= sizeof(buf))
		return -ENAMETOOLONG;
	memcpy(buf, dir, len + 1);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, 0700) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(buf, 0700) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

/* The boot counter in DIR/incarnation: 0 when absent. */
static int read_boot(int dfd, uint64_t *out)
{
	char buf[32];
	ssize_t n;
	char *end;
	int fd = openat(dfd, "incarnation", O_RDONLY | O_CLOEXEC);

	*out = 0;
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n < 0)
		return -errno;
	buf[n] = '\0';
	if (n == 0 || buf[0] < '0' || buf[0] > '9')
		return -EBADMSG;
	errno = 0;
	*out = strtoull(buf, &end, 10);
	if (errno || (*end && strcmp(end, "\n") != 0) || *out == UINT64_MAX)
		return -EBADMSG;
	return 0;
}

static int write_boot(int dfd, uint64_t boot)
{
	char buf[32];
	int len = snprintf(buf, sizeof(buf), "%" PRIu64 "\n", boot);
	int fd = openat(dfd, "incarnation.tmp", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	int err = 0;
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = write(fd, buf, (size_t)len);
	if (n < 0)
		err = -errno;
	else if (n != len)
		err = -EIO;
	else if (fsync(fd) < 0)
		err = -errno;
	if (close(fd) < 0 && !err)
		err = -errno;
	if (!err && renameat(dfd, "incarnation.tmp", dfd, "incarnation") < 0)
		err = -errno;
	/* The rename is durable only once the directory is. */
	if (!err && fsync(dfd) < 0)
		err = -errno;
	return err;
}

int gwd_cluster_incarnation_next(const char *dir, uint64_t *boot, int *lock_fd)
{
	int dfd, lfd = -1, err;
	uint64_t old;

	err = make_dirs(dir);
	if (err)
		return err;
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return -errno;
	lfd = openat(dfd, "lock", O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (lfd < 0) {
		err = -errno;
		goto out;
	}
	if (flock(lfd, LOCK_EX | LOCK_NB) < 0) {
		err = errno == EWOULDBLOCK ? -EBUSY : -errno;
		goto out;
	}
	err = read_boot(dfd, &old);
	if (!err)
		err = write_boot(dfd, old + 1);
	if (!err) {
		*boot = old + 1;
		*lock_fd = lfd;
		lfd = -1;
	}
out:
	if (lfd >= 0)
		close(lfd);
	close(dfd);
	return err;
}

int gwd_cluster_read_secret(const char *path, uint8_t out[static GW_HASH_LEN])
{
	char buf[256];
	struct stat st;
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC), err = 0;

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) == 0 && (st.st_mode & 077))
		gw_warn("gwd: %s is readable by others than its owner", path);
	n = read(fd, buf, sizeof(buf) - 1);
	if (n < 0)
		err = -errno;
	close(fd);
	if (err)
		return err;
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
		n--;
	buf[n] = '\0';
	if (gw_key_from_base64(out, buf) < 0 && gw_key_from_hex(out, buf) < 0)
		err = -EBADMSG;
	gw_wipe(buf, sizeof(buf));
	return err;
}

/* --- Ownership ------------------------------------------------------------------ */

bool gwd_cluster_may_send(const struct gwd_peer *peer)
{
	const struct gwd_cluster *c = peer->dev->cluster;

	return !c || peer->cl.owner == c->node_id;
}

bool gwd_cluster_serving(const struct gwd_device *dev)
{
	const struct gwd_cluster *c = dev->cluster;

	return !c || c->claim_on_receive || c->master;
}

static void rekey_dequeue(struct gwd_peer *peer)
{
	peer->cl.rekey_pending = false;
	gwd_peer_queue_remove(&peer->dev->cluster->rekey_queue, peer);
}

/*
 * Takes the peer. Nothing is staged for it: a node stages only for peers it
 * owns, and drops what it staged when it stops owning one (lose_peer).
 */
static void claim(struct gwd_peer *peer)
{
	struct gwd_device *dev = peer->dev;
	struct gwd_cluster *c = dev->cluster;
	struct gwd_noise_keypair *cur = peer->noise.current;

	if (!c || peer->cl.owner == c->node_id)
		return;
	peer->cl.owner = c->node_id;
	peer->cl.owner_epoch++;
	peer->cl.last_claim_ns = gwd_device_now(dev);
	peer->cl.claimed_before = true;
	c->stats.ownership_claims++;
	gw_dbg("gwd: peer %s: claimed (ownership epoch %" PRIu64 "); keypairs: current %08x%s, "
	       "next %08x, previous %08x",
	       peer->name, peer->cl.owner_epoch, cur ? cur->local_index : 0,
	       cur ? (cur->imported ? " (replicated)" : " (own)") : "",
	       peer->noise.next ? peer->noise.next->local_index : 0,
	       peer->noise.previous ? peer->noise.previous->local_index : 0);
	/* Replicated keys: rekey once traffic has resumed, paced (rekey_tick). */
	peer->cl.rekey_pending = c->rekey_rate && cur && cur->imported;
	gwd_session_mark(peer, GWD_EXPORT_FULL);
	gwd_routes_mark(peer);
}

void gwd_cluster_claim_peer(struct gwd_peer *peer)
{
	claim(peer);
}

/*
 * This node stops sending for the peer: what it staged waited for its own
 * handshake and would be stale by the time it owns the peer again.
 */
static void lose_peer(struct gwd_peer *peer)
{
	rekey_dequeue(peer);
	peer->dev->cluster->stats.drop_not_owner += peer->nstaged;
	gwd_peer_purge_staged(peer, GWD_STAT__COUNT);
	gwd_routes_mark(peer);
}

void gwd_cluster_drop_not_owner(struct gwd_peer *peer)
{
	if (peer->dev->cluster)
		peer->dev->cluster->stats.drop_not_owner++;
}

void gwd_cluster_release_peer(struct gwd_peer *peer)
{
	struct gwd_cluster *c = peer->dev->cluster;

	if (!c || peer->cl.owner != c->node_id)
		return;
	peer->cl.owner = 0;
	peer->cl.owner_epoch++;
	c->stats.ownership_releases++;
	lose_peer(peer);
	gwd_session_mark(peer, GWD_EXPORT_FULL);
}

void gwd_cluster_claim_all(struct gwd_device *dev)
{
	struct gwd_cluster *c = dev->cluster;

	if (!c)
		return;
	c->master = true;
	for (struct gwd_peer *p = dev->peers_head; p; p = p->next)
		gwd_cluster_claim_peer(p);
	gw_info("gwd: node %u now owns all %zu peers", c->node_id, dev->npeers);
}

void gwd_cluster_release_all(struct gwd_device *dev)
{
	struct gwd_cluster *c = dev->cluster;

	if (!c)
		return;
	c->master = false;
	for (struct gwd_peer *p = dev->peers_head; p; p = p->next)
		gwd_cluster_release_peer(p);
	gw_info("gwd: node %u released its peers", c->node_id);
}

bool gwd_cluster_merge_owner(struct gwd_peer *peer, uint8_t owner, uint64_t epoch)
{
	struct gwd_cluster *c = peer->dev->cluster;
	bool lost;

	if (!c || epoch < peer->cl.owner_epoch ||
	    (epoch == peer->cl.owner_epoch && owner <= peer->cl.owner))
		return false;
	/*
	 * Our own node id above what this process holds comes from an earlier
	 * process of this node: it is history, not a claim we made, so this
	 * process adopts the epoch but owns nothing until it claims.
	 */
	if (owner == c->node_id)
		owner = 0;
	lost = peer->cl.owner == c->node_id;
	peer->cl.owner = owner;
	peer->cl.owner_epoch = epoch;
	if (lost) {
		c->stats.ownership_lost++;
		lose_peer(peer);
		gw_info("gwd: peer %s: node %u took over (ownership epoch %" PRIu64 ")", peer->name,
			owner, epoch);
	}
	return true;
}

/* --- Hooks ------------------------------------------------------------------------ */

void gwd_cluster_peer_linked(struct gwd_peer *peer)
{
	struct gwd_cluster *c = peer->dev->cluster;

	if (c && c->master)
		gwd_cluster_claim_peer(peer);
}

void gwd_cluster_peer_imported(struct gwd_peer *peer, const struct gwd_noise_keypair *prev_current)
{
	struct gwd_cluster *c = peer->dev->cluster;
	const struct gwd_noise_keypair *cur = peer->noise.current;

	/*
	 * A VRRP master owns every peer unless another node holds a greater
	 * claim (a second master in a split brain). An import that leaves a
	 * peer to nobody carries the release of a node that went backup (the
	 * loser of a split brain), or a claim of an earlier process of this
	 * node: take it back above that epoch, or nobody would serve it.
	 */
	if (c && c->master && peer->cl.owner == 0) {
		gw_info("gwd: peer %s: released by another node (ownership epoch %" PRIu64
			"); this master takes it back",
			peer->name, peer->cl.owner_epoch);
		gwd_cluster_claim_peer(peer);
		return;
	}
	/*
	 * A claim that came before the replicated keypairs (a master made
	 * before its imports completed) planned no rekey: the keypair it now
	 * sends with is replicated all the same.
	 */
	if (c && c->rekey_rate && cur != prev_current && cur && cur->imported &&
	    gwd_cluster_may_send(peer))
		peer->cl.rekey_pending = true;
}

void gwd_cluster_peer_removed(struct gwd_peer *peer)
{
	if (!peer->dev->cluster)
		return;
	rekey_dequeue(peer);
	gwd_routes_peer_removed(peer);
	gwd_session_peer_removed(peer);
}

static void forbid_claims(struct gwd_noise_keypair *kp)
{
	if (kp && kp->send_epoch == GWD_REGION_EPOCH_NONE)
		kp->greatest_epoch = GWD_REGION_EPOCH_MAX;
}

void gwd_cluster_identity_changed(struct gwd_device *dev)
{
	if (!dev->cluster)
		return;
	/* The core expired what we send with; replicas of the old identity die too. */
	for (struct gwd_peer *p = dev->peers_head; p; p = p->next) {
		forbid_claims(p->noise.previous);
		forbid_claims(p->noise.current);
		forbid_claims(p->noise.next);
	}
}

/*
 * Whether a claim on receive is due: an anycast node, or a VRRP master (the
 * VIP is here, so the peer's packets are meant for this node), at most once
 * per holdoff per peer so two nodes that both get a peer's packets cannot
 * make its ownership flap faster than that.
 */
static bool claim_on_receive(struct gwd_cluster *c, struct gwd_peer *peer)
{
	uint64_t now = gwd_device_now(c->dev);

	return (c->claim_on_receive || c->master) &&
	       (!peer->cl.claimed_before ||
		now - peer->cl.last_claim_ns >= GWD_MSEC_NS(GWD_CLUSTER_CLAIM_HOLDOFF_MS));
}

bool gwd_cluster_initiation_received(struct gwd_peer *peer)
{
	struct gwd_cluster *c = peer->dev->cluster;

	if (!c)
		return true;
	/* The handshake anti-replay state moved: replicate it. */
	gwd_session_mark(peer, GWD_EXPORT_FULL);
	if (gwd_cluster_may_send(peer))
		return true;
	if (claim_on_receive(c, peer)) {
		claim(peer);
		return true;
	}
	c->stats.standby_silenced++;
	return false;
}

static void rekey_enqueue(struct gwd_cluster *c, struct gwd_peer *peer)
{
	peer->cl.rekey_pending = false;
	gwd_peer_queue_push(&c->rekey_queue, peer);
	if (!gw_timer_pending(&c->rekey_timer))
		(void)gw_timer_arm_in(c->dev->loop, &c->rekey_timer,
				      GWD_MSEC_NS(GWD_CLUSTER_REKEY_TICK_MS));
}

/*
 * Whether this node has sent under the replicated keypair it took over (it
 * holds a region of it). The takeover rekey waits for that as well as for a
 * received packet: traffic must have resumed both ways on the replicated
 * keypair, or the new owner's first packets to the peer would be a handshake
 * and data under a new receiver index (a reply that comes late, a peer that
 * only sends: its passive keepalive follows within KEEPALIVE_TIMEOUT). A
 * current keypair that is not replicated needs no takeover rekey at all
 * (rekey_tick skips it).
 */
static bool sent_since_takeover(const struct gwd_peer *peer)
{
	const struct gwd_noise_keypair *cur = peer->noise.current;

	return !cur || !cur->imported || cur->send_epoch != GWD_REGION_EPOCH_NONE;
}

void gwd_cluster_data_received(struct gwd_peer *peer)
{
	struct gwd_cluster *c = peer->dev->cluster;

	if (!c)
		return;
	gwd_session_mark(peer, GWD_EXPORT_RX);
	if (!gwd_cluster_may_send(peer) && claim_on_receive(c, peer))
		gwd_cluster_claim_peer(peer);
	if (peer->cl.rekey_pending && gwd_cluster_may_send(peer) && sent_since_takeover(peer))
		rekey_enqueue(c, peer);
}

void gwd_cluster_session_moved_on(struct gwd_peer *peer, const struct gwd_noise_keypair *kp)
{
	struct gwd_noise_remote *r = &peer->noise;
	struct gwd_noise_keypair *prev = r->previous;

	if (!peer->dev->cluster || kp->imported || r->current != kp || !prev || !prev->imported)
		return;
	r->previous = NULL;
	gwd_cluster_keypair_free(peer->dev, prev);
	gw_dbg("gwd: peer %s: replicated keypair dropped, the peer moved on", peer->name);
}

/* --- Paced takeover rekeys ---------------------------------------------------------- */

static void rekey_tick(struct gw_loop *loop, struct gw_timer *t, void *arg)
{
	struct gwd_cluster *c = arg;
	uint32_t n;

	c->rekey_carry += c->rekey_rate * GWD_CLUSTER_REKEY_TICK_MS;
	n = c->rekey_carry / 1000;
	c->rekey_carry %= 1000;
	while (n && c->rekey_queue.head) {
		struct gwd_peer *peer = c->rekey_queue.head;
		struct gwd_noise_keypair *cur = peer->noise.current;

		gwd_peer_queue_remove(&c->rekey_queue, peer);
		/* Only still ours and still on the replicated keys: not rekeyed since. */
		if (!gwd_cluster_may_send(peer) || !cur || !cur->imported)
			continue;
		gw_dbg("gwd: peer %s: takeover rekey (replicated keypair %08x)", peer->name,
		       cur->local_index);
		gwd_send_handshake_initiation(peer, false);
		c->stats.takeover_rekeys++;
		n--;
	}
	if (!c->rekey_queue.head)
		c->rekey_carry = 0; /* no bursts saved up while idle */
	else
		(void)gw_timer_arm_in(loop, t, GWD_MSEC_NS(GWD_CLUSTER_REKEY_TICK_MS));
}

/* --- Counter regions ------------------------------------------------------------------ */

static bool reuse_holdoff(const struct gwd_cluster *c, const struct gwd_noise_keypair *kp)
{
	return c->incarnation_reused && kp->imported &&
	       gwd_device_now(c->dev) - c->start_ns < GWD_SEC_NS(GWD_CLUSTER_REUSE_HOLDOFF_S);
}

/* The keypair held a region and may never send again. */
static bool keypair_dead(const struct gwd_noise_keypair *kp)
{
	return kp->send_epoch != GWD_REGION_EPOCH_NONE &&
	       kp->sending_counter >= GWD_REJECT_AFTER_MESSAGES;
}

static uint64_t held_end(const struct gwd_cluster *c, const struct gwd_noise_keypair *kp)
{
	return gwd_region_end(kp->send_epoch, c->node_id, c->incarnation);
}

bool gwd_cluster_keypair_usable(const struct gwd_device *dev, const struct gwd_noise_keypair *kp)
{
	const struct gwd_cluster *c = dev->cluster;

	if (!c || kp->send_epoch != GWD_REGION_EPOCH_NONE)
		return kp->sending_counter < GWD_REJECT_AFTER_MESSAGES;
	return kp->greatest_epoch < GWD_REGION_EPOCH_MAX && !reuse_holdoff(c, kp);
}

/* Claims the next region for kp. False when none may be claimed. */
static bool claim_region(struct gwd_cluster *c, struct gwd_noise_keypair *kp)
{
	struct gwd_peer *peer = gwd_peer_of_remote(kp->remote);
	uint16_t epoch;

	if (reuse_holdoff(c, kp)) {
		c->stats.region_refused++;
		return false;
	}
	if (gwd_region_next_epoch(kp->greatest_epoch, kp->send_epoch, &epoch) < 0) {
		/* Epochs exhausted: this keypair is done; the caller rekeys. */
		if (kp->send_epoch != GWD_REGION_EPOCH_NONE)
			kp->sending_counter = GWD_REJECT_AFTER_MESSAGES;
		kp->greatest_epoch = GWD_REGION_EPOCH_MAX;
		c->stats.region_refused++;
		gw_info("gwd: peer %s: counter epochs of keypair %08x exhausted", peer->name,
			kp->local_index);
		return false;
	}
	kp->send_epoch = epoch;
	kp->greatest_epoch = epoch;
	kp->sending_counter = gwd_region_start(epoch, c->node_id, c->incarnation);
	c->stats.region_claims++;
	gw_dbg("gwd: peer %s: keypair %08x sends in region (%u, %u, %u)", peer->name,
	       kp->local_index, epoch, c->node_id, c->incarnation);
	gwd_session_mark(peer, GWD_EXPORT_FULL);
	return true;
}

bool gwd_cluster_next_counter(struct gwd_device *dev, struct gwd_noise_keypair *kp,
			      uint64_t *counter)
{
	struct gwd_cluster *c = dev->cluster;

	if (!c)
		return gwd_noise_keypair_next_counter(kp, counter);
	if (keypair_dead(kp))
		return false;
	/*
	 * A new region when none is held, when the held one is used up, and
	 * when another node has sent in a higher epoch (a split brain, or this
	 * node's ownership came back): the peer's replay window is then above
	 * our region, so move above that epoch rather than send what it drops.
	 */
	if ((kp->send_epoch == GWD_REGION_EPOCH_NONE || kp->sending_counter >= held_end(c, kp) ||
	     kp->greatest_epoch > kp->send_epoch) &&
	    !claim_region(c, kp))
		return false;
	return gwd_noise_keypair_next_counter(kp, counter);
}

uint64_t gwd_cluster_region_headroom(const struct gwd_device *dev,
				     const struct gwd_noise_keypair *kp)
{
	const struct gwd_cluster *c = dev->cluster;

	if (!c)
		return gwd_region_headroom(kp->sending_counter, GWD_REJECT_AFTER_MESSAGES);
	if (kp->send_epoch == GWD_REGION_EPOCH_NONE || keypair_dead(kp))
		return 0;
	return gwd_region_headroom(kp->sending_counter, held_end(c, kp));
}
