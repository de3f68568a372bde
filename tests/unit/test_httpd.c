// SPDX-License-Identifier: MIT
/*
 * The /metrics server, driven in-process: the server runs on a gw_loop with
 * a fake clock, clients are non-blocking sockets in the same thread, and the
 * test pumps the loop while it waits for them. Timeouts move the fake clock.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stddef.h>
#include <fcntl.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "gw/httpd.h"
#include "gw/metrics_endpoint.h"

enum src_mode {
	SRC_OK,
	SRC_FAIL,     /* the callback fails */
	SRC_BAD_NAME, /* the callback writes an invalid name and returns 0 */
	SRC_BIG,      /* many samples: a body far larger than socket buffers */
};

struct src {
	enum src_mode mode;
	unsigned calls;
	unsigned samples;	  /* SRC_BIG; 0: BIG_SAMPLES */
	struct gw_fake_clock *fc; /* when set, each call costs cost_ns of it */
	uint64_t cost_ns;
};

static const char body_ok[] = "# HELP test_requests_total Requests seen.\n"
			      "# TYPE test_requests_total counter\n"
			      "test_requests_total{code=\"200\"} 42\n"
			      "# HELP test_up Whether the test is up.\n"
			      "# TYPE test_up gauge\n"
			      "test_up 1\n";

enum { BIG_SAMPLES = 100000 };

static int src_write(void *arg, struct gw_metrics *m)
{
	struct src *s = arg;
	char v[32];

	s->calls++;
	if (s->fc)
		gw_fake_clock_advance(s->fc, s->cost_ns);
	switch (s->mode) {
	case SRC_OK:
		gw_metrics_family(m, "test_requests_total", GW_METRIC_COUNTER, "Requests seen.");
		gw_metrics_sample_u64(m, (struct gw_metric_label[]){{"code", "200"}}, 1, 42);
		gw_metrics_one_u64(m, "test_up", GW_METRIC_GAUGE, "Whether the test is up.", 1);
		return 0;
	case SRC_FAIL:
		gw_metrics_one_u64(m, "test_up", GW_METRIC_GAUGE, "Whether the test is up.", 1);
		return -EIO;
	case SRC_BAD_NAME:
		gw_metrics_one_u64(m, "test up", GW_METRIC_GAUGE, "Bad name.", 1);
		return 0;
	case SRC_BIG:
		gw_metrics_family(m, "test_big", GW_METRIC_GAUGE, "Many samples.");
		for (unsigned i = 0; i < (s->samples ? s->samples : BIG_SAMPLES); i++) {
			snprintf(v, sizeof(v), "%u", i);
			gw_metrics_sample_u64(m, (struct gw_metric_label[]){{"i", v}}, 1, i);
		}
		return 0;
	}
	return -EINVAL;
}

struct fx {
	struct gw_fake_clock fc;
	struct gw_loop *loop;
	struct gw_httpd *h;
	struct src src;
	uint16_t port;
};

static void fx_open(struct fx *f)
{
	memset(f, 0, sizeof(*f));
	gw_fake_clock_init(&f->fc, 1000 * GW_NSEC_PER_SEC, 1700000000);
	cr_assert_eq(gw_loop_new(&f->loop, &f->fc.clock), 0);
	cr_assert_eq(gw_httpd_open(&f->h, f->loop, "127.0.0.1:0", src_write, &f->src), 0);
	f->port = gw_httpd_port(f->h);
	cr_assert_neq(f->port, 0);
}

static void fx_close(struct fx *f)
{
	gw_httpd_close(f->h);
	gw_loop_free(f->loop);
}

static uint64_t real_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void pump(struct fx *f, int ms)
{
	cr_assert_eq(gw_loop_run_once(f->loop, ms), 0);
}

/* Pumps until a stats field reaches want; bounded in real time. */
static void pump_until(struct fx *f, size_t offset, const char *field, uint64_t want)
{
	uint64_t until = real_ms() + 5000;

	for (;;) {
		struct gw_httpd_stats st;
		uint64_t v;

		gw_httpd_stats(f->h, &st);
		memcpy(&v, (const char *)&st + offset, sizeof(v));
		if (v == want)
			return;
		cr_assert_lt(real_ms(), until, "stats.%s stuck at %llu, want %llu", field,
			     (unsigned long long)v, (unsigned long long)want);
		pump(f, 2);
	}
}

#define PUMP_UNTIL(f, field, want) \
	pump_until(f, offsetof(struct gw_httpd_stats, field), #field, want)

/*
 * Connects (the kernel completes it from the backlog) and makes the socket
 * non-blocking; rcvbuf > 0 sets SO_RCVBUF first.
 */
static int client_connect_rcvbuf(uint16_t port, int rcvbuf)
{
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(port)};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	cr_assert_geq(fd, 0);
	if (rcvbuf)
		cr_assert_eq(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf)), 0);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert_eq(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), 0, "connect: %s",
		     strerror(errno));
	cr_assert_eq(fcntl(fd, F_SETFL, O_NONBLOCK), 0);
	return fd;
}

