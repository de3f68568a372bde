/* SPDX-License-Identifier: MIT */
/*
 * The protocol timers, end to end: two gwd devices on one fake clock, their
 * UDP sends captured into an in-memory pipe that delivers to the other, and
 * assertions on what each sends when (paper section 6).
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "device.h"
#include "gw/crypto.h"
#include "gw/key.h"
#include "gw/log.h"
#include "peer.h"
#include "support.h"
#include "uapi.h"

enum { SENT_MAX = 8192 };

struct sent {
	uint8_t type;
	uint32_t len;
	uint64_t at; /* ms since the test began */
};

/* What each node sent, and whether it is cut off. */
static struct {
	struct sent sent[SENT_MAX];
	size_t nsent;
	bool drop_out; /* black-hole everything this node sends */
} logs[RIG_NODES];
static uint64_t t0_ns;

static uint64_t now_ms(void)
{
	return (rig_fc.mono - t0_ns) / GW_NSEC_PER_MSEC;
}

static bool on_sent(int i, const union gw_sockaddr *to, const void *buf, size_t len)
{
	(void)to;
	cr_assert_lt(logs[i].nsent, SENT_MAX);
	logs[i].sent[logs[i].nsent++] =
	    (struct sent){((const uint8_t *)buf)[0], (uint32_t)len, now_ms()};
	return !logs[i].drop_out;
}

static const struct rig_hooks hooks = {.sent = on_sent};

/* A at 192.0.2.1:51820 (198.18.0.1), B at 192.0.2.2:51821 (198.18.0.2), peers of each other. */
static void setup(void)
{
	rig_pair_setup(&hooks, GW_LOG_WARN);
	t0_ns = rig_fc.mono;
	memset(logs, 0, sizeof(logs));
	for (int i = 0; i < RIG_NODES; i++)
		rig_set_ok(i,
			   "private_key=%s\nlisten_port=%d\npublic_key=%s\nendpoint=192.0.2.%d:%d\n"
			   "allowed_ip=198.18.0.%d/32\n",
			   rig_nodes[i].priv_hex, 51820 + i, rig_nodes[1 - i].pub_hex, 2 - i,
			   51821 - i, 2 - i);
}

static void teardown(void)
{
	rig_pair_teardown();
}

TestSuite(timers, .init = setup, .fini = teardown);

static struct gwd_peer *peer_of(int i)
{
	return rig_nodes[i].dev->peers_head;
}

/* An IPv4 packet from node i's inner address to the other's. */
static void send_ip(int i)
{
	uint8_t p[60] = {0x45, 0, 0, 60, 0, 0, 0, 0, 64, 1};

	p[12] = 198, p[13] = 18, p[14] = 0, p[15] = (uint8_t)(1 + i);
	p[16] = 198, p[17] = 18, p[18] = 0, p[19] = (uint8_t)(2 - i);
	gwd_device_xmit(rig_nodes[i].dev, p, sizeof(p));
	rig_pump();
}

static size_t count_type(int i, uint8_t type, uint64_t from_ms, uint64_t to_ms)
{
	size_t c = 0;

	for (size_t k = 0; k < logs[i].nsent; k++) {
		const struct sent *s = &logs[i].sent[k];

		c += s->type == type && s->at >= from_ms && s->at < to_ms;
	}
	return c;
}

static bool is_keepalive(const struct sent *s)
{
	return s->type == GWD_MESSAGE_DATA && s->len == GWD_MESSAGE_DATA_MIN_LEN;
}

/* A handshake initiated by A through a first packet; returns when both hold the session. */
static void establish(void)
{
	send_ip(0);
	cr_assert_not_null(peer_of(0)->noise.current, "initiator has a session");
	cr_assert_not_null(peer_of(1)->noise.current, "responder confirmed by the keepalive");
	cr_assert_eq(rig_nodes[1].ntun, 1, "the staged packet went through");
}

Test(timers, handshake_delivers_staged_packet)
{
	establish();
	cr_expect_eq(count_type(0, GWD_MESSAGE_HANDSHAKE_INITIATION, 0, 1), 1);
	cr_expect_eq(count_type(1, GWD_MESSAGE_HANDSHAKE_RESPONSE, 0, 1), 1);
	cr_expect_eq(peer_of(0)->stats[GWD_STAT_HANDSHAKES_COMPLETED], 1);
	cr_expect_eq(peer_of(1)->stats[GWD_STAT_HANDSHAKES_COMPLETED], 1);
	cr_expect_eq(peer_of(0)->nstaged, 0);
	cr_expect_neq(peer_of(0)->last_handshake.tv_sec, 0);
}

