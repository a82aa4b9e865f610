/*
 * Unit tests of the audit record writer (gateway/audit_json.c): client bytes in, JSON text
 * out, exactly as escaped, always parseable and ASCII; nesting and null handling.
 */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "audit_chain.h"
#include "cu.h"

/* A record {"v":<value>} for a string of n bytes. */
static char *record_of(const char *v, size_t n, size_t *len)
{
	struct audit_json j;
	audit_json_begin(&j);
	audit_json_strn(&j, "v", v, n);
	return audit_json_take(&j, len);
}

static void test_escapes(void)
{
	static const struct {
		const char *name, *in;
		size_t n;
		const char *out;
	} rows[] = {
	    {"plain", "/api/x", 6, "{\"v\":\"/api/x\"}"},
	    {"quote and backslash", "a\"b\\c", 5, "{\"v\":\"a\\\"b\\\\c\"}"},
	    {"short escapes", "\n\r\t", 3, "{\"v\":\"\\n\\r\\t\"}"},
	    {"control and DEL", "\x01\x1f\x7f", 3, "{\"v\":\"\\u0001\\u001f\\u007f\"}"},
	    {"NUL inside", "a\0b", 3, "{\"v\":\"a\\u0000b\"}"},
	    {"two-byte UTF-8", "\xc3\xa9", 2, "{\"v\":\"\\u00e9\"}"},
	    {"three-byte UTF-8", "\xe2\x82\xac", 3, "{\"v\":\"\\u20ac\"}"},
	    {"four-byte UTF-8: surrogate pair", "\xf0\x9f\x98\x80", 4,
	     "{\"v\":\"\\ud83d\\ude00\"}"},
	    {"lone continuation byte", "a\x80z", 3, "{\"v\":\"a\\ufffdz\"}"},
	    {"overlong slash", "\xc0\xaf", 2, "{\"v\":\"\\ufffd\\ufffd\"}"},
	    {"UTF-16 surrogate encoded", "\xed\xa0\x80", 3, "{\"v\":\"\\ufffd\\ufffd\\ufffd\"}"},
	    {"past U+10FFFF", "\xf4\x90\x80\x80", 4, "{\"v\":\"\\ufffd\\ufffd\\ufffd\\ufffd\"}"},
	    {"cut sequence at the end", "x\xe2\x82", 3, "{\"v\":\"x\\ufffd\\ufffd\"}"},
	    {"null value", NULL, 0, "{\"v\":null}"},
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		size_t len = 0;
		char *s = record_of(rows[i].in, rows[i].n, &len);
		CU_ASSERT_FATAL(s != NULL);
		if (strcmp(s, rows[i].out) != 0)
			fprintf(stderr, "row '%s': got %s\n", rows[i].name, s);
		CU_ASSERT_STRING_EQUAL(s, rows[i].out);
		CU_ASSERT_EQUAL(len, strlen(s));
		/* Whatever went in, what comes out is JSON that a strict parser accepts. */
		json_error_t err;
		json_t *o = json_loads(s, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &err);
		CU_ASSERT(o != NULL);
		json_decref(o);
		free(s);
	}
}

/* Valid UTF-8 survives the round trip through a parser byte for byte. */
static void test_round_trip(void)
{
	const char in[] = "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \"q\" \\ \x01";
	size_t len;
	char *s = record_of(in, sizeof(in) - 1, &len);
	CU_ASSERT_FATAL(s != NULL);
	for (size_t i = 0; i < len; i++)
		CU_ASSERT((unsigned char)s[i] < 0x80);
	json_t *o = json_loads(s, 0, NULL);
	CU_ASSERT_FATAL(o != NULL);
	const char *v = json_string_value(json_object_get(o, "v"));
	CU_ASSERT(v != NULL && json_string_length(json_object_get(o, "v")) == sizeof(in) - 1 &&
	          memcmp(v, in, sizeof(in) - 1) == 0);
	json_decref(o);
	free(s);
}

static void test_structure(void)
{
	struct audit_json j;
	size_t len;
	audit_json_begin(&j);
	audit_json_str(&j, "type", "request");
	audit_json_int(&j, "neg", -42);
	audit_json_int(&j, "big", 9007199254740993LL);
	audit_json_null(&j, "none");
	audit_json_open(&j, "o", '{');
	audit_json_int(&j, "a", 0);
	audit_json_open(&j, "list", '[');
	audit_json_str(&j, NULL, "x");
	audit_json_str(&j, NULL, "y");
	audit_json_close(&j);
	audit_json_open(&j, "empty", '[');
	audit_json_close(&j);
	audit_json_close(&j);
	char *s = audit_json_take(&j, &len);
	CU_ASSERT_FATAL(s != NULL);
	CU_ASSERT_STRING_EQUAL(
	    s, "{\"type\":\"request\",\"neg\":-42,\"big\":9007199254740993,\"none\":null,"
	       "\"o\":{\"a\":0,\"list\":[\"x\",\"y\"],\"empty\":[]}}");
	free(s);
	/* An object left open, or one closed too often, is refused rather than written. */
	audit_json_begin(&j);
	audit_json_open(&j, "o", '{');
	CU_ASSERT_PTR_NULL(audit_json_take(&j, &len));
	audit_json_begin(&j);
	audit_json_close(&j);
	CU_ASSERT_PTR_NULL(audit_json_take(&j, &len));
	/* An empty record is "{}", which the chain can seal. */
	audit_json_begin(&j);
	s = audit_json_take(&j, &len);
	CU_ASSERT_FATAL(s != NULL);
	CU_ASSERT_STRING_EQUAL(s, "{}");
	free(s);
}

/* A long value (bigger than the first allocation) is kept whole. */
static void test_long_value(void)
{
	size_t n = 100000, len;
	char *in = malloc(n);
	CU_ASSERT_FATAL(in != NULL);
	for (size_t i = 0; i < n; i++)
		in[i] = (char)(i % 3 == 0 ? '"' : 'a');
	char *s = record_of(in, n, &len);
	CU_ASSERT_FATAL(s != NULL);
	CU_ASSERT_EQUAL(len, 8 + n + (n + 2) / 3);
	free(s);
	free(in);
}

CU_SUITE(audit_json, NULL, NULL, {"escapes", test_escapes}, {"round trip", test_round_trip},
         {"structure", test_structure}, {"long value", test_long_value})
