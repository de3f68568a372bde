// SPDX-License-Identifier: MIT
/*
 * gwctl's tables and JSON. Tables are built as rows of strings first so that
 * column widths fit the content; JSON is written directly.
 */
#include "ctlfmt.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "gw/crypto.h"
#include "gw/key.h"
#include "peerfile.h"

/* --- Tables --------------------------------------------------------------- */

enum { TABLE_COLS_MAX = 12 };

struct table {
	size_t ncols, nrows, cap;
	char **cells; /* nrows * ncols, each malloc'd or NULL ("?") */
};

__attribute__((format(printf, 1, 2))) static char *fmt(const char *f, ...)
{
	va_list ap;
	char *s;

	va_start(ap, f);
	if (vasprintf(&s, f, ap) < 0)
		s = NULL;
	va_end(ap);
	return s;
}

/* Appends one row of t->ncols cells (taken over). */
static void table_row(struct table *t, char **cells)
{
	if (t->nrows == t->cap) {
		size_t cap = t->cap ? 2 * t->cap : 16;
		char **c = reallocarray(t->cells, cap * t->ncols, sizeof(*c));

		if (!c) {
			for (size_t i = 0; i < t->ncols; i++)
				free(cells[i]);
			return;
		}
		t->cells = c;
		t->cap = cap;
	}
	memcpy(&t->cells[t->nrows++ * t->ncols], cells, t->ncols * sizeof(*cells));
}

/* Prints with two blanks between columns, the last one unpadded; frees t. */
static void table_print(FILE *f, struct table *t)
{
	size_t w[TABLE_COLS_MAX] = {0};

	for (size_t r = 0; r < t->nrows; r++)
		for (size_t c = 0; c < t->ncols; c++) {
			const char *s = t->cells[r * t->ncols + c];
			size_t n = s ? strlen(s) : 1;

			w[c] = n > w[c] ? n : w[c];
		}
	for (size_t r = 0; r < t->nrows; r++) {
		for (size_t c = 0; c < t->ncols; c++) {
			char *s = t->cells[r * t->ncols + c];

			if (c + 1 < t->ncols)
				fprintf(f, "%-*s  ", (int)w[c], s ? s : "?");
			else
				fprintf(f, "%s\n", s ? s : "?");
			free(s);
		}
	}
	free(t->cells);
	memset(t, 0, sizeof(*t));
}

static char *join(char *const *v, size_t n, const char *empty)
{
	size_t len = 1;
	char *s;

	if (!n)
		return strdup(empty);
	for (size_t i = 0; i < n; i++)
		len += strlen(v[i] ? v[i] : "") + 1;
	s = malloc(len);
	if (!s)
		return NULL;
	s[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		if (i)
			strcat(s, ",");
		strcat(s, v[i] ? v[i] : "");
	}
	return s;
}

static const char *or_dash(const char *s)
{
	return s && *s ? s : "-";
}

static void key_b64(char out[static GW_KEY_B64_LEN + 1], const ProtobufCBinaryData *k)
{
	if (k->len == GW_KEY_LEN)
		gw_key_to_base64(out, k->data);
	else
		snprintf(out, GW_KEY_B64_LEN + 1, "(bad key: %zu bytes)", k->len);
}

static char *expires_text(const Gwcluster__PeerMeta *m, uint64_t now)
{
	char t[32];

	if (!m || !m->has_expires_unix || !m->expires_unix)
		return strdup("-");
	syncd_format_time(m->expires_unix, t, sizeof(t));
	return fmt("%s%s", t, m->expires_unix <= now ? " (expired)" : "");
}

static char *keepalive_text(const Gwcluster__PeerConfig *pc)
{
	if (!pc->has_persistent_keepalive || !pc->persistent_keepalive)
		return strdup("off");
	return fmt("%us", pc->persistent_keepalive);
}

static void peer_row(struct table *t, const Gwcluster__PeerConfig *pc, uint64_t now)
{
	const Gwcluster__PeerMeta *m = pc->meta;
	char b64[GW_KEY_B64_LEN + 1];
	char *row[8];

	key_b64(b64, &pc->public_key);
	row[0] = strdup(or_dash(m ? m->name : NULL));
	row[1] = strdup(b64);
	row[2] = join(pc->allowed_ips, pc->n_allowed_ips, "-");
	row[3] = keepalive_text(pc);
	row[4] = strdup(or_dash(pc->endpoint));
	row[5] = strdup(or_dash(m ? m->owner : NULL));
	row[6] = expires_text(m, now);
	row[7] = m ? join(m->tags, m->n_tags, "-") : strdup("-");
	table_row(t, row);
}

