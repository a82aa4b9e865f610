/*
 * Project Wycheproof vectors through the very functions tokens use: ECDSA P-256 in the
 * raw r||s form and Ed25519 through authn_sig_verify with keys made by authn_key_from_jwk,
 * and the JWS file through authn_keys_new, authn_jws_parse and authn_jws_verify_sig.
 * Every "valid" case of an algorithm we support must verify, every "invalid" one must
 * not. The vectors live in ../shared/testdata/wycheproof; when absent the tests say so
 * loudly and pass, unless GW_REQUIRE_VECTORS=1 (CI) makes that a failure.
 *
 * Documented deviations in the JWS file, decided by rule rather than by test number:
 *  - a "valid" token with characters outside the base64url alphabet (Wycheproof's
 *    lenient-decoder cases) is refused on purpose: tokens are decoded strictly;
 *  - an "invalid" token byte-identical to a "valid" one of the same group, so checked
 *    with the same key (the vectors lost their distinguishing padding) cannot be both; it is
 * counted as contradictory and must get the same verdict as its valid twin.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "authn_int.h"
#include "cu.h"

struct tally {
	unsigned run, valid_ok, invalid_ok, acceptable, skipped, deviations, contradictory, wrong;
};

static void tally_print(const char *what, const struct tally *t)
{
	fprintf(stderr,
	        "\n  wycheproof %s: %u run: %u valid accepted, %u invalid rejected, %u acceptable, "
	        "%u skipped (algorithm or key we do not support), %u strict-base64url deviations, "
	        "%u contradictory, %u WRONG\n",
	        what, t->run, t->valid_ok, t->invalid_ok, t->acceptable, t->skipped, t->deviations,
	        t->contradictory, t->wrong);
}

/* The vector file, or NULL after saying why (and failing if vectors are required). */
static json_t *vectors_load(const char *name)
{
	const char *shared = cu_shared_dir(), *req = getenv("GW_REQUIRE_VECTORS");
	char path[1024];
	json_error_t je;

	if (shared) {
		snprintf(path, sizeof(path), "%s/wycheproof/%s", shared, name);
		json_t *doc = json_load_file(path, 0, &je);
		if (doc)
			return doc;
	}
	fprintf(stderr, "\n  SKIPPED: wycheproof vectors absent (%s not found under %s)\n", name,
	        shared ? shared : "GW_SHARED_TESTDATA");
	if (req && strcmp(req, "1") == 0)
		CU_FAIL("GW_REQUIRE_VECTORS=1 but the Wycheproof vectors are absent");
	return NULL;
}

/* Hex member to a new buffer; NULL on error. */
static unsigned char *hex_member(const json_t *o, const char *name, size_t *len)
{
	const char *h = json_string_value(json_object_get(o, name));
	size_t n = h ? strlen(h) : 1;
	unsigned char *b = malloc(n / 2 + 1);

	if (!b || n % 2 || authn_hex_decode(h, n, b, n / 2) < 0) {
		free(b);
		return NULL;
	}
	*len = n / 2;
	return b;
}

static bool b64(const unsigned char *in, size_t len, char out[64])
{
	return authn_b64url_encode(in, len, out, 64) > 0;
}

/* A JWK built from a group's raw public key, then made into a key as JWKS keys are. */
static int group_key(const json_t *g, enum authn_alg alg, struct authn_key *key)
{
	const json_t *pk = json_object_get(g, "publicKey");
	unsigned char *x = NULL, *y = NULL, pad[32];
	size_t xl = 0, yl = 0;
	char bx[64], by[64], err[256];
	json_t *jwk = NULL;
	bool skipped = true;
	int rc = -1;

	if (alg == AUTHN_ALG_EDDSA) {
		if ((x = hex_member(pk, "pk", &xl)) && xl == 32 && b64(x, xl, bx))
			jwk = json_pack("{s:s,s:s,s:s}", "kty", "OKP", "crv", "Ed25519", "x", bx);
	} else if ((x = hex_member(pk, "wx", &xl)) && (y = hex_member(pk, "wy", &yl))) {
		/* Wycheproof writes coordinates as signed integers: strip the sign byte and
		 * pad to the full 32 bytes a JWK requires. */
		const unsigned char *px = x + (xl > 32 ? xl - 32 : 0),
		                    *py = y + (yl > 32 ? yl - 32 : 0);
		size_t lx = xl > 32 ? 32 : xl, ly = yl > 32 ? 32 : yl;
		memset(pad, 0, 32);
		memcpy(pad + 32 - lx, px, lx);
		b64(pad, 32, bx);
		memset(pad, 0, 32);
		memcpy(pad + 32 - ly, py, ly);
		b64(pad, 32, by);
		jwk = json_pack("{s:s,s:s,s:s,s:s}", "kty", "EC", "crv", "P-256", "x", bx, "y", by);
	}
	if (jwk && authn_key_from_jwk(jwk, key, &skipped, err, sizeof(err)) == 0 && !skipped)
		rc = 0;
	json_decref(jwk);
	free(x);
	free(y);
	return rc;
}

