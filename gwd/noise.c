// SPDX-License-Identifier: MIT
/*
 * Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s as WireGuard uses it (paper 5.4,
 * https://www.wireguard.com/protocol/):
 *
 *   IK:
 *     <- s
 *     ...
 *     -> e, es, s, ss     initiation: ephemeral, encrypted static, encrypted TAI64N
 *     <- e, ee, se, psk   response: ephemeral, encrypted empty payload
 *
 * Each step keeps a chaining key ck (KDF input) and a transcript hash h (AD
 * of every AEAD). The transport keys are KDF2(ck, empty): the initiator sends
 * with the first, the responder with the second.
 */
#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "noise.h"

static const char construction[] = "Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s";
static const char identifier[] = "WireGuard v1 zx2c4 Jason@zx2c4.com";

/*
 * TAI64N labels we send are rounded down to a multiple of this, so they do
 * not reveal our clock finely; it is the largest power of two below the
 * minimum interval between initiations a responder accepts (20 ms), as the
 * kernel and wireguard-go do.
 */
enum { TIMESTAMP_WHITENING_NS = 1 << 24 };
_Static_assert(TIMESTAMP_WHITENING_NS <= GWD_MSEC_NS(GWD_INITIATION_MIN_INTERVAL_MS),
	       "whitening must keep initiations distinguishable");

static const char *const result_names[] = {
    [GWD_NOISE_OK] = "ok",
    [GWD_NOISE_BAD_MESSAGE] = "bad message",
    [GWD_NOISE_NO_IDENTITY] = "no identity",
    [GWD_NOISE_BAD_KEY] = "bad public key",
    [GWD_NOISE_BAD_STATIC] = "bad static",
    [GWD_NOISE_UNKNOWN_PEER] = "unknown peer",
    [GWD_NOISE_BAD_TIMESTAMP] = "bad timestamp",
    [GWD_NOISE_REPLAY] = "replay",
    [GWD_NOISE_FLOOD] = "flood",
    [GWD_NOISE_BAD_STATE] = "bad state",
    [GWD_NOISE_BAD_RESPONSE] = "bad response",
    [GWD_NOISE_INDEX_FAILED] = "index allocation failed",
    [GWD_NOISE_NOMEM] = "out of memory",
};

const char *gwd_noise_result_str(enum gwd_noise_result res)
{
	if ((size_t)res < sizeof(result_names) / sizeof(result_names[0]) && result_names[res])
		return result_names[res];
	return "unknown";
}

/* h = HASH(h || in) */
static void mix_hash(uint8_t h[static GW_HASH_LEN], const void *in, size_t len)
{
	struct gw_blake2s s;

	gw_blake2s_init(&s, GW_HASH_LEN, NULL, 0);
	gw_blake2s_update(&s, h, GW_HASH_LEN);
	gw_blake2s_update(&s, in, len);
	gw_blake2s_final(&s, h, GW_HASH_LEN);
}

/* ck = KDF1(ck, in) */
static void mix_key(uint8_t ck[static GW_HASH_LEN], const void *in, size_t len)
{
	gw_kdf(ck, NULL, NULL, ck, in, len);
}

/* ck, key = KDF2(ck, DH(priv, pub)); key may be NULL (KDF1). False on a zero DH. */
static bool mix_dh(uint8_t ck[static GW_HASH_LEN], uint8_t *key,
		   const uint8_t priv[static GW_KEY_LEN], const uint8_t pub[static GW_KEY_LEN])
{
	uint8_t dh[GW_KEY_LEN];
	bool ok = gw_x25519(dh, priv, pub);

	if (ok)
		gw_kdf(ck, key, NULL, ck, dh, sizeof(dh));
	gw_wipe(dh, sizeof(dh));
	return ok;
}

/* ck, tau, key = KDF3(ck, psk); h = HASH(h || tau) */
static void mix_psk(uint8_t ck[static GW_HASH_LEN], uint8_t h[static GW_HASH_LEN],
		    uint8_t key[static GW_KEY_LEN], const uint8_t psk[static GW_KEY_LEN])
{
	uint8_t tau[GW_HASH_LEN];

	gw_kdf(ck, tau, key, ck, psk, GW_KEY_LEN);
	mix_hash(h, tau, sizeof(tau));
	gw_wipe(tau, sizeof(tau));
}

