/* SPDX-License-Identifier: MIT */
/*
 * A minimal HTTP/1.1 server for Prometheus scrapes: GET /metrics on a
 * gw_loop, one request per connection ("Connection: close").
 *
 * It never blocks the loop and bounds everything an unauthenticated client
 * can make it hold: at most GW_HTTPD_MAX_CONNS connections (more are closed
 * as soon as they are accepted), GW_HTTPD_REQ_MAX bytes of request, and
 * GW_HTTPD_TIMEOUT_NS to send the request, then again without progress while
 * the response is written. Connection slots are allocated when the server
 * opens; a request allocates only its response text, freed with the
 * connection.
 *
 * The request line is parsed strictly and headers are ignored. Each scrape
 * calls the gw_metrics_fn from the loop thread, with a fresh gw_metrics;
 * when it (or the writer) fails the answer is 500, never partial data.
 */
#ifndef GW_HTTPD_H
#define GW_HTTPD_H

#include <stddef.h>
#include <stdint.h>

#include "gw/addr.h"
#include "gw/clock.h"
#include "gw/loop.h"
#include "gw/metrics.h"

enum {
	GW_HTTPD_MAX_CONNS = 16,
	GW_HTTPD_REQ_MAX = 8192, /* request line and headers; beyond: 431 */
	GW_HTTPD_METHOD_MAX = 16,
};

#define GW_HTTPD_TIMEOUT_NS (5 * GW_NSEC_PER_SEC)
/* After the response, how long unread request bytes are drained before closing. */
#define GW_HTTPD_LINGER_NS (1 * GW_NSEC_PER_SEC)

struct gw_httpd;

/* Counts since gw_httpd_open(), and the connections open now. */
struct gw_httpd_stats {
	uint64_t active;	/* connections holding a slot now */
	uint64_t accepted;	/* connections given a slot */
	uint64_t rejected;	/* closed at once: every slot busy */
	uint64_t scrapes;	/* 200 responses */
	uint64_t client_errors; /* 4xx and 505 responses */
	uint64_t server_errors; /* 500: the metrics callback or writer failed */
	uint64_t timeouts;	/* closed by the timer before the response was sent */
	/* The latest 200: time the callback took to write the text, and its size. */
	uint64_t last_scrape_ns;
	uint64_t last_scrape_bytes;
};

/*
 * Listens on addr ("127.0.0.1:9586", "[::1]:9586", "0.0.0.0:9586"; port 0
 * picks a free one) and serves fn(arg, m) at /metrics until gw_httpd_close().
 * 0, -EINVAL for an unparsable address, or -errno from socket/bind/listen.
 */
int gw_httpd_open(struct gw_httpd **out, struct gw_loop *loop, const char *addr, gw_metrics_fn *fn,
		  void *arg);
/*
 * Closes the listener and every connection; frees everything. NULL is a
 * no-op. Not from within the server's own metrics callback.
 */
void gw_httpd_close(struct gw_httpd *h);
/* The bound address (with the port the kernel chose for port 0). */
void gw_httpd_local_addr(const struct gw_httpd *h, union gw_sockaddr *out);
uint16_t gw_httpd_port(const struct gw_httpd *h);
void gw_httpd_stats(const struct gw_httpd *h, struct gw_httpd_stats *out);
/*
 * Writes the server's own figures as metrics named PREFIX_metrics_... (PREFIX:
 * "gwd", "syncd"; docs/metrics.md): scrapes, error responses by class,
 * rejected connections and timeouts (counters), open connections and the
 * latest scrape's duration and size (gauges). A scrape sees the counts as
 * they were before it: it is counted once answered. 0, or -EINVAL for a
 * prefix that makes an invalid name (nothing written); the writer's errors
 * are kept in m as always (gw_metrics_end).
 */
int gw_httpd_write_metrics(const struct gw_httpd *h, struct gw_metrics *m, const char *prefix);

/*
 * Parses the start of a request: buf[0..len) as received so far. Returns 0
 * when more bytes are needed, else the HTTP status to answer:
 *   200 "GET /metrics HTTP/1.x" (a query string is ignored), once the
 *       headers end (an empty line);
 *   400 malformed request line: not "METHOD SP /TARGET SP HTTP/d.d CRLF",
 *       or a method longer than GW_HTTPD_METHOD_MAX;
 *   505 a version other than HTTP/1.0 and HTTP/1.1;
 *   404 a target other than /metrics;  405 a method other than GET.
 * Errors are decided as soon as the bytes so far prove them, without waiting
 * for the headers; a decision never changes when more bytes arrive.
 */
int gw_httpd_parse_request(const char *buf, size_t len);

#endif