static int client_connect(uint16_t port)
{
	return client_connect_rcvbuf(port, 0);
}

static void client_send(struct fx *f, int fd, const char *s, size_t n)
{
	uint64_t until = real_ms() + 5000;

	while (n) {
		ssize_t w = send(fd, s, n, MSG_NOSIGNAL);

		if (w < 0) {
			cr_assert(errno == EAGAIN || errno == EINTR, "send: %s", strerror(errno));
			cr_assert_lt(real_ms(), until, "send did not finish");
			pump(f, 1);
			continue;
		}
		s += w;
		n -= (size_t)w;
	}
}

/* Reads until EOF (or a reset, reported in *reset), pumping the loop; bounded in real time. */
static size_t client_read_all(struct fx *f, int fd, char *buf, size_t cap, bool *reset)
{
	uint64_t until = real_ms() + 10000;
	size_t len = 0;

	*reset = false;
	for (;;) {
		ssize_t n = recv(fd, buf + len, cap - len, 0);

		if (n == 0)
			break;
		if (n < 0 && errno == ECONNRESET) {
			*reset = true;
			break;
		}
		if (n > 0) {
			len += (size_t)n;
			cr_assert_lt(len, cap, "response larger than %zu", cap);
			continue;
		}
		cr_assert(errno == EAGAIN || errno == EINTR, "recv: %s", strerror(errno));
		cr_assert_lt(real_ms(), until, "no EOF from the server");
		pump(f, 2);
	}
	buf[len] = '\0';
	return len;
}

struct resp {
	int status;
	char head[1024];
	const char *body;
	size_t body_len;
	char raw[65536];
};

/* Splits raw into status, head and body; checks Content-Length and Connection. */
static void resp_parse(struct resp *r, size_t len)
{
	const char *end = strstr(r->raw, "\r\n\r\n");
	const char *cl;
	size_t hlen;

	cr_assert_not_null(end, "no end of headers in: %s", r->raw);
	hlen = (size_t)(end - r->raw) + 2;
	cr_assert_lt(hlen, sizeof(r->head));
	memcpy(r->head, r->raw, hlen);
	r->head[hlen] = '\0';
	cr_assert_eq(strncmp(r->head, "HTTP/1.1 ", 9), 0, "status line: %s", r->head);
	r->status = atoi(r->head + 9);
	r->body = end + 4;
	r->body_len = len - (size_t)(r->body - r->raw);
	cl = strstr(r->head, "\r\nContent-Length: ");
	cr_assert_not_null(cl);
	cr_assert_eq(strtoull(cl + 18, NULL, 10), r->body_len, "Content-Length vs body");
	cr_assert_not_null(strstr(r->head, "\r\nConnection: close\r\n"));
}

static void request(struct fx *f, const char *req, size_t n, struct resp *r)
{
	int fd = client_connect(f->port);
	bool reset;
	size_t len;

	client_send(f, fd, req, n);
	len = client_read_all(f, fd, r->raw, sizeof(r->raw), &reset);
	cr_assert_not(reset, "connection reset; got %zu bytes", len);
	close(fd);
	resp_parse(r, len);
}

static void request_str(struct fx *f, const char *req, struct resp *r)
{
	request(f, req, strlen(req), r);
}

Test(httpd, get_metrics)
{
	static const char *const reqs[] = {
	    "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/plain\r\n\r\n",
	    "GET /metrics HTTP/1.0\r\n\r\n",
	    "GET /metrics?x=1&y HTTP/1.1\r\nAccept-Encoding: gzip\r\n\r\n",
	};
	struct gw_httpd_stats st;
	struct resp r;
	struct fx f;

	fx_open(&f);
	for (size_t i = 0; i < sizeof(reqs) / sizeof(reqs[0]); i++) {
		request_str(&f, reqs[i], &r);
		cr_assert_eq(r.status, 200, "request %zu: %s", i, r.head);
		cr_assert_str_eq(r.head,
				 "HTTP/1.1 200 OK\r\n"
				 "Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
				 "Content-Length: 182\r\n"
				 "Connection: close\r\n");
		cr_assert_eq(r.body_len, strlen(body_ok));
		cr_assert_str_eq(r.body, body_ok);
	}
	cr_assert_eq(f.src.calls, 3);
	gw_httpd_stats(f.h, &st);
	cr_assert_eq(st.accepted, 3);
	cr_assert_eq(st.scrapes, 3);
	cr_assert_eq(st.client_errors + st.server_errors + st.timeouts + st.rejected, 0);
	PUMP_UNTIL(&f, active, 0);
	fx_close(&f);
}

