/* test_coredump.c - qk_core_dumps_limit (common/coredump.c): without the debug flag the process
 * is non-dumpable with a core limit of 0, soft and hard; with it both stay as they were. Each
 * case runs in a child process (fork), since the call changes the process for good. The
 * daemons' use of it is checked end to end by tests/integration/core_dumps.sh. */
#include <CUnit/CUnit.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "coredump.h"
#include "log.h"

/* Child's exit status: bit 0 the dumpable attribute is 0, bit 1 the soft limit is 0, bit 2 the
 * hard limit is 0, bit 3 the call returned 0; 255 when the child could not check. */
static int run_child(bool allow)
{
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        /* a soft limit above 0 first, so that "0 afterwards" means the call set it */
        struct rlimit rl;
        if (getrlimit(RLIMIT_CORE, &rl) != 0)
            _exit(255);
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_CORE, &rl) != 0 || prctl(PR_SET_DUMPABLE, 1, 0, 0, 0) != 0 ||
            qk_log_open(NULL, QK_LOG_ERROR, "test_coredump") != 0)
            _exit(255);
        int rc = qk_core_dumps_limit(allow);
        int d = prctl(PR_GET_DUMPABLE, 0, 0, 0, 0);
        if (d < 0 || getrlimit(RLIMIT_CORE, &rl) != 0)
            _exit(255);
        _exit((d == 0 ? 1 : 0) | (rl.rlim_cur == 0 ? 2 : 0) | (rl.rlim_max == 0 ? 4 : 0) |
              (rc == 0 ? 8 : 0));
    }
    int st = 0;
    if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st))
        return -1;
    return WEXITSTATUS(st);
}

static void test_limit(void)
{
    struct rlimit rl;
    CU_ASSERT_FATAL(getrlimit(RLIMIT_CORE, &rl) == 0);
    /* with a hard limit of 0 already (some containers), the child cannot raise it: the limit
     * bits are then set in both cases, and the dumpable bit still tells them apart */
    int zero = rl.rlim_max == 0 ? 2 | 4 : 0;
    CU_ASSERT_EQUAL(run_child(false), 1 | 2 | 4 | 8);
    CU_ASSERT_EQUAL(run_child(true), 8 | zero);
}

int suite_coredump(void)
{
    CU_pSuite s = CU_add_suite("coredump", NULL, NULL);
    if (!s || !CU_add_test(s, "non-dumpable, core limit 0, unless allowed", test_limit))
        return -1;
    return 0;
}
