// SPDX-License-Identifier: MIT
/*
 * SQLite persistence. Every statement is prepared once at open; every
 * sqlite3 call is checked, logged with a rate limit and mapped to -errno.
 * Statements are reset right after use so no read transaction lingers (it
 * would hold back WAL checkpoints).
 */
#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gw/clock.h"
#include "gw/log.h"

enum stmt {
	ST_BEGIN,
	ST_COMMIT,
	ST_ROLLBACK,
	ST_GET,
	ST_PUT,
	ST_FOREACH,
	ST_SCAN,
	ST_COUNT,
	ST_GC,
	ST_MAX_HLC,
	ST_APPLIED_ALL,
	ST_APPLIED_SET,
	ST_LOG_APPEND,
	ST_LOG_GET,
	ST_LOG_TRIM,
	ST_LOG_OLDEST,
	ST_META_GET,
	ST_META_SET,
	ST_COUNT_ALL,
};

static const char *const stmt_sql[ST_COUNT_ALL] = {
    [ST_BEGIN] = "BEGIN IMMEDIATE",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
    [ST_GET] = "SELECT hlc, writer, origin, origin_seq, deleted, record FROM records"
	       " WHERE key = ?1",
    [ST_PUT] = "INSERT OR REPLACE INTO records"
	       " (key, hlc, writer, origin, origin_seq, deleted, record)"
	       " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    [ST_FOREACH] = "SELECT key, hlc, writer, origin, origin_seq, deleted, record FROM records"
		   " WHERE ?1 = 0 OR deleted = 0 ORDER BY key",
    [ST_SCAN] = "SELECT key, hlc, writer, origin, origin_seq, deleted, record FROM records"
		" WHERE key > ?1 AND deleted = 0 ORDER BY key LIMIT ?2",
    [ST_COUNT] = "SELECT coalesce(sum(deleted = 0 AND length(key) = 32), 0),"
		 " coalesce(sum(deleted), 0) FROM records",
    [ST_GC] = "DELETE FROM records WHERE deleted = 1 AND hlc >= 0 AND hlc < ?1",
    [ST_MAX_HLC] = "SELECT coalesce(max(hlc), 0) FROM records",
    [ST_APPLIED_ALL] = "SELECT origin, seq FROM applied",
    [ST_APPLIED_SET] = "INSERT OR REPLACE INTO applied (origin, seq) VALUES (?1, ?2)",
    [ST_LOG_APPEND] = "INSERT INTO log (seq, body) VALUES (?1, ?2)",
    [ST_LOG_GET] = "SELECT body FROM log WHERE seq = ?1",
    [ST_LOG_TRIM] = "DELETE FROM log WHERE seq < ?1",
    [ST_LOG_OLDEST] = "SELECT min(seq) FROM log",
    [ST_META_GET] = "SELECT value FROM meta WHERE name = ?1",
    [ST_META_SET] = "INSERT OR REPLACE INTO meta (name, value) VALUES (?1, ?2)",
};

static const char schema_v1[] =
    "CREATE TABLE records ("
    " key BLOB PRIMARY KEY NOT NULL,"
    " hlc INTEGER NOT NULL,"
    " writer INTEGER NOT NULL,"
    " origin INTEGER NOT NULL,"
    " origin_seq INTEGER NOT NULL,"
    " deleted INTEGER NOT NULL,"
    " record BLOB NOT NULL) WITHOUT ROWID;"
    "CREATE INDEX records_tombstones ON records (hlc) WHERE deleted = 1;"
    "CREATE TABLE applied (origin INTEGER PRIMARY KEY, seq INTEGER NOT NULL);"
    "CREATE TABLE log (seq INTEGER PRIMARY KEY, body BLOB NOT NULL);"
    "CREATE TABLE meta (name TEXT PRIMARY KEY NOT NULL, value INTEGER NOT NULL) WITHOUT ROWID;"
    "PRAGMA user_version = 1;";

