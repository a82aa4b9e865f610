/*
 * Why a client certificate was refused: the verify callback that records the reason on
 * the SSL, the X509_V_ERR -> pki_reason mapping, the gateway's own leaf checks and the
 * re-verification of established connections after a reload.
 */
#include <stdint.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "pki_int.h"

/*
 * The ex_data index is process-wide OpenSSL state, so it is created exactly once even
 * when several threads build servers at the same time.
 */
static pthread_once_t reason_once = PTHREAD_ONCE_INIT;
static int reason_idx = -1;

static void reason_index_init(void)
{
	reason_idx = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
}

int pki_reason_index(void)
{
	pthread_once(&reason_once, reason_index_init);
	return reason_idx;
}

static const char *const reason_tokens[PKI_REASON_MAX] = {
    [PKI_OK] = "ok",
    [PKI_NO_CERT] = "no_cert",
    [PKI_UNKNOWN_CA] = "unknown_ca",
    [PKI_SELF_SIGNED] = "self_signed",
    [PKI_EXPIRED] = "expired",
    [PKI_NOT_YET_VALID] = "not_yet_valid",
    [PKI_REVOKED] = "revoked",
    [PKI_CRL_PROBLEM] = "crl_problem",
    [PKI_BAD_EKU] = "bad_eku",
    [PKI_LEAF_IS_CA] = "leaf_is_ca",
    [PKI_CHAIN_TOO_LONG] = "chain_too_long",
    [PKI_BAD_SIGNATURE] = "bad_signature",
    [PKI_PROTOCOL] = "protocol",
    [PKI_OTHER] = "other",
};

const char *pki_reason_str(enum pki_reason r)
{
	if ((unsigned)r >= PKI_REASON_MAX)
		return "other";
	return reason_tokens[r];
}

enum pki_reason pki_reason_from_x509(int e)
{
	switch (e) {
	case X509_V_OK:
		return PKI_OK;
	case X509_V_ERR_CERT_HAS_EXPIRED:
	case X509_V_ERR_ERROR_IN_CERT_NOT_AFTER_FIELD:
		return PKI_EXPIRED;
	case X509_V_ERR_CERT_NOT_YET_VALID:
	case X509_V_ERR_ERROR_IN_CERT_NOT_BEFORE_FIELD:
		return PKI_NOT_YET_VALID;
	case X509_V_ERR_CERT_REVOKED:
		return PKI_REVOKED;
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
	case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
	case X509_V_ERR_CERT_UNTRUSTED:
		return PKI_UNKNOWN_CA;
	case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
	case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
		return PKI_SELF_SIGNED;
	case X509_V_ERR_UNABLE_TO_GET_CRL:
	case X509_V_ERR_UNABLE_TO_GET_CRL_ISSUER:
	case X509_V_ERR_CRL_HAS_EXPIRED:
	case X509_V_ERR_CRL_NOT_YET_VALID:
	case X509_V_ERR_CRL_SIGNATURE_FAILURE:
	case X509_V_ERR_UNABLE_TO_DECRYPT_CRL_SIGNATURE:
	case X509_V_ERR_ERROR_IN_CRL_LAST_UPDATE_FIELD:
	case X509_V_ERR_ERROR_IN_CRL_NEXT_UPDATE_FIELD:
	case X509_V_ERR_KEYUSAGE_NO_CRL_SIGN:
	case X509_V_ERR_DIFFERENT_CRL_SCOPE:
	case X509_V_ERR_UNHANDLED_CRITICAL_CRL_EXTENSION:
	case X509_V_ERR_CRL_PATH_VALIDATION_ERROR:
		return PKI_CRL_PROBLEM;
	case X509_V_ERR_CERT_CHAIN_TOO_LONG:
	case X509_V_ERR_PATH_LENGTH_EXCEEDED:
		return PKI_CHAIN_TOO_LONG;
	case X509_V_ERR_CERT_SIGNATURE_FAILURE:
	case X509_V_ERR_UNABLE_TO_DECRYPT_CERT_SIGNATURE:
	case X509_V_ERR_UNABLE_TO_DECODE_ISSUER_PUBLIC_KEY:
		return PKI_BAD_SIGNATURE;
	case X509_V_ERR_INVALID_PURPOSE:
	case X509_V_ERR_KEYUSAGE_NO_DIGITAL_SIGNATURE:
		return PKI_BAD_EKU;
	default:
		return PKI_OTHER;
	}
}

enum pki_reason pki_check_client_leaf(X509 *leaf)
{
	if (!leaf)
		return PKI_NO_CERT;
	/* Also fills OpenSSL's extension cache the accessors below read. */
	uint32_t flags = X509_get_extension_flags(leaf);
	if (flags & EXFLAG_INVALID)
		return PKI_OTHER;
	/* basicConstraints itself, not X509_check_ca(), which also guesses for v1 certs. */
	if ((flags & EXFLAG_BCONS) && (flags & EXFLAG_CA))
		return PKI_LEAF_IS_CA;
	if ((flags & EXFLAG_KUSAGE) && !(X509_get_key_usage(leaf) & KU_DIGITAL_SIGNATURE))
		return PKI_BAD_EKU;
	/* anyExtendedKeyUsage is not enough, as in OpenSSL's own ssl_client purpose. */
	if ((flags & EXFLAG_XKUSAGE) && !(X509_get_extended_key_usage(leaf) & XKU_SSL_CLIENT))
		return PKI_BAD_EKU;
	return PKI_OK;
}

