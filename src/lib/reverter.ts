/**
 * Undo steps for a multi-step operation: register an undo after each step that changed something; on failure
 * `revert()` runs them newest first; on success `success()` forgets them.
 */
export class Reverter {
  private readonly undos: Array<{ what: string; undo: () => Promise<void> | void }> = [];

  add(what: string, undo: () => Promise<void> | void): void {
    this.undos.push({ what, undo });
  }

  success(): void {
    this.undos.length = 0;
  }

  /** Runs every undo even if some fail; returns the failures so the caller can report them. */
  async revert(): Promise<Array<{ what: string; error: unknown }>> {
    const failures: Array<{ what: string; error: unknown }> = [];
    while (this.undos.length > 0) {
      const step = this.undos.pop()!;
      try {
        await step.undo();
      } catch (error) {
        failures.push({ what: step.what, error });
      }
    }
    return failures;
  }
}
