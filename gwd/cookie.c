// SPDX-License-Identifier: MIT
/*
 * mac1, mac2 and cookie replies; see cookie.h for the formulas and modes.
 */
#include <endian.h>
#include <errno.h>
#include <string.h>

#include "cookie.h"

static const char label_mac1[] = "mac1----";
static const char label_cookie[] = "cookie--";

enum { LABEL_LEN = 8 };
_Static_assert(sizeof(label_mac1) - 1 == LABEL_LEN && sizeof(label_cookie) - 1 == LABEL_LEN,
	       "labels are 8 bytes");

/* Checker secrets: random mode uses random; cluster mode the rest. */
struct gwd_cookie_secrets {
	uint8_t random[GW_HASH_LEN];
	uint8_t cluster[GW_HASH_LEN];
	uint8_t period[2][GW_HASH_LEN]; /* [0]: current period, [1]: the one before */
};

/* Offsets of the macs in an initiation or response; false for other lengths. */
static bool macs_offsets(size_t len, size_t *mac1, size_t *mac2)
{
	if (len != GWD_MESSAGE_INITIATION_LEN && len != GWD_MESSAGE_RESPONSE_LEN)
		return false;
	*mac1 = len - sizeof(struct gwd_message_macs);
	*mac2 = *mac1 + GWD_COOKIE_MAC_LEN;
	return true;
}

/* out = HASH(label || pub) */
static void derive_key(uint8_t out[static GW_HASH_LEN], const char *label,
		       const uint8_t pub[static GW_KEY_LEN])
{
	struct gw_blake2s s;

	gw_blake2s_init(&s, GW_HASH_LEN, NULL, 0);
	gw_blake2s_update(&s, label, LABEL_LEN);
	gw_blake2s_update(&s, pub, GW_KEY_LEN);
	gw_blake2s_final(&s, out, GW_HASH_LEN);
}

/* out = keyed-BLAKE2s-128(key, in) */
static void mac(uint8_t out[static GWD_COOKIE_MAC_LEN], const uint8_t *key, size_t keylen,
		const void *in, size_t inlen)
{
	gw_blake2s(out, GWD_COOKIE_MAC_LEN, in, inlen, key, keylen);
}

int gwd_cookie_checker_init(struct gwd_cookie_checker *c, const struct gw_clock *clock)
{
	memset(c, 0, sizeof(*c));
	c->secrets = gw_secret_alloc(sizeof(*c->secrets));
	if (!c->secrets)
		return -ENOMEM;
	memset(c->secrets, 0, sizeof(*c->secrets));
	c->clock = clock;
	return 0;
}

void gwd_cookie_checker_destroy(struct gwd_cookie_checker *c)
{
	gw_secret_free(c->secrets);
	gw_wipe(c, sizeof(*c));
}

void gwd_cookie_checker_set_key(struct gwd_cookie_checker *c, const uint8_t *pub)
{
	c->has_key = pub != NULL;
	if (!pub) {
		memset(c->mac1_key, 0, sizeof(c->mac1_key));
		memset(c->cookie_key, 0, sizeof(c->cookie_key));
		return;
	}
	derive_key(c->mac1_key, label_mac1, pub);
	derive_key(c->cookie_key, label_cookie, pub);
}

void gwd_cookie_checker_set_cluster_secret(struct gwd_cookie_checker *c, const uint8_t *secret)
{
	gw_wipe(c->secrets, sizeof(*c->secrets));
	c->random_valid = false;
	c->period_valid = false;
	c->cluster = secret != NULL;
	if (secret)
		memcpy(c->secrets->cluster, secret, GW_HASH_LEN);
}

/* The random-mode secret, replaced once it is GWD_COOKIE_SECRET_MAX_AGE old. */
static const uint8_t *random_secret(struct gwd_cookie_checker *c)
{
	uint64_t now = gw_clock_mono_ns(c->clock);

	if (!c->random_valid || now - c->random_birth_ns >= GWD_SEC_NS(GWD_COOKIE_SECRET_MAX_AGE)) {
		gw_random_bytes(c->secrets->random, GW_HASH_LEN);
		c->random_birth_ns = now;
		c->random_valid = true;
	}
	return c->secrets->random;
}

