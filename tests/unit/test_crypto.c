// SPDX-License-Identifier: MIT
/*
 * Known-answer tests for lib/crypto.c.
 *
 * Sources of the expected values:
 * - BLAKE2s: RFC 7693 Appendix B ("abc"), the BLAKE2 reference package's
 *   keyed KAT (testvectors/blake2s-test.txt: key 00..1f, input 00..n-1), and
 *   WireGuard's published CONSTRUCTION/IDENTIFIER hashes.
 * - HMAC-BLAKE2s and the KDF: recomputed here from their definitions, plus
 *   fixed values produced with Python's hashlib.blake2s and hmac modules.
 * - ChaCha20-Poly1305: RFC 8439 section 2.8.2 and Appendix A.5.
 * - XChaCha20-Poly1305: draft-irtf-cfrg-xchacha-03 Appendix A.3.1.
 * - X25519: RFC 7748 sections 5.2 and 6.1; low-order points as rejected by
 *   libsodium and OpenSSL.
 * The RFC and draft vectors were also cross-checked against Python's
 * cryptography package (OpenSSL).
 */
#include "gw/crypto.h"
#include "support.h"

#include <criterion/criterion.h>
#include <signal.h>
#include <sodium.h>
#include <string.h>

static void setup(void)
{
	cr_assert_eq(gw_crypto_init(), 0);
	/* A second call must succeed too. */
	cr_assert_eq(gw_crypto_init(), 0);
}

TestSuite(crypto, .init = setup);

static bool all_zero(const uint8_t *p, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		if (p[i])
			return false;
	return true;
}

static void fill_seq(uint8_t *p, size_t len, uint8_t start)
{
	size_t i;

	for (i = 0; i < len; i++)
		p[i] = (uint8_t)(start + i);
}

/* ---- BLAKE2s ---- */

static const struct {
	const char *in;
	const char *digest;
} unkeyed_vectors[] = {
    /* RFC 7693 Appendix B. */
    {"abc", "508c5e8c327c14e2e1a72ba34eeb452f37458b209ed63a294d999b4c86675982"},
    {"", "69217a3079908094e11121d042354a7c1f55b6482ca1a51e1b250dfd1ed0eef9"},
    /* WireGuard's initial chaining key: HASH(CONSTRUCTION). */
    {"Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s",
     "60e26daef327efc02ec335e2a025d2d016eb4206f87277f52d38d1988b78cd36"},
};

Test(crypto, blake2s_unkeyed)
{
	uint8_t out[GW_HASH_LEN];
	size_t i;

	for (i = 0; i < sizeof(unkeyed_vectors) / sizeof(unkeyed_vectors[0]); i++) {
		const char *in = unkeyed_vectors[i].in;

		gw_blake2s(out, sizeof(out), in, strlen(in), NULL, 0);
		assert_hex(out, sizeof(out), unkeyed_vectors[i].digest, in);
	}
}

Test(crypto, blake2s_wireguard_initial_hash)
{
	static const char construction[] = "Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s";
	static const char ident[] = "WireGuard v1 zx2c4 Jason@zx2c4.com";
	uint8_t ck[GW_HASH_LEN], h[GW_HASH_LEN];
	struct gw_blake2s s;

	gw_blake2s(ck, sizeof(ck), construction, strlen(construction), NULL, 0);
	gw_blake2s_init(&s, GW_HASH_LEN, NULL, 0);
	gw_blake2s_update(&s, ck, sizeof(ck));
	gw_blake2s_update(&s, ident, strlen(ident));
	gw_blake2s_final(&s, h, sizeof(h));
	assert_hex(h, sizeof(h), "2211b361081ac566691243db458ad5322d9c6c662293e8b70ee19c65ba079ef3",
		   "initial hash");
	cr_assert(all_zero((const uint8_t *)&s, sizeof(s)), "final must wipe the state");
}

/* BLAKE2 reference package, keyed KAT: key = 00..1f, input = 00..(len-1). */
static const struct {
	size_t len;
	const char *digest;
} keyed_kat[] = {
    {0, "48a8997da407876b3d79c0d92325ad3b89cbb754d86ab71aee047ad345fd2c49"},
    {1, "40d15fee7c328830166ac3f918650f807e7e01e177258cdc0a39b11f598066f1"},
    {2, "6bb71300644cd3991b26ccd4d274acd1adeab8b1d7914546c1198bbe9fc9d803"},
    {63, "c65382513f07460da39833cb666c5ed82e61b9e998f4b0c4287cee56c3cc9bcd"},
    {64, "8975b0577fd35566d750b362b0897a26c399136df07bababbde6203ff2954ed4"},
    {65, "21fe0ceb0052be7fb0f004187cacd7de67fa6eb0938d927677f2398c132317a8"},
    {254, "db444c15597b5f1a03d1f9edd16e4a9f43a667cc275175dfa2b704e3bb1a9b83"},
    {255, "3fb735061abc519dfe979e54c1ee5bfad0a9d858b3315bad34bde999efd724dd"},
};

#define KAT_COUNT (sizeof(keyed_kat) / sizeof(keyed_kat[0]))

