// SPDX-License-Identifier: MIT
/*
 * lib/chachapoly.c (the AVX2 ChaCha20-Poly1305) against libsodium on
 * arbitrary keys, nonces, additional data and messages. Input: key (32),
 * nonce (12), AD length (1), a bit selector (2), then the AD and the
 * message. Each must seal to libsodium's bytes and open libsodium's
 * ciphertext; the message taken as a received ciphertext and tag must be
 * accepted by both or by neither; one flipped bit of a good ciphertext must
 * be rejected. gw_aead_* (whichever code GW_AEAD chose) is checked the same
 * way with WireGuard's nonce form. Every buffer is allocated at its exact
 * size so that ASan sees any access past it.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "gw/chachapoly.h"
#include "gw/crypto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum { HEADER = 32 + 12 + 1 + 2, TAG = 16 };

static void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	if (!p)
		abort();
	return p;
}

static void check(bool ok)
{
	if (!ok)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int init;
	const uint8_t *key = data, *nonce = data + 32, *ad, *msg;
	size_t adlen, len, flip;
	uint8_t *ours, *ref, *back, tag[TAG], wg_nonce[12] = {0};
	uint64_t counter;
	bool avx2;
	int rc;

	if (!init) {
		if (gw_crypto_init())
			abort();
		init = 1;
	}
	if (size < HEADER)
		return 0;
	adlen = data[44];
	flip = (size_t)data[45] << 8 | data[46];
	if (adlen > size - HEADER)
		adlen = size - HEADER;
	ad = data + HEADER;
	msg = ad + adlen;
	len = size - HEADER - adlen;
	avx2 = gw_chachapoly_avx2_usable();

	ours = xmalloc(len + TAG);
	ref = xmalloc(len + TAG);
	back = xmalloc(len + TAG);
	crypto_aead_chacha20poly1305_ietf_encrypt(ref, NULL, msg, len, ad, adlen, NULL, nonce, key);
	if (avx2) {
		gw_chachapoly_avx2_seal(ours, msg, len, ad, adlen, nonce, key);
		check(memcmp(ours, ref, len + TAG) == 0);
		gw_chachapoly_avx2_open(back, ref, len, ad, adlen, nonce, key, tag);
		check(memcmp(back, msg, len) == 0 && memcmp(tag, ref + len, TAG) == 0);

		/* One bit of the ciphertext or tag flipped. */
		ref[(flip / 8) % (len + TAG)] ^= (uint8_t)(1u << (flip % 8));
		gw_chachapoly_avx2_open(back, ref, len, ad, adlen, nonce, key, tag);
		check(!gw_memeq(tag, ref + len, TAG));
		ref[(flip / 8) % (len + TAG)] ^= (uint8_t)(1u << (flip % 8));

		/* The message as a ciphertext and tag from the wire. */
		if (len >= TAG) {
			rc = crypto_aead_chacha20poly1305_ietf_decrypt(ours, NULL, NULL, msg, len,
								       ad, adlen, nonce, key);
			gw_chachapoly_avx2_open(back, msg, len - TAG, ad, adlen, nonce, key, tag);
			check((rc == 0) == gw_memeq(tag, msg + len - TAG, TAG));
			if (rc == 0)
				check(memcmp(ours, back, len - TAG) == 0);
		}
	}

	/* gw_aead_*: nonce 00000000 || counter. */
	memcpy(&counter, nonce + 4, sizeof(counter));
	memcpy(wg_nonce + 4, nonce + 4, 8);
	crypto_aead_chacha20poly1305_ietf_encrypt(ref, NULL, msg, len, ad, adlen, NULL, wg_nonce,
						  key);
	gw_aead_encrypt(ours, msg, len, ad, adlen, counter, key);
	check(memcmp(ours, ref, len + TAG) == 0);
	check(gw_aead_decrypt(back, ref, len + TAG, ad, adlen, counter, key));
	check(memcmp(back, msg, len) == 0);
	if (adlen) {
		uint8_t *ad2 = xmalloc(adlen);

		memcpy(ad2, ad, adlen);
		ad2[(flip / 8) % adlen] ^= (uint8_t)(1u << (flip % 8));
		check(!gw_aead_decrypt(back, ref, len + TAG, ad2, adlen, counter, key));
		free(ad2);
	}

	free(ours);
	free(ref);
	free(back);
	return 0;
}
