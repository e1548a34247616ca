// AttentionPlan: a prepared call kept for relaunching. Making the plan resolves and loads the
// kernel; run() re-resolves the new arguments on the host (pure arithmetic on shapes, no driver
// calls that synchronize) and launches only if they resolve to the same call.
#include <fmt/format.h>

#include "flashjit/flashjit.h"
#include "runtime/api_common.h"
#include "runtime/attention_problem.h"
#if FLASHJIT_HAVE_CUDA
#include "runtime/cuda_context.h"
#endif

namespace flashjit {

struct AttentionPlanState {
  PreparedCall call;
};

namespace {

std::string describe(const PreparedCall& c) {
  if (c.kind == PreparedCall::Kind::kNothing) return "no work";
  if (c.kind == PreparedCall::Kind::kEmptyKeys) return "an empty key set";
  const CudaGrid& g = c.cuda.fwd;
  return c.on_cuda ? fmt::format("kernel {} on cuda:{}, grid ({}, {}, {}), {} splits", c.key.name(),
                                 c.device, g.x, g.y, g.z, c.params.num_splits)
                   : fmt::format("kernel {}, {} work items, {} splits", c.key.name(),
                                 c.cpu.fwd_items, c.params.num_splits);
}

bool same_launch(const PreparedCall& a, const PreparedCall& b) {
  auto grid = [](const CudaGrid& x, const CudaGrid& y) {
    return x.x == y.x && x.y == y.y && x.z == y.z;
  };
  return a.kind == b.kind && a.on_cuda == b.on_cuda && a.device == b.device && a.key == b.key &&
         grid(a.cuda.fwd, b.cuda.fwd) && grid(a.cuda.append, b.cuda.append) &&
         grid(a.cuda.combine, b.cuda.combine) && a.cpu.fwd_items == b.cpu.fwd_items &&
         a.cpu.append_items == b.cpu.append_items && a.cpu.combine_items == b.cpu.combine_items &&
         a.params.num_splits == b.params.num_splits && a.workspace_bytes == b.workspace_bytes;
}

std::shared_ptr<const AttentionPlanState> make_state(const AttentionProblem& p) {
#if FLASHJIT_HAVE_CUDA
  const CudaCallContext context(p.q.device, p.options.stream);
#endif
  auto state = std::make_shared<AttentionPlanState>();
  state->call = prepare_attention(p);
  load_prepared(state->call, p.options.stream);
  return state;
}

void run_planned(const PreparedCall& planned, const AttentionProblem& p, void* workspace) {
#if FLASHJIT_HAVE_CUDA
  const CudaCallContext context(p.q.device, p.options.stream);
#endif
  const PreparedCall call = prepare_attention(p);
  FLASHJIT_CHECK(same_launch(planned, call))
      << "args: expected a call with the shapes and flags the plan was made for ("
      << describe(planned) << "), got one that resolves to " << describe(call);
  launch_prepared(p, call, workspace);
}

}  // namespace

AttentionPlan::AttentionPlan(const KvcacheArgs& args) : state_(make_state(kvcache_problem(args))) {}
AttentionPlan::AttentionPlan(const VarlenArgs& args) : state_(make_state(varlen_problem(args))) {}

size_t AttentionPlan::workspace_bytes() const { return state_->call.workspace_bytes; }
int AttentionPlan::num_splits() const {
  return state_->call.kind == PreparedCall::Kind::kKernel ? state_->call.params.num_splits : 1;
}
std::string AttentionPlan::kernel_name() const {
  return state_->call.kind == PreparedCall::Kind::kKernel ? state_->call.key.name() : "";
}

void AttentionPlan::run(const KvcacheArgs& args, void* workspace) const {
  run_planned(state_->call, kvcache_problem(args), workspace);
}
void AttentionPlan::run(const VarlenArgs& args, void* workspace) const {
  run_planned(state_->call, varlen_problem(args), workspace);
}

}  // namespace flashjit
