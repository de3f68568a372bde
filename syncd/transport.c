// SPDX-License-Identifier: MIT
/*
 * syncd's node-to-node transport on libzmq (CURVE, ZAP) and protobuf-c.
 *
 * Delivery is best effort, in order per socket: a PUB whose send queue to a
 * subscriber is full drops silently (ZeroMQ cannot report it), and queued
 * messages die with their connection. The replica detects the resulting
 * gaps in an origin's sequence numbers and repairs them; requests are
 * retried by their sender.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <zmq.h>

#include "gw/crypto.h"
#include "gw/log.h"
#include "gw/pbwipe.h"
#include "transport.h"

enum {
	SAFETY_TICK_MS = 20, /* drain even if an edge of ZMQ_FD was consumed elsewhere */
	/* Messages per socket per drain: one busy member cannot starve the loop. */
	DRAIN_BUDGET = 256,
	/*
	 * ... and time per drain: past it, the rest waits for the next loop turn
	 * (a snapshot's hundred 1 MiB chunks are not all applied in one turn).
	 */
	DRAIN_NS = 20 * 1000 * 1000,
	STREAM_HWM = 100000, /* PUB send and SUB receive queues, in messages */
	REQUEST_HWM = 10000, /* ROUTER and DEALER queues */
	LINGER_MS = 500,     /* how long close waits to flush PUB and ROUTER queues */
	RECONNECT_MS = 100,  /* first reconnect delay, doubled up to RECONNECT_MAX_MS */
	RECONNECT_MAX_MS = 1000,
	/*
	 * A connect attempt that gets no answer is abandoned after this, so a
	 * healed partition is noticed within a reconnect interval instead of
	 * after the kernel's exponentially spaced SYN retries.
	 */
	CONNECT_TIMEOUT_MS = 1000,
	/*
	 * Floor of the ZMTP heartbeat timeout: a large Update in transit on a
	 * loaded link must not get its connection declared dead. Liveness for
	 * the protocol comes from syncd's own heartbeats (PeerDeadMs).
	 */
	MIN_HEARTBEAT_TIMEOUT_MS = 2000,
	DEFAULT_HEARTBEAT_MS = 1000,
	MAX_HEARTBEAT_MS = 600000, /* keeps 3 x it within ZMQ_HEARTBEAT_TTL's range */
	MAX_CLUSTER_NAME = 64,	   /* bytes, without the NUL */
	ROUTING_ID_MAX = 255,	   /* ZMTP bound on a routing id */
	ZAP_REQUEST_FRAMES = 7,	   /* RFC 27 with CURVE: version .. one credential */
	MONITORED_EVENTS = ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL |
			   ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH |
			   ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_DISCONNECTED,
};

/*
 * libzmq closes a connection whose message exceeds this, so envelopes up to
 * it arrive and are counted as oversize while larger ones cannot pin memory.
 */
static const int64_t MAX_FRAME = 2 * (int64_t)SYNCD_MAX_MESSAGE;

/* What a socket is for; decides how a message on it is read. */
enum role {
	ROLE_PUB,
	ROLE_ROUTER,
	ROLE_SUB,
	ROLE_DEALER,
};

struct link;

/* One of our sockets, with the PAIR that reads its monitor events. */
struct endpoint {
	void *sock;
	void *mon;
	enum role role;
	struct link *link; /* the member a SUB or DEALER is connected to */
	bool up;	   /* a connection finished its handshake and has not dropped */
	bool registered;   /* both fds are on the loop */
};

/* One remote member. */
struct link {
	uint8_t node_id;
	struct endpoint sub;
	struct endpoint dealer;
	/* The member's DEALER as our ROUTER knows it, from its latest request. */
	uint8_t rid[ROUTING_ID_MAX];
	uint8_t rid_len;
};

/* The ZAP handler's state; only the counter is shared after start. */
struct zap {
	void *sock;
	pthread_t thread;
	bool running;
	const char *domain;
	uint8_t self;
	unsigned n;
	uint8_t ids[SYNCD_MAX_MEMBERS];
	uint8_t keys[SYNCD_MAX_MEMBERS][SYNCD_CURVE_KEY_LEN];
	atomic_uint_fast64_t denied;
	struct gw_ratelimit rl;
};

struct syncd_transport {
	void *ctx;
	struct gw_loop *loop;
	syncd_envelope_fn *fn;
	void *arg;
	char cluster[MAX_CLUSTER_NAME + 1];
	uint8_t node_id;
	struct endpoint pub;
	struct endpoint router;
	struct link *links;
	unsigned n_links;
	struct link *by_id[256];
	struct zap zap;
	struct gw_timer tick; /* periodic safety drain */
	struct gw_timer kick; /* a prompt drain after a send or an exhausted budget */
	unsigned drain_first; /* endpoint a drain starts with, in turn */
	struct syncd_transport_stats stats;
	struct gw_ratelimit rl;
};

static const char *const verdict_names[] = {
    [SYNCD_ENVELOPE_OK] = "ok",
    [SYNCD_ENVELOPE_OVERSIZE] = "oversize",
    [SYNCD_ENVELOPE_MALFORMED] = "malformed",
    [SYNCD_ENVELOPE_VERSION] = "unknown version",
    [SYNCD_ENVELOPE_CLUSTER] = "another cluster",
    [SYNCD_ENVELOPE_ORIGIN] = "origin is not the sender",
};

static const char *const role_names[] = {
    [ROLE_PUB] = "pub",
    [ROLE_ROUTER] = "router",
    [ROLE_SUB] = "sub",
    [ROLE_DEALER] = "dealer",
};

/* ------------------------------------------------------------------------ */
/* Envelope checks */

static bool repackable(const ProtobufCMessage *m);

