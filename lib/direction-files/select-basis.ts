/**
 * From a loaded direction file to the orthonormal bases the kernels use: one global basis, or one per residual
 * stream for --per-layer and --biprojected.
 *
 * Residual streams are numbered like the rows of a `directions` file: stream 0 enters layer 0 (the embeddings
 * write it), stream i + 1 is layer i's output. A writer uses the direction of the stream it writes into, so in
 * per-layer mode the embedding uses row 0 and layer i's attention/MLP writers use row i + 1 — the convention of
 * heretic's per-layer abliteration (`refusal_directions[layer_index + 1]`), documented in docs/architectures.md.
 */
import { AbliterateError, ErrorCodes } from "../errors.js";
import type { DirectionFile } from "./direction-file.js";
import { orthonormalizeRows } from "./orthonormalize.js";
import { projectOutHarmless } from "./project-out-harmless.js";

export type HarmlessProjection = "projected" | "biprojected";

export interface DirectionBasis {
  /** k × d row-major, orthonormal rows, used by every writer; empty when `byStream` is set. */
  basis: Float64Array;
  rank: number;
  dimension: number;
  /** Per residual stream (index as above): the k × d basis of writers into that stream; undefined where absent. */
  byStream?: (Float64Array | undefined)[];
  /** Which rows of the file were used and how, for the report and for verify. */
  source: {
    kind: DirectionFile["kind"];
    directionLayer?: number;
    perLayer?: boolean;
    projection?: HarmlessProjection;
    /** For --projected: the harmless_mean row ĥ was taken from. */
    harmlessRow?: number;
  };
}

export interface SelectBasisParams {
  file: DirectionFile;
  hiddenSize: number;
  /** The model's layer count; needed for --per-layer and --biprojected, and to catch a file made for another depth. */
  numLayers?: number;
  /** Row of a `directions` [L+1, d] file. With --projected on a `direction`/`subspace` file: the harmless_mean row. */
  directionLayer?: number;
  /** Each writer uses the row of the stream it writes into. */
  perLayer?: boolean;
  projection?: HarmlessProjection;
}

const FLAG = { projected: "--projected", biprojected: "--biprojected" } as const;

function invalid(message: string, file: string): AbliterateError {
  return new AbliterateError(ErrorCodes.INVALID_ARGUMENT, message, { file });
}

