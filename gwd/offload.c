// SPDX-License-Identifier: MIT
/*
 * TCP segmentation (TUN reads) and coalescing (TUN writes); see offload.h.
 * Header fields are read and written with memcpy: packets sit at any
 * alignment in the I/O buffers.
 */
#include "offload.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

enum {
	TCP_FIN = 0x01,
	TCP_SYN = 0x02,
	TCP_RST = 0x04,
	TCP_PSH = 0x08,
	TCP_ACK = 0x10,
	TCP_CWR = 0x80,
	TCP_CHECK_OFF = 16,
	TCP_MIN_LEN = 20,
	IP4_MIN_LEN = 20,
	IP6_LEN = 40,
};

uint64_t gwd_csum_add(uint64_t sum, const uint8_t *p, size_t len)
{
	uint32_t w;
	uint16_t h;

	/* 32-bit words in host order into 64 bits: no carry is lost for 64 KiB. */
	while (len >= 4) {
		memcpy(&w, p, 4);
		sum += w;
		p += 4;
		len -= 4;
	}
	if (len >= 2) {
		memcpy(&h, p, 2);
		sum += h;
		p += 2;
		len -= 2;
	}
	if (len) {
		uint8_t last[2] = {p[0], 0};

		memcpy(&h, last, 2);
		sum += h;
	}
	return sum;
}

uint16_t gwd_csum_fold(uint64_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)sum;
}

static uint16_t get16(const uint8_t *p)
{
	uint16_t v;

	memcpy(&v, p, 2);
	return ntohs(v);
}

static uint32_t get32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return ntohl(v);
}

static void put16(uint8_t *p, uint16_t v)
{
	v = htons(v);
	memcpy(p, &v, 2);
}

static void put32(uint8_t *p, uint32_t v)
{
	v = htonl(v);
	memcpy(p, &v, 4);
}

/* Stores a folded sum as it is (host order in, network bytes out). */
static void put_csum(uint8_t *p, uint16_t folded)
{
	memcpy(p, &folded, 2);
}

/* The pseudo-header sum of a TCP/UDP segment of l4_len bytes in packet ip. */
static uint64_t pseudo_sum(const uint8_t *ip, uint8_t proto, size_t l4_len)
{
	bool v4 = ip[0] >> 4 == 4;
	uint64_t sum = v4 ? gwd_csum_add(0, ip + 12, 8) : gwd_csum_add(0, ip + 8, 32);

	return sum + htons(proto) + htons((uint16_t)l4_len) +
	       (v4 ? 0 : htons((uint16_t)(l4_len >> 16)));
}

static void ip4_set_csum(uint8_t *ip, size_t ihl)
{
	put_csum(ip + 10, 0);
	put_csum(ip + 10, (uint16_t)~gwd_csum_fold(gwd_csum_add(0, ip, ihl)));
}

/* --- Segmentation -------------------------------------------------------------- */

/* A checksum the kernel left to us: the field holds the pseudo-header sum. */
static int complete_csum(const struct virtio_net_hdr *h, uint8_t *pkt, size_t len)
{
	size_t start = h->csum_start, off = h->csum_offset;
	uint16_t c;

	if (start >= len || off > len - start || len - start - off < 2)
		return -EINVAL;
	c = (uint16_t)~gwd_csum_fold(gwd_csum_add(0, pkt + start, len - start));
	/* UDP reads 0 as "no checksum"; for TCP 0xffff is the same value. */
	put_csum(pkt + start + off, c ? c : 0xffff);
	return 0;
}

