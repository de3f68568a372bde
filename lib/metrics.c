// SPDX-License-Identifier: MIT
/*
 * Prometheus text format 0.0.4 writer. Every public call builds whole lines
 * at the end of the buffer and rolls the length back to where it started
 * when anything fails, so the text never holds a partial line.
 */
#include "gw/metrics.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw/log.h"
#include "gw/loop.h"

enum {
	BUF_MIN = 4096,
	NUM_MAX = 48, /* "%.17g" of a double is at most 24 bytes */
};

static const char *const type_names[] = {
    [GW_METRIC_COUNTER] = "counter",
    [GW_METRIC_GAUGE] = "gauge",
    [GW_METRIC_UNTYPED] = "untyped",
};

void gw_metrics_init(struct gw_metrics *m, size_t max_len)
{
	*m = (struct gw_metrics){.max = max_len ? max_len : GW_METRICS_DEFAULT_MAX};
}

void gw_metrics_free(struct gw_metrics *m)
{
	free(m->buf);
	m->buf = NULL;
	m->len = m->cap = 0;
}

void gw_metrics_begin(struct gw_metrics *m)
{
	m->len = 0;
	if (m->buf)
		m->buf[0] = '\0';
	m->err = m->fatal = 0;
	m->open = false;
}

static int fail(struct gw_metrics *m, int err)
{
	if (!m->err)
		m->err = err;
	if (err == -ENOMEM || err == -ENOBUFS)
		m->fatal = err;
	return err;
}

/* Room for need more bytes plus the terminating NUL, within max. */
static int reserve(struct gw_metrics *m, size_t need)
{
	size_t cap = m->cap ? m->cap : BUF_MIN;
	char *p;

	if (need > m->max - m->len)
		return -ENOBUFS;
	if (m->len + need < m->cap)
		return 0;
	while (cap <= m->len + need)
		cap = cap > SIZE_MAX / 2 ? SIZE_MAX : cap * 2;
	if (cap > m->max + 1)
		cap = m->max + 1;
	p = realloc(m->buf, cap);
	if (!p)
		return -ENOMEM;
	m->buf = p;
	m->cap = cap;
	return 0;
}

/* Appends; on failure records a fatal error, and does nothing once one is recorded. */
static void put(struct gw_metrics *m, const char *s, size_t n)
{
	int err;

	if (m->fatal)
		return;
	err = reserve(m, n);
	if (err) {
		fail(m, err);
		return;
	}
	memcpy(m->buf + m->len, s, n);
	m->len += n;
	m->buf[m->len] = '\0';
}

static void puts_(struct gw_metrics *m, const char *s)
{
	put(m, s, strlen(s));
}

/* Length of the valid UTF-8 sequence at s (NUL-terminated), 0 if invalid. */
static size_t utf8_len(const unsigned char *s)
{
	unsigned char lo = 0x80, hi = 0xbf;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		return (s[1] & 0xc0) == 0x80 ? 2 : 0;
	if (s[0] >= 0xe0 && s[0] <= 0xef) {
		if (s[0] == 0xe0)
			lo = 0xa0; /* overlong */
		if (s[0] == 0xed)
			hi = 0x9f; /* surrogates */
		if (s[1] < lo || s[1] > hi || (s[2] & 0xc0) != 0x80)
			return 0;
		return 3;
	}
	if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		if (s[0] == 0xf0)
			lo = 0x90; /* overlong */
		if (s[0] == 0xf4)
			hi = 0x8f; /* beyond U+10FFFF */
		if (s[1] < lo || s[1] > hi || (s[2] & 0xc0) != 0x80 || (s[3] & 0xc0) != 0x80)
			return 0;
		return 4;
	}
	return 0;
}

/*
 * Escapes backslash and newline (and the double quote inside label values);
 * replaces each byte that does not start a valid UTF-8 sequence by U+FFFD.
 */
