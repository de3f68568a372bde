/* SPDX-License-Identifier: MIT */
/*
 * A protobuf-c allocator whose frees wipe: unpack every message that may
 * hold keys (LocalMessage, SessionBatch, Envelope) with it and free it with
 * it, so the key bytes protobuf-c copied out of the wire do not linger in
 * freed heap memory.
 *
 * The blocks are plain malloc() blocks: a message unpacked with this
 * allocator may also be freed with the default one (NULL), it just is not
 * wiped then. A free wipes the block's whole malloc_usable_size(), which
 * covers every byte protobuf-c wrote. Allocation failure returns NULL, which
 * protobuf-c reports as a failed unpack. Thread-safe (no state of its own).
 */
#ifndef GW_PBWIPE_H
#define GW_PBWIPE_H

#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

/*
 * Observes the wipe. allocator_data is NULL in gw_pbwipe_allocator; a copy
 * whose allocator_data points to a struct gw_pbwipe_watch has freed() called
 * with each block just after it was wiped and before it goes back to malloc
 * (a test reads the block there to check the wipe).
 */
struct gw_pbwipe_watch {
	void (*freed)(struct gw_pbwipe_watch *w, const uint8_t *block, size_t len);
};

/* Not const only because protobuf-c's functions take a non-const pointer. */
extern ProtobufCAllocator gw_pbwipe_allocator;

#endif
