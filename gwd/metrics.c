// SPDX-License-Identifier: MIT
/*
 * gwd's metrics: a table maps every device counter (enum gwd_stat) to a
 * family and label value, the rest is read from the device, its peers and
 * its cluster state on each scrape.
 */
#include "metrics.h"

#include <errno.h>
#include <stdio.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cluster.h"
#include "gw/key.h"
#include "peer.h"
#include "region.h"

/* Families fed by device counters, in the order they are written. */
enum stat_family {
	SF_UNMAPPED, /* a counter added to enum gwd_stat and not mapped below yet */
	SF_RX_PACKETS,
	SF_RX_BYTES,
	SF_TX_PACKETS,
	SF_TX_BYTES,
	SF_TUN_RX_PACKETS,
	SF_TUN_RX_BYTES,
	SF_TUN_TX_PACKETS,
	SF_TUN_TX_BYTES,
	SF_KEEPALIVES_SENT,
	SF_KEEPALIVES_RECEIVED,
	SF_HANDSHAKES,
	SF_HANDSHAKE_FAILURES,
	SF_COOKIE_REPLIES_SENT,
	SF_COOKIE_REPLIES_RECEIVED,
	SF_DROPPED,
	SF_OFFLOAD,
	SF__COUNT,
};

struct family {
	const char *name;
	const char *label; /* NULL: one unlabelled sample */
	const char *help;
};

static const struct family stat_families[SF__COUNT] = {
    [SF_UNMAPPED] = {"gwd_other_events_total", "counter",
		     "Device counters without a family of their own yet, by their stats=1 name."},
    [SF_RX_PACKETS] = {"gwd_rx_packets_total", NULL, "UDP datagrams received."},
    [SF_RX_BYTES] = {"gwd_rx_bytes_total", NULL, "UDP payload bytes received."},
    [SF_TX_PACKETS] = {"gwd_tx_packets_total", NULL, "UDP datagrams sent."},
    [SF_TX_BYTES] = {"gwd_tx_bytes_total", NULL, "UDP payload bytes sent."},
    [SF_TUN_RX_PACKETS] = {"gwd_tun_rx_packets_total", NULL,
			   "IP packets read from the TUN device (to be sent to a peer)."},
    [SF_TUN_RX_BYTES] = {"gwd_tun_rx_bytes_total", NULL, "Bytes of IP packets read from the TUN."},
    [SF_TUN_TX_PACKETS] = {"gwd_tun_tx_packets_total", NULL,
			   "IP packets decrypted and written to the TUN device."},
    [SF_TUN_TX_BYTES] = {"gwd_tun_tx_bytes_total", NULL, "Bytes of IP packets written to the TUN."},
    [SF_KEEPALIVES_SENT] = {"gwd_keepalives_sent_total", NULL, "Keepalive messages sent."},
    [SF_KEEPALIVES_RECEIVED] = {"gwd_keepalives_received_total", NULL,
				"Keepalive messages received."},
    [SF_HANDSHAKES] = {"gwd_handshakes_total", "outcome",
		       "Handshake events: initiations sent (retransmissions included), "
		       "responses sent, handshakes completed, attempts given up (timeout)."},
    [SF_HANDSHAKE_FAILURES] = {"gwd_handshake_failures_total", "reason",
			       "Handshake messages refused, by reason."},
    [SF_COOKIE_REPLIES_SENT] =
	{"gwd_cookie_replies_sent_total", NULL,
	 "Cookie replies sent under load instead of processing a handshake."},
    [SF_COOKIE_REPLIES_RECEIVED] = {"gwd_cookie_replies_received_total", "result",
				    "Cookie replies received: accepted, or invalid (unknown "
				    "index, unexpected, not authentic)."},
    [SF_DROPPED] = {"gwd_dropped_packets_total", "reason", "Packets dropped, by reason."},
    [SF_OFFLOAD] = {"gwd_offload_batches_total", "kind",
		    "Offloaded batches: TCP super-packets read from the TUN and split "
		    "(tun_split) or written to it coalesced (tun_coalesced), UDP_SEGMENT sends "
		    "(udp_gso), coalesced UDP receives (udp_gro)."},
};

/* Zero (SF_UNMAPPED) for a counter nobody mapped: exported under its stats=1 name. */
struct stat_map {
	enum stat_family family;
	const char *value; /* label value; NULL for an unlabelled family */
};

