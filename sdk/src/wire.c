/*
 * Decoding and validation of replica messages (wire.h).
 *
 * The canonical form of a Delivery is protobuf-c's encoding of the decoded message with only the
 * four known fields (sn, epoch, txs, log_hash): unknown fields and field order, which a faulty
 * replica could vary freely, vanish in the round trip, so equal content gives equal bytes. The
 * client-id filter is applied here, on the client side, whether or not the replica honoured the
 * SubscribeRequest filter, so that both kinds of correct replica produce the same vote.
 */
#include "wire.h"

#include <stdlib.h>
#include <string.h>

static const char *wire_check_delivery(const Mir__Api__Delivery *d) {
  if (d->log_hash.len != MIRI_CL_HASH_BYTES) return "log_hash is not 32 bytes";
  if (d->n_txs > MIRI_CL_ENTRY_TXS_MAX) return "too many transactions";
  for (size_t i = 0; i < d->n_txs; i++) {
    const Trantor__Tx *tx = d->txs[i];
    if (tx == NULL || tx->client_id == NULL) return "transaction without client id";
    if (strlen(tx->client_id) > MIRI_CL_WIRE_ID_MAX) return "client id too long";
    if (tx->data.len > 0 && tx->data.data == NULL) return "transaction data missing";
  }
  return NULL;
}

int miri_cl_delivery_canon(const uint8_t *buf, size_t len, const char *filter_id, uint64_t *sn,
                           uint8_t **out, size_t *out_len, const char **why) {
  Mir__Api__Delivery *d = mir__api__delivery__unpack(NULL, len, buf);
  if (d == NULL) {
    *why = "cannot decode Delivery";
    return -1;
  }
  const char *bad = wire_check_delivery(d);
  if (bad != NULL) {
    mir__api__delivery__free_unpacked(d, NULL);
    *why = bad;
    return -1;
  }
  Mir__Api__Delivery c = MIR__API__DELIVERY__INIT;
  c.sn = d->sn;
  c.epoch = d->epoch;
  c.log_hash = d->log_hash;
  Trantor__Tx **kept = malloc((d->n_txs > 0 ? d->n_txs : 1) * sizeof(*kept));
  if (kept == NULL) {
    mir__api__delivery__free_unpacked(d, NULL);
    return -2;
  }
  for (size_t i = 0; i < d->n_txs; i++) {
    if (filter_id == NULL || strcmp(d->txs[i]->client_id, filter_id) == 0) {
      kept[c.n_txs++] = d->txs[i];
    }
  }
  c.txs = kept;
  size_t n = mir__api__delivery__get_packed_size(&c);
  uint8_t *bytes = malloc(n > 0 ? n : 1);
  if (bytes != NULL) mir__api__delivery__pack(&c, bytes);
  free(kept);
  *sn = d->sn;
  mir__api__delivery__free_unpacked(d, NULL);
  if (bytes == NULL) return -2;
  *out = bytes;
  *out_len = n;
  return 0;
}

int miri_cl_entry_view_init(miri_cl_entry_view *view, const uint8_t *buf, size_t len) {
  memset(view, 0, sizeof(*view));
  view->msg = mir__api__delivery__unpack(NULL, len, buf);
  if (view->msg == NULL) return -1; /* canonical bytes decode unless memory runs out */
  const Mir__Api__Delivery *d = view->msg;
  view->txs = calloc(d->n_txs > 0 ? d->n_txs : 1, sizeof(*view->txs));
  if (view->txs == NULL) {
    mir__api__delivery__free_unpacked(view->msg, NULL);
    view->msg = NULL;
    return -1;
  }
  for (size_t i = 0; i < d->n_txs; i++) {
    view->txs[i].client_id = d->txs[i]->client_id;
    view->txs[i].tx_no = d->txs[i]->tx_no;
    view->txs[i].data = d->txs[i]->data.data;
    view->txs[i].len = d->txs[i]->data.len;
  }
  view->entry.sn = d->sn;
  view->entry.epoch = d->epoch;
  view->entry.log_hash = d->log_hash.data;
  view->entry.log_hash_len = d->log_hash.len;
  view->entry.txs = view->txs;
  view->entry.n_txs = d->n_txs;
  return 0;
}

void miri_cl_entry_view_fini(miri_cl_entry_view *view) {
  if (view->msg != NULL) mir__api__delivery__free_unpacked(view->msg, NULL);
  free(view->txs);
  memset(view, 0, sizeof(*view));
}

const char *miri_cl_submit_response_check(const Mir__Api__SubmitResponse *resp, size_t n_txs) {
  if (resp->error != NULL && resp->error[0] != '\0') return NULL; /* the whole request refused */
  if (resp->n_results != n_txs) return "result count differs from the request's";
  for (size_t i = 0; i < resp->n_results; i++) {
    const Mir__Api__TxResult *r = resp->results[i];
    if (r == NULL) return "missing result";
    if ((int)r->status < MIR_CLIENT_TX_ACCEPTED || (int)r->status > MIR_CLIENT_TX_INVALID) {
      return "unknown transaction status";
    }
  }
  return NULL;
}
