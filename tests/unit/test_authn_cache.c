/*
 * Token cache: a hit costs no signature verification (counted by the key set), an entry
 * is never used at or after its exp, the size bound evicts the least recently used entry,
 * the certificate binding is checked on every hit, and a new key set empties the cache.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "authn_int.h"
#include "cu.h"
#include "test_authn_jwt_mint.h"

#define NOW ((time_t)1700000000)
#define ISS "https://idp.example"

static struct mint_key *key;
static struct authn_keys *keys, *keys2;

static int build(struct authn_keys **out)
{
	char jwk[1024], jwks[1200], err[256];
	if (mint_jwk(key, NULL, jwk, sizeof(jwk)) < 0)
		return -1;
	snprintf(jwks, sizeof(jwks), "{\"keys\":[%s]}", jwk);
	struct authn_issuer_opts is = {.issuer = ISS,
	                               .audience = "gw",
	                               .jwks_json = jwks,
	                               .jwks_json_len = strlen(jwks),
	                               .leeway = 60};
	struct authn_keys_opts o = {.issuers = &is, .n_issuers = 1};
	return authn_keys_new(&o, out, err, sizeof(err));
}

static int suite_init(void)
{
	key = mint_key_new(AUTHN_ALG_EDDSA, "ed");
	return key && build(&keys) == 0 && build(&keys2) == 0 ? 0 : -1;
}

static int suite_clean(void)
{
	authn_keys_free(keys);
	authn_keys_free(keys2);
	mint_key_free(key);
	return 0;
}

/* A token with its own jti (so each is distinct), exp and optional binding. */
static char *token(int jti, long exp, const unsigned char *bind)
{
	char claims[512], hdr[128], cnf[128] = "", x5t[64];

	if (bind) {
		mint_b64(bind, 32, x5t, sizeof(x5t));
		snprintf(cnf, sizeof(cnf), ",\"cnf\":{\"x5t#S256\":\"%s\"}", x5t);
	}
	snprintf(claims, sizeof(claims),
	         "{\"iss\":\"" ISS
	         "\",\"aud\":\"gw\",\"sub\":\"s%d\",\"jti\":\"%d\",\"exp\":%ld%s}",
	         jti, jti, exp, cnf);
	mint_header(key, hdr, sizeof(hdr));
	return mint_token(key, hdr, claims);
}

static enum authn_status check(struct authn_cache *c, const char *t, time_t now,
                               const struct authn_cert_id *cert, bool bound)
{
	struct authn_token_id id;
	enum authn_status st = authn_token_check(keys, c, t, strlen(t), now, cert, bound, &id);
	authn_token_id_clear(&id);
	return st;
}

static bool cached(struct authn_cache *c, const char *t, time_t now)
{
	struct authn_token_id id;
	enum authn_status st;
	bool hit = authn_cache_lookup(c, keys, t, strlen(t), now, NULL, false, &id, &st);
	authn_token_id_clear(&id);
	return hit && st == AUTHN_OK;
}

/* The second check of a token is answered without a signature verification. */
static void test_hit_skips_verification(void)
{
	struct authn_cache *c = authn_cache_new(8);
	char *t = token(1, NOW + 600, NULL);
	struct authn_token_id id;
	unsigned long before = authn_keys_verify_count(keys);

	CU_ASSERT_EQUAL(check(c, t, NOW, NULL, false), AUTHN_OK);
	CU_ASSERT_EQUAL(authn_keys_verify_count(keys), before + 1);
	CU_ASSERT_EQUAL(authn_token_check(keys, c, t, strlen(t), NOW + 1, NULL, false, &id),
	                AUTHN_OK);
	CU_ASSERT_EQUAL(authn_keys_verify_count(keys), before + 1);
	CU_ASSERT_STRING_EQUAL(id.sub, "s1");
	CU_ASSERT_EQUAL(id.exp, NOW + 600);
	authn_token_id_clear(&id);
	/* Without a cache every check verifies. */
	CU_ASSERT_EQUAL(check(NULL, t, NOW, NULL, false), AUTHN_OK);
	CU_ASSERT_EQUAL(authn_keys_verify_count(keys), before + 2);
	/* A refused token is not remembered. */
	t[strlen(t) - 2] = t[strlen(t) - 2] == 'A' ? 'B' : 'A';
	CU_ASSERT_EQUAL(check(c, t, NOW, NULL, false), AUTHN_BAD_SIGNATURE);
	CU_ASSERT_EQUAL(check(c, t, NOW, NULL, false), AUTHN_BAD_SIGNATURE);
	CU_ASSERT_EQUAL(authn_keys_verify_count(keys), before + 4);
	CU_ASSERT_EQUAL(authn_cache_count(c), 1);
	free(t);
	authn_cache_free(c);
}

