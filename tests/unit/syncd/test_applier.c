// SPDX-License-Identifier: MIT
/*
 * The incremental applier (syncd_applier_*) on a real event loop, a real
 * store (tmpfs) and a real daemon in a private network namespace:
 * wireguard-go by default, GW_APPLY_DAEMON=path/to/gwd for gwd. The result
 * is checked with `wg show IFNAME dump` (wireguard-tools). A hung daemon is
 * a real one stopped with SIGSTOP. The stats=1 client (relay.h) reads a real
 * gwd on the same loop.
 */
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

#include "apply.h"
#include "relay.h"
#include "gw/crypto.h"
#include "gw/key.h"
#include "gw/log.h"
#include "gw/loop.h"
#include "store.h"
#include "support.h"

static char dir[64];
static struct gw_loop *loop;
static struct syncd_store *store;
static struct syncd_applier *ap;
static unsigned converged_calls;
static const char *daemon_bin; /* NULL: GW_APPLY_DAEMON, or wireguard-go */

static void daemon_start(void)
{
	wgd_start(daemon_bin);
}

static void setup(void)
{
	wgd_setup("gwal");
	gw_log_init("test", GW_LOG_WARN, GW_LOG_STDERR);
	daemon_start();
	snprintf(dir, sizeof(dir), "/dev/shm/syncd-applier-XXXXXX");
	cr_assert(mkdtemp(dir));
	cr_assert_eq(syncd_store_open(&store, dir), 0);
	cr_assert_eq(gw_loop_new(&loop, NULL), 0);
}

static void teardown(void)
{
	char cmd[128];

	syncd_applier_close(ap);
	ap = NULL;
	syncd_store_close(store);
	store = NULL;
	if (loop)
		gw_loop_free(loop);
	loop = NULL;
	wgd_kill();
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (dir[0])
		(void)!system(cmd);
}

TestSuite(applier, .init = setup, .fini = teardown, .timeout = 90);

/* --- The store ------------------------------------------------------------ */

static void key_of(uint8_t key[32], unsigned n)
{
	uint8_t priv[32];

	memset(priv, 0, sizeof(priv));
	priv[5] = (uint8_t)(n >> 8); /* away from the clamped bits */
	priv[6] = (uint8_t)n;
	priv[7] = 0x40;
	cr_assert(gw_x25519_public(key, priv)); /* real keys: wireguard-go checks them */
}

static void put_row(const uint8_t *key, size_t key_len, Gwcluster__Record *rec, bool deleted)
{
	size_t len = gwcluster__record__get_packed_size(rec);
	uint8_t *blob = malloc(len + 1);
	struct syncd_row row = {
	    .key = key,
	    .key_len = key_len,
	    .hlc = rec->hlc,
	    .writer = rec->writer,
	    .origin = rec->writer,
	    .deleted = deleted,
	    .blob = blob,
	    .blob_len = len,
	};

	cr_assert(blob);
	gwcluster__record__pack(rec, blob);
	cr_assert_eq(syncd_store_put(store, &row), 0);
	free(blob);
}

/* Peer n with allowed IPs (comma-separated), keepalive and record stamp hlc. */
static void put(unsigned n, const char *aips, uint32_t ka, uint64_t hlc)
{
	Gwcluster__Record rec = GWCLUSTER__RECORD__INIT;
	Gwcluster__PeerConfig pc = GWCLUSTER__PEER_CONFIG__INIT;
	char *list = aips ? strdup(aips) : NULL, *save = NULL, *ips[16];
	uint8_t key[32];

	key_of(key, n);
	pc.public_key.data = key;
	pc.public_key.len = 32;
	for (char *s = list ? strtok_r(list, ",", &save) : NULL; s; s = strtok_r(NULL, ",", &save))
		ips[pc.n_allowed_ips++] = s;
	pc.allowed_ips = ips;
	pc.has_persistent_keepalive = ka != 0;
	pc.persistent_keepalive = ka;
	rec.hlc = hlc;
	rec.writer = 1;
	rec.item_case = GWCLUSTER__RECORD__ITEM_PEER;
	rec.peer = &pc;
	put_row(key, 32, &rec, false);
	if (ap)
		syncd_applier_changed(ap, key, 32);
	free(list);
}

