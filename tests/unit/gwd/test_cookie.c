/* SPDX-License-Identifier: MIT */
/*
 * mac1/mac2 and cookie replies on a fake clock. The messages are synthetic
 * (the macs cover bytes, not meaning); the handshake itself is test_noise's.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <endian.h>
#include <errno.h>
#include <string.h>
#include <sys/un.h>

#include "cookie.h"
#include "gw/clock.h"
#include "gw/crypto.h"

static struct gw_fake_clock fc;
static uint8_t pub[GW_KEY_LEN];

/* RFC 7748 section 6.1, Bob's public key: the responder's static key below. */
static const uint8_t bob_pub[GW_KEY_LEN] = {
    0xde, 0x9e, 0xdb, 0x7d, 0x7b, 0x7d, 0xc1, 0xb4, 0xd3, 0x5b, 0x61, 0xc2, 0xec, 0xe4, 0x35, 0x37,
    0x3f, 0x83, 0x43, 0xc8, 0x5b, 0x78, 0x67, 0x4d, 0xad, 0xfc, 0x7e, 0x14, 0x6f, 0x88, 0x2b, 0x4f,
};

static void setup(void)
{
	cr_assert_eq(gw_crypto_init(), 0);
	/* 1700000000 s: 80 s into the 120 s period 14166666. */
	gw_fake_clock_init(&fc, 1000 * GW_NSEC_PER_SEC, 1700000000);
	gw_random_bytes(pub, sizeof(pub));
}

TestSuite(cookie, .init = setup);

static void advance_s(uint64_t s)
{
	gw_fake_clock_advance(&fc, s * GW_NSEC_PER_SEC);
}

static union gw_sockaddr v4(const char *addr, uint16_t port)
{
	union gw_sockaddr sa = {.in = {.sin_family = AF_INET, .sin_port = htons(port)}};

	cr_assert_eq(inet_pton(AF_INET, addr, &sa.in.sin_addr), 1);
	return sa;
}

static union gw_sockaddr v6(const char *addr, uint16_t port)
{
	union gw_sockaddr sa = {.in6 = {.sin6_family = AF_INET6, .sin6_port = htons(port)}};

	cr_assert_eq(inet_pton(AF_INET6, addr, &sa.in6.sin6_addr), 1);
	return sa;
}

/* A synthetic initiation: type 1, sender index 0x11223344, random body. */
static void fake_initiation(struct gwd_message_handshake_initiation *m)
{
	gw_random_bytes(m, sizeof(*m));
	m->header.type = htole32(GWD_MESSAGE_HANDSHAKE_INITIATION);
	m->sender_index = htole32(0x11223344);
}

static struct gwd_cookie_checker *checker_new(const uint8_t *cluster_secret)
{
	struct gwd_cookie_checker *c = malloc(sizeof(*c));

	cr_assert_not_null(c);
	cr_assert_eq(gwd_cookie_checker_init(c, &fc.clock), 0);
	gwd_cookie_checker_set_key(c, pub);
	gwd_cookie_checker_set_cluster_secret(c, cluster_secret);
	return c;
}

static void checker_free(struct gwd_cookie_checker *c)
{
	gwd_cookie_checker_destroy(c);
	free(c);
}

/* Under load, without a cookie: the checker answers; the maker takes the cookie. */
static void get_cookie(struct gwd_cookie_checker *c, struct gwd_cookie_maker *m,
		       struct gwd_message_handshake_initiation *msg, const union gw_sockaddr *src)
{
	struct gwd_message_handshake_cookie reply;

	cr_assert_eq(gwd_cookie_add_macs(m, msg, sizeof(*msg)), 0);
	cr_assert_eq(gwd_cookie_validate(c, msg, sizeof(*msg), src, true), GWD_COOKIE_MAC1_VALID);
	cr_assert_eq(gwd_cookie_reply_create(c, &reply, msg, sizeof(*msg), src), 0);
	cr_assert_eq(le32toh(reply.header.type), GWD_MESSAGE_HANDSHAKE_COOKIE);
	cr_assert_eq(reply.receiver_index, msg->sender_index);
	cr_assert_eq(gwd_cookie_consume_reply(m, &reply), 0);
}

/* The macs of the message resent after a cookie, checked under load. */
static enum gwd_cookie_mac_state resend(struct gwd_cookie_checker *c, struct gwd_cookie_maker *m,
					const union gw_sockaddr *src)
{
	struct gwd_message_handshake_initiation msg;

	fake_initiation(&msg);
	cr_assert_eq(gwd_cookie_add_macs(m, &msg, sizeof(msg)), 0);
	return gwd_cookie_validate(c, &msg, sizeof(msg), src, true);
}

