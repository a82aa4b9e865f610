/*
 * Key sets: which JWKS documents and issuer settings authn_keys_new refuses, each with
 * the reason it must give, and that problems reach the report callback with the
 * file:line of the issuer. Keys are generated at test time and spliced into templates.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "authn_int.h"
#include "cu.h"
#include "test_authn_jwt_mint.h"

static struct mint_key *ec, *ed, *small_rsa;
static char ec_jwk[1024], ed_jwk[512], small_jwk[2048];
static char ec_x[64], ec_y[64];

/* Pulls the value of "name":"..." out of a JWK text. */
static void jwk_member(const char *jwk, const char *name, char *out, size_t cap)
{
	char pat[32];
	snprintf(pat, sizeof(pat), "\"%s\":\"", name);
	const char *p = strstr(jwk, pat) + strlen(pat);
	size_t n = (size_t)(strchr(p, '"') - p);
	snprintf(out, cap, "%.*s", (int)n, p);
}

static int suite_init(void)
{
	ec = mint_key_new(AUTHN_ALG_ES256, "ec");
	ed = mint_key_new(AUTHN_ALG_EDDSA, "ed");
	small_rsa = calloc(1, sizeof(*small_rsa));
	if (!ec || !ed || !small_rsa)
		return -1;
	small_rsa->alg = AUTHN_ALG_RS256;
	small_rsa->kid = "small";
	small_rsa->pkey = EVP_RSA_gen(1024);
	if (!small_rsa->pkey || mint_jwk(ec, NULL, ec_jwk, sizeof(ec_jwk)) < 0 ||
	    mint_jwk(ed, NULL, ed_jwk, sizeof(ed_jwk)) < 0 ||
	    mint_jwk(small_rsa, NULL, small_jwk, sizeof(small_jwk)) < 0)
		return -1;
	jwk_member(ec_jwk, "x", ec_x, sizeof(ec_x));
	jwk_member(ec_jwk, "y", ec_y, sizeof(ec_y));
	return 0;
}

static int suite_clean(void)
{
	mint_key_free(ec);
	mint_key_free(ed);
	mint_key_free(small_rsa);
	return 0;
}

/* Builds one issuer from a JWKS text; returns the error text ("" on success). */
static const char *try_jwks(const char *jwks)
{
	static char err[512];
	struct authn_keys *k = NULL;
	struct authn_issuer_opts is = {
	    .issuer = "i", .audience = "a", .jwks_json = jwks, .jwks_json_len = strlen(jwks)};
	struct authn_keys_opts o = {.issuers = &is, .n_issuers = 1};

	err[0] = '\0';
	if (authn_keys_new(&o, &k, err, sizeof(err)) == 0) {
		CU_ASSERT_PTR_NOT_NULL(k);
		err[0] = '\0';
	} else {
		CU_ASSERT_PTR_NULL(k);
	}
	authn_keys_free(k);
	return err;
}

/* Templates: X and Y stand for the EC key's coordinates. */
static const struct {
	const char *name, *jwks, *want; /* want "" = accepted */
} jwks_cases[] = {
    {"good EC", "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"X\",\"y\":\"Y\"}]}", ""},
    {"good EC with alg and use",
     "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"alg\":\"ES256\","
     "\"use\":\"sig\",\"key_ops\":[\"verify\"],\"x\":\"X\",\"y\":\"Y\"}]}",
     ""},
    {"not JSON", "{keys: []}", "JWKS is not valid JSON"},
    {"duplicate member", "{\"keys\":[],\"keys\":[]}", "JWKS is not valid JSON"},
    {"no keys array", "{\"k\":[]}", "needs a \"keys\" array"},
    {"empty", "{\"keys\":[]}", "no usable signature key"},
    {"only an encryption key",
     "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"use\":\"enc\",\"x\":\"X\",\"y\":\"Y\"}]}",
     "no usable signature key"},
    {"only key_ops encrypt",
     "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"key_ops\":[\"encrypt\"],\"x\":\"X\",\"y\":"
     "\"Y\"}]}",
     "no usable signature key"},
    {"symmetric key",
     "{\"keys\":[{\"kty\":\"oct\",\"k\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"}]}",
     "symmetric (oct) keys are not taken from a JWKS"},
    {"private key",
     "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"X\",\"y\":\"Y\",\"d\":\"AA\"}]}",
     "holds private key material"},
    {"alg against curve",
     "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"alg\":\"ES384\",\"x\":\"X\",\"y\":\"Y\"}]}",
     "\"alg\" ES384 does not fit an EC P-256 key"},
    {"HS256 alg on an EC key",
     "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"alg\":\"HS256\",\"x\":\"X\",\"y\":\"Y\"}]}",
     "does not fit"},
    {"short coordinate",
     "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"AAAA\",\"y\":\"Y\"}]}",
     "EC coordinate \"x\" is 3 bytes, not 32"},
    {"padded coordinate",
     "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"X=\",\"y\":\"Y\"}]}",
     "\"x\" is missing or not valid base64url"},
    {"point not on the curve",
     "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"X\",\"y\":\"X\"}]}", "EC public key"},
    {"no kty", "{\"keys\":[{\"crv\":\"P-256\",\"x\":\"X\",\"y\":\"Y\"}]}", "has no \"kty\""},
    {"kid not a string",
     "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":7,\"x\":\"X\",\"y\":\"Y\"}]}",
     "\"kid\" is not a string"},
    {"same kid twice",
     "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"a\",\"x\":\"X\",\"y\":\"Y\"},"
     "{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"a\",\"x\":\"X\",\"y\":\"Y\"}]}",
     "kid \"a\" is used twice"},
    {"skipped types beside a good key",
     "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-521\",\"x\":\"A\"},{\"kty\":\"OKP\",\"crv\":"
     "\"X25519\"},"
     "{\"kty\":\"RSA\",\"alg\":\"RS512\"},{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"X\",\"y\":"
     "\"Y\"}]}",
     ""},
};

