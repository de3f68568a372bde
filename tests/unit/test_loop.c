// SPDX-License-Identifier: MIT
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "gw/loop.h"

enum { MAX_LOG = 64 };

/* Records which timers fired, in order. */
struct fire_log {
	int ids[MAX_LOG];
	uint64_t at[MAX_LOG];
	size_t n;
};

struct tt {
	struct gw_timer t;
	int id;
	struct fire_log *log;
	/* optional actions, taken when this timer fires */
	struct gw_timer *cancel;
	struct gw_timer *rearm;
	uint64_t rearm_at;
	bool rearm_self_now;
};

static void tt_fire(struct gw_loop *loop, struct gw_timer *t, void *arg)
{
	struct tt *x = arg;

	cr_assert_eq(t, &x->t);
	cr_assert_not(gw_timer_pending(t), "timer still pending in its callback");
	cr_assert_lt(x->log->n, MAX_LOG);
	x->log->at[x->log->n] = gw_loop_now(loop);
	x->log->ids[x->log->n++] = x->id;
	if (x->cancel)
		gw_timer_cancel(loop, x->cancel);
	if (x->rearm)
		cr_assert_eq(gw_timer_arm_at(loop, x->rearm, x->rearm_at), 0);
	if (x->rearm_self_now)
		cr_assert_eq(gw_timer_arm_in(loop, t, 0), 0);
}

static void tt_init(struct tt *x, int id, struct fire_log *log)
{
	memset(x, 0, sizeof(*x));
	x->id = id;
	x->log = log;
	gw_timer_init(&x->t, tt_fire, x);
}

static void assert_fired(const struct fire_log *log, const int *want, size_t n)
{
	cr_assert_eq(log->n, n, "fired %zu timers, want %zu", log->n, n);
	for (size_t i = 0; i < n; i++)
		cr_assert_eq(log->ids[i], want[i], "position %zu: timer %d, want %d", i,
			     log->ids[i], want[i]);
}

struct fixture {
	struct gw_fake_clock fc;
	struct gw_loop *loop;
	struct fire_log log;
};

static void fixture_init(struct fixture *f)
{
	memset(f, 0, sizeof(*f));
	gw_fake_clock_init(&f->fc, 1000000, 1700000000);
	cr_assert_eq(gw_loop_new(&f->loop, &f->fc.clock), 0);
	cr_assert_eq(gw_loop_clock(f->loop), &f->fc.clock);
}

Test(timer, fire_in_deadline_order_ties_in_arming_order)
{
	struct fixture f;
	struct tt x[6];
	static const uint64_t at[] = {500, 100, 300, 100, 300, 900};
	static const int want[] = {1, 3, 2, 4, 0};

	fixture_init(&f);
	for (int i = 0; i < 6; i++) {
		tt_init(&x[i], i, &f.log);
		cr_assert_eq(gw_timer_arm_in(f.loop, &x[i].t, at[i]), 0);
		cr_assert(gw_timer_pending(&x[i].t));
		cr_assert_eq(x[i].t.deadline, 1000000 + at[i]);
	}
	cr_assert_eq(gw_loop_run_timers(f.loop), 0);
	gw_fake_clock_advance(&f.fc, 99);
	cr_assert_eq(gw_loop_run_timers(f.loop), 0);
	gw_fake_clock_advance(&f.fc, 1);
	cr_assert_eq(gw_loop_run_timers(f.loop), 2);
	gw_fake_clock_advance(&f.fc, 400);
	cr_assert_eq(gw_loop_run_timers(f.loop), 3);
	assert_fired(&f.log, want, 5);
	cr_assert_not(gw_timer_pending(&x[0].t));
	cr_assert(gw_timer_pending(&x[5].t));
	gw_loop_free(f.loop);
}

Test(timer, cancel)
{
	struct fixture f;
	struct tt a, b, c;
	static const int want[] = {3};

	fixture_init(&f);
	tt_init(&a, 1, &f.log);
	tt_init(&b, 2, &f.log);
	tt_init(&c, 3, &f.log);
	gw_timer_cancel(f.loop, &a.t); /* idle: harmless */
	gw_timer_arm_in(f.loop, &a.t, 10);
	gw_timer_arm_in(f.loop, &b.t, 20);
	gw_timer_arm_in(f.loop, &c.t, 30);
	gw_timer_cancel(f.loop, &a.t);
	gw_timer_cancel(f.loop, &b.t);
	gw_timer_cancel(f.loop, &b.t);
	cr_assert_not(gw_timer_pending(&a.t));
	cr_assert_not(gw_timer_pending(&b.t));
	gw_fake_clock_advance(&f.fc, 100);
	cr_assert_eq(gw_loop_run_timers(f.loop), 1);
	assert_fired(&f.log, want, 1);
	gw_loop_free(f.loop);
}

