/* SPDX-License-Identifier: MIT */
/*
 * Inside the apply module (apply.c: UAPI text; apply_state.c: the desired
 * and applied peer sets; applier.c: the incremental applier on the event
 * loop). Nothing here is part of apply.h's contract.
 */
#ifndef SYNCD_APPLY_INT_H
#define SYNCD_APPLY_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "apply.h"
#include "gw/addr.h"
#include "gw/key.h"

/* One peer, as gwd has it or as it should be. */
struct peer_state {
	uint8_t key[GW_KEY_LEN];
	uint8_t psk[GW_KEY_LEN]; /* all zero: none */
	uint32_t keepalive;
	bool has_endpoint;
	bool invalid;	      /* desired entry rejected: leave gwd's peer alone */
	const char *endpoint; /* desired: validated hint or NULL */
	size_t order;	      /* desired: index in desired[] */
	struct gw_prefix *aips;
	size_t n_aips, cap_aips;
};

/* A parsed get (or set) reply, fed in pieces as it arrives. */
struct dev_state {
	struct peer_state *peers;
	size_t n, cap;
	uint32_t listen_port, fwmark;
	long err;
	bool have_errno, done;
	size_t bytes;
	char line[SYNCD_APPLY_LINE_MAX + 1];
	size_t line_len;
};

/* A growing request; wiped whenever it moves or is freed (preshared keys). */
struct sbuf {
	char *p;
	size_t len, cap;
	bool oom;
};

void ap_peer_free(struct peer_state *p);
void ap_dev_free(struct dev_state *st);
/* Parses n more bytes of a reply; 0, -EPROTO or -ENOMEM. Done: st->done. */
int ap_dev_feed(struct dev_state *st, const char *p, size_t n);
/* After the last byte: canonical allowed IPs, peers sorted by key, none twice. */
int ap_dev_sort(struct dev_state *st);

/* IPv4 first, then address, then length: the order of canonical lists. */
int ap_prefix_cmp(const void *a, const void *b);
/*
 * A desired peer's fields into w (key and order excluded), allowed IPs
 * canonical; w->endpoint points into pc. 0, -ENOMEM, or -EINVAL with *why.
 */
int ap_want_fill(struct peer_state *w, const Gwcluster__PeerConfig *pc, const char **why);
void ap_log_invalid(const uint8_t *key, const char *why);

__attribute__((format(printf, 2, 3))) void ap_sb_printf(struct sbuf *b, const char *fmt, ...);
void ap_sb_free(struct sbuf *b);

/* The lines of one peer in a set request. */
void ap_emit_add(struct sbuf *b, const uint8_t key[static GW_KEY_LEN],
		 const uint8_t psk[static GW_KEY_LEN], const char *endpoint, uint32_t keepalive,
		 const struct gw_prefix *aips, size_t n_aips);
void ap_emit_remove(struct sbuf *b, const uint8_t key[static GW_KEY_LEN]);
/* A change with update_only; NULL psk/endpoint, !ka and !aips leave a field alone. */
void ap_emit_change(struct sbuf *b, const uint8_t key[static GW_KEY_LEN], const uint8_t *psk,
		    const char *endpoint, bool ka, uint32_t keepalive, bool aips,
		    const struct gw_prefix *list, size_t n_list);

/* Grows *p (elements of size sz) to hold at least need, wiping the old block. */
int ap_grow(void *p, size_t *cap, size_t need, size_t sz);

/* --- apply_state.c ---------------------------------------------------------
 *
 * Every public key the store or gwd knows, with what the store wants for it
 * and what gwd has (as the last get=1 showed, changed since by our own sets
 * exactly as gwd changes itself), the allowed-IP claims that decide
 * contested prefixes, and a FIFO of peers to compare again. No I/O.
 *
 * A prefix listed by several live peers goes to the one whose record has
 * the greatest hlc (ties: the greater public key); the others are applied
 * without it. The rule depends on the stored records only, so every node
 * that holds the same records gives every prefix to the same peer.
 */

struct ap_state;

struct ap_batch {
	uint32_t *idx; /* peers in the request, in key order */
	size_t n, cap;
	bool iface;			/* the request sets interface fields */
	size_t added, removed, changed; /* what it does */
};

int ap_state_new(struct ap_state **out);
void ap_state_free(struct ap_state *st);

/*
 * The store's record for key: pc NULL when there is no live peer (absent or
 * tombstone); hlc is the record's. Queues the peer, and any peer whose share
 * of a contested prefix changes with it. 0, or -ENOMEM: then the peer is
 * left alone in gwd (as an invalid record) until a later call succeeds.
 */
int ap_state_want(struct ap_state *st, const uint8_t key[static GW_KEY_LEN],
		  const Gwcluster__PeerConfig *pc, uint64_t hlc);
/* The interface settings (NULL: none stored, leave gwd's alone). */
void ap_state_want_iface(struct ap_state *st, const Gwcluster__InterfaceConfig *ifc);

/*
 * Replaces the picture of gwd by a get reply (parsed, errno 0), a budget of
 * steps at a time: 1 once done (every known peer is then queued), 0 when
 * more steps remain (call again with the same dump and pos), -EPROTO
 * (a peer twice in the reply) or -ENOMEM. The dump's allowed-IP arrays move
 * into the state. The desired side must not change until it is done.
 */
struct ap_install {
	unsigned phase; /* zero-initialise before the first step */
	size_t at;
};
int ap_state_install(struct ap_state *st, struct dev_state *dump, struct ap_install *pos,
		     size_t budget);

/*
 * The next set request: takes queued peers (at most `examine` of them)
 * until `max` need a change; those that need none leave the queue. req
 * gets "set=1\n ... \n" (b->n peers, and interface fields when b->iface),
 * or stays empty when nothing needs changing. The desired side must not
 * change until ap_state_batch_done(). 0 or -ENOMEM (nothing taken).
 */
int ap_state_batch(struct ap_state *st, struct ap_batch *b, size_t max, size_t examine,
		   struct sbuf *req);
/* gwd took the request (the picture of gwd follows), or not (queued again). */
void ap_state_batch_done(struct ap_state *st, struct ap_batch *b, bool applied);
void ap_batch_free(struct ap_batch *b);

/* Queued peers (and interface settings) waiting to be compared or applied. */
size_t ap_state_pending(const struct ap_state *st);
/* Prefixes claimed by more than one live peer right now. */
size_t ap_state_conflicts(const struct ap_state *st);
/* Live peers the store wants. */
size_t ap_state_wanted(const struct ap_state *st);
/*
 * Test hook: the allowed IPs key gets (its own minus the prefixes another
 * peer wins), canonical. -ENOENT when the store wants no such peer, -ENOSPC
 * when more than cap.
 */
int ap_state_effective(struct ap_state *st, const uint8_t key[static GW_KEY_LEN],
		       struct gw_prefix *out, size_t cap, size_t *n);

#endif
