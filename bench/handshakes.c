// SPDX-License-Identifier: MIT
/*
 * bench_handshakes: what a WireGuard responder (a gateway) pays per
 * handshake on one core, using gwd's own handshake code (gwdcore) without
 * its I/O, next to the X25519 rate that bounds it.
 *
 * Per handshake the responder checks mac1 of the initiation, consumes it
 * (finding the peer by static key in a hash table, as gwd does), creates
 * the response and adds its macs, derives the keypair, then authenticates
 * the initiator's first data message with it (index lookup, AEAD open,
 * replay window, keypair confirmation). Only those steps are timed; the
 * initiators' side runs on the same core between them, untimed.
 *
 * X25519 work of one responder handshake (see gwd/noise.c):
 *   consume_initiation  es = DH(s_r, E_i)                    1 variable-base
 *                       ss = DH(s_r, S_i)                    cached per peer
 *   create_response     E_r = e_r * G                        1 fixed-base
 *                       ee = DH(e_r, E_i), se = DH(e_r, S_i) 2 variable-base
 * so the bound is 1 / (3 / variable_rate + 1 / fixed_rate) handshakes/s.
 *
 * Peers are served round robin; a fake clock moves 21 ms per round so that
 * no initiation is refused as a flood (one per peer per 20 ms).
 */
#include <endian.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cookie.h"
#include "index.h"
#include "messages.h"
#include "noise.h"
#include "replay.h"

enum {
	DEFAULT_PEERS = 256,
	DATA_LEN = 96, /* a small first packet (an ICMP echo, padded) */
	KEY_SETS = 64,
	ROUND_ADVANCE_MS = GWD_INITIATION_MIN_INTERVAL_MS + 1,
	SLICES = 8,
};

struct options {
	double seconds; /* CPU seconds of responder handshakes */
	size_t peers;
	bool json;
};

/* One end: its identity, its index table and (responder) its peers by key. */
struct side {
	struct gwd_noise_local local;
	struct gwd_index_table index;
	struct bench_peer **slots; /* open addressing on the public key; NULL: none */
	size_t nslots;
};

/* The responder's view of one initiator. */
struct bench_peer {
	struct gwd_noise_remote remote;
	struct gwd_cookie_maker maker; /* macs of our responses to it */
};

struct initiator {
	struct side side;
	struct gwd_noise_remote remote; /* the responder */
	struct gwd_cookie_maker maker;	/* macs of initiations to the responder */
	struct gwd_message_handshake_initiation init;
	struct gwd_message_handshake_response resp;
	uint8_t data[GWD_MESSAGE_DATA_LEN(DATA_LEN)];
};

struct bench {
	struct gw_fake_clock clock;
	union gw_sockaddr src; /* where the initiations come from */
	struct side resp;
	struct gwd_cookie_checker checker;
	struct bench_peer *peers;
	struct initiator *ini;
	size_t n;
};

/* Nanoseconds the responder spent in each step, and handshakes counted. */
struct phase_times {
	uint64_t mac1, consume, response, session, data;
	uint64_t handshakes;
};

/* Operations counted and the CPU time they took. */
struct tally {
	uint64_t n, ns;
};

struct results {
	struct tally x25519_var, x25519_base;
	struct phase_times t;
	uint64_t both_ns; /* CPU time of whole rounds: both sides */
	double mac1, mac2, cookie_reply;
};

static volatile uint8_t sink;

/*
 * CPU time of this thread: a rate per CPU-second is a rate per core, and
 * other work on a shared machine mostly does not count against it.
 */
static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * GW_NSEC_PER_SEC + (uint64_t)ts.tv_nsec;
}

static _Noreturn void die(const char *what, int code)
{
	fprintf(stderr, "bench_handshakes: %s failed (%d)\n", what, code);
	exit(1);
}

/* --- upcalls (arg is the struct side) ---------------------------------------- */

static size_t slot_of(const uint8_t pub[static GW_KEY_LEN], size_t nslots)
{
	uint64_t h;

	memcpy(&h, pub, sizeof(h)); /* the keys are random: their bytes are a hash */
	return (size_t)(h & (nslots - 1));
}

