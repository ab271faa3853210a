// Software prefetch that the optimizer keeps.
//
// GCC 12 at -O2/-O3 deletes a __builtin_prefetch that sits under a condition in a loop doing
// nothing else (its dead-code pass does not count the prefetch as a use): a loop that only warms
// the cache for the next stage compiled to nothing (seen in ServingEngine::Audience, and in a
// ten-line reproduction). On x86-64 an asm statement with a memory operand cannot be deleted;
// elsewhere the builtin is the best there is.
#pragma once

namespace affinity {

// Asks for the cache line holding *p, for reading (into every level of the cache). Never faults,
// whatever p is: a prefetch of an unmapped address is dropped by the CPU.
inline void PrefetchLine(const void* p) {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  asm volatile("prefetcht0 %0" : : "m"(*static_cast<const char*>(p)));
#else
  __builtin_prefetch(p);
#endif
}

}  // namespace affinity
