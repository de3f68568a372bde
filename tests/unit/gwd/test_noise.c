/* SPDX-License-Identifier: MIT */
/*
 * The Noise_IKpsk2 handshake in memory: two (or three) sides on one fake
 * clock, each with its own fake receiver-index table that records every
 * allocation and free.
 */
#include <criterion/criterion.h>
#include <endian.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cookie.h"
#include "gw/clock.h"
#include "gw/crypto.h"
#include "noise.h"

enum { MAX_ENTRIES = 64, MAX_REMOTES = 4, MAX_FREED = 256 };

struct entry {
	bool used;
	uint32_t index;
	struct gwd_noise_remote *r;   /* handshake entry */
	struct gwd_noise_keypair *kp; /* keypair entry once moved */
};

/* One gwd: its identity, its index table, the remotes it knows. */
struct side {
	struct gwd_noise_local local;
	struct entry entries[MAX_ENTRIES];
	uint32_t next_index;
	uint32_t freed[MAX_FREED];
	size_t nfreed;
	int fail_alloc; /* index_alloc returns this when nonzero */
	struct gwd_noise_remote remotes[MAX_REMOTES];
	size_t nremotes;
	bool hide_remotes; /* remote_by_pubkey finds nothing */
	uint8_t priv[GW_KEY_LEN];
	uint8_t pub[GW_KEY_LEN];
	const uint8_t *ephemerals; /* n * GW_KEY_LEN fixed ephemerals, or NULL */
	size_t nephemerals;
};

static struct gw_fake_clock fc;
static struct side *A, *B, *C;

static struct entry *find_entry(struct side *s, uint32_t index)
{
	for (size_t i = 0; i < MAX_ENTRIES; i++)
		if (s->entries[i].used && s->entries[i].index == index)
			return &s->entries[i];
	return NULL;
}

static size_t live_entries(const struct side *s)
{
	size_t n = 0;

	for (size_t i = 0; i < MAX_ENTRIES; i++)
		n += s->entries[i].used;
	return n;
}

static bool was_freed(const struct side *s, uint32_t index)
{
	for (size_t i = 0; i < s->nfreed; i++)
		if (s->freed[i] == index)
			return true;
	return false;
}

static struct gwd_noise_remote *up_remote_by_pubkey(void *arg, const uint8_t pub[GW_KEY_LEN])
{
	struct side *s = arg;

	if (s->hide_remotes)
		return NULL;
	for (size_t i = 0; i < s->nremotes; i++)
		if (!memcmp(s->remotes[i].public_key, pub, GW_KEY_LEN))
			return &s->remotes[i];
	return NULL;
}

static int up_index_alloc(void *arg, struct gwd_noise_remote *r, uint32_t *out)
{
	struct side *s = arg;

	if (s->fail_alloc)
		return s->fail_alloc;
	for (size_t i = 0; i < MAX_ENTRIES; i++) {
		struct entry *e = &s->entries[i];

		if (e->used)
			continue;
		e->used = true;
		e->index = s->next_index++;
		e->r = r;
		e->kp = NULL;
		*out = e->index;
		return 0;
	}
	return -ENOSPC;
}

static void up_index_to_keypair(void *arg, uint32_t index, struct gwd_noise_keypair *kp)
{
	struct entry *e = find_entry(arg, index);

	cr_assert_not_null(e, "index_to_keypair of unknown index %08x", index);
	cr_assert_null(e->kp, "index %08x already names a keypair", index);
	cr_assert_eq(kp->remote, e->r, "keypair moved to another remote's index");
	e->kp = kp;
}

static void up_index_free(void *arg, uint32_t index)
{
	struct side *s = arg;
	struct entry *e = find_entry(s, index);

	cr_assert_not_null(e, "index_free of unknown index %08x", index);
	e->used = false;
	cr_assert_lt(s->nfreed, MAX_FREED);
	s->freed[s->nfreed++] = index;
}

static void up_ephemeral(void *arg, uint8_t priv[GW_KEY_LEN])
{
	struct side *s = arg;

	cr_assert_gt(s->nephemerals, 0, "no fixed ephemeral left");
	memcpy(priv, s->ephemerals, GW_KEY_LEN);
	s->ephemerals += GW_KEY_LEN;
	s->nephemerals--;
}

static struct side *side_new(uint32_t index_base, const uint8_t *priv, bool fixed_ephemerals)
{
	struct side *s = calloc(1, sizeof(*s));
	struct gwd_noise_upcalls up = {
	    .remote_by_pubkey = up_remote_by_pubkey,
	    .index_alloc = up_index_alloc,
	    .index_to_keypair = up_index_to_keypair,
	    .index_free = up_index_free,
	};

	cr_assert_not_null(s);
	up.arg = s;
	if (fixed_ephemerals)
		up.ephemeral_generate = up_ephemeral;
	s->next_index = index_base;
	cr_assert_eq(gwd_noise_local_init(&s->local, &fc.clock, &up), 0);
	if (priv)
		memcpy(s->priv, priv, GW_KEY_LEN);
	else
		gw_x25519_generate(s->priv);
	cr_assert_eq(gwd_noise_local_set_private_key(&s->local, s->priv), 0);
	cr_assert(gw_x25519_public(s->pub, s->priv));
	cr_assert_eq(memcmp(s->local.public_key, s->pub, GW_KEY_LEN), 0);
	return s;
}

static struct gwd_noise_remote *side_add_remote(struct side *s, const struct side *peer,
						const uint8_t *psk)
{
	struct gwd_noise_remote *r;

	cr_assert_lt(s->nremotes, MAX_REMOTES);
	r = &s->remotes[s->nremotes++];
	gwd_noise_remote_init(r, &s->local, peer->pub, psk);
	return r;
}

static void side_free(struct side *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->nremotes; i++)
		gwd_noise_remote_destroy(&s->remotes[i]);
	cr_assert_eq(live_entries(s), 0, "%zu indexes leaked", live_entries(s));
	gwd_noise_local_destroy(&s->local);
	free(s);
}

static void setup(void)
{
	cr_assert_eq(gw_crypto_init(), 0);
	gw_fake_clock_init(&fc, 1000 * GW_NSEC_PER_SEC, 1700000000);
	A = side_new(0x0a000001, NULL, false);
	B = side_new(0x0b000001, NULL, false);
	C = NULL;
}

/*
 * Every test ends with done(): it destroys all sides and checks that every
 * index was freed. Criterion ignores failures in .fini, so teardown only
 * cleans up after a test that failed before done().
 */
static void done(void)
{
	side_free(A);
	side_free(B);
	side_free(C);
	A = B = C = NULL;
}

static void teardown(void)
{
	done();
}

TestSuite(noise, .init = setup, .fini = teardown);

static void advance_ms(uint64_t ms)
{
	gw_fake_clock_advance(&fc, ms * GW_NSEC_PER_MSEC);
}

