// SPDX-License-Identifier: MIT
/*
 * The sending side: outbound IP packets are routed to a peer by destination
 * (cryptokey routing), encrypted with the peer's current keypair into the
 * device's send buffer and handed to net.send. Without a usable keypair they
 * are staged (at most GWD_MAX_STAGED_PACKETS per peer, oldest dropped first)
 * and a handshake starts; its completion flushes them.
 */
#include <endian.h>
#include <errno.h>
#include <string.h>

#include "cluster.h"
#include "gw/log.h"
#include "packet.h"
#include "peer.h"
#include "session.h"
#include "timers.h"

static struct gw_ratelimit send_err_rl = GW_RATELIMIT_INIT(5 * GW_NSEC_PER_SEC, 5);
static struct gw_ratelimit hs_err_rl = GW_RATELIMIT_INIT(5 * GW_NSEC_PER_SEC, 5);

size_t gwd_padding_len(size_t len, uint32_t mtu)
{
	size_t padded;

	if (len > mtu)
		return 0;
	padded =
	    (len + GWD_MESSAGE_PADDING_MULTIPLE - 1) & ~(size_t)(GWD_MESSAGE_PADDING_MULTIPLE - 1);
	if (padded > mtu)
		padded = mtu;
	return padded - len;
}

/*
 * One datagram to the peer's endpoint, from the local address it last used;
 * with key set, a data message still to be encrypted by net.send_data under
 * key and counter. 0 or -errno.
 */
static int transmit(struct gwd_peer *peer, void *buf, size_t len, const uint8_t *key,
		    uint64_t counter)
{
	struct gwd_device *dev = peer->dev;
	char ep[GW_ENDPOINT_STR_LEN];
	int err;

	if (!gwd_peer_has_endpoint(peer)) {
		gwd_stat_inc(dev, peer, GWD_STAT_DROP_NO_ENDPOINT);
		return -EDESTADDRREQ;
	}
	if (key)
		err = dev->net.send_data(dev->net_arg, &peer->endpoint, &peer->src, buf, len, key,
					 counter);
	else
		err = dev->net.send(dev->net_arg, &peer->endpoint, &peer->src, buf, len);
	if (err) {
		gwd_stat_inc(dev, peer, GWD_STAT_DROP_SEND_ERROR);
		gw_endpoint_format(&peer->endpoint, ep, sizeof(ep));
		gw_log_rl(&send_err_rl, GW_LOG_WARN, "gwd: peer %s: sending to %s failed: %s",
			  peer->name, ep, strerror(-err));
		return err;
	}
	gwd_stat_inc(dev, peer, GWD_STAT_TX_PACKETS);
	gwd_stat_add(dev, peer, GWD_STAT_TX_BYTES, len);
	return 0;
}

static int send_to_peer(struct gwd_peer *peer, void *buf, size_t len)
{
	return transmit(peer, buf, len, NULL, 0);
}

/* The keypair to send with now, or NULL when a handshake is needed. */
static struct gwd_noise_keypair *sending_keypair(struct gwd_peer *peer)
{
	struct gwd_noise_keypair *kp = peer->noise.current;

	if (!kp || !gwd_cluster_keypair_usable(peer->dev, kp) ||
	    gwd_noise_keypair_expired(kp, gwd_device_now(peer->dev)))
		return NULL;
	return kp;
}

/*
 * Encrypts len bytes of pkt (padded) under kp and sends them. 0 when the
 * packet was handled (sent, or dropped and counted); -EKEYEXPIRED when kp
 * has no counter left, nothing sent.
 */
static int encrypt_and_send(struct gwd_peer *peer, struct gwd_noise_keypair *kp, const uint8_t *pkt,
			    size_t len)
{
	struct gwd_device *dev = peer->dev;
	struct gwd_message_data *msg = (struct gwd_message_data *)dev->send_buf;
	size_t pad = gwd_padding_len(len, dev->mtu), plain = len + pad;
	uint64_t counter;
	int err;

	if (GWD_MESSAGE_DATA_LEN(plain) > GWD_MAX_PACKET) {
		gwd_stat_inc(dev, peer, GWD_STAT_DROP_TOO_BIG);
		return 0;
	}
	/* In a cluster: a counter of a region this process holds (region.h). */
	if (!gwd_cluster_next_counter(dev, kp, &counter))
		return -EKEYEXPIRED;
	msg->header.type = htole32(GWD_MESSAGE_DATA);
	msg->key_idx = htole32(kp->remote_index);
	msg->counter = htole64(counter);
	if (len)
		memcpy(msg->encrypted_data, pkt, len);
	memset(msg->encrypted_data + len, 0, pad);
	if (dev->net.send_data) {
		/* Encrypted by the I/O layer, maybe in a batch on several cores (crypt.h). */
		err = transmit(peer, msg, GWD_MESSAGE_DATA_LEN(plain), kp->sending_key, counter);
	} else {
		gw_aead_encrypt(msg->encrypted_data, msg->encrypted_data, plain, NULL, 0, counter,
				kp->sending_key);
		err = send_to_peer(peer, msg, GWD_MESSAGE_DATA_LEN(plain));
	}
	if (err == 0 && len == 0)
		gwd_stat_inc(dev, peer, GWD_STAT_KEEPALIVES_SENT);
	gwd_timers_any_authenticated_packet_traversal(peer);
	gwd_timers_any_authenticated_packet_sent(peer);
	if (len)
		gwd_timers_data_sent(peer);
	return 0;
}

