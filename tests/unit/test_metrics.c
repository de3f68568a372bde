// SPDX-License-Identifier: MIT
#include <criterion/criterion.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "gw/metrics.h"

#define PROMTOOL "/usr/bin/promtool"

static const char *text(const struct gw_metrics *m)
{
	size_t len;
	const char *s = gw_metrics_data(m, &len);

	cr_assert_eq(strlen(s), len, "length %zu but strlen %zu", len, strlen(s));
	return s;
}

static void assert_text(const struct gw_metrics *m, const char *want)
{
	cr_assert_str_eq(text(m), want);
}

/* Runs `promtool check metrics` on s; its exit status (0: valid and lint-clean). */
static int promtool_check(const char *s)
{
	FILE *p;
	int st;

	cr_assert_eq(access(PROMTOOL, X_OK), 0,
		     PROMTOOL " is missing: install the Debian package 'prometheus' (CI has it)");
	p = popen(PROMTOOL " check metrics >/dev/null 2>&1", "w");
	cr_assert_not_null(p);
	cr_assert_eq(fwrite(s, 1, strlen(s), p), strlen(s));
	st = pclose(p);
	cr_assert(WIFEXITED(st), "promtool did not exit normally");
	return WEXITSTATUS(st);
}

Test(metrics, empty)
{
	struct gw_metrics m;
	size_t len = 99;

	gw_metrics_init(&m, 0);
	gw_metrics_begin(&m);
	cr_assert_eq(gw_metrics_end(&m), 0);
	cr_assert_str_eq(gw_metrics_data(&m, &len), "");
	cr_assert_eq(len, 0);
	gw_metrics_free(&m);
}

/* Writes the golden exposition below. */
static void write_golden(struct gw_metrics *m)
{
	static const struct gw_metric_label l1[] = {{"peer", "AAAA"}, {"dir", "rx"}};
	static const struct gw_metric_label l2[] = {{"peer", "BBBB"}, {"dir", "tx"}};

	gw_metrics_family(m, "gwd_bytes_total", GW_METRIC_COUNTER, "Bytes through peers.");
	gw_metrics_sample_u64(m, l1, 2, 0);
	gw_metrics_sample_u64(m, l2, 2, UINT64_MAX);
	gw_metrics_family(m, "gwd_temperature_celsius", GW_METRIC_GAUGE, NULL);
	gw_metrics_sample_i64(m, NULL, 0, INT64_MIN);
	gw_metrics_one_f64(m, "gwd_ratio", GW_METRIC_GAUGE, "A ratio.", 0.1);
	gw_metrics_one_u64(m, "gwd_x", GW_METRIC_UNTYPED, "", 7);
}

static const char golden[] = "# HELP gwd_bytes_total Bytes through peers.\n"
			     "# TYPE gwd_bytes_total counter\n"
			     "gwd_bytes_total{peer=\"AAAA\",dir=\"rx\"} 0\n"
			     "gwd_bytes_total{peer=\"BBBB\",dir=\"tx\"} 18446744073709551615\n"
			     "# TYPE gwd_temperature_celsius gauge\n"
			     "gwd_temperature_celsius -9223372036854775808\n"
			     "# HELP gwd_ratio A ratio.\n"
			     "# TYPE gwd_ratio gauge\n"
			     "gwd_ratio 0.10000000000000001\n"
			     "# HELP gwd_x \n"
			     "# TYPE gwd_x untyped\n"
			     "gwd_x 7\n";

Test(metrics, golden)
{
	struct gw_metrics m;

	gw_metrics_init(&m, 0);
	gw_metrics_begin(&m);
	write_golden(&m);
	cr_assert_eq(gw_metrics_end(&m), 0);
	assert_text(&m, golden);
	/* begin starts over on the same buffer */
	gw_metrics_begin(&m);
	assert_text(&m, "");
	write_golden(&m);
	cr_assert_eq(gw_metrics_end(&m), 0);
	assert_text(&m, golden);
	gw_metrics_free(&m);
}

