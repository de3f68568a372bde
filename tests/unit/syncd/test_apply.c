// SPDX-License-Identifier: MIT
/*
 * syncd_apply: the diff against known get replies (exact request text), and
 * against a real wireguard-go in a private network namespace, checked with
 * `wg show IFNAME dump` (wireguard-tools as the independent reference).
 * GW_APPLY_DAEMON=PATH runs the daemon tests against another wireguard-go
 * compatible daemon (gwd).
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
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "apply.h"
#include "support.h"
#include "gw/crypto.h"
#include "gw/key.h"

#define H(b) b b b b b b b b b b b b b b b b b b b b b b b b b b b b b b b b
#define H01  H("01")
#define H02  H("02")
#define H03  H("03")
#define H04  H("04")
#define H0A  H("0a")
#define H0B  H("0b")
#define HZ   H("00")

/* --- Building desired sets ------------------------------------------------ */

struct tpeer {
	uint8_t key[GW_KEY_LEN];
	uint8_t psk[GW_KEY_LEN]; /* all zero: none */
	const char *aips;	 /* comma-separated, NULL: none */
	uint32_t ka;
	const char *ep;
};

static Gwcluster__PeerConfig *pc_new(const struct tpeer *t)
{
	Gwcluster__PeerConfig *pc = calloc(1, sizeof(*pc));
	char *list, *save = NULL;

	cr_assert(pc);
	gwcluster__peer_config__init(pc);
	pc->public_key.len = GW_KEY_LEN;
	pc->public_key.data = malloc(GW_KEY_LEN);
	memcpy(pc->public_key.data, t->key, GW_KEY_LEN);
	if (!gw_key_is_zero(t->psk)) {
		pc->has_preshared_key = 1;
		pc->preshared_key.len = GW_KEY_LEN;
		pc->preshared_key.data = malloc(GW_KEY_LEN);
		memcpy(pc->preshared_key.data, t->psk, GW_KEY_LEN);
	}
	if (t->ka) {
		pc->has_persistent_keepalive = 1;
		pc->persistent_keepalive = t->ka;
	}
	pc->endpoint = t->ep ? strdup(t->ep) : NULL;
	list = t->aips ? strdup(t->aips) : NULL;
	for (char *s = list ? strtok_r(list, ",", &save) : NULL; s;
	     s = strtok_r(NULL, ",", &save)) {
		pc->allowed_ips =
		    realloc(pc->allowed_ips, (pc->n_allowed_ips + 1) * sizeof(char *));
		pc->allowed_ips[pc->n_allowed_ips++] = strdup(s);
	}
	free(list);
	return pc;
}

static void pc_free(Gwcluster__PeerConfig *pc)
{
	for (size_t i = 0; i < pc->n_allowed_ips; i++)
		free(pc->allowed_ips[i]);
	free(pc->allowed_ips);
	free(pc->public_key.data);
	free(pc->preshared_key.data);
	free(pc->endpoint);
	free(pc);
}

struct want {
	Gwcluster__PeerConfig *v[8];
	size_t n;
};

static void want_set(struct want *w, const struct tpeer *t, size_t n)
{
	cr_assert(n <= 8);
	for (size_t i = 0; i < n; i++)
		w->v[i] = pc_new(&t[i]);
	w->n = n;
}

static void want_clear(struct want *w)
{
	for (size_t i = 0; i < w->n; i++)
		pc_free(w->v[i]);
	w->n = 0;
}

/* A key of 32 equal bytes; in hex, H("..") above. */
#define B8(b) b, b, b, b, b, b, b, b
#define KEY(b)                             \
	{                                  \
		B8(b), B8(b), B8(b), B8(b) \
	}

/* --- The diff against known replies --------------------------------------- */

