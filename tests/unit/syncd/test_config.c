// SPDX-License-Identifier: MIT
/*
 * cluster.conf: a complete file with every key, the defaults, and a table
 * of broken files, each of which must fail with "FILE:LINE: message" naming
 * the right line (or "FILE: message" where no line is to blame).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "config.h"
#include "gw/crypto.h"

static char dir[64], conf_path[128], sec_path[128], open_sec_path[128], bad_sec_path[128];
static char pub[3][41], sec[3][41];

static void write_file(const char *path, const char *text, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);

	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	cr_assert_eq(fchmod(fd, mode), 0);
	close(fd);
}

static void setup(void)
{
	char buf[64];

	cr_assert_eq(gw_crypto_init(), 0);
	snprintf(dir, sizeof(dir), "/tmp/syncd-config-XXXXXX");
	cr_assert(mkdtemp(dir));
	snprintf(conf_path, sizeof(conf_path), "%s/cluster.conf", dir);
	snprintf(sec_path, sizeof(sec_path), "%s/curve.key", dir);
	snprintf(open_sec_path, sizeof(open_sec_path), "%s/open.key", dir);
	snprintf(bad_sec_path, sizeof(bad_sec_path), "%s/bad.key", dir);
	for (int i = 0; i < 3; i++)
		cr_assert_eq(zmq_curve_keypair(pub[i], sec[i]), 0);
	snprintf(buf, sizeof(buf), "%s\n", sec[0]);
	write_file(sec_path, buf, 0600);
	write_file(open_sec_path, buf, 0644);
	write_file(bad_sec_path, "not a key\n", 0600);
}

static void teardown(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	cr_assert_eq(system(cmd), 0);
}

TestSuite(config, .init = setup, .fini = teardown);

/* Replaces @PUB1@..@PUB3@, @SEC@, @OPENSEC@, @BADSEC@ and @DIR@, writes the file, loads it. */
static int load(const char *tmpl, struct syncd_config **cfg, char *err, size_t errlen)
{
	static const struct {
		const char *tag;
		const char *val;
	} subst[] = {
	    {"@PUB1@", pub[0]},	 {"@PUB2@", pub[1]},	       {"@PUB3@", pub[2]},
	    {"@SEC@", sec_path}, {"@OPENSEC@", open_sec_path}, {"@BADSEC@", bad_sec_path},
	    {"@DIR@", dir},
	};
	static char out[80 * 1024];
	size_t n = 0;

	for (const char *p = tmpl; *p;) {
		size_t i;

		for (i = 0; i < sizeof(subst) / sizeof(subst[0]); i++)
			if (!strncmp(p, subst[i].tag, strlen(subst[i].tag)))
				break;
		if (i < sizeof(subst) / sizeof(subst[0])) {
			n += (size_t)snprintf(out + n, sizeof(out) - n, "%s", subst[i].val);
			p += strlen(subst[i].tag);
		} else {
			out[n++] = *p++;
		}
		cr_assert_lt(n, sizeof(out) - 1);
	}
	out[n] = '\0';
	write_file(conf_path, out, 0644);
	return syncd_config_load(cfg, conf_path, err, errlen);
}

#define CLUSTER             \
	"[Cluster]\n"       \
	"Name = lab-1\n"    \
	"NodeId = 1\n"      \
	"Interface = gw0\n" \
	"CurveSecretKeyFile = @SEC@\n"
#define MEMBER1                        \
	"[Member]\n"                   \
	"NodeId = 1\n"                 \
	"Address = 203.0.113.1:7400\n" \
	"CurvePublicKey = @PUB1@\n"
#define MEMBER2                            \
	"[Member]\n"                       \
	"NodeId = 2\n"                     \
	"Address = [2001:db8:3::2]:7400\n" \
	"CurvePublicKey = @PUB2@\n"

