// SPDX-License-Identifier: MIT
/*
 * gwd: a userspace WireGuard daemon driven by wg(8), invoked like
 * wireguard-go (wireguard.com/xplatform).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <net/if.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "device.h"
#include "gw/crypto.h"
#include "gw/log.h"
#include "gw/loop.h"
#include "uapi.h"

#define SOCKET_DIR "/var/run/wireguard"

static const char usage_text[] =
    "NAME\n"
    "    gwd - userspace WireGuard daemon\n"
    "\n"
    "SYNOPSIS\n"
    "    gwd [-f|--foreground] [-v|--verbose] INTERFACE\n"
    "    gwd --help | --version\n"
    "\n"
    "DESCRIPTION\n"
    "    Creates the TUN device INTERFACE (MTU 1420, left down) and the\n"
    "    configuration socket " SOCKET_DIR "/INTERFACE.sock, then runs WireGuard\n"
    "    on it. Configure it with wg(8) (wg set, wg setconf, wg show) exactly as a\n"
    "    kernel interface; wg-quick(8) uses it with\n"
    "    WG_QUICK_USERSPACE_IMPLEMENTATION=gwd.\n"
    "\n"
    "    Without -f, gwd detaches once the interface and the socket are ready\n"
    "    and exits 0, or exits 1 with the reason if they could not be made.\n"
    "    SIGTERM or SIGINT, or deleting the interface (ip link del), stops it;\n"
    "    it then removes the socket and the interface.\n"
    "\n"
    "    Besides get=1 and set=1, the socket answers stats=1 with counters\n"
    "    (see docs/gwd.md).\n"
    "\n"
    "OPTIONS\n"
    "    -f, --foreground  stay in the foreground and log to stderr\n"
    "                      (otherwise: syslog)\n"
    "    -v, --verbose     log at debug level\n"
    "    -h, --help        print this text\n"
    "    -V, --version     print the version\n"
    "\n"
    "ENVIRONMENT\n"
    "    GWD_LOG_LEVEL              error, warning, info (default) or debug\n"
    "    GWD_UNDER_LOAD_THRESHOLD   handshake messages per second above which\n"
    "                               gwd demands cookies (default 1000; 0: always)\n";

struct options {
	bool foreground;
	bool verbose;
	const char *ifname;
};

static int parse_args(int argc, char **argv, struct options *o)
{
	static const struct option longopts[] = {
	    {"foreground", no_argument, NULL, 'f'},
	    {"verbose", no_argument, NULL, 'v'},
	    {"help", no_argument, NULL, 'h'},
	    {"version", no_argument, NULL, 'V'},
	    {NULL, 0, NULL, 0},
	};
	int c;

	while ((c = getopt_long(argc, argv, "fvhV", longopts, NULL)) != -1) {
		switch (c) {
		case 'f':
			o->foreground = true;
			break;
		case 'v':
			o->verbose = true;
			break;
		case 'h':
			fputs(usage_text, stdout);
			exit(0);
		case 'V':
			printf("gwd %s\n", GW_VERSION);
			exit(0);
		default:
			fprintf(stderr, "Usage: gwd [-f|--foreground] [-v] INTERFACE\n");
			return -EINVAL;
		}
	}
	if (optind != argc - 1) {
		fprintf(stderr, "Usage: gwd [-f|--foreground] [-v] INTERFACE\n");
		return -EINVAL;
	}
	o->ifname = argv[optind];
	if (!o->ifname[0] || strlen(o->ifname) >= IFNAMSIZ || strchr(o->ifname, '/')) {
		fprintf(stderr, "gwd: invalid interface name '%s'\n", o->ifname);
		return -EINVAL;
	}
	return 0;
}

static enum gw_log_level log_level(const struct options *o)
{
	const char *s = getenv("GWD_LOG_LEVEL");
	enum gw_log_level level = GW_LOG_INFO;

	if (o->verbose)
		return GW_LOG_DEBUG;
	if (s && gw_log_level_parse(s, &level) < 0)
		fprintf(stderr, "gwd: ignoring GWD_LOG_LEVEL=%s\n", s);
	return level;
}

static uint32_t under_load_threshold(void)
{
	const char *s = getenv("GWD_UNDER_LOAD_THRESHOLD");
	unsigned long v;
	char *end;

	if (!s || !*s)
		return GWD_UNDER_LOAD_DEFAULT;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end || v > UINT32_MAX) {
		gw_warn("gwd: ignoring GWD_UNDER_LOAD_THRESHOLD=%s", s);
		return GWD_UNDER_LOAD_DEFAULT;
	}
	return (uint32_t)v;
}

/*
 * Forks; the parent waits for the child's word through a pipe and exits with
 * it (0 once the interface and socket are ready). Returns the write end in
 * the child.
 */
