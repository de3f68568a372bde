// SPDX-License-Identifier: MIT
/*
 * The control server against a real replica and store (one-node cluster):
 * every operation through syncd_control_handle() as packed bytes, a table
 * of invalid peers, the declarative apply with its diff, and the ipc socket
 * itself (permissions, stale files, framing) with a REQ client.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <zmq.h>

#include "control.h"
#include "gw/crypto.h"
#include "gw/log.h"

static char dir[64];
static struct syncd_store *store;
static struct syncd_replica *rep;
static struct syncd_config *cfg;
static struct gw_fake_clock clk;
static int extra_calls;

static int io_nop(void *arg, Gwcluster__Envelope *env)
{
	(void)arg;
	(void)env;
	return 0;
}

static int io_nop_to(void *arg, uint8_t to, Gwcluster__Envelope *env)
{
	(void)arg;
	(void)to;
	(void)env;
	return 0;
}

static void status_extra(void *arg, Gwcluster__ClusterStatus *st)
{
	(void)arg;
	extra_calls++;
	st->has_gwd_connected = true;
	st->gwd_connected = true;
	st->has_rejected_messages = true;
	st->rejected_messages = 42;
}

/* A replica of node 1 in a cluster of n members (2..n never answer). */
static void open_replica(unsigned n)
{
	static const uint8_t ids[] = {1, 2, 3};
	struct syncd_replica_io io = {.publish = io_nop, .request = io_nop_to, .reply = io_nop_to};
	struct syncd_replica_config rc = {
	    .node_id = 1,
	    .members = ids,
	    .n_members = n,
	    .heartbeat_ms = 100,
	    .peer_dead_ms = 1000,
	    .log_retain = 100,
	    .version = "0.1.0",
	};

	cr_assert_eq(syncd_store_open(&store, dir), 0);
	cr_assert_eq(syncd_replica_open(&rep, &rc, store, &clk.clock, &io), 0);
	syncd_replica_tick(rep);
}

static void setup(void)
{
	gw_log_init("test", GW_LOG_ERR, GW_LOG_STDERR);
	cr_assert_eq(gw_crypto_init(), 0);
	snprintf(dir, sizeof(dir), "/dev/shm/syncd-control-XXXXXX");
	cr_assert(mkdtemp(dir));
	gw_fake_clock_init(&clk, GW_NSEC_PER_SEC, 1700000000);
	cfg = calloc(1, sizeof(*cfg));
	strcpy(cfg->cluster, "lab");
	cfg->node_id = 1;
	cfg->n_members = 2;
	cfg->members[0] = (struct syncd_member){.node_id = 1, .host = "203.0.113.1", .port = 7400};
	cfg->members[1] =
	    (struct syncd_member){.node_id = 2, .host = "2001:db8:3::2", .port = 7400};
	open_replica(1);
}

static void teardown(void)
{
	char cmd[128];

	syncd_replica_close(rep);
	syncd_store_close(store);
	free(cfg);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	cr_assert_eq(system(cmd), 0);
}

TestSuite(control, .init = setup, .fini = teardown);

static const struct syncd_control_ctx *ctx(void)
{
	static struct syncd_control_ctx c;

	c = (struct syncd_control_ctx){rep, cfg, status_extra, NULL, NULL};
	return &c;
}

static Gwcluster__CtlResponse *call_raw(const uint8_t *buf, size_t len)
{
	Gwcluster__CtlResponse *r;
	uint8_t *out;
	size_t outlen;

	cr_assert_eq(syncd_control_handle(ctx(), buf, len, &out, &outlen), 0);
	r = gwcluster__ctl_response__unpack(NULL, outlen, out);
	cr_assert(r, "the answer does not unpack");
	free(out);
	return r;
}

static Gwcluster__CtlResponse *call(Gwcluster__CtlRequest *q)
{
	size_t len = gwcluster__ctl_request__get_packed_size(q);
	uint8_t *buf = malloc(len + 1);
	Gwcluster__CtlResponse *r;

	gwcluster__ctl_request__pack(q, buf);
	r = call_raw(buf, len);
	free(buf);
	return r;
}

