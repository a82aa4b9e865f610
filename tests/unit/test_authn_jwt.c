/*
 * JWT verification: one table of tokens minted here with OpenSSL and libsodium, each
 * with the exact status it must get. Time is fixed (NOW) and every issuer has the
 * default leeway of 60 seconds, so the boundaries below are exact.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/pem.h>
#include <openssl/x509.h>

#include "authn_int.h"
#include "cu.h"
#include "test_authn_jwt_mint.h"

#define NOW ((time_t)1700000000)
#define ISS "https://idp.example"
#define AUD "gateway"
#define GOOD                                                                                       \
	"{\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"sub\":\"alice\",\"exp\":1700000600,"           \
	"\"iat\":1700000000,\"jti\":\"j1\",\"scope\":\"read write\"}"
#define CLAIMS(extra) "{\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"sub\":\"alice\"" extra "}"

enum { K_ES256, K_ES384, K_RSA, K_RSAPS, K_ED, K_HS, K_PEM, K_DER, K_OTHER, K_MAX };

static struct mint_key *mk[K_MAX];
static struct authn_keys *keys;

/* ---- fixture ---- */

/* HS256 "keys" whose secret is the RSA public key, as the classic confusion attack uses. */
static int confusion_keys(void)
{
	unsigned char *der = NULL;
	BIO *b = BIO_new(BIO_s_mem());
	char *pem = NULL;
	int dl = i2d_PUBKEY(mk[K_RSA]->pkey, &der);

	mk[K_PEM] = mint_key_new(AUTHN_ALG_HS256, "rsa");
	mk[K_DER] = mint_key_new(AUTHN_ALG_HS256, "rsa");
	if (!b || dl <= 0 || !mk[K_PEM] || !mk[K_DER] || !PEM_write_bio_PUBKEY(b, mk[K_RSA]->pkey))
		return -1;
	long pl = BIO_get_mem_data(b, &pem);
	memcpy(mk[K_PEM]->secret, pem, (size_t)pl);
	mk[K_PEM]->secret_len = (size_t)pl;
	memcpy(mk[K_DER]->secret, der, (size_t)dl);
	mk[K_DER]->secret_len = (size_t)dl;
	OPENSSL_free(der);
	BIO_free(b);
	return 0;
}

static int suite_init(void)
{
	static const struct {
		enum authn_alg alg;
		const char *kid, *jwk_alg;
	} spec[] = {
	    [K_ES256] = {AUTHN_ALG_ES256, "ec256", NULL},
	    [K_ES384] = {AUTHN_ALG_ES384, "ec384", "ES384"},
	    [K_RSA] = {AUTHN_ALG_RS256, "rsa", NULL},
	    [K_RSAPS] = {AUTHN_ALG_PS256, "rsaps", "PS256"},
	    [K_ED] = {AUTHN_ALG_EDDSA, "ed", "EdDSA"},
	    [K_HS] = {AUTHN_ALG_HS256, "hs", NULL},
	};
	char jwks[16384] = "{\"keys\":[", jwk[4096], other[4200];

	for (int i = 0; i <= K_HS; i++) {
		if (!(mk[i] = mint_key_new(spec[i].alg, spec[i].kid)))
			return -1;
		if (i == K_HS)
			continue;
		if (mint_jwk(mk[i], spec[i].jwk_alg, jwk, sizeof(jwk)) < 0)
			return -1;
		strcat(jwks, jwk);
		strcat(jwks, ",");
	}
	/* Keys the verifier must skip: encryption use, and an algorithm it does not do. */
	strcat(jwks,
	       "{\"kty\":\"EC\",\"crv\":\"P-521\",\"kid\":\"p521\",\"x\":\"AA\",\"y\":\"AA\"},"
	       "{\"kty\":\"RSA\",\"kid\":\"rs512\",\"alg\":\"RS512\",\"n\":\"AQAB\",\"e\":\"AQAB\"}"
	       "]}");
	mk[K_OTHER] = mint_key_new(AUTHN_ALG_ES256, "other");
	if (!mk[K_OTHER] || confusion_keys() < 0 ||
	    mint_jwk(mk[K_OTHER], NULL, jwk, sizeof(jwk)) < 0)
		return -1;
	snprintf(other, sizeof(other), "{\"keys\":[%s]}", jwk);
	struct authn_issuer_opts is[2] = {
	    {.issuer = ISS,
	     .audience = AUD,
	     .jwks_json = jwks,
	     .jwks_json_len = strlen(jwks),
	     .hmac_secret = mk[K_HS]->secret,
	     .hmac_secret_len = 32,
	     .hmac_kid = "hs",
	     .leeway = AUTHN_LEEWAY_DEFAULT},
	    {.issuer = "https://other.example",
	     .audience = AUD,
	     .jwks_json = other,
	     .jwks_json_len = strlen(other),
	     .leeway = AUTHN_LEEWAY_DEFAULT},
	};
	struct authn_keys_opts o = {.issuers = is, .n_issuers = 2};
	char err[512];
	if (authn_keys_new(&o, &keys, err, sizeof(err)) < 0) {
		fprintf(stderr, "authn_keys_new: %s\n", err);
		return -1;
	}
	return 0;
}