void syncd_fmt_peers_table(FILE *f, Gwcluster__PeerEntry *const *v, size_t n, uint64_t now_unix)
{
	struct table t = {.ncols = 8};
	char *head[8] = {strdup("NAME"),      strdup("PUBLIC KEY"), strdup("ALLOWED IPS"),
			 strdup("KEEPALIVE"), strdup("ENDPOINT"),   strdup("OWNER"),
			 strdup("EXPIRES"),   strdup("TAGS")};

	table_row(&t, head);
	for (size_t i = 0; i < n; i++)
		if (v[i] && v[i]->peer)
			peer_row(&t, v[i]->peer, now_unix);
	table_print(f, &t);
}

void syncd_fmt_peer_show(FILE *f, const Gwcluster__PeerEntry *e, uint64_t now_unix)
{
	const Gwcluster__PeerConfig *pc = e->peer;
	const Gwcluster__PeerMeta *m = pc ? pc->meta : NULL;
	char b64[GW_KEY_B64_LEN + 1];
	char *aips, *ka, *exp, *tags;

	if (!pc)
		return;
	key_b64(b64, &pc->public_key);
	aips = join(pc->allowed_ips, pc->n_allowed_ips, "(none)");
	ka = keepalive_text(pc);
	exp = expires_text(m, now_unix);
	tags = m ? join(m->tags, m->n_tags, "-") : strdup("-");
	fprintf(f, "peer: %s\n", b64);
	fprintf(f, "  name: %s\n", or_dash(m ? m->name : NULL));
	fprintf(f, "  owner: %s\n", or_dash(m ? m->owner : NULL));
	fprintf(f, "  allowed ips: %s\n", aips ? aips : "?");
	fprintf(f, "  preshared key: %s\n", pc->has_preshared_key ? "(hidden)" : "(none)");
	fprintf(f, "  persistent keepalive: %s\n", ka ? ka : "?");
	fprintf(f, "  endpoint hint: %s\n", or_dash(pc->endpoint));
	fprintf(f, "  expires: %s\n", exp ? exp : "?");
	fprintf(f, "  tags: %s\n", tags ? tags : "?");
	fprintf(f, "  last written: hlc %llu by node %u\n", (unsigned long long)e->hlc, e->writer);
	free(aips);
	free(ka);
	free(exp);
	free(tags);
}

/* --- JSON ----------------------------------------------------------------- */

void syncd_fmt_json_string(FILE *f, const char *s)
{
	if (!s) {
		fputs("null", f);
		return;
	}
	fputc('"', f);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\')
			fprintf(f, "\\%c", *p);
		else if (*p == '\n')
			fputs("\\n", f);
		else if (*p < 0x20 || *p == 0x7f)
			fprintf(f, "\\u%04x", *p);
		else
			fputc(*p, f);
	}
	fputc('"', f);
}

static void json_strv(FILE *f, char *const *v, size_t n)
{
	fputc('[', f);
	for (size_t i = 0; i < n; i++) {
		if (i)
			fputc(',', f);
		syncd_fmt_json_string(f, v[i] ? v[i] : "");
	}
	fputc(']', f);
}

static void json_key(FILE *f, const ProtobufCBinaryData *k)
{
	char b64[GW_KEY_B64_LEN + 1];

	if (k->len != GW_KEY_LEN) {
		fputs("null", f);
		return;
	}
	gw_key_to_base64(b64, k->data);
	syncd_fmt_json_string(f, b64);
}

static void json_opt_u64(FILE *f, bool has, uint64_t v)
{
	if (has)
		fprintf(f, "%llu", (unsigned long long)v);
	else
		fputs("null", f);
}

static const char *json_bool(bool b)
{
	return b ? "true" : "false";
}

static const char *json_opt_bool(bool has, bool b)
{
	return has ? json_bool(b) : "null";
}

