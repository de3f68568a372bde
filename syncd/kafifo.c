// SPDX-License-Identifier: MIT
/*
 * keepalived's notify FIFO in syncd's event loop: the line parser, and a
 * reader that (re)opens the FIFO keepalived creates, splits what it reads
 * into lines and hands the changes of the followed instance or group on.
 */
#include "kafifo.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gw/log.h"

enum {
	READ_CHUNK = 4096,
	READS_PER_EVENT = 16, /* then back to the loop (level-triggered: it comes back) */
	STATE_WORD_MAX = 31,
};

static const struct {
	const char *word;
	enum syncd_ka_state state;
} state_words[] = {
    {"MASTER", SYNCD_KA_MASTER}, {"BACKUP", SYNCD_KA_BACKUP},	{"FAULT", SYNCD_KA_FAULT},
    {"STOP", SYNCD_KA_STOP},	 {"DELETED", SYNCD_KA_DELETED},
};

const char *syncd_ka_state_name(enum syncd_ka_state st)
{
	for (size_t i = 0; i < sizeof(state_words) / sizeof(state_words[0]); i++)
		if (state_words[i].state == st)
			return state_words[i].word;
	return "OTHER";
}

/* The next field of s[*off..len) up to a space or the end; its length. */
static size_t field(const char *s, size_t len, size_t *off, const char **start)
{
	size_t b = *off;

	while (*off < len && s[*off] != ' ')
		(*off)++;
	*start = s + b;
	return *off - b;
}

/* Steps over the single space after a field; false at the end of the line. */
static bool space(const char *s, size_t len, size_t *off)
{
	if (*off >= len || s[*off] != ' ')
		return false;
	(*off)++;
	return true;
}

static int parse_name(const char *s, size_t len, size_t *off, struct syncd_ka_line *out,
		      const char **why)
{
	const char *p;
	size_t n;

	if (*off < len && s[*off] == '"') {
		const char *q = memchr(s + *off + 1, '"', len - *off - 1);

		if (!q)
			return *why = "unterminated quoted name", -EINVAL;
		p = s + *off + 1;
		n = (size_t)(q - p);
		*off = (size_t)(q - s) + 1;
	} else {
		n = field(s, len, off, &p);
		if (memchr(p, '"', n))
			return *why = "a quote inside the name", -EINVAL;
	}
	if (!n)
		return *why = "empty name", -EINVAL;
	if (n > SYNCD_KAFIFO_NAME_MAX)
		return *why = "name longer than 127 bytes", -EINVAL;
	memcpy(out->name, p, n);
	out->name[n] = '\0';
	return 0;
}

static int parse_state(const char *s, size_t len, size_t *off, struct syncd_ka_line *out,
		       const char **why)
{
	const char *p;
	size_t n = field(s, len, off, &p);

	if (!n || n > STATE_WORD_MAX)
		return *why = "no state word", -EINVAL;
	for (size_t i = 0; i < n; i++)
		if (!((p[i] >= 'A' && p[i] <= 'Z') || p[i] == '_'))
			return *why = "the state is not an upper-case word", -EINVAL;
	memcpy(out->word, p, n);
	out->word[n] = '\0';
	out->state = SYNCD_KA_OTHER;
	for (size_t i = 0; i < sizeof(state_words) / sizeof(state_words[0]); i++)
		if (!strcmp(out->word, state_words[i].word))
			out->state = state_words[i].state;
	return 0;
}

static int parse_priority(const char *s, size_t len, size_t *off, struct syncd_ka_line *out,
			  const char **why)
{
	const char *p;
	size_t n = field(s, len, off, &p);
	unsigned v = 0;

	if (!n || n > 3)
		return *why = "the priority is not a number 0..255", -EINVAL;
	for (size_t i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return *why = "the priority is not a number 0..255", -EINVAL;
		v = v * 10 + (unsigned)(p[i] - '0');
	}
	if (v > 255)
		return *why = "the priority is not a number 0..255", -EINVAL;
	out->priority = v;
	return 0;
}

