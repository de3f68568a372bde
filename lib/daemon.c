// SPDX-License-Identifier: MIT
/* Detaching a daemon once it is ready; gw/daemon.h is the contract. */
#include "gw/daemon.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int gw_daemon_fork(void)
{
	int p[2], status = EIO, err;
	ssize_t n;
	pid_t pid;

	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	pid = fork();
	if (pid < 0) {
		err = -errno;
		close(p[0]);
		close(p[1]);
		return err;
	}
	if (pid > 0) {
		close(p[1]);
		do
			n = read(p[0], &status, sizeof(status));
		while (n < 0 && errno == EINTR);
		if (n != (ssize_t)sizeof(status))
			status = EIO;
		_exit(status ? 1 : 0);
	}
	close(p[0]);
	if (setsid() < 0) {
		err = -errno;
		close(p[1]);
		return err;
	}
	return p[1];
}

/* Keeps the first error. */
static void first(int *err, int e)
{
	if (!*err)
		*err = e;
}

int gw_daemon_ready(int fd, int err, const char *ident, enum gw_log_level max_level)
{
	int status = -err, rc = 0, devnull;
	ssize_t n;

	if (fd < 0)
		return 0;
	do
		n = write(fd, &status, sizeof(status));
	while (n < 0 && errno == EINTR);
	if (n < 0)
		first(&rc, -errno);
	else if (n != (ssize_t)sizeof(status))
		first(&rc, -EIO);
	close(fd);
	if (err)
		return rc;
	gw_log_init(ident, max_level, GW_LOG_SYSLOG);
	devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (devnull < 0) {
		first(&rc, -errno);
	} else {
		for (int target = STDIN_FILENO; target <= STDERR_FILENO; target++)
			if (dup2(devnull, target) < 0)
				first(&rc, -errno);
		if (devnull > STDERR_FILENO)
			close(devnull);
	}
	if (chdir("/") < 0)
		first(&rc, -errno);
	return rc;
}

int gw_daemon_pidfile_write(const char *path)
{
	char tmp[4096], buf[32];
	int fd, len, err = 0;
	ssize_t n;

	if (!path || path[0] != '/')
		return -EINVAL;
	len = snprintf(tmp, sizeof(tmp), "%s.%ld.tmp", path, (long)getpid());
	if (len < 0 || (size_t)len >= sizeof(tmp))
		return -ENAMETOOLONG;
	len = snprintf(buf, sizeof(buf), "%ld\n", (long)getpid());
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd < 0)
		return -errno;
	do
		n = write(fd, buf, (size_t)len);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		err = -errno;
	else if (n != len)
		err = -EIO;
	if (close(fd) < 0 && !err)
		err = -errno;
	if (!err && rename(tmp, path) < 0)
		err = -errno;
	if (err)
		unlink(tmp);
	return err;
}

void gw_daemon_pidfile_remove(const char *path)
{
	char buf[32];
	ssize_t n;
	int fd;

	if (!path || path[0] != '/')
		return;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return;
	buf[n] = 0;
	if (strtol(buf, NULL, 10) == (long)getpid())
		unlink(path);
}