/* The remote on s for peer p. */
static struct gwd_noise_remote *remote_of(struct side *s, const struct side *p)
{
	return up_remote_by_pubkey(s, p->pub);
}

static bool zero(const void *p, size_t n)
{
	const uint8_t *b = p;

	for (size_t i = 0; i < n; i++)
		if (b[i])
			return false;
	return true;
}

/* A full handshake, initiator i to responder r; both begin their sessions. */
static void handshake(struct side *si, struct side *sr, struct gwd_noise_keypair **ikp,
		      struct gwd_noise_keypair **rkp)
{
	struct gwd_message_handshake_initiation init;
	struct gwd_message_handshake_response resp;
	struct gwd_noise_remote *ri = remote_of(si, sr), *rr;

	cr_assert_eq(gwd_noise_create_initiation(ri, &init), GWD_NOISE_OK);
	cr_assert_eq(gwd_noise_consume_initiation(&sr->local, &init, &rr), GWD_NOISE_OK);
	cr_assert_eq(rr, remote_of(sr, si));
	cr_assert_eq(gwd_noise_create_response(rr, &resp), GWD_NOISE_OK);
	cr_assert_eq(gwd_noise_begin_session(rr, rkp), GWD_NOISE_OK);
	cr_assert_eq(find_entry(si, le32toh(resp.receiver_index))->r, ri);
	cr_assert_eq(gwd_noise_consume_response(ri, &resp), GWD_NOISE_OK);
	cr_assert_eq(gwd_noise_begin_session(ri, ikp), GWD_NOISE_OK);
	/* Initiations of one initiator must be 20 ms apart for the responder. */
	advance_ms(GWD_INITIATION_MIN_INTERVAL_MS);
}

static void check_pair(const struct side *si, const struct side *sr,
		       const struct gwd_noise_keypair *i, const struct gwd_noise_keypair *r)
{
	cr_assert_eq(memcmp(i->sending_key, r->receiving_key, GW_KEY_LEN), 0);
	cr_assert_eq(memcmp(i->receiving_key, r->sending_key, GW_KEY_LEN), 0);
	cr_assert_neq(memcmp(i->sending_key, i->receiving_key, GW_KEY_LEN), 0);
	cr_assert_eq(i->remote_index, r->local_index);
	cr_assert_eq(r->remote_index, i->local_index);
	cr_assert(i->initiator && i->confirmed);
	cr_assert(!r->initiator && !r->confirmed);
	cr_assert_eq(i->sending_counter, 0);
	cr_assert_eq(find_entry((struct side *)si, i->local_index)->kp, i);
	cr_assert_eq(find_entry((struct side *)sr, r->local_index)->kp, r);
}

/* Data message round trip: what one side seals, the other opens. */
static void check_transport(struct gwd_noise_keypair *from, const struct gwd_noise_keypair *to)
{
	static const uint8_t plain[32] = "a data packet, zero-padded.....";
	uint8_t sealed[sizeof(plain) + GW_AEAD_TAG_LEN], opened[sizeof(plain)];
	uint64_t ctr;

	cr_assert(gwd_noise_keypair_next_counter(from, &ctr));
	gw_aead_encrypt(sealed, plain, sizeof(plain), NULL, 0, ctr, from->sending_key);
	cr_assert(gw_aead_decrypt(opened, sealed, sizeof(sealed), NULL, 0, ctr, to->receiving_key));
	cr_assert_eq(memcmp(opened, plain, sizeof(plain)), 0);
}

struct psk_case {
	const char *name;
	bool psk_a, psk_b;
	bool same;
	bool ok;
};

static const struct psk_case psk_cases[] = {
    {"no psk", false, false, false, true},
    {"same psk", true, true, true, true},
    {"different psks", true, true, false, false},
    {"psk on initiator only", true, false, false, false},
    {"psk on responder only", false, true, false, false},
};

Test(noise, full_handshake_with_and_without_psk)
{
	for (size_t n = 0; n < sizeof(psk_cases) / sizeof(psk_cases[0]); n++) {
		const struct psk_case *pc = &psk_cases[n];
		struct gwd_message_handshake_initiation init;
		struct gwd_message_handshake_response resp;
		struct gwd_noise_keypair *ikp, *rkp;
		struct gwd_noise_remote *ra, *rb, *got;
		uint8_t psk1[GW_KEY_LEN], psk2[GW_KEY_LEN];

		gw_random_bytes(psk1, sizeof(psk1));
		gw_random_bytes(psk2, sizeof(psk2));
		side_free(A);
		side_free(B);
		A = side_new(0x0a000001, NULL, false);
		B = side_new(0x0b000001, NULL, false);
		ra = side_add_remote(A, B, pc->psk_a ? psk1 : NULL);
		rb = side_add_remote(B, A, pc->psk_b ? (pc->same ? psk1 : psk2) : NULL);

		cr_assert_eq(gwd_noise_create_initiation(ra, &init), GWD_NOISE_OK, "%s", pc->name);
		cr_assert_eq(le32toh(init.header.type), GWD_MESSAGE_HANDSHAKE_INITIATION);
		cr_assert(zero(&init.macs, sizeof(init.macs)), "macs are cookie.c's");
		cr_assert_eq(gwd_noise_consume_initiation(&B->local, &init, &got), GWD_NOISE_OK);
		cr_assert_eq(got, rb);
		cr_assert_eq(gwd_noise_create_response(rb, &resp), GWD_NOISE_OK);
		cr_assert_eq(le32toh(resp.receiver_index), le32toh(init.sender_index));
		cr_assert(zero(rb->hs.ephemeral_private, GW_KEY_LEN), "responder ephemeral wiped");
		if (!pc->ok) {
			cr_assert_eq(gwd_noise_consume_response(ra, &resp), GWD_NOISE_BAD_RESPONSE,
				     "%s", pc->name);
			cr_assert_eq(ra->hs.state, GWD_NOISE_HANDSHAKE_CREATED_INITIATION);
			cr_assert_eq(gwd_noise_begin_session(ra, NULL), GWD_NOISE_BAD_STATE);
			continue;
		}
		cr_assert_eq(gwd_noise_consume_response(ra, &resp), GWD_NOISE_OK, "%s", pc->name);
		cr_assert(zero(ra->hs.ephemeral_private, GW_KEY_LEN), "initiator ephemeral wiped");
		cr_assert_eq(gwd_noise_begin_session(ra, &ikp), GWD_NOISE_OK);
		cr_assert_eq(gwd_noise_begin_session(rb, &rkp), GWD_NOISE_OK);
		check_pair(A, B, ikp, rkp);
		cr_assert_eq(ikp->remote_index, le32toh(resp.sender_index));
		cr_assert_eq(ra->current, ikp);
		cr_assert_eq(rb->next, rkp);
		cr_assert_null(rb->current);
		cr_assert(zero(&ra->hs, sizeof(ra->hs)), "handshake wiped after the session began");
		cr_assert(zero(&rb->hs, sizeof(rb->hs)));
		check_transport(ikp, rkp);
		check_transport(rkp, ikp);
	}
	done();
}