Test(crypto, blake2s_keyed_kat_one_shot)
{
	uint8_t key[GW_BLAKE2S_KEY_MAX], in[256], out[GW_HASH_LEN];
	size_t i;

	fill_seq(key, sizeof(key), 0);
	fill_seq(in, sizeof(in), 0);
	for (i = 0; i < KAT_COUNT; i++) {
		gw_blake2s(out, sizeof(out), in, keyed_kat[i].len, key, sizeof(key));
		assert_hex(out, sizeof(out), keyed_kat[i].digest, "keyed kat");
	}
}

/* Chunk sizes chosen to straddle the 64-byte block boundary in odd ways. */
static const size_t chunk_sizes[] = {1, 3, 7, 13, 31, 64, 65, 127};

static void hash_in_chunks(uint8_t out[GW_HASH_LEN], const uint8_t *key, size_t keylen,
			   const uint8_t *in, size_t inlen, size_t first_chunk)
{
	struct gw_blake2s s;
	size_t off = 0, c = first_chunk;

	gw_blake2s_init(&s, GW_HASH_LEN, key, keylen);
	while (off < inlen) {
		size_t n = chunk_sizes[c++ % (sizeof(chunk_sizes) / sizeof(chunk_sizes[0]))];

		if (n > inlen - off)
			n = inlen - off;
		gw_blake2s_update(&s, in + off, n);
		off += n;
	}
	gw_blake2s_update(&s, NULL, 0);
	gw_blake2s_final(&s, out, GW_HASH_LEN);
}

Test(crypto, blake2s_incremental_matches_kat)
{
	uint8_t key[GW_BLAKE2S_KEY_MAX], in[256], out[GW_HASH_LEN], once[GW_HASH_LEN];
	size_t i, start;

	fill_seq(key, sizeof(key), 0);
	fill_seq(in, sizeof(in), 0);
	for (i = 0; i < KAT_COUNT; i++) {
		for (start = 0; start < sizeof(chunk_sizes) / sizeof(chunk_sizes[0]); start++) {
			hash_in_chunks(out, key, sizeof(key), in, keyed_kat[i].len, start);
			assert_hex(out, sizeof(out), keyed_kat[i].digest, "incremental kat");
		}
		/* Unkeyed: chunked must equal one-shot. */
		gw_blake2s(once, sizeof(once), in, keyed_kat[i].len, NULL, 0);
		hash_in_chunks(out, NULL, 0, in, keyed_kat[i].len, 3);
		cr_assert(memcmp(out, once, sizeof(out)) == 0, "unkeyed chunked != one-shot");
	}
}

/* WireGuard's mac1 shape: keyed BLAKE2s-128 (Python hashlib, digest_size=16). */
Test(crypto, blake2s_128_keyed)
{
	uint8_t key[GW_BLAKE2S_KEY_MAX], in[100], out[GW_MAC_LEN], inc[GW_MAC_LEN];
	struct gw_blake2s s;

	fill_seq(key, sizeof(key), 0x20);
	fill_seq(in, sizeof(in), 0);
	gw_blake2s(out, sizeof(out), in, sizeof(in), key, sizeof(key));
	assert_hex(out, sizeof(out), "be881ff273ddfbba8d0da3ae9872b389", "blake2s-128");

	gw_blake2s_init(&s, GW_MAC_LEN, key, sizeof(key));
	gw_blake2s_update(&s, in, 41);
	gw_blake2s_update(&s, in + 41, sizeof(in) - 41);
	gw_blake2s_final(&s, inc, sizeof(inc));
	cr_assert(memcmp(out, inc, sizeof(out)) == 0);
}

/* Out-of-contract lengths are caller bugs: they abort, never hash silently. */
Test(crypto, blake2s_bad_outlen_aborts, .signal = SIGABRT)
{
	struct gw_blake2s s;

	gw_blake2s_init(&s, GW_HASH_LEN + 1, NULL, 0);
}

Test(crypto, blake2s_final_outlen_mismatch_aborts, .signal = SIGABRT)
{
	uint8_t out[GW_HASH_LEN];
	struct gw_blake2s s;

	gw_blake2s_init(&s, GW_MAC_LEN, NULL, 0);
	gw_blake2s_final(&s, out, GW_HASH_LEN);
}

/* ---- HMAC-BLAKE2s ---- */

/* RFC 2104 written out with gw_blake2s only, as an independent reference. */
static void ref_hmac(uint8_t out[GW_HASH_LEN], const uint8_t *key, size_t keylen, const uint8_t *in,
		     size_t inlen)
{
	uint8_t k[GW_BLAKE2S_BLOCK_LEN] = {0};
	uint8_t buf[GW_BLAKE2S_BLOCK_LEN + 512];
	uint8_t inner[GW_HASH_LEN];
	size_t i;

	cr_assert_leq(inlen, 512);
	if (keylen > GW_BLAKE2S_BLOCK_LEN)
		gw_blake2s(k, GW_HASH_LEN, key, keylen, NULL, 0);
	else if (keylen)
		memcpy(k, key, keylen);
	for (i = 0; i < GW_BLAKE2S_BLOCK_LEN; i++)
		buf[i] = k[i] ^ 0x36;
	if (inlen)
		memcpy(buf + GW_BLAKE2S_BLOCK_LEN, in, inlen);
	gw_blake2s(inner, GW_HASH_LEN, buf, GW_BLAKE2S_BLOCK_LEN + inlen, NULL, 0);
	for (i = 0; i < GW_BLAKE2S_BLOCK_LEN; i++)
		buf[i] = k[i] ^ 0x5c;
	memcpy(buf + GW_BLAKE2S_BLOCK_LEN, inner, GW_HASH_LEN);
	gw_blake2s(out, GW_HASH_LEN, buf, GW_BLAKE2S_BLOCK_LEN + GW_HASH_LEN, NULL, 0);
}

