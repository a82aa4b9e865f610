/*
 * Unit tests of the audit record writer (gateway/audit_json.c): client bytes in, JSON text
 * out, exactly as escaped, always parseable and ASCII; nesting and null handling.
 */
#include <stdbool.h>
#include <stdio.h>
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

/* s parses, strictly, as one JSON object. */
static void assert_json(const char *s)
{
	json_error_t err;
	json_t *o = json_loads(s, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &err);
	if (!o)
		fprintf(stderr, "not JSON (%s): %s\n", err.text, s);
	CU_ASSERT(o != NULL && json_is_object(o));
	json_decref(o);
}

/*
 * The escaper, byte for byte, around its 8-byte scan: special bytes at the start, at word
 * boundaries, in the overlapping last word and at the end, and every kind of bad UTF-8.
 * out is the text between the quotes of the value.
 */
#define L(lit) lit, sizeof(lit) - 1
static const struct {
	const char *in;
	size_t n;
	const char *out;
} exact[] = {
    {L(""), ""},
    {L("a"), "a"},
    {L(" ~"), " ~"},
    {L(" !\"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`"
       "abcdefghijklmnopqrstuvwxyz{|}~"),
     " !\\\"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\\\]^_`"
     "abcdefghijklmnopqrstuvwxyz{|}~"},
    {L("abcdefgh"), "abcdefgh"},
    {L("abcdefghi"), "abcdefghi"},
    {L("abcdefghijklmnopqrstuvwxyz0123456789-_./:ABCDEFGHIJKLMN"),
     "abcdefghijklmnopqrstuvwxyz0123456789-_./:ABCDEFGHIJKLMN"},
    /* quote, backslash and controls at start, middle and end */
    {L("\"abcdefghijklmnop"), "\\\"abcdefghijklmnop"},
    {L("abcdefg\"hijklmnop"), "abcdefg\\\"hijklmnop"},
    {L("abcdefgh\"ijklmnop"), "abcdefgh\\\"ijklmnop"},
    {L("abcdefghijklmnop\""), "abcdefghijklmnop\\\""},
    {L("\\abcdefghi"), "\\\\abcdefghi"},
    {L("abcdefghijklmno\\"), "abcdefghijklmno\\\\"},
    {L("abcdefghijklmnop\\"), "abcdefghijklmnop\\\\"},
    {L("abcdefgh\x1f"), "abcdefgh\\u001f"},
    {L("\x01"
       "abcdefghijk"),
     "\\u0001abcdefghijk"},
    {L("abcdefg\x01hijklmnop"), "abcdefg\\u0001hijklmnop"},
    {L("abcdefghi\n"), "abcdefghi\\n"},
    {L("\n\"\\\t"), "\\n\\\"\\\\\\t"},
    {L("\"\"\"\"\"\"\"\"\""), "\\\"\\\"\\\"\\\"\\\"\\\"\\\"\\\"\\\""},
    {L("\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f"
       "\x10\x11\x12\x13\x14\x15\x16\x17\x18\x19\x1a\x1b\x1c\x1d\x1e\x1f"),
     "\\u0000\\u0001\\u0002\\u0003\\u0004\\u0005\\u0006\\u0007\\u0008\\t\\n\\u000b\\u000c\\r"
     "\\u000e\\u000f\\u0010\\u0011\\u0012\\u0013\\u0014\\u0015\\u0016\\u0017\\u0018\\u0019"
     "\\u001a\\u001b\\u001c\\u001d\\u001e\\u001f"},
    {L("\x7f"), "\\u007f"},
    {L("abcdefghijkl\x7fmnop"), "abcdefghijkl\\u007fmnop"},
    /* valid UTF-8: the edges of each length, and sequences across a word boundary */
    {L("\xc2\x80"), "\\u0080"},
    {L("\xdf\xbf"), "\\u07ff"},
    {L("\xe0\xa0\x80"), "\\u0800"},
    {L("\xed\x9f\xbf"), "\\ud7ff"},
    {L("\xee\x80\x80"), "\\ue000"},
    {L("\xef\xbf\xbf"), "\\uffff"},
    {L("\xf0\x90\x80\x80"), "\\ud800\\udc00"},
    {L("\xf4\x8f\xbf\xbf"), "\\udbff\\udfff"},
    {L("abcdef\xc3\xa9gh"), "abcdef\\u00e9gh"},
    {L("abcdefg\xc3\xa9hijklmno"), "abcdefg\\u00e9hijklmno"},
    {L("abcdefg\xf0\x9f\x98\x80hijk"), "abcdefg\\ud83d\\ude00hijk"},
    {L("abcdefgh\xe2\x82\xac"), "abcdefgh\\u20ac"},
    /* invalid UTF-8: each byte that is not part of a valid sequence is one U+FFFD */
    {L("\xff"), "\\ufffd"},
    {L("\xfe"), "\\ufffd"},
    {L("abcdefghij\xffklmnop"), "abcdefghij\\ufffdklmnop"},
    {L("\xf8\x88\x80\x80\x80"), "\\ufffd\\ufffd\\ufffd\\ufffd\\ufffd"},
    {L("\xc0\x80"), "\\ufffd\\ufffd"},
    {L("\xc1\xbf"), "\\ufffd\\ufffd"},
    {L("\xe0\x80\xaf"), "\\ufffd\\ufffd\\ufffd"},
    {L("\xf0\x82\x82\xac"), "\\ufffd\\ufffd\\ufffd\\ufffd"},
    {L("\xed\xa0\x80"), "\\ufffd\\ufffd\\ufffd"},
    {L("\xed\xbf\xbf"), "\\ufffd\\ufffd\\ufffd"},
    {L("\xf4\x90\x80\x80"), "\\ufffd\\ufffd\\ufffd\\ufffd"},
    {L("\x80"), "\\ufffd"},
    {L("a\x80\xbf"
       "b"),
     "a\\ufffd\\ufffdb"},
    {L("\xc3"), "\\ufffd"},
    {L("abcdefgh\xc3"), "abcdefgh\\ufffd"},
    {L("abcdefgh\xf0\x9f\x98"), "abcdefgh\\ufffd\\ufffd\\ufffd"},
    {L("\xe2\x82x"), "\\ufffd\\ufffdx"},
    {L("\xc3\xa9\xc3"), "\\u00e9\\ufffd"},
};

