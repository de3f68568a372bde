// SPDX-License-Identifier: MIT
/*
 * keepalived's notify FIFO: the line parser (a table of lines keepalived
 * writes and of garbage), and the reader on a real FIFO in a real loop, with
 * a writer that holds it the way keepalived does (O_RDWR | O_NONBLOCK):
 * lines split across writes, garbage between good lines, over-long lines,
 * the writer closing (EOF) and coming back, keepalived making a new FIFO,
 * a FIFO that appears late, and FIFOs the reader must refuse.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gw/log.h"
#include "kafifo.h"

/* ------------------------------------------------------------------ parser */

struct good_case {
	const char *line;
	enum syncd_ka_type type;
	const char *name;
	enum syncd_ka_state state;
	unsigned priority;
};

static const struct good_case good[] = {
    {"INSTANCE \"VI_1\" MASTER 100", SYNCD_KA_INSTANCE, "VI_1", SYNCD_KA_MASTER, 100},
    {"INSTANCE \"VI_WG\" BACKUP 150", SYNCD_KA_INSTANCE, "VI_WG", SYNCD_KA_BACKUP, 150},
    {"INSTANCE \"x\" FAULT 0", SYNCD_KA_INSTANCE, "x", SYNCD_KA_FAULT, 0},
    {"INSTANCE \"x\" STOP 255", SYNCD_KA_INSTANCE, "x", SYNCD_KA_STOP, 255},
    {"INSTANCE \"x\" DELETED 1", SYNCD_KA_INSTANCE, "x", SYNCD_KA_DELETED, 1},
    {"INSTANCE \"x\" MASTER_RX_LOWER_PRI 90", SYNCD_KA_INSTANCE, "x", SYNCD_KA_OTHER, 90},
    {"INSTANCE \"x\" MASTER_PRIORITY 90", SYNCD_KA_INSTANCE, "x", SYNCD_KA_OTHER, 90},
    {"INSTANCE \"x\" BACKUP_PRIORITY 90", SYNCD_KA_INSTANCE, "x", SYNCD_KA_OTHER, 90},
    {"GROUP \"G1\" MASTER 0", SYNCD_KA_GROUP, "G1", SYNCD_KA_MASTER, 0},
    {"INSTANCE VI_1 MASTER 100", SYNCD_KA_INSTANCE, "VI_1", SYNCD_KA_MASTER, 100},
    {"INSTANCE \"two words\" BACKUP 7", SYNCD_KA_INSTANCE, "two words", SYNCD_KA_BACKUP, 7},
    {"VS [192.0.2.1]:tcp:80 UP", SYNCD_KA_LVS, "", SYNCD_KA_MASTER, 0},
    {"RS [192.0.2.2]:tcp:80 [192.0.2.1]:tcp:80 DOWN", SYNCD_KA_LVS, "", SYNCD_KA_MASTER, 0},
};

struct bad_case {
	const char *line;
	const char *why;
};

static const struct bad_case bad[] = {
    {"", "not an INSTANCE"},
    {"garbage", "not an INSTANCE"},
    {"instance \"VI_1\" MASTER 100", "not an INSTANCE"},
    {"INSTANCES \"VI_1\" MASTER 100", "not an INSTANCE"},
    {"INSTANCE", "no name"},
    {"INSTANCE ", "empty name"},
    {"INSTANCE \"\" MASTER 100", "empty name"},
    {"INSTANCE \"VI_1 MASTER 100", "unterminated"},
    {"INSTANCE VI\"1 MASTER 100", "a quote inside"},
    {"INSTANCE \"VI_1\"", "no state"},
    {"INSTANCE \"VI_1\"MASTER 100", "no state"},
    {"INSTANCE \"VI_1\" MASTER", "no priority"},
    {"INSTANCE \"VI_1\"  MASTER 100", "no state word"},
    {"INSTANCE \"VI_1\" master 100", "upper-case"},
    {"INSTANCE \"VI_1\" MASTER1 100", "upper-case"},
    {"INSTANCE \"VI_1\" MASTER ", "priority"},
    {"INSTANCE \"VI_1\" MASTER 256", "priority"},
    {"INSTANCE \"VI_1\" MASTER 1000", "priority"},
    {"INSTANCE \"VI_1\" MASTER -1", "priority"},
    {"INSTANCE \"VI_1\" MASTER 1x", "priority"},
    {"INSTANCE \"VI_1\" MASTER 100 extra", "more after"},
    {"INSTANCE \"VI_1\" MASTER 100 ", "more after"},
    {"INSTANCE \"VI_1\" MASTER 100\r", "control"},
    {"INSTANCE \"VI\t1\" MASTER 100", "control"},
    {"INSTANCE \"V\xc3\xa9\" MASTER 100", "control or non-ASCII"},
    {"INSTANCE \"VERYLONGSTATEWORDVERYLONGSTATEWORD\" MASTERMASTERMASTERMASTERMASTERMASTER 1",
     "no state word"},
};

