/* SPDX-License-Identifier: MIT */
/*
 * A gwd device in memory: UAPI get/set transactions against it, its socket
 * server, and data between two devices through an in-memory pipe
 * (cryptokey routing, replay, tampering, cookies under load).
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "device.h"
#include "gw/crypto.h"
#include "gw/key.h"
#include "gw/log.h"
#include "packet.h"
#include "peer.h"
#include "support.h"
#include "uapi.h"

enum {
	TUN_MAX = 64,
	BUSY_PORT = 4242, /* bind_prepare refuses it */
};

struct packet {
	size_t len;
	uint8_t data[RIG_DGRAM_MAX];
};

/* What each node wrote to its TUN and sent last, and its binds. */
static struct {
	struct packet tun[TUN_MAX];
	struct packet last_sent;
	int bind_calls, finish_commits, finish_aborts;
} obs[RIG_NODES];

static bool on_sent(int i, const union gw_sockaddr *to, const void *buf, size_t len)
{
	(void)to;
	obs[i].last_sent.len = len;
	memcpy(obs[i].last_sent.data, buf, len);
	return true;
}

static void on_tun(int i, const void *pkt, size_t len)
{
	size_t k = rig_nodes[i].ntun - 1;

	cr_assert_lt(k, TUN_MAX);
	obs[i].tun[k].len = len;
	memcpy(obs[i].tun[k].data, pkt, len);
}

static int on_bind_prepare(int i, uint16_t port, uint16_t *bound)
{
	obs[i].bind_calls++;
	if (port == BUSY_PORT)
		return -EADDRINUSE;
	*bound = port ? port : RIG_DEFAULT_PORT;
	return 0;
}

static void on_bind_finish(int i, bool commit)
{
	if (commit)
		obs[i].finish_commits++;
	else
		obs[i].finish_aborts++;
}

static const struct rig_hooks hooks = {
    .sent = on_sent,
    .tun = on_tun,
    .bind_prepare = on_bind_prepare,
    .bind_finish = on_bind_finish,
};

static void deliver_to(int i, const union gw_sockaddr *from, const struct packet *p)
{
	rig_deliver(i, from, p->data, p->len);
}

static void setup(void)
{
	memset(obs, 0, sizeof(obs));
	rig_pair_setup(&hooks, GW_LOG_ERR);
}

static void teardown(void)
{
	rig_pair_teardown();
}

/* --- UAPI transactions ------------------------------------------------------ */

TestSuite(uapi, .init = setup, .fini = teardown);

Test(uapi, get_exact_format)
{
	uint8_t k1[GW_KEY_LEN], k2[GW_KEY_LEN], psk[GW_KEY_LEN];
	char *out, *want;

	memset(k1, 0x11, sizeof(k1));
	memset(k2, 0x22, sizeof(k2));
	memset(psk, 0x33, sizeof(psk));
	cr_assert_eq(rig_set(0,
			     "private_key=%s\nlisten_port=51820\nfwmark=7\n"
			     "public_key=%s\npreshared_key=%s\nendpoint=[2001:db8:1::2]:51821\n"
			     "persistent_keepalive_interval=25\nallowed_ip=198.18.0.0/24\n"
			     "allowed_ip=2001:db8:f::/64\n"
			     "public_key=%s\nallowed_ip=198.19.0.7/32\n",
			     rig_nodes[0].priv_hex, rig_hex(k1), rig_hex(psk), rig_hex(k2)),
		     0);
	out = rig_get(rig_nodes[0].dev);
	cr_assert(
	    asprintf(&want,
		     "private_key=%s\nlisten_port=51820\nfwmark=7\n"
		     "public_key=%s\npreshared_key=%s\nprotocol_version=1\n"
		     "endpoint=[2001:db8:1::2]:51821\nlast_handshake_time_sec=0\n"
		     "last_handshake_time_nsec=0\ntx_bytes=148\nrx_bytes=0\n"
		     "persistent_keepalive_interval=25\nallowed_ip=198.18.0.0/24\n"
		     "allowed_ip=2001:db8:f::/64\n"
		     "public_key=%s\npreshared_key=%s\nprotocol_version=1\n"
		     "last_handshake_time_sec=0\nlast_handshake_time_nsec=0\ntx_bytes=0\n"
		     "rx_bytes=0\npersistent_keepalive_interval=0\nallowed_ip=198.19.0.7/32\n",
		     rig_nodes[0].priv_hex, rig_hex(k1), rig_hex(psk), rig_hex(k2),
		     "0000000000000000000000000000000000000000000000000000000000000000") > 0);
	/* tx_bytes: turning the keepalive on sent an initiation (148 bytes) at once. */
	cr_expect_str_eq(out, want);
	free(out);
	free(want);
	cr_expect_eq(obs[0].finish_commits, 1);
}

Test(uapi, empty_device_and_empty_set)
{
	char *out;

	cr_expect_eq(rig_set(0, "%s", ""), 0);
	out = rig_get(rig_nodes[0].dev);
	cr_expect_str_eq(out, "");
	free(out);
}

/*
 * Bodies that must fail and change nothing, applied to a configured device:
 * pre, then "public_key=<a new key>", then post.
 */
