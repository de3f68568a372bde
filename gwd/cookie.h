/* SPDX-License-Identifier: MIT */
/*
 * WireGuard's mac1/mac2 and cookie replies (paper 5.3 and 5.4.7, protocol
 * page "Cookie MACs"), with no I/O.
 *
 *   mac1 = MAC(HASH("mac1----" || receiver's static public), msg up to mac1)
 *   mac2 = MAC(cookie, msg up to mac2), or zeros without a fresh cookie
 *   cookie = MAC(secret, source IP bytes || source UDP port, network order)
 *   cookie reply = XAEAD(HASH("cookie--" || receiver's static public),
 *                        random 24-byte nonce, cookie, AD = mac1 answered)
 *
 * where MAC is keyed BLAKE2s-128. Every handshake message (initiation and
 * response) carries macs; the receiver always checks mac1 and, when under
 * load, demands mac2 and answers a message without it with a cookie reply.
 *
 * Checker secrets, two modes:
 * - default: a random secret, replaced when GWD_COOKIE_SECRET_MAX_AGE old;
 * - cluster (session-sync.md): the secret of period p = floor(unix_time /
 *   120) is keyed-BLAKE2s-256(key = cluster_secret, msg = p as 8 bytes little
 *   endian). Cookies are made under the current period and mac2 is accepted
 *   under the current and the previous one, so every node holding the
 *   cluster secret accepts every other node's cookies without any sync.
 *
 * Not thread-safe: callers serialise calls on one checker or maker.
 */
#ifndef GWD_COOKIE_H
#define GWD_COOKIE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gw/addr.h"
#include "gw/clock.h"
#include "gw/crypto.h"
#include "messages.h"

struct gwd_cookie_secrets; /* gw_secret memory, private to cookie.c */

/* Receiver side: one per interface. */
struct gwd_cookie_checker {
	const struct gw_clock *clock; /* monotonic: secret age; real: cluster period */
	bool has_key;
	uint8_t mac1_key[GW_HASH_LEN];	 /* HASH("mac1----" || our static public) */
	uint8_t cookie_key[GW_HASH_LEN]; /* HASH("cookie--" || our static public) */
	struct gwd_cookie_secrets *secrets;
	bool cluster;
	bool random_valid;
	uint64_t random_birth_ns;
	bool period_valid; /* the period secrets cached in secrets are for period */
	uint64_t period;
};

/* Sender side: one per peer. */
struct gwd_cookie_maker {
	const struct gw_clock *clock;
	uint8_t mac1_key[GW_HASH_LEN];	 /* HASH("mac1----" || peer's static public) */
	uint8_t cookie_key[GW_HASH_LEN]; /* HASH("cookie--" || peer's static public) */
	uint8_t cookie[GWD_COOKIE_LEN];
	bool cookie_valid;
	uint64_t cookie_birth_ns;
	uint8_t last_mac1[GWD_COOKIE_MAC_LEN]; /* of the last message we sent */
	bool has_last_mac1;
};

enum gwd_cookie_mac_state {
	GWD_COOKIE_MAC_INVALID, /* mac1 wrong (or no identity, or bad length): drop */
	/* mac1 right; mac2 not checked, absent, stale or wrong: under load, send a cookie reply. */
	GWD_COOKIE_MAC1_VALID,
	GWD_COOKIE_MAC2_VALID, /* both right: the source address is proven */
};

/* Random mode, no key yet. 0 or -ENOMEM. */
int gwd_cookie_checker_init(struct gwd_cookie_checker *c, const struct gw_clock *clock);
void gwd_cookie_checker_destroy(struct gwd_cookie_checker *c);
/* Our static public key, NULL when we have none; call on every key change. */
void gwd_cookie_checker_set_key(struct gwd_cookie_checker *c, const uint8_t *pub);
/* Switches to cluster mode with this secret, or back to random mode with NULL. */
void gwd_cookie_checker_set_cluster_secret(struct gwd_cookie_checker *c, const uint8_t *secret);

/*
 * Checks the macs of a received initiation or response of len bytes (its
 * exact size; anything else is INVALID) from src. mac2 only when check_mac2
 * (the caller is under load).
 */
enum gwd_cookie_mac_state gwd_cookie_validate(struct gwd_cookie_checker *c, const void *msg,
					      size_t len, const union gw_sockaddr *src,
					      bool check_mac2);
/*
 * Writes into out the cookie reply to msg (an initiation or response of len
 * bytes received from src, whose mac1 was valid). 0, -ENOKEY (no identity),
 * -EINVAL (length) or -EAFNOSUPPORT (src neither IPv4 nor IPv6).
 */
int gwd_cookie_reply_create(struct gwd_cookie_checker *c, struct gwd_message_handshake_cookie *out,
			    const void *msg, size_t len, const union gw_sockaddr *src);

/* For the peer with static public key pub. */
void gwd_cookie_maker_init(struct gwd_cookie_maker *m, const struct gw_clock *clock,
			   const uint8_t pub[static GW_KEY_LEN]);
/* Forgets the cookie and the last mac1 (wiped); keeps the keys. */
void gwd_cookie_maker_clear(struct gwd_cookie_maker *m);
/*
 * Fills mac1 and mac2 of an initiation or response of len bytes about to be
 * sent (everything before the macs must be final), and remembers mac1 for a
 * cookie reply. 0 or -EINVAL (length).
 */
int gwd_cookie_add_macs(struct gwd_cookie_maker *m, void *msg, size_t len);
/*
 * Takes the cookie from a reply to the last message we sent (the caller found
 * this maker's peer under reply->receiver_index). 0; -ENOENT when no message
 * awaits a cookie (none sent, or a reply was already taken for it); -EBADMSG
 * when the reply does not authenticate.
 */
int gwd_cookie_consume_reply(struct gwd_cookie_maker *m,
			     const struct gwd_message_handshake_cookie *reply);

#endif
