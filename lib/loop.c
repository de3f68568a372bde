// SPDX-License-Identifier: MIT
/*
 * The event loop: epoll for file descriptors, one signalfd for all signals,
 * and a binary min-heap of caller-owned timers ordered by (deadline, seq).
 *
 * fd handlers live in a table indexed by fd. Each registration gets a fresh
 * nonzero generation, carried in the epoll event next to the fd, so an event
 * already fetched for an fd that a callback since removed (or removed and
 * re-added) is recognised as stale and dropped.
 */
#include "gw/loop.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <unistd.h>

enum {
	MAX_EVENTS = 64,
	FD_TABLE_MIN = 64,
	HEAP_MIN = 16,
};

struct fd_rec {
	gw_io_fn *fn;
	void *arg;
	uint32_t gen; /* 0: not watched */
};

struct sig_rec {
	gw_io_fn *fn;
	void *arg;
};

struct gw_loop {
	const struct gw_clock *clock;
	int epfd;
	bool stop;

	struct fd_rec *fds;
	size_t nfds;
	uint32_t next_gen;

	struct gw_timer **heap;
	size_t heap_len, heap_cap;
	uint64_t next_seq;
	bool in_timers;	  /* inside gw_loop_run_timers() */
	uint64_t run_now; /* its "now", valid while in_timers */

	int sigfd;
	sigset_t sigmask;
	struct sig_rec sig[NSIG];

	struct gw_loop_stats stats;
};

int gw_loop_new(struct gw_loop **out, const struct gw_clock *clock)
{
	struct gw_loop *loop = calloc(1, sizeof(*loop));

	if (!loop)
		return -ENOMEM;
	loop->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (loop->epfd < 0) {
		int err = -errno;

		free(loop);
		return err;
	}
	loop->clock = clock ? clock : gw_clock_system();
	loop->next_gen = 1;
	loop->sigfd = -1;
	sigemptyset(&loop->sigmask);
	*out = loop;
	return 0;
}

/* Signals stay blocked: unblocking would deliver pending ones with default actions. */
void gw_loop_free(struct gw_loop *loop)
{
	if (!loop)
		return;
	if (loop->sigfd >= 0)
		close(loop->sigfd);
	close(loop->epfd);
	free(loop->fds);
	free(loop->heap);
	free(loop);
}

const struct gw_clock *gw_loop_clock(const struct gw_loop *loop)
{
	return loop->clock;
}

uint64_t gw_loop_now(const struct gw_loop *loop)
{
	return gw_clock_mono_ns(loop->clock);
}

static int fds_reserve(struct gw_loop *loop, int fd)
{
	size_t n = loop->nfds ? loop->nfds : FD_TABLE_MIN;
	struct fd_rec *p;

	if ((size_t)fd < loop->nfds)
		return 0;
	while (n <= (size_t)fd)
		n *= 2;
	p = realloc(loop->fds, n * sizeof(*p));
	if (!p)
		return -ENOMEM;
	memset(p + loop->nfds, 0, (n - loop->nfds) * sizeof(*p));
	loop->fds = p;
	loop->nfds = n;
	return 0;
}

static struct fd_rec *fd_lookup(struct gw_loop *loop, int fd)
{
	if (fd < 0 || (size_t)fd >= loop->nfds || !loop->fds[fd].gen)
		return NULL;
	return &loop->fds[fd];
}

static int fd_ctl(struct gw_loop *loop, int op, int fd, uint32_t events, uint32_t gen)
{
	struct epoll_event ev = {
	    .events = events,
	    .data.u64 = (uint64_t)gen << 32 | (uint32_t)fd,
	};

	return epoll_ctl(loop->epfd, op, fd, &ev) ? -errno : 0;
}

int gw_loop_add_fd(struct gw_loop *loop, int fd, uint32_t events, gw_io_fn *fn, void *arg)
{
	uint32_t gen;
	int err;

	if (fd < 0)
		return -EBADF;
	if (!fn)
		return -EINVAL;
	if (fd_lookup(loop, fd))
		return -EEXIST;
	err = fds_reserve(loop, fd);
	if (err)
		return err;
	gen = loop->next_gen++;
	if (!loop->next_gen)
		loop->next_gen = 1;
	err = fd_ctl(loop, EPOLL_CTL_ADD, fd, events, gen);
	if (err)
		return err;
	loop->fds[fd] = (struct fd_rec){.fn = fn, .arg = arg, .gen = gen};
	return 0;
}

