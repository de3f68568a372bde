/* SPDX-License-Identifier: MIT */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "offload.h"

enum { MAXPKTS = 128, MSS = 1400, OPT_LEN = 12 };

/* Packets captured from split (emit) or from the coalescer (write). */
struct capture {
	size_t n;
	struct virtio_net_hdr h[MAXPKTS];
	uint8_t *pkt[MAXPKTS];
	size_t len[MAXPKTS];
	int fail_writes;
};

static void cap_free(struct capture *c)
{
	for (size_t i = 0; i < c->n; i++)
		free(c->pkt[i]);
	c->n = 0;
}

static void cap_put(struct capture *c, const struct virtio_net_hdr *h, const uint8_t *p, size_t len)
{
	cr_assert_lt(c->n, MAXPKTS);
	c->pkt[c->n] = malloc(len);
	cr_assert_not_null(c->pkt[c->n]);
	memcpy(c->pkt[c->n], p, len);
	c->len[c->n] = len;
	if (h)
		c->h[c->n] = *h;
	c->n++;
}

static void emit(void *arg, uint8_t *pkt, size_t len)
{
	cap_put(arg, NULL, pkt, len);
}

static int gro_write(void *arg, const struct virtio_net_hdr *h, const uint8_t *pkt, size_t len)
{
	struct capture *c = arg;

	if (c->fail_writes)
		return -EIO;
	cap_put(c, h, pkt, len);
	return 0;
}

static uint16_t fold_at(const uint8_t *p, size_t len, uint64_t sum)
{
	return gwd_csum_fold(gwd_csum_add(sum, p, len));
}

/* The pseudo-header sum, built from bytes so it does not share the code under test. */
static uint64_t pseudo(const uint8_t *ip, size_t l4_len)
{
	uint8_t b[40] = {0};
	size_t n;

	if (ip[0] >> 4 == 4) {
		memcpy(b, ip + 12, 8);
		b[9] = IPPROTO_TCP;
		b[10] = (uint8_t)(l4_len >> 8);
		b[11] = (uint8_t)l4_len;
		n = 12;
	} else {
		memcpy(b, ip + 8, 32);
		b[34] = (uint8_t)(l4_len >> 8);
		b[35] = (uint8_t)l4_len;
		b[39] = IPPROTO_TCP;
		n = 40;
	}
	return gwd_csum_add(0, b, n);
}

static size_t iphl_of(const uint8_t *p)
{
	return p[0] >> 4 == 4 ? (size_t)(p[0] & 15) * 4 : 40;
}

/* Both checksums of a TCP packet verify. */
static bool csums_ok(const uint8_t *p, size_t len)
{
	size_t ihl = iphl_of(p);

	if (p[0] >> 4 == 4 && fold_at(p, ihl, 0) != 0xffff)
		return false;
	return fold_at(p + ihl, len - ihl, pseudo(p, len - ihl)) == 0xffff;
}

static uint32_t seq_of(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p + iphl_of(p) + 4, 4);
	return ntohl(v);
}

static uint8_t flags_of(const uint8_t *p)
{
	return p[iphl_of(p) + 13];
}

