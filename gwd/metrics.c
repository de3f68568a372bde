// SPDX-License-Identifier: MIT
/*
 * gwd's metrics: a table maps every device counter (enum gwd_stat) to a
 * family and label value, the rest is read from the device, its peers and
 * its cluster state on each scrape.
 */
#include "metrics.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "cluster.h"
#include "gw/httpd.h"
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

static void write_cluster(const struct gwd_device *dev, const struct peer_totals *t,
			  struct gw_metrics *m)
{
	const struct gwd_cluster *c = dev->cluster;
	const struct gwd_cluster_stats *st = &c->stats;
	char node[4];

	snprintf(node, sizeof(node), "%u", c->node_id);
	gw_metrics_family(m, "gwd_cluster_info", GW_METRIC_GAUGE,
			  "This gwd is a cluster node: its node id and mode (vrrp or anycast).");
	gw_metrics_sample_u64(
	    m,
	    (struct gw_metric_label[]){{"node_id", node},
				       {"mode", c->claim_on_receive ? "anycast" : "vrrp"}},
	    2, 1);
	gw_metrics_one_u64(m, "gwd_cluster_incarnation", GW_METRIC_GAUGE,
			   "Incarnation in the counter regions: the boot counter mod 4096.",
			   c->incarnation);
	gw_metrics_one_u64(m, "gwd_cluster_boot", GW_METRIC_GAUGE,
			   "Boot counter, incremented durably at every start.", c->boot);
	gw_metrics_one_u64(m, "gwd_cluster_master", GW_METRIC_GAUGE,
			   "1 while the node claims every peer (VRRP master), else 0.", c->master);
	gw_metrics_one_u64(m, "gwd_cluster_syncd_connected", GW_METRIC_GAUGE,
			   "1 while syncd is subscribed to the session socket, else 0.",
			   c->sink != NULL);
	gw_metrics_one_u64(m, "gwd_peers_owned", GW_METRIC_GAUGE,
			   "Peers this node sends for (their owner).", t->owned);
	gw_metrics_one_u64(m, "gwd_sessions_owned", GW_METRIC_GAUGE,
			   "Owned peers with a live session.", t->sess_owned);
	gw_metrics_one_u64(m, "gwd_sessions_standby", GW_METRIC_GAUGE,
			   "Peers owned elsewhere whose live session is held here (replicated).",
			   t->sess_standby);
	gw_metrics_one_u64(m, "gwd_ownership_claims_total", GW_METRIC_COUNTER,
			   "Peers this node claimed (takeovers).", st->ownership_claims);
	gw_metrics_one_u64(m, "gwd_ownership_releases_total", GW_METRIC_COUNTER,
			   "Peers this node released.", st->ownership_releases);
	gw_metrics_one_u64(m, "gwd_ownership_lost_total", GW_METRIC_COUNTER,
			   "Peers another node took over with a greater ownership epoch.",
			   st->ownership_lost);
	gw_metrics_one_u64(m, "gwd_region_claims_total", GW_METRIC_COUNTER,
			   "Counter regions claimed.", st->region_claims);
	gw_metrics_one_u64(m, "gwd_region_claims_refused_total", GW_METRIC_COUNTER,
			   "Region claims refused: epochs exhausted, or the reuse holdoff.",
			   st->region_refused);
	if (t->has_headroom) {
		gw_metrics_one_u64(m, "gwd_region_headroom_min", GW_METRIC_GAUGE,
				   "Fewest counters left in the region of an owned peer's current "
				   "keypair (a region holds 2^28; absent when none holds one).",
				   t->headroom_min);
		gw_metrics_one_u64(m, "gwd_region_send_epoch_max", GW_METRIC_GAUGE,
				   "Greatest region epoch sent with by an owned peer's current "
				   "keypair (4095 is the last).",
				   t->send_epoch_max);
	}
	gw_metrics_one_u64(m, "gwd_session_exports_total", GW_METRIC_COUNTER,
			   "Peer sessions exported to syncd.", st->exports);
	gw_metrics_one_u64(m, "gwd_session_export_rx_total", GW_METRIC_COUNTER,
			   "Receive high-water marks exported to syncd.", st->export_rx);
	gw_metrics_one_u64(m, "gwd_session_export_batches_total", GW_METRIC_COUNTER,
			   "Session batches handed to syncd.", st->export_batches);
	gw_metrics_one_u64(m, "gwd_session_export_busy_total", GW_METRIC_COUNTER,
			   "Session exports deferred because the socket to syncd was full.",
			   st->export_busy);
	gw_metrics_one_u64(m, "gwd_session_imports_total", GW_METRIC_COUNTER,
			   "Peer sessions imported from other nodes.", st->imports);
	gw_metrics_one_u64(m, "gwd_session_import_keypairs_total", GW_METRIC_COUNTER,
			   "Keypairs installed by imports.", st->import_keypairs);
	gw_metrics_one_u64(m, "gwd_session_import_rx_total", GW_METRIC_COUNTER,
			   "Receive high-water marks applied by imports.", st->import_rx);
	if (!gw_metrics_family(m, "gwd_session_import_refused_total", GW_METRIC_COUNTER,
			       "Imported entries refused, by reason.")) {
		static const char *const why[] = {"rejected", "unknown_peer", "tombstoned",
						  "expired"};
		const uint64_t v[] = {st->import_rejected, st->import_unknown_peer,
				      st->import_tombstoned, st->import_expired};

		for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++)
			gw_metrics_sample_u64(m, (struct gw_metric_label[]){{"reason", why[i]}}, 1,
					      v[i]);
	}
	gw_metrics_one_u64(m, "gwd_standby_silenced_total", GW_METRIC_COUNTER,
			   "Handshake initiations left unanswered because another node owns the "
			   "peer.",
			   st->standby_silenced);
	gw_metrics_one_u64(m, "gwd_dropped_not_owner_total", GW_METRIC_COUNTER,
			   "Packets from the TUN for peers another node owns, dropped (and "
			   "staged ones dropped when ownership was lost).",
			   st->drop_not_owner);
	gw_metrics_one_u64(m, "gwd_takeover_rekeys_total", GW_METRIC_COUNTER,
			   "Handshakes started by paced rekeys after a takeover.",
			   st->takeover_rekeys);
	gw_metrics_one_u64(m, "gwd_keypair_tombstones", GW_METRIC_GAUGE,
			   "Dropped keypairs that imports may not bring back.",
			   gwd_cluster_tombstone_count(c));
}

