// SPDX-License-Identifier: MIT
/*
 * bench_aead: ChaCha20-Poly1305 seal and open on one core, libsodium's
 * crypto_aead_chacha20poly1305_ietf_* against lib/chachapoly.c's AVX2 code,
 * on gwd's message sizes (0: keepalive, 64, 256, 1420: a full-MTU data
 * message, 8192), a new nonce each call as gwd uses them. The figures are
 * plaintext MB/s (10^6 bytes; for 0 bytes, messages per second) per second
 * of the thread's CPU time (CLOCK_THREAD_CPUTIME_ID), so that time other
 * processes take does not count; the two implementations run in
 * alternating slices of ~10 ms, and the ratio printed is the median of the
 * per-slice-pair ratios, the figure that moves least on a loaded machine.
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
	AD_LEN = 0, /* gwd's data messages have no additional data */
	BATCH = 64, /* the first slice size tried */
};

static const size_t sizes[] = {0, 64, 256, 1420, 8192};

enum impl { LIBSODIUM, AVX2, NIMPL };
enum op { SEAL, OPEN, NOP };
static const char *const op_names[] = {"seal", "open"};

struct options {
	double seconds; /* CPU seconds per implementation and cell */
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

/* CPU seconds of `calls` calls of one implementation, operation and size. */
static double slice(enum impl impl, enum op op, size_t len, uint64_t calls, uint64_t *c)
{
	uint8_t n[12], tag[16];
	double t0 = cpu_now();

	nonce_of(n, 1);
	for (uint64_t i = 0; i < calls; i++) {
		if (op == SEAL) {
			nonce_of(n, ++*c);
			if (impl == LIBSODIUM)
				crypto_aead_chacha20poly1305_ietf_encrypt(buf, NULL, buf, len, NULL,
									  AD_LEN, NULL, n, key);
			else
				gw_chachapoly_avx2_seal(buf, buf, len, NULL, AD_LEN, n, key);
		} else if (impl == LIBSODIUM) {
			sink += crypto_aead_chacha20poly1305_ietf_decrypt(
			    out, NULL, NULL, ct, len + 16, NULL, AD_LEN, n, key);
		} else {
			gw_chachapoly_avx2_open(out, ct, len, NULL, AD_LEN, n, key, tag);
			sink += !gw_memeq(tag, ct + len, 16);
		}
	}
	return cpu_now() - t0;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/*
 * Calls per CPU second of both implementations for one operation and size,
 * in alternating slices of about 10 ms each (the order flips every round),
 * so that both see the same machine; and the median of the per-round
 * ratios, which moves less under load than the ratio of the totals.
 */
static void measure(enum op op, size_t len, const struct options *o, double rate[NIMPL],
		    double *ratio)
{
	enum { ROUNDS_MAX = 4096 };
	static double ratios[ROUNDS_MAX];
	double total[NIMPL] = {0}, t;
	uint64_t calls = BATCH, c = 0, done[NIMPL] = {0};
	int rounds = 0;
	uint8_t n[12];

	nonce_of(n, 1);
	crypto_aead_chacha20poly1305_ietf_encrypt(ct, NULL, buf, len, NULL, 0, NULL, n, key);
	/* Size a slice: about 10 ms of libsodium. */
	while ((t = slice(LIBSODIUM, op, len, calls, &c)) < 0.01 && calls < (1u << 30))
		calls *= 2;
	while (rounds < ROUNDS_MAX && total[LIBSODIUM] + total[AVX2] < 2 * o->seconds) {
		double s[NIMPL];

		for (int k = 0; k < NIMPL; k++) {
			int impl = (rounds + k) % NIMPL;

			s[impl] = slice(impl, op, len, calls, &c);
			total[impl] += s[impl];
			done[impl] += calls;
		}
		ratios[rounds++] = s[LIBSODIUM] / s[AVX2];
	}
	for (int k = 0; k < NIMPL; k++)
		rate[k] = (double)done[k] / total[k];
	qsort(ratios, (size_t)rounds, sizeof(ratios[0]), cmp_double);
	*ratio = ratios[rounds / 2];
}

static void usage(FILE *f)
{
	fprintf(f, "usage: bench_aead [--seconds S] [--json]\n"
		   "  --seconds S  CPU seconds per implementation and cell (default 1)\n"
		   "  --json       one JSON object instead of the table\n");
}

static int parse(int argc, char **argv, struct options *o)
{
	static const struct option longopts[] = {
	    {"seconds", required_argument, NULL, 's'},
	    {"json", no_argument, NULL, 'j'},
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	int c;

	*o = (struct options){.seconds = 1.0};
	while ((c = getopt_long(argc, argv, "s:jh", longopts, NULL)) != -1) {
		char *end;

		switch (c) {
		case 's':
			o->seconds = strtod(optarg, &end);
			if (*end || !(o->seconds > 0 && o->seconds <= 60))
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
	double rate[sizeof(sizes) / sizeof(sizes[0])][NOP][NIMPL];
	double ratio[sizeof(sizes) / sizeof(sizes[0])][NOP];
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

	for (size_t i = 0; i < nsizes; i++)
		for (int op = 0; op < NOP; op++)
			measure(op, sizes[i], &o, rate[i][op], &ratio[i][op]);

	if (o.json)
		printf("{\"impl\":\"%s\",\"results\":[", gw_aead_impl_name());
	else
		printf("%6s %-5s %14s %14s %7s\n", "bytes", "op", "libsodium", "avx2", "ratio");
	for (size_t s = 0; s < nsizes; s++)
		for (int op = 0; op < NOP; op++) {
			double a = rate[s][op][LIBSODIUM], b = rate[s][op][AVX2];
			/* MB/s, or messages/s for empty messages. */
			double scale = sizes[s] ? (double)sizes[s] / 1e6 : 1.0;

			if (o.json)
				printf("%s{\"bytes\":%zu,\"op\":\"%s\",\"libsodium_per_s\":%.0f,"
				       "\"avx2_per_s\":%.0f,\"ratio\":%.3f}",
				       s || op ? "," : "", sizes[s], op_names[op], a, b,
				       ratio[s][op]);
			else
				printf("%6zu %-5s %10.0f %s %10.0f %s %6.2fx\n", sizes[s],
				       op_names[op], a * scale, sizes[s] ? "MB/s" : "m/s ",
				       b * scale, sizes[s] ? "MB/s" : "m/s ", ratio[s][op]);
		}
	if (o.json)
		printf("]}\n");
	return 0;
}