void syncd_fmt_peer_json(FILE *f, const Gwcluster__PeerEntry *e, uint64_t now_unix)
{
	const Gwcluster__PeerConfig *pc = e->peer;
	const Gwcluster__PeerMeta *m = pc ? pc->meta : NULL;
	bool has_exp = m && m->has_expires_unix && m->expires_unix;

	if (!pc) {
		fputs("null", f);
		return;
	}
	fputs("{\"public_key\":", f);
	json_key(f, &pc->public_key);
	fputs(",\"name\":", f);
	syncd_fmt_json_string(f, m ? m->name : NULL);
	fputs(",\"owner\":", f);
	syncd_fmt_json_string(f, m ? m->owner : NULL);
	fputs(",\"expires\":", f);
	json_opt_u64(f, has_exp, has_exp ? m->expires_unix : 0);
	fprintf(f, ",\"expired\":%s,\"tags\":", json_bool(has_exp && m->expires_unix <= now_unix));
	json_strv(f, m ? m->tags : NULL, m ? m->n_tags : 0);
	fputs(",\"allowed_ips\":", f);
	json_strv(f, pc->allowed_ips, pc->n_allowed_ips);
	fprintf(f, ",\"persistent_keepalive\":%u,\"endpoint\":",
		pc->has_persistent_keepalive ? pc->persistent_keepalive : 0);
	syncd_fmt_json_string(f, pc->endpoint && *pc->endpoint ? pc->endpoint : NULL);
	fprintf(f, ",\"preshared_key\":%s,\"hlc\":%llu,\"writer\":%u}",
		json_bool(pc->has_preshared_key), (unsigned long long)e->hlc, e->writer);
}

void syncd_fmt_peers_json(FILE *f, Gwcluster__PeerEntry *const *v, size_t n, uint64_t now_unix)
{
	fputc('[', f);
	for (size_t i = 0; i < n; i++) {
		fputs(i ? ",\n " : "\n ", f);
		syncd_fmt_peer_json(f, v[i], now_unix);
	}
	fputs(n ? "\n]\n" : "]\n", f);
}

/* --- Status --------------------------------------------------------------- */

static char *ago_text(bool has, uint64_t ms)
{
	if (!has)
		return strdup("-");
	if (ms < 10000)
		return fmt("%llu.%llus", (unsigned long long)ms / 1000,
			   (unsigned long long)ms % 1000 / 100);
	if (ms < 120000)
		return fmt("%llus", (unsigned long long)ms / 1000);
	if (ms < 7200000)
		return fmt("%llum", (unsigned long long)ms / 60000);
	if (ms < 172800000)
		return fmt("%lluh", (unsigned long long)ms / 3600000);
	return fmt("%llud", (unsigned long long)ms / 86400000);
}

static void member_row(struct table *t, const Gwcluster__MemberStatus *m)
{
	char *row[9];

	row[0] = fmt("%u", m->node_id);
	row[1] = strdup(or_dash(m->address));
	row[2] = strdup(m->self ? "yes" : "no");
	row[3] = strdup(m->reachable ? "yes" : "no");
	row[4] = ago_text(m->has_last_seen_ms_ago, m->last_seen_ms_ago);
	row[5] = m->has_lag ? fmt("%llu", (unsigned long long)m->lag) : strdup("-");
	row[6] = m->has_behind ? fmt("%llu", (unsigned long long)m->behind) : strdup("-");
	row[7] = strdup(or_dash(m->version));
	row[8] = strdup(m->has_synced ? (m->synced ? "yes" : "no") : "-");
	table_row(t, row);
}

/* --- Sessions (the relay's fields; printed only when syncd sent them) ------ */

static const char *role_text(const Gwcluster__SessionSummary *s)
{
	if (!s || !s->has_role)
		return "-";
	switch (s->role) {
	case GWCLUSTER__NODE_ROLE__NODE_ROLE_MASTER:
		return "master";
	case GWCLUSTER__NODE_ROLE__NODE_ROLE_BACKUP:
		return "backup";
	case GWCLUSTER__NODE_ROLE__NODE_ROLE_FAULT:
		return "fault";
	default:
		return "unknown";
	}
}

static char *opt_u64_text(bool has, uint64_t v)
{
	return has ? fmt("%llu", (unsigned long long)v) : strdup("-");
}

