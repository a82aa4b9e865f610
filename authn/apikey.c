/*
 * Opaque API keys. The key file never holds a key, only its BLAKE2b-256 hash keyed with a
 * secret from a second file, one line per key:
 *
 *     <64 hex digits> <subject> [<scope>,<scope>,...]
 *
 * ('#' starts a comment line; blank lines are ignored). A stolen key file alone therefore
 * gives neither the keys nor a way to test guesses offline. A presented key is hashed and
 * compared with every entry in constant time (sodium_memcmp, no early exit), so timing
 * tells nothing about how close a guess came; the cost is linear in the number of keys,
 * which is fine for the thousands an operator manages by hand.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "authn_int.h"

#define APIKEY_FILE_MAX      (16 * 1024 * 1024)
#define APIKEY_PRESENTED_MAX 1024
#define APIKEY_PREFIX        "gwk_"

/* Frees one table entry and zeroes it. */
static void entry_clear(struct authn_apikey *e)
{
	for (size_t i = 0; i < e->n_scopes; i++)
		free(e->scopes[i]);
	free(e->scopes);
	free(e->sub);
	memset(e, 0, sizeof(*e));
}

/* Splits "a,b,c" into e->scopes; -1 on an empty or unclean scope or no memory. */
static int entry_scopes(struct authn_apikey *e, const char *s, size_t n)
{
	const char *end = s + n;

	while (s < end) {
		const char *comma = memchr(s, ',', (size_t)(end - s));
		const char *stop = comma ? comma : end;
		if (stop == s || !authn_text_clean(s, (size_t)(stop - s)))
			return -1;
		char **v = realloc(e->scopes, (e->n_scopes + 1) * sizeof(*v));
		if (!v)
			return -1;
		e->scopes = v;
		if (!(v[e->n_scopes] = strndup(s, (size_t)(stop - s))))
			return -1;
		e->n_scopes++;
		s = comma ? comma + 1 : end;
	}
	return 0;
}

/* Next whitespace-separated field of line[*pos..len); false when there is none. */
static bool field_next(const char *line, size_t len, size_t *pos, const char **f, size_t *flen)
{
	size_t i = *pos;

	while (i < len && (line[i] == ' ' || line[i] == '\t'))
		i++;
	if (i == len)
		return false;
	*f = line + i;
	while (i < len && line[i] != ' ' && line[i] != '\t')
		i++;
	*flen = (size_t)(line + i - *f);
	*pos = i;
	return true;
}

/* One non-comment line into *e; -1 with a reason in why. */
static int entry_parse(const char *line, size_t len, struct authn_apikey *e, const char **why)
{
	const char *f[4];
	size_t fl[4], pos = 0, nf = 0;

	while (nf < 4 && field_next(line, len, &pos, &f[nf], &fl[nf]))
		nf++;
	*why = "needs '<64 hex digits> <subject> [scope,scope]'";
	if (nf < 2 || nf > 3)
		return -1;
	if (fl[0] > 4 && memcmp(f[0], APIKEY_PREFIX, 4) == 0) {
		*why = "holds a plaintext key: store only its hash (gatewayctl apikey new)";
		return -1;
	}
	if (authn_hex_decode(f[0], fl[0], e->hash, sizeof(e->hash)) < 0) {
		*why = "the hash must be 64 hex digits";
		return -1;
	}
	*why = "the subject or a scope is empty or holds control characters";
	if (!authn_text_clean(f[1], fl[1]) || !(e->sub = strndup(f[1], fl[1])))
		return -1;
	if (nf == 3 && entry_scopes(e, f[2], fl[2]) < 0)
		return -1;
	return 0;
}

/* True if an earlier entry has the same hash (the same key listed twice). */
static bool hash_taken(const struct authn_keys *k, const unsigned char *h)
{
	for (size_t i = 0; i < k->n_apikeys; i++) {
		if (memcmp(k->apikeys[i].hash, h, sizeof(k->apikeys[i].hash)) == 0)
			return true;
	}
	return false;
}

/* Parses every line of text; stops at the first bad one, naming file:line. */
static int apikeys_parse(struct authn_keys *k, const char *file, char *text, size_t len, char *err,
                         size_t errlen)
{
	size_t cap = 0;
	int lineno = 0;

	for (char *p = text, *end = text + len; p < end;) {
		char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = (size_t)((nl ? nl : end) - p);
		const char *why = NULL;
		lineno++;
		if (n && p[n - 1] == '\r')
			n--;
		size_t skip = strspn(p, " \t");
		if (skip < n && p[skip] != '#') {
			if (k->n_apikeys == cap) {
				size_t nc = cap ? 2 * cap : 16;
				struct authn_apikey *v = realloc(k->apikeys, nc * sizeof(*v));
				if (!v) {
					snprintf(err, errlen, "%s: out of memory", file);
					return -1;
				}
				k->apikeys = v;
				cap = nc;
			}
			struct authn_apikey *e = &k->apikeys[k->n_apikeys];
			memset(e, 0, sizeof(*e));
			int rc = entry_parse(p, n, e, &why);
			if (rc == 0 && hash_taken(k, e->hash)) {
				why = "the same key hash is listed twice";
				rc = -1;
			}
			if (rc < 0) {
				entry_clear(e);
				snprintf(err, errlen, "%s:%d: %s", file, lineno, why);
				return -1;
			}
			k->n_apikeys++;
		}
		p = nl ? nl + 1 : end;
	}
	return 0;
}

