/* SPDX-License-Identifier: MIT */
/*
 * The replicated configuration of one node: last-writer-wins records on a
 * hybrid logical clock, per-origin sequence numbers with gap detection and
 * repair, snapshots for joining and lagging nodes (the ZeroMQ Guide's Clone
 * pattern), heartbeats with applied vectors, and tombstone collection.
 * The protocol is described in docs/sync-protocol.md.
 *
 * The replica knows no sockets: it consumes decoded Envelopes with the
 * authenticated sender (syncd_replica_receive) and sends Envelopes through
 * a small table of callbacks, so unit tests can wire nodes together in
 * memory. Time comes from a gw_clock; syncd_replica_tick() drives
 * heartbeats, retries, catch-up and collection and must be called every
 * heartbeat interval. Single-threaded.
 */
#ifndef SYNCD_REPLICA_H
#define SYNCD_REPLICA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gw/clock.h"
#include "gwcluster.pb-c.h"
#include "store.h"
#include "transport.h"

enum {
	SYNCD_GAP_SLOTS = 4096,		  /* out-of-order updates buffered per origin ... */
	SYNCD_GAP_BYTES = 64 << 20,	  /* ... and bytes of them */
	SYNCD_REPAIR_MAX = 1024,	  /* updates asked for or served per RepairRequest */
	SYNCD_REPAIR_BYTES = 16 << 20,	  /* bytes served per RepairRequest */
	SYNCD_REPAIR_TRIES = 5,		  /* unanswered RepairRequests before a snapshot */
	SYNCD_SNAPSHOT_TIMEOUT_MS = 5000, /* silence that abandons a snapshot */
	SYNCD_SNAPSHOT_MIN_GAP_MS = 1000, /* served to one member at most this often */
	SYNCD_CHUNK_RECORDS = 1000,	  /* records per SnapshotChunk ... */
	SYNCD_CHUNK_BYTES = 1 << 20,	  /* ... or this many bytes of them */
	SYNCD_GC_INTERVAL_MS = 1000,
	SYNCD_HLC_SAMPLES = 64,	     /* (hlc, own_seq) samples kept per member */
	SYNCD_HLC_SAMPLE_MS = 250,   /* at most one sample per this interval */
	SYNCD_HLC_RESERVE_MS = 2000, /* hlc ceiling persisted ahead of use */
	SYNCD_PEER_MAX_ALLOWED_IPS = 1 << 16,
	SYNCD_META_TEXT_MAX = 255, /* bytes of PeerMeta name and owner */
	SYNCD_META_TAGS_MAX = 64,
	SYNCD_META_TAG_LEN_MAX = 64,
	SYNCD_VERSION_MAX = 31,
	SYNCD_MERGE_SLICE = 1000, /* records per transaction and per syncd_replica_work() */
};

/* How the replica reaches other nodes; transport semantics in transport.h. */
struct syncd_replica_io {
	int (*publish)(void *arg, Gwcluster__Envelope *env);
	int (*request)(void *arg, uint8_t to, Gwcluster__Envelope *env);
	int (*reply)(void *arg, uint8_t to, Gwcluster__Envelope *env);
	/* Records changed (a local write or remote ones); may be NULL. */
	void (*changed)(void *arg);
	void *arg;
	/*
	 * The record under key (a peer's 32-byte public key, or SYNCD_IFACE_KEY)
	 * was stored: called inside the transaction, which may still roll back
	 * (then the stored record did not change after all). May be NULL.
	 */
	void (*record_changed)(void *arg, const uint8_t *key, size_t key_len);
	/*
	 * Work is waiting: call syncd_replica_work() soon, from the event loop
	 * (not from within this call). May be NULL if the caller polls.
	 */
	void (*more)(void *arg);
};