/* dst = AEAD(key, 0, src, h); h = HASH(h || dst) */
static void message_encrypt(uint8_t *dst, const uint8_t *src, size_t len,
			    const uint8_t key[static GW_KEY_LEN], uint8_t h[static GW_HASH_LEN])
{
	gw_aead_encrypt(dst, src, len, h, GW_HASH_LEN, 0, key);
	mix_hash(h, dst, GWD_NOISE_ENCRYPTED_LEN(len));
}

/* dst = AEAD-open(key, 0, src, h); h = HASH(h || src) on success. */
static bool message_decrypt(uint8_t *dst, const uint8_t *src, size_t srclen,
			    const uint8_t key[static GW_KEY_LEN], uint8_t h[static GW_HASH_LEN])
{
	if (!gw_aead_decrypt(dst, src, srclen, h, GW_HASH_LEN, 0, key))
		return false;
	mix_hash(h, src, srclen);
	return true;
}

static bool key_is_zero(const uint8_t key[static GW_KEY_LEN])
{
	static const uint8_t zero[GW_KEY_LEN];

	return gw_memeq(key, zero, GW_KEY_LEN);
}

static void new_ephemeral(const struct gwd_noise_local *l, uint8_t priv[static GW_KEY_LEN])
{
	if (l->up.ephemeral_generate)
		l->up.ephemeral_generate(l->up.arg, priv);
	else
		gw_x25519_generate(priv);
}

static uint64_t mono_now(const struct gwd_noise_local *l)
{
	return gw_clock_mono_ns(l->clock);
}

int gwd_noise_local_init(struct gwd_noise_local *l, const struct gw_clock *clock,
			 const struct gwd_noise_upcalls *up)
{
	if (!clock || !up || !up->remote_by_pubkey || !up->index_alloc || !up->index_to_keypair ||
	    !up->index_free)
		return -EINVAL;
	memset(l, 0, sizeof(*l));
	l->private_key = gw_secret_alloc(GW_KEY_LEN);
	if (!l->private_key)
		return -ENOMEM;
	l->clock = clock;
	l->up = *up;
	gw_blake2s(l->initial_chaining_key, GW_HASH_LEN, construction, strlen(construction), NULL,
		   0);
	memcpy(l->initial_hash, l->initial_chaining_key, GW_HASH_LEN);
	mix_hash(l->initial_hash, identifier, strlen(identifier));
	return 0;
}

void gwd_noise_local_destroy(struct gwd_noise_local *l)
{
	gw_secret_free(l->private_key);
	gw_wipe(l, sizeof(*l));
}

int gwd_noise_local_set_private_key(struct gwd_noise_local *l, const uint8_t *priv)
{
	uint8_t pub[GW_KEY_LEN];

	if (!priv || key_is_zero(priv)) {
		gw_wipe(l->private_key, GW_KEY_LEN);
		memset(l->public_key, 0, GW_KEY_LEN);
		memset(l->responder_hash, 0, GW_HASH_LEN);
		l->has_identity = false;
		l->generation++;
		return 0;
	}
	if (!gw_x25519_public(pub, priv))
		return -EINVAL;
	memcpy(l->private_key, priv, GW_KEY_LEN);
	gw_x25519_clamp(l->private_key);
	memcpy(l->public_key, pub, GW_KEY_LEN);
	memcpy(l->responder_hash, l->initial_hash, GW_HASH_LEN);
	mix_hash(l->responder_hash, pub, GW_KEY_LEN);
	l->has_identity = true;
	l->generation++;
	return 0;
}

/* True when r's static-static DH is usable, recomputing it after a key change. */
static bool static_static_ready(struct gwd_noise_remote *r)
{
	struct gwd_noise_local *l = r->local;

	if (r->ss_generation != l->generation) {
		r->static_static_valid =
		    l->has_identity && gw_x25519(r->static_static, l->private_key, r->public_key);
		if (!r->static_static_valid)
			gw_wipe(r->static_static, GW_KEY_LEN);
		r->ss_generation = l->generation;
	}
	return r->static_static_valid;
}

