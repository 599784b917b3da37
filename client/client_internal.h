/* client_internal.h - helpers shared by the libqkdclient modules (not installed). */
#ifndef QKC_CLIENT_INTERNAL_H
#define QKC_CLIENT_INTERNAL_H

#include <cjson/cJSON.h>

#include "json_util.h"
#include "qkdclient.h"

/* Largest JSON body the typed parsers accept. */
#define QKC_JSON_MAX (4u * 1024 * 1024)

/* Set e (if non-NULL): class, message; keeps http_status and server_message. Returns cls. */
int qkc_fail(qkc_error *e, qkc_errclass cls, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Reset e to "no error". */
void qkc_error_clear(qkc_error *e);

/* Parse body as a JSON object (QKC_EMALFORMED otherwise). */
int qkc_parse_object(const char *body, size_t len, cJSON **out, qkc_error *e);
/* Trees that held key material are freed with qk_json_delete_wiped (common/json_util.h). */

/* Copy the string member `name` of obj into out[cap]: it must be a string of 1..cap-1 bytes
 * without control characters (printable ASCII or UTF-8). required=false: absent leaves out as
 * "" and returns 0. QKC_EMALFORMED otherwise. */
int qkc_get_text(const cJSON *obj, const char *name, bool required, char *out, size_t cap,
                 qkc_error *e);
/* Optional member that must be an object when present: its compact JSON (malloc'ed) or NULL. */
int qkc_get_object_json(const cJSON *obj, const char *name, char **out, qkc_error *e);

/* One request expecting HTTP 200 with a body: transport errors and non-200 statuses become
 * their class (with the server's message); on 0, resp holds the body (free it with
 * qkc_raw_response_free). */
int qkc_call(qkc_client *c, const char *method, const char *path, const char *body, size_t body_len,
             qkc_raw_response *resp, qkc_error *e);

/* True if s is 1..cap-1 bytes of printable ASCII without spaces. */
bool qkc_is_token(const char *s, size_t cap);

#endif
