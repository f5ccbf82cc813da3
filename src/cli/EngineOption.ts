/**
 * The `--engine` flag shared by every command, falling back to `SID_ENGINE`.
 *
 * @module
 */
import { HelpDoc, Options } from "@effect/cli"
import { Config, Either } from "effect"
import { EngineName } from "../engine/Engine.js"
import { decodeFlag } from "./Flags.js"

/** `--engine`: auto (default: webgpu on a hardware GPU adapter, else wasm-native where its addon is built, else wasm), webgpu, wasm, wasm-native, cpu, tfjs-node(-gpu). */
export const engineOption: Options.Options<EngineName> = Options.text("engine").pipe(
  Options.withFallbackConfig(Config.string("SID_ENGINE").pipe(Config.withDefault("auto"))),
  Options.withDescription(
    "tensor engine (env SID_ENGINE; default auto: webgpu on a hardware GPU adapter, else wasm-native where " +
      "`npm run build:native` built its addon, else wasm): auto, webgpu, wasm, wasm-native, cpu, tfjs-node, tfjs-node-gpu"
  ),
  Options.mapTryCatch(
    (text) => Either.getOrThrowWith(decodeFlag("engine", EngineName, text, (t) => t), (e) => e),
    (e) => HelpDoc.p(e instanceof Error ? e.message : String(e))
  )
)
