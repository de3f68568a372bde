// SPDX-License-Identifier: MIT
/*
 * Key parsers on arbitrary strings: whatever decodes must re-encode to the
 * very same text (only canonical encodings are accepted), and a rejected
 * string must leave the output untouched. The first 32 bytes also go
 * through encode-then-decode.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "gw/key.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum { MAX_STR = 128 };

static bool untouched(const uint8_t k[static GW_KEY_LEN])
{
	for (int i = 0; i < GW_KEY_LEN; i++)
		if (k[i] != 0xa5)
			return false;
	return true;
}

static void check_strings(const char *s)
{
	char b64[GW_KEY_B64_LEN + 1], hex[GW_KEY_HEX_LEN + 1];
	uint8_t k[GW_KEY_LEN];

	memset(k, 0xa5, sizeof(k));
	if (gw_key_from_base64(k, s) == 0) {
		gw_key_to_base64(b64, k);
		if (strcmp(b64, s))
			abort();
	} else if (!untouched(k)) {
		abort();
	}
	memset(k, 0xa5, sizeof(k));
	if (gw_key_from_hex(k, s) == 0) {
		gw_key_to_hex(hex, k);
		if (strlen(s) != GW_KEY_HEX_LEN || strcasecmp(hex, s))
			abort();
	} else if (!untouched(k)) {
		abort();
	}
}

static void check_bytes(const uint8_t key[static GW_KEY_LEN])
{
	char b64[GW_KEY_B64_LEN + 1], hex[GW_KEY_HEX_LEN + 1];
	uint8_t k[GW_KEY_LEN];
	bool zero = true;

	gw_key_to_base64(b64, key);
	if (strlen(b64) != GW_KEY_B64_LEN || gw_key_from_base64(k, b64) ||
	    memcmp(k, key, sizeof(k)))
		abort();
	gw_key_to_hex(hex, key);
	if (strlen(hex) != GW_KEY_HEX_LEN || gw_key_from_hex(k, hex) || memcmp(k, key, sizeof(k)))
		abort();
	for (int i = 0; i < GW_KEY_LEN; i++)
		zero &= key[i] == 0;
	if (gw_key_is_zero(key) != zero)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char s[MAX_STR + 1];
	size_t n = size < MAX_STR ? size : MAX_STR;

	memcpy(s, data, n);
	s[n] = '\0';
	check_strings(s);
	if (size >= GW_KEY_LEN)
		check_bytes(data);
	return 0;
}
