/*
 * API keys: keys generated here, their hashes written to a key file in a temporary
 * directory; the right key passes with its subject and scopes, any other key is unknown,
 * the file never holds a key, and broken files are refused with file:line.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "authn.h"
#include "cu.h"

static char dir[] = "/tmp/gw-apikey-XXXXXX";
static char key_a[AUTHN_APIKEY_LEN + 1], key_b[AUTHN_APIKEY_LEN + 1];
static unsigned char hash_key[AUTHN_APIKEY_HASH_KEY_BYTES];
static struct authn_keys *keys;

static void path_of(const char *name, char *out, size_t cap)
{
	snprintf(out, cap, "%s/%s", dir, name);
}

static int write_file(const char *name, const char *text)
{
	char p[256];
	path_of(name, p, sizeof(p));
	FILE *f = fopen(p, "w");
	if (!f)
		return -1;
	fputs(text, f);
	return fclose(f);
}

/* Builds a key set from the table in file name; -1 with err. */
static int load(const char *name, struct authn_keys **out, char *err, size_t errlen)
{
	char table[256], hk[256];
	path_of(name, table, sizeof(table));
	path_of("hash.key", hk, sizeof(hk));
	struct authn_keys_opts o = {.apikey_file = table, .apikey_hash_key_file = hk};
	return authn_keys_new(&o, out, err, errlen);
}

static int suite_init(void)
{
	char hex[AUTHN_APIKEY_HEX_LEN + 2], ha[AUTHN_APIKEY_HEX_LEN + 1],
	    hb[AUTHN_APIKEY_HEX_LEN + 1];
	char text[1024], err[256];

	if (!mkdtemp(dir) || authn_apikey_hash_key_generate(hash_key, hex) < 0)
		return -1;
	strcat(hex, "\n");
	if (write_file("hash.key", hex) < 0 || authn_apikey_generate(hash_key, key_a, ha) < 0 ||
	    authn_apikey_generate(hash_key, key_b, hb) < 0)
		return -1;
	snprintf(text, sizeof(text),
	         "# gateway API keys\n\n%s ci-bot deploy,read\n  %s\treporting   \r\n", ha, hb);
	if (write_file("keys.txt", text) < 0 || load("keys.txt", &keys, err, sizeof(err)) < 0) {
		fprintf(stderr, "apikey suite: %s\n", err);
		return -1;
	}
	return 0;
}