static struct gwd_noise_remote *up_remote_by_pubkey(void *arg, const uint8_t pub[static GW_KEY_LEN])
{
	struct side *s = arg;
	size_t i;

	if (!s->slots)
		return NULL;
	for (i = slot_of(pub, s->nslots); s->slots[i]; i = (i + 1) & (s->nslots - 1))
		if (!memcmp(s->slots[i]->remote.public_key, pub, GW_KEY_LEN))
			return &s->slots[i]->remote;
	return NULL;
}

static int up_index_alloc(void *arg, struct gwd_noise_remote *r, uint32_t *out)
{
	struct side *s = arg;

	return gwd_index_alloc(&s->index, GWD_INDEX_HANDSHAKE, r, out);
}

static void up_index_to_keypair(void *arg, uint32_t index, struct gwd_noise_keypair *kp)
{
	struct side *s = arg;

	(void)gwd_index_replace(&s->index, index, GWD_INDEX_KEYPAIR, kp);
}

static void up_index_free(void *arg, uint32_t index)
{
	struct side *s = arg;

	gwd_index_free(&s->index, index);
}

/* --- setup ------------------------------------------------------------------- */

static void side_init(struct side *s, const struct gw_clock *clock)
{
	const struct gwd_noise_upcalls up = {
	    .arg = s,
	    .remote_by_pubkey = up_remote_by_pubkey,
	    .index_alloc = up_index_alloc,
	    .index_to_keypair = up_index_to_keypair,
	    .index_free = up_index_free,
	};
	uint8_t priv[GW_KEY_LEN];
	int err;

	s->slots = NULL;
	s->nslots = 0;
	err = gwd_index_init(&s->index, 0);
	if (!err)
		err = gwd_noise_local_init(&s->local, clock, &up);
	if (err)
		die("side setup", err);
	gw_x25519_generate(priv);
	err = gwd_noise_local_set_private_key(&s->local, priv);
	gw_wipe(priv, sizeof(priv));
	if (err)
		die("gwd_noise_local_set_private_key", err);
}

static void side_destroy(struct side *s)
{
	gwd_noise_local_destroy(&s->local);
	gwd_index_destroy(&s->index);
	free(s->slots);
}

static void peer_insert(struct side *s, struct bench_peer *p)
{
	size_t i = slot_of(p->remote.public_key, s->nslots);

	while (s->slots[i])
		i = (i + 1) & (s->nslots - 1);
	s->slots[i] = p;
}

static void bench_init(struct bench *b, size_t n)
{
	const struct gw_clock *clock = &b->clock.clock;
	size_t i;

	memset(b, 0, sizeof(*b));
	gw_fake_clock_init(&b->clock, GW_NSEC_PER_SEC, 1700000000);
	b->src.in.sin_family = AF_INET;
	b->src.in.sin_port = htobe16(51820);
	b->src.in.sin_addr.s_addr = htobe32(0xcb007102); /* 203.0.113.2 */
	b->n = n;
	b->peers = calloc(n, sizeof(*b->peers));
	b->ini = calloc(n, sizeof(*b->ini));
	if (!b->peers || !b->ini)
		die("calloc", -ENOMEM);
	side_init(&b->resp, clock);
	for (b->resp.nslots = 16; b->resp.nslots < 2 * n;)
		b->resp.nslots *= 2;
	b->resp.slots = calloc(b->resp.nslots, sizeof(*b->resp.slots));
	if (!b->resp.slots || gwd_cookie_checker_init(&b->checker, clock))
		die("responder setup", -ENOMEM);
	gwd_cookie_checker_set_key(&b->checker, b->resp.local.public_key);
	for (i = 0; i < n; i++) {
		struct initiator *ini = &b->ini[i];
		struct bench_peer *p = &b->peers[i];

		side_init(&ini->side, clock);
		gwd_noise_remote_init(&ini->remote, &ini->side.local, b->resp.local.public_key,
				      NULL);
		gwd_cookie_maker_init(&ini->maker, clock, b->resp.local.public_key);
		gwd_noise_remote_init(&p->remote, &b->resp.local, ini->side.local.public_key, NULL);
		gwd_cookie_maker_init(&p->maker, clock, ini->side.local.public_key);
		peer_insert(&b->resp, p);
	}
}

