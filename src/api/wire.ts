/**
 * The API's wire types that the browser UI shares with the daemon and the CLI. This file imports nothing outside
 * src/api and src/instances/model.ts (no Node modules), so web/ can import it; views.ts re-exports them.
 */
import type { InstanceState, RestartPolicy } from '../instances/model.ts';

export interface InstanceView {
  name: string;
  state: InstanceState;
  reason?: string;
  uuid: string;
  smbiosUuid: string;
  cpus: number;
  memoryMiB: number;
  accel: string;
  disks: Array<{ id: string; path: string; format: string }>;
  nics: Array<{ index: number; mac: string; network: string; address?: string; staticAddress?: boolean; lease?: string; guestAddresses?: string[] }>;
  portForwards?: Array<{ protocol: 'tcp' | 'udp'; hostAddress: string; hostPort: number; guestPort: number }>;
  boot?: { kernel: string; initrd?: string; cmdline?: string };
  image?: { name: string; sha256: string };
  instanceId?: string;
  ssh?: { user: string; address?: string; hostKeyFingerprints: string[] };
  readiness?: { phase: string; detail: string; at: string };
  autostart?: boolean;
  restartPolicy?: RestartPolicy;
  pid?: number;
  createdAt: string;
  updatedAt: string;
}

export type OperationStatus = 'running' | 'succeeded' | 'failed' | 'cancelled';

export interface ProgressEntry {
  phase: string;
  detail: string;
  elapsedMs: number;
}

export interface OperationView {
  id: string;
  kind: string;
  target?: string;
  status: OperationStatus;
  progress: { phase?: string; detail?: string; percent?: number; bytes?: number; totalBytes?: number; entries: ProgressEntry[] };
  result?: unknown;
  error?: { code: string; message: string; hint?: string };
  createdAt: string;
  finishedAt?: string;
}
