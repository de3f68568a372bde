// SPDX-License-Identifier: MIT
/*
 * syncd's metrics text from real replicas wired together in memory (each
 * with its SQLite store on tmpfs and a fake clock): records, members up and
 * down, replication behind and lag while updates are lost, the apply
 * figures, the relay's role, and `promtool check metrics` on each text.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "gw/crypto.h"
#include "gw/log.h"
#include "metrics.h"

#define PROMTOOL "/usr/bin/promtool"

enum {
	NODES = 2,
	HB_MS = 100,
	DEAD_MS = 1000,
	QMAX = 4096,
};

struct msg {
	uint8_t from, to;
	enum syncd_channel ch;
	uint8_t *buf;
	size_t len;
};

struct node {
	uint8_t id;
	bool up;
	char dir[64];
	struct gw_fake_clock clk;
	struct syncd_store *store;
	struct syncd_replica *r;
	struct syncd_lag_clock lag;
	uint64_t changes; /* the replica's changed callback */
};

static struct node nodes[NODES];
static const uint8_t ids[NODES] = {1, 2};
static struct msg q[QMAX];
static size_t nq;
static bool drop_updates_from_1; /* updates and repairs of node 1 never reach node 2 */

static void enqueue(uint8_t from, uint8_t to, enum syncd_channel ch, Gwcluster__Envelope *env)
{
	struct msg *m;

	env->cluster = "test";
	env->origin = from;
	env->version = SYNCD_PROTO_VERSION;
	cr_assert_lt(nq, QMAX);
	m = &q[nq++];
	m->from = from;
	m->to = to;
	m->ch = ch;
	m->len = gwcluster__envelope__get_packed_size(env);
	m->buf = malloc(m->len + 1);
	cr_assert(m->buf);
	gwcluster__envelope__pack(env, m->buf);
}

static int io_publish(void *arg, Gwcluster__Envelope *env)
{
	struct node *me = arg;

	for (unsigned i = 0; i < NODES; i++)
		if (ids[i] != me->id)
			enqueue(me->id, ids[i], SYNCD_CHANNEL_STREAM, env);
	return 0;
}

static int io_request(void *arg, uint8_t to, Gwcluster__Envelope *env)
{
	enqueue(((struct node *)arg)->id, to, SYNCD_CHANNEL_REQUEST, env);
	return 0;
}

static int io_reply(void *arg, uint8_t to, Gwcluster__Envelope *env)
{
	enqueue(((struct node *)arg)->id, to, SYNCD_CHANNEL_REPLY, env);
	return 0;
}

static void io_changed(void *arg)
{
	((struct node *)arg)->changes++;
}

static void node_open(struct node *nd)
{
	struct syncd_replica_io io = {.publish = io_publish,
				      .request = io_request,
				      .reply = io_reply,
				      .changed = io_changed,
				      .arg = nd};
	struct syncd_replica_config cfg = {
	    .node_id = nd->id,
	    .members = ids,
	    .n_members = NODES,
	    .heartbeat_ms = HB_MS,
	    .peer_dead_ms = DEAD_MS,
	    .log_retain = 1000,
	    .version = "test-1",
	};

	cr_assert_eq(syncd_store_open(&nd->store, nd->dir), 0);
	cr_assert_eq(syncd_replica_open(&nd->r, &cfg, nd->store, &nd->clk.clock, &io), 0);
	nd->up = true;
}

static void setup(void)
{
	gw_log_init("test", GW_LOG_ERR, GW_LOG_STDERR);
	cr_assert_eq(gw_crypto_init(), 0);
	memset(nodes, 0, sizeof(nodes));
	nq = 0;
	drop_updates_from_1 = false;
	for (unsigned i = 0; i < NODES; i++) {
		nodes[i].id = ids[i];
		snprintf(nodes[i].dir, sizeof(nodes[i].dir), "/dev/shm/syncd-metrics-XXXXXX");
		cr_assert(mkdtemp(nodes[i].dir));
		gw_fake_clock_init(&nodes[i].clk, GW_NSEC_PER_SEC, 1700000000);
		node_open(&nodes[i]);
	}
}

static void teardown(void)
{
	char cmd[128];

	for (unsigned i = 0; i < NODES; i++) {
		syncd_replica_close(nodes[i].r);
		syncd_store_close(nodes[i].store);
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", nodes[i].dir);
		cr_assert_eq(system(cmd), 0);
	}
	for (size_t i = 0; i < nq; i++)
		free(q[i].buf);
}

