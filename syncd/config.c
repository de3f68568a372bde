// SPDX-License-Identifier: MIT
/*
 * cluster.conf parsing on gw_ini. Each key has a small parser; the ini
 * callback dispatches by section and remembers the line of every key, so
 * the checks that need the whole file (unique ids, this node among the
 * members, its key pair) can still blame a line.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "gw/addr.h"
#include "gw/crypto.h"
#include "gw/ini.h"

enum cluster_key {
	CK_NAME,
	CK_NODE_ID,
	CK_INTERFACE,
	CK_MODE,
	CK_STATE_DIR,
	CK_CONTROL_SOCKET,
	CK_SECRET_KEY_FILE,
	CK_HEARTBEAT_MS,
	CK_PEER_DEAD_MS,
	CK_LOG_RETAIN,
	CK_LOG_LEVEL,
	CK_BIND_ADDRESS,
	CK_SESSION_SOCKET,
	CK_SYNCED_FILE,
	CK_METRICS,
	CK_KEEPALIVED_FIFO,
	CK_KEEPALIVED_INSTANCE,
	CK_KEEPALIVED_GROUP,
	CK_COUNT,
};

enum member_key {
	MK_NODE_ID,
	MK_ADDRESS,
	MK_PUBLIC_KEY,
	MK_COUNT,
};

/* Not in the Z85 alphabet, not special to gw_ini. */
#define Z85_HASH_STANDIN '~'
#define KEY_LINE_PREFIX	 "curvepublickey"

enum {
	CONFIG_FILE_MAX = 4 << 20,
};

enum section {
	SEC_NONE,
	SEC_CLUSTER,
	SEC_MEMBER,
};

struct member_lines {
	unsigned header;
	unsigned key[MK_COUNT]; /* 0: not given */
};

struct parse {
	struct syncd_config *cfg;
	struct gw_ini ini;
	enum section sec;
	unsigned cluster_header;
	unsigned cluster_key[CK_COUNT]; /* line of each key, 0: not given */
	struct member_lines mlines[SYNCD_MAX_MEMBERS];
	char why[160];
};

typedef int key_fn(struct parse *p, const char *value);

struct key_def {
	const char *name;
	key_fn *fn;
};

__attribute__((format(printf, 2, 3))) static int why(struct parse *p, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(p->why, sizeof(p->why), fmt, ap);
	va_end(ap);
	return -EINVAL;
}

static int parse_uint(struct parse *p, const char *s, unsigned long min, unsigned long max,
		      unsigned long *out)
{
	unsigned long v;
	char *end;

	*out = 0; /* defined on error too (GCC -O2 cannot tell why() never returns 0) */
	if (*s < '0' || *s > '9')
		return why(p, "\"%s\" is not a decimal number", s);
	errno = 0;
	v = strtoul(s, &end, 10);
	if (*end)
		return why(p, "\"%s\" is not a decimal number", s);
	if (errno || v < min || v > max)
		return why(p, "%s is outside %lu..%lu", s, min, max);
	*out = v;
	return 0;
}

static int copy_str(struct parse *p, char *dst, size_t size, const char *s)
{
	size_t n = strlen(s);

	if (n >= size)
		return why(p, "longer than %zu bytes", size - 1);
	memcpy(dst, s, n + 1);
	return 0;
}

static int copy_abs_path(struct parse *p, char *dst, size_t size, const char *s)
{
	if (s[0] != '/')
		return why(p, "\"%s\" is not an absolute path", s);
	return copy_str(p, dst, size, s);
}

static int key_name(struct parse *p, const char *v)
{
	for (const char *c = v; *c; c++)
		if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
		      (*c >= '0' && *c <= '9') || *c == '.' || *c == '_' || *c == '-'))
			return why(p, "only letters, digits, '.', '_' and '-' are allowed");
	return copy_str(p, p->cfg->cluster, sizeof(p->cfg->cluster), v);
}

static int key_node_id(struct parse *p, const char *v)
{
	unsigned long id;
	int rc = parse_uint(p, v, 1, 255, &id);

	if (!rc)
		p->cfg->node_id = (uint8_t)id;
	return rc;
}