struct syncd_store {
	sqlite3 *db;
	sqlite3_stmt *st[ST_COUNT_ALL];
	int lock_fd;
	char path[PATH_MAX]; /* of the database, for readers */
	bool created;
	bool in_tx;
	uint64_t incarnation;
	/* Copies handed out by get and log_get. */
	uint8_t *row_buf, *log_buf;
	size_t row_cap, log_cap;
};

static struct gw_ratelimit store_rl = GW_RATELIMIT_INIT(GW_NSEC_PER_SEC, 10);

static int map_sqlite(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return -EBUSY;
	case SQLITE_NOMEM:
		return -ENOMEM;
	case SQLITE_FULL:
		return -ENOSPC;
	case SQLITE_READONLY:
	case SQLITE_PERM:
	case SQLITE_AUTH:
		return -EACCES;
	case SQLITE_TOOBIG:
		return -EMSGSIZE;
	case SQLITE_CONSTRAINT:
	case SQLITE_MISMATCH:
	case SQLITE_RANGE:
		return -EINVAL;
	case SQLITE_CANTOPEN:
		return -ENOENT;
	default:
		return -EIO;
	}
}

/* Logs a failed sqlite3 call and returns its -errno. */
static int db_fail(struct syncd_store *s, int rc, const char *what)
{
	gw_log_rl(&store_rl, GW_LOG_ERR, "store: %s: %s (%d)", what,
		  s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc), rc);
	return map_sqlite(rc);
}

static sqlite3_stmt *stmt(struct syncd_store *s, enum stmt id)
{
	sqlite3_stmt *st = s->st[id];

	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return st;
}

static int bind_u64(struct syncd_store *s, sqlite3_stmt *st, int idx, uint64_t v)
{
	int rc = sqlite3_bind_int64(st, idx, (sqlite3_int64)v);

	return rc == SQLITE_OK ? 0 : db_fail(s, rc, "bind");
}

static int bind_blob(struct syncd_store *s, sqlite3_stmt *st, int idx, const void *p, size_t len)
{
	int rc;

	if (len > INT_MAX)
		return -EMSGSIZE;
	/* A zero-length blob must still be a blob, not NULL. */
	rc = sqlite3_bind_blob(st, idx, len ? p : "", (int)len, SQLITE_STATIC);
	return rc == SQLITE_OK ? 0 : db_fail(s, rc, "bind");
}

static int bind_text(struct syncd_store *s, sqlite3_stmt *st, int idx, const char *t)
{
	int rc = sqlite3_bind_text(st, idx, t, -1, SQLITE_STATIC);

	return rc == SQLITE_OK ? 0 : db_fail(s, rc, "bind");
}

/* Steps a statement that returns no row, then resets it. */
static int run(struct syncd_store *s, sqlite3_stmt *st, const char *what)
{
	int rc = sqlite3_step(st);

	sqlite3_reset(st);
	return rc == SQLITE_DONE ? 0 : db_fail(s, rc, what);
}

/* Steps once: 1 with a row, 0 when done (statement reset), or -errno. */
static int step_row(struct syncd_store *s, sqlite3_stmt *st, const char *what)
{
	int rc = sqlite3_step(st);

	if (rc == SQLITE_ROW)
		return 1;
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? 0 : db_fail(s, rc, what);
}

static int exec(struct syncd_store *s, const char *sql)
{
	char *msg = NULL;
	int rc = sqlite3_exec(s->db, sql, NULL, NULL, &msg);

	if (rc != SQLITE_OK) {
		gw_err("store: %s: %s", sql, msg ? msg : sqlite3_errstr(rc));
		sqlite3_free(msg);
		return map_sqlite(rc);
	}
	return 0;
}

/* Runs a one-value PRAGMA and copies its text answer. */
static int pragma_text(struct syncd_store *s, const char *sql, char *out, size_t outlen)
{
	sqlite3_stmt *st;
	int rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);

	if (rc != SQLITE_OK)
		return db_fail(s, rc, sql);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		const unsigned char *t = sqlite3_column_text(st, 0);

		snprintf(out, outlen, "%s", t ? (const char *)t : "");
		rc = SQLITE_DONE;
	}
	if (rc != SQLITE_DONE)
		rc = db_fail(s, rc, sql);
	else
		rc = 0;
	sqlite3_finalize(st);
	return rc;
}

