/* SPDX-License-Identifier: MIT */
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "uapi_parse.h"

/*
 * Requests recorded from wireguard-tools v1.0.20210914 (`wg setconf`,
 * `wg addconf`, `wg set`) talking to a listener on
 * /var/run/wireguard/gwtestNNNN.sock, "set=1\n" removed. The keys are
 * throwaway test keys.
 */
#define K_PRIV "6042dd3291ea0918506b19f63013c78ba519514c39513e53a8f345b70410f84a"
#define K_P2   "b4daadc03741b0d33c744ada32a9cb48daf0f21f306ff9f7b15950e5db3ff44b"
#define K_P3   "139932a4eb73320c1b46bc93ff2a7ef859ed8026fc2e6643cf17514fa9cbba2b"
#define K_P4   "f93414c13c9dd58ab83b45d51b30546d505cb282beabaacf217e2081f52bd41c"
#define K_PSK  "2532b92e77dc4dcdd04b3c22e8a2f8353cb530bfdb2fb0610d514d73aa239015"
#define K_ZERO "0000000000000000000000000000000000000000000000000000000000000000"

/* wg setconf of an [Interface] with three [Peer]s. */
static const char rec_setconf[] = "private_key=" K_PRIV "\n"
				  "listen_port=51820\n"
				  "fwmark=4660\n"
				  "replace_peers=true\n"
				  "public_key=" K_P2 "\n"
				  "preshared_key=" K_PSK "\n"
				  "endpoint=192.0.2.1:51820\n"
				  "persistent_keepalive_interval=25\n"
				  "replace_allowed_ips=true\n"
				  "allowed_ip=198.18.0.0/16\n"
				  "allowed_ip=198.51.100.7/32\n"
				  "allowed_ip=2001:db8:1::/48\n"
				  "public_key=" K_P3 "\n"
				  "endpoint=[2001:db8::1]:51821\n"
				  "replace_allowed_ips=true\n"
				  "allowed_ip=0.0.0.0/0\n"
				  "allowed_ip=::/0\n"
				  "public_key=" K_P4 "\n"
				  "replace_allowed_ips=true\n"
				  "allowed_ip=203.0.113.0/24\n"
				  "\n";

/* wg addconf of a config with two [Peer] sections for the same key. */
static const char rec_addconf_dup[] = "listen_port=51821\n"
				      "public_key=" K_P2 "\n"
				      "replace_allowed_ips=true\n"
				      "allowed_ip=198.18.0.0/16\n"
				      "public_key=" K_P2 "\n"
				      "endpoint=192.0.2.2:1\n"
				      "replace_allowed_ips=true\n"
				      "allowed_ip=198.18.1.0/24\n"
				      "\n";

/* wg set IF peer P3 remove */
static const char rec_remove[] = "public_key=" K_P3 "\n"
				 "remove=true\n"
				 "\n";

/*
 * wg set IF private-key /dev/null listen-port 0 fwmark off peer P4
 * preshared-key /dev/null endpoint 198.51.100.9:65535 persistent-keepalive off
 * allowed-ips ""
 */
static const char rec_set_clear[] = "private_key=" K_ZERO "\n"
				    "listen_port=0\n"
				    "fwmark=0\n"
				    "public_key=" K_P4 "\n"
				    "preshared_key=" K_ZERO "\n"
				    "endpoint=198.51.100.9:65535\n"
				    "persistent_keepalive_interval=0\n"
				    "replace_allowed_ips=true\n"
				    "\n";

/* An independent hex decoder, so expectations do not rest on gw_key_from_hex. */
static void unhex(uint8_t out[GW_KEY_LEN], const char *s)
{
	for (size_t i = 0; i < GW_KEY_LEN; i++) {
		unsigned int v;

		cr_assert_eq(sscanf(s + 2 * i, "%2x", &v), 1);
		out[i] = (uint8_t)v;
	}
}

static void expect_key(const uint8_t *got, const char *hex)
{
	uint8_t want[GW_KEY_LEN];

	unhex(want, hex);
	cr_expect_arr_eq(got, want, GW_KEY_LEN, "key differs from %s", hex);
}

static void expect_prefix(const struct gw_prefix *p, int family, const char *addr, int cidr)
{
	uint8_t want[16] = {0};

	cr_assert_eq(inet_pton(family, addr, want), 1);
	cr_expect_eq(p->family, family, "%s: family", addr);
	cr_expect_eq(p->cidr, cidr, "%s: cidr %d", addr, p->cidr);
	cr_expect_arr_eq(p->addr, want, family == AF_INET ? 4 : 16, "%s: address", addr);
}

static void expect_ep4(const union gw_sockaddr *ep, const char *addr, uint16_t port)
{
	struct in_addr a;

	cr_assert_eq(inet_pton(AF_INET, addr, &a), 1);
	cr_expect_eq(ep->in.sin_family, AF_INET);
	cr_expect_eq(ntohs(ep->in.sin_port), port);
	cr_expect_eq(ep->in.sin_addr.s_addr, a.s_addr, "endpoint address != %s", addr);
}

static int parse(struct gwd_uapi_set *set, const char *body, struct gwd_uapi_error *err)
{
	return gwd_uapi_set_parse(set, body, strlen(body), err);
}

