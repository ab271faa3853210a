#include "affinity/server/http_server.h"

#include <httplib.h>
#include <omp.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <fstream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "affinity/email.h"
#include "affinity/json_writer.h"
#include "affinity/time_util.h"
#include "metrics.h"

namespace affinity {

using nlohmann::json;

namespace {

// ---- Auth ----

// Compares in time that depends only on the lengths, not on where the first difference is.
bool ConstantTimeEquals(std::string_view a, std::string_view b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  const size_t n = std::max(a.size(), b.size());
  for (size_t i = 0; i < n; ++i) {
    const unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
    const unsigned char y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
    diff = static_cast<unsigned char>(diff | (x ^ y));
  }
  return diff == 0;
}

// ---- Worker pool ----

thread_local bool tl_shed = false;  // the connection on this thread is being refused (503)

// A counting semaphore whose waiters are admitted in arrival order (each waits on its own
// condition variable, so a release wakes exactly the next one).
class FifoGate {
 public:
  explicit FifoGate(int slots) : free_(slots) {}

  // Holds a slot for its lifetime.
  class Slot {
   public:
    explicit Slot(FifoGate* gate) : gate_(gate) { gate_->Acquire(); }
    ~Slot() { gate_->Release(); }
    Slot(const Slot&) = delete;
    Slot& operator=(const Slot&) = delete;

   private:
    FifoGate* gate_;
  };

 private:
  struct Waiter {
    std::condition_variable cv;
    bool admitted = false;
  };

  void Acquire() {
    std::unique_lock lock(mu_);
    if (free_ > 0 && waiters_.empty()) {
      --free_;
      return;
    }
    Waiter me;
    waiters_.push_back(&me);
    me.cv.wait(lock, [&] { return me.admitted; });  // the releaser passed its slot on
  }

  void Release() {
    std::lock_guard lock(mu_);
    if (waiters_.empty()) {
      ++free_;
      return;
    }
    Waiter* next = waiters_.front();
    waiters_.pop_front();
    next->admitted = true;
    next->cv.notify_one();
  }

  std::mutex mu_;
  int free_;
  std::deque<Waiter*> waiters_;
};

// cpp-httplib's TaskQueue with a bounded queue: a connection arriving when `max_queued` are
// already waiting is handed to a single reject thread, which answers 503 and closes it.
class BoundedPool final : public httplib::TaskQueue {
 public:
  BoundedPool(int threads, int max_queued, std::atomic<int64_t>* shed)
      : threads_(static_cast<size_t>(threads)),
        max_queued_(static_cast<size_t>(max_queued)),
        shed_(shed) {
    for (int i = 0; i < threads; ++i) {
      workers_.emplace_back([this] {
        // A query is one small search: OpenMP teams per request would oversubscribe the cores.
        omp_set_num_threads(1);
        Run(queue_, cv_, false);
      });
    }
    workers_.emplace_back([this] { Run(rejects_, reject_cv_, true); });
  }

  void enqueue(std::function<void()> fn) override {
    {
      std::lock_guard lock(mu_);
      // Every worker busy (or about to be) and the queue full: refuse.
      if (static_cast<size_t>(busy_) + queue_.size() >= threads_ + max_queued_) {
        shed_->fetch_add(1, std::memory_order_relaxed);
        if (rejects_.size() < kMaxRejects) {
          rejects_.push_back(std::move(fn));
          reject_cv_.notify_one();
          return;
        }
      } else {
        queue_.push_back(std::move(fn));
        cv_.notify_one();
        return;
      }
    }
    // Even the reject queue is full: answer 503 on the accepting thread, which stops accepting
    // meanwhile (the kernel's listen backlog then holds new connections).
    tl_shed = true;
    fn();
    tl_shed = false;
  }

  void shutdown() override {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    reject_cv_.notify_all();
    for (auto& t : workers_) t.join();
  }

 private:
  void Run(std::deque<std::function<void()>>& queue, std::condition_variable& cv, bool shed) {
    tl_shed = shed;
    for (;;) {
      std::function<void()> fn;
      {
        std::unique_lock lock(mu_);
        cv.wait(lock, [&] { return stop_ || !queue.empty(); });
        if (queue.empty()) return;  // stopping, and nothing left
        fn = std::move(queue.front());
        queue.pop_front();
        if (!shed) ++busy_;
      }
      fn();
      if (!shed) {
        std::lock_guard lock(mu_);
        --busy_;
      }
    }
  }

