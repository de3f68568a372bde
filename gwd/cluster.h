/* SPDX-License-Identifier: MIT */
/*
 * gwd as a cluster node (docs/failover.md): node identity and incarnation,
 * peer ownership, counter regions on keypairs, tombstones of dropped
 * keypairs, and paced rekeys after a takeover. Session export and import
 * are session.h; the local socket to syncd is syncsock.h.
 *
 * A device without a cluster (dev->cluster NULL, the standalone gwd, node
 * id 0) is plain WireGuard: every function here then does what plain
 * WireGuard does (may_send is true, counters come from
 * gwd_noise_keypair_next_counter, nothing is exported).
 *
 * The rules this module enforces (session-sync.md):
 * - Only the owner of a peer sends for it: data, keepalives, handshake
 *   initiations and responses, and a device that serves nobody sends no
 *   cookie replies either (gwd_cluster_may_send, gwd_cluster_serving).
 * - Ownership is (owner node id, ownership epoch); the greater (epoch,
 *   owner) wins everywhere; a claim takes (greatest known epoch + 1, self),
 *   a release (epoch + 1, nobody). A VRRP master claims every peer, takes
 *   back any peer an import leaves to nobody, and, like an anycast node,
 *   claims a peer whose packets reach it (once per holdoff).
 * - A keypair is sent with only inside a counter region this process holds
 *   (region.h): epoch 0 by its creator, otherwise a region claimed with
 *   gwd_region_next_epoch() under this node's id and incarnation. An
 *   imported keypair (kp->imported) is never sent with at epoch 0.
 * - A keypair this process held a region of is never imported again once
 *   dropped (tombstones), so a claim always knows this process's own last
 *   epoch for the keypair.
 *
 * Single-threaded, on the device's loop.
 */
#ifndef GWD_CLUSTER_H
#define GWD_CLUSTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gw/crypto.h"
#include "gw/loop.h"
#include "messages.h"
#include "noise.h"
#include "routes.h"

struct gwd_device;
struct gwd_peer;

enum {
	/* Anycast: a node claims a peer on receive at most this often. */
	GWD_CLUSTER_CLAIM_HOLDOFF_MS = 1000,
	/*
	 * A node whose 12-bit incarnation was used before (boot counter >=
	 * 4096) claims no region on an imported keypair for this long after it
	 * started: every keypair an earlier holder of the same incarnation
	 * could have sent with is dead by then.
	 */
	GWD_CLUSTER_REUSE_HOLDOFF_S = 3 * GWD_REJECT_AFTER_TIME,
	/* How long a dropped keypair stays refused by imports. */
	GWD_CLUSTER_TOMBSTONE_S = 3 * GWD_REJECT_AFTER_TIME,
	/* Rekeys after a takeover, per second across the device. */
	GWD_CLUSTER_REKEY_RATE_DEFAULT = 100,
	GWD_CLUSTER_REKEY_TICK_MS = 100,
	/* Receive progress is exported at most this long after it was made. */
	GWD_SESSION_RX_INTERVAL_MS = 100,
};

/*
 * FIFO queues of peers (export, takeover rekeys): doubly linked through the
 * peer, NULL-terminated, so a removed peer leaves in O(1). A peer is in a
 * queue at most once.
 */
enum gwd_peer_queue_kind {
	GWD_QUEUE_EXPORT,
	GWD_QUEUE_REKEY,
	GWD_QUEUE_ROUTES,
	GWD_QUEUE__COUNT,
};

struct gwd_queue_link {
	struct gwd_peer *prev, *next;
	bool queued;
};

struct gwd_peer_queue {
	struct gwd_peer *head, *tail;
	size_t len;
	enum gwd_peer_queue_kind kind;
};