/* The messages of a repeated or a present singular message field. */
static bool field_repackable(const ProtobufCMessage *m, const ProtobufCFieldDescriptor *f)
{
	const char *base = (const char *)m;
	const ProtobufCMessage *sub;

	if (f->label == PROTOBUF_C_LABEL_REPEATED) {
		size_t n = *(const size_t *)(base + f->quantifier_offset);
		ProtobufCMessage *const *arr =
		    *(ProtobufCMessage *const *const *)(base + f->offset);

		for (size_t j = 0; j < n; j++)
			if (!repackable(arr[j]))
				return false;
		return true;
	}
	if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
	    *(const uint32_t *)(base + f->quantifier_offset) != f->id)
		return true;
	sub = *(const ProtobufCMessage *const *)(base + f->offset);
	return !sub || repackable(sub);
}

/*
 * protobuf-c keeps unknown fields to pack them again, and accepts field
 * number 0 (invalid protobuf) behind a multi-byte tag; packed again, that
 * field makes the whole message unreadable. What we accept must stay
 * re-packable, since records are stored and served again in snapshots.
 * The recursion is as deep as the schema's nesting (no message contains
 * itself).
 */
static bool repackable(const ProtobufCMessage *m)
{
	const ProtobufCMessageDescriptor *d = m->descriptor;

	for (unsigned i = 0; i < m->n_unknown_fields; i++)
		if (m->unknown_fields[i].tag == 0)
			return false;
	for (unsigned i = 0; i < d->n_fields; i++)
		if (d->fields[i].type == PROTOBUF_C_TYPE_MESSAGE &&
		    !field_repackable(m, &d->fields[i]))
			return false;
	return true;
}

enum syncd_envelope_verdict syncd_envelope_unpack_checked(const uint8_t *buf, size_t len,
							  const char *cluster, uint8_t from,
							  Gwcluster__Envelope **out)
{
	enum syncd_envelope_verdict v;
	Gwcluster__Envelope *env;

	*out = NULL;
	if (len > SYNCD_MAX_MESSAGE)
		return SYNCD_ENVELOPE_OVERSIZE;
	env = gwcluster__envelope__unpack(&gw_pbwipe_allocator, len, buf);
	if (!env)
		return SYNCD_ENVELOPE_MALFORMED;
	if (!repackable(&env->base)) {
		gwcluster__envelope__free_unpacked(env, &gw_pbwipe_allocator);
		return SYNCD_ENVELOPE_MALFORMED;
	}
	/* Version first: a newer version's body may be unknown to us. */
	if (env->version != SYNCD_PROTO_VERSION)
		v = SYNCD_ENVELOPE_VERSION;
	else if (env->body_case == GWCLUSTER__ENVELOPE__BODY__NOT_SET)
		v = SYNCD_ENVELOPE_MALFORMED;
	else if (!env->cluster || strcmp(env->cluster, cluster) != 0)
		v = SYNCD_ENVELOPE_CLUSTER;
	else if (env->origin != from)
		v = SYNCD_ENVELOPE_ORIGIN;
	else
		v = SYNCD_ENVELOPE_OK;
	if (v == SYNCD_ENVELOPE_OK)
		*out = env;
	else
		gwcluster__envelope__free_unpacked(env, &gw_pbwipe_allocator);
	return v;
}

/* ------------------------------------------------------------------------ */
/* Keys */

int syncd_z85_decode_key(uint8_t key[static SYNCD_CURVE_KEY_LEN], const char *z85)
{
	uint8_t tmp[SYNCD_CURVE_KEY_LEN];

	if (!z85 || strnlen(z85, 41) != 40)
		return -EINVAL;
	if (!zmq_z85_decode(tmp, z85)) {
		gw_wipe(tmp, sizeof(tmp));
		return -EINVAL;
	}
	memcpy(key, tmp, sizeof(tmp));
	gw_wipe(tmp, sizeof(tmp));
	return 0;
}

void syncd_z85_encode_key(char out[static 41], const uint8_t key[static SYNCD_CURVE_KEY_LEN])
{
	zmq_z85_encode(out, key, SYNCD_CURVE_KEY_LEN);
}

int syncd_curve_keypair(uint8_t public_key[static SYNCD_CURVE_KEY_LEN],
			uint8_t secret_key[static SYNCD_CURVE_KEY_LEN])
{
	char pub[41], sec[41];
	int err = 0;

	if (zmq_curve_keypair(pub, sec) != 0)
		err = -errno;
	else if (syncd_z85_decode_key(public_key, pub) || syncd_z85_decode_key(secret_key, sec))
		err = -EIO;
	gw_wipe(sec, sizeof(sec));
	if (err)
		gw_wipe(secret_key, SYNCD_CURVE_KEY_LEN);
	return err;
}

int syncd_curve_public(uint8_t public_key[static SYNCD_CURVE_KEY_LEN],
		       const uint8_t secret_key[static SYNCD_CURVE_KEY_LEN])
{
	char pub[41], sec[41];
	int err = 0;

	syncd_z85_encode_key(sec, secret_key);
	if (zmq_curve_public(pub, sec) != 0)
		err = -errno;
	else if (syncd_z85_decode_key(public_key, pub))
		err = -EIO;
	gw_wipe(sec, sizeof(sec));
	return err;
}

/* ------------------------------------------------------------------------ */
/* ZAP handler (RFC 27), on its own thread */

static bool frame_is(zmq_msg_t *m, const char *s)
{
	size_t n = strlen(s);

	return zmq_msg_size(m) == n && memcmp(zmq_msg_data(m), s, n) == 0;
}

/* The member owning a CURVE client key; 0 for none. Our own key is refused:
 * members only connect to other members, so it would mean a cloned key. */
