// SPDX-License-Identifier: MIT
/*
 * syncd: replicates the cluster's WireGuard configuration between nodes and
 * applies it to the local gwd, and relays gwd's sessions between nodes.
 * Wiring only: config, store, replica, transport, session relay and control
 * server on one gw_loop, plus the timers that drive heartbeats, reconcile
 * gwd and read its session figures.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "apply.h"
#include "config.h"
#include "control.h"
#include "gw/crypto.h"
#include "gw/daemon.h"
#include "gw/log.h"
#include "gw/addr.h"
#include "gw/loop.h"
#include "kafifo.h"
#include "metrics.h"
#include "relay.h"
#include "replica.h"
#include "store.h"
#include "transport.h"

enum {
	STATS_PERIOD_MS = 1000,	     /* gwd's stats=1 for the session figures ... */
	STATS_COST_FACTOR = 20,	     /* ... at most a twentieth of the time ... */
	STATS_PERIOD_MAX_MS = 30000, /* ... and at least this often */
	SYNCED_REFRESH_MS = 1000,    /* the SyncedFile is checked this often */
	KA_RECHECK_MS = 5000,	     /* the role against keepalived's last state */
};

static const char usage_text[] =
    "NAME\n"
    "    syncd - gwcluster configuration sync daemon\n"
    "\n"
    "SYNOPSIS\n"
    "    syncd [-f|--foreground] [-v|--verbose] [-c|--config FILE] [--metrics ADDR]\n"
    "          [--pid-file FILE]\n"
    "    syncd --help | --version\n"
    "\n"
    "DESCRIPTION\n"
    "    Replicates the cluster's peer configuration with the other members listed\n"
    "    in FILE (default " SYNCD_DEFAULT_CONFIG "), keeps it in SQLite under\n"
    "    StateDir, applies it to the local gwd over its UAPI socket, relays gwd's\n"
    "    sessions between the members through SessionSocket (never to disk), and\n"
    "    serves gwctl on ControlSocket. See docs/config.md, docs/sync-protocol.md\n"
    "    and docs/failover.md.\n"
    "\n"
    "    A configuration error is printed as FILE:LINE: message and nothing starts.\n"
    "    Without -f, syncd detaches once its sockets and state are ready and exits\n"
    "    0, or exits 1 with the reason. SIGTERM or SIGINT stop it cleanly.\n"
    "\n"
    "OPTIONS\n"
    "    -c, --config FILE  cluster configuration\n"
    "    -f, --foreground   stay in the foreground and log to stderr (otherwise syslog)\n"
    "    -v, --verbose      log at debug level (overrides LogLevel)\n"
    "    --metrics ADDR     serve Prometheus metrics at http://ADDR/metrics; ADDR is\n"
    "                       a numeric IP:PORT or [IPv6]:PORT, e.g. 127.0.0.1:9587\n"
    "                       (overrides Metrics; docs/metrics.md). syncd does not\n"
    "                       start if it cannot listen there. Neither: no listener\n"
    "    --pid-file FILE    once started, write the daemon's pid to FILE (an absolute\n"
    "                       path; replaced atomically, removed at a clean exit): for\n"
    "                       service managers without systemd\n"
    "    -h, --help         print this text\n"
    "    -V, --version      print the version\n";

struct options {
	const char *config;
	const char *metrics;
	const char *pid_file;
	bool foreground;
	bool verbose;
};

struct daemon {
	struct syncd_config *cfg;
	struct gw_loop *loop;
	struct syncd_store *store;
	struct syncd_replica *replica;
	struct syncd_transport *transport;
	struct syncd_control *control;
	struct syncd_relay *relay; /* NULL: SessionSocket = off */
	struct syncd_relay_link *link;
	struct syncd_gwd_stats_client *gwd_stats;
	struct syncd_applier *applier;
	/* keepalived's notify FIFO (KeepalivedFifo), and the last state it gave. */
	struct syncd_kafifo *kafifo;
	bool ka_known;
	enum syncd_ka_state ka_state;
	uint64_t ka_checked_ns;
	struct gw_timer tick, relay_kick, stats, work;
	uint64_t stats_period_ns, synced_checked_ns;
	/* Metrics: the server, what it reads, and what only it counts. */
	struct gw_metrics_endpoint *metrics;
	struct syncd_metrics_source msrc;
	struct syncd_lag_clock lag;
	uint64_t record_changes;
	struct syncd_records_count records_count;
};