static void put_escaped(struct gw_metrics *m, const char *text, bool quote)
{
	const unsigned char *s = (const unsigned char *)text;

	while (*s) {
		size_t n = 0, u;

		while (s[n] && s[n] != '\\' && s[n] != '\n' && !(quote && s[n] == '"') &&
		       (u = utf8_len(s + n)))
			n += u;
		put(m, (const char *)s, n);
		s += n;
		if (!*s)
			break;
		if (*s == '\\')
			put(m, "\\\\", 2);
		else if (*s == '\n')
			put(m, "\\n", 2);
		else if (*s == '"')
			put(m, "\\\"", 2);
		else
			put(m, "\xef\xbf\xbd", 3);
		s++;
	}
}

/*
 * [a-zA-Z0-9_] (and ':' when colon is set). A loop, not strspn(): strspn
 * builds its byte table on every call, and label names are checked for every
 * sample (half a million in a per-peer scrape at 100k peers).
 */
static bool name_char(char c, bool colon)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_' || (colon && c == ':');
}

static size_t name_span(const char *name, bool colon)
{
	size_t n = 0;

	while (name_char(name[n], colon))
		n++;
	return n;
}

bool gw_metrics_name_valid(const char *name)
{
	size_t n = name_span(name, true);

	if (!name[0] || name[n] || (name[0] >= '0' && name[0] <= '9'))
		return false;
	return n <= GW_METRIC_NAME_MAX;
}

bool gw_metrics_label_name_valid(const char *name)
{
	size_t n = name_span(name, false);

	if (!name[0] || name[n] || (name[0] >= '0' && name[0] <= '9'))
		return false;
	return !(name[0] == '_' && name[1] == '_'); /* reserved for Prometheus */
}

static bool labels_valid(const struct gw_metric_label *labels, size_t nlabels)
{
	if (nlabels && !labels)
		return false;
	for (size_t i = 0; i < nlabels; i++) {
		if (!labels[i].name || !labels[i].value ||
		    !gw_metrics_label_name_valid(labels[i].name))
			return false;
		for (size_t j = 0; j < i; j++)
			if (!strcmp(labels[i].name, labels[j].name))
				return false;
	}
	return true;
}

/* After writing from start: on a fatal error, removes what was written. */
static int line_done(struct gw_metrics *m, size_t start)
{
	if (!m->fatal)
		return 0;
	m->len = start;
	if (m->buf)
		m->buf[start] = '\0';
	return m->fatal;
}

static void check_convention(const char *name, enum gw_metric_type type)
{
#ifndef NDEBUG
	static struct gw_ratelimit rl = GW_RATELIMIT_INIT(60 * 1000000000ULL, 5);
	size_t n = strlen(name);

	if (type == GW_METRIC_COUNTER && (n < 6 || strcmp(name + n - 6, "_total")))
		gw_log_rl(&rl, GW_LOG_WARN, "metrics: counter %s should end in _total", name);
#else
	(void)name;
	(void)type;
#endif
}

int gw_metrics_family(struct gw_metrics *m, const char *name, enum gw_metric_type type,
		      const char *help)
{
	size_t start = m->len;

	if (m->fatal)
		return m->fatal;
	m->open = false;
	if (!name || !gw_metrics_name_valid(name) || (unsigned)type > GW_METRIC_UNTYPED)
		return fail(m, -EINVAL);
	check_convention(name, type);
	if (help) {
		puts_(m, "# HELP ");
		puts_(m, name);
		put(m, " ", 1);
		put_escaped(m, help, false);
		put(m, "\n", 1);
	}
	puts_(m, "# TYPE ");
	puts_(m, name);
	put(m, " ", 1);
	puts_(m, type_names[type]);
	put(m, "\n", 1);
	if (m->fatal)
		return line_done(m, start);
	strcpy(m->name, name);
	m->type = type;
	m->open = true;
	return 0;
}

static void put_labels(struct gw_metrics *m, const struct gw_metric_label *labels, size_t nlabels)
{
	for (size_t i = 0; i < nlabels; i++) {
		put(m, i ? "," : "{", 1);
		puts_(m, labels[i].name);
		put(m, "=\"", 2);
		put_escaped(m, labels[i].value, true);
		put(m, "\"", 1);
	}
	if (nlabels)
		put(m, "}", 1);
}

