// SPDX-License-Identifier: MIT
/*
 * gwctl's command line: options anywhere (GNU getopt permutes them to the
 * front), then COMMAND and its words. Which options a command accepts is
 * checked here so every command sees a consistent struct gwctl.
 */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "gw/crypto.h"
#include "gwctl.h"

enum {
	OPT_JSON = 256,
	OPT_TIMEOUT,
	OPT_DRY_RUN,
	OPT_ALLOW_EMPTY,
	OPT_CURVE,
	OPT_OUT,
	OPT_FORCE,
	OPT_MOVE_AIPS,
};

static const struct option options[] = {
    {"config", required_argument, NULL, 'c'},
    {"socket", required_argument, NULL, 's'},
    {"json", no_argument, NULL, OPT_JSON},
    {"timeout", required_argument, NULL, OPT_TIMEOUT},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, 'V'},
    {"dry-run", no_argument, NULL, OPT_DRY_RUN},
    {"allow-empty", no_argument, NULL, OPT_ALLOW_EMPTY},
    {"curve", no_argument, NULL, OPT_CURVE},
    {"out", required_argument, NULL, OPT_OUT},
    {"force", no_argument, NULL, OPT_FORCE},
    {"move-allowed-ips", no_argument, NULL, OPT_MOVE_AIPS},
    {NULL, 0, NULL, 0},
};

struct command {
	const char *name;
	int (*fn)(struct gwctl *g, int argc, char **argv);
	const char *topic;
};

static const struct command commands[] = {
    {"peer", gwctl_cmd_peer, "peer"},
    {"apply", gwctl_cmd_apply, "apply"},
    {"status", gwctl_cmd_status, "status"},
    {"role", gwctl_cmd_role, "role"},
    {"genkey", gwctl_cmd_genkey, "genkey"},
    {"pubkey", gwctl_cmd_pubkey, "pubkey"},
    {"curve-pubkey", gwctl_cmd_curve_pubkey, "curve-pubkey"},
};

static int parse_timeout(struct gwctl *g, const char *s)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || *end || end == s || v < 1 || v > GWCTL_TIMEOUT_MAX_MS) {
		gwctl_err("--timeout: '%s' is not a number of milliseconds 1..%d", s,
			  GWCTL_TIMEOUT_MAX_MS);
		return -1;
	}
	g->timeout_ms = (int)v;
	return 0;
}

/* -1: usage error (printed); 1: --help or --version done; 0: go on. */
static int parse_options(struct gwctl *g, int argc, char **argv, bool *help)
{
	int c;

	opterr = 1;
	while ((c = getopt_long(argc, argv, "c:s:hV", options, NULL)) != -1) {
		switch (c) {
		case 'c':
			g->config = optarg;
			break;
		case 's':
			g->socket = optarg;
			break;
		case OPT_JSON:
			g->json = true;
			break;
		case OPT_TIMEOUT:
			if (parse_timeout(g, optarg))
				return -1;
			break;
		case 'h':
			*help = true;
			break;
		case 'V':
			printf("gwctl %s\n", GW_VERSION);
			return 1;
		case OPT_DRY_RUN:
			g->dry_run = true;
			break;
		case OPT_ALLOW_EMPTY:
			g->allow_empty = true;
			break;
		case OPT_CURVE:
			g->curve = true;
			break;
		case OPT_OUT:
			g->out = optarg;
			break;
		case OPT_FORCE:
			g->force = true;
			break;
		case OPT_MOVE_AIPS:
			g->move_allowed_ips = true;
			break;
		default:
			return -1;
		}
	}
	return 0;
}

/* Command-specific options given to another command are usage errors. */
static int check_option_scope(const struct gwctl *g, const char *cmd)
{
	if ((g->dry_run || g->allow_empty) && strcmp(cmd, "apply")) {
		gwctl_err("--dry-run and --allow-empty belong to 'apply'");
		return -1;
	}
	if ((g->curve || g->out) && strcmp(cmd, "genkey")) {
		gwctl_err("--curve and --out belong to 'genkey'");
		return -1;
	}
	if (g->move_allowed_ips && strcmp(cmd, "peer")) {
		gwctl_err("--move-allowed-ips belongs to 'peer add' and 'peer set'");
		return -1;
	}
	if (g->force && strcmp(cmd, "role")) {
		gwctl_err("--force belongs to 'role'");
		return -1;
	}
	if (g->out && !g->curve) {
		gwctl_err("genkey: --out needs --curve");
		return -1;
	}
	return 0;
}

static int run_help(int argc, char **argv)
{
	if (argc > 1) {
		gwctl_err("help: one topic at most");
		return gwctl_usage_error(NULL);
	}
	if (!gwctl_help(stdout, argc ? argv[0] : NULL)) {
		gwctl_err("help: no command '%s'", argv[0]);
		return gwctl_usage_error(NULL);
	}
	return GWCTL_EXIT_OK;
}

int main(int argc, char **argv)
{
	struct gwctl g = {.timeout_ms = GWCTL_TIMEOUT_DEFAULT_MS};
	bool help = false;
	int rc;

	rc = parse_options(&g, argc, argv, &help);
	if (rc)
		return rc > 0 ? GWCTL_EXIT_OK : gwctl_usage_error(NULL);
	argc -= optind;
	argv += optind;
	if (argc && !strcmp(argv[0], "help"))
		return run_help(argc - 1, argv + 1);
	if (help) /* "gwctl peer add --help": the command's part */
		return run_help(argc ? 1 : 0, argv);
	if (!argc) {
		gwctl_err("no command");
		return gwctl_usage_error(NULL);
	}
	if (gw_crypto_init()) {
		gwctl_err("cannot initialise libsodium");
		return GWCTL_EXIT_FAILED;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		if (strcmp(argv[0], commands[i].name))
			continue;
		if (check_option_scope(&g, argv[0]))
			return gwctl_usage_error(commands[i].topic);
		return commands[i].fn(&g, argc - 1, argv + 1);
	}
	gwctl_err("unknown command '%s'", argv[0]);
	return gwctl_usage_error(NULL);
}
