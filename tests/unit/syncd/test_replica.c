// SPDX-License-Identifier: MIT
/*
 * Replicas wired together in memory: every node has its own SQLite store
 * (on tmpfs) and its own fake clock (with skewed wall clocks); a message
 * queue stands in for the transport and can drop, duplicate, reorder and
 * partition. Every scenario ends by comparing the full stored state (records
 * and tombstones, byte for byte) of all nodes.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gw/crypto.h"
#include "gw/log.h"
#include "gw/pbwipe.h"
#include "replica.h"

enum {
	MAX_NODES = 3,
	HB_MS = 100,
	DEAD_MS = 1000,
};

struct msg {
	uint8_t from, to;
	enum syncd_channel ch;
	uint8_t *buf;
	size_t len;
};

struct net;

struct node {
	struct net *net;
	uint8_t id;
	bool up;
	char dir[64];
	struct gw_fake_clock clk;
	struct syncd_store *store;
	struct syncd_replica *r;
	unsigned changed;
	unsigned reported;  /* record_changed calls */
	bool seen[1 << 16]; /* ... by the peer number of key_of() */
};

typedef bool drop_fn(struct net *net, const struct msg *m, const Gwcluster__Envelope *env);

struct net {
	struct node nodes[MAX_NODES];
	unsigned n;
	uint8_t ids[MAX_NODES];
	struct msg *q;
	size_t nq, capq;
	bool cut[MAX_NODES + 1][MAX_NODES + 1];
	drop_fn *drop;
	unsigned drop_arg;
	bool duplicate, reorder;
	unsigned log_retain;
	unsigned merge_slice; /* small, so that multi-record updates go in slices */
	uint64_t rng;
	uint64_t delivered, dropped;
};

static struct net net;

static uint32_t rnd(struct net *n)
{
	n->rng ^= n->rng << 13;
	n->rng ^= n->rng >> 7;
	n->rng ^= n->rng << 17;
	return (uint32_t)(n->rng >> 11);
}

static void enqueue(struct net *n, uint8_t from, uint8_t to, enum syncd_channel ch,
		    Gwcluster__Envelope *env)
{
	struct msg *m;

	env->cluster = "test"; /* the transport stamps these */
	env->origin = from;
	env->version = SYNCD_PROTO_VERSION;
	if (n->nq == n->capq) {
		n->capq = n->capq ? 2 * n->capq : 256;
		n->q = realloc(n->q, n->capq * sizeof(*n->q));
		cr_assert(n->q);
	}
	m = &n->q[n->nq++];
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

	for (unsigned i = 0; i < me->net->n; i++)
		if (me->net->nodes[i].id != me->id)
			enqueue(me->net, me->id, me->net->nodes[i].id, SYNCD_CHANNEL_STREAM, env);
	return 0;
}

static int io_request(void *arg, uint8_t to, Gwcluster__Envelope *env)
{
	struct node *me = arg;

	enqueue(me->net, me->id, to, SYNCD_CHANNEL_REQUEST, env);
	return 0;
}

static int io_reply(void *arg, uint8_t to, Gwcluster__Envelope *env)
{
	struct node *me = arg;

	enqueue(me->net, me->id, to, SYNCD_CHANNEL_REPLY, env);
	return 0;
}

static void io_changed(void *arg)
{
	((struct node *)arg)->changed++;
}

static void io_record_changed(void *arg, const uint8_t *key, size_t len)
{
	struct node *nd = arg;

	nd->reported++;
	if (len == 32)
		nd->seen[key[30] << 8 | key[31]] = true;
}

static struct node *node(uint8_t id)
{
	return &net.nodes[id - 1];
}

static void node_open(uint8_t id)
{
	struct node *nd = node(id);
	struct syncd_replica_io io = {.publish = io_publish,
				      .request = io_request,
				      .reply = io_reply,
				      .changed = io_changed,
				      .arg = nd,
				      .record_changed = io_record_changed};
	struct syncd_replica_config cfg = {
	    .node_id = id,
	    .members = net.ids,
	    .n_members = net.n,
	    .heartbeat_ms = HB_MS,
	    .peer_dead_ms = DEAD_MS,
	    .log_retain = net.log_retain,
	    .version = "test-1",
	    .merge_slice = net.merge_slice,
	};

	cr_assert_eq(syncd_store_open(&nd->store, nd->dir), 0);
	cr_assert_eq(syncd_replica_open(&nd->r, &cfg, nd->store, &nd->clk.clock, &io), 0);
	nd->up = true;
}

static void node_close(uint8_t id)
{
	struct node *nd = node(id);

	syncd_replica_close(nd->r);
	syncd_store_close(nd->store);
	nd->r = NULL;
	nd->store = NULL;
	nd->up = false;
}

static void wipe_dir(const char *dir)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	cr_assert_eq(system(cmd), 0);
}

/* n nodes; the wall clocks differ: node 2 runs 5 s behind, node 3 3 s ahead. */
static void net_init(unsigned n, bool open_all)
{
	static const int64_t skew_ms[MAX_NODES] = {0, -5000, 3000};

	memset(&net, 0, sizeof(net));
	net.n = n;
	net.rng = 0x9e3779b97f4a7c15ULL;
	net.log_retain = 1000;
	net.merge_slice = 3;
	gw_log_init("test", GW_LOG_WARN, GW_LOG_STDERR);
	cr_assert_eq(gw_crypto_init(), 0);
	for (unsigned i = 0; i < n; i++) {
		struct node *nd = &net.nodes[i];

		nd->net = &net;
		nd->id = (uint8_t)(i + 1);
		net.ids[i] = nd->id;
		snprintf(nd->dir, sizeof(nd->dir), "/dev/shm/syncd-replica-XXXXXX");
		cr_assert(mkdtemp(nd->dir));
		gw_fake_clock_init(&nd->clk, GW_NSEC_PER_SEC, 1700000000);
		gw_fake_clock_step_real(&nd->clk, skew_ms[i] * (int64_t)GW_NSEC_PER_MSEC);
	}
	for (unsigned i = 0; open_all && i < n; i++)
		node_open(net.ids[i]);
}

