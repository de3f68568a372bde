// SPDX-License-Identifier: MIT
/* The gwd unit tests' devices in memory (support.h). */
#include "support.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw/crypto.h"
#include "uapi.h"

struct gw_fake_clock rig_fc;
struct gw_loop *rig_loop;
struct rig_node rig_nodes[RIG_NODES];

void rig_init(enum gw_log_level level)
{
	cr_assert_eq(gw_crypto_init(), 0);
	gw_log_init("test", level, GW_LOG_STDERR);
	gw_fake_clock_init(&rig_fc, 1000 * GW_NSEC_PER_SEC, 1700000000);
	cr_assert_eq(gw_loop_new(&rig_loop, &rig_fc.clock), 0);
}

void rig_fini(void)
{
	gw_loop_free(rig_loop);
	rig_loop = NULL;
}

/* --- Devices ----------------------------------------------------------------------- */

static int plain_bind_prepare(void *arg, uint16_t port, uint32_t fwmark, uint16_t *bound)
{
	(void)arg;
	(void)fwmark;
	*bound = port ? port : RIG_DEFAULT_PORT;
	return 0;
}

static void plain_bind_finish(void *arg, bool commit)
{
	(void)arg;
	(void)commit;
}

static int plain_set_fwmark(void *arg, uint32_t fwmark)
{
	(void)arg;
	(void)fwmark;
	return 0;
}

static void device_new(struct gwd_device **dev, const struct gwd_net_ops *ops, void *arg)
{
	struct gwd_device_config cfg = {
	    .loop = rig_loop,
	    .net = ops,
	    .net_arg = arg,
	    .under_load_threshold = GWD_UNDER_LOAD_DEFAULT,
	};

	cr_assert_eq(gwd_device_new(dev, &cfg), 0);
}

/*
 * The ops of a device made by rig_device_new: one table per send/deliver
 * pair, kept for the test's life (a few at most).
 */
enum { OPS_MAX = 8 };

void rig_device_new(struct gwd_device **dev, rig_send_fn *send, rig_deliver_fn *deliver, void *arg)
{
	static struct gwd_net_ops ops[OPS_MAX];
	static size_t nops;
	size_t i;

	for (i = 0; i < nops; i++)
		if (ops[i].send == send && ops[i].deliver == deliver)
			break;
	if (i == nops) {
		cr_assert_lt(nops, OPS_MAX);
		ops[nops++] = (struct gwd_net_ops){
		    .send = send,
		    .deliver = deliver,
		    .bind_prepare = plain_bind_prepare,
		    .bind_finish = plain_bind_finish,
		    .set_fwmark = plain_set_fwmark,
		};
	}
	device_new(dev, &ops[i], arg);
}

__attribute__((format(printf, 3, 0))) static int vset(struct gwd_device *dev, bool must,
						      const char *fmt, va_list ap)
{
	char body[4096];
	struct gwd_uapi_set s;
	int len, err;

	len = vsnprintf(body, sizeof(body), fmt, ap);
	cr_assert(len >= 0 && (size_t)len < sizeof(body));
	err = gwd_uapi_set_parse(&s, body, (size_t)len, NULL);
	if (must)
		cr_assert_eq(err, 0, "%s", body);
	if (!err)
		err = gwd_uapi_apply(dev, &s);
	if (must)
		cr_assert_eq(err, 0, "apply: %d for %s", err, body);
	gwd_uapi_set_free(&s);
	return err;
}

int rig_dev_set(struct gwd_device *dev, const char *fmt, ...)
{
	va_list ap;
	int err;

	va_start(ap, fmt);
	err = vset(dev, false, fmt, ap);
	va_end(ap);
	return err;
}

void rig_dev_set_ok(struct gwd_device *dev, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vset(dev, true, fmt, ap);
	va_end(ap);
}

const char *rig_hex(const uint8_t k[static GW_KEY_LEN])
{
	static char buf[4][GW_KEY_HEX_LEN + 1];
	static unsigned n;

	gw_key_to_hex(buf[n % 4], k);
	return buf[n++ % 4];
}

char *rig_get(struct gwd_device *dev)
{
	struct gwd_uapi_buf b;
	char *s;

	gwd_uapi_buf_init(&b, 1 << 20);
	cr_assert_eq(gwd_uapi_get(dev, &b), 0);
	/* The buffer is not NUL-terminated: copy exactly len bytes. */
	s = malloc(b.len + 1);
	cr_assert_not_null(s);
	if (b.len)
		memcpy(s, b.data, b.len);
	s[b.len] = '\0';
	gwd_uapi_buf_free(&b);
	return s;
}

