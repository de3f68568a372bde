// SPDX-License-Identifier: MIT
/*
 * syncd's metrics: read from the replica (members, applied vectors,
 * counters), the transport and relay counters, the store's record count,
 * and the apply figures main.c records.
 */
#include "metrics.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

void syncd_lag_observe(struct syncd_lag_clock *lc, const struct syncd_replica *r, uint64_t now_ns)
{
	struct syncd_member_info mi;

	for (unsigned i = 0; !syncd_replica_member_info(r, i, &mi); i++)
		if (!lc->started || mi.known <= mi.applied)
			lc->caught_up_ns[mi.node_id] = now_ns;
	lc->started = true;
}

double syncd_lag_seconds(const struct syncd_lag_clock *lc, const struct syncd_member_info *mi,
			 uint64_t now_ns)
{
	uint64_t since = lc->caught_up_ns[mi->node_id];

	if (!lc->started || mi->known <= mi->applied || now_ns <= since)
		return 0;
	return (double)(now_ns - since) / 1e9;
}

/* --- Writing ------------------------------------------------------------------------ */

/* A family with one sample per label value: values[i] under label=names[i]. */
static void labelled(struct gw_metrics *m, const char *name, enum gw_metric_type type,
		     const char *help, const char *label, const char *const *names,
		     const uint64_t *values, size_t n)
{
	if (gw_metrics_family(m, name, type, help))
		return;
	for (size_t i = 0; i < n; i++)
		gw_metrics_sample_u64(m, (struct gw_metric_label[]){{label, names[i]}}, 1,
				      values[i]);
}

static void write_identity(const struct syncd_metrics_source *src, struct gw_metrics *m)
{
	char node[4];

	gw_metrics_family(m, "syncd_build_info", GW_METRIC_GAUGE, "syncd's version.");
	gw_metrics_sample_u64(m, (struct gw_metric_label[]){{"version", GW_VERSION}}, 1, 1);
	if (src->start_time_s > 0)
		gw_metrics_one_f64(m, "syncd_start_time_seconds", GW_METRIC_GAUGE,
				   "Unix time syncd started.", src->start_time_s);
	if (!src->cfg)
		return;
	snprintf(node, sizeof(node), "%u", src->cfg->node_id);
	gw_metrics_family(m, "syncd_cluster_info", GW_METRIC_GAUGE,
			  "The cluster this syncd serves: its name, this node's id and the mode.");
	gw_metrics_sample_u64(m,
			      (struct gw_metric_label[]){{"cluster", src->cfg->cluster},
							 {"node_id", node},
							 {"mode", syncd_mode_name(src->cfg->mode)}},
			      3, 1);
	gw_metrics_one_u64(m, "syncd_members", GW_METRIC_GAUGE,
			   "Members configured, this node included.", src->cfg->n_members);
}

/* Per-member families: one pass over the members for each. */
enum member_figure {
	MF_UP,
	MF_SYNCED,
	MF_LAST_SEEN,
	MF_APPLIED,
	MF_BEHIND,
	MF_LAG,
	MF_UNCONFIRMED,
	MF__COUNT,
};

static const struct {
	const char *name, *label, *help;
} member_families[MF__COUNT] = {
    [MF_UP] = {"syncd_member_up", "member",
	       "1 when the member was heard within PeerDeadMs (this node: always), else 0."},
    [MF_SYNCED] = {"syncd_member_synced", "member",
		   "1 when the member said it has caught up (this node: its own state), else 0."},
    [MF_LAST_SEEN] = {"syncd_member_last_seen_seconds", "member",
		      "Seconds since anything was received from the member (heard ones only)."},
    [MF_APPLIED] = {"syncd_replication_applied_seq", "origin",
		    "Greatest gap-free sequence number of the origin's updates held here."},
    [MF_BEHIND] = {"syncd_replication_behind_updates", "origin",
		   "Updates of the origin known to exist but not applied here yet."},
    [MF_LAG] = {"syncd_replication_lag_seconds", "origin",
		"How long this node has been missing some update of the origin (0: caught up)."},
    [MF_UNCONFIRMED] = {"syncd_replication_unconfirmed_updates", "member",
			"Own updates the member has not confirmed applying (heard ones only)."},
};