int syncd_ka_parse(const char *s, size_t len, struct syncd_ka_line *out, const char **why)
{
	const char *type;
	size_t off = 0, n;
	int rc;

	memset(out, 0, sizeof(*out));
	*why = NULL;
	if (len > SYNCD_KAFIFO_LINE_MAX)
		return *why = "line too long", -EINVAL;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e)
			return *why = "a control or non-ASCII byte", -EINVAL;
	n = field(s, len, &off, &type);
	if ((n == 2 && !memcmp(type, "VS", 2)) || (n == 2 && !memcmp(type, "RS", 2))) {
		out->type = SYNCD_KA_LVS;
		return 0;
	}
	if (n == 8 && !memcmp(type, "INSTANCE", 8))
		out->type = SYNCD_KA_INSTANCE;
	else if (n == 5 && !memcmp(type, "GROUP", 5))
		out->type = SYNCD_KA_GROUP;
	else
		return *why = "not an INSTANCE, GROUP, VS or RS line", -EINVAL;
	if (!space(s, len, &off))
		return *why = "no name", -EINVAL;
	rc = parse_name(s, len, &off, out, why);
	if (!rc && !space(s, len, &off))
		return *why = "no state", -EINVAL;
	rc = rc ? rc : parse_state(s, len, &off, out, why);
	if (!rc && !space(s, len, &off))
		return *why = "no priority", -EINVAL;
	rc = rc ? rc : parse_priority(s, len, &off, out, why);
	if (!rc && off != len)
		return *why = "more after the priority", -EINVAL;
	return rc;
}

/* ------------------------------------------------------------------------
 * The reader
 */

struct syncd_kafifo {
	struct gw_loop *loop;
	char *path;
	char *name; /* NULL: every instance */
	bool group;
	void (*changed)(void *arg, const struct syncd_ka_line *line);
	void *arg;
	int fd;
	dev_t dev;
	ino_t ino;
	uint64_t opened_ns;
	bool read_any;		/* since opened */
	bool waiting_said;	/* "cannot create" logged since the last open */
	uint64_t writerless_ns; /* since when no writer was found; 0: one was */
	bool writerless_said;
	struct gw_timer timer;
	char line[SYNCD_KAFIFO_LINE_MAX + 1];
	size_t len;
	bool skipping; /* the rest of an over-long line */
	struct gw_ratelimit rl;
	struct syncd_kafifo_stats stats;
};

static void arm(struct syncd_kafifo *f, unsigned ms)
{
	if (gw_timer_arm_in(f->loop, &f->timer, (uint64_t)ms * GW_NSEC_PER_MSEC))
		gw_err("syncd: %s: cannot arm a timer; not following keepalived", f->path);
}

static void garbage(struct syncd_kafifo *f, const char *why, const char *line, size_t len)
{
	f->stats.garbage++;
	if (line)
		gw_log_rl(&f->rl, GW_LOG_WARN,
			  "syncd: %s: ignoring a line keepalived cannot have "
			  "written (%s): \"%.*s\"",
			  f->path, why, (int)len, line);
	else
		gw_log_rl(&f->rl, GW_LOG_WARN, "syncd: %s: ignoring %s", f->path, why);
}

static bool followed(const struct syncd_kafifo *f, const struct syncd_ka_line *l)
{
	if (l->type == SYNCD_KA_GROUP)
		return f->group && !strcmp(l->name, f->name);
	if (l->type == SYNCD_KA_INSTANCE)
		return !f->group && (!f->name || !strcmp(l->name, f->name));
	return false;
}

static void handle_line(struct syncd_kafifo *f, const char *s, size_t len)
{
	struct syncd_ka_line l;
	const char *why;

	if (syncd_ka_parse(s, len, &l, &why)) {
		/* Printable lines are quoted in the log; others only described. */
		garbage(f, why, strcmp(why, "a control or non-ASCII byte") ? s : NULL, len);
		return;
	}
	f->stats.lines++;
	if (!followed(f, &l))
		return;
	if (l.state == SYNCD_KA_OTHER) {
		gw_dbg("syncd: keepalived: %s %s %s (no role change)",
		       l.type == SYNCD_KA_GROUP ? "GROUP" : "INSTANCE", l.name, l.word);
		return;
	}
	f->stats.changes++;
	f->changed(f->arg, &l);
}

/* Splits buf into lines; a line longer than SYNCD_KAFIFO_LINE_MAX is dropped whole. */
static void feed(struct syncd_kafifo *f, const char *buf, size_t n)
{
	while (n) {
		const char *nl = memchr(buf, '\n', n);
		size_t take = nl ? (size_t)(nl - buf) : n;

		if (!f->skipping && f->len + take > SYNCD_KAFIFO_LINE_MAX) {
			garbage(f, "a line longer than 511 bytes", NULL, 0);
			f->skipping = true;
		}
		if (!f->skipping) {
			memcpy(f->line + f->len, buf, take);
			f->len += take;
		}
		if (nl) {
			if (!f->skipping)
				handle_line(f, f->line, f->len);
			f->len = 0;
			f->skipping = false;
			take++;
		}
		buf += take;
		n -= take;
	}
}

static void close_fd(struct syncd_kafifo *f, bool eof)
{
	if (f->fd < 0)
		return;
	gw_loop_del_fd(f->loop, f->fd);
	close(f->fd);
	f->fd = -1;
	if (eof && (f->len || f->skipping))
		garbage(f, "a line cut short when the writer closed the FIFO", NULL, 0);
	f->len = 0;
	f->skipping = false;
}