Test(timers, keepalive_after_receive_only)
{
	uint64_t start;
	size_t before;

	establish();
	/* B got data (the staged packet): its keepalive for that goes out at 10 s. */
	rig_run_ms(11000);
	cr_assert_eq(count_type(1, GWD_MESSAGE_DATA, 10000, 10001), 1);
	start = now_ms();
	before = logs[1].nsent;
	send_ip(0); /* B receives data and sends nothing back */
	rig_run_ms(9990);
	cr_expect_eq(logs[1].nsent, before, "B silent for 10 s");
	rig_run_ms(20);
	cr_assert_eq(logs[1].nsent, before + 1, "one keepalive at 10 s");
	cr_expect(is_keepalive(&logs[1].sent[before]));
	cr_expect_geq(logs[1].sent[before].at, start + 10000);
	cr_expect_leq(logs[1].sent[before].at, start + 10000 + RIG_STEP_MS);
	/* The keepalive counts as received at A, so A does not re-handshake. */
	rig_run_ms(30000);
	cr_expect_eq(count_type(0, GWD_MESSAGE_HANDSHAKE_INITIATION, start, now_ms() + 1), 0);
	cr_expect_eq(logs[1].nsent, before + 1, "no further keepalives");
}

Test(timers, retransmit_every_5s_then_give_up)
{
	uint64_t prev = 0;
	size_t n = 0;

	logs[0].drop_out = true;
	send_ip(0);
	cr_assert_eq(peer_of(0)->nstaged, 1);
	rig_run_ms(200 * 1000);
	for (size_t k = 0; k < logs[0].nsent; k++) {
		const struct sent *s = &logs[0].sent[k];

		if (s->type != GWD_MESSAGE_HANDSHAKE_INITIATION)
			continue;
		if (n > 0) {
			cr_expect_geq(s->at - prev, 5000, "retry %zu after %llu ms", n,
				      (unsigned long long)(s->at - prev));
			cr_expect_leq(
			    s->at - prev, 5000 + GWD_REKEY_TIMEOUT_JITTER_MAX_MS + RIG_STEP_MS,
			    "retry %zu after %llu ms", n, (unsigned long long)(s->at - prev));
		}
		prev = s->at;
		n++;
	}
	/* The first initiation and MAX_TIMER_HANDSHAKES + 1 retries, as the kernel. */
	cr_expect_eq(n, GWD_MAX_TIMER_HANDSHAKES + 2);
	cr_expect_leq(prev, 19 * (5000 + GWD_REKEY_TIMEOUT_JITTER_MAX_MS + RIG_STEP_MS));
	cr_expect_eq(peer_of(0)->nstaged, 0, "staged packets purged");
	cr_expect_eq(peer_of(0)->stats[GWD_STAT_HANDSHAKE_TIMEOUTS], 1);
	cr_expect_eq(peer_of(0)->stats[GWD_STAT_DROP_HANDSHAKE_TIMEOUT], 1);
	cr_expect(gw_timer_pending(&peer_of(0)->zero_key_material));
	/* A new packet starts over. */
	send_ip(0);
	cr_expect_eq(count_type(0, GWD_MESSAGE_HANDSHAKE_INITIATION, now_ms(), now_ms() + 1), 1);
}

Test(timers, new_handshake_when_data_unanswered)
{
	uint64_t start;
	size_t k;

	establish();
	rig_run_ms(1000);
	logs[1].drop_out = true;
	start = now_ms();
	send_ip(0);
	rig_run_ms(20000);
	for (k = 0; k < logs[0].nsent; k++)
		if (logs[0].sent[k].type == GWD_MESSAGE_HANDSHAKE_INITIATION &&
		    logs[0].sent[k].at >= start)
			break;
	cr_assert_lt(k, logs[0].nsent, "A re-initiates");
	cr_expect_geq(logs[0].sent[k].at - start, 15000);
	cr_expect_leq(logs[0].sent[k].at - start,
		      15000 + GWD_REKEY_TIMEOUT_JITTER_MAX_MS + RIG_STEP_MS);
}

