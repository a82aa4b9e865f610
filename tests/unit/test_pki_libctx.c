/*
 * Unit tests of pki's lean library context (libctx.c), the one TLS server contexts run
 * in. It must offer fewer decoders than OpenSSL's default context (its reason to exist),
 * and everything a server does with it must work as in the default context: certificates
 * of every key type parse to a usable key, signatures made in the default context verify,
 * and real handshakes (BIO pair, pki_server_new and pki_client_new as the gateway uses
 * them) succeed for each client key type, in TLS 1.3 and 1.2, with each key exchange
 * group, in the lean context and, for comparison, in the default one.
 */
#define _XOPEN_SOURCE 700
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/decoder.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/provider.h>
#include <openssl/x509.h>

#include "cu.h"
#include "pki_int.h"

static char dir[256];

static int rm_cb(const char *p, const struct stat *st, int flag, struct FTW *f)
{
	(void)st;
	(void)flag;
	(void)f;
	return remove(p);
}

static int suite_init(void)
{
	snprintf(dir, sizeof(dir), "/tmp/test_pki_libctx.XXXXXX");
	return mkdtemp(dir) ? 0 : -1;
}

static int suite_clean(void)
{
	if (dir[0])
		nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
	return 0;
}

struct dec_count {
	int all, spki_der;
};

static void count_decoder(OSSL_DECODER *d, void *arg)
{
	struct dec_count *c = arg;
	const char *props = OSSL_DECODER_get0_properties(d);
	c->all++;
	if (props && strstr(props, "input=der") && strstr(props, "structure=SubjectPublicKeyInfo"))
		c->spki_der++;
}

/* The point of the lean context: only DER SubjectPublicKeyInfo decoders, all of them. */
static void test_fewer_decoders(void)
{
	OSSL_LIB_CTX *lean = pki_lean_libctx();
	CU_ASSERT_FATAL(lean != NULL);
	struct dec_count dflt = {0, 0}, l = {0, 0};
	OSSL_DECODER_do_all_provided(NULL, count_decoder, &dflt);
	OSSL_DECODER_do_all_provided(lean, count_decoder, &l);
	CU_ASSERT(l.all > 0);
	CU_ASSERT(l.all == l.spki_der);         /* nothing else */
	CU_ASSERT(l.spki_der == dflt.spki_der); /* every key type's */
	CU_ASSERT(l.all * 3 <= dflt.all);       /* 12 of 40 with OpenSSL 3.0 */
	CU_ASSERT(pki_lean_libctx() == lean);   /* one per process */
}

/* A certificate for `key`, signed by the EC key `ca` in the default context, as DER. */
static int cert_der(EVP_PKEY *key, EVP_PKEY *ca, unsigned char **der)
{
	X509 *x = X509_new();
	X509_NAME *n = x ? X509_get_subject_name(x) : NULL;
	int len = -1;
	if (n && X509_set_version(x, 2) && ASN1_INTEGER_set(X509_get_serialNumber(x), 7) &&
	    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)"k", -1, -1,
	                               0) &&
	    X509_set_issuer_name(x, n) && X509_gmtime_adj(X509_getm_notBefore(x), 0) &&
	    X509_gmtime_adj(X509_getm_notAfter(x), 3600) && X509_set_pubkey(x, key) &&
	    X509_sign(x, ca, EVP_sha256()) > 0)
		len = i2d_X509(x, der);
	X509_free(x);
	return len;
}

/* Signs with the private key in the default context, verifies with `pub` in lctx. */
static int sign_verify(EVP_PKEY *priv, EVP_PKEY *pub, OSSL_LIB_CTX *lctx)
{
	static const unsigned char msg[] = "certificate verify";
	bool no_md = EVP_PKEY_is_a(priv, "ED25519") || EVP_PKEY_is_a(priv, "ED448");
	unsigned char sig[1024];
	size_t slen = sizeof(sig);
	EVP_MD_CTX *s = EVP_MD_CTX_new(), *v = EVP_MD_CTX_new();
	int ok =
	    s && v && EVP_DigestSignInit(s, NULL, no_md ? NULL : EVP_sha256(), NULL, priv) == 1 &&
	    EVP_DigestSign(s, sig, &slen, msg, sizeof(msg)) == 1 &&
	    EVP_DigestVerifyInit_ex(v, NULL, no_md ? NULL : "SHA256", lctx, NULL, pub, NULL) == 1 &&
	    EVP_DigestVerify(v, sig, slen, msg, sizeof(msg)) == 1;
	EVP_MD_CTX_free(s);
	EVP_MD_CTX_free(v);
	return ok;
}