static uint8_t zap_lookup(const struct zap *z, const uint8_t key[static SYNCD_CURVE_KEY_LEN])
{
	for (unsigned i = 0; i < z->n; i++)
		if (z->ids[i] != z->self && memcmp(z->keys[i], key, SYNCD_CURVE_KEY_LEN) == 0)
			return z->ids[i];
	return 0;
}

/* Decides one request of n frames: the node id admitted, or 0 with *why set. */
static uint8_t zap_decide(struct zap *z, zmq_msg_t *f, int n, const char **why)
{
	uint8_t id;

	if (n != ZAP_REQUEST_FRAMES || !frame_is(&f[0], "1.0")) {
		*why = "malformed ZAP request";
		return 0;
	}
	if (!frame_is(&f[2], z->domain) || !frame_is(&f[5], "CURVE")) {
		*why = "unexpected domain or mechanism";
		return 0;
	}
	if (zmq_msg_size(&f[6]) != SYNCD_CURVE_KEY_LEN) {
		*why = "malformed CURVE credential";
		return 0;
	}
	id = zap_lookup(z, zmq_msg_data(&f[6]));
	if (!id)
		*why = "key of no other member";
	return id;
}

static void zap_log_denial(struct zap *z, zmq_msg_t *f, int n, const char *why)
{
	char key[41] = "?", addr[INET6_ADDRSTRLEN + 1] = "?";

	if (n == ZAP_REQUEST_FRAMES && zmq_msg_size(&f[6]) == SYNCD_CURVE_KEY_LEN)
		syncd_z85_encode_key(key, zmq_msg_data(&f[6]));
	if (n == ZAP_REQUEST_FRAMES && zmq_msg_size(&f[3]) < sizeof(addr)) {
		memcpy(addr, zmq_msg_data(&f[3]), zmq_msg_size(&f[3]));
		addr[zmq_msg_size(&f[3])] = '\0';
	}
	gw_log_rl(&z->rl, GW_LOG_WARN, "syncd: refused CURVE client %s from %s: %s", key, addr,
		  why);
}

/* Sends the reply; request id echoed (empty when the request had none). */
static void zap_reply(struct zap *z, zmq_msg_t *request_id, uint8_t id)
{
	char user[4] = "";
	const void *rid = request_id ? zmq_msg_data(request_id) : "";
	size_t rid_len = request_id ? zmq_msg_size(request_id) : 0;

	if (id)
		snprintf(user, sizeof(user), "%u", id);
	zmq_send(z->sock, "1.0", 3, ZMQ_SNDMORE);
	zmq_send(z->sock, rid, rid_len, ZMQ_SNDMORE);
	zmq_send(z->sock, id ? "200" : "400", 3, ZMQ_SNDMORE);
	zmq_send(z->sock, id ? "OK" : "not a member", id ? 2 : 12, ZMQ_SNDMORE);
	zmq_send(z->sock, user, strlen(user), ZMQ_SNDMORE);
	zmq_send(z->sock, "", 0, 0);
}

/*
 * Reads one request into f; *n is its number of frames (frames past
 * ZAP_REQUEST_FRAMES are dropped and make *n exceed it). 0, or -1 when the
 * context terminates (nothing is then left open in f).
 */
static int zap_recv(struct zap *z, zmq_msg_t *f, int *n)
{
	int more = 1;
	size_t sz = sizeof(more);
	zmq_msg_t extra;

	*n = 0;
	while (more) {
		zmq_msg_t *m = *n < ZAP_REQUEST_FRAMES ? &f[*n] : &extra;

		zmq_msg_init(m);
		while (zmq_msg_recv(m, z->sock, 0) < 0) {
			if (errno != EINTR) {
				zmq_msg_close(m);
				for (int i = 0; i < *n && i < ZAP_REQUEST_FRAMES; i++)
					zmq_msg_close(&f[i]);
				return -1;
			}
		}
		if (zmq_getsockopt(z->sock, ZMQ_RCVMORE, &more, &sz))
			more = 0;
		if (m == &extra) {
			zmq_msg_close(m);
			*n = ZAP_REQUEST_FRAMES + 1; /* too many: malformed */
		} else {
			(*n)++;
		}
	}
	return 0;
}

static void *zap_main(void *arg)
{
	struct zap *z = arg;
	zmq_msg_t f[ZAP_REQUEST_FRAMES];

	for (;;) {
		const char *why = NULL;
		int n, kept;
		uint8_t id;

		if (zap_recv(z, f, &n) < 0)
			break; /* ETERM: the transport is closing */
		kept = n < ZAP_REQUEST_FRAMES ? n : ZAP_REQUEST_FRAMES;
		id = zap_decide(z, f, n, &why);
		if (!id) {
			atomic_fetch_add(&z->denied, 1);
			zap_log_denial(z, f, n, why);
		}
		zap_reply(z, kept >= 2 ? &f[1] : NULL, id);
		for (int i = 0; i < kept; i++)
			zmq_msg_close(&f[i]);
	}
	/* Close before ctx_term can finish; the context owns nothing else here. */
	zmq_close(z->sock);
	z->sock = NULL;
	return NULL;
}

/* Binds the handler before any server socket exists: a CURVE server socket
 * consults ZAP only if a handler is bound at that moment, otherwise libzmq
 * would admit every key. */