void gwd_peer_queue_init(struct gwd_peer_queue *q, enum gwd_peer_queue_kind kind);
/* Appends p unless it is queued already. */
void gwd_peer_queue_push(struct gwd_peer_queue *q, struct gwd_peer *p);
/* Takes p out if it is queued. */
void gwd_peer_queue_remove(struct gwd_peer_queue *q, struct gwd_peer *p);
/* The peer after p in q (NULL at the end). */
struct gwd_peer *gwd_peer_queue_next(const struct gwd_peer_queue *q, const struct gwd_peer *p);

/* Export flags of a peer (session.c). */
enum {
	GWD_EXPORT_RX = 1,   /* receive high-water marks only, within 100 ms */
	GWD_EXPORT_FULL = 2, /* the whole PeerSession, at once */
};

/* Per peer, embedded in struct gwd_peer; all zero on a standalone gwd. */
struct gwd_peer_cluster {
	uint8_t owner;	      /* node id that sends for the peer; 0: nobody */
	uint64_t owner_epoch; /* (owner_epoch, owner): the greater wins */
	uint64_t last_claim_ns;
	bool claimed_before;
	bool rekey_pending;   /* rekey once traffic resumed after a takeover */
	uint8_t export_flags; /* nonzero exactly while in the export queue */
	struct gwd_queue_link link[GWD_QUEUE__COUNT];
	struct gwd_peer_routes routes; /* installed for it (--owned-routes, routes.h) */
};

struct gwd_cluster_config {
	uint8_t node_id;	      /* 1..255 */
	uint64_t boot;		      /* boot counter (gwd_cluster_incarnation_next) */
	bool claim_on_receive;	      /* anycast mode */
	const uint8_t *cookie_secret; /* GW_HASH_LEN bytes, or NULL: per-node cookies */
	uint32_t takeover_rekey_rate; /* rekeys/s after a takeover; 0: none */
	uint32_t owned_routes_table;  /* routes for owned peers in this table; 0: none */
};

/* Counters shown by stats=1 (docs/failover.md). */
struct gwd_cluster_stats {
	uint64_t ownership_claims;    /* peers this node claimed */
	uint64_t ownership_releases;  /* peers it released */
	uint64_t ownership_lost;      /* peers another node took (higher epoch) */
	uint64_t region_claims;	      /* counter regions claimed */
	uint64_t region_refused;      /* claims refused: epochs exhausted, or reuse holdoff */
	uint64_t exports;	      /* PeerSessions exported */
	uint64_t export_rx;	      /* KeypairRx entries exported */
	uint64_t export_batches;      /* SessionBatches handed to the sink */
	uint64_t export_busy;	      /* sink said "try again" */
	uint64_t imports;	      /* PeerSessions imported */
	uint64_t import_keypairs;     /* keypairs installed by imports */
	uint64_t import_rx;	      /* KeypairRx applied */
	uint64_t import_rejected;     /* malformed or conflicting entries */
	uint64_t import_unknown_peer; /* sessions of peers not configured here */
	uint64_t import_tombstoned;   /* keypairs refused because this process dropped them */
	uint64_t import_expired;      /* keypairs too old to install */
	uint64_t standby_silenced;    /* handshakes a non-owner did not answer */
	uint64_t drop_not_owner;      /* TUN packets for peers this node does not own, dropped */
	uint64_t takeover_rekeys;     /* handshakes started by paced takeover rekeys */
	uint64_t owned_routes;	      /* routes installed for owned peers now (--owned-routes) */
	uint64_t route_errors;	      /* route additions or removals the kernel refused */
};

struct gwd_tombstones;
struct gwd_routes;
struct gwd_session_scratch;
struct gwd_session_sink;

struct gwd_cluster {
	struct gwd_device *dev;
	uint8_t node_id;
	uint16_t incarnation; /* boot mod 4096 */
	uint64_t boot;
	bool incarnation_reused;
	uint64_t start_ns;
	bool claim_on_receive;
	bool master; /* claim every peer, also those linked later */

	struct gwd_tombstones *tombstones;
	uint8_t fp_key[16]; /* keys keypair fingerprints (random per process) */

