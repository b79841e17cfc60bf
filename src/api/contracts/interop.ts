/** Other tools' formats: libvirt domain XML in and out, Ansible's dynamic inventory (`virtnode import/export/inventory`). */
import Type from 'typebox';
import { endpoints } from '../endpoint.ts';
import { Closed, Instance, Name, NameParams, StringEnum } from '../schemas.ts';

export const AnsibleInventory = Type.Record(Type.String(), Type.Unknown(), {
  description: "Ansible's dynamic-inventory JSON: groups (network_*, image_*, host_*, state_*, virtnode) and `_meta.hostvars`",
});

export const ExportQuery = Closed({ format: StringEnum(['libvirt'], { description: 'the format to write (libvirt: a domain XML)' }) });
export const ExportResult = Closed({
  name: Type.String(),
  format: Type.String(),
  document: Type.String({ description: 'the exported definition (a libvirt domain XML)' }),
  warnings: Type.Array(Type.String(), { description: 'what the format cannot carry' }),
});

export const LibvirtImportBody = Closed({
  xml: Type.Optional(Type.String({ minLength: 1, maxLength: 1024 * 1024, description: 'a libvirt domain XML (virsh dumpxml NAME)' })),
  from: Type.Optional(
    Closed(
      { uri: Type.String({ minLength: 1, maxLength: 512 }), domain: Type.String({ minLength: 1, maxLength: 256 }) },
      { description: "read the domain from libvirt on the daemon's host (virsh dumpxml); local callers only" },
    ),
  ),
  name: Type.Optional(Name),
  cpus: Type.Optional(Type.Integer({ minimum: 1, maximum: 1024, description: 'instead of the XML\'s vcpu' })),
  memory: Type.Optional(Type.String({ maxLength: 32, description: "instead of the XML's memory, e.g. 2G" })),
});
export const LibvirtImportResult = Closed({
  instance: Instance,
  warnings: Type.Array(Closed({ path: Type.String(), message: Type.String() }), { description: 'every element or attribute not mapped, or mapped differently' }),
  disks: Type.Array(Closed({ path: Type.String(), format: Type.String(), use: StringEnum(['referenced']) }), {
    description: 'the disk files, used where they are (never moved, copied or deleted by virtnode)',
  }),
});

export const interopEndpoints = endpoints({
  inventory: { method: 'GET', path: '/inventory/ansible', summary: "Ansible's dynamic inventory of the running launched instances", response: AnsibleInventory },
  export: { method: 'GET', path: '/instances/:name/export', summary: 'an instance in another format (`virtnode export NAME --format libvirt`)', params: NameParams, query: ExportQuery, response: ExportResult },
  importLibvirt: {
    method: 'POST',
    path: '/libvirt/import',
    summary: 'define an instance from a libvirt domain (`virtnode import libvirt`); the result lists what was not mapped',
    body: LibvirtImportBody,
    response: LibvirtImportResult,
    status: 201,
  },
});
