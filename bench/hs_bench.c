/*
 * hs_bench: what a full TLS 1.3 mTLS handshake costs in OpenSSL itself, with no sockets,
 * no event loop and no kernel: a client SSL (pki_client_new, presenting alice's
 * certificate) and a server SSL (pki_server_new: client certificate required, CA bundle
 * and CRLs) talk over an in-memory BIO pair in one thread. The time spent inside each
 * side's OpenSSL calls is summed separately, so the server's figure is the library's
 * bound on full handshakes per second per core for the gateway's configuration.
 *
 * Variants (all run by default, or one with --variant NAME):
 *   no-tickets       num_tickets 0: nothing after the handshake
 *   stateless-1      session_tickets = true: one stateless ticket (our key callback)
 *   stateless-2      OpenSSL's default of two stateless tickets
 *   stateful-1       the gateway's default: one ticket naming a server-side cache entry
 *                    (what nginx/HAProxy send with a session cache and tickets off)
 *   stateful-1+vcache  as the gateway runs it: stateful-1 with pki's verified-chain
 *                    cache, which spares a returning client's chain its re-verification
 *   resume-stateless / resume-stateful: the client offers the previous session
 *   stateful-1/default-ctx  stateful-1 in OpenSSL's default library context instead of
 *                    pki's lean one (pki/libctx.c): the full cost of parsing the client's
 *                    certificate
 * Every variant but +vcache runs with the verified-chain cache off, so that it shows
 * OpenSSL's own cost. After the table, what parsing one client certificate costs (libssl
 * does it for every certificate a client sends, before any callback of ours can run) in
 * either library context, and how much of that is the public key's decoding alone.
 *
 * usage: hs_bench --pki DIR [-n N] [--passes P] [--variant NAME] [--json]
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "pki.h"
#include "pki_int.h" /* pki_lean_libctx: measured apart below */

struct hs_variant {
	const char *name;
	int num_tickets; /* -1: leave pki's setting */
	bool stateful;   /* SSL_OP_NO_TICKET: tickets name cache entries */
	bool tickets;    /* pki_server_opts.session_tickets */
	bool resume;     /* client offers the previous session */
	bool vcache;     /* pki's verified-chain cache on (the gateway's default) */
	bool plain_ctx;  /* OpenSSL's default library context instead of pki's lean one */
};

static const struct hs_variant variants[] = {
    {"no-tickets", 0, false, false, false, false, false},
    {"stateless-1", 1, false, true, false, false, false},
    {"stateless-2", 2, false, true, false, false, false},
    {"stateful-1", 1, true, false, false, false, false},
    {"stateful-1+vcache", 1, true, false, false, true, false},
    {"resume-stateless", 1, false, true, true, false, false},
    {"resume-stateful", 1, true, false, true, false, false},
    {"stateful-1/default-ctx", 1, true, false, false, false, true},
};

struct hs_result {
	unsigned n, resumed;
	double server_us, client_us; /* summed time inside each side's OpenSSL calls */
	double wall_s;
};

struct hs_pki {
	char cert[512], key[512], cas[512], crls[512], server_ca[512], ccert[512], ckey[512];
};

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Runs fn(ssl) and adds the time it took to *acc. */
static int timed_step(SSL *ssl, int (*fn)(SSL *), double *acc)
{
	double t0 = now_s();
	int rc = fn(ssl);
	*acc += now_s() - t0;
	return rc;
}

/* The client reads what the server sent after the handshake (its tickets). */
static int client_drain(SSL *ssl)
{
	char buf[64];
	int rc = SSL_read(ssl, buf, sizeof(buf));
	return rc > 0 ? 1 : rc;
}

static bool want_more(SSL *ssl, int rc)
{
	int e = SSL_get_error(ssl, rc);
	return e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE;
}

/* Drives both sides to the end of one handshake; 0, or -1 when either side failed. */
static int handshake_pair(SSL *cli, SSL *srv, struct hs_result *res)
{
	bool c_done = false, s_done = false;
	for (int round = 0; round < 64 && !(c_done && s_done); round++) {
		if (!c_done) {
			int rc = timed_step(cli, SSL_do_handshake, &res->client_us);
			if (rc == 1)
				c_done = true;
			else if (!want_more(cli, rc))
				return -1;
		}
		if (!s_done) {
			int rc = timed_step(srv, SSL_do_handshake, &res->server_us);
			if (rc == 1)
				s_done = true;
			else if (!want_more(srv, rc))
				return -1;
		}
	}
	if (!c_done || !s_done)
		return -1;
	/* TLS 1.3 tickets arrive after the client's handshake is complete. */
	int rc = timed_step(cli, client_drain, &res->client_us);
	if (rc <= 0 && !want_more(cli, rc))
		return -1;
	return 0;
}

