/*
 * fuzz_files.c: the file-system fence of the configuration fuzzers (fuzz_conf,
 * fuzz_policy). A configuration names files (certificates, CRLs, @include), so a fuzzed
 * one can name /dev/zero or a FIFO and hang the run in a read that never ends: that
 * says nothing about the gateway, whose configuration comes from its operator. So
 * fopen() here refuses anything but regular files of sane size, exactly as an
 * unreadable file would be refused; libconfig and OpenSSL reach files only through
 * fopen/fopen64 (checked with nm -D), so the fence covers every path they open.
 *
 * At start-up the working directory becomes $GW_FUZZ_PKI when set (a directory made by
 * tests/tools/mkpki.sh plus client-cas.pem), so relative names in the seeds resolve to
 * real certificates and the TLS build paths are covered too.
 */
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz_files.h"

#define FUZZ_FILE_MAX (1 << 20)

typedef FILE *(*fopen_fn)(const char *, const char *);

/* True when path may be opened: missing (fopen then fails as usual) or a small file. */
static int fuzz_path_allowed(const char *path)
{
	struct stat st;
	if (stat(path, &st) != 0)
		return 1;
	return S_ISREG(st.st_mode) && st.st_size <= FUZZ_FILE_MAX;
}

static FILE *fuzz_fopen_via(const char *sym, fopen_fn *real, const char *path, const char *mode)
{
	if (!fuzz_path_allowed(path)) {
		errno = EACCES;
		return NULL;
	}
	if (!*real)
		*real = (fopen_fn)dlsym(RTLD_NEXT, sym);
	if (!*real) {
		errno = ENOSYS;
		return NULL;
	}
	return (*real)(path, mode);
}

/* Strong definitions win over libc's (and over the sanitizers' weak interceptors). */
FILE *fopen(const char *path, const char *mode)
{
	static fopen_fn real;
	return fuzz_fopen_via("fopen", &real, path, mode);
}

FILE *fopen64(const char *path, const char *mode)
{
	static fopen_fn real;
	return fuzz_fopen_via("fopen64", &real, path, mode);
}

int fuzz_files_init(void)
{
	const char *dir = getenv("GW_FUZZ_PKI");
	if (!dir || !*dir)
		return 0;
	if (chdir(dir) != 0) {
		fprintf(stderr, "fuzz: cannot enter GW_FUZZ_PKI=%s\n", dir);
		return -1;
	}
	return 0;
}
