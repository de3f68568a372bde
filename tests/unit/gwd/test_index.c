// SPDX-License-Identifier: MIT
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>

#include "gw/crypto.h"
#include "index.h"

static struct gwd_index_table t;

static void setup(void)
{
	cr_assert_eq(gw_crypto_init(), 0);
}

TestSuite(index, .init = setup, .fini = NULL);

Test(index, node_id_in_top_byte)
{
	static const uint8_t ids[] = {0, 1, 7, 255};

	for (size_t i = 0; i < sizeof(ids); i++) {
		cr_assert_eq(gwd_index_init(&t, ids[i]), 0);
		for (int n = 0; n < 1000; n++) {
			uint32_t idx;
			int dummy;

			cr_assert_eq(gwd_index_alloc(&t, GWD_INDEX_KEYPAIR, &dummy, &idx), 0);
			if (ids[i])
				cr_assert_eq(idx >> 24, ids[i], "index %08x from node %u", idx,
					     ids[i]);
		}
		cr_assert_eq(t.count, 1000);
		gwd_index_destroy(&t);
	}
}

Test(index, kinds_lookup_replace_free)
{
	int a, b;
	uint32_t idx;

	cr_assert_eq(gwd_index_init(&t, 3), 0);
	cr_assert_eq(gwd_index_alloc(&t, GWD_INDEX_HANDSHAKE, &a, &idx), 0);
	cr_assert_eq(gwd_index_lookup(&t, idx, GWD_INDEX_HANDSHAKE), &a);
	cr_assert_null(gwd_index_lookup(&t, idx, GWD_INDEX_KEYPAIR));
	cr_assert_null(gwd_index_lookup(&t, idx ^ 1, GWD_INDEX_HANDSHAKE));
	cr_assert_eq(gwd_index_replace(&t, idx, GWD_INDEX_KEYPAIR, &b), 0);
	cr_assert_eq(gwd_index_lookup(&t, idx, GWD_INDEX_KEYPAIR), &b);
	cr_assert_eq(gwd_index_replace(&t, idx ^ 1, GWD_INDEX_KEYPAIR, &b), -ENOENT);
	cr_assert_eq(gwd_index_insert(&t, idx, GWD_INDEX_KEYPAIR, &a), -EEXIST);
	gwd_index_free(&t, idx);
	gwd_index_free(&t, idx); /* harmless twice */
	cr_assert_null(gwd_index_lookup(&t, idx, GWD_INDEX_KEYPAIR));
	cr_assert_eq(t.count, 0);
	gwd_index_destroy(&t);
}

/* Against a reference: a plain array of (index, ptr) pairs. */
Test(index, random_against_reference)
{
	enum { N = 100000 };
	uint32_t *idx = calloc(N, sizeof(*idx));
	char *live = calloc(N, 1);
	static char objs[N];

	cr_assert(idx && live);
	cr_assert_eq(gwd_index_init(&t, 9), 0);
	srand(42);
	for (int i = 0; i < N; i++) {
		cr_assert_eq(gwd_index_alloc(&t, GWD_INDEX_KEYPAIR, &objs[i], &idx[i]), 0);
		live[i] = 1;
		if (i > 0 && rand() % 3 == 0) {
			int j = rand() % i;

			/* Freeing a dead entry's index could remove a re-minted live one. */
			if (live[j])
				gwd_index_free(&t, idx[j]);
			live[j] = 0;
		}
	}
	size_t count = 0;

	for (int i = 0; i < N; i++) {
		void *p = gwd_index_lookup(&t, idx[i], GWD_INDEX_KEYPAIR);

		count += live[i];
		if (live[i]) {
			cr_assert_eq(p, (void *)&objs[i], "entry %d", i);
		} else if (p) {
			/* A freed index may have been minted again for a later entry. */
			long k = (char *)p - objs;

			cr_assert(k > i && live[k] && idx[k] == idx[i], "stale entry %d", i);
		}
	}
	cr_assert_eq(t.count, count);
	gwd_index_destroy(&t);
	free(idx);
	free(live);
}