static const struct stat_map stat_map[GWD_STAT__COUNT] = {
    [GWD_STAT_RX_PACKETS] = {SF_RX_PACKETS, NULL},
    [GWD_STAT_RX_BYTES] = {SF_RX_BYTES, NULL},
    [GWD_STAT_TX_PACKETS] = {SF_TX_PACKETS, NULL},
    [GWD_STAT_TX_BYTES] = {SF_TX_BYTES, NULL},
    [GWD_STAT_TUN_RX_PACKETS] = {SF_TUN_RX_PACKETS, NULL},
    [GWD_STAT_TUN_RX_BYTES] = {SF_TUN_RX_BYTES, NULL},
    [GWD_STAT_TUN_TX_PACKETS] = {SF_TUN_TX_PACKETS, NULL},
    [GWD_STAT_TUN_TX_BYTES] = {SF_TUN_TX_BYTES, NULL},
    [GWD_STAT_KEEPALIVES_SENT] = {SF_KEEPALIVES_SENT, NULL},
    [GWD_STAT_KEEPALIVES_RECEIVED] = {SF_KEEPALIVES_RECEIVED, NULL},
    [GWD_STAT_HANDSHAKES_INITIATED] = {SF_HANDSHAKES, "initiated"},
    [GWD_STAT_HANDSHAKE_RESPONSES_SENT] = {SF_HANDSHAKES, "response_sent"},
    [GWD_STAT_HANDSHAKES_COMPLETED] = {SF_HANDSHAKES, "completed"},
    [GWD_STAT_HANDSHAKE_TIMEOUTS] = {SF_HANDSHAKES, "timeout"},
    [GWD_STAT_HS_FAIL_BAD_MAC1] = {SF_HANDSHAKE_FAILURES, "bad_mac1"},
    [GWD_STAT_HS_FAIL_UNKNOWN_PEER] = {SF_HANDSHAKE_FAILURES, "unknown_peer"},
    [GWD_STAT_HS_FAIL_REPLAY] = {SF_HANDSHAKE_FAILURES, "replay"},
    [GWD_STAT_HS_FAIL_FLOOD] = {SF_HANDSHAKE_FAILURES, "flood"},
    [GWD_STAT_HS_FAIL_BAD_AUTH] = {SF_HANDSHAKE_FAILURES, "bad_auth"},
    [GWD_STAT_HS_FAIL_OTHER] = {SF_HANDSHAKE_FAILURES, "other"},
    [GWD_STAT_HS_RATELIMITED] = {SF_HANDSHAKE_FAILURES, "ratelimited"},
    [GWD_STAT_COOKIE_REPLIES_SENT] = {SF_COOKIE_REPLIES_SENT, NULL},
    [GWD_STAT_COOKIE_REPLIES_RECEIVED] = {SF_COOKIE_REPLIES_RECEIVED, "accepted"},
    [GWD_STAT_COOKIE_REPLIES_INVALID] = {SF_COOKIE_REPLIES_RECEIVED, "invalid"},
    [GWD_STAT_DROP_NO_ROUTE] = {SF_DROPPED, "no_route"},
    [GWD_STAT_DROP_NO_ENDPOINT] = {SF_DROPPED, "no_endpoint"},
    [GWD_STAT_DROP_INVALID_SOURCE] = {SF_DROPPED, "invalid_source"},
    [GWD_STAT_DROP_REPLAY] = {SF_DROPPED, "replay"},
    [GWD_STAT_DROP_BAD_AUTH] = {SF_DROPPED, "bad_auth"},
    [GWD_STAT_DROP_EXPIRED_KEYPAIR] = {SF_DROPPED, "expired_keypair"},
    [GWD_STAT_DROP_UNKNOWN_INDEX] = {SF_DROPPED, "unknown_index"},
    [GWD_STAT_DROP_MALFORMED] = {SF_DROPPED, "malformed"},
    [GWD_STAT_DROP_TOO_BIG] = {SF_DROPPED, "too_big"},
    [GWD_STAT_DROP_QUEUE_FULL] = {SF_DROPPED, "queue_full"},
    [GWD_STAT_DROP_HANDSHAKE_TIMEOUT] = {SF_DROPPED, "handshake_timeout"},
    [GWD_STAT_DROP_SEND_ERROR] = {SF_DROPPED, "send_error"},
    [GWD_STAT_OFFLOAD_TUN_SPLIT] = {SF_OFFLOAD, "tun_split"},
    [GWD_STAT_OFFLOAD_TUN_COALESCED] = {SF_OFFLOAD, "tun_coalesced"},
    [GWD_STAT_OFFLOAD_UDP_GSO] = {SF_OFFLOAD, "udp_gso"},
    [GWD_STAT_OFFLOAD_UDP_GRO] = {SF_OFFLOAD, "udp_gro"},
};

