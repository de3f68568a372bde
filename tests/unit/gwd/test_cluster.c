/* SPDX-License-Identifier: MIT */
/*
 * Cluster behaviour end to end, in memory, on a fake clock: gateway nodes
 * (cluster devices sharing one static key behind a "VIP") and WireGuard
 * clients (standalone devices), their UDP datagrams carried by a pipe that
 * routes the VIP to whichever node holds it, and their session exports
 * packed to protobuf and imported by the other nodes (what syncd relays).
 *
 * Every data packet a gateway sends is logged as (receiver index, counter):
 * no pair may ever appear twice (the nonce invariant of session-sync.md).
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cluster.h"
#include "device.h"
#include "gw/crypto.h"
#include "gw/key.h"
#include "gw/log.h"
#include "gw/nl.h"
#include "gw/pbwipe.h"
#include "packet.h"
#include "peer.h"
#include "region.h"
#include "session.h"
#include "support.h"
#include "uapi.h"

enum {
	MAXN = 40,
	QUEUE = 8192,
	DGRAM_MAX = 1600,
	RELAY_MAX = 4096,
	DATA_LOG_MAX = 200000,
	PORT = 51820,
};

struct node {
	struct gwd_device *dev;
	bool cluster, dead;
	union gw_sockaddr addr; /* its own address */
	uint8_t priv[GW_KEY_LEN], pub[GW_KEY_LEN];
	struct in_addr inner; /* tunnel address (clients) */
	struct gwd_session_sink sink;
	uint64_t sent[5];     /* datagrams sent by message type */
	uint64_t tun;	      /* packets delivered to its TUN */
	uint8_t last_tun[64]; /* first bytes of the last one */
};

struct dgram {
	int to;
	union gw_sockaddr from;
	struct gwd_src local;
	size_t len;
	uint8_t data[DGRAM_MAX];
};

struct relay_msg {
	int from;
	size_t len;
	uint8_t *buf;
};

struct data_rec {
	uint32_t idx;
	uint64_t counter;
	int node;
};

static struct node nodes[MAXN];
static int nnodes;
static int vip_holder = -1;
static union gw_sockaddr vip;
static uint8_t server_priv[GW_KEY_LEN], server_pub[GW_KEY_LEN];
static struct dgram *queue;
static size_t qhead, qtail;
static struct relay_msg relayq[RELAY_MAX];
static size_t nrelay;
static struct data_rec *data_log;
static size_t ndata;
static bool relay_on = true;
static int mirror = -1;	 /* also receives a copy of every datagram to the VIP */
static int hold_to = -1; /* datagrams to this node wait in held[] */
static struct dgram held[16];
static size_t nheld;
static bool capture_on;
static struct dgram captured; /* the last client data packet to the VIP, when capture_on */
static uint64_t t0_ms;
static uint64_t init_at[MAXN][256]; /* when each gateway sent initiations (ms) */
static size_t ninit[MAXN];

/* --- The network --------------------------------------------------------------- */

static void set_addr(union gw_sockaddr *a, uint32_t ip)
{
	memset(a, 0, sizeof(*a));
	a->in.sin_family = AF_INET;
	a->in.sin_port = htons(PORT);
	a->in.sin_addr.s_addr = htonl(ip);
}

static int route(const union gw_sockaddr *to)
{
	if (gw_sockaddr_equal(to, &vip))
		return vip_holder;
	for (int i = 0; i < nnodes; i++)
		if (gw_sockaddr_equal(&nodes[i].addr, to))
			return i;
	return -1;
}

static void log_data(int node, const uint8_t *buf, size_t len)
{
	const struct gwd_message_data *m = (const void *)buf;

	if (len < GWD_MESSAGE_DATA_MIN_LEN || buf[0] != GWD_MESSAGE_DATA || !nodes[node].cluster)
		return;
	cr_assert_lt(ndata, DATA_LOG_MAX);
	data_log[ndata++] = (struct data_rec){le32toh(m->key_idx), le64toh(m->counter), node};
}

static void enqueue(struct node *n, int dst, const union gw_sockaddr *to, const struct gwd_src *src,
		    const void *buf, size_t len);

static int net_send(void *arg, const union gw_sockaddr *to, struct gwd_src *src, const void *buf,
		    size_t len)
{
	struct node *n = arg;
	int i = (int)(n - nodes), dst = route(to);

	cr_assert_leq(len, DGRAM_MAX);
	cr_assert(!n->dead, "a dead node sent");
	n->sent[((const uint8_t *)buf)[0] <= 4 ? ((const uint8_t *)buf)[0] : 0]++;
	log_data(i, buf, len);
	if (((const uint8_t *)buf)[0] == GWD_MESSAGE_HANDSHAKE_INITIATION && ninit[i] < 256)
		init_at[i][ninit[i]++] = rig_fc.mono / GW_NSEC_PER_MSEC - t0_ms;
	if (mirror >= 0 && mirror != dst && gw_sockaddr_equal(to, &vip))
		enqueue(n, mirror, to, src, buf, len);
	if (dst >= 0 && !nodes[dst].dead)
		enqueue(n, dst, to, src, buf, len);
	return 0;
}

static void enqueue(struct node *n, int dst, const union gw_sockaddr *to, const struct gwd_src *src,
		    const void *buf, size_t len)
{
	struct dgram *d;

	cr_assert_lt(qtail - qhead, QUEUE, "pipe overflow");
	if (dst == hold_to) {
		cr_assert_lt(nheld, 16);
		d = &held[nheld++];
	} else {
		d = &queue[qtail++ % QUEUE];
	}
	d->to = dst;
	/* The source address: the pinned local address if any (the VIP), else the node's. */
	if (src && src->family == AF_INET) {
		set_addr(&d->from, ntohl(src->v4.s_addr));
	} else {
		d->from = n->addr;
	}
	memset(&d->local, 0, sizeof(d->local));
	d->local.family = AF_INET;
	d->local.v4 = to->in.sin_addr;
	d->len = len;
	memcpy(d->data, buf, len);
	if (capture_on && !n->cluster && ((const uint8_t *)buf)[0] == GWD_MESSAGE_DATA &&
	    len > GWD_MESSAGE_DATA_MIN_LEN)
		captured = *d;
}

static int net_deliver(void *arg, const void *pkt, size_t len)
{
	struct node *n = arg;

	n->tun++;
	memcpy(n->last_tun, pkt, len < sizeof(n->last_tun) ? len : sizeof(n->last_tun));
	return 0;
}

static void deliver(struct dgram *d)
{
	static uint8_t buf[DGRAM_MAX];
	struct node *n = &nodes[d->to];

	if (n->dead)
		return;
	memcpy(buf, d->data, d->len);
	gwd_device_receive(n->dev, buf, d->len, &d->from, &d->local);
}

/* --- Session relay (what syncd does) ----------------------------------------------- */

static int sink_batch(void *arg, const Gwcluster__SessionBatch *batch)
{
	struct node *n = arg;
	struct relay_msg *m;

	if (n->dead || !relay_on)
		return 0;
	cr_assert_lt(nrelay, RELAY_MAX);
	m = &relayq[nrelay++];
	m->from = (int)(n - nodes);
	m->len = gwcluster__session_batch__get_packed_size(batch);
	m->buf = malloc(m->len + 1);
	cr_assert(m->buf);
	gwcluster__session_batch__pack(batch, m->buf);
	return 0;
}

static void import_bytes(int to, const uint8_t *buf, size_t len)
{
	Gwcluster__SessionBatch *b =
	    gwcluster__session_batch__unpack(&gw_pbwipe_allocator, len, buf);

	cr_assert(b, "an export does not unpack");
	cr_assert_eq(gwd_session_import(nodes[to].dev, b), 0);
	gwcluster__session_batch__free_unpacked(b, &gw_pbwipe_allocator);
}

static void relay(void)
{
	for (size_t k = 0; k < nrelay; k++) {
		struct relay_msg *m = &relayq[k];

		for (int i = 0; i < nnodes; i++)
			if (i != m->from && nodes[i].cluster && !nodes[i].dead)
				import_bytes(i, m->buf, m->len);
		gw_wipe(m->buf, m->len);
		free(m->buf);
	}
	nrelay = 0;
}

static void pump(void)
{
	while (qhead != qtail || nrelay) {
		while (qhead != qtail)
			deliver(&queue[qhead++ % QUEUE]);
		relay();
	}
}

static void run_ms(uint64_t ms)
{
	rig_run_ms_with(ms, pump);
}

/* --- Building nodes ------------------------------------------------------------------- */

static void new_device(int i)
{
	rig_device_new(&nodes[i].dev, net_send, net_deliver, &nodes[i]);
}

/* Gateway i: node id, boot counter, mode; the server key, no peers yet. */
static void init_gateway(int i, uint8_t node_id, uint64_t boot, bool anycast, uint32_t rekey_rate)
{
	struct node *n = &nodes[i];
	struct gwd_cluster_config cc = {
	    .node_id = node_id,
	    .boot = boot,
	    .claim_on_receive = anycast,
	    .takeover_rekey_rate = rekey_rate,
	};

	memset(n, 0, sizeof(*n));
	n->cluster = true;
	set_addr(&n->addr, 0xcb007100 + node_id); /* 203.0.113.N */
	new_device(i);
	cr_assert_eq(gwd_cluster_enable(n->dev, &cc), 0);
	n->sink = (struct gwd_session_sink){sink_batch, NULL, n};
	gwd_session_set_sink(n->dev, &n->sink);
	rig_dev_set_ok(nodes[i].dev, "private_key=%s\nlisten_port=%d\n", rig_hex(server_priv),
		       PORT);
}

