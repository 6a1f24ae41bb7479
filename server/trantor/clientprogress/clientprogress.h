/*
 * Client progress: which transactions of each client were delivered (docs/PROTOCOL.md "Mempool,
 * availability, batch fetcher"). A data structure, not a module; the batch fetcher uses it to
 * deduplicate delivered transactions and the mempool to check client windows.
 *
 * Per client: a low watermark low_wm (every tx_no below it was delivered, low_wm itself was not)
 * and the set of delivered tx_nos above it, all inside the window [low_wm, low_wm + window). A
 * tx_no is *new* if it lies in the window and was not delivered. Recording tx_no == low_wm
 * advances the watermark over every delivered number that follows (this is the garbage
 * collection: the delivered set never holds the watermark itself and shrinks as gaps fill), so a
 * client that is delivered in order keeps no set at all.
 *
 * Bounds: at most clients_max clients and, per client, a bitmap of at most window bits, so the
 * memory is below clients_max * (window / 8 + 160) bytes. At the client bound, transactions of
 * unknown clients are refused (TRANTOR_CP_TOO_MANY_CLIENTS) and nothing is evicted: forgetting a
 * client would let its old transactions be delivered again. Every replica must use the same
 * window and clients_max, so that all of them refuse the same transactions.
 *
 * Everything is deterministic; the serialised form (Trantor__ClientProgress) is sorted by client
 * id, then by tx_no. Single-threaded. Every function borrows cp and its string arguments unless
 * its comment says otherwise.
 */
#ifndef TRANTOR_CLIENTPROGRESS_H
#define TRANTOR_CLIENTPROGRESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mir/errors.h"
#include "trantor/trantor.pb-c.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Default bound on tracked clients (all replicas must agree on it). */
#define TRANTOR_CLIENTS_MAX_DEFAULT 65536
/* Hard upper bound on clients_max. */
#define TRANTOR_CLIENTS_MAX_LIMIT (1u << 24)

/* What recording (client_id, tx_no) would do. */
typedef enum trantor_cp_status {
  TRANTOR_CP_NEW = 0,          /* in the window and not delivered: it can be recorded */
  TRANTOR_CP_DELIVERED,        /* below low_wm or already in the delivered set */
  TRANTOR_CP_OUT_OF_WINDOW,    /* at or above low_wm + window (or UINT64_MAX) */
  TRANTOR_CP_TOO_MANY_CLIENTS, /* unknown client while clients_max clients are tracked */
  TRANTOR_CP_INVALID           /* client id NULL, empty or longer than TRANTOR_CLIENT_ID_MAX */
} trantor_cp_status;

typedef struct trantor_client_progress trantor_client_progress;

/* Creates an empty progress. window: 1 .. 1,000,000 tx numbers; clients_max: 1 ..
 * TRANTOR_CLIENTS_MAX_LIMIT (0: TRANTOR_CLIENTS_MAX_DEFAULT). MIR_EINVAL with detail otherwise.
 * *out is owned (free with trantor_client_progress_free). */
mir_err trantor_client_progress_new(uint64_t window, size_t clients_max,
                                    trantor_client_progress **out);

/* Frees cp and every client. NULL is a no-op. */
void trantor_client_progress_free(trantor_client_progress *cp);

/* Forgets every client. cp borrowed. */
void trantor_client_progress_clear(trantor_client_progress *cp);

/* What recording (client_id, tx_no) would do, without changing anything. Both borrowed. */
trantor_cp_status trantor_client_progress_check(const trantor_client_progress *cp,
                                                const char *client_id, uint64_t tx_no);

/* Records (client_id, tx_no) as delivered if it is new; returns true iff it was. On false, *why
 * (if not NULL) says why (never TRANTOR_CP_NEW). client_id is borrowed (copied when a client is
 * created). */
bool trantor_client_progress_add(trantor_client_progress *cp, const char *client_id, uint64_t tx_no,
                                 trantor_cp_status *why);

/* True if (client_id, tx_no) was delivered. Both borrowed. */
bool trantor_client_progress_contains(const trantor_client_progress *cp, const char *client_id,
                                      uint64_t tx_no);

/* The client's low watermark (0 for an unknown client). */
uint64_t trantor_client_progress_low_wm(const trantor_client_progress *cp, const char *client_id);

/* Number of tracked clients, and of delivered tx_nos kept above their watermarks. */
size_t trantor_client_progress_clients(const trantor_client_progress *cp);
uint64_t trantor_client_progress_delivered_above(const trantor_client_progress *cp);

/* The window and the client bound it was created with. */
uint64_t trantor_client_progress_window(const trantor_client_progress *cp);
size_t trantor_client_progress_clients_max(const trantor_client_progress *cp);

/* Serialises cp (borrowed): clients sorted by id, delivered numbers ascending. Returns an owned
 * tree (free with protobuf_c_message_free_unpacked(&msg->base, NULL)). */
Trantor__ClientProgress *trantor_client_progress_to_msg(const trantor_client_progress *cp);

/* Replaces the state of cp with msg (borrowed, untrusted). msg must be in the canonical form
 * to_msg produces: at most clients_max clients with valid ids in strictly ascending order; per
 * client, delivered numbers strictly ascending, each in (low_wm, low_wm + window), fewer than the
 * window. NULL means empty. MIR_EPROTO with detail (and cp unchanged) otherwise. */
mir_err trantor_client_progress_load(trantor_client_progress *cp,
                                     const Trantor__ClientProgress *msg);

/* Static name of a status ("new", "delivered", ...). */
const char *trantor_cp_status_name(trantor_cp_status s);

#ifdef __cplusplus
}
#endif
#endif