static uint64_t current_period(const struct gwd_cookie_checker *c)
{
	struct timespec ts;

	gw_clock_real(c->clock, &ts);
	return ts.tv_sec > 0 ? (uint64_t)ts.tv_sec / GWD_COOKIE_SECRET_MAX_AGE : 0;
}

static void period_secret(uint8_t out[static GW_HASH_LEN], const uint8_t cluster[GW_HASH_LEN],
			  uint64_t period)
{
	uint64_t le = htole64(period);

	gw_blake2s(out, GW_HASH_LEN, &le, sizeof(le), cluster, GW_HASH_LEN);
}

/* Cluster mode: the secret of the current period (age 0) or the one before (age 1). */
static const uint8_t *cluster_secret(struct gwd_cookie_checker *c, unsigned int age)
{
	uint64_t p = current_period(c);

	if (!c->period_valid || c->period != p) {
		period_secret(c->secrets->period[0], c->secrets->cluster, p);
		period_secret(c->secrets->period[1], c->secrets->cluster, p - 1);
		c->period = p;
		c->period_valid = true;
	}
	return c->secrets->period[age];
}

/*
 * cookie = MAC(secret, address bytes || port), the port in network byte
 * order. IPv4-mapped IPv6 sources count as IPv4, so a dual-stack socket and
 * an IPv4 socket (on another node, in cluster mode) agree. False for other
 * address families.
 */
static bool make_cookie(uint8_t out[static GWD_COOKIE_LEN], const uint8_t secret[GW_HASH_LEN],
			const union gw_sockaddr *src)
{
	uint8_t buf[16 + 2];
	size_t n;

	if (src->sa.sa_family == AF_INET) {
		memcpy(buf, &src->in.sin_addr, 4);
		memcpy(buf + 4, &src->in.sin_port, 2);
		n = 6;
	} else if (src->sa.sa_family == AF_INET6 && IN6_IS_ADDR_V4MAPPED(&src->in6.sin6_addr)) {
		memcpy(buf, &src->in6.sin6_addr.s6_addr[12], 4);
		memcpy(buf + 4, &src->in6.sin6_port, 2);
		n = 6;
	} else if (src->sa.sa_family == AF_INET6) {
		memcpy(buf, &src->in6.sin6_addr, 16);
		memcpy(buf + 16, &src->in6.sin6_port, 2);
		n = 18;
	} else {
		return false;
	}
	mac(out, secret, GW_HASH_LEN, buf, n);
	return true;
}

/* True when mac2 of msg is right for the cookie of src under secret. */
static bool mac2_matches(const uint8_t *msg, size_t mac2_off, const uint8_t *secret,
			 const union gw_sockaddr *src)
{
	uint8_t cookie[GWD_COOKIE_LEN], want[GWD_COOKIE_MAC_LEN];
	bool ok = false;

	if (make_cookie(cookie, secret, src)) {
		mac(want, cookie, sizeof(cookie), msg, mac2_off);
		ok = gw_memeq(want, msg + mac2_off, GWD_COOKIE_MAC_LEN);
	}
	gw_wipe(cookie, sizeof(cookie));
	return ok;
}

enum gwd_cookie_mac_state gwd_cookie_validate(struct gwd_cookie_checker *c, const void *msg,
					      size_t len, const union gw_sockaddr *src,
					      bool check_mac2)
{
	const uint8_t *p = msg;
	uint8_t want[GWD_COOKIE_MAC_LEN];
	size_t mac1_off, mac2_off;
	bool ok;

	if (!c->has_key || !macs_offsets(len, &mac1_off, &mac2_off))
		return GWD_COOKIE_MAC_INVALID;
	mac(want, c->mac1_key, sizeof(c->mac1_key), p, mac1_off);
	if (!gw_memeq(want, p + mac1_off, GWD_COOKIE_MAC_LEN))
		return GWD_COOKIE_MAC_INVALID;
	if (!check_mac2)
		return GWD_COOKIE_MAC1_VALID;

	if (!c->cluster)
		ok = mac2_matches(p, mac2_off, random_secret(c), src);
	else
		ok = mac2_matches(p, mac2_off, cluster_secret(c, 0), src) ||
		     mac2_matches(p, mac2_off, cluster_secret(c, 1), src);
	return ok ? GWD_COOKIE_MAC2_VALID : GWD_COOKIE_MAC1_VALID;
}

