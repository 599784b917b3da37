/* bridge_channel.c - bridge-to-bridge messages (key IDs and acks only): codec, replay guard,
 * responder endpoint on the TLS front end, initiator client with bounded retries. */
#include "bridge_channel.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "http_client.h"
#include "http_util.h"
#include "json_util.h"
#include "log.h"
#include "secbuf.h"
#include "tls_server.h"

/* ---- codec -------------------------------------------------------------------------------- */

bool chan_key_id_ok(const char *id)
{
    size_t l = id ? strlen(id) : 0;
    if (l == 0 || l >= GW_KEY_ID_MAX)
        return false;
    for (size_t i = 0; i < l; i++) {
        char c = id[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              c == '-' || c == '_' || c == '.' || c == ':' || c == '@'))
            return false;
    }
    return true;
}

char *chan_msg_encode(const chan_msg *m)
{
    cJSON *o = cJSON_CreateObject();
    char ep[17];
    snprintf(ep, sizeof ep, "%016" PRIx64, m->epoch);
    if (!o || !cJSON_AddNumberToObject(o, "v", 1) || !cJSON_AddStringToObject(o, "type", m->type) ||
        !cJSON_AddStringToObject(o, "bridge", m->bridge) ||
        !cJSON_AddStringToObject(o, "epoch", ep) ||
        !cJSON_AddNumberToObject(o, "seq", (double)m->seq) ||
        !cJSON_AddStringToObject(o, "key_id", m->key_id)) {
        cJSON_Delete(o);
        return NULL;
    }
    char *s = qk_json_print(o);
    cJSON_Delete(o);
    return s;
}

int chan_msg_decode(const char *body, size_t len, size_t max_len, chan_msg *out, qk_err *err)
{
    memset(out, 0, sizeof *out);
    cJSON *o = qk_json_parse(body, len, max_len, err);
    if (!o)
        return err->code;
    int rc = QK_EINVAL;
    int64_t v = 0, seq = 0;
    const char *type, *bridge, *epoch, *kid;
    if (!cJSON_IsObject(o)) {
        qk_err_set(err, QK_EINVAL, "not a JSON object");
        goto out;
    }
    if (qk_json_get_int(o, "v", true, 1, 1, &v, NULL, err) ||
        qk_json_get_string(o, "type", true, &type, NULL, err) ||
        qk_json_get_string(o, "bridge", true, &bridge, NULL, err) ||
        qk_json_get_string(o, "epoch", true, &epoch, NULL, err) ||
        qk_json_get_int(o, "seq", true, 1, (int64_t)1 << 52, &seq, NULL, err) ||
        qk_json_get_string(o, "key_id", true, &kid, NULL, err))
        goto out;
    if (strcmp(type, "offer") != 0 && strcmp(type, "activated") != 0) {
        qk_err_set(err, QK_EINVAL, "unknown message type");
        goto out;
    }
    if (strlen(bridge) >= sizeof out->bridge) {
        qk_err_set(err, QK_EINVAL, "bridge name too long");
        goto out;
    }
    char *end = NULL;
    if (strlen(epoch) != 16 || strspn(epoch, "0123456789abcdef") != 16) {
        qk_err_set(err, QK_EINVAL, "epoch must be 16 lower-case hex digits");
        goto out;
    }
    out->epoch = strtoull(epoch, &end, 16);
    if (!chan_key_id_ok(kid)) {
        qk_err_set(err, QK_EINVAL, "key_id is not a usable key ID");
        goto out;
    }
    snprintf(out->type, sizeof out->type, "%s", type);
    snprintf(out->bridge, sizeof out->bridge, "%s", bridge);
    snprintf(out->key_id, sizeof out->key_id, "%s", kid);
    out->seq = (uint64_t)seq;
    rc = 0;
out:
    cJSON_Delete(o);
    return rc;
}

int chan_replay_check(chan_replay *r, uint64_t epoch, uint64_t seq)
{
    if (r->have && epoch == r->epoch) {
        if (seq <= r->last_seq)
            return QK_EUNAUTH;
        r->last_seq = seq;
        return 0;
    }
    for (unsigned i = 0; i < r->n_old && i < CHAN_EPOCHS; i++)
        if (r->old_epochs[i] == epoch)
            return QK_EUNAUTH;
    if (r->have) {
        r->old_epochs[r->n_old % CHAN_EPOCHS] = r->epoch;
        r->n_old++;
        if (r->n_old >= 2 * CHAN_EPOCHS) /* keep the counter bounded; the ring stays full */
            r->n_old = CHAN_EPOCHS + r->n_old % CHAN_EPOCHS;
    }
    r->epoch = epoch;
    r->last_seq = seq;
    r->have = true;
    return 0;
}

/* ---- responder ---------------------------------------------------------------------------- */

struct chan_server {
    const qkb_config *cfg;
    chan_handlers h;
    qk_psk_table psks;
    qk_tls_server *srv;
    pthread_mutex_t mu; /* replay state and one message at a time */
    chan_replay replay;
};

