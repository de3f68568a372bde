/* SPDX-License-Identifier: MIT */
/*
 * What the syncd unit tests share: a real UAPI daemon in a private network
 * namespace, wireguard-go by default (independent of gwd), GW_APPLY_DAEMON=
 * path/to/gwd for gwd (same command line, same UAPI), or a binary the test
 * names. Its socket is /var/run/wireguard/<wgd_if>.sock; `wg` (wireguard-
 * tools) reads and changes what it holds. The daemon dies with the test
 * process (PR_SET_PDEATHSIG), so a crashed test leaves none behind.
 */
#ifndef SYNCD_TEST_SUPPORT_H
#define SYNCD_TEST_SUPPORT_H

#include <stddef.h>
#include <sys/types.h>

extern pid_t wgd_pid;	/* 0: not running */
extern char wgd_if[16]; /* the interface: PREFIX and this process's pid */

/*
 * Enters a new network namespace (skips the test without root), initialises
 * crypto and names the interface PREFIX<pid>.
 */
void wgd_setup(const char *prefix);
/* Starts bin (NULL: GW_APPLY_DAEMON, else wireguard-go) and waits for its socket, 5 s at most. */
void wgd_start(const char *bin);
/* SIGKILL (a crash); the socket it leaves is removed. No-op when not running. */
void wgd_kill(void);
/* SIGTERM, SIGKILL after 3 s; the socket is removed. No-op when not running. */
void wgd_term(void);
/* SIGSTOP, waiting until every thread stopped (1 s at most): a hung daemon. */
void wgd_pause(void);
/* SIGCONT. */
void wgd_resume(void);

/* /var/run/wireguard/IFNAME.sock */
void wgd_sock_path(char *out, size_t len, const char *ifname);
/* `wg set <wgd_if> ARGS`, asserting success. */
void wgd_wg_set(const char *args);
/* Sorts the comma-separated list s in place (allowed IPs as wg prints them). */
void wgd_sort_list(char *s);
/* strcmp on two char * (for qsort). */
int wgd_strcmp_p(const void *a, const void *b);

#endif
