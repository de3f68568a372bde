// SPDX-License-Identifier: MIT
/*
 * The receiving side, one UDP datagram at a time:
 *
 * - handshake messages: mac1 always; under load mac2 too, answering a
 *   message without a valid mac2 with a cookie reply, and rate limiting the
 *   rest per source; then the Noise step (noise.h's dispatch);
 * - cookie replies: to the peer whose handshake or keypair the index names;
 * - data: keypair by index, authentication, replay window (after
 *   authentication only), keypair rotation, roaming, then the inner IP
 *   header's length and cryptokey routing of its source before the TUN.
 *
 * Every rejection is counted (device and, when known, peer) and logged with
 * a rate limit.
 */
#include <endian.h>
#include <string.h>

#include "cluster.h"
#include "crypt.h"
#include "gw/log.h"
#include "packet.h"
#include "peer.h"
#include "session.h"
#include "timers.h"

static struct gw_ratelimit hs_rl = GW_RATELIMIT_INIT(5 * GW_NSEC_PER_SEC, 10);
static struct gw_ratelimit data_rl = GW_RATELIMIT_INIT(5 * GW_NSEC_PER_SEC, 10);

static const char *ep_str(const union gw_sockaddr *ep, char buf[static GW_ENDPOINT_STR_LEN])
{
	gw_endpoint_format(ep, buf, GW_ENDPOINT_STR_LEN);
	return buf;
}

/* A peer's counters only: the device counted the datagram on arrival. */
static void peer_rx(struct gwd_peer *peer, size_t len)
{
	peer->stats[GWD_STAT_RX_PACKETS]++;
	peer->stats[GWD_STAT_RX_BYTES] += len;
}

static void handshake_failed(struct gwd_device *dev, struct gwd_peer *peer,
			     enum gwd_noise_result res, const union gw_sockaddr *from)
{
	char ep[GW_ENDPOINT_STR_LEN];
	enum gwd_stat s;

	switch (res) {
	case GWD_NOISE_UNKNOWN_PEER:
		s = GWD_STAT_HS_FAIL_UNKNOWN_PEER;
		break;
	case GWD_NOISE_REPLAY:
		s = GWD_STAT_HS_FAIL_REPLAY;
		break;
	case GWD_NOISE_FLOOD:
		s = GWD_STAT_HS_FAIL_FLOOD;
		break;
	case GWD_NOISE_BAD_STATIC:
	case GWD_NOISE_BAD_TIMESTAMP:
	case GWD_NOISE_BAD_RESPONSE:
		s = GWD_STAT_HS_FAIL_BAD_AUTH;
		break;
	default:
		s = GWD_STAT_HS_FAIL_OTHER;
		break;
	}
	gwd_stat_inc(dev, peer, s);
	gw_log_rl(&hs_rl, GW_LOG_INFO, "gwd: invalid handshake message from %s%s%s: %s",
		  ep_str(from, ep), peer ? " (peer " : "", peer ? peer->name : "",
		  gwd_noise_result_str(res));
}

static struct gwd_peer *receive_initiation(struct gwd_device *dev, const uint8_t *buf,
					   const union gw_sockaddr *from,
					   const struct gwd_src *local)
{
	const struct gwd_message_handshake_initiation *msg = (const void *)buf;
	struct gwd_noise_remote *r;
	struct gwd_peer *peer;
	enum gwd_noise_result res;

	res = gwd_noise_consume_initiation(&dev->noise, msg, &r);
	peer = r ? gwd_peer_of_remote(r) : NULL;
	if (res != GWD_NOISE_OK) {
		handshake_failed(dev, peer, res, from);
		return NULL;
	}
	gwd_peer_update_endpoint(peer, from, local);
	gw_dbg("gwd: peer %s: received handshake initiation", peer->name);
	/* A cluster standby stays silent unless it claims the peer (anycast). */
	if (gwd_cluster_initiation_received(peer))
		gwd_send_handshake_response(peer);
	return peer;
}