/* Expected values: Python hmac.new(key, msg, hashlib.blake2s).hexdigest(). */
static const struct {
	size_t keylen; /* key = 00..keylen-1 */
	size_t inlen;  /* 0: msg is the string below; else msg = 00..inlen-1 */
	const char *msg;
	const char *mac;
} hmac_vectors[] = {
    {32, 0, "gwcluster hmac-blake2s",
     "deb7bb4d7b24e387b185ea616c6dec72948011ba65c74de05d523d0802021f6e"},
    {80, 200, NULL, "debc89a764293be8c89ee9b1c606aa5df3fd392e2791d3eb37c4164f7dd1aa48"},
    {0, 0, "", "eaf4bb25938f4d20e72656bbbc7a9bf63c0c18537333c35bdb67db1402661acd"},
    {64, 0, "abc", "3a0ef09eac123871fb79852ec512086d013abff437bd68ca03630932bd6ba81f"},
};

Test(crypto, hmac_blake2s_vectors)
{
	uint8_t key[80], buf[200], out[GW_HASH_LEN], ref[GW_HASH_LEN];
	size_t i;

	fill_seq(key, sizeof(key), 0);
	for (i = 0; i < sizeof(hmac_vectors) / sizeof(hmac_vectors[0]); i++) {
		const uint8_t *msg = buf;
		size_t len = hmac_vectors[i].inlen;

		if (hmac_vectors[i].msg) {
			msg = (const uint8_t *)hmac_vectors[i].msg;
			len = strlen(hmac_vectors[i].msg);
		} else {
			fill_seq(buf, len, 0);
		}
		gw_hmac_blake2s(out, key, hmac_vectors[i].keylen, msg, len);
		assert_hex(out, sizeof(out), hmac_vectors[i].mac, "hmac fixed vector");
		ref_hmac(ref, key, hmac_vectors[i].keylen, msg, len);
		cr_assert(memcmp(out, ref, sizeof(out)) == 0, "hmac != definition");
	}
}

Test(crypto, hmac_blake2s_matches_definition)
{
	static const size_t keylens[] = {0, 1, 31, 32, 33, 63, 64, 65, 100};
	static const size_t inlens[] = {0, 1, 33, 64, 65, 300};
	uint8_t key[100], in[300], out[GW_HASH_LEN], ref[GW_HASH_LEN];
	size_t k, m;

	fill_seq(key, sizeof(key), 0xa0);
	fill_seq(in, sizeof(in), 0x11);
	for (k = 0; k < sizeof(keylens) / sizeof(keylens[0]); k++) {
		for (m = 0; m < sizeof(inlens) / sizeof(inlens[0]); m++) {
			gw_hmac_blake2s(out, key, keylens[k], in, inlens[m]);
			ref_hmac(ref, key, keylens[k], in, inlens[m]);
			cr_assert(memcmp(out, ref, sizeof(out)) == 0, "keylen %zu inlen %zu",
				  keylens[k], inlens[m]);
		}
	}
}

Test(crypto, hmac_blake2s_output_may_alias_inputs)
{
	uint8_t key[GW_HASH_LEN], in[GW_HASH_LEN], want[GW_HASH_LEN], buf[GW_HASH_LEN];

	fill_seq(key, sizeof(key), 1);
	fill_seq(in, sizeof(in), 2);
	gw_hmac_blake2s(want, key, sizeof(key), in, sizeof(in));

	memcpy(buf, key, sizeof(buf));
	gw_hmac_blake2s(buf, buf, sizeof(buf), in, sizeof(in));
	cr_assert(memcmp(buf, want, sizeof(buf)) == 0, "out == key");

	memcpy(buf, in, sizeof(buf));
	gw_hmac_blake2s(buf, key, sizeof(key), buf, sizeof(buf));
	cr_assert(memcmp(buf, want, sizeof(buf)) == 0, "out == in");
}

/* ---- KDF ---- */

static const char kdf_ck[] = "60e26daef327efc02ec335e2a025d2d016eb4206f87277f52d38d1988b78cd36";
/* Python: prk = hmac(ck, 00..1f); t1 = hmac(prk, 01); t2 = hmac(prk, t1||02); ... */
static const char *const kdf_expected[3] = {
    "6ff66e10ab4a55ac8144a867fcd9f8ee64d4bd6239223338cb3437cf085ab031",
    "203b22d63d63e35cebb9e40210cf8c1d7f90879428a4c766cda9ef34bb299398",
    "35a7b2fc3e4f59db341dbe588e3b75897980c463d5bbb855f8ed8134ff40133a",
};

