/** Public result types of the cloud-config validator (re-exported by ../validate.ts). */

export type IssueSeverity = 'error' | 'warning';

export interface ValidationIssue {
  severity: IssueSeverity;
  /** Where in the document, e.g. `users[0].sudo`; `''` for the document itself. */
  path: string;
  message: string;
  /** 1-based line of the offending node, when known. */
  line?: number;
  /** 1-based column of the offending node, when known. */
  column?: number;
  hint?: string;
}

export interface ValidationResult {
  /** True when there is no issue of severity `error` (warnings allowed). */
  ok: boolean;
  issues: ValidationIssue[];
  /** The parsed document (YAML 1.1 semantics), present when it parsed and its top level is a mapping. */
  config?: Record<string, unknown>;
}

export type UserDataKind = 'cloud-config' | 'script' | 'include' | 'jinja' | 'mime' | 'unknown';
