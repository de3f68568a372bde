/* SPDX-License-Identifier: MIT */
/*
 * syncd's node-to-node transport: ZeroMQ over TCP, CurveZMQ on every socket,
 * a ZAP handler that admits only the configured members' keys, and protobuf
 * Envelopes (proto/gwcluster.proto) as the only payload.
 *
 * Sockets of node N (port P from the config):
 *   PUB    bound on P     N's own stream: Updates (with seq), Heartbeats, Sessions
 *   ROUTER bound on P + 1 requests to N (snapshot, repair) and N's replies to them
 *   per remote member M:
 *     SUB    connected to M's PUB   (knows M's server key: only M can feed it)
 *     DEALER connected to M's ROUTER
 * So every received Envelope comes with the node id of the member it came
 * from, established cryptographically (the SUB/DEALER's server key, or the
 * ZAP-authenticated client key on ROUTER), and the Envelope's origin must
 * equal it. An Envelope that fails to unpack, carries an unknown version,
 * another cluster's name or an origin that is not its sender is dropped,
 * counted by cause and logged with a rate limit; nothing else happens.
 *
 * Integration with the gw_loop: ZMQ_FD is edge-triggered, so the transport
 * drains every socket whenever its fd fires and on a short safety timer.
 * Single-threaded except the ZAP handler, which runs on its own thread with
 * a read-only copy of the member keys.
 */
#ifndef SYNCD_TRANSPORT_H
#define SYNCD_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gw/loop.h"
#include "gwcluster.pb-c.h"

enum {
	SYNCD_CURVE_KEY_LEN = 32,
	SYNCD_MAX_MEMBERS = 255,
	SYNCD_PROTO_VERSION = 1,
	/* An Envelope larger than this is refused before unpacking. */
	SYNCD_MAX_MESSAGE = 64 << 20,
};

struct syncd_member {
	uint8_t node_id; /* 1..255 */
	char host[64];	 /* numeric IPv4 or IPv6 address */
	uint16_t port;	 /* PUB port; ROUTER is port + 1 */
	uint8_t curve_public[SYNCD_CURVE_KEY_LEN];
};

struct syncd_transport_config {
	const char *cluster;   /* cluster name, checked on every Envelope */
	uint8_t node_id;       /* this node; must be one of members[] */
	const char *bind_host; /* address to bind PUB and ROUTER on; NULL: this member's host */
	uint8_t curve_secret[SYNCD_CURVE_KEY_LEN]; /* this node's Curve secret key */
	const struct syncd_member *members;	   /* every member, this node included */
	unsigned n_members;
	unsigned heartbeat_ms; /* ZMTP heartbeats for dead-connection detection */
};

/* Where an Envelope arrived. */
enum syncd_channel {
	SYNCD_CHANNEL_STREAM,  /* from the sender's PUB: its own stream */
	SYNCD_CHANNEL_REQUEST, /* on our ROUTER: a request from the sender */
	SYNCD_CHANNEL_REPLY,   /* on our DEALER to the sender: its reply to us */
};

/*
 * Called for each valid Envelope. env is freed when the callback returns
 * (unpack a copy or take what you need: it was unpacked with
 * gw_pbwipe_allocator, so a submessage may be taken out, its pointer set to
 * NULL, and freed later with that allocator). from is the authenticated
 * sender.
 * Runs only from the gw_loop (the transport's fd and timer callbacks), never
 * from inside publish/request/reply; it may call those three, but must not
 * close the transport.
 */
typedef void syncd_envelope_fn(void *arg, uint8_t from, enum syncd_channel ch,
			       Gwcluster__Envelope *env);

/* Counters of refused input, by cause. */
struct syncd_transport_stats {
	uint64_t rx_messages;	     /* Envelopes passed to the callback */
	uint64_t tx_messages;	     /* Envelopes handed to libzmq */
	uint64_t rejected_malformed; /* protobuf did not unpack or missing body */
	uint64_t rejected_version;
	uint64_t rejected_cluster;
	uint64_t rejected_origin; /* origin is not the authenticated sender */
	uint64_t rejected_oversize;
	/* A client key that is no other member's; read from the ZAP thread
	 * whenever the transport drains (every few tens of ms). */
	uint64_t zap_denied;
	/* CURVE handshakes that failed, and connections dropped for a box that
	 * failed its MAC (tampering) or another ZMTP protocol error (monitor events) */
	uint64_t handshake_failed;
};

