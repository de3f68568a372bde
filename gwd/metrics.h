/* SPDX-License-Identifier: MIT */
/*
 * gwd's Prometheus metrics (docs/metrics.md): the /metrics server of
 * `gwd --metrics ADDR` and the text it serves, written on each scrape from
 * the device's own counters (the ones `stats=1` prints) and state. Nothing
 * is counted twice: this module only reads.
 *
 * By default every figure is an interface total or an aggregate over the
 * peers, one pass over them per scrape. With per_peer the five gwd_peer_*
 * families add one series per peer each (peer="<base64 public key>"): at
 * 100k peers that is half a million series and tens of MB of text per
 * scrape, written on the loop (docs/metrics.md, Cost).
 *
 * Single-threaded, on the device's loop.
 */
#ifndef GWD_METRICS_H
#define GWD_METRICS_H

#include <stdbool.h>
#include <stdint.h>

#include "device.h"
#include "gw/metrics.h"
#include "gw/metrics_endpoint.h"

struct gwd_metrics_options {
	bool per_peer;	     /* the gwd_peer_* families */
	double start_time_s; /* Unix time the daemon started; 0: not exported */
};

/*
 * Writes the device's families into m (not the server's own: see
 * gwd_metrics_open). 0 or -errno; the writer's errors are kept in m.
 */
int gwd_metrics_write(struct gwd_device *dev, const struct gwd_metrics_options *opt,
		      struct gw_metrics *m);

/*
 * The label value under which counter s is exported, and its family's name
 * (exposed for the unit tests, which check every counter is exported once).
 */
void gwd_metrics_stat_name(enum gwd_stat s, const char **family, const char **label,
			   const char **value);

/*
 * Serves dev's metrics and the server's own gwd_metrics_* families at
 * http://addr/metrics (gw_metrics_endpoint_open: "IP:PORT", "[IPv6]:PORT")
 * until gw_metrics_endpoint_close(). 0, -EINVAL for an unparsable addr, or
 * -errno from the listener (-EADDRINUSE: the port is taken).
 */
int gwd_metrics_open(struct gw_metrics_endpoint **out, struct gwd_device *dev, const char *addr,
		     const struct gwd_metrics_options *opt);

#endif