static void bench_destroy(struct bench *b)
{
	size_t i;

	for (i = 0; i < b->n; i++) {
		gwd_noise_remote_destroy(&b->ini[i].remote);
		side_destroy(&b->ini[i].side);
		gwd_noise_remote_destroy(&b->peers[i].remote);
	}
	side_destroy(&b->resp);
	gwd_cookie_checker_destroy(&b->checker);
	free(b->ini);
	free(b->peers);
}

/* --- one round: every initiator shakes hands once -------------------------- */

static void initiate(struct initiator *ini)
{
	enum gwd_noise_result res = gwd_noise_create_initiation(&ini->remote, &ini->init);

	if (res != GWD_NOISE_OK)
		die("gwd_noise_create_initiation", (int)res);
	if (gwd_cookie_add_macs(&ini->maker, &ini->init, sizeof(ini->init)))
		die("gwd_cookie_add_macs (initiation)", -EINVAL);
}

/* The responder's part of the handshake, timed step by step. */
static void respond(struct bench *b, struct initiator *ini, struct phase_times *t)
{
	struct gwd_noise_remote *r;
	struct bench_peer *p;
	enum gwd_noise_result res;
	uint64_t t0, t1, t2, t3, t4;

	t0 = now_ns();
	if (gwd_cookie_validate(&b->checker, &ini->init, sizeof(ini->init), &b->src, false) !=
	    GWD_COOKIE_MAC1_VALID)
		die("gwd_cookie_validate", -EBADMSG);
	t1 = now_ns();
	res = gwd_noise_consume_initiation(&b->resp.local, &ini->init, &r);
	if (res != GWD_NOISE_OK)
		die("gwd_noise_consume_initiation", (int)res);
	t2 = now_ns();
	p = (struct bench_peer *)((char *)r - offsetof(struct bench_peer, remote));
	res = gwd_noise_create_response(r, &ini->resp);
	if (res != GWD_NOISE_OK)
		die("gwd_noise_create_response", (int)res);
	if (gwd_cookie_add_macs(&p->maker, &ini->resp, sizeof(ini->resp)))
		die("gwd_cookie_add_macs (response)", -EINVAL);
	t3 = now_ns();
	res = gwd_noise_begin_session(r, NULL);
	if (res != GWD_NOISE_OK)
		die("gwd_noise_begin_session (responder)", (int)res);
	t4 = now_ns();
	t->mac1 += t1 - t0;
	t->consume += t2 - t1;
	t->response += t3 - t2;
	t->session += t4 - t3;
}

/* The initiator takes the response and sends its first data message. */
static void finish(struct initiator *ini)
{
	struct gwd_message_data *msg = (struct gwd_message_data *)ini->data;
	struct gwd_noise_keypair *kp;
	enum gwd_noise_result res;
	uint8_t plain[DATA_LEN];
	uint64_t counter;

	res = gwd_noise_consume_response(&ini->remote, &ini->resp);
	if (res == GWD_NOISE_OK)
		res = gwd_noise_begin_session(&ini->remote, &kp);
	if (res != GWD_NOISE_OK)
		die("initiator: response", (int)res);
	if (!gwd_noise_keypair_next_counter(kp, &counter))
		die("gwd_noise_keypair_next_counter", -ERANGE);
	memset(plain, 0x45, sizeof(plain));
	msg->header.type = htole32(GWD_MESSAGE_DATA);
	msg->key_idx = htole32(kp->remote_index);
	msg->counter = htole64(counter);
	gw_aead_encrypt(msg->encrypted_data, plain, sizeof(plain), NULL, 0, counter,
			kp->sending_key);
}

