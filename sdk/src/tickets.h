/*
 * The ticket table (internal, pure: no locks, no I/O). One slot per tx number in a ring of `cap`
 * slots: an unresolved transaction keeps its data (to send it again after a reconnect or a
 * fail-over) and the replicas' answers so far; a resolved one keeps its outcome until its slot is
 * reused cap numbers later.
 *
 * Rules (docs/SDK.md): a transaction is committed when the agreed log holds its (client id, tx
 * number) with the same data; if the agreed log holds that number with other data, the outcome
 * is EEXIST. It is rejected when reject_quorum distinct replicas rejected it (f+1, or 1 when one
 * replica is trusted); ACCEPTED and DUPLICATE count as acceptance. The window is the number of
 * tx numbers from the oldest unresolved one, so no more than `window` are ever unresolved.
 */
#ifndef MIRI_CL_TICKETS_H
#define MIRI_CL_TICKETS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mir/client.h"

typedef enum miri_cl_tstate {
  MIRI_CL_T_FREE = 0, /* never used */
  MIRI_CL_T_PENDING,
  MIRI_CL_T_DONE
} miri_cl_tstate;

typedef struct miri_cl_ticket {
  uint64_t tx_no;
  uint8_t state;        /* miri_cl_tstate */
  int8_t reject_status; /* the first rejection's tx status, or -1 */
  int status;           /* DONE: MIR_CLIENT_OK, _EREJECTED, _EEXIST or _ESTOPPED */
  uint64_t sn;          /* DONE and committed */
  uint64_t accepted;    /* replicas that accepted it (bit per replica) */
  uint64_t rejected;    /* replicas that rejected it */
  uint8_t *data;        /* PENDING: owned copy */
  size_t len;
  char *reason;      /* the first rejection's reason (owned), or NULL */
  int64_t submit_ns; /* when submitted (the caller's clock) */
  mir_client_done_cb done;
  void *user_data;
} miri_cl_ticket;

typedef struct miri_cl_tickets {
  miri_cl_ticket *slots;
  uint64_t cap;
  uint32_t window;
  uint32_t reject_quorum;
  uint64_t first;            /* the first tx number */
  uint64_t next;             /* the next tx number to assign */
  uint64_t oldest;           /* the oldest unresolved tx number (== next when none) */
  uint64_t unresolved;       /* count */
  uint64_t bytes, bytes_max; /* data bytes held by unresolved tickets */
} miri_cl_tickets;

/* A resolved ticket's notification, to be delivered outside any lock. */
typedef struct miri_cl_done {
  mir_client_done_cb done;
  void *user_data;
  mir_client_result result;
} miri_cl_done;

/* cap >= window >= 1. Returns 0, or -1 when out of memory. */
int miri_cl_tickets_init(miri_cl_tickets *t, uint64_t first_tx_no, uint32_t window, uint64_t cap,
                         uint64_t bytes_max, uint32_t reject_quorum);
void miri_cl_tickets_fini(miri_cl_tickets *t);

/* Assigns the next tx number to a copy of data (borrowed). MIR_CLIENT_EFULL past the window or
 * bytes_max, MIR_CLIENT_ENOMEM; on error nothing changed. */
int miri_cl_tickets_add(miri_cl_tickets *t, const void *data, size_t len, int64_t now_ns,
                        mir_client_done_cb done, void *user_data, uint64_t *tx_no);

/* The unresolved ticket of tx_no, or NULL. */
miri_cl_ticket *miri_cl_tickets_pending(miri_cl_tickets *t, uint64_t tx_no);

/* Replica `replica` answered tx_no with tx_status (a trantor TxStatus value) and reason
 * (borrowed, may be NULL). Transient statuses (MEMPOOL_FULL, OUT_OF_WINDOW) must not be passed.
 * Returns true and fills *out when this answer resolved the ticket. */
bool miri_cl_tickets_answer(miri_cl_tickets *t, uint64_t tx_no, uint32_t replica, int tx_status,
                            const char *reason, miri_cl_done *out);

/* The agreed log holds (this client, tx_no) with data (borrowed) at sn. Returns true and fills
 * *out when an unresolved ticket was resolved (committed, or EEXIST for other data). */
bool miri_cl_tickets_commit(miri_cl_tickets *t, uint64_t tx_no, const uint8_t *data, size_t len,
                            uint64_t sn, miri_cl_done *out);

/* Resolves the oldest unresolved ticket with status (MIR_CLIENT_ESTOPPED at close). Returns false
 * when none is left. */
bool miri_cl_tickets_resolve_oldest(miri_cl_tickets *t, int status, miri_cl_done *out);

/* What a waiter learns about tx_no: MIR_CLIENT_ETIMEDOUT while unresolved (nothing filled), the
 * outcome's status with *out filled, or MIR_CLIENT_ENOTFOUND (never issued or forgotten). */
int miri_cl_tickets_lookup(const miri_cl_tickets *t, uint64_t tx_no, mir_client_result *out);

#endif
