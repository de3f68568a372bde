// SPDX-License-Identifier: MIT
/*
 * UAPI request reader, set parser and get reply buffer; see uapi_parse.h for
 * the protocol rules this follows.
 */
#include "uapi_parse.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw/key.h"

/* --- Request reader ----------------------------------------------------- */

enum reader_state {
	R_OP,	   /* expecting "get=1" or "set=1" */
	R_GET_END, /* after "get=1": expecting the blank line */
	R_SET,	   /* inside a set body */
};

void gwd_uapi_reader_init(struct gwd_uapi_reader *r)
{
	memset(r, 0, sizeof(*r));
	r->state = R_OP;
}

void gwd_uapi_reader_wipe(struct gwd_uapi_reader *r)
{
	gw_wipe(r->buf, sizeof(r->buf));
	gwd_uapi_reader_init(r);
}

bool gwd_uapi_reader_idle(const struct gwd_uapi_reader *r)
{
	return !r->err && r->state == R_OP && r->len == 0;
}

static bool line_is(const struct gwd_uapi_reader *r, const char *s)
{
	size_t n = strlen(s);

	return r->len == n && memcmp(r->buf, s, n) == 0;
}

/* A complete line is in buf: an event, GWD_UAPI_EV_MORE to go on, or -errno. */
static int reader_end_line(struct gwd_uapi_reader *r)
{
	switch (r->state) {
	case R_OP:
		if (line_is(r, "get=1"))
			r->state = R_GET_END;
		else if (line_is(r, "set=1"))
			r->state = R_SET;
		else
			r->err = -EPROTO;
		r->len = 0;
		return r->err ? r->err : GWD_UAPI_EV_MORE;
	case R_GET_END:
		if (r->len != 0) {
			r->err = -EINVAL;
			return r->err;
		}
		r->state = R_OP;
		return GWD_UAPI_EV_GET;
	default:
		if (r->len == 0) {
			r->state = R_OP;
			return GWD_UAPI_EV_SET_END;
		}
		r->delivered = true;
		return GWD_UAPI_EV_SET_LINE;
	}
}

int gwd_uapi_reader_next(struct gwd_uapi_reader *r, const void *data, size_t len, size_t *used,
			 const char **line, size_t *line_len)
{
	const char *p = data;

	*used = 0;
	*line = NULL;
	*line_len = 0;
	if (r->err)
		return r->err;
	if (r->delivered) {
		gw_wipe(r->buf, r->len);
		r->len = 0;
		r->delivered = false;
	}
	for (size_t i = 0; i < len; i++) {
		int ev;

		if (p[i] != '\n') {
			/* Bytes past LINE_MAX + 1 are dropped: the cut line is still too long. */
			if (r->len < sizeof(r->buf))
				r->buf[r->len++] = p[i];
			continue;
		}
		ev = reader_end_line(r);
		if (ev == GWD_UAPI_EV_MORE)
			continue;
		*used = i + 1;
		if (ev == GWD_UAPI_EV_SET_LINE) {
			*line = r->buf;
			*line_len = r->len;
		}
		return ev;
	}
	*used = len;
	return GWD_UAPI_EV_MORE;
}

/* --- Set transaction ------------------------------------------------------ */

enum key_scope {
	DEVICE, /* before the first public_key */
	PEER,	/* after a public_key */
	ANY,
};

typedef int key_fn(struct gwd_uapi_set *set, const char *value, const char **msg);

struct key_handler {
	const char *name;
	enum key_scope scope;
	key_fn *fn;
};

static struct gwd_uapi_peer *cur_peer(struct gwd_uapi_set *set)
{
	return set->n_peers ? &set->peers[set->n_peers - 1] : NULL;
}

/* Decimal without sign, spaces or base prefixes; leading zeros allowed (as Go's ParseUint). */
static int parse_uint(const char *s, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;

	if (*s == '\0')
		return -EINVAL;
	for (; *s; s++) {
		unsigned int d = (unsigned int)(*s - '0');

		if (d > 9 || v > (max - d) / 10)
			return -EINVAL;
		v = v * 10 + d;
	}
	*out = v;
	return 0;
}

