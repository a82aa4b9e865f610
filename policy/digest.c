/*
 * The policy digest: SHA-256 over what decides requests (groups and rules, in order) and
 * nothing about where they were written, so the audit log can say which policy decided
 * and a reformatted file is recognisably the same policy. Every field is length- or
 * kind-tagged so two different policies never serialise to the same bytes.
 */
#include <string.h>

#include <openssl/evp.h>

#include "policy_int.h"

#define BUF_SIZE 4096

/* Buffers small writes: one EVP update per 4 KiB, not per field. */
struct dig {
	EVP_MD_CTX *ctx;
	unsigned char buf[BUF_SIZE];
	size_t n;
	int rc;
};

static void dig_flush(struct dig *d)
{
	if (d->n && d->rc == 0 && EVP_DigestUpdate(d->ctx, d->buf, d->n) != 1)
		d->rc = -1;
	d->n = 0;
}

static void dig_put(struct dig *d, const void *data, size_t n)
{
	const unsigned char *s = data;

	while (n) {
		if (d->n == BUF_SIZE)
			dig_flush(d);
		size_t k = BUF_SIZE - d->n < n ? BUF_SIZE - d->n : n;
		memcpy(d->buf + d->n, s, k);
		d->n += k;
		s += k;
		n -= k;
	}
}

static void dig_u32(struct dig *d, uint32_t v)
{
	unsigned char b[4] = {(unsigned char)(v >> 24), (unsigned char)(v >> 16),
	                      (unsigned char)(v >> 8), (unsigned char)v};
	dig_put(d, b, 4);
}

static void dig_str(struct dig *d, const char *s, size_t n)
{
	dig_u32(d, (uint32_t)n);
	dig_put(d, s, n);
}

static void dig_group(struct dig *d, const struct policy_group *g)
{
	dig_put(d, "G", 1);
	dig_str(d, g->name, strlen(g->name));
	dig_u32(d, (uint32_t)g->n_members);
	for (size_t i = 0; i < g->n_members; i++) {
		dig_u32(d, (uint32_t)g->members[i].who);
		dig_str(d, g->members[i].value, g->members[i].value_len);
	}
}

static void dig_rule(struct dig *d, const struct policy_rule *r)
{
	dig_put(d, "R", 1);
	dig_u32(d, r->effect);
	if (r->group) {
		dig_u32(d, POLICY_WHO_MAX); /* a kind no identity has: "group" */
		dig_str(d, r->group->name, strlen(r->group->name));
	} else {
		dig_u32(d, r->who);
		dig_str(d, r->value ? r->value : "", r->value_len);
	}
	/* 0 and "every method" decide the same, so they digest the same. */
	dig_u32(d, r->methods ? r->methods : POLICY_M_ALL);
	dig_u32(d, r->n_prefixes);
	for (size_t i = 0; i < r->n_prefixes; i++)
		dig_str(d, r->prefixes[i], strlen(r->prefixes[i]));
}

/* Fills p->digest; groups come sorted by name, rules in their order. Returns 0 or -1. */
int policy_digest_compute(struct policy *p)
{
	struct dig d = {.ctx = EVP_MD_CTX_new()};
	unsigned int len = 0;

	if (!d.ctx || EVP_DigestInit_ex(d.ctx, EVP_sha256(), NULL) != 1)
		goto fail;
	dig_put(&d, "gw-policy-1", 11);
	for (size_t i = 0; i < p->n_groups; i++)
		dig_group(&d, &p->groups[i]);
	for (size_t i = 0; i < p->n_rules; i++)
		dig_rule(&d, &p->rules[i]);
	dig_flush(&d);
	if (d.rc < 0 || EVP_DigestFinal_ex(d.ctx, p->digest, &len) != 1 || len != 32)
		goto fail;
	EVP_MD_CTX_free(d.ctx);
	return 0;
fail:
	EVP_MD_CTX_free(d.ctx);
	return -1;
}