/* Linux's dev_valid_name(), which also keeps the UAPI socket path sane. */
static int key_interface(struct parse *p, const char *v)
{
	if (!strcmp(v, ".") || !strcmp(v, ".."))
		return why(p, "\"%s\" is not a valid interface name", v);
	for (const char *c = v; *c; c++)
		if (*c == '/' || *c == ':' || *c == ' ' || *c == '\t')
			return why(p, "\"%s\" is not a valid interface name", v);
	return copy_str(p, p->cfg->ifname, sizeof(p->cfg->ifname), v);
}

static int key_mode(struct parse *p, const char *v)
{
	if (!strcasecmp(v, "vrrp"))
		p->cfg->mode = SYNCD_MODE_VRRP;
	else if (!strcasecmp(v, "anycast"))
		p->cfg->mode = SYNCD_MODE_ANYCAST;
	else
		return why(p, "\"%s\" is neither vrrp nor anycast", v);
	return 0;
}

static int key_state_dir(struct parse *p, const char *v)
{
	return copy_abs_path(p, p->cfg->state_dir, sizeof(p->cfg->state_dir), v);
}

static int key_control_socket(struct parse *p, const char *v)
{
	return copy_abs_path(p, p->cfg->control_socket, sizeof(p->cfg->control_socket), v);
}

static int key_secret_key_file(struct parse *p, const char *v)
{
	return copy_abs_path(p, p->cfg->secret_key_file, sizeof(p->cfg->secret_key_file), v);
}

static int key_heartbeat_ms(struct parse *p, const char *v)
{
	unsigned long ms;
	int rc = parse_uint(p, v, SYNCD_HEARTBEAT_MS_MIN, SYNCD_HEARTBEAT_MS_MAX, &ms);

	if (!rc)
		p->cfg->heartbeat_ms = (unsigned)ms;
	return rc;
}

static int key_peer_dead_ms(struct parse *p, const char *v)
{
	unsigned long ms;
	int rc = parse_uint(p, v, 2 * SYNCD_HEARTBEAT_MS_MIN, 10UL * SYNCD_HEARTBEAT_MS_MAX, &ms);

	if (!rc)
		p->cfg->peer_dead_ms = (unsigned)ms;
	return rc;
}

static int key_log_retain(struct parse *p, const char *v)
{
	unsigned long n;
	int rc = parse_uint(p, v, SYNCD_LOG_RETAIN_MIN, SYNCD_LOG_RETAIN_MAX, &n);

	if (!rc)
		p->cfg->log_retain = (unsigned)n;
	return rc;
}

static int key_log_level(struct parse *p, const char *v)
{
	if (gw_log_level_parse(v, &p->cfg->log_level))
		return why(p, "\"%s\" is not one of error, warning, info, debug", v);
	return 0;
}

static int key_bind_address(struct parse *p, const char *v)
{
	unsigned char buf[16];

	if (inet_pton(AF_INET, v, buf) != 1 && inet_pton(AF_INET6, v, buf) != 1)
		return why(p, "\"%s\" is not a numeric IPv4 or IPv6 address", v);
	return copy_str(p, p->cfg->bind_host, sizeof(p->cfg->bind_host), v);
}

/* "off" turns the session relay off (a gwd without --node-id has no socket). */
static int key_session_socket(struct parse *p, const char *v)
{
	if (!strcasecmp(v, "off")) {
		p->cfg->session_socket[0] = '\0';
		return 0;
	}
	return copy_abs_path(p, p->cfg->session_socket, sizeof(p->cfg->session_socket), v);
}

static int key_synced_file(struct parse *p, const char *v)
{
	return copy_abs_path(p, p->cfg->synced_file, sizeof(p->cfg->synced_file), v);
}

/* The /metrics listener: numeric "IP:PORT" or "[IPv6]:PORT" (docs/metrics.md). */
static int key_metrics(struct parse *p, const char *v)
{
	union gw_sockaddr sa;

	if (gw_endpoint_parse(&sa, v))
		return why(p, "\"%s\" is not a numeric IP:PORT or [IPv6]:PORT", v);
	return copy_str(p, p->cfg->metrics, sizeof(p->cfg->metrics), v);
}