/* Starts a handshake when the current keypair is due for one (initiator's age, or count). */
static void keep_key_fresh(struct gwd_peer *peer)
{
	struct gwd_noise_keypair *kp = peer->noise.current;

	if (kp && kp->sending_counter < GWD_REJECT_AFTER_MESSAGES &&
	    gwd_noise_keypair_should_rekey_on_send(kp, gwd_device_now(peer->dev)))
		gwd_send_handshake_initiation(peer, false);
}

/* Sends pkt now if a keypair allows; false when it must wait for a handshake. */
static bool send_now(struct gwd_peer *peer, const uint8_t *pkt, size_t len)
{
	struct gwd_noise_keypair *kp;

	if (!gwd_peer_may_send(peer))
		return false;
	kp = sending_keypair(peer);
	if (!kp || encrypt_and_send(peer, kp, pkt, len) == -EKEYEXPIRED)
		return false;
	keep_key_fresh(peer);
	return true;
}

/* Queues a copy of pkt for the peer; a full queue or pool drops its oldest. */
static void stage(struct gwd_peer *peer, const uint8_t *pkt, size_t len)
{
	struct gwd_device *dev = peer->dev;
	struct gwd_staged *st = NULL;

	if (len > GWD_STAGED_SLOT_LEN) {
		gwd_stat_inc(dev, peer, GWD_STAT_DROP_TOO_BIG);
		return;
	}
	if (peer->nstaged < GWD_MAX_STAGED_PACKETS)
		st = gwd_device_staged_get(dev);
	if (!st && peer->staged_head) {
		st = peer->staged_head;
		peer->staged_head = st->next;
		if (!peer->staged_head)
			peer->staged_tail = NULL;
		peer->nstaged--;
		gwd_stat_inc(dev, peer, GWD_STAT_DROP_QUEUE_FULL);
	}
	if (!st) {
		gwd_stat_inc(dev, peer, GWD_STAT_DROP_QUEUE_FULL);
		return;
	}
	st->len = (uint32_t)len;
	if (len)
		memcpy(st->data, pkt, len);
	st->next = NULL;
	if (peer->staged_tail)
		peer->staged_tail->next = st;
	else
		peer->staged_head = st;
	peer->staged_tail = st;
	peer->nstaged++;
}

void gwd_send_staged(struct gwd_peer *peer)
{
	struct gwd_noise_keypair *kp;
	struct gwd_staged *st;

	/* Not ours to send (cluster standby): they wait until it is. */
	if (!gwd_peer_may_send(peer))
		return;
	kp = sending_keypair(peer);
	while (kp && (st = peer->staged_head)) {
		if (encrypt_and_send(peer, kp, st->data, st->len) == -EKEYEXPIRED) {
			kp = NULL;
			break;
		}
		peer->staged_head = st->next;
		if (!peer->staged_head)
			peer->staged_tail = NULL;
		peer->nstaged--;
		gwd_device_staged_put(peer->dev, st);
	}
	if (!kp) {
		gw_dbg("gwd: peer %s: no keypair to send with", peer->name);
		gwd_send_handshake_initiation(peer, false);
		return;
	}
	keep_key_fresh(peer);
}

void gwd_send_packet(struct gwd_peer *peer, const uint8_t *pkt, size_t len)
{
	/* A cluster node keeps nothing for a peer it does not serve (docs/failover.md). */
	if (!gwd_peer_may_send(peer)) {
		gwd_cluster_drop_not_owner(peer);
		return;
	}
	/* Staged packets go first, so a new packet never overtakes them. */
	if (!peer->staged_head && send_now(peer, pkt, len))
		return;
	stage(peer, pkt, len);
	gwd_send_staged(peer);
}

void gwd_send_keepalive(struct gwd_peer *peer)
{
	if (!gwd_peer_may_send(peer))
		return;
	if (peer->staged_head) {
		gwd_send_staged(peer);
		return;
	}
	gw_dbg("gwd: peer %s: sending keepalive", peer->name);
	gwd_send_packet(peer, NULL, 0);
}

