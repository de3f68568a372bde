/* SPDX-License-Identifier: MIT */
/*
 * The session relay (docs/failover.md): carries the local gwd's session
 * state to the other nodes and theirs into it, and the node's role from
 * gwctl (keepalived's hooks) to gwd. Nothing here is ever written to disk.
 *
 * Local side: syncd subscribes on gwd's session socket (gwd/syncsock.h):
 * hello -> gwd_hello, the snapshot, snapshot_done, deltas; syncd sends
 * import_sessions, role and dump, gwd answers `result` to those with an id.
 * gwd's heartbeat (a gwd_hello without our hello's id, every second) keeps
 * the subscription: one with a new boot, or silence, makes syncd subscribe
 * again, and so does every new connection of the link (a restarted gwd).
 * Remote side: the transport (transport.h).
 *
 * - Exports. Every export_sessions of the local gwd is published as it is,
 *   as Envelope{sessions} (no seq: sessions merge, they are not sequenced).
 * - Imports. Envelope{sessions} from another member goes to the local gwd
 *   as import_sessions. Batches arriving together are coalesced into one
 *   import (a concatenation of packed SessionBatches is their merge), flushed
 *   from the loop (io.kick) or at SYNCD_RELAY_IMPORT_FLUSH bytes. The last
 *   SYNCD_RELAY_RECENT_MS of imports are kept and imported again after an
 *   apply added peers (gwd drops sessions of peers it does not have yet),
 *   every age in them increased by the time they were kept.
 * - Dumps. After the local gwd subscribed (a start, a restart of either) and
 *   the configuration was applied to it, the relay asks every other member
 *   for its sessions (SessionDumpRequest on the DEALER). The member has its
 *   gwd dump everything, publishes it on its stream like any export, then
 *   SessionDumpDone with the request id; the stream is ordered, so the dump
 *   is complete here when the Done arrives. The relay then flushes the
 *   imports with an id: gwd's result for it means all of it is imported.
 *   Unanswered requests are repeated every SYNCD_RELAY_DUMP_TIMEOUT_MS.
 * - Loss. Each syncd publishes SessionStatus every SYNCD_RELAY_STATUS_MS
 *   with the count of session Envelopes it published before it; a receiver
 *   that got fewer in between (PUB dropped them for a slow or reconnecting
 *   subscriber) asks that member for a dump.
 * - Role. MASTER sends CLAIM_ALL, BACKUP and FAULT RELEASE_ALL. The role is
 *   remembered and sent again to a gwd that subscribes anew; a syncd that
 *   starts without a role adopts gwd's (gwd_hello.master). A master claims
 *   once more when the node becomes ready: a restarted gwd that claimed
 *   before the dumps came in may have learnt greater ownership epochs since.
 *   MASTER and CLAIM are refused while the node is not ready, unless forced.
 * - Readiness: the value syncd writes to the SyncedFile for keepalived's
 *   track_file (with weight 0, non-zero is FAULT). 0 once, since gwd last
 *   subscribed: the configuration has caught up with a member since syncd
 *   started and been applied to gwd; the dumps of every member that is
 *   alive have been imported; and this node holds the cluster's sessions by
 *   evidence, not by silence: the dump of a member that was ready itself,
 *   or the dumps of every other member's gwd (a cluster starting together),
 *   or it is the only member, or the operator forced it (READY with force,
 *   when the other members are gone for good). A member never heard does
 *   not count as dead-and-satisfied. It then stays 0 until gwd goes away
 *   (later losses only cause new dumps). Dumps carry the server's readiness
 *   (SessionDumpDone.ready); one that did not count is asked again when the
 *   member's status says it became ready. docs/failover.md, Readiness.
 *
 * The core knows no sockets (struct syncd_relay_io), so tests drive it with
 * LocalMessages and Envelopes; syncd_relay_link is the ZeroMQ DEALER to gwd.
 * Single-threaded, on syncd's loop. Messages with keys are wiped once used.
 */