static const struct {
	const char *name;
	const char *pre, *post;
	int err;
} bad_sets[] = {
    {"unknown key", "", "allowed_ip=198.18.9.0/24\nbogus=1\n", -EINVAL},
    {"bad prefix at the end", "replace_peers=true\n", "allowed_ip=198.18.9.0/33\n", -EINVAL},
    {"device key after peer", "", "listen_port=1\n", -EINVAL},
    {"line without =", "", "remove\n", -EPROTO},
    {"bad endpoint", "", "endpoint=198.18.0.1\n", -EINVAL},
    {"busy port", "listen_port=4242\nreplace_peers=true\n", "allowed_ip=198.18.0.0/16\n",
     -EADDRINUSE},
    {"boolean not true", "", "remove=false\n", -EINVAL},
    {"bad protocol version", "", "protocol_version=2\n", -EINVAL},
};

Test(uapi, failed_set_changes_nothing)
{
	uint8_t x[GW_KEY_LEN], y[GW_KEY_LEN];

	gw_random_bytes(x, sizeof(x));
	gw_random_bytes(y, sizeof(y));
	cr_assert_eq(rig_set(0,
			     "private_key=%s\nlisten_port=51820\npublic_key=%s\n"
			     "endpoint=192.0.2.9:9\nallowed_ip=198.18.0.0/24\n",
			     rig_nodes[0].priv_hex, rig_hex(x)),
		     0);
	for (size_t i = 0; i < sizeof(bad_sets) / sizeof(bad_sets[0]); i++) {
		char *before = rig_get(rig_nodes[0].dev), *after;
		int err;

		err = rig_set(0, "%spublic_key=%s\n%s", bad_sets[i].pre, rig_hex(y),
			      bad_sets[i].post);
		after = rig_get(rig_nodes[0].dev);
		cr_expect_eq(err, bad_sets[i].err, "%s: %d", bad_sets[i].name, err);
		cr_expect_str_eq(after, before, "%s changed the device", bad_sets[i].name);
		free(before);
		free(after);
	}
	cr_expect_eq(rig_nodes[0].dev->npeers, 1);
	cr_expect_null(gwd_peer_lookup(rig_nodes[0].dev, y));
	cr_expect_eq(obs[0].finish_aborts, 0, "a refused bind left nothing to abort");
}

Test(uapi, replace_peers)
{
	uint8_t x[GW_KEY_LEN], y[GW_KEY_LEN], z[GW_KEY_LEN];
	struct gwd_peer *p;

	gw_random_bytes(x, sizeof(x));
	gw_random_bytes(y, sizeof(y));
	gw_random_bytes(z, sizeof(z));
	cr_assert_eq(rig_set(0, "public_key=%s\nallowed_ip=198.18.1.0/24\npublic_key=%s\n",
			     rig_hex(x), rig_hex(y)),
		     0);
	cr_assert_eq(rig_nodes[0].dev->npeers, 2);
	cr_assert_eq(rig_set(0,
			     "replace_peers=true\npublic_key=%s\npublic_key=%s\nupdate_only=true\n",
			     rig_hex(z), rig_hex(y)),
		     0);
	cr_expect_eq(rig_nodes[0].dev->npeers, 1, "y was removed, so update_only skipped it");
	cr_expect_not_null(gwd_peer_lookup(rig_nodes[0].dev, z));
	cr_expect_null(gwd_peer_lookup(rig_nodes[0].dev, x));
	cr_expect_eq(gwd_allowedips_count(&rig_nodes[0].dev->aips), 0, "x's prefixes went with it");
	p = rig_nodes[0].dev->peers_head;
	cr_expect_eq(memcmp(p->noise.public_key, z, GW_KEY_LEN), 0);
}

Test(uapi, remove_and_update_only)
{
	uint8_t x[GW_KEY_LEN], y[GW_KEY_LEN];
	struct gwd_peer *p;

	gw_random_bytes(x, sizeof(x));
	gw_random_bytes(y, sizeof(y));
	cr_assert_eq(rig_set(0, "public_key=%s\nallowed_ip=198.18.1.0/24\n", rig_hex(x)), 0);
	/* update_only of an absent peer creates nothing; of a present one, updates it. */
	cr_assert_eq(
	    rig_set(0, "public_key=%s\nupdate_only=true\nallowed_ip=198.18.2.0/24\n", rig_hex(y)),
	    0);
	cr_expect_null(gwd_peer_lookup(rig_nodes[0].dev, y));
	cr_assert_eq(rig_set(0,
			     "public_key=%s\nupdate_only=true\npersistent_keepalive_interval=7\n",
			     rig_hex(x)),
		     0);
	p = gwd_peer_lookup(rig_nodes[0].dev, x);
	cr_assert_not_null(p);
	cr_expect_eq(p->persistent_keepalive, 7);
	/* Remove, also of an absent peer; then add, remove, add again in one request. */
	cr_assert_eq(rig_set(0, "public_key=%s\nremove=true\npublic_key=%s\nremove=true\n",
			     rig_hex(x), rig_hex(y)),
		     0);
	cr_expect_eq(rig_nodes[0].dev->npeers, 0);
	cr_expect_eq(gwd_allowedips_count(&rig_nodes[0].dev->aips), 0);
	cr_assert_eq(rig_set(0,
			     "public_key=%s\nallowed_ip=198.18.3.0/24\npublic_key=%s\nremove=true\n"
			     "public_key=%s\nallowed_ip=198.18.4.0/24\n",
			     rig_hex(x), rig_hex(x), rig_hex(x)),
		     0);
	cr_expect_eq(rig_nodes[0].dev->npeers, 1);
	cr_expect_eq(gwd_allowedips_count(&rig_nodes[0].dev->aips), 1);
}

