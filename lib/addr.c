// SPDX-License-Identifier: MIT
/*
 * Prefixes and endpoints in their textual forms. Parsing is strict: the
 * address goes through inet_pton() (so no hostnames, no whitespace, no
 * shortened IPv4), and numbers are plain decimal without sign, whitespace or
 * leading zeros. A failed parse leaves the output untouched.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>

#include "gw/addr.h"

/* Address width in bits for a family, 0 for an unknown one. */
static unsigned int family_bits(int family)
{
	switch (family) {
	case AF_INET:
		return 32;
	case AF_INET6:
		return 128;
	default:
		return 0;
	}
}

/*
 * Parses s[0..len) as a decimal in [0, max]: digits only, no leading zero
 * (but "0" itself). 0 or -EINVAL.
 */
static int parse_decimal(const char *s, size_t len, unsigned long max, unsigned long *out)
{
	unsigned long v = 0;
	size_t i;

	if (len == 0 || len > 10 || (len > 1 && s[0] == '0'))
		return -EINVAL;
	for (i = 0; i < len; i++) {
		unsigned long d = (unsigned long)(s[i] - '0');

		if (s[i] < '0' || s[i] > '9' || d > max || v > (max - d) / 10)
			return -EINVAL;
		v = v * 10 + d;
	}
	*out = v;
	return 0;
}

/* Copies s[0..len) into buf as a string; -EINVAL if empty or too long. */
static int copy_part(char *buf, size_t size, const char *s, size_t len)
{
	if (len == 0 || len >= size)
		return -EINVAL;
	memcpy(buf, s, len);
	buf[len] = '\0';
	return 0;
}

int gw_prefix_parse(struct gw_prefix *p, const char *s)
{
	char buf[INET6_ADDRSTRLEN];
	struct gw_prefix r = {0};
	const char *slash;
	unsigned long cidr;
	unsigned int max;

	if (!p || !s)
		return -EINVAL;
	slash = strchr(s, '/');
	if (copy_part(buf, sizeof(buf), s, slash ? (size_t)(slash - s) : strlen(s)))
		return -EINVAL;
	if (inet_pton(AF_INET, buf, r.addr) == 1)
		r.family = AF_INET;
	else if (inet_pton(AF_INET6, buf, r.addr) == 1)
		r.family = AF_INET6;
	else
		return -EINVAL;
	max = family_bits(r.family);
	cidr = max;
	if (slash && parse_decimal(slash + 1, strlen(slash + 1), max, &cidr))
		return -EINVAL;
	r.cidr = (uint8_t)cidr;
	*p = r;
	return 0;
}

/* An unknown family formats as the empty string. */
void gw_prefix_format(const struct gw_prefix *p, char *out, size_t outlen)
{
	char addr[INET6_ADDRSTRLEN];

	if (!out || outlen == 0)
		return;
	out[0] = '\0';
	if (!p || !family_bits(p->family) || !inet_ntop(p->family, p->addr, addr, sizeof(addr)))
		return;
	snprintf(out, outlen, "%s/%u", addr, (unsigned int)p->cidr);
}

/* Clears every bit of a[0..16) from bit position cidr on. */
static void clear_from(uint8_t *a, unsigned int cidr)
{
	unsigned int i;

	for (i = cidr / 8; i < 16; i++) {
		if (i == cidr / 8 && cidr % 8)
			a[i] &= (uint8_t)(0xff << (8 - cidr % 8));
		else
			a[i] = 0;
	}
}

void gw_prefix_mask(struct gw_prefix *p)
{
	unsigned int max = family_bits(p->family);

	if (max && p->cidr < max)
		clear_from(p->addr, p->cidr);
}

bool gw_prefix_equal(const struct gw_prefix *a, const struct gw_prefix *b)
{
	unsigned int bits = family_bits(a->family);

	return a->family == b->family && a->cidr == b->cidr &&
	       memcmp(a->addr, b->addr, bits / 8) == 0;
}

/* True when the first bits of a and b agree. */
static bool same_leading_bits(const uint8_t *a, const uint8_t *b, unsigned int bits)
{
	unsigned int whole = bits / 8;
	uint8_t mask;

	if (memcmp(a, b, whole))
		return false;
	if (bits % 8 == 0)
		return true;
	mask = (uint8_t)(0xff << (8 - bits % 8));
	return ((a[whole] ^ b[whole]) & mask) == 0;
}

bool gw_prefix_contains(const struct gw_prefix *p, int family, const uint8_t *addr)
{
	unsigned int max = family_bits(family);

	if (!p || !addr || !max || p->family != family || p->cidr > max)
		return false;
	return same_leading_bits(p->addr, addr, p->cidr);
}

/* The rest of s after ':' as a port in [0, 65535]. */
static int parse_port(const char *s, in_port_t *port)
{
	unsigned long v;

	if (parse_decimal(s, strlen(s), 65535, &v))
		return -EINVAL;
	*port = htons((uint16_t)v);
	return 0;
}

/*
 * A scope is an interface index in decimal (nonzero) or an interface name
 * that exists now in the caller's network namespace. Digits only means an
 * index, even if an interface had such a name.
 */