Test(uapi_parse, recorded_setconf)
{
	struct gwd_uapi_set set;
	struct gwd_uapi_error err;
	const struct gwd_uapi_peer *p;
	const struct gw_prefix *a;
	struct in6_addr v6;

	cr_assert_eq(parse(&set, rec_setconf, &err), 0, "line %u: %s", err.line, err.msg);
	cr_expect_eq(err.err, 0);
	cr_expect_eq(set.flags, GWD_UAPI_DEV_PRIVATE_KEY | GWD_UAPI_DEV_LISTEN_PORT |
				    GWD_UAPI_DEV_FWMARK | GWD_UAPI_DEV_REPLACE_PEERS);
	expect_key(set.private_key, K_PRIV);
	cr_expect_eq(set.listen_port, 51820);
	cr_expect_eq(set.fwmark, 0x1234);
	cr_assert_eq(set.n_peers, 3);
	cr_assert_eq(set.n_allowed_ips, 6);

	p = &set.peers[0];
	expect_key(p->public_key, K_P2);
	expect_key(p->preshared_key, K_PSK);
	cr_expect_eq(p->flags, GWD_UAPI_PEER_PRESHARED_KEY | GWD_UAPI_PEER_ENDPOINT |
				   GWD_UAPI_PEER_KEEPALIVE | GWD_UAPI_PEER_REPLACE_ALLOWED_IPS);
	expect_ep4(&p->endpoint, "192.0.2.1", 51820);
	cr_expect_eq(p->persistent_keepalive, 25);
	cr_assert_eq(p->n_allowed_ips, 3);
	a = gwd_uapi_peer_allowed_ips(&set, p);
	expect_prefix(&a[0], AF_INET, "198.18.0.0", 16);
	expect_prefix(&a[1], AF_INET, "198.51.100.7", 32);
	expect_prefix(&a[2], AF_INET6, "2001:db8:1::", 48);

	p = &set.peers[1];
	expect_key(p->public_key, K_P3);
	cr_expect_eq(p->flags, GWD_UAPI_PEER_ENDPOINT | GWD_UAPI_PEER_REPLACE_ALLOWED_IPS);
	cr_expect_eq(p->endpoint.in6.sin6_family, AF_INET6);
	cr_expect_eq(ntohs(p->endpoint.in6.sin6_port), 51821);
	cr_assert_eq(inet_pton(AF_INET6, "2001:db8::1", &v6), 1);
	cr_expect_arr_eq(&p->endpoint.in6.sin6_addr, &v6, sizeof(v6));
	cr_assert_eq(p->n_allowed_ips, 2);
	a = gwd_uapi_peer_allowed_ips(&set, p);
	expect_prefix(&a[0], AF_INET, "0.0.0.0", 0);
	expect_prefix(&a[1], AF_INET6, "::", 0);

	p = &set.peers[2];
	expect_key(p->public_key, K_P4);
	cr_expect_eq(p->flags, GWD_UAPI_PEER_REPLACE_ALLOWED_IPS);
	cr_assert_eq(p->n_allowed_ips, 1);
	expect_prefix(&gwd_uapi_peer_allowed_ips(&set, p)[0], AF_INET, "203.0.113.0", 24);

	gwd_uapi_set_free(&set);
	cr_expect_null(set.peers);
	cr_expect_eq(set.n_peers, 0);
	cr_expect_eq(set.flags, 0);
	gwd_uapi_set_free(&set); /* harmless twice */
}

/* Two blocks for one key stay two entries, applied in order (see uapi_parse.h). */
Test(uapi_parse, recorded_duplicate_peer_blocks)
{
	struct gwd_uapi_set set;

	cr_assert_eq(parse(&set, rec_addconf_dup, NULL), 0);
	cr_expect_eq(set.flags, GWD_UAPI_DEV_LISTEN_PORT);
	cr_assert_eq(set.n_peers, 2);
	cr_expect_arr_eq(set.peers[0].public_key, set.peers[1].public_key, GW_KEY_LEN);
	cr_assert_eq(set.peers[0].n_allowed_ips, 1);
	cr_assert_eq(set.peers[1].n_allowed_ips, 1);
	cr_expect_eq(set.peers[0].flags, GWD_UAPI_PEER_REPLACE_ALLOWED_IPS);
	cr_expect_eq(set.peers[1].flags,
		     GWD_UAPI_PEER_ENDPOINT | GWD_UAPI_PEER_REPLACE_ALLOWED_IPS);
	expect_prefix(&gwd_uapi_peer_allowed_ips(&set, &set.peers[0])[0], AF_INET, "198.18.0.0",
		      16);
	expect_prefix(&gwd_uapi_peer_allowed_ips(&set, &set.peers[1])[0], AF_INET, "198.18.1.0",
		      24);
	expect_ep4(&set.peers[1].endpoint, "192.0.2.2", 1);
	gwd_uapi_set_free(&set);
}

Test(uapi_parse, recorded_remove)
{
	struct gwd_uapi_set set;

	cr_assert_eq(parse(&set, rec_remove, NULL), 0);
	cr_expect_eq(set.flags, 0);
	cr_assert_eq(set.n_peers, 1);
	expect_key(set.peers[0].public_key, K_P3);
	cr_expect_eq(set.peers[0].flags, GWD_UAPI_PEER_REMOVE);
	gwd_uapi_set_free(&set);
}

Test(uapi_parse, recorded_zero_keys_and_clears)
{
	struct gwd_uapi_set set;
	const struct gwd_uapi_peer *p;
	uint8_t zero[GW_KEY_LEN] = {0};

	cr_assert_eq(parse(&set, rec_set_clear, NULL), 0);
	cr_expect_eq(set.flags,
		     GWD_UAPI_DEV_PRIVATE_KEY | GWD_UAPI_DEV_LISTEN_PORT | GWD_UAPI_DEV_FWMARK);
	cr_expect_arr_eq(set.private_key, zero, GW_KEY_LEN); /* remove the private key */
	cr_expect_eq(set.listen_port, 0);
	cr_expect_eq(set.fwmark, 0);
	cr_assert_eq(set.n_peers, 1);
	p = &set.peers[0];
	cr_expect_eq(p->flags, GWD_UAPI_PEER_PRESHARED_KEY | GWD_UAPI_PEER_ENDPOINT |
				   GWD_UAPI_PEER_KEEPALIVE | GWD_UAPI_PEER_REPLACE_ALLOWED_IPS);
	cr_expect_arr_eq(p->preshared_key, zero, GW_KEY_LEN);
	expect_ep4(&p->endpoint, "198.51.100.9", 65535);
	cr_expect_eq(p->persistent_keepalive, 0);
	cr_expect_eq(p->n_allowed_ips, 0);
	gwd_uapi_set_free(&set);
}

