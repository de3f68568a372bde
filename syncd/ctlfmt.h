/* SPDX-License-Identifier: MIT */
/*
 * gwctl's output: aligned tables for people, JSON for programs (shapes in
 * docs/gwctl.md). Preshared keys are never printed, only whether there is
 * one. Everything here only formats; it reads the control protocol's
 * messages as syncd sent them and copes with any field being absent.
 */
#ifndef SYNCD_CTLFMT_H
#define SYNCD_CTLFMT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "gwcluster.pb-c.h"

/* s as a JSON string (escaped), or null when s is NULL. */
void syncd_fmt_json_string(FILE *f, const char *s);

/* One object per peer; `gwctl peer show --json` prints one, list an array. */
void syncd_fmt_peer_json(FILE *f, const Gwcluster__PeerEntry *e, uint64_t now_unix);
void syncd_fmt_peers_json(FILE *f, Gwcluster__PeerEntry *const *v, size_t n, uint64_t now_unix);
/* NAME PUBLIC-KEY ALLOWED-IPS KEEPALIVE ENDPOINT OWNER EXPIRES TAGS, aligned. */
void syncd_fmt_peers_table(FILE *f, Gwcluster__PeerEntry *const *v, size_t n, uint64_t now_unix);
/* "key: value" lines, as `wg show` prints a peer. */
void syncd_fmt_peer_show(FILE *f, const Gwcluster__PeerEntry *e, uint64_t now_unix);

/*
 * The session relay's fields (a "ready for master" line, a sessions table,
 * per member "sessions" and "session_*" JSON keys) appear only when the
 * status carries them.
 */
void syncd_fmt_status_table(FILE *f, const Gwcluster__ClusterStatus *st);
void syncd_fmt_status_json(FILE *f, const Gwcluster__ClusterStatus *st);
/* gwctl role: syncd's message, then the node's role and session figures (s may be NULL). */
void syncd_fmt_role_text(FILE *f, const Gwcluster__SessionSummary *s, const char *message);
void syncd_fmt_role_json(FILE *f, const Gwcluster__SessionSummary *s, const char *message);

/*
 * The diff an ApplyRequest answered, each key with its name looked up in
 * known[] (the first entry with that key wins; a key not found prints
 * without a name).
 */
void syncd_fmt_diff(FILE *f, const Gwcluster__ApplyDiff *d, Gwcluster__PeerConfig *const *known,
		    size_t n_known, bool dry_run);
void syncd_fmt_diff_json(FILE *f, const Gwcluster__ApplyDiff *d,
			 Gwcluster__PeerConfig *const *known, size_t n_known, bool dry_run);

#endif
