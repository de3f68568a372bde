// SPDX-License-Identifier: MIT
/*
 * The session relay core driven directly: LocalMessages in as gwd would send
 * them, Envelopes in as the transport would deliver them, and everything the
 * relay sends recorded (unpacked again) by a fake io on a fake clock. Then
 * the link on a real ZeroMQ ROUTER standing in for gwd (subscribe, restart),
 * gwd's stats=1 parser and the SyncedFile.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "gw/crypto.h"
#include "gw/log.h"
#include "gw/loop.h"
#include "config.h"
#include "control.h"
#include "ctlfmt.h"
#include "relay.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define MS	     GW_NSEC_PER_MSEC

enum {
	SELF = 1,
	MAX_REC = 256,
	DEAD_MS = 1000,
};

struct sent_env {
	uint8_t to; /* 0: published */
	Gwcluster__Envelope *env;
};

static struct {
	struct gw_fake_clock clk;
	struct syncd_relay *r;
	Gwcluster__LocalMessage *local[MAX_REC];
	unsigned n_local;
	struct sent_env env[MAX_REC];
	unsigned n_env;
	unsigned kicks, hellos;
	int to_gwd_err; /* what to_gwd answers */
	enum syncd_ready ready_seen[MAX_REC];
	unsigned n_ready;
} t;

/* ------------------------------------------------------------------------ */
/* Fake io */

static int fake_to_gwd(void *arg, uint8_t *buf, size_t len)
{
	(void)arg;
	if (!t.to_gwd_err) {
		cr_assert_lt(t.n_local, MAX_REC);
		t.local[t.n_local] = gwcluster__local_message__unpack(NULL, len, buf);
		cr_assert_not_null(t.local[t.n_local], "the relay sent gwd something unreadable");
		t.n_local++;
	}
	gw_wipe(buf, len);
	free(buf);
	return t.to_gwd_err;
}

/* Packs and unpacks env: what a receiver would see. */
static Gwcluster__Envelope *copy_env(Gwcluster__Envelope *env)
{
	size_t len;
	uint8_t *buf;
	Gwcluster__Envelope *c;

	env->version = SYNCD_PROTO_VERSION;
	env->origin = SELF;
	env->cluster = "lab";
	cr_assert(protobuf_c_message_check(&env->base), "an Envelope with a required field unset");
	len = gwcluster__envelope__get_packed_size(env);
	buf = malloc(len + 1);
	gwcluster__envelope__pack(env, buf);
	c = gwcluster__envelope__unpack(NULL, len, buf);
	free(buf);
	cr_assert_not_null(c);
	return c;
}

static int fake_publish(void *arg, Gwcluster__Envelope *env)
{
	(void)arg;
	cr_assert_lt(t.n_env, MAX_REC);
	t.env[t.n_env++] = (struct sent_env){0, copy_env(env)};
	return 0;
}

static int fake_request(void *arg, uint8_t to, Gwcluster__Envelope *env)
{
	(void)arg;
	cr_assert_lt(t.n_env, MAX_REC);
	t.env[t.n_env++] = (struct sent_env){to, copy_env(env)};
	return 0;
}

static void fake_kick(void *arg)
{
	(void)arg;
	t.kicks++;
}

static void fake_hello(void *arg)
{
	(void)arg;
	t.hellos++;
}

static void fake_ready(void *arg, enum syncd_ready v)
{
	(void)arg;
	cr_assert_lt(t.n_ready, MAX_REC);
	t.ready_seen[t.n_ready++] = v;
}

static void forget_sent(void)
{
	for (unsigned i = 0; i < t.n_local; i++)
		gwcluster__local_message__free_unpacked(t.local[i], NULL);
	for (unsigned i = 0; i < t.n_env; i++)
		gwcluster__envelope__free_unpacked(t.env[i].env, NULL);
	t.n_local = t.n_env = 0;
}

static void setup_members(const uint8_t *ids, unsigned n, bool anycast)
{
	struct syncd_relay_io io = {fake_to_gwd, fake_publish, fake_request, fake_kick,
				    fake_hello,	 fake_ready,   NULL};
	struct syncd_relay_config cfg = {SELF, ids, n, anycast, DEAD_MS};

	gw_log_init("test", GW_LOG_ERR, GW_LOG_STDERR);
	cr_assert_eq(gw_crypto_init(), 0);
	memset(&t, 0, sizeof(t));
	gw_fake_clock_init(&t.clk, 1000 * GW_NSEC_PER_SEC, 1700000000);
	cr_assert_eq(syncd_relay_new(&t.r, &cfg, &t.clk.clock, &io), 0);
}

static void setup(void)
{
	static const uint8_t ids[] = {1, 2, 3};

	setup_members(ids, ARRAY_LEN(ids), false);
}

static void teardown(void)
{
	forget_sent();
	syncd_relay_free(t.r);
}

TestSuite(relay, .init = setup, .fini = teardown);

/* ------------------------------------------------------------------------ */
/* Building messages */

/* A batch of n peers; peer i has key byte seed+i and one keypair. */
struct batch {
	Gwcluster__SessionBatch b;
	Gwcluster__PeerSession ps[8], *psp[8];
	Gwcluster__Keypair kp[8], *kpp[8];
	uint8_t pub[8][32], send[8][32], recv[8][32];
};

static void batch_init(struct batch *x, unsigned n, uint8_t seed)
{
	memset(x, 0, sizeof(*x));
	gwcluster__session_batch__init(&x->b);
	for (unsigned i = 0; i < n; i++) {
		memset(x->pub[i], seed + i, 32);
		memset(x->send[i], 0xa0 + seed + i, 32);
		memset(x->recv[i], 0xb0 + seed + i, 32);
		gwcluster__keypair__init(&x->kp[i]);
		x->kp[i].local_index = 0x02000000u + seed + i;
		x->kp[i].remote_index = 77 + i;
		x->kp[i].sending_key = (ProtobufCBinaryData){32, x->send[i]};
		x->kp[i].receiving_key = (ProtobufCBinaryData){32, x->recv[i]};
		x->kp[i].age_ms = 10;
		x->kp[i].confirmed = true;
		x->kpp[i] = &x->kp[i];
		gwcluster__peer_session__init(&x->ps[i]);
		x->ps[i].public_key = (ProtobufCBinaryData){32, x->pub[i]};
		x->ps[i].keypairs = &x->kpp[i];
		x->ps[i].n_keypairs = 1;
		x->ps[i].has_owner = x->ps[i].has_owner_epoch = true;
		x->ps[i].owner = 2;
		x->ps[i].owner_epoch = 3;
		x->psp[i] = &x->ps[i];
	}
	x->b.peers = x->psp;
	x->b.n_peers = n;
}

/* gwd -> relay */
static void from_gwd(Gwcluster__LocalMessage *m)
{
	size_t len;
	uint8_t *buf;

	m->version = 1;
	len = gwcluster__local_message__get_packed_size(m);
	buf = malloc(len + 1);
	gwcluster__local_message__pack(m, buf);
	syncd_relay_from_gwd(t.r, buf, len);
	for (size_t i = 0; i < len; i++)
		cr_assert_eq(buf[i], 0, "a message from gwd was not wiped");
	free(buf);
}

static Gwcluster__LocalMessage *last_local(Gwcluster__LocalMessage__BodyCase body);

/* gwd's gwd_hello: the answer to the latest hello (answer) or a heartbeat. */
static void gwd_hello_full(uint32_t node, uint64_t boot, bool master, bool anycast, bool answer)
{
	Gwcluster__LocalMessage m = GWCLUSTER__LOCAL_MESSAGE__INIT;
	Gwcluster__GwdHello h = GWCLUSTER__GWD_HELLO__INIT;
	Gwcluster__LocalMessage *q = last_local(GWCLUSTER__LOCAL_MESSAGE__BODY_HELLO);

	h.node_id = node;
	h.incarnation = (uint32_t)boot;
	h.boot = boot;
	h.claim_on_receive = anycast;
	h.has_master = true;
	h.master = master;
	if (answer) {
		cr_assert_not_null(q, "gwd_hello without a hello");
		m.has_id = true;
		m.id = q->id;
	}
	m.body_case = GWCLUSTER__LOCAL_MESSAGE__BODY_GWD_HELLO;
	m.gwd_hello = &h;
	from_gwd(&m);
}

static void gwd_hello(uint32_t node, bool master, bool anycast)
{
	gwd_hello_full(node, 7, master, anycast, true);
}

static void gwd_heartbeat(uint64_t boot)
{
	gwd_hello_full(SELF, boot, false, false, false);
}

static void gwd_result(uint64_t id, int err)
{
	Gwcluster__LocalMessage m = GWCLUSTER__LOCAL_MESSAGE__INIT;
	Gwcluster__LocalResult r = GWCLUSTER__LOCAL_RESULT__INIT;

	r.error = err;
	m.has_id = true;
	m.id = id;
	m.body_case = GWCLUSTER__LOCAL_MESSAGE__BODY_RESULT;
	m.result = &r;
	from_gwd(&m);
}

static void gwd_export(Gwcluster__SessionBatch *b)
{
	Gwcluster__LocalMessage m = GWCLUSTER__LOCAL_MESSAGE__INIT;

	m.body_case = GWCLUSTER__LOCAL_MESSAGE__BODY_EXPORT_SESSIONS;
	m.export_sessions = b;
	from_gwd(&m);
}

static void gwd_snapshot_done(uint64_t peers)
{
	Gwcluster__LocalMessage m = GWCLUSTER__LOCAL_MESSAGE__INIT;

	m.body_case = GWCLUSTER__LOCAL_MESSAGE__BODY_SNAPSHOT_DONE;
	m.snapshot_done = peers;
	from_gwd(&m);
}

/* transport -> relay */
static bool deliver(uint8_t from, enum syncd_channel ch, Gwcluster__Envelope *env)
{
	Gwcluster__Envelope *c;
	bool taken;

	env->version = SYNCD_PROTO_VERSION;
	env->origin = from;
	env->cluster = "lab";
	c = copy_env(env);
	taken = syncd_relay_receive(t.r, from, ch, c);
	gwcluster__envelope__free_unpacked(c, NULL);
	return taken;
}

static void deliver_batch(uint8_t from, Gwcluster__SessionBatch *b)
{
	Gwcluster__Envelope env = GWCLUSTER__ENVELOPE__INIT;

	env.body_case = GWCLUSTER__ENVELOPE__BODY_SESSIONS;
	env.sessions = b;
	cr_assert(deliver(from, SYNCD_CHANNEL_STREAM, &env));
}

/* A member's SessionDumpDone: its gwd was subscribed, it was ready itself. */
static void deliver_done_full(uint8_t from, uint64_t id, bool gwd, bool ready)
{
	Gwcluster__Envelope env = GWCLUSTER__ENVELOPE__INIT;
	Gwcluster__SessionDumpDone d = GWCLUSTER__SESSION_DUMP_DONE__INIT;

	d.request_ids = &id;
	d.n_request_ids = 1;
	d.peers = 1;
	d.has_gwd_connected = d.has_ready = true;
	d.gwd_connected = gwd;
	d.ready = ready;
	env.body_case = GWCLUSTER__ENVELOPE__BODY_SESSION_DUMP_DONE;
	env.session_dump_done = &d;
	cr_assert(deliver(from, SYNCD_CHANNEL_STREAM, &env));
}