/* A TCP packet with timestamps-sized options and payload[i] = i * 7 + salt. */
static size_t make_tcp(uint8_t *p, int family, size_t payload, uint32_t seq, uint8_t flags,
		       uint8_t salt)
{
	size_t ihl = family == 4 ? 20 : 40, thl = 20 + OPT_LEN, len = ihl + thl + payload;
	uint8_t *t = p + ihl;

	memset(p, 0, ihl + thl);
	if (family == 4) {
		p[0] = 0x45;
		p[2] = (uint8_t)(len >> 8);
		p[3] = (uint8_t)len;
		p[4] = 0x12;
		p[5] = 0x34;
		p[6] = 0x40; /* DF */
		p[8] = 64;
		p[9] = IPPROTO_TCP;
		memcpy(p + 12, (uint8_t[]){198, 18, 0, 1, 198, 18, 0, 2}, 8);
	} else {
		p[0] = 0x60;
		p[4] = (uint8_t)((thl + payload) >> 8);
		p[5] = (uint8_t)(thl + payload);
		p[6] = IPPROTO_TCP;
		p[7] = 64;
		p[8] = 0x20;
		p[9] = 0x01;
		p[10] = 0x0d;
		p[11] = 0xb8;
		p[23] = 1;
		p[24] = 0x20;
		p[25] = 0x01;
		p[26] = 0x0d;
		p[27] = 0xb8;
		p[39] = 2;
	}
	t[0] = 0x9c;
	t[1] = 0x40; /* 40000 */
	t[2] = 0x14;
	t[3] = 0x51; /* 5201 */
	seq = htonl(seq);
	memcpy(t + 4, &seq, 4);
	t[8] = 0xab; /* ack */
	t[12] = (uint8_t)((thl / 4) << 4);
	t[13] = flags;
	t[14] = 0x01; /* window */
	t[20] = 1;
	t[21] = 1;
	t[22] = 8;
	t[23] = 10;
	t[27] = 5;
	t[31] = 9;
	for (size_t i = 0; i < payload; i++)
		p[ihl + thl + i] = (uint8_t)(i * 7 + salt);
	if (family == 4) {
		uint16_t c = (uint16_t)~fold_at(p, 20, 0);

		memcpy(p + 10, &c, 2);
	}
	uint16_t c = (uint16_t)~fold_at(t, thl + payload, pseudo(p, thl + payload));

	memcpy(t + 16, &c, 2);
	return len;
}

Test(offload, checksum_rfc1071_example)
{
	const uint8_t b[] = {0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7};
	uint16_t s = gwd_csum_fold(gwd_csum_add(0, b, sizeof(b)));
	uint8_t out[2];

	memcpy(out, &s, 2);
	cr_assert_eq(out[0], 0xdd);
	cr_assert_eq(out[1], 0xf2);
	/* An odd length pads with a zero byte. */
	s = gwd_csum_fold(gwd_csum_add(0, b, 3));
	memcpy(out, &s, 2);
	cr_assert_eq(out[0], 0xf2);
	cr_assert_eq(out[1], 0x01);
}

/*
 * A super-packet as the kernel hands it over: IP length of the whole, the
 * TCP checksum field holding the pseudo-header sum (NEEDS_CSUM).
 */
static size_t make_super(uint8_t *p, int family, size_t payload, uint8_t flags,
			 struct virtio_net_hdr *h)
{
	size_t len = make_tcp(p, family, payload, 1000, flags, 3), ihl = family == 4 ? 20 : 40;
	uint16_t ps = gwd_csum_fold(pseudo(p, len - ihl));

	memcpy(p + ihl + 16, &ps, 2);
	memset(h, 0, sizeof(*h));
	h->flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
	h->gso_type = family == 4 ? VIRTIO_NET_HDR_GSO_TCPV4 : VIRTIO_NET_HDR_GSO_TCPV6;
	h->gso_size = MSS;
	h->hdr_len = (uint16_t)(ihl + 20 + OPT_LEN);
	h->csum_start = (uint16_t)ihl;
	h->csum_offset = 16;
	return len;
}

static void check_segments(struct capture *c, const uint8_t *super, size_t payload, int family)
{
	size_t ihl = family == 4 ? 20 : 40, hl = ihl + 20 + OPT_LEN, got = 0;

	cr_assert_eq(c->n, (payload + MSS - 1) / MSS);
	for (size_t i = 0; i < c->n; i++) {
		const uint8_t *p = c->pkt[i];
		size_t plen = c->len[i] - hl;

		cr_assert(csums_ok(p, c->len[i]), "segment %zu: checksums", i);
		cr_assert_eq(plen, i + 1 < c->n ? (size_t)MSS : payload - MSS * i);
		cr_assert_eq(seq_of(p), 1000 + got);
		cr_assert_eq(memcmp(p + hl, super + hl + got, plen), 0, "segment %zu payload", i);
		cr_assert_eq(flags_of(p) & 0x08, i + 1 == c->n ? 0x08 : 0, "PSH on the last only");
		if (family == 4) {
			cr_assert_eq((size_t)(p[2] << 8 | p[3]), c->len[i]);
			cr_assert_eq(p[4] << 8 | p[5], 0x1234 + (int)i, "IP id");
		} else {
			cr_assert_eq((size_t)(p[4] << 8 | p[5]) + 40, c->len[i]);
		}
		got += plen;
	}
	cr_assert_eq(got, payload);
}

