/* coredump.c - keep key bytes out of core files (issue 17 item 4): a crashing daemon must not
 * leave the keys it served or held in a core file, with whatever core limit it was started. */
#include "coredump.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>

#include "log.h"

int qk_core_dumps_limit(bool allow)
{
    if (allow) {
        struct rlimit rl;
        char lim[32] = "unknown";
        if (getrlimit(RLIMIT_CORE, &rl) == 0) {
            if (rl.rlim_cur == RLIM_INFINITY)
                snprintf(lim, sizeof lim, "unlimited");
            else
                snprintf(lim, sizeof lim, "%llu bytes", (unsigned long long)rl.rlim_cur);
        }
        QK_WARN("core dumps ALLOWED (" QK_CORE_DUMPS_FLAG "; core limit %s): a core file of "
                "this process may contain key material; for debugging only, never in production",
                lim);
        return 0;
    }
    int rc = 0;
    /* prctl(2), PR_SET_DUMPABLE: the "dumpable" attribute "determines whether core dumps are
     * produced for the calling process upon delivery of a signal whose default behavior is to
     * produce a core dump"; it also holds when core_pattern pipes the core to a program, where
     * the kernel does not apply RLIMIT_CORE (core(5), "Piping core dumps to a program"). */
    if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) {
        QK_ERROR("prctl(PR_SET_DUMPABLE, 0): %s", strerror(errno));
        rc = -1;
    }
    /* getrlimit(2): RLIMIT_CORE 0 means no core files; lowering the hard limit is allowed to
     * any process and cannot be undone without CAP_SYS_RESOURCE. */
    const struct rlimit zero = {0, 0};
    if (setrlimit(RLIMIT_CORE, &zero) != 0) {
        QK_ERROR("setrlimit(RLIMIT_CORE, 0): %s", strerror(errno));
        rc = -1;
    }
    return rc;
}