static int parse_scope(const char *s, size_t len, uint32_t *scope)
{
	char name[IF_NAMESIZE];
	unsigned long v;

	if (len && s[0] >= '0' && s[0] <= '9') {
		if (parse_decimal(s, len, UINT32_MAX, &v) || v == 0)
			return -EINVAL;
		*scope = (uint32_t)v;
		return 0;
	}
	if (copy_part(name, sizeof(name), s, len))
		return -EINVAL;
	*scope = if_nametoindex(name);
	return *scope ? 0 : -EINVAL;
}

static int parse_v4(union gw_sockaddr *ep, const char *s)
{
	struct sockaddr_in in = {.sin_family = AF_INET};
	char buf[INET_ADDRSTRLEN];
	const char *colon = strchr(s, ':');

	if (!colon || copy_part(buf, sizeof(buf), s, (size_t)(colon - s)))
		return -EINVAL;
	if (inet_pton(AF_INET, buf, &in.sin_addr) != 1 || parse_port(colon + 1, &in.sin_port))
		return -EINVAL;
	memset(ep, 0, sizeof(*ep));
	ep->in = in;
	return 0;
}

/* s points just past '['. */
static int parse_v6(union gw_sockaddr *ep, const char *s)
{
	struct sockaddr_in6 in6 = {.sin6_family = AF_INET6};
	char buf[INET6_ADDRSTRLEN];
	const char *rb = strchr(s, ']');
	const char *pct;

	if (!rb || rb[1] != ':')
		return -EINVAL;
	pct = memchr(s, '%', (size_t)(rb - s));
	if (copy_part(buf, sizeof(buf), s, (size_t)((pct ? pct : rb) - s)))
		return -EINVAL;
	if (inet_pton(AF_INET6, buf, &in6.sin6_addr) != 1)
		return -EINVAL;
	if (pct && parse_scope(pct + 1, (size_t)(rb - pct - 1), &in6.sin6_scope_id))
		return -EINVAL;
	if (parse_port(rb + 2, &in6.sin6_port))
		return -EINVAL;
	memset(ep, 0, sizeof(*ep));
	ep->in6 = in6;
	return 0;
}

/* Port 0 is accepted, as wg(8) accepts it; sending to it fails later. */
int gw_endpoint_parse(union gw_sockaddr *ep, const char *s)
{
	if (!ep || !s)
		return -EINVAL;
	if (s[0] == '[')
		return parse_v6(ep, s + 1);
	return parse_v4(ep, s);
}

/*
 * The scope is written as the interface name when the index exists in the
 * caller's namespace, else as the number, so the output parses back.
 */
static void format_v6(const struct sockaddr_in6 *in6, char *out, size_t outlen)
{
	char addr[INET6_ADDRSTRLEN], scope[IF_NAMESIZE];

	if (!inet_ntop(AF_INET6, &in6->sin6_addr, addr, sizeof(addr)))
		return;
	if (!in6->sin6_scope_id) {
		snprintf(out, outlen, "[%s]:%u", addr, ntohs(in6->sin6_port));
		return;
	}
	if (!if_indextoname(in6->sin6_scope_id, scope))
		snprintf(scope, sizeof(scope), "%u", (unsigned int)in6->sin6_scope_id);
	snprintf(out, outlen, "[%s%%%s]:%u", addr, scope, ntohs(in6->sin6_port));
}

/* An unknown family formats as the empty string. */
void gw_endpoint_format(const union gw_sockaddr *ep, char *out, size_t outlen)
{
	char addr[INET_ADDRSTRLEN];

	if (!out || outlen == 0)
		return;
	out[0] = '\0';
	if (!ep)
		return;
	if (ep->sa.sa_family == AF_INET6) {
		format_v6(&ep->in6, out, outlen);
	} else if (ep->sa.sa_family == AF_INET) {
		if (inet_ntop(AF_INET, &ep->in.sin_addr, addr, sizeof(addr)))
			snprintf(out, outlen, "%s:%u", addr, ntohs(ep->in.sin_port));
	}
}

socklen_t gw_sockaddr_len(const union gw_sockaddr *ep)
{
	if (!ep)
		return 0;
	switch (ep->sa.sa_family) {
	case AF_INET:
		return sizeof(struct sockaddr_in);
	case AF_INET6:
		return sizeof(struct sockaddr_in6);
	default:
		return 0;
	}
}

/* Flow info is ignored: it does not name a different peer. */
bool gw_sockaddr_equal(const union gw_sockaddr *a, const union gw_sockaddr *b)
{
	if (a->sa.sa_family != b->sa.sa_family)
		return false;
	switch (a->sa.sa_family) {
	case AF_INET:
		return a->in.sin_port == b->in.sin_port &&
		       a->in.sin_addr.s_addr == b->in.sin_addr.s_addr;
	case AF_INET6:
		return a->in6.sin6_port == b->in6.sin6_port &&
		       a->in6.sin6_scope_id == b->in6.sin6_scope_id &&
		       memcmp(&a->in6.sin6_addr, &b->in6.sin6_addr, 16) == 0;
	default:
		return false;
	}
}