static int key_keepalived_fifo(struct parse *p, const char *v)
{
	return copy_abs_path(p, p->cfg->keepalived_fifo, sizeof(p->cfg->keepalived_fifo), v);
}

/* keepalived writes the name between quotes and without blanks. */
static int keepalived_name(struct parse *p, const char *v, bool group)
{
	for (const char *c = v; *c; c++)
		if (*c <= ' ' || *c > '~' || *c == '"')
			return why(p, "blanks, quotes and control characters cannot be in a "
				      "keepalived name");
	p->cfg->keepalived_group = group;
	return copy_str(p, p->cfg->keepalived_name, sizeof(p->cfg->keepalived_name), v);
}

static int key_keepalived_instance(struct parse *p, const char *v)
{
	return keepalived_name(p, v, false);
}

static int key_keepalived_group(struct parse *p, const char *v)
{
	return keepalived_name(p, v, true);
}

static const struct key_def cluster_keys[CK_COUNT] = {
    [CK_NAME] = {"Name", key_name},
    [CK_NODE_ID] = {"NodeId", key_node_id},
    [CK_INTERFACE] = {"Interface", key_interface},
    [CK_MODE] = {"Mode", key_mode},
    [CK_STATE_DIR] = {"StateDir", key_state_dir},
    [CK_CONTROL_SOCKET] = {"ControlSocket", key_control_socket},
    [CK_SECRET_KEY_FILE] = {"CurveSecretKeyFile", key_secret_key_file},
    [CK_HEARTBEAT_MS] = {"HeartbeatMs", key_heartbeat_ms},
    [CK_PEER_DEAD_MS] = {"PeerDeadMs", key_peer_dead_ms},
    [CK_LOG_RETAIN] = {"LogRetain", key_log_retain},
    [CK_LOG_LEVEL] = {"LogLevel", key_log_level},
    [CK_BIND_ADDRESS] = {"BindAddress", key_bind_address},
    [CK_SESSION_SOCKET] = {"SessionSocket", key_session_socket},
    [CK_SYNCED_FILE] = {"SyncedFile", key_synced_file},
    [CK_METRICS] = {"Metrics", key_metrics},
    [CK_KEEPALIVED_FIFO] = {"KeepalivedFifo", key_keepalived_fifo},
    [CK_KEEPALIVED_INSTANCE] = {"KeepalivedInstance", key_keepalived_instance},
    [CK_KEEPALIVED_GROUP] = {"KeepalivedGroup", key_keepalived_group},
};

static struct syncd_member *cur_member(struct parse *p)
{
	return &p->cfg->members[p->cfg->n_members - 1];
}

static int mkey_node_id(struct parse *p, const char *v)
{
	unsigned long id;
	int rc = parse_uint(p, v, 1, 255, &id);

	if (!rc)
		cur_member(p)->node_id = (uint8_t)id;
	return rc;
}

/* "IPv4:PORT" or "[IPv6]:PORT", numeric, no scope; PORT + 1 must exist too. */
static int mkey_address(struct parse *p, const char *v)
{
	struct syncd_member *m = cur_member(p);
	union gw_sockaddr ep;
	const void *addr;
	uint16_t port;

	if (gw_endpoint_parse(&ep, v) || strchr(v, '%'))
		return why(p, "\"%s\" is not IPv4:PORT or [IPv6]:PORT", v);
	if (ep.sa.sa_family == AF_INET) {
		port = ntohs(ep.in.sin_port);
		addr = &ep.in.sin_addr;
		if (ep.in.sin_addr.s_addr == htonl(INADDR_ANY))
			return why(p, "the unspecified address cannot be connected to");
	} else {
		port = ntohs(ep.in6.sin6_port);
		addr = &ep.in6.sin6_addr;
		if (IN6_IS_ADDR_UNSPECIFIED(&ep.in6.sin6_addr))
			return why(p, "the unspecified address cannot be connected to");
	}
	if (port == 0 || port == 65535)
		return why(p, "port %u: must be 1..65534 (the ROUTER uses port + 1)", port);
	if (!inet_ntop(ep.sa.sa_family, addr, m->host, sizeof(m->host)))
		return why(p, "cannot format the address");
	m->port = port;
	return 0;
}

