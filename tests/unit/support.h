/* SPDX-License-Identifier: MIT */
/*
 * What the libgw unit tests (tests/unit/test_*.c) share; linked into each.
 *
 *   unhex()        hex test vectors into bytes (any case); a bad vector
 *                  fails the test
 *   assert_hex()   bytes compared with a hex vector, length first
 */
#ifndef GW_TEST_UNIT_SUPPORT_H
#define GW_TEST_UNIT_SUPPORT_H

#include <stddef.h>
#include <stdint.h>

/* Decodes hex into out (capacity cap); returns the byte count. */
size_t unhex(uint8_t *out, size_t cap, const char *hex);

/* Fails the test, naming what, unless got[0..len) is the vector hex. */
void assert_hex(const uint8_t *got, size_t len, const char *hex, const char *what);

#endif