static int suite_clean(void)
{
	char cmd[128];
	authn_keys_free(keys);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static void test_right_key(void)
{
	struct authn_token_id id;

	CU_ASSERT_EQUAL(strlen(key_a), AUTHN_APIKEY_LEN);
	CU_ASSERT_EQUAL(strncmp(key_a, "gwk_", 4), 0);
	CU_ASSERT_EQUAL_FATAL(authn_apikey_verify(keys, key_a, strlen(key_a), &id), AUTHN_OK);
	CU_ASSERT_EQUAL(id.kind, AUTHN_CRED_APIKEY);
	CU_ASSERT_STRING_EQUAL(id.sub, "ci-bot");
	CU_ASSERT_EQUAL_FATAL(id.n_scopes, 2);
	CU_ASSERT_STRING_EQUAL(id.scopes[0], "deploy");
	CU_ASSERT_STRING_EQUAL(id.scopes[1], "read");
	authn_token_id_clear(&id);
	CU_ASSERT_EQUAL_FATAL(authn_apikey_verify(keys, key_b, strlen(key_b), &id), AUTHN_OK);
	CU_ASSERT_STRING_EQUAL(id.sub, "reporting");
	CU_ASSERT_EQUAL(id.n_scopes, 0);
	authn_token_id_clear(&id);
	CU_ASSERT_TRUE(authn_keys_has_apikeys(keys));
	CU_ASSERT_FALSE(authn_keys_has_issuers(keys));
}

static void test_wrong_key(void)
{
	struct authn_token_id id;
	char k[AUTHN_APIKEY_LEN + 1];

	memcpy(k, key_a, sizeof(k));
	k[10] = k[10] == 'x' ? 'y' : 'x';
	CU_ASSERT_EQUAL(authn_apikey_verify(keys, k, strlen(k), &id), AUTHN_UNKNOWN_API_KEY);
	CU_ASSERT_PTR_NULL(id.sub);
	CU_ASSERT_EQUAL(authn_apikey_verify(keys, key_a, strlen(key_a) - 1, &id),
	                AUTHN_UNKNOWN_API_KEY);
	CU_ASSERT_EQUAL(authn_apikey_verify(keys, "", 0, &id), AUTHN_NO_CREDENTIAL);
	CU_ASSERT_EQUAL(authn_apikey_verify(NULL, key_a, strlen(key_a), &id),
	                AUTHN_UNKNOWN_API_KEY);
	/* The hash is what the file stores: the same key under another hashing key differs. */
	char h1[AUTHN_APIKEY_HEX_LEN + 1], h2[AUTHN_APIKEY_HEX_LEN + 1];
	unsigned char other[AUTHN_APIKEY_HASH_KEY_BYTES] = {1};
	CU_ASSERT_EQUAL(authn_apikey_hash(hash_key, key_a, strlen(key_a), h1), 0);
	CU_ASSERT_EQUAL(authn_apikey_hash(other, key_a, strlen(key_a), h2), 0);
	CU_ASSERT_STRING_NOT_EQUAL(h1, h2);
}

/* The key file holds hashes only: neither key, nor its random part, appears in it. */
static void test_file_holds_no_plaintext(void)
{
	char p[256], text[4096];
	path_of("keys.txt", p, sizeof(p));
	FILE *f = fopen(p, "r");
	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	size_t n = fread(text, 1, sizeof(text) - 1, f);
	fclose(f);
	text[n] = '\0';
	CU_ASSERT_PTR_NULL(strstr(text, key_a));
	CU_ASSERT_PTR_NULL(strstr(text, key_a + 4));
	CU_ASSERT_PTR_NULL(strstr(text, key_b + 4));
	CU_ASSERT_PTR_NULL(strstr(text, "gwk_"));
	char h[AUTHN_APIKEY_HEX_LEN + 1];
	CU_ASSERT_EQUAL(authn_apikey_hash(hash_key, key_a, strlen(key_a), h), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(text, h));
}

/* Copies tmpl into out with each 'H' replaced by the hash h. */
static void expand(const char *tmpl, const char *h, char *out, size_t cap)
{
	size_t n = 0;
	for (const char *p = tmpl; *p && n + AUTHN_APIKEY_HEX_LEN + 1 < cap; p++) {
		if (*p == 'H') {
			memcpy(out + n, h, AUTHN_APIKEY_HEX_LEN);
			n += AUTHN_APIKEY_HEX_LEN;
		} else {
			out[n++] = *p;
		}
	}
	out[n] = '\0';
}

/* Broken tables and hashing keys, each refused with the place and the reason. */
static void test_bad_files(void)
{
	static const struct {
		const char *text, *want;
	} bad[] = {
	    {"gwk_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA alice\n",
	     "keys.bad:1: holds a plaintext key"},
	    {"# c\nabcd alice\n", "keys.bad:2: the hash must be 64 hex digits"},
	    {"H\n", "keys.bad:1: needs '<64 hex digits> <subject>"},
	    {"H alice a,,b\n", "keys.bad:1: the subject or a scope is empty"},
	    {"H alice\nH bob\n", "keys.bad:2: the same key hash is listed twice"},
	    {"H alice a b\n", "keys.bad:1: needs"},
	};
	char h[AUTHN_APIKEY_HEX_LEN + 1], text[512], err[512];
	struct authn_keys *k = NULL;

	CU_ASSERT_EQUAL_FATAL(authn_apikey_hash(hash_key, "x", 1, h), 0);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		expand(bad[i].text, h, text, sizeof(text));
		CU_ASSERT_EQUAL_FATAL(write_file("keys.bad", text), 0);
		err[0] = '\0';
		CU_ASSERT_EQUAL(load("keys.bad", &k, err, sizeof(err)), -1);
		CU_ASSERT_PTR_NULL(k);
		if (!strstr(err, bad[i].want)) {
			fprintf(stderr, "\n  case %zu: got '%s'", i, err);
			CU_FAIL("wrong message");
		}
	}
	CU_ASSERT_EQUAL_FATAL(write_file("hash.key", "abcd\n"), 0);
	CU_ASSERT_EQUAL(load("keys.txt", &k, err, sizeof(err)), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "must hold 64 hex digits"));
	struct authn_keys_opts o = {.apikey_file = "/nonexistent/keys"};
	CU_ASSERT_EQUAL(authn_keys_new(&o, &k, err, sizeof(err)), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "hash_key file is required"));
	/* Put the good hashing key back for any later test. */
	char hex[AUTHN_APIKEY_HEX_LEN + 2];
	for (int i = 0; i < AUTHN_APIKEY_HASH_KEY_BYTES; i++)
		snprintf(hex + 2 * i, 3, "%02x", hash_key[i]);
	CU_ASSERT_EQUAL(write_file("hash.key", hex), 0);
	CU_ASSERT_EQUAL(load("keys.txt", &k, err, sizeof(err)), 0);
	authn_keys_free(k);
}

/* The files in tests/data/authn were hashed by Python's hashlib: an independent BLAKE2b. */
static void test_independent_hashes(void)
{
	char table[512], hk[512], err[512];
	struct authn_keys *k = NULL;
	struct authn_token_id id;

	snprintf(table, sizeof(table), "%s/authn/apikeys.txt", cu_data_dir());
	snprintf(hk, sizeof(hk), "%s/authn/test-apikey.key", cu_data_dir());
	struct authn_keys_opts o = {.apikey_file = table, .apikey_hash_key_file = hk};
	CU_ASSERT_EQUAL_FATAL(authn_keys_new(&o, &k, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL_FATAL(authn_apikey_verify(k, "gwk_conf-test-key-2", 19, &id), AUTHN_OK);
	CU_ASSERT_STRING_EQUAL(id.sub, "reporting");
	authn_token_id_clear(&id);
	CU_ASSERT_EQUAL(authn_apikey_verify(k, "gwk_conf-test-key-3", 19, &id),
	                AUTHN_UNKNOWN_API_KEY);
	authn_keys_free(k);
}

CU_SUITE(authn_apikey, suite_init, suite_clean, {"right_key", test_right_key},
         {"independent_hashes", test_independent_hashes}, {"wrong_key", test_wrong_key},
         {"file_holds_no_plaintext", test_file_holds_no_plaintext}, {"bad_files", test_bad_files})
