// The test client of the replica's client API (api_client.h).
#include "integration/api_client.h"

#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>

#include <cstring>
#include <vector>

extern "C" {
#include "trantor_common.h"
}

namespace mirtest {

namespace {

gpr_timespec In(int ms) {
  return gpr_time_add(gpr_now(GPR_CLOCK_REALTIME), gpr_time_from_millis(ms, GPR_TIMESPAN));
}

std::string Flatten(grpc_byte_buffer *bb) {
  grpc_byte_buffer_reader r;
  std::string out;
  if (grpc_byte_buffer_reader_init(&r, bb)) {
    grpc_slice s = grpc_byte_buffer_reader_readall(&r);
    out.assign(reinterpret_cast<const char *>(GRPC_SLICE_START_PTR(s)), GRPC_SLICE_LENGTH(s));
    grpc_slice_unref(s);
    grpc_byte_buffer_reader_destroy(&r);
  }
  return out;
}

std::string Pack(const ProtobufCMessage *m) {
  std::string s(protobuf_c_message_get_packed_size(m), '\0');
  protobuf_c_message_pack(m, reinterpret_cast<uint8_t *>(&s[0]));
  return s;
}

}  // namespace

Channel::Channel(const std::string &addr, const Tls *tls, bool own_connection) {
  grpc_init();  // reference-counted: gRPC lives as long as some channel does
  grpc_arg arg[3];
  size_t n = 0;
  arg[n].type = GRPC_ARG_INTEGER;
  arg[n].key = const_cast<char *>(GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH);
  arg[n++].value.integer = -1;
  if (own_connection) {
    arg[n].type = GRPC_ARG_INTEGER;
    arg[n].key = const_cast<char *>(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL);
    arg[n++].value.integer = 1;
  }
  if (tls != nullptr && !tls->server_name.empty()) {
    arg[n].type = GRPC_ARG_STRING;
    arg[n].key = const_cast<char *>(GRPC_SSL_TARGET_NAME_OVERRIDE_ARG);
    arg[n++].value.string = const_cast<char *>(tls->server_name.c_str());
  }
  grpc_channel_args args = {n, arg};
  grpc_channel_credentials *cr = nullptr;
  if (tls != nullptr) {
    grpc_ssl_pem_key_cert_pair kp = {tls->key.c_str(), tls->cert.c_str()};
    cr = grpc_ssl_credentials_create(tls->ca.c_str(), tls->cert.empty() ? nullptr : &kp, nullptr,
                                     nullptr);
  } else {
    cr = grpc_insecure_credentials_create();
  }
  ch_ = grpc_channel_create(addr.c_str(), cr, &args);
  grpc_channel_credentials_release(cr);
}

Channel::~Channel() {
  grpc_channel_destroy(ch_);
  grpc_shutdown();
}

Call::Call(grpc_channel *ch, const char *method, int deadline_ms) {
  cq_ = grpc_completion_queue_create_for_next(nullptr);
  call_ = grpc_channel_create_call(ch, nullptr, GRPC_PROPAGATE_DEFAULTS, cq_,
                                   grpc_slice_from_static_string(method), nullptr, In(deadline_ms),
                                   nullptr);
  grpc_metadata_array_init(&initial_md_);
  grpc_metadata_array_init(&trailing_md_);
  details_ = grpc_empty_slice();
  grpc_op ops[1];
  memset(ops, 0, sizeof(ops));
  ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
  Start(ops, 1, &tag_md_);
  memset(ops, 0, sizeof(ops));
  ops[0].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
  ops[0].data.recv_status_on_client.trailing_metadata = &trailing_md_;
  ops[0].data.recv_status_on_client.status = &status_;
  ops[0].data.recv_status_on_client.status_details = &details_;
  Start(ops, 1, &tag_status_);
  memset(ops, 0, sizeof(ops));
  ops[0].op = GRPC_OP_RECV_INITIAL_METADATA;
  ops[0].data.recv_initial_metadata.recv_initial_metadata = &initial_md_;
  Start(ops, 1, &tag_imd_);
}

Call::~Call() {
  grpc_call_cancel(call_, nullptr);
  // Every batch yields one completion; wait for all of them (bounded) before releasing.
  for (int i = 0; i < 200 && !pending_.empty(); i++) {
    grpc_event ev = grpc_completion_queue_next(cq_, In(50), nullptr);
    if (ev.type == GRPC_OP_COMPLETE) pending_.erase(ev.tag);
  }
  if (recv_buf_ != nullptr) grpc_byte_buffer_destroy(recv_buf_);
  grpc_call_unref(call_);
  grpc_completion_queue_shutdown(cq_);
  while (grpc_completion_queue_next(cq_, gpr_inf_future(GPR_CLOCK_REALTIME), nullptr).type !=
         GRPC_QUEUE_SHUTDOWN) {
  }
  grpc_completion_queue_destroy(cq_);
  grpc_metadata_array_destroy(&initial_md_);
  grpc_metadata_array_destroy(&trailing_md_);
  grpc_slice_unref(details_);
}

std::string Call::details() const {
  return std::string(reinterpret_cast<const char *>(GRPC_SLICE_START_PTR(details_)),
                     GRPC_SLICE_LENGTH(details_));
}

std::string Call::trailer(const char *key) const {
  for (size_t i = 0; i < trailing_md_.count; i++) {
    const grpc_metadata &m = trailing_md_.metadata[i];
    std::string k(reinterpret_cast<const char *>(GRPC_SLICE_START_PTR(m.key)),
                  GRPC_SLICE_LENGTH(m.key));
    if (k == key) {
      return std::string(reinterpret_cast<const char *>(GRPC_SLICE_START_PTR(m.value)),
                         GRPC_SLICE_LENGTH(m.value));
    }
  }
  return "";
}

bool Call::Start(const grpc_op *ops, size_t n, void *tag) {
  if (grpc_call_start_batch(call_, ops, n, tag, nullptr) != GRPC_CALL_OK) return false;
  pending_[tag] = true;
  return true;
}

bool Call::Wait(void *tag, int timeout_ms, bool *ok) {
  gpr_timespec until = In(timeout_ms);
  for (;;) {
    auto it = done_.find(tag);
    if (it != done_.end()) {
      if (ok != nullptr) *ok = it->second;
      done_.erase(it);
      return true;
    }
    if (pending_.find(tag) == pending_.end()) return false;
    grpc_event ev = grpc_completion_queue_next(cq_, until, nullptr);
    if (ev.type != GRPC_OP_COMPLETE) return false;
    pending_.erase(ev.tag);
    done_[ev.tag] = ev.success != 0;
  }
}

bool Call::Finished(int timeout_ms) {
  if (pending_.find(&tag_status_) == pending_.end() && done_.find(&tag_status_) == done_.end()) {
    return true;  // already seen
  }
  return Wait(&tag_status_, timeout_ms, nullptr);
}

bool Call::SendBytes(const std::string &bytes, int timeout_ms) {
  grpc_slice s = grpc_slice_from_copied_buffer(bytes.data(), bytes.size());
  grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&s, 1);
  grpc_slice_unref(s);
  grpc_op op;
  memset(&op, 0, sizeof(op));
  op.op = GRPC_OP_SEND_MESSAGE;
  op.data.send_message.send_message = bb;
  bool ok = false;
  bool started = Start(&op, 1, &tag_send_);
  bool waited = started && Wait(&tag_send_, timeout_ms, &ok);
  if (started && !waited) {
    Cancel();  // the buffer must outlive the op: wait for its completion after cancelling
    Wait(&tag_send_, 5000, nullptr);
  }
  grpc_byte_buffer_destroy(bb);
  return waited && ok;
}

