/* SPDX-License-Identifier: MIT */
/*
 * The control socket: gwctl talks to the local syncd through a ZeroMQ REP
 * socket bound to ipc://PATH (cluster.conf's ControlSocket). Each request is
 * one frame holding a packed CtlRequest; each answer one frame holding a
 * packed CtlResponse (proto/gwcluster.proto). The socket file is mode 0600
 * in a directory of mode 0755: only root may talk to it; no Curve.
 *
 * Every request gets an answer, malformed ones included (error -EBADMSG).
 * A write (peer_upsert, peer_remove, apply) is answered 0 only once it is
 * committed to the local store, so an acknowledged change survives a crash
 * of syncd at any later moment; errors are -errno with a message:
 *   -EINVAL   a bad field (the message names it), or a duplicate in apply
 *   -ENOENT   peer_remove/peer_show of a peer that does not exist
 *   -EAGAIN   this node has not caught up with the cluster yet (retry), or
 *             (role master/claim) it is not ready for sessions yet
 *   -ENOTCONN (role) gwd is not subscribed; a role is remembered anyway
 *   -EPROTONOSUPPORT  an unknown CtlRequest.version
 *   -EBADMSG  the frame is not a CtlRequest (or has several frames)
 *   other     the store failed (nothing was committed)
 */
#ifndef SYNCD_CONTROL_H
#define SYNCD_CONTROL_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "gw/loop.h"
#include "gwcluster.pb-c.h"
#include "replica.h"

struct syncd_control_ctx {
	struct syncd_replica *replica;
	const struct syncd_config *cfg; /* cluster name and member addresses */
	/* Fills gwd_connected and rejected_messages of a status; may be NULL. */
	void (*status_extra)(void *arg, Gwcluster__ClusterStatus *st);
	void *arg;
	/*
	 * RoleRequest (relay.h: syncd_relay_role); NULL: refused with
	 * -EOPNOTSUPP. CLAIM and RELEASE of a peer the replica does not have
	 * are refused with -ENOENT before it is called. *summary must stay
	 * valid until the answer is packed.
	 */
	int (*role)(void *arg, const Gwcluster__RoleRequest *req,
		    const Gwcluster__SessionSummary **summary, char *msg, size_t msglen);
};

/*
 * One request, without any socket: req[0..len) as received, *resp a packed
 * CtlResponse to send (free() it). 0, or -ENOMEM when not even an error
 * answer could be built.
 */
int syncd_control_handle(const struct syncd_control_ctx *ctx, const uint8_t *req, size_t len,
			 uint8_t **resp, size_t *resp_len);

struct syncd_control;

/*
 * Creates the socket's directory (0755) if needed, removes a stale socket
 * file (one nobody listens on), binds and watches the socket in loop.
 * -EADDRINUSE when another process serves path, -EEXIST when path is
 * something else than a socket, other -errno. ctx is copied.
 */
int syncd_control_open(struct syncd_control **out, const char *path, struct gw_loop *loop,
		       const struct syncd_control_ctx *ctx);
/* Unbinds and removes the socket file. NULL is ignored. */
void syncd_control_close(struct syncd_control *c);

#endif
