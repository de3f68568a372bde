// SPDX-License-Identifier: MIT
/* The wiping protobuf-c allocator; gw/pbwipe.h is the contract. */
#include "gw/pbwipe.h"

#include <malloc.h>
#include <stdlib.h>

#include "gw/crypto.h"

static void *pbwipe_alloc(void *data, size_t size)
{
	(void)data;
	return malloc(size);
}

static void pbwipe_free(void *data, void *p)
{
	struct gw_pbwipe_watch *w = data;
	size_t len;

	if (!p)
		return;
	len = malloc_usable_size(p);
	gw_wipe(p, len);
	if (w && w->freed)
		w->freed(w, p, len);
	free(p);
}

ProtobufCAllocator gw_pbwipe_allocator = {
    .alloc = pbwipe_alloc,
    .free = pbwipe_free,
    .allocator_data = NULL,
};