Test(kafifo, parse_good_lines)
{
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		struct syncd_ka_line l;
		const char *why;
		int rc = syncd_ka_parse(good[i].line, strlen(good[i].line), &l, &why);

		cr_assert_eq(rc, 0, "case %zu (%s): %s", i, good[i].line, why ? why : "");
		cr_assert_eq(l.type, good[i].type, "case %zu", i);
		if (l.type == SYNCD_KA_LVS)
			continue;
		cr_assert_str_eq(l.name, good[i].name, "case %zu", i);
		cr_assert_eq(l.state, good[i].state, "case %zu", i);
		cr_assert_eq(l.priority, good[i].priority, "case %zu", i);
	}
}

Test(kafifo, parse_garbage)
{
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct syncd_ka_line l;
		const char *why = NULL;
		int rc = syncd_ka_parse(bad[i].line, strlen(bad[i].line), &l, &why);

		cr_assert_eq(rc, -EINVAL, "case %zu (%s) parsed", i, bad[i].line);
		cr_assert(why && strstr(why, bad[i].why), "case %zu: \"%s\" lacks \"%s\"", i,
			  why ? why : "(null)", bad[i].why);
	}
}

Test(kafifo, parse_name_and_line_limits)
{
	char line[SYNCD_KAFIFO_LINE_MAX + 64];
	char name[SYNCD_KAFIFO_NAME_MAX + 2];
	struct syncd_ka_line l;
	const char *why;
	int n;

	memset(name, 'n', sizeof(name));
	name[SYNCD_KAFIFO_NAME_MAX] = '\0';
	n = snprintf(line, sizeof(line), "INSTANCE \"%s\" MASTER 1", name);
	cr_assert_eq(syncd_ka_parse(line, (size_t)n, &l, &why), 0, "a name of 127 bytes");
	cr_assert_str_eq(l.name, name);
	name[SYNCD_KAFIFO_NAME_MAX] = 'n';
	name[SYNCD_KAFIFO_NAME_MAX + 1] = '\0';
	n = snprintf(line, sizeof(line), "INSTANCE \"%s\" MASTER 1", name);
	cr_assert_eq(syncd_ka_parse(line, (size_t)n, &l, &why), -EINVAL, "a name of 128 bytes");
	cr_assert(strstr(why, "name longer"));
	memset(line, 'A', sizeof(line));
	cr_assert_eq(syncd_ka_parse(line, SYNCD_KAFIFO_LINE_MAX + 1, &l, &why), -EINVAL);
	cr_assert(strstr(why, "too long"));
	/* The length is what counts, not a NUL: the bytes after it are not read. */
	cr_assert_eq(syncd_ka_parse("INSTANCE \"x\" FAULT 12", 20, &l, &why), 0);
	cr_assert_eq(l.priority, 1);
	cr_assert_str_eq(syncd_ka_state_name(SYNCD_KA_MASTER), "MASTER");
	cr_assert_str_eq(syncd_ka_state_name(SYNCD_KA_DELETED), "DELETED");
}

/* ------------------------------------------------------------------ reader */

enum { MAX_SEEN = 64 };

static char dir[64], path[192];
static struct gw_loop *loop;
static struct syncd_kafifo *kf;
static struct syncd_ka_line seen[MAX_SEEN];
static size_t nseen;

static void changed(void *arg, const struct syncd_ka_line *l)
{
	(void)arg;
	cr_assert_lt(nseen, MAX_SEEN);
	seen[nseen++] = *l;
}