int gwd_offload_split(const struct virtio_net_hdr *h, uint8_t *pkt, size_t len, uint8_t *seg,
		      gwd_offload_emit_fn *emit, void *arg)
{
	uint8_t gso = h->gso_type & (uint8_t)~VIRTIO_NET_HDR_GSO_ECN;
	size_t iphl, thl, hl, payload, mss = h->gso_size;
	uint32_t seq;
	uint16_t id = 0;
	uint8_t flags;
	int n = 0;

	if (gso == VIRTIO_NET_HDR_GSO_NONE) {
		if ((h->flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) && complete_csum(h, pkt, len) < 0)
			return -EINVAL;
		emit(arg, pkt, len);
		return 1;
	}
	if (gso == VIRTIO_NET_HDR_GSO_TCPV4) {
		if (len < IP4_MIN_LEN || pkt[0] >> 4 != 4 || pkt[9] != IPPROTO_TCP)
			return -EINVAL;
		iphl = (size_t)(pkt[0] & 0x0f) * 4;
		id = get16(pkt + 4);
	} else if (gso == VIRTIO_NET_HDR_GSO_TCPV6) {
		/* Extension headers are not split (the kernel's TSO output has none). */
		if (len < IP6_LEN || pkt[0] >> 4 != 6 || pkt[6] != IPPROTO_TCP)
			return -EINVAL;
		iphl = IP6_LEN;
	} else {
		return -EINVAL;
	}
	if (iphl < IP4_MIN_LEN || len < iphl + TCP_MIN_LEN || mss == 0)
		return -EINVAL;
	thl = (size_t)(pkt[iphl + 12] >> 4) * 4;
	hl = iphl + thl;
	if (thl < TCP_MIN_LEN || len < hl)
		return -EINVAL;
	payload = len - hl;
	seq = get32(pkt + iphl + 4);
	flags = pkt[iphl + 13];
	for (size_t off = 0; off < payload || (payload == 0 && n == 0); off += mss) {
		size_t plen = payload - off < mss ? payload - off : mss;
		bool last = off + plen >= payload;
		uint8_t *tcp = seg + iphl;

		memcpy(seg, pkt, hl);
		memcpy(seg + hl, pkt + hl + off, plen);
		if (iphl == IP6_LEN) {
			put16(seg + 4, (uint16_t)(thl + plen));
		} else {
			put16(seg + 2, (uint16_t)(hl + plen));
			put16(seg + 4, (uint16_t)(id + n));
			ip4_set_csum(seg, iphl);
		}
		put32(tcp + 4, seq + (uint32_t)off);
		tcp[13] = flags;
		if (!last)
			tcp[13] &= (uint8_t) ~(TCP_FIN | TCP_PSH);
		if (n > 0)
			tcp[13] &= (uint8_t)~TCP_CWR;
		put_csum(tcp + TCP_CHECK_OFF, 0);
		put_csum(tcp + TCP_CHECK_OFF,
			 (uint16_t)~gwd_csum_fold(gwd_csum_add(
			     pseudo_sum(seg, IPPROTO_TCP, thl + plen), tcp, thl + plen)));
		emit(arg, seg, hl + plen);
		n++;
		if (payload == 0)
			break;
	}
	return n;
}

/* --- Coalescing ----------------------------------------------------------------- */

/* What coalescing needs to know of a TCP packet. */
struct tcp_pkt {
	size_t ip_len, hdr_len, payload;
	uint32_t seq;
	uint8_t flags;
};

/*
 * A TCP packet that may be joined to others: IPv4 without options or
 * fragmentation, or IPv6 without extension headers; only ACK (and PSH) set;
 * some payload; both checksums right (authenticated data can still carry a
 * wrong checksum: the kernel would drop that segment, so it is not hidden
 * inside a super-packet whose checksum the kernel takes on trust). Returns
 * 1 when joinable, 0 for another TCP packet (it still ends its flow), -1
 * when not TCP at all.
 */
static int parse_tcp(const uint8_t *p, size_t len, struct tcp_pkt *t)
{
	size_t iphl;

	if (len >= IP4_MIN_LEN && p[0] >> 4 == 4) {
		if (p[9] != IPPROTO_TCP)
			return -1;
		iphl = (size_t)(p[0] & 0x0f) * 4;
		if (iphl != IP4_MIN_LEN || (get16(p + 6) & 0x3fff) || get16(p + 2) != len)
			return 0;
	} else if (len >= IP6_LEN && p[0] >> 4 == 6) {
		if (p[6] != IPPROTO_TCP)
			return -1;
		iphl = IP6_LEN;
		if ((size_t)get16(p + 4) + IP6_LEN != len)
			return 0;
	} else {
		return -1;
	}
	if (len < iphl + TCP_MIN_LEN)
		return 0;
	t->ip_len = iphl;
	t->hdr_len = iphl + (size_t)(p[iphl + 12] >> 4) * 4;
	if (t->hdr_len < iphl + TCP_MIN_LEN || t->hdr_len >= len)
		return 0;
	t->payload = len - t->hdr_len;
	t->seq = get32(p + iphl + 4);
	t->flags = p[iphl + 13];
	if ((t->flags & (uint8_t)~TCP_PSH) != TCP_ACK)
		return 0;
	if (iphl == IP4_MIN_LEN && gwd_csum_fold(gwd_csum_add(0, p, iphl)) != 0xffff)
		return 0;
	if (gwd_csum_fold(gwd_csum_add(pseudo_sum(p, IPPROTO_TCP, len - iphl), p + iphl,
				       len - iphl)) != 0xffff)
		return 0;
	return 1;
}