static void write_member(const struct syncd_metrics_source *src, enum member_figure f,
			 const struct syncd_member_info *mi, uint64_t now, struct gw_metrics *m)
{
	char id[4];
	const struct gw_metric_label l = {member_families[f].label, id};

	snprintf(id, sizeof(id), "%u", mi->node_id);
	switch (f) {
	case MF_UP:
		gw_metrics_sample_u64(m, &l, 1, mi->reachable);
		break;
	case MF_SYNCED:
		gw_metrics_sample_u64(m, &l, 1, mi->synced);
		break;
	case MF_LAST_SEEN:
		if (!mi->self && mi->heard)
			gw_metrics_sample_f64(m, &l, 1, (double)mi->last_seen_ns_ago / 1e9);
		break;
	case MF_APPLIED:
		gw_metrics_sample_u64(m, &l, 1, mi->applied);
		break;
	case MF_BEHIND:
		if (!mi->self)
			gw_metrics_sample_u64(m, &l, 1, mi->known - mi->applied);
		break;
	case MF_LAG:
		if (!mi->self && src->lag)
			gw_metrics_sample_f64(m, &l, 1, syncd_lag_seconds(src->lag, mi, now));
		break;
	case MF_UNCONFIRMED:
		if (!mi->self && mi->heard)
			gw_metrics_sample_u64(m, &l, 1, mi->unconfirmed);
		break;
	case MF__COUNT:
		break;
	}
}

static int count_records(const struct syncd_metrics_source *src, uint64_t *live, uint64_t *tomb)
{
	struct syncd_records_count *c = src->records_count;
	uint64_t gen;
	int rc;

	if (!c || !src->record_changes)
		return syncd_store_count(src->store, live, tomb);
	gen = *src->record_changes + syncd_replica_stats(src->replica)->tombstones_collected;
	if (!c->valid || c->gen != gen) {
		rc = syncd_store_count(src->store, &c->live, &c->tombstones);
		if (rc)
			return rc;
		c->valid = true;
		c->gen = gen;
	}
	*live = c->live;
	*tomb = c->tombstones;
	return 0;
}

static void write_replica(const struct syncd_metrics_source *src, uint64_t now,
			  struct gw_metrics *m)
{
	const struct syncd_replica_stats *st = syncd_replica_stats(src->replica);
	unsigned n = syncd_replica_n_members(src->replica);
	struct syncd_member_info mi;
	uint64_t live, tomb;