Test(uapi, allowed_ip_moves_between_peers)
{
	uint8_t x[GW_KEY_LEN], y[GW_KEY_LEN];
	uint8_t addr[4] = {198, 18, 0, 9};
	struct gwd_peer *px, *py;

	gw_random_bytes(x, sizeof(x));
	gw_random_bytes(y, sizeof(y));
	cr_assert_eq(rig_set(0,
			     "public_key=%s\nallowed_ip=198.18.0.0/24\nallowed_ip=198.19.0.0/16\n"
			     "public_key=%s\nallowed_ip=198.20.0.0/16\n",
			     rig_hex(x), rig_hex(y)),
		     0);
	px = gwd_peer_lookup(rig_nodes[0].dev, x);
	py = gwd_peer_lookup(rig_nodes[0].dev, y);
	cr_assert_eq(gwd_allowedips_lookup(&rig_nodes[0].dev->aips, AF_INET, addr), px);
	cr_assert_eq(rig_set(0, "public_key=%s\nallowed_ip=198.18.0.0/24\n", rig_hex(y)), 0);
	cr_expect_eq(gwd_allowedips_lookup(&rig_nodes[0].dev->aips, AF_INET, addr), py);
	cr_expect_eq(gwd_allowedips_owner_count(&px->aips), 1);
	cr_expect_eq(gwd_allowedips_owner_count(&py->aips), 2);
	/* replace_allowed_ips within a block, then new ones. */
	cr_assert_eq(
	    rig_set(0, "public_key=%s\nreplace_allowed_ips=true\nallowed_ip=2001:db8:f::/64\n",
		    rig_hex(y)),
	    0);
	cr_expect_null(gwd_allowedips_lookup(&rig_nodes[0].dev->aips, AF_INET, addr));
	cr_expect_eq(gwd_allowedips_owner_count(&py->aips), 1);
}

Test(uapi, own_public_key_is_ignored)
{
	uint8_t x[GW_KEY_LEN];

	gw_random_bytes(x, sizeof(x));
	cr_assert_eq(rig_set(0, "public_key=%s\npublic_key=%s\n", rig_nodes[0].pub_hex, rig_hex(x)),
		     0);
	cr_expect_eq(rig_nodes[0].dev->npeers, 2, "no identity yet: an ordinary peer");
	cr_assert_eq(rig_set(0, "private_key=%s\npublic_key=%s\nallowed_ip=198.18.0.0/24\n",
			     rig_nodes[0].priv_hex, rig_nodes[0].pub_hex),
		     0);
	cr_expect_eq(rig_nodes[0].dev->npeers, 1,
		     "the key change removed it, the block is ignored");
	cr_expect_null(gwd_peer_lookup(rig_nodes[0].dev, rig_nodes[0].pub));
	cr_expect_eq(gwd_allowedips_count(&rig_nodes[0].dev->aips), 0);
}

Test(uapi, listen_port_and_fwmark)
{
	char *out;

	cr_assert_eq(rig_set(0, "listen_port=0\n"), 0);
	cr_expect_eq(rig_nodes[0].dev->listen_port, 0, "unchanged: no rebind");
	cr_expect_eq(obs[0].bind_calls, 0);
	cr_assert_eq(rig_set(0, "listen_port=51820\nfwmark=0x10\n"), -EINVAL);
	cr_assert_eq(rig_set(0, "listen_port=51820\nfwmark=16\n"), 0);
	cr_expect_eq(obs[0].bind_calls, 1);
	cr_assert_eq(rig_set(0, "listen_port=4242\n"), -EADDRINUSE);
	out = rig_get(rig_nodes[0].dev);
	cr_expect_str_eq(out, "listen_port=51820\nfwmark=16\n");
	free(out);
	cr_assert_eq(rig_set(0, "fwmark=0\n"), 0);
	out = rig_get(rig_nodes[0].dev);
	cr_expect_str_eq(out, "listen_port=51820\n");
	free(out);
}

Test(uapi, stats_lists_every_counter)
{
	struct gwd_uapi_buf b;
	uint8_t x[GW_KEY_LEN];
	size_t lines = 0;

	gw_random_bytes(x, sizeof(x));
	cr_assert_eq(rig_set(0, "public_key=%s\n", rig_hex(x)), 0);
	gwd_uapi_buf_init(&b, 1 << 20);
	cr_assert_eq(gwd_uapi_stats(rig_nodes[0].dev, &b), 0);
	for (size_t i = 0; i < b.len; i++)
		lines += b.data[i] == '\n';
	/* peers, under_load, counters; public_key, staged_packets, counters. */
	cr_expect_eq(lines, 2 + GWD_STAT__COUNT + 2 + GWD_STAT__COUNT);
	cr_expect_not_null(memmem(b.data, b.len, "drop_invalid_source=0\n", 22));
	cr_expect_eq(memcmp(b.data, "peers=1\nunder_load=0\nrx_packets=0\n", 34), 0);
	gwd_uapi_buf_free(&b);
}

