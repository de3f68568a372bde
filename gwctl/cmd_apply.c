// SPDX-License-Identifier: MIT
/* gwctl apply FILE [--dry-run] [--allow-empty]. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ctlfmt.h"
#include "gwctl.h"
#include "peerfile.h"

/* stdin as a whole; the apply file may hold preshared keys: wiped after. */
static int read_stdin(char **buf, size_t *len)
{
	size_t cap = 65536, n = 0;
	char *b = malloc(cap);

	while (b) {
		size_t r = fread(b + n, 1, cap - n, stdin);

		n += r;
		if (r == 0)
			break;
		if (n == cap) {
			char *nb = cap < (256u << 20) ? malloc(cap * 2) : NULL;

			if (nb)
				memcpy(nb, b, n);
			explicit_bzero(b, n);
			free(b);
			b = nb;
			cap *= 2;
		}
	}
	if (!b || ferror(stdin)) {
		if (b)
			explicit_bzero(b, n);
		free(b);
		return -EIO;
	}
	*buf = b;
	*len = n;
	return 0;
}

static int parse(const char *path, struct syncd_peerfile *pf)
{
	struct syncd_peerfile_error err;
	char *buf;
	size_t len;
	int rc;

	if (!strcmp(path, "-")) {
		if (read_stdin(&buf, &len)) {
			gwctl_err("apply: cannot read stdin");
			return GWCTL_EXIT_USAGE;
		}
		rc = syncd_peerfile_parse_buffer(buf, len, pf, &err);
		explicit_bzero(buf, len);
		free(buf);
	} else {
		rc = syncd_peerfile_parse_file(path, pf, &err);
	}
	if (rc) {
		if (err.line)
			gwctl_err("%s:%u: %s", path, err.line, err.msg);
		else
			gwctl_err("%s: %s", path, err.msg);
		return GWCTL_EXIT_USAGE;
	}
	if (pf->interface_line)
		gwctl_err("%s:%u: note: [Interface] skipped: interface settings are node-local "
			  "(cluster.conf and gwd's own configuration)",
			  path, pf->interface_line);
	return 0;
}

/* The current peers, only to name the removed ones in the diff. */
static Gwcluster__CtlResponse *current_peers(struct gwctl *g, int *rc)
{
	Gwcluster__CtlRequest req = GWCLUSTER__CTL_REQUEST__INIT;
	Gwcluster__CtlResponse *resp;

	req.op_case = GWCLUSTER__CTL_REQUEST__OP_PEER_LIST;
	req.peer_list = 1;
	*rc = gwctl_call(g, &req, &resp);
	if (*rc)
		return NULL;
	if (resp->error) {
		*rc = gwctl_fail("apply: listing the current peers", resp);
		gwcluster__ctl_response__free_unpacked(resp, NULL);
		return NULL;
	}
	return resp;
}

/* File peers first (their names win), then the stored ones. */
static Gwcluster__PeerConfig **known_peers(const struct syncd_peerfile *pf,
					   const Gwcluster__CtlResponse *cur, size_t *n)
{
	Gwcluster__PeerConfig **v = calloc(pf->n + cur->n_peers + 1, sizeof(*v));

	*n = 0;
	if (!v)
		return NULL;
	for (size_t i = 0; i < pf->n; i++)
		v[(*n)++] = pf->peers[i];
	for (size_t i = 0; i < cur->n_peers; i++)
		if (cur->peers[i]->peer)
			v[(*n)++] = cur->peers[i]->peer;
	return v;
}

static int send_apply(struct gwctl *g, struct syncd_peerfile *pf, const Gwcluster__CtlResponse *cur)
{
	Gwcluster__CtlRequest req = GWCLUSTER__CTL_REQUEST__INIT;
	Gwcluster__ApplyRequest ar = GWCLUSTER__APPLY_REQUEST__INIT;
	Gwcluster__CtlResponse *resp;
	Gwcluster__PeerConfig **known;
	size_t n_known;
	int rc;

	ar.peers = pf->peers;
	ar.n_peers = pf->n;
	ar.dry_run = g->dry_run;
	req.op_case = GWCLUSTER__CTL_REQUEST__OP_APPLY;
	req.apply = &ar;
	rc = gwctl_call(g, &req, &resp);
	if (rc)
		return rc;
	if (resp->error) {
		rc = gwctl_fail(g->dry_run ? "apply --dry-run" : "apply", resp);
		gwcluster__ctl_response__free_unpacked(resp, NULL);
		return rc;
	}
	known = known_peers(pf, cur, &n_known);
	if (g->json)
		syncd_fmt_diff_json(stdout, resp->diff, known, n_known, g->dry_run);
	else
		syncd_fmt_diff(stdout, resp->diff, known, n_known, g->dry_run);
	free(known);
	gwcluster__ctl_response__free_unpacked(resp, NULL);
	return GWCTL_EXIT_OK;
}

int gwctl_cmd_apply(struct gwctl *g, int argc, char **argv)
{
	struct syncd_peerfile pf;
	Gwcluster__CtlResponse *cur;
	int rc;

	if (argc != 1) {
		gwctl_err(argc ? "apply: one FILE only" : "apply: needs a FILE");
		return gwctl_usage_error("apply");
	}
	rc = parse(argv[0], &pf);
	if (rc)
		return rc;
	if (!pf.n && !g->allow_empty) {
		gwctl_err("%s: no [Peer] sections: applying it would remove every peer "
			  "(add --allow-empty if that is what you want)",
			  argv[0]);
		syncd_peerfile_free(&pf);
		return GWCTL_EXIT_USAGE;
	}
	cur = current_peers(g, &rc);
	if (cur) {
		rc = send_apply(g, &pf, cur);
		gwcluster__ctl_response__free_unpacked(cur, NULL);
	}
	syncd_peerfile_free(&pf);
	return rc;
}
