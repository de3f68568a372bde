/* SPDX-License-Identifier: MIT */
/*
 * The configuration socket (wireguard.com/xplatform): a unix stream socket
 * served from the device's event loop, and the get/set/stats operations on
 * a device, which tests call directly.
 *
 * Requests on one connection are answered in order; a connection whose
 * stream is out of step (a line that is no operation) is closed without an
 * answer, as wireguard-go does. Memory per connection is bounded: input is
 * read in small chunks, a set body is limited to GWD_UAPI_SET_MAX, and no
 * input is read while an answer is still being written.
 *
 * Besides get=1 and set=1, "stats=1" followed by a blank line answers
 * "peers=N", "under_load=0|1" and the device's counters (gwd_stat_names,
 * documented at enum gwd_stat and in docs/gwd.md), then per peer
 * "public_key=<hex>", "staged_packets=N" and its counters, then errno=0.
 * A cluster node (dev->cluster) adds its own lines after "under_load" and
 * after each "staged_packets" (docs/failover.md, "Observability"); a
 * standalone gwd answers exactly the keys above.
 */
#ifndef GWD_UAPI_H
#define GWD_UAPI_H

#include <stdbool.h>

#include "device.h"
#include "uapi_parse.h"

enum {
	/* Largest get or stats answer (100k peers take about 40 MiB). */
	GWD_UAPI_REPLY_MAX = 256 << 20,
	GWD_UAPI_MAX_CONNECTIONS = 64,
};

struct gwd_uapi_server;

/*
 * Appends the get=1 answer (without the errno line) to out: device keys,
 * then per peer public_key, preshared_key, protocol_version, endpoint,
 * last_handshake_time_sec/nsec, tx_bytes, rx_bytes,
 * persistent_keepalive_interval and its allowed_ip lines. 0 or -errno.
 */
int gwd_uapi_get(struct gwd_device *dev, struct gwd_uapi_buf *out);
/* Appends the stats=1 answer (without the errno line) to out. */
int gwd_uapi_stats(struct gwd_device *dev, struct gwd_uapi_buf *out);
/*
 * Applies a parsed set transaction (gwd_uapi_set_finish() returned 0). What
 * can fail is checked or allocated first (the new listen port is bound, every
 * new peer allocated), so on error nothing has changed. The one exception is
 * running out of memory while inserting allowed IPs, after which the
 * configuration is partly applied (reported as -ENOMEM). 0 or -errno.
 */
int gwd_uapi_apply(struct gwd_device *dev, const struct gwd_uapi_set *set);

/*
 * Listens on path (an existing stale socket file is replaced; the caller
 * checks that no live daemon answers there first) with mode 0600, serving
 * dev on dev->loop. 0 or -errno.
 */
int gwd_uapi_server_open(struct gwd_uapi_server **out, struct gwd_device *dev, const char *path);
/* Closes every connection and the listener, and unlinks the socket path. */
void gwd_uapi_server_close(struct gwd_uapi_server *srv);
/*
 * Whether something accepts connections on path: 1 yes, 0 no (absent or
 * stale), -errno on an unexpected error.
 */
int gwd_uapi_socket_alive(const char *path);

#endif
