// SPDX-License-Identifier: MIT
/*
 * The incremental applier (apply.h): the store's changes and gwd's UAPI on
 * one gw_loop, in slices.
 *
 * One "work" timer does whatever local work is due, a bounded slice at a
 * time, and re-arms itself for now while more remains, so I/O and other
 * timers run between slices: first the initial read of the store, then
 * (while no UAPI operation is outstanding) the records reported changed,
 * then the installation of a get=1 reply, then the next set batch. The
 * desired side changes only while no operation is outstanding, so a batch's
 * outcome applies to the state it was planned from.
 *
 * At most one UAPI operation is outstanding on the one connection
 * (uapi_conn.h), which fails it when gwd makes no progress for timeout_ms.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "apply.h"
#include "apply_int.h"
#include "gw/crypto.h"
#include "gw/log.h"
#include "gw/loop.h"
#include "store.h"
#include "uapi_conn.h"

enum {
	IFNAME_MAX = SYNCD_UAPI_IFNAME_MAX,
	LOAD_SLICE = 256,	/* records read from the store per step */
	RELOAD_SLICE = 64,	/* changed records re-read per step */
	INSTALL_SLICE = 1024,	/* steps of a get reply's installation per step */
	EXAMINE_SLICE = 2048,	/* queued peers compared per batch */
	SLICE_NS = 4 * 1000000, /* one turn of work runs at most about this long */
	STORE_RETRY_MS = 1000,	/* after a store error */
	LOAD_KEY_MAX = 64,	/* stored keys are 32 bytes or "iface" */
};

enum op { OP_NONE, OP_GET, OP_SET };

struct keyq {
	uint8_t (*k)[GW_KEY_LEN];
	size_t head, len, cap;
};

struct syncd_applier {
	struct syncd_applier_config cfg;
	char ifname[IFNAME_MAX + 1];
	struct gw_loop *loop;
	struct ap_state *st;
	struct syncd_apply_stats stats;
	bool enabled;
	/* The store's side. */
	bool loading;
	uint8_t load_after[LOAD_KEY_MAX];
	size_t load_after_len;
	struct keyq reload;
	bool reload_iface;
	/* gwd's side. */
	struct syncd_uapi_conn conn;
	bool need_full, full_again, installing, absent_logged, failing;
	/* A round: from the first operation after settling to the next settling; logged then. */
	bool round_full, round_log;
	uint64_t round_start;
	enum op op;
	struct sbuf out;
	struct dev_state *in;
	struct dev_state *dump;
	struct ap_install inst;
	struct ap_batch batch;
	uint64_t op_start, full_start;
	unsigned retry_ms, failures_in_row;
	bool added_since;
	size_t round_added, round_removed, round_changed, round_sets;
	struct gw_timer work, retry, periodic;
};

static struct gw_ratelimit fail_rl = GW_RATELIMIT_INIT(30 * GW_NSEC_PER_SEC, 3);
static struct gw_ratelimit store_rl = GW_RATELIMIT_INIT(30 * GW_NSEC_PER_SEC, 3);

void syncd_apply_stats_record(struct syncd_apply_stats *st, int rc, size_t added, size_t removed,
			      size_t changed, uint64_t duration_ns)
{
	struct timespec now;

	if (rc == -ENOENT || rc == -ECONNREFUSED) {
		st->absent++;
		return;
	}
	st->last_ns = duration_ns;
	if (rc) {
		st->failed++;
		return;
	}
	st->ok++;
	st->added += added;
	st->removed += removed;
	st->changed += changed;
	if (!clock_gettime(CLOCK_REALTIME, &now))
		st->last_ok_time = (double)now.tv_sec + (double)now.tv_nsec / 1e9;
}

static uint64_t now_ns(const struct syncd_applier *a)
{
	return gw_clock_mono_ns(gw_loop_clock(a->loop));
}

static void kick(struct syncd_applier *a)
{
	if (!gw_timer_pending(&a->work) && gw_timer_arm_in(a->loop, &a->work, 0))
		gw_warn("apply: cannot arm a timer");
}

static void unconverged(struct syncd_applier *a)
{
	a->stats.converged = false;
}

/* --- The store's side ----------------------------------------------------- */

