// SPDX-License-Identifier: MIT
/*
 * WireGuard's primitives on libb2 (BLAKE2s) and libsodium (everything else),
 * but ChaCha20-Poly1305, which runs on lib/chachapoly.c's AVX2 code where the
 * CPU has AVX2 (libsodium stays the fallback: GW_AEAD below).
 *
 * Misuse that only a programming error can cause (a BLAKE2s output or key
 * length outside the documented ranges) aborts: a silently wrong digest in a
 * handshake would be far harder to find than a crash. The one length that
 * comes off the wire, an AEAD ciphertext's, is checked and merely fails.
 */
#include "gw/crypto.h"
#include "gw/chachapoly.h"

#include <blake2.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

enum {
	HMAC_IPAD = 0x36,
	HMAC_OPAD = 0x5c,
	/* RFC 8439 nonce: 32 zero bits, then WireGuard's 64-bit counter. */
	AEAD_NONCE_LEN = crypto_aead_chacha20poly1305_IETF_NPUBBYTES,
	/* gw_secret_alloc() rounds sizes up to this so its result is aligned. */
	SECRET_ALIGN = _Alignof(max_align_t),
};

_Static_assert(sizeof(blake2s_state) <= sizeof(((struct gw_blake2s *)0)->opaque),
	       "struct gw_blake2s is too small for libb2's state");
_Static_assert(_Alignof(blake2s_state) <= _Alignof(struct gw_blake2s),
	       "struct gw_blake2s is under-aligned for libb2's state");
_Static_assert((int)GW_HASH_LEN == (int)BLAKE2S_OUTBYTES &&
		   (int)GW_BLAKE2S_KEY_MAX == (int)BLAKE2S_KEYBYTES &&
		   (int)GW_BLAKE2S_BLOCK_LEN == (int)BLAKE2S_BLOCKBYTES,
	       "BLAKE2s sizes disagree with libb2");
_Static_assert(GW_KEY_LEN == crypto_aead_chacha20poly1305_IETF_KEYBYTES &&
		   GW_AEAD_TAG_LEN == crypto_aead_chacha20poly1305_IETF_ABYTES &&
		   AEAD_NONCE_LEN == 12,
	       "ChaCha20-Poly1305 sizes disagree with libsodium");
_Static_assert(GW_KEY_LEN == crypto_aead_xchacha20poly1305_IETF_KEYBYTES &&
		   GW_AEAD_TAG_LEN == crypto_aead_xchacha20poly1305_IETF_ABYTES &&
		   GW_XAEAD_NONCE_LEN == crypto_aead_xchacha20poly1305_IETF_NPUBBYTES,
	       "XChaCha20-Poly1305 sizes disagree with libsodium");
_Static_assert(GW_KEY_LEN == crypto_scalarmult_BYTES && GW_KEY_LEN == crypto_scalarmult_SCALARBYTES,
	       "X25519 sizes disagree with libsodium");

_Static_assert((int)GW_KEY_LEN == (int)GW_CHACHAPOLY_KEY_LEN &&
		   (int)GW_AEAD_TAG_LEN == (int)GW_CHACHAPOLY_TAG_LEN &&
		   (int)AEAD_NONCE_LEN == (int)GW_CHACHAPOLY_NONCE_LEN,
	       "ChaCha20-Poly1305 sizes disagree with lib/chachapoly.c");

/* Written by gw_crypto_init() only, before any thread encrypts. */
static bool aead_avx2;

/* GW_AEAD: unset, empty or "auto" (AVX2 when usable), "libsodium", "avx2". */
static int aead_select(const char *want)
{
	bool usable = gw_chachapoly_avx2_usable();

	if (!want || !*want || !strcmp(want, "auto"))
		aead_avx2 = usable;
	else if (!strcmp(want, "libsodium"))
		aead_avx2 = false;
	else if (!strcmp(want, "avx2") && usable)
		aead_avx2 = true;
	else
		return strcmp(want, "avx2") ? -EINVAL : -ENOTSUP;
	return 0;
}