Test(noise, exact_replay_is_rejected)
{
	struct gwd_message_handshake_initiation init;
	struct gwd_noise_remote *ra = side_add_remote(A, B, NULL);
	struct gwd_noise_remote *rb = side_add_remote(B, A, NULL), *got;

	cr_assert_eq(gwd_noise_create_initiation(ra, &init), GWD_NOISE_OK);
	cr_assert_eq(gwd_noise_consume_initiation(&B->local, &init, &got), GWD_NOISE_OK);
	advance_ms(5000);
	cr_assert_eq(gwd_noise_consume_initiation(&B->local, &init, &got), GWD_NOISE_REPLAY);
	cr_assert_eq(got, rb, "replays are authenticated and attributed");
	cr_assert_eq(rb->hs.state, GWD_NOISE_HANDSHAKE_CONSUMED_INITIATION);
	done();
}

Test(noise, older_timestamp_is_rejected)
{
	struct gwd_message_handshake_initiation old, newer;
	struct gwd_noise_remote *ra = side_add_remote(A, B, NULL), *got;

	side_add_remote(B, A, NULL);
	cr_assert_eq(gwd_noise_create_initiation(ra, &old), GWD_NOISE_OK);
	advance_ms(1000);
	cr_assert_eq(gwd_noise_create_initiation(ra, &newer), GWD_NOISE_OK);
	cr_assert_eq(gwd_noise_consume_initiation(&B->local, &newer, &got), GWD_NOISE_OK);
	advance_ms(1000);
	cr_assert_eq(gwd_noise_consume_initiation(&B->local, &old, &got), GWD_NOISE_REPLAY);
	done();
}

Test(noise, flood_is_rejected_until_the_interval_passed)
{
	struct gwd_message_handshake_initiation first, second;
	struct gwd_noise_remote *ra = side_add_remote(A, B, NULL), *got;

	side_add_remote(B, A, NULL);
	cr_assert_eq(gwd_noise_create_initiation(ra, &first), GWD_NOISE_OK);
	cr_assert_eq(gwd_noise_consume_initiation(&B->local, &first, &got), GWD_NOISE_OK);
	advance_ms(1);
	/* 1 ms later: whitening gives the same second, so greatest_sent + 1 ns. */
	cr_assert_eq(gwd_noise_create_initiation(ra, &second), GWD_NOISE_OK);
	cr_assert_eq(gwd_noise_consume_initiation(&B->local, &second, &got), GWD_NOISE_FLOOD);
	cr_assert_not_null(got);
	advance_ms(GWD_INITIATION_MIN_INTERVAL_MS - 2);
	cr_assert_eq(gwd_noise_consume_initiation(&B->local, &second, &got), GWD_NOISE_FLOOD);
	advance_ms(1); /* exactly 20 ms after the first was accepted */
	cr_assert_eq(gwd_noise_consume_initiation(&B->local, &second, &got), GWD_NOISE_OK);
	done();
}

Test(noise, unknown_peer)
{
	struct gwd_message_handshake_initiation init;
	struct gwd_noise_remote *ra = side_add_remote(A, B, NULL), *got = (void *)1;

	side_add_remote(B, A, NULL);
	B->hide_remotes = true;
	cr_assert_eq(gwd_noise_create_initiation(ra, &init), GWD_NOISE_OK);
	cr_assert_eq(gwd_noise_consume_initiation(&B->local, &init, &got), GWD_NOISE_UNKNOWN_PEER);
	cr_assert_null(got);
	done();
}

Test(noise, initiation_to_another_responder_is_bad_static)
{
	struct gwd_message_handshake_initiation init;
	struct gwd_noise_remote *ra = side_add_remote(A, B, NULL), *got;

	C = side_new(0x0c000001, NULL, false);
	side_add_remote(C, A, NULL);
	cr_assert_eq(gwd_noise_create_initiation(ra, &init), GWD_NOISE_OK);
	cr_assert_eq(gwd_noise_consume_initiation(&C->local, &init, &got), GWD_NOISE_BAD_STATIC);
	done();
}

struct field {
	const char *name;
	size_t off, len;
	enum gwd_noise_result want; /* GWD_NOISE_OK: not authenticated by Noise (mac1 guards it) */
};

static const struct field init_fields[] = {
    {"type", 0, 4, GWD_NOISE_BAD_MESSAGE},	    {"sender_index", 4, 4, GWD_NOISE_OK},
    {"ephemeral", 8, 32, GWD_NOISE_BAD_STATIC},	    {"static", 40, 48, GWD_NOISE_BAD_STATIC},
    {"timestamp", 88, 28, GWD_NOISE_BAD_TIMESTAMP},
};

/*
 * Every byte of every field, flipped alone: Noise rejects it with the
 * field's outcome (a flipped ephemeral may also be a low-order point), and
 * mac1 rejects every byte before it, including the fields Noise does not
 * cover. The untampered message still goes through afterwards.
 */
Test(noise, tampered_initiation_fails)
{
	struct gwd_message_handshake_initiation init, bad;
	struct gwd_noise_remote *ra = side_add_remote(A, B, NULL), *got;
	struct gwd_cookie_maker maker;
	struct gwd_cookie_checker checker;
	union gw_sockaddr src = {.in = {.sin_family = AF_INET, .sin_port = htobe16(51820)}};

	side_add_remote(B, A, NULL);
	gwd_cookie_maker_init(&maker, &fc.clock, B->pub);
	cr_assert_eq(gwd_cookie_checker_init(&checker, &fc.clock), 0);
	gwd_cookie_checker_set_key(&checker, B->pub);
	cr_assert_eq(gwd_noise_create_initiation(ra, &init), GWD_NOISE_OK);
	cr_assert_eq(gwd_cookie_add_macs(&maker, &init, sizeof(init)), 0);

	for (size_t f = 0; f < sizeof(init_fields) / sizeof(init_fields[0]); f++) {
		const struct field *fd = &init_fields[f];

		for (size_t i = fd->off; i < fd->off + fd->len; i++) {
			enum gwd_noise_result res;

			bad = init;
			((uint8_t *)&bad)[i] ^= 0x01;
			cr_assert_eq(gwd_cookie_validate(&checker, &bad, sizeof(bad), &src, false),
				     GWD_COOKIE_MAC_INVALID, "%s byte %zu passed mac1", fd->name,
				     i);
			res = gwd_noise_consume_initiation(&B->local, &bad, &got);
			if (fd->want == GWD_NOISE_OK) {
				cr_assert_eq(res, GWD_NOISE_OK);
				remote_of(B, A)->antireplay = (struct gwd_noise_antireplay){0};
				continue;
			}
			cr_assert(res == fd->want || (fd->want == GWD_NOISE_BAD_STATIC &&
						      res == GWD_NOISE_BAD_KEY),
				  "%s byte %zu: %s", fd->name, i, gwd_noise_result_str(res));
		}
	}
	for (size_t i = offsetof(struct gwd_message_handshake_initiation, macs.mac1);
	     i < offsetof(struct gwd_message_handshake_initiation, macs.mac2); i++) {
		bad = init;
		((uint8_t *)&bad)[i] ^= 0x80;
		cr_assert_eq(gwd_cookie_validate(&checker, &bad, sizeof(bad), &src, false),
			     GWD_COOKIE_MAC_INVALID);
	}
	cr_assert_eq(gwd_cookie_validate(&checker, &init, sizeof(init), &src, false),
		     GWD_COOKIE_MAC1_VALID);
	cr_assert_eq(gwd_noise_consume_initiation(&B->local, &init, &got), GWD_NOISE_OK);
	gwd_cookie_checker_destroy(&checker);
	done();
}

