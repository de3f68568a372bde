// SPDX-License-Identifier: MIT
/*
 * The relay's I/O (relay.h): the ZeroMQ DEALER on gwd's session socket with
 * a monitor that reports each connection, gwd's stats=1 over the UAPI
 * socket (uapi_conn.h: on the loop, never blocking it), and the SyncedFile.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "gw/crypto.h"
#include "gw/log.h"
#include "relay.h"
#include "uapi_conn.h"

enum {
	SAFETY_DRAIN_MS = 50, /* ZMQ_FD is edge-triggered: drain on a timer too */
	DRAIN_BUDGET = 256,   /* messages per drain before yielding to the loop */
	STATS_TIMEOUT_MS = 2000,
	STATS_DEADLINE_MS = 30000,
	STATS_LINE_MAX = 512,
};

static struct gw_ratelimit link_rl = GW_RATELIMIT_INIT(30 * GW_NSEC_PER_SEC, 2);

/* ------------------------------------------------------------------------
 * gwd's stats=1
 */

struct stats_parser {
	struct syncd_gwd_stats *st;
	char line[STATS_LINE_MAX + 1];
	size_t len;
	bool in_peer, done;
	long err;
	/* The peer being read. */
	bool owned, has_send_epoch;
	uint64_t send_epoch, headroom;
};

static bool u64_value(const char *s, uint64_t *out)
{
	char *end;

	if (*s < '0' || *s > '9')
		return false;
	errno = 0;
	*out = strtoull(s, &end, 10);
	return !errno && !*end;
}

static void peer_end(struct stats_parser *p)
{
	struct syncd_gwd_stats *st = p->st;

	if (p->in_peer && p->owned && p->has_send_epoch) {
		if (p->send_epoch > st->send_epoch_max)
			st->send_epoch_max = (uint32_t)p->send_epoch;
		if (!st->has_headroom || p->headroom < st->region_headroom_min)
			st->region_headroom_min = p->headroom;
		st->has_headroom = true;
	}
	p->owned = p->has_send_epoch = false;
	p->send_epoch = p->headroom = 0;
}

static void peer_key(struct stats_parser *p, const char *k, uint64_t v)
{
	if (!strcmp(k, "owned"))
		p->owned = v != 0;
	else if (!strcmp(k, "send_epoch"))
		p->has_send_epoch = true, p->send_epoch = v;
	else if (!strcmp(k, "region_headroom"))
		p->headroom = v;
	else if (!strcmp(k, "owner_epoch") && v > p->st->owner_epoch_max)
		p->st->owner_epoch_max = v;
}

static void device_key(struct stats_parser *p, const char *k, uint64_t v)
{
	static const struct {
		const char *name;
		size_t off;
	} keys[] = {
	    {"peers", offsetof(struct syncd_gwd_stats, peers)},
	    {"boot", offsetof(struct syncd_gwd_stats, boot)},
	    {"peers_owned", offsetof(struct syncd_gwd_stats, peers_owned)},
	    {"sessions_owned", offsetof(struct syncd_gwd_stats, sessions_owned)},
	    {"sessions_standby", offsetof(struct syncd_gwd_stats, sessions_standby)},
	    {"exports", offsetof(struct syncd_gwd_stats, exports)},
	    {"imports", offsetof(struct syncd_gwd_stats, imports)},
	};
	struct syncd_gwd_stats *st = p->st;

	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		if (!strcmp(k, keys[i].name)) {
			memcpy((char *)st + keys[i].off, &v, sizeof(v));
			return;
		}
	if (!strcmp(k, "node_id"))
		st->cluster = true, st->node_id = (uint32_t)v;
	else if (!strcmp(k, "incarnation"))
		st->incarnation = (uint32_t)v;
	else if (!strcmp(k, "master"))
		st->master = v != 0;
	else if (!strcmp(k, "claim_on_receive"))
		st->claim_on_receive = v != 0;
}

static int parse_line(struct stats_parser *p, char *line)
{
	char *eq = strchr(line, '=');
	uint64_t v;

	if (!*line) {
		peer_end(p);
		p->done = true;
		return 0;
	}
	if (!eq)
		return -EPROTO;
	*eq = '\0';
	if (!strcmp(line, "errno")) {
		char *end;

		p->err = strtol(eq + 1, &end, 10);
		return *end ? -EPROTO : 0;
	}
	if (!strcmp(line, "public_key")) {
		peer_end(p);
		p->in_peer = true;
		return 0;
	}
	if (!u64_value(eq + 1, &v))
		return 0; /* not a number we read */
	if (p->in_peer)
		peer_key(p, line, v);
	else
		device_key(p, line, v);
	return 0;
}

