/* SPDX-License-Identifier: MIT */
/*
 * The Noise_IKpsk2 handshake of WireGuard and the keypairs it yields, with no
 * I/O: messages are built into and read from caller buffers, and the core
 * reaches the rest of gwd only through struct gwd_noise_upcalls. Macs (mac1,
 * mac2) are cookie.h's business: add them after create_*, check them before
 * consume_*.
 *
 * Objects:
 * - struct gwd_noise_local: the interface's static identity (one per gwd,
 *   the same on every cluster node).
 * - struct gwd_noise_remote: one per peer, embedded by the caller in its peer
 *   struct; holds the peer's static key, PSK, the handshake in progress, the
 *   handshake anti-replay state and the keypair slots previous/current/next.
 * - struct gwd_noise_keypair: transport keys of one session, allocated here.
 *
 * Receiver indexes: the caller owns the table that maps a 32-bit index to a
 * handshake or a keypair. The core asks for a new index through index_alloc
 * (creating an initiation or a response), moves it from the handshake to the
 * keypair born of it through index_to_keypair, and releases it through
 * index_free when the handshake is abandoned or the keypair dropped.
 *
 * Dispatch (the caller's side):
 * - initiation: cookie check, then gwd_noise_consume_initiation(), which
 *   finds the remote by static key; then create_response, add macs,
 *   begin_session, send.
 * - response: cookie check, then look msg->receiver_index up in the index
 *   table; it must name a handshake, whose remote is passed to
 *   gwd_noise_consume_response(), which checks that this remote's handshake in
 *   progress owns that index; then begin_session.
 * - data: look key_idx up; it must name a keypair; after the packet
 *   authenticates, call gwd_noise_received_with_keypair().
 *
 * Not thread-safe: the caller serialises all calls touching one local and its
 * remotes (gwd's event loop is single-threaded). Keypair pointers stay valid
 * until the next call on the same remote that may rotate or drop keypairs
 * (begin_session, received_with_keypair, remote_clear, remote_destroy).
 *
 * Session sync (see session-sync.md): every field a replica needs is a plain
 * field here (keypair indexes, keys, birth, flags; the remote's antireplay).
 * Import/export functions and counter regions are added on top later; the
 * handshake in progress (ephemeral private key) is never exported.
 */
#ifndef GWD_NOISE_H
#define GWD_NOISE_H

#include <stdbool.h>
#include <stdint.h>

#include "gw/clock.h"
#include "gw/crypto.h"
#include "messages.h"
#include "replay.h"

struct gwd_noise_local;
struct gwd_noise_remote;
struct gwd_noise_keypair;

struct gwd_noise_upcalls {
	void *arg;
	/* The remote whose static public key is pub, or NULL when no such peer. */
	struct gwd_noise_remote *(*remote_by_pubkey)(void *arg,
						     const uint8_t pub[static GW_KEY_LEN]);
	/*
	 * Registers a new index, unused by any live handshake or keypair, naming
	 * r's handshake in progress. 0 or -errno (the operation then fails
	 * with GWD_NOISE_INDEX_FAILED).
	 */
	int (*index_alloc)(void *arg, struct gwd_noise_remote *r, uint32_t *out_index);
	/* The index (from index_alloc) now names keypair kp of the same remote. */
	void (*index_to_keypair)(void *arg, uint32_t index, struct gwd_noise_keypair *kp);
	/* The index names nothing any more; it may be reused. */
	void (*index_free)(void *arg, uint32_t index);
	/*
	 * Optional, NULL in gwd: writes the next ephemeral private key. Only for
	 * known-answer tests and fuzzers, which need reproducible messages.
	 */
	void (*ephemeral_generate)(void *arg, uint8_t priv[static GW_KEY_LEN]);
};