void gwd_metrics_stat_name(enum gwd_stat s, const char **family, const char **label,
			   const char **value)
{
	const struct family *f = &stat_families[stat_map[s].family];

	*family = f->name;
	*label = f->label;
	*value = stat_map[s].family == SF_UNMAPPED ? gwd_stat_names[s] : stat_map[s].value;
}

static void write_stats(const struct gwd_device *dev, struct gw_metrics *m)
{
	for (size_t f = 0; f < SF__COUNT; f++) {
		const struct family *fam = &stat_families[f];
		size_t n = 0;

		for (size_t s = 0; s < GWD_STAT__COUNT; s++)
			n += stat_map[s].family == f;
		if (!n || gw_metrics_family(m, fam->name, GW_METRIC_COUNTER, fam->help))
			continue; /* no empty family (gwd_other_events_total, normally) */
		for (size_t s = 0; s < GWD_STAT__COUNT; s++) {
			const char *name, *label, *value;

			if (stat_map[s].family != f)
				continue;
			gwd_metrics_stat_name((enum gwd_stat)s, &name, &label, &value);
			if (label)
				gw_metrics_sample_u64(m, (struct gw_metric_label[]){{label, value}},
						      1, dev->stats[s]);
			else
				gw_metrics_sample_u64(m, NULL, 0, dev->stats[s]);
		}
	}
}

/* What one pass over the peers finds. */
struct peer_totals {
	uint64_t sessions, staged, owned, sess_owned, sess_standby;
	struct timespec last_handshake;
	bool has_headroom; /* some owned peer's current keypair holds a region */
	uint64_t headroom_min;
	uint16_t send_epoch_max;
};

static bool ts_after(const struct timespec *a, const struct timespec *b)
{
	return a->tv_sec > b->tv_sec || (a->tv_sec == b->tv_sec && a->tv_nsec > b->tv_nsec);
}

static void sum_peers(const struct gwd_device *dev, struct peer_totals *t)
{
	uint64_t now = gwd_device_now(dev);

	*t = (struct peer_totals){0};
	for (const struct gwd_peer *p = dev->peers_head; p; p = p->next) {
		bool live = gwd_peer_has_session(p, now), mine;
		const struct gwd_noise_keypair *kp;
		uint64_t h;

		t->sessions += live;
		t->staged += p->nstaged;
		if (ts_after(&p->last_handshake, &t->last_handshake))
			t->last_handshake = p->last_handshake;
		if (!dev->cluster)
			continue;
		mine = gwd_cluster_may_send(p);
		t->owned += mine;
		t->sess_owned += mine && live;
		t->sess_standby += !mine && live;
		kp = p->noise.current;
		if (!mine || !kp || kp->send_epoch == GWD_REGION_EPOCH_NONE)
			continue;
		h = gwd_cluster_region_headroom(dev, kp);
		if (!t->has_headroom || h < t->headroom_min)
			t->headroom_min = h;
		t->has_headroom = true;
		if (kp->send_epoch > t->send_epoch_max)
			t->send_epoch_max = kp->send_epoch;
	}
}

static double ts_seconds(const struct timespec *ts)
{
	return (double)ts->tv_sec + (double)ts->tv_nsec / 1e9;
}

/*
 * The figures that are neither device nor cluster counters, gathered once
 * per scrape (the peers' in one pass over them).
 */
struct node_figures {
	double start_time, last_handshake; /* 0: not exported */
	uint64_t listen_port, peers, sessions, staged, under_load;
	uint64_t incarnation, boot, master, syncd_connected;
	uint64_t owned, sess_owned, sess_standby, headroom_min, send_epoch_max, tombstones;
};

enum figure_src { FROM_NODE, FROM_CLUSTER_STATS, FROM__COUNT };
enum figure_when {
	ALWAYS,
	IF_POSITIVE, /* an optional timestamp: written only when set */
	IF_HEADROOM, /* only while some owned peer's current keypair holds a region */
};

/*
 * One sample per row, read from a struct at an offset: a uint64_t, or a
 * double for f64 rows. Consecutive rows with the same name are one family
 * (help and type from its first row) and carry a label each.
 */
struct figure {
	const char *name;
	enum gw_metric_type type;
	const char *help;
	enum figure_src src;
	size_t off;
	enum figure_when when;
	bool f64;
	const char *label, *value;
};

