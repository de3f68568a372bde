/* SPDX-License-Identifier: MIT */
/*
 * The TUN device: layer-3 packets without a packet-information header.
 */
#ifndef GWD_TUN_H
#define GWD_TUN_H

#include <net/if.h>
#include <stddef.h>
#include <sys/types.h>

struct gwd_tun {
	int fd;
	int ifindex;
	char name[IFNAMSIZ];
};

/*
 * Creates (or attaches to) TUN device `name`, non-blocking. 0 or -errno;
 * -EINVAL when the name does not fit IFNAMSIZ.
 */
int gwd_tun_open(struct gwd_tun *tun, const char *name);
/* Closes the fd; the kernel removes a non-persistent device with it. */
void gwd_tun_close(struct gwd_tun *tun);
/* One packet into buf; bytes read, or -errno (-EAGAIN when none is waiting). */
ssize_t gwd_tun_read(struct gwd_tun *tun, void *buf, size_t len);
/* One packet; 0 or -errno. */
int gwd_tun_write(struct gwd_tun *tun, const void *buf, size_t len);

#endif