static int stats_feed(struct stats_parser *p, const char *buf, size_t n)
{
	for (size_t i = 0; i < n && !p->done; i++) {
		int err;

		if (buf[i] != '\n') {
			if (p->len == STATS_LINE_MAX)
				return -EPROTO;
			p->line[p->len++] = buf[i];
			continue;
		}
		p->line[p->len] = '\0';
		p->len = 0;
		err = parse_line(p, p->line);
		if (err)
			return err;
	}
	return 0;
}

static int stats_finish(struct stats_parser *p)
{
	if (!p->done || p->len)
		return -EPROTO;
	if (p->err)
		return p->err > 0 ? (int)-p->err : (int)p->err;
	return 0;
}

int syncd_gwd_stats_parse(const char *reply, size_t len, struct syncd_gwd_stats *out)
{
	struct stats_parser p = {.st = out};
	int err;

	memset(out, 0, sizeof(*out));
	err = stats_feed(&p, reply, len);
	return err ? err : stats_finish(&p);
}

/* The query on syncd's loop: a stats parser behind a non-blocking UAPI connection. */
struct syncd_gwd_stats_client {
	struct syncd_uapi_conn conn;
	struct stats_parser p;
	struct syncd_gwd_stats st;
	syncd_gwd_stats_fn *fn;
	void *arg;
};

static int client_feed(void *arg, const char *buf, size_t n)
{
	struct syncd_gwd_stats_client *c = arg;
	int err = stats_feed(&c->p, buf, n);

	return err ? err : c->p.done;
}

static void client_answered(void *arg)
{
	struct syncd_gwd_stats_client *c = arg;
	uint64_t took = gw_clock_mono_ns(gw_loop_clock(c->conn.loop)) - c->conn.start_ns;

	c->fn(c->arg, stats_finish(&c->p), &c->st, took);
}

static void client_failed(void *arg, int rc)
{
	struct syncd_gwd_stats_client *c = arg;
	uint64_t took = gw_clock_mono_ns(gw_loop_clock(c->conn.loop)) - c->conn.start_ns;

	c->fn(c->arg, rc, NULL, took);
}

static const struct syncd_uapi_ops client_ops = {
    .feed = client_feed,
    .answered = client_answered,
    .failed = client_failed,
};

int syncd_gwd_stats_client_open(struct syncd_gwd_stats_client **out, struct gw_loop *loop,
				const char *ifname, syncd_gwd_stats_fn *fn, void *arg)
{
	struct syncd_gwd_stats_client *c;
	int err;

	if (!fn)
		return -EINVAL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	err = syncd_uapi_conn_init(&c->conn, loop, ifname, STATS_TIMEOUT_MS, STATS_DEADLINE_MS,
				   &client_ops, c);
	if (err) {
		free(c);
		return err;
	}
	c->fn = fn;
	c->arg = arg;
	*out = c;
	return 0;
}

int syncd_gwd_stats_client_query(struct syncd_gwd_stats_client *c)
{
	static const char req[] = "stats=1\n\n";

	if (c->conn.busy)
		return -EBUSY;
	memset(&c->st, 0, sizeof(c->st));
	c->p = (struct stats_parser){.st = &c->st};
	return syncd_uapi_conn_request(&c->conn, req, sizeof(req) - 1);
}

bool syncd_gwd_stats_client_busy(const struct syncd_gwd_stats_client *c)
{
	return c->conn.busy;
}

void syncd_gwd_stats_client_close(struct syncd_gwd_stats_client *c)
{
	if (!c)
		return;
	syncd_uapi_conn_close(&c->conn);
	free(c);
}

/* ------------------------------------------------------------------------
 * The SyncedFile
 */

int syncd_synced_file_write(const char *path, unsigned value)
{
	char tmp[4096], text[16];
	int fd, n, err = 0;

	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= sizeof(tmp))
		return -ENAMETOOLONG;
	n = snprintf(text, sizeof(text), "%u\n", value);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd < 0)
		return -errno;
	if (write(fd, text, (size_t)n) != n)
		err = errno ? -errno : -EIO;
	if (close(fd) && !err)
		err = -errno;
	/* rename: keepalived (inotify) never reads a half-written file. */
	if (!err && rename(tmp, path))
		err = -errno;
	if (err)
		unlink(tmp);
	return err;
}

int syncd_synced_file_refresh(const char *path, unsigned value)
{
	char want[16], have[16];
	ssize_t n = -1;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);

	snprintf(want, sizeof(want), "%u\n", value);
	if (fd >= 0) {
		n = read(fd, have, sizeof(have) - 1);
		close(fd);
	}
	if (n >= 0) {
		have[n] = '\0';
		if (!strcmp(have, want))
			return 0;
	}
	n = syncd_synced_file_write(path, value);
	return n ? (int)n : 1;
}

/* ------------------------------------------------------------------------
 * The DEALER to gwd
 */

