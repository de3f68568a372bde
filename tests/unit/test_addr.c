// SPDX-License-Identifier: MIT
/*
 * Prefixes and endpoints, table-driven: accepted inputs with their exact
 * bytes and canonical text, rejected inputs, round trips, masking and
 * containment against hand-computed answers.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "gw/addr.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

struct good_prefix {
	const char *in;
	int family;
	uint8_t cidr;
	uint8_t addr[16];
	const char *out; /* canonical text */
};

static const struct good_prefix good_prefixes[] = {
    {"198.18.0.0/16", AF_INET, 16, {198, 18, 0, 0}, "198.18.0.0/16"},
    {"198.18.0.1/24", AF_INET, 24, {198, 18, 0, 1}, "198.18.0.1/24"},
    {"192.0.2.1", AF_INET, 32, {192, 0, 2, 1}, "192.0.2.1/32"},
    {"0.0.0.0/0", AF_INET, 0, {0}, "0.0.0.0/0"},
    {"255.255.255.255/32", AF_INET, 32, {255, 255, 255, 255}, "255.255.255.255/32"},
    {"203.0.113.7/0", AF_INET, 0, {203, 0, 113, 7}, "203.0.113.7/0"},
    {"2001:db8:f::/64", AF_INET6, 64, {0x20, 0x01, 0x0d, 0xb8, 0, 0x0f}, "2001:db8:f::/64"},
    {"2001:db8::1", AF_INET6, 128, {0x20, 0x01, 0x0d, 0xb8, [15] = 1}, "2001:db8::1/128"},
    {"2001:0DB8:0000::0001/127",
     AF_INET6,
     127,
     {0x20, 0x01, 0x0d, 0xb8, [15] = 1},
     "2001:db8::1/127"},
    {"::/0", AF_INET6, 0, {0}, "::/0"},
    {"::1/128", AF_INET6, 128, {[15] = 1}, "::1/128"},
    {"::ffff:192.0.2.1/128",
     AF_INET6,
     128,
     {[10] = 0xff, 0xff, 192, 0, 2, 1},
     "::ffff:192.0.2.1/128"},
    {"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128",
     AF_INET6,
     128,
     {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
      0xff},
     "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128"},
};

static const char *const bad_prefixes[] = {
    "",
    "/",
    "/24",
    "198.18.0.0/",
    "198.18.0.0/33",
    "198.18.0.0/100",
    "198.18.0.0/4294967328",
    "198.18.0.0/99999999999999999999",
    "2001:db8::/129",
    "2001:db8::/256",
    "198.18.0.0/+8",
    "198.18.0.0/-8",
    "198.18.0.0/ 8",
    "198.18.0.0 /8",
    " 198.18.0.0/8",
    "198.18.0.0/8 ",
    "198.18.0.0/08",
    "198.18.0.0/8/8",
    "198.18.0.0/8x",
    "198.18.0.0/0x8",
    "198.18.0/24",
    "198.18.0.0.0/24",
    "256.18.0.0/16",
    "198.018.0.0/16",
    "+198.18.0.0/16",
    "gateway.example/24",
    "localhost",
    "2001:db8:::/64",
    "2001:db8::g/64",
    "fe80::1%1/64",
    "[2001:db8::]/64",
    "2001:db8::1:2:3:4:5:6:7/128",
    "1:2:3:4:5:6:7:8:9/128",
    "198.18.0.0\n/16",
    "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255:1/128",
};

Test(prefix, parses_good_inputs)
{
	for (size_t i = 0; i < ARRAY_LEN(good_prefixes); i++) {
		const struct good_prefix *g = &good_prefixes[i];
		struct gw_prefix p;

		memset(&p, 0xa5, sizeof(p));
		cr_assert_eq(gw_prefix_parse(&p, g->in), 0, "%s", g->in);
		cr_assert_eq(p.family, g->family, "%s", g->in);
		cr_assert_eq(p.cidr, g->cidr, "%s", g->in);
		cr_assert_arr_eq(p.addr, g->addr, 16, "%s", g->in);
	}
}

Test(prefix, formats_canonically_and_round_trips)
{
	for (size_t i = 0; i < ARRAY_LEN(good_prefixes); i++) {
		const struct good_prefix *g = &good_prefixes[i];
		struct gw_prefix p, q;
		char buf[GW_PREFIX_STR_LEN];

		cr_assert_eq(gw_prefix_parse(&p, g->in), 0, "%s", g->in);
		gw_prefix_format(&p, buf, sizeof(buf));
		cr_assert_str_eq(buf, g->out, "%s", g->in);
		cr_assert_eq(gw_prefix_parse(&q, buf), 0, "%s", buf);
		cr_assert(gw_prefix_equal(&p, &q), "%s", buf);
	}
}