static void net_fini(void)
{
	for (unsigned i = 0; i < net.n; i++) {
		if (net.nodes[i].up)
			node_close(net.nodes[i].id);
		wipe_dir(net.nodes[i].dir);
	}
	for (size_t i = 0; i < net.nq; i++)
		free(net.q[i].buf);
	free(net.q);
}

static void deliver_one(size_t i)
{
	struct msg m = net.q[i];
	Gwcluster__Envelope *env;
	struct node *to = node(m.to);

	memmove(&net.q[i], &net.q[i + 1], (net.nq - i - 1) * sizeof(*net.q));
	net.nq--;
	env = gwcluster__envelope__unpack(&gw_pbwipe_allocator, m.len, m.buf);
	cr_assert(env, "a replica sent something that does not unpack");
	if (!to->up || net.cut[m.from][m.to] || (net.drop && net.drop(&net, &m, env))) {
		net.dropped++;
	} else {
		net.delivered++;
		/* As syncd's transport hands them over (a duplicate: as a copy would come). */
		if (net.duplicate) {
			syncd_replica_receive(to->r, m.from, m.ch, env);
			if (to->up)
				syncd_replica_receive(to->r, m.from, m.ch, env);
		} else {
			syncd_replica_receive_taking(to->r, m.from, m.ch, env);
		}
	}
	gwcluster__envelope__free_unpacked(env, &gw_pbwipe_allocator);
	free(m.buf);
}

/* One slice of every node's pending work (merges, snapshots served); true while some remains. */
static bool work_all(void)
{
	bool more = false;

	for (unsigned i = 0; i < net.n; i++)
		if (net.nodes[i].up)
			more |= syncd_replica_work(net.nodes[i].r);
	return more;
}

/* Delivers everything, interleaving the nodes' work slices with the messages. */
static void deliver_all(void)
{
	for (unsigned guard = 0;; guard++) {
		bool more = work_all();

		cr_assert_lt(guard, 1000000, "message storm");
		if (!net.nq && !more)
			break;
		if (net.nq)
			deliver_one(net.reorder ? rnd(&net) % net.nq : 0);
	}
}

/* Advances every clock by one heartbeat, ticks every node, delivers everything. */
static void step(void)
{
	for (unsigned i = 0; i < net.n; i++)
		gw_fake_clock_advance(&net.nodes[i].clk, HB_MS * GW_NSEC_PER_MSEC);
	for (unsigned i = 0; i < net.n; i++)
		if (net.nodes[i].up)
			syncd_replica_tick(net.nodes[i].r);
	deliver_all();
}

static void run_ms(unsigned ms)
{
	for (unsigned t = 0; t < ms; t += HB_MS)
		step();
}

static bool all_synced(void)
{
	for (unsigned i = 0; i < net.n; i++)
		if (net.nodes[i].up && !syncd_replica_synced(net.nodes[i].r))
			return false;
	return true;
}

static void run_until_synced(void)
{
	for (unsigned t = 0; t < 100 && !all_synced(); t++)
		step();
	cr_assert(all_synced(), "nodes did not sync");
}

static void key_of(uint8_t key[32], unsigned n)
{
	memset(key, 0, 32);
	key[0] = 0x40;
	key[30] = (uint8_t)(n >> 8);
	key[31] = (uint8_t)n;
}

/* Writes one peer with a single allowed IP 198.18.X.Y/32 and a keepalive. */
static int put_peer(uint8_t id, unsigned n, unsigned ip, unsigned keepalive)
{
	Gwcluster__Record rec = GWCLUSTER__RECORD__INIT, *recs[1] = {&rec};
	Gwcluster__PeerConfig pc = GWCLUSTER__PEER_CONFIG__INIT;
	uint8_t key[32];
	char ipbuf[32], *ips[1] = {ipbuf};

	key_of(key, n);
	snprintf(ipbuf, sizeof(ipbuf), "198.18.%u.%u/32", (ip >> 8) & 0xff, ip & 0xff);
	pc.public_key.data = key;
	pc.public_key.len = 32;
	pc.allowed_ips = ips;
	pc.n_allowed_ips = 1;
	pc.has_persistent_keepalive = keepalive != 0;
	pc.persistent_keepalive = keepalive;
	rec.item_case = GWCLUSTER__RECORD__ITEM_PEER;
	rec.peer = &pc;
	return syncd_replica_write(node(id)->r, recs, 1, NULL);
}

static int del_peer(uint8_t id, unsigned n)
{
	Gwcluster__Record rec = GWCLUSTER__RECORD__INIT, *recs[1] = {&rec};
	Gwcluster__PeerTombstone t = GWCLUSTER__PEER_TOMBSTONE__INIT;
	uint8_t key[32];

	key_of(key, n);
	t.public_key.data = key;
	t.public_key.len = 32;
	rec.item_case = GWCLUSTER__RECORD__ITEM_PEER_DELETED;
	rec.peer_deleted = &t;
	return syncd_replica_write(node(id)->r, recs, 1, NULL);
}

struct dump {
	char *s;
	size_t len, cap;
};

static int dump_row(void *arg, const struct syncd_row *row)
{
	struct dump *d = arg;
	size_t need = 64 + 2 * (row->key_len + row->blob_len);

	if (d->len + need >= d->cap) {
		d->cap = 2 * (d->cap + need);
		d->s = realloc(d->s, d->cap);
		cr_assert(d->s);
	}
	for (size_t i = 0; i < row->key_len; i++)
		d->len += (size_t)sprintf(d->s + d->len, "%02x", row->key[i]);
	d->len += (size_t)sprintf(d->s + d->len, " %llu %u %d ", (unsigned long long)row->hlc,
				  row->writer, row->deleted);
	for (size_t i = 0; i < row->blob_len; i++)
		d->len += (size_t)sprintf(d->s + d->len, "%02x", row->blob[i]);
	d->s[d->len++] = '\n';
	d->s[d->len] = '\0';
	return 0;
}