static void on_io(struct gw_loop *loop, int fd, uint32_t events, void *arg);

/* A FIFO only root (or syncd's user) can write to: its lines move the VIP's sessions. */
static bool acceptable(struct syncd_kafifo *f, const struct stat *st)
{
	const char *why = NULL;

	if (!S_ISFIFO(st->st_mode))
		why = "is not a FIFO";
	else if (st->st_uid != 0 && st->st_uid != geteuid())
		why = "belongs to another user than root";
	else if (st->st_mode & S_IWOTH)
		why = "may be written by anybody (mode o+w)";
	if (!why)
		return true;
	f->stats.refused++;
	gw_log_rl(&f->rl, GW_LOG_ERR,
		  "syncd: %s %s; not reading it (keepalived's notify_fifo "
		  "creates it, or remove it and let keepalived do so)",
		  f->path, why);
	return false;
}

/*
 * The FIFO is missing: make it (root's, 0600). keepalived removes a FIFO it
 * made itself whenever it stops or reloads, and 2.2.7 loses it on a reload
 * (the path is gone afterwards and its lines go nowhere); one that was there
 * before it started it uses and leaves alone.
 */
static int create(struct syncd_kafifo *f)
{
	int rc;

	if (!mkfifo(f->path, 0600)) {
		gw_info("syncd: created %s for keepalived's notify_fifo", f->path);
		return 0;
	}
	rc = -errno;
	if (rc == -EEXIST) /* keepalived was quicker */
		return 0;
	if (!f->waiting_said)
		gw_warn("syncd: cannot create %s: %s; trying again every %u ms", f->path,
			strerror(-rc), (unsigned)SYNCD_KAFIFO_RETRY_MS);
	f->waiting_said = true;
	return rc;
}

static int try_open(struct syncd_kafifo *f)
{
	struct stat st;
	int fd, rc;

	if (stat(f->path, &st)) {
		rc = errno == ENOENT ? create(f) : -errno;
		if (!rc && stat(f->path, &st))
			rc = -errno;
		if (rc) {
			if (rc != -ENOENT)
				gw_log_rl(&f->rl, GW_LOG_WARN, "syncd: %s: %s", f->path,
					  strerror(-rc));
			return rc;
		}
	}
	if (!acceptable(f, &st))
		return -EPERM;
	/* Non-blocking: a FIFO without a writer opens at once for reading. */
	fd = open(f->path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		rc = -errno;
		gw_log_rl(&f->rl, GW_LOG_WARN, "syncd: cannot open %s: %s", f->path, strerror(-rc));
		return rc;
	}
	if (fstat(fd, &st) || !acceptable(f, &st)) {
		close(fd);
		return -EPERM;
	}
	rc = gw_loop_add_fd(f->loop, fd, EPOLLIN, on_io, f);
	if (rc) {
		close(fd);
		gw_log_rl(&f->rl, GW_LOG_ERR, "syncd: cannot watch %s: %s", f->path, strerror(-rc));
		return rc;
	}
	f->fd = fd;
	f->dev = st.st_dev;
	f->ino = st.st_ino;
	f->opened_ns = gw_loop_now(f->loop);
	f->read_any = false;
	f->waiting_said = false;
	f->stats.opens++;
	gw_info("syncd: following keepalived's %s %s on %s", f->group ? "group" : "instance",
		f->name ? f->name : "(every one)", f->path);
	return 0;
}

/* The writer is gone: keepalived stopped, restarted or reloads. */
static void reopen(struct syncd_kafifo *f, const char *why)
{
	bool quick = f->read_any || gw_loop_now(f->loop) - f->opened_ns >=
					SYNCD_KAFIFO_RETRY_MS * GW_NSEC_PER_MSEC;

	gw_info("syncd: %s: %s; opening it again", f->path, why);
	close_fd(f, true);
	/* An EOF right after an open that read nothing waits for the timer: no spinning. */
	if (quick && !try_open(f)) {
		arm(f, SYNCD_KAFIFO_CHECK_MS);
		return;
	}
	arm(f, SYNCD_KAFIFO_RETRY_MS);
}

static void on_io(struct gw_loop *loop, int fd, uint32_t events, void *arg)
{
	struct syncd_kafifo *f = arg;
	char buf[READ_CHUNK];

	(void)loop;
	(void)events;
	for (int i = 0; i < READS_PER_EVENT && f->fd == fd; i++) {
		ssize_t n = read(fd, buf, sizeof(buf));

		if (n > 0) {
			f->read_any = true;
			feed(f, buf, (size_t)n);
		} else if (n == 0) {
			reopen(f,
			       "the writer closed it (keepalived stopped, restarted or reloads)");
			return;
		} else if (errno == EAGAIN || errno == EWOULDBLOCK) {
			return;
		} else if (errno != EINTR) {
			reopen(f, strerror(errno));
			return;
		}
	}
}

