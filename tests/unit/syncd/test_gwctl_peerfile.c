// SPDX-License-Identifier: MIT
/*
 * gwctl's input side (syncd/peerfile.c): field parsers to canonical form,
 * the wg-like word syntax, `peer set` field copying and the apply-file
 * parser with its FILE:LINE errors. Expected epochs from `date -u -d ... +%s`,
 * keys from Python's base64.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gw/crypto.h"
#include "peerfile.h"

/* bytes 0..31 and 32 x 0xaa */
#define KEY_A "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
#define KEY_B "qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqo="

/* One line per PeerConfig: every field, so tests compare whole peers. */
static char *describe(const Gwcluster__PeerConfig *pc)
{
	const Gwcluster__PeerMeta *m = pc->meta;
	char *s = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&s, &len);

	cr_assert(f);
	fprintf(f, "key=%zu aips=", pc->public_key.len);
	for (size_t i = 0; i < pc->n_allowed_ips; i++)
		fprintf(f, "%s%s", i ? "," : "", pc->allowed_ips[i]);
	fprintf(f, " psk=%s", pc->has_preshared_key ? "yes" : "no");
	if (pc->has_persistent_keepalive)
		fprintf(f, " ka=%u", pc->persistent_keepalive);
	if (pc->endpoint)
		fprintf(f, " ep=%s", pc->endpoint);
	if (m && m->name)
		fprintf(f, " name=%s", m->name);
	if (m && m->owner)
		fprintf(f, " owner=%s", m->owner);
	if (m && m->has_expires_unix)
		fprintf(f, " exp=%llu", (unsigned long long)m->expires_unix);
	if (m)
		fprintf(f, " meta tags=");
	for (size_t i = 0; m && i < m->n_tags; i++)
		fprintf(f, "%s%s", i ? "," : "", m->tags[i]);
	fclose(f);
	return s;
}

static void expect_peer(const Gwcluster__PeerConfig *pc, const char *want, const char *ctx)
{
	char *got = describe(pc);

	cr_expect_str_eq(got, want, "%s", ctx);
	free(got);
}

typedef int setter(Gwcluster__PeerConfig *pc, const char *s, const char **why);

struct field_case {
	setter *fn;
	const char *in;
	int rc;
	const char *want; /* describe() after, or a substring of why on error */
};