/* The responder authenticates that data message, as gwd's receive path does. */
static void receive(struct bench *b, struct initiator *ini, struct phase_times *t)
{
	struct gwd_message_data *msg = (struct gwd_message_data *)ini->data;
	uint64_t t0 = now_ns(), counter = le64toh(msg->counter);
	struct gwd_noise_keypair *kp;

	kp = gwd_index_lookup(&b->resp.index, le32toh(msg->key_idx), GWD_INDEX_KEYPAIR);
	if (!kp || gwd_noise_keypair_expired(kp, gw_clock_mono_ns(&b->clock.clock)))
		die("data: keypair lookup", -ENOENT);
	if (!gw_aead_decrypt(msg->encrypted_data, msg->encrypted_data,
			     sizeof(ini->data) - GWD_MESSAGE_DATA_HEADER_LEN, NULL, 0, counter,
			     kp->receiving_key))
		die("data: gw_aead_decrypt", -EBADMSG);
	if (!gwd_replay_check_and_update(&kp->receiving_window, counter, GWD_REJECT_AFTER_MESSAGES))
		die("data: replay window", -EEXIST);
	if (!gwd_noise_received_with_keypair(kp->remote, kp))
		die("data: keypair confirmation", -EINVAL);
	t->data += now_ns() - t0;
	t->handshakes++;
}

static void round_run(struct bench *b, struct phase_times *t)
{
	size_t i;

	for (i = 0; i < b->n; i++)
		initiate(&b->ini[i]);
	for (i = 0; i < b->n; i++)
		respond(b, &b->ini[i], t);
	for (i = 0; i < b->n; i++)
		finish(&b->ini[i]);
	for (i = 0; i < b->n; i++)
		receive(b, &b->ini[i], t);
	gw_fake_clock_advance(&b->clock, GWD_MSEC_NS(ROUND_ADVANCE_MS));
}

static uint64_t responder_ns(const struct phase_times *t)
{
	return t->mac1 + t->consume + t->response + t->session + t->data;
}

/* Rounds until the responder has spent `seconds` more. */
static void bench_handshakes(struct bench *b, double seconds, struct results *res)
{
	uint64_t t0 = now_ns(), until = responder_ns(&res->t) + (uint64_t)(seconds * 1e9);

	while (responder_ns(&res->t) < until)
		round_run(b, &res->t);
	res->both_ns += now_ns() - t0;
}

/* --- primitives ---------------------------------------------------------------- */

/* X25519 for `seconds` more: variable base (gw_x25519) or fixed (gw_x25519_public). */
static void bench_x25519(double seconds, bool fixed_base, struct tally *tl)
{
	static uint8_t sk[KEY_SETS][GW_KEY_LEN], pk[KEY_SETS][GW_KEY_LEN];
	static bool ready;
	uint8_t out[GW_KEY_LEN];
	uint64_t t0, t = 0;
	size_t i;
	bool ok = true;

	for (i = 0; !ready && i < KEY_SETS; i++) {
		gw_x25519_generate(sk[i]);
		if (!gw_x25519_public(pk[i], sk[i])) /* points on the curve, as ephemerals are */
			die("gw_x25519_public", -EINVAL);
	}
	ready = true;
	t0 = now_ns();
	while ((double)t < seconds * 1e9) {
		for (i = 0; i < KEY_SETS; i++) {
			if (fixed_base)
				ok &= gw_x25519_public(out, sk[i]);
			else
				ok &= gw_x25519(out, sk[i], pk[(i + 1) % KEY_SETS]);
			sink ^= out[0];
		}
		tl->n += KEY_SETS;
		t = now_ns() - t0;
	}
	if (!ok)
		die("x25519", -EINVAL);
	tl->ns += t;
}

/*
 * X25519 and handshakes in alternating slices, so that both figures see the
 * same conditions (frequency, caches, neighbours) and their ratio holds.
 */
static void bench_interleaved(struct bench *b, double seconds, struct results *res)
{
	struct phase_times warm = {0};

	round_run(b, &warm); /* computes every peer's static-static DH once */
	for (int i = 0; i < SLICES; i++) {
		bench_x25519(seconds / 2 / SLICES, false, &res->x25519_var);
		bench_x25519(seconds / 2 / SLICES, true, &res->x25519_base);
		bench_handshakes(b, seconds / SLICES, res);
	}
}