Test(metrics, doubles)
{
	static const struct {
		double v;
		const char *want;
	} cases[] = {
	    {0.0, "0"},
	    {-0.0, "-0"},
	    {1.5, "1.5"},
	    {0.1, "0.10000000000000001"},
	    {1.0 / 3, "0.33333333333333331"},
	    {1e300, "1.0000000000000001e+300"},
	    {5e-324, "4.9406564584124654e-324"},
	    {9007199254740992.0, "9007199254740992"},
	    {1e21, "1e+21"},
	    {-123456789.0, "-123456789"},
	    {INFINITY, "+Inf"},
	    {-INFINITY, "-Inf"},
	    {NAN, "NaN"},
	};
	struct gw_metrics m;

	gw_metrics_init(&m, 0);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char want[128];

		gw_metrics_begin(&m);
		cr_assert_eq(gw_metrics_one_f64(&m, "v", GW_METRIC_GAUGE, NULL, cases[i].v), 0);
		snprintf(want, sizeof(want), "# TYPE v gauge\nv %s\n", cases[i].want);
		assert_text(&m, want);
	}
	gw_metrics_free(&m);
}

Test(metrics, integers)
{
	static const struct {
		int64_t v;
		const char *want;
	} cases[] = {{0, "0"},
		     {-1, "-1"},
		     {INT64_MAX, "9223372036854775807"},
		     {INT64_MIN, "-9223372036854775808"}};
	struct gw_metrics m;

	gw_metrics_init(&m, 0);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char want[128];

		gw_metrics_begin(&m);
		gw_metrics_family(&m, "v", GW_METRIC_GAUGE, NULL);
		cr_assert_eq(gw_metrics_sample_i64(&m, NULL, 0, cases[i].v), 0);
		snprintf(want, sizeof(want), "# TYPE v gauge\nv %s\n", cases[i].want);
		assert_text(&m, want);
	}
	gw_metrics_free(&m);
}

Test(metrics, escaping)
{
	static const struct {
		const char *in, *help, *label;
	} cases[] = {
	    {"plain", "plain", "plain"},
	    {"a\\b", "a\\\\b", "a\\\\b"},
	    {"two\nlines", "two\\nlines", "two\\nlines"},
	    {"say \"hi\"", "say \"hi\"", "say \\\"hi\\\""},
	    {"\\\n\"", "\\\\\\n\"", "\\\\\\n\\\""},
	    {"", "", ""},
	    {"tab\tcr\r", "tab\tcr\r", "tab\tcr\r"},
	    /* valid UTF-8 passes: e-acute, euro sign, U+1F600 */
	    {"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80",
	     "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"},
	    /* invalid: lone continuation, overlong, surrogate, > U+10FFFF, truncated */
	    {"a\x80z", "a\xef\xbf\xbdz", "a\xef\xbf\xbdz"},
	    {"\xc0\xaf", "\xef\xbf\xbd\xef\xbf\xbd", "\xef\xbf\xbd\xef\xbf\xbd"},
	    {"\xed\xa0\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd",
	     "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},
	    {"\xf4\x90\x80\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd",
	     "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},
	    {"\xe2\x82", "\xef\xbf\xbd\xef\xbf\xbd", "\xef\xbf\xbd\xef\xbf\xbd"},
	    {"\xff\"", "\xef\xbf\xbd\"", "\xef\xbf\xbd\\\""},
	};
	struct gw_metrics m;

	gw_metrics_init(&m, 0);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct gw_metric_label l = {"k", cases[i].in};
		char want[256];

		gw_metrics_begin(&m);
		cr_assert_eq(gw_metrics_family(&m, "m", GW_METRIC_GAUGE, cases[i].in), 0);
		cr_assert_eq(gw_metrics_sample_u64(&m, &l, 1, 1), 0);
		snprintf(want, sizeof(want), "# HELP m %s\n# TYPE m gauge\nm{k=\"%s\"} 1\n",
			 cases[i].help, cases[i].label);
		cr_assert_str_eq(text(&m), want, "case %zu", i);
	}
	gw_metrics_free(&m);
}

Test(metrics, name_validation)
{
	static const struct {
		const char *name;
		bool metric, label;
	} cases[] = {
	    {"a", true, true},
	    {"_", true, true},
	    {"gwd_rx_bytes_total", true, true},
	    {"A9_z", true, true},
	    {"job:rate5m", true, false},
	    {":x", true, false},
	    {"__name__", true, false},
	    {"_x", true, true},
	    {"", false, false},
	    {"9a", false, false},
	    {"a-b", false, false},
	    {"a b", false, false},
	    {"a.b", false, false},
	    {"caf\xc3\xa9", false, false},
	    {"a\n", false, false},
	    {"a{", false, false},
	};
	char longname[GW_METRIC_NAME_MAX + 2];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		cr_assert_eq(gw_metrics_name_valid(cases[i].name), cases[i].metric, "metric %zu",
			     i);
		cr_assert_eq(gw_metrics_label_name_valid(cases[i].name), cases[i].label,
			     "label %zu", i);
	}
	memset(longname, 'a', sizeof(longname) - 1);
	longname[GW_METRIC_NAME_MAX] = '\0';
	cr_assert(gw_metrics_name_valid(longname));
	longname[GW_METRIC_NAME_MAX] = 'a';
	longname[GW_METRIC_NAME_MAX + 1] = '\0';
	cr_assert_not(gw_metrics_name_valid(longname));
}