/* Every record and tombstone of a node, as text (caller frees). */
static char *dump(uint8_t id)
{
	struct dump d = {0};

	d.s = calloc(1, 1);
	cr_assert_eq(syncd_store_foreach(node(id)->store, false, dump_row, &d), 0);
	return d.s;
}

static void assert_converged(void)
{
	char *first = NULL;

	for (unsigned i = 0; i < net.n; i++) {
		char *s;

		if (!net.nodes[i].up)
			continue;
		s = dump(net.nodes[i].id);
		if (!first)
			first = s;
		else {
			cr_assert_str_eq(s, first, "node %u differs", net.nodes[i].id);
			free(s);
		}
	}
	free(first);
}

static uint64_t live_peers(uint8_t id, uint64_t *tombstones)
{
	uint64_t live, dead;

	cr_assert_eq(syncd_store_count(node(id)->store, &live, &dead), 0);
	if (tombstones)
		*tombstones = dead;
	return live;
}

/* The allowed IP of peer n on node id, as the number put_peer was given. */
static int peer_ip(uint8_t id, unsigned n)
{
	Gwcluster__Record *rec;
	uint8_t key[32];
	unsigned a, b;
	int rc;

	key_of(key, n);
	rc = syncd_replica_peer(node(id)->r, key, &rec);
	if (rc)
		return rc;
	cr_assert_eq(sscanf(rec->peer->allowed_ips[0], "198.18.%u.%u/32", &a, &b), 2);
	gwcluster__record__free_unpacked(rec, NULL);
	return (int)(a << 8 | b);
}

TestSuite(replica, .fini = net_fini);

Test(replica, fresh_cluster_bootstraps)
{
	net_init(3, true);
	for (unsigned i = 1; i <= 3; i++)
		cr_assert_eq(put_peer((uint8_t)i, 1, 1, 0), -EAGAIN, "writable before synced");
	run_until_synced();
	for (unsigned i = 1; i <= 3; i++)
		cr_assert(syncd_replica_writable(node((uint8_t)i)->r));
	cr_assert_eq(put_peer(2, 1, 7, 25), 0);
	run_ms(300);
	for (unsigned i = 1; i <= 3; i++)
		cr_assert_eq(peer_ip((uint8_t)i, 1), 7);
	assert_converged();
}

Test(replica, single_node_is_synced_at_once)
{
	net_init(1, true);
	step();
	cr_assert(all_synced());
	cr_assert_eq(put_peer(1, 1, 1, 0), 0);
	cr_assert_eq(del_peer(1, 1), 0);
	cr_assert_eq(live_peers(1, NULL), 0);
	run_ms(2000);
	uint64_t dead;
	live_peers(1, &dead);
	cr_assert_eq(dead, 0, "a lone node collects its tombstones");
}

Test(replica, concurrent_writes_converge)
{
	net_init(3, true);
	run_until_synced();
	/* Same peer, three values, nobody has seen the others'. */
	cr_assert_eq(put_peer(1, 9, 1, 0), 0);
	cr_assert_eq(put_peer(2, 9, 2, 0), 0);
	cr_assert_eq(put_peer(3, 9, 3, 0), 0);
	deliver_all();
	/* Node 3's wall clock is the furthest ahead: its stamp is the greatest. */
	for (unsigned i = 1; i <= 3; i++)
		cr_assert_eq(peer_ip((uint8_t)i, 9), 3);
	assert_converged();
	/* Node 2's clock is 8 s behind node 3's, yet having seen node 3's write it wins now. */
	cr_assert_eq(put_peer(2, 9, 4, 0), 0);
	run_ms(200);
	for (unsigned i = 1; i <= 3; i++)
		cr_assert_eq(peer_ip((uint8_t)i, 9), 4);
	assert_converged();
}

Test(replica, many_writes_reordered_and_duplicated_converge)
{
	net_init(3, true);
	run_until_synced();
	net.reorder = true;
	net.duplicate = true;
	for (unsigned k = 0; k < 300; k++) {
		uint8_t id = (uint8_t)(1 + rnd(&net) % 3);

		if (rnd(&net) % 5 == 0)
			cr_assert_eq(del_peer(id, rnd(&net) % 40), 0);
		else
			cr_assert_eq(put_peer(id, rnd(&net) % 40, k, 0), 0);
		if (rnd(&net) % 4 == 0)
			step();
	}
	run_ms(1000);
	assert_converged();
	for (unsigned i = 1; i <= 3; i++) {
		const struct syncd_replica_stats *st = syncd_replica_stats(node((uint8_t)i)->r);

		cr_assert_gt(st->duplicates, 0);
		for (unsigned o = 1; o <= 3; o++)
			cr_assert_eq(syncd_replica_applied(node((uint8_t)i)->r, (uint8_t)o),
				     syncd_replica_own_seq(node((uint8_t)o)->r));
	}
}

Test(replica, duplicates_are_ignored)
{
	net_init(2, true);
	run_until_synced();
	net.duplicate = true;
	for (unsigned k = 0; k < 10; k++)
		cr_assert_eq(put_peer(1, k, k, 0), 0);
	deliver_all();
	cr_assert_eq(syncd_replica_applied(node(2)->r, 1), 10);
	cr_assert_geq(syncd_replica_stats(node(2)->r)->duplicates, 10);
	cr_assert_eq(syncd_replica_stats(node(2)->r)->updates_applied, 10);
	cr_assert_eq(live_peers(2, NULL), 10);
	assert_converged();
}