/* A gwd with peers 01 (2 allowed IPs, psk 0a, ka 25, endpoint), 02 and 03. */
static const char REPLY3[] = "private_key=" H0B "\n"
			     "listen_port=51820\n"
			     "public_key=" H01 "\n"
			     "preshared_key=" H0A "\n"
			     "protocol_version=1\n"
			     "endpoint=192.0.2.7:51820\n"
			     "last_handshake_time_sec=0\n"
			     "last_handshake_time_nsec=0\n"
			     "tx_bytes=0\n"
			     "rx_bytes=0\n"
			     "persistent_keepalive_interval=25\n"
			     "allowed_ip=2001:db8:f::1/128\n"
			     "allowed_ip=198.18.0.1/32\n"
			     "public_key=" H02 "\n"
			     "preshared_key=" HZ "\n"
			     "persistent_keepalive_interval=0\n"
			     "allowed_ip=198.18.0.2/32\n"
			     "public_key=" H03 "\n"
			     "allowed_ip=198.18.3.0/24\n"
			     "errno=0\n"
			     "\n";

/*
 * The same as REPLY3, in another order, with host bits, a duplicate prefix
 * and another endpoint (gwd's own endpoint wins).
 */
static const struct tpeer same3[] = {
    {.key = KEY(3), .aips = "198.18.3.77/24"},
    {.key = KEY(1),
     .psk = KEY(0xa),
     .aips = "198.18.0.1/32,2001:db8:f::1/128,198.18.0.1",
     .ka = 25,
     .ep = "203.0.113.9:1"},
    {.key = KEY(2), .aips = "198.18.0.2/32"},
};

struct diff_case {
	const char *name;
	const struct tpeer *peers;
	size_t n;
	const char *req; /* NULL: nothing to send */
	struct syncd_apply_result res;
};

static const struct diff_case diff_cases[] = {
    {"unchanged", same3, 3, NULL, {.unchanged = 3}},
    {"one allowed IP changed",
     (const struct tpeer[]){
	 {.key = KEY(1), .psk = KEY(0xa), .aips = "198.18.0.1/32,2001:db8:f::1/128", .ka = 25},
	 {.key = KEY(2), .aips = "198.18.0.2/32,198.18.9.0/24"},
	 {.key = KEY(3), .aips = "198.18.3.0/24"}},
     3,
     "set=1\npublic_key=" H02 "\nupdate_only=true\nreplace_allowed_ips=true\n"
     "allowed_ip=198.18.0.2/32\nallowed_ip=198.18.9.0/24\n\n",
     {.changed = 1, .unchanged = 2}},
    {"removed, added, psk cleared, keepalive",
     (const struct tpeer[]){{.key = KEY(4),
			     .psk = KEY(0xb),
			     .aips = "2001:db8:f::4",
			     .ka = 5,
			     .ep = "[2001:db8:1::7]:9"},
			    {.key = KEY(1), .aips = "2001:db8:f::1/128,198.18.0.1/32", .ka = 30},
			    {.key = KEY(2), .aips = "198.18.0.2/32"}},
     3,
     "set=1\npublic_key=" H01 "\nupdate_only=true\npreshared_key=" HZ "\n"
     "persistent_keepalive_interval=30\n"
     "public_key=" H03 "\nremove=true\n"
     "public_key=" H04 "\npreshared_key=" H0B "\nendpoint=[2001:db8:1::7]:9\n"
     "persistent_keepalive_interval=5\nallowed_ip=2001:db8:f::4/128\n\n",
     {.added = 1, .removed = 1, .changed = 1, .unchanged = 1}},
    {"endpoint only where gwd has none, psk set",
     (const struct tpeer[]){
	 {.key = KEY(1), .psk = KEY(0xa), .aips = "198.18.0.1/32,2001:db8:f::1/128", .ka = 25},
	 {.key = KEY(2), .psk = KEY(0xb), .aips = "198.18.0.2/32", .ep = "192.0.2.2:51820"},
	 {.key = KEY(3), .aips = "198.18.3.0/24"}},
     3,
     "set=1\npublic_key=" H02 "\nupdate_only=true\npreshared_key=" H0B "\n"
     "endpoint=192.0.2.2:51820\n\n",
     {.changed = 1, .unchanged = 2}},
    {"everything removed",
     NULL,
     0,
     "set=1\npublic_key=" H01 "\nremove=true\npublic_key=" H02 "\nremove=true\n"
     "public_key=" H03 "\nremove=true\n\n",
     {.removed = 3}},
    {"invalid entry leaves its peer alone, duplicate: last wins",
     (const struct tpeer[]){{.key = KEY(1), .aips = "198.18.0.300/32"},
			    {.key = KEY(2), .aips = "198.18.0.9/32"},
			    {.key = KEY(2), .aips = "198.18.0.2/32"},
			    {.key = KEY(3), .aips = "198.18.3.0/24", .ep = "not-an-endpoint"}},
     4,
     NULL,
     {.unchanged = 1, .skipped = 3}},
};

