// SPDX-License-Identifier: MIT
/*
 * Timer events and expiries; the table in timers.h is the contract. The
 * behaviour follows the paper's section 6 and the Linux implementation: the
 * same events arm and cancel the same timers, with the same jitter.
 */
#include "timers.h"

#include "gw/crypto.h"
#include "gw/log.h"
#include "packet.h"
#include "peer.h"

/*
 * Timer jitter only spreads handshakes apart; it protects no secret. A
 * splitmix64 sequence seeded once from the system's random source costs a
 * few instructions where a getrandom(2) per draw cost a system call: the
 * new-handshake timer is re-armed after every received-then-sent turn of a
 * busy two-way flow. Timers run on the device's loop thread only.
 */
static uint64_t jitter_state;
static bool jitter_seeded;

static uint64_t jitter_ns(void)
{
	uint64_t z;

	if (!jitter_seeded) {
		gw_random_bytes(&jitter_state, sizeof(jitter_state));
		jitter_seeded = true;
	}
	z = (jitter_state += UINT64_C(0x9e3779b97f4a7c15));
	z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
	z ^= z >> 31;
	/* Uniform in [0, max): the high 32 bits scaled (bias below 2^-32 * max). */
	return ((z >> 32) * (uint64_t)GWD_MSEC_NS(GWD_REKEY_TIMEOUT_JITTER_MAX_MS)) >> 32;
}

static struct gw_loop *loop_of(const struct gwd_peer *peer)
{
	return peer->dev->loop;
}

static void arm(struct gwd_peer *peer, struct gw_timer *t, uint64_t delay_ns)
{
	/* -ENOMEM only when the timer heap cannot grow: the timer is then lost. */
	if (gw_timer_arm_in(loop_of(peer), t, delay_ns) < 0)
		gw_err("gwd: peer %s: cannot arm a timer: out of memory", peer->name);
}

static void arm_if_idle(struct gwd_peer *peer, struct gw_timer *t, uint64_t delay_ns)
{
	if (!gw_timer_pending(t))
		arm(peer, t, delay_ns);
}

static void expired_retransmit_handshake(struct gw_loop *loop, struct gw_timer *t, void *arg)
{
	struct gwd_peer *peer = arg;

	(void)loop;
	(void)t;
	if (peer->handshake_attempts > GWD_MAX_TIMER_HANDSHAKES) {
		gw_info("gwd: peer %s: handshake did not complete after %u attempts, giving up",
			peer->name, peer->handshake_attempts + 1);
		gwd_stat_inc(peer->dev, peer, GWD_STAT_HANDSHAKE_TIMEOUTS);
		gw_timer_cancel(loop_of(peer), &peer->send_keepalive);
		gwd_peer_purge_staged(peer, GWD_STAT_DROP_HANDSHAKE_TIMEOUT);
		/* Nothing will renew the keys: make sure they are dropped in time. */
		arm_if_idle(peer, &peer->zero_key_material, GWD_SEC_NS(GWD_REJECT_AFTER_TIME * 3));
		return;
	}
	peer->handshake_attempts++;
	gw_dbg("gwd: peer %s: handshake did not complete after %d seconds, retrying (try %u)",
	       peer->name, GWD_REKEY_TIMEOUT, peer->handshake_attempts + 1);
	/*
	 * Unlike the kernel, the local address stays pinned: replies must keep
	 * leaving from the address the peer used (a cluster VIP), and
	 * gwd_udp_send() already falls back when that address is gone.
	 */
	gwd_send_handshake_initiation(peer, true);
}

static void expired_send_keepalive(struct gw_loop *loop, struct gw_timer *t, void *arg)
{
	struct gwd_peer *peer = arg;

	(void)loop;
	(void)t;
	gwd_send_keepalive(peer);
	if (peer->need_another_keepalive) {
		peer->need_another_keepalive = false;
		arm(peer, &peer->send_keepalive, GWD_SEC_NS(GWD_KEEPALIVE_TIMEOUT));
	}
}

static void expired_new_handshake(struct gw_loop *loop, struct gw_timer *t, void *arg)
{
	struct gwd_peer *peer = arg;

	(void)loop;
	(void)t;
	gw_dbg("gwd: peer %s: sent data but received nothing for %d seconds, new handshake",
	       peer->name, GWD_KEEPALIVE_TIMEOUT + GWD_REKEY_TIMEOUT);
	gwd_send_handshake_initiation(peer, false);
}