static char *ready_text(const Gwcluster__SessionSummary *s)
{
	if (!s || !s->has_ready)
		return strdup("-");
	return s->ready ? fmt("no (%u)", s->ready) : strdup("yes");
}

static char *gwd_text(const Gwcluster__SessionSummary *s)
{
	if (!s || !s->has_gwd_connected)
		return strdup("-");
	if (!s->gwd_connected)
		return strdup("no");
	return strdup(s->has_gwd_master && s->gwd_master ? "yes, claims all" : "yes");
}

static void session_row(struct table *t, const Gwcluster__MemberStatus *m)
{
	const Gwcluster__SessionSummary *s = m->sessions;
	char *row[12];

	row[0] = fmt("%u", m->node_id);
	row[1] = strdup(role_text(s));
	row[2] = gwd_text(s);
	row[3] = ready_text(s);
	row[4] = opt_u64_text(s && s->has_peers_owned, s ? s->peers_owned : 0);
	row[5] = opt_u64_text(s && s->has_sessions_owned, s ? s->sessions_owned : 0);
	row[6] = opt_u64_text(s && s->has_sessions_standby, s ? s->sessions_standby : 0);
	row[7] = s && s->has_owner_epoch_max
		     ? fmt("%llu/%u", (unsigned long long)s->owner_epoch_max, s->send_epoch_max)
		     : strdup("-");
	row[8] = opt_u64_text(s && s->has_region_headroom_min, s ? s->region_headroom_min : 0);
	row[9] = ago_text(m->has_session_batch_ms_ago, m->session_batch_ms_ago);
	row[10] = m->has_session_delay_ms ? fmt("%llums", (unsigned long long)m->session_delay_ms)
					  : strdup("-");
	row[11] = opt_u64_text(m->has_session_lost, m->session_lost);
	table_row(t, row);
}

static bool has_sessions(const Gwcluster__ClusterStatus *st)
{
	for (size_t i = 0; i < st->n_members; i++)
		if (st->members[i]->sessions || st->members[i]->has_session_batches)
			return true;
	return false;
}

static void sessions_table(FILE *f, const Gwcluster__ClusterStatus *st)
{
	struct table t = {.ncols = 12};
	char *head[12] = {strdup("NODE"),	strdup("ROLE"),	  strdup("GWD"),
			  strdup("READY"),	strdup("OWNED"),  strdup("SESSIONS"),
			  strdup("STANDBY"),	strdup("EPOCHS"), strdup("HEADROOM"),
			  strdup("LAST BATCH"), strdup("DELAY"),  strdup("LOST")};

	fputs("\nsessions:\n", f);
	table_row(&t, head);
	for (size_t i = 0; i < st->n_members; i++)
		session_row(&t, st->members[i]);
	table_print(f, &t);
}

/* `"key":value` pairs of a SessionSummary's fields, absent ones null. */
static void summary_fields_json(FILE *f, const Gwcluster__SessionSummary *s)
{
	fputs("\"role\":", f);
	syncd_fmt_json_string(f, s->has_role ? role_text(s) : NULL);
	fprintf(f, ",\"gwd_connected\":%s,\"ready\":",
		json_opt_bool(s->has_gwd_connected, s->gwd_connected));
	json_opt_u64(f, s->has_ready, s->ready);
	fputs(",\"incarnation\":", f);
	json_opt_u64(f, s->has_incarnation, s->incarnation);
	fputs(",\"boot\":", f);
	json_opt_u64(f, s->has_boot, s->boot);
	fprintf(f, ",\"gwd_master\":%s,\"peers_owned\":",
		json_opt_bool(s->has_gwd_master, s->gwd_master));
	json_opt_u64(f, s->has_peers_owned, s->peers_owned);
	fputs(",\"sessions_owned\":", f);
	json_opt_u64(f, s->has_sessions_owned, s->sessions_owned);
	fputs(",\"sessions_standby\":", f);
	json_opt_u64(f, s->has_sessions_standby, s->sessions_standby);
	fputs(",\"owner_epoch_max\":", f);
	json_opt_u64(f, s->has_owner_epoch_max, s->owner_epoch_max);
	fputs(",\"send_epoch_max\":", f);
	json_opt_u64(f, s->has_send_epoch_max, s->send_epoch_max);
	fputs(",\"region_headroom_min\":", f);
	json_opt_u64(f, s->has_region_headroom_min, s->region_headroom_min);
	fputs(",\"stats_age_ms\":", f);
	json_opt_u64(f, s->has_stats_age_ms, s->stats_age_ms);
	fputs(",\"exports\":", f);
	json_opt_u64(f, s->has_exports, s->exports);
	fputs(",\"imports\":", f);
	json_opt_u64(f, s->has_imports, s->imports);
}

