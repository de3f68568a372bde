// SPDX-License-Identifier: MIT
/*
 * lib/chachapoly.c (the AVX2 ChaCha20-Poly1305) against RFC 8439's vectors
 * (sections 2.3.2, 2.4.2, 2.5.2, 2.8.2) and against libsodium, the
 * reference: every length 0..4200 with random keys, nonces and additional
 * data, sealing and opening, in place and not; every single-bit change of
 * ciphertext, tag and additional data rejected; Poly1305 on keys and
 * messages that drive the final reduction's edge cases. Also the choice
 * lib/crypto.c makes (GW_AEAD). Tests of the AVX2 code are skipped on a CPU
 * or build without it; ctest also runs this file with GW_AEAD=libsodium.
 */
#include "gw/chachapoly.h"
#include "gw/crypto.h"
#include "support.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

static void setup(void)
{
	cr_assert_eq(gw_crypto_init(), 0);
}

TestSuite(chachapoly, .init = setup);

static void need_avx2(void)
{
	if (!gw_chachapoly_avx2_usable())
		cr_skip_test("no AVX2 code on this CPU or build");
}

static const char sunscreen[] =
    "Ladies and Gentlemen of the class of '99: If I could offer you only "
    "one tip for the future, sunscreen would be it.";

/* RFC 8439 2.3.2: the block function, key 00..1f, counter 1. */
Test(chachapoly, rfc8439_2_3_2_block)
{
	uint8_t key[32], nonce[12], block[64] = {0};

	for (int i = 0; i < 32; i++)
		key[i] = (uint8_t)i;
	unhex(nonce, sizeof(nonce), "000000090000004a00000000");
	need_avx2();
	gw_chachapoly_avx2_xor(block, block, sizeof(block), nonce, key, 1);
	assert_hex(block, sizeof(block),
		   "10f1e7e4d13b5915500fdd1fa32071c4c7d1f4c733c068030422aa9ac3d46c4e"
		   "d2826446079faa0914c2d705d98b02a2b5129cd1de164eb9cbd083e8a2503c4e",
		   "2.3.2 block");
}

/* RFC 8439 2.4.2: encryption of 114 bytes from counter 1. */
Test(chachapoly, rfc8439_2_4_2_encryption)
{
	uint8_t key[32], nonce[12], ct[sizeof(sunscreen) - 1], pt[sizeof(ct)];

	for (int i = 0; i < 32; i++)
		key[i] = (uint8_t)i;
	unhex(nonce, sizeof(nonce), "000000000000004a00000000");
	need_avx2();
	gw_chachapoly_avx2_xor(ct, (const uint8_t *)sunscreen, sizeof(ct), nonce, key, 1);
	assert_hex(ct, sizeof(ct),
		   "6e2e359a2568f98041ba0728dd0d6981e97e7aec1d4360c20a27afccfd9fae0b"
		   "f91b65c5524733ab8f593dabcd62b3571639d624e65152ab8f530c359f0861d8"
		   "07ca0dbf500d6a6156a38e088a22b65e52bc514d16ccf806818ce91ab7793736"
		   "5af90bbf74a35be6b40b8eedf2785e42874d",
		   "2.4.2 ciphertext");
	gw_chachapoly_avx2_xor(pt, ct, sizeof(ct), nonce, key, 1);
	cr_assert(memcmp(pt, sunscreen, sizeof(pt)) == 0);
}

/* RFC 8439 2.5.2: Poly1305 of "Cryptographic Forum Research Group". */
Test(chachapoly, rfc8439_2_5_2_poly1305)
{
	static const char msg[] = "Cryptographic Forum Research Group";
	uint8_t key[32], tag[16];

	unhex(key, sizeof(key), "85d6be7857556d337f4452fe42d506a80103808afb0db2fd4abff6af4149f51b");
	need_avx2();
	gw_chachapoly_poly1305(tag, (const uint8_t *)msg, sizeof(msg) - 1, key);
	assert_hex(tag, sizeof(tag), "a8061dc1305136c6c22b8baf0c0127a9", "2.5.2 tag");
}

