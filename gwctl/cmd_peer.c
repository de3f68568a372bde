// SPDX-License-Identifier: MIT
/* gwctl peer add|set|remove|list|show. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ctlfmt.h"
#include "gw/crypto.h"
#include "gw/key.h"
#include "gwctl.h"
#include "peerfile.h"

enum { ERR_LEN = 256 };

/* Parses PUBKEY into pc; a usage error (printed) otherwise. */
static int parse_key_arg(const char *what, Gwcluster__PeerConfig *pc, const char *arg)
{
	const char *why = NULL;

	if (syncd_peer_set_public_key(pc, arg, &why)) {
		gwctl_err("%s: '%s': %s", what, arg, why);
		return gwctl_usage_error("peer");
	}
	return 0;
}

static int json_ok(const Gwcluster__PeerConfig *pc)
{
	char b64[GW_KEY_B64_LEN + 1];

	gw_key_to_base64(b64, pc->public_key.data);
	printf("{\"ok\":true,\"public_key\":\"%s\"}\n", b64);
	return GWCTL_EXIT_OK;
}

/*
 * Fetches the stored peer: 0 with *resp holding it in peers[0], -ENOENT
 * (resp freed) when syncd has none, or an exit status (printed).
 */
static int fetch(struct gwctl *g, const char *what, const Gwcluster__PeerConfig *key,
		 Gwcluster__CtlResponse **resp)
{
	Gwcluster__CtlRequest req = GWCLUSTER__CTL_REQUEST__INIT;
	int rc;

	req.op_case = GWCLUSTER__CTL_REQUEST__OP_PEER_SHOW;
	req.peer_show = key->public_key;
	rc = gwctl_call(g, &req, resp);
	if (rc)
		return rc;
	if ((*resp)->error == -ENOENT || (!(*resp)->error && !(*resp)->n_peers)) {
		gwcluster__ctl_response__free_unpacked(*resp, NULL);
		*resp = NULL;
		return -ENOENT;
	}
	if ((*resp)->error || !(*resp)->peers[0]->peer) {
		rc = gwctl_fail(what, *resp);
		gwcluster__ctl_response__free_unpacked(*resp, NULL);
		*resp = NULL;
	}
	return rc;
}

/*
 * The allowed IPs --move-allowed-ips took from other peers, one line each,
 * from syncd's "added; moved A, B from KEY (NAME); moved ... (committed as
 * update N)".
 */
static void print_moves(const char *msg)
{
	const char *m = msg ? strstr(msg, "; moved ") : NULL;
	const char *end = m ? strstr(m, " (committed") : NULL;
	size_t len = !m ? 0 : end ? (size_t)(end - m) : strlen(m);

	while (len > 2) {
		const char *next = memmem(m + 2, len - 2, "; moved ", 8);
		size_t n = next ? (size_t)(next - m) : len;

		printf("  %.*s\n", (int)(n - 2), m + 2);
		m += n;
		len -= n;
	}
}

static int upsert(struct gwctl *g, const char *what, Gwcluster__PeerConfig *pc)
{
	Gwcluster__CtlRequest req = GWCLUSTER__CTL_REQUEST__INIT;
	Gwcluster__CtlResponse *resp;
	char b64[GW_KEY_B64_LEN + 1];
	const char *why = NULL;
	int rc;

	if (syncd_peer_validate(pc, &why)) {
		gwctl_err("%s: %s", what, why);
		return GWCTL_EXIT_USAGE;
	}
	req.op_case = GWCLUSTER__CTL_REQUEST__OP_PEER_UPSERT;
	req.peer_upsert = pc;
	req.has_move_allowed_ips = g->move_allowed_ips;
	req.move_allowed_ips = g->move_allowed_ips;
	rc = gwctl_call(g, &req, &resp);
	if (rc)
		return rc;
	rc = resp->error ? gwctl_fail(what, resp) : GWCTL_EXIT_OK;
	if (!rc && !g->json) {
		gw_key_to_base64(b64, pc->public_key.data);
		printf("peer %s %s\n", b64, strcmp(what, "peer add") ? "updated" : "added");
		print_moves(resp->message);
	}
	gwcluster__ctl_response__free_unpacked(resp, NULL);
	if (rc)
		return rc;
	return g->json ? json_ok(pc) : GWCTL_EXIT_OK;
}

