// SPDX-License-Identifier: MIT
#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "tun.h"

int gwd_tun_open(struct gwd_tun *tun, const char *name)
{
	struct ifreq ifr = {0};
	int fd, err;

	if (strlen(name) >= IFNAMSIZ || name[0] == '\0')
		return -EINVAL;
	fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
	memcpy(ifr.ifr_name, name, strlen(name));
	if (ioctl(fd, TUNSETIFF, &ifr) < 0)
		goto fail;
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
	ssize_t n = write(tun->fd, buf, len);

	if (n < 0)
		return -errno;
	return (size_t)n == len ? 0 : -EIO;
}
