// SPDX-License-Identifier: MIT
#include "device.h"

#include <errno.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cluster.h"
#include "crypt.h"
#include "gw/crypto.h"
#include "gw/key.h"
#include "gw/log.h"
#include "gw/nl.h"
#include "messages.h"
#include "offload.h"
#include "peer.h"
#include "tun.h"

enum { INITIAL_PEER_BUCKETS = 64 };

const char *const gwd_stat_names[GWD_STAT__COUNT] = {
    [GWD_STAT_RX_PACKETS] = "rx_packets",
    [GWD_STAT_RX_BYTES] = "rx_bytes",
    [GWD_STAT_TX_PACKETS] = "tx_packets",
    [GWD_STAT_TX_BYTES] = "tx_bytes",
    [GWD_STAT_TUN_RX_PACKETS] = "tun_rx_packets",
    [GWD_STAT_TUN_RX_BYTES] = "tun_rx_bytes",
    [GWD_STAT_TUN_TX_PACKETS] = "tun_tx_packets",
    [GWD_STAT_TUN_TX_BYTES] = "tun_tx_bytes",
    [GWD_STAT_KEEPALIVES_SENT] = "keepalives_sent",
    [GWD_STAT_KEEPALIVES_RECEIVED] = "keepalives_received",
    [GWD_STAT_HANDSHAKES_INITIATED] = "handshakes_initiated",
    [GWD_STAT_HANDSHAKE_RESPONSES_SENT] = "handshake_responses_sent",
    [GWD_STAT_HANDSHAKES_COMPLETED] = "handshakes_completed",
    [GWD_STAT_HANDSHAKE_TIMEOUTS] = "handshake_timeouts",
    [GWD_STAT_HS_FAIL_BAD_MAC1] = "handshake_fail_bad_mac1",
    [GWD_STAT_HS_FAIL_UNKNOWN_PEER] = "handshake_fail_unknown_peer",
    [GWD_STAT_HS_FAIL_REPLAY] = "handshake_fail_replay",
    [GWD_STAT_HS_FAIL_FLOOD] = "handshake_fail_flood",
    [GWD_STAT_HS_FAIL_BAD_AUTH] = "handshake_fail_bad_auth",
    [GWD_STAT_HS_FAIL_OTHER] = "handshake_fail_other",
    [GWD_STAT_HS_RATELIMITED] = "handshake_ratelimited",
    [GWD_STAT_COOKIE_REPLIES_SENT] = "cookie_replies_sent",
    [GWD_STAT_COOKIE_REPLIES_RECEIVED] = "cookie_replies_received",
    [GWD_STAT_COOKIE_REPLIES_INVALID] = "cookie_replies_invalid",
    [GWD_STAT_DROP_NO_ROUTE] = "drop_no_route",
    [GWD_STAT_DROP_NO_ENDPOINT] = "drop_no_endpoint",
    [GWD_STAT_DROP_INVALID_SOURCE] = "drop_invalid_source",
    [GWD_STAT_DROP_REPLAY] = "drop_replay",
    [GWD_STAT_DROP_BAD_AUTH] = "drop_bad_auth",
    [GWD_STAT_DROP_EXPIRED_KEYPAIR] = "drop_expired_keypair",
    [GWD_STAT_DROP_UNKNOWN_INDEX] = "drop_unknown_index",
    [GWD_STAT_DROP_MALFORMED] = "drop_malformed",
    [GWD_STAT_DROP_TOO_BIG] = "drop_too_big",
    [GWD_STAT_DROP_QUEUE_FULL] = "drop_queue_full",
    [GWD_STAT_DROP_HANDSHAKE_TIMEOUT] = "drop_handshake_timeout",
    [GWD_STAT_DROP_SEND_ERROR] = "drop_send_error",
    [GWD_STAT_OFFLOAD_TUN_SPLIT] = "offload_tun_split",
    [GWD_STAT_OFFLOAD_TUN_COALESCED] = "offload_tun_coalesced",
    [GWD_STAT_OFFLOAD_UDP_GSO] = "offload_udp_gso",
    [GWD_STAT_OFFLOAD_UDP_GRO] = "offload_udp_gro",
};

void gwd_stat_add(struct gwd_device *dev, struct gwd_peer *peer, enum gwd_stat s, uint64_t n)
{
	if ((unsigned int)s >= GWD_STAT__COUNT)
		return;
	dev->stats[s] += n;
	if (peer)
		peer->stats[s] += n;
}

/* --- Noise upcalls: the peer table and the index table ---------------------- */

static struct gwd_noise_remote *up_remote_by_pubkey(void *arg, const uint8_t pub[static GW_KEY_LEN])
{
	struct gwd_peer *peer = gwd_peer_lookup(arg, pub);

	return peer ? &peer->noise : NULL;
}

static int up_index_alloc(void *arg, struct gwd_noise_remote *r, uint32_t *out)
{
	struct gwd_device *dev = arg;

	return gwd_index_alloc(&dev->index, GWD_INDEX_HANDSHAKE, r, out);
}