/* Records one verdict against the expected result. */
static void judge(struct tally *t, const char *file, const json_t *tc, bool accepted)
{
	const char *result = json_string_value(json_object_get(tc, "result"));

	t->run++;
	if (strcmp(result, "acceptable") == 0) {
		t->acceptable++;
		fprintf(stderr, "\n  %s tcId %lld (acceptable): %s", file,
		        (long long)json_integer_value(json_object_get(tc, "tcId")),
		        accepted ? "accepted" : "rejected");
		return;
	}
	bool want = strcmp(result, "valid") == 0;
	if (accepted == want) {
		if (want)
			t->valid_ok++;
		else
			t->invalid_ok++;
		return;
	}
	t->wrong++;
	fprintf(stderr, "\n  %s tcId %lld (%s, %s): %s", file,
	        (long long)json_integer_value(json_object_get(tc, "tcId")), result,
	        json_string_value(json_object_get(tc, "comment")),
	        accepted ? "accepted" : "rejected");
}

/* A signature-vector file (ECDSA P1363 or Ed25519) through authn_sig_verify. */
static void run_sig_file(const char *file, enum authn_alg alg, unsigned min_cases)
{
	json_t *doc = vectors_load(file);
	struct tally t = {0};
	size_t gi, ti;
	json_t *g, *tc;

	if (!doc)
		return;
	json_array_foreach(json_object_get(doc, "testGroups"), gi, g)
	{
		struct authn_key key;
		bool have = group_key(g, alg, &key) == 0;
		json_array_foreach(json_object_get(g, "tests"), ti, tc)
		{
			size_t ml = 0, sl = 0;
			unsigned char *msg = hex_member(tc, "msg", &ml);
			unsigned char *sig = hex_member(tc, "sig", &sl);
			bool ok = have && msg && sig &&
			          authn_sig_verify(alg, &key, msg, ml, sig, sl) == 0;
			judge(&t, file, tc, ok);
			free(msg);
			free(sig);
		}
		if (have)
			authn_key_clear(&key);
	}
	tally_print(file, &t);
	CU_ASSERT_EQUAL(t.wrong, 0);
	CU_ASSERT(t.run >= min_cases);
	CU_ASSERT(t.valid_ok > 0 && t.invalid_ok > 0);
	json_decref(doc);
}

static void test_ecdsa_p256_p1363(void)
{
	run_sig_file("ecdsa_secp256r1_sha256_p1363_test.json", AUTHN_ALG_ES256, 250);
}

static void test_ed25519(void)
{
	run_sig_file("ed25519_test.json", AUTHN_ALG_EDDSA, 140);
}

/* ---- JWS ---- */

/*
 * The key set for one JWS group: its public JWK, or its oct key as a configured HMAC
 * secret (the only way a symmetric key is accepted). NULL when the key is not usable.
 */
static struct authn_keys *jws_group_keys(const json_t *g)
{
	const json_t *pub = json_object_get(g, "public"), *priv = json_object_get(g, "private");
	struct authn_issuer_opts is = {.issuer = "wycheproof", .audience = "wycheproof"};
	struct authn_keys_opts o = {.issuers = &is, .n_issuers = 1};
	struct authn_keys *k = NULL;
	unsigned char *secret = NULL;
	size_t sl = 0;
	char *jwks = NULL, why[512];

	if (pub) {
		json_t *set = json_pack("{s:[O]}", "keys", pub);
		jwks = json_dumps(set, JSON_COMPACT);
		json_decref(set);
		is.jwks_json = jwks;
		is.jwks_json_len = jwks ? strlen(jwks) : 0;
	} else {
		const char *kk = json_string_value(json_object_get(priv, "k"));
		if (kk && authn_b64url_decode(kk, strlen(kk), &secret, &sl) == 0) {
			is.hmac_secret = secret;
			is.hmac_secret_len = sl;
			is.hmac_kid = json_string_value(json_object_get(priv, "kid"));
		}
	}
	if (authn_keys_new(&o, &k, why, sizeof(why)) < 0) {
		fprintf(stderr, "\n  json_web_signature group '%s': key not usable: %s",
		        json_string_value(json_object_get(g, "comment")), why);
		k = NULL;
	}
	free(jwks);
	free(secret);
	return k;
}

