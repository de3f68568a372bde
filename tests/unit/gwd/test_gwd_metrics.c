/* SPDX-License-Identifier: MIT */
/*
 * gwd's metrics text: every device counter exported exactly once under its
 * family and label, the aggregates and per-peer figures after a real
 * handshake and data between two devices in memory (a standalone client and
 * a cluster gateway), the cluster families, the output cap, and
 * `promtool check metrics` on every exposition.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cluster.h"
#include "device.h"
#include "gw/crypto.h"
#include "gw/key.h"
#include "gw/log.h"
#include "metrics.h"
#include "peer.h"
#include "support.h"
#include "uapi.h"

#define PROMTOOL "/usr/bin/promtool"

enum {
	CLIENT = 0,
	GATEWAY = 1,
};

static void setup(void)
{
	rig_pair_setup(NULL, GW_LOG_ERR);
}

static void teardown(void)
{
	rig_pair_teardown();
}

/* The gateway as cluster node 7 (boot 4100: incarnation 4), anycast. */
static void make_gateway_cluster(void)
{
	struct gwd_cluster_config cc = {.node_id = 7, .boot = 4100, .claim_on_receive = true};

	cr_assert_eq(gwd_cluster_enable(rig_nodes[GATEWAY].dev, &cc), 0);
}

/* Client 198.18.0.1 -> gateway 198.18.0.2, each the other's only peer. */
static void link_nodes(void)
{
	rig_set_ok(CLIENT,
		   "private_key=%s\nlisten_port=51820\npublic_key=%s\nendpoint=192.0.2.2:51821\n"
		   "allowed_ip=198.18.0.2/32\n",
		   rig_hex(rig_nodes[CLIENT].priv), rig_hex(rig_nodes[GATEWAY].pub));
	rig_set_ok(GATEWAY,
		   "private_key=%s\nlisten_port=51821\npublic_key=%s\nallowed_ip=198.18.0.1/32\n",
		   rig_hex(rig_nodes[GATEWAY].priv), rig_hex(rig_nodes[CLIENT].pub));
}

static void ping(int from, uint8_t s, uint8_t d)
{
	uint8_t p[84] = {0x45, 0, 0, 84, 0, 0, 0, 0, 64, 1, 0, 0, 198, 18, 0, s, 198, 18, 0, d};

	gwd_device_xmit(rig_nodes[from].dev, p, sizeof(p));
	rig_pump();
}

/* The exposition of node i; max 0: the default cap. Caller frees. */
static char *scrape(int i, bool per_peer, size_t max, int *err)
{
	struct gwd_metrics_options opt = {.per_peer = per_peer, .start_time_s = 1700000000.5};
	struct gw_metrics m;
	size_t len;
	char *s;
	int e;

	gw_metrics_init(&m, max);
	gw_metrics_begin(&m);
	e = gwd_metrics_write(rig_nodes[i].dev, &opt, &m);
	if (!e)
		e = gw_metrics_end(&m);
	if (err)
		*err = e;
	else
		cr_assert_eq(e, 0, "scrape: %d", e);
	s = strdup(gw_metrics_data(&m, &len));
	cr_assert_not_null(s);
	gw_metrics_free(&m);
	return s;
}

/* How many lines of text are exactly "SERIES VALUE". */
static int count_line(const char *text, const char *series, const char *value)
{
	char *line;
	int n = 0;

	cr_assert(asprintf(&line, "%s %s\n", series, value) > 0);
	for (const char *p = text; (p = strstr(p, line)); p += strlen(line))
		n += p == text || p[-1] == '\n';
	free(line);
	return n;
}

/* The value of SERIES (its whole line), or NULL; static buffer. */
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

