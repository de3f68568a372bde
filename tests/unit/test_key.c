// SPDX-License-Identifier: MIT
/*
 * Key encodings against fixed vectors (computed with Python's base64 and
 * bytes.hex()), against coreutils base64/od, and against wireguard-tools:
 * keys from `wg genkey`/`wg pubkey` must round-trip, and `wg pubkey` must
 * reject exactly what we reject.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "gw/key.h"

static const char B64_ALPHABET[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

struct vector {
	uint8_t bytes[GW_KEY_LEN];
	const char *b64;
	const char *hex;
};

static const struct vector vectors[] = {
    {{0,  1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15,
      16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31},
     "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
     "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"},
    {{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
      0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
      0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
     "//////////////////////////////////////////8=",
     "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"},
    {{0},
     "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
     "0000000000000000000000000000000000000000000000000000000000000000"},
    {{0xe0, 0xe1, 0xe2, 0xe3, 0xe4, 0xe5, 0xe6, 0xe7, 0xe8, 0xe9, 0xea,
      0xeb, 0xec, 0xed, 0xee, 0xef, 0xf0, 0xf1, 0xf2, 0xf3, 0xf4, 0xf5,
      0xf6, 0xf7, 0xf8, 0xf9, 0xfa, 0xfb, 0xfc, 0xfd, 0xfe, 0xff},
     "4OHi4+Tl5ufo6err7O3u7/Dx8vP09fb3+Pn6+/z9/v8=",
     "e0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff"},
    /* Every 6-bit group 62 ('+') where possible, then 63 ('/'). */
    {{0xfb, 0xef, 0xbe, 0xfb, 0xef, 0xbe, 0xfb, 0xef, 0xbe, 0xfb, 0xef,
      0xbe, 0xfb, 0xef, 0xbe, 0xfb, 0xef, 0xbe, 0xfb, 0xef, 0xbe, 0xfb,
      0xef, 0xbe, 0xfb, 0xef, 0xbe, 0xfb, 0xef, 0xbe, 0xfb, 0xf0},
     "+++++++++++++++++++++++++++++++++++++++++/A=",
     "fbefbefbefbefbefbefbefbefbefbefbefbefbefbefbefbefbefbefbefbefbf0"},
};

Test(key, fixed_vectors)
{
	for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
		const struct vector *v = &vectors[i];
		char b64[GW_KEY_B64_LEN + 1], hex[GW_KEY_HEX_LEN + 1];
		uint8_t k[GW_KEY_LEN];

		gw_key_to_base64(b64, v->bytes);
		cr_assert_str_eq(b64, v->b64, "vector %zu", i);
		gw_key_to_hex(hex, v->bytes);
		cr_assert_str_eq(hex, v->hex, "vector %zu", i);
		cr_assert_eq(gw_key_from_base64(k, v->b64), 0, "vector %zu", i);
		cr_assert_arr_eq(k, v->bytes, GW_KEY_LEN, "vector %zu", i);
		memset(k, 0x5a, sizeof(k));
		cr_assert_eq(gw_key_from_hex(k, v->hex), 0, "vector %zu", i);
		cr_assert_arr_eq(k, v->bytes, GW_KEY_LEN, "vector %zu", i);
	}
}

/* Runs cmd through sh and reads its first line into out (newline removed). */
static void run_line(const char *cmd, char *out, size_t outlen)
{
	FILE *p = popen(cmd, "r");
	size_t n;

	cr_assert_not_null(p, "popen %s", cmd);
	cr_assert_not_null(fgets(out, (int)outlen, p), "no output from %s", cmd);
	cr_assert_eq(pclose(p), 0, "%s failed", cmd);
	n = strlen(out);
	if (n && out[n - 1] == '\n')
		out[n - 1] = '\0';
}

/* The bytes behind a base64 key, as lowercase hex, decoded by coreutils. */
static void ref_hex(const char *b64, char hex[static GW_KEY_HEX_LEN + 1])
{
	char cmd[256];

	snprintf(cmd, sizeof(cmd), "printf %%s '%s' | base64 -d | od -An -v -tx1 | tr -d ' \\n'",
		 b64);
	run_line(cmd, hex, GW_KEY_HEX_LEN + 1);
	cr_assert_eq(strlen(hex), GW_KEY_HEX_LEN, "coreutils decoded %s to %s", b64, hex);
}