static int parse_args(int argc, char **argv, struct options *o)
{
	static const struct option longopts[] = {
	    {"config", required_argument, NULL, 'c'},	{"foreground", no_argument, NULL, 'f'},
	    {"verbose", no_argument, NULL, 'v'},	{"help", no_argument, NULL, 'h'},
	    {"version", no_argument, NULL, 'V'},	{"metrics", required_argument, NULL, 'm'},
	    {"pid-file", required_argument, NULL, 'p'}, {NULL, 0, NULL, 0},
	};
	union gw_sockaddr sa;
	int c;

	o->config = SYNCD_DEFAULT_CONFIG;
	while ((c = getopt_long(argc, argv, "c:fvhV", longopts, NULL)) != -1) {
		switch (c) {
		case 'c':
			o->config = optarg;
			break;
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
			printf("syncd %s\n", GW_VERSION);
			exit(0);
		case 'm':
			if (gw_endpoint_parse(&sa, optarg)) {
				fprintf(
				    stderr,
				    "syncd: --metrics '%s': not a numeric IP:PORT or [IPv6]:PORT\n",
				    optarg);
				return -EINVAL;
			}
			o->metrics = optarg;
			break;
		case 'p':
			if (optarg[0] != '/') {
				fprintf(stderr, "syncd: --pid-file '%s': not an absolute path\n",
					optarg);
				return -EINVAL;
			}
			o->pid_file = optarg;
			break;
		default:
			goto usage;
		}
	}
	if (optind == argc)
		return 0;
usage:
	fprintf(stderr, "Usage: syncd [-f] [-v] [-c FILE] [--metrics ADDR] [--pid-file FILE]   "
			"(syncd --help)\n");
	return -EINVAL;
}

/* ------------------------------------------------------------------------
 * Replica <-> transport
 */

static int io_publish(void *arg, Gwcluster__Envelope *env)
{
	struct daemon *d = arg;

	return d->transport ? syncd_transport_publish(d->transport, env) : -ENOTCONN;
}

static int io_request(void *arg, uint8_t to, Gwcluster__Envelope *env)
{
	struct daemon *d = arg;

	return d->transport ? syncd_transport_request(d->transport, to, env) : -ENOTCONN;
}

static int io_reply(void *arg, uint8_t to, Gwcluster__Envelope *env)
{
	struct daemon *d = arg;

	return d->transport ? syncd_transport_reply(d->transport, to, env) : -ENOTCONN;
}

static void io_changed(void *arg)
{
	struct daemon *d = arg;

	d->record_changes++;
}

static void io_record_changed(void *arg, const uint8_t *key, size_t key_len)
{
	struct daemon *d = arg;

	if (d->applier)
		syncd_applier_changed(d->applier, key, key_len);
}

static void on_envelope(void *arg, uint8_t from, enum syncd_channel ch, Gwcluster__Envelope *env)
{
	struct daemon *d = arg;

	if (d->relay && syncd_relay_receive(d->relay, from, ch, env))
		return;
	syncd_replica_receive_taking(d->replica, from, ch, env);
}

static void refresh_synced_file(struct daemon *d);
static void ka_recheck(struct daemon *d);

/* The replica's large jobs, one slice per loop turn: I/O is served in between. */
static void on_work(struct gw_loop *loop, struct gw_timer *t, void *arg)
{
	struct daemon *d = arg;

	if (syncd_replica_work(d->replica))
		gw_timer_arm_in(loop, t, 0);
}