/* A new key of algorithm alg (EC: on curve param; RSA and RSA-PSS: 2048 bits). */
static EVP_PKEY *keygen(const char *alg, const char *param)
{
	if (param)
		return EVP_PKEY_Q_keygen(NULL, NULL, alg, param);
	if (strncmp(alg, "RSA", 3) != 0)
		return EVP_PKEY_Q_keygen(NULL, NULL, alg);
	/* EVP_PKEY_Q_keygen takes a size for "RSA" only; RSA-PSS goes the long way. */
	EVP_PKEY *k = NULL;
	EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_from_name(NULL, alg, NULL);
	if (!c || EVP_PKEY_keygen_init(c) != 1 || EVP_PKEY_CTX_set_rsa_keygen_bits(c, 2048) != 1 ||
	    EVP_PKEY_generate(c, &k) != 1)
		k = NULL;
	EVP_PKEY_CTX_free(c);
	return k;
}

/* Every key type a client certificate may carry parses in the lean context as in the
 * default one, and the parsed key verifies what the private key signed. */
static void test_parse_key_types(void)
{
	static const struct {
		const char *name, *alg, *param;
		bool signs;
	} kinds[] = {
	    {"P-256", "EC", "P-256", true},     {"P-384", "EC", "P-384", true},
	    {"P-521", "EC", "P-521", true},     {"RSA-2048", "RSA", NULL, true},
	    {"RSA-PSS", "RSA-PSS", NULL, true}, {"Ed25519", "ED25519", NULL, true},
	    {"Ed448", "ED448", NULL, true},     {"X25519", "X25519", NULL, false},
	};
	OSSL_LIB_CTX *lean = pki_lean_libctx();
	EVP_PKEY *ca = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	CU_ASSERT_FATAL(lean && ca);
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		EVP_PKEY *k = keygen(kinds[i].alg, kinds[i].param);
		unsigned char *der = NULL;
		int len = k ? cert_der(k, ca, &der) : -1;
		const unsigned char *p = der;
		X509 *x = len > 0 ? X509_new_ex(lean, NULL) : NULL;
		bool parsed = x && d2i_X509(&x, &p, len) != NULL;
		EVP_PKEY *pub = parsed ? X509_get0_pubkey(x) : NULL;
		if (!pub || EVP_PKEY_eq(pub, k) != 1 || X509_verify(x, ca) != 1 ||
		    (kinds[i].signs && !sign_verify(k, pub, lean))) {
			ERR_print_errors_fp(stderr);
			CU_FAIL(kinds[i].name);
		}
		X509_free(x);
		OPENSSL_free(der);
		EVP_PKEY_free(k);
	}
	EVP_PKEY_free(ca);
}

/* Drives both ends over a BIO pair until both are done; 1 when both handshakes succeed. */
static int bio_pair_handshake(SSL *cli, SSL *srv)
{
	BIO *a = NULL, *b = NULL;
	if (BIO_new_bio_pair(&a, 0, &b, 0) != 1)
		return 0;
	SSL_set_bio(cli, a, a);
	SSL_set_bio(srv, b, b);
	SSL_set_connect_state(cli);
	SSL_set_accept_state(srv);
	int cr = 0, sr = 0;
	for (int i = 0; i < 100 && (cr != 1 || sr != 1); i++) {
		if (cr != 1) {
			cr = SSL_do_handshake(cli);
			if (cr != 1 && SSL_get_error(cli, cr) != SSL_ERROR_WANT_READ)
				break;
		}
		if (sr != 1) {
			sr = SSL_do_handshake(srv);
			if (sr != 1 && SSL_get_error(srv, sr) != SSL_ERROR_WANT_READ)
				break;
		}
	}
	return cr == 1 && sr == 1;
}

static const char *issue(const char *cn, bool server, enum pki_key_type kt)
{
	static char path[8][512];
	static unsigned next;
	char *p = path[next++ % 8];
	char prefix[400], err[512] = "";
	snprintf(prefix, sizeof(prefix), "%s/%s", dir, cn);
	snprintf(p, sizeof(path[0]), "%s", prefix);
	struct pki_issued out;
	struct pki_issue_opts o = {.dir = dir,
	                           .cn = cn,
	                           .server = server,
	                           .key = kt,
	                           .out_prefix = prefix,
	                           .now = time(NULL)};
	if (pki_issue(&o, &out, err, sizeof(err)) != 0) {
		fprintf(stderr, "issue %s: %s\n", cn, err);
		return NULL;
	}
	return p;
}

/*
 * Real handshakes: each client key type, TLS 1.3 and 1.2, with X25519 and with P-256 as
 * the group agreed (libssl learns groups from the provider's capabilities, which the lean
 * provider passes through), against servers in the lean and in the default context.
 */