Test(timer, rearm_earlier_and_later)
{
	struct fixture f;
	struct tt a, b, c;
	static const int want[] = {3, 2, 1};

	fixture_init(&f);
	tt_init(&a, 1, &f.log);
	tt_init(&b, 2, &f.log);
	tt_init(&c, 3, &f.log);
	gw_timer_arm_in(f.loop, &a.t, 100);
	gw_timer_arm_in(f.loop, &b.t, 200);
	gw_timer_arm_in(f.loop, &c.t, 300);
	gw_timer_arm_in(f.loop, &a.t, 400); /* later */
	gw_timer_arm_in(f.loop, &c.t, 50);  /* earlier */
	cr_assert_eq(a.t.deadline, 1000400);
	gw_fake_clock_advance(&f.fc, 60);
	cr_assert_eq(gw_loop_run_timers(f.loop), 1);
	gw_fake_clock_advance(&f.fc, 300);
	cr_assert_eq(gw_loop_run_timers(f.loop), 1);
	gw_fake_clock_advance(&f.fc, 40);
	cr_assert_eq(gw_loop_run_timers(f.loop), 1);
	assert_fired(&f.log, want, 3);
	cr_assert_eq(f.log.at[0], 1000060);
	cr_assert_eq(f.log.at[2], 1000400);
	gw_loop_free(f.loop);
}

Test(timer, self_rearm_for_now_fires_next_run)
{
	struct fixture f;
	struct tt a, b;
	static const int want[] = {1, 2, 1, 1};

	fixture_init(&f);
	tt_init(&a, 1, &f.log);
	tt_init(&b, 2, &f.log);
	a.rearm_self_now = true;
	gw_timer_arm_in(f.loop, &a.t, 10);
	gw_timer_arm_in(f.loop, &b.t, 20);
	gw_fake_clock_advance(&f.fc, 100);
	/* a's re-arm for "now" must not starve b nor fire a twice. */
	cr_assert_eq(gw_loop_run_timers(f.loop), 2);
	cr_assert(gw_timer_pending(&a.t));
	cr_assert_eq(gw_loop_run_timers(f.loop), 1);
	cr_assert_eq(gw_loop_run_timers(f.loop), 1);
	assert_fired(&f.log, want, 4);
	a.rearm_self_now = false;
	cr_assert_eq(gw_loop_run_timers(f.loop), 1);
	cr_assert_eq(gw_loop_run_timers(f.loop), 0);
	gw_loop_free(f.loop);
}

Test(timer, rearm_other_into_the_past_defers_it)
{
	struct fixture f;
	struct tt a, b, c;
	static const int want[] = {1, 3, 2};

	fixture_init(&f);
	tt_init(&a, 1, &f.log);
	tt_init(&b, 2, &f.log);
	tt_init(&c, 3, &f.log);
	gw_timer_arm_in(f.loop, &a.t, 10);
	gw_timer_arm_in(f.loop, &b.t, 20);
	gw_timer_arm_in(f.loop, &c.t, 30);
	/* a moves b to a deadline already past: b leaves this run, c still fires. */
	a.rearm = &b.t;
	a.rearm_at = 0;
	gw_fake_clock_advance(&f.fc, 100);
	cr_assert_eq(gw_loop_run_timers(f.loop), 2);
	cr_assert(gw_timer_pending(&b.t));
	cr_assert_eq(b.t.deadline, 1000100);
	cr_assert_eq(gw_loop_run_timers(f.loop), 1);
	assert_fired(&f.log, want, 3);
	gw_loop_free(f.loop);
}