static void deliver_done(uint8_t from, uint64_t id)
{
	deliver_done_full(from, id, true, true);
}

/* A member's status; ready < 0: it says nothing of its readiness nor gwd. */
static void deliver_status_ready(uint8_t from, uint64_t instance, uint64_t batches, int ready,
				 bool gwd)
{
	Gwcluster__Envelope env = GWCLUSTER__ENVELOPE__INIT;
	Gwcluster__SessionStatus st = GWCLUSTER__SESSION_STATUS__INIT;
	Gwcluster__SessionSummary sum = GWCLUSTER__SESSION_SUMMARY__INIT;

	if (ready >= 0) {
		sum.has_ready = sum.has_gwd_connected = true;
		sum.ready = (uint32_t)ready;
		sum.gwd_connected = gwd;
	}
	sum.has_role = true;
	sum.role = GWCLUSTER__NODE_ROLE__NODE_ROLE_BACKUP;
	sum.has_sessions_standby = true;
	sum.sessions_standby = 42;
	st.sent_unix_ms = 1700000000000ull - 5; /* 5 ms before our clock */
	st.instance = instance;
	st.batches = batches;
	st.summary = &sum;
	env.body_case = GWCLUSTER__ENVELOPE__BODY_SESSION_STATUS;
	env.session_status = &st;
	cr_assert(deliver(from, SYNCD_CHANNEL_STREAM, &env));
}

static void deliver_status(uint8_t from, uint64_t instance, uint64_t batches)
{
	deliver_status_ready(from, instance, batches, -1, false);
}

/* Time passes; a subscribed gwd keeps sending its heartbeat meanwhile. */
static void advance_ms(uint64_t ms)
{
	gw_fake_clock_advance(&t.clk, ms * MS);
	if (syncd_relay_gwd_subscribed(t.r))
		gwd_heartbeat(7);
}

/* The last LocalMessage sent to gwd, of that body. */
static Gwcluster__LocalMessage *last_local(Gwcluster__LocalMessage__BodyCase body)
{
	for (unsigned i = t.n_local; i-- > 0;)
		if (t.local[i]->body_case == body)
			return t.local[i];
	return NULL;
}

static unsigned count_local(Gwcluster__LocalMessage__BodyCase body)
{
	unsigned n = 0;

	for (unsigned i = 0; i < t.n_local; i++)
		n += t.local[i]->body_case == body;
	return n;
}

static Gwcluster__Envelope *last_env(uint8_t to, Gwcluster__Envelope__BodyCase body)
{
	for (unsigned i = t.n_env; i-- > 0;)
		if (t.env[i].to == to && t.env[i].env->body_case == body)
			return t.env[i].env;
	return NULL;
}

static unsigned count_role(Gwcluster__RoleCommand__Action a)
{
	unsigned n = 0;

	for (unsigned i = 0; i < t.n_local; i++)
		n += t.local[i]->body_case == GWCLUSTER__LOCAL_MESSAGE__BODY_ROLE &&
		     t.local[i]->role->action == a;
	return n;
}

static void deliver_status(uint8_t from, uint64_t instance, uint64_t batches);

/* Members 2 and 3 are heard (their streams reach us). */
static void hear_members(void)
{
	deliver_status(2, 1002, 0);
	deliver_status(3, 1003, 0);
}

/* gwd subscribed and configured: what every scenario starts from. */
static void subscribe(bool master)
{
	hear_members();
	syncd_relay_gwd_up(t.r);
	cr_assert_not_null(last_local(GWCLUSTER__LOCAL_MESSAGE__BODY_HELLO));
	gwd_hello(SELF, master, false);
	syncd_relay_config_state(t.r, true, true);
	syncd_relay_config_applied(t.r, false);
}

/* Every member's dump requested, answered and imported: the node is ready. */
static void import_all_dumps(void)
{
	syncd_relay_tick(t.r);
	for (uint8_t m = 2; m <= 3; m++) {
		Gwcluster__Envelope *q =
		    last_env(m, GWCLUSTER__ENVELOPE__BODY_SESSION_DUMP_REQUEST);
		Gwcluster__LocalMessage *imp;

		cr_assert_not_null(q, "no dump request to node %u", m);
		deliver_done(m, q->session_dump_request->request_id);
		imp = last_local(GWCLUSTER__LOCAL_MESSAGE__BODY_IMPORT_SESSIONS);
		cr_assert_not_null(imp);
		cr_assert(imp->has_id, "the final import of a dump carries an id");
		gwd_result(imp->id, 0);
	}
}

static int role(Gwcluster__RoleRequest__Action a, bool force, char *msg, size_t len)
{
	Gwcluster__RoleRequest q = GWCLUSTER__ROLE_REQUEST__INIT;
	const Gwcluster__SessionSummary *sum = NULL;
	int rc;

	q.action = a;
	q.has_force = force;
	q.force = force;
	rc = syncd_relay_role(t.r, &q, &sum, msg, len);
	cr_assert_not_null(sum);
	return rc;
}

/* ------------------------------------------------------------------------ */
/* Local side */

Test(relay, hello_then_subscribed)
{
	Gwcluster__LocalMessage *h;

	cr_expect_eq(syncd_relay_ready(t.r, NULL), SYNCD_READY_CONFIG);
	syncd_relay_gwd_up(t.r);
	h = last_local(GWCLUSTER__LOCAL_MESSAGE__BODY_HELLO);
	cr_assert_not_null(h);
	cr_expect(h->has_id && h->id, "hello carries an id");
	cr_expect_not(syncd_relay_gwd_subscribed(t.r));
	gwd_hello(SELF, false, false);
	cr_expect(syncd_relay_gwd_subscribed(t.r));
	cr_expect_eq(t.hellos, 1, "gwd_hello asks for an apply");
	cr_expect_eq(count_local(GWCLUSTER__LOCAL_MESSAGE__BODY_ROLE), 0,
		     "no role known: nothing sent");
}

Test(relay, heartbeat_keeps_the_subscription)
{
	subscribe(false);
	import_all_dumps();
	forget_sent();
	gwd_heartbeat(7);
	cr_expect(syncd_relay_gwd_subscribed(t.r));
	cr_expect_eq(syncd_relay_ready(t.r, NULL), SYNCD_READY, "a heartbeat is no new gwd");
	cr_expect_eq(t.n_local, 0);
	/* Silence: gwd forgot us; subscribe again. */
	gw_fake_clock_advance(&t.clk, (SYNCD_RELAY_GWD_SILENCE_MS + 1) * MS);
	syncd_relay_tick(t.r);
	cr_expect_not(syncd_relay_gwd_subscribed(t.r));
	cr_expect_not_null(last_local(GWCLUSTER__LOCAL_MESSAGE__BODY_HELLO));
	cr_expect_neq(syncd_relay_ready(t.r, NULL), SYNCD_READY);
}

Test(relay, heartbeat_of_a_new_boot_resubscribes)
{
	subscribe(false);
	import_all_dumps();
	forget_sent();
	gwd_heartbeat(8);
	cr_expect_not(syncd_relay_gwd_subscribed(t.r));
	cr_expect_not_null(last_local(GWCLUSTER__LOCAL_MESSAGE__BODY_HELLO));
	gwd_hello_full(SELF, 8, false, false, true);
	cr_expect(syncd_relay_gwd_subscribed(t.r));
	cr_expect_eq(syncd_relay_ready(t.r, NULL), SYNCD_READY_GWD,
		     "a new gwd holds no replicas: not ready");
}

Test(relay, hello_resent_when_unanswered)
{
	syncd_relay_gwd_up(t.r);
	advance_ms(SYNCD_RELAY_HELLO_RETRY_MS - 1);
	syncd_relay_tick(t.r);
	cr_expect_eq(count_local(GWCLUSTER__LOCAL_MESSAGE__BODY_HELLO), 1);
	advance_ms(2);
	syncd_relay_tick(t.r);
	cr_expect_eq(count_local(GWCLUSTER__LOCAL_MESSAGE__BODY_HELLO), 2);
}

Test(relay, export_published_unchanged)
{
	struct batch x;
	Gwcluster__Envelope *env;
	uint8_t a[4096], b[4096];
	size_t la, lb;

	subscribe(false);
	batch_init(&x, 3, 0x10);
	gwd_export(&x.b);
	env = last_env(0, GWCLUSTER__ENVELOPE__BODY_SESSIONS);
	cr_assert_not_null(env, "the export was not published");
	cr_expect_not(env->has_seq, "session Envelopes are unsequenced");
	la = gwcluster__session_batch__pack(&x.b, a);
	lb = gwcluster__session_batch__pack(env->sessions, b);
	cr_assert_eq(la, lb);
	cr_expect_eq(memcmp(a, b, la), 0, "the published batch differs from gwd's export");
	cr_expect_eq(syncd_relay_stats(t.r)->exports_published, 1);
}

Test(relay, export_before_hello_dropped)
{
	struct batch x;

	syncd_relay_gwd_up(t.r);
	batch_init(&x, 1, 0x10);
	gwd_export(&x.b);
	cr_expect_null(last_env(0, GWCLUSTER__ENVELOPE__BODY_SESSIONS));
	cr_expect_eq(syncd_relay_stats(t.r)->rejected, 1);
}

Test(relay, wrong_node_id_relays_nothing)
{
	struct batch x;
	const char *why;

	syncd_relay_gwd_up(t.r);
	gwd_hello(9, false, false);
	syncd_relay_config_state(t.r, true, true);
	syncd_relay_config_applied(t.r, false);
	cr_expect_eq(syncd_relay_ready(t.r, &why), SYNCD_READY_GWD);
	cr_expect(strstr(why, "node 9"), "reason: %s", why);
	batch_init(&x, 1, 0x10);
	gwd_export(&x.b);
	cr_expect_null(last_env(0, GWCLUSTER__ENVELOPE__BODY_SESSIONS));
	deliver_batch(2, &x.b);
	syncd_relay_flush(t.r);
	cr_expect_null(last_local(GWCLUSTER__LOCAL_MESSAGE__BODY_IMPORT_SESSIONS));
}

Test(relay, malformed_from_gwd_rejected)
{
	uint8_t junk[] = {0xff, 0xff, 0xff, 0x01};
	Gwcluster__LocalMessage m = GWCLUSTER__LOCAL_MESSAGE__INIT;

	syncd_relay_from_gwd(t.r, junk, sizeof(junk));
	cr_expect_eq(syncd_relay_stats(t.r)->rejected, 1);
	m.body_case = GWCLUSTER__LOCAL_MESSAGE__BODY_HELLO; /* gwd never sends hello */
	m.hello = true;
	from_gwd(&m);
	cr_expect_eq(syncd_relay_stats(t.r)->rejected, 2);
}

/* ------------------------------------------------------------------------ */
/* Imports */