static int zap_start(struct syncd_transport *t, const struct syncd_transport_config *cfg)
{
	struct zap *z = &t->zap;
	sigset_t all, old;
	int linger = 0, err;

	z->domain = t->cluster;
	z->self = cfg->node_id;
	z->n = cfg->n_members;
	for (unsigned i = 0; i < cfg->n_members; i++) {
		z->ids[i] = cfg->members[i].node_id;
		memcpy(z->keys[i], cfg->members[i].curve_public, SYNCD_CURVE_KEY_LEN);
	}
	z->rl = (struct gw_ratelimit)GW_RATELIMIT_INIT(10 * 1000000000ull, 10);
	z->sock = zmq_socket(t->ctx, ZMQ_REP);
	if (!z->sock)
		return -errno;
	zmq_setsockopt(z->sock, ZMQ_LINGER, &linger, sizeof(linger));
	if (zmq_bind(z->sock, "inproc://zeromq.zap.01"))
		return -errno;
	/* Signals stay with the daemon's signalfd, never this thread. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	err = -pthread_create(&z->thread, NULL, zap_main, z);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (err)
		return err;
	z->running = true;
	return 0;
}

/* ------------------------------------------------------------------------ */
/* Config checks */

static bool host_ok(const char *host, size_t cap)
{
	uint8_t buf[16];

	if (!memchr(host, '\0', cap))
		return false;
	return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}

static int check_member(const struct syncd_member *m, const struct syncd_transport_config *cfg,
			unsigned idx)
{
	if (m->node_id == 0 || !host_ok(m->host, sizeof(m->host)) || m->port == 0 ||
	    m->port == UINT16_MAX) {
		gw_err("syncd: member %u: node id 1..255, a numeric address and a port below "
		       "65535 (the next one is the request port) are required",
		       m->node_id);
		return -EINVAL;
	}
	for (unsigned j = 0; j < idx; j++) {
		const struct syncd_member *o = &cfg->members[j];

		if (o->node_id == m->node_id ||
		    memcmp(o->curve_public, m->curve_public, SYNCD_CURVE_KEY_LEN) == 0) {
			gw_err("syncd: members %u and %u share a node id or a Curve key",
			       o->node_id, m->node_id);
			return -EINVAL;
		}
	}
	return 0;
}

/* Our secret must match our member entry's public key: a mismatch would only
 * show up later as every peer refusing us. */
static int check_own_key(const struct syncd_member *self, const struct syncd_transport_config *cfg)
{
	uint8_t pub[SYNCD_CURVE_KEY_LEN];
	int err = syncd_curve_public(pub, cfg->curve_secret);

	if (err)
		return err;
	if (memcmp(pub, self->curve_public, sizeof(pub)) != 0) {
		gw_err("syncd: the Curve secret key does not match node %u's public key",
		       cfg->node_id);
		return -EINVAL;
	}
	return 0;
}

static int check_config(const struct syncd_transport_config *cfg)
{
	const struct syncd_member *self = NULL;
	int err;

	if (!cfg->cluster || !cfg->cluster[0] || strlen(cfg->cluster) > MAX_CLUSTER_NAME ||
	    !cfg->members || cfg->n_members == 0 || cfg->n_members > SYNCD_MAX_MEMBERS ||
	    cfg->heartbeat_ms > MAX_HEARTBEAT_MS)
		return -EINVAL;
	if (cfg->bind_host && !host_ok(cfg->bind_host, 64))
		return -EINVAL;
	for (unsigned i = 0; i < cfg->n_members; i++) {
		err = check_member(&cfg->members[i], cfg, i);
		if (err)
			return err;
		if (cfg->members[i].node_id == cfg->node_id)
			self = &cfg->members[i];
	}
	if (!self) {
		gw_err("syncd: node %u is not among the members", cfg->node_id);
		return -EINVAL;
	}
	return check_own_key(self, cfg);
}

/* ------------------------------------------------------------------------ */
/* Sockets */

static int set_int(void *s, int opt, int v)
{
	return zmq_setsockopt(s, opt, &v, sizeof(v)) ? -errno : 0;
}

static int set_common(void *s, unsigned heartbeat_ms, bool ipv6)
{
	int hb = (int)heartbeat_ms;
	int dead = 3 * hb > MIN_HEARTBEAT_TIMEOUT_MS ? 3 * hb : MIN_HEARTBEAT_TIMEOUT_MS;
	int err = 0;

	err = err ?: set_int(s, ZMQ_HEARTBEAT_IVL, hb);
	err = err ?: set_int(s, ZMQ_HEARTBEAT_TIMEOUT, dead);
	err = err ?: set_int(s, ZMQ_HEARTBEAT_TTL, dead);
	err = err ?: set_int(s, ZMQ_CONNECT_TIMEOUT, CONNECT_TIMEOUT_MS);
	err = err ?: set_int(s, ZMQ_RECONNECT_IVL, RECONNECT_MS);
	err = err ?: set_int(s, ZMQ_RECONNECT_IVL_MAX, RECONNECT_MAX_MS);
	err = err ?: set_int(s, ZMQ_TCP_KEEPALIVE, 1);
	err = err ?: set_int(s, ZMQ_IPV6, ipv6);
	if (!err && zmq_setsockopt(s, ZMQ_MAXMSGSIZE, &MAX_FRAME, sizeof(MAX_FRAME)))
		err = -errno;
	return err;
}

static int set_role(void *s, enum role role)
{
	/* Our last updates and replies are worth a moment at close; a
	 * client socket's linger would only wait for a member that is down. */
	int err = set_int(s, ZMQ_LINGER, role == ROLE_PUB || role == ROLE_ROUTER ? LINGER_MS : 0);

	if (err)
		return err;
	switch (role) {
	case ROLE_PUB:
		return set_int(s, ZMQ_SNDHWM, STREAM_HWM);
	case ROLE_SUB:
		err = set_int(s, ZMQ_RCVHWM, STREAM_HWM);
		return err ?: (zmq_setsockopt(s, ZMQ_SUBSCRIBE, "", 0) ? -errno : 0);
	case ROLE_ROUTER:
		return set_int(s, ZMQ_SNDHWM, REQUEST_HWM) ?: set_int(s, ZMQ_RCVHWM, REQUEST_HWM)
								?: set_int(s, ZMQ_ROUTER_MANDATORY, 1);
	case ROLE_DEALER:
		/* Queue nothing for a member that is not connected: request()
		 * then says -ENOTCONN instead of delivering it late. */
		return set_int(s, ZMQ_SNDHWM, REQUEST_HWM) ?: set_int(s, ZMQ_RCVHWM, REQUEST_HWM)
								?: set_int(s, ZMQ_IMMEDIATE, 1);
	}
	return -EINVAL;
}

static int set_curve(void *s, enum role role, const struct syncd_transport_config *cfg,
		     const uint8_t *own_public, const uint8_t *server_public, const char *domain)
{
	const int k = SYNCD_CURVE_KEY_LEN;

	if (role == ROLE_PUB || role == ROLE_ROUTER) {
		if (set_int(s, ZMQ_CURVE_SERVER, 1) ||
		    zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, cfg->curve_secret, k) ||
		    zmq_setsockopt(s, ZMQ_ZAP_DOMAIN, domain, strlen(domain)))
			return -errno;
		return 0;
	}
	if (zmq_setsockopt(s, ZMQ_CURVE_SERVERKEY, server_public, k) ||
	    zmq_setsockopt(s, ZMQ_CURVE_PUBLICKEY, own_public, k) ||
	    zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, cfg->curve_secret, k))
		return -errno;
	return 0;
}

