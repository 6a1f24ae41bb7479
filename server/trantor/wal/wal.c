/*
 * Trantor's write-ahead log: keys, record encoding with checksums, and recovery (wal.h).
 *
 * Recovery trusts nothing it reads: every value must pass its CRC-32C and decode as the record
 * its key names, every key must have the shape of its kind. What it cannot read is an error for
 * the embedder to report, not a record to skip: skipping a vote would let the replica contradict
 * it. Consistency between records (a batch behind every Q-set entry, digests that match the
 * batches) is checked by the modules that take the records back (pbft.c), which know the hash.
 */
#include "wal.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mir/alloc.h"
#include "mir/assert.h"
#include "trantor_common.h"

/* ---- keys ---- */

static void wal_put_u64(uint8_t *out, uint64_t v) {
  for (int i = 0; i < 8; i++) out[i] = (uint8_t)(v >> (56 - 8 * i));
}

static uint64_t wal_get_u64(const uint8_t *in) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++) v = v << 8 | in[i];
  return v;
}

static uint32_t wal_get_u32(const uint8_t *in) {
  return (uint32_t)in[0] << 24 | (uint32_t)in[1] << 16 | (uint32_t)in[2] << 8 | in[3];
}

static bool wal_kind_has_sn(char kind) {
  return kind == TRANTOR_WAL_BATCH || kind == TRANTOR_WAL_KNOWN || kind == TRANTOR_WAL_PREPARED ||
         kind == TRANTOR_WAL_PROPOSED || kind == TRANTOR_WAL_COMMITTED;
}

static bool wal_kind_has_digest(char kind) {
  return kind == TRANTOR_WAL_BATCH || kind == TRANTOR_WAL_KNOWN;
}

size_t trantor_wal_instance_key(uint8_t *key, uint64_t epoch, uint32_t segment, char kind,
                                uint64_t sn, const uint8_t *digest) {
  size_t n = 0;
  key[n++] = 'I';
  wal_put_u64(key + n, epoch);
  n += 8;
  for (int i = 0; i < 4; i++) key[n++] = (uint8_t)(segment >> (24 - 8 * i));
  key[n++] = (uint8_t)kind;
  if (wal_kind_has_sn(kind)) {
    wal_put_u64(key + n, sn);
    n += 8;
  }
  if (wal_kind_has_digest(kind)) {
    MIR_ASSERT(digest != NULL);
    memcpy(key + n, digest, TRANTOR_DIGEST_BYTES);
    n += TRANTOR_DIGEST_BYTES;
  }
  return n;
}

static size_t wal_global_key(uint8_t *key, char c) {
  key[0] = (uint8_t)c;
  return 1;
}

size_t trantor_wal_stable_key(uint8_t *key) {
  return wal_global_key(key, 'S');
}
size_t trantor_wal_floor_key(uint8_t *key) {
  return wal_global_key(key, 'F');
}
size_t trantor_wal_rejoin_key(uint8_t *key) {
  return wal_global_key(key, 'J');
}
size_t trantor_wal_params_key(uint8_t *key) {
  return wal_global_key(key, 'M');
}

const char *trantor_wal_key_format(const uint8_t *key, size_t klen, char *buf, size_t cap) {
  if (cap == 0) return buf;
  buf[0] = '\0';
  if (klen == 0) {
    snprintf(buf, cap, "(empty key)");
  } else if (key[0] == 'I' && klen >= 14) {
    int off = snprintf(buf, cap, "I/%" PRIu64 "/%" PRIu32 "/%c", wal_get_u64(key + 1),
                       wal_get_u32(key + 9), key[13] >= 0x20 && key[13] < 0x7f ? key[13] : '?');
    if (klen >= 22 && off > 0 && (size_t)off < cap) {
      off += snprintf(buf + off, cap - (size_t)off, "/%" PRIu64, wal_get_u64(key + 14));
    }
    for (size_t i = 22; i < klen && i < 26 && off > 0 && (size_t)off + 3 < cap; i++) {
      off += snprintf(buf + off, cap - (size_t)off, i == 22 ? "/%02x" : "%02x", key[i]);
    }
  } else {
    int off = 0;
    for (size_t i = 0; i < klen && i < 16 && (size_t)off + 3 < cap; i++) {
      off += snprintf(buf + off, cap - (size_t)off, "%02x", key[i]);
    }
  }
  return buf;
}

/* ---- values ---- */

