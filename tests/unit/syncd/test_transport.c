// SPDX-License-Identifier: MIT
/*
 * The transport over real libzmq sockets on loopback. Criterion runs every
 * test in its own process; the network tests first move that process into a
 * fresh network namespace (fixed ports cannot clash, nothing touches the
 * host). Several transports share one gw_loop, pumped until a condition
 * holds or a deadline passes. Misbehaving peers are raw ZeroMQ sockets built
 * here with a member's keys, a stranger's, or an impostor's.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "gw/crypto.h"
#include "gw/loop.h"
#include "gw/nl.h"
#include "transport.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define CLUSTER	     "lab"

enum {
	MAX_NODES = 4,
	MAX_SEEN = 512,
	WAIT_MS = 10000,
	BASE_PORT = 17100,
	PROBE = 0xfffff, /* tag of connectivity probes, forgotten once connected */
};

struct seen {
	uint8_t from;
	enum syncd_channel ch;
	uint64_t tag; /* heartbeat sent_unix_ms or request_id */
};

struct node {
	struct syncd_transport *t;
	uint8_t id;
	struct seen seen[MAX_SEEN]; /* everything but probes */
	unsigned n_seen;
	bool probed[256][3]; /* [from][channel]: a probe arrived */
};

static struct {
	struct gw_loop *loop;
	struct syncd_member members[MAX_NODES];
	uint8_t secrets[MAX_NODES][SYNCD_CURVE_KEY_LEN];
	unsigned n_members;
	struct node nodes[MAX_NODES + 1]; /* by node id */
	void *raw_ctx;
	void *raw[8]; /* closed by lab_fini, so a failed test cannot hang in zmq_ctx_term */
	unsigned n_raw;
} lab;

/* ------------------------------------------------------------------------ */
/* Lab */

static void enter_netns(void)
{
	struct gw_nl *nl = NULL;
	int lo;

	if (unshare(CLONE_NEWNET)) {
		if (errno == EPERM)
			cr_skip_test("unshare(CLONE_NEWNET) needs root (CAP_SYS_ADMIN); skipped");
		cr_assert_fail("unshare(CLONE_NEWNET): %s", strerror(errno));
	}
	cr_assert_eq(gw_nl_open(&nl), 0);
	cr_assert_eq(gw_nl_link_index(nl, "lo", &lo), 0);
	cr_assert_eq(gw_nl_link_set_up(nl, lo, true), 0);
	gw_nl_close(nl);
}

/* n members on host, node ids 1..n, fresh keys. */
static void lab_init(const char *host, unsigned n)
{
	enter_netns();
	cr_assert_eq(gw_loop_new(&lab.loop, NULL), 0);
	lab.n_members = n;
	for (unsigned i = 0; i < n; i++) {
		struct syncd_member *m = &lab.members[i];

		m->node_id = (uint8_t)(i + 1);
		snprintf(m->host, sizeof(m->host), "%s", host);
		m->port = (uint16_t)(BASE_PORT + 10 * (i + 1));
		cr_assert_eq(syncd_curve_keypair(m->curve_public, lab.secrets[i]), 0);
	}
}

static void lab_fini(void)
{
	for (unsigned i = 0; i < ARRAY_LEN(lab.nodes); i++)
		syncd_transport_close(lab.nodes[i].t);
	for (unsigned i = 0; i < lab.n_raw; i++)
		zmq_close(lab.raw[i]);
	if (lab.raw_ctx)
		zmq_ctx_term(lab.raw_ctx);
	if (lab.loop)
		gw_loop_free(lab.loop);
}

static void on_envelope(void *arg, uint8_t from, enum syncd_channel ch, Gwcluster__Envelope *env);

static struct syncd_transport_config config_for(uint8_t id, const char *cluster)
{
	struct syncd_transport_config cfg = {
	    .cluster = cluster,
	    .node_id = id,
	    .members = lab.members,
	    .n_members = lab.n_members,
	    .heartbeat_ms = 500,
	};

	memcpy(cfg.curve_secret, lab.secrets[id - 1], SYNCD_CURVE_KEY_LEN);
	return cfg;
}

/* Opens node id with its own view of the members (NULL: the lab's). */
static int node_open_as(uint8_t id, const char *cluster, const struct syncd_member *members)
{
	struct syncd_transport_config cfg = config_for(id, cluster);
	struct node *n = &lab.nodes[id];

	if (members)
		cfg.members = members;
	memset(n, 0, sizeof(*n));
	n->id = id;
	return syncd_transport_open(&n->t, &cfg, lab.loop, on_envelope, n);
}

static int node_open_in(uint8_t id, const char *cluster)
{
	return node_open_as(id, cluster, NULL);
}

static void node_open(uint8_t id)
{
	cr_assert_eq(node_open_in(id, CLUSTER), 0, "node %u does not open", id);
}

static void node_close(uint8_t id)
{
	syncd_transport_close(lab.nodes[id].t);
	lab.nodes[id].t = NULL;
}

static const struct syncd_transport_stats *stats(uint8_t id)
{
	return syncd_transport_stats(lab.nodes[id].t);
}

typedef bool cond_fn(void *arg);

/* Runs the loop until cond holds or WAIT_MS pass; then cond's value. */
static bool pump_until(cond_fn *cond, void *arg)
{
	const struct gw_clock *clock = gw_loop_clock(lab.loop);
	uint64_t deadline = gw_clock_mono_ns(clock) + WAIT_MS * 1000000ull;

	while (gw_clock_mono_ns(clock) < deadline) {
		if (cond(arg))
			return true;
		gw_loop_run_once(lab.loop, 10);
	}
	return cond(arg);
}

static void pump_for(unsigned ms)
{
	const struct gw_clock *clock = gw_loop_clock(lab.loop);
	uint64_t deadline = gw_clock_mono_ns(clock) + ms * 1000000ull;

	while (gw_clock_mono_ns(clock) < deadline)
		gw_loop_run_once(lab.loop, 10);
}

/* ------------------------------------------------------------------------ */
/* Envelopes */

