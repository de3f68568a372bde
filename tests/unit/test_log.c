// SPDX-License-Identifier: MIT
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gw/log.h"

/* Redirects stderr into a pipe until capture_end(). */
struct capture {
	int rfd;
	int saved;
};

static void capture_begin(struct capture *c)
{
	int p[2];

	cr_assert_eq(pipe(p), 0);
	c->saved = dup(STDERR_FILENO);
	cr_assert_geq(c->saved, 0);
	cr_assert_geq(dup2(p[1], STDERR_FILENO), 0);
	close(p[1]);
	c->rfd = p[0];
}

/* Restores stderr and returns what was written, NUL-terminated. */
static size_t capture_end(struct capture *c, char *buf, size_t cap)
{
	size_t len = 0;
	ssize_t n;

	dup2(c->saved, STDERR_FILENO);
	close(c->saved);
	while (len + 1 < cap && (n = read(c->rfd, buf + len, cap - 1 - len)) > 0)
		len += (size_t)n;
	buf[len] = '\0';
	close(c->rfd);
	return len;
}

Test(log_level, parse)
{
	static const struct {
		const char *s;
		int ret;
		enum gw_log_level level;
	} cases[] = {
	    {"error", 0, GW_LOG_ERR}, {"warning", 0, GW_LOG_WARN},
	    {"info", 0, GW_LOG_INFO}, {"debug", 0, GW_LOG_DEBUG},
	    {"", -EINVAL, 0},	      {"warn", -EINVAL, 0},
	    {"Debug", -EINVAL, 0},    {"debug ", -EINVAL, 0},
	    {"infox", -EINVAL, 0},    {"inf", -EINVAL, 0},
	    {NULL, -EINVAL, 0},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		enum gw_log_level out = (enum gw_log_level)99;

		cr_assert_eq(gw_log_level_parse(cases[i].s, &out), cases[i].ret, "case %zu", i);
		if (!cases[i].ret)
			cr_assert_eq(out, cases[i].level, "case %zu", i);
		else
			cr_assert_eq((int)out, 99, "case %zu: output touched on error", i);
	}
}

Test(log_level, enabled)
{
	gw_log_init("t", GW_LOG_WARN, GW_LOG_STDERR);
	cr_assert(gw_log_enabled(GW_LOG_ERR));
	cr_assert(gw_log_enabled(GW_LOG_WARN));
	cr_assert_not(gw_log_enabled(GW_LOG_INFO));
	cr_assert_not(gw_log_enabled(GW_LOG_DEBUG));
	gw_log_set_level(GW_LOG_DEBUG);
	cr_assert(gw_log_enabled(GW_LOG_DEBUG));
	cr_assert_not(gw_log_enabled((enum gw_log_level)7));
	gw_log_set_level(GW_LOG_ERR);
	cr_assert_not(gw_log_enabled(GW_LOG_WARN));
}

Test(log_stderr, format_and_filter)
{
	struct capture c;
	char buf[4096], want[256];

	gw_log_init("gwtest", GW_LOG_INFO, GW_LOG_STDERR);
	capture_begin(&c);
	gw_info("hello %d", 42);
	gw_dbg("hidden %s", "debug");
	gw_log(GW_LOG_DEBUG, "hidden too");
	gw_warn("careful\n");
	gw_err("bad %s", "thing");
	capture_end(&c, buf, sizeof(buf));

	snprintf(want, sizeof(want),
		 "gwtest[%d]: info: hello 42\n"
		 "gwtest[%d]: warning: careful\n"
		 "gwtest[%d]: error: bad thing\n",
		 (int)getpid(), (int)getpid(), (int)getpid());
	cr_assert_str_eq(buf, want);
}

Test(log_stderr, debug_when_enabled)
{
	struct capture c;
	char buf[1024], want[128];

	gw_log_init("gwtest", GW_LOG_DEBUG, GW_LOG_STDERR);
	capture_begin(&c);
	gw_dbg("now %s", "visible");
	capture_end(&c, buf, sizeof(buf));
	snprintf(want, sizeof(want), "gwtest[%d]: debug: now visible\n", (int)getpid());
	cr_assert_str_eq(buf, want);
}

