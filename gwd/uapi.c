// SPDX-License-Identifier: MIT
/*
 * get/set/stats on a device, and the unix-socket server that speaks them.
 */
#include "uapi.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "gw/key.h"
#include "gw/log.h"
#include "cluster.h"
#include "packet.h"
#include "peer.h"
#include "region.h"
#include "timers.h"

/* --- get and stats ------------------------------------------------------------ */

static int emit_allowed_ip(void *ctx, const struct gw_prefix *p)
{
	return gwd_uapi_buf_append_prefix(ctx, "allowed_ip", p);
}

static void get_peer(struct gwd_uapi_buf *b, const struct gwd_peer *peer)
{
	gwd_uapi_buf_append_key_hex(b, "public_key", peer->noise.public_key);
	gwd_uapi_buf_append_key_hex(b, "preshared_key", peer->noise.psk);
	gwd_uapi_buf_append_kv(b, "protocol_version", "1");
	if (gwd_peer_has_endpoint(peer))
		gwd_uapi_buf_append_endpoint(b, "endpoint", &peer->endpoint);
	gwd_uapi_buf_append_u64(b, "last_handshake_time_sec",
				(uint64_t)peer->last_handshake.tv_sec);
	gwd_uapi_buf_append_u64(b, "last_handshake_time_nsec",
				(uint64_t)peer->last_handshake.tv_nsec);
	gwd_uapi_buf_append_u64(b, "tx_bytes", peer->stats[GWD_STAT_TX_BYTES]);
	gwd_uapi_buf_append_u64(b, "rx_bytes", peer->stats[GWD_STAT_RX_BYTES]);
	gwd_uapi_buf_append_u64(b, "persistent_keepalive_interval", peer->persistent_keepalive);
	gwd_allowedips_for_each(&peer->aips, emit_allowed_ip, b);
}

static void get_device(struct gwd_device *dev, struct gwd_uapi_buf *b)
{
	if (dev->noise.has_identity)
		gwd_uapi_buf_append_key_hex(b, "private_key", dev->noise.private_key);
	if (dev->listen_port)
		gwd_uapi_buf_append_u64(b, "listen_port", dev->listen_port);
	if (dev->fwmark)
		gwd_uapi_buf_append_u64(b, "fwmark", dev->fwmark);
}

int gwd_uapi_get(struct gwd_device *dev, struct gwd_uapi_buf *b)
{
	get_device(dev, b);
	for (const struct gwd_peer *p = dev->peers_head; p && !b->err; p = p->next)
		get_peer(b, p);
	return b->err;
}

static void stats_block(struct gwd_uapi_buf *b, const uint64_t stats[static GWD_STAT__COUNT])
{
	for (size_t i = 0; i < GWD_STAT__COUNT; i++)
		gwd_uapi_buf_append_u64(b, gwd_stat_names[i], stats[i]);
}

