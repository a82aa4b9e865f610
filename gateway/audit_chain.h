/*
 * audit_chain.h: the tamper-evident form of the audit log (docs/audit.md), shared by
 * gatewayd, which writes it, and gatewayctl, which verifies it (library gwaudit).
 *
 * Every line is a JSON object whose last members are "seq" and "chain": chain is
 * BLAKE2b-256(previous chain || the line's bytes up to, not including, ,"chain":"). A
 * checkpoint line adds an Ed25519 signature over its own chain value, so it vouches for
 * every record before it. Pure: no threads, no clock (times come in as text); the only
 * I/O is reading and writing key files.
 */
#ifndef AUDIT_CHAIN_H
#define AUDIT_CHAIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AUDIT_HASH_BYTES 32
#define AUDIT_SIG_BYTES  64
#define AUDIT_KEYID_LEN  16 /* hex characters */

/* A growable byte buffer; zero-initialised is empty. */
struct audit_buf {
	char *p;
	size_t len, cap;
};

/* The writer's position in the chain. */
struct audit_chain {
	uint64_t seq;                         /* of the last record sealed; 0 before any */
	unsigned char head[AUDIT_HASH_BYTES]; /* its chain value; zeros before any */
	uint64_t segment;                     /* records since the last audit_open */
	uint64_t since_ckpt;                  /* records since the last checkpoint */
};

/* An Ed25519 signing key (libsodium layout) and the id of its public half. */
struct audit_signer {
	unsigned char sk[64];
	char key_id[AUDIT_KEYID_LEN + 1];
};

/* The canonical tail of one line, as audit_line_parse() found it. */
struct audit_line {
	size_t prefix_len; /* bytes the chain value covers */
	uint64_t seq;
	unsigned char chain[AUDIT_HASH_BYTES];
	bool has_sig;
	unsigned char sig[AUDIT_SIG_BYTES];
};

enum audit_verdict {
	AUDIT_INTACT = 0,
	AUDIT_MODIFIED,      /* a record's bytes do not match its chain value */
	AUDIT_DELETED,       /* a record is missing */
	AUDIT_INSERTED,      /* a line that the gateway did not write at that place */
	AUDIT_REORDERED,     /* a record is present but out of place */
	AUDIT_TRUNCATED,     /* the series does not end with its closing checkpoint */
	AUDIT_BAD_SIGNATURE, /* a checkpoint signed by another key, or its signature altered */
	AUDIT_UNSIGNED,      /* a checkpoint without a signature while a key was given */
	AUDIT_EMPTY,         /* no line at all */
};

/* What verification found: the first problem, located by record number and line. */
struct audit_report {
	enum audit_verdict verdict;
	uint64_t seq;   /* the record concerned (0: unknown) */
	char file[256]; /* where */
	uint64_t line;
	char text[512]; /* one sentence for the operator */
	uint64_t records, checkpoints, signed_checkpoints, files, warnings;
	char warning[512]; /* the first warning (not a failure) */
};

/* Streaming verifier state; see audit_verify_init(). */
struct audit_verify {
	bool have_pk, allow_open;
	unsigned char pk[32];
	char key_id[AUDIT_KEYID_LEN + 1];
	bool started, last_final, done;
	unsigned char head[AUDIT_HASH_BYTES];
	uint64_t next;    /* the seq the next line must carry */
	uint64_t segment; /* records of the current segment so far */
	uint64_t last_ckpt;
	char file[256]; /* the current file */
	uint64_t line;  /* of the current file */
	int pend;       /* lookahead state (audit_chain.c) */
	uint64_t pend_line;
	char pend_file[256];
	char pend_why[128];
	struct audit_report rep;
};

#define AUDIT_JSON_DEPTH 8

/* A record's JSON object text, built in place (audit_json.c). */
struct audit_json {
	struct audit_buf b;
	bool oom;       /* something failed: take() returns NULL */
	bool fragment;  /* a bare member list (audit_json_fragment_begin), no braces */
	unsigned depth; /* open objects and arrays, the record's included */
	bool need_comma[AUDIT_JSON_DEPTH];
	char close[AUDIT_JSON_DEPTH];
};

/* ---- buffers ---- */

/* Appends n bytes; 0, or -1 when out of memory (b unchanged). */
int audit_buf_add(struct audit_buf *b, const void *p, size_t n);
/* Makes room for extra more bytes; 0, or -1 when out of memory. */
int audit_buf_reserve(struct audit_buf *b, size_t extra);
void audit_buf_free(struct audit_buf *b);

/* ---- record text ---- */

/*
 * Builds one JSON object: begin, members, take. Keys are literals of the caller and are
 * not escaped; string values are (control characters, quote, backslash, everything
 * non-ASCII as \uXXXX, invalid UTF-8 as U+FFFD), so the text is ASCII. key NULL adds an
 * array element. Errors (memory, unbalanced nesting) make take() return NULL.
 */
void audit_json_begin(struct audit_json *j);
/*
 * The k* calls take the key's length, klen == strlen(key) (ignored for NULL; a key longer
 * than 61 bytes fails the record). The wrappers after them, which callers use, compute
 * it, at compile time for literal keys.
 */
