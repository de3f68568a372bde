// SPDX-License-Identifier: MIT
/*
 * The config parser, table-driven: each input must produce exactly the
 * listed callback sequence and outcome, whether it comes as one buffer, as
 * lines fed one at a time without their newline, or from a file.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gw/ini.h"

struct rec {
	char log[8192];
	size_t n;
};

/*
 * Logs "S:name" for sections and "section|key=value" for pairs ('-' for no
 * section). Keys and sections named Stop* and Halt ask the parser to stop.
 */
static int record(void *arg, const char *section, const char *key, const char *value,
		  const char **why)
{
	struct rec *r = arg;
	int n;

	if (!key)
		n = snprintf(r->log + r->n, sizeof(r->log) - r->n, "S:%s;", section);
	else
		n = snprintf(r->log + r->n, sizeof(r->log) - r->n, "%s|%s=%s;",
			     section ? section : "-", key, value);
	cr_assert(n > 0 && (size_t)n < sizeof(r->log) - r->n, "log overflow");
	r->n += (size_t)n;
	if (!key && !strcmp(section, "Halt")) {
		*why = "halted";
		return -EBUSY;
	}
	if (key && !strcmp(key, "Stop")) {
		*why = "stop requested";
		return -EPERM;
	}
	if (key && !strcmp(key, "StopNoWhy"))
		return -EPERM;
	if (key && !strcmp(key, "StopPositive"))
		return 1;
	return 0;
}

#define T(s) s, sizeof(s) - 1

struct ini_case {
	const char *name;
	const char *in;
	size_t len;
	const char *events;
	int rc;
	unsigned line;
	const char *msg;
};