static void split_coalesce_roundtrip(int family)
{
	static uint8_t super[70000], seg[70000];
	size_t payload = 20 * MSS + 321;
	struct virtio_net_hdr h;
	size_t len = make_super(super, family, payload, 0x18, &h);
	struct capture segs = {0}, out = {0}, again = {0};
	struct gwd_gro g;

	cr_assert_eq(gwd_offload_split(&h, super, len, seg, emit, &segs), 21);
	check_segments(&segs, super, payload, family);

	/* Coalesced again: one super-packet the kernel would split back into the same. */
	cr_assert_eq(gwd_gro_init(&g, gro_write, &out), 0);
	for (size_t i = 0; i < segs.n; i++)
		cr_assert_eq(gwd_gro_add(&g, segs.pkt[i], segs.len[i]), 0);
	cr_assert_eq(gwd_gro_flush(&g), 0);
	cr_assert_eq(out.n, 1, "one write, not %zu", out.n);
	cr_assert_eq(out.h[0].gso_type,
		     family == 4 ? VIRTIO_NET_HDR_GSO_TCPV4 : VIRTIO_NET_HDR_GSO_TCPV6);
	cr_assert_eq(out.h[0].gso_size, MSS);
	cr_assert_eq(out.h[0].flags, VIRTIO_NET_HDR_F_NEEDS_CSUM);
	cr_assert_eq(out.len[0], len);
	cr_assert_eq(g.coalesced, 20);
	cr_assert_eq(gwd_offload_split(&out.h[0], out.pkt[0], out.len[0], seg, emit, &again), 21);
	check_segments(&again, super, payload, family);
	for (size_t i = 0; i < segs.n; i++) {
		cr_assert_eq(again.len[i], segs.len[i]);
		cr_assert_eq(memcmp(again.pkt[i], segs.pkt[i], segs.len[i]), 0, "segment %zu", i);
	}
	gwd_gro_free(&g);
	cap_free(&segs);
	cap_free(&out);
	cap_free(&again);
}

Test(offload, split_and_coalesce_ipv4)
{
	split_coalesce_roundtrip(4);
}

Test(offload, split_and_coalesce_ipv6)
{
	split_coalesce_roundtrip(6);
}

Test(offload, split_keeps_fin_and_cwr_in_place)
{
	static uint8_t super[70000], seg[70000];
	struct virtio_net_hdr h;
	size_t len = make_super(super, 4, 3 * MSS, 0x80 | 0x10 | 0x01, &h);
	struct capture c = {0};

	h.gso_type |= VIRTIO_NET_HDR_GSO_ECN;
	cr_assert_eq(gwd_offload_split(&h, super, len, seg, emit, &c), 3);
	cr_assert_eq(flags_of(c.pkt[0]), 0x90, "CWR on the first only, no FIN");
	cr_assert_eq(flags_of(c.pkt[1]), 0x10);
	cr_assert_eq(flags_of(c.pkt[2]), 0x11, "FIN on the last");
	cap_free(&c);
}

Test(offload, partial_checksum_completed)
{
	uint8_t p[200], seg[200];
	size_t len = make_tcp(p, 4, 100, 5, 0x10, 1);
	uint16_t ps = gwd_csum_fold(pseudo(p, len - 20));
	struct virtio_net_hdr h = {
	    .flags = VIRTIO_NET_HDR_F_NEEDS_CSUM, .csum_start = 20, .csum_offset = 16};
	struct capture c = {0};

	memcpy(p + 36, &ps, 2);
	cr_assert_eq(gwd_offload_split(&h, p, len, seg, emit, &c), 1);
	cr_assert(csums_ok(c.pkt[0], c.len[0]));
	cap_free(&c);
}

