// SPDX-License-Identifier: MIT
/*
 * The SQLite store: persistence across reopen, transactions (committed,
 * rolled back, and cut off by SIGKILL in a child process), WAL mode, the
 * directory lock, schema versioning, and each table's operations.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "gw/log.h"
#include "store.h"

static char dir[64];
static char db_path[128];

static void setup(void)
{
	gw_log_init("test", GW_LOG_ERR, GW_LOG_STDERR);
	snprintf(dir, sizeof(dir), "/tmp/syncd-store-XXXXXX");
	cr_assert(mkdtemp(dir));
	snprintf(db_path, sizeof(db_path), "%s/state/%s", dir, SYNCD_STORE_FILE);
	strcat(dir, "/state"); /* open() must create it */
}

static void teardown(void)
{
	char cmd[160];

	dir[strlen(dir) - strlen("/state")] = '\0';
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	cr_assert_eq(system(cmd), 0);
}

TestSuite(store, .init = setup, .fini = teardown);

static struct syncd_row row_of(const uint8_t *key, size_t key_len, uint64_t hlc, bool deleted,
			       const char *blob)
{
	return (struct syncd_row){
	    .key = key,
	    .key_len = key_len,
	    .hlc = hlc,
	    .writer = 2,
	    .origin = 2,
	    .origin_seq = 7,
	    .deleted = deleted,
	    .blob = (const uint8_t *)blob,
	    .blob_len = strlen(blob),
	};
}

static const uint8_t k1[32] = {1}, k2[32] = {2}, k3[32] = {3};

static void put(struct syncd_store *s, const uint8_t *key, uint64_t hlc, bool deleted,
		const char *blob)
{
	struct syncd_row row = row_of(key, 32, hlc, deleted, blob);

	cr_assert_eq(syncd_store_put(s, &row), 0);
}

static void expect_blob(struct syncd_store *s, const uint8_t *key, const char *blob)
{
	struct syncd_row row;
	int rc = syncd_store_get(s, key, 32, &row);

	if (!blob) {
		cr_assert_eq(rc, -ENOENT);
		return;
	}
	cr_assert_eq(rc, 0);
	cr_assert_eq(row.blob_len, strlen(blob));
	cr_assert_eq(memcmp(row.blob, blob, row.blob_len), 0);
}

Test(store, creates_dir_and_database_in_wal_mode)
{
	struct syncd_store *s;
	struct stat st;
	sqlite3 *db;
	sqlite3_stmt *q;

	cr_assert_eq(syncd_store_open(&s, dir), 0);
	cr_assert(syncd_store_created(s));
	cr_assert_eq(syncd_store_incarnation(s), 1);
	cr_assert_eq(stat(dir, &st), 0);
	cr_assert_eq(st.st_mode & 0777, 0700);
	cr_assert_eq(stat(db_path, &st), 0);
	cr_assert_eq(st.st_mode & 0777, 0600);
	syncd_store_close(s);
	/* WAL is a property of the file: a fresh connection sees it. */
	cr_assert_eq(sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	cr_assert_eq(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &q, NULL), SQLITE_OK);
	cr_assert_eq(sqlite3_step(q), SQLITE_ROW);
	cr_assert_str_eq((const char *)sqlite3_column_text(q, 0), "wal");
	sqlite3_finalize(q);
	cr_assert_eq(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &q, NULL), SQLITE_OK);
	cr_assert_eq(sqlite3_step(q), SQLITE_ROW);
	cr_assert_eq(sqlite3_column_int(q, 0), SYNCD_STORE_SCHEMA);
	sqlite3_finalize(q);
	sqlite3_close(db);
}

Test(store, committed_data_survives_reopen)
{
	struct syncd_store *s;
	uint64_t v, applied[256];

	cr_assert_eq(syncd_store_open(&s, dir), 0);
	cr_assert_eq(syncd_store_begin(s), 0);
	put(s, k1, 10, false, "one");
	put(s, k2, 20, true, "two");
	cr_assert_eq(syncd_store_set_applied(s, 3, 42), 0);
	cr_assert_eq(syncd_store_log_append(s, 1, "u1", 2), 0);
	cr_assert_eq(syncd_store_meta_set(s, "own_seq", 1), 0);
	cr_assert_eq(syncd_store_commit(s), 0);
	syncd_store_close(s);

	cr_assert_eq(syncd_store_open(&s, dir), 0);
	cr_assert(!syncd_store_created(s));
	cr_assert_eq(syncd_store_incarnation(s), 2);
	expect_blob(s, k1, "one");
	expect_blob(s, k2, "two");
	cr_assert_eq(syncd_store_load_applied(s, applied), 0);
	cr_assert_eq(applied[3], 42);
	cr_assert_eq(applied[4], 0);
	cr_assert_eq(syncd_store_meta_get(s, "own_seq", &v), 0);
	cr_assert_eq(v, 1);
	cr_assert_eq(syncd_store_max_hlc(s, &v), 0);
	cr_assert_eq(v, 20);
	syncd_store_close(s);
}

