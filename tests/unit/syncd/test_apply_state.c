// SPDX-License-Identifier: MIT
/*
 * The incremental applier's state (syncd/apply_state.c), without I/O: what
 * the store wants, what gwd has (from get replies given as text), the
 * queue of peers to compare, the set requests it plans (exact text) and how
 * contested allowed IPs are shared out.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apply_int.h"
#include "gw/crypto.h"
#include "gw/log.h"

#define H(b)  b b b b b b b b b b b b b b b b b b b b b b b b b b b b b b b b
#define B8(b) b, b, b, b, b, b, b, b
#define KEY(b)                             \
	{                                  \
		B8(b), B8(b), B8(b), B8(b) \
	}

static const uint8_t K1[32] = KEY(1), K2[32] = KEY(2), K3[32] = KEY(3), K4[32] = KEY(4),
		     K5[32] = KEY(5);
#define H01 H("01")
#define H02 H("02")
#define H03 H("03")
#define H04 H("04")
#define H05 H("05")
#define HZ  H("00")

static struct ap_state *st;

static void setup(void)
{
	gw_log_init("test", GW_LOG_ERR, GW_LOG_STDERR);
	cr_assert_eq(gw_crypto_init(), 0);
	cr_assert_eq(ap_state_new(&st), 0);
}

static void teardown(void)
{
	ap_state_free(st);
	st = NULL;
}

TestSuite(apply_state, .init = setup, .fini = teardown);

/* A peer the store wants: allowed IPs comma-separated, keepalive, endpoint. */
static void want(const uint8_t *key, const char *aips, uint32_t ka, const char *ep, uint64_t hlc)
{
	Gwcluster__PeerConfig pc = GWCLUSTER__PEER_CONFIG__INIT;
	char *list = aips ? strdup(aips) : NULL, *save = NULL, *ips[16];

	pc.public_key.data = (uint8_t *)key;
	pc.public_key.len = 32;
	for (char *s = list ? strtok_r(list, ",", &save) : NULL; s; s = strtok_r(NULL, ",", &save))
		ips[pc.n_allowed_ips++] = s;
	pc.allowed_ips = ips;
	pc.has_persistent_keepalive = ka != 0;
	pc.persistent_keepalive = ka;
	pc.endpoint = (char *)ep;
	cr_assert_eq(ap_state_want(st, key, &pc, hlc), 0);
	free(list);
}

static void unwant(const uint8_t *key)
{
	cr_assert_eq(ap_state_want(st, key, NULL, 0), 0);
}

/* Installs a get reply (its lines without "errno=0" and the blank line). */
static void install(const char *lines)
{
	struct dev_state dump = {0};
	struct ap_install pos = {0};
	char *reply;
	int rc;

	cr_assert(asprintf(&reply, "%serrno=0\n\n", lines) > 0);
	cr_assert_eq(ap_dev_feed(&dump, reply, strlen(reply)), 0);
	cr_assert(dump.done);
	/* A budget of 3 steps: the installation takes many calls. */
	while ((rc = ap_state_install(st, &dump, &pos, 3)) == 0)
		;
	cr_assert_eq(rc, 1);
	ap_dev_free(&dump);
	free(reply);
}

/* The next request ("" when none), applied (or failed) at once. */
static char *batch_ex(size_t max, size_t examine, bool applied, struct ap_batch *res)
{
	struct ap_batch b = {0};
	struct sbuf req = {0};
	char *s;

	cr_assert_eq(ap_state_batch(st, &b, max, examine, &req), 0);
	s = strdup(req.len ? req.p : "");
	if (res)
		*res = b;
	ap_state_batch_done(st, &b, applied);
	ap_batch_free(&b);
	ap_sb_free(&req);
	return s;
}

static char *batch(void)
{
	return batch_ex(1000, 1000, true, NULL);
}

static void expect_batch(const char *want_req)
{
	char *got = batch();

	cr_expect_str_eq(got, want_req);
	free(got);
}

static void expect_quiet(void)
{
	expect_batch("");
	cr_expect_eq(ap_state_pending(st), 0);
}

static char *effective(const uint8_t *key)
{
	struct gw_prefix p[16];
	char *out = calloc(1, 512), s[GW_PREFIX_STR_LEN];
	size_t n;

	cr_assert_eq(ap_state_effective(st, key, p, 16, &n), 0);
	for (size_t i = 0; i < n; i++) {
		gw_prefix_format(&p[i], s, sizeof(s));
		strcat(strcat(out, i ? "," : ""), s);
	}
	return out;
}

static void expect_effective(const uint8_t *key, const char *aips)
{
	char *got = effective(key);

	cr_expect_str_eq(got, aips);
	free(got);
}