/* Cluster lines of the device block (docs/failover.md); none on a standalone gwd. */
static void cluster_device(struct gwd_device *dev, struct gwd_uapi_buf *b)
{
	const struct gwd_cluster *c = dev->cluster;
	const struct gwd_cluster_stats *st = &c->stats;
	uint64_t now = gwd_device_now(dev), owned = 0, sess_owned = 0, sess_standby = 0;

	for (const struct gwd_peer *p = dev->peers_head; p; p = p->next) {
		bool mine = gwd_cluster_may_send(p), live = gwd_peer_has_session(p, now);

		owned += mine;
		sess_owned += mine && live;
		sess_standby += !mine && live;
	}
	gwd_uapi_buf_append_u64(b, "node_id", c->node_id);
	gwd_uapi_buf_append_u64(b, "incarnation", c->incarnation);
	gwd_uapi_buf_append_u64(b, "boot", c->boot);
	gwd_uapi_buf_append_u64(b, "claim_on_receive", c->claim_on_receive);
	gwd_uapi_buf_append_u64(b, "master", c->master);
	gwd_uapi_buf_append_u64(b, "syncd_connected", c->sink != NULL);
	gwd_uapi_buf_append_u64(b, "peers_owned", owned);
	gwd_uapi_buf_append_u64(b, "sessions_owned", sess_owned);
	gwd_uapi_buf_append_u64(b, "sessions_standby", sess_standby);
	gwd_uapi_buf_append_u64(b, "ownership_claims", st->ownership_claims);
	gwd_uapi_buf_append_u64(b, "ownership_releases", st->ownership_releases);
	gwd_uapi_buf_append_u64(b, "ownership_lost", st->ownership_lost);
	gwd_uapi_buf_append_u64(b, "region_claims", st->region_claims);
	gwd_uapi_buf_append_u64(b, "region_refused", st->region_refused);
	gwd_uapi_buf_append_u64(b, "exports", st->exports);
	gwd_uapi_buf_append_u64(b, "export_rx", st->export_rx);
	gwd_uapi_buf_append_u64(b, "export_batches", st->export_batches);
	gwd_uapi_buf_append_u64(b, "export_busy", st->export_busy);
	gwd_uapi_buf_append_u64(b, "imports", st->imports);
	gwd_uapi_buf_append_u64(b, "import_keypairs", st->import_keypairs);
	gwd_uapi_buf_append_u64(b, "import_rx", st->import_rx);
	gwd_uapi_buf_append_u64(b, "import_rejected", st->import_rejected);
	gwd_uapi_buf_append_u64(b, "import_unknown_peer", st->import_unknown_peer);
	gwd_uapi_buf_append_u64(b, "import_tombstoned", st->import_tombstoned);
	gwd_uapi_buf_append_u64(b, "import_expired", st->import_expired);
	gwd_uapi_buf_append_u64(b, "standby_silenced", st->standby_silenced);
	gwd_uapi_buf_append_u64(b, "drop_not_owner", st->drop_not_owner);
	gwd_uapi_buf_append_u64(b, "takeover_rekeys", st->takeover_rekeys);
	gwd_uapi_buf_append_u64(b, "owned_routes", st->owned_routes);
	gwd_uapi_buf_append_u64(b, "route_errors", st->route_errors);
	gwd_uapi_buf_append_u64(b, "tombstones", gwd_cluster_tombstone_count(c));
}

/* Cluster lines of a peer block: ownership and the current keypair's region. */
static void cluster_peer(struct gwd_device *dev, const struct gwd_peer *p, struct gwd_uapi_buf *b)
{
	const struct gwd_noise_keypair *kp = p->noise.current;
	bool mine = gwd_cluster_may_send(p);

	gwd_uapi_buf_append_u64(b, "owner", p->cl.owner);
	gwd_uapi_buf_append_u64(b, "owner_epoch", p->cl.owner_epoch);
	gwd_uapi_buf_append_u64(b, "owned", mine);
	gwd_uapi_buf_append_u64(b, "standby",
				!mine && gwd_peer_has_session(p, gwd_device_now(dev)));
	if (!kp)
		return;
	gwd_uapi_buf_append_u64(b, "keypair_imported", kp->imported);
	gwd_uapi_buf_append_u64(b, "greatest_epoch", kp->greatest_epoch);
	if (kp->send_epoch != GWD_REGION_EPOCH_NONE)
		gwd_uapi_buf_append_u64(b, "send_epoch", kp->send_epoch);
	gwd_uapi_buf_append_u64(b, "region_headroom", gwd_cluster_region_headroom(dev, kp));
}

int gwd_uapi_stats(struct gwd_device *dev, struct gwd_uapi_buf *b)
{
	gwd_uapi_buf_append_u64(b, "peers", dev->npeers);
	gwd_uapi_buf_append_u64(b, "under_load", gwd_device_under_load(dev, false));
	if (dev->cluster)
		cluster_device(dev, b);
	stats_block(b, dev->stats);
	for (const struct gwd_peer *p = dev->peers_head; p && !b->err; p = p->next) {
		gwd_uapi_buf_append_key_hex(b, "public_key", p->noise.public_key);
		gwd_uapi_buf_append_u64(b, "staged_packets", p->nstaged);
		if (dev->cluster)
			cluster_peer(dev, p, b);
		stats_block(b, p->stats);
	}
	return b->err;
}

/* --- set: a transaction ----------------------------------------------------- */

enum block_action {
	ACT_SKIP,   /* update_only of an absent peer, or our own public key */
	ACT_REMOVE, /* remove=true */
	ACT_UPDATE, /* create if absent (prealloc), then apply */
};

