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
#include <time.h>
#include <unistd.h>

#include "cluster.h"
#include "crypt.h"
#include "device.h"
#include "gw/addr.h"
#include "gw/crypto.h"
#include "gw/daemon.h"
#include "gw/log.h"
#include "gw/loop.h"
#include "metrics.h"
#include "syncsock.h"
#include "uapi.h"

#define SOCKET_DIR	   "/var/run/wireguard"
#define STATE_DIR	   "/var/lib/gwcluster"
#define SESSION_SOCKET_DIR "/var/run/gwcluster"

static const char usage_text[] =
    "NAME\n"
    "    gwd - userspace WireGuard daemon\n"
    "\n"
    "SYNOPSIS\n"
    "    gwd [-f|--foreground] [-v|--verbose] [--no-offload] [--pid-file FILE]\n"
    "        [--metrics ADDR [--metrics-per-peer]] INTERFACE\n"
    "    gwd [-f] [-v] [--metrics ADDR] --node-id N [--state-dir DIR]\n"
    "        [--cluster-secret-file FILE]\n"
    "        [--session-socket PATH] [--anycast] [--takeover-rekey-rate N]\n"
    "        [--owned-routes TABLE] INTERFACE\n"
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
    "    --metrics ADDR    serve Prometheus metrics at http://ADDR/metrics; ADDR is\n"
    "                      a numeric IP:PORT or [IPv6]:PORT, e.g. 127.0.0.1:9586\n"
    "                      (docs/metrics.md). gwd does not start if it cannot\n"
    "                      listen there. Without it: no listener\n"
    "    --metrics-per-peer\n"
    "                      also one series per peer in five families (bytes,\n"
    "                      packets, last handshake): 500k series at 100k peers\n"
    "    --pid-file FILE   once started, write the daemon's pid to FILE (an\n"
    "                      absolute path; replaced atomically, removed at a clean\n"
    "                      exit): for service managers without systemd\n"
    "    -h, --help        print this text\n"
    "    -V, --version     print the version\n"
    "    --no-offload      one system call per packet: no TCP segmentation or\n"
    "                      coalescing on the TUN, no UDP GSO/GRO (also\n"
    "                      GWD_NO_OFFLOAD=1; docs/performance.md)\n"
    "\n"
    "CLUSTER OPTIONS (docs/failover.md)\n"
    "    --node-id N       run as cluster node N (1..255): receiver indexes and\n"
    "                      counter regions carry N, sessions are exported to and\n"
    "                      imported from the local syncd, and only the owner of a\n"
    "                      peer sends for it. Without it gwd is plain WireGuard.\n"
    "    --state-dir DIR   where the boot counter lives (default\n"
    "                      " STATE_DIR "/INTERFACE); nothing secret is written\n"
    "    --cluster-secret-file FILE\n"
    "                      32-byte secret (base64 as wg genkey prints, or hex),\n"
    "                      the same on every node: cookies valid cluster-wide\n"
    "    --session-socket PATH\n"
    "                      ZeroMQ ipc socket for syncd (default\n"
    "                      " SESSION_SOCKET_DIR "/INTERFACE.sessions)\n"
    "    --anycast         claim a peer when its packets arrive here (BGP\n"
    "                      anycast); otherwise (VRRP) wait for a claim command\n"
    "    --takeover-rekey-rate N\n"
    "                      after a takeover, rekey replicated sessions once\n"
    "                      traffic resumed, at most N per second (default 100;\n"
    "                      0: never)\n"
    "    --owned-routes TABLE\n"
    "                      keep a route through INTERFACE to every allowed IP of\n"
    "                      every peer this node owns, and to none other, in routing\n"
    "                      table TABLE (1..4294967294, or main); a routing daemon\n"
    "                      announces them so return traffic finds the owner\n"
    "                      (anycast, docs/anycast.md)\n"
    "\n"
    "ENVIRONMENT\n"
    "    GWD_LOG_LEVEL              error, warning, info (default) or debug\n"
    "    GWD_UNDER_LOAD_THRESHOLD   handshake messages per second above which\n"
    "                               gwd demands cookies (default 1000; 0: always)\n"
    "    GWD_NO_OFFLOAD             1: as --no-offload\n"
    "    GWD_CRYPT_WORKERS          threads helping with batched encryption and\n"
    "                               decryption, 0..3 (default: CPUs - 1)\n";

struct options {
	bool foreground;
	bool verbose;
	const char *ifname;
	/* Cluster: node_id 0 means standalone. */
	unsigned int node_id;
	const char *state_dir;
	const char *secret_file;
	const char *session_socket;
	bool anycast;
	uint32_t rekey_rate;
	uint32_t owned_routes_table;
	bool cluster_opt; /* some cluster option was given */
	bool no_offload;
	const char *metrics;
	bool metrics_per_peer;
	const char *pid_file;
};