static void io_more(void *arg)
{
	struct daemon *d = arg;

	if (!gw_timer_pending(&d->work) && gw_timer_arm_in(d->loop, &d->work, 0))
		gw_warn("syncd: cannot schedule the replica's work; retried with the next tick");
}

/* The replica's catch-up, for the relay's readiness. */
static void config_state(struct daemon *d)
{
	syncd_relay_config_state(d->relay, syncd_replica_caught_up(d->replica),
				 syncd_replica_writable(d->replica));
}

static void on_tick(struct gw_loop *loop, struct gw_timer *t, void *arg)
{
	struct daemon *d = arg;

	syncd_replica_tick(d->replica);
	if (!gw_timer_pending(&d->work) && syncd_replica_work(d->replica))
		gw_timer_arm_in(loop, &d->work, 0); /* in case arming failed before */
	syncd_lag_observe(&d->lag, d->replica, gw_loop_now(loop));
	syncd_applier_enable(d->applier, syncd_replica_writable(d->replica));
	if (d->relay) {
		config_state(d);
		syncd_relay_tick(d->relay);
		refresh_synced_file(d);
		ka_recheck(d);
	}
	gw_timer_arm_in(loop, t, d->cfg->heartbeat_ms * GW_NSEC_PER_MSEC);
}

/* ------------------------------------------------------------------------
 * Applying to gwd (apply.h): skipped while a new node has not caught up
 * (syncd_applier_enable from on_tick): its empty store would strip gwd of
 * every peer.
 */

static void apply_converged(void *arg, bool added)
{
	struct daemon *d = arg;

	if (d->relay)
		syncd_relay_config_applied(d->relay, added);
}

static int open_applier(struct daemon *d)
{
	struct syncd_applier_config ac = {
	    .ifname = d->cfg->ifname,
	    .store = d->store,
	    .converged = apply_converged,
	    .arg = d,
	};

	return syncd_applier_open(&d->applier, &ac, d->loop);
}

/* ------------------------------------------------------------------------
 * Session relay
 */

static int relay_to_gwd(void *arg, uint8_t *buf, size_t len)
{
	struct daemon *d = arg;

	if (!d->link) {
		gw_wipe(buf, len);
		free(buf);
		return -ENOTCONN;
	}
	return syncd_relay_link_send(d->link, buf, len);
}

static void relay_kick(void *arg)
{
	struct daemon *d = arg;

	if (!gw_timer_pending(&d->relay_kick))
		gw_timer_arm_in(d->loop, &d->relay_kick, 0);
}

static void on_relay_kick(struct gw_loop *loop, struct gw_timer *t, void *arg)
{
	struct daemon *d = arg;

	(void)loop;
	(void)t;
	syncd_relay_flush(d->relay);
}

/* gwd subscribed anew (perhaps restarted): configure it now, then its figures. */
static void relay_gwd_hello(void *arg)
{
	struct daemon *d = arg;

	syncd_applier_reconcile(d->applier);
	gw_timer_arm_in(d->loop, &d->stats, 0);
}

static void write_synced_file(struct daemon *d, enum syncd_ready value)
{
	int rc;

	if (!d->cfg->synced_file[0])
		return;
	rc = syncd_synced_file_write(d->cfg->synced_file, value);
	if (rc)
		gw_warn("syncd: cannot write %s: %s", d->cfg->synced_file, strerror(-rc));
}

/* keepalived's init_file may overwrite it when keepalived starts: put it right. */
static void refresh_synced_file(struct daemon *d)
{
	uint64_t now = gw_loop_now(d->loop);
	int rc;

	if (!d->cfg->synced_file[0] ||
	    now - d->synced_checked_ns < SYNCED_REFRESH_MS * GW_NSEC_PER_MSEC)
		return;
	d->synced_checked_ns = now;
	rc = syncd_synced_file_refresh(d->cfg->synced_file, syncd_relay_ready(d->relay, NULL));
	if (rc < 0)
		gw_warn("syncd: cannot write %s: %s", d->cfg->synced_file, strerror(-rc));
	else if (rc)
		gw_info("syncd: %s said something else; rewritten", d->cfg->synced_file);
}

