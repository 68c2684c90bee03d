// COI=1: the dev server sends the cross-origin isolation headers (the build is served by the test's own server).
const headers = process.env.COI ? { 'Cross-Origin-Opener-Policy': 'same-origin', 'Cross-Origin-Embedder-Policy': 'require-corp' } : {};
export default { server: { headers }, worker: { format: 'es' }, logLevel: 'info' };
