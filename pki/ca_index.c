/*
 * The CA's state on disk: the plain-text index of issued serials, atomic file writes and
 * the directory lock. Format of index.txt (documented in docs/operations.md):
 *
 *   # comment lines and blank lines are ignored
 *   gwpki-index 1
 *   crl-number N
 *   V SERIAL NOTAFTER - - CN
 *   R SERIAL NOTAFTER REVOKEDAT REASON CN
 *
 * Times are GeneralizedTime "YYYYMMDDHHMMSSZ"; the CN is the rest of the line.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pki_int.h"

#define INDEX_NAME  "index.txt"
#define INDEX_MAGIC "gwpki-index 1"

int pki_ca_path(char *out, size_t cap, const char *dir, const char *name, char *err, size_t errlen)
{
	int n = snprintf(out, cap, "%s/%s", dir, name);
	if (n < 0 || (size_t)n >= cap) {
		pki_err(err, errlen, "%s/%s: path too long", dir, name);
		return -1;
	}
	return 0;
}

static int write_all(int fd, const char *p, size_t len)
{
	while (len > 0) {
		ssize_t w = write(fd, p, len);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		len -= (size_t)w;
	}
	return 0;
}

/* The rename is only durable once the directory entry itself reached the disk. */
static int fsync_parent(const char *path)
{
	char *copy = strdup(path);
	int fd, rc = -1;

	if (!copy)
		return -1;
	fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		rc = fsync(fd);
		close(fd);
	}
	free(copy);
	return rc;
}

int pki_file_write_atomic(const char *path, const void *data, size_t len, mode_t mode, bool excl,
                          char *err, size_t errlen)
{
	char tmp[PKI_CA_PATH_MAX + 32];
	int fd = -1;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof(tmp)) {
		pki_err(err, errlen, "%s: path too long", path);
		return -1;
	}
	unlink(tmp); /* a leftover of a crashed run with a recycled pid */
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
	if (fd < 0) {
		pki_err(err, errlen, "%s: cannot create: %s", tmp, strerror(errno));
		return -1;
	}
	/* The umask must not widen or narrow what the caller asked for (0600 keys). */
	if (fchmod(fd, mode) != 0 || write_all(fd, data, len) != 0 || fsync(fd) != 0) {
		pki_err(err, errlen, "%s: cannot write: %s", tmp, strerror(errno));
		goto fail;
	}
	if (close(fd) != 0) {
		fd = -1;
		pki_err(err, errlen, "%s: cannot write: %s", tmp, strerror(errno));
		goto fail;
	}
	fd = -1;
	/* link() refuses an existing target, so an excl write never replaces a file. */
	if (excl ? link(tmp, path) != 0 : rename(tmp, path) != 0) {
		pki_err(err, errlen, "%s: %s", path,
		        errno == EEXIST ? "already exists (not overwritten)" : strerror(errno));
		goto fail;
	}
	if (excl)
		unlink(tmp);
	if (fsync_parent(path) != 0) {
		pki_err(err, errlen, "%s: cannot sync directory: %s", path, strerror(errno));
		return -1;
	}
	return 0;
fail:
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	return -1;
}