static bool is_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

/*
 * mac1, cookie and mac2 against values computed with Python's hashlib
 * BLAKE2s (an independent implementation) from the formulas of the
 * protocol page and the cluster period secret of session-sync.md.
 */
Test(cookie, known_answers)
{
	static const uint8_t want_mac1[16] = {0xae, 0xab, 0xcb, 0x4c, 0xc8, 0x5e, 0xa2, 0xd8,
					      0x26, 0x53, 0x6b, 0xaf, 0xc8, 0x5b, 0x8e, 0x02};
	static const uint8_t want_cookie[16] = {0x8a, 0xfc, 0xb8, 0x6b, 0x86, 0x0a, 0xc6, 0x44,
						0xc9, 0xb5, 0x01, 0x27, 0x23, 0xa3, 0x43, 0xce};
	static const uint8_t want_mac2[16] = {0x54, 0xb2, 0x02, 0xad, 0x5e, 0xa2, 0xfc, 0xdf,
					      0x24, 0x5f, 0xc6, 0x96, 0xa6, 0x78, 0x23, 0x3d};
	uint8_t cluster[GW_KEY_LEN], msg[GWD_MESSAGE_INITIATION_LEN];
	struct gwd_cookie_checker *c;
	struct gwd_cookie_maker m;
	struct gwd_message_handshake_cookie reply;
	union gw_sockaddr src = v4("192.0.2.1", 51820);

	for (size_t i = 0; i < sizeof(msg); i++)
		msg[i] = (uint8_t)i;
	msg[0] = 1;
	msg[1] = msg[2] = msg[3] = 0;
	for (size_t i = 0; i < sizeof(cluster); i++)
		cluster[i] = (uint8_t)(0xc0 + i);
	memcpy(pub, bob_pub, sizeof(pub));
	c = checker_new(cluster);
	gwd_cookie_maker_init(&m, &fc.clock, bob_pub);

	cr_assert_eq(gwd_cookie_add_macs(&m, msg, sizeof(msg)), 0);
	cr_assert_eq(memcmp(msg + 116, want_mac1, 16), 0, "mac1");
	cr_assert(is_zero(msg + 132, 16), "no cookie yet: mac2 zero");
	cr_assert_eq(gwd_cookie_reply_create(c, &reply, msg, sizeof(msg), &src), 0);
	cr_assert_eq(gwd_cookie_consume_reply(&m, &reply), 0);
	cr_assert_eq(memcmp(m.cookie, want_cookie, 16), 0, "cookie of the period secret");
	cr_assert_eq(gwd_cookie_add_macs(&m, msg, sizeof(msg)), 0);
	cr_assert_eq(memcmp(msg + 116, want_mac1, 16), 0);
	cr_assert_eq(memcmp(msg + 132, want_mac2, 16), 0, "mac2");
	cr_assert_eq(gwd_cookie_validate(c, msg, sizeof(msg), &src, true), GWD_COOKIE_MAC2_VALID);
	checker_free(c);
}