/* Copies tmpl to out with X and Y replaced by the coordinates. */
static void fill(const char *tmpl, char *out, size_t cap)
{
	size_t n = 0;
	for (const char *p = tmpl; *p && n + 64 < cap; p++) {
		const char *v = *p == 'X' ? ec_x : (*p == 'Y' ? ec_y : NULL);
		if (v) {
			memcpy(out + n, v, strlen(v));
			n += strlen(v);
		} else {
			out[n++] = *p;
		}
	}
	out[n] = '\0';
}

static void test_jwks_table(void)
{
	char jwks[2048];

	for (size_t i = 0; i < sizeof(jwks_cases) / sizeof(jwks_cases[0]); i++) {
		fill(jwks_cases[i].jwks, jwks, sizeof(jwks));
		const char *err = try_jwks(jwks);
		bool ok = jwks_cases[i].want[0] ? strstr(err, jwks_cases[i].want) != NULL
		                                : err[0] == '\0';
		if (!ok) {
			fprintf(stderr, "\n  case '%s': got '%s'", jwks_cases[i].name, err);
			CU_FAIL("wrong verdict");
		}
	}
	char doc[4096];
	snprintf(doc, sizeof(doc), "{\"keys\":[%s]}", small_jwk);
	CU_ASSERT_PTR_NOT_NULL(strstr(try_jwks(doc), "RSA key has 1024 bits"));
	snprintf(doc, sizeof(doc), "{\"keys\":[%s]}", ed_jwk);
	CU_ASSERT_STRING_EQUAL(try_jwks(doc), "");
	snprintf(doc, sizeof(doc),
	         "{\"keys\":[{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"AAAA\"}]}");
	CU_ASSERT_PTR_NOT_NULL(strstr(try_jwks(doc), "Ed25519 key is 3 bytes"));
}

struct seen {
	int calls;
	char file[64];
	int line;
	char msg[512];
};

static void record(void *arg, bool is_error, const char *file, int line, const char *msg)
{
	struct seen *s = arg;
	if (s->calls++ == 0) {
		snprintf(s->file, sizeof(s->file), "%s", file ? file : "");
		s->line = line;
		snprintf(s->msg, sizeof(s->msg), "%s", msg);
	}
	CU_ASSERT_TRUE(is_error);
}

/* Issuer settings; problems are reported at the issuer's own file:line. */
static void test_issuer_settings(void)
{
	static unsigned char secret[64];
	char jwks[1100], path[] = "/tmp/gw-hs-XXXXXX";
	snprintf(jwks, sizeof(jwks), "{\"keys\":[%s]}", ec_jwk);
	struct authn_issuer_opts base = {
	    .name = "idp", .issuer = "i", .audience = "a", .file = "gw.conf", .line = 12};
	static const struct {
		int variant;
		const char *want;
	} cases[] = {
	    {0, "issuer 'idp': needs a JWKS or an HMAC secret"},
	    {1, "issuer 'idp': HMAC secret is 16 bytes; 32 to 1024 are accepted"},
	    {2, "issuer 'idp': hmac_kid \"ec\" is also a kid in the JWKS"},
	    {3, "issuer 'idp': has hmac_kid but no HMAC secret"},
	    {4, "issuer 'idp': has two sources for the same keys"},
	    {5, "issuer 'idp': needs both an issuer and an audience"},
	    {6, "not base64url text"},
	};
	int fd = mkstemp(path);
	CU_ASSERT_FATAL(fd >= 0);
	CU_ASSERT_EQUAL(write(fd, "AAAA+AAA\n", 9), 9);
	close(fd);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct authn_issuer_opts is = base;
		struct seen seen = {0};
		struct authn_keys_opts o = {
		    .issuers = &is, .n_issuers = 1, .report = record, .report_arg = &seen};
		struct authn_keys *k = NULL;
		char err[512] = "";
		int v = cases[i].variant;
		if (v == 1 || v == 2) {
			is.hmac_secret = secret;
			is.hmac_secret_len = v == 1 ? 16 : 32;
		}
		if (v == 2 || v == 4) {
			is.jwks_json = jwks;
			is.jwks_json_len = strlen(jwks);
		}
		is.hmac_kid = v == 2 ? "ec" : (v == 3 ? "hs" : NULL);
		is.jwks_file = v == 3 || v == 4 ? "x.json" : NULL;
		is.audience = v == 5 ? "" : "a";
		is.hmac_secret_file = v == 6 ? path : NULL;
		CU_ASSERT_EQUAL(authn_keys_new(&o, &k, err, sizeof(err)), -1);
		CU_ASSERT_PTR_NULL(k);
		CU_ASSERT_EQUAL(seen.calls, 1);
		CU_ASSERT_STRING_EQUAL(seen.file, "gw.conf");
		CU_ASSERT_EQUAL(seen.line, 12);
		CU_ASSERT_STRING_EQUAL(seen.msg, err);
		if (!strstr(err, cases[i].want)) {
			fprintf(stderr, "\n  variant %d: got '%s'", v, err);
			CU_FAIL("wrong message");
		}
	}
	unlink(path);
}

