// SPDX-License-Identifier: MIT
/*
 * ChaCha20-Poly1305 (RFC 8439) with AVX2, see gw/chachapoly.h.
 *
 * ChaCha20: the state of eight consecutive blocks is held "vertically", one
 * ymm register per state word with one block in each 32-bit lane, so a
 * quarter round is eight-wide with no shuffles between rounds; an 8x8
 * transpose at the end puts each block's 64 bytes back in order. Block 0
 * gives the Poly1305 key, so a 1420-byte message needs 24 blocks: exactly
 * three rounds of eight.
 *
 * Poly1305: the accumulator in three 64-bit limbs (64 + 64 + a few bits) and
 * r in two, products in unsigned __int128: four 64x64 multiplications and
 * one small one a 16-byte block, reduced partially each block (2^130 = 5 mod
 * p) and fully at the end.
 *
 * Only the functions marked AVX2_FN use AVX2; the file is compiled for the
 * baseline, so gw_chachapoly_avx2_usable() runs on any x86-64. Other
 * architectures get the declarations without the code (usable is false).
 *
 * Secrets (key schedule, keystream, Poly1305 key and state) live on the
 * stack and are wiped with sodium_memzero() before returning, as in
 * lib/crypto.c. The tag comparison is the caller's (gw_memeq, constant-time).
 */
#include "gw/chachapoly.h"

#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define GW_HAVE_AVX2_CODE 1
#include <immintrin.h>
#else
#define GW_HAVE_AVX2_CODE 0
#endif

#if GW_HAVE_AVX2_CODE

bool gw_chachapoly_avx2_usable(void)
{
	/* Checks CPUID and that the OS saves the ymm state (XGETBV). */
	__builtin_cpu_init();
	return __builtin_cpu_supports("avx2");
}

#define AVX2_FN __attribute__((target("avx2")))

enum {
	CHACHA_BLOCK = 64,
	WIDE = 8, /* blocks a kernel call */
	CHUNK = WIDE * CHACHA_BLOCK,
	POLY_BLOCK = 16,
	SMALL_MAX = 3 * CHACHA_BLOCK, /* messages chacha4's blocks 1..3 cover */
};

static inline uint32_t le32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, sizeof(v)); /* x86-64 is little-endian */
	return v;
}

static inline uint64_t le64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

static inline void put_le64(uint8_t *p, uint64_t v)
{
	memcpy(p, &v, sizeof(v));
}

/* ---- Poly1305 ---- */

struct poly {
	uint64_t r0, r1, s1; /* s1 = r1 * 5 / 4 (r1 is a multiple of 4) */
	uint64_t h0, h1, h2;
	uint64_t pad0, pad1;
};

static void poly_init(struct poly *p, const uint8_t key[static 32])
{
	p->r0 = le64(key) & 0x0ffffffc0fffffffULL;
	p->r1 = le64(key + 8) & 0x0ffffffc0ffffffcULL;
	p->s1 = p->r1 + (p->r1 >> 2);
	p->h0 = p->h1 = p->h2 = 0;
	p->pad0 = le64(key + 16);
	p->pad1 = le64(key + 24);
}

/*
 * nblocks 16-byte blocks, each with 2^128 times hibit added (1, but 0 for a
 * short last block padded with 1 and zeros; RFC 8439's AEAD MACs only full
 * blocks: it pads with zeros). After a partial reduction
 * h2 <= 4, so h < 2^131 - 10 = 2p; adding a block makes h2 <= 6, and the
 * products fit easily (h0 r0 + h1 s1 < 2^64 (2^60 + 2^61)).
 */
