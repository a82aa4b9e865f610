/*
 * The verified-chain cache of a listener: a client chain that passed the whole verification
 * a moment ago (X509_verify_cert against the listener's store, with pki_verify_cb's leaf
 * checks) is accepted again without its signature and CRL checks, which are most of the
 * CPU of verifying a chain, while the same clients reconnect all the time.
 *
 * Why a cached accept is the same decision as a full verification:
 * - The inputs of that decision are the chain the client sent, the trust store, the verify
 *   parameters and the time. The key is SHA-256 over the verify parameters an SSL could
 *   change (depth, flags, security level) and the DER of the leaf and of every certificate
 *   the client sent, in order, each length-prefixed. (The DER is re-encoded from the parsed
 *   certificate, whose signed part is kept byte for byte, and verification only ever sees
 *   the parsed certificate: two encodings that parse alike are the same input to it.)
 * - The store is the same: the cache belongs to one SSL_CTX and its store, which nothing
 *   changes once built (CA and CRLs are added from memory, no lookup directory). A reload,
 *   SIGHUP or watch_files, builds a whole new snapshot (conf_load -> build_listener_tls ->
 *   pki_server_new for every listener: a new SSL_CTX, store and empty cache), so a CRL
 *   update never meets an entry made under the old CRLs; connections kept across a reload
 *   are re-verified in full by pki_server_reverify, which does not use the cache. Whatever
 *   does not match (another store, another verify callback) bypasses the cache.
 * - Time is the only other input, so an entry expires at the earliest of: 60 s after it was
 *   made, the notAfter of every certificate of the verified chain (client's and trust
 *   anchor), and the earliest nextUpdate of the store's CRLs (past it a CRL is expired, and
 *   chains it covers fail or need the grace period). notBefore and a CRL's lastUpdate were
 *   already in the past.
 * - Only accepts are kept, and not those that leaned on an expired CRL's grace period
 *   (pki_crl_grace_ok marks them; the nextUpdate bound excludes them too, the mark says so
 *   where it happens). A refused chain is verified in full every time, so its reason is
 *   always recorded by pki_verify_cb for pki_ssl_reason, the log and the audit.
 * - The client still proves possession of the leaf's key in every handshake
 *   (CertificateVerify); the cache only skips re-checking the certificates.
 *
 * On a hit SSL_get_verify_result is X509_V_OK and SSL_get0_peer_certificate and
 * SSL_get_peer_cert_chain are as always; SSL_get0_verified_chain is NULL (no chain is built),
 * which the gateway does not use.
 *
 * The cache lives in the SSL_CTX (ex_data with a free callback), like the ticket keys, as
 * SSLs may still be handshaking after pki_server_free. Worker threads share it: a mutex
 * around a fixed direct-mapped table (a slot per key prefix, a newer entry replaces an
 * older one), so no allocation per entry and a bounded size (VCACHE_SLOTS * 40 bytes).
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509v3.h>

#include "pki_int.h"

#define VCACHE_SLOTS 2048 /* power of two */
#define VCACHE_TTL   60   /* seconds an entry lives at most */

struct vcache_slot {
	unsigned char key[32];
	time_t until; /* valid while now < until; 0: empty */
};

struct pki_vcache {
	pthread_mutex_t lock;    /* guards slot[] */
	const X509_STORE *store; /* the store entries were verified against; compared only */
	EVP_MD *sha256;
	bool crl_bound_set;
	time_t crl_bound; /* earliest nextUpdate of the store's CRLs */
	_Atomic uint64_t hits, misses;
	struct vcache_slot slot[VCACHE_SLOTS];
};

static pthread_once_t vcache_once = PTHREAD_ONCE_INIT;
static int vcache_idx = -1;

static void vcache_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
	struct pki_vcache *vc = ptr;
	if (!vc)
		return;
	pthread_mutex_destroy(&vc->lock);
	EVP_MD_free(vc->sha256);
	free(vc);
}

static void vcache_index_init(void)
{
	vcache_idx = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, vcache_free);
}

