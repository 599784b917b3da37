/* peer_topology.c - GET /peer/v1/topology: the reports of kms/kms_topo.h encoded with
 * kms/relay_msg.h's qk_topo_msg codec. */
#include "peer_topology.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kms_topo.h"
#include "log.h"
#include "peer_msg.h"
#include "relay_msg.h"

static void reply_500(qk_http_reply *rep, const qk_err *err)
{
    bool storage = err->code == QK_ESTORAGE;
    qk_peer_error_msg e = {.reason = storage ? QK_PEER_REASON_STORAGE : QK_PEER_REASON_INTERNAL};
    snprintf(e.message, sizeof e.message, "%s", storage ? "store error" : "internal error");
    QK_ERROR("topology: %s", err->msg);
    char *body = NULL;
    qk_err eerr;
    if (qk_peer_error_encode(&e, &body, &eerr) == 0)
        qk_http_reply_take(rep, 500, "application/json", body, strlen(body));
    else
        qk_http_reply_take(rep, 500, NULL, NULL, 0); /* the envelope's fallback body */
    qk_http_reply_detail(rep, "%s", e.message);
}

void qk_peer_topology_reply(qk_kms *kms, qk_http_reply *rep)
{
    qk_err err;
    qk_err_clear(&err);
    qk_topo_msg *m = malloc(sizeof *m); /* ~300 KiB */
    char *body = NULL;
    int rc = m ? qk_kms_topo_reports(kms, m, &err)
               : qk_err_set(&err, QK_ENOMEM, "topology: out of memory");
    if (rc == 0)
        rc = qk_topo_msg_encode(m, &body, &err);
    free(m);
    if (rc != 0) {
        reply_500(rep, &err);
        return;
    }
    qk_http_reply_take(rep, 200, "application/json", body, strlen(body));
}