static int decode_z85(struct parse *p, uint8_t key[static SYNCD_CURVE_KEY_LEN], const char *v)
{
	if (strlen(v) != 40 || !zmq_z85_decode(key, v))
		return why(p, "not a Z85-encoded Curve key (40 characters)");
	return 0;
}

/* Z85 uses '#', which gw_ini takes for a comment: see protect_z85(). */
static int mkey_public_key(struct parse *p, const char *v)
{
	char z85[41];
	size_t n = strlen(v);

	if (n != 40)
		return why(p, "not a Z85-encoded Curve key (40 characters)");
	for (size_t i = 0; i <= n; i++)
		z85[i] = v[i] == Z85_HASH_STANDIN ? '#' : v[i];
	return decode_z85(p, cur_member(p)->curve_public, z85);
}

static const struct key_def member_keys[MK_COUNT] = {
    [MK_NODE_ID] = {"NodeId", mkey_node_id},
    [MK_ADDRESS] = {"Address", mkey_address},
    [MK_PUBLIC_KEY] = {"CurvePublicKey", mkey_public_key},
};

static int on_section(struct parse *p, const char *section, const char **whyp)
{
	if (!strcasecmp(section, "Cluster")) {
		if (p->cluster_header) {
			why(p, "second [Cluster] section (the first is at line %u)",
			    p->cluster_header);
			*whyp = p->why;
			return -EINVAL;
		}
		p->sec = SEC_CLUSTER;
		p->cluster_header = p->ini.line;
		return 0;
	}
	if (!strcasecmp(section, "Member")) {
		if (p->cfg->n_members == SYNCD_MAX_MEMBERS) {
			*whyp = "more than 255 [Member] sections";
			return -EINVAL;
		}
		p->sec = SEC_MEMBER;
		p->mlines[p->cfg->n_members].header = p->ini.line;
		p->cfg->n_members++;
		return 0;
	}
	*whyp = "unknown section (expected [Cluster] or [Member])";
	return -EINVAL;
}

static int on_key(struct parse *p, const struct key_def *defs, unsigned n, unsigned *lines,
		  const char *key, const char *value, const char **whyp)
{
	for (unsigned i = 0; i < n; i++) {
		int rc;

		if (strcasecmp(key, defs[i].name))
			continue;
		if (lines[i]) {
			why(p, "given twice (first at line %u)", lines[i]);
			*whyp = p->why;
			return -EINVAL;
		}
		if (!*value) {
			*whyp = "empty value";
			return -EINVAL;
		}
		lines[i] = p->ini.line;
		rc = defs[i].fn(p, value);
		if (rc)
			*whyp = p->why;
		return rc;
	}
	*whyp = p->sec == SEC_CLUSTER ? "unknown key in [Cluster]" : "unknown key in [Member]";
	return -EINVAL;
}

static int on_ini(void *arg, const char *section, const char *key, const char *value,
		  const char **whyp)
{
	struct parse *p = arg;

	if (!key)
		return on_section(p, section, whyp);
	switch (p->sec) {
	case SEC_CLUSTER:
		return on_key(p, cluster_keys, CK_COUNT, p->cluster_key, key, value, whyp);
	case SEC_MEMBER:
		return on_key(p, member_keys, MK_COUNT, p->mlines[p->cfg->n_members - 1].key, key,
			      value, whyp);
	default:
		*whyp = "key outside any section";
		return -EINVAL;
	}
}

/*
 * In a "CurvePublicKey = VALUE" line, '#' inside VALUE belongs to the Z85
 * key: it becomes Z85_HASH_STANDIN before gw_ini sees the line. A comment
 * after the key needs a blank before its '#'.
 */
static void protect_z85(char *line, size_t len)
{
	size_t i = 0, klen = strlen(KEY_LINE_PREFIX);

	while (i < len && (line[i] == ' ' || line[i] == '\t'))
		i++;
	if (len - i < klen || strncasecmp(line + i, KEY_LINE_PREFIX, klen))
		return;
	i += klen;
	while (i < len && (line[i] == ' ' || line[i] == '\t'))
		i++;
	if (i == len || line[i] != '=')
		return;
	i++;
	while (i < len && (line[i] == ' ' || line[i] == '\t'))
		i++;
	for (; i < len && line[i] != ' ' && line[i] != '\t' && line[i] != '\r' && line[i] != '\n';
	     i++)
		if (line[i] == '#')
			line[i] = Z85_HASH_STANDIN;
}

