// SPDX-License-Identifier: MIT
#include <errno.h>
#include <netinet/udp.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "udp.h"

enum { RANDOM_PORT_TRIES = 16 };

static int bind_one(int family, uint16_t port, uint32_t fwmark, int *out)
{
	int one = 1, fd, err;
	union gw_sockaddr sa = {0};
	socklen_t salen;

	fd = socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (family == AF_INET) {
		sa.in.sin_family = AF_INET;
		sa.in.sin_port = htons(port);
		salen = sizeof(sa.in);
		if (setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &one, sizeof(one)) < 0)
			goto fail;
	} else {
		sa.in6.sin6_family = AF_INET6;
		sa.in6.sin6_port = htons(port);
		salen = sizeof(sa.in6);
		if (setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) < 0 ||
		    setsockopt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &one, sizeof(one)) < 0)
			goto fail;
	}
	if (fwmark && setsockopt(fd, SOL_SOCKET, SO_MARK, &fwmark, sizeof(fwmark)) < 0)
		goto fail;
	if (bind(fd, &sa.sa, salen) < 0)
		goto fail;
	*out = fd;
	return 0;
fail:
	err = -errno;
	close(fd);
	return err;
}

static uint16_t bound_port(int fd)
{
	union gw_sockaddr sa;
	socklen_t len = sizeof(sa);

	if (getsockname(fd, &sa.sa, &len) < 0)
		return 0;
	return ntohs(sa.sa.sa_family == AF_INET ? sa.in.sin_port : sa.in6.sin6_port);
}

/* Binds IPv4 on `port`, then IPv6 on the port IPv4 got. */
static int try_open(struct gwd_udp *u, uint16_t port, uint32_t fwmark)
{
	int err;

	err = bind_one(AF_INET, port, fwmark, &u->fd4);
	if (err)
		return err;
	u->port = bound_port(u->fd4);
	err = bind_one(AF_INET6, u->port, fwmark, &u->fd6);
	if (err == -EAFNOSUPPORT || err == -EADDRNOTAVAIL) {
		u->fd6 = -1; /* no IPv6 on this host */
		return 0;
	}
	if (err) {
		close(u->fd4);
		u->fd4 = -1;
	}
	return err;
}

int gwd_udp_open(struct gwd_udp *u, uint16_t port, uint32_t fwmark)
{
	int err;

	u->fd4 = u->fd6 = -1;
	u->fwmark = fwmark;
	for (int i = 0; i < RANDOM_PORT_TRIES; i++) {
		err = try_open(u, port, fwmark);
		/* A random IPv4 port may be taken on IPv6: pick another. */
		if (err != -EADDRINUSE || port != 0)
			break;
	}
	return err;
}

void gwd_udp_close(struct gwd_udp *u)
{
	if (u->fd4 >= 0)
		close(u->fd4);
	if (u->fd6 >= 0)
		close(u->fd6);
	u->fd4 = u->fd6 = -1;
}

int gwd_udp_set_fwmark(struct gwd_udp *u, uint32_t fwmark)
{
	int fds[2] = {u->fd4, u->fd6};

	for (int i = 0; i < 2; i++) {
		if (fds[i] < 0)
			continue;
		if (setsockopt(fds[i], SOL_SOCKET, SO_MARK, &fwmark, sizeof(fwmark)) < 0)
			return -errno;
	}
	u->fwmark = fwmark;
	return 0;
}

static void read_pktinfo(struct msghdr *mh, struct gwd_src *local)
{
	memset(local, 0, sizeof(*local));
	for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
		if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
			struct in_pktinfo pi;

			memcpy(&pi, CMSG_DATA(c), sizeof(pi));
			local->family = AF_INET;
			local->ifindex = pi.ipi_ifindex;
			local->v4 = pi.ipi_addr;
		} else if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO) {
			struct in6_pktinfo pi;

			memcpy(&pi, CMSG_DATA(c), sizeof(pi));
			local->family = AF_INET6;
			local->ifindex = (int)pi.ipi6_ifindex;
			local->v6 = pi.ipi6_addr;
		}
	}
}