static bool dropped(const struct msg *m, const Gwcluster__Envelope *env)
{
	if (!nodes[m->to - 1].up || !nodes[m->from - 1].up)
		return true;
	if (!drop_updates_from_1 || m->from != 1)
		return false;
	return env->body_case == GWCLUSTER__ENVELOPE__BODY_UPDATE || m->ch == SYNCD_CHANNEL_REPLY;
}

static void deliver_all(void)
{
	for (unsigned guard = 0; nq; guard++) {
		struct msg m = q[0];
		Gwcluster__Envelope *env;

		cr_assert_lt(guard, 100000, "message storm");
		memmove(&q[0], &q[1], (nq - 1) * sizeof(*q));
		nq--;
		env = gwcluster__envelope__unpack(NULL, m.len, m.buf);
		cr_assert_not_null(env);
		if (!dropped(&m, env))
			syncd_replica_receive(nodes[m.to - 1].r, m.from, m.ch, env);
		gwcluster__envelope__free_unpacked(env, NULL);
		free(m.buf);
	}
}

/* One heartbeat on every node: clocks, ticks (and the lag clocks, as syncd's tick does). */
static void step(void)
{
	for (unsigned i = 0; i < NODES; i++)
		gw_fake_clock_advance(&nodes[i].clk, HB_MS * GW_NSEC_PER_MSEC);
	for (unsigned i = 0; i < NODES; i++) {
		if (!nodes[i].up)
			continue;
		syncd_replica_tick(nodes[i].r);
		syncd_lag_observe(&nodes[i].lag, nodes[i].r, gw_clock_mono_ns(&nodes[i].clk.clock));
	}
	deliver_all();
}

static void run_ms(unsigned ms)
{
	for (unsigned t = 0; t < ms; t += HB_MS)
		step();
}

static void run_until_synced(void)
{
	for (unsigned t = 0; t < 100; t++) {
		if (syncd_replica_synced(nodes[0].r) && syncd_replica_synced(nodes[1].r))
			return;
		step();
	}
	cr_assert_fail("nodes did not sync");
}

static void put_peer(unsigned n)
{
	Gwcluster__Record rec = GWCLUSTER__RECORD__INIT, *recs[1] = {&rec};
	Gwcluster__PeerConfig pc = GWCLUSTER__PEER_CONFIG__INIT;
	uint8_t key[32] = {0x40};
	char ip[32], *ips[1] = {ip};

	key[31] = (uint8_t)n;
	snprintf(ip, sizeof(ip), "198.18.0.%u/32", n);
	pc.public_key.data = key;
	pc.public_key.len = 32;
	pc.allowed_ips = ips;
	pc.n_allowed_ips = 1;
	rec.item_case = GWCLUSTER__RECORD__ITEM_PEER;
	rec.peer = &pc;
	cr_assert_eq(syncd_replica_write(nodes[0].r, recs, 1, NULL), 0);
}

static char *scrape(const struct syncd_metrics_source *src, uint64_t now)
{
	struct gw_metrics m;
	size_t len;
	char *s;

	gw_metrics_init(&m, 0);
	gw_metrics_begin(&m);
	cr_assert_eq(syncd_metrics_write(src, now, &m), 0);
	cr_assert_eq(gw_metrics_end(&m), 0);
	s = strdup(gw_metrics_data(&m, &len));
	cr_assert_not_null(s);
	gw_metrics_free(&m);
	return s;
}

static char *scrape_node(unsigned i)
{
	struct syncd_metrics_source src = {
	    .store = nodes[i].store,
	    .replica = nodes[i].r,
	    .lag = &nodes[i].lag,
	};

	return scrape(&src, gw_clock_mono_ns(&nodes[i].clk.clock));
}

static const char *value_of(const char *text, const char *series)
{
	static char v[64];
	size_t n = strlen(series);

	for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
		if (strncmp(p, series, n) || p[n] != ' ')
			continue;
		sscanf(p + n + 1, "%63s", v);
		return v;
	}
	return NULL;
}

static double num_of(const char *text, const char *series)
{
	const char *v = value_of(text, series);

	cr_assert_not_null(v, "no series %s in:\n%s", series, text);
	return strtod(v, NULL);
}