/* Same addresses and ports: the packet belongs to the flow. */
static bool same_flow(const uint8_t *a, const uint8_t *b, size_t ip_len)
{
	if (a[0] >> 4 != b[0] >> 4)
		return false;
	if (ip_len == IP4_MIN_LEN)
		return memcmp(a + 12, b + 12, 8) == 0 && memcmp(a + 20, b + 20, 4) == 0;
	return memcmp(a + 8, b + 8, 32) == 0 && memcmp(a + 40, b + 40, 4) == 0;
}

/* Whether packet p (parsed as t) continues flow f, whose first segment heads f->buf. */
static bool can_join(const struct gwd_gro_flow *f, const uint8_t *p, const struct tcp_pkt *t)
{
	const uint8_t *q = f->buf;
	size_t ip = f->ip_len;

	if (f->closed || t->hdr_len != f->hdr_len || t->seq != f->next_seq ||
	    t->payload > f->seg_len || f->len + t->payload > GWD_GRO_MAX_LEN ||
	    f->nsegs >= GWD_GRO_MAX_SEGS)
		return false;
	if (ip == IP4_MIN_LEN) {
		/* TOS, flags/DF, TTL, protocol alike. */
		if (p[1] != q[1] || p[6] != q[6] || p[8] != q[8])
			return false;
	} else if (memcmp(p, q, 4) != 0 || p[7] != q[7]) {
		return false;
	}
	/* ACK number, flags but PSH, window; options byte for byte (timestamps too). */
	return memcmp(p + ip + 8, q + ip + 8, 4) == 0 &&
	       ((p[ip + 13] ^ q[ip + 13]) & (uint8_t)~TCP_PSH) == 0 &&
	       memcmp(p + ip + 14, q + ip + 14, 2) == 0 &&
	       memcmp(p + ip + TCP_MIN_LEN, q + ip + TCP_MIN_LEN, f->hdr_len - ip - TCP_MIN_LEN) ==
		   0;
}

static int write_plain(struct gwd_gro *g, const uint8_t *pkt, size_t len)
{
	static const struct virtio_net_hdr plain = {.gso_type = VIRTIO_NET_HDR_GSO_NONE};
	int err = g->write(g->arg, &plain, pkt, len);

	if (err)
		g->write_errors++;
	else
		g->written++;
	return err;
}

/* Writes flow f (as it was if it holds one segment) and frees it. */
static int flow_write(struct gwd_gro *g, struct gwd_gro_flow *f)
{
	struct virtio_net_hdr h = {0};
	uint8_t *p = f->buf;
	size_t ip = f->ip_len, len = f->len;
	int err;

	if (f->nsegs == 1) {
		err = write_plain(g, p, len);
		f->len = 0;
		return err;
	}
	if (ip == IP4_MIN_LEN) {
		put16(p + 2, (uint16_t)len);
		ip4_set_csum(p, ip);
		h.gso_type = VIRTIO_NET_HDR_GSO_TCPV4;
	} else {
		put16(p + 4, (uint16_t)(len - IP6_LEN));
		h.gso_type = VIRTIO_NET_HDR_GSO_TCPV6;
	}
	/* The kernel completes the checksum from the pseudo-header sum, if it ever needs it. */
	put_csum(p + ip + TCP_CHECK_OFF, gwd_csum_fold(pseudo_sum(p, IPPROTO_TCP, len - ip)));
	h.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
	h.hdr_len = (uint16_t)f->hdr_len;
	h.gso_size = (uint16_t)f->seg_len;
	h.csum_start = (uint16_t)ip;
	h.csum_offset = TCP_CHECK_OFF;
	err = g->write(g->arg, &h, p, len);
	if (err)
		g->write_errors++;
	else
		g->written++;
	f->len = 0;
	return err;
}