/* Reads the whole file (bounded) and feeds it to gw_ini line by line. */
static int parse_file(struct parse *p, const char *path)
{
	char *buf, ebuf[64];
	size_t len = 0;
	FILE *f;
	int rc = 0;

	f = fopen(path, "re");
	if (!f) {
		rc = -errno;
		snprintf(p->ini.err.msg, sizeof(p->ini.err.msg), "open: %s",
			 strerror_r(-rc, ebuf, sizeof(ebuf)));
		return rc;
	}
	buf = malloc(CONFIG_FILE_MAX + 1);
	if (buf)
		len = fread(buf, 1, CONFIG_FILE_MAX + 1, f);
	if (!buf || ferror(f) || len > CONFIG_FILE_MAX) {
		rc = !buf ? -ENOMEM : len > CONFIG_FILE_MAX ? -EFBIG : -EIO;
		snprintf(p->ini.err.msg, sizeof(p->ini.err.msg), "read: %s",
			 strerror_r(-rc, ebuf, sizeof(ebuf)));
	}
	fclose(f);
	for (size_t off = 0; !rc && off < len;) {
		char *nl = memchr(buf + off, '\n', len - off);
		size_t n = nl ? (size_t)(nl - (buf + off)) + 1 : len - off;

		protect_z85(buf + off, n);
		rc = gw_ini_feed(&p->ini, buf + off, n);
		off += n;
	}
	free(buf);
	return rc;
}

__attribute__((format(printf, 5, 6))) static int fail(char *err, size_t errlen, const char *path,
						      unsigned line, const char *fmt, ...)
{
	char msg[SYNCD_CONFIG_ERR_LEN];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (line)
		snprintf(err, errlen, "%s:%u: %s", path, line, msg);
	else
		snprintf(err, errlen, "%s: %s", path, msg);
	return -EINVAL;
}

/* KeepalivedFifo gives the role to the relay, which only a VRRP node has. */
static int check_keepalived(struct parse *p, const char *path, char *err, size_t errlen)
{
	const unsigned *k = p->cluster_key;
	struct syncd_config *c = p->cfg;

	if (k[CK_KEEPALIVED_INSTANCE] && k[CK_KEEPALIVED_GROUP])
		return fail(err, errlen, path, k[CK_KEEPALIVED_GROUP],
			    "KeepalivedGroup: KeepalivedInstance is given too (line %u); follow "
			    "one of them",
			    k[CK_KEEPALIVED_INSTANCE]);
	if (!k[CK_KEEPALIVED_FIFO]) {
		if (k[CK_KEEPALIVED_INSTANCE] || k[CK_KEEPALIVED_GROUP])
			return fail(err, errlen, path,
				    k[CK_KEEPALIVED_INSTANCE] ? k[CK_KEEPALIVED_INSTANCE]
							      : k[CK_KEEPALIVED_GROUP],
				    "%s without KeepalivedFifo",
				    k[CK_KEEPALIVED_INSTANCE] ? "KeepalivedInstance"
							      : "KeepalivedGroup");
		return 0;
	}
	if (c->mode != SYNCD_MODE_VRRP)
		return fail(err, errlen, path, k[CK_KEEPALIVED_FIFO],
			    "KeepalivedFifo: only in Mode = vrrp");
	if (!c->session_socket[0])
		return fail(err, errlen, path, k[CK_KEEPALIVED_FIFO],
			    "KeepalivedFifo: needs the session relay (SessionSocket is off)");
	return 0;
}

