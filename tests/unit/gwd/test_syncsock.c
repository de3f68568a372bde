/* SPDX-License-Identifier: MIT */
/*
 * The local session socket over a real ZeroMQ ipc socket, with a DEALER
 * playing syncd: hello, snapshot, role commands with results, imports,
 * dumps, and refused garbage.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "cluster.h"
#include "device.h"
#include "gw/crypto.h"
#include "gw/key.h"
#include "gw/log.h"
#include "gwcluster.pb-c.h"
#include "peer.h"
#include "session.h"
#include "syncsock.h"
#include "uapi.h"

enum { NPEERS = 3, WAIT_MS = 3000 };

static struct gw_loop *loop;
static struct gwd_device *dev;
static struct gwd_syncsock *sock;
static char dir[64], path[128];
static void *zctx, *dealer;
static uint8_t peer_pub[NPEERS][GW_KEY_LEN];

static int noop_send(void *arg, const union gw_sockaddr *to, struct gwd_src *src, const void *buf,
		     size_t len)
{
	(void)arg, (void)to, (void)src, (void)buf, (void)len;
	cr_assert_fail("the device sent a datagram");
	return 0;
}

static int noop_deliver(void *arg, const void *pkt, size_t len)
{
	(void)arg, (void)pkt, (void)len;
	return 0;
}

static int noop_bind(void *arg, uint16_t port, uint32_t fwmark, uint16_t *bound)
{
	(void)arg, (void)fwmark;
	*bound = port;
	return 0;
}

static void noop_finish(void *arg, bool commit)
{
	(void)arg, (void)commit;
}

static int noop_fwmark(void *arg, uint32_t fwmark)
{
	(void)arg, (void)fwmark;
	return 0;
}

static const struct gwd_net_ops ops = {
    .send = noop_send,
    .deliver = noop_deliver,
    .bind_prepare = noop_bind,
    .bind_finish = noop_finish,
    .set_fwmark = noop_fwmark,
};

static void set(const char *body)
{
	struct gwd_uapi_set s;

	cr_assert_eq(gwd_uapi_set_parse(&s, body, strlen(body), NULL), 0);
	cr_assert_eq(gwd_uapi_apply(dev, &s), 0);
	gwd_uapi_set_free(&s);
}

static void setup(void)
{
	struct gwd_device_config cfg = {.net = &ops, .under_load_threshold = 1000};
	struct gwd_cluster_config cc = {.node_id = 7, .boot = 4100};
	uint8_t priv[GW_KEY_LEN];
	char body[512], hex[GW_KEY_HEX_LEN + 1];
	int linger = 0;

	cr_assert_eq(gw_crypto_init(), 0);
	gw_log_init("test", GW_LOG_ERR, GW_LOG_STDERR);
	cr_assert_eq(gw_loop_new(&loop, NULL), 0);
	cfg.loop = loop;
	cr_assert_eq(gwd_device_new(&dev, &cfg), 0);
	cr_assert_eq(gwd_cluster_enable(dev, &cc), 0);
	gw_x25519_generate(priv);
	gw_key_to_hex(hex, priv);
	snprintf(body, sizeof(body), "private_key=%s\n", hex);
	set(body);
	for (int i = 0; i < NPEERS; i++) {
		gw_random_bytes(peer_pub[i], GW_KEY_LEN);
		peer_pub[i][31] &= 0x7f;
		gw_key_to_hex(hex, peer_pub[i]);
		snprintf(body, sizeof(body), "public_key=%s\nallowed_ip=198.18.1.%d/32\n", hex,
			 i + 1);
		set(body);
	}
	snprintf(dir, sizeof(dir), "/tmp/gwd-test-sock-XXXXXX");
	cr_assert(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/wg0.sessions", dir);
	cr_assert_eq(gwd_syncsock_open(&sock, dev, path, "wg0"), 0);
	zctx = zmq_ctx_new();
	dealer = zmq_socket(zctx, ZMQ_DEALER);
	zmq_setsockopt(dealer, ZMQ_LINGER, &linger, sizeof(linger));
	snprintf(body, sizeof(body), "ipc://%s", path);
	cr_assert_eq(zmq_connect(dealer, body), 0);
}

static void teardown(void)
{
	zmq_close(dealer);
	zmq_ctx_term(zctx);
	gwd_syncsock_close(sock);
	cr_assert_neq(access(path, F_OK), 0, "socket file left behind");
	gwd_device_free(dev);
	gw_loop_free(loop);
	rmdir(dir);
}

static void send_msg(Gwcluster__LocalMessage *m)
{
	size_t len = gwcluster__local_message__get_packed_size(m);
	uint8_t *buf = malloc(len + 1);

	gwcluster__local_message__pack(m, buf);
	cr_assert_eq(zmq_send(dealer, buf, len, 0), (int)len);
	free(buf);
}

static void send_raw(const void *buf, size_t len)
{
	cr_assert_eq(zmq_send(dealer, buf, len, 0), (int)len);
}

/* The next message from gwd, running gwd's loop meanwhile; NULL after WAIT_MS. */
static Gwcluster__LocalMessage *next_msg(void)
{
	uint8_t buf[1 << 16];

	for (int t = 0; t < WAIT_MS / 5; t++) {
		int n = zmq_recv(dealer, buf, sizeof(buf), ZMQ_DONTWAIT);

		if (n >= 0) {
			cr_assert_lt((size_t)n, sizeof(buf));
			return gwcluster__local_message__unpack(NULL, (size_t)n, buf);
		}
		gw_loop_run_once(loop, 5);
	}
	return NULL;
}