void gwd_noise_remote_init(struct gwd_noise_remote *r, struct gwd_noise_local *l,
			   const uint8_t pub[static GW_KEY_LEN], const uint8_t *psk)
{
	memset(r, 0, sizeof(*r));
	r->local = l;
	memcpy(r->public_key, pub, GW_KEY_LEN);
	gwd_noise_remote_set_psk(r, psk);
	r->ss_generation = l->generation - 1; /* computed on first use */
}

void gwd_noise_remote_set_psk(struct gwd_noise_remote *r, const uint8_t *psk)
{
	if (psk)
		memcpy(r->psk, psk, GW_KEY_LEN);
	else
		gw_wipe(r->psk, GW_KEY_LEN);
}

/* Abandons the handshake in progress: frees its index, wipes its secrets. */
static void handshake_zero(struct gwd_noise_remote *r)
{
	struct gwd_noise_local *l = r->local;

	if (r->hs.has_local_index)
		l->up.index_free(l->up.arg, r->hs.local_index);
	gw_wipe(&r->hs, sizeof(r->hs));
	r->hs.state = GWD_NOISE_HANDSHAKE_ZEROED;
}

static void keypair_free(struct gwd_noise_local *l, struct gwd_noise_keypair *kp)
{
	if (!kp)
		return;
	l->up.index_free(l->up.arg, kp->local_index);
	gw_wipe(kp, sizeof(*kp));
	free(kp);
}

void gwd_noise_remote_clear(struct gwd_noise_remote *r)
{
	handshake_zero(r);
	keypair_free(r->local, r->previous);
	keypair_free(r->local, r->current);
	keypair_free(r->local, r->next);
	r->previous = r->current = r->next = NULL;
}

void gwd_noise_remote_destroy(struct gwd_noise_remote *r)
{
	gwd_noise_remote_clear(r);
	gw_wipe(r, sizeof(*r));
}

void gwd_noise_remote_expire_current(struct gwd_noise_remote *r)
{
	handshake_zero(r);
	if (r->current)
		r->current->sending_counter = GWD_REJECT_AFTER_MESSAGES;
	if (r->next)
		r->next->sending_counter = GWD_REJECT_AFTER_MESSAGES;
}

static uint32_t get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put_be32(uint8_t *p, uint32_t v)
{
	p[0] = v >> 24;
	p[1] = v >> 16;
	p[2] = v >> 8;
	p[3] = v;
}

/* ts += 1 ns (TAI64N: 8 bytes of seconds, then 4 of nanoseconds, big endian). */
static void tai64n_add_1ns(uint8_t ts[static GW_TAI64N_LEN])
{
	uint32_t nsec = get_be32(ts + 8) + 1;
	int i;

	if (nsec < GW_NSEC_PER_SEC) {
		put_be32(ts + 8, nsec);
		return;
	}
	put_be32(ts + 8, 0);
	for (i = 7; i >= 0 && ++ts[i] == 0; i--)
		;
}

/* The timestamp of a new initiation to r: max(whitened now, greatest_sent + 1 ns). */
static void next_timestamp(struct gwd_noise_remote *r, uint8_t ts[static GW_TAI64N_LEN])
{
	struct timespec now;

	gw_clock_real(r->local->clock, &now);
	now.tv_nsec -= now.tv_nsec % TIMESTAMP_WHITENING_NS;
	gw_tai64n_from_timespec(ts, &now);
	if (gw_tai64n_cmp(ts, r->antireplay.greatest_sent) <= 0) {
		memcpy(ts, r->antireplay.greatest_sent, GW_TAI64N_LEN);
		tai64n_add_1ns(ts);
	}
}

