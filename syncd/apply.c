// SPDX-License-Identifier: MIT
/*
 * A small UAPI client: read gwd's peers with get=1, compare them with the
 * desired set and send only the difference as one set=1 transaction.
 *
 * Both sides are brought to the same shape (struct peer_state: key, psk,
 * keepalive, endpoint presence, allowed IPs masked, sorted and without
 * duplicates), sorted by public key and walked together. The request lists
 * peers in key order so it is deterministic (tests compare it verbatim).
 *
 * The get reply holds gwd's private key: every line is wiped once parsed and
 * the private key is never stored. Requests and parsed states hold preshared
 * keys and are wiped before they are freed.
 */
#include "apply.h"
#include "apply_int.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "gw/addr.h"
#include "gw/crypto.h"
#include "gw/key.h"
#include "gw/log.h"

#define UAPI_DIR "/var/run/wireguard"

enum { IFNAME_MAX = 15, RECV_CHUNK = 16384 };

static struct gw_ratelimit invalid_rl = GW_RATELIMIT_INIT(5000000000ull, 5);

void ap_peer_free(struct peer_state *p)
{
	free(p->aips);
	gw_wipe(p, sizeof(*p));
}

static void peers_free(struct peer_state *peers, size_t n)
{
	for (size_t i = 0; i < n; i++)
		ap_peer_free(&peers[i]);
	free(peers);
}

void ap_dev_free(struct dev_state *st)
{
	peers_free(st->peers, st->n);
	gw_wipe(st, sizeof(*st));
}

int ap_grow(void *p, size_t *cap, size_t need, size_t sz)
{
	size_t c = *cap ? *cap : 4;
	void *old, *n;

	if (need <= *cap)
		return 0;
	while (c < need) {
		if (c > SIZE_MAX / 2 / sz)
			return -ENOMEM;
		c *= 2;
	}
	n = calloc(c, sz);
	if (!n)
		return -ENOMEM;
	memcpy(&old, p, sizeof(old)); /* p is the address of a T * */
	if (old) {
		memcpy(n, old, *cap * sz);
		gw_wipe(old, *cap * sz);
		free(old);
	}
	memcpy(p, &n, sizeof(n));
	*cap = c;
	return 0;
}

/* --- Small parsers -------------------------------------------------------- */

/* Plain decimal in [0, max], no sign or leading zero. */
static int parse_u32(const char *s, uint32_t max, uint32_t *out)
{
	uint64_t v = 0;

	if (!*s || (s[0] == '0' && s[1]) || strlen(s) > 10)
		return -EINVAL;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return -EINVAL;
		v = v * 10 + (uint64_t)(*s - '0');
	}
	if (v > max)
		return -EINVAL;
	*out = (uint32_t)v;
	return 0;
}

/* gwd writes errno=N with N positive; wireguard-go writes it negated. */
static int parse_errno(const char *s, long *out)
{
	uint32_t v;

	if (*s == '-')
		s++;
	if (parse_u32(s, 4095, &v))
		return -EINVAL;
	*out = (long)v;
	return 0;
}

int ap_prefix_cmp(const void *a, const void *b)
{
	const struct gw_prefix *x = a, *y = b;
	int c;

	if (x->family != y->family)
		return x->family == AF_INET ? -1 : 1;
	c = memcmp(x->addr, y->addr, sizeof(x->addr));
	if (c)
		return c;
	return (int)x->cidr - (int)y->cidr;
}

/* Sorts and drops duplicates, so that two sets compare element-wise. */
static void aips_canonical(struct peer_state *p)
{
	size_t j = 0;

	if (p->n_aips < 2)
		return;
	qsort(p->aips, p->n_aips, sizeof(*p->aips), ap_prefix_cmp);
	for (size_t i = 1; i < p->n_aips; i++)
		if (ap_prefix_cmp(&p->aips[j], &p->aips[i]))
			p->aips[++j] = p->aips[i];
	p->n_aips = j + 1;
}