static void del(unsigned n, uint64_t hlc)
{
	Gwcluster__Record rec = GWCLUSTER__RECORD__INIT;
	Gwcluster__PeerTombstone t = GWCLUSTER__PEER_TOMBSTONE__INIT;
	uint8_t key[32];

	key_of(key, n);
	t.public_key.data = key;
	t.public_key.len = 32;
	rec.hlc = hlc;
	rec.writer = 1;
	rec.item_case = GWCLUSTER__RECORD__ITEM_PEER_DELETED;
	rec.peer_deleted = &t;
	put_row(key, 32, &rec, true);
	if (ap)
		syncd_applier_changed(ap, key, 32);
}

/* --- The applier and the loop --------------------------------------------- */

static void on_converged(void *arg, bool added)
{
	(void)arg;
	(void)added;
	converged_calls++;
}

static void open_applier(unsigned timeout_ms, unsigned batch, unsigned reconcile_ms)
{
	struct syncd_applier_config c = {
	    .ifname = wgd_if,
	    .store = store,
	    .converged = on_converged,
	    .timeout_ms = timeout_ms,
	    .batch_peers = batch,
	    .reconcile_min_ms = reconcile_ms ? reconcile_ms : 60000,
	};

	cr_assert_eq(syncd_applier_open(&ap, &c, loop), 0);
	syncd_applier_enable(ap, true);
}

static const struct syncd_apply_stats *stats(void)
{
	return syncd_applier_stats(ap);
}

/* A timer every 10 ms: the longest gap between its runs shows a blocked loop. */
struct ticker {
	struct gw_timer t;
	uint64_t last, max_gap;
};

static void on_tick(struct gw_loop *l, struct gw_timer *t, void *arg)
{
	struct ticker *k = arg;
	uint64_t now = gw_loop_now(l);

	if (k->last && now - k->last > k->max_gap)
		k->max_gap = now - k->last;
	k->last = now;
	gw_timer_arm_in(l, t, 10 * GW_NSEC_PER_MSEC);
}

static void run_ms(unsigned ms)
{
	uint64_t end = gw_loop_now(loop) + ms * GW_NSEC_PER_MSEC;

	while (gw_loop_now(loop) < end)
		cr_assert_eq(gw_loop_run_once(loop, 5), 0);
}

static bool run_until_converged(unsigned ms)
{
	uint64_t end = gw_loop_now(loop) + ms * GW_NSEC_PER_MSEC;

	while (gw_loop_now(loop) < end) {
		cr_assert_eq(gw_loop_run_once(loop, 5), 0);
		if (stats()->converged)
			return true;
	}
	return false;
}

/* --- What the daemon has -------------------------------------------------- */

/* "N:ALLOWED-IPS:KEEPALIVE" of the given peers, in the order of n, for comparison. */
static char *wg_state(const unsigned *ns, size_t count)
{
	char cmd[64], line[4096], *out = calloc(1, 65536);
	FILE *f;

	snprintf(cmd, sizeof(cmd), "wg show %s dump", wgd_if);
	for (size_t i = 0; i < count; i++) {
		char want[GW_KEY_B64_LEN + 1], *entry = NULL;
		uint8_t key[32];

		key_of(key, ns[i]);
		gw_key_to_base64(want, key);
		f = popen(cmd, "r");
		cr_assert(f);
		cr_assert(fgets(line, sizeof(line), f));
		while (fgets(line, sizeof(line), f)) {
			char *field[8], *save = NULL;
			size_t k = 0;

			line[strcspn(line, "\n")] = '\0';
			for (char *p = strtok_r(line, "\t", &save); p && k < 8;
			     p = strtok_r(NULL, "\t", &save))
				field[k++] = p;
			if (k == 8 && !strcmp(field[0], want) && !entry)
				wgd_sort_list(field[3]);
			if (k == 8 && !strcmp(field[0], want) && !entry)
				cr_assert(asprintf(&entry, "%u:%s:%s ", ns[i], field[3], field[7]) >
					  0);
		}
		pclose(f);
		strcat(out, entry ? entry : "");
		if (!entry)
			sprintf(out + strlen(out), "%u:absent ", ns[i]);
		free(entry);
	}
	return out;
}

static unsigned wg_peer_count(void)
{
	char cmd[96];
	unsigned n = 0;
	FILE *f;

	snprintf(cmd, sizeof(cmd), "wg show %s peers | wc -l", wgd_if);
	f = popen(cmd, "r");
	cr_assert(f);
	cr_assert_eq(fscanf(f, "%u", &n), 1);
	pclose(f);
	return n;
}

#define EXPECT_WG(want, ...)                                              \
	do {                                                              \
		static const unsigned ns_[] = {__VA_ARGS__};              \
		char *got_ = wg_state(ns_, sizeof(ns_) / sizeof(ns_[0])); \
		cr_expect_str_eq(got_, want);                             \
		free(got_);                                               \
	} while (0)

