// Loads the generated package (pkg/node, CommonJS from wasm-pack --target nodejs) the way
// a Node user's code would: by requiring its directory.
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import path from "node:path";

const require = createRequire(import.meta.url);
export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
export const { SyncQueue } = require(path.join(root, "pkg/node"));