int gw_crypto_init(void)
{
	/* 0: initialised now, 1: already initialised, -1: no usable RNG etc. */
	if (sodium_init() < 0)
		return -EIO;
	return aead_select(getenv("GW_AEAD"));
}

const char *gw_aead_impl_name(void)
{
	return aead_avx2 ? "avx2" : "libsodium";
}

static blake2s_state *b2_state(struct gw_blake2s *s)
{
	return (blake2s_state *)(void *)s->opaque;
}

/* libb2 fails only on arguments outside this module's contract. */
static void b2_check(int rc)
{
	if (rc != 0)
		abort();
}

void gw_blake2s_init(struct gw_blake2s *s, size_t outlen, const uint8_t *key, size_t keylen)
{
	if (outlen == 0 || outlen > GW_HASH_LEN || keylen > GW_BLAKE2S_KEY_MAX || (keylen && !key))
		abort();
	/* libb2 rejects a zero-length key in blake2s_init_key(). */
	if (keylen)
		b2_check(blake2s_init_key(b2_state(s), outlen, key, keylen));
	else
		b2_check(blake2s_init(b2_state(s), outlen));
}

void gw_blake2s_update(struct gw_blake2s *s, const void *in, size_t inlen)
{
	if (inlen)
		b2_check(blake2s_update(b2_state(s), in, inlen));
}

void gw_blake2s_final(struct gw_blake2s *s, uint8_t *out, size_t outlen)
{
	/*
	 * The digest length is part of BLAKE2s's parameter block, so a final
	 * length other than the one given to init would silently yield a
	 * truncation of a different hash.
	 */
	if (outlen != b2_state(s)->outlen)
		abort();
	b2_check(blake2s_final(b2_state(s), out, outlen));
	sodium_memzero(s, sizeof(*s));
}

void gw_blake2s(uint8_t *out, size_t outlen, const void *in, size_t inlen, const uint8_t *key,
		size_t keylen)
{
	struct gw_blake2s s;

	gw_blake2s_init(&s, outlen, key, keylen);
	gw_blake2s_update(&s, in, inlen);
	gw_blake2s_final(&s, out, outlen);
}

/* One HMAC pass: BLAKE2s-256((key ^ pad) || in). */
static void hmac_pass(uint8_t out[static GW_HASH_LEN],
		      const uint8_t key[static GW_BLAKE2S_BLOCK_LEN], uint8_t pad, const void *in,
		      size_t inlen)
{
	uint8_t block[GW_BLAKE2S_BLOCK_LEN];
	struct gw_blake2s s;
	size_t i;

	for (i = 0; i < GW_BLAKE2S_BLOCK_LEN; i++)
		block[i] = key[i] ^ pad;
	gw_blake2s_init(&s, GW_HASH_LEN, NULL, 0);
	gw_blake2s_update(&s, block, sizeof(block));
	gw_blake2s_update(&s, in, inlen);
	gw_blake2s_final(&s, out, GW_HASH_LEN);
	sodium_memzero(block, sizeof(block));
}

/* out may alias key or in: both are consumed before out is written. */
void gw_hmac_blake2s(uint8_t out[static GW_HASH_LEN], const uint8_t *key, size_t keylen,
		     const void *in, size_t inlen)
{
	uint8_t k[GW_BLAKE2S_BLOCK_LEN] = {0};
	uint8_t inner[GW_HASH_LEN];

	/* RFC 2104: keys longer than a block are hashed first. */
	if (keylen > GW_BLAKE2S_BLOCK_LEN)
		gw_blake2s(k, GW_HASH_LEN, key, keylen, NULL, 0);
	else if (keylen)
		memcpy(k, key, keylen);

	hmac_pass(inner, k, HMAC_IPAD, in, inlen);
	hmac_pass(out, k, HMAC_OPAD, inner, sizeof(inner));

	sodium_memzero(k, sizeof(k));
	sodium_memzero(inner, sizeof(inner));
}

/*
 * ck and in are read only to derive prk, before any output is written, so the
 * outputs may alias either. t3 without t2 still computes t2 (the chain needs it).
 */