static int keyq_push(struct keyq *q, const uint8_t *key)
{
	if (q->len == q->cap) {
		size_t cap = q->cap ? 2 * q->cap : 256;
		uint8_t(*k)[GW_KEY_LEN] = malloc(cap * GW_KEY_LEN);

		if (!k)
			return -ENOMEM;
		for (size_t i = 0; i < q->len; i++)
			memcpy(k[i], q->k[(q->head + i) % q->cap], GW_KEY_LEN);
		free(q->k);
		q->k = k;
		q->cap = cap;
		q->head = 0;
	}
	memcpy(q->k[(q->head + q->len++) % q->cap], key, GW_KEY_LEN);
	return 0;
}

static const uint8_t *keyq_front(const struct keyq *q)
{
	return q->len ? q->k[q->head] : NULL;
}

static void keyq_pop(struct keyq *q)
{
	q->head = (q->head + 1) % q->cap;
	q->len--;
}

void syncd_applier_changed(struct syncd_applier *a, const uint8_t *key, size_t key_len)
{
	if (key_len == strlen(SYNCD_IFACE_KEY) && !memcmp(key, SYNCD_IFACE_KEY, key_len)) {
		a->reload_iface = true;
	} else if (key_len == GW_KEY_LEN) {
		if (keyq_push(&a->reload, key)) {
			/* Lost track of one key: read everything again instead. */
			gw_log_rl(&store_rl, GW_LOG_ERR,
				  "apply: out of memory; reloading the store");
			a->loading = true;
			a->load_after_len = 0;
		}
	} else {
		return;
	}
	unconverged(a);
	kick(a);
}

/* A stored record's item into the state: a peer, a tombstone or the interface. */
static int want_record(struct syncd_applier *a, const uint8_t *key, size_t key_len,
		       const uint8_t *blob, size_t len, bool deleted, uint64_t hlc)
{
	Gwcluster__Record *rec = NULL;
	int rc = 0;

	if (!deleted) {
		rec = gwcluster__record__unpack(NULL, len, blob);
		if (!rec)
			gw_log_rl(&store_rl, GW_LOG_ERR, "apply: a stored record is corrupt");
	}
	if (key_len == GW_KEY_LEN) {
		const Gwcluster__PeerConfig *pc = NULL;

		if (rec && rec->item_case == GWCLUSTER__RECORD__ITEM_PEER)
			pc = rec->peer;
		rc = ap_state_want(a->st, key, pc, hlc);
	} else {
		ap_state_want_iface(a->st, rec && rec->item_case == GWCLUSTER__RECORD__ITEM_IFACE
					       ? rec->iface
					       : NULL);
	}
	if (rec) {
		if (rec->item_case == GWCLUSTER__RECORD__ITEM_PEER && rec->peer->has_preshared_key)
			gw_wipe(rec->peer->preshared_key.data, rec->peer->preshared_key.len);
		gwcluster__record__free_unpacked(rec, NULL);
	}
	return rc;
}

static int load_row(void *arg, const struct syncd_row *row)
{
	struct syncd_applier *a = arg;
	bool iface = row->key_len == strlen(SYNCD_IFACE_KEY) &&
		     !memcmp(row->key, SYNCD_IFACE_KEY, row->key_len);

	if (row->key_len > LOAD_KEY_MAX)
		return -EINVAL; /* the walk could not go past it */
	memcpy(a->load_after, row->key, row->key_len);
	a->load_after_len = row->key_len;
	if (row->key_len != GW_KEY_LEN && !iface)
		return 0;
	if (want_record(a, row->key, row->key_len, row->blob, row->blob_len, false, row->hlc) &&
	    keyq_push(&a->reload, row->key))
		return -ENOMEM;
	return 0;
}

/* One slice of the initial read; false when the store failed. */
static bool load_slice(struct syncd_applier *a)
{
	size_t visited;
	int rc = syncd_store_scan(a->cfg.store, a->load_after, a->load_after_len, LOAD_SLICE,
				  load_row, a, &visited);

	if (rc) {
		gw_log_rl(&store_rl, GW_LOG_ERR, "apply: cannot read the stored peers: %s",
			  strerror(-rc));
		return false;
	}
	if (visited < LOAD_SLICE) {
		a->loading = false;
		gw_dbg("apply: %zu stored peers read", ap_state_wanted(a->st));
	}
	return true;
}