Test(prefix, rejects_bad_inputs_without_touching_output)
{
	for (size_t i = 0; i < ARRAY_LEN(bad_prefixes); i++) {
		struct gw_prefix p, before;

		memset(&p, 0x5a, sizeof(p));
		before = p;
		cr_assert_eq(gw_prefix_parse(&p, bad_prefixes[i]), -EINVAL, "accepted \"%s\"",
			     bad_prefixes[i]);
		cr_assert_arr_eq(&p, &before, sizeof(p), "changed on \"%s\"", bad_prefixes[i]);
	}
	cr_assert_eq(gw_prefix_parse(NULL, "192.0.2.0/24"), -EINVAL);
}

Test(prefix, rejects_every_cidr_past_the_family_width)
{
	char s[64];
	struct gw_prefix p;

	for (unsigned int c = 0; c <= 300; c++) {
		snprintf(s, sizeof(s), "198.18.0.0/%u", c);
		cr_assert_eq(gw_prefix_parse(&p, s) == 0, c <= 32, "%s", s);
		snprintf(s, sizeof(s), "2001:db8::/%u", c);
		cr_assert_eq(gw_prefix_parse(&p, s) == 0, c <= 128, "%s", s);
		if (c <= 128)
			cr_assert_eq(p.cidr, c);
	}
}

Test(prefix, format_truncates_safely)
{
	struct gw_prefix p;
	char buf[8];

	cr_assert_eq(gw_prefix_parse(&p, "198.18.0.0/16"), 0);
	memset(buf, 'x', sizeof(buf));
	gw_prefix_format(&p, buf, sizeof(buf));
	cr_assert_str_eq(buf, "198.18.");
	gw_prefix_format(&p, buf, 0); /* must not write */
	cr_assert_str_eq(buf, "198.18.");

	p.family = AF_UNSPEC;
	gw_prefix_format(&p, buf, sizeof(buf));
	cr_assert_str_eq(buf, "");
}

struct mask_case {
	const char *in, *out;
};

