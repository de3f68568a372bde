// SPDX-License-Identifier: MIT
#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <linux/virtio_net.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/uio.h>
#include <unistd.h>

#include "tun.h"

int gwd_tun_open(struct gwd_tun *tun, const char *name, bool offload)
{
	struct ifreq ifr = {0};
	int fd, err;

	if (strlen(name) >= IFNAMSIZ || name[0] == '\0')
		return -EINVAL;
	fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ifr.ifr_flags = IFF_TUN | IFF_NO_PI | (offload ? IFF_VNET_HDR : 0);
	memcpy(ifr.ifr_name, name, strlen(name));
	if (ioctl(fd, TUNSETIFF, &ifr) < 0)
		goto fail;
	tun->vnet_hdr = offload;
	/* TSO needs checksum offload; without either, the header stays but says nothing. */
	tun->offload = offload && ioctl(fd, TUNSETOFFLOAD,
					(unsigned long)(TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6)) == 0;
	memcpy(tun->name, ifr.ifr_name, IFNAMSIZ);
	tun->name[IFNAMSIZ - 1] = '\0';
	tun->ifindex = (int)if_nametoindex(tun->name);
	if (tun->ifindex == 0)
		goto fail;
	tun->fd = fd;
	return 0;
fail:
	err = -errno;
	close(fd);
	return err;
}

void gwd_tun_close(struct gwd_tun *tun)
{
	if (tun->fd >= 0)
		close(tun->fd);
	tun->fd = -1;
}

ssize_t gwd_tun_read(struct gwd_tun *tun, void *buf, size_t len)
{
	ssize_t n = read(tun->fd, buf, len);

	return n < 0 ? -errno : n;
}

int gwd_tun_write(struct gwd_tun *tun, const void *buf, size_t len)
{
	static const struct virtio_net_hdr plain = {.gso_type = VIRTIO_NET_HDR_GSO_NONE};
	ssize_t n;

	if (tun->vnet_hdr)
		return gwd_tun_write_vnet(tun, &plain, buf, len);
	n = write(tun->fd, buf, len);
	if (n < 0)
		return -errno;
	return (size_t)n == len ? 0 : -EIO;
}

int gwd_tun_write_vnet(struct gwd_tun *tun, const struct virtio_net_hdr *h, const void *buf,
		       size_t len)
{
	struct iovec iov[2] = {
	    {.iov_base = (void *)h, .iov_len = sizeof(*h)},
	    {.iov_base = (void *)buf, .iov_len = len},
	};
	ssize_t n = writev(tun->fd, iov, 2);

	if (n < 0)
		return -errno;
	return (size_t)n == len + sizeof(*h) ? 0 : -EIO;
}
