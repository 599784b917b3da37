/* vici_client.h - a VICI client on charon's Unix socket: packet framing, bounded reads with
 * deadlines, command requests and streamed commands (event registration), written from the
 * documented wire protocol. One vici_conn is used by one thread at a time. */
#ifndef QKB_VICI_CLIENT_H
#define QKB_VICI_CLIENT_H

#include "vici_msg.h"

/* Packet types. */
enum {
    VICI_CMD_REQUEST = 0,
    VICI_CMD_RESPONSE = 1,
    VICI_CMD_UNKNOWN = 2,
    VICI_EVENT_REGISTER = 3,
    VICI_EVENT_UNREGISTER = 4,
    VICI_EVENT_CONFIRM = 5,
    VICI_EVENT_UNKNOWN = 6,
    VICI_EVENT = 7,
};

typedef struct vici_conn vici_conn;

/* Connect to the socket ("unix:///path" or a plain path). */
int vici_connect(const char *uri, int timeout_ms, vici_conn **out, qk_err *err);
void vici_close(vici_conn *c);

/* One command: msg may be NULL (empty message). On success *resp holds the response tree
 * (free with vici_tree_free); the caller checks vici_success(). Errors: QK_ETIMEOUT, QK_EIO,
 * QK_EINVAL (malformed packet, or CMD_UNKNOWN). Unrelated events are skipped (bounded). */
int vici_call(vici_conn *c, const char *cmd, vici_builder *msg, int timeout_ms, vici_node **resp,
              qk_err *err);

/* Called for each streamed event; return non-zero to stop collecting (the response is still
 * read). */
typedef int (*vici_event_cb)(void *ctx, const vici_node *event);

/* A streamed command (list-sas, list-conns, ...): registers `event`, sends the command, hands
 * each event to cb until the response arrives, then unregisters. At most max_events events are
 * accepted (QK_ELIMIT beyond). */
int vici_call_stream(vici_conn *c, const char *cmd, vici_builder *msg, const char *event,
                     vici_event_cb cb, void *ctx, size_t max_events, int timeout_ms,
                     vici_node **resp, qk_err *err);

/* Encode a packet header + name into out (for tests): returns the header length or 0. */
size_t vici_packet_header(uint8_t type, const char *name, size_t body_len, uint8_t *out,
                          size_t cap);

#endif
