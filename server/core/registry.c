/*
 * Type registry: an open-addressing hash table from full type name to descriptor.
 *
 * Registration happens at start-up (modules register their payload types before nodes start);
 * lookups happen for every nested event and every received message, from many threads. A
 * read-write lock keeps lookups concurrent. The table has twice MIR_REGISTRY_MAX slots, so probe
 * sequences stay short and always end at an empty slot.
 */
#include "mir/registry.h"

#include <pthread.h>
#include <string.h>

#include "mir/crypto.pb-c.h"
#include "mir/event.pb-c.h"
#include "mir/record.pb-c.h"
#include "mir/store.pb-c.h"

#define REGISTRY_SLOTS (2 * MIR_REGISTRY_MAX)

static const ProtobufCMessageDescriptor *registry_slots[REGISTRY_SLOTS];
static size_t registry_count;
static pthread_rwlock_t registry_lock = PTHREAD_RWLOCK_INITIALIZER;

/* FNV-1a: short names, no adversary (names come from our own descriptors or are only looked up). */
static size_t registry_hash(const char *s) {
  uint64_t h = 1469598103934665603u;
  for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211u;
  return (size_t)(h % REGISTRY_SLOTS);
}

/* Returns the slot holding name, or the empty slot where it would go. Caller holds the lock. */
static size_t registry_probe(const char *name) {
  size_t i = registry_hash(name);
  while (registry_slots[i] != NULL && strcmp(registry_slots[i]->name, name) != 0) {
    i = (i + 1) % REGISTRY_SLOTS;
  }
  return i;
}

mir_err mir_registry_add(const ProtobufCMessageDescriptor *desc) {
  if (desc == NULL || desc->magic != PROTOBUF_C__MESSAGE_DESCRIPTOR_MAGIC) return MIR_EINVAL;
  mir_err err = MIR_OK;
  pthread_rwlock_wrlock(&registry_lock);
  size_t i = registry_probe(desc->name);
  if (registry_slots[i] == NULL) {
    if (registry_count >= MIR_REGISTRY_MAX) {
      err = MIR_EFULL;
    } else {
      registry_slots[i] = desc;
      registry_count++;
    }
  }
  pthread_rwlock_unlock(&registry_lock);
  return err;
}

mir_err mir_registry_add_all(const ProtobufCMessageDescriptor *const *descs, size_t n) {
  for (size_t i = 0; i < n; i++) {
    mir_err err = mir_registry_add(descs[i]);
    if (err != MIR_OK) return err;
  }
  return MIR_OK;
}

const ProtobufCMessageDescriptor *mir_registry_find(const char *full_name) {
  if (full_name == NULL) return NULL;
  pthread_rwlock_rdlock(&registry_lock);
  const ProtobufCMessageDescriptor *d = registry_slots[registry_probe(full_name)];
  pthread_rwlock_unlock(&registry_lock);
  return d;
}

void mir_registry_add_framework(void) {
  static const ProtobufCMessageDescriptor *const framework_types[] = {
      &mir__packed_event__descriptor,
      &mir__packed_message__descriptor,
      &mir__origin__descriptor,
      &mir__init__descriptor,
      &mir__send_message__descriptor,
      &mir__message_received__descriptor,
      &mir__timer_delay__descriptor,
      &mir__timer_repeat__descriptor,
      &mir__any_message__descriptor,
      &mir__new_submodule__descriptor,
      &mir__garbage_collect__descriptor,
      &mir__test_string__descriptor,
      &mir__test_uint64__descriptor,
      &mir__log_record__descriptor,
      &mir__sign_request__descriptor,
      &mir__sign_result__descriptor,
      &mir__verify_request__descriptor,
      &mir__verify_result__descriptor,
      &mir__signed_data__descriptor,
      &mir__verify_many_request__descriptor,
      &mir__verify_many_result__descriptor,
      &mir__hash_data__descriptor,
      &mir__hash_request__descriptor,
      &mir__hash_result__descriptor,
      &mir__store_op__descriptor,
      &mir__store_write__descriptor,
      &mir__store_failed__descriptor,
  };
  mir_err err =
      mir_registry_add_all(framework_types, sizeof framework_types / sizeof framework_types[0]);
  (void)err; /* cannot fail: far below MIR_REGISTRY_MAX */
}
