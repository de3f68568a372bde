/* SPDX-License-Identifier: MIT */
/*
 * The protocol's timers (paper section 6), as event handlers on a peer. The
 * send and receive paths report events; the handlers arm and cancel the
 * peer's gw_timers, whose expiry sends keepalives and handshakes:
 *
 *   event                            effect
 *   data sent                        arm new_handshake (15 s + jitter) unless armed
 *   data received                    arm send_keepalive (10 s) unless armed,
 *                                    else remember that another one is needed
 *   any authenticated packet sent    cancel send_keepalive
 *   any authenticated packet rcvd    cancel new_handshake
 *   any authenticated packet either  re-arm persistent_keepalive (if configured)
 *   handshake initiated              arm retransmit_handshake (5 s + jitter)
 *   handshake complete               cancel retransmit_handshake, reset attempts
 *   session derived                  arm zero_key_material (540 s)
 *
 *   expiry of                        does
 *   retransmit_handshake             resend the initiation, up to
 *                                    MAX_TIMER_HANDSHAKES + 2 sends; then give up:
 *                                    drop staged packets, arm zero_key_material
 *   send_keepalive                   send a keepalive (again in 10 s if needed)
 *   new_handshake                    initiate a handshake
 *   zero_key_material                drop the handshake and all keypairs
 *   persistent_keepalive             send a keepalive
 *
 * "Jitter" is up to GWD_REKEY_TIMEOUT_JITTER_MAX_MS, random per arming.
 */
#ifndef GWD_TIMERS_H
#define GWD_TIMERS_H

struct gwd_peer;

/* Sets up the peer's timers, all idle. */
void gwd_timers_init(struct gwd_peer *peer);
/* Cancels them all (before the peer is freed). */
void gwd_timers_stop(struct gwd_peer *peer);

/* After a data packet (not a keepalive) was encrypted and sent. */
void gwd_timers_data_sent(struct gwd_peer *peer);
/* After a data packet (not a keepalive) was authenticated and accepted. */
void gwd_timers_data_received(struct gwd_peer *peer);
/* After any authenticated packet (data, keepalive, handshake) was sent. */
void gwd_timers_any_authenticated_packet_sent(struct gwd_peer *peer);
/* After any authenticated packet was received. */
void gwd_timers_any_authenticated_packet_received(struct gwd_peer *peer);
/* After an initiation was sent. */
void gwd_timers_handshake_initiated(struct gwd_peer *peer);
/* After a handshake completed (response consumed, or first data under our response's keypair). */
void gwd_timers_handshake_complete(struct gwd_peer *peer);
/* After a keypair was derived (either role). */
void gwd_timers_session_derived(struct gwd_peer *peer);
/* After any authenticated packet was sent or received. */
void gwd_timers_any_authenticated_packet_traversal(struct gwd_peer *peer);
/* The persistent keepalive interval changed: re-arm or cancel. */
void gwd_timers_persistent_keepalive_changed(struct gwd_peer *peer);

#endif