/* One server context for the variant, from pki_server_new like the gateway's. */
static struct pki_server *server_new(const struct hs_pki *p, const struct hs_variant *v)
{
	const char *crls[] = {p->crls};
	struct pki_server_opts o = {.cert_file = p->cert,
	                            .key_file = p->key,
	                            .client_ca_file = p->cas,
	                            .crl_files = crls,
	                            .n_crl_files = 1,
	                            .require_client_cert = true,
	                            .session_tickets = v->tickets,
	                            .no_verify_cache = !v->vcache,
	                            .default_libctx = v->plain_ctx};
	struct pki_server *srv = NULL;
	char err[512];
	if (pki_server_new(&o, &srv, err, sizeof(err)) != 0) {
		fprintf(stderr, "hs_bench: server: %s\n", err);
		return NULL;
	}
	SSL_CTX *ctx = pki_server_get0_ctx(srv);
	if (v->stateful)
		SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
	if (v->num_tickets >= 0)
		SSL_CTX_set_num_tickets(ctx, (size_t)v->num_tickets);
	return srv;
}

static struct pki_client *client_new(const struct hs_pki *p)
{
	struct pki_client_opts o = {.ca_file = p->server_ca,
	                            .cert_file = p->ccert,
	                            .key_file = p->ckey,
	                            .min_version = PKI_TLS13,
	                            .verify = true};
	struct pki_client *cli = NULL;
	char err[512];
	if (pki_client_new(&o, &cli, err, sizeof(err)) != 0) {
		fprintf(stderr, "hs_bench: client: %s\n", err);
		return NULL;
	}
	return cli;
}

