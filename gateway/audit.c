/*
 * audit.c: the audit sink. Records are JSON lines built by the caller; this file only
 * gets them to disk in order. For now every line is one write(2) under a mutex with
 * O_APPEND, so a crash loses at most the line being written. The batching writer thread,
 * hash chain and signed checkpoints of the audit work replace this.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>

#include "gw.h"

static int audit_fd = STDERR_FILENO;
static pthread_mutex_t audit_lock = PTHREAD_MUTEX_INITIALIZER;

int gw_audit_open(const char *path)
{
	if (!path)
		return 0;
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
	if (fd < 0) {
		gw_log(GW_LOG_ERR, "audit: cannot open %s: %s", path, strerror(errno));
		return -1;
	}
	pthread_mutex_lock(&audit_lock);
	if (audit_fd != STDERR_FILENO)
		close(audit_fd);
	audit_fd = fd;
	pthread_mutex_unlock(&audit_lock);
	return 0;
}

void gw_audit_close(void)
{
	pthread_mutex_lock(&audit_lock);
	if (audit_fd != STDERR_FILENO) {
		fsync(audit_fd);
		close(audit_fd);
	}
	audit_fd = STDERR_FILENO;
	pthread_mutex_unlock(&audit_lock);
}

/* Writes one record; line must end with '\n'. */
void gw_audit_line(const char *line, size_t len)
{
	pthread_mutex_lock(&audit_lock);
	while (len > 0) {
		ssize_t w = write(audit_fd, line, len);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			break;
		line += w;
		len -= (size_t)w;
	}
	pthread_mutex_unlock(&audit_lock);
}
