import type { Db } from './db.ts';
import type { Template } from '../templates/model.ts';

interface TemplateRow {
  name: string;
  disk_path: string;
  format: Template['format'];
  virtual_size: number;
  sha256: string;
  source: string;
  seal_method: Template['sealMethod'];
  details: string;
  created_at: string;
}

type Details = Pick<Template, 'defaults' | 'sealReport'> & { image?: Template['image'] };

function toTemplate(row: TemplateRow): Template {
  const details = JSON.parse(row.details) as Details;
  return {
    name: row.name,
    diskPath: row.disk_path,
    format: row.format,
    virtualSize: row.virtual_size,
    sha256: row.sha256,
    source: row.source,
    ...(details.image === undefined ? {} : { image: details.image }),
    defaults: details.defaults,
    sealMethod: row.seal_method,
    sealReport: details.sealReport,
    createdAt: row.created_at,
  };
}

export class TemplateRepository {
  private readonly db: Db;

  constructor(db: Db) {
    this.db = db;
  }

  get(name: string): Template | undefined {
    const row = this.db.prepare('SELECT * FROM templates WHERE name = ?').get(name) as TemplateRow | undefined;
    return row === undefined ? undefined : toTemplate(row);
  }

  list(): Template[] {
    return (this.db.prepare('SELECT * FROM templates ORDER BY name').all() as unknown as TemplateRow[]).map(toTemplate);
  }

  insert(t: Omit<Template, 'createdAt'>): void {
    const details: Details = { defaults: t.defaults, sealReport: t.sealReport, ...(t.image === undefined ? {} : { image: t.image }) };
    this.db
      .prepare(
        `INSERT INTO templates (name, disk_path, format, virtual_size, sha256, source, seal_method, details, created_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      )
      .run(t.name, t.diskPath, t.format, t.virtualSize, t.sha256, t.source, t.sealMethod, JSON.stringify(details), new Date().toISOString());
  }

  delete(name: string): void {
    this.db.prepare('DELETE FROM templates WHERE name = ?').run(name);
  }
}
