/* json_util.h - cJSON helpers with strict type checking for untrusted input, and lenient
 * getters with a default for status displays. */
#ifndef QK_JSON_UTIL_H
#define QK_JSON_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <cjson/cJSON.h>
#include "qk_err.h"

/* Parse len bytes (need not be NUL-terminated). Rejects input above max_len, invalid JSON,
 * and trailing garbage after the value. Returns NULL with err set (QK_EINVAL). */
cJSON *qk_json_parse(const char *buf, size_t len, size_t max_len, qk_err *err);

/* Member getters. present (may be NULL) tells whether the member exists. A member that is
 * present with the wrong type is an error (QK_EINVAL, message names the member). A required
 * member that is absent is an error. */
int qk_json_get_string(const cJSON *obj, const char *name, bool required, const char **out,
                       bool *present, qk_err *err);
/* Integers must be JSON numbers with no fractional part within [min, max]. */
int qk_json_get_int(const cJSON *obj, const char *name, bool required, int64_t min, int64_t max,
                    int64_t *out, bool *present, qk_err *err);
int qk_json_get_bool(const cJSON *obj, const char *name, bool required, bool *out, bool *present,
                     qk_err *err);
/* Array member (any element type); returns the cJSON array node or NULL if absent. */
int qk_json_get_array(const cJSON *obj, const char *name, bool required, const cJSON **out,
                      qk_err *err);

/* Lenient getters, for showing a document one of our own daemons wrote (a status page): the
 * member as a string / number, or dflt when it is absent, of another type, or obj is not an
 * object (the first member of a name counts). Not for validating input: use the getters above.
 * The string points into obj. */
const char *qk_json_str_or(const cJSON *obj, const char *name, const char *dflt);
double qk_json_num_or(const cJSON *obj, const char *name, double dflt);

/* Free a parsed value after wiping every string in it (answers that carry key material in
 * base64 or hex). NULL is a no-op. */
void qk_json_delete_wiped(cJSON *j);

/* Compact serialization; returns malloc'ed NUL-terminated text or NULL. */
char *qk_json_print(const cJSON *j);

/* {"message": msg} as compact text, malloc'ed. */
char *qk_json_message(const char *msg);

#endif