/* What a transaction will do, worked out before anything changes. */
struct plan {
	enum block_action *action;
	struct gwd_peer **prealloc; /* new peer of a block that creates one */
	bool *kick;		    /* send a keepalive once committed */
	/* Open-addressed table of the distinct keys: whether each exists at this point. */
	const uint8_t **keys;
	bool *exists;
	size_t mask;
	uint8_t own_pub[GW_KEY_LEN];
	bool has_own;
};

static void plan_free(struct plan *pl, size_t n)
{
	if (pl->prealloc) {
		for (size_t i = 0; i < n; i++)
			if (pl->prealloc[i])
				gwd_peer_remove(pl->prealloc[i]);
	}
	free(pl->action);
	free(pl->prealloc);
	free(pl->kick);
	free(pl->keys);
	free(pl->exists);
}

static size_t plan_slot(struct plan *pl, const uint8_t *key)
{
	uint64_t h;
	size_t i;

	memcpy(&h, key, sizeof(h));
	for (i = (size_t)(h * 0x9e3779b97f4a7c15ull >> 20) & pl->mask; pl->keys[i];
	     i = (i + 1) & pl->mask) {
		if (memcmp(pl->keys[i], key, GW_KEY_LEN) == 0)
			break;
	}
	return i;
}

/* The identity the device will have once the set is applied. */
static int plan_identity(struct plan *pl, struct gwd_device *dev, const struct gwd_uapi_set *set)
{
	if (!(set->flags & GWD_UAPI_DEV_PRIVATE_KEY)) {
		pl->has_own = dev->noise.has_identity;
		memcpy(pl->own_pub, dev->noise.public_key, GW_KEY_LEN);
		return 0;
	}
	pl->has_own = !gw_key_is_zero(set->private_key);
	if (pl->has_own && !gw_x25519_public(pl->own_pub, set->private_key))
		return -EINVAL;
	return 0;
}

static int plan_alloc(struct plan *pl, size_t n)
{
	size_t cap = 16;

	while (cap < 2 * n)
		cap *= 2;
	pl->mask = cap - 1;
	pl->action = calloc(n ? n : 1, sizeof(*pl->action));
	pl->prealloc = calloc(n ? n : 1, sizeof(*pl->prealloc));
	pl->kick = calloc(n ? n : 1, sizeof(*pl->kick));
	pl->keys = calloc(cap, sizeof(*pl->keys));
	pl->exists = calloc(cap, sizeof(*pl->exists));
	if (!pl->action || !pl->prealloc || !pl->kick || !pl->keys || !pl->exists)
		return -ENOMEM;
	return 0;
}

/* Decides every block's action and allocates every peer the set creates. */
static int plan_make(struct plan *pl, struct gwd_device *dev, const struct gwd_uapi_set *set)
{
	bool replace = set->flags & GWD_UAPI_DEV_REPLACE_PEERS;
	int err = plan_alloc(pl, set->n_peers);

	if (!err)
		err = plan_identity(pl, dev, set);
	for (size_t i = 0; !err && i < set->n_peers; i++) {
		const struct gwd_uapi_peer *up = &set->peers[i];
		size_t k = plan_slot(pl, up->public_key);

		if (!pl->keys[k]) {
			pl->keys[k] = up->public_key;
			pl->exists[k] = !replace && gwd_peer_lookup(dev, up->public_key);
		}
		if (pl->has_own && memcmp(up->public_key, pl->own_pub, GW_KEY_LEN) == 0) {
			pl->action[i] = ACT_SKIP; /* as the kernel: silently ignored */
		} else if (up->flags & GWD_UAPI_PEER_REMOVE) {
			pl->action[i] = ACT_REMOVE;
			pl->exists[k] = false;
		} else if (!pl->exists[k] && (up->flags & GWD_UAPI_PEER_UPDATE_ONLY)) {
			pl->action[i] = ACT_SKIP;
		} else {
			pl->action[i] = ACT_UPDATE;
			if (!pl->exists[k])
				err = gwd_peer_new(dev, up->public_key, &pl->prealloc[i]);
			pl->exists[k] = true;
		}
	}
	return err;
}