	/* Paced takeover rekeys. */
	struct gwd_peer_queue rekey_queue;
	struct gw_timer rekey_timer;
	uint32_t rekey_rate;
	uint32_t rekey_carry; /* rekeys owed from fractional ticks, x 1000 */

	/* Export queue and sink (session.c). */
	struct gwd_peer_queue export_queue;
	struct gw_timer export_timer;
	uint64_t export_deadline;
	const struct gwd_session_sink *sink;
	bool snapshot_pending;
	uint64_t snapshot_peers;
	struct gwd_session_scratch *scratch;

	/* Routes for owned peers (routes.c); NULL unless --owned-routes. */
	struct gwd_routes *routes;

	struct gwd_cluster_stats stats;
};

/*
 * Turns dev into cluster node cfg->node_id: receiver indexes partitioned by
 * node id, cookies under the cluster secret, regions on, nothing owned yet
 * (a VRRP node is a silent backup until gwd_cluster_claim_all). Must come
 * before any peer exists. 0, -EINVAL, -EBUSY (peers exist, or already a
 * cluster node) or -ENOMEM.
 */
int gwd_cluster_enable(struct gwd_device *dev, const struct gwd_cluster_config *cfg);
/* Frees the cluster state (the device calls it once its peers are gone). */
void gwd_cluster_free(struct gwd_device *dev);

/*
 * The boot counter: reads DIR/incarnation (absent: 0), writes value + 1 to a
 * temporary file, fsyncs it, renames it over DIR/incarnation and fsyncs DIR,
 * then returns the new value in *boot. Takes an exclusive lock on DIR/lock
 * first (-EBUSY when another gwd holds it) and returns its fd in *lock_fd;
 * keep it open while the process runs. DIR is created (0700) if missing. A
 * malformed file is an error (-EBADMSG): guessing could repeat a region.
 */
int gwd_cluster_incarnation_next(const char *dir, uint64_t *boot, int *lock_fd);
/*
 * Reads the cluster secret (the same file on every node): one line with 32
 * bytes in base64 (as `wg genkey` prints) or 64 hex digits. 0, -EBADMSG
 * or -errno. Warns when the file is readable by group or others.
 */
int gwd_cluster_read_secret(const char *path, uint8_t out[static GW_HASH_LEN]);

/* --- Ownership ------------------------------------------------------------- */

/* Whether this node may send for the peer (the rule behind gwd_peer_may_send). */
bool gwd_cluster_may_send(const struct gwd_peer *peer);
/*
 * Whether the device answers unauthenticated traffic (cookie replies): a
 * standalone gwd, an anycast node, a VRRP master.
 */
bool gwd_cluster_serving(const struct gwd_device *dev);
/* Takes the peer: (greatest known epoch + 1, self). */
void gwd_cluster_claim_peer(struct gwd_peer *peer);
/* Gives the peer up if owned: (epoch + 1, nobody); what was staged for it is dropped. */
void gwd_cluster_release_peer(struct gwd_peer *peer);
/*
 * A packet from the TUN for a peer this node does not own is dropped, never
 * staged (its owner sends it; a standby that kept it would send it stale
 * once it claims the peer): counts it.
 */
void gwd_cluster_drop_not_owner(struct gwd_peer *peer);
/* VRRP master: claim every peer now and every peer linked later. */
void gwd_cluster_claim_all(struct gwd_device *dev);
/* VRRP backup: release every peer; no more automatic claims. */
void gwd_cluster_release_all(struct gwd_device *dev);
/*
 * Ownership learnt from another node: adopted when (epoch, owner) is greater
 * than ours. True when it changed. A node that loses the peer stops sending
 * for it at once.
 */
bool gwd_cluster_merge_owner(struct gwd_peer *peer, uint8_t owner, uint64_t epoch);

/* --- Hooks from the rest of gwd (no-ops on a standalone device) ---------------- */

