/* fault.h - named crash points for the crash-consistency tests.
 *
 * sd_crashpoint("after_commit_before_publish") SIGKILLs the process when
 * SIPDRAIN_CRASHPOINT names that point ("name" or "name:N" = on the N-th
 * pass). Unset in production: the check is one getenv at the first call.
 */
#ifndef SIPDRAIN_FAULT_H
#define SIPDRAIN_FAULT_H

void sd_crashpoint(const char *name);

#endif