/* RFC 8439 2.8.2: the AEAD, sealing and opening. */
Test(chachapoly, rfc8439_2_8_2_aead)
{
	uint8_t key[32], nonce[12], ad[12], ct[sizeof(sunscreen) - 1 + 16], pt[sizeof(ct) - 16];
	uint8_t tag[16];

	for (int i = 0; i < 32; i++)
		key[i] = (uint8_t)(0x80 + i);
	unhex(nonce, sizeof(nonce), "070000004041424344454647");
	unhex(ad, sizeof(ad), "50515253c0c1c2c3c4c5c6c7");
	need_avx2();
	gw_chachapoly_avx2_seal(ct, (const uint8_t *)sunscreen, sizeof(pt), ad, sizeof(ad), nonce,
				key);
	assert_hex(ct, sizeof(ct),
		   "d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d6"
		   "3dbea45e8ca9671282fafb69da92728b1a71de0a9e060b2905d6a5b67ecd3b36"
		   "92ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc"
		   "3ff4def08e4b7a9de576d26586cec64b6116"
		   "1ae10b594f09e26a7e902ecbd0600691",
		   "2.8.2 ciphertext and tag");
	gw_chachapoly_avx2_open(pt, ct, sizeof(pt), ad, sizeof(ad), nonce, key, tag);
	cr_assert(memcmp(pt, sunscreen, sizeof(pt)) == 0);
	cr_assert(memcmp(tag, ct + sizeof(pt), 16) == 0);
}

enum { MAX_LEN = 4200, MAX_AD = 300 };

/* Every length 0..4200 against libsodium: seal, open, in place and apart. */
Test(chachapoly, every_length_matches_libsodium)
{
	static uint8_t pt[MAX_LEN], ours[MAX_LEN + 16], ref[MAX_LEN + 16], back[MAX_LEN + 16];
	uint8_t key[32], nonce[12], ad[MAX_AD], tag[16];

	need_avx2();
	for (size_t len = 0; len <= MAX_LEN; len++) {
		size_t adlen = randombytes_uniform(4) ? randombytes_uniform(MAX_AD + 1) : 0;
		unsigned long long rlen = 0;

		randombytes_buf(key, sizeof(key));
		randombytes_buf(nonce, sizeof(nonce));
		randombytes_buf(ad, adlen);
		randombytes_buf(pt, len);

		gw_chachapoly_avx2_seal(ours, pt, len, adlen ? ad : NULL, adlen, nonce, key);
		crypto_aead_chacha20poly1305_ietf_encrypt(ref, &rlen, pt, len, ad, adlen, NULL,
							  nonce, key);
		cr_assert_eq(rlen, len + 16);
		cr_assert(memcmp(ours, ref, len + 16) == 0, "seal differs at length %zu", len);

		memset(back, 0xa5, sizeof(back));
		gw_chachapoly_avx2_open(back, ref, len, adlen ? ad : NULL, adlen, nonce, key, tag);
		cr_assert(memcmp(back, pt, len) == 0, "open differs at length %zu", len);
		cr_assert(memcmp(tag, ref + len, 16) == 0, "open's tag differs at length %zu", len);
		cr_assert_eq(back[len], 0xa5, "open wrote past the plaintext at length %zu", len);

		/* In place, both ways. */
		memcpy(back, pt, len);
		gw_chachapoly_avx2_seal(back, back, len, ad, adlen, nonce, key);
		cr_assert(memcmp(back, ref, len + 16) == 0, "in-place seal, length %zu", len);
		gw_chachapoly_avx2_open(back, back, len, ad, adlen, nonce, key, tag);
		cr_assert(memcmp(back, pt, len) == 0, "in-place open, length %zu", len);
		cr_assert(memcmp(tag, ref + len, 16) == 0, "in-place open's tag, length %zu", len);
	}
}

