// SPDX-License-Identifier: MIT
/*
 * A gw_httpd plus the daemon's render callback and its context, allocated
 * together: the context copy follows the struct (max_align_t aligned).
 */
#include "gw/metrics_endpoint.h"

#include <errno.h>
#include <stdalign.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

enum { PREFIX_MAX = 32 };

struct gw_metrics_endpoint {
	struct gw_httpd *httpd;
	gw_metrics_fn *fn;
	char prefix[PREFIX_MAX + 1];
	alignas(max_align_t) unsigned char ctx[];
};

static int scrape(void *arg, struct gw_metrics *m)
{
	struct gw_metrics_endpoint *ep = arg;
	int err = ep->fn(ep->ctx, m);

	return err ? err : gw_httpd_write_metrics(ep->httpd, m, ep->prefix);
}

int gw_metrics_endpoint_open(struct gw_metrics_endpoint **out, struct gw_loop *loop,
			     const char *addr, const char *prefix, gw_metrics_fn *fn,
			     const void *ctx, size_t ctx_len)
{
	struct gw_metrics_endpoint *ep;
	int err;

	/* PREFIX_MAX keeps every server family name valid (gw_httpd_write_metrics). */
	if (!fn || !prefix || !gw_metrics_name_valid(prefix) || strlen(prefix) > PREFIX_MAX ||
	    (ctx_len && !ctx))
		return -EINVAL;
	ep = calloc(1, sizeof(*ep) + ctx_len);
	if (!ep)
		return -ENOMEM;
	ep->fn = fn;
	memcpy(ep->prefix, prefix, strlen(prefix) + 1);
	if (ctx_len)
		memcpy(ep->ctx, ctx, ctx_len);
	err = gw_httpd_open(&ep->httpd, loop, addr, scrape, ep);
	if (err) {
		free(ep);
		return err;
	}
	*out = ep;
	return 0;
}

void gw_metrics_endpoint_close(struct gw_metrics_endpoint *ep)
{
	if (!ep)
		return;
	gw_httpd_close(ep->httpd);
	free(ep);
}

uint16_t gw_metrics_endpoint_port(const struct gw_metrics_endpoint *ep)
{
	return gw_httpd_port(ep->httpd);
}
