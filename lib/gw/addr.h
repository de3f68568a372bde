/* SPDX-License-Identifier: MIT */
/*
 * IP prefixes and UDP endpoints in the textual forms WireGuard tools use:
 * "198.18.0.0/16", "2001:db8:f::/64", "192.0.2.1:51820", "[2001:db8:1::1]:51820".
 */
#ifndef GW_ADDR_H
#define GW_ADDR_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

struct gw_prefix {
	int family; /* AF_INET or AF_INET6 */
	uint8_t cidr;
	uint8_t addr[16]; /* network byte order; IPv4 uses the first 4 bytes */
};

enum {
	GW_PREFIX_STR_LEN = 44, /* INET6_ADDRSTRLEN + "/128" */
	/* "[" 39-char IPv6 "%" 15-char ifname "]:65535" NUL */
	GW_ENDPOINT_STR_LEN = 64,
};

/*
 * Parses "ADDR/CIDR" or a bare "ADDR" (a host prefix). Host bits are kept as
 * given (wg keeps them too); gw_prefix_mask() clears them. 0 or -EINVAL.
 */
int gw_prefix_parse(struct gw_prefix *p, const char *s);
/* "ADDR/CIDR"; out must hold GW_PREFIX_STR_LEN bytes. */
void gw_prefix_format(const struct gw_prefix *p, char *out, size_t outlen);
/* Clears the bits beyond cidr. */
void gw_prefix_mask(struct gw_prefix *p);
bool gw_prefix_equal(const struct gw_prefix *a, const struct gw_prefix *b);
/* True when addr (4 or 16 bytes by family) lies inside p. */
bool gw_prefix_contains(const struct gw_prefix *p, int family, const uint8_t *addr);

/* A UDP endpoint: sockaddr_in or sockaddr_in6. */
union gw_sockaddr {
	struct sockaddr sa;
	struct sockaddr_in in;
	struct sockaddr_in6 in6;
};

/*
 * Parses "IPv4:PORT" or "[IPv6]:PORT" (numeric only; IPv6 may carry a
 * %scope: an interface name existing in the caller's namespace, or a nonzero
 * index). PORT is decimal 0-65535 without leading zeros. 0 or -EINVAL.
 */
int gw_endpoint_parse(union gw_sockaddr *ep, const char *s);
/* Same textual forms; out must hold GW_ENDPOINT_STR_LEN bytes. */
void gw_endpoint_format(const union gw_sockaddr *ep, char *out, size_t outlen);
socklen_t gw_sockaddr_len(const union gw_sockaddr *ep);
/* Address, port (and for IPv6 scope) equal. */
bool gw_sockaddr_equal(const union gw_sockaddr *a, const union gw_sockaddr *b);

#endif
