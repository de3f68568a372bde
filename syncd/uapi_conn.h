/* SPDX-License-Identifier: MIT */
/*
 * A non-blocking connection to gwd's UAPI socket
 * (/var/run/wireguard/IFNAME.sock) on a gw_loop: one request at a time,
 * sent as the socket takes it, and the answer fed to the caller's parser a
 * bounded slice per readable event, so a long answer (get=1 or stats=1 at
 * 100k peers: tens of MB) never holds the loop.
 *
 * The connection is made by the first request and kept for the next ones.
 * An answer must make progress within timeout_ms (and, with deadline_ms,
 * be complete within that), else it fails with -ETIMEDOUT. Every failure
 * closes the connection; input while no request is outstanding (gwd closed,
 * restarted, or spoke out of turn) closes it too. Bytes read are wiped (a
 * get=1 answer carries private keys).
 */
#ifndef SYNCD_UAPI_CONN_H
#define SYNCD_UAPI_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gw/loop.h"

enum { SYNCD_UAPI_IFNAME_MAX = 15 };

struct syncd_uapi_ops {
	/* Parses n more bytes of the answer: <0 -errno, 0 more wanted, >0 the answer is complete.
	 */
	int (*feed)(void *arg, const char *buf, size_t n);
	/* The answer is complete. */
	void (*answered)(void *arg);
	/*
	 * The request failed: -ETIMEDOUT, -EPIPE (gwd closed the connection),
	 * -EPROTO or another from feed, or -errno from the socket.
	 */
	void (*failed)(void *arg, int rc);
	/* Optional: the connection was closed while idle; eof: gwd closed it. */
	void (*idle_closed)(void *arg, bool eof);
};

struct syncd_uapi_conn {
	struct gw_loop *loop;
	char ifname[SYNCD_UAPI_IFNAME_MAX + 1];
	const struct syncd_uapi_ops *ops;
	void *arg;
	unsigned timeout_ms, deadline_ms;
	int fd;
	bool busy;
	const char *req; /* the caller's, until answered or failed */
	size_t req_len, req_off;
	uint64_t start_ns;
	struct gw_timer timer;
};

/* A UAPI interface name: 1 to 15 bytes, no '/', not "." or "..". */
bool syncd_uapi_ifname_valid(const char *ifname);
/* -EINVAL for a bad ifname; timeout_ms must be > 0, deadline_ms 0 means none. */
int syncd_uapi_conn_init(struct syncd_uapi_conn *c, struct gw_loop *loop, const char *ifname,
			 unsigned timeout_ms, unsigned deadline_ms,
			 const struct syncd_uapi_ops *ops, void *arg);
/*
 * Starts a request (connecting first if need be); req stays the caller's
 * and must stay valid until ops->answered or ops->failed. 0, -EBUSY while
 * one is outstanding, or -errno (-ENOENT, -ECONNREFUSED: no gwd) with no
 * callback and the connection closed.
 */
int syncd_uapi_conn_request(struct syncd_uapi_conn *c, const char *req, size_t len);
/* Abandons the outstanding request, without a callback, and closes the connection. */
void syncd_uapi_conn_close(struct syncd_uapi_conn *c);
/* Since the request started; 0 when none is outstanding. */
uint64_t syncd_uapi_conn_elapsed_ns(const struct syncd_uapi_conn *c);

#endif