static void setup(void)
{
	gw_log_init("test", GW_LOG_ERR, GW_LOG_STDERR);
	snprintf(dir, sizeof(dir), "/tmp/syncd-kafifo-XXXXXX");
	cr_assert(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/notify.fifo", dir);
	cr_assert_eq(gw_loop_new(&loop, NULL), 0);
	nseen = 0;
}

static void teardown(void)
{
	char cmd[128];

	syncd_kafifo_close(kf);
	kf = NULL;
	gw_loop_free(loop);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	cr_assert_eq(system(cmd), 0);
}

TestSuite(kafifo_reader, .init = setup, .fini = teardown);

static void follow(bool group, const char *name)
{
	struct syncd_kafifo_config c = {
	    .path = path, .group = group, .name = name, .changed = changed};

	cr_assert_eq(syncd_kafifo_open(&kf, &c, loop), 0);
}

/* Runs the loop for about ms milliseconds. */
static void pump(unsigned ms)
{
	uint64_t end = gw_clock_mono_ns(gw_loop_clock(loop)) + (uint64_t)ms * GW_NSEC_PER_MSEC;

	while (gw_clock_mono_ns(gw_loop_clock(loop)) < end)
		cr_assert_eq(gw_loop_run_once(loop, 10), 0);
}

/* Runs the loop until n changes arrived, at most 3 s. */
static void pump_until(size_t n)
{
	for (int i = 0; i < 300 && nseen < n; i++)
		cr_assert_eq(gw_loop_run_once(loop, 10), 0);
	cr_assert_eq(nseen, n, "%zu changes, not %zu", nseen, n);
}

/* keepalived: mkfifo (if missing) and open read-write, non-blocking. */
static int ka_open(void)
{
	int fd;

	if (mkfifo(path, 0644) && errno != EEXIST)
		cr_assert_fail("mkfifo: %s", strerror(errno));
	fd = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
	cr_assert_geq(fd, 0);
	return fd;
}

static void put(int fd, const char *s)
{
	cr_assert_eq(write(fd, s, strlen(s)), (ssize_t)strlen(s));
}

static void assert_seen(size_t i, const char *name, enum syncd_ka_state st)
{
	cr_assert_lt(i, nseen);
	cr_assert_str_eq(seen[i].name, name, "change %zu", i);
	cr_assert_eq(seen[i].state, st, "change %zu: %s", i, seen[i].word);
}

Test(kafifo_reader, lines_in_order_split_and_garbage)
{
	char longline[3 * 4096];
	int fd = ka_open();

	follow(false, "VI_1");
	cr_assert(syncd_kafifo_is_open(kf));
	put(fd, "INSTANCE \"VI_1\" BACKUP 100\nINSTANCE \"VI_1\" MAS");
	pump_until(1);
	assert_seen(0, "VI_1", SYNCD_KA_BACKUP);
	pump(30);
	cr_assert_eq(nseen, 1, "half a line is no change");
	put(fd, "TER 100\n");
	pump_until(2);
	assert_seen(1, "VI_1", SYNCD_KA_MASTER);
	/* Garbage between good lines: logged, counted, ignored; the rest goes on. */
	put(fd, "garbage\nINSTANCE \"VI_1\" master 100\n\nINSTANCE \"VI_1\" FAULT 100\n");
	pump_until(3);
	assert_seen(2, "VI_1", SYNCD_KA_FAULT);
	cr_assert_eq(syncd_kafifo_stats(kf)->garbage, 3);
	/* Not followed: another instance, a group, other events, LVS lines. */
	put(fd, "INSTANCE \"VI_2\" MASTER 100\nGROUP \"VI_1\" MASTER 0\n"
		"INSTANCE \"VI_1\" MASTER_RX_LOWER_PRI 100\nVS [192.0.2.1]:tcp:80 UP\n"
		"INSTANCE \"VI_1\" BACKUP 100\n");
	pump_until(4);
	assert_seen(3, "VI_1", SYNCD_KA_BACKUP);
	cr_assert_eq(syncd_kafifo_stats(kf)->lines, 3 + 5);
	cr_assert_eq(syncd_kafifo_stats(kf)->changes, 4);
	/* An over-long line, over several reads, is dropped whole. */
	memset(longline, 'A', sizeof(longline));
	cr_assert_eq(write(fd, longline, sizeof(longline)), (ssize_t)sizeof(longline));
	pump(30);
	put(fd, "\n");
	put(fd, "INSTANCE \"VI_1\" MASTER 100\nINSTANCE \"VI_1\" STOP 0\n");
	pump_until(6);
	assert_seen(4, "VI_1", SYNCD_KA_MASTER);
	assert_seen(5, "VI_1", SYNCD_KA_STOP);
	cr_assert_eq(syncd_kafifo_stats(kf)->garbage, 4);
	close(fd);
}

Test(kafifo_reader, every_instance_or_a_group)
{
	int fd = ka_open();

	follow(false, NULL);
	put(fd, "INSTANCE \"A\" MASTER 100\nGROUP \"G\" BACKUP 0\nINSTANCE \"B\" DELETED 0\n");
	pump_until(2);
	assert_seen(0, "A", SYNCD_KA_MASTER);
	assert_seen(1, "B", SYNCD_KA_DELETED);
	syncd_kafifo_close(kf);
	kf = NULL;
	nseen = 0;
	follow(true, "G");
	put(fd, "INSTANCE \"G\" MASTER 100\nGROUP \"H\" MASTER 0\nGROUP \"G\" FAULT 0\n");
	pump_until(1);
	assert_seen(0, "G", SYNCD_KA_FAULT);
	cr_assert_eq(seen[0].type, SYNCD_KA_GROUP);
	close(fd);
}

Test(kafifo_reader, creates_the_fifo)
{
	struct stat st;
	int fd;

	/* syncd starts before keepalived: the FIFO is made, keepalived uses it. */
	follow(false, "VI_1");
	cr_assert(syncd_kafifo_is_open(kf));
	cr_assert_eq(stat(path, &st), 0);
	cr_assert(S_ISFIFO(st.st_mode));
	cr_assert_eq(st.st_mode & 07777, 0600);
	fd = ka_open();
	put(fd, "INSTANCE \"VI_1\" FAULT 100\nINSTANCE \"VI_1\" BACKUP 100\n");
	pump_until(2);
	assert_seen(0, "VI_1", SYNCD_KA_FAULT);
	assert_seen(1, "VI_1", SYNCD_KA_BACKUP);
	cr_assert_eq(syncd_kafifo_stats(kf)->opens, 1);
	close(fd);
}

Test(kafifo_reader, waits_for_the_directory)
{
	char sub[160];
	int fd;

	snprintf(sub, sizeof(sub), "%s/keepalived", dir);
	snprintf(path, sizeof(path), "%s/notify.fifo", sub);
	follow(false, "VI_1");
	cr_assert_not(syncd_kafifo_is_open(kf));
	pump(150);
	cr_assert_not(syncd_kafifo_is_open(kf));
	cr_assert_eq(mkdir(sub, 0755), 0);
	/* keepalived makes the FIFO and writes before the reader opens it. */
	fd = ka_open();
	put(fd, "INSTANCE \"VI_1\" BACKUP 100\n");
	pump_until(1);
	cr_assert(syncd_kafifo_is_open(kf));
	assert_seen(0, "VI_1", SYNCD_KA_BACKUP);
	close(fd);
}

Test(kafifo_reader, writer_closes_and_comes_back)
{
	int fd = ka_open();

	follow(false, "VI_1");
	put(fd, "INSTANCE \"VI_1\" MASTER 100\nINSTANCE \"VI_1\" FAU");
	pump_until(1);
	/* keepalived dies (SIGKILL: the FIFO stays): EOF, the cut line is garbage. */
	close(fd);
	pump(50);
	cr_assert_eq(syncd_kafifo_stats(kf)->garbage, 1);
	cr_assert_eq(syncd_kafifo_stats(kf)->opens, 2, "opened again at the EOF");
	cr_assert(syncd_kafifo_is_open(kf));
	pump(300);
	cr_assert_eq(syncd_kafifo_stats(kf)->opens, 2, "no EOF without a new writer");
	fd = ka_open();
	put(fd, "INSTANCE \"VI_1\" BACKUP 100\n");
	pump_until(2);
	assert_seen(1, "VI_1", SYNCD_KA_BACKUP);
	/* keepalived stops and removes the FIFO it made: the reader makes another. */
	close(fd);
	cr_assert_eq(unlink(path), 0);
	pump(50);
	cr_assert(syncd_kafifo_is_open(kf));
	cr_assert_eq(syncd_kafifo_stats(kf)->opens, 3);
	fd = ka_open();
	put(fd, "INSTANCE \"VI_1\" FAULT 100\n");
	pump_until(3);
	assert_seen(2, "VI_1", SYNCD_KA_FAULT);
	cr_assert_eq(syncd_kafifo_stats(kf)->opens, 3);
	close(fd);
}

Test(kafifo_reader, tells_whether_anybody_writes)
{
	int fd;

	follow(false, "VI_1");
	pump(SYNCD_KAFIFO_CHECK_MS + 200);
	cr_assert_not(syncd_kafifo_stats(kf)->writer, "no keepalived yet");
	fd = ka_open();
	pump(SYNCD_KAFIFO_CHECK_MS + 200);
	cr_assert(syncd_kafifo_stats(kf)->writer);
	put(fd, "INSTANCE \"VI_1\" MASTER 100\n");
	pump_until(1);
	cr_assert_eq(syncd_kafifo_stats(kf)->opens, 1, "the check reads no EOF where a writer is");
	close(fd);
	pump(SYNCD_KAFIFO_CHECK_MS + 200);
	cr_assert_not(syncd_kafifo_stats(kf)->writer);
	cr_assert(syncd_kafifo_is_open(kf));
}

Test(kafifo_reader, new_fifo_while_the_old_one_is_held)
{
	int old = ka_open(), fd;

	follow(false, "VI_1");
	put(old, "INSTANCE \"VI_1\" BACKUP 100\n");
	pump_until(1);
	/* A reload replaced the FIFO, but the reader missed the EOF of the old one. */
	cr_assert_eq(unlink(path), 0);
	fd = ka_open();
	put(old, "INSTANCE \"VI_1\" FAULT 100\n");
	put(fd, "INSTANCE \"VI_1\" MASTER 100\n");
	pump_until(2);
	assert_seen(1, "VI_1", SYNCD_KA_FAULT);
	pump(SYNCD_KAFIFO_CHECK_MS + 300);
	cr_assert_eq(nseen, 3);
	assert_seen(2, "VI_1", SYNCD_KA_MASTER);
	cr_assert_eq(syncd_kafifo_stats(kf)->opens, 2);
	close(old);
	close(fd);
}

Test(kafifo_reader, refuses_what_others_may_write)
{
	int fd;

	cr_assert_eq(mkfifo(path, 0600), 0);
	cr_assert_eq(chmod(path, 0666), 0);
	fd = open(path, O_RDWR | O_NONBLOCK);
	cr_assert_geq(fd, 0);
	follow(false, "VI_1");
	cr_assert_not(syncd_kafifo_is_open(kf));
	put(fd, "INSTANCE \"VI_1\" MASTER 100\n");
	pump(150);
	cr_assert_eq(nseen, 0);
	cr_assert_geq(syncd_kafifo_stats(kf)->refused, 2, "tried again, refused again");
	cr_assert_eq(chmod(path, 0644), 0);
	pump_until(1);
	assert_seen(0, "VI_1", SYNCD_KA_MASTER);
	close(fd);
}

Test(kafifo_reader, refuses_a_regular_file)
{
	FILE *f = fopen(path, "w");

	cr_assert(f);
	fputs("INSTANCE \"VI_1\" MASTER 100\n", f);
	fclose(f);
	follow(false, "VI_1");
	pump(150);
	cr_assert_not(syncd_kafifo_is_open(kf));
	cr_assert_eq(nseen, 0);
	cr_assert_geq(syncd_kafifo_stats(kf)->refused, 1);
}

Test(kafifo_reader, bad_config)
{
	struct syncd_kafifo_config c = {.path = path, .changed = changed};

	c.path = "";
	cr_assert_eq(syncd_kafifo_open(&kf, &c, loop), -EINVAL);
	c.path = path;
	c.changed = NULL;
	cr_assert_eq(syncd_kafifo_open(&kf, &c, loop), -EINVAL);
	c.changed = changed;
	c.group = true;
	cr_assert_eq(syncd_kafifo_open(&kf, &c, loop), -EINVAL, "a group needs a name");
	cr_assert_null(kf);
}
