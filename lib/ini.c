// SPDX-License-Identifier: MIT
/*
 * wg-quick-style config parser. Lines are copied into a bounded stack
 * buffer, cut and trimmed in place, handed to the callback and wiped: a
 * config line may carry a PrivateKey or PresharedKey.
 */
#include "gw/ini.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum {
	/* A full line as read from a file: the content plus "\r\n". */
	LINE_BUF = GW_INI_LINE_MAX + 2,
	IO_BUF = 8192,
};

__attribute__((format(printf, 3, 4))) static int fail(struct gw_ini *ini, int rc, const char *fmt,
						      ...)
{
	va_list ap;

	ini->err.line = ini->line;
	va_start(ap, fmt);
	vsnprintf(ini->err.msg, sizeof(ini->err.msg), fmt, ap);
	va_end(ap);
	return rc;
}

/* An error not tied to a line: "what: strerror". */
static int fail_file(struct gw_ini *ini, int rc, const char *what)
{
	char ebuf[64];

	ini->err.line = 0;
	snprintf(ini->err.msg, sizeof(ini->err.msg), "%s: %s", what,
		 strerror_r(-rc, ebuf, sizeof(ebuf)));
	return rc;
}

void gw_ini_init(struct gw_ini *ini, gw_ini_fn *fn, void *arg)
{
	memset(ini, 0, sizeof(*ini));
	ini->fn = fn;
	ini->arg = arg;
}

static bool is_blank(char c)
{
	return c == ' ' || c == '\t';
}

/* Trims blanks at both ends in place; s is NUL-terminated. */
static char *trim(char *s)
{
	size_t n;

	while (is_blank(*s))
		s++;
	n = strlen(s);
	while (n && is_blank(s[n - 1]))
		s[--n] = '\0';
	return s;
}

/* NULs anywhere, control characters (but tab) before any comment. */
static int check_bytes(struct gw_ini *ini, const char *line, size_t len)
{
	bool comment = false;

	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)line[i];

		if (c == '\0')
			return fail(ini, -EINVAL, "NUL byte in line");
		if (c == '\n')
			return fail(ini, -EINVAL, "newline inside a line");
		if (c == '#')
			comment = true;
		if (!comment && ((c < 0x20 && c != '\t') || c == 0x7f))
			return fail(ini, -EINVAL, "control character 0x%02x", c);
	}
	return 0;
}

static int call(struct gw_ini *ini, const char *key, const char *value)
{
	const char *why = NULL;
	char ebuf[64];
	int rc;

	rc = ini->fn(ini->arg, ini->have_section ? ini->section : NULL, key, value, &why);
	if (rc == 0)
		return 0;
	if (rc > 0) /* a broken callback; still stop */
		rc = -EINVAL;
	if (!why)
		why = strerror_r(-rc, ebuf, sizeof(ebuf));
	if (key)
		return fail(ini, rc, "%s: %s", key, why);
	return fail(ini, rc, "[%s]: %s", ini->section, why);
}

/* s starts with '[' and has no trailing blanks. */
static int parse_section(struct gw_ini *ini, char *s)
{
	char *end = strchr(s, ']');
	char *name;

	if (!end)
		return fail(ini, -EINVAL, "unterminated section header");
	if (end[1] != '\0')
		return fail(ini, -EINVAL, "junk after section header");
	*end = '\0';
	name = trim(s + 1);
	if (!*name)
		return fail(ini, -EINVAL, "empty section name");
	if (strchr(name, '['))
		return fail(ini, -EINVAL, "'[' in section name");
	if (strlen(name) >= sizeof(ini->section))
		return fail(ini, -EINVAL, "section name longer than %zu bytes",
			    sizeof(ini->section) - 1);
	strcpy(ini->section, name);
	ini->have_section = 1;
	return call(ini, NULL, NULL);
}

/* s is non-empty and has no blanks at either end. */
static int parse_pair(struct gw_ini *ini, char *s)
{
	char *eq = strchr(s, '=');

	if (!eq)
		return fail(ini, -EINVAL, "expected \"Key = Value\" or \"[Section]\"");
	if (eq == s)
		return fail(ini, -EINVAL, "missing key before '='");
	*eq = '\0';
	/* Only the first '=' separates: base64 values end in '='. */
	return call(ini, trim(s), trim(eq + 1));
}

int gw_ini_feed(struct gw_ini *ini, const char *line, size_t len)
{
	char buf[GW_INI_LINE_MAX + 1];
	char *s;
	int rc;

	ini->line++;
	if (len && line[len - 1] == '\n')
		len--;
	if (len && line[len - 1] == '\r')
		len--;
	if (len > GW_INI_LINE_MAX)
		return fail(ini, -EINVAL, "line longer than %d bytes", GW_INI_LINE_MAX);
	rc = check_bytes(ini, line, len);
	if (rc)
		return rc;
	memcpy(buf, line, len);
	buf[len] = '\0';
	s = strchr(buf, '#');
	if (s)
		*s = '\0';
	s = trim(buf);
	if (*s == '[')
		rc = parse_section(ini, s);
	else if (*s)
		rc = parse_pair(ini, s);
	explicit_bzero(buf, len);
	return rc;
}

int gw_ini_parse_buffer(struct gw_ini *ini, const char *buf, size_t len)
{
	while (len) {
		const char *nl = memchr(buf, '\n', len);
		size_t n = nl ? (size_t)(nl - buf) + 1 : len;
		int rc = gw_ini_feed(ini, buf, n);

		if (rc)
			return rc;
		buf += n;
		len -= n;
	}
	return 0;
}

/*
 * Reads lines into a fixed buffer rather than with getline(), so a file
 * with one enormous line costs LINE_BUF bytes, not the size of the line.
 */
static int read_lines(struct gw_ini *ini, FILE *f, char *buf)
{
	size_t n = 0;
	int c, rc;

	errno = 0;
	while ((c = getc_unlocked(f)) != EOF) {
		if (n == LINE_BUF) {
			ini->line++;
			return fail(ini, -EINVAL, "line longer than %d bytes", GW_INI_LINE_MAX);
		}
		buf[n++] = (char)c;
		if (c != '\n')
			continue;
		rc = gw_ini_feed(ini, buf, n);
		if (rc)
			return rc;
		n = 0;
	}
	if (ferror(f))
		return fail_file(ini, errno ? -errno : -EIO, "read");
	return n ? gw_ini_feed(ini, buf, n) : 0;
}

int gw_ini_parse_file(struct gw_ini *ini, const char *path)
{
	/* Our own stdio buffer, so it can be wiped: the file may hold keys. */
	struct {
		char line[LINE_BUF];
		char io[IO_BUF];
	} * b;
	FILE *f;
	int rc;

	b = malloc(sizeof(*b));
	if (!b)
		return fail_file(ini, -ENOMEM, "allocate");
	f = fopen(path, "re");
	if (!f) {
		rc = -errno;
		free(b);
		return fail_file(ini, rc, "open");
	}
	setvbuf(f, b->io, _IOFBF, sizeof(b->io));
	rc = read_lines(ini, f, b->line);
	fclose(f);
	explicit_bzero(b, sizeof(*b));
	free(b);
	return rc;
}