static int add_gateway(uint8_t node_id, uint64_t boot, bool anycast, uint32_t rekey_rate)
{
	int i = nnodes++;

	init_gateway(i, node_id, boot, anycast, rekey_rate);
	return i;
}

static int add_client(void)
{
	int i = nnodes++;
	struct node *n = &nodes[i];
	int k = i + 10;

	memset(n, 0, sizeof(*n));
	set_addr(&n->addr, 0xc0000200 + (uint32_t)k);	   /* 192.0.2.k */
	n->inner.s_addr = htonl(0xc6120000 + (uint32_t)k); /* 198.18.0.k */
	gw_x25519_generate(n->priv);
	cr_assert(gw_x25519_public(n->pub, n->priv));
	new_device(i);
	rig_dev_set_ok(nodes[i].dev,
		       "private_key=%s\nlisten_port=%d\npublic_key=%s\nendpoint=192.0.2.100:%d\n"
		       "allowed_ip=198.18.0.1/32\n",
		       rig_hex(n->priv), PORT, rig_hex(server_pub), PORT);
	return i;
}

/* Every gateway gets every client as a peer. */
static void configure_gateways(void)
{
	for (int g = 0; g < nnodes; g++) {
		if (!nodes[g].cluster || nodes[g].dead)
			continue;
		for (int c = 0; c < nnodes; c++) {
			char ip[INET_ADDRSTRLEN];

			if (nodes[c].cluster)
				continue;
			inet_ntop(AF_INET, &nodes[c].inner, ip, sizeof(ip));
			rig_dev_set_ok(nodes[g].dev, "public_key=%s\nallowed_ip=%s/32\n",
				       rig_hex(nodes[c].pub), ip);
		}
	}
}

static void setup(void)
{
	rig_init(GW_LOG_ERR);
	queue = calloc(QUEUE, sizeof(*queue));
	data_log = calloc(DATA_LOG_MAX, sizeof(*data_log));
	cr_assert(queue && data_log);
	qhead = qtail = nrelay = ndata = 0;
	nnodes = 0;
	vip_holder = -1;
	mirror = -1;
	hold_to = -1;
	nheld = 0;
	relay_on = true;
	capture_on = false;
	set_addr(&vip, 0xc0000264); /* 192.0.2.100 */
	t0_ms = rig_fc.mono / GW_NSEC_PER_MSEC;
	memset(ninit, 0, sizeof(ninit));
	gw_x25519_generate(server_priv);
	cr_assert(gw_x25519_public(server_pub, server_priv));
}

static void teardown(void)
{
	for (int i = 0; i < nnodes; i++)
		if (nodes[i].dev)
			gwd_device_free(nodes[i].dev);
	relay();
	rig_fini();
	free(queue);
	free(data_log);
}

/* Node i's whole state as one packed SessionBatch (what a dump would export). */
static uint8_t *snapshot_of(int i, size_t *len)
{
	size_t before = nrelay;
	uint8_t *buf;

	gwd_session_dump(nodes[i].dev);
	cr_assert_eq(gwd_session_flush(nodes[i].dev), 0);
	cr_assert_eq(nrelay, before + 1, "one batch expected");
	buf = relayq[--nrelay].buf;
	*len = relayq[nrelay].len;
	return buf;
}

/* Kills a gateway as kill -9 would: it just stops existing. */
static void kill_node(int i)
{
	nodes[i].dead = true;
	gwd_device_free(nodes[i].dev);
	nodes[i].dev = NULL;
}

/* --- Traffic ------------------------------------------------------------------------------ */

/* A 64-byte IPv4 packet src -> dst carrying a tag. */
static void ip_packet(uint8_t p[64], struct in_addr src, struct in_addr dst, uint32_t tag)
{
	memset(p, 0, 64);
	p[0] = 0x45;
	p[3] = 64;
	p[8] = 64;
	p[9] = 17;
	memcpy(p + 12, &src, 4);
	memcpy(p + 16, &dst, 4);
	memcpy(p + 28, &tag, 4);
}

static struct in_addr gw_inner(void)
{
	return (struct in_addr){htonl(0xc6120001)}; /* 198.18.0.1 */
}

/* Client c sends one packet into the tunnel. */
static void client_send(int c, uint32_t tag)
{
	uint8_t p[64];

	ip_packet(p, nodes[c].inner, gw_inner(), tag);
	gwd_device_xmit(nodes[c].dev, p, sizeof(p));
	pump();
}

/* Gateway g sends one packet to client c. */
static void gateway_send(int g, int c, uint32_t tag)
{
	uint8_t p[64];

	ip_packet(p, gw_inner(), nodes[c].inner, tag);
	gwd_device_xmit(nodes[g].dev, p, sizeof(p));
	pump();
}

static struct gwd_peer *peer_of(int g, int c)
{
	struct gwd_peer *p = gwd_peer_lookup(nodes[g].dev, nodes[c].pub);

	cr_assert(p);
	return p;
}

static uint64_t handshakes_sent(void)
{
	uint64_t n = 0;

	for (int i = 0; i < nnodes; i++)
		n += nodes[i].sent[GWD_MESSAGE_HANDSHAKE_INITIATION] +
		     nodes[i].sent[GWD_MESSAGE_HANDSHAKE_RESPONSE];
	return n;
}

static uint64_t total_sent(int i)
{
	uint64_t n = 0;

	for (int t = 0; t < 5; t++)
		n += nodes[i].sent[t];
	return n;
}

static int cmp_rec(const void *a, const void *b)
{
	const struct data_rec *x = a, *y = b;

	if (x->idx != y->idx)
		return x->idx < y->idx ? -1 : 1;
	if (x->counter != y->counter)
		return x->counter < y->counter ? -1 : 1;
	return 0;
}

/* The invariant: no gateway ever sent the same (receiver index, counter) twice. */
static void assert_no_nonce_reuse(void)
{
	struct data_rec *v = malloc(ndata * sizeof(*v) + 1);

	cr_assert(v);
	memcpy(v, data_log, ndata * sizeof(*v));
	qsort(v, ndata, sizeof(*v), cmp_rec);
	for (size_t i = 1; i < ndata; i++)
		cr_assert(cmp_rec(&v[i - 1], &v[i]) != 0,
			  "nonce reuse: index %08x counter %#llx by nodes %d and %d", v[i].idx,
			  (unsigned long long)v[i].counter, v[i - 1].node, v[i].node);
	free(v);
}

/* The counters node g sent: all in region (epoch >= 1, node_id, incarnation) or epoch 0. */
static void assert_regions(int g, uint8_t node_id, uint16_t inc, bool allow_epoch0)
{
	for (size_t i = 0; i < ndata; i++) {
		struct gwd_region_fields f;

		if (data_log[i].node != g)
			continue;
		if (data_log[i].counter < GWD_REGION_EPOCH0_END) {
			cr_assert(allow_epoch0, "node %d sent at epoch 0: %#llx", g,
				  (unsigned long long)data_log[i].counter);
			continue;
		}
		gwd_region_decode(data_log[i].counter, &f);
		cr_assert_geq(f.epoch, 1);
		cr_assert_eq(f.node, node_id, "counter %#llx",
			     (unsigned long long)data_log[i].counter);
		cr_assert_eq(f.incarnation, inc);
	}
}

/* Brings client c's tunnel up through the VIP holder and exchanges n packets each way. */
static void talk(int c, int n)
{
	for (int k = 0; k < n; k++) {
		client_send(c, 1000 + (uint32_t)k);
		run_ms(20);
		gateway_send(vip_holder, c, 5000 + (uint32_t)k);
		run_ms(20);
	}
}

/* --- Failover ------------------------------------------------------------------------------ */

TestSuite(failover, .init = setup, .fini = teardown);

/*
 * A owns, B replicates; A dies; B claims; the client's packets reach B and
 * B's reach the client on the replicated keys, without any handshake; a
 * replay of an old client packet is refused by B; no nonce was ever reused.
 */