/* Two issuers with one iss, and an HMAC secret read from a file that works. */
static void test_issuers_and_secret_file(void)
{
	char jwks[1100], path[] = "/tmp/gw-hs-XXXXXX", text[128];
	unsigned char secret[32];
	struct authn_keys *k = NULL;
	char err[512];

	snprintf(jwks, sizeof(jwks), "{\"keys\":[%s]}", ec_jwk);
	struct authn_issuer_opts is[2] = {
	    {.name = "a",
	     .issuer = "i",
	     .audience = "x",
	     .jwks_json = jwks,
	     .jwks_json_len = strlen(jwks),
	     .line = 3},
	    {.name = "b",
	     .issuer = "i",
	     .audience = "x",
	     .jwks_json = jwks,
	     .jwks_json_len = strlen(jwks),
	     .line = 4},
	};
	struct authn_keys_opts o = {.issuers = is, .n_issuers = 2};
	CU_ASSERT_EQUAL(authn_keys_new(&o, &k, err, sizeof(err)), -1);
	CU_ASSERT_STRING_EQUAL(err, "issuer \"i\" is configured twice (also at line 3)");

	memset(secret, 0x5a, sizeof(secret));
	size_t n = authn_b64url_encode(secret, sizeof(secret), text, sizeof(text));
	text[n++] = '\n';
	int fd = mkstemp(path);
	CU_ASSERT_FATAL(fd >= 0);
	CU_ASSERT_EQUAL(write(fd, text, n), (ssize_t)n);
	close(fd);
	struct authn_issuer_opts hs = {.issuer = "i", .audience = "x", .hmac_secret_file = path};
	o.issuers = &hs;
	o.n_issuers = 1;
	CU_ASSERT_EQUAL_FATAL(authn_keys_new(&o, &k, err, sizeof(err)), 0);
	const struct authn_issuer *iss = authn_keys_issuer_at(k, 0);
	CU_ASSERT_EQUAL_FATAL(iss->n_keys, 1);
	CU_ASSERT_EQUAL(iss->keys[0].raw_len, 32);
	CU_ASSERT_EQUAL(memcmp(iss->keys[0].raw, secret, 32), 0);
	CU_ASSERT_EQUAL(iss->keys[0].algs, AUTHN_ALG_BIT(AUTHN_ALG_HS256));
	CU_ASSERT_PTR_NULL(iss->keys[0].kid);
	authn_keys_free(k);
	unlink(path);
}

/* Strict base64url: the decoder the token and JWK paths share. */
static void test_b64url(void)
{
	static const struct {
		const char *in;
		int rc;
		size_t len;
	} cases[] = {
	    {"", 0, 0},      {"QQ", 0, 1},    {"QUI", 0, 2},    {"QUJD", 0, 3},
	    {"QQ==", -1, 0}, {"QQ=", -1, 0},  {"Q", -1, 0},     {"QR", -1, 0}, /* unused bits */
	    {"Q+/A", -1, 0}, {"QU I", -1, 0}, {"QUI\n", -1, 0}, {"-_-_", 0, 3},
	};
	unsigned char out[16];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t n = 99;
		int rc =
		    authn_b64url_decode_to(cases[i].in, strlen(cases[i].in), out, sizeof(out), &n);
		CU_ASSERT_EQUAL(rc, cases[i].rc);
		if (rc == 0)
			CU_ASSERT_EQUAL(n, cases[i].len);
	}
	CU_ASSERT_EQUAL(authn_b64url_decode_to("QUJD", 4, out, 2, &(size_t){0}), -1);
}

CU_SUITE(authn_jwt_keys, suite_init, suite_clean, {"jwks_table", test_jwks_table},
         {"issuer_settings", test_issuer_settings},
         {"issuers_and_secret_file", test_issuers_and_secret_file}, {"b64url", test_b64url})
