/* SPDX-License-Identifier: MIT */
/*
 * The WireGuard cross-platform configuration protocol (wireguard.com/xplatform)
 * that `wg` speaks over /var/run/wireguard/IFNAME.sock, minus the socket:
 *
 * - a request reader that splits a byte stream into "get=1" requests and the
 *   lines of "set=1" requests, with bounded memory;
 * - a strict parser turning a set body into a transaction (struct
 *   gwd_uapi_set) that the device applies only when the whole request
 *   parsed, so a malformed request changes nothing;
 * - a growable buffer with "key=value\n" appenders for get replies.
 *
 * Set semantics (what the device must do with a parsed transaction):
 * - Device keys (private_key, listen_port, fwmark, replace_peers) come before
 *   the first public_key; a device key after it is an error, as in
 *   wireguard-go. A repeated device key: the last one wins.
 * - Peers are applied in request order. The same public key may appear in
 *   several blocks: `wg setconf`/`addconf` send a config with two [Peer]
 *   sections for one key exactly so (each block with replace_allowed_ips),
 *   and the kernel and wireguard-go apply such blocks one after the other,
 *   so gwd keeps them as separate entries and applies them in order too.
 * - Within a block, replace_allowed_ips drops the allowed_ip lines of that
 *   block that came before it (sequential semantics, as wireguard-go).
 * - A block with remove=true removes the peer; its other keys are checked
 *   but the device ignores them.
 */
#ifndef GWD_UAPI_PARSE_H
#define GWD_UAPI_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gw/addr.h"
#include "gw/crypto.h"

enum {
	/*
	 * Bytes of one request line without its '\n'. The longest line `wg`
	 * sends is an endpoint "[IPv6%scope]:port" (under 80 bytes).
	 */
	GWD_UAPI_LINE_MAX = 256,
	/*
	 * Bytes of one set body. 100k peers with a PSK, an endpoint and a few
	 * allowed IPs take about 30 MiB; the parsed transaction takes at most
	 * about twice the body.
	 */
	GWD_UAPI_SET_MAX = 64 << 20,
};

/* --- Request reader ----------------------------------------------------- */

enum gwd_uapi_event {
	GWD_UAPI_EV_MORE,     /* every byte consumed, no event yet: feed more */
	GWD_UAPI_EV_GET,      /* a complete "get=1\n\n": answer it */
	GWD_UAPI_EV_SET_LINE, /* one line of a set body in *line / *line_len */
	GWD_UAPI_EV_SET_END,  /* the blank line ending a set body: apply, answer */
};

struct gwd_uapi_reader {
	/* Private. */
	char buf[GWD_UAPI_LINE_MAX + 1];
	size_t len;
	bool delivered; /* buf holds a line handed out by the last call */
	int state;
	int err;
};

void gwd_uapi_reader_init(struct gwd_uapi_reader *r);
/*
 * Consumes data up to and including the line that completes the next event
 * and sets *used to the bytes consumed; call again with the rest. Returns a
 * gwd_uapi_event, or
 *   -EPROTO  a line that is neither "get=1" nor "set=1" where an operation
 *            must start (wireguard-go closes the connection without answer),
 *   -EINVAL  a "get=1" not followed by the blank line.
 * Both are sticky: the stream is out of step, close it.
 *
 * For GWD_UAPI_EV_SET_LINE, *line (not NUL-terminated, may hold any byte)
 * stays valid until the next call, which wipes it. A set line longer than
 * GWD_UAPI_LINE_MAX is delivered cut to GWD_UAPI_LINE_MAX + 1 bytes (which
 * gwd_uapi_set_line() rejects) and the rest of it is skipped.
 */
int gwd_uapi_reader_next(struct gwd_uapi_reader *r, const void *data, size_t len, size_t *used,
			 const char **line, size_t *line_len);
/* True between operations, where end of stream is a clean close. */
bool gwd_uapi_reader_idle(const struct gwd_uapi_reader *r);
/* Wipes the line buffer (it may hold a key in hex); the reader is reset. */
void gwd_uapi_reader_wipe(struct gwd_uapi_reader *r);

/* --- Set transaction ------------------------------------------------------ */

enum gwd_uapi_dev_flags {
	GWD_UAPI_DEV_PRIVATE_KEY = 1u << 0, /* private_key valid; all zeros: remove it */
	GWD_UAPI_DEV_LISTEN_PORT = 1u << 1,
	GWD_UAPI_DEV_FWMARK = 1u << 2, /* fwmark valid; 0: off */
	GWD_UAPI_DEV_REPLACE_PEERS = 1u << 3,
};

enum gwd_uapi_peer_flags {
	GWD_UAPI_PEER_REMOVE = 1u << 0,
	GWD_UAPI_PEER_UPDATE_ONLY = 1u << 1,   /* only if the peer exists already */
	GWD_UAPI_PEER_PRESHARED_KEY = 1u << 2, /* preshared_key valid; zeros: none */
	GWD_UAPI_PEER_ENDPOINT = 1u << 3,
	GWD_UAPI_PEER_KEEPALIVE = 1u << 4,
	GWD_UAPI_PEER_REPLACE_ALLOWED_IPS = 1u << 5,
};

