// SPDX-License-Identifier: MIT
/*
 * Peer fields as operators write them, to the canonical PeerConfig form
 * described in peerfile.h, and the apply-file parser on top of gw_ini.
 */
#include "peerfile.h"

#include <ctype.h>
#include <stdarg.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "gw/addr.h"
#include "gw/crypto.h"
#include "gw/ini.h"
#include "gw/key.h"

/* A key file: 44 base64 characters plus whitespace. */
enum { KEYFILE_MAX = 128, UNIX_MAX_YEAR = 9999 };

Gwcluster__PeerConfig *syncd_peer_new(void)
{
	Gwcluster__PeerConfig *pc = malloc(sizeof(*pc));

	if (pc)
		gwcluster__peer_config__init(pc);
	return pc;
}

void syncd_peer_free(Gwcluster__PeerConfig *pc)
{
	if (!pc)
		return;
	if (pc->preshared_key.data)
		gw_wipe(pc->preshared_key.data, pc->preshared_key.len);
	gwcluster__peer_config__free_unpacked(pc, NULL);
}

/* --- Keys ----------------------------------------------------------------- */

int syncd_peer_set_public_key(Gwcluster__PeerConfig *pc, const char *b64, const char **why)
{
	uint8_t key[GW_KEY_LEN], *data;

	if (gw_key_from_base64(key, b64)) {
		*why = "not a key (44 base64 characters, as wg prints them)";
		return -EINVAL;
	}
	if (gw_key_is_zero(key)) {
		*why = "the all-zero key is not a public key";
		return -EINVAL;
	}
	data = malloc(GW_KEY_LEN);
	if (!data) {
		*why = "out of memory";
		return -ENOMEM;
	}
	memcpy(data, key, GW_KEY_LEN);
	free(pc->public_key.data);
	pc->public_key.data = data;
	pc->public_key.len = GW_KEY_LEN;
	return 0;
}

static void psk_clear(Gwcluster__PeerConfig *pc)
{
	if (pc->preshared_key.data) {
		gw_wipe(pc->preshared_key.data, pc->preshared_key.len);
		free(pc->preshared_key.data);
	}
	pc->preshared_key.data = NULL;
	pc->preshared_key.len = 0;
	pc->has_preshared_key = 0;
}

int syncd_peer_set_psk(Gwcluster__PeerConfig *pc, const char *b64, const char **why)
{
	uint8_t key[GW_KEY_LEN], *data;

	if (!*b64) {
		psk_clear(pc);
		return 0;
	}
	if (gw_key_from_base64(key, b64)) {
		*why = "not a preshared key (44 base64 characters, as wg genpsk prints them)";
		return -EINVAL;
	}
	if (gw_key_is_zero(key)) {
		psk_clear(pc);
		return 0;
	}
	data = malloc(GW_KEY_LEN);
	if (!data) {
		gw_wipe(key, sizeof(key));
		*why = "out of memory";
		return -ENOMEM;
	}
	memcpy(data, key, GW_KEY_LEN);
	gw_wipe(key, sizeof(key));
	psk_clear(pc);
	pc->preshared_key.data = data;
	pc->preshared_key.len = GW_KEY_LEN;
	pc->has_preshared_key = 1;
	return 0;
}

/* Reads at most KEYFILE_MAX bytes; more means it is not a key file. */
static int read_keyfile(const char *path, char buf[static KEYFILE_MAX + 1], const char **why)
{
	int fd = strcmp(path, "-") ? open(path, O_RDONLY | O_CLOEXEC) : 0;
	size_t len = 0;
	ssize_t n;

	if (fd < 0) {
		*why = errno == ENOENT ? "no such file" : "cannot open the file";
		return -errno;
	}
	do {
		n = read(fd, buf + len, KEYFILE_MAX + 1 - len);
		if (n > 0)
			len += (size_t)n;
	} while ((n > 0 || (n < 0 && errno == EINTR)) && len <= KEYFILE_MAX);
	if (fd)
		close(fd);
	if (n < 0 || len > KEYFILE_MAX) {
		gw_wipe(buf, KEYFILE_MAX + 1);
		*why = n < 0 ? "cannot read the file" : "file too long for a key";
		return n < 0 ? -EIO : -EINVAL;
	}
	buf[len] = '\0';
	return 0;
}

int syncd_peer_set_psk_file(Gwcluster__PeerConfig *pc, const char *path, const char **why)
{
	char buf[KEYFILE_MAX + 1], *s = buf;
	size_t n;
	int rc;

	rc = read_keyfile(path, buf, why);
	if (rc)
		return rc;
	while (isspace((unsigned char)*s))
		s++;
	n = strlen(s);
	while (n && isspace((unsigned char)s[n - 1]))
		s[--n] = '\0';
	rc = syncd_peer_set_psk(pc, s, why);
	gw_wipe(buf, sizeof(buf));
	return rc;
}