/* Starts monitoring e->sock before it binds or connects, so no event is lost. */
static int monitor(struct syncd_transport *t, struct endpoint *e)
{
	char addr[64];

	snprintf(addr, sizeof(addr), "inproc://syncd-monitor-%p", (void *)e);
	if (zmq_socket_monitor(e->sock, addr, MONITORED_EVENTS))
		return -errno;
	e->mon = zmq_socket(t->ctx, ZMQ_PAIR);
	if (!e->mon)
		return -errno;
	if (set_int(e->mon, ZMQ_LINGER, 0) || zmq_connect(e->mon, addr))
		return -errno;
	return 0;
}

static void format_endpoint(char *out, size_t cap, const char *host, unsigned port)
{
	if (strchr(host, ':'))
		snprintf(out, cap, "tcp://[%s]:%u", host, port);
	else
		snprintf(out, cap, "tcp://%s:%u", host, port);
}

/* Creates, configures and monitors e's socket; binds (server) or connects. */
static int endpoint_open(struct syncd_transport *t, struct endpoint *e, enum role role,
			 const struct syncd_transport_config *cfg, const uint8_t *own_public,
			 const char *host, unsigned port, const uint8_t *server_public)
{
	static const int types[] = {
	    [ROLE_PUB] = ZMQ_PUB,
	    [ROLE_ROUTER] = ZMQ_ROUTER,
	    [ROLE_SUB] = ZMQ_SUB,
	    [ROLE_DEALER] = ZMQ_DEALER,
	};
	char addr[96];
	int err;

	e->role = role;
	e->sock = zmq_socket(t->ctx, types[role]);
	if (!e->sock)
		return -errno;
	err = set_common(e->sock, cfg->heartbeat_ms ?: DEFAULT_HEARTBEAT_MS, strchr(host, ':'));
	err = err ?: set_role(e->sock, role);
	err = err ?: set_curve(e->sock, role, cfg, own_public, server_public, t->cluster);
	err = err ?: monitor(t, e);
	if (err)
		return err;
	format_endpoint(addr, sizeof(addr), host, port);
	if (role == ROLE_PUB || role == ROLE_ROUTER)
		err = zmq_bind(e->sock, addr) ? -errno : 0;
	else
		err = zmq_connect(e->sock, addr) ? -errno : 0;
	if (err)
		gw_err("syncd: cannot %s %s %s: %s", e->link ? "connect" : "bind", role_names[role],
		       addr, strerror(-err));
	return err;
}

static void endpoint_close(struct syncd_transport *t, struct endpoint *e)
{
	int fd;
	size_t sz = sizeof(fd);

	if (e->registered) {
		if (!zmq_getsockopt(e->sock, ZMQ_FD, &fd, &sz))
			gw_loop_del_fd(t->loop, fd);
		sz = sizeof(fd);
		if (!zmq_getsockopt(e->mon, ZMQ_FD, &fd, &sz))
			gw_loop_del_fd(t->loop, fd);
		e->registered = false;
	}
	if (e->sock)
		zmq_close(e->sock);
	if (e->mon)
		zmq_close(e->mon);
	e->sock = NULL;
	e->mon = NULL;
}

/* ------------------------------------------------------------------------ */
/* Receiving */

static bool readable(void *sock)
{
	int ev = 0;
	size_t sz = sizeof(ev);

	/* Reading ZMQ_EVENTS also processes libzmq's pending commands and
	 * re-arms the edge of ZMQ_FD. */
	return !zmq_getsockopt(sock, ZMQ_EVENTS, &ev, &sz) && (ev & ZMQ_POLLIN);
}

static bool writable(void *sock)
{
	int ev = 0;
	size_t sz = sizeof(ev);

	return !zmq_getsockopt(sock, ZMQ_EVENTS, &ev, &sz) && (ev & ZMQ_POLLOUT);
}

static bool rcvmore(void *sock)
{
	int more = 0;
	size_t sz = sizeof(more);

	return !zmq_getsockopt(sock, ZMQ_RCVMORE, &more, &sz) && more;
}

/* Discards the rest of a multipart message; true if there was any. */
static bool discard_rest(void *sock)
{
	bool any = false;

	while (rcvmore(sock)) {
		zmq_msg_t m;

		zmq_msg_init(&m);
		if (zmq_msg_recv(&m, sock, ZMQ_DONTWAIT) < 0) {
			zmq_msg_close(&m);
			break; /* parts of a message arrive together: cannot happen */
		}
		zmq_msg_close(&m);
		any = true;
	}
	return any;
}

