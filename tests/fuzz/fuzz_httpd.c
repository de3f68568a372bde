// SPDX-License-Identifier: MIT
/*
 * The /metrics request parser on arbitrary bytes (at most what the server
 * buffers): it must return one of its statuses, keep a decision once made
 * as more bytes arrive, and say 200 only for a request that really is
 * "GET /metrics[?...] HTTP/1.x" with complete headers. The same bytes also
 * go through the metrics writer as HELP text and label value: the output
 * must stay one line per sample, with quotes escaped, and valid UTF-8.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gw/httpd.h"
#include "gw/metrics.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum { PREFIX_CHECKS = 64 };

static bool known_status(int st)
{
	return st == 0 || st == 200 || st == 400 || st == 404 || st == 405 || st == 505;
}

static bool starts(const char *p, size_t n, const char *s)
{
	return n >= strlen(s) && !memcmp(p, s, strlen(s));
}

/* What a 200 must mean, checked without the parser's code path. */
static bool is_metrics_get(const char *p, size_t n)
{
	const char *eol = memmem(p, n, "\r\n", 2);
	size_t line;

	if (!eol || !memmem(eol, n - (size_t)(eol - p), "\r\n\r\n", 4))
		return false;
	line = (size_t)(eol - p);
	if (!starts(p, n, "GET /metrics ") && !starts(p, n, "GET /metrics?"))
		return false;
	if (line < 21 ||
	    (memcmp(p + line - 9, " HTTP/1.1", 9) && memcmp(p + line - 9, " HTTP/1.0", 9)))
		return false;
	for (size_t i = 4; i < line - 9; i++)
		if (p[i] <= ' ' || p[i] >= 0x7f)
			return false;
	return true;
}

static void check_parser(const char *p, size_t n)
{
	int full = gw_httpd_parse_request(p, n), first = 0;
	size_t step = n / PREFIX_CHECKS + 1;

	if (!known_status(full))
		abort();
	if ((full == 200) != is_metrics_get(p, n))
		abort();
	/* statuses other than 0 and 400 need the whole request line */
	if (full != 0 && full != 400 && !memmem(p, n, "\r\n", 2))
		abort();
	for (size_t k = 0; k <= n; k = k == n ? n + 1 : (k + step > n ? n : k + step)) {
		int st = gw_httpd_parse_request(p, k);

		if (first && st != first)
			abort();
		if (!first)
			first = st;
	}
	if (first != full)
		abort();
}

/* Sequence length announced by a lead byte, 0 for a byte that cannot lead. */
static size_t lead_len(unsigned char c)
{
	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		return 2;
	if (c >= 0xe0 && c <= 0xef)
		return 3;
	if (c >= 0xf0 && c <= 0xf4)
		return 4;
	return 0;
}

/* Decodes and checks the code point range: no overlongs, surrogates or beyond U+10FFFF. */
static bool valid_utf8(const unsigned char *s, size_t n)
{
	static const uint32_t min_cp[] = {0, 0, 0x80, 0x800, 0x10000};

	for (size_t i = 0; i < n;) {
		size_t len = lead_len(s[i]);
		uint32_t cp;

		if (!len || i + len > n)
			return false;
		cp = len == 1 ? s[i] : s[i] & (0xff >> (len + 1));
		for (size_t j = 1; j < len; j++) {
			if ((s[i + j] & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (s[i + j] & 0x3f);
		}
		if (cp < min_cp[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += len;
	}
	return true;
}

/* Exactly three lines; in the sample line, every '"' inside the value is escaped. */
static void check_escaping(const char *s)
{
	struct gw_metrics m;
	struct gw_metric_label l = {"v", s};
	const char *out, *val, *end;
	size_t len, lines = 0;

	gw_metrics_init(&m, 0);
	gw_metrics_begin(&m);
	if (gw_metrics_family(&m, "f", GW_METRIC_GAUGE, s) || gw_metrics_sample_u64(&m, &l, 1, 1) ||
	    gw_metrics_end(&m))
		abort();
	out = gw_metrics_data(&m, &len);
	for (size_t i = 0; i < len; i++)
		lines += out[i] == '\n';
	if (lines != 3 || out[len - 1] != '\n' || !valid_utf8((const unsigned char *)out, len))
		abort();
	val = strstr(out, "\nf{v=\"");
	if (!val)
		abort();
	val += 6;
	end = out + len - 5; /* `"} 1\n` */
	if (strcmp(end, "\"} 1\n"))
		abort();
	for (const char *q = val; q < end; q++) {
		if (*q == '\\') {
			if (q + 1 >= end || !strchr("\\\"n", q[1]))
				abort();
			q++;
		} else if (*q == '"') {
			abort();
		}
	}
	gw_metrics_free(&m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t n = size < GW_HTTPD_REQ_MAX ? size : GW_HTTPD_REQ_MAX;
	char *p = malloc(n ? n : 1), *s = malloc(n + 1);

	if (!p || !s)
		abort();
	memcpy(p, data, n); /* an exact-size copy: any over-read is caught by ASan */
	check_parser(p, n);
	memcpy(s, data, n);
	s[n] = '\0';
	check_escaping(s);
	free(p);
	free(s);
	return 0;
}