static int reload_one(struct syncd_applier *a, const uint8_t *key, size_t len)
{
	struct syncd_row row;
	int rc = syncd_store_get(a->cfg.store, key, len, &row);

	if (rc == -ENOENT)
		return want_record(a, key, len, NULL, 0, true, 0);
	if (rc)
		return rc;
	return want_record(a, key, len, row.blob, row.blob_len, row.deleted, row.hlc);
}

/* One slice of changed records; false when the store failed. */
static bool reload_slice(struct syncd_applier *a)
{
	int rc;

	if (a->reload_iface) {
		rc = reload_one(a, (const uint8_t *)SYNCD_IFACE_KEY, strlen(SYNCD_IFACE_KEY));
		if (rc)
			goto fail;
		a->reload_iface = false;
	}
	for (unsigned n = 0; n < RELOAD_SLICE && a->reload.len; n++) {
		rc = reload_one(a, keyq_front(&a->reload), GW_KEY_LEN);
		if (rc)
			goto fail;
		keyq_pop(&a->reload);
	}
	return true;
fail:
	gw_log_rl(&store_rl, GW_LOG_ERR, "apply: cannot read a changed record: %s", strerror(-rc));
	return false;
}

/* --- The connection ------------------------------------------------------- */

static bool absent(int rc)
{
	return rc == -ENOENT || rc == -ECONNREFUSED;
}

static void op_clear(struct syncd_applier *a)
{
	if (a->in) {
		ap_dev_free(a->in);
		free(a->in);
		a->in = NULL;
	}
	ap_sb_free(&a->out);
	a->op = OP_NONE;
}

static const char *op_name(const struct syncd_applier *a)
{
	return a->op == OP_GET ? "a read of its state" : "a change";
}

/*
 * Drops the operation in flight with its connection and any partial read:
 * a set's peers stay pending (the batch is handed back undone).
 */
static void abandon_op(struct syncd_applier *a)
{
	if (a->op == OP_SET)
		ap_state_batch_done(a->st, &a->batch, false);
	op_clear(a);
	syncd_uapi_conn_close(&a->conn);
	if (a->dump) {
		ap_dev_free(a->dump);
		free(a->dump);
		a->dump = NULL;
	}
}

/*
 * The operation (or the connection) failed: gwd's state is unknown again,
 * the batch's peers stay pending, and everything resumes with a full
 * reconciliation after the retry delay.
 */
static void fail(struct syncd_applier *a, int rc, const char *why)
{
	unsigned max = absent(rc) ? SYNCD_APPLY_RETRY_ABSENT_MAX_MS : SYNCD_APPLY_RETRY_MAX_MS;

	syncd_apply_stats_record(&a->stats, rc, 0, 0, 0,
				 a->op != OP_NONE ? now_ns(a) - a->op_start : 0);
	a->stats.timeouts += rc == -ETIMEDOUT;
	a->failures_in_row++;
	abandon_op(a);
	a->installing = false;
	a->need_full = true;
	a->round_log = true;
	unconverged(a);
	a->retry_ms = a->retry_ms ? 2 * a->retry_ms : SYNCD_APPLY_RETRY_MIN_MS;
	if (a->retry_ms > max)
		a->retry_ms = max;
	if (absent(rc)) {
		if (!a->absent_logged)
			gw_warn("syncd: gwd is not running on %s; will apply when it is",
				a->ifname);
		a->absent_logged = true;
	} else if (!a->failing) {
		gw_warn("syncd: gwd on %s: %s; retrying in %u ms", a->ifname, why, a->retry_ms);
	} else {
		gw_log_rl(&fail_rl, GW_LOG_WARN, "syncd: gwd on %s: %s (%u failures in a row)",
			  a->ifname, why, a->failures_in_row);
	}
	a->failing = true;
	a->stats.gwd_connected = !absent(rc) && rc != -ETIMEDOUT;
	if (gw_timer_arm_in(a->loop, &a->retry, (uint64_t)a->retry_ms * GW_NSEC_PER_MSEC))
		gw_warn("apply: cannot arm a timer");
}