static int asn1_to_time(const ASN1_TIME *a, time_t *out)
{
	struct tm tm;
	if (!a || ASN1_TIME_to_tm(a, &tm) != 1)
		return -1;
	*out = timegm(&tm);
	return 0;
}

static int digest_cert(EVP_MD_CTX *md, const X509 *x)
{
	unsigned char *der = NULL;
	int n = x ? i2d_X509(x, &der) : -1;
	uint64_t len = n > 0 ? (uint64_t)n : 0;
	int ok = n > 0 && EVP_DigestUpdate(md, &len, sizeof(len)) == 1 &&
	         EVP_DigestUpdate(md, der, (size_t)n) == 1;
	OPENSSL_free(der);
	return ok ? 0 : -1;
}

/* The key of the chain being verified: see the top of the file. */
static int chain_key(const struct pki_vcache *vc, X509_STORE_CTX *xctx, unsigned char key[32])
{
	STACK_OF(X509) *sent = X509_STORE_CTX_get0_untrusted(xctx);
	X509_VERIFY_PARAM *vp = X509_STORE_CTX_get0_param(xctx);
	uint64_t params[3] = {(uint64_t)X509_VERIFY_PARAM_get_depth(vp),
	                      (uint64_t)X509_VERIFY_PARAM_get_flags(vp),
	                      (uint64_t)X509_VERIFY_PARAM_get_auth_level(vp)};
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	int ok = md && EVP_DigestInit_ex(md, vc->sha256, NULL) == 1 &&
	         EVP_DigestUpdate(md, params, sizeof(params)) == 1 &&
	         digest_cert(md, X509_STORE_CTX_get0_cert(xctx)) == 0;

	for (int i = 0; ok && i < sk_X509_num(sent); i++)
		ok = digest_cert(md, sk_X509_value(sent, i)) == 0;
	ok = ok && EVP_DigestFinal_ex(md, key, NULL) == 1;
	EVP_MD_CTX_free(md);
	return ok ? 0 : -1;
}

static struct vcache_slot *slot_of(struct pki_vcache *vc, const unsigned char key[32])
{
	return &vc->slot[((size_t)key[0] | (size_t)key[1] << 8) & (VCACHE_SLOTS - 1)];
}

static bool vcache_get(struct pki_vcache *vc, const unsigned char key[32], time_t now)
{
	struct vcache_slot *s = slot_of(vc, key);
	pthread_mutex_lock(&vc->lock);
	bool hit = now < s->until && memcmp(s->key, key, sizeof(s->key)) == 0;
	pthread_mutex_unlock(&vc->lock);
	return hit;
}

static void vcache_put(struct pki_vcache *vc, const unsigned char key[32], time_t until)
{
	struct vcache_slot *s = slot_of(vc, key);
	pthread_mutex_lock(&vc->lock);
	memcpy(s->key, key, sizeof(s->key));
	s->until = until;
	pthread_mutex_unlock(&vc->lock);
}

/* Until when the accept just computed stands; <= now (or 0) when it must not be kept. */
static time_t accept_until(const struct pki_vcache *vc, X509_STORE_CTX *xctx, time_t now)
{
	STACK_OF(X509) *chain = X509_STORE_CTX_get0_chain(xctx);
	time_t until = now + VCACHE_TTL, t;

	if (vc->crl_bound_set && vc->crl_bound < until)
		until = vc->crl_bound;
	if (sk_X509_num(chain) <= 0)
		return 0;
	for (int i = 0; i < sk_X509_num(chain); i++) {
		if (asn1_to_time(X509_get0_notAfter(sk_X509_value(chain, i)), &t) < 0)
			return 0;
		if (t < until)
			until = t;
	}
	return until;
}

/*
 * Called by OpenSSL instead of X509_verify_cert, with xctx set up exactly as for it
 * (store, the peer's chain, the SSL in ex_data, purpose, parameters, pki_verify_cb), so a
 * miss is the default verification itself.
 */