/* Reads messages until one with this body; counts the export batches on the way. */
static Gwcluster__LocalMessage *wait_for(Gwcluster__LocalMessage__BodyCase body, size_t *exports,
					 size_t *peers)
{
	Gwcluster__LocalMessage *m;

	while ((m = next_msg())) {
		cr_assert_eq(m->version, 1);
		if (m->body_case == body)
			return m;
		if (m->body_case == GWCLUSTER__LOCAL_MESSAGE__BODY_EXPORT_SESSIONS) {
			if (exports)
				(*exports)++;
			if (peers)
				*peers += m->export_sessions->n_peers;
		}
		gwcluster__local_message__free_unpacked(m, NULL);
	}
	cr_assert_fail("no message with body %d", body);
	return NULL;
}

static void request(Gwcluster__LocalMessage *m, uint64_t id)
{
	m->version = 1;
	m->has_id = true;
	m->id = id;
	send_msg(m);
}

static int32_t result_of(uint64_t id)
{
	Gwcluster__LocalMessage *m = wait_for(GWCLUSTER__LOCAL_MESSAGE__BODY_RESULT, NULL, NULL);
	int32_t err;

	cr_assert(m->has_id);
	cr_assert_eq(m->id, id);
	err = m->result->error;
	gwcluster__local_message__free_unpacked(m, NULL);
	return err;
}

static void hello(void)
{
	Gwcluster__LocalMessage m = GWCLUSTER__LOCAL_MESSAGE__INIT, *r;
	size_t exports = 0, peers = 0;

	m.body_case = GWCLUSTER__LOCAL_MESSAGE__BODY_HELLO;
	m.hello = true;
	request(&m, 7);
	r = wait_for(GWCLUSTER__LOCAL_MESSAGE__BODY_GWD_HELLO, NULL, NULL);
	cr_assert_eq(r->id, 7);
	cr_assert_eq(r->gwd_hello->node_id, 7);
	cr_assert_eq(r->gwd_hello->incarnation, 4);
	cr_assert_eq(r->gwd_hello->boot, 4100);
	cr_assert_str_eq(r->gwd_hello->interface, "wg0");
	gwcluster__local_message__free_unpacked(r, NULL);
	r = wait_for(GWCLUSTER__LOCAL_MESSAGE__BODY_SNAPSHOT_DONE, &exports, &peers);
	cr_assert_eq(r->snapshot_done, NPEERS);
	cr_assert_eq(peers, NPEERS);
	cr_assert_geq(exports, 1);
	gwcluster__local_message__free_unpacked(r, NULL);
}

TestSuite(syncsock, .init = setup, .fini = teardown);

Test(syncsock, socket_is_private)
{
	struct stat st;

	cr_assert_eq(stat(path, &st), 0);
	cr_assert(S_ISSOCK(st.st_mode));
	cr_assert_eq(st.st_mode & 0777, 0600);
}

Test(syncsock, hello_snapshot_then_deltas)
{
	Gwcluster__LocalMessage m = GWCLUSTER__LOCAL_MESSAGE__INIT, *r;
	Gwcluster__RoleCommand role = GWCLUSTER__ROLE_COMMAND__INIT;
	size_t peers = 0;

	hello();
	cr_assert(dev->cluster->sink);
	role.action = GWCLUSTER__ROLE_COMMAND__ACTION__CLAIM_ALL;
	m.body_case = GWCLUSTER__LOCAL_MESSAGE__BODY_ROLE;
	m.role = &role;
	request(&m, 8);
	cr_assert_eq(result_of(8), 0);
	cr_assert(dev->cluster->master);
	/* The claims are exported: every peer, owned by node 7 at epoch 1. */
	while (peers < NPEERS) {
		r = wait_for(GWCLUSTER__LOCAL_MESSAGE__BODY_EXPORT_SESSIONS, NULL, NULL);
		for (size_t i = 0; i < r->export_sessions->n_peers; i++) {
			cr_assert_eq(r->export_sessions->peers[i]->owner, 7);
			cr_assert_eq(r->export_sessions->peers[i]->owner_epoch, 1);
		}
		peers += r->export_sessions->n_peers;
		gwcluster__local_message__free_unpacked(r, NULL);
	}
	cr_assert_eq(peers, NPEERS);
	/* The heartbeat: gwd_hello without an id, about every second. */
	r = wait_for(GWCLUSTER__LOCAL_MESSAGE__BODY_GWD_HELLO, NULL, NULL);
	cr_assert_not(r->has_id);
	cr_assert_eq(r->gwd_hello->boot, 4100);
	cr_assert(r->gwd_hello->master);
	gwcluster__local_message__free_unpacked(r, NULL);
}