#ifndef SYNCD_RELAY_H
#define SYNCD_RELAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gw/clock.h"
#include "gw/loop.h"
#include "gwcluster.pb-c.h"
#include "transport.h"

enum {
	SYNCD_RELAY_LOCAL_VERSION = 1,	     /* LocalMessage.version */
	SYNCD_RELAY_STATUS_MS = 1000,	     /* SessionStatus interval */
	SYNCD_RELAY_HELLO_RETRY_MS = 2000,   /* hello unanswered: again */
	SYNCD_RELAY_GWD_SILENCE_MS = 3500,   /* no gwd heartbeat (1 s) for this long: hello again */
	SYNCD_RELAY_DUMP_RETRY_MS = 500,     /* a request that could not be sent */
	SYNCD_RELAY_DUMP_TIMEOUT_MS = 10000, /* a request sent but not done */
	SYNCD_RELAY_DUMP_TRIES = 5,	     /* then it no longer holds up readiness */
	SYNCD_RELAY_IMPORT_FLUSH = 1 << 20,  /* coalesced import bytes that flush at once */
	SYNCD_RELAY_IMPORT_MAX = 64 << 20,   /* beyond: dropped, dumps asked again */
	SYNCD_RELAY_RECENT_MS = 10000,	     /* imports kept for peers added late */
	SYNCD_RELAY_RECENT_BYTES = 16 << 20,
	SYNCD_RELAY_RECENT_SLOTS = 4096,
	SYNCD_RELAY_WAITERS = 2 * SYNCD_MAX_MEMBERS, /* dump requests being served */
};

enum syncd_role {
	SYNCD_ROLE_UNKNOWN = GWCLUSTER__NODE_ROLE__NODE_ROLE_UNKNOWN,
	SYNCD_ROLE_MASTER = GWCLUSTER__NODE_ROLE__NODE_ROLE_MASTER,
	SYNCD_ROLE_BACKUP = GWCLUSTER__NODE_ROLE__NODE_ROLE_BACKUP,
	SYNCD_ROLE_FAULT = GWCLUSTER__NODE_ROLE__NODE_ROLE_FAULT,
	SYNCD_ROLE__COUNT,
};

/* The SyncedFile value, the first reason that applies. */
enum syncd_ready {
	SYNCD_READY = 0,
	SYNCD_READY_CONFIG = 1,	  /* the configuration has not caught up since syncd started */
	SYNCD_READY_GWD = 2,	  /* gwd not subscribed, wrong node id, or config not applied */
	SYNCD_READY_SESSIONS = 3, /* sessions of a live member, or of a source, not imported */
	SYNCD_READY_STOPPED = 4,  /* syncd stopped (written at exit) */
};

struct syncd_relay_io {
	/*
	 * Sends one packed LocalMessage to gwd and takes buf (malloc'd) in
	 * every case: it is wiped and freed once sent or refused. 0, -ENOTCONN
	 * (no gwd) or -EAGAIN (queue full).
	 */
	int (*to_gwd)(void *arg, uint8_t *buf, size_t len);
	int (*publish)(void *arg, Gwcluster__Envelope *env);
	int (*request)(void *arg, uint8_t to, Gwcluster__Envelope *env);
	/* Call syncd_relay_flush() soon, from the loop (never from inside this call). */
	void (*kick)(void *arg);
	/* gwd (re)subscribed: apply the configuration soon (then syncd_relay_config_applied). */
	void (*gwd_hello)(void *arg);
	/* The readiness value changed (write the SyncedFile). */
	void (*ready_changed)(void *arg, enum syncd_ready value);
	void *arg;
};

struct syncd_relay_config {
	uint8_t node_id;
	const uint8_t *members; /* node ids of every member, this node included */
	unsigned n_members;
	bool anycast;	  /* Mode = anycast: gwd claims on receive */
	unsigned dead_ms; /* a member silent this long does not hold up readiness */
};

