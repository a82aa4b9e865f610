/*
 * Per-worker cache of verified tokens, so a client that sends the same token on every
 * request pays one signature verification. Keyed by the token's SHA-256 (the token itself
 * is not kept); bounded, least recently used entries go first; an entry is never used at
 * or after the token's exp, nor with a key set other than the one that verified it. The
 * certificate binding is checked on every hit, because one token can arrive on several
 * connections. Not thread-safe by design: each worker owns one.
 */
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "authn_int.h"

#define CACHE_MAX_ENTRIES (1u << 20)

struct cache_entry {
	unsigned char h[32];
	struct authn_token_id id;                /* owned copy */
	struct cache_entry *hnext;               /* bucket chain */
	struct cache_entry *lru_prev, *lru_next; /* lru_next towards older */
};

struct authn_cache {
	size_t max, n, mask;
	struct cache_entry **buckets;
	struct cache_entry *newest, *oldest;
	uint64_t serial; /* the key set the entries came from */
	bool have_serial;
};

/* A new cache of at most max_entries tokens; see authn.h. */
struct authn_cache *authn_cache_new(size_t max_entries)
{
	struct authn_cache *c = calloc(1, sizeof(*c));
	size_t nb = 16;

	if (!c || sodium_init() < 0)
		goto fail;
	c->max = max_entries ? max_entries : AUTHN_CACHE_DEFAULT;
	if (c->max > CACHE_MAX_ENTRIES)
		c->max = CACHE_MAX_ENTRIES;
	while (nb < 2 * c->max)
		nb <<= 1;
	c->mask = nb - 1;
	c->buckets = calloc(nb, sizeof(*c->buckets));
	if (!c->buckets)
		goto fail;
	return c;
fail:
	authn_cache_free(c);
	return NULL;
}

/* Takes e out of the recency list. */
static void lru_unlink(struct authn_cache *c, struct cache_entry *e)
{
	if (e->lru_prev)
		e->lru_prev->lru_next = e->lru_next;
	else
		c->newest = e->lru_next;
	if (e->lru_next)
		e->lru_next->lru_prev = e->lru_prev;
	else
		c->oldest = e->lru_prev;
	e->lru_prev = e->lru_next = NULL;
}

/* Makes e the most recently used entry. */
static void lru_push(struct authn_cache *c, struct cache_entry *e)
{
	e->lru_prev = NULL;
	e->lru_next = c->newest;
	if (c->newest)
		c->newest->lru_prev = e;
	c->newest = e;
	if (!c->oldest)
		c->oldest = e;
}

/* SHA-256 output is uniform, so its first bytes index the table directly. */
static size_t bucket_of(const struct authn_cache *c, const unsigned char *h)
{
	uint64_t v;
	memcpy(&v, h, sizeof(v));
	return (size_t)v & c->mask;
}

/* The chain link that holds (or would hold) the entry for hash h. */
static struct cache_entry **slot_find(struct authn_cache *c, const unsigned char *h)
{
	struct cache_entry **p = &c->buckets[bucket_of(c, h)];

	while (*p && memcmp((*p)->h, h, 32) != 0)
		p = &(*p)->hnext;
	return p;
}

/* Removes e from its chain and the list, and frees it. */
static void entry_drop(struct authn_cache *c, struct cache_entry *e)
{
	struct cache_entry **p = slot_find(c, e->h);

	if (*p == e)
		*p = e->hnext;
	lru_unlink(c, e);
	authn_token_id_clear(&e->id);
	free(e);
	c->n--;
}

/* Drops every entry. */
static void cache_flush(struct authn_cache *c)
{
	while (c->oldest)
		entry_drop(c, c->oldest);
}

/* Frees the cache and its entries; NULL-safe. */
void authn_cache_free(struct authn_cache *c)
{
	if (!c)
		return;
	if (c->buckets)
		cache_flush(c);
	free(c->buckets);
	free(c);
}

/* Entries held now. */
size_t authn_cache_count(const struct authn_cache *c)
{
	return c ? c->n : 0;
}

/* Entries from another key set are dropped all at once when a new set is first seen
 * (after a reload), so a removed key or issuer stops working at once. */
static void cache_bind(struct authn_cache *c, const struct authn_keys *keys)
{
	if (c->have_serial && c->serial == keys->serial)
		return;
	cache_flush(c);
	c->serial = keys->serial;
	c->have_serial = true;
}

/* Same check as verification: a bound token needs the certificate it is bound to. */
static enum authn_status hit_binding(const struct authn_token_id *id,
                                     const struct authn_cert_id *cert, bool require_bound)
{
	if (!id->cert_bound)
		return require_bound ? AUTHN_NOT_BOUND : AUTHN_OK;
	if (!cert || sodium_memcmp(id->x5t_s256, cert->sha256, sizeof(id->x5t_s256)) != 0)
		return AUTHN_NOT_BOUND;
	return AUTHN_OK;
}

/* Looks a token up; see authn.h. */
bool authn_cache_lookup(struct authn_cache *c, const struct authn_keys *keys, const char *token,
                        size_t len, time_t now, const struct authn_cert_id *cert,
                        bool require_bound, struct authn_token_id *out, enum authn_status *status)
{
	unsigned char h[32];

	memset(out, 0, sizeof(*out));
	if (!c || !keys || !token || len == 0)
		return false;
	cache_bind(c, keys);
	crypto_hash_sha256(h, (const unsigned char *)token, len);
	struct cache_entry *e = *slot_find(c, h);
	if (!e)
		return false;
	if (now >= e->id.exp) {
		entry_drop(c, e);
		return false;
	}
	lru_unlink(c, e);
	lru_push(c, e);
	*status = hit_binding(&e->id, cert, require_bound);
	if (*status == AUTHN_OK && authn_token_id_copy(out, &e->id) < 0)
		*status = AUTHN_INTERNAL;
	return true;
}

/* Remembers a verified token; see authn.h. */
int authn_cache_insert(struct authn_cache *c, const struct authn_keys *keys, const char *token,
                       size_t len, time_t now, const struct authn_token_id *id)
{
	unsigned char h[32];

	if (!c || !keys || !token || len == 0 || now >= id->exp)
		return -1;
	cache_bind(c, keys);
	crypto_hash_sha256(h, (const unsigned char *)token, len);
	struct cache_entry **slot = slot_find(c, h);
	if (*slot)
		entry_drop(c, *slot);
	if (c->n >= c->max)
		entry_drop(c, c->oldest);
	struct cache_entry *e = calloc(1, sizeof(*e));
	if (!e || authn_token_id_copy(&e->id, id) < 0) {
		free(e);
		return -1;
	}
	memcpy(e->h, h, sizeof(h));
	slot = slot_find(c, h);
	e->hnext = NULL;
	*slot = e;
	lru_push(c, e);
	c->n++;
	return 0;
}

/* Cache first, then full verification; see authn.h. */
enum authn_status authn_token_check(const struct authn_keys *keys, struct authn_cache *cache,
                                    const char *token, size_t len, time_t now,
                                    const struct authn_cert_id *cert, bool require_bound,
                                    struct authn_token_id *out)
{
	enum authn_status st = AUTHN_INTERNAL;

	if (authn_cache_lookup(cache, keys, token, len, now, cert, require_bound, out, &st))
		return st;
	st = authn_token_verify(keys, token, len, now, cert, require_bound, out);
	/* A failure is not remembered: the next attempt pays again, but a client cannot
	 * fill the cache with garbage either. */
	if (st == AUTHN_OK)
		authn_cache_insert(cache, keys, token, len, now, out);
	return st;
}