static int peer_add(struct gwctl *g, int argc, char **argv)
{
	Gwcluster__PeerConfig *pc = syncd_peer_new();
	Gwcluster__CtlResponse *resp = NULL;
	char err[ERR_LEN];
	int rc;

	if (!pc)
		return GWCTL_EXIT_FAILED;
	rc = parse_key_arg("peer add", pc, argv[0]);
	if (!rc && syncd_peer_words(pc, argc - 1, argv + 1, NULL, err, sizeof(err))) {
		gwctl_err("peer add: %s", err);
		rc = gwctl_usage_error("peer");
	}
	if (!rc) {
		rc = fetch(g, "peer add", pc, &resp);
		if (rc == 0) {
			gwctl_err("peer add: %s already exists (change it with 'gwctl peer set')",
				  argv[0]);
			gwcluster__ctl_response__free_unpacked(resp, NULL);
			rc = GWCTL_EXIT_FAILED;
		} else if (rc == -ENOENT) {
			rc = upsert(g, "peer add", pc);
		}
	}
	syncd_peer_free(pc);
	return rc;
}

static int peer_set(struct gwctl *g, int argc, char **argv)
{
	Gwcluster__PeerConfig *given = syncd_peer_new(), *pc;
	Gwcluster__CtlResponse *resp = NULL;
	char err[ERR_LEN];
	unsigned mask = 0;
	int rc;

	if (!given)
		return GWCTL_EXIT_FAILED;
	rc = parse_key_arg("peer set", given, argv[0]);
	if (!rc && argc < 2) {
		gwctl_err("peer set: nothing to change");
		rc = gwctl_usage_error("peer");
	}
	/* The words go to a scratch peer first: bad input fails before any request. */
	if (!rc && syncd_peer_words(given, argc - 1, argv + 1, &mask, err, sizeof(err))) {
		gwctl_err("peer set: %s", err);
		rc = gwctl_usage_error("peer");
	}
	if (!rc) {
		rc = fetch(g, "peer set", given, &resp);
		if (rc == -ENOENT) {
			gwctl_err("peer set: no peer %s (add it with 'gwctl peer add')", argv[0]);
			rc = GWCTL_EXIT_FAILED;
		}
	}
	if (!rc) {
		pc = resp->peers[0]->peer;
		rc = syncd_peer_copy_fields(pc, given, mask);
		if (rc) {
			gwctl_err("peer set: %s",
				  rc == -E2BIG ? "more than 32 tags" : strerror(-rc));
			rc = GWCTL_EXIT_USAGE;
		} else {
			rc = upsert(g, "peer set", pc);
		}
		if (pc->preshared_key.data)
			gw_wipe(pc->preshared_key.data, pc->preshared_key.len);
		gwcluster__ctl_response__free_unpacked(resp, NULL);
	}
	syncd_peer_free(given);
	return rc;
}

static int peer_remove(struct gwctl *g, int argc, char **argv)
{
	Gwcluster__CtlRequest req = GWCLUSTER__CTL_REQUEST__INIT;
	Gwcluster__PeerTombstone tomb = GWCLUSTER__PEER_TOMBSTONE__INIT;
	Gwcluster__PeerConfig *pc = syncd_peer_new();
	Gwcluster__CtlResponse *resp;
	int rc;

	if (!pc)
		return GWCTL_EXIT_FAILED;
	rc = parse_key_arg("peer remove", pc, argv[0]);
	if (!rc && argc > 1) {
		gwctl_err("peer remove: unexpected '%s'", argv[1]);
		rc = gwctl_usage_error("peer");
	}
	if (!rc) {
		tomb.public_key = pc->public_key;
		req.op_case = GWCLUSTER__CTL_REQUEST__OP_PEER_REMOVE;
		req.peer_remove = &tomb;
		rc = gwctl_call(g, &req, &resp);
	}
	if (!rc) {
		if (resp->error == -ENOENT) {
			gwctl_err("peer remove: no peer %s", argv[0]);
			rc = GWCTL_EXIT_FAILED;
		} else if (resp->error) {
			rc = gwctl_fail("peer remove", resp);
		}
		gwcluster__ctl_response__free_unpacked(resp, NULL);
	}
	if (!rc && g->json)
		json_ok(pc);
	else if (!rc)
		printf("peer %s removed\n", argv[0]);
	syncd_peer_free(pc);
	return rc;
}