static int mkdir_p(const char *dir)
{
	char path[PATH_MAX];
	size_t n = strlen(dir);

	if (n == 0 || n >= sizeof(path))
		return -ENAMETOOLONG;
	memcpy(path, dir, n + 1);
	for (char *p = path + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(path, 0755) && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(path, 0700) && errno != EEXIST)
		return -errno;
	return 0;
}

static int lock_dir(struct syncd_store *s, const char *dir)
{
	char path[PATH_MAX];

	if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, SYNCD_STORE_LOCK) >= sizeof(path))
		return -ENAMETOOLONG;
	s->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (s->lock_fd < 0)
		return -errno;
	if (flock(s->lock_fd, LOCK_EX | LOCK_NB))
		return errno == EWOULDBLOCK ? -EBUSY : -errno;
	return 0;
}

static int open_db(struct syncd_store *s, const char *dir)
{
	char path[PATH_MAX], mode[16];
	int rc;

	if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, SYNCD_STORE_FILE) >= sizeof(path))
		return -ENAMETOOLONG;
	memcpy(s->path, path, sizeof(path));
	rc = sqlite3_open_v2(
	    path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOFOLLOW, NULL);
	if (rc != SQLITE_OK)
		return db_fail(s, rc, path);
	if (chmod(path, 0600))
		return -errno;
	rc = sqlite3_extended_result_codes(s->db, 1);
	if (rc != SQLITE_OK)
		return db_fail(s, rc, "extended_result_codes");
	rc = pragma_text(s, "PRAGMA journal_mode = WAL", mode, sizeof(mode));
	if (rc)
		return rc;
	if (strcmp(mode, "wal")) {
		gw_err("store: %s: cannot switch to WAL (journal_mode is %s)", path, mode);
		return -EIO;
	}
	return exec(s, "PRAGMA synchronous = FULL; PRAGMA busy_timeout = 2000;"
		       " PRAGMA trusted_schema = OFF;");
}

static int upgrade_schema(struct syncd_store *s)
{
	char v[32];
	long version;
	int rc;

	rc = pragma_text(s, "PRAGMA user_version", v, sizeof(v));
	if (rc)
		return rc;
	version = strtol(v, NULL, 10);
	if (version > SYNCD_STORE_SCHEMA) {
		gw_err("store: schema version %ld is newer than this syncd's (%d)", version,
		       SYNCD_STORE_SCHEMA);
		return -EPROTONOSUPPORT;
	}
	if (version == SYNCD_STORE_SCHEMA)
		return 0;
	s->created = true;
	rc = exec(s, "BEGIN IMMEDIATE");
	if (rc)
		return rc;
	rc = exec(s, schema_v1);
	if (!rc)
		rc = exec(s, "COMMIT");
	if (rc)
		exec(s, "ROLLBACK");
	return rc;
}

static int prepare_all(struct syncd_store *s)
{
	for (int i = 0; i < ST_COUNT_ALL; i++) {
		int rc = sqlite3_prepare_v3(s->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT,
					    &s->st[i], NULL);

		if (rc != SQLITE_OK)
			return db_fail(s, rc, stmt_sql[i]);
	}
	return 0;
}

static int bump_incarnation(struct syncd_store *s)
{
	uint64_t inc = 0;
	int rc = syncd_store_meta_get(s, "incarnation", &inc);

	if (rc && rc != -ENOENT)
		return rc;
	s->incarnation = inc + 1;
	return syncd_store_meta_set(s, "incarnation", s->incarnation);
}