/* Applies one peer block to peer; the first allowed-IP failure is returned. */
static int apply_peer(struct gwd_device *dev, struct gwd_peer *peer, const struct gwd_uapi_set *set,
		      const struct gwd_uapi_peer *up, bool *kick)
{
	const struct gw_prefix *aips = gwd_uapi_peer_allowed_ips(set, up);
	int err = 0;

	if (up->flags & GWD_UAPI_PEER_PRESHARED_KEY)
		gwd_noise_remote_set_psk(
		    &peer->noise, gw_key_is_zero(up->preshared_key) ? NULL : up->preshared_key);
	if (up->flags & GWD_UAPI_PEER_ENDPOINT)
		gwd_peer_set_endpoint(peer, &up->endpoint);
	if (up->flags & GWD_UAPI_PEER_KEEPALIVE) {
		*kick = !peer->persistent_keepalive && up->persistent_keepalive;
		peer->persistent_keepalive = up->persistent_keepalive;
		gwd_timers_persistent_keepalive_changed(peer);
	}
	if (up->flags & GWD_UAPI_PEER_REPLACE_ALLOWED_IPS)
		gwd_allowedips_remove_by_peer(&dev->aips, &peer->aips);
	for (size_t j = 0; j < up->n_allowed_ips; j++) {
		int e = gwd_allowedips_insert_prefix(&dev->aips, &aips[j], &peer->aips);

		if (e && !err)
			err = e;
	}
	if ((up->flags & GWD_UAPI_PEER_REPLACE_ALLOWED_IPS) || up->n_allowed_ips)
		gwd_routes_mark(peer);
	return err;
}

/* Binds a new port and/or sets the fwmark: the fallible device changes. */
static int prepare_sockets(struct gwd_device *dev, const struct gwd_uapi_set *set, bool *rebound)
{
	uint32_t fwmark = set->flags & GWD_UAPI_DEV_FWMARK ? set->fwmark : dev->fwmark;
	uint16_t bound = set->listen_port;
	int err;

	*rebound = false;
	if ((set->flags & GWD_UAPI_DEV_LISTEN_PORT) && set->listen_port != dev->listen_port) {
		if (dev->net.bind_prepare) {
			err = dev->net.bind_prepare(dev->net_arg, set->listen_port, fwmark, &bound);
			if (err)
				return err;
		}
		*rebound = true;
		dev->listen_port = bound;
	} else if (fwmark != dev->fwmark && dev->net.set_fwmark) {
		err = dev->net.set_fwmark(dev->net_arg, fwmark);
		if (err)
			return err;
	}
	dev->fwmark = fwmark;
	return 0;
}

static int commit(struct gwd_device *dev, const struct gwd_uapi_set *set, struct plan *pl)
{
	int err = 0, e;

	if (set->flags & GWD_UAPI_DEV_PRIVATE_KEY)
		(void)gwd_device_set_private_key(dev, set->private_key); /* checked by plan */
	if (set->flags & GWD_UAPI_DEV_REPLACE_PEERS) {
		while (dev->peers_head)
			gwd_peer_remove(dev->peers_head);
	}
	for (size_t i = 0; i < set->n_peers; i++) {
		const struct gwd_uapi_peer *up = &set->peers[i];
		struct gwd_peer *peer = gwd_peer_lookup(dev, up->public_key);

		if (pl->action[i] == ACT_SKIP)
			continue;
		if (pl->action[i] == ACT_REMOVE) {
			if (peer)
				gwd_peer_remove(peer);
			continue;
		}
		if (!peer) {
			peer = pl->prealloc[i];
			pl->prealloc[i] = NULL;
			gwd_peer_link(peer);
		}
		e = apply_peer(dev, peer, set, up, &pl->kick[i]);
		if (e && !err)
			err = e;
	}
	return err;
}

/* Persistent keepalive just turned on: send one now (as the kernel does). */
static void kick_peers(struct gwd_device *dev, const struct gwd_uapi_set *set,
		       const struct plan *pl)
{
	for (size_t i = 0; i < set->n_peers; i++) {
		struct gwd_peer *peer;

		if (!pl->kick[i])
			continue;
		peer = gwd_peer_lookup(dev, set->peers[i].public_key);
		if (peer && peer->persistent_keepalive && gwd_peer_has_endpoint(peer))
			gwd_send_keepalive(peer);
	}
}

