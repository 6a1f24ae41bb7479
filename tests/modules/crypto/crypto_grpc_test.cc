// The OpenSSL 3 crypto backend (mir_crypto_ossl) in one process with gRPC, which loads OpenSSL 3
// itself: the combination the replica server runs and the BoringSSL backend cannot (the two
// libraries share symbol names). Keys are loaded, used and written, TLS material is issued and
// checked by the backend, and gRPC then completes a mutual-TLS handshake with that material, so
// both users of OpenSSL work side by side, before, during and after gRPC's lifetime.
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/time.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <string>
#include <utility>

extern "C" {
#include "mir/alloc.h"
#include "mir/crypto.h"
#include "mir/hasher.h"
}
#include "fixture_data.h"

namespace {

// A signature round trip with the fixture key of one scheme that the BoringSSL backend wrote.
void SignWithFixtureKey(const char *name) {
  std::string base = std::string(MIR_CRYPTO_FIXTURES) + "/boringssl/" + name;
  mir_private_key *key = nullptr;
  mir_public_key *pub = nullptr;
  ASSERT_EQ(mir_private_key_load((base + ".key").c_str(), &key), MIR_OK) << mir_error_detail();
  ASSERT_EQ(mir_public_key_load((base + ".pub").c_str(), &pub), MIR_OK) << mir_error_detail();
  ProtobufCBinaryData parts[FIXTURE_N_PARTS];
  fixture_parts(parts);
  uint8_t sig[MIR_SIGNATURE_LEN];
  size_t sig_len = 0;
  ASSERT_EQ(mir_sign(key, parts, FIXTURE_N_PARTS, sig, &sig_len), MIR_OK) << mir_error_detail();
  EXPECT_EQ(mir_verify(pub, parts, FIXTURE_N_PARTS, sig, sig_len), MIR_OK);
  sig[0] ^= 1;
  EXPECT_EQ(mir_verify(pub, parts, FIXTURE_N_PARTS, sig, sig_len), MIR_ECRYPTO);
  char *pem = nullptr;
  ASSERT_EQ(mir_private_key_to_pem(key, &pem), MIR_OK);
  mir_private_key *again = nullptr;
  EXPECT_EQ(mir_private_key_from_pem(pem, strlen(pem), &again), MIR_OK) << mir_error_detail();
  free(pem);
  mir_private_key_free(again);
  mir_public_key_free(pub);
  mir_private_key_free(key);
}

// TLS material of a cluster: its CA and the certificates of replicas "1" (server) and "2"
// (client), each checked by the backend.
struct Cluster {
  char *ca = nullptr, *ca_key = nullptr;
  char *cert[2] = {nullptr, nullptr}, *key[2] = {nullptr, nullptr};
  ~Cluster() {
    for (char *p : {ca, ca_key, cert[0], cert[1], key[0], key[1]}) free(p);
  }
};

void MakeCluster(Cluster *c) {
  ASSERT_EQ(mir_tls_ca_new("grpc test CA", 30, &c->ca, &c->ca_key), MIR_OK) << mir_error_detail();
  for (int i = 0; i < 2; i++) {
    std::string id = std::to_string(i + 1);
    ASSERT_EQ(
        mir_tls_cert_new(c->ca, c->ca_key, id.c_str(), "127.0.0.1", 30, &c->cert[i], &c->key[i]),
        MIR_OK)
        << mir_error_detail();
    char got[MIR_MODULE_ID_MAX];
    ASSERT_EQ(mir_tls_cert_check(c->ca, c->cert[i], got, sizeof got), MIR_OK) << mir_error_detail();
    EXPECT_EQ(std::string(got), id);
  }
}

gpr_timespec SecondsFromNow(int s) {
  return gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_seconds(s, GPR_TIMESPAN));
}

// Waits until ch's first connection attempt ends: READY, or TRANSIENT_FAILURE when the handshake
// failed. Returns the state.
grpc_connectivity_state WaitConnected(grpc_channel *ch, grpc_completion_queue *cq) {
  grpc_connectivity_state state = grpc_channel_check_connectivity_state(ch, 1);
  gpr_timespec deadline = SecondsFromNow(60);  // a liveness bound: the handshake takes ms
  while ((state == GRPC_CHANNEL_IDLE || state == GRPC_CHANNEL_CONNECTING) &&
         gpr_time_cmp(gpr_now(GPR_CLOCK_MONOTONIC), deadline) < 0) {
    grpc_channel_watch_connectivity_state(ch, state, deadline, cq, nullptr);
    grpc_event ev = grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), nullptr);
    if (ev.type != GRPC_OP_COMPLETE) break;
    state = grpc_channel_check_connectivity_state(ch, 1);
  }
  return state;
}

