// How long this machine's CPUs were taken away from it while a benchmark ran: one thread per CPU,
// pinned to it, sleeps 1 ms at a time and counts every wake-up that came more than THRESHOLD_MS
// late. On a virtual machine whose host runs its virtual CPUs short of a full core each (a CPU
// budget, a busy host), a saturating load gets its CPUs stopped for whole host time slices (100
// ms on the development VM), and every request in flight then waits that long: the tail of a load
// test measures the host, not the server. serve_load.sh runs this beside each measured route.
//
//   build/benchmarks/vm_stalls [THRESHOLD_MS=20]
//
// Runs until SIGINT or SIGTERM, then prints one line:
//   stalls N, M ms in all (P% of CPU time), longest L ms
// where CPU time is the run's wall time times the CPUs watched. The probe costs ~1,000 wake-ups
// per second per CPU. A wake-up delayed inside the guest (a runnable thread waiting behind
// others) took at most 7 ms under a saturating load on the development VM (`perf sched`), so the
// 20 ms default counts only stops of the CPU itself. Exit code 2 on a bad argument.
#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

namespace {

struct Tally {
  int64_t stalls = 0;
  double stalled_ms = 0;
  double longest_ms = 0;
};

void Watch(int cpu, double threshold_ms, const std::atomic<bool>& stop, Tally* tally) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  pthread_setaffinity_np(pthread_self(), sizeof(set), &set);  // unpinned if it fails: still a probe
  using Clock = std::chrono::steady_clock;
  constexpr auto kNap = std::chrono::milliseconds(1);
  while (!stop.load(std::memory_order_relaxed)) {
    const auto before = Clock::now();
    std::this_thread::sleep_for(kNap);
    const double late_ms =
        std::chrono::duration<double, std::milli>(Clock::now() - before - kNap).count();
    if (late_ms > threshold_ms) {
      ++tally->stalls;
      tally->stalled_ms += late_ms;
      tally->longest_ms = std::max(tally->longest_ms, late_ms);
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  double threshold_ms = 20;
  constexpr const char* kUsage = "usage: vm_stalls [THRESHOLD_MS=20]  (reports on SIGINT)\n";
  if (argc == 2 && (std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h")) {
    std::fputs(kUsage, stdout);
    return 0;
  }
  if (argc > 2) {
    std::fputs(kUsage, stderr);
    return 2;
  }
  if (argc == 2) {
    char* end = nullptr;
    errno = 0;
    threshold_ms = std::strtod(argv[1], &end);
    if (errno != 0 || end == argv[1] || *end != '\0' || !(threshold_ms >= 1)) {
      std::fprintf(stderr, "vm_stalls: THRESHOLD_MS must be a number >= 1, got '%s'\n", argv[1]);
      return 2;
    }
  }
  // The signals are taken by sigwait below, not by the probe threads, which inherit the mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  const int cpus = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  std::atomic<bool> stop{false};
  std::vector<Tally> tallies(static_cast<size_t>(cpus));
  std::vector<std::thread> threads;
  const auto start = std::chrono::steady_clock::now();
  for (int cpu = 0; cpu < cpus; ++cpu) {
    threads.emplace_back(Watch, cpu, threshold_ms, std::cref(stop), &tallies[cpu]);
  }
  int sig = 0;
  sigwait(&signals, &sig);
  stop = true;
  for (auto& t : threads) t.join();
  const double wall_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();

  Tally all;
  for (const Tally& t : tallies) {
    all.stalls += t.stalls;
    all.stalled_ms += t.stalled_ms;
    all.longest_ms = std::max(all.longest_ms, t.longest_ms);
  }
  std::printf("stalls %lld, %.0f ms in all (%.1f%% of CPU time), longest %.0f ms\n",
              static_cast<long long>(all.stalls), all.stalled_ms,
              100 * all.stalled_ms / (wall_ms * cpus), all.longest_ms);
  return 0;
}