static void fail_io(struct syncd_applier *a, int rc)
{
	char why[160];

	if (rc == -ETIMEDOUT)
		snprintf(why, sizeof(why), "no answer to %s within %u ms; connection closed",
			 op_name(a), a->cfg.timeout_ms);
	else if (rc == -EPIPE)
		snprintf(why, sizeof(why), "connection closed during %s", op_name(a));
	else if (rc == -EPROTO)
		snprintf(why, sizeof(why), "unparseable answer to %s", op_name(a));
	else
		snprintf(why, sizeof(why), "%s failed: %s", op_name(a), strerror(-rc));
	fail(a, rc, why);
}

static void recovered(struct syncd_applier *a)
{
	if (a->absent_logged)
		gw_info("syncd: gwd on %s is running", a->ifname);
	else if (a->failing)
		gw_info("syncd: gwd on %s answers again (after %u failed attempts)", a->ifname,
			a->failures_in_row);
	a->failing = a->absent_logged = false;
	a->failures_in_row = 0;
	a->retry_ms = 0;
	a->stats.gwd_connected = true;
}

/* Starts the request in a->out; on failure the caller fails the operation. */
static int start_op(struct syncd_applier *a, enum op op)
{
	a->op = op;
	a->op_start = now_ns(a);
	if (!a->round_start)
		a->round_start = a->op_start;
	a->in = calloc(1, sizeof(*a->in));
	if (!a->in)
		return -ENOMEM;
	return syncd_uapi_conn_request(&a->conn, a->out.p, a->out.len);
}

/* --- Operations ----------------------------------------------------------- */

static void start_get(struct syncd_applier *a)
{
	int rc;

	a->full_start = now_ns(a);
	ap_sb_printf(&a->out, "get=1\n\n");
	rc = a->out.oom ? -ENOMEM : start_op(a, OP_GET);
	if (rc) {
		a->op = OP_GET; /* also when the request could not be built */
		fail_io(a, rc);
	}
}

static void got_dump(struct syncd_applier *a)
{
	syncd_apply_stats_record(&a->stats, 0, 0, 0, 0, now_ns(a) - a->op_start);
	a->dump = a->in;
	a->in = NULL;
	op_clear(a);
	a->installing = true;
	memset(&a->inst, 0, sizeof(a->inst));
	kick(a);
}

static void got_set(struct syncd_applier *a)
{
	struct ap_batch *b = &a->batch;

	a->stats.sets++;
	syncd_apply_stats_record(&a->stats, 0, b->added, b->removed, b->changed,
				 now_ns(a) - a->op_start);
	a->added_since |= b->added > 0;
	a->round_added += b->added;
	a->round_removed += b->removed;
	a->round_changed += b->changed;
	a->round_sets++;
	ap_state_batch_done(a->st, b, true);
	op_clear(a);
	kick(a);
}

/* The whole answer is in. */
static void answered(struct syncd_applier *a)
{
	int rc = 0;

	if (a->in->err) {
		char why[120];

		snprintf(why, sizeof(why), "%s refused: %s", op_name(a), strerror((int)a->in->err));
		fail(a, (int)-a->in->err, why);
		return;
	}
	if (!rc && a->op == OP_SET && a->in->n)
		rc = -EPROTO; /* a set is answered with errno only */
	if (rc) {
		fail_io(a, rc);
		return;
	}
	recovered(a);
	if (a->op == OP_GET)
		got_dump(a);
	else
		got_set(a);
}

static int conn_feed(void *arg, const char *buf, size_t n)
{
	struct syncd_applier *a = arg;
	int rc = ap_dev_feed(a->in, buf, n);

	return rc ? rc : a->in->done;
}

static void conn_answered(void *arg)
{
	answered(arg);
}

static void conn_failed(void *arg, int rc)
{
	fail_io(arg, rc);
}

/* The connection closed while idle: gwd closed it (restarted?) or spoke out of turn. */
static void conn_idle_closed(void *arg, bool eof)
{
	struct syncd_applier *a = arg;

	a->need_full = true;
	a->round_log = true;
	unconverged(a);
	if (eof)
		gw_info("syncd: gwd on %s closed its configuration connection; reconciling",
			a->ifname);
	else
		gw_warn("syncd: unexpected input from gwd on %s; reconnecting", a->ifname);
	kick(a);
}