/* One handshake over a fresh BIO pair; the client session is kept for resumption. */
static int run_one(struct pki_server *srv, struct pki_client *cli, SSL_SESSION **sess, bool resume,
                   struct hs_result *res)
{
	SSL *c = pki_client_ssl_new(cli, "localhost");
	SSL *s = SSL_new(pki_server_get0_ctx(srv));
	BIO *cb = NULL, *sb = NULL;
	int rc = -1;
	if (!c || !s || BIO_new_bio_pair(&cb, 0, &sb, 0) != 1)
		goto fail;
	SSL_set_bio(c, cb, cb);
	SSL_set_bio(s, sb, sb);
	SSL_set_accept_state(s);
	if (resume && *sess)
		SSL_set_session(c, *sess);
	if (handshake_pair(c, s, res) != 0)
		goto fail;
	res->n++;
	res->resumed += SSL_session_reused(s) ? 1 : 0;
	if (resume) {
		SSL_SESSION_free(*sess);
		*sess = SSL_get1_session(c);
	}
	/* As after an orderly close: SSL_free() of a connection not shut down marks its
	 * session not resumable and drops it from the server's cache. */
	SSL_set_shutdown(c, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
	SSL_set_shutdown(s, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
	rc = 0;
fail:
	if (rc != 0)
		ERR_print_errors_fp(stderr);
	SSL_free(c);
	SSL_free(s);
	return rc;
}

static int run_variant(const struct hs_pki *p, const struct hs_variant *v, unsigned n,
                       struct hs_result *res)
{
	struct pki_server *srv = server_new(p, v);
	struct pki_client *cli = client_new(p);
	SSL_SESSION *sess = NULL;
	int rc = -1;
	memset(res, 0, sizeof(*res));
	if (!srv || !cli)
		goto fail;
	/* A warm-up handshake (first-use costs, and the session to resume). */
	struct hs_result warm = {0};
	if (run_one(srv, cli, &sess, v->resume, &warm) != 0)
		goto fail;
	double t0 = now_s();
	for (unsigned i = 0; i < n; i++)
		if (run_one(srv, cli, &sess, v->resume, res) != 0)
			goto fail;
	res->wall_s = now_s() - t0;
	rc = 0;
fail:
	SSL_SESSION_free(sess);
	pki_client_free(cli);
	pki_server_free(srv);
	return rc;
}

static void print_result(const struct hs_variant *v, const struct hs_result *r, bool json,
                         bool first)
{
	double s_us = r->server_us * 1e6 / r->n, c_us = r->client_us * 1e6 / r->n;
	if (json) {
		printf("%s{\"variant\":\"%s\",\"handshakes\":%u,\"resumed\":%u,\"server_us\":%.1f,"
		       "\"client_us\":%.1f,\"pairs_per_s\":%.0f,\"server_ceiling_per_s\":%.0f}",
		       first ? "" : ",", v->name, r->n, r->resumed, s_us, c_us, r->n / r->wall_s,
		       1e6 / s_us);
		return;
	}
	printf("%-22s %6u %7u %10.1f %10.1f %12.0f %14.0f\n", v->name, r->n, r->resumed, s_us, c_us,
	       r->n / r->wall_s, 1e6 / s_us);
}

/*
 * Microseconds per parse of the certificate in PEM file `path` in library context lctx, as
 * libssl's tls_process_client_certificate does it (X509_new_ex, then d2i_X509), and per
 * decode of its SubjectPublicKeyInfo alone (d2i_PUBKEY_ex); best of `passes` runs of n. OpenSSL 3.0
 * decodes every certificate's key through its provider decoder machinery, and this shows
 * that cost apart from the handshake's. Returns -1 if the file cannot be read.
 */
static int cert_parse_cost(const char *path, OSSL_LIB_CTX *lctx, unsigned n, unsigned passes,
                           double *parse_us, double *key_us)
{
	FILE *f = fopen(path, "r");
	X509 *x = f ? PEM_read_X509(f, NULL, NULL, NULL) : NULL;
	if (f)
		fclose(f);
	unsigned char *der = NULL, *spki = NULL;
	int dlen = x ? i2d_X509(x, &der) : -1;
	int slen = x ? i2d_PUBKEY(X509_get0_pubkey(x), &spki) : -1;
	X509_free(x);
	int rc = dlen > 0 && slen > 0 ? 0 : -1;
	*parse_us = *key_us = 1e9;
	for (unsigned p = 0; rc == 0 && p < passes; p++) {
		double t0 = now_s();
		for (unsigned i = 0; i < n && rc == 0; i++) {
			const unsigned char *q = der;
			X509 *y = X509_new_ex(lctx, NULL);
			if (!y || !d2i_X509(&y, &q, dlen))
				rc = -1;
			X509_free(y);
		}
		double t1 = now_s();
		for (unsigned i = 0; i < n && rc == 0; i++) {
			const unsigned char *q = spki;
			EVP_PKEY *k = d2i_PUBKEY_ex(NULL, &q, slen, lctx, NULL);
			if (!k)
				rc = -1;
			EVP_PKEY_free(k);
		}
		double t2 = now_s();
		if ((t1 - t0) * 1e6 / n < *parse_us)
			*parse_us = (t1 - t0) * 1e6 / n;
		if ((t2 - t1) * 1e6 / n < *key_us)
			*key_us = (t2 - t1) * 1e6 / n;
	}
	OPENSSL_free(der);
	OPENSSL_free(spki);
	return rc;
}

static void pki_paths(struct hs_pki *p, const char *dir)
{
	snprintf(p->cert, sizeof(p->cert), "%s/server.crt", dir);
	snprintf(p->key, sizeof(p->key), "%s/server.key", dir);
	snprintf(p->cas, sizeof(p->cas), "%s/client-cas.pem", dir);
	snprintf(p->crls, sizeof(p->crls), "%s/crls.pem", dir);
	snprintf(p->server_ca, sizeof(p->server_ca), "%s/server-ca.crt", dir);
	snprintf(p->ccert, sizeof(p->ccert), "%s/alice.crt", dir);
	snprintf(p->ckey, sizeof(p->ckey), "%s/alice.key", dir);
}

static void usage(void)
{
	fprintf(stderr, "usage: hs_bench --pki DIR [-n N] [--passes P] [--variant NAME] [--json]\n"
	                "  DIR: made by tests/tools/mkpki.sh, plus client-cas.pem (ca + inter)\n");
}

#define N_VARIANTS (sizeof(variants) / sizeof(variants[0]))

/*
 * Runs every selected variant `passes` times, interleaved, and keeps each variant's pass
 * with the least server time: other load on the machine only ever adds time, so the
 * fastest pass is the best estimate of the library's own cost. Returns 0, or 1 when a
 * variant failed.
 */
static int run_passes(const struct hs_pki *p, const char *only, unsigned n, unsigned passes,
                      struct hs_result best[N_VARIANTS])
{
	int rc = 0;
	memset(best, 0, N_VARIANTS * sizeof(best[0]));
	for (unsigned pass = 0; pass < passes; pass++) {
		for (size_t i = 0; i < N_VARIANTS; i++) {
			struct hs_result r;
			if (only && strcmp(only, variants[i].name) != 0)
				continue;
			if (run_variant(p, &variants[i], n, &r) != 0) {
				fprintf(stderr, "hs_bench: variant %s failed\n", variants[i].name);
				rc = 1;
				continue;
			}
			if (best[i].n == 0 || r.server_us < best[i].server_us)
				best[i] = r;
		}
	}
	return rc;
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {{"pki", required_argument, NULL, 'p'},
	                                   {"variant", required_argument, NULL, 'v'},
	                                   {"passes", required_argument, NULL, 'P'},
	                                   {"json", no_argument, NULL, 'j'},
	                                   {NULL, 0, NULL, 0}};
	const char *dir = NULL, *only = NULL;
	unsigned n = 1000, passes = 3;
	bool json = false, first = true;
	int opt;
	while ((opt = getopt_long(argc, argv, "n:", lo, NULL)) != -1) {
		switch (opt) {
		case 'p':
			dir = optarg;
			break;
		case 'v':
			only = optarg;
			break;
		case 'P':
			passes = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'j':
			json = true;
			break;
		case 'n':
			n = (unsigned)strtoul(optarg, NULL, 10);
			break;
		default:
			usage();
			return 2;
		}
	}
	if (!dir || n == 0 || passes == 0) {
		usage();
		return 2;
	}
	struct hs_pki p;
	memset(&p, 0, sizeof(p)); /* pki_paths fills it; zeroed for the analysers */
	struct hs_result best[N_VARIANTS];
	pki_paths(&p, dir);
	int rc = run_passes(&p, only, n, passes, best);
	/* [0]: OpenSSL's default library context, [1]: pki's lean one. */
	double parse_us[2] = {0, 0}, key_us[2] = {0, 0};
	for (int i = 0; i < 2; i++) {
		if (cert_parse_cost(p.ccert, i ? pki_lean_libctx() : NULL, n, passes, &parse_us[i],
		                    &key_us[i]) != 0) {
			fprintf(stderr, "hs_bench: cannot parse %s\n", p.ccert);
			rc = 1;
		}
	}
	if (json)
		printf("{\"openssl\":\"%s\",\"passes\":%u,\"results\":[",
		       OpenSSL_version(OPENSSL_VERSION), passes);
	else
		printf("%s, TLS 1.3, ECDSA P-256 certificates, X25519, client cert + CRL checks;\n"
		       "best of %u interleaved passes of %u handshakes per variant\n"
		       "%-22s %6s %7s %10s %10s %12s %14s\n",
		       OpenSSL_version(OPENSSL_VERSION), passes, n, "variant", "n", "resumed",
		       "server_us", "client_us", "pairs/s", "server_max/s");
	for (size_t i = 0; i < N_VARIANTS; i++) {
		if (best[i].n == 0)
			continue;
		print_result(&variants[i], &best[i], json, first);
		first = false;
	}
	if (json)
		printf("],\"cert_parse_us\":{\"default_ctx\":%.1f,\"lean_ctx\":%.1f},"
		       "\"pubkey_decode_us\":{\"default_ctx\":%.1f,\"lean_ctx\":%.1f}}\n",
		       parse_us[0], parse_us[1], key_us[0], key_us[1]);
	else
		printf("parsing the client certificate (X509_new_ex + d2i_X509, as libssl does):\n"
		       "  OpenSSL's default library context %7.1f us, of which its public key "
		       "%7.1f us\n"
		       "  pki's lean library context        %7.1f us, of which its public key "
		       "%7.1f us\n",
		       parse_us[0], key_us[0], parse_us[1], key_us[1]);
	return rc;
}
