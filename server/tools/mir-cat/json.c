/*
 * mir-cat's output: a generic protobuf-c to JSON printer driven by message descriptors alone, and
 * the one-line and JSON renderings of an event.
 *
 * Everything printed comes from an untrusted log: strings are escaped and invalid UTF-8 is
 * replaced, text output shows non-printable bytes as \xHH, and nested packed payloads are decoded
 * only down to MIRCAT_JSON_DEPTH_MAX levels. Field presence follows protobuf-c: oneof members are
 * printed when their case is set, proto2 optional fields when present, proto3 fields always
 * (unset sub-messages as null).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "mir/registry.h"
#include "mircat.h"

void miri_cat_print_text(FILE *out, const char *s) {
  if (s == NULL || s[0] == '\0') {
    fputc('-', out);
    return;
  }
  for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
    if (*p >= 0x20 && *p < 0x7f && *p != '\\') {
      fputc(*p, out);
    } else {
      fprintf(out, "\\x%02x", *p);
    }
  }
}

/* Length of the valid UTF-8 sequence at s (at most n bytes), or 0 if it is not valid. */
static size_t json_utf8_len(const unsigned char *s, size_t n) {
  unsigned c = s[0];
  size_t len;
  unsigned min;
  if (c < 0x80) return 1;
  if (c >= 0xc2 && c <= 0xdf) {
    len = 2, min = 0x80;
  } else if (c >= 0xe0 && c <= 0xef) {
    len = 3, min = 0x800;
  } else if (c >= 0xf0 && c <= 0xf4) {
    len = 4, min = 0x10000;
  } else {
    return 0;
  }
  if (n < len) return 0;
  unsigned cp = c & (0x3f >> (len - 1));
  for (size_t i = 1; i < len; i++) {
    if ((s[i] & 0xc0) != 0x80) return 0;
    cp = (cp << 6) | (s[i] & 0x3f);
  }
  if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
  return len;
}

void miri_cat_json_string(FILE *out, const char *s, size_t len) {
  const unsigned char *p = (const unsigned char *)s;
  fputc('"', out);
  size_t i = 0;
  while (i < len) {
    unsigned char c = p[i];
    if (c == '"' || c == '\\') {
      fprintf(out, "\\%c", c);
    } else if (c == '\n') {
      fputs("\\n", out);
    } else if (c == '\t') {
      fputs("\\t", out);
    } else if (c == '\r') {
      fputs("\\r", out);
    } else if (c < 0x20 || c == 0x7f) {
      fprintf(out, "\\u%04x", c);
    } else {
      size_t n = json_utf8_len(p + i, len - i);
      if (n == 0) {
        fputs("\\ufffd", out);
        n = 1;
      } else {
        fwrite(p + i, 1, n, out);
      }
      i += n;
      continue;
    }
    i++;
  }
  fputc('"', out);
}

void miri_cat_json_base64(FILE *out, const uint8_t *data, size_t len) {
  static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  fputc('"', out);
  for (size_t i = 0; i < len; i += 3) {
    uint32_t v = (uint32_t)data[i] << 16;
    if (i + 1 < len) v |= (uint32_t)data[i + 1] << 8;
    if (i + 2 < len) v |= data[i + 2];
    fputc(tbl[(v >> 18) & 63], out);
    fputc(tbl[(v >> 12) & 63], out);
    fputc(i + 1 < len ? tbl[(v >> 6) & 63] : '=', out);
    fputc(i + 2 < len ? tbl[v & 63] : '=', out);
  }
  fputc('"', out);
}

static void json_double(FILE *out, double v, int digits) {
  if (isnan(v)) {
    fputs("\"NaN\"", out);
  } else if (isinf(v)) {
    fputs(v > 0 ? "\"Infinity\"" : "\"-Infinity\"", out);
  } else {
    fprintf(out, "%.*g", digits, v);
  }
}

static void json_enum(FILE *out, const ProtobufCFieldDescriptor *f, int value) {
  const ProtobufCEnumValue *ev = protobuf_c_enum_descriptor_get_value(f->descriptor, value);
  if (ev != NULL) {
    miri_cat_json_string(out, ev->name, strlen(ev->name));
  } else {
    fprintf(out, "%d", value);
  }
}