static enum MHD_Result reply(struct MHD_Connection *c, unsigned status, const char *st,
                             const char *kid, const char *msg)
{
    cJSON *o = cJSON_CreateObject();
    if (o) {
        cJSON_AddStringToObject(o, "status", st);
        if (kid)
            cJSON_AddStringToObject(o, "key_id", kid);
        if (msg)
            cJSON_AddStringToObject(o, "message", msg);
    }
    char *s = o ? qk_json_print(o) : NULL;
    cJSON_Delete(o);
    enum MHD_Result r = qk_reply_json(c, status, s ? s : "{\"status\":\"error\"}");
    free(s);
    return r;
}

static enum MHD_Result chan_handler(void *cls, struct MHD_Connection *c, const char *url,
                                    const char *method, const char *version,
                                    const char *upload_data, size_t *upload_data_size,
                                    void **con_cls)
{
    chan_server *s = cls;
    qk_req *r = NULL;
    int st = qk_req_collect(con_cls, s->cfg->max_message, upload_data, upload_data_size, &r);
    if (st == QK_REQ_MORE)
        return MHD_YES;
    if (st == QK_REQ_ERROR)
        return MHD_NO;
    const qk_peer_identity *id = qk_conn_identity(c);
    if (!id || id->kind == QK_ID_NONE ||
        (s->cfg->peer_name[0] && strcmp(id->id, s->cfg->peer_name) != 0)) {
        QK_WARN("bridge channel: refused peer '%s' (expected '%s')", id ? id->id : "",
                s->cfg->peer_name);
        return reply(c, 403, "error", NULL, "peer not allowed");
    }
    bool offer = strcmp(url, "/bridge/v1/offer") == 0;
    if (!offer && strcmp(url, "/bridge/v1/activated") != 0)
        return reply(c, 404, "error", NULL, "unknown path");
    if (strcmp(method, "POST") != 0)
        return reply(c, 405, "error", NULL, "POST only");
    if (r->too_large)
        return reply(c, 413, "error", NULL, "message too large");
    chan_msg m;
    qk_err err;
    qk_err_clear(&err);
    if (chan_msg_decode(r->body, r->body_len, s->cfg->max_message, &m, &err) != 0)
        return reply(c, 400, "error", NULL, err.msg);
    if (strcmp(m.type, offer ? "offer" : "activated") != 0)
        return reply(c, 400, "error", NULL, "message type does not match the path");
    pthread_mutex_lock(&s->mu);
    if (chan_replay_check(&s->replay, m.epoch, m.seq) != 0) {
        pthread_mutex_unlock(&s->mu);
        QK_WARN("bridge channel: replayed or out-of-order %s from %s (seq %" PRIu64 ") refused",
                m.type, m.bridge, m.seq);
        return reply(c, 409, "error", m.key_id, "replayed or out-of-order message");
    }
    int rc =
        offer ? s->h.offer(s->h.ctx, m.key_id, &err) : s->h.activated(s->h.ctx, m.key_id, &err);
    pthread_mutex_unlock(&s->mu);
    if (rc != 0)
        return reply(c, rc == QK_ENOTFOUND ? 404 : 503, "error", m.key_id, err.msg);
    return reply(c, 200, offer ? "installed" : "retired", m.key_id, NULL);
}

int chan_server_start(const qkb_config *cfg, const chan_handlers *h, chan_server **out, qk_err *err)
{
    chan_server *s = calloc(1, sizeof *s);
    if (!s)
        return qk_err_set(err, QK_ENOMEM, "out of memory");
    s->cfg = cfg;
    s->h = *h;
    pthread_mutex_init(&s->mu, NULL);
    qk_listener_config lc = {.name = "bridge",
                             .bind_addr = cfg->listen_host,
                             .port = cfg->listen_port,
                             .handler = chan_handler,
                             .handler_cls = s,
                             .completed = qk_req_completed,
                             .max_connections = 16,
                             .handshake_timeout_ms = (unsigned)cfg->peer_timeout_ms,
                             .idle_timeout_s = 30,
                             .threads = 2,
                             .max_body = cfg->max_message};
    if (cfg->peer_auth == QKB_AUTH_PSK) {
        if (qk_psk_table_load(cfg->peer_psk_file, &s->psks, err) != 0) {
            free(s);
            return qk_err_prefix(err, "[peer] psk_file");
        }
        lc.tls.mode = QK_TLS_MODE_PSK;
        lc.tls.psks = &s->psks;
        lc.tls.min_version = 0x0304; /* TLS 1.3 */
    } else {
        lc.tls.mode = QK_TLS_MODE_MTLS;
        lc.tls.cert_file = cfg->peer_cert;
        lc.tls.key_file = cfg->peer_key;
        lc.tls.ca_file = cfg->peer_ca;
    }
    int rc = qk_tls_server_start(&lc, &s->srv, err);
    if (rc) {
        qk_psk_table_free(&s->psks);
        pthread_mutex_destroy(&s->mu);
        free(s);
        return qk_err_prefix(err, "bridge channel listener");
    }
    *out = s;
    return 0;
}

uint16_t chan_server_port(const chan_server *s)
{
    return qk_tls_server_port(s->srv);
}