static void up_index_to_keypair(void *arg, uint32_t index, struct gwd_noise_keypair *kp)
{
	struct gwd_device *dev = arg;

	(void)gwd_index_replace(&dev->index, index, GWD_INDEX_KEYPAIR, kp);
}

static void up_index_free(void *arg, uint32_t index)
{
	struct gwd_device *dev = arg;
	struct gwd_noise_keypair *kp;

	/* The core frees a keypair right after this: remember it if it held a region. */
	if (dev->cluster && (kp = gwd_index_lookup(&dev->index, index, GWD_INDEX_KEYPAIR)))
		gwd_cluster_keypair_dropped(dev, kp);
	gwd_index_free(&dev->index, index);
}

/* --- Lifecycle ----------------------------------------------------------------- */

static void ratelimiter_gc(struct gw_loop *loop, struct gw_timer *t, void *arg)
{
	struct gwd_device *dev = arg;

	gwd_ratelimiter_gc(dev->ratelimiter, gwd_device_now(dev));
	(void)gw_timer_arm_in(loop, t, GWD_RATELIMITER_GC_INTERVAL_NS);
}

static int init_tables(struct gwd_device *dev, const struct gwd_device_config *cfg)
{
	const struct gwd_noise_upcalls up = {
	    .arg = dev,
	    .remote_by_pubkey = up_remote_by_pubkey,
	    .index_alloc = up_index_alloc,
	    .index_to_keypair = up_index_to_keypair,
	    .index_free = up_index_free,
	};
	int err;

	dev->peer_buckets = calloc(INITIAL_PEER_BUCKETS, sizeof(*dev->peer_buckets));
	dev->send_buf = malloc(GWD_MAX_PACKET + GWD_MESSAGE_DATA_MIN_LEN + 16);
	if (!dev->peer_buckets || !dev->send_buf)
		return -ENOMEM;
	dev->npeer_buckets = INITIAL_PEER_BUCKETS;
	gw_random_bytes(dev->peer_hash_key, sizeof(dev->peer_hash_key));
	gwd_allowedips_init(&dev->aips);
	err = gwd_index_init(&dev->index, 0);
	if (err)
		return err;
	err = gwd_noise_local_init(&dev->noise, dev->clock, &up);
	if (err)
		return err;
	err = gwd_cookie_checker_init(&dev->cookie, dev->clock);
	if (err)
		return err;
	return gwd_ratelimiter_init(&dev->ratelimiter, cfg->ratelimiter_entries
							   ? cfg->ratelimiter_entries
							   : GWD_RATELIMITER_MAX_DEFAULT);
}

int gwd_device_new(struct gwd_device **out, const struct gwd_device_config *cfg)
{
	struct gwd_device *dev;
	int err;

	if (!cfg->loop)
		return -EINVAL;
	dev = calloc(1, sizeof(*dev));
	if (!dev)
		return -ENOMEM;
	dev->loop = cfg->loop;
	dev->clock = gw_loop_clock(cfg->loop);
	if (cfg->net)
		dev->net = *cfg->net;
	dev->net_arg = cfg->net_arg;
	dev->mtu = cfg->mtu ? cfg->mtu : GWD_DEFAULT_MTU;
	dev->under_load_threshold = cfg->under_load_threshold;
	dev->crypt_workers = -1;
	gw_timer_init(&dev->ratelimiter_gc, ratelimiter_gc, dev);
	err = init_tables(dev, cfg);
	if (err) {
		gwd_device_free(dev);
		return err;
	}
	err = gw_timer_arm_in(dev->loop, &dev->ratelimiter_gc, GWD_RATELIMITER_GC_INTERVAL_NS);
	if (err) {
		gwd_device_free(dev);
		return err;
	}
	*out = dev;
	return 0;
}

void gwd_device_free(struct gwd_device *dev)
{
	if (!dev)
		return;
	/* The TUN takes the owned-peer routes with it (gwd_routes_closing). */
	gwd_routes_closing(dev);
	while (dev->peers_head)
		gwd_peer_remove(dev->peers_head);
	gwd_cluster_free(dev);
	gwd_device_detach_system(dev);
	gw_timer_cancel(dev->loop, &dev->ratelimiter_gc);
	gwd_ratelimiter_free(dev->ratelimiter);
	if (dev->cookie.secrets)
		gwd_cookie_checker_destroy(&dev->cookie);
	if (dev->noise.private_key)
		gwd_noise_local_destroy(&dev->noise);
	if (dev->index.buckets)
		gwd_index_destroy(&dev->index);
	gwd_allowedips_free(&dev->aips);
	for (size_t i = 0; i < dev->staged_nchunks; i++)
		free(dev->staged_chunks[i]);
	free(dev->staged_chunks);
	free(dev->send_buf);
	free(dev->peer_buckets);
	free(dev);
}

