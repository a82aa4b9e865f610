/* fuzz_snapshot.h: checks shared by the configuration fuzzers (see fuzz_snapshot.c). */
#ifndef FUZZ_SNAPSHOT_H
#define FUZZ_SNAPSHOT_H

#include "conf.h"

/* Checks the load contract and, when s is not NULL, exercises its policy. */
void fuzz_snapshot_check(const struct conf_snapshot *s, const struct conf_diags *d);

/*
 * Loads a valid configuration a few times (header plus a small policy, or the embedded
 * default when header is NULL) so that OpenSSL's lazily filled caches exist before the
 * first run: libFuzzer scans for leaks after every run whose allocations do not balance,
 * and that scan would otherwise cost more than the run itself.
 */
void fuzz_snapshot_warm_up(const char *header);

#endif