static int aips_push(struct peer_state *p, const char *s)
{
	struct gw_prefix pfx;

	if (gw_prefix_parse(&pfx, s))
		return -EINVAL;
	gw_prefix_mask(&pfx);
	if (p->n_aips == p->cap_aips) {
		size_t cap = p->cap_aips ? 2 * p->cap_aips : 4;
		struct gw_prefix *a;

		if (p->n_aips >= SYNCD_APPLY_MAX_ALLOWED_IPS)
			return -E2BIG;
		a = reallocarray(p->aips, cap, sizeof(*a));
		if (!a)
			return -ENOMEM;
		p->aips = a;
		p->cap_aips = cap;
	}
	p->aips[p->n_aips++] = pfx;
	return 0;
}

static bool aips_equal(const struct peer_state *a, const struct peer_state *b)
{
	if (a->n_aips != b->n_aips)
		return false;
	for (size_t i = 0; i < a->n_aips; i++)
		if (ap_prefix_cmp(&a->aips[i], &b->aips[i]))
			return false;
	return true;
}

/* --- The get reply -------------------------------------------------------- */

static int dev_new_peer(struct dev_state *st, const char *hex)
{
	struct peer_state *p;

	if (st->n >= SYNCD_APPLY_MAX_PEERS)
		return -EPROTO;
	/* Not realloc: the old block holds preshared keys and is wiped. */
	if (ap_grow(&st->peers, &st->cap, st->n + 1, sizeof(*p)))
		return -ENOMEM;
	p = &st->peers[st->n];
	memset(p, 0, sizeof(*p));
	if (gw_key_from_hex(p->key, hex))
		return -EPROTO;
	st->n++;
	return 0;
}

static int dev_peer_key(struct peer_state *p, const char *key, const char *value)
{
	int rc = 0;

	if (!strcmp(key, "preshared_key"))
		rc = gw_key_from_hex(p->psk, value);
	else if (!strcmp(key, "endpoint"))
		p->has_endpoint = *value != '\0';
	else if (!strcmp(key, "persistent_keepalive_interval"))
		rc = parse_u32(value, 65535, &p->keepalive);
	else if (!strcmp(key, "allowed_ip"))
		rc = aips_push(p, value);
	/* Counters, handshake times, protocol_version: state, not config. */
	if (rc == -ENOMEM)
		return rc;
	return rc ? -EPROTO : 0;
}

static int dev_iface_key(struct dev_state *st, const char *key, const char *value)
{
	if (!strcmp(key, "listen_port"))
		return parse_u32(value, 65535, &st->listen_port) ? -EPROTO : 0;
	if (!strcmp(key, "fwmark"))
		return parse_u32(value, UINT32_MAX, &st->fwmark) ? -EPROTO : 0;
	return 0; /* private_key above all: read past, never kept */
}

/* One reply line without its '\n', NUL-terminated (len bytes). */
static int dev_line(struct dev_state *st, char *line, size_t len)
{
	char *eq;

	if (st->done || strlen(line) != len)
		return -EPROTO;
	if (len == 0) {
		if (!st->have_errno)
			return -EPROTO;
		st->done = true;
		return 0;
	}
	eq = strchr(line, '=');
	if (st->have_errno || !eq)
		return -EPROTO;
	*eq = '\0';
	if (!strcmp(line, "errno")) {
		st->have_errno = true;
		return parse_errno(eq + 1, &st->err) ? -EPROTO : 0;
	}
	if (!strcmp(line, "public_key"))
		return dev_new_peer(st, eq + 1);
	if (st->n)
		return dev_peer_key(&st->peers[st->n - 1], line, eq + 1);
	return dev_iface_key(st, line, eq + 1);
}

int ap_dev_feed(struct dev_state *st, const char *p, size_t n)
{
	int rc;

	if (n > SYNCD_APPLY_REPLY_MAX - st->bytes)
		return -EPROTO;
	st->bytes += n;
	for (size_t i = 0; i < n; i++) {
		if (p[i] != '\n') {
			if (st->line_len == SYNCD_APPLY_LINE_MAX)
				return -EPROTO;
			st->line[st->line_len++] = p[i];
			continue;
		}
		st->line[st->line_len] = '\0';
		rc = dev_line(st, st->line, st->line_len);
		gw_wipe(st->line, st->line_len + 1);
		st->line_len = 0;
		if (rc)
			return rc;
	}
	return 0;
}