/* CRC-32C, reflected polynomial 0x82f63b78. Batches of up to a few MiB are checksummed on the
 * dispatcher thread for every record written, so the speed matters: the x86 CRC32 instruction
 * where the processor has it (8 bytes a cycle or so), else tables for 8 bytes at a time
 * ("slicing by 8"); both give the same value. */
static uint32_t wal_crc_table[8][256];

static void wal_crc_init(void) {
  for (uint32_t i = 0; i < 256; i++) {
    uint32_t c = i;
    for (int k = 0; k < 8; k++) c = c & 1 ? (c >> 1) ^ 0x82f63b78u : c >> 1;
    wal_crc_table[0][i] = c;
  }
  for (uint32_t i = 0; i < 256; i++) {
    for (int t = 1; t < 8; t++) {
      uint32_t c = wal_crc_table[t - 1][i];
      wal_crc_table[t][i] = (c >> 8) ^ wal_crc_table[0][c & 0xff];
    }
  }
}

static uint32_t wal_crc_sliced(uint32_t crc, const uint8_t *p, size_t len) {
  while (len >= 8) {
    uint32_t lo =
        crc ^ ((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24);
    uint32_t hi =
        (uint32_t)p[4] | (uint32_t)p[5] << 8 | (uint32_t)p[6] << 16 | (uint32_t)p[7] << 24;
    crc = wal_crc_table[7][lo & 0xff] ^ wal_crc_table[6][(lo >> 8) & 0xff] ^
          wal_crc_table[5][(lo >> 16) & 0xff] ^ wal_crc_table[4][lo >> 24] ^
          wal_crc_table[3][hi & 0xff] ^ wal_crc_table[2][(hi >> 8) & 0xff] ^
          wal_crc_table[1][(hi >> 16) & 0xff] ^ wal_crc_table[0][hi >> 24];
    p += 8;
    len -= 8;
  }
  while (len-- > 0) crc = wal_crc_table[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
  return crc;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) static uint32_t wal_crc_hw(uint32_t crc, const uint8_t *p,
                                                             size_t len) {
  uint64_t c = crc;
  while (len >= 8) {
    uint64_t v;
    memcpy(&v, p, 8);
    c = __builtin_ia32_crc32di(c, v);
    p += 8;
    len -= 8;
  }
  uint32_t c32 = (uint32_t)c;
  while (len-- > 0) c32 = __builtin_ia32_crc32qi(c32, *p++);
  return c32;
}
#endif

static pthread_once_t wal_crc_once = PTHREAD_ONCE_INIT;
static bool wal_crc_have_hw;

static void wal_crc_setup(void) {
  wal_crc_init();
#if defined(__x86_64__)
  wal_crc_have_hw = __builtin_cpu_supports("sse4.2");
#endif
}

uint32_t trantor_wal_crc32c(const uint8_t *data, size_t len) {
  pthread_once(&wal_crc_once, wal_crc_setup);
  uint32_t crc = 0xffffffffu;
#if defined(__x86_64__)
  if (wal_crc_have_hw) return wal_crc_hw(crc, data, len) ^ 0xffffffffu;
#endif
  return wal_crc_sliced(crc, data, len) ^ 0xffffffffu;
}

/* The portable CRC-32C, for tests that compare it with the one in use. */
uint32_t trantor_wal_crc32c_portable(const uint8_t *data, size_t len) {
  pthread_once(&wal_crc_once, wal_crc_setup);
  return wal_crc_sliced(0xffffffffu, data, len) ^ 0xffffffffu;
}

uint8_t *trantor_wal_encode(const ProtobufCMessage *msg, size_t *len) {
  size_t n = protobuf_c_message_get_packed_size(msg);
  uint8_t *buf = mir_xmalloc(n + 4);
  protobuf_c_message_pack(msg, buf);
  uint32_t crc = trantor_wal_crc32c(buf, n);
  for (int i = 0; i < 4; i++) buf[n + i] = (uint8_t)(crc >> (24 - 8 * i));
  *len = n + 4;
  return buf;
}

void trantor_wal_put(Mir__StoreWrite *w, const uint8_t *key, size_t klen,
                     const ProtobufCMessage *msg) {
  size_t vlen = 0;
  uint8_t *val = trantor_wal_encode(msg, &vlen);
  mir_storage_put_owned(w, key, klen, val, vlen);
}

void trantor_wal_delete_epochs_below(Mir__StoreWrite *w, uint64_t epoch) {
  if (epoch == 0) return;
  uint8_t begin[9] = {'I'}, end[9] = {'I'};
  wal_put_u64(begin + 1, 0);
  wal_put_u64(end + 1, epoch);
  mir_storage_delete_range(w, begin, sizeof begin, end, sizeof end);
}

void trantor_wal_params_hash(trantor_hash_fn hash, const Trantor__Membership *m,
                             const trantor_params *p, uint8_t out[32]) {
  size_t mlen = protobuf_c_message_get_packed_size(&m->base);
  uint8_t *mbytes = mir_xmalloc(mlen ? mlen : 1);
  protobuf_c_message_pack(&m->base, mbytes);
  const uint64_t fields[] = {p->segment_length,  p->num_buckets,
                             p->retained_epochs, (uint64_t)p->leader_policy_blacklist,
                             p->max_batch_txs,   p->max_batch_bytes,
                             p->max_tx_bytes,    p->client_window,
                             p->epochs_ahead_max};
  trantor_hash_input in;
  trantor_hash_input_init(&in);
  trantor_hash_add_str(&in, "params");
  trantor_hash_add_bytes(&in, mbytes, mlen);
  for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
    trantor_hash_add_u64(&in, fields[i]);
  }
  trantor_hash_compute(&in, hash, out);
  free(mbytes);
}

/* ---- recovery ---- */

/* Decodes the value of kv as desc, checking the checksum. MIR_EIO with detail. */
static mir_err wal_decode(const trantor_wal_kv *kv, const ProtobufCMessageDescriptor *desc,
                          ProtobufCMessage **out) {
  char k[96];
  if (kv->vlen < 4) {
    return mir_error_set(MIR_EIO, "write-ahead log: record %s: %zu bytes, too short",
                         trantor_wal_key_format(kv->key, kv->klen, k, sizeof k), kv->vlen);
  }
  size_t n = kv->vlen - 4;
  uint32_t want = wal_get_u32(kv->val + n);
  if (trantor_wal_crc32c(kv->val, n) != want) {
    return mir_error_set(MIR_EIO, "write-ahead log: record %s: checksum mismatch (torn or corrupt)",
                         trantor_wal_key_format(kv->key, kv->klen, k, sizeof k));
  }
  *out = protobuf_c_message_unpack(desc, NULL, n, kv->val);
  if (*out == NULL) {
    return mir_error_set(MIR_EIO, "write-ahead log: record %s: does not decode as %s",
                         trantor_wal_key_format(kv->key, kv->klen, k, sizeof k), desc->name);
  }
  return MIR_OK;
}

static mir_err wal_bad_key(const trantor_wal_kv *kv, const char *why) {
  char k[96];
  return mir_error_set(MIR_EIO, "write-ahead log: key %s: %s",
                       trantor_wal_key_format(kv->key, kv->klen, k, sizeof k), why);
}

/* Appends an element to a protobuf-c repeated field (array of pointers). */
#define WAL_APPEND(arr, n, item)                             \
  do {                                                       \
    (arr) = mir_xrealloc((arr), ((n) + 1) * sizeof(*(arr))); \
    (arr)[(n)++] = (item);                                   \
  } while (0)

static ProtobufCBinaryData wal_dup(const uint8_t *p, size_t len) {
  ProtobufCBinaryData b = {len, mir_xmalloc(len ? len : 1)};
  if (len) memcpy(b.data, p, len);
  return b;
}

/* The recovered instance for (epoch, segment): the last one of rec if it matches (keys come in
 * order, so an instance's records are contiguous), else a new one. */
static Trantor__PbftRecovered *wal_instance(Trantor__Recovered *rec, uint64_t epoch,
                                            uint32_t segment) {
  if (rec->n_instances > 0) {
    Trantor__RecoveredInstance *last = rec->instances[rec->n_instances - 1];
    if (last->epoch == epoch && last->segment == segment) return last->pbft;
  }
  Trantor__RecoveredInstance *ri = mir_xmalloc(sizeof(*ri));
  trantor__recovered_instance__init(ri);
  ri->epoch = epoch;
  ri->segment = segment;
  ri->pbft = mir_xmalloc(sizeof(*ri->pbft));
  trantor__pbft_recovered__init(ri->pbft);
  WAL_APPEND(rec->instances, rec->n_instances, ri);
  return ri->pbft;
}

static Trantor__PbftRecoveredSlot *wal_slot(uint64_t sn, uint64_t view,
                                            const ProtobufCBinaryData *digest) {
  Trantor__PbftRecoveredSlot *s = mir_xmalloc(sizeof(*s));
  trantor__pbft_recovered_slot__init(s);
  s->sn = sn;
  s->view = view;
  s->digest = wal_dup(digest->data, digest->len);
  return s;
}

/* The batch (sn, digest) of pr, which B records put there in key order. */
static Trantor__PbftRecoveredBatch *wal_find_batch(Trantor__PbftRecovered *pr, uint64_t sn,
                                                   const uint8_t *digest) {
  for (size_t i = 0; i < pr->n_batches; i++) {
    Trantor__PbftRecoveredBatch *b = pr->batches[i];
    if (b->sn == sn && memcmp(b->digest.data, digest, TRANTOR_DIGEST_BYTES) == 0) return b;
  }
  return NULL;
}

/* One record of an instance (key shape checked). */
static mir_err wal_instance_record(Trantor__Recovered *rec, const trantor_wal_kv *kv) {
  const uint8_t *k = kv->key;
  uint64_t epoch = wal_get_u64(k + 1);
  uint32_t segment = wal_get_u32(k + 9);
  char kind = (char)k[13];
  uint64_t sn = wal_kind_has_sn(kind) ? wal_get_u64(k + 14) : 0;
  const uint8_t *digest = wal_kind_has_digest(kind) ? k + 22 : NULL;
  ProtobufCMessage *m = NULL;
  mir_err err = MIR_OK;
  if (segment == TRANTOR_WAL_CHECKPOINT_SEGMENT) {
    err = wal_decode(kv, &trantor__wal_checkpoint_sig__descriptor, &m);
    if (err != MIR_OK) return err;
    Trantor__RecoveredCheckpointSig *cs = mir_xmalloc(sizeof(*cs));
    trantor__recovered_checkpoint_sig__init(cs);
    cs->epoch = epoch;
    cs->sig = (Trantor__WalCheckpointSig *)m;
    WAL_APPEND(rec->checkpoint_sigs, rec->n_checkpoint_sigs, cs);
    return MIR_OK;
  }
  Trantor__PbftRecovered *pr = wal_instance(rec, epoch, segment);
  switch (kind) {
    case TRANTOR_WAL_VIEW:
      err = wal_decode(kv, &trantor__wal_view__descriptor, &m);
      if (err == MIR_OK) pr->view = (Trantor__WalView *)m;
      return err;
    case TRANTOR_WAL_NEW_VIEW:
      err = wal_decode(kv, &trantor__new_view__descriptor, &m);
      if (err == MIR_OK) pr->new_view = (Trantor__NewView *)m;
      return err;
    case TRANTOR_WAL_BATCH: {
      err = wal_decode(kv, &trantor__wal_cert__descriptor, &m);
      if (err != MIR_OK) return err;
      Trantor__WalCert *c = (Trantor__WalCert *)m;
      Trantor__PbftRecoveredBatch *b = mir_xmalloc(sizeof(*b));
      trantor__pbft_recovered_batch__init(b);
      b->sn = sn;
      b->digest = wal_dup(digest, TRANTOR_DIGEST_BYTES);
      b->aborted = c->aborted;
      b->cert = c->cert; /* moved */
      c->cert = (ProtobufCBinaryData){0, NULL};
      protobuf_c_message_free_unpacked(m, NULL);
      WAL_APPEND(pr->batches, pr->n_batches, b);
      return MIR_OK;
    }
    case TRANTOR_WAL_KNOWN: {
      err = wal_decode(kv, &trantor__wal_known__descriptor, &m);
      if (err != MIR_OK) return err;
      uint64_t view = ((Trantor__WalKnown *)m)->view;
      protobuf_c_message_free_unpacked(m, NULL);
      Trantor__PbftRecoveredBatch *b = wal_find_batch(pr, sn, digest);
      if (b == NULL) return wal_bad_key(kv, "a preprepare without the batch behind it");
      b->preprepared = true;
      b->preprepared_view = view;
      return MIR_OK;
    }
    case TRANTOR_WAL_PREPARED:
    case TRANTOR_WAL_PROPOSED:
    case TRANTOR_WAL_COMMITTED: {
      err = wal_decode(kv, &trantor__wal_slot__descriptor, &m);
      if (err != MIR_OK) return err;
      Trantor__WalSlot *ws = (Trantor__WalSlot *)m;
      if (ws->digest.len != TRANTOR_DIGEST_BYTES) {
        protobuf_c_message_free_unpacked(m, NULL);
        return wal_bad_key(kv, "a digest that is not 32 bytes");
      }
      Trantor__PbftRecoveredSlot *s = wal_slot(sn, ws->view, &ws->digest);
      protobuf_c_message_free_unpacked(m, NULL);
      if (kind == TRANTOR_WAL_PREPARED) {
        WAL_APPEND(pr->prepared, pr->n_prepared, s);
      } else if (kind == TRANTOR_WAL_PROPOSED) {
        WAL_APPEND(pr->proposed, pr->n_proposed, s);
      } else {
        WAL_APPEND(pr->committed, pr->n_committed, s);
      }
      return MIR_OK;
    }
    default:
      return wal_bad_key(kv, "unknown record kind");
  }
}

/* Checks the length of an instance key for its kind. */
static bool wal_instance_key_ok(const trantor_wal_kv *kv) {
  if (kv->klen < 14) return false;
  char kind = (char)kv->key[13];
  size_t want = 14 + (wal_kind_has_sn(kind) ? 8 : 0) + (wal_kind_has_digest(kind) ? 32 : 0);
  bool chk = wal_get_u32(kv->key + 9) == TRANTOR_WAL_CHECKPOINT_SEGMENT;
  if (chk && kind != TRANTOR_WAL_CHECKPOINT_SIG) return false;
  return kv->klen == want;
}

static mir_err wal_global_record(Trantor__Recovered *rec, const trantor_wal_kv *kv) {
  if (kv->klen != 1) return wal_bad_key(kv, "unknown key");
  ProtobufCMessage *m = NULL;
  mir_err err = MIR_OK;
  switch (kv->key[0]) {
    case 'S':
      err = wal_decode(kv, &trantor__stable_checkpoint__descriptor, &m);
      if (err == MIR_OK) rec->checkpoint = (Trantor__StableCheckpoint *)m;
      return err;
    case 'F':
      err = wal_decode(kv, &trantor__wal_floor__descriptor, &m);
      if (err == MIR_OK) rec->vote_floor = ((Trantor__WalFloor *)m)->epoch;
      break;
    case 'J':
      err = wal_decode(kv, &trantor__wal_floor__descriptor, &m);
      if (err == MIR_OK) rec->rejoin = true;
      break;
    case 'M':
      err = wal_decode(kv, &trantor__wal_params__descriptor, &m);
      if (err == MIR_OK) {
        Trantor__WalParams *wp = (Trantor__WalParams *)m;
        rec->params_hash = wp->hash; /* moved */
        wp->hash = (ProtobufCBinaryData){0, NULL};
      }
      break;
    default:
      return wal_bad_key(kv, "unknown key");
  }
  if (m != NULL) protobuf_c_message_free_unpacked(m, NULL);
  return err;
}

mir_err trantor_wal_recover(const trantor_wal_kv *kvs, size_t n, Trantor__Recovered **out) {
  Trantor__Recovered *rec = mir_xmalloc(sizeof(*rec));
  trantor__recovered__init(rec);
  mir_err err = MIR_OK;
  /* The global records first: the stable checkpoint tells which instance records still matter.
   * Instances of the epochs below it may have written after the checkpoint's write deleted their
   * epochs (a late commit or catch-up of a retained epoch): such records are left-overs, deleted
   * with the next checkpoint, and a restart never creates those instances again. */
  for (size_t i = 0; i < n && err == MIR_OK; i++) {
    const trantor_wal_kv *kv = &kvs[i];
    if (kv->klen == 0) {
      err = wal_bad_key(kv, "empty key");
    } else if (kv->key[0] != 'I') {
      err = wal_global_record(rec, kv);
    }
  }
  uint64_t floor = 0;
  if (err == MIR_OK && rec->checkpoint != NULL && rec->checkpoint->snapshot != NULL &&
      rec->checkpoint->snapshot->epoch_config != NULL) {
    floor = rec->checkpoint->snapshot->epoch_config->epoch;
  }
  for (size_t i = 0; i < n && err == MIR_OK; i++) {
    const trantor_wal_kv *kv = &kvs[i];
    if (kv->key[0] != 'I') continue;
    if (!wal_instance_key_ok(kv)) {
      err = wal_bad_key(kv, "malformed instance key");
    } else if (wal_get_u64(kv->key + 1) >= floor) {
      err = wal_instance_record(rec, kv);
    }
  }
  if (err != MIR_OK) {
    protobuf_c_message_free_unpacked(&rec->base, NULL);
    return err;
  }
  *out = rec;
  return MIR_OK;
}
