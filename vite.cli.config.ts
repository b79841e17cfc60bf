/**
 * `vite build --config vite.cli.config.ts` (part of `npm run build`): the CLI as one ES module for Node 24,
 * dist/virtnode.js, which bin/virtnode runs with Node's compile cache. A call reads and compiles that one file
 * instead of some two hundred modules, and every module in it still runs its top-level code only when first
 * imported (rolldown's strictExecutionOrder wraps each in an init function; import() resolves inside the file).
 *
 * Kept out of that file, and loaded only when first used (lazyExternals below):
 * - Node's built-in modules;
 * - npm packages the daemon alone uses (fastify, @fastify/*, pino, prom-client, ajv; ws for `console`), from
 *   node_modules;
 * - typebox (the API schemas, daemon only) and yaml (cloud-init documents, --format yaml): each bundled into one
 *   file of its own, dist/vendor/NAME.js, as they are slow to load from node_modules (typebox is some 370 files).
 * dist/metadata-responder.js is the program QEMU runs for NoCloud over HTTP (src/cloudinit/metadata-responder.ts),
 * a file of its own because it starts for each request of a guest. dist/web-ui comes after, from web/vite.config.ts.
 */
import { createRequire, isBuiltin } from 'node:module';
import { fileURLToPath } from 'node:url';
import { defineConfig, type EnvironmentOptions, type Plugin } from 'vite';

const DIST = fileURLToPath(new URL('./dist', import.meta.url));
const src = (path: string) => fileURLToPath(new URL(`./src/${path}`, import.meta.url));
const requireHere = createRequire(import.meta.url);

/** Bundled into dist/virtnode.js: what every command needs. */
const BUNDLED = ['commander'];
/** Bundled each into dist/vendor/NAME.js, loaded on first use. */
const VENDORED = ['typebox', 'yaml'];
const LAZY = '\0lazy:';
const VENDOR_ENTRY = '\0vendor:';

const packageName = (id: string) => id.split('/').slice(0, id.startsWith('@') ? 2 : 1).join('/');
const isPackage = (id: string) => !/^[./\0]/.test(id) && !isBuiltin(id) && !id.startsWith('virtual:');
const isEsmNamespace = (value: unknown) => Object.prototype.toString.call(value) === '[object Module]';

function isIdentifier(name: string): boolean {
  if (!/^[A-Za-z_$][\w$]*$/.test(name)) return false;
  try {
    new Function(`let ${name};`);
    return true;
  } catch {
    return false;
  }
}

/** What an ES import of this package or built-in finds: its named exports, and whether it is an ES module. */
function exportsOf(id: string): { names: string[]; esm: boolean } {
  const value = (isBuiltin(id) ? process.getBuiltinModule(id) : requireHere(id)) as Record<string, unknown>;
  return { names: Object.keys(value).filter((key) => key !== 'default' && isIdentifier(key)), esm: isEsmNamespace(value) };
}

/**
 * A bundle hoists every `import ... from 'x'` of a module outside it to its top, so each call would load all of
 * them: fastify and pino for `virtnode list`; node:https with TLS (some 70 ms of CPU); and the ES form of
 * node:http reads all of its lazy getters, which loads undici (some 100 ms). Instead a static import of one
 * becomes a module of the bundle that loads it in its init, when the importing module first runs: built-ins with
 * process.getBuiltinModule(), packages with require() (which also loads ES modules). Each export is a pure read,
 * so the bundle keeps only those some module uses. import() and require() in bundled code stay as they are.
 */