static void relay_ready_changed(void *arg, enum syncd_ready value)
{
	struct daemon *d = arg;
	const char *why;

	syncd_relay_ready(d->relay, &why);
	if (value)
		gw_info("syncd: not ready for master (%u): %s", value, why);
	else
		gw_info("syncd: ready for master");
	write_synced_file(d, value);
}

static struct gw_ratelimit stats_rl = GW_RATELIMIT_INIT(60 * GW_NSEC_PER_SEC, 2);

static void stats_failed(struct daemon *d, int rc)
{
	gw_log_rl(&stats_rl, GW_LOG_WARN, "syncd: gwd's stats on %s: %s", d->cfg->ifname,
		  strerror(-rc));
}

/*
 * A stats=1 answer (or its failure): the period stretches with the time it
 * took, so that reading gwd's stats costs it at most a twentieth of its time.
 */
static void stats_done(void *arg, int rc, const struct syncd_gwd_stats *st, uint64_t took_ns)
{
	struct daemon *d = arg;

	if (!rc)
		syncd_relay_gwd_stats(d->relay, st);
	else
		stats_failed(d, rc);
	d->stats_period_ns = STATS_COST_FACTOR * took_ns;
}

/* gwd's stats=1, as often as it is cheap: the session figures of gwctl status. */
static void on_stats(struct gw_loop *loop, struct gw_timer *t, void *arg)
{
	struct daemon *d = arg;
	int rc;

	/* One query at a time; a slow one is still being read on the loop. */
	if (syncd_relay_gwd_subscribed(d->relay) && !syncd_gwd_stats_client_busy(d->gwd_stats)) {
		rc = syncd_gwd_stats_client_query(d->gwd_stats);
		if (rc)
			stats_failed(d, rc);
	}
	if (d->stats_period_ns < STATS_PERIOD_MS * GW_NSEC_PER_MSEC)
		d->stats_period_ns = STATS_PERIOD_MS * GW_NSEC_PER_MSEC;
	if (d->stats_period_ns > STATS_PERIOD_MAX_MS * GW_NSEC_PER_MSEC)
		d->stats_period_ns = STATS_PERIOD_MAX_MS * GW_NSEC_PER_MSEC;
	gw_timer_arm_in(loop, t, d->stats_period_ns);
}

static int control_role(void *arg, const Gwcluster__RoleRequest *req,
			const Gwcluster__SessionSummary **summary, char *msg, size_t msglen)
{
	struct daemon *d = arg;

	config_state(d);
	return syncd_relay_role(d->relay, req, summary, msg, msglen);
}

/* ------------------------------------------------------------------------
 * keepalived's notify FIFO: each state change becomes the `gwctl role` the
 * notify hook would have run, through control_role() like gwctl's request.
 */

static Gwcluster__RoleRequest__Action ka_action(enum syncd_ka_state st)
{
	switch (st) {
	case SYNCD_KA_MASTER:
		return GWCLUSTER__ROLE_REQUEST__ACTION__MASTER;
	case SYNCD_KA_BACKUP:
		return GWCLUSTER__ROLE_REQUEST__ACTION__BACKUP;
	default: /* FAULT, STOP, DELETED */
		return GWCLUSTER__ROLE_REQUEST__ACTION__FAULT;
	}
}

static enum syncd_role ka_role(enum syncd_ka_state st)
{
	return st == SYNCD_KA_MASTER   ? SYNCD_ROLE_MASTER
	       : st == SYNCD_KA_BACKUP ? SYNCD_ROLE_BACKUP
				       : SYNCD_ROLE_FAULT;
}

/*
 * The role for keepalived's last state. A MASTER refused for readiness is
 * forced, as gwcluster-notify does: keepalived has moved the VIP here
 * already, and claiming with part of the sessions serves more clients than
 * a refusal (the track_file keeps unready nodes from being elected).
 */