Test(timer, cancel_other_from_callback)
{
	struct fixture f;
	struct tt a, b, c, d;
	static const int want[] = {1, 3};

	fixture_init(&f);
	tt_init(&a, 1, &f.log);
	tt_init(&b, 2, &f.log);
	tt_init(&c, 3, &f.log);
	tt_init(&d, 4, &f.log);
	a.cancel = &b.t; /* due in the same run */
	c.cancel = &d.t; /* not yet due */
	gw_timer_arm_in(f.loop, &a.t, 10);
	gw_timer_arm_in(f.loop, &b.t, 10);
	gw_timer_arm_in(f.loop, &c.t, 20);
	gw_timer_arm_in(f.loop, &d.t, 5000);
	gw_fake_clock_advance(&f.fc, 100);
	cr_assert_eq(gw_loop_run_timers(f.loop), 2);
	gw_fake_clock_advance(&f.fc, 10000);
	cr_assert_eq(gw_loop_run_timers(f.loop), 0);
	assert_fired(&f.log, want, 2);
	gw_loop_free(f.loop);
}

struct owned {
	struct gw_timer t;
	int *freed;
};

static void owned_fire(struct gw_loop *loop, struct gw_timer *t, void *arg)
{
	struct owned *o = arg;

	(*o->freed)++;
	free(o);
}

/* Under ASan this fails if the loop touches the timer after its callback. */
Test(timer, free_owner_from_callback)
{
	struct fixture f;
	int freed = 0;

	fixture_init(&f);
	for (int i = 0; i < 20; i++) {
		struct owned *o = malloc(sizeof(*o));

		cr_assert_not_null(o);
		o->freed = &freed;
		gw_timer_init(&o->t, owned_fire, o);
		gw_timer_arm_in(f.loop, &o->t, (uint64_t)(i % 5));
	}
	gw_fake_clock_advance(&f.fc, 10);
	cr_assert_eq(gw_loop_run_timers(f.loop), 20);
	cr_assert_eq(freed, 20);
	gw_loop_free(f.loop);
}

enum { RANDOM_TIMERS = 10000 };

struct rt {
	struct gw_timer t;
	uint64_t order; /* arming order of its last arm */
	struct rt **out;
	size_t *nout;
};

static void rt_fire(struct gw_loop *loop, struct gw_timer *t, void *arg)
{
	struct rt *r = arg;

	r->out[(*r->nout)++] = r;
}

/* Heap property under churn: random arms, re-arms and cancels still fire sorted. */
Test(timer, random_timers_fire_sorted)
{
	struct fixture f;
	struct rt *r = calloc(RANDOM_TIMERS, sizeof(*r));
	struct rt **out = calloc(RANDOM_TIMERS, sizeof(*out));
	size_t nout = 0, armed = 0, fired = 0;
	uint64_t order = 0;

	cr_assert(r && out);
	fixture_init(&f);
	srand(12345);
	for (size_t i = 0; i < RANDOM_TIMERS; i++) {
		r[i].out = out;
		r[i].nout = &nout;
		gw_timer_init(&r[i].t, rt_fire, &r[i]);
		cr_assert_eq(gw_timer_arm_in(f.loop, &r[i].t, (uint64_t)(rand() % 5000)), 0);
		r[i].order = order++;
	}
	for (size_t k = 0; k < RANDOM_TIMERS; k++) {
		struct rt *x = &r[rand() % RANDOM_TIMERS];

		if (rand() % 3 == 0) {
			gw_timer_cancel(f.loop, &x->t);
		} else {
			cr_assert_eq(gw_timer_arm_in(f.loop, &x->t, (uint64_t)(rand() % 5000)), 0);
			x->order = order++;
		}
	}
	for (size_t i = 0; i < RANDOM_TIMERS; i++)
		armed += gw_timer_pending(&r[i].t);

	/* Fire in slices so heap order is checked against the clock too. */
	for (int step = 0; step < 60; step++) {
		uint64_t before = gw_loop_now(f.loop);
		size_t first = nout;

		gw_fake_clock_advance(&f.fc, 97);
		fired += gw_loop_run_timers(f.loop);
		for (size_t i = first; i < nout; i++) {
			cr_assert_gt(out[i]->t.deadline, before);
			cr_assert_leq(out[i]->t.deadline, gw_loop_now(f.loop));
		}
	}
	cr_assert_eq(fired, armed);
	cr_assert_eq(nout, armed);
	for (size_t i = 1; i < nout; i++) {
		const struct rt *p = out[i - 1], *q = out[i];

		cr_assert(p->t.deadline < q->t.deadline ||
			      (p->t.deadline == q->t.deadline && p->order < q->order),
			  "out of order at %zu", i);
	}
	for (size_t i = 0; i < RANDOM_TIMERS; i++)
		cr_assert_not(gw_timer_pending(&r[i].t));
	gw_loop_free(f.loop);
	free(out);
	free(r);
}