static void done(Gwcluster__CtlResponse *r)
{
	gwcluster__ctl_response__free_unpacked(r, NULL);
}

static void key_of(uint8_t key[32], unsigned n)
{
	memset(key, 0, 32);
	key[0] = 0x60;
	key[31] = (uint8_t)n;
}

struct peer_spec {
	unsigned key;
	const char *ips[4];
	const char *endpoint;
	unsigned keepalive;
	const char *name;
};

/* Builds a PeerConfig in static storage from spec. */
static Gwcluster__PeerConfig *peer(const struct peer_spec *s, Gwcluster__PeerConfig *pc,
				   uint8_t key[32], char **ips, Gwcluster__PeerMeta *meta)
{
	size_t n = 0;

	gwcluster__peer_config__init(pc);
	key_of(key, s->key);
	pc->public_key.data = key;
	pc->public_key.len = 32;
	while (n < 4 && s->ips[n]) {
		ips[n] = (char *)s->ips[n];
		n++;
	}
	pc->allowed_ips = ips;
	pc->n_allowed_ips = n;
	pc->endpoint = (char *)s->endpoint;
	pc->has_persistent_keepalive = s->keepalive != 0;
	pc->persistent_keepalive = s->keepalive;
	if (s->name) {
		gwcluster__peer_meta__init(meta);
		meta->name = (char *)s->name;
		pc->meta = meta;
	}
	return pc;
}

static Gwcluster__CtlResponse *upsert_move(const struct peer_spec *s, bool move)
{
	Gwcluster__CtlRequest q = GWCLUSTER__CTL_REQUEST__INIT;
	Gwcluster__PeerConfig pc;
	Gwcluster__PeerMeta meta;
	uint8_t key[32];
	char *ips[4];

	q.version = 1;
	q.op_case = GWCLUSTER__CTL_REQUEST__OP_PEER_UPSERT;
	q.peer_upsert = peer(s, &pc, key, ips, &meta);
	q.has_move_allowed_ips = move;
	q.move_allowed_ips = move;
	return call(&q);
}

static Gwcluster__CtlResponse *upsert(const struct peer_spec *s)
{
	return upsert_move(s, false);
}

static Gwcluster__CtlResponse *simple(Gwcluster__CtlRequest__OpCase op, unsigned key)
{
	Gwcluster__CtlRequest q = GWCLUSTER__CTL_REQUEST__INIT;
	Gwcluster__PeerTombstone t = GWCLUSTER__PEER_TOMBSTONE__INIT;
	uint8_t k[32];

	key_of(k, key);
	q.version = 1;
	q.op_case = op;
	switch (op) {
	case GWCLUSTER__CTL_REQUEST__OP_PEER_REMOVE:
		t.public_key.data = k;
		t.public_key.len = 32;
		q.peer_remove = &t;
		break;
	case GWCLUSTER__CTL_REQUEST__OP_PEER_SHOW:
		q.peer_show.data = k;
		q.peer_show.len = 32;
		break;
	case GWCLUSTER__CTL_REQUEST__OP_PEER_LIST:
		q.peer_list = true;
		break;
	default:
		q.status = true;
	}
	return call(&q);
}