static int ka_apply(struct daemon *d, char *msg, size_t len)
{
	Gwcluster__RoleRequest q = GWCLUSTER__ROLE_REQUEST__INIT;
	const Gwcluster__SessionSummary *sum;
	char refused[256];
	int rc;

	q.action = ka_action(d->ka_state);
	rc = control_role(d, &q, &sum, msg, len);
	if (rc != -EAGAIN || q.action != GWCLUSTER__ROLE_REQUEST__ACTION__MASTER)
		return rc;
	snprintf(refused, sizeof(refused), "%s", msg);
	q.has_force = q.force = true;
	rc = control_role(d, &q, &sum, msg, len);
	gw_warn("syncd: keepalived: MASTER while not ready (%s); claiming anyway: the VIP is here",
		refused);
	return rc;
}

static void ka_changed(void *arg, const struct syncd_ka_line *l)
{
	struct daemon *d = arg;
	char msg[256];
	int rc;

	d->ka_known = true;
	d->ka_state = l->state;
	d->ka_checked_ns = gw_loop_now(d->loop);
	/* The role first, the log after it. */
	rc = ka_apply(d, msg, sizeof(msg));
	gw_log(rc && rc != -ENOTCONN ? GW_LOG_WARN : GW_LOG_INFO,
	       "syncd: keepalived: %s %s -> %s: %s%s%s",
	       l->type == SYNCD_KA_GROUP ? "GROUP" : "INSTANCE", l->name, l->word,
	       msg[0] ? msg : "done", rc ? ": " : "", rc ? strerror(-rc) : "");
}

/*
 * Every KA_RECHECK_MS: the role syncd holds against keepalived's last state
 * (`gwctl role` by hand, or the role syncd took from gwd, can differ).
 */
static void ka_recheck(struct daemon *d)
{
	uint64_t now = gw_loop_now(d->loop);
	enum syncd_role want = ka_role(d->ka_state), have;
	char msg[256];
	int rc;

	if (!d->kafifo || !d->ka_known || now - d->ka_checked_ns < KA_RECHECK_MS * GW_NSEC_PER_MSEC)
		return;
	d->ka_checked_ns = now;
	have = syncd_relay_role_get(d->relay);
	if (have == want)
		return;
	rc = ka_apply(d, msg, sizeof(msg));
	gw_warn("syncd: role was %s but keepalived's last state is %s: sent it again (%s)",
		syncd_role_name(have), syncd_ka_state_name(d->ka_state), rc ? msg : "done");
}

static int open_kafifo(struct daemon *d)
{
	const struct syncd_config *c = d->cfg;
	struct syncd_kafifo_config kc = {
	    .path = c->keepalived_fifo,
	    .group = c->keepalived_group,
	    .name = c->keepalived_name[0] ? c->keepalived_name : NULL,
	    .changed = ka_changed,
	    .arg = d,
	};
	int rc = syncd_kafifo_open(&d->kafifo, &kc, d->loop);

	if (rc)
		gw_err("syncd: cannot follow %s: %s", c->keepalived_fifo, strerror(-rc));
	return rc;
}

static int open_relay(struct daemon *d)
{
	const struct syncd_config *c = d->cfg;
	uint8_t ids[SYNCD_MAX_MEMBERS];
	struct syncd_relay_io io = {
	    .to_gwd = relay_to_gwd,
	    .publish = io_publish,
	    .request = io_request,
	    .kick = relay_kick,
	    .gwd_hello = relay_gwd_hello,
	    .ready_changed = relay_ready_changed,
	    .arg = d,
	};
	struct syncd_relay_config rc = {
	    .node_id = c->node_id,
	    .members = ids,
	    .n_members = c->n_members,
	    .anycast = c->mode == SYNCD_MODE_ANYCAST,
	    .dead_ms = c->peer_dead_ms,
	};
	int err;

	for (unsigned i = 0; i < c->n_members; i++)
		ids[i] = c->members[i].node_id;
	gw_timer_init(&d->relay_kick, on_relay_kick, d);
	gw_timer_init(&d->stats, on_stats, d);
	err = syncd_relay_new(&d->relay, &rc, gw_loop_clock(d->loop), &io);
	if (err)
		return err;
	write_synced_file(d, syncd_relay_ready(d->relay, NULL));
	err = syncd_gwd_stats_client_open(&d->gwd_stats, d->loop, c->ifname, stats_done, d);
	if (err)
		return err;
	err = syncd_relay_link_open(&d->link, c->session_socket, d->loop, d->relay);
	if (err)
		gw_err("syncd: cannot connect to gwd's session socket %s: %s", c->session_socket,
		       strerror(-err));
	return err ? err : gw_timer_arm_in(d->loop, &d->stats, 0);
}