/* --- Data between two devices ---------------------------------------------- */

static void link_nodes(const char *psk0, const char *psk1)
{
	for (int i = 0; i < RIG_NODES; i++) {
		struct rig_node *o = &rig_nodes[1 - i];

		cr_assert_eq(
		    rig_set(i,
			    "private_key=%s\nlisten_port=%d\npublic_key=%s\npreshared_key=%s\n"
			    "endpoint=192.0.2.%d:%d\nallowed_ip=198.18.0.%d/32\n"
			    "allowed_ip=2001:db8:f::%d/128\n",
			    rig_nodes[i].priv_hex, 51820 + i, o->pub_hex, i ? psk1 : psk0, 2 - i,
			    51821 - i, 2 - i, 2 - i),
		    0);
	}
}

static const char zero_psk[] = "0000000000000000000000000000000000000000000000000000000000000000";

TestSuite(data, .init = setup, .fini = teardown);

/* IPv4 packet of len bytes (>= 20) from 198.18.0.<s> to 198.18.0.<d>, payload filled with fill. */
static size_t ip4(uint8_t *p, size_t len, uint8_t s, uint8_t d, uint8_t fill)
{
	memset(p, fill, len);
	memcpy(p, (uint8_t[]){0x45, 0, (uint8_t)(len >> 8), (uint8_t)len, 0, 0, 0, 0, 64, 1, 0, 0},
	       12);
	memcpy(p + 12, (uint8_t[]){198, 18, 0, s, 198, 18, 0, d}, 8);
	return len;
}

static size_t ip6(uint8_t *p, size_t len, uint8_t s, uint8_t d)
{
	static const uint8_t pre[14] = {0x20, 0x01, 0x0d, 0xb8, 0, 0x0f};

	memset(p, 0xab, len);
	memcpy(p,
	       (uint8_t[]){0x60, 0, 0, 0, (uint8_t)((len - 40) >> 8), (uint8_t)(len - 40), 58, 64},
	       8);
	memcpy(p + 8, pre, 14);
	memset(p + 22, 0, 1);
	p[23] = s;
	memcpy(p + 24, pre, 14);
	memset(p + 38, 0, 1);
	p[39] = d;
	return len;
}

static struct gwd_peer *peer_of(int i)
{
	return rig_nodes[i].dev->peers_head;
}

Test(data, ping_round_trip_both_families)
{
	uint8_t pkt[200];
	size_t len;

	link_nodes(zero_psk, zero_psk);
	len = ip4(pkt, 84, 1, 2, 0x5a);
	gwd_device_xmit(rig_nodes[0].dev, pkt, len);
	rig_pump();
	cr_assert_eq(rig_nodes[1].ntun, 1);
	cr_expect_eq(obs[1].tun[0].len, 84);
	cr_expect_eq(memcmp(obs[1].tun[0].data, pkt, 84), 0);
	len = ip4(pkt, 84, 2, 1, 0xa5);
	gwd_device_xmit(rig_nodes[1].dev, pkt, len);
	rig_pump();
	cr_assert_eq(rig_nodes[0].ntun, 1);
	cr_expect_eq(memcmp(obs[0].tun[0].data, pkt, 84), 0);
	/* Padded to a multiple of 16: 84 -> 96 bytes of plaintext. */
	cr_expect_eq(obs[1].last_sent.len, GWD_MESSAGE_DATA_LEN(96));
	len = ip6(pkt, 104, 2, 1);
	gwd_device_xmit(rig_nodes[1].dev, pkt, len);
	rig_pump();
	cr_assert_eq(rig_nodes[0].ntun, 2);
	cr_expect_eq(memcmp(obs[0].tun[1].data, pkt, 104), 0);
	cr_expect_eq(peer_of(0)->stats[GWD_STAT_TUN_TX_PACKETS], 2);
	cr_expect_eq(peer_of(0)->stats[GWD_STAT_RX_BYTES] + 0,
		     rig_nodes[0].dev->stats[GWD_STAT_RX_BYTES],
		     "every datagram A got was authenticated and from B");
}

