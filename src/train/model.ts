// The model type the Trainer and evaluate accept.
import type { Tensor } from '../core/index.js';
import type { CausalLMOutput, ForwardOptions, LlamaForCausalLM } from '../nn/index.js';

/** What the Trainer and evaluate need of a model: a LlamaForCausalLM, or a PeftModel (LoRA) around one. */
export interface TrainableModel {
  readonly backend: LlamaForCausalLM['backend'];
  readonly training: boolean;
  forward(inputIds: Tensor, opts?: ForwardOptions): CausalLMOutput;
  /** What gets gradients (for a PeftModel: the adapters only). */
  parameters(): Tensor[];
  namedParameters(): Iterable<[string, Tensor]>;
  zeroGrad(): void;
  train(mode?: boolean): unknown;
  eval(): unknown;
}