int gwd_uapi_apply(struct gwd_device *dev, const struct gwd_uapi_set *set)
{
	struct plan pl = {0};
	uint16_t old_port = dev->listen_port;
	uint32_t old_fwmark = dev->fwmark;
	bool rebound = false;
	int err;

	err = plan_make(&pl, dev, set);
	if (!err)
		err = prepare_sockets(dev, set, &rebound);
	if (err) {
		plan_free(&pl, set->n_peers);
		return err;
	}
	if (rebound && dev->net.bind_finish)
		dev->net.bind_finish(dev->net_arg, true);
	err = commit(dev, set, &pl);
	if (err)
		gw_err("gwd: configuration partly applied: %s", strerror(-err));
	kick_peers(dev, set, &pl);
	plan_free(&pl, set->n_peers);
	if (dev->listen_port != old_port || dev->fwmark != old_fwmark)
		gw_info("gwd: listening on port %u, fwmark %u", dev->listen_port, dev->fwmark);
	return err;
}

/* --- The socket server -------------------------------------------------------- */

enum {
	CONN_IN_LEN = 4096,
	/* Answers up to this size keep their buffer for the next request. */
	CONN_KEEP_OUT = 64 << 10,
	/*
	 * Peers of a get=1 answer written per loop turn (about 3 ms at 100k
	 * peers): the answer is sent in slices, so the data path keeps running.
	 */
	GET_SLICE = 1024,
};

struct conn {
	struct gwd_uapi_server *srv;
	struct conn *next, *prev;
	int fd;
	struct gwd_uapi_reader reader;
	struct gwd_uapi_set set;
	bool in_set;
	bool eof;
	char in[CONN_IN_LEN];
	size_t in_off, in_len;
	struct gwd_uapi_buf out; /* may hold the private key: wiped when sent */
	size_t out_off;
	struct gwd_peer_cursor get; /* a get=1 answer in progress while get.active */
};

struct gwd_uapi_server {
	struct gwd_device *dev;
	int fd;
	char *path;
	struct conn *conns;
	size_t nconns;
};

static struct gw_ratelimit uapi_rl = GW_RATELIMIT_INIT(5 * GW_NSEC_PER_SEC, 5);

static void conn_close(struct conn *c)
{
	struct gwd_uapi_server *srv = c->srv;

	gw_loop_del_fd(srv->dev->loop, c->fd);
	close(c->fd);
	gwd_peer_cursor_stop(srv->dev, &c->get);
	gwd_uapi_reader_wipe(&c->reader);
	if (c->in_set)
		gwd_uapi_set_free(&c->set);
	gwd_uapi_buf_free(&c->out);
	gw_wipe(c->in, sizeof(c->in));
	if (c->prev)
		c->prev->next = c->next;
	else
		srv->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	srv->nconns--;
	free(c);
}

/* Writes what it can of the pending answer; false when the connection died. */
static bool conn_flush(struct conn *c)
{
	while (c->out_off < c->out.len) {
		ssize_t n = send(c->fd, c->out.data + c->out_off, c->out.len - c->out_off,
				 MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			gw_loop_mod_fd(c->srv->dev->loop, c->fd, EPOLLOUT);
			return true;
		}
		if (n <= 0)
			return false;
		c->out_off += (size_t)n;
	}
	if (c->out.cap > CONN_KEEP_OUT && !c->get.active)
		gwd_uapi_buf_free(&c->out);
	else
		gwd_uapi_buf_reset(&c->out);
	c->out_off = 0;
	gw_loop_mod_fd(c->srv->dev->loop, c->fd, EPOLLIN);
	return true;
}

static bool conn_busy(const struct conn *c)
{
	return c->out.len > 0 || c->get.active;
}

/* Ends an answer: on an error the partial answer is replaced by the errno line. */
static void answer(struct conn *c, int err)
{
	if (!err)
		err = c->out.err;
	if (err) {
		gwd_uapi_buf_reset(&c->out);
		if (err != -EMSGSIZE && err != -ENOMEM)
			gw_log_rl(&uapi_rl, GW_LOG_INFO, "gwd: configuration request failed: %s",
				  strerror(-err));
	}
	gwd_uapi_buf_append_errno(&c->out, err);
}