int pki_ca_lock(const char *dir, bool excl, char *err, size_t errlen)
{
	char path[PKI_CA_PATH_MAX];
	int fd;

	if (pki_ca_path(path, sizeof(path), dir, ".lock", err, errlen) < 0)
		return -1;
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		pki_err(err, errlen, "%s: cannot open: %s", path, strerror(errno));
		return -1;
	}
	while (flock(fd, excl ? LOCK_EX : LOCK_SH) != 0) {
		if (errno == EINTR)
			continue;
		pki_err(err, errlen, "%s: cannot lock: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

void pki_ca_unlock(int fd)
{
	if (fd >= 0)
		close(fd); /* drops the flock */
}

int pki_serial_normalize(const char *s, char *out, size_t cap)
{
	size_t n = 0;

	if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X'))
		s += 2;
	for (; *s; s++) {
		if (*s == ':')
			continue;
		if (!isxdigit((unsigned char)*s))
			return -1;
		if (n == 0 && *s == '0')
			continue; /* leading zeros: BN_bn2hex and humans disagree on them */
		if (n + 1 >= cap)
			return -1;
		out[n++] = (char)toupper((unsigned char)*s);
	}
	if (n == 0) {
		if (cap < 2)
			return -1;
		out[n++] = '0';
	}
	out[n] = '\0';
	return 0;
}

void pki_time_format(time_t t, char out[16])
{
	struct tm tm;
	if (!gmtime_r(&t, &tm) || strftime(out, 16, "%Y%m%d%H%M%SZ", &tm) != 15)
		strcpy(out, "99991231235959Z"); /* beyond year 9999: "no well-defined expiry" */
}

int pki_time_parse(const char *s, time_t *out)
{
	struct tm tm = {0};
	char rest;

	if (strlen(s) != 15 || s[14] != 'Z')
		return -1;
	for (int i = 0; i < 14; i++)
		if (!isdigit((unsigned char)s[i]))
			return -1;
	if (sscanf(s, "%4d%2d%2d%2d%2d%2d%c", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
	           &tm.tm_min, &tm.tm_sec, &rest) != 7)
		return -1;
	if (tm.tm_mon < 1 || tm.tm_mon > 12 || tm.tm_mday < 1 || tm.tm_mday > 31 ||
	    tm.tm_hour > 23 || tm.tm_min > 59 || tm.tm_sec > 60)
		return -1;
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	*out = timegm(&tm);
	return 0;
}

void pki_ca_index_clear(struct pki_ca_index *idx)
{
	for (size_t i = 0; i < idx->n; i++)
		free(idx->v[i].cn);
	free(idx->v);
	memset(idx, 0, sizeof(*idx));
}

int pki_ca_index_add(struct pki_ca_index *idx, const struct pki_ca_entry *e, char *err,
                     size_t errlen)
{
	if (idx->n == idx->cap) {
		size_t cap = idx->cap ? idx->cap * 2 : 16;
		struct pki_ca_entry *v = realloc(idx->v, cap * sizeof(*v));
		if (!v) {
			pki_err(err, errlen, "out of memory");
			return -1;
		}
		idx->v = v;
		idx->cap = cap;
	}
	struct pki_ca_entry *d = &idx->v[idx->n];
	*d = *e;
	d->cn = strdup(e->cn ? e->cn : "");
	if (!d->cn) {
		pki_err(err, errlen, "out of memory");
		return -1;
	}
	idx->n++;
	return 0;
}

struct pki_ca_entry *pki_ca_index_find(struct pki_ca_index *idx, const char *serial_hex)
{
	char want[PKI_SERIAL_HEX_MAX], have[PKI_SERIAL_HEX_MAX];

	if (pki_serial_normalize(serial_hex, want, sizeof(want)) < 0)
		return NULL;
	for (size_t i = 0; i < idx->n; i++) {
		if (pki_serial_normalize(idx->v[i].serial_hex, have, sizeof(have)) == 0 &&
		    strcmp(want, have) == 0)
			return &idx->v[i];
	}
	return NULL;
}

/* One "V|R ..." line into e (cn borrowed from line); -1 when malformed. */
static int entry_parse(char *line, struct pki_ca_entry *e)
{
	char *f[5], *save = NULL, *p = line;
	enum pki_crl_reason reason = PKI_CRL_UNSPECIFIED;

	memset(e, 0, sizeof(*e));
	for (int i = 0; i < 5; i++) {
		f[i] = strtok_r(p, " ", &save);
		p = NULL;
		if (!f[i])
			return -1;
	}
	e->cn = save; /* the rest of the line: a CN may hold spaces */
	if (!e->cn || strlen(f[0]) != 1 || (f[0][0] != 'V' && f[0][0] != 'R'))
		return -1;
	if (pki_serial_normalize(f[1], e->serial_hex, sizeof(e->serial_hex)) < 0 ||
	    strcmp(e->serial_hex, f[1]) != 0 || pki_time_parse(f[2], &e->not_after) < 0)
		return -1;
	e->revoked = f[0][0] == 'R';
	if (!e->revoked)
		return strcmp(f[3], "-") == 0 && strcmp(f[4], "-") == 0 ? 0 : -1;
	if (pki_time_parse(f[3], &e->revoked_at) < 0 || pki_crl_reason_parse(f[4], &reason) < 0)
		return -1;
	e->reason = reason;
	return 0;
}

/* Applies one non-comment line; line_no for the message. */
static int index_line(struct pki_ca_index *idx, char *line, bool *magic, const char *path,
                      int line_no, char *err, size_t errlen)
{
	struct pki_ca_entry e;
	char *end;

	if (!*magic) {
		if (strcmp(line, INDEX_MAGIC) != 0) {
			pki_err(err, errlen, "%s:%d: not a gatewayctl pki index (want \"%s\")",
			        path, line_no, INDEX_MAGIC);
			return -1;
		}
		*magic = true;
		return 0;
	}
	if (strncmp(line, "crl-number ", 11) == 0) {
		errno = 0;
		idx->crl_number = strtoul(line + 11, &end, 10);
		if (errno == 0 && *end == '\0' && idx->crl_number > 0)
			return 0;
	} else if (entry_parse(line, &e) == 0) {
		if (pki_ca_index_find(idx, e.serial_hex)) {
			pki_err(err, errlen, "%s:%d: serial %s listed twice", path, line_no,
			        e.serial_hex);
			return -1;
		}
		return pki_ca_index_add(idx, &e, err, errlen);
	}
	pki_err(err, errlen, "%s:%d: malformed line", path, line_no);
	return -1;
}

int pki_ca_index_load(const char *dir, struct pki_ca_index *idx, char *err, size_t errlen)
{
	char path[PKI_CA_PATH_MAX];
	unsigned char *buf = NULL;
	size_t len = 0;
	bool magic = false;
	int line_no = 0;

	memset(idx, 0, sizeof(*idx));
	idx->crl_number = 1;
	if (pki_ca_path(path, sizeof(path), dir, INDEX_NAME, err, errlen) < 0 ||
	    pki_file_read(path, &buf, &len, err, errlen) < 0)
		return -1;
	buf[len] = '\0';
	if (strlen((char *)buf) != len) {
		pki_err(err, errlen, "%s: contains NUL bytes", path);
		goto fail;
	}
	/* Split by hand: strtok would skip empty lines and shift the line numbers. */
	for (char *p = (char *)buf, *nl; p && *p; p = nl) {
		nl = strchr(p, '\n');
		if (nl)
			*nl++ = '\0';
		line_no++;
		size_t n = strlen(p);
		if (n > 0 && p[n - 1] == '\r')
			p[--n] = '\0';
		if (n == 0 || p[0] == '#')
			continue;
		if (index_line(idx, p, &magic, path, line_no, err, errlen) < 0)
			goto fail;
	}
	if (!magic) {
		pki_err(err, errlen, "%s: empty index", path);
		goto fail;
	}
	free(buf);
	return 0;
fail:
	free(buf);
	pki_ca_index_clear(idx);
	return -1;
}

/* Appends printf output to a growing buffer; -1 on allocation failure. */
static int buf_printf(char **buf, size_t *len, size_t *cap, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int buf_printf(char **buf, size_t *len, size_t *cap, const char *fmt, ...)
{
	va_list ap;
	for (;;) {
		va_start(ap, fmt);
		int n = vsnprintf(*buf ? *buf + *len : NULL, *buf ? *cap - *len : 0, fmt, ap);
		va_end(ap);
		if (n < 0)
			return -1;
		if (*buf && *len + (size_t)n < *cap) {
			*len += (size_t)n;
			return 0;
		}
		size_t ncap = (*cap ? *cap * 2 : 4096) + (size_t)n;
		char *nb = realloc(*buf, ncap);
		if (!nb)
			return -1;
		*buf = nb;
		*cap = ncap;
	}
}

int pki_ca_index_save(const char *dir, const struct pki_ca_index *idx, char *err, size_t errlen)
{
	char path[PKI_CA_PATH_MAX], na[16], ra[16];
	char *buf = NULL;
	size_t len = 0, cap = 0;
	int ok;

	if (pki_ca_path(path, sizeof(path), dir, INDEX_NAME, err, errlen) < 0)
		return -1;
	ok = buf_printf(&buf, &len, &cap,
	                "# gatewayctl pki index (format: docs/operations.md); written atomically\n"
	                "%s\ncrl-number %lu\n",
	                INDEX_MAGIC, idx->crl_number) == 0;
	for (size_t i = 0; ok && i < idx->n; i++) {
		const struct pki_ca_entry *e = &idx->v[i];
		pki_time_format(e->not_after, na);
		if (e->revoked)
			pki_time_format(e->revoked_at, ra);
		ok = buf_printf(&buf, &len, &cap, "%c %s %s %s %s %s\n", e->revoked ? 'R' : 'V',
		                e->serial_hex, na, e->revoked ? ra : "-",
		                e->revoked ? pki_crl_reason_str(e->reason) : "-", e->cn) == 0;
	}
	if (!ok) {
		free(buf);
		pki_err(err, errlen, "out of memory");
		return -1;
	}
	int rc = pki_file_write_atomic(path, buf, len, 0644, false, err, errlen);
	free(buf);
	return rc;
}