/* Invalid input is refused, emits nothing, and gw_metrics_end() reports it. */
Test(metrics, invalid_never_emitted)
{
	static const char good[] = "# TYPE ok gauge\nok 1\n";
	const struct gw_metric_label bad_name[] = {{"a-b", "v"}};
	const struct gw_metric_label reserved[] = {{"__x", "v"}};
	const struct gw_metric_label dup[] = {{"a", "1"}, {"b", "2"}, {"a", "3"}};
	const struct gw_metric_label null_value[] = {{"a", NULL}};
	struct gw_metrics m;

	gw_metrics_init(&m, 0);
	gw_metrics_begin(&m);
	cr_assert_eq(gw_metrics_sample_u64(&m, NULL, 0, 1), -EINVAL, "sample without a family");
	cr_assert_eq(gw_metrics_one_u64(&m, "ok", GW_METRIC_GAUGE, NULL, 1), 0);
	cr_assert_eq(gw_metrics_sample_u64(&m, bad_name, 1, 1), -EINVAL);
	cr_assert_eq(gw_metrics_sample_u64(&m, reserved, 1, 1), -EINVAL);
	cr_assert_eq(gw_metrics_sample_u64(&m, dup, 3, 1), -EINVAL);
	cr_assert_eq(gw_metrics_sample_u64(&m, null_value, 1, 1), -EINVAL);
	cr_assert_eq(gw_metrics_sample_u64(&m, NULL, 1, 1), -EINVAL);
	cr_assert_eq(gw_metrics_family(&m, "bad name", GW_METRIC_GAUGE, "h"), -EINVAL);
	/* the invalid family closed "ok": its samples cannot land under it */
	cr_assert_eq(gw_metrics_sample_f64(&m, NULL, 0, 2.0), -EINVAL);
	cr_assert_eq(gw_metrics_family(&m, "x", (enum gw_metric_type)7, "h"), -EINVAL);
	cr_assert_eq(gw_metrics_family(&m, NULL, GW_METRIC_GAUGE, "h"), -EINVAL);
	cr_assert_eq(gw_metrics_one_u64(&m, "0x", GW_METRIC_GAUGE, NULL, 1), -EINVAL);
	assert_text(&m, good);
	cr_assert_eq(gw_metrics_end(&m), -EINVAL);
	/* a new exposition starts without the error */
	gw_metrics_begin(&m);
	cr_assert_eq(gw_metrics_end(&m), 0);
	gw_metrics_free(&m);
}

/*
 * With every bound from 1 to the golden's length, the text is the longest
 * prefix of whole units (a family's header lines, or one sample) that fits,
 * and once the bound is hit every later call fails with -ENOBUFS.
 */
Test(metrics, bounded_output)
{
	size_t full = strlen(golden);

	for (size_t max = 1; max <= full + 1; max++) {
		struct gw_metrics m;
		const char *s;
		size_t len;
		int err;

		gw_metrics_init(&m, max);
		gw_metrics_begin(&m);
		write_golden(&m);
		err = gw_metrics_end(&m);
		s = gw_metrics_data(&m, &len);
		cr_assert_leq(len, max);
		cr_assert_eq(memcmp(s, golden, len), 0, "max %zu: not a prefix", max);
		cr_assert(len == 0 || s[len - 1] == '\n', "max %zu: partial line", max);
		if (max >= full) {
			cr_assert_eq(err, 0);
			cr_assert_eq(len, full);
			gw_metrics_free(&m);
			continue;
		}
		cr_assert_eq(err, -ENOBUFS, "max %zu", max);
		cr_assert_eq(gw_metrics_one_u64(&m, "y", GW_METRIC_GAUGE, NULL, 1), -ENOBUFS);
		/* the next unit did not fit: "# HELP" starts two lines, else one */
		{
			const char *next = golden + len;
			const char *end = strchr(next, '\n') + 1;

			if (!strncmp(next, "# HELP", 6))
				end = strchr(end, '\n') + 1;
			cr_assert_gt(len + (size_t)(end - next), max, "max %zu: unit would fit",
				     max);
		}
		gw_metrics_free(&m);
	}
}

