/* SPDX-License-Identifier: MIT */
/*
 * Session export and import (docs/failover.md): the live state of each peer
 * as protobuf (proto/gwcluster.proto: SessionBatch, PeerSession, Keypair,
 * KeypairRx), out to a sink (the local syncd, through syncsock.h) and in from
 * other nodes.
 *
 * Export. Events queue a peer (gwd_session_mark): GWD_EXPORT_FULL (a new
 * keypair, a confirmation, a region or ownership claim, an endpoint change,
 * a handshake message) is exported at once, i.e. from the next run of the
 * loop's timers, so one burst of events makes one batch; GWD_EXPORT_RX
 * (receive progress) within GWD_SESSION_RX_INTERVAL_MS, batched across peers
 * as compact KeypairRx entries. A batch holds at most GWD_SESSION_BATCH_PEERS
 * PeerSessions and GWD_SESSION_BATCH_RX KeypairRx. Without a sink, queued
 * exports are dropped (a sink that connects asks for a snapshot anyway).
 * gwd_session_dump() queues every peer: the snapshot; sink->snapshot_done
 * is called once it has all been handed over.
 *
 * A PeerSession carries: public_key; greatest_tai64n_received,
 * last_initiation_age_ms, greatest_tai64n_sent (handshake anti-replay);
 * endpoint and local_address (where the peer's packets arrive); every live
 * keypair (local/remote index, both keys, age_ms, initiator, confirmed,
 * send_epoch: the region epoch this node holds or 0, greatest_epoch,
 * rx_high_water: one more than the greatest counter this node accepted or
 * knows accepted); owner and owner_epoch.
 *
 * Import (from another node's export, relayed by syncd): for each peer
 * configured here, antireplay is max-merged, ownership adopted when greater,
 * the endpoint taken when this node does not own the peer, and keypairs
 * installed as standby sessions under their original receiver index (never
 * sent with before a region claim, never at epoch 0), or merged into the
 * existing copy (greatest epoch max, receive floor max, confirmed or'ed).
 * Keypairs REJECT_AFTER_TIME old, tombstoned, or whose index is taken by
 * something else are skipped; a peer keeps at most three keypairs (newest
 * unconfirmed as next, newest confirmed as current, the next newest as
 * previous). Imports never queue exports (no echo loops).
 *
 * Secrets: batches point at keys in place; the sink packs them into memory
 * it wipes. Keys are never logged or written to disk.
 */
#ifndef GWD_SESSION_H
#define GWD_SESSION_H

#include <stdint.h>

#include "gw/loop.h"
#include "gwcluster.pb-c.h"

struct gwd_device;
struct gwd_peer;
struct gwd_session_scratch;

enum {
	GWD_SESSION_BATCH_PEERS = 256,
	GWD_SESSION_BATCH_RX = 4096,
	/* An age beyond this is refused as absurd (REJECT_AFTER_TIME is far below). */
	GWD_SESSION_MAX_AGE_MS = 3600 * 1000,
	/* Retry delay when the sink is busy. */
	GWD_SESSION_RETRY_MS = 10,
};

struct gwd_session_sink {
	/*
	 * Hands a batch over. The batch and everything it points at are valid
	 * during the call only. 0: taken; -EAGAIN: busy, nothing taken (the
	 * same peers are offered again after GWD_SESSION_RETRY_MS); any other
	 * -errno: the batch is dropped.
	 */
	int (*batch)(void *arg, const Gwcluster__SessionBatch *batch);
	/* The snapshot asked by gwd_session_dump() is complete (may be NULL). */
	void (*snapshot_done)(void *arg, uint64_t peers);
	void *arg;
};

/* Sets (or clears, NULL) the sink; it must stay valid until replaced. */
void gwd_session_set_sink(struct gwd_device *dev, const struct gwd_session_sink *sink);
/* Queues the peer for export (flags: GWD_EXPORT_*); a no-op on a standalone device. */
void gwd_session_mark(struct gwd_peer *peer, unsigned int flags);
/* Queues every peer for a full export: the snapshot. */
void gwd_session_dump(struct gwd_device *dev);
/* Exports everything queued now. 0, or -EAGAIN when the sink was busy. */
int gwd_session_flush(struct gwd_device *dev);
/* Unlinks a peer being removed from the export queue. */
void gwd_session_peer_removed(struct gwd_peer *peer);

/*
 * Applies a batch from another node. Malformed entries are skipped and
 * counted; the rest is applied. 0, or -EINVAL when dev is no cluster node.
 */
int gwd_session_import(struct gwd_device *dev, const Gwcluster__SessionBatch *batch);

/* Session scratch memory for building batches (cluster.c allocates it). */
int gwd_session_scratch_new(struct gwd_session_scratch **out);
void gwd_session_scratch_free(struct gwd_session_scratch *s);
/* The export timer's callback. */
void gwd_session_export_timer(struct gw_loop *loop, struct gw_timer *t, void *arg);

#endif
