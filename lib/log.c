// SPDX-License-Identifier: MIT
/*
 * Logging. Each line is formatted into a stack buffer and leaves in a single
 * write(2) or syslog(3) call, so lines from different threads never
 * interleave and the log path never allocates.
 *
 * gw_log_init() and gw_log_set_timestamps() are meant to be called before
 * worker threads start; the level may change at any time (e.g. on SIGHUP).
 */
#include "gw/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "gw/clock.h"

enum {
	IDENT_MAX = 32,
	/* Longest line without its newline; below PIPE_BUF so pipe writes stay atomic. */
	LINE_MAX_LEN = 1024,
};

static const char *const level_names[] = {
    [GW_LOG_ERR] = "error",
    [GW_LOG_WARN] = "warning",
    [GW_LOG_INFO] = "info",
    [GW_LOG_DEBUG] = "debug",
};

static const int syslog_prio[] = {
    [GW_LOG_ERR] = LOG_ERR,
    [GW_LOG_WARN] = LOG_WARNING,
    [GW_LOG_INFO] = LOG_INFO,
    [GW_LOG_DEBUG] = LOG_DEBUG,
};

/* openlog() keeps a pointer to ident, hence a static copy. */
static char log_ident[IDENT_MAX];
static enum gw_log_sink log_sink = GW_LOG_STDERR;
static bool syslog_open;
static atomic_bool log_timestamps;
static atomic_int log_max_level = GW_LOG_INFO;

struct line {
	char buf[LINE_MAX_LEN + 2]; /* room for the newline and the NUL */
	size_t len;
	bool truncated;
};

__attribute__((format(printf, 2, 0))) static void line_vadd(struct line *l, const char *fmt,
							    va_list ap)
{
	size_t room = LINE_MAX_LEN + 1 - l->len;
	int n;

	if (room <= 1)
		return;
	n = vsnprintf(l->buf + l->len, room, fmt, ap);
	if (n < 0)
		return;
	if ((size_t)n >= room) {
		l->len = LINE_MAX_LEN;
		l->truncated = true;
	} else {
		l->len += (size_t)n;
	}
}

__attribute__((format(printf, 2, 3))) static void line_add(struct line *l, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	line_vadd(l, fmt, ap);
	va_end(ap);
}

static void line_add_time(struct line *l)
{
	struct timespec ts;
	struct tm tm;
	char date[32];

	if (clock_gettime(CLOCK_REALTIME, &ts) || !gmtime_r(&ts.tv_sec, &tm))
		return;
	if (!strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%S", &tm))
		return;
	line_add(l, "%s.%06ldZ ", date, ts.tv_nsec / 1000);
}

static const char *ident(void)
{
	return log_ident[0] ? log_ident : program_invocation_short_name;
}

static void write_all(int fd, const char *p, size_t len)
{
	while (len) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return;
		p += n;
		len -= (size_t)n;
	}
}

static void emit(enum gw_log_level level, struct line *l)
{
	if (l->truncated)
		memcpy(l->buf + l->len - 3, "...", 3);
	if (log_sink == GW_LOG_SYSLOG) {
		l->buf[l->len] = '\0';
		syslog(syslog_prio[level], "%s", l->buf);
		return;
	}
	l->buf[l->len++] = '\n';
	write_all(STDERR_FILENO, l->buf, l->len);
}

__attribute__((format(printf, 3, 0))) static void vlog(enum gw_log_level level, uint64_t suppressed,
						       const char *fmt, va_list ap)
{
	int saved_errno = errno; /* for %m, and so logging never clobbers errno */
	struct line l;

	l.len = 0;
	l.truncated = false;
	if (log_sink == GW_LOG_STDERR) {
		if (atomic_load_explicit(&log_timestamps, memory_order_relaxed))
			line_add_time(&l);
		line_add(&l, "%s[%d]: %s: ", ident(), (int)getpid(), level_names[level]);
	}
	errno = saved_errno;
	line_vadd(&l, fmt, ap);
	/* Callers sometimes end messages with a newline; keep one only. */
	if (!l.truncated && l.len && l.buf[l.len - 1] == '\n')
		l.len--;
	if (suppressed)
		line_add(&l, " (%llu similar message%s suppressed)", (unsigned long long)suppressed,
			 suppressed == 1 ? "" : "s");
	emit(level, &l);
	errno = saved_errno;
}

void gw_log_init(const char *id, enum gw_log_level max_level, enum gw_log_sink sink)
{
	if (syslog_open) {
		closelog();
		syslog_open = false;
	}
	snprintf(log_ident, sizeof(log_ident), "%s", id ? id : "");
	log_sink = sink;
	/* Measurements (the failover lab) line daemons' logs up with captures. */
	if (sink == GW_LOG_STDERR && getenv("GW_LOG_TIMESTAMPS") &&
	    strcmp(getenv("GW_LOG_TIMESTAMPS"), "0"))
		gw_log_set_timestamps(true);
	gw_log_set_level(max_level);
	if (sink == GW_LOG_SYSLOG) {
		openlog(ident(), LOG_PID | LOG_NDELAY, LOG_DAEMON);
		syslog_open = true;
	}
}

void gw_log_set_level(enum gw_log_level max_level)
{
	atomic_store_explicit(&log_max_level, (int)max_level, memory_order_relaxed);
}

void gw_log_set_timestamps(bool on)
{
	atomic_store_explicit(&log_timestamps, on, memory_order_relaxed);
}

bool gw_log_enabled(enum gw_log_level level)
{
	int l = (int)level;

	return l >= GW_LOG_ERR && l <= GW_LOG_DEBUG &&
	       l <= atomic_load_explicit(&log_max_level, memory_order_relaxed);
}

int gw_log_level_parse(const char *s, enum gw_log_level *out)
{
	if (!s)
		return -EINVAL;
	for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
		if (!strcmp(s, level_names[i])) {
			*out = (enum gw_log_level)i;
			return 0;
		}
	}
	return -EINVAL;
}

void gw_log(enum gw_log_level level, const char *fmt, ...)
{
	va_list ap;

	if (!gw_log_enabled(level))
		return;
	va_start(ap, fmt);
	vlog(level, 0, fmt, ap);
	va_end(ap);
}

/*
 * A fixed window: the first `burst` events of each interval pass. A clock
 * that reads earlier than the window start (only fakes do) opens a new one.
 * interval_ns == 0 means no limit.
 */
bool gw_ratelimit_allow(struct gw_ratelimit *rl, uint64_t now_ns)
{
	if (!rl->interval_ns)
		return true;
	if (now_ns < rl->begin || now_ns - rl->begin >= rl->interval_ns) {
		rl->begin = now_ns;
		rl->used = 0;
	}
	if (rl->used < rl->burst) {
		rl->used++;
		rl->suppressed = 0;
		return true;
	}
	rl->suppressed++;
	return false;
}

void gw_log_rl(struct gw_ratelimit *rl, enum gw_log_level level, const char *fmt, ...)
{
	uint64_t suppressed;
	va_list ap;

	if (!gw_log_enabled(level))
		return;
	suppressed = rl->suppressed;
	if (!gw_ratelimit_allow(rl, gw_clock_mono_ns(gw_clock_system())))
		return;
	va_start(ap, fmt);
	vlog(level, suppressed, fmt, ap);
	va_end(ap);
}
