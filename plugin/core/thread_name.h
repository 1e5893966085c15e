// thread_name.h: names the library's long-lived threads ("fb-worker", "fb-inbox", ...), so `top -H`,
// perf and /proc/<pid>/task/*/comm tell them apart (bench/e2e splits CPU time by them).
#pragma once

#include <pthread.h>

namespace fb::detail {

// At most 15 characters (the kernel's limit); longer names are ignored.
inline void name_this_thread(const char* name) { (void)pthread_setname_np(pthread_self(), name); }

}  // namespace fb::detail