static void check_wg_key(const char *b64)
{
	char again[GW_KEY_B64_LEN + 1], hex[GW_KEY_HEX_LEN + 1], want[GW_KEY_HEX_LEN + 1];
	uint8_t k[GW_KEY_LEN], k2[GW_KEY_LEN];

	cr_assert_eq(strlen(b64), GW_KEY_B64_LEN, "wg printed %s", b64);
	cr_assert_eq(gw_key_from_base64(k, b64), 0, "%s", b64);
	gw_key_to_base64(again, k);
	cr_assert_str_eq(again, b64);
	gw_key_to_hex(hex, k);
	ref_hex(b64, want);
	cr_assert_str_eq(hex, want, "%s", b64);
	cr_assert_eq(gw_key_from_hex(k2, want), 0);
	cr_assert_arr_eq(k2, k, GW_KEY_LEN);
}

Test(key, wg_genkey_pubkey_round_trip)
{
	for (int i = 0; i < 16; i++) {
		char line[256], priv[128], pub[128];
		uint8_t k[GW_KEY_LEN];

		run_line("k=$(wg genkey) && printf '%s %s\\n' \"$k\" \"$(printf %s \"$k\" | wg "
			 "pubkey)\"",
			 line, sizeof(line));
		cr_assert_eq(sscanf(line, "%127s %127s", priv, pub), 2, "got '%s'", line);
		check_wg_key(priv);
		check_wg_key(pub);
		/* wg genkey clamps (RFC 7748): proves we decoded the right bytes. */
		cr_assert_eq(gw_key_from_base64(k, priv), 0);
		cr_assert_eq(k[0] & 7, 0);
		cr_assert_eq(k[31] & 0xc0, 0x40);
	}
}

Test(key, random_bytes_match_coreutils_base64)
{
	FILE *rnd = fopen("/dev/urandom", "rb");

	cr_assert_not_null(rnd);
	for (int i = 0; i < 16; i++) {
		char path[] = "/tmp/test_key_XXXXXX", cmd[128], want[128];
		char b64[GW_KEY_B64_LEN + 1];
		uint8_t k[GW_KEY_LEN], back[GW_KEY_LEN];
		int fd = mkstemp(path);

		cr_assert_geq(fd, 0);
		cr_assert_eq(fread(k, 1, sizeof(k), rnd), sizeof(k));
		cr_assert_eq(write(fd, k, sizeof(k)), (ssize_t)sizeof(k));
		close(fd);
		snprintf(cmd, sizeof(cmd), "base64 -w0 %s; echo", path);
		run_line(cmd, want, sizeof(want));
		unlink(path);
		gw_key_to_base64(b64, k);
		cr_assert_str_eq(b64, want);
		cr_assert_eq(gw_key_from_base64(back, b64), 0);
		cr_assert_arr_eq(back, k, GW_KEY_LEN);
	}
	fclose(rnd);
}

/* `wg pubkey` accepts s as a private key; s must not hold a single quote. */
static bool wg_accepts(const char *s)
{
	char cmd[512];
	int st;

	snprintf(cmd, sizeof(cmd), "printf %%s '%s' | wg pubkey >/dev/null 2>&1", s);
	st = system(cmd);
	cr_assert(WIFEXITED(st), "%s", cmd);
	return WEXITSTATUS(st) == 0;
}

static const char VALID[] = "KLM1GEE4KUywq7OdQSN7FUurKwoeFZR9bkukI2jQGWY=";