/*
 * Is anybody writing? A read that finds no byte says: 0 no writer, EAGAIN a
 * writer. A FIFO without one for SYNCD_KAFIFO_SILENT_MS is worth a warning:
 * keepalived is not running, or it reloaded (2.2.7 then stops writing).
 */
static void check_writer(struct syncd_kafifo *f)
{
	uint64_t now = gw_loop_now(f->loop);
	char buf[READ_CHUNK];
	ssize_t n = read(f->fd, buf, sizeof(buf));

	if (n > 0) {
		f->read_any = true;
		feed(f, buf, (size_t)n);
	}
	f->stats.writer = n != 0;
	if (n != 0) {
		if (f->writerless_said)
			gw_info("syncd: keepalived writes to %s again", f->path);
		f->writerless_ns = 0;
		f->writerless_said = false;
		return;
	}
	if (!f->writerless_ns)
		f->writerless_ns = now;
	if (!f->writerless_said &&
	    now - f->writerless_ns >= SYNCD_KAFIFO_SILENT_MS * GW_NSEC_PER_MSEC) {
		gw_warn(
		    "syncd: nobody has had %s open for writing for %u s: is keepalived running "
		    "with notify_fifo %s? (keepalived 2.2.7 stops writing to it after a reload: "
		    "restart keepalived)",
		    f->path, SYNCD_KAFIFO_SILENT_MS / 1000, f->path);
		f->writerless_said = true;
	}
}

/*
 * Closed: open the FIFO if it is there now. Open: keepalived may have made a
 * new FIFO at the path (a reload removes the one it created and makes
 * another); an EOF normally says so, but not when the old one was opened
 * again between keepalived's close and its unlink.
 */
static void on_timer(struct gw_loop *loop, struct gw_timer *t, void *arg)
{
	struct syncd_kafifo *f = arg;
	struct stat st;

	(void)loop;
	(void)t;
	if (f->fd < 0) {
		arm(f, try_open(f) ? SYNCD_KAFIFO_RETRY_MS : SYNCD_KAFIFO_CHECK_MS);
		return;
	}
	check_writer(f);
	if (!stat(f->path, &st) && S_ISFIFO(st.st_mode) &&
	    (st.st_dev != f->dev || st.st_ino != f->ino)) {
		dev_t dev = f->dev;
		ino_t ino = f->ino;

		/* What the old one still holds comes first (an EOF there reopens it). */
		on_io(f->loop, f->fd, EPOLLIN, f);
		if (f->fd >= 0 && f->dev == dev && f->ino == ino)
			reopen(f, "keepalived made a new FIFO there");
		return;
	}
	arm(f, SYNCD_KAFIFO_CHECK_MS);
}

int syncd_kafifo_open(struct syncd_kafifo **out, const struct syncd_kafifo_config *cfg,
		      struct gw_loop *loop)
{
	struct syncd_kafifo *f;

	*out = NULL;
	if (!cfg->path || !cfg->path[0] || !cfg->changed || (cfg->group && !cfg->name) ||
	    (cfg->name && strlen(cfg->name) > SYNCD_KAFIFO_NAME_MAX))
		return -EINVAL;
	f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	f->path = strdup(cfg->path);
	f->name = cfg->name && cfg->name[0] ? strdup(cfg->name) : NULL;
	if (!f->path || (cfg->name && cfg->name[0] && !f->name)) {
		free(f->path);
		free(f->name);
		free(f);
		return -ENOMEM;
	}
	f->loop = loop;
	f->group = cfg->group;
	f->changed = cfg->changed;
	f->arg = cfg->arg;
	f->fd = -1;
	f->rl = (struct gw_ratelimit)GW_RATELIMIT_INIT(10 * GW_NSEC_PER_SEC, 5);
	gw_timer_init(&f->timer, on_timer, f);
	try_open(f);
	if (gw_timer_arm_in(loop, &f->timer,
			    (uint64_t)(f->fd < 0 ? SYNCD_KAFIFO_RETRY_MS : SYNCD_KAFIFO_CHECK_MS) *
				GW_NSEC_PER_MSEC)) {
		syncd_kafifo_close(f);
		return -ENOMEM;
	}
	*out = f;
	return 0;
}

void syncd_kafifo_close(struct syncd_kafifo *f)
{
	if (!f)
		return;
	gw_timer_cancel(f->loop, &f->timer);
	close_fd(f, false);
	free(f->path);
	free(f->name);
	free(f);
}

bool syncd_kafifo_is_open(const struct syncd_kafifo *f)
{
	return f->fd >= 0;
}

const struct syncd_kafifo_stats *syncd_kafifo_stats(const struct syncd_kafifo *f)
{
	return &f->stats;
}