#define NODE(f) .src = FROM_NODE, .off = offsetof(struct node_figures, f)
#define STAT(f) .src = FROM_CLUSTER_STATS, .off = offsetof(struct gwd_cluster_stats, f)
#define COUNTER GW_METRIC_COUNTER
#define GAUGE	GW_METRIC_GAUGE

static const struct figure device_figures[] = {
    {"gwd_start_time_seconds", GAUGE, "Unix time gwd started.", NODE(start_time),
     .when = IF_POSITIVE, .f64 = true},
    {"gwd_listen_port", GAUGE, "UDP port gwd listens on.", NODE(listen_port)},
    {"gwd_peers", GAUGE, "Configured peers.", NODE(peers)},
    {"gwd_peers_with_session", GAUGE, "Peers with a live session (a keypair that has not expired).",
     NODE(sessions)},
    {"gwd_last_handshake_timestamp_seconds", GAUGE,
     "Unix time of the latest handshake completed with any peer.", NODE(last_handshake),
     .when = IF_POSITIVE, .f64 = true},
    {"gwd_staged_packets", GAUGE, "Outbound packets waiting for a session, over all peers.",
     NODE(staged)},
    {"gwd_under_load", GAUGE, "1 while handshakes are under load (cookies demanded), else 0.",
     NODE(under_load)},
};

static const struct figure cluster_figures[] = {
    {"gwd_cluster_incarnation", GAUGE,
     "Incarnation in the counter regions: the boot counter mod 4096.", NODE(incarnation)},
    {"gwd_cluster_boot", GAUGE, "Boot counter, incremented durably at every start.", NODE(boot)},
    {"gwd_cluster_master", GAUGE, "1 while the node claims every peer (VRRP master), else 0.",
     NODE(master)},
    {"gwd_cluster_syncd_connected", GAUGE,
     "1 while syncd is subscribed to the session socket, else 0.", NODE(syncd_connected)},
    {"gwd_peers_owned", GAUGE, "Peers this node sends for (their owner).", NODE(owned)},
    {"gwd_sessions_owned", GAUGE, "Owned peers with a live session.", NODE(sess_owned)},
    {"gwd_sessions_standby", GAUGE,
     "Peers owned elsewhere whose live session is held here (replicated).", NODE(sess_standby)},
    {"gwd_ownership_claims_total", COUNTER, "Peers this node claimed (takeovers).",
     STAT(ownership_claims)},
    {"gwd_ownership_releases_total", COUNTER, "Peers this node released.",
     STAT(ownership_releases)},
    {"gwd_ownership_lost_total", COUNTER,
     "Peers another node took over with a greater ownership epoch.", STAT(ownership_lost)},
    {"gwd_region_claims_total", COUNTER, "Counter regions claimed.", STAT(region_claims)},
    {"gwd_region_claims_refused_total", COUNTER,
     "Region claims refused: epochs exhausted, or the reuse holdoff.", STAT(region_refused)},
    {"gwd_region_headroom_min", GAUGE,
     "Fewest counters left in the region of an owned peer's current keypair (a region holds "
     "2^28; absent when none holds one).",
     NODE(headroom_min), .when = IF_HEADROOM},
    {"gwd_region_send_epoch_max", GAUGE,
     "Greatest region epoch sent with by an owned peer's current keypair (4095 is the last).",
     NODE(send_epoch_max), .when = IF_HEADROOM},
    {"gwd_owned_routes", GAUGE,
     "Routes through the TUN installed for owned peers' allowed IPs (--owned-routes).",
     STAT(owned_routes)},
    {"gwd_owned_route_errors_total", COUNTER,
     "Owned-peer route additions or removals the kernel refused (retried).", STAT(route_errors)},
    {"gwd_session_exports_total", COUNTER, "Peer sessions exported to syncd.", STAT(exports)},
    {"gwd_session_export_rx_total", COUNTER, "Receive high-water marks exported to syncd.",
     STAT(export_rx)},
    {"gwd_session_export_batches_total", COUNTER, "Session batches handed to syncd.",
     STAT(export_batches)},
    {"gwd_session_export_busy_total", COUNTER,
     "Session exports deferred because the socket to syncd was full.", STAT(export_busy)},
    {"gwd_session_imports_total", COUNTER, "Peer sessions imported from other nodes.",
     STAT(imports)},
    {"gwd_session_import_keypairs_total", COUNTER, "Keypairs installed by imports.",
     STAT(import_keypairs)},
    {"gwd_session_import_rx_total", COUNTER, "Receive high-water marks applied by imports.",
     STAT(import_rx)},
    {"gwd_session_import_refused_total", COUNTER, "Imported entries refused, by reason.",
     STAT(import_rejected), .label = "reason", .value = "rejected"},
    {"gwd_session_import_refused_total", COUNTER, NULL, STAT(import_unknown_peer),
     .label = "reason", .value = "unknown_peer"},
    {"gwd_session_import_refused_total", COUNTER, NULL, STAT(import_tombstoned), .label = "reason",
     .value = "tombstoned"},
    {"gwd_session_import_refused_total", COUNTER, NULL, STAT(import_expired), .label = "reason",
     .value = "expired"},
    {"gwd_standby_silenced_total", COUNTER,
     "Handshake initiations left unanswered because another node owns the peer.",
     STAT(standby_silenced)},
    {"gwd_dropped_not_owner_total", COUNTER,
     "Packets from the TUN for peers another node owns, dropped (and staged ones dropped when "
     "ownership was lost).",
     STAT(drop_not_owner)},
    {"gwd_takeover_rekeys_total", COUNTER, "Handshakes started by paced rekeys after a takeover.",
     STAT(takeover_rekeys)},
    {"gwd_keypair_tombstones", GAUGE, "Dropped keypairs that imports may not bring back.",
     NODE(tombstones)},
};