  // Refused connections waiting for the reject thread. The 503 carries "Connection: close", so a
  // compliant client closes at once; a client that does not holds the reject thread until the
  // keep-alive timeout.
  static constexpr size_t kMaxRejects = 1024;
  const size_t threads_;
  const size_t max_queued_;
  std::atomic<int64_t>* shed_;
  std::mutex mu_;
  std::condition_variable cv_, reject_cv_;
  std::deque<std::function<void()>> queue_, rejects_;  // guarded by mu_
  bool stop_ = false;                                  // guarded by mu_
  int64_t busy_ = 0;                                   // guarded by mu_: workers in a task
  std::vector<std::thread> workers_;
};

// ---- Errors ----

struct HttpError {
  int status = 400;
  std::string code;
  std::string message;
  std::string field;
};

int HttpStatusOf(const Status& s) {
  switch (s.code()) {
    case StatusCode::kInvalidArgument:
      return 400;
    case StatusCode::kNotFound:
      return 404;
    case StatusCode::kAlreadyExists:
    case StatusCode::kFailedPrecondition:
      return 409;
    default:
      return 500;
  }
}

std::string CodeOf(int status) {
  switch (status) {
    case 400:
      return "invalid_argument";
    case 401:
      return "unauthenticated";
    case 403:
      return "forbidden";
    case 404:
      return "not_found";
    case 409:
      return "conflict";
    case 411:
      return "length_required";
    case 413:
      return "payload_too_large";
    case 422:
      return "unprocessable";
    case 429:
      return "too_many_requests";
    case 503:
      return "overloaded";
    default:
      return status >= 500 ? "internal" : "error";
  }
}

std::string Dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

void SendError(httplib::Response& res, int status, const std::string& message,
               const std::string& field = {}, std::string code = {}) {
  res.status = status;
  json err = {{"code", code.empty() ? CodeOf(status) : code}, {"message", message}};
  if (!field.empty()) err["field"] = field;
  res.set_content(Dump({{"error", err}}), "application/json");
}

void SendStatus(httplib::Response& res, const Status& s) {
  // Internal errors do not echo details that could leak stored data; they go to the log.
  const int status = HttpStatusOf(s);
  if (status >= 500) {
    std::fprintf(stderr, "affinity serve: internal error: %s\n", s.ToString().c_str());
    SendError(res, 500, "internal error");
    return;
  }
  SendError(res, status, s.message(), s.field());
}

void SendJson(httplib::Response& res, const json& body, int status = 200) {
  res.status = status;
  res.set_content(Dump(body), "application/json");
}

// A JSON document already written (JsonWriter).
void SendText(httplib::Response& res, std::string body, int status = 200) {
  res.status = status;
  // What set_content does, without its copy of the body (an audience's answer is ~160 KB).
  res.body = std::move(body);
  res.headers.erase("Content-Type");
  res.set_header("Content-Type", "application/json");
}

// Valid UTF-8 without control characters, at most `max_bytes` long.
bool ValidUtf8(std::string_view text, size_t max_bytes) {
  return text.size() <= max_bytes && !HasControlChars(text) && IsValidUtf8(text);
}

// What an id may be: 1..256 bytes of valid UTF-8 without control characters.
bool ValidId(std::string_view id) { return ExternalIdProblem(id).empty(); }

// Strict integer query parameter in [lo, hi]; absent: `fallback`.
Result<int> IntParam(const httplib::Request& req, const char* name, int fallback, int lo, int hi) {
  if (!req.has_param(name)) return fallback;
  const std::string text = req.get_param_value(name);
  if (text.empty() || text.size() > 10) {
    return Status::InvalidArgument(std::string(name) + " must be an integer", name);
  }
  size_t pos = 0;
  long long v = 0;
  try {
    v = std::stoll(text, &pos);
  } catch (...) {
    pos = 0;
  }
  if (pos != text.size()) {
    return Status::InvalidArgument(std::string(name) + " must be an integer", name);
  }
  if (v < lo || v > hi) {
    return Status::InvalidArgument(
        std::string(name) + " must be between " + std::to_string(lo) + " and " + std::to_string(hi),
        name);
  }
  return static_cast<int>(v);
}

Result<bool> BoolParam(const httplib::Request& req, const char* name, bool fallback) {
  if (!req.has_param(name)) return fallback;
  const std::string v = req.get_param_value(name);
  if (v == "true" || v == "1") return true;
  if (v == "false" || v == "0") return false;
  return Status::InvalidArgument(std::string(name) + " must be true or false", name);
}

Result<json> ParseBody(const httplib::Request& req) {
  json j = json::parse(req.body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return Status::InvalidArgument("the body is not valid JSON", "body");
  return j;
}

// ---- Request bodies ----

// Reads an optional member of `obj` with the type `T`; InvalidArgument naming `prefix + key`.
template <typename T>
Status Member(const json& obj, const char* key, const std::string& prefix, std::optional<T>* out) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return Status::Ok();
  const std::string field = prefix + key;
  if constexpr (std::is_same_v<T, std::string>) {
    if (!it->is_string()) return Status::InvalidArgument(field + " must be a string", field);
    *out = it->get<std::string>();
  } else if constexpr (std::is_same_v<T, bool>) {
    if (!it->is_boolean()) return Status::InvalidArgument(field + " must be true or false", field);
    *out = it->get<bool>();
  } else if constexpr (std::is_same_v<T, double>) {
    if (!it->is_number()) return Status::InvalidArgument(field + " must be a number", field);
    const double v = it->get<double>();
    if (!std::isfinite(v)) return Status::InvalidArgument(field + " must be finite", field);
    *out = v;
  } else if constexpr (std::is_same_v<T, std::vector<std::string>>) {
    if (!it->is_array()) return Status::InvalidArgument(field + " must be an array", field);
    std::vector<std::string> v;
    for (const auto& e : *it) {
      if (!e.is_string()) return Status::InvalidArgument(field + " must hold strings", field);
      v.push_back(e.get<std::string>());
    }
    *out = std::move(v);
  }
  return Status::Ok();
}

// A time: Unix seconds (integer) or an ISO 8601 string.
Status TimeMember(const json& obj, const char* key, const std::string& prefix,
                  std::optional<UnixSeconds>* out) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return Status::Ok();
  const std::string field = prefix + key;
  if (it->is_number_integer()) {
    *out = it->get<int64_t>();
    return Status::Ok();
  }
  if (it->is_string()) {
    auto t = ParseTimestamp(it->get<std::string>());
    if (!t.ok()) return Status::InvalidArgument(field + ": " + t.status().message(), field);
    *out = *t;
    return Status::Ok();
  }
  return Status::InvalidArgument(field + " must be Unix seconds or an ISO 8601 string", field);
}

Status KnownKeys(const json& obj, std::initializer_list<const char*> keys,
                 const std::string& prefix) {
  for (const auto& [k, v] : obj.items()) {
    bool known = false;
    for (const char* key : keys) known = known || k == key;
    if (!known) return Status::InvalidArgument("unknown field " + prefix + k, prefix + k);
  }
  return Status::Ok();
}

// Free text (names, titles, tags): valid UTF-8 without control characters, at most 1024 bytes.
bool ValidText(std::string_view text) { return ValidUtf8(text, 1024); }

Status CheckText(const std::optional<std::string>& text, const char* field) {
  if (text && !ValidText(*text)) {
    return Status::InvalidArgument(
        std::string(field) + " must be UTF-8 text without control characters, at most 1024 bytes",
        field);
  }
  return Status::Ok();
}

Status CheckText(const std::optional<std::vector<std::string>>& texts, const char* field) {
  if (!texts) return Status::Ok();
  if (texts->size() > 256) return Status::InvalidArgument(std::string(field) + ": too many", field);
  for (const std::string& t : *texts) AFFINITY_RETURN_IF_ERROR(CheckText(std::optional(t), field));
  return Status::Ok();
}

Result<CustomerProfile> ParseCustomer(const json& j) {
  if (!j.is_object()) return Status::InvalidArgument("the body must be a JSON object", "body");
  AFFINITY_RETURN_IF_ERROR(
      KnownKeys(j, {"email", "name", "country", "opted_out", "interests", "created_at"}, ""));
  CustomerProfile p;
  AFFINITY_RETURN_IF_ERROR(Member(j, "email", "", &p.email));
  AFFINITY_RETURN_IF_ERROR(Member(j, "name", "", &p.name));
  AFFINITY_RETURN_IF_ERROR(Member(j, "country", "", &p.country));
  AFFINITY_RETURN_IF_ERROR(Member(j, "opted_out", "", &p.opted_out));
  AFFINITY_RETURN_IF_ERROR(Member(j, "interests", "", &p.interests));
  AFFINITY_RETURN_IF_ERROR(TimeMember(j, "created_at", "", &p.created_at));
  AFFINITY_RETURN_IF_ERROR(CheckText(p.interests, "interests"));
  for (const auto* s : {&p.email, &p.name, &p.country}) {
    if (*s && (s->value().size() > 1024 || !ValidId(s->value()))) {
      return Status::InvalidArgument("text fields must be valid UTF-8 without control characters",
                                     s == &p.email  ? "email"
                                     : s == &p.name ? "name"
                                                    : "country");
    }
  }
  return p;
}

Result<ProductAttributes> ParseProduct(const json& j) {
  if (!j.is_object()) return Status::InvalidArgument("the body must be a JSON object", "body");
  AFFINITY_RETURN_IF_ERROR(KnownKeys(
      j, {"title", "description", "category", "brand", "price", "tags", "created_at", "available"},
      ""));
  ProductAttributes a;
  AFFINITY_RETURN_IF_ERROR(Member(j, "title", "", &a.title));
  AFFINITY_RETURN_IF_ERROR(Member(j, "description", "", &a.description));
  // A description may run over lines: UTF-8 text, at most 8 KiB, without control characters
  // other than line breaks and tabs.
  if (a.description) {
    if (!ValidUtf8(LineBreaksAsSpaces(*a.description), kMaxDescriptionBytes)) {
      return Status::InvalidArgument(
          "description must be UTF-8 text without control characters other than line breaks "
          "and tabs, at most " +
              std::to_string(kMaxDescriptionBytes) + " bytes",
          "description");
    }
  }
  if (auto it = j.find("category"); it != j.end() && it->is_string()) {
    a.category = SplitCategory(it->get<std::string>());
  } else {
    AFFINITY_RETURN_IF_ERROR(Member(j, "category", "", &a.category));
    // Levels given one by one: each is a name, since the stored path joins them with '/', and is
    // trimmed of spaces as the levels of a path are (so that "Garden " is the "Garden" a stated
    // interest or a category filter names).
    // (Absent or null, it stays unset: the stored category is kept.)
    std::vector<std::string> no_levels;
    for (std::string& level : a.category ? *a.category : no_levels) {
      std::vector<std::string> name = SplitCategory(level);
      if (name.size() != 1 || level.find('/') != std::string::npos) {
        return Status::InvalidArgument(
            "category levels must be non-empty names without '/' (or give the whole path as one "
            "string, \"A/B/C\")",
            "category");
      }
      level = std::move(name[0]);
    }
  }
  AFFINITY_RETURN_IF_ERROR(Member(j, "brand", "", &a.brand));
  AFFINITY_RETURN_IF_ERROR(Member(j, "price", "", &a.price));
  if (a.price && *a.price < 0) return Status::InvalidArgument("price must be >= 0", "price");
  AFFINITY_RETURN_IF_ERROR(Member(j, "tags", "", &a.tags));
  AFFINITY_RETURN_IF_ERROR(TimeMember(j, "created_at", "", &a.created_at));
  AFFINITY_RETURN_IF_ERROR(Member(j, "available", "", &a.available));
  AFFINITY_RETURN_IF_ERROR(CheckText(a.title, "title"));
  AFFINITY_RETURN_IF_ERROR(CheckText(a.brand, "brand"));
  AFFINITY_RETURN_IF_ERROR(CheckText(a.category, "category"));
  AFFINITY_RETURN_IF_ERROR(CheckText(a.tags, "tags"));
  return a;
}

// One event of a POST /v1/events batch. Without an event_id, the id is derived from the content
// (customer, product, type, time, quantity, price), so an identical re-sent event is not counted
// twice; without a time, the time is now.
Result<EventInput> ParseEvent(const json& j, size_t index, UnixSeconds now) {
  const std::string prefix = "events[" + std::to_string(index) + "].";
  if (!j.is_object())
    return Status::InvalidArgument(prefix + " must be an object",
                                   prefix.substr(0, prefix.size() - 1));
  AFFINITY_RETURN_IF_ERROR(KnownKeys(
      j, {"customer", "product", "type", "time", "quantity", "unit_price", "channel", "event_id"},
      prefix));
  EventInput e;
  std::optional<std::string> customer, product, type, channel, event_id;
  std::optional<double> quantity, price;
  std::optional<UnixSeconds> time;
  AFFINITY_RETURN_IF_ERROR(Member(j, "customer", prefix, &customer));
  AFFINITY_RETURN_IF_ERROR(Member(j, "product", prefix, &product));
  AFFINITY_RETURN_IF_ERROR(Member(j, "type", prefix, &type));
  AFFINITY_RETURN_IF_ERROR(TimeMember(j, "time", prefix, &time));
  AFFINITY_RETURN_IF_ERROR(Member(j, "quantity", prefix, &quantity));
  AFFINITY_RETURN_IF_ERROR(Member(j, "unit_price", prefix, &price));
  AFFINITY_RETURN_IF_ERROR(Member(j, "channel", prefix, &channel));
  AFFINITY_RETURN_IF_ERROR(Member(j, "event_id", prefix, &event_id));
  if (!customer) return Status::InvalidArgument("customer is required", prefix + "customer");
  if (!product) return Status::InvalidArgument("product is required", prefix + "product");
  if (!ValidId(*customer)) {
    return Status::InvalidArgument("customer must be a 1-256 byte UTF-8 id", prefix + "customer");
  }
  if (!ValidId(*product)) {
    return Status::InvalidArgument("product must be a 1-256 byte UTF-8 id", prefix + "product");
  }
  e.customer = *customer;
  e.product = *product;
  if (type) {
    auto t = ParseEventType(*type);
    if (!t.ok()) return Status::InvalidArgument(t.status().message(), prefix + "type");
    e.type = *t;
  }
  e.time = time.value_or(now);
  // Unix seconds from 1970 to one day ahead: a millisecond or far-future timestamp would move
  // the shop's "now" (insights, recency decay) for everyone.
  if (e.time < 0 || e.time > now + 86400) {
    return Status::InvalidArgument("time must be Unix seconds between 1970 and now + 1 day",
                                   prefix + "time");
  }
  e.quantity = quantity.value_or(1.0);
  e.unit_price = price.value_or(0.0);
  e.channel = channel.value_or("");
  if (event_id && !ValidId(*event_id)) {
    return Status::InvalidArgument("event_id must be a 1-256 byte UTF-8 id", prefix + "event_id");
  }
  if (event_id) {
    e.event_id = *event_id;
  } else {
    e.event_id = "api:" + Dump(json::array({e.customer, e.product, EventTypeName(e.type), e.time,
                                            e.quantity, e.unit_price}));
  }
  if (Status s = ValidateEventInput(e, index); !s.ok()) return s;
  return e;
}

json ProductJson(const std::string& id, const ProductAttributes& a) {
  json j = {{"id", id}};
  if (a.title) j["title"] = *a.title;
  if (a.description) j["description"] = *a.description;
  if (a.category) j["category"] = JoinCategory(*a.category);
  if (a.brand) j["brand"] = *a.brand;
  if (a.price) j["price"] = *a.price;
  if (a.tags) j["tags"] = *a.tags;
  if (a.created_at) j["created_at"] = FormatTimestamp(*a.created_at);
  if (a.available) j["available"] = *a.available;
  return j;
}

json CustomerJson(const std::string& id, const CustomerProfile& p, bool personal) {
  json j = {{"id", id}};
  if (personal) {
    if (p.email) j["email"] = *p.email;
    if (p.name) j["name"] = *p.name;
  }
  if (p.country) j["country"] = *p.country;
  j["opted_out"] = p.opted_out.value_or(false);
  if (p.interests) j["interests"] = *p.interests;
  if (p.created_at) j["created_at"] = FormatTimestamp(*p.created_at);
  return j;
}

json IndexJson(const IndexInfo& i) {
  json j = {{"kind", i.kind}, {"size", i.size}, {"build_seconds", i.build_seconds}};
  if (std::isfinite(i.recall_at_10)) j["recall_at_10"] = i.recall_at_10;
  return j;
}

// Who may call a route. kPublic: everyone. kRead: the catalog and the model (similar products, a
// product's attributes, /v1/model, /metrics): everyone, or any key with private_reads. kCustomer:
// what the shop knows of its customers (recommendations with their "because you bought" reasons,
// audiences, profiles, interests, insights): any key, or everyone with public_customer_reads.
// kWrite: a write or admin key. kAdmin: an admin key.
enum class Access { kPublic, kRead, kCustomer, kWrite, kAdmin };

}  // namespace