static const struct mask_case mask_cases[] = {
    {"198.18.1.2/16", "198.18.0.0/16"},
    {"198.18.255.255/0", "0.0.0.0/0"},
    {"192.0.2.255/25", "192.0.2.128/25"},
    {"192.0.2.255/31", "192.0.2.254/31"},
    {"192.0.2.255/32", "192.0.2.255/32"},
    {"203.0.113.77/1", "128.0.0.0/1"},
    {"198.19.7.7/15", "198.18.0.0/15"},
    {"2001:db8:f:1:2::3/64", "2001:db8:f:1::/64"},
    {"2001:db8::ffff/127", "2001:db8::fffe/127"},
    {"2001:db8::ffff/128", "2001:db8::ffff/128"},
    {"2001:db8:ffff::/33", "2001:db8:8000::/33"},
    {"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/0", "::/0"},
    {"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/121", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ff80/121"},
};

Test(prefix, mask_clears_host_bits)
{
	for (size_t i = 0; i < ARRAY_LEN(mask_cases); i++) {
		struct gw_prefix p;
		char buf[GW_PREFIX_STR_LEN];

		cr_assert_eq(gw_prefix_parse(&p, mask_cases[i].in), 0);
		gw_prefix_mask(&p);
		gw_prefix_format(&p, buf, sizeof(buf));
		cr_assert_str_eq(buf, mask_cases[i].out, "%s", mask_cases[i].in);
		if (p.family == AF_INET)
			for (int b = 4; b < 16; b++)
				cr_assert_eq(p.addr[b], 0);
	}
}

struct equal_case {
	const char *a, *b;
	bool equal;
};

static const struct equal_case equal_cases[] = {
    {"198.18.0.0/16", "198.18.0.0/16", true},
    {"198.18.0.0/16", "198.18.0.0/17", false},
    {"198.18.0.0/16", "198.18.0.1/16", false}, /* host bits count */
    {"2001:db8::/64", "2001:0db8:0::/64", true},
    {"2001:db8::/64", "2001:db8::1/64", false},
    {"0.0.0.0/0", "::/0", false},
    {"192.0.2.1", "::ffff:192.0.2.1", false},
    {"192.0.2.1", "192.0.2.1/32", true},
};

Test(prefix, equal)
{
	for (size_t i = 0; i < ARRAY_LEN(equal_cases); i++) {
		struct gw_prefix a, b;

		cr_assert_eq(gw_prefix_parse(&a, equal_cases[i].a), 0);
		cr_assert_eq(gw_prefix_parse(&b, equal_cases[i].b), 0);
		cr_assert_eq(gw_prefix_equal(&a, &b), equal_cases[i].equal, "%s vs %s",
			     equal_cases[i].a, equal_cases[i].b);
		cr_assert_eq(gw_prefix_equal(&b, &a), equal_cases[i].equal);
	}
}

struct contains_case {
	const char *prefix, *addr;
	bool in;
};

static const struct contains_case contains_cases[] = {
    {"198.18.0.0/15", "198.18.0.0", true},
    {"198.18.0.0/15", "198.19.255.255", true},
    {"198.18.0.0/15", "198.20.0.0", false},
    {"198.18.0.0/15", "198.17.255.255", false},
    {"198.18.1.2/16", "198.18.200.1", true}, /* the prefix's host bits are ignored */
    {"0.0.0.0/0", "203.0.113.9", true},
    {"192.0.2.1/32", "192.0.2.1", true},
    {"192.0.2.1/32", "192.0.2.0", false},
    {"192.0.2.128/25", "192.0.2.127", false},
    {"192.0.2.128/25", "192.0.2.128", true},
    {"192.0.2.0/24", "2001:db8::1", false},
    {"::/0", "192.0.2.1", false},
    {"::/0", "2001:db8::1", true},
    {"2001:db8::/32", "2001:db8:ffff::1", true},
    {"2001:db8::/32", "2001:db9::", false},
    {"2001:db8::/33", "2001:db8:7fff::1", true},
    {"2001:db8::/33", "2001:db8:8000::", false},
    {"2001:db8::fffe/127", "2001:db8::ffff", true},
    {"2001:db8::fffe/127", "2001:db8::1:0", false},
    {"2001:db8::1/128", "2001:db8::1", true},
    {"2001:db8::1/128", "2001:db8::", false},
};

Test(prefix, contains)
{
	for (size_t i = 0; i < ARRAY_LEN(contains_cases); i++) {
		const struct contains_case *c = &contains_cases[i];
		struct gw_prefix p;
		uint8_t addr[16] = {0};
		int family = strchr(c->addr, ':') ? AF_INET6 : AF_INET;

		cr_assert_eq(gw_prefix_parse(&p, c->prefix), 0);
		cr_assert_eq(inet_pton(family, c->addr, addr), 1);
		cr_assert_eq(gw_prefix_contains(&p, family, addr), c->in, "%s in %s", c->addr,
			     c->prefix);
	}
}

struct good_endpoint {
	const char *in;
	int family;
	uint16_t port;
	uint32_t scope;
	const char *out; /* canonical text */
};

/* Index 1 is always lo, in every network namespace. */
static const struct good_endpoint good_endpoints[] = {
    {"192.0.2.1:51820", AF_INET, 51820, 0, "192.0.2.1:51820"},
    {"198.51.100.200:1", AF_INET, 1, 0, "198.51.100.200:1"},
    {"203.0.113.9:65535", AF_INET, 65535, 0, "203.0.113.9:65535"},
    {"0.0.0.0:0", AF_INET, 0, 0, "0.0.0.0:0"},
    {"[2001:db8:1::1]:51820", AF_INET6, 51820, 0, "[2001:db8:1::1]:51820"},
    {"[2001:DB8:1:0::1]:443", AF_INET6, 443, 0, "[2001:db8:1::1]:443"},
    {"[::1]:65535", AF_INET6, 65535, 0, "[::1]:65535"},
    {"[::ffff:192.0.2.1]:53", AF_INET6, 53, 0, "[::ffff:192.0.2.1]:53"},
    {"[fe80::1%lo]:51820", AF_INET6, 51820, 1, "[fe80::1%lo]:51820"},
    {"[fe80::1%1]:51820", AF_INET6, 51820, 1, "[fe80::1%lo]:51820"},
    {"[fe80::1%4000000000]:7", AF_INET6, 7, 4000000000u, "[fe80::1%4000000000]:7"},
    {"[fe80::1%4294967295]:7", AF_INET6, 7, 4294967295u, "[fe80::1%4294967295]:7"},
};

static const char *const bad_endpoints[] = {
    "",
    ":",
    "192.0.2.1",
    "192.0.2.1:",
    ":51820",
    "192.0.2.1:65536",
    "192.0.2.1:99999",
    "192.0.2.1:4294967297",
    "192.0.2.1:-1",
    "192.0.2.1:+80",
    "192.0.2.1: 80",
    "192.0.2.1 :80",
    " 192.0.2.1:80",
    "192.0.2.1:80 ",
    "192.0.2.1:080",
    "192.0.2.1:0x50",
    "192.0.2.1:80:80",
    "192.0.2:80",
    "192.0.2.256:80",
    "192.0.2.1%1:80",
    "[192.0.2.1]:80",
    "2001:db8::1:51820",
    "2001:db8::1",
    "[2001:db8::1]51820",
    "[2001:db8::1]:",
    "[2001:db8::1]",
    "[2001:db8::1:80",
    "2001:db8::1]:80",
    "[[2001:db8::1]]:80",
    "[2001:db8::1]]:80",
    "[2001:db8::1]:80]",
    "[]:80",
    "[2001:db8::1]:65536",
    "[fe80::1%]:80",
    "[fe80::1%0]:80",
    "[fe80::1%01]:80",
    "[fe80::1%4294967296]:80",
    "[fe80::1%gwnosuchif0]:80",
    "[fe80::1%averyveryverylongname]:80",
    "[fe80::1%lo%1]:80",
    "[%lo]:80",
    "localhost:51820",
    "gw.example.net:51820",
    "[gw.example.net]:51820",
};

static void assert_endpoint(const union gw_sockaddr *ep, const struct good_endpoint *g)
{
	cr_assert_eq(ep->sa.sa_family, g->family, "%s", g->in);
	if (g->family == AF_INET) {
		struct in_addr want;
		size_t colon = strcspn(g->in, ":");
		char buf[32];

		memcpy(buf, g->in, colon);
		buf[colon] = '\0';
		cr_assert_eq(inet_pton(AF_INET, buf, &want), 1);
		cr_assert_eq(ep->in.sin_addr.s_addr, want.s_addr, "%s", g->in);
		cr_assert_eq(ntohs(ep->in.sin_port), g->port, "%s", g->in);
		cr_assert_eq(gw_sockaddr_len(ep), sizeof(struct sockaddr_in));
	} else {
		cr_assert_eq(ntohs(ep->in6.sin6_port), g->port, "%s", g->in);
		cr_assert_eq(ep->in6.sin6_scope_id, g->scope, "%s", g->in);
		cr_assert_eq(ep->in6.sin6_flowinfo, 0);
		cr_assert_eq(gw_sockaddr_len(ep), sizeof(struct sockaddr_in6));
	}
}

Test(endpoint, parses_good_inputs)
{
	for (size_t i = 0; i < ARRAY_LEN(good_endpoints); i++) {
		union gw_sockaddr ep;

		memset(&ep, 0xa5, sizeof(ep));
		cr_assert_eq(gw_endpoint_parse(&ep, good_endpoints[i].in), 0, "%s",
			     good_endpoints[i].in);
		assert_endpoint(&ep, &good_endpoints[i]);
	}
}

Test(endpoint, ipv6_address_bytes)
{
	static const uint8_t want[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 1, [15] = 1};
	union gw_sockaddr ep;

	cr_assert_eq(gw_endpoint_parse(&ep, "[2001:db8:1::1]:51820"), 0);
	cr_assert_arr_eq(ep.in6.sin6_addr.s6_addr, want, 16);
	cr_assert_eq(ep.in6.sin6_port, htons(51820));
}

Test(endpoint, formats_canonically_and_round_trips)
{
	for (size_t i = 0; i < ARRAY_LEN(good_endpoints); i++) {
		const struct good_endpoint *g = &good_endpoints[i];
		union gw_sockaddr ep, again;
		char buf[GW_ENDPOINT_STR_LEN];

		cr_assert_eq(gw_endpoint_parse(&ep, g->in), 0, "%s", g->in);
		gw_endpoint_format(&ep, buf, sizeof(buf));
		cr_assert_str_eq(buf, g->out, "%s", g->in);
		cr_assert_eq(gw_endpoint_parse(&again, buf), 0, "%s", buf);
		cr_assert(gw_sockaddr_equal(&ep, &again), "%s", buf);
	}
}

Test(endpoint, rejects_bad_inputs_without_touching_output)
{
	for (size_t i = 0; i < ARRAY_LEN(bad_endpoints); i++) {
		union gw_sockaddr ep, before;

		memset(&ep, 0x5a, sizeof(ep));
		before = ep;
		cr_assert_eq(gw_endpoint_parse(&ep, bad_endpoints[i]), -EINVAL, "accepted \"%s\"",
			     bad_endpoints[i]);
		cr_assert_arr_eq(&ep, &before, sizeof(ep), "changed on \"%s\"", bad_endpoints[i]);
	}
	cr_assert_eq(gw_endpoint_parse(NULL, "192.0.2.1:1"), -EINVAL);
}

Test(endpoint, every_port_boundary)
{
	static const struct {
		const char *port;
		long want; /* -1: rejected */
	} ports[] = {
	    {"0", 0},	      {"1", 1},		{"9", 9},	 {"10", 10},
	    {"65534", 65534}, {"65535", 65535}, {"65536", -1},	 {"65540", -1},
	    {"70000", -1},    {"00", -1},	{"0065535", -1},
	};

	for (size_t i = 0; i < ARRAY_LEN(ports); i++) {
		char s4[64], s6[64];
		union gw_sockaddr a, b;

		snprintf(s4, sizeof(s4), "198.51.100.1:%s", ports[i].port);
		snprintf(s6, sizeof(s6), "[2001:db8::1]:%s", ports[i].port);
		cr_assert_eq(gw_endpoint_parse(&a, s4), ports[i].want < 0 ? -EINVAL : 0, "%s", s4);
		cr_assert_eq(gw_endpoint_parse(&b, s6), ports[i].want < 0 ? -EINVAL : 0, "%s", s6);
		if (ports[i].want >= 0) {
			cr_assert_eq(ntohs(a.in.sin_port), ports[i].want);
			cr_assert_eq(ntohs(b.in6.sin6_port), ports[i].want);
		}
	}
}

Test(endpoint, longest_form_fits_the_buffer)
{
	union gw_sockaddr ep = {.in6 = {.sin6_family = AF_INET6,
					.sin6_port = htons(65535),
					.sin6_scope_id = 4294967295u}};
	const char *want = "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff%4294967295]:65535";
	char buf[GW_ENDPOINT_STR_LEN];

	memset(&ep.in6.sin6_addr, 0xff, 16);
	gw_endpoint_format(&ep, buf, sizeof(buf));
	cr_assert_str_eq(buf, want);
	/* An interface name may be 15 characters, 5 more than the index. */
	cr_assert_geq(sizeof(buf), strlen(want) + 5 + 1);
}

Test(endpoint, format_truncates_and_handles_unknown_family)
{
	union gw_sockaddr ep;
	char buf[6];

	cr_assert_eq(gw_endpoint_parse(&ep, "192.0.2.1:51820"), 0);
	gw_endpoint_format(&ep, buf, sizeof(buf));
	cr_assert_str_eq(buf, "192.0");

	memset(&ep, 0, sizeof(ep));
	gw_endpoint_format(&ep, buf, sizeof(buf));
	cr_assert_str_eq(buf, "");
	cr_assert_eq(gw_sockaddr_len(&ep), 0);
}

struct sa_equal_case {
	const char *a, *b;
	bool equal;
};

static const struct sa_equal_case sa_equal_cases[] = {
    {"192.0.2.1:51820", "192.0.2.1:51820", true},
    {"192.0.2.1:51820", "192.0.2.1:51821", false},
    {"192.0.2.1:51820", "192.0.2.2:51820", false},
    {"192.0.2.1:51820", "[::ffff:192.0.2.1]:51820", false},
    {"[2001:db8::1]:51820", "[2001:db8:0::1]:51820", true},
    {"[2001:db8::1]:51820", "[2001:db8::2]:51820", false},
    {"[2001:db8::1]:51820", "[2001:db8::1]:1", false},
    {"[fe80::1%1]:51820", "[fe80::1%lo]:51820", true},
    {"[fe80::1%1]:51820", "[fe80::1%2]:51820", false},
    {"[fe80::1%1]:51820", "[fe80::1]:51820", false},
};

Test(endpoint, sockaddr_equal)
{
	for (size_t i = 0; i < ARRAY_LEN(sa_equal_cases); i++) {
		union gw_sockaddr a, b;

		cr_assert_eq(gw_endpoint_parse(&a, sa_equal_cases[i].a), 0);
		cr_assert_eq(gw_endpoint_parse(&b, sa_equal_cases[i].b), 0);
		cr_assert_eq(gw_sockaddr_equal(&a, &b), sa_equal_cases[i].equal, "%s vs %s",
			     sa_equal_cases[i].a, sa_equal_cases[i].b);
		cr_assert_eq(gw_sockaddr_equal(&b, &a), sa_equal_cases[i].equal);
	}
}

Test(endpoint, sockaddr_equal_ignores_flowinfo)
{
	union gw_sockaddr a, b;

	cr_assert_eq(gw_endpoint_parse(&a, "[2001:db8::1]:51820"), 0);
	b = a;
	b.in6.sin6_flowinfo = htonl(0x12345);
	cr_assert(gw_sockaddr_equal(&a, &b));
}