int Call::RecvBytes(std::string *bytes, int timeout_ms) {
  if (!recv_posted_) {
    grpc_op op;
    memset(&op, 0, sizeof(op));
    op.op = GRPC_OP_RECV_MESSAGE;
    op.data.recv_message.recv_message = &recv_buf_;
    if (!Start(&op, 1, &tag_recv_)) return -1;
    recv_posted_ = true;
  }
  bool ok = false;
  if (!Wait(&tag_recv_, timeout_ms, &ok)) return 0;
  recv_posted_ = false;
  if (recv_buf_ == nullptr) return -1;
  *bytes = Flatten(recv_buf_);
  grpc_byte_buffer_destroy(recv_buf_);
  recv_buf_ = nullptr;
  return 1;
}

SubmitStream::SubmitStream(grpc_channel *ch, int deadline_ms)
    : Call(ch, "/mir.api.Client/Submit", deadline_ms) {}

bool SubmitStream::Send(uint64_t request_id, const std::vector<Tx> &txs, int timeout_ms) {
  std::vector<Trantor__Tx> tx(txs.size());
  std::vector<Trantor__Tx *> ptrs(txs.size());
  for (size_t i = 0; i < txs.size(); i++) {
    trantor__tx__init(&tx[i]);
    tx[i].client_id = const_cast<char *>(txs[i].client_id.c_str());
    tx[i].tx_no = txs[i].tx_no;
    tx[i].data.data = reinterpret_cast<uint8_t *>(const_cast<char *>(txs[i].data.data()));
    tx[i].data.len = txs[i].data.size();
    ptrs[i] = &tx[i];
  }
  Mir__Api__SubmitRequest req = MIR__API__SUBMIT_REQUEST__INIT;
  req.request_id = request_id;
  req.n_txs = txs.size();
  req.txs = ptrs.data();
  return SendBytes(Pack(&req.base), timeout_ms);
}

int SubmitStream::Recv(Mir__Api__SubmitResponse **out, int timeout_ms) {
  std::string bytes;
  int r = RecvBytes(&bytes, timeout_ms);
  if (r != 1) return r;
  *out = mir__api__submit_response__unpack(nullptr, bytes.size(),
                                           reinterpret_cast<const uint8_t *>(bytes.data()));
  return *out != nullptr ? 1 : -1;
}

