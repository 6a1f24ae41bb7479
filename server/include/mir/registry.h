/*
 * The type registry: full protobuf type name -> descriptor. Nested events, messages from the
 * network and event logs name their payload type; decoding looks the name up here. Register every
 * payload type a process may decode before starting nodes (registration is idempotent and
 * thread-safe; lookups take a read lock).
 */
#ifndef MIR_REGISTRY_H
#define MIR_REGISTRY_H

#include <protobuf-c/protobuf-c.h>

#include "mir/errors.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Most types a process can register. */
#define MIR_REGISTRY_MAX 2048

/* Registers desc (borrowed; descriptors are static). MIR_EFULL past MIR_REGISTRY_MAX. */
mir_err mir_registry_add(const ProtobufCMessageDescriptor *desc);
/* Registers n descriptors; stops at the first error. */
mir_err mir_registry_add_all(const ProtobufCMessageDescriptor *const *descs, size_t n);
/* Registers the framework's own types (mir.*). Called by mir_node_new; idempotent. */
void mir_registry_add_framework(void);
/* Returns the descriptor of full_name (borrowed), or NULL. */
const ProtobufCMessageDescriptor *mir_registry_find(const char *full_name);

#ifdef __cplusplus
}
#endif
#endif
