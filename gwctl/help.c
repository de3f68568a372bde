// SPDX-License-Identifier: MIT
/* The manual: `gwctl --help` prints all of it, `gwctl help CMD` one part. */
#include <string.h>

#include "gwctl.h"

static const char head[] =
    "NAME\n"
    "    gwctl - configure a gwcluster through the local syncd\n"
    "\n"
    "SYNOPSIS\n"
    "    gwctl [-c CONFIG] [-s SOCKET] [--json] [--timeout MS] COMMAND [ARGS...]\n"
    "    gwctl --help | --version | help [COMMAND]\n"
    "\n"
    "DESCRIPTION\n"
    "    gwctl talks to the syncd of this node over its control socket; syncd\n"
    "    stores the change, replicates it to every member of the cluster and\n"
    "    applies it to the local gwd. A change is acknowledged once it is on\n"
    "    disk. Keys are base64 as `wg` prints them. Options may come anywhere;\n"
    "    after `--` nothing is taken as an option.\n"
    "\n"
    "COMMANDS\n";

static const char peer_text[] =
    "    peer add PUBKEY [OPTION VALUE]... [--move-allowed-ips]\n"
    "        Adds a peer; fails if it exists. OPTIONs, in the style of `wg set`:\n"
    "          allowed-ips A[,B...]        prefixes routed to the peer (\"\" none)\n"
    "          preshared-key FILE|-        base64 PSK from a file or stdin; an\n"
    "                                      empty file (/dev/null) removes it\n"
    "          psk-file FILE|-             the same\n"
    "          keepalive N|off             persistent keepalive, seconds (also\n"
    "                                      persistent-keepalive)\n"
    "          endpoint IP:PORT|none       endpoint hint; gwd keeps one it learnt\n"
    "          name TEXT, owner TEXT       metadata, up to 64 bytes (\"\" removes)\n"
    "          expires DATE|UNIX|never     YYYY-MM-DD[THH:MM[:SS]Z] UTC, or seconds\n"
    "          tags T[,T...]               replaces the tags (\"\" removes all)\n"
    "          tag T                       adds a tag (may repeat)\n"
    "        Everything is checked before anything is sent. An allowed IP\n"
    "        another peer has is refused (naming that peer) unless\n"
    "        --move-allowed-ips is given: then it moves, as with `wg set`.\n"
    "\n"
    "    peer set PUBKEY OPTION VALUE [OPTION VALUE]... [--move-allowed-ips]\n"
    "        Changes the given fields of an existing peer, keeps the others.\n"
    "\n"
    "    peer remove PUBKEY\n"
    "        Removes a peer from every node.\n"
    "\n"
    "    peer list\n"
    "        All peers: name, public key, allowed IPs, keepalive, endpoint hint,\n"
    "        owner, expiry, tags. Preshared keys are never shown.\n"
    "\n"
    "    peer show PUBKEY\n"
    "        One peer, field by field.\n"
    "\n";

static const char apply_text[] =
    "    apply FILE [--dry-run] [--allow-empty]\n"
    "        Makes the peers in FILE (\"-\": stdin) the whole peer set of the\n"
    "        cluster, in one atomic change, and prints what was added (+),\n"
    "        removed (-) and changed (~). FILE is wg-quick style: [Peer]\n"
    "        sections with PublicKey, PresharedKey, AllowedIPs,\n"
    "        PersistentKeepalive, Endpoint, plus Name, Owner, Expires and Tags.\n"
    "        [Interface] sections are skipped with a note (interface settings\n"
    "        are node-local). Any error is reported as FILE:LINE and nothing is\n"
    "        sent. --dry-run prints the diff and changes nothing. A file with\n"
    "        no peers would remove them all: it needs --allow-empty.\n"
    "\n";

static const char genkey_text[] =
    "    genkey\n"
    "        Prints a new WireGuard private key (base64), as `wg genkey`.\n"
    "\n"
    "    genkey --curve [--out PREFIX]\n"
    "        A new CurveZMQ key pair for a cluster member, in Z85: prints\n"
    "        \"secret: ...\" and \"public: ...\"; with --out, writes\n"
    "        PREFIX.secret (mode 0600) and PREFIX.public (0644), refuses to\n"
    "        overwrite, and prints only the public line.\n"
    "\n";

static const char pubkey_text[] =
    "    pubkey\n"
    "        Reads a private key (base64) on stdin, prints its public key, as\n"
    "        `wg pubkey`.\n"
    "\n";

static const char curve_pubkey_text[] =
    "    curve-pubkey\n"
    "        Reads a Curve secret key (Z85) on stdin, prints its public key.\n"
    "\n";