Test(relay, imports_coalesced_into_one_message)
{
	struct batch x, y;
	Gwcluster__LocalMessage *imp;
	Gwcluster__SessionBatch *b;

	subscribe(false);
	batch_init(&x, 2, 0x20);
	batch_init(&y, 1, 0x40);
	deliver_batch(2, &x.b);
	deliver_batch(3, &y.b);
	cr_expect_null(last_local(GWCLUSTER__LOCAL_MESSAGE__BODY_IMPORT_SESSIONS),
		       "imports wait for the flush");
	cr_expect_geq(t.kicks, 1, "no flush was asked for");
	syncd_relay_flush(t.r);
	cr_assert_eq(count_local(GWCLUSTER__LOCAL_MESSAGE__BODY_IMPORT_SESSIONS), 1);
	imp = last_local(GWCLUSTER__LOCAL_MESSAGE__BODY_IMPORT_SESSIONS);
	cr_expect_eq(imp->version, 1);
	cr_expect_not(imp->has_id);
	b = imp->import_sessions;
	cr_assert_eq(b->n_peers, 3, "the two batches were not merged");
	for (unsigned i = 0; i < 3; i++) {
		uint8_t want = i < 2 ? 0x20 + i : 0x40;

		cr_assert_eq(b->peers[i]->public_key.len, 32);
		cr_expect_eq(b->peers[i]->public_key.data[0], want);
		cr_assert_eq(b->peers[i]->n_keypairs, 1);
		cr_expect_eq(b->peers[i]->keypairs[0]->sending_key.data[5], 0xa0 + want);
		cr_expect_eq(b->peers[i]->owner_epoch, 3);
	}
	syncd_relay_flush(t.r);
	cr_expect_eq(count_local(GWCLUSTER__LOCAL_MESSAGE__BODY_IMPORT_SESSIONS), 1,
		     "an empty buffer sends nothing");
}

Test(relay, large_imports_flush_at_once)
{
	struct batch x;
	unsigned sent = 0;

	subscribe(false);
	batch_init(&x, 8, 0x20);
	for (unsigned i = 0; i < 20000 && !sent; i++) {
		deliver_batch(2, &x.b);
		sent = count_local(GWCLUSTER__LOCAL_MESSAGE__BODY_IMPORT_SESSIONS);
	}
	cr_expect_eq(sent, 1, "SYNCD_RELAY_IMPORT_FLUSH bytes did not flush");
}

Test(relay, imports_dropped_without_gwd)
{
	struct batch x;

	batch_init(&x, 1, 0x20);
	deliver_batch(2, &x.b);
	syncd_relay_flush(t.r);
	cr_expect_eq(t.n_local, 0);
	cr_expect_eq(syncd_relay_stats(t.r)->import_dropped, 1);
	cr_expect_eq(syncd_relay_stats(t.r)->batches_received, 1);
}

Test(relay, full_gwd_queue_asks_for_dumps_again)
{
	struct batch x;

	subscribe(false);
	import_all_dumps();
	forget_sent();
	batch_init(&x, 1, 0x20);
	deliver_batch(2, &x.b);
	t.to_gwd_err = -EAGAIN;
	syncd_relay_flush(t.r);
	t.to_gwd_err = 0;
	cr_expect_eq(syncd_relay_stats(t.r)->import_dropped, 1);
	syncd_relay_tick(t.r);
	cr_expect_not_null(last_env(2, GWCLUSTER__ENVELOPE__BODY_SESSION_DUMP_REQUEST));
	cr_expect_not_null(last_env(3, GWCLUSTER__ENVELOPE__BODY_SESSION_DUMP_REQUEST));
	cr_expect_eq(syncd_relay_ready(t.r, NULL), SYNCD_READY, "readiness stays latched");
}

Test(relay, recent_imports_replayed_after_peers_added)
{
	struct batch x;
	Gwcluster__LocalMessage *imp;

	subscribe(false);
	batch_init(&x, 1, 0x20);
	deliver_batch(2, &x.b);
	syncd_relay_flush(t.r);
	advance_ms(SYNCD_RELAY_RECENT_MS / 2);
	syncd_relay_config_applied(t.r, true);
	syncd_relay_flush(t.r);
	cr_expect_eq(count_local(GWCLUSTER__LOCAL_MESSAGE__BODY_IMPORT_SESSIONS), 2,
		     "the recent batch was not imported again");
	imp = last_local(GWCLUSTER__LOCAL_MESSAGE__BODY_IMPORT_SESSIONS);
	cr_assert_eq(imp->import_sessions->n_peers, 1);
	cr_assert_eq(imp->import_sessions->peers[0]->n_keypairs, 1);
	cr_expect_eq(imp->import_sessions->peers[0]->keypairs[0]->age_ms,
		     10 + SYNCD_RELAY_RECENT_MS / 2, "a replayed keypair must be as old as it is");
	cr_expect_eq(imp->import_sessions->peers[0]->keypairs[0]->sending_key.data[0], 0xa0 + 0x20);
	advance_ms(SYNCD_RELAY_RECENT_MS);
	syncd_relay_config_applied(t.r, true);
	syncd_relay_flush(t.r);
	cr_expect_eq(count_local(GWCLUSTER__LOCAL_MESSAGE__BODY_IMPORT_SESSIONS), 2,
		     "an old batch was imported again");
}

Test(relay, session_messages_on_wrong_channel_or_from_self)
{
	struct batch x;
	Gwcluster__Envelope env = GWCLUSTER__ENVELOPE__INIT;
	Gwcluster__Heartbeat hb = GWCLUSTER__HEARTBEAT__INIT;

	subscribe(false);
	batch_init(&x, 1, 0x20);
	env.body_case = GWCLUSTER__ENVELOPE__BODY_SESSIONS;
	env.sessions = &x.b;
	cr_expect(deliver(2, SYNCD_CHANNEL_REQUEST, &env));
	cr_expect(deliver(SELF, SYNCD_CHANNEL_STREAM, &env));
	cr_expect(deliver(9, SYNCD_CHANNEL_STREAM, &env));
	cr_expect_eq(syncd_relay_stats(t.r)->rejected, 3);
	syncd_relay_flush(t.r);
	cr_expect_null(last_local(GWCLUSTER__LOCAL_MESSAGE__BODY_IMPORT_SESSIONS));
	env.body_case = GWCLUSTER__ENVELOPE__BODY_HEARTBEAT;
	env.heartbeat = &hb;
	cr_expect_not(deliver(2, SYNCD_CHANNEL_STREAM, &env), "a heartbeat is the replica's");
}

/* ------------------------------------------------------------------------ */
/* Dumps and readiness */

Test(relay, readiness_waits_for_every_dump)
{
	Gwcluster__Envelope *q2, *q3;
	Gwcluster__LocalMessage *imp;
	struct batch x;
	const char *why;

	syncd_relay_gwd_up(t.r);
	gwd_hello(SELF, false, false);
	syncd_relay_tick(t.r);
	cr_expect_eq(syncd_relay_ready(t.r, NULL), SYNCD_READY_CONFIG);
	hear_members();
	syncd_relay_config_state(t.r, true, true);
	syncd_relay_tick(t.r);
	cr_expect_eq(syncd_relay_ready(t.r, NULL), SYNCD_READY_GWD, "config not applied yet");
	cr_expect_null(last_env(2, GWCLUSTER__ENVELOPE__BODY_SESSION_DUMP_REQUEST),
		       "dumps asked before the peers are in gwd");
	syncd_relay_config_applied(t.r, false);
	q2 = last_env(2, GWCLUSTER__ENVELOPE__BODY_SESSION_DUMP_REQUEST);
	q3 = last_env(3, GWCLUSTER__ENVELOPE__BODY_SESSION_DUMP_REQUEST);
	cr_assert_not_null(q2);
	cr_assert_not_null(q3);
	cr_expect_neq(q2->session_dump_request->request_id, q3->session_dump_request->request_id);
	cr_expect_eq(syncd_relay_ready(t.r, &why), SYNCD_READY_SESSIONS);
	cr_expect(strstr(why, "node 2"), "reason: %s", why);

	/* Node 2's dump: data on the stream, then its Done, then gwd's result. */
	batch_init(&x, 2, 0x30);
	deliver_batch(2, &x.b);
	deliver_done(2, 12345); /* someone else's */
	cr_expect_null(last_local(GWCLUSTER__LOCAL_MESSAGE__BODY_IMPORT_SESSIONS));
	deliver_done(2, q2->session_dump_request->request_id);
	imp = last_local(GWCLUSTER__LOCAL_MESSAGE__BODY_IMPORT_SESSIONS);
	cr_assert_not_null(imp, "the dump was not flushed at its end");
	cr_expect(imp->has_id);
	cr_expect_eq(imp->import_sessions->n_peers, 2);
	cr_expect_eq(syncd_relay_ready(t.r, NULL), SYNCD_READY_SESSIONS, "before gwd confirmed");
	gwd_result(imp->id, 0);
	cr_expect_eq(syncd_relay_ready(t.r, &why), SYNCD_READY_SESSIONS);
	cr_expect(strstr(why, "node 3"), "reason: %s", why);

	/* Node 3: an empty dump still ends with an acknowledged (empty) import. */
	deliver_done(3, q3->session_dump_request->request_id);
	imp = last_local(GWCLUSTER__LOCAL_MESSAGE__BODY_IMPORT_SESSIONS);
	cr_expect_eq(imp->import_sessions->n_peers, 0);
	gwd_result(imp->id, 0);
	cr_expect_eq(syncd_relay_ready(t.r, NULL), SYNCD_READY);
	cr_expect_eq(t.ready_seen[t.n_ready - 1], SYNCD_READY, "ready_changed not called");
	cr_expect_eq(syncd_relay_stats(t.r)->dumps_completed, 2);

	/* gwd restarts: not ready until the dumps are imported again. */
	syncd_relay_gwd_down(t.r);
	cr_expect_eq(syncd_relay_ready(t.r, NULL), SYNCD_READY_GWD);
	forget_sent();
	subscribe(false);
	cr_expect_eq(syncd_relay_ready(t.r, NULL), SYNCD_READY_SESSIONS);
	import_all_dumps();
	cr_expect_eq(syncd_relay_ready(t.r, NULL), SYNCD_READY);
}

Test(relay, failed_import_asks_again)
{
	Gwcluster__Envelope *q;
	Gwcluster__LocalMessage *imp;

	subscribe(false);
	q = last_env(2, GWCLUSTER__ENVELOPE__BODY_SESSION_DUMP_REQUEST);
	cr_assert_not_null(q);
	deliver_done(2, q->session_dump_request->request_id);
	imp = last_local(GWCLUSTER__LOCAL_MESSAGE__BODY_IMPORT_SESSIONS);
	gwd_result(imp->id, -ENOMEM);
	forget_sent();
	syncd_relay_tick(t.r);
	cr_expect_not_null(last_env(2, GWCLUSTER__ENVELOPE__BODY_SESSION_DUMP_REQUEST));
	cr_expect_eq(syncd_relay_stats(t.r)->gwd_errors, 1);
}