Test(config, full_file)
{
	static const char text[] = "# a comment\n"
				   "[Cluster]\n"
				   "Name = lab-1\n"
				   "NodeId = 2\n"
				   "interface = gw-test0   # keys are case-insensitive\n"
				   "Mode = anycast\n"
				   "StateDir = @DIR@/state\n"
				   "ControlSocket = @DIR@/ctl.sock\n"
				   "CurveSecretKeyFile = @SEC@\n"
				   "HeartbeatMs = 50\n"
				   "PeerDeadMs = 400\n"
				   "LogRetain = 5000\n"
				   "LogLevel = debug\n"
				   "BindAddress = 0.0.0.0\n"
				   "Metrics = [::1]:9587\n"
				   "\n"
				   "[Member]\n"
				   "NodeId = 7\n"
				   "Address = 203.0.113.7:7400\n"
				   "CurvePublicKey = @PUB2@\n"
				   "[member]\n"
				   "NodeId = 2\n"
				   "Address = [2001:db8:3::2]:65534\n"
				   "CurvePublicKey = @PUB1@\n";
	struct syncd_config *c;
	char err[SYNCD_CONFIG_ERR_LEN], path[256];

	cr_assert_eq(load(text, &c, err, sizeof(err)), 0, "%s", err);
	cr_assert_str_eq(c->cluster, "lab-1");
	cr_assert_eq(c->node_id, 2);
	cr_assert_str_eq(c->ifname, "gw-test0");
	cr_assert_eq(c->mode, SYNCD_MODE_ANYCAST);
	snprintf(path, sizeof(path), "%s/state", dir);
	cr_assert_str_eq(c->state_dir, path);
	snprintf(path, sizeof(path), "%s/ctl.sock", dir);
	cr_assert_str_eq(c->control_socket, path);
	cr_assert_eq(c->heartbeat_ms, 50);
	cr_assert_eq(c->peer_dead_ms, 400);
	cr_assert_eq(c->log_retain, 5000);
	cr_assert_eq(c->log_level, GW_LOG_DEBUG);
	cr_assert_str_eq(c->bind_host, "0.0.0.0");
	cr_assert_str_eq(c->metrics, "[::1]:9587");
	cr_assert_eq(c->n_members, 2);
	cr_assert_eq(c->self, 1);
	cr_assert_eq(c->members[0].node_id, 7);
	cr_assert_str_eq(c->members[0].host, "203.0.113.7");
	cr_assert_eq(c->members[0].port, 7400);
	cr_assert_str_eq(c->members[1].host, "2001:db8:3::2");
	cr_assert_eq(c->members[1].port, 65534);
	uint8_t key[32];
	cr_assert(zmq_z85_decode(key, pub[0]));
	cr_assert_eq(memcmp(c->members[1].curve_public, key, 32), 0);
	cr_assert(zmq_z85_decode(key, sec[0]));
	cr_assert_eq(memcmp(c->curve_secret, key, 32), 0);
	cr_assert_eq(syncd_config_member(c, 7), &c->members[0]);
	cr_assert_null(syncd_config_member(c, 3));
	syncd_config_free(c);
}