Test(cookie, mac1_checks)
{
	struct gwd_cookie_checker *c = checker_new(NULL);
	struct gwd_cookie_maker m, other;
	struct gwd_message_handshake_initiation msg, bad;
	struct gwd_message_handshake_response resp;
	union gw_sockaddr src = v4("192.0.2.1", 51820);
	uint8_t other_pub[GW_KEY_LEN];

	gwd_cookie_maker_init(&m, &fc.clock, pub);
	fake_initiation(&msg);
	cr_assert_eq(gwd_cookie_add_macs(&m, &msg, sizeof(msg)), 0);
	cr_assert_eq(gwd_cookie_validate(c, &msg, sizeof(msg), &src, false), GWD_COOKIE_MAC1_VALID);
	for (size_t i = 0; i < offsetof(struct gwd_message_handshake_initiation, macs.mac2); i++) {
		bad = msg;
		((uint8_t *)&bad)[i] ^= 0x20;
		cr_assert_eq(gwd_cookie_validate(c, &bad, sizeof(bad), &src, false),
			     GWD_COOKIE_MAC_INVALID, "byte %zu", i);
	}
	/* mac2 is not covered by mac1. */
	bad = msg;
	bad.macs.mac2[0] ^= 1;
	cr_assert_eq(gwd_cookie_validate(c, &bad, sizeof(bad), &src, false), GWD_COOKIE_MAC1_VALID);

	/* mac1 for another responder's key. */
	gw_random_bytes(other_pub, sizeof(other_pub));
	gwd_cookie_maker_init(&other, &fc.clock, other_pub);
	cr_assert_eq(gwd_cookie_add_macs(&other, &bad, sizeof(bad)), 0);
	cr_assert_eq(gwd_cookie_validate(c, &bad, sizeof(bad), &src, false),
		     GWD_COOKIE_MAC_INVALID);

	/* Responses carry macs at their own offsets. */
	gw_random_bytes(&resp, sizeof(resp));
	cr_assert_eq(gwd_cookie_add_macs(&m, &resp, sizeof(resp)), 0);
	cr_assert_eq(gwd_cookie_validate(c, &resp, sizeof(resp), &src, false),
		     GWD_COOKIE_MAC1_VALID);

	/* Lengths other than those two, and a checker without a key. */
	cr_assert_eq(gwd_cookie_add_macs(&m, &msg, sizeof(msg) - 1), -EINVAL);
	cr_assert_eq(gwd_cookie_validate(c, &msg, sizeof(msg) - 1, &src, false),
		     GWD_COOKIE_MAC_INVALID);
	cr_assert_eq(gwd_cookie_validate(c, &msg, GWD_MESSAGE_COOKIE_LEN, &src, false),
		     GWD_COOKIE_MAC_INVALID);
	gwd_cookie_checker_set_key(c, NULL);
	cr_assert_eq(gwd_cookie_validate(c, &msg, sizeof(msg), &src, false),
		     GWD_COOKIE_MAC_INVALID);
	checker_free(c);
}

Test(cookie, under_load_mac2_is_demanded_then_passes)
{
	struct gwd_cookie_checker *c = checker_new(NULL);
	struct gwd_cookie_maker m;
	struct gwd_message_handshake_initiation msg;
	union gw_sockaddr src = v4("192.0.2.1", 51820);
	union gw_sockaddr other_port = v4("192.0.2.1", 51821);
	union gw_sockaddr other_addr = v4("192.0.2.2", 51820);

	gwd_cookie_maker_init(&m, &fc.clock, pub);
	fake_initiation(&msg);
	get_cookie(c, &m, &msg, &src);
	cr_assert_eq(resend(c, &m, &src), GWD_COOKIE_MAC2_VALID);
	cr_assert_eq(resend(c, &m, &other_port), GWD_COOKIE_MAC1_VALID, "cookie is per port");
	cr_assert_eq(resend(c, &m, &other_addr), GWD_COOKIE_MAC1_VALID, "cookie is per address");

	/* Not under load, mac2 is not even looked at. */
	fake_initiation(&msg);
	cr_assert_eq(gwd_cookie_add_macs(&m, &msg, sizeof(msg)), 0);
	cr_assert_eq(gwd_cookie_validate(c, &msg, sizeof(msg), &other_addr, false),
		     GWD_COOKIE_MAC1_VALID);
	checker_free(c);
}

Test(cookie, ipv6_sources)
{
	struct gwd_cookie_checker *c = checker_new(NULL);
	struct gwd_cookie_maker m;
	struct gwd_message_handshake_initiation msg;
	union gw_sockaddr src = v6("2001:db8:1::10", 51820);
	union gw_sockaddr near = v6("2001:db8:1::11", 51820);

	gwd_cookie_maker_init(&m, &fc.clock, pub);
	fake_initiation(&msg);
	get_cookie(c, &m, &msg, &src);
	cr_assert_eq(resend(c, &m, &src), GWD_COOKIE_MAC2_VALID);
	cr_assert_eq(resend(c, &m, &near), GWD_COOKIE_MAC1_VALID);
	checker_free(c);
}