/* The same through gw_aead_*, whichever code GW_AEAD chose. */
Test(chachapoly, gw_aead_matches_libsodium)
{
	static uint8_t pt[MAX_LEN], ours[MAX_LEN + 16], ref[MAX_LEN + 16];
	uint8_t key[32], nonce[12] = {0}, ad[MAX_AD];

	for (size_t len = 0; len <= MAX_LEN; len += 1 + randombytes_uniform(7)) {
		size_t adlen = randombytes_uniform(MAX_AD + 1);
		uint64_t counter;

		randombytes_buf(key, sizeof(key));
		randombytes_buf(&counter, sizeof(counter));
		memcpy(nonce + 4, &counter, 8);
		randombytes_buf(ad, adlen);
		randombytes_buf(pt, len);
		gw_aead_encrypt(ours, pt, len, ad, adlen, counter, key);
		crypto_aead_chacha20poly1305_ietf_encrypt(ref, NULL, pt, len, ad, adlen, NULL,
							  nonce, key);
		cr_assert(memcmp(ours, ref, len + 16) == 0, "length %zu", len);
		cr_assert(gw_aead_decrypt(ours, ref, len + 16, ad, adlen, counter, key));
		cr_assert(memcmp(ours, pt, len) == 0, "length %zu", len);
	}
}

static bool all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

/*
 * Every single-bit change of ciphertext, tag and additional data is
 * rejected, by the AVX2 code's tag and by gw_aead_decrypt, which leaves
 * zeros (in place too); the unchanged message still opens.
 */
Test(chachapoly, every_bit_flip_rejected)
{
	static const size_t lens[] = {0, 1, 15, 16, 17, 63, 64, 65, 447, 448, 449, 960, 1420};
	enum { ADLEN = 13 };
	uint8_t key[32], nonce[12] = {0}, ad[ADLEN], pt[1420], ct[1420 + 16], out[1420 + 16];
	uint8_t tag[16];
	const uint64_t counter = 0x0102030405060708ULL;
	bool avx2 = gw_chachapoly_avx2_usable();

	memcpy(nonce + 4, &counter, 8);
	for (size_t l = 0; l < sizeof(lens) / sizeof(lens[0]); l++) {
		size_t len = lens[l], clen = len + 16;

		randombytes_buf(key, sizeof(key));
		randombytes_buf(ad, sizeof(ad));
		randombytes_buf(pt, len);
		gw_aead_encrypt(ct, pt, len, ad, sizeof(ad), counter, key);
		cr_assert(gw_aead_decrypt(out, ct, clen, ad, sizeof(ad), counter, key));

		for (size_t bit = 0; bit < 8 * (clen + ADLEN); bit++) {
			uint8_t *p = bit < 8 * clen ? &ct[bit / 8] : &ad[bit / 8 - clen];

			*p ^= (uint8_t)(1u << (bit % 8));
			if (avx2) {
				gw_chachapoly_avx2_open(out, ct, len, ad, sizeof(ad), nonce, key,
							tag);
				cr_assert_not(gw_memeq(tag, ct + len, 16), "len %zu bit %zu", len,
					      bit);
			}
			memset(out, 0xa5, sizeof(out));
			cr_assert_not(gw_aead_decrypt(out, ct, clen, ad, sizeof(ad), counter, key),
				      "len %zu bit %zu accepted", len, bit);
			cr_assert(all_zero(out, len), "len %zu bit %zu: output not wiped", len,
				  bit);
			memcpy(out, ct, clen);
			cr_assert_not(
			    gw_aead_decrypt(out, out, clen, ad, sizeof(ad), counter, key));
			cr_assert(all_zero(out, len), "in place: output not wiped");
			*p ^= (uint8_t)(1u << (bit % 8));
		}
		cr_assert(gw_aead_decrypt(out, ct, clen, ad, sizeof(ad), counter, key));
		cr_assert(memcmp(out, pt, len) == 0);
	}
}

/* A ciphertext shorter than a tag is refused before anything is read. */
Test(chachapoly, too_short)
{
	uint8_t key[32] = {1}, ct[15] = {0}, out[16];

	for (size_t n = 0; n < sizeof(ct); n++)
		cr_assert_not(gw_aead_decrypt(out, ct, n, NULL, 0, 0, key));
}