int gwd_cookie_reply_create(struct gwd_cookie_checker *c, struct gwd_message_handshake_cookie *out,
			    const void *msg, size_t len, const union gw_sockaddr *src)
{
	const uint8_t *p = msg;
	const uint8_t *secret;
	uint8_t cookie[GWD_COOKIE_LEN];
	size_t mac1_off, mac2_off;

	if (!c->has_key)
		return -ENOKEY;
	if (!macs_offsets(len, &mac1_off, &mac2_off))
		return -EINVAL;
	secret = c->cluster ? cluster_secret(c, 0) : random_secret(c);
	if (!make_cookie(cookie, secret, src))
		return -EAFNOSUPPORT;

	out->header.type = htole32(GWD_MESSAGE_HANDSHAKE_COOKIE);
	/* The sender_index of both initiation and response follows the header. */
	memcpy(&out->receiver_index, p + sizeof(struct gwd_message_header),
	       sizeof(out->receiver_index));
	gw_random_bytes(out->nonce, sizeof(out->nonce));
	gw_xaead_encrypt(out->encrypted_cookie, cookie, sizeof(cookie), p + mac1_off,
			 GWD_COOKIE_MAC_LEN, out->nonce, c->cookie_key);
	gw_wipe(cookie, sizeof(cookie));
	return 0;
}

void gwd_cookie_maker_init(struct gwd_cookie_maker *m, const struct gw_clock *clock,
			   const uint8_t pub[static GW_KEY_LEN])
{
	memset(m, 0, sizeof(*m));
	m->clock = clock;
	derive_key(m->mac1_key, label_mac1, pub);
	derive_key(m->cookie_key, label_cookie, pub);
}

void gwd_cookie_maker_clear(struct gwd_cookie_maker *m)
{
	gw_wipe(m->cookie, sizeof(m->cookie));
	gw_wipe(m->last_mac1, sizeof(m->last_mac1));
	m->cookie_valid = false;
	m->has_last_mac1 = false;
}

/* A received cookie is used for COOKIE_SECRET_MAX_AGE - COOKIE_SECRET_LATENCY. */
static bool cookie_fresh(const struct gwd_cookie_maker *m)
{
	uint64_t now = gw_clock_mono_ns(m->clock);

	return m->cookie_valid && now - m->cookie_birth_ns < GWD_SEC_NS(GWD_COOKIE_SECRET_MAX_AGE -
									GWD_COOKIE_SECRET_LATENCY);
}

int gwd_cookie_add_macs(struct gwd_cookie_maker *m, void *msg, size_t len)
{
	uint8_t *p = msg;
	size_t mac1_off, mac2_off;

	if (!macs_offsets(len, &mac1_off, &mac2_off))
		return -EINVAL;
	mac(p + mac1_off, m->mac1_key, sizeof(m->mac1_key), p, mac1_off);
	memcpy(m->last_mac1, p + mac1_off, GWD_COOKIE_MAC_LEN);
	m->has_last_mac1 = true;

	if (cookie_fresh(m))
		mac(p + mac2_off, m->cookie, sizeof(m->cookie), p, mac2_off);
	else
		memset(p + mac2_off, 0, GWD_COOKIE_MAC_LEN);
	return 0;
}

int gwd_cookie_consume_reply(struct gwd_cookie_maker *m,
			     const struct gwd_message_handshake_cookie *reply)
{
	uint8_t cookie[GWD_COOKIE_LEN];

	if (!m->has_last_mac1)
		return -ENOENT;
	if (!gw_xaead_decrypt(cookie, reply->encrypted_cookie, sizeof(reply->encrypted_cookie),
			      m->last_mac1, sizeof(m->last_mac1), reply->nonce, m->cookie_key))
		return -EBADMSG;
	memcpy(m->cookie, cookie, sizeof(cookie));
	gw_wipe(cookie, sizeof(cookie));
	m->cookie_birth_ns = gw_clock_mono_ns(m->clock);
	m->cookie_valid = true;
	/* One cookie per message sent: a second reply to it is refused. */
	m->has_last_mac1 = false;
	return 0;
}