static inline __attribute__((always_inline)) void poly_blocks(struct poly *p, const uint8_t *m,
							      size_t nblocks, uint64_t hibit)
{
	const uint64_t r0 = p->r0, r1 = p->r1, s1 = p->s1;
	uint64_t h0 = p->h0, h1 = p->h1, h2 = p->h2;

	while (nblocks--) {
		unsigned __int128 d0, d1, t;
		uint64_t d2, c;

		t = (unsigned __int128)h0 + le64(m);
		h0 = (uint64_t)t;
		t = (unsigned __int128)h1 + le64(m + 8) + (uint64_t)(t >> 64);
		h1 = (uint64_t)t;
		h2 += (uint64_t)(t >> 64) + hibit;

		/*
		 * h r = h0 r0 + (h0 r1 + h1 r0) 2^64 + (h1 r1 + h2 r0) 2^128
		 * + h2 r1 2^192, and r1 2^128 = (r1 / 4) 2^130 = s1 mod p.
		 */
		d0 = (unsigned __int128)h0 * r0 + (unsigned __int128)h1 * s1;
		d1 = (unsigned __int128)h0 * r1 + (unsigned __int128)h1 * r0 +
		     (unsigned __int128)h2 * s1;
		d2 = h2 * r0;

		d1 += (uint64_t)(d0 >> 64);
		h0 = (uint64_t)d0;
		d2 += (uint64_t)(d1 >> 64);
		h1 = (uint64_t)d1;

		/* Bits 130 and up: times 5, back into the bottom. */
		c = (d2 >> 2) * 5;
		h2 = d2 & 3;
		t = (unsigned __int128)h0 + c;
		h0 = (uint64_t)t;
		t = (unsigned __int128)h1 + (uint64_t)(t >> 64);
		h1 = (uint64_t)t;
		h2 += (uint64_t)(t >> 64);
		m += POLY_BLOCK;
	}
	p->h0 = h0;
	p->h1 = h1;
	p->h2 = h2;
}

/* n bytes, the last block zero-padded to 16 (RFC 8439 section 2.8). */
static void poly_padded(struct poly *p, const uint8_t *m, size_t n)
{
	uint8_t last[POLY_BLOCK] = {0};
	size_t full = n / POLY_BLOCK;

	if (full)
		poly_blocks(p, m, full, 1);
	if (n % POLY_BLOCK) {
		memcpy(last, m + full * POLY_BLOCK, n % POLY_BLOCK);
		poly_blocks(p, last, 1, 1);
		sodium_memzero(last, sizeof(last));
	}
}

static void poly_lengths(struct poly *p, size_t adlen, size_t len)
{
	uint8_t lens[POLY_BLOCK];

	put_le64(lens, (uint64_t)adlen);
	put_le64(lens + 8, (uint64_t)len);
	poly_blocks(p, lens, 1, 1);
}

static void poly_final(struct poly *p, uint8_t tag[static 16])
{
	unsigned __int128 t;
	uint64_t g0, g1, g2, mask;

	/* h < 2p: h - p = h + 5 - 2^130, taken when that does not borrow. */
	t = (unsigned __int128)p->h0 + 5;
	g0 = (uint64_t)t;
	t = (unsigned __int128)p->h1 + (uint64_t)(t >> 64);
	g1 = (uint64_t)t;
	g2 = p->h2 + (uint64_t)(t >> 64);
	mask = 0 - (g2 >> 2); /* all ones when h >= p */
	g0 = (p->h0 & ~mask) | (g0 & mask);
	g1 = (p->h1 & ~mask) | (g1 & mask);

	t = (unsigned __int128)g0 + p->pad0;
	put_le64(tag, (uint64_t)t);
	put_le64(tag + 8, g1 + p->pad1 + (uint64_t)(t >> 64));
}

/* ---- ChaCha20, eight blocks ---- */

#define ROTL_SHIFT(x, n) \
	_mm256_or_si256(_mm256_slli_epi32((x), (n)), _mm256_srli_epi32((x), 32 - (n)))

#define QR(a, b, c, d)                                                  \
	do {                                                            \
		a = _mm256_add_epi32(a, b);                             \
		d = _mm256_shuffle_epi8(_mm256_xor_si256(d, a), rot16); \
		c = _mm256_add_epi32(c, d);                             \
		b = _mm256_xor_si256(b, c);                             \
		b = ROTL_SHIFT(b, 12);                                  \
		a = _mm256_add_epi32(a, b);                             \
		d = _mm256_shuffle_epi8(_mm256_xor_si256(d, a), rot8);  \
		c = _mm256_add_epi32(c, d);                             \
		b = _mm256_xor_si256(b, c);                             \
		b = ROTL_SHIFT(b, 7);                                   \
	} while (0)

