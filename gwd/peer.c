// SPDX-License-Identifier: MIT
#include "peer.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "gw/key.h"
#include "gw/log.h"
#include "session.h"
#include "timers.h"

static size_t bucket_of(const struct gwd_device *dev, const uint8_t pub[static GW_KEY_LEN])
{
	uint8_t h[crypto_shorthash_BYTES];
	uint64_t v;

	/* Keyed: a sender choosing static keys cannot aim them at one chain. */
	crypto_shorthash(h, pub, GW_KEY_LEN, dev->peer_hash_key);
	memcpy(&v, h, sizeof(v));
	return (size_t)v & (dev->npeer_buckets - 1);
}

/* Doubles the bucket array; without memory the chains just get longer. */
static void grow_buckets(struct gwd_device *dev)
{
	size_t n = dev->npeer_buckets * 2;
	struct gwd_peer **b = calloc(n, sizeof(*b));

	if (!b)
		return;
	free(dev->peer_buckets);
	dev->peer_buckets = b;
	dev->npeer_buckets = n;
	for (struct gwd_peer *p = dev->peers_head; p; p = p->next) {
		size_t k = bucket_of(dev, p->noise.public_key);

		p->hash_next = b[k];
		b[k] = p;
	}
}

static void make_name(struct gwd_peer *peer, const uint8_t pub[static GW_KEY_LEN])
{
	char b64[GW_KEY_B64_LEN + 1];

	gw_key_to_base64(b64, pub);
	memcpy(peer->name, b64, 4);
	memcpy(peer->name + 4, "...", 3);
	memcpy(peer->name + 7, b64 + GW_KEY_B64_LEN - 5, 4);
	peer->name[11] = '\0';
}

int gwd_peer_new(struct gwd_device *dev, const uint8_t pub[static GW_KEY_LEN],
		 struct gwd_peer **out)
{
	struct gwd_peer *peer = calloc(1, sizeof(*peer));

	if (!peer)
		return -ENOMEM;
	peer->dev = dev;
	gwd_noise_remote_init(&peer->noise, &dev->noise, pub, NULL);
	gwd_cookie_maker_init(&peer->cookie, dev->clock, pub);
	gwd_allowedips_owner_init(&peer->aips, peer);
	gwd_timers_init(peer);
	make_name(peer, pub);
	*out = peer;
	return 0;
}

void gwd_peer_link(struct gwd_peer *peer)
{
	struct gwd_device *dev = peer->dev;
	size_t k;

	if (dev->npeers >= dev->npeer_buckets)
		grow_buckets(dev);
	k = bucket_of(dev, peer->noise.public_key);
	peer->hash_next = dev->peer_buckets[k];
	dev->peer_buckets[k] = peer;
	peer->prev = dev->peers_tail;
	peer->next = NULL;
	if (dev->peers_tail)
		dev->peers_tail->next = peer;
	else
		dev->peers_head = peer;
	dev->peers_tail = peer;
	dev->npeers++;
	peer->linked = true;
	gw_dbg("%s: peer %s created", "gwd", peer->name);
	gwd_cluster_peer_linked(peer);
}

static void unlink_peer(struct gwd_peer *peer)
{
	struct gwd_device *dev = peer->dev;
	struct gwd_peer **pp = &dev->peer_buckets[bucket_of(dev, peer->noise.public_key)];

	for (; *pp; pp = &(*pp)->hash_next) {
		if (*pp == peer) {
			*pp = peer->hash_next;
			break;
		}
	}
	if (peer->prev)
		peer->prev->next = peer->next;
	else
		dev->peers_head = peer->next;
	if (peer->next)
		peer->next->prev = peer->prev;
	else
		dev->peers_tail = peer->prev;
	for (struct gwd_peer_cursor *c = dev->cursors; c; c = c->cnext)
		if (c->next == peer)
			c->next = peer->next;
	dev->npeers--;
	peer->linked = false;
}