Test(log_stderr, preserves_errno_and_formats_m)
{
	struct capture c;
	char buf[1024];

	gw_log_init("gwtest", GW_LOG_INFO, GW_LOG_STDERR);
	capture_begin(&c);
	errno = ENOENT;
	gw_err("open: %m");
	cr_assert_eq(errno, ENOENT);
	capture_end(&c, buf, sizeof(buf));
	cr_assert(strstr(buf, ": error: open: No such file or directory\n"), "got '%s'", buf);
}

Test(log_stderr, long_line_truncated_to_one_line)
{
	struct capture c;
	static char msg[5000];
	char buf[8192];
	size_t len;

	memset(msg, 'x', sizeof(msg) - 1);
	gw_log_init("gwtest", GW_LOG_INFO, GW_LOG_STDERR);
	capture_begin(&c);
	gw_info("%s", msg);
	len = capture_end(&c, buf, sizeof(buf));
	cr_assert_eq(len, 1025);
	cr_assert_eq(buf[len - 1], '\n');
	cr_assert_eq(memchr(buf, '\n', len), buf + len - 1);
	cr_assert_eq(memcmp(buf + len - 4, "...", 3), 0);
}

Test(log_stderr, timestamps)
{
	struct capture c;
	char buf[1024], rest[256];
	int y, mo, d, h, mi, s, us;

	gw_log_init("gwtest", GW_LOG_INFO, GW_LOG_STDERR);
	gw_log_set_timestamps(true);
	capture_begin(&c);
	gw_info("stamped");
	capture_end(&c, buf, sizeof(buf));
	gw_log_set_timestamps(false);
	cr_assert_eq(sscanf(buf, "%4d-%2d-%2dT%2d:%2d:%2d.%6dZ %255[^\n]", &y, &mo, &d, &h, &mi, &s,
			    &us, rest),
		     8, "got '%s'", buf);
	cr_assert_geq(y, 2020);
	cr_assert(strstr(rest, "gwtest[") == rest);
	cr_assert(strstr(rest, "]: info: stamped"));
}

Test(log_syslog, nothing_on_stderr)
{
	struct capture c;
	char buf[256];

	capture_begin(&c);
	gw_log_init("gwtest", GW_LOG_DEBUG, GW_LOG_SYSLOG);
	gw_info("to syslog");
	gw_log_init("gwtest", GW_LOG_INFO, GW_LOG_STDERR);
	cr_assert_eq(capture_end(&c, buf, sizeof(buf)), 0, "got '%s'", buf);
}

enum { THREADS = 4, LINES = 300 };

static void *log_thread(void *arg)
{
	int id = (int)(intptr_t)arg;
	char pad[601];

	memset(pad, 'a' + id, sizeof(pad) - 1);
	pad[sizeof(pad) - 1] = '\0';
	for (int i = 0; i < LINES; i++)
		gw_info("t%d l%d %s end", id, i, pad);
	return NULL;
}

/* One write(2) per line: lines from several threads come out whole. */
Test(log_stderr, threads_do_not_interleave)
{
	char path[] = "/tmp/gw_test_log_XXXXXX";
	int fd = mkstemp(path), saved;
	pthread_t th[THREADS];
	int count[THREADS] = {0};
	char line[2048];
	FILE *f;

	cr_assert_geq(fd, 0);
	unlink(path);
	cr_assert_eq(fcntl(fd, F_SETFL, O_APPEND), 0);
	gw_log_init("gwtest", GW_LOG_INFO, GW_LOG_STDERR);
	saved = dup(STDERR_FILENO);
	dup2(fd, STDERR_FILENO);
	for (int i = 0; i < THREADS; i++)
		cr_assert_eq(pthread_create(&th[i], NULL, log_thread, (void *)(intptr_t)i), 0);
	for (int i = 0; i < THREADS; i++)
		pthread_join(th[i], NULL);
	dup2(saved, STDERR_FILENO);
	close(saved);

	f = fdopen(fd, "r");
	cr_assert_not_null(f);
	rewind(f);
	while (fgets(line, sizeof(line), f)) {
		int id, n, pid, end = 0;
		char pad[601];

		cr_assert_eq(sscanf(line, "gwtest[%d]: info: t%d l%d %600s end\n%n", &pid, &id, &n,
				    pad, &end),
			     4, "mangled line '%s'", line);
		cr_assert_eq(strlen(line), (size_t)end, "mangled line '%s'", line);
		cr_assert(id >= 0 && id < THREADS);
		cr_assert_eq(n, count[id], "thread %d out of order", id);
		cr_assert_eq(strspn(pad, (char[]){(char)('a' + id), 0}), 600);
		count[id]++;
	}
	fclose(f);
	for (int i = 0; i < THREADS; i++)
		cr_assert_eq(count[i], LINES);
}