void gw_kdf(uint8_t *t1, uint8_t *t2, uint8_t *t3, const uint8_t ck[static GW_HASH_LEN],
	    const void *in, size_t inlen)
{
	uint8_t *outs[] = {t1, t2, t3};
	size_t n = t3 ? 3 : t2 ? 2 : 1;
	uint8_t prk[GW_HASH_LEN];
	uint8_t t[GW_HASH_LEN + 1]; /* T(i-1) || i */
	size_t tlen = 0;
	size_t i;

	gw_hmac_blake2s(prk, ck, GW_HASH_LEN, in, inlen);
	for (i = 0; i < n; i++) {
		t[tlen] = (uint8_t)(i + 1);
		gw_hmac_blake2s(t, prk, sizeof(prk), t, tlen + 1);
		tlen = GW_HASH_LEN;
		if (outs[i])
			memcpy(outs[i], t, GW_HASH_LEN);
	}

	sodium_memzero(prk, sizeof(prk));
	sodium_memzero(t, sizeof(t));
}

static void wg_nonce(uint8_t n[static AEAD_NONCE_LEN], uint64_t counter)
{
	size_t i;

	memset(n, 0, 4);
	for (i = 0; i < 8; i++)
		n[4 + i] = (uint8_t)(counter >> (8 * i));
}

typedef int aead_open_fn(unsigned char *m, unsigned long long *mlen_p, unsigned char *nsec,
			 const unsigned char *c, unsigned long long clen, const unsigned char *ad,
			 unsigned long long adlen, const unsigned char *npub,
			 const unsigned char *k);

/* Verifies then decrypts; on any failure the plaintext area of dst is zero. */
static bool aead_open(aead_open_fn *open, uint8_t *dst, const uint8_t *src, size_t srclen,
		      const uint8_t *ad, size_t adlen, const uint8_t *npub, const uint8_t *key)
{
	if (srclen < GW_AEAD_TAG_LEN)
		return false;
	if (open(dst, NULL, NULL, src, srclen, ad, adlen, npub, key) == 0)
		return true;
	/* libsodium zeroes too, but the contract should not rest on that. */
	if (srclen > GW_AEAD_TAG_LEN)
		memset(dst, 0, srclen - GW_AEAD_TAG_LEN);
	return false;
}

void gw_aead_encrypt(uint8_t *dst, const uint8_t *src, size_t srclen, const uint8_t *ad,
		     size_t adlen, uint64_t nonce, const uint8_t key[static GW_KEY_LEN])
{
	uint8_t n[AEAD_NONCE_LEN];

	wg_nonce(n, nonce);
	if (aead_avx2 && srclen <= GW_CHACHAPOLY_MAX_LEN)
		gw_chachapoly_avx2_seal(dst, src, srclen, ad, adlen, n, key);
	else
		crypto_aead_chacha20poly1305_ietf_encrypt(dst, NULL, src, srclen, ad, adlen, NULL,
							  n, key);
}

/*
 * The AVX2 open decrypts as it MACs, so the plaintext is wiped when the tag
 * turns out wrong; the expected tag is wiped too (it would be a valid tag
 * for a forged ciphertext).
 */
static bool avx2_open(uint8_t *dst, const uint8_t *src, size_t srclen, const uint8_t *ad,
		      size_t adlen, const uint8_t *npub, const uint8_t *key)
{
	size_t len = srclen - GW_AEAD_TAG_LEN;
	uint8_t tag[GW_AEAD_TAG_LEN];
	bool ok;

	gw_chachapoly_avx2_open(dst, src, len, ad, adlen, npub, key, tag);
	ok = sodium_memcmp(tag, src + len, sizeof(tag)) == 0;
	sodium_memzero(tag, sizeof(tag));
	if (!ok && len)
		sodium_memzero(dst, len);
	return ok;
}