int gwd_device_set_private_key(struct gwd_device *dev, const uint8_t *priv)
{
	uint8_t clamped[GW_KEY_LEN], pub[GW_KEY_LEN];
	bool remove = !priv || gw_key_is_zero(priv), same;
	struct gwd_peer *peer;
	int err;

	if (remove) {
		same = !dev->noise.has_identity;
	} else {
		if (!gw_x25519_public(pub, priv))
			return -EINVAL;
		memcpy(clamped, priv, GW_KEY_LEN);
		gw_x25519_clamp(clamped);
		same = dev->noise.has_identity &&
		       gw_memeq(clamped, dev->noise.private_key, GW_KEY_LEN);
		gw_wipe(clamped, sizeof(clamped));
	}
	if (same)
		return 0;
	err = gwd_noise_local_set_private_key(&dev->noise, remove ? NULL : priv);
	if (err)
		return err;
	/* A peer with our own public key would be talking to itself. */
	if (!remove && (peer = gwd_peer_lookup(dev, pub)))
		gwd_peer_remove(peer);
	gwd_cookie_checker_set_key(&dev->cookie,
				   dev->noise.has_identity ? dev->noise.public_key : NULL);
	for (peer = dev->peers_head; peer; peer = peer->next)
		gwd_noise_remote_expire_current(&peer->noise);
	gwd_cluster_identity_changed(dev);
	return 0;
}

bool gwd_device_under_load(struct gwd_device *dev, bool count)
{
	uint64_t now = gwd_device_now(dev);

	if (now - dev->load_window_start >= GW_NSEC_PER_SEC) {
		dev->load_window_start = now;
		dev->load_window_count = 0;
	}
	if (count && ++dev->load_window_count > dev->under_load_threshold) {
		dev->last_under_load = now;
		dev->was_under_load = true;
	}
	/* Stays under load for a second after the rate last exceeded the threshold. */
	return dev->was_under_load && now - dev->last_under_load < GW_NSEC_PER_SEC;
}

/* --- Staging pool ---------------------------------------------------------------- */

static void grow_staged_pool(struct gwd_device *dev)
{
	struct gwd_staged *chunk;
	void **chunks;

	if (dev->staged_total + GWD_STAGED_POOL_CHUNK > GWD_STAGED_POOL_MAX)
		return;
	chunks = realloc(dev->staged_chunks, (dev->staged_nchunks + 1) * sizeof(*chunks));
	if (!chunks)
		return;
	dev->staged_chunks = chunks;
	chunk = malloc(GWD_STAGED_POOL_CHUNK * sizeof(*chunk));
	if (!chunk)
		return;
	dev->staged_chunks[dev->staged_nchunks++] = chunk;
	for (size_t i = 0; i < GWD_STAGED_POOL_CHUNK; i++) {
		chunk[i].next = dev->staged_free;
		dev->staged_free = &chunk[i];
	}
	dev->staged_total += GWD_STAGED_POOL_CHUNK;
}

struct gwd_staged *gwd_device_staged_get(struct gwd_device *dev)
{
	struct gwd_staged *s;

	if (!dev->staged_free)
		grow_staged_pool(dev);
	s = dev->staged_free;
	if (s)
		dev->staged_free = s->next;
	return s;
}

void gwd_device_staged_put(struct gwd_device *dev, struct gwd_staged *s)
{
	s->next = dev->staged_free;
	dev->staged_free = s;
}

/* --- System I/O: TUN, UDP sockets and link events on the loop ------------------- */

enum {
	IO_BATCH = 64,
	/* TUN reads: a virtio header and a 64 KiB super-packet. */
	TUN_BUF_LEN = GWD_VNET_HDR_LEN + GWD_MAX_PACKET + 1,
	/* One UDP_SEGMENT send: the largest IPv4 UDP payload, and the kernel's segment limit. */
	TX_MAX_LEN = 65507,
	TX_MAX_SEGS = 64,
	/* Received datagrams decrypted as one batch at most. */
	RX_JOBS = 64,
	/* recvmmsg() calls per UDP callback at most (each of GWD_UDP_RX_BATCH datagrams). */
	RX_CALLS = 4,
};

/* A received datagram waiting for its batch: where it is and where it came from. */
struct rx_item {
	uint8_t *buf;
	size_t len;
	const union gw_sockaddr *from;
	const struct gwd_src *local;
};

/*
 * Data messages waiting for one UDP_SEGMENT send: all to one endpoint from
 * one source, all seg bytes but the last. src points at the sending peer's
 * source (peer->src); peers are removed only from UAPI and sync callbacks,
 * never while a TUN or UDP callback (which flushes before returning) runs,
 * so it stays valid until the flush.
 */
struct tx_batch {
	uint8_t *buf;
	size_t len, seg, n;
	/* Their encryption, done at the flush (crypt.h). */
	struct gwd_crypt_job jobs[TX_MAX_SEGS];
	bool closed; /* a short datagram ended it */
	union gw_sockaddr to;
	struct gwd_src *src, src_val;
};