Test(control, upsert_canonicalizes_and_lists)
{
	static const struct peer_spec s = {
	    7,
	    {"2001:db8:f::5/64", "198.18.0.9/24", "198.18.0.2/32", "198.18.0.0/24"},
	    "[2001:DB8:1::7]:51820",
	    25,
	    "alice"};
	Gwcluster__CtlResponse *r = upsert(&s);

	cr_assert_eq(r->error, 0, "%s", r->message);
	cr_assert(strstr(r->message, "added"), "%s", r->message);
	done(r);
	cr_assert_eq(syncd_replica_own_seq(rep), 1);
	r = simple(GWCLUSTER__CTL_REQUEST__OP_PEER_LIST, 0);
	cr_assert_eq(r->error, 0);
	cr_assert_eq(r->n_peers, 1);
	Gwcluster__PeerConfig *p = r->peers[0]->peer;
	cr_assert_eq(p->n_allowed_ips, 3, "masked duplicates merged");
	cr_assert_str_eq(p->allowed_ips[0], "198.18.0.0/24");
	cr_assert_str_eq(p->allowed_ips[1], "198.18.0.2/32");
	cr_assert_str_eq(p->allowed_ips[2], "2001:db8:f::/64");
	cr_assert_str_eq(p->endpoint, "[2001:db8:1::7]:51820");
	cr_assert_eq(p->persistent_keepalive, 25);
	cr_assert_str_eq(p->meta->name, "alice");
	cr_assert_eq(r->peers[0]->writer, 1);
	cr_assert_gt(r->peers[0]->hlc, 0);
	done(r);
	/* The same again changes nothing; a different keepalive does. */
	r = upsert(&s);
	cr_assert_eq(r->error, 0);
	cr_assert_str_eq(r->message, "unchanged");
	done(r);
	cr_assert_eq(syncd_replica_own_seq(rep), 1);
	struct peer_spec s2 = s;
	s2.keepalive = 0;
	r = upsert(&s2);
	cr_assert_eq(r->error, 0);
	cr_assert(strstr(r->message, "updated"), "%s", r->message);
	done(r);
	cr_assert_eq(syncd_replica_own_seq(rep), 2);
	r = simple(GWCLUSTER__CTL_REQUEST__OP_PEER_SHOW, 7);
	cr_assert_eq(r->error, 0);
	cr_assert_eq(r->n_peers, 1);
	cr_assert(!r->peers[0]->peer->has_persistent_keepalive);
	done(r);
}

struct bad_peer {
	struct peer_spec s;
	int key_len, psk_len;
	bool zero_key;
	const char *tag;
	const char *msg;
};

static const struct bad_peer bad_peers[] = {
    {{1, {NULL}, NULL, 0, NULL}, 31, 0, false, NULL, "public key: must be 32 bytes"},
    {{1, {NULL}, NULL, 0, NULL}, 32, 16, false, NULL, "preshared key: must be 32 bytes"},
    {{1, {NULL}, NULL, 0, NULL}, 32, 0, true, NULL, "must not be all zeros"},
    {{1, {"198.18.0.300/32"}, NULL, 0, NULL}, 32, 0, false, NULL, "allowed IP \"198.18.0.300/32\""},
    {{1, {"198.18.0.1/33"}, NULL, 0, NULL}, 32, 0, false, NULL, "allowed IP"},
    {{1, {"198.18.0.1"}, NULL, 0, NULL}, 32, 0, false, NULL, "expected ADDRESS/CIDR"},
    {{1, {"gateway"}, NULL, 0, NULL}, 32, 0, false, NULL, "allowed IP"},
    {{1, {NULL}, "vpn.example:51820", 0, NULL}, 32, 0, false, NULL, "endpoint"},
    {{1, {NULL}, "[fe80::1%lo]:51820", 0, NULL}, 32, 0, false, NULL, "endpoint"},
    {{1, {NULL}, "192.0.2.1:70000", 0, NULL}, 32, 0, false, NULL, "endpoint"},
    {{1, {NULL}, NULL, 70000, NULL}, 32, 0, false, NULL, "persistent keepalive 70000"},
    {{1, {NULL}, NULL, 0, "line\nbreak"}, 32, 0, false, NULL, "name:"},
    {{1, {NULL}, NULL, 0, NULL}, 32, 0, false, "a,b", "tag \"a,b\""},
    {{1, {NULL}, NULL, 0, NULL}, 32, 0, false, "", "tag \"\""},
};