/* ChaCha20 from several start counters over several chunks, against libsodium. */
Test(chachapoly, stream_matches_libsodium)
{
	static const uint32_t counters[] = {0, 1, 7, 8, 1000, 0x7fffffff};
	static uint8_t in[3000], ours[sizeof(in)], ref[sizeof(in)];
	uint8_t key[32], nonce[12];

	need_avx2();
	for (size_t c = 0; c < sizeof(counters) / sizeof(counters[0]); c++)
		for (size_t len = 0; len <= sizeof(in); len += 1 + randombytes_uniform(97)) {
			randombytes_buf(key, sizeof(key));
			randombytes_buf(nonce, sizeof(nonce));
			randombytes_buf(in, len);
			gw_chachapoly_avx2_xor(ours, in, len, nonce, key, counters[c]);
			crypto_stream_chacha20_ietf_xor_ic(ref, in, len, nonce, counters[c], key);
			cr_assert(memcmp(ours, ref, len) == 0, "counter %u length %zu", counters[c],
				  len);
		}
}

/*
 * Poly1305 against libsodium, random and extreme: r = 0, r = 1, r and s with
 * every allowed bit set, messages of 0xff (the accumulator near 2^130, where
 * the final subtraction of p is taken or not).
 */
Test(chachapoly, poly1305_matches_libsodium)
{
	static uint8_t msg[1100];
	uint8_t key[32], ours[16], ref[16];

	need_avx2();
	for (int kind = 0; kind < 6; kind++)
		for (size_t len = 0; len <= sizeof(msg); len += kind < 5 ? 1 : 13) {
			switch (kind) {
			case 0: /* r = 0, s = ff.. */
				memset(key, 0, 16);
				memset(key + 16, 0xff, 16);
				memset(msg, 0xff, len);
				break;
			case 1: /* r = 1, s = 0 */
				memset(key, 0, 32);
				key[0] = 1;
				memset(msg, 0xff, len);
				break;
			case 2: /* everything set (clamping keeps what it allows) */
				memset(key, 0xff, 32);
				memset(msg, 0xff, len);
				break;
			case 3:
				memset(key, 0xff, 32);
				randombytes_buf(msg, len);
				break;
			case 4:
				randombytes_buf(key, sizeof(key));
				memset(msg, 0xff, len);
				break;
			default:
				randombytes_buf(key, sizeof(key));
				randombytes_buf(msg, len);
			}
			gw_chachapoly_poly1305(ours, msg, len, key);
			crypto_onetimeauth_poly1305(ref, msg, len, key);
			cr_assert(memcmp(ours, ref, 16) == 0, "kind %d length %zu", kind, len);
		}
}

/* GW_AEAD picks the code; a bad value is refused. */
Test(chachapoly, selection)
{
	const char *env = getenv("GW_AEAD");

	if (env && !strcmp(env, "libsodium"))
		cr_assert_str_eq(gw_aead_impl_name(), "libsodium");
	else if (!env || !*env)
		cr_assert_str_eq(gw_aead_impl_name(),
				 gw_chachapoly_avx2_usable() ? "avx2" : "libsodium");

	cr_assert_eq(setenv("GW_AEAD", "libsodium", 1), 0);
	cr_assert_eq(gw_crypto_init(), 0);
	cr_assert_str_eq(gw_aead_impl_name(), "libsodium");
	cr_assert_eq(setenv("GW_AEAD", "avx2", 1), 0);
	if (gw_chachapoly_avx2_usable()) {
		cr_assert_eq(gw_crypto_init(), 0);
		cr_assert_str_eq(gw_aead_impl_name(), "avx2");
	} else {
		cr_assert_eq(gw_crypto_init(), -ENOTSUP);
	}
	cr_assert_eq(setenv("GW_AEAD", "sodium", 1), 0);
	cr_assert_eq(gw_crypto_init(), -EINVAL);
	cr_assert_eq(setenv("GW_AEAD", "auto", 1), 0);
	cr_assert_eq(gw_crypto_init(), 0);
	cr_assert_str_eq(gw_aead_impl_name(), gw_chachapoly_avx2_usable() ? "avx2" : "libsodium");
}
