/*
 * JWT verification (RFC 7519 over RFC 7515): the issuer is chosen by the exact "iss", the
 * signature is checked with that issuer's keys, then the claims are checked against the
 * issuer's configuration and "now" as given by the caller. Everything that ends up in the
 * token identity is copied and checked for control characters first.
 */
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "authn_int.h"

#define CLAIM_TIME_MAX ((double)253402300799) /* 9999-12-31T23:59:59Z */
#define CLAIM_STR_MAX  1024
#define SCOPE_MAX_LEN  256
#define SCOPES_MAX     256

/* A NumericDate claim: absent (0, *has false), a number (clamped), or -1. */
static int claim_time(const json_t *c, const char *name, bool *has, time_t *out)
{
	const json_t *v = json_object_get(c, name);

	*has = v != NULL;
	*out = 0;
	if (!v)
		return 0;
	if (!json_is_number(v))
		return -1;
	/* Clamped so that adding the leeway cannot overflow; fractions are cut off. */
	double d = json_number_value(v);
	d = d < 0 ? 0 : (d > CLAIM_TIME_MAX ? CLAIM_TIME_MAX : d);
	*out = (time_t)d;
	return 0;
}

/* exp (required), nbf and iat, each with the issuer's leeway for clock skew. */
static enum authn_status claims_time(const struct authn_issuer *is, const json_t *c, time_t now,
                                     time_t *exp)
{
	time_t nbf, iat, lw = (time_t)is->leeway;
	bool has_exp, has_nbf, has_iat;

	if (claim_time(c, "exp", &has_exp, exp) < 0 || claim_time(c, "nbf", &has_nbf, &nbf) < 0 ||
	    claim_time(c, "iat", &has_iat, &iat) < 0)
		return AUTHN_MALFORMED;
	if (!has_exp)
		return AUTHN_MISSING_EXP;
	if (now >= *exp + lw)
		return AUTHN_EXPIRED;
	/* A token issued "in the future" was minted by a skewed or forged clock. */
	if ((has_nbf && nbf > now + lw) || (has_iat && iat > now + lw))
		return AUTHN_NOT_YET_VALID;
	return AUTHN_OK;
}

/* "aud": one string or an array of strings, which must hold the configured audience. */
static enum authn_status claims_audience(const struct authn_issuer *is, const json_t *c)
{
	const json_t *aud = json_object_get(c, "aud");
	enum authn_status st = AUTHN_BAD_AUDIENCE;
	size_t i;
	const json_t *v;

	if (json_is_string(aud))
		return strcmp(json_string_value(aud), is->audience) == 0 ? AUTHN_OK
		                                                         : AUTHN_BAD_AUDIENCE;
	if (aud && !json_is_array(aud))
		return AUTHN_MALFORMED;
	json_array_foreach(aud, i, v)
	{
		if (!json_is_string(v))
			return AUTHN_MALFORMED;
		if (strcmp(json_string_value(v), is->audience) == 0)
			st = AUTHN_OK;
	}
	return st;
}

/*
 * RFC 8705 3.1: a token carrying cnf["x5t#S256"] is only good with the certificate whose
 * SHA-256 that is, on every route, whether or not the route asks for binding; a route
 * that does ask refuses tokens without it.
 */
static enum authn_status claims_binding(const json_t *c, const struct authn_cert_id *cert,
                                        bool require_bound, struct authn_token_id *out)
{
	const json_t *cnf = json_object_get(c, "cnf");
	const json_t *x5t = NULL;
	unsigned char h[32];
	size_t n = 0;

	if (cnf && !json_is_object(cnf))
		return AUTHN_MALFORMED;
	if (cnf)
		x5t = json_object_get(cnf, "x5t#S256");
	if (!x5t)
		return require_bound ? AUTHN_NOT_BOUND : AUTHN_OK;
	if (!json_is_string(x5t) ||
	    authn_b64url_decode_to(json_string_value(x5t), json_string_length(x5t), h, sizeof(h),
	                           &n) < 0 ||
	    n != sizeof(h))
		return AUTHN_MALFORMED;
	if (!cert || sodium_memcmp(h, cert->sha256, sizeof(h)) != 0)
		return AUTHN_NOT_BOUND;
	out->cert_bound = true;
	memcpy(out->x5t_s256, h, sizeof(h));
	return AUTHN_OK;
}