Test(failover, three_devices_no_handshake_no_reuse)
{
	int a = add_gateway(1, 10, false, 0), b = add_gateway(2, 20, false, 0);
	int c = add_client();
	uint64_t hs, b_tun, c_tun;
	struct gwd_peer *pb;
	struct dgram replay;

	configure_gateways();
	vip_holder = a;
	gwd_cluster_claim_all(nodes[a].dev);
	run_ms(50);
	capture_on = true;
	talk(c, 20);
	capture_on = false;
	replay = captured;
	talk(c, 20);
	cr_assert_geq(nodes[a].tun, 40);
	cr_assert_geq(nodes[c].tun, 40);
	run_ms(300); /* the last receive progress reaches B */

	pb = peer_of(b, c);
	cr_assert(pb->noise.current, "B holds the session");
	cr_assert(pb->noise.current->imported);
	cr_assert_eq(pb->noise.current->send_epoch, GWD_REGION_EPOCH_NONE);
	cr_assert_eq(total_sent(b), 0, "a standby sent something");
	/* wg show on B: the cluster's latest handshake, not "none". */
	cr_assert_neq(pb->last_handshake.tv_sec, 0);
	cr_assert_leq(labs(pb->last_handshake.tv_sec - peer_of(a, c)->last_handshake.tv_sec), 1);

	kill_node(a);
	vip_holder = b;
	gwd_cluster_claim_all(nodes[b].dev);
	hs = handshakes_sent();
	b_tun = nodes[b].tun;
	c_tun = nodes[c].tun;

	client_send(c, 7777);
	cr_assert_eq(nodes[b].tun, b_tun + 1, "B did not accept the client's packet");
	gateway_send(b, c, 8888);
	cr_assert_eq(nodes[c].tun, c_tun + 1, "the client did not accept B's packet");
	talk(c, 30);
	cr_assert_eq(nodes[c].tun, c_tun + 31);
	cr_assert_eq(handshakes_sent(), hs, "failover needed a handshake");

	/* The old packet again, now to B. */
	b_tun = nodes[b].tun;
	replay.to = b;
	deliver(&replay);
	cr_assert_eq(nodes[b].tun, b_tun, "B accepted a replayed packet");
	cr_assert_geq(nodes[b].dev->stats[GWD_STAT_DROP_REPLAY], 1);

	assert_regions(b, 2, 20, false);
	assert_no_nonce_reuse();
}

/*
 * The client rekeys with the owner; the standby learns the new keypair
 * first unconfirmed, then confirmed: it must move it to current, so after a
 * takeover it sends on the keypair the client uses, with the old owner's
 * receiver index.
 */
Test(failover, takeover_after_client_rekey)
{
	int a = add_gateway(1, 1, false, 0), b = add_gateway(2, 1, false, 0);
	int c = add_client();
	struct gwd_peer *pc, *pb;
	uint32_t last_idx = 0;
	size_t mark;
	uint64_t hs;

	configure_gateways();
	vip_holder = a;
	gwd_cluster_claim_all(nodes[a].dev);
	talk(c, 3);
	run_ms(6000);
	pc = gwd_peer_lookup(nodes[c].dev, server_pub);
	/* A's response waits until A exported its new keypair, still unconfirmed. */
	hold_to = c;
	gwd_send_handshake_initiation(pc, false);
	pump();
	run_ms(20);
	cr_assert_eq(nheld, 1);
	cr_assert(peer_of(b, c)->noise.next, "B did not get the unconfirmed keypair");
	hold_to = -1;
	deliver(&held[0]);
	nheld = 0;
	pump();
	talk(c, 3);
	run_ms(300);
	for (size_t i = 0; i < ndata; i++)
		if (data_log[i].node == a)
			last_idx = data_log[i].idx;
	pb = peer_of(b, c);
	cr_assert(pb->noise.current);
	cr_assert_eq(pb->noise.current->remote_index, last_idx,
		     "B's current is not the keypair A used last");
	cr_assert(pb->noise.previous, "B lost the previous keypair");
	cr_assert_null(pb->noise.next);

	kill_node(a);
	vip_holder = b;
	gwd_cluster_claim_all(nodes[b].dev);
	hs = handshakes_sent();
	mark = ndata;
	gateway_send(b, c, 9);
	cr_assert_gt(ndata, mark);
	cr_assert_eq(data_log[mark].idx, last_idx, "B's first packet uses another keypair");
	talk(c, 3);
	cr_assert_eq(handshakes_sent(), hs);
	assert_no_nonce_reuse();
}

/*
 * A standby never sends anything, whatever reaches it: copies of every
 * datagram to the VIP (data, keepalives, the client's rekey initiations),
 * packets from its own TUN, a persistent keepalive switched on, minutes of
 * protocol timers.
 */
Test(failover, standby_is_silent)
{
	int a = add_gateway(1, 1, false, 0), b = add_gateway(2, 1, false, 0);
	int c = add_client();
	uint64_t b_rx;

	configure_gateways();
	vip_holder = a;
	gwd_cluster_claim_all(nodes[a].dev);
	talk(c, 5);
	run_ms(200);
	mirror = b;
	rig_dev_set_ok(nodes[b].dev, "public_key=%s\npersistent_keepalive_interval=5\n",
		       rig_hex(nodes[c].pub));
	for (int k = 0; k < 400; k++) {
		client_send(c, (uint32_t)k);
		gateway_send(b, c, (uint32_t)k);
		run_ms(1000);
	}
	b_rx = nodes[b].dev->stats[GWD_STAT_RX_PACKETS];
	cr_assert_geq(b_rx, 400, "the mirror did not feed B");
	cr_assert_geq(nodes[c].sent[GWD_MESSAGE_HANDSHAKE_INITIATION], 2,
		      "the client never rekeyed");
	cr_assert_geq(nodes[b].tun, 300, "B did not decrypt the replicated sessions");
	cr_assert_eq(total_sent(b), 0, "the standby sent %llu datagrams",
		     (unsigned long long)total_sent(b));
	cr_assert_geq(nodes[b].dev->cluster->stats.standby_silenced, 2);
	assert_no_nonce_reuse();
}

/* --- Counter regions ------------------------------------------------------------------------ */

TestSuite(regions, .init = setup, .fini = teardown);

/* Counters node g sent after data_log position from. */
static size_t counters_of(int g, size_t from, uint64_t *out, size_t max)
{
	size_t n = 0;

	for (size_t i = from; i < ndata && n < max; i++)
		if (data_log[i].node == g)
			out[n++] = data_log[i].counter;
	return n;
}

/*
 * Split brain: two standbys claim the same keypair at once, without hearing
 * of each other. Their regions differ by node id; no counter is shared.
 */
Test(regions, two_nodes_claim_at_once)
{
	int a = add_gateway(1, 3, false, 0), b = add_gateway(2, 3, false, 0);
	int d = add_gateway(3, 3, false, 0), c = add_client();
	uint64_t c_tun;
	size_t mark;

	configure_gateways();
	vip_holder = a;
	gwd_cluster_claim_all(nodes[a].dev);
	talk(c, 10);
	run_ms(300);
	kill_node(a);
	relay_on = false; /* B and D do not hear each other */
	gwd_cluster_claim_all(nodes[b].dev);
	gwd_cluster_claim_all(nodes[d].dev);
	vip_holder = b;
	c_tun = nodes[c].tun;
	mark = ndata;
	for (int k = 0; k < 20; k++) {
		gateway_send(b, c, 100 + (uint32_t)k);
		gateway_send(d, c, 200 + (uint32_t)k);
	}
	cr_assert_eq(peer_of(b, c)->noise.current->send_epoch, 1);
	cr_assert_eq(peer_of(d, c)->noise.current->send_epoch, 1);
	assert_regions(b, 2, 3, false);
	assert_regions(d, 3, 3, false);
	cr_assert_geq(ndata - mark, 40);
	/* The client takes B's first packet, then D's (a higher region) from then on. */
	cr_assert_geq(nodes[c].tun - c_tun, 20);
	assert_no_nonce_reuse();
}

/*
 * A node restarts (new incarnation) and gets the session back from a stale
 * replica that never heard of its earlier claim: it claims the same epoch
 * again, in another region, and never sends at epoch 0.
 */
Test(regions, restart_new_incarnation)
{
	int a = add_gateway(1, 50, false, 0), b = add_gateway(2, 7, false, 0);
	int c = add_client();
	uint8_t *stale;
	size_t stale_len, mark;
	uint64_t c_tun;

	configure_gateways();
	vip_holder = a;
	gwd_cluster_claim_all(nodes[a].dev);
	talk(c, 10);
	run_ms(300);
	stale = snapshot_of(a, &stale_len);
	kill_node(a);
	vip_holder = b;
	gwd_cluster_claim_all(nodes[b].dev);
	talk(c, 10);
	assert_regions(b, 2, 7, false);

	/* B restarts as boot 8 and imports the stale replica. */
	gwd_device_free(nodes[b].dev);
	init_gateway(b, 2, 8, false, 0);
	configure_gateways();
	import_bytes(b, stale, stale_len);
	gw_wipe(stale, stale_len);
	free(stale);
	cr_assert(peer_of(b, c)->noise.current->imported);
	vip_holder = b;
	gwd_cluster_claim_all(nodes[b].dev);
	mark = ndata;
	c_tun = nodes[c].tun;
	talk(c, 10);
	cr_assert_eq(nodes[c].tun - c_tun, 10, "the client refused the restarted node");
	for (size_t i = mark; i < ndata; i++) {
		struct gwd_region_fields f;

		cr_assert_geq(data_log[i].counter, GWD_REGION_EPOCH0_END, "epoch 0 after restart");
		gwd_region_decode(data_log[i].counter, &f);
		cr_assert_eq(f.incarnation, 8);
		cr_assert_eq(f.node, 2);
	}
	assert_no_nonce_reuse();
}