/* One per-peer family: name, type and how to read the value. */
enum peer_figure { PF_RX_BYTES, PF_TX_BYTES, PF_RX_PACKETS, PF_TX_PACKETS, PF_LAST_HANDSHAKE };

static const struct family peer_families[] = {
    [PF_RX_BYTES] = {"gwd_peer_rx_bytes_total", "peer",
		     "UDP payload bytes received from the peer (as wg's transfer)."},
    [PF_TX_BYTES] = {"gwd_peer_tx_bytes_total", "peer",
		     "UDP payload bytes sent to the peer (as wg's transfer)."},
    [PF_RX_PACKETS] = {"gwd_peer_rx_packets_total", "peer",
		       "Authenticated UDP datagrams received from the peer."},
    [PF_TX_PACKETS] = {"gwd_peer_tx_packets_total", "peer", "UDP datagrams sent to the peer."},
    [PF_LAST_HANDSHAKE] = {"gwd_peer_last_handshake_timestamp_seconds", "peer",
			   "Unix time of the peer's last completed handshake (0: never)."},
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
		const struct family *fam = &peer_families[f];
		int err = gw_metrics_family(
		    m, fam->name, f == PF_LAST_HANDSHAKE ? GW_METRIC_GAUGE : GW_METRIC_COUNTER,
		    fam->help);

		i = 0;
		for (const struct gwd_peer *p = dev->peers_head; !err && p && i < dev->npeers;
		     p = p->next, i++) {
			const struct gw_metric_label l = {"peer", keys[i]};

			switch (f) {
			case PF_RX_BYTES:
				err = gw_metrics_sample_u64(m, &l, 1, p->stats[GWD_STAT_RX_BYTES]);
				break;
			case PF_TX_BYTES:
				err = gw_metrics_sample_u64(m, &l, 1, p->stats[GWD_STAT_TX_BYTES]);
				break;
			case PF_RX_PACKETS:
				err =
				    gw_metrics_sample_u64(m, &l, 1, p->stats[GWD_STAT_RX_PACKETS]);
				break;
			case PF_TX_PACKETS:
				err =
				    gw_metrics_sample_u64(m, &l, 1, p->stats[GWD_STAT_TX_PACKETS]);
				break;
			default:
				err =
				    gw_metrics_sample_f64(m, &l, 1, ts_seconds(&p->last_handshake));
				break;
			}
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

	sum_peers(dev, &t);
	gw_metrics_family(m, "gwd_build_info", GW_METRIC_GAUGE, "gwd's version.");
	gw_metrics_sample_u64(m, (struct gw_metric_label[]){{"version", GW_VERSION}}, 1, 1);
	if (opt && opt->start_time_s > 0)
		gw_metrics_one_f64(m, "gwd_start_time_seconds", GW_METRIC_GAUGE,
				   "Unix time gwd started.", opt->start_time_s);
	gw_metrics_one_u64(m, "gwd_listen_port", GW_METRIC_GAUGE, "UDP port gwd listens on.",
			   dev->listen_port);
	gw_metrics_one_u64(m, "gwd_peers", GW_METRIC_GAUGE, "Configured peers.", dev->npeers);
	gw_metrics_one_u64(m, "gwd_peers_with_session", GW_METRIC_GAUGE,
			   "Peers with a live session (a keypair that has not expired).",
			   t.sessions);
	if (t.last_handshake.tv_sec || t.last_handshake.tv_nsec)
		gw_metrics_one_f64(m, "gwd_last_handshake_timestamp_seconds", GW_METRIC_GAUGE,
				   "Unix time of the latest handshake completed with any peer.",
				   ts_seconds(&t.last_handshake));
	gw_metrics_one_u64(m, "gwd_staged_packets", GW_METRIC_GAUGE,
			   "Outbound packets waiting for a session, over all peers.", t.staged);
	gw_metrics_one_u64(m, "gwd_under_load", GW_METRIC_GAUGE,
			   "1 while handshakes are under load (cookies demanded), else 0.",
			   gwd_device_under_load(dev, false));
	write_stats(dev, m);
	if (dev->cluster)
		write_cluster(dev, &t, m);
	if (opt && opt->per_peer)
		return write_peers(dev, m);
	return 0;
}

/* --- The server ------------------------------------------------------------------- */

struct gwd_metrics {
	struct gwd_device *dev;
	struct gwd_metrics_options opt;
	struct gw_httpd *httpd;
};

static int scrape(void *arg, struct gw_metrics *m)
{
	struct gwd_metrics *gm = arg;
	int err = gwd_metrics_write(gm->dev, &gm->opt, m);

	return err ? err : gw_httpd_write_metrics(gm->httpd, m, "gwd");
}

int gwd_metrics_open(struct gwd_metrics **out, struct gwd_device *dev, const char *addr,
		     const struct gwd_metrics_options *opt)
{
	struct gwd_metrics *gm = calloc(1, sizeof(*gm));
	int err;

	if (!gm)
		return -ENOMEM;
	gm->dev = dev;
	if (opt)
		gm->opt = *opt;
	err = gw_httpd_open(&gm->httpd, dev->loop, addr, scrape, gm);
	if (err) {
		free(gm);
		return err;
	}
	*out = gm;
	return 0;
}

void gwd_metrics_close(struct gwd_metrics *gm)
{
	if (!gm)
		return;
	gw_httpd_close(gm->httpd);
	free(gm);
}

uint16_t gwd_metrics_port(const struct gwd_metrics *gm)
{
	return gw_httpd_port(gm->httpd);
}