struct syncd_relay_link {
	struct syncd_relay *relay;
	struct gw_loop *loop;
	void *ctx, *sock, *mon;
	int fd, mfd;
	bool fd_added, mfd_added;
	bool up;
	struct gw_timer timer, kick;
	bool warned; /* "gwd's session socket is not there" was said */
	char endpoint[sizeof("ipc://") + 108];
};

static int set_int(void *s, int opt, int v)
{
	return zmq_setsockopt(s, opt, &v, sizeof(v)) ? -errno : 0;
}

static bool readable(void *s)
{
	int ev = 0;
	size_t sz = sizeof(ev);

	return !zmq_getsockopt(s, ZMQ_EVENTS, &ev, &sz) && (ev & ZMQ_POLLIN);
}

static void discard_more(void *s)
{
	int more = 0;
	size_t sz = sizeof(more);

	while (!zmq_getsockopt(s, ZMQ_RCVMORE, &more, &sz) && more) {
		zmq_msg_t m;

		zmq_msg_init(&m);
		if (zmq_msg_recv(&m, s, ZMQ_DONTWAIT) < 0) {
			zmq_msg_close(&m);
			return;
		}
		gw_wipe(zmq_msg_data(&m), zmq_msg_size(&m));
		zmq_msg_close(&m);
		sz = sizeof(more);
	}
}

/* One monitor event: its number (0: none or not one). */
static uint16_t read_event(void *mon)
{
	uint16_t event = 0;
	zmq_msg_t ev;

	zmq_msg_init(&ev);
	if (zmq_msg_recv(&ev, mon, ZMQ_DONTWAIT) >= 2)
		memcpy(&event, zmq_msg_data(&ev), sizeof(event));
	zmq_msg_close(&ev);
	discard_more(mon);
	return event;
}

static void link_down(struct syncd_relay_link *l)
{
	if (!l->up)
		return;
	l->up = false;
	syncd_relay_gwd_down(l->relay);
}

static void drain_monitor(struct syncd_relay_link *l)
{
	while (readable(l->mon)) {
		uint16_t ev = read_event(l->mon);

		if (ev == ZMQ_EVENT_HANDSHAKE_SUCCEEDED) {
			link_down(l); /* a reconnect whose disconnect we have not seen */
			l->up = true;
			l->warned = false;
			/* Attaches the new pipe before the hello is sent. */
			(void)readable(l->sock);
			syncd_relay_gwd_up(l->relay);
		} else if (ev == ZMQ_EVENT_DISCONNECTED) {
			link_down(l);
		} else if (ev == ZMQ_EVENT_CONNECT_RETRIED && !l->up && !l->warned) {
			l->warned = true;
			gw_info("relay: no gwd on %s yet; retrying", l->endpoint + 6);
		}
	}
}

static void recv_one(struct syncd_relay_link *l)
{
	zmq_msg_t m;
	int more = 0;
	size_t sz = sizeof(more);

	zmq_msg_init(&m);
	if (zmq_msg_recv(&m, l->sock, ZMQ_DONTWAIT) < 0) {
		zmq_msg_close(&m);
		return;
	}
	zmq_getsockopt(l->sock, ZMQ_RCVMORE, &more, &sz);
	if (more) {
		discard_more(l->sock);
		gw_wipe(zmq_msg_data(&m), zmq_msg_size(&m));
		gw_log_rl(&link_rl, GW_LOG_WARN, "relay: dropped a multi-frame message from gwd");
	} else {
		syncd_relay_from_gwd(l->relay, zmq_msg_data(&m), zmq_msg_size(&m));
	}
	zmq_msg_close(&m);
}

static void drain(struct syncd_relay_link *l)
{
	drain_monitor(l);
	for (int i = 0; i < DRAIN_BUDGET; i++) {
		if (!readable(l->sock))
			return;
		recv_one(l);
	}
	if (readable(l->sock))
		(void)gw_timer_arm_in(l->loop, &l->kick, 0);
}

static void on_fd(struct gw_loop *loop, int fd, uint32_t events, void *arg)
{
	(void)loop;
	(void)fd;
	(void)events;
	drain(arg);
}

static void on_kick(struct gw_loop *loop, struct gw_timer *t, void *arg)
{
	(void)loop;
	(void)t;
	drain(arg);
}

static void on_timer(struct gw_loop *loop, struct gw_timer *t, void *arg)
{
	drain(arg);
	(void)gw_timer_arm_in(loop, t, SAFETY_DRAIN_MS * GW_NSEC_PER_MSEC);
}

/* ZeroMQ frees a sent body from its I/O thread: wipe it there. */
static void wipe_free_body(void *data, void *hint)
{
	gw_wipe(data, (size_t)(uintptr_t)hint);
	free(data);
}