static struct gwd_peer *receive_response(struct gwd_device *dev, const uint8_t *buf,
					 const union gw_sockaddr *from, const struct gwd_src *local)
{
	const struct gwd_message_handshake_response *msg = (const void *)buf;
	struct gwd_noise_remote *r;
	struct gwd_peer *peer;
	enum gwd_noise_result res;

	r = gwd_index_lookup(&dev->index, le32toh(msg->receiver_index), GWD_INDEX_HANDSHAKE);
	if (!r) {
		handshake_failed(dev, NULL, GWD_NOISE_UNKNOWN_PEER, from);
		return NULL;
	}
	peer = gwd_peer_of_remote(r);
	res = gwd_noise_consume_response(r, msg);
	if (res != GWD_NOISE_OK) {
		handshake_failed(dev, peer, res, from);
		return NULL;
	}
	gwd_peer_update_endpoint(peer, from, local);
	gw_dbg("gwd: peer %s: received handshake response", peer->name);
	res = gwd_noise_begin_session(r, NULL);
	if (res != GWD_NOISE_OK) {
		handshake_failed(dev, peer, res, from);
		return peer;
	}
	gwd_timers_session_derived(peer);
	gwd_timers_handshake_complete(peer);
	gwd_stat_inc(dev, peer, GWD_STAT_HANDSHAKES_COMPLETED);
	gwd_session_mark(peer, GWD_EXPORT_FULL);
	/* Confirms the session to the responder, and flushes what was staged. */
	gwd_send_keepalive(peer);
	return peer;
}

static void send_cookie_reply(struct gwd_device *dev, const uint8_t *buf, size_t len,
			      const union gw_sockaddr *from, const struct gwd_src *local)
{
	struct gwd_message_handshake_cookie reply;
	struct gwd_src src = *local;

	/* A cluster standby sends nothing at all, cookie replies included. */
	if (!gwd_cluster_serving(dev))
		return;
	if (gwd_cookie_reply_create(&dev->cookie, &reply, buf, len, from) < 0)
		return;
	if (dev->net.send(dev->net_arg, from, &src, &reply, sizeof(reply)) < 0) {
		gwd_stat_inc(dev, NULL, GWD_STAT_DROP_SEND_ERROR);
		return;
	}
	gwd_stat_inc(dev, NULL, GWD_STAT_COOKIE_REPLIES_SENT);
	gwd_stat_inc(dev, NULL, GWD_STAT_TX_PACKETS);
	gwd_stat_add(dev, NULL, GWD_STAT_TX_BYTES, sizeof(reply));
}

static bool ratelimit_allow(struct gwd_device *dev, const union gw_sockaddr *from)
{
	if (from->sa.sa_family == AF_INET)
		return gwd_ratelimiter_allow(dev->ratelimiter, AF_INET,
					     (const uint8_t *)&from->in.sin_addr,
					     gwd_device_now(dev));
	return gwd_ratelimiter_allow(dev->ratelimiter, AF_INET6,
				     (const uint8_t *)&from->in6.sin6_addr, gwd_device_now(dev));
}

static void receive_handshake(struct gwd_device *dev, uint8_t *buf, size_t len,
			      enum gwd_message_type type, const union gw_sockaddr *from,
			      const struct gwd_src *local)
{
	bool under_load = gwd_device_under_load(dev, true);
	enum gwd_cookie_mac_state mac;
	struct gwd_peer *peer;
	char ep[GW_ENDPOINT_STR_LEN];

	mac = gwd_cookie_validate(&dev->cookie, buf, len, from, under_load);
	if (mac == GWD_COOKIE_MAC_INVALID) {
		gwd_stat_inc(dev, NULL, GWD_STAT_HS_FAIL_BAD_MAC1);
		gw_log_rl(&hs_rl, GW_LOG_DEBUG, "gwd: handshake message from %s with bad mac1",
			  ep_str(from, ep));
		return;
	}
	if (under_load && mac != GWD_COOKIE_MAC2_VALID) {
		send_cookie_reply(dev, buf, len, from, local);
		return;
	}
	/* Like the kernel: per-source limits apply once sources are proven, under load. */
	if (under_load && !ratelimit_allow(dev, from)) {
		gwd_stat_inc(dev, NULL, GWD_STAT_HS_RATELIMITED);
		return;
	}
	if (type == GWD_MESSAGE_HANDSHAKE_INITIATION)
		peer = receive_initiation(dev, buf, from, local);
	else
		peer = receive_response(dev, buf, from, local);
	if (!peer)
		return;
	peer_rx(peer, len);
	gwd_timers_any_authenticated_packet_received(peer);
	gwd_timers_any_authenticated_packet_traversal(peer);
}