Test(apply_diff, table)
{
	for (size_t i = 0; i < sizeof(diff_cases) / sizeof(diff_cases[0]); i++) {
		const struct diff_case *c = &diff_cases[i];
		struct syncd_apply_result res;
		struct want w;
		char *req = (char *)1;
		int rc;

		want_set(&w, c->peers, c->n);
		rc = syncd_apply_diff(REPLY3, strlen(REPLY3), w.v, w.n, NULL, &req, &res);
		cr_assert_eq(rc, 0, "%s: rc %d", c->name, rc);
		cr_expect_str_eq(req ? req : "(none)", c->req ? c->req : "(none)", "%s", c->name);
		cr_expect(!memcmp(&res, &c->res, sizeof(res)),
			  "%s: +%zu -%zu ~%zu =%zu skipped %zu", c->name, res.added, res.removed,
			  res.changed, res.unchanged, res.skipped);
		syncd_apply_free(req);
		want_clear(&w);
	}
}

Test(apply_diff, interface_fields_only_when_given_and_different)
{
	Gwcluster__InterfaceConfig ifc = GWCLUSTER__INTERFACE_CONFIG__INIT;
	struct syncd_apply_result res;
	struct want w;
	char *req;

	want_set(&w, same3, 3);
	ifc.has_listen_port = 1;
	ifc.listen_port = 51820;
	ifc.has_mtu = 1;
	ifc.mtu = 1380;
	ifc.private_key_file = "/etc/wireguard/never-read.key";
	cr_assert_eq(syncd_apply_diff(REPLY3, strlen(REPLY3), w.v, w.n, &ifc, &req, &res), 0);
	cr_expect_null(req, "same port, mtu is not UAPI, private key never: %s", req);
	ifc.listen_port = 51821;
	ifc.has_fwmark = 1;
	ifc.fwmark = 7;
	cr_assert_eq(syncd_apply_diff(REPLY3, strlen(REPLY3), w.v, w.n, &ifc, &req, &res), 0);
	cr_expect_str_eq(req, "set=1\nlisten_port=51821\nfwmark=7\n\n");
	syncd_apply_free(req);
	want_clear(&w);
}

struct bad_reply {
	const char *why;
	const char *reply;
	int rc;
};

static const struct bad_reply bad_replies[] = {
    {"empty", "", -EPROTO},
    {"no errno", "listen_port=1\n\n", -EPROTO},
    {"no blank line", "errno=0\n", -EPROTO},
    {"data after the end", "errno=0\n\nx=1\n", -EPROTO},
    {"line without '='", "listen_port\nerrno=0\n\n", -EPROTO},
    {"bad key", "public_key=zz\nerrno=0\n\n", -EPROTO},
    {"short key", "public_key=0101\nerrno=0\n\n", -EPROTO},
    {"duplicate peer", "public_key=" H01 "\npublic_key=" H01 "\nerrno=0\n\n", -EPROTO},
    {"bad allowed ip", "public_key=" H01 "\nallowed_ip=198.18.0.1/33\nerrno=0\n\n", -EPROTO},
    {"keepalive too big", "public_key=" H01 "\npersistent_keepalive_interval=65536\nerrno=0\n\n",
     -EPROTO},
    {"bad psk", "public_key=" H01 "\npreshared_key=" H01 "0\nerrno=0\n\n", -EPROTO},
    {"bad port", "listen_port=-1\nerrno=0\n\n", -EPROTO},
    {"errno not a number", "errno=x\n\n", -EPROTO},
    {"key after errno", "errno=0\nlisten_port=1\n\n", -EPROTO},
    {"gwd's errno", "errno=22\n\n", -EINVAL},
    {"wireguard-go's negative errno", "errno=-95\n\n", -EOPNOTSUPP},
};