/* What gwd's stats=1 says (syncd_gwd_stats_parse). */
struct syncd_gwd_stats {
	bool cluster; /* gwd runs as a cluster node */
	uint32_t node_id, incarnation;
	uint64_t boot;
	bool master, claim_on_receive;
	uint64_t peers, peers_owned, sessions_owned, sessions_standby;
	uint64_t owner_epoch_max;
	uint32_t send_epoch_max;
	bool has_headroom; /* some owned peer holds a region */
	uint64_t region_headroom_min;
	uint64_t exports, imports;
};

struct syncd_relay_stats {
	uint64_t exports_published; /* session Envelopes published */
	uint64_t publish_failed;
	uint64_t batches_received; /* session Envelopes from other members */
	uint64_t imports_sent;	   /* import_sessions messages to gwd */
	uint64_t import_dropped;   /* batches gwd could not take (no gwd, queue full) */
	uint64_t batches_lost;	   /* found missing by the status counts */
	uint64_t dumps_requested;
	uint64_t dumps_completed; /* imported, gwd confirmed */
	uint64_t dumps_served;
	uint64_t gwd_errors; /* results with an error */
	uint64_t rejected;   /* malformed or unexpected messages */
	/* Changes of the role, by the role taken (gwctl role, or gwd's adopted). */
	uint64_t role_changes[SYNCD_ROLE__COUNT];
};

struct syncd_relay;

/* cfg and io are copied. 0, -EINVAL or -ENOMEM. */
int syncd_relay_new(struct syncd_relay **out, const struct syncd_relay_config *cfg,
		    const struct gw_clock *clock, const struct syncd_relay_io *io);
/* Wipes everything it holds. NULL is ignored. */
void syncd_relay_free(struct syncd_relay *r);

/* The link to gwd came up (sends hello) or went down. */
void syncd_relay_gwd_up(struct syncd_relay *r);
void syncd_relay_gwd_down(struct syncd_relay *r);
/* One message from gwd (a packed LocalMessage, untrusted, wiped here). */
void syncd_relay_from_gwd(struct syncd_relay *r, uint8_t *buf, size_t len);
/*
 * An Envelope from the transport: true when it was the relay's (sessions,
 * dump request, dump done, session status), false to pass it to the replica.
 */
bool syncd_relay_receive(struct syncd_relay *r, uint8_t from, enum syncd_channel ch,
			 const Gwcluster__Envelope *env);
/*
 * The replica's state, read every tick: caught_up, it caught up with a
 * member since syncd started (syncd_replica_caught_up); had, its state
 * directory caught up once and holds a configuration (syncd_replica_writable).
 */
void syncd_relay_config_state(struct syncd_relay *r, bool caught_up, bool had);
/* The configuration was applied to gwd; peers_added: the apply added some. */
void syncd_relay_config_applied(struct syncd_relay *r, bool peers_added);
/* Fresh figures from gwd's stats=1. */
void syncd_relay_gwd_stats(struct syncd_relay *r, const struct syncd_gwd_stats *st);
/* Status, dump requests and timeouts, readiness: call every heartbeat. */
void syncd_relay_tick(struct syncd_relay *r);
/* Sends the coalesced imports to gwd. */
void syncd_relay_flush(struct syncd_relay *r);

/*
 * gwctl role. 0 or -errno with a one-line explanation in msg either way:
 * -EAGAIN (not ready, for MASTER and CLAIM without force; READY on a state
 * directory that never caught up), -ENOTCONN (gwd not subscribed: a role is
 * remembered and sent once it is, CLAIM and RELEASE are not), -EINVAL (a
 * bad key or no key, READY without force). *summary (relay-owned,
 * valid until the next call into the relay) is this node's state.
 */
int syncd_relay_role(struct syncd_relay *r, const Gwcluster__RoleRequest *req,
		     const Gwcluster__SessionSummary **summary, char *msg, size_t msglen);