static void count_reject(struct syncd_transport *t, enum syncd_envelope_verdict v, uint8_t from,
			 enum role role)
{
	uint64_t *counters[] = {
	    [SYNCD_ENVELOPE_OVERSIZE] = &t->stats.rejected_oversize,
	    [SYNCD_ENVELOPE_MALFORMED] = &t->stats.rejected_malformed,
	    [SYNCD_ENVELOPE_VERSION] = &t->stats.rejected_version,
	    [SYNCD_ENVELOPE_CLUSTER] = &t->stats.rejected_cluster,
	    [SYNCD_ENVELOPE_ORIGIN] = &t->stats.rejected_origin,
	};

	(*counters[v])++;
	gw_log_rl(&t->rl, GW_LOG_WARN, "syncd: dropped an envelope from node %u on %s: %s", from,
		  role_names[role], verdict_names[v]);
}

static void deliver(struct syncd_transport *t, zmq_msg_t *m, uint8_t from, enum role role,
		    bool multipart)
{
	static const enum syncd_channel channels[] = {
	    [ROLE_ROUTER] = SYNCD_CHANNEL_REQUEST,
	    [ROLE_SUB] = SYNCD_CHANNEL_STREAM,
	    [ROLE_DEALER] = SYNCD_CHANNEL_REPLY,
	};
	enum syncd_envelope_verdict v = SYNCD_ENVELOPE_MALFORMED;
	Gwcluster__Envelope *env = NULL;

	/* One Envelope is one frame: more frames are no message of ours. */
	if (!multipart)
		v = syncd_envelope_unpack_checked(zmq_msg_data(m), zmq_msg_size(m), t->cluster,
						  from, &env);
	if (v != SYNCD_ENVELOPE_OK) {
		count_reject(t, v, from, role);
		return;
	}
	t->stats.rx_messages++;
	t->fn(t->arg, from, channels[role], env);
	gwcluster__envelope__free_unpacked(env, &gw_pbwipe_allocator);
	/* The frame itself may hold session keys too. */
	gw_wipe(zmq_msg_data(m), zmq_msg_size(m));
}

/* The member ZAP authenticated for this ROUTER message; NULL if none. */
static struct link *router_sender(struct syncd_transport *t, zmq_msg_t *m)
{
	const char *user = zmq_msg_gets(m, "User-Id");
	char *end;
	unsigned long id;

	if (!user || !*user)
		return NULL;
	errno = 0;
	id = strtoul(user, &end, 10);
	if (errno || *end || id == 0 || id > 255)
		return NULL;
	return t->by_id[id];
}

static void recv_router(struct syncd_transport *t, struct endpoint *e)
{
	zmq_msg_t rid, m;
	struct link *l;
	bool multipart;

	zmq_msg_init(&rid);
	zmq_msg_init(&m);
	if (zmq_msg_recv(&rid, e->sock, ZMQ_DONTWAIT) < 0 || !rcvmore(e->sock) ||
	    zmq_msg_recv(&m, e->sock, ZMQ_DONTWAIT) < 0)
		goto out;
	multipart = discard_rest(e->sock);
	l = router_sender(t, &m);
	if (!l) {
		/* Only possible if ZAP was bypassed: never trust it. */
		t->stats.rejected_origin++;
		gw_log_rl(&t->rl, GW_LOG_WARN,
			  "syncd: dropped a request without a member identity");
		goto out;
	}
	if (zmq_msg_size(&rid) <= ROUTING_ID_MAX) {
		memcpy(l->rid, zmq_msg_data(&rid), zmq_msg_size(&rid));
		l->rid_len = (uint8_t)zmq_msg_size(&rid);
	}
	deliver(t, &m, l->node_id, e->role, multipart);
out:
	zmq_msg_close(&m);
	zmq_msg_close(&rid);
}

static void recv_one(struct syncd_transport *t, struct endpoint *e)
{
	zmq_msg_t m;

	if (e->role == ROLE_ROUTER) {
		recv_router(t, e);
		return;
	}
	zmq_msg_init(&m);
	if (zmq_msg_recv(&m, e->sock, ZMQ_DONTWAIT) >= 0)
		deliver(t, &m, e->link->node_id, e->role, discard_rest(e->sock));
	zmq_msg_close(&m);
}

/* Reads one monitor event; 0 (no event) if it is not one. */
static uint16_t read_event(void *mon, uint32_t *value, char *addr, size_t cap)
{
	uint16_t event = 0;
	zmq_msg_t ev;
	int n;

	addr[0] = '\0';
	zmq_msg_init(&ev);
	if (zmq_msg_recv(&ev, mon, ZMQ_DONTWAIT) == 6 && rcvmore(mon)) {
		memcpy(&event, zmq_msg_data(&ev), sizeof(event));
		memcpy(value, (uint8_t *)zmq_msg_data(&ev) + 2, sizeof(*value));
		n = zmq_recv(mon, addr, cap - 1, ZMQ_DONTWAIT);
		addr[n < 0 ? 0 : (size_t)n < cap - 1 ? (size_t)n : cap - 1] = '\0';
	}
	zmq_msg_close(&ev);
	discard_rest(mon);
	return event;
}

/* Reads monitor events: counts failed handshakes, tracks e->up. */
static void drain_monitor(struct syncd_transport *t, struct endpoint *e)
{
	while (readable(e->mon)) {
		char addr[128];
		uint32_t value = 0;
		uint16_t event = read_event(e->mon, &value, addr, sizeof(addr));

		if (event &
		    (ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
		     ZMQ_EVENT_HANDSHAKE_FAILED_AUTH)) {
			t->stats.handshake_failed++;
			e->up = false;
			gw_log_rl(&t->rl, GW_LOG_WARN,
				  "syncd: CURVE handshake failed on %s %s (event %#x, %u)",
				  role_names[e->role], addr, event, value);
		} else if (event == ZMQ_EVENT_HANDSHAKE_SUCCEEDED) {
			e->up = true;
		} else if (event == ZMQ_EVENT_DISCONNECTED) {
			e->up = false;
		}
	}
}