static void heartbeat(Gwcluster__Envelope *env, Gwcluster__Heartbeat *hb, uint64_t tag)
{
	gwcluster__envelope__init(env);
	gwcluster__heartbeat__init(hb);
	hb->sent_unix_ms = tag;
	hb->synced = true;
	env->body_case = GWCLUSTER__ENVELOPE__BODY_HEARTBEAT;
	env->heartbeat = hb;
}

static int publish(uint8_t id, uint64_t tag)
{
	Gwcluster__Envelope env;
	Gwcluster__Heartbeat hb;

	heartbeat(&env, &hb, tag);
	return syncd_transport_publish(lab.nodes[id].t, &env);
}

static void snapshot_request(Gwcluster__Envelope *env, Gwcluster__SnapshotRequest *rq, uint64_t tag)
{
	gwcluster__envelope__init(env);
	gwcluster__snapshot_request__init(rq);
	rq->request_id = tag;
	env->body_case = GWCLUSTER__ENVELOPE__BODY_SNAPSHOT_REQUEST;
	env->snapshot_request = rq;
}

static int request(uint8_t from, uint8_t to, uint64_t tag)
{
	Gwcluster__Envelope env;
	Gwcluster__SnapshotRequest rq;

	snapshot_request(&env, &rq, tag);
	return syncd_transport_request(lab.nodes[from].t, to, &env);
}

/* Answers every request with a last SnapshotChunk bearing its request_id. */
static void answer(struct node *n, uint8_t to, uint64_t request_id)
{
	Gwcluster__Envelope env = GWCLUSTER__ENVELOPE__INIT;
	Gwcluster__SnapshotChunk chunk = GWCLUSTER__SNAPSHOT_CHUNK__INIT;

	chunk.request_id = request_id;
	chunk.last = true;
	env.body_case = GWCLUSTER__ENVELOPE__BODY_SNAPSHOT_CHUNK;
	env.snapshot_chunk = &chunk;
	cr_assert_eq(syncd_transport_reply(n->t, to, &env), 0);
}

static void on_envelope(void *arg, uint8_t from, enum syncd_channel ch, Gwcluster__Envelope *env)
{
	struct node *n = arg;
	struct seen *s;

	cr_assert_eq(env->origin, from);
	cr_assert_eq(env->version, SYNCD_PROTO_VERSION);
	cr_assert_str_eq(env->cluster, CLUSTER);
	cr_assert_neq(from, n->id);
	if (env->body_case == GWCLUSTER__ENVELOPE__BODY_HEARTBEAT &&
	    env->heartbeat->sent_unix_ms == PROBE) {
		n->probed[from][ch] = true;
		return;
	}
	if (env->body_case == GWCLUSTER__ENVELOPE__BODY_SNAPSHOT_REQUEST &&
	    env->snapshot_request->request_id == PROBE) {
		n->probed[from][ch] = true;
		answer(n, from, PROBE);
		return;
	}
	cr_assert_lt(n->n_seen, MAX_SEEN);
	s = &n->seen[n->n_seen++];
	s->from = from;
	s->ch = ch;
	switch (env->body_case) {
	case GWCLUSTER__ENVELOPE__BODY_HEARTBEAT:
		cr_assert_eq(ch, SYNCD_CHANNEL_STREAM);
		s->tag = env->heartbeat->sent_unix_ms;
		break;
	case GWCLUSTER__ENVELOPE__BODY_SNAPSHOT_REQUEST:
		cr_assert_eq(ch, SYNCD_CHANNEL_REQUEST);
		s->tag = env->snapshot_request->request_id;
		answer(n, from, s->tag);
		break;
	case GWCLUSTER__ENVELOPE__BODY_SNAPSHOT_CHUNK:
		cr_assert_eq(ch, SYNCD_CHANNEL_REPLY);
		s->tag = env->snapshot_chunk->request_id;
		break;
	default:
		cr_assert_fail("unexpected body %d", env->body_case);
	}
}

static unsigned count_seen(uint8_t at, uint8_t from, enum syncd_channel ch, uint64_t tag)
{
	const struct node *n = &lab.nodes[at];
	unsigned c = 0;

	for (unsigned i = 0; i < n->n_seen; i++)
		c += n->seen[i].from == from && n->seen[i].ch == ch && n->seen[i].tag == tag;
	return c;
}

static unsigned count_from(uint8_t at, uint8_t from)
{
	const struct node *n = &lab.nodes[at];
	unsigned c = 0;

	for (unsigned i = 0; i < n->n_seen; i++)
		c += n->seen[i].from == from;
	return c;
}

static void forget_seen(void)
{
	for (unsigned i = 0; i < ARRAY_LEN(lab.nodes); i++)
		lab.nodes[i].n_seen = 0;
}

/* ------------------------------------------------------------------------ */
/* Connectivity */

struct mesh {
	const uint8_t *ids;
	unsigned n;
};

/* Every node of the mesh has received a probe from every other one. */
static bool mesh_ready(void *arg)
{
	const struct mesh *m = arg;

	for (unsigned a = 0; a < m->n; a++)
		for (unsigned b = 0; b < m->n; b++)
			if (a != b && !lab.nodes[m->ids[b]].probed[m->ids[a]][SYNCD_CHANNEL_STREAM])
				return false;
	return true;
}

static bool probe_mesh(void *arg)
{
	const struct mesh *m = arg;

	if (mesh_ready(arg))
		return true;
	/* A subscriber misses what was published before it connected. */
	for (unsigned i = 0; i < m->n; i++)
		cr_assert_eq(publish(m->ids[i], PROBE), 0);
	return false;
}

/* Waits until the stream flows between all of ids, then forgets the probes. */
static void connect_stream(const uint8_t *ids, unsigned n)
{
	struct mesh m = {ids, n};

	cr_assert(pump_until(probe_mesh, &m), "the stream never connected");
	forget_seen();
}

struct req {
	uint8_t from, to;
	uint64_t tag;
	int last_err;
};

/* Requests until one is accepted (the DEALER connects in the background). */
static bool try_request(void *arg)
{
	struct req *r = arg;

	r->last_err = request(r->from, r->to, r->tag);
	cr_assert(r->last_err == 0 || r->last_err == -ENOTCONN || r->last_err == -EAGAIN,
		  "request: %s", strerror(-r->last_err));
	return r->last_err == 0;
}