Test(timers, rekey_after_120s_as_initiator)
{
	struct gwd_noise_keypair *first;
	uint64_t born = now_ms();
	size_t k;

	establish();
	first = peer_of(0)->noise.current;
	for (int s = 0; s < 130; s++) {
		send_ip(0);
		send_ip(1);
		rig_run_ms(1000);
	}
	for (k = 0; k < logs[0].nsent; k++)
		if (logs[0].sent[k].type == GWD_MESSAGE_HANDSHAKE_INITIATION &&
		    logs[0].sent[k].at > born)
			break;
	cr_assert_lt(k, logs[0].nsent, "initiator rekeyed");
	cr_expect_geq(logs[0].sent[k].at - born, 120 * 1000);
	cr_expect_leq(logs[0].sent[k].at - born, 121 * 1000);
	cr_expect_eq(count_type(1, GWD_MESSAGE_HANDSHAKE_INITIATION, 0, now_ms() + 1), 0,
		     "the responder does not rekey by time");
	cr_expect_neq(peer_of(0)->noise.current, first, "a new session is in use");
	cr_expect_eq(peer_of(0)->stats[GWD_STAT_HANDSHAKES_COMPLETED], 2);
	cr_expect_eq(rig_nodes[1].ntun, 131, "no packet lost across the rekey");
	cr_expect_eq(rig_nodes[0].ntun, 130);
}

static bool has_keys(int i)
{
	const struct gwd_noise_remote *r = &peer_of(i)->noise;

	return r->previous || r->current || r->next;
}

Test(timers, keys_zeroed_after_540s)
{
	establish();
	rig_run_ms(539 * 1000);
	cr_expect(has_keys(0));
	cr_expect(has_keys(1));
	rig_run_ms(1000 + RIG_STEP_MS);
	cr_expect_not(has_keys(0));
	cr_expect_not(has_keys(1));
	cr_expect_eq(rig_nodes[0].dev->index.count, 0, "indexes freed");
	cr_expect_eq(rig_nodes[1].dev->index.count, 0, "indexes freed");
	/* After B's keepalive for the staged packet (at 10 s), silence: zeroing sends nothing. */
	cr_expect_eq(count_type(1, GWD_MESSAGE_DATA, 10000, 10001), 1);
	cr_expect_eq(count_type(0, GWD_MESSAGE_DATA, 1000, now_ms() + 1), 0);
	cr_expect_eq(count_type(1, GWD_MESSAGE_DATA, 10001, now_ms() + 1), 0);
}

Test(timers, persistent_keepalive_cadence)
{
	char pub[GW_KEY_HEX_LEN + 1];
	uint64_t prev = 0;
	size_t n = 0;

	gw_key_to_hex(pub, rig_nodes[1].pub);
	rig_set_ok(0, "public_key=%s\npersistent_keepalive_interval=25\n", pub);
	rig_pump();
	cr_assert_not_null(peer_of(0)->noise.current, "turning it on sends a keepalive at once");
	rig_run_ms(110 * 1000);
	for (size_t k = 0; k < logs[0].nsent; k++) {
		const struct sent *s = &logs[0].sent[k];

		if (!is_keepalive(s))
			continue;
		if (n > 0)
			cr_expect_eq(s->at - prev, 25000, "keepalive %zu after %llu ms", n,
				     (unsigned long long)(s->at - prev));
		prev = s->at;
		n++;
	}
	cr_expect_eq(n, 5, "at 0, 25, 50, 75 and 100 s");
	cr_expect_eq(count_type(1, GWD_MESSAGE_DATA, 1, now_ms() + 1), 0,
		     "keepalives are not answered");
	/* Off again: no more. */
	rig_set_ok(0, "public_key=%s\npersistent_keepalive_interval=0\n", pub);
	rig_run_ms(60 * 1000);
	cr_expect_eq(count_type(0, GWD_MESSAGE_DATA, 110 * 1000, now_ms() + 1), 0);
}

Test(timers, initiator_rekeys_on_receive_near_reject_time)
{
	establish();
	rig_run_ms(160 * 1000);
	/* At 160 s the keypair is not yet within KEEPALIVE + REKEY_TIMEOUT of 180 s. */
	send_ip(1);
	cr_expect_eq(count_type(0, GWD_MESSAGE_HANDSHAKE_INITIATION, 1, now_ms() + 1), 0);
	rig_run_ms(6000);
	cr_expect_eq(count_type(0, GWD_MESSAGE_HANDSHAKE_INITIATION, 1, now_ms() + 1), 0,
		     "A's keepalive at 170 s is still to come");
	send_ip(1); /* at 166 s: receiving makes A rekey at once */
	cr_expect_eq(count_type(0, GWD_MESSAGE_HANDSHAKE_INITIATION, now_ms(), now_ms() + 1), 1);
	cr_expect_eq(peer_of(0)->stats[GWD_STAT_HANDSHAKES_COMPLETED], 2);
	cr_expect_eq(rig_nodes[0].ntun, 2);
}