struct rl_step {
	uint64_t now;
	bool allow;
	uint64_t suppressed; /* after the call */
};

static void run_rl_table(struct gw_ratelimit *rl, const struct rl_step *steps, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		cr_assert_eq(gw_ratelimit_allow(rl, steps[i].now), steps[i].allow, "step %zu", i);
		cr_assert_eq(rl->suppressed, steps[i].suppressed, "step %zu", i);
	}
}

Test(ratelimit, burst_and_refill)
{
	/* 3 events per 100 ns, fixed windows starting at the first event after expiry. */
	static const struct rl_step steps[] = {
	    {1000, true, 0},  {1001, true, 0},	{1002, true, 0},  {1003, false, 1},
	    {1050, false, 2}, {1099, false, 3}, {1100, true, 0},  {1100, true, 0},
	    {1150, true, 0},  {1199, false, 1}, {1200, true, 0},  {5000, true, 0},
	    {5001, true, 0},  {5002, true, 0},	{5003, false, 1}, {5004, false, 2},
	};
	struct gw_ratelimit rl = GW_RATELIMIT_INIT(100, 3);

	run_rl_table(&rl, steps, sizeof(steps) / sizeof(steps[0]));
}

Test(ratelimit, zero_time_start_and_backwards_clock)
{
	static const struct rl_step steps[] = {
	    {0, true, 0},   {10, false, 1}, {99, false, 2},
	    {100, true, 0}, {50, true, 0},  {60, false, 1},
	};
	struct gw_ratelimit rl = GW_RATELIMIT_INIT(100, 1);

	run_rl_table(&rl, steps, sizeof(steps) / sizeof(steps[0]));
}

Test(ratelimit, degenerate)
{
	struct gw_ratelimit none = GW_RATELIMIT_INIT(0, 0);
	struct gw_ratelimit never = GW_RATELIMIT_INIT(100, 0);

	for (uint64_t t = 0; t < 1000; t += 7) {
		cr_assert(gw_ratelimit_allow(&none, t));
		cr_assert_not(gw_ratelimit_allow(&never, t));
	}
	cr_assert_eq(none.suppressed, 0);
	cr_assert_eq(never.suppressed, 143);
}

Test(ratelimit, log_rl_reports_suppressed)
{
	struct gw_ratelimit rl = GW_RATELIMIT_INIT(3600 * 1000000000ULL, 2);
	struct capture c;
	char buf[4096], want[512];
	int pid = (int)getpid();

	gw_log_init("gwtest", GW_LOG_INFO, GW_LOG_STDERR);
	capture_begin(&c);
	for (int i = 0; i < 5; i++)
		gw_log_rl(&rl, GW_LOG_WARN, "bad packet %d", i);
	/* Disabled levels neither print nor spend the budget. */
	gw_log_rl(&rl, GW_LOG_DEBUG, "debug");
	cr_assert_eq(rl.suppressed, 3);
	/* An hour later (the window is moved back rather than the system clock forward). */
	rl.begin -= rl.interval_ns;
	gw_log_rl(&rl, GW_LOG_WARN, "bad packet %d", 5);
	gw_log_rl(&rl, GW_LOG_WARN, "bad packet %d", 6);
	gw_log_rl(&rl, GW_LOG_WARN, "bad packet %d", 7);
	rl.begin -= rl.interval_ns;
	gw_log_rl(&rl, GW_LOG_WARN, "bad packet %d\n", 8);
	capture_end(&c, buf, sizeof(buf));

	snprintf(want, sizeof(want),
		 "gwtest[%d]: warning: bad packet 0\n"
		 "gwtest[%d]: warning: bad packet 1\n"
		 "gwtest[%d]: warning: bad packet 5 (3 similar messages suppressed)\n"
		 "gwtest[%d]: warning: bad packet 6\n"
		 "gwtest[%d]: warning: bad packet 8 (1 similar message suppressed)\n",
		 pid, pid, pid, pid, pid);
	cr_assert_str_eq(buf, want);
}
