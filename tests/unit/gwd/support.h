/* SPDX-License-Identifier: MIT */
/*
 * What the gwd unit tests share: gwd devices in memory on one fake clock,
 * their UDP datagrams carried by an in-memory pipe (no sockets, no TUN).
 *
 *   rig_init()                 crypto, logging, a fake clock and a loop on it
 *   rig_device_new()           a device on that loop with the caller's send
 *                              and deliver, binds that always succeed
 *   rig_dev_set(), rig_hex()   UAPI set bodies applied directly, hex keys
 *   rig_run_ms()               time passing in 10 ms steps, timers fired,
 *                              the caller's pump run after each step
 *
 * On top, the pair used by most tests: rig_pair_setup() makes node 0 at
 * 192.0.2.1:51820 and node 1 at 192.0.2.2:51821 with fresh keys (not peers
 * of each other yet); what one sends to the other's address is queued and
 * delivered by rig_pump(). A test sees each datagram sent (hooks.sent; false
 * drops it) and each packet written to a TUN (hooks.tun), and may refuse
 * binds (hooks.bind_prepare). Single-threaded, one test at a time.
 */
#ifndef GWD_TEST_SUPPORT_H
#define GWD_TEST_SUPPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "device.h"
#include "gw/clock.h"
#include "gw/key.h"
#include "gw/log.h"
#include "gw/loop.h"

enum {
	RIG_NODES = 2,
	RIG_DGRAM_MAX = 1600,
	RIG_QUEUE = 512,
	RIG_STEP_MS = 10,
	RIG_DEFAULT_PORT = 40000, /* what a bind to port 0 gets */
};

extern struct gw_fake_clock rig_fc;
extern struct gw_loop *rig_loop;

/* Crypto, logging at level, rig_fc at 1000 s (Unix time 1700000000) and rig_loop on it. */
void rig_init(enum gw_log_level level);
/* Frees rig_loop. */
void rig_fini(void);

typedef int rig_send_fn(void *arg, const union gw_sockaddr *to, struct gwd_src *src,
			const void *buf, size_t len);
typedef int rig_deliver_fn(void *arg, const void *pkt, size_t len);
/* A device on rig_loop; binds get the port asked for (RIG_DEFAULT_PORT for 0). */
void rig_device_new(struct gwd_device **dev, rig_send_fn *send, rig_deliver_fn *deliver, void *arg);

/* Parses and applies a set body: the apply result, or the parse error. */
__attribute__((format(printf, 2, 3))) int rig_dev_set(struct gwd_device *dev, const char *fmt, ...);
/* The same, asserting success. */
__attribute__((format(printf, 2, 3))) void rig_dev_set_ok(struct gwd_device *dev, const char *fmt,
							  ...);
/* A key in hex, in one of 4 rotating static buffers (4 may be used in one call). */
const char *rig_hex(const uint8_t k[static GW_KEY_LEN]);
/* The get=1 answer as a string (caller frees). */
char *rig_get(struct gwd_device *dev);

/* rig_loop's time passes by ms in RIG_STEP_MS steps: timers fire, then pump() runs. */
void rig_run_ms_with(uint64_t ms, void (*pump)(void));

/* --- The pair ---------------------------------------------------------------------- */

struct rig_node {
	struct gwd_device *dev;
	union gw_sockaddr addr;
	uint8_t priv[GW_KEY_LEN], pub[GW_KEY_LEN];
	char priv_hex[GW_KEY_HEX_LEN + 1], pub_hex[GW_KEY_HEX_LEN + 1];
	size_t ntun; /* packets written to its TUN */
};

struct rig_hooks {
	/* A datagram node i sends, before it is queued; false drops it. */
	bool (*sent)(int i, const union gw_sockaddr *to, const void *buf, size_t len);
	/* A packet node i writes to its TUN. */
	void (*tun)(int i, const void *pkt, size_t len);
	/* A bind of node i: 0 and *bound, or -errno. NULL: always bound as asked. */
	int (*bind_prepare)(int i, uint16_t port, uint16_t *bound);
	void (*bind_finish)(int i, bool commit);
};

extern struct rig_node rig_nodes[RIG_NODES];

/* rig_init() and the two nodes; hooks may be NULL, and is not copied. */
void rig_pair_setup(const struct rig_hooks *hooks, enum gw_log_level level);
void rig_pair_teardown(void);
/* Delivers every datagram in flight, those sent in reaction included. */
void rig_pump(void);
/* One datagram to node i, as if from `from`. */
void rig_deliver(int i, const union gw_sockaddr *from, const void *buf, size_t len);
/* rig_run_ms_with(ms, rig_pump). */
void rig_run_ms(uint64_t ms);
/* rig_dev_set() on node i. */
__attribute__((format(printf, 2, 3))) int rig_set(int i, const char *fmt, ...);
__attribute__((format(printf, 2, 3))) void rig_set_ok(int i, const char *fmt, ...);

#endif