/* -> e, es, s, ss: fills the Noise part of msg and r's handshake state. */
static enum gwd_noise_result initiation_build(struct gwd_noise_remote *r,
					      struct gwd_message_handshake_initiation *msg,
					      const uint8_t ts[static GW_TAI64N_LEN])
{
	struct gwd_noise_local *l = r->local;
	struct gwd_noise_handshake *hs = &r->hs;
	uint8_t key[GW_KEY_LEN];
	enum gwd_noise_result ret = GWD_NOISE_BAD_KEY;

	memcpy(hs->chaining_key, l->initial_chaining_key, GW_HASH_LEN);
	memcpy(hs->hash, l->initial_hash, GW_HASH_LEN);
	mix_hash(hs->hash, r->public_key, GW_KEY_LEN);

	new_ephemeral(l, hs->ephemeral_private);
	if (!gw_x25519_public(msg->unencrypted_ephemeral, hs->ephemeral_private))
		goto out;
	mix_hash(hs->hash, msg->unencrypted_ephemeral, GW_KEY_LEN);
	mix_key(hs->chaining_key, msg->unencrypted_ephemeral, GW_KEY_LEN);

	if (!mix_dh(hs->chaining_key, key, hs->ephemeral_private, r->public_key))
		goto out;
	message_encrypt(msg->encrypted_static, l->public_key, GW_KEY_LEN, key, hs->hash);

	gw_kdf(hs->chaining_key, key, NULL, hs->chaining_key, r->static_static, GW_KEY_LEN);
	message_encrypt(msg->encrypted_timestamp, ts, GW_TAI64N_LEN, key, hs->hash);
	ret = GWD_NOISE_OK;
out:
	gw_wipe(key, sizeof(key));
	return ret;
}

enum gwd_noise_result gwd_noise_create_initiation(struct gwd_noise_remote *r,
						  struct gwd_message_handshake_initiation *msg)
{
	struct gwd_noise_local *l = r->local;
	uint8_t ts[GW_TAI64N_LEN];
	uint32_t index;
	enum gwd_noise_result ret;

	if (!l->has_identity)
		return GWD_NOISE_NO_IDENTITY;
	if (!static_static_ready(r))
		return GWD_NOISE_BAD_KEY;
	handshake_zero(r);
	memset(msg, 0, sizeof(*msg));
	msg->header.type = htole32(GWD_MESSAGE_HANDSHAKE_INITIATION);

	next_timestamp(r, ts);
	ret = initiation_build(r, msg, ts);
	if (ret != GWD_NOISE_OK)
		goto fail;
	if (l->up.index_alloc(l->up.arg, r, &index) < 0) {
		ret = GWD_NOISE_INDEX_FAILED;
		goto fail;
	}
	msg->sender_index = htole32(index);
	r->hs.local_index = index;
	r->hs.has_local_index = true;
	r->hs.state = GWD_NOISE_HANDSHAKE_CREATED_INITIATION;
	memcpy(r->antireplay.greatest_sent, ts, GW_TAI64N_LEN);
	return GWD_NOISE_OK;
fail:
	handshake_zero(r);
	memset(msg, 0, sizeof(*msg));
	return ret;
}

/* Replay and flood checks of an authenticated initiation from r. */
static enum gwd_noise_result initiation_fresh(const struct gwd_noise_remote *r,
					      const uint8_t ts[static GW_TAI64N_LEN], uint64_t now)
{
	const struct gwd_noise_antireplay *ar = &r->antireplay;

	if (gw_tai64n_cmp(ts, ar->greatest_received) <= 0)
		return GWD_NOISE_REPLAY;
	if (ar->has_initiation &&
	    now < ar->last_initiation_ns + GWD_MSEC_NS(GWD_INITIATION_MIN_INTERVAL_MS))
		return GWD_NOISE_FLOOD;
	return GWD_NOISE_OK;
}

/* Installs a consumed initiation as r's handshake in progress. */
static void initiation_accept(struct gwd_noise_remote *r,
			      const struct gwd_message_handshake_initiation *msg,
			      const uint8_t h[static GW_HASH_LEN],
			      const uint8_t ck[static GW_HASH_LEN],
			      const uint8_t ts[static GW_TAI64N_LEN], uint64_t now)
{
	struct gwd_noise_handshake *hs = &r->hs;

	handshake_zero(r);
	memcpy(hs->hash, h, GW_HASH_LEN);
	memcpy(hs->chaining_key, ck, GW_HASH_LEN);
	memcpy(hs->remote_ephemeral, msg->unencrypted_ephemeral, GW_KEY_LEN);
	hs->remote_index = le32toh(msg->sender_index);
	hs->state = GWD_NOISE_HANDSHAKE_CONSUMED_INITIATION;
	memcpy(r->antireplay.greatest_received, ts, GW_TAI64N_LEN);
	r->antireplay.last_initiation_ns = now;
	r->antireplay.has_initiation = true;
}