/* Reads the table into k; see authn_int.h. An empty table is allowed (no key works). */
int authn_apikeys_load(struct authn_keys *k, const char *file, char *err, size_t errlen)
{
	char *text = NULL;
	size_t len = 0;
	int rc;

	if (authn_file_read(file, APIKEY_FILE_MAX, &text, &len, err, errlen) < 0)
		return -1;
	if (memchr(text, '\0', len)) {
		snprintf(err, errlen, "%s: holds a NUL byte", file);
		free(text);
		return -1;
	}
	rc = apikeys_parse(k, file, text, len, err, errlen);
	free(text);
	return rc;
}

/* Frees the table of k; the hashing key is wiped by authn_keys_free. */
void authn_apikeys_free(struct authn_keys *k)
{
	for (size_t i = 0; i < k->n_apikeys; i++)
		entry_clear(&k->apikeys[i]);
	free(k->apikeys);
	k->apikeys = NULL;
	k->n_apikeys = 0;
}

/* The identity an entry grants. */
static enum authn_status entry_identity(const struct authn_apikey *e, struct authn_token_id *out)
{
	struct authn_token_id t = {
	    .kind = AUTHN_CRED_APIKEY, .sub = e->sub, .scopes = e->scopes, .n_scopes = e->n_scopes};

	return authn_token_id_copy(out, &t) == 0 ? AUTHN_OK : AUTHN_INTERNAL;
}

/* Checks a presented key; see authn.h. */
enum authn_status authn_apikey_verify(const struct authn_keys *keys, const char *key, size_t len,
                                      struct authn_token_id *out)
{
	unsigned char h[32];
	size_t match = SIZE_MAX;

	memset(out, 0, sizeof(*out));
	if (!key || len == 0)
		return AUTHN_NO_CREDENTIAL;
	if (!authn_keys_has_apikeys(keys) || len > APIKEY_PRESENTED_MAX)
		return AUTHN_UNKNOWN_API_KEY;
	if (crypto_generichash(h, sizeof(h), (const unsigned char *)key, len, keys->apikey_hash_key,
	                       sizeof(keys->apikey_hash_key)) != 0)
		return AUTHN_INTERNAL;
	/* Every entry is compared, whatever matched before. */
	for (size_t i = 0; i < keys->n_apikeys; i++) {
		bool eq = sodium_memcmp(h, keys->apikeys[i].hash, sizeof(h)) == 0;
		match = eq ? i : match;
	}
	sodium_memzero(h, sizeof(h));
	if (match == SIZE_MAX)
		return AUTHN_UNKNOWN_API_KEY;
	return entry_identity(&keys->apikeys[match], out);
}

/* Keyed BLAKE2b-256 of key, as lower-case hex. */
int authn_apikey_hash(const unsigned char hash_key[AUTHN_APIKEY_HASH_KEY_BYTES], const char *key,
                      size_t len, char out_hex[AUTHN_APIKEY_HEX_LEN + 1])
{
	unsigned char h[32];

	if (sodium_init() < 0 || !key ||
	    crypto_generichash(h, sizeof(h), (const unsigned char *)key, len, hash_key,
	                       AUTHN_APIKEY_HASH_KEY_BYTES) != 0)
		return -1;
	authn_hex_encode(h, sizeof(h), out_hex);
	return 0;
}

/* A fresh key: 32 random bytes behind a recognisable prefix (so scanners find leaks). */
int authn_apikey_generate(const unsigned char hash_key[AUTHN_APIKEY_HASH_KEY_BYTES],
                          char key_out[AUTHN_APIKEY_LEN + 1],
                          char hash_hex[AUTHN_APIKEY_HEX_LEN + 1])
{
	unsigned char raw[32];
	int rc = -1;

	if (sodium_init() < 0)
		return -1;
	randombytes_buf(raw, sizeof(raw));
	memcpy(key_out, APIKEY_PREFIX, 4);
	if (authn_b64url_encode(raw, sizeof(raw), key_out + 4, AUTHN_APIKEY_LEN + 1 - 4) == 43)
		rc = authn_apikey_hash(hash_key, key_out, AUTHN_APIKEY_LEN, hash_hex);
	sodium_memzero(raw, sizeof(raw));
	if (rc < 0)
		sodium_memzero(key_out, AUTHN_APIKEY_LEN + 1);
	return rc;
}

/* 32 random bytes for a new hash_key file, and their hex text. */
int authn_apikey_hash_key_generate(unsigned char key[AUTHN_APIKEY_HASH_KEY_BYTES],
                                   char hex[AUTHN_APIKEY_HEX_LEN + 1])
{
	if (sodium_init() < 0)
		return -1;
	randombytes_buf(key, AUTHN_APIKEY_HASH_KEY_BYTES);
	authn_hex_encode(key, AUTHN_APIKEY_HASH_KEY_BYTES, hex);
	return 0;
}

/* 64 hex digits and optional trailing whitespace; anything else is refused. */
int authn_apikey_hash_key_load(const char *file, unsigned char key[AUTHN_APIKEY_HASH_KEY_BYTES],
                               char *err, size_t errlen)
{
	char *text = NULL;
	size_t len = 0;
	int rc = -1;

	if (!file) {
		snprintf(err, errlen, "no hash key file given");
		return -1;
	}
	if (authn_file_read(file, 256, &text, &len, err, errlen) < 0)
		return -1;
	while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == '\r' || text[len - 1] == ' '))
		len--;
	if (authn_hex_decode(text, len, key, AUTHN_APIKEY_HASH_KEY_BYTES) < 0)
		snprintf(err, errlen, "%s: must hold 64 hex digits (a 32-byte key)", file);
	else
		rc = 0;
	sodium_memzero(text, len);
	free(text);
	return rc;
}