void rig_run_ms_with(uint64_t ms, void (*pump)(void))
{
	for (uint64_t t = 0; t < ms; t += RIG_STEP_MS) {
		gw_fake_clock_advance(&rig_fc, RIG_STEP_MS * GW_NSEC_PER_MSEC);
		gw_loop_run_timers(rig_loop);
		pump();
	}
}

/* --- The pair ---------------------------------------------------------------------- */

struct dgram {
	int to;
	union gw_sockaddr from;
	size_t len;
	uint8_t data[RIG_DGRAM_MAX];
};

static const struct rig_hooks *hooks;
static struct dgram queue[RIG_QUEUE];
static size_t qhead, qtail;

static int pair_send(void *arg, const union gw_sockaddr *to, struct gwd_src *src, const void *buf,
		     size_t len)
{
	struct rig_node *n = arg;
	int from = (int)(n - rig_nodes);

	(void)src;
	cr_assert_leq(len, RIG_DGRAM_MAX);
	if (hooks && hooks->sent && !hooks->sent(from, to, buf, len))
		return 0;
	for (int i = 0; i < RIG_NODES; i++) {
		struct dgram *d;

		if (!gw_sockaddr_equal(&rig_nodes[i].addr, to))
			continue;
		cr_assert_lt(qtail - qhead, RIG_QUEUE, "pipe overflow");
		d = &queue[qtail++ % RIG_QUEUE];
		d->to = i;
		d->from = n->addr;
		d->len = len;
		memcpy(d->data, buf, len);
	}
	return 0;
}

static int pair_deliver(void *arg, const void *pkt, size_t len)
{
	struct rig_node *n = arg;

	n->ntun++;
	if (hooks && hooks->tun)
		hooks->tun((int)(n - rig_nodes), pkt, len);
	return 0;
}

static int pair_bind_prepare(void *arg, uint16_t port, uint32_t fwmark, uint16_t *bound)
{
	struct rig_node *n = arg;

	if (hooks && hooks->bind_prepare)
		return hooks->bind_prepare((int)(n - rig_nodes), port, bound);
	return plain_bind_prepare(arg, port, fwmark, bound);
}

static void pair_bind_finish(void *arg, bool commit)
{
	struct rig_node *n = arg;

	if (hooks && hooks->bind_finish)
		hooks->bind_finish((int)(n - rig_nodes), commit);
}

static const struct gwd_net_ops pair_ops = {
    .send = pair_send,
    .deliver = pair_deliver,
    .bind_prepare = pair_bind_prepare,
    .bind_finish = pair_bind_finish,
    .set_fwmark = plain_set_fwmark,
};

void rig_pair_setup(const struct rig_hooks *h, enum gw_log_level level)
{
	rig_init(level);
	hooks = h;
	qhead = qtail = 0;
	for (int i = 0; i < RIG_NODES; i++) {
		struct rig_node *n = &rig_nodes[i];

		memset(n, 0, sizeof(*n));
		n->addr.in.sin_family = AF_INET;
		n->addr.in.sin_port = htons(51820 + i);
		n->addr.in.sin_addr.s_addr = htonl(0xc0000201 + i); /* 192.0.2.1, .2 */
		gw_x25519_generate(n->priv);
		cr_assert(gw_x25519_public(n->pub, n->priv));
		gw_key_to_hex(n->priv_hex, n->priv);
		gw_key_to_hex(n->pub_hex, n->pub);
		device_new(&n->dev, &pair_ops, n);
	}
}

void rig_pair_teardown(void)
{
	for (int i = 0; i < RIG_NODES; i++) {
		gwd_device_free(rig_nodes[i].dev);
		rig_nodes[i].dev = NULL;
	}
	hooks = NULL;
	rig_fini();
}

void rig_deliver(int i, const union gw_sockaddr *from, const void *buf, size_t len)
{
	static uint8_t copy[RIG_DGRAM_MAX];
	struct gwd_src local = {.family = AF_INET, .v4 = rig_nodes[i].addr.in.sin_addr};
	union gw_sockaddr f = *from;

	cr_assert_leq(len, RIG_DGRAM_MAX);
	memcpy(copy, buf, len); /* the device decrypts in place */
	gwd_device_receive(rig_nodes[i].dev, copy, len, &f, &local);
}

void rig_pump(void)
{
	while (qhead != qtail) {
		struct dgram *d = &queue[qhead++ % RIG_QUEUE];

		rig_deliver(d->to, &d->from, d->data, d->len);
	}
}

void rig_run_ms(uint64_t ms)
{
	rig_run_ms_with(ms, rig_pump);
}

int rig_set(int i, const char *fmt, ...)
{
	va_list ap;
	int err;

	va_start(ap, fmt);
	err = vset(rig_nodes[i].dev, false, fmt, ap);
	va_end(ap);
	return err;
}

void rig_set_ok(int i, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vset(rig_nodes[i].dev, true, fmt, ap);
	va_end(ap);
}