// ---- Key file ----

Result<std::vector<ApiKey>> ReadApiKeyFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return Status::IOError("cannot read the API key file " + path);
  std::vector<ApiKey> keys;
  std::string line;
  int number = 0;
  while (std::getline(in, line)) {
    ++number;
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t')) {
      line.pop_back();
    }
    size_t start = line.find_first_not_of(" \t");
    if (start == std::string::npos || line[start] == '#') continue;
    line = line.substr(start);
    ApiKey key;
    const size_t space = line.find_first_of(" \t");
    if (space != std::string::npos) {
      const std::string role = line.substr(0, space);
      key.key = line.substr(line.find_first_not_of(" \t", space));
      if (role == "admin") {
        key.role = Role::kAdmin;
      } else if (role == "write") {
        key.role = Role::kWrite;
      } else if (role == "read") {
        key.role = Role::kRead;
      } else {
        return Status::InvalidArgument(path + ":" + std::to_string(number) + ": unknown role '" +
                                           role + "' (admin, write or read)",
                                       "api-key-file");
      }
    } else {
      key.key = line;
    }
    if (key.key.size() < 16 || key.key.find_first_of(" \t") != std::string::npos) {
      return Status::InvalidArgument(
          path + ":" + std::to_string(number) + ": a key must be at least 16 bytes, no spaces",
          "api-key-file");
    }
    keys.push_back(std::move(key));
  }
  return keys;
}

