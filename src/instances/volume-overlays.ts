/** Volumes of an instance written through an overlay in its directory (since an external snapshot): "name (path)". */
export function volumeOverlays(instance: { spec: { disks: Array<{ volume?: string; path: string }> } }, instanceDir: string): string[] {
  return instance.spec.disks.filter((d) => d.volume !== undefined && d.path.startsWith(`${instanceDir}/`)).map((d) => `${d.volume} (${d.path})`);
}
