// SPDX-License-Identifier: MIT
/*
 * The /metrics server. A connection moves through three states:
 *
 *   READ    request bytes into a fixed buffer until the parser decides;
 *   WRITE   head (fixed buffer) and body (static text or the metrics text)
 *           with sendmsg() on EPOLLOUT until all is sent;
 *   LINGER  after shutdown(SHUT_WR), unread request bytes are drained until
 *           the client closes, so that closing with unread data (which sends
 *           an RST) cannot destroy a response the client has not read yet.
 *
 * One gw_timer per connection bounds each state. Only the listener and the
 * connection sockets are in the loop; all memory is in struct gw_httpd except
 * the metrics text.
 */
#include "gw/httpd.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "gw/log.h"

enum {
	LISTEN_BACKLOG = 64,
	ACCEPT_BATCH = 64, /* accepts per wake-up, so a flood cannot starve the loop */
	DRAIN_BATCH = 16,  /* reads per wake-up while lingering */
	HEAD_MAX = 256,
};

#define ACCEPT_PAUSE_NS (100 * GW_NSEC_PER_MSEC)

enum conn_state {
	CONN_FREE,
	CONN_READ,
	CONN_WRITE,
	CONN_LINGER,
};

struct conn {
	struct gw_httpd *h;
	int fd;
	enum conn_state state;
	struct gw_timer timer;
	size_t req_len;
	size_t head_len, body_len, sent; /* sent counts head, then body */
	const char *body;
	struct gw_metrics m; /* the body of a 200 */
	char head[HEAD_MAX];
	char req[GW_HTTPD_REQ_MAX];
};

struct gw_httpd {
	struct gw_loop *loop;
	int fd;
	gw_metrics_fn *fn;
	void *arg;
	union gw_sockaddr local;
	struct gw_timer accept_pause; /* listener off after EMFILE and the like */
	struct gw_httpd_stats stats;
	struct gw_ratelimit rl;
	struct conn conns[GW_HTTPD_MAX_CONNS];
};

/* ---- request parser ---- */

static bool is_tchar(unsigned char c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
		return true;
	return c && strchr("!#$%&'*+-.^_`|~", c);
}

/* Matches p[i..] against "HTTP/d.d\r\n": 0 on a match, 1 for need more, -1 for a mismatch. */
static int match_version(const unsigned char *p, size_t len, size_t i)
{
	static const char pat[] = "HTTP/d.d\r\n";

	for (size_t j = 0; j < sizeof(pat) - 1; j++) {
		if (i + j >= len)
			return 1;
		if (pat[j] == 'd' ? p[i + j] < '0' || p[i + j] > '9' : p[i + j] != pat[j])
			return -1;
	}
	return 0;
}

static bool target_is_metrics(const unsigned char *t, size_t n)
{
	const unsigned char *q = memchr(t, '?', n);
	size_t path = q ? (size_t)(q - t) : n;

	return path == 8 && !memcmp(t, "/metrics", 8);
}

int gw_httpd_parse_request(const char *buf, size_t len)
{
	const unsigned char *p = (const unsigned char *)buf;
	size_t i = 0, method_len, target, target_len, version;
	int v;

	while (i < len && is_tchar(p[i]))
		if (++i > GW_HTTPD_METHOD_MAX)
			return 400;
	if (i == len)
		return 0;
	if (i == 0 || p[i] != ' ')
		return 400;
	method_len = i++;
	target = i;
	if (target < len && p[target] != '/')
		return 400; /* origin-form only */
	while (i < len && p[i] > ' ' && p[i] < 0x7f)
		i++;
	if (i == len)
		return 0;
	if (p[i] != ' ')
		return 400;
	target_len = i - target;
	version = i + 1;
	v = match_version(p, len, version);
	if (v)
		return v > 0 ? 0 : 400;
	if (p[version + 5] != '1' || p[version + 7] > '1')
		return 505;
	if (!target_is_metrics(p + target, target_len))
		return 404;
	if (method_len != 3 || memcmp(p, "GET", 3))
		return 405;
	/* The request line's CRLF, then headers until an empty line. */
	return memmem(p + version + 8, len - version - 8, "\r\n\r\n", 4) ? 200 : 0;
}

/* ---- connections ---- */

static void conn_close(struct conn *c)
{
	struct gw_httpd *h = c->h;

	gw_timer_cancel(h->loop, &c->timer);
	gw_loop_del_fd(h->loop, c->fd);
	close(c->fd);
	c->fd = -1;
	gw_metrics_free(&c->m);
	c->state = CONN_FREE;
	h->stats.active--;
}