#undef NODE
#undef STAT
#undef COUNTER
#undef GAUGE

static void write_figures(const struct figure *rows, size_t n, const void *const src[FROM__COUNT],
			  bool headroom, struct gw_metrics *m)
{
	const char *open = NULL; /* the family written last */

	for (size_t i = 0; i < n; i++) {
		const struct figure *r = &rows[i];
		const char *at = (const char *)src[r->src] + r->off;
		const struct gw_metric_label l = {r->label, r->value};
		uint64_t u = 0;
		double d = 0;

		if (r->f64)
			memcpy(&d, at, sizeof(d));
		else
			memcpy(&u, at, sizeof(u));
		if ((r->when == IF_POSITIVE && !(r->f64 ? d > 0 : u > 0)) ||
		    (r->when == IF_HEADROOM && !headroom))
			continue;
		if (!open || strcmp(open, r->name))
			gw_metrics_family(m, r->name, r->type, r->help);
		open = r->name;
		if (r->f64)
			gw_metrics_sample_f64(m, r->label ? &l : NULL, r->label != NULL, d);
		else
			gw_metrics_sample_u64(m, r->label ? &l : NULL, r->label != NULL, u);
	}
}

static void node_figures(struct gwd_device *dev, const struct gwd_metrics_options *opt,
			 const struct peer_totals *t, struct node_figures *nf)
{
	const struct gwd_cluster *c = dev->cluster;

	*nf = (struct node_figures){
	    .start_time = opt ? opt->start_time_s : 0,
	    .last_handshake = ts_seconds(&t->last_handshake),
	    .listen_port = dev->listen_port,
	    .peers = dev->npeers,
	    .sessions = t->sessions,
	    .staged = t->staged,
	    .under_load = gwd_device_under_load(dev, false),
	    .owned = t->owned,
	    .sess_owned = t->sess_owned,
	    .sess_standby = t->sess_standby,
	    .headroom_min = t->headroom_min,
	    .send_epoch_max = t->send_epoch_max,
	};
	if (!c)
		return;
	nf->incarnation = c->incarnation;
	nf->boot = c->boot;
	nf->master = c->master;
	nf->syncd_connected = c->sink != NULL;
	nf->tombstones = gwd_cluster_tombstone_count(c);
}

static void write_cluster(const struct gwd_device *dev, const void *const src[FROM__COUNT],
			  bool headroom, struct gw_metrics *m)
{
	const struct gwd_cluster *c = dev->cluster;
	char node[4];

	snprintf(node, sizeof(node), "%u", c->node_id);
	gw_metrics_family(m, "gwd_cluster_info", GW_METRIC_GAUGE,
			  "This gwd is a cluster node: its node id and mode (vrrp or anycast).");
	gw_metrics_sample_u64(
	    m,
	    (struct gw_metric_label[]){{"node_id", node},
				       {"mode", c->claim_on_receive ? "anycast" : "vrrp"}},
	    2, 1);
	write_figures(cluster_figures, sizeof(cluster_figures) / sizeof(cluster_figures[0]), src,
		      headroom, m);
}