struct gwd_uapi_peer {
	uint8_t public_key[GW_KEY_LEN];
	uint8_t preshared_key[GW_KEY_LEN]; /* secret; wiped by gwd_uapi_set_free() */
	uint32_t flags;			   /* enum gwd_uapi_peer_flags */
	uint16_t persistent_keepalive;	   /* seconds, 0: off */
	union gw_sockaddr endpoint;
	/* This block's allowed_ip lines: set->allowed_ips[first_allowed_ip ...]. */
	size_t first_allowed_ip;
	size_t n_allowed_ips;
};

struct gwd_uapi_set {
	uint32_t flags;			 /* enum gwd_uapi_dev_flags */
	uint8_t private_key[GW_KEY_LEN]; /* secret; wiped by gwd_uapi_set_free() */
	uint16_t listen_port;
	uint32_t fwmark;

	struct gwd_uapi_peer *peers; /* in request order */
	size_t n_peers;
	struct gw_prefix *allowed_ips; /* as given: host bits are not cleared */
	size_t n_allowed_ips;

	/* Private. */
	size_t cap_peers;
	size_t cap_allowed_ips;
	size_t bytes;
	size_t max_bytes;
	unsigned int line;
	int err;
	unsigned int err_line;
	const char *err_msg;
};

/* Where and why a set body was refused. */
struct gwd_uapi_error {
	int err;	   /* -errno; 0 when the body parsed */
	unsigned int line; /* 1-based line of the body (the line after "set=1" is 1) */
	const char *msg;   /* static text, never bytes of the request */
};

/* Limits the body to max_bytes (0 means GWD_UAPI_SET_MAX). */
void gwd_uapi_set_init(struct gwd_uapi_set *set, size_t max_bytes);
/*
 * Parses one body line (without its '\n'; the blank terminator is not a body
 * line). 0 or -errno; the first error sticks and later lines are ignored:
 *   -EPROTO    a line without '=' (as wireguard-go),
 *   -EINVAL    an unknown key, a key in the wrong section, a bad value, a
 *              NUL byte,
 *   -EMSGSIZE  a line over GWD_UAPI_LINE_MAX, a body over max_bytes,
 *   -ENOMEM.
 * The caller reads on to the blank line and then answers with the error;
 * once the body is over max_bytes it may answer and close at once instead.
 */
int gwd_uapi_set_line(struct gwd_uapi_set *set, const char *line, size_t len);
/*
 * After the body: 0, or the first error (also described in *err when err
 * is not NULL). Only a set that finished with 0 may be applied.
 */
int gwd_uapi_set_finish(const struct gwd_uapi_set *set, struct gwd_uapi_error *err);
/*
 * One-shot: init, then every '\n'-terminated line of body up to an optional
 * blank line, then finish. -EPROTO also for an unterminated last line or
 * bytes after the blank line.
 */
int gwd_uapi_set_parse(struct gwd_uapi_set *set, const char *body, size_t len,
		       struct gwd_uapi_error *err);
/* Wipes the keys and frees; the set is left empty (as after init). */
void gwd_uapi_set_free(struct gwd_uapi_set *set);

/* The block's p->n_allowed_ips prefixes; NULL when the request has none at all. */
static inline const struct gw_prefix *gwd_uapi_peer_allowed_ips(const struct gwd_uapi_set *set,
								const struct gwd_uapi_peer *p)
{
	return set->allowed_ips ? set->allowed_ips + p->first_allowed_ip : NULL;
}

/* --- Get replies ------------------------------------------------------------ */

/*
 * A reply under construction. Errors stick: after the first failure every
 * append returns it and adds nothing, so a caller checks once at the end.
 */
struct gwd_uapi_buf {
	char *data; /* NUL-terminated after len bytes; may hold a private key in hex */
	size_t len;
	size_t cap;
	size_t max;
	int err;
};

/* Limits the reply to max bytes (-EMSGSIZE beyond). */
void gwd_uapi_buf_init(struct gwd_uapi_buf *b, size_t max);
/* Wipes and frees; b is left empty, as after init with the same max. */
void gwd_uapi_buf_free(struct gwd_uapi_buf *b);
/* Wipes the content and clears the error, keeping the memory. */
void gwd_uapi_buf_reset(struct gwd_uapi_buf *b);
/*
 * "key=value\n". -EINVAL (sticky) for an empty key, a key holding '=' or
 * '\n', a value holding '\n'; -EMSGSIZE, -ENOMEM.
 */
int gwd_uapi_buf_append_kv(struct gwd_uapi_buf *b, const char *key, const char *value);
/* "key=<64 lowercase hex digits>\n". */
int gwd_uapi_buf_append_key_hex(struct gwd_uapi_buf *b, const char *key,
				const uint8_t k[static GW_KEY_LEN]);
/* "key=<decimal>\n". */
int gwd_uapi_buf_append_u64(struct gwd_uapi_buf *b, const char *key, uint64_t v);
/* "key=IP:port" or "key=[IPv6]:port". */
int gwd_uapi_buf_append_endpoint(struct gwd_uapi_buf *b, const char *key,
				 const union gw_sockaddr *ep);
/* "key=ADDR/CIDR". */
int gwd_uapi_buf_append_prefix(struct gwd_uapi_buf *b, const char *key, const struct gw_prefix *p);
/*
 * The terminator "errno=N\n\n" with N = err (0 or -errno): negative, as
 * wireguard-go answers and as wg(8) expects (it reports strerror(-N)).
 */
int gwd_uapi_buf_append_errno(struct gwd_uapi_buf *b, int err);

#endif
