// The CUDA context a call runs in. A thread may call flashjit with tensors of any device while
// another device's context is current (as PyTorch leaves it): the call's work must still go to
// the device of its tensors, and the caller's context must be current again afterwards.
#pragma once

#include "flashjit/tensor.h"

namespace flashjit {

// Holds the context of a call current while it lives: the context of `stream` when that is a
// created stream, else the thread's current context when it belongs to `device`, else the primary
// context of `device`. A context it pushed is popped again; a thread that had none keeps the
// primary context, as the CUDA runtime would leave it. Nothing for CPU devices. Usage errors: a
// device index the machine does not have, a stream of another device (both named).
class CudaCallContext {
 public:
  CudaCallContext(const Device& device, void* stream);
  ~CudaCallContext();
  CudaCallContext(const CudaCallContext&) = delete;
  CudaCallContext& operator=(const CudaCallContext&) = delete;

 private:
  bool pushed_ = false;
};

}  // namespace flashjit
