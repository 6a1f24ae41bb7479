// A small blocking client of the replica's client API (proto/api/api.proto) over the gRPC C core,
// for tests: Status, a Submit stream, a Subscribe stream, and raw calls for bad input. Every call
// has its own completion queue and every wait a deadline, so a test never hangs on a replica.
#ifndef MIR_TESTS_API_CLIENT_H
#define MIR_TESTS_API_CLIENT_H

#include <grpc/grpc.h>

#include <map>
#include <string>
#include <vector>

extern "C" {
#include "api/api.pb-c.h"
}

namespace mirtest {

// TLS material of a channel, as PEM texts: the CA that signed the server's certificate, and an
// optional client certificate and key; server_name overrides the name checked in the server's
// certificate when not empty.
struct Tls {
  std::string ca, cert, key, server_name;
};

// Owns a channel to addr ("host:port"); calls on it must end before it does. Plaintext, or TLS
// with tls. own_connection: the channel never shares its connection with other channels (gRPC
// shares them between channels of equal target and arguments otherwise).
class Channel {
 public:
  explicit Channel(const std::string &addr, const Tls *tls = nullptr, bool own_connection = false);
  ~Channel();
  Channel(const Channel &) = delete;
  Channel &operator=(const Channel &) = delete;
  grpc_channel *get() const { return ch_; }

 private:
  grpc_channel *ch_;
};

// One call on its own completion queue; waits are bounded.
class Call {
 public:
  Call(grpc_channel *ch, const char *method, int deadline_ms);
  virtual ~Call();
  Call(const Call &) = delete;
  Call &operator=(const Call &) = delete;

  // Status of the ended call (after Finished() returned true).
  grpc_status_code status() const { return status_; }
  std::string details() const;
  // The value of trailing metadata key of the ended call ("" if absent).
  std::string trailer(const char *key) const;
  // Waits up to timeout_ms for the call to end; true once it has.
  bool Finished(int timeout_ms);
  void Cancel() { grpc_call_cancel(call_, nullptr); }

 protected:
  // Starts ops with tag; false if the batch could not start.
  bool Start(const grpc_op *ops, size_t n, void *tag);
  // Waits until tag completes (true; *ok its success) or timeout_ms passes (false).
  bool Wait(void *tag, int timeout_ms, bool *ok);
  // Sends bytes as one message; waits for the send to complete.
  bool SendBytes(const std::string &bytes, int timeout_ms);
  // Posts (once) and waits for one message: 1 got it (bytes), 0 timeout, -1 end of stream.
  int RecvBytes(std::string *bytes, int timeout_ms);

  grpc_call *call_ = nullptr;
  char tag_close_ = 0;

 private:
  grpc_completion_queue *cq_;
  std::map<void *, bool> done_;
  std::map<void *, bool> pending_;
  grpc_metadata_array initial_md_, trailing_md_;
  grpc_status_code status_ = GRPC_STATUS_UNKNOWN;
  grpc_slice details_;
  grpc_byte_buffer *recv_buf_ = nullptr;
  bool recv_posted_ = false;
  char tag_md_ = 0, tag_imd_ = 0, tag_send_ = 0, tag_recv_ = 0, tag_status_ = 0;
};

struct Tx {
  std::string client_id;
  uint64_t tx_no;
  std::string data;
};

// A Submit stream.
class SubmitStream : public Call {
 public:
  explicit SubmitStream(grpc_channel *ch, int deadline_ms = 120000);
  // Sends a SubmitRequest of txs; false if the stream broke or timed out.
  bool Send(uint64_t request_id, const std::vector<Tx> &txs, int timeout_ms = 10000);
  // Sends raw bytes as a message (bad input).
  bool SendRaw(const std::string &bytes, int timeout_ms = 10000) {
    return SendBytes(bytes, timeout_ms);
  }
  // The next response: 1 (*out owned: free with mir__api__submit_response__free_unpacked),
  // 0 timeout, -1 end of stream.
  int Recv(Mir__Api__SubmitResponse **out, int timeout_ms = 10000);
  bool CloseSend(int timeout_ms = 10000);
};

// A Subscribe stream from from_sn; with client_id, only that client's transactions come.
class Subscription : public Call {
 public:
  Subscription(grpc_channel *ch, uint64_t from_sn, int deadline_ms = 120000,
               const char *client_id = nullptr);
  // The next delivery: 1 (*out owned: free with mir__api__delivery__free_unpacked), 0 timeout,
  // -1 end of stream (status() and details() say why).
  int Next(Mir__Api__Delivery **out, int timeout_ms = 10000);
};

// Status of the replica at ch. Returns an owned response (free with
// mir__api__status_response__free_unpacked) or nullptr (*code says why).
Mir__Api__StatusResponse *GetStatus(grpc_channel *ch, int timeout_ms = 3000,
                                    grpc_status_code *code = nullptr);

// A unary call of method with request bytes; returns the status code (details in *details).
grpc_status_code UnaryRaw(grpc_channel *ch, const char *method, const std::string &bytes,
                          int timeout_ms, std::string *details);

// Hex of the first n bytes of data.
std::string Hex(const uint8_t *data, size_t n);

// log_hash(sn) from prev and the entry (api.proto), computed with the portable SHA-256.
std::string LogHash(const std::string &prev, uint64_t sn, uint64_t epoch, Trantor__Tx *const *txs,
                    size_t n);

}  // namespace mirtest

#endif