struct gwd_sysnet {
	struct gwd_device *dev;
	struct gwd_tun tun;
	struct gwd_udp udp, pending;
	bool has_pending;
	int nlfd;
	uint8_t *rx_buf, *tun_buf;
	/* Offloads (gwd_device_attach_system()): each on when the kernel took it. */
	bool udp_gso, udp_gro;
	bool batching; /* inside a TUN or UDP callback: sends and TUN writes are held */
	uint8_t *seg_buf;
	struct tx_batch tx;
	struct gwd_gro gro;
	struct gwd_crypt_pool *pool; /* NULL: no helper threads */
	struct gwd_crypt_job rx_jobs[RX_JOBS];
	bool rx_prepared[RX_JOBS];
	/* With offloads: the recvmmsg() slots (buffers in rx_buf) and the batch waiting. */
	struct gwd_udp_rx *rx_msgs;
	struct rx_item rx_items[RX_JOBS];
	size_t rx_n;
};

static struct gw_ratelimit io_rl = GW_RATELIMIT_INIT(5 * GW_NSEC_PER_SEC, 5);

static void tun_gone(struct gwd_sysnet *sys, const char *why)
{
	struct gwd_device *dev = sys->dev;

	if (dev->tun_gone)
		return;
	gw_info("gwd: interface %s is gone (%s), shutting down", sys->tun.name, why);
	dev->tun_gone = true;
	gw_loop_stop(dev->loop);
}

/* A send or TUN write that failed after the device counted it done. */
static void late_error(struct gwd_sysnet *sys, const char *what, int err)
{
	gwd_stat_inc(sys->dev, NULL, GWD_STAT_DROP_SEND_ERROR);
	gw_log_rl(&io_rl, GW_LOG_WARN, "gwd: %s: %s", what, strerror(-err));
}

/* Sends the held data messages: one UDP_SEGMENT call, or one by one where that fails. */
static void tx_flush(struct gwd_sysnet *sys)
{
	struct tx_batch *tx = &sys->tx;
	struct gwd_src src = tx->src_val;
	int err = -EIO;

	if (!tx->n)
		return;
	gwd_crypt_run(sys->pool, tx->jobs, tx->n);
	gwd_crypt_wipe(tx->jobs, tx->n);
	if (tx->n > 1 && sys->udp_gso) {
		err =
		    gwd_udp_send_gso(&sys->udp, &tx->to, &src, tx->buf, tx->len, (uint16_t)tx->seg);
		if (!err)
			gwd_stat_inc(sys->dev, NULL, GWD_STAT_OFFLOAD_UDP_GSO);
		if (err == -EIO) {
			gw_info("gwd: UDP segmentation offload refused on this route, "
				"sending datagrams one by one");
			sys->udp_gso = false;
		}
	}
	if (err == -EIO) {
		err = 0;
		for (size_t off = 0; off < tx->len; off += tx->seg) {
			size_t len = tx->len - off < tx->seg ? tx->len - off : tx->seg;
			int e = gwd_udp_send(&sys->udp, &tx->to, &src, tx->buf + off, len);

			if (e)
				err = e;
		}
	}
	if (err)
		late_error(sys, "UDP send", err);
	/* The pinned source was gone: the peer learns it, unless it moved on meanwhile. */
	if (src.family == 0 && tx->src_val.family != 0 && tx->src &&
	    memcmp(tx->src, &tx->src_val, sizeof(src)) == 0)
		memset(tx->src, 0, sizeof(*tx->src));
	tx->n = tx->len = 0;
}

static void flush_all(struct gwd_sysnet *sys)
{
	int err;

	tx_flush(sys);
	if (sys->tun.vnet_hdr && (err = gwd_gro_flush(&sys->gro)) < 0)
		late_error(sys, "TUN write", err);
	sys->batching = false;
}

/*
 * The held datagrams: the data messages among them decrypted as one batch
 * (helper threads), then each processed in arrival order (replay window,
 * roaming, delivery) on this thread.
 */
static void rx_run(struct gwd_sysnet *sys)
{
	struct gwd_crypt_job *jobs = sys->rx_jobs;
	size_t nj = 0;

	for (size_t k = 0; k < sys->rx_n; k++) {
		struct rx_item *it = &sys->rx_items[k];

		sys->rx_prepared[k] = gwd_device_rx_prepare(sys->dev, it->buf, it->len, &jobs[nj]);
		if (sys->rx_prepared[k])
			nj++;
	}
	gwd_crypt_run(sys->pool, jobs, nj);
	nj = 0;
	for (size_t k = 0; k < sys->rx_n; k++) {
		struct rx_item *it = &sys->rx_items[k];

		if (sys->rx_prepared[k])
			gwd_device_receive_opened(sys->dev, it->buf, it->len, it->from, it->local,
						  &jobs[nj++]);
		else
			gwd_device_receive(sys->dev, it->buf, it->len, it->from, it->local);
	}
	gwd_crypt_wipe(jobs, nj);
	sys->rx_n = 0;
}

