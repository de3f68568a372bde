/* SPDX-License-Identifier: MIT */
/*
 * Peer configuration as operators write it: field parsers shared by gwctl's
 * wg-like word syntax ("allowed-ips A,B keepalive 25 ...") and the apply file
 * (wg-quick-style [Peer] sections plus metadata keys), and a validator the
 * control server can run on what it receives.
 *
 * Canonical form (what every setter leaves and syncd_peer_validate accepts):
 * - public_key 32 bytes; preshared_key absent or 32 bytes, never all zero;
 * - allowed_ips "ADDR/CIDR" without host bits, as gw_prefix_format prints
 *   them, sorted (IPv4 first, then by address bytes, then prefix length),
 *   no duplicates;
 * - persistent_keepalive absent or 1..65535; endpoint absent or numeric
 *   "IPv4:PORT" / "[IPv6]:PORT" as gw_endpoint_format prints it;
 * - meta absent when empty; name and owner 1..64 bytes of UTF-8 without
 *   control characters; tags 1..32 bytes of [A-Za-z0-9._:@/+=-], sorted, no
 *   duplicates, at most 32; expires_unix absent or > 0.
 *
 * Setters take a PeerConfig whose strings, bytes and arrays were allocated
 * with malloc (as protobuf-c's unpack does), so the message can be freed
 * with gwcluster__peer_config__free_unpacked(pc, NULL) after
 * syncd_peer_wipe(). On error they set *why to a static message and leave
 * the field as it was.
 */
#ifndef SYNCD_PEERFILE_H
#define SYNCD_PEERFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "gwcluster.pb-c.h"

enum {
	SYNCD_PEER_TEXT_MAX = 64,	   /* name, owner */
	SYNCD_PEER_TAG_MAX = 32,	   /* bytes of one tag */
	SYNCD_PEER_TAGS_MAX = 32,	   /* tags of one peer */
	SYNCD_PEER_ALLOWED_IPS_MAX = 4096, /* allowed IPs of one peer */
	SYNCD_PEERFILE_PEERS_MAX = 1 << 20,
};

/* A new, empty PeerConfig (public key unset); NULL on ENOMEM. */
Gwcluster__PeerConfig *syncd_peer_new(void);
/* Wipes the preshared key, then frees the whole message; NULL is ignored. */
void syncd_peer_free(Gwcluster__PeerConfig *pc);

/* Base64 as `wg` prints keys. */
int syncd_peer_set_public_key(Gwcluster__PeerConfig *pc, const char *b64, const char **why);
/* Base64; all zeros or "" removes the preshared key. */
int syncd_peer_set_psk(Gwcluster__PeerConfig *pc, const char *b64, const char **why);
/*
 * Reads a base64 preshared key from a file ("-": stdin), as `wg set ...
 * preshared-key FILE` does: an empty file (/dev/null) removes it.
 */
int syncd_peer_set_psk_file(Gwcluster__PeerConfig *pc, const char *path, const char **why);
/* Comma-separated prefixes, blanks around items allowed; "" empties the set. */
int syncd_peer_set_allowed_ips(Gwcluster__PeerConfig *pc, const char *list, const char **why);
/* Adds to the set (a repeated AllowedIPs line). */
int syncd_peer_add_allowed_ips(Gwcluster__PeerConfig *pc, const char *list, const char **why);
/* 0..65535 or "off"; 0 and "off" remove it. */
int syncd_peer_set_keepalive(Gwcluster__PeerConfig *pc, const char *s, const char **why);
/* Numeric endpoint; "" or "none" removes it. */
int syncd_peer_set_endpoint(Gwcluster__PeerConfig *pc, const char *s, const char **why);
/* "" removes. */
int syncd_peer_set_name(Gwcluster__PeerConfig *pc, const char *s, const char **why);
int syncd_peer_set_owner(Gwcluster__PeerConfig *pc, const char *s, const char **why);
/* See syncd_parse_expires; "never" or 0 removes. */
int syncd_peer_set_expires(Gwcluster__PeerConfig *pc, const char *s, const char **why);
/* Comma-separated; replaces the tags ("" removes them all). */
int syncd_peer_set_tags(Gwcluster__PeerConfig *pc, const char *list, const char **why);
/* Adds tags (comma-separated) to those present. */
int syncd_peer_add_tags(Gwcluster__PeerConfig *pc, const char *list, const char **why);