	gw_metrics_one_u64(m, "syncd_synced", GW_METRIC_GAUGE,
			   "1 once the configuration caught up with the cluster and no gap is "
			   "stuck, else 0.",
			   syncd_replica_synced(src->replica));
	gw_metrics_one_u64(m, "syncd_own_seq", GW_METRIC_GAUGE,
			   "Sequence number of this node's latest own update.",
			   syncd_replica_own_seq(src->replica));
	if (src->store && !count_records(src, &live, &tomb)) {
		static const char *const states[] = {"live", "tombstone"};
		const uint64_t v[] = {live, tomb};

		labelled(m, "syncd_records", GW_METRIC_GAUGE,
			 "Peer records in the store: live, and tombstones of deleted peers.",
			 "state", states, v, ARRAY_LEN(v));
	}
	for (size_t f = 0; f < MF__COUNT; f++) {
		if (gw_metrics_family(m, member_families[f].name, GW_METRIC_GAUGE,
				      member_families[f].help))
			continue;
		for (unsigned i = 0; i < n; i++)
			if (!syncd_replica_member_info(src->replica, i, &mi))
				write_member(src, (enum member_figure)f, &mi, now, m);
	}
	gw_metrics_one_u64(m, "syncd_updates_written_total", GW_METRIC_COUNTER,
			   "Own updates committed to the store (gwctl writes).", st->writes);
	gw_metrics_one_u64(m, "syncd_updates_applied_total", GW_METRIC_COUNTER,
			   "Updates of other members applied in order.", st->updates_applied);
	{
		static const char *const res[] = {"won", "lost"};
		const uint64_t v[] = {st->records_won, st->records_lost};

		labelled(m, "syncd_records_merged_total", GW_METRIC_COUNTER,
			 "Received records merged: won (replaced what was here) or lost (older).",
			 "result", res, v, ARRAY_LEN(v));
	}
	gw_metrics_one_u64(m, "syncd_updates_duplicate_total", GW_METRIC_COUNTER,
			   "Updates received that were applied already.", st->duplicates);
	gw_metrics_one_u64(m, "syncd_updates_buffered_total", GW_METRIC_COUNTER,
			   "Updates held back behind a gap in their origin's sequence.",
			   st->buffered);
	gw_metrics_one_u64(m, "syncd_updates_buffer_dropped_total", GW_METRIC_COUNTER,
			   "Updates too far ahead of a gap to buffer (repaired later).",
			   st->buffer_dropped);
	gw_metrics_one_u64(m, "syncd_repair_requests_sent_total", GW_METRIC_COUNTER,
			   "Gap repair requests sent.", st->repairs_sent);
	{
		static const char *const res[] = {"served", "refused"};
		const uint64_t v[] = {st->repairs_served, st->repairs_refused};

		labelled(m, "syncd_repair_requests_answered_total", GW_METRIC_COUNTER,
			 "Repair requests of other members answered: served from the log, or "
			 "refused (trimmed).",
			 "result", res, v, ARRAY_LEN(v));
	}
	gw_metrics_one_u64(m, "syncd_repair_refusals_received_total", GW_METRIC_COUNTER,
			   "Repair requests of ours that were refused (a snapshot follows).",
			   st->refusals_received);
	{
		static const char *const ev[] = {"requested", "completed", "abandoned", "served"};
		const uint64_t v[] = {st->snapshots_requested, st->snapshots_completed,
				      st->snapshots_abandoned, st->snapshots_served};

		labelled(m, "syncd_snapshots_total", GW_METRIC_COUNTER,
			 "Snapshots by event: requested, completed and abandoned by this node, "
			 "served to others.",
			 "event", ev, v, ARRAY_LEN(v));
	}
	gw_metrics_one_u64(m, "syncd_store_errors_total", GW_METRIC_COUNTER,
			   "Store (SQLite) operations that failed.", st->store_errors);
	gw_metrics_one_u64(m, "syncd_tombstones_collected_total", GW_METRIC_COUNTER,
			   "Tombstones removed once every member had them.",
			   st->tombstones_collected);
}

static void write_transport(const struct syncd_metrics_source *src, struct gw_metrics *m)
{
	static const char *const reasons[] = {"malformed", "version",	 "cluster", "origin",
					      "oversize",  "zap_denied", "replica", "relay"};
	const struct syncd_transport_stats *ts =
	    src->transport ? syncd_transport_stats(src->transport) : NULL;
	uint64_t v[ARRAY_LEN(reasons)] = {0};

	if (ts) {
		gw_metrics_one_u64(m, "syncd_messages_received_total", GW_METRIC_COUNTER,
				   "Envelopes received from members that passed the checks.",
				   ts->rx_messages);
		gw_metrics_one_u64(m, "syncd_messages_sent_total", GW_METRIC_COUNTER,
				   "Envelopes handed to ZeroMQ for members.", ts->tx_messages);
		gw_metrics_one_u64(m, "syncd_curve_failures_total", GW_METRIC_COUNTER,
				   "CURVE handshakes that failed and connections dropped for a bad "
				   "MAC or another ZMTP protocol error.",
				   ts->handshake_failed);
		v[0] = ts->rejected_malformed;
		v[1] = ts->rejected_version;
		v[2] = ts->rejected_cluster;
		v[3] = ts->rejected_origin;
		v[4] = ts->rejected_oversize;
		v[5] = ts->zap_denied;
	}
	if (src->replica)
		v[6] = syncd_replica_stats(src->replica)->rejected;
	if (src->relay)
		v[7] = syncd_relay_stats(src->relay)->rejected;
	labelled(m, "syncd_rejected_messages_total", GW_METRIC_COUNTER,
		 "Messages refused, by reason: the transport's checks (malformed, version, "
		 "cluster, origin, oversize), unknown Curve keys (zap_denied), and content the "
		 "replica or session relay refused.",
		 "reason", reasons, v, ARRAY_LEN(v));
}