/* --- Tests ---------------------------------------------------------------- */

Test(applier, applies_the_store_then_only_changes)
{
	uint64_t applies;

	put(1, "198.18.0.1/32", 25, 10);
	put(2, "198.18.0.2/32,2001:db8:f::2/128", 0, 10);
	put(3, "198.18.3.0/24", 0, 10);
	del(4, 10);
	open_applier(0, 0, 0);
	cr_assert(run_until_converged(5000), "not converged");
	EXPECT_WG("1:198.18.0.1/32:25 2:198.18.0.2/32,2001:db8:f::2/128:off 3:198.18.3.0/24:off "
		  "4:absent ",
		  1, 2, 3, 4);
	cr_expect_eq(stats()->reconciles, 1);
	cr_expect_eq(stats()->added, 3);
	cr_expect_eq(stats()->peers, 3);
	cr_expect_eq(converged_calls, 1);
	applies = stats()->sets;

	/* One record changes: one set, no new read of the daemon's state. */
	put(2, "198.18.0.2/32", 5, 11);
	cr_expect(!stats()->converged);
	cr_assert(run_until_converged(5000));
	EXPECT_WG("2:198.18.0.2/32:5 ", 2);
	cr_expect_eq(stats()->sets, applies + 1);
	cr_expect_eq(stats()->reconciles, 1);
	cr_expect_eq(stats()->changed, 1);
	cr_expect_gt(stats()->last_ns, 0);
	/* A removal and an addition together: one transaction. */
	del(3, 12);
	put(5, "198.18.0.5/32", 0, 12);
	cr_assert(run_until_converged(5000));
	EXPECT_WG("3:absent 5:198.18.0.5/32:off ", 3, 5);
	cr_expect_eq(stats()->sets, applies + 2);
	cr_expect_eq(stats()->pending, 0);
	cr_expect_eq(stats()->failed + stats()->absent, 0);
	cr_expect_eq(wg_peer_count(), 3);
}

Test(applier, nothing_before_enabled)
{
	struct syncd_applier_config c = {.ifname = wgd_if, .store = store};
	char pub[GW_KEY_B64_LEN + 1], args[128];
	uint8_t key[32];

	key_of(key, 99);
	gw_key_to_base64(pub, key);
	snprintf(args, sizeof(args), "peer %s allowed-ips 198.18.9.9/32", pub);
	wgd_wg_set(args);
	cr_assert_eq(syncd_applier_open(&ap, &c, loop), 0);
	run_ms(500);
	cr_expect_eq(wg_peer_count(), 1, "a disabled applier stripped the daemon");
	cr_expect_eq(stats()->sets, 0);
	syncd_applier_enable(ap, true);
	cr_assert(run_until_converged(5000));
	cr_expect_eq(wg_peer_count(), 0);
}

Test(applier, batches_bounded)
{
	enum { N = 2500 };
	char ip[32];

	for (unsigned i = 0; i < N; i++) {
		snprintf(ip, sizeof(ip), "198.18.%u.%u/32", i / 250, i % 250 + 1);
		put(i, ip, 0, 1);
	}
	open_applier(0, 1000, 0);
	cr_assert(run_until_converged(20000));
	cr_expect_eq(wg_peer_count(), N);
	cr_expect_eq(stats()->sets, 3, "2500 peers in sets of at most 1000");
	cr_expect_eq(stats()->added, N);
}

Test(applier, drift_and_daemon_restart_reconciled)
{
	char pub[GW_KEY_B64_LEN + 1], args[128];
	uint8_t key[32];
	uint64_t failures;

	put(1, "198.18.0.1/32", 0, 10);
	put(2, "198.18.0.2/32", 0, 10);
	open_applier(0, 0, 0);
	cr_assert(run_until_converged(5000));

	/* Changed behind the applier's back: put right by a reconciliation. */
	key_of(key, 1);
	gw_key_to_base64(pub, key);
	snprintf(args, sizeof(args), "peer %s remove", pub);
	wgd_wg_set(args);
	syncd_applier_reconcile(ap);
	cr_assert(run_until_converged(5000));
	EXPECT_WG("1:198.18.0.1/32:off 2:198.18.0.2/32:off ", 1, 2);
	cr_expect_eq(stats()->reconciles, 2);

	/* The daemon restarts empty: noticed on the connection, nobody has to tell. */
	failures = stats()->absent + stats()->failed;
	wgd_kill();
	run_ms(300);
	cr_expect(!stats()->converged);
	daemon_start();
	cr_assert(run_until_converged(5000), "not reconciled after the restart");
	EXPECT_WG("1:198.18.0.1/32:off 2:198.18.0.2/32:off ", 1, 2);
	cr_expect_geq(stats()->absent + stats()->failed, failures + 1,
		      "the absent daemon was counted");
	cr_expect(stats()->gwd_connected);
}