/* Holds one datagram for the batch; a full batch runs. */
static void rx_add(struct gwd_sysnet *sys, uint8_t *buf, size_t len, const union gw_sockaddr *from,
		   const struct gwd_src *local)
{
	sys->rx_items[sys->rx_n++] = (struct rx_item){buf, len, from, local};
	if (sys->rx_n == RX_JOBS)
		rx_run(sys);
}

/* Without offloads: one recvmsg() and one datagram at a time. */
static void udp_ready_single(struct gwd_sysnet *sys, int fd)
{
	union gw_sockaddr from;
	struct gwd_src local;
	size_t gso;

	for (int i = 0; i < IO_BATCH; i++) {
		ssize_t n = gwd_udp_recv(fd, sys->rx_buf, GWD_MAX_PACKET, &from, &local, &gso);

		if (n == -EAGAIN || n == -EWOULDBLOCK)
			break;
		if (n == -EMSGSIZE) {
			gwd_stat_inc(sys->dev, NULL, GWD_STAT_DROP_TOO_BIG);
			continue;
		}
		if (n < 0) {
			gw_log_rl(&io_rl, GW_LOG_WARN, "gwd: UDP receive: %s", strerror((int)-n));
			break;
		}
		gwd_device_receive(sys->dev, sys->rx_buf, (size_t)n, &from, &local);
	}
}

/*
 * With offloads: up to GWD_UDP_RX_BATCH datagrams per recvmmsg(), each maybe
 * a UDP GRO super-datagram; all of them, from whichever senders, go through
 * one batch. The batch runs before the next call reuses the buffers.
 */
static void udp_ready_batch(struct gwd_sysnet *sys, int fd)
{
	for (int call = 0; call < RX_CALLS; call++) {
		int got = gwd_udp_recv_batch(fd, sys->rx_msgs, GWD_UDP_RX_BATCH);

		if (got == -EAGAIN || got == -EWOULDBLOCK)
			break;
		if (got < 0) {
			gw_log_rl(&io_rl, GW_LOG_WARN, "gwd: UDP receive: %s", strerror(-got));
			break;
		}
		for (int i = 0; i < got; i++) {
			struct gwd_udp_rx *m = &sys->rx_msgs[i];

			if (m->truncated) {
				gwd_stat_inc(sys->dev, NULL, GWD_STAT_DROP_TOO_BIG);
				continue;
			}
			if (!m->gso || m->gso >= m->len) {
				rx_add(sys, m->buf, m->len, &m->from, &m->local);
				continue;
			}
			/* UDP GRO: datagrams of gso bytes back to back, the last maybe shorter. */
			gwd_stat_inc(sys->dev, NULL, GWD_STAT_OFFLOAD_UDP_GRO);
			for (size_t o = 0; o < m->len; o += m->gso) {
				size_t len = m->len - o < m->gso ? m->len - o : m->gso;

				rx_add(sys, m->buf + o, len, &m->from, &m->local);
			}
		}
		rx_run(sys);
		if (got < GWD_UDP_RX_BATCH)
			break; /* drained: spare the call that would say so */
	}
}

static void udp_ready(struct gw_loop *loop, int fd, uint32_t events, void *arg)
{
	struct gwd_sysnet *sys = arg;

	(void)loop;
	(void)events;
	sys->batching = true;
	if (sys->rx_msgs)
		udp_ready_batch(sys, fd);
	else
		udp_ready_single(sys, fd);
	flush_all(sys);
}

static void xmit_one(void *arg, uint8_t *pkt, size_t len)
{
	struct gwd_sysnet *sys = arg;

	gwd_device_xmit(sys->dev, pkt, len);
}

/* One read from the TUN: a packet, or with offloads a super-packet to split. */
static void tun_packet(struct gwd_sysnet *sys, size_t n)
{
	struct virtio_net_hdr h;

	if (!sys->tun.vnet_hdr) {
		gwd_device_xmit(sys->dev, sys->tun_buf, n);
		return;
	}
	if (n < GWD_VNET_HDR_LEN) {
		gwd_stat_inc(sys->dev, NULL, GWD_STAT_DROP_MALFORMED);
		return;
	}
	memcpy(&h, sys->tun_buf, sizeof(h));
	if (h.gso_type != VIRTIO_NET_HDR_GSO_NONE)
		gwd_stat_inc(sys->dev, NULL, GWD_STAT_OFFLOAD_TUN_SPLIT);
	if (gwd_offload_split(&h, sys->tun_buf + GWD_VNET_HDR_LEN, n - GWD_VNET_HDR_LEN,
			      sys->seg_buf, xmit_one, sys) < 0) {
		gwd_stat_inc(sys->dev, NULL, GWD_STAT_DROP_MALFORMED);
		gw_log_rl(&io_rl, GW_LOG_WARN,
			  "gwd: TUN packet with an unusable offload header (gso type %u)",
			  h.gso_type);
	}
}

