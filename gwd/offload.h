/* SPDX-License-Identifier: MIT */
/*
 * TCP segmentation and coalescing for a TUN opened with IFF_VNET_HDR and
 * TUNSETOFFLOAD (TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6), after the virtio
 * net header the kernel puts before every packet:
 *
 * - outbound: the kernel hands over TCP super-packets up to 64 KiB (one
 *   read instead of ~45) and packets whose checksum is left to us.
 *   gwd_offload_split() cuts a super-packet into MTU-sized segments (IP
 *   length and identification, TCP sequence and flags, both checksums
 *   computed in full) and completes a partial checksum, so what goes into
 *   the tunnel is exactly what the kernel would have put on a wire;
 * - inbound: gwd_gro_add() joins consecutive in-order segments of one TCP
 *   flow (same addresses, ports, options, ACK and window, each verified)
 *   into one super-packet written with a GSO header (one write, and one
 *   pass up the stack, instead of ~45); anything else is written alone.
 *
 * Pure packet work on caller buffers; no system calls, no allocation after
 * gwd_gro_init(). Single-threaded like the rest of the device.
 */
#ifndef GWD_OFFLOAD_H
#define GWD_OFFLOAD_H

#include <linux/virtio_net.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum {
	GWD_VNET_HDR_LEN = sizeof(struct virtio_net_hdr),
	/* Flows coalesced at once; a packet of another flow flushes the oldest. */
	GWD_GRO_FLOWS = 8,
	/* Largest coalesced packet: an IP total length, and a TUN's GSO limit. */
	GWD_GRO_MAX_LEN = 65535,
	/* Segments per coalesced packet at most (the kernel's MAX_SKB_FRAGS is 17+). */
	GWD_GRO_MAX_SEGS = 64,
};

/* Called for each finished packet; 0 or -errno (counted by the caller). */
typedef void gwd_offload_emit_fn(void *arg, uint8_t *pkt, size_t len);

/*
 * One packet read from the TUN after its virtio header h: emits it as it
 * is (checksum completed when h asks for that) or, for a TCP super-packet,
 * its segments in order. seg is scratch of at least len bytes. Returns the
 * number of packets emitted, or -EINVAL when the header or packet is
 * malformed (nothing emitted).
 */
int gwd_offload_split(const struct virtio_net_hdr *h, uint8_t *pkt, size_t len, uint8_t *seg,
		      gwd_offload_emit_fn *emit, void *arg);

/*
 * The TUN write of one packet with its virtio header (gso_type NONE and
 * flags 0 for a plain packet). 0 or -errno.
 */
typedef int gwd_gro_write_fn(void *arg, const struct virtio_net_hdr *h, const uint8_t *pkt,
			     size_t len);

struct gwd_gro_flow {
	uint8_t *buf; /* GWD_GRO_MAX_LEN bytes: the packet being built */
	size_t len;   /* 0: free */
	size_t hdr_len;
	size_t ip_len;	/* IP header bytes (20 or 40) */
	size_t seg_len; /* payload bytes of the first segment: the gso_size */
	uint32_t nsegs;
	uint32_t next_seq; /* sequence number the next segment must carry */
	bool closed;	   /* ended by a short segment or PSH: write as soon as possible */
	uint64_t age;	   /* for choosing the flow to flush when all are taken */
};

struct gwd_gro {
	struct gwd_gro_flow flows[GWD_GRO_FLOWS];
	uint64_t clock;
	gwd_gro_write_fn *write;
	void *arg;
	/* Counters the owner may read: packets written, coalesced (joined), failed writes. */
	uint64_t written, coalesced, write_errors;
};

/* 0 or -ENOMEM. */
int gwd_gro_init(struct gwd_gro *g, gwd_gro_write_fn *write, void *arg);
void gwd_gro_free(struct gwd_gro *g);
/*
 * One decrypted IP packet (len bytes, its IP header already checked by the
 * caller) for the TUN: joined to a flow, held as a new flow, or written now
 * (after the flow it belongs to, so order within a flow holds). 0 or the
 * -errno of a write that failed.
 */
int gwd_gro_add(struct gwd_gro *g, const uint8_t *pkt, size_t len);
/* Writes every held flow. 0 or the last -errno. */
int gwd_gro_flush(struct gwd_gro *g);

/* Internet checksum helpers, exported for the unit tests. */
uint16_t gwd_csum_fold(uint64_t sum);
uint64_t gwd_csum_add(uint64_t sum, const uint8_t *p, size_t len);

#endif