enum {
	OPT_NODE_ID = 256,
	OPT_STATE_DIR,
	OPT_SECRET_FILE,
	OPT_SESSION_SOCKET,
	OPT_ANYCAST,
	OPT_REKEY_RATE,
	OPT_OWNED_ROUTES,
	OPT_NO_OFFLOAD,
	OPT_METRICS,
	OPT_METRICS_PER_PEER,
	OPT_PID_FILE,
};

/* A decimal in [0, max]; -EINVAL otherwise. */
static int parse_uint(const char *s, unsigned long max, unsigned long *out)
{
	char *end;

	errno = 0;
	*out = strtoul(s, &end, 10);
	if (errno || !*s || *end || *s == '-' || *out > max)
		return -EINVAL;
	return 0;
}

static int parse_cluster_opt(int c, const char *arg, struct options *o)
{
	unsigned long v;

	o->cluster_opt = true;
	switch (c) {
	case OPT_NODE_ID:
		if (parse_uint(arg, 255, &v) < 0 || v == 0) {
			fprintf(stderr, "gwd: --node-id takes 1..255\n");
			return -EINVAL;
		}
		o->node_id = (unsigned int)v;
		return 0;
	case OPT_STATE_DIR:
		o->state_dir = arg;
		return 0;
	case OPT_SECRET_FILE:
		o->secret_file = arg;
		return 0;
	case OPT_SESSION_SOCKET:
		o->session_socket = arg;
		return 0;
	case OPT_ANYCAST:
		o->anycast = true;
		return 0;
	case OPT_REKEY_RATE:
		if (parse_uint(arg, 1000000, &v) < 0) {
			fprintf(stderr, "gwd: --takeover-rekey-rate takes 0..1000000\n");
			return -EINVAL;
		}
		o->rekey_rate = (uint32_t)v;
		return 0;
	case OPT_OWNED_ROUTES:
		if (!strcmp(arg, "main")) {
			o->owned_routes_table = 254; /* RT_TABLE_MAIN */
			return 0;
		}
		if (parse_uint(arg, 4294967294UL, &v) < 0 || v == 0) {
			fprintf(stderr,
				"gwd: --owned-routes takes a table 1..4294967294 or main\n");
			return -EINVAL;
		}
		o->owned_routes_table = (uint32_t)v;
		return 0;
	}
	return -EINVAL;
}