Test(httpd, errors)
{
	static const struct {
		const char *req;
		int status;
		const char *head_has;
	} cases[] = {
	    {"GET / HTTP/1.1\r\n\r\n", 404, "404 Not Found"},
	    {"GET /metricsx HTTP/1.1\r\n\r\n", 404, NULL},
	    {"GET /metrics/ HTTP/1.1\r\n\r\n", 404, NULL},
	    {"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n", 405, "\r\nAllow: GET\r\n"},
	    {"HEAD /metrics HTTP/1.1\r\n\r\n", 405, "405 Method Not Allowed"},
	    {"get /metrics HTTP/1.1\r\n\r\n", 405, NULL},
	    {"GET /metrics HTTP/2.0\r\n\r\n", 505, "505 HTTP Version Not Supported"},
	    {"garbage\r\n\r\n", 400, "400 Bad Request"},
	    {"GET /metrics\r\n\r\n", 400, NULL},
	    {"GET  /metrics HTTP/1.1\r\n\r\n", 400, NULL},
	    {"GET /metrics HTTP/1.1\n\n", 400, NULL},
	    {"GET http://x/metrics HTTP/1.1\r\n\r\n", 400, NULL},
	    {"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 400, NULL}, /* TLS ClientHello */
	    {"\r\nGET /metrics HTTP/1.1\r\n\r\n", 400, NULL},
	};
	struct gw_httpd_stats st;
	struct resp r;
	struct fx f;

	fx_open(&f);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		request_str(&f, cases[i].req, &r);
		cr_assert_eq(r.status, cases[i].status, "case %zu: %s", i, r.head);
		cr_assert_not_null(strstr(r.head, "Content-Type: text/plain; charset=utf-8\r\n"));
		if (cases[i].head_has)
			cr_assert_not_null(strstr(r.head, cases[i].head_has), "case %zu: %s", i,
					   r.head);
		cr_assert_gt(r.body_len, 0);
	}
	cr_assert_eq(f.src.calls, 0, "an error response ran the metrics callback");
	gw_httpd_stats(f.h, &st);
	cr_assert_eq(st.client_errors, sizeof(cases) / sizeof(cases[0]));
	cr_assert_eq(st.scrapes, 0);
	fx_close(&f);
}

Test(httpd, callback_failure_is_500)
{
	static const enum src_mode modes[] = {SRC_FAIL, SRC_BAD_NAME};
	struct gw_httpd_stats st;
	struct resp r;
	struct fx f;

	fx_open(&f);
	for (size_t i = 0; i < 2; i++) {
		f.src.mode = modes[i];
		request_str(&f, "GET /metrics HTTP/1.1\r\n\r\n", &r);
		cr_assert_eq(r.status, 500, "mode %d: %s", modes[i], r.head);
		cr_assert_null(strstr(r.body, "test_up"), "partial data served");
	}
	gw_httpd_stats(f.h, &st);
	cr_assert_eq(st.server_errors, 2);
	/* and the server keeps serving */
	f.src.mode = SRC_OK;
	request_str(&f, "GET /metrics HTTP/1.1\r\n\r\n", &r);
	cr_assert_eq(r.status, 200);
	fx_close(&f);
}

/* The server's own figures, as a daemon exports them. */
Test(httpd, server_metrics)
{
	static const char want[] =
	    "# HELP test_metrics_scrapes_total Scrapes answered with 200 by the metrics server.\n"
	    "# TYPE test_metrics_scrapes_total counter\n"
	    "test_metrics_scrapes_total 2\n"
	    "# HELP test_metrics_errors_total Metrics requests that failed, by class: client "
	    "(4xx, 505), server (500), timeout (closed before an answer).\n"
	    "# TYPE test_metrics_errors_total counter\n"
	    "test_metrics_errors_total{class=\"client\"} 1\n"
	    "test_metrics_errors_total{class=\"server\"} 1\n"
	    "test_metrics_errors_total{class=\"timeout\"} 0\n"
	    "# HELP test_metrics_connections_rejected_total Metrics connections closed at once "
	    "because every slot was busy.\n"
	    "# TYPE test_metrics_connections_rejected_total counter\n"
	    "test_metrics_connections_rejected_total 0\n"
	    "# HELP test_metrics_connections Metrics connections open now.\n"
	    "# TYPE test_metrics_connections gauge\n"
	    "test_metrics_connections 0\n"
	    "# HELP test_metrics_last_scrape_duration_seconds Time the previous successful scrape "
	    "took to write its text.\n"
	    "# TYPE test_metrics_last_scrape_duration_seconds gauge\n"
	    "test_metrics_last_scrape_duration_seconds 0.25\n"
	    "# HELP test_metrics_last_scrape_bytes Size of the previous successful scrape's text.\n"
	    "# TYPE test_metrics_last_scrape_bytes gauge\n"
	    "test_metrics_last_scrape_bytes 182\n";
	static const char *const bad[] = {"", "bad prefix", "9lives",
					  ("a_prefix_long_enough_to_push_the_longest_name_past_the_"
					   "limit_of_one_hundred_and_twenty_eight")};
	struct gw_metrics m;
	struct resp r;
	struct fx f;
	size_t len;

	fx_open(&f);
	f.src.fc = &f.fc;
	f.src.cost_ns = 250 * GW_NSEC_PER_MSEC;
	request_str(&f, "GET /metrics HTTP/1.1\r\n\r\n", &r);
	cr_assert_eq(r.status, 200);
	request_str(&f, "GET / HTTP/1.1\r\n\r\n", &r);
	cr_assert_eq(r.status, 404);
	f.src.mode = SRC_FAIL;
	f.src.cost_ns = 3 * GW_NSEC_PER_SEC;
	request_str(&f, "GET /metrics HTTP/1.1\r\n\r\n", &r);
	cr_assert_eq(r.status, 500);
	f.src.mode = SRC_OK;
	f.src.cost_ns = 250 * GW_NSEC_PER_MSEC;
	request_str(&f, "GET /metrics HTTP/1.1\r\n\r\n", &r);
	cr_assert_eq(r.status, 200);
	PUMP_UNTIL(&f, active, 0);
	gw_metrics_init(&m, 0);
	gw_metrics_begin(&m);
	cr_assert_eq(gw_httpd_write_metrics(f.h, &m, "test"), 0);
	cr_assert_eq(gw_metrics_end(&m), 0);
	cr_assert_str_eq(gw_metrics_data(&m, &len), want);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		gw_metrics_begin(&m);
		cr_assert_eq(gw_httpd_write_metrics(f.h, &m, bad[i]), -EINVAL, "prefix '%s'",
			     bad[i]);
		cr_assert_eq(gw_metrics_end(&m), 0);
		cr_assert_str_eq(gw_metrics_data(&m, &len), "", "prefix '%s' wrote", bad[i]);
	}
	gw_metrics_free(&m);
	fx_close(&f);
}