static int promtool_check(const char *s)
{
	FILE *p;
	int st;

	cr_assert_eq(access(PROMTOOL, X_OK), 0,
		     PROMTOOL " is missing: install the Debian package 'prometheus' (CI has it)");
	p = popen(PROMTOOL " check metrics", "w");
	cr_assert_not_null(p);
	cr_assert_eq(fwrite(s, 1, strlen(s), p), strlen(s));
	st = pclose(p);
	cr_assert(WIFEXITED(st), "promtool did not exit normally");
	return WEXITSTATUS(st);
}

TestSuite(syncd_metrics, .init = setup, .fini = teardown);

Test(syncd_metrics, records_and_members)
{
	char *t;

	run_until_synced();
	t = scrape_node(1);
	cr_expect_eq(num_of(t, "syncd_records{state=\"live\"}"), 0);
	cr_expect_eq(num_of(t, "syncd_synced"), 1);
	free(t);
	for (unsigned n = 1; n <= 3; n++)
		put_peer(n);
	run_ms(5 * HB_MS);
	t = scrape_node(1);
	cr_expect_eq(promtool_check(t), 0, "promtool rejected:\n%s", t);
	cr_expect_eq(num_of(t, "syncd_records{state=\"live\"}"), 3);
	cr_expect_eq(num_of(t, "syncd_records{state=\"tombstone\"}"), 0);
	cr_expect_eq(num_of(t, "syncd_updates_applied_total"), 3);
	cr_expect_eq(num_of(t, "syncd_replication_applied_seq{origin=\"1\"}"), 3);
	cr_expect_eq(num_of(t, "syncd_replication_behind_updates{origin=\"1\"}"), 0);
	cr_expect_eq(num_of(t, "syncd_replication_lag_seconds{origin=\"1\"}"), 0);
	cr_expect_eq(num_of(t, "syncd_member_up{member=\"1\"}"), 1);
	cr_expect_eq(num_of(t, "syncd_member_up{member=\"2\"}"), 1, "this node");
	cr_expect_null(value_of(t, "syncd_replication_behind_updates{origin=\"2\"}"),
		       "no behind for this node's own stream");
	cr_expect_leq(num_of(t, "syncd_member_last_seen_seconds{member=\"1\"}"), 0.2);
	free(t);
	t = scrape_node(0);
	cr_expect_eq(num_of(t, "syncd_updates_written_total"), 3);
	cr_expect_eq(num_of(t, "syncd_own_seq"), 3);
	cr_expect_eq(num_of(t, "syncd_replication_unconfirmed_updates{member=\"2\"}"), 0);
	cr_expect_null(value_of(t, "syncd_role{role=\"master\"}"), "no relay, no role");
	free(t);
}

/* Updates lost on the way: behind and lag grow until repair gets through, then 0 again. */
Test(syncd_metrics, behind_and_lag)
{
	char *t;

	run_until_synced();
	drop_updates_from_1 = true;
	put_peer(1);
	put_peer(2);
	run_ms(3000);
	t = scrape_node(1);
	cr_expect_eq(num_of(t, "syncd_replication_behind_updates{origin=\"1\"}"), 2);
	cr_expect_geq(num_of(t, "syncd_replication_lag_seconds{origin=\"1\"}"), 2.8);
	cr_expect_leq(num_of(t, "syncd_replication_lag_seconds{origin=\"1\"}"), 3.1);
	cr_expect_geq(num_of(t, "syncd_repair_requests_sent_total"), 1);
	cr_expect_eq(num_of(t, "syncd_records{state=\"live\"}"), 0);
	free(t);
	t = scrape_node(0);
	cr_expect_eq(num_of(t, "syncd_replication_unconfirmed_updates{member=\"2\"}"), 2);
	free(t);
	drop_updates_from_1 = false;
	/* A snapshot asked meanwhile is abandoned after 5 s of silence, then repair succeeds. */
	run_ms(SYNCD_SNAPSHOT_TIMEOUT_MS + 3000);
	t = scrape_node(1);
	cr_expect_eq(num_of(t, "syncd_replication_behind_updates{origin=\"1\"}"), 0);
	cr_expect_eq(num_of(t, "syncd_replication_lag_seconds{origin=\"1\"}"), 0);
	cr_expect_eq(num_of(t, "syncd_records{state=\"live\"}"), 2);
	cr_expect_eq(promtool_check(t), 0, "promtool rejected:\n%s", t);
	free(t);
}

