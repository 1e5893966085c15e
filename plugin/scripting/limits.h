// limits.h: what keeps a script from crashing or hanging the host: a memory cap per lua_State
// (a custom lua_Alloc), a time and instruction budget per call enforced by a count hook that a
// script's own pcall cannot swallow, a call-depth bound, and the watchdog that arms the hook.
//
// Hook modes (scripts.hook_mode):
//  - "always": every call runs with a count hook firing every kHookEvery instructions; it counts
//    instructions against scripts.instruction_limit and checks the clock.
//  - "watchdog" (default): calls run with no hook at all, because any active count hook makes
//    Lua 5.4 trap every instruction (about half the speed of tight loops; bench/README.md,
//    "Mapping"). A Watchdog thread arms the same hook on a state once its current call has used
//    scripts.watchdog_ms of script time; from then on instructions are counted and the clock
//    checked as in "always". So a call shorter than watchdog_ms is never counted, and the
//    instruction limit counts only instructions after arming.
//
// Stopping: when a budget is exceeded the hook records the reason, re-arms itself to fire on
// EVERY instruction and raises. A script's pcall may catch that error, but the very next
// instruction raises again (Redis does the same), so the stop reaches the host; the caller also
// checks stopped() after the call in case a C function swallowed it. Hitting the memory cap
// sets the same sticky stop. After a stop the caller discards the state.
//
// Arming from another thread: lua_sethook is the one Lua API documented as callable
// asynchronously (lua.c calls it from a signal handler); it writes the hook fields and sets a
// trap flag in each active CallInfo. The one hazard of doing it from another thread is a
// CallInfo freed (luaE_shrinkCI, during a GC step) while the watchdog walks the list. The
// allocator closes it: while the watchdog arms, frees wait (arming_ flag); the watchdog sets the
// flag and then issues membarrier(PRIVATE_EXPEDITED) so the worker's stores before the flag
// check are visible to it (an asymmetric Dekker fence: the worker's fast path is one relaxed
// load). Where membarrier is unavailable, and under ThreadSanitizer (which models no membarrier
// and no lone fence), the worker does a read-modify-write on the flag for each free instead,
// which orders the two sides in the C++ memory model itself (wait_while_arming explains how).
// Coroutines are not in the sandbox, so no CallInfo is ever inside a yieldable pcall whose
// fields the trap flag could overlap.
#pragma once

#include <lua.hpp>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace fb::detail {

enum class StopReason { kNone, kTime, kInstructions, kMemory, kDepth, kCrmCalls };

struct BudgetLimits {
  int64_t instruction_limit = 50'000'000;
  int time_limit_ms = 2000;
  int64_t memory_limit_bytes = 64 << 20;
  int max_call_depth = 200;
  bool always_armed = false;  // hook_mode "always"
  int watchdog_ms = 10;
  int crm_calls = 1000;  // scripts.crm_calls_per_event: only for stop_crm_calls()'s message
};

// Free lists of small blocks (up to 256 bytes, 16-byte classes) carved from 64 KiB chunks:
// most of what Lua allocates (strings, tables, closures, CallInfos) is small and short-lived,
// and a single-threaded pool is several times cheaper than malloc/free for it. Chunks go back
// to the system when the pool (the state) is destroyed. Owning thread only.
class SmallBlockPool {
 public:
  static constexpr size_t kMaxSmall = 256;
  SmallBlockPool() = default;
  ~SmallBlockPool();
  SmallBlockPool(const SmallBlockPool&) = delete;
  SmallBlockPool& operator=(const SmallBlockPool&) = delete;

  // REQUIRES: 0 < n <= kMaxSmall. Null when the system is out of memory.
  void* get(size_t n);
  // REQUIRES: p came from get(n') with the same size class as n.
  void put(void* p, size_t n);
  static bool same_class(size_t a, size_t b) { return (a + 15) / 16 == (b + 15) / 16; }
  size_t footprint() const { return chunks_.size() * kChunk; }

 private:
  static constexpr size_t kChunk = 64 * 1024;
  struct Node {
    Node* next;
  };
  Node* free_[kMaxSmall / 16] = {};
  std::vector<void*> chunks_;
  char* bump_ = nullptr;
  size_t bump_left_ = 0;
};

// One per lua_State, created before it (it is the allocator's ud) and destroyed after lua_close.
// Thread safety: the owning worker calls everything except watchdog_check, which the Watchdog
// thread calls; memory_used/peak may be read from any thread (values as of the last end_call).
class StateLimits {
 public:
  static constexpr int kHookEvery = 1000;

  explicit StateLimits(BudgetLimits limits);
  StateLimits(const StateLimits&) = delete;
  StateLimits& operator=(const StateLimits&) = delete;

  // lua_Alloc; ud is the StateLimits.
  static void* alloc(void* ud, void* ptr, size_t osize, size_t nsize);
  // Records the state after lua_newstate(alloc, this).
  void attach(lua_State* L) { L_ = L; }