Test(data, padding)
{
	static const struct {
		size_t len;
		uint32_t mtu;
		size_t pad;
	} cases[] = {
	    {0, 1420, 0},    {1, 1420, 15},   {16, 1420, 0},	{84, 1420, 12},
	    {1419, 1420, 1}, {1420, 1420, 0}, {1500, 1420, 0},	{1410, 1412, 2},
	    {1409, 1412, 3}, {20, 20, 0},     {65535, 1420, 0},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		cr_expect_eq(gwd_padding_len(cases[i].len, cases[i].mtu), cases[i].pad,
			     "len %zu mtu %u", cases[i].len, cases[i].mtu);
}

Test(data, cryptokey_routing)
{
	uint8_t pkt[100];

	link_nodes(zero_psk, zero_psk);
	/* Outbound: nobody owns 198.18.0.77. */
	gwd_device_xmit(rig_nodes[0].dev, pkt, ip4(pkt, 60, 1, 77, 0));
	cr_expect_eq(rig_nodes[0].dev->stats[GWD_STAT_DROP_NO_ROUTE], 1);
	cr_expect_eq(obs[0].last_sent.len, 0, "nothing sent");
	/* Inbound: B sends (it may: A's address) a packet claiming a source B may not use. */
	cr_assert_eq(rig_set(1, "public_key=%s\nallowed_ip=198.18.0.0/24\n", rig_nodes[0].pub_hex),
		     0);
	gwd_device_xmit(rig_nodes[0].dev, pkt, ip4(pkt, 60, 1, 2, 0)); /* handshake first */
	rig_pump();
	cr_assert_eq(rig_nodes[1].ntun, 1);
	gwd_device_xmit(rig_nodes[1].dev, pkt, ip4(pkt, 60, 9, 1, 0));
	rig_pump();
	cr_expect_eq(rig_nodes[0].ntun, 0);
	cr_expect_eq(peer_of(0)->stats[GWD_STAT_DROP_INVALID_SOURCE], 1);
	/* A malformed inner header: total length beyond what arrived. */
	ip4(pkt, 60, 2, 1, 0);
	pkt[2] = 0, pkt[3] = 200;
	gwd_device_xmit(rig_nodes[1].dev, pkt, 60);
	rig_pump();
	cr_expect_eq(peer_of(0)->stats[GWD_STAT_DROP_MALFORMED], 1);
	/* Trailing bytes beyond the IP length (padding) are cut before the TUN. */
	ip4(pkt, 60, 2, 1, 0);
	pkt[3] = 40;
	gwd_device_xmit(rig_nodes[1].dev, pkt, 60);
	rig_pump();
	cr_assert_eq(rig_nodes[0].ntun, 1);
	cr_expect_eq(obs[0].tun[0].len, 40);
}

Test(data, replay_and_tamper_dropped)
{
	uint8_t pkt[100];
	struct packet captured;
	union gw_sockaddr from;

	link_nodes(zero_psk, zero_psk);
	gwd_device_xmit(rig_nodes[0].dev, pkt, ip4(pkt, 60, 1, 2, 1));
	rig_pump();
	gwd_device_xmit(rig_nodes[0].dev, pkt, ip4(pkt, 60, 1, 2, 2));
	captured = obs[0].last_sent;
	from = rig_nodes[0].addr;
	rig_pump();
	cr_assert_eq(rig_nodes[1].ntun, 2);
	deliver_to(1, &from, &captured);
	cr_expect_eq(rig_nodes[1].ntun, 2, "replayed packet not delivered");
	cr_expect_eq(peer_of(1)->stats[GWD_STAT_DROP_REPLAY], 1);
	captured.data[captured.len - 1] ^= 1;
	deliver_to(1, &from, &captured);
	cr_expect_eq(peer_of(1)->stats[GWD_STAT_DROP_BAD_AUTH], 1);
	captured.data[4] ^= 0xff; /* another receiver index */
	deliver_to(1, &from, &captured);
	cr_expect_eq(rig_nodes[1].dev->stats[GWD_STAT_DROP_UNKNOWN_INDEX], 1);
	captured.len = 20; /* shorter than a keepalive */
	deliver_to(1, &from, &captured);
	cr_expect_eq(rig_nodes[1].dev->stats[GWD_STAT_DROP_MALFORMED], 1);
	cr_expect_eq(rig_nodes[1].ntun, 2);
}

Test(data, roaming_follows_authenticated_packets)
{
	uint8_t pkt[100];
	char ep[GW_ENDPOINT_STR_LEN];

	link_nodes(zero_psk, zero_psk);
	gwd_device_xmit(rig_nodes[0].dev, pkt, ip4(pkt, 60, 1, 2, 1));
	rig_pump();
	/* A moves: its packets now come from 192.0.2.99:6000. */
	rig_nodes[0].addr.in.sin_addr.s_addr = htonl(0xc0000263);
	rig_nodes[0].addr.in.sin_port = htons(6000);
	gwd_device_xmit(rig_nodes[0].dev, pkt, ip4(pkt, 60, 1, 2, 1));
	rig_pump();
	gw_endpoint_format(&peer_of(1)->endpoint, ep, sizeof(ep));
	cr_expect_str_eq(ep, "192.0.2.99:6000");
	cr_expect_eq(peer_of(1)->src.family, AF_INET);
	cr_expect_eq(peer_of(1)->src.v4.s_addr, htonl(0xc0000202), "reply from where it arrived");
	/* An unauthenticated packet from elsewhere does not move it. */
	{
		struct packet junk = {.len = 64};
		union gw_sockaddr other = rig_nodes[0].addr;

		memcpy(junk.data, obs[0].last_sent.data, 16);
		other.in.sin_port = htons(7000);
		deliver_to(1, &other, &junk);
	}
	gw_endpoint_format(&peer_of(1)->endpoint, ep, sizeof(ep));
	cr_expect_str_eq(ep, "192.0.2.99:6000");
}

Test(data, preshared_keys)
{
	static const char psk1[] =
	    "1111111111111111111111111111111111111111111111111111111111111111";
	static const char psk2[] =
	    "2222222222222222222222222222222222222222222222222222222222222222";
	uint8_t pkt[100];

	link_nodes(psk1, psk2);
	gwd_device_xmit(rig_nodes[0].dev, pkt, ip4(pkt, 60, 1, 2, 1));
	rig_pump();
	cr_expect_eq(rig_nodes[1].ntun, 0);
	cr_expect_eq(peer_of(0)->stats[GWD_STAT_HS_FAIL_BAD_AUTH], 1, "response rejected");
	cr_expect_null(peer_of(0)->noise.current);
	cr_assert_eq(rig_set(1, "public_key=%s\npreshared_key=%s\n", rig_nodes[0].pub_hex, psk1),
		     0);
	rig_run_ms(6000); /* the retransmission carries the staged packet through */
	cr_expect_eq(rig_nodes[1].ntun, 1);
	cr_expect_not_null(peer_of(0)->noise.current);
}

Test(data, private_key_change_expires_sessions)
{
	uint8_t pkt[100], priv[GW_KEY_LEN];
	char hex[GW_KEY_HEX_LEN + 1];

	link_nodes(zero_psk, zero_psk);
	gwd_device_xmit(rig_nodes[0].dev, pkt, ip4(pkt, 60, 1, 2, 1));
	rig_pump();
	cr_assert_not_null(peer_of(0)->noise.current);
	gw_x25519_generate(priv);
	gw_key_to_hex(hex, priv);
	cr_assert_eq(rig_set(0, "private_key=%s\n", hex), 0);
	cr_expect_eq(peer_of(0)->noise.current->sending_counter, GWD_REJECT_AFTER_MESSAGES);
	/* The next packet needs a handshake (once REKEY_TIMEOUT allows); B knows no such key. */
	gwd_device_xmit(rig_nodes[0].dev, pkt, ip4(pkt, 60, 1, 2, 1));
	rig_pump();
	cr_expect_eq(peer_of(0)->nstaged, 1);
	rig_run_ms(5100);
	gwd_device_xmit(rig_nodes[0].dev, pkt, ip4(pkt, 60, 1, 2, 1));
	rig_pump();
	cr_expect_eq(rig_nodes[1].ntun, 1);
	cr_expect_eq(rig_nodes[1].dev->stats[GWD_STAT_HS_FAIL_UNKNOWN_PEER], 1);
	cr_expect_eq(peer_of(0)->nstaged, 2);
}

Test(data, peer_removal_frees_everything)
{
	uint8_t pkt[100];
	size_t idx;

	link_nodes(zero_psk, zero_psk);
	gwd_device_xmit(rig_nodes[0].dev, pkt, ip4(pkt, 60, 1, 2, 1));
	rig_pump();
	idx = rig_nodes[0].dev->index.count;
	cr_expect_geq(idx, 1);
	cr_assert_eq(rig_set(0, "public_key=%s\nremove=true\n", rig_nodes[1].pub_hex), 0);
	cr_expect_eq(rig_nodes[0].dev->index.count, 0);
	cr_expect_eq(gwd_allowedips_count(&rig_nodes[0].dev->aips), 0);
	/* B's data now names an index A forgot. */
	gwd_device_xmit(rig_nodes[1].dev, pkt, ip4(pkt, 60, 2, 1, 1));
	rig_pump();
	cr_expect_eq(rig_nodes[0].dev->stats[GWD_STAT_DROP_UNKNOWN_INDEX], 1);
}

Test(data, staged_queue_bounded)
{
	uint8_t pkt[100];

	link_nodes(zero_psk, zero_psk);
	rig_nodes[1].addr.in.sin_port = htons(1); /* A's datagrams go nowhere */
	for (int i = 0; i < GWD_MAX_STAGED_PACKETS + 10; i++)
		gwd_device_xmit(rig_nodes[0].dev, pkt, ip4(pkt, 60, 1, 2, (uint8_t)i));
	cr_expect_eq(peer_of(0)->nstaged, GWD_MAX_STAGED_PACKETS);
	cr_expect_eq(peer_of(0)->stats[GWD_STAT_DROP_QUEUE_FULL], 10);
	cr_expect_eq(peer_of(0)->stats[GWD_STAT_HANDSHAKES_INITIATED], 1, "rate limited");
	/* Oldest dropped: the first staged packet is number 10. */
	cr_expect_eq(peer_of(0)->staged_head->data[30], 10);
}

Test(data, cookie_when_under_load)
{
	uint8_t pkt[100];

	rig_nodes[1].dev->under_load_threshold = 0; /* every handshake packet: under load */
	link_nodes(zero_psk, zero_psk);
	gwd_device_xmit(rig_nodes[0].dev, pkt, ip4(pkt, 60, 1, 2, 1));
	rig_pump();
	cr_expect_eq(rig_nodes[1].dev->stats[GWD_STAT_COOKIE_REPLIES_SENT], 1);
	cr_expect_eq(peer_of(0)->stats[GWD_STAT_COOKIE_REPLIES_RECEIVED], 1);
	cr_expect_eq(rig_nodes[1].ntun, 0);
	rig_run_ms(5400); /* the retransmission carries mac2 */
	cr_expect_eq(rig_nodes[1].dev->stats[GWD_STAT_COOKIE_REPLIES_SENT], 1);
	cr_expect_eq(rig_nodes[1].ntun, 1);
	cr_expect_eq(peer_of(1)->stats[GWD_STAT_HANDSHAKES_COMPLETED], 1);
}

/* --- The socket server ---------------------------------------------------- */

static char sock_path[108];
static struct gwd_uapi_server *srv;

static void server_setup(void)
{
	setup();
	snprintf(sock_path, sizeof(sock_path), "/tmp/gwd-test-%d.sock", (int)getpid());
	cr_assert_eq(gwd_uapi_server_open(&srv, rig_nodes[0].dev, sock_path), 0);
}

static void server_teardown(void)
{
	gwd_uapi_server_close(srv);
	cr_expect_neq(access(sock_path, F_OK), 0, "socket removed");
	teardown();
}

TestSuite(server, .init = server_setup, .fini = server_teardown);

static int connect_client(void)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);

	cr_assert_geq(fd, 0);
	strcpy(sa.sun_path, sock_path);
	cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	return fd;
}