Test(apply_state, adds_in_key_order_then_only_what_changed)
{
	want(K3, "198.18.3.0/24", 0, NULL, 30);
	want(K1, "198.18.0.1/32,2001:db8:f::1", 25, "192.0.2.7:51820", 10);
	want(K2, "198.18.0.2/32", 0, NULL, 20);
	install("private_key=" H05 "\nlisten_port=51820\n");
	cr_expect_eq(ap_state_pending(st), 3 + 1); /* and the interface settings */
	cr_expect_eq(ap_state_wanted(st), 3);
	expect_batch("set=1\n"
		     "public_key=" H01
		     "\nendpoint=192.0.2.7:51820\npersistent_keepalive_interval=25\n"
		     "allowed_ip=198.18.0.1/32\nallowed_ip=2001:db8:f::1/128\n"
		     "public_key=" H02 "\nallowed_ip=198.18.0.2/32\n"
		     "public_key=" H03 "\nallowed_ip=198.18.3.0/24\n\n");
	expect_quiet();

	/* A new record for one peer: only it is compared and sent, only its change. */
	want(K2, "198.18.0.2/32,198.18.9.0/24", 0, NULL, 21);
	cr_expect_eq(ap_state_pending(st), 1);
	expect_batch("set=1\npublic_key=" H02 "\nupdate_only=true\nreplace_allowed_ips=true\n"
		     "allowed_ip=198.18.0.2/32\nallowed_ip=198.18.9.0/24\n\n");
	expect_quiet();

	/* A record written again unchanged: compared, nothing sent. */
	want(K3, "198.18.3.0/24", 0, NULL, 31);
	cr_expect_eq(ap_state_pending(st), 1);
	expect_quiet();

	/* Keepalive changed; the endpoint is not sent again (gwd has one). */
	want(K1, "198.18.0.1/32,2001:db8:f::1", 5, "203.0.113.9:1", 11);
	expect_batch("set=1\npublic_key=" H01 "\nupdate_only=true\n"
		     "persistent_keepalive_interval=5\n\n");
	/* Removed. */
	unwant(K3);
	expect_batch("set=1\npublic_key=" H03 "\nremove=true\n\n");
	expect_quiet();
	cr_expect_eq(ap_state_wanted(st), 2);
}

Test(apply_state, reconciliation_with_what_gwd_has)
{
	/* gwd: 01 as wanted (own endpoint, roamed), 02 with another psk, 04 unknown to the store.
	 */
	want(K1, "198.18.0.1/32", 0, "192.0.2.1:1", 10);
	want(K2, "198.18.0.2/32", 0, NULL, 10);
	want(K3, "198.18.0.3/32", 0, NULL, 10);
	install("public_key=" H01 "\npreshared_key=" HZ "\nendpoint=203.0.113.50:4000\n"
		"persistent_keepalive_interval=0\nallowed_ip=198.18.0.1/32\n"
		"public_key=" H02 "\npreshared_key=" H05 "\nallowed_ip=198.18.0.2/32\n"
		"public_key=" H04 "\nallowed_ip=198.18.0.4/32\n");
	expect_batch("set=1\npublic_key=" H02 "\nupdate_only=true\npreshared_key=" HZ "\n"
		     "public_key=" H03 "\nallowed_ip=198.18.0.3/32\n"
		     "public_key=" H04 "\nremove=true\n\n");
	expect_quiet();
	/* The same reply again after that: nothing to do. */
	install("public_key=" H01 "\nendpoint=203.0.113.50:4000\nallowed_ip=198.18.0.1/32\n"
		"public_key=" H02 "\nallowed_ip=198.18.0.2/32\n"
		"public_key=" H03 "\nallowed_ip=198.18.0.3/32\n");
	expect_quiet();
	/* A peer twice in a reply is refused. */
	{
		struct dev_state dump = {0};
		struct ap_install pos = {0};
		const char *r = "public_key=" H01 "\npublic_key=" H01 "\nerrno=0\n\n";

		cr_assert_eq(ap_dev_feed(&dump, r, strlen(r)), 0);
		cr_expect_eq(ap_state_install(st, &dump, &pos, 100), -EPROTO);
		ap_dev_free(&dump);
	}
}

