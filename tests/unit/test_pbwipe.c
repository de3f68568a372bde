// SPDX-License-Identifier: MIT
/*
 * lib/pbwipe.c: every block the allocator hands back is wiped before it goes
 * back to malloc. The watch hook reads each block between the wipe and the
 * free, so nothing here reads freed memory.
 */
#include "gw/pbwipe.h"

#include <criterion/criterion.h>
#include <stdint.h>
#include <string.h>

enum { MAX_BLOCKS = 16 };

struct watch {
	struct gw_pbwipe_watch w; /* first: the allocator passes &w */
	size_t n_blocks;
	size_t n_dirty; /* blocks with a non-zero byte at free */
	uintptr_t start[MAX_BLOCKS];
	size_t len[MAX_BLOCKS];
};

static void watch_freed(struct gw_pbwipe_watch *gw, const uint8_t *block, size_t len)
{
	struct watch *w = (struct watch *)gw;
	size_t i;

	for (i = 0; i < len; i++)
		if (block[i])
			break;
	if (i < len)
		w->n_dirty++;
	if (w->n_blocks < MAX_BLOCKS) {
		w->start[w->n_blocks] = (uintptr_t)block;
		w->len[w->n_blocks] = len;
	}
	w->n_blocks++;
}

/* Was [p, p + n) inside a block freed through the watch? */
static bool watched(const struct watch *w, uintptr_t p, size_t n)
{
	for (size_t i = 0; i < w->n_blocks && i < MAX_BLOCKS; i++)
		if (p >= w->start[i] && p + n <= w->start[i] + w->len[i])
			return true;
	return false;
}

static ProtobufCAllocator watched_allocator(struct watch *w)
{
	ProtobufCAllocator a = gw_pbwipe_allocator;

	memset(w, 0, sizeof(*w));
	w->w.freed = watch_freed;
	a.allocator_data = &w->w;
	return a;
}

Test(pbwipe, free_wipes_the_block)
{
	struct watch w;
	ProtobufCAllocator a = watched_allocator(&w);
	const size_t sizes[] = {1, 32, 100, 4096};

	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		uint8_t *p = a.alloc(a.allocator_data, sizes[i]);

		cr_assert_not_null(p);
		memset(p, 0xa5, sizes[i]);
		a.free(a.allocator_data, p);
	}
	cr_assert_eq(w.n_blocks, 4);
	cr_assert_eq(w.n_dirty, 0, "%zu blocks not wiped", w.n_dirty);
	for (size_t i = 0; i < 4; i++)
		cr_assert_geq(w.len[i], sizes[i], "block %zu: %zu bytes wiped of %zu", i, w.len[i],
			      sizes[i]);
}

Test(pbwipe, free_null_is_a_no_op)
{
	struct watch w;
	ProtobufCAllocator a = watched_allocator(&w);

	a.free(a.allocator_data, NULL);
	gw_pbwipe_allocator.free(gw_pbwipe_allocator.allocator_data, NULL);
	cr_assert_eq(w.n_blocks, 0);
}

/* The blocks are malloc's: one may go back through the default free. */
Test(pbwipe, blocks_are_malloc_blocks)
{
	void *p = gw_pbwipe_allocator.alloc(NULL, 48);

	cr_assert_not_null(p);
	free(p);
}

/*
 * A real unpack: a one-field message (bytes key = 1), described by hand as
 * protoc-c would, so protobuf-c copies the key into a block of ours.
 */
struct keymsg {
	ProtobufCMessage base;
	ProtobufCBinaryData key;
};

static const ProtobufCFieldDescriptor keymsg_fields[] = {{
    .name = "key",
    .id = 1,
    .label = PROTOBUF_C_LABEL_NONE,
    .type = PROTOBUF_C_TYPE_BYTES,
    .offset = offsetof(struct keymsg, key),
}};
static const unsigned keymsg_by_name[] = {0};
static const ProtobufCIntRange keymsg_ranges[] = {{1, 0}, {0, 1}};

static const ProtobufCMessageDescriptor keymsg_descriptor = {
    .magic = PROTOBUF_C__MESSAGE_DESCRIPTOR_MAGIC,
    .name = "test.KeyMsg",
    .short_name = "KeyMsg",
    .c_name = "KeyMsg",
    .package_name = "test",
    .sizeof_message = sizeof(struct keymsg),
    .n_fields = 1,
    .fields = keymsg_fields,
    .fields_sorted_by_name = keymsg_by_name,
    .n_field_ranges = 1,
    .field_ranges = keymsg_ranges,
};

Test(pbwipe, unpacked_key_is_wiped_on_free_unpacked)
{
	struct watch w;
	ProtobufCAllocator a = watched_allocator(&w);
	uint8_t wire[2 + 32];
	struct keymsg *m;
	uintptr_t key_at;

	wire[0] = 0x0a; /* field 1, length-delimited */
	wire[1] = 32;
	for (size_t i = 0; i < 32; i++)
		wire[2 + i] = (uint8_t)(0x80 | i);
	m = (struct keymsg *)protobuf_c_message_unpack(&keymsg_descriptor, &a, sizeof(wire), wire);
	cr_assert_not_null(m);
	cr_assert_eq(m->key.len, 32);
	cr_assert_eq(memcmp(m->key.data, wire + 2, 32), 0);
	key_at = (uintptr_t)m->key.data;
	protobuf_c_message_free_unpacked(&m->base, &a);
	cr_assert_geq(w.n_blocks, 2, "message and key: %zu blocks", w.n_blocks);
	cr_assert(watched(&w, key_at, 32), "the key's copy was not freed through the allocator");
	cr_assert_eq(w.n_dirty, 0, "%zu blocks not wiped", w.n_dirty);
}
