/*
 * mir-status: asks replicas for their Status (proto/api/api.proto) and prints one line each.
 *
 *   mir-status [--timeout-ms MS] [--json] [--tls-ca FILE] [--tls-server-name NAME]
 *              [--tls-cert FILE --tls-key FILE] ADDR...
 *
 * Each address is asked in turn with a deadline; an unreachable replica prints an error line and
 * makes the exit status 1. Only the gRPC C core and the api types are used (no libmir node).
 */
#include <errno.h>
#include <getopt.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.pb-c.h"

#define ST_PEM_MAX ((size_t)1 << 20)

typedef struct st_opts {
  long timeout_ms;
  bool json;
  const char *ca_file;
  const char *server_name;
  const char *cert_file, *key_file; /* a client certificate (replicas with client.require_cert) */
} st_opts;

static void st_usage(FILE *f) {
  fprintf(f,
          "usage: mir-status [options] ADDR...\n"
          "\n"
          "Prints the Status of each replica at ADDR (host:port of its client API):\n"
          "  ADDR  id  epoch  last_sn  log_hash  peers-connected/peers  retained_from_sn\n"
          "last_sn is the last delivered sequence number (\"-\" before the first) and log_hash\n"
          "is log_hash(last_sn), the hash chaining the delivered log (proto/api/api.proto).\n"
          "\n"
          "  --timeout-ms MS         deadline of each call (default 2000)\n"
          "  --json                  one JSON object per line instead\n"
          "  --tls-ca FILE           use TLS, trusting this CA (PEM)\n"
          "  --tls-server-name NAME  name expected in the certificates (default: the host)\n"
          "  --tls-cert FILE         a client certificate (PEM), for replicas that require one\n"
          "  --tls-key FILE          its private key (PEM)\n"
          "  --help                  this text\n"
          "\n"
          "Exit status: 0 if every replica answered, 1 otherwise, 2 for a usage error.\n");
}

static char *st_read_file(const char *path) {
  FILE *f = fopen(path, "rb");
  if (f == NULL) return NULL;
  char *buf = malloc(ST_PEM_MAX + 1);
  size_t n = buf != NULL ? fread(buf, 1, ST_PEM_MAX, f) : 0;
  fclose(f);
  if (buf == NULL || n == 0) {
    free(buf);
    return NULL;
  }
  buf[n] = '\0';
  return buf;
}