/* The per-peer families: a peer counter each, or the last handshake's time (stat -1). */
static const struct peer_family {
	const char *name;
	enum gw_metric_type type;
	const char *help;
	int stat;
} peer_families[] = {
    {"gwd_peer_rx_bytes_total", GW_METRIC_COUNTER,
     "UDP payload bytes received from the peer (as wg's transfer).", GWD_STAT_RX_BYTES},
    {"gwd_peer_tx_bytes_total", GW_METRIC_COUNTER,
     "UDP payload bytes sent to the peer (as wg's transfer).", GWD_STAT_TX_BYTES},
    {"gwd_peer_rx_packets_total", GW_METRIC_COUNTER,
     "Authenticated UDP datagrams received from the peer.", GWD_STAT_RX_PACKETS},
    {"gwd_peer_tx_packets_total", GW_METRIC_COUNTER, "UDP datagrams sent to the peer.",
     GWD_STAT_TX_PACKETS},
    {"gwd_peer_last_handshake_timestamp_seconds", GW_METRIC_GAUGE,
     "Unix time of the peer's last completed handshake (0: never).", -1},
};

/*
 * Each peer's key is encoded once per scrape (the encoder is constant-time,
 * and was a quarter of the scrape when done per family and sample).
 */
static int write_peers(const struct gwd_device *dev, struct gw_metrics *m)
{
	char(*keys)[GW_KEY_B64_LEN + 1] = NULL;
	size_t i = 0;

	if (dev->npeers && !(keys = calloc(dev->npeers, sizeof(*keys))))
		return -ENOMEM;
	for (const struct gwd_peer *p = dev->peers_head; p && i < dev->npeers; p = p->next)
		gw_key_to_base64(keys[i++], p->noise.public_key);
	for (size_t f = 0; f < sizeof(peer_families) / sizeof(peer_families[0]); f++) {
		const struct peer_family *fam = &peer_families[f];
		int err = gw_metrics_family(m, fam->name, fam->type, fam->help);

		i = 0;
		for (const struct gwd_peer *p = dev->peers_head; !err && p && i < dev->npeers;
		     p = p->next, i++) {
			const struct gw_metric_label l = {"peer", keys[i]};

			if (fam->stat < 0)
				err =
				    gw_metrics_sample_f64(m, &l, 1, ts_seconds(&p->last_handshake));
			else
				err = gw_metrics_sample_u64(m, &l, 1, p->stats[fam->stat]);
		}
		if (err) /* the scrape fails as a whole (the writer keeps the error): stop */
			break;
	}
	free(keys);
	return 0;
}

int gwd_metrics_write(struct gwd_device *dev, const struct gwd_metrics_options *opt,
		      struct gw_metrics *m)
{
	struct peer_totals t;
	struct node_figures nf;
	const void *src[FROM__COUNT];

	sum_peers(dev, &t);
	node_figures(dev, opt, &t, &nf);
	src[FROM_NODE] = &nf;
	src[FROM_CLUSTER_STATS] = dev->cluster ? &dev->cluster->stats : NULL;
	gw_metrics_family(m, "gwd_build_info", GW_METRIC_GAUGE, "gwd's version.");
	gw_metrics_sample_u64(m, (struct gw_metric_label[]){{"version", GW_VERSION}}, 1, 1);
	write_figures(device_figures, sizeof(device_figures) / sizeof(device_figures[0]), src,
		      false, m);
	if (dev->loop)
		gw_metrics_write_loop(m, "gwd", dev->loop);
	write_stats(dev, m);
	if (dev->cluster)
		write_cluster(dev, src, t.has_headroom, m);
	if (opt && opt->per_peer)
		return write_peers(dev, m);
	return 0;
}

/* --- The server ------------------------------------------------------------------- */

struct scrape_ctx {
	struct gwd_device *dev;
	struct gwd_metrics_options opt;
};

static int render(void *arg, struct gw_metrics *m)
{
	const struct scrape_ctx *c = arg;

	return gwd_metrics_write(c->dev, &c->opt, m);
}

int gwd_metrics_open(struct gw_metrics_endpoint **out, struct gwd_device *dev, const char *addr,
		     const struct gwd_metrics_options *opt)
{
	const struct scrape_ctx c = {dev, opt ? *opt : (struct gwd_metrics_options){0}};

	return gw_metrics_endpoint_open(out, dev->loop, addr, "gwd", render, &c, sizeof(c));
}
