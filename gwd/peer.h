/* SPDX-License-Identifier: MIT */
/*
 * A peer of the interface: its Noise state (static key, PSK, handshake,
 * keypairs), cookie maker, allowed IPs, endpoint with the local address it
 * last reached us on, timers, staged packets and counters.
 *
 * Lifetime: gwd_peer_new() allocates an unlinked peer (nothing else changes,
 * so a UAPI transaction can allocate all its peers before committing);
 * gwd_peer_link() makes it visible; gwd_peer_remove() stops its timers, wipes
 * its keys, frees its indexes, staged packets and allowed IPs, and frees it.
 */
#ifndef GWD_PEER_H
#define GWD_PEER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "allowedips.h"
#include "cluster.h"
#include "cookie.h"
#include "device.h"
#include "gw/addr.h"
#include "gw/loop.h"
#include "noise.h"
#include "udp.h"

struct gwd_peer {
	struct gwd_device *dev;
	struct gwd_noise_remote noise; /* secrets: wiped by gwd_noise_remote_destroy() */
	struct gwd_cookie_maker cookie;
	struct gwd_allowedips_owner aips;

	/* Where to send: sa_family 0 while unknown. src: the local address it used. */
	union gw_sockaddr endpoint;
	struct gwd_src src;
	uint16_t persistent_keepalive; /* seconds, 0: off */

	/* Timers (timers.c). */
	struct gw_timer retransmit_handshake;
	struct gw_timer send_keepalive;
	struct gw_timer new_handshake;
	struct gw_timer zero_key_material;
	struct gw_timer persistent_keepalive_timer;
	unsigned int handshake_attempts;
	bool need_another_keepalive;
	bool sent_lastminute_handshake;
	bool has_sent_handshake;
	uint64_t last_sent_handshake;	/* monotonic ns, valid with has_sent_handshake */
	struct timespec last_handshake; /* wall clock of the last completed handshake; 0: never */

	/* Outbound packets waiting for a session (FIFO). */
	struct gwd_staged *staged_head, *staged_tail;
	uint32_t nstaged;

	uint64_t stats[GWD_STAT__COUNT];

	/* Ownership and export state (cluster.h); zero on a standalone gwd. */
	struct gwd_peer_cluster cl;

	/* Device bookkeeping. */
	struct gwd_peer *hash_next;
	struct gwd_peer *next, *prev;
	bool linked;
	char name[16]; /* short base64 of the public key, for logs */
};

static inline struct gwd_peer *gwd_peer_of_remote(struct gwd_noise_remote *r)
{
	return (struct gwd_peer *)((char *)r - offsetof(struct gwd_peer, noise));
}

/* 0 or -ENOMEM. The peer is not linked into dev yet. */
int gwd_peer_new(struct gwd_device *dev, const uint8_t pub[static GW_KEY_LEN],
		 struct gwd_peer **out);
/* Makes a new peer visible (lookups, listing, timers). */
void gwd_peer_link(struct gwd_peer *peer);
/* Unlinks (if linked), stops everything, wipes and frees. */
void gwd_peer_remove(struct gwd_peer *peer);

/*
 * A walk over the peers in list order that may be paused between loop
 * turns: peers removed meanwhile are skipped, peers added meanwhile come at
 * the end. Stop every started cursor before the device is freed.
 */
void gwd_peer_cursor_start(struct gwd_device *dev, struct gwd_peer_cursor *c);
/* The next peer (and moves past it), NULL at the end. */
struct gwd_peer *gwd_peer_cursor_next(struct gwd_peer_cursor *c);
/* Harmless on a cursor never started or already stopped. */
void gwd_peer_cursor_stop(struct gwd_device *dev, struct gwd_peer_cursor *c);
struct gwd_peer *gwd_peer_lookup(const struct gwd_device *dev,
				 const uint8_t pub[static GW_KEY_LEN]);

/* Sets the endpoint from configuration; the local address is relearnt. */
void gwd_peer_set_endpoint(struct gwd_peer *peer, const union gw_sockaddr *ep);
/*
 * Roaming: after an authenticated packet from `from` that arrived on `local`,
 * send to from, from local.
 */
void gwd_peer_update_endpoint(struct gwd_peer *peer, const union gw_sockaddr *from,
			      const struct gwd_src *local);
static inline bool gwd_peer_has_endpoint(const struct gwd_peer *peer)
{
	return peer->endpoint.sa.sa_family == AF_INET || peer->endpoint.sa.sa_family == AF_INET6;
}

/*
 * Whether this node may send for the peer (data, keepalives, handshake
 * initiations and responses). Always true for a standalone gwd; in a
 * cluster only the peer's owner may (gwd_cluster_may_send): the single gate
 * every send for a peer passes.
 */
bool gwd_peer_may_send(const struct gwd_peer *peer);

/* A live session: a keypair to receive with (current, else next) that has not expired. */
bool gwd_peer_has_session(const struct gwd_peer *peer, uint64_t now_ns);

/* Forgets staged packets, counting them as dropped for cause s. */
void gwd_peer_purge_staged(struct gwd_peer *peer, enum gwd_stat s);
/* Drops the handshake and every keypair (wiped, indexes freed). */
void gwd_peer_clear_sessions(struct gwd_peer *peer);

#endif