static bool got_reply(void *arg)
{
	const struct req *r = arg;

	return count_seen(r->from, r->to, SYNCD_CHANNEL_REPLY, r->tag) > 0;
}

/* A request from `from` to `to` and its reply both arrive. */
static void round_trip(uint8_t from, uint8_t to, uint64_t tag)
{
	struct req r = {from, to, tag, 0};

	cr_assert(pump_until(try_request, &r), "request %u -> %u never accepted: %s", from, to,
		  strerror(-r.last_err));
	cr_assert(pump_until(got_reply, &r), "no reply %u -> %u", to, from);
	cr_assert_eq(count_seen(to, from, SYNCD_CHANNEL_REQUEST, tag), 1);
	cr_assert_eq(count_seen(from, to, SYNCD_CHANNEL_REPLY, tag), 1);
}

/* ------------------------------------------------------------------------ */
/* Raw sockets */

static void *raw_ctx(void)
{
	if (!lab.raw_ctx)
		lab.raw_ctx = zmq_ctx_new();
	cr_assert_not_null(lab.raw_ctx);
	return lab.raw_ctx;
}

static void raw_opt(void *s, int opt, const void *v, size_t len)
{
	cr_assert_eq(zmq_setsockopt(s, opt, v, len), 0, "setsockopt %d: %s", opt,
		     zmq_strerror(errno));
}

static void raw_common(void *s)
{
	int zero = 0;
	int64_t max = -1;

	cr_assert_lt(lab.n_raw, ARRAY_LEN(lab.raw));
	lab.raw[lab.n_raw++] = s;
	raw_opt(s, ZMQ_LINGER, &zero, sizeof(zero));
	raw_opt(s, ZMQ_MAXMSGSIZE, &max, sizeof(max));
}

/* A CURVE server of `type` with the given secret, bound where member `as` is. */
static void *raw_server(int type, const uint8_t secret[static 32], uint8_t as, unsigned port_offset)
{
	void *s = zmq_socket(raw_ctx(), type);
	int one = 1;
	char addr[96];

	cr_assert_not_null(s);
	raw_common(s);
	raw_opt(s, ZMQ_CURVE_SERVER, &one, sizeof(one));
	raw_opt(s, ZMQ_CURVE_SECRETKEY, secret, 32);
	snprintf(addr, sizeof(addr), "tcp://%.63s:%u", lab.members[as - 1].host,
		 lab.members[as - 1].port + port_offset);
	cr_assert_eq(zmq_bind(s, addr), 0, "bind %s: %s", addr, zmq_strerror(errno));
	return s;
}

/* A CURVE DEALER with the given keys, connected to member `to`'s ROUTER. */
static void *raw_dealer(const uint8_t pub[static 32], const uint8_t secret[static 32], uint8_t to)
{
	void *s = zmq_socket(raw_ctx(), ZMQ_DEALER);
	char addr[96];

	cr_assert_not_null(s);
	raw_common(s);
	raw_opt(s, ZMQ_CURVE_SERVERKEY, lab.members[to - 1].curve_public, 32);
	raw_opt(s, ZMQ_CURVE_PUBLICKEY, pub, 32);
	raw_opt(s, ZMQ_CURVE_SECRETKEY, secret, 32);
	snprintf(addr, sizeof(addr), "tcp://%.63s:%u", lab.members[to - 1].host,
		 lab.members[to - 1].port + 1);
	cr_assert_eq(zmq_connect(s, addr), 0);
	return s;
}

/* Packs an Envelope with arbitrary header fields into a malloc'd buffer. */
static uint8_t *raw_envelope(size_t *len, uint32_t version, uint32_t origin, const char *cluster,
			     uint64_t tag, bool request)
{
	Gwcluster__Envelope env;
	Gwcluster__Heartbeat hb;
	Gwcluster__SnapshotRequest rq;
	uint8_t *buf;

	if (request)
		snapshot_request(&env, &rq, tag);
	else
		heartbeat(&env, &hb, tag);
	env.version = version;
	env.origin = origin;
	env.cluster = (char *)cluster;
	*len = gwcluster__envelope__get_packed_size(&env);
	buf = malloc(*len + 1);
	cr_assert_not_null(buf);
	gwcluster__envelope__pack(&env, buf);
	return buf;
}

static void raw_send_envelope(void *s, uint32_t version, uint32_t origin, const char *cluster,
			      uint64_t tag, bool request)
{
	size_t len;
	uint8_t *buf = raw_envelope(&len, version, origin, cluster, tag, request);

	cr_assert_eq(zmq_send(s, buf, len, 0), (int)len);
	free(buf);
}

struct raw_probe {
	void *sock;
	uint8_t as; /* the member whose keys the raw socket holds */
	uint8_t at; /* the node that must hear it */
	bool request;
};

static bool raw_probe_heard(void *arg)
{
	struct raw_probe *p = arg;
	enum syncd_channel ch = p->request ? SYNCD_CHANNEL_REQUEST : SYNCD_CHANNEL_STREAM;

	if (lab.nodes[p->at].probed[p->as][ch])
		return true;
	if (p->request) {
		size_t len;
		uint8_t *buf = raw_envelope(&len, 1, p->as, CLUSTER, PROBE, true);

		zmq_send(p->sock, buf, len, ZMQ_DONTWAIT);
		free(buf);
	} else {
		raw_send_envelope(p->sock, 1, p->as, CLUSTER, PROBE, false);
	}
	return false;
}

/* Waits until node `at` hears the raw socket as member `as`, then forgets the probes. */
static void raw_connect(void *sock, uint8_t as, uint8_t at, bool request)
{
	struct raw_probe p = {sock, as, at, request};

	cr_assert(pump_until(raw_probe_heard, &p), "node %u never heard the raw socket", at);
	forget_seen();
}

struct marker {
	uint8_t at, from;
	enum syncd_channel ch;
	uint64_t tag;
};

static bool marker_seen(void *arg)
{
	const struct marker *m = arg;

	return count_seen(m->at, m->from, m->ch, m->tag) > 0;
}

static void wait_marker(uint8_t at, uint8_t from, enum syncd_channel ch, uint64_t tag)
{
	struct marker m = {at, from, ch, tag};

	cr_assert(pump_until(marker_seen, &m), "node %u never got %lu from %u", at,
		  (unsigned long)tag, from);
}