/* "true" is the only value of a boolean key (as wireguard-go). */
static int parse_true(const char *value, const char **msg)
{
	if (strcmp(value, "true") != 0) {
		*msg = "boolean key: the only valid value is \"true\"";
		return -EINVAL;
	}
	return 0;
}

static int key_private_key(struct gwd_uapi_set *set, const char *value, const char **msg)
{
	if (gw_key_from_hex(set->private_key, value) < 0) {
		*msg = "private_key: not 64 hex digits";
		return -EINVAL;
	}
	set->flags |= GWD_UAPI_DEV_PRIVATE_KEY;
	return 0;
}

static int key_listen_port(struct gwd_uapi_set *set, const char *value, const char **msg)
{
	uint64_t v;

	if (parse_uint(value, UINT16_MAX, &v) < 0) {
		*msg = "listen_port: not a number in 0..65535";
		return -EINVAL;
	}
	set->listen_port = (uint16_t)v;
	set->flags |= GWD_UAPI_DEV_LISTEN_PORT;
	return 0;
}

static int key_fwmark(struct gwd_uapi_set *set, const char *value, const char **msg)
{
	uint64_t v;

	if (parse_uint(value, UINT32_MAX, &v) < 0) {
		*msg = "fwmark: not a number in 0..4294967295";
		return -EINVAL;
	}
	set->fwmark = (uint32_t)v;
	set->flags |= GWD_UAPI_DEV_FWMARK;
	return 0;
}

static int key_replace_peers(struct gwd_uapi_set *set, const char *value, const char **msg)
{
	int ret = parse_true(value, msg);

	if (!ret)
		set->flags |= GWD_UAPI_DEV_REPLACE_PEERS;
	return ret;
}

/*
 * Returns arr with room for n + 1 elements, moved to a bigger block when
 * full: a fresh block, a copy, and the old block wiped before it is freed
 * (realloc could leave a copy of the keys behind). NULL when out of memory,
 * arr then unchanged.
 */
static void *grow(void *arr, size_t *cap, size_t n, size_t size)
{
	size_t ncap = *cap ? *cap * 2 : 8;
	void *p;

	if (n < *cap)
		return arr;
	if (ncap > SIZE_MAX / size)
		return NULL;
	p = malloc(ncap * size);
	if (!p)
		return NULL;
	if (arr) {
		memcpy(p, arr, n * size);
		gw_wipe(arr, n * size);
		free(arr);
	}
	*cap = ncap;
	return p;
}

static int key_public_key(struct gwd_uapi_set *set, const char *value, const char **msg)
{
	struct gwd_uapi_peer *p;
	uint8_t pub[GW_KEY_LEN];

	if (gw_key_from_hex(pub, value) < 0) {
		*msg = "public_key: not 64 hex digits";
		return -EINVAL;
	}
	p = grow(set->peers, &set->cap_peers, set->n_peers, sizeof(*set->peers));
	if (!p) {
		*msg = "out of memory";
		return -ENOMEM;
	}
	set->peers = p;
	p = &set->peers[set->n_peers++];
	memset(p, 0, sizeof(*p));
	memcpy(p->public_key, pub, GW_KEY_LEN);
	p->first_allowed_ip = set->n_allowed_ips;
	return 0;
}

static int key_remove(struct gwd_uapi_set *set, const char *value, const char **msg)
{
	int ret = parse_true(value, msg);

	if (!ret)
		cur_peer(set)->flags |= GWD_UAPI_PEER_REMOVE;
	return ret;
}

static int key_update_only(struct gwd_uapi_set *set, const char *value, const char **msg)
{
	int ret = parse_true(value, msg);

	if (!ret)
		cur_peer(set)->flags |= GWD_UAPI_PEER_UPDATE_ONLY;
	return ret;
}

