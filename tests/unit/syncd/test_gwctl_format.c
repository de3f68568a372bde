// SPDX-License-Identifier: MIT
/*
 * gwctl's output (syncd/ctlfmt.c): exact tables and JSON for known messages,
 * and every JSON document checked by Python's json module as an independent
 * parser.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctlfmt.h"
#include "peerfile.h"

#define KEY_A "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
#define KEY_B "qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqo="
#define KEY_C "u7u7u7u7u7u7u7u7u7u7u7u7u7u7u7u7u7u7u7u7u7s="

/* 2026-01-01T00:00:00Z and a day before / after it. */
enum { T2026 = 1767225600, DAY = 86400 };

static char *capture_buf;
static size_t capture_len;

static FILE *capture(void)
{
	FILE *f = open_memstream(&capture_buf, &capture_len);

	cr_assert(f);
	return f;
}

static char *captured(FILE *f)
{
	fclose(f);
	return capture_buf;
}

/* Python's json module must accept doc; returns what the check script printed. */
static void expect_valid_json(const char *doc, const char *check)
{
	char cmd[1024], out[256] = "";
	char path[] = "/tmp/gwctl-json-XXXXXX";
	int fd = mkstemp(path);
	FILE *p;

	cr_assert(fd >= 0);
	cr_assert_eq(write(fd, doc, strlen(doc)), (ssize_t)strlen(doc));
	close(fd);
	snprintf(cmd, sizeof(cmd), "python3 -c 'import json,sys; d=json.load(open(\"%s\")); %s'",
		 path, check);
	p = popen(cmd, "r");
	cr_assert(p);
	if (!fgets(out, sizeof(out), p))
		out[0] = '\0';
	cr_expect_eq(pclose(p), 0, "python rejected: %s", doc);
	cr_expect_str_eq(out, "ok\n", "check '%s' on %s", check, doc);
	unlink(path);
}

static Gwcluster__PeerEntry *entry(const char *key, char **words, int n, uint64_t hlc,
				   uint32_t writer)
{
	Gwcluster__PeerEntry *e = calloc(1, sizeof(*e));
	const char *why;
	char err[256];

	gwcluster__peer_entry__init(e);
	e->peer = syncd_peer_new();
	cr_assert_eq(syncd_peer_set_public_key(e->peer, key, &why), 0);
	cr_assert_eq(syncd_peer_words(e->peer, n, words, NULL, err, sizeof(err)), 0, "%s", err);
	e->hlc = hlc;
	e->writer = writer;
	return e;
}

static void entry_free(Gwcluster__PeerEntry *e)
{
	syncd_peer_free(e->peer);
	free(e);
}

static char *alice_words[] = {"allowed-ips", "198.18.0.2/32,2001:db8:f::2",
			      "keepalive",   "25",
			      "endpoint",    "192.0.2.7:51820",
			      "name",	     "alice",
			      "owner",	     "it@example.com",
			      "expires",     "2026-01-01",
			      "tags",	     "laptop,eu"};
static char *bob_words[] = {"allowed-ips", "198.18.0.3/32"};

Test(format, peers_table)
{
	Gwcluster__PeerEntry *v[2] = {entry(KEY_A, alice_words, 14, 1, 1),
				      entry(KEY_B, bob_words, 2, 2, 3)};
	FILE *f = capture();

	syncd_fmt_peers_table(f, v, 2, T2026 + DAY);
	/* Columns as wide as their widest cell, two blanks apart, the last unpadded. */
	cr_expect_str_eq(captured(f),
			 "NAME   PUBLIC KEY                                    "
			 "ALLOWED IPS                      KEEPALIVE  ENDPOINT         "
			 "OWNER           EXPIRES                         TAGS\n"
			 "alice  " KEY_A "  "
			 "198.18.0.2/32,2001:db8:f::2/128  25s        192.0.2.7:51820  "
			 "it@example.com  2026-01-01T00:00:00Z (expired)  eu,laptop\n"
			 "-      " KEY_B "  "
			 "198.18.0.3/32                    off        -                "
			 "-               -                               -\n");
	free(capture_buf);
	entry_free(v[0]);
	entry_free(v[1]);
}