Test(config, defaults)
{
	struct syncd_config *c;
	char err[SYNCD_CONFIG_ERR_LEN];

	cr_assert_eq(load(CLUSTER MEMBER1, &c, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(c->mode, SYNCD_MODE_VRRP);
	cr_assert_str_eq(c->state_dir, "/var/lib/gwcluster/gw0");
	cr_assert_str_eq(c->control_socket, "/run/gwcluster/gw0.ctl");
	cr_assert_eq(c->heartbeat_ms, 100);
	cr_assert_eq(c->peer_dead_ms, 1000);
	cr_assert_eq(c->log_retain, SYNCD_LOG_RETAIN_DEFAULT);
	cr_assert_eq(c->log_level, GW_LOG_INFO);
	cr_assert_str_eq(c->bind_host, "");
	cr_assert_str_eq(c->metrics, "", "no metrics listener by default");
	cr_assert_str_eq(c->keepalived_fifo, "", "keepalived's FIFO is not followed by default");
	cr_assert_str_eq(c->keepalived_name, "");
	cr_assert_str_eq(syncd_mode_name(c->mode), "vrrp");
	syncd_config_free(c);
}

struct bad_case {
	const char *text;
	unsigned line; /* 0: "FILE: message" */
	const char *msg;
};

static const struct bad_case bad[] = {
    {"Name = x\n", 1, "Name: key outside any section"},
    {CLUSTER "[Peer]\n", 6, "[Peer]: unknown section"},
    {CLUSTER "Colour = blue\n" MEMBER1, 6, "Colour: unknown key in [Cluster]"},
    {CLUSTER "Name = again\n" MEMBER1, 6, "Name: given twice (first at line 2)"},
    {CLUSTER "Mode = \n" MEMBER1, 6, "Mode: empty value"},
    {CLUSTER MEMBER1 "[Cluster]\n", 10, "second [Cluster] section (the first is at line 1)"},
    {"[Cluster]\nNodeId = 0\n", 2, "NodeId: 0 is outside 1..255"},
    {"[Cluster]\nNodeId = 256\n", 2, "NodeId: 256 is outside 1..255"},
    {"[Cluster]\nNodeId = 1x\n", 2, "NodeId: \"1x\" is not a decimal number"},
    {"[Cluster]\nNodeId = -1\n", 2, "NodeId: \"-1\" is not a decimal number"},
    {"[Cluster]\nName = lab 1\n", 2, "Name: only letters, digits"},
    {"[Cluster]\nName = "
     "a123456789012345678901234567890123456789012345678901234567890123\n",
     2, "Name: longer than 63 bytes"},
    {"[Cluster]\nInterface = gw/0\n", 2, "Interface: \"gw/0\" is not a valid interface name"},
    {"[Cluster]\nInterface = gw0123456789abcd\n", 2, "Interface: longer than 15 bytes"},
    {"[Cluster]\nMode = active\n", 2, "Mode: \"active\" is neither vrrp nor anycast"},
    {"[Cluster]\nStateDir = var/lib\n", 2, "StateDir: \"var/lib\" is not an absolute path"},
    {"[Cluster]\nControlSocket = /run/"
     "abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijab"
     "cdefghijabcdefghij.ctl\n",
     2, "ControlSocket: longer than 107 bytes"},
    {"[Cluster]\nHeartbeatMs = 5\n", 2, "HeartbeatMs: 5 is outside 10..60000"},
    {"[Cluster]\nLogRetain = 10\n", 2, "LogRetain: 10 is outside"},
    {"[Cluster]\nLogLevel = loud\n", 2, "LogLevel: \"loud\" is not one of"},
    {"[Cluster]\nBindAddress = example.org\n", 2, "BindAddress: \"example.org\" is not"},
    {"[Cluster]\nMetrics = localhost:9587\n", 2,
     "Metrics: \"localhost:9587\" is not a numeric IP:PORT or [IPv6]:PORT"},
    {"[Cluster]\nMetrics = 127.0.0.1\n", 2, "Metrics: \"127.0.0.1\" is not a numeric"},
    {"[Cluster]\nMetrics = 127.0.0.1:65536\n", 2, "Metrics: \"127.0.0.1:65536\" is not"},
    {"[Cluster]\nName = x\nNodeId = 1\nInterface = gw0\nCurveSecretKeyFile = @SEC@\n"
     "HeartbeatMs = 100\nPeerDeadMs = 150\n" MEMBER1,
     7, "PeerDeadMs: 150 is less than two heartbeats"},
    {"[Cluster]\nNodeId = 1\nInterface = gw0\nCurveSecretKeyFile = @SEC@\n" MEMBER1, 1,
     "[Cluster] lacks Name"},
    {"[Cluster]\nName = x\nInterface = gw0\nCurveSecretKeyFile = @SEC@\n" MEMBER1, 1,
     "[Cluster] lacks NodeId"},
    {"[Cluster]\nName = x\nNodeId = 1\nCurveSecretKeyFile = @SEC@\n" MEMBER1, 1,
     "[Cluster] lacks Interface"},
    {"[Cluster]\nName = x\nNodeId = 1\nInterface = gw0\n" MEMBER1, 1,
     "[Cluster] lacks CurveSecretKeyFile"},
    {MEMBER1, 0, "no [Cluster] section"},
    {CLUSTER, 0, "no [Member] section"},
    {"", 0, "no [Cluster] section"},
    {CLUSTER MEMBER1 "[Member]\nNodeId = 2\nCurvePublicKey = @PUB2@\n", 10,
     "[Member] lacks Address"},
    {CLUSTER MEMBER1 "[Member]\nNodeId = 2\nAddress = 203.0.113.2:7400\n", 10,
     "[Member] lacks CurvePublicKey"},
    {CLUSTER MEMBER1 "[Member]\nAddress = 203.0.113.2:7400\nCurvePublicKey = @PUB2@\n", 10,
     "[Member] lacks NodeId"},
    {CLUSTER "[Member]\nAddress = gw1.example:7400\n", 7,
     "Address: \"gw1.example:7400\" is not IPv4:PORT or [IPv6]:PORT"},
    {CLUSTER "[Member]\nAddress = 2001:db8::1:7400\n", 7, "is not IPv4:PORT or [IPv6]:PORT"},
    {CLUSTER "[Member]\nAddress = [fe80::1%lo]:7400\n", 7, "is not IPv4:PORT or [IPv6]:PORT"},
    {CLUSTER "[Member]\nAddress = 203.0.113.1\n", 7, "is not IPv4:PORT or [IPv6]:PORT"},
    {CLUSTER "[Member]\nAddress = 203.0.113.1:0\n", 7, "port 0: must be 1..65534"},
    {CLUSTER "[Member]\nAddress = 203.0.113.1:65535\n", 7, "port 65535: must be 1..65534"},
    {CLUSTER "[Member]\nAddress = 0.0.0.0:7400\n", 7, "the unspecified address"},
    {CLUSTER "[Member]\nAddress = [::]:7400\n", 7, "the unspecified address"},
    {CLUSTER "[Member]\nCurvePublicKey = abc\n", 7, "CurvePublicKey: not a Z85-encoded"},
    {CLUSTER "[Member]\nCurvePublicKey = @PUB1@x\n", 7, "CurvePublicKey: not a Z85-encoded"},
    {CLUSTER MEMBER1 MEMBER1, 11, "NodeId: 1 is already the member at line 6"},
    {CLUSTER MEMBER1 "[Member]\nNodeId = 2\nAddress = 203.0.113.1:7400\n"
		     "CurvePublicKey = @PUB2@\n",
     12, "Address: already the member at line 6"},
    {CLUSTER MEMBER1 "[Member]\nNodeId = 2\nAddress = 203.0.113.2:7400\n"
		     "CurvePublicKey = @PUB1@\n",
     13, "CurvePublicKey: already the member at line 6"},
    {CLUSTER MEMBER2, 3, "NodeId: 1 is not among the [Member] sections"},
    {"[Cluster]\nName = x\nNodeId = 1\nInterface = gw0\n"
     "CurveSecretKeyFile = @DIR@/missing.key\n" MEMBER1,
     5, "CurveSecretKeyFile: "},
    {"[Cluster]\nName = x\nNodeId = 1\nInterface = gw0\nCurveSecretKeyFile = @OPENSEC@\n" MEMBER1,
     5, "mode 0644 lets group or others access it (chmod 600)"},
    {"[Cluster]\nName = x\nNodeId = 1\nInterface = gw0\nCurveSecretKeyFile = @BADSEC@\n" MEMBER1, 5,
     "not a Z85 Curve secret key"},
    {"[Cluster]\nName = x\nNodeId = 1\nInterface = gw0\nCurveSecretKeyFile = @DIR@\n" MEMBER1, 5,
     "not a regular file"},
    {CLUSTER "[Member]\nNodeId = 1\nAddress = 203.0.113.1:7400\nCurvePublicKey = @PUB2@\n", 9,
     "CurvePublicKey: does not match the secret key in"},
    {CLUSTER MEMBER1 "Foo\n", 10, "expected \"Key = Value\" or \"[Section]\""},
    {CLUSTER "KeepalivedFifo = run/k.fifo\n" MEMBER1, 6,
     "KeepalivedFifo: \"run/k.fifo\" is not an absolute path"},
    {CLUSTER "KeepalivedInstance = VI 1\n" MEMBER1, 6, "KeepalivedInstance: blanks, quotes"},
    {CLUSTER "KeepalivedGroup = \"G\"\n" MEMBER1, 6, "KeepalivedGroup: blanks, quotes"},
    {CLUSTER "KeepalivedInstance = VI_1\n" MEMBER1, 6, "KeepalivedInstance without KeepalivedFifo"},
    {CLUSTER "KeepalivedGroup = G1\n" MEMBER1, 6, "KeepalivedGroup without KeepalivedFifo"},
    {CLUSTER
     "KeepalivedFifo = /run/k.fifo\nKeepalivedInstance = VI_1\nKeepalivedGroup = G1\n" MEMBER1,
     8, "KeepalivedGroup: KeepalivedInstance is given too (line 7)"},
    {CLUSTER "Mode = anycast\nKeepalivedFifo = /run/k.fifo\n" MEMBER1, 7,
     "KeepalivedFifo: only in Mode = vrrp"},
    {CLUSTER "SessionSocket = off\nKeepalivedFifo = /run/k.fifo\n" MEMBER1, 7,
     "KeepalivedFifo: needs the session relay"},
};

Test(config, keepalived_fifo)
{
	struct syncd_config *c;
	char err[SYNCD_CONFIG_ERR_LEN];

	cr_assert_eq(load(CLUSTER "KeepalivedFifo = /run/keepalived/gw.fifo\n"
				  "keepalivedgroup = VG_1\n" MEMBER1,
			  &c, err, sizeof(err)),
		     0, "%s", err);
	cr_assert_str_eq(c->keepalived_fifo, "/run/keepalived/gw.fifo");
	cr_assert_str_eq(c->keepalived_name, "VG_1");
	cr_assert(c->keepalived_group);
	syncd_config_free(c);
	cr_assert_eq(load(CLUSTER
			  "KeepalivedFifo = /run/k.fifo\nKeepalivedInstance = VI_WG\n" MEMBER1,
			  &c, err, sizeof(err)),
		     0, "%s", err);
	cr_assert_str_eq(c->keepalived_name, "VI_WG");
	cr_assert_not(c->keepalived_group);
	syncd_config_free(c);
	cr_assert_eq(load(CLUSTER "KeepalivedFifo = /run/k.fifo\n" MEMBER1, &c, err, sizeof(err)),
		     0, "%s", err);
	cr_assert_str_eq(c->keepalived_name, "", "every instance");
	syncd_config_free(c);
}

Test(config, errors_name_file_and_line)
{
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct syncd_config *c = (void *)1;
		char err[SYNCD_CONFIG_ERR_LEN], prefix[200];
		int rc = load(bad[i].text, &c, err, sizeof(err));

		cr_assert_lt(rc, 0, "case %zu loaded", i);
		cr_assert_null(c, "case %zu", i);
		if (bad[i].line)
			snprintf(prefix, sizeof(prefix), "%s:%u: ", conf_path, bad[i].line);
		else
			snprintf(prefix, sizeof(prefix), "%s: ", conf_path);
		cr_assert_eq(strncmp(err, prefix, strlen(prefix)), 0,
			     "case %zu: \"%s\" does not start with \"%s\"", i, err, prefix);
		cr_assert(strstr(err, bad[i].msg), "case %zu: \"%s\" lacks \"%s\"", i, err,
			  bad[i].msg);
	}
}

Test(config, missing_file)
{
	struct syncd_config *c;
	char err[SYNCD_CONFIG_ERR_LEN];

	cr_assert_eq(syncd_config_load(&c, "/nonexistent/cluster.conf", err, sizeof(err)), -ENOENT);
	cr_assert_str_eq(err, "/nonexistent/cluster.conf: open: No such file or directory");
}

/* CLUSTER followed by members 1..n (n may exceed 255: then ids wrap). */
static char *many_members(unsigned n)
{
	char *text = malloc(80 * 1024), *p = text;

	cr_assert(text);
	p += sprintf(p, CLUSTER);
	for (unsigned i = 1; i <= n; i++) {
		char pk[41], sk[41];

		cr_assert_eq(zmq_curve_keypair(pk, sk), 0);
		p += sprintf(p,
			     "[Member]\nNodeId = %u\nAddress = 198.18.%u.%u:7400\n"
			     "CurvePublicKey = %s\n",
			     (i - 1) % 255 + 1, i / 256, i % 256, i == 1 ? "@PUB1@" : pk);
	}
	return text;
}

Test(config, most_members)
{
	struct syncd_config *c;
	char err[SYNCD_CONFIG_ERR_LEN];
	char *text = many_members(256);

	cr_assert_lt(load(text, &c, err, sizeof(err)), 0);
	cr_assert(strstr(err, ": [Member]: more than 255 [Member] sections"), "%s", err);
	free(text);
	text = many_members(255);
	cr_assert_eq(load(text, &c, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(c->n_members, 255);
	syncd_config_free(c);
	free(text);
}

/* '#' is a Z85 digit: inside a CurvePublicKey it is no comment. */
Test(config, z85_keys_may_contain_hash)
{
	struct syncd_config *c;
	char err[SYNCD_CONFIG_ERR_LEN], pk[41], sk[41], text[1024];
	uint8_t key[32];
	int tries = 0;

	do {
		cr_assert_eq(zmq_curve_keypair(pk, sk), 0);
		cr_assert_lt(++tries, 1000);
	} while (!strchr(pk, '#') || pk[0] == '#');
	snprintf(text, sizeof(text),
		 CLUSTER MEMBER1 "[Member]\nNodeId = 2\nAddress = 203.0.113.2:7400\n"
				 "CurvePublicKey = %s   # node 2, a comment after a blank\n",
		 pk);
	cr_assert_eq(load(text, &c, err, sizeof(err)), 0, "%s", err);
	cr_assert(zmq_z85_decode(key, pk));
	cr_assert_eq(memcmp(c->members[1].curve_public, key, 32), 0);
	syncd_config_free(c);
	/* Elsewhere '#' still starts a comment. */
	snprintf(text, sizeof(text), CLUSTER "Mode = anycast#vrrp\n" MEMBER1);
	cr_assert_eq(load(text, &c, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(c->mode, SYNCD_MODE_ANYCAST);
	syncd_config_free(c);
}
