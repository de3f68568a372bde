// SPDX-License-Identifier: MIT
/*
 * gwctl role master|backup|fault|claim PUBKEY...|release PUBKEY...|ready|show:
 * the node's part in failover, for operators and keepalived's hooks
 * (ha-hooks/). syncd remembers the role and hands it to gwd as RoleCommand.
 */
#include <stdlib.h>
#include <string.h>

#include "ctlfmt.h"
#include "gw/crypto.h"
#include "gw/key.h"
#include "gwctl.h"

static const struct {
	const char *word;
	Gwcluster__RoleRequest__Action action;
	bool keys; /* takes PUBKEY arguments */
} actions[] = {
    {"show", GWCLUSTER__ROLE_REQUEST__ACTION__SHOW, false},
    {"master", GWCLUSTER__ROLE_REQUEST__ACTION__MASTER, false},
    {"backup", GWCLUSTER__ROLE_REQUEST__ACTION__BACKUP, false},
    {"fault", GWCLUSTER__ROLE_REQUEST__ACTION__FAULT, false},
    {"claim", GWCLUSTER__ROLE_REQUEST__ACTION__CLAIM, true},
    {"release", GWCLUSTER__ROLE_REQUEST__ACTION__RELEASE, true},
    {"ready", GWCLUSTER__ROLE_REQUEST__ACTION__READY, false},
};

/* The keys of argv[0..argc) into q (freed with free_keys), or an exit status. */
static int parse_keys(int argc, char **argv, Gwcluster__RoleRequest *q)
{
	uint8_t *buf = calloc((size_t)argc, GW_KEY_LEN);

	q->public_keys = calloc((size_t)argc, sizeof(*q->public_keys));
	if (!buf || !q->public_keys) {
		free(buf);
		free(q->public_keys);
		q->public_keys = NULL;
		gwctl_err("out of memory");
		return GWCTL_EXIT_FAILED;
	}
	for (int i = 0; i < argc; i++) {
		uint8_t *k = buf + (size_t)i * GW_KEY_LEN;

		q->public_keys[i] = (ProtobufCBinaryData){GW_KEY_LEN, k};
		q->n_public_keys++;
		if (gw_key_from_base64(k, argv[i])) {
			gwctl_err("role: '%s' is not a public key (base64, 44 characters)",
				  argv[i]);
			return gwctl_usage_error("role");
		}
	}
	return 0;
}

static void free_keys(Gwcluster__RoleRequest *q)
{
	if (q->public_keys)
		free(q->public_keys[0].data);
	free(q->public_keys);
}

static int print_answer(const struct gwctl *g, const Gwcluster__CtlResponse *resp)
{
	if (resp->error)
		return gwctl_fail("role", resp);
	if (g->json)
		syncd_fmt_role_json(stdout, resp->role, resp->message);
	else
		syncd_fmt_role_text(stdout, resp->role, resp->message);
	return GWCTL_EXIT_OK;
}

int gwctl_cmd_role(struct gwctl *g, int argc, char **argv)
{
	Gwcluster__CtlRequest req = GWCLUSTER__CTL_REQUEST__INIT;
	Gwcluster__RoleRequest role = GWCLUSTER__ROLE_REQUEST__INIT;
	Gwcluster__CtlResponse *resp;
	const char *word = argc ? argv[0] : "show";
	size_t a;
	int rc;

	for (a = 0; a < sizeof(actions) / sizeof(actions[0]); a++)
		if (!strcmp(word, actions[a].word))
			break;
	if (a == sizeof(actions) / sizeof(actions[0])) {
		gwctl_err("role: unknown action '%s'", word);
		return gwctl_usage_error("role");
	}
	if (argc > 1 && !actions[a].keys) {
		gwctl_err("role %s: unexpected '%s'", word, argv[1]);
		return gwctl_usage_error("role");
	}
	if (actions[a].keys && argc < 2) {
		gwctl_err("role %s: which peers? (PUBKEY...)", word);
		return gwctl_usage_error("role");
	}
	if (g->force && actions[a].action != GWCLUSTER__ROLE_REQUEST__ACTION__MASTER &&
	    actions[a].action != GWCLUSTER__ROLE_REQUEST__ACTION__CLAIM &&
	    actions[a].action != GWCLUSTER__ROLE_REQUEST__ACTION__READY) {
		gwctl_err(
		    "role %s: --force belongs to 'role master', 'role claim' and 'role ready'",
		    word);
		return gwctl_usage_error("role");
	}
	if (!g->force && actions[a].action == GWCLUSTER__ROLE_REQUEST__ACTION__READY) {
		gwctl_err("role ready: makes this node eligible for master without any other "
			  "member's sessions; give --force if every other member is gone");
		return gwctl_usage_error("role");
	}
	rc = actions[a].keys ? parse_keys(argc - 1, argv + 1, &role) : 0;
	if (rc) {
		free_keys(&role);
		return rc;
	}
	role.action = actions[a].action;
	role.has_force = g->force;
	role.force = g->force;
	req.op_case = GWCLUSTER__CTL_REQUEST__OP_ROLE;
	req.role = &role;
	rc = gwctl_call(g, &req, &resp);
	free_keys(&role);
	if (rc)
		return rc;
	rc = print_answer(g, resp);
	gwcluster__ctl_response__free_unpacked(resp, NULL);
	return rc;
}
