/* SPDX-License-Identifier: MIT */
/*
 * WireGuard wire formats and protocol constants, in one place.
 *
 * Sources: the WireGuard paper (sections 5.4 "Messages" and 6 "Timers and
 * Stateless UX", table of constants in 6.1) and https://www.wireguard.com/protocol/.
 * Every multi-byte integer on the wire is little endian; the structs below
 * are packed so that they can be laid over any received buffer, and their
 * sizes and offsets are checked at compile time against the specification.
 */
#ifndef GWD_MESSAGES_H
#define GWD_MESSAGES_H

#include <endian.h>
#include <stddef.h>
#include <stdint.h>

#include "gw/clock.h"
#include "gw/crypto.h"

/* Primitive sizes of Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s as WireGuard uses it. */
enum gwd_noise_lengths {
	GWD_NOISE_PUBLIC_KEY_LEN = GW_KEY_LEN,
	GWD_NOISE_SYMMETRIC_KEY_LEN = GW_KEY_LEN,
	GWD_NOISE_HASH_LEN = GW_HASH_LEN,
	GWD_NOISE_TIMESTAMP_LEN = GW_TAI64N_LEN,
	GWD_NOISE_AUTHTAG_LEN = GW_AEAD_TAG_LEN,
};

/* AEAD ciphertext length of a plaintext of plain_len bytes. */
#define GWD_NOISE_ENCRYPTED_LEN(plain_len) ((plain_len) + GWD_NOISE_AUTHTAG_LEN)

/* The cookie mechanism (paper 5.4.7, protocol page "Cookie MACs"). */
enum gwd_cookie_values {
	GWD_COOKIE_SECRET_MAX_AGE = 2 * 60, /* s: a responder's cookie secret lives this long */
	GWD_COOKIE_SECRET_LATENCY = 5,	    /* s: an initiator stops using a cookie this early */
	GWD_COOKIE_NONCE_LEN = GW_XAEAD_NONCE_LEN,
	GWD_COOKIE_LEN = GW_MAC_LEN,
	GWD_COOKIE_MAC_LEN = GW_MAC_LEN, /* mac1 and mac2: keyed BLAKE2s-128 */
};

/* Timers (paper 6.1), in seconds unless the name says otherwise. */
enum gwd_timer_values {
	GWD_REKEY_AFTER_TIME = 120,
	GWD_REJECT_AFTER_TIME = 180,
	GWD_REKEY_ATTEMPT_TIME = 90,
	GWD_REKEY_TIMEOUT = 5,
	GWD_KEEPALIVE_TIMEOUT = 10,
	/* Retries of one handshake before giving up for REKEY_ATTEMPT_TIME. */
	GWD_MAX_TIMER_HANDSHAKES = GWD_REKEY_ATTEMPT_TIME / GWD_REKEY_TIMEOUT,
	/* Random extra delay added to each REKEY_TIMEOUT (the kernel uses HZ / 3). */
	GWD_REKEY_TIMEOUT_JITTER_MAX_MS = 333,
	/* A responder accepts at most this many initiations per second from one peer. */
	GWD_INITIATIONS_PER_SECOND = 50,
	GWD_INITIATION_MIN_INTERVAL_MS = 1000 / GWD_INITIATIONS_PER_SECOND,
};

/* Message counts (paper 6.1); 64-bit, so macros rather than enum constants. */
#define GWD_REKEY_AFTER_MESSAGES  (UINT64_C(1) << 60)
#define GWD_REJECT_AFTER_MESSAGES (UINT64_MAX - (UINT64_C(1) << 13)) /* 2^64 - 2^13 - 1 */

/* Conversions of the constants above to monotonic nanoseconds. */
#define GWD_SEC_NS(s)  ((uint64_t)(s)*GW_NSEC_PER_SEC)
#define GWD_MSEC_NS(m) ((uint64_t)(m)*GW_NSEC_PER_MSEC)

enum gwd_message_type {
	GWD_MESSAGE_INVALID = 0,
	GWD_MESSAGE_HANDSHAKE_INITIATION = 1,
	GWD_MESSAGE_HANDSHAKE_RESPONSE = 2,
	GWD_MESSAGE_HANDSHAKE_COOKIE = 3,
	GWD_MESSAGE_DATA = 4,
};

/*
 * On the wire: u8 type, u8 reserved_zero[3]. Read as one little-endian
 * 32-bit word, a valid header equals its type, so one comparison checks both.
 */
struct __attribute__((packed)) gwd_message_header {
	uint32_t type; /* little endian */
};

struct __attribute__((packed)) gwd_message_macs {
	uint8_t mac1[GWD_COOKIE_MAC_LEN];
	uint8_t mac2[GWD_COOKIE_MAC_LEN];
};

struct __attribute__((packed)) gwd_message_handshake_initiation {
	struct gwd_message_header header;
	uint32_t sender_index; /* little endian */
	uint8_t unencrypted_ephemeral[GWD_NOISE_PUBLIC_KEY_LEN];
	uint8_t encrypted_static[GWD_NOISE_ENCRYPTED_LEN(GWD_NOISE_PUBLIC_KEY_LEN)];
	uint8_t encrypted_timestamp[GWD_NOISE_ENCRYPTED_LEN(GWD_NOISE_TIMESTAMP_LEN)];
	struct gwd_message_macs macs;
};