struct gwd_noise_local {
	const struct gw_clock *clock; /* monotonic: flood and ages; real: TAI64N */
	struct gwd_noise_upcalls up;
	uint8_t *private_key; /* GW_KEY_LEN bytes of gw_secret memory */
	uint8_t public_key[GW_KEY_LEN];
	bool has_identity;
	/* Bumped on every key change; remotes recompute static-static DH lazily. */
	uint64_t generation;
	/* Initial chaining key HASH(CONSTRUCTION) and hash HASH(ck || IDENTIFIER). */
	uint8_t initial_chaining_key[GW_HASH_LEN];
	uint8_t initial_hash[GW_HASH_LEN];
	/* initial_hash mixed with our public key: the start of every initiation to us. */
	uint8_t responder_hash[GW_HASH_LEN];
};

enum gwd_noise_handshake_state {
	GWD_NOISE_HANDSHAKE_ZEROED,
	GWD_NOISE_HANDSHAKE_CREATED_INITIATION,
	GWD_NOISE_HANDSHAKE_CONSUMED_INITIATION,
	GWD_NOISE_HANDSHAKE_CREATED_RESPONSE,
	GWD_NOISE_HANDSHAKE_CONSUMED_RESPONSE,
};

/* The handshake in progress. Holds secrets: wiped whenever it is zeroed. */
struct gwd_noise_handshake {
	enum gwd_noise_handshake_state state;
	bool has_local_index; /* local_index is registered and owned by this handshake */
	uint32_t local_index;
	uint32_t remote_index;
	uint8_t hash[GW_HASH_LEN];
	uint8_t chaining_key[GW_HASH_LEN];
	uint8_t ephemeral_private[GW_KEY_LEN]; /* wiped as soon as the last DH used it */
	uint8_t remote_ephemeral[GW_KEY_LEN];
};

/*
 * Handshake anti-replay state of one peer, replicated across the cluster
 * (merge with gwd_noise_antireplay_merge). Survives gwd_noise_remote_clear():
 * forgetting it would let a captured initiation be replayed.
 */
struct gwd_noise_antireplay {
	/* Greatest TAI64N accepted from the peer; all zero: none yet. */
	uint8_t greatest_received[GW_TAI64N_LEN];
	/*
	 * Greatest TAI64N sent to the peer; an initiation carries
	 * max(now, greatest_sent + 1 ns) so that a peer that saw a later
	 * timestamp from another node (or before a clock step) accepts it.
	 */
	uint8_t greatest_sent[GW_TAI64N_LEN];
	/* Monotonic time of the last accepted initiation (this node's clock). */
	uint64_t last_initiation_ns;
	bool has_initiation;
};

struct gwd_noise_keypair {
	struct gwd_noise_remote *remote;
	uint8_t sending_key[GW_KEY_LEN];
	uint8_t receiving_key[GW_KEY_LEN];
	/* Next counter to send with; take it through gwd_noise_keypair_next_counter(). */
	uint64_t sending_counter;
	struct gwd_replay receiving_window;
	uint32_t local_index;  /* peers put it in key_idx of their data messages */
	uint32_t remote_index; /* we put it in key_idx of ours */
	uint64_t birth_ns;     /* monotonic */
	bool initiator;
	/* Initiator's keypairs at once; responder's on the peer's first data packet. */
	bool confirmed;
	/*
	 * Reserved for counter regions (session-sync.md): the epoch this node
	 * sends in, 0 = the creating process sending from counter 0 as plain
	 * WireGuard does. The core never sets it to anything else.
	 */
	uint16_t send_epoch;
	/* Reserved: greatest epoch known for this keypair cluster-wide. */
	uint16_t greatest_epoch;
	/*
	 * Session sync (cluster.c, session.c); the core leaves them alone.
	 * imported: the keypair came from another process, so this process
	 * never sends with it at epoch 0. rx_floor: a receive high-water mark
	 * replicated by another node and not yet applied to receiving_window
	 * (gwd_replay_set_floor costs O(window), so it is applied once, before
	 * the next counter this node checks).
	 */
	bool imported;
	uint64_t rx_floor;
};

