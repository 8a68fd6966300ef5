/** The CLI's redactor is the project's one (lib/hub/redact-secrets.ts); main.ts applies it to every message. */
export { knownSecrets, redactSecrets } from "../hub/redact-secrets.js";
