/*
 * Stateless session tickets (session_tickets = true) with our own keys: a current key that
 * encrypts new tickets and the previous one that still decrypts (so a rotation does not
 * force every client into a full handshake at once). A ticket thus lives at most two
 * rotation periods; a resumption renews it under the current key.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "pki_int.h"

static pthread_once_t tickets_once = PTHREAD_ONCE_INIT;
static int tickets_idx = -1;

/* Runs when the SSL_CTX's last reference goes, i.e. after the last SSL using it. */
static void tickets_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl,
                         void *argp)
{
	struct pki_tickets *t = ptr;
	if (!t)
		return;
	pthread_rwlock_destroy(&t->lock);
	OPENSSL_cleanse(t, sizeof(*t));
	free(t);
}

static void tickets_index_init(void)
{
	tickets_idx = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, tickets_free);
}

static int key_generate(struct pki_ticket_key *k)
{
	if (RAND_bytes(k->name, sizeof(k->name)) != 1 ||
	    RAND_priv_bytes(k->aes, sizeof(k->aes)) != 1 ||
	    RAND_priv_bytes(k->hmac, sizeof(k->hmac)) != 1)
		return -1;
	return 0;
}

/* Finds the key for a ticket name; 1 = current, 2 = previous (renew), 0 = unknown. */
static int key_lookup(struct pki_tickets *t, const unsigned char *name, struct pki_ticket_key *out)
{
	int found = 0;

	pthread_rwlock_rdlock(&t->lock);
	if (memcmp(name, t->cur.name, PKI_TICKET_NAME_LEN) == 0) {
		*out = t->cur;
		found = 1;
	} else if (t->have_prev && memcmp(name, t->prev.name, PKI_TICKET_NAME_LEN) == 0) {
		*out = t->prev;
		found = 2;
	}
	pthread_rwlock_unlock(&t->lock);
	return found;
}

static int mac_init(EVP_MAC_CTX *hctx, unsigned char *key)
{
	OSSL_PARAM params[3];
	params[0] = OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, key, 32);
	params[1] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0);
	params[2] = OSSL_PARAM_construct_end();
	return EVP_MAC_CTX_set_params(hctx, params) == 1 ? 0 : -1;
}

/*
 * OpenSSL's ticket key callback. Returns -1 on error, 0 when the ticket is unknown (full
 * handshake), 1 on success and 2 ("renew") on success when OpenSSL must issue a fresh
 * ticket under the current key: for a ticket made with the previous key, and for every
 * TLS 1.3 ticket. With 1, OpenSSL 3.0 sends no NewSessionTicket after a TLS 1.3
 * resumption, so a client (which uses a TLS 1.3 ticket once) would alternate between
 * resumed and full handshakes. TLS 1.2 tickets are reused as they are.
 */
static int ticket_cb(SSL *ssl, unsigned char name[16], unsigned char *iv, EVP_CIPHER_CTX *cctx,
                     EVP_MAC_CTX *hctx, int enc)
{
	struct pki_tickets *t = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), tickets_idx);
	struct pki_ticket_key k;
	int ret = -1;

	if (!t)
		return -1;
	if (enc) {
		pthread_rwlock_rdlock(&t->lock);
		k = t->cur;
		pthread_rwlock_unlock(&t->lock);
		memcpy(name, k.name, PKI_TICKET_NAME_LEN);
		if (RAND_bytes(iv, EVP_MAX_IV_LENGTH) != 1 ||
		    EVP_EncryptInit_ex(cctx, EVP_aes_256_cbc(), NULL, k.aes, iv) != 1 ||
		    mac_init(hctx, k.hmac) < 0)
			goto done;
		ret = 1;
	} else {
		int found = key_lookup(t, name, &k);
		if (found == 0) {
			ret = 0;
			goto done;
		}
		if (mac_init(hctx, k.hmac) < 0 ||
		    EVP_DecryptInit_ex(cctx, EVP_aes_256_cbc(), NULL, k.aes, iv) != 1)
			goto done;
		ret = (found == 2 || SSL_version(ssl) >= TLS1_3_VERSION) ? 2 : 1;
	}
done:
	OPENSSL_cleanse(&k, sizeof(k));
	return ret;
}

int pki_tickets_install(SSL_CTX *ctx, struct pki_tickets **out, char *err, size_t errlen)
{
	struct pki_tickets *t = NULL;

	pthread_once(&tickets_once, tickets_index_init);
	if (tickets_idx < 0) {
		pki_err(err, errlen, "session tickets: cannot allocate OpenSSL ex_data index");
		return -1;
	}
	t = calloc(1, sizeof(*t));
	if (!t) {
		pki_err(err, errlen, "session tickets: out of memory");
		return -1;
	}
	if (pthread_rwlock_init(&t->lock, NULL) != 0) {
		free(t);
		pki_err(err, errlen, "session tickets: cannot create lock");
		return -1;
	}
	if (key_generate(&t->cur) < 0) {
		pki_err(err, errlen, "session tickets: cannot generate key");
		goto fail;
	}
	/* From here on the ctx owns t and frees it through tickets_free. */
	if (SSL_CTX_set_ex_data(ctx, tickets_idx, t) != 1) {
		pki_err(err, errlen, "session tickets: cannot attach keys");
		goto fail;
	}
	if (SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, ticket_cb) != 1) {
		pki_err(err, errlen, "session tickets: cannot install callback");
		return -1;
	}
	*out = t;
	return 0;
fail:
	tickets_free(NULL, t, NULL, 0, 0, NULL);
	return -1;
}

int pki_tickets_rotate(struct pki_tickets *t)
{
	struct pki_ticket_key k;

	/* Generated outside the lock: handshakes must not wait on the RNG. */
	if (key_generate(&k) < 0) {
		OPENSSL_cleanse(&k, sizeof(k));
		return -1;
	}
	pthread_rwlock_wrlock(&t->lock);
	t->prev = t->cur;
	t->have_prev = true;
	t->cur = k;
	pthread_rwlock_unlock(&t->lock);
	OPENSSL_cleanse(&k, sizeof(k));
	return 0;
}