/* Copies an optional string claim after checking it (-1: wrong type, too long, unclean). */
static int claim_str(const json_t *c, const char *name, char **out)
{
	const json_t *v = json_object_get(c, name);

	*out = NULL;
	if (!v)
		return 0;
	if (!json_is_string(v) || json_string_length(v) > CLAIM_STR_MAX ||
	    !authn_text_clean(json_string_value(v), json_string_length(v)))
		return -1;
	*out = strdup(json_string_value(v));
	return *out ? 0 : -2;
}

/* Appends one scope; -1 malformed (empty, long, unclean, too many), -2 out of memory. */
static int scope_push(struct authn_token_id *out, const char *s, size_t n)
{
	if (n == 0 || n > SCOPE_MAX_LEN || out->n_scopes == SCOPES_MAX || !authn_text_clean(s, n))
		return -1;
	char **v = realloc(out->scopes, (out->n_scopes + 1) * sizeof(*v));
	if (!v)
		return -2;
	out->scopes = v;
	v[out->n_scopes] = strndup(s, n);
	if (!v[out->n_scopes])
		return -2;
	out->n_scopes++;
	return 0;
}

/* Scopes: a space-separated string (RFC 8693 "scope") or an array of strings ("scp",
 * "groups"); absent means none. */
static enum authn_status claims_scopes(const struct authn_issuer *is, const json_t *c,
                                       struct authn_token_id *out)
{
	const json_t *v = json_object_get(c, is->scope_claim);
	int rc = 0;
	size_t i;
	const json_t *e;

	if (json_is_string(v)) {
		const char *s = json_string_value(v), *end = s + json_string_length(v);
		while (rc == 0 && s < end) {
			const char *sp = memchr(s, ' ', (size_t)(end - s));
			const char *stop = sp ? sp : end;
			if (stop > s)
				rc = scope_push(out, s, (size_t)(stop - s));
			s = sp ? sp + 1 : end;
		}
	} else if (json_is_array(v)) {
		json_array_foreach(v, i, e)
		{
			if (rc == 0)
				rc = json_is_string(e) ? scope_push(out, json_string_value(e),
				                                    json_string_length(e))
				                       : -1;
		}
	} else if (v) {
		rc = -1;
	}
	return rc == 0 ? AUTHN_OK : (rc == -1 ? AUTHN_MALFORMED : AUTHN_INTERNAL);
}

/* Fills the identity from verified claims. */
static enum authn_status claims_identity(const struct authn_issuer *is, const json_t *c, time_t exp,
                                         struct authn_token_id *out)
{
	int r1 = claim_str(c, "sub", &out->sub), r2 = claim_str(c, "jti", &out->jti);

	if (r1 == -1 || r2 == -1)
		return AUTHN_MALFORMED;
	out->kind = AUTHN_CRED_JWT;
	out->exp = exp;
	out->iss = strdup(is->issuer);
	out->aud = strdup(is->audience);
	if (r1 || r2 || !out->iss || !out->aud)
		return AUTHN_INTERNAL;
	return claims_scopes(is, c, out);
}

/* The claims set: a JSON object without duplicate names (RFC 7519 4). */
static enum authn_status claims_parse(const struct authn_jws *j, json_t **out)
{
	*out = json_loadb((const char *)j->payload, j->payload_len, JSON_REJECT_DUPLICATES, NULL);
	if (json_is_object(*out))
		return AUTHN_OK;
	json_decref(*out);
	*out = NULL;
	return AUTHN_MALFORMED;
}

/* The issuer named by "iss", and its own size limit. */
static enum authn_status claims_issuer(const struct authn_keys *keys, const json_t *c, size_t len,
                                       const struct authn_issuer **out)
{
	const json_t *iss = json_object_get(c, "iss");

	if (iss && !json_is_string(iss))
		return AUTHN_MALFORMED;
	*out = authn_keys_issuer_find(keys, json_string_value(iss));
	if (!*out)
		return AUTHN_BAD_ISSUER;
	return len > (*out)->max_token ? AUTHN_TOKEN_TOO_LARGE : AUTHN_OK;
}

/*
 * Verifies a token; see authn.h. The size is checked before any parsing and the signature
 * before any claim is trusted: claims only choose the issuer (whose keys then must have
 * signed them) until the signature is known to be good.
 */
