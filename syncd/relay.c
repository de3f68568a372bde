// SPDX-License-Identifier: MIT
/*
 * The session relay's core: gwd's exports out to the stream, other members'
 * sessions into gwd, dumps, loss detection, role and readiness. relay.h is
 * the contract; the sockets are in relay_link.c and main.c.
 */
#include "relay.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw/crypto.h"
#include "gw/log.h"
#include "gw/pbwipe.h"

enum dump_state {
	DUMP_IDLE,	/* nothing wanted (gwd not subscribed, or config not applied) */
	DUMP_WANTED,	/* to be asked for */
	DUMP_SENT,	/* asked, waiting for its SessionDumpDone */
	DUMP_IMPORTING, /* done, waiting for gwd's result of the final import */
	DUMP_DONE,
};

enum gwd_state {
	GWD_DOWN,	/* no link */
	GWD_LINKED,	/* link up, hello not answered yet */
	GWD_SUBSCRIBED, /* gwd_hello received */
};

enum {
	HELLO_RESEND_MS = 200, /* a hello that could not be sent */
	DEAD_MIN_MS = 3 * SYNCD_RELAY_STATUS_MS,
	IMPORT_INITIAL = 64 << 10, /* first size of the import buffer */
	LOCAL_HDR_MAX = 24,	   /* version, id and field header of an import */
	WHY_LEN = 160,
};

struct member {
	uint8_t id;
	bool self;
	/* Its stream as seen here. */
	uint64_t inst;		 /* instance of its latest status; 0: none yet */
	uint64_t status_batches; /* what that status counted */
	uint64_t recv_batches;	 /* session Envelopes received */
	uint64_t recv_at_status; /* recv_batches when that status arrived */
	uint64_t lost;
	uint64_t last_batch_ns, last_status_ns; /* 0: never */
	uint64_t delay_ms;
	bool has_delay;
	Gwcluster__SessionSummary sum; /* scalars only */
	bool has_sum;
	/* Its dump into our gwd. */
	enum dump_state dump;
	uint64_t dump_id, dump_next_ns, dump_sent_ns, ack_id;
	unsigned dump_tries;
	uint64_t dumps;
	/* What its Done said of the dump being imported or imported last. */
	bool dump_gwd;	  /* its gwd was subscribed: the dump holds its sessions */
	bool dump_ready;  /* it was ready itself: the dump holds the cluster's sessions */
	uint64_t done_ns; /* when the import completed */
};

/* A dump request from another member, served by a dump of our gwd. */
struct waiter {
	uint8_t node;
	uint64_t request_id, local_id;
	bool acked; /* gwd took the dump command: its next snapshot_done covers it */
};

struct recent {
	uint8_t *buf; /* a packed SessionBatch */
	size_t len;
	uint64_t ns;
};

struct syncd_relay {
	struct syncd_relay_config cfg;
	const struct gw_clock *clock;
	struct syncd_relay_io io;
	struct member members[SYNCD_MAX_MEMBERS];
	unsigned n;
	struct member *self;
	uint64_t started_ns, instance, next_id, next_status_ns;

	/* The local gwd. */
	enum gwd_state gwd;
	uint64_t hello_id, hello_sent_ns, hello_ns, heard_ns;
	bool hello_unsent;
	Gwcluster__GwdHello hello; /* scalars only; interface not kept */
	bool mismatch;		   /* gwd runs under another node id */
	bool config_caught_up, config_applied, ready_latched;
	bool config_had; /* the state directory caught up once (it holds a configuration) */
	bool forced;	 /* gwctl role ready --force: no member's sessions needed */
	enum syncd_ready ready;
	char why[WHY_LEN];
	enum syncd_role role;
	uint64_t role_id;
	uint64_t last_export_ns;
	struct syncd_gwd_stats gst;
	uint64_t gst_ns; /* 0: none since gwd subscribed */

	/* Coalesced imports: packed SessionBatches back to back. */
	uint8_t *imp;
	size_t imp_len, imp_cap;
	struct recent recent[SYNCD_RELAY_RECENT_SLOTS];
	unsigned recent_head, recent_n;
	size_t recent_bytes;

	struct waiter waiters[SYNCD_RELAY_WAITERS];
	unsigned n_waiters;

	/* Storage for status answers (valid until the next call). */
	Gwcluster__SessionSummary out[SYNCD_MAX_MEMBERS];
	Gwcluster__SessionSummary out_self;

	struct syncd_relay_stats stats;
};

static struct gw_ratelimit relay_rl = GW_RATELIMIT_INIT(5 * GW_NSEC_PER_SEC, 5);

/* ------------------------------------------------------------------------
 * Helpers
 */

static void wipe_and_free(void *p, size_t len)
{
	if (!p)
		return;
	gw_wipe(p, len);
	free(p);
}

static uint64_t now_ns(const struct syncd_relay *r)
{
	return gw_clock_mono_ns(r->clock);
}

static uint64_t ms_since(const struct syncd_relay *r, uint64_t then)
{
	uint64_t now = now_ns(r);

	return now > then ? (now - then) / GW_NSEC_PER_MSEC : 0;
}

