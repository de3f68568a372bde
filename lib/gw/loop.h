/* SPDX-License-Identifier: MIT */
/*
 * A single-threaded epoll event loop with timers on a gw_clock.
 *
 * Timers are caller-owned structs (embed them in the object they time), so
 * arming one never allocates once the heap has grown to the number of armed
 * timers. Callbacks may add, remove, arm and cancel anything, including
 * themselves, and may free the object holding a timer after cancelling it.
 *
 * With a fake clock, tests call gw_fake_clock_advance() and then
 * gw_loop_run_timers() to fire exactly the timers that became due.
 */
#ifndef GW_LOOP_H
#define GW_LOOP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gw/clock.h"

struct gw_loop;
struct gw_timer;

typedef void gw_io_fn(struct gw_loop *loop, int fd, uint32_t events, void *arg);
typedef void gw_timer_fn(struct gw_loop *loop, struct gw_timer *t, void *arg);

/*
 * Timers fire in deadline order, ties in arming order. A timer armed from a
 * timer callback for a time that is already due fires in the next
 * gw_loop_run_timers(), not the current one (its deadline then reads as the
 * current run's "now"), so a timer re-arming itself for now cannot spin.
 */
struct gw_timer {
	uint64_t deadline; /* monotonic ns; valid while armed */
	size_t slot;	   /* position in the loop's heap, SIZE_MAX when idle */
	uint64_t seq;	   /* arming order: breaks deadline ties */
	gw_timer_fn *fn;
	void *arg;
};

/* 0 or -errno. clock NULL means gw_clock_system(). */
int gw_loop_new(struct gw_loop **out, const struct gw_clock *clock);
/* Closes nothing the caller registered; armed timers are simply forgotten. */
void gw_loop_free(struct gw_loop *loop);
const struct gw_clock *gw_loop_clock(const struct gw_loop *loop);
uint64_t gw_loop_now(const struct gw_loop *loop);

/* events are EPOLLIN/EPOLLOUT/...; 0 or -errno (-EEXIST if fd is already watched). */
int gw_loop_add_fd(struct gw_loop *loop, int fd, uint32_t events, gw_io_fn *fn, void *arg);
int gw_loop_mod_fd(struct gw_loop *loop, int fd, uint32_t events);
/* 0 or -ENOENT. Safe from inside a callback, also for an fd with events pending. */
int gw_loop_del_fd(struct gw_loop *loop, int fd);

/*
 * Signals through a signalfd: blocks the signals in the calling thread and
 * calls fn with the signal number in `events`. 0 or -errno.
 */
int gw_loop_add_signal(struct gw_loop *loop, int signo, gw_io_fn *fn, void *arg);

void gw_timer_init(struct gw_timer *t, gw_timer_fn *fn, void *arg);
/* Arms (or re-arms) t for an absolute monotonic deadline. 0 or -ENOMEM. */
int gw_timer_arm_at(struct gw_loop *loop, struct gw_timer *t, uint64_t deadline_ns);
/* Arms t for now + delay. 0 or -ENOMEM. */
int gw_timer_arm_in(struct gw_loop *loop, struct gw_timer *t, uint64_t delay_ns);
/* Disarms t if armed; harmless otherwise. */
void gw_timer_cancel(struct gw_loop *loop, struct gw_timer *t);
static inline bool gw_timer_pending(const struct gw_timer *t)
{
	return t->slot != SIZE_MAX;
}

/* Fires every timer whose deadline is <= now, in deadline order; returns how many. */
size_t gw_loop_run_timers(struct gw_loop *loop);
/*
 * Waits up to timeout_ms (-1: until the next timer or forever) for I/O, runs
 * ready callbacks and due timers. 0 or -errno (EINTR is not an error).
 */
int gw_loop_run_once(struct gw_loop *loop, int timeout_ms);
/*
 * What gw_loop_run_once() measured on the loop's clock: a turn is the work
 * after one wait (I/O callbacks, then due timers). The longest turn is how
 * long the loop answered nothing at worst: the figure for stalls.
 */
struct gw_loop_stats {
	uint64_t turns;
	uint64_t busy_ns;    /* sum of the turns */
	uint64_t longest_ns; /* the longest turn since gw_loop_new() */
};
void gw_loop_get_stats(const struct gw_loop *loop, struct gw_loop_stats *out);

/* Runs until gw_loop_stop(); 0 or -errno from epoll. */
int gw_loop_run(struct gw_loop *loop);
void gw_loop_stop(struct gw_loop *loop);

#endif