/* A member that falls silent for PeerDeadMs is down; heard again, up. */
Test(syncd_metrics, member_down)
{
	char *t;

	run_until_synced();
	nodes[0].up = false;
	run_ms(DEAD_MS + 2 * HB_MS);
	t = scrape_node(1);
	cr_expect_eq(num_of(t, "syncd_member_up{member=\"1\"}"), 0);
	cr_expect_eq(num_of(t, "syncd_member_up{member=\"2\"}"), 1);
	cr_expect_geq(num_of(t, "syncd_member_last_seen_seconds{member=\"1\"}"), DEAD_MS / 1000.0);
	free(t);
	nodes[0].up = true;
	run_ms(3 * HB_MS);
	t = scrape_node(1);
	cr_expect_eq(num_of(t, "syncd_member_up{member=\"1\"}"), 1);
	free(t);
}

/* The record count is cached until the replica reports a change. */
Test(syncd_metrics, records_count_cached)
{
	struct syncd_records_count cache = {0};
	struct syncd_metrics_source src = {
	    .store = nodes[0].store,
	    .replica = nodes[0].r,
	    .record_changes = &nodes[0].changes,
	    .records_count = &cache,
	};
	Gwcluster__Record rec = GWCLUSTER__RECORD__INIT;
	Gwcluster__PeerConfig pc = GWCLUSTER__PEER_CONFIG__INIT;
	uint8_t key[32] = {0x41}, blob[256];
	struct syncd_row row = {.key = key, .key_len = 32, .hlc = 1, .writer = 1, .origin = 1};
	char *t;

	run_until_synced();
	t = scrape(&src, 0);
	cr_expect_eq(num_of(t, "syncd_records{state=\"live\"}"), 0);
	free(t);
	put_peer(1);
	put_peer(2);
	t = scrape(&src, 0);
	cr_expect_eq(num_of(t, "syncd_records{state=\"live\"}"), 2, "a write is a change");
	free(t);
	/* A row the replica did not report: the cached count stands until the next change. */
	pc.public_key.data = key;
	pc.public_key.len = 32;
	rec.item_case = GWCLUSTER__RECORD__ITEM_PEER;
	rec.peer = &pc;
	row.blob_len = gwcluster__record__pack(&rec, blob);
	row.blob = blob;
	cr_assert_eq(syncd_store_put(nodes[0].store, &row), 0);
	t = scrape(&src, 0);
	cr_expect_eq(num_of(t, "syncd_records{state=\"live\"}"), 2,
		     "counted again without a change");
	free(t);
	nodes[0].changes++;
	t = scrape(&src, 0);
	cr_expect_eq(num_of(t, "syncd_records{state=\"live\"}"), 3);
	free(t);
}

Test(syncd_metrics, apply_figures)
{
	struct syncd_apply_stats a = {0};
	struct syncd_metrics_source src = {.apply = &a};
	bool connected = true;
	char *t;

	src.gwd_connected = &connected;
	syncd_apply_stats_record(&a, -ENOENT, 0, 0, 0, 1000);
	syncd_apply_stats_record(&a, 0, 5, 1, 2, 3 * GW_NSEC_PER_MSEC);
	syncd_apply_stats_record(&a, -EPROTO, 9, 9, 9, 7 * GW_NSEC_PER_MSEC);
	syncd_apply_stats_record(&a, 0, 1, 0, 0, 2 * GW_NSEC_PER_MSEC);
	t = scrape(&src, 0);
	cr_expect_eq(num_of(t, "syncd_gwd_applies_total{result=\"ok\"}"), 2);
	cr_expect_eq(num_of(t, "syncd_gwd_applies_total{result=\"gwd_absent\"}"), 1);
	cr_expect_eq(num_of(t, "syncd_gwd_applies_total{result=\"error\"}"), 1);
	cr_expect_eq(num_of(t, "syncd_gwd_applied_peers_total{change=\"added\"}"), 6);
	cr_expect_eq(num_of(t, "syncd_gwd_applied_peers_total{change=\"removed\"}"), 1);
	cr_expect_eq(num_of(t, "syncd_gwd_applied_peers_total{change=\"changed\"}"), 2);
	cr_expect_eq(num_of(t, "syncd_gwd_apply_last_duration_seconds"), 0.002);
	cr_expect_gt(num_of(t, "syncd_gwd_apply_last_success_timestamp_seconds"), 1.6e9);
	cr_expect_eq(num_of(t, "syncd_gwd_connected"), 1);
	cr_expect_eq(num_of(t, "syncd_gwd_apply_timeouts_total"), 0);
	cr_expect_eq(num_of(t, "syncd_gwd_contested_allowed_ips"), 0);
	free(t);
	a.timeouts = 2;
	a.reconciles = 4;
	a.last_reconcile_ns = 1500 * GW_NSEC_PER_MSEC;
	a.pending = 17;
	a.conflicts = 3;
	t = scrape(&src, 0);
	cr_expect_eq(num_of(t, "syncd_gwd_apply_timeouts_total"), 2);
	cr_expect_eq(num_of(t, "syncd_gwd_reconciles_total"), 4);
	cr_expect_eq(num_of(t, "syncd_gwd_reconcile_last_duration_seconds"), 1.5);
	cr_expect_eq(num_of(t, "syncd_gwd_apply_pending_peers"), 17);
	cr_expect_eq(num_of(t, "syncd_gwd_contested_allowed_ips"), 3);
	cr_expect_eq(num_of(t, "syncd_rejected_messages_total{reason=\"zap_denied\"}"), 0);
	cr_expect_eq(promtool_check(t), 0, "promtool rejected:\n%s", t);
	free(t);
}