int gw_loop_mod_fd(struct gw_loop *loop, int fd, uint32_t events)
{
	struct fd_rec *r = fd_lookup(loop, fd);

	if (!r)
		return -ENOENT;
	return fd_ctl(loop, EPOLL_CTL_MOD, fd, events, r->gen);
}

/*
 * Forgets fd even when epoll no longer knows it (the caller closed it first,
 * which removes it from the epoll set when it was the last reference).
 */
int gw_loop_del_fd(struct gw_loop *loop, int fd)
{
	struct fd_rec *r = fd_lookup(loop, fd);

	if (!r)
		return -ENOENT;
	epoll_ctl(loop->epfd, EPOLL_CTL_DEL, fd, NULL);
	*r = (struct fd_rec){0};
	return 0;
}

static void dispatch(struct gw_loop *loop, const struct epoll_event *ev)
{
	int fd = (int)(uint32_t)ev->data.u64;
	uint32_t gen = (uint32_t)(ev->data.u64 >> 32);
	struct fd_rec *r = fd_lookup(loop, fd);

	/* Removed, or removed and re-added, by an earlier callback of this batch. */
	if (!r || r->gen != gen)
		return;
	r->fn(loop, fd, ev->events, r->arg);
}

static void sig_ready(struct gw_loop *loop, int fd, uint32_t events, void *arg)
{
	struct signalfd_siginfo si;

	while (read(fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		uint32_t signo = si.ssi_signo;

		if (signo < NSIG && loop->sig[signo].fn)
			loop->sig[signo].fn(loop, fd, signo, loop->sig[signo].arg);
	}
}

int gw_loop_add_signal(struct gw_loop *loop, int signo, gw_io_fn *fn, void *arg)
{
	sigset_t one, mask;
	int fd, err;

	if (signo <= 0 || signo >= NSIG || signo == SIGKILL || signo == SIGSTOP || !fn)
		return -EINVAL;
	if (loop->sig[signo].fn)
		return -EEXIST;
	sigemptyset(&one);
	sigaddset(&one, signo);
	err = pthread_sigmask(SIG_BLOCK, &one, NULL);
	if (err)
		return -err;
	mask = loop->sigmask;
	sigaddset(&mask, signo);
	/* With an existing fd, signalfd() updates its mask and returns it. */
	fd = signalfd(loop->sigfd, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (loop->sigfd < 0) {
		err = gw_loop_add_fd(loop, fd, EPOLLIN, sig_ready, NULL);
		if (err) {
			close(fd);
			return err;
		}
		loop->sigfd = fd;
	}
	loop->sigmask = mask;
	loop->sig[signo] = (struct sig_rec){.fn = fn, .arg = arg};
	return 0;
}

void gw_timer_init(struct gw_timer *t, gw_timer_fn *fn, void *arg)
{
	*t = (struct gw_timer){.slot = SIZE_MAX, .fn = fn, .arg = arg};
}

static bool timer_before(const struct gw_timer *a, const struct gw_timer *b)
{
	if (a->deadline != b->deadline)
		return a->deadline < b->deadline;
	return a->seq < b->seq;
}

static void heap_place(struct gw_loop *loop, size_t i, struct gw_timer *t)
{
	loop->heap[i] = t;
	t->slot = i;
}

static void sift_up(struct gw_loop *loop, size_t i)
{
	struct gw_timer *t = loop->heap[i];

	while (i > 0) {
		size_t parent = (i - 1) / 2;

		if (!timer_before(t, loop->heap[parent]))
			break;
		heap_place(loop, i, loop->heap[parent]);
		i = parent;
	}
	heap_place(loop, i, t);
}

static void sift_down(struct gw_loop *loop, size_t i)
{
	struct gw_timer *t = loop->heap[i];
	size_t n = loop->heap_len;

	for (;;) {
		size_t c = 2 * i + 1;

		if (c >= n)
			break;
		if (c + 1 < n && timer_before(loop->heap[c + 1], loop->heap[c]))
			c++;
		if (!timer_before(loop->heap[c], t))
			break;
		heap_place(loop, i, loop->heap[c]);
		i = c;
	}
	heap_place(loop, i, t);
}

/* Restores the heap after heap[i]'s key changed in either direction. */
static void heap_fix(struct gw_loop *loop, size_t i)
{
	if (i > 0 && timer_before(loop->heap[i], loop->heap[(i - 1) / 2]))
		sift_up(loop, i);
	else
		sift_down(loop, i);
}

static void heap_remove(struct gw_loop *loop, struct gw_timer *t)
{
	size_t i = t->slot;
	struct gw_timer *last = loop->heap[--loop->heap_len];

	t->slot = SIZE_MAX;
	if (i < loop->heap_len) {
		heap_place(loop, i, last);
		heap_fix(loop, i);
	}
}

static int heap_reserve(struct gw_loop *loop)
{
	size_t cap = loop->heap_cap ? loop->heap_cap * 2 : HEAP_MIN;
	struct gw_timer **p;

	if (loop->heap_len < loop->heap_cap)
		return 0;
	p = realloc(loop->heap, cap * sizeof(*p));
	if (!p)
		return -ENOMEM;
	loop->heap = p;
	loop->heap_cap = cap;
	return 0;
}

int gw_timer_arm_at(struct gw_loop *loop, struct gw_timer *t, uint64_t deadline_ns)
{
	/*
	 * Inside a timer run, a due deadline moves to the run's now and the new
	 * seq orders it after every timer the run may still fire; the run stops
	 * at the first timer armed after it started (see gw_loop_run_timers).
	 */
	if (loop->in_timers && deadline_ns < loop->run_now)
		deadline_ns = loop->run_now;
	if (!gw_timer_pending(t)) {
		int err = heap_reserve(loop);

		if (err)
			return err;
		loop->heap[loop->heap_len] = t;
		t->slot = loop->heap_len++;
	}
	t->deadline = deadline_ns;
	t->seq = loop->next_seq++;
	heap_fix(loop, t->slot);
	return 0;
}

int gw_timer_arm_in(struct gw_loop *loop, struct gw_timer *t, uint64_t delay_ns)
{
	uint64_t now = gw_loop_now(loop);
	uint64_t deadline = delay_ns > UINT64_MAX - now ? UINT64_MAX : now + delay_ns;

	return gw_timer_arm_at(loop, t, deadline);
}

void gw_timer_cancel(struct gw_loop *loop, struct gw_timer *t)
{
	if (gw_timer_pending(t))
		heap_remove(loop, t);
}

/*
 * A nested call (from a timer callback) fires nothing. Each timer leaves the
 * heap before its callback runs, so the callback may re-arm or free it.
 */
size_t gw_loop_run_timers(struct gw_loop *loop)
{
	uint64_t gate = loop->next_seq;
	size_t fired = 0;

	if (loop->in_timers)
		return 0;
	loop->in_timers = true;
	loop->run_now = gw_loop_now(loop);
	while (loop->heap_len) {
		struct gw_timer *t = loop->heap[0];

		if (t->deadline > loop->run_now || t->seq >= gate)
			break;
		heap_remove(loop, t);
		fired++;
		t->fn(loop, t, t->arg);
	}
	loop->in_timers = false;
	return fired;
}

/* Milliseconds until the next deadline, rounded up so an early wake-up cannot spin. */
static int wait_ms(struct gw_loop *loop, int timeout_ms)
{
	uint64_t now, deadline, delta, ms;

	if (!loop->heap_len)
		return timeout_ms;
	now = gw_loop_now(loop);
	deadline = loop->heap[0]->deadline;
	delta = deadline > now ? deadline - now : 0;
	ms = delta / GW_NSEC_PER_MSEC + (delta % GW_NSEC_PER_MSEC != 0);
	if (ms > INT_MAX)
		ms = INT_MAX;
	if (timeout_ms < 0 || (int)ms < timeout_ms)
		return (int)ms;
	return timeout_ms;
}

int gw_loop_run_once(struct gw_loop *loop, int timeout_ms)
{
	struct epoll_event ev[MAX_EVENTS];
	int n = epoll_wait(loop->epfd, ev, MAX_EVENTS, wait_ms(loop, timeout_ms));

	if (n < 0) {
		if (errno != EINTR)
			return -errno;
		n = 0;
	}
	uint64_t start = gw_clock_mono_ns(loop->clock), took;

	for (int i = 0; i < n; i++)
		dispatch(loop, &ev[i]);
	gw_loop_run_timers(loop);
	took = gw_clock_mono_ns(loop->clock) - start;
	loop->stats.turns++;
	loop->stats.busy_ns += took;
	if (took > loop->stats.longest_ns)
		loop->stats.longest_ns = took;
	return 0;
}

void gw_loop_get_stats(const struct gw_loop *loop, struct gw_loop_stats *out)
{
	*out = loop->stats;
}

int gw_loop_run(struct gw_loop *loop)
{
	loop->stop = false;
	while (!loop->stop) {
		int err = gw_loop_run_once(loop, -1);

		if (err)
			return err;
	}
	return 0;
}

void gw_loop_stop(struct gw_loop *loop)
{
	loop->stop = true;
}