/*
 * The next slice of a get=1 answer into c->out; with the last peer, the
 * errno line. A peer removed before its turn is left out, one added meanwhile
 * comes at the end: each peer is whole, the list is as of the answer's end.
 */
static void get_slice(struct conn *c)
{
	struct gwd_peer *p;

	for (unsigned n = 0; n < GET_SLICE && !c->out.err; n++) {
		p = gwd_peer_cursor_next(&c->get);
		if (!p)
			break;
		get_peer(&c->out, p);
	}
	if (c->out.err || !c->get.next) {
		gwd_peer_cursor_stop(c->srv->dev, &c->get);
		answer(c, 0); /* on an error: what was not sent yet is replaced */
	}
}

static void do_set_end(struct conn *c)
{
	struct gwd_uapi_error e;
	int err;

	if (!c->in_set) {
		gwd_uapi_set_init(&c->set, 0);
		c->in_set = true;
	}
	err = gwd_uapi_set_finish(&c->set, &e);
	if (err)
		gw_log_rl(&uapi_rl, GW_LOG_INFO, "gwd: set request refused at line %u: %s", e.line,
			  e.msg ? e.msg : strerror(-err));
	else
		err = gwd_uapi_apply(c->srv->dev, &c->set);
	gwd_uapi_set_free(&c->set);
	c->in_set = false;
	answer(c, err);
}

/* "stats=1\n\n" at the start of an operation: 1 handled, 0 not stats, -EAGAIN need more. */
static int try_stats(struct conn *c)
{
	static const char want[] = "stats=1\n\n";
	size_t n = c->in_len - c->in_off, k = n < sizeof(want) - 1 ? n : sizeof(want) - 1;

	if (memcmp(c->in + c->in_off, want, k) != 0)
		return 0;
	if (n < sizeof(want) - 1)
		return -EAGAIN;
	c->in_off += sizeof(want) - 1;
	answer(c, gwd_uapi_stats(c->srv->dev, &c->out));
	return 1;
}

/* One reader event; false when the stream is out of step. */
static bool conn_event(struct conn *c)
{
	const char *line;
	size_t used, line_len;
	int ev = gwd_uapi_reader_next(&c->reader, c->in + c->in_off, c->in_len - c->in_off, &used,
				      &line, &line_len);

	c->in_off += used;
	switch (ev) {
	case GWD_UAPI_EV_MORE:
		return true;
	case GWD_UAPI_EV_GET:
		get_device(c->srv->dev, &c->out);
		gwd_peer_cursor_start(c->srv->dev, &c->get);
		get_slice(c);
		return true;
	case GWD_UAPI_EV_SET_LINE:
		if (!c->in_set) {
			gwd_uapi_set_init(&c->set, 0);
			c->in_set = true;
		}
		gwd_uapi_set_line(&c->set, line, line_len); /* errors stick until the end */
		return true;
	case GWD_UAPI_EV_SET_END:
		do_set_end(c);
		return true;
	default:
		return false;
	}
}

/*
 * Handles buffered requests, writing each answer before the next request,
 * until input runs out or an answer waits for the socket. False when the
 * connection must close.
 */
static bool conn_process(struct conn *c)
{
	for (;;) {
		while (c->in_off < c->in_len && !conn_busy(c)) {
			if (!c->in_set && gwd_uapi_reader_idle(&c->reader)) {
				int r = try_stats(c);

				if (r == -EAGAIN)
					break;
				if (r == 1)
					continue;
			}
			if (!conn_event(c))
				return false;
		}
		if (!conn_busy(c))
			break;
		if (!c->out.len)
			get_slice(c); /* a get=1 answer goes on */
		if (!conn_flush(c))
			return false;
		if (c->out.len)
			break; /* EPOLLOUT resumes */
		if (c->get.active) {
			/* The next slice in the next turn: the socket is writable, so at once. */
			gw_loop_mod_fd(c->srv->dev->loop, c->fd, EPOLLOUT);
			break;
		}
	}
	/* Set lines may carry keys: leave no copy behind the moved rest. */
	memmove(c->in, c->in + c->in_off, c->in_len - c->in_off);
	gw_wipe(c->in + c->in_len - c->in_off, c->in_off);
	c->in_len -= c->in_off;
	c->in_off = 0;
	return true;
}