Test(crypto, kdf_fixed_vector_and_chain)
{
	uint8_t ck[GW_HASH_LEN], in[32], t[3][GW_HASH_LEN];
	uint8_t prk[GW_HASH_LEN], ref[GW_HASH_LEN], buf[GW_HASH_LEN + 1];
	size_t i;

	unhex(ck, sizeof(ck), kdf_ck);
	fill_seq(in, sizeof(in), 0);
	gw_kdf(t[0], t[1], t[2], ck, in, sizeof(in));
	for (i = 0; i < 3; i++)
		assert_hex(t[i], GW_HASH_LEN, kdf_expected[i], "kdf fixed vector");

	/* The same chain spelled out with gw_hmac_blake2s. */
	gw_hmac_blake2s(prk, ck, sizeof(ck), in, sizeof(in));
	buf[0] = 1;
	gw_hmac_blake2s(ref, prk, sizeof(prk), buf, 1);
	cr_assert(memcmp(ref, t[0], GW_HASH_LEN) == 0);
	for (i = 1; i < 3; i++) {
		memcpy(buf, ref, GW_HASH_LEN);
		buf[GW_HASH_LEN] = (uint8_t)(i + 1);
		gw_hmac_blake2s(ref, prk, sizeof(prk), buf, sizeof(buf));
		cr_assert(memcmp(ref, t[i], GW_HASH_LEN) == 0, "t%zu", i + 1);
	}
}

Test(crypto, kdf_fewer_outputs_and_aliasing)
{
	uint8_t ck[GW_HASH_LEN], in[32], t[3][GW_HASH_LEN], a[GW_HASH_LEN], b[GW_HASH_LEN];

	unhex(ck, sizeof(ck), kdf_ck);
	fill_seq(in, sizeof(in), 0);
	gw_kdf(t[0], t[1], t[2], ck, in, sizeof(in));

	gw_kdf(a, NULL, NULL, ck, in, sizeof(in));
	cr_assert(memcmp(a, t[0], GW_HASH_LEN) == 0, "kdf1");
	gw_kdf(a, b, NULL, ck, in, sizeof(in));
	cr_assert(memcmp(a, t[0], GW_HASH_LEN) == 0 && memcmp(b, t[1], GW_HASH_LEN) == 0, "kdf2");

	/* WireGuard writes the new chaining key over the old: ck = KDF1(ck, x). */
	memcpy(a, ck, sizeof(a));
	gw_kdf(a, b, NULL, a, in, sizeof(in));
	cr_assert(memcmp(a, t[0], GW_HASH_LEN) == 0 && memcmp(b, t[1], GW_HASH_LEN) == 0,
		  "t1 aliasing ck");
	memcpy(b, ck, sizeof(b));
	gw_kdf(a, b, NULL, b, in, sizeof(in));
	cr_assert(memcmp(a, t[0], GW_HASH_LEN) == 0 && memcmp(b, t[1], GW_HASH_LEN) == 0,
		  "t2 aliasing ck");
	memcpy(a, ck, sizeof(a));
	gw_kdf(t[0], t[1], a, a, in, sizeof(in));
	assert_hex(a, GW_HASH_LEN, kdf_expected[2], "t3 aliasing ck");
}

/* ---- ChaCha20-Poly1305 ---- */

static const char sunscreen[] =
    "Ladies and Gentlemen of the class of '99: If I could offer you only "
    "one tip for the future, sunscreen would be it.";

/* RFC 8439 2.8.2: its nonce 07000000 4041424344454647 is not WireGuard's form
 * (nonzero first word), so it goes straight to libsodium; this pins down
 * that the library underneath is RFC 8439 ChaCha20-Poly1305. */
Test(crypto, aead_rfc8439_2_8_2_via_libsodium)
{
	uint8_t key[GW_KEY_LEN], nonce[12], ad[12], ct[sizeof(sunscreen) - 1 + GW_AEAD_TAG_LEN];
	uint8_t pt[sizeof(sunscreen) - 1];
	unsigned long long len = 0;

	fill_seq(key, sizeof(key), 0x80);
	unhex(nonce, sizeof(nonce), "070000004041424344454647");
	unhex(ad, sizeof(ad), "50515253c0c1c2c3c4c5c6c7");
	crypto_aead_chacha20poly1305_ietf_encrypt(ct, &len, (const uint8_t *)sunscreen, sizeof(pt),
						  ad, sizeof(ad), NULL, nonce, key);
	cr_assert_eq(len, sizeof(ct));
	assert_hex(ct, sizeof(ct),
		   "d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d6"
		   "3dbea45e8ca9671282fafb69da92728b1a71de0a9e060b2905d6a5b67ecd3b36"
		   "92ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc"
		   "3ff4def08e4b7a9de576d26586cec64b6116"
		   "1ae10b594f09e26a7e902ecbd0600691",
		   "rfc8439 2.8.2");
	cr_assert_eq(crypto_aead_chacha20poly1305_ietf_decrypt(pt, NULL, NULL, ct, sizeof(ct), ad,
							       sizeof(ad), nonce, key),
		     0);
	cr_assert(memcmp(pt, sunscreen, sizeof(pt)) == 0);
}

/* RFC 8439 A.5: nonce 00000000 0102030405060708 is WireGuard's form, with
 * the counter 0x0807060504030201 little-endian. */