static void tun_ready(struct gw_loop *loop, int fd, uint32_t events, void *arg)
{
	struct gwd_sysnet *sys = arg;

	(void)loop;
	(void)fd;
	sys->batching = true;
	for (int i = 0; i < IO_BATCH; i++) {
		ssize_t n = gwd_tun_read(&sys->tun, sys->tun_buf, TUN_BUF_LEN);

		if (n == -EAGAIN || n == -EWOULDBLOCK)
			break;
		if (n <= 0) {
			flush_all(sys);
			tun_gone(sys, n < 0 ? strerror((int)-n) : "end of file");
			return;
		}
		tun_packet(sys, (size_t)n);
	}
	flush_all(sys);
	if (events & (EPOLLERR | EPOLLHUP))
		tun_gone(sys, "poll error");
}

/* One link message about our TUN: removal ends the daemon, an MTU change bounds padding. */
static void link_event(struct gwd_sysnet *sys, const struct nlmsghdr *nh)
{
	const struct ifinfomsg *ifi = NLMSG_DATA(nh);
	const struct rtattr *rta;
	int len;

	if (nh->nlmsg_len < NLMSG_LENGTH(sizeof(*ifi)) || ifi->ifi_index != sys->tun.ifindex)
		return;
	if (nh->nlmsg_type == RTM_DELLINK) {
		tun_gone(sys, "link deleted");
		return;
	}
	len = (int)(nh->nlmsg_len - NLMSG_LENGTH(sizeof(*ifi)));
	for (rta = IFLA_RTA(ifi); RTA_OK(rta, len); rta = RTA_NEXT(rta, len)) {
		uint32_t mtu;

		if (rta->rta_type != IFLA_MTU || RTA_PAYLOAD(rta) < sizeof(mtu))
			continue;
		memcpy(&mtu, RTA_DATA(rta), sizeof(mtu));
		if (mtu >= 68 && mtu != sys->dev->mtu) {
			gw_dbg("gwd: %s: MTU now %u", sys->tun.name, mtu);
			sys->dev->mtu = mtu;
		}
	}
}

static void nl_ready(struct gw_loop *loop, int fd, uint32_t events, void *arg)
{
	struct gwd_sysnet *sys = arg;
	union {
		struct nlmsghdr align;
		uint8_t buf[16384];
	} u;

	(void)loop;
	(void)events;
	for (int i = 0; i < IO_BATCH && !sys->dev->tun_gone; i++) {
		ssize_t n = recv(fd, u.buf, sizeof(u.buf), 0);
		const struct nlmsghdr *nh;
		unsigned int len;

		if (n < 0 && errno == ENOBUFS) {
			char name[IF_NAMESIZE];

			/* Events were lost: look the link up instead. */
			if (!if_indextoname((unsigned int)sys->tun.ifindex, name))
				tun_gone(sys, "link not found");
			continue;
		}
		if (n <= 0)
			return;
		len = (unsigned int)n;
		for (nh = &u.align; NLMSG_OK(nh, len); nh = NLMSG_NEXT(nh, len)) {
			if (nh->nlmsg_type == RTM_NEWLINK || nh->nlmsg_type == RTM_DELLINK)
				link_event(sys, nh);
		}
	}
}

static int nl_monitor_open(void)
{
	struct sockaddr_nl sa = {.nl_family = AF_NETLINK, .nl_groups = RTMGRP_LINK};
	int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, NETLINK_ROUTE);

	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int err = -errno;

		close(fd);
		return err;
	}
	return fd;
}

static int udp_watch(struct gwd_sysnet *sys, struct gwd_udp *u)
{
	int err = gw_loop_add_fd(sys->dev->loop, u->fd4, EPOLLIN, udp_ready, sys);

	if (!err && u->fd6 >= 0) {
		err = gw_loop_add_fd(sys->dev->loop, u->fd6, EPOLLIN, udp_ready, sys);
		if (err)
			gw_loop_del_fd(sys->dev->loop, u->fd4);
	}
	return err;
}

static void udp_drop(struct gwd_sysnet *sys, struct gwd_udp *u)
{
	if (u->fd4 >= 0)
		gw_loop_del_fd(sys->dev->loop, u->fd4);
	if (u->fd6 >= 0)
		gw_loop_del_fd(sys->dev->loop, u->fd6);
	gwd_udp_close(u);
}

/* Whether a data message of len bytes joins the held batch as it is. */
static bool tx_fits(const struct tx_batch *tx, const union gw_sockaddr *to,
		    const struct gwd_src *src, size_t len)
{
	return !tx->closed && len <= tx->seg && tx->len + len <= TX_MAX_LEN &&
	       tx->n < TX_MAX_SEGS && src == tx->src &&
	       memcmp(src, &tx->src_val, sizeof(*src)) == 0 && gw_sockaddr_equal(to, &tx->to);
}

