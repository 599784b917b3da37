/* dash_http.h - the handler of qkd-dash's listener (request envelope, common/http_envelope.h):
 *   GET  /, /index.html, /app.js, /style.css   the page (embedded from dashboard/www/)
 *   GET  /api/state                            everything the page shows now
 *   GET  /api/history[?since=EPOCH_MS]         the series (samples newer than since)
 *   GET  /api/model                            the model curve of each preset of the lab
 *   POST /api/links/{id}/fault                 {"fault":NAME,"value":"..."} -> the simulator
 *   GET  /healthz                              ok
 * docs/dashboard.md describes each document. */
#ifndef QK_DASH_HTTP_H
#define QK_DASH_HTTP_H

#include <pthread.h>

#include "dash.h"
#include "http_envelope.h"

#define DASH_MAX_BODY 1024 /* the largest request body: a fault is a few dozen bytes */

typedef struct {
    qk_http_handler super; /* first: the envelope calls on_req with &super */
    dash_state *st;
    qk_http_client *sim_client; /* the fault proxy's client, under sim_mu */
    pthread_mutex_t sim_mu;     /* initialised by the caller */
} dash_handler;

/* Fill in h (not sim_mu). st and sim_client are borrowed and must outlive the listener. */
void dash_handler_configure(dash_handler *h, dash_state *st, qk_http_client *sim_client);

#endif
