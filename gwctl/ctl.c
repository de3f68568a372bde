// SPDX-License-Identifier: MIT
/*
 * The control-socket client: finds the socket (-s, or [Cluster]
 * ControlSocket / Interface in cluster.conf), then one CtlRequest frame on a
 * ZeroMQ REQ socket and one CtlResponse frame back, with send and receive
 * timeouts and no linger. A REQ that timed out is never reused: every call
 * makes and closes its own.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <zmq.h>

#include "gw/crypto.h"
#include "gw/ini.h"
#include "gwctl.h"

/* A CtlResponse listing 100k peers is some 20 MiB. */
#define CTL_MAX_MESSAGE ((int64_t)256 << 20)

void gwctl_err(const char *fmt, ...)
{
	va_list ap;

	fputs("gwctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

int gwctl_fail(const char *what, const Gwcluster__CtlResponse *resp)
{
	int err = resp->error < 0 ? -resp->error : resp->error;

	if (resp->message && *resp->message)
		gwctl_err("%s: %s", what, resp->message);
	else
		gwctl_err("%s: %s", what, strerror(err ? err : EPROTO));
	return GWCTL_EXIT_FAILED;
}

struct conf_find {
	char socket[108];
	char ifname[16];
	int bad; /* -ENAMETOOLONG: a value too long */
};

static int conf_line(void *arg, const char *section, const char *key, const char *value,
		     const char **why)
{
	struct conf_find *c = arg;
	char *dst = NULL;
	size_t len = 0;

	if (!key || !section || strcasecmp(section, "Cluster"))
		return 0;
	if (!strcasecmp(key, "ControlSocket")) {
		dst = c->socket;
		len = sizeof(c->socket);
	} else if (!strcasecmp(key, "Interface")) {
		dst = c->ifname;
		len = sizeof(c->ifname);
	}
	if (!dst)
		return 0;
	if (strlen(value) >= len || !*value) {
		*why = "empty or too long";
		return -EINVAL;
	}
	strcpy(dst, value);
	return 0;
}

/* Fills g->socket from the config unless -s gave it. */
static int resolve_socket(struct gwctl *g)
{
	struct conf_find c;
	const char *path = g->config ? g->config : GWCTL_DEFAULT_CONFIG;
	struct gw_ini ini;

	if (g->socket)
		return 0;
	memset(&c, 0, sizeof(c));
	gw_ini_init(&ini, conf_line, &c);
	if (gw_ini_parse_file(&ini, path)) {
		if (ini.err.line)
			gwctl_err("%s:%u: %s", path, ini.err.line, ini.err.msg);
		else
			gwctl_err("%s: %s (give the control socket with -s SOCKET)", path,
				  ini.err.msg);
		return GWCTL_EXIT_USAGE;
	}
	if (c.socket[0])
		snprintf(g->socket_buf, sizeof(g->socket_buf), "%s", c.socket);
	else if (c.ifname[0])
		snprintf(g->socket_buf, sizeof(g->socket_buf), GWCTL_DEFAULT_CTL_DIR "/%s.ctl",
			 c.ifname);
	else {
		gwctl_err("%s: [Cluster] has neither ControlSocket nor Interface", path);
		return GWCTL_EXIT_USAGE;
	}
	g->socket = g->socket_buf;
	return 0;
}

/*
 * A plain connect() first: it tells a missing socket, a dead syncd
 * (ECONNREFUSED) and missing permissions apart at once, where ZeroMQ would
 * only retry in the background until the timeout.
 */
static int probe_socket(const char *path)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	int fd, rc = 0;

	if (strlen(path) >= sizeof(sun.sun_path)) {
		gwctl_err("%s: path too long for a unix socket", path);
		return GWCTL_EXIT_USAGE;
	}
	strcpy(sun.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof(sun)))
		rc = errno;
	if (fd >= 0)
		close(fd);
	if (!rc)
		return 0;
	if (rc == ENOENT)
		gwctl_err("cannot reach syncd: %s does not exist (is syncd running?)", path);
	else if (rc == ECONNREFUSED)
		gwctl_err("cannot reach syncd: %s refuses connections (syncd is not running)",
			  path);
	else if (rc == EACCES || rc == EPERM)
		gwctl_err("cannot reach syncd: %s: permission denied (the control socket is "
			  "root's)",
			  path);
	else
		gwctl_err("cannot reach syncd: %s: %s", path, strerror(rc));
	return GWCTL_EXIT_UNREACHABLE;
}