/* By name (unnamed last), then by key: the same order on every node. */
static int entry_cmp(const void *a, const void *b)
{
	const Gwcluster__PeerConfig *x = (*(Gwcluster__PeerEntry *const *)a)->peer;
	const Gwcluster__PeerConfig *y = (*(Gwcluster__PeerEntry *const *)b)->peer;
	const char *nx = x && x->meta ? x->meta->name : NULL;
	const char *ny = y && y->meta ? y->meta->name : NULL;
	int c;

	if (!x || !y)
		return !x - !y;
	if (nx && ny && (c = strcmp(nx, ny)))
		return c;
	if (!nx != !ny)
		return nx ? -1 : 1;
	if (x->public_key.len != y->public_key.len)
		return x->public_key.len < y->public_key.len ? -1 : 1;
	return memcmp(x->public_key.data, y->public_key.data, x->public_key.len);
}

static int peer_list(struct gwctl *g, int argc, char **argv)
{
	Gwcluster__CtlRequest req = GWCLUSTER__CTL_REQUEST__INIT;
	Gwcluster__CtlResponse *resp;
	int rc;

	if (argc) {
		gwctl_err("peer list: unexpected '%s'", argv[0]);
		return gwctl_usage_error("peer");
	}
	req.op_case = GWCLUSTER__CTL_REQUEST__OP_PEER_LIST;
	req.peer_list = 1;
	rc = gwctl_call(g, &req, &resp);
	if (rc)
		return rc;
	if (resp->error) {
		rc = gwctl_fail("peer list", resp);
	} else {
		qsort(resp->peers, resp->n_peers, sizeof(*resp->peers), entry_cmp);
		if (g->json)
			syncd_fmt_peers_json(stdout, resp->peers, resp->n_peers,
					     (uint64_t)time(NULL));
		else
			syncd_fmt_peers_table(stdout, resp->peers, resp->n_peers,
					      (uint64_t)time(NULL));
	}
	gwcluster__ctl_response__free_unpacked(resp, NULL);
	return rc;
}

static int peer_show(struct gwctl *g, int argc, char **argv)
{
	Gwcluster__PeerConfig *key = syncd_peer_new();
	Gwcluster__CtlResponse *resp = NULL;
	int rc;

	if (!key)
		return GWCTL_EXIT_FAILED;
	rc = parse_key_arg("peer show", key, argv[0]);
	if (!rc && argc > 1) {
		gwctl_err("peer show: unexpected '%s'", argv[1]);
		rc = gwctl_usage_error("peer");
	}
	if (!rc)
		rc = fetch(g, "peer show", key, &resp);
	if (rc == -ENOENT) {
		gwctl_err("peer show: no peer %s", argv[0]);
		rc = GWCTL_EXIT_FAILED;
	} else if (!rc && g->json) {
		syncd_fmt_peer_json(stdout, resp->peers[0], (uint64_t)time(NULL));
		putchar('\n');
	} else if (!rc) {
		syncd_fmt_peer_show(stdout, resp->peers[0], (uint64_t)time(NULL));
	}
	if (resp)
		gwcluster__ctl_response__free_unpacked(resp, NULL);
	syncd_peer_free(key);
	return rc;
}

int gwctl_cmd_peer(struct gwctl *g, int argc, char **argv)
{
	static const struct {
		const char *name;
		int (*fn)(struct gwctl *g, int argc, char **argv);
		bool needs_key;
	} subs[] = {
	    {"add", peer_add, true},	{"set", peer_set, true},   {"remove", peer_remove, true},
	    {"list", peer_list, false}, {"show", peer_show, true},
	};

	if (!argc) {
		gwctl_err("peer: add, set, remove, list or show?");
		return gwctl_usage_error("peer");
	}
	for (size_t i = 0; i < sizeof(subs) / sizeof(subs[0]); i++) {
		if (strcmp(argv[0], subs[i].name))
			continue;
		if (subs[i].needs_key && argc < 2) {
			gwctl_err("peer %s: needs a PUBKEY", subs[i].name);
			return gwctl_usage_error("peer");
		}
		return subs[i].fn(g, argc - 1, argv + 1);
	}
	gwctl_err("peer: unknown subcommand '%s'", argv[0]);
	return gwctl_usage_error("peer");
}