/* ------------------------------------------------------------------------ */
/* Keys */

/* The key pairs of libzmq's own security tests (Z85 text). */
static const struct {
	const char *secret, *public;
} known_pairs[] = {
    {"D:)Q[IlAW!ahhC2ac:9*A}h:p?([4%wOTJ%JR%cs", "Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hID"},
    {"JTKVSB%%)wK0E.X)V>+}o?pNmC{O&4W4b!Ni{Lh6", "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7"},
};

Test(keys, known_answers)
{
	for (unsigned i = 0; i < ARRAY_LEN(known_pairs); i++) {
		uint8_t sec[32], pub[32], want[32], ref[32];
		char text[41];

		cr_assert_eq(syncd_z85_decode_key(sec, known_pairs[i].secret), 0);
		cr_assert_eq(syncd_z85_decode_key(want, known_pairs[i].public), 0);
		cr_assert_eq(syncd_curve_public(pub, sec), 0);
		cr_assert_arr_eq(pub, want, 32, "pair %u", i);
		/* CURVE keys are X25519 keys: an independent implementation agrees. */
		cr_assert(gw_x25519_public(ref, sec));
		cr_assert_arr_eq(ref, want, 32);
		syncd_z85_encode_key(text, pub);
		cr_assert_str_eq(text, known_pairs[i].public);
	}
}

Test(keys, keypairs_are_x25519_and_distinct)
{
	uint8_t pub[8][32], sec[8][32];

	for (unsigned i = 0; i < 8; i++) {
		uint8_t again[32], ref[32], back[32];
		char text[41];

		cr_assert_eq(syncd_curve_keypair(pub[i], sec[i]), 0);
		cr_assert_eq(syncd_curve_public(again, sec[i]), 0);
		cr_assert_arr_eq(again, pub[i], 32);
		cr_assert(gw_x25519_public(ref, sec[i]));
		cr_assert_arr_eq(ref, pub[i], 32);
		syncd_z85_encode_key(text, sec[i]);
		cr_assert_eq(strlen(text), 40);
		cr_assert_eq(syncd_z85_decode_key(back, text), 0);
		cr_assert_arr_eq(back, sec[i], 32);
		for (unsigned j = 0; j < i; j++)
			cr_assert_arr_neq(pub[i], pub[j], 32);
	}
}

Test(keys, z85_rejects)
{
	static const char *const bad[] = {
	    "",
	    "Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hI",	 /* 39 characters */
	    "Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hIDx", /* 41 */
	    "Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hI~",	 /* not in the alphabet */
	    "Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hI ",
	    "%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%", /* overflows 32 bits */
	};
	uint8_t key[32];

	for (unsigned i = 0; i < ARRAY_LEN(bad); i++)
		cr_assert_eq(syncd_z85_decode_key(key, bad[i]), -EINVAL, "case %u", i);
	cr_assert_eq(syncd_z85_decode_key(key, NULL), -EINVAL);
}

/* ------------------------------------------------------------------------ */
/* Configuration */

TestSuite(transport, .fini = lab_fini);

static void no_cluster(struct syncd_transport_config *c)
{
	c->cluster = NULL;
}
static void empty_cluster(struct syncd_transport_config *c)
{
	c->cluster = "";
}
static void not_a_member(struct syncd_transport_config *c)
{
	c->node_id = 9;
}
static void no_members(struct syncd_transport_config *c)
{
	c->n_members = 0;
}
static void wrong_secret(struct syncd_transport_config *c)
{
	memcpy(c->curve_secret, lab.secrets[1], 32);
}
static void huge_heartbeat(struct syncd_transport_config *c)
{
	c->heartbeat_ms = 3600 * 1000;
}
static void bad_bind_host(struct syncd_transport_config *c)
{
	c->bind_host = "localhost";
}

static struct syncd_member bad_members[MAX_NODES];

static void with_members(struct syncd_transport_config *c)
{
	c->members = bad_members;
}
static void dup_id(struct syncd_transport_config *c)
{
	with_members(c);
	bad_members[1].node_id = 1;
}
static void dup_key(struct syncd_transport_config *c)
{
	with_members(c);
	memcpy(bad_members[2].curve_public, bad_members[1].curve_public, 32);
}
static void zero_id(struct syncd_transport_config *c)
{
	with_members(c);
	bad_members[2].node_id = 0;
}
static void name_host(struct syncd_transport_config *c)
{
	with_members(c);
	strcpy(bad_members[1].host, "node2.example");
}
static void zero_port(struct syncd_transport_config *c)
{
	with_members(c);
	bad_members[1].port = 0;
}
static void last_port(struct syncd_transport_config *c)
{
	with_members(c);
	bad_members[0].port = 65535; /* no room for the ROUTER */
}
static void unterminated_host(struct syncd_transport_config *c)
{
	with_members(c);
	memset(bad_members[1].host, '1', sizeof(bad_members[1].host));
}

Test(transport, bad_config_is_einval)
{
	static void (*const mutate[])(struct syncd_transport_config *) = {
	    no_cluster,	   empty_cluster,  not_a_member, no_members,	    wrong_secret,
	    bad_bind_host, huge_heartbeat, dup_id,	 dup_key,	    zero_id,
	    name_host,	   zero_port,	   last_port,	 unterminated_host,
	};

	lab_init("127.0.0.1", 3);
	for (unsigned i = 0; i < ARRAY_LEN(mutate); i++) {
		struct syncd_transport_config cfg = config_for(1, CLUSTER);
		struct syncd_transport *t = (void *)1;

		memcpy(bad_members, lab.members, sizeof(bad_members));
		mutate[i](&cfg);
		cr_assert_eq(syncd_transport_open(&t, &cfg, lab.loop, on_envelope, NULL), -EINVAL,
			     "case %u", i);
		cr_assert_null(t, "case %u", i);
	}
	/* The unmutated config does open. */
	node_open(1);
}

Test(transport, ports_in_use)
{
	struct syncd_transport_config cfg;
	struct syncd_transport *t = NULL;

	lab_init("127.0.0.1", 2);
	node_open(1);
	cfg = config_for(1, CLUSTER);
	cr_assert_eq(syncd_transport_open(&t, &cfg, lab.loop, on_envelope, NULL), -EADDRINUSE);
	cr_assert_null(t);
}