/* The whole of a reply: complete, well-formed and errno=0. */
static int dev_parse(struct dev_state *st, const char *reply, size_t len)
{
	int rc = ap_dev_feed(st, reply, len);

	if (rc)
		return rc;
	if (!st->done || st->line_len)
		return -EPROTO;
	if (st->err)
		return (int)-st->err;
	return ap_dev_sort(st);
}

/* --- The desired set ------------------------------------------------------ */

int ap_want_fill(struct peer_state *w, const Gwcluster__PeerConfig *pc, const char **why)
{
	union gw_sockaddr ep;
	int rc;

	if (pc->has_preshared_key && pc->preshared_key.len) {
		if (pc->preshared_key.len != GW_KEY_LEN) {
			*why = "preshared key is not 32 bytes";
			return -EINVAL;
		}
		memcpy(w->psk, pc->preshared_key.data, GW_KEY_LEN);
	}
	if (pc->has_persistent_keepalive) {
		if (pc->persistent_keepalive > 65535) {
			*why = "keepalive beyond 65535";
			return -EINVAL;
		}
		w->keepalive = pc->persistent_keepalive;
	}
	if (pc->endpoint && *pc->endpoint) {
		if (gw_endpoint_parse(&ep, pc->endpoint)) {
			*why = "bad endpoint";
			return -EINVAL;
		}
		w->endpoint = pc->endpoint;
	}
	for (size_t i = 0; i < pc->n_allowed_ips; i++) {
		rc = aips_push(w, pc->allowed_ips[i] ? pc->allowed_ips[i] : "");
		if (rc == -ENOMEM)
			return rc;
		if (rc) {
			*why = rc == -E2BIG ? "too many allowed IPs" : "bad allowed IP";
			return -EINVAL;
		}
	}
	aips_canonical(w);
	return 0;
}

void ap_log_invalid(const uint8_t *key, const char *why)
{
	char b64[GW_KEY_B64_LEN + 1] = "(no key)";

	if (key)
		gw_key_to_base64(b64, key);
	gw_log_rl(&invalid_rl, GW_LOG_WARN, "apply: peer %s left as it is: %s", b64, why);
}

static int key_order_cmp(const void *a, const void *b)
{
	const struct peer_state *x = a, *y = b;
	int c = memcmp(x->key, y->key, GW_KEY_LEN);

	if (c)
		return c;
	return x->order < y->order ? -1 : x->order > y->order;
}

/*
 * The desired set, sorted by key with one entry per key (the last one given).
 * Entries without a usable key are dropped; entries with a bad field stay,
 * marked invalid, so the merge leaves their peer alone.
 */
static int want_build(Gwcluster__PeerConfig *const *desired, size_t n, struct peer_state **out,
		      size_t *n_out, size_t *skipped)
{
	struct peer_state *w = calloc(n ? n : 1, sizeof(*w));
	size_t m = 0, j = 0;
	int rc;

	if (!w)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		const Gwcluster__PeerConfig *pc = desired[i];
		const char *why = NULL;

		if (!pc || pc->public_key.len != GW_KEY_LEN) {
			ap_log_invalid(NULL, "public key is not 32 bytes");
			(*skipped)++;
			continue;
		}
		memcpy(w[m].key, pc->public_key.data, GW_KEY_LEN);
		w[m].order = i;
		rc = ap_want_fill(&w[m], pc, &why);
		if (rc == -ENOMEM) {
			peers_free(w, m + 1);
			return rc;
		}
		if (rc) {
			ap_log_invalid(w[m].key, why);
			w[m].invalid = true;
		}
		m++;
	}
	qsort(w, m, sizeof(*w), key_order_cmp);
	for (size_t i = 0; i < m; i++) {
		if (i + 1 < m && !memcmp(w[i].key, w[i + 1].key, GW_KEY_LEN)) {
			ap_peer_free(&w[i]);
			(*skipped)++;
			continue;
		}
		if (w[i].invalid)
			(*skipped)++;
		w[j++] = w[i];
	}
	*out = w;
	*n_out = j;
	return 0;
}