/* ------------------------------------------------------------------------
 * Status for gwctl
 */

static void status_extra(void *arg, Gwcluster__ClusterStatus *st)
{
	struct daemon *d = arg;
	const struct syncd_transport_stats *ts = syncd_transport_stats(d->transport);
	const struct syncd_apply_stats *as = syncd_applier_stats(d->applier);

	st->has_gwd_connected = true;
	st->gwd_connected = as->gwd_connected;
	st->has_apply_pending = true;
	st->apply_pending = as->pending;
	st->has_apply_failures = true;
	st->apply_failures = as->failed + as->absent;
	st->has_apply_conflicts = true;
	st->apply_conflicts = as->conflicts;
	st->has_rejected_messages = true;
	st->rejected_messages = ts->rejected_malformed + ts->rejected_version +
				ts->rejected_cluster + ts->rejected_origin + ts->rejected_oversize +
				ts->zap_denied + syncd_replica_stats(d->replica)->rejected;
	if (d->relay) {
		st->rejected_messages += syncd_relay_stats(d->relay)->rejected;
		config_state(d);
		syncd_relay_status(d->relay, st);
	}
}

/* ------------------------------------------------------------------------
 * Life cycle
 */

static int open_replica(struct daemon *d)
{
	const struct syncd_config *c = d->cfg;
	uint8_t ids[SYNCD_MAX_MEMBERS];
	struct syncd_replica_io io = {
	    .publish = io_publish,
	    .request = io_request,
	    .reply = io_reply,
	    .changed = io_changed,
	    .record_changed = io_record_changed,
	    .more = io_more,
	    .arg = d,
	};
	struct syncd_replica_config rc = {
	    .node_id = c->node_id,
	    .members = ids,
	    .n_members = c->n_members,
	    .heartbeat_ms = c->heartbeat_ms,
	    .peer_dead_ms = c->peer_dead_ms,
	    .log_retain = c->log_retain,
	    .version = GW_VERSION,
	};

	for (unsigned i = 0; i < c->n_members; i++)
		ids[i] = c->members[i].node_id;
	return syncd_replica_open(&d->replica, &rc, d->store, gw_loop_clock(d->loop), &io);
}

static int open_transport(struct daemon *d)
{
	const struct syncd_config *c = d->cfg;
	struct syncd_transport_config tc = {
	    .cluster = c->cluster,
	    .node_id = c->node_id,
	    .bind_host = c->bind_host[0] ? c->bind_host : NULL,
	    .members = c->members,
	    .n_members = c->n_members,
	    .heartbeat_ms = c->heartbeat_ms,
	};
	int rc;

	memcpy(tc.curve_secret, c->curve_secret, sizeof(tc.curve_secret));
	rc = syncd_transport_open(&d->transport, &tc, d->loop, on_envelope, d);
	gw_wipe(tc.curve_secret, sizeof(tc.curve_secret));
	return rc;
}

static void on_signal(struct gw_loop *loop, int fd, uint32_t signo, void *arg)
{
	(void)fd;
	(void)arg;
	gw_info("syncd: received signal %u, shutting down", signo);
	gw_loop_stop(loop);
}

