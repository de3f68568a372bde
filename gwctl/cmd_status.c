// SPDX-License-Identifier: MIT
/* gwctl status. */
#include "ctlfmt.h"
#include "gwctl.h"

int gwctl_cmd_status(struct gwctl *g, int argc, char **argv)
{
	Gwcluster__CtlRequest req = GWCLUSTER__CTL_REQUEST__INIT;
	Gwcluster__CtlResponse *resp;
	int rc;

	if (argc) {
		gwctl_err("status: unexpected '%s'", argv[0]);
		return gwctl_usage_error("status");
	}
	req.op_case = GWCLUSTER__CTL_REQUEST__OP_STATUS;
	req.status = 1;
	rc = gwctl_call(g, &req, &resp);
	if (rc)
		return rc;
	if (resp->error) {
		rc = gwctl_fail("status", resp);
	} else if (!resp->status) {
		gwctl_err("status: syncd sent no status");
		rc = GWCTL_EXIT_FAILED;
	} else if (g->json) {
		syncd_fmt_status_json(stdout, resp->status);
	} else {
		syncd_fmt_status_table(stdout, resp->status);
	}
	gwcluster__ctl_response__free_unpacked(resp, NULL);
	return rc;
}
