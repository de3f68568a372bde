// SPDX-License-Identifier: MIT
/*
 * The transport's receive check on arbitrary bytes: the first byte is the
 * authenticated sender's node id, the rest the frame. It must never crash or
 * leak; what it accepts must pass every check, must be refused for another
 * cluster or another sender, and must survive pack and unpack unchanged.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "transport.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char CLUSTER[] = "lab";

static void check_refused(const uint8_t *buf, size_t len, const char *cluster, uint8_t from,
			  enum syncd_envelope_verdict want)
{
	Gwcluster__Envelope *env = NULL;

	if (syncd_envelope_unpack_checked(buf, len, cluster, from, &env) != want || env)
		abort();
}

/* Packing an accepted Envelope and checking it again gives the same bytes back. */
static void check_round_trip(const Gwcluster__Envelope *env, uint8_t from)
{
	size_t len = gwcluster__envelope__get_packed_size(env), len2;
	uint8_t *buf = malloc(len + 1), *buf2;
	Gwcluster__Envelope *again = NULL;

	if (!buf || gwcluster__envelope__pack(env, buf) != len)
		abort();
	if (syncd_envelope_unpack_checked(buf, len, CLUSTER, from, &again) != SYNCD_ENVELOPE_OK)
		abort();
	len2 = gwcluster__envelope__get_packed_size(again);
	buf2 = malloc(len2 + 1);
	if (!buf2 || len2 != len || gwcluster__envelope__pack(again, buf2) != len ||
	    memcmp(buf, buf2, len) != 0)
		abort();
	gwcluster__envelope__free_unpacked(again, NULL);
	free(buf2);
	free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	Gwcluster__Envelope *env = (void *)1;
	enum syncd_envelope_verdict v;
	uint8_t from;

	if (size < 1)
		return 0;
	from = data[0];
	v = syncd_envelope_unpack_checked(data + 1, size - 1, CLUSTER, from, &env);
	if (v > SYNCD_ENVELOPE_ORIGIN || (v != SYNCD_ENVELOPE_OK) != !env)
		abort();
	if (v != SYNCD_ENVELOPE_OK)
		return 0;
	if (env->version != SYNCD_PROTO_VERSION || env->origin != from || !env->cluster ||
	    strcmp(env->cluster, CLUSTER) != 0 ||
	    env->body_case == GWCLUSTER__ENVELOPE__BODY__NOT_SET)
		abort();
	check_refused(data + 1, size - 1, "other", from, SYNCD_ENVELOPE_CLUSTER);
	check_refused(data + 1, size - 1, CLUSTER, (uint8_t)(from + 1), SYNCD_ENVELOPE_ORIGIN);
	check_round_trip(env, from);
	gwcluster__envelope__free_unpacked(env, NULL);
	return 0;
}
