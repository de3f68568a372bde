// SPDX-License-Identifier: MIT
/*
 * bench_aead: ChaCha20-Poly1305 seal and open on one core, libsodium's
 * crypto_aead_chacha20poly1305_ietf_* against lib/chachapoly.c's AVX2 code,
 * on gwd's message sizes (0: keepalive, 64, 256, 1420: a full-MTU data
 * message, 8192), a new nonce each call as gwd uses them. The figure is
 * plaintext MB/s (10^6 bytes; for 0 bytes, messages per second) per second
 * of the thread's CPU time, so load from other processes shows as less
 * wall time per run rather than as a lower rate; each cell is the best of
 * --runs runs, the two implementations alternating.
 */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "gw/chachapoly.h"
#include "gw/crypto.h"

enum {
	MAX_LEN = 8192,
	AD_LEN = 0,  /* gwd's data messages have no additional data */
	BATCH = 256, /* calls between clock reads */
};

static const size_t sizes[] = {0, 64, 256, 1420, 8192};

enum impl { LIBSODIUM, AVX2, NIMPL };
enum op { SEAL, OPEN, NOP };
static const char *const op_names[] = {"seal", "open"};

struct options {
	double seconds; /* CPU seconds per run of one cell */
	int runs;
	bool json;
};

static double cpu_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint8_t key[32];
static uint8_t buf[MAX_LEN + 16], ct[MAX_LEN + 16], out[MAX_LEN];
static volatile int sink;

static void nonce_of(uint8_t n[12], uint64_t c)
{
	memset(n, 0, 4);
	memcpy(n + 4, &c, 8);
}

/* Calls per CPU second of one implementation, operation and size. */
static double rate(enum impl impl, enum op op, size_t len, double seconds)
{
	uint8_t n[12], tag[16];
	uint64_t calls = 0, c = 0;
	double t0 = cpu_now(), t;

	nonce_of(n, 1);
	crypto_aead_chacha20poly1305_ietf_encrypt(ct, NULL, buf, len, NULL, 0, NULL, n, key);
	do {
		for (int i = 0; i < BATCH; i++) {
			if (op == SEAL) {
				nonce_of(n, ++c);
				if (impl == LIBSODIUM)
					crypto_aead_chacha20poly1305_ietf_encrypt(
					    buf, NULL, buf, len, NULL, AD_LEN, NULL, n, key);
				else
					gw_chachapoly_avx2_seal(buf, buf, len, NULL, AD_LEN, n,
								key);
			} else if (impl == LIBSODIUM) {
				sink += crypto_aead_chacha20poly1305_ietf_decrypt(
				    out, NULL, NULL, ct, len + 16, NULL, AD_LEN, n, key);
			} else {
				gw_chachapoly_avx2_open(out, ct, len, NULL, AD_LEN, n, key, tag);
				sink += !gw_memeq(tag, ct + len, 16);
			}
		}
		calls += BATCH;
		t = cpu_now() - t0;
	} while (t < seconds);
	return (double)calls / t;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: bench_aead [--seconds S] [--runs N] [--json]\n"
		   "  --seconds S  CPU seconds per run of each cell (default 0.3)\n"
		   "  --runs N     runs per cell, the best counts (default 3)\n"
		   "  --json       one JSON object instead of the table\n");
}

static int parse(int argc, char **argv, struct options *o)
{
	static const struct option longopts[] = {
	    {"seconds", required_argument, NULL, 's'},
	    {"runs", required_argument, NULL, 'r'},
	    {"json", no_argument, NULL, 'j'},
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	int c;

	*o = (struct options){.seconds = 0.3, .runs = 3};
	while ((c = getopt_long(argc, argv, "s:r:jh", longopts, NULL)) != -1) {
		char *end;

		switch (c) {
		case 's':
			o->seconds = strtod(optarg, &end);
			if (*end || !(o->seconds > 0 && o->seconds <= 60))
				return -EINVAL;
			break;
		case 'r':
			o->runs = (int)strtol(optarg, &end, 10);
			if (*end || o->runs < 1 || o->runs > 100)
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
	double best[sizeof(sizes) / sizeof(sizes[0])][NOP][NIMPL] = {{{0}}};
	const size_t nsizes = sizeof(sizes) / sizeof(sizes[0]);
	struct options o;

	if (parse(argc, argv, &o)) {
		usage(stderr);
		return 2;
	}
	if (gw_crypto_init()) {
		fprintf(stderr, "bench_aead: gw_crypto_init failed\n");
		return 1;
	}
	if (!gw_chachapoly_avx2_usable()) {
		fprintf(stderr, "bench_aead: this CPU or build has no AVX2 code to measure\n");
		return 1;
	}
	randombytes_buf(key, sizeof(key));
	randombytes_buf(buf, sizeof(buf));

	for (int r = 0; r < o.runs; r++)
		for (size_t s = 0; s < nsizes; s++)
			for (int op = 0; op < NOP; op++)
				for (int k = 0; k < NIMPL; k++) {
					/* Alternate which goes first. */
					int impl = (r + k) % NIMPL;
					double v = rate(impl, op, sizes[s], o.seconds);

					if (v > best[s][op][impl])
						best[s][op][impl] = v;
				}

	if (o.json)
		printf("{\"impl\":\"%s\",\"results\":[", gw_aead_impl_name());
	else
		printf("%6s %-5s %14s %14s %7s\n", "bytes", "op", "libsodium", "avx2", "ratio");
	for (size_t s = 0; s < nsizes; s++)
		for (int op = 0; op < NOP; op++) {
			double a = best[s][op][LIBSODIUM], b = best[s][op][AVX2];
			/* MB/s, or messages/s for empty messages. */
			double scale = sizes[s] ? (double)sizes[s] / 1e6 : 1.0;

			if (o.json)
				printf("%s{\"bytes\":%zu,\"op\":\"%s\",\"libsodium_per_s\":%.0f,"
				       "\"avx2_per_s\":%.0f,\"ratio\":%.3f}",
				       s || op ? "," : "", sizes[s], op_names[op], a, b, b / a);
			else
				printf("%6zu %-5s %10.0f %s %10.0f %s %6.2fx\n", sizes[s],
				       op_names[op], a * scale, sizes[s] ? "MB/s" : "m/s ",
				       b * scale, sizes[s] ? "MB/s" : "m/s ", b / a);
		}
	if (o.json)
		printf("]}\n");
	return 0;
}