/* The endpoint's context is a copy: the caller's may go out of scope. */
struct ep_ctx {
	struct src *src;
	unsigned tag;
};

static int ep_render(void *arg, struct gw_metrics *m)
{
	const struct ep_ctx *c = arg;

	cr_assert_eq(c->tag, 0x5eed);
	return src_write(c->src, m);
}

/* A metrics endpoint: the caller's families, then the server's own under the prefix. */
Test(httpd, metrics_endpoint)
{
	static const char *const bad[] = {"", "bad prefix", "9lives",
					  "a_prefix_longer_than_thirty_two_bytes"};
	static const char self[] = "# HELP ep_metrics_scrapes_total Scrapes answered with 200 by "
				   "the metrics server.\n# TYPE ep_metrics_scrapes_total counter\n"
				   "ep_metrics_scrapes_total 0\n";
	struct gw_metrics_endpoint *ep;
	struct resp r;
	struct fx f;

	fx_open(&f);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_assert_eq(gw_metrics_endpoint_open(&ep, f.loop, "127.0.0.1:0", bad[i], ep_render,
						      &(struct ep_ctx){&f.src, 0x5eed},
						      sizeof(struct ep_ctx)),
			     -EINVAL, "prefix '%s'", bad[i]);
	cr_assert_eq(gw_metrics_endpoint_open(&ep, f.loop, "127.0.0.1:0", "ep", NULL, NULL, 0),
		     -EINVAL);
	cr_assert_eq(gw_metrics_endpoint_open(&ep, f.loop, "127.0.0.1:x", "ep", ep_render, NULL, 0),
		     -EINVAL);
	{
		struct ep_ctx c = {&f.src, 0x5eed};

		cr_assert_eq(gw_metrics_endpoint_open(&ep, f.loop, "127.0.0.1:0", "ep", ep_render,
						      &c, sizeof(c)),
			     0);
		c.tag = 0;
	}
	f.port = gw_metrics_endpoint_port(ep);
	cr_assert_neq(f.port, 0);
	request_str(&f, "GET /metrics HTTP/1.1\r\n\r\n", &r);
	cr_assert_eq(r.status, 200, "%s", r.head);
	cr_assert_eq(strncmp(r.body, body_ok, strlen(body_ok)), 0, "%s", r.body);
	cr_assert_eq(strncmp(r.body + strlen(body_ok), self, strlen(self)), 0, "%s", r.body);
	cr_assert_not_null(strstr(r.body, "\nep_metrics_last_scrape_bytes 0\n"), "%s", r.body);
	f.src.mode = SRC_FAIL;
	request_str(&f, "GET /metrics HTTP/1.1\r\n\r\n", &r);
	cr_assert_eq(r.status, 500);
	cr_assert_eq(f.src.calls, 2);
	gw_metrics_endpoint_close(ep);
	gw_metrics_endpoint_close(NULL);
	fx_close(&f);
}