/* Keeps the first failure only: later callbacks describe consequences, not the cause. */
static void record_reason(SSL *ssl, enum pki_reason r)
{
	int idx = pki_reason_index();
	if (idx < 0 || SSL_get_ex_data(ssl, idx) != NULL)
		return;
	SSL_set_ex_data(ssl, idx, (void *)(intptr_t)r);
}

int pki_verify_cb(int preverify_ok, X509_STORE_CTX *xctx)
{
	SSL *ssl = X509_STORE_CTX_get_ex_data(xctx, SSL_get_ex_data_X509_STORE_CTX_idx());

	if (!preverify_ok) {
		if (pki_crl_grace_ok(xctx))
			return 1; /* expired CRL inside the configured grace period */
		if (ssl)
			record_reason(ssl, pki_reason_from_x509(X509_STORE_CTX_get_error(xctx)));
		return 0;
	}
	/* OpenSSL calls back once per chain member, the leaf (depth 0) last. */
	if (X509_STORE_CTX_get_error_depth(xctx) != 0)
		return 1;
	enum pki_reason r = pki_check_client_leaf(X509_STORE_CTX_get_current_cert(xctx));
	if (r == PKI_OK)
		return 1;
	X509_STORE_CTX_set_error(xctx, X509_V_ERR_APPLICATION_VERIFICATION);
	if (ssl)
		record_reason(ssl, r);
	return 0;
}

static bool is_no_cert_error(unsigned long e)
{
	return e != 0 && ERR_GET_LIB(e) == ERR_LIB_SSL &&
	       ERR_GET_REASON(e) == SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE;
}

/* Peeks only (first and last entry): the caller may still want to log the queue. */
static bool queue_has_no_cert(void)
{
	return is_no_cert_error(ERR_peek_error()) || is_no_cert_error(ERR_peek_last_error());
}

/*
 * With SSL_VERIFY_FAIL_IF_NO_PEER_CERT and an empty client Certificate message, OpenSSL
 * never calls the verify callback, so "no certificate" is inferred: no peer certificate
 * and either the handshake stopped while processing the client's Certificate message
 * (TLS_ST_SR_CERT, same state in TLS 1.2 and 1.3), or the error queue, if the caller has
 * not drained it yet, says PEER_DID_NOT_RETURN_A_CERTIFICATE. Anything else that failed
 * without a recorded reason (version, cipher, garbage, timeout) is a protocol failure.
 */
enum pki_reason pki_ssl_reason(const SSL *ssl)
{
	int idx = pki_reason_index();
	void *rec = (ssl && idx >= 0) ? SSL_get_ex_data(ssl, idx) : NULL;

	if (!ssl)
		return PKI_PROTOCOL;
	if (rec)
		return (enum pki_reason)(intptr_t)rec;
	if (SSL_is_init_finished(ssl))
		return PKI_OK;
	if (SSL_get0_peer_certificate(ssl) == NULL &&
	    (SSL_get_state(ssl) == TLS_ST_SR_CERT || queue_has_no_cert()))
		return PKI_NO_CERT;
	return PKI_PROTOCOL;
}

enum pki_reason pki_server_reverify(const struct pki_server *srv, const SSL *ssl)
{
	X509 *leaf = ssl ? SSL_get0_peer_certificate(ssl) : NULL;
	X509_STORE_CTX *xctx = NULL;
	enum pki_reason r = PKI_OTHER;

	if (!srv || !leaf)
		return PKI_NO_CERT;
	xctx = X509_STORE_CTX_new();
	if (!xctx)
		goto fail;
	/*
	 * Only what the peer sent is untrusted input; the old verified chain would smuggle
	 * in the old trust anchor. (A session resumed from a ticket keeps the leaf but not
	 * the peer's intermediates, so such a chain only re-verifies if the store has them.)
	 */
	if (X509_STORE_CTX_init(xctx, srv->store, leaf, SSL_get_peer_cert_chain(ssl)) != 1)
		goto fail;
	X509_STORE_CTX_set_purpose(xctx, X509_PURPOSE_SSL_CLIENT);
	X509_STORE_CTX_set_depth(xctx, srv->depth);
	X509_STORE_CTX_set_flags(xctx, srv->vflags);
	if (X509_verify_cert(xctx) == 1) {
		r = pki_check_client_leaf(leaf);
	} else {
		int e = X509_STORE_CTX_get_error(xctx);
		/* A failure without an X509 error is internal (memory), never a pass. */
		r = e == X509_V_OK ? PKI_OTHER : pki_reason_from_x509(e);
	}
	X509_STORE_CTX_free(xctx);
	return r;
fail:
	X509_STORE_CTX_free(xctx);
	ERR_clear_error();
	return r;
}