static const struct bad_b64 {
	const char *s;
	bool wg_comparable; /* wg pubkey skips trailing whitespace; we do not */
} bad_b64[] = {
    {"", true},
    {"KLM1GEE4KUywq7OdQSN7FUurKwoeFZR9bkukI2jQGWY", true},   /* no '=' */
    {"KLM1GEE4KUywq7OdQSN7FUurKwoeFZR9bkukI2jQGW=", true},   /* 43 */
    {"KLM1GEE4KUywq7OdQSN7FUurKwoeFZR9bkukI2jQGWY==", true}, /* 45 */
    {"KLM1GEE4KUywq7OdQSN7FUurKwoeFZR9bkukI2jQGWYA", true},  /* 'A' for '=' */
    {"KLM1GEE4KUywq7OdQSN7FUurKwoeFZR9bkukI2jQGW==", true},  /* two pads */
    {"KLM1GEE4KUywq7OdQSN7FUurKwoeFZR9bkukI2jQGWZ=", true},  /* low bit set */
    {"KLM1GEE4KUywq7OdQSN7FUurKwoeFZR9bkukI2jQGWa=", true},  /* 2nd bit set */
    {"KLM1GEE4KUywq7OdQSN7FUurKwoeFZR9bkukI2jQGW/=", true},  /* both bits */
    {"KLM1GEE4KUywq7OdQSN7FUurKwoeFZR9bkukI2jQG=Y=", true},  /* '=' inside */
    {"=LM1GEE4KUywq7OdQSN7FUurKwoeFZR9bkukI2jQGWY=", true},
    {"KLM1GEE4KUywq7OdQSN7FUur-woeFZR9bkukI2jQGWY=", true}, /* base64url */
    {"KLM1GEE4KUywq7OdQSN7FUur_woeFZR9bkukI2jQGWY=", true},
    {"KLM1GEE4KUywq7OdQSN7FUur woeFZR9bkukI2jQGWY=", true},
    {"KLM1GEE4KUywq7OdQSN7FUur.woeFZR9bkukI2jQGWY=", true},
    {"KLM1GEE4KUywq7OdQSN7FUur\xc3\xa9oeFZR9bkukI2jQGWY=", true},
    {" KLM1GEE4KUywq7OdQSN7FUurKwoeFZR9bkukI2jQGWY=", false},
    {"KLM1GEE4KUywq7OdQSN7FUurKwoeFZR9bkukI2jQGWY= ", false},
    {"KLM1GEE4KUywq7OdQSN7FUurKwoeFZR9bkukI2jQGWY=\n", false},
    {"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f", true},
};

Test(key, bad_base64_rejected_like_wg)
{
	cr_assert(wg_accepts(VALID), "reference key must be valid");
	for (size_t i = 0; i < sizeof(bad_b64) / sizeof(bad_b64[0]); i++) {
		uint8_t k[GW_KEY_LEN], want[GW_KEY_LEN];

		memset(k, 0xa5, sizeof(k));
		memset(want, 0xa5, sizeof(want));
		cr_assert_eq(gw_key_from_base64(k, bad_b64[i].s), -EINVAL, "'%s'", bad_b64[i].s);
		cr_assert_arr_eq(k, want, GW_KEY_LEN, "output touched for '%s'", bad_b64[i].s);
		if (bad_b64[i].wg_comparable)
			cr_assert(!wg_accepts(bad_b64[i].s), "wg accepts '%s'", bad_b64[i].s);
	}
}

/* The character before '=' carries two unused bits: only 16 of 64 are canonical. */
Test(key, last_char_canonical_like_wg)
{
	char s[GW_KEY_B64_LEN + 1];
	int accepted = 0;

	for (int v = 0; v < 64; v++) {
		uint8_t k[GW_KEY_LEN];
		bool ours;

		memcpy(s, VALID, sizeof(s));
		s[GW_KEY_B64_LEN - 2] = B64_ALPHABET[v];
		ours = gw_key_from_base64(k, s) == 0;
		cr_assert_eq(ours, (v & 3) == 0, "'%s'", s);
		cr_assert_eq(ours, wg_accepts(s), "wg disagrees on '%s'", s);
		accepted += ours;
	}
	cr_assert_eq(accepted, 16);
}