struct syncd_replica_config {
	uint8_t node_id;
	const uint8_t *members; /* node ids of every member, this node included */
	unsigned n_members;
	unsigned heartbeat_ms;
	unsigned peer_dead_ms; /* silence after which a member counts as unreachable */
	unsigned log_retain;   /* own updates kept for repair */
	const char *version;   /* sent in heartbeats */
	unsigned merge_slice;  /* records per slice of work; 0: SYNCD_MERGE_SLICE */
};

struct syncd_replica_stats {
	uint64_t writes;	  /* own updates committed */
	uint64_t updates_applied; /* remote updates applied in order */
	uint64_t records_won;	  /* records that replaced what we had */
	uint64_t records_lost;	  /* records older than (or equal to) what we had */
	uint64_t duplicates;	  /* updates at or below applied[origin] */
	uint64_t buffered;	  /* updates held back by a gap */
	uint64_t buffer_dropped;  /* updates too far ahead to buffer */
	uint64_t repairs_sent;	  /* RepairRequests we sent */
	uint64_t repairs_served;  /* RepairRequests we answered with updates */
	uint64_t repairs_refused; /* RepairRequests we answered with RepairRefused */
	uint64_t refusals_received;
	uint64_t snapshots_requested;
	uint64_t snapshots_served;
	uint64_t snapshots_completed;
	uint64_t snapshots_abandoned;
	uint64_t rejected; /* envelopes or records refused (wrong channel, bad record, ...) */
	uint64_t store_errors;
	uint64_t tombstones_collected;
};

struct syncd_replica;

/*
 * Loads applied vector, own seq and clock floor from the store (which stays
 * the caller's and must outlive the replica). The io table is copied.
 * 0, -EINVAL (bad config: node_id not among members, ...), -ENOMEM or a
 * store error.
 */
int syncd_replica_open(struct syncd_replica **out, const struct syncd_replica_config *cfg,
		       struct syncd_store *store, const struct gw_clock *clock,
		       const struct syncd_replica_io *io);
void syncd_replica_close(struct syncd_replica *r);

/*
 * One Envelope from the authenticated member `from` on channel ch (the
 * transport already checked version, cluster and origin == from). Invalid
 * content is counted in stats.rejected and logged with a rate limit.
 */
void syncd_replica_receive(struct syncd_replica *r, uint8_t from, enum syncd_channel ch,
			   const Gwcluster__Envelope *env);
/*
 * The same for an env unpacked with gw_pbwipe_allocator (the transport's):
 * an update merged in slices is taken out of it (env->update set to NULL)
 * instead of copied.
 */
void syncd_replica_receive_taking(struct syncd_replica *r, uint8_t from, enum syncd_channel ch,
				  Gwcluster__Envelope *env);
/* Heartbeat, timeouts, repair, catch-up, tombstone collection. */
void syncd_replica_tick(struct syncd_replica *r);

/*
 * Large jobs go in slices, so that the caller's event loop is never held
 * for long: a remote update of more than merge_slice records is merged
 * merge_slice records per transaction, and applied[origin] advances only
 * with the last one (a crash in between leaves applied where it was: the
 * update is fetched and merged again, and records already merged lose to
 * themselves); a snapshot served to a member is read merge_slice records
 * at a time from a consistent cut of the store. Each call does one slice
 * of one job; true while some job remains (io.more was called when the
 * first one appeared).
 */
bool syncd_replica_work(struct syncd_replica *r);

/*
 * An own write of n records (each with its item set and valid, see
 * syncd_record_check; hlc and writer are stamped here, in the caller's
 * records). All n become one Update with the next own seq, committed in one
 * transaction with the log entry and the seq, then published. Returns 0
 * only once committed; -EAGAIN while this node cannot know its own seq (a
 * new state directory that has not caught up yet), -EINVAL for an invalid
 * record, or a store error (nothing persisted).
 */
int syncd_replica_write(struct syncd_replica *r, Gwcluster__Record **records, size_t n,
			uint64_t *seq);