/* Drops stream updates from node 1 to node 2 with seq in [drop_arg, drop_arg + 1]. */
static bool drop_two(struct net *n, const struct msg *m, const Gwcluster__Envelope *env)
{
	return m->from == 1 && m->to == 2 && m->ch == SYNCD_CHANNEL_STREAM &&
	       env->body_case == GWCLUSTER__ENVELOPE__BODY_UPDATE && env->seq >= n->drop_arg &&
	       env->seq <= n->drop_arg + 1;
}

Test(replica, gap_in_the_middle_is_repaired)
{
	net_init(3, true);
	run_until_synced();
	net.drop = drop_two;
	net.drop_arg = 2;
	for (unsigned k = 1; k <= 6; k++) {
		cr_assert_eq(put_peer(1, k, k, 0), 0);
		deliver_all();
	}
	/* Updates 4..6 arrived out of order and triggered a repair of 2..3. */
	cr_assert_geq(syncd_replica_stats(node(2)->r)->buffered, 1);
	cr_assert_geq(syncd_replica_stats(node(2)->r)->repairs_sent, 1);
	cr_assert_eq(syncd_replica_applied(node(2)->r, 1), 6);
	cr_assert_geq(syncd_replica_stats(node(1)->r)->repairs_served, 1);
	assert_converged();
}

Test(replica, lost_tail_is_found_by_heartbeat)
{
	net_init(2, true);
	run_until_synced();
	net.drop = drop_two;
	net.drop_arg = 2;
	cr_assert_eq(put_peer(1, 1, 1, 0), 0);
	cr_assert_eq(put_peer(1, 2, 2, 0), 0);
	cr_assert_eq(put_peer(1, 3, 3, 0), 0);
	deliver_all();
	cr_assert_eq(syncd_replica_applied(node(2)->r, 1), 1);
	step(); /* node 1's heartbeat says own_seq 3 */
	step();
	cr_assert_eq(syncd_replica_applied(node(2)->r, 1), 3);
	assert_converged();
}

Test(replica, tombstones_replicate_and_win)
{
	net_init(3, true);
	run_until_synced();
	cr_assert_eq(put_peer(1, 5, 5, 0), 0);
	run_ms(200);
	cr_assert_eq(del_peer(3, 5), 0);
	run_ms(200);
	for (unsigned i = 1; i <= 3; i++) {
		uint64_t dead;

		cr_assert_eq(live_peers((uint8_t)i, &dead), 0);
		cr_assert_eq(peer_ip((uint8_t)i, 5), -ENOENT);
	}
	assert_converged();
}

/*
 * The hard case for collection: node 2 (clock 5 s behind, partitioned)
 * updates a peer that node 1 deletes. The delete is newer and must win, and
 * its tombstone may only go once node 2's older write has been seen by all,
 * or that write would bring the peer back.
 */
Test(replica, tombstone_outlives_concurrent_older_write)
{
	net_init(3, true);
	run_until_synced();
	cr_assert_eq(put_peer(1, 7, 1, 0), 0);
	run_ms(300);
	net.cut[2][1] = net.cut[2][3] = net.cut[1][2] = net.cut[3][2] = true;
	run_ms(500);
	cr_assert_eq(del_peer(1, 7), 0);
	cr_assert_eq(put_peer(2, 7, 2, 0), 0);
	run_ms(5000);
	uint64_t dead;
	live_peers(1, &dead);
	cr_assert_eq(dead, 1, "tombstone collected while node 2 was away");
	memset(net.cut, 0, sizeof(net.cut));
	run_ms(3000);
	for (unsigned i = 1; i <= 3; i++) {
		cr_assert_eq(peer_ip((uint8_t)i, 7), -ENOENT, "node %u resurrected the peer", i);
		live_peers((uint8_t)i, &dead);
		cr_assert_eq(dead, 0, "node %u kept the tombstone", i);
	}
	assert_converged();
}

Test(replica, tombstone_collected_only_after_every_member_saw_it)
{
	net_init(3, true);
	run_until_synced();
	cr_assert_eq(put_peer(1, 3, 3, 0), 0);
	run_ms(300);
	net.cut[3][1] = net.cut[3][2] = net.cut[1][3] = net.cut[2][3] = true;
	cr_assert_eq(del_peer(2, 3), 0);
	run_ms(10000);
	for (unsigned i = 1; i <= 2; i++) {
		uint64_t dead;

		live_peers((uint8_t)i, &dead);
		cr_assert_eq(dead, 1, "node %u collected a tombstone node 3 never saw", i);
	}
	memset(net.cut, 0, sizeof(net.cut));
	run_ms(3000);
	for (unsigned i = 1; i <= 3; i++) {
		uint64_t dead;

		cr_assert_eq(live_peers((uint8_t)i, &dead), 0);
		cr_assert_eq(dead, 0, "node %u kept the tombstone", i);
		cr_assert_gt(syncd_replica_stats(node((uint8_t)i)->r)->tombstones_collected, 0);
	}
	assert_converged();
}

/* Node 3 hears everyone's heartbeats but gets no update (nor snapshot) of anyone. */
static bool drop_updates_to_3(struct net *n, const struct msg *m, const Gwcluster__Envelope *env)
{
	(void)n;
	return m->to == 3 && (env->body_case == GWCLUSTER__ENVELOPE__BODY_UPDATE ||
			      env->body_case == GWCLUSTER__ENVELOPE__BODY_SNAPSHOT_CHUNK);
}

