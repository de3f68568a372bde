// SPDX-License-Identifier: MIT
/*
 * The bounds-checked reader, driven by tables of operations: each step
 * names a read, whether it must succeed, the value it must yield (zero on
 * failure) and what remaining()/ok()/at_end() must say afterwards.
 */
#include <criterion/criterion.h>
#include <stdint.h>
#include <string.h>

#include "gw/reader.h"

static const uint8_t DATA[16] = {0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08,
				 0x89, 0x8a, 0x8b, 0x8c, 0x8d, 0x8e, 0x8f, 0x90};

enum op { END, U8, U16BE, U32BE, U32LE, U64BE, U64LE, BYTES, PTR, SKIP };

struct step {
	enum op op;
	size_t n; /* BYTES, PTR, SKIP */
	bool ok;
	uint64_t val; /* integer reads; for BYTES/PTR the offset the bytes come from */
	size_t remaining;
	bool at_end;
};

struct scenario {
	const char *name;
	size_t len; /* a prefix of DATA */
	struct step steps[8];
};

static const struct scenario scenarios[] = {
    {"integers in order",
     16,
     {{U8, 0, true, 0x01, 15, false},
      {U16BE, 0, true, 0x0203, 13, false},
      {U8, 0, true, 0x04, 12, false},
      {U32BE, 0, true, 0x05060708, 8, false},
      {U64BE, 0, true, 0x898a8b8c8d8e8f90ull, 0, true}}},
    {"little endian",
     16,
     {{U32LE, 0, true, 0x04030201, 12, false},
      {U32LE, 0, true, 0x08070605, 8, false},
      {U64LE, 0, true, 0x908f8e8d8c8b8a89ull, 0, true}}},
    {"u64be exactly at end", 8, {{U64BE, 0, true, 0x0102030405060708ull, 0, true}}},
    {"u64le one past end",
     7,
     {{U64LE, 0, false, 0, 0, false},
      /* sticky: 7 bytes were there, but the reader has failed */
      {U8, 0, false, 0, 0, false},
      {SKIP, 0, false, 0, 0, false},
      {BYTES, 0, false, 0, 0, false}}},
    {"u16 one past end after reads",
     3,
     {{U16BE, 0, true, 0x0102, 1, false},
      {U16BE, 0, false, 0, 0, false},
      {U8, 0, false, 0, 0, false},
      {BYTES, 1, false, 0, 0, false}}},
    {"bytes one past end",
     16,
     {{SKIP, 8, true, 0, 8, false},
      {BYTES, 9, false, 0, 0, false},
      {BYTES, 8, false, 0, 0, false}}},
    {"u32 one short", 3, {{U32BE, 0, false, 0, 0, false}}},
    {"bytes to exact end",
     16,
     {{SKIP, 3, true, 0, 13, false},
      {BYTES, 13, true, 3, 0, true},
      {BYTES, 0, true, 16, 0, true},
      {PTR, 0, true, 16, 0, true},
      {SKIP, 0, true, 0, 0, true},
      {U8, 0, false, 0, 0, false}}},
    {"ptr one past end",
     16,
     {{PTR, 10, true, 0, 6, false}, {PTR, 7, false, 0, 0, false}, {PTR, 0, false, 0, 0, false}}},
    {"skip huge does not wrap",
     16,
     {{U8, 0, true, 0x01, 15, false}, {SKIP, SIZE_MAX, false, 0, 0, false}}},
    {"ptr huge does not wrap",
     16,
     {{U8, 0, true, 0x01, 15, false}, {PTR, SIZE_MAX - 1, false, 0, 0, false}}},
    {"trailing garbage",
     16,
     {{U64BE, 0, true, 0x0102030405060708ull, 8, false}, {U32BE, 0, true, 0x898a8b8c, 4, false}}},
    {"empty",
     0,
     {{BYTES, 0, true, 0, 0, true}, {PTR, 0, true, 0, 0, true}, {U8, 0, false, 0, 0, false}}},
};

