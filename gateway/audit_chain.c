/*
 * audit_chain.c: sealing records into the hash chain, signed checkpoints, key files, and
 * the streaming verifier that names the first record that was modified, deleted,
 * inserted or reordered. The canonical form is defined in docs/audit.md; this file and
 * that document must change together.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <sodium.h>

#include "audit_chain.h"

#define CHAIN_TAG     ",\"chain\":\""
#define CHAIN_TAG_LEN (sizeof(CHAIN_TAG) - 1)
#define SIG_TAG       ",\"sig\":\""
#define SIG_TAG_LEN   (sizeof(SIG_TAG) - 1)
#define SIG_B64_LEN   88 /* base64 of 64 bytes, padded */

/* Domain separation: a checkpoint signature can never be replayed as another message. */
static const char sig_domain[] = "gwaudit/1 checkpoint";
static const char sk_label[] = "gwaudit-ed25519-secret:";
static const char pk_label[] = "gwaudit-ed25519-public:";

enum { PEND_NONE, PEND_SUSPECT, PEND_SEARCH };

/* ---------------------------------------------------------------- buffers -- */

int audit_buf_reserve(struct audit_buf *b, size_t extra)
{
	if (extra > SIZE_MAX / 2 - b->len)
		return -1;
	if (b->len + extra <= b->cap)
		return 0;
	size_t cap = b->cap ? b->cap : 1024; /* a typical record fits */
	while (cap < b->len + extra)
		cap *= 2;
	char *p = realloc(b->p, cap);
	if (!p)
		return -1;
	b->p = p;
	b->cap = cap;
	return 0;
}

int audit_buf_add(struct audit_buf *b, const void *p, size_t n)
{
	if (audit_buf_reserve(b, n) != 0)
		return -1;
	memcpy(b->p + b->len, p, n);
	b->len += n;
	return 0;
}

void audit_buf_free(struct audit_buf *b)
{
	free(b->p);
	b->p = NULL;
	b->len = b->cap = 0;
}

/* ----------------------------------------------------------------- chain -- */

static void chain_hash(const unsigned char prev[AUDIT_HASH_BYTES], const char *p, size_t n,
                       unsigned char out[AUDIT_HASH_BYTES])
{
	crypto_generichash_state st;
	crypto_generichash_init(&st, NULL, 0, AUDIT_HASH_BYTES);
	crypto_generichash_update(&st, prev, AUDIT_HASH_BYTES);
	crypto_generichash_update(&st, (const unsigned char *)p, n);
	crypto_generichash_final(&st, out, AUDIT_HASH_BYTES);
}

/*
 * Appends obj without its closing brace, then ,"seq":N and ,"chain":"hex", and advances
 * ch. Room for the closing bytes (a signature, "}\n") is reserved too, so the caller's
 * appends after a successful link cannot fail.
 */
static int chain_link(struct audit_chain *ch, const char *obj, size_t len, struct audit_buf *out)
{
	if (len < 2 || obj[0] != '{' || obj[len - 1] != '}')
		return -1;
	if (audit_buf_reserve(out, len + 256) != 0)
		return -1;
	static const char hexd[] = "0123456789abcdef";
	uint64_t seq = ch->seq + 1;
	size_t start = out->len;
	/* ,"seq":N written by hand: this runs once per record on the writer thread. */
	char seqtxt[40], *d = seqtxt + sizeof(seqtxt);
	for (uint64_t v = seq; v; v /= 10)
		*--d = (char)('0' + v % 10);
	d -= 6;
	memcpy(d, "\"seq\":", 6);
	if (len > 2)
		*--d = ',';
	audit_buf_add(out, obj, len - 1);
	audit_buf_add(out, d, (size_t)(seqtxt + sizeof(seqtxt) - d));
	unsigned char h[AUDIT_HASH_BYTES];
	chain_hash(ch->head, out->p + start, out->len - start, h);
	char tail[CHAIN_TAG_LEN + 2 * AUDIT_HASH_BYTES + 2];
	memcpy(tail, CHAIN_TAG, CHAIN_TAG_LEN);
	for (size_t i = 0; i < AUDIT_HASH_BYTES; i++) {
		tail[CHAIN_TAG_LEN + 2 * i] = hexd[h[i] >> 4];
		tail[CHAIN_TAG_LEN + 2 * i + 1] = hexd[h[i] & 15];
	}
	tail[CHAIN_TAG_LEN + 2 * AUDIT_HASH_BYTES] = '"';
	audit_buf_add(out, tail, CHAIN_TAG_LEN + 2 * AUDIT_HASH_BYTES + 1);
	ch->seq = seq;
	memcpy(ch->head, h, AUDIT_HASH_BYTES);
	ch->segment++;
	ch->since_ckpt++;
	return 0;
}

