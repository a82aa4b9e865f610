/*
 * The library context the TLS server side runs in: OpenSSL's default provider, offered
 * through a pass-through provider that lists fewer decoders.
 *
 * Why: OpenSSL 3.0 decodes the public key of every certificate it parses through its
 * provider decoder machinery, and it builds that decoder chain anew for each key by walking
 * every decoder and key manager the context's providers offer (name lookups under locks).
 * libssl parses each certificate a client sends, before any callback of ours can run. That
 * walk is most of a certificate parse, about 0.16 ms here, a fifth of the server's CPU in a
 * full mTLS handshake (bench/README.md, hs_bench). Its cost follows the number of decoders
 * on offer, not the work done.
 *
 * So the server's SSL_CTX lives in a library context of its own whose only provider hands
 * out the default provider's own dispatch tables and provider context, unchanged, except
 * that its decoder list keeps only "DER SubjectPublicKeyInfo to a key", for every key type
 * the default provider knows: all a certificate needs. Nothing is reimplemented, every
 * algorithm is the default provider's. A parse then takes 0.70M instructions instead of
 * 1.21M (callgrind), about 30% less time (hs_bench prints both).
 *
 * What the lean context cannot do: decode PEM, private keys or key parameters. Keys, CA
 * bundles and CRLs are read in OpenSSL's default context (store.c) and handed to the
 * SSL_CTX as objects; OpenSSL exports a key between the two providers once and caches the
 * result on the key. The upstream (client) side stays in the default context: it parses a
 * backend certificate per pooled connection, not per request.
 *
 * When the lean context cannot be built, or OpenSSL's default context runs the FIPS
 * provider (whose choice we must not bypass), the server uses the default context: slower,
 * equally correct.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/core_dispatch.h>
#include <openssl/err.h>
#include <openssl/provider.h>

#include "pki_int.h"

/*
 * Written once under pthread_once, read-only afterwards, shared by every server context
 * of the process and never freed (like OpenSSL's own default context): the provider's
 * dispatch functions get no user pointer but these.
 */
static pthread_once_t lean_once = PTHREAD_ONCE_INIT;
static OSSL_PROVIDER *lean_base;      /* the default provider, in the default context */
static OSSL_ALGORITHM *lean_decoders; /* its SubjectPublicKeyInfo decoders, then a zero entry */
static OSSL_LIB_CTX *lean_ctx;

/* True when the property definition has the property `want` ("name=value") exactly. */
static bool has_property(const char *defs, const char *want)
{
	size_t wl = strlen(want);
	for (const char *p = defs; p && *p;) {
		const char *end = strchr(p, ',');
		size_t l = end ? (size_t)(end - p) : strlen(p);
		if (l == wl && strncasecmp(p, want, wl) == 0)
			return true;
		p = end ? end + 1 : NULL;
	}
	return false;
}

static const OSSL_ALGORITHM *lean_query(void *provctx, int op, int *no_cache)
{
	(void)provctx;
	if (op == OSSL_OP_DECODER) {
		*no_cache = 0;
		return lean_decoders;
	}
	return OSSL_PROVIDER_query_operation(lean_base, op, no_cache);
}

/* libssl learns its key exchange groups from here ("TLS-GROUP"): passed through. */
static int lean_get_capabilities(void *provctx, const char *capability, OSSL_CALLBACK *cb,
                                 void *arg)
{
	(void)provctx;
	return OSSL_PROVIDER_get_capabilities(lean_base, capability, cb, arg);
}

static const OSSL_PARAM *lean_gettable_params(void *provctx)
{
	(void)provctx;
	return OSSL_PROVIDER_gettable_params(lean_base);
}

static int lean_get_params(void *provctx, OSSL_PARAM params[])
{
	(void)provctx;
	return OSSL_PROVIDER_get_params(lean_base, params);
}

static const OSSL_DISPATCH lean_dispatch[] = {
    {OSSL_FUNC_PROVIDER_QUERY_OPERATION, (void (*)(void))lean_query},
    {OSSL_FUNC_PROVIDER_GET_CAPABILITIES, (void (*)(void))lean_get_capabilities},
    {OSSL_FUNC_PROVIDER_GETTABLE_PARAMS, (void (*)(void))lean_gettable_params},
    {OSSL_FUNC_PROVIDER_GET_PARAMS, (void (*)(void))lean_get_params},
    {0, NULL}};

/* The provider context handed out is the default provider's own: its algorithms need it. */
static int lean_init(const OSSL_CORE_HANDLE *handle, const OSSL_DISPATCH *in,
                     const OSSL_DISPATCH **out, void **provctx)
{
	(void)handle;
	(void)in;
	*out = lean_dispatch;
	*provctx = OSSL_PROVIDER_get0_provider_ctx(lean_base);
	return *provctx != NULL;
}

/* Copies the default provider's DER SubjectPublicKeyInfo decoders; 0 when some were found. */
static int lean_pick_decoders(void)
{
	int no_cache = 0;
	const OSSL_ALGORITHM *all =
	    OSSL_PROVIDER_query_operation(lean_base, OSSL_OP_DECODER, &no_cache);
	size_t n = 0, k = 0;
	for (const OSSL_ALGORITHM *a = all; a && a->algorithm_names; a++)
		n++;
	lean_decoders = calloc(n + 1, sizeof(*lean_decoders));
	if (!lean_decoders)
		return -1;
	for (const OSSL_ALGORITHM *a = all; a && a->algorithm_names; a++)
		if (has_property(a->property_definition, "input=der") &&
		    has_property(a->property_definition, "structure=SubjectPublicKeyInfo"))
			lean_decoders[k++] = *a;
	return k > 0 ? 0 : -1;
}

static void lean_build(void)
{
	OSSL_LIB_CTX *ctx = NULL;

	if (OSSL_PROVIDER_available(NULL, "fips"))
		return;
	lean_base = OSSL_PROVIDER_load(NULL, "default");
	if (!lean_base || lean_pick_decoders() != 0)
		goto fail;
	ctx = OSSL_LIB_CTX_new();
	if (!ctx || OSSL_PROVIDER_add_builtin(ctx, "gw-lean", lean_init) != 1 ||
	    !OSSL_PROVIDER_load(ctx, "gw-lean"))
		goto fail;
	lean_ctx = ctx;
	return;
fail:
	/* The default context serves instead; nothing of this attempt is kept. */
	OSSL_LIB_CTX_free(ctx);
	free(lean_decoders);
	lean_decoders = NULL;
	if (lean_base)
		OSSL_PROVIDER_unload(lean_base);
	lean_base = NULL;
	ERR_clear_error();
}

OSSL_LIB_CTX *pki_lean_libctx(void)
{
	pthread_once(&lean_once, lean_build);
	return lean_ctx;
}