/* The end of a region claims the next epoch; the creator leaves epoch 0 at 2^48. */
Test(regions, region_end_claims_next_epoch)
{
	int a = add_gateway(1, 9, false, 0), b = add_gateway(2, 4, false, 0);
	int c = add_client();
	struct gwd_noise_keypair *kp;
	uint64_t got[8], end;
	size_t mark, n;

	configure_gateways();
	vip_holder = a;
	gwd_cluster_claim_all(nodes[a].dev);
	talk(c, 3);
	/* The creator at the end of epoch 0. */
	kp = peer_of(a, c)->noise.current;
	cr_assert_eq(kp->send_epoch, 0);
	kp->sending_counter = GWD_REGION_EPOCH0_END - 1;
	mark = ndata;
	gateway_send(a, c, 1);
	gateway_send(a, c, 2);
	n = counters_of(a, mark, got, 8);
	cr_assert_eq(n, 2);
	cr_assert_eq(got[0], GWD_REGION_EPOCH0_END - 1);
	cr_assert_eq(got[1], gwd_region_start(1, 1, 9));
	run_ms(100);

	/* B takes over, claims epoch 2 (it heard of A's 1), and runs out of its region. */
	kill_node(a);
	vip_holder = b;
	gwd_cluster_claim_all(nodes[b].dev);
	gateway_send(b, c, 3);
	kp = peer_of(b, c)->noise.current;
	cr_assert_eq(kp->send_epoch, 2);
	end = gwd_region_end(2, 2, 4);
	kp->sending_counter = end - 2;
	mark = ndata;
	for (uint32_t k = 0; k < 4; k++)
		gateway_send(b, c, 10 + k);
	n = counters_of(b, mark, got, 8);
	cr_assert_eq(n, 4);
	cr_assert_eq(got[0], end - 2);
	cr_assert_eq(got[1], end - 1);
	cr_assert_eq(got[2], gwd_region_start(3, 2, 4));
	cr_assert_eq(got[3], gwd_region_start(3, 2, 4) + 1);
	cr_assert_eq(kp->greatest_epoch, 3);
	assert_no_nonce_reuse();
}

/* No epoch left: the keypair is never sent with again and the owner rekeys. */
Test(regions, epoch_exhaustion_rekeys)
{
	int a = add_gateway(1, 1, false, 0), b = add_gateway(2, 1, false, 0);
	int c = add_client();
	struct gwd_noise_keypair *kp;
	uint64_t c_tun, inits;
	size_t mark;

	configure_gateways();
	vip_holder = a;
	gwd_cluster_claim_all(nodes[a].dev);
	talk(c, 3);
	run_ms(200);
	kill_node(a);
	vip_holder = b;
	gwd_cluster_claim_all(nodes[b].dev);
	gateway_send(b, c, 1);
	kp = peer_of(b, c)->noise.current;
	kp->send_epoch = GWD_REGION_EPOCH_MAX;
	kp->greatest_epoch = GWD_REGION_EPOCH_MAX;
	kp->sending_counter = gwd_region_end(GWD_REGION_EPOCH_MAX, 2, 1) - 1;
	inits = nodes[b].sent[GWD_MESSAGE_HANDSHAKE_INITIATION];
	c_tun = nodes[c].tun;
	mark = ndata;
	for (uint32_t k = 0; k < 3; k++)
		gateway_send(b, c, 20 + k);
	run_ms(100);
	cr_assert_eq(nodes[b].sent[GWD_MESSAGE_HANDSHAKE_INITIATION], inits + 1,
		     "no handshake after the epochs ran out");
	cr_assert_eq(nodes[c].tun - c_tun, 3, "staged packets were not sent after the rekey");
	cr_assert_neq(peer_of(b, c)->noise.current, kp);
	/* Only the last counter of the old keypair was used; the rest went on the new one. */
	cr_assert_eq(data_log[mark].counter, gwd_region_end(GWD_REGION_EPOCH_MAX, 2, 1) - 1);
	cr_assert_lt(data_log[ndata - 1].counter, GWD_REGION_EPOCH0_END);
	assert_no_nonce_reuse();
}

/* A reused incarnation (boot > 4096) claims no replicated keypair during the holdoff. */
Test(regions, reused_incarnation_holds_off)
{
	int a = add_gateway(1, 1, false, 0), b = add_gateway(2, 4096 + 2, false, 0);
	int c = add_client();
	struct gwd_peer *pb;
	uint64_t c_tun;

	configure_gateways();
	cr_assert(nodes[b].dev->cluster->incarnation_reused);
	cr_assert_eq(nodes[b].dev->cluster->incarnation, 2);
	vip_holder = a;
	gwd_cluster_claim_all(nodes[a].dev);
	talk(c, 3);
	run_ms(200);
	kill_node(a);
	vip_holder = b;
	gwd_cluster_claim_all(nodes[b].dev);
	pb = peer_of(b, c);
	cr_assert(pb->noise.current->imported);
	cr_assert_not(gwd_cluster_keypair_usable(nodes[b].dev, pb->noise.current));
	c_tun = nodes[c].tun;
	gateway_send(b, c, 1);
	run_ms(100);
	/* Delivered on a fresh handshake instead. */
	cr_assert_eq(nodes[c].tun, c_tun + 1);
	cr_assert_not(pb->noise.current->imported);
	cr_assert_eq(nodes[b].sent[GWD_MESSAGE_HANDSHAKE_INITIATION], 1);
	assert_regions(b, 2, 2, true);
	for (size_t i = 0; i < ndata; i++)
		if (data_log[i].node == b)
			cr_assert_lt(data_log[i].counter, GWD_REGION_EPOCH0_END);
	assert_no_nonce_reuse();
}

/* --- Ownership ----------------------------------------------------------------------------------
 */

TestSuite(ownership, .init = setup, .fini = teardown);

/*
 * A higher ownership epoch from another node silences the old owner at once.
 * (A claims the peer alone, not as a VRRP master: a master would take the
 * peer back once its packets reach it, ownership::master_claims_on_receive.)
 */
Test(ownership, higher_epoch_stops_owner)
{
	int a = add_gateway(1, 1, false, 0), b = add_gateway(2, 1, false, 0);
	int c = add_client();
	struct gwd_peer *pa;
	uint64_t a_sent;

	configure_gateways();
	vip_holder = a;
	gwd_cluster_claim_peer(peer_of(a, c));
	talk(c, 3);
	pa = peer_of(a, c);
	cr_assert_eq(pa->cl.owner, 1);
	cr_assert_eq(pa->cl.owner_epoch, 1);
	gwd_cluster_claim_peer(peer_of(b, c));
	cr_assert_eq(peer_of(b, c)->cl.owner_epoch, 2);
	run_ms(10); /* B's claim reaches A */
	cr_assert_eq(pa->cl.owner, 2);
	cr_assert_eq(pa->cl.owner_epoch, 2);
	cr_assert_not(gwd_peer_may_send(pa));
	cr_assert_eq(nodes[a].dev->cluster->stats.ownership_lost, 1);
	a_sent = total_sent(a);
	gateway_send(a, c, 1);
	client_send(c, 2); /* A still holds the VIP and receives */
	run_ms(60000);
	cr_assert_eq(total_sent(a), a_sent, "the old owner kept sending");
}

/* Two nodes claiming at the same epoch: the higher node id wins everywhere. */
Test(ownership, tie_broken_by_node_id)
{
	int a = add_gateway(1, 1, false, 0), b = add_gateway(2, 1, false, 0);
	int c = add_client();

	configure_gateways();
	relay_on = false;
	gwd_cluster_claim_all(nodes[a].dev);
	gwd_cluster_claim_all(nodes[b].dev);
	run_ms(10);
	cr_assert(gwd_peer_may_send(peer_of(a, c)));
	cr_assert(gwd_peer_may_send(peer_of(b, c)));
	relay_on = true;
	gwd_session_dump(nodes[a].dev);
	gwd_session_dump(nodes[b].dev);
	run_ms(10);
	cr_assert_not(gwd_peer_may_send(peer_of(a, c)));
	cr_assert(gwd_peer_may_send(peer_of(b, c)));
	cr_assert_eq(peer_of(a, c)->cl.owner, 2);
	cr_assert_eq(peer_of(a, c)->cl.owner_epoch, 1);
}

/* release: (epoch + 1, nobody), replicated; a later claim goes above it. */
Test(ownership, release_and_reclaim)
{
	int a = add_gateway(1, 1, false, 0), b = add_gateway(2, 1, false, 0);
	int c = add_client();

	configure_gateways();
	gwd_cluster_claim_all(nodes[a].dev);
	run_ms(10);
	gwd_cluster_release_all(nodes[a].dev);
	run_ms(10);
	cr_assert_eq(peer_of(b, c)->cl.owner, 0);
	cr_assert_eq(peer_of(b, c)->cl.owner_epoch, 2);
	cr_assert_not(gwd_cluster_serving(nodes[a].dev));
	gwd_cluster_claim_all(nodes[b].dev);
	run_ms(10);
	cr_assert_eq(peer_of(a, c)->cl.owner, 2);
	cr_assert_eq(peer_of(a, c)->cl.owner_epoch, 3);
	/* A peer added while master is claimed at once. */
	{
		int c2 = add_client();

		configure_gateways();
		cr_assert(gwd_peer_may_send(peer_of(b, c2)));
		cr_assert_not(gwd_peer_may_send(peer_of(a, c2)));
	}
}