void gwd_peer_purge_staged(struct gwd_peer *peer, enum gwd_stat s)
{
	struct gwd_staged *st;

	while ((st = peer->staged_head)) {
		peer->staged_head = st->next;
		gwd_stat_inc(peer->dev, peer, s);
		gwd_device_staged_put(peer->dev, st);
	}
	peer->staged_tail = NULL;
	peer->nstaged = 0;
}

void gwd_peer_clear_sessions(struct gwd_peer *peer)
{
	gwd_noise_remote_clear(&peer->noise);
}

void gwd_peer_remove(struct gwd_peer *peer)
{
	struct gwd_device *dev = peer->dev;

	gwd_cluster_peer_removed(peer);
	if (peer->linked) {
		unlink_peer(peer);
		gw_dbg("gwd: peer %s removed", peer->name);
	}
	gwd_timers_stop(peer);
	/* Nothing was staged for it that anyone still waits for. */
	gwd_peer_purge_staged(peer, GWD_STAT__COUNT);
	gwd_allowedips_remove_by_peer(&dev->aips, &peer->aips);
	gwd_noise_remote_destroy(&peer->noise);
	gwd_cookie_maker_clear(&peer->cookie);
	gw_wipe(peer, sizeof(*peer));
	free(peer);
}

void gwd_peer_cursor_start(struct gwd_device *dev, struct gwd_peer_cursor *c)
{
	gwd_peer_cursor_stop(dev, c);
	c->next = dev->peers_head;
	c->cprev = NULL;
	c->cnext = dev->cursors;
	if (dev->cursors)
		dev->cursors->cprev = c;
	dev->cursors = c;
	c->active = true;
}

struct gwd_peer *gwd_peer_cursor_next(struct gwd_peer_cursor *c)
{
	struct gwd_peer *p = c->next;

	if (p)
		c->next = p->next;
	return p;
}

void gwd_peer_cursor_stop(struct gwd_device *dev, struct gwd_peer_cursor *c)
{
	if (!c->active)
		return;
	if (c->cprev)
		c->cprev->cnext = c->cnext;
	else
		dev->cursors = c->cnext;
	if (c->cnext)
		c->cnext->cprev = c->cprev;
	c->next = NULL;
	c->cnext = c->cprev = NULL;
	c->active = false;
}

struct gwd_peer *gwd_peer_lookup(const struct gwd_device *dev, const uint8_t pub[static GW_KEY_LEN])
{
	struct gwd_peer *p = dev->peer_buckets[bucket_of(dev, pub)];

	while (p && memcmp(p->noise.public_key, pub, GW_KEY_LEN) != 0)
		p = p->hash_next;
	return p;
}

void gwd_peer_set_endpoint(struct gwd_peer *peer, const union gw_sockaddr *ep)
{
	memset(&peer->endpoint, 0, sizeof(peer->endpoint));
	memcpy(&peer->endpoint, ep, gw_sockaddr_len(ep));
	memset(&peer->src, 0, sizeof(peer->src));
}

void gwd_peer_update_endpoint(struct gwd_peer *peer, const union gw_sockaddr *from,
			      const struct gwd_src *local)
{
	bool moved = !gw_sockaddr_equal(&peer->endpoint, from);

	if (moved) {
		memset(&peer->endpoint, 0, sizeof(peer->endpoint));
		memcpy(&peer->endpoint, from, gw_sockaddr_len(from));
	}
	/* Other nodes follow the peer too (the interface index is local: not compared). */
	if (moved || peer->src.family != local->family ||
	    memcmp(&peer->src.v6, &local->v6,
		   local->family == AF_INET ? sizeof(local->v4) : sizeof(local->v6)) != 0)
		gwd_session_mark(peer, GWD_EXPORT_FULL);
	peer->src = *local;
}

bool gwd_peer_may_send(const struct gwd_peer *peer)
{
	return gwd_cluster_may_send(peer);
}

bool gwd_peer_has_session(const struct gwd_peer *peer, uint64_t now_ns)
{
	const struct gwd_noise_keypair *kp =
	    peer->noise.current ? peer->noise.current : peer->noise.next;

	return kp && !gwd_noise_keypair_expired(kp, now_ns);
}