Status HttpServerOptions::Validate() const {
  if (port < 0 || port > 65535) return Status::InvalidArgument("port must be 0-65535", "port");
  if (threads < 1) return Status::InvalidArgument("threads must be >= 1", "threads");
  if (max_queued < 0) return Status::InvalidArgument("max_queued must be >= 0", "max_queued");
  if (max_body_bytes < 1024) {
    return Status::InvalidArgument("max_body_bytes must be >= 1024", "max_body_bytes");
  }
  if (read_timeout_s < 1 || write_timeout_s < 1 || keep_alive_timeout_s < 1) {
    return Status::InvalidArgument("timeouts must be >= 1 s", "timeout");
  }
  if (keep_alive_max_count < 1) {
    return Status::InvalidArgument("keep_alive_max_count must be >= 1", "keep_alive_max_count");
  }
  if (listen_backlog < 1) {
    return Status::InvalidArgument("listen_backlog must be >= 1", "listen_backlog");
  }
  if (max_batch < 1) return Status::InvalidArgument("max_batch must be >= 1", "max_batch");
  if (audience_slots < 0) {
    return Status::InvalidArgument("audience_slots must be >= 0", "audience_slots");
  }
  if (private_reads && public_customer_reads) {
    return Status::InvalidArgument(
        "private_reads (every read needs a key) and public_customer_reads (customer reads need "
        "none) contradict each other",
        "public_customer_reads");
  }
  return Status::Ok();
}

// ---- The server ----

class HttpServer::Impl {
 public:
  Impl(ServingEngine* engine, HttpServerOptions options)
      : engine_(engine), options_(std::move(options)) {}

  Status Bind() {
    AFFINITY_RETURN_IF_ERROR(options_.Validate());
    Configure();
    Routes();
    if (options_.port == 0) {
      port_ = server_.bind_to_any_port(options_.host);
      if (port_ < 0) return Status::IOError("cannot bind " + options_.host);
    } else {
      if (!server_.bind_to_port(options_.host, options_.port)) {
        return Status::IOError("cannot bind " + options_.host + ":" +
                               std::to_string(options_.port));
      }
      port_ = options_.port;
    }
    // Listening again on a listening socket only changes its backlog (Linux, POSIX).
    if (listen_fd_ < 0 || ::listen(listen_fd_, options_.listen_backlog) != 0) {
      return Status::IOError("cannot set the listen backlog of " + options_.host);
    }
    return Status::Ok();
  }

  Status Serve() {
    if (!server_.listen_after_bind()) return Status::IOError("the server stopped with an error");
    return Status::Ok();
  }

  void Stop() { server_.stop(); }
  int port() const { return port_; }