static void write_apply(const struct syncd_metrics_source *src, struct gw_metrics *m)
{
	const struct syncd_apply_stats *a = src->apply;

	if (src->gwd_connected)
		gw_metrics_one_u64(m, "syncd_gwd_connected", GW_METRIC_GAUGE,
				   "1 when the latest apply reached gwd's UAPI socket, else 0.",
				   *src->gwd_connected);
	if (!a)
		return;
	{
		static const char *const res[] = {"ok", "gwd_absent", "error"};
		const uint64_t v[] = {a->ok, a->absent, a->failed};

		labelled(m, "syncd_gwd_applies_total", GW_METRIC_COUNTER,
			 "UAPI operations applying the store to gwd (set transactions and "
			 "full reads), by result.",
			 "result", res, v, ARRAY_LEN(v));
	}
	{
		static const char *const ch[] = {"added", "removed", "changed"};
		const uint64_t v[] = {a->added, a->removed, a->changed};

		labelled(m, "syncd_gwd_applied_peers_total", GW_METRIC_COUNTER,
			 "Peers added to, removed from and changed in gwd.", "change", ch, v,
			 ARRAY_LEN(v));
	}
	gw_metrics_one_f64(m, "syncd_gwd_apply_last_duration_seconds", GW_METRIC_GAUGE,
			   "Duration of the latest UAPI operation that reached gwd.",
			   (double)a->last_ns / 1e9);
	gw_metrics_one_u64(m, "syncd_gwd_apply_timeouts_total", GW_METRIC_COUNTER,
			   "UAPI operations failed because gwd made no progress in time.",
			   a->timeouts);
	gw_metrics_one_u64(m, "syncd_gwd_reconciles_total", GW_METRIC_COUNTER,
			   "Full reconciliations: gwd's whole state read and compared.",
			   a->reconciles);
	gw_metrics_one_f64(m, "syncd_gwd_reconcile_last_duration_seconds", GW_METRIC_GAUGE,
			   "Duration of the latest full reconciliation.",
			   (double)a->last_reconcile_ns / 1e9);
	gw_metrics_one_u64(m, "syncd_gwd_apply_pending_peers", GW_METRIC_GAUGE,
			   "Peers changed in the store or differing from gwd, not applied yet.",
			   a->pending);
	gw_metrics_one_u64(m, "syncd_gwd_contested_allowed_ips", GW_METRIC_GAUGE,
			   "Allowed IPs listed by more than one live peer (each given to the "
			   "newest record).",
			   a->conflicts);
	if (a->last_ok_time > 0)
		gw_metrics_one_f64(
		    m, "syncd_gwd_apply_last_success_timestamp_seconds", GW_METRIC_GAUGE,
		    "Unix time of the latest successful UAPI operation.", a->last_ok_time);
}