// Drains cq after shutting it down, then destroys it.
void DestroyQueue(grpc_completion_queue *cq) {
  grpc_completion_queue_shutdown(cq);
  while (grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), nullptr).type !=
         GRPC_QUEUE_SHUTDOWN) {
  }
  grpc_completion_queue_destroy(cq);
}

// Runs a gRPC server with replica 1's certificate that requires and verifies a client
// certificate from the cluster CA, connects to it as replica 2, and returns the channel's state.
grpc_connectivity_state MutualTlsHandshake(const Cluster &c) {
  grpc_ssl_pem_key_cert_pair server_pair = {c.key[0], c.cert[0]};
  grpc_server_credentials *server_creds = grpc_ssl_server_credentials_create_ex(
      c.ca, &server_pair, 1, GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY, nullptr);
  grpc_completion_queue *server_cq = grpc_completion_queue_create_for_next(nullptr);
  grpc_server *server = grpc_server_create(nullptr, nullptr);
  grpc_server_register_completion_queue(server, server_cq, nullptr);
  int port = grpc_server_add_http2_port(server, "127.0.0.1:0", server_creds);
  grpc_server_credentials_release(server_creds);
  grpc_server_start(server);

  grpc_ssl_pem_key_cert_pair client_pair = {c.key[1], c.cert[1]};
  grpc_channel_credentials *client_creds =
      grpc_ssl_credentials_create(c.ca, &client_pair, nullptr, nullptr);
  std::string target = "127.0.0.1:" + std::to_string(port);
  grpc_channel *ch = grpc_channel_create(target.c_str(), client_creds, nullptr);
  grpc_channel_credentials_release(client_creds);
  grpc_completion_queue *client_cq = grpc_completion_queue_create_for_next(nullptr);
  grpc_connectivity_state state = port > 0 ? WaitConnected(ch, client_cq) : GRPC_CHANNEL_SHUTDOWN;

  grpc_channel_destroy(ch);
  DestroyQueue(client_cq);
  grpc_server_shutdown_and_notify(server, server_cq, nullptr);
  grpc_server_cancel_all_calls(server);
  grpc_completion_queue_next(server_cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), nullptr);
  grpc_server_destroy(server);
  DestroyQueue(server_cq);
  return state;
}

}  // namespace

// With gRPC initialised, the backend loads PEM keys another backend wrote and signs and verifies
// with them, issues and checks TLS certificates, and gRPC's own TLS (OpenSSL 3 as well) accepts
// those certificates in a mutual-TLS handshake; after gRPC shuts down the backend still works.
TEST(CryptoWithGrpc, OpenSslBackendSharesTheProcessWithGrpc) {
  uint8_t digest[MIR_HASH_LEN];
  mir_sha256("abc", 3, digest);  // the backend first, so that it initialises OpenSSL itself
  grpc_init();
  SignWithFixtureKey("ed25519");
  SignWithFixtureKey("ecdsa");
  Cluster c;
  MakeCluster(&c);
  EXPECT_EQ(MutualTlsHandshake(c), GRPC_CHANNEL_READY);
  grpc_shutdown();
  SignWithFixtureKey("ecdsa");
  char id[MIR_MODULE_ID_MAX];
  EXPECT_EQ(mir_tls_cert_check(c.ca, c.cert[1], id, sizeof id), MIR_OK) << mir_error_detail();
}

// A server whose certificate comes from another CA does not get through the handshake: the
// handshake above proves something only if gRPC really checks what the backend issued.
TEST(CryptoWithGrpc, HandshakeFailsWithAForeignServerCertificate) {
  grpc_init();
  Cluster c, other;
  MakeCluster(&c);
  MakeCluster(&other);
  std::swap(c.cert[0], other.cert[0]);
  std::swap(c.key[0], other.key[0]);
  EXPECT_EQ(MutualTlsHandshake(c), GRPC_CHANNEL_TRANSIENT_FAILURE);
  grpc_shutdown();
}
