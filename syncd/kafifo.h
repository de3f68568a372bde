/* SPDX-License-Identifier: MIT */
/*
 * keepalived's notify FIFO, followed by syncd itself (cluster.conf
 * KeepalivedFifo): the VRRP state changes of one instance or group, in the
 * order keepalived makes them, without a process start on the failover path.
 *
 * keepalived (global_defs notify_fifo PATH) opens the FIFO read-write and
 * non-blocking and writes one line per change: `INSTANCE "VI_1" MASTER 150`,
 * `GROUP "G1" BACKUP 0`, and for its LVS checkers `VS ...` / `RS ...`. It
 * creates the FIFO when it is missing, and removes a FIFO it created when it
 * stops or reloads (2.2.7 loses it on a reload: the path is gone afterwards).
 * So the follower creates the FIFO itself when it is missing (syncd starts
 * before keepalived), and keepalived uses that one and leaves it alone. It
 * opens it read-only and non-blocking, reads whole lines in the event loop,
 * and when the last writer is gone (EOF: keepalived stopped, restarted or
 * reloaded) or the path names another file than the one it holds, opens the
 * path again. Lines keepalived wrote while nobody read wait in the pipe
 * (keepalived holds it open), so none is lost across a restart of either
 * side.
 *
 * A line that is not keepalived's format is logged (rate-limited), counted
 * and ignored; nothing the FIFO carries can stop the daemon.
 */
#ifndef SYNCD_KAFIFO_H
#define SYNCD_KAFIFO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gw/loop.h"

enum {
	SYNCD_KAFIFO_NAME_MAX = 127,	/* bytes of an instance or group name */
	SYNCD_KAFIFO_LINE_MAX = 511,	/* longer lines are garbage */
	SYNCD_KAFIFO_RETRY_MS = 100,	/* opening a missing FIFO again */
	SYNCD_KAFIFO_CHECK_MS = 1000,	/* does the path still name the FIFO held? a writer? */
	SYNCD_KAFIFO_SILENT_MS = 10000, /* without a writer: warn */
};

enum syncd_ka_type {
	SYNCD_KA_INSTANCE,
	SYNCD_KA_GROUP,
	SYNCD_KA_LVS, /* VS and RS lines of keepalived's checkers: never ours */
};

enum syncd_ka_state {
	SYNCD_KA_MASTER,
	SYNCD_KA_BACKUP,
	SYNCD_KA_FAULT,
	SYNCD_KA_STOP,
	SYNCD_KA_DELETED,
	/* MASTER_RX_LOWER_PRI, *_PRIORITY or a word of a later keepalived: no role change. */
	SYNCD_KA_OTHER,
};

struct syncd_ka_line {
	enum syncd_ka_type type;
	enum syncd_ka_state state; /* INSTANCE and GROUP lines */
	char name[SYNCD_KAFIFO_NAME_MAX + 1];
	char word[32]; /* the state as written (OTHER: for the log) */
	unsigned priority;
};

/*
 * One line, without its newline: `TYPE "NAME" STATE PRIORITY` with single
 * spaces (NAME unquoted is accepted as well), TYPE INSTANCE or GROUP,
 * PRIORITY 0..255; or a VS/RS line (type LVS, nothing else read). 0, or
 * -EINVAL with *why saying what is wrong.
 */
int syncd_ka_parse(const char *line, size_t len, struct syncd_ka_line *out, const char **why);
const char *syncd_ka_state_name(enum syncd_ka_state st);

struct syncd_kafifo_stats {
	uint64_t lines;	  /* well-formed lines read */
	uint64_t changes; /* of what is followed, passed to the callback */
	uint64_t garbage; /* malformed or over-long lines, partial lines at EOF */
	uint64_t opens;	  /* successful opens of the FIFO */
	uint64_t refused; /* the path was no FIFO, or a FIFO others may write */
	bool writer;	  /* at the last check (every SYNCD_KAFIFO_CHECK_MS) */
};

struct syncd_kafifo_config {
	const char *path;
	/* What to follow: the GROUP name, or the INSTANCE name (NULL: every instance). */
	bool group;
	const char *name;
	/* A change of what is followed (state != OTHER), in the FIFO's order. */
	void (*changed)(void *arg, const struct syncd_ka_line *line);
	void *arg;
};

struct syncd_kafifo;

/*
 * Starts following cfg->path in loop (strings are copied). Opens the FIFO
 * now, creating it (mode 0600) if it is missing; when that fails (no
 * directory), again every SYNCD_KAFIFO_RETRY_MS. 0, -EINVAL or -ENOMEM.
 */
int syncd_kafifo_open(struct syncd_kafifo **out, const struct syncd_kafifo_config *cfg,
		      struct gw_loop *loop);
/* Closes the FIFO and cancels the timer. NULL is ignored. */
void syncd_kafifo_close(struct syncd_kafifo *f);
/* The FIFO is open (a writer may or may not be there). */
bool syncd_kafifo_is_open(const struct syncd_kafifo *f);
const struct syncd_kafifo_stats *syncd_kafifo_stats(const struct syncd_kafifo *f);

#endif