static void test_exact(void)
{
	for (size_t i = 0; i < sizeof(exact) / sizeof(exact[0]); i++) {
		char want[1024];
		size_t len = 0;
		snprintf(want, sizeof(want), "{\"v\":\"%s\"}", exact[i].out);
		char *s = record_of(exact[i].in, exact[i].n, &len);
		CU_ASSERT_FATAL(s != NULL);
		if (strcmp(s, want) != 0)
			fprintf(stderr, "row %zu: got %s want %s\n", i, s, want);
		CU_ASSERT_STRING_EQUAL(s, want);
		CU_ASSERT_EQUAL(len, strlen(want));
		assert_json(s);
		free(s);
	}
	/* Every byte 0x80-0xff, in order: no two of them make a sequence. */
	unsigned char high[128];
	char want[8 + 128 * 6 + 1] = "{\"v\":\"";
	for (size_t i = 0; i < 128; i++) {
		high[i] = (unsigned char)(0x80 + i);
		strcat(want, "\\ufffd");
	}
	strcat(want, "\"}");
	size_t len;
	char *s = record_of((const char *)high, sizeof(high), &len);
	CU_ASSERT_FATAL(s != NULL);
	CU_ASSERT_STRING_EQUAL(s, want);
	free(s);
}

/*
 * The same values where the buffer fills: after a prefix member of every length around
 * the first allocation, so each value is written both in place and through the growing
 * path, with the same bytes.
 */
