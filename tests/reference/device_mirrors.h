// Device-memory copies of a test case's host buffers, so that one case description runs on the
// CPU or on a GPU unchanged. On the CPU the kernel sees the host buffers themselves, or copies
// placed against an inaccessible guard page so that a read or write past either end of a buffer
// crashes the test instead of passing unseen.
#pragma once

#include <cstddef>
#include <map>

#include "flashjit/tensor.h"

namespace flashjit::testing {

// True when a CUDA device is usable (driver loaded, at least one device).
bool cuda_device_available();
// CUDA devices of the machine (0 without a driver).
int cuda_device_count();
// Makes the primary context of CUDA device `index` current on this thread.
void make_cuda_device_current(int index);
// The device of the thread's current CUDA context; -1 without one.
int current_cuda_device();

// Where CPU copies sit against their guard pages: ending exactly where the page after them starts
// (catches overruns) or starting exactly where the page before them ends (catches underruns).
// CUDA mirrors ignore it.
enum class GuardSide { kNone, kAfter, kBefore };

class DeviceMirrors {
 public:
  explicit DeviceMirrors(Device device, GuardSide guard = GuardSide::kNone);
  ~DeviceMirrors();
  DeviceMirrors(const DeviceMirrors&) = delete;
  DeviceMirrors& operator=(const DeviceMirrors&) = delete;

  // The pointer the kernel should see for `bytes` at `host`: the host pointer itself, or a copy
  // in device memory or between guard pages (made once per host pointer).
  void* place(void* host, size_t bytes);
  // CUDA: makes the primary context of the mirrors' device current (no-op on the CPU). Every
  // member does it first, so the mirrors work whatever context a test made current meanwhile.
  void make_current() const;
  // Waits for the device and copies `host` into its mirror again (no-op without one).
  void upload(void* host);
  // Waits for the device and copies the mirror of `host` back into it (no-op without one).
  void copy_back(void* host);

 private:
  Device device_;
  GuardSide guard_;
  struct Mirror {
    void* device;
    size_t bytes;
    void* mapping = nullptr;  // guarded CPU copies: the mapping that holds them and their guards
    size_t mapping_bytes = 0;
  };
  void* place_guarded(void* host, size_t bytes);
  std::map<void*, Mirror> mirrors_;
};

}  // namespace flashjit::testing
