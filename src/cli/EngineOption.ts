/**
 * The `--engine` flag shared by every command, falling back to `SID_ENGINE`.
 *
 * @module
 */
import { HelpDoc, Options } from "@effect/cli"
import { Config, Either } from "effect"
import { EngineName } from "../engine/node/Engine.js"
import { decodeFlag, documented, type Flag } from "./Flags.js"

/** `--engine`: auto (default: webgpu on a hardware GPU adapter, else wasm-native where its addon is built, else wasm), webgpu, wasm, wasm-native, cpu, tfjs-node(-gpu). */
const ENGINE_DEFAULT = "auto"

const ENGINE_DESCRIPTION = "tensor engine: auto (webgpu on a hardware GPU adapter, else wasm-native where " +
  "`npm run build:native` built its addon, else wasm), webgpu, wasm, wasm-native, cpu, tfjs-node, tfjs-node-gpu"

export const engineOption: Options.Options<EngineName> = Options.text("engine").pipe(
  Options.withFallbackConfig(Config.string("SID_ENGINE").pipe(Config.withDefault(ENGINE_DEFAULT))),
  Options.withDescription(ENGINE_DESCRIPTION),
  Options.mapTryCatch(
    (text) => Either.getOrThrowWith(decodeFlag("engine", EngineName, text, (t) => t), (e) => e),
    (e) => HelpDoc.p(e instanceof Error ? e.message : String(e))
  )
)

/** {@link engineOption} with its documentation, for the help of every command. */
export const engineFlag: Flag<EngineName> = documented(
  {
    name: "engine",
    value: "text",
    placeholder: "<name>",
    description: ENGINE_DESCRIPTION,
    default: `$SID_ENGINE, else ${ENGINE_DEFAULT}`,
    choices: EngineName.literals
  },
  engineOption
)