static int key_preshared_key(struct gwd_uapi_set *set, const char *value, const char **msg)
{
	struct gwd_uapi_peer *p = cur_peer(set);

	if (gw_key_from_hex(p->preshared_key, value) < 0) {
		*msg = "preshared_key: not 64 hex digits";
		return -EINVAL;
	}
	p->flags |= GWD_UAPI_PEER_PRESHARED_KEY;
	return 0;
}

static int key_endpoint(struct gwd_uapi_set *set, const char *value, const char **msg)
{
	struct gwd_uapi_peer *p = cur_peer(set);
	union gw_sockaddr ep;

	memset(&ep, 0, sizeof(ep)); /* no stack bytes in the transaction */
	if (gw_endpoint_parse(&ep, value) < 0) {
		*msg = "endpoint: not IPv4:port or [IPv6]:port";
		return -EINVAL;
	}
	p->endpoint = ep;
	p->flags |= GWD_UAPI_PEER_ENDPOINT;
	return 0;
}

static int key_keepalive(struct gwd_uapi_set *set, const char *value, const char **msg)
{
	struct gwd_uapi_peer *p = cur_peer(set);
	uint64_t v;

	if (parse_uint(value, UINT16_MAX, &v) < 0) {
		*msg = "persistent_keepalive_interval: not a number in 0..65535";
		return -EINVAL;
	}
	p->persistent_keepalive = (uint16_t)v;
	p->flags |= GWD_UAPI_PEER_KEEPALIVE;
	return 0;
}

static int key_replace_allowed_ips(struct gwd_uapi_set *set, const char *value, const char **msg)
{
	struct gwd_uapi_peer *p = cur_peer(set);
	int ret = parse_true(value, msg);

	if (ret)
		return ret;
	/* The current block's allowed IPs are the last ones in the array. */
	set->n_allowed_ips = p->first_allowed_ip;
	p->n_allowed_ips = 0;
	p->flags |= GWD_UAPI_PEER_REPLACE_ALLOWED_IPS;
	return 0;
}

static int key_allowed_ip(struct gwd_uapi_set *set, const char *value, const char **msg)
{
	struct gwd_uapi_peer *p = cur_peer(set);
	struct gw_prefix pfx, *arr;

	memset(&pfx, 0, sizeof(pfx));
	/* The protocol sends ADDR/CIDR; a bare address is not accepted. */
	if (!strchr(value, '/') || gw_prefix_parse(&pfx, value) < 0) {
		*msg = "allowed_ip: not ADDR/CIDR";
		return -EINVAL;
	}
	arr = grow(set->allowed_ips, &set->cap_allowed_ips, set->n_allowed_ips, sizeof(*arr));
	if (!arr) {
		*msg = "out of memory";
		return -ENOMEM;
	}
	set->allowed_ips = arr;
	set->allowed_ips[set->n_allowed_ips++] = pfx;
	p->n_allowed_ips++;
	return 0;
}

static int key_protocol_version(struct gwd_uapi_set *set, const char *value, const char **msg)
{
	if (strcmp(value, "1") != 0) {
		*msg = "protocol_version: only 1 is supported";
		return -EINVAL;
	}
	return 0;
}

static const struct key_handler key_handlers[] = {
    {"private_key", DEVICE, key_private_key},
    {"listen_port", DEVICE, key_listen_port},
    {"fwmark", DEVICE, key_fwmark},
    {"replace_peers", DEVICE, key_replace_peers},
    {"public_key", ANY, key_public_key},
    {"remove", PEER, key_remove},
    {"update_only", PEER, key_update_only},
    {"preshared_key", PEER, key_preshared_key},
    {"endpoint", PEER, key_endpoint},
    {"persistent_keepalive_interval", PEER, key_keepalive},
    {"replace_allowed_ips", PEER, key_replace_allowed_ips},
    {"allowed_ip", PEER, key_allowed_ip},
    {"protocol_version", PEER, key_protocol_version},
};

static const struct key_handler *find_key(const char *name)
{
	for (size_t i = 0; i < sizeof(key_handlers) / sizeof(key_handlers[0]); i++) {
		if (strcmp(key_handlers[i].name, name) == 0)
			return &key_handlers[i];
	}
	return NULL;
}