int gwd_gro_init(struct gwd_gro *g, gwd_gro_write_fn *write, void *arg)
{
	memset(g, 0, sizeof(*g));
	g->write = write;
	g->arg = arg;
	for (size_t i = 0; i < GWD_GRO_FLOWS; i++) {
		g->flows[i].buf = malloc(GWD_GRO_MAX_LEN);
		if (!g->flows[i].buf) {
			gwd_gro_free(g);
			return -ENOMEM;
		}
	}
	return 0;
}

void gwd_gro_free(struct gwd_gro *g)
{
	for (size_t i = 0; i < GWD_GRO_FLOWS; i++) {
		free(g->flows[i].buf);
		g->flows[i].buf = NULL;
	}
}

int gwd_gro_flush(struct gwd_gro *g)
{
	int ret = 0, err;

	for (size_t i = 0; i < GWD_GRO_FLOWS; i++) {
		if (g->flows[i].len && (err = flow_write(g, &g->flows[i])))
			ret = err;
	}
	return ret;
}

static struct gwd_gro_flow *find_flow(struct gwd_gro *g, const uint8_t *p, size_t ip_len)
{
	for (size_t i = 0; i < GWD_GRO_FLOWS; i++) {
		struct gwd_gro_flow *f = &g->flows[i];

		if (f->len && f->ip_len == ip_len && same_flow(f->buf, p, ip_len))
			return f;
	}
	return NULL;
}

/* A free flow slot, writing the oldest held flow when there is none. */
static struct gwd_gro_flow *free_flow(struct gwd_gro *g, int *err)
{
	struct gwd_gro_flow *oldest = NULL;

	for (size_t i = 0; i < GWD_GRO_FLOWS; i++) {
		struct gwd_gro_flow *f = &g->flows[i];

		if (!f->len)
			return f;
		if (!oldest || f->age < oldest->age)
			oldest = f;
	}
	*err = flow_write(g, oldest);
	return oldest;
}

int gwd_gro_add(struct gwd_gro *g, const uint8_t *pkt, size_t len)
{
	struct gwd_gro_flow *f;
	struct tcp_pkt t = {0};
	int kind = parse_tcp(pkt, len, &t), err = 0, err2;

	if (kind < 0)
		return write_plain(g, pkt, len);
	/* Of a TCP packet only the address family is known for sure; the ports are there. */
	f = len >= (pkt[0] >> 4 == 4 ? 24u : 44u)
		? find_flow(g, pkt, pkt[0] >> 4 == 4 ? IP4_MIN_LEN : IP6_LEN)
		: NULL;
	if (kind == 0) {
		/* IPv4 options move the ports: the flow is unknown, so every flow goes first. */
		if (pkt[0] >> 4 == 4 && (pkt[0] & 0x0f) != 5)
			err = gwd_gro_flush(g);
		else if (f)
			err = flow_write(g, f);
		err2 = write_plain(g, pkt, len);
		return err2 ? err2 : err;
	}
	if (f && can_join(f, pkt, &t)) {
		memcpy(f->buf + f->len, pkt + t.hdr_len, t.payload);
		f->len += t.payload;
		f->nsegs++;
		f->next_seq += (uint32_t)t.payload;
		g->coalesced++;
		if (t.flags & TCP_PSH) {
			f->buf[f->ip_len + 13] |= TCP_PSH;
			f->closed = true;
		}
		if (t.payload < f->seg_len)
			f->closed = true;
		if (f->closed || f->len + f->seg_len > GWD_GRO_MAX_LEN ||
		    f->nsegs >= GWD_GRO_MAX_SEGS)
			return flow_write(g, f);
		return 0;
	}
	if (f)
		err = flow_write(g, f);
	/* A segment that ends its flow already is not worth holding. */
	if (t.flags & TCP_PSH) {
		err2 = write_plain(g, pkt, len);
		return err2 ? err2 : err;
	}
	if (!f)
		f = free_flow(g, &err);
	memcpy(f->buf, pkt, len);
	f->len = len;
	f->hdr_len = t.hdr_len;
	f->ip_len = t.ip_len;
	f->seg_len = t.payload;
	f->nsegs = 1;
	f->next_seq = t.seq + (uint32_t)t.payload;
	f->closed = false;
	f->age = ++g->clock;
	return err;
}
