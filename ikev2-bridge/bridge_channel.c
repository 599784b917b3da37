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
    if (strcmp(type, "offer") != 0 && strcmp(type, "activate") != 0 &&
        strcmp(type, "activated") != 0) {
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

/* {"status": st, "key_id": kid, "message": msg}; kid and msg may be NULL. The key ID and the
 * message also go to the envelope's request log line (IDs only: never key material). */
static void chan_reply(qk_http_reply *rep, unsigned status, const char *st, const char *kid,
                       const char *msg)
{
    cJSON *o = cJSON_CreateObject();
    char *s = NULL;
    if (o && cJSON_AddStringToObject(o, "status", st) &&
        (!kid || cJSON_AddStringToObject(o, "key_id", kid)) &&
        (!msg || cJSON_AddStringToObject(o, "message", msg)))
        s = qk_json_print(o);
    cJSON_Delete(o);
    if (s)
        qk_http_reply_take(rep, status, "application/json", s, strlen(s));
    else
        qk_http_reply_json(rep, status, "{\"status\":\"error\"}");
    if (msg)
        qk_http_reply_detail(rep, "%s", msg);
    if (kid) {
        char *ids = strdup(kid);
        if (ids)
            qk_http_reply_key_ids(rep, ids);
    }
}

static void chan_on_req(qk_http_handler *self, const qk_http_request *req, qk_http_reply *rep)
{
    chan_handler *s = (chan_handler *)self;
    const qk_peer_identity *id = req->caller;
    const char *why = NULL;
    /* Only bridge certificates here (docs/qkd-kmed.md "Roles"), whatever their CN. */
    if (!qk_role_allows(id->kind == QK_ID_CERT, id->role, QK_ROLE_BRIDGE, s->cfg->peer_role_marker,
                        &why)) {
        QK_WARN("bridge channel: refused peer '%s': %s", id->id, why);
        chan_reply(rep, 403, "error", NULL, "peer not allowed");
        return;
    }
    if (id->kind == QK_ID_NONE ||
        (s->cfg->peer_name[0] && strcmp(id->id, s->cfg->peer_name) != 0)) {
        QK_WARN("bridge channel: refused peer '%s' (expected '%s')", id->id, s->cfg->peer_name);
        chan_reply(rep, 403, "error", NULL, "peer not allowed");
        return;
    }
    /* path -> message type, callback, answer */
    const char *type = NULL, *answer = NULL;
    int (*cb)(void *, const char *, qk_err *) = NULL;
    if (strcmp(req->path, "/bridge/v1/offer") == 0)
        type = "offer", cb = s->h.offer, answer = "installed";
    else if (strcmp(req->path, "/bridge/v1/activate") == 0 && s->h.activate)
        type = "activate", cb = s->h.activate, answer = "active";
    else if (strcmp(req->path, "/bridge/v1/activated") == 0)
        type = "activated", cb = s->h.activated, answer = "retired";
    if (!type) {
        chan_reply(rep, 404, "error", NULL, "unknown path");
        return;
    }
    if (strcmp(req->method, "POST") != 0) {
        chan_reply(rep, 405, "error", NULL, "POST only");
        return;
    }
    chan_msg m;
    qk_err err;
    qk_err_clear(&err);
    if (chan_msg_decode(req->body, req->body_len, s->cfg->max_message, &m, &err) != 0) {
        chan_reply(rep, 400, "error", NULL, err.msg);
        return;
    }
    if (strcmp(m.type, type) != 0) {
        chan_reply(rep, 400, "error", NULL, "message type does not match the path");
        return;
    }
    pthread_mutex_lock(&s->mu);
    if (chan_replay_check(&s->replay, m.epoch, m.seq) != 0) {
        pthread_mutex_unlock(&s->mu);
        QK_WARN("bridge channel: replayed or out-of-order %s from %s (seq %" PRIu64 ") refused",
                m.type, m.bridge, m.seq);
        chan_reply(rep, 409, "error", m.key_id, "replayed or out-of-order message");
        return;
    }
    int rc = cb(s->h.ctx, m.key_id, &err);
    pthread_mutex_unlock(&s->mu);
    if (rc != 0)
        chan_reply(rep, rc == QK_ENOTFOUND ? 404 : 503, "error", m.key_id, err.msg);
    else
        chan_reply(rep, 200, answer, m.key_id, NULL);
}

int chan_handler_configure(chan_handler *ch, const qkb_config *cfg, const chan_handlers *h)
{
    memset(ch, 0, sizeof *ch);
    ch->super.on_req = chan_on_req;
    ch->cfg = cfg;
    ch->h = *h;
    return pthread_mutex_init(&ch->mu, NULL) == 0 ? 0 : QK_EIO;
}

void chan_handler_release(chan_handler *ch)
{
    pthread_mutex_destroy(&ch->mu);
    qk_wipe(&ch->replay, sizeof ch->replay);
}

struct chan_server {
    chan_handler handler; /* must outlive the listener */
    qk_psk_table psks;
    qk_tls_server *srv;
};

int chan_server_start(const qkb_config *cfg, const chan_handlers *h, chan_server **out, qk_err *err)
{
    chan_server *s = calloc(1, sizeof *s);
    if (!s)
        return qk_err_set(err, QK_ENOMEM, "out of memory");
    if (chan_handler_configure(&s->handler, cfg, h) != 0) {
        free(s);
        return qk_err_set(err, QK_EIO, "bridge channel: cannot create a mutex");
    }
    qk_listener_config lc = {.name = "bridge",
                             .bind_addr = cfg->listen_host,
                             .port = cfg->listen_port,
                             .handler = &s->handler.super,
                             .max_connections = 16,
                             .handshake_timeout_ms = (unsigned)cfg->peer_timeout_ms,
                             .idle_timeout_s = 30,
                             .threads = 2,
                             .max_body = cfg->max_message};
    if (cfg->peer_auth == QKB_AUTH_PSK) {
        if (qk_psk_table_load(cfg->peer_psk_file, &s->psks, err) != 0) {
            chan_handler_release(&s->handler);
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
        chan_handler_release(&s->handler);
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
    chan_handler_release(&s->handler);
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
        rc = qk_http_call(c->http, "POST", url, body, strlen(body), hdr, &resp, err);
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
            strcmp(st, strcmp(type, "offer") == 0      ? "installed"
                       : strcmp(type, "activate") == 0 ? "active"
                                                       : "retired") == 0)
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