int syncd_store_open(struct syncd_store **out, const char *dir)
{
	struct syncd_store *s;
	int rc;

	*out = NULL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->lock_fd = -1;
	rc = mkdir_p(dir);
	if (rc)
		gw_err("store: create %s: %s", dir, strerror(-rc));
	if (!rc) {
		rc = lock_dir(s, dir);
		if (rc == -EBUSY)
			gw_err("store: %s is in use by another process", dir);
		else if (rc)
			gw_err("store: lock %s: %s", dir, strerror(-rc));
	}
	if (!rc)
		rc = open_db(s, dir);
	if (!rc)
		rc = upgrade_schema(s);
	if (!rc)
		rc = prepare_all(s);
	if (!rc)
		rc = bump_incarnation(s);
	if (rc) {
		syncd_store_close(s);
		return rc;
	}
	*out = s;
	return 0;
}

void syncd_store_close(struct syncd_store *s)
{
	if (!s)
		return;
	if (s->in_tx)
		syncd_store_rollback(s);
	for (int i = 0; i < ST_COUNT_ALL; i++)
		sqlite3_finalize(s->st[i]);
	if (s->db && sqlite3_close(s->db) != SQLITE_OK)
		gw_err("store: close: %s", sqlite3_errmsg(s->db));
	if (s->lock_fd >= 0)
		close(s->lock_fd);
	free(s->row_buf);
	free(s->log_buf);
	free(s);
}

bool syncd_store_created(const struct syncd_store *s)
{
	return s->created;
}

uint64_t syncd_store_incarnation(const struct syncd_store *s)
{
	return s->incarnation;
}

int syncd_store_begin(struct syncd_store *s)
{
	int rc;

	if (s->in_tx)
		return -EALREADY;
	rc = run(s, stmt(s, ST_BEGIN), "begin");
	if (!rc)
		s->in_tx = true;
	return rc;
}

int syncd_store_commit(struct syncd_store *s)
{
	int rc;

	if (!s->in_tx)
		return -EINVAL;
	rc = run(s, stmt(s, ST_COMMIT), "commit");
	if (rc) {
		syncd_store_rollback(s);
		return rc;
	}
	s->in_tx = false;
	return 0;
}

void syncd_store_rollback(struct syncd_store *s)
{
	if (!s->in_tx)
		return;
	/* SQLite may have rolled back by itself already (then this fails harmlessly). */
	if (sqlite3_get_autocommit(s->db) == 0)
		run(s, stmt(s, ST_ROLLBACK), "rollback");
	s->in_tx = false;
}

bool syncd_store_in_transaction(const struct syncd_store *s)
{
	return s->in_tx;
}

static int grow(uint8_t **buf, size_t *cap, size_t need)
{
	uint8_t *p;

	if (need <= *cap)
		return 0;
	p = realloc(*buf, need);
	if (!p)
		return -ENOMEM;
	*buf = p;
	*cap = need;
	return 0;
}

/* Fills row from the current result of st; column col is hlc. */
static void read_row(sqlite3_stmt *st, int col, struct syncd_row *row)
{
	row->hlc = (uint64_t)sqlite3_column_int64(st, col);
	row->writer = (uint32_t)sqlite3_column_int64(st, col + 1);
	row->origin = (uint32_t)sqlite3_column_int64(st, col + 2);
	row->origin_seq = (uint64_t)sqlite3_column_int64(st, col + 3);
	row->deleted = sqlite3_column_int(st, col + 4) != 0;
	row->blob = sqlite3_column_blob(st, col + 5);
	row->blob_len = (size_t)sqlite3_column_bytes(st, col + 5);
}

int syncd_store_get(struct syncd_store *s, const uint8_t *key, size_t key_len,
		    struct syncd_row *row)
{
	sqlite3_stmt *st = stmt(s, ST_GET);
	int rc;

	rc = bind_blob(s, st, 1, key, key_len);
	if (!rc)
		rc = step_row(s, st, "get");
	if (rc <= 0)
		return rc ? rc : -ENOENT;
	read_row(st, 0, row);
	rc = grow(&s->row_buf, &s->row_cap, key_len + row->blob_len + 1);
	if (!rc) {
		memcpy(s->row_buf, key, key_len);
		if (row->blob_len)
			memcpy(s->row_buf + key_len, row->blob, row->blob_len);
		row->key = s->row_buf;
		row->key_len = key_len;
		row->blob = s->row_buf + key_len;
	}
	sqlite3_reset(st);
	return rc;
}