static void test_exact_at_buffer_end(void)
{
	char *prefix = malloc(1100);
	CU_ASSERT_FATAL(prefix != NULL);
	memset(prefix, 'p', 1100);
	for (size_t k = 0; k < sizeof(exact) / sizeof(exact[0]); k++) {
		for (size_t plen = 950; plen < 1040; plen++) {
			struct audit_json j;
			size_t len;
			audit_json_begin(&j);
			audit_json_strn(&j, "p", prefix, plen);
			audit_json_strn(&j, "v", exact[k].in, exact[k].n);
			audit_json_int(&j, "n", 1);
			char *s = audit_json_take(&j, &len);
			CU_ASSERT_FATAL(s != NULL);
			size_t ol = strlen(exact[k].out);
			CU_ASSERT_EQUAL_FATAL(len, 6 + plen + 7 + ol + 8);
			CU_ASSERT(memcmp(s, "{\"p\":\"", 6) == 0 &&
			          memcmp(s + 6, prefix, plen) == 0);
			const char *v = s + 6 + plen;
			CU_ASSERT(memcmp(v, "\",\"v\":\"", 7) == 0);
			CU_ASSERT(memcmp(v + 7, exact[k].out, ol) == 0);
			CU_ASSERT_STRING_EQUAL(v + 7 + ol, "\",\"n\":1}");
			free(s);
		}
	}
	free(prefix);
}

/* Keys are copied as given, up to 61 bytes; a longer one refuses the record. */
static void test_keys(void)
{
	char key[63];
	struct audit_json j;
	size_t len;
	memset(key, 'k', sizeof(key) - 1);
	key[61] = '\0';
	audit_json_begin(&j);
	audit_json_int(&j, key, 1);
	audit_json_null(&j, "");
	char *s = audit_json_take(&j, &len);
	CU_ASSERT_FATAL(s != NULL);
	CU_ASSERT_EQUAL(len, 2 + 61 + 4 + 8);
	CU_ASSERT(s[0] == '{' && s[1] == '"' && memcmp(s + 2, key, 61) == 0);
	CU_ASSERT_STRING_EQUAL(s + 2 + 61, "\":1,\"\":null}");
	free(s);
	key[61] = 'k';
	key[62] = '\0';
	audit_json_begin(&j);
	audit_json_int(&j, key, 1);
	CU_ASSERT_PTR_NULL(audit_json_take(&j, &len));
}

/* A fragment: members without braces, for audit_json_raw(). */
static char *fragment_of(size_t *len)
{
	struct audit_json f;
	audit_json_fragment_begin(&f);
	audit_json_str(&f, "a", "x\"y");
	audit_json_int(&f, "b", -1);
	audit_json_open(&f, "c", '{');
	audit_json_null(&f, "d");
	audit_json_open(&f, "e", '[');
	audit_json_str(&f, NULL, "\xc3\xa9");
	audit_json_int(&f, NULL, 2);
	audit_json_close(&f);
	audit_json_close(&f);
	return audit_json_take(&f, len);
}

#define FRAG "\"a\":\"x\\\"y\",\"b\":-1,\"c\":{\"d\":null,\"e\":[\"\\u00e9\",2]}"

static void test_fragment(void)
{
	struct audit_json f;
	size_t len;
	char *s = fragment_of(&len);
	CU_ASSERT_FATAL(s != NULL);
	CU_ASSERT_STRING_EQUAL(s, FRAG);
	CU_ASSERT_EQUAL(len, strlen(FRAG));
	free(s);
	/* An empty fragment is "". */
	audit_json_fragment_begin(&f);
	s = audit_json_take(&f, &len);
	CU_ASSERT_FATAL(s != NULL);
	CU_ASSERT_STRING_EQUAL(s, "");
	CU_ASSERT_EQUAL(len, 0);
	free(s);
	/* One member: no comma anywhere. */
	audit_json_fragment_begin(&f);
	audit_json_str(&f, "only", "1");
	s = audit_json_take(&f, &len);
	CU_ASSERT_FATAL(s != NULL);
	CU_ASSERT_STRING_EQUAL(s, "\"only\":\"1\"");
	free(s);
	/* Unbalanced, as for a record: refused. */
	audit_json_fragment_begin(&f);
	audit_json_open(&f, "o", '{');
	CU_ASSERT_PTR_NULL(audit_json_take(&f, &len));
	audit_json_fragment_begin(&f);
	audit_json_close(&f);
	CU_ASSERT_PTR_NULL(audit_json_take(&f, &len));
}