Test(apply_diff, malformed_replies_rejected)
{
	for (size_t i = 0; i < sizeof(bad_replies) / sizeof(bad_replies[0]); i++) {
		const struct bad_reply *b = &bad_replies[i];
		struct syncd_apply_result res;
		char *req = (char *)1;

		cr_expect_eq(
		    syncd_apply_diff(b->reply, strlen(b->reply), NULL, 0, NULL, &req, &res), b->rc,
		    "%s", b->why);
		cr_expect_null(req, "%s", b->why);
	}
}

Test(apply_diff, bounds)
{
	/* A line of SYNCD_APPLY_LINE_MAX bytes passes, one more is refused. */
	size_t pad = SYNCD_APPLY_LINE_MAX - strlen("x=");
	char *reply = malloc(SYNCD_APPLY_LINE_MAX + 64);
	struct syncd_apply_result res;
	char *req;
	int n;

	n = sprintf(reply, "x=%0*d\nerrno=0\n\n", (int)pad, 0);
	cr_expect_eq(syncd_apply_diff(reply, (size_t)n, NULL, 0, NULL, &req, &res), 0);
	n = sprintf(reply, "x=%0*d\nerrno=0\n\n", (int)pad + 1, 0);
	cr_expect_eq(syncd_apply_diff(reply, (size_t)n, NULL, 0, NULL, &req, &res), -EPROTO);
	/* A NUL inside a line. */
	memcpy(reply, "x=1\0\nerrno=0\n\n", 14);
	cr_expect_eq(syncd_apply_diff(reply, 14, NULL, 0, NULL, &req, &res), -EPROTO);
	free(reply);
}

/* --- Against wireguard-go ------------------------------------------------- */

static void wggo_start(void)
{
	wgd_setup("gwap");
	wgd_start(NULL);
}

/* Sorted lines "pubkey psk endpoint allowed-ips keepalive" of every peer. */
static char *wg_dump(void)
{
	char cmd[64], line[1024], *lines[64], *out = calloc(1, 16384);
	size_t n = 0;
	FILE *f;

	snprintf(cmd, sizeof(cmd), "wg show %s dump", wgd_if);
	f = popen(cmd, "r");
	cr_assert(f);
	cr_assert(fgets(line, sizeof(line), f), "wg show: no interface line");
	while (n < 64 && fgets(line, sizeof(line), f)) {
		char *field[8], *save = NULL, *s = line;
		size_t k = 0;

		line[strcspn(line, "\n")] = '\0';
		for (char *p = strtok_r(s, "\t", &save); p && k < 8;
		     p = strtok_r(NULL, "\t", &save))
			field[k++] = p;
		cr_assert_eq(k, 8, "wg dump line with %zu fields", k);
		wgd_sort_list(field[3]);
		cr_assert(asprintf(&lines[n++], "%s %s %s %s %s\n", field[0], field[1], field[2],
				   field[3], field[7]) > 0);
	}
	cr_assert_eq(pclose(f), 0, "wg show failed");
	qsort(lines, n, sizeof(*lines), wgd_strcmp_p);
	for (size_t i = 0; i < n; i++) {
		strcat(out, lines[i]);
		free(lines[i]);
	}
	return out;
}

/* What wg_dump() must show for the desired peers (endpoints as given). */
static char *expected_dump(const struct tpeer *t, size_t n)
{
	char *lines[8], *out = calloc(1, 8192);

	for (size_t i = 0; i < n; i++) {
		char pub[GW_KEY_B64_LEN + 1], psk[GW_KEY_B64_LEN + 1] = "(none)", ka[16] = "off";
		char aips[512];

		gw_key_to_base64(pub, t[i].key);
		if (!gw_key_is_zero(t[i].psk))
			gw_key_to_base64(psk, t[i].psk);
		if (t[i].ka)
			snprintf(ka, sizeof(ka), "%u", t[i].ka);
		snprintf(aips, sizeof(aips), "%s", t[i].aips ? t[i].aips : "(none)");
		wgd_sort_list(aips);
		cr_assert(asprintf(&lines[i], "%s %s %s %s %s\n", pub, psk,
				   t[i].ep ? t[i].ep : "(none)", aips, ka) > 0);
	}
	qsort(lines, n, sizeof(*lines), wgd_strcmp_p);
	for (size_t i = 0; i < n; i++) {
		strcat(out, lines[i]);
		free(lines[i]);
	}
	return out;
}

