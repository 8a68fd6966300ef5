export { SAFETENSORS_DTYPES, dtypeBits, dtypeAlignmentRank, isSafetensorsDtype, type SafetensorsDtype } from "./dtypes.js";
export type { SafetensorsHeader, SafetensorsTensorInfo, SerializableTensor } from "./types.js";
export { MAX_HEADER_LENGTH } from "./header-length.js";
export { parseSafetensorsHeader, type ParseSafetensorsHeaderParams } from "./parse-header.js";
export { readSafetensorsHeader } from "./read-header.js";
export { readTensorBytes, MAX_TENSOR_READ_BYTES } from "./read-tensor-bytes.js";
export { serializeSafetensors, safetensorsParts, writeSafetensorsFile, type SerializeSafetensorsParams } from "./serialize-safetensors.js";
export { sortLikeSafetensorsWriter } from "./sort-like-safetensors-writer.js";
export { parseCheckpointIndex, type CheckpointIndex } from "./parse-checkpoint-index.js";
export {
  readCheckpoint,
  INDEX_FILE_NAME,
  SINGLE_FILE_NAME,
  type Checkpoint,
  type TensorLocation,
} from "./read-checkpoint.js";
export { parseStrictJson, JsonNumber, isJsonObject, type JsonValue, type JsonObject } from "./parse-strict-json.js";