static int vcache_verify_cb(X509_STORE_CTX *xctx, void *arg)
{
	struct pki_vcache *vc = arg;
	unsigned char key[32];
	time_t now = time(NULL);
	int mark = pki_crl_grace_mark_index();

	/* Only the verification the entries were made by can be answered from them. */
	if (X509_STORE_CTX_get0_store(xctx) != vc->store ||
	    X509_STORE_CTX_get_verify_cb(xctx) != pki_verify_cb || mark < 0 ||
	    !X509_STORE_CTX_get0_cert(xctx))
		return X509_verify_cert(xctx);
	ERR_set_mark();
	if (chain_key(vc, xctx, key) < 0) {
		ERR_pop_to_mark(); /* no key (memory): verify without the cache */
		return X509_verify_cert(xctx);
	}
	ERR_clear_last_mark();
	if (vcache_get(vc, key, now)) {
		atomic_fetch_add_explicit(&vc->hits, 1, memory_order_relaxed);
		X509_STORE_CTX_set_error(xctx, X509_V_OK);
		return 1;
	}
	atomic_fetch_add_explicit(&vc->misses, 1, memory_order_relaxed);
	int ret = X509_verify_cert(xctx);
	if (ret == 1 && X509_STORE_CTX_get_error(xctx) == X509_V_OK &&
	    X509_STORE_CTX_get_ex_data(xctx, mark) == NULL) {
		time_t until = accept_until(vc, xctx, now);
		if (until > now)
			vcache_put(vc, key, until);
	}
	return ret;
}

/* Earliest nextUpdate among the store's CRLs (a CRL without one sets no bound). */
static int crl_bound(X509_STORE *store, bool *set, time_t *out)
{
	STACK_OF(X509_OBJECT) *objs = X509_STORE_get0_objects(store);
	time_t t;

	*set = false;
	for (int i = 0; i < sk_X509_OBJECT_num(objs); i++) {
		X509_OBJECT *o = sk_X509_OBJECT_value(objs, i);
		if (X509_OBJECT_get_type(o) != X509_LU_CRL)
			continue;
		const ASN1_TIME *nu = X509_CRL_get0_nextUpdate(X509_OBJECT_get0_X509_CRL(o));
		if (!nu)
			continue;
		if (asn1_to_time(nu, &t) < 0)
			return -1;
		if (!*set || t < *out)
			*out = t;
		*set = true;
	}
	return 0;
}

int pki_vcache_install(struct pki_server *srv, char *err, size_t errlen)
{
	struct pki_vcache *vc = NULL;

	pthread_once(&vcache_once, vcache_index_init);
	if (vcache_idx < 0 || pki_crl_grace_mark_index() < 0) {
		pki_err(err, errlen, "verify cache: cannot allocate OpenSSL ex_data index");
		return -1;
	}
	vc = calloc(1, sizeof(*vc));
	if (!vc) {
		pki_err(err, errlen, "verify cache: out of memory");
		return -1;
	}
	if (pthread_mutex_init(&vc->lock, NULL) != 0) {
		free(vc);
		pki_err(err, errlen, "verify cache: cannot create lock");
		return -1;
	}
	vc->store = srv->store;
	vc->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
	/* A nextUpdate that cannot be read: a bound in the past, so nothing is ever kept. */
	if (crl_bound(srv->store, &vc->crl_bound_set, &vc->crl_bound) < 0) {
		vc->crl_bound_set = true;
		vc->crl_bound = 0;
	}
	if (!vc->sha256 || SSL_CTX_set_ex_data(srv->ctx, vcache_idx, vc) != 1) {
		vcache_free(NULL, vc, NULL, 0, 0, NULL);
		pki_err(err, errlen, "verify cache: cannot attach to the TLS context");
		return -1;
	}
	SSL_CTX_set_cert_verify_callback(srv->ctx, vcache_verify_cb, vc);
	srv->vcache = vc;
	return 0;
}

void pki_server_vcache_stats(const struct pki_server *srv, uint64_t *hits, uint64_t *misses)
{
	const struct pki_vcache *vc = srv ? srv->vcache : NULL;

	if (hits)
		*hits = vc ? atomic_load_explicit(&vc->hits, memory_order_relaxed) : 0;
	if (misses)
		*misses = vc ? atomic_load_explicit(&vc->misses, memory_order_relaxed) : 0;
}