Test(timer, arm_in_saturates)
{
	struct fixture f;
	struct tt a;

	fixture_init(&f);
	tt_init(&a, 1, &f.log);
	cr_assert_eq(gw_timer_arm_in(f.loop, &a.t, UINT64_MAX), 0);
	cr_assert_eq(a.t.deadline, UINT64_MAX);
	gw_fake_clock_advance(&f.fc, 1ULL << 62);
	cr_assert_eq(gw_loop_run_timers(f.loop), 0);
	gw_loop_free(f.loop);
}

static void count_io(struct gw_loop *loop, int fd, uint32_t events, void *arg)
{
	uint64_t v;

	cr_assert(events & EPOLLIN);
	cr_assert_eq(read(fd, &v, sizeof(v)), (ssize_t)sizeof(v));
	*(int *)arg += (int)v;
}

Test(io, eventfd_callbacks_and_errors)
{
	struct fixture f;
	int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC), got = 0;
	uint64_t v = 3;

	fixture_init(&f);
	cr_assert_geq(efd, 0);
	cr_assert_eq(gw_loop_add_fd(f.loop, efd, EPOLLIN, count_io, &got), 0);
	cr_assert_eq(gw_loop_add_fd(f.loop, efd, EPOLLIN, count_io, &got), -EEXIST);
	cr_assert_eq(gw_loop_add_fd(f.loop, -1, EPOLLIN, count_io, &got), -EBADF);
	cr_assert_eq(gw_loop_mod_fd(f.loop, efd + 100, EPOLLIN), -ENOENT);
	cr_assert_eq(gw_loop_del_fd(f.loop, efd + 100), -ENOENT);

	cr_assert_eq(gw_loop_run_once(f.loop, 0), 0);
	cr_assert_eq(got, 0);
	cr_assert_eq(write(efd, &v, sizeof(v)), (ssize_t)sizeof(v));
	cr_assert_eq(gw_loop_run_once(f.loop, 1000), 0);
	cr_assert_eq(got, 3);

	/* Not interested in input any more: no callback. */
	cr_assert_eq(gw_loop_mod_fd(f.loop, efd, 0), 0);
	cr_assert_eq(write(efd, &v, sizeof(v)), (ssize_t)sizeof(v));
	cr_assert_eq(gw_loop_run_once(f.loop, 0), 0);
	cr_assert_eq(got, 3);
	cr_assert_eq(gw_loop_mod_fd(f.loop, efd, EPOLLIN), 0);
	cr_assert_eq(gw_loop_run_once(f.loop, 1000), 0);
	cr_assert_eq(got, 6);

	cr_assert_eq(gw_loop_del_fd(f.loop, efd), 0);
	cr_assert_eq(gw_loop_del_fd(f.loop, efd), -ENOENT);
	cr_assert_eq(write(efd, &v, sizeof(v)), (ssize_t)sizeof(v));
	cr_assert_eq(gw_loop_run_once(f.loop, 0), 0);
	cr_assert_eq(got, 6);
	gw_loop_free(f.loop);
	close(efd);
}

Test(io, high_fd_grows_table)
{
	struct fixture f;
	int efd = eventfd(1, EFD_NONBLOCK | EFD_CLOEXEC), high, got = 0;

	fixture_init(&f);
	cr_assert_geq(efd, 0);
	high = fcntl(efd, F_DUPFD_CLOEXEC, 700);
	cr_assert_geq(high, 700);
	cr_assert_eq(gw_loop_add_fd(f.loop, high, EPOLLIN, count_io, &got), 0);
	cr_assert_eq(gw_loop_run_once(f.loop, 1000), 0);
	cr_assert_eq(got, 1);
	gw_loop_free(f.loop);
	close(high);
	close(efd);
}

/* Two ready eventfds; whichever callback runs first removes and closes the other. */
struct pair {
	int fd[2];
	int calls[2];
	int fresh_calls;
	int reused_fd;
};

static void fresh_io(struct gw_loop *loop, int fd, uint32_t events, void *arg)
{
	((struct pair *)arg)->fresh_calls++;
}