static unsigned long long u64_of(const char *text, const char *series)
{
	const char *v = value_of(text, series);

	cr_assert_not_null(v, "no series %s in:\n%s", series, text);
	return strtoull(v, NULL, 10);
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

TestSuite(gwd_metrics, .init = setup, .fini = teardown);

/* Every counter maps to a family, labelled families carry a value, and no two share one. */
Test(gwd_metrics, stat_table_complete)
{
	for (int a = 0; a < GWD_STAT__COUNT; a++) {
		const char *fa, *la, *va;

		gwd_metrics_stat_name(a, &fa, &la, &va);
		cr_assert_not_null(fa, "%s has no family", gwd_stat_names[a]);
		cr_expect_str_neq(fa, "gwd_other_events_total",
				  "%s is not mapped to a family in gwd/metrics.c (stat_map[])",
				  gwd_stat_names[a]);
		cr_assert(gw_metrics_name_valid(fa));
		cr_assert_eq(!la, !va, "%s: label and value go together", gwd_stat_names[a]);
		cr_assert(strlen(fa) > 6 && !strcmp(fa + strlen(fa) - 6, "_total"), "%s", fa);
		for (int b = 0; b < a; b++) {
			const char *fb, *lb, *vb;

			gwd_metrics_stat_name(b, &fb, &lb, &vb);
			cr_assert(strcmp(fa, fb) || (va && vb && strcmp(va, vb)),
				  "%s and %s are the same series", gwd_stat_names[a],
				  gwd_stat_names[b]);
		}
	}
}

/* Each device counter appears once, with its own value, under its series. */
Test(gwd_metrics, every_counter_once)
{
	char series[160], value[32], *text;

	for (int s = 0; s < GWD_STAT__COUNT; s++)
		rig_nodes[CLIENT].dev->stats[s] = 1000003ULL * (uint64_t)(s + 1) + 7;
	text = scrape(CLIENT, false, 0, NULL);
	for (int s = 0; s < GWD_STAT__COUNT; s++) {
		const char *f, *l, *v;

		gwd_metrics_stat_name(s, &f, &l, &v);
		if (l)
			snprintf(series, sizeof(series), "%s{%s=\"%s\"}", f, l, v);
		else
			snprintf(series, sizeof(series), "%s", f);
		snprintf(value, sizeof(value), "%llu",
			 (unsigned long long)rig_nodes[CLIENT].dev->stats[s]);
		cr_expect_eq(count_line(text, series, value), 1, "%s %s for %s", series, value,
			     gwd_stat_names[s]);
	}
	cr_expect_eq(promtool_check(text), 0, "promtool rejected:\n%s", text);
	cr_expect_null(strstr(text, "peer=\""), "per-peer series without the option");
	cr_expect_null(strstr(text, "gwd_cluster_"), "cluster families on a standalone gwd");
	free(text);
}

/* A handshake and data move the aggregates; the cluster gateway reports ownership and its region.
 */
Test(gwd_metrics, traffic_moves_figures)
{
	char *before, *after, series[128];
	char pub[GW_KEY_B64_LEN + 1];

	make_gateway_cluster();
	link_nodes();
	before = scrape(GATEWAY, true, 0, NULL);
	cr_expect_eq(u64_of(before, "gwd_peers"), 1);
	cr_expect_eq(u64_of(before, "gwd_peers_with_session"), 0);
	cr_expect_eq(u64_of(before, "gwd_peers_owned"), 0);
	cr_expect_eq(u64_of(before, "gwd_rx_bytes_total"), 0);
	cr_expect_null(value_of(before, "gwd_last_handshake_timestamp_seconds"));
	cr_expect_null(value_of(before, "gwd_region_headroom_min"), "no session, no region");
	cr_expect_eq(u64_of(before, "gwd_cluster_incarnation"), 4);
	cr_expect_eq(u64_of(before, "gwd_cluster_boot"), 4100);
	cr_expect_eq(count_line(before, "gwd_cluster_info{node_id=\"7\",mode=\"anycast\"}", "1"),
		     1);
	cr_expect_eq(promtool_check(before), 0, "promtool rejected:\n%s", before);

	ping(CLIENT, 1, 2); /* handshake, then the staged packet */
	ping(GATEWAY, 2, 1);
	ping(CLIENT, 1, 2);
	cr_assert_eq(rig_nodes[GATEWAY].ntun, 2);
	after = scrape(GATEWAY, true, 0, NULL);
	cr_expect_eq(promtool_check(after), 0, "promtool rejected:\n%s", after);
	cr_expect_eq(u64_of(after, "gwd_rx_bytes_total"),
		     rig_nodes[GATEWAY].dev->stats[GWD_STAT_RX_BYTES]);
	cr_expect_gt(u64_of(after, "gwd_rx_bytes_total"), 0);
	cr_expect_gt(u64_of(after, "gwd_tx_bytes_total"), 0);
	cr_expect_eq(u64_of(after, "gwd_tun_tx_packets_total"), 2);
	cr_expect_eq(u64_of(after, "gwd_handshakes_total{outcome=\"response_sent\"}"), 1);
	cr_expect_eq(u64_of(after, "gwd_handshakes_total{outcome=\"completed\"}"), 1);
	cr_expect_eq(u64_of(after, "gwd_peers_with_session"), 1);
	cr_expect_eq(u64_of(after, "gwd_peers_owned"), 1, "anycast claims on receive");
	cr_expect_eq(u64_of(after, "gwd_sessions_owned"), 1);
	cr_expect_eq(u64_of(after, "gwd_sessions_standby"), 0);
	cr_expect_geq(u64_of(after, "gwd_ownership_claims_total"), 1);
	cr_expect_eq(u64_of(after, "gwd_cluster_syncd_connected"), 0);
	/* The gateway's keypair came from its handshake: epoch 0, counted from 0. */
	cr_expect_eq(u64_of(after, "gwd_region_send_epoch_max"), 0);
	cr_expect_eq(
	    u64_of(after, "gwd_region_headroom_min"),
	    gwd_cluster_region_headroom(rig_nodes[GATEWAY].dev,
					rig_nodes[GATEWAY].dev->peers_head->noise.current));
	cr_expect_not_null(value_of(after, "gwd_last_handshake_timestamp_seconds"));
	/* Per peer: the client's key with the peer's own counters. */
	gw_key_to_base64(pub, rig_nodes[CLIENT].pub);
	snprintf(series, sizeof(series), "gwd_peer_rx_bytes_total{peer=\"%s\"}", pub);
	cr_expect_eq(u64_of(after, series),
		     rig_nodes[GATEWAY].dev->peers_head->stats[GWD_STAT_RX_BYTES]);
	snprintf(series, sizeof(series), "gwd_peer_tx_packets_total{peer=\"%s\"}", pub);
	cr_expect_eq(u64_of(after, series),
		     rig_nodes[GATEWAY].dev->peers_head->stats[GWD_STAT_TX_PACKETS]);
	snprintf(series, sizeof(series), "gwd_peer_last_handshake_timestamp_seconds{peer=\"%s\"}",
		 pub);
	cr_expect_geq(strtod(value_of(after, series), NULL), 1700000000.0);
	free(before);
	free(after);
}

/* The client side: standalone, initiated and completed; a session after the handshake. */
Test(gwd_metrics, initiator_side)
{
	char *text;

	link_nodes();
	ping(CLIENT, 1, 2);
	text = scrape(CLIENT, false, 0, NULL);
	cr_expect_eq(u64_of(text, "gwd_handshakes_total{outcome=\"initiated\"}"), 1);
	cr_expect_eq(u64_of(text, "gwd_handshakes_total{outcome=\"completed\"}"), 1);
	cr_expect_eq(u64_of(text, "gwd_peers_with_session"), 1);
	cr_expect_eq(u64_of(text, "gwd_tun_rx_packets_total"), 1);
	cr_expect_null(value_of(text, "gwd_peers_owned"), "no cluster families standalone");
	free(text);
}

/* A VRRP node owns nothing until it is master; then it owns every peer. */
Test(gwd_metrics, vrrp_ownership)
{
	struct gwd_cluster_config cc = {.node_id = 3, .boot = 1};
	uint8_t k[GW_KEY_LEN];
	char *text;

	cr_assert_eq(gwd_cluster_enable(rig_nodes[GATEWAY].dev, &cc), 0);
	rig_set_ok(GATEWAY, "private_key=%s\n", rig_hex(rig_nodes[GATEWAY].priv));
	for (int i = 0; i < 5; i++) {
		gw_random_bytes(k, sizeof(k));
		rig_set_ok(GATEWAY, "public_key=%s\nallowed_ip=198.18.1.%d/32\n", rig_hex(k), i);
	}
	text = scrape(GATEWAY, false, 0, NULL);
	cr_expect_eq(u64_of(text, "gwd_peers"), 5);
	cr_expect_eq(u64_of(text, "gwd_peers_owned"), 0);
	cr_expect_eq(u64_of(text, "gwd_cluster_master"), 0);
	cr_expect_eq(count_line(text, "gwd_cluster_info{node_id=\"3\",mode=\"vrrp\"}", "1"), 1);
	free(text);
	gwd_cluster_claim_all(rig_nodes[GATEWAY].dev);
	text = scrape(GATEWAY, false, 0, NULL);
	cr_expect_eq(u64_of(text, "gwd_peers_owned"), 5);
	cr_expect_eq(u64_of(text, "gwd_cluster_master"), 1);
	cr_expect_eq(u64_of(text, "gwd_ownership_claims_total"), 5);
	free(text);
	gwd_cluster_release_all(rig_nodes[GATEWAY].dev);
	text = scrape(GATEWAY, false, 0, NULL);
	cr_expect_eq(u64_of(text, "gwd_peers_owned"), 0);
	cr_expect_eq(u64_of(text, "gwd_ownership_releases_total"), 5);
	cr_expect_eq(promtool_check(text), 0, "promtool rejected:\n%s", text);
	free(text);
}

/* Per-peer output past the cap fails the scrape as a whole (500), never partially. */
Test(gwd_metrics, cap_fails_whole)
{
	uint8_t k[GW_KEY_LEN];
	char *text;
	int err;

	for (int i = 0; i < 200; i++) {
		gw_random_bytes(k, sizeof(k));
		rig_set_ok(CLIENT, "public_key=%s\n", rig_hex(k));
	}
	text = scrape(CLIENT, false, 16384, &err);
	cr_expect_eq(err, 0, "the aggregates fit");
	free(text);
	text = scrape(CLIENT, true, 16384, &err);
	cr_expect_eq(err, -ENOBUFS);
	free(text);
}