Test(replica, tombstone_kept_while_a_live_member_lags)
{
	uint64_t dead;

	net_init(3, true);
	run_until_synced();
	cr_assert_eq(put_peer(2, 4, 4, 0), 0);
	run_ms(300);
	net.drop = drop_updates_to_3;
	cr_assert_eq(del_peer(1, 4), 0);
	run_ms(5000);
	cr_assert_eq(peer_ip(3, 4), 4);
	for (unsigned i = 1; i <= 2; i++) {
		live_peers((uint8_t)i, &dead);
		cr_assert_eq(dead, 1, "node %u collected a tombstone node 3 lacks", i);
	}
	cr_assert(!syncd_replica_synced(node(3)->r), "node 3 claims synced with a stuck gap");
	net.drop = NULL;
	run_ms(3000);
	for (unsigned i = 1; i <= 3; i++) {
		live_peers((uint8_t)i, &dead);
		cr_assert_eq(dead, 0, "node %u kept the tombstone", i);
	}
	cr_assert(all_synced());
	assert_converged();
}

Test(replica, partition_then_heal_converges)
{
	net_init(3, true);
	run_until_synced();
	for (unsigned k = 0; k < 5; k++)
		cr_assert_eq(put_peer(1, k, k, 0), 0);
	run_ms(300);
	net.cut[3][1] = net.cut[3][2] = net.cut[1][3] = net.cut[2][3] = true;
	/* Both sides change: new peers, the same peer, a delete. */
	cr_assert_eq(put_peer(1, 100, 100, 0), 0);
	cr_assert_eq(put_peer(3, 200, 200, 0), 0);
	cr_assert_eq(put_peer(2, 1, 11, 0), 0);
	cr_assert_eq(put_peer(3, 1, 31, 0), 0);
	cr_assert_eq(del_peer(3, 2), 0);
	run_ms(3000);
	cr_assert_eq(peer_ip(1, 200), -ENOENT);
	cr_assert_eq(peer_ip(3, 100), -ENOENT);
	cr_assert(syncd_replica_writable(node(3)->r), "a partitioned node keeps taking writes");
	memset(net.cut, 0, sizeof(net.cut));
	run_ms(2000);
	assert_converged();
	cr_assert(all_synced());
	for (unsigned i = 1; i <= 3; i++) {
		cr_assert_eq(peer_ip((uint8_t)i, 100), 100);
		cr_assert_eq(peer_ip((uint8_t)i, 200), 200);
		cr_assert_eq(peer_ip((uint8_t)i, 2), -ENOENT);
	}
}

Test(replica, trimmed_log_refuses_repair_and_snapshot_follows)
{
	net_init(3, false);
	net.log_retain = 5;
	for (unsigned i = 1; i <= 3; i++)
		node_open((uint8_t)i);
	run_until_synced();
	net.cut[3][1] = net.cut[3][2] = net.cut[1][3] = net.cut[2][3] = true;
	for (unsigned k = 0; k < 20; k++)
		cr_assert_eq(put_peer(1, k, k, 0), 0);
	run_ms(500);
	memset(net.cut, 0, sizeof(net.cut));
	run_ms(2000);
	cr_assert_geq(syncd_replica_stats(node(3)->r)->refusals_received, 1);
	cr_assert_geq(syncd_replica_stats(node(3)->r)->snapshots_completed, 1);
	cr_assert_eq(syncd_replica_applied(node(3)->r, 1), 20);
	assert_converged();
}

Test(replica, dead_origin_gap_filled_by_snapshot_from_another)
{
	net_init(3, true);
	run_until_synced();
	net.cut[1][3] = net.cut[3][1] = true;
	for (unsigned k = 0; k < 4; k++)
		cr_assert_eq(put_peer(1, k, k, 0), 0);
	run_ms(300);
	/* Node 1 dies; node 2 has its updates, node 3 does not. */
	node_close(1);
	memset(net.cut, 0, sizeof(net.cut));
	run_ms(3000);
	cr_assert_eq(syncd_replica_applied(node(3)->r, 1), 4);
	cr_assert_geq(syncd_replica_stats(node(3)->r)->snapshots_completed, 1);
	assert_converged();
}

Test(replica, new_node_joins_by_snapshot)
{
	net_init(3, false);
	node_open(1);
	node_open(2);
	run_ms(2500); /* node 3 never answers: the others start without it */
	cr_assert(syncd_replica_synced(node(1)->r));
	for (unsigned k = 0; k < 2500; k++)
		cr_assert_eq(put_peer((uint8_t)(1 + k % 2), k, k, 0), 0);
	for (unsigned k = 0; k < 100; k++)
		cr_assert_eq(del_peer(2, k), 0);
	run_ms(300);
	node_open(3);
	cr_assert_eq(put_peer(3, 1, 1, 0), -EAGAIN);
	run_until_synced();
	cr_assert_eq(syncd_replica_stats(node(3)->r)->snapshots_completed, 1);
	cr_assert_eq(live_peers(3, NULL), 2400);
	assert_converged();
	cr_assert_eq(put_peer(3, 1, 1, 0), 0);
	run_ms(200);
	assert_converged();
}

Test(replica, restart_keeps_state_and_clock)
{
	net_init(2, true);
	run_until_synced();
	for (unsigned k = 0; k < 5; k++)
		cr_assert_eq(put_peer(1, k, k, 0), 0);
	run_ms(300);
	char *before = dump(1);
	node_close(1);
	/* Its wall clock steps back an hour while it is down. */
	gw_fake_clock_step_real(&node(1)->clk, -3600 * (int64_t)GW_NSEC_PER_SEC);
	node_open(1);
	char *after = dump(1);
	cr_assert_str_eq(before, after);
	free(before);
	free(after);
	cr_assert_eq(syncd_replica_own_seq(node(1)->r), 5);
	cr_assert(syncd_replica_writable(node(1)->r), "a restarted node knows its seq");
	/* A write after the restart still beats the ones before it. */
	cr_assert_eq(put_peer(1, 0, 99, 0), 0);
	run_until_synced();
	run_ms(300);
	cr_assert_eq(peer_ip(2, 0), 99);
	cr_assert_eq(syncd_replica_applied(node(2)->r, 1), 6);
	assert_converged();
}

/*
 * Readiness for master rests on caught_up: a node restarted while cut off
 * from every member still takes writes (it knows its seq) but has not
 * caught up, however long it waits; once it hears a member it catches up.
 */