int syncd_store_put(struct syncd_store *s, const struct syncd_row *row)
{
	sqlite3_stmt *st = stmt(s, ST_PUT);
	int rc;

	rc = bind_blob(s, st, 1, row->key, row->key_len);
	rc = rc ? rc : bind_u64(s, st, 2, row->hlc);
	rc = rc ? rc : bind_u64(s, st, 3, row->writer);
	rc = rc ? rc : bind_u64(s, st, 4, row->origin);
	rc = rc ? rc : bind_u64(s, st, 5, row->origin_seq);
	rc = rc ? rc : bind_u64(s, st, 6, row->deleted);
	rc = rc ? rc : bind_blob(s, st, 7, row->blob, row->blob_len);
	return rc ? rc : run(s, st, "put");
}

int syncd_store_foreach(struct syncd_store *s, bool live_only, syncd_row_fn *fn, void *arg)
{
	sqlite3_stmt *st = stmt(s, ST_FOREACH);
	struct syncd_row row;
	int rc;

	rc = bind_u64(s, st, 1, live_only);
	while (!rc) {
		rc = step_row(s, st, "foreach");
		if (rc <= 0)
			return rc;
		row.key = sqlite3_column_blob(st, 0);
		row.key_len = (size_t)sqlite3_column_bytes(st, 0);
		read_row(st, 1, &row);
		rc = fn(arg, &row);
	}
	sqlite3_reset(st);
	return rc;
}

int syncd_store_scan(struct syncd_store *s, const uint8_t *after, size_t after_len, size_t limit,
		     syncd_row_fn *fn, void *arg, size_t *visited)
{
	sqlite3_stmt *st = stmt(s, ST_SCAN);
	struct syncd_row row;
	int rc;

	*visited = 0;
	rc = bind_blob(s, st, 1, after, after_len);
	rc =
	    rc ? rc : bind_u64(s, st, 2, limit > (uint64_t)INT64_MAX ? (uint64_t)INT64_MAX : limit);
	while (!rc) {
		rc = step_row(s, st, "scan");
		if (rc <= 0)
			return rc;
		row.key = sqlite3_column_blob(st, 0);
		row.key_len = (size_t)sqlite3_column_bytes(st, 0);
		read_row(st, 1, &row);
		(*visited)++;
		rc = fn(arg, &row);
	}
	sqlite3_reset(st);
	return rc;
}

int syncd_store_count(struct syncd_store *s, uint64_t *live_peers, uint64_t *tombstones)
{
	sqlite3_stmt *st = stmt(s, ST_COUNT);
	int rc = step_row(s, st, "count");

	if (rc <= 0)
		return rc ? rc : -EIO;
	*live_peers = (uint64_t)sqlite3_column_int64(st, 0);
	*tombstones = (uint64_t)sqlite3_column_int64(st, 1);
	sqlite3_reset(st);
	return 0;
}

int syncd_store_gc(struct syncd_store *s, uint64_t below, uint64_t *removed)
{
	sqlite3_stmt *st = stmt(s, ST_GC);
	int rc;

	if (below > INT64_MAX)
		below = INT64_MAX;
	rc = bind_u64(s, st, 1, below);
	rc = rc ? rc : run(s, st, "gc");
	if (!rc && removed)
		*removed = (uint64_t)sqlite3_changes64(s->db);
	return rc;
}

/* A statement returning one integer (possibly NULL: -ENOENT). */
static int one_u64(struct syncd_store *s, sqlite3_stmt *st, const char *what, uint64_t *out)
{
	int rc = step_row(s, st, what);

	if (rc <= 0)
		return rc ? rc : -ENOENT;
	rc = sqlite3_column_type(st, 0) == SQLITE_NULL ? -ENOENT : 0;
	if (!rc)
		*out = (uint64_t)sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	return rc;
}

