/* SPDX-License-Identifier: MIT */
/*
 * syncd's Prometheus metrics (docs/metrics.md): the /metrics server of
 * `syncd --metrics ADDR` (or `Metrics =` in cluster.conf) and its text,
 * written on each scrape from the counters the replica, transport, relay
 * and store keep already (the same ones `gwctl status` shows). Nothing is
 * counted twice; what no module counted yet (applying to gwd, how long an
 * origin has been behind) is counted here, fed by syncd's main loop.
 *
 * Single-threaded, on syncd's loop.
 */
#ifndef SYNCD_METRICS_H
#define SYNCD_METRICS_H

#include <stdbool.h>
#include <stdint.h>

#include "apply.h"
#include "config.h"
#include "gw/loop.h"
#include "gw/metrics.h"
#include "gw/metrics_endpoint.h"
#include "relay.h"
#include "replica.h"
#include "store.h"
#include "transport.h"

/*
 * How long each origin has been behind: the replica knows how far behind
 * (known - applied), this remembers since when. Observed every heartbeat, so
 * the time is exact to a heartbeat interval.
 */
struct syncd_lag_clock {
	bool started;
	uint64_t caught_up_ns[256]; /* by node id: last time applied >= known */
};

void syncd_lag_observe(struct syncd_lag_clock *lc, const struct syncd_replica *r, uint64_t now_ns);
/* Seconds origin has been behind (0 when caught up or never observed). */
double syncd_lag_seconds(const struct syncd_lag_clock *lc, const struct syncd_member_info *mi,
			 uint64_t now_ns);

/*
 * The store's record count: counting is a scan of the records (tens of ms
 * at 100k), so it is redone only when records may have changed: the
 * replica's changed callback, or tombstones collected.
 */
struct syncd_records_count {
	bool valid;
	uint64_t gen; /* *record_changes + tombstones collected, when counted */
	uint64_t live, tombstones;
};

/*
 * What a scrape reads. The daemon owns all of it; pointers may be NULL
 * (not open yet, SessionSocket off) and the families they feed are then
 * left out.
 */
struct syncd_metrics_source {
	const struct syncd_config *cfg;
	struct syncd_store *store;
	struct syncd_replica *replica;
	struct syncd_transport *transport;
	struct syncd_relay *relay;
	const struct syncd_apply_stats *apply; /* apply.h */
	const bool *gwd_connected;	       /* the latest apply reached gwd */
	const struct syncd_lag_clock *lag;
	/* Bumped by the replica's changed callback; NULL: count the records on every scrape. */
	const uint64_t *record_changes;
	struct syncd_records_count *records_count; /* the cache; may be NULL likewise */
	double start_time_s;			   /* Unix time syncd started; 0: not exported */
	const struct gw_loop *loop;		   /* its turns; NULL: not exported */
};

/* Writes syncd's families into m (not the server's own). 0 or -errno; writer errors stay in m. */
int syncd_metrics_write(const struct syncd_metrics_source *src, uint64_t now_ns,
			struct gw_metrics *m);

/*
 * Serves the metrics of *src (read at each scrape, so the daemon may fill
 * it after this call; it must outlive the server) and the server's own
 * syncd_metrics_* families at http://addr/metrics until
 * gw_metrics_endpoint_close(). 0, -EINVAL for an unparsable addr, or -errno
 * from the listener (-EADDRINUSE: the port is taken).
 */
int syncd_metrics_open(struct gw_metrics_endpoint **out, struct gw_loop *loop, const char *addr,
		       const struct syncd_metrics_source *src);

#endif