Test(replica, isolated_restart_is_writable_but_not_caught_up)
{
	net_init(3, true);
	run_until_synced();
	cr_assert_eq(put_peer(2, 1, 1, 0), 0);
	run_ms(300);
	node_close(1);
	cr_assert_eq(put_peer(2, 1, 2, 0), 0); /* node 1 misses this one */
	run_ms(300);
	for (unsigned i = 2; i <= 3; i++)
		net.cut[1][i] = net.cut[i][1] = true;
	node_open(1);
	cr_assert(syncd_replica_writable(node(1)->r), "a restarted node knows its seq");
	cr_assert_not(syncd_replica_caught_up(node(1)->r));
	run_ms(60000);
	cr_assert_not(syncd_replica_caught_up(node(1)->r), "caught up without hearing any member");
	cr_assert_not(syncd_replica_synced(node(1)->r));
	cr_assert_eq(peer_ip(1, 1), 1);
	/* Node 3 only comes back: enough to catch up. */
	net.cut[1][3] = net.cut[3][1] = false;
	run_ms(3000);
	cr_assert(syncd_replica_caught_up(node(1)->r));
	cr_assert_eq(peer_ip(1, 1), 2, "caught up without node 2's last write");
	/* Caught up stays true while a member is cut off again. */
	net.cut[1][3] = net.cut[3][1] = true;
	run_ms(5000);
	cr_assert(syncd_replica_caught_up(node(1)->r));
}

Test(replica, single_node_caught_up_at_once)
{
	net_init(1, true);
	step();
	cr_assert(syncd_replica_caught_up(node(1)->r));
}

Test(replica, wiped_node_continues_its_sequence)
{
	net_init(2, true);
	run_until_synced();
	for (unsigned k = 0; k < 5; k++)
		cr_assert_eq(put_peer(2, k, k, 0), 0);
	run_ms(300);
	node_close(2);
	wipe_dir(node(2)->dir);
	node_open(2);
	run_until_synced();
	cr_assert_eq(syncd_replica_own_seq(node(2)->r), 5);
	cr_assert_eq(put_peer(2, 50, 50, 0), 0);
	run_ms(300);
	cr_assert_eq(peer_ip(1, 50), 50, "the new write was taken for a duplicate");
	assert_converged();
}

static void send_env(uint8_t from, uint8_t to, enum syncd_channel ch, Gwcluster__Envelope *env)
{
	env->origin = from;
	syncd_replica_receive(node(to)->r, from, ch, env);
}

Test(replica, invalid_input_is_rejected_and_changes_nothing)
{
	Gwcluster__Envelope env = GWCLUSTER__ENVELOPE__INIT;
	Gwcluster__Update u = GWCLUSTER__UPDATE__INIT;
	Gwcluster__Record rec = GWCLUSTER__RECORD__INIT, *recs[1] = {&rec};
	Gwcluster__PeerConfig pc = GWCLUSTER__PEER_CONFIG__INIT;
	uint8_t key[32] = {1};
	char *before;

	net_init(2, true);
	run_until_synced();
	before = dump(2);
	pc.public_key.data = key;
	pc.public_key.len = 32;
	rec.item_case = GWCLUSTER__RECORD__ITEM_PEER;
	rec.peer = &pc;
	rec.hlc = 1;
	u.records = recs;
	u.n_records = 1;
	env.body_case = GWCLUSTER__ENVELOPE__BODY_UPDATE;
	env.update = &u;
	env.has_seq = true;
	env.seq = 1;
	/* Node 1 forwarding a write it claims node 2 made. */
	rec.writer = 2;
	send_env(1, 2, SYNCD_CHANNEL_STREAM, &env);
	/* An update sent as a request; one without seq. */
	rec.writer = 1;
	send_env(1, 2, SYNCD_CHANNEL_REQUEST, &env);
	env.has_seq = false;
	send_env(1, 2, SYNCD_CHANNEL_STREAM, &env);
	/* From a node that is no member, and from ourselves. */
	env.has_seq = true;
	send_env(9, 2, SYNCD_CHANNEL_STREAM, &env);
	send_env(2, 2, SYNCD_CHANNEL_STREAM, &env);
	/* A record with a 31-byte key. */
	env.seq = 2;
	pc.public_key.len = 31;
	send_env(1, 2, SYNCD_CHANNEL_STREAM, &env);
	/* A chunk nobody asked for. */
	Gwcluster__SnapshotChunk ch = GWCLUSTER__SNAPSHOT_CHUNK__INIT;
	ch.records = recs;
	ch.n_records = 1;
	ch.last = true;
	pc.public_key.len = 32;
	env.body_case = GWCLUSTER__ENVELOPE__BODY_SNAPSHOT_CHUNK;
	env.snapshot_chunk = &ch;
	send_env(1, 2, SYNCD_CHANNEL_REPLY, &env);
	char *after = dump(2);
	cr_assert_str_eq(before, after);
	free(before);
	free(after);
	cr_assert_geq(syncd_replica_stats(node(2)->r)->rejected, 6);
}

Test(replica, status_reports_members)
{
	Gwcluster__ClusterStatus st = GWCLUSTER__CLUSTER_STATUS__INIT;

	net_init(3, true);
	run_until_synced();
	for (unsigned k = 0; k < 3; k++)
		cr_assert_eq(put_peer(1, k, k, 0), 0);
	run_ms(200);
	net.cut[1][3] = true; /* node 3 misses node 1's stream (and heartbeats) */
	cr_assert_eq(put_peer(1, 9, 9, 0), 0);
	step(); /* the update arrives */
	step(); /* heartbeats carry the vectors back */
	cr_assert_eq(syncd_replica_status(node(1)->r, &st), 0);
	cr_assert_eq(st.node_id, 1);
	cr_assert(st.synced);
	cr_assert_eq(st.peers, 4);
	cr_assert_eq(st.n_members, 3);
	cr_assert(st.members[0]->self);
	cr_assert(st.members[1]->reachable);
	cr_assert_str_eq(st.members[1]->version, "test-1");
	cr_assert_eq(st.members[1]->lag, 0);
	cr_assert_eq(st.members[2]->lag, 1, "node 3 has not confirmed update 4");
	syncd_replica_status_free(&st);
	net.cut[1][3] = false;
	run_ms(300);
	gwcluster__cluster_status__init(&st);
	cr_assert_eq(syncd_replica_status(node(1)->r, &st), 0);
	cr_assert_eq(st.members[2]->lag, 0);
	syncd_replica_status_free(&st);
}

