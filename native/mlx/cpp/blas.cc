// Finds cblas functions through libmlx's handle, so that the lookup sees its dependencies.
#include "mlx/cpp/blas.h"

#include <dlfcn.h>

#include <initializer_list>

namespace qwen3_mlx {
namespace {

void* find(const char* symbol) {
  for (const char* name : {"libmlx.so", "libmlx.dylib"}) {
    if (void* handle = dlopen(name, RTLD_LAZY | RTLD_NOLOAD)) {
      void* sym = dlsym(handle, symbol);
      dlclose(handle);
      if (sym) return sym;
    }
  }
  return dlsym(RTLD_DEFAULT, symbol);
}

}  // namespace

Sgemv blas_sgemv() {
  static const auto found = reinterpret_cast<Sgemv>(find("cblas_sgemv"));
  return found;
}

Sgemm blas_sgemm() {
  static const auto found = reinterpret_cast<Sgemm>(find("cblas_sgemm"));
  return found;
}

}  // namespace qwen3_mlx
