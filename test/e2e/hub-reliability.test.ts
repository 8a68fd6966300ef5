/**
 * Reliability II (issue 17), the Hub cases, through the built CLI: each case names the command, its exit code,
 * its message, and the files on disk (or on the Hub) before and after.
 *  6. push skips links out of the folder, dangling links, link loops, links to folders and dot-entries, with a
 *     message each, instead of uploading /etc/passwd or crashing;
 *  7. HF_ENDPOINT with credentials is refused once, clearly, without the token and without retries;
 * 12. a 300-character revision is a clear INVALID_ARGUMENT, not ENAMETOOLONG, and writes nothing;
 * 15. a Hub that never sends headers is said to be waited for and given up on after the header timeout;
 * 19. `push DIR me/x.git` and `--branch ""` are refused before anything is sent.
 */
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdirSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { runCli } from "../helpers/run-cli.js";
import { writeTinyLlama } from "../helpers/tiny-llama.js";
import { startHubEmulator } from "../hub-emulator/hub-emulator.js";
import { filesUnder, hubEnv, leaksSecret, publishFolder, scratch } from "../hub-emulator/test-fixtures.js";

const TOKEN = "hf_Reliability0123456789abcdef";
const hub = await startHubEmulator();
hub.addToken(TOKEN, { user: "me" });
const { root, cleanup } = scratch("abl-hub-rel-");
after(async () => {
  await hub.close();
  cleanup();
});
const model = join(root, "model");
writeTinyLlama({ dir: model, dtype: "F32", tied: true, hidden: 16, shards: 1 });
publishFolder(hub, "org/tiny", model);
const env = hubEnv(hub, root, { HF_TOKEN: TOKEN, ABLITERATE_RETRY_BASE_MS: "1" });

test("6. push uploads only regular files inside the folder; links out, dangling, looping or to folders, and dotfiles are skipped with a message", async () => {
  const dir = join(root, "hostile");
  mkdirSync(dir);
  writeFileSync(join(dir, "config.json"), "{}");
  writeFileSync(join(dir, ".env"), "SECRET=1");
  mkdirSync(join(dir, ".git"));
  writeFileSync(join(dir, ".git", "config"), "[core]");
  symlinkSync("/etc/passwd", join(dir, "passwd"));
  symlinkSync(join(root, "nowhere"), join(dir, "dangling"));
  symlinkSync(join(dir, "loop-b"), join(dir, "loop-a"));
  symlinkSync(join(dir, "loop-a"), join(dir, "loop-b"));
  symlinkSync(model, join(dir, "folder-link"));
  symlinkSync(join(dir, "config.json"), join(dir, "inside-link.json"));
  const before = filesUnder(join(root, "model"));
  const run = await runCli(["push", dir, "me/hostile"], { env });
  assert.equal(run.status, 0, run.stderr);
  for (const name of ["passwd", "dangling", "loop-a", "loop-b", "folder-link", ".env", ".git"]) assert.match(run.stderr, new RegExp(`skipped ${name.replace(".", "\\.")}: `), name);
  assert.doesNotMatch(run.stderr, /internal error/);
  assert.deepEqual([...hub.files("me/hostile").keys()].sort(), [".gitattributes", "README.md", "config.json", "inside-link.json"]);
  assert.deepEqual(filesUnder(join(root, "model")), before, "nothing on disk changed");
});

test("7. HF_ENDPOINT with credentials is refused once, clearly, and the token is never printed", async () => {
  const url = new URL(hub.url);
  const since = hub.requests.length;
  const run = await runCli(["inspect", "org/tiny"], { env: { ...env, HF_ENDPOINT: `http://user:${TOKEN}@${url.host}` } });
  assert.equal(run.status, 1, run.stderr);
  assert.match(run.stderr, /error \[INVALID_ARGUMENT\]: HF_ENDPOINT carries credentials/);
  assert.doesNotMatch(run.stderr, /retrying/);
  assert.equal(leaksSecret(run.stderr + run.stdout, TOKEN), false, run.stderr);
  assert.equal(hub.requests.length, since, "nothing was sent");
});

test("12. a 300-character revision is a clear INVALID_ARGUMENT, not ENAMETOOLONG, and nothing is written to the cache", async () => {
  const run = await runCli(["inspect", `org/tiny@${"r".repeat(300)}`], { env });
  assert.equal(run.status, 1, run.stderr);
  assert.match(run.stderr, /error \[INVALID_ARGUMENT\]: the revision "r{200}…" cannot be used: a part of it is 300 bytes long/);
  assert.doesNotMatch(run.stderr, /ENAMETOOLONG|internal error/);
  assert.equal(existsSync(join(root, "hub-cache", "models--org--tiny", "refs")), false);
});

test("15. a Hub that never sends headers is said to be waited for, and given up on after the header timeout", async () => {
  const fault = hub.injectFault({ pathMatches: "/api/models/org/tiny", hang: true, times: 1000 });
  try {
    const started = Date.now();
    const run = await runCli(["inspect", "org/tiny"], { env: { ...env, ABLITERATE_HEADERS_TIMEOUT_MS: "400", HF_HUB_CACHE: join(root, "empty-cache") } });
    assert.equal(run.status, 1, run.stderr);
    assert.match(run.stderr, /waiting for the Hub to answer http:\/\/127\.0\.0\.1:\d+\/api\/models\/org\/tiny/);
    assert.match(run.stderr, /error \[HUB\]: cannot reach the Hub at .* \(no response headers within 0\.4 s\)/);
    assert.ok(Date.now() - started < 60_000, "well under Node's 300 s");
    assert.ok(fault.fired >= 2, "the stalled request was retried");
  } finally {
    hub.clearFaults();
  }
});

test('19. push to "me/x.git" and with --branch "" is refused before anything is sent', async () => {
  const since = hub.requests.length;
  const git = await runCli(["push", model, "me/x.git"], { env });
  assert.equal(git.status, 1, git.stderr);
  assert.match(git.stderr, /error \[INVALID_ARGUMENT\]: "me\/x\.git" is not a repo id to push to .*cannot end in "\.git"/);
  const branch = await runCli(["push", model, "me/x", "--branch", ""], { env });
  assert.equal(branch.status, 1, branch.stderr);
  assert.match(branch.stderr, /error \[INVALID_ARGUMENT\]: --branch "" cannot be used: it is empty/);
  assert.equal(hub.requests.length, since, "nothing reached the Hub");
  assert.equal(hub.repos.has("me/x"), false);
});