Test(control, invalid_peers_are_refused_with_a_reason)
{
	for (size_t i = 0; i < sizeof(bad_peers) / sizeof(bad_peers[0]); i++) {
		const struct bad_peer *b = &bad_peers[i];
		Gwcluster__CtlRequest q = GWCLUSTER__CTL_REQUEST__INIT;
		Gwcluster__PeerConfig pc;
		Gwcluster__PeerMeta meta = GWCLUSTER__PEER_META__INIT;
		Gwcluster__CtlResponse *r;
		uint8_t key[32], psk[32] = {1};
		char *ips[4], *tags[1] = {(char *)b->tag};

		q.version = 1;
		q.op_case = GWCLUSTER__CTL_REQUEST__OP_PEER_UPSERT;
		q.peer_upsert = peer(&b->s, &pc, key, ips, &meta);
		pc.public_key.len = (size_t)b->key_len;
		if (b->zero_key)
			memset(key, 0, sizeof(key));
		if (b->psk_len) {
			pc.has_preshared_key = true;
			pc.preshared_key.data = psk;
			pc.preshared_key.len = (size_t)b->psk_len;
		}
		if (b->tag) {
			meta.tags = tags;
			meta.n_tags = 1;
			pc.meta = &meta;
		}
		r = call(&q);
		cr_assert_eq(r->error, -EINVAL, "case %zu: %d %s", i, r->error, r->message);
		cr_assert(r->message && strstr(r->message, b->msg), "case %zu: \"%s\" lacks \"%s\"",
			  i, r->message, b->msg);
		done(r);
	}
	cr_assert_eq(syncd_replica_own_seq(rep), 0, "nothing was written");
}

Test(control, remove_and_show)
{
	static const struct peer_spec s = {3, {"198.18.0.3/32"}, NULL, 0, NULL};
	Gwcluster__CtlResponse *r;

	r = simple(GWCLUSTER__CTL_REQUEST__OP_PEER_REMOVE, 3);
	cr_assert_eq(r->error, -ENOENT);
	cr_assert(strstr(r->message, "no peer YAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAM="), "%s",
		  r->message);
	done(r);
	done(upsert(&s));
	r = simple(GWCLUSTER__CTL_REQUEST__OP_PEER_REMOVE, 3);
	cr_assert_eq(r->error, 0, "%s", r->message);
	done(r);
	r = simple(GWCLUSTER__CTL_REQUEST__OP_PEER_SHOW, 3);
	cr_assert_eq(r->error, -ENOENT);
	done(r);
	r = simple(GWCLUSTER__CTL_REQUEST__OP_PEER_REMOVE, 3);
	cr_assert_eq(r->error, -ENOENT, "a tombstone is no peer");
	done(r);
	r = simple(GWCLUSTER__CTL_REQUEST__OP_PEER_LIST, 0);
	cr_assert_eq(r->error, 0);
	cr_assert_eq(r->n_peers, 0);
	done(r);

	Gwcluster__CtlRequest q = GWCLUSTER__CTL_REQUEST__INIT;
	uint8_t k[5] = {0};
	q.version = 1;
	q.op_case = GWCLUSTER__CTL_REQUEST__OP_PEER_SHOW;
	q.peer_show.data = k;
	q.peer_show.len = 5;
	r = call(&q);
	cr_assert_eq(r->error, -EINVAL);
	done(r);
}

Test(control, status)
{
	Gwcluster__CtlResponse *r = simple(GWCLUSTER__CTL_REQUEST__OP_STATUS, 0);

	cr_assert_eq(r->error, 0);
	cr_assert(r->status);
	cr_assert_str_eq(r->status->cluster, "lab");
	cr_assert_eq(r->status->node_id, 1);
	cr_assert(r->status->synced);
	cr_assert_eq(r->status->peers, 0);
	cr_assert_eq(r->status->n_members, 1);
	cr_assert_str_eq(r->status->members[0]->address, "203.0.113.1:7400");
	cr_assert(r->status->members[0]->self);
	cr_assert_str_eq(r->status->members[0]->version, "0.1.0");
	cr_assert(r->status->gwd_connected);
	cr_assert_eq(r->status->rejected_messages, 42);
	cr_assert_eq(extra_calls, 1);
	done(r);
}