static const char a5_key[] = "1c9240a5eb55d38af333888604f6b5f0473917c1402b80099dca5cbc207075c0";
static const uint64_t a5_counter = 0x0807060504030201ULL;
static const char a5_ad[] = "f33388860000000000004e91";
static const char a5_ct[] = "64a0861575861af460f062c79be643bd5e805cfd345cf389f108670ac76c8cb2"
			    "4c6cfc18755d43eea09ee94e382d26b0bdb7b73c321b0100d4f03b7f355894cf"
			    "332f830e710b97ce98c8a84abd0b948114ad176e008d33bd60f982b1ff37c855"
			    "9797a06ef4f0ef61c186324e2b3506383606907b6a7c02b0f9f6157b53c867e4"
			    "b9166c767b804d46a59b5216cde7a4e99040c5a40433225ee282a1b0a06c523e"
			    "af4534d7f83fa1155b0047718cbc546a0d072b04b3564eea1b422273f548271a"
			    "0bb2316053fa76991955ebd63159434ecebb4e466dae5a1073a6727627097a10"
			    "49e617d91d361094fa68f0ff77987130305beaba2eda04df997b714d6c6f2c29"
			    "a6ad5cb4022b02709b"
			    "eead9d67890cbb22392336fea1851f38";
static const char a5_pt[] = "496e7465726e65742d4472616674732061726520647261667420646f63756d65"
			    "6e74732076616c696420666f722061206d6178696d756d206f6620736978206d"
			    "6f6e74687320616e64206d617920626520757064617465642c207265706c6163"
			    "65642c206f72206f62736f6c65746564206279206f7468657220646f63756d65"
			    "6e747320617420616e792074696d652e20497420697320696e617070726f7072"
			    "6961746520746f2075736520496e7465726e65742d4472616674732061732072"
			    "65666572656e6365206d6174657269616c206f7220746f206369746520746865"
			    "6d206f74686572207468616e206173202fe2809c776f726b20696e2070726f67"
			    "726573732e2fe2809d";

enum { A5_PT_LEN = 265, A5_CT_LEN = A5_PT_LEN + GW_AEAD_TAG_LEN };

Test(crypto, aead_rfc8439_a5_through_gw)
{
	uint8_t key[GW_KEY_LEN], ad[12], ct[A5_CT_LEN], pt[A5_PT_LEN], out[A5_CT_LEN];

	unhex(key, sizeof(key), a5_key);
	unhex(ad, sizeof(ad), a5_ad);
	cr_assert_eq(unhex(ct, sizeof(ct), a5_ct), sizeof(ct));
	cr_assert_eq(unhex(pt, sizeof(pt), a5_pt), sizeof(pt));

	cr_assert(gw_aead_decrypt(out, ct, sizeof(ct), ad, sizeof(ad), a5_counter, key));
	cr_assert(memcmp(out, pt, sizeof(pt)) == 0, "a5 decrypt");

	gw_aead_encrypt(out, pt, sizeof(pt), ad, sizeof(ad), a5_counter, key);
	cr_assert(memcmp(out, ct, sizeof(ct)) == 0, "a5 encrypt");

	/* In place, both ways. */
	memcpy(out, pt, sizeof(pt));
	gw_aead_encrypt(out, out, sizeof(pt), ad, sizeof(ad), a5_counter, key);
	cr_assert(memcmp(out, ct, sizeof(ct)) == 0, "a5 encrypt in place");
	cr_assert(gw_aead_decrypt(out, out, sizeof(ct), ad, sizeof(ad), a5_counter, key));
	cr_assert(memcmp(out, pt, sizeof(pt)) == 0, "a5 decrypt in place");
}

/* The counter lands little-endian after four zero bytes, for edge values too. */
Test(crypto, aead_nonce_layout)
{
	static const uint64_t counters[] = {0, 1, 0x0102030405060708ULL, UINT64_MAX - 1,
					    UINT64_MAX};
	uint8_t key[GW_KEY_LEN], msg[40], a[sizeof(msg) + GW_AEAD_TAG_LEN], b[sizeof(a)];
	uint8_t nonce[12];
	size_t i, j;

	fill_seq(key, sizeof(key), 7);
	fill_seq(msg, sizeof(msg), 9);
	for (i = 0; i < sizeof(counters) / sizeof(counters[0]); i++) {
		memset(nonce, 0, sizeof(nonce));
		for (j = 0; j < 8; j++)
			nonce[4 + j] = (uint8_t)(counters[i] >> (8 * j));
		gw_aead_encrypt(a, msg, sizeof(msg), NULL, 0, counters[i], key);
		crypto_aead_chacha20poly1305_ietf_encrypt(b, NULL, msg, sizeof(msg), NULL, 0, NULL,
							  nonce, key);
		cr_assert(memcmp(a, b, sizeof(a)) == 0, "counter #%zu", i);
	}
}

/* WireGuard keepalives: empty plaintext, just the tag. */
Test(crypto, aead_empty_plaintext)
{
	uint8_t key[GW_KEY_LEN], tag[GW_AEAD_TAG_LEN];

	fill_seq(key, sizeof(key), 3);
	gw_aead_encrypt(tag, NULL, 0, NULL, 0, 42, key);
	cr_assert(gw_aead_decrypt(NULL, tag, sizeof(tag), NULL, 0, 42, key));
	cr_assert_not(gw_aead_decrypt(NULL, tag, sizeof(tag), NULL, 0, 43, key));
	tag[0] ^= 1;
	cr_assert_not(gw_aead_decrypt(NULL, tag, sizeof(tag), NULL, 0, 42, key));
}