/* Every byte value in every position class: only the alphabet decodes. */
Test(key, every_byte_in_alphabet_or_rejected)
{
	static const int positions[] = {0, 1, 2, 3, 20, 41, 42};

	for (size_t p = 0; p < sizeof(positions) / sizeof(positions[0]); p++) {
		for (int c = 1; c < 256; c++) {
			char s[GW_KEY_B64_LEN + 1];
			uint8_t k[GW_KEY_LEN];
			const char *hit;
			bool want;

			memcpy(s, VALID, sizeof(s));
			s[positions[p]] = (char)c;
			hit = strchr(B64_ALPHABET, c);
			want = hit && (positions[p] != 42 || ((hit - B64_ALPHABET) & 3) == 0);
			cr_assert_eq(gw_key_from_base64(k, s) == 0, want, "byte 0x%02x at %d", c,
				     positions[p]);
		}
	}
}

Test(key, hex_accepts_both_cases)
{
	static const char *upper =
	    "E0E1E2E3E4E5E6E7E8E9EAEBECEDEEEFF0F1F2F3F4F5F6F7F8F9FAFBFCFDFEFF";
	static const char *mixed =
	    "e0E1e2E3e4E5e6E7e8E9eAEbeCEdeEEff0F1f2F3f4F5f6F7f8F9fAFbfCFdfEFf";
	uint8_t k[GW_KEY_LEN];
	char hex[GW_KEY_HEX_LEN + 1];

	cr_assert_eq(gw_key_from_hex(k, upper), 0);
	cr_assert_arr_eq(k, vectors[3].bytes, GW_KEY_LEN);
	memset(k, 0, sizeof(k));
	cr_assert_eq(gw_key_from_hex(k, mixed), 0);
	cr_assert_arr_eq(k, vectors[3].bytes, GW_KEY_LEN);
	gw_key_to_hex(hex, k);
	cr_assert_str_eq(hex, vectors[3].hex, "output is lowercase");
}

Test(key, bad_hex_rejected)
{
	static const char *bad[] = {
	    "",
	    "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1",
	    "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f0",
	    "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1g",
	    "g00102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
	    "0x0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
	    " 00102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
	    "000102030405060708090a0b0c0d0e0f:01112131415161718191a1b1c1d1e1f",
	    "000102030405060708090a0b0c0d0e0f/01112131415161718191a1b1c1d1e1f",
	    "000102030405060708090a0b0c0d0e0f@01112131415161718191a1b1c1d1e1f",
	    "000102030405060708090a0b0c0d0e0f`01112131415161718191a1b1c1d1e1f",
	    "000102030405060708090a0b0c0d0e0fG01112131415161718191a1b1c1d1e1f",
	    "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		uint8_t k[GW_KEY_LEN], want[GW_KEY_LEN];

		memset(k, 0x3c, sizeof(k));
		memset(want, 0x3c, sizeof(want));
		cr_assert_eq(gw_key_from_hex(k, bad[i]), -EINVAL, "'%s'", bad[i]);
		cr_assert_arr_eq(k, want, GW_KEY_LEN, "output touched for '%s'", bad[i]);
	}
}

Test(key, every_byte_hex)
{
	for (int c = 1; c < 256; c++) {
		char s[GW_KEY_HEX_LEN + 1];
		uint8_t k[GW_KEY_LEN];
		bool want =
		    (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');

		memcpy(s, vectors[0].hex, sizeof(s));
		s[17] = (char)c;
		cr_assert_eq(gw_key_from_hex(k, s) == 0, want, "byte 0x%02x", c);
		if (want)
			cr_assert_eq(k[8], (c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10), "0x%02x",
				     c);
	}
}

Test(key, is_zero)
{
	uint8_t k[GW_KEY_LEN] = {0};

	cr_assert(gw_key_is_zero(k));
	for (int i = 0; i < GW_KEY_LEN; i++) {
		static const uint8_t bits[] = {0x01, 0x80, 0xff};

		for (size_t b = 0; b < sizeof(bits); b++) {
			k[i] = bits[b];
			cr_assert(!gw_key_is_zero(k), "byte %d = 0x%02x", i, bits[b]);
		}
		k[i] = 0;
	}
	cr_assert(gw_key_is_zero(k));
}