/* Never an answer from the cache at or after exp, even within the leeway. */
static void test_never_after_exp(void)
{
	struct authn_cache *c = authn_cache_new(8);
	char *t = token(2, NOW + 100, NULL);
	struct authn_token_id id = {0};

	CU_ASSERT_EQUAL(check(c, t, NOW, NULL, false), AUTHN_OK);
	CU_ASSERT_TRUE(cached(c, t, NOW + 99));
	CU_ASSERT_FALSE(cached(c, t, NOW + 100));
	CU_ASSERT_EQUAL(authn_cache_count(c), 0); /* dropped on sight */
	CU_ASSERT_FALSE(cached(c, t, NOW + 5000));
	/* Past exp + leeway, the full verification refuses it, and nothing is cached. */
	CU_ASSERT_EQUAL(check(c, t, NOW + 160, NULL, false), AUTHN_EXPIRED);
	CU_ASSERT_EQUAL(authn_cache_count(c), 0);
	/* Within the leeway the verifier accepts it, but the cache will not keep it. */
	CU_ASSERT_EQUAL(check(c, t, NOW + 150, NULL, false), AUTHN_OK);
	CU_ASSERT_EQUAL(authn_cache_count(c), 0);
	id.exp = NOW;
	CU_ASSERT_EQUAL(authn_cache_insert(c, keys, t, strlen(t), NOW, &id), -1);
	free(t);
	authn_cache_free(c);
}

/* At most max entries; the least recently used goes first. */
static void test_lru_bound(void)
{
	struct authn_cache *c = authn_cache_new(3);
	char *t[5];

	for (int i = 0; i < 5; i++)
		t[i] = token(10 + i, NOW + 600, NULL);
	for (int i = 0; i < 3; i++)
		CU_ASSERT_EQUAL(check(c, t[i], NOW, NULL, false), AUTHN_OK);
	CU_ASSERT_TRUE(cached(c, t[0], NOW)); /* t0 is now the most recent */
	CU_ASSERT_EQUAL(check(c, t[3], NOW, NULL, false), AUTHN_OK);
	CU_ASSERT_EQUAL(authn_cache_count(c), 3);
	CU_ASSERT_FALSE(cached(c, t[1], NOW)); /* the oldest went */
	CU_ASSERT_TRUE(cached(c, t[0], NOW));
	CU_ASSERT_TRUE(cached(c, t[2], NOW));
	CU_ASSERT_TRUE(cached(c, t[3], NOW));
	CU_ASSERT_EQUAL(check(c, t[4], NOW, NULL, false), AUTHN_OK);
	CU_ASSERT_EQUAL(authn_cache_count(c), 3);
	CU_ASSERT_FALSE(cached(c, t[0], NOW));
	for (int i = 0; i < 5; i++)
		free(t[i]);
	authn_cache_free(c);
}

/* A cached bound token still needs its certificate; a new key set starts empty. */
static void test_binding_and_reload(void)
{
	struct authn_cache *c = authn_cache_new(0);
	struct authn_cert_id a = {0}, b = {0};
	memset(a.sha256, 1, 32);
	memset(b.sha256, 2, 32);
	char *t = token(20, NOW + 600, a.sha256), *u = token(21, NOW + 600, NULL);
	unsigned long before = authn_keys_verify_count(keys);

	CU_ASSERT_EQUAL(check(c, t, NOW, &a, true), AUTHN_OK);
	CU_ASSERT_EQUAL(check(c, t, NOW, &b, false), AUTHN_NOT_BOUND);
	CU_ASSERT_EQUAL(check(c, t, NOW, NULL, false), AUTHN_NOT_BOUND);
	CU_ASSERT_EQUAL(check(c, t, NOW, &a, false), AUTHN_OK);
	CU_ASSERT_EQUAL(authn_keys_verify_count(keys), before + 1);
	CU_ASSERT_EQUAL(check(c, u, NOW, &a, false), AUTHN_OK);
	CU_ASSERT_EQUAL(check(c, u, NOW, &a, true), AUTHN_NOT_BOUND);
	CU_ASSERT_EQUAL(authn_cache_count(c), 2);
	/* The same tokens against another key set: missed, and the old entries are gone. */
	struct authn_token_id id;
	enum authn_status st;
	CU_ASSERT_FALSE(authn_cache_lookup(c, keys2, u, strlen(u), NOW, &a, false, &id, &st));
	CU_ASSERT_EQUAL(authn_cache_count(c), 0);
	free(t);
	free(u);
	authn_cache_free(c);
	authn_cache_free(NULL);
}

CU_SUITE(authn_cache, suite_init, suite_clean,
         {"hit_skips_verification", test_hit_skips_verification},
         {"never_after_exp", test_never_after_exp}, {"lru_bound", test_lru_bound},
         {"binding_and_reload", test_binding_and_reload})