static void expect_state(const struct tpeer *t, size_t n)
{
	char *got = wg_dump(), *want = expected_dump(t, n);

	cr_expect_str_eq(got, want);
	free(got);
	free(want);
}

static void new_key(uint8_t key[static GW_KEY_LEN])
{
	uint8_t priv[GW_KEY_LEN];

	gw_x25519_generate(priv);
	cr_assert(gw_x25519_public(key, priv));
	gw_wipe(priv, sizeof(priv));
}

/* Applies t[0..n) and checks the result against wg. */
static struct syncd_apply_result apply_and_check(const struct tpeer *t, size_t n)
{
	struct syncd_apply_result res;
	struct want w;
	int rc;

	want_set(&w, t, n);
	rc = syncd_apply(wgd_if, w.v, w.n, NULL, &res);
	cr_assert_eq(rc, 0, "syncd_apply: %s", strerror(-rc));
	want_clear(&w);
	expect_state(t, n);
	return res;
}

static char *plan(const struct tpeer *t, size_t n)
{
	struct syncd_apply_result res;
	struct want w;
	char *req;

	want_set(&w, t, n);
	cr_assert_eq(syncd_apply_plan(wgd_if, w.v, w.n, NULL, &req, &res), 0);
	want_clear(&w);
	return req;
}

static char *hexkey(const uint8_t key[static GW_KEY_LEN])
{
	static char hex[4][GW_KEY_HEX_LEN + 1];
	static int i;

	i = (i + 1) % 4;
	gw_key_to_hex(hex[i], key);
	return hex[i];
}

TestSuite(apply_wggo, .init = wggo_start, .fini = wgd_term, .timeout = 60);

Test(apply_wggo, add_change_remove_psk_idempotent)
{
	struct tpeer t[3] = {
	    {.aips = "198.18.0.1/32,2001:db8:f::1/128", .ka = 25, .ep = "192.0.2.7:51820"},
	    {.aips = "198.18.0.2/32"},
	    {.aips = "198.18.3.0/24"},
	};
	struct syncd_apply_result res;
	char *req, *want;

	for (int i = 0; i < 3; i++)
		new_key(t[i].key);
	res = apply_and_check(t, 3);
	cr_expect_eq(res.added, 3);

	/* Idempotent: nothing to send, nothing sent. */
	cr_expect_null(plan(t, 3));
	res = apply_and_check(t, 3);
	cr_expect(res.unchanged == 3 && !res.added && !res.changed && !res.removed);

	/* One peer's allowed IPs: only that peer is mentioned. */
	t[1].aips = "198.18.0.2/32,198.18.9.0/24";
	req = plan(t, 3);
	cr_assert(asprintf(&want,
			   "set=1\npublic_key=%s\nupdate_only=true\nreplace_allowed_ips=true\n"
			   "allowed_ip=198.18.0.2/32\nallowed_ip=198.18.9.0/24\n\n",
			   hexkey(t[1].key)) > 0);
	cr_expect_str_eq(req, want);
	syncd_apply_free(req);
	free(want);
	res = apply_and_check(t, 3);
	cr_expect(res.changed == 1 && res.unchanged == 2);

	/* A preshared key set, then cleared. */
	gw_random_bytes(t[2].psk, GW_KEY_LEN);
	req = plan(t, 3);
	cr_assert(asprintf(&want, "set=1\npublic_key=%s\nupdate_only=true\npreshared_key=%s\n\n",
			   hexkey(t[2].key), hexkey(t[2].psk)) > 0);
	cr_expect_str_eq(req, want);
	syncd_apply_free(req);
	free(want);
	apply_and_check(t, 3);
	memset(t[2].psk, 0, GW_KEY_LEN);
	req = plan(t, 3);
	cr_expect(req && strstr(req, "preshared_key=" HZ "\n"), "psk cleared: %s", req);
	syncd_apply_free(req);
	apply_and_check(t, 3);

	/* Removal of one. */
	req = plan(t, 2);
	cr_assert(asprintf(&want, "set=1\npublic_key=%s\nremove=true\n\n", hexkey(t[2].key)) > 0);
	cr_expect_str_eq(req, want);
	syncd_apply_free(req);
	free(want);
	res = apply_and_check(t, 2);
	cr_expect(res.removed == 1 && res.unchanged == 2);
	cr_expect_null(plan(t, 2));
}