/* A claim by an earlier process of this node id is history: not ownership. */
Test(ownership, own_node_id_from_the_past_is_not_ownership)
{
	int a = add_gateway(1, 1, false, 0);
	int c = add_client();
	struct gwd_peer *pa;

	configure_gateways();
	pa = peer_of(a, c);
	cr_assert(gwd_cluster_merge_owner(pa, 1, 5));
	cr_assert_eq(pa->cl.owner, 0);
	cr_assert_eq(pa->cl.owner_epoch, 5);
	cr_assert_not(gwd_peer_may_send(pa));
	cr_assert_not(gwd_cluster_merge_owner(pa, 3, 4), "a lower epoch was adopted");
	gwd_cluster_claim_peer(pa);
	cr_assert_eq(pa->cl.owner_epoch, 6);
	cr_assert(gwd_peer_may_send(pa));
}

/*
 * Anycast: packets arriving at a node make it claim the peer, and its
 * replies go out at once on the replicated keys; a node claims on receive
 * at most once per GWD_CLUSTER_CLAIM_HOLDOFF_MS.
 */
Test(ownership, anycast_claims_on_receive)
{
	int a = add_gateway(1, 1, true, 0), b = add_gateway(2, 1, true, 0);
	int c = add_client();
	uint64_t hs, c_tun;

	configure_gateways();
	vip_holder = a;
	talk(c, 5); /* A claims on the client's initiation */
	cr_assert(gwd_peer_may_send(peer_of(a, c)));
	cr_assert_eq(peer_of(a, c)->cl.owner_epoch, 1);
	run_ms(1200);
	/* ECMP moves the flow to B. */
	vip_holder = b;
	hs = handshakes_sent();
	c_tun = nodes[c].tun;
	client_send(c, 1);
	cr_assert(gwd_peer_may_send(peer_of(b, c)));
	gateway_send(b, c, 2);
	cr_assert_eq(nodes[c].tun, c_tun + 1);
	run_ms(10);
	cr_assert_not(gwd_peer_may_send(peer_of(a, c)));
	cr_assert_eq(peer_of(a, c)->cl.owner_epoch, 2);
	/* Back to A: its last claim is old, so it claims again... */
	vip_holder = a;
	client_send(c, 3);
	cr_assert(gwd_peer_may_send(peer_of(a, c)));
	run_ms(10);
	/* ...but B, which claimed 20 ms ago, does not claim back yet. */
	vip_holder = b;
	client_send(c, 4);
	cr_assert_not(gwd_peer_may_send(peer_of(b, c)), "B claimed back within the holdoff");
	run_ms(1100);
	client_send(c, 5);
	cr_assert(gwd_peer_may_send(peer_of(b, c)));
	cr_assert_eq(peer_of(b, c)->cl.owner_epoch, 4);
	cr_assert_eq(handshakes_sent(), hs);
	assert_no_nonce_reuse();
}

/*
 * Split brain with the sync link cut (docs/failover.md, finding 1): A and B
 * are both master and both send to the client; VRRP heals first, B goes
 * backup and releases the peer as (epoch + 1, nobody) while the link is still
 * down; once it heals, A imports that release. A, still master, must take the
 * peer back above it, and its next packet must leave the region it held
 * before (epoch 0 of the keypair it created): B sent in a higher epoch, so the
 * client's replay window is above it. Traffic goes on without a handshake.
 */
Test(ownership, master_takes_back_a_release_after_split_brain)
{
	int a = add_gateway(1, 1, false, 0), b = add_gateway(2, 1, false, 0);
	int c = add_client();
	struct gwd_peer *pa, *pb;
	struct gwd_region_fields f;
	uint64_t hs, c_tun;
	size_t mark;

	configure_gateways();
	vip_holder = a;
	gwd_cluster_claim_all(nodes[a].dev);
	talk(c, 5);
	run_ms(200);
	pa = peer_of(a, c);
	pb = peer_of(b, c);
	cr_assert_eq(pa->noise.current->send_epoch, 0, "A created the keypair");

	/* The split: sync cut, B master too; the client follows B's ARP. */
	relay_on = false;
	gwd_cluster_claim_all(nodes[b].dev);
	vip_holder = b;
	talk(c, 5);
	gateway_send(a, c, 1); /* A still sends at epoch 0: the client drops it */
	cr_assert(gwd_peer_may_send(pa));
	cr_assert(gwd_peer_may_send(pb));
	cr_assert_eq(pb->noise.current->send_epoch, 1);

	/* VRRP heals: B goes backup (its release is lost with the link), A stays master. */
	gwd_cluster_release_all(nodes[b].dev);
	run_ms(100);
	vip_holder = a;
	cr_assert(gwd_peer_may_send(pa), "A heard of nothing yet");
	/* The sync link heals: each side's resync (a dump) reaches the other. */
	relay_on = true;
	gwd_session_dump(nodes[b].dev);
	gwd_session_dump(nodes[a].dev);
	run_ms(20);
	cr_assert(gwd_peer_may_send(pa), "the master serves nobody after the heal");
	cr_assert_eq(pa->cl.owner, 1);
	cr_assert_eq(pb->cl.owner, 1, "B did not learn A's claim");
	cr_assert_eq(pb->cl.owner_epoch, pa->cl.owner_epoch);
	cr_assert_gt(pa->cl.owner_epoch, 3, "A's claim is not above B's release");

	hs = handshakes_sent();
	c_tun = nodes[c].tun;
	mark = ndata;
	gateway_send(a, c, 2);
	cr_assert_gt(ndata, mark);
	gwd_region_decode(data_log[mark].counter, &f);
	cr_assert_geq(data_log[mark].counter, GWD_REGION_EPOCH0_END, "A stayed at epoch 0");
	cr_assert_eq(f.epoch, 2);
	cr_assert_eq(f.node, 1);
	cr_assert_eq(nodes[c].tun, c_tun + 1, "the client dropped A's first packet");
	talk(c, 10);
	cr_assert_eq(nodes[c].tun, c_tun + 11);
	cr_assert_eq(handshakes_sent(), hs, "the heal needed a handshake");
	cr_assert_eq(total_sent(b) > 0, true);
	assert_regions(a, 1, 1, true);
	assert_regions(b, 2, 1, false);
	assert_no_nonce_reuse();
}

/*
 * A master that lost a peer to another master (split brain) takes it back
 * when the peer's packets reach it, once the holdoff has passed: the other
 * master may have died without ever releasing it.
 */
Test(ownership, master_claims_on_receive)
{
	int a = add_gateway(1, 1, false, 0), b = add_gateway(2, 1, false, 0);
	int c = add_client();
	struct gwd_peer *pa;
	uint64_t hs, c_tun, a_tun;

	configure_gateways();
	vip_holder = a;
	gwd_cluster_claim_all(nodes[a].dev);
	talk(c, 3);
	run_ms(200);
	pa = peer_of(a, c);
	gwd_cluster_claim_all(nodes[b].dev); /* B master too, and later */
	run_ms(10);
	cr_assert_not(gwd_peer_may_send(pa));
	/* Within the holdoff of A's own claim, the client's packets do not flip it. */
	client_send(c, 1);
	cr_assert_not(gwd_peer_may_send(pa));
	kill_node(b);
	run_ms(1100);
	hs = handshakes_sent();
	a_tun = nodes[a].tun;
	c_tun = nodes[c].tun;
	client_send(c, 2);
	cr_assert_eq(nodes[a].tun, a_tun + 1);
	cr_assert(gwd_peer_may_send(pa), "the master did not claim on receive");
	cr_assert_eq(pa->cl.owner_epoch, 3);
	gateway_send(a, c, 3);
	cr_assert_eq(nodes[c].tun, c_tun + 1);
	cr_assert_eq(handshakes_sent(), hs);
	/* A backup never claims on receive. */
	gwd_cluster_release_all(nodes[a].dev);
	run_ms(1100);
	client_send(c, 4);
	cr_assert_not(gwd_peer_may_send(pa));
	assert_no_nonce_reuse();
}

/*
 * A standby keeps nothing for later (docs/failover.md, finding 3): packets
 * from its TUN for a peer it does not own are dropped and counted, and an
 * owner that loses a peer drops what it had staged for it; so a takeover
 * sends the client only what reaches the new owner after its claim.
 */
Test(ownership, nothing_staged_for_a_peer_not_owned)
{
	int a = add_gateway(1, 1, false, 0), b = add_gateway(2, 1, false, 0);
	int c = add_client();
	struct gwd_peer *pa, *pb;
	uint64_t c_tun;
	uint32_t tag;

	configure_gateways();
	vip_holder = a;
	gwd_cluster_claim_all(nodes[a].dev);
	talk(c, 3);
	run_ms(200);
	pa = peer_of(a, c);
	pb = peer_of(b, c);

	/* The standby gets 100 packets for the client: dropped, counted, nothing sent. */
	for (uint32_t k = 0; k < 100; k++)
		gateway_send(b, c, 100 + k);
	cr_assert_eq(pb->nstaged, 0, "the standby staged %zu packets", (size_t)pb->nstaged);
	cr_assert_eq(nodes[b].dev->cluster->stats.drop_not_owner, 100);
	cr_assert_eq(total_sent(b), 0);

	/* The owner stages 5 packets behind a handshake that does not complete... */
	pa->noise.current->sending_counter = GWD_REJECT_AFTER_MESSAGES;
	hold_to = c;
	for (uint32_t k = 0; k < 5; k++)
		gateway_send(a, c, 300 + k);
	cr_assert_eq(pa->nstaged, 5);
	hold_to = -1; /* its initiation, if one went out, is lost */
	nheld = 0;
	/* ...and loses the peer to B: they are dropped too. */
	gwd_cluster_claim_peer(pb);
	run_ms(10);
	cr_assert_not(gwd_peer_may_send(pa));
	cr_assert_eq(pa->nstaged, 0);
	cr_assert_eq(nodes[a].dev->cluster->stats.drop_not_owner, 5);

	/* B takes over: the client gets B's new packet, none of the stale ones. */
	kill_node(a);
	vip_holder = b;
	gwd_cluster_claim_all(nodes[b].dev);
	c_tun = nodes[c].tun;
	gateway_send(b, c, 500);
	run_ms(100);
	cr_assert_eq(nodes[c].tun, c_tun + 1, "stale packets reached the client");
	memcpy(&tag, nodes[c].last_tun + 28, sizeof(tag));
	cr_assert_eq(tag, 500);
	assert_no_nonce_reuse();
}