static void conn_timeout(struct gw_loop *loop, struct gw_timer *t, void *arg)
{
	struct conn *c = arg;

	if (c->state != CONN_LINGER)
		c->h->stats.timeouts++;
	conn_close(c);
}

static void conn_linger(struct conn *c)
{
	gw_metrics_free(&c->m);
	c->body = NULL;
	if (shutdown(c->fd, SHUT_WR) || gw_loop_mod_fd(c->h->loop, c->fd, EPOLLIN) ||
	    gw_timer_arm_in(c->h->loop, &c->timer, GW_HTTPD_LINGER_NS)) {
		conn_close(c);
		return;
	}
	c->state = CONN_LINGER;
}

static void conn_drain(struct conn *c)
{
	for (int i = 0; i < DRAIN_BATCH; i++) {
		ssize_t n = recv(c->fd, c->req, sizeof(c->req), 0);

		if (n > 0 || (n < 0 && errno == EINTR))
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		conn_close(c); /* EOF or error */
		return;
	}
}

/* Sends what the socket takes; a send that makes progress restarts the timeout. */
static void conn_write(struct conn *c)
{
	size_t total = c->head_len + c->body_len;
	bool progress = false;

	while (c->sent < total) {
		struct iovec iov[2];
		struct msghdr msg = {.msg_iov = iov};
		size_t boff = c->sent > c->head_len ? c->sent - c->head_len : 0;
		ssize_t n;

		if (c->sent < c->head_len)
			iov[msg.msg_iovlen++] =
			    (struct iovec){c->head + c->sent, c->head_len - c->sent};
		if (boff < c->body_len)
			iov[msg.msg_iovlen++] =
			    (struct iovec){(char *)c->body + boff, c->body_len - boff};
		n = sendmsg(c->fd, &msg, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (n < 0) {
			conn_close(c);
			return;
		}
		c->sent += (size_t)n;
		progress = true;
	}
	if (c->sent == total)
		conn_linger(c);
	else if (progress && gw_timer_arm_in(c->h->loop, &c->timer, GW_HTTPD_TIMEOUT_NS))
		conn_close(c);
}

struct status {
	int code;
	const char *reason;
	const char *body; /* of an error answer */
};

static const struct status statuses[] = {
    {200, "OK", ""},
    {400, "Bad Request", "Bad request: only GET /metrics HTTP/1.1 is served.\n"},
    {404, "Not Found", "Not found: metrics are at /metrics.\n"},
    {405, "Method Not Allowed", "Method not allowed: use GET.\n"},
    {431, "Request Header Fields Too Large", "Request too large.\n"},
    {505, "HTTP Version Not Supported", "Use HTTP/1.1.\n"},
    {500, "Internal Server Error", "Metrics are unavailable; see the daemon's log.\n"},
};

/* Unknown codes map to the last entry, 500. */
static const struct status *status_find(int code)
{
	size_t n = sizeof(statuses) / sizeof(statuses[0]);

	for (size_t i = 0; i < n - 1; i++)
		if (statuses[i].code == code)
			return &statuses[i];
	return &statuses[n - 1];
}

/* Runs the metrics callback into c->m; 200, or 500 when anything failed. */
static int conn_scrape(struct conn *c)
{
	struct gw_httpd *h = c->h;
	const struct gw_clock *clock = gw_loop_clock(h->loop);
	uint64_t start = gw_clock_mono_ns(clock);
	int err, end;

	gw_metrics_init(&c->m, 0);
	gw_metrics_begin(&c->m);
	err = h->fn(h->arg, &c->m);
	end = gw_metrics_end(&c->m);
	if (err || end) {
		gw_log_rl(&h->rl, GW_LOG_WARN, "metrics: scrape failed: %s",
			  strerror(-(err ? err : end)));
		gw_metrics_free(&c->m);
		return 500;
	}
	c->body = gw_metrics_data(&c->m, &c->body_len);
	h->stats.last_scrape_ns = gw_clock_mono_ns(clock) - start;
	h->stats.last_scrape_bytes = c->body_len;
	return 200;
}

static void conn_respond(struct conn *c, int code)
{
	struct gw_httpd *h = c->h;
	const char *type = "text/plain; charset=utf-8";
	const struct status *st;
	int n;

	if (code == 200)
		code = conn_scrape(c);
	st = status_find(code);
	if (st->code == 200) {
		type = "text/plain; version=0.0.4; charset=utf-8";
		h->stats.scrapes++;
	} else {
		c->body = st->body;
		c->body_len = strlen(st->body);
		if (st->code == 500)
			h->stats.server_errors++;
		else
			h->stats.client_errors++;
	}
	n = snprintf(c->head, sizeof(c->head),
		     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s"
		     "Connection: close\r\n\r\n",
		     st->code, st->reason, type, c->body_len,
		     st->code == 405 ? "Allow: GET\r\n" : "");
	c->head_len = (size_t)n;
	c->sent = 0;
	c->state = CONN_WRITE;
	if (n < 0 || (size_t)n >= sizeof(c->head) || gw_loop_mod_fd(h->loop, c->fd, EPOLLOUT) ||
	    gw_timer_arm_in(h->loop, &c->timer, GW_HTTPD_TIMEOUT_NS)) {
		conn_close(c);
		return;
	}
	conn_write(c);
}

static void conn_read(struct conn *c)
{
	for (;;) {
		size_t room = sizeof(c->req) - c->req_len;
		ssize_t n;
		int status;

		if (!room) {
			conn_respond(c, 431);
			return;
		}
		n = recv(c->fd, c->req + c->req_len, room, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n <= 0) {
			conn_close(c); /* EOF before a whole request, or an error */
			return;
		}
		c->req_len += (size_t)n;
		status = gw_httpd_parse_request(c->req, c->req_len);
		if (status) {
			conn_respond(c, status);
			return;
		}
	}
}

static void conn_ready(struct gw_loop *loop, int fd, uint32_t events, void *arg)
{
	struct conn *c = arg;

	switch (c->state) {
	case CONN_READ:
		conn_read(c);
		break;
	case CONN_WRITE:
		conn_write(c);
		break;
	case CONN_LINGER:
		conn_drain(c);
		break;
	case CONN_FREE:
		break;
	}
}

static void conn_start(struct gw_httpd *h, struct conn *c, int fd)
{
	c->fd = fd;
	c->req_len = c->head_len = c->body_len = c->sent = 0;
	c->body = NULL;
	if (gw_loop_add_fd(h->loop, fd, EPOLLIN, conn_ready, c)) {
		close(fd);
		c->fd = -1;
		return;
	}
	c->state = CONN_READ;
	h->stats.active++;
	h->stats.accepted++;
	if (gw_timer_arm_in(h->loop, &c->timer, GW_HTTPD_TIMEOUT_NS))
		conn_close(c);
}

/* ---- listener ---- */

static struct conn *free_slot(struct gw_httpd *h)
{
	for (size_t i = 0; i < GW_HTTPD_MAX_CONNS; i++)
		if (h->conns[i].state == CONN_FREE)
			return &h->conns[i];
	return NULL;
}

static void accept_resume(struct gw_loop *loop, struct gw_timer *t, void *arg)
{
	struct gw_httpd *h = arg;

	gw_loop_mod_fd(loop, h->fd, EPOLLIN);
}

/*
 * Out of descriptors or memory the listener would stay readable and spin
 * the loop: stop watching it for a moment instead.
 */
static void accept_pause(struct gw_httpd *h, int err)
{
	gw_log_rl(&h->rl, GW_LOG_WARN, "metrics: accept: %s", strerror(err));
	gw_loop_mod_fd(h->loop, h->fd, 0);
	if (gw_timer_arm_in(h->loop, &h->accept_pause, ACCEPT_PAUSE_NS))
		gw_loop_mod_fd(h->loop, h->fd, EPOLLIN);
}

static void on_accept(struct gw_loop *loop, int fd, uint32_t events, void *arg)
{
	struct gw_httpd *h = arg;

	for (int i = 0; i < ACCEPT_BATCH; i++) {
		int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		struct conn *c;

		if (cfd < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return;
			if (errno == EINTR || errno == ECONNABORTED || errno == EPERM ||
			    errno == EPROTO)
				continue;
			accept_pause(h, errno);
			return;
		}
		c = free_slot(h);
		if (!c) {
			h->stats.rejected++;
			close(cfd);
			continue;
		}
		conn_start(h, c, cfd);
	}
}

static int listen_on(struct gw_httpd *h, const union gw_sockaddr *sa)
{
	socklen_t len = sizeof(h->local);
	int one = 1;

	h->fd = socket(sa->sa.sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (h->fd < 0)
		return -errno;
	/* A restarted daemon rebinds while old connections sit in TIME_WAIT. */
	if (setsockopt(h->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    bind(h->fd, &sa->sa, gw_sockaddr_len(sa)) || listen(h->fd, LISTEN_BACKLOG) ||
	    getsockname(h->fd, &h->local.sa, &len))
		return -errno;
	return gw_loop_add_fd(h->loop, h->fd, EPOLLIN, on_accept, h);
}

int gw_httpd_open(struct gw_httpd **out, struct gw_loop *loop, const char *addr, gw_metrics_fn *fn,
		  void *arg)
{
	union gw_sockaddr sa;
	struct gw_httpd *h;
	int err;

	if (!addr || !fn || gw_endpoint_parse(&sa, addr))
		return -EINVAL;
	h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	h->loop = loop;
	h->fn = fn;
	h->arg = arg;
	h->rl = (struct gw_ratelimit)GW_RATELIMIT_INIT(10 * GW_NSEC_PER_SEC, 5);
	gw_timer_init(&h->accept_pause, accept_resume, h);
	for (size_t i = 0; i < GW_HTTPD_MAX_CONNS; i++) {
		struct conn *c = &h->conns[i];

		c->h = h;
		c->fd = -1;
		gw_timer_init(&c->timer, conn_timeout, c);
		gw_metrics_init(&c->m, 0);
	}
	err = listen_on(h, &sa);
	if (err) {
		if (h->fd >= 0)
			close(h->fd);
		free(h);
		return err;
	}
	*out = h;
	return 0;
}

void gw_httpd_close(struct gw_httpd *h)
{
	if (!h)
		return;
	for (size_t i = 0; i < GW_HTTPD_MAX_CONNS; i++)
		if (h->conns[i].state != CONN_FREE)
			conn_close(&h->conns[i]);
	gw_timer_cancel(h->loop, &h->accept_pause);
	gw_loop_del_fd(h->loop, h->fd);
	close(h->fd);
	free(h);
}

void gw_httpd_local_addr(const struct gw_httpd *h, union gw_sockaddr *out)
{
	*out = h->local;
}

uint16_t gw_httpd_port(const struct gw_httpd *h)
{
	if (h->local.sa.sa_family == AF_INET6)
		return ntohs(h->local.in6.sin6_port);
	return ntohs(h->local.in.sin_port);
}

void gw_httpd_stats(const struct gw_httpd *h, struct gw_httpd_stats *out)
{
	*out = h->stats;
}

/* PREFIX + suffix into buf (GW_METRIC_NAME_MAX + 1 bytes); the prefix was checked. */
static const char *metric_name(char *buf, const char *prefix, const char *suffix)
{
	snprintf(buf, GW_METRIC_NAME_MAX + 1, "%s%s", prefix, suffix);
	return buf;
}

int gw_httpd_write_metrics(const struct gw_httpd *h, struct gw_metrics *m, const char *prefix)
{
	static const char *const classes[] = {"client", "server", "timeout"};
	static const char longest[] = "_metrics_last_scrape_duration_seconds";
	const struct gw_httpd_stats *st = &h->stats;
	const uint64_t errors[] = {st->client_errors, st->server_errors, st->timeouts};
	char name[GW_METRIC_NAME_MAX + 1];

	if (!prefix || !gw_metrics_name_valid(prefix) ||
	    strlen(prefix) + sizeof(longest) - 1 > GW_METRIC_NAME_MAX)
		return -EINVAL;
	gw_metrics_one_u64(m, metric_name(name, prefix, "_metrics_scrapes_total"),
			   GW_METRIC_COUNTER, "Scrapes answered with 200 by the metrics server.",
			   st->scrapes);
	if (!gw_metrics_family(m, metric_name(name, prefix, "_metrics_errors_total"),
			       GW_METRIC_COUNTER,
			       "Metrics requests that failed, by class: client (4xx, 505), server "
			       "(500), timeout (closed before an answer)."))
		for (size_t i = 0; i < sizeof(classes) / sizeof(classes[0]); i++)
			gw_metrics_sample_u64(m, (struct gw_metric_label[]){{"class", classes[i]}},
					      1, errors[i]);
	gw_metrics_one_u64(
	    m, metric_name(name, prefix, "_metrics_connections_rejected_total"), GW_METRIC_COUNTER,
	    "Metrics connections closed at once because every slot was busy.", st->rejected);
	gw_metrics_one_u64(m, metric_name(name, prefix, "_metrics_connections"), GW_METRIC_GAUGE,
			   "Metrics connections open now.", st->active);
	gw_metrics_one_f64(m, metric_name(name, prefix, longest), GW_METRIC_GAUGE,
			   "Time the previous successful scrape took to write its text.",
			   (double)st->last_scrape_ns / 1e9);
	gw_metrics_one_u64(m, metric_name(name, prefix, "_metrics_last_scrape_bytes"),
			   GW_METRIC_GAUGE, "Size of the previous successful scrape's text.",
			   st->last_scrape_bytes);
	return 0;
}