/* Headers beyond GW_HTTPD_REQ_MAX: 431, and the client still reads it (no reset). */
Test(httpd, oversized_request)
{
	size_t n = 3 * GW_HTTPD_REQ_MAX;
	char *req = malloc(n);
	struct resp r;
	struct fx f;

	fx_open(&f);
	memcpy(req, "GET /metrics HTTP/1.1\r\n", 23);
	for (size_t i = 23; i < n; i += 16)
		memcpy(req + i, "X-Pad: aaaaaaa\r\n", n - i < 16 ? n - i : 16);
	request(&f, req, n, &r);
	cr_assert_eq(r.status, 431, "%s", r.head);
	/* a request line alone longer than the buffer */
	memset(req, 'a', n);
	memcpy(req, "GET /", 5);
	request(&f, req, n, &r);
	cr_assert_eq(r.status, 431, "%s", r.head);
	cr_assert_eq(f.src.calls, 0);
	free(req);
	fx_close(&f);
}

/* A second request after the first is drained, not answered; the first answer arrives whole. */
Test(httpd, pipelined_extra_is_drained)
{
	struct resp r;
	struct fx f;

	fx_open(&f);
	request_str(&f, "GET /metrics HTTP/1.1\r\n\r\nGET /metrics HTTP/1.1\r\n\r\n", &r);
	cr_assert_eq(r.status, 200);
	cr_assert_str_eq(r.body, body_ok);
	cr_assert_eq(f.src.calls, 1);
	fx_close(&f);
}

/* A client that reads its answer but never closes is let go after GW_HTTPD_LINGER_NS. */
Test(httpd, linger_is_bounded)
{
	struct gw_httpd_stats st;
	struct resp r;
	bool reset;
	size_t len;
	struct fx f;
	int fd;

	fx_open(&f);
	fd = client_connect(f.port);
	client_send(&f, fd, "GET /metrics HTTP/1.1\r\n\r\n", 25);
	len = client_read_all(&f, fd, r.raw, sizeof(r.raw), &reset);
	cr_assert_not(reset);
	resp_parse(&r, len);
	cr_assert_eq(r.status, 200);
	gw_httpd_stats(f.h, &st);
	cr_assert_eq(st.active, 1, "the server should wait for the client's EOF");
	gw_fake_clock_advance(&f.fc, GW_HTTPD_LINGER_NS - 1);
	pump(&f, 0);
	gw_httpd_stats(f.h, &st);
	cr_assert_eq(st.active, 1);
	gw_fake_clock_advance(&f.fc, 1);
	pump(&f, 0);
	gw_httpd_stats(f.h, &st);
	cr_assert_eq(st.active, 0);
	cr_assert_eq(st.timeouts, 0, "a lingering close is not a timeout");
	close(fd);
	fx_close(&f);
}

/* A 3 MB body goes out through many EPOLLOUT rounds, byte for byte. */
Test(httpd, large_body)
{
	size_t cap = 8 << 20;
	char *buf = malloc(cap);
	struct gw_metrics want;
	const char *w, *body;
	size_t wlen, len;
	bool reset;
	int fd;
	struct fx f;

	fx_open(&f);
	f.src.mode = SRC_BIG;
	gw_metrics_init(&want, 0);
	gw_metrics_begin(&want);
	src_write(&f.src, &want);
	w = gw_metrics_data(&want, &wlen);
	cr_assert_gt(wlen, 1500000);
	fd = client_connect(f.port);
	client_send(&f, fd, "GET /metrics HTTP/1.1\r\n\r\n", 25);
	len = client_read_all(&f, fd, buf, cap, &reset);
	cr_assert_not(reset);
	close(fd);
	body = strstr(buf, "\r\n\r\n");
	cr_assert_not_null(body);
	body += 4;
	cr_assert_eq(len - (size_t)(body - buf), wlen);
	cr_assert_eq(memcmp(body, w, wlen), 0);
	gw_metrics_free(&want);
	free(buf);
	fx_close(&f);
}

static bool client_closed(int fd)
{
	char c;
	ssize_t n = recv(fd, &c, 1, 0);

	return n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR);
}

/* A client that never finishes its request is closed after GW_HTTPD_TIMEOUT_NS. */
Test(httpd, slow_client_timeout)
{
	struct gw_httpd_stats st;
	struct resp r;
	struct fx f;
	int fd;

	fx_open(&f);
	fd = client_connect(f.port);
	client_send(&f, fd, "GET /metr", 9);
	PUMP_UNTIL(&f, accepted, 1);
	for (int i = 0; i < 5; i++)
		pump(&f, 2);
	gw_fake_clock_advance(&f.fc, GW_HTTPD_TIMEOUT_NS - 1);
	pump(&f, 0);
	cr_assert_not(client_closed(fd), "closed before the timeout");
	gw_fake_clock_advance(&f.fc, 1);
	pump(&f, 0);
	cr_assert(client_closed(fd), "still open after the timeout");
	gw_httpd_stats(f.h, &st);
	cr_assert_eq(st.timeouts, 1);
	close(fd);
	request_str(&f, "GET /metrics HTTP/1.1\r\n\r\n", &r);
	cr_assert_eq(r.status, 200);
	fx_close(&f);
}

/*
 * A client that stops reading a large response is closed once writing makes
 * no progress. The body (about 10 MB) exceeds what the server's send buffer
 * (tcp_wmem max 4 MB by default) and the client's small receive buffer hold.
 */
