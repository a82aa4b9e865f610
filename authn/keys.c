/*
 * The key set: every issuer with its keys, and the API key table, built completely from
 * files (or text in memory) and then never changed, so all workers read it without locks.
 * Every problem is reported with the file:line the caller configured it at, and any
 * problem means no key set: a reload then keeps the previous one.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "authn_int.h"

#define JWKS_MAX_BYTES   (1024 * 1024)
#define SECRET_MAX_BYTES 4096
#define MAX_ISSUERS      64

/* Where build problems go: the caller's callback, and the first one into err. */
struct keys_report {
	const struct authn_keys_opts *o;
	char *err;
	size_t errlen;
	size_t n_errors;
};

static void report(struct keys_report *r, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Reports one problem at file:line; the first one is also kept in err. */
static void report(struct keys_report *r, const char *file, int line, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (r->n_errors++ == 0 && r->err && r->errlen)
		snprintf(r->err, r->errlen, "%s", msg);
	if (r->o->report)
		r->o->report(r->o->report_arg, true, file, line, msg);
}

/* The HMAC secret: base64url text (as a JWK "k"), trailing whitespace ignored. */
static int hmac_secret_read(const char *path, unsigned char **out, size_t *len, char *err,
                            size_t errlen)
{
	char *text = NULL;
	size_t n = 0;
	int rc = -1;

	if (authn_file_read(path, SECRET_MAX_BYTES, &text, &n, err, errlen) < 0)
		return -1;
	while (n > 0 && (text[n - 1] == '\n' || text[n - 1] == '\r' || text[n - 1] == ' '))
		n--;
	if (authn_b64url_decode(text, n, out, len) < 0) {
		snprintf(err, errlen, "%s: not base64url text (no padding, no line breaks inside)",
		         path);
		goto fail;
	}
	rc = 0;
fail:
	sodium_memzero(text, n);
	free(text);
	return rc;
}

/* Adds the issuer's HMAC key (HS256 only) after its JWKS keys. */
static int hmac_key_add(const struct authn_issuer_opts *io, struct authn_issuer *is, char *err,
                        size_t errlen)
{
	struct authn_key *k = &is->keys[is->n_keys];
	unsigned char *sec = NULL;
	size_t len = 0;

	if (io->hmac_secret_file) {
		if (hmac_secret_read(io->hmac_secret_file, &sec, &len, err, errlen) < 0)
			return -1;
	} else if ((sec = malloc(io->hmac_secret_len + 1))) {
		len = io->hmac_secret_len;
		memcpy(sec, io->hmac_secret, len);
	}
	if (!sec) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	k->raw = sec;
	k->raw_len = len;
	k->algs = AUTHN_ALG_BIT(AUTHN_ALG_HS256);
	is->n_keys++; /* from here on freed with the issuer */
	if (len < AUTHN_HMAC_MIN_LEN || len > AUTHN_HMAC_MAX_LEN) {
		snprintf(err, errlen, "HMAC secret is %zu bytes; %d to %d are accepted", len,
		         AUTHN_HMAC_MIN_LEN, AUTHN_HMAC_MAX_LEN);
		return -1;
	}
	for (size_t i = 0; io->hmac_kid && i + 1 < is->n_keys; i++) {
		if (is->keys[i].kid && strcmp(is->keys[i].kid, io->hmac_kid) == 0) {
			snprintf(err, errlen, "hmac_kid \"%s\" is also a kid in the JWKS",
			         io->hmac_kid);
			return -1;
		}
	}
	if (io->hmac_kid && !(k->kid = strdup(io->hmac_kid))) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	return 0;
}

/* The issuer's JWKS keys, from its file or from memory, with room for an HMAC key. */
static int issuer_keys(const struct authn_issuer_opts *io, struct authn_issuer *is, char *err,
                       size_t errlen)
{
	char *text = NULL;
	size_t len = io->jwks_json_len;
	struct authn_key *keys = NULL;
	size_t n = 0;
	int rc = -1;

	if (io->jwks_file &&
	    authn_file_read(io->jwks_file, JWKS_MAX_BYTES, &text, &len, err, errlen) < 0)
		goto fail;
	const char *src = io->jwks_file ? text : io->jwks_json;
	if (src) {
		char why[384];
		if (authn_jwks_parse(src, len, &keys, &n, why, sizeof(why)) < 0) {
			snprintf(err, errlen, "%s: %s", io->jwks_file ? io->jwks_file : "JWKS",
			         why);
			goto fail;
		}
	}
	is->keys = calloc(n + 1, sizeof(*is->keys));
	if (!is->keys) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	if (n)
		memcpy(is->keys, keys, n * sizeof(*keys));
	is->n_keys = n;
	n = 0; /* moved */
	rc = 0;
fail:
	for (size_t i = 0; i < n; i++)
		authn_key_clear(&keys[i]);
	free(keys);
	free(text);
	return rc;
}

/* Checks that exactly one source is given for each kind of key material. */
static int issuer_opts_check(const struct authn_issuer_opts *io, char *err, size_t errlen)
{
	bool jwks = io->jwks_file || io->jwks_json, hmac = io->hmac_secret_file || io->hmac_secret;

	if (!io->issuer || !io->issuer[0] || !io->audience || !io->audience[0])
		snprintf(err, errlen, "needs both an issuer and an audience");
	else if ((io->jwks_file && io->jwks_json) || (io->hmac_secret_file && io->hmac_secret))
		snprintf(err, errlen, "has two sources for the same keys");
	else if (!jwks && !hmac)
		snprintf(err, errlen, "needs a JWKS or an HMAC secret");
	else if (io->hmac_kid && !hmac)
		snprintf(err, errlen, "has hmac_kid but no HMAC secret");
	else
		return 0;
	return -1;
}

/* Builds one issuer into *is (freed by issuer_clear also on failure). */
static int issuer_build(const struct authn_issuer_opts *io, struct authn_issuer *is, char *err,
                        size_t errlen)
{
	if (issuer_opts_check(io, err, errlen) < 0)
		return -1;
	is->name = strdup(io->name ? io->name : io->issuer);
	is->issuer = strdup(io->issuer);
	is->audience = strdup(io->audience);
	is->scope_claim = strdup(io->scope_claim ? io->scope_claim : "scope");
	is->leeway = io->leeway;
	is->max_token = io->max_token ? io->max_token : AUTHN_MAX_TOKEN_DEFAULT;
	if (!is->name || !is->issuer || !is->audience || !is->scope_claim) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (issuer_keys(io, is, err, errlen) < 0)
		return -1;
	if ((io->hmac_secret_file || io->hmac_secret) && hmac_key_add(io, is, err, errlen) < 0)
		return -1;
	return 0;
}

/* Frees what issuer_build made, also when it stopped half-way. */
static void issuer_clear(struct authn_issuer *is)
{
	for (size_t i = 0; i < is->n_keys; i++)
		authn_key_clear(&is->keys[i]);
	free(is->keys);
	free(is->name);
	free(is->issuer);
	free(is->audience);
	free(is->scope_claim);
	memset(is, 0, sizeof(*is));
}

/* Two issuers with one iss would make the choice of keys ambiguous. */
static void issuers_unique(struct keys_report *r, const struct authn_keys *k)
{
	const struct authn_issuer_opts *io = r->o->issuers;

	for (size_t i = 0; i < k->n_issuers; i++) {
		for (size_t j = 0; j < i; j++) {
			if (strcmp(k->issuers[i].issuer, k->issuers[j].issuer) == 0)
				report(r, io[i].file, io[i].line,
				       "issuer \"%s\" is configured twice (also at line %d)",
				       k->issuers[i].issuer, io[j].line);
			else if (strcmp(k->issuers[i].name, k->issuers[j].name) == 0)
				report(r, io[i].file, io[i].line,
				       "issuer name '%s' is used twice (also at line %d)",
				       k->issuers[i].name, io[j].line);
		}
	}
}

/* Builds every issuer, reporting each failure at its own line. */
static void issuers_build(struct keys_report *r, struct authn_keys *k)
{
	const struct authn_keys_opts *o = r->o;
	char why[512];

	for (size_t i = 0; i < o->n_issuers; i++) {
		const struct authn_issuer_opts *io = &o->issuers[i];
		struct authn_issuer *is = &k->issuers[k->n_issuers++];
		why[0] = '\0';
		if (issuer_build(io, is, why, sizeof(why)) < 0) {
			report(r, io->file, io->line, "issuer '%s': %s",
			       io->name ? io->name : (io->issuer ? io->issuer : "?"), why);
			continue;
		}
		if (is->max_token > k->max_token)
			k->max_token = is->max_token;
	}
	if (r->n_errors == 0)
		issuers_unique(r, k);
}

/* The API key table and its hashing key. */
static void apikeys_build(struct keys_report *r, struct authn_keys *k)
{
	const struct authn_keys_opts *o = r->o;
	char why[512] = "";

	if (!o->apikey_hash_key_file) {
		report(r, o->apikey_conf_file, o->apikey_conf_line,
		       "api_keys: a hash_key file is required with the key file");
		return;
	}
	if (authn_apikey_hash_key_load(o->apikey_hash_key_file, k->apikey_hash_key, why,
	                               sizeof(why)) < 0 ||
	    authn_apikeys_load(k, o->apikey_file, why, sizeof(why)) < 0) {
		report(r, o->apikey_conf_file, o->apikey_conf_line, "api_keys: %s", why);
		return;
	}
	k->has_apikeys = true;
}

/* Builds the key set; see authn.h. */
int authn_keys_new(const struct authn_keys_opts *o, struct authn_keys **out, char *err,
                   size_t errlen)
{
	struct keys_report r = {.o = o, .err = err, .errlen = errlen};
	struct authn_keys *k = NULL;

	*out = NULL;
	if (sodium_init() < 0 || !(k = calloc(1, sizeof(*k))) ||
	    !(k->n_verify = calloc(1, sizeof(*k->n_verify))) ||
	    !(k->issuers = calloc(o->n_issuers + 1, sizeof(*k->issuers)))) {
		report(&r, NULL, 0, "out of memory");
		goto fail;
	}
	atomic_init(k->n_verify, 0);
	/* Random, not a global counter: this module keeps no state between calls. */
	randombytes_buf(&k->serial, sizeof(k->serial));
	if (o->n_issuers > MAX_ISSUERS)
		report(&r, NULL, 0, "at most %d issuers are supported", MAX_ISSUERS);
	else
		issuers_build(&r, k);
	if (o->apikey_file)
		apikeys_build(&r, k);
	if (r.n_errors)
		goto fail;
	*out = k;
	return 0;
fail:
	authn_keys_free(k);
	return -1;
}

/* Frees everything, wiping secrets; NULL-safe. */
void authn_keys_free(struct authn_keys *k)
{
	if (!k)
		return;
	for (size_t i = 0; i < k->n_issuers; i++)
		issuer_clear(&k->issuers[i]);
	free(k->issuers);
	authn_apikeys_free(k);
	sodium_memzero(k->apikey_hash_key, sizeof(k->apikey_hash_key));
	free(k->n_verify);
	free(k);
}

/* True if at least one token issuer is configured. */
bool authn_keys_has_issuers(const struct authn_keys *k)
{
	return k && k->n_issuers > 0;
}

/* True if an API key table is configured (it may be empty). */
bool authn_keys_has_apikeys(const struct authn_keys *k)
{
	return k && k->has_apikeys;
}

/* Exact, case-sensitive match of iss (RFC 7519 4.1.1: a StringOrURI compared as is). */
const struct authn_issuer *authn_keys_issuer_find(const struct authn_keys *k, const char *iss)
{
	for (size_t i = 0; k && iss && i < k->n_issuers; i++) {
		if (strcmp(k->issuers[i].issuer, iss) == 0)
			return &k->issuers[i];
	}
	return NULL;
}

/* The i-th issuer in configuration order, or NULL. */
const struct authn_issuer *authn_keys_issuer_at(const struct authn_keys *k, size_t i)
{
	return k && i < k->n_issuers ? &k->issuers[i] : NULL;
}

/* Signature verifications so far (relaxed: a statistic, not a synchronisation point). */
unsigned long authn_keys_verify_count(const struct authn_keys *k)
{
	return k ? atomic_load_explicit(k->n_verify, memory_order_relaxed) : 0;
}
