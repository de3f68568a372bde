/* SPDX-License-Identifier: MIT */
/*
 * A bounds-checked reader for untrusted bytes (packets, protobuf payloads,
 * files). The first read past the end sets a sticky error; later reads fail
 * too and return zeros, so a parser can read a whole structure and check
 * gw_reader_ok() once.
 */
#ifndef GW_READER_H
#define GW_READER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct gw_reader {
	const uint8_t *data;
	size_t len;
	size_t off;
	bool failed;
};

static inline void gw_reader_init(struct gw_reader *r, const void *data, size_t len)
{
	r->data = data;
	r->len = len;
	r->off = 0;
	r->failed = false;
}

static inline bool gw_reader_ok(const struct gw_reader *r)
{
	return !r->failed;
}

static inline size_t gw_reader_remaining(const struct gw_reader *r)
{
	return r->failed ? 0 : r->len - r->off;
}

/* Each returns false (and reads nothing) past the end or after a failure. */
bool gw_read_u8(struct gw_reader *r, uint8_t *v);
bool gw_read_u16be(struct gw_reader *r, uint16_t *v);
bool gw_read_u32be(struct gw_reader *r, uint32_t *v);
bool gw_read_u32le(struct gw_reader *r, uint32_t *v);
bool gw_read_u64be(struct gw_reader *r, uint64_t *v);
bool gw_read_u64le(struct gw_reader *r, uint64_t *v);
/* Copies n bytes into out. */
bool gw_read_bytes(struct gw_reader *r, void *out, size_t n);
/* Points *p at the next n bytes without copying. */
bool gw_read_ptr(struct gw_reader *r, const uint8_t **p, size_t n);
bool gw_read_skip(struct gw_reader *r, size_t n);
/* Succeeds only when every byte has been consumed (no trailing garbage). */
bool gw_reader_at_end(const struct gw_reader *r);

#endif
