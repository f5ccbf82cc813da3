/**
 * The `--generator-steps k` flag of `sid sample` and `sid export` (docs/few-step.md): how many steps the generator
 * takes when sampled; absent, the run's own k. `sid distill` derives its flag of the same name from the config table.
 *
 * @module
 */
import { HelpDoc, Options } from "@effect/cli"
import { Either, type Option } from "effect"
import { GeneratorSteps } from "../domain/config/Units.js"
import { decodeFlag, type Flag } from "./Flags.js"

const description = "k, the steps the generator takes when sampled (σ ladder σ_init·(k − s)/k with re-noising between " +
  "steps; docs/few-step.md)"

/** `--generator-steps k`: an integer in 1..4, validated by the config's rule; absent: the run's own k. */
export const generatorStepsFlag: Flag<Option.Option<number>> = {
  doc: { name: "generator-steps", value: "integer", description, default: "the run's own k (1 for a one-step run)" },
  options: Options.text("generator-steps").pipe(
    Options.withDescription(description),
    Options.mapTryCatch(
      (text): number => Either.getOrThrowWith(decodeFlag("generator-steps", GeneratorSteps, text), (e) => e),
      (e) => HelpDoc.p(e instanceof Error ? e.message : String(e))
    ),
    Options.optional
  )
}