Test(httpd, stalled_reader_timeout)
{
	struct gw_httpd_stats st;
	struct fx f;
	int fd;

	fx_open(&f);
	f.src.mode = SRC_BIG;
	f.src.samples = 400000;
	fd = client_connect_rcvbuf(f.port, 4096);
	client_send(&f, fd, "GET /metrics HTTP/1.1\r\n\r\n", 25);
	PUMP_UNTIL(&f, scrapes, 1);
	for (int i = 0; i < 20; i++)
		pump(&f, 2);
	gw_fake_clock_advance(&f.fc, GW_HTTPD_TIMEOUT_NS - 1);
	pump(&f, 0);
	gw_httpd_stats(f.h, &st);
	cr_assert_eq(st.timeouts, 0, "timed out early");
	gw_fake_clock_advance(&f.fc, 1);
	pump(&f, 0);
	gw_httpd_stats(f.h, &st);
	cr_assert_eq(st.timeouts, 1);
	close(fd);
	fx_close(&f);
}

/* Clients that vanish at any point free their slot. */
Test(httpd, client_goes_away)
{
	struct gw_httpd_stats st;
	struct resp r;
	struct fx f;

	fx_open(&f);
	for (int round = 0; round < 2 * GW_HTTPD_MAX_CONNS; round++) {
		int fd = client_connect(f.port);

		if (round % 2)
			client_send(&f, fd, "GET /metrics HTTP/1.1\r\n", 23);
		PUMP_UNTIL(&f, accepted, (uint64_t)round + 1);
		close(fd);
		PUMP_UNTIL(&f, active, 0);
	}
	/* one that sends a request and resets before reading the answer */
	{
		struct linger lg = {.l_onoff = 1, .l_linger = 0};
		int fd = client_connect(f.port);

		f.src.mode = SRC_BIG;
		client_send(&f, fd, "GET /metrics HTTP/1.1\r\n\r\n", 25);
		PUMP_UNTIL(&f, scrapes, 1);
		cr_assert_eq(setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)), 0);
		close(fd);
		PUMP_UNTIL(&f, active, 0);
		f.src.mode = SRC_OK;
	}
	gw_httpd_stats(f.h, &st);
	cr_assert_eq(st.rejected, 0);
	for (int i = 0; i < GW_HTTPD_MAX_CONNS + 2; i++) {
		request_str(&f, "GET /metrics HTTP/1.1\r\n\r\n", &r);
		cr_assert_eq(r.status, 200);
	}
	gw_httpd_stats(f.h, &st);
	cr_assert_eq(st.rejected, 0);
	fx_close(&f);
}

/* Beyond GW_HTTPD_MAX_CONNS, connections are closed at once; held ones still work. */
Test(httpd, connection_limit)
{
	int fds[GW_HTTPD_MAX_CONNS], extra[3];
	struct gw_httpd_stats st;
	struct resp r;
	struct fx f;

	fx_open(&f);
	for (int i = 0; i < GW_HTTPD_MAX_CONNS; i++)
		fds[i] = client_connect(f.port);
	PUMP_UNTIL(&f, accepted, GW_HTTPD_MAX_CONNS);
	for (int i = 0; i < 3; i++)
		extra[i] = client_connect(f.port);
	PUMP_UNTIL(&f, rejected, 3);
	gw_httpd_stats(f.h, &st);
	cr_assert_eq(st.active, GW_HTTPD_MAX_CONNS);
	cr_assert_eq(st.accepted, GW_HTTPD_MAX_CONNS);
	cr_assert_eq(st.rejected, 3);
	for (int i = 0; i < 3; i++) {
		cr_assert(client_closed(extra[i]), "extra connection %d still open", i);
		close(extra[i]);
	}
	for (int i = 0; i < GW_HTTPD_MAX_CONNS; i++) {
		bool reset;
		size_t len;

		client_send(&f, fds[i], "GET /metrics HTTP/1.1\r\n\r\n", 25);
		len = client_read_all(&f, fds[i], r.raw, sizeof(r.raw), &reset);
		cr_assert_not(reset);
		resp_parse(&r, len);
		cr_assert_eq(r.status, 200, "held connection %d", i);
		close(fds[i]);
	}
	/* the slots are free again */
	request_str(&f, "GET /metrics HTTP/1.1\r\n\r\n", &r);
	cr_assert_eq(r.status, 200);
	gw_httpd_stats(f.h, &st);
	cr_assert_eq(st.rejected, 3);
	cr_assert_eq(st.scrapes, GW_HTTPD_MAX_CONNS + 1);
	fx_close(&f);
}

/*
 * Out of descriptors, accept() fails with EMFILE while the listener stays
 * readable: the server stops watching it for a moment instead of spinning,
 * and serves the waiting client once descriptors are back.
 */