void syncd_fmt_role_json(FILE *f, const Gwcluster__SessionSummary *s, const char *message)
{
	static const Gwcluster__SessionSummary none = GWCLUSTER__SESSION_SUMMARY__INIT;

	fputc('{', f);
	summary_fields_json(f, s ? s : &none);
	fputs(",\"message\":", f);
	syncd_fmt_json_string(f, message && *message ? message : NULL);
	fputs("}\n", f);
}

void syncd_fmt_role_text(FILE *f, const Gwcluster__SessionSummary *s, const char *message)
{
	if (message && *message)
		fprintf(f, "%s\n", message);
	if (!s)
		return;
	fprintf(f, "role: %s\n", role_text(s));
	if (s->has_gwd_connected && s->gwd_connected)
		fprintf(f, "gwd: connected, boot %llu (incarnation %u), %s\n",
			(unsigned long long)s->boot, s->incarnation,
			s->has_gwd_master && s->gwd_master ? "claims every peer"
							   : "claims no peer by itself");
	else
		fputs("gwd: NOT connected\n", f);
	if (s->has_ready)
		fprintf(f, "ready for master: %s\n", s->ready ? "no" : "yes");
	if (s->has_peers_owned)
		fprintf(f, "peers owned: %llu, sessions owned: %llu, standby sessions: %llu\n",
			(unsigned long long)s->peers_owned, (unsigned long long)s->sessions_owned,
			(unsigned long long)s->sessions_standby);
	if (s->has_owner_epoch_max)
		fprintf(f, "greatest ownership epoch: %llu, greatest send epoch: %u\n",
			(unsigned long long)s->owner_epoch_max, s->send_epoch_max);
	if (s->has_region_headroom_min)
		fprintf(f, "tightest counter region: %llu counters left\n",
			(unsigned long long)s->region_headroom_min);
}

void syncd_fmt_status_table(FILE *f, const Gwcluster__ClusterStatus *st)
{
	struct table t = {.ncols = 9};
	char *head[9] = {strdup("NODE"),      strdup("ADDRESS"),   strdup("SELF"),
			 strdup("REACHABLE"), strdup("LAST SEEN"), strdup("LAG"),
			 strdup("BEHIND"),    strdup("VERSION"),   strdup("SYNCED")};

	fprintf(f, "cluster %s, node %u: %s\n", or_dash(st->cluster), st->node_id,
		st->synced ? "synced" : "NOT synced (catching up)");
	fputs("peers: ", f);
	json_opt_u64(f, st->has_peers, st->peers);
	fprintf(f, ", gwd: %s, rejected messages: ",
		st->has_gwd_connected ? (st->gwd_connected ? "connected" : "NOT connected")
				      : "unknown");
	json_opt_u64(f, st->has_rejected_messages, st->rejected_messages);
	fputc('\n', f);
	if (st->has_apply_pending || st->has_apply_failures || st->has_apply_conflicts) {
		fputs("apply to gwd: ", f);
		json_opt_u64(f, st->has_apply_pending, st->apply_pending);
		fputs(" pending, ", f);
		json_opt_u64(f, st->has_apply_failures, st->apply_failures);
		fputs(" failed operations, ", f);
		json_opt_u64(f, st->has_apply_conflicts, st->apply_conflicts);
		fputs(" allowed IPs listed by more than one peer\n", f);
	}
	if (st->has_ready && st->ready)
		fprintf(f, "ready for master: no (%u): %s\n", st->ready, or_dash(st->ready_reason));
	else if (st->has_ready)
		fputs("ready for master: yes\n", f);
	fputc('\n', f);
	table_row(&t, head);
	for (size_t i = 0; i < st->n_members; i++)
		member_row(&t, st->members[i]);
	table_print(f, &t);
	if (has_sessions(st))
		sessions_table(f, st);
}

