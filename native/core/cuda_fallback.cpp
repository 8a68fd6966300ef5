// The CUDA entry points of a build without CUDA (ABLITERATE_CUDA=OFF): no devices, CPU only.
#include "projection_backend.h"

#if !defined(ABLITERATE_WITH_CUDA)
namespace abl {

int cuda_device_count() { return 0; }

std::unique_ptr<ProjectionBackend> make_cuda_backend_if_available() { return nullptr; }

}  // namespace abl
#endif
