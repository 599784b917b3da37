/* device_api.h - the device API (docs/qkd-kmed.md, "Device API"): the QKD device (or the
 * simulator) pushes key blocks and link telemetry. The caller is the client-certificate CN,
 * which must be the link's configured device_identity. */
#ifndef QK_DEVICE_API_H
#define QK_DEVICE_API_H

#include <microhttpd.h>
#include "store.h"

#define QK_DEVICE_API_MAX_BODY QK_BLOCK_MAX_BYTES

/* libmicrohttpd access handler; cls is the qk_kms *. Pair with qk_req_completed. */
enum MHD_Result qk_device_api_handler(void *cls, struct MHD_Connection *c, const char *url,
                                      const char *method, const char *version,
                                      const char *upload_data, size_t *upload_data_size,
                                      void **con_cls);

#endif
