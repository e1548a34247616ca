// The CPU kernels' names for the shared index math (templates/attention_math.h).
#pragma once

#include "flashjit/attention_math.h"
#include "flashjit/fwd_params.h"

namespace flashjit_cpu {

using flashjit_kernel::FwdParams;
using flashjit_kernel::KeyInterval;
using flashjit_kernel::kUnbounded;
using flashjit_kernel::Sequence;
using flashjit_kernel::sequence;
using flashjit_kernel::visible_keys;

}  // namespace flashjit_cpu