static int daemonize(void)
{
	int p[2], status = EIO;
	pid_t pid;

	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid > 0) {
		close(p[1]);
		if (read(p[0], &status, sizeof(status)) != (ssize_t)sizeof(status))
			status = EIO;
		_exit(status ? 1 : 0);
	}
	close(p[0]);
	if (setsid() < 0)
		return -errno;
	return p[1];
}

/* Tells the waiting parent how start-up went, then detaches from the terminal. */
static void notify_parent(int fd, int err)
{
	int status = -err, devnull;

	if (fd < 0)
		return;
	if (write(fd, &status, sizeof(status)) < 0)
		gw_warn("gwd: cannot notify the parent: %s", strerror(errno));
	close(fd);
	if (err)
		return;
	gw_log_init("gwd", GW_LOG_INFO, GW_LOG_SYSLOG);
	devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (devnull >= 0) {
		dup2(devnull, STDIN_FILENO);
		dup2(devnull, STDOUT_FILENO);
		dup2(devnull, STDERR_FILENO);
		if (devnull > STDERR_FILENO)
			close(devnull);
	}
	if (chdir("/") < 0)
		gw_warn("gwd: chdir /: %s", strerror(errno));
}

static void on_signal(struct gw_loop *loop, int fd, uint32_t signo, void *arg)
{
	(void)fd;
	(void)arg;
	gw_info("gwd: received signal %u, shutting down", signo);
	gw_loop_stop(loop);
}

static int socket_path(char *buf, size_t len, const char *ifname)
{
	struct stat st;

	if (mkdir(SOCKET_DIR, 0755) == 0) {
		if (chmod(SOCKET_DIR, 0755) < 0) /* whatever the umask */
			return -errno;
	} else if (errno != EEXIST) {
		return -errno;
	}
	if (stat(SOCKET_DIR, &st) < 0)
		return -errno;
	if (!S_ISDIR(st.st_mode))
		return -ENOTDIR;
	if ((size_t)snprintf(buf, len, SOCKET_DIR "/%s.sock", ifname) >= len)
		return -ENAMETOOLONG;
	return 0;
}

struct daemon {
	struct gw_loop *loop;
	struct gwd_device *dev;
	struct gwd_uapi_server *srv;
	char path[PATH_MAX];
};

static int start(struct daemon *d, const char *ifname)
{
	struct gwd_device_config cfg = {.under_load_threshold = under_load_threshold()};
	int err;

	err = socket_path(d->path, sizeof(d->path), ifname);
	if (err)
		return err;
	err = gwd_uapi_socket_alive(d->path);
	if (err == 1) {
		gw_err("gwd: %s already answers on %s", ifname, d->path);
		return -EADDRINUSE;
	}
	err = gw_loop_new(&d->loop, NULL);
	if (!err)
		err = gw_loop_add_signal(d->loop, SIGTERM, on_signal, NULL);
	if (!err)
		err = gw_loop_add_signal(d->loop, SIGINT, on_signal, NULL);
	if (err)
		return err;
	cfg.loop = d->loop;
	err = gwd_device_new(&d->dev, &cfg);
	if (err)
		return err;
	err = gwd_device_attach_system(d->dev, ifname);
	if (err) {
		gw_err("gwd: cannot create interface %s: %s", ifname, strerror(-err));
		return err;
	}
	err = gwd_uapi_server_open(&d->srv, d->dev, d->path);
	if (err)
		gw_err("gwd: cannot listen on %s: %s", d->path, strerror(-err));
	return err;
}

static void stop(struct daemon *d)
{
	gwd_uapi_server_close(d->srv);
	gwd_device_free(d->dev);
	if (d->loop)
		gw_loop_free(d->loop);
}

int main(int argc, char **argv)
{
	struct options o = {0};
	struct daemon d = {0};
	int notify = -1, err;

	if (parse_args(argc, argv, &o) < 0)
		return 1;
	gw_log_init("gwd", log_level(&o), GW_LOG_STDERR);
	signal(SIGPIPE, SIG_IGN);
	if (!o.foreground) {
		notify = daemonize();
		if (notify < 0) {
			fprintf(stderr, "gwd: cannot daemonize: %s\n", strerror(-notify));
			return 1;
		}
	}
	err = gw_crypto_init();
	if (!err)
		err = start(&d, o.ifname);
	if (err) {
		fprintf(stderr, "gwd: failed to start %s: %s\n", o.ifname, strerror(-err));
		notify_parent(notify, err);
		stop(&d);
		return 1;
	}
	notify_parent(notify, 0);
	if (!o.foreground)
		gw_log_set_level(log_level(&o));
	gw_info("gwd %s: interface %s up, UDP port %u", GW_VERSION, o.ifname, d.dev->listen_port);
	err = gw_loop_run(d.loop);
	if (err)
		gw_err("gwd: event loop failed: %s", strerror(-err));
	stop(&d);
	gw_info("gwd: %s stopped", o.ifname);
	return err ? 1 : 0;
}
