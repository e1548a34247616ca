// HugePageBuffer: aligned allocation with MADV_HUGEPAGE (a hint; plain pages where refused).
#include <sys/mman.h>

#include <cstdlib>
#include <new>

#include "tools/tool_common.h"

namespace flashjit::tools {

HugePageBuffer::HugePageBuffer(size_t bytes) : size_(bytes) {
  constexpr size_t kHuge = size_t{1} << 21;
  const size_t rounded = (bytes + kHuge - 1) / kHuge * kHuge;
  data_ = static_cast<uint8_t*>(std::aligned_alloc(kHuge, rounded > 0 ? rounded : kHuge));
  if (!data_) throw std::bad_alloc();
  if (rounded >= kHuge) madvise(data_, rounded, MADV_HUGEPAGE);
}

HugePageBuffer::~HugePageBuffer() { std::free(data_); }

}  // namespace flashjit::tools