static void receive_cookie(struct gwd_device *dev, const uint8_t *buf)
{
	const struct gwd_message_handshake_cookie *msg = (const void *)buf;
	uint32_t idx = le32toh(msg->receiver_index);
	struct gwd_noise_remote *r = gwd_index_lookup(&dev->index, idx, GWD_INDEX_HANDSHAKE);
	struct gwd_noise_keypair *kp;
	struct gwd_peer *peer;

	/* A reply to our initiation names its handshake; to our response, the keypair born of it.
	 */
	if (!r) {
		kp = gwd_index_lookup(&dev->index, idx, GWD_INDEX_KEYPAIR);
		r = kp ? kp->remote : NULL;
	}
	if (!r) {
		gwd_stat_inc(dev, NULL, GWD_STAT_COOKIE_REPLIES_INVALID);
		return;
	}
	peer = gwd_peer_of_remote(r);
	if (gwd_cookie_consume_reply(&peer->cookie, msg) < 0) {
		gwd_stat_inc(dev, peer, GWD_STAT_COOKIE_REPLIES_INVALID);
		return;
	}
	gwd_stat_inc(dev, peer, GWD_STAT_COOKIE_REPLIES_RECEIVED);
	gw_dbg("gwd: peer %s: received cookie reply", peer->name);
}

/* Rekeys as initiator when the current keypair nears REJECT_AFTER_TIME (once per session). */
static void keep_key_fresh(struct gwd_peer *peer)
{
	struct gwd_noise_keypair *kp = peer->noise.current;

	if (!kp || peer->sent_lastminute_handshake || !gwd_peer_may_send(peer) ||
	    !gwd_cluster_keypair_usable(peer->dev, kp) ||
	    !gwd_noise_keypair_should_rekey_on_receive(kp, gwd_device_now(peer->dev)))
		return;
	peer->sent_lastminute_handshake = true;
	gwd_send_handshake_initiation(peer, false);
}

/*
 * The length an IP packet claims, checked against the len bytes decrypted;
 * 0 when the header is malformed. *src points at its source address.
 */
static size_t inner_packet_len(const uint8_t *p, size_t len, int *family, const uint8_t **src)
{
	size_t hl, tot;

	if (len >= 20 && p[0] >> 4 == 4) {
		hl = (size_t)(p[0] & 0x0f) * 4;
		tot = (size_t)p[2] << 8 | p[3];
		if (hl < 20 || tot < hl || tot > len)
			return 0;
		*family = AF_INET;
		*src = p + 12;
		return tot;
	}
	if (len >= 40 && p[0] >> 4 == 6) {
		tot = 40 + ((size_t)p[4] << 8 | p[5]);
		if (tot > len)
			return 0;
		*family = AF_INET6;
		*src = p + 8;
		return tot;
	}
	return 0;
}

