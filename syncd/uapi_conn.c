// SPDX-License-Identifier: MIT
/* The non-blocking UAPI connection (uapi_conn.h). */
#include "uapi_conn.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "gw/crypto.h"

#define UAPI_DIR "/var/run/wireguard"

enum {
	RECV_CHUNK = 64 << 10,	/* bytes read per recv */
	RECV_SLICE = 256 << 10, /* bytes read and parsed per readable event */
};

static void on_io(struct gw_loop *loop, int fd, uint32_t events, void *arg);

bool syncd_uapi_ifname_valid(const char *ifname)
{
	size_t len = ifname ? strlen(ifname) : 0;

	return len && len <= SYNCD_UAPI_IFNAME_MAX && !strchr(ifname, '/') && strcmp(ifname, ".") &&
	       strcmp(ifname, "..");
}

static uint64_t now_ns(const struct syncd_uapi_conn *c)
{
	return gw_clock_mono_ns(gw_loop_clock(c->loop));
}

static void disconnect(struct syncd_uapi_conn *c)
{
	if (c->fd < 0)
		return;
	gw_loop_del_fd(c->loop, c->fd);
	close(c->fd);
	c->fd = -1;
}

void syncd_uapi_conn_close(struct syncd_uapi_conn *c)
{
	gw_timer_cancel(c->loop, &c->timer);
	c->busy = false;
	c->req = NULL;
	disconnect(c);
}

static void fail(struct syncd_uapi_conn *c, int rc)
{
	syncd_uapi_conn_close(c);
	c->ops->failed(c->arg, rc);
}

static void on_timeout(struct gw_loop *loop, struct gw_timer *t, void *arg)
{
	(void)loop;
	(void)t;
	fail(arg, -ETIMEDOUT);
}

/* Something went through: gwd is alive, give it timeout_ms more (within the deadline). */
static void progress(struct syncd_uapi_conn *c)
{
	uint64_t now = now_ns(c), at = now + (uint64_t)c->timeout_ms * GW_NSEC_PER_MSEC;

	if (c->deadline_ms) {
		uint64_t end = c->start_ns + (uint64_t)c->deadline_ms * GW_NSEC_PER_MSEC;

		if (end < at)
			at = end;
	}
	(void)gw_timer_arm_in(c->loop, &c->timer, at > now ? at - now : 0);
}

static int connect_uapi(struct syncd_uapi_conn *c)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	int fd, rc;

	snprintf(sun.sun_path, sizeof(sun.sun_path), UAPI_DIR "/%s.sock", c->ifname);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	/* A unix stream connect does not wait: it is made or refused (EAGAIN: backlog full). */
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun))) {
		rc = -errno;
		close(fd);
		return rc;
	}
	rc = gw_loop_add_fd(c->loop, fd, EPOLLIN, on_io, c);
	if (rc) {
		close(fd);
		return rc;
	}
	c->fd = fd;
	return 0;
}

/* Sends what the socket takes; 0 or -errno. */
static int send_some(struct syncd_uapi_conn *c)
{
	while (c->req_off < c->req_len) {
		ssize_t n = send(c->fd, c->req + c->req_off, c->req_len - c->req_off,
				 MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return gw_loop_mod_fd(c->loop, c->fd, EPOLLIN | EPOLLOUT);
		if (n < 0)
			return errno == ECONNRESET ? -EPIPE : -errno;
		c->req_off += (size_t)n;
		progress(c);
	}
	return gw_loop_mod_fd(c->loop, c->fd, EPOLLIN);
}

/* Reads and parses up to RECV_SLICE bytes: <0 -errno, 0 more wanted, >0 complete. */
static int recv_some(struct syncd_uapi_conn *c)
{
	char *buf = malloc(RECV_CHUNK);
	size_t total = 0;
	int rc = 0;

	if (!buf)
		return -ENOMEM;
	while (!rc && total < RECV_SLICE) {
		ssize_t n = recv(c->fd, buf, RECV_CHUNK, MSG_DONTWAIT);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (n < 0)
			rc = errno == ECONNRESET ? -EPIPE : -errno;
		else if (n == 0)
			rc = -EPIPE;
		else
			rc = c->ops->feed(c->arg, buf, (size_t)n);
		if (n > 0) {
			gw_wipe(buf, (size_t)n);
			total += (size_t)n;
			progress(c);
		}
	}
	free(buf);
	return rc;
}

/* Input while no request is outstanding: gwd closed (restarted?) or spoke out of turn. */
static void idle_input(struct syncd_uapi_conn *c)
{
	char ch;
	ssize_t n = recv(c->fd, &ch, 1, MSG_DONTWAIT);

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	disconnect(c);
	if (c->ops->idle_closed)
		c->ops->idle_closed(c->arg, n == 0);
}

static void on_io(struct gw_loop *loop, int fd, uint32_t events, void *arg)
{
	struct syncd_uapi_conn *c = arg;
	int rc = 0;

	(void)loop;
	(void)fd;
	if (!c->busy) {
		idle_input(c);
		return;
	}
	if (events & EPOLLOUT)
		rc = send_some(c);
	if (!rc && (events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
		rc = recv_some(c);
	if (rc < 0) {
		fail(c, rc);
	} else if (rc > 0) {
		gw_timer_cancel(c->loop, &c->timer);
		c->busy = false;
		c->req = NULL;
		c->ops->answered(c->arg);
	}
}

int syncd_uapi_conn_init(struct syncd_uapi_conn *c, struct gw_loop *loop, const char *ifname,
			 unsigned timeout_ms, unsigned deadline_ms,
			 const struct syncd_uapi_ops *ops, void *arg)
{
	if (!syncd_uapi_ifname_valid(ifname) || !timeout_ms || !ops || !ops->feed ||
	    !ops->answered || !ops->failed)
		return -EINVAL;
	memset(c, 0, sizeof(*c));
	c->loop = loop;
	memcpy(c->ifname, ifname, strlen(ifname) + 1);
	c->ops = ops;
	c->arg = arg;
	c->timeout_ms = timeout_ms;
	c->deadline_ms = deadline_ms;
	c->fd = -1;
	gw_timer_init(&c->timer, on_timeout, c);
	return 0;
}

int syncd_uapi_conn_request(struct syncd_uapi_conn *c, const char *req, size_t len)
{
	int rc = 0;

	if (c->busy)
		return -EBUSY;
	if (c->fd < 0)
		rc = connect_uapi(c);
	if (rc)
		return rc;
	c->busy = true;
	c->req = req;
	c->req_len = len;
	c->req_off = 0;
	c->start_ns = now_ns(c);
	progress(c);
	rc = send_some(c);
	if (rc)
		syncd_uapi_conn_close(c);
	return rc;
}

uint64_t syncd_uapi_conn_elapsed_ns(const struct syncd_uapi_conn *c)
{
	return c->busy ? now_ns(c) - c->start_ns : 0;
}