Test(relay, unanswered_dump_retried_then_given_up)
{
	unsigned asked = 0;

	subscribe(false);
	deliver_status(2, 99, 0);
	/* Node 3 answers; node 2 never does but keeps sending its status. */
	for (unsigned round = 0; round < SYNCD_RELAY_DUMP_TRIES + 1; round++) {
		Gwcluster__Envelope *q3 =
		    last_env(3, GWCLUSTER__ENVELOPE__BODY_SESSION_DUMP_REQUEST);

		if (q3 && round == 0) {
			Gwcluster__LocalMessage *imp;

			deliver_done(3, q3->session_dump_request->request_id);
			imp = last_local(GWCLUSTER__LOCAL_MESSAGE__BODY_IMPORT_SESSIONS);
			gwd_result(imp->id, 0);
		}
		asked += last_env(2, GWCLUSTER__ENVELOPE__BODY_SESSION_DUMP_REQUEST) != NULL;
		forget_sent();
		if (round < SYNCD_RELAY_DUMP_TRIES - 1)
			cr_expect_eq(syncd_relay_ready(t.r, NULL), SYNCD_READY_SESSIONS, "round %u",
				     round);
		for (unsigned ms = 0; ms <= SYNCD_RELAY_DUMP_TIMEOUT_MS; ms += 1000) {
			advance_ms(1000);
			deliver_status(2, 99, 0);
		}
		syncd_relay_tick(t.r);
	}
	cr_expect_geq(asked, SYNCD_RELAY_DUMP_TRIES, "the request was not repeated");
	cr_expect_eq(syncd_relay_ready(t.r, NULL), SYNCD_READY,
		     "a member that never answers holds up readiness forever");
}

Test(relay, dead_member_does_not_hold_up_readiness)
{
	Gwcluster__Envelope *q3;
	Gwcluster__LocalMessage *imp;

	subscribe(false);
	q3 = last_env(3, GWCLUSTER__ENVELOPE__BODY_SESSION_DUMP_REQUEST);
	deliver_done(3, q3->session_dump_request->request_id);
	imp = last_local(GWCLUSTER__LOCAL_MESSAGE__BODY_IMPORT_SESSIONS);
	gwd_result(imp->id, 0);
	/* Node 2 was never heard: after the start-up grace it does not count. */
	cr_expect_eq(syncd_relay_ready(t.r, NULL), SYNCD_READY_SESSIONS);
	advance_ms(2 * 3 * SYNCD_RELAY_STATUS_MS + 1);
	syncd_relay_tick(t.r);
	cr_expect_eq(syncd_relay_ready(t.r, NULL), SYNCD_READY);
}

Test(relay, no_dump_asked_before_the_stream_is_heard)
{
	syncd_relay_gwd_up(t.r);
	gwd_hello(SELF, false, false);
	syncd_relay_config_state(t.r, true, true);
	syncd_relay_config_applied(t.r, false);
	deliver_status(3, 1003, 0);
	syncd_relay_tick(t.r);
	cr_expect_null(last_env(2, GWCLUSTER__ENVELOPE__BODY_SESSION_DUMP_REQUEST),
		       "node 2's stream is not heard yet: its dump would be lost");
	cr_expect_not_null(last_env(3, GWCLUSTER__ENVELOPE__BODY_SESSION_DUMP_REQUEST));
	deliver_status(2, 1002, 0);
	syncd_relay_tick(t.r);
	cr_expect_not_null(last_env(2, GWCLUSTER__ENVELOPE__BODY_SESSION_DUMP_REQUEST));
}

/* ------------------------------------------------------------------------ */
/* The readiness rule (docs/failover.md, Readiness): evidence, not silence */

/* Time passes in whole seconds; the relay ticks every 100 ms meanwhile. */
static void run_ms(uint64_t ms)
{
	for (uint64_t i = 0; i < ms; i += 100) {
		advance_ms(100);
		syncd_relay_tick(t.r);
	}
}

/* The dump request to member m was answered: Done(gwd, ready), gwd imported it. */
static void answer_dump(uint8_t m, bool gwd, bool ready)
{
	Gwcluster__Envelope *q = last_env(m, GWCLUSTER__ENVELOPE__BODY_SESSION_DUMP_REQUEST);
	Gwcluster__LocalMessage *imp;

	cr_assert_not_null(q, "no dump request to node %u", m);
	deliver_done_full(m, q->session_dump_request->request_id, gwd, ready);
	imp = last_local(GWCLUSTER__LOCAL_MESSAGE__BODY_IMPORT_SESSIONS);
	cr_assert_not_null(imp);
	gwd_result(imp->id, 0);
}

static unsigned count_requests(uint8_t to)
{
	unsigned n = 0;

	for (unsigned i = 0; i < t.n_env; i++)
		n += t.env[i].to == to &&
		     t.env[i].env->body_case == GWCLUSTER__ENVELOPE__BODY_SESSION_DUMP_REQUEST;
	return n;
}

/*
 * Open finding 2: syncd restarted, its state directory synced before, its
 * sync link cut, so it hears nobody. Neither the configuration (not caught
 * up with anyone since it started) nor the sessions (no member heard) let
 * it become ready, however long it waits.
 */
Test(relay, isolated_restart_never_ready)
{
	const char *why;

	syncd_relay_gwd_up(t.r);
	gwd_hello(SELF, false, false);
	syncd_relay_config_state(t.r, false, true);
	syncd_relay_config_applied(t.r, false);
	for (unsigned s = 0; s < 60; s++) {
		run_ms(1000);
		cr_assert_eq(syncd_relay_ready(t.r, &why), SYNCD_READY_CONFIG, "after %u s", s);
	}
	cr_expect(strstr(why, "since syncd started"), "reason: %s", why);
	cr_expect_eq(count_requests(2) + count_requests(3), 0, "dumps asked of unheard members");
	/* Even with the configuration caught up, silence is no source of sessions. */
	syncd_relay_config_state(t.r, true, true);
	run_ms(60000);
	cr_expect_eq(syncd_relay_ready(t.r, &why), SYNCD_READY_SESSIONS);
	cr_expect(strstr(why, "no member heard"), "reason: %s", why);
	cr_expect_eq(t.n_ready ? t.ready_seen[t.n_ready - 1] : SYNCD_READY_CONFIG,
		     SYNCD_READY_SESSIONS);
	for (unsigned i = 0; i < t.n_ready; i++)
		cr_assert_neq(t.ready_seen[i], SYNCD_READY, "was ready at some point");
}

/* The finding's second half: the one member it heard dies before its dump came. */
Test(relay, member_gone_before_its_dump_is_no_source)
{
	const char *why;

	syncd_relay_gwd_up(t.r);
	gwd_hello(SELF, false, false);
	syncd_relay_config_state(t.r, true, true);
	syncd_relay_config_applied(t.r, false);
	deliver_status(2, 1002, 0);
	syncd_relay_tick(t.r);
	cr_assert_eq(count_requests(2), 1);
	/* Node 2 dies; node 3 was never heard. */
	run_ms(30000);
	cr_expect_eq(syncd_relay_ready(t.r, &why), SYNCD_READY_SESSIONS,
		     "a member never heard and a dead one taken as satisfied");
	cr_expect(strstr(why, "no member that is ready"), "reason: %s", why);
	/* Node 3 comes (its sync link healed), ready: its dump is enough. */
	deliver_status_ready(3, 1003, 0, 0, true);
	syncd_relay_tick(t.r);
	answer_dump(3, true, true);
	cr_expect_eq(syncd_relay_ready(t.r, NULL), SYNCD_READY);
}

/* A member gone for good (never heard) does not hold up a node a ready member fed. */
Test(relay, member_gone_for_good_with_a_ready_member)
{
	syncd_relay_gwd_up(t.r);
	gwd_hello(SELF, false, false);
	syncd_relay_config_state(t.r, true, true);
	syncd_relay_config_applied(t.r, false);
	deliver_status_ready(2, 1002, 0, 0, true);
	syncd_relay_tick(t.r);
	answer_dump(2, true, true);
	cr_expect_eq(syncd_relay_ready(t.r, NULL), SYNCD_READY_SESSIONS,
		     "node 3 may still be heard: start-up grace");
	for (unsigned i = 0; i < 100 && syncd_relay_ready(t.r, NULL); i++) {
		run_ms(100);
		deliver_status_ready(2, 1002, 0, 0, true);
	}
	cr_expect_eq(syncd_relay_ready(t.r, NULL), SYNCD_READY, "node 3, gone, holds it up");
	cr_expect_eq(count_requests(3), 0);
}

/*
 * A member that is not ready itself (its gwd restarted too) is no source
 * alone: it may lack sessions. Asked again once its status says it is ready
 * (a status sent after its dump), and not before.
 */
Test(relay, member_not_ready_is_no_source_until_it_is)
{
	const char *why;

	syncd_relay_gwd_up(t.r);
	gwd_hello(SELF, false, false);
	syncd_relay_config_state(t.r, true, true);
	syncd_relay_config_applied(t.r, false);
	deliver_status_ready(2, 1002, 0, SYNCD_READY_SESSIONS, true);
	syncd_relay_tick(t.r);
	answer_dump(2, true, false);
	for (unsigned s = 0; s < 20; s++) {
		run_ms(1000);
		deliver_status_ready(2, 1002, 0, SYNCD_READY_SESSIONS, true);
	}
	cr_expect_eq(syncd_relay_ready(t.r, &why), SYNCD_READY_SESSIONS);
	cr_expect(strstr(why, "ready itself"), "reason: %s", why);
	cr_expect_eq(count_requests(2), 1, "asked again while it is still not ready");
	/* Node 2 becomes ready. */
	deliver_status_ready(2, 1002, 0, SYNCD_READY, true);
	syncd_relay_tick(t.r);
	cr_expect_eq(count_requests(2), 2, "not asked again once ready");
	answer_dump(2, true, true);
	cr_expect_eq(syncd_relay_ready(t.r, NULL), SYNCD_READY);
}

/*
 * Whole-cluster cold start: nobody is ready, every member starts. Once the
 * gwd of every other member has sent its sessions, together they are all
 * the cluster has: ready. A member whose gwd was not subscribed yet when
 * asked does not count, and is asked again once its status says it is.
 */
Test(relay, whole_cluster_cold_start)
{
	subscribe(false);
	deliver_status_ready(2, 1002, 0, SYNCD_READY_SESSIONS, true);
	deliver_status_ready(3, 1003, 0, SYNCD_READY_GWD, false);
	answer_dump(2, true, false);
	answer_dump(3, false, false);
	run_ms(10000);
	cr_expect_eq(syncd_relay_ready(t.r, NULL), SYNCD_READY_SESSIONS,
		     "node 3's gwd sent nothing yet");
	cr_expect_eq(count_requests(3), 1);
	deliver_status_ready(3, 1003, 0, SYNCD_READY_SESSIONS, true);
	syncd_relay_tick(t.r);
	cr_expect_eq(count_requests(3), 2, "node 3's gwd came: not asked again");
	answer_dump(3, true, false);
	cr_expect_eq(syncd_relay_ready(t.r, NULL), SYNCD_READY);
}