/* ------------------------------------------------------------------------ */
/* Working cluster */

Test(transport, stream_reaches_every_member)
{
	static const uint8_t ids[] = {1, 2, 3};
	enum { N = 20 };

	lab_init("127.0.0.1", 3);
	for (unsigned i = 0; i < 3; i++)
		node_open(ids[i]);
	connect_stream(ids, 3);
	for (uint64_t tag = 1; tag <= N; tag++)
		for (unsigned i = 0; i < 3; i++)
			cr_assert_eq(publish(ids[i], 1000 * ids[i] + tag), 0);
	for (unsigned at = 1; at <= 3; at++) {
		struct marker m = {(uint8_t)at, (uint8_t)(at % 3 + 1), SYNCD_CHANNEL_STREAM, 0};

		for (uint8_t from = 1; from <= 3; from++) {
			if (from == at)
				continue;
			m.from = from;
			m.tag = 1000 * from + N;
			cr_assert(pump_until(marker_seen, &m), "%u never got %u's stream", at,
				  from);
		}
	}
	/* Each once, in publishing order. */
	for (uint8_t at = 1; at <= 3; at++) {
		const struct node *n = &lab.nodes[at];
		uint64_t next[4] = {0, 1, 1, 1};

		cr_assert_eq(n->n_seen, 2 * N);
		for (unsigned i = 0; i < n->n_seen; i++) {
			cr_assert_eq(n->seen[i].tag,
				     1000 * n->seen[i].from + next[n->seen[i].from]);
			next[n->seen[i].from]++;
		}
		cr_assert_geq(stats(at)->rx_messages, 2 * N);
		cr_assert_geq(stats(at)->tx_messages, N);
		cr_assert_eq(stats(at)->rejected_malformed + stats(at)->rejected_origin +
				 stats(at)->rejected_cluster + stats(at)->zap_denied +
				 stats(at)->handshake_failed,
			     0);
	}
}

Test(transport, request_and_reply_both_ways)
{
	Gwcluster__Envelope env;
	Gwcluster__SnapshotRequest rq;

	lab_init("127.0.0.1", 3);
	node_open(1);
	node_open(2);
	node_open(3);
	round_trip(1, 2, 11);
	round_trip(2, 1, 12);
	round_trip(3, 1, 13);
	round_trip(1, 3, 14);
	/* Only the asked node answers, and only the asker gets the answer. */
	cr_assert_eq(count_from(3, 1) + count_from(3, 2), 2);
	snapshot_request(&env, &rq, 99);
	cr_assert_eq(syncd_transport_reply(lab.nodes[2].t, 3, &env), -ENOTCONN);
	cr_assert_eq(syncd_transport_request(lab.nodes[1].t, 1, &env), -EINVAL);
	cr_assert_eq(syncd_transport_request(lab.nodes[1].t, 7, &env), -EINVAL);
	cr_assert_eq(syncd_transport_reply(lab.nodes[1].t, 7, &env), -EINVAL);
	/* No body: nobody could accept it. */
	env.body_case = GWCLUSTER__ENVELOPE__BODY__NOT_SET;
	cr_assert_eq(syncd_transport_publish(lab.nodes[1].t, &env), -EINVAL);
}

Test(transport, request_to_a_member_that_is_down)
{
	lab_init("127.0.0.1", 2);
	node_open(1);
	pump_for(300);
	cr_assert_eq(request(1, 2, 5), -ENOTCONN);
	node_open(2);
	round_trip(1, 2, 6);
}

Test(transport, ipv6_loopback)
{
	static const uint8_t ids[] = {1, 2};

	lab_init("::1", 2);
	node_open(1);
	node_open(2);
	connect_stream(ids, 2);
	cr_assert_eq(publish(2, 42), 0);
	wait_marker(1, 2, SYNCD_CHANNEL_STREAM, 42);
	round_trip(1, 2, 43);
	round_trip(2, 1, 44);
}

Test(transport, member_restart_reconnects)
{
	static const uint8_t ids[] = {1, 2, 3};

	lab_init("127.0.0.1", 3);
	for (unsigned i = 0; i < 3; i++)
		node_open(ids[i]);
	connect_stream(ids, 3);
	round_trip(1, 2, 1);
	node_close(2);
	cr_assert_eq(publish(1, 7), 0);
	wait_marker(3, 1, SYNCD_CHANNEL_STREAM, 7);
	node_open(2);
	connect_stream(ids, 3);
	round_trip(1, 2, 2);
	round_trip(2, 1, 3);
	/* 1 answers 2's new connection, not the dead one. */
	round_trip(2, 3, 4);
}

/* ------------------------------------------------------------------------ */
/* Hostile peers */

struct denied {
	uint8_t id;
	uint64_t zap, handshakes;
};

static bool denied_enough(void *arg)
{
	const struct denied *d = arg;

	return stats(d->id)->zap_denied >= d->zap &&
	       stats(d->id)->handshake_failed >= d->handshakes;
}

static void wait_denied(uint8_t id, uint64_t zap, uint64_t handshakes)
{
	struct denied d = {id, zap, handshakes};

	cr_assert(pump_until(denied_enough, &d), "node %u: zap_denied %lu, handshake_failed %lu",
		  id, (unsigned long)stats(id)->zap_denied,
		  (unsigned long)stats(id)->handshake_failed);
}

/*
 * Node 4 runs a real transport whose member list includes itself, but the
 * members' lists do not: its SUBs and DEALERs are refused by their ZAP
 * handlers, it hears nothing and can inject nothing.
 */