static Gwcluster__CtlResponse *apply(const struct peer_spec *specs, size_t n, bool dry_run)
{
	Gwcluster__CtlRequest q = GWCLUSTER__CTL_REQUEST__INIT;
	Gwcluster__ApplyRequest a = GWCLUSTER__APPLY_REQUEST__INIT;
	Gwcluster__PeerConfig pcs[8], *ptrs[8];
	Gwcluster__PeerMeta metas[8];
	uint8_t keys[8][32];
	char *ips[8][4];

	for (size_t i = 0; i < n; i++)
		ptrs[i] = peer(&specs[i], &pcs[i], keys[i], ips[i], &metas[i]);
	a.peers = ptrs;
	a.n_peers = n;
	a.dry_run = dry_run;
	q.version = 1;
	q.op_case = GWCLUSTER__CTL_REQUEST__OP_APPLY;
	q.apply = &a;
	return call(&q);
}

static bool has_key(const ProtobufCBinaryData *v, size_t n, unsigned key)
{
	uint8_t k[32];

	key_of(k, key);
	for (size_t i = 0; i < n; i++)
		if (v[i].len == 32 && !memcmp(v[i].data, k, 32))
			return true;
	return false;
}

Test(control, apply_is_declarative_atomic_and_has_a_dry_run)
{
	static const struct peer_spec before[] = {
	    {1, {"198.18.0.1/32"}, NULL, 0, NULL},
	    {2, {"198.18.0.2/32"}, NULL, 0, NULL},
	    {4, {"198.18.0.4/32"}, NULL, 0, NULL},
	};
	static const struct peer_spec after[] = {
	    {5, {"198.18.0.5/32"}, NULL, 0, NULL},
	    {2, {"198.18.0.22/32"}, NULL, 0, NULL},
	    {4, {"198.18.0.4/32"}, NULL, 0, NULL},
	};
	Gwcluster__CtlResponse *r;

	r = apply(before, 3, false);
	cr_assert_eq(r->error, 0, "%s", r->message);
	cr_assert_eq(r->diff->n_added, 3);
	done(r);
	cr_assert_eq(syncd_replica_own_seq(rep), 1, "one update for the whole set");

	r = apply(after, 3, true);
	cr_assert_eq(r->error, 0);
	cr_assert_eq(r->diff->n_added, 1);
	cr_assert_eq(r->diff->n_changed, 1);
	cr_assert_eq(r->diff->n_removed, 1);
	cr_assert(has_key(r->diff->added, 1, 5));
	cr_assert(has_key(r->diff->changed, 1, 2));
	cr_assert(has_key(r->diff->removed, 1, 1));
	cr_assert(strstr(r->message, "dry run"), "%s", r->message);
	done(r);
	cr_assert_eq(syncd_replica_own_seq(rep), 1, "a dry run writes nothing");

	r = apply(after, 3, false);
	cr_assert_eq(r->error, 0, "%s", r->message);
	cr_assert_eq(r->diff->n_added + r->diff->n_changed + r->diff->n_removed, 3);
	done(r);
	cr_assert_eq(syncd_replica_own_seq(rep), 2);
	r = simple(GWCLUSTER__CTL_REQUEST__OP_PEER_LIST, 0);
	cr_assert_eq(r->n_peers, 3);
	cr_assert_eq(r->peers[0]->peer->public_key.data[31], 2);
	cr_assert_str_eq(r->peers[0]->peer->allowed_ips[0], "198.18.0.22/32");
	cr_assert_eq(r->peers[1]->peer->public_key.data[31], 4);
	cr_assert_eq(r->peers[2]->peer->public_key.data[31], 5);
	done(r);

	r = apply(after, 3, false);
	cr_assert_eq(r->error, 0);
	cr_assert_eq(r->diff->n_added + r->diff->n_changed + r->diff->n_removed, 0);
	done(r);
	cr_assert_eq(syncd_replica_own_seq(rep), 2, "an empty diff writes nothing");

	r = apply(NULL, 0, false);
	cr_assert_eq(r->error, 0);
	cr_assert_eq(r->diff->n_removed, 3);
	done(r);
	r = simple(GWCLUSTER__CTL_REQUEST__OP_PEER_LIST, 0);
	cr_assert_eq(r->n_peers, 0);
	done(r);
}