static uint64_t real_ms(const struct syncd_relay *r)
{
	struct timespec ts;

	gw_clock_real(r->clock, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static struct member *member_of(struct syncd_relay *r, uint8_t id)
{
	for (unsigned i = 0; i < r->n; i++)
		if (r->members[i].id == id)
			return &r->members[i];
	return NULL;
}

static void reject(struct syncd_relay *r, const char *what, unsigned from)
{
	r->stats.rejected++;
	gw_log_rl(&relay_rl, GW_LOG_WARN, "relay: dropped %s (from %s %u)", what,
		  from ? "node" : "gwd", from);
}

const char *syncd_role_name(enum syncd_role role)
{
	switch (role) {
	case SYNCD_ROLE_MASTER:
		return "master";
	case SYNCD_ROLE_BACKUP:
		return "backup";
	case SYNCD_ROLE_FAULT:
		return "fault";
	default:
		return "unknown";
	}
}

/* ------------------------------------------------------------------------
 * To gwd
 */

static uint64_t new_id(struct syncd_relay *r)
{
	return ++r->next_id;
}

static bool subscribed(const struct syncd_relay *r)
{
	return r->gwd == GWD_SUBSCRIBED && !r->mismatch;
}

static int send_local(struct syncd_relay *r, Gwcluster__LocalMessage *m)
{
	size_t len;
	uint8_t *buf;

	m->version = SYNCD_RELAY_LOCAL_VERSION;
	len = gwcluster__local_message__get_packed_size(m);
	buf = malloc(len ? len : 1);
	if (!buf)
		return -ENOMEM;
	gwcluster__local_message__pack(m, buf);
	return r->io.to_gwd(r->io.arg, buf, len);
}

static void send_hello(struct syncd_relay *r)
{
	Gwcluster__LocalMessage m = GWCLUSTER__LOCAL_MESSAGE__INIT;
	int err;

	r->hello_id = new_id(r);
	m.has_id = true;
	m.id = r->hello_id;
	m.body_case = GWCLUSTER__LOCAL_MESSAGE__BODY_HELLO;
	m.hello = true;
	err = send_local(r, &m);
	r->hello_sent_ns = now_ns(r);
	r->hello_unsent = err != 0;
	if (err && err != -EAGAIN && err != -ENOTCONN)
		gw_log_rl(&relay_rl, GW_LOG_WARN, "relay: cannot send hello to gwd: %s",
			  strerror(-err));
}

/* A RoleCommand; its id is remembered to report a refusal. */
static int send_role(struct syncd_relay *r, Gwcluster__RoleCommand__Action action,
		     ProtobufCBinaryData *keys, size_t n, int mode)
{
	Gwcluster__LocalMessage m = GWCLUSTER__LOCAL_MESSAGE__INIT;
	Gwcluster__RoleCommand rc = GWCLUSTER__ROLE_COMMAND__INIT;

	rc.action = action;
	rc.public_keys = keys;
	rc.n_public_keys = n;
	rc.has_claim_on_receive = mode >= 0;
	rc.claim_on_receive = mode > 0;
	r->role_id = new_id(r);
	m.has_id = true;
	m.id = r->role_id;
	m.body_case = GWCLUSTER__LOCAL_MESSAGE__BODY_ROLE;
	m.role = &rc;
	return send_local(r, &m);
}

/*
 * CLAIM_ALL or RELEASE_ALL for the remembered role (nothing for UNKNOWN).
 * gwd's figures predate it: they are shown again from the next stats=1.
 */
static int send_role_all(struct syncd_relay *r)
{
	bool master = r->role == SYNCD_ROLE_MASTER;
	int err;

	if (r->role == SYNCD_ROLE_UNKNOWN)
		return 0;
	err = send_role(r,
			master ? GWCLUSTER__ROLE_COMMAND__ACTION__CLAIM_ALL
			       : GWCLUSTER__ROLE_COMMAND__ACTION__RELEASE_ALL,
			NULL, 0, -1);
	if (!err) {
		r->hello.master = master;
		r->gst_ns = 0;
	}
	return err;
}

/* ------------------------------------------------------------------------
 * Imports: coalescing buffer and recent batches
 */

static void put_varint(uint8_t *p, size_t *off, uint64_t v)
{
	while (v >= 0x80) {
		p[(*off)++] = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	p[(*off)++] = (uint8_t)v;
}

static void want_dumps_again(struct syncd_relay *r)
{
	for (unsigned i = 0; i < r->n; i++) {
		struct member *m = &r->members[i];

		if (!m->self && m->dump != DUMP_IDLE && m->dump != DUMP_SENT) {
			m->dump = DUMP_WANTED;
			m->dump_next_ns = 0;
		}
	}
}

static void imports_dropped(struct syncd_relay *r, const char *why)
{
	r->stats.import_dropped++;
	gw_log_rl(&relay_rl, GW_LOG_WARN, "relay: sessions not imported into gwd (%s)", why);
	if (subscribed(r))
		want_dumps_again(r);
}

static void imp_clear(struct syncd_relay *r)
{
	gw_wipe(r->imp, r->imp_len);
	r->imp_len = 0;
}

/* Room for n more bytes; false (the buffer dropped) beyond SYNCD_RELAY_IMPORT_MAX. */
static bool imp_reserve(struct syncd_relay *r, size_t n)
{
	size_t cap = r->imp_cap ? r->imp_cap : IMPORT_INITIAL;
	uint8_t *p;

	if (r->imp_len + n <= r->imp_cap)
		return true;
	while (cap < r->imp_len + n)
		cap *= 2;
	p = cap <= SYNCD_RELAY_IMPORT_MAX ? malloc(cap) : NULL;
	if (!p) {
		imp_clear(r);
		imports_dropped(r, "import buffer full");
		return false;
	}
	if (r->imp_len)
		memcpy(p, r->imp, r->imp_len);
	wipe_and_free(r->imp, r->imp_len);
	r->imp = p;
	r->imp_cap = cap;
	return true;
}

static void imp_append(struct syncd_relay *r, const uint8_t *p, size_t n)
{
	if (!imp_reserve(r, n))
		return;
	memcpy(r->imp + r->imp_len, p, n);
	r->imp_len += n;
}

/*
 * Sends the buffer as one import_sessions: LocalMessage fields 1 (version),
 * 2 (id, when ack) and 14 (the batches) written by hand, since the payload
 * is already packed. 0 or -errno (the buffer is dropped either way).
 */
static int flush_imports(struct syncd_relay *r, uint64_t ack)
{
	size_t off = 0;
	uint8_t *buf;
	int err;

	if (!r->imp_len && !ack)
		return 0;
	if (!subscribed(r)) {
		imp_clear(r);
		return -ENOTCONN;
	}
	buf = malloc(LOCAL_HDR_MAX + r->imp_len);
	if (!buf) {
		imp_clear(r);
		imports_dropped(r, "out of memory");
		return -ENOMEM;
	}
	buf[off++] = 1 << 3; /* version, varint */
	put_varint(buf, &off, SYNCD_RELAY_LOCAL_VERSION);
	if (ack) {
		buf[off++] = 2 << 3; /* id, varint */
		put_varint(buf, &off, ack);
	}
	buf[off++] = GWCLUSTER__LOCAL_MESSAGE__BODY_IMPORT_SESSIONS << 3 | 2;
	put_varint(buf, &off, r->imp_len);
	if (r->imp_len)
		memcpy(buf + off, r->imp, r->imp_len);
	off += r->imp_len;
	imp_clear(r);
	err = r->io.to_gwd(r->io.arg, buf, off);
	if (err)
		imports_dropped(r, err == -EAGAIN ? "gwd's queue is full" : strerror(-err));
	else
		r->stats.imports_sent++;
	return err;
}

void syncd_relay_flush(struct syncd_relay *r)
{
	(void)flush_imports(r, 0);
}

static void recent_drop_oldest(struct syncd_relay *r)
{
	struct recent *e = &r->recent[r->recent_head];

	r->recent_bytes -= e->len;
	wipe_and_free(e->buf, e->len);
	e->buf = NULL;
	r->recent_head = (r->recent_head + 1) % SYNCD_RELAY_RECENT_SLOTS;
	r->recent_n--;
}

static void recent_prune(struct syncd_relay *r, uint64_t now)
{
	while (r->recent_n &&
	       now - r->recent[r->recent_head].ns > SYNCD_RELAY_RECENT_MS * GW_NSEC_PER_MSEC)
		recent_drop_oldest(r);
}

/* Keeps buf (a packed batch); frees it if it cannot. */
static void recent_add(struct syncd_relay *r, uint8_t *buf, size_t len)
{
	struct recent *e;

	if (len > SYNCD_RELAY_RECENT_BYTES) {
		wipe_and_free(buf, len);
		return;
	}
	while (r->recent_n && (r->recent_n == SYNCD_RELAY_RECENT_SLOTS ||
			       r->recent_bytes + len > SYNCD_RELAY_RECENT_BYTES))
		recent_drop_oldest(r);
	e = &r->recent[(r->recent_head + r->recent_n) % SYNCD_RELAY_RECENT_SLOTS];
	e->buf = buf;
	e->len = len;
	e->ns = now_ns(r);
	r->recent_n++;
	r->recent_bytes += len;
}

/*
 * Ages in a batch are relative to its sending: one held for held_ms is that
 * much older (gwd would otherwise keep its keypairs too long).
 */
static void age_batch(Gwcluster__SessionBatch *b, uint64_t held_ms)
{
	for (size_t i = 0; i < b->n_peers; i++) {
		Gwcluster__PeerSession *ps = b->peers[i];

		if (ps->has_last_initiation_age_ms)
			ps->last_initiation_age_ms += held_ms;
		for (size_t j = 0; j < ps->n_keypairs; j++)
			ps->keypairs[j]->age_ms += held_ms;
	}
}

/* One kept batch into the import buffer, aged by the time it was kept. */
static void replay_one(struct syncd_relay *r, const struct recent *e, uint64_t now)
{
	Gwcluster__SessionBatch *b =
	    gwcluster__session_batch__unpack(&gw_pbwipe_allocator, e->len, e->buf);
	size_t len;

	if (!b)
		return;
	age_batch(b, (now - e->ns) / GW_NSEC_PER_MSEC);
	len = gwcluster__session_batch__get_packed_size(b);
	if (imp_reserve(r, len)) {
		gwcluster__session_batch__pack(b, r->imp + r->imp_len);
		r->imp_len += len;
	}
	gwcluster__session_batch__free_unpacked(b, &gw_pbwipe_allocator);
}

static void recent_replay(struct syncd_relay *r)
{
	uint64_t now = now_ns(r);

	recent_prune(r, now);
	for (unsigned i = 0; i < r->recent_n; i++)
		replay_one(r, &r->recent[(r->recent_head + i) % SYNCD_RELAY_RECENT_SLOTS], now);
	if (r->imp_len)
		r->io.kick(r->io.arg);
}

/* ------------------------------------------------------------------------
 * Readiness
 */

static bool member_alive(const struct syncd_relay *r, const struct member *m)
{
	uint64_t dead = r->cfg.dead_ms > DEAD_MIN_MS ? r->cfg.dead_ms : DEAD_MIN_MS;

	return m->last_status_ns && ms_since(r, m->last_status_ns) <= dead;
}

/* Its sessions must be imported before this node is ready. */
static bool holds_up(const struct syncd_relay *r, const struct member *m)
{
	uint64_t dead = r->cfg.dead_ms > DEAD_MIN_MS ? r->cfg.dead_ms : DEAD_MIN_MS;

	if (m->self || m->dump == DUMP_DONE || m->dump_tries >= SYNCD_RELAY_DUMP_TRIES)
		return false;
	/* Until every member had the time to be heard, assume it is alive. */
	return member_alive(r, m) || ms_since(r, r->started_ns) <= 2 * dead;
}

/*
 * The member whose imported dump makes this node hold the cluster's
 * sessions, since gwd subscribed: one that was ready itself when it served
 * it. NULL when there is none (see has_source).
 */
static const struct member *ready_source(const struct syncd_relay *r)
{
	for (unsigned i = 0; i < r->n; i++)
		if (!r->members[i].self && r->members[i].dump == DUMP_DONE &&
		    r->members[i].dump_ready)
			return &r->members[i];
	return NULL;
}

/* Every other member's gwd sent its sessions: together they are all there are. */
static bool whole_cluster_dumped(const struct syncd_relay *r)
{
	for (unsigned i = 0; i < r->n; i++)
		if (!r->members[i].self &&
		    (r->members[i].dump != DUMP_DONE || !r->members[i].dump_gwd))
			return false;
	return true;
}

/*
 * Members it has not heard are never taken as "dead, so nothing to wait
 * for": a node is ready only once it holds the cluster's sessions by
 * evidence. That is a dump from a member that was ready itself, or dumps
 * from the gwd of every other member (a whole cluster starting together),
 * or nothing at all in a one-member cluster, or the operator's word
 * (gwctl role ready --force) that the other members are gone.
 */
static bool has_source(const struct syncd_relay *r)
{
	return r->n == 1 || r->forced || ready_source(r) || whole_cluster_dumped(r);
}

static void no_source_why(struct syncd_relay *r)
{
	bool heard = false;

	for (unsigned i = 0; i < r->n; i++)
		heard |= !r->members[i].self && r->members[i].last_status_ns;
	if (!heard)
		snprintf(r->why, sizeof(r->why),
			 "no member heard since syncd started (gwctl role ready --force if every "
			 "other member is gone for good)");
	else
		snprintf(r->why, sizeof(r->why),
			 "no member that is ready itself has sent its sessions, and not every "
			 "member has");
}

static enum syncd_ready compute_ready(struct syncd_relay *r)
{
	if (!r->config_caught_up && !(r->forced && r->config_had)) {
		snprintf(r->why, sizeof(r->why),
			 r->config_had ? "the configuration has not caught up with a member since "
					 "syncd started"
				       : "the configuration has not caught up yet");
		return SYNCD_READY_CONFIG;
	}
	if (r->gwd != GWD_SUBSCRIBED) {
		snprintf(r->why, sizeof(r->why), "gwd is not connected to syncd");
		return SYNCD_READY_GWD;
	}
	if (r->mismatch) {
		snprintf(r->why, sizeof(r->why), "gwd runs as node %u, cluster.conf says %u",
			 r->hello.node_id, r->cfg.node_id);
		return SYNCD_READY_GWD;
	}
	if (!r->config_applied) {
		snprintf(r->why, sizeof(r->why), "the configuration is not applied to gwd yet");
		return SYNCD_READY_GWD;
	}
	if (r->ready_latched)
		return SYNCD_READY;
	for (unsigned i = 0; i < r->n; i++)
		if (holds_up(r, &r->members[i])) {
			snprintf(r->why, sizeof(r->why),
				 "the sessions of node %u are not imported yet", r->members[i].id);
			return SYNCD_READY_SESSIONS;
		}
	if (!has_source(r)) {
		no_source_why(r);
		return SYNCD_READY_SESSIONS;
	}
	return SYNCD_READY;
}

static void log_ready(const struct syncd_relay *r)
{
	const struct member *src = ready_source(r);

	if (src)
		gw_info("relay: ready (sessions of node %u, which was ready, and of every live "
			"member imported)",
			src->id);
	else if (r->n == 1)
		gw_info("relay: ready (the only member)");
	else if (whole_cluster_dumped(r))
		gw_info("relay: ready (sessions of every member imported)");
	else
		gw_warn("relay: ready because the operator said so (gwctl role ready --force): "
			"no member that was ready sent its sessions");
}

static void update_ready(struct syncd_relay *r)
{
	enum syncd_ready v = compute_ready(r), old = r->ready;

	if (v == SYNCD_READY) {
		r->why[0] = '\0';
		if (!r->ready_latched) {
			r->ready_latched = true;
			log_ready(r);
			/* Claims made before the imports may have lost to greater epochs. */
			if (r->role == SYNCD_ROLE_MASTER)
				(void)send_role_all(r);
		}
	}
	r->ready = v;
	if (v != old && r->io.ready_changed)
		r->io.ready_changed(r->io.arg, v);
}

enum syncd_ready syncd_relay_ready(const struct syncd_relay *r, const char **why)
{
	if (why)
		*why = r->ready ? r->why : NULL;
	return r->ready;
}

/* ------------------------------------------------------------------------
 * From gwd
 */

static void publish_done(struct syncd_relay *r, uint64_t *ids, size_t n, uint64_t peers,
			 bool gwd_ok)
{
	Gwcluster__Envelope env = GWCLUSTER__ENVELOPE__INIT;
	Gwcluster__SessionDumpDone d = GWCLUSTER__SESSION_DUMP_DONE__INIT;
	int err;

	d.request_ids = ids;
	d.n_request_ids = n;
	d.peers = peers;
	d.has_gwd_connected = true;
	d.gwd_connected = gwd_ok;
	/* Ready: this gwd holds the cluster's sessions, the requester may rely on them. */
	d.has_ready = true;
	d.ready = gwd_ok && r->ready == SYNCD_READY;
	env.body_case = GWCLUSTER__ENVELOPE__BODY_SESSION_DUMP_DONE;
	env.session_dump_done = &d;
	err = r->io.publish(r->io.arg, &env);
	if (err)
		gw_log_rl(&relay_rl, GW_LOG_WARN, "relay: cannot publish a dump's end: %s",
			  strerror(-err));
	r->stats.dumps_served += n;
}

static void remove_waiter(struct syncd_relay *r, unsigned i)
{
	r->waiters[i] = r->waiters[--r->n_waiters];
}

/* Ends the waiters that match (all acked ones, or the one with local id). */
static void end_waiters(struct syncd_relay *r, bool acked_only, uint64_t local_id, uint64_t peers,
			bool gwd_ok)
{
	uint64_t ids[SYNCD_RELAY_WAITERS];
	size_t n = 0;

	for (unsigned i = 0; i < r->n_waiters;) {
		struct waiter *w = &r->waiters[i];

		if ((acked_only && w->acked) || (!acked_only && w->local_id == local_id)) {
			ids[n++] = w->request_id;
			remove_waiter(r, i);
		} else {
			i++;
		}
	}
	if (n)
		publish_done(r, ids, n, peers, gwd_ok);
}

static void adopt_role(struct syncd_relay *r)
{
	if (r->role == SYNCD_ROLE_UNKNOWN && r->hello.master) {
		r->role = SYNCD_ROLE_MASTER;
		r->stats.role_changes[SYNCD_ROLE_MASTER]++;
		gw_info("relay: gwd owns every peer: taking the role master");
		return;
	}
	if ((r->role == SYNCD_ROLE_MASTER) != r->hello.master && r->role != SYNCD_ROLE_UNKNOWN) {
		gw_info("relay: sending the role %s to gwd", syncd_role_name(r->role));
		(void)send_role_all(r);
	}
}

/*
 * gwd's heartbeat (a gwd_hello that answers no hello of ours): a new boot is
 * a new gwd, which knows no subscriber: subscribe again.
 */
static void on_gwd_heartbeat(struct syncd_relay *r, const Gwcluster__GwdHello *h)
{
	if (r->gwd != GWD_SUBSCRIBED)
		return;
	if (h->boot != r->hello.boot || h->node_id != r->hello.node_id) {
		gw_warn("relay: gwd restarted (boot %" PRIu64 " -> %" PRIu64 "); subscribing again",
			r->hello.boot, h->boot);
		syncd_relay_gwd_down(r);
		syncd_relay_gwd_up(r);
		return;
	}
	r->hello.master = h->has_master && h->master;
	r->hello.claim_on_receive = h->claim_on_receive;
}

static void on_gwd_hello(struct syncd_relay *r, const Gwcluster__LocalMessage *m)
{
	const Gwcluster__GwdHello *h = m->gwd_hello;

	if (!m->has_id || m->id != r->hello_id) {
		on_gwd_heartbeat(r, h);
		return;
	}
	r->hello = *h;
	r->hello.base.n_unknown_fields = 0;
	r->hello.base.unknown_fields = NULL;
	r->hello.interface = NULL;
	r->gwd = GWD_SUBSCRIBED;
	r->hello_ns = now_ns(r);
	r->gst_ns = 0;
	r->config_applied = false;
	r->ready_latched = false;
	r->mismatch = h->node_id != r->cfg.node_id;
	/* The snapshot that follows covers every dump asked so far. */
	for (unsigned i = 0; i < r->n_waiters; i++)
		r->waiters[i].acked = true;
	for (unsigned i = 0; i < r->n; i++) {
		r->members[i].dump = DUMP_IDLE;
		r->members[i].dump_tries = 0;
		r->members[i].dump_gwd = r->members[i].dump_ready = false;
	}
	if (r->mismatch) {
		gw_err("relay: gwd runs as node %u but cluster.conf says %u: sessions are not "
		       "relayed",
		       h->node_id, r->cfg.node_id);
		return;
	}
	gw_info("relay: gwd subscribed (node %u, boot %" PRIu64 ", incarnation %u%s)", h->node_id,
		h->boot, h->incarnation, h->master ? ", master" : "");
	if (h->claim_on_receive != r->cfg.anycast) {
		gw_info("relay: switching gwd to %s mode as cluster.conf says",
			r->cfg.anycast ? "anycast" : "vrrp");
		(void)send_role(r, GWCLUSTER__ROLE_COMMAND__ACTION__SET_MODE, NULL, 0,
				r->cfg.anycast);
	}
	adopt_role(r);
	if (r->io.gwd_hello)
		r->io.gwd_hello(r->io.arg);
}

static void on_export(struct syncd_relay *r, Gwcluster__SessionBatch *b)
{
	Gwcluster__Envelope env = GWCLUSTER__ENVELOPE__INIT;
	int err;

	if (!subscribed(r)) {
		reject(r, "an export before gwd_hello", 0);
		return;
	}
	r->last_export_ns = now_ns(r);
	env.body_case = GWCLUSTER__ENVELOPE__BODY_SESSIONS;
	env.sessions = b;
	err = r->io.publish(r->io.arg, &env);
	if (err) {
		r->stats.publish_failed++;
		gw_log_rl(&relay_rl, GW_LOG_WARN, "relay: cannot publish sessions: %s",
			  strerror(-err));
		return;
	}
	r->stats.exports_published++;
}

static void on_result(struct syncd_relay *r, bool has_id, uint64_t id,
		      const Gwcluster__LocalResult *res)
{
	if (!has_id)
		return;
	for (unsigned i = 0; i < r->n_waiters; i++)
		if (r->waiters[i].local_id == id) {
			if (res->error)
				end_waiters(r, false, id, 0, false);
			else
				r->waiters[i].acked = true;
			return;
		}
	for (unsigned i = 0; i < r->n; i++) {
		struct member *m = &r->members[i];

		if (m->dump != DUMP_IMPORTING || m->ack_id != id)
			continue;
		m->dump = res->error ? DUMP_WANTED : DUMP_DONE;
		if (!res->error) {
			m->done_ns = now_ns(r);
			m->dumps++;
			r->stats.dumps_completed++;
			gw_info("relay: sessions of node %u imported", m->id);
		}
		break;
	}
	if (!res->error)
		return;
	r->stats.gwd_errors++;
	gw_log_rl(&relay_rl, GW_LOG_WARN, "relay: gwd refused %s: %s",
		  id == r->role_id ? "the role command" : "a request", strerror(-res->error));
}

static void dispatch_local(struct syncd_relay *r, Gwcluster__LocalMessage *m)
{
	switch (m->body_case) {
	case GWCLUSTER__LOCAL_MESSAGE__BODY_GWD_HELLO:
		on_gwd_hello(r, m);
		break;
	case GWCLUSTER__LOCAL_MESSAGE__BODY_EXPORT_SESSIONS:
		on_export(r, m->export_sessions);
		break;
	case GWCLUSTER__LOCAL_MESSAGE__BODY_SNAPSHOT_DONE:
		if (subscribed(r))
			end_waiters(r, true, 0, m->snapshot_done, true);
		break;
	case GWCLUSTER__LOCAL_MESSAGE__BODY_RESULT:
		on_result(r, m->has_id, m->id, m->result);
		break;
	default:
		reject(r, "an unexpected message", 0);
	}
}

void syncd_relay_from_gwd(struct syncd_relay *r, uint8_t *buf, size_t len)
{
	Gwcluster__LocalMessage *m =
	    gwcluster__local_message__unpack(&gw_pbwipe_allocator, len, buf);

	gw_wipe(buf, len);
	if (!m || m->version != SYNCD_RELAY_LOCAL_VERSION) {
		reject(r, m ? "a message of an unknown version" : "a malformed message", 0);
	} else {
		r->heard_ns = now_ns(r);
		dispatch_local(r, m);
		update_ready(r);
	}
	if (m)
		gwcluster__local_message__free_unpacked(m, &gw_pbwipe_allocator);
}

void syncd_relay_gwd_up(struct syncd_relay *r)
{
	r->gwd = GWD_LINKED;
	send_hello(r);
	update_ready(r);
}

void syncd_relay_gwd_down(struct syncd_relay *r)
{
	if (r->gwd == GWD_SUBSCRIBED)
		gw_warn("relay: gwd went away");
	r->gwd = GWD_DOWN;
	r->config_applied = false;
	r->ready_latched = false;
	imp_clear(r);
	/* Dumps being served cannot complete: say so rather than let them time out. */
	for (unsigned i = 0; i < r->n_waiters; i++)
		r->waiters[i].acked = true;
	end_waiters(r, true, 0, 0, false);
	for (unsigned i = 0; i < r->n; i++) {
		r->members[i].dump = DUMP_IDLE;
		r->members[i].dump_gwd = r->members[i].dump_ready = false;
	}
	update_ready(r);
}

/* ------------------------------------------------------------------------
 * From other members
 */

static void on_batch(struct syncd_relay *r, struct member *m, const Gwcluster__SessionBatch *b)
{
	size_t len = gwcluster__session_batch__get_packed_size(b);
	uint8_t *buf;

	m->recv_batches++;
	m->last_batch_ns = now_ns(r);
	r->stats.batches_received++;
	if (!subscribed(r)) {
		r->stats.import_dropped++;
		return;
	}
	buf = malloc(len ? len : 1);
	if (!buf) {
		imports_dropped(r, "out of memory");
		return;
	}
	gwcluster__session_batch__pack(b, buf);
	imp_append(r, buf, len);
	recent_add(r, buf, len);
	if (r->imp_len >= SYNCD_RELAY_IMPORT_FLUSH)
		(void)flush_imports(r, 0);
	else if (r->imp_len)
		r->io.kick(r->io.arg);
}

static void serve_dump(struct syncd_relay *r, struct member *m,
		       const Gwcluster__SessionDumpRequest *q)
{
	Gwcluster__LocalMessage lm = GWCLUSTER__LOCAL_MESSAGE__INIT;
	uint64_t rid = q->request_id;
	struct waiter *w = NULL;

	if (!subscribed(r)) {
		publish_done(r, &rid, 1, 0, false);
		return;
	}
	for (unsigned i = 0; i < r->n_waiters && !w; i++)
		if (r->waiters[i].node == m->id)
			w = &r->waiters[i];
	if (!w && r->n_waiters == SYNCD_RELAY_WAITERS) {
		reject(r, "a dump request (too many)", m->id);
		return;
	}
	if (!w)
		w = &r->waiters[r->n_waiters++];
	*w = (struct waiter){.node = m->id, .request_id = rid, .local_id = new_id(r)};
	lm.has_id = true;
	lm.id = w->local_id;
	lm.body_case = GWCLUSTER__LOCAL_MESSAGE__BODY_DUMP;
	lm.dump = true;
	if (send_local(r, &lm))
		end_waiters(r, false, w->local_id, 0, false);
}

static void on_dump_done(struct syncd_relay *r, struct member *m,
			 const Gwcluster__SessionDumpDone *d)
{
	bool ours = false;

	for (size_t i = 0; i < d->n_request_ids && !ours; i++)
		ours = m->dump == DUMP_SENT && d->request_ids[i] == m->dump_id;
	if (!ours)
		return;
	m->ack_id = new_id(r);
	m->dump = DUMP_IMPORTING;
	/* An older syncd says nothing of its gwd when it had one, nor of its readiness. */
	m->dump_gwd = !d->has_gwd_connected || d->gwd_connected;
	m->dump_ready = d->has_ready && d->ready && m->dump_gwd;
	m->dump_sent_ns = now_ns(r);
	if (flush_imports(r, m->ack_id))
		m->dump = DUMP_WANTED;
}

/* The status counts say whether some of m's session Envelopes never arrived. */
static void check_loss(struct syncd_relay *r, struct member *m, const Gwcluster__SessionStatus *s)
{
	uint64_t expected, got;

	if (m->inst != s->instance || s->batches < m->status_batches) {
		m->inst = s->instance;
	} else {
		expected = s->batches - m->status_batches;
		got = m->recv_batches - m->recv_at_status;
		if (got < expected) {
			m->lost += expected - got;
			r->stats.batches_lost += expected - got;
			gw_log_rl(&relay_rl, GW_LOG_INFO,
				  "relay: %" PRIu64
				  " session messages of node %u were lost; asking "
				  "for its sessions again",
				  expected - got, m->id);
			if (m->dump != DUMP_IDLE && m->dump != DUMP_SENT &&
			    m->dump != DUMP_IMPORTING) {
				m->dump = DUMP_WANTED;
				m->dump_next_ns = 0;
			}
		}
	}
	m->status_batches = s->batches;
	m->recv_at_status = m->recv_batches;
}

static void on_status(struct syncd_relay *r, struct member *m, const Gwcluster__SessionStatus *s)
{
	uint64_t now_real = real_ms(r);

	check_loss(r, m, s);
	m->sum = *s->summary;
	m->sum.base.n_unknown_fields = 0;
	m->sum.base.unknown_fields = NULL;
	m->has_sum = true;
	m->last_status_ns = now_ns(r);
	m->has_delay = true;
	m->delay_ms = now_real > s->sent_unix_ms ? now_real - s->sent_unix_ms : 0;
}

bool syncd_relay_receive(struct syncd_relay *r, uint8_t from, enum syncd_channel ch,
			 const Gwcluster__Envelope *env)
{
	struct member *m;
	int body = env->body_case;

	if (body != GWCLUSTER__ENVELOPE__BODY_SESSIONS &&
	    body != GWCLUSTER__ENVELOPE__BODY_SESSION_DUMP_REQUEST &&
	    body != GWCLUSTER__ENVELOPE__BODY_SESSION_DUMP_DONE &&
	    body != GWCLUSTER__ENVELOPE__BODY_SESSION_STATUS)
		return false;
	m = member_of(r, from);
	if (!m || m->self)
		reject(r, "a session message of a non-member", from);
	else if (body == GWCLUSTER__ENVELOPE__BODY_SESSIONS && ch == SYNCD_CHANNEL_STREAM)
		on_batch(r, m, env->sessions);
	else if (body == GWCLUSTER__ENVELOPE__BODY_SESSION_DUMP_REQUEST &&
		 ch == SYNCD_CHANNEL_REQUEST)
		serve_dump(r, m, env->session_dump_request);
	else if (body == GWCLUSTER__ENVELOPE__BODY_SESSION_DUMP_DONE && ch == SYNCD_CHANNEL_STREAM)
		on_dump_done(r, m, env->session_dump_done);
	else if (body == GWCLUSTER__ENVELOPE__BODY_SESSION_STATUS && ch == SYNCD_CHANNEL_STREAM)
		on_status(r, m, env->session_status);
	else
		reject(r, "a session message on the wrong channel", from);
	update_ready(r);
	return true;
}

/* ------------------------------------------------------------------------
 * Periodic work
 */

static void fill_summary(struct syncd_relay *r, Gwcluster__SessionSummary *s)
{
	const struct syncd_gwd_stats *g = &r->gst;
	bool fresh = r->gst_ns && subscribed(r);

	gwcluster__session_summary__init(s);
	s->has_role = s->has_gwd_connected = s->has_ready = true;
	s->role = (Gwcluster__NodeRole)r->role;
	s->gwd_connected = subscribed(r);
	s->ready = r->ready;
	if (!s->gwd_connected)
		return;
	s->has_incarnation = s->has_boot = s->has_gwd_master = true;
	s->incarnation = r->hello.incarnation;
	s->boot = r->hello.boot;
	s->gwd_master = fresh ? g->master : r->hello.master;
	if (!fresh)
		return;
	s->has_peers_owned = s->has_sessions_owned = s->has_sessions_standby = true;
	s->peers_owned = g->peers_owned;
	s->sessions_owned = g->sessions_owned;
	s->sessions_standby = g->sessions_standby;
	s->has_owner_epoch_max = s->has_send_epoch_max = true;
	s->owner_epoch_max = g->owner_epoch_max;
	s->send_epoch_max = g->send_epoch_max;
	s->has_region_headroom_min = g->has_headroom;
	s->region_headroom_min = g->region_headroom_min;
	s->has_stats_age_ms = s->has_exports = s->has_imports = true;
	s->stats_age_ms = ms_since(r, r->gst_ns);
	s->exports = g->exports;
	s->imports = g->imports;
}

static void publish_status(struct syncd_relay *r)
{
	Gwcluster__Envelope env = GWCLUSTER__ENVELOPE__INIT;
	Gwcluster__SessionStatus st = GWCLUSTER__SESSION_STATUS__INIT;
	Gwcluster__SessionSummary sum;

	fill_summary(r, &sum);
	st.sent_unix_ms = real_ms(r);
	st.instance = r->instance;
	st.batches = r->stats.exports_published;
	st.summary = &sum;
	env.body_case = GWCLUSTER__ENVELOPE__BODY_SESSION_STATUS;
	env.session_status = &st;
	(void)r->io.publish(r->io.arg, &env);
}

static void request_dump(struct syncd_relay *r, struct member *m, uint64_t now)
{
	Gwcluster__Envelope env = GWCLUSTER__ENVELOPE__INIT;
	Gwcluster__SessionDumpRequest q = GWCLUSTER__SESSION_DUMP_REQUEST__INIT;
	int err;

	m->dump_id = (r->instance << 32) ^ new_id(r);
	q.request_id = m->dump_id;
	env.body_case = GWCLUSTER__ENVELOPE__BODY_SESSION_DUMP_REQUEST;
	env.session_dump_request = &q;
	err = r->io.request(r->io.arg, m->id, &env);
	if (err) {
		m->dump_next_ns = now + SYNCD_RELAY_DUMP_RETRY_MS * GW_NSEC_PER_MSEC;
		if (err != -ENOTCONN && err != -EAGAIN)
			gw_log_rl(&relay_rl, GW_LOG_WARN,
				  "relay: cannot ask node %u for its sessions: %s", m->id,
				  strerror(-err));
		return;
	}
	m->dump = DUMP_SENT;
	m->dump_sent_ns = now;
	r->stats.dumps_requested++;
}

/*
 * While this node has no source of the cluster's sessions (has_source), a
 * member whose dump did not count is asked again once its status, published
 * after that dump, says it has become ready or its gwd has subscribed.
 */
static bool dump_worth_again(const struct syncd_relay *r, const struct member *m)
{
	if (m->dump != DUMP_DONE || r->ready_latched || has_source(r) || !m->has_sum ||
	    m->last_status_ns <= m->done_ns || !member_alive(r, m))
		return false;
	return (!m->dump_ready && m->sum.has_ready && m->sum.ready == SYNCD_READY &&
		m->sum.gwd_connected) ||
	       (!m->dump_gwd && m->sum.gwd_connected);
}

static void tick_dump(struct syncd_relay *r, struct member *m, uint64_t now)
{
	if (dump_worth_again(r, m)) {
		gw_info("relay: node %u is %s now; asking for its sessions again", m->id,
			m->dump_gwd ? "ready" : "connected to its gwd");
		m->dump = DUMP_IDLE;
	}
	if (m->dump == DUMP_IDLE) {
		m->dump = DUMP_WANTED;
		m->dump_next_ns = 0;
	}
	if ((m->dump == DUMP_SENT || m->dump == DUMP_IMPORTING) &&
	    now - m->dump_sent_ns > SYNCD_RELAY_DUMP_TIMEOUT_MS * GW_NSEC_PER_MSEC) {
		if (++m->dump_tries == SYNCD_RELAY_DUMP_TRIES)
			gw_warn("relay: node %u did not send its sessions after %u requests; it no "
				"longer holds up readiness",
				m->id, m->dump_tries);
		m->dump = DUMP_WANTED;
		m->dump_next_ns = 0;
	}
	/*
	 * Only once its stream reaches us (its status arrives): the dump is
	 * published on that stream, and would be lost before.
	 */
	if (m->dump == DUMP_WANTED && now >= m->dump_next_ns && member_alive(r, m))
		request_dump(r, m, now);
}

void syncd_relay_tick(struct syncd_relay *r)
{
	uint64_t now = now_ns(r);

	if (r->gwd == GWD_LINKED &&
	    now - r->hello_sent_ns >
		(r->hello_unsent ? HELLO_RESEND_MS : SYNCD_RELAY_HELLO_RETRY_MS) * GW_NSEC_PER_MSEC)
		send_hello(r);
	/* gwd sends a heartbeat every second: silence means it forgot us. */
	if (r->gwd == GWD_SUBSCRIBED &&
	    now - r->heard_ns > SYNCD_RELAY_GWD_SILENCE_MS * GW_NSEC_PER_MSEC) {
		gw_warn("relay: gwd silent for %u ms; subscribing again",
			SYNCD_RELAY_GWD_SILENCE_MS);
		syncd_relay_gwd_down(r);
		syncd_relay_gwd_up(r);
	}
	if (subscribed(r) && r->config_applied)
		for (unsigned i = 0; i < r->n; i++)
			if (!r->members[i].self)
				tick_dump(r, &r->members[i], now);
	if (now >= r->next_status_ns) {
		r->next_status_ns = now + SYNCD_RELAY_STATUS_MS * GW_NSEC_PER_MSEC;
		publish_status(r);
	}
	recent_prune(r, now);
	update_ready(r);
}

void syncd_relay_config_state(struct syncd_relay *r, bool caught_up, bool had)
{
	if (r->config_caught_up == caught_up && r->config_had == had)
		return;
	r->config_caught_up = caught_up;
	r->config_had = had;
	update_ready(r);
}

void syncd_relay_config_applied(struct syncd_relay *r, bool peers_added)
{
	bool first = !r->config_applied;

	if (!subscribed(r))
		return;
	r->config_applied = true;
	if (peers_added && !first)
		recent_replay(r);
	if (first)
		syncd_relay_tick(r);
}

void syncd_relay_gwd_stats(struct syncd_relay *r, const struct syncd_gwd_stats *st)
{
	if (!subscribed(r))
		return;
	r->gst = *st;
	r->gst_ns = now_ns(r);
}

/* ------------------------------------------------------------------------
 * Role and status
 */

static int check_keys(const Gwcluster__RoleRequest *q, char *msg, size_t len)
{
	if (!q->n_public_keys) {
		snprintf(msg, len, "no public key given");
		return -EINVAL;
	}
	for (size_t i = 0; i < q->n_public_keys; i++)
		if (q->public_keys[i].len != GW_KEY_LEN) {
			snprintf(msg, len, "public key %zu: must be 32 bytes", i + 1);
			return -EINVAL;
		}
	return 0;
}

static int not_connected(struct syncd_relay *r, char *msg, size_t len, const char *what)
{
	if (r->mismatch)
		snprintf(msg, len, "%s; gwd runs as node %u, cluster.conf says %u", what,
			 r->hello.node_id, r->cfg.node_id);
	else
		snprintf(msg, len, "%s; gwd is not connected to syncd", what);
	return -ENOTCONN;
}

static int set_role(struct syncd_relay *r, enum syncd_role role, char *msg, size_t len)
{
	enum syncd_role old = r->role;
	char what[96];
	int err;

	r->role = role;
	if (old != role) {
		r->stats.role_changes[role]++;
		gw_info("relay: role %s (was %s)", syncd_role_name(role), syncd_role_name(old));
	}
	snprintf(what, sizeof(what), "role %s remembered", syncd_role_name(role));
	if (!subscribed(r))
		return not_connected(r, msg, len, what);
	err = send_role_all(r);
	if (err)
		snprintf(msg, len, "%s, but gwd did not take it (%s)", what, strerror(-err));
	else
		snprintf(msg, len, "role %s: gwd %s every peer", syncd_role_name(role),
			 role == SYNCD_ROLE_MASTER ? "claims" : "releases");
	return err;
}

static int claim_release(struct syncd_relay *r, const Gwcluster__RoleRequest *q, char *msg,
			 size_t len)
{
	bool claim = q->action == GWCLUSTER__ROLE_REQUEST__ACTION__CLAIM;
	int err = check_keys(q, msg, len);

	if (err)
		return err;
	if (!subscribed(r))
		return not_connected(r, msg, len, "nothing done");
	err = send_role(r,
			claim ? GWCLUSTER__ROLE_COMMAND__ACTION__CLAIM
			      : GWCLUSTER__ROLE_COMMAND__ACTION__RELEASE,
			q->public_keys, q->n_public_keys, -1);
	if (!err)
		r->gst_ns = 0;
	if (err)
		snprintf(msg, len, "gwd did not take the command (%s)", strerror(-err));
	else
		snprintf(msg, len, "gwd %s %zu peer%s", claim ? "claims" : "releases",
			 q->n_public_keys, q->n_public_keys == 1 ? "" : "s");
	return err;
}

/*
 * gwctl role ready --force: the operator says every other member is gone,
 * so this node must not wait for a member's sessions (a cluster that starts
 * with members missing for good). It lasts until syncd stops. The other
 * conditions stand: gwd subscribed, the configuration applied, the dumps of
 * live members imported. A state directory that never caught up has no
 * configuration to serve: refused.
 */
static int force_ready(struct syncd_relay *r, bool force, char *msg, size_t len)
{
	if (!force) {
		snprintf(msg, len,
			 "role ready makes this node eligible for master without any member's "
			 "sessions; it needs --force");
		return -EINVAL;
	}
	if (!r->config_had) {
		snprintf(msg, len,
			 "this node's configuration never caught up with the cluster: it has "
			 "nothing to serve (start a member that has it)");
		return -EAGAIN;
	}
	if (!r->forced)
		gw_warn("relay: readiness forced by the operator: no member's sessions are "
			"waited for");
	r->forced = true;
	update_ready(r);
	if (r->ready)
		snprintf(msg, len, "readiness forced; not ready yet (%u): %s", r->ready, r->why);
	else
		snprintf(msg, len, "readiness forced: ready for master");
	return 0;
}

int syncd_relay_role(struct syncd_relay *r, const Gwcluster__RoleRequest *q,
		     const Gwcluster__SessionSummary **summary, char *msg, size_t len)
{
	bool wants_send = q->action == GWCLUSTER__ROLE_REQUEST__ACTION__MASTER ||
			  q->action == GWCLUSTER__ROLE_REQUEST__ACTION__CLAIM;
	int err = 0;

	update_ready(r);
	msg[0] = '\0';
	if (wants_send && r->ready && !(q->has_force && q->force)) {
		snprintf(msg, len, "this node is not ready: %s (--force to claim anyway)", r->why);
		err = -EAGAIN;
	} else if (q->action == GWCLUSTER__ROLE_REQUEST__ACTION__MASTER) {
		err = set_role(r, SYNCD_ROLE_MASTER, msg, len);
	} else if (q->action == GWCLUSTER__ROLE_REQUEST__ACTION__BACKUP) {
		err = set_role(r, SYNCD_ROLE_BACKUP, msg, len);
	} else if (q->action == GWCLUSTER__ROLE_REQUEST__ACTION__FAULT) {
		err = set_role(r, SYNCD_ROLE_FAULT, msg, len);
	} else if (q->action == GWCLUSTER__ROLE_REQUEST__ACTION__CLAIM ||
		   q->action == GWCLUSTER__ROLE_REQUEST__ACTION__RELEASE) {
		err = claim_release(r, q, msg, len);
	} else if (q->action == GWCLUSTER__ROLE_REQUEST__ACTION__READY) {
		err = force_ready(r, q->has_force && q->force, msg, len);
	} else if (q->action != GWCLUSTER__ROLE_REQUEST__ACTION__SHOW) {
		snprintf(msg, len, "unknown role action %d", (int)q->action);
		err = -EINVAL;
	} else if (r->ready) {
		snprintf(msg, len, "not ready for master (%u): %s", r->ready, r->why);
	} else if (r->forced) {
		snprintf(msg, len, "readiness forced (gwctl role ready --force)");
	}
	fill_summary(r, &r->out_self);
	*summary = &r->out_self;
	return err;
}

static void member_fields(struct syncd_relay *r, Gwcluster__MemberStatus *ms, struct member *m,
			  Gwcluster__SessionSummary *out)
{
	if (m->self) {
		fill_summary(r, out);
		ms->sessions = out;
		ms->has_session_batches = ms->has_session_lost = ms->has_session_dumps = true;
		ms->session_batches = r->stats.exports_published;
		ms->session_lost = r->stats.import_dropped;
		ms->session_dumps = r->stats.dumps_served;
		ms->has_session_batch_ms_ago = r->last_export_ns != 0;
		ms->session_batch_ms_ago = ms_since(r, r->last_export_ns);
		return;
	}
	if (m->has_sum) {
		*out = m->sum;
		ms->sessions = out;
	}
	ms->has_session_batch_ms_ago = m->last_batch_ns != 0;
	ms->session_batch_ms_ago = ms_since(r, m->last_batch_ns);
	ms->has_session_delay_ms = m->has_delay;
	ms->session_delay_ms = m->delay_ms;
	ms->has_session_batches = ms->has_session_lost = ms->has_session_dumps = true;
	ms->session_batches = m->recv_batches;
	ms->session_lost = m->lost;
	ms->session_dumps = m->dumps;
}

void syncd_relay_status(struct syncd_relay *r, Gwcluster__ClusterStatus *st)
{
	update_ready(r);
	st->has_ready = true;
	st->ready = r->ready;
	st->ready_reason = r->ready ? r->why : NULL;
	for (size_t i = 0; i < st->n_members && i < SYNCD_MAX_MEMBERS; i++) {
		Gwcluster__MemberStatus *ms = st->members[i];
		struct member *m = ms->node_id <= 255 ? member_of(r, (uint8_t)ms->node_id) : NULL;

		if (m)
			member_fields(r, ms, m, &r->out[i]);
	}
}

enum syncd_role syncd_relay_role_get(const struct syncd_relay *r)
{
	return r->role;
}

bool syncd_relay_gwd_subscribed(const struct syncd_relay *r)
{
	return subscribed(r);
}

const struct syncd_relay_stats *syncd_relay_stats(const struct syncd_relay *r)
{
	return &r->stats;
}

/* ------------------------------------------------------------------------
 * Life cycle
 */

int syncd_relay_new(struct syncd_relay **out, const struct syncd_relay_config *cfg,
		    const struct gw_clock *clock, const struct syncd_relay_io *io)
{
	struct syncd_relay *r;

	*out = NULL;
	if (!cfg->node_id || !cfg->n_members || cfg->n_members > SYNCD_MAX_MEMBERS || !io->to_gwd ||
	    !io->publish || !io->request || !io->kick)
		return -EINVAL;
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->cfg = *cfg;
	r->cfg.members = NULL;
	r->clock = clock;
	r->io = *io;
	for (unsigned i = 0; i < cfg->n_members; i++) {
		struct member *m = &r->members[r->n++];

		m->id = cfg->members[i];
		m->self = m->id == cfg->node_id;
		if (m->self)
			r->self = m;
	}
	if (!r->self) {
		free(r);
		return -EINVAL;
	}
	gw_random_bytes(&r->instance, sizeof(r->instance));
	r->instance |= 1; /* never 0: "no status yet" */
	r->started_ns = now_ns(r);
	r->ready = SYNCD_READY_CONFIG;
	snprintf(r->why, sizeof(r->why), "syncd is starting");
	*out = r;
	return 0;
}

void syncd_relay_free(struct syncd_relay *r)
{
	if (!r)
		return;
	while (r->recent_n)
		recent_drop_oldest(r);
	wipe_and_free(r->imp, r->imp_cap);
	free(r);
}