/* value is the formatted number, already in the exposition's spelling. */
static int sample(struct gw_metrics *m, const struct gw_metric_label *labels, size_t nlabels,
		  const char *value)
{
	size_t start = m->len;

	if (m->fatal)
		return m->fatal;
	if (!m->open || !labels_valid(labels, nlabels))
		return fail(m, -EINVAL);
	puts_(m, m->name);
	put_labels(m, labels, nlabels);
	put(m, " ", 1);
	puts_(m, value);
	put(m, "\n", 1);
	return line_done(m, start);
}

/* Decimal digits of v into out (NUM_MAX bytes), without snprintf's cost per sample. */
static void format_u64(char out[static NUM_MAX], uint64_t v)
{
	char tmp[24];
	size_t n = 0, o = 0;

	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	while (n)
		out[o++] = tmp[--n];
	out[o] = '\0';
}

int gw_metrics_sample_u64(struct gw_metrics *m, const struct gw_metric_label *labels,
			  size_t nlabels, uint64_t v)
{
	char num[NUM_MAX];

	format_u64(num, v);
	return sample(m, labels, nlabels, num);
}

int gw_metrics_sample_i64(struct gw_metrics *m, const struct gw_metric_label *labels,
			  size_t nlabels, int64_t v)
{
	char num[NUM_MAX];

	snprintf(num, sizeof(num), "%" PRId64, v);
	return sample(m, labels, nlabels, num);
}

/*
 * "%.17g" round-trips every double. Whatever LC_NUMERIC calls its decimal
 * point (the only character %g emits beyond digits, signs and 'e'), it is
 * written as '.'.
 */
static void format_double(char out[static NUM_MAX], double v)
{
	char tmp[NUM_MAX];
	size_t o = 0;

	if (isnan(v)) {
		strcpy(out, "NaN");
		return;
	}
	if (isinf(v)) {
		strcpy(out, v > 0 ? "+Inf" : "-Inf");
		return;
	}
	snprintf(tmp, sizeof(tmp), "%.17g", v);
	for (size_t i = 0; tmp[i]; i++) {
		if (strchr("0123456789+-e", tmp[i]))
			out[o++] = tmp[i];
		else if (!o || out[o - 1] != '.')
			out[o++] = '.';
	}
	out[o] = '\0';
}

int gw_metrics_sample_f64(struct gw_metrics *m, const struct gw_metric_label *labels,
			  size_t nlabels, double v)
{
	char num[NUM_MAX];

	format_double(num, v);
	return sample(m, labels, nlabels, num);
}

int gw_metrics_one_u64(struct gw_metrics *m, const char *name, enum gw_metric_type type,
		       const char *help, uint64_t v)
{
	int err = gw_metrics_family(m, name, type, help);

	return err ? err : gw_metrics_sample_u64(m, NULL, 0, v);
}

int gw_metrics_one_f64(struct gw_metrics *m, const char *name, enum gw_metric_type type,
		       const char *help, double v)
{
	int err = gw_metrics_family(m, name, type, help);

	return err ? err : gw_metrics_sample_f64(m, NULL, 0, v);
}

int gw_metrics_end(struct gw_metrics *m)
{
	m->open = false;
	return m->err;
}

const char *gw_metrics_data(const struct gw_metrics *m, size_t *len)
{
	*len = m->len;
	return m->buf ? m->buf : "";
}

void gw_metrics_write_loop(struct gw_metrics *m, const char *prefix, const struct gw_loop *loop)
{
	struct gw_loop_stats st;
	char name[96];

	gw_loop_get_stats(loop, &st);
	snprintf(name, sizeof(name), "%s_loop_turns_total", prefix);
	gw_metrics_one_u64(m, name, GW_METRIC_COUNTER,
			   "Turns of the event loop (the work after one wait for events).",
			   st.turns);
	snprintf(name, sizeof(name), "%s_loop_busy_seconds_total", prefix);
	gw_metrics_one_f64(m, name, GW_METRIC_COUNTER,
			   "Time the event loop spent working (the sum of its turns).",
			   (double)st.busy_ns / 1e9);
	snprintf(name, sizeof(name), "%s_loop_longest_turn_seconds", prefix);
	gw_metrics_one_f64(m, name, GW_METRIC_GAUGE,
			   "The longest turn of the event loop since the daemon started: the "
			   "longest time it answered nothing.",
			   (double)st.longest_ns / 1e9);
}