static void member_json(FILE *f, const Gwcluster__MemberStatus *m)
{
	fprintf(f, "{\"node_id\":%u,\"address\":", m->node_id);
	syncd_fmt_json_string(f, m->address);
	fprintf(f, ",\"self\":%s,\"reachable\":%s,\"last_seen_ms_ago\":", json_bool(m->self),
		json_bool(m->reachable));
	json_opt_u64(f, m->has_last_seen_ms_ago, m->last_seen_ms_ago);
	fputs(",\"lag\":", f);
	json_opt_u64(f, m->has_lag, m->lag);
	fputs(",\"behind\":", f);
	json_opt_u64(f, m->has_behind, m->behind);
	fputs(",\"version\":", f);
	syncd_fmt_json_string(f, m->version);
	fprintf(f, ",\"synced\":%s,\"applied\":[", json_opt_bool(m->has_synced, m->synced));
	for (size_t i = 0; i < m->n_applied; i++)
		fprintf(f, "%s{\"origin\":%u,\"seq\":%llu}", i ? "," : "", m->applied[i]->origin,
			(unsigned long long)m->applied[i]->seq);
	fputc(']', f);
	if (m->sessions || m->has_session_batches) {
		fputs(",\"sessions\":", f);
		if (m->sessions) {
			fputc('{', f);
			summary_fields_json(f, m->sessions);
			fputc('}', f);
		} else {
			fputs("null", f);
		}
		fputs(",\"session_batch_ms_ago\":", f);
		json_opt_u64(f, m->has_session_batch_ms_ago, m->session_batch_ms_ago);
		fputs(",\"session_delay_ms\":", f);
		json_opt_u64(f, m->has_session_delay_ms, m->session_delay_ms);
		fputs(",\"session_batches\":", f);
		json_opt_u64(f, m->has_session_batches, m->session_batches);
		fputs(",\"session_lost\":", f);
		json_opt_u64(f, m->has_session_lost, m->session_lost);
		fputs(",\"session_dumps\":", f);
		json_opt_u64(f, m->has_session_dumps, m->session_dumps);
	}
	fputc('}', f);
}

void syncd_fmt_status_json(FILE *f, const Gwcluster__ClusterStatus *st)
{
	fputs("{\"cluster\":", f);
	syncd_fmt_json_string(f, st->cluster);
	fprintf(f, ",\"node_id\":%u,\"synced\":%s,\"peers\":", st->node_id, json_bool(st->synced));
	json_opt_u64(f, st->has_peers, st->peers);
	fprintf(f, ",\"gwd_connected\":%s,\"rejected_messages\":",
		json_opt_bool(st->has_gwd_connected, st->gwd_connected));
	json_opt_u64(f, st->has_rejected_messages, st->rejected_messages);
	if (st->has_apply_pending || st->has_apply_failures || st->has_apply_conflicts) {
		fputs(",\"apply_pending\":", f);
		json_opt_u64(f, st->has_apply_pending, st->apply_pending);
		fputs(",\"apply_failures\":", f);
		json_opt_u64(f, st->has_apply_failures, st->apply_failures);
		fputs(",\"apply_conflicts\":", f);
		json_opt_u64(f, st->has_apply_conflicts, st->apply_conflicts);
	}
	if (st->has_ready) {
		fprintf(f, ",\"ready\":%u,\"ready_reason\":", st->ready);
		syncd_fmt_json_string(f, st->ready ? st->ready_reason : NULL);
	}
	fputs(",\"members\":[", f);
	for (size_t i = 0; i < st->n_members; i++) {
		fputs(i ? ",\n " : "\n ", f);
		member_json(f, st->members[i]);
	}
	fputs(st->n_members ? "\n]}\n" : "]}\n", f);
}

/* --- Diff ----------------------------------------------------------------- */

struct name_ref {
	const uint8_t *key;
	const char *name;
	size_t order;
};

static int name_ref_cmp(const void *a, const void *b)
{
	const struct name_ref *x = a, *y = b;
	int c = memcmp(x->key, y->key, GW_KEY_LEN);

	return c ? c : (x->order > y->order) - (x->order < y->order);
}

