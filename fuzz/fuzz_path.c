/*
 * fuzz_path: policy_path_normalize() on arbitrary bytes. Besides "no crash, no leak, no
 * UB", every accepted path is checked against the normal form the policy relies on: only
 * canonical bytes and escapes, no empty or dot segments, no ';', and normalising it again
 * yields it unchanged (the path authorised is the path forwarded).
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "policy.h"

/* Stops the run with a stack trace: an invariant of the normal form was broken. */
#define FUZZ_CHECK(cond)                                                                           \
	do {                                                                                       \
		if (!(cond))                                                                       \
			__builtin_trap();                                                          \
	} while (0)

static bool is_hex_upper(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F');
}

static int hex_of(char c)
{
	return c <= '9' ? c - '0' : c - 'A' + 10;
}

static bool is_unreserved(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '.' || c == '_' || c == '~';
}

/* What may stand raw in a normal path: unreserved and the sub-delims the policy keeps. */
static bool is_raw_ok(unsigned char c)
{
	return is_unreserved(c) || (c != '\0' && strchr(":/[]@!$&'()*+,=", c) != NULL);
}

/* Checks one "%HH": upper-case, and never an escape the normaliser must decode or refuse. */
static void check_escape(const char *p, size_t left)
{
	FUZZ_CHECK(left >= 3 && is_hex_upper(p[1]) && is_hex_upper(p[2]));
	unsigned char b = (unsigned char)(hex_of(p[1]) << 4 | hex_of(p[2]));
	FUZZ_CHECK(b != 0 && b != '/' && b != '\\' && !is_unreserved(b));
}

/* The normal form: canonical bytes, "/" separated non-empty segments, no dot segments. */
static void check_normal(const char *out, size_t len)
{
	FUZZ_CHECK(len >= 1 && out[0] == '/' && out[len] == '\0' && strlen(out) == len);
	size_t seg_start = 1;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)out[i];
		if (c == '%') {
			check_escape(out + i, len - i);
			i += 2;
			continue;
		}
		FUZZ_CHECK(is_raw_ok(c));
		if (i > 0 && c == '/') {
			size_t n = i - seg_start;
			/* Empty, "." and ".." segments are exactly what normalising removes. */
			FUZZ_CHECK(n > 0);
			FUZZ_CHECK(!(n == 1 && out[seg_start] == '.'));
			FUZZ_CHECK(!(n == 2 && out[seg_start] == '.' && out[seg_start + 1] == '.'));
			seg_start = i + 1;
		}
	}
	size_t n = len - seg_start;
	FUZZ_CHECK(!(n == 1 && out[seg_start] == '.'));
	FUZZ_CHECK(!(n == 2 && out[seg_start] == '.' && out[seg_start + 1] == '.'));
	if (len == 1 || out[len - 1] != '/')
		FUZZ_CHECK(policy_prefix_valid(out, len));
	FUZZ_CHECK(policy_prefix_covers(out, len, out, len));
}

/* Normalises out again and requires the very same bytes back. */
static void check_idempotent(const char *out, size_t len)
{
	size_t cap = 3 * len + 2, len2 = 0;
	char *again = malloc(cap);
	if (!again)
		return;
	enum policy_path_status st = policy_path_normalize(out, len, again, cap, &len2);
	FUZZ_CHECK(st == POLICY_PATH_OK);
	FUZZ_CHECK(len2 == len && memcmp(again, out, len + 1) == 0);
	free(again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* The documented bound: 3 * len + 1 always suffices. */
	size_t cap = 3 * size + 1, len = 0;
	char *out = malloc(cap);
	if (!out)
		return 0;
	enum policy_path_status st =
	    policy_path_normalize((const char *)data, size, out, cap, &len);
	FUZZ_CHECK(st < POLICY_PATH_STATUS_MAX && policy_path_status_str(st) != NULL);
	FUZZ_CHECK(st != POLICY_PATH_TOO_LONG || size == 0);
	if (st == POLICY_PATH_OK) {
		check_normal(out, len);
		check_idempotent(out, len);
	} else {
		FUZZ_CHECK(out[0] == '\0' && len == 0);
	}
	/* A tight buffer may refuse with TOO_LONG but must never give another result. */
	size_t small = size ? (data[size - 1] % (size + 2)) : 0, len_s = 0;
	char *tight = malloc(small ? small : 1);
	if (tight) {
		enum policy_path_status st2 = policy_path_normalize(
		    (const char *)data, size, small ? tight : NULL, small, &len_s);
		if (st2 == POLICY_PATH_OK)
			FUZZ_CHECK(st == POLICY_PATH_OK && len_s == len &&
			           memcmp(tight, out, len) == 0);
		else if (st2 != POLICY_PATH_TOO_LONG)
			FUZZ_CHECK(st2 == st); /* segments are taken in order either way */
		free(tight);
	}
	free(out);
	return 0;
}