static const struct ini_case cases[] = {
    {"empty", T(""), "", 0, 0, ""},
    {"blank and comments only", T("\n  \n\t\n# c\n   # c2\n"), "", 0, 0, ""},
    {"wg config",
     T("[Interface]\n"
       "PrivateKey = yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=\n"
       "ListenPort = 51820\n"
       "\n"
       "[Peer]\n"
       "PublicKey = xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=\n"
       "AllowedIPs = 198.51.100.0/24, 2001:db8::/32\n"
       "Endpoint = 203.0.113.5:51820\n"),
     "S:Interface;Interface|PrivateKey=yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=;"
     "Interface|ListenPort=51820;S:Peer;Peer|PublicKey=xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=;"
     "Peer|AllowedIPs=198.51.100.0/24, 2001:db8::/32;Peer|Endpoint=203.0.113.5:51820;",
     0, 0, ""},
    {"comments anywhere",
     T("# top\n  # indented\n[Interface] # c\nKey = v # trailing\nKey2=v2#x\nK3 = # all\n"),
     "S:Interface;Interface|Key=v;Interface|Key2=v2;Interface|K3=;", 0, 0, ""},
    {"trimming", T("  [  Peer One ]  \n\tKey\t=\t value with  spaces \t\n"),
     "S:Peer One;Peer One|Key=value with  spaces;", 0, 0, ""},
    {"empty values", T("[S]\nKey =\nKey2 = \t\n"), "S:S;S|Key=;S|Key2=;", 0, 0, ""},
    {"equals inside value", T("[S]\nPublicKey = abc=\nX = a = b=c\n"),
     "S:S;S|PublicKey=abc=;S|X=a = b=c;", 0, 0, ""},
    {"pair before any section", T("Key = v\n[S]\nK = w\n"), "-|Key=v;S:S;S|K=w;", 0, 0, ""},
    {"crlf", T("[S]\r\nK = v\r\n\r\n# c\r\n"), "S:S;S|K=v;", 0, 0, ""},
    {"no final newline", T("[S]\nK = v"), "S:S;S|K=v;", 0, 0, ""},
    {"section 63 bytes", T("[123456789012345678901234567890123456789012345678901234567890123]\n"),
     "S:123456789012345678901234567890123456789012345678901234567890123;", 0, 0, ""},
    {"tab and utf-8", T("[S]\nName = caf\xc3\xa9\tbar\n"), "S:S;S|Name=caf\xc3\xa9\tbar;", 0, 0,
     ""},
    {"control char only in comment", T("[S]\n# \x01\x7f\n"), "S:S;", 0, 0, ""},

    {"unterminated section", T("[S]\n[Peer\nK = v\n"), "S:S;", -EINVAL, 2,
     "unterminated section header"},
    {"junk after section", T("[Peer] junk\n"), "", -EINVAL, 1, "junk after section header"},
    {"double bracket", T("[Peer]]\n"), "", -EINVAL, 1, "junk after section header"},
    {"empty section", T("\n[]\n"), "", -EINVAL, 2, "empty section name"},
    {"blank section", T("[ \t ]\n"), "", -EINVAL, 1, "empty section name"},
    {"bracket in section", T("[a[b]\n"), "", -EINVAL, 1, "'[' in section name"},
    {"section 64 bytes", T("[1234567890123456789012345678901234567890123456789012345678901234]\n"),
     "", -EINVAL, 1, "section name longer than 63 bytes"},
    {"no equals", T("[S]\n\njust words\n"), "S:S;", -EINVAL, 3,
     "expected \"Key = Value\" or \"[Section]\""},
    {"missing key", T("= v\n"), "", -EINVAL, 1, "missing key before '='"},
    {"missing key blanks", T("[S]\n \t = v\n"), "S:S;", -EINVAL, 2, "missing key before '='"},
    {"nul byte", T("[S]\nK = v\nX = a\0b\nY = z\n"), "S:S;S|K=v;", -EINVAL, 3, "NUL byte in line"},
    {"nul in comment", T("# a\0b\n"), "", -EINVAL, 1, "NUL byte in line"},
    {"control char", T("K = v\x01\n"), "", -EINVAL, 1, "control character 0x01"},
    {"bare cr", T("K = a\rb\n"), "", -EINVAL, 1, "control character 0x0d"},
    {"double cr", T("K = v\r\r\n"), "", -EINVAL, 1, "control character 0x0d"},
    {"del", T("K = \x7f\n"), "", -EINVAL, 1, "control character 0x7f"},

    {"callback stops with why", T("[S]\nA = 1\nStop = x\nB = 2\n"), "S:S;S|A=1;S|Stop=x;", -EPERM,
     3, "Stop: stop requested"},
    {"callback stops without why", T("StopNoWhy = x\nB = 2\n"), "-|StopNoWhy=x;", -EPERM, 1,
     "StopNoWhy: Operation not permitted"},
    {"callback returns positive", T("[S]\nStopPositive=\n"), "S:S;S|StopPositive=;", -EINVAL, 2,
     "StopPositive: Invalid argument"},
    {"callback stops on section", T("[S]\n[Halt]\nK = v\n"), "S:S;S:Halt;", -EBUSY, 2,
     "[Halt]: halted"},
};

static void check(const struct ini_case *c, const char *how, struct gw_ini *ini, struct rec *r,
		  int rc)
{
	cr_assert_str_eq(r->log, c->events, "%s (%s): events", c->name, how);
	cr_assert_eq(rc, c->rc, "%s (%s): rc %d", c->name, how, rc);
	if (rc) {
		cr_assert_eq(ini->err.line, c->line, "%s (%s): line %u", c->name, how,
			     ini->err.line);
		cr_assert_str_eq(ini->err.msg, c->msg, "%s (%s)", c->name, how);
	}
}

static int parse_by_lines(struct gw_ini *ini, const char *buf, size_t len)
{
	size_t pos = 0;

	while (pos < len) {
		const char *nl = memchr(buf + pos, '\n', len - pos);
		size_t n = nl ? (size_t)(nl - (buf + pos)) : len - pos;
		int rc = gw_ini_feed(ini, buf + pos, n);

		if (rc)
			return rc;
		pos += n + (nl != NULL);
	}
	return 0;
}

static int parse_via_file(struct gw_ini *ini, const char *buf, size_t len)
{
	char path[] = "/tmp/test_ini_XXXXXX";
	int fd = mkstemp(path), rc;

	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, buf, len), (ssize_t)len);
	close(fd);
	rc = gw_ini_parse_file(ini, path);
	unlink(path);
	return rc;
}