  std::string MetricsText() const {
    std::string out;
    server::RenderRequestHeaders(&out);
    for (const auto& route : routes_) route->Render(&out);
    const ModelInfo info = engine_->Info();
    char buf[2048];
    std::snprintf(
        buf, sizeof buf,
        "# HELP affinity_model_version The model snapshot being served.\n"
        "# TYPE affinity_model_version gauge\n"
        "affinity_model_version %lld\n"
        "# HELP affinity_fold_ins_total Customer vectors re-solved online.\n"
        "# TYPE affinity_fold_ins_total counter\n"
        "affinity_fold_ins_total %lld\n"
        "# HELP affinity_reloads_total Model hot-swaps.\n"
        "# TYPE affinity_reloads_total counter\n"
        "affinity_reloads_total %lld\n"
        "# HELP affinity_overlay_customers Customers folded in since the snapshot.\n"
        "# TYPE affinity_overlay_customers gauge\n"
        "affinity_overlay_customers %lld\n"
        "# HELP affinity_new_products_pending New products re-embedded since their index "
        "was made (scored exactly per request until indexed again).\n"
        "# TYPE affinity_new_products_pending gauge\n"
        "affinity_new_products_pending %lld\n"
        "# HELP affinity_http_shed_total Connections refused with 503 (queue full).\n"
        "# TYPE affinity_http_shed_total counter\n"
        "affinity_http_shed_total %lld\n",
        static_cast<long long>(info.version), static_cast<long long>(engine_->fold_ins()),
        static_cast<long long>(engine_->reloads()), static_cast<long long>(info.overlay_customers),
        static_cast<long long>(info.new_products_pending), static_cast<long long>(shed_.load()));
    out += buf;
    out +=
        "# HELP affinity_index_size Vectors in each index.\n"
        "# TYPE affinity_index_size gauge\n";
    for (const auto& [name, index] :
         {std::pair<const char*, const IndexInfo*>{"items", &info.item_index},
          {"similar", &info.similar_index},
          {"customers", &info.customer_index}}) {
      std::snprintf(buf, sizeof buf, "affinity_index_size{index=\"%s\",kind=\"%s\"} %lld\n", name,
                    index->kind.c_str(), static_cast<long long>(index->size));
      out += buf;
    }
    out +=
        "# HELP affinity_index_recall_at_10 Recall@10 against exact search, measured at load.\n"
        "# TYPE affinity_index_recall_at_10 gauge\n";
    for (const auto& [name, index] :
         {std::pair<const char*, const IndexInfo*>{"items", &info.item_index},
          {"similar", &info.similar_index},
          {"customers", &info.customer_index}}) {
      if (!std::isfinite(index->recall_at_10)) continue;
      std::snprintf(buf, sizeof buf, "affinity_index_recall_at_10{index=\"%s\"} %g\n", name,
                    index->recall_at_10);
      out += buf;
    }
    return out;
  }

 private:
  using Fn = std::function<void(const httplib::Request&, httplib::Response&, Role)>;

  void Configure() {
    server_.new_task_queue = [this] {
      return new BoundedPool(options_.threads, options_.max_queued, &shed_);
    };
    server_.set_tcp_nodelay(true);
    // The listening socket, to raise its backlog after bind (see listen_backlog).
    server_.set_socket_options([this](socket_t sock) {
      httplib::default_socket_options(sock);
      listen_fd_ = sock;
    });
    server_.set_keep_alive_max_count(static_cast<size_t>(options_.keep_alive_max_count));
    server_.set_keep_alive_timeout(options_.keep_alive_timeout_s);
    server_.set_read_timeout(options_.read_timeout_s, 0);
    server_.set_write_timeout(options_.write_timeout_s, 0);
    server_.set_payload_max_length(options_.max_body_bytes);
    server_.set_pre_routing_handler([](const httplib::Request& req, httplib::Response& res) {
      if (tl_shed) {
        res.set_header("Connection", "close");
        res.set_header("Retry-After", "1");
        SendError(res, 503, "the server is at its connection limit; retry shortly");
        return httplib::Server::HandlerResponse::Handled;
      }
      // Debian's 0.11.4 does not apply the payload limit to chunked bodies: refuse them unread.
      if (req.has_header("Transfer-Encoding")) {
        res.set_header("Connection", "close");
        SendError(res, 411, "chunked request bodies are not accepted; send Content-Length",
                  "Transfer-Encoding");
        return httplib::Server::HandlerResponse::Handled;
      }
      return httplib::Server::HandlerResponse::Unhandled;
    });
    // Statuses cpp-httplib sets itself (unknown route 404, 413, 400 on a bad request line) get
    // the JSON error body too.
    server_.set_error_handler(
        httplib::Server::HandlerWithResponse([](const httplib::Request&, httplib::Response& res) {
          if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
          SendError(res, res.status,
                    res.status == 404   ? "no such route"
                    : res.status == 413 ? "the body is too large"
                                        : "the request could not be handled");
          return httplib::Server::HandlerResponse::Handled;
        }));
    server_.set_exception_handler(
        [](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
          try {
            if (ep) std::rethrow_exception(ep);
          } catch (const std::exception& e) {
            std::fprintf(stderr, "affinity serve: exception: %s\n", e.what());
          } catch (...) {
          }
          SendError(res, 500, "internal error");
        });
  }

  // The role of the request's key: 0 without an Authorization header; -1 (answered 401 on every
  // route) for a malformed header or an unknown key.
  int Authenticate(const httplib::Request& req) const {
    if (!req.has_header("Authorization")) return 0;
    const std::string header = req.get_header_value("Authorization");
    constexpr std::string_view kBearer = "Bearer ";
    if (header.size() <= kBearer.size() || header.compare(0, kBearer.size(), kBearer) != 0) {
      return -1;
    }
    const std::string_view token = std::string_view(header).substr(kBearer.size());
    int role = -1;
    for (const ApiKey& k : options_.keys) {  // every key is compared: no early exit
      if (ConstantTimeEquals(token, k.key)) role = static_cast<int>(k.role);
    }
    return role;
  }