enum tamper { T_CT, T_TAG, T_AD, T_NONCE, T_KEY, T_SHORT };

static const struct {
	enum tamper what;
	size_t at; /* byte index for T_CT, T_TAG, T_AD */
	uint8_t bit;
} tampers[] = {
    {T_CT, 0, 0x01},  {T_CT, 100, 0x80}, {T_CT, A5_PT_LEN - 1, 0x10},
    {T_TAG, 0, 0x01}, {T_TAG, 15, 0x80}, {T_AD, 0, 0x01},
    {T_AD, 11, 0x40}, {T_NONCE, 0, 0},	 {T_KEY, 31, 0x02},
    {T_SHORT, 0, 0},
};

/* Applies one tamper to a copy of the A.5 inputs; returns the length to open. */
static size_t apply_tamper(size_t i, uint8_t *ct, uint8_t *ad, uint8_t *key, uint64_t *ctr)
{
	switch (tampers[i].what) {
	case T_CT:
		ct[tampers[i].at] ^= tampers[i].bit;
		break;
	case T_TAG:
		ct[A5_PT_LEN + tampers[i].at] ^= tampers[i].bit;
		break;
	case T_AD:
		ad[tampers[i].at] ^= tampers[i].bit;
		break;
	case T_NONCE:
		*ctr += 1;
		break;
	case T_KEY:
		key[tampers[i].at] ^= tampers[i].bit;
		break;
	case T_SHORT:
		return A5_CT_LEN - 1; /* a dropped byte shifts the tag */
	}
	return A5_CT_LEN;
}

Test(crypto, aead_tamper_fails_and_zeroes)
{
	uint8_t key[GW_KEY_LEN], ad[12], ct[A5_CT_LEN], out[A5_CT_LEN];
	size_t i, len;

	for (i = 0; i < sizeof(tampers) / sizeof(tampers[0]); i++) {
		uint64_t ctr = a5_counter;

		unhex(key, sizeof(key), a5_key);
		unhex(ad, sizeof(ad), a5_ad);
		unhex(ct, sizeof(ct), a5_ct);
		len = apply_tamper(i, ct, ad, key, &ctr);
		memset(out, 0xee, sizeof(out));
		cr_assert_not(gw_aead_decrypt(out, ct, len, ad, sizeof(ad), ctr, key),
			      "tamper #%zu accepted", i);
		cr_assert(all_zero(out, len - GW_AEAD_TAG_LEN), "tamper #%zu: dst not zeroed", i);
		cr_assert_eq(out[len - GW_AEAD_TAG_LEN], 0xee, "tamper #%zu: wrote past dst", i);

		/* In place: the ciphertext buffer itself ends up zero. */
		cr_assert_not(gw_aead_decrypt(ct, ct, len, ad, sizeof(ad), ctr, key));
		cr_assert(all_zero(ct, len - GW_AEAD_TAG_LEN), "tamper #%zu in place", i);
	}
}

Test(crypto, aead_shorter_than_tag)
{
	uint8_t key[GW_KEY_LEN] = {0}, nonce[GW_XAEAD_NONCE_LEN] = {0};
	uint8_t buf[GW_AEAD_TAG_LEN] = {0};
	size_t len;

	for (len = 0; len < GW_AEAD_TAG_LEN; len++) {
		cr_assert_not(gw_aead_decrypt(buf, buf, len, NULL, 0, 0, key));
		cr_assert_not(gw_xaead_decrypt(buf, buf, len, NULL, 0, nonce, key));
	}
}

/* ---- XChaCha20-Poly1305 (draft-irtf-cfrg-xchacha-03 A.3.1) ---- */

static const char xchacha_ct[] = "bd6d179d3e83d43b9576579493c0e939572a1700252bfaccbed2902c21396cbb"
				 "731c7f1b0b4aa6440bf3a82f4eda7e39ae64c6708c54c216cb96b72e1213b452"
				 "2f8c9ba40db5d945b11b69b982c1bb9e3f3fac2bc369488f76b2383565d3fff9"
				 "21f9664c97637da9768812f615c68b13b52e"
				 "c0875924c1c7987947deafd8780acf49";

