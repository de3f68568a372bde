// SPDX-License-Identifier: MIT
/*
 * Arbitrary bytes into the UAPI set parser, twice: as a set body in one shot,
 * and as a socket stream through the request reader in several chunkings.
 * Every accepted transaction must be internally consistent and must survive
 * a round trip (written back with the reply buffer helpers, parsed again,
 * equal); everything is freed on every path (the sanitizer build checks).
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "uapi_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_consistent(const struct gwd_uapi_set *set)
{
	size_t next = 0;

	if (set->n_peers > set->cap_peers || set->n_allowed_ips > set->cap_allowed_ips)
		abort();
	for (size_t i = 0; i < set->n_peers; i++) {
		if (set->peers[i].first_allowed_ip != next)
			abort();
		next += set->peers[i].n_allowed_ips;
	}
	if (next != set->n_allowed_ips)
		abort();
}

static void write_peer(struct gwd_uapi_buf *b, const struct gwd_uapi_set *set,
		       const struct gwd_uapi_peer *p)
{
	const struct gw_prefix *ips = gwd_uapi_peer_allowed_ips(set, p);

	gwd_uapi_buf_append_key_hex(b, "public_key", p->public_key);
	if (p->flags & GWD_UAPI_PEER_REMOVE)
		gwd_uapi_buf_append_kv(b, "remove", "true");
	if (p->flags & GWD_UAPI_PEER_UPDATE_ONLY)
		gwd_uapi_buf_append_kv(b, "update_only", "true");
	if (p->flags & GWD_UAPI_PEER_PRESHARED_KEY)
		gwd_uapi_buf_append_key_hex(b, "preshared_key", p->preshared_key);
	if (p->flags & GWD_UAPI_PEER_ENDPOINT)
		gwd_uapi_buf_append_endpoint(b, "endpoint", &p->endpoint);
	if (p->flags & GWD_UAPI_PEER_KEEPALIVE)
		gwd_uapi_buf_append_u64(b, "persistent_keepalive_interval",
					p->persistent_keepalive);
	if (p->flags & GWD_UAPI_PEER_REPLACE_ALLOWED_IPS)
		gwd_uapi_buf_append_kv(b, "replace_allowed_ips", "true");
	for (size_t j = 0; j < p->n_allowed_ips; j++)
		gwd_uapi_buf_append_prefix(b, "allowed_ip", &ips[j]);
}

static void write_set(struct gwd_uapi_buf *b, const struct gwd_uapi_set *set)
{
	if (set->flags & GWD_UAPI_DEV_PRIVATE_KEY)
		gwd_uapi_buf_append_key_hex(b, "private_key", set->private_key);
	if (set->flags & GWD_UAPI_DEV_LISTEN_PORT)
		gwd_uapi_buf_append_u64(b, "listen_port", set->listen_port);
	if (set->flags & GWD_UAPI_DEV_FWMARK)
		gwd_uapi_buf_append_u64(b, "fwmark", set->fwmark);
	if (set->flags & GWD_UAPI_DEV_REPLACE_PEERS)
		gwd_uapi_buf_append_kv(b, "replace_peers", "true");
	for (size_t i = 0; i < set->n_peers; i++)
		write_peer(b, set, &set->peers[i]);
}

static void check_round_trip(const struct gwd_uapi_set *a)
{
	struct gwd_uapi_buf b;
	struct gwd_uapi_set c;

	check_consistent(a);
	gwd_uapi_buf_init(&b, 4 * GWD_UAPI_SET_MAX);
	write_set(&b, a);
	if (b.err || gwd_uapi_set_parse(&c, b.data, b.len, NULL) != 0)
		abort();
	if (c.flags != a->flags || c.n_peers != a->n_peers || c.n_allowed_ips != a->n_allowed_ips ||
	    (a->flags & GWD_UAPI_DEV_LISTEN_PORT && c.listen_port != a->listen_port) ||
	    (a->flags & GWD_UAPI_DEV_FWMARK && c.fwmark != a->fwmark) ||
	    memcmp(c.private_key, a->private_key, GW_KEY_LEN) != 0)
		abort();
	if (a->n_peers && memcmp(c.peers, a->peers, a->n_peers * sizeof(*a->peers)) != 0)
		abort();
	if (a->n_allowed_ips &&
	    memcmp(c.allowed_ips, a->allowed_ips, a->n_allowed_ips * sizeof(*a->allowed_ips)) != 0)
		abort();
	gwd_uapi_set_free(&c);
	gwd_uapi_buf_free(&b);
}

static void one_shot(const uint8_t *data, size_t size)
{
	struct gwd_uapi_set set;
	struct gwd_uapi_error err;
	int ret = gwd_uapi_set_parse(&set, (const char *)data, size, &err);

	if (ret != err.err || (ret && (!err.msg || err.line == 0)) || ret > 0)
		abort();
	if (ret == 0)
		check_round_trip(&set);
	gwd_uapi_set_free(&set);
}

static void stream(const uint8_t *data, size_t size, size_t chunk)
{
	struct gwd_uapi_reader r;
	struct gwd_uapi_set set;
	size_t off = 0;

	gwd_uapi_reader_init(&r);
	gwd_uapi_set_init(&set, 0);
	while (off < size) {
		size_t n = size - off < chunk ? size - off : chunk;
		const char *line;
		size_t used, ll;
		int ev = gwd_uapi_reader_next(&r, data + off, n, &used, &line, &ll);

		if (ev < 0)
			break;
		if (used > n || (ev != GWD_UAPI_EV_MORE && used == 0))
			abort();
		off += used;
		if (ev == GWD_UAPI_EV_SET_LINE) {
			if (!line || ll == 0 || ll > GWD_UAPI_LINE_MAX + 1)
				abort();
			gwd_uapi_set_line(&set, line, ll);
		} else if (ev == GWD_UAPI_EV_SET_END) {
			if (gwd_uapi_set_finish(&set, NULL) == 0)
				check_round_trip(&set);
			gwd_uapi_set_free(&set);
		}
	}
	gwd_uapi_set_free(&set);
	gwd_uapi_reader_wipe(&r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	one_shot(data, size);
	stream(data, size, 1);
	stream(data, size, 7);
	stream(data, size, size ? size : 1);
	return 0;
}