/* Every key with good values; what to check is named by `what`. */
enum what { W_NONE, W_PORT, W_FWMARK, W_KEEPALIVE, W_DEVFLAGS, W_PEERFLAGS, W_NALLOWED };

struct good_case {
	const char *body;
	enum what what;
	uint64_t want;
};

#define PK "public_key=" K_P2 "\n"

static const struct good_case good_cases[] = {
    {"", W_DEVFLAGS, 0},
    {"\n", W_DEVFLAGS, 0},
    {"listen_port=0\n", W_PORT, 0},
    {"listen_port=1\n", W_PORT, 1},
    {"listen_port=65535\n", W_PORT, 65535},
    {"listen_port=00080\n", W_PORT, 80}, /* leading zeros, as Go's ParseUint */
    {"listen_port=1\nlisten_port=2\n", W_PORT, 2},
    {"fwmark=0\n", W_FWMARK, 0},
    {"fwmark=4294967295\n", W_FWMARK, 4294967295u},
    {"private_key=" K_PRIV "\n", W_DEVFLAGS, GWD_UAPI_DEV_PRIVATE_KEY},
    {"private_key=6042DD3291EA0918506B19F63013C78BA519514C39513E53A8F345B70410F84A\n", W_DEVFLAGS,
     GWD_UAPI_DEV_PRIVATE_KEY},
    {"replace_peers=true\n", W_DEVFLAGS, GWD_UAPI_DEV_REPLACE_PEERS},
    {"replace_peers=true\n" PK, W_DEVFLAGS, GWD_UAPI_DEV_REPLACE_PEERS},
    {PK, W_PEERFLAGS, 0},
    {PK "remove=true\n", W_PEERFLAGS, GWD_UAPI_PEER_REMOVE},
    {PK "update_only=true\n", W_PEERFLAGS, GWD_UAPI_PEER_UPDATE_ONLY},
    {PK "preshared_key=" K_PSK "\n", W_PEERFLAGS, GWD_UAPI_PEER_PRESHARED_KEY},
    {PK "endpoint=203.0.113.5:0\n", W_PEERFLAGS, GWD_UAPI_PEER_ENDPOINT},
    {PK "endpoint=[2001:db8::5]:65535\n", W_PEERFLAGS, GWD_UAPI_PEER_ENDPOINT},
    {PK "persistent_keepalive_interval=0\n", W_KEEPALIVE, 0},
    {PK "persistent_keepalive_interval=65535\n", W_KEEPALIVE, 65535},
    {PK "replace_allowed_ips=true\n", W_PEERFLAGS, GWD_UAPI_PEER_REPLACE_ALLOWED_IPS},
    {PK "protocol_version=1\n", W_PEERFLAGS, 0},
    {PK "allowed_ip=198.18.0.1/32\n", W_NALLOWED, 1},
    {PK "allowed_ip=198.18.0.0/15\nallowed_ip=2001:db8::/128\n", W_NALLOWED, 2},
    /* replace_allowed_ips drops the lines of its block that came before it. */
    {PK "allowed_ip=198.18.0.0/16\nreplace_allowed_ips=true\nallowed_ip=198.51.100.0/24\n",
     W_NALLOWED, 1},
    {PK "remove=true\nupdate_only=true\n", W_PEERFLAGS,
     GWD_UAPI_PEER_REMOVE | GWD_UAPI_PEER_UPDATE_ONLY},
};

static uint64_t observe(const struct gwd_uapi_set *set, enum what what)
{
	const struct gwd_uapi_peer *p = set->n_peers ? &set->peers[set->n_peers - 1] : NULL;

	switch (what) {
	case W_PORT:
		return set->flags & GWD_UAPI_DEV_LISTEN_PORT ? set->listen_port : UINT64_MAX;
	case W_FWMARK:
		return set->flags & GWD_UAPI_DEV_FWMARK ? set->fwmark : UINT64_MAX;
	case W_KEEPALIVE:
		return p && (p->flags & GWD_UAPI_PEER_KEEPALIVE) ? p->persistent_keepalive
								 : UINT64_MAX;
	case W_DEVFLAGS:
		return set->flags;
	case W_PEERFLAGS:
		return p ? p->flags : UINT64_MAX;
	case W_NALLOWED:
		/* The last block's allowed IPs must end the shared array. */
		if (!p || p->first_allowed_ip + p->n_allowed_ips != set->n_allowed_ips)
			return UINT64_MAX;
		return p->n_allowed_ips;
	default:
		return 0;
	}
}

Test(uapi_parse, good_values)
{
	for (size_t i = 0; i < sizeof(good_cases) / sizeof(good_cases[0]); i++) {
		const struct good_case *c = &good_cases[i];
		struct gwd_uapi_set set;
		struct gwd_uapi_error err;
		int ret = parse(&set, c->body, &err);

		cr_expect_eq(ret, 0, "case %zu (%s): %d at line %u: %s", i, c->body, ret, err.line,
			     err.msg);
		if (ret == 0)
			cr_expect_eq(observe(&set, c->what), c->want, "case %zu (%s): got %llu", i,
				     c->body, (unsigned long long)observe(&set, c->what));
		gwd_uapi_set_free(&set);
	}
}

struct bad_case {
	const char *body;
	size_t len; /* 0: strlen(body) */
	int err;
	unsigned int line;
};