static const char status_text[] =
    "    status\n"
    "        Whether this node is synced, its peer count, whether gwd is\n"
    "        connected, messages rejected; per member: node id, address,\n"
    "        reachable, last seen, lag (updates not yet confirmed), version,\n"
    "        synced. With the session relay on: whether this node is ready\n"
    "        for master, and per member its role, gwd, readiness, peers and\n"
    "        sessions owned, standby sessions, greatest ownership/send\n"
    "        epochs, tightest region headroom, age of its latest session\n"
    "        message, delay and session messages lost.\n"
    "\n";

static const char role_text[] =
    "    role [show]\n"
    "        This node's role, gwd's state, readiness for master and its\n"
    "        session figures.\n"
    "\n"
    "    role master [--force]\n"
    "        gwd claims every peer, also those added later (keepalived's\n"
    "        MASTER). Refused while the node is not ready (the SyncedFile is\n"
    "        not 0: configuration or sessions not imported yet) unless\n"
    "        --force. syncd remembers the role and gives it to gwd again\n"
    "        after a restart.\n"
    "\n"
    "    role backup\n"
    "    role fault\n"
    "        gwd releases every peer (keepalived's BACKUP or FAULT).\n"
    "\n"
    "    role claim PUBKEY... [--force]\n"
    "    role release PUBKEY...\n"
    "        gwd claims or releases these peers only; not remembered (the\n"
    "        next role master/backup/fault overrides it).\n"
    "\n"
    "    role ready --force\n"
    "        Makes this node ready for master (its SyncedFile 0) although no\n"
    "        member has sent it sessions since it started: for a cluster that\n"
    "        starts while the other members are gone for good. Its clients\n"
    "        will handshake anew. Lasts until syncd stops; gwd must still be\n"
    "        connected and the dumps of live members imported.\n"
    "\n";

static const char help_text[] = "    help [COMMAND]\n"
				"        This manual, or the part about COMMAND.\n"
				"\n";

static const char tail[] =
    "OPTIONS\n"
    "    -c, --config CONFIG  cluster.conf to find the control socket in\n"
    "                         (default " GWCTL_DEFAULT_CONFIG "): [Cluster]\n"
    "                         ControlSocket, else " GWCTL_DEFAULT_CTL_DIR "/INTERFACE.ctl\n"
    "    -s, --socket SOCKET  the control socket itself; overrides -c\n"
    "    --json               JSON on stdout instead of tables\n"
    "    --timeout MS         how long to wait for syncd (default 5000)\n"
    "    --force              role master|claim: even when not ready; role ready\n"
    "    -h, --help           this manual\n"
    "    -V, --version        the version\n"
    "\n"
    "EXIT STATUS\n"
    "    0  done\n"
    "    1  syncd refused or failed the operation (its reason on stderr)\n"
    "    2  bad command line, bad input or unreadable config; nothing sent\n"
    "    3  syncd cannot be reached: no control socket, refused, no answer\n"
    "\n"
    "FILES\n"
    "    " GWCTL_DEFAULT_CONFIG "\n"
    "    " GWCTL_DEFAULT_CTL_DIR "/IFNAME.ctl\n"
    "\n"
    "EXAMPLES\n"
    "    gwctl peer add $(wg genkey | wg pubkey) allowed-ips 198.18.0.2/32 \\\n"
    "        name alice owner it@example.com tag laptop\n"
    "    gwctl peer set xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg= keepalive 25\n"
    "    gwctl apply peers.conf --dry-run\n"
    "    gwctl genkey --curve --out /etc/gwcluster/node1\n"
    "    gwctl --json status\n"
    "    gwctl role master\n"
    "\n"
    "SEE ALSO\n"
    "    wg(8), wg-quick(8), docs/gwctl.md\n";

static const struct topic {
	const char *name;
	const char *text;
} topics[] = {
    {"peer", peer_text},
    {"apply", apply_text},
    {"genkey", genkey_text},
    {"pubkey", pubkey_text},
    {"curve-pubkey", curve_pubkey_text},
    {"status", status_text},
    {"role", role_text},
    {"help", help_text},
};

bool gwctl_help(FILE *f, const char *topic)
{
	size_t n = sizeof(topics) / sizeof(topics[0]);

	if (!topic) {
		fputs(head, f);
		for (size_t i = 0; i < n; i++)
			fputs(topics[i].text, f);
		fputs(tail, f);
		return true;
	}
	for (size_t i = 0; i < n; i++) {
		if (!strcmp(topic, topics[i].name)) {
			fputs(topics[i].text, f);
			return true;
		}
	}
	return false;
}

int gwctl_usage_error(const char *topic)
{
	if (topic)
		fprintf(stderr, "Try 'gwctl help %s'.\n", topic);
	else
		fputs("Try 'gwctl --help'.\n", stderr);
	return GWCTL_EXIT_USAGE;
}