Test(transport, stranger_is_refused)
{
	static const uint8_t ids[] = {1, 2, 3};
	uint8_t stranger_pub[32], stranger_sec[32];
	void *raw;

	lab_init("127.0.0.1", 4);
	lab.n_members = 3; /* members 1..3 do not know node 4 */
	for (unsigned i = 0; i < 3; i++)
		node_open(ids[i]);
	lab.n_members = 4;
	node_open(4);
	lab.n_members = 3;
	connect_stream(ids, 3);
	/* Each member refuses the stranger's SUB and DEALER at least once. */
	for (uint8_t id = 1; id <= 3; id++)
		wait_denied(id, 2, 2);
	cr_assert_geq(stats(4)->handshake_failed, 1);
	cr_assert_eq(request(4, 1, 77), -ENOTCONN);
	cr_assert_eq(publish(4, 78), 0);
	/* A raw client with a fresh key fares no better. */
	cr_assert_eq(syncd_curve_keypair(stranger_pub, stranger_sec), 0);
	raw = raw_dealer(stranger_pub, stranger_sec, 1);
	raw_send_envelope(raw, 1, 4, CLUSTER, 79, true);
	wait_denied(1, 3, 3);
	for (uint64_t tag = 1; tag <= 5; tag++)
		for (uint8_t id = 1; id <= 3; id++)
			cr_assert_eq(publish(id, tag), 0);
	wait_marker(1, 3, SYNCD_CHANNEL_STREAM, 5);
	wait_marker(3, 1, SYNCD_CHANNEL_STREAM, 5);
	pump_for(300);
	cr_assert_eq(lab.nodes[4].n_seen, 0, "the stranger heard the stream");
	for (uint8_t id = 1; id <= 3; id++)
		cr_assert_eq(count_from(id, 4), 0);
	cr_assert_eq(stats(4)->rx_messages, 0);
}

/* Something listening where member 3 should be, without 3's secret key: the
 * members' SUB and DEALER fail the handshake and accept nothing from it. */
Test(transport, impostor_server_is_refused)
{
	uint8_t pub[32], sec[32];
	void *ipub;

	lab_init("127.0.0.1", 3);
	node_open(1);
	node_open(2);
	cr_assert_eq(syncd_curve_keypair(pub, sec), 0);
	ipub = raw_server(ZMQ_PUB, sec, 3, 0);
	raw_server(ZMQ_ROUTER, sec, 3, 1);
	wait_denied(1, 0, 2);
	wait_denied(2, 0, 2);
	for (int i = 0; i < 20; i++) {
		raw_send_envelope(ipub, 1, 3, CLUSTER, 5, false);
		pump_for(10);
	}
	cr_assert_eq(count_from(1, 3) + count_from(2, 3), 0);
	cr_assert_eq(request(1, 3, 6), -ENOTCONN);
}

/* The request_id of the next reply on a raw DEALER that is no probe's. */
static uint64_t raw_reply(void *dealer)
{
	int timeout_ms = 100;

	raw_opt(dealer, ZMQ_RCVTIMEO, &timeout_ms, sizeof(timeout_ms));
	for (int tries = 0; tries < WAIT_MS / 100; tries++) {
		uint8_t buf[64];
		int n = zmq_recv(dealer, buf, sizeof(buf), 0);
		Gwcluster__Envelope *env;
		uint64_t id;

		if (n < 0)
			continue;
		cr_assert_leq(n, (int)sizeof(buf));
		env = gwcluster__envelope__unpack(NULL, (size_t)n, buf);
		cr_assert_not_null(env);
		cr_assert_eq(env->origin, 1);
		cr_assert_eq(env->body_case, GWCLUSTER__ENVELOPE__BODY_SNAPSHOT_CHUNK);
		id = env->snapshot_chunk->request_id;
		gwcluster__envelope__free_unpacked(env, NULL);
		if (id != PROBE)
			return id;
	}
	cr_assert_fail("no reply on the raw DEALER");
	return 0;
}

/* A legitimate member's keys, but an Envelope claiming another origin. */
Test(transport, origin_must_be_the_sender)
{
	void *rpub, *rdealer;

	lab_init("127.0.0.1", 3);
	node_open(1);
	rpub = raw_server(ZMQ_PUB, lab.secrets[2], 3, 0);
	raw_connect(rpub, 3, 1, false);
	raw_send_envelope(rpub, 1, 2, CLUSTER, 100, false);
	raw_send_envelope(rpub, 1, 3, CLUSTER, 101, false);
	wait_marker(1, 3, SYNCD_CHANNEL_STREAM, 101);
	cr_assert_eq(stats(1)->rejected_origin, 1);
	cr_assert_eq(count_seen(1, 2, SYNCD_CHANNEL_STREAM, 100) +
			 count_seen(1, 3, SYNCD_CHANNEL_STREAM, 100),
		     0);

	/* The same on the request path; and the reply reaches the raw client. */
	rdealer = raw_dealer(lab.members[2].curve_public, lab.secrets[2], 1);
	raw_connect(rdealer, 3, 1, true);
	raw_send_envelope(rdealer, 1, 2, CLUSTER, 200, true);
	raw_send_envelope(rdealer, 1, 3, CLUSTER, 201, true);
	wait_marker(1, 3, SYNCD_CHANNEL_REQUEST, 201);
	cr_assert_eq(stats(1)->rejected_origin, 2);
	cr_assert_eq(lab.nodes[1].n_seen, 1);
	cr_assert_eq(raw_reply(rdealer), 201);
}

/* Node 3 has the right keys but believes in another cluster. */
static bool cluster_refused(void *arg)
{
	(void)arg;
	cr_assert_eq(publish(1, PROBE), 0);
	cr_assert_eq(publish(3, PROBE), 0);
	return stats(1)->rejected_cluster >= 3 && stats(3)->rejected_cluster >= 3;
}

Test(transport, other_cluster_is_refused)
{
	static const uint8_t ids[] = {1, 2};

	lab_init("127.0.0.1", 3);
	node_open(1);
	node_open(2);
	cr_assert_eq(node_open_in(3, "other"), 0);
	connect_stream(ids, 2);
	cr_assert(pump_until(cluster_refused, NULL));
	cr_assert_eq(count_from(1, 3) + count_from(2, 3), 0);
	cr_assert_not(lab.nodes[1].probed[3][SYNCD_CHANNEL_STREAM]);
	cr_assert_not(lab.nodes[2].probed[3][SYNCD_CHANNEL_STREAM]);
	/* on_envelope asserts the cluster; node 3 never got anything through */
	cr_assert_eq(lab.nodes[3].n_seen, 0);
	cr_assert_not(lab.nodes[3].probed[1][SYNCD_CHANNEL_STREAM]);
	cr_assert_eq(stats(3)->rx_messages, 0);
	cr_assert_eq(stats(2)->rejected_malformed + stats(2)->rejected_origin, 0);
}