Test(replica, snapshot_requests_are_rate_limited)
{
	Gwcluster__Envelope env = GWCLUSTER__ENVELOPE__INIT;
	Gwcluster__SnapshotRequest rq = GWCLUSTER__SNAPSHOT_REQUEST__INIT;

	net_init(2, true);
	run_until_synced();
	env.body_case = GWCLUSTER__ENVELOPE__BODY_SNAPSHOT_REQUEST;
	env.snapshot_request = &rq;
	for (unsigned i = 0; i < 5; i++) {
		rq.request_id = i;
		send_env(2, 1, SYNCD_CHANNEL_REQUEST, &env);
	}
	while (work_all())
		;
	cr_assert_eq(syncd_replica_stats(node(1)->r)->snapshots_served, 1);
	cr_assert_eq(syncd_replica_stats(node(1)->r)->rejected, 4);
	run_ms(1000);
	send_env(2, 1, SYNCD_CHANNEL_REQUEST, &env);
	while (work_all())
		;
	cr_assert_eq(syncd_replica_stats(node(1)->r)->snapshots_served, 2);
	deliver_all(); /* node 2 never asked: the chunks are ignored */
	cr_assert_eq(syncd_replica_stats(node(2)->r)->snapshots_completed, 0);
}

/* Node 2 gets no update of node 1's by any path, but snapshots go through. */
static bool drop_updates_1_to_2(struct net *n, const struct msg *m, const Gwcluster__Envelope *env)
{
	(void)n;
	return m->from == 1 && m->to == 2 && env->body_case == GWCLUSTER__ENVELOPE__BODY_UPDATE;
}

Test(replica, unanswered_repairs_fall_back_to_a_snapshot)
{
	net_init(2, true);
	run_until_synced();
	net.drop = drop_updates_1_to_2;
	for (unsigned k = 0; k < 3; k++)
		cr_assert_eq(put_peer(1, k, k, 0), 0);
	run_ms(5000);
	cr_assert_geq(syncd_replica_stats(node(2)->r)->repairs_sent, SYNCD_REPAIR_TRIES);
	cr_assert_eq(syncd_replica_stats(node(2)->r)->snapshots_completed, 1);
	cr_assert_eq(syncd_replica_applied(node(2)->r, 1), 3);
	assert_converged();
}

/*
 * The applier relies on record_changed to know what to apply: every record
 * that replaced what a node held is reported (own writes, remote updates,
 * repairs and snapshots), and nothing else.
 */
Test(replica, every_stored_record_is_reported)
{
	net_init(3, false);
	net.log_retain = 10; /* node 3 cannot repair: it takes a snapshot */
	node_open(1);
	node_open(2);
	run_ms(2500);
	for (unsigned k = 0; k < 300; k++)
		cr_assert_eq(put_peer((uint8_t)(1 + k % 2), k, k, 0), 0);
	for (unsigned k = 0; k < 20; k++)
		cr_assert_eq(del_peer(2, k), 0);
	net.duplicate = true;
	net.reorder = true;
	run_ms(1000);
	/* Node 3 joins by snapshot. */
	node_open(3);
	run_until_synced();
	cr_assert_eq(put_peer(3, 1000, 1, 0), 0);
	run_ms(3000);
	assert_converged();
	for (unsigned i = 0; i < net.n; i++) {
		struct node *nd = &net.nodes[i];

		cr_expect_eq(nd->reported, syncd_replica_stats(nd->r)->records_won, "node %u",
			     nd->id);
		for (unsigned k = 0; k < 300; k++)
			cr_expect(nd->seen[k], "node %u: peer %u never reported", nd->id, k);
		cr_expect(nd->seen[1000], "node %u: peer 1000 never reported", nd->id);
	}
	cr_expect_geq(syncd_replica_stats(node(3)->r)->snapshots_completed, 1);
}

/* One update of n peers (numbers first..first+n-1) written on node id. */
static int put_peers(uint8_t id, unsigned first, unsigned n)
{
	Gwcluster__Record *recs[64], rec[64];
	Gwcluster__PeerConfig pc[64];
	uint8_t key[64][32];
	char ipbuf[64][32], *ips[64];

	cr_assert_leq(n, 64);
	for (unsigned i = 0; i < n; i++) {
		gwcluster__record__init(&rec[i]);
		gwcluster__peer_config__init(&pc[i]);
		key_of(key[i], first + i);
		snprintf(ipbuf[i], sizeof(ipbuf[i]), "198.18.%u.%u/32", ((first + i) >> 8) & 0xff,
			 (first + i) & 0xff);
		ips[i] = ipbuf[i];
		pc[i].public_key.data = key[i];
		pc[i].public_key.len = 32;
		pc[i].allowed_ips = &ips[i];
		pc[i].n_allowed_ips = 1;
		rec[i].item_case = GWCLUSTER__RECORD__ITEM_PEER;
		rec[i].peer = &pc[i];
		recs[i] = &rec[i];
	}
	return syncd_replica_write(node(id)->r, recs, n, NULL);
}

/* Delivers the queued messages to node `to` only, without running anyone's work. */
static void deliver_to(uint8_t to)
{
	for (size_t i = 0; i < net.nq;)
		if (net.q[i].to == to)
			deliver_one(i);
		else
			i++;
}