static const struct bad_case bad_cases[] = {
    /* Framing. */
    {"listen_port\n", 0, -EPROTO, 1},
    {"listen_port=1\nfwmark\n", 0, -EPROTO, 2},
    {"listen_port=1", 0, -EPROTO, 1},		    /* unterminated */
    {"listen_port=1\n\nfwmark=1\n", 0, -EPROTO, 2}, /* data after the blank line */
    {"=1\n", 0, -EINVAL, 1},			    /* empty key */
    {"=\n", 0, -EINVAL, 1},
    {"listen_port=1\0\n", 15, -EINVAL, 1}, /* NUL byte */
    {"\0listen_port=1\n", 15, -EINVAL, 1},
    {"\xff\xfe=\x01\n", 0, -EINVAL, 1},	  /* garbage */
    {"listen_port=1\r\n", 0, -EINVAL, 1}, /* CRLF is not a line end */
    {"listen_port =1\n", 0, -EINVAL, 1},
    {" listen_port=1\n", 0, -EINVAL, 1},
    /* Unknown keys, get-only keys, operations inside a body. */
    {"bogus=1\n", 0, -EINVAL, 1},
    {"LISTEN_PORT=1\n", 0, -EINVAL, 1},
    {"errno=0\n", 0, -EINVAL, 1},
    {"set=1\n", 0, -EINVAL, 1},
    {PK "last_handshake_time_sec=1\n", 0, -EINVAL, 2},
    {PK "rx_bytes=1\n", 0, -EINVAL, 2},
    /* Ordering. */
    {"remove=true\n", 0, -EINVAL, 1},
    {"update_only=true\n", 0, -EINVAL, 1},
    {"preshared_key=" K_PSK "\n", 0, -EINVAL, 1},
    {"endpoint=192.0.2.1:1\n", 0, -EINVAL, 1},
    {"persistent_keepalive_interval=1\n", 0, -EINVAL, 1},
    {"replace_allowed_ips=true\n", 0, -EINVAL, 1},
    {"allowed_ip=198.18.0.0/16\n", 0, -EINVAL, 1},
    {"protocol_version=1\n", 0, -EINVAL, 1},
    {PK "listen_port=1\n", 0, -EINVAL, 2},
    {PK "private_key=" K_PRIV "\n", 0, -EINVAL, 2},
    {PK "fwmark=1\n", 0, -EINVAL, 2},
    {PK "replace_peers=true\n", 0, -EINVAL, 2},
    /* Numbers. */
    {"listen_port=65536\n", 0, -EINVAL, 1},
    {"listen_port=-1\n", 0, -EINVAL, 1},
    {"listen_port=+1\n", 0, -EINVAL, 1},
    {"listen_port= 1\n", 0, -EINVAL, 1},
    {"listen_port=1 \n", 0, -EINVAL, 1},
    {"listen_port=\n", 0, -EINVAL, 1},
    {"listen_port=0x10\n", 0, -EINVAL, 1},
    {"listen_port=1e3\n", 0, -EINVAL, 1},
    {"listen_port=18446744073709551617\n", 0, -EINVAL, 1},
    {"fwmark=4294967296\n", 0, -EINVAL, 1},
    {"fwmark=0x1234\n", 0, -EINVAL, 1},
    {"fwmark=off\n", 0, -EINVAL, 1},
    {PK "persistent_keepalive_interval=65536\n", 0, -EINVAL, 2},
    {PK "persistent_keepalive_interval=off\n", 0, -EINVAL, 2},
    {PK "persistent_keepalive_interval=\n", 0, -EINVAL, 2},
    /* Booleans: "true" only. */
    {"replace_peers=false\n", 0, -EINVAL, 1},
    {"replace_peers=1\n", 0, -EINVAL, 1},
    {"replace_peers=TRUE\n", 0, -EINVAL, 1},
    {"replace_peers=\n", 0, -EINVAL, 1},
    {PK "remove=false\n", 0, -EINVAL, 2},
    {PK "update_only=yes\n", 0, -EINVAL, 2},
    {PK "replace_allowed_ips=truee\n", 0, -EINVAL, 2},
    /* Keys. */
    {"private_key=\n", 0, -EINVAL, 1},
    {"private_key=" K_PRIV "0\n", 0, -EINVAL, 1},  /* 65 digits */
    {"private_key=" K_PRIV "00\n", 0, -EINVAL, 1}, /* 66 digits */
    {"private_key=6042dd3291ea0918506b19f63013c78ba519514c39513e53a8f345b70410f84\n", 0, -EINVAL,
     1}, /* 63 digits */
    {"private_key=g042dd3291ea0918506b19f63013c78ba519514c39513e53a8f345b70410f84a\n", 0, -EINVAL,
     1},
    {"private_key=YEMt0pHqCRhQaxn2MBPHi6UZUUw5UT5TqPNFtwQQ+Eo=\n", 0, -EINVAL, 1}, /* base64 */
    {"public_key=\n", 0, -EINVAL, 1},
    {"public_key=" K_P2 "0\n", 0, -EINVAL, 1},
    {"public_key=zz" K_P2 "\n", 0, -EINVAL, 1},
    {PK "preshared_key=" K_PSK " \n", 0, -EINVAL, 2},
    {PK "preshared_key=x\n", 0, -EINVAL, 2},
    /* Endpoints. */
    {PK "endpoint=192.0.2.1\n", 0, -EINVAL, 2},
    {PK "endpoint=192.0.2.1:\n", 0, -EINVAL, 2},
    {PK "endpoint=192.0.2.1:65536\n", 0, -EINVAL, 2},
    {PK "endpoint=192.0.2.1:-1\n", 0, -EINVAL, 2},
    {PK "endpoint=192.0.2.256:1\n", 0, -EINVAL, 2},
    {PK "endpoint=2001:db8::1:51820\n", 0, -EINVAL, 2},
    {PK "endpoint=[2001:db8::1]\n", 0, -EINVAL, 2},
    {PK "endpoint=[192.0.2.1]:1\n", 0, -EINVAL, 2},
    {PK "endpoint=example.com:51820\n", 0, -EINVAL, 2},
    {PK "endpoint=\n", 0, -EINVAL, 2},
    /* Allowed IPs. */
    {PK "allowed_ip=198.18.0.0/33\n", 0, -EINVAL, 2},
    {PK "allowed_ip=2001:db8::/129\n", 0, -EINVAL, 2},
    {PK "allowed_ip=198.18.0.1\n", 0, -EINVAL, 2}, /* bare address */
    {PK "allowed_ip=198.18.0.0/\n", 0, -EINVAL, 2},
    {PK "allowed_ip=198.18.0.0/-1\n", 0, -EINVAL, 2},
    {PK "allowed_ip=198.18.0.0/16/16\n", 0, -EINVAL, 2},
    {PK "allowed_ip=/16\n", 0, -EINVAL, 2},
    {PK "allowed_ip=\n", 0, -EINVAL, 2},
    {PK "allowed_ip=198.18.0.0/16,198.19.0.0/16\n", 0, -EINVAL, 2},
    /* Protocol version. */
    {PK "protocol_version=2\n", 0, -EINVAL, 2},
    {PK "protocol_version=0\n", 0, -EINVAL, 2},
    {PK "protocol_version=01\n", 0, -EINVAL, 2},
    /* The first error counts; later lines do not change it. */
    {"listen_port=1\nfwmark=2\nlisten_port=x\nbogus\n", 0, -EINVAL, 3},
};

