/**
 * Runs many CLI invocations through main() in one child process (a process per invocation costs ~0.35 s of
 * start-up on two cores): each job has its argument list and working directory; each result is the exit status
 * and what main() printed. The child is this same file, started with ABL_MAIN_BATCH=<jobs.json>.
 */
import { spawnSync } from "node:child_process";
import { appendFileSync, existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

export interface MainJob {
  args: string[];
  cwd: string;
}

export interface MainResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

export function runMainBatch(jobs: MainJob[], options: { workDir: string; env?: NodeJS.ProcessEnv; timeoutMs?: number }): { results: MainResult[]; childStderr: string } {
  const jobsPath = join(options.workDir, "main-batch-jobs.json");
  writeFileSync(jobsPath, JSON.stringify(jobs));
  const child = spawnSync(process.execPath, [fileURLToPath(import.meta.url)], {
    env: { ...process.env, ...options.env, ABL_MAIN_BATCH: jobsPath },
    encoding: "utf8",
    timeout: options.timeoutMs ?? 180_000,
  });
  const resultsPath = `${jobsPath}.results`;
  const results = existsSync(resultsPath)
    ? readFileSync(resultsPath, "utf8").trim().split("\n").filter(Boolean).map((line) => JSON.parse(line) as MainResult)
    : [];
  return { results, childStderr: `status ${child.status} signal ${child.signal}\n${child.stderr}` };
}

async function childMain(jobsPath: string): Promise<void> {
  const { main } = await import("../../lib/cli/main.js");
  const jobs = JSON.parse(readFileSync(jobsPath, "utf8")) as MainJob[];
  const stdoutWrite = process.stdout.write.bind(process.stdout);
  const stderrWrite = process.stderr.write.bind(process.stderr);
  for (const job of jobs) {
    let stdout = "";
    let stderr = "";
    process.chdir(job.cwd);
    process.stdout.write = ((chunk: string | Uint8Array) => ((stdout += String(chunk)), true)) as typeof process.stdout.write;
    process.stderr.write = ((chunk: string | Uint8Array) => ((stderr += String(chunk)), true)) as typeof process.stderr.write;
    let status: number | null = null;
    try {
      status = await main(job.args);
    } catch (error) {
      stderr += `main() threw: ${String(error)}`;
    } finally {
      process.stdout.write = stdoutWrite;
      process.stderr.write = stderrWrite;
    }
    appendFileSync(`${jobsPath}.results`, `${JSON.stringify({ status, stdout, stderr })}\n`);
  }
  process.exit(0);
}

if (process.env.ABL_MAIN_BATCH && process.argv[1] === fileURLToPath(import.meta.url)) await childMain(process.env.ABL_MAIN_BATCH);