Test(store, rollback_and_close_discard_a_transaction)
{
	struct syncd_store *s;

	cr_assert_eq(syncd_store_open(&s, dir), 0);
	put(s, k1, 1, false, "kept"); /* outside a transaction: committed at once */
	cr_assert_eq(syncd_store_begin(s), 0);
	cr_assert_eq(syncd_store_begin(s), -EALREADY);
	put(s, k2, 2, false, "gone");
	put(s, k1, 3, false, "overwritten");
	cr_assert(syncd_store_in_transaction(s));
	syncd_store_rollback(s);
	cr_assert(!syncd_store_in_transaction(s));
	expect_blob(s, k1, "kept");
	expect_blob(s, k2, NULL);
	cr_assert_eq(syncd_store_commit(s), -EINVAL);
	cr_assert_eq(syncd_store_begin(s), 0);
	put(s, k3, 4, false, "open at close");
	syncd_store_close(s);
	cr_assert_eq(syncd_store_open(&s, dir), 0);
	expect_blob(s, k1, "kept");
	expect_blob(s, k3, NULL);
	syncd_store_close(s);
}

/* A child commits one transaction, starts another and is killed. */
Test(store, sigkill_keeps_exactly_the_committed_transactions)
{
	struct syncd_store *s;
	int status;
	pid_t pid = fork();

	cr_assert_geq(pid, 0);
	if (pid == 0) {
		if (syncd_store_open(&s, dir))
			_exit(1);
		for (unsigned i = 0; i < 50; i++) {
			uint8_t key[32] = {9, (uint8_t)i};
			struct syncd_row row = row_of(key, 32, i, false, "committed");

			if (syncd_store_begin(s) || syncd_store_put(s, &row) ||
			    syncd_store_log_append(s, i + 1, "x", 1) || syncd_store_commit(s))
				_exit(1);
		}
		if (syncd_store_begin(s))
			_exit(1);
		for (unsigned i = 0; i < 100; i++) {
			uint8_t key[32] = {8, (uint8_t)i};
			struct syncd_row row = row_of(key, 32, i, false, "uncommitted");

			if (syncd_store_put(s, &row))
				_exit(1);
		}
		raise(SIGKILL);
		_exit(1);
	}
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "child failed early");
	cr_assert_eq(syncd_store_open(&s, dir), 0);
	for (unsigned i = 0; i < 50; i++) {
		uint8_t key[32] = {9, (uint8_t)i};

		expect_blob(s, key, "committed");
	}
	for (unsigned i = 0; i < 100; i++) {
		uint8_t key[32] = {8, (uint8_t)i};

		expect_blob(s, key, NULL);
	}
	uint64_t oldest;
	cr_assert_eq(syncd_store_log_oldest(s, &oldest), 0);
	cr_assert_eq(oldest, 1);
	syncd_store_close(s);
}

Test(store, directory_lock_refuses_a_second_opener)
{
	struct syncd_store *a, *b;

	cr_assert_eq(syncd_store_open(&a, dir), 0);
	cr_assert_eq(syncd_store_open(&b, dir), -EBUSY);
	cr_assert_null(b);
	syncd_store_close(a);
	cr_assert_eq(syncd_store_open(&b, dir), 0);
	syncd_store_close(b);
}

