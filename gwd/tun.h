/* SPDX-License-Identifier: MIT */
/*
 * The TUN device: layer-3 packets without a packet-information header.
 */
#ifndef GWD_TUN_H
#define GWD_TUN_H

#include <net/if.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct virtio_net_hdr;

struct gwd_tun {
	int fd;
	int ifindex;
	/* Every read and write carries a virtio_net_hdr first (IFF_VNET_HDR). */
	bool vnet_hdr;
	/* The kernel hands over TCP super-packets and partial checksums (TUNSETOFFLOAD). */
	bool offload;
	char name[IFNAMSIZ];
};

/*
 * Creates (or attaches to) TUN device `name`, non-blocking. With offload
 * set it asks for the virtio header and TSO (offload.h); tun->offload
 * tells whether the kernel agreed. 0 or -errno; -EINVAL when the name does
 * not fit IFNAMSIZ.
 */
int gwd_tun_open(struct gwd_tun *tun, const char *name, bool offload);
/* Closes the fd; the kernel removes a non-persistent device with it. */
void gwd_tun_close(struct gwd_tun *tun);
/* One packet into buf; bytes read, or -errno (-EAGAIN when none is waiting). */
ssize_t gwd_tun_read(struct gwd_tun *tun, void *buf, size_t len);
/* One packet (after a zero virtio header when the TUN has them); 0 or -errno. */
int gwd_tun_write(struct gwd_tun *tun, const void *buf, size_t len);
/* One packet after virtio header h (the TUN must have them); 0 or -errno. */
int gwd_tun_write_vnet(struct gwd_tun *tun, const struct virtio_net_hdr *h, const void *buf,
		       size_t len);

#endif