int syncd_relay_link_send(struct syncd_relay_link *l, uint8_t *buf, size_t len)
{
	zmq_msg_t m;
	int err;

	if (zmq_msg_init_data(&m, buf, len, wipe_free_body, (void *)(uintptr_t)len)) {
		wipe_free_body(buf, (void *)(uintptr_t)len);
		return -ENOMEM;
	}
	if (zmq_msg_send(&m, l->sock, ZMQ_DONTWAIT) < 0) {
		err = errno;
		zmq_msg_close(&m);
		return err == EAGAIN && !l->up ? -ENOTCONN : -err;
	}
	/* Sending may swallow the edge of ZMQ_FD: look for input soon. */
	(void)gw_timer_arm_in(l->loop, &l->kick, 0);
	return 0;
}

static int open_sockets(struct syncd_relay_link *l)
{
	char mon_ep[64];
	int64_t maxmsg = SYNCD_MAX_MESSAGE;
	int err;

	l->ctx = zmq_ctx_new();
	l->sock = l->ctx ? zmq_socket(l->ctx, ZMQ_DEALER) : NULL;
	if (!l->sock)
		return -ENOMEM;
	err = set_int(l->sock, ZMQ_LINGER, 0);
	err = err ?: set_int(l->sock, ZMQ_IMMEDIATE, 1);
	err = err ?: set_int(l->sock, ZMQ_SNDHWM, SYNCD_RELAY_LINK_HWM);
	err = err ?: set_int(l->sock, ZMQ_RCVHWM, SYNCD_RELAY_LINK_HWM);
	err = err ?: set_int(l->sock, ZMQ_RECONNECT_IVL, SYNCD_RELAY_RECONNECT_MS);
	err = err ?: set_int(l->sock, ZMQ_RECONNECT_IVL_MAX, SYNCD_RELAY_RECONNECT_MAX_MS);
	if (!err && zmq_setsockopt(l->sock, ZMQ_MAXMSGSIZE, &maxmsg, sizeof(maxmsg)))
		err = -errno;
	if (err)
		return err;
	snprintf(mon_ep, sizeof(mon_ep), "inproc://relay-monitor-%p", (void *)l);
	if (zmq_socket_monitor(l->sock, mon_ep,
			       ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_DISCONNECTED |
				   ZMQ_EVENT_CONNECT_RETRIED))
		return -errno;
	l->mon = zmq_socket(l->ctx, ZMQ_PAIR);
	if (!l->mon || set_int(l->mon, ZMQ_LINGER, 0) || zmq_connect(l->mon, mon_ep))
		return -errno;
	return zmq_connect(l->sock, l->endpoint) ? -errno : 0;
}

static int watch(struct syncd_relay_link *l)
{
	size_t sz = sizeof(l->fd);
	int err;

	if (zmq_getsockopt(l->sock, ZMQ_FD, &l->fd, &sz))
		return -errno;
	sz = sizeof(l->mfd);
	if (zmq_getsockopt(l->mon, ZMQ_FD, &l->mfd, &sz))
		return -errno;
	err = gw_loop_add_fd(l->loop, l->fd, EPOLLIN, on_fd, l);
	l->fd_added = !err;
	err = err ?: gw_loop_add_fd(l->loop, l->mfd, EPOLLIN, on_fd, l);
	l->mfd_added = l->fd_added && !err;
	return err ?: gw_timer_arm_in(l->loop, &l->timer, SAFETY_DRAIN_MS * GW_NSEC_PER_MSEC);
}

int syncd_relay_link_open(struct syncd_relay_link **out, const char *path, struct gw_loop *loop,
			  struct syncd_relay *r)
{
	struct syncd_relay_link *l;
	int err;

	*out = NULL;
	if (path[0] != '/' || strlen(path) > 107)
		return -EINVAL;
	l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	l->relay = r;
	l->loop = loop;
	l->fd = l->mfd = -1;
	snprintf(l->endpoint, sizeof(l->endpoint), "ipc://%s", path);
	gw_timer_init(&l->timer, on_timer, l);
	gw_timer_init(&l->kick, on_kick, l);
	err = open_sockets(l);
	err = err ?: watch(l);
	if (err) {
		syncd_relay_link_close(l);
		return err;
	}
	*out = l;
	return 0;
}

void syncd_relay_link_close(struct syncd_relay_link *l)
{
	if (!l)
		return;
	gw_timer_cancel(l->loop, &l->timer);
	gw_timer_cancel(l->loop, &l->kick);
	if (l->fd_added)
		gw_loop_del_fd(l->loop, l->fd);
	if (l->mfd_added)
		gw_loop_del_fd(l->loop, l->mfd);
	if (l->sock)
		zmq_socket_monitor(l->sock, NULL, 0);
	if (l->mon)
		zmq_close(l->mon);
	if (l->sock)
		zmq_close(l->sock);
	if (l->ctx)
		zmq_ctx_term(l->ctx);
	free(l);
}