export function selectBasis(params: SelectBasisParams): DirectionBasis {
  const { file, hiddenSize, numLayers, directionLayer, perLayer, projection } = params;
  if (file.dimension !== hiddenSize) {
    throw new AbliterateError(ErrorCodes.DIRECTION_DIMENSION, `direction has dimension ${file.dimension} but the model's hidden_size is ${hiddenSize}`, { file: file.path });
  }
  if (perLayer && directionLayer !== undefined) throw invalid("--per-layer uses every row of the file; drop --direction-layer", file.path);
  if ((perLayer || projection === "biprojected") && numLayers === undefined) {
    throw invalid(`${perLayer ? "--per-layer" : "--biprojected"} needs the model's layer count`, file.path);
  }
  const streams = numLayers === undefined ? undefined : numLayers + 1;

  let kind = file.kind;
  if (kind === "matrix") {
    if (perLayer || directionLayer !== undefined) kind = "directions";
    else if (streams !== undefined && file.rows.length === streams) {
      throw invalid(
        `holds an unnamed [${file.rows.length}, ${file.dimension}] array, which matches the model's L+1 = ${streams} residual streams: ` +
          `pass --direction-layer i (or --per-layer) to read it as per-layer candidates, or save it as "subspace" to use it as a rank-${file.rows.length} subspace`,
        file.path,
      );
    } else kind = "subspace";
  }
  if (kind === "directions" && streams !== undefined) {
    // A control vector may stop before the last layer; every other format must cover every stream.
    const fits = file.absentRows ? file.rows.length <= streams : file.rows.length === streams;
    if (!fits) {
      throw invalid(`"directions" has ${file.rows.length} rows but the model has ${numLayers} layers, so ${streams} residual streams`, file.path);
    }
  }
  const absent = (row: number) => row >= file.rows.length || (file.absentRows?.has(row) ?? false);
  const harmlessRows = file.harmlessMean;
  const harmlessFor = (stream: number, flag: string): { vector: Float64Array; row: number } => {
    if (!harmlessRows) throw invalid(`${flag} needs a "harmless_mean" tensor in the direction file (mean harmless activation per layer)`, file.path);
    if (harmlessRows.length === 1) return { vector: harmlessRows[0], row: 0 };
    if (stream >= harmlessRows.length || (streams !== undefined && harmlessRows.length !== streams)) {
      throw invalid(`"harmless_mean" has ${harmlessRows.length} rows; ${flag} needs one per residual stream (${streams ?? "L+1"}) or a single global one`, file.path);
    }
    return { vector: harmlessRows[stream], row: stream };
  };
  const unitBasis = (rows: Float64Array[], harmless?: { vector: Float64Array; row: number }) =>
    harmless ? projectOutHarmless({ rows, harmless: harmless.vector, file: file.path, label: `harmless_mean row ${harmless.row}` }) : orthonormalizeRows(rows, file.path);

  if (perLayer) {
    if (kind !== "directions") throw invalid(`--per-layer needs a "directions" [L+1, d] file (one row per residual stream); this file holds "${file.kind}"`, file.path);
    // An all-zero row (the two sets agree at that stream, e.g. the embeddings of one template token) defines no
    // direction: it is absent, an error only for a writer that would be edited with it.
    const byStream = Array.from({ length: streams! }, (_, stream) =>
      absent(stream) || file.rows[stream].every((v) => v === 0) ? undefined : unitBasis([file.rows[stream]], projection ? harmlessFor(stream, FLAG[projection]) : undefined),
    );
    return { basis: new Float64Array(0), rank: 1, dimension: hiddenSize, byStream, source: { kind, perLayer: true, ...(projection ? { projection } : {}) } };
  }

  let rows: Float64Array[];
  if (kind === "directions") {
    if (directionLayer === undefined) {
      throw invalid(`holds "directions" [${file.rows.length}, ${file.dimension}] (one candidate per layer); choose one with --direction-layer 0..${file.rows.length - 1} or use --per-layer`, file.path);
    }
    if (!Number.isInteger(directionLayer) || directionLayer < 0 || directionLayer >= file.rows.length) {
      throw invalid(`--direction-layer ${directionLayer} is out of range: "directions" has rows 0..${file.rows.length - 1}`, file.path);
    }
    if (absent(directionLayer)) {
      throw invalid(`row ${directionLayer} is absent from the file${file.format === "gguf" ? " (a llama.cpp control vector has no direction for the embeddings or for layer 0's output: direction.N is row N + 1)" : ""}`, file.path);
    }
    rows = [file.rows[directionLayer]];
  } else {
    if (directionLayer !== undefined && projection !== "projected") {
      throw invalid(`--direction-layer applies only to a "directions" [L+1, d] file (or, with --projected, picks the harmless_mean row); this file holds "${file.kind}"`, file.path);
    }
    rows = file.rows;
  }
  const rank = rows.length;
  const source: DirectionBasis["source"] = { kind, ...(directionLayer !== undefined ? { directionLayer } : {}), ...(projection ? { projection } : {}) };

  if (projection === "biprojected") {
    const byStream = Array.from({ length: streams! }, (_, stream) => unitBasis(rows, harmlessFor(stream, FLAG.biprojected)));
    return { basis: new Float64Array(0), rank, dimension: hiddenSize, byStream, source };
  }
  if (projection === "projected") {
    let harmlessRow: number;
    if (!harmlessRows || harmlessRows.length === 1) harmlessRow = 0;
    else if (directionLayer !== undefined) harmlessRow = directionLayer;
    else {
      throw invalid(
        `--projected takes ĥ at the direction's layer, but this "${file.kind}" file does not say which layer that is: pass --direction-layer i (it then selects harmless_mean row i)`,
        file.path,
      );
    }
    const harmless = harmlessFor(harmlessRow, FLAG.projected);
    return { basis: unitBasis(rows, harmless), rank, dimension: hiddenSize, source: { ...source, harmlessRow: harmless.row } };
  }
  return { basis: unitBasis(rows), rank, dimension: hiddenSize, source };
}