static void test_handshakes(void)
{
	static const struct {
		const char *cn;
		enum pki_key_type kt;
	} clients[] = {
	    {"c-ec", PKI_KEY_EC_P256}, {"c-ed", PKI_KEY_ED25519}, {"c-rsa", PKI_KEY_RSA}};
	/* TLS 1.2 with an ECDSA P-256 server certificate needs P-256 among the client's groups. */
	static const char *groups[2][2] = {{"X25519", "P-256"}, {"X25519:P-256", "P-256"}};
	static const int group_nid[2] = {NID_X25519, NID_X9_62_prime256v1};
	char err[512] = "", srv_crt[512], srv_key[512], ca[512];
	struct pki_ca_opts cao = {.dir = dir, .cn = "Lean CA", .now = time(NULL)};
	CU_ASSERT_FATAL(pki_ca_init(&cao, err, sizeof(err)) == 0);
	const char *sp = issue("localhost", true, PKI_KEY_EC_P256);
	CU_ASSERT_FATAL(sp != NULL);
	snprintf(srv_crt, sizeof(srv_crt), "%s.crt", sp);
	snprintf(srv_key, sizeof(srv_key), "%s.key", sp);
	snprintf(ca, sizeof(ca), "%s/ca.crt", dir);

	enum { N_CLIENTS = sizeof(clients) / sizeof(clients[0]) };
	char crt[N_CLIENTS][512], key[N_CLIENTS][512];
	for (size_t c = 0; c < N_CLIENTS; c++) {
		const char *cp = issue(clients[c].cn, false, clients[c].kt);
		CU_ASSERT_FATAL(cp != NULL);
		snprintf(crt[c], sizeof(crt[c]), "%s.crt", cp);
		snprintf(key[c], sizeof(key[c]), "%s.key", cp);
	}

	for (int plain = 0; plain < 2; plain++) {
		struct pki_server_opts so = {.cert_file = srv_crt,
		                             .key_file = srv_key,
		                             .client_ca_file = ca,
		                             .require_client_cert = true,
		                             .min_version = PKI_TLS12,
		                             .default_libctx = plain};
		struct pki_server *srv = NULL;
		CU_ASSERT_FATAL(pki_server_new(&so, &srv, err, sizeof(err)) == 0);
		for (size_t c = 0; c < N_CLIENTS; c++) {
			struct pki_client_opts co = {.ca_file = ca,
			                             .cert_file = crt[c],
			                             .key_file = key[c],
			                             .min_version = PKI_TLS12,
			                             .verify = true};
			struct pki_client *cli = NULL;
			CU_ASSERT_FATAL(pki_client_new(&co, &cli, err, sizeof(err)) == 0);
			for (int ver = 0; ver < 2; ver++) {
				for (size_t g = 0; g < 2; g++) {
					SSL *cs = pki_client_ssl_new(cli, "localhost");
					SSL *ss = SSL_new(pki_server_get0_ctx(srv));
					CU_ASSERT_FATAL(cs && ss);
					SSL_set_max_proto_version(cs, ver ? TLS1_2_VERSION
					                                  : TLS1_3_VERSION);
					SSL_set1_groups_list(cs, groups[ver][g]);
					int ok = bio_pair_handshake(cs, ss);
					X509 *peer = ok ? SSL_get0_peer_certificate(ss) : NULL;
					EVP_PKEY *pub = peer ? X509_get0_pubkey(peer) : NULL;
					/* The key's provider names the context the server parsed
					 * in. */
					const char *prov = pub ? OSSL_PROVIDER_get0_name(
					                             EVP_PKEY_get0_provider(pub))
					                       : "";
					if (!ok || !pub || pki_ssl_reason(ss) != PKI_OK ||
					    SSL_get_negotiated_group(ss) != group_nid[g] ||
					    strcmp(prov, plain ? "default" : "gw-lean") != 0) {
						ERR_print_errors_fp(stderr);
						fprintf(stderr, "handshake %s %s %s %s failed\n",
						        plain ? "default-ctx" : "lean-ctx",
						        clients[c].cn, ver ? "TLS1.2" : "TLS1.3",
						        groups[ver][g]);
						CU_FAIL("handshake");
					}
					SSL_free(cs);
					SSL_free(ss);
				}
			}
			pki_client_free(cli);
		}
		pki_server_free(srv);
	}
}

CU_SUITE(pki_libctx, suite_init, suite_clean, {"fewer_decoders", test_fewer_decoders},
         {"parse_key_types", test_parse_key_types}, {"handshakes", test_handshakes});