/* A one-member cluster has nobody to wait for. */
Test(relay, single_member_ready_alone)
{
	static const uint8_t one[] = {SELF};

	teardown();
	setup_members(one, 1, false);
	syncd_relay_gwd_up(t.r);
	gwd_hello(SELF, false, false);
	syncd_relay_config_state(t.r, true, true);
	cr_expect_eq(syncd_relay_ready(t.r, NULL), SYNCD_READY_GWD);
	syncd_relay_config_applied(t.r, false);
	cr_expect_eq(syncd_relay_ready(t.r, NULL), SYNCD_READY);
	cr_expect_eq(t.n_env ? count_requests(2) : 0, 0);
}

/*
 * Two members, the other gone for good, this one restarted: it never
 * becomes ready by itself; the operator's gwctl role ready --force makes
 * it, but only with a configuration to serve, and only until syncd stops.
 * The other conditions still hold (gwd, live members' dumps).
 */
Test(relay, member_gone_for_good_needs_the_operator)
{
	static const uint8_t two[] = {SELF, 2};
	char msg[256];

	teardown();
	setup_members(two, 2, false);
	syncd_relay_gwd_up(t.r);
	gwd_hello(SELF, false, false);
	syncd_relay_config_state(t.r, false, false);
	syncd_relay_config_applied(t.r, false);
	run_ms(60000);
	cr_expect_eq(syncd_relay_ready(t.r, NULL), SYNCD_READY_CONFIG);
	cr_expect_eq(role(GWCLUSTER__ROLE_REQUEST__ACTION__READY, false, msg, sizeof(msg)),
		     -EINVAL);
	cr_expect(strstr(msg, "--force"), "%s", msg);
	cr_expect_eq(role(GWCLUSTER__ROLE_REQUEST__ACTION__READY, true, msg, sizeof(msg)), -EAGAIN,
		     "a state directory that never synced has nothing to serve");
	cr_expect_eq(syncd_relay_ready(t.r, NULL), SYNCD_READY_CONFIG);
	/* Its state directory synced before the restart. */
	syncd_relay_config_state(t.r, false, true);
	run_ms(60000);
	cr_expect_eq(syncd_relay_ready(t.r, NULL), SYNCD_READY_CONFIG);
	cr_expect_eq(role(GWCLUSTER__ROLE_REQUEST__ACTION__READY, true, msg, sizeof(msg)), 0);
	cr_expect(strstr(msg, "ready for master"), "%s", msg);
	cr_expect_eq(syncd_relay_ready(t.r, NULL), SYNCD_READY);
	cr_expect_eq(role(GWCLUSTER__ROLE_REQUEST__ACTION__MASTER, false, msg, sizeof(msg)), 0);
	cr_expect_eq(role(GWCLUSTER__ROLE_REQUEST__ACTION__SHOW, false, msg, sizeof(msg)), 0);
	cr_expect(strstr(msg, "forced"), "%s", msg);

	/* gwd restarts: not ready without gwd; ready again once it is back. */
	syncd_relay_gwd_down(t.r);
	cr_expect_eq(syncd_relay_ready(t.r, NULL), SYNCD_READY_GWD);
	syncd_relay_gwd_up(t.r);
	gwd_hello(SELF, true, false);
	syncd_relay_config_applied(t.r, false);
	cr_expect_eq(syncd_relay_ready(t.r, NULL), SYNCD_READY);

	/* Node 2 comes back alive: after the next gwd restart its dump is awaited. */
	deliver_status_ready(2, 1002, 0, SYNCD_READY_SESSIONS, true);
	syncd_relay_gwd_down(t.r);
	syncd_relay_gwd_up(t.r);
	gwd_hello(SELF, true, false);
	syncd_relay_config_applied(t.r, false);
	cr_expect_eq(syncd_relay_ready(t.r, NULL), SYNCD_READY_SESSIONS);
	answer_dump(2, true, false);
	cr_expect_eq(syncd_relay_ready(t.r, NULL), SYNCD_READY);
}

Test(relay, serves_dumps_through_gwd)
{
	Gwcluster__Envelope env = GWCLUSTER__ENVELOPE__INIT;
	Gwcluster__SessionDumpRequest q = GWCLUSTER__SESSION_DUMP_REQUEST__INIT;
	Gwcluster__LocalMessage *dump;
	Gwcluster__Envelope *done;
	struct batch x;

	subscribe(false);
	forget_sent();
	q.request_id = 0xabc;
	env.body_case = GWCLUSTER__ENVELOPE__BODY_SESSION_DUMP_REQUEST;
	env.session_dump_request = &q;
	cr_assert(deliver(2, SYNCD_CHANNEL_REQUEST, &env));
	dump = last_local(GWCLUSTER__LOCAL_MESSAGE__BODY_DUMP);
	cr_assert_not_null(dump, "gwd was not asked to dump");
	cr_assert(dump->has_id);
	/* A snapshot_done before gwd took the command belongs to an earlier dump. */
	gwd_snapshot_done(4);
	cr_expect_null(last_env(0, GWCLUSTER__ENVELOPE__BODY_SESSION_DUMP_DONE));
	gwd_result(dump->id, 0);
	batch_init(&x, 1, 0x50);
	gwd_export(&x.b);
	gwd_snapshot_done(5);
	done = last_env(0, GWCLUSTER__ENVELOPE__BODY_SESSION_DUMP_DONE);
	cr_assert_not_null(done, "the dump's end was not published");
	cr_assert_eq(done->session_dump_done->n_request_ids, 1);
	cr_expect_eq(done->session_dump_done->request_ids[0], 0xabc);
	cr_expect_eq(done->session_dump_done->peers, 5);
	cr_expect(done->session_dump_done->gwd_connected);
	cr_expect(done->session_dump_done->has_ready);
	cr_expect_not(done->session_dump_done->ready, "served while not ready itself");
	/* The export went out before the Done, on the same stream. */
	cr_expect_eq(t.env[0].env->body_case, GWCLUSTER__ENVELOPE__BODY_SESSIONS);

	/* Once ready, its dumps say so: a requester may rely on them alone. */
	forget_sent();
	syncd_relay_gwd_down(t.r);
	subscribe(false);
	import_all_dumps();
	cr_assert_eq(syncd_relay_ready(t.r, NULL), SYNCD_READY);
	forget_sent();
	q.request_id = 0xabd;
	cr_assert(deliver(3, SYNCD_CHANNEL_REQUEST, &env));
	dump = last_local(GWCLUSTER__LOCAL_MESSAGE__BODY_DUMP);
	cr_assert_not_null(dump);
	gwd_result(dump->id, 0);
	gwd_snapshot_done(5);
	done = last_env(0, GWCLUSTER__ENVELOPE__BODY_SESSION_DUMP_DONE);
	cr_assert_not_null(done);
	cr_expect_eq(done->session_dump_done->request_ids[0], 0xabd);
	cr_expect(done->session_dump_done->ready);
}

Test(relay, dump_request_without_gwd_answered_empty)
{
	Gwcluster__Envelope env = GWCLUSTER__ENVELOPE__INIT;
	Gwcluster__SessionDumpRequest q = GWCLUSTER__SESSION_DUMP_REQUEST__INIT;
	Gwcluster__Envelope *done;

	q.request_id = 7;
	env.body_case = GWCLUSTER__ENVELOPE__BODY_SESSION_DUMP_REQUEST;
	env.session_dump_request = &q;
	cr_assert(deliver(3, SYNCD_CHANNEL_REQUEST, &env));
	done = last_env(0, GWCLUSTER__ENVELOPE__BODY_SESSION_DUMP_DONE);
	cr_assert_not_null(done);
	cr_expect_eq(done->session_dump_done->request_ids[0], 7);
	cr_expect_not(done->session_dump_done->gwd_connected);
	cr_expect_not(done->session_dump_done->ready);
	cr_expect_eq(t.n_local, 0);
}

Test(relay, lost_batches_detected_by_status_counts)
{
	struct batch x;

	subscribe(false);
	import_all_dumps();
	forget_sent();
	batch_init(&x, 1, 0x20);
	deliver_status(2, 55, 100);
	for (int i = 0; i < 3; i++)
		deliver_batch(2, &x.b);
	deliver_status(2, 55, 103); /* all three arrived */
	syncd_relay_tick(t.r);
	cr_expect_null(last_env(2, GWCLUSTER__ENVELOPE__BODY_SESSION_DUMP_REQUEST));
	deliver_batch(2, &x.b);
	deliver_status(2, 55, 106); /* two of three missing */
	cr_expect_eq(syncd_relay_stats(t.r)->batches_lost, 2);
	syncd_relay_tick(t.r);
	cr_expect_not_null(last_env(2, GWCLUSTER__ENVELOPE__BODY_SESSION_DUMP_REQUEST),
			   "a loss must bring a dump");
	cr_expect_null(last_env(3, GWCLUSTER__ENVELOPE__BODY_SESSION_DUMP_REQUEST));
	/* A new instance (syncd restarted there) starts the count afresh. */
	deliver_status(2, 56, 0);
	cr_expect_eq(syncd_relay_stats(t.r)->batches_lost, 2);
}

Test(relay, status_published_with_counts)
{
	struct batch x;
	Gwcluster__Envelope *st;
	struct syncd_gwd_stats gs = {.cluster = true, .peers_owned = 4, .sessions_owned = 3};

	subscribe(true);
	batch_init(&x, 1, 0x20);
	gwd_export(&x.b);
	gwd_export(&x.b);
	syncd_relay_gwd_stats(t.r, &gs);
	advance_ms(SYNCD_RELAY_STATUS_MS);
	syncd_relay_tick(t.r);
	st = last_env(0, GWCLUSTER__ENVELOPE__BODY_SESSION_STATUS);
	cr_assert_not_null(st);
	cr_expect_eq(st->session_status->batches, 2);
	cr_expect_neq(st->session_status->instance, 0);
	cr_expect_eq(st->session_status->summary->role, GWCLUSTER__NODE_ROLE__NODE_ROLE_MASTER);
	cr_expect_eq(st->session_status->summary->peers_owned, 4);
	cr_expect_eq(st->session_status->summary->sessions_owned, 3);
	cr_expect(st->session_status->summary->gwd_connected);
}

Test(relay, cluster_status_fields)
{
	Gwcluster__MemberStatus m[3] = {GWCLUSTER__MEMBER_STATUS__INIT,
					GWCLUSTER__MEMBER_STATUS__INIT,
					GWCLUSTER__MEMBER_STATUS__INIT};
	Gwcluster__MemberStatus *mp[3] = {&m[0], &m[1], &m[2]};
	Gwcluster__ClusterStatus st = GWCLUSTER__CLUSTER_STATUS__INIT;
	struct batch x;

	subscribe(false);
	batch_init(&x, 1, 0x20);
	deliver_status(2, 5, 0);
	deliver_batch(2, &x.b);
	advance_ms(30);
	for (unsigned i = 0; i < 3; i++)
		m[i].node_id = i + 1;
	st.members = mp;
	st.n_members = 3;
	syncd_relay_status(t.r, &st);
	cr_expect(st.has_ready);
	cr_expect_eq(st.ready, SYNCD_READY_SESSIONS);
	cr_expect_not_null(st.ready_reason);
	cr_assert_not_null(m[0].sessions, "self has no sessions summary");
	cr_expect(m[0].sessions->gwd_connected);
	cr_assert_not_null(m[1].sessions);
	cr_expect_eq(m[1].sessions->sessions_standby, 42);
	cr_expect_eq(m[1].session_batches, 1);
	cr_expect_eq(m[1].session_batch_ms_ago, 30);
	cr_expect(m[1].has_session_delay_ms);
	cr_expect_eq(m[1].session_delay_ms, 5);
	cr_expect_not_null(m[2].sessions);
	cr_expect_eq(m[2].session_batches, 0);
	cr_expect_not(m[2].has_session_batch_ms_ago, "node 3 sent no sessions");
}

