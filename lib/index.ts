/** The library surface: everything the CLI does is available programmatically, and none of it prints. */
export { AbliterateError, ErrorCodes, isAbliterateError, type ErrorCode } from "./errors.js";
export { applyModel, type ApplyModelParams, type ApplyReport } from "./surgery/apply-model.js";
export { verifyModel, type VerifyModelParams, type VerifyReport } from "./surgery/verify-model.js";
export { inspectModel, type InspectReport } from "./surgery/inspect-model.js";
export { planSurgery, type SurgeryPlan, type PlannedTensor, type SurgeryOptions } from "./surgery/plan-surgery.js";
export type { SurgeryEvent } from "./surgery/events.js";
export { loadDirectionFile, type DirectionFile } from "./direction-files/load-direction.js";
export { selectBasis, type DirectionBasis } from "./direction-files/select-basis.js";
export { FAMILIES, supportedModelTypes, type TargetKind, type Orientation } from "./arch/families.js";
export { TOOL_VERSION } from "./version.js";