static int name_find_cmp(const void *k, const void *b)
{
	return memcmp(k, ((const struct name_ref *)b)->key, GW_KEY_LEN);
}

/* Sorted (key, name) pairs of the known peers that have both. */
static struct name_ref *names_build(Gwcluster__PeerConfig *const *known, size_t n, size_t *m)
{
	struct name_ref *r = calloc(n + 1, sizeof(*r));
	size_t j = 0;

	*m = 0;
	if (!r)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		const Gwcluster__PeerConfig *pc = known[i];

		if (pc && pc->public_key.len == GW_KEY_LEN && pc->meta && pc->meta->name)
			r[j++] = (struct name_ref){pc->public_key.data, pc->meta->name, i};
	}
	qsort(r, j, sizeof(*r), name_ref_cmp);
	*m = j;
	return r;
}

/* The first entry for key: bsearch lands on any, walk back to the first. */
static const char *name_of(const struct name_ref *r, size_t n, const ProtobufCBinaryData *key)
{
	const struct name_ref *hit;

	if (!r || key->len != GW_KEY_LEN)
		return NULL;
	hit = bsearch(key->data, r, n, sizeof(*r), name_find_cmp);
	while (hit && hit > r && !memcmp(hit[-1].key, key->data, GW_KEY_LEN))
		hit--;
	return hit ? hit->name : NULL;
}

static void diff_lines(FILE *f, char mark, const ProtobufCBinaryData *keys, size_t n,
		       const struct name_ref *r, size_t nr)
{
	for (size_t i = 0; i < n; i++) {
		char b64[GW_KEY_B64_LEN + 1];
		const char *name = name_of(r, nr, &keys[i]);

		key_b64(b64, &keys[i]);
		fprintf(f, "%c %s%s%s\n", mark, b64, name ? "  " : "", name ? name : "");
	}
}

void syncd_fmt_diff(FILE *f, const Gwcluster__ApplyDiff *d, Gwcluster__PeerConfig *const *known,
		    size_t n_known, bool dry_run)
{
	static const Gwcluster__ApplyDiff empty = GWCLUSTER__APPLY_DIFF__INIT;
	size_t nr;
	struct name_ref *r = names_build(known, n_known, &nr);

	d = d ? d : &empty;
	diff_lines(f, '+', d->added, d->n_added, r, nr);
	diff_lines(f, '-', d->removed, d->n_removed, r, nr);
	diff_lines(f, '~', d->changed, d->n_changed, r, nr);
	if (!d->n_added && !d->n_removed && !d->n_changed)
		fprintf(f, "%s\n", dry_run ? "dry run: no changes" : "no changes");
	else if (dry_run)
		fprintf(f, "dry run: %zu to add, %zu to remove, %zu to change; nothing changed\n",
			d->n_added, d->n_removed, d->n_changed);
	else
		fprintf(f, "applied: %zu added, %zu removed, %zu changed\n", d->n_added,
			d->n_removed, d->n_changed);
	free(r);
}

static void diff_json_list(FILE *f, const char *what, const ProtobufCBinaryData *keys, size_t n,
			   const struct name_ref *r, size_t nr)
{
	fprintf(f, ",\"%s\":[", what);
	for (size_t i = 0; i < n; i++) {
		fputs(i ? ",{\"public_key\":" : "{\"public_key\":", f);
		json_key(f, &keys[i]);
		fputs(",\"name\":", f);
		syncd_fmt_json_string(f, name_of(r, nr, &keys[i]));
		fputc('}', f);
	}
	fputc(']', f);
}

void syncd_fmt_diff_json(FILE *f, const Gwcluster__ApplyDiff *d,
			 Gwcluster__PeerConfig *const *known, size_t n_known, bool dry_run)
{
	static const Gwcluster__ApplyDiff empty = GWCLUSTER__APPLY_DIFF__INIT;
	size_t nr;
	struct name_ref *r = names_build(known, n_known, &nr);

	d = d ? d : &empty;
	fprintf(f, "{\"dry_run\":%s", json_bool(dry_run));
	diff_json_list(f, "added", d->added, d->n_added, r, nr);
	diff_json_list(f, "removed", d->removed, d->n_removed, r, nr);
	diff_json_list(f, "changed", d->changed, d->n_changed, r, nr);
	fputs("}\n", f);
	free(r);
}
