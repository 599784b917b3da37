/* sd_notify.c - see sd_notify.h. The messages are those of sd_notify(3); libsystemd sends
 * each as one datagram to $NOTIFY_SOCKET and returns 0 when the variable is unset. */
#include "sd_notify.h"

#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <systemd/sd-daemon.h>
#include <time.h>

#include "log.h"
#include "thread_name.h"

#define STATUS_MAX 256

int qk_sd_ready(const char *status)
{
    char msg[STATUS_MAX + 32];
    int n = status ? snprintf(msg, sizeof msg, "READY=1\nSTATUS=%.*s", STATUS_MAX, status)
                   : snprintf(msg, sizeof msg, "READY=1");
    if (n < 0 || (size_t)n >= sizeof msg)
        return -1;
    return sd_notify(0, msg) < 0 ? -1 : 0;
}

int qk_sd_stopping(void)
{
    return sd_notify(0, "STOPPING=1") < 0 ? -1 : 0;
}

uint64_t qk_sd_watchdog_period_us(void)
{
    uint64_t usec = 0;
    if (sd_watchdog_enabled(0, &usec) <= 0)
        return 0;
    return usec / 2 ? usec / 2 : 1;
}

struct qk_sd_watchdog {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop;
    uint64_t period_us;
};

static void add_us(struct timespec *ts, uint64_t us)
{
    ts->tv_sec += (time_t)(us / 1000000u);
    ts->tv_nsec += (long)(us % 1000000u) * 1000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

static void *watchdog_main(void *arg)
{
    QK_THREAD_NAME("qk-watchdog");
    qk_sd_watchdog *w = arg;
    bool warned = false;
    pthread_mutex_lock(&w->mu);
    while (!w->stop) {
        pthread_mutex_unlock(&w->mu);
        if (sd_notify(0, "WATCHDOG=1") < 0 && !warned) {
            QK_WARN("systemd watchdog: cannot notify the service manager");
            warned = true;
        }
        struct timespec until;
        if (clock_gettime(CLOCK_MONOTONIC, &until) != 0)
            until = (struct timespec){0};
        add_us(&until, w->period_us);
        pthread_mutex_lock(&w->mu);
        /* One wait per period: a spurious wake-up only sends an early ping. */
        if (!w->stop)
            (void)pthread_cond_timedwait(&w->cv, &w->mu, &until);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

int qk_sd_watchdog_start(qk_sd_watchdog **out)
{
    *out = NULL;
    uint64_t period = qk_sd_watchdog_period_us();
    if (period == 0)
        return 0;
    qk_sd_watchdog *w = calloc(1, sizeof *w);
    if (!w)
        return -1;
    w->period_us = period;
    pthread_condattr_t ca;
    if (pthread_condattr_init(&ca) != 0) {
        free(w);
        return -1;
    }
    int bad =
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) != 0 || pthread_cond_init(&w->cv, &ca) != 0;
    pthread_condattr_destroy(&ca);
    if (bad) {
        free(w);
        return -1;
    }
    if (pthread_mutex_init(&w->mu, NULL) != 0) {
        pthread_cond_destroy(&w->cv);
        free(w);
        return -1;
    }
    /* The thread inherits a full signal mask: signals stay with the daemon's own threads. */
    sigset_t all, old;
    int rc = -1;
    if (sigfillset(&all) == 0 && pthread_sigmask(SIG_SETMASK, &all, &old) == 0) {
        rc = pthread_create(&w->thread, NULL, watchdog_main, w) == 0 ? 0 : -1;
        (void)pthread_sigmask(SIG_SETMASK, &old, NULL);
    }
    if (rc != 0) {
        pthread_mutex_destroy(&w->mu);
        pthread_cond_destroy(&w->cv);
        free(w);
        return -1;
    }
    QK_INFO("systemd watchdog: WATCHDOG=1 every %llu ms", (unsigned long long)(period / 1000u));
    *out = w;
    return 0;
}

void qk_sd_watchdog_stop(qk_sd_watchdog *w)
{
    if (!w)
        return;
    pthread_mutex_lock(&w->mu);
    w->stop = true;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->thread, NULL);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    free(w);
}
