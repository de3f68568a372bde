/* SPDX-License-Identifier: MIT */
/*
 * ChaCha20-Poly1305 (RFC 8439) written for x86-64 with AVX2: ChaCha20 eight
 * blocks at a time in AVX2 registers, Poly1305 with 64-bit limbs, and one
 * pass over the message (each 512-byte chunk of keystream is XORed and the
 * ciphertext MACed while it is in L1).
 *
 * lib/crypto.c chooses between this and libsodium at gw_crypto_init() (see
 * gw_aead_impl_name()); call these directly only to test or measure them,
 * and only when gw_chachapoly_avx2_usable() is true: the functions use AVX2
 * instructions unconditionally and would fault on a CPU without them.
 *
 * len is the plaintext length, at most GW_CHACHAPOLY_MAX_LEN (the 32-bit
 * block counter of RFC 8439). dst may equal src; other overlaps are not
 * allowed. ad may be NULL when adlen is 0, src and dst when len is 0.
 */
#ifndef GW_CHACHAPOLY_H
#define GW_CHACHAPOLY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GW_CHACHAPOLY_MAX_LEN ((uint64_t)UINT32_MAX * 64)

enum gw_chachapoly_sizes {
	GW_CHACHAPOLY_KEY_LEN = 32,
	GW_CHACHAPOLY_NONCE_LEN = 12,
	GW_CHACHAPOLY_TAG_LEN = 16,
};

/* True when this build has the AVX2 code (x86-64) and the CPU and OS run it. */
bool gw_chachapoly_avx2_usable(void);

/* Writes len bytes of ciphertext then the 16-byte tag to dst. */
void gw_chachapoly_avx2_seal(uint8_t *dst, const uint8_t *src, size_t len, const uint8_t *ad,
			     size_t adlen, const uint8_t nonce[static GW_CHACHAPOLY_NONCE_LEN],
			     const uint8_t key[static GW_CHACHAPOLY_KEY_LEN]);

/*
 * Decrypts len bytes of ciphertext (the tag not included) into dst and writes
 * the tag the ciphertext should carry to tag. The caller compares it in
 * constant time with the received one and wipes dst when they differ:
 * dst holds unauthenticated plaintext until then.
 */
void gw_chachapoly_avx2_open(uint8_t *dst, const uint8_t *src, size_t len, const uint8_t *ad,
			     size_t adlen, const uint8_t nonce[static GW_CHACHAPOLY_NONCE_LEN],
			     const uint8_t key[static GW_CHACHAPOLY_KEY_LEN],
			     uint8_t tag[static GW_CHACHAPOLY_TAG_LEN]);

/*
 * The two primitives alone, for RFC 8439's test vectors (sections 2.3.2,
 * 2.4.2, 2.5.2): ChaCha20 from block `counter` XORed over len bytes, and a
 * one-time Poly1305 tag of m under a 32-byte key.
 */
void gw_chachapoly_avx2_xor(uint8_t *dst, const uint8_t *src, size_t len,
			    const uint8_t nonce[static GW_CHACHAPOLY_NONCE_LEN],
			    const uint8_t key[static GW_CHACHAPOLY_KEY_LEN], uint32_t counter);
void gw_chachapoly_poly1305(uint8_t tag[static GW_CHACHAPOLY_TAG_LEN], const uint8_t *m, size_t len,
			    const uint8_t key[static 32]);

#endif