Test(apply_wggo, roamed_endpoint_kept_and_allowed_ip_moves)
{
	struct tpeer t[2] = {
	    {.aips = "198.18.0.1/32,198.18.7.0/24", .ep = "192.0.2.7:51820"},
	    {.aips = "198.18.0.2/32"},
	};
	char pub[GW_KEY_B64_LEN + 1], args[256];

	new_key(t[0].key);
	new_key(t[1].key);
	apply_and_check(t, 2);

	/* A roamed endpoint is live state: apply leaves it. */
	gw_key_to_base64(pub, t[0].key);
	snprintf(args, sizeof(args), "peer %s endpoint 203.0.113.50:4000", pub);
	wgd_wg_set(args);
	t[0].ep = "203.0.113.50:4000";
	apply_and_check(t, 2);

	/* One prefix moves from peer 0 to peer 1 in one transaction. */
	t[0].aips = "198.18.0.1/32";
	t[1].aips = "198.18.0.2/32,198.18.7.0/24";
	apply_and_check(t, 2);
	cr_expect_null(plan(t, 2));
}

Test(apply_wggo, interface_settings_and_private_key)
{
	Gwcluster__InterfaceConfig ifc = GWCLUSTER__INTERFACE_CONFIG__INIT;
	struct tpeer t[1] = {{.aips = "2001:db8:f::9/128", .ka = 10}};
	struct want w;
	char keyfile[64], cmd[128], before[128] = "", after[128] = "";
	uint8_t priv[GW_KEY_LEN];
	char b64[GW_KEY_B64_LEN + 1];
	FILE *f;

	gw_x25519_generate(priv);
	gw_key_to_base64(b64, priv);
	snprintf(keyfile, sizeof(keyfile), "/tmp/gwap-%d.key", (int)getpid());
	f = fopen(keyfile, "w");
	cr_assert(f);
	fprintf(f, "%s\n", b64);
	fclose(f);
	snprintf(cmd, sizeof(cmd), "private-key %s listen-port 51000", keyfile);
	wgd_wg_set(cmd);
	unlink(keyfile);

	new_key(t[0].key);
	want_set(&w, t, 1);
	ifc.has_listen_port = 1;
	ifc.listen_port = 51001;
	cr_assert_eq(syncd_apply(wgd_if, w.v, w.n, &ifc, NULL), 0);
	want_clear(&w);
	expect_state(t, 1);

	snprintf(cmd, sizeof(cmd), "wg show %s private-key; wg show %s listen-port", wgd_if,
		 wgd_if);
	f = popen(cmd, "r");
	cr_assert(f);
	cr_assert(fread(after, 1, sizeof(after) - 1, f) > 0);
	pclose(f);
	snprintf(before, sizeof(before), "%s\n51001\n", b64);
	cr_expect_str_eq(after, before, "private key untouched, port changed");
	gw_wipe(priv, sizeof(priv));
}

Test(apply_errors, no_daemon)
{
	struct syncd_apply_result res;
	char path[108], name[16];
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	int fd;

	snprintf(name, sizeof(name), "gwan%d", (int)getpid());
	cr_expect_eq(syncd_apply(name, NULL, 0, NULL, &res), -ENOENT);
	cr_expect_eq(syncd_apply("../etc/x", NULL, 0, NULL, &res), -EINVAL);
	cr_expect_eq(syncd_apply("", NULL, 0, NULL, &res), -EINVAL);
	cr_expect_eq(syncd_apply("a23456789012345x", NULL, 0, NULL, &res), -EINVAL);

	/* A socket left behind by a dead daemon. */
	if (geteuid() != 0)
		cr_skip_test("/var/run/wireguard needs root");
	mkdir("/var/run/wireguard", 0700);
	wgd_sock_path(path, sizeof(path), name);
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	cr_assert(fd >= 0);
	cr_assert_eq(bind(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	close(fd);
	cr_expect_eq(syncd_apply(name, NULL, 0, NULL, &res), -ECONNREFUSED);
	unlink(path);
}