Test(crypto, xaead_draft_a3_1)
{
	enum { PT_LEN = sizeof(sunscreen) - 1, CT_LEN = PT_LEN + GW_AEAD_TAG_LEN };
	uint8_t key[GW_KEY_LEN], nonce[GW_XAEAD_NONCE_LEN], ad[12], ct[CT_LEN], out[CT_LEN];
	size_t i;

	fill_seq(key, sizeof(key), 0x80);
	fill_seq(nonce, sizeof(nonce), 0x40);
	unhex(ad, sizeof(ad), "50515253c0c1c2c3c4c5c6c7");

	gw_xaead_encrypt(ct, (const uint8_t *)sunscreen, PT_LEN, ad, sizeof(ad), nonce, key);
	assert_hex(ct, sizeof(ct), xchacha_ct, "xchacha a.3.1");

	cr_assert(gw_xaead_decrypt(out, ct, sizeof(ct), ad, sizeof(ad), nonce, key));
	cr_assert(memcmp(out, sunscreen, PT_LEN) == 0);

	memcpy(out, sunscreen, PT_LEN);
	gw_xaead_encrypt(out, out, PT_LEN, ad, sizeof(ad), nonce, key);
	cr_assert(memcmp(out, ct, sizeof(ct)) == 0, "in-place encrypt");
	cr_assert(gw_xaead_decrypt(out, out, sizeof(ct), ad, sizeof(ad), nonce, key));
	cr_assert(memcmp(out, sunscreen, PT_LEN) == 0, "in-place decrypt");

	/* Any flipped bit in ciphertext, tag, AD or nonce fails and zeroes. */
	for (i = 0; i < CT_LEN + sizeof(ad) + sizeof(nonce); i += 7) {
		uint8_t *p = i < CT_LEN		       ? &ct[i]
			     : i < CT_LEN + sizeof(ad) ? &ad[i - CT_LEN]
						       : &nonce[i - CT_LEN - sizeof(ad)];

		*p ^= 0x04;
		memset(out, 0xee, sizeof(out));
		cr_assert_not(gw_xaead_decrypt(out, ct, sizeof(ct), ad, sizeof(ad), nonce, key),
			      "flip at %zu accepted", i);
		cr_assert(all_zero(out, PT_LEN), "flip at %zu: dst not zeroed", i);
		*p ^= 0x04;
	}
	cr_assert(gw_xaead_decrypt(out, ct, sizeof(ct), ad, sizeof(ad), nonce, key));
}

/* ---- X25519 ---- */

static const struct {
	const char *scalar, *point, *out;
} x25519_vectors[] = {
    /* RFC 7748 5.2 */
    {"a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4",
     "e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c",
     "c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552"},
    {"4b66e9d4d1b4673c5ad22691957d6af5c11b6421e0ea01d42ca4169e7918ba0d",
     "e5210f12786811d3f4b7959d0538ae2c31dbe7106fc03c3efc4cd549c715a493",
     "95cbde9476e8907d7aade45cb4b873f88b595a68799fa152e6f8f7647aac7957"},
    /* RFC 7748 6.1: a * B_pub and b * A_pub */
    {"77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a",
     "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f",
     "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742"},
    {"5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb",
     "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a",
     "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742"},
};

Test(crypto, x25519_rfc7748_vectors)
{
	uint8_t k[GW_KEY_LEN], u[GW_KEY_LEN], out[GW_KEY_LEN];
	size_t i;

	for (i = 0; i < sizeof(x25519_vectors) / sizeof(x25519_vectors[0]); i++) {
		unhex(k, sizeof(k), x25519_vectors[i].scalar);
		unhex(u, sizeof(u), x25519_vectors[i].point);
		cr_assert(gw_x25519(out, k, u), "vector %zu", i);
		assert_hex(out, sizeof(out), x25519_vectors[i].out, "x25519");
	}
}

Test(crypto, x25519_rfc7748_public_keys)
{
	static const char *const keys[][2] = {
	    {"77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a",
	     "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"},
	    {"5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb",
	     "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f"},
	};
	uint8_t priv[GW_KEY_LEN], pub[GW_KEY_LEN];
	size_t i;

	for (i = 0; i < 2; i++) {
		unhex(priv, sizeof(priv), keys[i][0]);
		cr_assert(gw_x25519_public(pub, priv));
		assert_hex(pub, sizeof(pub), keys[i][1], "public key");
	}
}

Test(crypto, x25519_rfc7748_iterated)
{
	uint8_t k[GW_KEY_LEN] = {9}, u[GW_KEY_LEN] = {9}, r[GW_KEY_LEN];
	int i;

	for (i = 1; i <= 1000; i++) {
		cr_assert(gw_x25519(r, k, u));
		memcpy(u, k, sizeof(u));
		memcpy(k, r, sizeof(k));
		if (i == 1)
			assert_hex(
			    k, sizeof(k),
			    "422c8e7a6227d7bca1350b3e2bb7279f7897b87bb6854b783c60e80311ae3079",
			    "1 iteration");
	}
	assert_hex(k, sizeof(k), "684cf59ba83309552800ef566f2f4d3c1c3887c49360e3875f2eb94d99532c51",
		   "1000 iterations");
}

Test(crypto, x25519_low_order_points_fail)
{
	static const char *const points[] = {
	    "0000000000000000000000000000000000000000000000000000000000000000",
	    "0100000000000000000000000000000000000000000000000000000000000000",
	    "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
	    "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157",
	    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
	    "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
	    "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
	};
	uint8_t k[GW_KEY_LEN], u[GW_KEY_LEN], out[GW_KEY_LEN];
	size_t i;

	fill_seq(k, sizeof(k), 1);
	for (i = 0; i < sizeof(points) / sizeof(points[0]); i++) {
		unhex(u, sizeof(u), points[i]);
		memset(out, 0xee, sizeof(out));
		cr_assert_not(gw_x25519(out, k, u), "low-order point %zu accepted", i);
		cr_assert(all_zero(out, sizeof(out)), "point %zu: out not zeroed", i);
	}
}