void chan_server_stop(chan_server *s)
{
    if (!s)
        return;
    qk_tls_server_stop(s->srv);
    qk_psk_table_free(&s->psks);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

/* ---- initiator ---------------------------------------------------------------------------- */

struct chan_client {
    const qkb_config *cfg;
    qk_http_client *http;
    uint64_t epoch, seq;
    char url[QKB_STR + 64];
};

int chan_client_new(const qkb_config *cfg, chan_client **out, qk_err *err)
{
    chan_client *c = calloc(1, sizeof *c);
    if (!c)
        return qk_err_set(err, QK_ENOMEM, "out of memory");
    c->cfg = cfg;
    qk_http_tls t = {.connect_timeout_ms =
                         (long)(cfg->peer_timeout_ms < 3000 ? cfg->peer_timeout_ms : 3000),
                     .timeout_ms = (long)cfg->peer_timeout_ms,
                     .max_response = 16384,
                     .verify_host = true};
    qk_psk_table psks = {0};
    if (cfg->peer_auth == QKB_AUTH_PSK) {
        if (qk_psk_table_load(cfg->peer_psk_file, &psks, err) != 0) {
            free(c);
            return qk_err_prefix(err, "[peer] psk_file");
        }
        for (size_t i = 0; i < psks.n; i++)
            if (strcmp(psks.entries[i].identity, cfg->peer_psk_identity) == 0) {
                t.psk_identity = cfg->peer_psk_identity;
                t.psk = psks.entries[i].key;
                t.psk_len = psks.entries[i].key_len;
            }
        if (!t.psk) {
            qk_psk_table_free(&psks);
            free(c);
            return qk_err_set(err, QK_EINVAL, "[peer] psk_file has no entry for %s",
                              cfg->peer_psk_identity);
        }
        t.min_version = 0x0304;
    } else {
        t.ca_file = cfg->peer_ca;
        t.cert_file = cfg->peer_cert;
        t.key_file = cfg->peer_key;
    }
    c->http = qk_http_client_new(&t, err);
    qk_psk_table_free(&psks);
    if (!c->http) {
        free(c);
        return qk_err_prefix(err, "bridge channel client");
    }
    bool v6 = strchr(cfg->peer_host, ':') != NULL;
    snprintf(c->url, sizeof c->url, "https://%s%s%s:%u", v6 ? "[" : "", cfg->peer_host,
             v6 ? "]" : "", cfg->peer_port);
    qk_random(&c->epoch, sizeof c->epoch);
    *out = c;
    return 0;
}

void chan_client_free(chan_client *c)
{
    if (!c)
        return;
    qk_http_client_free(c->http);
    free(c);
}

int chan_send(chan_client *c, const char *type, const char *key_id, qk_err *err)
{
    if (!chan_key_id_ok(key_id))
        return qk_err_set(err, QK_EINVAL, "key ID not sendable");
    char url[QKB_STR + 96];
    snprintf(url, sizeof url, "%s/bridge/v1/%s", c->url, type);
    int rc = QK_EIO;
    for (unsigned attempt = 0; attempt <= c->cfg->peer_retries; attempt++) {
        if (attempt) {
            struct timespec ts = {0, (long)(200000000L * attempt)};
            nanosleep(&ts, NULL);
        }
        chan_msg m = {.epoch = c->epoch, .seq = ++c->seq};
        snprintf(m.type, sizeof m.type, "%s", type);
        snprintf(m.bridge, sizeof m.bridge, "%s", c->cfg->name);
        snprintf(m.key_id, sizeof m.key_id, "%s", key_id);
        char *body = chan_msg_encode(&m);
        if (!body)
            return qk_err_set(err, QK_ENOMEM, "out of memory");
        static const char *const hdr[] = {"Content-Type: application/json", NULL};
        qk_http_response resp = {0};
        rc = qk_http_request(c->http, "POST", url, body, strlen(body), hdr, &resp, err);
        free(body);
        if (rc != 0) {
            QK_WARN("bridge channel: %s %s attempt %u: %s", type, key_id, attempt + 1, err->msg);
            continue; /* transport failure: retry (bounded) */
        }
        cJSON *o = qk_json_parse(resp.body ? resp.body : "", resp.body_len, 16384, err);
        const char *st = NULL, *msg = NULL;
        if (o) {
            qk_err ig;
            qk_json_get_string(o, "status", false, &st, NULL, &ig);
            qk_json_get_string(o, "message", false, &msg, NULL, &ig);
        }
        long status = resp.status;
        if (status == 200 && st &&
            strcmp(st, strcmp(type, "offer") == 0 ? "installed" : "retired") == 0)
            rc = 0;
        else
            rc = qk_err_set(err, QK_EPEER, "responder refused %s of %s (HTTP %ld): %s", type,
                            key_id, status, msg ? msg : "no message");
        cJSON_Delete(o);
        qk_http_response_free(&resp);
        return rc;
    }
    return qk_err_prefix(err, "responder unreachable after %u attempts", c->cfg->peer_retries + 1);
}