/* ------------------------------------------------------------------------ */
/* Role */

Test(relay, master_refused_until_ready_unless_forced)
{
	char msg[256];

	subscribe(false);
	cr_expect_eq(role(GWCLUSTER__ROLE_REQUEST__ACTION__MASTER, false, msg, sizeof(msg)),
		     -EAGAIN);
	cr_expect(strstr(msg, "not ready"), "%s", msg);
	cr_expect_eq(count_local(GWCLUSTER__LOCAL_MESSAGE__BODY_ROLE), 0);
	cr_expect_eq(syncd_relay_role_get(t.r), SYNCD_ROLE_UNKNOWN);
	cr_expect_eq(role(GWCLUSTER__ROLE_REQUEST__ACTION__MASTER, true, msg, sizeof(msg)), 0);
	cr_expect_eq(count_role(GWCLUSTER__ROLE_COMMAND__ACTION__CLAIM_ALL), 1);
	cr_expect_eq(syncd_relay_role_get(t.r), SYNCD_ROLE_MASTER);
	/* Ready later: a master claims once more (epochs learnt from the dumps). */
	import_all_dumps();
	cr_expect_eq(count_role(GWCLUSTER__ROLE_COMMAND__ACTION__CLAIM_ALL), 2);
	cr_expect_eq(role(GWCLUSTER__ROLE_REQUEST__ACTION__MASTER, false, msg, sizeof(msg)), 0);
	cr_expect_eq(count_role(GWCLUSTER__ROLE_COMMAND__ACTION__CLAIM_ALL), 3);
}

Test(relay, backup_and_fault_release)
{
	char msg[256];

	subscribe(false);
	cr_expect_eq(role(GWCLUSTER__ROLE_REQUEST__ACTION__BACKUP, false, msg, sizeof(msg)), 0);
	cr_expect_eq(role(GWCLUSTER__ROLE_REQUEST__ACTION__FAULT, false, msg, sizeof(msg)), 0);
	cr_expect_eq(count_role(GWCLUSTER__ROLE_COMMAND__ACTION__RELEASE_ALL), 2);
	cr_expect_eq(syncd_relay_role_get(t.r), SYNCD_ROLE_FAULT);
}

Test(relay, role_remembered_across_gwd_restart)
{
	char msg[256];

	cr_expect_eq(role(GWCLUSTER__ROLE_REQUEST__ACTION__MASTER, true, msg, sizeof(msg)),
		     -ENOTCONN, "no gwd: remembered, but not done");
	cr_expect(strstr(msg, "remembered"), "%s", msg);
	cr_expect_eq(syncd_relay_role_get(t.r), SYNCD_ROLE_MASTER);
	subscribe(false);
	cr_expect_eq(count_role(GWCLUSTER__ROLE_COMMAND__ACTION__CLAIM_ALL), 1,
		     "the role was not sent to the new gwd");
	/* gwd restarts: a fresh gwd is no master; tell it again. */
	syncd_relay_gwd_down(t.r);
	subscribe(false);
	cr_expect_eq(count_role(GWCLUSTER__ROLE_COMMAND__ACTION__CLAIM_ALL), 2);
	/* syncd told backup, gwd still claims all (was master): release. */
	cr_expect_eq(role(GWCLUSTER__ROLE_REQUEST__ACTION__BACKUP, false, msg, sizeof(msg)), 0);
	syncd_relay_gwd_down(t.r);
	subscribe(true);
	cr_expect_eq(count_role(GWCLUSTER__ROLE_COMMAND__ACTION__RELEASE_ALL), 2);
}

Test(relay, role_adopted_from_gwd)
{
	subscribe(true);
	cr_expect_eq(syncd_relay_role_get(t.r), SYNCD_ROLE_MASTER);
	cr_expect_eq(count_local(GWCLUSTER__LOCAL_MESSAGE__BODY_ROLE), 0,
		     "gwd already claims all: nothing to send");
}

Test(relay, claim_and_release_keys)
{
	Gwcluster__RoleRequest q = GWCLUSTER__ROLE_REQUEST__INIT;
	const Gwcluster__SessionSummary *sum;
	uint8_t k[2][32];
	ProtobufCBinaryData keys[2] = {{32, k[0]}, {31, k[1]}};
	Gwcluster__LocalMessage *m;
	char msg[256];

	memset(k, 7, sizeof(k));
	subscribe(false);
	import_all_dumps();
	q.action = GWCLUSTER__ROLE_REQUEST__ACTION__CLAIM;
	cr_expect_eq(syncd_relay_role(t.r, &q, &sum, msg, sizeof(msg)), -EINVAL, "no keys");
	q.public_keys = keys;
	q.n_public_keys = 2;
	cr_expect_eq(syncd_relay_role(t.r, &q, &sum, msg, sizeof(msg)), -EINVAL, "a short key");
	keys[1].len = 32;
	cr_expect_eq(syncd_relay_role(t.r, &q, &sum, msg, sizeof(msg)), 0);
	m = last_local(GWCLUSTER__LOCAL_MESSAGE__BODY_ROLE);
	cr_assert_not_null(m);
	cr_expect_eq(m->role->action, GWCLUSTER__ROLE_COMMAND__ACTION__CLAIM);
	cr_assert_eq(m->role->n_public_keys, 2);
	cr_expect_eq(memcmp(m->role->public_keys[1].data, k[1], 32), 0);
	cr_expect_eq(syncd_relay_role_get(t.r), SYNCD_ROLE_UNKNOWN, "per-peer claims are no role");
	q.action = GWCLUSTER__ROLE_REQUEST__ACTION__RELEASE;
	cr_expect_eq(syncd_relay_role(t.r, &q, &sum, msg, sizeof(msg)), 0);
	cr_expect_eq(count_role(GWCLUSTER__ROLE_COMMAND__ACTION__RELEASE), 1);
	syncd_relay_gwd_down(t.r);
	cr_expect_eq(syncd_relay_role(t.r, &q, &sum, msg, sizeof(msg)), -ENOTCONN);
}

Test(relay, anycast_mode_set_on_hello)
{
	static const uint8_t ids[] = {1, 2};
	Gwcluster__LocalMessage *m;

	teardown();
	setup_members(ids, ARRAY_LEN(ids), true);
	syncd_relay_gwd_up(t.r);
	gwd_hello(SELF, false, false);
	m = last_local(GWCLUSTER__LOCAL_MESSAGE__BODY_ROLE);
	cr_assert_not_null(m, "gwd's mode was not aligned with cluster.conf");
	cr_expect_eq(m->role->action, GWCLUSTER__ROLE_COMMAND__ACTION__SET_MODE);
	cr_expect(m->role->has_claim_on_receive && m->role->claim_on_receive);
	forget_sent();
	syncd_relay_gwd_down(t.r);
	syncd_relay_gwd_up(t.r);
	gwd_hello(SELF, false, true);
	cr_expect_null(last_local(GWCLUSTER__LOCAL_MESSAGE__BODY_ROLE));
}

/* ------------------------------------------------------------------------ */
/* gwd's stats=1 and the SyncedFile */

static const char stats_reply[] =
    "peers=3\n"
    "under_load=0\n"
    "node_id=1\n"
    "incarnation=5\n"
    "boot=5\n"
    "claim_on_receive=0\n"
    "master=1\n"
    "syncd_connected=1\n"
    "peers_owned=2\n"
    "sessions_owned=2\n"
    "sessions_standby=1\n"
    "exports=17\n"
    "imports=4\n"
    "rx_packets=100\n"
    "public_key=0101010101010101010101010101010101010101010101010101010101010101\n"
    "staged_packets=0\n"
    "owner=1\n"
    "owner_epoch=4\n"
    "owned=1\n"
    "standby=0\n"
    "keypair_imported=1\n"
    "greatest_epoch=2\n"
    "send_epoch=2\n"
    "region_headroom=1000\n"
    "public_key=0202020202020202020202020202020202020202020202020202020202020202\n"
    "owner=1\n"
    "owner_epoch=9\n"
    "owned=1\n"
    "keypair_imported=0\n"
    "greatest_epoch=0\n"
    "send_epoch=0\n"
    "region_headroom=268435000\n"
    "public_key=0303030303030303030303030303030303030303030303030303030303030303\n"
    "owner=2\n"
    "owner_epoch=3\n"
    "owned=0\n"
    "standby=1\n"
    "greatest_epoch=7\n"
    "region_headroom=0\n"
    "errno=0\n"
    "\n";

Test(relay_stats, parse)
{
	struct syncd_gwd_stats s;

	cr_assert_eq(syncd_gwd_stats_parse(stats_reply, sizeof(stats_reply) - 1, &s), 0);
	cr_expect(s.cluster);
	cr_expect_eq(s.node_id, 1);
	cr_expect_eq(s.incarnation, 5);
	cr_expect(s.master);
	cr_expect_eq(s.peers, 3);
	cr_expect_eq(s.peers_owned, 2);
	cr_expect_eq(s.sessions_owned, 2);
	cr_expect_eq(s.sessions_standby, 1);
	cr_expect_eq(s.exports, 17);
	cr_expect_eq(s.imports, 4);
	cr_expect_eq(s.owner_epoch_max, 9);
	cr_expect_eq(s.send_epoch_max, 2, "a standby's epochs are not sent in");
	cr_expect(s.has_headroom);
	cr_expect_eq(s.region_headroom_min, 1000);
}

Test(relay_stats, errors)
{
	static const struct {
		const char *text;
		int want;
	} cases[] = {
	    {"errno=0\n\n", 0},
	    {"peers=1\nerrno=19\n\n", -19},
	    {"peers=1\n", -EPROTO}, /* no end */
	    {"peers=1\nnoequals\n\n", -EPROTO},
	    {"errno=x\n\n", -EPROTO},
	};
	struct syncd_gwd_stats s;
	char longline[700];

	for (size_t i = 0; i < ARRAY_LEN(cases); i++)
		cr_expect_eq(syncd_gwd_stats_parse(cases[i].text, strlen(cases[i].text), &s),
			     cases[i].want, "case %zu", i);
	memset(longline, 'a', sizeof(longline) - 1);
	longline[sizeof(longline) - 1] = '\0';
	cr_expect_eq(syncd_gwd_stats_parse(longline, strlen(longline), &s), -EPROTO);
	cr_expect_eq(syncd_gwd_stats_parse(stats_reply, 10, &s), -EPROTO);
}