/* Frames from an authenticated member that are no valid Envelope. */
Test(transport, malformed_frames_are_counted_and_dropped)
{
	static const uint8_t ids[] = {1, 2};
	size_t ok_len, v2_len, nobody_len;
	uint8_t *ok = raw_envelope(&ok_len, 1, 3, CLUSTER, 1, false);
	uint8_t *v2 = raw_envelope(&v2_len, 2, 3, CLUSTER, 2, false);
	Gwcluster__Envelope empty = GWCLUSTER__ENVELOPE__INIT;
	uint8_t nobody[64];
	void *rpub;

	empty.version = 1;
	empty.origin = 3;
	empty.cluster = CLUSTER;
	nobody_len = gwcluster__envelope__pack(&empty, nobody);
	struct {
		const void *buf;
		size_t len;
		bool multipart;
	} frames[] = {
	    {"\xff\xff\xff\xff", 4, false}, /* not protobuf */
	    {"", 0, false},		    /* required fields missing */
	    {ok, ok_len - 1, false},	    /* truncated */
	    {nobody, nobody_len, false},    /* no body */
	    {ok, ok_len, true},		    /* two frames */
	    {v2, v2_len, false},	    /* unknown version */
	};

	lab_init("127.0.0.1", 3);
	node_open(1);
	node_open(2);
	connect_stream(ids, 2);
	rpub = raw_server(ZMQ_PUB, lab.secrets[2], 3, 0);
	raw_connect(rpub, 3, 1, false);
	for (unsigned i = 0; i < ARRAY_LEN(frames); i++) {
		if (frames[i].multipart)
			cr_assert_eq(zmq_send(rpub, frames[i].buf, frames[i].len, ZMQ_SNDMORE),
				     (int)frames[i].len);
		cr_assert_eq(zmq_send(rpub, frames[i].buf, frames[i].len, 0), (int)frames[i].len);
	}
	raw_send_envelope(rpub, 1, 3, CLUSTER, 500, false);
	wait_marker(1, 3, SYNCD_CHANNEL_STREAM, 500);
	cr_assert_eq(stats(1)->rejected_malformed, 5);
	cr_assert_eq(stats(1)->rejected_version, 1);
	cr_assert_eq(count_from(1, 3), 1, "only the marker got through");
	/* The transport carries on. */
	cr_assert_eq(publish(2, 501), 0);
	wait_marker(1, 2, SYNCD_CHANNEL_STREAM, 501);
	round_trip(2, 1, 502);
	free(ok);
	free(v2);
}

Test(transport, oversize_is_refused)
{
	Gwcluster__Envelope env = GWCLUSTER__ENVELOPE__INIT;
	Gwcluster__Update up = GWCLUSTER__UPDATE__INIT;
	Gwcluster__Record rec = GWCLUSTER__RECORD__INIT, *recs[1] = {&rec};
	Gwcluster__PeerConfig peer = GWCLUSTER__PEER_CONFIG__INIT;
	size_t big = (size_t)SYNCD_MAX_MESSAGE + 1;
	uint8_t *junk = calloc(1, big);
	void *rpub;

	cr_assert_not_null(junk);
	lab_init("127.0.0.1", 3);
	node_open(1);
	rpub = raw_server(ZMQ_PUB, lab.secrets[2], 3, 0);
	raw_connect(rpub, 3, 1, false);
	cr_assert_eq(zmq_send(rpub, junk, big, 0), (int)big);
	raw_send_envelope(rpub, 1, 3, CLUSTER, 600, false);
	wait_marker(1, 3, SYNCD_CHANNEL_STREAM, 600);
	cr_assert_eq(stats(1)->rejected_oversize, 1);
	cr_assert_eq(stats(1)->rejected_malformed, 0);

	/* Nor does the transport send one. */
	peer.public_key.data = junk;
	peer.public_key.len = big;
	rec.item_case = GWCLUSTER__RECORD__ITEM_PEER;
	rec.peer = &peer;
	up.n_records = 1;
	up.records = recs;
	env.body_case = GWCLUSTER__ENVELOPE__BODY_UPDATE;
	env.update = &up;
	cr_assert_eq(syncd_transport_publish(lab.nodes[1].t, &env), -EMSGSIZE);
	free(junk);
}

/* Members connect only to other members: a client holding a node's own key
 * is a clone and is refused by that node. */
Test(transport, own_key_is_refused_as_a_client)
{
	void *raw;

	lab_init("127.0.0.1", 2);
	node_open(1);
	raw = raw_dealer(lab.members[0].curve_public, lab.secrets[0], 1);
	raw_send_envelope(raw, 1, 1, CLUSTER, 1, true);
	wait_denied(1, 1, 1);
	pump_for(200);
	cr_assert_eq(lab.nodes[1].n_seen, 0);
	cr_assert_eq(stats(1)->rx_messages, 0);
}

/* ------------------------------------------------------------------------ */
/* The receive check on its own */