static const struct field resp_fields[] = {
    {"type", 0, 4, GWD_NOISE_BAD_MESSAGE},
    {"sender_index", 4, 4, GWD_NOISE_OK},
    {"receiver_index", 8, 4, GWD_NOISE_BAD_STATE},
    {"ephemeral", 12, 32, GWD_NOISE_BAD_RESPONSE},
    {"encrypted_nothing", 44, 16, GWD_NOISE_BAD_RESPONSE},
};

Test(noise, tampered_response_fails_and_keeps_the_handshake)
{
	struct gwd_message_handshake_initiation init;
	struct gwd_message_handshake_response resp, bad;
	struct gwd_noise_remote *ra = side_add_remote(A, B, NULL),
				*rb = side_add_remote(B, A, NULL);
	struct gwd_noise_remote *got;
	struct gwd_cookie_maker maker;
	struct gwd_cookie_checker checker;
	union gw_sockaddr src = {.in = {.sin_family = AF_INET, .sin_port = htobe16(51820)}};

	gwd_cookie_maker_init(&maker, &fc.clock, A->pub);
	cr_assert_eq(gwd_cookie_checker_init(&checker, &fc.clock), 0);
	gwd_cookie_checker_set_key(&checker, A->pub);
	cr_assert_eq(gwd_noise_create_initiation(ra, &init), GWD_NOISE_OK);
	cr_assert_eq(gwd_noise_consume_initiation(&B->local, &init, &got), GWD_NOISE_OK);
	cr_assert_eq(gwd_noise_create_response(rb, &resp), GWD_NOISE_OK);
	cr_assert_eq(gwd_cookie_add_macs(&maker, &resp, sizeof(resp)), 0);

	for (size_t f = 0; f < sizeof(resp_fields) / sizeof(resp_fields[0]); f++) {
		const struct field *fd = &resp_fields[f];

		for (size_t i = fd->off; i < fd->off + fd->len; i++) {
			enum gwd_noise_result res;

			bad = resp;
			((uint8_t *)&bad)[i] ^= 0x01;
			cr_assert_eq(gwd_cookie_validate(&checker, &bad, sizeof(bad), &src, false),
				     GWD_COOKIE_MAC_INVALID, "%s byte %zu passed mac1", fd->name,
				     i);
			if (fd->want == GWD_NOISE_OK)
				continue; /* would complete the handshake; mac1 is what guards it */
			res = gwd_noise_consume_response(ra, &bad);
			cr_assert(res == fd->want || (fd->want == GWD_NOISE_BAD_RESPONSE &&
						      res == GWD_NOISE_BAD_KEY),
				  "%s byte %zu: %s", fd->name, i, gwd_noise_result_str(res));
			cr_assert_eq(ra->hs.state, GWD_NOISE_HANDSHAKE_CREATED_INITIATION);
		}
	}
	cr_assert_eq(gwd_cookie_validate(&checker, &resp, sizeof(resp), &src, false),
		     GWD_COOKIE_MAC1_VALID);
	cr_assert_eq(gwd_noise_consume_response(ra, &resp), GWD_NOISE_OK);
	gwd_cookie_checker_destroy(&checker);
	done();
}

Test(noise, response_to_old_or_unknown_index_fails)
{
	struct gwd_message_handshake_initiation first, second;
	struct gwd_message_handshake_response resp, forged;
	struct gwd_noise_remote *ra = side_add_remote(A, B, NULL),
				*rb = side_add_remote(B, A, NULL);
	struct gwd_noise_remote *got;
	uint32_t first_index;

	/* A response while no handshake is in progress. */
	memset(&forged, 0, sizeof(forged));
	forged.header.type = htole32(GWD_MESSAGE_HANDSHAKE_RESPONSE);
	cr_assert_eq(gwd_noise_consume_response(ra, &forged), GWD_NOISE_BAD_STATE);

	cr_assert_eq(gwd_noise_create_initiation(ra, &first), GWD_NOISE_OK);
	first_index = le32toh(first.sender_index);
	cr_assert_eq(gwd_noise_consume_initiation(&B->local, &first, &got), GWD_NOISE_OK);
	cr_assert_eq(gwd_noise_create_response(rb, &resp), GWD_NOISE_OK);

	/* A retry replaces the handshake: its index is freed, the response is stale. */
	advance_ms(GWD_REKEY_TIMEOUT * 1000);
	cr_assert_eq(gwd_noise_create_initiation(ra, &second), GWD_NOISE_OK);
	cr_assert(was_freed(A, first_index));
	cr_assert_neq(le32toh(second.sender_index), first_index);
	cr_assert_eq(gwd_noise_consume_response(ra, &resp), GWD_NOISE_BAD_STATE);

	forged = resp;
	forged.receiver_index = htole32(0xdeadbeef);
	cr_assert_eq(gwd_noise_consume_response(ra, &forged), GWD_NOISE_BAD_STATE);
	cr_assert_eq(ra->hs.state, GWD_NOISE_HANDSHAKE_CREATED_INITIATION);
	cr_assert_eq(gwd_noise_create_response(rb, &resp), GWD_NOISE_BAD_STATE,
		     "a responder answers an initiation once");
	done();
}

/*
 * Rotation, A always initiating: three handshakes, B confirming only the
 * first before the third; then B confirms the third; then a fourth.
 */
