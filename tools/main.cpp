// The flashjit command line: demo (the main job), bench, cache.
#include <CLI/CLI.hpp>
#include <cstdio>

#include "tools/tool_common.h"

int main(int argc, char** argv) {
  CLI::App app{"flashjit: JIT-compiled FlashAttention forward kernels"};
  app.require_subcommand(1);
  app.add_subcommand("demo",
                     "JIT-compile prefill and decode kernels, run them, check them against the "
                     "float64 reference and report compile/load times and throughput");
  CLI::App* bench = app.add_subcommand("bench", "performance table beside the machine's ceilings");
  bool quick = false, load_probe = false;
  int threads = 0;
  bench->add_flag("--quick", quick, "smaller problems (a smoke run)");
  bench->add_option("--threads", threads, "threads (default: all cores)");
  bench->add_flag("--load-probe", load_probe, "internal: report cache-hit load times only")
      ->group("");
  std::vector<int> splits;
  bench
      ->add_option("--splits-sweep", splits,
                   "only the b1 s_k 32k decode, at each of these num_splits (0: heuristic), "
                   "interleaved")
      ->delimiter(',');
  std::vector<int> warm;
  bench
      ->add_option("--warm-decode", warm,
                   "only the b1 decode at each of these s_k, the same call repeated (warm caches)")
      ->delimiter(',');
  CLI::App* cache = app.add_subcommand("cache", "inspect or clear the kernel cache");
  std::string action = "info";
  cache->add_option("action", action, "info | list | clear")
      ->check(CLI::IsMember({"info", "list", "clear"}));
  CLI11_PARSE(app, argc, argv);
  try {
    if (app.got_subcommand("demo")) return flashjit::tools::run_demo();
    if (app.got_subcommand("bench") && !splits.empty())
      return flashjit::tools::run_splits_sweep(threads, splits);
    if (app.got_subcommand("bench") && !warm.empty())
      return flashjit::tools::run_warm_decode(threads, warm);
    if (app.got_subcommand("bench")) return flashjit::tools::run_bench(quick, threads, load_probe);
    return flashjit::tools::run_cache_command(action);
  } catch (const flashjit::Error& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
}