/* Checks and applies "key=value"; buf is NUL-terminated and writable. */
static int handle_line(struct gwd_uapi_set *set, char *buf, const char **msg)
{
	char *eq = strchr(buf, '=');
	const struct key_handler *h;

	if (!eq) {
		*msg = "line without '='";
		return -EPROTO;
	}
	*eq = '\0';
	h = find_key(buf);
	if (!h) {
		*msg = "unknown key";
		return -EINVAL;
	}
	if (h->scope == PEER && set->n_peers == 0) {
		*msg = "peer key before the first public_key";
		return -EINVAL;
	}
	if (h->scope == DEVICE && set->n_peers != 0) {
		*msg = "device key after a public_key";
		return -EINVAL;
	}
	return h->fn(set, eq + 1, msg);
}

static int set_fail(struct gwd_uapi_set *set, int err, const char *msg)
{
	set->err = err;
	set->err_line = set->line;
	set->err_msg = msg;
	return err;
}

void gwd_uapi_set_init(struct gwd_uapi_set *set, size_t max_bytes)
{
	memset(set, 0, sizeof(*set));
	set->max_bytes = max_bytes ? max_bytes : GWD_UAPI_SET_MAX;
}

int gwd_uapi_set_line(struct gwd_uapi_set *set, const char *line, size_t len)
{
	char buf[GWD_UAPI_LINE_MAX + 1];
	const char *msg = NULL;
	int ret;

	if (set->err)
		return set->err;
	set->line++;
	/* A line costs its bytes and its '\n'; bytes <= max_bytes always. */
	if (len >= set->max_bytes - set->bytes)
		return set_fail(set, -EMSGSIZE, "request too large");
	set->bytes += len + 1;
	if (len > GWD_UAPI_LINE_MAX)
		return set_fail(set, -EMSGSIZE, "line too long");
	if (memchr(line, '\0', len))
		return set_fail(set, -EINVAL, "NUL byte in line");
	memcpy(buf, line, len);
	buf[len] = '\0';
	ret = handle_line(set, buf, &msg);
	gw_wipe(buf, len);
	return ret ? set_fail(set, ret, msg) : 0;
}

int gwd_uapi_set_finish(const struct gwd_uapi_set *set, struct gwd_uapi_error *err)
{
	if (err) {
		err->err = set->err;
		err->line = set->err ? set->err_line : 0;
		err->msg = set->err ? set->err_msg : NULL;
	}
	return set->err;
}

int gwd_uapi_set_parse(struct gwd_uapi_set *set, const char *body, size_t len,
		       struct gwd_uapi_error *err)
{
	size_t off = 0;

	gwd_uapi_set_init(set, 0);
	while (off < len && !set->err) {
		const char *nl = memchr(body + off, '\n', len - off);
		size_t n;

		if (!nl) {
			set->line++;
			set_fail(set, -EPROTO, "line without '\\n'");
			break;
		}
		n = (size_t)(nl - (body + off));
		if (n == 0) {
			if (off + 1 != len) {
				set->line++;
				set_fail(set, -EPROTO, "data after the blank line");
			}
			break;
		}
		gwd_uapi_set_line(set, body + off, n);
		off += n + 1;
	}
	return gwd_uapi_set_finish(set, err);
}

void gwd_uapi_set_free(struct gwd_uapi_set *set)
{
	size_t max = set->max_bytes;

	if (set->peers) {
		gw_wipe(set->peers, set->cap_peers * sizeof(*set->peers));
		free(set->peers);
	}
	free(set->allowed_ips);
	gw_wipe(set->private_key, sizeof(set->private_key));
	gwd_uapi_set_init(set, max);
}

/* --- Get replies ------------------------------------------------------------ */

void gwd_uapi_buf_init(struct gwd_uapi_buf *b, size_t max)
{
	memset(b, 0, sizeof(*b));
	b->max = max;
}

void gwd_uapi_buf_free(struct gwd_uapi_buf *b)
{
	size_t max = b->max;

	if (b->data) {
		gw_wipe(b->data, b->cap + 1);
		free(b->data);
	}
	gwd_uapi_buf_init(b, max);
}