static int check_cluster(struct parse *p, const char *path, char *err, size_t errlen)
{
	static const enum cluster_key required[] = {CK_NAME, CK_NODE_ID, CK_INTERFACE,
						    CK_SECRET_KEY_FILE};
	struct syncd_config *c = p->cfg;

	if (!p->cluster_header)
		return fail(err, errlen, path, 0, "no [Cluster] section");
	for (size_t i = 0; i < sizeof(required) / sizeof(required[0]); i++)
		if (!p->cluster_key[required[i]])
			return fail(err, errlen, path, p->cluster_header, "[Cluster] lacks %s",
				    cluster_keys[required[i]].name);
	if (!c->peer_dead_ms)
		c->peer_dead_ms = SYNCD_PEER_DEAD_HEARTBEATS * c->heartbeat_ms;
	if (c->peer_dead_ms < 2 * c->heartbeat_ms)
		return fail(err, errlen, path, p->cluster_key[CK_PEER_DEAD_MS],
			    "PeerDeadMs: %u is less than two heartbeats (HeartbeatMs = %u)",
			    c->peer_dead_ms, c->heartbeat_ms);
	if (!c->state_dir[0] &&
	    (size_t)snprintf(c->state_dir, sizeof(c->state_dir), "%s/%s", SYNCD_DEFAULT_STATE_DIR,
			     c->ifname) >= sizeof(c->state_dir))
		return fail(err, errlen, path, 0, "default StateDir too long");
	if (!c->control_socket[0])
		snprintf(c->control_socket, sizeof(c->control_socket), "%s/%s.ctl",
			 SYNCD_DEFAULT_CTL_DIR, c->ifname);
	if (!p->cluster_key[CK_SESSION_SOCKET])
		snprintf(c->session_socket, sizeof(c->session_socket), "%s/%s.sessions",
			 SYNCD_DEFAULT_SESSION_DIR, c->ifname);
	return check_keepalived(p, path, err, errlen);
}

static int check_members(struct parse *p, const char *path, char *err, size_t errlen)
{
	struct syncd_config *c = p->cfg;
	bool self_found = false;

	if (!c->n_members)
		return fail(err, errlen, path, 0, "no [Member] section");
	for (unsigned i = 0; i < c->n_members; i++) {
		const struct member_lines *ml = &p->mlines[i];
		const struct syncd_member *m = &c->members[i];

		for (unsigned k = 0; k < MK_COUNT; k++)
			if (!ml->key[k])
				return fail(err, errlen, path, ml->header, "[Member] lacks %s",
					    member_keys[k].name);
		for (unsigned j = 0; j < i; j++) {
			if (c->members[j].node_id == m->node_id)
				return fail(err, errlen, path, ml->key[MK_NODE_ID],
					    "NodeId: %u is already the member at line %u",
					    m->node_id, p->mlines[j].header);
			if (c->members[j].port == m->port && !strcmp(c->members[j].host, m->host))
				return fail(err, errlen, path, ml->key[MK_ADDRESS],
					    "Address: already the member at line %u",
					    p->mlines[j].header);
			/* The transport tells members apart by their keys. */
			if (!memcmp(c->members[j].curve_public, m->curve_public,
				    SYNCD_CURVE_KEY_LEN))
				return fail(err, errlen, path, ml->key[MK_PUBLIC_KEY],
					    "CurvePublicKey: already the member at line %u",
					    p->mlines[j].header);
		}
		if (m->node_id == c->node_id) {
			c->self = i;
			self_found = true;
		}
	}
	if (!self_found)
		return fail(err, errlen, path, p->cluster_key[CK_NODE_ID],
			    "NodeId: %u is not among the [Member] sections", c->node_id);
	return 0;
}

/* Reads a Z85 secret key from a file only its owner may access. */
static int read_secret(struct syncd_config *c, char *z85, size_t z85len, char *why_buf,
		       size_t why_len)
{
	struct stat st;
	ssize_t n;
	int fd, rc = 0;

	fd = open(c->secret_key_file, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		rc = -errno;
		snprintf(why_buf, why_len, "%s: %s", c->secret_key_file, strerror(-rc));
		return rc;
	}
	if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
		snprintf(why_buf, why_len, "%s: not a regular file", c->secret_key_file);
		rc = -EINVAL;
	} else if (st.st_mode & (S_IRWXG | S_IRWXO)) {
		snprintf(why_buf, why_len,
			 "%s: mode %04o lets group or others access it (chmod 600)",
			 c->secret_key_file, (unsigned)(st.st_mode & 07777));
		rc = -EPERM;
	} else {
		n = read(fd, z85, z85len - 1);
		if (n < 0) {
			rc = -errno;
			snprintf(why_buf, why_len, "%s: %s", c->secret_key_file, strerror(-rc));
		} else {
			z85[n] = '\0';
		}
	}
	close(fd);
	return rc;
}

