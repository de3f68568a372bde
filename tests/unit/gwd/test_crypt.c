/* SPDX-License-Identifier: MIT */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "crypt.h"

enum { N = 100, LEN = 1420 };

static uint8_t bufs[N][LEN + GW_AEAD_TAG_LEN], want[N][LEN + GW_AEAD_TAG_LEN];
static struct gwd_crypt_job jobs[N];

static void key_of(size_t i, uint8_t key[GW_KEY_LEN])
{
	memset(key, (int)(i % 3) + 1, GW_KEY_LEN);
}

/* Encrypts and decrypts N messages (three keys) with `workers` helpers; checks both ways. */
static void roundtrip(unsigned int workers, size_t n)
{
	struct gwd_crypt_pool *pool = NULL;

	cr_assert_eq(gwd_crypt_pool_new(&pool, workers), 0);
	cr_assert_eq(gwd_crypt_pool_workers(pool), workers);
	for (int round = 0; round < 20; round++) {
		for (size_t i = 0; i < n; i++) {
			uint8_t key[GW_KEY_LEN];

			for (size_t b = 0; b < LEN; b++)
				bufs[i][b] = (uint8_t)(b * 31 + i + (size_t)round);
			key_of(i, key);
			gw_aead_encrypt(want[i], bufs[i], LEN, NULL, 0, i + 7, key);
			jobs[i] = (struct gwd_crypt_job){
			    .data = bufs[i], .len = LEN, .counter = i + 7, .encrypt = true};
			memcpy(jobs[i].key, key, GW_KEY_LEN);
		}
		gwd_crypt_run(pool, jobs, n);
		for (size_t i = 0; i < n; i++)
			cr_assert_eq(memcmp(bufs[i], want[i], LEN + GW_AEAD_TAG_LEN), 0,
				     "encrypt %zu", i);
		/* Decrypt; every fifth is damaged and must fail (and only it). */
		for (size_t i = 0; i < n; i++) {
			if (i % 5 == 4)
				bufs[i][i % LEN] ^= 0x40;
			jobs[i].encrypt = false;
			jobs[i].len = LEN + GW_AEAD_TAG_LEN;
			jobs[i].ok = false;
		}
		gwd_crypt_run(pool, jobs, n);
		for (size_t i = 0; i < n; i++) {
			cr_assert_eq(jobs[i].ok, i % 5 != 4, "decrypt %zu", i);
			if (jobs[i].ok)
				cr_assert_eq(bufs[i][5], (uint8_t)(5 * 31 + i + (size_t)round));
		}
		gwd_crypt_wipe(jobs, n);
	}
	gwd_crypt_pool_free(pool);
}

Test(crypt, inline_only)
{
	roundtrip(0, N);
}

Test(crypt, one_helper)
{
	roundtrip(1, N);
	roundtrip(1, 3); /* below the parallel threshold */
	roundtrip(1, 0);
}

Test(crypt, three_helpers)
{
	roundtrip(3, N);
}

Test(crypt, limits)
{
	struct gwd_crypt_pool *pool = NULL;
	uint8_t zero[GW_KEY_LEN] = {0};

	cr_assert_eq(gwd_crypt_pool_new(&pool, GWD_CRYPT_MAX_THREADS), -EINVAL);
	cr_assert_null(pool);
	gwd_crypt_pool_free(NULL);
	cr_assert_eq(gwd_crypt_pool_workers(NULL), 0);
	gwd_crypt_run(NULL, NULL, 0);
	memset(jobs[0].key, 0xaa, GW_KEY_LEN);
	gwd_crypt_wipe(jobs, 1);
	cr_assert_eq(memcmp(jobs[0].key, zero, GW_KEY_LEN), 0);
}