Test(noise, keypair_rotation_after_three_handshakes)
{
	struct gwd_noise_remote *ra = side_add_remote(A, B, NULL),
				*rb = side_add_remote(B, A, NULL);
	struct gwd_noise_keypair *a1, *a2, *a3, *a4, *b1, *b2, *b3, *b4;
	uint32_t a1_index, b1_index, b2_index;

	handshake(A, B, &a1, &b1);
	check_pair(A, B, a1, b1);
	cr_assert(ra->current == a1 && !ra->previous && !ra->next);
	cr_assert(rb->next == b1 && !rb->current && !rb->previous);
	cr_assert(!gwd_noise_received_with_keypair(rb, NULL));
	cr_assert(gwd_noise_received_with_keypair(rb, b1));
	cr_assert(b1->confirmed);
	cr_assert(rb->current == b1 && !rb->next && !rb->previous);
	cr_assert(!gwd_noise_received_with_keypair(rb, b1), "confirming twice does nothing");

	handshake(A, B, &a2, &b2);
	check_pair(A, B, a2, b2);
	cr_assert(ra->previous == a1 && ra->current == a2 && !ra->next);
	cr_assert(rb->current == b1 && rb->next == b2 && !rb->previous);
	a1_index = a1->local_index;
	b2_index = b2->local_index;

	handshake(A, B, &a3, &b3);
	check_pair(A, B, a3, b3);
	cr_assert(ra->previous == a2 && ra->current == a3 && !ra->next);
	cr_assert(was_freed(A, a1_index) && !find_entry(A, a1_index));
	cr_assert(rb->current == b1 && rb->next == b3 && !rb->previous);
	cr_assert(was_freed(B, b2_index) && !find_entry(B, b2_index), "unconfirmed next dropped");
	cr_assert(!b3->confirmed);

	cr_assert(gwd_noise_received_with_keypair(rb, b3));
	cr_assert(rb->previous == b1 && rb->current == b3 && !rb->next);
	cr_assert(b3->confirmed);
	cr_assert_eq(live_entries(A), 2);
	cr_assert_eq(live_entries(B), 2);

	/* A responder drops previous at once: only current stays as fallback. */
	b1_index = b1->local_index;
	handshake(A, B, &a4, &b4);
	cr_assert(rb->current == b3 && rb->next == b4 && !rb->previous);
	cr_assert(was_freed(B, b1_index) && !find_entry(B, b1_index));
	cr_assert_eq(live_entries(B), 2);

	gwd_noise_remote_clear(ra);
	cr_assert(!ra->previous && !ra->current && !ra->next);
	cr_assert_eq(live_entries(A), 0, "clear frees every index");
	done();
}

/* An initiator with an unconfirmed next keeps it as previous, drops current. */
Test(noise, rotation_when_roles_alternate)
{
	struct gwd_noise_remote *ra = side_add_remote(A, B, NULL),
				*rb = side_add_remote(B, A, NULL);
	struct gwd_noise_keypair *a1, *b1, *a2, *b2, *a3, *b3;
	uint32_t a1_index;

	handshake(A, B, &a1, &b1); /* A: current a1 */
	handshake(B, A, &b2, &a2); /* A responds: next a2, previous dropped */
	cr_assert(ra->current == a1 && ra->next == a2 && !ra->previous);
	cr_assert(rb->previous == b1 && rb->current == b2 && !rb->next, "unconfirmed next kept");
	a1_index = a1->local_index;
	handshake(A, B, &a3, &b3); /* A initiates with next pending */
	cr_assert(ra->previous == a2 && ra->current == a3 && !ra->next);
	cr_assert(was_freed(A, a1_index));
	check_pair(A, B, a3, b3);
	done();
}

Test(noise, begin_session_needs_a_completed_handshake)
{
	struct gwd_message_handshake_initiation init;
	struct gwd_noise_remote *ra = side_add_remote(A, B, NULL),
				*rb = side_add_remote(B, A, NULL);
	struct gwd_noise_remote *got;

	cr_assert_eq(gwd_noise_begin_session(ra, NULL), GWD_NOISE_BAD_STATE);
	cr_assert_eq(gwd_noise_create_initiation(ra, &init), GWD_NOISE_OK);
	cr_assert_eq(gwd_noise_begin_session(ra, NULL), GWD_NOISE_BAD_STATE);
	cr_assert_eq(gwd_noise_consume_initiation(&B->local, &init, &got), GWD_NOISE_OK);
	cr_assert_eq(gwd_noise_begin_session(rb, NULL), GWD_NOISE_BAD_STATE);
	done();
}

Test(noise, no_identity_bad_key_and_index_failure)
{
	struct gwd_message_handshake_initiation init;
	struct gwd_noise_remote *ra = side_add_remote(A, B, NULL), *got;
	static const uint8_t zero_point[GW_KEY_LEN];
	struct gwd_noise_remote *bad = side_add_remote(A, B, NULL);

	gwd_noise_remote_init(bad, &A->local, zero_point, NULL);
	cr_assert_eq(gwd_noise_create_initiation(bad, &init), GWD_NOISE_BAD_KEY);

	A->fail_alloc = -ENOSPC;
	cr_assert_eq(gwd_noise_create_initiation(ra, &init), GWD_NOISE_INDEX_FAILED);
	cr_assert_eq(ra->hs.state, GWD_NOISE_HANDSHAKE_ZEROED);
	cr_assert(zero(&ra->hs, sizeof(ra->hs)));
	A->fail_alloc = 0;

	cr_assert_eq(gwd_noise_create_initiation(ra, &init), GWD_NOISE_OK);
	cr_assert_eq(gwd_noise_local_set_private_key(&B->local, NULL), 0);
	cr_assert_eq(gwd_noise_consume_initiation(&B->local, &init, &got), GWD_NOISE_NO_IDENTITY);
	cr_assert_eq(gwd_noise_local_set_private_key(&A->local, NULL), 0);
	cr_assert_eq(gwd_noise_create_initiation(ra, &init), GWD_NOISE_NO_IDENTITY);

	init.header.type = htole32(GWD_MESSAGE_HANDSHAKE_RESPONSE);
	cr_assert_eq(gwd_noise_consume_initiation(&B->local, &init, &got), GWD_NOISE_BAD_MESSAGE);
	done();
}

/* A new local key: the static-static DH is recomputed before the next handshake. */
Test(noise, local_key_change_recomputes_static_static)
{
	struct gwd_noise_remote *ra = side_add_remote(A, B, NULL),
				*rb = side_add_remote(B, A, NULL);
	struct gwd_noise_keypair *ikp, *rkp;
	uint8_t old_ss[GW_KEY_LEN];

	handshake(A, B, &ikp, &rkp);
	memcpy(old_ss, ra->static_static, GW_KEY_LEN);
	gw_x25519_generate(A->priv);
	cr_assert(gw_x25519_public(A->pub, A->priv));
	cr_assert_eq(gwd_noise_local_set_private_key(&A->local, A->priv), 0);
	gwd_noise_remote_destroy(rb);
	gwd_noise_remote_init(rb, &B->local, A->pub, NULL);
	handshake(A, B, &ikp, &rkp);
	check_pair(A, B, ikp, rkp);
	cr_assert_neq(memcmp(old_ss, ra->static_static, GW_KEY_LEN), 0);
	cr_assert_eq(ra->ss_generation, A->local.generation);
	done();
}

/*
 * A wall clock stepped back does not make our initiations look like replays:
 * they carry greatest_sent + 1 ns.
 */