/* Runs the loop until count answers ("\n\n") arrived or the peer closed; returns the text. */
static char *read_answers(int fd, int count, bool *closed)
{
	static char buf[1 << 16];
	size_t len = 0;
	int seen = 0;

	*closed = false;
	for (int spins = 0; spins < 200 && seen < count; spins++) {
		ssize_t n;

		gw_loop_run_once(rig_loop, 5);
		n = recv(fd, buf + len, sizeof(buf) - len - 1, 0);
		if (n == 0) {
			*closed = true;
			break;
		}
		if (n > 0)
			len += (size_t)n;
		buf[len] = '\0';
		seen = 0;
		for (char *p = buf; (p = strstr(p, "\n\n")); p += 2)
			seen++;
	}
	buf[len] = '\0';
	return buf;
}

static void send_all(int fd, const char *s)
{
	cr_assert_eq(send(fd, s, strlen(s), 0), (ssize_t)strlen(s));
}

Test(server, pipelined_requests)
{
	int fd = connect_client();
	bool closed;
	char req[512], *ans;

	snprintf(
	    req, sizeof(req),
	    "set=1\nprivate_key=%s\nlisten_port=51820\n\nget=1\n\nstats=1\n\nset=1\nbogus=1\n\n"
	    "get=1\n\n",
	    rig_nodes[0].priv_hex);
	send_all(fd, req);
	ans = read_answers(fd, 5, &closed);
	cr_expect_not(closed);
	cr_expect_eq(strncmp(ans, "errno=0\n\nprivate_key=", 21), 0, "%s", ans);
	cr_expect_not_null(strstr(ans, "listen_port=51820\nerrno=0\n\npeers=0\n"));
	/* The stats answer ends with its last counter; then the refused set. */
	snprintf(req, sizeof(req),
		 "%s=0\nerrno=0\n\nerrno=-22\n\nprivate_key=", gwd_stat_names[GWD_STAT__COUNT - 1]);
	cr_expect_not_null(strstr(ans, req), "%s", ans);
	close(fd);
}