Test(control, apply_refuses_duplicates_and_bad_peers_atomically)
{
	static const struct peer_spec dup[] = {
	    {1, {"198.18.0.1/32"}, NULL, 0, NULL},
	    {1, {"198.18.0.2/32"}, NULL, 0, NULL},
	};
	static const struct peer_spec invalid[] = {
	    {1, {"198.18.0.1/32"}, NULL, 0, NULL},
	    {2, {"198.18.0.999/32"}, NULL, 0, NULL},
	};

	static const struct peer_spec shared[] = {
	    {1, {"198.18.0.1/32", "198.18.7.0/24"}, NULL, 0, "alice"},
	    {2, {"198.18.0.2/32"}, NULL, 0, NULL},
	    {3, {"198.18.7.0/24", "2001:db8:f::3/128"}, NULL, 0, "carol"},
	};
	Gwcluster__CtlResponse *r;

	r = apply(dup, 2, false);
	cr_assert_eq(r->error, -EINVAL);
	cr_assert(strstr(r->message, "listed twice"), "%s", r->message);
	done(r);
	/* One allowed IP in two peers of the set (gwctl checks its file; syncd too). */
	r = apply(shared, 3, true);
	cr_assert_eq(r->error, -EINVAL);
	cr_assert(strstr(r->message, "allowed IP 198.18.7.0/24 is listed by peers"), "%s",
		  r->message);
	cr_assert(strstr(r->message, "(alice)") && strstr(r->message, "(carol)"), "%s", r->message);
	done(r);
	r = apply(invalid, 2, false);
	cr_assert_eq(r->error, -EINVAL);
	cr_assert(strstr(r->message, "peer 2 ("), "%s", r->message);
	done(r);
	cr_assert_eq(syncd_replica_own_seq(rep), 0);
}

Test(control, malformed_requests_get_an_answer)
{
	static const uint8_t junk[] = {0xff, 0xff, 0xff, 0x01, 0x02};
	Gwcluster__CtlRequest q = GWCLUSTER__CTL_REQUEST__INIT;
	Gwcluster__CtlResponse *r;

	r = call_raw(junk, sizeof(junk));
	cr_assert_eq(r->error, -EBADMSG);
	done(r);
	r = call_raw(NULL, 0); /* lacks the required version */
	cr_assert_eq(r->error, -EBADMSG);
	done(r);
	q.version = 2;
	q.op_case = GWCLUSTER__CTL_REQUEST__OP_STATUS;
	q.status = true;
	r = call(&q);
	cr_assert_eq(r->error, -EPROTONOSUPPORT);
	done(r);
	q.version = 1;
	q.op_case = GWCLUSTER__CTL_REQUEST__OP__NOT_SET;
	r = call(&q);
	cr_assert_eq(r->error, -EINVAL);
	done(r);
	/* Random bytes never crash the handler. */
	uint64_t x = 0x1234567;
	for (int i = 0; i < 2000; i++) {
		uint8_t buf[64];
		size_t len = (size_t)(i % 64);

		for (size_t j = 0; j < len; j++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			buf[j] = (uint8_t)x;
		}
		done(call_raw(buf, len));
	}
}

Test(control, writes_wait_until_the_node_has_caught_up)
{
	static const struct peer_spec s = {1, {"198.18.0.1/32"}, NULL, 0, NULL};
	Gwcluster__CtlResponse *r;

	syncd_replica_close(rep);
	syncd_store_close(store);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'/*", dir);
	cr_assert_eq(system(cmd), 0);
	open_replica(2); /* node 2 is never heard */
	r = upsert(&s);
	cr_assert_eq(r->error, -EAGAIN);
	cr_assert(strstr(r->message, "not caught up"), "%s", r->message);
	done(r);
}

/* ---- the socket ---- */

