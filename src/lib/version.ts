/** virtnode's version, as the daemon reports it (`GET /host`, the OpenAPI document). */
export const VERSION = '0.1.0';