/*
 * First, so a taken port changes nothing. The server reads d->msrc, which
 * start() fills as the parts open; scrapes only come once the loop runs.
 */
static int open_metrics(struct daemon *d)
{
	struct timespec now;
	int rc;

	d->msrc.cfg = d->cfg;
	/* msrc.apply and msrc.gwd_connected: once the applier exists (start). */
	d->msrc.lag = &d->lag;
	d->msrc.loop = d->loop;
	d->msrc.record_changes = &d->record_changes;
	d->msrc.records_count = &d->records_count;
	if (!clock_gettime(CLOCK_REALTIME, &now))
		d->msrc.start_time_s = (double)now.tv_sec + (double)now.tv_nsec / 1e9;
	rc = syncd_metrics_open(&d->metrics, d->loop, d->cfg->metrics, &d->msrc);
	if (rc) {
		gw_err("syncd: cannot serve metrics on %s: %s", d->cfg->metrics,
		       rc == -EADDRINUSE ? "address in use" : strerror(-rc));
		return rc;
	}
	gw_info("syncd: metrics on http://%s/metrics (port %u)", d->cfg->metrics,
		gw_metrics_endpoint_port(d->metrics));
	return 0;
}

static int start(struct daemon *d)
{
	struct syncd_control_ctx ctx = {NULL, d->cfg, status_extra, d, NULL};
	const struct syncd_member *self = &d->cfg->members[d->cfg->self];
	int rc;

	/* Before anything can fail: stop() cancels them, and a zeroed timer looks armed. */
	gw_timer_init(&d->tick, on_tick, d);
	gw_timer_init(&d->work, on_work, d);
	rc = gw_loop_new(&d->loop, NULL);
	rc = rc ? rc : gw_loop_add_signal(d->loop, SIGTERM, on_signal, NULL);
	rc = rc ? rc : gw_loop_add_signal(d->loop, SIGINT, on_signal, NULL);
	if (rc)
		return rc;
	if (d->cfg->metrics[0]) {
		rc = open_metrics(d);
		if (rc)
			return rc;
	}
	rc = syncd_store_open(&d->store, d->cfg->state_dir);
	if (rc) {
		gw_err("syncd: cannot open the state in %s: %s", d->cfg->state_dir, strerror(-rc));
		return rc;
	}
	d->msrc.store = d->store;
	rc = open_applier(d);
	if (rc) {
		gw_err("syncd: cannot apply to %s: %s", d->cfg->ifname, strerror(-rc));
		return rc;
	}
	d->msrc.apply = syncd_applier_stats(d->applier);
	d->msrc.gwd_connected = &d->msrc.apply->gwd_connected;
	rc = open_replica(d);
	if (rc) {
		gw_err("syncd: cannot load the replicated state: %s", strerror(-rc));
		return rc;
	}
	d->msrc.replica = d->replica;
	rc = open_transport(d);
	if (rc) {
		gw_err("syncd: cannot open the sync sockets on %s ports %u-%u: %s",
		       d->cfg->bind_host[0] ? d->cfg->bind_host : self->host, self->port,
		       self->port + 1, strerror(-rc));
		return rc;
	}
	d->msrc.transport = d->transport;
	if (d->cfg->session_socket[0]) {
		rc = open_relay(d);
		if (rc)
			return rc;
		d->msrc.relay = d->relay;
		ctx.role = control_role;
	}
	ctx.replica = d->replica;
	rc = syncd_control_open(&d->control, d->cfg->control_socket, d->loop, &ctx);
	if (rc) {
		gw_err("syncd: cannot serve %s: %s", d->cfg->control_socket,
		       rc == -EADDRINUSE ? "another syncd serves it" : strerror(-rc));
		return rc;
	}
	/* Last: a role from keepalived's FIFO needs the relay, and gwctl may look at once. */
	if (d->relay && d->cfg->keepalived_fifo[0]) {
		rc = open_kafifo(d);
		if (rc)
			return rc;
	}
	return gw_timer_arm_in(d->loop, &d->tick, 0);
}

