/* bridge_daemon.h - the qkd-bridge core: rotation (initiator), offers and activation
 * (responder), supervision of the gateway, status and metrics. */
#ifndef QKB_BRIDGE_DAEMON_H
#define QKB_BRIDGE_DAEMON_H

#include <signal.h>
#include <stdint.h>

#include "bridge_config.h"

typedef struct bridge bridge;

/* Builds the driver, the KME client, the channel (client or listener) and the admin listener. */
int bridge_new(const qkb_config *cfg, bridge **out, qk_err *err);
/* Runs until *stop becomes non-zero; *rotate non-zero asks for a rotation, *hup non-zero
 * reopens the log (both cleared here). */
int bridge_run(bridge *b, volatile sig_atomic_t *stop, volatile sig_atomic_t *rotate,
               volatile sig_atomic_t *hup);
void bridge_free(bridge *b);

void bridge_request_rotation(bridge *b);
/* JSON status / Prometheus metrics text, malloc'ed (NULL on allocation failure). */
char *bridge_status_json(bridge *b);
char *bridge_metrics_text(bridge *b);
uint16_t bridge_admin_port(const bridge *b);
uint16_t bridge_channel_port(const bridge *b); /* responder; 0 on the initiator */

/* The admin listener (bridge_admin.c): GET /status, /metrics, /healthz, POST /rotate. */
typedef struct bridge_admin bridge_admin;
int bridge_admin_start(bridge *b, const qkb_config *cfg, bridge_admin **out, qk_err *err);
uint16_t bridge_admin_listen_port(const bridge_admin *a); /* 0 when a is NULL */
void bridge_admin_stop(bridge_admin *a);                  /* NULL is a no-op */

#endif