Test(format, peers_json)
{
	Gwcluster__PeerEntry *v[2] = {entry(KEY_A, alice_words, 14, 77, 1),
				      entry(KEY_B, bob_words, 2, 78, 3)};
	FILE *f = capture();
	char *doc;

	v[1]->peer->has_preshared_key = 1; /* shown as true, never as a key */
	syncd_fmt_peers_json(f, v, 2, T2026 - DAY);
	v[1]->peer->has_preshared_key = 0;
	doc = captured(f);
	cr_expect_str_eq(
	    doc,
	    "[\n {\"public_key\":\"" KEY_A "\",\"name\":\"alice\",\"owner\":\"it@example.com\","
	    "\"expires\":1767225600,\"expired\":false,\"tags\":[\"eu\",\"laptop\"],"
	    "\"allowed_ips\":[\"198.18.0.2/32\",\"2001:db8:f::2/128\"],"
	    "\"persistent_keepalive\":25,\"endpoint\":\"192.0.2.7:51820\","
	    "\"preshared_key\":false,\"hlc\":77,\"writer\":1},\n"
	    " {\"public_key\":\"" KEY_B "\",\"name\":null,\"owner\":null,\"expires\":null,"
	    "\"expired\":false,\"tags\":[],\"allowed_ips\":[\"198.18.0.3/32\"],"
	    "\"persistent_keepalive\":0,\"endpoint\":null,\"preshared_key\":true,"
	    "\"hlc\":78,\"writer\":3}\n]\n");
	expect_valid_json(doc, "print(\"ok\" if d[0][\"name\"]==\"alice\" and "
			       "d[1][\"preshared_key\"] and len(d)==2 else d)");
	free(doc);
	f = capture();
	syncd_fmt_peers_json(f, NULL, 0, 0);
	cr_expect_str_eq(captured(f), "[]\n");
	free(capture_buf);
	entry_free(v[0]);
	entry_free(v[1]);
}

Test(format, peer_show)
{
	Gwcluster__PeerEntry *e = entry(KEY_A, alice_words, 14, 5, 2);
	FILE *f = capture();

	syncd_fmt_peer_show(f, e, T2026 - DAY);
	cr_expect_str_eq(captured(f), "peer: " KEY_A "\n"
				      "  name: alice\n"
				      "  owner: it@example.com\n"
				      "  allowed ips: 198.18.0.2/32,2001:db8:f::2/128\n"
				      "  preshared key: (none)\n"
				      "  persistent keepalive: 25s\n"
				      "  endpoint hint: 192.0.2.7:51820\n"
				      "  expires: 2026-01-01T00:00:00Z\n"
				      "  tags: eu,laptop\n"
				      "  last written: hlc 5 by node 2\n");
	free(capture_buf);
	entry_free(e);
}

Test(format, json_string_escapes)
{
	FILE *f = capture();
	char *doc;

	syncd_fmt_json_string(f, "a\"b\\c\nd\x01\x7f\xc3\xab");
	doc = captured(f);
	cr_expect_str_eq(doc, "\"a\\\"b\\\\c\\nd\\u0001\\u007f\xc3\xab\"");
	expect_valid_json(doc, "print(\"ok\" if d==\"a\\\"b\\\\c\\nd\\x01\\x7f\\xeb\" else d)");
	free(doc);
}

static Gwcluster__ClusterStatus *status_new(void)
{
	static Gwcluster__MemberStatus m1 = GWCLUSTER__MEMBER_STATUS__INIT,
				       m2 = GWCLUSTER__MEMBER_STATUS__INIT;
	static Gwcluster__OriginSeq o1 = GWCLUSTER__ORIGIN_SEQ__INIT,
				    o2 = GWCLUSTER__ORIGIN_SEQ__INIT;
	static Gwcluster__OriginSeq *applied[] = {&o1, &o2};
	static Gwcluster__MemberStatus *members[] = {&m1, &m2};
	static Gwcluster__ClusterStatus st = GWCLUSTER__CLUSTER_STATUS__INIT;

	o1.origin = 1;
	o1.seq = 40;
	o2.origin = 2;
	o2.seq = 7;
	m1.node_id = 1;
	m1.address = "203.0.113.1";
	m1.self = 1;
	m1.reachable = 1;
	m1.version = "0.1.0";
	m1.has_synced = 1;
	m1.synced = 1;
	m2.node_id = 2;
	m2.address = "203.0.113.2";
	m2.reachable = 0;
	m2.has_last_seen_ms_ago = 1;
	m2.last_seen_ms_ago = 95000;
	m2.has_lag = 1;
	m2.lag = 12;
	m2.has_behind = 1;
	m2.behind = 3;
	m2.n_applied = 2;
	m2.applied = applied;
	st.cluster = "lab";
	st.node_id = 1;
	st.synced = 0;
	st.n_members = 2;
	st.members = members;
	st.has_peers = 1;
	st.peers = 3;
	st.has_gwd_connected = 1;
	st.gwd_connected = 1;
	return &st;
}

