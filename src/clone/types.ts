import type { Instance } from '../instances/model.ts';
import type { SealResult } from '../templates/seal.ts';

export interface CloneOptions {
  signal?: AbortSignal;
  /** Bytes copied of the source's virtual size (full clones). */
  onProgress?: (done: number, total: number) => void;
}

export interface CloneResult {
  instance: Instance;
  mode: 'full' | 'linked';
  from: 'instance' | 'template';
  /** The read-only base both the source and the clone now sit on (linked clone of an instance). */
  base?: string;
  /** Undefined when the source is a template (already sealed). */
  seal: SealResult | undefined;
}