void audit_json_kstrn(struct audit_json *j, const char *key, size_t klen, const char *v, size_t n);
void audit_json_kint(struct audit_json *j, const char *key, size_t klen, long long v);
void audit_json_knull(struct audit_json *j, const char *key, size_t klen);
void audit_json_kopen(struct audit_json *j, const char *key, size_t klen, char kind);
static inline size_t audit_json_klen(const char *key)
{
	return key ? __builtin_strlen(key) : 0;
}
static inline void audit_json_strn(struct audit_json *j, const char *key, const char *v, size_t n)
{
	audit_json_kstrn(j, key, audit_json_klen(key), v, n);
}
/* v NULL: null */
static inline void audit_json_str(struct audit_json *j, const char *key, const char *v)
{
	audit_json_kstrn(j, key, audit_json_klen(key), v, v ? __builtin_strlen(v) : 0);
}
static inline void audit_json_int(struct audit_json *j, const char *key, long long v)
{
	audit_json_kint(j, key, audit_json_klen(key), v);
}
static inline void audit_json_null(struct audit_json *j, const char *key)
{
	audit_json_knull(j, key, audit_json_klen(key));
}
/* kind '{' or '[' */
static inline void audit_json_open(struct audit_json *j, const char *key, char kind)
{
	audit_json_kopen(j, key, audit_json_klen(key), kind);
}
void audit_json_close(struct audit_json *j);
/*
 * Starts a fragment instead of a record: a bare member list with no braces, written with
 * the same calls, whose take() gives text such as "a":1,"b":{"c":"x"} (or "" when it has
 * no member). Rendered once, it can be spliced into many records with audit_json_raw().
 */
void audit_json_fragment_begin(struct audit_json *j);
/*
 * Appends len bytes of pre-rendered members (a fragment's text, not re-escaped) to the
 * current object, as if they had been added one by one: a comma first if a member
 * precedes, and a member after it gets one. len 0 adds nothing.
 */
void audit_json_raw(struct audit_json *j, const char *text, size_t len);
/* Closes the record (or the fragment); the malloc'd NUL-terminated text (its length in
 * *len), or NULL. */
char *audit_json_take(struct audit_json *j, size_t *len);
void audit_json_free(struct audit_json *j);

/* ---- writing ---- */

/*
 * Seals one record: obj is a JSON object text "{...}" without "seq" or "chain" members.
 * Appends the sealed line (with its newline) to out and advances ch. 0, or -1 if obj is
 * not an object text or memory runs out (ch unchanged then).
 */
int audit_chain_seal(struct audit_chain *ch, const char *obj, size_t len, struct audit_buf *out);
/* Appends the record that opens a file (or a reopened one): it names the previous chain
 * value so the file can be verified on its own. reason is a static token. */
int audit_chain_open(struct audit_chain *ch, const char *time, const char *reason,
                     struct audit_buf *out);
/* Appends a checkpoint over everything sealed so far, signed when s is not NULL. final
 * marks the last record of a file (rotation, shutdown). */
int audit_chain_checkpoint(struct audit_chain *ch, const char *time, bool final,
                           const struct audit_signer *s, struct audit_buf *out);
/* Continues the chain after the given complete line (the last of an existing file). 0, or
 * -1 when it is not a sealed record. */
int audit_chain_resume(struct audit_chain *ch, const char *line, size_t len);

/* Finds the canonical tail of line (len without the newline). 0, or -1. */
int audit_line_parse(const char *line, size_t len, struct audit_line *out);

/* ---- keys ---- */

/* Writes PREFIX.key (mode 0600, refused if it exists) and PREFIX.pub. 0, or -1 with err. */
int audit_key_generate(const char *prefix, char *err, size_t errlen);
/* Reads a secret key file; refused when others may read it. 0, or -1 with err. */
int audit_signer_load(struct audit_signer *s, const char *file, char *err, size_t errlen);
/* Reads a public key file and computes its id. 0, or -1 with err. */
int audit_pubkey_load(unsigned char pk[32], char key_id[AUDIT_KEYID_LEN + 1], const char *file,
                      char *err, size_t errlen);

/* ---- verifying ---- */

/*
 * Prepares a verification. pk NULL checks the chain only (checkpoints then prove
 * nothing). allow_open accepts a series whose last file is still being written: the
 * records after its last checkpoint are reported as unsigned instead of truncated.
 */
void audit_verify_init(struct audit_verify *v, const unsigned char *pk, bool allow_open);
/* Starts the next file of the series (files in the order they were written). */
void audit_verify_file(struct audit_verify *v, const char *name);
/* Feeds one line; len without the newline, complete false when the file ended without
 * one (a cut record). */
void audit_verify_line(struct audit_verify *v, const char *line, size_t len, bool complete);
/* Ends the series; the report holds the first problem, or AUDIT_INTACT. */
enum audit_verdict audit_verify_finish(struct audit_verify *v);
const char *audit_verdict_str(enum audit_verdict v);

#endif