enum gwd_noise_result
gwd_noise_consume_initiation(struct gwd_noise_local *l,
			     const struct gwd_message_handshake_initiation *msg,
			     struct gwd_noise_remote **out)
{
	uint8_t h[GW_HASH_LEN], ck[GW_HASH_LEN], key[GW_KEY_LEN];
	uint8_t s[GW_KEY_LEN], ts[GW_TAI64N_LEN];
	struct gwd_noise_remote *r = NULL;
	enum gwd_noise_result ret;
	uint64_t now;

	*out = NULL;
	if (le32toh(msg->header.type) != GWD_MESSAGE_HANDSHAKE_INITIATION)
		return GWD_NOISE_BAD_MESSAGE;
	if (!l->has_identity)
		return GWD_NOISE_NO_IDENTITY;

	memcpy(ck, l->initial_chaining_key, GW_HASH_LEN);
	memcpy(h, l->responder_hash, GW_HASH_LEN);
	mix_hash(h, msg->unencrypted_ephemeral, GW_KEY_LEN);
	mix_key(ck, msg->unencrypted_ephemeral, GW_KEY_LEN);

	ret = GWD_NOISE_BAD_KEY;
	if (!mix_dh(ck, key, l->private_key, msg->unencrypted_ephemeral))
		goto out;
	ret = GWD_NOISE_BAD_STATIC;
	if (!message_decrypt(s, msg->encrypted_static, sizeof(msg->encrypted_static), key, h))
		goto out;

	ret = GWD_NOISE_UNKNOWN_PEER;
	r = l->up.remote_by_pubkey(l->up.arg, s);
	if (!r)
		goto out;
	ret = GWD_NOISE_BAD_KEY;
	if (!static_static_ready(r))
		goto out;
	gw_kdf(ck, key, NULL, ck, r->static_static, GW_KEY_LEN);
	ret = GWD_NOISE_BAD_TIMESTAMP;
	if (!message_decrypt(ts, msg->encrypted_timestamp, sizeof(msg->encrypted_timestamp), key,
			     h))
		goto out;

	now = mono_now(l);
	ret = initiation_fresh(r, ts, now);
	if (ret == GWD_NOISE_OK)
		initiation_accept(r, msg, h, ck, ts, now);
	if (ret == GWD_NOISE_OK || ret == GWD_NOISE_REPLAY || ret == GWD_NOISE_FLOOD)
		*out = r;
out:
	gw_wipe(h, sizeof(h));
	gw_wipe(ck, sizeof(ck));
	gw_wipe(key, sizeof(key));
	return ret;
}

/* <- e, ee, se, psk: fills the Noise part of msg from r's consumed initiation. */
static enum gwd_noise_result response_build(struct gwd_noise_remote *r,
					    struct gwd_message_handshake_response *msg)
{
	struct gwd_noise_handshake *hs = &r->hs;
	uint8_t key[GW_KEY_LEN], nothing[1] = {0};
	enum gwd_noise_result ret = GWD_NOISE_BAD_KEY;

	new_ephemeral(r->local, hs->ephemeral_private);
	if (!gw_x25519_public(msg->unencrypted_ephemeral, hs->ephemeral_private))
		goto out;
	mix_hash(hs->hash, msg->unencrypted_ephemeral, GW_KEY_LEN);
	mix_key(hs->chaining_key, msg->unencrypted_ephemeral, GW_KEY_LEN);

	if (!mix_dh(hs->chaining_key, NULL, hs->ephemeral_private, hs->remote_ephemeral))
		goto out;
	if (!mix_dh(hs->chaining_key, NULL, hs->ephemeral_private, r->public_key))
		goto out;
	mix_psk(hs->chaining_key, hs->hash, key, r->psk);
	message_encrypt(msg->encrypted_nothing, nothing, 0, key, hs->hash);
	ret = GWD_NOISE_OK;
out:
	gw_wipe(hs->ephemeral_private, GW_KEY_LEN);
	gw_wipe(key, sizeof(key));
	return ret;
}

enum gwd_noise_result gwd_noise_create_response(struct gwd_noise_remote *r,
						struct gwd_message_handshake_response *msg)
{
	struct gwd_noise_local *l = r->local;
	uint32_t index;
	enum gwd_noise_result ret;