function lazyExternals(): Plugin {
  return {
    name: 'virtnode:lazy-externals',
    enforce: 'pre',
    applyToEnvironment: (environment) => environment.name === 'cli',
    resolveId(id, importer, options) {
      const kind = (options as { kind?: string }).kind;
      // The bundler's runtime and bundled CommonJS code are not wrapped in init functions.
      if (kind !== 'import-statement' || importer === undefined || importer.startsWith('\0') || importer.includes('/node_modules/')) return null;
      if (isBuiltin(id)) return `${LAZY}${id.startsWith('node:') ? id : `node:${id}`}`;
      if (!isPackage(id) || BUNDLED.includes(packageName(id))) return null;
      if (VENDORED.includes(packageName(id)) && id !== packageName(id)) this.error(`${id}: import ${packageName(id)} itself (it is bundled into dist/vendor/)`);
      return `${LAZY}${id}`;
    },
    load(id) {
      if (!id.startsWith(LAZY)) return null;
      const name = id.slice(LAZY.length);
      const { names, esm } = exportsOf(name);
      const load = isBuiltin(name)
        ? `process.getBuiltinModule(${JSON.stringify(name)})`
        : `process.getBuiltinModule('node:module').createRequire(import.meta.url)(${JSON.stringify(VENDORED.includes(name) ? `./vendor/${name}.js` : name)})`;
      // The vendored bundles are ES modules; an ES import of CommonJS gets module.exports as its default.
      const esNamespace = esm || VENDORED.includes(name);
      // Local names cannot clash with the exports: none is named `$lazy...`.
      return [
        `const $lazy = ${load};`,
        'const $lazyRead = (key) => $lazy[key];',
        `export default ${esNamespace ? '$lazy.default' : '$lazy'};`,
        ...names.filter((key) => !key.startsWith('$lazy')).map((key, i) => `const $lazy${i} = /* @__PURE__ */ $lazyRead(${JSON.stringify(key)});\nexport { $lazy${i} as ${key} };`),
      ].join('\n');
    },
  };
}

/** The entry of dist/vendor/NAME.js: the package's ES exports (its named exports and default). */
function vendorEntries(): Plugin {
  return {
    name: 'virtnode:vendor-entries',
    applyToEnvironment: (environment) => environment.name.startsWith('vendor_'),
    resolveId: (id) => (id.startsWith(VENDOR_ENTRY) ? id : null),
    load(id) {
      if (!id.startsWith(VENDOR_ENTRY)) return null;
      const name = id.slice(VENDOR_ENTRY.length);
      const { names, esm } = exportsOf(name);
      if (esm) return `export * from ${JSON.stringify(name)};\nexport { default } from ${JSON.stringify(name)};`;
      return `import m from ${JSON.stringify(name)};\nexport default m;\nexport const { ${names.join(', ')} } = m;`;
    },
  };
}

/** One ES module file for Node 24. */
function nodeBundle(input: string, file: string, options: { bundled: true | string[]; emptyOutDir?: boolean; lazyModules?: boolean }): EnvironmentOptions {
  return {
    consumer: 'server',
    // npm packages not bundled stay imports of node_modules.
    resolve: { noExternal: options.bundled },
    build: {
      ssr: true,
      target: 'node24',
      outDir: DIST,
      emptyOutDir: options.emptyOutDir ?? false,
      minify: false,
      sourcemap: false,
      reportCompressedSize: false,
      rolldownOptions: {
        input: { [file.replace(/\.js$/, '')]: input },
        // lazyExternals loads each package once to learn its export names: that is most of the build's time.
        checks: { bundlerTimings: false },
        // Module wrappers as plain functions: V8 compiles a module's code when it first runs, not all up front.
        optimization: { pifeForModuleWrappers: false },
        output: {
          format: 'es',
          entryFileNames: '[name].js',
          // One file: import() of the code's own modules resolves inside it.
          codeSplitting: false,
          // Each module runs its top-level code when first imported, as it does unbundled.
          strictExecutionOrder: options.lazyModules ?? false,
          // All-ASCII text is read and hashed as one byte per character (one arrow in a message doubles it).
          charset: 'ascii',
          // Smaller to read at each start; stack traces keep the names and lines of readable code.
          comments: { legal: true, annotation: true, jsdoc: false },
        },
      },
    },
  };
}

export default defineConfig({
  logLevel: 'warn',
  publicDir: false,
  plugins: [lazyExternals(), vendorEntries()],
  environments: {
    cli: nodeBundle(src('cli/main.ts'), 'virtnode.js', { bundled: BUNDLED, emptyOutDir: true, lazyModules: true }),
    responder: nodeBundle(src('cloudinit/metadata-responder.ts'), 'metadata-responder.js', { bundled: [] }),
    ...Object.fromEntries(VENDORED.map((name) => [`vendor_${name}`, nodeBundle(`${VENDOR_ENTRY}${name}`, `vendor/${name}.js`, { bundled: true })])),
  },
  builder: {
    async buildApp(builder) {
      // One after the other: the first empties dist/.
      for (const environment of Object.values(builder.environments)) {
        if (environment.name !== 'client') await builder.build(environment);
      }
    },
  },
});