/* Size of one element of a repeated field of type t. */
static size_t json_elem_size(ProtobufCType t) {
  switch (t) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
      return 4;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
      return 8;
    case PROTOBUF_C_TYPE_FLOAT:
      return sizeof(float);
    case PROTOBUF_C_TYPE_DOUBLE:
      return sizeof(double);
    case PROTOBUF_C_TYPE_BOOL:
      return sizeof(protobuf_c_boolean);
    case PROTOBUF_C_TYPE_ENUM:
      return sizeof(int);
    case PROTOBUF_C_TYPE_STRING:
      return sizeof(char *);
    case PROTOBUF_C_TYPE_BYTES:
      return sizeof(ProtobufCBinaryData);
    case PROTOBUF_C_TYPE_MESSAGE:
      return sizeof(ProtobufCMessage *);
  }
  return 0;
}

/* Bytes fields that hold a packed message whose type another field of the same message names. */
static const struct {
  const char *message;
  const char *bytes_field;
  const char *type_field;
} json_packed_fields[] = {
    {"mir.PackedEvent", "payload", "type"},
    {"mir.PackedMessage", "data", "type"},
    {"mir.AnyMessage", "data", "type"},
};

/* The type name that describes bytes field f of msg, or NULL if f is plain bytes. */
static const char *json_packed_type(const ProtobufCMessage *msg,
                                    const ProtobufCFieldDescriptor *f) {
  for (size_t i = 0; i < sizeof(json_packed_fields) / sizeof(json_packed_fields[0]); i++) {
    if (strcmp(msg->descriptor->name, json_packed_fields[i].message) != 0) continue;
    if (strcmp(f->name, json_packed_fields[i].bytes_field) != 0) continue;
    const ProtobufCFieldDescriptor *tf = protobuf_c_message_descriptor_get_field_by_name(
        msg->descriptor, json_packed_fields[i].type_field);
    if (tf == NULL || tf->type != PROTOBUF_C_TYPE_STRING ||
        tf->label == PROTOBUF_C_LABEL_REPEATED) {
      return NULL;
    }
    return *(char *const *)((const char *)msg + tf->offset);
  }
  return NULL;
}

/* Prints one value of field f stored at member. */
static void json_value(FILE *out, const ProtobufCMessage *msg, const ProtobufCFieldDescriptor *f,
                       const void *member, int depth) {
  switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
      fprintf(out, "%d", (int)*(const int32_t *)member);
      break;
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
      fprintf(out, "%u", (unsigned)*(const uint32_t *)member);
      break;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
      fprintf(out, "%lld", (long long)*(const int64_t *)member);
      break;
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
      fprintf(out, "%llu", (unsigned long long)*(const uint64_t *)member);
      break;
    case PROTOBUF_C_TYPE_FLOAT:
      json_double(out, *(const float *)member, 9);
      break;
    case PROTOBUF_C_TYPE_DOUBLE:
      json_double(out, *(const double *)member, 17);
      break;
    case PROTOBUF_C_TYPE_BOOL:
      fputs(*(const protobuf_c_boolean *)member ? "true" : "false", out);
      break;
    case PROTOBUF_C_TYPE_ENUM:
      json_enum(out, f, *(const int *)member);
      break;
    case PROTOBUF_C_TYPE_STRING: {
      const char *s = *(char *const *)member;
      miri_cat_json_string(out, s != NULL ? s : "", s != NULL ? strlen(s) : 0);
      break;
    }
    case PROTOBUF_C_TYPE_BYTES: {
      const ProtobufCBinaryData *b = member;
      const char *type = f->label == PROTOBUF_C_LABEL_REPEATED ? NULL : json_packed_type(msg, f);
      if (type != NULL && type[0] != '\0') {
        miri_cat_json_payload(out, type, b->data, b->len, depth + 1);
      } else {
        miri_cat_json_base64(out, b->data, b->len);
      }
      break;
    }
    case PROTOBUF_C_TYPE_MESSAGE: {
      const ProtobufCMessage *sub = *(ProtobufCMessage *const *)member;
      if (sub == NULL) {
        fputs("null", out);
      } else {
        miri_cat_json_message(out, sub, depth + 1);
      }
      break;
    }
  }
}