static int suite_clean(void)
{
	for (int i = 0; i < K_MAX; i++)
		mint_key_free(mk[i]);
	authn_keys_free(keys);
	return 0;
}

/* ---- mutations of a good token ---- */

enum mutation {
	M_NONE,
	M_FLIP_SIG,       /* one bit of the decoded signature */
	M_TAMPER_PAYLOAD, /* other claims, same signature */
	M_PAD_SIG,        /* "==" padding after the signature */
	M_PAD_HEADER,     /* "=" after the header */
	M_PLUS,           /* a '+' (standard alphabet) in the signature */
	M_SLASH,          /* a '/' in the signature */
	M_STRAY,          /* a '*' inside the payload */
	M_SPACE,          /* a space inside the payload */
	M_DER,            /* ECDSA signature in DER instead of r||s */
	M_R_ZERO,
	M_S_ZERO,
	M_R_ORDER, /* r = n */
	M_S_ORDER, /* s = n */
	M_R_ABOVE, /* r = n + 1 (fits 32 bytes) */
	M_TRUNC_SIG,
	M_EXTRA_PART,
	M_NO_SIG,
};

static const unsigned char p256_order[32] = {
    0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51};

/* Inserts s at position pos of *t (reallocating). */
static void str_insert(char **t, size_t pos, const char *s)
{
	size_t n = strlen(*t), sl = strlen(s);
	char *r = malloc(n + sl + 1);
	memcpy(r, *t, pos);
	memcpy(r + pos, s, sl);
	memcpy(r + pos + sl, *t + pos, n - pos + 1);
	free(*t);
	*t = r;
}

/* Rewrites the signature segment of *t through f on its decoded bytes. */
static void sig_rewrite(char **t, void (*f)(unsigned char *sig, size_t *len))
{
	char *dot = strrchr(*t, '.');
	unsigned char sig[1100];
	size_t n = 0;
	CU_ASSERT_EQUAL_FATAL(
	    authn_b64url_decode_to(dot + 1, strlen(dot + 1), sig, sizeof(sig), &n), 0);
	f(sig, &n);
	size_t pre = (size_t)(dot + 1 - *t);
	char *r = malloc(pre + 2 * n + 8);
	memcpy(r, *t, pre);
	mint_b64(sig, n, r + pre, 2 * n + 8);
	free(*t);
	*t = r;
}

static void f_flip(unsigned char *s, size_t *n)
{
	s[*n / 2] ^= 0x01;
}
static void f_r_zero(unsigned char *s, size_t *n)
{
	memset(s, 0, 32);
	(void)n;
}
static void f_s_zero(unsigned char *s, size_t *n)
{
	memset(s + 32, 0, 32);
	(void)n;
}
static void f_r_order(unsigned char *s, size_t *n)
{
	memcpy(s, p256_order, 32);
	(void)n;
}
static void f_s_order(unsigned char *s, size_t *n)
{
	memcpy(s + 32, p256_order, 32);
	(void)n;
}
static void f_trunc(unsigned char *s, size_t *n)
{
	(*n)--;
	(void)s;
}
static void f_r_above(unsigned char *s, size_t *n)
{
	memcpy(s, p256_order, 32);
	s[31]++;
	(void)n;
}

