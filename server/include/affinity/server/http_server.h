// HttpServer: the JSON API of docs/api.md (OpenAPI 3 in docs/openapi.yaml) over cpp-httplib,
// answering from a ServingEngine. It maps HTTP to library calls and Status to HTTP codes; the
// logic lives in the engine.
//
// Threads. cpp-httplib (Debian's 0.11) hands every accepted connection to a worker for its whole
// keep-alive life, so the worker pool bounds the number of connections served at once. The pool
// has `threads` workers and a queue of at most `max_queued` waiting connections; a connection
// accepted when the queue is full is answered 503 (code "overloaded", `Connection: close`) by a
// separate reject thread, instead of waiting unboundedly. (cpp-httplib 0.11 closes a connection
// on the request's Connection header only, so it is the client that closes after the 503;
// compliant clients do at once.) Keep-alive connections are closed after `keep_alive_max_count`
// requests or `keep_alive_timeout_s` idle seconds, so idle clients cannot hold workers for long.
//
// Limits. Bodies above `max_body_bytes` are refused with 413; chunked request bodies (which
// Debian's 0.11.4 does not limit) are refused with 411 and `Connection: close` before they are
// read (a client that keeps the connection open has its unread body parsed as the next request,
// which then fails to parse). TCP_NODELAY is on.
//
// Auth. Keys come from a file (one per line: `KEY`, or `ROLE KEY` with ROLE admin, write or read;
// a bare key is admin; blank lines and lines starting with # are skipped) and are compared in
// constant time. Write routes need a write or admin key; admin routes (reload, DELETE customer,
// personal fields) an admin key. Reads of what the shop knows about its customers
// (recommendations, whose reasons name past purchases; audiences; a customer's profile, interests
// and insights) need any key unless `public_customer_reads`; reads of the catalog and the model
// (similar products, a product, /v1/model, /metrics) are open unless `private_reads`, then need
// any key. A route that needs a key answers 401 without one, 403 when the server has no keys.
//
// Thread safety: Start, Stop and Wait may be called from different threads; Stop is idempotent.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "affinity/serving.h"
#include "affinity/status.h"

namespace affinity {

enum class Role { kRead = 1, kWrite = 2, kAdmin = 3 };

struct ApiKey {
  std::string key;
  Role role = Role::kAdmin;
};

// Reads a key file (format above). InvalidArgument naming the line for an unknown role, a key
// shorter than 16 bytes or containing spaces; IOError if unreadable.
Result<std::vector<ApiKey>> ReadApiKeyFile(const std::string& path);

struct HttpServerOptions {
  std::string host = "127.0.0.1";
  int port = 8080;  // 0: any free port (see HttpServer::port())
  // Worker threads = connections served at once. Default 64: a widget fleet keeps tens of
  // keep-alive connections open, and an idle one costs a thread, not CPU.
  int threads = 64;
  // Connections waiting for a worker before new ones get 503. Default 256.
  int max_queued = 256;
  size_t max_body_bytes = 1 << 20;  // default 1 MiB (about 5,000 events per batch)
  int read_timeout_s = 5;
  int write_timeout_s = 5;
  int keep_alive_timeout_s = 5;
  int keep_alive_max_count = 1000;
  // Connections the kernel holds for accept() (capped by net.core.somaxconn). Default 1024;
  // cpp-httplib 0.11 listens with 5, and when its accept thread waits for a core the queue
  // overflows: the kernel drops the handshake's last ACK and the client's first request, which
  // it resends after a 200 ms, 400 ms, 800 ms... retransmission timeout (measured: a p99 of
  // 200 ms and a maximum of 834 ms under keep-alive reconnects at 15k req/s on 2 cores).
  int listen_backlog = 1024;
  std::vector<ApiKey> keys;
  // The catalog and model reads need a key too (customer reads always do, see above).
  bool private_reads = false;
  // Customer reads need no key: for a storefront that calls the API from the shopper's browser,
  // at the price of showing any customer's recommendations, reasons, audiences, interests and
  // insights to whoever can reach the port and guess an id. Contradicts private_reads.
  bool public_customer_reads = false;
  // Largest POST /v1/events batch (more: 413). Default 5,000.
  int max_batch = 5'000;
  // Audiences computed at once; further audience requests wait in arrival order (FIFO). Default
  // 0: twice the number of cores (one slot per core left some idle while a slot's thread waited
  // on memory or the network: 2 slots on 2 cores 545-617 req/s, 4 slots 639-733). With dozens of
  // connections on a few cores, the scheduler otherwise time-slices every audience at once and some
  // finish far behind others; in order, each waits for those ahead of it only, so the slowest (p99)
  // stays near the mean.
  int audience_slots = 0;

  Status Validate() const;
};

class HttpServer {
 public:
  // `engine` must outlive the server.
  HttpServer(ServingEngine* engine, HttpServerOptions options);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds host:port. InvalidArgument for bad options; IOError if the address cannot be bound.
  Status Bind();
  // The bound port (after Bind).
  int port() const;
  // Serves until Stop (blocks). Call after Bind.
  Status Serve();
  // Stops accepting, lets in-flight requests finish, and makes Serve return.
  void Stop();

  // The Prometheus text exposition of the metrics (what GET /metrics returns).
  std::string MetricsText() const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace affinity