/* --- Lists ---------------------------------------------------------------- */

static int prefix_cmp(const struct gw_prefix *x, const struct gw_prefix *y)
{
	int c;

	if (x->family != y->family)
		return x->family == AF_INET ? -1 : 1;
	c = memcmp(x->addr, y->addr, sizeof(x->addr));
	if (c)
		return c;
	return (int)x->cidr - (int)y->cidr;
}

static int prefix_qcmp(const void *a, const void *b)
{
	return prefix_cmp(a, b);
}

static int str_qcmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void free_strv(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

static char *trim_blanks(char *s)
{
	char *end;

	while (*s == ' ' || *s == '\t')
		s++;
	end = s + strlen(s);
	while (end > s && (end[-1] == ' ' || end[-1] == '\t'))
		*--end = '\0';
	return s;
}

/*
 * Splits a comma-separated list into a new copy with the items trimmed and
 * NUL-terminated in place; *items points into it. "" (or only blanks) gives
 * no items; an empty item between commas is an error.
 */
static int split_list(const char *list, char **copy, char ***items, size_t *n, size_t max,
		      const char **why)
{
	size_t cnt = 1;
	char *s, *p, **v;

	for (const char *q = list; *q; q++)
		cnt += *q == ',';
	if (cnt > max) {
		*why = "too many items in the list";
		return -E2BIG;
	}
	s = strdup(list);
	v = calloc(cnt, sizeof(*v));
	if (!s || !v) {
		free(s);
		free(v);
		*why = "out of memory";
		return -ENOMEM;
	}
	*n = 0;
	for (p = s;;) {
		char *comma = strchr(p, ',');

		if (comma)
			*comma = '\0';
		v[(*n)++] = trim_blanks(p);
		if (!comma)
			break;
		p = comma + 1;
	}
	if (*n == 1 && !*v[0])
		*n = 0;
	for (size_t i = 0; i < *n; i++) {
		if (!*v[i]) {
			free(v);
			free(s);
			*why = "empty item in the list";
			return -EINVAL;
		}
	}
	*copy = s;
	*items = v;
	return 0;
}

/*
 * A message naming the offending item; valid until the next call in this
 * thread (the setters' *why is read right after they return).
 */
static const char *item_why(const char *item, const char *why)
{
	static __thread char buf[160];

	snprintf(buf, sizeof(buf), "\"%.64s\": %s", item, why);
	return buf;
}

static int parse_prefix_item(const char *s, struct gw_prefix *p, const char **why)
{
	char canon[GW_PREFIX_STR_LEN];
	struct gw_prefix m;

	if (gw_prefix_parse(p, s)) {
		*why = item_why(s, "not an IP prefix (ADDR/CIDR, numeric)");
		return -EINVAL;
	}
	m = *p;
	gw_prefix_mask(&m);
	if (prefix_cmp(&m, p)) {
		static __thread char buf[160];

		gw_prefix_format(&m, canon, sizeof(canon));
		snprintf(buf, sizeof(buf), "\"%.64s\": host bits set (the network is %s)", s,
			 canon);
		*why = buf;
		return -EINVAL;
	}
	return 0;
}

/* Sorted, deduplicated prefixes as new strings. */
static int format_prefixes(struct gw_prefix *p, size_t n, char ***out, size_t *n_out)
{
	char **v = calloc(n ? n : 1, sizeof(*v));
	size_t m = 0;

	if (!v)
		return -ENOMEM;
	if (n)
		qsort(p, n, sizeof(*p), prefix_qcmp);
	for (size_t i = 0; i < n; i++) {
		char buf[GW_PREFIX_STR_LEN];

		if (i && !prefix_cmp(&p[i - 1], &p[i]))
			continue;
		gw_prefix_format(&p[i], buf, sizeof(buf));
		v[m] = strdup(buf);
		if (!v[m++]) {
			free_strv(v, m);
			return -ENOMEM;
		}
	}
	*out = v;
	*n_out = m;
	return 0;
}

static int aips_update(Gwcluster__PeerConfig *pc, const char *list, bool keep, const char **why)
{
	size_t n_new, keep_n = keep ? pc->n_allowed_ips : 0, total, n_out = 0;
	char *copy, **items, **out = NULL;
	struct gw_prefix *p;
	int rc;

	rc = split_list(list, &copy, &items, &n_new, SYNCD_PEER_ALLOWED_IPS_MAX, why);
	if (rc)
		return rc;
	total = keep_n + n_new;
	p = calloc(total + 1, sizeof(*p));
	rc = p ? 0 : -ENOMEM;
	if (!rc && total > SYNCD_PEER_ALLOWED_IPS_MAX)
		rc = -E2BIG;
	for (size_t i = 0; !rc && i < total; i++)
		rc = parse_prefix_item(i < keep_n ? pc->allowed_ips[i] : items[i - keep_n], &p[i],
				       why);
	if (!rc)
		rc = format_prefixes(p, total, &out, &n_out);
	if (rc == -ENOMEM)
		*why = "out of memory";
	else if (rc == -E2BIG)
		*why = "more than 4096 allowed IPs";
	free(p);
	free(items);
	free(copy);
	if (rc)
		return rc;
	free_strv(pc->allowed_ips, pc->n_allowed_ips);
	pc->allowed_ips = out;
	pc->n_allowed_ips = n_out;
	return 0;
}

int syncd_peer_set_allowed_ips(Gwcluster__PeerConfig *pc, const char *list, const char **why)
{
	return aips_update(pc, list, false, why);
}

int syncd_peer_add_allowed_ips(Gwcluster__PeerConfig *pc, const char *list, const char **why)
{
	return aips_update(pc, list, true, why);
}

/* --- Scalars and text ----------------------------------------------------- */

static int parse_u64(const char *s, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;

	if (!*s || (s[0] == '0' && s[1]) || strlen(s) > 20)
		return -EINVAL;
	for (; *s; s++) {
		if (*s < '0' || *s > '9' || v > (max - (uint64_t)(*s - '0')) / 10)
			return -EINVAL;
		v = v * 10 + (uint64_t)(*s - '0');
	}
	*out = v;
	return 0;
}

int syncd_peer_set_keepalive(Gwcluster__PeerConfig *pc, const char *s, const char **why)
{
	uint64_t v = 0;

	if (strcasecmp(s, "off") && parse_u64(s, 65535, &v)) {
		*why = "not a number of seconds 0..65535 or \"off\"";
		return -EINVAL;
	}
	pc->has_persistent_keepalive = v != 0;
	pc->persistent_keepalive = (uint32_t)v;
	return 0;
}

static int set_string(char **field, const char *s, const char **why)
{
	char *copy = NULL;

	if (*s) {
		copy = strdup(s);
		if (!copy) {
			*why = "out of memory";
			return -ENOMEM;
		}
	}
	free(*field);
	*field = copy;
	return 0;
}

int syncd_peer_set_endpoint(Gwcluster__PeerConfig *pc, const char *s, const char **why)
{
	char buf[GW_ENDPOINT_STR_LEN];
	union gw_sockaddr ep;

	if (!*s || !strcasecmp(s, "none"))
		return set_string(&pc->endpoint, "", why);
	if (gw_endpoint_parse(&ep, s)) {
		*why = "not a numeric endpoint (IPv4:PORT or [IPv6]:PORT)";
		return -EINVAL;
	}
	gw_endpoint_format(&ep, buf, sizeof(buf));
	return set_string(&pc->endpoint, buf, why);
}

/* Well-formed UTF-8 without control characters. */
static bool text_ok(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	while (*p) {
		unsigned n = *p < 0x80 ? 0 : (*p & 0xe0) == 0xc0 ? 1 : (*p & 0xf0) == 0xe0 ? 2 : 3;

		if (*p < 0x20 || *p == 0x7f || (*p >= 0x80 && *p < 0xc2) || *p > 0xf4)
			return false;
		for (unsigned i = 1; i <= n; i++)
			if ((p[i] & 0xc0) != 0x80)
				return false;
		p += n + 1;
	}
	return true;
}

static int text_check(const char *s, const char **why)
{
	if (strlen(s) > SYNCD_PEER_TEXT_MAX) {
		*why = "longer than 64 bytes";
		return -EINVAL;
	}
	if (!text_ok(s)) {
		*why = "control character or invalid UTF-8";
		return -EINVAL;
	}
	return 0;
}

static Gwcluster__PeerMeta *meta_get(Gwcluster__PeerConfig *pc)
{
	if (!pc->meta) {
		pc->meta = malloc(sizeof(*pc->meta));
		if (pc->meta)
			gwcluster__peer_meta__init(pc->meta);
	}
	return pc->meta;
}

/* Canonical form: no meta at all rather than an empty one. */
static void meta_tidy(Gwcluster__PeerConfig *pc)
{
	Gwcluster__PeerMeta *m = pc->meta;

	if (m && !m->name && !m->owner && !m->has_expires_unix && !m->n_tags) {
		gwcluster__peer_meta__free_unpacked(m, NULL);
		pc->meta = NULL;
	}
}

static int set_meta_text(Gwcluster__PeerConfig *pc, bool owner, const char *s, const char **why)
{
	Gwcluster__PeerMeta *m;
	int rc;

	rc = text_check(s, why);
	if (rc)
		return rc;
	m = meta_get(pc);
	if (!m) {
		*why = "out of memory";
		return -ENOMEM;
	}
	rc = set_string(owner ? &m->owner : &m->name, s, why);
	meta_tidy(pc);
	return rc;
}

int syncd_peer_set_name(Gwcluster__PeerConfig *pc, const char *s, const char **why)
{
	return set_meta_text(pc, false, s, why);
}

int syncd_peer_set_owner(Gwcluster__PeerConfig *pc, const char *s, const char **why)
{
	return set_meta_text(pc, true, s, why);
}

/* --- Time ----------------------------------------------------------------- */

/* Exactly n digits at s into *v. */
static bool digits(const char *s, int n, int *v)
{
	*v = 0;
	for (int i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		*v = *v * 10 + (s[i] - '0');
	}
	return true;
}

/* "YYYY-MM-DD[(T| )HH:MM[:SS]][Z]" in UTC. */
static int parse_date(const char *s, uint64_t *out)
{
	struct tm tm = {0}, chk;
	int y, mo, d, h = 0, mi = 0, sec = 0;
	time_t t;

	if (!digits(s, 4, &y) || s[4] != '-' || !digits(s + 5, 2, &mo) || s[7] != '-' ||
	    !digits(s + 8, 2, &d))
		return -EINVAL;
	s += 10;
	if (*s == 'T' || *s == ' ') {
		if (!digits(s + 1, 2, &h) || s[3] != ':' || !digits(s + 4, 2, &mi))
			return -EINVAL;
		s += 6;
		if (*s == ':' && !digits(++s, 2, &sec))
			return -EINVAL;
		s += *s && s[-1] == ':' ? 2 : 0;
	}
	if (*s == 'Z')
		s++;
	if (*s || y < 1970 || h > 23 || mi > 59 || sec > 59)
		return -EINVAL;
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = sec;
	t = timegm(&tm);
	/* timegm normalises 2026-02-30 to March: refuse what moved. */
	if (t <= 0 || !gmtime_r(&t, &chk) || chk.tm_mday != d || chk.tm_mon != mo - 1)
		return -EINVAL;
	*out = (uint64_t)t;
	return 0;
}

int syncd_parse_expires(const char *s, uint64_t *out)
{
	/* 9999-12-31T23:59:59Z */
	const uint64_t max = 253402300799ull;

	if (!strcasecmp(s, "never")) {
		*out = 0;
		return 0;
	}
	if (strchr(s, '-'))
		return parse_date(s, out);
	return parse_u64(s, max, out);
}

void syncd_format_time(uint64_t unix_s, char *out, size_t len)
{
	time_t t = (time_t)unix_s;
	struct tm tm;

	if (!gmtime_r(&t, &tm) || !strftime(out, len, "%Y-%m-%dT%H:%M:%SZ", &tm))
		snprintf(out, len, "%llu", (unsigned long long)unix_s);
}

int syncd_peer_set_expires(Gwcluster__PeerConfig *pc, const char *s, const char **why)
{
	Gwcluster__PeerMeta *m;
	uint64_t v;

	if (syncd_parse_expires(s, &v)) {
		*why = "not a date (YYYY-MM-DD, YYYY-MM-DDTHH:MM:SSZ in UTC), UNIX seconds or "
		       "\"never\"";
		return -EINVAL;
	}
	m = meta_get(pc);
	if (!m) {
		*why = "out of memory";
		return -ENOMEM;
	}
	m->has_expires_unix = v != 0;
	m->expires_unix = v;
	meta_tidy(pc);
	return 0;
}

/* --- Tags ----------------------------------------------------------------- */

/* Sorts v[0..n) and frees duplicates; the new count. */
static size_t strv_sort_unique(char **v, size_t n)
{
	size_t j = 0;

	if (n < 2)
		return n;
	qsort(v, n, sizeof(*v), str_qcmp);
	for (size_t i = 1; i < n; i++) {
		if (strcmp(v[j], v[i]))
			v[++j] = v[i];
		else
			free(v[i]);
	}
	return j + 1;
}

static bool tag_ok(const char *t)
{
	size_t n = strlen(t);

	if (n == 0 || n > SYNCD_PEER_TAG_MAX)
		return false;
	return strspn(t,
		      "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._:@/+=-") ==
	       n;
}

static int tags_update(Gwcluster__PeerConfig *pc, const char *list, bool keep, const char **why)
{
	size_t keep_n = keep && pc->meta ? pc->meta->n_tags : 0, n_new, m = 0;
	char *copy, **items, **v;
	Gwcluster__PeerMeta *meta;
	int rc;

	rc = split_list(list, &copy, &items, &n_new, SYNCD_PEER_TAGS_MAX, why);
	if (rc)
		return rc;
	v = calloc(keep_n + n_new + 1, sizeof(*v));
	rc = v ? 0 : -ENOMEM;
	for (size_t i = 0; !rc && i < keep_n + n_new; i++) {
		const char *t = i < keep_n ? pc->meta->tags[i] : items[i - keep_n];

		if (!tag_ok(t)) {
			*why = item_why(t, "a tag is 1..32 of A-Z a-z 0-9 . _ : @ / + = -");
			rc = -EINVAL;
		} else if (!(v[m++] = strdup(t))) {
			rc = -ENOMEM;
		}
	}
	free(items);
	free(copy);
	if (!rc)
		m = strv_sort_unique(v, m);
	if (!rc && m > SYNCD_PEER_TAGS_MAX) {
		*why = "more than 32 tags";
		rc = -E2BIG;
	}
	meta = rc ? NULL : meta_get(pc);
	if (!rc && !meta)
		rc = -ENOMEM;
	if (rc) {
		if (rc == -ENOMEM)
			*why = "out of memory";
		free_strv(v, m);
		return rc;
	}
	free_strv(meta->tags, meta->n_tags);
	meta->tags = v;
	meta->n_tags = m;
	if (!m) {
		free(v);
		meta->tags = NULL;
	}
	meta_tidy(pc);
	return 0;
}

int syncd_peer_set_tags(Gwcluster__PeerConfig *pc, const char *list, const char **why)
{
	return tags_update(pc, list, false, why);
}

int syncd_peer_add_tags(Gwcluster__PeerConfig *pc, const char *list, const char **why)
{
	return tags_update(pc, list, true, why);
}

/* --- Validation ----------------------------------------------------------- */

static int validate_aips(const Gwcluster__PeerConfig *pc, const char **why)
{
	struct gw_prefix prev = {0}, cur;
	char canon[GW_PREFIX_STR_LEN];

	if (pc->n_allowed_ips > SYNCD_PEER_ALLOWED_IPS_MAX)
		return *why = "more than 4096 allowed IPs", -EINVAL;
	for (size_t i = 0; i < pc->n_allowed_ips; i++) {
		const char *s = pc->allowed_ips[i] ? pc->allowed_ips[i] : "";

		if (parse_prefix_item(s, &cur, why))
			return -EINVAL;
		gw_prefix_format(&cur, canon, sizeof(canon));
		if (strcmp(canon, s))
			return *why = item_why(s, "not in canonical form"), -EINVAL;
		if (i && prefix_cmp(&prev, &cur) >= 0)
			return *why = "allowed IPs not sorted or repeated", -EINVAL;
		prev = cur;
	}
	return 0;
}

static int validate_meta(const Gwcluster__PeerMeta *m, const char **why)
{
	if (!m)
		return 0;
	if ((m->name && text_check(m->name, why)) || (m->owner && text_check(m->owner, why)))
		return -EINVAL;
	if (m->n_tags > SYNCD_PEER_TAGS_MAX)
		return *why = "more than 32 tags", -EINVAL;
	for (size_t i = 0; i < m->n_tags; i++) {
		if (!m->tags[i] || !tag_ok(m->tags[i]))
			return *why = "a tag is 1..32 of A-Z a-z 0-9 . _ : @ / + = -", -EINVAL;
		if (i && strcmp(m->tags[i - 1], m->tags[i]) >= 0)
			return *why = "tags not sorted or repeated", -EINVAL;
	}
	return 0;
}

int syncd_peer_validate(const Gwcluster__PeerConfig *pc, const char **why)
{
	union gw_sockaddr ep;
	char canon[GW_ENDPOINT_STR_LEN];

	if (pc->public_key.len != GW_KEY_LEN || gw_key_is_zero(pc->public_key.data))
		return *why = "public key is not 32 bytes or is zero", -EINVAL;
	if (pc->has_preshared_key && pc->preshared_key.len != GW_KEY_LEN)
		return *why = "preshared key is not 32 bytes", -EINVAL;
	if (pc->has_persistent_keepalive && pc->persistent_keepalive > 65535)
		return *why = "keepalive beyond 65535", -EINVAL;
	if (pc->endpoint && *pc->endpoint) {
		if (gw_endpoint_parse(&ep, pc->endpoint))
			return *why = "endpoint is not numeric IP:PORT", -EINVAL;
		gw_endpoint_format(&ep, canon, sizeof(canon));
		if (strcmp(canon, pc->endpoint))
			return *why = "endpoint not in canonical form", -EINVAL;
	}
	if (validate_aips(pc, why))
		return -EINVAL;
	return validate_meta(pc->meta, why);
}

/* --- Word syntax ---------------------------------------------------------- */

typedef int peer_setter(Gwcluster__PeerConfig *pc, const char *value, const char **why);

struct word {
	const char *kw;
	peer_setter *fn;
	unsigned field;
};

static const struct word words[] = {
    {"allowed-ips", syncd_peer_set_allowed_ips, SYNCD_PEER_F_ALLOWED_IPS},
    {"preshared-key", syncd_peer_set_psk_file, SYNCD_PEER_F_PSK},
    {"psk-file", syncd_peer_set_psk_file, SYNCD_PEER_F_PSK},
    {"persistent-keepalive", syncd_peer_set_keepalive, SYNCD_PEER_F_KEEPALIVE},
    {"keepalive", syncd_peer_set_keepalive, SYNCD_PEER_F_KEEPALIVE},
    {"endpoint", syncd_peer_set_endpoint, SYNCD_PEER_F_ENDPOINT},
    {"name", syncd_peer_set_name, SYNCD_PEER_F_NAME},
    {"owner", syncd_peer_set_owner, SYNCD_PEER_F_OWNER},
    {"expires", syncd_peer_set_expires, SYNCD_PEER_F_EXPIRES},
    {"tags", syncd_peer_set_tags, SYNCD_PEER_F_TAGS_SET},
    {"tag", syncd_peer_add_tags, SYNCD_PEER_F_TAGS_ADD},
};

int syncd_peer_words(Gwcluster__PeerConfig *pc, int argc, char *const *argv, unsigned *given,
		     char *err, size_t errlen)
{
	unsigned mask = 0;

	for (int i = 0; i < argc; i += 2) {
		const struct word *w = NULL;
		const char *why = NULL;
		int rc;

		for (size_t k = 0; k < sizeof(words) / sizeof(words[0]); k++)
			if (!strcmp(argv[i], words[k].kw))
				w = &words[k];
		if (!w) {
			snprintf(err, errlen,
				 "unknown option '%s' (allowed-ips, preshared-key, psk-file, "
				 "keepalive, endpoint, name, owner, expires, tags, tag)",
				 argv[i]);
			return -EINVAL;
		}
		if (i + 1 >= argc) {
			snprintf(err, errlen, "%s: needs a value", argv[i]);
			return -EINVAL;
		}
		rc = w->fn(pc, argv[i + 1], &why);
		if (rc) {
			snprintf(err, errlen, "%s: %s", argv[i], why ? why : "invalid");
			return rc == -ENOMEM ? rc : -EINVAL;
		}
		mask |= w->field;
	}
	if (given)
		*given = mask;
	return 0;
}

static int copy_list(Gwcluster__PeerConfig *dst, char *const *v, size_t n, peer_setter *fn)
{
	const char *why;
	char *list;
	size_t len = 1;
	int rc;

	for (size_t i = 0; i < n; i++)
		len += strlen(v[i]) + 1;
	list = malloc(len);
	if (!list)
		return -ENOMEM;
	list[0] = '\0';
	for (size_t i = 0; i < n; i++)
		strcat(strcat(list, i ? "," : ""), v[i]);
	rc = fn(dst, list, &why);
	free(list);
	return rc;
}

static int copy_meta(Gwcluster__PeerConfig *dst, const Gwcluster__PeerMeta *m, unsigned mask)
{
	static char *const none[1];
	const char *why;
	int rc = 0;

	if (mask & SYNCD_PEER_F_NAME)
		rc = syncd_peer_set_name(dst, m && m->name ? m->name : "", &why);
	if (!rc && (mask & SYNCD_PEER_F_OWNER))
		rc = syncd_peer_set_owner(dst, m && m->owner ? m->owner : "", &why);
	if (!rc && (mask & SYNCD_PEER_F_EXPIRES)) {
		char num[24];

		snprintf(num, sizeof(num), "%llu",
			 m && m->has_expires_unix ? (unsigned long long)m->expires_unix : 0ull);
		rc = syncd_peer_set_expires(dst, num, &why);
	}
	if (!rc && (mask & (SYNCD_PEER_F_TAGS_SET | SYNCD_PEER_F_TAGS_ADD)))
		rc = copy_list(dst, m ? m->tags : none, m ? m->n_tags : 0,
			       mask & SYNCD_PEER_F_TAGS_SET ? syncd_peer_set_tags
							    : syncd_peer_add_tags);
	return rc;
}

int syncd_peer_copy_fields(Gwcluster__PeerConfig *dst, const Gwcluster__PeerConfig *src,
			   unsigned mask)
{
	const char *why;
	int rc = 0;

	if (mask & SYNCD_PEER_F_ALLOWED_IPS)
		rc = copy_list(dst, src->allowed_ips, src->n_allowed_ips,
			       syncd_peer_set_allowed_ips);
	if (!rc && (mask & SYNCD_PEER_F_PSK)) {
		psk_clear(dst);
		if (src->has_preshared_key) {
			char b64[GW_KEY_B64_LEN + 1];

			gw_key_to_base64(b64, src->preshared_key.data);
			rc = syncd_peer_set_psk(dst, b64, &why);
			gw_wipe(b64, sizeof(b64));
		}
	}
	if (mask & SYNCD_PEER_F_KEEPALIVE) {
		dst->has_persistent_keepalive = src->has_persistent_keepalive;
		dst->persistent_keepalive = src->persistent_keepalive;
	}
	if (!rc && (mask & SYNCD_PEER_F_ENDPOINT))
		rc = set_string(&dst->endpoint, src->endpoint ? src->endpoint : "", &why);
	if (!rc)
		rc = copy_meta(dst, src->meta, mask);
	return rc;
}

/* --- Apply files ---------------------------------------------------------- */

struct file_key {
	const char *name;
	peer_setter *fn;
	bool repeats;
};

static const struct file_key file_keys[] = {
    {"PublicKey", syncd_peer_set_public_key, false},
    {"PresharedKey", syncd_peer_set_psk, false},
    {"AllowedIPs", syncd_peer_add_allowed_ips, true},
    {"PersistentKeepalive", syncd_peer_set_keepalive, false},
    {"Endpoint", syncd_peer_set_endpoint, false},
    {"Name", syncd_peer_set_name, false},
    {"Owner", syncd_peer_set_owner, false},
    {"Expires", syncd_peer_set_expires, false},
    {"Tags", syncd_peer_add_tags, true},
};

struct pf_ctx {
	struct gw_ini ini;
	struct syncd_peerfile *pf;
	size_t cap;
	unsigned seen; /* file_keys given in the current [Peer], by bit */
	bool in_peer;
	struct syncd_peerfile_error custom; /* overrides gw_ini's message */
};

__attribute__((format(printf, 3, 4))) static int pf_fail(struct pf_ctx *c, unsigned line,
							 const char *fmt, ...)
{
	va_list ap;

	c->custom.line = line;
	va_start(ap, fmt);
	vsnprintf(c->custom.msg, sizeof(c->custom.msg), fmt, ap);
	va_end(ap);
	return -EINVAL;
}

/* Closes the current [Peer]: it must have had a PublicKey. */
static int pf_end_peer(struct pf_ctx *c)
{
	if (!c->in_peer)
		return 0;
	c->in_peer = false;
	if (!c->pf->peers[c->pf->n - 1]->public_key.len)
		return pf_fail(c, c->pf->lines[c->pf->n - 1], "[Peer] without a PublicKey");
	return 0;
}

static int pf_new_peer(struct pf_ctx *c)
{
	struct syncd_peerfile *pf = c->pf;

	if (pf->n == SYNCD_PEERFILE_PEERS_MAX)
		return pf_fail(c, c->ini.line, "more than %d peers", SYNCD_PEERFILE_PEERS_MAX);
	if (pf->n == c->cap) {
		size_t cap = c->cap ? 2 * c->cap : 16;
		Gwcluster__PeerConfig **p = reallocarray(pf->peers, cap, sizeof(*p));
		unsigned *l = p ? reallocarray(pf->lines, cap, sizeof(*l)) : NULL;

		if (p)
			pf->peers = p;
		if (!l)
			return -ENOMEM;
		pf->lines = l;
		c->cap = cap;
	}
	pf->peers[pf->n] = syncd_peer_new();
	if (!pf->peers[pf->n])
		return -ENOMEM;
	pf->lines[pf->n++] = c->ini.line;
	c->in_peer = true;
	c->seen = 0;
	return 0;
}

static int pf_section(struct pf_ctx *c, const char *section)
{
	int rc = pf_end_peer(c);

	if (rc)
		return rc;
	if (!strcasecmp(section, "Peer"))
		return pf_new_peer(c);
	if (!strcasecmp(section, "Interface")) {
		if (!c->pf->interface_line)
			c->pf->interface_line = c->ini.line;
		return 0;
	}
	return pf_fail(c, c->ini.line, "unknown section [%s] (an apply file has [Peer] sections)",
		       section);
}

static int pf_line(void *arg, const char *section, const char *key, const char *value,
		   const char **why)
{
	struct pf_ctx *c = arg;

	if (!key)
		return pf_section(c, section);
	if (!section)
		return pf_fail(c, c->ini.line, "%s: outside a [Peer] section", key);
	if (!c->in_peer)
		return 0; /* [Interface]: node-local, skipped */
	for (unsigned k = 0; k < sizeof(file_keys) / sizeof(file_keys[0]); k++) {
		if (strcasecmp(key, file_keys[k].name))
			continue;
		if ((c->seen & (1u << k)) && !file_keys[k].repeats)
			return pf_fail(c, c->ini.line, "%s: given twice in this [Peer]", key);
		c->seen |= 1u << k;
		return file_keys[k].fn(c->pf->peers[c->pf->n - 1], value, why);
	}
	return pf_fail(c, c->ini.line,
		       "%s: unknown key (PublicKey, PresharedKey, AllowedIPs, PersistentKeepalive, "
		       "Endpoint, Name, Owner, Expires, Tags)",
		       key);
}

struct aip_ref {
	const char *s;
	size_t peer;
};

static int aip_ref_cmp(const void *a, const void *b)
{
	const struct aip_ref *x = a, *y = b;
	int c = strcmp(x->s, y->s);

	return c ? c : (x->peer > y->peer) - (x->peer < y->peer);
}

static int peer_idx_cmp(const void *a, const void *b, void *arg)
{
	Gwcluster__PeerConfig **p = arg;
	size_t x = *(const size_t *)a, y = *(const size_t *)b;
	int c = memcmp(p[x]->public_key.data, p[y]->public_key.data, GW_KEY_LEN);

	return c ? c : (x > y) - (x < y);
}

static int pf_check_keys(struct pf_ctx *c)
{
	struct syncd_peerfile *pf = c->pf;
	size_t *idx = calloc(pf->n + 1, sizeof(*idx));
	int rc = 0;

	if (!idx)
		return -ENOMEM;
	for (size_t i = 0; i < pf->n; i++)
		idx[i] = i;
	qsort_r(idx, pf->n, sizeof(*idx), peer_idx_cmp, pf->peers);
	for (size_t i = 1; i < pf->n && !rc; i++) {
		const ProtobufCBinaryData *a = &pf->peers[idx[i - 1]]->public_key;

		if (!memcmp(a->data, pf->peers[idx[i]]->public_key.data, GW_KEY_LEN)) {
			char b64[GW_KEY_B64_LEN + 1];

			gw_key_to_base64(b64, a->data);
			rc = pf_fail(c, pf->lines[idx[i]], "peer %s is already defined at line %u",
				     b64, pf->lines[idx[i - 1]]);
		}
	}
	free(idx);
	return rc;
}

/* WireGuard would silently move a prefix to the last peer naming it. */
static int pf_check_aips(struct pf_ctx *c)
{
	struct syncd_peerfile *pf = c->pf;
	struct aip_ref *refs;
	size_t n = 0, m = 0;
	int rc = 0;

	for (size_t i = 0; i < pf->n; i++)
		n += pf->peers[i]->n_allowed_ips;
	refs = calloc(n + 1, sizeof(*refs));
	if (!refs)
		return -ENOMEM;
	for (size_t i = 0; i < pf->n; i++)
		for (size_t j = 0; j < pf->peers[i]->n_allowed_ips; j++)
			refs[m++] = (struct aip_ref){pf->peers[i]->allowed_ips[j], i};
	qsort(refs, n, sizeof(*refs), aip_ref_cmp);
	for (size_t i = 1; i < n && !rc; i++)
		if (!strcmp(refs[i - 1].s, refs[i].s))
			rc = pf_fail(c, pf->lines[refs[i].peer],
				     "allowed IP %s is also in the peer at line %u", refs[i].s,
				     pf->lines[refs[i - 1].peer]);
	free(refs);
	return rc;
}

void syncd_peerfile_free(struct syncd_peerfile *pf)
{
	for (size_t i = 0; i < pf->n; i++)
		syncd_peer_free(pf->peers[i]);
	free(pf->peers);
	free(pf->lines);
	memset(pf, 0, sizeof(*pf));
}

static int pf_finish(struct pf_ctx *c, int rc, struct syncd_peerfile_error *err)
{
	if (!rc)
		rc = pf_end_peer(c);
	if (!rc)
		rc = pf_check_keys(c);
	if (!rc)
		rc = pf_check_aips(c);
	if (rc && c->custom.msg[0]) {
		*err = c->custom;
	} else if (rc == -ENOMEM) {
		err->line = 0;
		snprintf(err->msg, sizeof(err->msg), "out of memory");
	} else if (rc) {
		err->line = c->ini.err.line;
		snprintf(err->msg, sizeof(err->msg), "%s", c->ini.err.msg);
	}
	if (rc)
		syncd_peerfile_free(c->pf);
	return rc;
}

static void pf_init(struct pf_ctx *c, struct syncd_peerfile *pf, struct syncd_peerfile_error *err)
{
	memset(c, 0, sizeof(*c));
	memset(pf, 0, sizeof(*pf));
	memset(err, 0, sizeof(*err));
	c->pf = pf;
	gw_ini_init(&c->ini, pf_line, c);
}

int syncd_peerfile_parse_buffer(const char *buf, size_t len, struct syncd_peerfile *pf,
				struct syncd_peerfile_error *err)
{
	struct pf_ctx c;

	pf_init(&c, pf, err);
	return pf_finish(&c, gw_ini_parse_buffer(&c.ini, buf, len), err);
}

int syncd_peerfile_parse_file(const char *path, struct syncd_peerfile *pf,
			      struct syncd_peerfile_error *err)
{
	struct pf_ctx c;

	pf_init(&c, pf, err);
	return pf_finish(&c, gw_ini_parse_file(&c.ini, path), err);
}