static void mutate(char **t, enum mutation m)
{
	char *d1 = strchr(*t, '.'), *d2 = strrchr(*t, '.');
	size_t h = (size_t)(d1 - *t), s = (size_t)(d2 - *t) + 1;
	void (*fs[])(unsigned char *, size_t *) = {
	    [M_FLIP_SIG] = f_flip,   [M_R_ZERO] = f_r_zero,   [M_S_ZERO] = f_s_zero,
	    [M_R_ORDER] = f_r_order, [M_S_ORDER] = f_s_order, [M_R_ABOVE] = f_r_above,
	    [M_TRUNC_SIG] = f_trunc,
	};
	if (m < sizeof(fs) / sizeof(fs[0]) && fs[m]) {
		sig_rewrite(t, fs[m]);
		return;
	}
	switch (m) {
	case M_PAD_SIG:
		str_insert(t, strlen(*t), "==");
		break;
	case M_PAD_HEADER:
		str_insert(t, h, "=");
		break;
	case M_PLUS:
		(*t)[s + 2] = '+';
		break;
	case M_SLASH:
		(*t)[s + 2] = '/';
		break;
	case M_STRAY:
		str_insert(t, h + 3, "*");
		break;
	case M_SPACE:
		str_insert(t, h + 3, " ");
		break;
	case M_EXTRA_PART:
		str_insert(t, strlen(*t), ".e30");
		break;
	case M_NO_SIG:
		(*t)[s] = '\0';
		break;
	case M_TAMPER_PAYLOAD: {
		const char *c = CLAIMS(",\"exp\":1700000600,\"scope\":\"admin\"");
		char p[512];
		mint_b64(c, strlen(c), p, sizeof(p));
		size_t n = strlen(*t);
		char *r = malloc(n + strlen(p) + 2);
		snprintf(r, n + strlen(p) + 2, "%.*s.%s%s", (int)h, *t, p, *t + s - 1);
		free(*t);
		*t = r;
		break;
	}
	default:
		break;
	}
}

/* ---- the table ---- */

struct jwt_case {
	const char *name;
	int key;            /* signing key (K_*) */
	int alg;            /* signing alg; -1 = the key's own */
	const char *header; /* NULL = {"alg": key alg, "kid": key kid} */
	const char *claims; /* NULL = GOOD */
	enum mutation m;
	enum authn_status want;
};

#define HDR(alg, kid) "{\"alg\":\"" alg "\",\"kid\":\"" kid "\"}"