Test(cookie, reply_only_for_the_last_mac1_and_only_once)
{
	struct gwd_cookie_checker *c = checker_new(NULL);
	struct gwd_cookie_maker m;
	struct gwd_message_handshake_initiation first, second;
	struct gwd_message_handshake_cookie reply, bad;
	union gw_sockaddr src = v4("192.0.2.1", 51820);

	gwd_cookie_maker_init(&m, &fc.clock, pub);
	fake_initiation(&first);
	cr_assert_eq(gwd_cookie_reply_create(c, &reply, &first, sizeof(first), &src), 0);
	cr_assert_eq(gwd_cookie_consume_reply(&m, &reply), -ENOENT, "nothing sent yet");

	cr_assert_eq(gwd_cookie_add_macs(&m, &first, sizeof(first)), 0);
	cr_assert_eq(gwd_cookie_reply_create(c, &reply, &first, sizeof(first), &src), 0);
	fake_initiation(&second);
	cr_assert_eq(gwd_cookie_add_macs(&m, &second, sizeof(second)), 0);
	cr_assert_eq(gwd_cookie_consume_reply(&m, &reply), -EBADMSG, "reply to an older message");

	cr_assert_eq(gwd_cookie_reply_create(c, &reply, &second, sizeof(second), &src), 0);
	for (size_t i = offsetof(struct gwd_message_handshake_cookie, nonce); i < sizeof(reply);
	     i++) {
		bad = reply;
		((uint8_t *)&bad)[i] ^= 0x04;
		cr_assert_eq(gwd_cookie_consume_reply(&m, &bad), -EBADMSG, "byte %zu", i);
	}
	cr_assert(!m.cookie_valid);
	cr_assert_eq(gwd_cookie_consume_reply(&m, &reply), 0);
	cr_assert(m.cookie_valid);
	cr_assert_eq(gwd_cookie_consume_reply(&m, &reply), -ENOENT, "one cookie per message");

	gwd_cookie_maker_clear(&m);
	cr_assert(!m.cookie_valid && is_zero(m.cookie, sizeof(m.cookie)));
	checker_free(c);
}

Test(cookie, reply_create_errors)
{
	struct gwd_cookie_checker *c = checker_new(NULL);
	struct gwd_message_handshake_initiation msg;
	struct gwd_message_handshake_cookie reply;
	union gw_sockaddr src = v4("192.0.2.1", 51820), unix_src;

	memset(&unix_src, 0, sizeof(unix_src));
	unix_src.sa.sa_family = AF_UNIX;
	fake_initiation(&msg);
	cr_assert_eq(gwd_cookie_reply_create(c, &reply, &msg, 100, &src), -EINVAL);
	cr_assert_eq(gwd_cookie_reply_create(c, &reply, &msg, sizeof(msg), &unix_src),
		     -EAFNOSUPPORT);
	cr_assert_eq(gwd_cookie_validate(c, &msg, sizeof(msg), &unix_src, true),
		     GWD_COOKIE_MAC_INVALID, "mac1 of a random message");
	gwd_cookie_checker_set_key(c, NULL);
	cr_assert_eq(gwd_cookie_reply_create(c, &reply, &msg, sizeof(msg), &src), -ENOKEY);
	checker_free(c);
}

/* The initiator uses a cookie for 120 - 5 s, then sends mac2 as zeros again. */
Test(cookie, maker_stops_using_an_old_cookie)
{
	struct gwd_cookie_checker *c = checker_new(NULL);
	struct gwd_cookie_maker m;
	struct gwd_message_handshake_initiation msg;
	union gw_sockaddr src = v4("192.0.2.1", 51820);

	gwd_cookie_maker_init(&m, &fc.clock, pub);
	fake_initiation(&msg);
	get_cookie(c, &m, &msg, &src);
	gw_fake_clock_advance(&fc, GWD_SEC_NS(115) - 1);
	cr_assert_eq(resend(c, &m, &src), GWD_COOKIE_MAC2_VALID);
	gw_fake_clock_advance(&fc, 1);
	fake_initiation(&msg);
	cr_assert_eq(gwd_cookie_add_macs(&m, &msg, sizeof(msg)), 0);
	cr_assert(is_zero(msg.macs.mac2, sizeof(msg.macs.mac2)));
	cr_assert_eq(gwd_cookie_validate(c, &msg, sizeof(msg), &src, true), GWD_COOKIE_MAC1_VALID);
	checker_free(c);
}