Test(syncsock, import_and_role_results)
{
	Gwcluster__LocalMessage m = GWCLUSTER__LOCAL_MESSAGE__INIT;
	Gwcluster__RoleCommand role = GWCLUSTER__ROLE_COMMAND__INIT;
	Gwcluster__SessionBatch batch = GWCLUSTER__SESSION_BATCH__INIT;
	Gwcluster__PeerSession ps = GWCLUSTER__PEER_SESSION__INIT, *psp = &ps;
	Gwcluster__Keypair k = GWCLUSTER__KEYPAIR__INIT, *kp = &k;
	ProtobufCBinaryData unknown;
	uint8_t keys[64], nobody[GW_KEY_LEN] = {1};
	struct gwd_peer *p;

	gw_random_bytes(keys, sizeof(keys));
	k.local_index = 0x03abcdef;
	k.remote_index = 0x1111;
	k.sending_key = (ProtobufCBinaryData){32, keys};
	k.receiving_key = (ProtobufCBinaryData){32, keys + 32};
	k.age_ms = 500;
	k.confirmed = true;
	k.rx_high_water = 10;
	ps.public_key = (ProtobufCBinaryData){32, peer_pub[1]};
	ps.keypairs = &kp;
	ps.n_keypairs = 1;
	ps.has_owner = ps.has_owner_epoch = true;
	ps.owner = 3;
	ps.owner_epoch = 4;
	batch.peers = &psp;
	batch.n_peers = 1;
	m.body_case = GWCLUSTER__LOCAL_MESSAGE__BODY_IMPORT_SESSIONS;
	m.import_sessions = &batch;
	request(&m, 20);
	cr_assert_eq(result_of(20), 0);
	p = gwd_peer_lookup(dev, peer_pub[1]);
	cr_assert(p->noise.current);
	cr_assert(p->noise.current->imported);
	cr_assert_eq(p->cl.owner, 3);
	cr_assert_eq(p->cl.owner_epoch, 4);

	/* Claim one peer by key; an unknown key is reported. */
	unknown = (ProtobufCBinaryData){32, nobody};
	role.action = GWCLUSTER__ROLE_COMMAND__ACTION__CLAIM;
	role.public_keys = &unknown;
	role.n_public_keys = 1;
	m.body_case = GWCLUSTER__LOCAL_MESSAGE__BODY_ROLE;
	m.role = &role;
	request(&m, 21);
	cr_assert_eq(result_of(21), -ENOENT);
	ps.public_key.data = peer_pub[1];
	role.public_keys = &ps.public_key;
	request(&m, 22);
	cr_assert_eq(result_of(22), 0);
	cr_assert_eq(p->cl.owner, 7);
	cr_assert_eq(p->cl.owner_epoch, 5);
	/* Anycast mode switch. */
	role.action = GWCLUSTER__ROLE_COMMAND__ACTION__SET_MODE;
	role.has_claim_on_receive = true;
	role.claim_on_receive = true;
	request(&m, 23);
	cr_assert_eq(result_of(23), 0);
	cr_assert(dev->cluster->claim_on_receive);
	/* A dump without a subscriber says so. */
	m.body_case = GWCLUSTER__LOCAL_MESSAGE__BODY_DUMP;
	m.dump = true;
	request(&m, 24);
	cr_assert_eq(result_of(24), -ENOTCONN);
}

Test(syncsock, refuses_garbage)
{
	Gwcluster__LocalMessage m = GWCLUSTER__LOCAL_MESSAGE__INIT;
	static const uint8_t junk[] = {0xff, 0xff, 0xff, 0x01, 0x02};

	send_raw(junk, sizeof(junk));
	m.body_case = GWCLUSTER__LOCAL_MESSAGE__BODY_HELLO;
	m.hello = true;
	m.version = 2;
	send_msg(&m);
	/* gwd's own messages are not requests. */
	m.version = 1;
	m.has_id = true;
	m.id = 5;
	m.body_case = GWCLUSTER__LOCAL_MESSAGE__BODY_SNAPSHOT_DONE;
	m.snapshot_done = 1;
	send_msg(&m);
	cr_assert_eq(result_of(5), -EINVAL);
	cr_assert_eq(gwd_syncsock_rejected(sock), 3);
	cr_assert_null(dev->cluster->sink, "a refused hello subscribed");
	/* Still serving. */
	hello();
}

Test(syncsock, dump_resends_the_snapshot)
{
	Gwcluster__LocalMessage m = GWCLUSTER__LOCAL_MESSAGE__INIT, *r;
	size_t peers = 0;

	hello();
	m.body_case = GWCLUSTER__LOCAL_MESSAGE__BODY_DUMP;
	m.dump = true;
	request(&m, 30);
	cr_assert_eq(result_of(30), 0);
	r = wait_for(GWCLUSTER__LOCAL_MESSAGE__BODY_SNAPSHOT_DONE, NULL, &peers);
	cr_assert_eq(r->snapshot_done, NPEERS);
	cr_assert_eq(peers, NPEERS);
	gwcluster__local_message__free_unpacked(r, NULL);
}