/* Initial catch-up done and no gap stuck for long. */
bool syncd_replica_synced(const struct syncd_replica *r);
/*
 * The initial catch-up ended in this process: it heard a member (or is the
 * only member) and applied everything known to exist then. Unlike
 * syncd_replica_synced() it never turns false again, and unlike
 * syncd_replica_writable() it is false after a restart until the node has
 * heard the cluster (readiness for master, relay.h).
 */
bool syncd_replica_caught_up(const struct syncd_replica *r);
/* Own writes are accepted (see syncd_replica_write). */
bool syncd_replica_writable(const struct syncd_replica *r);
uint64_t syncd_replica_own_seq(const struct syncd_replica *r);
uint64_t syncd_replica_applied(const struct syncd_replica *r, uint8_t origin);
const struct syncd_replica_stats *syncd_replica_stats(const struct syncd_replica *r);

/*
 * The live peers (tombstones left out) in public-key order, as unpacked
 * Records; free with syncd_records_free(). 0 or -errno.
 */
int syncd_replica_peers(struct syncd_replica *r, Gwcluster__Record ***out, size_t *n);
/* One live peer; -ENOENT when absent or deleted. Free with gwcluster__record__free_unpacked. */
int syncd_replica_peer(struct syncd_replica *r, const uint8_t key[static 32],
		       Gwcluster__Record **out);
/* The interface record; -ENOENT when none was ever written. */
int syncd_replica_iface(struct syncd_replica *r, Gwcluster__Record **out);
void syncd_records_free(Gwcluster__Record **recs, size_t n);

/* One member as this node sees it (gwctl status, metrics). */
struct syncd_member_info {
	uint8_t node_id;
	bool self;
	bool heard;	/* a heartbeat or message came from it since we started */
	bool reachable; /* heard within PeerDeadMs (always true for ourselves) */
	bool synced;	/* as its last heartbeat said (ourselves: syncd_replica_synced) */
	uint64_t last_seen_ns_ago; /* 0 for ourselves and a member never heard */
	/* Its stream as an origin: our gap-free seq of it, and the greatest known to exist. */
	uint64_t applied, known;
	/* Own updates it has not confirmed: own_seq - its applied[us] (0 for ourselves). */
	uint64_t unconfirmed;
};

/* Members in configuration order, this node included. */
unsigned syncd_replica_n_members(const struct syncd_replica *r);
/* Member i < syncd_replica_n_members(); -EINVAL beyond. No allocation. */
int syncd_replica_member_info(const struct syncd_replica *r, unsigned i,
			      struct syncd_member_info *out);

/*
 * Fills st's node_id, synced, members (every configured member, this node
 * included, with liveness, lag, behind, version and applied vector) and
 * peers. Free what it allocated with syncd_replica_status_free().
 */
int syncd_replica_status(struct syncd_replica *r, Gwcluster__ClusterStatus *st);
void syncd_replica_status_free(Gwcluster__ClusterStatus *st);

/*
 * Record rules, shared with the control server. check: the record is
 * well-formed (a peer: 32-byte key, 32-byte or absent PSK, parseable
 * allowed IPs, endpoint and bounded metadata). The result depends on the
 * record only, never on this host, so every node decides alike.
 * 0 or -EINVAL with a reason in why.
 */
int syncd_record_check(const Gwcluster__Record *rec, char *why, size_t whylen);
/*
 * Checks a peer and rewrites it into canonical form: allowed IPs masked,
 * sorted (IPv4 first, then by address and length) and deduplicated,
 * endpoint formatted, an all-zero PSK, a zero keepalive and empty metadata
 * removed. p must be an unpacked message (its fields malloc'd).
 * 0, -EINVAL with a reason, or -ENOMEM.
 */
int syncd_peer_canonicalize(Gwcluster__PeerConfig *p, char *why, size_t whylen);
/* Equal canonical configurations (byte-wise on their packed form). */
bool syncd_peer_equal(const Gwcluster__PeerConfig *a, const Gwcluster__PeerConfig *b);

#endif