struct gwd_noise_remote {
	struct gwd_noise_local *local;
	uint8_t public_key[GW_KEY_LEN];
	uint8_t psk[GW_KEY_LEN]; /* all zero when none, as the protocol specifies */
	/* DH(local static, remote static), valid for local->generation == ss_generation. */
	uint8_t static_static[GW_KEY_LEN];
	bool static_static_valid;
	uint64_t ss_generation;
	struct gwd_noise_handshake hs;
	struct gwd_noise_antireplay antireplay;
	struct gwd_noise_keypair *previous, *current, *next;
};

/*
 * Outcomes of the handshake steps, distinct per cause so the caller can count
 * and log them. Only GWD_NOISE_OK changes any state.
 */
enum gwd_noise_result {
	GWD_NOISE_OK = 0,
	GWD_NOISE_BAD_MESSAGE,	 /* wrong type field */
	GWD_NOISE_NO_IDENTITY,	 /* local has no private key */
	GWD_NOISE_BAD_KEY,	 /* a DH gave all zeros: low-order public key */
	GWD_NOISE_BAD_STATIC,	 /* initiation: static key did not decrypt (not for us or forged) */
	GWD_NOISE_UNKNOWN_PEER,	 /* initiation: static key of no configured peer */
	GWD_NOISE_BAD_TIMESTAMP, /* initiation: timestamp did not decrypt (forged or tampered) */
	GWD_NOISE_REPLAY,	 /* initiation: timestamp not after the greatest accepted */
	GWD_NOISE_FLOOD, /* initiation: within GWD_INITIATION_MIN_INTERVAL_MS of the last accepted
			  */
	GWD_NOISE_BAD_STATE,	/* no handshake in the state this step needs, or index mismatch */
	GWD_NOISE_BAD_RESPONSE, /* response: did not authenticate (tampered, other PSK) */
	GWD_NOISE_INDEX_FAILED, /* index_alloc failed */
	GWD_NOISE_NOMEM,
};

/* A short constant name for logs ("replay", "unknown peer", ...). */
const char *gwd_noise_result_str(enum gwd_noise_result res);

/*
 * Prepares l with no identity. The upcalls are copied; all but
 * ephemeral_generate are required. 0, -EINVAL or -ENOMEM.
 */
int gwd_noise_local_init(struct gwd_noise_local *l, const struct gw_clock *clock,
			 const struct gwd_noise_upcalls *up);
/* Wipes and frees the identity. Remotes must be destroyed first. */
void gwd_noise_local_destroy(struct gwd_noise_local *l);
/*
 * Sets the static private key (clamped on the way in); NULL or all zeros
 * removes the identity. Remotes recompute their static-static DH on their
 * next handshake; the caller decides what to do with live sessions (the
 * kernel expires them: gwd_noise_remote_expire_current). 0, or -EINVAL when
 * the key has no usable public key (the old identity is then kept).
 */
int gwd_noise_local_set_private_key(struct gwd_noise_local *l, const uint8_t *priv);

/*
 * Prepares r for the peer with static public key pub and preshared key psk
 * (NULL: none). r must stay at the same address while it is in use.
 */
void gwd_noise_remote_init(struct gwd_noise_remote *r, struct gwd_noise_local *l,
			   const uint8_t pub[static GW_KEY_LEN], const uint8_t *psk);
/* NULL or all zeros: none. Takes effect from the next handshake. */
void gwd_noise_remote_set_psk(struct gwd_noise_remote *r, const uint8_t *psk);
/*
 * Drops the handshake in progress and every keypair (freeing their indexes);
 * keeps the identity, PSK and antireplay state. For instance when no
 * handshake has completed for REJECT_AFTER_TIME * 3.
 */
void gwd_noise_remote_clear(struct gwd_noise_remote *r);
/* remote_clear, then wipes all of r. */
void gwd_noise_remote_destroy(struct gwd_noise_remote *r);
/*
 * Stops sending with current and next (their counters jump to the end) and
 * drops the handshake in progress; receiving still works until they expire.
 */
void gwd_noise_remote_expire_current(struct gwd_noise_remote *r);