/* True if field f of msg is to be printed (see presence rules at the top). */
static bool json_present(const ProtobufCMessage *msg, const ProtobufCFieldDescriptor *f) {
  const char *base = (const char *)msg;
  if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
    return *(const uint32_t *)(base + f->quantifier_offset) == f->id;
  }
  if (f->label != PROTOBUF_C_LABEL_OPTIONAL) return true;
  if (f->type == PROTOBUF_C_TYPE_MESSAGE || f->type == PROTOBUF_C_TYPE_STRING) {
    return *(void *const *)(base + f->offset) != NULL;
  }
  return *(const protobuf_c_boolean *)(base + f->quantifier_offset) != 0;
}

static void json_field(FILE *out, const ProtobufCMessage *msg, const ProtobufCFieldDescriptor *f,
                       int depth) {
  const char *base = (const char *)msg;
  miri_cat_json_string(out, f->name, strlen(f->name));
  fputc(':', out);
  if (f->label != PROTOBUF_C_LABEL_REPEATED) {
    json_value(out, msg, f, base + f->offset, depth);
    return;
  }
  size_t n = *(const size_t *)(base + f->quantifier_offset);
  const char *arr = *(const char *const *)(base + f->offset);
  size_t elem = json_elem_size(f->type);
  fputc('[', out);
  for (size_t i = 0; i < n && arr != NULL; i++) {
    if (i > 0) fputc(',', out);
    json_value(out, msg, f, arr + i * elem, depth);
  }
  fputc(']', out);
}

void miri_cat_json_message(FILE *out, const ProtobufCMessage *msg, int depth) {
  if (depth > MIRCAT_JSON_DEPTH_MAX) {
    fputs("\"...\"", out);
    return;
  }
  const ProtobufCMessageDescriptor *d = msg->descriptor;
  fputc('{', out);
  bool first = true;
  for (unsigned i = 0; i < d->n_fields; i++) {
    const ProtobufCFieldDescriptor *f = &d->fields[i];
    if (!json_present(msg, f)) continue;
    if (!first) fputc(',', out);
    first = false;
    json_field(out, msg, f, depth);
  }
  fputc('}', out);
}

void miri_cat_json_payload(FILE *out, const char *type, const uint8_t *data, size_t len,
                           int depth) {
  const ProtobufCMessageDescriptor *d = type != NULL ? mir_registry_find(type) : NULL;
  ProtobufCMessage *msg = NULL;
  if (d != NULL && depth <= MIRCAT_JSON_DEPTH_MAX)
    msg = protobuf_c_message_unpack(d, NULL, len, data);
  if (msg == NULL) {
    miri_cat_json_base64(out, data, len);
    return;
  }
  miri_cat_json_message(out, msg, depth);
  protobuf_c_message_free_unpacked(msg, NULL);
}

static void json_kv_string(FILE *out, const char *key, const char *value) {
  fprintf(out, ",\"%s\":", key);
  miri_cat_json_string(out, value != NULL ? value : "", value != NULL ? strlen(value) : 0);
}

void miri_cat_print_event(FILE *out, mircat_mode mode, uint64_t index, const char *node_id,
                          int64_t time_ns, const Mir__PackedEvent *pe, bool emitted) {
  if (mode != MIRCAT_JSON) {
    fprintf(out, "%s%llu ", emitted ? "  < " : "", (unsigned long long)index);
    miri_cat_print_text(out, node_id);
    fprintf(out, " %lld ", (long long)time_ns);
    miri_cat_print_text(out, pe->src);
    fputs(" -> ", out);
    miri_cat_print_text(out, pe->dest);
    fputc(' ', out);
    miri_cat_print_text(out, pe->type);
    fputc('\n', out);
    return;
  }
  fprintf(out, "{\"index\":%llu", (unsigned long long)index);
  json_kv_string(out, "node", node_id);
  fprintf(out, ",\"time_ns\":%lld", (long long)time_ns);
  json_kv_string(out, "src", pe->src);
  json_kv_string(out, "dest", pe->dest);
  json_kv_string(out, "type", pe->type);
  if (emitted) fputs(",\"emitted\":true", out);
  fputs(",\"payload\":", out);
  miri_cat_json_payload(out, pe->type, pe->payload.data, pe->payload.len, 0);
  fputs("}\n", out);
}