static bool conn_read(struct conn *c)
{
	ssize_t n;

	if (c->in_len == sizeof(c->in))
		return true; /* a partial "stats=1" cannot fill it; conn_process drains it */
	n = recv(c->fd, c->in + c->in_len, sizeof(c->in) - c->in_len, MSG_DONTWAIT);
	if (n < 0)
		return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
	if (n == 0) {
		c->eof = true;
		return true;
	}
	c->in_len += (size_t)n;
	return true;
}

static void conn_ready(struct gw_loop *loop, int fd, uint32_t events, void *arg)
{
	struct conn *c = arg;
	bool ok;

	(void)loop;
	(void)fd;
	(void)events;
	if (conn_busy(c)) {
		/* Writable again: finish the answer (or its slice), then go on. */
		ok = conn_flush(c);
		if (ok && c->out.len)
			return;
	} else {
		ok = conn_read(c);
	}
	if (!ok || !conn_process(c)) {
		conn_close(c);
		return;
	}
	/* End of stream: done once every complete request has been answered. */
	if (c->eof && !conn_busy(c))
		conn_close(c);
}

static void listen_ready(struct gw_loop *loop, int fd, uint32_t events, void *arg)
{
	struct gwd_uapi_server *srv = arg;

	(void)events;
	for (;;) {
		int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		struct conn *c;

		if (cfd < 0)
			return;
		c = srv->nconns < GWD_UAPI_MAX_CONNECTIONS ? calloc(1, sizeof(*c)) : NULL;
		if (!c || gw_loop_add_fd(loop, cfd, EPOLLIN, conn_ready, c) < 0) {
			gw_log_rl(&uapi_rl, GW_LOG_WARN,
				  "gwd: refusing a configuration connection");
			free(c);
			close(cfd);
			continue;
		}
		c->srv = srv;
		c->fd = cfd;
		gwd_uapi_reader_init(&c->reader);
		gwd_uapi_buf_init(&c->out, GWD_UAPI_REPLY_MAX);
		c->next = srv->conns;
		if (srv->conns)
			srv->conns->prev = c;
		srv->conns = c;
		srv->nconns++;
	}
}

static int unix_addr(struct sockaddr_un *sa, const char *path)
{
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sa->sun_path))
		return -ENAMETOOLONG;
	strcpy(sa->sun_path, path);
	return 0;
}

int gwd_uapi_socket_alive(const char *path)
{
	struct sockaddr_un sa;
	int fd, err = unix_addr(&sa, path);

	if (err)
		return err;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	err = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 ? 1 : -errno;
	close(fd);
	if (err == -ECONNREFUSED || err == -ENOENT)
		return 0;
	return err;
}

static int listen_on(const char *path)
{
	struct sockaddr_un sa;
	mode_t old;
	int fd, err = unix_addr(&sa, path);

	if (err)
		return err;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (unlink(path) < 0 && errno != ENOENT)
		goto fail;
	old = umask(0077);
	err = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	if (err < 0 || chmod(path, 0600) < 0 || listen(fd, 16) < 0)
		goto fail;
	return fd;
fail:
	err = -errno;
	close(fd);
	return err;
}

int gwd_uapi_server_open(struct gwd_uapi_server **out, struct gwd_device *dev, const char *path)
{
	struct gwd_uapi_server *srv = calloc(1, sizeof(*srv));
	int err = -ENOMEM;

	if (!srv)
		return -ENOMEM;
	srv->dev = dev;
	srv->fd = -1;
	srv->path = strdup(path);
	if (!srv->path)
		goto fail;
	srv->fd = listen_on(path);
	if (srv->fd < 0) {
		err = srv->fd;
		goto fail;
	}
	err = gw_loop_add_fd(dev->loop, srv->fd, EPOLLIN, listen_ready, srv);
	if (err) {
		unlink(path);
		goto fail;
	}
	*out = srv;
	return 0;
fail:
	if (srv->fd >= 0)
		close(srv->fd);
	free(srv->path);
	free(srv);
	return err;
}

void gwd_uapi_server_close(struct gwd_uapi_server *srv)
{
	if (!srv)
		return;
	while (srv->conns)
		conn_close(srv->conns);
	gw_loop_del_fd(srv->dev->loop, srv->fd);
	close(srv->fd);
	unlink(srv->path);
	free(srv->path);
	free(srv);
}
