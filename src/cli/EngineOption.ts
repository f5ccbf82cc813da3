/**
 * The `--engine` flag shared by every command, falling back to `SID_ENGINE`.
 *
 * @module
 */
import { Options } from "@effect/cli"
import { EngineName, EngineNameConfig } from "../services/Engine.js"

/** `--engine`: auto (default: wasm-native where its addon is built, else wasm), wasm, wasm-native, cpu, tfjs-node(-gpu). */
export const engineOption = Options.choice("engine", EngineName.literals).pipe(
  Options.withFallbackConfig(EngineNameConfig),
  Options.withDescription(
    "tensor engine (env SID_ENGINE): auto (default: wasm-native where `npm run build:native` built its addon, else " +
      "wasm), wasm, wasm-native, cpu, tfjs-node, tfjs-node-gpu"
  )
)