Test(relay_file, synced_file)
{
	char dir[] = "/tmp/test_relay.XXXXXX", path[64], tmp[80], buf[16];
	FILE *f;

	cr_assert_not_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/synced", dir);
	cr_assert_eq(syncd_synced_file_write(path, 3), 0);
	cr_assert_eq(syncd_synced_file_write(path, 0), 0);
	f = fopen(path, "r");
	cr_assert_not_null(f);
	cr_assert_not_null(fgets(buf, sizeof(buf), f));
	fclose(f);
	cr_expect_str_eq(buf, "0\n");
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	cr_expect_neq(access(tmp, F_OK), 0, "the temporary file was left behind");
	unlink(path);
	rmdir(dir);
	snprintf(path, sizeof(path), "/tmp/test_relay.none/x/synced");
	cr_expect_eq(syncd_synced_file_write(path, 1), -ENOENT);
}

/* ------------------------------------------------------------------------ */
/* The link, with a ZeroMQ ROUTER standing in for gwd */

struct fake_gwd {
	void *ctx, *router;
	char path[64], ep[96];
};

static struct {
	struct gw_loop *loop;
	struct syncd_relay *r;
	struct syncd_relay_link *link;
	struct fake_gwd g;
	unsigned imports;
} L;

static int link_to_gwd(void *arg, uint8_t *buf, size_t len)
{
	(void)arg;
	return syncd_relay_link_send(L.link, buf, len);
}

static int link_publish(void *arg, Gwcluster__Envelope *env)
{
	(void)arg;
	(void)env;
	return 0;
}

static int link_request(void *arg, uint8_t to, Gwcluster__Envelope *env)
{
	(void)arg;
	(void)to;
	(void)env;
	return -ENOTCONN;
}

static void link_kick(void *arg)
{
	(void)arg;
	syncd_relay_flush(L.r);
}

static void fake_gwd_bind(struct fake_gwd *g)
{
	int zero = 0;

	g->router = zmq_socket(g->ctx, ZMQ_ROUTER);
	cr_assert_not_null(g->router);
	zmq_setsockopt(g->router, ZMQ_LINGER, &zero, sizeof(zero));
	cr_assert_eq(zmq_bind(g->router, g->ep), 0, "bind %s: %s", g->ep, zmq_strerror(errno));
}

/* Pumps the loop until the fake gwd has a message; answers hello like gwd. */
static bool fake_gwd_serve(struct fake_gwd *g, uint32_t node,
			   Gwcluster__LocalMessage__BodyCase *got)
{
	for (int i = 0; i < 500; i++) {
		zmq_msg_t id, body;
		Gwcluster__LocalMessage *m;

		gw_loop_run_once(L.loop, 10);
		zmq_msg_init(&id);
		if (zmq_msg_recv(&id, g->router, ZMQ_DONTWAIT) < 0) {
			zmq_msg_close(&id);
			continue;
		}
		zmq_msg_init(&body);
		cr_assert_geq(zmq_msg_recv(&body, g->router, 0), 0);
		m = gwcluster__local_message__unpack(NULL, zmq_msg_size(&body),
						     zmq_msg_data(&body));
		cr_assert_not_null(m);
		*got = m->body_case;
		if (m->body_case == GWCLUSTER__LOCAL_MESSAGE__BODY_HELLO) {
			Gwcluster__LocalMessage a = GWCLUSTER__LOCAL_MESSAGE__INIT;
			Gwcluster__GwdHello h = GWCLUSTER__GWD_HELLO__INIT;
			uint8_t buf[128];
			size_t n;

			h.node_id = node;
			a.version = 1;
			a.has_id = m->has_id;
			a.id = m->id;
			a.body_case = GWCLUSTER__LOCAL_MESSAGE__BODY_GWD_HELLO;
			a.gwd_hello = &h;
			n = gwcluster__local_message__pack(&a, buf);
			zmq_send(g->router, zmq_msg_data(&id), zmq_msg_size(&id), ZMQ_SNDMORE);
			zmq_send(g->router, buf, n, 0);
		}
		gwcluster__local_message__free_unpacked(m, NULL);
		zmq_msg_close(&body);
		zmq_msg_close(&id);
		return true;
	}
	return false;
}

static void pump_until_subscribed(bool want)
{
	for (int i = 0; i < 200 && syncd_relay_gwd_subscribed(L.r) != want; i++)
		gw_loop_run_once(L.loop, 10);
}

Test(relay_link, subscribes_and_resubscribes_after_restart, .timeout = 30)
{
	static const uint8_t ids[] = {1, 2};
	struct syncd_relay_io io = {link_to_gwd, link_publish, link_request, link_kick,
				    NULL,	 NULL,	       NULL};
	struct syncd_relay_config cfg = {SELF, ids, 2, false, DEAD_MS};
	Gwcluster__LocalMessage__BodyCase got = 0;

	gw_log_init("test", GW_LOG_ERR, GW_LOG_STDERR);
	cr_assert_eq(gw_crypto_init(), 0);
	cr_assert_eq(gw_loop_new(&L.loop, NULL), 0);
	cr_assert_eq(syncd_relay_new(&L.r, &cfg, gw_loop_clock(L.loop), &io), 0);
	snprintf(L.g.path, sizeof(L.g.path), "/tmp/test_relay.%d.sess", (int)getpid());
	snprintf(L.g.ep, sizeof(L.g.ep), "ipc://%s", L.g.path);
	L.g.ctx = zmq_ctx_new();
	/* gwd absent at first: the link keeps trying. */
	cr_assert_eq(syncd_relay_link_open(&L.link, L.g.path, L.loop, L.r), 0);
	for (int i = 0; i < 20; i++)
		gw_loop_run_once(L.loop, 10);
	cr_expect_not(syncd_relay_gwd_subscribed(L.r));
	fake_gwd_bind(&L.g);
	cr_assert(fake_gwd_serve(&L.g, SELF, &got), "no hello arrived");
	cr_expect_eq(got, GWCLUSTER__LOCAL_MESSAGE__BODY_HELLO);
	pump_until_subscribed(true);
	cr_expect(syncd_relay_gwd_subscribed(L.r));
	/* gwd restarts: the link notices, reconnects, subscribes again. */
	zmq_close(L.g.router);
	unlink(L.g.path);
	pump_until_subscribed(false);
	cr_expect_not(syncd_relay_gwd_subscribed(L.r), "gwd's exit went unnoticed");
	fake_gwd_bind(&L.g);
	cr_assert(fake_gwd_serve(&L.g, SELF, &got), "no hello after the restart");
	cr_expect_eq(got, GWCLUSTER__LOCAL_MESSAGE__BODY_HELLO);
	pump_until_subscribed(true);
	cr_expect(syncd_relay_gwd_subscribed(L.r));
	syncd_relay_link_close(L.link);
	syncd_relay_free(L.r);
	zmq_close(L.g.router);
	zmq_ctx_term(L.g.ctx);
	unlink(L.g.path);
	gw_loop_free(L.loop);
}

/* ------------------------------------------------------------------------ */
/* gwctl role through the control server (a one-node replica, no transport) */

static struct {
	char dir[64];
	struct syncd_store *store;
	struct syncd_replica *rep;
	struct syncd_config cfg;
} C;

static int nop_env(void *arg, Gwcluster__Envelope *env)
{
	(void)arg;
	(void)env;
	return 0;
}

static int nop_env_to(void *arg, uint8_t to, Gwcluster__Envelope *env)
{
	(void)arg;
	(void)to;
	(void)env;
	return 0;
}

static int ctl_role(void *arg, const Gwcluster__RoleRequest *req,
		    const Gwcluster__SessionSummary **summary, char *msg, size_t msglen)
{
	(void)arg;
	return syncd_relay_role(t.r, req, summary, msg, msglen);
}

static void control_setup(void)
{
	static const uint8_t one[] = {1};
	struct syncd_replica_io io = {
	    .publish = nop_env, .request = nop_env_to, .reply = nop_env_to};
	struct syncd_replica_config rc = {.node_id = 1,
					  .members = one,
					  .n_members = 1,
					  .heartbeat_ms = 100,
					  .peer_dead_ms = 1000,
					  .log_retain = 100,
					  .version = "0.1.0"};

	setup();
	snprintf(C.dir, sizeof(C.dir), "/dev/shm/syncd-relay-XXXXXX");
	cr_assert(mkdtemp(C.dir));
	strcpy(C.cfg.cluster, "lab");
	C.cfg.node_id = 1;
	cr_assert_eq(syncd_store_open(&C.store, C.dir), 0);
	cr_assert_eq(syncd_replica_open(&C.rep, &rc, C.store, &t.clk.clock, &io), 0);
	syncd_replica_tick(C.rep);
}

static void control_teardown(void)
{
	char cmd[128];

	syncd_replica_close(C.rep);
	syncd_store_close(C.store);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", C.dir);
	cr_assert_eq(system(cmd), 0);
	teardown();
}

TestSuite(relay_control, .init = control_setup, .fini = control_teardown);

static Gwcluster__CtlResponse *ctl_call(Gwcluster__RoleRequest *role, bool with_relay)
{
	struct syncd_control_ctx ctx = {C.rep, &C.cfg, NULL, NULL, with_relay ? ctl_role : NULL};
	Gwcluster__CtlRequest q = GWCLUSTER__CTL_REQUEST__INIT;
	Gwcluster__CtlResponse *r;
	uint8_t *in, *out;
	size_t len, outlen;

	q.version = 1;
	q.op_case = GWCLUSTER__CTL_REQUEST__OP_ROLE;
	q.role = role;
	len = gwcluster__ctl_request__get_packed_size(&q);
	in = malloc(len + 1);
	gwcluster__ctl_request__pack(&q, in);
	cr_assert_eq(syncd_control_handle(&ctx, in, len, &out, &outlen), 0);
	r = gwcluster__ctl_response__unpack(NULL, outlen, out);
	cr_assert_not_null(r);
	free(in);
	free(out);
	return r;
}

Test(relay_control, role_requests)
{
	Gwcluster__RoleRequest q = GWCLUSTER__ROLE_REQUEST__INIT;
	Gwcluster__CtlResponse *r;
	uint8_t key[32];
	ProtobufCBinaryData k = {32, key};

	memset(key, 9, sizeof(key));
	q.action = GWCLUSTER__ROLE_REQUEST__ACTION__SHOW;
	r = ctl_call(&q, false);
	cr_expect_eq(r->error, -EOPNOTSUPP, "no relay: role is refused");
	gwcluster__ctl_response__free_unpacked(r, NULL);

	r = ctl_call(&q, true);
	cr_expect_eq(r->error, 0);
	cr_assert_not_null(r->role, "role show without the node's state");
	cr_expect(r->role->has_ready && r->role->ready != 0);
	cr_expect_not(r->role->gwd_connected);
	cr_assert_not_null(r->message, "role show of a node not ready says why");
	gwcluster__ctl_response__free_unpacked(r, NULL);

	q.action = GWCLUSTER__ROLE_REQUEST__ACTION__MASTER;
	r = ctl_call(&q, true);
	cr_expect_eq(r->error, -EAGAIN);
	cr_expect(r->message && strstr(r->message, "--force"), "%s", r->message);
	gwcluster__ctl_response__free_unpacked(r, NULL);

	q.action = GWCLUSTER__ROLE_REQUEST__ACTION__RELEASE;
	q.public_keys = &k;
	q.n_public_keys = 1;
	r = ctl_call(&q, true);
	cr_expect_eq(r->error, -ENOENT, "a peer syncd does not know");
	cr_expect(r->message && strstr(r->message, "no peer"), "%s", r->message);
	gwcluster__ctl_response__free_unpacked(r, NULL);

	q.action = GWCLUSTER__ROLE_REQUEST__ACTION__BACKUP;
	q.n_public_keys = 0;
	r = ctl_call(&q, true);
	cr_expect_eq(r->error, -ENOTCONN, "no gwd");
	cr_expect_eq(r->role->role, GWCLUSTER__NODE_ROLE__NODE_ROLE_BACKUP, "not remembered");
	gwcluster__ctl_response__free_unpacked(r, NULL);
}

