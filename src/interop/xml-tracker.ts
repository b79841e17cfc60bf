import type { XmlElement } from './xml.ts';

export interface ImportWarning {
  /** XPath-like: `/domain/devices/disk[2]/driver/@io`. */
  path: string;
  message: string;
}

/** Which elements and attributes the mapping used; the rest become warnings. */
export class Tracker {
  private readonly used = new Set<XmlElement>();
  private readonly usedAttrs = new Map<XmlElement, Set<string>>();
  private readonly paths = new Map<XmlElement, string>();
  readonly warnings: ImportWarning[] = [];
  readonly root: XmlElement;

  constructor(root: XmlElement) {
    this.root = root;
    const walk = (el: XmlElement, path: string) => {
      this.paths.set(el, path);
      const counts = new Map<string, number>();
      for (const c of el.children) counts.set(c.name, (counts.get(c.name) ?? 0) + 1);
      const seen = new Map<string, number>();
      for (const c of el.children) {
        const n = (seen.get(c.name) ?? 0) + 1;
        seen.set(c.name, n);
        walk(c, `${path}/${c.name}${counts.get(c.name)! > 1 ? `[${n}]` : ''}`);
      }
    };
    walk(root, `/${root.name}`);
  }

  path(el: XmlElement): string {
    return this.paths.get(el)!;
  }

  use(el: XmlElement): XmlElement {
    this.used.add(el);
    return el;
  }

  private useAll(el: XmlElement): void {
    this.use(el);
    this.usedAttrs.set(el, new Set(el.attributes.keys()));
    el.children.forEach((c) => this.useAll(c));
  }

  /** Marks the element and returns the attribute (marking it too). */
  attr(el: XmlElement, name: string): string | undefined {
    this.use(el);
    const value = el.attributes.get(name);
    if (value !== undefined) {
      const set = this.usedAttrs.get(el) ?? new Set();
      set.add(name);
      this.usedAttrs.set(el, set);
    }
    return value;
  }

  /** The element's children of this name (not marked). */
  all(el: XmlElement, name: string): XmlElement[] {
    return el.children.filter((c) => c.name === name);
  }

  one(el: XmlElement, name: string): XmlElement | undefined {
    return el.children.find((c) => c.name === name);
  }

  /**
   * Something virtnode does not keep, reported once: an attribute, or an element with everything inside it.
   */
  note(el: XmlElement, message: string, attribute?: string): void {
    if (attribute !== undefined) this.attr(el, attribute);
    else this.useAll(el);
    this.warnings.push({ path: `${this.path(el)}${attribute === undefined ? '' : `/@${attribute}`}`, message });
  }

  /** Every element or attribute nothing used, in document order. */
  unused(): ImportWarning[] {
    const out: ImportWarning[] = [];
    const walk = (el: XmlElement) => {
      if (!this.used.has(el)) {
        const attrs = [...el.attributes].map(([k, v]) => `${k}="${v}"`).join(' ');
        out.push({ path: this.path(el), message: `not mapped: <${el.name}${attrs === '' ? '' : ` ${attrs}`}>${el.children.length > 0 ? ' and its contents' : ''}` });
        return;
      }
      const usedAttrs = this.usedAttrs.get(el) ?? new Set();
      for (const [k, v] of el.attributes) {
        // Namespace declarations say nothing about the machine.
        if (!usedAttrs.has(k) && !k.startsWith('xmlns')) out.push({ path: `${this.path(el)}/@${k}`, message: `not mapped: ${k}="${v}"` });
      }
      el.children.forEach(walk);
    };
    walk(this.root);
    return out;
  }
}
