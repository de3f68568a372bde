/* SPDX-License-Identifier: MIT */
/*
 * A writer for the Prometheus text exposition format, version 0.0.4.
 *
 * There is no registry: a daemon writes its metrics from its own state on
 * each scrape, through a gw_metrics_fn, so every figure is counted once, in
 * the place that owns it. Output goes to a growable buffer bounded by
 * max_len. A family is opened with its HELP and TYPE lines; the samples that
 * follow belong to it (in 0.0.4 a counter's samples carry the family name,
 * "_total" included):
 *
 *	gw_metrics_family(m, "gwd_rx_bytes_total", GW_METRIC_COUNTER, "Bytes received.");
 *	gw_metrics_sample_u64(m, (struct gw_metric_label[]){{"peer", pk}}, 1, rx);
 *
 * Names (metric: [a-zA-Z_:][a-zA-Z0-9_:]*, label: [a-zA-Z_][a-zA-Z0-9_]*
 * without a leading "__") are the caller's constants: an invalid one is a bug,
 * reported as -EINVAL and never emitted. Label values and HELP text may be
 * anything: they are escaped, and bytes that are not UTF-8 become U+FFFD.
 *
 * Errors: each call returns 0 or -errno and emits either a whole line or
 * nothing. The first error is also kept and returned by gw_metrics_end(), so
 * a writer callback may ignore individual results. After -ENOMEM or -ENOBUFS
 * (max_len reached) every later call fails at once with the same error.
 * Numbers are formatted independently of the C locale.
 */
#ifndef GW_METRICS_H
#define GW_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum {
	GW_METRIC_NAME_MAX = 128,	   /* longer metric names are rejected */
	GW_METRICS_DEFAULT_MAX = 64 << 20, /* max_len 0 in gw_metrics_init() */
};

enum gw_metric_type {
	GW_METRIC_COUNTER, /* name ends in "_total" by convention (docs/metrics.md) */
	GW_METRIC_GAUGE,
	GW_METRIC_UNTYPED,
};

struct gw_metric_label {
	const char *name;
	const char *value;
};

/* Fields are private to metrics.c; the struct is public so it can live on the stack. */
struct gw_metrics {
	char *buf;
	size_t len, cap, max;
	int err;   /* first error since gw_metrics_begin() */
	int fatal; /* -ENOMEM or -ENOBUFS: the text cannot grow any more */
	bool open;
	enum gw_metric_type type;
	char name[GW_METRIC_NAME_MAX + 1]; /* the open family */
};

/*
 * Writes the caller's metrics into m; 0 or -errno (a failed scrape is
 * answered with HTTP 500, never with partial data).
 */
typedef int gw_metrics_fn(void *arg, struct gw_metrics *m);

/* An empty writer; max_len bounds the buffer (0: GW_METRICS_DEFAULT_MAX). Never allocates. */
void gw_metrics_init(struct gw_metrics *m, size_t max_len);
/* Releases the buffer; m may be initialised again. */
void gw_metrics_free(struct gw_metrics *m);

/* Starts a new exposition: empties the text, keeps the allocation, clears the error. */
void gw_metrics_begin(struct gw_metrics *m);
/*
 * Writes "# HELP name help" (only when help is not NULL) and "# TYPE name
 * type", and makes name the family of the following samples. -EINVAL for an
 * invalid name or type; then no family is open until the next valid one.
 */
int gw_metrics_family(struct gw_metrics *m, const char *name, enum gw_metric_type type,
		      const char *help);
/*
 * One sample of the open family: "name{l1="v1",...} value". labels may be
 * NULL when nlabels is 0. -EINVAL without an open family, for an invalid or
 * repeated label name.
 */
int gw_metrics_sample_u64(struct gw_metrics *m, const struct gw_metric_label *labels,
			  size_t nlabels, uint64_t v);
int gw_metrics_sample_i64(struct gw_metrics *m, const struct gw_metric_label *labels,
			  size_t nlabels, int64_t v);
/* Doubles as "%.17g" (round-trip exact), or "+Inf", "-Inf", "NaN". */
int gw_metrics_sample_f64(struct gw_metrics *m, const struct gw_metric_label *labels,
			  size_t nlabels, double v);
/* A family with a single unlabelled sample. */
int gw_metrics_one_u64(struct gw_metrics *m, const char *name, enum gw_metric_type type,
		       const char *help, uint64_t v);
int gw_metrics_one_f64(struct gw_metrics *m, const char *name, enum gw_metric_type type,
		       const char *help, double v);

/*
 * The event loop's turns (gw/loop.h, gw_loop_get_stats) as PREFIX_loop_turns_total,
 * PREFIX_loop_busy_seconds_total and PREFIX_loop_longest_turn_seconds.
 */
struct gw_loop;
void gw_metrics_write_loop(struct gw_metrics *m, const char *prefix, const struct gw_loop *loop);

/* Closes the exposition: returns the first error since gw_metrics_begin(), or 0. */
int gw_metrics_end(struct gw_metrics *m);
/* The text so far, NUL-terminated (never NULL); its length in *len. */
const char *gw_metrics_data(const struct gw_metrics *m, size_t *len);

bool gw_metrics_name_valid(const char *name);
bool gw_metrics_label_name_valid(const char *name);

#endif
