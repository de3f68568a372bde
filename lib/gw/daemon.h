/* SPDX-License-Identifier: MIT */
/*
 * Detaching a daemon once it is ready, for gwd and syncd:
 *
 *	notify = foreground ? -1 : gw_daemon_fork();	// before any thread
 *	if (notify < 0 && !foreground) -> report, exit 1
 *	err = start(...);
 *	gw_daemon_ready(notify, err, "gwd", level);	// no-op when notify < 0
 *
 * so whoever started the daemon (a shell, systemd Type=forking, a test)
 * gets its exit status only once start-up is over: 0 when it succeeded,
 * 1 when it failed, with the start-up errors on the caller's stderr.
 */
#ifndef GW_DAEMON_H
#define GW_DAEMON_H

#include "gw/log.h"

/*
 * Forks. Call it before any thread exists (fork copies only the caller).
 *
 * The original process does not return: it waits on a close-on-exec pipe
 * for the child's start-up result and leaves with _exit(0) if the child
 * reported success, _exit(1) if it reported an error or ended (or died)
 * without reporting. _exit, not exit: atexit handlers and stdio buffers
 * belong to the child.
 *
 * The child becomes a session leader (setsid) and gets the pipe's write end
 * back (>= 0, close-on-exec), to pass to gw_daemon_ready(). Its stdin,
 * stdout and stderr and its working directory are untouched until then, so
 * start-up errors still reach the terminal.
 *
 * Errors: -errno of pipe2() or fork() in the original process (nothing
 * forked, no fd left open); -errno of setsid() in the child, with the write
 * end already closed, so the original process exits 1; the caller then
 * ends the child.
 */
int gw_daemon_fork(void);

/*
 * Reports start-up to the waiting original process: err is 0 or a negative
 * errno. Writes the result on fd and closes it. Nothing when fd < 0 (the
 * daemon runs in the foreground): returns 0.
 *
 * On success (err == 0) it then detaches: logging moves to syslog under
 * ident at max_level (gw_log_init), stdin, stdout and stderr become
 * /dev/null, and the working directory becomes /. After an error it leaves
 * the fds and logging alone, for the caller to report and exit.
 *
 * Returns 0, or the first -errno among writing the result, opening or
 * duplicating /dev/null and chdir("/"); every step is tried regardless, so
 * the daemon is detached as far as it can be and may go on (the original
 * process exits 1 only if the write failed).
 */
int gw_daemon_ready(int fd, int err, const char *ident, enum gw_log_level max_level);

/*
 * Pid files (`--pid-file`), for service managers without systemd: the
 * daemon writes it after start-up succeeded and before gw_daemon_ready(),
 * so a starter whose command returned 0 finds the file, and it holds the
 * pid of the process that serves (the child, not the original process).
 *
 * gw_daemon_pidfile_write: writes getpid() and a newline to a temporary
 * file next to path (mode 0644) and renames it over path, so a reader never
 * sees a partial number. path must be absolute. Returns 0 or -errno
 * (-EINVAL for a relative or empty path); on error no temporary file is
 * left and path is untouched.
 *
 * gw_daemon_pidfile_remove: at a clean exit, unlinks path only if it still
 * holds this process's pid (a successor may have written its own).
 */
int gw_daemon_pidfile_write(const char *path);
void gw_daemon_pidfile_remove(const char *path);

#endif
