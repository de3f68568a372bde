/* SPDX-License-Identifier: MIT */
/*
 * A daemon's /metrics endpoint: a gw_httpd serving the daemon's own families
 * (written by its gw_metrics_fn) followed by the server's figures under the
 * daemon's prefix (gw_httpd_write_metrics: PREFIX_metrics_...).
 *
 * The endpoint keeps a copy of the caller's context (ctx_len bytes, e.g. the
 * device pointer and the scrape options) and hands that copy to fn on every
 * scrape, so a daemon needs no server struct of its own. Single-threaded, on
 * the loop it was opened on.
 */
#ifndef GW_METRICS_ENDPOINT_H
#define GW_METRICS_ENDPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "gw/httpd.h"

struct gw_metrics_endpoint;

/*
 * Serves fn(copy of ctx, m) and then the server's own figures named
 * PREFIX_metrics_... at http://addr/metrics (gw_httpd_open: "IP:PORT",
 * "[IPv6]:PORT"; port 0 picks a free one) until gw_metrics_endpoint_close().
 * 0, -EINVAL for an unparsable addr, a NULL fn, or a prefix that is not a
 * valid metric name or longer than 32 bytes, -ENOMEM, or -errno from the listener (-EADDRINUSE: the
 * port is taken).
 */
int gw_metrics_endpoint_open(struct gw_metrics_endpoint **out, struct gw_loop *loop,
			     const char *addr, const char *prefix, gw_metrics_fn *fn,
			     const void *ctx, size_t ctx_len);
/* NULL is a no-op. Not from within the endpoint's own metrics callback. */
void gw_metrics_endpoint_close(struct gw_metrics_endpoint *ep);
/* The bound port (the one the kernel chose for port 0). */
uint16_t gw_metrics_endpoint_port(const struct gw_metrics_endpoint *ep);

#endif
