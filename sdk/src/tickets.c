/*
 * The ticket table (tickets.h).
 *
 * Invariants: tx numbers first..next-1 were issued; the slot of n is slots[n % cap] and holds n
 * (state != FREE) for every n in [max(first, next - cap), next); every unresolved number lies in
 * [oldest, next) and next - oldest <= window <= cap, so assigning `next` never overwrites an
 * unresolved slot; `oldest` is either next or the number of an unresolved slot.
 */
#include "tickets.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int miri_cl_tickets_init(miri_cl_tickets *t, uint64_t first_tx_no, uint32_t window, uint64_t cap,
                         uint64_t bytes_max, uint32_t reject_quorum) {
  memset(t, 0, sizeof(*t));
  t->cap = cap;
  t->window = window;
  t->reject_quorum = reject_quorum;
  t->first = t->next = t->oldest = first_tx_no;
  t->bytes_max = bytes_max;
  t->slots = calloc(cap, sizeof(*t->slots));
  return t->slots == NULL ? -1 : 0;
}

void miri_cl_tickets_fini(miri_cl_tickets *t) {
  if (t->slots == NULL) return;
  for (uint64_t i = 0; i < t->cap; i++) {
    free(t->slots[i].data);
    free(t->slots[i].reason);
  }
  free(t->slots);
  t->slots = NULL;
}

int miri_cl_tickets_add(miri_cl_tickets *t, const void *data, size_t len, int64_t now_ns,
                        mir_client_done_cb done, void *user_data, uint64_t *tx_no) {
  if (t->next - t->oldest >= t->window) return MIR_CLIENT_EFULL;
  if (t->bytes + len > t->bytes_max) return MIR_CLIENT_EFULL;
  if (t->next == UINT64_MAX) return MIR_CLIENT_EFULL; /* tx numbers exhausted */
  uint8_t *copy = malloc(len > 0 ? len : 1);
  if (copy == NULL) return MIR_CLIENT_ENOMEM;
  if (len > 0) memcpy(copy, data, len);
  miri_cl_ticket *s = &t->slots[t->next % t->cap];
  free(s->reason); /* the forgotten outcome of next - cap */
  memset(s, 0, sizeof(*s));
  s->tx_no = t->next;
  s->state = MIRI_CL_T_PENDING;
  s->reject_status = -1;
  s->data = copy;
  s->len = len;
  s->submit_ns = now_ns;
  s->done = done;
  s->user_data = user_data;
  t->bytes += len;
  t->unresolved++;
  *tx_no = t->next++;
  return MIR_CLIENT_OK;
}

miri_cl_ticket *miri_cl_tickets_pending(miri_cl_tickets *t, uint64_t tx_no) {
  if (tx_no < t->oldest || tx_no >= t->next) return NULL;
  miri_cl_ticket *s = &t->slots[tx_no % t->cap];
  return (s->tx_no == tx_no && s->state == MIRI_CL_T_PENDING) ? s : NULL;
}

static void tickets_fill(const miri_cl_ticket *s, mir_client_result *r) {
  memset(r, 0, sizeof(*r));
  r->status = s->status;
  r->ticket = s->tx_no;
  r->sn = s->sn;
  r->tx_status = s->status == MIR_CLIENT_EREJECTED ? s->reject_status : 0;
  if (s->reason != NULL) snprintf(r->reason, sizeof(r->reason), "%s", s->reason);
}

/* Marks s resolved with status, releases its data and moves `oldest` past resolved numbers. */
static void tickets_resolve(miri_cl_tickets *t, miri_cl_ticket *s, int status, miri_cl_done *out) {
  s->state = MIRI_CL_T_DONE;
  s->status = status;
  t->bytes -= s->len;
  t->unresolved--;
  free(s->data);
  s->data = NULL;
  out->done = s->done;
  out->user_data = s->user_data;
  tickets_fill(s, &out->result);
  while (t->oldest < t->next && t->slots[t->oldest % t->cap].state != MIRI_CL_T_PENDING) {
    t->oldest++;
  }
}

bool miri_cl_tickets_answer(miri_cl_tickets *t, uint64_t tx_no, uint32_t replica, int tx_status,
                            const char *reason, miri_cl_done *out) {
  miri_cl_ticket *s = miri_cl_tickets_pending(t, tx_no);
  if (s == NULL) return false;
  uint64_t bit = 1ull << replica;
  if (tx_status == MIR_CLIENT_TX_ACCEPTED || tx_status == MIR_CLIENT_TX_DUPLICATE) {
    s->accepted |= bit;
    return false;
  }
  if (s->rejected & bit) return false;
  s->rejected |= bit;
  if (s->reject_status < 0) {
    s->reject_status = (int8_t)tx_status;
    s->reason = strdup(reason != NULL && reason[0] != '\0' ? reason : "rejected");
  }
  if ((uint32_t)__builtin_popcountll(s->rejected) < t->reject_quorum) return false;
  tickets_resolve(t, s, MIR_CLIENT_EREJECTED, out);
  return true;
}

bool miri_cl_tickets_commit(miri_cl_tickets *t, uint64_t tx_no, const uint8_t *data, size_t len,
                            uint64_t sn, miri_cl_done *out) {
  miri_cl_ticket *s = miri_cl_tickets_pending(t, tx_no);
  if (s == NULL) return false;
  s->sn = sn;
  bool same = s->len == len && (len == 0 || memcmp(s->data, data, len) == 0);
  if (!same) {
    free(s->reason);
    s->reason = strdup("the tx number was committed with other data (client id used twice?)");
  }
  tickets_resolve(t, s, same ? MIR_CLIENT_OK : MIR_CLIENT_EEXIST, out);
  return true;
}

bool miri_cl_tickets_resolve_oldest(miri_cl_tickets *t, int status, miri_cl_done *out) {
  miri_cl_ticket *s = miri_cl_tickets_pending(t, t->oldest);
  if (s == NULL) return false;
  tickets_resolve(t, s, status, out);
  return true;
}

int miri_cl_tickets_lookup(const miri_cl_tickets *t, uint64_t tx_no, mir_client_result *out) {
  if (tx_no < t->first || tx_no >= t->next) return MIR_CLIENT_ENOTFOUND;
  const miri_cl_ticket *s = &t->slots[tx_no % t->cap];
  if (s->tx_no != tx_no || s->state == MIRI_CL_T_FREE) return MIR_CLIENT_ENOTFOUND;
  if (s->state == MIRI_CL_T_PENDING) return MIR_CLIENT_ETIMEDOUT;
  if (out != NULL) tickets_fill(s, out);
  return s->status;
}
