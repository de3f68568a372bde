/* SPDX-License-Identifier: MIT */
/*
 * The gwd interface: its identity, peers, receiver indexes, allowed IPs,
 * cookie checker and rate limiter, and the counters `stats=1` reports.
 *
 * Packet processing (send.c, receive.c, timers.c) touches the outside world
 * only through struct gwd_net_ops, so unit tests run two devices in memory on
 * a fake clock, and the system I/O (TUN, UDP sockets on the event loop) is
 * one implementation of those hooks (gwd_device_attach_system()).
 *
 * Single-threaded: everything here runs on the device's gw_loop.
 */
#ifndef GWD_DEVICE_H
#define GWD_DEVICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "allowedips.h"
#include "cookie.h"
#include "gw/addr.h"
#include "gw/loop.h"
#include "index.h"
#include "noise.h"
#include "ratelimiter.h"
#include "udp.h"

struct gwd_cluster;
struct gwd_peer;
struct gwd_sysnet;

enum {
	GWD_DEFAULT_MTU = 1420,
	/* Handshake packets per second above which the device is "under load". */
	GWD_UNDER_LOAD_DEFAULT = 1000,
	/* Outbound packets held per peer while it has no session (the kernel's). */
	GWD_MAX_STAGED_PACKETS = 128,
	/* Largest plaintext a staged slot holds: jumbo frames fit. */
	GWD_STAGED_SLOT_LEN = 9216,
	/* Slots in the device's staging pool at most; it grows in chunks on demand. */
	GWD_STAGED_POOL_MAX = 2048,
	GWD_STAGED_POOL_CHUNK = 32,
	/* Largest UDP payload (and IP packet) handled: the receive and send buffers. */
	GWD_MAX_PACKET = 65535,
};

/*
 * Counters, kept per device and per peer under the same names (a peer's are
 * the share attributable to it). "stats=1" prints them; docs/gwd.md explains
 * each. Keep gwd_stat_names[] in step.
 */
enum gwd_stat {
	GWD_STAT_RX_PACKETS,	 /* UDP datagrams received (peer: authenticated ones) */
	GWD_STAT_RX_BYTES,	 /* their UDP payload bytes (peer: as wg's rx_bytes) */
	GWD_STAT_TX_PACKETS,	 /* UDP datagrams sent */
	GWD_STAT_TX_BYTES,	 /* their UDP payload bytes (peer: as wg's tx_bytes) */
	GWD_STAT_TUN_RX_PACKETS, /* IP packets read from the TUN (peer: routed to it) */
	GWD_STAT_TUN_RX_BYTES,
	GWD_STAT_TUN_TX_PACKETS, /* IP packets decrypted and written to the TUN */
	GWD_STAT_TUN_TX_BYTES,
	GWD_STAT_KEEPALIVES_SENT,
	GWD_STAT_KEEPALIVES_RECEIVED,
	GWD_STAT_HANDSHAKES_INITIATED, /* initiations sent, retransmissions included */
	GWD_STAT_HANDSHAKE_RESPONSES_SENT,
	GWD_STAT_HANDSHAKES_COMPLETED, /* response consumed, or our response confirmed */
	GWD_STAT_HANDSHAKE_TIMEOUTS,   /* gave up after MAX_TIMER_HANDSHAKES retries */
	GWD_STAT_HS_FAIL_BAD_MAC1,
	GWD_STAT_HS_FAIL_UNKNOWN_PEER,	  /* static key of no peer, or an unknown receiver index */
	GWD_STAT_HS_FAIL_REPLAY,	  /* initiation timestamp not newer */
	GWD_STAT_HS_FAIL_FLOOD,		  /* initiations closer than 20 ms */
	GWD_STAT_HS_FAIL_BAD_AUTH,	  /* static, timestamp or response did not decrypt */
	GWD_STAT_HS_FAIL_OTHER,		  /* no identity, bad key, bad state, out of memory */
	GWD_STAT_HS_RATELIMITED,	  /* under load, the source exceeded its rate */
	GWD_STAT_COOKIE_REPLIES_SENT,	  /* under load, answered without processing */
	GWD_STAT_COOKIE_REPLIES_RECEIVED, /* and accepted */
	GWD_STAT_COOKIE_REPLIES_INVALID,  /* unknown index, unexpected or not authentic */
	GWD_STAT_DROP_NO_ROUTE,		  /* TUN packet to an address no peer allows */
	GWD_STAT_DROP_NO_ENDPOINT,	  /* its peer has no endpoint yet */
	GWD_STAT_DROP_INVALID_SOURCE,	 /* decrypted packet from an address the peer may not use */
	GWD_STAT_DROP_REPLAY,		 /* counter seen or too old */
	GWD_STAT_DROP_BAD_AUTH,		 /* data packet did not authenticate */
	GWD_STAT_DROP_EXPIRED_KEYPAIR,	 /* keypair older than REJECT_AFTER_TIME */
	GWD_STAT_DROP_UNKNOWN_INDEX,	 /* data for no keypair of ours */
	GWD_STAT_DROP_MALFORMED,	 /* bad message type or length, bad IP header */
	GWD_STAT_DROP_TOO_BIG,		 /* larger than a buffer or staging slot */
	GWD_STAT_DROP_QUEUE_FULL,	 /* staging queue or pool full: oldest dropped */
	GWD_STAT_DROP_HANDSHAKE_TIMEOUT, /* staged packets purged when handshakes gave up */
	GWD_STAT_DROP_SEND_ERROR,	 /* the UDP or TUN write failed */
	/* Offloads (device only; peers show 0): batched system calls, each many packets. */
	GWD_STAT_OFFLOAD_TUN_SPLIT,	/* TCP super-packets read from the TUN and split */
	GWD_STAT_OFFLOAD_TUN_COALESCED, /* TCP super-packets written to the TUN */
	GWD_STAT_OFFLOAD_UDP_GSO,	/* UDP_SEGMENT sends */
	GWD_STAT_OFFLOAD_UDP_GRO,	/* coalesced UDP receives */
	GWD_STAT__COUNT,
};