	if (r->hs.state != GWD_NOISE_HANDSHAKE_CONSUMED_INITIATION)
		return GWD_NOISE_BAD_STATE;
	memset(msg, 0, sizeof(*msg));
	msg->header.type = htole32(GWD_MESSAGE_HANDSHAKE_RESPONSE);
	msg->receiver_index = htole32(r->hs.remote_index);

	ret = response_build(r, msg);
	if (ret != GWD_NOISE_OK)
		goto fail;
	if (l->up.index_alloc(l->up.arg, r, &index) < 0) {
		ret = GWD_NOISE_INDEX_FAILED;
		goto fail;
	}
	msg->sender_index = htole32(index);
	r->hs.local_index = index;
	r->hs.has_local_index = true;
	r->hs.state = GWD_NOISE_HANDSHAKE_CREATED_RESPONSE;
	return GWD_NOISE_OK;
fail:
	handshake_zero(r);
	memset(msg, 0, sizeof(*msg));
	return ret;
}

enum gwd_noise_result gwd_noise_consume_response(struct gwd_noise_remote *r,
						 const struct gwd_message_handshake_response *msg)
{
	struct gwd_noise_local *l = r->local;
	struct gwd_noise_handshake *hs = &r->hs;
	uint8_t h[GW_HASH_LEN], ck[GW_HASH_LEN], key[GW_KEY_LEN], nothing[1];
	enum gwd_noise_result ret;

	if (le32toh(msg->header.type) != GWD_MESSAGE_HANDSHAKE_RESPONSE)
		return GWD_NOISE_BAD_MESSAGE;
	if (hs->state != GWD_NOISE_HANDSHAKE_CREATED_INITIATION || !hs->has_local_index ||
	    hs->local_index != le32toh(msg->receiver_index))
		return GWD_NOISE_BAD_STATE;
	if (!l->has_identity)
		return GWD_NOISE_NO_IDENTITY;

	memcpy(h, hs->hash, GW_HASH_LEN);
	memcpy(ck, hs->chaining_key, GW_HASH_LEN);
	mix_hash(h, msg->unencrypted_ephemeral, GW_KEY_LEN);
	mix_key(ck, msg->unencrypted_ephemeral, GW_KEY_LEN);

	ret = GWD_NOISE_BAD_KEY;
	if (!mix_dh(ck, NULL, hs->ephemeral_private, msg->unencrypted_ephemeral) ||
	    !mix_dh(ck, NULL, l->private_key, msg->unencrypted_ephemeral))
		goto out;
	mix_psk(ck, h, key, r->psk);
	ret = GWD_NOISE_BAD_RESPONSE;
	if (!message_decrypt(nothing, msg->encrypted_nothing, sizeof(msg->encrypted_nothing), key,
			     h))
		goto out;

	memcpy(hs->hash, h, GW_HASH_LEN);
	memcpy(hs->chaining_key, ck, GW_HASH_LEN);
	gw_wipe(hs->ephemeral_private, GW_KEY_LEN);
	hs->remote_index = le32toh(msg->sender_index);
	hs->state = GWD_NOISE_HANDSHAKE_CONSUMED_RESPONSE;
	ret = GWD_NOISE_OK;
out:
	gw_wipe(h, sizeof(h));
	gw_wipe(ck, sizeof(ck));
	gw_wipe(key, sizeof(key));
	return ret;
}

/* Slots a new keypair in, as the paper's 6.2 and the kernel rotate them. */
static void keypair_install(struct gwd_noise_remote *r, struct gwd_noise_keypair *kp)
{
	struct gwd_noise_local *l = r->local;

	if (kp->initiator) {
		/* An unconfirmed next is better than the old current as a fallback. */
		if (r->next) {
			keypair_free(l, r->previous);
			keypair_free(l, r->current);
			r->previous = r->next;
			r->next = NULL;
		} else {
			keypair_free(l, r->previous);
			r->previous = r->current;
		}
		r->current = kp;
	} else {
		keypair_free(l, r->next);
		r->next = kp;
		/* Wait for confirmation with only current as fallback. */
		keypair_free(l, r->previous);
		r->previous = NULL;
	}
}