/* A peer was linked / is about to be removed. */
void gwd_cluster_peer_linked(struct gwd_peer *peer);
void gwd_cluster_peer_removed(struct gwd_peer *peer);
/*
 * An import was applied to the peer (ownership, keypairs, slots); prev_current
 * is the current keypair before it (compared, never dereferenced). A VRRP
 * master claims a peer the import left owned by nobody; an owner whose
 * current keypair the import replaced by a replicated one plans its takeover
 * rekey, as a claim would have.
 */
void gwd_cluster_peer_imported(struct gwd_peer *peer, const struct gwd_noise_keypair *prev_current);
/* kp is being freed (the core or an import dropped it): tombstone if it held a region. */
void gwd_cluster_keypair_dropped(struct gwd_device *dev, const struct gwd_noise_keypair *kp);
/* Frees a keypair outside the core: tombstone, index, wipe. kp must be in no slot. */
void gwd_cluster_keypair_free(struct gwd_device *dev, struct gwd_noise_keypair *kp);
/* The device's identity changed: imported keypairs may not be claimed any more. */
void gwd_cluster_identity_changed(struct gwd_device *dev);
/*
 * An authenticated initiation from a peer was consumed: true when this node
 * may answer it (owner, or an anycast node or VRRP master claiming it now);
 * false: stay silent.
 */
bool gwd_cluster_initiation_received(struct gwd_peer *peer);
/*
 * An authenticated data packet of the peer was accepted (call it before
 * anything is sent in reaction): receive progress to export, claim on
 * receive (anycast, VRRP master), takeover rekey once traffic resumed.
 */
void gwd_cluster_data_received(struct gwd_peer *peer);
/*
 * After data under kp was accepted and the slots rotated: once the peer
 * sends under a keypair this process made, a replicated previous keypair
 * is dropped, ending the replay exposure of a takeover (docs/failover.md).
 */
void gwd_cluster_session_moved_on(struct gwd_peer *peer, const struct gwd_noise_keypair *kp);

/* --- Counter regions ----------------------------------------------------------- */

/*
 * Whether kp can send (possibly after claiming a region): the plain rule
 * (counter below REJECT_AFTER_MESSAGES) on a standalone device; in a cluster
 * also an imported keypair that may still be claimed.
 */
bool gwd_cluster_keypair_usable(const struct gwd_device *dev, const struct gwd_noise_keypair *kp);
/*
 * Takes the next counter to send with under kp, claiming a region first when
 * kp holds none or its region is used up. False when kp may not send (the
 * caller starts a handshake): epochs exhausted (kp is then dead for good),
 * reuse holdoff, or REJECT_AFTER_MESSAGES. The only source of counters.
 */
bool gwd_cluster_next_counter(struct gwd_device *dev, struct gwd_noise_keypair *kp,
			      uint64_t *counter);
/* Counters left in kp's current region (0: none held). */
uint64_t gwd_cluster_region_headroom(const struct gwd_device *dev,
				     const struct gwd_noise_keypair *kp);
/*
 * Before checking a counter received under kp (after authentication):
 * applies a replicated receive high-water mark as the window's floor.
 */
static inline void gwd_cluster_rx_prepare(struct gwd_noise_keypair *kp)
{
	if (kp->rx_floor) {
		gwd_replay_set_floor(&kp->receiving_window, kp->rx_floor);
		kp->rx_floor = 0;
	}
}

/* --- Tombstones ------------------------------------------------------------------ */

/* A short fingerprint of kp's keys, keyed per process; never reveals them. */
uint64_t gwd_cluster_fingerprint(const struct gwd_cluster *c, const uint8_t send_key[GW_KEY_LEN],
				 const uint8_t recv_key[GW_KEY_LEN]);
bool gwd_cluster_tombstoned(struct gwd_cluster *c, uint64_t fp);
size_t gwd_cluster_tombstone_count(const struct gwd_cluster *c);

#endif