/* --- Import
 * --------------------------------------------------------------------------------------- */

TestSuite(import, .init = setup, .fini = teardown);

/* A keypair this process sent with and dropped is never imported again. */
Test(import, tombstones_refuse_reimport)
{
	int a = add_gateway(1, 1, false, 0), b = add_gateway(2, 1, false, 0);
	int c = add_client();
	struct gwd_cluster *ca;

	configure_gateways();
	vip_holder = a;
	gwd_cluster_claim_all(nodes[a].dev);
	talk(c, 3);
	run_ms(200);
	ca = nodes[a].dev->cluster;
	/* wg set wg0 peer C remove; then the peer is configured again. */
	rig_dev_set_ok(nodes[a].dev, "public_key=%s\nremove=true\n", rig_hex(nodes[c].pub));
	cr_assert_geq(gwd_cluster_tombstone_count(ca), 1);
	configure_gateways();
	gwd_session_dump(nodes[b].dev);
	run_ms(10);
	cr_assert_geq(ca->stats.import_tombstoned, 1);
	cr_assert_null(peer_of(a, c)->noise.current);
	/* Tombstones go once the keypair is long dead (lazily, on the next lookup). */
	run_ms((GWD_CLUSTER_TOMBSTONE_S + 1) * 1000);
	cr_assert_eq(gwd_cluster_tombstone_count(ca), 1);
	cr_assert_not(gwd_cluster_tombstoned(ca, 12345));
	cr_assert_eq(gwd_cluster_tombstone_count(ca), 0);
}

static Gwcluster__Keypair *make_kp(Gwcluster__Keypair *k, uint8_t keys[64], uint32_t idx,
				   uint64_t age_ms)
{
	gwcluster__keypair__init(k);
	k->local_index = idx;
	k->remote_index = 0x1234;
	k->sending_key = (ProtobufCBinaryData){GW_KEY_LEN, keys};
	k->receiving_key = (ProtobufCBinaryData){GW_KEY_LEN, keys + 32};
	k->age_ms = age_ms;
	k->confirmed = true;
	return k;
}

/* Malformed, conflicting and expired entries are refused and counted; nothing crashes. */
Test(import, refuses_bad_entries)
{
	int a = add_gateway(1, 1, false, 0), c = add_client();
	struct gwd_cluster *ca;
	Gwcluster__SessionBatch batch = GWCLUSTER__SESSION_BATCH__INIT;
	Gwcluster__PeerSession ps[3], *psp[3];
	Gwcluster__Keypair k[4], *kp0[2], *kp1[1], *kp2[1];
	uint8_t keys[64], short_key[5] = {0};
	struct gwd_peer *pa;

	configure_gateways();
	ca = nodes[a].dev->cluster;
	pa = peer_of(a, c);
	gw_random_bytes(keys, sizeof(keys));
	for (int i = 0; i < 3; i++) {
		gwcluster__peer_session__init(&ps[i]);
		psp[i] = &ps[i];
		ps[i].public_key = (ProtobufCBinaryData){GW_KEY_LEN, nodes[c].pub};
	}
	ps[0].public_key.len = 5; /* malformed */
	kp0[0] = make_kp(&k[0], keys, 0x02000001, 1000);
	kp0[1] = make_kp(&k[1], keys, 0x02000002, 200 * 1000); /* expired */
	ps[1].keypairs = kp0;
	ps[1].n_keypairs = 2;
	ps[1].has_greatest_tai64n_received = true;
	ps[1].greatest_tai64n_received = (ProtobufCBinaryData){3, short_key}; /* ignored */
	kp1[0] = make_kp(&k[2], keys, 0x02000001, 1000); /* same index, same keys: merge */
	kp1[0]->rx_high_water = 77;
	k[2].has_greatest_epoch = true;
	k[2].greatest_epoch = 9;
	ps[2].keypairs = kp1;
	ps[2].n_keypairs = 1;
	batch.peers = psp;
	batch.n_peers = 3;
	cr_assert_eq(gwd_session_import(nodes[a].dev, &batch), 0);
	cr_assert_eq(ca->stats.import_rejected, 1);
	cr_assert_eq(ca->stats.import_expired, 1);
	cr_assert_eq(ca->stats.import_keypairs, 1);
	cr_assert(pa->noise.current);
	cr_assert_eq(pa->noise.current->local_index, 0x02000001);
	cr_assert_eq(pa->noise.current->greatest_epoch, 9);
	cr_assert_eq(pa->noise.current->rx_floor, 77);
	cr_assert_eq(pa->noise.current->send_epoch, GWD_REGION_EPOCH_NONE);
	cr_assert_eq(pa->noise.current->sending_counter, GWD_REJECT_AFTER_MESSAGES);
	/* Another keypair under the same index: a conflict. */
	keys[0] ^= 1;
	kp2[0] = make_kp(&k[3], keys, 0x02000001, 1000);
	ps[2].keypairs = kp2;
	batch.peers = &psp[2];
	batch.n_peers = 1;
	cr_assert_eq(gwd_session_import(nodes[a].dev, &batch), 0);
	cr_assert_eq(ca->stats.import_rejected, 2);
	/* Ages beyond the clock, and unknown peers. */
	k[3].local_index = 0x02000009;
	k[3].age_ms = UINT64_MAX / 2;
	cr_assert_eq(gwd_session_import(nodes[a].dev, &batch), 0);
	cr_assert_eq(ca->stats.import_expired, 2);
	ps[2].public_key = (ProtobufCBinaryData){GW_KEY_LEN, server_pub};
	cr_assert_eq(gwd_session_import(nodes[a].dev, &batch), 0);
	cr_assert_eq(ca->stats.import_unknown_peer, 1);
	/* A standalone device refuses imports. */
	cr_assert_eq(gwd_session_import(nodes[c].dev, &batch), -EINVAL);
}

/* Four keypairs for one peer: the newest unconfirmed is next, then current, previous. */
Test(import, reslots_by_age)
{
	int a = add_gateway(1, 1, false, 0), c = add_client();
	Gwcluster__SessionBatch batch = GWCLUSTER__SESSION_BATCH__INIT;
	Gwcluster__PeerSession ps, *psp = &ps;
	Gwcluster__Keypair k[4], *kpp[4];
	uint8_t keys[4][64];
	struct gwd_peer *pa;

	configure_gateways();
	pa = peer_of(a, c);
	gwcluster__peer_session__init(&ps);
	ps.public_key = (ProtobufCBinaryData){GW_KEY_LEN, nodes[c].pub};
	for (int i = 0; i < 4; i++) {
		gw_random_bytes(keys[i], 64);
		kpp[i] =
		    make_kp(&k[i], keys[i], 0x02000010 + (uint32_t)i, 1000 + 10000 * (uint64_t)i);
	}
	k[0].confirmed = false; /* the newest */
	ps.keypairs = kpp;
	ps.n_keypairs = 4;
	batch.peers = &psp;
	batch.n_peers = 1;
	cr_assert_eq(gwd_session_import(nodes[a].dev, &batch), 0);
	cr_assert_eq(pa->noise.next->local_index, 0x02000010);
	cr_assert_eq(pa->noise.current->local_index, 0x02000011);
	cr_assert_eq(pa->noise.previous->local_index, 0x02000012);
	cr_assert_null(gwd_index_lookup(&nodes[a].dev->index, 0x02000013, GWD_INDEX_KEYPAIR));
}

/* --- Takeover rekeys
 * ------------------------------------------------------------------------------- */

TestSuite(rekey, .init = setup, .fini = teardown);

/*
 * 20 sessions move at once; the new owner rekeys each only after its traffic
 * resumed, at most rate/10 per 100 ms: no handshake storm.
 */