Test(offload, split_rejects_bad_headers)
{
	static uint8_t p[3000], seg[3000];
	struct virtio_net_hdr h;
	size_t len = make_super(p, 6, 2000, 0x10, &h);
	struct capture c = {0};

	h.gso_type = VIRTIO_NET_HDR_GSO_TCPV4; /* but an IPv6 packet */
	cr_assert_eq(gwd_offload_split(&h, p, len, seg, emit, &c), -EINVAL);
	h.gso_type = VIRTIO_NET_HDR_GSO_UDP;
	cr_assert_eq(gwd_offload_split(&h, p, len, seg, emit, &c), -EINVAL);
	h.gso_type = VIRTIO_NET_HDR_GSO_TCPV6;
	h.gso_size = 0;
	cr_assert_eq(gwd_offload_split(&h, p, len, seg, emit, &c), -EINVAL);
	memset(&h, 0, sizeof(h));
	h.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
	h.csum_start = (uint16_t)len;
	cr_assert_eq(gwd_offload_split(&h, p, len, seg, emit, &c), -EINVAL);
	h.csum_start = (uint16_t)(len - 1);
	cr_assert_eq(gwd_offload_split(&h, p, len, seg, emit, &c), -EINVAL);
	cr_assert_eq(gwd_offload_split(&h, p, 10, seg, emit, &c), -EINVAL);
	cr_assert_eq(c.n, 0, "nothing emitted");
}

/* Feeds packets (family 4), returns the writes. */
static void feed(struct capture *out, uint8_t **pkts, size_t *lens, size_t n)
{
	struct gwd_gro g;

	cr_assert_eq(gwd_gro_init(&g, gro_write, out), 0);
	for (size_t i = 0; i < n; i++)
		cr_assert_eq(gwd_gro_add(&g, pkts[i], lens[i]), 0);
	cr_assert_eq(gwd_gro_flush(&g), 0);
	gwd_gro_free(&g);
}

static size_t payload_of(const struct capture *c, size_t i)
{
	return c->len[i] - iphl_of(c->pkt[i]) - 20 - OPT_LEN;
}

Test(offload, coalesce_only_in_order_and_verified)
{
	static uint8_t b[6][1600];
	uint8_t *pk[6] = {b[0], b[1], b[2], b[3], b[4], b[5]};
	size_t len[6];
	struct capture out = {0};

	/* 0 1 | 3 (a gap) 4 | 5 bad checksum: written alone, in order. */
	len[0] = make_tcp(b[0], 4, MSS, 0, 0x10, 0);
	len[1] = make_tcp(b[1], 4, MSS, MSS, 0x10, 0);
	len[2] = make_tcp(b[2], 4, MSS, 3 * MSS, 0x10, 0);
	len[3] = make_tcp(b[3], 4, MSS, 4 * MSS, 0x10, 0);
	len[4] = make_tcp(b[4], 4, MSS, 5 * MSS, 0x10, 0);
	b[4][100] ^= 1;
	len[5] = make_tcp(b[5], 4, MSS, 6 * MSS, 0x10, 0);
	feed(&out, pk, len, 6);
	cr_assert_eq(out.n, 4);
	cr_assert_eq(seq_of(out.pkt[0]), 0);
	cr_assert_eq(payload_of(&out, 0), 2 * MSS);
	cr_assert_eq(seq_of(out.pkt[1]), 3 * MSS);
	cr_assert_eq(payload_of(&out, 1), 2 * MSS);
	cr_assert_eq(seq_of(out.pkt[2]), 5 * MSS, "the corrupt one, alone and unchanged");
	cr_assert_eq(out.h[2].gso_type, VIRTIO_NET_HDR_GSO_NONE);
	cr_assert_eq(memcmp(out.pkt[2], b[4], len[4]), 0);
	cr_assert_eq(seq_of(out.pkt[3]), 6 * MSS);
	cr_assert_eq(out.h[3].gso_type, VIRTIO_NET_HDR_GSO_NONE, "one segment: as it came");
	cr_assert_eq(memcmp(out.pkt[3], b[5], len[5]), 0);
	cap_free(&out);
}