static int load_secret(struct parse *p, const char *path, char *err, size_t errlen)
{
	struct syncd_config *c = p->cfg;
	char z85[128], pub_z85[41], why_buf[SYNCD_DIR_PATH_MAX + 160];
	uint8_t pub[SYNCD_CURVE_KEY_LEN];
	unsigned line = p->cluster_key[CK_SECRET_KEY_FILE];
	size_t n;
	int rc;

	rc = read_secret(c, z85, sizeof(z85), why_buf, sizeof(why_buf));
	if (rc)
		goto out_fail;
	n = strlen(z85);
	while (n && (z85[n - 1] == '\n' || z85[n - 1] == '\r' || z85[n - 1] == ' '))
		z85[--n] = '\0';
	c->curve_secret = gw_secret_alloc(SYNCD_CURVE_KEY_LEN);
	rc = -ENOMEM;
	if (!c->curve_secret) {
		snprintf(why_buf, sizeof(why_buf), "out of secure memory");
		goto out_fail;
	}
	rc = -EINVAL;
	if (n != 40 || !zmq_z85_decode(c->curve_secret, z85) || zmq_curve_public(pub_z85, z85)) {
		snprintf(why_buf, sizeof(why_buf), "%s: not a Z85 Curve secret key",
			 c->secret_key_file);
		goto out_fail;
	}
	gw_wipe(z85, sizeof(z85));
	if (!zmq_z85_decode(pub, pub_z85) ||
	    !gw_memeq(pub, c->members[c->self].curve_public, sizeof(pub)))
		return fail(err, errlen, path, p->mlines[c->self].key[MK_PUBLIC_KEY],
			    "CurvePublicKey: does not match the secret key in %s",
			    c->secret_key_file);
	return 0;
out_fail:
	gw_wipe(z85, sizeof(z85));
	fail(err, errlen, path, line, "CurveSecretKeyFile: %s", why_buf);
	return rc;
}

static void set_defaults(struct syncd_config *c)
{
	c->mode = SYNCD_MODE_VRRP;
	c->heartbeat_ms = SYNCD_HEARTBEAT_MS_DEFAULT;
	c->log_retain = SYNCD_LOG_RETAIN_DEFAULT;
	c->log_level = GW_LOG_INFO;
}

int syncd_config_load(struct syncd_config **out, const char *path, char *err, size_t errlen)
{
	struct parse *p;
	int rc;

	*out = NULL;
	err[0] = '\0';
	p = calloc(1, sizeof(*p));
	if (p)
		p->cfg = calloc(1, sizeof(*p->cfg));
	if (!p || !p->cfg) {
		free(p);
		fail(err, errlen, path, 0, "out of memory");
		return -ENOMEM;
	}
	set_defaults(p->cfg);
	gw_ini_init(&p->ini, on_ini, p);
	rc = parse_file(p, path);
	if (rc)
		fail(err, errlen, path, p->ini.err.line, "%s", p->ini.err.msg);
	else
		rc = check_cluster(p, path, err, errlen);
	if (!rc)
		rc = check_members(p, path, err, errlen);
	if (!rc)
		rc = load_secret(p, path, err, errlen);
	if (rc)
		syncd_config_free(p->cfg);
	else
		*out = p->cfg;
	free(p);
	return rc;
}

void syncd_config_free(struct syncd_config *cfg)
{
	if (!cfg)
		return;
	gw_secret_free(cfg->curve_secret);
	free(cfg);
}

const struct syncd_member *syncd_config_member(const struct syncd_config *cfg, uint8_t node_id)
{
	for (unsigned i = 0; i < cfg->n_members; i++)
		if (cfg->members[i].node_id == node_id)
			return &cfg->members[i];
	return NULL;
}

const char *syncd_mode_name(enum syncd_mode mode)
{
	return mode == SYNCD_MODE_ANYCAST ? "anycast" : "vrrp";
}