int ap_dev_sort(struct dev_state *st)
{
	for (size_t i = 0; i < st->n; i++) {
		st->peers[i].order = i;
		aips_canonical(&st->peers[i]);
	}
	if (st->n)
		qsort(st->peers, st->n, sizeof(*st->peers), key_order_cmp);
	for (size_t i = 1; i < st->n; i++)
		if (!memcmp(st->peers[i - 1].key, st->peers[i].key, GW_KEY_LEN))
			return -EPROTO;
	return 0;
}

/* --- The set request ------------------------------------------------------ */

void ap_sb_printf(struct sbuf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (b->oom)
		return;
	va_start(ap, fmt);
	n = vsnprintf(b->p ? b->p + b->len : NULL, b->p ? b->cap - b->len : 0, fmt, ap);
	va_end(ap);
	if (n < 0) {
		b->oom = true;
		return;
	}
	if (!b->p || (size_t)n >= b->cap - b->len) {
		size_t cap = b->cap ? b->cap : 4096;
		char *p;

		while (cap - b->len <= (size_t)n)
			cap *= 2;
		p = malloc(cap);
		if (!p) {
			b->oom = true;
			return;
		}
		if (b->p) {
			memcpy(p, b->p, b->len + 1);
			gw_wipe(b->p, b->cap);
			free(b->p);
		}
		b->p = p;
		b->cap = cap;
		va_start(ap, fmt);
		vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
		va_end(ap);
	}
	b->len += (size_t)n;
}

void ap_sb_free(struct sbuf *b)
{
	if (b->p) {
		gw_wipe(b->p, b->cap);
		free(b->p);
	}
	memset(b, 0, sizeof(*b));
}

static void sb_key(struct sbuf *b, const char *name, const uint8_t key[static GW_KEY_LEN])
{
	char hex[GW_KEY_HEX_LEN + 1];

	gw_key_to_hex(hex, key);
	ap_sb_printf(b, "%s=%s\n", name, hex);
	gw_wipe(hex, sizeof(hex));
}

static void sb_aips(struct sbuf *b, const struct gw_prefix *aips, size_t n)
{
	char s[GW_PREFIX_STR_LEN];

	for (size_t i = 0; i < n; i++) {
		gw_prefix_format(&aips[i], s, sizeof(s));
		ap_sb_printf(b, "allowed_ip=%s\n", s);
	}
}

void ap_emit_add(struct sbuf *b, const uint8_t key[static GW_KEY_LEN],
		 const uint8_t psk[static GW_KEY_LEN], const char *endpoint, uint32_t keepalive,
		 const struct gw_prefix *aips, size_t n_aips)
{
	sb_key(b, "public_key", key);
	if (!gw_key_is_zero(psk))
		sb_key(b, "preshared_key", psk);
	if (endpoint)
		ap_sb_printf(b, "endpoint=%s\n", endpoint);
	if (keepalive)
		ap_sb_printf(b, "persistent_keepalive_interval=%u\n", keepalive);
	sb_aips(b, aips, n_aips);
}

void ap_emit_remove(struct sbuf *b, const uint8_t key[static GW_KEY_LEN])
{
	sb_key(b, "public_key", key);
	ap_sb_printf(b, "remove=true\n");
}

void ap_emit_change(struct sbuf *b, const uint8_t key[static GW_KEY_LEN], const uint8_t *psk,
		    const char *endpoint, bool ka, uint32_t keepalive, bool aips,
		    const struct gw_prefix *list, size_t n_list)
{
	sb_key(b, "public_key", key);
	ap_sb_printf(b, "update_only=true\n");
	if (psk)
		sb_key(b, "preshared_key", psk);
	if (endpoint)
		ap_sb_printf(b, "endpoint=%s\n", endpoint);
	if (ka)
		ap_sb_printf(b, "persistent_keepalive_interval=%u\n", keepalive);
	if (aips) {
		ap_sb_printf(b, "replace_allowed_ips=true\n");
		sb_aips(b, list, n_list);
	}
}