static void stop(struct daemon *d)
{
	syncd_kafifo_close(d->kafifo);
	gw_metrics_endpoint_close(d->metrics);
	if (d->loop) {
		gw_timer_cancel(d->loop, &d->tick);
		gw_timer_cancel(d->loop, &d->work);
		if (d->relay) {
			gw_timer_cancel(d->loop, &d->relay_kick);
			gw_timer_cancel(d->loop, &d->stats);
		}
	}
	syncd_control_close(d->control);
	syncd_relay_link_close(d->link);
	syncd_gwd_stats_client_close(d->gwd_stats);
	if (d->relay) {
		write_synced_file(d, SYNCD_READY_STOPPED);
		syncd_relay_free(d->relay);
	}
	if (d->transport)
		syncd_transport_close(d->transport);
	syncd_applier_close(d->applier);
	syncd_replica_close(d->replica);
	syncd_store_close(d->store);
	if (d->loop)
		gw_loop_free(d->loop);
	syncd_config_free(d->cfg);
}

int main(int argc, char **argv)
{
	char err[SYNCD_CONFIG_ERR_LEN];
	struct options o = {0};
	struct daemon d = {0};
	enum gw_log_level level;
	int notify = -1, rc;

	if (parse_args(argc, argv, &o))
		return 1;
	gw_log_init("syncd", GW_LOG_INFO, GW_LOG_STDERR);
	signal(SIGPIPE, SIG_IGN);
	rc = gw_crypto_init();
	if (rc) {
		fprintf(stderr, "syncd: crypto init: %s\n", strerror(-rc));
		return 1;
	}
	rc = syncd_config_load(&d.cfg, o.config, err, sizeof(err));
	if (rc) {
		fprintf(stderr, "syncd: %s\n", err);
		return 1;
	}
	if (o.metrics && (size_t)snprintf(d.cfg->metrics, sizeof(d.cfg->metrics), "%s",
					  o.metrics) >= sizeof(d.cfg->metrics)) {
		fprintf(stderr, "syncd: --metrics '%s': too long\n", o.metrics);
		syncd_config_free(d.cfg);
		return 1;
	}
	level = o.verbose ? GW_LOG_DEBUG : d.cfg->log_level;
	gw_log_set_level(level);
	/* Fork before any thread exists (ZeroMQ starts I/O threads). */
	if (!o.foreground) {
		notify = gw_daemon_fork();
		if (notify < 0) {
			fprintf(stderr, "syncd: cannot daemonize: %s\n", strerror(-notify));
			return 1;
		}
	}
	rc = start(&d);
	if (!rc && o.pid_file) {
		rc = gw_daemon_pidfile_write(o.pid_file);
		if (rc)
			fprintf(stderr, "syncd: --pid-file %s: %s\n", o.pid_file, strerror(-rc));
	}
	if (rc) {
		fprintf(stderr, "syncd: failed to start: %s\n", strerror(-rc));
		gw_daemon_ready(notify, rc, "syncd", level);
		stop(&d);
		return 1;
	}
	rc = gw_daemon_ready(notify, 0, "syncd", level);
	if (rc)
		gw_warn("syncd: detaching: %s", strerror(-rc));
	gw_info("syncd %s: node %u of cluster %s (%s mode, %u members), interface %s, control %s, "
		"sessions %s",
		GW_VERSION, d.cfg->node_id, d.cfg->cluster, syncd_mode_name(d.cfg->mode),
		d.cfg->n_members, d.cfg->ifname, d.cfg->control_socket,
		d.cfg->session_socket[0] ? d.cfg->session_socket : "off");
	rc = gw_loop_run(d.loop);
	if (rc)
		gw_err("syncd: event loop failed: %s", strerror(-rc));
	stop(&d);
	if (o.pid_file)
		gw_daemon_pidfile_remove(o.pid_file);
	gw_info("syncd: stopped");
	return rc ? 1 : 0;
}
