#pragma once

#include "forward_job.h"
#include "mapped_files.h"

namespace abl {
namespace fwd {

/** Throws E_INVALID_JOB naming the first tensor or index that does not fit. */
void validate_forward_job(const ForwardJob& job, const MappedFiles& files);

}  // namespace fwd
}  // namespace abl
