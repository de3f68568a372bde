// SPDX-License-Identifier: MIT
/* The libgw unit tests' shared helpers (support.h). */
#include "support.h"

#include <criterion/criterion.h>
#include <string.h>

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

size_t unhex(uint8_t *out, size_t cap, const char *hex)
{
	size_t n = strlen(hex) / 2;

	cr_assert_eq(strlen(hex) % 2, 0, "odd hex length");
	cr_assert_leq(n, cap, "hex string too long for buffer");
	for (size_t i = 0; i < n; i++) {
		int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);

		cr_assert(hi >= 0 && lo >= 0, "bad hex digit");
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return n;
}

void assert_hex(const uint8_t *got, size_t len, const char *hex, const char *what)
{
	uint8_t want[512];
	size_t n = unhex(want, sizeof(want), hex);

	cr_assert_eq(n, len, "%s: length %zu, expected %zu", what, len, n);
	cr_assert(memcmp(got, want, len) == 0, "%s differs", what);
}
