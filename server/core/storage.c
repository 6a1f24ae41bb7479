/*
 * Builders and checks of the store contract's payload (mir/storage.h).
 */
#include "mir/storage.h"

#include <stdlib.h>
#include <string.h>

#include "mir/alloc.h"

Mir__StoreWrite *mir_storage_write_new(void) {
  Mir__StoreWrite *w = mir_xmalloc(sizeof(*w));
  mir__store_write__init(w);
  return w;
}

static ProtobufCBinaryData storage_bytes(const void *p, size_t len) {
  ProtobufCBinaryData b = {len, NULL};
  b.data = mir_xmalloc(len ? len : 1);
  if (len) memcpy(b.data, p, len);
  return b;
}

static Mir__StoreOp *storage_op(Mir__StoreWrite *w, Mir__StoreOp__Kind kind) {
  Mir__StoreOp *op = mir_xmalloc(sizeof(*op));
  mir__store_op__init(op);
  op->kind = kind;
  w->ops = mir_xrealloc(w->ops, (w->n_ops + 1) * sizeof(*w->ops));
  w->ops[w->n_ops++] = op;
  return op;
}

void mir_storage_put(Mir__StoreWrite *w, const void *key, size_t klen, const void *val,
                     size_t vlen) {
  Mir__StoreOp *op = storage_op(w, MIR__STORE_OP__KIND__PUT);
  op->key = storage_bytes(key, klen);
  op->value = storage_bytes(val, vlen);
}

void mir_storage_put_owned(Mir__StoreWrite *w, const void *key, size_t klen, uint8_t *val,
                           size_t vlen) {
  Mir__StoreOp *op = storage_op(w, MIR__STORE_OP__KIND__PUT);
  op->key = storage_bytes(key, klen);
  op->value = (ProtobufCBinaryData){vlen, val};
}

void mir_storage_delete(Mir__StoreWrite *w, const void *key, size_t klen) {
  Mir__StoreOp *op = storage_op(w, MIR__STORE_OP__KIND__DELETE);
  op->key = storage_bytes(key, klen);
}

void mir_storage_delete_range(Mir__StoreWrite *w, const void *begin, size_t blen, const void *end,
                              size_t elen) {
  Mir__StoreOp *op = storage_op(w, MIR__STORE_OP__KIND__DELETE_RANGE);
  op->key = storage_bytes(begin, blen);
  op->end = storage_bytes(end, elen);
}

void mir_storage_then(Mir__StoreWrite *w, mir_event *ev) {
  Mir__PackedEvent *pe = mir_xmalloc(sizeof(*pe));
  mir__packed_event__init(pe);
  mir_event_pack(ev, pe);
  mir_event_free(ev);
  w->then = mir_xrealloc(w->then, (w->n_then + 1) * sizeof(*w->then));
  w->then[w->n_then++] = pe;
}

mir_event *mir_event_store_write(const char *store, const char *src, Mir__StoreWrite *w) {
  return mir_event_new(store, src, &w->base);
}

static int storage_key_cmp(const ProtobufCBinaryData *a, const ProtobufCBinaryData *b) {
  size_t n = a->len < b->len ? a->len : b->len;
  int c = n ? memcmp(a->data, b->data, n) : 0;
  if (c != 0) return c;
  return a->len < b->len ? -1 : a->len > b->len ? 1 : 0;
}

mir_err mir_storage_check(const Mir__StoreWrite *w) {
  for (size_t i = 0; i < w->n_ops; i++) {
    const Mir__StoreOp *op = w->ops[i];
    if (op->key.len == 0 || op->key.len > MIR_STORAGE_KEY_MAX) {
      return mir_error_set(MIR_EINVAL, "store write: op %zu: key of %zu bytes (1..%d)", i,
                           op->key.len, MIR_STORAGE_KEY_MAX);
    }
    switch (op->kind) {
      case MIR__STORE_OP__KIND__PUT:
        if (op->value.len > MIR_STORAGE_VALUE_MAX) {
          return mir_error_set(MIR_EINVAL, "store write: op %zu: value of %zu bytes", i,
                               op->value.len);
        }
        break;
      case MIR__STORE_OP__KIND__DELETE:
        break;
      case MIR__STORE_OP__KIND__DELETE_RANGE:
        if (op->end.len == 0 || op->end.len > MIR_STORAGE_KEY_MAX ||
            storage_key_cmp(&op->key, &op->end) >= 0) {
          return mir_error_set(MIR_EINVAL, "store write: op %zu: empty or inverted range", i);
        }
        break;
      default:
        return mir_error_set(MIR_EINVAL, "store write: op %zu: unknown kind %d", i, op->kind);
    }
  }
  return MIR_OK;
}

mir_err mir_storage_release(const Mir__StoreWrite *w, mir_event_list *out) {
  for (size_t i = 0; i < w->n_then; i++) {
    mir_event *ev = NULL;
    mir_err err = mir_event_unpack(w->then[i], &ev);
    if (err != MIR_OK) return err;
    mir_event_list_push(out, ev);
  }
  return MIR_OK;
}

size_t mir_storage_bytes(const Mir__StoreWrite *w) {
  size_t n = 0;
  for (size_t i = 0; i < w->n_ops; i++) {
    n += w->ops[i]->key.len + w->ops[i]->value.len + w->ops[i]->end.len;
  }
  return n;
}