Test(server, byte_by_byte)
{
	static const char req[] = "stats=1\n\nget=1\n\n";
	int fd = connect_client();
	bool closed;
	char *ans;

	for (size_t i = 0; i < sizeof(req) - 1; i++) {
		cr_assert_eq(send(fd, req + i, 1, 0), 1);
		gw_loop_run_once(rig_loop, 1);
	}
	ans = read_answers(fd, 2, &closed);
	cr_expect_not_null(strstr(ans, "errno=0\n\nerrno=0\n\n"), "%s", ans);
	close(fd);
}

Test(server, out_of_step_stream_is_closed)
{
	int fd = connect_client(), fd2;
	bool closed;

	send_all(fd, "hello=1\n\n");
	read_answers(fd, 1, &closed);
	cr_expect(closed);
	close(fd);
	/* The daemon keeps serving. */
	fd2 = connect_client();
	send_all(fd2, "get=1\n\n");
	cr_expect_str_eq(read_answers(fd2, 1, &closed), "errno=0\n\n");
	close(fd2);
}

Test(server, alive_check)
{
	char stale[128];
	int fd;

	cr_expect_eq(gwd_uapi_socket_alive(sock_path), 1);
	snprintf(stale, sizeof(stale), "/tmp/gwd-test-%d-none.sock", (int)getpid());
	cr_expect_eq(gwd_uapi_socket_alive(stale), 0);
	fd = connect_client();
	close(fd);
}

TestSuite(load, .init = setup, .fini = teardown);

