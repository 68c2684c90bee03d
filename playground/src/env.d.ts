// Modules esbuild bundles that are not TypeScript.
declare module '*.css';
