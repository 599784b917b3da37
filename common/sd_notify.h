/* sd_notify.h - the service manager's readiness protocol for `Type=notify` units, on
 * libsystemd's sd_notify(3) and sd_watchdog_enabled(3).
 *
 * Every call is a no-op returning 0 when the process was not started by a service manager
 * that asked for notifications (NOTIFY_SOCKET unset), so the daemons call them unconditionally:
 *   READY=1      once the listeners are bound and the store is open (systemd.service(5),
 *                Type=notify: the unit becomes "active" and units ordered after it start);
 *   STOPPING=1   when a stop signal arrives and the daemon starts draining;
 *   WATCHDOG=1   every half WATCHDOG_USEC (WatchdogSec= in the unit), from a thread that
 *                qk_sd_watchdog_start() starts only when the manager set WATCHDOG_USEC for this
 *                process (sd_watchdog_enabled(3) checks WATCHDOG_PID). */
#ifndef QK_SD_NOTIFY_H
#define QK_SD_NOTIFY_H

#include <stdint.h>

/* Send "READY=1" and "STATUS=status" (status may be NULL). 0 sent or no manager, -1 error. */
int qk_sd_ready(const char *status);
/* Send "STOPPING=1". 0 sent or no manager, -1 error. */
int qk_sd_stopping(void);
/* The watchdog period (half WATCHDOG_USEC) in microseconds, or 0 when no watchdog is asked. */
uint64_t qk_sd_watchdog_period_us(void);

typedef struct qk_sd_watchdog qk_sd_watchdog;
/* Start the thread that sends WATCHDOG=1 every qk_sd_watchdog_period_us(). *out is NULL when
 * no watchdog is asked (nothing started). The thread blocks every signal. Returns 0 or -1. */
int qk_sd_watchdog_start(qk_sd_watchdog **out);
/* Stop and join the thread; NULL is a no-op. */
void qk_sd_watchdog_stop(qk_sd_watchdog *w);

#endif