/*
 * 512 bytes of keystream, blocks ctr .. ctr + 7 (the counter wraps mod 2^32
 * as RFC 8439's does; callers never get that far), into out. Meanwhile
 * nblocks full blocks of m go into Poly1305 (p), a tenth of them each double
 * round: that scalar multiply chain runs on the integer units while the
 * vector units do ChaCha20, so the two overlap instead of taking turns.
 */
AVX2_FN static void chacha8(uint8_t out[static CHUNK], const uint32_t in[static 16], uint32_t ctr,
			    struct poly *p, const uint8_t *m, size_t nblocks)
{
	const __m256i rot16 =
	    _mm256_setr_epi8(2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13, 2, 3, 0, 1, 6, 7,
			     4, 5, 10, 11, 8, 9, 14, 15, 12, 13);
	const __m256i rot8 = _mm256_setr_epi8(3, 0, 1, 2, 7, 4, 5, 6, 11, 8, 9, 10, 15, 12, 13, 14,
					      3, 0, 1, 2, 7, 4, 5, 6, 11, 8, 9, 10, 15, 12, 13, 14);
	const __m256i ctrs = _mm256_add_epi32(_mm256_set1_epi32((int)ctr),
					      _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
	__m256i x[16], t[16];
	size_t maced = 0;
	int i;

	for (i = 0; i < 16; i++)
		x[i] = _mm256_set1_epi32((int)in[i]);
	x[12] = ctrs;
	for (i = 0; i < 10; i++) {
		QR(x[0], x[4], x[8], x[12]);
		QR(x[1], x[5], x[9], x[13]);
		QR(x[2], x[6], x[10], x[14]);
		QR(x[3], x[7], x[11], x[15]);
		QR(x[0], x[5], x[10], x[15]);
		QR(x[1], x[6], x[11], x[12]);
		QR(x[2], x[7], x[8], x[13]);
		QR(x[3], x[4], x[9], x[14]);
		if (nblocks) {
			size_t upto = nblocks * (size_t)(i + 1) / 10;

			poly_blocks(p, m + maced * POLY_BLOCK, upto - maced, 1);
			maced = upto;
		}
	}
	for (i = 0; i < 16; i++)
		x[i] = _mm256_add_epi32(x[i], i == 12 ? ctrs : _mm256_set1_epi32((int)in[i]));

	/*
	 * Transpose each half (words 0-7, words 8-15) from word-major to
	 * block-major: 32-bit then 64-bit interleaves give four-word rows
	 * of lanes j and j + 4 in the two 128-bit halves; the 128-bit
	 * permutes then pair rows of the same lane.
	 */
	for (i = 0; i < 16; i += 8) {
		__m256i a0 = _mm256_unpacklo_epi32(x[i + 0], x[i + 1]);
		__m256i a1 = _mm256_unpackhi_epi32(x[i + 0], x[i + 1]);
		__m256i a2 = _mm256_unpacklo_epi32(x[i + 2], x[i + 3]);
		__m256i a3 = _mm256_unpackhi_epi32(x[i + 2], x[i + 3]);
		__m256i a4 = _mm256_unpacklo_epi32(x[i + 4], x[i + 5]);
		__m256i a5 = _mm256_unpackhi_epi32(x[i + 4], x[i + 5]);
		__m256i a6 = _mm256_unpacklo_epi32(x[i + 6], x[i + 7]);
		__m256i a7 = _mm256_unpackhi_epi32(x[i + 6], x[i + 7]);
		__m256i b0 = _mm256_unpacklo_epi64(a0, a2); /* lanes 0 | 4, words 0-3 */
		__m256i b1 = _mm256_unpackhi_epi64(a0, a2); /* lanes 1 | 5 */
		__m256i b2 = _mm256_unpacklo_epi64(a1, a3); /* lanes 2 | 6 */
		__m256i b3 = _mm256_unpackhi_epi64(a1, a3); /* lanes 3 | 7 */
		__m256i b4 = _mm256_unpacklo_epi64(a4, a6); /* lanes 0 | 4, words 4-7 */
		__m256i b5 = _mm256_unpackhi_epi64(a4, a6);
		__m256i b6 = _mm256_unpacklo_epi64(a5, a7);
		__m256i b7 = _mm256_unpackhi_epi64(a5, a7);
		int h = i / 8; /* which 32-byte half of each block */

		t[0 * 2 + h] = _mm256_permute2x128_si256(b0, b4, 0x20);
		t[4 * 2 + h] = _mm256_permute2x128_si256(b0, b4, 0x31);
		t[1 * 2 + h] = _mm256_permute2x128_si256(b1, b5, 0x20);
		t[5 * 2 + h] = _mm256_permute2x128_si256(b1, b5, 0x31);
		t[2 * 2 + h] = _mm256_permute2x128_si256(b2, b6, 0x20);
		t[6 * 2 + h] = _mm256_permute2x128_si256(b2, b6, 0x31);
		t[3 * 2 + h] = _mm256_permute2x128_si256(b3, b7, 0x20);
		t[7 * 2 + h] = _mm256_permute2x128_si256(b3, b7, 0x31);
	}
	for (i = 0; i < 16; i++)
		_mm256_storeu_si256((__m256i *)(void *)(out + 32 * i), t[i]);
}

#define ROTL_SHIFT4(x, n) _mm_or_si128(_mm_slli_epi32((x), (n)), _mm_srli_epi32((x), 32 - (n)))

#define QR4(a, b, c, d)                                           \
	do {                                                      \
		a = _mm_add_epi32(a, b);                          \
		d = _mm_shuffle_epi8(_mm_xor_si128(d, a), rot16); \
		c = _mm_add_epi32(c, d);                          \
		b = _mm_xor_si128(b, c);                          \
		b = ROTL_SHIFT4(b, 12);                           \
		a = _mm_add_epi32(a, b);                          \
		d = _mm_shuffle_epi8(_mm_xor_si128(d, a), rot8);  \
		c = _mm_add_epi32(c, d);                          \
		b = _mm_xor_si128(b, c);                          \
		b = ROTL_SHIFT4(b, 7);                            \
	} while (0)

/*
 * The same four blocks at a time in xmm registers (blocks 0..3 only): half
 * the work of chacha8 for messages of up to 192 bytes, which need no more.
 */
AVX2_FN static void chacha4(uint8_t out[static 4 * CHACHA_BLOCK], const uint32_t in[static 16])
{
	const __m128i rot16 = _mm_setr_epi8(2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13);
	const __m128i rot8 = _mm_setr_epi8(3, 0, 1, 2, 7, 4, 5, 6, 11, 8, 9, 10, 15, 12, 13, 14);
	const __m128i ctrs = _mm_setr_epi32(0, 1, 2, 3);
	__m128i x[16];
	int i;

	for (i = 0; i < 16; i++)
		x[i] = _mm_set1_epi32((int)in[i]);
	x[12] = ctrs;
	for (i = 0; i < 10; i++) {
		QR4(x[0], x[4], x[8], x[12]);
		QR4(x[1], x[5], x[9], x[13]);
		QR4(x[2], x[6], x[10], x[14]);
		QR4(x[3], x[7], x[11], x[15]);
		QR4(x[0], x[5], x[10], x[15]);
		QR4(x[1], x[6], x[11], x[12]);
		QR4(x[2], x[7], x[8], x[13]);
		QR4(x[3], x[4], x[9], x[14]);
	}
	for (i = 0; i < 16; i++)
		x[i] = _mm_add_epi32(x[i], i == 12 ? ctrs : _mm_set1_epi32((int)in[i]));
	/* 4x4 transposes: words 4g..4g+3 of block j go to out + 64 j + 16 g. */
	for (i = 0; i < 16; i += 4) {
		__m128i a0 = _mm_unpacklo_epi32(x[i + 0], x[i + 1]);
		__m128i a1 = _mm_unpackhi_epi32(x[i + 0], x[i + 1]);
		__m128i a2 = _mm_unpacklo_epi32(x[i + 2], x[i + 3]);
		__m128i a3 = _mm_unpackhi_epi32(x[i + 2], x[i + 3]);

		_mm_storeu_si128((__m128i *)(void *)(out + 0 * CHACHA_BLOCK + 4 * i),
				 _mm_unpacklo_epi64(a0, a2));
		_mm_storeu_si128((__m128i *)(void *)(out + 1 * CHACHA_BLOCK + 4 * i),
				 _mm_unpackhi_epi64(a0, a2));
		_mm_storeu_si128((__m128i *)(void *)(out + 2 * CHACHA_BLOCK + 4 * i),
				 _mm_unpacklo_epi64(a1, a3));
		_mm_storeu_si128((__m128i *)(void *)(out + 3 * CHACHA_BLOCK + 4 * i),
				 _mm_unpackhi_epi64(a1, a3));
	}
}

/* dst = src ^ ks over n bytes (dst may equal src). */
AVX2_FN static void xor_stream(uint8_t *dst, const uint8_t *src, const uint8_t *ks, size_t n)
{
	size_t i = 0;

	for (; i + 32 <= n; i += 32) {
		__m256i a = _mm256_loadu_si256((const __m256i *)(const void *)(src + i));
		__m256i k = _mm256_loadu_si256((const __m256i *)(const void *)(ks + i));

		_mm256_storeu_si256((__m256i *)(void *)(dst + i), _mm256_xor_si256(a, k));
	}
	for (; i < n; i++)
		dst[i] = src[i] ^ ks[i];
}

/* ---- the AEAD ---- */

static void chacha_state(uint32_t st[static 16], const uint8_t key[static 32],
			 const uint8_t nonce[static 12])
{
	int i;

	st[0] = 0x61707865;
	st[1] = 0x3320646e;
	st[2] = 0x79622d32;
	st[3] = 0x6b206574;
	for (i = 0; i < 8; i++)
		st[4 + i] = le32(key + 4 * i);
	st[12] = 0;
	for (i = 0; i < 3; i++)
		st[13 + i] = le32(nonce + 4 * i);
}

static inline size_t min_size(size_t a, size_t b)
{
	return a < b ? a : b;
}

/*
 * One pass. The message is cut into pieces by keystream chunk: piece 0 is
 * bytes 0..447 (chunk 0 starts with block 0, which keys Poly1305), piece k
 * the 512 bytes of chunk k after it. While chunk k is computed, piece k - 1
 * (all of whose blocks are full) is MACed (see chacha8); the last piece is
 * MACed alone (up to SMALL_MAX bytes, chunk 0 is chacha4's four blocks,
 * and that is the only piece). Sealing XORs a piece as soon as its chunk is there, opening
 * only after it has been MACed, so dst may be src; that takes the keystream
 * of two chunks, alternating.
 */
AVX2_FN static void run(uint8_t *dst, const uint8_t *src, size_t len, const uint8_t *ad,
			size_t adlen, const uint8_t nonce[static 12], const uint8_t key[static 32],
			bool seal, uint8_t tag[static 16])
{
	_Alignas(32) uint8_t ks[2][CHUNK];
	const uint8_t *ct = seal ? dst : src;
	uint32_t st[16];
	struct poly p;
	size_t a = 0, b = min_size(len, CHUNK - CHACHA_BLOCK), k = 1;

	chacha_state(st, key, nonce);
	if (len <= SMALL_MAX)
		chacha4(ks[0], st);
	else
		chacha8(ks[0], st, 0, NULL, NULL, 0);
	poly_init(&p, ks[0]);
	if (adlen)
		poly_padded(&p, ad, adlen);
	if (seal && len)
		xor_stream(dst, src, ks[0] + CHACHA_BLOCK, b);
	for (; b < len; k++) {
		size_t next = min_size(len, b + CHUNK);

		chacha8(ks[k & 1], st, (uint32_t)(k * WIDE), &p, ct + a, (b - a) / POLY_BLOCK);
		if (seal)
			xor_stream(dst + b, src + b, ks[k & 1], next - b);
		else
			xor_stream(dst + a, src + a, ks[(k - 1) & 1] + (k == 1 ? CHACHA_BLOCK : 0),
				   b - a);
		a = b;
		b = next;
	}
	if (b > a) {
		poly_padded(&p, ct + a, b - a);
		if (!seal)
			xor_stream(dst + a, src + a, ks[(k - 1) & 1] + (k == 1 ? CHACHA_BLOCK : 0),
				   b - a);
	}
	poly_lengths(&p, adlen, len);
	poly_final(&p, tag);

	sodium_memzero(ks, sizeof(ks));
	sodium_memzero(st, sizeof(st));
	sodium_memzero(&p, sizeof(p));
}

void gw_chachapoly_avx2_seal(uint8_t *dst, const uint8_t *src, size_t len, const uint8_t *ad,
			     size_t adlen, const uint8_t nonce[static GW_CHACHAPOLY_NONCE_LEN],
			     const uint8_t key[static GW_CHACHAPOLY_KEY_LEN])
{
	run(dst, src, len, ad, adlen, nonce, key, true, dst + len);
}

void gw_chachapoly_avx2_open(uint8_t *dst, const uint8_t *src, size_t len, const uint8_t *ad,
			     size_t adlen, const uint8_t nonce[static GW_CHACHAPOLY_NONCE_LEN],
			     const uint8_t key[static GW_CHACHAPOLY_KEY_LEN],
			     uint8_t tag[static GW_CHACHAPOLY_TAG_LEN])
{
	run(dst, src, len, ad, adlen, nonce, key, false, tag);
}

AVX2_FN void gw_chachapoly_avx2_xor(uint8_t *dst, const uint8_t *src, size_t len,
				    const uint8_t nonce[static GW_CHACHAPOLY_NONCE_LEN],
				    const uint8_t key[static GW_CHACHAPOLY_KEY_LEN],
				    uint32_t counter)
{
	_Alignas(32) uint8_t ks[CHUNK];
	uint32_t st[16];
	size_t i, n;

	chacha_state(st, key, nonce);
	for (i = 0; i < len; i += n) {
		n = len - i < CHUNK ? len - i : CHUNK;
		chacha8(ks, st, counter, NULL, NULL, 0);
		xor_stream(dst + i, src + i, ks, n);
		counter += WIDE;
	}
	sodium_memzero(ks, sizeof(ks));
	sodium_memzero(st, sizeof(st));
}

void gw_chachapoly_poly1305(uint8_t tag[static GW_CHACHAPOLY_TAG_LEN], const uint8_t *m, size_t len,
			    const uint8_t key[static 32])
{
	uint8_t last[POLY_BLOCK] = {0};
	size_t full = len / POLY_BLOCK, rest = len % POLY_BLOCK;
	struct poly p;

	poly_init(&p, key);
	if (full)
		poly_blocks(&p, m, full, 1);
	if (rest) {
		memcpy(last, m + full * POLY_BLOCK, rest);
		last[rest] = 1;
		poly_blocks(&p, last, 1, 0);
	}
	poly_final(&p, tag);
	sodium_memzero(last, sizeof(last));
	sodium_memzero(&p, sizeof(p));
}

#else /* no AVX2 code in this build */

bool gw_chachapoly_avx2_usable(void)
{
	return false;
}

/* Never called: callers check gw_chachapoly_avx2_usable() first. */
void gw_chachapoly_avx2_seal(uint8_t *dst, const uint8_t *src, size_t len, const uint8_t *ad,
			     size_t adlen, const uint8_t nonce[static GW_CHACHAPOLY_NONCE_LEN],
			     const uint8_t key[static GW_CHACHAPOLY_KEY_LEN])
{
	(void)dst, (void)src, (void)len, (void)ad, (void)adlen, (void)nonce, (void)key;
	abort();
}

void gw_chachapoly_avx2_open(uint8_t *dst, const uint8_t *src, size_t len, const uint8_t *ad,
			     size_t adlen, const uint8_t nonce[static GW_CHACHAPOLY_NONCE_LEN],
			     const uint8_t key[static GW_CHACHAPOLY_KEY_LEN],
			     uint8_t tag[static GW_CHACHAPOLY_TAG_LEN])
{
	(void)dst, (void)src, (void)len, (void)ad, (void)adlen, (void)nonce, (void)key, (void)tag;
	abort();
}

AVX2_FN void gw_chachapoly_avx2_xor(uint8_t *dst, const uint8_t *src, size_t len,
				    const uint8_t nonce[static GW_CHACHAPOLY_NONCE_LEN],
				    const uint8_t key[static GW_CHACHAPOLY_KEY_LEN],
				    uint32_t counter)
{
	(void)dst, (void)src, (void)len, (void)nonce, (void)key, (void)counter;
	abort();
}

void gw_chachapoly_poly1305(uint8_t tag[static GW_CHACHAPOLY_TAG_LEN], const uint8_t *m, size_t len,
			    const uint8_t key[static 32])
{
	(void)tag, (void)m, (void)len, (void)key;
	abort();
}

#endif