static const struct syncd_uapi_ops conn_ops = {
    .feed = conn_feed,
    .answered = conn_answered,
    .failed = conn_failed,
    .idle_closed = conn_idle_closed,
};

/* --- Work ------------------------------------------------------------------ */

static void schedule_periodic(struct syncd_applier *a, uint64_t took_ns)
{
	uint64_t period = took_ns * SYNCD_APPLY_RECONCILE_FACTOR;
	uint64_t min = (uint64_t)a->cfg.reconcile_min_ms * GW_NSEC_PER_MSEC;
	uint64_t max = (uint64_t)SYNCD_APPLY_RECONCILE_MAX_MS * GW_NSEC_PER_MSEC;

	if (period < min)
		period = min;
	if (period > max)
		period = max > min ? max : min;
	if (gw_timer_arm_in(a->loop, &a->periodic, period))
		gw_warn("apply: cannot arm a timer");
}

static void install_slice(struct syncd_applier *a)
{
	int rc = ap_state_install(a->st, a->dump, &a->inst, INSTALL_SLICE);
	uint64_t took;

	if (rc == 0)
		return;
	ap_dev_free(a->dump);
	free(a->dump);
	a->dump = NULL;
	a->installing = false;
	if (rc < 0) {
		fail(a, rc, rc == -EPROTO ? "a peer twice in its state" : "out of memory");
		return;
	}
	took = now_ns(a) - a->full_start;
	a->need_full = a->full_again; /* asked for while this one ran */
	a->full_again = false;
	a->stats.reconciles++;
	a->stats.last_reconcile_ns = took;
	a->round_full = true;
	schedule_periodic(a, took);
}

/* The next set batch, or only comparisons when nothing differs. */
static void batch_slice(struct syncd_applier *a)
{
	size_t max = a->cfg.batch_peers;
	int rc = ap_state_batch(a->st, &a->batch, max, EXAMINE_SLICE, &a->out);

	if (rc) {
		fail(a, rc, "out of memory planning a change");
		return;
	}
	if (!a->out.len)
		return;
	rc = start_op(a, OP_SET);
	if (rc)
		fail_io(a, rc);
}

/* One line per round, when it changed something (or followed a reconnection). */
static void log_round(struct syncd_applier *a)
{
	unsigned long long ms = (now_ns(a) - a->round_start) / GW_NSEC_PER_MSEC;

	if (a->round_full && (a->round_sets || a->round_log))
		gw_info("syncd: gwd on %s reconciled: %zu peers (%zu added, %zu removed, %zu "
			"changed, %zu transactions, %llu ms)",
			a->ifname, ap_state_wanted(a->st), a->round_added, a->round_removed,
			a->round_changed, a->round_sets, ms);
	else if (a->round_sets)
		gw_info("syncd: applied to %s: %zu added, %zu removed, %zu changed (%zu "
			"transactions, %llu ms)",
			a->ifname, a->round_added, a->round_removed, a->round_changed,
			a->round_sets, ms);
	a->round_full = a->round_log = false;
	a->round_start = 0;
	a->round_added = a->round_removed = a->round_changed = a->round_sets = 0;
}

/* Nothing left to do: gwd holds what the store does. */
static void settle(struct syncd_applier *a)
{
	if (a->round_start)
		log_round(a);
	if (a->stats.converged)
		return;
	a->stats.converged = true;
	if (a->cfg.converged)
		a->cfg.converged(a->cfg.arg, a->added_since);
	a->added_since = false;
}

enum step { STEP_IDLE, STEP_MORE, STEP_STORE_FAILED };

/* One slice of whatever is due. */
static enum step step(struct syncd_applier *a)
{
	if (a->loading)
		return load_slice(a) ? STEP_MORE : STEP_STORE_FAILED;
	if (a->op != OP_NONE)
		return STEP_IDLE; /* the connection carries on */
	if (a->installing) {
		install_slice(a);
		return STEP_MORE;
	}
	if (a->reload.len || a->reload_iface)
		return reload_slice(a) ? STEP_MORE : STEP_STORE_FAILED;
	if (!a->enabled || gw_timer_pending(&a->retry))
		return STEP_IDLE;
	if (a->need_full) {
		start_get(a);
		return STEP_IDLE;
	}
	if (ap_state_pending(a->st)) {
		batch_slice(a);
		return a->op == OP_NONE && !gw_timer_pending(&a->retry) ? STEP_MORE : STEP_IDLE;
	}
	settle(a);
	return STEP_IDLE;
}