static void run_step(struct gw_reader *r, const struct step *st, const char *name, int i)
{
	uint8_t buf[16];
	const uint8_t *p = (const uint8_t *)"x";
	uint64_t got = 0xdeadbeef;
	bool ok = false;

	switch (st->op) {
	case U8: {
		uint8_t v = 0xee;
		ok = gw_read_u8(r, &v);
		got = v;
		break;
	}
	case U16BE: {
		uint16_t v = 0xeeee;
		ok = gw_read_u16be(r, &v);
		got = v;
		break;
	}
	case U32BE:
	case U32LE: {
		uint32_t v = 0xeeeeeeee;
		ok = st->op == U32BE ? gw_read_u32be(r, &v) : gw_read_u32le(r, &v);
		got = v;
		break;
	}
	case U64BE:
	case U64LE: {
		uint64_t v = 0xeeeeeeeeeeeeeeeeull;
		ok = st->op == U64BE ? gw_read_u64be(r, &v) : gw_read_u64le(r, &v);
		got = v;
		break;
	}
	case BYTES:
		memset(buf, 0xee, sizeof(buf));
		ok = gw_read_bytes(r, buf, st->n);
		if (ok)
			cr_assert_arr_eq(buf, DATA + st->val, st->n, "%s step %d", name, i);
		else
			for (size_t k = 0; k < st->n; k++)
				cr_assert_eq(buf[k], 0, "%s step %d: not zeroed", name, i);
		got = st->val;
		break;
	case PTR:
		ok = gw_read_ptr(r, &p, st->n);
		if (ok && st->n)
			cr_assert_eq(p, DATA + st->val, "%s step %d: wrong pointer", name, i);
		if (!ok)
			cr_assert_null(p, "%s step %d", name, i);
		got = st->val;
		break;
	case SKIP:
		ok = gw_read_skip(r, st->n);
		got = st->val;
		break;
	case END:
		return;
	}
	cr_assert_eq(ok, st->ok, "%s step %d: ok %d", name, i, ok);
	cr_assert_eq(got, st->val, "%s step %d: got %#llx", name, i, (unsigned long long)got);
	cr_assert_eq(gw_reader_remaining(r), st->remaining, "%s step %d", name, i);
	/* Failure is sticky, so the reader is ok exactly while steps succeed. */
	cr_assert_eq(gw_reader_ok(r), st->ok, "%s step %d", name, i);
	cr_assert_eq(gw_reader_at_end(r), st->at_end, "%s step %d", name, i);
}

Test(reader, scenarios)
{
	for (size_t s = 0; s < sizeof(scenarios) / sizeof(scenarios[0]); s++) {
		const struct scenario *sc = &scenarios[s];
		struct gw_reader r;

		gw_reader_init(&r, DATA, sc->len);
		cr_assert(gw_reader_ok(&r));
		cr_assert_eq(gw_reader_remaining(&r), sc->len);
		cr_assert_eq(gw_reader_at_end(&r), sc->len == 0);
		for (int i = 0; i < 8 && sc->steps[i].op != END; i++)
			run_step(&r, &sc->steps[i], sc->name, i);
	}
}

Test(reader, null_data_empty)
{
	struct gw_reader r;
	const uint8_t *p = DATA;
	uint8_t v = 7;

	gw_reader_init(&r, NULL, 0);
	cr_assert(gw_reader_at_end(&r));
	cr_assert(gw_read_ptr(&r, &p, 0));
	cr_assert_null(p);
	cr_assert(gw_read_skip(&r, 0));
	cr_assert(!gw_read_u8(&r, &v));
	cr_assert_eq(v, 0);
	cr_assert(!gw_reader_at_end(&r));
}

/* Every length of every read, at every offset: succeeds iff it fits. */
Test(reader, all_offsets_and_lengths)
{
	for (size_t len = 0; len <= sizeof(DATA); len++) {
		for (size_t off = 0; off <= len; off++) {
			for (size_t n = 0; n <= sizeof(DATA) + 1; n++) {
				struct gw_reader r;
				const uint8_t *p;

				gw_reader_init(&r, DATA, len);
				cr_assert(gw_read_skip(&r, off));
				cr_assert_eq(gw_read_ptr(&r, &p, n), n <= len - off,
					     "len %zu off %zu n %zu", len, off, n);
				cr_assert_eq(gw_reader_at_end(&r), n == len - off);
			}
		}
	}
}