static const struct jwt_case cases[] = {
    {"ES256 valid", K_ES256, -1, NULL, NULL, M_NONE, AUTHN_OK},
    {"ES384 valid", K_ES384, -1, NULL, NULL, M_NONE, AUTHN_OK},
    {"RS256 valid", K_RSA, -1, NULL, NULL, M_NONE, AUTHN_OK},
    {"PS256 valid (RSA key without alg)", K_RSA, AUTHN_ALG_PS256, HDR("PS256", "rsa"), NULL, M_NONE,
     AUTHN_OK},
    {"PS256 valid (key alg PS256)", K_RSAPS, -1, NULL, NULL, M_NONE, AUTHN_OK},
    {"EdDSA valid", K_ED, -1, NULL, NULL, M_NONE, AUTHN_OK},
    {"HS256 valid (configured secret)", K_HS, -1, NULL, NULL, M_NONE, AUTHN_OK},
    {"expired beyond leeway", K_ES256, -1, NULL, CLAIMS(",\"exp\":1699999940"), M_NONE,
     AUTHN_EXPIRED},
    {"expired within leeway", K_ES256, -1, NULL, CLAIMS(",\"exp\":1699999941"), M_NONE, AUTHN_OK},
    {"nbf in the future", K_ES256, -1, NULL, CLAIMS(",\"exp\":1700000600,\"nbf\":1700000061"),
     M_NONE, AUTHN_NOT_YET_VALID},
    {"nbf within leeway", K_ES256, -1, NULL, CLAIMS(",\"exp\":1700000600,\"nbf\":1700000060"),
     M_NONE, AUTHN_OK},
    {"iat in the future", K_ES256, -1, NULL, CLAIMS(",\"exp\":1700000600,\"iat\":1700000061"),
     M_NONE, AUTHN_NOT_YET_VALID},
    {"wrong iss", K_ES256, -1, NULL,
     "{\"iss\":\"https://idp.example/\",\"aud\":\"gateway\",\"exp\":1700000600}", M_NONE,
     AUTHN_BAD_ISSUER},
    {"missing iss", K_ES256, -1, NULL, "{\"aud\":\"gateway\",\"exp\":1700000600}", M_NONE,
     AUTHN_BAD_ISSUER},
    {"wrong aud", K_ES256, -1, NULL,
     "{\"iss\":\"" ISS "\",\"aud\":\"gateway2\",\"exp\":1700000600}", M_NONE, AUTHN_BAD_AUDIENCE},
    {"aud array with ours", K_ES256, -1, NULL,
     "{\"iss\":\"" ISS "\",\"aud\":[\"x\",\"gateway\"],\"exp\":1700000600}", M_NONE, AUTHN_OK},
    {"aud array without ours", K_ES256, -1, NULL,
     "{\"iss\":\"" ISS "\",\"aud\":[\"x\"],\"exp\":1700000600}", M_NONE, AUTHN_BAD_AUDIENCE},
    {"aud missing", K_ES256, -1, NULL, "{\"iss\":\"" ISS "\",\"exp\":1700000600}", M_NONE,
     AUTHN_BAD_AUDIENCE},
    {"aud a number", K_ES256, -1, NULL, "{\"iss\":\"" ISS "\",\"aud\":1,\"exp\":1700000600}",
     M_NONE, AUTHN_MALFORMED},
    {"missing exp", K_ES256, -1, NULL, CLAIMS(""), M_NONE, AUTHN_MISSING_EXP},
    {"exp a string", K_ES256, -1, NULL, CLAIMS(",\"exp\":\"1700000600\""), M_NONE, AUTHN_MALFORMED},
    {"alg none", K_ES256, -1, "{\"alg\":\"none\"}", NULL, M_NO_SIG, AUTHN_ALG_NONE},
    {"alg NONE", K_ES256, -1, "{\"alg\":\"NONE\",\"kid\":\"ec256\"}", NULL, M_NONE, AUTHN_ALG_NONE},
    {"alg unsupported", K_ES256, -1, HDR("RS512", "rs512"), NULL, M_NONE, AUTHN_UNSUPPORTED_ALG},
    {"HS256 with RSA public key PEM as secret", K_PEM, -1, HDR("HS256", "rsa"), NULL, M_NONE,
     AUTHN_ALG_MISMATCH},
    {"HS256 with RSA public key DER as secret", K_DER, -1, HDR("HS256", "rsa"), NULL, M_NONE,
     AUTHN_ALG_MISMATCH},
    {"HS256 with EC key kid", K_HS, -1, HDR("HS256", "ec256"), NULL, M_NONE, AUTHN_ALG_MISMATCH},
    {"RS256 on a PS256-only key", K_RSAPS, AUTHN_ALG_RS256, HDR("RS256", "rsaps"), NULL, M_NONE,
     AUTHN_ALG_MISMATCH},
    {"ES384 alg on a P-256 key", K_ES384, -1, HDR("ES384", "ec256"), NULL, M_NONE,
     AUTHN_ALG_MISMATCH},
    {"unknown kid", K_ES256, -1, HDR("ES256", "nope"), NULL, M_NONE, AUTHN_UNKNOWN_KID},
    {"no kid, several keys", K_ES256, -1, "{\"alg\":\"ES256\"}", NULL, M_NONE, AUTHN_UNKNOWN_KID},
    {"kid of another issuer", K_OTHER, -1, HDR("ES256", "other"), NULL, M_NONE, AUTHN_UNKNOWN_KID},
    {"kid of a skipped key", K_ES256, -1, HDR("ES256", "p521"), NULL, M_NONE, AUTHN_UNKNOWN_KID},
    {"kid not a string", K_ES256, -1, "{\"alg\":\"ES256\",\"kid\":1}", NULL, M_NONE,
     AUTHN_MALFORMED},
    {"ES256 flipped signature bit", K_ES256, -1, NULL, NULL, M_FLIP_SIG, AUTHN_BAD_SIGNATURE},
    {"RS256 flipped signature bit", K_RSA, -1, NULL, NULL, M_FLIP_SIG, AUTHN_BAD_SIGNATURE},
    {"PS256 flipped signature bit", K_RSAPS, -1, NULL, NULL, M_FLIP_SIG, AUTHN_BAD_SIGNATURE},
    {"EdDSA flipped signature bit", K_ED, -1, NULL, NULL, M_FLIP_SIG, AUTHN_BAD_SIGNATURE},
    {"HS256 flipped signature bit", K_HS, -1, NULL, NULL, M_FLIP_SIG, AUTHN_BAD_SIGNATURE},
    {"RS256 signature one byte short", K_RSA, -1, NULL, NULL, M_TRUNC_SIG, AUTHN_BAD_SIGNATURE},
    {"ES256 tampered payload", K_ES256, -1, NULL, NULL, M_TAMPER_PAYLOAD, AUTHN_BAD_SIGNATURE},
    {"EdDSA tampered payload", K_ED, -1, NULL, NULL, M_TAMPER_PAYLOAD, AUTHN_BAD_SIGNATURE},
    {"unknown crit", K_ES256, -1, "{\"alg\":\"ES256\",\"kid\":\"ec256\",\"crit\":[\"x\"],\"x\":1}",
     NULL, M_NONE, AUTHN_UNKNOWN_CRIT},
    {"crit of a registered name", K_ES256, -1,
     "{\"alg\":\"ES256\",\"kid\":\"ec256\",\"crit\":[\"exp\"]}", NULL, M_NONE, AUTHN_UNKNOWN_CRIT},
    {"padding after signature", K_ES256, -1, NULL, NULL, M_PAD_SIG, AUTHN_MALFORMED},
    {"padding after header", K_ES256, -1, NULL, NULL, M_PAD_HEADER, AUTHN_MALFORMED},
    {"'+' in signature", K_ES256, -1, NULL, NULL, M_PLUS, AUTHN_MALFORMED},
    {"'/' in signature", K_ES256, -1, NULL, NULL, M_SLASH, AUTHN_MALFORMED},
    {"stray '*' in payload", K_ES256, -1, NULL, NULL, M_STRAY, AUTHN_MALFORMED},
    {"space in payload", K_ES256, -1, NULL, NULL, M_SPACE, AUTHN_MALFORMED},
    {"four parts", K_ES256, -1, NULL, NULL, M_EXTRA_PART, AUTHN_MALFORMED},
    {"ES256 r = 0", K_ES256, -1, NULL, NULL, M_R_ZERO, AUTHN_BAD_SIGNATURE},
    {"ES256 s = 0", K_ES256, -1, NULL, NULL, M_S_ZERO, AUTHN_BAD_SIGNATURE},
    {"ES256 r = n", K_ES256, -1, NULL, NULL, M_R_ORDER, AUTHN_BAD_SIGNATURE},
    {"ES256 s = n", K_ES256, -1, NULL, NULL, M_S_ORDER, AUTHN_BAD_SIGNATURE},
    {"ES256 r = n + 1", K_ES256, -1, NULL, NULL, M_R_ABOVE, AUTHN_BAD_SIGNATURE},
    {"ES256 DER signature", K_ES256, -1, NULL, NULL, M_DER, AUTHN_BAD_SIGNATURE},
    {"duplicate key in header", K_ES256, -1,
     "{\"alg\":\"ES256\",\"kid\":\"ec256\",\"alg\":\"none\"}", NULL, M_NONE, AUTHN_MALFORMED},
    {"duplicate key in claims", K_ES256, -1, NULL, CLAIMS(",\"exp\":1700000600,\"sub\":\"admin\""),
     M_NONE, AUTHN_MALFORMED},
    {"header not an object", K_ES256, -1, "[\"ES256\"]", NULL, M_NONE, AUTHN_MALFORMED},
    {"claims not an object", K_ES256, -1, NULL, "[1]", M_NONE, AUTHN_MALFORMED},
    {"sub with a newline", K_ES256, -1, NULL,
     "{\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"exp\":1700000600,\"sub\":\"a\\nb\"}", M_NONE,
     AUTHN_MALFORMED},
    {"scope a number", K_ES256, -1, NULL, CLAIMS(",\"exp\":1700000600,\"scope\":7"), M_NONE,
     AUTHN_MALFORMED},
    {"cnf not an object", K_ES256, -1, NULL, CLAIMS(",\"exp\":1700000600,\"cnf\":\"x\""), M_NONE,
     AUTHN_MALFORMED},
};

