// SPDX-License-Identifier: MIT
/* Fork-join AEAD of a batch of data messages; see crypt.h for the rules. */
#include "crypt.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

/* Batches smaller than this are not worth waking a thread for. */
enum { MIN_PARALLEL = 4 };

struct gwd_crypt_pool {
	pthread_t threads[GWD_CRYPT_MAX_THREADS];
	unsigned int nthreads;
	pthread_mutex_t mu;
	pthread_cond_t go, done;
	uint64_t gen;	   /* a new batch: workers wait for it to change */
	unsigned int busy; /* workers still on the current batch */
	bool stop;
	struct gwd_crypt_job *jobs;
	size_t njobs;
	atomic_size_t next; /* the next job to take */
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

static void take_jobs(struct gwd_crypt_pool *p, struct gwd_crypt_job *jobs, size_t n)
{
	size_t i;

	while ((i = atomic_fetch_add_explicit(&p->next, 1, memory_order_relaxed)) < n)
		do_job(&jobs[i]);
}

static void *worker(void *arg)
{
	struct gwd_crypt_pool *p = arg;
	uint64_t seen = 0;

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
		take_jobs(p, jobs, n);
		pthread_mutex_lock(&p->mu);
		if (--p->busy == 0)
			pthread_cond_signal(&p->done);
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
	if (pthread_cond_init(&p->go, NULL) != 0 || pthread_cond_init(&p->done, NULL) != 0) {
		/* A cond that failed to initialise needs no destroying; the other is harmless to.
		 */
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
	pthread_cond_destroy(&p->done);
	pthread_mutex_destroy(&p->mu);
	free(p);
}

unsigned int gwd_crypt_pool_workers(const struct gwd_crypt_pool *p)
{
	return p ? p->nthreads : 0;
}

void gwd_crypt_run(struct gwd_crypt_pool *p, struct gwd_crypt_job *jobs, size_t n)
{
	if (!p || p->nthreads == 0 || n < MIN_PARALLEL) {
		for (size_t i = 0; i < n; i++)
			do_job(&jobs[i]);
	} else {
		pthread_mutex_lock(&p->mu);
		p->jobs = jobs;
		p->njobs = n;
		atomic_store_explicit(&p->next, 0, memory_order_relaxed);
		p->busy = p->nthreads;
		p->gen++;
		pthread_cond_broadcast(&p->go);
		pthread_mutex_unlock(&p->mu);
		take_jobs(p, jobs, n);
		/* The mutex orders the workers' writes to the jobs before what follows. */
		pthread_mutex_lock(&p->mu);
		while (p->busy)
			pthread_cond_wait(&p->done, &p->mu);
		p->jobs = NULL;
		pthread_mutex_unlock(&p->mu);
	}
}

void gwd_crypt_wipe(struct gwd_crypt_job *jobs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		gw_wipe(jobs[i].key, sizeof(jobs[i].key));
}
