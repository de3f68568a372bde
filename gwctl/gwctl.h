/* SPDX-License-Identifier: MIT */
/*
 * gwctl: the operator CLI. One file per command family; the control socket
 * client in ctl.c. Every command returns an exit status (enum gwctl_exit)
 * and prints its own one-line errors on stderr.
 */
#ifndef GWCTL_H
#define GWCTL_H

#include <stdbool.h>
#include <stdio.h>

#include "gwcluster.pb-c.h"

enum gwctl_exit {
	GWCTL_EXIT_OK = 0,
	GWCTL_EXIT_FAILED = 1,	    /* syncd refused or failed the operation */
	GWCTL_EXIT_USAGE = 2,	    /* bad command line or bad input */
	GWCTL_EXIT_UNREACHABLE = 3, /* no control socket, no answer in time */
};

enum {
	GWCTL_TIMEOUT_DEFAULT_MS = 5000,
	GWCTL_TIMEOUT_MAX_MS = 3600000,
	GWCTL_PROTO_VERSION = 1, /* CtlRequest.version */
};

#define GWCTL_DEFAULT_CONFIG  "/etc/gwcluster/cluster.conf"
#define GWCTL_DEFAULT_CTL_DIR "/run/gwcluster"

struct gwctl {
	const char *config; /* -c */
	const char *socket; /* -s, or resolved from the config */
	bool json;
	int timeout_ms;
	bool dry_run, allow_empty; /* apply */
	bool curve;		   /* genkey */
	const char *out;	   /* genkey --curve --out PREFIX */
	bool force;		   /* role master|claim --force */
	bool move_allowed_ips;	   /* peer add|set --move-allowed-ips */
	char socket_buf[108];
};

__attribute__((format(printf, 1, 2))) void gwctl_err(const char *fmt, ...);

/*
 * Sends req to syncd and waits (bounded) for the answer. 0 with *resp set,
 * whatever resp->error says; otherwise an exit status, the error printed.
 */
int gwctl_call(struct gwctl *g, Gwcluster__CtlRequest *req, Gwcluster__CtlResponse **resp);
/* Prints "gwctl: what: <syncd's message>" and returns GWCTL_EXIT_FAILED. */
int gwctl_fail(const char *what, const Gwcluster__CtlResponse *resp);

int gwctl_cmd_peer(struct gwctl *g, int argc, char **argv);
int gwctl_cmd_apply(struct gwctl *g, int argc, char **argv);
int gwctl_cmd_status(struct gwctl *g, int argc, char **argv);
int gwctl_cmd_role(struct gwctl *g, int argc, char **argv);
int gwctl_cmd_genkey(struct gwctl *g, int argc, char **argv);
int gwctl_cmd_pubkey(struct gwctl *g, int argc, char **argv);
int gwctl_cmd_curve_pubkey(struct gwctl *g, int argc, char **argv);

/* The whole manual (topic NULL) or one command's part; false: no such topic. */
bool gwctl_help(FILE *f, const char *topic);
/* "Try 'gwctl help CMD'." after a usage error; returns GWCTL_EXIT_USAGE. */
int gwctl_usage_error(const char *topic);

#endif
