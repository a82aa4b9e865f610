/*
 * privs.c: least privilege after start-up. Root is needed only to bind low ports and read
 * keys that only root may read; once listeners, keys and the audit log are open, the
 * process becomes the configured user and group, for good (setuid also drops every
 * capability). The reload path re-reads keys as that user, so they must be readable by it
 * (the same rule as nginx and HAProxy workers); docs/operations.md says how.
 */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <string.h>
#include <unistd.h>

#include "gw.h"

/* Looks up the target ids; group defaults to the user's primary group. */
static int privs_ids(const struct conf_snapshot *cfg, uid_t *uid, gid_t *gid)
{
	struct passwd *pw = getpwnam(cfg->run_user);
	if (!pw) {
		gw_log(GW_LOG_ERR, "privileges: user '%s' does not exist", cfg->run_user);
		return -1;
	}
	*uid = pw->pw_uid;
	*gid = pw->pw_gid;
	if (cfg->run_group) {
		struct group *gr = getgrnam(cfg->run_group);
		if (!gr) {
			gw_log(GW_LOG_ERR, "privileges: group '%s' does not exist", cfg->run_group);
			return -1;
		}
		*gid = gr->gr_gid;
	}
	return 0;
}

/*
 * Group list first, then group, then user (after setuid the others are not allowed).
 * glibc applies each call to every thread of the process, workers included.
 */
static int privs_switch(const struct conf_snapshot *cfg)
{
	uid_t uid;
	gid_t gid;

	if (privs_ids(cfg, &uid, &gid) < 0)
		return -1;
	if (geteuid() != 0) {
		if (geteuid() == uid && getegid() == gid)
			return 0; /* started as the right user already (systemd User=) */
		gw_log(GW_LOG_ERR,
		       "privileges: user = \"%s\" needs start-up as root (running as uid %u)",
		       cfg->run_user, (unsigned)geteuid());
		return -1;
	}
	if (setgroups(1, &gid) != 0 || setgid(gid) != 0 || setuid(uid) != 0) {
		gw_log(GW_LOG_ERR, "privileges: cannot switch to %s:%u: %s", cfg->run_user,
		       (unsigned)gid, strerror(errno));
		return -1;
	}
	/* The drop must be irreversible; a process that can get root back has not dropped. */
	if (uid != 0 && (setuid(0) == 0 || seteuid(0) == 0)) {
		gw_log(GW_LOG_ERR, "privileges: root could be regained after the switch");
		return -1;
	}
	gw_log(GW_LOG_INFO, "privileges: running as %s (uid %u, gid %u)", cfg->run_user,
	       (unsigned)getuid(), (unsigned)getgid());
	return 0;
}

int gw_privs_drop(const struct conf_snapshot *cfg)
{
	if (cfg->run_user && privs_switch(cfg) < 0)
		return -1;
	if (geteuid() != 0 && getuid() != 0)
		return 0;
	if (!cfg->allow_root) {
		gw_log(GW_LOG_ERR,
		       "privileges: refusing to keep running as root after start-up: a bug in the "
		       "request path would then own the machine. Set user = \"...\" (and group) to "
		       "drop privileges once listeners and keys are open, or allow_root = true to "
		       "accept the risk");
		return -1;
	}
	gw_log(GW_LOG_WARN, "privileges: running as root (allow_root = true)");
	return 0;
}