Test(uapi_parse, bad_values)
{
	for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
		const struct bad_case *c = &bad_cases[i];
		size_t len = c->len ? c->len : strlen(c->body);
		struct gwd_uapi_set set;
		struct gwd_uapi_error err;
		int ret = gwd_uapi_set_parse(&set, c->body, len, &err);

		cr_expect_eq(ret, c->err, "case %zu (%s): got %d, want %d", i, c->body, ret,
			     c->err);
		cr_expect_eq(err.err, ret, "case %zu", i);
		cr_expect_eq(err.line, c->line, "case %zu (%s): line %u, want %u", i, c->body,
			     err.line, c->line);
		cr_expect_not_null(err.msg, "case %zu", i);
		gwd_uapi_set_free(&set);
		cr_expect_eq(set.n_peers, 0);
	}
}

Test(uapi_parse, line_length_bound)
{
	char line[GWD_UAPI_LINE_MAX + 2];
	struct gwd_uapi_set set;
	struct gwd_uapi_error err;

	/* A line of exactly GWD_UAPI_LINE_MAX bytes reaches the key check. */
	memset(line, 'a', sizeof(line));
	memcpy(line, "bogus=", 6);
	gwd_uapi_set_init(&set, 0);
	cr_expect_eq(gwd_uapi_set_line(&set, line, GWD_UAPI_LINE_MAX), -EINVAL);
	gwd_uapi_set_free(&set);

	gwd_uapi_set_init(&set, 0);
	cr_expect_eq(gwd_uapi_set_line(&set, "listen_port=1", 13), 0);
	cr_expect_eq(gwd_uapi_set_line(&set, line, GWD_UAPI_LINE_MAX + 1), -EMSGSIZE);
	cr_expect_eq(gwd_uapi_set_line(&set, "fwmark=1", 8), -EMSGSIZE); /* sticky */
	cr_expect_eq(gwd_uapi_set_finish(&set, &err), -EMSGSIZE);
	cr_expect_eq(err.line, 2);
	gwd_uapi_set_free(&set);
}

Test(uapi_parse, request_size_bound)
{
	struct gwd_uapi_set set;
	struct gwd_uapi_error err;

	/* "listen_port=1\n" is 14 bytes: two fit in 28, a third does not. */
	gwd_uapi_set_init(&set, 28);
	cr_expect_eq(gwd_uapi_set_line(&set, "listen_port=1", 13), 0);
	cr_expect_eq(gwd_uapi_set_line(&set, "listen_port=2", 13), 0);
	cr_expect_eq(gwd_uapi_set_line(&set, "listen_port=3", 13), -EMSGSIZE);
	cr_expect_eq(gwd_uapi_set_finish(&set, &err), -EMSGSIZE);
	cr_expect_eq(err.line, 3);
	gwd_uapi_set_free(&set);
	cr_expect_eq(set.max_bytes, 28); /* free keeps the limit for reuse */
}

/* Allowed IPs are unbounded in number; 20000 for one peer parse and stay in order. */
Test(uapi_parse, many_allowed_ips)
{
	enum { N = 20000 };
	struct gwd_uapi_set set;
	char line[64];

	gwd_uapi_set_init(&set, 0);
	cr_assert_eq(gwd_uapi_set_line(&set, PK, strlen(PK) - 1), 0);
	for (int i = 0; i < N; i++) {
		int n =
		    snprintf(line, sizeof(line), "allowed_ip=198.18.%d.%d/32", i / 256, i % 256);

		cr_assert_eq(gwd_uapi_set_line(&set, line, (size_t)n), 0, "line %d", i);
	}
	cr_assert_eq(gwd_uapi_set_finish(&set, NULL), 0);
	cr_assert_eq(set.peers[0].n_allowed_ips, N);
	expect_prefix(&set.allowed_ips[N - 1], AF_INET, "198.18.78.31", 32);
	gwd_uapi_set_free(&set);
}

/* Many peers: the peer array moves several times and the PSKs move with it. */
Test(uapi_parse, many_peers)
{
	enum { N = 1000 };
	struct gwd_uapi_set set;
	char line[128];

	gwd_uapi_set_init(&set, 0);
	for (int i = 0; i < N; i++) {
		int n = snprintf(line, sizeof(line), "public_key=%064x", i);

		cr_assert_eq(gwd_uapi_set_line(&set, line, (size_t)n), 0);
		n = snprintf(line, sizeof(line), "preshared_key=%064x", i + 1);
		cr_assert_eq(gwd_uapi_set_line(&set, line, (size_t)n), 0);
	}
	cr_assert_eq(set.n_peers, N);
	for (int i = 0; i < N; i++) {
		cr_expect_eq(set.peers[i].public_key[31], (uint8_t)i);
		cr_expect_eq(set.peers[i].preshared_key[31], (uint8_t)(i + 1));
		cr_expect_eq(set.peers[i].preshared_key[30], (uint8_t)((i + 1) >> 8));
	}
	gwd_uapi_set_free(&set);
}

/* --- Reader ----------------------------------------------------------------- */