Test(applier, hung_daemon_does_not_block_and_nothing_is_lost)
{
	struct ticker tk = {0};
	uint64_t failures;

	put(1, "198.18.0.1/32", 0, 10);
	open_applier(1000, 0, 0);
	cr_assert(run_until_converged(5000));
	gw_timer_init(&tk.t, on_tick, &tk);
	gw_timer_arm_in(loop, &tk.t, 0);

	/* Hung: the connection is accepted by the kernel, nothing is answered. */
	wgd_pause();
	put(2, "198.18.0.2/32", 0, 11);
	failures = stats()->failed;
	run_ms(2500);
	cr_expect_geq(stats()->timeouts, 1, "no timeout while the daemon was stopped");
	cr_expect_gt(stats()->failed, failures);
	cr_expect_geq(stats()->pending, 1, "the change was dropped");
	cr_expect(!stats()->converged);
	/* Waiting for gwd would hold it for the whole timeout (1 s) or more. */
	cr_expect_lt(tk.max_gap, 250 * GW_NSEC_PER_MSEC, "the loop was blocked for %llu ms",
		     (unsigned long long)(tk.max_gap / GW_NSEC_PER_MSEC));

	/* Back: the retry applies what was pending. */
	wgd_resume();
	cr_assert(run_until_converged(15000), "not applied after the daemon resumed");
	EXPECT_WG("1:198.18.0.1/32:off 2:198.18.0.2/32:off ", 1, 2);
	cr_expect_eq(stats()->pending, 0);
	gw_timer_cancel(loop, &tk.t);
}

Test(applier, contested_allowed_ip_does_not_flap)
{
	uint64_t applies, reconciles;

	/* Peer 2's record is newer: it gets 198.18.7.0/24; peer 1 keeps the rest. */
	put(1, "198.18.0.1/32,198.18.7.0/24", 0, 100);
	put(2, "198.18.0.2/32,198.18.7.0/24", 0, 200);
	open_applier(0, 0, 100);
	cr_assert(run_until_converged(5000));
	EXPECT_WG("1:198.18.0.1/32:off 2:198.18.0.2/32,198.18.7.0/24:off ", 1, 2);
	cr_expect_eq(stats()->conflicts, 1);

	/* Reconciled again and again: nothing to send, nothing moves. */
	applies = stats()->sets;
	reconciles = stats()->reconciles;
	for (int i = 0; i < 5; i++) {
		syncd_applier_reconcile(ap);
		cr_assert(run_until_converged(5000));
		run_ms(50);
	}
	cr_expect_geq(stats()->reconciles, reconciles + 5);
	cr_expect_eq(stats()->sets, applies, "the contested prefix was sent again");
	EXPECT_WG("1:198.18.0.1/32:off 2:198.18.0.2/32,198.18.7.0/24:off ", 1, 2);

	/* Peer 1 written again, now newest: the prefix moves, once. */
	put(1, "198.18.0.1/32,198.18.7.0/24", 0, 300);
	cr_assert(run_until_converged(5000));
	EXPECT_WG("1:198.18.0.1/32,198.18.7.0/24:off 2:198.18.0.2/32:off ", 1, 2);
	cr_expect_eq(stats()->sets, applies + 1);
	del(1, 400);
	cr_assert(run_until_converged(5000));
	EXPECT_WG("1:absent 2:198.18.0.2/32,198.18.7.0/24:off ", 1, 2);
	cr_expect_eq(stats()->conflicts, 0);
}

/* --- gwd's stats=1 on the loop ------------------------------------------- */

#ifdef GW_GWD_BIN
struct stats_result {
	unsigned calls;
	int rc;
	struct syncd_gwd_stats st;
};

static void stats_cb(void *arg, int rc, const struct syncd_gwd_stats *st, uint64_t took_ns)
{
	struct stats_result *r = arg;

	(void)took_ns;
	r->calls++;
	r->rc = rc;
	cr_assert_eq(st != NULL, rc == 0);
	if (st)
		r->st = *st;
}