/* Mints c's token, mutated; caller frees. */
static char *case_token(const struct jwt_case *c)
{
	const struct mint_key *k = mk[c->key];
	enum authn_alg alg = c->alg < 0 ? k->alg : (enum authn_alg)c->alg;
	char hdr[256];

	if (c->header)
		snprintf(hdr, sizeof(hdr), "%s", c->header);
	else
		mint_header(k, hdr, sizeof(hdr));
	char *t = mint_token_ex(k, alg, hdr, c->claims ? c->claims : GOOD, c->m == M_DER);
	CU_ASSERT_PTR_NOT_NULL_FATAL(t);
	mutate(&t, c->m);
	return t;
}

static void test_table(void)
{
	int failed = 0;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct authn_token_id id;
		char *t = case_token(&cases[i]);
		enum authn_status st =
		    authn_token_verify(keys, t, strlen(t), NOW, NULL, false, &id);
		if (st != cases[i].want) {
			fprintf(stderr, "\n  case '%s': got %s, want %s", cases[i].name,
			        authn_status_str(st), authn_status_str(cases[i].want));
			failed++;
		}
		/* Refused tokens leave nothing behind; accepted ones carry the identity. */
		if (st != AUTHN_OK) {
			CU_ASSERT(id.iss == NULL && id.sub == NULL && id.n_scopes == 0);
		} else {
			CU_ASSERT(id.kind == AUTHN_CRED_JWT && strcmp(id.iss, ISS) == 0);
		}
		authn_token_id_clear(&id);
		free(t);
	}
	CU_ASSERT_EQUAL(failed, 0);
}