static int zmq_fail(const struct gwctl *g, const char *what)
{
	if (errno == EAGAIN)
		gwctl_err("cannot reach syncd: no answer on %s within %d ms", g->socket,
			  g->timeout_ms);
	else
		gwctl_err("cannot reach syncd: %s %s: %s", what, g->socket, zmq_strerror(errno));
	return GWCTL_EXIT_UNREACHABLE;
}

static void *open_req(const struct gwctl *g, void *ctx)
{
	int64_t maxmsg = CTL_MAX_MESSAGE;
	int zero = 0, one = 1;
	char ep[sizeof(g->socket_buf) + 8];
	void *s = zmq_socket(ctx, ZMQ_REQ);

	if (!s)
		return NULL;
	snprintf(ep, sizeof(ep), "ipc://%s", g->socket);
	if (zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof(zero)) ||
	    zmq_setsockopt(s, ZMQ_RCVTIMEO, &g->timeout_ms, sizeof(g->timeout_ms)) ||
	    zmq_setsockopt(s, ZMQ_SNDTIMEO, &g->timeout_ms, sizeof(g->timeout_ms)) ||
	    zmq_setsockopt(s, ZMQ_IMMEDIATE, &one, sizeof(one)) ||
	    zmq_setsockopt(s, ZMQ_MAXMSGSIZE, &maxmsg, sizeof(maxmsg)) || zmq_connect(s, ep)) {
		int e = errno;

		zmq_close(s);
		errno = e;
		return NULL;
	}
	return s;
}

/* Sends the packed request and receives one frame into *resp. */
static int roundtrip(const struct gwctl *g, void *s, const uint8_t *buf, size_t len,
		     Gwcluster__CtlResponse **resp)
{
	zmq_msg_t msg;
	int more = 0;
	size_t more_len = sizeof(more);

	if (zmq_send(s, buf, len, 0) < 0)
		return zmq_fail(g, "sending to");
	zmq_msg_init(&msg);
	if (zmq_msg_recv(&msg, s, 0) < 0) {
		zmq_msg_close(&msg);
		return zmq_fail(g, "receiving from");
	}
	zmq_getsockopt(s, ZMQ_RCVMORE, &more, &more_len);
	*resp = more
		    ? NULL
		    : gwcluster__ctl_response__unpack(NULL, zmq_msg_size(&msg), zmq_msg_data(&msg));
	zmq_msg_close(&msg);
	if (!*resp) {
		gwctl_err("syncd sent an answer that is not a CtlResponse");
		return GWCTL_EXIT_FAILED;
	}
	return 0;
}

int gwctl_call(struct gwctl *g, Gwcluster__CtlRequest *req, Gwcluster__CtlResponse **resp)
{
	size_t len;
	uint8_t *buf;
	void *ctx, *s;
	int rc;

	*resp = NULL;
	rc = resolve_socket(g);
	if (!rc)
		rc = probe_socket(g->socket);
	if (rc)
		return rc;
	req->version = GWCTL_PROTO_VERSION;
	len = gwcluster__ctl_request__get_packed_size(req);
	buf = malloc(len ? len : 1);
	ctx = zmq_ctx_new();
	if (!buf || !ctx) {
		free(buf);
		if (ctx)
			zmq_ctx_term(ctx);
		gwctl_err("out of memory");
		return GWCTL_EXIT_FAILED;
	}
	gwcluster__ctl_request__pack(req, buf);
	s = open_req(g, ctx);
	rc = s ? roundtrip(g, s, buf, len, resp) : zmq_fail(g, "connecting to");
	gw_wipe(buf, len); /* it may carry a preshared key */
	free(buf);
	if (s)
		zmq_close(s);
	zmq_ctx_term(ctx);
	return rc;
}
