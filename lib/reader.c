// SPDX-License-Identifier: MIT
/*
 * Bounds-checked reads. Every read goes through take(), which compares n
 * against the bytes left (never off + n against len, which could wrap) and
 * makes the first failure sticky.
 */
#include "gw/reader.h"

#include <string.h>

/* Points *p at the next n bytes and consumes them; false past the end. */
static bool take(struct gw_reader *r, const uint8_t **p, size_t n)
{
	if (r->failed || n > r->len - r->off) {
		r->failed = true;
		*p = NULL;
		return false;
	}
	/* An empty reader may have NULL data, and NULL + 0 is undefined. */
	*p = r->data ? r->data + r->off : NULL;
	r->off += n;
	return true;
}

bool gw_read_u8(struct gw_reader *r, uint8_t *v)
{
	const uint8_t *p;

	if (!take(r, &p, 1)) {
		*v = 0;
		return false;
	}
	*v = p[0];
	return true;
}

bool gw_read_u16be(struct gw_reader *r, uint16_t *v)
{
	const uint8_t *p;

	if (!take(r, &p, 2)) {
		*v = 0;
		return false;
	}
	*v = (uint16_t)(p[0] << 8 | p[1]);
	return true;
}

static uint32_t load32be(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint32_t load32le(const uint8_t *p)
{
	return (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | p[0];
}

bool gw_read_u32be(struct gw_reader *r, uint32_t *v)
{
	const uint8_t *p;

	if (!take(r, &p, 4)) {
		*v = 0;
		return false;
	}
	*v = load32be(p);
	return true;
}

bool gw_read_u32le(struct gw_reader *r, uint32_t *v)
{
	const uint8_t *p;

	if (!take(r, &p, 4)) {
		*v = 0;
		return false;
	}
	*v = load32le(p);
	return true;
}

bool gw_read_u64be(struct gw_reader *r, uint64_t *v)
{
	const uint8_t *p;

	if (!take(r, &p, 8)) {
		*v = 0;
		return false;
	}
	*v = (uint64_t)load32be(p) << 32 | load32be(p + 4);
	return true;
}

bool gw_read_u64le(struct gw_reader *r, uint64_t *v)
{
	const uint8_t *p;

	if (!take(r, &p, 8)) {
		*v = 0;
		return false;
	}
	*v = (uint64_t)load32le(p + 4) << 32 | load32le(p);
	return true;
}

bool gw_read_bytes(struct gw_reader *r, void *out, size_t n)
{
	const uint8_t *p;

	if (!take(r, &p, n)) {
		if (n)
			memset(out, 0, n);
		return false;
	}
	if (n)
		memcpy(out, p, n);
	return true;
}

bool gw_read_ptr(struct gw_reader *r, const uint8_t **p, size_t n)
{
	return take(r, p, n);
}

bool gw_read_skip(struct gw_reader *r, size_t n)
{
	const uint8_t *p;

	return take(r, &p, n);
}

bool gw_reader_at_end(const struct gw_reader *r)
{
	return !r->failed && r->off == r->len;
}
