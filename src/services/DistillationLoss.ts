/**
 * The generator loss a distillation run uses: SiD by default (spec §4.1), or any other {@link GeneratorLoss} — the
 * L¹ or L² term alone, the DMD direction, or a user's own — swapped in through a layer.
 *
 * @module
 */
import { Context } from "effect"
import type { GeneratorLoss } from "../domain/GeneratorLoss.js"

/** The generator-loss service. */
export class DistillationLoss extends Context.Tag("sid-ts/DistillationLoss")<DistillationLoss, GeneratorLoss>() {}
