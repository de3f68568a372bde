/* SPDX-License-Identifier: MIT */
/*
 * WireGuard key encodings: base64 as `wg genkey`/`wg pubkey` print them
 * (44 characters with one '=' pad) and lowercase hex as the UAPI uses them.
 * Parsers are strict (exact length, canonical encoding) and constant-time
 * in the key bytes; they leave the output untouched on failure.
 */
#ifndef GW_KEY_H
#define GW_KEY_H

#include <stdbool.h>
#include <stdint.h>

#include "gw/crypto.h"

enum {
	GW_KEY_B64_LEN = 44, /* without the NUL */
	GW_KEY_HEX_LEN = 64, /* without the NUL */
};

void gw_key_to_base64(char out[static GW_KEY_B64_LEN + 1], const uint8_t key[static GW_KEY_LEN]);
/* 0 or -EINVAL. */
int gw_key_from_base64(uint8_t key[static GW_KEY_LEN], const char *s);
void gw_key_to_hex(char out[static GW_KEY_HEX_LEN + 1], const uint8_t key[static GW_KEY_LEN]);
/* 0 or -EINVAL; accepts lower and upper case. */
int gw_key_from_hex(uint8_t key[static GW_KEY_LEN], const char *s);
/* Constant time. */
bool gw_key_is_zero(const uint8_t key[static GW_KEY_LEN]);

#endif
