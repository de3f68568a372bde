/* SPDX-License-Identifier: MIT */
/*
 * The UDP side: one IPv4 and one IPv6 (v6-only) socket on the same port.
 * Every received packet reports the local address it arrived on, and every
 * send can pin that address as its source, so replies leave from the address
 * the peer used (a cluster VIP, not the node's primary address).
 */
#ifndef GWD_UDP_H
#define GWD_UDP_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "gw/addr.h"

/* The local end of a UDP exchange: the address a packet arrived on. */
struct gwd_src {
	int family; /* 0 when unknown: let the kernel choose */
	int ifindex;
	union {
		struct in_addr v4;
		struct in6_addr v6;
	};
};

struct gwd_udp {
	int fd4; /* -1 when closed */
	int fd6; /* -1 when closed or IPv6 is unavailable */
	uint16_t port;
	uint32_t fwmark;
};

/*
 * Binds both sockets to `port` (0: a random port, the same for both).
 * IPv6 is optional: a host without it gets fd6 = -1. 0 or -errno.
 */
int gwd_udp_open(struct gwd_udp *u, uint16_t port, uint32_t fwmark);
void gwd_udp_close(struct gwd_udp *u);
/* SO_MARK on both sockets (0 clears it). 0 or -errno. */
int gwd_udp_set_fwmark(struct gwd_udp *u, uint32_t fwmark);

/*
 * One datagram from fd into buf: bytes, or -errno (-EAGAIN when none).
 * `from` gets the sender, `local` the address it was sent to. With UDP GRO
 * on (gwd_udp_enable_gro()) buf may hold several datagrams from the same
 * sender back to back: *gso_size is then their size (the last may be
 * shorter), else 0.
 */
ssize_t gwd_udp_recv(int fd, void *buf, size_t len, union gw_sockaddr *from, struct gwd_src *local,
		     size_t *gso_size);

/* The most datagrams one gwd_udp_recv_batch() call takes. */
enum { GWD_UDP_RX_BATCH = 64 };

/* One slot of gwd_udp_recv_batch(): buf and cap set by the caller, the rest filled in. */
struct gwd_udp_rx {
	uint8_t *buf;
	size_t cap;
	size_t len;	/* bytes received */
	size_t gso;	/* as gwd_udp_recv()'s *gso_size */
	bool truncated; /* longer than cap: the datagram is unusable */
	union gw_sockaddr from;
	struct gwd_src local;
	union {
		struct cmsghdr align;
		uint8_t buf[CMSG_SPACE(sizeof(struct in6_pktinfo)) + CMSG_SPACE(sizeof(int))];
	} ctl;
};

/*
 * Up to n (at most GWD_UDP_RX_BATCH) datagrams from fd with one recvmmsg()
 * call, each with its own sender, local address and GRO segment size as
 * gwd_udp_recv() reports them: how many arrived, or -errno (-EAGAIN when none).
 */
int gwd_udp_recv_batch(int fd, struct gwd_udp_rx *rx, size_t n);

/* UDP_GRO on both sockets: true when the kernel took it on every open one. */
bool gwd_udp_enable_gro(struct gwd_udp *u);

/*
 * Like gwd_udp_send() for len bytes holding datagrams of seg bytes each
 * (the last may be shorter), sent with one UDP_SEGMENT system call. -EIO
 * when the route cannot segment (no checksum offload): send them one by
 * one instead.
 */
int gwd_udp_send_gso(struct gwd_udp *u, const union gw_sockaddr *to, struct gwd_src *local,
		     const void *buf, size_t len, uint16_t seg);

/*
 * Sends from `local` when it is set. If that address is no longer ours the
 * kernel refuses it: the send is retried with a kernel-chosen source and
 * *local is cleared, so the caller learns it. 0 or -errno.
 */
int gwd_udp_send(struct gwd_udp *u, const union gw_sockaddr *to, struct gwd_src *local,
		 const void *buf, size_t len);

#endif