/*
 * Expiry as UNIX seconds ("1767225600"), a UTC date ("2026-01-01", midnight)
 * or UTC date and time ("2026-01-01T12:30:00Z", 'T' or ' ', seconds and 'Z'
 * optional), or "never" (0). -EINVAL otherwise.
 */
int syncd_parse_expires(const char *s, uint64_t *out);
/* "2026-01-01T12:30:00Z"; out holds at least 24 bytes. */
void syncd_format_time(uint64_t unix_s, char *out, size_t len);

/* 0 when pc is in canonical form (above); -EINVAL and *why otherwise. */
int syncd_peer_validate(const Gwcluster__PeerConfig *pc, const char **why);

/* Fields named by the word syntax, for syncd_peer_copy_fields(). */
enum syncd_peer_field {
	SYNCD_PEER_F_ALLOWED_IPS = 1 << 0,
	SYNCD_PEER_F_PSK = 1 << 1,
	SYNCD_PEER_F_KEEPALIVE = 1 << 2,
	SYNCD_PEER_F_ENDPOINT = 1 << 3,
	SYNCD_PEER_F_NAME = 1 << 4,
	SYNCD_PEER_F_OWNER = 1 << 5,
	SYNCD_PEER_F_EXPIRES = 1 << 6,
	SYNCD_PEER_F_TAGS_SET = 1 << 7, /* the tags replaced */
	SYNCD_PEER_F_TAGS_ADD = 1 << 8, /* tags added to those present */
};

/*
 * gwctl's word syntax: "KEYWORD VALUE" pairs applied to pc in order.
 * Keywords: allowed-ips, preshared-key / psk-file (FILE or "-"),
 * persistent-keepalive / keepalive, endpoint, name, owner, expires,
 * tags (replaces), tag (adds). *given (may be NULL) gets the
 * syncd_peer_field bits of what was named. 0, or -EINVAL with
 * "keyword: why" in err.
 */
int syncd_peer_words(Gwcluster__PeerConfig *pc, int argc, char *const *argv, unsigned *given,
		     char *err, size_t errlen);

/*
 * Copies the fields in mask from src to dst (both canonical); with only
 * SYNCD_PEER_F_TAGS_ADD, src's tags are added to dst's. For `peer set`: the
 * words are parsed into a scratch PeerConfig before syncd is asked for the
 * stored one. 0 or -ENOMEM / -E2BIG (too many tags together).
 */
int syncd_peer_copy_fields(Gwcluster__PeerConfig *dst, const Gwcluster__PeerConfig *src,
			   unsigned mask);

/* --- Apply files ---------------------------------------------------------- */

struct syncd_peerfile {
	Gwcluster__PeerConfig **peers; /* canonical, in file order */
	unsigned *lines;	       /* line of each peer's [Peer] header */
	size_t n;
	unsigned interface_line; /* first [Interface] header (ignored), 0 if none */
};

struct syncd_peerfile_error {
	unsigned line; /* 0: not tied to a line */
	char msg[192];
};

/*
 * Parses a whole apply file: [Peer] sections with PublicKey (required),
 * PresharedKey, AllowedIPs (may repeat: the lists add up), PersistentKeepalive,
 * Endpoint, Name, Owner, Expires, Tags (may repeat). Keys are
 * case-insensitive. [Interface] sections are skipped (interface settings
 * are node-local) and reported in interface_line. Any other section, an
 * unknown or repeated key, a bad value, two peers with one public key or one
 * allowed IP in two peers is an error. On error pf is empty.
 */
int syncd_peerfile_parse_buffer(const char *buf, size_t len, struct syncd_peerfile *pf,
				struct syncd_peerfile_error *err);
int syncd_peerfile_parse_file(const char *path, struct syncd_peerfile *pf,
			      struct syncd_peerfile_error *err);
void syncd_peerfile_free(struct syncd_peerfile *pf);

#endif