Test(ini, table)
{
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct ini_case *c = &cases[i];
		struct gw_ini ini;
		struct rec r = {0};

		gw_ini_init(&ini, record, &r);
		check(c, "buffer", &ini, &r, gw_ini_parse_buffer(&ini, c->in, c->len));

		memset(&r, 0, sizeof(r));
		gw_ini_init(&ini, record, &r);
		check(c, "lines", &ini, &r, parse_by_lines(&ini, c->in, c->len));

		memset(&r, 0, sizeof(r));
		gw_ini_init(&ini, record, &r);
		check(c, "file", &ini, &r, parse_via_file(&ini, c->in, c->len));
	}
}

/* "K = vvv...": a line of exactly len bytes, then end (CRLF/LF/none), then more. */
static size_t long_input(char *buf, size_t len, const char *end)
{
	size_t n;

	memcpy(buf, "[S]\nK = ", 8);
	memset(buf + 8, 'v', len - 4);
	n = 8 + len - 4;
	n += (size_t)sprintf(buf + n, "%sX = y\n", end);
	return n;
}

Test(ini, line_length_limit)
{
	static const struct {
		size_t len;
		const char *end;
		int rc;
	} t[] = {
	    {GW_INI_LINE_MAX, "\n", 0},		  {GW_INI_LINE_MAX, "\r\n", 0},
	    {GW_INI_LINE_MAX + 1, "\n", -EINVAL}, {GW_INI_LINE_MAX + 1, "\r\n", -EINVAL},
	    {GW_INI_LINE_MAX + 2, "\n", -EINVAL}, {100000, "\n", -EINVAL},
	};
	static char buf[100100];

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		size_t n = long_input(buf, t[i].len, t[i].end);

		for (int how = 0; how < 2; how++) {
			struct gw_ini ini;
			struct rec r = {0};
			int rc;

			gw_ini_init(&ini, record, &r);
			rc = how ? parse_via_file(&ini, buf, n) : gw_ini_parse_buffer(&ini, buf, n);
			cr_assert_eq(rc, t[i].rc, "len %zu how %d", t[i].len, how);
			if (rc) {
				cr_assert_eq(ini.err.line, 2);
				cr_assert_str_eq(ini.err.msg, "line longer than 4096 bytes");
				cr_assert_str_eq(r.log, "S:S;");
			} else {
				cr_assert_eq(r.n, 4 + 4 + t[i].len - 4 + 1 + 6, "len %zu how %d",
					     t[i].len, how);
				cr_assert_str_eq(r.log + r.n - 6, "S|X=y;");
			}
		}
	}
}

Test(ini, feed_keeps_state_across_calls)
{
	struct gw_ini ini;
	struct rec r = {0};

	gw_ini_init(&ini, record, &r);
	cr_assert_eq(gw_ini_feed(&ini, T("[Peer]")), 0);
	cr_assert_eq(gw_ini_feed(&ini, T("")), 0);
	cr_assert_eq(gw_ini_feed(&ini, T("A = 1\n")), 0);
	cr_assert_eq(gw_ini_feed(&ini, T("B = 2\r\n")), 0);
	cr_assert_eq(ini.line, 4);
	cr_assert_str_eq(r.log, "S:Peer;Peer|A=1;Peer|B=2;");
	/* A caller that hands two lines at once gets an error, not a merged line. */
	cr_assert_eq(gw_ini_feed(&ini, T("C = 3\nD = 4\n")), -EINVAL);
	cr_assert_eq(ini.err.line, 5);
	cr_assert_str_eq(ini.err.msg, "newline inside a line");
}

Test(ini, missing_file)
{
	struct gw_ini ini;
	struct rec r = {0};

	gw_ini_init(&ini, record, &r);
	cr_assert_eq(gw_ini_parse_file(&ini, "/nonexistent/gw-test.conf"), -ENOENT);
	cr_assert_eq(ini.err.line, 0);
	cr_assert_str_eq(ini.err.msg, "open: No such file or directory");
	cr_assert_str_eq(r.log, "");
}

Test(ini, directory_is_read_error)
{
	struct gw_ini ini;
	struct rec r = {0};

	gw_ini_init(&ini, record, &r);
	cr_assert_eq(gw_ini_parse_file(&ini, "/tmp"), -EISDIR);
	cr_assert_eq(ini.err.line, 0);
	cr_assert_str_eq(ini.err.msg, "read: Is a directory");
}
