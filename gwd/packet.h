/* SPDX-License-Identifier: MIT */
/*
 * Sending on behalf of a peer (send.c). Every function here builds the
 * datagram in the device's send buffer and leaves through the device's
 * net.send hook; none blocks or allocates per packet.
 */
#ifndef GWD_PACKET_H
#define GWD_PACKET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct gwd_peer;

/*
 * Sends an initiation unless one went out less than REKEY_TIMEOUT ago.
 * is_retry: a retransmission (keeps counting attempts); otherwise the count
 * restarts.
 */
void gwd_send_handshake_initiation(struct gwd_peer *peer, bool is_retry);
/* Answers the peer's consumed initiation and derives the responder's keypair. */
void gwd_send_handshake_response(struct gwd_peer *peer);
/* An empty data packet, or the staged packets if there are any (they serve as well). */
void gwd_send_keepalive(struct gwd_peer *peer);
/* Sends the staged packets with the current keypair, or starts a handshake for them. */
void gwd_send_staged(struct gwd_peer *peer);
/* Sends one IP packet to the peer, or stages it and starts a handshake. */
void gwd_send_packet(struct gwd_peer *peer, const uint8_t *pkt, size_t len);

/*
 * Bytes of padding after a plaintext of len bytes: up to a multiple of 16,
 * but never beyond mtu (a packet already over the mtu is not padded).
 */
size_t gwd_padding_len(size_t len, uint32_t mtu);

#endif
