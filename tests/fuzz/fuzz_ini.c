// SPDX-License-Identifier: MIT
/*
 * The config parser on arbitrary bytes: it must never crash, must hand the
 * callback only well-formed strings, must agree with itself when fed line
 * by line, and must report errors with a plausible line number.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gw/ini.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct state {
	unsigned calls;
	uint32_t digest; /* of the callback sequence, to compare two runs */
};

static bool blank(char c)
{
	return c == ' ' || c == '\t';
}

/* Trimmed, no line breaks, comments or control characters but tab. */
static void check_str(const char *s, bool may_be_empty)
{
	size_t n;

	if (!s)
		abort();
	n = strlen(s);
	if (!may_be_empty && n == 0)
		abort();
	if (n && (blank(s[0]) || blank(s[n - 1])))
		abort();
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '#' || c == 0x7f || (c < 0x20 && c != '\t'))
			abort();
	}
}

static void mix(struct state *st, const char *s)
{
	for (; s && *s; s++)
		st->digest = (st->digest ^ (unsigned char)*s) * 16777619u;
	st->digest = (st->digest ^ 0x100) * 16777619u;
}

static int callback(void *arg, const char *section, const char *key, const char *value,
		    const char **why)
{
	struct state *st = arg;

	st->calls++;
	if (!key) {
		if (value || !section)
			abort();
		check_str(section, false);
		if (strlen(section) >= 64 || strpbrk(section, "[]"))
			abort();
	} else {
		check_str(key, false);
		check_str(value, true);
		if (strchr(key, '='))
			abort();
		if (section)
			check_str(section, false);
	}
	mix(st, section);
	mix(st, key);
	mix(st, value);
	/* Exercise the stop path on inputs that ask for it. */
	if (key && !strcmp(key, "stop")) {
		*why = "stop";
		return -ECANCELED;
	}
	return 0;
}

static void check_error(const struct gw_ini *ini, int rc)
{
	if (rc > 0)
		abort();
	if (rc == 0)
		return;
	if (ini->err.line == 0 || ini->err.line != ini->line)
		abort();
	if (!memchr(ini->err.msg, '\0', sizeof(ini->err.msg)) || !ini->err.msg[0])
		abort();
}

static unsigned count_lines(const uint8_t *data, size_t size)
{
	unsigned n = 0;

	for (size_t i = 0; i < size; i++)
		n += data[i] == '\n';
	return n + (size && data[size - 1] != '\n');
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *buf = (const char *)data;
	struct state a = {0}, b = {0};
	struct gw_ini ini, lines;
	size_t pos = 0;
	int rc, rc2 = 0;

	gw_ini_init(&ini, callback, &a);
	rc = gw_ini_parse_buffer(&ini, buf, size);
	check_error(&ini, rc);
	if (rc == 0 && ini.line != count_lines(data, size))
		abort();

	/* The same input fed one line at a time, without the newlines. */
	gw_ini_init(&lines, callback, &b);
	while (pos < size && rc2 == 0) {
		const char *nl = memchr(buf + pos, '\n', size - pos);
		size_t n = nl ? (size_t)(nl - (buf + pos)) : size - pos;

		rc2 = gw_ini_feed(&lines, buf + pos, n);
		pos += n + 1;
	}
	if (rc2 != rc || a.calls != b.calls || a.digest != b.digest)
		abort();
	if (rc && (ini.err.line != lines.err.line || strcmp(ini.err.msg, lines.err.msg)))
		abort();
	return 0;
}