struct __attribute__((packed)) gwd_message_handshake_response {
	struct gwd_message_header header;
	uint32_t sender_index;	 /* little endian */
	uint32_t receiver_index; /* little endian */
	uint8_t unencrypted_ephemeral[GWD_NOISE_PUBLIC_KEY_LEN];
	uint8_t encrypted_nothing[GWD_NOISE_ENCRYPTED_LEN(0)];
	struct gwd_message_macs macs;
};

struct __attribute__((packed)) gwd_message_handshake_cookie {
	struct gwd_message_header header;
	uint32_t receiver_index; /* little endian: the sender_index of the message answered */
	uint8_t nonce[GWD_COOKIE_NONCE_LEN];
	uint8_t encrypted_cookie[GWD_NOISE_ENCRYPTED_LEN(GWD_COOKIE_LEN)];
};

struct __attribute__((packed)) gwd_message_data {
	struct gwd_message_header header;
	uint32_t key_idx; /* little endian: the receiver's index of the keypair */
	uint64_t counter; /* little endian: the AEAD nonce */
	uint8_t encrypted_data[];
};

enum gwd_message_lengths {
	GWD_MESSAGE_INITIATION_LEN = 148,
	GWD_MESSAGE_RESPONSE_LEN = 92,
	GWD_MESSAGE_COOKIE_LEN = 64,
	GWD_MESSAGE_DATA_HEADER_LEN = 16,
	/* A keepalive: a data message with no payload. */
	GWD_MESSAGE_DATA_MIN_LEN = GWD_MESSAGE_DATA_HEADER_LEN + GWD_NOISE_AUTHTAG_LEN,
	/* Plaintext of data messages is zero-padded to a multiple of this. */
	GWD_MESSAGE_PADDING_MULTIPLE = 16,
};

#define GWD_MESSAGE_DATA_LEN(plain_len) \
	(GWD_MESSAGE_DATA_HEADER_LEN + GWD_NOISE_ENCRYPTED_LEN(plain_len))

_Static_assert(sizeof(struct gwd_message_handshake_initiation) == GWD_MESSAGE_INITIATION_LEN,
	       "initiation is 148 bytes");
_Static_assert(sizeof(struct gwd_message_handshake_response) == GWD_MESSAGE_RESPONSE_LEN,
	       "response is 92 bytes");
_Static_assert(sizeof(struct gwd_message_handshake_cookie) == GWD_MESSAGE_COOKIE_LEN,
	       "cookie reply is 64 bytes");
_Static_assert(sizeof(struct gwd_message_data) == GWD_MESSAGE_DATA_HEADER_LEN,
	       "data header is 16 bytes");
_Static_assert(offsetof(struct gwd_message_handshake_initiation, unencrypted_ephemeral) == 8 &&
		   offsetof(struct gwd_message_handshake_initiation, encrypted_static) == 40 &&
		   offsetof(struct gwd_message_handshake_initiation, encrypted_timestamp) == 88 &&
		   offsetof(struct gwd_message_handshake_initiation, macs) == 116,
	       "initiation layout");
_Static_assert(offsetof(struct gwd_message_handshake_response, unencrypted_ephemeral) == 12 &&
		   offsetof(struct gwd_message_handshake_response, encrypted_nothing) == 44 &&
		   offsetof(struct gwd_message_handshake_response, macs) == 60,
	       "response layout");
_Static_assert(offsetof(struct gwd_message_handshake_cookie, nonce) == 8 &&
		   offsetof(struct gwd_message_handshake_cookie, encrypted_cookie) == 32,
	       "cookie reply layout");
_Static_assert(offsetof(struct gwd_message_data, counter) == 8, "data layout");

/*
 * The type of a received UDP payload, or GWD_MESSAGE_INVALID when the header
 * (type and reserved bytes) or the length does not fit that type: handshake
 * messages have one exact length, data messages at least a tag.
 */
static inline enum gwd_message_type gwd_message_type_of(const void *pkt, size_t len)
{
	const struct gwd_message_header *h = pkt;

	if (len < sizeof(*h))
		return GWD_MESSAGE_INVALID;
	switch (le32toh(h->type)) {
	case GWD_MESSAGE_HANDSHAKE_INITIATION:
		if (len == GWD_MESSAGE_INITIATION_LEN)
			return GWD_MESSAGE_HANDSHAKE_INITIATION;
		break;
	case GWD_MESSAGE_HANDSHAKE_RESPONSE:
		if (len == GWD_MESSAGE_RESPONSE_LEN)
			return GWD_MESSAGE_HANDSHAKE_RESPONSE;
		break;
	case GWD_MESSAGE_HANDSHAKE_COOKIE:
		if (len == GWD_MESSAGE_COOKIE_LEN)
			return GWD_MESSAGE_HANDSHAKE_COOKIE;
		break;
	case GWD_MESSAGE_DATA:
		if (len >= GWD_MESSAGE_DATA_MIN_LEN)
			return GWD_MESSAGE_DATA;
		break;
	}
	return GWD_MESSAGE_INVALID;
}

#endif
