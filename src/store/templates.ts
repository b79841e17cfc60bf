import type { Db } from './db.ts';
import { NamedTable } from './named-table.ts';
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

type Details = Pick<Template, 'defaults' | 'sealReport'> & { image?: Template['image']; warm?: Template['warm'] };

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
    ...(details.warm === undefined ? {} : { warm: details.warm }),
    createdAt: row.created_at,
  };
}

export class TemplateRepository extends NamedTable<TemplateRow, Template> {
  constructor(db: Db) {
    super(db, 'templates', toTemplate);
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

  /** Records (or, with undefined, forgets) a template's warm state; it lives in the details column, so no schema change. */
  setWarm(name: string, warm: Template['warm']): void {
    const row = this.db.prepare('SELECT details FROM templates WHERE name = ?').get(name) as { details: string } | undefined;
    if (row === undefined) return;
    const details = JSON.parse(row.details) as Details;
    if (warm === undefined) delete details.warm;
    else details.warm = warm;
    this.db.prepare('UPDATE templates SET details = ? WHERE name = ?').run(JSON.stringify(details), name);
  }
}