/* Default mode: the random secret is replaced every 120 s. */
Test(cookie, random_secret_rotates)
{
	struct gwd_cookie_checker *c = checker_new(NULL);
	struct gwd_cookie_maker m;
	struct gwd_message_handshake_initiation msg;
	union gw_sockaddr src = v4("192.0.2.1", 51820);

	gwd_cookie_maker_init(&m, &fc.clock, pub);
	fake_initiation(&msg);
	get_cookie(c, &m, &msg, &src);
	gw_fake_clock_advance(&fc, GWD_SEC_NS(GWD_COOKIE_SECRET_MAX_AGE) - 1);
	m.cookie_birth_ns = gw_clock_mono_ns(&fc.clock); /* keep the maker using it */
	cr_assert_eq(resend(c, &m, &src), GWD_COOKIE_MAC2_VALID);
	gw_fake_clock_advance(&fc, 1);
	cr_assert_eq(resend(c, &m, &src), GWD_COOKIE_MAC1_VALID, "secret replaced");

	/* A second checker in random mode has its own secret. */
	struct gwd_cookie_checker *c2 = checker_new(NULL);

	get_cookie(c, &m, &msg, &src);
	cr_assert_eq(resend(c2, &m, &src), GWD_COOKIE_MAC1_VALID);
	checker_free(c2);
	checker_free(c);
}

struct period_case {
	uint64_t after_s; /* from the cookie, made 80 s into a period */
	enum gwd_cookie_mac_state want;
};

static const struct period_case period_cases[] = {
    {0, GWD_COOKIE_MAC2_VALID},	   {39, GWD_COOKIE_MAC2_VALID}, /* last second of the same period */
    {40, GWD_COOKIE_MAC2_VALID},  /* the next period: previous accepted */
    {159, GWD_COOKIE_MAC2_VALID}, /* end of the next period */
    {160, GWD_COOKIE_MAC1_VALID}, /* two periods on */
    {1000, GWD_COOKIE_MAC1_VALID},
};

/* Cluster mode: accepted under the current and the previous 120 s period only. */
Test(cookie, cluster_periods)
{
	uint8_t secret[GW_KEY_LEN];
	union gw_sockaddr src = v4("192.0.2.1", 51820);

	gw_random_bytes(secret, sizeof(secret));
	for (size_t i = 0; i < sizeof(period_cases) / sizeof(period_cases[0]); i++) {
		struct gwd_cookie_checker *c;
		struct gwd_cookie_maker m;
		struct gwd_message_handshake_initiation msg;

		gw_fake_clock_init(&fc, 1000 * GW_NSEC_PER_SEC, 1700000000);
		c = checker_new(secret);
		gwd_cookie_maker_init(&m, &fc.clock, pub);
		fake_initiation(&msg);
		get_cookie(c, &m, &msg, &src);
		advance_s(period_cases[i].after_s);
		m.cookie_birth_ns = gw_clock_mono_ns(&fc.clock); /* past the maker's 115 s */
		cr_assert_eq(resend(c, &m, &src), period_cases[i].want, "case %zu", i);
		checker_free(c);
	}
}

/*
 * The point of cluster mode: a cookie from one node is accepted by another
 * holding the same cluster secret (also from a dual-stack socket, where the
 * IPv4 client shows up as ::ffff:192.0.2.1), but not by a node with another
 * secret or in random mode.
 */
Test(cookie, cluster_nodes_accept_each_others_cookies)
{
	uint8_t secret[GW_KEY_LEN], other[GW_KEY_LEN];
	struct gwd_cookie_checker *n1, *n2, *stranger, *solo;
	struct gwd_cookie_maker m;
	struct gwd_message_handshake_initiation msg;
	union gw_sockaddr src = v4("192.0.2.1", 51820);
	union gw_sockaddr mapped = v6("::ffff:192.0.2.1", 51820);

	gw_random_bytes(secret, sizeof(secret));
	gw_random_bytes(other, sizeof(other));
	n1 = checker_new(secret);
	n2 = checker_new(secret);
	stranger = checker_new(other);
	solo = checker_new(NULL);
	gwd_cookie_maker_init(&m, &fc.clock, pub);
	fake_initiation(&msg);
	get_cookie(n1, &m, &msg, &src);
	cr_assert_eq(resend(n2, &m, &src), GWD_COOKIE_MAC2_VALID);
	cr_assert_eq(resend(n2, &m, &mapped), GWD_COOKIE_MAC2_VALID);
	cr_assert_eq(resend(stranger, &m, &src), GWD_COOKIE_MAC1_VALID);
	cr_assert_eq(resend(solo, &m, &src), GWD_COOKIE_MAC1_VALID);

	/* Switching a node back to random mode drops the cluster secret. */
	gwd_cookie_checker_set_cluster_secret(n2, NULL);
	cr_assert(!n2->cluster);
	cr_assert_eq(resend(n2, &m, &src), GWD_COOKIE_MAC1_VALID);
	checker_free(n1);
	checker_free(n2);
	checker_free(stranger);
	checker_free(solo);
}