int audit_chain_seal(struct audit_chain *ch, const char *obj, size_t len, struct audit_buf *out)
{
	if (chain_link(ch, obj, len, out) != 0)
		return -1;
	audit_buf_add(out, "}\n", 2);
	return 0;
}

int audit_chain_open(struct audit_chain *ch, const char *time, const char *reason,
                     struct audit_buf *out)
{
	char hex[2 * AUDIT_HASH_BYTES + 1], obj[384];
	sodium_bin2hex(hex, sizeof(hex), ch->head, AUDIT_HASH_BYTES);
	int n = snprintf(obj, sizeof(obj),
	                 "{\"type\":\"audit_open\",\"time\":\"%s\",\"format\":\"gwaudit/1\","
	                 "\"reason\":\"%s\",\"prev\":\"%s\"}",
	                 time, reason, hex);
	if (n < 0 || (size_t)n >= sizeof(obj))
		return -1;
	uint64_t segment = ch->segment;
	ch->segment = 0; /* the opening record is the first of its segment */
	if (audit_chain_seal(ch, obj, (size_t)n, out) != 0) {
		ch->segment = segment;
		return -1;
	}
	return 0;
}

int audit_chain_checkpoint(struct audit_chain *ch, const char *time, bool final,
                           const struct audit_signer *s, struct audit_buf *out)
{
	char obj[256];
	int n = snprintf(
	    obj, sizeof(obj),
	    "{\"type\":\"checkpoint\",\"time\":\"%s\",\"records\":%llu,\"final\":%s%s%s%s}", time,
	    (unsigned long long)(ch->segment + 1), final ? "true" : "false", s ? ",\"key\":\"" : "",
	    s ? s->key_id : "", s ? "\"" : "");
	if (n < 0 || (size_t)n >= sizeof(obj) || chain_link(ch, obj, (size_t)n, out) != 0)
		return -1;
	if (s) {
		/* The signature covers the checkpoint's own chain value, hence every byte before.
		 */
		unsigned char msg[sizeof(sig_domain) + AUDIT_HASH_BYTES], sig[AUDIT_SIG_BYTES];
		char b64[SIG_B64_LEN + 1];
		memcpy(msg, sig_domain, sizeof(sig_domain));
		memcpy(msg + sizeof(sig_domain), ch->head, AUDIT_HASH_BYTES);
		crypto_sign_detached(sig, NULL, msg, sizeof(msg), s->sk);
		sodium_bin2base64(b64, sizeof(b64), sig, sizeof(sig),
		                  sodium_base64_VARIANT_ORIGINAL);
		audit_buf_add(out, SIG_TAG, SIG_TAG_LEN);
		audit_buf_add(out, b64, SIG_B64_LEN);
		audit_buf_add(out, "\"", 1);
	}
	audit_buf_add(out, "}\n", 2);
	ch->since_ckpt = 0;
	return 0;
}

int audit_chain_resume(struct audit_chain *ch, const char *line, size_t len)
{
	struct audit_line l;
	if (audit_line_parse(line, len, &l) != 0)
		return -1;
	ch->seq = l.seq;
	memcpy(ch->head, l.chain, AUDIT_HASH_BYTES);
	ch->segment = 0;
	ch->since_ckpt = 0;
	return 0;
}

static bool is_lower_hex(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'f')))
			return false;
	return true;
}