/* Only the fields that differ; false (nothing written) when none does. */
static bool emit_change(struct sbuf *b, const struct peer_state *w, const struct peer_state *c)
{
	bool psk = !gw_memeq(w->psk, c->psk, GW_KEY_LEN);
	bool ka = w->keepalive != c->keepalive;
	bool ep = w->endpoint && !c->has_endpoint;
	bool aips = !aips_equal(w, c);

	if (!psk && !ka && !ep && !aips)
		return false;
	ap_emit_change(b, w->key, psk ? w->psk : NULL, ep ? w->endpoint : NULL, ka, w->keepalive,
		       aips, w->aips, w->n_aips);
	return true;
}

static void emit_iface(struct sbuf *b, const struct dev_state *st,
		       const Gwcluster__InterfaceConfig *iface)
{
	if (!iface)
		return;
	if (iface->has_listen_port && iface->listen_port <= 65535 &&
	    iface->listen_port != st->listen_port)
		ap_sb_printf(b, "listen_port=%u\n", iface->listen_port);
	if (iface->has_fwmark && iface->fwmark != st->fwmark)
		ap_sb_printf(b, "fwmark=%u\n", iface->fwmark);
}

/* Walks both key-sorted sets together, appending the difference to b. */
static void merge(struct sbuf *b, const struct peer_state *w, size_t nw, const struct dev_state *st,
		  struct syncd_apply_result *res)
{
	size_t i = 0, j = 0;

	while (i < nw || j < st->n) {
		int c = i == nw	     ? 1
			: j == st->n ? -1
				     : memcmp(w[i].key, st->peers[j].key, GW_KEY_LEN);

		if (c < 0) {
			if (!w[i].invalid) {
				ap_emit_add(b, w[i].key, w[i].psk, w[i].endpoint, w[i].keepalive,
					    w[i].aips, w[i].n_aips);
				res->added++;
			}
			i++;
		} else if (c > 0) {
			ap_emit_remove(b, st->peers[j].key);
			res->removed++;
			j++;
		} else {
			/* An invalid entry leaves gwd's peer as it is. */
			if (!w[i].invalid && emit_change(b, &w[i], &st->peers[j]))
				res->changed++;
			else if (!w[i].invalid)
				res->unchanged++;
			i++;
			j++;
		}
	}
}

/* st is a parsed, sorted reply. */
static int plan(const struct dev_state *st, Gwcluster__PeerConfig *const *desired, size_t n,
		const Gwcluster__InterfaceConfig *iface, char **req, struct syncd_apply_result *res)
{
	struct sbuf b = {0};
	struct peer_state *w;
	size_t nw;
	int rc;

	*req = NULL;
	memset(res, 0, sizeof(*res));
	rc = want_build(desired, n, &w, &nw, &res->skipped);
	if (rc)
		return rc;
	ap_sb_printf(&b, "set=1\n");
	emit_iface(&b, st, iface);
	merge(&b, w, nw, st, res);
	peers_free(w, nw);
	if (b.oom) {
		syncd_apply_free(b.p);
		return -ENOMEM;
	}
	if (b.len == strlen("set=1\n")) {
		syncd_apply_free(b.p);
		return 0;
	}
	ap_sb_printf(&b, "\n");
	if (b.oom) {
		syncd_apply_free(b.p);
		return -ENOMEM;
	}
	*req = b.p;
	return 0;
}

void syncd_apply_free(char *req)
{
	if (!req)
		return;
	gw_wipe(req, strlen(req));
	free(req);
}

int syncd_apply_diff(const char *reply, size_t len, Gwcluster__PeerConfig *const *desired, size_t n,
		     const Gwcluster__InterfaceConfig *iface, char **req,
		     struct syncd_apply_result *res)
{
	struct dev_state *st = calloc(1, sizeof(*st));
	int rc;

	*req = NULL;
	if (!st)
		return -ENOMEM;
	rc = dev_parse(st, reply, len);
	if (!rc)
		rc = plan(st, desired, n, iface, req, res);
	ap_dev_free(st);
	free(st);
	return rc;
}