/* Calls of gwd_cookie_validate per second on msg, which must give want. */
static double rate_validate(struct bench *b, const void *msg, size_t len, bool mac2,
			    enum gwd_cookie_mac_state want, double seconds)
{
	uint64_t n = 0, t0 = now_ns(), t;
	int i;

	do {
		for (i = 0; i < 256; i++)
			if (gwd_cookie_validate(&b->checker, msg, len, &b->src, mac2) != want)
				die("gwd_cookie_validate", -EBADMSG);
		n += 256;
		t = now_ns() - t0;
	} while ((double)t < seconds * 1e9);
	return (double)n * 1e9 / (double)t;
}

static double rate_cookie_reply(struct bench *b, const void *msg, size_t len, double seconds)
{
	struct gwd_message_handshake_cookie reply;
	uint64_t n = 0, t0 = now_ns(), t;
	int i;

	do {
		for (i = 0; i < 256; i++)
			if (gwd_cookie_reply_create(&b->checker, &reply, msg, len, &b->src))
				die("gwd_cookie_reply_create", -EINVAL);
		n += 256;
		t = now_ns() - t0;
	} while ((double)t < seconds * 1e9);
	sink ^= reply.encrypted_cookie[0];
	return (double)n * 1e9 / (double)t;
}

/* mac1 alone (normal operation), mac1 + mac2 (under load), cookie replies. */
static void bench_macs(struct bench *b, double seconds, struct results *res)
{
	struct initiator *ini = &b->ini[0];
	struct gwd_message_handshake_cookie reply;
	const size_t len = sizeof(ini->init);

	initiate(ini);
	res->mac1 = rate_validate(b, &ini->init, len, false, GWD_COOKIE_MAC1_VALID, seconds);
	res->cookie_reply = rate_cookie_reply(b, &ini->init, len, seconds);
	if (gwd_cookie_reply_create(&b->checker, &reply, &ini->init, len, &b->src) ||
	    gwd_cookie_consume_reply(&ini->maker, &reply))
		die("cookie exchange", -EINVAL);
	if (gwd_cookie_add_macs(&ini->maker, &ini->init, len))
		die("gwd_cookie_add_macs (mac2)", -EINVAL);
	res->mac2 = rate_validate(b, &ini->init, len, true, GWD_COOKIE_MAC2_VALID, seconds);
}

/* --- report -------------------------------------------------------------------- */

static double per_hs_us(uint64_t ns, uint64_t n)
{
	return n ? (double)ns / 1e3 / (double)n : 0;
}