enum gwd_noise_result gwd_noise_begin_session(struct gwd_noise_remote *r,
					      struct gwd_noise_keypair **out)
{
	struct gwd_noise_local *l = r->local;
	struct gwd_noise_handshake *hs = &r->hs;
	static const uint8_t empty[1];
	struct gwd_noise_keypair *kp;
	bool initiator;

	if (out)
		*out = NULL;
	if (hs->state == GWD_NOISE_HANDSHAKE_CONSUMED_RESPONSE)
		initiator = true;
	else if (hs->state == GWD_NOISE_HANDSHAKE_CREATED_RESPONSE)
		initiator = false;
	else
		return GWD_NOISE_BAD_STATE;

	kp = calloc(1, sizeof(*kp));
	if (!kp) {
		handshake_zero(r);
		return GWD_NOISE_NOMEM;
	}
	/* T1, T2 = KDF2(ck, empty): the initiator sends with T1, the responder with T2. */
	if (initiator)
		gw_kdf(kp->sending_key, kp->receiving_key, NULL, hs->chaining_key, empty, 0);
	else
		gw_kdf(kp->receiving_key, kp->sending_key, NULL, hs->chaining_key, empty, 0);
	kp->remote = r;
	gwd_replay_init(&kp->receiving_window);
	kp->local_index = hs->local_index;
	kp->remote_index = hs->remote_index;
	kp->birth_ns = mono_now(l);
	kp->initiator = initiator;
	kp->confirmed = initiator;

	l->up.index_to_keypair(l->up.arg, kp->local_index, kp);
	hs->has_local_index = false; /* the keypair owns the index now */
	handshake_zero(r);
	keypair_install(r, kp);
	if (out)
		*out = kp;
	return GWD_NOISE_OK;
}

bool gwd_noise_received_with_keypair(struct gwd_noise_remote *r, struct gwd_noise_keypair *kp)
{
	if (!kp || r->next != kp)
		return false;
	keypair_free(r->local, r->previous);
	r->previous = r->current;
	r->current = kp;
	r->next = NULL;
	kp->confirmed = true;
	return true;
}

bool gwd_noise_keypair_next_counter(struct gwd_noise_keypair *kp, uint64_t *counter)
{
	if (kp->sending_counter >= GWD_REJECT_AFTER_MESSAGES)
		return false;
	*counter = kp->sending_counter++;
	return true;
}

static uint64_t keypair_age(const struct gwd_noise_keypair *kp, uint64_t now_ns)
{
	return now_ns > kp->birth_ns ? now_ns - kp->birth_ns : 0;
}

bool gwd_noise_keypair_expired(const struct gwd_noise_keypair *kp, uint64_t now_ns)
{
	return keypair_age(kp, now_ns) >= GWD_SEC_NS(GWD_REJECT_AFTER_TIME);
}

bool gwd_noise_keypair_should_rekey_on_send(const struct gwd_noise_keypair *kp, uint64_t now_ns)
{
	return kp->sending_counter > GWD_REKEY_AFTER_MESSAGES ||
	       (kp->initiator && keypair_age(kp, now_ns) >= GWD_SEC_NS(GWD_REKEY_AFTER_TIME));
}

bool gwd_noise_keypair_should_rekey_on_receive(const struct gwd_noise_keypair *kp, uint64_t now_ns)
{
	return kp->initiator &&
	       keypair_age(kp, now_ns) >=
		   GWD_SEC_NS(GWD_REJECT_AFTER_TIME - GWD_KEEPALIVE_TIMEOUT - GWD_REKEY_TIMEOUT);
}

void gwd_noise_antireplay_merge(struct gwd_noise_antireplay *dst,
				const struct gwd_noise_antireplay *src)
{
	if (gw_tai64n_cmp(src->greatest_received, dst->greatest_received) > 0)
		memcpy(dst->greatest_received, src->greatest_received, GW_TAI64N_LEN);
	if (gw_tai64n_cmp(src->greatest_sent, dst->greatest_sent) > 0)
		memcpy(dst->greatest_sent, src->greatest_sent, GW_TAI64N_LEN);
	if (src->has_initiation &&
	    (!dst->has_initiation || src->last_initiation_ns > dst->last_initiation_ns)) {
		dst->last_initiation_ns = src->last_initiation_ns;
		dst->has_initiation = true;
	}
}