Test(envelope, verdicts)
{
	size_t ok_len, len;
	uint8_t *ok = raw_envelope(&ok_len, 1, 2, CLUSTER, 1, false);
	uint8_t field0[128];
	struct {
		uint8_t *buf;
		size_t len;
		const char *cluster;
		uint8_t from;
		enum syncd_envelope_verdict want;
	} cases[] = {
	    {ok, ok_len, CLUSTER, 2, SYNCD_ENVELOPE_OK},
	    {ok, ok_len, CLUSTER, 3, SYNCD_ENVELOPE_ORIGIN},
	    {ok, ok_len, "la", 2, SYNCD_ENVELOPE_CLUSTER},
	    {ok, ok_len - 1, CLUSTER, 2, SYNCD_ENVELOPE_MALFORMED},
	    {ok, (size_t)SYNCD_MAX_MESSAGE + 1, CLUSTER, 2, SYNCD_ENVELOPE_OVERSIZE},
	    {raw_envelope(&len, 0, 2, CLUSTER, 1, false), len, CLUSTER, 2, SYNCD_ENVELOPE_VERSION},
	    {raw_envelope(&len, 1, 2, "", 1, true), len, CLUSTER, 2, SYNCD_ENVELOPE_CLUSTER},
	    /* field number 0 behind a two-byte tag: protobuf-c keeps it, but
	     * could not read its own re-encoding of it */
	    {field0, ok_len + 3, CLUSTER, 2, SYNCD_ENVELOPE_MALFORMED},
	};

	cr_assert_leq(ok_len + 3, sizeof(field0));
	memcpy(field0, ok, ok_len);
	memcpy(field0 + ok_len, "\x82\x00\x00", 3);
	for (unsigned i = 0; i < ARRAY_LEN(cases); i++) {
		Gwcluster__Envelope *env = (void *)1;

		cr_assert_eq(syncd_envelope_unpack_checked(cases[i].buf, cases[i].len,
							   cases[i].cluster, cases[i].from, &env),
			     cases[i].want, "case %u", i);
		cr_assert_eq(env != NULL, cases[i].want == SYNCD_ENVELOPE_OK, "case %u", i);
		if (env)
			gwcluster__envelope__free_unpacked(env, NULL);
	}
	free(cases[5].buf);
	free(cases[6].buf);
	free(ok);
}

/* ------------------------------------------------------------------------ */
/* Tampering on the wire */

/*
 * A TCP relay on the test's loop between node 1's SUB and node 3's PUB. On
 * request it flips the last byte of the next chunk it forwards towards node
 * 1: inside a CURVE box, so only the MAC check can notice.
 */
struct relay_end {
	struct relay *r;
	int fd, peer;
	bool downstream; /* towards the subscriber */
	bool open;
	struct relay_end *partner;
};

struct relay {
	int lfd;
	uint16_t upstream_port;
	struct relay_end ends[16];
	unsigned n_ends;
	bool tamper_next;
	unsigned tampered;
};

static void relay_close(struct relay_end *e)
{
	if (!e->open)
		return;
	gw_loop_del_fd(lab.loop, e->fd);
	gw_loop_del_fd(lab.loop, e->peer);
	close(e->fd);
	close(e->peer);
	e->open = false;
	e->partner->open = false;
}

static void relay_forward(struct gw_loop *loop, int fd, uint32_t events, void *arg)
{
	struct relay_end *e = arg;
	uint8_t buf[65536];
	ssize_t n = read(fd, buf, sizeof(buf));

	(void)loop;
	(void)events;
	if (n <= 0) {
		relay_close(e);
		return;
	}
	if (e->downstream && e->r->tamper_next) {
		buf[n - 1] ^= 0x01;
		e->r->tamper_next = false;
		e->r->tampered++;
	}
	if (send(e->peer, buf, (size_t)n, MSG_NOSIGNAL) != n)
		relay_close(e);
}

static void relay_accept(struct gw_loop *loop, int lfd, uint32_t events, void *arg)
{
	struct relay *r = arg;
	struct sockaddr_in up = {.sin_family = AF_INET, .sin_port = htons(r->upstream_port)};
	int down = accept(lfd, NULL, NULL), upfd = socket(AF_INET, SOCK_STREAM, 0);
	struct relay_end *a, *b;

	(void)events;
	cr_assert_geq(down, 0);
	cr_assert_geq(upfd, 0);
	cr_assert_leq(r->n_ends + 2, ARRAY_LEN(r->ends));
	up.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(upfd, (struct sockaddr *)&up, sizeof(up))) {
		close(down);
		close(upfd);
		return;
	}
	a = &r->ends[r->n_ends++];
	b = &r->ends[r->n_ends++];
	*a = (struct relay_end){r, down, upfd, false, true, b};
	*b = (struct relay_end){r, upfd, down, true, true, a};
	cr_assert_eq(gw_loop_add_fd(loop, down, EPOLLIN, relay_forward, a), 0);
	cr_assert_eq(gw_loop_add_fd(loop, upfd, EPOLLIN, relay_forward, b), 0);
}

static void relay_start(struct relay *r, uint16_t port, uint16_t upstream_port)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
	int one = 1;

	memset(r, 0, sizeof(*r));
	r->upstream_port = upstream_port;
	r->lfd = socket(AF_INET, SOCK_STREAM, 0);
	cr_assert_geq(r->lfd, 0);
	setsockopt(r->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert_eq(bind(r->lfd, (struct sockaddr *)&a, sizeof(a)), 0);
	cr_assert_eq(listen(r->lfd, 8), 0);
	cr_assert_eq(gw_loop_add_fd(lab.loop, r->lfd, EPOLLIN, relay_accept, r), 0);
}

static bool stream_heard(void *arg)
{
	(void)arg;
	if (lab.nodes[1].probed[3][SYNCD_CHANNEL_STREAM])
		return true;
	cr_assert_eq(publish(3, PROBE), 0);
	return false;
}

Test(transport, tampered_frame_drops_the_connection)
{
	struct syncd_member view[MAX_NODES];
	struct relay r;

	lab_init("127.0.0.1", 3);
	relay_start(&r, BASE_PORT + 90, lab.members[2].port);
	memcpy(view, lab.members, sizeof(view));
	view[2].port = BASE_PORT + 90; /* node 1 reaches node 3's PUB through the relay */
	cr_assert_eq(node_open_as(1, CLUSTER, view), 0);
	node_open(3);
	cr_assert(pump_until(stream_heard, NULL));
	r.tamper_next = true;
	cr_assert_eq(publish(3, 1), 0);
	wait_denied(1, 0, 1);
	cr_assert_eq(r.tampered, 1);
	/* The subscriber reconnects through the relay and the stream resumes. */
	lab.nodes[1].probed[3][SYNCD_CHANNEL_STREAM] = false;
	cr_assert(pump_until(stream_heard, NULL));
	cr_assert_eq(count_seen(1, 3, SYNCD_CHANNEL_STREAM, 1), 0, "a tampered message arrived");
	cr_assert_eq(stats(1)->rejected_malformed, 0);
	for (unsigned i = 0; i < r.n_ends; i++)
		relay_close(&r.ends[i]);
	gw_loop_del_fd(lab.loop, r.lfd);
	close(r.lfd);
}