extern const char *const gwd_stat_names[GWD_STAT__COUNT];

/*
 * The device's view of the outside world. All hooks but send_data are required; each
 * returns 0 or -errno and must not call back into the device.
 */
struct gwd_net_ops {
	/* One UDP datagram to `to`, from *src when set (clears *src if that address is gone). */
	int (*send)(void *arg, const union gw_sockaddr *to, struct gwd_src *src, const void *buf,
		    size_t len);
	/* One decrypted IP packet to the TUN. */
	int (*deliver)(void *arg, const void *pkt, size_t len);
	/*
	 * Transaction on the UDP sockets: bind_prepare binds new ones on port
	 * (0: random) with fwmark, without dropping the old, and reports the
	 * port; bind_finish then keeps the new ones (commit) or closes them.
	 */
	int (*bind_prepare)(void *arg, uint16_t port, uint32_t fwmark, uint16_t *bound);
	void (*bind_finish)(void *arg, bool commit);
	/* SO_MARK on the current sockets. */
	int (*set_fwmark)(void *arg, uint32_t fwmark);
	/*
	 * Optional (NULL: the device encrypts and calls send). A data message
	 * of len bytes whose payload (len - GWD_MESSAGE_DATA_MIN_LEN bytes,
	 * padding included) is still plaintext: the hook encrypts it under key
	 * and counter, now or later in a batch (crypt.h), and sends it like
	 * send. It copies what it keeps (msg, key); the return is as send's.
	 */
	int (*send_data)(void *arg, const union gw_sockaddr *to, struct gwd_src *src, void *msg,
			 size_t len, const uint8_t *key, uint64_t counter);
};

struct gwd_device_config {
	struct gw_loop *loop; /* timers (and, for the system I/O, fds) */
	/* NULL: none yet; gwd_device_attach_system() installs the real ones. */
	const struct gwd_net_ops *net;
	void *net_arg;
	uint32_t mtu; /* 0: GWD_DEFAULT_MTU; bounds data padding */
	/* Handshake packets per second that put the device under load; 0: always. */
	uint32_t under_load_threshold;
	size_t ratelimiter_entries; /* 0: GWD_RATELIMITER_MAX_DEFAULT */
};

/*
 * A position in the peer list that survives removals: a walk spread over
 * loop turns (a get=1 answer) keeps one; removing the peer it points to
 * moves it to the next one (gwd_peer_cursor_*() in peer.h).
 */
struct gwd_peer_cursor {
	struct gwd_peer *next; /* the next peer to visit; NULL: at the end */
	struct gwd_peer_cursor *cnext, *cprev;
	bool active;
};

/* One slot of the staging pool: an outbound packet waiting for a session. */
struct gwd_staged {
	struct gwd_staged *next;
	uint32_t len;
	uint8_t data[GWD_STAGED_SLOT_LEN];
};

struct gwd_device {
	struct gw_loop *loop;
	const struct gw_clock *clock;
	struct gwd_net_ops net;
	void *net_arg;
	uint32_t mtu;

	struct gwd_noise_local noise;
	struct gwd_cookie_checker cookie;
	struct gwd_index_table index;
	struct gwd_allowedips aips;
	struct gwd_ratelimiter *ratelimiter;
	struct gw_timer ratelimiter_gc;

	uint16_t listen_port;
	uint32_t fwmark;

	/* Peers in insertion order, and a hash of their public keys. */
	struct gwd_peer *peers_head, *peers_tail;
	size_t npeers;
	struct gwd_peer **peer_buckets;
	size_t npeer_buckets; /* a power of two */
	uint8_t peer_hash_key[16];
	struct gwd_peer_cursor *cursors; /* active ones */

	/* Load estimate: handshake packets in the current one-second window. */
	uint32_t under_load_threshold;
	uint64_t load_window_start;
	uint32_t load_window_count;
	uint64_t last_under_load;
	bool was_under_load;