Test(httpd, accept_pauses_without_descriptors)
{
	struct rlimit old, low;
	struct gw_httpd_stats st;
	struct resp r;
	bool reset;
	size_t len;
	struct fx f;
	int fd, next;

	fx_open(&f);
	fd = client_connect(f.port);
	client_send(&f, fd, "GET /metrics HTTP/1.1\r\n\r\n", 25);
	next = dup(0);
	cr_assert_geq(next, 0);
	close(next);
	cr_assert_eq(getrlimit(RLIMIT_NOFILE, &old), 0);
	low = old;
	low.rlim_cur = (rlim_t)next; /* no new descriptor fits */
	cr_assert_eq(setrlimit(RLIMIT_NOFILE, &low), 0);
	for (int i = 0; i < 5; i++)
		pump(&f, 2);
	cr_assert_eq(setrlimit(RLIMIT_NOFILE, &old), 0);
	for (int i = 0; i < 5; i++)
		pump(&f, 2);
	gw_httpd_stats(f.h, &st);
	cr_assert_eq(st.accepted, 0, "the listener was not paused");
	gw_fake_clock_advance(&f.fc, 100 * GW_NSEC_PER_MSEC);
	len = client_read_all(&f, fd, r.raw, sizeof(r.raw), &reset);
	cr_assert_not(reset);
	resp_parse(&r, len);
	cr_assert_eq(r.status, 200);
	close(fd);
	fx_close(&f);
}

/* Closing with connections in every state frees everything (ASan checks). */
Test(httpd, close_with_open_connections)
{
	int fds[3];
	struct fx f;

	fx_open(&f);
	f.src.mode = SRC_BIG;
	fds[0] = client_connect(f.port); /* reading */
	fds[1] = client_connect(f.port); /* writing a big body nobody reads */
	client_send(&f, fds[1], "GET /metrics HTTP/1.1\r\n\r\n", 25);
	fds[2] = client_connect(f.port);
	PUMP_UNTIL(&f, accepted, 3);
	PUMP_UNTIL(&f, scrapes, 1);
	fx_close(&f);
	for (int i = 0; i < 3; i++)
		close(fds[i]);
}

Test(httpd, open_addresses)
{
	static const char *const bad[] = {"",	   "127.0.0.1", "localhost:9586", "127.0.0.1:65536",
					  "[::1]", "1.2.3.4:x"};
	struct gw_loop *loop;
	struct gw_httpd *h, *h2;
	union gw_sockaddr sa;
	char addr[GW_ENDPOINT_STR_LEN], again[GW_ENDPOINT_STR_LEN];
	int err;

	cr_assert_eq(gw_loop_new(&loop, NULL), 0);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_assert_eq(gw_httpd_open(&h, loop, bad[i], src_write, NULL), -EINVAL, "%s",
			     bad[i]);
	cr_assert_eq(gw_httpd_open(&h, loop, NULL, src_write, NULL), -EINVAL);
	cr_assert_eq(gw_httpd_open(&h, loop, "127.0.0.1:0", NULL, NULL), -EINVAL);
	/* 192.0.2.1 (TEST-NET-1) is not a local address */
	cr_assert_eq(gw_httpd_open(&h, loop, "192.0.2.1:0", src_write, NULL), -EADDRNOTAVAIL);

	cr_assert_eq(gw_httpd_open(&h, loop, "127.0.0.1:0", src_write, NULL), 0);
	gw_httpd_local_addr(h, &sa);
	cr_assert_eq(sa.sa.sa_family, AF_INET);
	cr_assert_eq(ntohl(sa.in.sin_addr.s_addr), INADDR_LOOPBACK);
	cr_assert_eq(ntohs(sa.in.sin_port), gw_httpd_port(h));
	/* the same port twice: the second bind fails */
	gw_endpoint_format(&sa, addr, sizeof(addr));
	cr_assert_eq(gw_httpd_open(&h2, loop, addr, src_write, NULL), -EADDRINUSE);
	gw_httpd_close(h);
	/* and once closed it can be bound again */
	cr_assert_eq(gw_httpd_open(&h, loop, addr, src_write, NULL), 0);
	gw_httpd_local_addr(h, &sa);
	gw_endpoint_format(&sa, again, sizeof(again));
	cr_assert_str_eq(again, addr);
	gw_httpd_close(h);

	err = gw_httpd_open(&h, loop, "[::1]:0", src_write, NULL);
	if (err == -EADDRNOTAVAIL || err == -EAFNOSUPPORT) {
		cr_log_warn("no IPv6 loopback here: skipping [::1]");
	} else {
		cr_assert_eq(err, 0);
		gw_httpd_local_addr(h, &sa);
		cr_assert_eq(sa.sa.sa_family, AF_INET6);
		cr_assert_neq(gw_httpd_port(h), 0);
		gw_httpd_close(h);
	}
	gw_httpd_close(NULL);
	gw_loop_free(loop);
}

/* ---- the parser alone ---- */

