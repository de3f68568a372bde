// SPDX-License-Identifier: MIT
/*
 * ZeroMQ ROUTER for the local syncd; syncsock.h is the contract.
 */
#include "syncsock.h"

#include <errno.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "cluster.h"
#include "device.h"
#include "gw/log.h"
#include "gw/pbwipe.h"
#include "gwcluster.pb-c.h"
#include "peer.h"
#include "session.h"

enum { ID_MAX = 256 };

struct gwd_syncsock {
	struct gwd_device *dev;
	void *ctx, *sock;
	int fd;
	char *path;
	char ifname[IFNAMSIZ];
	uint8_t sub_id[ID_MAX]; /* the subscriber's ZeroMQ routing id */
	size_t sub_len;
	bool has_sub;
	struct gwd_session_sink sink;
	struct gw_timer poll_timer;
	struct gw_timer heartbeat_timer;
	uint64_t rejected;
};

static struct gw_ratelimit sock_rl = GW_RATELIMIT_INIT(5 * GW_NSEC_PER_SEC, 5);

/* ZeroMQ frees a sent body from its I/O thread: wipe it there. */
static void wipe_free_body(void *data, void *hint)
{
	gw_wipe(data, (size_t)(uintptr_t)hint);
	free(data);
}

/* Sends m to the routing id `to`. 0, -EAGAIN (queue full) or -errno. */
static int send_to(struct gwd_syncsock *s, const uint8_t *to, size_t tolen,
		   const Gwcluster__LocalMessage *m)
{
	size_t len = gwcluster__local_message__get_packed_size(m);
	uint8_t *buf = malloc(len ? len : 1);
	zmq_msg_t body;
	int err;

	if (!buf)
		return -ENOMEM;
	gwcluster__local_message__pack(m, buf);
	if (zmq_send(s->sock, to, tolen, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0) {
		err = -zmq_errno();
		wipe_free_body(buf, (void *)(uintptr_t)len);
		return err;
	}
	/* The routing frame went, so the body is accepted too (same pipe). */
	if (zmq_msg_init_data(&body, buf, len, wipe_free_body, (void *)(uintptr_t)len) < 0) {
		wipe_free_body(buf, (void *)(uintptr_t)len);
		return -ENOMEM;
	}
	if (zmq_msg_send(&body, s->sock, ZMQ_DONTWAIT) < 0) {
		err = -zmq_errno();
		zmq_msg_close(&body);
		return err;
	}
	/* A send may swallow the edge of ZMQ_FD: look for input soon. */
	(void)gw_timer_arm_in(s->dev->loop, &s->poll_timer, 0);
	return 0;
}

static void forget_subscriber(struct gwd_syncsock *s)
{
	if (!s->has_sub)
		return;
	s->has_sub = false;
	gwd_session_set_sink(s->dev, NULL);
	gw_info("gwd: syncd went away from the session socket");
}

/* To the subscriber: 0 sent or dropped (no subscriber), -EAGAIN, -errno. */
static int send_sub(struct gwd_syncsock *s, const Gwcluster__LocalMessage *m)
{
	int err;

	if (!s->has_sub)
		return 0;
	err = send_to(s, s->sub_id, s->sub_len, m);
	if (err == -EHOSTUNREACH) {
		forget_subscriber(s);
		return 0;
	}
	return err;
}

static int sink_batch(void *arg, const Gwcluster__SessionBatch *batch)
{
	Gwcluster__LocalMessage m = GWCLUSTER__LOCAL_MESSAGE__INIT;

	m.version = GWD_SYNCSOCK_VERSION;
	m.body_case = GWCLUSTER__LOCAL_MESSAGE__BODY_EXPORT_SESSIONS;
	m.export_sessions = (Gwcluster__SessionBatch *)batch;
	return send_sub(arg, &m);
}

static void sink_snapshot_done(void *arg, uint64_t peers)
{
	Gwcluster__LocalMessage m = GWCLUSTER__LOCAL_MESSAGE__INIT;

	m.version = GWD_SYNCSOCK_VERSION;
	m.body_case = GWCLUSTER__LOCAL_MESSAGE__BODY_SNAPSHOT_DONE;
	m.snapshot_done = peers;
	if (send_sub(arg, &m) < 0)
		gw_log_rl(&sock_rl, GW_LOG_WARN, "gwd: cannot tell syncd the snapshot is done");
}

static void reply(struct gwd_syncsock *s, const uint8_t *to, size_t tolen,
		  Gwcluster__LocalMessage *m, const Gwcluster__LocalMessage *req)
{
	m->version = GWD_SYNCSOCK_VERSION;
	if (req->has_id) {
		m->has_id = true;
		m->id = req->id;
	}
	if (send_to(s, to, tolen, m) < 0)
		gw_log_rl(&sock_rl, GW_LOG_WARN, "gwd: cannot answer on the session socket");
}

static void result(struct gwd_syncsock *s, const uint8_t *to, size_t tolen,
		   const Gwcluster__LocalMessage *req, int err)
{
	Gwcluster__LocalMessage m = GWCLUSTER__LOCAL_MESSAGE__INIT;
	Gwcluster__LocalResult r = GWCLUSTER__LOCAL_RESULT__INIT;

	if (!req->has_id)
		return;
	r.error = err;
	m.body_case = GWCLUSTER__LOCAL_MESSAGE__BODY_RESULT;
	m.result = &r;
	reply(s, to, tolen, &m, req);
}

/* Fills who gwd is: the answer to hello and the subscriber's heartbeat. */
static void fill_hello(struct gwd_syncsock *s, Gwcluster__GwdHello *h)
{
	const struct gwd_cluster *c = s->dev->cluster;

	h->node_id = c->node_id;
	h->incarnation = c->incarnation;
	h->boot = c->boot;
	h->claim_on_receive = c->claim_on_receive;
	h->interface = s->ifname;
	h->has_master = true;
	h->master = c->master;
}

static void hello(struct gwd_syncsock *s, const uint8_t *id, size_t idlen,
		  const Gwcluster__LocalMessage *req)
{
	Gwcluster__LocalMessage m = GWCLUSTER__LOCAL_MESSAGE__INIT;
	Gwcluster__GwdHello h = GWCLUSTER__GWD_HELLO__INIT;

	memcpy(s->sub_id, id, idlen);
	s->sub_len = idlen;
	s->has_sub = true;
	fill_hello(s, &h);
	m.body_case = GWCLUSTER__LOCAL_MESSAGE__BODY_GWD_HELLO;
	m.gwd_hello = &h;
	reply(s, id, idlen, &m, req);
	gwd_session_set_sink(s->dev, &s->sink);
	gwd_session_dump(s->dev);
	gw_info("gwd: syncd subscribed to sessions; sending a snapshot of %zu peers",
		s->dev->npeers);
}

static int role(struct gwd_device *dev, const Gwcluster__RoleCommand *r)
{
	int err = 0;

	if (r->has_claim_on_receive)
		dev->cluster->claim_on_receive = r->claim_on_receive;
	switch (r->action) {
	case GWCLUSTER__ROLE_COMMAND__ACTION__CLAIM_ALL:
		gwd_cluster_claim_all(dev);
		return 0;
	case GWCLUSTER__ROLE_COMMAND__ACTION__RELEASE_ALL:
		gwd_cluster_release_all(dev);
		return 0;
	case GWCLUSTER__ROLE_COMMAND__ACTION__SET_MODE:
		return 0;
	case GWCLUSTER__ROLE_COMMAND__ACTION__CLAIM:
	case GWCLUSTER__ROLE_COMMAND__ACTION__RELEASE:
		break;
	default:
		return -EINVAL;
	}
	for (size_t i = 0; i < r->n_public_keys; i++) {
		struct gwd_peer *p = r->public_keys[i].len == GW_KEY_LEN
					 ? gwd_peer_lookup(dev, r->public_keys[i].data)
					 : NULL;

		if (!p)
			err = -ENOENT;
		else if (r->action == GWCLUSTER__ROLE_COMMAND__ACTION__CLAIM)
			gwd_cluster_claim_peer(p);
		else
			gwd_cluster_release_peer(p);
	}
	return err;
}

static void reject(struct gwd_syncsock *s, const char *why)
{
	s->rejected++;
	gw_log_rl(&sock_rl, GW_LOG_WARN, "gwd: session socket: %s", why);
}

static void dispatch(struct gwd_syncsock *s, const uint8_t *id, size_t idlen,
		     const Gwcluster__LocalMessage *m)
{
	switch (m->body_case) {
	case GWCLUSTER__LOCAL_MESSAGE__BODY_HELLO:
		hello(s, id, idlen, m);
		break;
	case GWCLUSTER__LOCAL_MESSAGE__BODY_IMPORT_SESSIONS:
		result(s, id, idlen, m, gwd_session_import(s->dev, m->import_sessions));
		break;
	case GWCLUSTER__LOCAL_MESSAGE__BODY_ROLE:
		result(s, id, idlen, m, role(s->dev, m->role));
		break;
	case GWCLUSTER__LOCAL_MESSAGE__BODY_DUMP:
		gwd_session_dump(s->dev);
		result(s, id, idlen, m, s->has_sub ? 0 : -ENOTCONN);
		break;
	default:
		reject(s, "unexpected message");
		result(s, id, idlen, m, -EINVAL);
		break;
	}
}

/* One message: routing id, then exactly one body frame. */
static void handle(struct gwd_syncsock *s, zmq_msg_t *id, zmq_msg_t *body)
{
	size_t idlen = zmq_msg_size(id), len = zmq_msg_size(body);
	Gwcluster__LocalMessage *m;

	if (idlen == 0 || idlen > ID_MAX) {
		reject(s, "bad routing id");
		return;
	}
	m = gwcluster__local_message__unpack(&gw_pbwipe_allocator, len, zmq_msg_data(body));
	gw_wipe(zmq_msg_data(body), len);
	if (!m || m->version != GWD_SYNCSOCK_VERSION) {
		reject(s, m ? "unknown version" : "malformed message");
	} else {
		dispatch(s, zmq_msg_data(id), idlen, m);
	}
	if (m)
		gwcluster__local_message__free_unpacked(m, &gw_pbwipe_allocator);
}

/* Reads one frame; false when none is waiting. */
static bool recv_frame(void *sock, zmq_msg_t *f)
{
	zmq_msg_init(f);
	if (zmq_msg_recv(f, sock, ZMQ_DONTWAIT) >= 0)
		return true;
	zmq_msg_close(f);
	return false;
}

static void drain(struct gwd_syncsock *s)
{
	for (;;) {
		zmq_msg_t id, body, extra;
		bool more;

		if (!recv_frame(s->sock, &id))
			return;
		more = zmq_msg_more(&id);
		if (!more || !recv_frame(s->sock, &body)) {
			zmq_msg_close(&id);
			reject(s, "message without a body");
			continue;
		}
		more = zmq_msg_more(&body);
		if (!more)
			handle(s, &id, &body);
		else
			reject(s, "message with more than one frame");
		while (more && recv_frame(s->sock, &extra)) {
			more = zmq_msg_more(&extra);
			gw_wipe(zmq_msg_data(&extra), zmq_msg_size(&extra));
			zmq_msg_close(&extra);
		}
		zmq_msg_close(&body);
		zmq_msg_close(&id);
	}
}

static void sock_ready(struct gw_loop *loop, int fd, uint32_t events, void *arg)
{
	(void)loop;
	(void)fd;
	(void)events;
	drain(arg);
}

static void poll_tick(struct gw_loop *loop, struct gw_timer *t, void *arg)
{
	drain(arg);
	(void)gw_timer_arm_in(loop, t, GWD_MSEC_NS(GWD_SYNCSOCK_POLL_MS));
}

/* Tells the subscriber gwd is alive (and which boot), so it notices a restart. */
static void heartbeat_tick(struct gw_loop *loop, struct gw_timer *t, void *arg)
{
	struct gwd_syncsock *s = arg;
	Gwcluster__LocalMessage m = GWCLUSTER__LOCAL_MESSAGE__INIT;
	Gwcluster__GwdHello h = GWCLUSTER__GWD_HELLO__INIT;

	fill_hello(s, &h);
	m.version = GWD_SYNCSOCK_VERSION;
	m.body_case = GWCLUSTER__LOCAL_MESSAGE__BODY_GWD_HELLO;
	m.gwd_hello = &h;
	(void)send_sub(s, &m); /* a full queue: the next one will do */
	(void)gw_timer_arm_in(loop, t, GWD_MSEC_NS(GWD_SYNCSOCK_HEARTBEAT_MS));
}

static int set_options(void *sock)
{
	int one = 1, zero = 0, hwm = GWD_SYNCSOCK_HWM;
	int64_t max = GWD_SYNCSOCK_MAX_MESSAGE;

	if (zmq_setsockopt(sock, ZMQ_ROUTER_MANDATORY, &one, sizeof(one)) < 0 ||
	    zmq_setsockopt(sock, ZMQ_LINGER, &zero, sizeof(zero)) < 0 ||
	    zmq_setsockopt(sock, ZMQ_SNDHWM, &hwm, sizeof(hwm)) < 0 ||
	    zmq_setsockopt(sock, ZMQ_RCVHWM, &hwm, sizeof(hwm)) < 0 ||
	    zmq_setsockopt(sock, ZMQ_MAXMSGSIZE, &max, sizeof(max)) < 0)
		return -zmq_errno();
	return 0;
}

/* Binds ipc://path with mode 0600 whatever the umask. */
static int bind_ipc(void *sock, const char *path)
{
	size_t n = strlen(path) + sizeof("ipc://");
	char *ep = malloc(n);
	mode_t old;
	int err = 0;

	if (!ep)
		return -ENOMEM;
	snprintf(ep, n, "ipc://%s", path);
	if (unlink(path) < 0 && errno != ENOENT)
		err = -errno;
	old = umask(0077);
	if (!err && zmq_bind(sock, ep) < 0)
		err = -zmq_errno();
	umask(old);
	if (!err && chmod(path, 0600) < 0)
		err = -errno;
	free(ep);
	return err;
}

static int sock_start(struct gwd_syncsock *s, const char *path)
{
	size_t len = sizeof(s->fd);
	int err;

	s->ctx = zmq_ctx_new();
	s->sock = s->ctx ? zmq_socket(s->ctx, ZMQ_ROUTER) : NULL;
	if (!s->sock)
		return -ENOMEM;
	err = set_options(s->sock);
	if (!err)
		err = bind_ipc(s->sock, path);
	if (!err && zmq_getsockopt(s->sock, ZMQ_FD, &s->fd, &len) < 0)
		err = -zmq_errno();
	if (!err)
		err = gw_loop_add_fd(s->dev->loop, s->fd, EPOLLIN, sock_ready, s);
	if (err)
		s->fd = -1;
	if (!err)
		err = gw_timer_arm_in(s->dev->loop, &s->poll_timer,
				      GWD_MSEC_NS(GWD_SYNCSOCK_POLL_MS));
	if (!err)
		err = gw_timer_arm_in(s->dev->loop, &s->heartbeat_timer,
				      GWD_MSEC_NS(GWD_SYNCSOCK_HEARTBEAT_MS));
	return err;
}

int gwd_syncsock_open(struct gwd_syncsock **out, struct gwd_device *dev, const char *path,
		      const char *ifname)
{
	struct gwd_syncsock *s;
	int err;

	if (!dev->cluster)
		return -EINVAL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->dev = dev;
	s->fd = -1;
	snprintf(s->ifname, sizeof(s->ifname), "%s", ifname ? ifname : "");
	s->sink = (struct gwd_session_sink){sink_batch, sink_snapshot_done, s};
	gw_timer_init(&s->poll_timer, poll_tick, s);
	gw_timer_init(&s->heartbeat_timer, heartbeat_tick, s);
	s->path = strdup(path);
	err = s->path ? sock_start(s, path) : -ENOMEM;
	if (err) {
		gwd_syncsock_close(s);
		return err;
	}
	*out = s;
	return 0;
}

void gwd_syncsock_close(struct gwd_syncsock *s)
{
	if (!s)
		return;
	gwd_session_set_sink(s->dev, NULL);
	gw_timer_cancel(s->dev->loop, &s->poll_timer);
	gw_timer_cancel(s->dev->loop, &s->heartbeat_timer);
	if (s->fd >= 0)
		gw_loop_del_fd(s->dev->loop, s->fd);
	if (s->sock)
		zmq_close(s->sock);
	if (s->ctx)
		zmq_ctx_term(s->ctx);
	if (s->path) {
		unlink(s->path);
		free(s->path);
	}
	free(s);
}

uint64_t gwd_syncsock_rejected(const struct gwd_syncsock *s)
{
	return s->rejected;
}