/* The optional signature after the chain member: exactly ,"sig":"<88 base64>"}. */
static int parse_sig(const char *r, size_t rl, struct audit_line *o)
{
	size_t bl;
	if (rl == 1)
		return r[0] == '}' ? 0 : -1;
	if (rl != SIG_TAG_LEN + SIG_B64_LEN + 2 || memcmp(r, SIG_TAG, SIG_TAG_LEN) != 0 ||
	    memcmp(r + rl - 2, "\"}", 2) != 0)
		return -1;
	if (sodium_base642bin(o->sig, sizeof(o->sig), r + SIG_TAG_LEN, SIG_B64_LEN, NULL, &bl, NULL,
	                      sodium_base64_VARIANT_ORIGINAL) != 0 ||
	    bl != sizeof(o->sig))
		return -1;
	o->has_sig = true;
	return 0;
}

/*
 * The tag ,"chain":" cannot occur inside a JSON string (the quote would be escaped), so
 * its last occurrence is the member. The seq digits must stand right before it.
 */
int audit_line_parse(const char *s, size_t len, struct audit_line *o)
{
	memset(o, 0, sizeof(*o));
	if (len < CHAIN_TAG_LEN + 2 * AUDIT_HASH_BYTES + 2 || s[len - 1] != '}')
		return -1;
	size_t pos = len - CHAIN_TAG_LEN;
	while (pos > 0 && memcmp(s + pos, CHAIN_TAG, CHAIN_TAG_LEN) != 0)
		pos--;
	const char *hex = s + pos + CHAIN_TAG_LEN;
	size_t after = len - pos - CHAIN_TAG_LEN;
	if (pos == 0 || after < 2 * AUDIT_HASH_BYTES + 2 ||
	    !is_lower_hex(hex, 2 * AUDIT_HASH_BYTES) || hex[2 * AUDIT_HASH_BYTES] != '"')
		return -1;
	sodium_hex2bin(o->chain, AUDIT_HASH_BYTES, hex, 2 * AUDIT_HASH_BYTES, NULL, NULL, NULL);
	if (parse_sig(hex + 2 * AUDIT_HASH_BYTES + 1, after - 2 * AUDIT_HASH_BYTES - 1, o) != 0)
		return -1;
	size_t d = pos;
	while (d > 0 && s[d - 1] >= '0' && s[d - 1] <= '9')
		d--;
	if (d == pos || pos - d > 19 || (s[d] == '0' && pos - d > 1) || d < 7 ||
	    memcmp(s + d - 6, "\"seq\":", 6) != 0 || (s[d - 7] != ',' && s[d - 7] != '{'))
		return -1;
	uint64_t seq = 0;
	for (size_t i = d; i < pos; i++)
		seq = seq * 10 + (uint64_t)(s[i] - '0');
	if (seq == 0)
		return -1;
	o->seq = seq;
	o->prefix_len = pos;
	return 0;
}

/* ------------------------------------------------------------------ keys -- */

static void key_id_of(const unsigned char pk[32], char out[AUDIT_KEYID_LEN + 1])
{
	unsigned char h[AUDIT_HASH_BYTES];
	crypto_generichash(h, sizeof(h), pk, 32, NULL, 0);
	sodium_bin2hex(out, AUDIT_KEYID_LEN + 1, h, AUDIT_KEYID_LEN / 2);
}

