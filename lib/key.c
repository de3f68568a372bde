// SPDX-License-Identifier: MIT
/*
 * Key encodings. Private keys and PSKs pass through here, so every step
 * that touches key bytes is branch-free and table-free: characters are
 * mapped with range masks, never by indexing an alphabet. Only the final
 * valid/invalid verdict and the (public) input length are allowed to
 * influence timing.
 */
#include "gw/key.h"

#include <errno.h>
#include <string.h>

enum {
	B64_FULL_GROUPS = GW_KEY_LEN / 3, /* 10 groups of 4 chars -> 3 bytes */
};

/* All ones when lo <= c <= hi, else zero; c, lo, hi well below 2^31. */
static uint32_t ct_range(uint32_t c, uint32_t lo, uint32_t hi)
{
	return 0u - (((lo - 1 - c) & (c - hi - 1)) >> 31);
}

/* All ones when a >= b, else zero; a, b well below 2^31. */
static uint32_t ct_ge(uint32_t a, uint32_t b)
{
	return (((a - b) >> 31) & 1) - 1;
}

static char b64_char(uint32_t v)
{
	uint32_t c = 'A' + v;

	c += ct_ge(v, 26) & 6;	/* 'a' - 'A' - 26 */
	c -= ct_ge(v, 52) & 75; /* 'a' + 26 - '0' */
	c -= ct_ge(v, 62) & 15; /* '0' + 62 - 52 - '+' */
	c += ct_ge(v, 63) & 3;	/* '/' - '+' - 1 */
	return (char)c;
}

/* The 6-bit value of c; sets bits in *bad when c is not in the alphabet. */
static uint32_t b64_value(uint8_t ch, uint32_t *bad)
{
	uint32_t c = ch, m, v = 0, ok = 0;

	m = ct_range(c, 'A', 'Z');
	v |= m & (c - 'A');
	ok |= m;
	m = ct_range(c, 'a', 'z');
	v |= m & (c - 'a' + 26);
	ok |= m;
	m = ct_range(c, '0', '9');
	v |= m & (c - '0' + 52);
	ok |= m;
	m = ct_range(c, '+', '+');
	v |= m & 62;
	ok |= m;
	m = ct_range(c, '/', '/');
	v |= m & 63;
	ok |= m;
	*bad |= ~ok;
	return v;
}

void gw_key_to_base64(char out[static GW_KEY_B64_LEN + 1], const uint8_t key[static GW_KEY_LEN])
{
	uint32_t w;
	int i;

	for (i = 0; i < B64_FULL_GROUPS; i++) {
		w = (uint32_t)key[i * 3] << 16 | (uint32_t)key[i * 3 + 1] << 8 | key[i * 3 + 2];
		out[i * 4] = b64_char(w >> 18);
		out[i * 4 + 1] = b64_char((w >> 12) & 63);
		out[i * 4 + 2] = b64_char((w >> 6) & 63);
		out[i * 4 + 3] = b64_char(w & 63);
	}
	/* The last two bytes: 16 bits in three characters, two zero bits, one pad. */
	w = (uint32_t)key[i * 3] << 16 | (uint32_t)key[i * 3 + 1] << 8;
	out[i * 4] = b64_char(w >> 18);
	out[i * 4 + 1] = b64_char((w >> 12) & 63);
	out[i * 4 + 2] = b64_char((w >> 6) & 63);
	out[i * 4 + 3] = '=';
	out[GW_KEY_B64_LEN] = '\0';
	explicit_bzero(&w, sizeof(w));
}

int gw_key_from_base64(uint8_t key[static GW_KEY_LEN], const char *s)
{
	const uint8_t *p = (const uint8_t *)s;
	uint8_t tmp[GW_KEY_LEN];
	uint32_t bad = 0, w = 0;
	int i, j;

	if (strnlen(s, GW_KEY_B64_LEN + 1) != GW_KEY_B64_LEN || s[GW_KEY_B64_LEN - 1] != '=')
		return -EINVAL;
	for (i = 0; i < B64_FULL_GROUPS; i++) {
		w = 0;
		for (j = 0; j < 4; j++)
			w = w << 6 | b64_value(p[i * 4 + j], &bad);
		tmp[i * 3] = (uint8_t)(w >> 16);
		tmp[i * 3 + 1] = (uint8_t)(w >> 8);
		tmp[i * 3 + 2] = (uint8_t)w;
	}
	w = 0;
	for (j = 0; j < 3; j++)
		w = w << 6 | b64_value(p[i * 4 + j], &bad);
	/* Only the canonical encoding: the two bits below the last byte are zero. */
	bad |= 0u - (w & 3);
	tmp[i * 3] = (uint8_t)(w >> 10);
	tmp[i * 3 + 1] = (uint8_t)(w >> 2);
	explicit_bzero(&w, sizeof(w));
	if (bad) {
		explicit_bzero(tmp, sizeof(tmp));
		return -EINVAL;
	}
	memcpy(key, tmp, GW_KEY_LEN);
	explicit_bzero(tmp, sizeof(tmp));
	return 0;
}

void gw_key_to_hex(char out[static GW_KEY_HEX_LEN + 1], const uint8_t key[static GW_KEY_LEN])
{
	uint32_t hi, lo;

	for (int i = 0; i < GW_KEY_LEN; i++) {
		hi = key[i] >> 4;
		lo = key[i] & 15;
		out[i * 2] = (char)('0' + hi + (ct_ge(hi, 10) & 39)); /* 'a' - '0' - 10 */
		out[i * 2 + 1] = (char)('0' + lo + (ct_ge(lo, 10) & 39));
	}
	out[GW_KEY_HEX_LEN] = '\0';
	explicit_bzero(&hi, sizeof(hi));
	explicit_bzero(&lo, sizeof(lo));
}

static uint32_t hex_value(uint8_t ch, uint32_t *bad)
{
	uint32_t c = ch, m, v = 0, ok = 0;

	m = ct_range(c, '0', '9');
	v |= m & (c - '0');
	ok |= m;
	m = ct_range(c, 'a', 'f');
	v |= m & (c - 'a' + 10);
	ok |= m;
	m = ct_range(c, 'A', 'F');
	v |= m & (c - 'A' + 10);
	ok |= m;
	*bad |= ~ok;
	return v;
}

int gw_key_from_hex(uint8_t key[static GW_KEY_LEN], const char *s)
{
	const uint8_t *p = (const uint8_t *)s;
	uint8_t tmp[GW_KEY_LEN];
	uint32_t bad = 0;

	if (strnlen(s, GW_KEY_HEX_LEN + 1) != GW_KEY_HEX_LEN)
		return -EINVAL;
	for (int i = 0; i < GW_KEY_LEN; i++)
		tmp[i] = (uint8_t)(hex_value(p[i * 2], &bad) << 4 | hex_value(p[i * 2 + 1], &bad));
	if (bad) {
		explicit_bzero(tmp, sizeof(tmp));
		return -EINVAL;
	}
	memcpy(key, tmp, GW_KEY_LEN);
	explicit_bzero(tmp, sizeof(tmp));
	return 0;
}

bool gw_key_is_zero(const uint8_t key[static GW_KEY_LEN])
{
	/* volatile: the compiler must not turn the loop into an early exit. */
	const volatile uint8_t *p = key;
	uint32_t acc = 0;

	for (int i = 0; i < GW_KEY_LEN; i++)
		acc |= p[i];
	return ((acc - 1) >> 8) & 1;
}
