#!/usr/bin/env node
// Launcher for the Hub emulator written in TypeScript; run `npm run build` first.
import { main } from "../../dist/test/hub-emulator/start-server.js";

await main(process.argv.slice(2));
