// The GPU half of the demo (the CLI's `flashjit demo`, and flashjit_cuda_demo in GPU-only builds).
#pragma once

namespace flashjit::tools {

// Runs the demo's prefill and decode on CUDA device 0 and prints what happened; true when every
// check passed, or when there is no GPU (it says so and skips).
bool run_cuda_demo();

}  // namespace flashjit::tools
