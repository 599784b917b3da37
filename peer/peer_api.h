/* peer_api.h - the handlers under /peer/v1/ (docs/qkd-kmed.md, "Peer API"). The caller is the
 * client-certificate CN, which must be the node ID of a linked peer; a body naming a link
 * must name that peer's link. Store errors map to the documented statuses. */
#ifndef QK_PEER_API_H
#define QK_PEER_API_H

#include <microhttpd.h>

#define QK_PEER_API_MAX_BODY (2u * 1024u * 1024u)

/* libmicrohttpd access handler; cls is the qk_kms *. Pair with qk_req_completed. */
enum MHD_Result qk_peer_api_handler(void *cls, struct MHD_Connection *c, const char *url,
                                    const char *method, const char *version,
                                    const char *upload_data, size_t *upload_data_size,
                                    void **con_cls);

#endif