/* A decrypted non-empty payload: checked and written to the TUN. */
static void deliver(struct gwd_device *dev, struct gwd_peer *peer, const uint8_t *p, size_t len)
{
	const uint8_t *src;
	size_t tot;
	int family;

	tot = inner_packet_len(p, len, &family, &src);
	if (!tot) {
		gwd_stat_inc(dev, peer, GWD_STAT_DROP_MALFORMED);
		gw_log_rl(&data_rl, GW_LOG_DEBUG, "gwd: peer %s: malformed inner packet",
			  peer->name);
		return;
	}
	if (gwd_allowedips_lookup(&dev->aips, family, src) != peer) {
		gwd_stat_inc(dev, peer, GWD_STAT_DROP_INVALID_SOURCE);
		gw_log_rl(&data_rl, GW_LOG_INFO,
			  "gwd: peer %s: packet with a source address it is not allowed",
			  peer->name);
		return;
	}
	if (dev->net.deliver(dev->net_arg, p, tot) < 0) {
		gwd_stat_inc(dev, peer, GWD_STAT_DROP_SEND_ERROR);
		return;
	}
	gwd_stat_inc(dev, peer, GWD_STAT_TUN_TX_PACKETS);
	gwd_stat_add(dev, peer, GWD_STAT_TUN_TX_BYTES, tot);
}

/*
 * Authenticates and replay-checks a data message in place; its keypair, or
 * NULL (counted). With job (batched decryption, crypt.h) the message was
 * decrypted already: its result counts if it was made with this keypair's key.
 */
static struct gwd_noise_keypair *open_data(struct gwd_device *dev, uint8_t *buf, size_t len,
					   const struct gwd_crypt_job *job)
{
	struct gwd_message_data *msg = (struct gwd_message_data *)buf;
	struct gwd_noise_keypair *kp;
	struct gwd_peer *peer;
	uint64_t counter = le64toh(msg->counter);

	kp = gwd_index_lookup(&dev->index, le32toh(msg->key_idx), GWD_INDEX_KEYPAIR);
	if (!kp) {
		gwd_stat_inc(dev, NULL, GWD_STAT_DROP_UNKNOWN_INDEX);
		return NULL;
	}
	peer = gwd_peer_of_remote(kp->remote);
	if (gwd_noise_keypair_expired(kp, gwd_device_now(dev)) ||
	    gwd_replay_high_water(&kp->receiving_window) >= GWD_REJECT_AFTER_MESSAGES) {
		gwd_stat_inc(dev, peer, GWD_STAT_DROP_EXPIRED_KEYPAIR);
		return NULL;
	}
	if (job ? !job->ok || job->counter != counter ||
		      !gw_memeq(job->key, kp->receiving_key, GW_KEY_LEN)
		: !gw_aead_decrypt(msg->encrypted_data, msg->encrypted_data,
				   len - GWD_MESSAGE_DATA_HEADER_LEN, NULL, 0, counter,
				   kp->receiving_key)) {
		gwd_stat_inc(dev, peer, GWD_STAT_DROP_BAD_AUTH);
		gw_log_rl(&data_rl, GW_LOG_DEBUG, "gwd: peer %s: data packet did not authenticate",
			  peer->name);
		return NULL;
	}
	/* A replicated high-water mark first: what another node accepted stays refused. */
	gwd_cluster_rx_prepare(kp);
	if (!gwd_replay_check_and_update(&kp->receiving_window, counter,
					 GWD_REJECT_AFTER_MESSAGES)) {
		gwd_stat_inc(dev, peer, GWD_STAT_DROP_REPLAY);
		gw_log_rl(&data_rl, GW_LOG_DEBUG, "gwd: peer %s: replayed counter %llu", peer->name,
			  (unsigned long long)counter);
		return NULL;
	}
	return kp;
}