static int write_key_file(const char *path, const char *label, const unsigned char *bin, size_t n,
                          mode_t mode, char *err, size_t errlen)
{
	char b64[128], text[192];
	sodium_bin2base64(b64, sizeof(b64), bin, n, sodium_base64_VARIANT_ORIGINAL);
	int len = snprintf(text, sizeof(text), "%s%s\n", label, b64);
	/* O_EXCL: never overwrite a key, whose loss would orphan every signed log. */
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
	if (fd < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	bool ok = write(fd, text, (size_t)len) == len && fsync(fd) == 0;
	sodium_memzero(text, sizeof(text));
	sodium_memzero(b64, sizeof(b64));
	if (close(fd) != 0 || !ok) {
		snprintf(err, errlen, "%s: cannot write: %s", path, strerror(errno));
		unlink(path);
		return -1;
	}
	return 0;
}

int audit_key_generate(const char *prefix, char *err, size_t errlen)
{
	unsigned char pk[32], sk[64], seed[32];
	char kpath[4096], ppath[4096];
	int rc = -1;
	if (sodium_init() < 0) {
		snprintf(err, errlen, "libsodium cannot initialise");
		return -1;
	}
	if ((size_t)snprintf(kpath, sizeof(kpath), "%s.key", prefix) >= sizeof(kpath) ||
	    (size_t)snprintf(ppath, sizeof(ppath), "%s.pub", prefix) >= sizeof(ppath)) {
		snprintf(err, errlen, "key file name too long");
		return -1;
	}
	randombytes_buf(seed, sizeof(seed));
	crypto_sign_seed_keypair(pk, sk, seed);
	if (write_key_file(kpath, sk_label, seed, sizeof(seed), 0600, err, errlen) != 0)
		goto fail;
	if (write_key_file(ppath, pk_label, pk, sizeof(pk), 0644, err, errlen) != 0) {
		unlink(kpath);
		goto fail;
	}
	rc = 0;
fail:
	sodium_memzero(seed, sizeof(seed));
	sodium_memzero(sk, sizeof(sk));
	return rc;
}

/* Reads "LABEL<base64>\n" holding exactly n bytes. */
static int read_key_file(const char *file, const char *label, unsigned char *out, size_t n,
                         bool secret, char *err, size_t errlen)
{
	char text[256];
	size_t bl, ll = strlen(label);
	struct stat st;
	int rc = -1;
	FILE *f = fopen(file, "re");
	if (!f) {
		snprintf(err, errlen, "%s: %s", file, strerror(errno));
		return -1;
	}
	if (secret && fstat(fileno(f), &st) == 0 && (st.st_mode & (S_IRWXO | S_IWGRP))) {
		snprintf(err, errlen, "%s: signing key must not be readable by others (chmod 600)",
		         file);
		goto fail;
	}
	if (!fgets(text, sizeof(text), f) || strncmp(text, label, ll) != 0) {
		snprintf(err, errlen, "%s: not a %s key file", file, secret ? "secret" : "public");
		goto fail;
	}
	text[strcspn(text, "\r\n")] = '\0';
	if (sodium_base642bin(out, n, text + ll, strlen(text + ll), NULL, &bl, NULL,
	                      sodium_base64_VARIANT_ORIGINAL) != 0 ||
	    bl != n) {
		snprintf(err, errlen, "%s: malformed key", file);
		goto fail;
	}
	rc = 0;
fail:
	sodium_memzero(text, sizeof(text));
	fclose(f);
	return rc;
}

int audit_signer_load(struct audit_signer *s, const char *file, char *err, size_t errlen)
{
	unsigned char seed[32], pk[32];
	if (sodium_init() < 0) {
		snprintf(err, errlen, "libsodium cannot initialise");
		return -1;
	}
	if (read_key_file(file, sk_label, seed, sizeof(seed), true, err, errlen) != 0)
		return -1;
	crypto_sign_seed_keypair(pk, s->sk, seed);
	sodium_memzero(seed, sizeof(seed));
	key_id_of(pk, s->key_id);
	return 0;
}

int audit_pubkey_load(unsigned char pk[32], char key_id[AUDIT_KEYID_LEN + 1], const char *file,
                      char *err, size_t errlen)
{
	if (sodium_init() < 0) {
		snprintf(err, errlen, "libsodium cannot initialise");
		return -1;
	}
	if (read_key_file(file, pk_label, pk, 32, false, err, errlen) != 0)
		return -1;
	key_id_of(pk, key_id);
	return 0;
}

/* ---------------------------------------------------------------- verify -- */

const char *audit_verdict_str(enum audit_verdict v)
{
	static const char *const names[] = {"intact",        "modified",  "deleted",
	                                    "inserted",      "reordered", "truncated",
	                                    "bad_signature", "unsigned",  "empty"};
	return (size_t)v < sizeof(names) / sizeof(names[0]) ? names[v] : "unknown";
}

void audit_verify_init(struct audit_verify *v, const unsigned char *pk, bool allow_open)
{
	memset(v, 0, sizeof(*v));
	if (sodium_init() < 0) {
		/* It fails only without a randomness source, which verifying does not use. */
	}
	v->allow_open = allow_open;
	v->next = 1;
	if (pk) {
		v->have_pk = true;
		memcpy(v->pk, pk, 32);
		key_id_of(pk, v->key_id);
	}
}

void audit_verify_file(struct audit_verify *v, const char *name)
{
	snprintf(v->file, sizeof(v->file), "%s", name);
	v->line = 0;
	v->rep.files++;
}

/* Records the first problem; everything after it is ignored. */
__attribute__((format(printf, 6, 7))) static void verdict(struct audit_verify *v,
                                                          enum audit_verdict k, uint64_t seq,
                                                          const char *file, uint64_t line,
                                                          const char *fmt, ...)
{
	if (v->done)
		return;
	v->done = true;
	v->pend = PEND_NONE;
	v->rep.verdict = k;
	v->rep.seq = seq;
	snprintf(v->rep.file, sizeof(v->rep.file), "%s", file);
	v->rep.line = line;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(v->rep.text, sizeof(v->rep.text), fmt, ap);
	va_end(ap);
}

__attribute__((format(printf, 2, 3))) static void warn(struct audit_verify *v, const char *fmt, ...)
{
	if (v->rep.warnings++)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(v->rep.warning, sizeof(v->rep.warning), fmt, ap);
	va_end(ap);
}

/* Decides later, with the next line, whether the line here was modified or inserted. */
static void pend_at(struct audit_verify *v, int kind, const char *why)
{
	v->pend = kind;
	v->pend_line = v->line;
	snprintf(v->pend_file, sizeof(v->pend_file), "%s", v->file);
	snprintf(v->pend_why, sizeof(v->pend_why), "%s", why);
}

static bool chain_ok(const struct audit_verify *v, const char *s, const struct audit_line *l)
{
	unsigned char h[AUDIT_HASH_BYTES];
	chain_hash(v->head, s, l->prefix_len, h);
	return sodium_memcmp(h, l->chain, AUDIT_HASH_BYTES) == 0;
}

static bool hex_to_hash(const char *hex, unsigned char out[AUDIT_HASH_BYTES])
{
	return hex && strlen(hex) == 2 * AUDIT_HASH_BYTES &&
	       is_lower_hex(hex, 2 * AUDIT_HASH_BYTES) &&
	       sodium_hex2bin(out, AUDIT_HASH_BYTES, hex, 2 * AUDIT_HASH_BYTES, NULL, NULL, NULL) ==
	           0;
}

/* The first line of a series must open a file: its "prev" is where the chain starts. */
static void verify_start(struct audit_verify *v, const char *s, size_t len,
                         const struct audit_line *l)
{
	static const unsigned char zero[AUDIT_HASH_BYTES];
	json_t *o = l ? json_loadb(s, len, 0, NULL) : NULL;
	const char *type = json_string_value(json_object_get(o, "type"));
	unsigned char prev[AUDIT_HASH_BYTES];
	if (!l)
		verdict(v, AUDIT_MODIFIED, 0, v->file, v->line,
		        "the first line is not a sealed record");
	else if (!type || strcmp(type, "audit_open") != 0 ||
	         !hex_to_hash(json_string_value(json_object_get(o, "prev")), prev))
		verdict(v, AUDIT_DELETED, l->seq - 1, v->file, v->line,
		        "the series starts at record %llu without the record that opens a file: "
		        "the records before it are missing",
		        (unsigned long long)l->seq);
	else if (l->seq == 1 && sodium_memcmp(prev, zero, sizeof(zero)) != 0)
		verdict(v, AUDIT_MODIFIED, 1, v->file, v->line,
		        "record 1 does not start the chain");
	else {
		memcpy(v->head, prev, sizeof(prev));
		v->next = l->seq;
		v->started = true;
		v->last_final = true; /* nothing before it is ours to judge */
	}
	json_decref(o);
}

static bool accept_open(struct audit_verify *v, json_t *o, const struct audit_line *l)
{
	unsigned char prev[AUDIT_HASH_BYTES];
	if (!hex_to_hash(json_string_value(json_object_get(o, "prev")), prev) ||
	    sodium_memcmp(prev, v->head, AUDIT_HASH_BYTES) != 0) {
		verdict(v, AUDIT_MODIFIED, l->seq, v->file, v->line,
		        "record %llu (file opening) names a wrong previous chain value",
		        (unsigned long long)l->seq);
		return false;
	}
	/* A crash leaves a segment without its closing checkpoint; the chain still runs on
	 * through it, so later checkpoints cover it: worth a warning, not a failure. */
	if (!v->last_final)
		warn(v,
		     "records %llu to %llu were not closed by a final checkpoint (the gateway "
		     "stopped without closing the file); later checkpoints cover them",
		     (unsigned long long)(l->seq - v->segment), (unsigned long long)(l->seq - 1));
	v->segment = 0;
	v->last_final = false;
	return true;
}

static bool accept_ckpt(struct audit_verify *v, json_t *o, const struct audit_line *l)
{
	unsigned long long seq = (unsigned long long)l->seq;
	json_t *recs = json_object_get(o, "records"), *fin = json_object_get(o, "final");
	const char *key = json_string_value(json_object_get(o, "key"));
	if (!json_is_integer(recs) || !json_is_boolean(fin)) {
		verdict(v, AUDIT_MODIFIED, l->seq, v->file, v->line, "checkpoint %llu is malformed",
		        seq);
		return false;
	}
	if ((uint64_t)json_integer_value(recs) != v->segment + 1) {
		verdict(v, AUDIT_DELETED, l->seq, v->file, v->line,
		        "checkpoint %llu counts %lld records since its file was opened, %llu are "
		        "present",
		        seq, (long long)json_integer_value(recs),
		        (unsigned long long)(v->segment + 1));
		return false;
	}
	v->rep.checkpoints++;
	if (v->have_pk) {
		unsigned char msg[sizeof(sig_domain) + AUDIT_HASH_BYTES];
		memcpy(msg, sig_domain, sizeof(sig_domain));
		memcpy(msg + sizeof(sig_domain), l->chain, AUDIT_HASH_BYTES);
		if (!l->has_sig) {
			verdict(v, AUDIT_UNSIGNED, l->seq, v->file, v->line,
			        "checkpoint %llu is not signed", seq);
			return false;
		}
		if (!key || strcmp(key, v->key_id) != 0) {
			verdict(v, AUDIT_BAD_SIGNATURE, l->seq, v->file, v->line,
			        "checkpoint %llu is signed by another key (key id %s, expected %s)",
			        seq, key ? key : "none", v->key_id);
			return false;
		}
		if (crypto_sign_verify_detached(l->sig, msg, sizeof(msg), v->pk) != 0) {
			verdict(v, AUDIT_BAD_SIGNATURE, l->seq, v->file, v->line,
			        "checkpoint %llu: the signature does not verify", seq);
			return false;
		}
		v->rep.signed_checkpoints++;
	}
	v->last_final = json_is_true(fin);
	v->last_ckpt = l->seq;
	return true;
}

/* A line whose seq and chain are right: check what its type promises, then advance. */
static void verify_accept(struct audit_verify *v, const char *s, size_t len,
                          const struct audit_line *l)
{
	json_t *o = json_loadb(s, len, 0, NULL);
	const char *type = json_string_value(json_object_get(o, "type"));
	bool ok = true;
	if (!json_is_object(o)) {
		verdict(v, AUDIT_MODIFIED, l->seq, v->file, v->line,
		        "record %llu is not valid JSON", (unsigned long long)l->seq);
		ok = false;
	} else if (type && strcmp(type, "audit_open") == 0) {
		ok = accept_open(v, o, l);
	} else if (v->last_final) {
		verdict(v, AUDIT_INSERTED, l->seq, v->file, v->line,
		        "record %llu follows a final checkpoint without a new file opening",
		        (unsigned long long)l->seq);
		ok = false;
	}
	if (ok && type && strcmp(type, "checkpoint") == 0)
		ok = accept_ckpt(v, o, l);
	json_decref(o);
	if (!ok)
		return;
	memcpy(v->head, l->chain, AUDIT_HASH_BYTES);
	v->next++;
	v->segment++;
	v->rep.records++;
}

/* Settles a pending question with the line that follows it. */
static void verify_pending(struct audit_verify *v, const char *s, bool ok,
                           const struct audit_line *l)
{
	unsigned long long e = (unsigned long long)v->next;
	if (v->pend == PEND_SEARCH) {
		if (ok && l->seq == v->next)
			verdict(v, AUDIT_REORDERED, v->next, v->pend_file, v->pend_line,
			        "record %llu is out of order: expected here, found at %s:%llu", e,
			        v->file, (unsigned long long)v->line);
		return;
	}
	if (ok && l->seq == v->next && chain_ok(v, s, l))
		verdict(v, AUDIT_INSERTED, v->next, v->pend_file, v->pend_line,
		        "a line the gateway did not write was inserted before record %llu", e);
	else
		verdict(v, AUDIT_MODIFIED, v->next, v->pend_file, v->pend_line,
		        "record %llu was modified: %s", e, v->pend_why);
}

void audit_verify_line(struct audit_verify *v, const char *s, size_t len, bool complete)
{
	struct audit_line l = {0};
	v->line++;
	if (v->done)
		return;
	bool ok = complete && audit_line_parse(s, len, &l) == 0;
	unsigned long long e = (unsigned long long)v->next;
	if (v->pend != PEND_NONE) {
		verify_pending(v, s, ok, &l);
		return;
	}
	if (!complete) {
		verdict(v, AUDIT_TRUNCATED, v->next, v->file, v->line,
		        "the file ends inside record %llu (cut mid-line)", e);
		return;
	}
	if (!v->started) {
		verify_start(v, s, len, ok ? &l : NULL);
		if (v->done)
			return;
	}
	if (!ok) {
		pend_at(v, PEND_SUSPECT, "the line is not a sealed record");
	} else if (l.seq > v->next) {
		char why[96];
		snprintf(why, sizeof(why), "the line holds record %llu", (unsigned long long)l.seq);
		pend_at(v, PEND_SEARCH, why);
	} else if (l.seq < v->next) {
		verdict(v, AUDIT_INSERTED, v->next, v->file, v->line,
		        "a second copy of record %llu was inserted before record %llu",
		        (unsigned long long)l.seq, e);
	} else if (!chain_ok(v, s, &l)) {
		pend_at(v, PEND_SUSPECT, "its bytes do not match its chain value");
	} else {
		verify_accept(v, s, len, &l);
	}
}

enum audit_verdict audit_verify_finish(struct audit_verify *v)
{
	unsigned long long e = (unsigned long long)v->next;
	if (v->done)
		return v->rep.verdict;
	if (v->pend == PEND_SUSPECT)
		verdict(v, AUDIT_MODIFIED, v->next, v->pend_file, v->pend_line,
		        "record %llu was modified: %s", e, v->pend_why);
	else if (v->pend == PEND_SEARCH)
		verdict(v, AUDIT_DELETED, v->next, v->pend_file, v->pend_line,
		        "record %llu was deleted (%s)", e, v->pend_why);
	else if (!v->started)
		verdict(v, AUDIT_EMPTY, 0, v->file, v->line, "no record at all");
	else if (!v->last_final && v->allow_open)
		warn(v,
		     "records %llu to %llu come after the last checkpoint and are not signed yet",
		     (unsigned long long)v->last_ckpt + 1, e - 1);
	else if (!v->last_final)
		verdict(v, AUDIT_TRUNCATED, v->next, v->file, v->line + 1,
		        "the series ends after record %llu without its final checkpoint (last "
		        "checkpoint: record %llu): records were cut off, or the file is still open",
		        e - 1, (unsigned long long)v->last_ckpt);
	return v->rep.verdict;
}
