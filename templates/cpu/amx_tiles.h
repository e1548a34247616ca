// AMX tile helpers for the bf16 CPU kernels: the tile configuration (8 tiles of 16 rows x 64
// bytes) and thin wrappers over clang's AMX builtins. Tile numbers must be constants, hence macros.
#pragma once

namespace flashjit_cpu {

#if defined(__AMX_BF16__) && defined(__AMX_TILE__)
#define FLASHJIT_HAVE_AMX 1

struct alignas(64) AmxTileConfig {
  unsigned char palette_id;
  unsigned char start_row;
  unsigned char reserved[14];
  unsigned short colsb[16];
  unsigned char rows[16];
};

// Every thread configures its tiles before its first AMX instruction (the OS grants the AMX state
// per process, see runtime/cpu_backend.cpp) and releases them when it leaves the kernel.
inline void amx_configure() {
  AmxTileConfig cfg = {};
  cfg.palette_id = 1;
  for (int t = 0; t < 8; ++t) {
    cfg.colsb[t] = 64;
    cfg.rows[t] = 16;
  }
  __builtin_ia32_tile_loadconfig(&cfg);
}
inline void amx_release() { __builtin_ia32_tilerelease(); }

#define FJ_TILE_LOAD(t, ptr, stride_bytes) \
  __builtin_ia32_tileloadd64((t), (const void*)(ptr), (__SIZE_TYPE__)(stride_bytes))
#define FJ_TILE_STORE(t, ptr, stride_bytes) \
  __builtin_ia32_tilestored64((t), (void*)(ptr), (__SIZE_TYPE__)(stride_bytes))
#define FJ_TILE_ZERO(t) __builtin_ia32_tilezero((t))
#define FJ_TILE_DP(c, a, b) __builtin_ia32_tdpbf16ps((c), (a), (b))

#else
#define FLASHJIT_HAVE_AMX 0
inline void amx_configure() {}
inline void amx_release() {}
#endif

}  // namespace flashjit_cpu