static const struct field_case field_cases[] = {
    {syncd_peer_set_allowed_ips, "198.18.0.2/32, 2001:db8:f::/64,198.18.0.0/16", 0,
     "key=0 aips=198.18.0.0/16,198.18.0.2/32,2001:db8:f::/64 psk=no"},
    {syncd_peer_set_allowed_ips, "2001:DB8:F::1,198.18.0.2,198.18.0.2/32", 0,
     "key=0 aips=198.18.0.2/32,2001:db8:f::1/128 psk=no"},
    {syncd_peer_set_allowed_ips, "0.0.0.0/0,::/0", 0, "key=0 aips=0.0.0.0/0,::/0 psk=no"},
    {syncd_peer_set_allowed_ips, "", 0, "key=0 aips= psk=no"},
    {syncd_peer_set_allowed_ips, "198.18.0.5/24", -EINVAL,
     "host bits set (the network is "
     "198.18.0.0/24)"},
    {syncd_peer_set_allowed_ips, "198.18.0.1,,198.18.0.2", -EINVAL, "empty item"},
    {syncd_peer_set_allowed_ips, "198.18.0.1,", -EINVAL, "empty item"},
    {syncd_peer_set_allowed_ips, "198.18.0.1/33", -EINVAL, "\"198.18.0.1/33\": not an IP"},
    {syncd_peer_set_allowed_ips, "gw.example/32", -EINVAL, "not an IP prefix"},
    {syncd_peer_set_keepalive, "25", 0, "key=0 aips= psk=no ka=25"},
    {syncd_peer_set_keepalive, "off", 0, "key=0 aips= psk=no"},
    {syncd_peer_set_keepalive, "0", 0, "key=0 aips= psk=no"},
    {syncd_peer_set_keepalive, "65536", -EINVAL, "0..65535"},
    {syncd_peer_set_keepalive, "025", -EINVAL, "0..65535"},
    {syncd_peer_set_keepalive, "-1", -EINVAL, "0..65535"},
    {syncd_peer_set_endpoint, "192.0.2.7:51820", 0, "key=0 aips= psk=no ep=192.0.2.7:51820"},
    {syncd_peer_set_endpoint, "[2001:DB8:1::7]:51820", 0,
     "key=0 aips= psk=no ep=[2001:db8:1::7]:51820"},
    {syncd_peer_set_endpoint, "none", 0, "key=0 aips= psk=no"},
    {syncd_peer_set_endpoint, "gw.example:51820", -EINVAL, "numeric endpoint"},
    {syncd_peer_set_endpoint, "192.0.2.7", -EINVAL, "numeric endpoint"},
    {syncd_peer_set_name, "alice laptop", 0, "key=0 aips= psk=no name=alice laptop meta tags="},
    {syncd_peer_set_name, "Zo\xc3\xab", 0, "key=0 aips= psk=no name=Zo\xc3\xab meta tags="},
    {syncd_peer_set_name, "", 0, "key=0 aips= psk=no"},
    {syncd_peer_set_name, "bad\x01", -EINVAL, "control character"},
    {syncd_peer_set_name, "bad\xff", -EINVAL, "UTF-8"},
    {syncd_peer_set_name, "\xc3", -EINVAL, "UTF-8"},
    {syncd_peer_set_name, "12345678901234567890123456789012345678901234567890123456789012345",
     -EINVAL, "longer than 64"},
    {syncd_peer_set_owner, "it@example.com", 0,
     "key=0 aips= psk=no owner=it@example.com meta tags="},
    {syncd_peer_set_expires, "2026-01-01", 0, "key=0 aips= psk=no exp=1767225600 meta tags="},
    {syncd_peer_set_expires, "2026-01-01T12:30:00Z", 0,
     "key=0 aips= psk=no exp=1767270600 meta tags="},
    {syncd_peer_set_expires, "2026-01-01 12:30", 0, "key=0 aips= psk=no exp=1767270600 meta tags="},
    {syncd_peer_set_expires, "2024-02-29T23:59:59", 0,
     "key=0 aips= psk=no exp=1709251199 meta tags="},
    {syncd_peer_set_expires, "1767225600", 0, "key=0 aips= psk=no exp=1767225600 meta tags="},
    {syncd_peer_set_expires, "never", 0, "key=0 aips= psk=no"},
    {syncd_peer_set_expires, "2026-02-30", -EINVAL, "not a date"},
    {syncd_peer_set_expires, "2026-13-01", -EINVAL, "not a date"},
    {syncd_peer_set_expires, "2026-01-01T24:00", -EINVAL, "not a date"},
    {syncd_peer_set_expires, "1969-12-31", -EINVAL, "not a date"},
    {syncd_peer_set_expires, "tomorrow", -EINVAL, "not a date"},
    {syncd_peer_set_tags, "b,a,b", 0, "key=0 aips= psk=no meta tags=a,b"},
    {syncd_peer_set_tags, "", 0, "key=0 aips= psk=no"},
    {syncd_peer_set_tags, "bad tag", -EINVAL, "\"bad tag\": a tag is"},
    {syncd_peer_set_tags,
     "1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31,32,33",
     -E2BIG, "too many"},
    {syncd_peer_set_public_key, KEY_A, 0, "key=32 aips= psk=no"},
    {syncd_peer_set_public_key, "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8", -EINVAL,
     "44 base64"},
    {syncd_peer_set_public_key, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", -EINVAL,
     "all-zero"},
    {syncd_peer_set_psk, KEY_B, 0, "key=0 aips= psk=yes"},
    {syncd_peer_set_psk, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", 0, "key=0 aips= psk=no"},
    {syncd_peer_set_psk, "nope", -EINVAL, "not a preshared key"},
};

Test(peerfile, fields_to_canonical_form)
{
	for (size_t i = 0; i < sizeof(field_cases) / sizeof(field_cases[0]); i++) {
		const struct field_case *c = &field_cases[i];
		Gwcluster__PeerConfig *pc = syncd_peer_new();
		const char *why = NULL;
		int rc = c->fn(pc, c->in, &why);

		cr_expect_eq(rc, c->rc, "'%s': rc %d, want %d", c->in, rc, c->rc);
		if (c->rc) {
			cr_expect(why && strstr(why, c->want), "'%s': why '%s', want '%s'", c->in,
				  why, c->want);
			expect_peer(pc, "key=0 aips= psk=no", "unchanged on error");
		} else {
			expect_peer(pc, c->want, c->in);
			cr_expect(!pc->public_key.len || !syncd_peer_validate(pc, &why),
				  "'%s' is canonical", c->in);
		}
		syncd_peer_free(pc);
	}
}

Test(peerfile, error_leaves_field_as_it_was)
{
	Gwcluster__PeerConfig *pc = syncd_peer_new();
	const char *why;

	cr_assert_eq(syncd_peer_set_allowed_ips(pc, "198.18.0.2", &why), 0);
	cr_assert_eq(syncd_peer_set_tags(pc, "x", &why), 0);
	cr_expect_eq(syncd_peer_set_allowed_ips(pc, "198.18.0.3/33", &why), -EINVAL);
	cr_expect_eq(syncd_peer_add_tags(pc, "y,bad tag", &why), -EINVAL);
	expect_peer(pc, "key=0 aips=198.18.0.2/32 psk=no meta tags=x", "unchanged");
	cr_assert_eq(syncd_peer_add_allowed_ips(pc, "198.18.0.1,198.18.0.2/32", &why), 0);
	cr_assert_eq(syncd_peer_add_tags(pc, "a", &why), 0);
	expect_peer(pc, "key=0 aips=198.18.0.1/32,198.18.0.2/32 psk=no meta tags=a,x", "added");
	syncd_peer_free(pc);
}

static char *write_tmp(const char *content)
{
	char *path = strdup("/tmp/gwctl-test-XXXXXX");
	int fd = mkstemp(path);

	cr_assert(fd >= 0);
	cr_assert_eq(write(fd, content, strlen(content)), (ssize_t)strlen(content));
	close(fd);
	return path;
}

Test(peerfile, psk_file)
{
	Gwcluster__PeerConfig *pc = syncd_peer_new();
	char *good = write_tmp("  " KEY_B "\n"), *bad = write_tmp("not a key\n");
	const char *why;

	cr_expect_eq(syncd_peer_set_psk_file(pc, good, &why), 0);
	cr_expect(pc->has_preshared_key && pc->preshared_key.len == 32 &&
		  pc->preshared_key.data[0] == 0xaa);
	cr_expect_eq(syncd_peer_set_psk_file(pc, bad, &why), -EINVAL);
	cr_expect(pc->has_preshared_key, "kept on error");
	cr_expect_eq(syncd_peer_set_psk_file(pc, "/nonexistent/psk", &why), -ENOENT);
	cr_expect_eq(syncd_peer_set_psk_file(pc, "/dev/null", &why), 0);
	cr_expect(!pc->has_preshared_key && !pc->preshared_key.data, "/dev/null removes it");
	unlink(good);
	unlink(bad);
	free(good);
	free(bad);
	syncd_peer_free(pc);
}

Test(peerfile, words)
{
	char *ok[] = {"allowed-ips", "198.18.0.2/32,2001:db8:f::2",
		      "keepalive",   "25",
		      "endpoint",    "192.0.2.7:51820",
		      "name",	     "alice",
		      "owner",	     "it@example.com",
		      "expires",     "2026-01-01",
		      "tag",	     "laptop",
		      "tag",	     "eu"};
	char *unknown[] = {"allowed-ip", "198.18.0.2"};
	char *missing[] = {"keepalive"};
	char *bad[] = {"name", "x", "keepalive", "forever"};
	Gwcluster__PeerConfig *pc = syncd_peer_new();
	unsigned given = 0;
	char err[256];

	cr_assert_eq(syncd_peer_words(pc, 16, ok, &given, err, sizeof(err)), 0, "%s", err);
	expect_peer(pc,
		    "key=0 aips=198.18.0.2/32,2001:db8:f::2/128 psk=no ka=25 ep=192.0.2.7:51820 "
		    "name=alice owner=it@example.com exp=1767225600 meta tags=eu,laptop",
		    "words");
	cr_expect_eq(given, SYNCD_PEER_F_ALLOWED_IPS | SYNCD_PEER_F_KEEPALIVE |
				SYNCD_PEER_F_ENDPOINT | SYNCD_PEER_F_NAME | SYNCD_PEER_F_OWNER |
				SYNCD_PEER_F_EXPIRES | SYNCD_PEER_F_TAGS_ADD);
	cr_expect_eq(syncd_peer_words(pc, 2, unknown, NULL, err, sizeof(err)), -EINVAL);
	cr_expect(strstr(err, "unknown option 'allowed-ip'"), "%s", err);
	cr_expect_eq(syncd_peer_words(pc, 1, missing, NULL, err, sizeof(err)), -EINVAL);
	cr_expect_str_eq(err, "keepalive: needs a value");
	cr_expect_eq(syncd_peer_words(pc, 4, bad, NULL, err, sizeof(err)), -EINVAL);
	cr_expect(strstr(err, "keepalive: not a number"), "%s", err);
	syncd_peer_free(pc);
}

/* `peer set`: only the named fields change; "tag" adds, "tags" replaces. */
Test(peerfile, copy_fields)
{
	char *stored_words[] = {"allowed-ips", "198.18.0.2", "keepalive", "25",
				"name",	       "alice",	     "tags",	  "a,b",
				"endpoint",    "192.0.2.1:1"};
	char *set1[] = {"keepalive", "off", "tag", "c", "owner", "bob"};
	char *set2[] = {"tags", "z", "allowed-ips", "198.18.0.3", "name", ""};
	Gwcluster__PeerConfig *stored = syncd_peer_new(), *given;
	unsigned mask;
	char err[256];

	cr_assert_eq(syncd_peer_words(stored, 10, stored_words, NULL, err, sizeof(err)), 0);
	given = syncd_peer_new();
	cr_assert_eq(syncd_peer_words(given, 6, set1, &mask, err, sizeof(err)), 0);
	cr_assert_eq(syncd_peer_copy_fields(stored, given, mask), 0);
	expect_peer(stored,
		    "key=0 aips=198.18.0.2/32 psk=no ep=192.0.2.1:1 name=alice owner=bob meta "
		    "tags=a,b,c",
		    "set1");
	syncd_peer_free(given);
	given = syncd_peer_new();
	cr_assert_eq(syncd_peer_words(given, 6, set2, &mask, err, sizeof(err)), 0);
	cr_assert_eq(syncd_peer_copy_fields(stored, given, mask), 0);
	expect_peer(stored, "key=0 aips=198.18.0.3/32 psk=no ep=192.0.2.1:1 owner=bob meta tags=z",
		    "set2");
	syncd_peer_free(given);
	syncd_peer_free(stored);
}

Test(peerfile, validate_rejects_non_canonical)
{
	Gwcluster__PeerConfig *pc = syncd_peer_new();
	char *unsorted[] = {"198.18.0.2/32", "198.18.0.1/32"};
	char *hostbits[] = {"198.18.0.1/24"};
	char **saved;
	const char *why = NULL;

	cr_assert_eq(syncd_peer_set_public_key(pc, KEY_A, &why), 0);
	cr_expect_eq(syncd_peer_validate(pc, &why), 0);
	saved = pc->allowed_ips;
	pc->allowed_ips = unsorted;
	pc->n_allowed_ips = 2;
	cr_expect_eq(syncd_peer_validate(pc, &why), -EINVAL);
	cr_expect(strstr(why, "sorted"), "%s", why);
	pc->allowed_ips = hostbits;
	pc->n_allowed_ips = 1;
	cr_expect_eq(syncd_peer_validate(pc, &why), -EINVAL);
	pc->allowed_ips = saved;
	pc->n_allowed_ips = 0;
	pc->has_persistent_keepalive = 1;
	pc->persistent_keepalive = 70000;
	cr_expect_eq(syncd_peer_validate(pc, &why), -EINVAL);
	pc->persistent_keepalive = 25;
	pc->public_key.len = 31;
	cr_expect_eq(syncd_peer_validate(pc, &why), -EINVAL);
	pc->public_key.len = 32;
	syncd_peer_free(pc);
}

/* --- Apply files ---------------------------------------------------------- */

static const char good_file[] = "# the cluster's peers\n"
				"[Interface]\n"
				"PrivateKey = " KEY_B "\n"
				"ListenPort = 51820\n"
				"\n"
				"[Peer]\n"
				"# alice\n"
				"publickey = " KEY_A "\n"
				"PresharedKey = " KEY_B "\n"
				"AllowedIPs = 198.18.0.2/32, 2001:db8:f::2/128\n"
				"AllowedIPs = 198.19.2.0/24\n"
				"PersistentKeepalive = 25\n"
				"Endpoint = 192.0.2.7:51820\n"
				"Name = alice\n"
				"Owner = it@example.com\n"
				"Expires = 2026-01-01\n"
				"Tags = laptop, eu\n"
				"Tags = vip\n"
				"\n"
				"[Peer]\n"
				"PublicKey = " KEY_B "\n"
				"AllowedIPs = 198.18.0.3/32\n";

Test(peerfile, good_file)
{
	struct syncd_peerfile pf;
	struct syncd_peerfile_error err;
	const char *why = NULL;

	cr_assert_eq(syncd_peerfile_parse_buffer(good_file, strlen(good_file), &pf, &err), 0,
		     "%u: %s", err.line, err.msg);
	cr_assert_eq(pf.n, 2);
	cr_expect_eq(pf.interface_line, 2);
	cr_expect_eq(pf.lines[0], 6);
	cr_expect_eq(pf.lines[1], 20);
	expect_peer(pf.peers[0],
		    "key=32 aips=198.18.0.2/32,198.19.2.0/24,2001:db8:f::2/128 psk=yes ka=25 "
		    "ep=192.0.2.7:51820 name=alice owner=it@example.com exp=1767225600 meta "
		    "tags=eu,laptop,vip",
		    "alice");
	expect_peer(pf.peers[1], "key=32 aips=198.18.0.3/32 psk=no", "second");
	for (size_t i = 0; i < pf.n; i++)
		cr_expect_eq(syncd_peer_validate(pf.peers[i], &why), 0, "%s", why);
	syncd_peerfile_free(&pf);
	cr_expect_eq(pf.n, 0);
}

struct bad_file {
	const char *text;
	unsigned line;
	const char *msg; /* substring */
};

static const struct bad_file bad_files[] = {
    {"[Peer]\nPublicKey = nope\n", 2, "PublicKey: not a key"},
    {"[Peer]\nAllowedIPs = 198.18.0.2/32\n", 1, "[Peer] without a PublicKey"},
    {"[Peer]\nAllowedIPs = 198.18.0.2/32\n[Peer]\nPublicKey = " KEY_A "\n", 1,
     "without a PublicKey"},
    {"[Peer]\nPublicKey = " KEY_A "\nPublickey = " KEY_B "\n", 3, "given twice"},
    {"[Peer]\nPublicKey = " KEY_A "\nName = a\nName = b\n", 4, "Name: given twice"},
    {"[Peer]\nPublicKey = " KEY_A "\nColour = blue\n", 3, "Colour: unknown key"},
    {"[Peer]\nPublicKey = " KEY_A "\n\n[Peer]\nPublicKey = " KEY_A "\n", 4,
     "already defined at line 1"},
    {"[Peer]\nPublicKey = " KEY_A "\nAllowedIPs = 198.18.0.0/24\n[Peer]\nPublicKey = " KEY_B
     "\nAllowedIPs = 198.18.0.0/24\n",
     4, "allowed IP 198.18.0.0/24 is also in the peer at line 1"},
    {"[Peers]\n", 1, "unknown section [Peers]"},
    {"PublicKey = " KEY_A "\n", 1, "outside a [Peer] section"},
    {"[Peer]\nPublicKey = " KEY_A "\nExpires = soon\n", 3, "Expires: not a date"},
    {"[Peer]\nPublicKey = " KEY_A "\nEndpoint = vpn.example:51820\n", 3,
     "Endpoint: not a numeric endpoint"},
    {"[Peer]\nPublicKey = " KEY_A "\nAllowedIPs = 198.18.0.1/24\n", 3, "host bits"},
    {"[Peer]\nPublicKey = " KEY_A "\nPersistentKeepalive = 99999\n", 3, "PersistentKeepalive"},
    {"[Peer]\nPublicKey\n", 2, "expected \"Key = Value\""},
};

Test(peerfile, bad_files_name_the_line)
{
	for (size_t i = 0; i < sizeof(bad_files) / sizeof(bad_files[0]); i++) {
		const struct bad_file *b = &bad_files[i];
		struct syncd_peerfile pf;
		struct syncd_peerfile_error err;
		int rc = syncd_peerfile_parse_buffer(b->text, strlen(b->text), &pf, &err);

		cr_expect_neq(rc, 0, "case %zu accepted", i);
		cr_expect_eq(err.line, b->line, "case %zu: line %u, want %u (%s)", i, err.line,
			     b->line, err.msg);
		cr_expect(strstr(err.msg, b->msg), "case %zu: '%s', want '%s'", i, err.msg, b->msg);
		cr_expect(pf.n == 0 && !pf.peers, "case %zu: nothing returned", i);
	}
}

Test(peerfile, file_errors)
{
	struct syncd_peerfile pf;
	struct syncd_peerfile_error err;
	char *path = write_tmp("[Peer]\nPublicKey = " KEY_A "\n");

	cr_expect_eq(syncd_peerfile_parse_file("/nonexistent/peers.conf", &pf, &err), -ENOENT);
	cr_expect_eq(err.line, 0);
	cr_expect_eq(syncd_peerfile_parse_file(path, &pf, &err), 0);
	cr_expect_eq(pf.n, 1);
	syncd_peerfile_free(&pf);
	cr_expect_eq(syncd_peerfile_parse_buffer("", 0, &pf, &err), 0);
	cr_expect_eq(pf.n, 0);
	unlink(path);
	free(path);
}
