import type { Db } from './db.ts';
import { NamedTable } from './named-table.ts';

export type ImageFormat = 'qcow2' | 'raw';

/** How a pulled image was checked: a hash given with --sha256, an entry of a SHA256SUMS file, or not at all. */
export type ImageVerification = 'sha256' | 'checksums';

/** One named image as stored; several names may share one content-addressed file. */
export interface ImageRow {
  name: string;
  /** sha256 of the stored (decompressed) file: its content address. */
  sha256: string;
  format: ImageFormat;
  virtualSize: number;
  fileSize: number;
  /** The absolute path imported, or the URL pulled. */
  source: string;
  /** sha256 of what was imported or downloaded (differs from `sha256` when it was compressed). */
  sourceSha256: string;
  verifiedBy: ImageVerification | undefined;
  createdAt: string;
}

interface Row {
  name: string;
  sha256: string;
  format: ImageFormat;
  virtual_size: number;
  file_size: number;
  source: string;
  source_sha256: string;
  verified_by: ImageVerification | null;
  created_at: string;
}

function toImage(row: Row): ImageRow {
  return {
    name: row.name,
    sha256: row.sha256,
    format: row.format,
    virtualSize: row.virtual_size,
    fileSize: row.file_size,
    source: row.source,
    sourceSha256: row.source_sha256,
    verifiedBy: row.verified_by ?? undefined,
    createdAt: row.created_at,
  };
}

export class ImageRepository extends NamedTable<Row, ImageRow> {
  constructor(db: Db) {
    super(db, 'images', toImage);
  }

  /** Names that share one stored file. */
  namesWithSha256(sha256: string): string[] {
    return (this.db.prepare('SELECT name FROM images WHERE sha256 = ? ORDER BY name').all(sha256) as Array<{ name: string }>).map((r) => r.name);
  }

  /** An image made from exactly these bytes (the file imported or downloaded), if any. */
  findBySourceSha256(sha256: string): ImageRow | undefined {
    const row = this.db.prepare('SELECT * FROM images WHERE source_sha256 = ? ORDER BY created_at LIMIT 1').get(sha256) as Row | undefined;
    return row === undefined ? undefined : toImage(row);
  }

  insert(image: Omit<ImageRow, 'createdAt'>): ImageRow {
    const createdAt = new Date().toISOString();
    this.db
      .prepare(
        `INSERT INTO images (name, sha256, format, virtual_size, file_size, source, source_sha256, verified_by, created_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      )
      .run(image.name, image.sha256, image.format, image.virtualSize, image.fileSize, image.source, image.sourceSha256, image.verifiedBy ?? null, createdAt);
    return { ...image, createdAt };
  }
}