/* Handshake messages and cookie replies: now, after what is held (order kept). */
static int sys_send(void *arg, const union gw_sockaddr *to, struct gwd_src *src, const void *buf,
		    size_t len)
{
	struct gwd_sysnet *sys = arg;

	tx_flush(sys);
	return gwd_udp_send(&sys->udp, to, src, buf, len);
}

/* Data messages: held (with their encryption) while a callback runs, else sent now. */
static int sys_send_data(void *arg, const union gw_sockaddr *to, struct gwd_src *src, void *msg,
			 size_t len, const uint8_t *key, uint64_t counter)
{
	struct gwd_sysnet *sys = arg;
	struct tx_batch *tx = &sys->tx;
	struct gwd_message_data *m = msg;
	struct gwd_crypt_job *j;

	if (len < GWD_MESSAGE_DATA_MIN_LEN)
		return -EINVAL;
	if (!sys->batching || !sys->udp_gso || !src || len > TX_MAX_LEN) {
		gw_aead_encrypt(m->encrypted_data, m->encrypted_data,
				len - GWD_MESSAGE_DATA_MIN_LEN, NULL, 0, counter, key);
		return sys_send(arg, to, src, msg, len);
	}
	if (tx->n && !tx_fits(tx, to, src, len))
		tx_flush(sys);
	j = &tx->jobs[tx->n];
	j->data = tx->buf + tx->len + GWD_MESSAGE_DATA_HEADER_LEN;
	j->len = len - GWD_MESSAGE_DATA_MIN_LEN;
	j->counter = counter;
	memcpy(j->key, key, GW_KEY_LEN);
	j->encrypt = true;
	if (!tx->n) {
		tx->to = *to;
		tx->src = src;
		tx->src_val = *src;
		tx->seg = len;
		tx->closed = false;
	}
	memcpy(tx->buf + tx->len, msg, len);
	tx->len += len;
	tx->n++;
	if (len < tx->seg)
		tx->closed = true;
	return 0;
}

static int sys_deliver(void *arg, const void *pkt, size_t len)
{
	struct gwd_sysnet *sys = arg;

	if (sys->tun.vnet_hdr && sys->batching)
		return gwd_gro_add(&sys->gro, pkt, len);
	return gwd_tun_write(&sys->tun, pkt, len);
}

static int gro_write(void *arg, const struct virtio_net_hdr *h, const uint8_t *pkt, size_t len)
{
	struct gwd_sysnet *sys = arg;
	int err = gwd_tun_write_vnet(&sys->tun, h, pkt, len);

	if (!err && h->gso_type != VIRTIO_NET_HDR_GSO_NONE)
		gwd_stat_inc(sys->dev, NULL, GWD_STAT_OFFLOAD_TUN_COALESCED);
	return err;
}

static int sys_bind_prepare(void *arg, uint16_t port, uint32_t fwmark, uint16_t *bound)
{
	struct gwd_sysnet *sys = arg;
	int err;

	if (sys->has_pending)
		udp_drop(sys, &sys->pending);
	sys->has_pending = false;
	err = gwd_udp_open(&sys->pending, port, fwmark);
	if (err)
		return err;
	/* Sockets change between callbacks, never with data messages held. Best effort. */
	if (sys->udp_gro)
		(void)gwd_udp_enable_gro(&sys->pending);
	err = udp_watch(sys, &sys->pending);
	if (err) {
		gwd_udp_close(&sys->pending);
		return err;
	}
	sys->has_pending = true;
	*bound = sys->pending.port;
	return 0;
}

static void sys_bind_finish(void *arg, bool commit)
{
	struct gwd_sysnet *sys = arg;

	if (!sys->has_pending)
		return;
	if (commit) {
		udp_drop(sys, &sys->udp);
		sys->udp = sys->pending;
	} else {
		udp_drop(sys, &sys->pending);
	}
	sys->pending.fd4 = sys->pending.fd6 = -1;
	sys->has_pending = false;
}

static int sys_set_fwmark(void *arg, uint32_t fwmark)
{
	struct gwd_sysnet *sys = arg;

	return gwd_udp_set_fwmark(&sys->udp, fwmark);
}

static const struct gwd_net_ops sys_ops = {
    .send = sys_send,
    .send_data = sys_send_data,
    .deliver = sys_deliver,
    .bind_prepare = sys_bind_prepare,
    .bind_finish = sys_bind_finish,
    .set_fwmark = sys_set_fwmark,
};

static int set_mtu(int ifindex, uint32_t mtu)
{
	struct gw_nl *nl;
	int err = gw_nl_open(&nl);

	if (err)
		return err;
	err = gw_nl_link_set_mtu(nl, ifindex, mtu);
	gw_nl_close(nl);
	return err;
}