/* True if the token uses characters a strict base64url decoder refuses. */
static bool outside_alphabet(const char *s)
{
	return s[strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.")] !=
	       '\0';
}

/* True if an identical token is a "valid" case of the same group (so, the same key). */
static bool valid_twin(const json_t *group, const char *jws)
{
	size_t ti;
	json_t *tc;

	json_array_foreach(json_object_get(group, "tests"), ti, tc)
	{
		const char *o = json_string_value(json_object_get(tc, "jws"));
		const char *r = json_string_value(json_object_get(tc, "result"));
		if (o && r && strcmp(o, jws) == 0 && strcmp(r, "valid") == 0)
			return true;
	}
	return false;
}

/* Our verdict on one token: AUTHN_OK or why it was refused. */
static enum authn_status jws_verdict(const struct authn_keys *k, const char *text)
{
	struct authn_jws j;
	enum authn_status st = authn_jws_parse(text, strlen(text), &j);

	if (st == AUTHN_OK)
		st =
		    k ? authn_jws_verify_sig(k, authn_keys_issuer_at(k, 0), &j) : AUTHN_UNKNOWN_KID;
	authn_jws_clear(&j);
	return st;
}

/* One JWS case, with the deviations of the file comment applied. */
static void jws_case(struct tally *t, const json_t *group, const struct authn_keys *k,
                     const json_t *tc)
{
	const json_t *jv = json_object_get(tc, "jws");
	char *text = json_is_string(jv) ? strdup(json_string_value(jv)) : json_dumps(jv, 0);
	bool valid = strcmp(json_string_value(json_object_get(tc, "result")), "valid") == 0;
	long long id = json_integer_value(json_object_get(tc, "tcId"));
	enum authn_status st = text ? jws_verdict(k, text) : AUTHN_INTERNAL;

	if (valid && (st == AUTHN_UNSUPPORTED_ALG || !k)) {
		t->run++;
		t->skipped++;
	} else if (valid && json_is_string(jv) && outside_alphabet(text)) {
		t->run++;
		t->deviations++;
		fprintf(stderr,
		        "\n  json_web_signature tcId %lld (valid, %s): refused (strict "
		        "base64url)",
		        id, json_string_value(json_object_get(tc, "comment")));
		CU_ASSERT_EQUAL(st, AUTHN_MALFORMED);
	} else if (!valid && json_is_string(jv) && valid_twin(group, text)) {
		t->run++;
		t->contradictory++;
		fprintf(stderr,
		        "\n  json_web_signature tcId %lld (invalid, %s): byte-identical to "
		        "a valid case",
		        id, json_string_value(json_object_get(tc, "comment")));
		CU_ASSERT_EQUAL(st, AUTHN_OK);
	} else {
		judge(t, "json_web_signature", tc, st == AUTHN_OK);
	}
	free(text);
}

static void test_json_web_signature(void)
{
	json_t *doc = vectors_load("json_web_signature_test.json");
	struct tally t = {0};
	size_t gi, ti;
	json_t *g, *tc;

	if (!doc)
		return;
	json_array_foreach(json_object_get(doc, "testGroups"), gi, g)
	{
		struct authn_keys *k = jws_group_keys(g);
		json_array_foreach(json_object_get(g, "tests"), ti, tc) jws_case(&t, g, k, tc);
		authn_keys_free(k);
	}
	tally_print("json_web_signature", &t);
	CU_ASSERT_EQUAL(t.wrong, 0);
	CU_ASSERT(t.run >= 400);
	CU_ASSERT(t.valid_ok >= 10 && t.invalid_ok >= 300);
	/* The deviations are the few cases the file comment names, not a loophole. */
	CU_ASSERT(t.deviations <= 2 && t.contradictory <= 2);
	json_decref(doc);
}

CU_SUITE(authn_wycheproof, NULL, NULL, {"ecdsa_p256_p1363", test_ecdsa_p256_p1363},
         {"ed25519", test_ed25519}, {"json_web_signature", test_json_web_signature})