  void Add(const char* method, const std::string& pattern, const std::string& name, Access access,
           Fn fn) {
    auto metrics = std::make_unique<server::RouteMetrics>(name);
    server::RouteMetrics* m = metrics.get();
    routes_.push_back(std::move(metrics));
    auto handler = [this, m, access, fn = std::move(fn)](const httplib::Request& req,
                                                         httplib::Response& res) {
      const auto start = std::chrono::steady_clock::now();
      Handle(req, res, access, fn);
      m->Record(res.status,
                std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    };
    const std::string m_name = method;
    if (m_name == "GET") {
      server_.Get(pattern, handler);
    } else if (m_name == "POST") {
      server_.Post(pattern, handler);
    } else if (m_name == "PUT") {
      server_.Put(pattern, handler);
    } else {
      server_.Delete(pattern, handler);
    }
  }

  void Handle(const httplib::Request& req, httplib::Response& res, Access access, const Fn& fn) {
    const int role = Authenticate(req);
    if (role < 0) {
      res.set_header("WWW-Authenticate", "Bearer");
      SendError(res, 401, "the Authorization header must be 'Bearer <key>' with a known key",
                "Authorization");
      return;
    }
    const bool need_key = access == Access::kWrite || access == Access::kAdmin ||
                          (access == Access::kRead && options_.private_reads) ||
                          (access == Access::kCustomer && !options_.public_customer_reads);
    if (need_key && options_.keys.empty()) {
      SendError(res, 403,
                access == Access::kRead ? "reads are private and this server has no API keys "
                                          "(--api-key-file)"
                : access == Access::kCustomer
                    ? "customer data needs a key and this server has no API keys "
                      "(--api-key-file; or --public-customer-reads)"
                    : "this server has no API keys: writes are disabled (--api-key-file)");
      return;
    }
    if (need_key && role == 0) {
      res.set_header("WWW-Authenticate", "Bearer");
      SendError(res, 401, "this route needs 'Authorization: Bearer <key>'", "Authorization");
      return;
    }
    if ((access == Access::kWrite && role < static_cast<int>(Role::kWrite)) ||
        (access == Access::kAdmin && role < static_cast<int>(Role::kAdmin))) {
      SendError(res, 403, "this key may not call this route");
      return;
    }
    for (size_t i = 1; i < req.matches.size(); ++i) {
      if (!ValidId(req.matches[i].str())) {
        SendError(res, 400, "ids must be 1-256 bytes of UTF-8 without control characters", "id");
        return;
      }
    }
    fn(req, res, role == 0 ? Role::kRead : static_cast<Role>(role));
  }

  void Routes() {
    Add("GET", "/healthz", "healthz", Access::kPublic,
        [](const httplib::Request&, httplib::Response& res, Role) {
          res.status = 200;
          res.set_content("{\"status\":\"ok\"}", "application/json");
        });
    Add("GET", "/metrics", "metrics", Access::kRead,
        [this](const httplib::Request&, httplib::Response& res, Role) {
          res.status = 200;
          res.set_content(MetricsText(), "text/plain; version=0.0.4");
        });
    Add("GET", "/v1/model", "model", Access::kRead,
        [this](const httplib::Request&, httplib::Response& res, Role) {
          const ModelInfo i = engine_->Info();
          SendJson(res, {{"version", i.version},
                         {"created_at", i.created_at},
                         {"loaded_at", i.loaded_at},
                         {"factors", i.factors},
                         {"customers", i.customers},
                         {"products", i.products},
                         {"overlay_customers", i.overlay_customers},
                         {"new_products", i.new_products},
                         {"new_products_pending", i.new_products_pending},
                         {"fold_ins", engine_->fold_ins()},
                         {"indexes",
                          {{"items", IndexJson(i.item_index)},
                           {"similar", IndexJson(i.similar_index)},
                           {"customers", IndexJson(i.customer_index)},
                           {"new_products", IndexJson(i.new_product_index)}}}});
        });
    Add("POST", "/v1/admin/reload", "reload", Access::kAdmin,
        [this](const httplib::Request& req, httplib::Response& res, Role) {
          auto force = BoolParam(req, "force", false);
          if (!force.ok()) return SendStatus(res, force.status());
          const int64_t before = engine_->Info().version;
          auto version = engine_->Reload(*force);
          if (!version.ok()) {
            // No loadable snapshot is a state of the snapshot root, not a bad request: 409.
            const Status& s = version.status();
            if (s.code() == StatusCode::kNotFound || s.code() == StatusCode::kCorruption ||
                s.code() == StatusCode::kInvalidArgument) {
              return SendError(res, 409, "no loadable snapshot: " + s.message());
            }
            return SendStatus(res, s);
          }
          SendJson(res, {{"version", *version},
                         {"previous_version", before},
                         {"swapped", *version != before || *force}});
        });
    Add("GET", R"(/v1/customers/([^/]+)/recommendations)", "recommendations", Access::kCustomer,
        [this](const httplib::Request& req, httplib::Response& res, Role) {
          RecommendRequest r;
          r.customer = req.matches[1];
          auto k = IntParam(req, "k", 10, 1, 1000);
          if (!k.ok()) return SendStatus(res, k.status());
          auto exclude = BoolParam(req, "exclude_purchased", true);
          if (!exclude.ok()) return SendStatus(res, exclude.status());
          r.k = *k;
          r.exclude_purchased = *exclude;
          if (req.has_param("category")) {
            const std::string c = JoinCategory(SplitCategory(req.get_param_value("category")));
            if (c.empty() || !ValidId(c)) {
              return SendError(res, 400, "category must be a non-empty category path", "category");
            }
            r.category = c;
          }
          auto result = engine_->Recommend(r);
          if (!result.ok()) return SendStatus(res, result.status());
          JsonWriter w;
          w.BeginObject().Key("customer").String(r.customer);
          w.Key("model_version").Int(result->model_version).Key("source").String(result->source);
          w.Key("items").BeginArray();
          for (const auto& item : result->items) {
            w.BeginObject().Key("product").String(item.product).Key("score").Number(item.score);
            w.Key("reason");
            if (item.because.empty()) {
              w.Null();
            } else {
              w.BeginObject().Key("kind").String("purchased").Key("product").String(item.because);
              w.Key("text").String("because you bought ", item.because).EndObject();
            }
            w.EndObject();
          }
          w.EndArray().EndObject();
          SendText(res, w.Take());
        });
    Add("GET", R"(/v1/products/([^/]+)/similar)", "similar", Access::kRead,
        [this](const httplib::Request& req, httplib::Response& res, Role) {
          auto k = IntParam(req, "k", 10, 1, 1000);
          if (!k.ok()) return SendStatus(res, k.status());
          int64_t version = 0;
          auto result = engine_->Similar(req.matches[1].str(), *k, &version);
          if (!result.ok()) return SendStatus(res, result.status());
          JsonWriter w;
          w.BeginObject().Key("product").String(req.matches[1].str());
          w.Key("model_version").Int(version).Key("items").BeginArray();
          for (const auto& s : *result) {
            w.BeginObject().Key("product").String(s.product).Key("score").Number(s.score);
            w.EndObject();
          }
          w.EndArray().EndObject();
          SendText(res, w.Take());
        });
    Add("GET", R"(/v1/products/([^/]+)/audience)", "audience", Access::kCustomer,
        [this](const httplib::Request& req, httplib::Response& res, Role) {
          AudienceRequest r;
          r.product = req.matches[1];
          auto limit = IntParam(req, "limit", 100, 1, 1'000'000);
          if (!limit.ok()) return SendStatus(res, limit.status());
          r.limit = *limit;
          for (const char* name : {"min_score", "min_probability", "horizon_days"}) {
            if (!req.has_param(name)) continue;
            const std::string text = req.get_param_value(name);
            char* end = nullptr;
            const double v = std::strtod(text.c_str(), &end);
            if (text.empty() || end != text.c_str() + text.size() || !std::isfinite(v) ||
                std::abs(v) > std::numeric_limits<float>::max()) {
              return SendError(res, 400, std::string(name) + " must be a number", name);
            }
            if (std::string_view(name) == "min_score") r.min_score = static_cast<float>(v);
            if (std::string_view(name) == "min_probability") r.min_probability = v;
            if (std::string_view(name) == "horizon_days") r.horizon_days = v;
          }
          auto result = [&] {
            FifoGate::Slot slot(&audience_gate_);
            return engine_->Audience(r);
          }();
          if (!result.ok()) return SendStatus(res, result.status());
          SendText(res, AudienceResultJsonText(*result, &r.product));
        });
    Add("POST", "/v1/audience", "audience_what_if", Access::kCustomer,
        [this](const httplib::Request& req, httplib::Response& res, Role) {
          auto body = ParseBody(req);
          if (!body.ok()) return SendStatus(res, body.status());
          if (!body->is_object()) return SendError(res, 400, "the body must be an object", "body");
          if (Status s =
                  KnownKeys(*body, {"product", "limit", "min_probability", "horizon_days"}, "");
              !s.ok()) {
            return SendStatus(res, s);
          }
          auto product = body->find("product");
          if (product == body->end() || !product->is_object()) {
            return SendError(res, 400, "product (an object of attributes) is required", "product");
          }
          auto attributes = ParseProduct(*product);
          if (!attributes.ok()) {
            const Status& s = attributes.status();
            return SendStatus(res, Status::InvalidArgument(s.message(), "product." + s.field()));
          }
          AudienceRequest r;
          r.attributes = std::move(*attributes);
          std::optional<double> limit, min_probability, horizon;
          for (auto [key, out] :
               {std::pair{"limit", &limit}, std::pair{"min_probability", &min_probability},
                std::pair{"horizon_days", &horizon}}) {
            if (Status s = Member(*body, key, "", out); !s.ok()) return SendStatus(res, s);
          }
          if (limit) {
            if (*limit < 1 || *limit > 1'000'000 || *limit != std::floor(*limit)) {
              return SendError(res, 400, "limit must be an integer between 1 and 1000000", "limit");
            }
            r.limit = static_cast<int>(*limit);
          }
          r.min_probability = min_probability;
          r.horizon_days = horizon;
          auto result = [&] {
            FifoGate::Slot slot(&audience_gate_);
            return engine_->Audience(r);
          }();
          if (!result.ok()) return SendStatus(res, result.status());
          SendText(res, AudienceResultJsonText(*result));
        });
    Add("GET", R"(/v1/customers/([^/]+)/interests)", "interests_get", Access::kCustomer,
        [this](const httplib::Request& req, httplib::Response& res, Role) {
          auto limit = IntParam(req, "limit", 20, 1, 1000);
          if (!limit.ok()) return SendStatus(res, limit.status());
          auto interests = engine_->Interests(req.matches[1].str(), *limit);
          if (!interests.ok()) return SendStatus(res, interests.status());
          json items = json::array();
          for (const Interest& i : *interests) {
            items.push_back({{"category", i.category},
                             {"level", i.level},
                             {"weight", i.weight},
                             {"source", i.source}});
          }
          SendJson(res, {{"customer", req.matches[1].str()}, {"interests", items}});
        });
    Add("PUT", R"(/v1/customers/([^/]+)/interests)", "interests_put", Access::kWrite,
        [this](const httplib::Request& req, httplib::Response& res, Role) {
          auto body = ParseBody(req);
          if (!body.ok()) return SendStatus(res, body.status());
          if (!body->is_object()) return SendError(res, 400, "the body must be an object", "body");
          if (Status s = KnownKeys(*body, {"interests"}, ""); !s.ok()) return SendStatus(res, s);
          std::optional<std::vector<std::string>> interests;
          if (Status s = Member(*body, "interests", "", &interests); !s.ok()) {
            return SendStatus(res, s);
          }
          if (!interests) return SendError(res, 400, "interests is required", "interests");
          if (Status s = CheckText(interests, "interests"); !s.ok()) return SendStatus(res, s);
          auto created = engine_->SetInterests(req.matches[1].str(), *interests);
          if (!created.ok()) return SendStatus(res, created.status());
          auto stored = engine_->Interests(req.matches[1].str(), 0);
          json stated = json::array();
          if (stored.ok()) {
            for (const Interest& i : *stored) stated.push_back(i.category);
          }
          SendJson(res, {{"customer", req.matches[1].str()}, {"stated", stated}},
                   *created ? 201 : 200);
        });
    // The unsubscribe link of a campaign letter: no key, the per-customer token (campaign.h)
    // is the authority. Parameters in the query string (RFC 8058 one-click POST, whose body is
    // "List-Unsubscribe=One-Click") or as a JSON body {"customer", "token"}.
    Add("POST", "/v1/unsubscribe", "unsubscribe", Access::kPublic,
        [this](const httplib::Request& req, httplib::Response& res, Role) {
          std::string customer, token;
          if (req.has_param("token") || req.has_param("customer")) {
            customer = req.get_param_value("customer");
            token = req.get_param_value("token");
          } else {
            auto body = ParseBody(req);
            if (!body.ok()) return SendStatus(res, body.status());
            if (!body->is_object()) {
              return SendError(res, 400, "the body must be an object", "body");
            }
            if (Status s = KnownKeys(*body, {"customer", "token"}, ""); !s.ok()) {
              return SendStatus(res, s);
            }
            std::optional<std::string> c, t;
            if (Status s = Member(*body, "customer", "", &c); !s.ok()) return SendStatus(res, s);
            if (Status s = Member(*body, "token", "", &t); !s.ok()) return SendStatus(res, s);
            customer = c.value_or("");
            token = t.value_or("");
          }
          if (customer.empty()) return SendError(res, 400, "customer is required", "customer");
          if (token.empty()) return SendError(res, 400, "token is required", "token");
          auto secret = engine_->store().CampaignSecret();
          if (!secret.ok()) return SendStatus(res, secret.status());
          if (!VerifyUnsubscribeToken(*secret, customer, token)) {
            return SendError(res, 403, "the token does not match the customer", "token",
                             "forbidden");
          }
          if (auto known = engine_->store().FindCustomer(customer); !known.ok()) {
            return SendStatus(res, known.status());
          }
          CustomerProfile opt_out;
          opt_out.opted_out = true;
          auto updated = engine_->UpsertCustomer(customer, opt_out);
          if (!updated.ok() && updated.status().code() == StatusCode::kFailedPrecondition &&
              updated.status().field() == "customer") {
            // Forgotten between the check above and the update: unknown, as to everyone.
            return SendStatus(res, Status::NotFound("customer '" + customer + "' is unknown"));
          }
          if (!updated.ok()) return SendStatus(res, updated.status());
          if (*updated) {
            // Created: forgotten between the check above and the update. Not brought back.
            auto forgotten = engine_->ForgetCustomer(customer);
            if (!forgotten.ok()) return SendStatus(res, forgotten.status());
            return SendStatus(res, Status::NotFound("customer '" + customer + "' is unknown"));
          }
          SendJson(res, {{"customer", customer}, {"opted_out", true}});
        });
    Add("POST", "/v1/events", "events", Access::kWrite,
        [this](const httplib::Request& req, httplib::Response& res, Role) {
          auto body = ParseBody(req);
          if (!body.ok()) return SendStatus(res, body.status());
          const json* list = &*body;
          if (body->is_object()) {
            auto it = body->find("events");
            if (it == body->end()) {
              return SendError(res, 400, "the body must be {\"events\": [...]}", "events");
            }
            list = &*it;
          }
          if (!list->is_array()) return SendError(res, 400, "events must be an array", "events");
          if (list->size() > static_cast<size_t>(options_.max_batch)) {
            return SendError(res, 413,
                             "at most " + std::to_string(options_.max_batch) + " events per batch",
                             "events");
          }
          const UnixSeconds now = std::chrono::duration_cast<std::chrono::seconds>(
                                      std::chrono::system_clock::now().time_since_epoch())
                                      .count();
          std::vector<EventInput> events;
          std::vector<size_t> positions;  // request index of each parsed event
          json errors = json::array();
          for (size_t i = 0; i < list->size(); ++i) {
            auto e = ParseEvent((*list)[i], i, now);
            if (!e.ok()) {
              errors.push_back(
                  {{"index", i}, {"field", e.status().field()}, {"message", e.status().message()}});
              continue;
            }
            events.push_back(std::move(*e));
            positions.push_back(i);
          }
          auto result = engine_->AddEvents(events);
          if (!result.ok()) return SendStatus(res, result.status());
          for (const auto& err : result->errors) {  // (ParseEvent validated already)
            errors.push_back({{"index", positions[err.index]},
                              {"field", err.status.field()},
                              {"message", err.status.message()}});
          }
          const bool none = events.empty() && !list->empty();
          SendJson(res,
                   {{"received", list->size()},
                    {"stored", result->stored.written},
                    {"duplicates", result->stored.duplicates},
                    {"forgotten", result->stored.forgotten},
                    {"new_customers", result->stored.new_customers},
                    {"new_products", result->stored.new_products},
                    {"folded_in", result->folded_in},
                    {"fold_in_failures", result->fold_in_errors.size()},
                    {"errors", errors}},
                   none ? 422 : 200);
        });
    Add("PUT", R"(/v1/customers/([^/]+))", "customer_put", Access::kWrite,
        [this](const httplib::Request& req, httplib::Response& res, Role) {
          auto body = ParseBody(req);
          if (!body.ok()) return SendStatus(res, body.status());
          auto profile = ParseCustomer(*body);
          if (!profile.ok()) return SendStatus(res, profile.status());
          auto created = engine_->UpsertCustomer(req.matches[1].str(), *profile);
          if (!created.ok()) return SendStatus(res, created.status());
          SendJson(res, {{"id", req.matches[1].str()}, {"created", *created}},
                   *created ? 201 : 200);
        });
    Add("GET", R"(/v1/customers/([^/]+))", "customer_get", Access::kCustomer,
        [this](const httplib::Request& req, httplib::Response& res, Role role) {
          auto id = engine_->store().FindCustomer(req.matches[1].str());
          if (!id.ok()) return SendStatus(res, id.status());
          auto profile = engine_->store().GetCustomer(*id);
          if (!profile.ok()) return SendStatus(res, profile.status());
          SendJson(res, CustomerJson(req.matches[1].str(), *profile, role == Role::kAdmin));
        });
    Add("DELETE", R"(/v1/customers/([^/]+))", "customer_delete", Access::kAdmin,
        [this](const httplib::Request& req, httplib::Response& res, Role) {
          auto forgot = engine_->ForgetCustomer(req.matches[1].str());
          if (!forgot.ok()) return SendStatus(res, forgot.status());
          const ForgetReceipt& r = forgot->store;
          json products = json::array();
          SendJson(res, {{"customer", r.customer},
                         {"forgotten", true},
                         {"removed",
                          {{"events", r.events},
                           {"profile", r.profile},
                           {"id_mappings", true},  // both directions, always present for a known id
                           {"notifications", r.notifications},
                           {"online_vector", forgot->had_vector}}},
                         {"erasure",
                          "queued: the deleted records leave the store's files at a compaction "
                          "of the ranges they were in (of the whole store when many wait), which "
                          "runs next in the background (at the next start if the server stops "
                          "first)"},
                         {"newest_snapshot", forgot->newest_snapshot},
                         {"snapshots",
                          "hidden from every answer now; snapshot v" +
                              std::to_string(forgot->newest_snapshot) +
                              " and older ones still hold the id, vector and insights row on disk "
                              "(affinity forget --snapshots removes them there); a retrain "
                              "checking the store after this call leaves them out"}});
        });
    Add("GET", R"(/v1/customers/([^/]+)/insights)", "insights", Access::kCustomer,
        [this](const httplib::Request& req, httplib::Response& res, Role) {
          auto insight = engine_->Insight(req.matches[1].str());
          if (!insight.ok()) return SendStatus(res, insight.status());
          json j = CustomerInsightJson(*insight);
          j["customer"] = req.matches[1].str();
          SendJson(res, j);
        });
    Add("PUT", R"(/v1/products/([^/]+))", "product_put", Access::kWrite,
        [this](const httplib::Request& req, httplib::Response& res, Role) {
          auto body = ParseBody(req);
          if (!body.ok()) return SendStatus(res, body.status());
          auto attributes = ParseProduct(*body);
          if (!attributes.ok()) return SendStatus(res, attributes.status());
          auto created = engine_->UpsertProduct(req.matches[1].str(), *attributes);
          if (!created.ok()) return SendStatus(res, created.status());
          SendJson(res, {{"id", req.matches[1].str()}, {"created", *created}},
                   *created ? 201 : 200);
        });
    Add("GET", R"(/v1/products/([^/]+))", "product_get", Access::kRead,
        [this](const httplib::Request& req, httplib::Response& res, Role) {
          auto id = engine_->store().FindProduct(req.matches[1].str());
          if (!id.ok()) return SendStatus(res, id.status());
          auto attributes = engine_->store().GetProduct(*id);
          if (!attributes.ok()) return SendStatus(res, attributes.status());
          SendJson(res, ProductJson(req.matches[1].str(), *attributes));
        });
  }

  ServingEngine* engine_;
  HttpServerOptions options_;
  httplib::Server server_;
  int port_ = -1;
  socket_t listen_fd_ = -1;  // the listening socket (set by bind)
  std::atomic<int64_t> shed_{0};
  std::vector<std::unique_ptr<server::RouteMetrics>> routes_;
  FifoGate audience_gate_{
      options_.audience_slots > 0
          ? options_.audience_slots
          : 2 * static_cast<int>(std::max(1u, std::thread::hardware_concurrency()))};
};

HttpServer::HttpServer(ServingEngine* engine, HttpServerOptions options)
    : impl_(std::make_unique<Impl>(engine, std::move(options))) {}
HttpServer::~HttpServer() = default;
Status HttpServer::Bind() { return impl_->Bind(); }
int HttpServer::port() const { return impl_->port(); }
Status HttpServer::Serve() { return impl_->Serve(); }
void HttpServer::Stop() { impl_->Stop(); }
std::string HttpServer::MetricsText() const { return impl_->MetricsText(); }

}  // namespace affinity