Test(noise, timestamps_never_go_backwards)
{
	struct gwd_message_handshake_initiation init;
	struct gwd_noise_remote *ra = side_add_remote(A, B, NULL), *got;
	uint8_t first[GW_TAI64N_LEN];

	side_add_remote(B, A, NULL);
	cr_assert_eq(gwd_noise_create_initiation(ra, &init), GWD_NOISE_OK);
	memcpy(first, ra->antireplay.greatest_sent, GW_TAI64N_LEN);
	cr_assert_eq(gwd_noise_consume_initiation(&B->local, &init, &got), GWD_NOISE_OK);
	gw_fake_clock_step_real(&fc, -3600 * (int64_t)GW_NSEC_PER_SEC);
	advance_ms(GWD_REKEY_TIMEOUT * 1000);
	cr_assert_eq(gwd_noise_create_initiation(ra, &init), GWD_NOISE_OK);
	cr_assert_gt(gw_tai64n_cmp(ra->antireplay.greatest_sent, first), 0);
	cr_assert_eq(gwd_noise_consume_initiation(&B->local, &init, &got), GWD_NOISE_OK);
	done();
}

/*
 * Cluster: B and C share the interface key. An initiation accepted by B and
 * replayed to C is rejected once C merged B's antireplay state.
 */
Test(noise, merged_antireplay_rejects_replay_on_another_node)
{
	struct gwd_message_handshake_initiation init;
	struct gwd_noise_remote *ra = side_add_remote(A, B, NULL), *got;
	struct gwd_noise_remote *rb = side_add_remote(B, A, NULL), *rc;
	struct gwd_noise_antireplay empty = {0};

	C = side_new(0x0c000001, B->priv, false);
	rc = side_add_remote(C, A, NULL);
	cr_assert_eq(gwd_noise_create_initiation(ra, &init), GWD_NOISE_OK);
	cr_assert_eq(gwd_noise_consume_initiation(&B->local, &init, &got), GWD_NOISE_OK);

	gwd_noise_antireplay_merge(&rc->antireplay, &rb->antireplay);
	cr_assert_eq(memcmp(&rc->antireplay, &rb->antireplay, sizeof(empty)), 0);
	gwd_noise_antireplay_merge(&rc->antireplay, &empty);
	cr_assert_eq(memcmp(&rc->antireplay, &rb->antireplay, sizeof(empty)), 0, "max merge");
	advance_ms(1000);
	cr_assert_eq(gwd_noise_consume_initiation(&C->local, &init, &got), GWD_NOISE_REPLAY);
	cr_assert_eq(got, rc);
	done();
}

Test(noise, antireplay_survives_clear)
{
	struct gwd_message_handshake_initiation init;
	struct gwd_noise_remote *ra = side_add_remote(A, B, NULL), *got;
	struct gwd_noise_remote *rb = side_add_remote(B, A, NULL);

	cr_assert_eq(gwd_noise_create_initiation(ra, &init), GWD_NOISE_OK);
	cr_assert_eq(gwd_noise_consume_initiation(&B->local, &init, &got), GWD_NOISE_OK);
	gwd_noise_remote_clear(rb);
	cr_assert_eq(rb->hs.state, GWD_NOISE_HANDSHAKE_ZEROED);
	advance_ms(1000);
	cr_assert_eq(gwd_noise_consume_initiation(&B->local, &init, &got), GWD_NOISE_REPLAY);
	done();
}

Test(noise, expire_current_stops_sending)
{
	struct gwd_noise_remote *ra = side_add_remote(A, B, NULL);
	struct gwd_noise_keypair *ikp, *rkp;
	uint64_t ctr;

	side_add_remote(B, A, NULL);
	handshake(A, B, &ikp, &rkp);
	gwd_noise_remote_expire_current(ra);
	cr_assert(!gwd_noise_keypair_next_counter(ikp, &ctr));
	cr_assert_eq(ra->current, ikp, "still there for receiving");
	done();
}

struct expiry_case {
	bool initiator;
	uint64_t age_s;
	uint64_t counter;
	bool expired, rekey_send, rekey_receive;
};

static const struct expiry_case expiry_cases[] = {
    {true, 0, 0, false, false, false},
    {true, 119, 0, false, false, false},
    {true, 120, 0, false, true, false},
    {false, 120, 0, false, false, false},
    {true, 164, 0, false, true, false},
    {true, 165, 0, false, true, true}, /* 180 - 10 - 5 */
    {false, 165, 0, false, false, false},
    {true, 179, 0, false, true, true},
    {true, 180, 0, true, true, true},
    {false, 180, 0, true, false, false},
    {false, 0, UINT64_C(1) << 60, false, false, false},
    {false, 0, (UINT64_C(1) << 60) + 1, false, true, false},
};

Test(noise, expiry_helpers)
{
	for (size_t i = 0; i < sizeof(expiry_cases) / sizeof(expiry_cases[0]); i++) {
		const struct expiry_case *ec = &expiry_cases[i];
		struct gwd_noise_keypair kp = {
		    .initiator = ec->initiator,
		    .sending_counter = ec->counter,
		    .birth_ns = 5 * GW_NSEC_PER_SEC,
		};
		uint64_t now = kp.birth_ns + ec->age_s * GW_NSEC_PER_SEC;

		cr_assert_eq(gwd_noise_keypair_expired(&kp, now), ec->expired, "case %zu", i);
		cr_assert_eq(gwd_noise_keypair_should_rekey_on_send(&kp, now), ec->rekey_send,
			     "case %zu", i);
		cr_assert_eq(gwd_noise_keypair_should_rekey_on_receive(&kp, now), ec->rekey_receive,
			     "case %zu", i);
	}
	done();
}

Test(noise, counters_stop_at_reject_after_messages)
{
	struct gwd_noise_keypair kp = {.sending_counter = GWD_REJECT_AFTER_MESSAGES - 1};
	uint64_t ctr = 0;

	cr_assert_eq(GWD_REJECT_AFTER_MESSAGES, UINT64_C(18446744073709543423));
	cr_assert(gwd_noise_keypair_next_counter(&kp, &ctr));
	cr_assert_eq(ctr, GWD_REJECT_AFTER_MESSAGES - 1);
	cr_assert(!gwd_noise_keypair_next_counter(&kp, &ctr));
	cr_assert(!gwd_noise_keypair_next_counter(&kp, &ctr));
	cr_assert_eq(kp.sending_counter, GWD_REJECT_AFTER_MESSAGES);
	done();
}

Test(noise, constants_match_the_paper)
{
	cr_assert_eq(sizeof(struct gwd_message_handshake_initiation), 148);
	cr_assert_eq(sizeof(struct gwd_message_handshake_response), 92);
	cr_assert_eq(sizeof(struct gwd_message_handshake_cookie), 64);
	cr_assert_eq(sizeof(struct gwd_message_data), 16);
	cr_assert_eq(GWD_REKEY_AFTER_MESSAGES, UINT64_C(1152921504606846976));
	cr_assert_eq(GWD_MAX_TIMER_HANDSHAKES, 18);
	cr_assert_eq(GWD_INITIATION_MIN_INTERVAL_MS, 20);
	cr_assert_eq(gwd_noise_result_str(GWD_NOISE_REPLAY)[0], 'r');
	cr_assert_str_eq(gwd_noise_result_str((enum gwd_noise_result)99), "unknown");
	done();
}