static void write_relay(const struct syncd_metrics_source *src, struct gw_metrics *m)
{
	static const char *const roles[SYNCD_ROLE__COUNT] = {
	    [SYNCD_ROLE_UNKNOWN] = "unknown",
	    [SYNCD_ROLE_MASTER] = "master",
	    [SYNCD_ROLE_BACKUP] = "backup",
	    [SYNCD_ROLE_FAULT] = "fault",
	};
	const struct syncd_relay_stats *st = syncd_relay_stats(src->relay);
	enum syncd_role role = syncd_relay_role_get(src->relay);
	enum syncd_ready ready = syncd_relay_ready(src->relay, NULL);
	uint64_t is[SYNCD_ROLE__COUNT] = {0};

	if ((unsigned)role < SYNCD_ROLE__COUNT)
		is[role] = 1;
	labelled(m, "syncd_role", GW_METRIC_GAUGE,
		 "1 for the node's current role (from keepalived through gwctl role), else 0.",
		 "role", roles, is, SYNCD_ROLE__COUNT);
	labelled(m, "syncd_role_changes_total", GW_METRIC_COUNTER,
		 "Changes of the node's role, by the role taken.", "role", roles, st->role_changes,
		 SYNCD_ROLE__COUNT);
	gw_metrics_one_u64(m, "syncd_ready", GW_METRIC_GAUGE,
			   "1 when the node may become master without clients handshaking anew "
			   "(SyncedFile 0), else 0.",
			   ready == SYNCD_READY);
	gw_metrics_one_u64(m, "syncd_ready_state", GW_METRIC_GAUGE,
			   "The SyncedFile value: 0 ready, 1 configuration, 2 gwd, 3 sessions not "
			   "imported yet (docs/config.md).",
			   (uint64_t)ready);
	gw_metrics_one_u64(m, "syncd_gwd_subscribed", GW_METRIC_GAUGE,
			   "1 while gwd's session socket is subscribed, else 0.",
			   syncd_relay_gwd_subscribed(src->relay));
	gw_metrics_one_u64(m, "syncd_session_batches_published_total", GW_METRIC_COUNTER,
			   "Session batches of the local gwd published to the members.",
			   st->exports_published);
	gw_metrics_one_u64(m, "syncd_session_publish_failures_total", GW_METRIC_COUNTER,
			   "Session batches that could not be published.", st->publish_failed);
	gw_metrics_one_u64(m, "syncd_session_batches_received_total", GW_METRIC_COUNTER,
			   "Session batches received from other members.", st->batches_received);
	gw_metrics_one_u64(m, "syncd_session_imports_sent_total", GW_METRIC_COUNTER,
			   "Imports (coalesced batches) sent to the local gwd.", st->imports_sent);
	gw_metrics_one_u64(m, "syncd_session_batches_dropped_total", GW_METRIC_COUNTER,
			   "Session batches gwd could not take (absent, or its queue full).",
			   st->import_dropped);
	gw_metrics_one_u64(m, "syncd_session_batches_lost_total", GW_METRIC_COUNTER,
			   "Session batches of members found missing (each answered by a dump).",
			   st->batches_lost);
	{
		static const char *const ev[] = {"requested", "completed", "served"};
		const uint64_t v[] = {st->dumps_requested, st->dumps_completed, st->dumps_served};

		labelled(m, "syncd_session_dumps_total", GW_METRIC_COUNTER,
			 "Session catch-ups (dumps): requested from members, completed (imported "
			 "into gwd), served to members.",
			 "event", ev, v, ARRAY_LEN(v));
	}
	gw_metrics_one_u64(m, "syncd_gwd_errors_total", GW_METRIC_COUNTER,
			   "Session socket requests gwd answered with an error.", st->gwd_errors);
}

int syncd_metrics_write(const struct syncd_metrics_source *src, uint64_t now_ns,
			struct gw_metrics *m)
{
	write_identity(src, m);
	if (src->replica)
		write_replica(src, now_ns, m);
	write_transport(src, m);
	write_apply(src, m);
	if (src->relay)
		write_relay(src, m);
	if (src->loop)
		gw_metrics_write_loop(m, "syncd", src->loop);
	return 0;
}

/* --- The server ------------------------------------------------------------------- */

struct scrape_ctx {
	const struct syncd_metrics_source *src;
	struct gw_loop *loop;
};

static int render(void *arg, struct gw_metrics *m)
{
	const struct scrape_ctx *c = arg;

	return syncd_metrics_write(c->src, gw_loop_now(c->loop), m);
}

int syncd_metrics_open(struct gw_metrics_endpoint **out, struct gw_loop *loop, const char *addr,
		       const struct syncd_metrics_source *src)
{
	const struct scrape_ctx c = {src, loop};

	return gw_metrics_endpoint_open(out, loop, addr, "syncd", render, &c, sizeof(c));
}