static int sys_open(struct gwd_sysnet *sys, const char *ifname)
{
	struct gw_loop *loop = sys->dev->loop;
	int err;

	bool offload = !sys->dev->no_offload;

	/* With offloads one buffer per recvmmsg() slot, each room for a GRO receive. */
	sys->rx_buf = malloc((size_t)GWD_MAX_PACKET * (offload ? GWD_UDP_RX_BATCH : 1));
	sys->tun_buf = malloc(TUN_BUF_LEN);
	if (!sys->rx_buf || !sys->tun_buf)
		return -ENOMEM;
	if (offload) {
		sys->rx_msgs = calloc(GWD_UDP_RX_BATCH, sizeof(*sys->rx_msgs));
		if (!sys->rx_msgs)
			return -ENOMEM;
		for (size_t i = 0; i < GWD_UDP_RX_BATCH; i++) {
			sys->rx_msgs[i].buf = sys->rx_buf + i * GWD_MAX_PACKET;
			sys->rx_msgs[i].cap = GWD_MAX_PACKET;
		}
		sys->seg_buf = malloc(GWD_MAX_PACKET);
		sys->tx.buf = malloc(TX_MAX_LEN);
		if (!sys->seg_buf || !sys->tx.buf)
			return -ENOMEM;
		err = gwd_gro_init(&sys->gro, gro_write, sys);
		if (err)
			return err;
	}
	if (offload) {
		long cpus = sysconf(_SC_NPROCESSORS_ONLN);
		int w = sys->dev->crypt_workers;

		if (w < 0)
			w = cpus > 1 ? (int)cpus - 1 : 0;
		if (w > GWD_CRYPT_MAX_THREADS - 1)
			w = GWD_CRYPT_MAX_THREADS - 1;
		err = gwd_crypt_pool_new(&sys->pool, (unsigned int)w);
		if (err)
			return err;
	}
	err = gwd_tun_open(&sys->tun, ifname, offload);
	if (err)
		return err;
	err = set_mtu(sys->tun.ifindex, sys->dev->mtu);
	if (err)
		return err;
	sys->nlfd = nl_monitor_open();
	if (sys->nlfd < 0)
		return sys->nlfd;
	err = gwd_udp_open(&sys->udp, sys->dev->listen_port, sys->dev->fwmark);
	if (err)
		return err;
	sys->dev->listen_port = sys->udp.port;
	if (offload) {
		/* UDP_SEGMENT needs no socket option: a refusal shows on the first send. */
		sys->udp_gso = true;
		sys->udp_gro = gwd_udp_enable_gro(&sys->udp);
	}
	gw_info("gwd: %s: offloads: TUN TSO/GRO %s, UDP GSO %s, UDP GRO %s; %u crypto helper "
		"thread(s)",
		ifname, sys->tun.offload ? "on" : "off", sys->udp_gso ? "on" : "off",
		sys->udp_gro ? "on" : "off", gwd_crypt_pool_workers(sys->pool));
	err = gw_loop_add_fd(loop, sys->tun.fd, EPOLLIN, tun_ready, sys);
	if (!err)
		err = gw_loop_add_fd(loop, sys->nlfd, EPOLLIN, nl_ready, sys);
	if (!err)
		err = udp_watch(sys, &sys->udp);
	return err;
}

int gwd_device_attach_system(struct gwd_device *dev, const char *ifname)
{
	struct gwd_sysnet *sys;
	int err;

	if (dev->sys)
		return -EBUSY;
	sys = calloc(1, sizeof(*sys));
	if (!sys)
		return -ENOMEM;
	sys->dev = dev;
	sys->tun.fd = sys->nlfd = -1;
	sys->udp.fd4 = sys->udp.fd6 = sys->pending.fd4 = sys->pending.fd6 = -1;
	dev->sys = sys;
	err = sys_open(sys, ifname);
	if (err) {
		gwd_device_detach_system(dev);
		return err;
	}
	dev->net = sys_ops;
	dev->net_arg = sys;
	return 0;
}

int gwd_device_tun_ifindex(const struct gwd_device *dev)
{
	return dev->sys ? dev->sys->tun.ifindex : 0;
}

void gwd_device_detach_system(struct gwd_device *dev)
{
	struct gwd_sysnet *sys = dev->sys;

	if (!sys)
		return;
	/* Unregistering an fd the loop never saw is harmless (-ENOENT). */
	if (sys->tun.fd >= 0)
		gw_loop_del_fd(dev->loop, sys->tun.fd);
	if (sys->nlfd >= 0) {
		gw_loop_del_fd(dev->loop, sys->nlfd);
		close(sys->nlfd);
	}
	udp_drop(sys, &sys->udp);
	if (sys->has_pending)
		udp_drop(sys, &sys->pending);
	gwd_tun_close(&sys->tun);
	free(sys->rx_msgs);
	free(sys->rx_buf);
	free(sys->tun_buf);
	free(sys->seg_buf);
	free(sys->tx.buf);
	gwd_gro_free(&sys->gro);
	gwd_crypt_pool_free(sys->pool);
	free(sys);
	dev->sys = NULL;
	memset(&dev->net, 0, sizeof(dev->net));
}