/* Reads up to the budget (messages, and the drain's deadline); true if messages remain. */
static bool drain_endpoint(struct syncd_transport *t, struct endpoint *e, uint64_t deadline)
{
	drain_monitor(t, e);
	if (e->role == ROLE_PUB) {
		readable(e->sock); /* processes subscriptions, re-arms the fd */
		return false;
	}
	for (int i = 0; i < DRAIN_BUDGET; i++) {
		if (!readable(e->sock))
			return false;
		if (i && gw_loop_now(t->loop) >= deadline)
			return true;
		recv_one(t, e);
	}
	return readable(e->sock);
}

static struct endpoint *endpoint_at(struct syncd_transport *t, unsigned i)
{
	if (i == 0)
		return &t->pub;
	if (i == 1)
		return &t->router;
	i -= 2;
	return i % 2 ? &t->links[i / 2].dealer : &t->links[i / 2].sub;
}

/*
 * Every endpoint gets at least one message per drain; the one that starts
 * rotates, so a member sending without pause cannot hold the others back.
 */
static void drain(struct syncd_transport *t)
{
	uint64_t deadline = gw_loop_now(t->loop) + DRAIN_NS;
	unsigned n = 2 + 2 * t->n_links;
	bool more = false;

	for (unsigned k = 0; k < n; k++)
		more |= drain_endpoint(t, endpoint_at(t, (t->drain_first + k) % n), deadline);
	t->drain_first = (t->drain_first + 1) % n;
	t->stats.zap_denied = atomic_load(&t->zap.denied);
	if (more)
		gw_timer_arm_in(t->loop, &t->kick, 0);
}

static void on_fd(struct gw_loop *loop, int fd, uint32_t events, void *arg)
{
	(void)loop;
	(void)fd;
	(void)events;
	drain(arg);
}

static void on_kick(struct gw_loop *loop, struct gw_timer *tm, void *arg)
{
	(void)loop;
	(void)tm;
	drain(arg);
}

static void on_tick(struct gw_loop *loop, struct gw_timer *tm, void *arg)
{
	drain(arg);
	gw_timer_arm_in(loop, tm, SAFETY_TICK_MS * 1000000ull);
}

static int endpoint_register(struct syncd_transport *t, struct endpoint *e)
{
	int fd, mfd, err;
	size_t sz = sizeof(fd);

	if (zmq_getsockopt(e->sock, ZMQ_FD, &fd, &sz))
		return -errno;
	sz = sizeof(mfd);
	if (zmq_getsockopt(e->mon, ZMQ_FD, &mfd, &sz))
		return -errno;
	err = gw_loop_add_fd(t->loop, fd, EPOLLIN, on_fd, t);
	if (err)
		return err;
	err = gw_loop_add_fd(t->loop, mfd, EPOLLIN, on_fd, t);
	if (err) {
		gw_loop_del_fd(t->loop, fd);
		return err;
	}
	e->registered = true;
	return 0;
}

/* ------------------------------------------------------------------------ */
/* Sending */

/* Stamps env and packs it into m (initialised only on success). */
static int pack(struct syncd_transport *t, Gwcluster__Envelope *env, zmq_msg_t *m)
{
	size_t len;

	if (!env || env->body_case == GWCLUSTER__ENVELOPE__BODY__NOT_SET)
		return -EINVAL;
	env->version = SYNCD_PROTO_VERSION;
	env->origin = t->node_id;
	env->cluster = t->cluster;
	/* A missing required field would only be refused by every receiver. */
	if (!protobuf_c_message_check(&env->base))
		return -EINVAL;
	len = gwcluster__envelope__get_packed_size(env);
	if (len > SYNCD_MAX_MESSAGE)
		return -EMSGSIZE;
	if (zmq_msg_init_size(m, len))
		return -ENOMEM;
	gwcluster__envelope__pack(env, zmq_msg_data(m));
	return 0;
}

/* Sending may consume the edge of a socket's ZMQ_FD: drain soon. */
static void sent(struct syncd_transport *t)
{
	t->stats.tx_messages++;
	gw_timer_arm_in(t->loop, &t->kick, 0);
}

/*
 * Never blocks. A full queue to a subscriber makes the PUB drop the message
 * for that subscriber without telling us; the receiver sees the gap in our
 * sequence numbers and asks for a repair.
 */
int syncd_transport_publish(struct syncd_transport *t, Gwcluster__Envelope *env)
{
	zmq_msg_t m;
	int err = pack(t, env, &m);

	if (err)
		return err;
	if (zmq_msg_send(&m, t->pub.sock, ZMQ_DONTWAIT) < 0) {
		err = -errno;
		zmq_msg_close(&m);
		return err;
	}
	sent(t);
	return 0;
}

/*
 * -EINVAL for a non-member or ourselves, -ENOTCONN while no handshaken
 * connection to `to` exists (nothing is queued for later), -EAGAIN when
 * the queue to it is full (or, for a moment, while a connection that has
 * just come up is being attached): try again later.
 */
int syncd_transport_request(struct syncd_transport *t, uint8_t to, Gwcluster__Envelope *env)
{
	struct link *l = t->by_id[to];
	zmq_msg_t m;
	int err;

	if (!l)
		return -EINVAL;
	err = pack(t, env, &m);
	if (err)
		return err;
	/* Sending processes libzmq's commands only now and then: attach a
	 * connection that has just come up first. */
	writable(l->dealer.sock);
	if (zmq_msg_send(&m, l->dealer.sock, ZMQ_DONTWAIT) < 0) {
		err = -errno;
		zmq_msg_close(&m);
		if (err == -EAGAIN) {
			drain_monitor(t, &l->dealer);
			if (!l->dealer.up)
				err = -ENOTCONN;
		}
		return err;
	}
	sent(t);
	return 0;
}