/*
 * Adds ready, ready_reason and every member's session fields to st (from
 * syncd_replica_status). What it points to is relay-owned, valid until the
 * next call into the relay.
 */
void syncd_relay_status(struct syncd_relay *r, Gwcluster__ClusterStatus *st);
/* The readiness value; *why (may be NULL) explains a non-zero one. */
enum syncd_ready syncd_relay_ready(const struct syncd_relay *r, const char **why);
enum syncd_role syncd_relay_role_get(const struct syncd_relay *r);
bool syncd_relay_gwd_subscribed(const struct syncd_relay *r);
const struct syncd_relay_stats *syncd_relay_stats(const struct syncd_relay *r);
const char *syncd_role_name(enum syncd_role role);

/* --- gwd's stats=1 ------------------------------------------------------------ */

/*
 * Parses a whole stats=1 reply (through its errno line and blank line).
 * 0, -EPROTO (malformed or a line over 512 bytes) or the -errno it carries.
 */
int syncd_gwd_stats_parse(const char *reply, size_t len, struct syncd_gwd_stats *out);

/*
 * Asks gwd on /var/run/wireguard/IFNAME.sock without blocking the loop: the
 * answer (93 MB at 100k peers in cluster mode) is read and parsed a slice
 * per readable event. fn gets 0 and the figures, or -errno and NULL: -ETIMEDOUT
 * (no progress for 2 s, or not whole after 30 s), -EPIPE (gwd closed), -EPROTO
 * or the errno gwd answered; took_ns is the time since the query started.
 */
typedef void syncd_gwd_stats_fn(void *arg, int rc, const struct syncd_gwd_stats *st,
				uint64_t took_ns);
struct syncd_gwd_stats_client;
/* -EINVAL for a bad ifname or NULL fn, -ENOMEM. */
int syncd_gwd_stats_client_open(struct syncd_gwd_stats_client **out, struct gw_loop *loop,
				const char *ifname, syncd_gwd_stats_fn *fn, void *arg);
/* Abandons a query without calling fn. NULL is a no-op. */
void syncd_gwd_stats_client_close(struct syncd_gwd_stats_client *c);
/*
 * Starts a query: 0 (fn follows), -EBUSY while one is outstanding, or
 * -errno without a call to fn (-ENOENT, -ECONNREFUSED: no gwd).
 */
int syncd_gwd_stats_client_query(struct syncd_gwd_stats_client *c);
bool syncd_gwd_stats_client_busy(const struct syncd_gwd_stats_client *c);

/* --- The SyncedFile ---------------------------------------------------------------- */

/* Writes "VALUE\n" to path atomically (a temporary file renamed over it). 0 or -errno. */
int syncd_synced_file_write(const char *path, unsigned value);
/*
 * Writes it only if the file says something else (keepalived's init_file
 * overwrote it, or it is gone): 0 unchanged, 1 written, or -errno.
 */
int syncd_synced_file_refresh(const char *path, unsigned value);

/* --- The link to gwd ---------------------------------------------------------------- */

struct syncd_relay_link;

/*
 * A DEALER connected to ipc://path. ZeroMQ reconnects by itself (100 ms,
 * backing off to SYNCD_RELAY_RECONNECT_MAX_MS) while gwd is absent or
 * restarting; every connection delivers syncd_relay_gwd_up and its end
 * syncd_relay_gwd_down. 0 or -errno.
 */
int syncd_relay_link_open(struct syncd_relay_link **out, const char *path, struct gw_loop *loop,
			  struct syncd_relay *r);
void syncd_relay_link_close(struct syncd_relay_link *l);
/* syncd_relay_io.to_gwd for this link. */
int syncd_relay_link_send(struct syncd_relay_link *l, uint8_t *buf, size_t len);

enum {
	SYNCD_RELAY_RECONNECT_MS = 100,
	SYNCD_RELAY_RECONNECT_MAX_MS = 2000,
	SYNCD_RELAY_LINK_HWM = 100000, /* messages queued to gwd */
};

#endif