  // Starts a call's budget (and arms the hook in "always" mode). Clears any previous stop.
  void begin_call();
  // Ends the call: disarms the hook. Stop information stays readable until the next begin_call.
  void end_call();
  bool stopped() const { return stop_ != StopReason::kNone; }
  StopReason stop_reason() const { return stop_; }
  // "scripts/x.lua:3: script exceeded its time budget of 2000 ms (scripts.time_limit_ms)".
  const std::string& stop_message() const { return stop_message_; }

  // A limit the host counts (scripts.crm_calls_per_event) was exceeded inside a host call: records
  // the stop like the memory cap does, so the script's next instruction raises it and no pcall can
  // swallow it. The host call itself returns a failure. Owning thread, during a call.
  void stop_crm_calls();

  // Host calls (CRM, store, fathom) do not count against the time budget.
  void host_begin();
  void host_end();

  // Watchdog thread: arms the hook when the running call has used watchdog_ms of script time, and
  // makes it fire on every instruction once the call is over its time budget (C calls between two
  // hooks could otherwise overrun it by hundreds of times their own cost).
  void watchdog_check(int64_t now_ns);
  bool active() const { return active_.load(std::memory_order_acquire); }

  // Host memory held for the script counts against memory_limit_bytes (LuaHost::charge_memory).
  // False, with the memory stop recorded, when it does not fit. Owning thread only.
  bool charge(size_t n);
  void release(size_t n) { used_ -= n; }

  size_t memory_used() const { return used_snapshot_.load(std::memory_order_relaxed); }
  size_t memory_peak() const { return peak_snapshot_.load(std::memory_order_relaxed); }
  size_t memory_used_now() const { return used_; }  // owning thread only
  const BudgetLimits& limits() const { return limits_; }

  static int64_t now_ns();

 private:
  static void hook(lua_State* L, lua_Debug* ar);
  void on_hook(lua_State* L);
  [[noreturn]] void trip(lua_State* L, StopReason reason);
  void record_stop(lua_State* L, StopReason reason);
  void arm_every_instruction(lua_State* L);
  void arm_from_watchdog(int every);
  void on_refused(size_t nsize);
  int64_t script_ns(int64_t now) const;
  void wait_while_arming();

  BudgetLimits limits_;
  lua_State* L_ = nullptr;

  // Memory (owning thread).
  SmallBlockPool pool_;
  size_t used_ = 0;
  size_t peak_ = 0;
  std::atomic<size_t> used_snapshot_{0};
  std::atomic<size_t> peak_snapshot_{0};

  // Arming (shared with the watchdog).
  std::mutex arm_mu_;
  bool armed_ = false;                // guarded by arm_mu_
  std::atomic<int> hook_every_{kHookEvery};  // the hook's count; 1 once stopped or over the time budget
  std::atomic<int> arming_{0};        // 1 while the watchdog is inside lua_sethook: frees wait
  std::atomic<bool> active_{false};
  std::atomic<int64_t> start_ns_{0};
  std::atomic<int64_t> host_ns_{0};     // time spent in host calls during this call
  std::atomic<int64_t> host_since_{0};  // start of the current host call, 0 when none

  // Stop state (owning thread).
  int64_t instructions_ = 0;
  StopReason stop_ = StopReason::kNone;
  std::string stop_message_;
};

// One thread per ScriptHost that arms overdue calls. While calls run it ticks every
// watchdog_ms / 2; after a second without any call it sleeps until the next call starts (one
// wake-up per idle period, not per call).
class Watchdog {
 public:
  // Checks every tick_ms / 2 while calls run, so a call is armed within 1.5 x watchdog_ms.
  explicit Watchdog(int tick_ms);
  ~Watchdog();
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;

  void add(StateLimits* s);
  void remove(StateLimits* s);
  // Called by the worker around each call, so an idle watchdog sleeps until work starts.
  void call_started();
  void call_finished();

 private:
  void run();

  int tick_ms_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<StateLimits*> states_;  // guarded by mu_
  std::atomic<int> active_calls_{0};
  std::atomic<bool> idle_{true};
  bool stop_ = false;                 // guarded by mu_
  std::thread thread_;
};

// "short_src:line: " of the innermost Lua function with line information, or "".
std::string lua_location(lua_State* L);

// Whether the running call of L was stopped by its budget (false for a state that StateLimits does
// not manage). Lua runs a message handler before unwinding and, when the error came from the
// budget hook, with hooks off (none may run inside a hook): code that calls back into the script
// after an error (the sandbox's xpcall) must skip the script's handler once this is true.
bool budget_stopped(lua_State* L);

// Lua's own version of "was the C++ build linked": true when lua_error unwinds C++ frames
// (destructors run). The scripting layer refuses to start otherwise.
bool lua_errors_unwind_cxx();

}  // namespace fb::detail