Test(format, status)
{
	Gwcluster__ClusterStatus *st = status_new();
	FILE *f = capture();
	char *doc;

	syncd_fmt_status_table(f, st);
	cr_expect_str_eq(
	    captured(f),
	    "cluster lab, node 1: NOT synced (catching up)\n"
	    "peers: 3, gwd: connected, rejected messages: null\n"
	    "\n"
	    "NODE  ADDRESS      SELF  REACHABLE  LAST SEEN  LAG  BEHIND  VERSION  SYNCED\n"
	    "1     203.0.113.1  yes   yes        -          -    -       0.1.0    yes\n"
	    "2     203.0.113.2  no    no         95s        12   3       -        -\n");
	free(capture_buf);
	f = capture();
	syncd_fmt_status_json(f, st);
	doc = captured(f);
	cr_expect_str_eq(
	    doc,
	    "{\"cluster\":\"lab\",\"node_id\":1,\"synced\":false,\"peers\":3,"
	    "\"gwd_connected\":true,\"rejected_messages\":null,\"members\":[\n"
	    " {\"node_id\":1,\"address\":\"203.0.113.1\",\"self\":true,\"reachable\":true,"
	    "\"last_seen_ms_ago\":null,\"lag\":null,\"behind\":null,\"version\":\"0.1.0\",\"synced\":true,"
	    "\"applied\":[]},\n"
	    " {\"node_id\":2,\"address\":\"203.0.113.2\",\"self\":false,\"reachable\":false,"
	    "\"last_seen_ms_ago\":95000,\"lag\":12,\"behind\":3,\"version\":null,\"synced\":null,"
	    "\"applied\":[{\"origin\":1,\"seq\":40},{\"origin\":2,\"seq\":7}]}\n]}\n");
	expect_valid_json(doc, "print(\"ok\" if d[\"members\"][1][\"applied\"][1][\"seq\"]==7 "
			       "else d)");
	free(doc);
}

Test(format, diff_with_names)
{
	Gwcluster__PeerEntry *file_alice = entry(KEY_A, alice_words, 14, 0, 0);
	Gwcluster__PeerEntry *stored_bob = entry(KEY_B, bob_words, 2, 0, 0);
	char *renamed[] = {"name", "old-alice"};
	Gwcluster__PeerEntry *stored_alice = entry(KEY_A, renamed, 2, 0, 0);
	char *bob_name[] = {"name", "bob"};
	Gwcluster__PeerConfig *known[3];
	Gwcluster__ApplyDiff d = GWCLUSTER__APPLY_DIFF__INIT;
	ProtobufCBinaryData added[2], removed[1];
	FILE *f;
	char *doc, err[64];

	cr_assert_eq(syncd_peer_words(stored_bob->peer, 2, bob_name, NULL, err, sizeof(err)), 0);
	known[0] = file_alice->peer;
	known[1] = stored_bob->peer;
	known[2] = stored_alice->peer;
	added[0] = file_alice->peer->public_key;
	added[1].len = 32;
	added[1].data = (uint8_t *)"\xbb\xbb\xbb\xbb\xbb\xbb\xbb\xbb\xbb\xbb\xbb\xbb\xbb\xbb\xbb"
				   "\xbb\xbb\xbb\xbb\xbb\xbb\xbb\xbb\xbb\xbb\xbb\xbb\xbb\xbb\xbb"
				   "\xbb\xbb";
	removed[0] = stored_bob->peer->public_key;
	d.n_added = 2;
	d.added = added;
	d.n_removed = 1;
	d.removed = removed;

	f = capture();
	syncd_fmt_diff(f, &d, known, 3, true);
	cr_expect_str_eq(captured(f),
			 "+ " KEY_A "  alice\n"
			 "+ " KEY_C "\n"
			 "- " KEY_B "  bob\n"
			 "dry run: 2 to add, 1 to remove, 0 to change; nothing changed\n");
	free(capture_buf);
	f = capture();
	syncd_fmt_diff_json(f, &d, known, 3, false);
	doc = captured(f);
	cr_expect_str_eq(doc, "{\"dry_run\":false,\"added\":[{\"public_key\":\"" KEY_A
			      "\",\"name\":\"alice\"},{\"public_key\":\"" KEY_C
			      "\",\"name\":null}],\"removed\":[{\"public_key\":\"" KEY_B
			      "\",\"name\":\"bob\"}],\"changed\":[]}\n");
	expect_valid_json(doc, "print(\"ok\" if d[\"removed\"][0][\"name\"]==\"bob\" else d)");
	free(doc);
	f = capture();
	syncd_fmt_diff(f, NULL, NULL, 0, false);
	cr_expect_str_eq(captured(f), "no changes\n");
	free(capture_buf);
	entry_free(file_alice);
	entry_free(stored_bob);
	entry_free(stored_alice);
}