bool SubmitStream::CloseSend(int timeout_ms) {
  grpc_op op;
  memset(&op, 0, sizeof(op));
  op.op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
  bool ok = false;
  return Start(&op, 1, &tag_close_) && Wait(&tag_close_, timeout_ms, &ok) && ok;
}

Subscription::Subscription(grpc_channel *ch, uint64_t from_sn, int deadline_ms,
                           const char *client_id)
    : Call(ch, "/mir.api.Client/Subscribe", deadline_ms) {
  Mir__Api__SubscribeRequest req = MIR__API__SUBSCRIBE_REQUEST__INIT;
  req.from_sn = from_sn;
  if (client_id != nullptr) req.client_id = const_cast<char *>(client_id);
  SendBytes(Pack(&req.base), 10000);
  grpc_op op;
  memset(&op, 0, sizeof(op));
  op.op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
  bool ok = false;
  if (Start(&op, 1, &tag_close_)) Wait(&tag_close_, 10000, &ok);
}

int Subscription::Next(Mir__Api__Delivery **out, int timeout_ms) {
  std::string bytes;
  int r = RecvBytes(&bytes, timeout_ms);
  if (r != 1) return r;
  *out = mir__api__delivery__unpack(nullptr, bytes.size(),
                                    reinterpret_cast<const uint8_t *>(bytes.data()));
  return *out != nullptr ? 1 : -1;
}

namespace {

// A unary call: the request, then the one response (bytes) and the status.
class Unary : public Call {
 public:
  Unary(grpc_channel *ch, const char *method, int timeout_ms) : Call(ch, method, timeout_ms) {}
  bool Run(const std::string &req, std::string *resp, int timeout_ms) {
    if (!SendBytes(req, timeout_ms)) return false;
    grpc_op op;
    memset(&op, 0, sizeof(op));
    op.op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    bool ok = false;
    if (!Start(&op, 1, &close_tag_) || !Wait(&close_tag_, timeout_ms, &ok)) return false;
    return RecvBytes(resp, timeout_ms) == 1;
  }

 private:
  char close_tag_;
};

}  // namespace

Mir__Api__StatusResponse *GetStatus(grpc_channel *ch, int timeout_ms, grpc_status_code *code) {
  Unary u(ch, "/mir.api.Client/Status", timeout_ms);
  Mir__Api__StatusRequest req = MIR__API__STATUS_REQUEST__INIT;
  std::string resp;
  bool got = u.Run(Pack(&req.base), &resp, timeout_ms);
  u.Finished(timeout_ms);
  if (code != nullptr) *code = u.status();
  if (!got || u.status() != GRPC_STATUS_OK) return nullptr;
  return mir__api__status_response__unpack(nullptr, resp.size(),
                                           reinterpret_cast<const uint8_t *>(resp.data()));
}

grpc_status_code UnaryRaw(grpc_channel *ch, const char *method, const std::string &bytes,
                          int timeout_ms, std::string *details) {
  Unary u(ch, method, timeout_ms);
  std::string resp;
  u.Run(bytes, &resp, timeout_ms);
  if (!u.Finished(timeout_ms)) return GRPC_STATUS_DEADLINE_EXCEEDED;
  if (details != nullptr) *details = u.details();
  return u.status();
}

std::string Hex(const uint8_t *data, size_t n) {
  static const char *digits = "0123456789abcdef";
  std::string s;
  for (size_t i = 0; i < n; i++) {
    s += digits[data[i] >> 4];
    s += digits[data[i] & 15];
  }
  return s;
}

std::string LogHash(const std::string &prev, uint64_t sn, uint64_t epoch, Trantor__Tx *const *txs,
                    size_t n) {
  std::vector<std::string> packed;
  for (size_t i = 0; i < n; i++) packed.push_back(Pack(&txs[i]->base));
  uint8_t be_sn[8], be_epoch[8];
  for (int i = 0; i < 8; i++) {
    be_sn[i] = static_cast<uint8_t>(sn >> (56 - 8 * i));
    be_epoch[i] = static_cast<uint8_t>(epoch >> (56 - 8 * i));
  }
  std::vector<const uint8_t *> parts = {reinterpret_cast<const uint8_t *>("log"),
                                        reinterpret_cast<const uint8_t *>(prev.data()), be_sn,
                                        be_epoch};
  std::vector<size_t> lens = {3, prev.size(), 8, 8};
  for (const auto &p : packed) {
    parts.push_back(reinterpret_cast<const uint8_t *>(p.data()));
    lens.push_back(p.size());
  }
  uint8_t out[32];
  trantor_hash_reference(parts.data(), lens.data(), parts.size(), out);
  return std::string(reinterpret_cast<const char *>(out), 32);
}

}  // namespace mirtest