static void report(const struct results *r, const struct options *o)
{
	const struct phase_times *t = &r->t;
	double resp_s = (double)responder_ns(t) / 1e9;
	double hs = (double)t->handshakes / resp_s;
	double var = (double)r->x25519_var.n * 1e9 / (double)r->x25519_var.ns;
	double base = (double)r->x25519_base.n * 1e9 / (double)r->x25519_base.ns;
	double bound = 1.0 / (3.0 / var + 1.0 / base);
	double naive = var / 4.0;
	double full = (double)t->handshakes * 1e9 / (double)r->both_ns;

	if (o->json) {
		printf(
		    "{\"peers\":%zu,\"seconds\":%.2f,\"x25519_variable_per_s\":%.0f,"
		    "\"x25519_fixed_base_per_s\":%.0f,\"responder_handshakes_per_s\":%.0f,"
		    "\"responder_us\":{\"mac1\":%.2f,\"consume_initiation\":%.2f,"
		    "\"create_response_and_macs\":%.2f,\"begin_session\":%.2f,"
		    "\"first_data\":%.2f},\"dh_per_handshake\":{\"variable\":3,\"fixed_base\":1},"
		    "\"bound_per_s\":%.0f,\"achieved_over_bound\":%.3f,"
		    "\"bound_4_variable_per_s\":%.0f,\"achieved_over_bound_4_variable\":%.3f,"
		    "\"full_handshakes_per_s_both_sides\":%.0f,\"mac1_validations_per_s\":%.0f,"
		    "\"mac1_mac2_validations_per_s\":%.0f,\"cookie_replies_per_s\":%.0f}\n",
		    o->peers, o->seconds, var, base, hs, per_hs_us(t->mac1, t->handshakes),
		    per_hs_us(t->consume, t->handshakes), per_hs_us(t->response, t->handshakes),
		    per_hs_us(t->session, t->handshakes), per_hs_us(t->data, t->handshakes), bound,
		    hs / bound, naive, hs / naive, full, r->mac1, r->mac2, r->cookie_reply);
		return;
	}
	printf("gwd handshakes: %zu peers round robin, rates per CPU-second of one thread\n",
	       o->peers);
	printf("  X25519 variable base (gw_x25519)        %10.0f /s\n", var);
	printf("  X25519 fixed base (gw_x25519_public)    %10.0f /s\n", base);
	printf("  responder handshakes                    %10.0f /s  (%" PRIu64 " handshakes)\n",
	       hs, t->handshakes);
	printf("    us each: mac1 %.2f, consume_initiation %.2f, create_response+macs %.2f,\n"
	       "             begin_session %.2f, first data %.2f\n",
	       per_hs_us(t->mac1, t->handshakes), per_hs_us(t->consume, t->handshakes),
	       per_hs_us(t->response, t->handshakes), per_hs_us(t->session, t->handshakes),
	       per_hs_us(t->data, t->handshakes));
	printf("  X25519 per responder handshake: 3 variable-base (es, ee, se) + 1 fixed-base "
	       "(E_r); ss cached per peer\n");
	printf("  bound 1/(3/var + 1/fixed)               %10.0f /s  achieved %.0f%%\n", bound,
	       100.0 * hs / bound);
	printf("  bound var/4                             %10.0f /s  achieved %.0f%%\n", naive,
	       100.0 * hs / naive);
	printf("  full handshakes, both sides on one core %10.0f /s\n", full);
	printf("  mac1 validations                        %10.0f /s\n", r->mac1);
	printf("  mac1+mac2 validations (under load)      %10.0f /s\n", r->mac2);
	printf("  cookie replies created                  %10.0f /s\n", r->cookie_reply);
}

static void usage(FILE *f)
{
	fprintf(f, "usage: bench_handshakes [--seconds S] [--peers N] [--json]\n"
		   "  --seconds S  CPU seconds of responder handshakes (default 2), in 8\n"
		   "               slices interleaved with S/2 of each X25519 kind; the mac\n"
		   "               figures take S/4 each; all in all about 4 S\n"
		   "  --peers N    initiators served round robin (default 256)\n"
		   "  --json       one JSON object instead of the table\n");
}

static int parse(int argc, char **argv, struct options *o)
{
	static const struct option longopts[] = {
	    {"seconds", required_argument, NULL, 's'},
	    {"peers", required_argument, NULL, 'p'},
	    {"json", no_argument, NULL, 'j'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	char *end;
	int c;

	*o = (struct options){.seconds = 2.0, .peers = DEFAULT_PEERS};
	while ((c = getopt_long(argc, argv, "s:p:jh", longopts, NULL)) != -1) {
		switch (c) {
		case 's':
			o->seconds = strtod(optarg, &end);
			if (*end || !(o->seconds > 0 && o->seconds <= 600))
				return -EINVAL;
			break;
		case 'p':
			o->peers = strtoul(optarg, &end, 10);
			if (*end || o->peers < 1 || o->peers > 100000)
				return -EINVAL;
			break;
		case 'j':
			o->json = true;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			return -EINVAL;
		}
	}
	return optind == argc ? 0 : -EINVAL;
}

int main(int argc, char **argv)
{
	struct options o;
	struct results res = {0};
	struct bench *b;

	if (parse(argc, argv, &o)) {
		usage(stderr);
		return 2;
	}
	if (gw_crypto_init())
		die("gw_crypto_init", -EIO);
	b = calloc(1, sizeof(*b));
	if (!b)
		die("calloc", -ENOMEM);
	bench_init(b, o.peers);
	bench_interleaved(b, o.seconds, &res);
	bench_macs(b, o.seconds / 4, &res);
	report(&res, &o);
	bench_destroy(b);
	free(b);
	return 0;
}