/* A fragment spliced in is the same as its members written in place, commas included. */
static void test_raw(void)
{
	struct audit_json j;
	size_t flen, len;
	char *frag = fragment_of(&flen);
	CU_ASSERT_FATAL(frag != NULL);
	static const struct {
		bool before, after, empty;
		const char *out;
	} rows[] = {
	    {false, false, false, "{" FRAG "}"},
	    {false, true, false, "{" FRAG ",\"z\":\"t\"}"},
	    {true, false, false, "{\"n\":1," FRAG "}"},
	    {true, true, false, "{\"n\":1," FRAG ",\"z\":\"t\"}"},
	    /* an empty fragment anywhere adds nothing, not even a comma */
	    {false, false, true, "{" FRAG "}"},
	    {false, true, true, "{" FRAG ",\"z\":\"t\"}"},
	    {true, false, true, "{\"n\":1," FRAG "}"},
	    {true, true, true, "{\"n\":1," FRAG ",\"z\":\"t\"}"},
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		audit_json_begin(&j);
		if (rows[i].empty)
			audit_json_raw(&j, "", 0);
		if (rows[i].before)
			audit_json_int(&j, "n", 1);
		if (rows[i].empty)
			audit_json_raw(&j, "", 0);
		audit_json_raw(&j, frag, flen);
		if (rows[i].empty)
			audit_json_raw(&j, "", 0);
		if (rows[i].after)
			audit_json_str(&j, "z", "t");
		char *s = audit_json_take(&j, &len);
		CU_ASSERT_FATAL(s != NULL);
		if (strcmp(s, rows[i].out) != 0)
			fprintf(stderr, "raw row %zu: got %s\n", i, s);
		CU_ASSERT_STRING_EQUAL(s, rows[i].out);
		CU_ASSERT_EQUAL(len, strlen(s));
		assert_json(s);
		free(s);
	}
	/* Twice in a row, in a nested object, and into another fragment. */
	audit_json_begin(&j);
	audit_json_open(&j, "o", '{');
	audit_json_raw(&j, "\"p\":1", 5);
	audit_json_raw(&j, "\"q\":2", 5);
	audit_json_close(&j);
	audit_json_open(&j, "e", '{');
	audit_json_raw(&j, "", 0);
	audit_json_close(&j);
	struct audit_json f;
	audit_json_fragment_begin(&f);
	audit_json_raw(&f, frag, flen);
	audit_json_int(&f, "m", 3);
	char *f2 = audit_json_take(&f, &flen);
	CU_ASSERT_FATAL(f2 != NULL);
	CU_ASSERT_STRING_EQUAL(f2, FRAG ",\"m\":3");
	audit_json_raw(&j, f2, flen);
	char *s = audit_json_take(&j, &len);
	CU_ASSERT_FATAL(s != NULL);
	CU_ASSERT_STRING_EQUAL(s, "{\"o\":{\"p\":1,\"q\":2},\"e\":{}," FRAG ",\"m\":3}");
	assert_json(s);
	free(s);
	free(f2);
	free(frag);
}

CU_SUITE(audit_json, NULL, NULL, {"escapes", test_escapes}, {"round trip", test_round_trip},
         {"structure", test_structure}, {"long value", test_long_value},
         {"exact escapes", test_exact},
         {"exact escapes at the buffer's end", test_exact_at_buffer_end}, {"keys", test_keys},
         {"fragment", test_fragment}, {"raw fragment", test_raw})