static void pair_io(struct gw_loop *loop, int fd, uint32_t events, void *arg)
{
	struct pair *p = arg;
	int me = fd == p->fd[1], other = !me;
	uint64_t v;

	p->calls[me]++;
	cr_assert_eq(read(fd, &v, sizeof(v)), (ssize_t)sizeof(v));
	if (p->fd[other] < 0)
		return;
	cr_assert_eq(gw_loop_del_fd(loop, p->fd[other]), 0);
	close(p->fd[other]);
	/* The number comes straight back; its stale event must not reach the new handler. */
	p->reused_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	cr_assert_eq(p->reused_fd, p->fd[other]);
	cr_assert_eq(gw_loop_add_fd(loop, p->reused_fd, EPOLLIN, fresh_io, p), 0);
	p->fd[other] = -1;
}

Test(io, del_fd_with_event_pending_in_same_batch)
{
	struct fixture f;
	struct pair p = {.reused_fd = -1};
	uint64_t v = 1;

	fixture_init(&f);
	for (int i = 0; i < 2; i++) {
		p.fd[i] = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		cr_assert_geq(p.fd[i], 0);
		cr_assert_eq(gw_loop_add_fd(f.loop, p.fd[i], EPOLLIN, pair_io, &p), 0);
		cr_assert_eq(write(p.fd[i], &v, sizeof(v)), (ssize_t)sizeof(v));
	}
	cr_assert_eq(gw_loop_run_once(f.loop, 1000), 0);
	cr_assert_eq(p.calls[0] + p.calls[1], 1, "calls %d %d", p.calls[0], p.calls[1]);
	cr_assert_eq(p.fresh_calls, 0);
	/* The new registration works normally afterwards. */
	cr_assert_eq(write(p.reused_fd, &v, sizeof(v)), (ssize_t)sizeof(v));
	cr_assert_eq(gw_loop_run_once(f.loop, 1000), 0);
	cr_assert_eq(p.fresh_calls, 1);
	gw_loop_free(f.loop);
	close(p.reused_fd);
	close(p.fd[0] >= 0 ? p.fd[0] : p.fd[1]);
}

static void on_signal(struct gw_loop *loop, int fd, uint32_t events, void *arg)
{
	int *got = arg;

	*got = (int)events;
}

Test(io, signal_via_signalfd)
{
	struct fixture f;
	int usr1 = 0, usr2 = 0;

	fixture_init(&f);
	cr_assert_eq(gw_loop_add_signal(f.loop, SIGUSR1, on_signal, &usr1), 0);
	cr_assert_eq(gw_loop_add_signal(f.loop, SIGUSR2, on_signal, &usr2), 0);
	cr_assert_eq(gw_loop_add_signal(f.loop, SIGUSR1, on_signal, &usr1), -EEXIST);
	cr_assert_eq(gw_loop_add_signal(f.loop, SIGKILL, on_signal, &usr1), -EINVAL);
	cr_assert_eq(gw_loop_add_signal(f.loop, 0, on_signal, &usr1), -EINVAL);
	cr_assert_eq(raise(SIGUSR1), 0);
	cr_assert_eq(gw_loop_run_once(f.loop, 1000), 0);
	cr_assert_eq(usr1, SIGUSR1);
	cr_assert_eq(usr2, 0);
	cr_assert_eq(raise(SIGUSR2), 0);
	cr_assert_eq(gw_loop_run_once(f.loop, 1000), 0);
	cr_assert_eq(usr2, SIGUSR2);
	gw_loop_free(f.loop);
}

static uint64_t mono_now(void)
{
	return gw_clock_mono_ns(gw_clock_system());
}

struct stopper {
	struct gw_timer t;
	int ticks, stop_at;
};

static void stopper_fire(struct gw_loop *loop, struct gw_timer *t, void *arg)
{
	struct stopper *s = arg;

	if (++s->ticks == s->stop_at)
		gw_loop_stop(loop);
	else
		gw_timer_arm_in(loop, t, 2 * GW_NSEC_PER_MSEC);
}

Test(run, stops_from_timer)
{
	struct gw_loop *loop;
	struct stopper s = {.stop_at = 5};
	uint64_t start;

	cr_assert_eq(gw_loop_new(&loop, NULL), 0);
	cr_assert_eq(gw_loop_clock(loop), gw_clock_system());
	gw_timer_init(&s.t, stopper_fire, &s);
	start = mono_now();
	cr_assert_eq(gw_timer_arm_in(loop, &s.t, 2 * GW_NSEC_PER_MSEC), 0);
	cr_assert_eq(gw_loop_run(loop), 0);
	cr_assert_eq(s.ticks, 5);
	cr_assert_geq(mono_now() - start, 10 * GW_NSEC_PER_MSEC);
	gw_loop_free(loop);
}