static int parse_args(int argc, char **argv, struct options *o)
{
	static const struct option longopts[] = {
	    {"foreground", no_argument, NULL, 'f'},
	    {"verbose", no_argument, NULL, 'v'},
	    {"help", no_argument, NULL, 'h'},
	    {"version", no_argument, NULL, 'V'},
	    {"node-id", required_argument, NULL, OPT_NODE_ID},
	    {"state-dir", required_argument, NULL, OPT_STATE_DIR},
	    {"cluster-secret-file", required_argument, NULL, OPT_SECRET_FILE},
	    {"session-socket", required_argument, NULL, OPT_SESSION_SOCKET},
	    {"anycast", no_argument, NULL, OPT_ANYCAST},
	    {"takeover-rekey-rate", required_argument, NULL, OPT_REKEY_RATE},
	    {"owned-routes", required_argument, NULL, OPT_OWNED_ROUTES},
	    {"no-offload", no_argument, NULL, OPT_NO_OFFLOAD},
	    {"metrics", required_argument, NULL, OPT_METRICS},
	    {"metrics-per-peer", no_argument, NULL, OPT_METRICS_PER_PEER},
	    {"pid-file", required_argument, NULL, OPT_PID_FILE},
	    {NULL, 0, NULL, 0},
	};
	union gw_sockaddr sa;
	int c;

	o->rekey_rate = GWD_CLUSTER_REKEY_RATE_DEFAULT;
	while ((c = getopt_long(argc, argv, "fvhV", longopts, NULL)) != -1) {
		switch (c) {
		case 'f':
			o->foreground = true;
			break;
		case 'v':
			o->verbose = true;
			break;
		case OPT_NO_OFFLOAD:
			o->no_offload = true;
			break;
		case 'h':
			fputs(usage_text, stdout);
			exit(0);
		case 'V':
			printf("gwd %s\n", GW_VERSION);
			exit(0);
		case OPT_METRICS:
			if (gw_endpoint_parse(&sa, optarg)) {
				fprintf(
				    stderr,
				    "gwd: --metrics '%s': not a numeric IP:PORT or [IPv6]:PORT\n",
				    optarg);
				return -EINVAL;
			}
			o->metrics = optarg;
			break;
		case OPT_METRICS_PER_PEER:
			o->metrics_per_peer = true;
			break;
		case OPT_PID_FILE:
			if (optarg[0] != '/') {
				fprintf(stderr, "gwd: --pid-file '%s': not an absolute path\n",
					optarg);
				return -EINVAL;
			}
			o->pid_file = optarg;
			break;
		case OPT_NODE_ID:
		case OPT_STATE_DIR:
		case OPT_SECRET_FILE:
		case OPT_SESSION_SOCKET:
		case OPT_ANYCAST:
		case OPT_REKEY_RATE:
		case OPT_OWNED_ROUTES:
			if (parse_cluster_opt(c, optarg, o) < 0)
				return -EINVAL;
			break;
		default:
			fprintf(stderr, "Usage: gwd [-f|--foreground] [-v] [--metrics ADDR] "
					"INTERFACE   (gwd --help)\n");
			return -EINVAL;
		}
	}
	if (optind != argc - 1) {
		fprintf(stderr, "Usage: gwd [-f|--foreground] [-v] [--metrics ADDR] "
				"INTERFACE   (gwd --help)\n");
		return -EINVAL;
	}
	o->ifname = argv[optind];
	if (!o->ifname[0] || strlen(o->ifname) >= IFNAMSIZ || strchr(o->ifname, '/')) {
		fprintf(stderr, "gwd: invalid interface name '%s'\n", o->ifname);
		return -EINVAL;
	}
	if (o->metrics_per_peer && !o->metrics) {
		fprintf(stderr, "gwd: --metrics-per-peer needs --metrics\n");
		return -EINVAL;
	}
	if (o->cluster_opt && !o->node_id) {
		fprintf(stderr, "gwd: cluster options need --node-id\n");
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

static bool no_offload_env(void)
{
	const char *s = getenv("GWD_NO_OFFLOAD");

	return s && (strcmp(s, "1") == 0 || strcmp(s, "yes") == 0 || strcmp(s, "true") == 0);
}

/* GWD_CRYPT_WORKERS: helper threads for batched crypto (0..3); -1 (default): by CPUs. */
static int crypt_workers_env(void)
{
	const char *s = getenv("GWD_CRYPT_WORKERS");
	char *end;
	long v;

	if (!s || !*s)
		return -1;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || *end || v < 0 || v >= GWD_CRYPT_MAX_THREADS) {
		gw_warn("gwd: ignoring GWD_CRYPT_WORKERS=%s (0..%d)", s, GWD_CRYPT_MAX_THREADS - 1);
		return -1;
	}
	return (int)v;
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
	struct gwd_syncsock *sync;
	struct gw_metrics_endpoint *metrics;
	int lock_fd;
	char path[PATH_MAX];
};

/* Creates the default session socket's directory (root only). */
static int session_socket_path(char *buf, size_t len, const struct options *o)
{
	if (o->session_socket) {
		if ((size_t)snprintf(buf, len, "%s", o->session_socket) >= len)
			return -ENAMETOOLONG;
		return 0;
	}
	if (mkdir(SESSION_SOCKET_DIR, 0700) < 0 && errno != EEXIST)
		return -errno;
	if ((size_t)snprintf(buf, len, SESSION_SOCKET_DIR "/%s.sessions", o->ifname) >= len)
		return -ENAMETOOLONG;
	return 0;
}

/*
 * Cluster start-up, before the device exists and long before anything is
 * sent: the boot counter is incremented and durable first.
 */
static int cluster_prepare(struct daemon *d, const struct options *o, struct gwd_cluster_config *cc,
			   uint8_t secret[static GW_HASH_LEN])
{
	char dir[PATH_MAX];
	int err, n = o->state_dir ? snprintf(dir, sizeof(dir), "%s", o->state_dir)
				  : snprintf(dir, sizeof(dir), STATE_DIR "/%s", o->ifname);

	if (n < 0 || (size_t)n >= sizeof(dir))
		return -ENAMETOOLONG;
	err = gwd_cluster_incarnation_next(dir, &cc->boot, &d->lock_fd);
	if (err) {
		gw_err("gwd: cannot advance the boot counter in %s: %s", dir, strerror(-err));
		return err;
	}
	cc->node_id = (uint8_t)o->node_id;
	cc->claim_on_receive = o->anycast;
	cc->takeover_rekey_rate = o->rekey_rate;
	cc->owned_routes_table = o->owned_routes_table;
	if (!o->secret_file) {
		gw_warn("gwd: no --cluster-secret-file: cookies are valid on this node only");
		return 0;
	}
	err = gwd_cluster_read_secret(o->secret_file, secret);
	if (err) {
		gw_err("gwd: cannot read the cluster secret %s: %s", o->secret_file,
		       strerror(-err));
		return err;
	}
	cc->cookie_secret = secret;
	return 0;
}

static int start_cluster(struct daemon *d, const struct options *o)
{
	struct gwd_cluster_config cc = {0};
	uint8_t secret[GW_HASH_LEN];
	char path[PATH_MAX];
	int err;

	err = cluster_prepare(d, o, &cc, secret);
	if (!err)
		err = gwd_cluster_enable(d->dev, &cc);
	gw_wipe(secret, sizeof(secret));
	if (err)
		return err;
	err = session_socket_path(path, sizeof(path), o);
	if (!err)
		err = gwd_syncsock_open(&d->sync, d->dev, path, o->ifname);
	if (err) {
		gw_err("gwd: cannot open the session socket %s: %s", path, strerror(-err));
		return err;
	}
	gw_info("gwd: cluster node %u, boot %llu (incarnation %u), %s mode, sessions on %s",
		o->node_id, (unsigned long long)cc.boot, d->dev->cluster->incarnation,
		o->anycast ? "anycast" : "VRRP", path);
	if (o->owned_routes_table)
		gw_info("gwd: routes to owned peers' allowed IPs in table %u",
			o->owned_routes_table);
	return 0;
}

/* Before the interface exists, so a taken port changes nothing. */
static int start_metrics(struct daemon *d, const struct options *o)
{
	struct gwd_metrics_options mo = {.per_peer = o->metrics_per_peer};
	struct timespec now;
	int err;

	if (!clock_gettime(CLOCK_REALTIME, &now))
		mo.start_time_s = (double)now.tv_sec + (double)now.tv_nsec / 1e9;
	err = gwd_metrics_open(&d->metrics, d->dev, o->metrics, &mo);
	if (err) {
		gw_err("gwd: cannot serve metrics on %s: %s", o->metrics,
		       err == -EADDRINUSE ? "address in use" : strerror(-err));
		return err;
	}
	gw_info("gwd: metrics on http://%s/metrics (port %u)%s", o->metrics,
		gw_metrics_endpoint_port(d->metrics), o->metrics_per_peer ? ", per peer" : "");
	return 0;
}

static int start(struct daemon *d, const struct options *o)
{
	struct gwd_device_config cfg = {.under_load_threshold = under_load_threshold()};
	const char *ifname = o->ifname;
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
	d->dev->no_offload = o->no_offload || no_offload_env();
	d->dev->crypt_workers = crypt_workers_env();
	if (o->metrics) {
		err = start_metrics(d, o);
		if (err)
			return err;
	}
	if (o->node_id) {
		err = start_cluster(d, o);
		if (err)
			return err;
	}
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
	gw_metrics_endpoint_close(d->metrics);
	gwd_syncsock_close(d->sync);
	gwd_uapi_server_close(d->srv);
	gwd_device_free(d->dev);
	if (d->loop)
		gw_loop_free(d->loop);
	if (d->lock_fd >= 0)
		close(d->lock_fd);
}

int main(int argc, char **argv)
{
	struct options o = {0};
	struct daemon d = {.lock_fd = -1};
	int notify = -1, err;

	if (parse_args(argc, argv, &o) < 0)
		return 1;
	gw_log_init("gwd", log_level(&o), GW_LOG_STDERR);
	signal(SIGPIPE, SIG_IGN);
	if (!o.foreground) {
		notify = gw_daemon_fork();
		if (notify < 0) {
			fprintf(stderr, "gwd: cannot daemonize: %s\n", strerror(-notify));
			return 1;
		}
	}
	err = gw_crypto_init();
	if (err)
		/* -EINVAL, -ENOTSUP: GW_AEAD names no code, or code this CPU lacks. */
		fprintf(stderr, "gwd: cannot set up crypto (GW_AEAD=%s)\n",
			getenv("GW_AEAD") ? getenv("GW_AEAD") : "");
	else
		err = start(&d, &o);
	if (!err && o.pid_file) {
		err = gw_daemon_pidfile_write(o.pid_file);
		if (err)
			fprintf(stderr, "gwd: --pid-file %s: %s\n", o.pid_file, strerror(-err));
	}
	if (err) {
		fprintf(stderr, "gwd: failed to start %s: %s\n", o.ifname, strerror(-err));
		gw_daemon_ready(notify, err, "gwd", log_level(&o));
		stop(&d);
		return 1;
	}
	err = gw_daemon_ready(notify, 0, "gwd", log_level(&o));
	if (err)
		gw_warn("gwd: detaching: %s", strerror(-err));
	gw_info("gwd %s: interface %s up, UDP port %u, ChaCha20-Poly1305 on %s", GW_VERSION,
		o.ifname, d.dev->listen_port, gw_aead_impl_name());
	err = gw_loop_run(d.loop);
	if (err)
		gw_err("gwd: event loop failed: %s", strerror(-err));
	stop(&d);
	if (o.pid_file)
		gw_daemon_pidfile_remove(o.pid_file);
	gw_info("gwd: %s stopped", o.ifname);
	return err ? 1 : 0;
}