struct ev {
	int ev;
	char line[GWD_UAPI_LINE_MAX + 2];
	size_t len;
};

/* Feeds stream in pieces of `chunk` bytes; records events until an error. */
static size_t run_reader(const char *stream, size_t len, size_t chunk, struct ev *evs, size_t max,
			 int *err)
{
	struct gwd_uapi_reader r;
	size_t n = 0, off = 0;

	*err = 0;
	gwd_uapi_reader_init(&r);
	while (off < len) {
		size_t piece = len - off < chunk ? len - off : chunk;
		size_t done = 0;

		while (done < piece) {
			const char *line;
			size_t used, ll;
			int ev = gwd_uapi_reader_next(&r, stream + off + done, piece - done, &used,
						      &line, &ll);

			if (ev < 0) {
				*err = ev;
				return n;
			}
			done += used;
			if (ev == GWD_UAPI_EV_MORE)
				continue;
			cr_assert_lt(n, max);
			evs[n].ev = ev;
			evs[n].len = ll;
			if (line)
				memcpy(evs[n].line, line, ll);
			n++;
		}
		off += piece;
	}
	gwd_uapi_reader_wipe(&r);
	return n;
}

Test(uapi_reader, splits_operations_in_any_chunking)
{
	static const char stream[] = "get=1\n\nset=1\nlisten_port=1\nfwmark=2\n\nget=1\n\n";
	static const size_t chunks[] = {1, 2, 3, 5, 7, 13, sizeof(stream)};

	for (size_t c = 0; c < sizeof(chunks) / sizeof(chunks[0]); c++) {
		struct ev evs[8];
		int err;
		size_t n = run_reader(stream, sizeof(stream) - 1, chunks[c], evs, 8, &err);

		cr_assert_eq(err, 0, "chunk %zu", chunks[c]);
		cr_assert_eq(n, 5, "chunk %zu: %zu events", chunks[c], n);
		cr_expect_eq(evs[0].ev, GWD_UAPI_EV_GET);
		cr_expect_eq(evs[1].ev, GWD_UAPI_EV_SET_LINE);
		cr_expect_eq(evs[1].len, 13);
		cr_expect_arr_eq(evs[1].line, "listen_port=1", 13);
		cr_expect_eq(evs[2].ev, GWD_UAPI_EV_SET_LINE);
		cr_expect_arr_eq(evs[2].line, "fwmark=2", 8);
		cr_expect_eq(evs[3].ev, GWD_UAPI_EV_SET_END);
		cr_expect_eq(evs[4].ev, GWD_UAPI_EV_GET);
	}
}

Test(uapi_reader, idle_only_between_operations)
{
	struct gwd_uapi_reader r;
	const char *line;
	size_t used, ll;

	gwd_uapi_reader_init(&r);
	cr_expect(gwd_uapi_reader_idle(&r));
	cr_expect_eq(gwd_uapi_reader_next(&r, "se", 2, &used, &line, &ll), GWD_UAPI_EV_MORE);
	cr_expect_eq(used, 2);
	cr_expect_not(gwd_uapi_reader_idle(&r));
	cr_expect_eq(gwd_uapi_reader_next(&r, "t=1\n", 4, &used, &line, &ll), GWD_UAPI_EV_MORE);
	cr_expect_not(gwd_uapi_reader_idle(&r)); /* inside a set */
	cr_expect_eq(gwd_uapi_reader_next(&r, "\nget", 4, &used, &line, &ll), GWD_UAPI_EV_SET_END);
	cr_expect_eq(used, 1);
	cr_expect(gwd_uapi_reader_idle(&r));
	gwd_uapi_reader_wipe(&r);
}

struct reader_bad {
	const char *stream;
	size_t len; /* 0: strlen(stream) */
	int err;
	size_t events_before;
};

static const struct reader_bad reader_bad_cases[] = {
    {"\n", 0, -EPROTO, 0},
    {"get=2\n\n", 0, -EPROTO, 0},
    {"get=1 \n\n", 0, -EPROTO, 0},
    {"GET=1\n\n", 0, -EPROTO, 0},
    {"set=1\r\n\n", 0, -EPROTO, 0},
    {"get=1\nlisten_port=1\n\n", 0, -EINVAL, 0},
    {"get=1\n\nbogus\n", 0, -EPROTO, 1},
    {"set=1\nlisten_port=1\n\nset=2\n", 0, -EPROTO, 2},
    {"\0get=1\n\n", 8, -EPROTO, 0},
    {"get=1\0\n\n", 8, -EPROTO, 0},
};

Test(uapi_reader, bad_operations_are_sticky)
{
	for (size_t i = 0; i < sizeof(reader_bad_cases) / sizeof(reader_bad_cases[0]); i++) {
		const struct reader_bad *c = &reader_bad_cases[i];
		size_t len = c->len ? c->len : strlen(c->stream);
		struct ev evs[8];
		int err;
		size_t n = run_reader(c->stream, len, len, evs, 8, &err);

		cr_expect_eq(err, c->err, "case %zu: got %d, want %d", i, err, c->err);
		cr_expect_eq(n, c->events_before, "case %zu: %zu events", i, n);
	}
}

Test(uapi_reader, error_sticks)
{
	struct gwd_uapi_reader r;
	const char *line;
	size_t used, ll;

	gwd_uapi_reader_init(&r);
	cr_expect_eq(gwd_uapi_reader_next(&r, "xxx\n", 4, &used, &line, &ll), -EPROTO);
	cr_expect_eq(gwd_uapi_reader_next(&r, "get=1\n\n", 7, &used, &line, &ll), -EPROTO);
	cr_expect_eq(used, 0);
	cr_expect_not(gwd_uapi_reader_idle(&r));
	gwd_uapi_reader_wipe(&r);
	cr_expect(gwd_uapi_reader_idle(&r)); /* wipe resets */
}

