// SPDX-License-Identifier: MIT
/*
 * lib/daemon.c: the exit status the original process leaves with, and what
 * the daemon child looks like once detached. Each test forks a process that
 * plays the daemon's main(); every process here ends with _exit.
 */
#include "gw/daemon.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

enum report { REPORT_OK, REPORT_ERR, REPORT_NOTHING };

/* What the daemon child found after gw_daemon_ready(), one byte each. */
struct seen {
	char fork_ok, ready_rc_ok, cwd_root, stdio_null, new_session;
};

static bool is_devnull(int fd)
{
	struct stat a, b;

	return fstat(fd, &a) == 0 && stat("/dev/null", &b) == 0 && S_ISCHR(a.st_mode) &&
	       a.st_rdev == b.st_rdev;
}

/* The daemon's main(): never returns. */
static void play_daemon(enum report how, int out)
{
	struct seen s = {0};
	char cwd[8];
	int fd = gw_daemon_fork();

	s.fork_ok = fd >= 0;
	s.new_session = getsid(0) == getpid();
	if (how == REPORT_OK)
		s.ready_rc_ok = gw_daemon_ready(fd, 0, "test_daemon", GW_LOG_ERR) == 0;
	else if (how == REPORT_ERR)
		s.ready_rc_ok = gw_daemon_ready(fd, -EADDRINUSE, "test_daemon", GW_LOG_ERR) == 0;
	else
		s.ready_rc_ok = 1;
	s.cwd_root = getcwd(cwd, sizeof(cwd)) && strcmp(cwd, "/") == 0;
	s.stdio_null =
	    is_devnull(STDIN_FILENO) && is_devnull(STDOUT_FILENO) && is_devnull(STDERR_FILENO);
	if (write(out, &s, sizeof(s)) != (ssize_t)sizeof(s))
		_exit(2);
	_exit(0);
}

/* Runs play_daemon in a new process; returns the original process's exit status. */
static int run(enum report how, struct seen *s)
{
	int res[2], status;
	struct pollfd pfd;
	pid_t pid;

	cr_assert_eq(pipe(res), 0);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		close(res[0]);
		play_daemon(how, res[1]);
	}
	close(res[1]);
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFEXITED(status), "the original process did not exit: %#x", status);
	pfd = (struct pollfd){.fd = res[0], .events = POLLIN};
	cr_assert_eq(poll(&pfd, 1, 5000), 1, "the daemon child said nothing in 5 s");
	cr_assert_eq(read(res[0], s, sizeof(*s)), (ssize_t)sizeof(*s));
	close(res[0]);
	return WEXITSTATUS(status);
}

Test(daemon, success_exits_0_and_detaches)
{
	struct seen s;

	cr_assert_eq(run(REPORT_OK, &s), 0);
	cr_assert(s.fork_ok);
	cr_assert(s.new_session);
	cr_assert(s.ready_rc_ok);
	cr_assert(s.cwd_root);
	cr_assert(s.stdio_null);
}

Test(daemon, reported_error_exits_1_and_keeps_the_terminal)
{
	struct seen s;

	cr_assert_eq(run(REPORT_ERR, &s), 1);
	cr_assert(s.fork_ok);
	cr_assert(s.ready_rc_ok);
	cr_assert_not(s.cwd_root && s.stdio_null, "detached after an error");
}

Test(daemon, child_gone_without_a_word_exits_1)
{
	struct seen s;

	cr_assert_eq(run(REPORT_NOTHING, &s), 1);
	cr_assert(s.fork_ok);
}

Test(daemon, foreground_fd_is_a_no_op)
{
	char before[256], after[256];

	cr_assert_not_null(getcwd(before, sizeof(before)));
	cr_assert_eq(gw_daemon_ready(-1, 0, "test_daemon", GW_LOG_ERR), 0);
	cr_assert_not_null(getcwd(after, sizeof(after)));
	cr_assert_str_eq(before, after);
}

/* The pid file holds this process's pid; removal spares a successor's file. */
Test(daemon, pidfile_written_atomically_and_removed_only_if_ours)
{
	char dir[] = "/tmp/test_daemon.XXXXXX", path[64], buf[32];
	struct stat st;
	ssize_t n;
	int fd;

	cr_assert_not_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/d.pid", dir);
	cr_assert_eq(gw_daemon_pidfile_write(path), 0);
	fd = open(path, O_RDONLY);
	cr_assert_geq(fd, 0);
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	cr_assert_gt(n, 0);
	buf[n] = 0;
	cr_assert_eq(strtol(buf, NULL, 10), (long)getpid());
	cr_assert_eq(buf[n - 1], '\n');
	cr_assert_eq(stat(path, &st), 0);
	cr_assert_eq(st.st_mode & 0777, 0644);
	/* Written again (a restart): replaced, not appended. */
	cr_assert_eq(gw_daemon_pidfile_write(path), 0);
	cr_assert_eq(stat(path, &st), 0);
	cr_assert_eq(st.st_size, n);
	/* Another process's pid: left alone. */
	fd = open(path, O_WRONLY | O_TRUNC);
	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, "1\n", 2), 2);
	close(fd);
	gw_daemon_pidfile_remove(path);
	cr_assert_eq(stat(path, &st), 0, "removed a successor's pid file");
	/* Ours: removed. */
	cr_assert_eq(gw_daemon_pidfile_write(path), 0);
	gw_daemon_pidfile_remove(path);
	cr_assert_eq(stat(path, &st), -1);
	cr_assert_eq(errno, ENOENT);
	cr_assert_eq(rmdir(dir), 0, "a temporary file was left behind");
}

Test(daemon, pidfile_bad_paths_are_refused_and_leave_nothing)
{
	char dir[] = "/tmp/test_daemon.XXXXXX", path[64];

	cr_assert_eq(gw_daemon_pidfile_write("relative.pid"), -EINVAL);
	cr_assert_eq(gw_daemon_pidfile_write(""), -EINVAL);
	cr_assert_eq(gw_daemon_pidfile_write(NULL), -EINVAL);
	cr_assert_not_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/missing/d.pid", dir);
	cr_assert_eq(gw_daemon_pidfile_write(path), -ENOENT);
	gw_daemon_pidfile_remove(path);
	gw_daemon_pidfile_remove(NULL);
	cr_assert_eq(rmdir(dir), 0);
}
