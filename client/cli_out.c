/* cli_out.c - `qkd` output: exit codes, error reports, key encodings, JSON printing. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "client_internal.h"
#include "codec.h"
#include "secbuf.h"

int cli_exit_code(qkc_errclass cls)
{
    switch (cls) {
    case QKC_OK:
        return QKD_EXIT_OK;
    case QKC_EUSAGE:
        return QKD_EXIT_USAGE;
    case QKC_ETLS:
        return QKD_EXIT_TLS;
    case QKC_ECONNECT:
        return QKD_EXIT_CONNECT;
    case QKC_EHTTP:
        return QKD_EXIT_HTTP;
    case QKC_EMALFORMED:
        return QKD_EXIT_MALFORMED;
    case QKC_EINTERNAL:
        break;
    }
    return QKD_EXIT_FAIL;
}

int cli_report(const cli_conn *cc, const qkc_error *e)
{
    fprintf(stderr, "qkd: %s error: %s\n", qkc_errclass_name(e->cls), e->msg);
    if (cc && cc->json) {
        cJSON *j = cJSON_CreateObject();
        cJSON *o = j ? cJSON_AddObjectToObject(j, "error") : NULL;
        if (o && cJSON_AddStringToObject(o, "class", qkc_errclass_name(e->cls)) &&
            cJSON_AddNumberToObject(o, "exit_code", cli_exit_code(e->cls)) &&
            (e->http_status == 0 || cJSON_AddNumberToObject(o, "http_status", e->http_status)) &&
            (!e->server_message[0] ||
             cJSON_AddStringToObject(o, "server_message", e->server_message)) &&
            cJSON_AddStringToObject(o, "message", e->msg))
            cli_print_json(j);
        else
            cJSON_Delete(j);
    }
    return cli_exit_code(e->cls);
}

const char *cli_encoding_name(cli_encoding enc)
{
    return enc == CLI_ENC_BASE64 ? "base64" : "hex";
}

char *cli_encode(const uint8_t *b, size_t n, cli_encoding enc)
{
    size_t cap = enc == CLI_ENC_BASE64 ? qk_base64_encoded_len(n) + 1 : 2 * n + 1;
    char *out = qk_secure_alloc(cap);
    if (!out)
        return NULL;
    size_t w =
        enc == CLI_ENC_BASE64 ? qk_base64_encode(b, n, out, cap) : qk_hex_encode(b, n, out, cap);
    if (w == 0 && n != 0) {
        qk_secure_free(out);
        return NULL;
    }
    if (n == 0)
        out[0] = '\0';
    return out;
}

int cli_print_json(void *tree)
{
    cJSON *j = tree;
    char *text = j ? cJSON_Print(j) : NULL;
    int rc = QKD_EXIT_OK;
    if (!text) {
        fputs("qkd: out of memory\n", stderr);
        rc = QKD_EXIT_FAIL;
    } else {
        if (puts(text) == EOF || fflush(stdout) != 0)
            rc = QKD_EXIT_FAIL;
        qk_wipe(text, strlen(text));
        cJSON_free(text);
    }
    qk_json_delete_wiped(j);
    return rc;
}