static const struct {
	const char *req;
	int status;
} parse_cases[] = {
    {"", 0},
    {"G", 0},
    {"GET", 0},
    {"GET ", 0},
    {"GET /metrics", 0},
    {"GET /metrics HTTP/1.", 0},
    {"GET /metrics HTTP/1.1\r", 0},
    {"GET /metrics HTTP/1.1\r\n", 0},
    {"GET /metrics HTTP/1.1\r\nHost: x\r\n", 0},
    {"GET /metrics HTTP/1.1\r\n\r\n", 200},
    {"GET /metrics HTTP/1.0\r\n\r\n", 200},
    {"GET /metrics HTTP/1.1\r\nHost: x\r\nUser-Agent: Prometheus/2.42\r\n\r\n", 200},
    {"GET /metrics? HTTP/1.1\r\n\r\n", 200},
    {"GET /metrics?a=b&c=/d HTTP/1.1\r\n\r\n", 200},
    {"GET /metrics HTTP/1.1\r\n\r\ntrailing bytes", 200},
    /* bad request lines, decided without waiting for headers */
    {" ", 400},
    {"GET\r\n", 400},
    {"GET\t/metrics", 400},
    {"GET  ", 400},
    {"GET x", 400},
    {"GET *", 400},
    {"GET /metrics\r", 400},
    {"GET /metrics HTTP/1.1 ", 400},
    {"GET /metrics HTTP/1.1\n", 400},
    {"GET /metrics HTTP/1.1\r\r", 400},
    {"GET /metrics http/1.1", 400},
    {"GET /metrics HTTP/11", 400},
    {"GET /metrics HTTP/a.1", 400},
    {"GET /me\x7ftrics HTTP/1.1\r\n\r\n", 400},
    {"GET /m\xc3\xa9trics HTTP/1.1\r\n\r\n", 400},
    {"\r\n", 400},
    {"\x16\x03\x01", 400},
    {"ABCDEFGHIJKLMNOP", 0},
    {"ABCDEFGHIJKLMNOPQ", 400}, /* method longer than GW_HTTPD_METHOD_MAX */
    {"ABCDEFGHIJKLMNOP /metrics HTTP/1.1\r\n", 405},
    /* versions */
    {"GET /metrics HTTP/2.0\r\n", 505},
    {"GET /metrics HTTP/0.9\r\n", 505},
    {"GET /metrics HTTP/1.2\r\n", 505},
    {"GET /metrics HTTP/9.9\r\n", 505},
    {"POST /x HTTP/2.0\r\n", 505},
    /* targets */
    {"GET / HTTP/1.1\r\n", 404},
    {"GET /metric HTTP/1.1\r\n", 404},
    {"GET /metricsx HTTP/1.1\r\n", 404},
    {"GET /METRICS HTTP/1.1\r\n", 404},
    {"GET /metrics/ HTTP/1.1\r\n", 404},
    {"GET //metrics HTTP/1.1\r\n", 404},
    {"GET /metrics#x HTTP/1.1\r\n", 404},
    {"POST /x HTTP/1.1\r\n", 404},
    /* methods */
    {"POST /metrics HTTP/1.1\r\n", 405},
    {"HEAD /metrics HTTP/1.1\r\n", 405},
    {"get /metrics HTTP/1.1\r\n", 405},
    {"GETS /metrics HTTP/1.1\r\n", 405},
    {"OPTIONS /metrics HTTP/1.1\r\n", 405},
};

Test(httpd, parse_table)
{
	for (size_t i = 0; i < sizeof(parse_cases) / sizeof(parse_cases[0]); i++) {
		const char *s = parse_cases[i].req;
		size_t n = strlen(s);

		cr_assert_eq(gw_httpd_parse_request(s, n), parse_cases[i].status,
			     "case %zu \"%s\": got %d, want %d", i, s, gw_httpd_parse_request(s, n),
			     parse_cases[i].status);
	}
	/* bytes after a NUL still count: the parser goes by length, not by string */
	{
		static const char nul[] = "GET /metrics\0 HTTP/1.1\r\n\r\n";
		static const char nul_hdr[] = "GET /metrics HTTP/1.1\r\nX: \0\r\n\r\n";

		cr_assert_eq(gw_httpd_parse_request(nul, sizeof(nul) - 1), 400);
		cr_assert_eq(gw_httpd_parse_request(nul_hdr, sizeof(nul_hdr) - 1), 200);
		cr_assert_eq(gw_httpd_parse_request(nul_hdr, 26), 0);
	}
}

/* A decision, once made on a prefix, holds for every longer prefix. */
Test(httpd, parse_decisions_are_final)
{
	for (size_t i = 0; i < sizeof(parse_cases) / sizeof(parse_cases[0]); i++) {
		const char *s = parse_cases[i].req;
		size_t n = strlen(s);
		int first = 0;

		for (size_t k = 0; k <= n; k++) {
			int st = gw_httpd_parse_request(s, k);

			if (first)
				cr_assert_eq(st, first, "case %zu: prefix %zu gives %d after %d", i,
					     k, st, first);
			else
				first = st;
		}
		cr_assert_eq(first, parse_cases[i].status, "case %zu", i);
	}
}
