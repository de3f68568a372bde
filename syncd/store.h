/* SPDX-License-Identifier: MIT */
/*
 * syncd's persistent state: one SQLite database (WAL, synchronous=FULL) in
 * the state directory. A change is durable once syncd_store_commit()
 * returned 0, whatever happens to the process afterwards. Only replicated
 * configuration and bookkeeping live here, never session keys.
 *
 *   records  key (32-byte peer public key, or "iface") -> hlc, writer,
 *            origin, origin_seq, deleted, the packed Record
 *   applied  origin -> greatest gap-free seq applied
 *   log      own seq -> packed Update (kept for gap repair, trimmed)
 *   meta     name -> integer ("own_seq", "incarnation")
 *
 * Every multi-row change is made between syncd_store_begin() and
 * syncd_store_commit() (or _rollback()); writes outside a transaction are
 * committed one by one. Single-threaded: one store per thread. A second
 * process opening the same directory gets -EBUSY.
 */
#ifndef SYNCD_STORE_H
#define SYNCD_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum {
	SYNCD_STORE_SCHEMA = 1, /* PRAGMA user_version */
	SYNCD_STORE_MAX_ORIGIN = 255,
};

#define SYNCD_STORE_FILE "syncd.db"
#define SYNCD_STORE_LOCK "syncd.lock"
#define SYNCD_IFACE_KEY	 "iface" /* records key of the interface settings */

struct syncd_store;

/* One row of records. Pointers are valid as documented where rows are returned. */
struct syncd_row {
	const uint8_t *key;
	size_t key_len;
	uint64_t hlc;
	uint32_t writer;
	uint32_t origin;     /* whose update last set it (the writer for snapshots) */
	uint64_t origin_seq; /* that update's seq; 0 when it came in a snapshot */
	bool deleted;	     /* a tombstone */
	const uint8_t *blob; /* packed Gwcluster__Record */
	size_t blob_len;
};

/*
 * Creates dir (mode 0700, parents too) if needed, locks it, opens or
 * creates the database and upgrades its schema. -EBUSY when another process
 * holds the directory, -EPROTONOSUPPORT for a schema newer than this code,
 * other -errno on I/O or SQLite errors (logged).
 */
int syncd_store_open(struct syncd_store **out, const char *dir);
/* Rolls back an open transaction. NULL is ignored. */
void syncd_store_close(struct syncd_store *s);
/* True when open() created the database (no state from a previous run). */
bool syncd_store_created(const struct syncd_store *s);
/* Boot counter, incremented and committed by every open(). */
uint64_t syncd_store_incarnation(const struct syncd_store *s);

int syncd_store_begin(struct syncd_store *s);
/* On failure the transaction is rolled back and nothing of it persists. */
int syncd_store_commit(struct syncd_store *s);
void syncd_store_rollback(struct syncd_store *s);
bool syncd_store_in_transaction(const struct syncd_store *s);

/* -ENOENT when absent. row's pointers stay valid until the next syncd_store_get(). */
int syncd_store_get(struct syncd_store *s, const uint8_t *key, size_t key_len,
		    struct syncd_row *row);
/* Inserts or replaces by key. */
int syncd_store_put(struct syncd_store *s, const struct syncd_row *row);

/*
 * Calls fn for every record (tombstones too unless live_only) in key order;
 * row is valid during the call only, and fn must not call the store. A
 * nonzero return of fn stops the walk and is returned.
 */
typedef int syncd_row_fn(void *arg, const struct syncd_row *row);
int syncd_store_foreach(struct syncd_store *s, bool live_only, syncd_row_fn *fn, void *arg);
/*
 * The same for at most limit live records with keys above after (compared
 * as bytes; after_len 0: from the first), in key order: a walk in slices,
 * each in its own call. *visited counts the rows passed to fn.
 */
int syncd_store_scan(struct syncd_store *s, const uint8_t *after, size_t after_len, size_t limit,
		     syncd_row_fn *fn, void *arg, size_t *visited);
/* Live peers (32-byte keys, not deleted) and tombstones. */
int syncd_store_count(struct syncd_store *s, uint64_t *live_peers, uint64_t *tombstones);
/* Deletes the tombstones with hlc < below; *removed may be NULL. */
int syncd_store_gc(struct syncd_store *s, uint64_t below, uint64_t *removed);
/* Greatest hlc of any record, 0 when there is none. */
int syncd_store_max_hlc(struct syncd_store *s, uint64_t *hlc);

/* applied[o] for o in 0..255; origins never stored read as 0. */
int syncd_store_load_applied(struct syncd_store *s, uint64_t applied[SYNCD_STORE_MAX_ORIGIN + 1]);
int syncd_store_set_applied(struct syncd_store *s, uint32_t origin, uint64_t seq);

int syncd_store_log_append(struct syncd_store *s, uint64_t seq, const void *blob, size_t len);
/* -ENOENT when absent; *blob stays valid until the next syncd_store_log_get(). */
int syncd_store_log_get(struct syncd_store *s, uint64_t seq, const void **blob, size_t *len);
/* Deletes entries with seq < below. */
int syncd_store_log_trim(struct syncd_store *s, uint64_t below);
/* Smallest seq in the log; -ENOENT when empty. */
int syncd_store_log_oldest(struct syncd_store *s, uint64_t *seq);

/*
 * A reader: every record (tombstones too) in key order, in as many calls as
 * the caller likes, and the applied vector, all as of one instant (the
 * open), whatever is committed meanwhile. It reads on a connection and a
 * read transaction of its own (WAL: writers go on; checkpoints wait for the
 * reader's end), so close it soon. The store must outlive it.
 */
struct syncd_store_reader;
int syncd_store_reader_open(struct syncd_store *s, struct syncd_store_reader **out);
/* applied[o] for o in 0..255 at the reader's instant. */
const uint64_t *syncd_store_reader_applied(const struct syncd_store_reader *rd);
/*
 * Calls fn for at most limit more records (row valid during the call only);
 * *done once all were passed. A nonzero return of fn stops and is returned.
 */
int syncd_store_reader_next(struct syncd_store_reader *rd, size_t limit, syncd_row_fn *fn,
			    void *arg, bool *done);
/* NULL is ignored. */
void syncd_store_reader_close(struct syncd_store_reader *rd);

/* -ENOENT when absent. */
int syncd_store_meta_get(struct syncd_store *s, const char *name, uint64_t *value);
int syncd_store_meta_set(struct syncd_store *s, const char *name, uint64_t value);

#endif
