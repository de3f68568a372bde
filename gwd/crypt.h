/* SPDX-License-Identifier: MIT */
/*
 * ChaCha20-Poly1305 of a batch of data messages on several cores, fork-join:
 * gwd_crypt_run() hands the batch to the pool's worker threads, takes jobs
 * itself too, and returns once every job is done.
 *
 * Thread safety, and why the rest of gwd stays single-threaded: a job holds
 * its own copy of the key and points at a message in a buffer of the
 * caller's; workers touch nothing else. Everything that orders or decides
 * (counter assignment and counter regions, the replay window, keypair
 * rotation, timers, counters) runs on the loop thread before the batch is
 * handed over (send: counters are taken in order when a message is queued)
 * or after gwd_crypt_run() returned (receive: the replay check and delivery
 * go through the batch in arrival order). While the workers run, the loop
 * thread is inside gwd_crypt_run(), so no keypair can be freed or changed
 * under them. Key copies are wiped when the batch is done.
 */
#ifndef GWD_CRYPT_H
#define GWD_CRYPT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gw/crypto.h"

enum { GWD_CRYPT_MAX_THREADS = 4 };

struct gwd_crypt_job {
	uint8_t *data; /* encrypt: plaintext, tag written after it; decrypt: ciphertext and tag */
	size_t len;    /* encrypt: plaintext bytes; decrypt: ciphertext bytes with the tag */
	uint64_t counter;
	uint8_t key[GW_KEY_LEN];
	bool encrypt;
	bool ok; /* decrypt: authenticated (the plaintext replaced the ciphertext) */
};

struct gwd_crypt_pool;

/*
 * A pool of `workers` threads (0 is valid: the caller does everything),
 * at most GWD_CRYPT_MAX_THREADS - 1. 0 or -errno.
 */
int gwd_crypt_pool_new(struct gwd_crypt_pool **out, unsigned int workers);
/* Stops and joins the threads. NULL is ignored. */
void gwd_crypt_pool_free(struct gwd_crypt_pool *pool);
unsigned int gwd_crypt_pool_workers(const struct gwd_crypt_pool *pool);

/* Runs the n jobs (pool may be NULL: all on the caller). */
void gwd_crypt_run(struct gwd_crypt_pool *pool, struct gwd_crypt_job *jobs, size_t n);
/* Wipes the key copies of n jobs: the caller's duty once it is done with them. */
void gwd_crypt_wipe(struct gwd_crypt_job *jobs, size_t n);

#endif