/* Calls Status on ch; *out is owned (free_unpacked) on success, else *why is set. */
static bool st_call(grpc_channel *ch, long timeout_ms, Mir__Api__StatusResponse **out, char *why,
                    size_t why_cap) {
  grpc_completion_queue *cq = grpc_completion_queue_create_for_pluck(NULL);
  gpr_timespec deadline =
      gpr_time_add(gpr_now(GPR_CLOCK_REALTIME), gpr_time_from_millis(timeout_ms, GPR_TIMESPAN));
  grpc_call *call = grpc_channel_create_call(
      ch, NULL, GRPC_PROPAGATE_DEFAULTS, cq,
      grpc_slice_from_static_string("/mir.api.Client/Status"), NULL, deadline, NULL);
  Mir__Api__StatusRequest req = MIR__API__STATUS_REQUEST__INIT;
  grpc_slice s = grpc_slice_malloc(mir__api__status_request__get_packed_size(&req));
  mir__api__status_request__pack(&req, GRPC_SLICE_START_PTR(s));
  grpc_byte_buffer *send = grpc_raw_byte_buffer_create(&s, 1), *recv = NULL;
  grpc_slice_unref(s);
  grpc_metadata_array md, trailing;
  grpc_metadata_array_init(&md);
  grpc_metadata_array_init(&trailing);
  grpc_status_code status = GRPC_STATUS_UNKNOWN;
  grpc_slice details = grpc_empty_slice();
  grpc_op ops[6];
  memset(ops, 0, sizeof(ops));
  ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
  ops[1].op = GRPC_OP_SEND_MESSAGE;
  ops[1].data.send_message.send_message = send;
  ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
  ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
  ops[3].data.recv_initial_metadata.recv_initial_metadata = &md;
  ops[4].op = GRPC_OP_RECV_MESSAGE;
  ops[4].data.recv_message.recv_message = &recv;
  ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
  ops[5].data.recv_status_on_client.trailing_metadata = &trailing;
  ops[5].data.recv_status_on_client.status = &status;
  ops[5].data.recv_status_on_client.status_details = &details;
  bool ok =
      grpc_call_start_batch(call, ops, 6, (void *)1, NULL) == GRPC_CALL_OK &&
      grpc_completion_queue_pluck(cq, (void *)1, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type ==
          GRPC_OP_COMPLETE;
  *out = NULL;
  if (ok && status == GRPC_STATUS_OK && recv != NULL) {
    grpc_byte_buffer_reader r;
    if (grpc_byte_buffer_reader_init(&r, recv)) {
      grpc_slice all = grpc_byte_buffer_reader_readall(&r);
      *out = mir__api__status_response__unpack(NULL, GRPC_SLICE_LENGTH(all),
                                               GRPC_SLICE_START_PTR(all));
      grpc_slice_unref(all);
      grpc_byte_buffer_reader_destroy(&r);
    }
  }
  if (*out == NULL) {
    char *d = grpc_slice_to_c_string(details);
    snprintf(why, why_cap, "status %d: %s", (int)status,
             status == GRPC_STATUS_OK ? "no answer" : d);
    gpr_free(d);
  }
  if (recv != NULL) grpc_byte_buffer_destroy(recv);
  grpc_byte_buffer_destroy(send);
  grpc_slice_unref(details);
  grpc_metadata_array_destroy(&md);
  grpc_metadata_array_destroy(&trailing);
  grpc_call_unref(call);
  grpc_completion_queue_shutdown(cq);
  (void)grpc_completion_queue_pluck(cq, (void *)1, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
  grpc_completion_queue_destroy(cq);
  return *out != NULL;
}

static void st_print(const char *addr, const Mir__Api__StatusResponse *r, bool json) {
  char hash[65] = "";
  for (size_t i = 0; i < r->log_hash.len && i < 32; i++) {
    snprintf(hash + 2 * i, 3, "%02x", r->log_hash.data[i]);
  }
  size_t up = 0;
  for (size_t i = 0; i < r->n_peers; i++) up += r->peers[i]->connected;
  /* The last delivered sn is next_sn - 1; "-" before the first delivery. */
  char last[24] = "-";
  if (r->next_sn > 0) snprintf(last, sizeof(last), "%" PRIu64, r->next_sn - 1);
  if (json) {
    printf("{\"addr\":\"%s\",\"id\":\"%s\",\"epoch\":%" PRIu64 ",\"next_sn\":%" PRIu64
           ",\"last_sn\":%s,\"log_hash\":\"%s\",\"peers_connected\":%zu,\"peers\":%zu,"
           "\"retained_from_sn\":%" PRIu64 "}\n",
           addr, r->id, r->epoch, r->next_sn, r->next_sn > 0 ? last : "null", hash, up, r->n_peers,
           r->retained_from_sn);
  } else {
    printf("%-22s id %-4s epoch %-7" PRIu64
           " last_sn %-9s log_hash %s peers %zu/%zu"
           " retained_from %" PRIu64 "\n",
           addr, r->id, r->epoch, last, hash, up, r->n_peers, r->retained_from_sn);
  }
}

/* A channel to addr: plaintext, or TLS trusting ca, with the client certificate cert and key when
 * given (PEM texts borrowed; gRPC copies them). */
static grpc_channel *st_channel(const st_opts *o, const char *addr, const char *ca,
                                const char *cert, const char *key) {
  grpc_arg args[1];
  grpc_channel_args ca_args = {.num_args = 0, .args = args};
  if (o->server_name != NULL) {
    args[0].type = GRPC_ARG_STRING;
    args[0].key = (char *)GRPC_SSL_TARGET_NAME_OVERRIDE_ARG;
    args[0].value.string = (char *)o->server_name;
    ca_args.num_args = 1;
  }
  grpc_ssl_pem_key_cert_pair kp = {.private_key = key, .cert_chain = cert};
  grpc_channel_credentials *cr =
      ca != NULL ? grpc_ssl_credentials_create(ca, cert != NULL ? &kp : NULL, NULL, NULL)
                 : grpc_insecure_credentials_create();
  grpc_channel *ch = grpc_channel_create(addr, cr, &ca_args);
  grpc_channel_credentials_release(cr);
  return ch;
}

int main(int argc, char **argv) {
  static const struct option longopts[] = {{"timeout-ms", required_argument, NULL, 't'},
                                           {"json", no_argument, NULL, 'j'},
                                           {"tls-ca", required_argument, NULL, 'c'},
                                           {"tls-server-name", required_argument, NULL, 'n'},
                                           {"tls-cert", required_argument, NULL, 'C'},
                                           {"tls-key", required_argument, NULL, 'K'},
                                           {"help", no_argument, NULL, 'h'},
                                           {NULL, 0, NULL, 0}};
  st_opts o = {.timeout_ms = 2000};
  int c;
  while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
    char *end = NULL;
    switch (c) {
      case 't':
        errno = 0;
        o.timeout_ms = strtol(optarg, &end, 10);
        if (errno != 0 || *end != '\0' || o.timeout_ms < 1 || o.timeout_ms > 3600000) {
          st_usage(stderr);
          return 2;
        }
        break;
      case 'j':
        o.json = true;
        break;
      case 'c':
        o.ca_file = optarg;
        break;
      case 'n':
        o.server_name = optarg;
        break;
      case 'C':
        o.cert_file = optarg;
        break;
      case 'K':
        o.key_file = optarg;
        break;
      case 'h':
        st_usage(stdout);
        return 0;
      default:
        st_usage(stderr);
        return 2;
    }
  }
  if (optind == argc) {
    st_usage(stderr);
    return 2;
  }
  if ((o.cert_file == NULL) != (o.key_file == NULL) || (o.cert_file != NULL && o.ca_file == NULL)) {
    fprintf(stderr, "mir-status: --tls-cert and --tls-key go together, and need --tls-ca\n");
    return 2;
  }
  char *ca = NULL, *cert = NULL, *key = NULL;
  const char *unread = NULL;
  if (o.ca_file != NULL && (ca = st_read_file(o.ca_file)) == NULL) unread = o.ca_file;
  if (unread == NULL && o.cert_file != NULL && (cert = st_read_file(o.cert_file)) == NULL) {
    unread = o.cert_file;
  }
  if (unread == NULL && o.key_file != NULL && (key = st_read_file(o.key_file)) == NULL) {
    unread = o.key_file;
  }
  if (unread != NULL) {
    fprintf(stderr, "mir-status: %s: cannot read\n", unread);
    free(ca);
    free(cert);
    free(key);
    return 2;
  }
  grpc_init();
  int status = 0;
  for (int i = optind; i < argc; i++) {
    grpc_channel *ch = st_channel(&o, argv[i], ca, cert, key);
    Mir__Api__StatusResponse *r = NULL;
    char why[512];
    if (st_call(ch, o.timeout_ms, &r, why, sizeof(why))) {
      st_print(argv[i], r, o.json);
      mir__api__status_response__free_unpacked(r, NULL);
    } else {
      if (o.json) {
        printf("{\"addr\":\"%s\",\"error\":\"unreachable\"}\n", argv[i]);
      } else {
        printf("%-22s unreachable (%s)\n", argv[i], why);
      }
      status = 1;
    }
    grpc_channel_destroy(ch);
  }
  grpc_shutdown();
  free(ca);
  free(cert);
  if (key != NULL) memset(key, 0, strlen(key));
  free(key);
  return status;
}