static void on_work(struct gw_loop *loop, struct gw_timer *t, void *arg)
{
	struct syncd_applier *a = arg;
	uint64_t end = now_ns(a) + SLICE_NS;
	enum step s;

	do
		s = step(a);
	while (s == STEP_MORE && now_ns(a) < end);
	(void)syncd_applier_stats(a);
	if (s == STEP_MORE)
		kick(a);
	else if (s == STEP_STORE_FAILED) /* try again later rather than spin */
		gw_timer_arm_in(loop, t, (uint64_t)STORE_RETRY_MS * GW_NSEC_PER_MSEC);
}

static void on_retry(struct gw_loop *loop, struct gw_timer *t, void *arg)
{
	(void)loop;
	(void)t;
	kick(arg);
}

static void on_periodic(struct gw_loop *loop, struct gw_timer *t, void *arg)
{
	(void)loop;
	(void)t;
	syncd_applier_reconcile(arg);
}

/* --- Life ----------------------------------------------------------------- */

void syncd_applier_reconcile(struct syncd_applier *a)
{
	a->full_again = a->op == OP_GET || a->installing;
	a->need_full = true;
	unconverged(a);
	kick(a);
}

void syncd_applier_enable(struct syncd_applier *a, bool enabled)
{
	if (a->enabled == enabled)
		return;
	a->enabled = enabled;
	if (enabled)
		kick(a);
}

const struct syncd_apply_stats *syncd_applier_stats(struct syncd_applier *a)
{
	a->stats.peers = ap_state_wanted(a->st);
	a->stats.pending = ap_state_pending(a->st) + a->reload.len + a->reload_iface;
	a->stats.conflicts = ap_state_conflicts(a->st);
	return &a->stats;
}

int syncd_applier_open(struct syncd_applier **out, const struct syncd_applier_config *cfg,
		       struct gw_loop *loop)
{
	struct syncd_applier *a;
	int rc;

	if (!syncd_uapi_ifname_valid(cfg->ifname) || !cfg->store)
		return -EINVAL;
	a = calloc(1, sizeof(*a));
	if (!a)
		return -ENOMEM;
	rc = ap_state_new(&a->st);
	if (rc) {
		free(a);
		return rc;
	}
	a->cfg = *cfg;
	memcpy(a->ifname, cfg->ifname, strlen(cfg->ifname) + 1);
	a->cfg.ifname = a->ifname;
	if (!a->cfg.timeout_ms)
		a->cfg.timeout_ms = SYNCD_APPLY_TIMEOUT_MS;
	if (!a->cfg.batch_peers)
		a->cfg.batch_peers = SYNCD_APPLY_BATCH_PEERS;
	if (!a->cfg.reconcile_min_ms)
		a->cfg.reconcile_min_ms = SYNCD_APPLY_RECONCILE_MIN_MS;
	a->loop = loop;
	/* Cannot fail: the name and the timeout were checked. */
	(void)syncd_uapi_conn_init(&a->conn, loop, a->ifname, a->cfg.timeout_ms, 0, &conn_ops, a);
	a->loading = true;
	a->need_full = true;
	a->round_log = true;
	gw_timer_init(&a->work, on_work, a);
	gw_timer_init(&a->retry, on_retry, a);
	gw_timer_init(&a->periodic, on_periodic, a);
	*out = a;
	kick(a);
	return 0;
}

void syncd_applier_close(struct syncd_applier *a)
{
	if (!a)
		return;
	gw_timer_cancel(a->loop, &a->work);
	gw_timer_cancel(a->loop, &a->retry);
	gw_timer_cancel(a->loop, &a->periodic);
	abandon_op(a);
	ap_batch_free(&a->batch);
	ap_state_free(a->st);
	free(a->reload.k);
	free(a);
}
