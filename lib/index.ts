/**
 * The library surface: everything the CLI does is available programmatically, and none of it prints. Long
 * operations are async generators of typed events that return their result (`resultOf` runs one to its end when
 * the events do not matter).
 */
export { AbliterateError, ErrorCodes, isAbliterateError, type ErrorCode } from "./errors.js";
export { resultOf } from "./event-channel.js";
export { TOOL_VERSION } from "./version.js";

// The one command, and `abliterate direction`.
export { runPipeline, type RunPipelineParams, type PipelineResult } from "./pipeline/run-pipeline.js";
export { findDirections, type FindDirectionsParams, type FoundDirections } from "./pipeline/find-directions.js";
export type { PipelineEvent, StageName } from "./pipeline/events.js";

// Surgery: plan, apply, verify, inspect.
export { applyModel, type ApplyModelParams, type ApplyReport } from "./surgery/apply-model.js";
export { verifyModel, type VerifyModelParams, type VerifyReport } from "./surgery/verify-model.js";
export { inspectModel, type InspectReport } from "./surgery/inspect-model.js";
export { planSurgery, type SurgeryPlan, type PlannedTensor, type SurgeryOptions } from "./surgery/plan-surgery.js";
export type { SurgeryEvent } from "./surgery/events.js";
export { readProvenance, PROVENANCE_FILE, type Provenance, type ModelSource } from "./provenance/provenance.js";

// The Hub: resolve a MODEL argument (downloading into the shared cache), download, push.
export { resolveModelDir, type ResolveModelDirParams, type ResolvedModel } from "./hub/resolve-model-dir.js";
export { downloadModel, type DownloadModelParams, type DownloadEvent, type DownloadResult } from "./hub/download-model.js";
export { pushModel, type PushModelParams, type UploadEvent, type PushResult } from "./hub/push-model.js";

// The forward engine: activations, and the passes the pipeline is built from.
export { collectActivations, writeActivationsFile, type CollectActivationsParams, type CollectedActivations } from "./engine/collect-activations.js";
export { loadForwardModel, type ForwardModel } from "./engine/load-forward-model.js";
export {
  runForward,
  forwardModeOf,
  type ForwardRequest,
  type ForwardOutput,
  type ForwardEdit,
  type WaveOutput,
  type ForwardAblation,
  type AblationStrengths,
  type ForwardAddition,
  type LogitsRequest,
} from "./engine/run-forward.js";
export { residualStreamAt } from "./engine/residual-stream-at.js";
export { releaseKeptWeights } from "./engine/release-kept-weights.js";

// Direction files.
export { loadDirectionFile, type DirectionFile } from "./direction-files/load-direction.js";
export { selectBasis, type DirectionBasis } from "./direction-files/select-basis.js";
export { readDirectionCandidates, writeDirectionCandidates, type DirectionCandidates } from "./direction-files/write-direction-candidates.js";

// Families.
export { FAMILIES, supportedModelTypes, forwardModelTypes, type TargetKind, type Orientation } from "./arch/families.js";

// Output rules every command follows (single files and folders never overlap their inputs).
export { writeOutputFile, checkOutputFile, type WriteOutputFileParams } from "./fs/write-output-file.js";
export { refuseOutputOverlap, type OutputInput } from "./fs/refuse-output-overlap.js";