Test(replica, a_large_update_is_merged_in_slices)
{
	uint64_t repairs;

	net_init(2, true);
	run_until_synced();
	cr_assert_eq(put_peers(1, 0, 10), 0); /* 10 records, slices of 3 */
	net.duplicate = true; /* the second copy comes while the first is being merged */
	deliver_to(2);
	net.duplicate = false;
	cr_assert_eq(syncd_replica_stats(node(2)->r)->duplicates, 1);
	cr_assert_eq(live_peers(2, NULL), 0, "merged within the receive");
	cr_assert(syncd_replica_work(node(2)->r));
	cr_assert_eq(live_peers(2, NULL), 3);
	cr_assert_eq(syncd_replica_applied(node(2)->r, 1), 0, "applied before the last slice");
	/* A heartbeat now says the update exists: no repair for what is being merged. */
	repairs = syncd_replica_stats(node(2)->r)->repairs_sent;
	syncd_replica_tick(node(1)->r);
	deliver_to(2);
	syncd_replica_tick(node(2)->r);
	cr_assert_eq(syncd_replica_stats(node(2)->r)->repairs_sent, repairs);
	/* The next update of the same origin waits for the merge, then follows it. */
	cr_assert_eq(put_peer(1, 20, 20, 0), 0);
	deliver_to(2);
	cr_assert_eq(peer_ip(2, 20), -ENOENT);
	cr_assert(syncd_replica_work(node(2)->r));
	cr_assert(syncd_replica_work(node(2)->r));
	cr_assert_eq(live_peers(2, NULL), 9);
	cr_assert(!syncd_replica_work(node(2)->r));
	cr_assert_eq(syncd_replica_applied(node(2)->r, 1), 2);
	cr_assert_eq(peer_ip(2, 20), 20);
	cr_assert_eq(syncd_replica_stats(node(2)->r)->updates_applied, 2);
	run_ms(500);
	cr_assert_eq(syncd_replica_stats(node(2)->r)->repairs_sent, repairs);
	assert_converged();
}

Test(replica, a_crash_in_the_middle_of_a_merge_recovers)
{
	net_init(3, true);
	run_until_synced();
	cr_assert_eq(put_peers(1, 0, 10), 0);
	cr_assert_eq(put_peer(1, 30, 30, 0), 0);
	deliver_to(2);
	cr_assert(syncd_replica_work(node(2)->r));
	cr_assert(syncd_replica_work(node(2)->r));
	cr_assert_eq(live_peers(2, NULL), 6);
	/* Killed with two slices committed (no transaction is open between slices). */
	node_close(2);
	node_open(2);
	cr_assert_eq(syncd_replica_applied(node(2)->r, 1), 0);
	cr_assert_eq(live_peers(2, NULL), 6);
	run_until_synced();
	run_ms(1000);
	cr_assert_eq(syncd_replica_applied(node(2)->r, 1), 2);
	cr_assert_geq(syncd_replica_stats(node(2)->r)->records_lost, 6,
		      "the slices merged before the crash were not merged again");
	cr_assert_eq(peer_ip(2, 30), 30);
	assert_converged();
}

Test(replica, a_snapshot_in_slices_is_one_consistent_cut)
{
	Gwcluster__Envelope env = GWCLUSTER__ENVELOPE__INIT;
	Gwcluster__SnapshotRequest rq = GWCLUSTER__SNAPSHOT_REQUEST__INIT;
	size_t records = 0, chunks = 0;
	bool last = false;

	net_init(2, true);
	run_until_synced();
	cr_assert_eq(put_peers(1, 0, 10), 0);
	run_ms(300);
	cr_assert_eq(syncd_replica_applied(node(2)->r, 1), 1);
	env.body_case = GWCLUSTER__ENVELOPE__BODY_SNAPSHOT_REQUEST;
	env.snapshot_request = &rq;
	rq.request_id = 77;
	send_env(2, 1, SYNCD_CHANNEL_REQUEST, &env);
	cr_assert(syncd_replica_work(node(1)->r));
	/* Written and deleted in the middle of the walk: not in the snapshot. */
	cr_assert_eq(put_peer(1, 40, 40, 0), 0);
	cr_assert_eq(del_peer(1, 0), 0);
	cr_assert_eq(put_peers(1, 50, 5), 0);
	while (syncd_replica_work(node(1)->r))
		;
	cr_assert_eq(syncd_replica_stats(node(1)->r)->snapshots_served, 1);
	for (size_t i = 0; i < net.nq; i++) {
		Gwcluster__Envelope *e =
		    gwcluster__envelope__unpack(NULL, net.q[i].len, net.q[i].buf);

		cr_assert(e);
		if (net.q[i].to == 2 && e->body_case == GWCLUSTER__ENVELOPE__BODY_SNAPSHOT_CHUNK &&
		    e->snapshot_chunk->request_id == 77) {
			cr_assert(!last, "a chunk after the last");
			chunks++;
			records += e->snapshot_chunk->n_records;
			for (size_t k = 0; k < e->snapshot_chunk->n_records; k++)
				cr_assert_eq(e->snapshot_chunk->records[k]->item_case,
					     GWCLUSTER__RECORD__ITEM_PEER);
			if (e->snapshot_chunk->last) {
				last = true;
				for (size_t k = 0; k < e->snapshot_chunk->n_vector; k++)
					if (e->snapshot_chunk->vector[k]->origin == 1)
						cr_assert_eq(e->snapshot_chunk->vector[k]->seq, 1);
			}
		}
		gwcluster__envelope__free_unpacked(e, NULL);
	}
	cr_assert(last);
	cr_assert_eq(records, 10, "%zu records: not the cut taken at the request", records);
	cr_assert_geq(chunks, 1);
	deliver_all();
	assert_converged();
}