Test(noise, message_type_of)
{
	uint8_t buf[200] = {0};
	struct {
		uint8_t type;
		size_t len;
		enum gwd_message_type want;
	} cases[] = {
	    {1, 148, GWD_MESSAGE_HANDSHAKE_INITIATION},
	    {1, 147, GWD_MESSAGE_INVALID},
	    {2, 92, GWD_MESSAGE_HANDSHAKE_RESPONSE},
	    {2, 148, GWD_MESSAGE_INVALID},
	    {3, 64, GWD_MESSAGE_HANDSHAKE_COOKIE},
	    {4, 32, GWD_MESSAGE_DATA},
	    {4, 31, GWD_MESSAGE_INVALID},
	    {4, 200, GWD_MESSAGE_DATA},
	    {5, 148, GWD_MESSAGE_INVALID},
	    {0, 148, GWD_MESSAGE_INVALID},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		buf[0] = cases[i].type;
		cr_assert_eq(gwd_message_type_of(buf, cases[i].len), cases[i].want, "case %zu", i);
	}
	buf[0] = 1;
	buf[2] = 1; /* reserved bytes must be zero */
	cr_assert_eq(gwd_message_type_of(buf, 148), GWD_MESSAGE_INVALID);
	cr_assert_eq(gwd_message_type_of(buf, 3), GWD_MESSAGE_INVALID);
	done();
}

/*
 * Known answer. Static keys are Alice's and Bob's from RFC 7748 section 6.1
 * (A initiates), ephemerals and PSK fixed, the wall clock at
 * 1700000000.5 s (whitened to .486539264). The expected bytes were made by
 * this code and cross-checked with an independent implementation: tshark
 * 4.0.17's WireGuard dissector, given the four private keys and the PSK as
 * a key log, decrypts the initiation (static key = Alice's public key,
 * TAI64 label 2^62 + 10 + 1700000000, 486539264 ns), the response, and the data
 * message (an ICMP echo request 198.18.0.1 -> 198.18.0.2), and reports mac1
 * of both handshake messages as correct.
 */
static const uint8_t kat_alice_priv[32] = {
    0x77, 0x07, 0x6d, 0x0a, 0x73, 0x18, 0xa5, 0x7d, 0x3c, 0x16, 0xc1, 0x72, 0x51, 0xb2, 0x66, 0x45,
    0xdf, 0x4c, 0x2f, 0x87, 0xeb, 0xc0, 0x99, 0x2a, 0xb1, 0x77, 0xfb, 0xa5, 0x1d, 0xb9, 0x2c, 0x2a,
};
static const uint8_t kat_alice_pub[32] = {
    0x85, 0x20, 0xf0, 0x09, 0x89, 0x30, 0xa7, 0x54, 0x74, 0x8b, 0x7d, 0xdc, 0xb4, 0x3e, 0xf7, 0x5a,
    0x0d, 0xbf, 0x3a, 0x0d, 0x26, 0x38, 0x1a, 0xf4, 0xeb, 0xa4, 0xa9, 0x8e, 0xaa, 0x9b, 0x4e, 0x6a,
};
static const uint8_t kat_bob_priv[32] = {
    0x5d, 0xab, 0x08, 0x7e, 0x62, 0x4a, 0x8a, 0x4b, 0x79, 0xe1, 0x7f, 0x8b, 0x83, 0x80, 0x0e, 0xe6,
    0x6f, 0x3b, 0xb1, 0x29, 0x26, 0x18, 0xb6, 0xfd, 0x1c, 0x2f, 0x8b, 0x27, 0xff, 0x88, 0xe0, 0xeb,
};
static const uint8_t kat_bob_pub[32] = {
    0xde, 0x9e, 0xdb, 0x7d, 0x7b, 0x7d, 0xc1, 0xb4, 0xd3, 0x5b, 0x61, 0xc2, 0xec, 0xe4, 0x35, 0x37,
    0x3f, 0x83, 0x43, 0xc8, 0x5b, 0x78, 0x67, 0x4d, 0xad, 0xfc, 0x7e, 0x14, 0x6f, 0x88, 0x2b, 0x4f,
};
/* IPv4 ICMP echo request 198.18.0.1 -> 198.18.0.2, zero-padded to 32 bytes. */
static const uint8_t kat_ping[32] = {
    0x45, 0x00, 0x00, 0x1c, 0x12, 0x34, 0x00, 0x00, 0x40, 0x01, 0xdc, 0x85, 0xc6, 0x12, 0x00, 0x01,
    0xc6, 0x12, 0x00, 0x02, 0x08, 0x00, 0xb0, 0xa7, 0x47, 0x57, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00,
};