Test(apply_state, batches_are_bounded_and_failures_requeue)
{
	const uint8_t *keys[5] = {K5, K4, K3, K2, K1};
	struct ap_batch b;
	char *req;

	for (int i = 0; i < 5; i++) {
		char ip[32];

		snprintf(ip, sizeof(ip), "198.18.1.%d/32", i + 1);
		want(keys[i], ip, 0, NULL, 1);
	}
	install("");
	/* At most 2 peers per request, in key order within it. */
	req = batch_ex(2, 1000, false, &b);
	cr_expect_eq(b.n, 2);
	cr_expect(strstr(req, "public_key=" H05) && strstr(req, "public_key=" H04) &&
		      strstr(req, "public_key=" H05) > strstr(req, "public_key=" H04),
		  "%s", req);
	free(req);
	/* Not applied: both are pending again, nothing lost. */
	cr_expect_eq(ap_state_pending(st), 5);
	for (int round = 0; round < 3; round++) {
		req = batch_ex(2, 1000, true, &b);
		cr_expect_eq(b.n, round < 2 ? 2 : 1);
		cr_expect_eq(b.added, b.n);
		free(req);
	}
	expect_quiet();
	/* examine bounds the comparisons of one call, changed or not. */
	for (int i = 0; i < 5; i++)
		want(keys[i], i == 4 ? "198.18.2.1/32" : NULL, 0, NULL, 2);
	req = batch_ex(100, 2, true, &b);
	cr_expect_eq(b.n, 2);
	cr_expect_eq(ap_state_pending(st), 3);
	free(req);
}

Test(apply_state, contested_prefix_goes_to_the_newest_record)
{
	/* K1 and K2 both list 198.18.7.0/24; K2's record is newer. */
	want(K1, "198.18.0.1/32,198.18.7.0/24", 0, NULL, 100);
	want(K2, "198.18.0.2/32,198.18.7.0/24", 0, NULL, 200);
	cr_expect_eq(ap_state_conflicts(st), 1);
	expect_effective(K1, "198.18.0.1/32");
	expect_effective(K2, "198.18.0.2/32,198.18.7.0/24");
	install("");
	expect_batch("set=1\npublic_key=" H01 "\nallowed_ip=198.18.0.1/32\n"
		     "public_key=" H02 "\nallowed_ip=198.18.0.2/32\nallowed_ip=198.18.7.0/24\n\n");
	expect_quiet();
	/* Stable: a reconciliation against what that produced changes nothing. */
	install("public_key=" H01 "\nallowed_ip=198.18.0.1/32\n"
		"public_key=" H02 "\nallowed_ip=198.18.7.0/24\nallowed_ip=198.18.0.2/32\n");
	expect_quiet();

	/* K1 written again (now the newest): the prefix moves to it, K2 loses it. */
	want(K1, "198.18.0.1/32,198.18.7.0/24", 0, NULL, 300);
	expect_batch("set=1\npublic_key=" H01 "\nupdate_only=true\nreplace_allowed_ips=true\n"
		     "allowed_ip=198.18.0.1/32\nallowed_ip=198.18.7.0/24\n"
		     "public_key=" H02 "\nupdate_only=true\nreplace_allowed_ips=true\n"
		     "allowed_ip=198.18.0.2/32\n\n");
	expect_quiet();
	/* K1 removed: uncontested again, K2 gets it back. */
	unwant(K1);
	cr_expect_eq(ap_state_conflicts(st), 0);
	expect_effective(K2, "198.18.0.2/32,198.18.7.0/24");
	expect_batch("set=1\npublic_key=" H01 "\nremove=true\n"
		     "public_key=" H02 "\nupdate_only=true\nreplace_allowed_ips=true\n"
		     "allowed_ip=198.18.0.2/32\nallowed_ip=198.18.7.0/24\n\n");
	expect_quiet();
}

/* The outcome depends on the records only, not on the order they arrive in. */
Test(apply_state, contest_outcome_independent_of_order)
{
	static const struct {
		const uint8_t *key;
		const char *aips;
		uint64_t hlc;
	} recs[4] = {
	    {K1, "198.18.7.0/24,198.18.8.0/24", 500},
	    {K2, "198.18.7.0/24", 700},
	    {K3, "198.18.8.0/24,198.18.7.0/24", 700}, /* ties K2 on hlc: the greater key wins */
	    {K4, "198.18.8.0/24", 600},
	};
	static const int orders[4][4] = {{0, 1, 2, 3}, {3, 2, 1, 0}, {2, 0, 3, 1}, {1, 3, 0, 2}};
	char *first[4] = {NULL};

	for (int o = 0; o < 4; o++) {
		if (o) {
			ap_state_free(st);
			cr_assert_eq(ap_state_new(&st), 0);
		}
		for (int i = 0; i < 4; i++)
			want(recs[orders[o][i]].key, recs[orders[o][i]].aips, 0, NULL,
			     recs[orders[o][i]].hlc);
		cr_expect_eq(ap_state_conflicts(st), 2);
		for (int i = 0; i < 4; i++) {
			char *e = effective(recs[i].key);

			if (!o)
				first[i] = e;
			else {
				cr_expect_str_eq(e, first[i], "order %d, peer %d", o, i);
				free(e);
			}
		}
	}
	cr_expect_str_eq(first[0], "");
	cr_expect_str_eq(first[1], "");
	cr_expect_str_eq(first[2], "198.18.7.0/24,198.18.8.0/24");
	cr_expect_str_eq(first[3], "");
	for (int i = 0; i < 4; i++)
		free(first[i]);
}

