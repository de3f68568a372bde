/* SPDX-License-Identifier: MIT */
/*
 * The local session socket between gwd and its syncd (docs/failover.md).
 *
 * gwd binds a ZeroMQ ROUTER on ipc://PATH (the file is mode 0600; only root
 * on this host reaches it). syncd connects a DEALER. Each ZeroMQ message
 * (one frame as the DEALER sees it) is one protobuf LocalMessage
 * (proto/gwcluster.proto) with version 1; anything else is dropped and
 * counted. Sequence:
 *
 *   syncd -> gwd   hello                  subscribe (the latest hello wins)
 *   gwd -> syncd   gwd_hello              node id, incarnation, boot, mode
 *   gwd -> syncd   export_sessions * N    the snapshot: every peer's session
 *   gwd -> syncd   snapshot_done          number of peers in the snapshot
 *   gwd -> syncd   export_sessions ...    deltas from then on, as they happen
 *   syncd -> gwd   import_sessions        other nodes' exports, any time
 *   syncd -> gwd   role                   claim all / release all / claim /
 *                                         release / anycast mode on or off
 *   syncd -> gwd   dump                   the snapshot again (then snapshot_done)
 *   gwd -> any     result                 for every request that carried an id:
 *                                         the same id, error 0 or -errno
 *   gwd -> syncd   gwd_hello              again every GWD_SYNCSOCK_HEARTBEAT_MS
 *
 * A restarted gwd knows no subscriber and so sends nothing: syncd sends
 * hello again when it has heard nothing for a few heartbeats, and treats a
 * gwd_hello with a new boot as a new gwd (it holds no replicas: every other
 * node's sessions must be imported again).
 *
 * Any local DEALER may send import_sessions, role and dump (gwctl, tests);
 * exports go only to the subscriber. Exports are never lost silently while
 * a subscriber is connected: when its queue is full, gwd retries after
 * GWD_SESSION_RETRY_MS; a subscriber that went away is forgotten (its next
 * hello brings a new snapshot). Messages with keys are wiped from gwd's
 * memory once ZeroMQ has sent or gwd has read them.
 */
#ifndef GWD_SYNCSOCK_H
#define GWD_SYNCSOCK_H

#include <stddef.h>
#include <stdint.h>

struct gwd_device;
struct gwd_syncsock;

enum {
	GWD_SYNCSOCK_VERSION = 1,
	GWD_SYNCSOCK_MAX_MESSAGE = 64 << 20,
	GWD_SYNCSOCK_HWM = 100000, /* messages queued per direction */
	GWD_SYNCSOCK_POLL_MS = 50, /* safety drain: ZMQ_FD is edge-triggered */
	GWD_SYNCSOCK_HEARTBEAT_MS = 1000,
};

/*
 * Binds the socket (a stale file at path is replaced; the caller checked no
 * live gwd uses it) and serves dev on dev->loop. ifname is reported in
 * gwd_hello. 0 or -errno.
 */
int gwd_syncsock_open(struct gwd_syncsock **out, struct gwd_device *dev, const char *path,
		      const char *ifname);
/* Detaches the session sink, closes the socket and unlinks its file. NULL is ignored. */
void gwd_syncsock_close(struct gwd_syncsock *s);
/* Messages refused (did not unpack, wrong version, unexpected body). */
uint64_t gwd_syncsock_rejected(const struct gwd_syncsock *s);

#endif