Test(crypto, x25519_generate_clamps_and_agrees)
{
	uint8_t a[GW_KEY_LEN], b[GW_KEY_LEN], pa[GW_KEY_LEN], pb[GW_KEY_LEN];
	uint8_t sab[GW_KEY_LEN], sba[GW_KEY_LEN];
	int i;

	for (i = 0; i < 32; i++) {
		gw_x25519_generate(a);
		gw_x25519_generate(b);
		cr_assert_eq(a[0] & 7, 0);
		cr_assert_eq(a[31] & 0xc0, 0x40);
		cr_assert(memcmp(a, b, sizeof(a)) != 0);
		cr_assert(gw_x25519_public(pa, a));
		cr_assert(gw_x25519_public(pb, b));
		cr_assert(gw_x25519(sab, a, pb));
		cr_assert(gw_x25519(sba, b, pa));
		cr_assert(memcmp(sab, sba, sizeof(sab)) == 0, "DH disagrees");
	}
}

Test(crypto, x25519_clamp_table)
{
	static const struct {
		uint8_t in0, in31, out0, out31;
	} cases[] = {
	    {0x00, 0x00, 0x00, 0x40},
	    {0xff, 0xff, 0xf8, 0x7f},
	    {0x07, 0x80, 0x00, 0x40},
	    {0x09, 0x3f, 0x08, 0x7f},
	};
	uint8_t key[GW_KEY_LEN];
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		memset(key, 0x5a, sizeof(key));
		key[0] = cases[i].in0;
		key[31] = cases[i].in31;
		gw_x25519_clamp(key);
		cr_assert_eq(key[0], cases[i].out0, "case %zu", i);
		cr_assert_eq(key[31], cases[i].out31, "case %zu", i);
		cr_assert_eq(key[15], 0x5a, "middle bytes untouched");
	}
}

Test(crypto, x25519_public_rejects_zero_key)
{
	uint8_t priv[GW_KEY_LEN] = {0}, pub[GW_KEY_LEN];

	memset(pub, 0xee, sizeof(pub));
	cr_assert_not(gw_x25519_public(pub, priv));
	cr_assert(all_zero(pub, sizeof(pub)));
}

/* ---- Randomness, comparison, secret memory ---- */

Test(crypto, random_bytes_and_uniform)
{
	static const uint32_t uppers[] = {1, 2, 3, 10, 1000, UINT32_MAX};
	uint8_t a[64] = {0}, b[64] = {0};
	unsigned seen = 0;
	size_t i, j;

	gw_random_bytes(a, sizeof(a));
	gw_random_bytes(b, sizeof(b));
	cr_assert_not(all_zero(a, sizeof(a)));
	cr_assert(memcmp(a, b, sizeof(a)) != 0);
	for (i = 0; i < sizeof(uppers) / sizeof(uppers[0]); i++)
		for (j = 0; j < 200; j++)
			cr_assert_lt(gw_random_uniform(uppers[i]), uppers[i]);
	/* All of [0, 3) turns up in 300 draws (failure odds about 3 * (2/3)^300). */
	for (j = 0; j < 300; j++)
		seen |= 1u << gw_random_uniform(3);
	cr_assert_eq(seen, 7u);
}

Test(crypto, memeq_table)
{
	static const struct {
		const char *a, *b;
		size_t len;
		bool eq;
	} cases[] = {
	    {"", "", 0, true},
	    {"a", "b", 0, true},
	    {"abc", "abc", 3, true},
	    {"abc", "abd", 3, false},
	    {"xbc", "abc", 3, false},
	    {"abcdef", "abcdeF", 6, false},
	    {"abcdef", "abcdeF", 5, true},
	};
	uint8_t big1[1000], big2[1000];
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		cr_assert_eq(gw_memeq(cases[i].a, cases[i].b, cases[i].len), cases[i].eq,
			     "case %zu", i);
	fill_seq(big1, sizeof(big1), 0);
	memcpy(big2, big1, sizeof(big2));
	cr_assert(gw_memeq(big1, big2, sizeof(big1)));
	big2[999] ^= 0x80;
	cr_assert_not(gw_memeq(big1, big2, sizeof(big1)));
}

Test(crypto, wipe)
{
	uint8_t buf[48];

	memset(buf, 0xab, sizeof(buf));
	gw_wipe(buf + 8, 32);
	cr_assert(all_zero(buf + 8, 32));
	cr_assert_eq(buf[7], 0xab);
	cr_assert_eq(buf[40], 0xab);
	gw_wipe(NULL, 0);
	gw_wipe(buf, 0);
}

Test(crypto, secret_alloc_round_trip)
{
	static const size_t sizes[] = {0, 1, 15, 16, 17, 32, 100, 4095, 4096, 10000};
	size_t i;

	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		uint8_t *p = gw_secret_alloc(sizes[i]);

		cr_assert_not_null(p, "size %zu", sizes[i]);
		cr_assert_eq((uintptr_t)p % _Alignof(max_align_t), 0, "size %zu misaligned",
			     sizes[i]);
		cr_assert(all_zero(p, sizes[i]), "size %zu not zero-filled", sizes[i]);
		memset(p, 0x5a, sizes[i]);
		cr_assert(sizes[i] == 0 || (p[0] == 0x5a && p[sizes[i] - 1] == 0x5a));
		gw_secret_free(p);
	}
	gw_secret_free(NULL);
	cr_assert_null(gw_secret_alloc(SIZE_MAX));
}