int syncd_store_max_hlc(struct syncd_store *s, uint64_t *hlc)
{
	return one_u64(s, stmt(s, ST_MAX_HLC), "max hlc", hlc);
}

int syncd_store_load_applied(struct syncd_store *s, uint64_t applied[SYNCD_STORE_MAX_ORIGIN + 1])
{
	sqlite3_stmt *st = stmt(s, ST_APPLIED_ALL);
	int rc;

	memset(applied, 0, sizeof(uint64_t) * (SYNCD_STORE_MAX_ORIGIN + 1));
	while ((rc = step_row(s, st, "load applied")) == 1) {
		sqlite3_int64 o = sqlite3_column_int64(st, 0);

		if (o >= 0 && o <= SYNCD_STORE_MAX_ORIGIN)
			applied[o] = (uint64_t)sqlite3_column_int64(st, 1);
	}
	return rc;
}

int syncd_store_set_applied(struct syncd_store *s, uint32_t origin, uint64_t seq)
{
	sqlite3_stmt *st = stmt(s, ST_APPLIED_SET);
	int rc;

	if (origin > SYNCD_STORE_MAX_ORIGIN)
		return -EINVAL;
	rc = bind_u64(s, st, 1, origin);
	rc = rc ? rc : bind_u64(s, st, 2, seq);
	return rc ? rc : run(s, st, "set applied");
}

int syncd_store_log_append(struct syncd_store *s, uint64_t seq, const void *blob, size_t len)
{
	sqlite3_stmt *st = stmt(s, ST_LOG_APPEND);
	int rc;

	rc = bind_u64(s, st, 1, seq);
	rc = rc ? rc : bind_blob(s, st, 2, blob, len);
	return rc ? rc : run(s, st, "log append");
}

int syncd_store_log_get(struct syncd_store *s, uint64_t seq, const void **blob, size_t *len)
{
	sqlite3_stmt *st = stmt(s, ST_LOG_GET);
	int rc;

	rc = bind_u64(s, st, 1, seq);
	if (!rc)
		rc = step_row(s, st, "log get");
	if (rc <= 0)
		return rc ? rc : -ENOENT;
	*len = (size_t)sqlite3_column_bytes(st, 0);
	rc = grow(&s->log_buf, &s->log_cap, *len + 1);
	if (!rc) {
		if (*len)
			memcpy(s->log_buf, sqlite3_column_blob(st, 0), *len);
		*blob = s->log_buf;
	}
	sqlite3_reset(st);
	return rc;
}

int syncd_store_log_trim(struct syncd_store *s, uint64_t below)
{
	sqlite3_stmt *st = stmt(s, ST_LOG_TRIM);
	int rc = bind_u64(s, st, 1, below);

	return rc ? rc : run(s, st, "log trim");
}

int syncd_store_log_oldest(struct syncd_store *s, uint64_t *seq)
{
	return one_u64(s, stmt(s, ST_LOG_OLDEST), "log oldest", seq);
}

int syncd_store_meta_get(struct syncd_store *s, const char *name, uint64_t *value)
{
	sqlite3_stmt *st = stmt(s, ST_META_GET);
	int rc = bind_text(s, st, 1, name);

	return rc ? rc : one_u64(s, st, "meta get", value);
}

int syncd_store_meta_set(struct syncd_store *s, const char *name, uint64_t value)
{
	sqlite3_stmt *st = stmt(s, ST_META_SET);
	int rc;

	rc = bind_text(s, st, 1, name);
	rc = rc ? rc : bind_u64(s, st, 2, value);
	return rc ? rc : run(s, st, "meta set");
}

/* ------------------------------------------------------------------------
 * Readers: a consistent cut on a connection of their own
 */

struct syncd_store_reader {
	sqlite3 *db;
	sqlite3_stmt *walk;
	bool done;
	uint64_t applied[SYNCD_STORE_MAX_ORIGIN + 1];
};