Test(rekey, paced_after_traffic_resumes)
{
	enum { CLIENTS = 20, RATE = 10 };
	int a = add_gateway(1, 1, false, 0), b = add_gateway(2, 1, false, RATE);
	int cl[CLIENTS];
	uint64_t start;

	for (int i = 0; i < CLIENTS; i++)
		cl[i] = add_client();
	configure_gateways();
	vip_holder = a;
	gwd_cluster_claim_all(nodes[a].dev);
	for (int i = 0; i < CLIENTS; i++)
		talk(cl[i], 2);
	run_ms(200);
	kill_node(a);
	vip_holder = b;
	gwd_cluster_claim_all(nodes[b].dev);
	run_ms(2000);
	cr_assert_eq(ninit[b], 0, "rekeyed before traffic resumed");
	start = rig_fc.mono / GW_NSEC_PER_MSEC - t0_ms;
	/* Traffic resumes both ways (rekey::not_before_the_first_packet_sent). */
	for (int i = 0; i < CLIENTS; i++) {
		gateway_send(b, cl[i], 1);
		client_send(cl[i], 1);
	}
	run_ms(4000);
	cr_assert_eq(ninit[b], CLIENTS, "%zu rekeys", ninit[b]);
	cr_assert_eq(nodes[b].dev->cluster->stats.takeover_rekeys, CLIENTS);
	for (size_t i = 0; i < ninit[b]; i++) {
		cr_assert_geq(init_at[b][i], start);
		if (i)
			cr_assert_geq(init_at[b][i] - init_at[b][i - 1], 1000 / RATE - RIG_STEP_MS,
				      "rekeys %zu and %zu too close", i - 1, i);
	}
	/* Once each client sends on the new keys, the replicated ones are gone. */
	for (int i = 0; i < CLIENTS; i++) {
		struct gwd_peer *p = peer_of(b, cl[i]);

		client_send(cl[i], 2);
		cr_assert_not(p->noise.current->imported);
		cr_assert(!p->noise.previous || !p->noise.previous->imported,
			  "client %d: the replicated keypair is still held", i);
	}
	assert_no_nonce_reuse();
}

/*
 * The takeover rekey waits until this node has sent under the replicated
 * keypair: the new owner's first data packets must carry the receiver index
 * the client knows (the acceptance test checks it), even when its first
 * reply to the client comes more than a rekey tick after the client's first
 * packet (a loaded host, a LAN that answers late).
 */
Test(rekey, not_before_the_first_packet_sent)
{
	int a = add_gateway(1, 1, false, 0), b = add_gateway(2, 2, false, 100);
	int c = add_client();
	uint32_t idx;
	size_t mark;

	configure_gateways();
	vip_holder = a;
	gwd_cluster_claim_all(nodes[a].dev);
	talk(c, 3);
	run_ms(200);
	idx = data_log[ndata - 1].idx;
	kill_node(a);
	vip_holder = b;
	gwd_cluster_claim_all(nodes[b].dev);
	mark = ndata;
	client_send(c, 1);
	run_ms(500); /* nothing to send to the client for a while */
	cr_assert_eq(ninit[b], 0, "rekeyed before sending anything under the replicated keypair");
	gateway_send(b, c, 2);
	cr_assert_gt(ndata, mark);
	cr_assert_eq(data_log[mark].idx, idx, "B's first packet is not on the replicated keypair");
	/* Then the rekey comes, once traffic went both ways. */
	client_send(c, 3);
	run_ms(500);
	cr_assert_eq(ninit[b], 1);
	cr_assert_eq(nodes[b].dev->cluster->stats.takeover_rekeys, 1);
	assert_no_nonce_reuse();
}

/*
 * A node made master before its imports completed (keepalived forced it,
 * say): the replicated keypair arrives after the claim. The next packet to
 * the client goes out on it (no handshake), and its takeover rekey is
 * planned all the same.
 */
Test(rekey, claim_before_the_import)
{
	int a = add_gateway(1, 1, false, 0), b = add_gateway(2, 2, false, 100);
	int c = add_client();
	uint8_t *snap;
	size_t len, mark;
	uint32_t idx;

	configure_gateways();
	relay_on = false; /* B hears nothing of A */
	vip_holder = a;
	gwd_cluster_claim_all(nodes[a].dev);
	talk(c, 3);
	idx = data_log[ndata - 1].idx;
	relay_on = true;
	snap = snapshot_of(a, &len); /* what syncd will hand B, later */
	kill_node(a);
	vip_holder = b;
	gwd_cluster_claim_all(nodes[b].dev);
	cr_assert_null(peer_of(b, c)->noise.current);
	import_bytes(b, snap, len);
	gw_wipe(snap, len);
	free(snap);
	cr_assert(gwd_peer_may_send(peer_of(b, c)));
	mark = ndata;
	gateway_send(b, c, 1);
	cr_assert_gt(ndata, mark);
	cr_assert_eq(data_log[mark].idx, idx, "B's first packet is not on the replicated keypair");
	cr_assert_eq(ninit[b], 0);
	client_send(c, 2);
	run_ms(300);
	cr_assert_eq(nodes[b].dev->cluster->stats.takeover_rekeys, 1, "no takeover rekey");
	assert_no_nonce_reuse();
}

/* A peer that only sends: the rekey follows the new owner's passive keepalive. */
Test(rekey, one_way_traffic)
{
	int a = add_gateway(1, 1, false, 0), b = add_gateway(2, 2, false, 100);
	int c = add_client();
	uint64_t t;

	configure_gateways();
	vip_holder = a;
	gwd_cluster_claim_all(nodes[a].dev);
	talk(c, 3);
	run_ms(200);
	kill_node(a);
	vip_holder = b;
	gwd_cluster_claim_all(nodes[b].dev);
	t = rig_fc.mono / GW_NSEC_PER_MSEC - t0_ms;
	for (int k = 0; k < 30 && !ninit[b]; k++) {
		client_send(c, (uint32_t)k);
		run_ms(1000);
	}
	cr_assert_eq(ninit[b], 1, "no takeover rekey for a peer that only sends");
	cr_assert_geq(nodes[b].dev->stats[GWD_STAT_KEEPALIVES_SENT], 1);
	cr_assert_geq(init_at[b][0] - t, (uint64_t)GWD_KEEPALIVE_TIMEOUT * 1000);
	cr_assert_leq(init_at[b][0] - t, (uint64_t)(GWD_KEEPALIVE_TIMEOUT + 2) * 1000);
	assert_no_nonce_reuse();
}

/* --- Files: the boot counter and the cluster secret
 * ----------------------------------------------- */

TestSuite(files, .init = setup, .fini = teardown);

static void write_file(const char *path, const char *s)
{
	FILE *f = fopen(path, "w");

	cr_assert(f);
	fputs(s, f);
	fclose(f);
}

Test(files, incarnation_counter)
{
	char root[] = "/tmp/gwd-test-inc-XXXXXX", dir[256], path[300], buf[64];
	uint64_t boot = 0;
	int fd, fd2 = -1;
	struct stat st;
	FILE *f;
	static const char *const bad[] = {"x\n", "", "12abc\n", "18446744073709551615\n", "-3\n"};

	cr_assert(mkdtemp(root));
	snprintf(dir, sizeof(dir), "%s/a/wg0", root);
	cr_assert_eq(gwd_cluster_incarnation_next(dir, &boot, &fd), 0);
	cr_assert_eq(boot, 1);
	cr_assert_eq(gwd_cluster_incarnation_next(dir, &boot, &fd2), -EBUSY, "not locked");
	close(fd);
	for (uint64_t k = 2; k <= 5; k++) {
		cr_assert_eq(gwd_cluster_incarnation_next(dir, &boot, &fd), 0);
		cr_assert_eq(boot, k);
		close(fd);
	}
	snprintf(path, sizeof(path), "%s/incarnation", dir);
	f = fopen(path, "r");
	cr_assert(f);
	cr_assert(fgets(buf, sizeof(buf), f));
	fclose(f);
	cr_assert_str_eq(buf, "5\n");
	cr_assert_eq(stat(path, &st), 0);
	cr_assert_eq(st.st_mode & 0777, 0600);
	cr_assert_eq(stat(dir, &st), 0);
	cr_assert_eq(st.st_mode & 0777, 0700);
	snprintf(path, sizeof(path), "%s/incarnation.tmp", dir);
	cr_assert_neq(access(path, F_OK), 0, "temporary file left behind");
	snprintf(path, sizeof(path), "%s/incarnation", dir);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		write_file(path, bad[i]);
		cr_assert_eq(gwd_cluster_incarnation_next(dir, &boot, &fd), -EBADMSG, "'%s'",
			     bad[i]);
	}
	write_file(path, "4096\n");
	cr_assert_eq(gwd_cluster_incarnation_next(dir, &boot, &fd), 0);
	cr_assert_eq(boot, 4097);
	close(fd);
	unlink(path);
	snprintf(path, sizeof(path), "%s/lock", dir);
	unlink(path);
	rmdir(dir);
	snprintf(path, sizeof(path), "%s/a", root);
	rmdir(path);
	rmdir(root);
}

Test(files, cluster_secret)
{
	char root[] = "/tmp/gwd-test-secret-XXXXXX", path[300];
	uint8_t key[GW_KEY_LEN], got[GW_HASH_LEN];
	char b64[GW_KEY_B64_LEN + 2], hx[GW_KEY_HEX_LEN + 2];

	cr_assert(mkdtemp(root));
	snprintf(path, sizeof(path), "%s/secret", root);
	for (int i = 0; i < GW_KEY_LEN; i++)
		key[i] = (uint8_t)(i * 7 + 1);
	gw_key_to_base64(b64, key);
	strcat(b64, "\n");
	write_file(path, b64);
	cr_assert_eq(gwd_cluster_read_secret(path, got), 0);
	cr_assert_arr_eq(got, key, GW_KEY_LEN);
	gw_key_to_hex(hx, key);
	write_file(path, hx);
	memset(got, 0, sizeof(got));
	cr_assert_eq(gwd_cluster_read_secret(path, got), 0);
	cr_assert_arr_eq(got, key, GW_KEY_LEN);
	write_file(path, "not a key\n");
	cr_assert_eq(gwd_cluster_read_secret(path, got), -EBADMSG);
	unlink(path);
	cr_assert_eq(gwd_cluster_read_secret(path, got), -ENOENT);
	rmdir(root);
}

