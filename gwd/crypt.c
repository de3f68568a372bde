// SPDX-License-Identifier: MIT
/* Fork-join AEAD of a batch of data messages; see crypt.h for the rules. */
#include "crypt.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>

/* Batches smaller than this are not worth waking a thread for. */
enum { MIN_PARALLEL = 4 };

/*
 * A batch is claimed job by job through `claim`: the batch's generation in
 * the high 32 bits, the next job in the low 32. A helper that wakes late,
 * after its batch was finished (by the loop thread alone, say), finds
 * another generation there and claims nothing, so a helper that is not
 * scheduled never delays the loop thread, and never touches a later batch
 * through stale pointers. The loop thread waits only for jobs claimed and
 * not yet done (`done` counts finished ones of the current batch).
 */
struct gwd_crypt_pool {
	pthread_t threads[GWD_CRYPT_MAX_THREADS];
	unsigned int nthreads;
	pthread_mutex_t mu;
	pthread_cond_t go;
	uint32_t gen; /* under mu: the current batch */
	bool stop;
	struct gwd_crypt_job *jobs; /* under mu */
	size_t njobs;
	_Atomic uint64_t claim;
	atomic_size_t done;
};

static void do_job(struct gwd_crypt_job *j)
{
	if (j->encrypt) {
		gw_aead_encrypt(j->data, j->data, j->len, NULL, 0, j->counter, j->key);
		j->ok = true;
	} else {
		j->ok = j->len >= GW_AEAD_TAG_LEN &&
			gw_aead_decrypt(j->data, j->data, j->len, NULL, 0, j->counter, j->key);
	}
}

/* Claims and runs jobs of batch gen until none is left; returns how many it ran. */
static size_t take_jobs(struct gwd_crypt_pool *p, uint32_t gen, struct gwd_crypt_job *jobs,
			size_t n)
{
	uint64_t v = atomic_load_explicit(&p->claim, memory_order_acquire);
	size_t ran = 0;

	for (;;) {
		if ((uint32_t)(v >> 32) != gen || (v & 0xffffffffu) >= n)
			return ran;
		if (!atomic_compare_exchange_weak_explicit(
			&p->claim, &v, v + 1, memory_order_acq_rel, memory_order_acquire))
			continue;
		do_job(&jobs[v & 0xffffffffu]);
		ran++;
		/* Release: the job's output is visible to whoever sees the count. */
		atomic_fetch_add_explicit(&p->done, 1, memory_order_release);
		v = atomic_load_explicit(&p->claim, memory_order_acquire);
	}
}

static void *worker(void *arg)
{
	struct gwd_crypt_pool *p = arg;
	uint32_t seen = 0;

	pthread_mutex_lock(&p->mu);
	for (;;) {
		while (!p->stop && p->gen == seen)
			pthread_cond_wait(&p->go, &p->mu);
		if (p->stop)
			break;
		seen = p->gen;
		struct gwd_crypt_job *jobs = p->jobs;
		size_t n = p->njobs;

		pthread_mutex_unlock(&p->mu);
		take_jobs(p, seen, jobs, n);
		pthread_mutex_lock(&p->mu);
	}
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

int gwd_crypt_pool_new(struct gwd_crypt_pool **out, unsigned int workers)
{
	struct gwd_crypt_pool *p;
	int err;

	if (workers >= GWD_CRYPT_MAX_THREADS)
		return -EINVAL;
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	if (pthread_mutex_init(&p->mu, NULL) != 0) {
		free(p);
		return -ENOMEM;
	}
	if (pthread_cond_init(&p->go, NULL) != 0) {
		pthread_mutex_destroy(&p->mu);
		free(p);
		return -ENOMEM;
	}
	for (unsigned int i = 0; i < workers; i++) {
		err = pthread_create(&p->threads[i], NULL, worker, p);
		if (err) {
			gwd_crypt_pool_free(p);
			return -err;
		}
		p->nthreads++;
	}
	*out = p;
	return 0;
}

void gwd_crypt_pool_free(struct gwd_crypt_pool *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->mu);
	p->stop = true;
	pthread_cond_broadcast(&p->go);
	pthread_mutex_unlock(&p->mu);
	for (unsigned int i = 0; i < p->nthreads; i++)
		pthread_join(p->threads[i], NULL);
	pthread_cond_destroy(&p->go);
	pthread_mutex_destroy(&p->mu);
	free(p);
}

unsigned int gwd_crypt_pool_workers(const struct gwd_crypt_pool *p)
{
	return p ? p->nthreads : 0;
}

void gwd_crypt_run(struct gwd_crypt_pool *p, struct gwd_crypt_job *jobs, size_t n)
{
	uint32_t gen;

	if (!p || p->nthreads == 0 || n < MIN_PARALLEL || n > UINT32_MAX) {
		for (size_t i = 0; i < n; i++)
			do_job(&jobs[i]);
		return;
	}
	pthread_mutex_lock(&p->mu);
	gen = ++p->gen;
	p->jobs = jobs;
	p->njobs = n;
	atomic_store_explicit(&p->done, 0, memory_order_relaxed);
	atomic_store_explicit(&p->claim, (uint64_t)gen << 32, memory_order_release);
	pthread_cond_broadcast(&p->go);
	pthread_mutex_unlock(&p->mu);
	take_jobs(p, gen, jobs, n);
	/* Every job is claimed; wait for those a helper is still running (microseconds). */
	while (atomic_load_explicit(&p->done, memory_order_acquire) < n)
		sched_yield();
}

void gwd_crypt_wipe(struct gwd_crypt_job *jobs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		gw_wipe(jobs[i].key, sizeof(jobs[i].key));
}
