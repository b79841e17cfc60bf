/** This machine as a virtualization host: `virtnode host check`, `/host` in the REST API. */
import { endpoints } from '../endpoint.ts';
import { HostCheckQuery, HostReport, HostSummary } from '../schemas.ts';

export const hostEndpoints = endpoints({
  summary: { method: 'GET', path: '/host', summary: 'this host and its instances at a glance', response: HostSummary },
  check: { method: 'GET', path: '/host/check', summary: 'the host check (`virtnode host check`)', query: HostCheckQuery, response: HostReport },
});
