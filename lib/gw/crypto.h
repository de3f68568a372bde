/* SPDX-License-Identifier: MIT */
/*
 * Cryptographic primitives WireGuard needs, on libb2 (BLAKE2s) and libsodium
 * (ChaCha20-Poly1305, XChaCha20-Poly1305, X25519, randomness, secure memory);
 * ChaCha20-Poly1305 runs on lib/chachapoly.c's AVX2 code where the CPU has
 * AVX2 (see gw_crypto_init).
 *
 * Callers own every buffer. Decryption is warn_unused_result and zeroes its
 * output on failure. Secrets belong in gw_secret_alloc() memory.
 */
#ifndef GW_CRYPTO_H
#define GW_CRYPTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum gw_crypto_sizes {
	GW_KEY_LEN = 32,  /* X25519 keys, symmetric keys, PSKs */
	GW_HASH_LEN = 32, /* BLAKE2s-256 */
	GW_BLAKE2S_BLOCK_LEN = 64,
	GW_BLAKE2S_KEY_MAX = 32,
	GW_AEAD_TAG_LEN = 16,	 /* Poly1305 */
	GW_XAEAD_NONCE_LEN = 24, /* XChaCha20-Poly1305 */
	GW_MAC_LEN = 16,	 /* WireGuard mac1/mac2: BLAKE2s-128 */
};

/*
 * Must be called once before anything else here (and before threads use the
 * AEAD); 0 or -errno. It chooses the ChaCha20-Poly1305 code from the
 * environment variable GW_AEAD: unset or "auto" takes lib/chachapoly.c's
 * AVX2 code when the CPU has AVX2 and libsodium otherwise, "libsodium"
 * always libsodium, "avx2" the AVX2 code or fails with -ENOTSUP; any other
 * value fails with -EINVAL.
 */
int gw_crypto_init(void);
/* "avx2" or "libsodium": what gw_aead_encrypt/decrypt run on. */
const char *gw_aead_impl_name(void);

/* Incremental BLAKE2s; opaque storage big enough for libb2's state. */
struct gw_blake2s {
	_Alignas(64) uint8_t opaque[256];
};
/*
 * outlen 1..32, keylen 0..32 (key may be NULL when keylen is 0); final takes
 * the same outlen. Lengths outside these ranges are caller bugs and abort.
 */
void gw_blake2s_init(struct gw_blake2s *s, size_t outlen, const uint8_t *key, size_t keylen);
void gw_blake2s_update(struct gw_blake2s *s, const void *in, size_t inlen);
/* Writes the digest and wipes the state. */
void gw_blake2s_final(struct gw_blake2s *s, uint8_t *out, size_t outlen);
/* One-shot (keyed when keylen > 0). */
void gw_blake2s(uint8_t *out, size_t outlen, const void *in, size_t inlen, const uint8_t *key,
		size_t keylen);

/* HMAC (RFC 2104) over BLAKE2s-256, as WireGuard's KDF uses it; out may alias key or in. */
void gw_hmac_blake2s(uint8_t out[static GW_HASH_LEN], const uint8_t *key, size_t keylen,
		     const void *in, size_t inlen);

/*
 * WireGuard's KDF_n (HKDF, RFC 5869, with HMAC-BLAKE2s):
 * prk = HMAC(ck, in); t1 = HMAC(prk, 0x1); t2 = HMAC(prk, t1 || 0x2); ...
 * t2 and t3 may be NULL when fewer outputs are needed. Outputs may alias ck.
 */
void gw_kdf(uint8_t *t1, uint8_t *t2, uint8_t *t3, const uint8_t ck[static GW_HASH_LEN],
	    const void *in, size_t inlen);

/*
 * ChaCha20-Poly1305 (RFC 8439) with WireGuard's nonce: 32 zero bits then the
 * 64-bit counter little-endian. dst holds srclen + GW_AEAD_TAG_LEN bytes
 * (encrypt) or srclen - GW_AEAD_TAG_LEN bytes (decrypt); dst may equal src.
 */
void gw_aead_encrypt(uint8_t *dst, const uint8_t *src, size_t srclen, const uint8_t *ad,
		     size_t adlen, uint64_t nonce, const uint8_t key[static GW_KEY_LEN]);
__attribute__((warn_unused_result)) bool gw_aead_decrypt(uint8_t *dst, const uint8_t *src,
							 size_t srclen, const uint8_t *ad,
							 size_t adlen, uint64_t nonce,
							 const uint8_t key[static GW_KEY_LEN]);

/* XChaCha20-Poly1305 (cookie replies), same buffer rules. */
void gw_xaead_encrypt(uint8_t *dst, const uint8_t *src, size_t srclen, const uint8_t *ad,
		      size_t adlen, const uint8_t nonce[static GW_XAEAD_NONCE_LEN],
		      const uint8_t key[static GW_KEY_LEN]);
__attribute__((warn_unused_result)) bool
gw_xaead_decrypt(uint8_t *dst, const uint8_t *src, size_t srclen, const uint8_t *ad, size_t adlen,
		 const uint8_t nonce[static GW_XAEAD_NONCE_LEN],
		 const uint8_t key[static GW_KEY_LEN]);

/* X25519 (RFC 7748). False when the result is all zeros (low-order point). */
__attribute__((warn_unused_result)) bool gw_x25519(uint8_t out[static GW_KEY_LEN],
						   const uint8_t scalar[static GW_KEY_LEN],
						   const uint8_t point[static GW_KEY_LEN]);
/* Public key of a private key; false when the private key is unusable. */
__attribute__((warn_unused_result)) bool gw_x25519_public(uint8_t pub[static GW_KEY_LEN],
							  const uint8_t priv[static GW_KEY_LEN]);
/* A new private key, clamped as `wg genkey` does. */
void gw_x25519_generate(uint8_t priv[static GW_KEY_LEN]);
/* Clamp a scalar in place (RFC 7748 section 5). */
void gw_x25519_clamp(uint8_t key[static GW_KEY_LEN]);

void gw_random_bytes(void *buf, size_t len);
/* Uniform in [0, upper), upper > 0. */
uint32_t gw_random_uniform(uint32_t upper);

/* Constant-time equality of two buffers of length len. */
bool gw_memeq(const void *a, const void *b, size_t len);
/* Wipes memory in a way the compiler cannot elide. */
void gw_wipe(void *p, size_t len);
/*
 * Memory for secrets: zero-filled, aligned for any type, locked where possible,
 * guarded, wiped on free; NULL on failure. Each call maps its own guard pages
 * (several VMAs): use it for a few long-lived blocks, not one per peer.
 */
void *gw_secret_alloc(size_t len);
/* Wipes and frees; NULL is ignored. */
void gw_secret_free(void *p);

#endif