/* An over-long set line arrives cut to LINE_MAX + 1; the next line is intact. */
Test(uapi_reader, long_set_line_is_cut_and_skipped)
{
	size_t len = 6 + 1000 + 1 + 14 + 1;
	char *stream = malloc(len);
	struct ev evs[4];
	struct gwd_uapi_set set;
	struct gwd_uapi_error err;
	int rerr;
	size_t n;

	cr_assert_not_null(stream);
	memcpy(stream, "set=1\n", 6);
	memset(stream + 6, 'x', 1000);
	memcpy(stream + 1006, "\nlisten_port=1\n\n", 16);
	n = run_reader(stream, len, 64, evs, 4, &rerr);
	cr_assert_eq(rerr, 0);
	cr_assert_eq(n, 3);
	cr_expect_eq(evs[0].ev, GWD_UAPI_EV_SET_LINE);
	cr_expect_eq(evs[0].len, GWD_UAPI_LINE_MAX + 1);
	cr_expect_eq(evs[1].len, 13);
	cr_expect_arr_eq(evs[1].line, "listen_port=1", 13);
	cr_expect_eq(evs[2].ev, GWD_UAPI_EV_SET_END);

	gwd_uapi_set_init(&set, 0);
	gwd_uapi_set_line(&set, evs[0].line, evs[0].len);
	gwd_uapi_set_line(&set, evs[1].line, evs[1].len);
	cr_expect_eq(gwd_uapi_set_finish(&set, &err), -EMSGSIZE);
	cr_expect_eq(err.line, 1);
	gwd_uapi_set_free(&set);
	free(stream);
}

/* The recorded request through reader and line parser equals the one-shot parse. */
Test(uapi_reader, recorded_request_streamed)
{
	static const size_t chunks[] = {1, 3, 64, 4096};
	size_t blen = strlen(rec_setconf);
	char *stream = malloc(6 + blen);
	struct gwd_uapi_set ref;

	cr_assert_not_null(stream);
	memcpy(stream, "set=1\n", 6);
	memcpy(stream + 6, rec_setconf, blen);
	cr_assert_eq(parse(&ref, rec_setconf, NULL), 0);
	for (size_t c = 0; c < sizeof(chunks) / sizeof(chunks[0]); c++) {
		struct gwd_uapi_reader r;
		struct gwd_uapi_set set;
		size_t off = 0;
		bool ended = false;

		gwd_uapi_reader_init(&r);
		gwd_uapi_set_init(&set, 0);
		while (off < 6 + blen) {
			size_t n = 6 + blen - off < chunks[c] ? 6 + blen - off : chunks[c];
			const char *line;
			size_t used, ll;
			int ev = gwd_uapi_reader_next(&r, stream + off, n, &used, &line, &ll);

			cr_assert_geq(ev, 0);
			off += used;
			if (ev == GWD_UAPI_EV_SET_LINE)
				cr_assert_eq(gwd_uapi_set_line(&set, line, ll), 0);
			if (ev == GWD_UAPI_EV_SET_END)
				ended = true;
		}
		cr_expect(ended);
		cr_assert_eq(gwd_uapi_set_finish(&set, NULL), 0);
		cr_expect_eq(set.flags, ref.flags);
		cr_expect_arr_eq(set.private_key, ref.private_key, GW_KEY_LEN);
		cr_assert_eq(set.n_peers, ref.n_peers);
		cr_expect_arr_eq(set.peers, ref.peers, ref.n_peers * sizeof(*ref.peers));
		cr_assert_eq(set.n_allowed_ips, ref.n_allowed_ips);
		cr_expect_arr_eq(set.allowed_ips, ref.allowed_ips,
				 ref.n_allowed_ips * sizeof(*ref.allowed_ips));
		gwd_uapi_set_free(&set);
		gwd_uapi_reader_wipe(&r);
	}
	gwd_uapi_set_free(&ref);
	free(stream);
}

/* --- Get reply buffer ---------------------------------------------------------- */

static void expect_buf(const struct gwd_uapi_buf *b, const char *want)
{
	cr_expect_eq(b->len, strlen(want), "length %zu, want %zu", b->len, strlen(want));
	if (b->len == strlen(want))
		cr_expect_arr_eq(b->data, want, b->len, "got %.*s", (int)b->len, b->data);
}

Test(uapi_buf, get_reply)
{
	struct gwd_uapi_buf b;
	uint8_t key[GW_KEY_LEN];
	union gw_sockaddr ep;
	struct gw_prefix pfx;

	gwd_uapi_buf_init(&b, 1 << 20);
	unhex(key, K_PRIV);
	cr_expect_eq(gwd_uapi_buf_append_key_hex(&b, "private_key", key), 0);
	cr_expect_eq(gwd_uapi_buf_append_u64(&b, "listen_port", 51820), 0);
	unhex(key, K_P2);
	cr_expect_eq(gwd_uapi_buf_append_key_hex(&b, "public_key", key), 0);
	cr_assert_eq(gw_endpoint_parse(&ep, "[2001:db8::1]:51821"), 0);
	cr_expect_eq(gwd_uapi_buf_append_endpoint(&b, "endpoint", &ep), 0);
	cr_expect_eq(gwd_uapi_buf_append_u64(&b, "tx_bytes", 0), 0);
	cr_expect_eq(gwd_uapi_buf_append_u64(&b, "rx_bytes", UINT64_MAX), 0);
	cr_expect_eq(gwd_uapi_buf_append_kv(&b, "protocol_version", "1"), 0);
	cr_assert_eq(gw_prefix_parse(&pfx, "198.18.0.0/15"), 0);
	cr_expect_eq(gwd_uapi_buf_append_prefix(&b, "allowed_ip", &pfx), 0);
	cr_assert_eq(gw_prefix_parse(&pfx, "2001:db8:1::/48"), 0);
	cr_expect_eq(gwd_uapi_buf_append_prefix(&b, "allowed_ip", &pfx), 0);
	cr_expect_eq(gwd_uapi_buf_append_errno(&b, 0), 0);
	expect_buf(&b, "private_key=" K_PRIV "\n"
		       "listen_port=51820\n"
		       "public_key=" K_P2 "\n"
		       "endpoint=[2001:db8::1]:51821\n"
		       "tx_bytes=0\n"
		       "rx_bytes=18446744073709551615\n"
		       "protocol_version=1\n"
		       "allowed_ip=198.18.0.0/15\n"
		       "allowed_ip=2001:db8:1::/48\n"
		       "errno=0\n\n");
	gwd_uapi_buf_reset(&b);
	cr_expect_eq(b.len, 0);
	cr_expect_eq(gwd_uapi_buf_append_errno(&b, -EINVAL), 0);
	expect_buf(&b, "errno=-22\n\n");
	gwd_uapi_buf_free(&b);
	cr_expect_null(b.data);
	cr_expect_eq(b.max, 1 << 20);
}

