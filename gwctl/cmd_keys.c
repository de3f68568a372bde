// SPDX-License-Identifier: MIT
/*
 * Key helpers that need no syncd: WireGuard keys as `wg genkey`/`wg pubkey`
 * (libgw's X25519 and base64), Curve keys for cluster members in Z85
 * (libzmq's, as syncd reads them). Every secret is wiped once printed.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "gw/crypto.h"
#include "gw/key.h"
#include "gwctl.h"

enum { KEY_INPUT_MAX = 128, Z85_KEY_LEN = 40 };

/* A key on stdin: at most KEY_INPUT_MAX bytes, blanks around trimmed. */
static int read_key_line(char buf[static KEY_INPUT_MAX + 2])
{
	size_t n = 0, start = 0;
	ssize_t r;

	do {
		r = read(0, buf + n, KEY_INPUT_MAX + 1 - n);
		if (r > 0)
			n += (size_t)r;
	} while ((r > 0 || (r < 0 && errno == EINTR)) && n <= KEY_INPUT_MAX);
	if (r < 0 || n > KEY_INPUT_MAX) {
		gw_wipe(buf, KEY_INPUT_MAX + 2);
		return -EINVAL;
	}
	while (n && isspace((unsigned char)buf[n - 1]))
		n--;
	buf[n] = '\0';
	while (isspace((unsigned char)buf[start]))
		start++;
	memmove(buf, buf + start, n - start + 1);
	return 0;
}

/* As `wg genkey` does: a private key into a file others can read is a mistake. */
static void warn_if_world_readable(void)
{
	struct stat st;

	if (!fstat(1, &st) && S_ISREG(st.st_mode) && (st.st_mode & 0077))
		gwctl_err("warning: writing a private key to a file others can read "
			  "(set umask 077 first)");
}

static int write_key_file(const char *prefix, const char *ext, mode_t mode, const char *z85)
{
	char path[4096];
	int fd, rc = 0;
	size_t len = strlen(z85);

	if (snprintf(path, sizeof(path), "%s.%s", prefix, ext) >= (int)sizeof(path)) {
		gwctl_err("genkey: %s: path too long", prefix);
		return -ENAMETOOLONG;
	}
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
	if (fd < 0) {
		rc = -errno;
		gwctl_err("genkey: %s: %s%s", path, strerror(-rc),
			  rc == -EEXIST ? " (not overwritten)" : "");
		return rc;
	}
	if (fchmod(fd, mode) || write(fd, z85, len) != (ssize_t)len || write(fd, "\n", 1) != 1 ||
	    fsync(fd))
		rc = -errno;
	if (close(fd) && !rc)
		rc = -errno;
	if (rc) {
		gwctl_err("genkey: %s: %s", path, strerror(-rc));
		unlink(path);
	}
	return rc;
}

static int curve_genkey(struct gwctl *g)
{
	char pub[Z85_KEY_LEN + 1], sec[Z85_KEY_LEN + 1];
	char path[4096];
	int rc = GWCTL_EXIT_OK;

	if (zmq_curve_keypair(pub, sec)) {
		gwctl_err("genkey --curve: %s", zmq_strerror(errno));
		return GWCTL_EXIT_FAILED;
	}
	if (!g->out) {
		warn_if_world_readable();
		printf("secret: %s\npublic: %s\n", sec, pub);
	} else if (write_key_file(g->out, "secret", 0600, sec)) {
		rc = GWCTL_EXIT_FAILED;
	} else if (write_key_file(g->out, "public", 0644, pub)) {
		snprintf(path, sizeof(path), "%s.secret", g->out);
		unlink(path);
		rc = GWCTL_EXIT_FAILED;
	} else {
		printf("public: %s\n", pub);
	}
	gw_wipe(sec, sizeof(sec));
	return rc;
}

int gwctl_cmd_genkey(struct gwctl *g, int argc, char **argv)
{
	char b64[GW_KEY_B64_LEN + 1];
	uint8_t priv[GW_KEY_LEN];

	if (argc) {
		gwctl_err("genkey: unexpected '%s'", argv[0]);
		return gwctl_usage_error("genkey");
	}
	if (g->curve)
		return curve_genkey(g);
	warn_if_world_readable();
	gw_x25519_generate(priv);
	gw_key_to_base64(b64, priv);
	printf("%s\n", b64);
	fflush(stdout);
	gw_wipe(priv, sizeof(priv));
	gw_wipe(b64, sizeof(b64));
	return GWCTL_EXIT_OK;
}

int gwctl_cmd_pubkey(struct gwctl *g, int argc, char **argv)
{
	char in[KEY_INPUT_MAX + 2], b64[GW_KEY_B64_LEN + 1];
	uint8_t priv[GW_KEY_LEN], pub[GW_KEY_LEN];
	int rc = GWCTL_EXIT_OK;

	(void)g;
	if (argc) {
		gwctl_err("pubkey: unexpected '%s' (the private key goes on stdin)", argv[0]);
		return gwctl_usage_error("pubkey");
	}
	if (read_key_line(in) || gw_key_from_base64(priv, in)) {
		gwctl_err("pubkey: stdin does not hold a private key (44 base64 characters)");
		rc = GWCTL_EXIT_USAGE;
	} else if (!gw_x25519_public(pub, priv)) {
		gwctl_err("pubkey: unusable private key");
		rc = GWCTL_EXIT_USAGE;
	} else {
		gw_key_to_base64(b64, pub);
		printf("%s\n", b64);
	}
	gw_wipe(in, sizeof(in));
	gw_wipe(priv, sizeof(priv));
	return rc;
}

int gwctl_cmd_curve_pubkey(struct gwctl *g, int argc, char **argv)
{
	char in[KEY_INPUT_MAX + 2], pub[Z85_KEY_LEN + 1];
	uint8_t raw[32];
	int rc = GWCTL_EXIT_OK;

	(void)g;
	if (argc) {
		gwctl_err("curve-pubkey: unexpected '%s' (the secret key goes on stdin)", argv[0]);
		return gwctl_usage_error("curve-pubkey");
	}
	if (read_key_line(in) || strlen(in) != Z85_KEY_LEN || !zmq_z85_decode(raw, in) ||
	    zmq_curve_public(pub, in)) {
		gwctl_err("curve-pubkey: stdin does not hold a Curve secret key (40 Z85 "
			  "characters)");
		rc = GWCTL_EXIT_USAGE;
	} else {
		printf("%s\n", pub);
	}
	gw_wipe(in, sizeof(in));
	gw_wipe(raw, sizeof(raw));
	return rc;
}
