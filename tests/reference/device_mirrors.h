// Device-memory copies of a test case's host buffers, so that one case description runs on the
// CPU or on a GPU unchanged. On the CPU every call is a no-op.
#pragma once

#include <cstddef>
#include <map>

#include "flashjit/tensor.h"

namespace flashjit::testing {

// True when a CUDA device is usable (driver loaded, at least one device).
bool cuda_device_available();

class DeviceMirrors {
 public:
  explicit DeviceMirrors(Device device);
  ~DeviceMirrors();
  DeviceMirrors(const DeviceMirrors&) = delete;
  DeviceMirrors& operator=(const DeviceMirrors&) = delete;

  // The pointer the kernel should see for `bytes` at `host`: the host pointer itself, or a device
  // copy (made once per host pointer).
  void* place(void* host, size_t bytes);
  // Waits for the device and copies `host` into its mirror again (no-op without one).
  void upload(void* host);
  // Waits for the device and copies the mirror of `host` back into it (no-op without one).
  void copy_back(void* host);

 private:
  Device device_;
  struct Mirror {
    void* device;
    size_t bytes;
  };
  std::map<void*, Mirror> mirrors_;
};

}  // namespace flashjit::testing
