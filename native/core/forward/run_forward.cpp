// A forward job from start to end: all prompts through the stack layer by layer (capturing the residual stream at
// the requested rows), logits, then greedy generation one token per prompt per step.
//
// Resident and layer-streamed runs execute the same arithmetic in the same order, so they give identical numbers;
// they differ only in memory: streamed hands each layer's weight pages back once all prompts are through it (and
// reads the next layer's ahead), and reads lm_head in slices it also hands back. A streamed generation does so for
// the prompt pass and again for every new token. Layers kept between jobs (kept_layers.h) are read by neither.
#include <algorithm>
#include <chrono>
#include <cstring>
#include <memory>

#include "../native_error.h"
#include "../thread_pool.h"
#include "forward_job.h"
#include "forward_validate.h"
#include "../large_mappings.h"
#include "logits_stats.h"
#include "mapped_files.h"
#include "shared_prefix.h"
#include "transformer_engine.h"

namespace abl {
namespace fwd {
namespace {

/** Rows of a prompt handled by one attention task: long prompts are split so both threads stay busy. */
constexpr uint32_t kAttentionRowChunk = 32;
/** lm_head bytes read per slice in streamed mode. */
constexpr uint64_t kHeadSliceBytes = 32ull << 20;

Batch prompt_batch(const ForwardJob& job) {
  Batch batch;
  batch.rows = job.tokens.size();
  batch.tokens = job.tokens;
  batch.positions.resize(batch.rows);
  batch.prompt_of_row.resize(batch.rows);
  size_t row = 0;
  for (uint32_t p = 0; p < job.prompt_lengths.size(); ++p) {
    const uint32_t length = job.prompt_lengths[p];
    batch.prompt_first_row.push_back(row);
    for (uint32_t i = 0; i < length; ++i) {
      batch.positions[row + i] = i;
      batch.prompt_of_row[row + i] = p;
    }
    for (uint32_t i = 0; i < length; i += kAttentionRowChunk) {
      batch.ranges.push_back(RowRange{static_cast<uint32_t>(row + i), static_cast<uint32_t>(row + std::min(length, i + kAttentionRowChunk)), p});
    }
    batch.max_context = std::max<size_t>(batch.max_context, length);
    row += length;
  }
  return batch;
}

void release(const MappedFiles& files, const TensorRef& ref) {
  if (ref.present) files.release(ref.file, ref.offset, ref.bytes());
}

/** Whether a layer matrix is stored [in, out] (GPT-2's Conv1D): staging copies those as stored, never as panels. */
bool has_transposed_layer_matrix(const ForwardJob& job) {
  for (const LayerWeights& w : job.layers) {
    for (const TensorRef* ref : {&w.q, &w.k, &w.v, &w.qkv, &w.o, &w.gate, &w.up, &w.gate_up, &w.down, &w.shared_gate, &w.shared_up, &w.shared_down}) {
      if (ref->present && ref->transposed) return true;
    }
  }
  return false;
}

uint32_t argmax(const float* values, size_t count) {
  size_t best = 0;
  for (size_t i = 1; i < count; ++i) {
    if (values[i] > values[best]) best = i;
  }
  return static_cast<uint32_t>(best);
}

}  // namespace

ForwardResult run_forward(const ForwardJob& job, const ForwardProgress& progress) {
  // Declared first, so it runs last, after every buffer and mapping of this job went back: the process then keeps
  // what this job used for the next one, and nothing older (large_mappings.h, mapped_files.h).
  struct KeepOnlyThisJobs {
    KeepThisJobsMappings buffers;  // a member: it trims after the destructor's body has trimmed the file mappings
    uint64_t reused_buffers_before = large_bytes_reused();
    uint64_t file_job = next_file_job();
    ~KeepOnlyThisJobs() { trim_file_mappings(file_job); }
  } keep_only_this_jobs;
  const auto start = std::chrono::steady_clock::now();
  MappedFiles files(job.files, keep_only_this_jobs.file_job);
  validate_forward_job(job, files);
  ThreadPool pool(job.threads, /*spin=*/true);
  const ForwardKernels& kernels = forward_kernels_for(job.compute);
  const ModelSpec& spec = job.spec;
  const size_t d = spec.hidden_size;
  const size_t layers = spec.num_layers;
  const size_t vocab = spec.vocab_size;
  const bool streamed = job.mode == Mode::Streamed;
  if (streamed) files.release_reused();
  const bool generate = job.max_new_tokens > 0;
  const size_t prompts = job.prompt_lengths.size();
  const size_t longest = *std::max_element(job.prompt_lengths.begin(), job.prompt_lengths.end());
  // Tokens a prompt shares with an earlier one take that prompt's keys and values through the KV cache.
  const bool sharing = std::any_of(job.prefix_length.begin(), job.prefix_length.end(), [](uint32_t n) { return n > 0; });
  std::unique_ptr<PrefixSharing> shared = sharing ? std::make_unique<PrefixSharing>(job, d) : nullptr;
  const uint32_t first_layer = job.start_layer;
  if (first_layer > 0) {
    // Resuming needs every row's stream and no KV of the layers skipped: no generation. A shared prefix resumes too:
    // its rows' stream is prompt 0's, and its keys and values are computed from the resumed layer on.
    if (first_layer > layers || job.start_hidden.size() != job.tokens.size() * d || generate) {
      throw_invalid_job("resume needs 0 < layer <= num_layers, a [tokens, hidden] stream and no generation");
    }
  }
  // A run may keep its layers for the next job (a streamed one those that fit what its budget leaves beside the
  // pass), except a resident generation whose layers hold transposed matrices: it packs those for the job next to
  // the kept copy, twice their bytes, past the resident estimate. A run that does not keep frees kept ones before
  // it allocates.
  const bool keep = job.keep_layers_bytes > 0 && !(generate && !streamed && has_transposed_layer_matrix(job));
  KeptLayers kept(files, &kernels, keep ? job.keep_layers_bytes : 0);
  TransformerEngine engine(job, files, pool, kernels, generate || shared, longest + job.max_new_tokens, keep ? &kept : nullptr);

  ForwardResult result;
  result.kernels = kernels.name;
  const Batch batch = prompt_batch(job);
  LargeVector<float> x(batch.rows * d);
  // The rows that go through the stack: every row, or with shared prefixes each prompt's own (scattered into x
  // where a capture or the head reads it).
  const Batch& run = shared ? shared->own() : batch;
  float* rows = shared ? shared->own_rows() : x.data();
  result.hidden.assign(job.capture_rows.size() * (layers + 1) * d, 0.0f);
  const auto capture = [&](size_t point) {
    if (job.capture_rows.empty()) return;
    if (shared) shared->scatter(x.data());
    for (size_t c = 0; c < job.capture_rows.size(); ++c) {
      std::memcpy(&result.hidden[(c * (layers + 1) + point) * d], &x[size_t(job.capture_rows[c]) * d], d * sizeof(float));
    }
  };
  // The addition lands on the stream before it is captured, so hidden[point] shows it, as a hook would.
  const auto add_at = [&](const ForwardEdit& edit, uint32_t point, float* rows, size_t count) {
    if (!edit.add || edit.addition.point != point) return;
    const float* v = edit.addition.vector.data();
    for (size_t r = 0; r < count; ++r) {
      float* row = rows + r * d;
      for (size_t i = 0; i < d; ++i) row[i] += v[i];
    }
  };
  const auto report = [&](uint32_t done) {
    if (progress) progress(done, static_cast<uint32_t>(layers + 1));
  };

  // The rows each edit runs: the job's own, then each of its wave's (ForwardJob::wave), whose rows start from the
  // embedding (a wave does not resume) and go through every layer right after the job's own edit's.
  struct WaveLane {
    const ForwardEdit* edit;
    LargeVector<float> x;     // [batch rows, d]: the concatenated prompts' stream
    LargeVector<float> own;   // with shared prefixes, the rows that run
    float* rows;
  };
  std::vector<WaveLane> wave(job.wave.size());
  for (size_t e = 0; e < wave.size(); ++e) {
    WaveLane& lane = wave[e];
    lane.edit = &job.wave[e];
    lane.x.resize(batch.rows * d);
    if (shared) lane.own.resize(run.rows * d);
    lane.rows = shared ? lane.own.data() : lane.x.data();
  }
  const auto for_each_wave_edit = [&](const auto& body) {
    for (WaveLane& lane : wave) {
      engine.use_edit(*lane.edit);
      body(lane);
    }
    engine.use_edit(job.edit);
  };

  if (first_layer > 0) {
    // A shared prefix resumes too: its rows' stream is its source's, and its keys and values are computed from
    // the resumed layer on.
    std::copy(job.start_hidden.begin(), job.start_hidden.end(), x.begin());
    if (shared) shared->gather(x.data());
  } else {
    engine.embed(run, rows);
  }
  add_at(job.edit, first_layer, rows, run.rows);
  for_each_wave_edit([&](WaveLane& lane) {
    engine.embed(run, lane.rows);
    add_at(*lane.edit, 0, lane.rows, run.rows);
  });
  if (streamed) {
    release(files, job.embed);
    release(files, job.position_embed);
  }
  // Streamed, a layer's pages go back once every row is through it, and the next layer is read ahead meanwhile.
  const auto read_ahead = [&](uint32_t l) {
    if (!streamed || l + 1 >= layers) return;
    for (const TensorRef* ref : engine.read_ahead_tensors(l + 1)) files.prefetch(ref->file, ref->offset, ref->bytes());
  };
  const auto hand_back = [&](uint32_t l) {
    if (!streamed) return;
    for (const TensorRef* ref : engine.layer_tensors(l)) release(files, *ref);
  };
  capture(first_layer);
  for (uint32_t l = first_layer; l < layers; ++l) {
    read_ahead(l);
    engine.stage_layer(l);  // the prompt pass reads the layer from a copy on huge pages (staged_weights.h)
    engine.layer(l, run, rows);
    add_at(job.edit, l + 1, rows, run.rows);
    for_each_wave_edit([&](WaveLane& lane) {
      engine.layer(l, run, lane.rows);
      add_at(*lane.edit, l + 1, lane.rows, run.rows);
    });
    capture(l + 1);
    hand_back(l);
    report(l + 1);
  }
  if (shared && job.capture_rows.empty()) shared->scatter(x.data());  // a capture has scattered it already
  if (shared) {
    for (WaveLane& lane : wave) shared->scatter(lane.own.data(), lane.x.data());
  }

  engine.unstage();
  // Logits for the requested rows, then for each prompt's last row when generating.
  std::vector<uint32_t> head_rows = job.logits_rows;
  if (generate) {
    size_t row = 0;
    for (uint32_t length : job.prompt_lengths) {
      row += length;
      head_rows.push_back(static_cast<uint32_t>(row - 1));
    }
  }
  LargeVector<float> head_logits;
  // The head for several streams at once (the job's own rows and its wave's): each lm_head slice is read once for
  // all of them, and each stream's rows are multiplied as a job of its own would.
  const auto run_heads = [&](const std::vector<const float*>& sources, const std::vector<uint32_t>& rows,
                             const std::vector<LargeVector<float>*>& outputs) {
    std::vector<std::vector<float>> normed(sources.size());
    for (size_t i = 0; i < sources.size(); ++i) {
      normed[i].resize(rows.size() * d);
      engine.final_norm(sources[i], rows, normed[i].data());
      outputs[i]->assign(rows.size() * vocab, 0.0f);
    }
    const uint64_t row_bytes = uint64_t(d) * dtype_size(job.lm_head.dtype);
    const size_t slice = streamed ? std::max<size_t>(16, kHeadSliceBytes / row_bytes) : vocab;
    for (size_t v = 0; v < vocab; v += slice) {
      const size_t v_end = std::min(vocab, v + slice);
      for (size_t i = 0; i < sources.size(); ++i) engine.logits(normed[i].data(), rows.size(), v, v_end, outputs[i]->data(), vocab);
      if (streamed) files.release(job.lm_head.file, job.lm_head.offset + v * row_bytes, (v_end - v) * row_bytes);
    }
  };
  const auto run_head = [&](const float* source, const std::vector<uint32_t>& rows) { run_heads({source}, rows, {&head_logits}); };
  std::vector<LargeVector<float>> wave_logits(wave.size());
  if (!head_rows.empty()) {
    std::vector<const float*> sources{x.data()};
    std::vector<LargeVector<float>*> outputs{&head_logits};
    for (size_t e = 0; e < wave.size(); ++e) {
      sources.push_back(wave[e].x.data());
      outputs.push_back(&wave_logits[e]);
    }
    run_heads(sources, head_rows, outputs);
  }
  // Without generation the head ran exactly the requested rows: hand its buffer over instead of copying it.
  if (generate) result.logits.assign(head_logits.begin(), head_logits.begin() + job.logits_rows.size() * vocab);
  else result.logits = std::move(head_logits);
  // Statistics, picks and the whole rows asked for, out of one edit's logits rows.
  const auto read_logits = [&](LargeVector<float>& logits, std::vector<float>& picked, std::vector<uint32_t>& argmax_of,
                               std::vector<double>& logz) {
    if (job.logits_stats) {
      const size_t rows = job.logits_rows.size();
      argmax_of.resize(rows);
      logz.resize(rows);
      logits_row_stats(kernels, pool, logits.data(), rows, vocab, argmax_of.data(), logz.data());
    }
    picked.resize(job.pick_rows.size());
    for (size_t i = 0; i < job.pick_rows.size(); ++i) {
      picked[i] = logits[size_t(job.pick_rows[i]) * vocab + static_cast<size_t>(job.pick_tokens[i])];
    }
    if (job.whole_subset) {
      LargeVector<float> whole(job.whole_rows.size() * vocab);
      for (size_t i = 0; i < job.whole_rows.size(); ++i) {
        std::memcpy(&whole[i * vocab], &logits[size_t(job.whole_rows[i]) * vocab], vocab * sizeof(float));
      }
      logits = std::move(whole);
    }
  };
  result.has_logits_stats = job.logits_stats;
  read_logits(result.logits, result.picked_logits, result.logits_argmax, result.logits_logz);
  result.wave.resize(wave.size());
  for (size_t e = 0; e < wave.size(); ++e) {
    ForwardResult::WaveOutput& out = result.wave[e];
    out.logits = std::move(wave_logits[e]);
    read_logits(out.logits, out.picked_logits, out.logits_argmax, out.logits_logz);
  }

  if (generate) {
    std::vector<uint32_t> next(prompts);
    for (size_t p = 0; p < prompts; ++p) next[p] = argmax(&head_logits[(job.logits_rows.size() + p) * vocab], vocab);
    result.generated.assign(prompts, {});
    std::vector<bool> finished(prompts, false);
    for (uint32_t step = 0; step < job.max_new_tokens; ++step) {
      Batch decode;
      for (uint32_t p = 0; p < prompts; ++p) {
        if (finished[p]) continue;
        result.generated[p].push_back(static_cast<int32_t>(next[p]));
        if (std::find(job.eos_ids.begin(), job.eos_ids.end(), static_cast<int32_t>(next[p])) != job.eos_ids.end()) {
          finished[p] = true;
          continue;
        }
        const uint32_t row = static_cast<uint32_t>(decode.rows++);
        decode.tokens.push_back(static_cast<int32_t>(next[p]));
        decode.positions.push_back(job.prompt_lengths[p] + step);
        decode.prompt_of_row.push_back(p);
        decode.ranges.push_back(RowRange{row, row + 1, p});
        decode.max_context = std::max<size_t>(decode.max_context, job.prompt_lengths[p] + step + 1);
      }
      if (step + 1 == job.max_new_tokens || decode.rows == 0) break;
      std::vector<float> y(decode.rows * d);
      engine.embed(decode, y.data());
      add_at(job.edit, 0, y.data(), decode.rows);
      for (uint32_t l = 0; l < layers; ++l) {
        // Streamed, every step reads each layer again as the prompt pass did (its keys and values stay in the
        // cache): one read of the model per new token for all prompts together, and one layer held at a time.
        if (streamed) {
          read_ahead(l);
          engine.stage_layer(l);
        }
        engine.layer(l, decode, y.data());
        add_at(job.edit, l + 1, y.data(), decode.rows);
        hand_back(l);
      }
      if (streamed) engine.unstage();
      std::vector<uint32_t> rows(decode.rows);
      for (uint32_t i = 0; i < decode.rows; ++i) rows[i] = i;
      run_head(y.data(), rows);
      for (size_t i = 0; i < decode.rows; ++i) next[decode.prompt_of_row[i]] = argmax(&head_logits[i * vocab], vocab);
    }
  }
  report(static_cast<uint32_t>(layers + 1));
  result.packed_bytes = engine.packed_bytes(false);
  result.reused_packed_bytes = engine.packed_bytes(true);
  result.reused_buffer_bytes = large_bytes_reused() - keep_only_this_jobs.reused_buffers_before;
  result.reused_mapped_bytes = files.reused_bytes();
  result.staged_bytes = engine.staged_bytes();
  result.kept_bytes = kept.found_bytes();
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

}  // namespace fwd
}  // namespace abl