static const uint8_t kat_initiation[148] = {
    0x01, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x0a, 0x79, 0xa6, 0x31, 0xee, 0xde, 0x1b, 0xf9,
    0xc9, 0x8f, 0x12, 0x03, 0x2c, 0xde, 0xad, 0xd0, 0xe7, 0xa0, 0x79, 0x39, 0x8f, 0xc7, 0x86,
    0xb8, 0x8c, 0xc8, 0x46, 0xec, 0x89, 0xaf, 0x85, 0xa5, 0x1a, 0x60, 0x74, 0x19, 0x70, 0x1b,
    0xeb, 0x34, 0x03, 0xc6, 0x4e, 0xd0, 0x0e, 0x01, 0x1d, 0x3c, 0xee, 0x06, 0x35, 0x3c, 0xd2,
    0x6b, 0xd2, 0x02, 0xa6, 0xa8, 0xe3, 0x36, 0xd4, 0x11, 0x18, 0x0e, 0xc4, 0x1b, 0x52, 0xdf,
    0xb4, 0x2b, 0x26, 0xc7, 0xa8, 0xe4, 0x5d, 0x9c, 0x20, 0x10, 0x4a, 0xc7, 0x75, 0x4d, 0x69,
    0x6d, 0x98, 0x89, 0x59, 0x75, 0xf0, 0x83, 0x36, 0xd8, 0xe0, 0xf2, 0xa4, 0x5b, 0x2e, 0xd7,
    0x38, 0x91, 0xe1, 0x69, 0x51, 0xd7, 0x39, 0x42, 0xbb, 0x8a, 0x93, 0x6e, 0xda, 0xf1, 0xce,
    0xdd, 0xdb, 0xaa, 0xd8, 0xe3, 0xba, 0x2b, 0x67, 0x86, 0xf9, 0x5f, 0xea, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
};
static const uint8_t kat_response[92] = {
    0x02, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x0b, 0x01, 0x00, 0x00, 0x0a, 0x67, 0x5d, 0xd5, 0x74,
    0xed, 0x77, 0x89, 0x31, 0x0b, 0x3d, 0x2e, 0x76, 0x81, 0xf3, 0x79, 0x0b, 0x46, 0x6c, 0x77, 0x3b,
    0x15, 0x21, 0xfe, 0xcf, 0x36, 0x57, 0x79, 0x58, 0x37, 0x1e, 0xa5, 0x2f, 0x7a, 0x7f, 0xe9, 0x5a,
    0x2b, 0x30, 0x14, 0x3c, 0xcd, 0x17, 0x6e, 0xf1, 0x98, 0x41, 0xee, 0x7c, 0x0d, 0x80, 0xdb, 0x66,
    0x76, 0xf8, 0x82, 0x07, 0x8f, 0x3b, 0x86, 0xea, 0xbf, 0xe0, 0x2b, 0xb0, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
};
static const uint8_t kat_send_key[32] = {
    0x3d, 0x1f, 0xde, 0x4c, 0x43, 0xc2, 0x9e, 0x85, 0x09, 0x58, 0x96, 0x87, 0x05, 0x27, 0xa7, 0x52,
    0xae, 0x60, 0x91, 0xda, 0xfb, 0x3e, 0xab, 0xd5, 0x3d, 0xda, 0xb7, 0x32, 0x27, 0x07, 0x70, 0xc9,
};
static const uint8_t kat_recv_key[32] = {
    0xdc, 0xb8, 0x07, 0xa6, 0x38, 0x17, 0x8b, 0x02, 0x57, 0x51, 0xfc, 0x07, 0x71, 0x16, 0x3d, 0x6d,
    0x44, 0x7a, 0x6f, 0xce, 0x36, 0xea, 0x63, 0xfa, 0xbd, 0x66, 0x8e, 0x90, 0xe6, 0xe3, 0xd9, 0x85,
};
static const uint8_t kat_data[64] = {
    0x04, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x0b, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x73, 0xff, 0xaa, 0x90, 0x1b, 0x27, 0x8f, 0xe4, 0x16, 0xe5, 0xce, 0x40, 0x94, 0xf3, 0xa0, 0x8d,
    0x67, 0xa3, 0xaa, 0x18, 0xb2, 0x22, 0x3c, 0x9f, 0xc6, 0xe3, 0xa7, 0xcf, 0x43, 0x9a, 0x34, 0x42,
    0x66, 0xf3, 0xe9, 0x98, 0x16, 0x81, 0xfe, 0x77, 0xf6, 0xf0, 0x85, 0xcd, 0xe6, 0xb6, 0x24, 0xa7,
};

static void kat_fill(uint8_t *p, size_t n, uint8_t first)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(first + i);
}

static void kat_check(const char *what, const void *got, const uint8_t *want, size_t n)
{
	const uint8_t *g = got;
	char hex[2 * 160 + 1];

	for (size_t i = 0; i < n; i++)
		snprintf(hex + 2 * i, 3, "%02x", g[i]);
	cr_expect_eq(memcmp(got, want, n), 0, "%s differs: got %s", what, hex);
}

Test(noise, known_answer_handshake_and_data)
{
	uint8_t eph[2][GW_KEY_LEN], psk[GW_KEY_LEN];
	struct gwd_message_handshake_initiation init;
	struct gwd_message_handshake_response resp;
	/* A header with a flexible array cannot be a struct member in ISO C. */
	uint8_t data[GWD_MESSAGE_DATA_HEADER_LEN + sizeof(kat_ping) + GW_AEAD_TAG_LEN];
	struct gwd_message_data hdr;
	struct gwd_cookie_maker to_bob, to_alice;
	struct gwd_noise_remote *ra, *rb, *got;
	struct gwd_noise_keypair *ikp, *rkp;
	uint64_t ctr;

	side_free(A);
	side_free(B);
	kat_fill(eph[0], GW_KEY_LEN, 0x40);
	kat_fill(eph[1], GW_KEY_LEN, 0x60);
	kat_fill(psk, GW_KEY_LEN, 0x80);
	A = side_new(0x0a000001, kat_alice_priv, true);
	B = side_new(0x0b000001, kat_bob_priv, true);
	A->ephemerals = eph[0];
	A->nephemerals = 1;
	B->ephemerals = eph[1];
	B->nephemerals = 1;
	cr_assert_eq(memcmp(A->pub, kat_alice_pub, GW_KEY_LEN), 0);
	cr_assert_eq(memcmp(B->pub, kat_bob_pub, GW_KEY_LEN), 0);
	ra = side_add_remote(A, B, psk);
	rb = side_add_remote(B, A, psk);
	gwd_cookie_maker_init(&to_bob, &fc.clock, B->pub);
	gwd_cookie_maker_init(&to_alice, &fc.clock, A->pub);
	gw_fake_clock_step_real(&fc, 500 * (int64_t)GW_NSEC_PER_MSEC);

	cr_assert_eq(gwd_noise_create_initiation(ra, &init), GWD_NOISE_OK);
	cr_assert_eq(gwd_cookie_add_macs(&to_bob, &init, sizeof(init)), 0);
	kat_check("initiation", &init, kat_initiation, sizeof(init));
	cr_assert_eq(gwd_noise_consume_initiation(&B->local, &init, &got), GWD_NOISE_OK);
	cr_assert_eq(got, rb);
	cr_assert_eq(gwd_noise_create_response(rb, &resp), GWD_NOISE_OK);
	cr_assert_eq(gwd_cookie_add_macs(&to_alice, &resp, sizeof(resp)), 0);
	kat_check("response", &resp, kat_response, sizeof(resp));
	cr_assert_eq(gwd_noise_begin_session(rb, &rkp), GWD_NOISE_OK);
	cr_assert_eq(gwd_noise_consume_response(ra, &resp), GWD_NOISE_OK);
	cr_assert_eq(gwd_noise_begin_session(ra, &ikp), GWD_NOISE_OK);
	kat_check("initiator sending key", ikp->sending_key, kat_send_key, GW_KEY_LEN);
	kat_check("initiator receiving key", ikp->receiving_key, kat_recv_key, GW_KEY_LEN);

	memset(data, 0, sizeof(data));
	memset(&hdr, 0, sizeof(hdr));
	hdr.header.type = htole32(GWD_MESSAGE_DATA);
	hdr.key_idx = htole32(ikp->remote_index);
	cr_assert(gwd_noise_keypair_next_counter(ikp, &ctr));
	hdr.counter = htole64(ctr);
	memcpy(data, &hdr, GWD_MESSAGE_DATA_HEADER_LEN);
	gw_aead_encrypt(data + GWD_MESSAGE_DATA_HEADER_LEN, kat_ping, sizeof(kat_ping), NULL, 0,
			ctr, ikp->sending_key);
	kat_check("data", data, kat_data, sizeof(data));
	done();
}