/*
 * Goes to the connection the latest request from `to` came on. -EINVAL for
 * a non-member, -ENOTCONN if no request came from it or that connection is
 * gone, -EAGAIN when the queue to it is full.
 */
int syncd_transport_reply(struct syncd_transport *t, uint8_t to, Gwcluster__Envelope *env)
{
	struct link *l = t->by_id[to];
	zmq_msg_t m;
	int err;

	if (!l)
		return -EINVAL;
	if (!l->rid_len)
		return -ENOTCONN;
	err = pack(t, env, &m);
	if (err)
		return err;
	if (zmq_send(t->router.sock, l->rid, l->rid_len, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0) {
		err = -errno;
		zmq_msg_close(&m);
		if (err == -EHOSTUNREACH) {
			l->rid_len = 0;
			err = -ENOTCONN;
		}
		return err;
	}
	/* After the routing id went through, the body cannot fail on HWM. */
	if (zmq_msg_send(&m, t->router.sock, ZMQ_DONTWAIT) < 0) {
		err = -errno;
		zmq_msg_close(&m);
		return err;
	}
	sent(t);
	return 0;
}

const struct syncd_transport_stats *syncd_transport_stats(const struct syncd_transport *t)
{
	return &t->stats;
}

/* ------------------------------------------------------------------------ */
/* Lifecycle */

static const struct syncd_member *find_member(const struct syncd_transport_config *cfg, uint8_t id)
{
	for (unsigned i = 0; i < cfg->n_members; i++)
		if (cfg->members[i].node_id == id)
			return &cfg->members[i];
	return NULL;
}

static int open_sockets(struct syncd_transport *t, const struct syncd_transport_config *cfg)
{
	const struct syncd_member *self = find_member(cfg, cfg->node_id);
	const char *host = cfg->bind_host ?: self->host;
	const uint8_t *pk = self->curve_public;
	int err;

	err = endpoint_open(t, &t->pub, ROLE_PUB, cfg, pk, host, self->port, NULL);
	err =
	    err ?: endpoint_open(t, &t->router, ROLE_ROUTER, cfg, pk, host, self->port + 1u, NULL);
	for (unsigned i = 0; !err && i < cfg->n_members; i++) {
		const struct syncd_member *m = &cfg->members[i];
		struct link *l = &t->links[t->n_links];

		if (m->node_id == cfg->node_id)
			continue;
		t->n_links++;
		l->node_id = m->node_id;
		l->sub.link = l;
		l->dealer.link = l;
		t->by_id[m->node_id] = l;
		err =
		    endpoint_open(t, &l->sub, ROLE_SUB, cfg, pk, m->host, m->port, m->curve_public);
		err = err
			  ?: endpoint_open(t, &l->dealer, ROLE_DEALER, cfg, pk, m->host,
					   m->port + 1u, m->curve_public);
	}
	return err;
}

static int register_all(struct syncd_transport *t)
{
	int err = endpoint_register(t, &t->pub) ?: endpoint_register(t, &t->router);

	for (unsigned i = 0; !err && i < t->n_links; i++)
		err = endpoint_register(t, &t->links[i].sub)
			  ?: endpoint_register(t, &t->links[i].dealer);
	return err;
}

/* Undoes whatever part of open succeeded. */
static void teardown(struct syncd_transport *t)
{
	gw_timer_cancel(t->loop, &t->tick);
	gw_timer_cancel(t->loop, &t->kick);
	for (unsigned i = 0; i < t->n_links; i++) {
		endpoint_close(t, &t->links[i].sub);
		endpoint_close(t, &t->links[i].dealer);
	}
	endpoint_close(t, &t->router);
	endpoint_close(t, &t->pub);
	if (t->ctx) {
		/* Ends the ZAP thread's blocking receive with ETERM. */
		zmq_ctx_shutdown(t->ctx);
		if (t->zap.running)
			pthread_join(t->zap.thread, NULL);
		else if (t->zap.sock)
			zmq_close(t->zap.sock);
		while (zmq_ctx_term(t->ctx) && errno == EINTR)
			;
	}
	free(t->links);
	gw_wipe(t, sizeof(*t));
	free(t);
}

int syncd_transport_open(struct syncd_transport **out, const struct syncd_transport_config *cfg,
			 struct gw_loop *loop, syncd_envelope_fn *fn, void *arg)
{
	struct syncd_transport *t;
	int err;

	if (!out || !cfg || !loop || !fn)
		return -EINVAL;
	*out = NULL;
	err = check_config(cfg);
	if (err)
		return err;
	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->loop = loop;
	t->fn = fn;
	t->arg = arg;
	t->node_id = cfg->node_id;
	strcpy(t->cluster, cfg->cluster);
	t->rl = (struct gw_ratelimit)GW_RATELIMIT_INIT(10 * 1000000000ull, 10);
	gw_timer_init(&t->tick, on_tick, t);
	gw_timer_init(&t->kick, on_kick, t);
	t->links = calloc(cfg->n_members, sizeof(*t->links));
	t->ctx = zmq_ctx_new();
	if (!t->links || !t->ctx) {
		err = t->ctx ? -ENOMEM : -errno;
		goto fail;
	}
	err = zap_start(t, cfg);
	err = err ?: open_sockets(t, cfg);
	err = err ?: register_all(t);
	err = err ?: gw_timer_arm_in(loop, &t->tick, SAFETY_TICK_MS * 1000000ull);
	if (err)
		goto fail;
	*out = t;
	return 0;
fail:
	teardown(t);
	return err;
}

void syncd_transport_close(struct syncd_transport *t)
{
	if (t)
		teardown(t);
}