/* Everything verified reaches the identity; the scope claim splits on spaces. */
static void test_identity(void)
{
	struct authn_token_id id;
	char hdr[256];
	mint_header(mk[K_ED], hdr, sizeof(hdr));
	char *t = mint_token(mk[K_ED], hdr, GOOD);

	CU_ASSERT_EQUAL_FATAL(authn_token_verify(keys, t, strlen(t), NOW, NULL, false, &id),
	                      AUTHN_OK);
	CU_ASSERT_EQUAL(id.kind, AUTHN_CRED_JWT);
	CU_ASSERT_STRING_EQUAL(id.iss, ISS);
	CU_ASSERT_STRING_EQUAL(id.sub, "alice");
	CU_ASSERT_STRING_EQUAL(id.jti, "j1");
	CU_ASSERT_STRING_EQUAL(id.aud, AUD);
	CU_ASSERT_EQUAL(id.exp, 1700000600);
	CU_ASSERT_FALSE(id.cert_bound);
	CU_ASSERT_EQUAL_FATAL(id.n_scopes, 2);
	CU_ASSERT_STRING_EQUAL(id.scopes[0], "read");
	CU_ASSERT_STRING_EQUAL(id.scopes[1], "write");
	struct authn_token_id copy;
	CU_ASSERT_EQUAL_FATAL(authn_token_id_copy(&copy, &id), 0);
	CU_ASSERT_STRING_EQUAL(copy.scopes[1], "write");
	CU_ASSERT_PTR_NOT_EQUAL(copy.scopes[1], id.scopes[1]);
	authn_token_id_clear(&copy);
	authn_token_id_clear(&id);
	authn_token_id_clear(&id); /* twice is fine */
	free(t);
}