Test(store, refuses_a_newer_schema)
{
	struct syncd_store *s;
	sqlite3 *db;

	cr_assert_eq(syncd_store_open(&s, dir), 0);
	syncd_store_close(s);
	cr_assert_eq(sqlite3_open(db_path, &db), SQLITE_OK);
	cr_assert_eq(sqlite3_exec(db, "PRAGMA user_version = 99", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	cr_assert_eq(syncd_store_open(&s, dir), -EPROTONOSUPPORT);
}

Test(store, refuses_a_file_that_is_no_database)
{
	struct syncd_store *s;
	FILE *f;

	cr_assert_eq(syncd_store_open(&s, dir), 0);
	syncd_store_close(s);
	unlink(db_path);
	f = fopen(db_path, "w");
	cr_assert(f);
	for (int i = 0; i < 200; i++)
		fputs("this is not an SQLite database\n", f);
	fclose(f);
	cr_assert_lt(syncd_store_open(&s, dir), 0);
}

Test(store, log_append_get_trim)
{
	struct syncd_store *s;
	const void *blob;
	size_t len;
	uint64_t oldest;

	cr_assert_eq(syncd_store_open(&s, dir), 0);
	cr_assert_eq(syncd_store_log_oldest(s, &oldest), -ENOENT);
	for (uint64_t seq = 1; seq <= 10; seq++) {
		char b[16];

		snprintf(b, sizeof(b), "update-%llu", (unsigned long long)seq);
		cr_assert_eq(syncd_store_log_append(s, seq, b, strlen(b)), 0);
	}
	cr_assert_neq(syncd_store_log_append(s, 3, "dup", 3), 0, "a seq is logged once");
	cr_assert_eq(syncd_store_log_trim(s, 6), 0);
	cr_assert_eq(syncd_store_log_oldest(s, &oldest), 0);
	cr_assert_eq(oldest, 6);
	cr_assert_eq(syncd_store_log_get(s, 5, &blob, &len), -ENOENT);
	cr_assert_eq(syncd_store_log_get(s, 7, &blob, &len), 0);
	cr_assert_eq(len, 8);
	cr_assert_eq(memcmp(blob, "update-7", 8), 0);
	syncd_store_close(s);
}

struct walk {
	char keys[64];
	size_t n;
	int stop_after;
};

static int walk_fn(void *arg, const struct syncd_row *row)
{
	struct walk *w = arg;

	w->keys[w->n++] = row->key[0] < 10 ? (char)('0' + row->key[0]) : (char)row->key[0];
	w->keys[w->n] = '\0';
	return w->stop_after && (int)w->n == w->stop_after ? 7 : 0;
}

Test(store, foreach_count_and_collect_tombstones)
{
	const uint8_t iface[] = "iface";
	struct syncd_row irow = row_of(iface, 5, 1, false, "if");
	struct syncd_store *s;
	struct walk w = {0};
	uint64_t live, dead, removed;

	cr_assert_eq(syncd_store_open(&s, dir), 0);
	put(s, k3, 30, true, "c");
	put(s, k1, 10, false, "a");
	put(s, k2, 20, true, "b");
	cr_assert_eq(syncd_store_put(s, &irow), 0);
	cr_assert_eq(syncd_store_foreach(s, false, walk_fn, &w), 0);
	cr_assert_str_eq(w.keys, "123i", "records in key order");
	memset(&w, 0, sizeof(w));
	cr_assert_eq(syncd_store_foreach(s, true, walk_fn, &w), 0);
	cr_assert_str_eq(w.keys, "1i");
	memset(&w, 0, sizeof(w));
	w.stop_after = 2;
	cr_assert_eq(syncd_store_foreach(s, false, walk_fn, &w), 7);
	cr_assert_eq(w.n, 2);
	cr_assert_eq(syncd_store_count(s, &live, &dead), 0);
	cr_assert_eq(live, 1, "the interface record is no peer");
	cr_assert_eq(dead, 2);
	cr_assert_eq(syncd_store_gc(s, 30, &removed), 0);
	cr_assert_eq(removed, 1, "only tombstones strictly below the frontier");
	expect_blob(s, k2, NULL);
	expect_blob(s, k3, "c");
	expect_blob(s, k1, "a");
	cr_assert_eq(syncd_store_gc(s, UINT64_MAX, &removed), 0);
	cr_assert_eq(removed, 1);
	cr_assert_eq(syncd_store_count(s, &live, &dead), 0);
	cr_assert_eq(dead, 0);
	syncd_store_close(s);
}

Test(store, meta_and_applied)
{
	struct syncd_store *s;
	uint64_t v, applied[256];

	cr_assert_eq(syncd_store_open(&s, dir), 0);
	cr_assert_eq(syncd_store_meta_get(s, "nothing", &v), -ENOENT);
	cr_assert_eq(syncd_store_meta_set(s, "x", UINT64_MAX - 1), 0);
	cr_assert_eq(syncd_store_meta_get(s, "x", &v), 0);
	cr_assert_eq(v, UINT64_MAX - 1, "full 64-bit values round-trip");
	cr_assert_eq(syncd_store_set_applied(s, 255, 5), 0);
	cr_assert_eq(syncd_store_set_applied(s, 255, 6), 0);
	cr_assert_eq(syncd_store_set_applied(s, 256, 1), -EINVAL);
	cr_assert_eq(syncd_store_load_applied(s, applied), 0);
	cr_assert_eq(applied[255], 6);
	syncd_store_close(s);
}