void gwd_uapi_buf_reset(struct gwd_uapi_buf *b)
{
	if (b->data)
		gw_wipe(b->data, b->len + 1);
	b->len = 0;
	b->err = 0;
}

static int buf_fail(struct gwd_uapi_buf *b, int err)
{
	b->err = err;
	return err;
}

/* Room for n more bytes; the old block is wiped when it moves (keys in hex). */
static int buf_reserve(struct gwd_uapi_buf *b, size_t n)
{
	size_t ncap;
	char *p;

	if (n > b->max || b->len > b->max - n)
		return buf_fail(b, -EMSGSIZE);
	if (b->len + n <= b->cap)
		return 0;
	ncap = b->cap ? b->cap : 256;
	while (ncap < b->len + n)
		ncap = ncap > SIZE_MAX / 2 ? SIZE_MAX : ncap * 2;
	if (ncap > b->max)
		ncap = b->max;
	/* One byte more than cap for the NUL that always follows the data. */
	p = malloc(ncap + 1);
	if (!p)
		return buf_fail(b, -ENOMEM);
	if (b->data) {
		memcpy(p, b->data, b->len + 1);
		gw_wipe(b->data, b->cap + 1);
		free(b->data);
	} else {
		p[0] = '\0';
	}
	b->data = p;
	b->cap = ncap;
	return 0;
}

static int buf_put(struct gwd_uapi_buf *b, const char *s, size_t n)
{
	int ret = buf_reserve(b, n);

	if (ret)
		return ret;
	memcpy(b->data + b->len, s, n);
	b->len += n;
	b->data[b->len] = '\0';
	return 0;
}

int gwd_uapi_buf_append_kv(struct gwd_uapi_buf *b, const char *key, const char *value)
{
	size_t klen = strlen(key), vlen = strlen(value);

	if (b->err)
		return b->err;
	if (klen == 0 || strpbrk(key, "=\n") || strchr(value, '\n'))
		return buf_fail(b, -EINVAL);
	if (buf_reserve(b, klen + vlen + 2))
		return b->err;
	buf_put(b, key, klen);
	buf_put(b, "=", 1);
	buf_put(b, value, vlen);
	return buf_put(b, "\n", 1);
}

int gwd_uapi_buf_append_key_hex(struct gwd_uapi_buf *b, const char *key,
				const uint8_t k[static GW_KEY_LEN])
{
	char hex[GW_KEY_HEX_LEN + 1];
	int ret;

	gw_key_to_hex(hex, k);
	ret = gwd_uapi_buf_append_kv(b, key, hex);
	gw_wipe(hex, sizeof(hex));
	return ret;
}

int gwd_uapi_buf_append_u64(struct gwd_uapi_buf *b, const char *key, uint64_t v)
{
	char s[24];

	snprintf(s, sizeof(s), "%" PRIu64, v);
	return gwd_uapi_buf_append_kv(b, key, s);
}

int gwd_uapi_buf_append_endpoint(struct gwd_uapi_buf *b, const char *key,
				 const union gw_sockaddr *ep)
{
	char s[GW_ENDPOINT_STR_LEN];

	gw_endpoint_format(ep, s, sizeof(s));
	return gwd_uapi_buf_append_kv(b, key, s);
}

int gwd_uapi_buf_append_prefix(struct gwd_uapi_buf *b, const char *key, const struct gw_prefix *p)
{
	char s[GW_PREFIX_STR_LEN];

	gw_prefix_format(p, s, sizeof(s));
	return gwd_uapi_buf_append_kv(b, key, s);
}

int gwd_uapi_buf_append_errno(struct gwd_uapi_buf *b, int err)
{
	char s[32];
	int n;

	if (b->err)
		return b->err;
	if (err > 0 || err < -4095) /* errno values are small positive ints */
		return buf_fail(b, -EINVAL);
	n = snprintf(s, sizeof(s), "errno=%d\n\n", err);
	return buf_put(b, s, (size_t)n);
}