static void expired_zero_key_material(struct gw_loop *loop, struct gw_timer *t, void *arg)
{
	struct gwd_peer *peer = arg;

	(void)loop;
	(void)t;
	gw_dbg("gwd: peer %s: zeroing keys after %d seconds without a new session", peer->name,
	       GWD_REJECT_AFTER_TIME * 3);
	gwd_peer_clear_sessions(peer);
}

static void expired_persistent_keepalive(struct gw_loop *loop, struct gw_timer *t, void *arg)
{
	struct gwd_peer *peer = arg;

	(void)loop;
	(void)t;
	if (peer->persistent_keepalive)
		gwd_send_keepalive(peer);
}

void gwd_timers_init(struct gwd_peer *peer)
{
	gw_timer_init(&peer->retransmit_handshake, expired_retransmit_handshake, peer);
	gw_timer_init(&peer->send_keepalive, expired_send_keepalive, peer);
	gw_timer_init(&peer->new_handshake, expired_new_handshake, peer);
	gw_timer_init(&peer->zero_key_material, expired_zero_key_material, peer);
	gw_timer_init(&peer->persistent_keepalive_timer, expired_persistent_keepalive, peer);
	peer->handshake_attempts = 0;
	peer->need_another_keepalive = false;
	peer->sent_lastminute_handshake = false;
}

void gwd_timers_stop(struct gwd_peer *peer)
{
	struct gw_loop *loop = loop_of(peer);

	gw_timer_cancel(loop, &peer->retransmit_handshake);
	gw_timer_cancel(loop, &peer->send_keepalive);
	gw_timer_cancel(loop, &peer->new_handshake);
	gw_timer_cancel(loop, &peer->zero_key_material);
	gw_timer_cancel(loop, &peer->persistent_keepalive_timer);
}

void gwd_timers_data_sent(struct gwd_peer *peer)
{
	/*
	 * Called for every data packet sent: the jitter (a getrandom(2) call)
	 * is drawn only when the timer is actually armed, not per packet.
	 */
	if (gw_timer_pending(&peer->new_handshake))
		return;
	arm(peer, &peer->new_handshake,
	    GWD_SEC_NS(GWD_KEEPALIVE_TIMEOUT + GWD_REKEY_TIMEOUT) + jitter_ns());
}

void gwd_timers_data_received(struct gwd_peer *peer)
{
	if (!gw_timer_pending(&peer->send_keepalive))
		arm(peer, &peer->send_keepalive, GWD_SEC_NS(GWD_KEEPALIVE_TIMEOUT));
	else
		peer->need_another_keepalive = true;
}

void gwd_timers_any_authenticated_packet_sent(struct gwd_peer *peer)
{
	gw_timer_cancel(loop_of(peer), &peer->send_keepalive);
}

void gwd_timers_any_authenticated_packet_received(struct gwd_peer *peer)
{
	gw_timer_cancel(loop_of(peer), &peer->new_handshake);
}

void gwd_timers_handshake_initiated(struct gwd_peer *peer)
{
	arm(peer, &peer->retransmit_handshake, GWD_SEC_NS(GWD_REKEY_TIMEOUT) + jitter_ns());
}

void gwd_timers_handshake_complete(struct gwd_peer *peer)
{
	gw_timer_cancel(loop_of(peer), &peer->retransmit_handshake);
	peer->handshake_attempts = 0;
	peer->sent_lastminute_handshake = false;
	gw_clock_real(peer->dev->clock, &peer->last_handshake);
}

void gwd_timers_session_derived(struct gwd_peer *peer)
{
	arm(peer, &peer->zero_key_material, GWD_SEC_NS(GWD_REJECT_AFTER_TIME * 3));
}

void gwd_timers_any_authenticated_packet_traversal(struct gwd_peer *peer)
{
	if (peer->persistent_keepalive)
		arm(peer, &peer->persistent_keepalive_timer,
		    GWD_SEC_NS(peer->persistent_keepalive));
}

void gwd_timers_persistent_keepalive_changed(struct gwd_peer *peer)
{
	if (peer->persistent_keepalive)
		arm(peer, &peer->persistent_keepalive_timer,
		    GWD_SEC_NS(peer->persistent_keepalive));
	else
		gw_timer_cancel(loop_of(peer), &peer->persistent_keepalive_timer);
}