/* Size limits, empty input and a missing key set. */
static void test_limits(void)
{
	struct authn_token_id id;
	char hdr[256], claims[10000];
	mint_header(mk[K_ES256], hdr, sizeof(hdr));
	snprintf(claims, sizeof(claims), CLAIMS(",\"exp\":1700000600,\"pad\":\"%07000d\""), 0);
	char *t = mint_token(mk[K_ES256], hdr, claims);

	CU_ASSERT(strlen(t) > 8192);
	CU_ASSERT_EQUAL(authn_token_verify(keys, t, strlen(t), NOW, NULL, false, &id),
	                AUTHN_TOKEN_TOO_LARGE);
	CU_ASSERT_EQUAL(authn_token_verify(keys, "", 0, NOW, NULL, false, &id),
	                AUTHN_NO_CREDENTIAL);
	CU_ASSERT_EQUAL(authn_token_verify(NULL, t, strlen(t), NOW, NULL, false, &id),
	                AUTHN_BAD_ISSUER);
	CU_ASSERT_EQUAL(
	    authn_token_verify(keys, "{\"payload\":\"e30\"}", 17, NOW, NULL, false, &id),
	    AUTHN_MALFORMED);
	free(t);
	/* The scp/groups style: an array of strings. */
	snprintf(claims, sizeof(claims), CLAIMS(",\"exp\":1700000600,\"scope\":[\"a\",\"b c\"]"));
	t = mint_token(mk[K_ES256], hdr, claims);
	CU_ASSERT_EQUAL_FATAL(authn_token_verify(keys, t, strlen(t), NOW, NULL, false, &id),
	                      AUTHN_OK);
	CU_ASSERT_EQUAL(id.n_scopes, 2);
	CU_ASSERT_STRING_EQUAL(id.scopes[1], "b c");
	authn_token_id_clear(&id);
	free(t);
}

/* RFC 8705: a token bound to certificate A passes with A only, whatever the route asks. */
static void test_bound_token(void)
{
	struct authn_cert_id a = {0}, b = {0};
	char x5t[64], claims[512], hdr[256];
	struct authn_token_id id;

	memset(a.sha256, 0xa1, 32);
	memset(b.sha256, 0xb2, 32);
	mint_b64(a.sha256, 32, x5t, sizeof(x5t));
	snprintf(claims, sizeof(claims),
	         CLAIMS(",\"exp\":1700000600,\"cnf\":{\"x5t#S256\":\"%s\"}"), x5t);
	mint_header(mk[K_ES256], hdr, sizeof(hdr));
	char *bound = mint_token(mk[K_ES256], hdr, claims);
	char *plain = mint_token(mk[K_ES256], hdr, GOOD);
	size_t bl = strlen(bound), pl = strlen(plain);

	CU_ASSERT_EQUAL_FATAL(authn_token_verify(keys, bound, bl, NOW, &a, true, &id), AUTHN_OK);
	CU_ASSERT_TRUE(id.cert_bound);
	CU_ASSERT_EQUAL(memcmp(id.x5t_s256, a.sha256, 32), 0);
	authn_token_id_clear(&id);
	CU_ASSERT_EQUAL(authn_token_verify(keys, bound, bl, NOW, &a, false, &id), AUTHN_OK);
	authn_token_id_clear(&id);
	CU_ASSERT_EQUAL(authn_token_verify(keys, bound, bl, NOW, &b, true, &id), AUTHN_NOT_BOUND);
	CU_ASSERT_EQUAL(authn_token_verify(keys, bound, bl, NOW, &b, false, &id), AUTHN_NOT_BOUND);
	CU_ASSERT_EQUAL(authn_token_verify(keys, bound, bl, NOW, NULL, false, &id),
	                AUTHN_NOT_BOUND);
	CU_ASSERT_EQUAL(authn_token_verify(keys, plain, pl, NOW, &a, true, &id), AUTHN_NOT_BOUND);
	CU_ASSERT_EQUAL(authn_token_verify(keys, plain, pl, NOW, &a, false, &id), AUTHN_OK);
	authn_token_id_clear(&id);
	CU_ASSERT_STRING_EQUAL(authn_status_str(AUTHN_NOT_BOUND), "token_not_bound_to_certificate");
	free(bound);
	free(plain);
}

/* Every status has its own stable token. */
static void test_status_names(void)
{
	for (int i = 0; i < AUTHN_STATUS_MAX; i++) {
		CU_ASSERT_STRING_NOT_EQUAL(authn_status_str((enum authn_status)i), "unknown");
		for (int j = 0; j < i; j++)
			CU_ASSERT_STRING_NOT_EQUAL(authn_status_str((enum authn_status)i),
			                           authn_status_str((enum authn_status)j));
	}
	CU_ASSERT_STRING_EQUAL(authn_status_str(AUTHN_STATUS_MAX), "unknown");
}

CU_SUITE(authn_jwt, suite_init, suite_clean, {"table", test_table}, {"identity", test_identity},
         {"limits", test_limits}, {"bound_token", test_bound_token},
         {"status_names", test_status_names})
