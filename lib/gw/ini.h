/* SPDX-License-Identifier: MIT */
/*
 * A streaming parser for wg-quick-style files: "[Section]" headers,
 * "Key = Value" lines, '#' comments, blank lines. Keys are matched
 * case-insensitively by callers (wg-quick does), values are trimmed.
 * Feed it line by line (gw_ini_feed) or a whole file (gw_ini_parse_file);
 * errors carry the line number so callers can print "FILE:LINE: message".
 * As in wg-quick, '#' starts a comment anywhere on a line. NUL bytes and
 * control characters other than tab (outside comments) are errors.
 */
#ifndef GW_INI_H
#define GW_INI_H

#include <stddef.h>

/* Longest line accepted, without its "\n" or "\r\n"; longer is an error. */
enum { GW_INI_LINE_MAX = 4096 };

/*
 * Called for every section header (key and value NULL) and every key/value
 * pair; section is NULL before the first header. The strings are valid only
 * during the call (the line is wiped afterwards: it may hold a private key).
 * Return 0 to go on, or -errno to stop; set *why to a static message for the
 * error report.
 */
typedef int gw_ini_fn(void *arg, const char *section, const char *key, const char *value,
		      const char **why);

struct gw_ini_error {
	unsigned line; /* 1-based; 0 when the error is not tied to a line */
	char msg[160];
};

struct gw_ini {
	gw_ini_fn *fn;
	void *arg;
	unsigned line;
	char section[64];
	int have_section;
	struct gw_ini_error err;
};

void gw_ini_init(struct gw_ini *ini, gw_ini_fn *fn, void *arg);
/* One line without or with its trailing newline. 0 or -errno (err filled in). */
int gw_ini_feed(struct gw_ini *ini, const char *line, size_t len);
/* The whole of a file or buffer. 0 or -errno (err filled in). */
int gw_ini_parse_file(struct gw_ini *ini, const char *path);
int gw_ini_parse_buffer(struct gw_ini *ini, const char *buf, size_t len);

#endif