Test(load, threshold_per_second_with_one_second_hold)
{
	struct gwd_device *dev = rig_nodes[0].dev;

	dev->under_load_threshold = 3;
	dev->load_window_start = rig_fc.mono;
	for (int i = 1; i <= 3; i++)
		cr_expect_not(gwd_device_under_load(dev, true), "packet %d of 3", i);
	cr_expect(gwd_device_under_load(dev, true), "the 4th in a second");
	cr_expect(gwd_device_under_load(dev, false));
	rig_run_ms(990);
	cr_expect(gwd_device_under_load(dev, false), "held for a second");
	rig_run_ms(20);
	cr_expect_not(gwd_device_under_load(dev, false), "a quiet second later");
	/* A new window counts from zero. */
	for (int i = 1; i <= 3; i++)
		cr_expect_not(gwd_device_under_load(dev, true));
	rig_run_ms(1000);
	cr_expect_not(gwd_device_under_load(dev, true), "the count restarted");
}

/* Runs the loop once, then appends whatever the server sent on fd to *s. */
static void turn_and_read(int fd, char **s, size_t *len, size_t *cap)
{
	gw_loop_run_once(rig_loop, 5);
	for (;;) {
		ssize_t n;

		if (*cap - *len < (1 << 16) + 1) {
			*cap = 2 * *cap + (1 << 17);
			*s = realloc(*s, *cap);
			cr_assert_not_null(*s);
		}
		n = recv(fd, *s + *len, *cap - *len - 1, 0);
		if (n <= 0)
			break;
		*len += (size_t)n;
	}
	(*s)[*len] = '\0';
}

static bool answer_done(const char *s, size_t len)
{
	return len >= 2 && !strcmp(s + len - 2, "\n\n");
}

Test(server, get_is_sent_in_slices_across_loop_turns)
{
	enum { N = 2500 };
	static uint8_t keys[N][GW_KEY_LEN];
	uint8_t late[GW_KEY_LEN];
	struct gwd_peer *p;
	char *got = NULL, *want;
	size_t len = 0, cap = 0;
	int fd, turns = 1;

	for (unsigned k = 0; k < N; k++) {
		gw_random_bytes(keys[k], GW_KEY_LEN);
		cr_assert_eq(gwd_peer_new(rig_nodes[0].dev, keys[k], &p), 0);
		gwd_peer_link(p);
	}
	fd = connect_client();
	send_all(fd, "get=1\n\n");
	/* Turns until the answer starts (the connection is accepted first). */
	for (int i = 0; !len && i < 100; i++)
		turn_and_read(fd, &got, &len, &cap);
	cr_assert_gt(len, 0);
	cr_assert_not(answer_done(got, len), "the whole answer of %d peers in one turn", N);
	/* Between slices: peers not sent yet are removed, one is added. */
	gwd_peer_remove(gwd_peer_lookup(rig_nodes[0].dev, keys[N / 2]));
	gwd_peer_remove(gwd_peer_lookup(rig_nodes[0].dev, keys[N - 1]));
	gw_random_bytes(late, sizeof(late));
	cr_assert_eq(gwd_peer_new(rig_nodes[0].dev, late, &p), 0);
	gwd_peer_link(p);
	while (!answer_done(got, len) && turns < 100) {
		turn_and_read(fd, &got, &len, &cap);
		turns++;
	}
	cr_assert(answer_done(got, len));
	cr_assert_geq(turns, 3, "%d turns", turns);
	/* What a get of the final state gives, in one piece. */
	want = rig_get(rig_nodes[0].dev);
	cr_assert_eq(len, strlen(want) + strlen("errno=0\n\n"));
	cr_assert_eq(strncmp(got, want, strlen(want)), 0);
	cr_assert_str_eq(got + strlen(want), "errno=0\n\n");
	cr_assert_null(strstr(got, rig_hex(keys[N / 2])));
	cr_assert_not_null(strstr(got, rig_hex(late)));
	/* The connection serves the next request as usual. */
	send_all(fd, "get=1\n\n");
	len = 0;
	for (turns = 0; !answer_done(got, len) && turns < 100; turns++)
		turn_and_read(fd, &got, &len, &cap);
	cr_assert_eq(strncmp(got, want, strlen(want)), 0);
	free(want);
	free(got);
	close(fd);
}

Test(server, client_gone_in_the_middle_of_a_get)
{
	enum { N = 3000 };
	uint8_t key[GW_KEY_LEN];
	struct gwd_peer *p;
	int fd;

	for (unsigned k = 0; k < N; k++) {
		gw_random_bytes(key, GW_KEY_LEN);
		cr_assert_eq(gwd_peer_new(rig_nodes[0].dev, key, &p), 0);
		gwd_peer_link(p);
	}
	fd = connect_client();
	send_all(fd, "get=1\n\n");
	gw_loop_run_once(rig_loop, 5);
	close(fd);
	/* The server notices, closes its side and forgets the cursor. */
	for (int i = 0; i < 20; i++)
		gw_loop_run_once(rig_loop, 5);
	cr_assert_null(rig_nodes[0].dev->cursors);
	while (rig_nodes[0].dev->peers_head)
		gwd_peer_remove(rig_nodes[0].dev->peers_head);
}