enum authn_status authn_token_verify(const struct authn_keys *keys, const char *token, size_t len,
                                     time_t now, const struct authn_cert_id *cert,
                                     bool require_bound, struct authn_token_id *out)
{
	struct authn_jws j;
	json_t *claims = NULL;
	const struct authn_issuer *is = NULL;
	time_t exp = 0;
	enum authn_status st;

	memset(out, 0, sizeof(*out));
	memset(&j, 0, sizeof(j));
	if (!token || len == 0)
		return AUTHN_NO_CREDENTIAL;
	if (!authn_keys_has_issuers(keys))
		return AUTHN_BAD_ISSUER;
	if (len > keys->max_token)
		return AUTHN_TOKEN_TOO_LARGE;
	if ((st = authn_jws_parse(token, len, &j)) != AUTHN_OK ||
	    (st = claims_parse(&j, &claims)) != AUTHN_OK ||
	    (st = claims_issuer(keys, claims, len, &is)) != AUTHN_OK ||
	    (st = authn_jws_verify_sig(keys, is, &j)) != AUTHN_OK ||
	    (st = claims_time(is, claims, now, &exp)) != AUTHN_OK ||
	    (st = claims_audience(is, claims)) != AUTHN_OK ||
	    (st = claims_binding(claims, cert, require_bound, out)) != AUTHN_OK)
		goto done;
	st = claims_identity(is, claims, exp, out);
done:
	if (st != AUTHN_OK)
		authn_token_id_clear(out);
	json_decref(claims);
	authn_jws_clear(&j);
	return st;
}

static const char *const status_names[AUTHN_STATUS_MAX] = {
    [AUTHN_OK] = "ok",
    [AUTHN_NO_CREDENTIAL] = "no_credential",
    [AUTHN_MALFORMED] = "malformed",
    [AUTHN_TOKEN_TOO_LARGE] = "token_too_large",
    [AUTHN_ALG_NONE] = "alg_none",
    [AUTHN_UNSUPPORTED_ALG] = "unsupported_alg",
    [AUTHN_UNKNOWN_CRIT] = "unknown_crit",
    [AUTHN_BAD_ISSUER] = "bad_issuer",
    [AUTHN_UNKNOWN_KID] = "unknown_kid",
    [AUTHN_ALG_MISMATCH] = "alg_mismatch",
    [AUTHN_BAD_SIGNATURE] = "bad_signature",
    [AUTHN_MISSING_EXP] = "missing_exp",
    [AUTHN_EXPIRED] = "expired",
    [AUTHN_NOT_YET_VALID] = "not_yet_valid",
    [AUTHN_BAD_AUDIENCE] = "bad_audience",
    [AUTHN_NOT_BOUND] = "token_not_bound_to_certificate",
    [AUTHN_UNKNOWN_API_KEY] = "unknown_api_key",
    [AUTHN_INTERNAL] = "internal_error",
};

/* The stable reason token of s (audit logs match on these). */
const char *authn_status_str(enum authn_status s)
{
	return (unsigned)s < AUTHN_STATUS_MAX && status_names[s] ? status_names[s] : "unknown";
}

/* Frees a vector of n strings. */
static void strv_free(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

/* Frees the strings of *id and zeroes it. */
void authn_token_id_clear(struct authn_token_id *id)
{
	if (!id)
		return;
	free(id->iss);
	free(id->sub);
	free(id->jti);
	free(id->aud);
	strv_free(id->scopes, id->n_scopes);
	memset(id, 0, sizeof(*id));
}

/* Copies an optional string: 0 (also for NULL), -1 out of memory. */
static int str_dup_opt(const char *s, char **out)
{
	*out = s ? strdup(s) : NULL;
	return s && !*out ? -1 : 0;
}

/* Deep copy of src into dst (dst is overwritten, not freed). */
int authn_token_id_copy(struct authn_token_id *dst, const struct authn_token_id *src)
{
	struct authn_token_id t = *src;

	t.iss = t.sub = t.jti = t.aud = NULL;
	t.scopes = NULL;
	t.n_scopes = 0;
	if (str_dup_opt(src->iss, &t.iss) < 0 || str_dup_opt(src->sub, &t.sub) < 0 ||
	    str_dup_opt(src->jti, &t.jti) < 0 || str_dup_opt(src->aud, &t.aud) < 0)
		goto fail;
	if (src->n_scopes && !(t.scopes = calloc(src->n_scopes, sizeof(*t.scopes))))
		goto fail;
	for (; t.n_scopes < src->n_scopes; t.n_scopes++) {
		if (!(t.scopes[t.n_scopes] = strdup(src->scopes[t.n_scopes])))
			goto fail;
	}
	*dst = t;
	return 0;
fail:
	authn_token_id_clear(&t);
	memset(dst, 0, sizeof(*dst));
	return -1;
}