struct syncd_transport;

/*
 * Creates the context, ZAP handler and sockets, binds and connects (ZeroMQ
 * connects in the background and reconnects by itself). 0 or -errno:
 * -EINVAL for a bad config, -EADDRINUSE when the ports are taken.
 */
int syncd_transport_open(struct syncd_transport **out, const struct syncd_transport_config *cfg,
			 struct gw_loop *loop, syncd_envelope_fn *fn, void *arg);
/* Closes every socket (linger bounded) and joins the ZAP thread. */
void syncd_transport_close(struct syncd_transport *t);

/*
 * The three senders never block and never call the callback. Each stamps
 * version, origin and cluster into env (env->cluster then points into t)
 * and packs it: -EINVAL without a body or with a required field unset,
 * -EMSGSIZE above SYNCD_MAX_MESSAGE.
 */
/* Stamps version, origin and cluster into env, packs it and publishes it on PUB. 0 or -errno.
 * A member that is down, or whose queue is full, misses it without an error:
 * receivers repair gaps in the sequence numbers. */
int syncd_transport_publish(struct syncd_transport *t, Gwcluster__Envelope *env);
/* Sends a request to member `to` through the DEALER connected to it. 0 or -errno:
 * -EINVAL for ourselves or a non-member, -ENOTCONN while no authenticated
 * connection to `to` is up (nothing is queued for later), -EAGAIN to retry
 * later. A request or its reply may be lost: retry on a timeout. */
int syncd_transport_request(struct syncd_transport *t, uint8_t to, Gwcluster__Envelope *env);
/* Answers a request that came from `to` on our ROUTER. 0, -ENOTCONN or -errno.
 * Goes to the connection that carried `to`'s latest request; -ENOTCONN if
 * none did or it is gone, -EAGAIN when its queue is full. */
int syncd_transport_reply(struct syncd_transport *t, uint8_t to, Gwcluster__Envelope *env);

const struct syncd_transport_stats *syncd_transport_stats(const struct syncd_transport *t);

/* How a received Envelope fared in the checks that precede the callback. */
enum syncd_envelope_verdict {
	SYNCD_ENVELOPE_OK,
	SYNCD_ENVELOPE_OVERSIZE,  /* more than SYNCD_MAX_MESSAGE bytes */
	SYNCD_ENVELOPE_MALFORMED, /* did not unpack, or has no body */
	SYNCD_ENVELOPE_VERSION,
	SYNCD_ENVELOPE_CLUSTER,
	SYNCD_ENVELOPE_ORIGIN, /* origin is not `from` */
};

/*
 * The transport's receive check on len bytes from the authenticated member
 * `from` (exposed for the fuzzer). On SYNCD_ENVELOPE_OK *out is the Envelope,
 * unpacked with gw_pbwipe_allocator: free it with
 * gwcluster__envelope__free_unpacked(*out, &gw_pbwipe_allocator) to wipe it
 * (NULL frees it too, unwiped); otherwise *out is NULL.
 */
enum syncd_envelope_verdict syncd_envelope_unpack_checked(const uint8_t *buf, size_t len,
							  const char *cluster, uint8_t from,
							  Gwcluster__Envelope **out);

/* Curve keys in Z85 (40 characters), as curve_keygen and `gwctl genkey --curve` print them. */
int syncd_curve_keypair(uint8_t public_key[static SYNCD_CURVE_KEY_LEN],
			uint8_t secret_key[static SYNCD_CURVE_KEY_LEN]);
int syncd_curve_public(uint8_t public_key[static SYNCD_CURVE_KEY_LEN],
		       const uint8_t secret_key[static SYNCD_CURVE_KEY_LEN]);
int syncd_z85_decode_key(uint8_t key[static SYNCD_CURVE_KEY_LEN], const char *z85);
void syncd_z85_encode_key(char out[static 41], const uint8_t key[static SYNCD_CURVE_KEY_LEN]);

#endif