/* --- The socket ----------------------------------------------------------- */

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int uapi_connect(const char *ifname, int *fdp)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	struct timeval tv = {.tv_sec = SYNCD_APPLY_TIMEOUT_MS / 1000,
			     .tv_usec = SYNCD_APPLY_TIMEOUT_MS % 1000 * 1000};
	size_t len = ifname ? strlen(ifname) : 0;
	int fd;

	if (len == 0 || len > IFNAME_MAX || strchr(ifname, '/') || !strcmp(ifname, ".") ||
	    !strcmp(ifname, ".."))
		return -EINVAL;
	snprintf(sun.sun_path, sizeof(sun.sun_path), UAPI_DIR "/%s.sock", ifname);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) ||
	    connect(fd, (struct sockaddr *)&sun, sizeof(sun))) {
		int rc = -errno;

		close(fd);
		return rc;
	}
	*fdp = fd;
	return 0;
}

static int send_all(int fd, const char *p, size_t len, uint64_t deadline)
{
	while (len) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return errno == EAGAIN || errno == EWOULDBLOCK ? -ETIMEDOUT : -errno;
		p += n;
		len -= (size_t)n;
		if (len && now_ms() > deadline)
			return -ETIMEDOUT;
	}
	return 0;
}

/* Reads and parses one reply up to its blank line. */
static int recv_reply(int fd, struct dev_state *st, uint64_t deadline)
{
	char *buf = malloc(RECV_CHUNK);
	int rc = 0;

	if (!buf)
		return -ENOMEM;
	while (!rc && !st->done) {
		ssize_t n = recv(fd, buf, RECV_CHUNK, 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			rc = errno == EAGAIN || errno == EWOULDBLOCK ? -ETIMEDOUT : -errno;
		else if (n == 0)
			rc = -EPROTO;
		else
			rc = ap_dev_feed(st, buf, (size_t)n);
		if (!rc && !st->done && now_ms() > deadline)
			rc = -ETIMEDOUT;
		gw_wipe(buf, RECV_CHUNK);
	}
	free(buf);
	if (!rc && st->line_len)
		rc = -EPROTO;
	return rc;
}

/* One request, one reply, on a fresh connection. */
static int exchange(const char *ifname, const char *req, struct dev_state *st)
{
	uint64_t deadline = now_ms() + SYNCD_APPLY_DEADLINE_MS;
	int fd = -1, rc;

	rc = uapi_connect(ifname, &fd);
	if (rc)
		return rc;
	rc = send_all(fd, req, strlen(req), deadline);
	if (!rc)
		rc = recv_reply(fd, st, deadline);
	close(fd);
	if (!rc && st->err)
		rc = (int)-st->err;
	return rc;
}

static int get_and_plan(const char *ifname, Gwcluster__PeerConfig *const *desired, size_t n,
			const Gwcluster__InterfaceConfig *iface, char **req,
			struct syncd_apply_result *res)
{
	struct dev_state *st = calloc(1, sizeof(*st));
	int rc;

	*req = NULL;
	if (!st)
		return -ENOMEM;
	rc = exchange(ifname, "get=1\n\n", st);
	if (!rc)
		rc = ap_dev_sort(st);
	if (!rc)
		rc = plan(st, desired, n, iface, req, res);
	ap_dev_free(st);
	free(st);
	return rc;
}

int syncd_apply_plan(const char *ifname, Gwcluster__PeerConfig *const *desired, size_t n,
		     const Gwcluster__InterfaceConfig *iface, char **req,
		     struct syncd_apply_result *res)
{
	return get_and_plan(ifname, desired, n, iface, req, res);
}

int syncd_apply(const char *ifname, Gwcluster__PeerConfig *const *desired, size_t n,
		const Gwcluster__InterfaceConfig *iface, struct syncd_apply_result *res)
{
	struct syncd_apply_result local;
	struct dev_state *st;
	char *req;
	int rc;

	if (!res)
		res = &local;
	rc = get_and_plan(ifname, desired, n, iface, &req, res);
	if (rc || !req)
		return rc;
	st = calloc(1, sizeof(*st));
	if (!st) {
		syncd_apply_free(req);
		return -ENOMEM;
	}
	rc = exchange(ifname, req, st);
	if (!rc && st->n)
		rc = -EPROTO; /* a set reply carries errno only */
	syncd_apply_free(req);
	ap_dev_free(st);
	free(st);
	return rc;
}