bool gwd_udp_enable_gro(struct gwd_udp *u)
{
	int fds[2] = {u->fd4, u->fd6}, one = 1;

	for (int i = 0; i < 2; i++) {
		if (fds[i] >= 0 && setsockopt(fds[i], SOL_UDP, UDP_GRO, &one, sizeof(one)) < 0)
			return false;
	}
	return true;
}

/* The segment size of a coalesced receive, 0 for a single datagram. */
static size_t read_gro(struct msghdr *mh)
{
	for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
		if (c->cmsg_level == SOL_UDP && c->cmsg_type == UDP_GRO) {
			int v;

			memcpy(&v, CMSG_DATA(c), sizeof(v));
			return v > 0 ? (size_t)v : 0;
		}
	}
	return 0;
}

ssize_t gwd_udp_recv(int fd, void *buf, size_t len, union gw_sockaddr *from, struct gwd_src *local,
		     size_t *gso_size)
{
	union {
		struct cmsghdr align;
		uint8_t buf[CMSG_SPACE(sizeof(struct in6_pktinfo)) + CMSG_SPACE(sizeof(int))];
	} ctl;
	struct iovec iov = {.iov_base = buf, .iov_len = len};
	struct msghdr mh = {
	    .msg_name = from,
	    .msg_namelen = sizeof(*from),
	    .msg_iov = &iov,
	    .msg_iovlen = 1,
	    .msg_control = ctl.buf,
	    .msg_controllen = sizeof(ctl.buf),
	};
	ssize_t n = recvmsg(fd, &mh, 0);

	if (n < 0)
		return -errno;
	if (mh.msg_flags & MSG_TRUNC)
		return -EMSGSIZE;
	read_pktinfo(&mh, local);
	*gso_size = read_gro(&mh);
	return n;
}

int gwd_udp_recv_batch(int fd, struct gwd_udp_rx *rx, size_t n)
{
	struct mmsghdr mh[GWD_UDP_RX_BATCH];
	struct iovec iov[GWD_UDP_RX_BATCH];
	int got;

	if (n > GWD_UDP_RX_BATCH)
		n = GWD_UDP_RX_BATCH;
	memset(mh, 0, n * sizeof(mh[0]));
	for (size_t i = 0; i < n; i++) {
		iov[i].iov_base = rx[i].buf;
		iov[i].iov_len = rx[i].cap;
		mh[i].msg_hdr.msg_name = &rx[i].from;
		mh[i].msg_hdr.msg_namelen = sizeof(rx[i].from);
		mh[i].msg_hdr.msg_iov = &iov[i];
		mh[i].msg_hdr.msg_iovlen = 1;
		mh[i].msg_hdr.msg_control = rx[i].ctl.buf;
		mh[i].msg_hdr.msg_controllen = sizeof(rx[i].ctl.buf);
	}
	got = recvmmsg(fd, mh, (unsigned)n, 0, NULL);
	if (got < 0)
		return -errno;
	for (int i = 0; i < got; i++) {
		struct msghdr *m = &mh[i].msg_hdr;

		rx[i].len = mh[i].msg_len;
		rx[i].truncated = (m->msg_flags & MSG_TRUNC) != 0;
		read_pktinfo(m, &rx[i].local);
		rx[i].gso = read_gro(m);
	}
	return got;
}