static void count_fire(struct gw_loop *loop, struct gw_timer *t, void *arg)
{
	++*(int *)arg;
}

/* The epoll timeout rounds the next deadline up: a sub-ms remainder must not spin. */
Test(run, run_once_waits_for_next_timer)
{
	struct gw_loop *loop;
	struct gw_timer t;
	int fired = 0, rounds = 0;
	uint64_t start;

	cr_assert_eq(gw_loop_new(&loop, NULL), 0);
	gw_timer_init(&t, count_fire, &fired);
	start = mono_now();
	cr_assert_eq(gw_timer_arm_in(loop, &t, 20 * GW_NSEC_PER_MSEC + 300000), 0);
	while (!fired && rounds < 100) {
		cr_assert_eq(gw_loop_run_once(loop, -1), 0);
		rounds++;
	}
	cr_assert_eq(fired, 1);
	cr_assert_leq(rounds, 2, "took %d rounds", rounds);
	cr_assert_geq(mono_now() - start, 20 * GW_NSEC_PER_MSEC + 300000);
	gw_loop_free(loop);
}

Test(run, run_once_timeout_bounds_wait)
{
	struct gw_loop *loop;
	struct gw_timer t;
	int fired = 0;
	uint64_t start;

	cr_assert_eq(gw_loop_new(&loop, NULL), 0);
	gw_timer_init(&t, count_fire, &fired);
	cr_assert_eq(gw_timer_arm_in(loop, &t, 10 * GW_NSEC_PER_SEC), 0);
	start = mono_now();
	cr_assert_eq(gw_loop_run_once(loop, 5), 0);
	cr_assert_eq(fired, 0);
	cr_assert_geq(mono_now() - start, 5 * GW_NSEC_PER_MSEC);
	cr_assert_lt(mono_now() - start, 5 * GW_NSEC_PER_SEC);
	gw_loop_free(loop);
}

/* With a fake clock, a due timer makes run_once return without waiting. */
Test(run, fake_clock_due_timer_does_not_wait)
{
	struct fixture f;
	struct gw_timer t;
	int fired = 0;
	uint64_t start;

	fixture_init(&f);
	gw_timer_init(&t, count_fire, &fired);
	gw_timer_arm_at(f.loop, &t, 5);
	start = mono_now();
	cr_assert_eq(gw_loop_run_once(f.loop, 10000), 0);
	cr_assert_eq(fired, 1);
	cr_assert_lt(mono_now() - start, 5 * GW_NSEC_PER_SEC);
	gw_loop_free(f.loop);
}

struct slow {
	struct gw_timer t;
	struct gw_fake_clock *fc;
	uint64_t takes_ns;
};

static void slow_fire(struct gw_loop *loop, struct gw_timer *t, void *arg)
{
	struct slow *s = arg;

	(void)loop;
	(void)t;
	gw_fake_clock_advance(s->fc, s->takes_ns); /* the callback "runs" that long */
}

Test(loop, stats_measure_turns_and_the_longest)
{
	struct fixture f;
	struct slow a = {.takes_ns = 3000000}, b = {.takes_ns = 7000000};
	struct gw_loop_stats st;

	fixture_init(&f);
	a.fc = b.fc = &f.fc;
	gw_timer_init(&a.t, slow_fire, &a);
	gw_timer_init(&b.t, slow_fire, &b);
	gw_loop_get_stats(f.loop, &st);
	cr_assert_eq(st.turns, 0);
	cr_assert_eq(st.longest_ns, 0);
	gw_timer_arm_in(f.loop, &a.t, 0);
	cr_assert_eq(gw_loop_run_once(f.loop, 0), 0);
	gw_timer_arm_in(f.loop, &b.t, 0);
	cr_assert_eq(gw_loop_run_once(f.loop, 0), 0);
	cr_assert_eq(gw_loop_run_once(f.loop, 0), 0); /* nothing due: a turn of 0 ns */
	gw_loop_get_stats(f.loop, &st);
	cr_assert_eq(st.turns, 3);
	cr_assert_eq(st.busy_ns, 10000000);
	cr_assert_eq(st.longest_ns, 7000000);
	gw_loop_free(f.loop);
}