static Gwcluster__CtlResponse *roundtrip(struct gw_loop *loop, void *req, const void *buf,
					 size_t len, bool split)
{
	zmq_pollitem_t pi = {req, 0, ZMQ_POLLIN, 0};
	Gwcluster__CtlResponse *r;
	zmq_msg_t msg;

	if (split) {
		cr_assert_eq(zmq_send(req, buf, 1, ZMQ_SNDMORE), 1);
		cr_assert_eq(zmq_send(req, (const uint8_t *)buf + 1, len - 1, 0), (int)len - 1);
	} else {
		cr_assert_eq(zmq_send(req, buf, len, 0), (int)len);
	}
	for (int i = 0; i < 500 && !zmq_poll(&pi, 1, 0); i++)
		gw_loop_run_once(loop, 10);
	cr_assert(pi.revents & ZMQ_POLLIN, "no answer");
	zmq_msg_init(&msg);
	cr_assert_geq(zmq_msg_recv(&msg, req, 0), 0);
	r = gwcluster__ctl_response__unpack(NULL, zmq_msg_size(&msg), zmq_msg_data(&msg));
	zmq_msg_close(&msg);
	cr_assert(r);
	return r;
}

Test(control, socket_serves_requests_and_is_private)
{
	Gwcluster__CtlRequest q = GWCLUSTER__CTL_REQUEST__INIT;
	struct syncd_control *c;
	struct gw_loop *loop;
	char path[128], ep[160], sub[96];
	uint8_t buf[16];
	struct stat st;
	void *zctx, *req;
	int timeout = 5000;

	snprintf(sub, sizeof(sub), "%s/run/gwcluster", dir);
	snprintf(path, sizeof(path), "%s/gw0.ctl", sub);
	cr_assert_eq(gw_loop_new(&loop, NULL), 0);
	cr_assert_eq(syncd_control_open(&c, path, loop, ctx()), 0);
	cr_assert_eq(stat(sub, &st), 0);
	cr_assert_eq(st.st_mode & 0777, 0755);
	cr_assert_eq(lstat(path, &st), 0);
	cr_assert(S_ISSOCK(st.st_mode));
	cr_assert_eq(st.st_mode & 0777, 0600);

	zctx = zmq_ctx_new();
	req = zmq_socket(zctx, ZMQ_REQ);
	zmq_setsockopt(req, ZMQ_RCVTIMEO, &timeout, sizeof(timeout));
	snprintf(ep, sizeof(ep), "ipc://%s", path);
	cr_assert_eq(zmq_connect(req, ep), 0);
	q.version = 1;
	q.op_case = GWCLUSTER__CTL_REQUEST__OP_STATUS;
	q.status = true;
	size_t len = gwcluster__ctl_request__pack(&q, buf);
	Gwcluster__CtlResponse *r = roundtrip(loop, req, buf, len, false);
	cr_assert_eq(r->error, 0);
	cr_assert_str_eq(r->status->cluster, "lab");
	done(r);
	r = roundtrip(loop, req, buf, len, true);
	cr_assert_eq(r->error, -EBADMSG, "a request in two frames");
	done(r);
	r = roundtrip(loop, req, "\xff\x01", 2, false);
	cr_assert_eq(r->error, -EBADMSG);
	done(r);
	r = roundtrip(loop, req, buf, len, false);
	cr_assert_eq(r->error, 0, "still serving");
	done(r);

	/* A second server on the same path is refused while the first lives. */
	struct syncd_control *c2;
	cr_assert_eq(syncd_control_open(&c2, path, loop, ctx()), -EADDRINUSE);
	zmq_close(req);
	zmq_ctx_term(zctx);
	syncd_control_close(c);
	cr_assert_neq(lstat(path, &st), 0, "the socket file is removed on close");
	gw_loop_free(loop);
}

Test(control, stale_socket_is_replaced_other_files_are_not)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct syncd_control *c;
	struct gw_loop *loop;
	char path[128];
	int fd;

	snprintf(path, sizeof(path), "%s/stale.ctl", dir);
	cr_assert_lt(strlen(path), sizeof(sa.sun_path));
	memcpy(sa.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	close(fd); /* left behind, as by a killed daemon */
	cr_assert_eq(gw_loop_new(&loop, NULL), 0);
	cr_assert_eq(syncd_control_open(&c, path, loop, ctx()), 0);
	syncd_control_close(c);

	snprintf(path, sizeof(path), "%s/file.ctl", dir);
	fd = open(path, O_CREAT | O_WRONLY, 0600);
	close(fd);
	cr_assert_eq(syncd_control_open(&c, path, loop, ctx()), -EEXIST);
	cr_assert_eq(access(path, F_OK), 0, "a regular file is left alone");
	gw_loop_free(loop);
}