static void receive_data(struct gwd_device *dev, uint8_t *buf, size_t len,
			 const union gw_sockaddr *from, const struct gwd_src *local,
			 const struct gwd_crypt_job *job)
{
	struct gwd_noise_keypair *kp = open_data(dev, buf, len, job);
	struct gwd_peer *peer;
	size_t plain_len = len - GWD_MESSAGE_DATA_MIN_LEN;

	if (!kp)
		return;
	peer = gwd_peer_of_remote(kp->remote);
	/* Before anything is sent in reaction: an anycast node claims the peer here. */
	gwd_cluster_data_received(peer);
	if (gwd_noise_received_with_keypair(&peer->noise, kp)) {
		gwd_timers_handshake_complete(peer);
		gwd_stat_inc(dev, peer, GWD_STAT_HANDSHAKES_COMPLETED);
		gwd_session_mark(peer, GWD_EXPORT_FULL);
		gwd_send_staged(peer);
	}
	gwd_cluster_session_moved_on(peer, kp);
	gwd_peer_update_endpoint(peer, from, local);
	keep_key_fresh(peer);
	peer_rx(peer, len);
	gwd_timers_any_authenticated_packet_received(peer);
	gwd_timers_any_authenticated_packet_traversal(peer);
	if (plain_len == 0) {
		gwd_stat_inc(dev, peer, GWD_STAT_KEEPALIVES_RECEIVED);
		return;
	}
	gwd_timers_data_received(peer);
	deliver(dev, peer, buf + GWD_MESSAGE_DATA_HEADER_LEN, plain_len);
}

bool gwd_device_rx_prepare(struct gwd_device *dev, uint8_t *buf, size_t len,
			   struct gwd_crypt_job *job)
{
	struct gwd_message_data *msg = (struct gwd_message_data *)buf;
	struct gwd_noise_keypair *kp;

	if (gwd_message_type_of(buf, len) != GWD_MESSAGE_DATA)
		return false;
	kp = gwd_index_lookup(&dev->index, le32toh(msg->key_idx), GWD_INDEX_KEYPAIR);
	/* Whatever fails here is found again, and counted, by gwd_device_receive_opened(). */
	if (!kp || gwd_noise_keypair_expired(kp, gwd_device_now(dev)))
		return false;
	job->data = msg->encrypted_data;
	job->len = len - GWD_MESSAGE_DATA_HEADER_LEN;
	job->counter = le64toh(msg->counter);
	memcpy(job->key, kp->receiving_key, GW_KEY_LEN);
	job->encrypt = false;
	job->ok = false;
	return true;
}

static void receive(struct gwd_device *dev, uint8_t *buf, size_t len, const union gw_sockaddr *from,
		    const struct gwd_src *local, const struct gwd_crypt_job *job);

void gwd_device_receive(struct gwd_device *dev, uint8_t *buf, size_t len,
			const union gw_sockaddr *from, const struct gwd_src *local)
{
	receive(dev, buf, len, from, local, NULL);
}

void gwd_device_receive_opened(struct gwd_device *dev, uint8_t *buf, size_t len,
			       const union gw_sockaddr *from, const struct gwd_src *local,
			       const struct gwd_crypt_job *job)
{
	receive(dev, buf, len, from, local, job);
}

static void receive(struct gwd_device *dev, uint8_t *buf, size_t len, const union gw_sockaddr *from,
		    const struct gwd_src *local, const struct gwd_crypt_job *job)
{
	enum gwd_message_type type = gwd_message_type_of(buf, len);

	gwd_stat_inc(dev, NULL, GWD_STAT_RX_PACKETS);
	gwd_stat_add(dev, NULL, GWD_STAT_RX_BYTES, len);
	if (from->sa.sa_family != AF_INET && from->sa.sa_family != AF_INET6)
		type = GWD_MESSAGE_INVALID;
	switch (type) {
	case GWD_MESSAGE_HANDSHAKE_INITIATION:
	case GWD_MESSAGE_HANDSHAKE_RESPONSE:
		receive_handshake(dev, buf, len, type, from, local);
		break;
	case GWD_MESSAGE_HANDSHAKE_COOKIE:
		receive_cookie(dev, buf);
		break;
	case GWD_MESSAGE_DATA:
		receive_data(dev, buf, len, from, local, job);
		break;
	default:
		gwd_stat_inc(dev, NULL, GWD_STAT_DROP_MALFORMED);
		break;
	}
}
