// SPDX-License-Identifier: MIT
/* The syncd unit tests' UAPI daemon (support.h). */
#include "support.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "gw/crypto.h"

pid_t wgd_pid;
char wgd_if[16];

void wgd_sock_path(char *out, size_t len, const char *ifname)
{
	snprintf(out, len, "/var/run/wireguard/%s.sock", ifname);
}

void wgd_setup(const char *prefix)
{
	if (unshare(CLONE_NEWNET)) {
		if (errno == EPERM)
			cr_skip_test("unshare(CLONE_NEWNET) needs root; skipped");
		cr_assert_fail("unshare: %s", strerror(errno));
	}
	cr_assert_eq(gw_crypto_init(), 0);
	snprintf(wgd_if, sizeof(wgd_if), "%s%d", prefix, (int)getpid());
	wgd_pid = 0;
}

void wgd_start(const char *bin)
{
	const char *daemon = bin			 ? bin
			     : getenv("GW_APPLY_DAEMON") ? getenv("GW_APPLY_DAEMON")
							 : "wireguard-go";
	char path[108];
	struct stat sb;

	wgd_sock_path(path, sizeof(path), wgd_if);
	wgd_pid = fork();
	cr_assert(wgd_pid >= 0);
	if (wgd_pid == 0) {
		int null = open("/dev/null", O_RDWR);

		/* A crashed test (no .fini) must not leave the daemon behind. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		dup2(null, 1);
		dup2(null, 2);
		setenv("LOG_LEVEL", "error", 1);
		execlp(daemon, daemon, "-f", wgd_if, (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 100; i++) {
		if (!stat(path, &sb) && S_ISSOCK(sb.st_mode))
			return;
		cr_assert_eq(waitpid(wgd_pid, NULL, WNOHANG), 0, "%s exited", daemon);
		usleep(50000);
	}
	cr_assert_fail("no UAPI socket %s after 5 s", path);
}

static void gone(void)
{
	char path[108];

	wgd_pid = 0;
	wgd_sock_path(path, sizeof(path), wgd_if);
	unlink(path);
}

void wgd_kill(void)
{
	if (wgd_pid <= 0)
		return;
	kill(wgd_pid, SIGCONT);
	kill(wgd_pid, SIGKILL);
	waitpid(wgd_pid, NULL, 0);
	gone();
}

void wgd_term(void)
{
	if (wgd_pid <= 0)
		return;
	kill(wgd_pid, SIGCONT);
	kill(wgd_pid, SIGTERM);
	for (int i = 0; i < 60 && waitpid(wgd_pid, NULL, WNOHANG) == 0; i++)
		usleep(50000);
	if (waitpid(wgd_pid, NULL, WNOHANG) == 0) {
		kill(wgd_pid, SIGKILL);
		waitpid(wgd_pid, NULL, 0);
	}
	gone();
}

/* SIGSTOP takes effect asynchronously (every thread of the daemon must stop). */
void wgd_pause(void)
{
	char path[64], line[256];

	cr_assert_eq(kill(wgd_pid, SIGSTOP), 0);
	snprintf(path, sizeof(path), "/proc/%d/status", (int)wgd_pid);
	for (int i = 0; i < 200; i++) {
		FILE *f = fopen(path, "r");
		bool stopped = false;

		cr_assert(f);
		while (fgets(line, sizeof(line), f))
			if (!strncmp(line, "State:", 6))
				stopped = strstr(line, "T (stopped)") != NULL;
		fclose(f);
		if (stopped)
			return;
		usleep(5000);
	}
	cr_assert_fail("the daemon did not stop within 1 s");
}

void wgd_resume(void)
{
	cr_assert_eq(kill(wgd_pid, SIGCONT), 0);
}

void wgd_wg_set(const char *args)
{
	char cmd[512];

	snprintf(cmd, sizeof(cmd), "wg set %s %s", wgd_if, args);
	cr_assert_eq(system(cmd), 0, "%s", cmd);
}

int wgd_strcmp_p(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

void wgd_sort_list(char *s)
{
	char *parts[64], *save = NULL, *buf = strdup(s);
	size_t n = 0;

	cr_assert(buf);
	for (char *p = strtok_r(buf, ",", &save); p && n < 64; p = strtok_r(NULL, ",", &save))
		parts[n++] = p;
	qsort(parts, n, sizeof(*parts), wgd_strcmp_p);
	s[0] = '\0';
	for (size_t i = 0; i < n; i++)
		strcat(strcat(s, i ? "," : ""), parts[i]);
	free(buf);
}
