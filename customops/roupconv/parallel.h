// Running a job's tasks on onnxruntime's intra-op thread pool (KernelContext_ParallelFor), shared
// by every op of the library. A task's exception must never reach the pool (it would terminate
// the process): the first one is kept and rethrown, as OpError, once all tasks have ended.
#pragma once

#include <atomic>
#include <exception>
#include <mutex>
#include <string>

#include <onnxruntime_cxx_api.h>

#include "common/kernel_info.h"

namespace axonnx::roupconv {

// The error state a job carries (derive from it).
struct TaskErrors {
  std::atomic<bool> failed{false};
  std::mutex mutex;
  std::string error;
};

// Runs (job->*Fn)(task); later tasks of a failed job return at once.
template <typename J, void (J::*Fn)(size_t)>
void RunGuardedTask(void* self, size_t task) {
  J* job = static_cast<J*>(self);
  if (job->failed.load(std::memory_order_relaxed)) return;
  try {
    (job->*Fn)(task);
  } catch (const std::exception& e) {
    std::lock_guard<std::mutex> lock(job->mutex);
    if (!job->failed.exchange(true)) job->error = e.what();
  }
}

// Runs tasks 0..tasks-1 of `job` (inline when there is one) and throws the first task error.
template <typename J, void (J::*Fn)(size_t) = &J::Task>
void RunTasks(const OrtApi& api, OrtKernelContext* context, J& job, size_t tasks) {
  if (tasks == 1) {
    RunGuardedTask<J, Fn>(&job, 0);
  } else {
    Ort::ThrowOnError(api.KernelContext_ParallelFor(context, &RunGuardedTask<J, Fn>, tasks, 0, &job));
  }
  if (job.failed) throw OpError(job.error);
}

}  // namespace axonnx::roupconv