/* Fills the control buffer with the pinned source; returns its length. */
static size_t write_pktinfo(uint8_t *ctl, size_t ctlsize, const struct gwd_src *local, int family)
{
	struct msghdr mh = {.msg_control = ctl, .msg_controllen = ctlsize};
	struct cmsghdr *c = CMSG_FIRSTHDR(&mh);

	if (!local || local->family != family)
		return 0;
	if (family == AF_INET) {
		struct in_pktinfo pi = {.ipi_spec_dst = local->v4};

		c->cmsg_level = IPPROTO_IP;
		c->cmsg_type = IP_PKTINFO;
		c->cmsg_len = CMSG_LEN(sizeof(pi));
		memcpy(CMSG_DATA(c), &pi, sizeof(pi));
		return CMSG_SPACE(sizeof(pi));
	}
	struct in6_pktinfo pi6 = {.ipi6_addr = local->v6};

	/* A link-local source only makes sense on the link it came from. */
	if (IN6_IS_ADDR_LINKLOCAL(&local->v6))
		pi6.ipi6_ifindex = (unsigned)local->ifindex;
	c->cmsg_level = IPPROTO_IPV6;
	c->cmsg_type = IPV6_PKTINFO;
	c->cmsg_len = CMSG_LEN(sizeof(pi6));
	memcpy(CMSG_DATA(c), &pi6, sizeof(pi6));
	return CMSG_SPACE(sizeof(pi6));
}

/*
 * Appends the UDP_SEGMENT size after the used bytes of ctl (aligned: used
 * is a CMSG_SPACE) and returns the new length.
 */
static size_t write_segment(uint8_t *ctl, size_t used, uint16_t seg)
{
	struct cmsghdr *c = (struct cmsghdr *)(void *)(ctl + used);

	c->cmsg_level = SOL_UDP;
	c->cmsg_type = UDP_SEGMENT;
	c->cmsg_len = CMSG_LEN(sizeof(seg));
	memcpy(CMSG_DATA(c), &seg, sizeof(seg));
	return used + CMSG_SPACE(sizeof(seg));
}

int gwd_udp_send(struct gwd_udp *u, const union gw_sockaddr *to, struct gwd_src *local,
		 const void *buf, size_t len)
{
	return gwd_udp_send_gso(u, to, local, buf, len, 0);
}

int gwd_udp_send_gso(struct gwd_udp *u, const union gw_sockaddr *to, struct gwd_src *local,
		     const void *buf, size_t len, uint16_t seg)
{
	union {
		struct cmsghdr align;
		uint8_t buf[CMSG_SPACE(sizeof(struct in6_pktinfo)) + CMSG_SPACE(sizeof(uint16_t))];
	} ctl;
	size_t pi;
	int family = to->sa.sa_family;
	int fd = family == AF_INET ? u->fd4 : family == AF_INET6 ? u->fd6 : -1;
	struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
	struct msghdr mh = {
	    .msg_name = (void *)to,
	    .msg_namelen = gw_sockaddr_len(to),
	    .msg_iov = &iov,
	    .msg_iovlen = 1,
	};

	if (fd < 0)
		return -EAFNOSUPPORT;
	memset(&ctl, 0, sizeof(ctl));
	pi = write_pktinfo(ctl.buf, sizeof(ctl.buf), local, family);
	mh.msg_controllen = seg ? write_segment(ctl.buf, pi, seg) : pi;
	mh.msg_control = mh.msg_controllen ? ctl.buf : NULL;
	if (sendmsg(fd, &mh, 0) >= 0)
		return 0;
	if (pi && (errno == EINVAL || errno == EADDRNOTAVAIL || errno == ENETUNREACH)) {
		/*
		 * The pinned address went away (the VIP moved): let the kernel
		 * pick. IPv4 reports a deleted source as ENETUNREACH. The
		 * segment size, if any, moves to the front of the buffer.
		 */
		memset(local, 0, sizeof(*local));
		memset(&ctl, 0, sizeof(ctl));
		mh.msg_controllen = seg ? write_segment(ctl.buf, 0, seg) : 0;
		mh.msg_control = mh.msg_controllen ? ctl.buf : NULL;
		if (sendmsg(fd, &mh, 0) >= 0)
			return 0;
	}
	return -errno;
}