Test(metrics, large_output_grows)
{
	struct gw_metrics m;
	char value[32];
	size_t len;

	gw_metrics_init(&m, 0);
	gw_metrics_begin(&m);
	gw_metrics_family(&m, "gwd_peer_rx_bytes_total", GW_METRIC_COUNTER, "Per peer.");
	for (unsigned i = 0; i < 20000; i++) {
		struct gw_metric_label l = {"peer", value};

		snprintf(value, sizeof(value), "peer%u", i);
		cr_assert_eq(gw_metrics_sample_u64(&m, &l, 1, i), 0);
	}
	cr_assert_eq(gw_metrics_end(&m), 0);
	gw_metrics_data(&m, &len);
	cr_assert_gt(len, 20000 * 30);
	cr_assert_eq(promtool_check(text(&m)), 0);
	gw_metrics_free(&m);
}

/* Everything the writer can emit, in one lint-clean exposition. */
Test(metrics, promtool_accepts)
{
	static const struct gw_metric_label weird[] = {
	    {"name", "back\\slash \"quoted\"\nnewline \xc3\xa9 \xff \xed\xa0\x80"}, {"empty", ""}};
	static const struct gw_metric_label peers[][2] = {{{"peer", "AAAA"}, {"dir", "rx"}},
							  {{"peer", "BBBB"}, {"dir", "tx"}}};
	struct gw_metrics m;

	gw_metrics_init(&m, 0);
	gw_metrics_begin(&m);
	gw_metrics_family(&m, "gwd_bytes_total", GW_METRIC_COUNTER, "Bytes through peers.");
	gw_metrics_sample_u64(&m, peers[0], 2, 0);
	gw_metrics_sample_u64(&m, peers[1], 2, UINT64_MAX);
	gw_metrics_family(&m, "gwd_offset", GW_METRIC_GAUGE, "Signed.");
	gw_metrics_sample_i64(&m, NULL, 0, INT64_MIN);
	gw_metrics_one_u64(&m, "gwd_untyped", GW_METRIC_UNTYPED, "Untyped.", 3);
	gw_metrics_family(&m, "gwd_escapes", GW_METRIC_GAUGE, "Help with \\ and\nnewline \xff.");
	gw_metrics_sample_u64(&m, weird, 2, 1);
	gw_metrics_family(&m, "gwd_specials", GW_METRIC_GAUGE, "Special values.");
	gw_metrics_sample_f64(&m, (struct gw_metric_label[]){{"v", "inf"}}, 1, INFINITY);
	gw_metrics_sample_f64(&m, (struct gw_metric_label[]){{"v", "-inf"}}, 1, -INFINITY);
	gw_metrics_sample_f64(&m, (struct gw_metric_label[]){{"v", "nan"}}, 1, NAN);
	gw_metrics_sample_f64(&m, (struct gw_metric_label[]){{"v", "tiny"}}, 1, 5e-324);
	gw_metrics_sample_f64(&m, (struct gw_metric_label[]){{"v", "big"}}, 1, -1e300);
	gw_metrics_sample_f64(&m, (struct gw_metric_label[]){{"v", "third"}}, 1, 1.0 / 3);
	gw_metrics_family(&m, "gwd_no_samples", GW_METRIC_GAUGE, "A family without samples.");
	cr_assert_eq(gw_metrics_end(&m), 0);
	cr_assert_eq(promtool_check(text(&m)), 0, "promtool refused:\n%s", text(&m));
	gw_metrics_free(&m);
}

/* The check above can fail: promtool rejects what it should. */
Test(metrics, promtool_rejects)
{
	cr_assert_neq(promtool_check("# TYPE a counter\na{b=\"c} 1\n"), 0);
	cr_assert_neq(promtool_check("# TYPE a_total counter\na_total one\n"), 0);
	cr_assert_neq(promtool_check("# HELP a h\n# TYPE a gauge\na{v=\"\xff\"} 1\n"), 0);
}