/* Runs the loop until the client has answered `calls` times; bounded. */
static void pump_stats(struct stats_result *r, unsigned calls, unsigned max_ms)
{
	for (unsigned waited = 0; r->calls < calls; waited += 10) {
		cr_assert_lt(waited, max_ms, "no stats answer within %u ms", max_ms);
		cr_assert_geq(gw_loop_run_once(loop, 10), 0);
	}
}

static void gwd_setup(void)
{
	daemon_bin = GW_GWD_BIN;
	setup();
}

TestSuite(gwd_stats, .init = gwd_setup, .fini = teardown, .timeout = 60);

/* Answers on one connection, query after query; a bad name and NULL fn refused. */
Test(gwd_stats, query)
{
	struct syncd_gwd_stats_client *c;
	struct stats_result r = {0};
	char cmd[256];
	uint8_t key[32];
	char b64[GW_KEY_B64_LEN + 1];

	cr_assert_eq(syncd_gwd_stats_client_open(&c, loop, "../x", stats_cb, &r), -EINVAL);
	cr_assert_eq(syncd_gwd_stats_client_open(&c, loop, wgd_if, NULL, &r), -EINVAL);
	for (unsigned n = 1; n <= 3; n++) {
		key_of(key, n);
		gw_key_to_base64(b64, key);
		snprintf(cmd, sizeof(cmd), "wg set %s peer %s allowed-ips 198.18.0.%u/32", wgd_if,
			 b64, n);
		cr_assert_eq(system(cmd), 0, "%s", cmd);
	}
	cr_assert_eq(syncd_gwd_stats_client_open(&c, loop, wgd_if, stats_cb, &r), 0);
	cr_assert_eq(syncd_gwd_stats_client_query(c), 0);
	cr_assert(syncd_gwd_stats_client_busy(c));
	cr_assert_eq(syncd_gwd_stats_client_query(c), -EBUSY);
	pump_stats(&r, 1, 5000);
	cr_expect_eq(r.rc, 0);
	cr_expect_eq(r.st.peers, 3);
	cr_expect_not(r.st.cluster, "gwd runs standalone here");
	cr_assert_not(syncd_gwd_stats_client_busy(c));
	cr_assert_eq(syncd_gwd_stats_client_query(c), 0);
	pump_stats(&r, 2, 5000);
	cr_expect_eq(r.rc, 0);
	cr_expect_eq(r.st.peers, 3);
	syncd_gwd_stats_client_close(c);
}

/* A hung gwd: the loop runs on (its timers fire) and the query fails after 2 s. */
Test(gwd_stats, hung_gwd_does_not_block_the_loop)
{
	struct syncd_gwd_stats_client *c;
	struct stats_result r = {0};
	struct ticker tk = {0};
	uint64_t start;

	cr_assert_eq(syncd_gwd_stats_client_open(&c, loop, wgd_if, stats_cb, &r), 0);
	gw_timer_init(&tk.t, on_tick, &tk);
	cr_assert_eq(gw_timer_arm_in(loop, &tk.t, 0), 0);
	wgd_pause();
	start = gw_loop_now(loop);
	cr_assert_eq(syncd_gwd_stats_client_query(c), 0, "the query is sent without waiting");
	pump_stats(&r, 1, 6000);
	cr_expect_eq(r.rc, -ETIMEDOUT);
	cr_expect_geq(gw_loop_now(loop) - start, 1900 * GW_NSEC_PER_MSEC, "gave up early");
	/* A blocking read would hold the loop for the whole 2 s timeout. */
	cr_expect_lt(tk.max_gap, 250 * GW_NSEC_PER_MSEC, "the loop was blocked for %llu ms",
		     (unsigned long long)(tk.max_gap / GW_NSEC_PER_MSEC));
	wgd_resume();
	cr_assert_eq(syncd_gwd_stats_client_query(c), 0);
	pump_stats(&r, 2, 5000);
	cr_expect_eq(r.rc, 0, "answers again once gwd runs: %d", r.rc);
	gw_timer_cancel(loop, &tk.t);
	syncd_gwd_stats_client_close(c);
}

/* No gwd: refused at once, without a callback. */
Test(gwd_stats, no_gwd)
{
	struct syncd_gwd_stats_client *c;
	struct stats_result r = {0};

	cr_assert_eq(syncd_gwd_stats_client_open(&c, loop, "nosuchgwd0", stats_cb, &r), 0);
	cr_expect_eq(syncd_gwd_stats_client_query(c), -ENOENT);
	cr_expect_eq(r.calls, 0);
	syncd_gwd_stats_client_close(c);
}
#endif