/* ------------------------------------------------------------------------ */
/* cluster.conf: SessionSocket and SyncedFile */

/* Loads a one-member config with extra [Cluster] lines; 0 or -errno (err set). */
static int load_conf(const char *extra, struct syncd_config **out, char *err, size_t errlen)
{
	char dir[] = "/tmp/test_relay_conf.XXXXXX", path[96], keyp[96], cmd[128];
	char pub_z85[41], sec_z85[41];
	uint8_t pub[32], sec[32];
	FILE *f;
	int rc;

	cr_assert_not_null(mkdtemp(dir));
	cr_assert_eq(syncd_curve_keypair(pub, sec), 0);
	syncd_z85_encode_key(pub_z85, pub);
	syncd_z85_encode_key(sec_z85, sec);
	snprintf(keyp, sizeof(keyp), "%s/curve.secret", dir);
	f = fopen(keyp, "w");
	fprintf(f, "%s\n", sec_z85);
	fclose(f);
	chmod(keyp, 0600);
	snprintf(path, sizeof(path), "%s/cluster.conf", dir);
	f = fopen(path, "w");
	fprintf(f,
		"[Cluster]\nName = lab\nNodeId = 1\nInterface = wg7\nCurveSecretKeyFile = %s\n%s\n"
		"[Member]\nNodeId = 1\nAddress = 203.0.113.1:7400\nCurvePublicKey = %s\n",
		keyp, extra, pub_z85);
	fclose(f);
	rc = syncd_config_load(out, path, err, errlen);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	cr_assert_eq(system(cmd), 0);
	return rc;
}

Test(relay_config, session_keys)
{
	static const struct {
		const char *extra;
		int rc;
		const char *socket, *synced;
	} cases[] = {
	    {"", 0, "/run/gwcluster/wg7.sessions", ""},
	    {"SessionSocket = /run/x/wg7.s\nSyncedFile = /run/x/synced", 0, "/run/x/wg7.s",
	     "/run/x/synced"},
	    {"SessionSocket = off", 0, "", ""},
	    {"SessionSocket = OFF", 0, "", ""},
	    {"SessionSocket = relative.sock", -EINVAL, NULL, NULL},
	    {"SyncedFile = synced", -EINVAL, NULL, NULL},
	    {"SessionSocket = /run/a/"
	     "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
	     "bbbbbbbbbbbbbbbbbbbbbbbbb",
	     -EINVAL, NULL, NULL},
	};
	char err[SYNCD_CONFIG_ERR_LEN];

	gw_log_init("test", GW_LOG_ERR, GW_LOG_STDERR);
	cr_assert_eq(gw_crypto_init(), 0);
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		struct syncd_config *c = NULL;
		int rc = load_conf(cases[i].extra, &c, err, sizeof(err));

		cr_expect_eq(rc, cases[i].rc, "case %zu: %s", i, err);
		if (!rc && !cases[i].rc) {
			cr_expect_str_eq(c->session_socket, cases[i].socket, "case %zu", i);
			cr_expect_str_eq(c->synced_file, cases[i].synced, "case %zu", i);
		}
		if (rc && cases[i].rc)
			cr_expect(strstr(err, ":6:"), "case %zu: the line is not blamed: %s", i,
				  err);
		syncd_config_free(c);
	}
}

/* ------------------------------------------------------------------------ */
/* gwctl's output of the session fields */

static char *fmt_buf;
static size_t fmt_len;

static char *json_check(const char *doc, const char *check)
{
	static char out[256];
	char cmd[1024], path[] = "/tmp/relay-json-XXXXXX";
	int fd = mkstemp(path);
	FILE *p;

	cr_assert(fd >= 0);
	cr_assert_eq(write(fd, doc, strlen(doc)), (ssize_t)strlen(doc));
	close(fd);
	snprintf(cmd, sizeof(cmd), "python3 -c 'import json; d=json.load(open(\"%s\")); %s'", path,
		 check);
	p = popen(cmd, "r");
	cr_assert(p);
	if (!fgets(out, sizeof(out), p))
		out[0] = '\0';
	cr_expect_eq(pclose(p), 0, "python rejected: %s", doc);
	unlink(path);
	return out;
}

static void summary_init(Gwcluster__SessionSummary *s, Gwcluster__NodeRole role, bool full)
{
	gwcluster__session_summary__init(s);
	s->has_role = s->has_gwd_connected = s->has_ready = true;
	s->role = role;
	s->gwd_connected = full;
	s->ready = full ? 0 : 2;
	if (!full)
		return;
	s->has_incarnation = s->has_boot = s->has_gwd_master = true;
	s->incarnation = s->boot = 3;
	s->gwd_master = role == GWCLUSTER__NODE_ROLE__NODE_ROLE_MASTER;
	s->has_peers_owned = s->has_sessions_owned = s->has_sessions_standby = true;
	s->peers_owned = 5;
	s->sessions_owned = 4;
	s->sessions_standby = 1;
	s->has_owner_epoch_max = s->has_send_epoch_max = true;
	s->owner_epoch_max = 9;
	s->send_epoch_max = 2;
	s->has_region_headroom_min = true;
	s->region_headroom_min = 268435000;
}

Test(relay_format, status_with_sessions)
{
	Gwcluster__SessionSummary s1, s2;
	Gwcluster__MemberStatus m[2] = {GWCLUSTER__MEMBER_STATUS__INIT,
					GWCLUSTER__MEMBER_STATUS__INIT};
	Gwcluster__MemberStatus *mp[2] = {&m[0], &m[1]};
	Gwcluster__ClusterStatus st = GWCLUSTER__CLUSTER_STATUS__INIT;
	FILE *f;

	summary_init(&s1, GWCLUSTER__NODE_ROLE__NODE_ROLE_MASTER, true);
	summary_init(&s2, GWCLUSTER__NODE_ROLE__NODE_ROLE_BACKUP, false);
	m[0].node_id = 1;
	m[0].self = true;
	m[0].reachable = true;
	m[0].sessions = &s1;
	m[0].has_session_batches = m[0].has_session_lost = true;
	m[0].session_batches = 12;
	m[1].node_id = 2;
	m[1].sessions = &s2;
	m[1].has_session_batch_ms_ago = m[1].has_session_delay_ms = true;
	m[1].session_batch_ms_ago = 1500;
	m[1].session_delay_ms = 3;
	m[1].has_session_batches = m[1].has_session_lost = true;
	m[1].session_lost = 2;
	st.cluster = "lab";
	st.node_id = 1;
	st.synced = true;
	st.members = mp;
	st.n_members = 2;
	st.has_ready = true;
	st.ready = 3;
	st.ready_reason = "the sessions of node 2 are not imported yet";

	f = open_memstream(&fmt_buf, &fmt_len);
	syncd_fmt_status_table(f, &st);
	fclose(f);
	cr_expect(strstr(fmt_buf, "ready for master: no (3): the sessions of node 2 are not "
				  "imported yet\n"),
		  "%s", fmt_buf);
	cr_expect(
	    strstr(fmt_buf,
		   "\nsessions:\n"
		   "NODE  ROLE    GWD              READY   OWNED  SESSIONS  STANDBY  EPOCHS  "
		   "HEADROOM   LAST BATCH  DELAY  LOST\n"
		   "1     master  yes, claims all  yes     5      4         1        9/2     "
		   "268435000  -           -      0\n"
		   "2     backup  no               no (2)  -      -         -        -       -  "
		   "        1.5s        3ms    2\n"),
	    "%s", fmt_buf);
	free(fmt_buf);

	f = open_memstream(&fmt_buf, &fmt_len);
	syncd_fmt_status_json(f, &st);
	fclose(f);
	cr_expect_str_eq(json_check(fmt_buf, "print(d[\"ready\"], d[\"members\"][0][\"sessions\"]"
					     "[\"sessions_owned\"], d[\"members\"][1][\"sessions\"]"
					     "[\"role\"], d[\"members\"][1][\"session_lost\"], "
					     "d[\"members\"][1][\"sessions\"][\"peers_owned\"])"),
			 "3 4 backup 2 None\n");
	free(fmt_buf);
}

Test(relay_format, role)
{
	Gwcluster__SessionSummary s;
	FILE *f;

	summary_init(&s, GWCLUSTER__NODE_ROLE__NODE_ROLE_MASTER, true);
	f = open_memstream(&fmt_buf, &fmt_len);
	syncd_fmt_role_text(f, &s, "role master: gwd claims every peer");
	fclose(f);
	cr_expect_str_eq(fmt_buf, "role master: gwd claims every peer\n"
				  "role: master\n"
				  "gwd: connected, boot 3 (incarnation 3), claims every peer\n"
				  "ready for master: yes\n"
				  "peers owned: 5, sessions owned: 4, standby sessions: 1\n"
				  "greatest ownership epoch: 9, greatest send epoch: 2\n"
				  "tightest counter region: 268435000 counters left\n");
	free(fmt_buf);
	f = open_memstream(&fmt_buf, &fmt_len);
	syncd_fmt_role_json(f, &s, "hi \"there\"");
	fclose(f);
	cr_expect_str_eq(json_check(fmt_buf, "print(d[\"role\"], d[\"ready\"], d[\"gwd_master\"], "
					     "d[\"region_headroom_min\"], d[\"message\"])"),
			 "master 0 True 268435000 hi \"there\"\n");
	free(fmt_buf);
	f = open_memstream(&fmt_buf, &fmt_len);
	syncd_fmt_role_json(f, NULL, NULL);
	fclose(f);
	cr_expect_str_eq(json_check(fmt_buf, "print(d[\"role\"], d[\"message\"])"), "None None\n");
	free(fmt_buf);
}

Test(relay_file, refresh_only_when_different)
{
	char dir[] = "/tmp/test_relay.XXXXXX", path[64];
	FILE *f;

	cr_assert_not_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/synced", dir);
	cr_expect_eq(syncd_synced_file_refresh(path, 3), 1, "a missing file is written");
	cr_expect_eq(syncd_synced_file_refresh(path, 3), 0);
	f = fopen(path, "w");
	fputs("1\n", f); /* keepalived's init_file */
	fclose(f);
	cr_expect_eq(syncd_synced_file_refresh(path, 0), 1);
	cr_expect_eq(syncd_synced_file_refresh(path, 0), 0);
	unlink(path);
	rmdir(dir);
}