/*
 * Initiator, first message: writes msg (macs zero) and moves r's handshake to
 * CREATED_INITIATION under a new index, abandoning any handshake in progress.
 */
enum gwd_noise_result gwd_noise_create_initiation(struct gwd_noise_remote *r,
						  struct gwd_message_handshake_initiation *msg);
/*
 * Responder: authenticates msg (macs already checked), finds its remote
 * through remote_by_pubkey and, when the timestamp is newer than any before
 * and the last accepted initiation is old enough, moves that remote's
 * handshake to CONSUMED_INITIATION. *out is the remote on GWD_NOISE_OK and
 * also on GWD_NOISE_REPLAY and GWD_NOISE_FLOOD (authenticated, so the caller
 * can count them per peer); NULL otherwise.
 */
enum gwd_noise_result
gwd_noise_consume_initiation(struct gwd_noise_local *l,
			     const struct gwd_message_handshake_initiation *msg,
			     struct gwd_noise_remote **out);
/* Responder, second message: needs CONSUMED_INITIATION; allocates the index. */
enum gwd_noise_result gwd_noise_create_response(struct gwd_noise_remote *r,
						struct gwd_message_handshake_response *msg);
/*
 * Initiator: r is the remote whose handshake the caller found under
 * msg->receiver_index; fails with GWD_NOISE_BAD_STATE unless r's handshake is
 * CREATED_INITIATION under exactly that index. A failure leaves the handshake
 * in progress untouched (a forged response cannot cancel it).
 */
enum gwd_noise_result gwd_noise_consume_response(struct gwd_noise_remote *r,
						 const struct gwd_message_handshake_response *msg);
/*
 * Derives the keypair of a completed handshake (CONSUMED_RESPONSE on the
 * initiator, CREATED_RESPONSE on the responder) and zeroes the handshake. The
 * handshake's index moves to the keypair. The initiator's keypair becomes
 * current at once (the old current becomes previous); the responder's goes to
 * next until gwd_noise_received_with_keypair() confirms it. Dropped keypairs
 * are freed with their indexes. *out (may be NULL) gets the new keypair.
 */
enum gwd_noise_result gwd_noise_begin_session(struct gwd_noise_remote *r,
					      struct gwd_noise_keypair **out);
/*
 * Call after a data packet authenticated under kp. When kp is r's next
 * keypair, it becomes current (and is confirmed), current becomes previous
 * and the old previous is freed; returns true then (the handshake has just
 * been confirmed: the caller may clear retransmission timers).
 */
bool gwd_noise_received_with_keypair(struct gwd_noise_remote *r, struct gwd_noise_keypair *kp);

/*
 * Takes the next sending counter of kp; false when kp may not send any more
 * (REJECT_AFTER_MESSAGES reached). The only place counters are handed out.
 */
bool gwd_noise_keypair_next_counter(struct gwd_noise_keypair *kp, uint64_t *counter);
/* True when kp is REJECT_AFTER_TIME old: neither send nor accept with it. */
bool gwd_noise_keypair_expired(const struct gwd_noise_keypair *kp, uint64_t now_ns);
/*
 * True when sending with kp should start a new handshake: REKEY_AFTER_MESSAGES
 * sent, or the initiator's keypair is REKEY_AFTER_TIME old.
 */
bool gwd_noise_keypair_should_rekey_on_send(const struct gwd_noise_keypair *kp, uint64_t now_ns);
/*
 * True when receiving with kp should start a new handshake: the initiator's
 * keypair is within KEEPALIVE_TIMEOUT + REKEY_TIMEOUT of REJECT_AFTER_TIME.
 */
bool gwd_noise_keypair_should_rekey_on_receive(const struct gwd_noise_keypair *kp, uint64_t now_ns);

/* dst = max(dst, src) field by field; commutative, idempotent. */
void gwd_noise_antireplay_merge(struct gwd_noise_antireplay *dst,
				const struct gwd_noise_antireplay *src);

#endif