static void handshake_error(struct gwd_peer *peer, const char *what, enum gwd_noise_result res)
{
	gwd_stat_inc(peer->dev, peer, GWD_STAT_HS_FAIL_OTHER);
	gw_log_rl(&hs_err_rl, GW_LOG_WARN, "gwd: peer %s: cannot create %s: %s", peer->name, what,
		  gwd_noise_result_str(res));
}

void gwd_send_handshake_initiation(struct gwd_peer *peer, bool is_retry)
{
	struct gwd_device *dev = peer->dev;
	struct gwd_message_handshake_initiation msg;
	uint64_t now = gwd_device_now(dev);
	enum gwd_noise_result res;

	if (!is_retry)
		peer->handshake_attempts = 0;
	if (!gwd_peer_may_send(peer))
		return;
	if (peer->has_sent_handshake &&
	    now - peer->last_sent_handshake < GWD_SEC_NS(GWD_REKEY_TIMEOUT))
		return;
	peer->has_sent_handshake = true;
	peer->last_sent_handshake = now;
	res = gwd_noise_create_initiation(&peer->noise, &msg);
	if (res != GWD_NOISE_OK) {
		handshake_error(peer, "initiation", res);
		return;
	}
	gw_dbg("gwd: peer %s: sending handshake initiation", peer->name);
	(void)gwd_cookie_add_macs(&peer->cookie, &msg, sizeof(msg));
	gwd_timers_any_authenticated_packet_traversal(peer);
	gwd_timers_any_authenticated_packet_sent(peer);
	if (send_to_peer(peer, &msg, sizeof(msg)) == 0)
		gwd_stat_inc(dev, peer, GWD_STAT_HANDSHAKES_INITIATED);
	gwd_timers_handshake_initiated(peer);
	/* greatest_sent moved: another node initiating later must go beyond it. */
	gwd_session_mark(peer, GWD_EXPORT_FULL);
}

void gwd_send_handshake_response(struct gwd_peer *peer)
{
	struct gwd_device *dev = peer->dev;
	struct gwd_message_handshake_response msg;
	enum gwd_noise_result res;

	if (!gwd_peer_may_send(peer))
		return;
	peer->has_sent_handshake = true;
	peer->last_sent_handshake = gwd_device_now(dev);
	res = gwd_noise_create_response(&peer->noise, &msg);
	if (res != GWD_NOISE_OK) {
		handshake_error(peer, "response", res);
		return;
	}
	(void)gwd_cookie_add_macs(&peer->cookie, &msg, sizeof(msg));
	res = gwd_noise_begin_session(&peer->noise, NULL);
	if (res != GWD_NOISE_OK) {
		handshake_error(peer, "session", res);
		return;
	}
	gw_dbg("gwd: peer %s: sending handshake response", peer->name);
	gwd_timers_session_derived(peer);
	gwd_session_mark(peer, GWD_EXPORT_FULL);
	gwd_timers_any_authenticated_packet_traversal(peer);
	gwd_timers_any_authenticated_packet_sent(peer);
	if (send_to_peer(peer, &msg, sizeof(msg)) == 0)
		gwd_stat_inc(dev, peer, GWD_STAT_HANDSHAKE_RESPONSES_SENT);
}

/* The destination of an IP packet, or false when the header is too short or unknown. */
static bool packet_dst(const uint8_t *pkt, size_t len, int *family, const uint8_t **dst)
{
	if (len >= 20 && pkt[0] >> 4 == 4) {
		*family = AF_INET;
		*dst = pkt + 16;
		return true;
	}
	if (len >= 40 && pkt[0] >> 4 == 6) {
		*family = AF_INET6;
		*dst = pkt + 24;
		return true;
	}
	return false;
}

void gwd_device_xmit(struct gwd_device *dev, const uint8_t *pkt, size_t len)
{
	struct gwd_peer *peer;
	const uint8_t *dst;
	int family;

	gwd_stat_inc(dev, NULL, GWD_STAT_TUN_RX_PACKETS);
	gwd_stat_add(dev, NULL, GWD_STAT_TUN_RX_BYTES, len);
	if (!packet_dst(pkt, len, &family, &dst)) {
		gwd_stat_inc(dev, NULL, GWD_STAT_DROP_MALFORMED);
		return;
	}
	peer = gwd_allowedips_lookup(&dev->aips, family, dst);
	if (!peer) {
		gwd_stat_inc(dev, NULL, GWD_STAT_DROP_NO_ROUTE);
		return;
	}
	peer->stats[GWD_STAT_TUN_RX_PACKETS]++;
	peer->stats[GWD_STAT_TUN_RX_BYTES] += len;
	if (!gwd_peer_has_endpoint(peer)) {
		gwd_stat_inc(dev, peer, GWD_STAT_DROP_NO_ENDPOINT);
		return;
	}
	gwd_send_packet(peer, pkt, len);
}