	/* Staging pool: free list over chunks that are never freed until the device is. */
	struct gwd_staged *staged_free;
	void **staged_chunks;
	size_t staged_nchunks, staged_total;

	/* Outbound datagram under construction; see send.c. */
	uint8_t *send_buf;

	/* Cluster node state (cluster.h); NULL for a standalone gwd (node id 0). */
	struct gwd_cluster *cluster;

	struct gwd_sysnet *sys; /* NULL in tests */
	bool tun_gone;		/* the TUN device disappeared: the daemon should exit */
	/*
	 * Set before gwd_device_attach_system(): plain TUN and UDP I/O, one
	 * system call per packet (no TSO/GRO on the TUN, no UDP GSO/GRO).
	 */
	bool no_offload;
	/*
	 * With offloads: threads that help encrypt and decrypt batches
	 * (crypt.h). Negative (the default): one per CPU beyond the first.
	 */
	int crypt_workers;

	uint64_t stats[GWD_STAT__COUNT];
};

/* 0 or -errno. The device starts without identity, peers or sockets. */
int gwd_device_new(struct gwd_device **out, const struct gwd_device_config *cfg);
/* Removes every peer (wiping keys), detaches the system I/O, frees. NULL is ignored. */
void gwd_device_free(struct gwd_device *dev);

/*
 * Creates TUN ifname (MTU set to dev->mtu, left down), binds UDP on a random
 * port and registers both with the loop. 0 or -errno. When the TUN goes away
 * (link deleted) the device sets tun_gone and stops the loop.
 *
 * Unless dev->no_offload is set, the I/O is batched (docs/performance.md):
 * the TUN hands over TCP super-packets that are split here (offload.h),
 * encrypted data messages leave in UDP_SEGMENT batches, received datagrams
 * arrive coalesced (UDP_GRO), and decrypted TCP segments are joined into
 * super-packets for the TUN. Batches are flushed before the TUN or UDP
 * callback that filled them returns, so nothing waits across loop turns;
 * the device core is unchanged (net.send/net.deliver report a batched
 * packet as done, and a later failure is counted as drop_send_error).
 */
int gwd_device_attach_system(struct gwd_device *dev, const char *ifname);
void gwd_device_detach_system(struct gwd_device *dev);
/* The TUN's interface index; 0 without one (before attach, in tests). */
int gwd_device_tun_ifindex(const struct gwd_device *dev);

/*
 * Sets or removes (NULL/zeros) the private key: cookie keys follow, every
 * peer's sessions are expired, and a peer with the new public key is
 * removed. 0 or -EINVAL (key unusable; nothing changed).
 */
int gwd_device_set_private_key(struct gwd_device *dev, const uint8_t *priv);

/*
 * Whether the device is under load now, counting one more handshake packet
 * when count is set. Under load it demands mac2 (cookies) and rate limits
 * handshakes per source.
 */
bool gwd_device_under_load(struct gwd_device *dev, bool count);

static inline uint64_t gwd_device_now(const struct gwd_device *dev)
{
	return gw_clock_mono_ns(dev->clock);
}

/* Adds n to a counter of the device and, when peer is set, of the peer. */
void gwd_stat_add(struct gwd_device *dev, struct gwd_peer *peer, enum gwd_stat s, uint64_t n);
static inline void gwd_stat_inc(struct gwd_device *dev, struct gwd_peer *peer, enum gwd_stat s)
{
	gwd_stat_add(dev, peer, s, 1);
}

/* Staging pool: a free slot (growing the pool if allowed) or NULL; and back. */
struct gwd_staged *gwd_device_staged_get(struct gwd_device *dev);
void gwd_device_staged_put(struct gwd_device *dev, struct gwd_staged *s);

/*
 * Packet entry points (receive.c, send.c). buf is the caller's and may be
 * modified in place (decryption); it must stay valid only during the call.
 */
/* A UDP datagram received from `from` on local address `local`. */
void gwd_device_receive(struct gwd_device *dev, uint8_t *buf, size_t len,
			const union gw_sockaddr *from, const struct gwd_src *local);

/*
 * Batched decryption (crypt.h). gwd_device_rx_prepare() fills job for a
 * data message in buf whose keypair is known and usable now (key copy,
 * counter, ciphertext) and returns true; false for anything else. After
 * the batch ran, gwd_device_receive_opened() processes the datagram as
 * gwd_device_receive() would, taking the job's result instead of
 * decrypting when the keypair its index names still has the job's key
 * (otherwise the datagram is dropped as not authentic).
 */
struct gwd_crypt_job;
bool gwd_device_rx_prepare(struct gwd_device *dev, uint8_t *buf, size_t len,
			   struct gwd_crypt_job *job);
void gwd_device_receive_opened(struct gwd_device *dev, uint8_t *buf, size_t len,
			       const union gw_sockaddr *from, const struct gwd_src *local,
			       const struct gwd_crypt_job *job);
/* An IP packet read from the TUN. */
void gwd_device_xmit(struct gwd_device *dev, const uint8_t *pkt, size_t len);

#endif