/*
 * gwd holds a prefix for one peer; the store gives it to another, whose set
 * goes first (a batch of one): gwd moves the prefix, and the state follows,
 * so when the first peer wins it back later, it is sent again.
 */
Test(apply_state, prefix_taken_by_another_peer_in_gwd_is_tracked)
{
	struct ap_batch b;
	char *req;

	want(K1, "198.18.7.0/24", 0, NULL, 100);
	want(K2, "198.18.0.2/32", 0, NULL, 100);
	install("public_key=" H01 "\nallowed_ip=198.18.7.0/24\n"
		"public_key=" H02 "\nallowed_ip=198.18.0.2/32\n");
	expect_quiet();
	want(K2, "198.18.0.2/32,198.18.7.0/24", 0, NULL, 200);
	/* K2 queued first (its own change), K1 after (it lost the prefix): one at a time. */
	req = batch_ex(1, 1000, true, &b);
	cr_expect_str_eq(req, "set=1\npublic_key=" H02 "\nupdate_only=true\nreplace_allowed_ips="
			      "true\nallowed_ip=198.18.0.2/32\nallowed_ip=198.18.7.0/24\n\n");
	free(req);
	/* gwd took the prefix from K1 itself: nothing left to send for K1. */
	expect_quiet();
	/* K2 drops it again: K1 wins it back, and gwd must be told. */
	want(K2, "198.18.0.2/32", 0, NULL, 300);
	expect_batch("set=1\npublic_key=" H01 "\nupdate_only=true\nreplace_allowed_ips=true\n"
		     "allowed_ip=198.18.7.0/24\n"
		     "public_key=" H02 "\nupdate_only=true\nreplace_allowed_ips=true\n"
		     "allowed_ip=198.18.0.2/32\n\n");
	expect_quiet();
}

Test(apply_state, invalid_record_leaves_gwd_alone_and_interface_fields)
{
	Gwcluster__InterfaceConfig ifc = GWCLUSTER__INTERFACE_CONFIG__INIT;

	want(K1, "198.18.0.1/32", 0, "not-an-endpoint", 10);
	want(K2, "198.18.0.2/32", 0, NULL, 10);
	install("listen_port=51820\npublic_key=" H01 "\nallowed_ip=198.18.9.9/32\n"
		"public_key=" H02 "\nallowed_ip=198.18.0.2/32\n");
	expect_quiet();
	ifc.has_listen_port = 1;
	ifc.listen_port = 51820;
	ap_state_want_iface(st, &ifc);
	expect_quiet();
	ifc.listen_port = 51821;
	ifc.has_fwmark = 1;
	ifc.fwmark = 7;
	ap_state_want_iface(st, &ifc);
	cr_expect_eq(ap_state_pending(st), 1);
	expect_batch("set=1\nlisten_port=51821\nfwmark=7\n\n");
	expect_quiet();
	/* An interface change that fails is pending again. */
	ifc.listen_port = 51822;
	ap_state_want_iface(st, &ifc);
	free(batch_ex(10, 10, false, NULL));
	cr_expect_eq(ap_state_pending(st), 1);
	expect_batch("set=1\nlisten_port=51822\n\n");
}

Test(apply_state, many_peers_and_prefixes)
{
	enum { N = 20000 };
	uint8_t key[32] = {0};
	char ip[48];
	size_t sent = 0;

	for (unsigned i = 0; i < N; i++) {
		key[0] = (uint8_t)(i >> 8);
		key[1] = (uint8_t)i;
		key[31] = 0x55;
		snprintf(ip, sizeof(ip), "2001:db8:f::%x/128,198.18.%u.0/24", i, i % 256);
		want(key, ip, 0, NULL, i);
	}
	/* 198.18.X.0/24 is contested by ~78 peers each: 256 contests. */
	cr_expect_eq(ap_state_conflicts(st), 256);
	install("");
	for (int guard = 0; ap_state_pending(st) && guard < 100; guard++) {
		struct ap_batch b;

		free(batch_ex(1024, 4096, true, &b));
		sent += b.added;
	}
	cr_expect_eq(sent, N);
	expect_quiet();
	/* Every other peer removed: the contests shrink, nothing is left behind. */
	for (unsigned i = 0; i < N; i += 2) {
		key[0] = (uint8_t)(i >> 8);
		key[1] = (uint8_t)i;
		unwant(key);
	}
	cr_expect_eq(ap_state_wanted(st), N / 2);
	for (int guard = 0; ap_state_pending(st) && guard < 100; guard++)
		free(batch_ex(1024, 4096, true, NULL));
	expect_quiet();
	cr_expect_eq(ap_state_conflicts(st), 128); /* odd peers: i % 256 odd */
}