static int relay_to_gwd(void *arg, uint8_t *buf, size_t len)
{
	(void)arg;
	gw_wipe(buf, len);
	free(buf);
	return -ENOTCONN;
}

static int relay_publish(void *arg, Gwcluster__Envelope *env)
{
	(void)arg;
	(void)env;
	return 0;
}

static int relay_request(void *arg, uint8_t to, Gwcluster__Envelope *env)
{
	(void)arg;
	(void)to;
	(void)env;
	return 0;
}

static void relay_nop(void *arg)
{
	(void)arg;
}

static void relay_ready(void *arg, enum syncd_ready v)
{
	(void)arg;
	(void)v;
}

/* The role gauge follows gwctl role; each change is counted by the role taken. */
Test(syncd_metrics, relay_role)
{
	struct syncd_relay_io io = {relay_to_gwd, relay_publish, relay_request, relay_nop,
				    relay_nop,	  relay_ready,	 NULL};
	struct syncd_relay_config cfg = {1, ids, NODES, false, DEAD_MS};
	Gwcluster__RoleRequest req = GWCLUSTER__ROLE_REQUEST__INIT;
	const Gwcluster__SessionSummary *sum;
	struct syncd_metrics_source src = {0};
	struct syncd_relay *r;
	char msg[256], *t;

	cr_assert_eq(syncd_relay_new(&r, &cfg, &nodes[0].clk.clock, &io), 0);
	src.relay = r;
	t = scrape(&src, 0);
	cr_expect_eq(num_of(t, "syncd_role{role=\"unknown\"}"), 1);
	cr_expect_eq(num_of(t, "syncd_ready"), 0);
	cr_expect_eq(num_of(t, "syncd_ready_state"), SYNCD_READY_CONFIG);
	cr_expect_eq(num_of(t, "syncd_gwd_subscribed"), 0);
	free(t);
	req.action = GWCLUSTER__ROLE_REQUEST__ACTION__MASTER;
	req.has_force = req.force = true;
	(void)syncd_relay_role(r, &req, &sum, msg, sizeof(msg)); /* remembered, gwd absent */
	req.action = GWCLUSTER__ROLE_REQUEST__ACTION__BACKUP;
	(void)syncd_relay_role(r, &req, &sum, msg, sizeof(msg));
	(void)syncd_relay_role(r, &req, &sum, msg, sizeof(msg)); /* no change */
	req.action = GWCLUSTER__ROLE_REQUEST__ACTION__MASTER;
	(void)syncd_relay_role(r, &req, &sum, msg, sizeof(msg));
	t = scrape(&src, 0);
	cr_expect_eq(num_of(t, "syncd_role{role=\"master\"}"), 1);
	cr_expect_eq(num_of(t, "syncd_role{role=\"backup\"}"), 0);
	cr_expect_eq(num_of(t, "syncd_role_changes_total{role=\"master\"}"), 2);
	cr_expect_eq(num_of(t, "syncd_role_changes_total{role=\"backup\"}"), 1);
	cr_expect_eq(num_of(t, "syncd_role_changes_total{role=\"fault\"}"), 0);
	cr_expect_eq(promtool_check(t), 0, "promtool rejected:\n%s", t);
	free(t);
	syncd_relay_free(r);
}