static int rd_fail(struct syncd_store_reader *rd, int rc, const char *what)
{
	gw_log_rl(&store_rl, GW_LOG_ERR, "store: reader: %s: %s (%d)", what,
		  rd->db ? sqlite3_errmsg(rd->db) : sqlite3_errstr(rc), rc);
	return map_sqlite(rc);
}

static int rd_exec(struct syncd_store_reader *rd, const char *sql)
{
	int rc = sqlite3_exec(rd->db, sql, NULL, NULL, NULL);

	return rc == SQLITE_OK ? 0 : rd_fail(rd, rc, sql);
}

/* Reads applied inside the reader's transaction: the first read fixes the cut. */
static int rd_load_applied(struct syncd_store_reader *rd)
{
	sqlite3_stmt *st;
	int rc = sqlite3_prepare_v2(rd->db, stmt_sql[ST_APPLIED_ALL], -1, &st, NULL);

	if (rc != SQLITE_OK)
		return rd_fail(rd, rc, "prepare applied");
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		sqlite3_int64 o = sqlite3_column_int64(st, 0);

		if (o >= 0 && o <= SYNCD_STORE_MAX_ORIGIN)
			rd->applied[o] = (uint64_t)sqlite3_column_int64(st, 1);
	}
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : rd_fail(rd, rc, "read applied");
}

int syncd_store_reader_open(struct syncd_store *s, struct syncd_store_reader **out)
{
	struct syncd_store_reader *rd;
	int rc;

	*out = NULL;
	rd = calloc(1, sizeof(*rd));
	if (!rd)
		return -ENOMEM;
	/* Read-write but query_only: a read-only connection could not use the WAL index. */
	rc = sqlite3_open_v2(s->path, &rd->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOFOLLOW, NULL);
	if (rc != SQLITE_OK) {
		rc = rd_fail(rd, rc, s->path);
		goto fail;
	}
	rc = rd_exec(rd, "PRAGMA query_only = ON; PRAGMA busy_timeout = 2000;"
			 " PRAGMA trusted_schema = OFF; BEGIN");
	if (!rc)
		rc = rd_load_applied(rd);
	if (!rc) {
		rc = sqlite3_prepare_v2(rd->db, stmt_sql[ST_FOREACH], -1, &rd->walk, NULL);
		rc = rc == SQLITE_OK ? 0 : rd_fail(rd, rc, "prepare walk");
	}
	if (!rc) {
		rc = sqlite3_bind_int64(rd->walk, 1, 0);
		rc = rc == SQLITE_OK ? 0 : rd_fail(rd, rc, "bind walk");
	}
	if (rc)
		goto fail;
	*out = rd;
	return 0;
fail:
	syncd_store_reader_close(rd);
	return rc;
}

const uint64_t *syncd_store_reader_applied(const struct syncd_store_reader *rd)
{
	return rd->applied;
}

int syncd_store_reader_next(struct syncd_store_reader *rd, size_t limit, syncd_row_fn *fn,
			    void *arg, bool *done)
{
	struct syncd_row row;
	int rc = 0;

	for (size_t n = 0; !rd->done && !rc && n < limit; n++) {
		rc = sqlite3_step(rd->walk);
		if (rc == SQLITE_DONE) {
			rd->done = true;
			rc = 0;
			break;
		}
		if (rc != SQLITE_ROW)
			return rd_fail(rd, rc, "walk");
		row.key = sqlite3_column_blob(rd->walk, 0);
		row.key_len = (size_t)sqlite3_column_bytes(rd->walk, 0);
		read_row(rd->walk, 1, &row);
		rc = fn(arg, &row);
	}
	*done = rd->done;
	return rc;
}

void syncd_store_reader_close(struct syncd_store_reader *rd)
{
	if (!rd)
		return;
	sqlite3_finalize(rd->walk);
	if (rd->db) {
		if (!sqlite3_get_autocommit(rd->db))
			sqlite3_exec(rd->db, "ROLLBACK", NULL, NULL, NULL);
		if (sqlite3_close(rd->db) != SQLITE_OK)
			gw_err("store: reader: close: %s", sqlite3_errmsg(rd->db));
	}
	free(rd);
}