/* --- stats=1
 * --------------------------------------------------------------------------------------- */

TestSuite(stats, .init = setup, .fini = teardown);

static char *stats_of(int i)
{
	struct gwd_uapi_buf b;
	char *s;

	gwd_uapi_buf_init(&b, 1 << 20);
	cr_assert_eq(gwd_uapi_stats(nodes[i].dev, &b), 0);
	s = strndup(b.data ? b.data : "", b.len);
	gwd_uapi_buf_free(&b);
	return s;
}

Test(stats, cluster_lines_only_in_a_cluster)
{
	int a = add_gateway(1, 33, false, 0), b = add_gateway(2, 1, false, 0);
	int c = add_client();
	char *sa, *sb, *sc, want[128];

	configure_gateways();
	vip_holder = a;
	gwd_cluster_claim_all(nodes[a].dev);
	talk(c, 3);
	run_ms(200);
	sa = stats_of(a);
	sb = stats_of(b);
	sc = stats_of(c);
	cr_assert(strstr(sa, "node_id=1\nincarnation=33\nboot=33\n"), "%s", sa);
	cr_assert(strstr(sa, "peers_owned=1\nsessions_owned=1\nsessions_standby=0\n"));
	cr_assert(strstr(sa, "owner=1\nowner_epoch=1\nowned=1\nstandby=0\n"));
	cr_assert(strstr(sa, "send_epoch=0\n"));
	snprintf(want, sizeof(want), "region_headroom=%llu\n",
		 (unsigned long long)(GWD_REGION_EPOCH0_END -
				      peer_of(a, c)->noise.current->sending_counter));
	cr_assert(strstr(sa, want), "%s", want);
	cr_assert(strstr(sb, "sessions_owned=0\nsessions_standby=1\n"));
	cr_assert(strstr(sb, "owner=1\nowner_epoch=1\nowned=0\nstandby=1\nkeypair_imported=1\n"));
	cr_assert(strstr(sb, "region_headroom=0\n"));
	cr_assert_null(strstr(sb, "send_epoch="));
	/* A standalone gwd says nothing about clusters. */
	cr_assert_null(strstr(sc, "node_id="));
	cr_assert_null(strstr(sc, "owner"));
	cr_assert(strncmp(sc, "peers=1\nunder_load=0\nrx_packets=", 32) == 0, "%s", sc);
	free(sa);
	free(sb);
	free(sc);
}

/* --- Enabling
 * --------------------------------------------------------------------------------------- */

TestSuite(enable, .init = setup, .fini = teardown);

Test(enable, indexes_cookies_and_refusals)
{
	uint8_t secret[GW_HASH_LEN];
	struct gwd_cluster_config cc = {.node_id = 9, .boot = 1, .cookie_secret = secret};
	int c = add_client(), a;
	uint32_t idx;

	memset(secret, 0x5a, sizeof(secret));
	/* A device with peers cannot become a cluster node; node id 0 is no node. */
	cr_assert_eq(gwd_cluster_enable(nodes[c].dev, &cc), -EBUSY);
	cc.node_id = 0;
	a = nnodes++;
	new_device(a);
	cr_assert_eq(gwd_cluster_enable(nodes[a].dev, &cc), -EINVAL);
	cc.node_id = 9;
	cr_assert_eq(gwd_cluster_enable(nodes[a].dev, &cc), 0);
	cr_assert_eq(gwd_cluster_enable(nodes[a].dev, &cc), -EBUSY);
	cr_assert(nodes[a].dev->cookie.cluster);
	for (int i = 0; i < 100; i++) {
		cr_assert_eq(gwd_index_alloc(&nodes[a].dev->index, GWD_INDEX_HANDSHAKE, NULL, &idx),
			     0);
		cr_assert_eq(idx >> 24, 9);
		gwd_index_free(&nodes[a].dev->index, idx);
	}
	/* The standalone device is untouched. */
	cr_assert_null(nodes[c].dev->cluster);
	cr_assert_not(nodes[c].dev->cookie.cluster);
}

/* --- Owned-peer routes (routes.h) ------------------------------------------------------ */

/*
 * The routes go through lo of a network namespace of this test's own
 * (criterion runs each test in its own process), one table per gateway, and
 * are read back with ip(8).
 */
static void enter_netns(void)
{
	struct gw_nl *nl;

	if (unshare(CLONE_NEWNET)) {
		if (errno == EPERM)
			cr_skip_test("unshare(CLONE_NEWNET) needs root (CAP_SYS_ADMIN); skipped");
		cr_assert_fail("unshare(CLONE_NEWNET): %s", strerror(errno));
	}
	cr_assert_eq(gw_nl_open(&nl), 0);
	cr_assert_eq(gw_nl_link_set_up(nl, 1, true), 0); /* lo */
	gw_nl_close(nl);
}

/* The destinations in routing table t, sorted, space-separated ("" if none). */
static char *table_routes(unsigned t)
{
	static char out[512];
	char cmd[128], line[128];
	size_t len = 0;
	FILE *f;

	snprintf(cmd, sizeof(cmd),
		 "ip -4 route show table %u 2>/dev/null | awk '{ print $1 }' | sort", t);
	f = popen(cmd, "r");
	cr_assert_not_null(f);
	out[0] = '\0';
	while (fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = '\0';
		len += (size_t)snprintf(out + len, sizeof(out) - len, "%s%s", len ? " " : "", line);
		cr_assert_lt(len, sizeof(out));
	}
	cr_assert_eq(pclose(f), 0, "%s failed", cmd);
	return out;
}

static void enable_routes(int g, uint32_t table)
{
	cr_assert_eq(gwd_routes_enable(nodes[g].dev, table), 0);
	cr_assert_eq(gwd_routes_enable(nodes[g].dev, table), -EBUSY);
	cr_assert_eq(gwd_routes_set_ifindex(nodes[g].dev, 1), 0);
}

/*
 * Anycast return routing: the node that claims a peer gets a route to its
 * allowed IPs, the node that loses it (an import of the other's claim) loses
 * the route; allowed-IP changes and the peer's removal follow; a node that
 * owns nothing has no routes.
 */
Test(ownership, owned_routes_follow_ownership)
{
	int a = add_gateway(1, 1, true, 0), b = add_gateway(2, 1, true, 0);
	int c = add_client(), d = add_client();
	char ip_c[INET_ADDRSTRLEN], ip_d[INET_ADDRSTRLEN], want[64];

	enter_netns();
	enable_routes(a, 100);
	enable_routes(b, 101);
	configure_gateways();
	inet_ntop(AF_INET, &nodes[c].inner, ip_c, sizeof(ip_c));
	inet_ntop(AF_INET, &nodes[d].inner, ip_d, sizeof(ip_d));
	run_ms(20); /* the import, then the routes on the next turn */
	cr_assert_str_empty(table_routes(100), "a node that owns nothing routes nothing");
	cr_assert_str_empty(table_routes(101));

	vip_holder = a;
	talk(c, 2);
	talk(d, 2);
	run_ms(20);
	snprintf(want, sizeof(want), "%s %s", ip_c, ip_d);
	cr_assert_str_eq(table_routes(100), want);
	cr_assert_str_empty(table_routes(101));
	cr_assert_eq(nodes[a].dev->cluster->stats.owned_routes, 2);

	/* c's flow moves to B (ECMP after a failure): B claims, A loses it. */
	run_ms(1200);
	vip_holder = b;
	client_send(c, 1);
	run_ms(20);
	cr_assert(gwd_peer_may_send(peer_of(b, c)));
	cr_assert_not(gwd_peer_may_send(peer_of(a, c)));
	cr_assert_str_eq(table_routes(100), ip_d);
	cr_assert_str_eq(table_routes(101), ip_c);
	cr_assert_eq(nodes[a].dev->cluster->stats.owned_routes, 1);
	cr_assert_eq(nodes[b].dev->cluster->stats.owned_routes, 1);

	/* New allowed IPs of an owned peer: the routes follow. */
	rig_dev_set_ok(nodes[b].dev,
		       "public_key=%s\nreplace_allowed_ips=true\nallowed_ip=198.18.5.0/24\n"
		       "allowed_ip=198.18.6.7/32\n",
		       rig_hex(nodes[c].pub));
	run_ms(20);
	cr_assert_str_eq(table_routes(101), "198.18.5.0/24 198.18.6.7");

	/* The peer is removed: so are its routes. */
	rig_dev_set_ok(nodes[b].dev, "public_key=%s\nremove=true\n", rig_hex(nodes[c].pub));
	run_ms(20);
	cr_assert_str_empty(table_routes(101));
	cr_assert_eq(nodes[b].dev->cluster->stats.owned_routes, 0);
	cr_assert_eq(nodes[a].dev->cluster->stats.route_errors, 0);
	cr_assert_eq(nodes[b].dev->cluster->stats.route_errors, 0);

	/* A released peer's route goes too. */
	gwd_cluster_release_peer(peer_of(a, d));
	run_ms(20);
	cr_assert_str_empty(table_routes(100));
	assert_no_nonce_reuse();
}