struct kv_bad {
	const char *key;
	const char *value;
};

static const struct kv_bad kv_bad_cases[] = {
    {"", "1"}, {"a=b", "1"}, {"a\nb", "1"}, {"key", "1\n2"}, {"key", "\n"},
};

Test(uapi_buf, rejects_injection_and_sticks)
{
	for (size_t i = 0; i < sizeof(kv_bad_cases) / sizeof(kv_bad_cases[0]); i++) {
		struct gwd_uapi_buf b;

		gwd_uapi_buf_init(&b, 1024);
		cr_expect_eq(gwd_uapi_buf_append_kv(&b, "ok", "1"), 0);
		cr_expect_eq(gwd_uapi_buf_append_kv(&b, kv_bad_cases[i].key, kv_bad_cases[i].value),
			     -EINVAL, "case %zu", i);
		cr_expect_eq(gwd_uapi_buf_append_kv(&b, "ok", "2"), -EINVAL, "case %zu sticks", i);
		cr_expect_eq(gwd_uapi_buf_append_errno(&b, 0), -EINVAL);
		expect_buf(&b, "ok=1\n");
		gwd_uapi_buf_free(&b);
	}
}

Test(uapi_buf, bounded_and_grows)
{
	struct gwd_uapi_buf b;

	gwd_uapi_buf_init(&b, 10);
	cr_expect_eq(gwd_uapi_buf_append_kv(&b, "a", "1234567"), 0); /* exactly 10 bytes */
	cr_expect_eq(gwd_uapi_buf_append_kv(&b, "b", ""), -EMSGSIZE);
	cr_expect_eq(b.len, 10);
	gwd_uapi_buf_reset(&b);
	cr_expect_eq(gwd_uapi_buf_append_kv(&b, "b", ""), 0); /* reset clears the error */
	expect_buf(&b, "b=\n");
	cr_expect_eq(gwd_uapi_buf_append_errno(&b, 1), -EINVAL);
	gwd_uapi_buf_free(&b);

	gwd_uapi_buf_init(&b, 1 << 24);
	for (int i = 0; i < 100000; i++)
		gwd_uapi_buf_append_u64(&b, "rx_bytes", (uint64_t)i);
	cr_expect_eq(b.err, 0);
	cr_expect_arr_eq(b.data + b.len - 15, "rx_bytes=99999\n", 15);
	gwd_uapi_buf_free(&b);
}

/* A parsed request, written back with the buffer helpers, parses to the same. */
Test(uapi_buf, round_trip_through_parser)
{
	struct gwd_uapi_set a, b;
	struct gwd_uapi_buf out;
	struct gwd_uapi_error err;

	cr_assert_eq(parse(&a, rec_setconf, NULL), 0);
	gwd_uapi_buf_init(&out, 1 << 20);
	gwd_uapi_buf_append_key_hex(&out, "private_key", a.private_key);
	gwd_uapi_buf_append_u64(&out, "listen_port", a.listen_port);
	gwd_uapi_buf_append_u64(&out, "fwmark", a.fwmark);
	gwd_uapi_buf_append_kv(&out, "replace_peers", "true");
	for (size_t i = 0; i < a.n_peers; i++) {
		const struct gwd_uapi_peer *p = &a.peers[i];
		const struct gw_prefix *ips = gwd_uapi_peer_allowed_ips(&a, p);

		gwd_uapi_buf_append_key_hex(&out, "public_key", p->public_key);
		if (p->flags & GWD_UAPI_PEER_PRESHARED_KEY)
			gwd_uapi_buf_append_key_hex(&out, "preshared_key", p->preshared_key);
		if (p->flags & GWD_UAPI_PEER_ENDPOINT)
			gwd_uapi_buf_append_endpoint(&out, "endpoint", &p->endpoint);
		if (p->flags & GWD_UAPI_PEER_KEEPALIVE)
			gwd_uapi_buf_append_u64(&out, "persistent_keepalive_interval",
						p->persistent_keepalive);
		gwd_uapi_buf_append_kv(&out, "replace_allowed_ips", "true");
		for (size_t j = 0; j < p->n_allowed_ips; j++)
			gwd_uapi_buf_append_prefix(&out, "allowed_ip", &ips[j]);
	}
	cr_assert_eq(out.err, 0);
	cr_assert_eq(gwd_uapi_set_parse(&b, out.data, out.len, &err), 0, "line %u: %s", err.line,
		     err.msg);
	cr_expect_eq(out.len,
		     strlen(rec_setconf) - 1); /* wg sends exactly this, blank line aside */
	cr_expect_arr_eq(out.data, rec_setconf, out.len);
	cr_assert_eq(b.n_peers, a.n_peers);
	cr_expect_arr_eq(b.peers, a.peers, a.n_peers * sizeof(*a.peers));
	cr_assert_eq(b.n_allowed_ips, a.n_allowed_ips);
	cr_expect_arr_eq(b.allowed_ips, a.allowed_ips, a.n_allowed_ips * sizeof(*a.allowed_ips));
	gwd_uapi_buf_free(&out);
	gwd_uapi_set_free(&a);
	gwd_uapi_set_free(&b);
}