Test(offload, coalesce_ends_at_short_segment_psh_and_other_flags)
{
	static uint8_t b[6][1600];
	uint8_t *pk[6] = {b[0], b[1], b[2], b[3], b[4], b[5]};
	size_t len[6];
	struct capture out = {0};

	len[0] = make_tcp(b[0], 4, MSS, 0, 0x10, 0);
	len[1] = make_tcp(b[1], 4, 500, MSS, 0x10, 0); /* short: ends the flow */
	len[2] = make_tcp(b[2], 4, MSS, MSS + 500, 0x10, 0);
	len[3] = make_tcp(b[3], 4, MSS, 2 * MSS + 500, 0x18, 0); /* PSH: ends it too */
	len[4] = make_tcp(b[4], 4, MSS, 3 * MSS + 500, 0x10, 0);
	len[5] = make_tcp(b[5], 4, 0, 4 * MSS + 500, 0x11, 0); /* FIN: alone */
	feed(&out, pk, len, 6);
	cr_assert_eq(out.n, 4);
	cr_assert_eq(payload_of(&out, 0), MSS + 500);
	cr_assert_eq(payload_of(&out, 1), 2 * MSS);
	cr_assert_eq(flags_of(out.pkt[1]), 0x18, "PSH carried to the super-packet");
	cr_assert_eq(payload_of(&out, 2), MSS);
	cr_assert_eq(flags_of(out.pkt[3]), 0x11);
	for (size_t i = 0; i + 1 < out.n; i++)
		cr_assert_lt(seq_of(out.pkt[i]), seq_of(out.pkt[i + 1]), "order kept");
	cap_free(&out);
}

Test(offload, flows_kept_apart_and_other_protocols_pass)
{
	static uint8_t b[5][1600];
	uint8_t *pk[5] = {b[0], b[1], b[2], b[3], b[4]};
	size_t len[5];
	struct capture out = {0};

	len[0] = make_tcp(b[0], 4, MSS, 0, 0x10, 0);
	len[1] = make_tcp(b[1], 6, MSS, 0, 0x10, 0);
	len[2] = make_tcp(b[2], 4, MSS, MSS, 0x10, 0);
	len[3] = make_tcp(b[3], 6, MSS, MSS, 0x10, 0);
	len[4] = make_tcp(b[4], 4, 100, 0, 0x10, 0);
	b[4][9] = IPPROTO_UDP; /* not TCP: written at once */
	feed(&out, pk, len, 5);
	cr_assert_eq(out.n, 3);
	cr_assert_eq(b[4][9], out.pkt[0][9], "the UDP packet first");
	cr_assert_eq(payload_of(&out, 1), 2 * MSS);
	cr_assert_eq(payload_of(&out, 2), 2 * MSS);
	cap_free(&out);
}

Test(offload, failed_writes_are_reported)
{
	static uint8_t b[2][1600];
	struct capture out = {.fail_writes = 1};
	struct gwd_gro g;
	size_t l0 = make_tcp(b[0], 4, MSS, 0, 0x10, 0), l1 = make_tcp(b[1], 4, MSS, MSS, 0x10, 0);

	cr_assert_eq(gwd_gro_init(&g, gro_write, &out), 0);
	cr_assert_eq(gwd_gro_add(&g, b[0], l0), 0);
	cr_assert_eq(gwd_gro_add(&g, b[1], l1), 0);
	cr_assert_eq(gwd_gro_flush(&g), -EIO);
	cr_assert_eq(g.write_errors, 1);
	cr_assert_eq(gwd_gro_flush(&g), 0, "nothing held after a failed write");
	gwd_gro_free(&g);
}
