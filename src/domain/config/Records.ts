/**
 * Schemas of the plain records that runs store in checkpoints and reports, one per shape. The domain modules that
 * compute with these values declare them as plain types (so `sid-ts/browser`'s sampler needs TF.js alone); these
 * schemas decode and encode them.
 *
 * @since 0.2.0
 */
import { Schema } from "effect"
import type { StreamState as StreamStateType } from "../data/RandomStream.js"
import type { NetworkDescription as NetworkDescriptionType } from "../nn/Network.js"

/**
 * A random stream's state: the four 32-bit words of a xoshiro128** state (`domain/data/RandomStream.ts`).
 *
 * @since 0.2.0
 * @category schemas
 */
export const StreamState: Schema.Schema<StreamStateType> = Schema.Tuple(Schema.Int, Schema.Int, Schema.Int, Schema.Int)

/**
 * A network's description: its kind and its spec (`domain/nn/Network.ts`).
 *
 * @since 0.2.0
 * @category schemas
 */
export const NetworkDescription: Schema.Schema<NetworkDescriptionType> = Schema.Struct({
  kind: Schema.String,
  spec: Schema.Unknown
})