bool gw_aead_decrypt(uint8_t *dst, const uint8_t *src, size_t srclen, const uint8_t *ad,
		     size_t adlen, uint64_t nonce, const uint8_t key[static GW_KEY_LEN])
{
	uint8_t n[AEAD_NONCE_LEN];

	wg_nonce(n, nonce);
	if (aead_avx2 && srclen >= GW_AEAD_TAG_LEN &&
	    srclen - GW_AEAD_TAG_LEN <= GW_CHACHAPOLY_MAX_LEN)
		return avx2_open(dst, src, srclen, ad, adlen, n, key);
	return aead_open(crypto_aead_chacha20poly1305_ietf_decrypt, dst, src, srclen, ad, adlen, n,
			 key);
}

void gw_xaead_encrypt(uint8_t *dst, const uint8_t *src, size_t srclen, const uint8_t *ad,
		      size_t adlen, const uint8_t nonce[static GW_XAEAD_NONCE_LEN],
		      const uint8_t key[static GW_KEY_LEN])
{
	crypto_aead_xchacha20poly1305_ietf_encrypt(dst, NULL, src, srclen, ad, adlen, NULL, nonce,
						   key);
}

bool gw_xaead_decrypt(uint8_t *dst, const uint8_t *src, size_t srclen, const uint8_t *ad,
		      size_t adlen, const uint8_t nonce[static GW_XAEAD_NONCE_LEN],
		      const uint8_t key[static GW_KEY_LEN])
{
	return aead_open(crypto_aead_xchacha20poly1305_ietf_decrypt, dst, src, srclen, ad, adlen,
			 nonce, key);
}

/*
 * libsodium clamps the scalar itself and fails on low-order points and on an
 * all-zero result; the explicit zero check keeps the contract independent of
 * that. On failure out is zeroed rather than left half-written.
 */
bool gw_x25519(uint8_t out[static GW_KEY_LEN], const uint8_t scalar[static GW_KEY_LEN],
	       const uint8_t point[static GW_KEY_LEN])
{
	if (crypto_scalarmult(out, scalar, point) != 0 || sodium_is_zero(out, GW_KEY_LEN)) {
		sodium_memzero(out, GW_KEY_LEN);
		return false;
	}
	return true;
}

/* An all-zero private key means "no key" to WireGuard, as in the kernel. */
bool gw_x25519_public(uint8_t pub[static GW_KEY_LEN], const uint8_t priv[static GW_KEY_LEN])
{
	if (sodium_is_zero(priv, GW_KEY_LEN) || crypto_scalarmult_base(pub, priv) != 0 ||
	    sodium_is_zero(pub, GW_KEY_LEN)) {
		sodium_memzero(pub, GW_KEY_LEN);
		return false;
	}
	return true;
}

void gw_x25519_generate(uint8_t priv[static GW_KEY_LEN])
{
	randombytes_buf(priv, GW_KEY_LEN);
	gw_x25519_clamp(priv);
}

void gw_x25519_clamp(uint8_t key[static GW_KEY_LEN])
{
	key[0] &= 248;
	key[31] &= 127;
	key[31] |= 64;
}

void gw_random_bytes(void *buf, size_t len)
{
	randombytes_buf(buf, len);
}

uint32_t gw_random_uniform(uint32_t upper)
{
	return randombytes_uniform(upper);
}

bool gw_memeq(const void *a, const void *b, size_t len)
{
	if (len == 0)
		return true;
	return sodium_memcmp(a, b, len) == 0;
}

void gw_wipe(void *p, size_t len)
{
	if (p && len)
		sodium_memzero(p, len);
}

/*
 * sodium_malloc() places the block so that it ends at a guard page, which
 * leaves the start unaligned unless the size is a multiple of the alignment:
 * round up (a few bytes of slack before the guard page) so callers may store
 * any object. It already treats a failing mlock() as non-fatal.
 */
void *gw_secret_alloc(size_t len)
{
	size_t rounded;
	void *p;

	if (len > SIZE_MAX - (SECRET_ALIGN - 1))
		return NULL;
	rounded = (len + SECRET_ALIGN - 1) & ~(size_t)(SECRET_ALIGN - 1);
	if (rounded == 0)
		rounded = SECRET_ALIGN;
	p = sodium_malloc(rounded);
	if (p)
		memset(p, 0, rounded);
	return p;
}

void gw_secret_free(void *p)
{
	sodium_free(p);
}
