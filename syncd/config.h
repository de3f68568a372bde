/* SPDX-License-Identifier: MIT */
/*
 * cluster.conf: one [Cluster] section describing this node and one [Member]
 * section per node of the cluster (this node included). The reference with
 * every key and an example is docs/config.md.
 *
 * Loading either yields a complete, checked configuration or an error
 * "FILE:LINE: message" (or "FILE: message" for what no line can be blamed
 * for), so a daemon can refuse to start before touching anything.
 */
#ifndef SYNCD_CONFIG_H
#define SYNCD_CONFIG_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gw/log.h"
#include "transport.h"

enum syncd_mode {
	SYNCD_MODE_VRRP,
	SYNCD_MODE_ANYCAST,
};

enum {
	SYNCD_CLUSTER_NAME_MAX = 63, /* bytes of Name, [A-Za-z0-9._-] */
	SYNCD_IFNAME_MAX = 15,	     /* IFNAMSIZ - 1 */
	SYNCD_CTL_PATH_MAX = 107,    /* sun_path minus the NUL */
	SYNCD_DIR_PATH_MAX = 1023,
	SYNCD_HEARTBEAT_MS_DEFAULT = 100,
	SYNCD_HEARTBEAT_MS_MIN = 10,
	SYNCD_HEARTBEAT_MS_MAX = 60000,
	SYNCD_PEER_DEAD_HEARTBEATS = 10, /* PeerDeadMs defaults to this many heartbeats */
	SYNCD_LOG_RETAIN_DEFAULT = 100000,
	SYNCD_LOG_RETAIN_MIN = 100,
	SYNCD_LOG_RETAIN_MAX = 100000000,
	SYNCD_CONFIG_ERR_LEN = 1400,	 /* fits a path of SYNCD_DIR_PATH_MAX and a message */
	SYNCD_KEEPALIVED_NAME_MAX = 127, /* = SYNCD_KAFIFO_NAME_MAX */
};

#define SYNCD_DEFAULT_CONFIG	"/etc/gwcluster/cluster.conf"
#define SYNCD_DEFAULT_STATE_DIR "/var/lib/gwcluster" /* + "/IFNAME" */
#define SYNCD_DEFAULT_CTL_DIR	"/run/gwcluster"     /* + "/IFNAME.ctl" */
/* + "/IFNAME.sessions": where gwd binds its session socket by default. */
#define SYNCD_DEFAULT_SESSION_DIR "/run/gwcluster"

struct syncd_config {
	char cluster[SYNCD_CLUSTER_NAME_MAX + 1];
	uint8_t node_id;
	char ifname[SYNCD_IFNAME_MAX + 1];
	enum syncd_mode mode;
	char state_dir[SYNCD_DIR_PATH_MAX + 1];
	char control_socket[SYNCD_CTL_PATH_MAX + 1];
	char secret_key_file[SYNCD_DIR_PATH_MAX + 1];
	/* gwd's session socket; empty: SessionSocket = off, no session relay. */
	char session_socket[SYNCD_CTL_PATH_MAX + 1];
	/* keepalived's track_file (relay.h: enum syncd_ready); empty: none. */
	char synced_file[SYNCD_DIR_PATH_MAX + 1];
	/*
	 * keepalived's notify_fifo, followed by syncd (kafifo.h); empty: none
	 * (ha-hooks/gwcluster-notify, or nothing, passes the role on). The
	 * instance or group followed: keepalived_name (empty: every instance).
	 */
	char keepalived_fifo[SYNCD_DIR_PATH_MAX + 1];
	char keepalived_name[SYNCD_KEEPALIVED_NAME_MAX + 1];
	bool keepalived_group;
	/* SYNCD_CURVE_KEY_LEN bytes in gw_secret_alloc() memory, wiped on free. */
	uint8_t *curve_secret;
	char bind_host[64]; /* empty: bind on this member's own address */
	char metrics[64];   /* the /metrics listener, "IP:PORT"; empty: none */
	unsigned heartbeat_ms;
	unsigned peer_dead_ms;
	unsigned log_retain; /* own updates kept for gap repair */
	enum gw_log_level log_level;
	struct syncd_member members[SYNCD_MAX_MEMBERS]; /* in file order */
	unsigned n_members;
	unsigned self; /* index of this node in members[] */
};

/*
 * Parses and checks path, then reads and checks the Curve secret key file.
 * 0 with *out set, or -errno with a one-line message in err (never NULL
 * there; errlen >= 1) and *out NULL. Free with syncd_config_free().
 */
int syncd_config_load(struct syncd_config **out, const char *path, char *err, size_t errlen);
/* Wipes the secret key; NULL is ignored. */
void syncd_config_free(struct syncd_config *cfg);
/* The member with that node id, or NULL. */
const struct syncd_member *syncd_config_member(const struct syncd_config *cfg, uint8_t node_id);
const char *syncd_mode_name(enum syncd_mode mode);

#endif