/* The allowed IPs of stored peer key, comma-separated (static buffer). */
static const char *stored_ips(unsigned key)
{
	static char buf[256];
	Gwcluster__CtlResponse *r = simple(GWCLUSTER__CTL_REQUEST__OP_PEER_SHOW, key);

	cr_assert_eq(r->error, 0, "%s", r->message ? r->message : "");
	cr_assert_eq(r->n_peers, 1);
	buf[0] = '\0';
	for (size_t i = 0; i < r->peers[0]->peer->n_allowed_ips; i++)
		snprintf(buf + strlen(buf), sizeof(buf) - strlen(buf), "%s%s", i ? "," : "",
			 r->peers[0]->peer->allowed_ips[i]);
	done(r);
	return buf;
}

/*
 * An allowed IP another peer has is refused, naming that peer, and changes
 * nothing; with move_allowed_ips it moves, the other peer written without it
 * in the same update. Prefixes a peer already has (a contest from a
 * partition) do not stop other changes to it; overlaps are no conflict.
 */
Test(control, upsert_refuses_or_moves_an_allowed_ip_of_another_peer)
{
	static const struct peer_spec alice = {
	    1, {"198.18.0.1/32", "198.18.7.0/24"}, NULL, 0, "alice"};
	static const struct peer_spec bob = {2, {"198.18.0.2/32"}, NULL, 0, NULL};
	static const struct peer_spec bob_takes = {
	    2, {"198.18.0.2/32", "198.18.7.0/24", "198.18.0.1/32"}, NULL, 0, NULL};
	static const struct peer_spec carol = {
	    3, {"198.18.7.0/25", "198.18.0.3/32"}, NULL, 0, NULL};
	static const struct peer_spec alice_again = {
	    1, {"198.18.0.1/32", "198.18.7.0/24"}, NULL, 25, "alice"};
	Gwcluster__CtlResponse *r;
	uint64_t seq;

	done(upsert(&alice));
	done(upsert(&bob));
	seq = syncd_replica_own_seq(rep);
	r = upsert(&bob_takes);
	cr_assert_eq(r->error, -EEXIST);
	cr_assert(strstr(r->message, "allowed IP 198.18.0.1/32 is already peer "), "%s",
		  r->message);
	cr_assert(strstr(r->message, "(alice)'s") && strstr(r->message, "--move-allowed-ips"), "%s",
		  r->message);
	done(r);
	cr_assert_eq(syncd_replica_own_seq(rep), seq, "a refused upsert wrote something");
	cr_assert_str_eq(stored_ips(2), "198.18.0.2/32");
	/* A longer prefix inside alice's /24 is not hers: no conflict. */
	r = upsert(&carol);
	cr_assert_eq(r->error, 0, "%s", r->message);
	done(r);

	r = upsert_move(&bob_takes, true);
	cr_assert_eq(r->error, 0, "%s", r->message);
	cr_assert(strstr(r->message, "updated; moved 198.18.0.1/32, 198.18.7.0/24 from "), "%s",
		  r->message);
	cr_assert(strstr(r->message, "(alice) (committed as update"), "%s", r->message);
	done(r);
	cr_assert_eq(syncd_replica_own_seq(rep), seq + 2, "not one update");
	cr_assert_str_eq(stored_ips(1), "");
	cr_assert_str_eq(stored_ips(2), "198.18.0.1/32,198.18.0.2/32,198.18.7.0/24");
	cr_assert_str_eq(stored_ips(3), "198.18.0.3/32,198.18.7.0/25");

	/* Back to alice: refused while bob has them. */
	r = upsert(&alice_again);
	cr_assert_eq(r->error, -EEXIST, "%s", r->message);
	done(r);
}
